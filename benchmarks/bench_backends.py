"""What the speed paths cost in effectiveness, on real collections (Cranfield, CACM) with splade-tiny.

Same collection and Lucene impact index for every variant; only one thing changes per row:
  query runtime  torch (reference) | onnx (fp32) | onnx-int8 (dynamic int8 weights)
  retrieval      Lucene (exact)    | Seismic (approximate; default and a faster setting)
Reported: nDCG@10 and R@1000 (ir_measures), the paired t-test and randomization p-value against the
reference row, and for Seismic the recall@10 / @1000 of the exact top lists. Everything goes
through the `repro` CLI as a user would run it.

    .venv/bin/python benchmarks/bench_backends.py [--shared ../shared] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPRO = [sys.executable, "-c", "from repro.cli import main; main()"]
MEASURES = ["nDCG@10", "R@1000"]
SEISMIC_SETTINGS = {"Seismic cut 20 heap 0.8 (default)": [],
                    "Seismic cut 10 heap 0.8": ["--query-cut", "10", "--heap-factor", "0.8"],
                    "Seismic cut 5 heap 0.7": ["--query-cut", "5", "--heap-factor", "0.7"]}


def repro(*args: str) -> None:
    proc = subprocess.run([*REPRO, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"repro {' '.join(args)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def ranked_lists(path: Path) -> dict[str, list[str]]:
    """qid -> docids in rank order (our runs are written in rank order)."""
    out: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            qid, _, docid, *_ = line.split()
            out.setdefault(qid, []).append(docid)
    return out


def recall_of(exact: dict[str, list[str]], approx: dict[str, list[str]], k: int) -> float:
    """common.recall over the exact run's queries (a query missing from the approximate run found nothing)."""
    return common.recall(list(exact.values()), [approx.get(qid, []) for qid in exact], k)


def smoke_subset(corpus: Path, out: Path, count: int) -> Path:
    """The first ``count`` documents of ``corpus`` as a TSV file (read by repro's own corpus reader)."""
    from itertools import islice

    from repro.formats.corpus import iter_docs

    out.write_text("".join(f"{d.id}\t{' '.join(d.text.split())}\n" for d in islice(iter_docs(corpus), count)),
                   encoding="utf-8")
    return out


def bench(name: str, corpus: Path, topics: Path, qrels: Path, model: Path, work: Path) -> list[dict]:
    from repro.evaluate.evaluation import evaluate
    from repro.evaluate.significance import compare

    repro("encode", str(corpus), "-m", str(model), "-o", str(work / "coll"), "--max-length", "256", "-q")
    repro("index", str(work / "coll"), "-o", str(work / "lucene"))
    repro("index", str(work / "coll"), "--backend", "seismic", "-o", str(work / "seismic"))
    runs: dict[str, Path] = {}
    for runtime in ("torch", "onnx", "onnx-int8"):
        queries = work / f"q.{runtime}.tsv"
        repro("encode", str(topics), "--queries", "-m", str(model), "--runtime", runtime, "-o", str(queries))
        runs[f"{runtime} + Lucene"] = work / f"{runtime}.lucene.trec"
        repro("search", str(work / "lucene"), "--encoded-queries", str(queries), "-o", str(runs[f"{runtime} + Lucene"]))
    for label, extra in SEISMIC_SETTINGS.items():
        runs[f"torch + {label}"] = work / f"seismic.{len(runs)}.trec"
        repro("search", str(work / "seismic"), "--encoded-queries", str(work / "q.torch.tsv"), *extra,
              "-o", str(runs[f"torch + {label}"]))
    result = evaluate([str(p) for p in runs.values()], str(qrels), MEASURES)
    reference = result.runs[0]
    exact = ranked_lists(runs["torch + Lucene"])
    rows = []
    for label, run_eval, path in zip(runs, result.runs, runs.values()):
        row = {"collection": name, "variant": label, **{m: run_eval.aggregate[m] for m in MEASURES}}
        for m in MEASURES:
            test = compare(reference.per_query[m], run_eval.per_query[m])
            row[f"{m} p(t)"], row[f"{m} p(rand)"] = test["p_ttest"], test["p_randomization"]
        if "Seismic" in label:
            approx = ranked_lists(path)
            row["recall@10 of exact"], row["recall@1000 of exact"] = recall_of(exact, approx, 10), recall_of(exact, approx, 1000)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("REPRO_SHARED", ROOT.parent / "shared")))
    parser.add_argument("--collections", default="Cranfield,CACM", help="comma list of Cranfield,CACM")
    common.add_run_options(parser, smoke_help="the first 300 Cranfield documents only: checks that the script runs")
    args = parser.parse_args(argv)
    wanted = {"Cranfield"} if args.smoke else set(args.collections.split(","))
    data, model = args.shared / "data", args.shared / "models" / "splade-tiny"
    if not model.exists():
        raise SystemExit(f"needs {model} and the Cranfield/CACM data under {data}")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        repro("convert-qrels", "cranfield", str(data / "cranfield" / "cranqrel"), "-o", str(tmp / "cran.qrels"))
        for name, corpus, topics, qrels in (
            ("Cranfield", data / "cranfield" / "cran.all.1400", data / "cranfield" / "cran.qry", tmp / "cran.qrels"),
            ("CACM", data / "cacm" / "cacm.jsonl", data / "cacm" / "topics.cacm.txt", data / "cacm" / "qrels.cacm.txt"),
        ):
            if name not in wanted:
                continue
            (tmp / name).mkdir()
            if args.smoke:  # the first 300 documents: the script's every step, in a third of the time
                corpus = smoke_subset(corpus, tmp / name / "first300.tsv", 300)
            rows += bench(name, corpus, topics, qrels, model, tmp / name)
    header = ["collection", "variant", *[c for m in MEASURES for c in (m, f"{m} p(t)", f"{m} p(rand)")],
              "recall@10 of exact", "recall@1000 of exact"]
    print(f"machine: {common.machine()}")
    def cell(row: dict, column: str) -> str:
        value = row.get(column)
        if value is None:
            return "-"
        if isinstance(value, str):
            return value
        return f"{value:.3g}" if " p(" in column else f"{value:.4f}"

    table = common.markdown_table(header, [[cell(r, c) for c in header] for r in rows])
    print(table)
    common.publish(args, "Effect of the speed paths on effectiveness", table)
    if args.json:
        common.save_json(args.json, {"machine": common.machine(), "date": common.today(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
