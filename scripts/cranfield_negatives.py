"""Cranfield experiment: where do the negatives come from? In-batch only vs BM25-mined vs splade-tiny-mined.

Usage (from the project root; about 15 minutes on 2 shared CPU cores):
    PYTHONPATH=. .venv/bin/python scripts/cranfield_negatives.py --workdir /tmp/cran-neg

Cranfield's judged queries are split into two halves with a fixed seed. splade-tiny is fine-tuned
on the train half three ways, same steps, batch, learning rate and FLOPS weights:
  (a) in-batch negatives only: every (query, judged positive) pair of the train half, MNRL;
  (b) one BM25-mined hard negative per pair (`repro mine` on a BM25 index);
  (c) one negative mined by splade-tiny itself (`repro mine` on its Lucene impact index).
Mining uses the default false-negative guard (relative margin 0.05 on the retrieval score) and
the top-ranked surviving candidate in ranks [0, 100). Every model (and untouched splade-tiny) is
scored on the TEST half by exact float dot product over all 1400 documents (repro.train.dev,
document max length 256), BM25 by Anserini over the same texts; per-query nDCG@10 goes through
repro.evaluate.significance (paired t-test and randomization test) against untouched splade-tiny.
Qrels: cranqrel grades 1..4 become gains 4..1 (`repro.formats.cranfield`); positives = gain >= 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("REPRO_SHARED", ROOT.parent / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=2026, help="seed of the query split")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="in-batch,bm25-mined,splade-mined")
    ap.add_argument("--max-length", type=int, default=128, help="training max length (queries and documents)")
    ap.add_argument("--eval-max-length", type=int, default=256, help="document max length when scoring the test half")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from repro.encode.documents import encode_corpus
    from repro.engines.lucene import search_topics
    from repro.evaluate.significance import compare
    from repro.formats.cranfield import convert_cranfield_qrels
    from repro.formats.qrels import read_qrels
    from repro.formats.topics import read_topics
    from repro.index.build import build_bm25_index, build_index
    from repro.train.config import TrainConfig
    from repro.train.dev import DevSet, evaluate, measure
    from repro.train.loop import run_training
    from repro.train.mine import MineConfig, mine
    from repro.train.model import load_sparse_encoder

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    cran = SHARED / "data" / "cranfield"
    model = str(SHARED / "models" / "splade-tiny")
    corpus = str(cran / "cran.all.1400")
    times: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        times[name] = round(time.perf_counter() - t0, 1)
        print(f"[{name}] {times[name]} s", flush=True)
        return out

    # 1. the split
    convert_cranfield_qrels(cran / "cranqrel", work / "qrels.txt")
    qrels = read_qrels(work / "qrels.txt").by_query
    topics = read_topics(cran / "cran.qry")
    judged = sorted((q for q in topics if any(r >= 1 for r in qrels.get(q, {}).values())), key=int)
    rnd = random.Random(args.seed)
    shuffled = judged[:]
    rnd.shuffle(shuffled)
    half = len(shuffled) // 2
    split = {"train": sorted(shuffled[:half], key=int), "test": sorted(shuffled[half:], key=int)}
    for part, qids in split.items():
        (work / f"{part}.topics.tsv").write_text("".join(f"{q}\t{' '.join(topics[q].split())}\n" for q in qids))
        (work / f"{part}.qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q in qids for d, r in sorted(qrels[q].items())))
    print(f"judged queries {len(judged)}: train {len(split['train'])}, test {len(split['test'])}", flush=True)

    # 2. indexes: BM25 and splade-tiny (Lucene impact, x100)
    if not (work / "bm25").exists():
        timed("bm25 index", lambda: build_bm25_index(corpus, work / "bm25", threads=args.threads))
    if not (work / "impact").exists():
        timed("encode corpus", lambda: encode_corpus(corpus, work / "coll", model=model, max_length=256,
                                                      progress=False, threads=args.threads))
        timed("impact index", lambda: build_index(work / "coll", work / "impact", threads=args.threads))

    # 3. training data
    common = dict(queries=str(work / "train.topics.tsv"), qrels=str(work / "train.qrels.txt"), corpus=corpus,
                  rank_max=100, num_negatives=1, shard_size=1000)
    mined = {}
    for name, index, enc in (("bm25-mined", "bm25", None), ("splade-mined", "impact", model)):
        out = work / f"mined-{name}"
        mined[name] = timed(f"mine {name}", lambda: mine(MineConfig(index=str(work / index), model=enc, **common),
                                                        out, threads=args.threads, progress=False))
    from repro.train.data import CorpusTexts

    texts = CorpusTexts(corpus)
    with open(work / "pairs.jsonl", "w", encoding="utf-8") as fh:
        pairs = 0
        for q in split["train"]:
            for d, r in sorted(qrels[q].items()):
                if r >= 1 and (texts.get(d) or "").strip():  # Cranfield has a few empty documents
                    fh.write(json.dumps({"query": topics[q], "positive": texts.get(d), "negatives": []}) + "\n")
                    pairs += 1
    data = {"in-batch": (str(work / "pairs.jsonl"), 0), "bm25-mined": (str(work / "mined-bm25-mined"), 1),
            "splade-mined": (str(work / "mined-splade-mined"), 1)}

    # 4. fine-tuning
    variants = [v for v in args.variants.split(",") if v]
    trained = {}
    for name in variants:
        path, negs = data[name]
        cfg = TrainConfig(base_model=model, output=str(work / f"model-{name}"), data=path, loss="mnrl",
                          num_negatives=negs, lambda_q=5e-3, lambda_d=4e-3, reg_warmup_steps=40,
                          batch_size=args.batch_size, lr=args.lr, lr_warmup_steps=10, max_steps=args.steps,
                          seed=13, max_length=args.max_length, save_steps=10_000, diagnostics_steps=args.steps,
                          diagnostics_texts=16, force=True)
        summary = timed(f"train {name}", lambda: run_training(cfg))
        trained[name] = summary

    # 5. test-half evaluation
    dev = DevSet.load(str(work / "test.topics.tsv"), corpus, str(work / "test.qrels.txt"))
    results, per_query = {}, {}
    bm25_run = timed("bm25 search", lambda: search_topics(work / "bm25", dev.queries, kind="bm25", hits=100,
                                                          threads=args.threads))
    agg, pq = measure({q: [(d, float(s)) for d, s in hits] for q, hits in bm25_run.items()}, dev.qrels)
    results["BM25"], per_query["BM25"] = agg, pq
    for name, folder in [("splade-tiny", model)] + [(f"+ {v}", str(work / f"model-{v}")) for v in variants]:
        m = load_sparse_encoder(folder, max_seq_length=args.eval_max_length)
        ev = timed(f"evaluate {name}", lambda: evaluate(m, dev, names=("ndcg@10", "rr@10", "r@100")))
        results[name], per_query[name] = ev["aggregate"], ev["per_query"]
    qids = list(dev.queries)
    rows = []
    for name in results:
        row = {"model": name, **{k: round(v, 4) for k, v in results[name].items()}}
        for base in ("splade-tiny", "BM25"):
            if name != base:
                test = compare([per_query[base][q]["ndcg@10"] for q in qids], [per_query[name][q]["ndcg@10"] for q in qids])
                row[f"vs {base}"] = {"delta": round(test["delta"], 4), "p_ttest": round(test["p_ttest"], 3),
                                     "p_randomization": round(test["p_randomization"], 3)}
        rows.append(row)
    report = {"args": vars(args) | {"workdir": str(args.workdir)}, "split": {k: len(v) for k, v in split.items()}, "seed": args.seed, "train_pairs": pairs,
              "mined": {k: {c: v[c] for c in ("records", "skipped_margin", "skipped_positive", "positive_not_retrieved",
                                             "too_few_negatives")} for k, v in mined.items()},
              "training": {k: {"steps": v["steps"], "rows": v["train_rows"], "seconds_per_step": v["seconds_per_step"],
                               "nnz_q": v["final"].get("nnz_q"), "nnz_d": v["final"].get("nnz_d")} for k, v in trained.items()},
              "results": rows, "seconds": times}
    (work / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
