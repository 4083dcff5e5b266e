"""The JsonVectorCollection layout that `repro encode` writes and every engine reads: one home for it.

Folder layout::

    COLL/shards/part-00000.jsonl   {"id", "contents", "vector": {token: int}} per line (Anserini's input)
    COLL/state/                    config of the run and one stats file per finished shard (resume)
    COLL/manifest.json             written last: counts, weight total, per-shard checksums

Weights are positive integers (Anserini truncates floats and drops weights <= 0). A document whose
vector quantized to nothing gets the one placeholder term EMPTY_TOKEN: Anserini would otherwise skip
it and the index would silently hold fewer documents than the collection.

A *foreign* collection is one another tool wrote (Anserini's pre-encoded corpora, its test
layouts): a folder of ``*.json`` / ``*.jsonl`` files, optionally gzipped, each holding one JSON
object, a JSON array of objects, or a sequence of objects (one per line or pretty-printed).
It has no manifest, so it is verified by reading it: every record needs an id and a vector of
positive integer weights, ids are unique, and the document count and weight total it yields are
what the index must hold (``scan_foreign``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from repro.errors import ReproError
from repro.manifest import read_manifest, sha256_file

SHARDS, STATE = "shards", "state"
SHARD_GLOB = "part-*.jsonl"
EMPTY_TOKEN = "[repro:empty]"


def shard_name(index: int) -> str:
    return f"part-{index:05d}.jsonl"


def record_line(doc_id: str, contents: str, vector: dict[str, int]) -> str:
    """One collection line; an empty vector becomes {EMPTY_TOKEN: 1} (see the module docstring)."""
    if not vector:
        vector = {EMPTY_TOKEN: 1}
    return json.dumps({"id": doc_id, "contents": contents, "vector": vector}, ensure_ascii=False, sort_keys=False)


def weight_units(vector: dict[str, int]) -> int:
    """What a vector adds to the collection's weight total (the placeholder of an empty one counts 1)."""
    return sum(vector.values()) if vector else 1


def is_collection(path: str | Path) -> bool:
    """Whether ``path`` is a `repro encode` output folder (it has shards/)."""
    return (Path(path) / SHARDS).is_dir()


def shard_files(collection: Path) -> list[Path]:
    return sorted((Path(collection) / SHARDS).glob(SHARD_GLOB))


def iter_records(collection: Path) -> Iterator[dict[str, Any]]:
    """Every record of a collection, in shard order (a foreign collection: in file order)."""
    if not is_collection(collection) and is_foreign_collection(collection):
        for _, _, record in iter_foreign_records(Path(collection)):
            yield record
        return
    for shard in shard_files(collection):
        with open(shard, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)


# --- foreign collections (written by another tool) ----------------------------------------------
FOREIGN_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


def foreign_files(folder: Path) -> list[Path]:
    """The JSON(L) files of a foreign collection, in path order (sub-folders included, as Anserini reads)."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.name.endswith(FOREIGN_SUFFIXES) and not p.name.startswith("."))


def is_foreign_collection(path: str | Path) -> bool:
    """A folder without repro's layout whose files are all JSON(L), maybe gzipped (a folder of mixed
    inputs is not a collection: Anserini would try to read every file in it)."""
    path = Path(path)
    if not path.is_dir() or is_collection(path) or (path / "manifest.json").exists():
        return False
    files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return bool(files) and all(p.name.endswith(FOREIGN_SUFFIXES) for p in files)


def _read_text(path: Path) -> str:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read()
        return path.read_text(encoding="utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise ReproError(f"cannot read collection file ({type(err).__name__}: {err})", path) from None


def iter_foreign_records(folder: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """(file, line, record) of every record: per-file objects, JSON arrays, or sequences of objects."""
    decoder = json.JSONDecoder()
    for path in foreign_files(folder):
        text = _read_text(path)
        pos, size = 0, len(text)
        while True:
            while pos < size and text[pos] in " \t\r\n\ufeff":
                pos += 1
            if pos >= size:
                break
            line = text.count("\n", 0, pos) + 1
            try:
                value, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                raise ReproError(f"not valid JSON ({err.msg})", path, text.count("\n", 0, err.pos) + 1) from None
            for record in value if isinstance(value, list) else [value]:
                if not isinstance(record, dict):
                    raise ReproError(f"a record must be a JSON object with id and vector, not {type(record).__name__}",
                                     path, line)
                yield path, line, record
            pos = end


def scan_foreign(folder: Path) -> dict[str, Any]:
    """Verify a foreign collection by reading it; its counts (what the index must hold) and a digest."""
    folder = Path(folder)
    seen: set[str] = set()
    documents = weight_total = 0
    digest = hashlib.sha256()
    files = foreign_files(folder)
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}:{sha256_file(path)}\n".encode())
    for path, line, record in iter_foreign_records(folder):
        doc_id, vector = record.get("id"), record.get("vector")
        if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or str(doc_id) == "":
            raise ReproError("record has no id", path, line)
        doc_id = str(doc_id)
        if doc_id in seen:
            raise ReproError(f"duplicate document id {doc_id!r}", path, line)
        seen.add(doc_id)
        if not isinstance(vector, dict):
            raise ReproError(f"document {doc_id!r} has no \"vector\" object", path, line)
        if not vector:
            raise ReproError(f"document {doc_id!r} has an empty vector: Anserini would skip it and the index would "
                             "hold fewer documents than the collection", path, line)
        for token, weight in vector.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight != int(weight) or weight <= 0:
                raise ReproError(f"document {doc_id!r}: weight {weight!r} of {token!r} is not a positive integer "
                                 "(Anserini truncates floats and drops weights <= 0); quantize the vectors first",
                                 path, line)
            weight_total += int(weight)
        documents += 1
    if documents == 0:
        raise ReproError("collection has no documents", folder)
    return {"documents": documents, "weight_total": weight_total, "files": len(files),
            "config_digest": digest.hexdigest(), "config": {"foreign": True, "source": str(folder), "factor": None}}


def index_input(collection: Path) -> Path:
    """The folder an engine reads: repro's shards/, or the foreign collection itself."""
    collection = Path(collection)
    return collection / SHARDS if is_collection(collection) else collection


def iter_vectors(collection: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """(id, vector) of every document, in shard order."""
    for record in iter_records(collection):
        yield str(record["id"]), record["vector"]


def iter_contents(collection: Path) -> Iterator[tuple[str, str]]:
    """(id, text) of every document, in shard order (the texts BM25 indexes)."""
    for record in iter_records(collection):
        yield str(record["id"]), record["contents"]


def verify_collection(out: Path) -> dict[str, Any]:
    """Check a collection against its manifest before indexing: every shard present and unchanged."""
    out = Path(out)
    if is_foreign_collection(out):
        return scan_foreign(out)
    if not (out / SHARDS).is_dir():
        raise ReproError("not a repro collection (no shards/ folder) nor a JsonVectorCollection (*.json or *.jsonl "
                         "files, maybe .gz); run `repro encode` first", out)
    data = read_manifest(out, "encode")
    listed = {s["file"] for s in data["shards"]}
    present = {f"{SHARDS}/{p.name}" for p in (out / SHARDS).iterdir()}
    if extra := sorted(present - listed):
        raise ReproError(f"unexpected file in collection, not in the manifest: {extra[0]}", out)
    for shard in data["shards"]:
        path = out / shard["file"]
        if not path.exists():
            raise ReproError("shard listed in the manifest is missing; re-run `repro encode`", path)
        if sha256_file(path) != shard["sha256"]:
            raise ReproError("shard differs from the manifest (checksum); re-run `repro encode --force`", path)
    return data
