"""The JsonVectorCollection layout that `repro encode` writes and every engine reads: one home for it.

Folder layout::

    COLL/shards/part-00000.jsonl   {"id", "contents", "vector": {token: int}} per line (Anserini's input)
    COLL/state/                    config of the run and one stats file per finished shard (resume)
    COLL/manifest.json             written last: counts, weight total, per-shard checksums

Weights are positive integers (Anserini truncates floats and drops weights <= 0). A document whose
vector quantized to nothing gets the one placeholder term EMPTY_TOKEN: Anserini would otherwise skip
it and the index would silently hold fewer documents than the collection.
"""

from __future__ import annotations

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
    """Every record of a collection, in shard order."""
    for shard in shard_files(collection):
        with open(shard, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)


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
    if not (out / SHARDS).is_dir():
        raise ReproError("not a repro collection (no shards/ folder); run `repro encode` first", out)
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
