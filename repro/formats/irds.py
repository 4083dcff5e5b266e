"""ir_datasets: the one rule for what is a dataset ID, and one clear error when data cannot be had.

Rule: a source that exists on disk is a file (or folder). Otherwise it is an ir_datasets ID exactly
when ir_datasets' own registry knows it (``msmarco-passage``, ``cranfield``, ``beir/scifact/test``,
with or without a slash). A name that is shaped like an ID (no file suffix) but unknown is reported
as an unknown ID; anything else as a missing file. Every reader (corpus, topics, qrels, training
data) and every preset location goes through `classify` / `local_source`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from repro.errors import ReproError

_ID_SHAPE = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)*$")
_FILE_SUFFIXES = {".txt", ".qrels", ".tsv", ".gz", ".trec", ".csv", ".jsonl", ".json", ".qry", ".smart", ".xml", ".zip"}


def in_registry(text: str) -> bool:
    """Whether ir_datasets' registry has this ID (importing ir_datasets costs about 0.2 s, no network)."""
    try:
        import ir_datasets
    except ImportError:  # pragma: no cover - a core dependency
        return False
    return text in ir_datasets.registry


def is_dataset_id(source: str | Path) -> bool:
    """An ir_datasets ID: not an existing path, and known to ir_datasets' registry."""
    text = str(source)
    if not text or "${" in text or text.startswith(("/", ".", "~")) or Path(text).exists():
        return False
    return bool(_ID_SHAPE.match(text)) and in_registry(text)


def id_shaped(text: str) -> bool:
    """Looks like an ID rather than a file name (used only to word the error for an unknown one)."""
    return bool(_ID_SHAPE.match(text)) and Path(text).suffix.lower() not in _FILE_SUFFIXES and (
        "/" in text or not Path(text).suffix)


def local_source(source: str | Path, what: str) -> Path | None:
    """None for an ir_datasets ID; otherwise the path, which must exist (an error naming it otherwise)."""
    if is_dataset_id(source):
        return None
    path = Path(source)
    if path.exists():
        return path
    text = str(source)
    if id_shaped(text) and "/" in text:
        raise ReproError(f"unknown ir_datasets ID {text!r} (and no such file)")
    raise ReproError(f"{what} not found (neither a file nor an ir_datasets ID)", path)


def load(dataset_id: str) -> Any:
    """``ir_datasets.load`` with an error naming the ID instead of a KeyError."""
    import ir_datasets

    try:
        return ir_datasets.load(dataset_id)
    except KeyError:
        raise ReproError(f"unknown ir_datasets ID {dataset_id!r} (and no such file)") from None


# Where ir_datasets reads the MS MARCO passage files the presets use (relative to IR_DATASETS_HOME;
# the folder also needs irds_version.txt containing "v2", or ir_datasets deletes the files).
_PLACES = {
    ("msmarco-passage", "docs"): "msmarco-passage/collection.tsv",
    ("msmarco-passage/dev/small", "queries"): "msmarco-passage/dev/small/queries.tsv",
    ("msmarco-passage/dev/small", "qrels"): "msmarco-passage/dev/small/qrels",
    ("msmarco-passage/trec-dl-2019", "queries"): "msmarco-passage/trec-dl-2019/queries.tsv",
    ("msmarco-passage/trec-dl-2019", "qrels"): "msmarco-passage/trec-dl-2019/qrels",
    ("msmarco-passage/trec-dl-2020", "queries"): "msmarco-passage/trec-dl-2020/queries.tsv.gz",
    ("msmarco-passage/trec-dl-2020", "qrels"): "msmarco-passage/trec-dl-2020/qrels",
}


def offline_error(dataset_id: str, what: str, err: BaseException) -> ReproError:
    """The message for a download that failed: the normal state on a machine without network;
    it says what to place where (IR_DATASETS_HOME/<id>/...)."""
    import os

    home = os.environ.get("IR_DATASETS_HOME", "~/.ir_datasets")
    place = _PLACES.get((dataset_id.removesuffix("/judged"), what))
    if place:
        where = (f"the file as $IR_DATASETS_HOME/{place}, with $IR_DATASETS_HOME/{place.split('/')[0]}/irds_version.txt "
                 f"containing v2 (IR_DATASETS_HOME={home})")
    else:
        where = f"the files under $IR_DATASETS_HOME/{dataset_id.split('/')[0]}/ (IR_DATASETS_HOME={home})"
    return ReproError(
        f"ir_datasets could not provide the {what} of {dataset_id!r} ({type(err).__name__}); "
        f"no network? Pre-place {where}, pass a local file instead, or give a preset a local BEIR folder with "
        "`repro reproduce PRESET --source DIR`"
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
