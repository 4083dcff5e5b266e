"""Fine-tune splade-tiny on Cranfield title -> abstract pairs and measure before/after.

Usage (from the project root, about 10 minutes on 2 CPU cores):
    .venv/bin/python scripts/finetune_cranfield.py --workdir /tmp/cranfield-exp

Training pairs come from the documents only (title -> abstract with the title removed); no query
or relevance judgement is used for training. Retrieval is scored here with an exact in-memory
dot product over all 1400 documents and ir_measures nDCG@10. The same models through the real
pipeline: `repro reproduce cranfield.splade-tiny --model WORKDIR/trained --workdir ... --runs ...`
(docs/training.md has both sets of numbers).

Qrels mapping: cranqrel numbers queries 1..225 by POSITION in cran.qry (not by its .I ids).
Grades are 1..4 with 1 = most relevant and -1 = not relevant; for nDCG a grade g > 0 becomes
gain 5 - g (1 -> 4, ..., 4 -> 1) and -1 becomes 0.
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


def parse_smart(path: Path) -> list[dict[str, str]]:
    """SMART records through repro's reader: {"id", "T", "A", "B", "W"}, whitespace-normalised."""
    from repro.formats.smart import iter_smart_records

    return [{"id": doc_id, **{k: " ".join(fields.get(k, "").split()) for k in "TABW"}}
            for _, doc_id, fields in iter_smart_records(path)]


def load_cranfield():
    base = SHARED / "data" / "cranfield"
    docs = parse_smart(base / "cran.all.1400")
    queries = parse_smart(base / "cran.qry")
    qrels = []
    for line in (base / "cranqrel").read_text().splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        qpos, did, grade = parts[0], parts[1], int(parts[2])
        qrels.append((qpos, did, 5 - grade if grade > 0 else 0))
    return docs, queries, qrels


def make_pairs(docs, out: Path) -> int:
    n = 0
    with open(out, "w", encoding="utf-8") as fh:
        for d in docs:
            title, body = d["T"], d["W"]
            if body.startswith(title):
                body = body[len(title):].strip()
            if len(title.split()) < 2 or len(body.split()) < 5:
                continue
            fh.write(json.dumps({"query": title, "positive": body, "negatives": []}) + "\n")
            n += 1
    return n


def evaluate(model_dir: str, docs, queries, qrels, max_length: int = 256) -> dict:
    import ir_measures
    import torch
    from ir_measures import nDCG, RR, R

    from repro.encode.quality import expected_flops, model_report, raw_vectors
    from repro.train.model import load_sparse_encoder

    torch.set_num_threads(2)
    model = load_sparse_encoder(model_dir, max_seq_length=max_length)
    doc_texts = [(d["T"] + " " + d["W"]).strip() for d in docs]
    qtexts = [q["W"] for q in queries]
    dvec = raw_vectors(model, doc_texts, batch_size=32)
    qvec = raw_vectors(model, qtexts, batch_size=64)
    vocab = len(model.tokenizer)

    def dense(vs):
        m = torch.zeros(len(vs), vocab)
        for i, v in enumerate(vs):
            if v:
                m[i, list(v)] = torch.tensor(list(v.values()))
        return m

    scores = dense(qvec) @ dense(dvec).T
    run = []
    for qi in range(len(queries)):
        top = torch.topk(scores[qi], 100)
        for rank, (s, di) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            # Tie-free run: subtract a tiny rank-based epsilon so every evaluator orders alike.
            run.append(ir_measures.ScoredDoc(str(qi + 1), docs[di]["id"], s - rank * 1e-9))
    qrel_objs = [ir_measures.Qrel(q, d, g) for q, d, g in qrels]
    agg = ir_measures.calc_aggregate([nDCG @ 10, RR @ 10, R @ 100], qrel_objs, run)
    qrep = model_report(model, qtexts, top_k=5)["aggregate"]
    drep = model_report(model, doc_texts[:300], top_k=5)["aggregate"]
    probes = model_report(model, ["what is python programming", "best restaurants in paris",
                                  "boundary layer flow over a flat plate"], top_k=6)
    return {
        "nDCG@10": round(agg[nDCG @ 10], 4), "RR@10": round(agg[RR @ 10], 4), "R@100": round(agg[R @ 100], 4),
        "nnz_q": round(qrep["mean_nnz"], 1), "nnz_d": round(sum(len(v) for v in dvec) / len(dvec), 1),
        "flops": round(expected_flops(qvec, dvec), 2),
        "punct_q": round(qrep["mean_punct_share"], 4), "punct_d": round(drep["mean_punct_share"], 4),
        "stop_q": round(qrep["mean_stopword_share"], 4), "stop_d": round(drep["mean_stopword_share"], 4),
        "special_q": round(qrep["mean_special_share"], 4), "special_d": round(drep["mean_special_share"], 4),
        "expansion_q": round(qrep["mean_expansion_share"], 4),
        "probe_top": {r["text"]: r["top"] for r in probes["texts"]},
        "warnings": probes["warnings"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/cranfield-exp")
    ap.add_argument("--config", default=str(ROOT / "configs" / "cranfield-finetune.toml"))
    ap.add_argument("--variants", default="base,trained,no-flops")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    docs, queries, qrels = load_cranfield()
    assert len(docs) == 1400 and len(queries) == 225, (len(docs), len(queries))
    pairs = work / "pairs.jsonl"
    n = make_pairs(docs, pairs)
    print(f"{n} title->abstract pairs", flush=True)
    base = str(SHARED / "models" / "splade-tiny")
    results = {}
    for variant in args.variants.split(","):
        if variant == "base":
            model_dir = base
        else:
            model_dir = str(work / variant)
            cmd = [sys.executable, "-c", "from repro.cli import main; main()", "train", "--config", args.config,
                   "--base-model", base, "--data", str(pairs), "--output", model_dir, "--force"]
            if variant == "no-flops":
                cmd += ["--lambda-q", "0", "--lambda-d", "0"]
            print("$", " ".join(cmd[3:]), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        results[variant] = evaluate(model_dir, docs, queries, qrels)
        print(variant, json.dumps(results[variant]), flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
