"""Token-quality metrics on hand-made vectors, and `repro inspect` on the real splade-tiny."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from repro.encode import quality
class FakeTokenizer:
    """Just what VocabClasses needs: a vocabulary and the special ids."""

    vocab = {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, ".": 3, ",": 4, "the": 5, "python": 6, "code": 7, "##s": 8, "##!": 9}

    def get_vocab(self):
        return dict(self.vocab)

    def __len__(self):
        return len(self.vocab)

    all_special_ids = [0, 1, 2]


def test_token_classes():
    assert quality.is_punctuation(".") and quality.is_punctuation("##!") and quality.is_punctuation("$")
    assert not quality.is_punctuation("python") and not quality.is_punctuation("##s") and not quality.is_punctuation("")
    assert quality.is_stopword("The") and not quality.is_stopword("python")


def test_text_report_shares():
    classes = quality.VocabClasses.from_tokenizer(FakeTokenizer())
    # weights: [CLS] 1, '.' 2, 'the' 1, python 3, code 3 -> total 10; input ids: python, the
    vec = {1: 1.0, 3: 2.0, 5: 1.0, 6: 3.0, 7: 3.0, 8: 0.0}
    rep = quality.text_report(vec, {6, 5}, classes, top_k=3)
    assert rep["nnz"] == 5
    assert rep["total_weight"] == pytest.approx(10.0)
    assert rep["punct_share"] == pytest.approx(0.2)
    assert rep["special_share"] == pytest.approx(0.1)
    assert rep["stopword_share"] == pytest.approx(0.1)
    assert rep["expansion_share"] == pytest.approx(0.6)  # [CLS], '.', code
    assert rep["expansion_terms"] == 3
    assert [t for t, _ in rep["top"]] == ["python", "code", "."]
    assert rep["top_punct_or_special"] == ["."]
    warnings = quality.quality_warnings({"q": rep}, quality.aggregate([rep]))
    assert any("top-3" in w for w in warnings) and any("punctuation holds" in w for w in warnings)
    assert any("special tokens hold" in w for w in warnings)


def test_empty_vector_and_clean_warning():
    classes = quality.VocabClasses.from_tokenizer(FakeTokenizer())
    empty = quality.text_report({}, {6}, classes)
    assert empty["nnz"] == 0 and empty["punct_share"] == 0.0
    assert any("collapsed" in w for w in quality.quality_warnings({"q": empty}, quality.aggregate([empty])))
    clean = quality.text_report({6: 2.0, 7: 1.0, 5: 0.5, 8: 0.4}, {6}, classes)
    assert quality.quality_warnings({"q": clean}, quality.aggregate([clean])) == []


def test_flops():
    a, b = {1: 1.0, 2: 2.0}, {2: 2.0, 3: 4.0}
    # batch means: 1 -> 0.5, 2 -> 2.0, 3 -> 2.0 -> 0.25 + 4 + 4
    assert quality.flops_reg([a, b]) == pytest.approx(8.25)
    # activation probabilities: q: {1: .5, 2: 1, 3: .5}; d (just a): {1: 1, 2: 1}
    assert quality.expected_flops([a, b], [a]) == pytest.approx(1.5)


def test_inspect_splade_tiny(splade_tiny):
    from repro.cli import cli

    res = CliRunner().invoke(cli, ["inspect", "--model", str(splade_tiny), "--format", "json",
                                   "what is python programming", "best restaurants in paris",
                                   "how many legs does a spider have?"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[res.output.index("{"):])
    specials = {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"}
    for text in report["texts"]:
        assert 5 <= text["nnz"] <= 300
        assert not specials & {t for t, _ in text["top"]}
        assert text["punct_share"] < 0.05 and text["special_share"] < 0.05
        assert 0.2 < text["expansion_share"] < 0.9
    assert report["texts"][0]["top"][0][0] == "python"
    assert report["warnings"] == []


def test_inspect_pooling_fault_is_labelled(splade_tiny):
    from repro.cli import cli

    res = CliRunner().invoke(cli, ["inspect", "--model", str(splade_tiny), "--pooling-fault", "pad", "--max-length", "32"])
    assert res.exit_code == 0, res.output
    assert "DIAGNOSTIC" in res.output


def test_inspect_unknown_model_is_one_line_error(tmp_path):
    from repro.cli import cli

    res = CliRunner().invoke(cli, ["inspect", "--model", "no-such-org/no-such-model-xyz"])
    assert res.exit_code == 2
    assert "offline" in res.output and "Traceback" not in res.output
