"""Shared fixtures: the real offline data in ../shared (skipped cleanly when absent) and tiny models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _shared_root() -> Path:
    return Path(os.environ.get("REPRO_SHARED", ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $REPRO_SHARED_DATA); the test is skipped when it is not there."""
    path = Path(os.environ.get("REPRO_SHARED_DATA", _shared_root() / "data"))
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set REPRO_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def splade_tiny() -> Path:
    """The real trained splade-tiny model from ../shared/models (skipped when absent)."""
    path = Path(os.environ.get("REPRO_SPLADE_TINY", _shared_root() / "models" / "splade-tiny"))
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"splade-tiny not found at {path}")
    return path


@pytest.fixture(scope="session")
def cranfield_splade_collection(tmp_path_factory, shared_data, splade_tiny) -> Path:
    """Real Cranfield (1,400 documents) encoded once by `repro encode` with splade-tiny at 256 tokens,
    read-only: the tests that index and search it share the half minute of encoding."""
    from click.testing import CliRunner

    from repro.cli import cli

    out = tmp_path_factory.mktemp("cranfield-splade") / "coll"
    result = CliRunner().invoke(cli, ["encode", str(shared_data / "cranfield" / "cran.all.1400"), "-m", str(splade_tiny),
                                      "-o", str(out), "--max-length", "256", "-q"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def _tiny_mlm_session(tmp_path_factory) -> Path:
    from repro.testing import build_random_mlm

    return build_random_mlm(tmp_path_factory.mktemp("tiny-mlm") / "model")


@pytest.fixture
def tiny_mlm(_tiny_mlm_session, tmp_path) -> Path:
    """A fresh copy (per test) of a 2-layer random BERT MLM with its own WordPiece tokenizer."""
    dest = tmp_path / "tiny-mlm"
    shutil.copytree(_tiny_mlm_session, dest)
    return dest


@pytest.fixture(scope="module")
def small_collection(tmp_path_factory, _tiny_mlm_session) -> Path:
    """A finished 30-document collection (3 shards), made once per module and copied by tests that damage it."""
    from faultkit import make_corpus

    from repro.encode.documents import encode_corpus

    tmp = tmp_path_factory.mktemp("coll")
    make_corpus(tmp / "corpus.tsv", 30)
    encode_corpus(str(tmp / "corpus.tsv"), tmp / "coll", model=str(_tiny_mlm_session), shard_size=10, progress=False)
    return tmp / "coll"


@pytest.fixture
def collection(small_collection, tmp_path) -> Path:
    """A fresh copy of `small_collection` for one test."""
    dest = tmp_path / "coll"
    shutil.copytree(small_collection, dest)
    return dest


@pytest.fixture
def cli(capsys):
    """Run `repro ARGS...` through the real entry point in this process (faultkit.repro_main)."""
    from faultkit import repro_main

    return lambda *args: repro_main(capsys, *args)


@pytest.fixture
def model(_tiny_mlm_session) -> Path:
    """The tiny random MLM, shared read-only by tests that only encode with it."""
    return _tiny_mlm_session
