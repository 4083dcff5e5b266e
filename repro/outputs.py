"""Outputs: atomic writes, the --force / ownership rule, stale temps, and permissions (one home each).

- Atomic: every artefact appears complete or not at all (temp file or folder beside it + rename).
- Ownership (`prepare_output`): an output that is, contains or lies inside an input of the command
  is refused; an existing output is replaced only with ``--force`` and only when it is an earlier
  `repro` output of the same kind (its manifest says so: `repro.manifest`) or an empty folder
  (`repro encode` has its own resume rule for its folder). Nothing `repro` did not write is ever deleted. With ``--force`` the new output is built
  beside the old one and swapped in only when complete, so a failed run keeps the old one.
- Stale temps: a killed run leaves ``.tmp-<name>.*`` beside its output; the next run of the same
  output removes those (and only those: other outputs' temps in the same folder are not touched).
- Permissions: outputs honour the umask (files 0666 & ~umask, folders 0777 & ~umask), although
  mkstemp/mkdtemp create them 0600/0700.
- Several ranks (`repro.distributed`): only rank 0 deletes anything.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from repro.distributed import is_main_process
from repro.errors import ReproError

TMP_PREFIX = ".tmp-"
DIR_MANIFEST = "manifest.json"  # the same names as repro.manifest (which imports this module)
MANIFEST_SUFFIX = ".manifest.json"


def _explain_os_error(err: OSError, path: Path) -> ReproError:
    """Turn disk-full / permission errors into one clear line naming the output."""
    if err.errno == errno.ENOSPC:
        return ReproError("no space left on device while writing; nothing was kept", path)
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ReproError("cannot write here (permission denied or read-only file system)", path)
    return ReproError(f"cannot write: {err.strerror or err}", path)


def current_umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _chmod_per_umask(path: str | Path, folder: bool) -> None:
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


# --- ownership ------------------------------------------------------------------------------------


def _resolved(path: str | Path) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path)))).resolve()


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def refuse_overlap(output: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """An output that is, contains or lies inside an input would destroy that input: refused."""
    out = _resolved(output)
    for item in inputs:
        if item is None or str(item) == "" or not Path(str(item)).expanduser().exists():
            continue  # an ir_datasets ID or a hub model name: nothing on disk to protect
        inp = _resolved(item)
        if out == inp:
            raise ReproError(f"the output is the input {item}; choose another output path", output)
        if _within(inp, out):
            raise ReproError(f"the output folder contains the input {item}; choose another output path", output)
        if inp.is_dir() and _within(out, inp):
            raise ReproError(f"the output lies inside the input folder {item}; choose another output path", output)


def output_manifest(path: str | Path) -> Path:
    """Where an output's manifest lives (inside a folder, beside a file)."""
    path = Path(path)
    return path / DIR_MANIFEST if path.is_dir() else path.with_name(path.name + MANIFEST_SUFFIX)


def written_by_repro(path: str | Path, kind: str) -> bool:
    """True when ``path`` is a `repro` output of this kind: its manifest names the stage ``kind``."""
    import json

    manifest = output_manifest(path)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("stage") == kind


def prepare_output(path: str | Path, kind: str, *, inputs: Iterable[str | Path | None] = (), force: bool = False,
                   folder: bool = False) -> Path:
    """Check that ``path`` may become this command's output; clean its own stale temps; return it.

    ``kind`` is the manifest stage of this output (``index``, ``search``, ``encode-queries``,
    ``train``, ...); ``folder`` says whether the output is a folder. Refuses: an output that is,
    contains or lies inside an input; a file where a folder is wanted and the reverse; an existing
    output without ``--force``; with ``--force``, anything that is not an earlier repro output of
    the same kind (a non-empty folder or a file without such a manifest).
    """
    path = Path(path)
    refuse_overlap(path, inputs)
    if path.exists() or path.is_symlink():
        if folder and not path.is_dir():
            raise ReproError("the output is an existing file; this command writes a folder: give a folder path", path)
        if not folder and path.is_dir():
            raise ReproError("the output is an existing folder; this command writes a file: give a file path", path)
        if not force:
            raise ReproError("output exists; pass --force to replace it (only an earlier repro output "
                             "of this kind is replaced)", path)
        empty_folder = path.is_dir() and not any(path.iterdir())
        if not empty_folder:
            if not written_by_repro(path, kind):
                what = "folder is not empty and is not" if path.is_dir() else "file is not"
                raise ReproError(f"the output {what} a repro {kind} output (no manifest saying so); "
                                 "--force replaces only those: move it away or choose another output", path)
    parent = _writable_parent(path)
    remove_stale_temps(parent, path.name)
    return path


def check_writable(path: Path, force: bool = False) -> None:
    """Refuse to overwrite an existing output unless --force; fail early on unwritable folders.

    Prefer `prepare_output`, which also knows who owns the existing output.
    """
    path = Path(path)
    if path.exists() and not force:
        raise ReproError("output exists; pass --force to overwrite it", path)
    _writable_parent(path)


def _writable_parent(path: Path) -> Path:
    """The output's folder, created if needed; an error naming it when nothing can be written there."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _explain_os_error(err, parent) from err
    if not os.access(parent, os.W_OK):
        raise ReproError("cannot write here (permission denied or read-only file system)", parent)
    return parent


# --- atomic writes --------------------------------------------------------------------------------


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
        _chmod_per_umask(tmp, folder=False)
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        raise _explain_os_error(err, path) from err
    except BaseException:
        _remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool = False, *, kind: str | None = None,
               inputs: Iterable[str | Path | None] = ()) -> Iterator[Path]:
    """Build a folder under a temp name beside ``path``; swap it into place only when the block succeeds.

    With ``kind``, `prepare_output` decides whether an existing ``path`` may be replaced; without
    it (internal callers) an existing folder is replaced only with ``force``. The old folder is
    moved aside, the new one renamed in, and only then the old one deleted.
    """
    path = Path(path)
    if kind is not None:
        prepare_output(path, kind, inputs=inputs, force=force, folder=True)
    else:
        check_writable(path, force=force)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent))
    except OSError as err:
        raise _explain_os_error(err, path) from err
    try:
        yield tmp
        _chmod_tree(tmp)
        swap_in(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _explain_os_error(err, path) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def swap_in(new: Path, path: Path) -> None:
    """Put the finished folder ``new`` at ``path``; an old folder there is moved aside first, then removed."""
    old = None
    if path.is_dir() and any(path.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + path.name + ".old-", dir=path.parent))
        os.replace(path, old / "previous")
    elif path.is_dir():
        path.rmdir()
    os.replace(new, path)
    if old is not None and is_main_process():
        shutil.rmtree(old, ignore_errors=True)


def _chmod_tree(folder: Path) -> None:
    """mkdtemp made the folder 0700; give it (and any temp-made files inside) the umask's mode."""
    _chmod_per_umask(folder, folder=True)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            _chmod_per_umask(os.path.join(root, name), folder=True)
        for name in files:
            full = os.path.join(root, name)
            with contextlib.suppress(OSError):
                if os.stat(full).st_mode & 0o777 == 0o600:
                    _chmod_per_umask(full, folder=False)


def write_text(path: str | Path, text: str) -> None:
    """Write a whole text file atomically."""
    with atomic_write(path) as handle:
        handle.write(text)


def _remove_quietly(path: str | Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def remove_stale_temps(folder: Path, name: str | None = None) -> int:
    """Delete temps a killed run left behind in ``folder`` (only those of output ``name`` when given).

    Temps are never part of an output. Only rank 0 deletes (other ranks may still be writing).
    """
    count = 0
    if not is_main_process():
        return count
    prefix = TMP_PREFIX + (name + "." if name else "")
    folder = Path(folder)
    if folder.is_dir():
        for item in folder.iterdir():
            if item.name.startswith(prefix):
                if item.is_dir() and not item.is_symlink():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    _remove_quietly(item)
                count += 1
    return count
