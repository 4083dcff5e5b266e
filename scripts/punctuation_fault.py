"""Reproduce the punctuation-on-top failure with evidence: inspect models with and without the fault.

Steps (each skippable; CPU minutes):
  1. `inspect`: for each MODEL (name=path), the token-quality report (repro.encode.quality.model_report,
     i.e. what `repro inspect` prints) and the source positions (`repro inspect --explain-positions`)
     on the probe queries + the first N MS MARCO dev queries, with correct pooling and with the
     diagnostic `--pooling-fault pad` (padded to 32 tokens).
  2. `train`: SPLADE-train a base MLM with the normal `repro train` path (configs/punct-from-mlm.toml,
     Cranfield title -> abstract pairs) in three variants: full (FLOPS + warm-up), `--freeze-encoder`
     (the report's variant), and lambda 0 (no FLOPS); each result is then inspected as in step 1.

    .venv/bin/python scripts/pretrain_mlm.py --output /tmp/punct/mlm-scratch --init scratch --seconds 240
    .venv/bin/python scripts/punctuation_fault.py --workdir /tmp/punct \
        --model plain-mlm=/tmp/punct/mlm-scratch --model splade-tiny=../shared/models/splade-tiny \
        --train-base /tmp/punct/mlm-scratch

Writes WORKDIR/punctuation-results.json and prints one markdown row per (model, pooling).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("REPRO_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(ROOT / "scripts"))


def probe_texts(n_msmarco: int) -> list[str]:
    from repro.encode.quality import DEFAULT_PROBES

    path = SHARED / "data" / "msmarco-passage" / "topics.msmarco-passage.dev-subset.txt"
    with open(path, encoding="utf-8") as fh:
        dev = [line.rstrip("\n").split("\t")[-1] for _, line in zip(range(n_msmarco), fh)]
    return list(DEFAULT_PROBES) + dev


def inspect_model(path: str, texts: list[str], pooling_fault: str | None, max_length: int) -> dict:
    from repro.encode.quality import is_punctuation, model_report, position_sources
    from repro.train.model import load_sparse_encoder

    model = load_sparse_encoder(path, max_seq_length=max_length)
    rep = model_report(model, texts, top_k=5, pooling_fault=pooling_fault, max_length=max_length)
    pos = position_sources(model, texts, top_k=5, pooling_fault=pooling_fault, max_length=max_length)
    tops = [r["top"] for r in rep["texts"]]
    agg = rep["aggregate"]
    return {
        "pooling": pooling_fault or "correct",
        "queries": len(texts),
        "punct_top1_queries": sum(1 for t in tops if t and is_punctuation(t[0][0])),
        "punct_in_top3_queries": sum(1 for r in rep["texts"] if r["top_punct_or_special"]),
        "mean_nnz": round(agg["mean_nnz"], 1), "min_nnz": agg["min_nnz"],
        "punct_share": round(agg["mean_punct_share"], 4), "stopword_share": round(agg["mean_stopword_share"], 4),
        "special_share": round(agg["mean_special_share"], 4), "expansion_share": round(agg["mean_expansion_share"], 4),
        "punct_weight_by_position": {k: round(v, 3) for k, v in pos["punct_weight_share_by_position"].items()},
        "weight_by_position": {k: round(v, 3) for k, v in pos["weight_share_by_position"].items()},
        "top": {r["text"]: r["top"] for r in rep["texts"]},
        "top_with_source": {r["text"]: r["top"] for r in pos["texts"]},
        "warnings": rep["warnings"],
    }


def md_row(name: str, r: dict) -> str:
    p = r["top"]
    first = list(p)[0]
    top = ", ".join(f"{t} {w:.2f}" for t, w in p[first][:4])
    pw = r["punct_weight_by_position"]
    return (f"| {name} | {r['pooling']} | {top} | {r['punct_top1_queries']}/{r['queries']} | "
            f"{r['punct_share']:.3f} | {r['stopword_share']:.3f} | {r['mean_nnz']:.0f} (min {r['min_nnz']}) | "
            f"{r['expansion_share']:.2f} | cls {pw['cls']:.2f} / sep {pw['sep']:.2f} / pad {pw['pad']:.2f} / text {pw['text']:.2f} |")


def train_variants(base: str, work: Path, steps: int | None, lr: float | None, only: list[str] | None) -> dict[str, str]:
    from finetune_cranfield import load_cranfield, make_pairs

    docs, _, _ = load_cranfield()
    pairs = work / "pairs.jsonl"
    make_pairs(docs, pairs)
    variants = {"splade-trained": [], "splade-trained-frozen-encoder": ["--freeze-encoder"],
                "splade-trained-no-flops": ["--lambda-q", "0", "--lambda-d", "0"]}
    out = {}
    for name, extra in variants.items():
        if only and name not in only:
            continue
        if lr:
            name, extra = f"{name}-lr{lr:g}", [*extra, "--lr", str(lr)]
        dest = work / name
        cmd = [sys.executable, "-c", "from repro.cli import main; main()", "train", "--config",
               str(ROOT / "configs" / "punct-from-mlm.toml"), "--base-model", base, "--data", str(pairs),
               "--output", str(dest), "--force", *extra]
        if steps:
            cmd += ["--max-steps", str(steps)]
        print("$ repro", " ".join(cmd[3:]), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        out[name] = str(dest)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/punct")
    ap.add_argument("--model", action="append", default=[], help="NAME=PATH to inspect (repeatable)")
    ap.add_argument("--train-base", help="plain MLM to SPLADE-train in three variants, then inspect")
    ap.add_argument("--train-steps", type=int, default=None, help="override max-steps of the config")
    ap.add_argument("--train-lr", type=float, default=None, help="override lr of the config")
    ap.add_argument("--variants", default="", help="comma-separated subset of the three training variants")
    ap.add_argument("--msmarco", type=int, default=8, help="MS MARCO dev queries added to the probes")
    ap.add_argument("--no-pad", action="store_true", help="skip the --pooling-fault pad rows")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    texts = probe_texts(args.msmarco)
    models = dict(m.split("=", 1) for m in args.model)
    if args.train_base:
        models.update(train_variants(args.train_base, work, args.train_steps, args.train_lr,
                                     [v for v in args.variants.split(",") if v] or None))
    results_path = work / "punctuation-results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name, path in models.items():
        results[name] = {"path": path, "correct": inspect_model(path, texts, None, 64)}
        if not args.no_pad:
            results[name]["pad"] = inspect_model(path, texts, "pad", 32)
        results_path.write_text(json.dumps(results, indent=1))
    print("| model | pooling | 'what is python programming' top-4 | queries with punctuation top-1 | punct share "
          "| stopword share | nnz/query | expansion share | punctuation weight comes from |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, res in results.items():
        for key in ("correct", "pad"):
            if key in res:
                print(md_row(name, res[key]))


if __name__ == "__main__":
    main()
