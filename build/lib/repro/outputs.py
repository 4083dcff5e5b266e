"""Atomic file output: every artefact appears complete or not at all (temp file + rename)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from repro.errors import ReproError

TMP_PREFIX = ".tmp-"


def _explain_os_error(err: OSError, path: Path) -> ReproError:
    """Turn disk-full / permission errors into one clear line naming the output."""
    if err.errno == errno.ENOSPC:
        return ReproError("no space left on device while writing; nothing was kept", path)
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ReproError("cannot write here (permission denied or read-only file system)", path)
    return ReproError(f"cannot write: {err.strerror or err}", path)


def check_writable(path: Path, force: bool = False) -> None:
    """Refuse to overwrite an existing output unless --force; fail early on unwritable folders."""
    path = Path(path)
    if path.exists() and not force:
        raise ReproError("output exists; pass --force to overwrite it", path)
    parent = path.parent if path.parent != Path("") else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _explain_os_error(err, parent) from err
    if not os.access(parent, os.W_OK):
        raise ReproError("cannot write here (permission denied or read-only file system)", parent)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside ``path``; rename it over ``path`` only if the block succeeds.

    fsync before rename so a power loss cannot leave a renamed-but-empty file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    except OSError as err:
        raise _explain_os_error(err, path) from err
    kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        raise _explain_os_error(err, path) from err
    except BaseException:
        _remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Build a folder under a temp name; swap it into place only when the block succeeds."""
    path = Path(path)
    check_writable(path, force=force)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _explain_os_error(err, path) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write a whole text file atomically."""
    with atomic_write(path) as handle:
        handle.write(text)


def _remove_quietly(path: str | Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def remove_stale_temps(folder: Path) -> int:
    """Delete temp files a killed run left behind; they are never part of an output."""
    count = 0
    if folder.is_dir():
        for item in folder.iterdir():
            if item.name.startswith(TMP_PREFIX):
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    _remove_quietly(item)
                count += 1
    return count
