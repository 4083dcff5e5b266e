"""BEIR dataset folders as ONE source: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

This is the layout of the BEIR zips (``beir/scifact/`` after unzipping): a corpus line is
``{"_id", "title", "text", "metadata"?}``, a query line ``{"_id", "text", "metadata"?}``, and
``qrels/{train,dev,test}.tsv`` has a header line ``query-id<TAB>corpus-id<TAB>score``. Each file may
also be gzip-compressed (``corpus.jsonl.gz``).

Text of a document: ``f"{title} {text}"`` (one space) when the title is not empty, else the text:
the join of Pyserini's SPLADE document encoder for BEIR (`SpladeDocumentEncoder`, castorini/pyserini
pyserini/encode/_splade.py) and of ir_datasets' ``default_text()``. Anserini's BM25 "flat" BEIR
indexes join with a newline instead (`BeirFlatCollection`: ``title + "\\n" + text``); Lucene's
analyzer treats the two alike, so one text serves both. ``metadata`` is not indexed.

Queries of a split are the queries that its qrels judge, in ``queries.jsonl`` order (what
ir_datasets' ``beir/<name>/<split>`` gives); without a ``qrels/`` folder every query is used.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from repro.errors import BadInputError, ReproError, short
from repro.formats.ids import clean_id
from repro.formats.textio import ReadCounts, iter_json_objects, iter_lines

log = logging.getLogger(__name__)

SPLITS = ("test", "dev", "train")
QRELS_HEADER = ("query-id", "corpus-id", "score")


def _file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def is_folder(source: str | Path) -> bool:
    """A folder with a BEIR ``corpus.jsonl`` or ``queries.jsonl`` (plain or .gz)."""
    path = Path(source)
    return path.is_dir() and (_file(path, "corpus.jsonl") or _file(path, "queries.jsonl")) is not None


def _need(folder: Path, name: str) -> Path:
    found = _file(Path(folder), name)
    if found is None:
        raise ReproError(f"not a complete BEIR folder: no {name} (or {name}.gz)", folder)
    return found


def splits(folder: str | Path) -> list[str]:
    """The splits that have qrels in this folder."""
    qrels = Path(folder) / "qrels"
    if not qrels.is_dir():
        return []
    return sorted(p.name.removesuffix(".gz").removesuffix(".tsv") for p in qrels.iterdir()
                  if p.name.endswith((".tsv", ".tsv.gz")))


def qrels_file(folder: str | Path, split: str) -> Path:
    """``qrels/<split>.tsv`` (or .gz), or an error listing the splits the folder has."""
    folder = Path(folder)
    found = _file(folder / "qrels", f"{split}.tsv")
    if found is None:
        have = splits(folder)
        raise ReproError(f"BEIR folder has no qrels for split {split!r} "
                         f"({'has: ' + ', '.join(have) if have else 'no qrels/ folder'}); pass --split", folder)
    return found


def _records(path: Path, stats: ReadCounts | None, skip: bool = False) -> Iterator[tuple[int, dict]]:
    return iter_json_objects(path, stats, skip)


def _text(record: dict, key: str, path: Path, lineno: int, required: bool) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise BadInputError(f"record has no {key!r}", path, lineno)
        return ""
    if not isinstance(value, str):
        raise BadInputError(f"{key!r} is a {type(value).__name__}, not a string", path, lineno)
    return value


def join_title(title: str, text: str) -> str:
    """Pyserini's BEIR join for SPLADE: ``f"{title} {text}"``; no leading space when there is no title."""
    return f"{title} {text}" if title.strip() else text


def iter_corpus(source: str | Path, skip_bad_lines: bool = False,
                stats: ReadCounts | None = None) -> Iterator[tuple[int, str, str]]:
    """(line, document id, text) per corpus record; a folder or a BEIR ``corpus.jsonl`` itself."""
    source = Path(source)
    path = _need(source, "corpus.jsonl") if source.is_dir() else source
    for lineno, record in _records(path, stats, skip_bad_lines):
        try:
            doc_id = clean_id(record.get("_id"), "document id ('_id')", path, lineno)
            text = join_title(_text(record, "title", path, lineno, False), _text(record, "text", path, lineno, True))
        except BadInputError as err:
            if not skip_bad_lines or stats is None:
                raise
            stats.skip(f"{path}:{lineno}", err.args[0] if err.args else str(err))
            continue
        yield lineno, doc_id, text


def read_queries(source: str | Path, split: str | None = "test",
                 stats: ReadCounts | None = None) -> dict[str, tuple[int, str]]:
    """{query id: (line, text)} of a folder's split (or of a ``queries.jsonl`` file: all of them)."""
    source = Path(source)
    path = _need(source, "queries.jsonl") if source.is_dir() else source
    wanted: set[str] | None = None
    if source.is_dir() and split is not None:
        if splits(source):
            wanted = set(read_qrels(source, split))
        else:
            log.warning("%s: no qrels/ folder, so every query is used (not only split %s)", source, split)
    out: dict[str, tuple[int, str]] = {}
    for lineno, record in _records(path, stats):
        qid = clean_id(record.get("_id"), "query id ('_id')", path, lineno)
        text = _text(record, "text", path, lineno, True)
        if qid in out:
            raise BadInputError(f"duplicate query id {qid!r} (first at line {out[qid][0]})", path, lineno)
        out[qid] = (lineno, text)
    if wanted is not None:
        missing = sorted(wanted - set(out))
        if missing:
            raise ReproError(f"split {split}: {len(missing)} judged quer(ies) not in queries.jsonl (e.g. {missing[0]!r})",
                             path)
        out = {q: v for q, v in out.items() if q in wanted}
    if not out:
        raise ReproError("no queries" + (f" for split {split}" if wanted is not None else ""), path)
    return out


def read_qrels(source: str | Path, split: str = "test") -> dict[str, dict[str, int]]:
    """{qid: {docid: score}} from ``qrels/<split>.tsv`` of a folder, or from such a file itself."""
    source = Path(source)
    path = qrels_file(source, split) if source.is_dir() else source
    by_query: dict[str, dict[str, int]] = {}
    first: dict[tuple[str, str], int] = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if lineno == 1 and tuple(p.lower() for p in parts) == QRELS_HEADER:
            continue
        if len(parts) != 3:
            raise BadInputError(f"expected 3 columns (query-id, corpus-id, score), found {len(parts)}: {short(line)!r}",
                                path, lineno)
        qid = clean_id(parts[0], "query id", path, lineno)
        docid = clean_id(parts[1], "document id", path, lineno)
        try:
            score = int(parts[2])
        except ValueError:
            if lineno == 1:
                raise BadInputError(f"first line is neither the header 'query-id<TAB>corpus-id<TAB>score' nor a "
                                    f"judgement: {short(line)!r}", path, lineno) from None
            raise BadInputError(f"score (column 3) is not an integer: {short(parts[2], 40)!r}", path, lineno) from None
        docs = by_query.setdefault(qid, {})
        if docid in docs:
            raise BadInputError(f"duplicate judgement of {docid!r} for query {qid!r} (first at line {first[qid, docid]})",
                                path, lineno)
        docs[docid] = score
        first[qid, docid] = lineno
    if not by_query:
        raise BadInputError("no judgements in qrels file", path)
    return by_query
