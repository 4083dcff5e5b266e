"""Two processes on CPU (torchrun, gloo): 2 ranks x batch 8 train like 1 rank x batch 16.

Same loss curve, same FLOPS regulariser values, same final weights within 1e-5 (float32 sums in
a different order); only rank 0 writes the output. Dropout is set to 0 in the tiny model, since
two processes draw different dropout masks than one (that is randomness, not the arithmetic under test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_train import records, state_dict, write_triplets

REPRO = str(Path(sys.executable).parent / "repro")


def _no_dropout(folder: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(cfg))


def _args(tiny: Path, data: Path, out: Path, batch: int) -> list[str]:
    return ["train", "--base-model", str(tiny), "--output", str(out), "--data", str(data), "--batch-size", str(batch),
            "--max-steps", "6", "--lr", "1e-3", "--lambda-q", "0.05", "--lambda-d", "0.05", "--reg-warmup-steps", "0",
            "--save-steps", "3", "--diagnostics-steps", "1", "--diagnostics-texts", "4", "--max-length", "24",
            "--seed", "7", "--allow-duplicates", "--num-negatives", "1"]


@pytest.mark.slow
@pytest.mark.skipif(not Path(REPRO).exists(), reason="the repro console script is not installed")
def test_two_ranks_equal_one_rank_with_the_whole_batch(tiny_mlm, tmp_path):
    _no_dropout(tiny_mlm)
    data = write_triplets(tmp_path / "t.tsv", n=48)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    one = subprocess.run([REPRO, *_args(tiny_mlm, data, tmp_path / "one", 16)], capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                          "--no-python", REPRO, *_args(tiny_mlm, data, tmp_path / "two", 8)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = records(tmp_path / "one"), records(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(7))
    for ra, rb in zip(a[1:], b[1:]):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-4, abs=1e-5), (ra["step"], ra["loss"], rb["loss"])
        assert rb["flops_d_weighted"] == pytest.approx(ra["flops_d_weighted"], rel=1e-4, abs=1e-6)
        assert rb["flops_q_weighted"] == pytest.approx(ra["flops_q_weighted"], rel=1e-4, abs=1e-6)
    wa, wb = state_dict(tmp_path / "one"), state_dict(tmp_path / "two")
    worst = max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)
    assert worst <= 1e-5, worst
    summary = json.loads((tmp_path / "two" / "training-summary.json").read_text())
    assert summary["steps"] == 6 and summary["train_rows"] == 48


@pytest.mark.slow
@pytest.mark.skipif(not Path(REPRO).exists(), reason="the repro console script is not installed")
def test_a_user_error_on_rank_0_ends_every_rank(tiny_mlm, tmp_path):
    data = write_triplets(tmp_path / "t.tsv", n=16)
    (tmp_path / "exists").mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29518",
                          "--no-python", REPRO, *_args(tiny_mlm, data, tmp_path / "exists", 8)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode != 0
    assert "output exists; pass --force to" in res.stderr
    assert "rank 0 stopped: " in res.stderr  # rank 1 reports rank 0's error instead of hanging
