"""The encoder base's rules (repro.encode.base) and the exactness of its fast paths.

- --max-length is clamped to the model's position embeddings and refused below 2, one line;
- SpladeEncoder._decoded_max, across its CHUNK_TOKENS boundary, is bit-identical to head-then-max on
  the same rows per product (and within 1e-6 of one product over the whole batch);
- sum pooling's chunked path equals the one-shot activation-then-sum on the whole batch;
- on the real splade-tiny (a plain MLM folder) and real MS MARCO passages, repro's vectors are
  round(x * 100) of SparseEncoder.encode_document / encode_query, up to counted .5-boundary flips;
- the model fingerprint (one function) keys the ONNX cache and the reproduction plan.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli

LONG = "the boundary layer on a flat plate in supersonic flow, with heat transfer and skin friction " * 60


def test_max_length_is_clamped_to_the_position_embeddings(tiny_mlm, tmp_path):
    from repro.encode.torch_encoder import SpladeEncoder

    enc = SpladeEncoder(str(tiny_mlm), max_length=100000, device="cpu")
    assert enc.max_length == 512
    ids, truncated = enc.tokenize([LONG])
    assert len(ids[0]) == 512 and truncated == [True] and len(enc.tokenizer(LONG)["input_ids"]) > 1000
    corpus = tmp_path / "c.tsv"
    corpus.write_text(f"d1\t{LONG}\nd2\tshort text\n", encoding="utf-8")
    for args in (["encode", str(corpus), "-m", str(tiny_mlm), "-o", str(tmp_path / "coll"), "-q"],
                 ["encode", str(corpus), "--queries", "-m", str(tiny_mlm), "-o", str(tmp_path / "q.tsv")]):
        result = CliRunner().invoke(cli, [*args, "--max-length", "100000"])
        assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "coll" / "manifest.json").read_text())
    assert manifest.get("model_max_length", manifest.get("counts", {}).get("model_max_length")) in (512, None)


def test_max_length_below_two_is_refused_in_one_line(tiny_mlm, tmp_path):
    corpus = tmp_path / "c.tsv"
    corpus.write_text("d1\thello world\n", encoding="utf-8")
    proc = subprocess.run([str(Path(sys.executable).with_name("repro")), "encode", str(corpus), "-m", str(tiny_mlm),
                           "-o", str(tmp_path / "coll"), "--max-length", "1"], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: --max-length 1: must be at least 2 tokens ([CLS] and [SEP])"]
    assert not (tmp_path / "coll").exists()
    from repro.encode.torch_encoder import SpladeEncoder
    from repro.errors import ReproError

    with pytest.raises(ReproError, match="at least 2"):
        SpladeEncoder(str(tiny_mlm), max_length=1, device="cpu", side="query")


@pytest.mark.parametrize("kernel", ["onednn", "blas"])
def test_decoded_max_across_the_chunk_boundary_is_bit_identical(tiny_mlm, monkeypatch, kernel):
    """The fast head (bias once after the max, chunked products, amax per text) gives the bits of
    Linear-with-bias per token then the max, computed on the same rows per matrix product, with
    either CPU linear kernel (repro.encode.cpu_linear) doing both.

    "The same rows" matters for BLAS: MKL rounds a product row differently by how many rows the call holds
    (here calls of a few rows take another kernel: the texts under 12 tokens below), so one
    head over the whole batch can differ from the chunked one in the last bit, as sentence-transformers'
    head over the padded batch does. That part is bounded below, and counted against ST elsewhere."""
    import torch
    import torch.nn.functional as F

    from repro.encode import cpu_linear
    from repro.encode.mixed_head import text_chunks
    from repro.encode.torch_encoder import SpladeEncoder

    if kernel == "onednn" and not cpu_linear.onednn_works():
        pytest.skip("this torch has no usable oneDNN linear op")
    monkeypatch.setenv(cpu_linear.ENV, kernel)
    enc = SpladeEncoder(str(tiny_mlm), max_length=512, device="cpu")
    assert enc.linear_kernel == kernel
    texts = [LONG[: 1500 + 97 * i] for i in range(10)] + ["a short one", "python"]
    ids, _ = enc.tokenize(texts)
    lengths = [len(i) for i in ids]
    transform, weight, bias = enc.decoder
    head, decoder = enc.head, enc.decoder
    with torch.no_grad():  # a random model's decoder bias is all zeros: give it values to move
        bias.copy_(torch.randn(bias.shape, generator=torch.Generator().manual_seed(0)) * 0.3)

    def linear(x):  # the bias inside the product, by the kernel under test
        if kernel == "onednn":
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
        return F.linear(x, weight, bias)

    def per_token_head(real):  # every (token, vocab) logit kept
        hidden = transform(real)
        return torch.cat([linear(hidden[start : start + rows]) for _, _, start, rows in text_chunks(lengths, enc.CHUNK_TOKENS)])

    def reference():
        enc.decoder, enc.head = None, per_token_head
        try:
            return enc.weights(ids)
        finally:
            enc.decoder, enc.head = decoder, head

    enc.decoder = None
    one_call = enc.weights(ids)  # the whole head in one product
    enc.decoder = decoder
    for chunk in (enc.CHUNK_TOKENS, 1024, 8):  # default; several texts per chunk; one text per chunk
        enc.CHUNK_TOKENS = chunk
        fast = enc.weights(ids)
        assert torch.equal(fast, reference()), chunk
        assert (fast - one_call).abs().max().item() <= 1e-6, chunk  # last-bit product rounding only
    assert sum(lengths) > 2 * 1024 and max(lengths) < 1024 and min(lengths) < 12


def test_sum_pooling_chunks_equal_one_shot(tiny_mlm, tmp_path):
    import torch

    from repro.encode.torch_encoder import SpladeEncoder
    from repro.testing import build_sparse_encoder

    folder = build_sparse_encoder(tmp_path / "sum", tiny_mlm, pooling="sum")
    enc = SpladeEncoder(str(folder), max_length=512, device="cpu")
    texts = [LONG[: 1500 + 97 * i] for i in range(4)] + ["python"]
    ids, _ = enc.tokenize(texts)
    chunked = enc.weights(ids)
    enc.CHUNK_TOKENS = 10**6
    whole = enc.weights(ids)
    assert torch.allclose(chunked, whole, rtol=1e-6, atol=1e-5)
    assert enc.encode(texts) == [dict(v) for v in enc.encode(texts)]


def _msmarco_passages(shared_data: Path, n: int) -> list[str]:
    texts = []
    with open(shared_data / "msmarco-passage-dl20-pool" / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            texts.append(json.loads(line)["contents"])
            if len(texts) == n:
                break
    return texts


@pytest.mark.slow
def test_splade_tiny_equals_sparse_encoder_on_real_passages(splade_tiny, shared_data):
    """The plain-MLM shape on the real model: SparseEncoder(folder) builds Transformer + SpladePooling(max)."""
    import torch
    from sentence_transformers import SparseEncoder

    from repro.encode.queries import query_encoder
    from repro.encode.torch_encoder import SpladeEncoder

    passages = _msmarco_passages(shared_data, 100)
    queries = [line.split("\t", 1)[1].strip() for line in
               (shared_data / "msmarco-passage-dl20-pool" / "queries.tsv").read_text(encoding="utf-8").splitlines()[:50]]
    st = SparseEncoder(str(splade_tiny), device="cpu")
    vocab = st.tokenizer.convert_ids_to_tokens(list(range(st.tokenizer.vocab_size)))
    special = set(st.tokenizer.all_special_ids)
    flips = total = 0
    for texts, ours, theirs in (
        (passages, SpladeEncoder(str(splade_tiny), device="cpu").encode(passages), st.encode_document),
        (queries, query_encoder(str(splade_tiny), max_length=512).encode(queries), st.encode_query),
    ):
        q = torch.round(theirs(texts, convert_to_sparse_tensor=False).float() * 100).to(torch.int64)
        for mine, row in zip(ours, q):
            ref = {vocab[c]: int(row[c]) for c in torch.nonzero(row > 0).flatten().tolist() if c not in special}
            for tok in set(mine) | set(ref):
                total += 1
                assert abs(mine.get(tok, 0) - ref.get(tok, 0)) <= 1, tok
                flips += mine.get(tok, 0) != ref.get(tok, 0)
    print(f"splade-tiny vs SparseEncoder: {flips} one-unit flips of {total} weights")
    assert total > 5000 and flips <= max(2, total // 10000), (flips, total)


def test_one_fingerprint_for_onnx_cache_and_plan(tiny_mlm, tmp_path, monkeypatch):
    from repro.encode import model as model_io
    from repro.encode.onnx_encoder import _cache_root, _model_key
    from repro.reproduce.plan import fingerprint

    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    assert _cache_root() == tmp_path / "cache" / "onnx"
    before = model_io.fingerprint(tiny_mlm)
    assert fingerprint(tiny_mlm) == "model:" + before
    source = model_io.resolve(tiny_mlm)
    key = _model_key(source, "query", 64)
    (tiny_mlm / "sub").mkdir()
    (tiny_mlm / "sub" / "config.json").write_text("{}")  # a sub-folder file counts (SparseEncoder modules)
    assert model_io.fingerprint(tiny_mlm) != before and _model_key(source, "query", 64) != key


@pytest.mark.parametrize("special,max_length", [(True, 256), (True, 16), (False, 64), (False, 5)])
def test_tokenize_equals_the_tokenizers_own_call(splade_tiny, shared_data, special, max_length):
    """repro's one tokenization (the Rust tokenizer directly) gives transformers' __call__ ids and
    truncation flags on real queries and passages, with and without specials, a prompt, and texts
    that are empty, whitespace, accented or longer than the limit."""
    from transformers import AutoTokenizer

    from repro.encode.base import tokenize
    from repro.formats.corpus import iter_docs

    tok = AutoTokenizer.from_pretrained(str(splade_tiny))
    topics = shared_data / "msmarco-passage" / "topics.msmarco-passage.dev-subset.txt"
    texts = [line.split("\t", 1)[1] for line in topics.read_text(encoding="utf-8").splitlines()[:300]]
    texts += [d.text for d in iter_docs(shared_data / "msmarco-passage-dl20-pool" / "corpus.jsonl")][:200]
    texts += ["", "   ", "Café naïve résumé", "x " * 600, "[CLS] [SEP] [MASK]", "tab\tnew\nline"]
    for prompt in ("", "query: "):
        ids, truncated = tokenize(tok, texts, max_length, special=special, prompt=prompt)
        want = tok([prompt + t for t in texts], truncation=True, max_length=max_length, add_special_tokens=special)
        assert ids == want["input_ids"]
        assert truncated == [len(e.overflowing) > 0 for e in want.encodings]
        assert any(truncated) and not all(truncated)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_autocast_dtypes_take_the_chunked_head_too(tiny_mlm, dtype):
    """--dtype bfloat16/float16 runs the same chunked head under autocast (which refuses out= buffers)."""
    from repro.encode.torch_encoder import SpladeEncoder

    texts = [LONG[:900], "a short one", "python"]
    fp32 = SpladeEncoder(str(tiny_mlm), max_length=512, device="cpu").encode(texts)
    low = SpladeEncoder(str(tiny_mlm), max_length=512, device="cpu", dtype=dtype)
    assert low.decoder is not None
    vectors = low.encode(texts)
    assert all(vectors) and len(vectors) == 3
    shared = sum(len(set(a) & set(b)) for a, b in zip(vectors, fp32))
    assert shared >= 0.8 * sum(len(b) for b in fp32)  # lower precision moves weights, not the vocabulary


@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_onnx_pooling_graph_keeps_nan_and_ignores_padding(pooling, tmp_path):
    """onnxruntime's ReduceMax drops a NaN outside the first row: the exported pooling graph must
    still give a text with one NaN token (its hidden state and logits) NaN weights (for the
    encoder's finite check), and a NaN at a padding position or in a special column must not
    count, as in the torch encoder."""
    import types

    import numpy as np
    import onnxruntime as ort
    import torch

    from repro.encode.onnx_encoder import OPSET, _SpladeGraph

    vocab, poison, special = 6, 7, 0

    class Logits(torch.nn.Module):  # logit v of token t: (t + v) / 10; token 7 gives NaN everywhere
        def forward(self, input_ids, attention_mask, output_hidden_states=False):
            base = (input_ids.unsqueeze(-1) + torch.arange(vocab)).float() / 10
            logits = torch.where((input_ids == poison).unsqueeze(-1), torch.tensor(float("nan")), base)
            logits[..., special] = torch.where(input_ids == 3, torch.tensor(float("nan")), logits[..., special])
            hidden = torch.where((input_ids == poison).unsqueeze(-1), torch.tensor(float("nan")), base[..., :2])
            return types.SimpleNamespace(logits=logits, hidden_states=(hidden,))

    graph = _SpladeGraph.build(Logits(), [special], vocab, pooling)
    ids = torch.tensor([[1, 2, poison, 4], [1, 3, poison, poison]])  # text 2: the NaN only at padding
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    path = tmp_path / "g.onnx"
    torch.onnx.export(graph, (ids, mask), str(path), dynamo=False, opset_version=OPSET,
                      input_names=["input_ids", "attention_mask"], output_names=["weights"])
    out = ort.InferenceSession(str(path)).run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert np.isnan(out[0, 1:]).all()  # the poisoned text: NaN, not its other tokens' max
    assert np.isfinite(out[1]).all() and out[1, special] == 0 and (out[1, 1:] > 0).all()
