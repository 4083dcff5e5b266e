"""Where things live, decided in one place: caches, shared data, the installed package, results, user presets.

Results are relative to the current directory unless the user says otherwise, both for writing
(`repro reproduce` -> ./runs) and reading (`repro report` <- ./runs, -> ./docs), so an installed
wheel works from any folder and a source checkout behaves the same when run from its root.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PRESETS_ENV = "REPRO_PRESETS"  # a folder of user presets (*.toml), searched after the shipped ones


def cache_root() -> Path:
    """$REPRO_CACHE, else ~/.cache/repro: models fetched from PyPI, ONNX exports, the demo's work."""
    return Path(os.environ.get("REPRO_CACHE", Path.home() / ".cache" / "repro"))


def shared_root() -> Path:
    """The shared data root that presets call ``${shared}``: $REPRO_SHARED_DATA, $REPRO_SHARED/data, ../shared/data."""
    if os.environ.get("REPRO_SHARED_DATA"):
        return Path(os.environ["REPRO_SHARED_DATA"])
    if os.environ.get("REPRO_SHARED"):
        return Path(os.environ["REPRO_SHARED"]) / "data"
    return (PACKAGE_DIR.parent.parent / "shared" / "data").resolve()


def runs_dir(explicit: str | Path | None = None) -> Path:
    """Where runs and evaluations are written and read: the given folder, else ./runs."""
    return Path(explicit) if explicit else Path("runs")


def docs_dir(explicit: str | Path | None = None) -> Path:
    """Where `repro report` writes its page and figures: the given folder, else ./docs."""
    return Path(explicit) if explicit else Path("docs")


def user_preset_dirs(explicit: str | Path | None = None) -> list[Path]:
    """Folders of user presets: the one given by flag, else $REPRO_PRESETS (os.pathsep-separated)."""
    if explicit:
        return [Path(explicit)]
    return [Path(p) for p in os.environ.get(PRESETS_ENV, "").split(os.pathsep) if p]
