"""`repro index`: a collection into any registered engine's index, verified against the collection.

Every engine gets the same checks and the same manifest: the collection is verified against its
own manifest first (every shard present and unchanged; a foreign JsonVectorCollection, which has
none, by reading every record: ids, positive integer weights, counts), the engine builds into a temporary folder,
the document count and the weight total that the engine reports back (Lucene: CheckIndex;
Seismic: what it ingested) must equal the collection's, and only then is the index swapped into
place (`repro.outputs.atomic_dir`). BM25 indexes the same texts with Lucene's English analyzer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from repro import defaults, engines
from repro.errors import ReproError
from repro.formats import collection as coll
from repro.formats.corpus import iter_docs
from repro.manifest import read_manifest, write_manifest
from repro.outputs import atomic_dir, prepare_output


def build_index(collection: Path, output: Path, *, engine: str = "lucene", threads: int | None = None,
                force: bool = False, settings: dict[str, Any] | None = None,
                memory: str | None = None) -> dict[str, Any]:
    """Index a verified collection with ``engine``; the engine's own counts must match the collection's."""
    collection, output = Path(collection), Path(output)
    prepare_output(output, "index", inputs=[collection], force=force, folder=True)
    module = engines.get(engine).load()
    settings = dict(settings or {})
    if hasattr(module, "check_settings"):
        settings = module.check_settings(settings, module.BUILD_SETTINGS, "build")
    elif settings:
        raise ReproError(f"the {engine} engine takes no build settings (given: {', '.join(settings)})")
    encoded = coll.verify_collection(collection)
    started = time.perf_counter()
    with atomic_dir(output, force=force, kind="index", inputs=[collection]) as tmp:
        # An engine that RESUMES keeps its partial load beside ``output`` (the temp folder is new each run).
        resume = {"target": output, "force": force} if getattr(module, "RESUMES", False) else {}
        facts = module.build(coll.index_input(collection), tmp, threads=defaults.threads(threads), settings=settings,
                             memory=memory, vectors=coll.iter_vectors(collection), **resume)
        seconds = time.perf_counter() - started
        if facts["documents"] != encoded["documents"]:
            raise ReproError(f"the {engine} index has {facts['documents']} documents, the collection "
                             f"{encoded['documents']}", collection)
        if facts["weight_total"] != encoded["weight_total"]:
            raise ReproError(f"the {engine} index holds {facts['weight_total']} weight units, the collection "
                             f"{encoded['weight_total']}", collection)
        config = {"kind": "impact", "engine": engine, "collection": str(collection), "settings": facts.get("settings", settings)}
        extra = {k: v for k, v in facts.items() if k not in ("documents", "weight_total", "settings", "seconds")}
        info = write_manifest(tmp, "index", config, name=output.name, documents=facts["documents"],
                              weight_total=facts["weight_total"],
                              collection_digest=encoded["config_digest"], encode_config=encoded["config"],
                              seconds=round(seconds, 2), **extra)
    return info


def build_impact_index(collection: Path, output: Path, *, threads: int | None = None, force: bool = False,
                       memory: str | None = None) -> dict[str, Any]:
    """The exact Lucene impact index (the default engine)."""
    return build_index(collection, output, engine="lucene", threads=threads, force=force, memory=memory)


def _iter_texts(source: str, fmt: str = "auto") -> Iterator[tuple[str, str]]:
    """Documents for BM25: a repro collection's contents, or any corpus input."""
    if coll.is_collection(source):
        coll.verify_collection(Path(source))
        yield from coll.iter_contents(Path(source))
    else:
        for doc in iter_docs(source, fmt):
            yield doc.id, doc.text


def check_bm25_source(source: str, fmt: str = "auto") -> None:
    """Fail on a missing or malformed corpus before Java starts: read its first document."""
    if coll.is_collection(source):
        return
    for _ in iter_docs(source, fmt):
        break


def build_bm25_index(source: str, output: Path, *, threads: int | None = None, force: bool = False,
                     memory: str | None = None, fmt: str = "auto") -> dict[str, Any]:
    """Index the texts with Anserini's default analyzer (Porter stemming, stopwords) for BM25."""
    from repro.engines import lucene

    output = Path(output)
    prepare_output(output, "index", inputs=[source], force=force, folder=True)
    check_bm25_source(source, fmt)
    started = time.perf_counter()
    with atomic_dir(output, force=force, kind="index", inputs=[source]) as tmp:
        try:
            facts = lucene.build_bm25(_iter_texts(source, fmt), tmp, threads=defaults.threads(threads), memory=memory)
        except ReproError as err:
            if str(err) == "corpus has no documents":
                raise ReproError("corpus has no documents", source) from None
            raise
        if facts["documents"] != facts["corpus_documents"]:
            raise ReproError(f"BM25 index has {facts['documents']} documents, the corpus {facts['corpus_documents']}",
                             source)
        info = write_manifest(tmp, "index", {"kind": "bm25", "engine": "lucene", "source": str(source)}, name=output.name,
                              documents=facts["documents"], empty_documents=facts["empty_documents"],
                              seconds=round(time.perf_counter() - started, 2))
    return info


def read_index_manifest(index: Path) -> dict[str, Any]:
    if not Path(index).is_dir():
        raise ReproError("index folder not found", index)
    return read_manifest(index, "index")


def index_factor(meta: dict[str, Any], index: Path | None = None) -> float:
    """The quantization factor the index's documents were encoded with (queries must use the same).

    A manifest without it (an index of a collection `repro` did not encode) is an error naming the
    index: guessing x100 would silently mis-scale the queries.
    """
    factor = meta.get("encode_config", {}).get("factor")
    if factor is None:
        raise ReproError("the index does not record its documents' quantization factor; pass --factor", index)
    return float(factor)
