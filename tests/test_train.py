"""`repro train` on the tiny random MLM: learning, lambda direction, warm-up, resume, reload, config, bad data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.errors import ReproError

WORDS = (
    "python programming language scripting data science web servers restaurants paris bistros cafes seine french "
    "food quick brown fox jumps lazy dog spider legs wing slipstream lift propeller boundary layer plate supersonic "
    "heat transfer friction machine learning models bert tokens sentence retrieval documents queries sparse vectors"
).split()


def write_triplets(path: Path, n: int = 48, seed: int = 0) -> Path:
    rnd = random.Random(seed)
    lines = []
    for _ in range(n):
        pos = rnd.sample(WORDS, 8)
        neg = rnd.sample(WORDS, 8)
        lines.append("\t".join([" ".join(pos[:3]), " ".join(pos), " ".join(neg)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_cfg(tiny_mlm: Path, tmp_path: Path, name: str = "out", **kw):
    from repro.train.config import TrainConfig

    data = tmp_path / "triplets.tsv"
    if not data.exists():
        write_triplets(data)
    base = dict(base_model=str(tiny_mlm), output=str(tmp_path / name), data=str(data), batch_size=8,
                max_steps=12, lr=1e-3, lambda_q=1e-3, lambda_d=1e-3, reg_warmup_steps=4, save_steps=5,
                diagnostics_steps=4, diagnostics_texts=8, max_length=24, seed=7)
    base.update(kw)
    return TrainConfig(**base)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "diagnostics.jsonl").read_text().splitlines()]


def state_dict(folder: Path):
    from safetensors.torch import load_file

    files = sorted(folder.rglob("model.safetensors"))
    assert files, folder
    return load_file(str(files[0]))


@pytest.mark.slow
def test_loss_decreases_and_output_reloads(tiny_mlm, tmp_path):
    from sentence_transformers.sparse_encoder import SparseEncoder

    from repro.manifest import read_manifest
    from repro.train.loop import run_training

    summary = run_training(make_cfg(tiny_mlm, tmp_path, max_steps=30, diagnostics_steps=5, lr=3e-3, lambda_q=0, lambda_d=0))
    out = Path(summary["output"])
    recs = [r for r in records(out) if r["loss"] is not None]
    assert recs[-1]["loss"] < recs[0]["loss"] * 0.9, [r["loss"] for r in recs]
    assert (out / "diagnostics.png").stat().st_size > 1000
    card = (out / "README.md").read_text()
    assert "lambda_q" in card and "sentence-transformers" in card and str(tiny_mlm) in card
    assert read_manifest(out, "train")["steps"] == 30
    # Reload as a standard SparseEncoder folder; it encodes exactly like the last checkpoint.
    model = SparseEncoder(str(out), local_files_only=True)
    ckpt = SparseEncoder(str(Path(summary["work"]) / "checkpoints" / "checkpoint-30"), local_files_only=True)
    texts = ["python programming", "lift of a wing in a slipstream"]
    a, b = model.encode(texts, convert_to_tensor=True), ckpt.encode(texts, convert_to_tensor=True)
    assert (a.to_dense() - b.to_dense()).abs().max().item() == 0.0
    first = records(out)[0]
    for key in ("nnz_q", "nnz_d", "flops", "punct_share_q", "stopword_share_q", "special_share_q",
                "expansion_share_q", "probes", "warnings", "ranking_loss"):
        assert key in first


@pytest.mark.slow
def test_lambda_reduces_nonzeros(tiny_mlm, tmp_path):
    from repro.train.loop import run_training

    low = run_training(make_cfg(tiny_mlm, tmp_path, "low", max_steps=25, lambda_q=0, lambda_d=0, reg_warmup_steps=0))
    high = run_training(make_cfg(tiny_mlm, tmp_path, "high", max_steps=25, lambda_q=3.0, lambda_d=3.0, reg_warmup_steps=0))
    assert high["final"]["nnz_d"] < 0.8 * low["final"]["nnz_d"], (low["final"], high["final"])
    assert high["final"]["nnz_q"] < 0.8 * low["final"]["nnz_q"]
    assert high["final"]["flops"] < low["final"]["flops"]


def test_regularizer_warmup_is_the_configured_one(tiny_mlm, tmp_path):
    from sentence_transformers.sparse_encoder.callbacks.splade_callbacks import SpladeRegularizerWeightSchedulerCallback

    from repro.train.callbacks import warmup_weight
    from repro.train.loop import _prepare_folders, build_trainer

    cfg = make_cfg(tiny_mlm, tmp_path, max_steps=10, reg_warmup_steps=6, lambda_q=0.5, lambda_d=0.4)
    _, work = _prepare_folders(cfg)
    trainer, parts = build_trainer(cfg, work)
    found = [c for c in trainer.callback_handler.callbacks if isinstance(c, SpladeRegularizerWeightSchedulerCallback)]
    assert found == [parts["warmup"]]  # no silent 1/3-of-the-run default added
    trainer.train()
    hist = parts["warmup"].history
    assert [h[0] for h in hist] == list(range(10))
    for step, d, q in hist:
        assert d == pytest.approx(0.4 * min(1.0, step / 6) ** 2, abs=0)
        assert q == pytest.approx(0.5 * min(1.0, step / 6) ** 2, abs=0)
    assert warmup_weight(3, 0.4, 6) == pytest.approx(0.1) and warmup_weight(0, 0.4, 0) == 0.4


@pytest.mark.slow
def test_crash_and_resume_gives_identical_weights(tiny_mlm, tmp_path):
    from transformers import TrainerCallback

    from repro.train.loop import _prepare_folders, build_trainer, run_training

    # Uninterrupted reference (12 steps, 6 per epoch: the resume also crosses an epoch boundary).
    ref = run_training(make_cfg(tiny_mlm, tmp_path, "ref"))

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 8:  # after checkpoint-5 was written, before checkpoint-10
                raise SystemExit("simulated kill")

    cfg = make_cfg(tiny_mlm, tmp_path, "crashy")
    _, work = _prepare_folders(cfg)
    trainer, _parts = build_trainer(cfg, work)
    trainer.add_callback(Crash())
    with pytest.raises(SystemExit):
        trainer.train()
    assert (work / "checkpoints" / "checkpoint-5").is_dir()
    assert not Path(cfg.output).exists()
    resumed = run_training(make_cfg(tiny_mlm, tmp_path, "crashy", resume=True))
    assert resumed["resumed_from"].endswith("checkpoint-5")
    a, b = state_dict(Path(ref["output"])), state_dict(Path(resumed["output"]))
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= 1e-6, worst


@pytest.mark.slow
def test_sigkill_and_resume_subprocess(tiny_mlm, tmp_path):
    """The real thing: SIGKILL a `repro train` process after its first checkpoint, then --resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from repro.train.loop import run_training

    ref = run_training(make_cfg(tiny_mlm, tmp_path, "ref", max_steps=40, save_steps=10, diagnostics_steps=10))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "from repro.cli import main; main()", "train", "--base-model", str(tiny_mlm),
           "--output", str(out), "--data", str(tmp_path / "triplets.tsv"), "--batch-size", "8", "--max-steps", "40",
           "--lr", "1e-3", "--lambda-q", "1e-3", "--lambda-d", "1e-3", "--reg-warmup-steps", "4", "--save-steps", "10",
           "--diagnostics-steps", "10", "--diagnostics-texts", "8", "--max-length", "24", "--seed", "7"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = Path(str(out) + ".work") / "checkpoints" / "checkpoint-10" / "trainer_state.json"
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if out.exists():
        pytest.skip("run finished before it could be killed")
    res = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    a, b = state_dict(Path(ref["output"])), state_dict(out)
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= 1e-6, worst


def test_freeze_encoder_trains_only_head(tiny_mlm, tmp_path):
    from repro.train.loop import run_training

    summary = run_training(make_cfg(tiny_mlm, tmp_path, max_steps=5, freeze_encoder=True))
    before = {k.removeprefix("bert.").removeprefix("cls."): v for k, v in state_dict(tiny_mlm).items()}
    after = state_dict(Path(summary["output"]))
    changed = {k for k, v in after.items() if not v.equal(before[k.split("model.", 1)[-1].removeprefix("bert.").removeprefix("cls.")])}
    assert changed and all("predictions" in k for k in changed), changed
    assert summary["decoder_tied_to_embeddings"] == 1


def test_config_file_and_flag_precedence(tmp_path, monkeypatch):
    from repro.cli import cli
    import repro.train.loop as loop

    seen = {}
    monkeypatch.setattr(loop, "run_training", lambda cfg: seen.setdefault("cfg", cfg) and {"ok": 1})
    conf = tmp_path / "c.toml"
    conf.write_text('base-model = "m"\ndata = "d.tsv"\nlambda_q = 0.5\nlambda-d = 0.4\nbatch-size = 4\nbf16 = true\n'
                    'probes = ["a b"]\n[notes]\ntext = "ignored"\n')
    res = CliRunner().invoke(cli, ["train", "--config", str(conf), "--output", "o", "--batch-size", "8", "--no-bf16"])
    assert res.exit_code == 0, res.output
    cfg = seen["cfg"]
    assert (cfg.lambda_q, cfg.lambda_d, cfg.batch_size, cfg.bf16, cfg.base_model) == (0.5, 0.4, 8, False, "m")
    assert cfg.probes == ["a b"] and cfg.lr == 2e-5
    conf.write_text("lamda_q = 1\n")
    res = CliRunner().invoke(cli, ["train", "--config", str(conf)])
    assert res.exit_code == 2 and "unknown setting 'lamda_q'" in res.output


def test_bad_lines_error_or_skip(tiny_mlm, tmp_path):
    from repro.train.data import build_dataset

    data = write_triplets(tmp_path / "t.tsv", n=10)
    with open(data, "a") as fh:
        fh.write("only a query\tand a positive\n")
    cfg = make_cfg(tiny_mlm, tmp_path, data=str(data))
    with pytest.raises(ReproError, match=r"t\.tsv:11: expected 3 tab-separated fields"):
        build_dataset(cfg, tmp_path / "cache1")
    cfg.skip_bad_lines = True
    ds, stats = build_dataset(cfg, tmp_path / "cache2")
    assert len(ds) == 10 and stats["skipped_lines"] == 1


def test_jsonl_scores_and_errors(tiny_mlm, tmp_path):
    from repro.train.data import build_dataset

    good = {"query": "q", "positive": "p", "negatives": ["n1", "n2"], "scores": [9.0, 3.0, 1.0]}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "scores": [1.0]}) + "\n")
    cfg = make_cfg(tiny_mlm, tmp_path, data=str(path), loss="margin-mse", num_negatives=2)
    with pytest.raises(ReproError, match=r"d\.jsonl:2: 'scores' must be 3 numbers"):
        build_dataset(cfg, tmp_path / "c1")
    path.write_text(json.dumps(good) + "\n")
    ds, _ = build_dataset(cfg, tmp_path / "c2")
    assert ds.column_names == ["query", "positive", "negative_1", "negative_2", "label"]
    assert ds[0]["label"] == [9.0, 3.0, 1.0]


def write_distill_jsonl(path: Path, seed: int, query_words: int = 1, rows: int = 16) -> Path:
    """Distillation rows (query, positive, 2 negatives, teacher scores) of random WORDS: the query is
    the positive's first ``query_words`` words, the positive scores 8, the negatives below 5."""
    rnd = random.Random(seed)
    with open(path, "w") as fh:
        for _ in range(rows):
            pos, n1, n2 = (" ".join(rnd.sample(WORDS, 6)) for _ in range(3))
            fh.write(json.dumps({"query": " ".join(pos.split()[:query_words]), "positive": pos,
                                 "negatives": [n1, n2], "scores": [8.0, rnd.uniform(0, 5), rnd.uniform(0, 5)]}) + "\n")
    return path


@pytest.mark.slow
def test_margin_mse_and_kl_train(tiny_mlm, tmp_path):
    from repro.train.loop import run_training

    path = write_distill_jsonl(tmp_path / "distill.jsonl", seed=1)
    for loss in ("margin-mse", "kl"):
        s = run_training(make_cfg(tiny_mlm, tmp_path, loss, data=str(path), loss=loss, num_negatives=2, max_steps=3))
        assert s["steps"] == 3


def test_id_triplets(tiny_mlm, tmp_path):
    from repro.train.data import build_dataset

    (tmp_path / "q.tsv").write_text("q1\tpython code\nq2\tparis food\n")
    (tmp_path / "c.tsv").write_text("d1\tpython is a language\nd2\tbistros in paris\n")
    (tmp_path / "ids.tsv").write_text("q1\td1\td2\nq2\td2\td1\nq2\td9\td1\n")
    cfg = make_cfg(tiny_mlm, tmp_path, data=str(tmp_path / "ids.tsv"), data_format="ids",
                   queries=str(tmp_path / "q.tsv"), corpus=str(tmp_path / "c.tsv"))
    with pytest.raises(ReproError, match=r"ids\.tsv:3: unknown id"):
        build_dataset(cfg, tmp_path / "c1")
    cfg.skip_bad_lines = True
    ds, stats = build_dataset(cfg, tmp_path / "c2")
    assert ds[1] == {"query": "paris food", "positive": "bistros in paris", "negative": "python is a language"}
    assert stats["skipped_lines"] == 1


def test_offline_hub_id_and_existing_output_are_clear_errors(tiny_mlm, tmp_path):
    from repro.train.loop import run_training
    from repro.train.model import load_sparse_encoder

    with pytest.raises(ReproError, match="offline"):
        load_sparse_encoder("naver/no-such-model-here-xyz")
    (tmp_path / "out").mkdir()
    with pytest.raises(ReproError, match="--force"):
        run_training(make_cfg(tiny_mlm, tmp_path))


def test_checkpoint_saved_in_bf16_trains_on_float32_weights(tiny_mlm, tmp_path):
    """A plain MLM folder and a SparseEncoder folder saved in bf16: training starts from float32
    master weights (bf16 training is autocast over them), the same values, upcast."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from repro.testing import build_sparse_encoder
    from repro.train.model import load_sparse_encoder

    plain = tmp_path / "plain-bf16"
    mlm = AutoModelForMaskedLM.from_pretrained(str(tiny_mlm)).to(torch.bfloat16)
    mlm.save_pretrained(plain)
    AutoTokenizer.from_pretrained(str(tiny_mlm)).save_pretrained(plain)
    packaged = build_sparse_encoder(tmp_path / "st-bf16", plain)
    expected = mlm.state_dict()["bert.embeddings.word_embeddings.weight"].float()
    for folder in (plain, packaged):
        model = load_sparse_encoder(str(folder), max_seq_length=32)
        dtypes = {p.dtype for p in model.parameters()}
        assert dtypes == {torch.float32}, (folder.name, dtypes)
        embeddings = model.state_dict()
        key = next(k for k in embeddings if k.endswith("word_embeddings.weight"))
        assert torch.equal(embeddings[key], expected), folder.name


@pytest.mark.slow
def test_dev_evaluation_while_training_and_best_model(tiny_mlm, tmp_path):
    from sentence_transformers.sparse_encoder import SparseEncoder

    from repro.train.dev import DevSet, evaluate
    from repro.train.loop import run_training

    rnd = random.Random(5)
    docs = {f"d{i}": " ".join(rnd.sample(WORDS, 8)) for i in range(30)}
    (tmp_path / "dev-corpus.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in docs.items()))
    (tmp_path / "dev-q.tsv").write_text("".join(f"q{i}\t{' '.join(docs[f'd{i}'].split()[:3])}\n" for i in range(10)))
    (tmp_path / "dev-qrels.txt").write_text("".join(f"q{i} 0 d{i} 1\n" for i in range(10)))
    cfg = make_cfg(tiny_mlm, tmp_path, max_steps=8, diagnostics_steps=4, dev_queries=str(tmp_path / "dev-q.tsv"),
                   dev_corpus=str(tmp_path / "dev-corpus.tsv"), dev_qrels=str(tmp_path / "dev-qrels.txt"))
    summary = run_training(cfg)
    out = Path(summary["output"])
    recs = records(out)
    assert [r["step"] for r in recs] == [0, 4, 8]
    for r in recs:
        assert 0 <= r["dev_ndcg@10"] <= 1 and 0 <= r["dev_rr@10"] <= 1 and "flops" in r and r["dev_queries"] == 10
    best = summary["best"]
    assert best["value"] == max(r["dev_ndcg@10"] for r in recs)
    assert best["step"] == min(r["step"] for r in recs if r["dev_ndcg@10"] == best["value"])
    # the saved best model scores what the log says it scored
    again = evaluate(SparseEncoder(str(out / "best"), local_files_only=True),
                     DevSet.load(cfg.dev_queries, cfg.dev_corpus, cfg.dev_qrels))
    assert again["aggregate"]["ndcg@10"] == pytest.approx(best["value"], abs=1e-6)
    card = (out / "README.md").read_text()
    assert "Dev curve" in card and f"step {best['step']}" in card
    assert (out / "diagnostics.png").stat().st_size > 1000


def test_dev_measures_match_the_repro_evaluator(tmp_path):
    """The in-training nDCG@10 / RR@10 equal `repro evaluate` on the same ranking written as a run."""
    from repro.evaluate.evaluation import evaluate as repro_evaluate
    from repro.formats.qrels import read_qrels
    from repro.formats.runs import read_run
    from repro.train.dev import measure

    run = {"q1": [("d3", 2.0), ("d1", 2.0), ("d2", 1.0)], "q2": [("d9", 1.0)], "q3": []}
    qrels = {"q1": {"d1": 2, "d2": 1}, "q2": {"d5": 1}, "q3": {"d1": 1}}
    agg, per_query = measure(run, qrels)
    (tmp_path / "q.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q, docs in qrels.items() for d, r in docs.items()))
    (tmp_path / "r.trec").write_text("".join(f"{q} Q0 {d} {i + 1} {10 - i} t\n" for q, hits in run.items()
                                             for i, (d, _) in enumerate(hits)))
    ev = repro_evaluate([read_run(tmp_path / "r.trec")], read_qrels(tmp_path / "q.txt"), ["nDCG@10", "RR@10"])
    assert per_query["q1"]["rr@10"] == 0.5 and per_query["q3"]["ndcg@10"] == 0.0
    assert agg["rr@10"] == pytest.approx(0.5 / 3)
    assert ev.runs[0].aggregate["nDCG@10"] == pytest.approx(agg["ndcg@10"], abs=1e-9)
    assert ev.runs[0].aggregate["RR@10"] == pytest.approx(agg["rr@10"], abs=1e-9)


def test_push_to_hub_offline_keeps_the_model(tiny_mlm, tmp_path, monkeypatch):
    from repro.train.loop import run_training

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    cfg = make_cfg(tiny_mlm, tmp_path, max_steps=2, push_to_hub="someone/repro-test-model")
    with pytest.raises(ReproError, match="saved here, but pushing it to the hub as 'someone/repro-test-model' failed") as err:
        run_training(cfg)
    assert "\n" not in str(err.value.message)
    out = Path(cfg.output)
    assert (out / "model.safetensors").exists() or list(out.rglob("model.safetensors"))
    assert (out / "README.md").exists()


def test_hub_dataset_by_ids_and_texts_from_a_local_folder(tiny_mlm, tmp_path):
    """`hf:` data, read streaming through `datasets` from a pre-placed folder in the hub layout."""
    from repro.train.data import build_dataset

    ds_dir = tmp_path / "msmarco"
    (ds_dir / "bert-ensemble-margin-mse").mkdir(parents=True)
    (ds_dir / "bert-ensemble-margin-mse" / "train.jsonl").write_text(
        json.dumps({"query_id": 1, "positive_id": 10, "negative_id": 11, "score": 4.5}) + "\n"
        + json.dumps({"query_id": 2, "positive_id": 11, "negative_id": 10, "score": -1.25}) + "\n")
    (tmp_path / "queries.tsv").write_text("1\tpython code\n2\tparis food\n")
    (tmp_path / "corpus.tsv").write_text("10\tpython is a language\n11\tbistros\tin paris\n")
    cfg = make_cfg(tiny_mlm, tmp_path, data=f"hf:{ds_dir}:bert-ensemble-margin-mse", loss="margin-mse",
                   num_negatives=1, queries=str(tmp_path / "queries.tsv"), corpus=str(tmp_path / "corpus.tsv"))
    ds, stats = build_dataset(cfg, tmp_path / "c1")
    assert ds[0] == {"query": "python code", "positive": "python is a language", "negative": "bistros in paris",
                     "label": [4.5, 0.0]}
    assert ds[1]["label"] == [-1.25, 0.0] and stats["rows"] == 2
    cfg.queries = None
    with pytest.raises(ReproError, match="holds ids: pass --queries"):
        build_dataset(cfg, tmp_path / "c2")
    (ds_dir / "triplet-3").mkdir()
    (ds_dir / "triplet-3" / "train.jsonl").write_text(json.dumps(
        {"query": "q", "positive": "p", "negative_1": "n1", "negative_2": "n2", "negative_3": "n3"}) + "\n")
    cfg = make_cfg(tiny_mlm, tmp_path, data=f"hf:{ds_dir}:triplet-3", num_negatives=3)
    ds, _ = build_dataset(cfg, tmp_path / "c3")
    assert ds[0] == {"query": "q", "positive": "p", "negative_1": "n1", "negative_2": "n2", "negative_3": "n3"}


def test_hub_dataset_offline_is_one_line_naming_the_id(tiny_mlm, tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants as hc

    from repro.train.data import build_dataset

    for mod, key in ((datasets.config, "HF_HUB_OFFLINE"), (hc, "HF_HUB_OFFLINE")):
        monkeypatch.setattr(mod, key, True, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    cfg = make_cfg(tiny_mlm, tmp_path, data="hf:sentence-transformers/msmarco:bert-ensemble-margin-mse",
                   loss="margin-mse", num_negatives=1)
    with pytest.raises(ReproError, match=r"cannot read Hugging Face dataset 'sentence-transformers/msmarco:bert-ensemble-margin-mse'") as err:
        build_dataset(cfg, tmp_path / "c")
    assert "\n" not in err.value.message
