"""The punctuation-on-top failure, on tiny constructed models (seconds), and that `repro train` cannot reach it.

Mechanism shown here: an MLM head whose output prefers '.' everywhere (as a plain, not
SPLADE-trained MLM head does: '.' and ',' are the most frequent tokens, so their decoder bias and
their logits at uninformative positions are high) makes max pooling give '.' the top weight for
EVERY text, and the quality warning fires. Padding positions are a second source: with the
diagnostic `--pooling-fault pad` they supply weight, but `repro train` has no way to pool over them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

TEXTS = ["what is python programming", "best restaurants in paris", "a b c", "hello world again and again"]


def _json(output: str) -> dict:
    return json.loads(output[output.index("{"):])


def _biased_mlm(src: Path, dest: Path, token: str = ".", bias: float = 15.0) -> Path:
    """Copy of the tiny MLM with the decoder bias of `token` set high (logit ~15 -> weight ~2.8)."""
    from transformers import AutoTokenizer, BertForMaskedLM

    tok = AutoTokenizer.from_pretrained(str(src))
    model = BertForMaskedLM.from_pretrained(str(src))
    import torch

    with torch.no_grad():
        model.cls.predictions.bias[tok.convert_tokens_to_ids(token)] = bias
        if model.cls.predictions.decoder.bias is not None:
            model.cls.predictions.decoder.bias[tok.convert_tokens_to_ids(token)] = bias
    model.save_pretrained(str(dest))
    tok.save_pretrained(str(dest))
    return dest


def test_biased_head_puts_punctuation_on_top_of_every_text(tiny_mlm, tmp_path):
    from repro.cli import cli

    model = _biased_mlm(tiny_mlm, tmp_path / "biased")
    res = CliRunner().invoke(cli, ["inspect", "--model", str(model), "--format", "json", "--explain-positions", *TEXTS])
    assert res.exit_code == 0, res.output
    report = _json(res.output)
    for text in report["texts"]:
        token, weight = text["top"][0]
        assert token == "."
        assert weight == pytest.approx(2.77, abs=0.1)  # log(1 + ~15): the report's "~2.8"
        assert text["top_punct_or_special"] == ["."]
        assert text["punct_share"] > 0.0
    assert any("top-3" in w and "'.'" in w for w in report["warnings"])
    pos = report["positions"]
    assert pos["weight_share_by_position"]["pad"] == 0.0  # correct pooling: padding never supplies weight
    assert pos["punct_weight"] > 0 and abs(sum(pos["punct_weight_share_by_position"].values()) - 1) < 1e-6


def test_same_model_without_bias_has_no_dot_on_top(tiny_mlm):
    from repro.cli import cli

    res = CliRunner().invoke(cli, ["inspect", "--model", str(tiny_mlm), "--format", "json", *TEXTS])
    assert res.exit_code == 0, res.output
    assert all(t["top"][0][0] != "." for t in _json(res.output)["texts"])


def test_pooling_over_padding_is_visible_only_in_the_diagnostic(tiny_mlm):
    from repro.cli import cli

    args = ["inspect", "--model", str(tiny_mlm), "--format", "json", "--explain-positions", "--max-length", "32", *TEXTS]
    good = _json(CliRunner().invoke(cli, args).output)
    bad_res = CliRunner().invoke(cli, [*args, "--pooling-fault", "pad"])
    assert bad_res.exit_code == 0, bad_res.output
    bad = _json(bad_res.output)
    assert good["positions"]["weight_share_by_position"]["pad"] == 0.0
    assert bad["positions"]["weight_share_by_position"]["pad"] > 0.0
    assert bad["aggregate"]["mean_nnz"] >= good["aggregate"]["mean_nnz"]
    # the positions report and the quality report see the same vectors
    for g, p in zip(good["texts"], good["positions"]["texts"]):
        assert [t for t, _ in g["top"]] == [t for t, _, _ in p["top"]]


def test_train_cannot_pool_over_padding(tiny_mlm, tmp_path):
    """No flag, no config key and no code path of `repro train` pools over padding."""
    from repro.cli import cli
    from repro.errors import ReproError
    from repro.train.config import FIELDS, load_toml
    from repro.train.model import load_sparse_encoder

    for flag in (["--pooling-fault", "pad"], ["--pooling", "max"]):
        res = CliRunner().invoke(cli, ["train", *flag, "--base-model", str(tiny_mlm), "--data", "x", "--output", "y"])
        assert res.exit_code == 2 and "No such option" in res.output
    assert not [f for f in FIELDS if "pool" in f]
    cfg = tmp_path / "c.toml"
    cfg.write_text('pooling-fault = "pad"\n')
    with pytest.raises(ReproError, match="unknown setting"):
        load_toml(cfg)
    # The encoder `repro train` builds masks padding: a text's vector does not change when it is
    # padded inside a batch with a much longer text.
    import torch

    model = load_sparse_encoder(str(tiny_mlm), max_seq_length=64)
    model.eval()
    with torch.inference_mode():
        alone = model.encode(["best restaurants in paris"], convert_to_tensor=True).to_dense()
        padded = model.encode(["best restaurants in paris", " ".join(["word"] * 50)], convert_to_tensor=True).to_dense()
    assert torch.allclose(alone[0], padded[0], atol=1e-5)
