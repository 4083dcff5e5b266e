"""Index build time, index size, peak memory and queries/s vs collection size, Lucene and Seismic.

Synthetic SPLADE-like vectors (common.SyntheticSplade: 150-200 nonzeros/doc, 20-40/query, Zipf
over the 30522 wordpieces, log-normal integer weights). Indexes are cached under --work, so a
second run only searches (build numbers come from the cached build record).

    .venv/bin/python benchmarks/bench_scale.py --docs 10000 100000
    .venv/bin/python benchmarks/bench_scale.py --docs 1000000       # ~25 min Lucene build here
    .venv/bin/python benchmarks/bench_scale.py --smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_query_latency import prepare_indexes  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    common.add_run_options(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.docs, args.queries = [2000], 10
    from repro.engines.lucene import search_topics
    from repro.engines.lucene import LuceneImpactSearcher
    from repro.engines.seismic import SeismicSearcher
    from repro.formats.anserini_queries import query_line

    synth = common.SyntheticSplade()
    rows = []
    print(f"machine: {common.machine()}")
    for docs in args.docs:
        idx = prepare_indexes(args.work, docs, synth, seismic=True, threads=args.threads)
        lb = idx["lucene_build"]
        sb = json.loads((idx["seismic"].parent / "seismic.build.json").read_text())
        vectors = [synth.query_vector(j, docs) for j in range(args.queries)]
        lines = {f"q{j}": query_line(f"q{j}", v).partition("\t")[2] for j, v in enumerate(vectors)}
        start = time.perf_counter()  # batch path: one SearchCollection JVM, all queries, 2 threads
        search_topics(idx["lucene"], lines, kind="impact", hits=args.hits, threads=args.threads)
        batch_qps = len(lines) / (time.perf_counter() - start)
        lucene = LuceneImpactSearcher(idx["lucene"])
        seis = SeismicSearcher(idx["seismic"])
        for v in vectors[:20]:  # warm-up
            lucene.search(v, args.hits), seis.search(v, args.hits)
        t = common.interleaved({"lucene": lambda: [lucene.search(v, args.hits) for v in vectors],
                                "seismic": lambda: [seis.search(v, args.hits) for v in vectors]}, 3)
        lucene.close()
        rows.append([docs, "Lucene (Anserini impact)", lb["seconds"], lb["bytes"] / 2**20, lb["peak_rss_mib"],
                     batch_qps, len(vectors) / common.median(t["lucene"])])
        rows.append([docs, "Seismic", sb["seconds"], common.dir_bytes(idx["seismic"]) / 2**20, sb.get("peak_rss_mib", 0),
                     "-", len(vectors) / common.median(t["seismic"])])
    header = ["docs", "engine", "build s", "index MiB", "build peak RSS MiB", "q/s batch (SearchCollection, 2 thr)",
              "q/s one at a time (in-process, 1 thr)"]
    table = common.markdown_table(header, rows)
    print(table)
    common.publish(args, "Scale: Lucene and Seismic vs collection size", table)
    if args.json:
        common.save_json(args.json, {"machine": common.machine(), "date": common.today(), "header": header, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
