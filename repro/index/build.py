"""`repro index`: Lucene indexes through Anserini, verified against what `repro encode` wrote.

- impact: a JsonVectorCollection (from `repro encode`) -> `-impact -pretokenized` index; then
  Lucene's CheckIndex checks the index's integrity and its token total, which must equal the
  collection's total of integer weights plus one `id` token per document, and the document count
  must equal the collection's.
- bm25: the same texts (a corpus file, an ir_datasets ID, or a repro collection's `contents`) ->
  a standard Anserini index with its default English analyzer, for the BM25 baseline.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from repro.engines import anserini
from repro.outputs import atomic_dir, atomic_write
from repro.formats.corpus import iter_docs
from repro.encode.documents import SHARDS, verify_collection
from repro.errors import ReproError
from repro.manifest import read_manifest, write_manifest

BM25_EMPTY_TEXT = "reproemptydocument"  # keeps an empty document in the BM25 index (see encode.EMPTY_TOKEN)


def _threads(threads: int | None) -> int:
    return threads or max(1, os.cpu_count() or 1)


def check_index(index: Path) -> dict[str, int]:
    """Run Lucene's CheckIndex; return document and token totals (all segments)."""
    out = anserini.run("org.apache.lucene.index.CheckIndex", [str(index)], what="Lucene CheckIndex")
    if "No problems were detected" not in out:
        raise ReproError("Lucene CheckIndex found problems in the index", index)
    docs = re.search(r"(\d+) documents; (\d+) deletions", out)
    tokens = [int(t) for t in re.findall(r"terms/docs pairs; (\d+) tokens", out)]
    if not docs or not tokens:
        raise ReproError("could not read CheckIndex's statistics", index)
    return {"documents": int(docs.group(1)), "tokens": sum(tokens)}


def build_impact_index(collection: Path, output: Path, *, threads: int | None = None, force: bool = False,
                       memory: str | None = None) -> dict[str, Any]:
    """Index a verified repro collection as a Lucene impact index, then verify the index."""
    collection, output = Path(collection), Path(output)
    encoded = verify_collection(collection)
    started = time.perf_counter()
    with atomic_dir(output, force=force) as tmp:
        anserini.run(
            "io.anserini.index.IndexCollection",
            ["-collection", "JsonVectorCollection", "-input", str(collection / SHARDS), "-index", str(tmp),
             "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(_threads(threads)),
             "-impact", "-pretokenized"],
            memory=memory, what="Anserini IndexCollection",
        )
        seconds = time.perf_counter() - started
        stats = check_index(tmp)
        expected_tokens = encoded["weight_total"] + encoded["documents"]
        if stats["documents"] != encoded["documents"]:
            raise ReproError(f"index has {stats['documents']} documents, the collection {encoded['documents']}", collection)
        if stats["tokens"] != expected_tokens:
            raise ReproError(
                f"index holds {stats['tokens']} weight units, expected {expected_tokens} "
                "(collection weights + one id per document)", collection)
        info = write_manifest(
            tmp, "index", {"kind": "impact", "collection": str(collection)},
            documents=stats["documents"], weight_total=encoded["weight_total"], index_tokens=stats["tokens"],
            collection_digest=encoded["config_digest"], encode_config=encoded["config"], seconds=round(seconds, 2),
        )
    return info


def build_seismic(collection: Path, output: Path, *, threads: int | None = None, force: bool = False,
                  params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Index a verified repro collection with Seismic (approximate); the document count is checked."""
    from repro.engines.seismic import build_seismic_index

    collection, output = Path(collection), Path(output)
    encoded = verify_collection(collection)
    info = build_seismic_index(
        collection, output, threads=_threads(threads), force=force, **(params or {}),
        manifest={"config": {"collection": str(collection)},
                  "facts": {"collection_digest": encoded["config_digest"], "encode_config": encoded["config"],
                            "weight_total": encoded["weight_total"]}},
    )
    if info["documents"] != encoded["documents"]:
        raise ReproError(f"Seismic indexed {info['documents']} documents, the collection has {encoded['documents']}",
                         collection)
    return info


def _iter_texts(source: str):
    """Documents for BM25: a repro collection's contents, or any corpus input."""
    path = Path(source)
    if path.is_dir() and (path / SHARDS).is_dir():
        verify_collection(path)
        for shard in sorted((path / SHARDS).glob("part-*.jsonl")):
            with open(shard, encoding="utf-8") as handle:
                for line in handle:
                    record = json.loads(line)
                    yield record["id"], record["contents"]
    else:
        for doc in iter_docs(source):
            yield doc.id, doc.text


def build_bm25_index(source: str, output: Path, *, threads: int | None = None, force: bool = False,
                     memory: str | None = None) -> dict[str, Any]:
    """Index the texts with Anserini's default analyzer (Porter stemming, stopwords) for BM25."""
    output = Path(output)
    started = time.perf_counter()
    with atomic_dir(output, force=force) as tmp:
        staging = tmp / "_input"
        staging.mkdir()
        count = empty = 0
        with atomic_write(staging / "docs.jsonl") as handle:
            for doc_id, text in _iter_texts(source):
                if not text.strip():
                    text, empty = BM25_EMPTY_TEXT, empty + 1
                handle.write(json.dumps({"id": doc_id, "contents": text}, ensure_ascii=False) + "\n")
                count += 1
        if count == 0:
            raise ReproError("corpus has no documents", source)
        index_dir = tmp / "lucene"
        anserini.run(
            "io.anserini.index.IndexCollection",
            ["-collection", "JsonCollection", "-input", str(staging), "-index", str(index_dir),
             "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(_threads(threads)), "-storeRaw"],
            memory=memory, what="Anserini IndexCollection",
        )
        seconds = time.perf_counter() - started
        stats = check_index(index_dir)
        if stats["documents"] != count:
            raise ReproError(f"BM25 index has {stats['documents']} documents, the corpus {count}", source)
        (staging / "docs.jsonl").unlink()
        staging.rmdir()
        for item in index_dir.iterdir():
            item.rename(tmp / item.name)
        index_dir.rmdir()
        info = write_manifest(tmp, "index", {"kind": "bm25", "source": str(source)}, documents=count,
                              empty_documents=empty, seconds=round(seconds, 2))
    return info


def read_index_manifest(index: Path) -> dict[str, Any]:
    if not Path(index).is_dir():
        raise ReproError("index folder not found", index)
    return read_manifest(index, "index")
