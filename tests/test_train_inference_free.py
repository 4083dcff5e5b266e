"""`repro train --inference-free` on the tiny random MLM: a Router with a trained static query table.

The trained folder must be what sentence-transformers 6.2 trains for inference-free SPLADE (a
Router: SparseStaticEmbedding queries, MLM + SpladePooling documents), its table must have moved
at the static learning rate (the mapping reached the optimizer), and repro's own readers
(`query_encoder`, `SpladeEncoder`) must encode exactly what SparseEncoder(folder) does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from repro.errors import ReproError
from test_train import make_cfg, records

TEXTS = ["what is python programming", "best restaurants in paris", "boundary layer on a flat plate",
         "the quick brown fox jumps over the lazy dog"]


def if_cfg(tiny_mlm: Path, tmp_path: Path, name: str = "if", **kw):
    base = dict(inference_free=True, lr=1e-5, static_lr=5e-2, max_steps=6, save_steps=3, diagnostics_steps=3,
                lambda_q=0.0)
    base.update(kw)
    return make_cfg(tiny_mlm, tmp_path, name=name, **base)


def static_weight(folder: Path) -> np.ndarray:
    from sentence_transformers.sparse_encoder import SparseEncoder

    from repro.train.model import static_module

    return static_module(SparseEncoder(str(folder), local_files_only=True)).weight.detach().numpy().copy()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, _tiny_mlm_session):
    from repro.train.loop import run_training

    tmp = tmp_path_factory.mktemp("train-if")
    cfg = if_cfg(_tiny_mlm_session, tmp)
    summary = run_training(cfg)
    return {"out": Path(cfg.output), "summary": summary, "cfg": cfg, "tmp": tmp}


def test_output_is_a_router_with_a_trained_static_query_side(trained):
    from sentence_transformers.base.modules import Router
    from sentence_transformers.sparse_encoder import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling

    from repro.encode import model as model_io

    out, cfg = trained["out"], trained["cfg"]
    model = SparseEncoder(str(out), local_files_only=True)
    router = model[0]
    assert isinstance(router, Router)
    assert [type(m).__name__ for m in router.sub_modules["query"]] == ["SparseStaticEmbedding"]
    assert isinstance(router.sub_modules["document"][-1], SpladePooling)
    static = router.sub_modules["query"][0]
    assert isinstance(static, SparseStaticEmbedding) and not static.frozen
    assert model_io.resolve(str(out)).inference_free
    moved = np.abs(static.weight.detach().numpy() - 1.0)  # initialised with ones
    # Adam moves a parameter by about lr per step: far more than the document lr (1e-5) allows
    assert moved.max() > 10 * cfg.lr * cfg.max_steps, moved.max()
    assert trained["summary"]["static_query_params"] == static.weight.numel()
    assert trained["summary"]["steps"] == cfg.max_steps


def test_the_static_lr_reaches_the_optimizer(tiny_mlm, tmp_path):
    from repro.train.loop import _prepare_folders, build_trainer
    from repro.train.model import static_module

    cfg = if_cfg(tiny_mlm, tmp_path, name="opt")
    cfg.validate()
    _, work = _prepare_folders(cfg)
    trainer, parts = build_trainer(cfg, work)
    assert trainer.args.router_mapping == {"query": "query", "positive": "document", "negative": "document"}
    # why repro builds its own pattern: the one in sentence-transformers' docs matches no parameter name
    import re

    assert not [n for n, _ in parts["loss"].named_parameters() if re.search(r"SparseStaticEmbedding\.*", n)]
    optimizer = trainer.create_optimizer()
    weight = static_module(parts["model"]).weight
    groups = [g for g in optimizer.param_groups if any(p is weight for p in g["params"])]
    assert len(groups) == 1 and groups[0]["lr"] == cfg.static_lr and len(groups[0]["params"]) == 1
    others = [g for g in optimizer.param_groups if g is not groups[0] and g["params"]]
    assert others and all(g["lr"] == cfg.lr for g in others)
    assert parts["loss"].query_regularizer_weight == 0.0


def _st_vectors(embeddings, vocab: dict[int, str], special: set[int]) -> list[dict[str, int]]:
    dense = embeddings.to_dense().float().numpy() if embeddings.is_sparse else embeddings.float().numpy()
    q = np.rint(dense.astype(np.float32) * np.float32(100)).astype(np.int64)
    return [{vocab[int(i)]: int(row[i]) for i in np.nonzero(row > 0)[0] if int(i) not in special} for row in q]


def test_repro_encoders_equal_sparse_encoder_weight_for_weight(trained):
    from sentence_transformers.sparse_encoder import SparseEncoder

    from repro.encode.queries import query_encoder
    from repro.encode.torch_encoder import SpladeEncoder

    out = str(trained["out"])
    st = SparseEncoder(out, local_files_only=True)
    tok = st.tokenizer
    vocab = {i: t for t, i in tok.get_vocab().items()}
    special = set(tok.all_special_ids)  # repro zeroes special tokens on the MLM side
    with_st_q = _st_vectors(st.encode_query(TEXTS, convert_to_tensor=True), vocab, special)
    with_st_d = _st_vectors(st.encode_document(TEXTS, convert_to_tensor=True), vocab, special)
    ours_q = query_encoder(out).encode(TEXTS, factor=100)
    ours_d = SpladeEncoder(out).encode(TEXTS, factor=100)
    assert ours_q == with_st_q
    assert ours_d == with_st_d
    assert all(ours_q) and all(ours_d)


def test_diagnostics_report_the_static_query_side(trained):
    recs = records(trained["out"])
    assert [r["step"] for r in recs] == [0, 3, 6]
    for r in recs:
        assert r["query_side"] == "static" and r["probes_route"] == "document"
        assert r["expansion_share_q"] == 0.0 and r["special_share_q"] == 0.0  # a table lookup cannot expand
        assert r["nnz_q"] > 0 and r["nnz_d"] > 0
        assert r["lambda_q_now"] == 0.0
    card = (trained["out"] / "README.md").read_text(encoding="utf-8")
    assert "inference-free: a Router whose query route is a SparseStaticEmbedding" in card


def test_continue_training_an_inference_free_folder_and_resume(trained, tmp_path):
    """An existing inference-free model keeps its table and trains on; a killed run resumes."""
    from repro.train.loop import run_training

    start = static_weight(trained["out"])
    cfg = if_cfg(trained["out"], tmp_path, name="cont", max_steps=3, save_steps=2)
    run_training(cfg)
    after = static_weight(Path(cfg.output))
    assert not np.allclose(after, start) and not np.allclose(after, 1.0)
    # resume as after a kill between the saves at steps 2 and 3: the step-3 checkpoint is gone
    import shutil

    from repro.train.loop import work_dir

    for ckpt in (work_dir(cfg.output) / "checkpoints").glob("checkpoint-*"):
        if ckpt.name != "checkpoint-2":
            shutil.rmtree(ckpt)
    cfg2 = if_cfg(trained["out"], tmp_path, name="cont", max_steps=3, save_steps=2, resume=True, force=True)
    summary = run_training(cfg2)
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["steps_this_session"] == 1
    assert np.allclose(static_weight(Path(cfg2.output)), after, atol=1e-6)


def test_settings_are_checked(tiny_mlm, tmp_path):
    from repro.train.loop import run_training

    with pytest.raises(ReproError, match="only apply with --inference-free"):
        make_cfg(tiny_mlm, tmp_path, static_init="idf:x.json").validate()
    with pytest.raises(ReproError, match="IDF file not found"):
        if_cfg(tiny_mlm, tmp_path, static_init=f"idf:{tmp_path / 'none.json'}").validate()
    with pytest.raises(ReproError, match="ones' or 'idf:FILE'"):
        if_cfg(tiny_mlm, tmp_path, static_init="zeros").validate()
    with pytest.raises(ReproError, match="--static-lr"):
        if_cfg(tiny_mlm, tmp_path, static_lr=0).validate()
    cfg = if_cfg(tiny_mlm, tmp_path, lambda_q=0.5)
    cfg.validate()
    assert cfg.lambda_q == 0.0
    # an IDF json initialises the table; tokens not in it are 0
    idf = tmp_path / "idf.json"
    idf.write_text(json.dumps({"python": 3.5, "paris": 2.0}), encoding="utf-8")
    cfg = if_cfg(tiny_mlm, tmp_path, name="idf", static_init=f"idf:{idf}", freeze_static=True, max_steps=2)
    run_training(cfg)
    w = static_weight(Path(cfg.output))
    assert sorted(w[w > 0].tolist()) == [2.0, 3.5]  # frozen: exactly the file's weights
    # an inference-free base without --inference-free is refused, naming the flag
    with pytest.raises(ReproError, match="pass --inference-free"):
        run_training(make_cfg(Path(cfg.output), tmp_path, name="plain", max_steps=2))


def test_preset_config_loads_and_validates(shared_data, splade_tiny):
    from repro.train.config import TrainConfig, load_toml

    root = Path(__file__).resolve().parent.parent
    cfg = TrainConfig(**load_toml(root / "configs" / "inference-free-cranfield.toml"))
    cfg.validate()
    assert cfg.inference_free and cfg.static_init == "ones" and cfg.static_lr > cfg.lr and cfg.lambda_q == 0
    assert Path(cfg.data).is_file() and Path(cfg.base_model).resolve() == splade_tiny.resolve()


def test_margin_mse_routes_every_text_column_and_not_the_label(tiny_mlm, tmp_path):
    from repro.train.loop import run_training
    from test_train import write_distill_jsonl

    path = write_distill_jsonl(tmp_path / "distill.jsonl", seed=3, query_words=2)
    cfg = if_cfg(tiny_mlm, tmp_path, name="mse", data=str(path), loss="margin-mse", num_negatives=2, max_steps=3)
    summary = run_training(cfg)
    assert summary["steps"] == 3
    assert not np.allclose(static_weight(Path(cfg.output)), 1.0)
