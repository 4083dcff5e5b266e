"""Run short two-rank trainings again and again, under extra CPU load, and count hangs and failures.

A teardown race shows up once in tens of runs, so one passing test says little; this repeats the
user path (`torchrun --standalone --nproc_per_node 2 --no-python repro train ...`) N times. A run
still going after --hang-s gets SIGUSR1 first (repro prints every thread's stack on it), then is
killed; its stderr is kept as WORK/hang-N.err, a failure's as WORK/fail-N.err.

    python benchmarks/stress_two_ranks.py --runs 60 --hogs 2

To measure another commit (the one before a fix, say), pass `--repro` the console script of an
environment that has that commit installed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from common import DATA, DEFAULT_WORK, SPLADE_TINY, machine

from repro.testing import REPRO, torchrun


def _hog(stop) -> None:
    while not stop.is_set():
        pass


def _train_args(model: Path, data: Path, out: Path) -> list[str]:
    return ["train", "--base-model", str(model), "--output", str(out), "--data", str(data), "--batch-size", "8",
            "--max-steps", "6", "--lr", "1e-3", "--reg-warmup-steps", "0", "--save-steps", "3",
            "--diagnostics-steps", "1", "--diagnostics-texts", "4", "--max-length", "24", "--seed", "7",
            "--allow-duplicates", "--num-negatives", "1", "--force"]


def one_run(i: int, args: argparse.Namespace, work: Path) -> tuple[str, float]:
    """('ok' | 'fail' | 'hang', seconds) of one two-rank training."""
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work / "out.work", ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    res, hung = torchrun(_train_args(args.model, args.data, out), env, args.hang_s, program=["--no-python", args.repro])
    seconds = time.perf_counter() - t0
    outcome = "hang" if hung else "fail" if res.returncode != 0 else "ok"
    if outcome != "ok":
        (work / f"{outcome}-{i}.err").write_text(res.stderr)
    return outcome, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--hogs", type=int, default=2, help="busy-looping processes beside the two ranks")
    ap.add_argument("--hang-s", type=float, default=120.0, help="a run still going after this is a hang")
    ap.add_argument("--model", type=Path, default=SPLADE_TINY)
    ap.add_argument("--data", type=Path, default=DATA / "splade-toy" / "triplets" / "raw.tsv")
    ap.add_argument("--repro", default=REPRO, help="the repro console script to run (default: this environment's)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK / "stress-two-ranks")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=_hog, args=(stop,), daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    tally: dict[str, list[int]] = {"ok": [], "fail": [], "hang": []}
    seconds: list[float] = []
    try:
        for i in range(1, args.runs + 1):
            outcome, s = one_run(i, args, args.work)
            tally[outcome].append(i)
            seconds.append(s)
            print(f"run {i}/{args.runs}: {outcome} in {s:.1f} s", file=sys.stderr, flush=True)
    finally:
        stop.set()
        for h in hogs:
            h.join()
    print(json.dumps({"machine": machine(), "repro": args.repro, "runs": len(seconds), "hogs": args.hogs, "ok": len(tally["ok"]),
                      "failed": tally["fail"], "hung": tally["hang"],
                      "median_s": round(statistics.median(seconds), 1), "max_s": round(max(seconds), 1),
                      "kept": str(args.work)}, indent=2))
    sys.exit(1 if tally["fail"] or tally["hang"] else 0)


if __name__ == "__main__":
    main()
