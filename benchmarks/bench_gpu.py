"""GPU throughput: BERT-base SPLADE encoding (bf16) and training steps, with FLOP accounting.

Encoding: repro's SpladeEncoder (as `repro encode` uses it: length-sorted batches, dynamic
padding, head on real tokens only) on MS MARCO-like passage lengths; passages/s, the projected time
for MS MARCO's 8.8M passages, FLOPs per passage and the fraction of the GPU's dense bf16 peak.

FLOPs per passage (forward only), with T real tokens, P encoder parameters without embeddings,
H hidden size, V vocabulary, L layers:
    encoder  2 * P * T  +  4 * L * T^2 * H  (the matmuls; attention scores and weighted sum)
    MLM head 2 * T * (H*H + H*V)            (transform dense + decoder, at real tokens only)
Peak: H100/H200 SXM dense bf16 989 TFLOP/s (without sparsity); override with --peak-tflops.

Training: sentence-transformers' SparseEncoderTrainer, SpladeLoss(SparseMarginMSELoss), batch 128,
bf16, triplets/s with the full model and with the encoder frozen (only the MLM head trains; what
`repro train --freeze-encoder` does), random BERT-base weights (same cost as trained ones).

    python benchmarks/bench_gpu.py            # on a GPU: < 8 minutes, prints a table
    python benchmarks/bench_gpu.py --smoke    # CPU, tiny sizes: checks that the script runs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

MSMARCO_PASSAGES = 8_841_823


def bench_encoding(model: Path, texts: list[str], device: str, dtype: str, batch_size: int, reps: int, peak: float,
                   precision: str = "fp32") -> tuple[dict, list[dict[str, int]]]:
    """Throughput of one encoder setting, and its vectors (the last repetition's) for comparison."""
    import torch

    from repro.encode.torch_encoder import SpladeEncoder

    enc = SpladeEncoder(str(model), max_length=256, device=device, dtype=dtype, precision=precision)
    ids, _ = enc.tokenize(texts)
    enc.encode_ids(ids[: batch_size * 2], factor=100, batch_size=batch_size)  # warm-up
    secs, vectors = [], []
    for _ in range(reps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        vectors = enc.encode_ids(ids, factor=100, batch_size=batch_size)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        secs.append(time.perf_counter() - start)
    med = common.median(secs)
    lengths = [len(x) for x in ids]
    mean_t = sum(lengths) / len(lengths)
    mean_t2 = sum(t * t for t in lengths) / len(lengths)
    flops = common.flops_per_text(enc.model.config, mean_t, mean_t2)
    rate = len(texts) / med
    return {"passages_per_s": rate, "hours_8.8M": MSMARCO_PASSAGES / rate / 3600, "gflop_per_passage": flops / 1e9,
            "achieved_tflops": flops * rate / 1e12, "fraction_of_peak": flops * rate / (peak * 1e12),
            "mean_tokens": mean_t, "batch_size": batch_size, "precision": enc.precision}, vectors


def bench_training(model: Path, texts: list[str], queries: list[str], device: str, batch: int, steps: int,
                   freeze: bool, bf16: bool, work: Path) -> dict:
    import torch
    from datasets import Dataset
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sentence_transformer.modules import Transformer
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.losses import SparseMarginMSELoss, SpladeLoss
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    mlm = Transformer(str(model), transformer_task="fill-mask", max_seq_length=256)
    st = SparseEncoder(modules=[mlm, SpladePooling(pooling_strategy="max")], device=device)
    if freeze:
        for name, param in st.named_parameters():
            if ".cls." not in name and "predictions" not in name:
                param.requires_grad_(False)
    n = batch * (steps + 2)
    rows = {"query": [queries[i % len(queries)] for i in range(n)],
            "positive": [texts[i % len(texts)] for i in range(n)],
            "negative": [texts[(i * 7 + 3) % len(texts)] for i in range(n)],
            "label": [float((i % 11) - 5) for i in range(n)]}
    loss = SpladeLoss(st, loss=SparseMarginMSELoss(st), query_regularizer_weight=5e-5, document_regularizer_weight=3e-5)
    times: list[float] = []

    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)

    targs = SparseEncoderTrainingArguments(
        output_dir=str(work / "gpu-train"), per_device_train_batch_size=batch, max_steps=steps + 2, bf16=bf16,
        learning_rate=2e-5, logging_steps=1000, save_strategy="no", report_to=[], dataloader_num_workers=0,
        use_cpu=not device.startswith("cuda"))
    trainer = SparseEncoderTrainer(model=st, args=targs, train_dataset=Dataset.from_dict(rows), loss=loss, callbacks=[Clock()])
    trainer.train()
    steady = times[2:] or times
    step = common.median(steady)
    return {"step_s": step, "triplets_per_s": batch / step, "steps": len(steady)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train-batch", type=int, default=128)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    common.add_run_options(parser, smoke_help="CPU, tiny model and sizes")
    args = parser.parse_args(argv)
    import torch
    from transformers import AutoTokenizer

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if args.smoke:
        model = common.bert_base_splade(args.work, layers=2, hidden=64, heads=2, intermediate=128)
        args.passages, args.batch_size, args.train_batch, args.train_steps, args.reps = 32, 16, 4, 2, 1
    else:
        model = common.bert_base_splade(args.work)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    texts, lengths = common.msmarco_like_texts(args.passages, tokenizer)
    queries = common.real_queries(2000)
    dev = torch.cuda.get_device_name(0) if device == "cuda" else common.machine()
    print(f"device: {dev}; passages {len(texts)} (mean {lengths['mean']:.1f} wordpieces)")
    dtype = "bfloat16" if device == "cuda" else "float32"
    enc, v_fast = bench_encoding(model, texts, device, dtype, args.batch_size, args.reps, args.peak_tflops)
    rows = [["encode (repro SpladeEncoder, " + dtype + ")", f"{enc['passages_per_s']:.0f} passages/s",
             f"{enc['hours_8.8M']:.2f} h for 8.8M", f"{enc['gflop_per_passage']:.1f} GFLOP/passage",
             f"{enc['achieved_tflops']:.1f} TFLOP/s = {100 * enc['fraction_of_peak']:.1f}% of {args.peak_tflops:.0f}"]]
    # The exact mixed-precision head (fp32 encoder, bf16 screen + fp32 recomputation): same integer weights.
    mixed, v_mixed = bench_encoding(model, texts, device, "float32", args.batch_size, args.reps, args.peak_tflops,
                                    precision="mixed")
    plain, v_plain = bench_encoding(model, texts, device, "float32", args.batch_size, args.reps, args.peak_tflops,
                                    precision="fp32")
    for label, r in (("fp32", plain), ("--precision mixed (exact)", mixed)):
        rows.append([f"encode (repro SpladeEncoder, {label})", f"{r['passages_per_s']:.0f} passages/s",
                     f"{r['hours_8.8M']:.2f} h for 8.8M", f"{r['gflop_per_passage']:.1f} GFLOP/passage", ""])
    # The same passages' integer weights against plain fp32: mixed must match but for one-unit
    # flips at a .5 boundary; a bf16 model is not exact and its differences are what it costs.
    same = {"mixed": common.count_differences(zip(v_mixed, v_plain)),
            dtype: common.count_differences(zip(v_fast, v_plain))}
    notes = [f"{name} vs fp32 on the same {len(texts)} passages: {d['differ']} of {d['weights']} integer weights "
             f"differ (max |diff| {d['max_abs_diff']})"
             + (f"; its head ran as {mixed['precision']!r}" if name == "mixed" else "") for name, d in same.items()]
    train = {}
    for freeze in (False, True):
        r = bench_training(model, texts, queries, device, args.train_batch, args.train_steps, freeze,
                           bf16=device == "cuda", work=args.work)
        train["frozen" if freeze else "full"] = r
        rows.append([f"train MarginMSE batch {args.train_batch}{' --freeze-encoder' if freeze else ''}",
                     f"{r['triplets_per_s']:.0f} triplets/s", f"{r['step_s']:.3f} s/step", "", ""])
    table = common.markdown_table(["what", "throughput", "time", "work", "utilization"], rows)
    print(table)
    print("\n".join(notes))
    common.publish(args, f"GPU throughput on {dev}", table + "\n\n" + "\n".join(f"- {n}" for n in notes))
    if args.json:
        common.save_json(args.json, {"device": dev, "date": common.today(), "encode": enc, "encode_fp32": plain,
                                     "encode_mixed": mixed, "weights_vs_fp32": same, "train": train})
    return 0


if __name__ == "__main__":
    sys.exit(main())
