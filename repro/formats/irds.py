"""ir_datasets access with one clear error when a dataset is unknown or cannot be downloaded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from repro.errors import ReproError

_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*(/[A-Za-z0-9_.\-]+)+$")


def looks_like_irds_id(source: str | Path) -> bool:
    """An ir_datasets ID is a slash-separated name that is not an existing path."""
    text = str(source)
    return not Path(text).exists() and bool(_ID.match(text))


def local_source(source: str | Path, what: str) -> Path | None:
    """None for an ir_datasets ID; otherwise the path, which must exist (error naming it)."""
    if looks_like_irds_id(source):
        return None
    path = Path(source)
    if not path.exists():
        raise ReproError(f"{what} not found (neither a file nor an ir_datasets ID)", path)
    return path


def load(dataset_id: str) -> Any:
    """``ir_datasets.load`` with an error naming the ID instead of a KeyError."""
    import ir_datasets

    try:
        return ir_datasets.load(dataset_id)
    except KeyError:
        raise ReproError(f"unknown ir_datasets ID {dataset_id!r} (and no such file)") from None


def offline_error(dataset_id: str, what: str, err: BaseException) -> ReproError:
    """The message for a download that failed: the normal state on a machine without network."""
    return ReproError(
        f"ir_datasets could not provide the {what} of {dataset_id!r} ({type(err).__name__}); "
        "no network? Pre-place the files under $IR_DATASETS_HOME or pass a local file instead"
    )


def iterate(dataset_id: str, what: str):
    """Iterate ``docs``/``queries``/``qrels``/``docpairs`` of a dataset, turning download failures into one line."""
    dataset = load(dataset_id)
    has = getattr(dataset, f"has_{what}", None)
    if has is not None and not has():
        raise ReproError(f"ir_datasets {dataset_id!r} has no {what}")
    try:
        yield from getattr(dataset, f"{what}_iter")()
    except ReproError:
        raise
    except Exception as err:  # ConnectionError, DownloadError, HTTPError... all mean "not available here"
        raise offline_error(dataset_id, what, err) from err
