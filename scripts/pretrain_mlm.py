"""Build a plain (NOT SPLADE-trained) BERT masked-LM offline, to reproduce the punctuation-on-top fault.

Why: the report's frozen-encoder run starts from a plain pretrained MLM, and no such model is
available offline here (splade-tiny is already SPLADE-trained). This script MLM-pretrains a small
BERT with the real bert-base-uncased WordPiece vocabulary (the tokenizer of splade-tiny) on real
text that is on disk (Cranfield, CACM, MS MARCO dev queries, splade-toy passages), using
transformers' DataCollatorForLanguageModeling (15% masking, 80/10/10), for a fixed CPU time.

    .venv/bin/python scripts/pretrain_mlm.py --output /tmp/punct/mlm-scratch --init scratch --seconds 240
    .venv/bin/python scripts/pretrain_mlm.py --output /tmp/punct/mlm-head --init splade-tiny-encoder --seconds 180

`--init scratch`: random 2-layer BERT (hidden 128, same shape as splade-tiny).
`--init splade-tiny-encoder`: splade-tiny's embeddings + layers, with a freshly initialised MLM
head transform and a zero decoder bias (decoder weight tied to the embeddings), then plain MLM.
Writes a normal `BertForMaskedLM` folder (config, weights, tokenizer) and `pretrain-log.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("REPRO_SHARED", ROOT.parent / "shared"))


def corpus_texts() -> list[str]:
    """Real English text available offline (documents, abstracts, queries)."""
    data = SHARED / "data"
    texts: list[str] = []
    cran = (data / "cranfield" / "cran.all.1400").read_text(encoding="utf-8", errors="replace")
    for rec in re.split(r"^\.I .*$", cran, flags=re.M):
        body = re.split(r"^\.W\s*$", rec, flags=re.M)
        if len(body) > 1:
            texts.append(" ".join(body[1].split()))
    with open(data / "cacm" / "cacm.jsonl", encoding="utf-8") as fh:
        for line in fh:
            texts.append(" ".join(json.loads(line)["contents"].split()))
    for rel in ("msmarco-passage/topics.msmarco-passage.dev-subset.txt", "splade-toy/full_collection/raw.tsv",
                "splade-toy/dev_queries/raw.tsv", "splade-toy/val_queries/raw.tsv"):
        with open(data / rel, encoding="utf-8", errors="replace") as fh:
            texts += [line.rstrip("\n").split("\t")[-1] for line in fh if line.strip()]
    return [t for t in texts if t]


def blocks(tokenizer, texts: list[str], length: int) -> list[list[int]]:
    """Concatenate tokenised texts and cut into [CLS] ... [SEP] blocks of `length` tokens."""
    ids: list[int] = []
    for enc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids += enc + [tokenizer.sep_token_id]
    body = length - 2
    return [[tokenizer.cls_token_id] + ids[i:i + body] + [tokenizer.sep_token_id]
            for i in range(0, len(ids) - body, body)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", required=True)
    ap.add_argument("--init", choices=["scratch", "splade-tiny-encoder"], default="scratch")
    ap.add_argument("--seconds", type=float, default=240, help="CPU wall-clock budget for training")
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    tiny = SHARED / "models" / "splade-tiny"
    tokenizer = AutoTokenizer.from_pretrained(str(tiny), local_files_only=True)
    if args.init == "scratch":
        model = BertForMaskedLM(BertConfig.from_pretrained(str(tiny)))
    else:
        model = BertForMaskedLM.from_pretrained(str(tiny), local_files_only=True)
        fresh = BertForMaskedLM(model.config)
        model.cls.predictions.transform.load_state_dict(fresh.cls.predictions.transform.state_dict())
        with torch.no_grad():
            model.cls.predictions.bias.zero_()
    train = blocks(tokenizer, corpus_texts(), args.seq_len)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    model.train()
    log, step, t0, order = [], 0, time.perf_counter(), []
    while time.perf_counter() - t0 < args.seconds:
        if len(order) < args.batch_size:
            order = list(range(len(train)))
            random.shuffle(order)
        batch = collator([{"input_ids": train[order.pop()]} for _ in range(args.batch_size)])
        for group in opt.param_groups:  # linear warm-up over 30 steps, then constant
            group["lr"] = args.lr * min(1.0, (step + 1) / 30)
        # Same loss as BertForMaskedLM, but the vocabulary projection only at the masked positions
        # (15% of them): the 30k-way decoder is most of the CPU time.
        hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        picked = batch["labels"] != -100
        logits = model.cls(hidden[picked])
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"][picked])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        log.append(float(loss.detach()))
        if step % 25 == 0:
            print(f"step {step} loss(last 25) {sum(log[-25:]) / 25:.3f} {time.perf_counter() - t0:.0f}s", flush=True)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    summary = {"init": args.init, "steps": step, "blocks": len(train), "seq_len": args.seq_len,
               "batch_size": args.batch_size, "seconds": round(time.perf_counter() - t0, 1),
               "first_loss": round(log[0], 3), "final_loss_last50": round(sum(log[-50:]) / len(log[-50:]), 3)}
    (out / "pretrain-log.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
