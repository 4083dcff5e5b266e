"""SPLADE encoding details: pooling over real tokens only, no special tokens, stated edge-case rules."""

from __future__ import annotations

import json

import pytest
import torch

from repro.encode.torch_encoder import SpladeEncoder
from repro.formats.anserini_queries import query_line

SPECIAL = {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"}


def _reference_weights(encoder: SpladeEncoder, text: str) -> torch.Tensor:
    """The textbook definition on one unpadded text: max_t log(1 + relu(logits[t]))."""
    enc = encoder.tokenizer(text, truncation=True, max_length=encoder.max_length, return_tensors="pt")
    with torch.no_grad():
        logits = encoder.model(**enc).logits[0]
    weights = torch.log1p(torch.relu(logits)).max(dim=0).values
    weights[encoder.special_ids] = 0
    return weights


@pytest.fixture(scope="module")
def tiny_encoder(_tiny_mlm_session) -> SpladeEncoder:
    return SpladeEncoder(str(_tiny_mlm_session), max_length=128)


def test_padding_never_contributes(tiny_encoder):
    short = "what is python programming?"
    longer = ["the boundary layer on a flat plate in supersonic flow, with heat transfer " * 6, "lazy dog " * 40]
    alone = tiny_encoder.encode_float([short])[0]
    ids, _ = tiny_encoder.tokenize([short] + longer)
    batched = tiny_encoder.weights(ids)[0]  # padded to the longest text in the batch
    assert torch.allclose(alone, batched, atol=1e-5)
    assert torch.allclose(alone, _reference_weights(tiny_encoder, short), atol=1e-5)
    assert tiny_encoder.encode([short])[0] == tiny_encoder.encode([short, *longer], batch_size=8)[0]


def test_padding_invariance_real_model(splade_tiny):
    encoder = SpladeEncoder(str(splade_tiny), max_length=256)
    query = "what is python programming"
    alone = encoder.encode([query])[0]
    mixed = encoder.encode([query, "best restaurants in paris " * 40, "x " * 200], batch_size=3)[0]
    assert alone == mixed
    assert torch.allclose(encoder.encode_float([query])[0], _reference_weights(encoder, query), atol=1e-5)


def test_special_tokens_never_in_vectors(tiny_encoder, splade_tiny):
    texts = ["[CLS] [SEP] [MASK] [PAD] hello", "what is python programming", "a b c . , ! ? ;"]
    for encoder in (tiny_encoder, SpladeEncoder(str(splade_tiny), max_length=64)):
        for vec in encoder.encode(texts):
            assert not SPECIAL & set(vec)


def test_real_model_top_tokens_are_words_not_punctuation(splade_tiny):
    encoder = SpladeEncoder(str(splade_tiny), max_length=64)
    for text in ("what is python programming", "best restaurants in paris"):
        vec = encoder.encode([text])[0]
        top = sorted(vec, key=vec.get, reverse=True)[:3]
        assert all(tok.isalpha() for tok in top), top
    assert "python" in encoder.encode(["what is python programming"])[0]


def test_empty_and_whitespace_texts_get_empty_vectors_and_are_counted(tiny_encoder):
    before = tiny_encoder.stats.empty
    vectors = tiny_encoder.encode(["", "   \t ", "python"])
    assert vectors[0] == {} and vectors[1] == {}
    assert vectors[2]
    assert tiny_encoder.stats.empty - before == 2


def test_truncation_is_counted(tiny_encoder):
    before = tiny_encoder.stats.truncated
    tiny_encoder.encode(["python " * 500, "short"])
    assert tiny_encoder.stats.truncated - before == 1


def test_quantization_factor_scales_integer_weights(tiny_encoder):
    floats = tiny_encoder.encode_float(["python programming language"])[0]
    for factor in (10, 100):
        vec = tiny_encoder.encode(["python programming language"], factor=factor)[0]
        for tok, weight in vec.items():
            idx = tiny_encoder.vocab.index(tok)
            assert weight == int(torch.round(floats[idx] * factor))
            assert isinstance(weight, int) and weight > 0


def test_query_line_repeats_tokens_weight_times():
    line = query_line("q1", {"python": 3, "##s": 1, ".": 2})
    qid, _, body = line.partition("\t")
    assert qid == "q1"
    assert body.split() == ["python"] * 3 + ["."] * 2 + ["##s"]


def test_mojibake_and_bad_utf8_are_kept_not_dropped(tmp_path, _tiny_mlm_session, shared_data):
    from repro.formats.corpus import iter_docs
    from repro.formats.textio import ReadCounts

    toy = (shared_data / "splade-toy" / "full_collection" / "raw.tsv").read_bytes()
    bad = tmp_path / "corpus.tsv"
    bad.write_bytes(toy + b"bad1\tcaf\xe9 au lait \xff\xfe\n")
    stats = ReadCounts()
    docs = list(iter_docs(bad, stats=stats))
    assert len(docs) == 90 and stats.bad_utf8_lines == 1
    assert "\ufffd" in docs[-1].text and "â" in docs[0].text + "".join(d.text for d in docs)
    encoder = SpladeEncoder(str(_tiny_mlm_session), max_length=64)
    assert all(isinstance(v, dict) for v in encoder.encode([d.text for d in docs]))


def test_sparse_encoder_folder_gives_same_vectors_as_plain_mlm(tmp_path, _tiny_mlm_session):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sentence_transformer.modules import Transformer
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    module = Transformer(str(_tiny_mlm_session), transformer_task="fill-mask", max_seq_length=64)
    st = SparseEncoder(modules=[module, SpladePooling("max")])
    st.save(str(tmp_path / "st"))
    assert json.loads((tmp_path / "st" / "modules.json").read_text())
    plain = SpladeEncoder(str(_tiny_mlm_session), max_length=64)
    folder = SpladeEncoder(str(tmp_path / "st"))
    assert folder.max_length == 64
    texts = ["what is python programming", "best restaurants in paris"]
    assert plain.encode(texts) == folder.encode(texts)
