"""Pipeline baseline on real collections: encode docs/s, index build, search q/s, evaluation time.

Runs the real CLI (`python -m repro.cli` equivalents through subprocess, as a user would) on
Cranfield and CACM with splade-tiny and BM25, and appends a table to docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_pipeline.py [--shared ../shared] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_to_docs, machine  # noqa: E402  (one machine description for every benchmark)

ROOT = Path(__file__).resolve().parent.parent
REPRO = [sys.executable, "-c", "from repro.cli import main; main()"]


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([*REPRO, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def bench(name: str, corpus: Path, topics: Path, qrels: Path, model: Path, work: Path) -> dict:
    from repro.formats.corpus import iter_docs
    from repro.formats.topics import read_topics

    n_docs = sum(1 for _ in iter_docs(corpus))
    n_queries = len(read_topics(topics))
    row = {"collection": name, "docs": n_docs, "queries": n_queries}
    row["encode_s"] = timed("encode", str(corpus), "-m", str(model), "-o", str(work / "coll"), "--max-length", "256", "-q")
    row["index_s"] = timed("index", str(work / "coll"), "-o", str(work / "idx"))
    row["bm25_index_s"] = timed("index", str(work / "coll"), "--bm25", "-o", str(work / "bm25"))
    row["encode_queries_s"] = timed("encode", str(topics), "--queries", "-m", str(model), "-o", str(work / "q.tsv"))
    row["search_s"] = timed("search", str(work / "idx"), "--encoded-queries", str(work / "q.tsv"), "-o", str(work / "s.trec"))
    row["bm25_search_s"] = timed("search", str(work / "bm25"), "-t", str(topics), "-o", str(work / "b.trec"))
    row["evaluate_s"] = timed("evaluate", str(work / "s.trec"), str(work / "b.trec"), "--qrels", str(qrels))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("REPRO_SHARED", ROOT.parent / "shared")))
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    data, model = args.shared / "data", args.shared / "models" / "splade-tiny"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([*REPRO, "convert-qrels", "cranfield", str(data / "cranfield" / "cranqrel"), "-o", str(tmp / "cran.qrels")],
                       check=True, stdout=subprocess.DEVNULL)
        (tmp / "cran").mkdir()
        (tmp / "cacm").mkdir()
        rows.append(bench("Cranfield", data / "cranfield" / "cran.all.1400", data / "cranfield" / "cran.qry",
                          tmp / "cran.qrels", model, tmp / "cran"))
        rows.append(bench("CACM", data / "cacm" / "cacm.jsonl", data / "cacm" / "topics.cacm.txt",
                          data / "cacm" / "qrels.cacm.txt", model, tmp / "cacm"))
    lines = [
        f"## Pipeline baseline on real collections ({date.today().isoformat()})",
        "",
        f"Machine: {machine()}. Model: splade-tiny, documents max 256 tokens, queries max 64, factor 100.",
        "Command: `.venv/bin/python benchmarks/bench_pipeline.py`. Wall times of whole CLI commands, one run each,",
        "process start-up, model and JVM load included (the per-item rates are therefore lower bounds).",
        "",
        "| collection | docs | queries | encode s (docs/s) | impact index s | BM25 index s | query encode s | SPLADE search s (q/s) | BM25 search s (q/s) | evaluate 2 runs s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['collection']} | {r['docs']} | {r['queries']} | {r['encode_s']:.1f} ({r['docs'] / r['encode_s']:.1f}) | "
            f"{r['index_s']:.1f} | {r['bm25_index_s']:.1f} | {r['encode_queries_s']:.1f} | "
            f"{r['search_s']:.1f} ({r['queries'] / r['search_s']:.1f}) | {r['bm25_search_s']:.1f} ({r['queries'] / r['bm25_search_s']:.1f}) | "
            f"{r['evaluate_s']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    print(json.dumps(rows, indent=1))
    if not args.no_append:
        append_to_docs("Pipeline on real collections", "Model: splade-tiny, documents max 256 tokens, queries max 64, "
                       "factor 100. Wall times of whole CLI commands, one run each,\n" + "\n".join(lines[4:]))


if __name__ == "__main__":
    main()
