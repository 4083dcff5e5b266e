"""Helpers shared by the fault-injection and bad-input suites (not a test module).

`repro_main` runs the real entry point (`repro.cli.main`, the one the `repro` script calls) in this
process, so the one-line error formatting and exit codes are exactly what a user sees, without
paying a Python + torch start-up per case.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

BAD = Path(__file__).resolve().parent / "bad_inputs"
WORDS = ("python programming language code data science web server aerodynamics wing lift flow heat "
         "boundary layer plate supersonic paris restaurants food cafe river fox dog spider legs bert "
         "tokens sparse lucene index query retrieval ranking military fruit australia caffeine").split()


@dataclass
class Result:
    code: int
    out: str
    err: str


def repro_main(capsys, *args) -> Result:
    """Run `repro ARGS` through `repro.cli.main` in-process; return exit code, stdout, stderr."""
    from repro.cli import main

    import signal

    old, handler = sys.argv, signal.getsignal(signal.SIGINT)
    sys.argv = ["repro", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) else (0 if ex.code is None else 1)
    finally:
        sys.argv = old
        signal.signal(signal.SIGINT, handler)  # `repro.errors.success` ignores Ctrl-C after the success line
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_user_error(res: Result, *fragments: str, path: str | Path | None = None, line: int | None = None,
                      code: int = 2) -> str:
    """Exit code 2, exactly one `error:` line (naming the file and line when given), no traceback."""
    assert res.code == code, (res.code, res.out, res.err)
    assert "Traceback" not in res.err and "Traceback" not in res.out, res.err
    errors = [ln for ln in res.err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, res.err
    message = errors[0]
    if path is not None:
        where = f"{path}:{line}: " if line is not None else f"{path}"
        assert where in message, (where, message)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def temp_files(root: Path) -> list[Path]:
    return sorted(root.rglob(".tmp-*"))


def assert_nothing_left(root: Path, *outputs: Path) -> None:
    """No output path and no temp file: a failed command leaves nothing half-written behind."""
    for out in outputs:
        assert not Path(out).exists(), f"partial output left behind: {out}"
    assert temp_files(root) == [], temp_files(root)


def make_corpus(path: Path, n: int, seed: int = 3, min_words: int = 3, max_words: int = 30) -> list[str]:
    rng = random.Random(seed)
    ids = [f"d{i:04d}" for i in range(n)]
    path.write_text("".join(f"{i}\t{' '.join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words)))}\n"
                            for i in ids), encoding="utf-8")
    return ids


def shard_bytes(coll: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((coll / "shards").iterdir())}


def collection_ids(coll: Path) -> list[str]:
    import json

    return [json.loads(line)["id"] for p in sorted((coll / "shards").glob("part-*.jsonl"))
            for line in p.read_text(encoding="utf-8").splitlines()]


def repro_cmd() -> list[str]:
    """The installed `repro` script when present (what users run), else `python -m`-style entry."""
    script = Path(sys.executable).with_name("repro")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from repro.cli import main; main()"]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore", **extra})
    return env


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """Mount a small tmpfs at ``folder`` (root only); skip the test where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)
