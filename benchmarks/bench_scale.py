"""Build time, index size, memory, latency, queries/s and recall@10 vs collection size: Lucene, Seismic, Milvus.

Synthetic SPLADE-like vectors (common.SyntheticSplade: 150-200 nonzeros/doc, 20-40/query, Zipf
over the 30522 wordpieces, log-normal integer weights). Indexes are cached under --work, so a
second run only searches (build numbers come from the cached build record). All engines are
measured in the same run on the same vectors and queries. Recall@10 is against the exact top-10
(Lucene's, tie rule applied). Milvus runs embedded (Milvus Lite, in this process, exhaustive
search) up to --milvus-lite-max documents, or on a server with --milvus-uri (then also with
approximate drop_ratio_search values, their recall measured).

    .venv/bin/python benchmarks/bench_scale.py --docs 10000 100000
    .venv/bin/python benchmarks/bench_scale.py --docs 1000000       # ~25 min Lucene build here
    .venv/bin/python benchmarks/bench_scale.py --smoke
    .venv/bin/python benchmarks/bench_scale.py --docs 10000 --no-milvus   # Lucene and Seismic only
    .venv/bin/python benchmarks/bench_scale.py --docs 1000000 --milvus-uri http://host:19530
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


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def build_milvus(collection: Path, folder: Path, uri: str | None = None) -> dict:
    """A Milvus index of the collection (cached): Milvus Lite here, or on the server at ``uri``.

    Build time, and this process's peak RSS (for a server: the client's only)."""
    from repro.engines import milvus
    from repro.formats.collection import SHARDS, iter_vectors

    record = folder.parent / (folder.name + ".build.json")
    if (folder / milvus.INFO_FILE).exists() and record.exists():
        return json.loads(record.read_text())
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    before = rss_mib()
    start = time.perf_counter()
    with common.PeakWatcher() as peak:
        settings = {"uri": uri, "collection_name": f"repro_bench_{folder.parent.name.replace('-', '_')}"} if uri else {}
        facts = milvus.build(collection / SHARDS, folder, threads=2, settings=settings, vectors=iter_vectors(collection),
                             target=folder, force=True)
    info = {"seconds": time.perf_counter() - start, "bytes": common.dir_bytes(folder), "peak_rss_mib": peak.self_mib,
            "rss_before_mib": before, "documents": facts["documents"]}
    common.save_json(record, info)
    return info


def latencies(retrievers: dict, vectors: list, reps: int) -> dict[str, list[float]]:
    """Seconds per query, one query at a time, engines in rotating order each pass."""
    out: dict[str, list[float]] = {name: [] for name in retrievers}
    names = list(retrievers)
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            for v in vectors:
                start = time.perf_counter()
                retrievers[name](v)
                out[name].append(time.perf_counter() - start)
    return out


def recall_at_10(exact: list[list], got: list[list]) -> float:
    hits = total = 0
    for ref, mine in zip(exact, got):
        want = {d for d, _ in ref[:10]}
        hits += len(want & {d for d, _ in mine[:10]})
        total += len(want)
    return hits / total if total else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-milvus", action="store_true", help="leave Milvus out (pymilvus/milvus-lite missing)")
    parser.add_argument("--milvus-uri", default=None,
                        help="measure a Milvus server (e.g. http://host:19530; token from $MILVUS_TOKEN) instead of Milvus Lite")
    parser.add_argument("--milvus-drop", type=float, nargs="*", default=[0.1, 0.3],
                        help="with --milvus-uri: also search with these drop_ratio_search values (approximate)")
    parser.add_argument("--milvus-lite-max", type=int, default=200_000,
                        help="largest collection to load into Milvus Lite (about 39 KB of RAM per document)")
    common.add_run_options(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.docs, args.queries, args.reps = [2000], 10, 1
    from repro.engines.lucene import LuceneImpactSearcher, search_topics
    from repro.engines.seismic import SeismicSearcher
    from repro.errors import ReproError
    from repro.formats.anserini_queries import query_line

    synth = common.SyntheticSplade()
    rows = []
    print(f"machine: {common.machine()}")
    for docs in args.docs:
        idx = prepare_indexes(args.work, docs, synth, seismic=True, threads=args.threads)
        builds = {"lucene": idx["lucene_build"],
                  "seismic": json.loads((idx["seismic"].parent / "seismic.build.json").read_text())}
        builds["seismic"]["bytes"] = common.dir_bytes(idx["seismic"])
        use_milvus = not args.no_milvus and (args.milvus_uri or docs <= args.milvus_lite_max)
        if not args.no_milvus and not use_milvus:
            print(f"Milvus Lite skipped at {docs} documents (> --milvus-lite-max {args.milvus_lite_max}: about "
                  f"{docs * 39e3 / 2**30:.0f} GiB of RAM); give --milvus-uri to measure a server", file=sys.stderr)
        if use_milvus:
            milvus_dir = idx["lucene"].parent / ("milvus-server" if args.milvus_uri else "milvus")
            builds["milvus"] = build_milvus(idx["lucene"].parent / "collection", milvus_dir, args.milvus_uri)
        vectors = [synth.query_vector(j, docs) for j in range(args.queries)]
        lines = {f"q{j}": query_line(f"q{j}", v).partition("\t")[2] for j, v in enumerate(vectors)}
        batch_qps = {}
        start = time.perf_counter()  # batch path: one SearchCollection JVM, all queries, 2 threads
        search_topics(idx["lucene"], lines, kind="impact", hits=args.hits, threads=args.threads)
        batch_qps["lucene"] = len(lines) / (time.perf_counter() - start)

        serving = {}
        searchers = {}
        base = rss_mib()
        searchers["lucene"] = LuceneImpactSearcher(idx["lucene"])
        serving["lucene"], base = rss_mib() - base, rss_mib()
        searchers["seismic"] = SeismicSearcher(idx["seismic"])
        serving["seismic"], base = rss_mib() - base, rss_mib()
        if use_milvus:
            from repro.engines.milvus import MilvusSearcher

            searchers["milvus"] = MilvusSearcher(milvus_dir)
            for drop in (args.milvus_drop if args.milvus_uri else []):
                approximate = MilvusSearcher(milvus_dir, drop_ratio_search=drop)
                try:
                    approximate.search(vectors[0], 10)
                except ReproError as err:  # e.g. Milvus Lite behind the URI: exhaustive only
                    print(f"drop_ratio_search={drop:g} skipped: {err}", file=sys.stderr)
                    approximate.close()
                    continue
                searchers[f"milvus drop {drop:g}"] = approximate
                builds[f"milvus drop {drop:g}"] = {"seconds": "-", "bytes": None}
            searchers["milvus"].search(vectors[0], args.hits)  # Milvus Lite builds its postings on first search
            serving["milvus"] = rss_mib() - base
            start = time.perf_counter()
            searchers["milvus"].search_many({f"q{j}": v for j, v in enumerate(vectors)}, args.hits)
            batch_qps["milvus"] = len(vectors) / (time.perf_counter() - start)
        retrievers = {name: (lambda v, s=s: s.search(v, args.hits)) for name, s in searchers.items()}
        for v in vectors[:20]:  # warm-up
            for retrieve in retrievers.values():
                retrieve(v)
        exact = [searchers["lucene"].search(v, 10) for v in vectors]
        recall = {name: recall_at_10(exact, [s.search(v, 10) for v in vectors]) for name, s in searchers.items()}
        times = latencies(retrievers, vectors, args.reps)
        for name, searcher in searchers.items():
            if name != "seismic":
                searcher.close()
        labels = {"lucene": "Lucene (Anserini impact)", "seismic": "Seismic (default settings)",
                  "milvus": "Milvus server (exact)" if args.milvus_uri else "Milvus Lite (embedded, exact)"}
        for name in searchers:
            b = builds[name]
            size = b["bytes"]  # a server's index size is not visible from here (the folder holds only the manifest)
            client_side = args.milvus_uri and name.startswith("milvus")  # this process is only the client
            if client_side:
                size = None
            ms = [1000 * t for t in times[name]]
            rows.append([f"{docs:,}", labels.get(name, f"Milvus server, drop_ratio_search={name.split()[-1]}"),
                         b["seconds"], "-" if size is None else size / 2**20, "-" if size is None else size / docs,
                         "-" if client_side else b.get("peak_rss_mib", "-"),
                         "-" if client_side else serving.get(name, "-"), common.percentile(ms, 50),
                         common.percentile(ms, 99), batch_qps.get(name, "-"), recall[name]])
    header = ["docs", "engine", "build s", "index MiB", "index B/doc", "build peak RSS MiB",
              "serving RSS MiB (added)", f"p50 ms (k={args.hits}, 1 at a time)", "p99 ms",
              "q/s batch", "recall@10 vs exact"]
    table = common.markdown_table(header, rows)
    print(table)
    common.publish(args, "Scale: Lucene, Seismic and Milvus vs collection size", table)
    if args.json:
        common.save_json(args.json, {"machine": common.machine(), "date": common.today(), "header": header, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
