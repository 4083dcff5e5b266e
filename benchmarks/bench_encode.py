"""Document encoding throughput on CPU: repro's SpladeEncoder vs sentence-transformers' SparseEncoder.

Same texts (MS MARCO passage lengths, see common.msmarco_like_texts), same model, same max length,
same threads, one process, interleaved repetitions; medians and the ratio. Also checks that the
quantized (x100) vectors are identical to sentence-transformers' after removing special tokens,
and counts how many quantized weights bf16 moves. The mixed head is also timed with torch's bf16
amax as its screen's max, in place of the int16 bit patterns (mixed_head.bits_max) it uses. The hardware limit: model FLOPs per text
(common.flops_per_text) x docs/s, against the FLOP/s of one matmul of BERT-base's FFN shape
measured in the same run with torch's BLAS and with oneDNN (common.gemm_ceiling), the faster being
the practical roof on this CPU. Each repro path is also timed with BLAS linear layers
(REPRO_CPU_LINEAR=blas, repro.encode.cpu_linear), torch's default and what sentence-transformers runs.

    .venv/bin/python benchmarks/bench_encode.py                 # splade-tiny + BERT-base-sized
    .venv/bin/python benchmarks/bench_encode.py --smoke         # seconds, for tests
    .venv/bin/python benchmarks/bench_encode.py --whole-process --passages ../shared/data/msmarco-passage-dl20-pool/corpus.jsonl
    .venv/bin/python benchmarks/bench_encode.py --fp32-emulation   # AMX: fp32 emulated by bf16 parts vs fp32
    .venv/bin/python benchmarks/bench_encode.py --linear-kernels   # torch's BLAS vs oneDNN, the encoders' shapes

``--whole-process`` measures what a user runs: `repro encode` as a command (start-up imports,
reading, tokenization, encoding, JSON shards, manifest hashing) against a Python process that loads
the same folder with sentence-transformers, reads the same corpus, calls `encode_document` and
writes the decoded vectors as JSON lines; wall time and peak memory of each process, interleaved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def build_st(path: Path, max_length: int):
    """SparseEncoder from a plain MLM folder, offline: Transformer(fill-mask) + SpladePooling(max)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    try:
        from sentence_transformers.sentence_transformer.modules import Transformer
    except ImportError:  # pragma: no cover - older layouts
        from sentence_transformers.sparse_encoder.modules import MLMTransformer as Transformer
    try:
        mlm = Transformer(str(path), transformer_task="fill-mask", max_seq_length=max_length)
    except TypeError:
        from sentence_transformers.sparse_encoder.modules import MLMTransformer

        mlm = MLMTransformer(str(path), max_seq_length=max_length)
    return SparseEncoder(modules=[mlm, SpladePooling(pooling_strategy="max")], device="cpu")


def st_vectors(model, texts: list[str], batch_size: int, factor: int = 100) -> list[dict[str, int]]:
    import torch

    emb = model.encode_document(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False)
    emb = emb.coalesce() if emb.is_sparse else emb.to_sparse().coalesce()
    rows, cols = emb.indices()
    q = torch.round(emb.values().float() * factor).to(torch.int32)
    out: list[dict[int, int]] = [{} for _ in texts]
    for r, c, v in zip(rows.tolist(), cols.tolist(), q.tolist()):
        if v > 0:
            out[r][c] = v
    return out


def compare(ours: list[dict[str, int]], theirs: list[dict[int, int]], vocab: list[str], special: set[int]) -> dict[str, int]:
    """count_differences against vectors keyed by token id, special tokens dropped from theirs."""
    return common.count_differences((a, {vocab[c]: v for c, v in b.items() if c not in special}) for a, b in zip(ours, theirs))


def bench_model(name: str, path: Path, texts: list[str], *, max_length: int, batch_size: int, reps: int,
                threads: int, bf16: bool, chunks: list[int] | None = None) -> dict:
    import torch

    from repro.encode.torch_encoder import SpladeEncoder

    torch.set_num_threads(threads)
    ours = SpladeEncoder(str(path), max_length=max_length, device="cpu", threads=threads, precision="fp32")
    mixed = SpladeEncoder(str(path), max_length=max_length, device="cpu", threads=threads, precision="mixed")
    with common.cpu_linear_kernel("blas"):  # torch's default (MKL) linear layers, what ST runs: the same-run baseline
        mixed_blas = SpladeEncoder(str(path), max_length=max_length, device="cpu", threads=threads, precision="mixed")
    ours_bf16 = SpladeEncoder(str(path), max_length=max_length, device="cpu", threads=threads, dtype="bfloat16") if bf16 else None
    st = build_st(path, max_length)
    special = set(ours.special_ids)
    # warm-up (first-call allocations, lazy inits), then the equality checks on the full set
    ours.encode(texts[:batch_size], batch_size=batch_size)
    st_vectors(st, texts[:batch_size], batch_size)
    v_ours = ours.encode(texts, batch_size=batch_size)
    v_st = st_vectors(st, texts, batch_size)
    check = compare(v_ours, v_st, ours.vocab, special)
    v_mixed = mixed.encode(texts, batch_size=batch_size)
    mixed_check = common.count_differences(zip(v_mixed, v_ours))
    kernel_check = common.count_differences(zip(mixed_blas.encode(texts, batch_size=batch_size), v_mixed))
    candidates = {
        "sentence-transformers encode_document": lambda: st_vectors(st, texts, batch_size),
        "repro SpladeEncoder fp32": lambda: ours.encode(texts, batch_size=batch_size),
        "repro SpladeEncoder mixed (bf16 screen + exact fp32)": lambda: mixed.encode(texts, batch_size=batch_size),
        "repro SpladeEncoder mixed, BLAS linear layers (REPRO_CPU_LINEAR=blas)":
            lambda: mixed_blas.encode(texts, batch_size=batch_size),
    }
    if mixed.mixed is not None:  # the screen's max by torch's bf16 amax instead of int16 bit patterns
        from repro.encode.mixed_head import segment_max

        def amax_screen():
            mixed.mixed.screen_max = segment_max  # an instance attribute over the method
            try:
                return mixed.encode(texts, batch_size=batch_size)
            finally:
                del mixed.mixed.screen_max
        candidates["repro SpladeEncoder mixed, screen max by torch.amax (bf16)"] = amax_screen
    for chunk in chunks or []:  # other logits chunk sizes (SpladeEncoder.[MIXED_]CHUNK_TOKENS), same encoders
        for label, enc, attr in (("fp32", ours, "CHUNK_TOKENS"), ("mixed", mixed, "MIXED_CHUNK_TOKENS")):
            def run(enc=enc, chunk=chunk, attr=attr):
                setattr(enc, attr, chunk)  # an instance attribute over the class default
                try:
                    return enc.encode(texts, batch_size=batch_size)
                finally:
                    delattr(enc, attr)
            candidates[f"repro SpladeEncoder {label}, logits chunk {chunk} tokens"] = run
    if ours.encoder is not None:
        candidates[f"(floor) transformer encoder forward alone, fp32, {ours.linear_kernel}"] = \
            lambda: encoder_only(ours, texts, batch_size)
        candidates["(floor) transformer encoder forward alone, fp32, blas"] = lambda: encoder_only(mixed_blas, texts, batch_size)
    bf16_check = None
    if ours_bf16 is not None:
        v_bf = ours_bf16.encode(texts, batch_size=batch_size)
        bf16_check = common.count_differences(zip(v_bf, v_ours))
        candidates["repro SpladeEncoder bf16 autocast"] = lambda: ours_bf16.encode(texts, batch_size=batch_size)
    times = common.interleaved(candidates, reps)
    n = len(texts)
    base = common.median(times["sentence-transformers encode_document"])
    ids, _ = ours.tokenize(texts)
    flops = common.flops_per_text(ours.model.config, sum(map(len, ids)) / n, sum(len(x) ** 2 for x in ids) / n)
    roofs = {"float32 blas": common.gemm_ceiling("float32", threads),
             "float32 onednn": common.gemm_ceiling("float32", threads, kernel="onednn")}
    roof = {"float32": max(roofs.values())}  # the faster kernel's rate: the roof any fp32 path could reach
    if bf16:
        roof["bfloat16"] = roofs["bfloat16"] = common.gemm_ceiling("bfloat16", threads)
    rows = []
    for label, ts in times.items():
        med = common.median(ts)
        dtype = "bfloat16" if "bf16 autocast" in label else "float32"
        if label.startswith("(floor)"):
            rows.append({"model": name, "method": label, "median_s": med, "docs_per_s": n / med, "speedup": base / med,
                         "reps": len(ts), "gflops": float("nan"), "of_gemm_roof": float("nan")})
            continue
        rows.append({"model": name, "method": label, "median_s": med, "docs_per_s": n / med, "speedup": base / med,
                     "reps": len(ts), "gflops": flops * n / med / 1e9, "of_gemm_roof": flops * n / med / roof[dtype]})
    return {"model": name, "texts": n, "rows": rows, "st_equality": check, "bf16_vs_fp32": bf16_check,
            "mixed_vs_fp32": mixed_check, "onednn_vs_blas": kernel_check, "chunk_tokens": ours.CHUNK_TOKENS, "mixed_chunk_tokens": ours.MIXED_CHUNK_TOKENS,
            "gflop_per_text": flops / 1e9, "gemm_roof_gflops": {k: v / 1e9 for k, v in roofs.items()}}


def encoder_only(encoder, texts: list[str], batch_size: int) -> None:
    """The transformer encoder's forward alone, on the same length-sorted batches: the part of the
    work that every implementation runs the same way, so the floor under any head-side speed-up."""
    import torch

    ids, _ = encoder.tokenize(texts)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch_size):
        batch = [ids[i] for i in order[start : start + batch_size]]
        width = max(map(len, batch))
        tokens = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros_like(tokens)
        for row, seq in enumerate(batch):
            tokens[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        with torch.inference_mode():
            encoder.encoder(input_ids=tokens, attention_mask=mask)


_ST_PROCESS = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[4]))
from sentence_transformers import SparseEncoder
from sentence_transformers.sparse_encoder.modules import SpladePooling
from sentence_transformers.sentence_transformer.modules import Transformer
mlm = Transformer(sys.argv[1], transformer_task="fill-mask", max_seq_length=int(sys.argv[5]))
model = SparseEncoder(modules=[mlm, SpladePooling(pooling_strategy="max")], device="cpu")
docs = [line.rstrip("\\n").split("\\t", 1) for line in open(sys.argv[2], encoding="utf-8")]
emb = model.encode_document([t for _, t in docs], batch_size=int(sys.argv[6]), convert_to_sparse_tensor=True)
with open(sys.argv[3], "w", encoding="utf-8") as out:
    for (doc_id, text), row in zip(docs, emb):
        vec = {tok: int(round(w * 100)) for tok, w in model.decode(row) if round(w * 100) > 0}
        out.write(json.dumps({"id": doc_id, "contents": text, "vector": vec}) + "\\n")
"""


_PHASES_PROCESS = """
import json, sys, time
t = [time.perf_counter()]
from repro.encode.torch_encoder import SpladeEncoder
from repro.formats.collection import record_line
from repro.formats.corpus import iter_docs
from repro.manifest import sha256_file
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer
t.append(time.perf_counter())
model, corpus, out, threads, max_length, batch, precision = sys.argv[1:8]
enc = SpladeEncoder(model, max_length=int(max_length), device="cpu", threads=int(threads), precision=precision)
t.append(time.perf_counter())
docs = list(iter_docs(corpus))
t.append(time.perf_counter())
ids, _ = enc.tokenize([d.text for d in docs])
t.append(time.perf_counter())
vectors = enc.encode_ids(ids, 100.0, int(batch))
t.append(time.perf_counter())
with open(out, "w", encoding="utf-8") as handle:
    for d, v in zip(docs, vectors):
        handle.write(record_line(d.id, d.text, v) + "\\n")
t.append(time.perf_counter())
sha256_file(out)
t.append(time.perf_counter())
names = ["imports (repro, torch, transformers)", "model load", "corpus read", "tokenization",
         "model (encoder + head + quantization)", "JSON lines written", "shard hashing (sha256)"]
print(json.dumps({n: b - a for n, a, b in zip(names, t, t[1:])}))
"""


def _compare_outputs(collection: Path, st_file: Path, model: Path, max_length: int) -> dict:
    """Weights of `repro encode`'s collection vs the ST process's vectors (specials dropped from ST's),
    and how far from a .5 boundary each differing weight's fp32 value lies (``boundary_gap``)."""
    import json

    from transformers import AutoTokenizer

    from repro.formats.collection import iter_vectors

    special = set(AutoTokenizer.from_pretrained(str(model)).all_special_tokens)
    ours = dict(iter_vectors(collection))
    theirs, texts = {}, {}
    for line in st_file.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        theirs[record["id"]] = {t: w for t, w in record["vector"].items() if t not in special}
        texts[record["id"]] = record["contents"]
    counts = common.count_differences((ours.get(doc_id, {}), vector) for doc_id, vector in theirs.items())
    differing = [(d, t) for d, vec in theirs.items() for t in set(vec) | set(ours.get(d, {}))
                 if vec.get(t, 0) != ours.get(d, {}).get(t, 0)]
    return {**counts, "documents": len(theirs), "missing_documents": len(set(theirs) - set(ours)),
            "boundary_gap": _boundary_gap(model, max_length, texts, differing)}


def _boundary_gap(model: Path, max_length: int, texts: dict[str, str], differing: list[tuple[str, str]]) -> float | None:
    """Largest |w x factor - (k + .5)| over the differing (document, token) weights (None if none
    differ), w recomputed by repro's fp32 head for those documents alone (so within an ulp or so of
    what either run wrote): a flip of rounding can only happen that close to a .5 boundary."""
    if not differing:
        return None
    from repro import defaults
    from repro.encode.torch_encoder import SpladeEncoder

    encoder = SpladeEncoder(str(model), max_length=max_length, device="cpu", precision="fp32")
    docs = sorted({d for d, _ in differing})
    row = {d: i for i, d in enumerate(docs)}
    weights = encoder.encode_float([texts[d] for d in docs]) * defaults.DOC_FACTOR
    column = {tok: i for i, tok in enumerate(encoder.vocab)}
    return max(abs(float(weights[row[d], column[t]]) % 1 - 0.5) for d, t in differing)


def _paired_vectors(first: Path, second: Path) -> list[tuple[dict[str, int], dict[str, int]]]:
    """The two collections' vectors, document by document (a document missing from one: empty)."""
    from repro.formats.collection import iter_vectors

    a, b = dict(iter_vectors(first)), dict(iter_vectors(second))
    return [(a.get(d, {}), b.get(d, {})) for d in sorted(set(a) | set(b))]


def whole_process(args) -> int:
    """`repro encode` vs a sentence-transformers process on the same passages: wall time and peak RSS."""
    import json
    import os
    import shutil
    import statistics
    import subprocess
    import time

    from repro.encode import cpu_linear

    model = (common.tiny_model(args.work) if args.model is None else
             common.bert_base_splade(args.work) if args.model == "base" else Path(args.model))
    work = Path(args.work) / "whole-process"
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.tsv"
    passages = 0  # what the file holds, if fewer than --texts
    with open(args.passages, encoding="utf-8") as src, open(corpus, "w", encoding="utf-8") as out:
        for line in src:
            if passages >= args.texts:
                break
            record = json.loads(line)
            out.write(f"{record['id']}\t{' '.join(record['contents'].split())}\n")
            passages += 1
    repro_bin = Path(sys.executable).with_name("repro")
    blas = "repro encode, REPRO_CPU_LINEAR=blas"  # torch's default linear layers: the oneDNN gain, same run
    runs = {"repro encode": [], blas: [], "sentence-transformers": []}
    outputs = {"repro encode": work / "out-repro", blas: work / "out-repro-blas",
               "sentence-transformers": work / "out-sentence-transformers"}
    for rep in range(args.reps):
        for name in runs:
            out = outputs[name]
            shutil.rmtree(out, ignore_errors=True)
            if name != "sentence-transformers":
                cmd = [str(repro_bin), "encode", str(corpus), "-m", str(model), "-o", str(out), "--max-length",
                       str(args.max_length), "--batch-size", str(args.batch_size), "--threads", str(args.threads), "-q",
                       "--precision", args.precision]
            else:
                cmd = [sys.executable, "-c", _ST_PROCESS, str(model), str(corpus), str(out), str(args.threads),
                       str(args.max_length), str(args.batch_size)]
            env = {k: v for k, v in os.environ.items() if k != cpu_linear.ENV}  # repro's default: oneDNN
            if name == blas:
                env[cpu_linear.ENV] = "blas"
            with common.PeakWatcher() as peak:
                started = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                seconds = time.perf_counter() - started
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            runs[name].append((seconds, peak.children_mib))
    check = _compare_outputs(outputs["repro encode"], outputs["sentence-transformers"], model, args.max_length)
    kernels = common.count_differences(_paired_vectors(outputs["repro encode"], outputs[blas]))
    phases_out = work / "phases.jsonl"
    phases = subprocess.run([sys.executable, "-c", _PHASES_PROCESS, str(model), str(corpus), str(phases_out),
                             str(args.threads), str(args.max_length), str(args.batch_size), args.precision],
                            capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if phases.returncode != 0:
        print(phases.stderr[-2000:], file=sys.stderr)
        return 1
    phase_times = json.loads(phases.stdout.strip().splitlines()[-1])
    base = statistics.median(s for s, _ in runs["sentence-transformers"])
    base_mem = statistics.median(m for _, m in runs["sentence-transformers"])
    rows = []
    for name, values in runs.items():
        wall = statistics.median(s for s, _ in values)
        mem = statistics.median(m for _, m in values)
        rows.append([name, f"{wall:.1f}", f"{passages / wall:.1f}", f"{base / wall:.2f}x", f"{mem:.0f}",
                     f"{mem / base_mem:.2f}x"])
    table = common.markdown_table(["process", "wall s (median)", "docs/s", "speed vs ST", "peak RSS MiB",
                                   "memory vs ST"], rows)
    phase_total = sum(phase_times.values())
    phase_rows = [[name, sec, f"{100 * sec / phase_total:.1f}%"] for name, sec in phase_times.items()]
    phase_rows.append(["all phases", phase_total, "100%"])
    phase_table = common.markdown_table(["phase of `repro encode` (one fresh process, the same functions, run "
                                         "once after the timed runs)", "s", "share"], phase_rows)
    gap = check["boundary_gap"]
    where = ("" if gap is None else f"; each one's fp32 value x100 within {gap:.1e} of a .5 boundary, where the "
             "order of fp32 summation (or sentence-transformers' rounding of w x 100 in double, ours in fp32) decides")
    note = (f"Vectors: {check['differ']} of {check['weights']} integer weights differ between the two outputs "
            f"(max |diff| {check['max_abs_diff']}{where}; {check['documents']} documents, {check['missing_documents']} "
            f"missing; special tokens dropped from sentence-transformers' output). `repro encode` ran with "
            f"--precision {args.precision}; threads {args.threads}, max length {args.max_length}, batch {args.batch_size}, "
            f"{args.reps} interleaved repetitions. oneDNN vs BLAS linear layers (the two repro rows): "
            f"{kernels['differ']} of {kernels['weights']} weights differ (max |diff| {kernels['max_abs_diff']}).")
    print(table + "\n\n" + phase_table + "\n\n" + note)
    common.publish(args, f"Whole-process encoding, {passages} real MS MARCO passages ({model.name})",
                   table + "\n\n" + phase_table + "\n\n" + note)
    return 0 if not check["missing_documents"] else 1


def bf16_split(x, parts: int) -> list:
    """``x`` (fp32) as ``parts`` bf16-representable fp32 tensors that sum to it (to 8 bits each)."""
    out, rest = [], x
    for _ in range(parts):
        part = rest.bfloat16().float()
        out.append(part)
        rest = rest - part
    return out


def fp32_emulation(args) -> int:
    """Can AMX make the encoder's fp32 matmuls faster with fp32 accuracy? The encoder (not the head)
    bounds the BERT-base-sized ratio, and its GEMMs already run at the fp32 roof. The one route
    left is fp32 emulated by bf16 pieces on AMX: split A and B into bf16 parts and sum the part
    products with fp32 accumulation (3 products: ~16 bits; 6 products: ~fp32's 24 bits). torch on
    CPU has no bf16 x bf16 -> fp32 matmul, so the products go through oneDNN's bf16 fp-math mode
    (fp32 tensors in and out, bf16 multiplies, fp32 accumulation), one GEMM over the concatenated
    parts. Timed on BERT-base's FFN shape against plain fp32, error against float64."""
    import torch

    torch.set_num_threads(args.threads)
    m, k, n = 2048, 768, 3072
    torch.manual_seed(0)
    a, b = torch.randn(m, k), torch.randn(k, n) / k**0.5
    exact = a.double() @ b.double()
    a_parts, b_parts = bf16_split(a, 3), bf16_split(b, 3)
    # (i, j) part products kept: i + j <= 1 (3 products, about 16 bits) or i + j <= 2 (6 products:
    # what is dropped falls below fp32's last bit)
    pairs = {3: [(0, 0), (0, 1), (1, 0)], 6: [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (2, 0)]}
    cases = {"fp32 (MKL, what the encoder runs)": (a, b, "ieee"),
             # bf16 in and out: the AMX speed a native bf16 x bf16 -> fp32 GEMM could reach per product
             "bf16 tensors, bf16 output (native AMX, for scale)": (a.bfloat16(), b.bfloat16(), "ieee"),
             "bf16 fp-math, 1 product (bf16 accuracy)": (a, b, "bf16")}
    for count, keep in pairs.items():
        cases[f"bf16 fp-math, {count} part products ({'fp32' if count == 6 else 'about 16-bit'} accuracy)"] = (
            torch.cat([a_parts[i] for i, _ in keep], 1).contiguous(),
            torch.cat([b_parts[j] for _, j in keep], 0).contiguous(), "bf16")
    reference = next(iter(cases))  # plain fp32: the speed and the error every other case is read against
    backend = torch.backends.mkldnn.matmul
    before = backend.fp32_precision

    def product(x, y, mode: str):
        backend.fp32_precision = mode  # a flag read per call: microseconds against a GEMM of milliseconds
        return x @ y

    try:
        got = {label: product(*case) for label, case in cases.items()}  # also the warm-up
        errors = {label: float((p.double() - exact).abs().max() / exact.abs().max()) for label, p in got.items()}
        one, fp32 = errors["bf16 fp-math, 1 product (bf16 accuracy)"], errors[reference]
        if one < 100 * fp32:  # oneDNN kept fp32 multiplies (seen on an AMD EPYC with avx512_bf16, no AMX)
            print(f"oneDNN's bf16 fp-math mode was not applied on this CPU (1 product: error {one:.1e}, "
                  f"fp32 {fp32:.1e}): nothing to measure, nothing published", file=sys.stderr)
            return 1
        times = common.interleaved({label: lambda case=case: product(*case) for label, case in cases.items()},
                                   args.reps * 3)
    finally:
        backend.fp32_precision = before
    medians = {label: common.median(times[label]) for label in errors}
    rows = [[label, 1000 * sec, medians[reference] / sec, f"{errors[label]:.1e}"] for label, sec in medians.items()]
    table = common.markdown_table(["GEMM 2048x768 @ 768x3072", "median ms", "speed vs fp32", "max error / largest entry"], rows)
    print(table)
    common.publish(args, "Exact fp32 through AMX? fp32 emulated by bf16 parts", table)
    return 0


def linear_kernels(args) -> int:
    """torch's BLAS (MKL) against oneDNN (repro.encode.cpu_linear) on the encoders' product shapes:
    GFLOP/s of each, interleaved, and each one's max error against float64 relative to the largest
    entry; also whether oneDNN gives a row the same bits when it comes with fewer rows."""
    import torch

    from repro.encode.cpu_linear import onednn_works, prepared, product

    if not onednn_works():
        print("oneDNN's linear op is not usable in this torch: nothing to compare", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shapes = {"BERT-base attention projection, 4096 tokens": (4096, 768, 768),
              "BERT-base FFN in, 4096 tokens": (4096, 768, 3072),
              "BERT-base FFN out, 4096 tokens": (4096, 3072, 768),
              "BERT-base FFN in, one 24-token query": (24, 768, 3072),
              "BERT-base MLM decoder, 128 token rows": (128, 768, 30522),
              "splade-tiny FFN in, 4096 tokens": (4096, 128, 512),
              "splade-tiny MLM decoder, 128 token rows": (128, 128, 30522)}
    rows, same_bits = [], True
    for label, (m, k, n) in shapes.items():
        x, w = torch.randn(m, k), torch.randn(n, k) / k**0.5
        packed = {kernel: prepared(w, kernel) for kernel in ("blas", "onednn")}
        with torch.inference_mode():
            exact = x.double() @ w.double().t()
            errors = {kern: float((product(x, packed[kern], kern).double() - exact).abs().max() / exact.abs().max())
                      for kern in packed}
            fewer = product(x[: max(1, m // 3)], packed["onednn"], "onednn")
            same_bits &= bool(torch.equal(fewer, product(x, packed["onednn"], "onednn")[: fewer.shape[0]]))
            times = common.interleaved({kern: lambda kern=kern: product(x, packed[kern], kern) for kern in packed},
                                       args.reps * 3)
        rate = {kern: 2 * m * k * n / common.median(ts) / 1e9 for kern, ts in times.items()}
        rows.append([label, f"{m}x{k} @ {k}x{n}", rate["blas"], rate["onednn"], rate["onednn"] / rate["blas"],
                     f"{errors['blas']:.1e}", f"{errors['onednn']:.1e}"])
    table = common.markdown_table(["product", "shape", "BLAS GFLOP/s", "oneDNN GFLOP/s", "oneDNN vs BLAS",
                                   "BLAS max error", "oneDNN max error"], rows)
    note = (f"{args.threads} threads, {args.reps * 3} interleaved repetitions, medians; error: max |product - float64| "
            f"/ largest entry. oneDNN gives a row the same bits with a third of the rows: {same_bits}. "
            f"Machine: {common.machine()}.")
    print(table + "\n\n" + note)
    common.publish(args, "fp32 linear layers: torch's BLAS vs oneDNN", table + "\n\n" + note)
    return 0 if same_bits else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=400, help="texts for splade-tiny")
    parser.add_argument("--base-texts", type=int, default=48, help="texts for the BERT-base-sized model (0: skip)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--chunk-tokens", type=int, nargs="*", default=[],
                        help="also time fp32 and mixed with these logits chunk sizes (rows per tokens x vocab product)")
    parser.add_argument("--whole-process", action="store_true", help="time `repro encode` vs an ST process (see above)")
    parser.add_argument("--passages", type=Path, default=None, help="JSONL passages for --whole-process")
    parser.add_argument("--model", default=None, help="model folder for --whole-process (default: splade-tiny; "
                        "'base': the BERT-base-sized one)")
    parser.add_argument("--precision", default="auto", help="--whole-process: repro encode's --precision")
    parser.add_argument("--fp32-emulation", action="store_true",
                        help="only time fp32 emulated by bf16 parts on AMX against plain fp32 (see fp32_emulation)")
    parser.add_argument("--linear-kernels", action="store_true",
                        help="only time torch's BLAS against oneDNN on the encoders' product shapes (see linear_kernels)")
    common.add_run_options(parser)
    args = parser.parse_args(argv)
    if args.fp32_emulation:
        return fp32_emulation(args)
    if args.linear_kernels:
        if args.smoke:
            args.reps = 1
        return linear_kernels(args)
    if args.whole_process:
        if args.passages is None:
            parser.error("--whole-process needs --passages FILE.jsonl")
        if args.smoke:
            args.texts, args.reps = 20, 1
        return whole_process(args)
    if args.smoke:
        args.texts, args.base_texts, args.reps = 24, 0, 1
    from transformers import AutoTokenizer

    tiny = common.tiny_model(args.work)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny))
    texts, lengths = common.msmarco_like_texts(max(args.texts, args.base_texts), tokenizer)
    print(f"machine: {common.machine()}")
    print(f"texts: {len(texts)} (wordpieces: mean {lengths['mean']:.1f}, median {lengths['median']}, "
          f"p10 {lengths['p10']}, p90 {lengths['p90']}, max {lengths['max']})")
    results = [bench_model("splade-tiny" if tiny == common.SPLADE_TINY else "tiny (random)", tiny, texts[: args.texts],
                           max_length=args.max_length, batch_size=args.batch_size, reps=args.reps,
                           threads=args.threads, bf16=not args.no_bf16, chunks=args.chunk_tokens)]
    if args.base_texts:
        base = common.bert_base_splade(args.work)
        results.append(bench_model("BERT-base-sized (random)", base, texts[: args.base_texts], max_length=args.max_length,
                                   batch_size=args.batch_size, reps=args.reps, threads=args.threads,
                                   bf16=not args.no_bf16, chunks=args.chunk_tokens))
    rows = [[r["model"], r["method"], r["median_s"], r["docs_per_s"], r["speedup"], r["gflops"],
             f"{100 * r['of_gemm_roof']:.0f}%"] for res in results for r in res["rows"]]
    table = common.markdown_table(["model", "method", "median s", "docs/s", "vs ST", "GFLOP/s", "of GEMM roof"], rows)
    print(table)
    notes: list[str] = []
    for res in results:
        roofs = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in res["gemm_roof_gflops"].items())
        notes.append(f"{res['model']}: {res['gflop_per_text']:.2f} GFLOP per text; measured matmul roof "
                     f"({args.threads} threads): {roofs}")
        eq = res["st_equality"]
        notes.append(f"{res['model']}: vs sentence-transformers (x100 ints, specials dropped): {eq['differ']} of "
                     f"{eq['weights']} weights differ (max |diff| {eq['max_abs_diff']})")
        mx = res["mixed_vs_fp32"]
        notes.append(f"{res['model']}: mixed vs fp32 (ours): {mx['differ']} of {mx['weights']} weights differ "
                     f"(max |diff| {mx['max_abs_diff']}); logits chunk {res['chunk_tokens']} tokens "
                     f"(fp32), {res['mixed_chunk_tokens']} (mixed)")
        kc = res["onednn_vs_blas"]
        notes.append(f"{res['model']}: mixed, oneDNN vs BLAS linear layers: {kc['differ']} of {kc['weights']} weights "
                     f"differ (max |diff| {kc['max_abs_diff']})")
        if res["bf16_vs_fp32"]:
            bf = res["bf16_vs_fp32"]
            notes.append(f"{res['model']}: bf16 vs fp32: {bf['differ']} of {bf['weights']} weights differ "
                         f"(max |diff| {bf['max_abs_diff']})")
    print("\n".join(notes))
    common.publish(args, "Document encoding on CPU", table + "\n\n" + "\n".join(f"- {n}" for n in notes))
    if args.json:
        common.save_json(args.json, {"machine": common.machine(), "date": common.today(), "lengths": lengths,
                                     "results": results, "args": {k: str(v) for k, v in vars(args).items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
