"""Benchmark: `repro evaluate` against NIST trec_eval on an MS MARCO-sized run (not a test).

Builds a synthetic 7000-query x 1000-hit run with MS MARCO-like qrels (about 1.06 relevant
passages per query) in a temp folder, then times both evaluators as child processes over several
repetitions and reports the median wall time and the median peak RSS. trec_eval is the binary
shipped inside Anserini's fat jar (pyserini's resources). The result table is printed and appended
to docs/benchmarks.md.

    .venv/bin/python benchmarks/bench_evaluate.py [--queries 7000] [--hits 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402  (one machine description for every benchmark)

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TIME_BIN = "/usr/bin/time"


def make_data(folder: Path, queries: int, hits: int, seed: int = 0) -> tuple[Path, Path]:
    """Write run.trec and qrels.txt: strictly decreasing scores, MS MARCO-like sparse qrels."""
    rng = np.random.default_rng(seed)
    qids = rng.choice(np.arange(1_000, 1_200_000), size=queries, replace=False)
    run_path, qrels_path = folder / "run.trec", folder / "qrels.txt"
    with open(run_path, "w") as run, open(qrels_path, "w") as qrels:
        for qid in qids:
            docs = rng.choice(8_841_823, size=hits, replace=False)
            steps = rng.uniform(0.001, 0.05, size=hits)
            scores = 30.0 - np.cumsum(steps)
            n_relevant, relevant = 1 + int(rng.random() < 0.06), set()
            while len(relevant) < n_relevant:
                # the relevant passage is retrieved near the top for about 60% of the queries
                if rng.random() < 0.6:
                    relevant.add(int(docs[min(int(rng.exponential(8)), hits - 1)]))
                else:
                    relevant.add(int(rng.integers(8_841_823)))
            qrels.write("".join(f"{qid} 0 {doc} 1\n" for doc in sorted(relevant)))
            run.write("".join(f"{qid} Q0 {d} {r} {s:.6f} synthetic\n" for r, (d, s) in enumerate(zip(docs, scores), 1)))
    return run_path, qrels_path


def extract_trec_eval(folder: Path) -> Path:
    """The Linux trec_eval binary from Anserini's fat jar, made executable in ``folder``."""
    import pyserini

    jars = sorted((Path(pyserini.__file__).parent / "resources" / "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        sys.exit("no Anserini fat jar found under pyserini/resources/jars")
    target = folder / "trec_eval"
    with zipfile.ZipFile(jars[-1]) as jar, open(target, "wb") as out:
        out.write(jar.read("trec_eval/trec_eval-linux-amd64"))
    target.chmod(0o755)
    return target


def measure(cmd: list[str], repeats: int) -> tuple[float, float, str]:
    """Median wall seconds and median peak RSS (MiB) of ``cmd`` run as a child process."""
    walls, peaks, out = [], [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([TIME_BIN, "-v", *cmd], capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peaks.append(int(rss.group(1)) / 1024 if rss else float("nan"))
        out = proc.stdout
    return statistics.median(walls), statistics.median(peaks), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=7000)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if not Path(TIME_BIN).exists():
        sys.exit(f"{TIME_BIN} is needed to measure peak memory (apt-get install time)")

    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        run, qrels = make_data(folder, args.queries, args.hits)
        lines = args.queries * args.hits
        print(f"built {lines:,} run lines in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        trec_eval = extract_trec_eval(folder)
        repro = shutil.which("repro", path=str(Path(sys.executable).parent)) or "repro"

        ours = [repro, "evaluate", str(run), "--qrels", str(qrels), "--format", "csv"]
        # trec_eval has no RR cutoff: recip_rank over the full ranking is the same work as RR@10.
        # -c counts queries missing from the run as 0, which is repro's rule.
        theirs = [str(trec_eval), "-c", "-m", "recip_rank", "-m", "recall.1000", "-m", "ndcg_cut.10", str(qrels), str(run)]
        rows = []
        for name, cmd in (("trec_eval", theirs), ("repro evaluate", ours)):
            wall, rss, out = measure(cmd, args.repeats)
            print(f"{name}: {wall:.2f} s, {rss:.0f} MiB\n{out.strip()}", file=sys.stderr)
            rows.append((name, cmd, wall, rss))

    (_, _, base_wall, base_rss), (_, _, our_wall, our_rss) = rows
    shown = {
        "trec_eval": "trec_eval -c -m recip_rank -m recall.1000 -m ndcg_cut.10 qrels.txt run.trec",
        "repro evaluate": "repro evaluate run.trec --qrels qrels.txt --format csv  (RR@10 R@1000 nDCG@10)",
    }
    table = [
        f"## Evaluation speed (repro evaluate vs trec_eval), {dt.date.today().isoformat()}",
        "",
        f"Machine: {machine()}.",
        f"Input: synthetic run, {args.queries} queries x {args.hits} hits ({lines:,} lines), "
        f"MS MARCO-like qrels; median of {args.repeats} runs; peak RSS of the child process.",
        "",
        "| command | wall (s) | peak RSS (MiB) | time ratio | memory ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, _, wall, rss in rows:
        table.append(
            f"| `{shown[name]}` | {wall:.2f} | {rss:.0f} | {wall / base_wall:.2f} | {rss / base_rss:.2f} |"
        )
    text = "\n".join(table) + "\n"
    print(text)
    print(f"time ratio {our_wall / base_wall:.2f}x, memory ratio {our_rss / base_rss:.2f}x", file=sys.stderr)
    if not args.no_append:
        from common import append_to_docs

        append_to_docs("Evaluation speed (repro evaluate vs trec_eval)", "\n".join(table[3:]))


if __name__ == "__main__":
    main()
