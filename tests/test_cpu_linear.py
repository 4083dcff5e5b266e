"""oneDNN linear layers (repro.encode.cpu_linear): the CPU default, against torch's BLAS path.

- the products the heads rely on: a row has the same bits whatever the rows or gathered columns
  around it, and the fused GELU equals F.gelu of the product bit for bit;
- which layers are switched, and when nothing is (BLAS asked for, autocast dtypes, the op missing);
- real texts through SpladeEncoder: oneDNN vs BLAS vectors differ only by counted one-unit flips
  at a .5 boundary, documents and queries; the mixed head equals the fp32 head with no flip at all;
- an unknown $REPRO_CPU_LINEAR is one line from `repro encode`, before anything is written.
"""

from __future__ import annotations

import json

import pytest

from faultkit import assert_nothing_left, assert_user_error

FACTOR = 100
BOUNDARY = 1e-3  # |w x factor - (k + .5)| below this is "at a .5 boundary" for fp32 at these magnitudes

torch = pytest.importorskip("torch")
from repro.encode import cpu_linear  # noqa: E402

needs_onednn = pytest.mark.skipif(not cpu_linear.onednn_works(), reason="this torch has no usable oneDNN linear op")


def _encoder(model, monkeypatch, kernel: str, **kwargs):
    from repro.encode.torch_encoder import SpladeEncoder

    monkeypatch.setenv(cpu_linear.ENV, kernel)
    return SpladeEncoder(str(model), max_length=256, device="cpu", **kwargs)


@needs_onednn
def test_a_row_has_the_same_bits_in_any_call():
    gen = torch.Generator().manual_seed(1)
    x, w = torch.randn(300, 96, generator=gen), torch.randn(2000, 96, generator=gen)
    with torch.inference_mode():
        full = cpu_linear.product(x, cpu_linear.prepared(w, "onednn"), "onednn")
        columns = torch.tensor([3, 17, 18, 999, 1999])
        gathered = cpu_linear.product(x[:7], w[columns], "onednn")  # the mixed head's recompute
    assert torch.equal(full[:7][:, columns], gathered)
    assert torch.equal(full, cpu_linear.product(x, w, "onednn"))  # reordered or not, the same bits


@needs_onednn
def test_fused_gelu_is_the_same_bits_as_gelu_after_the_product():
    gen = torch.Generator().manual_seed(2)
    linear = torch.nn.Linear(64, 256)
    x = torch.randn(40, 64, generator=gen) * 3
    cls = cpu_linear._onednn_linear_class()
    with torch.inference_mode():
        plain, fused = cls(linear)(x), cls(linear, "gelu")(x)
        assert torch.equal(fused, torch.nn.functional.gelu(plain))
        assert torch.allclose(plain, linear(x), rtol=1e-5, atol=1e-5)


@needs_onednn
def test_layers_switched_and_gelu_fused(splade_tiny, monkeypatch):
    enc = _encoder(splade_tiny, monkeypatch, "onednn")
    assert enc.linear_kernel == "onednn"
    kinds = [type(m).__name__ for m in enc.encoder.modules()]
    assert "Linear" not in kinds and kinds.count("OneDnnLinear") == 6 * enc.model.config.num_hidden_layers
    fused = [m for m in enc.encoder.modules() if type(m).__name__ == "OneDnnLinear" and m.post_op == "gelu"]
    assert len(fused) == enc.model.config.num_hidden_layers  # each layer's intermediate dense + GELU
    assert enc.decoder[0].dense.post_op == "gelu"  # the MLM head's transform
    assert type(enc.model.cls.predictions.decoder) is torch.nn.Linear  # the tied decoder: the heads' own products


@pytest.mark.parametrize("kernel,kwargs", [("blas", {}), ("onednn", {"dtype": "bfloat16"})], ids=["asked", "autocast"])
def test_torch_layers_kept(splade_tiny, monkeypatch, kernel, kwargs):
    enc = _encoder(splade_tiny, monkeypatch, kernel, **kwargs)
    assert enc.linear_kernel == "blas"
    assert not any(type(m).__name__ == "OneDnnLinear" for m in enc.model.modules())


def test_without_a_working_op_the_layers_stay(splade_tiny, monkeypatch):
    monkeypatch.setattr(cpu_linear, "onednn_works", lambda: False)
    enc = _encoder(splade_tiny, monkeypatch, "onednn")
    assert enc.linear_kernel == "blas" and (enc.mixed is None or enc.mixed.kernel == "blas")


def _real_texts(shared_data, n: int) -> list[str]:
    from repro.formats.corpus import iter_docs

    texts = [d.text for d in iter_docs(shared_data / "cranfield" / "cran.all.1400")][:n]
    texts += [d.text for d in iter_docs(shared_data / "msmarco-passage-dl20-pool" / "corpus.jsonl")][:n]
    return texts + [".", "?!", "the"]


def _flips_at_boundaries(reference, other, texts: list[str]) -> tuple[int, int]:
    """(one-unit flips, weights) between the two encoders; each flip must lie at a .5 boundary of
    the reference's own float weight."""
    a, b = reference.encode(texts, factor=FACTOR), other.encode(texts, factor=FACTOR)
    flips = []
    for row, (x, y) in enumerate(zip(a, b)):
        for tok in set(x) | set(y):
            if x.get(tok, 0) != y.get(tok, 0):
                assert abs(x.get(tok, 0) - y.get(tok, 0)) == 1, (texts[row][:60], tok, x.get(tok), y.get(tok))
                flips.append((row, tok))
    if flips:
        rows = sorted({r for r, _ in flips})
        weights = reference.encode_float([texts[r] for r in rows]) * FACTOR
        column = {tok: i for i, tok in enumerate(reference.vocab)}
        for row, tok in flips:
            value = float(weights[rows.index(row), column[tok]])
            assert abs(value % 1 - 0.5) < BOUNDARY, (texts[row][:60], tok, value)
    return len(flips), sum(map(len, a))


@needs_onednn
def test_documents_equal_blas_but_for_counted_boundary_flips(splade_tiny, shared_data, monkeypatch):
    blas = _encoder(splade_tiny, monkeypatch, "blas", precision="fp32")
    onednn = _encoder(splade_tiny, monkeypatch, "onednn", precision="fp32")
    flips, weights = _flips_at_boundaries(blas, onednn, _real_texts(shared_data, 150))
    print(f"oneDNN vs BLAS, documents: {flips} one-unit flips of {weights} weights")
    assert weights > 30_000 and flips <= max(2, weights // 10_000)


@needs_onednn
def test_queries_equal_blas_but_for_counted_boundary_flips(splade_tiny, shared_data, monkeypatch):
    from repro.formats.topics import read_topics

    queries = list(read_topics(shared_data / "msmarco-passage" / "topics.msmarco-passage.dev-subset.txt").values())[:300]
    blas = _encoder(splade_tiny, monkeypatch, "blas", side="query")
    onednn = _encoder(splade_tiny, monkeypatch, "onednn", side="query")
    flips, weights = _flips_at_boundaries(blas, onednn, queries)
    assert weights > 2_000 and flips <= max(2, weights // 10_000)


@needs_onednn
def test_mixed_head_equals_fp32_head_with_no_flip(splade_tiny, shared_data, monkeypatch):
    """With oneDNN the recompute sums each entry as the fp32 head does: not one weight differs."""
    fp32 = _encoder(splade_tiny, monkeypatch, "onednn", precision="fp32")
    mixed = _encoder(splade_tiny, monkeypatch, "onednn", precision="mixed")
    assert mixed.precision == "mixed" and mixed.mixed.kernel == "onednn"
    texts = _real_texts(shared_data, 150)
    a, b = fp32.encode(texts, factor=FACTOR), mixed.encode(texts, factor=FACTOR)
    assert sum(map(len, a)) > 30_000 and a == b


def test_unknown_kernel_is_one_line_and_leaves_nothing(cli, model, tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv(cpu_linear.ENV, "mkl")
    out = tmp_path / "coll"
    res = cli("encode", shared_data / "cranfield" / "cran.all.1400", "-m", model, "-o", out, "-q")
    assert_user_error(res, "REPRO_CPU_LINEAR='mkl'", "onednn, blas")
    assert_nothing_left(tmp_path, out)


def test_collection_records_the_kernel(cli, model, tmp_path, monkeypatch):
    corpus = tmp_path / "c.tsv"
    corpus.write_text("d1\tboundary layer heat transfer\nd2\tsupersonic flow over a plate\n", encoding="utf-8")
    monkeypatch.setenv(cpu_linear.ENV, "blas")
    out = tmp_path / "coll"
    assert cli("encode", corpus, "-m", model, "-o", out, "-q").code == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["linear_kernel"] == ["blas"]
