"""`repro search`: query vectors (or BM25 text) against any registered engine, written as a tie-free TREC run.

The tie rule and the exact-score check live in `repro.search.ties`; each engine applies them.
Query vectors come from a pre-encoded query file as it is, or from text topics encoded with the
model at the factor of the index's documents (`repro.index.build.index_factor`).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from repro import defaults, engines
from repro.errors import ReproError
from repro.formats.runs import write_run
from repro.index.build import index_factor, read_index_manifest
from repro.manifest import write_manifest
from repro.outputs import check_writable
from repro.search.ties import run_rows

log = logging.getLogger(__name__)


def _clean(text: str) -> str:
    return " ".join(text.split())  # tabs/newlines would break the TSV topic reader


def _options(settings: dict[str, Any] | None, **flags: Any) -> dict[str, Any]:
    """``--setting`` pairs plus the engine flags that were given (a flag left out keeps the setting)."""
    return {**(settings or {}), **{k: v for k, v in flags.items() if v is not None}}


def search_settings(engine: str, index: Path, **given: Any) -> dict[str, Any]:
    """The engine's search settings from the options given (None = the engine's default); others refused."""
    module = engines.get(engine).load()
    chosen = {k: v for k, v in given.items() if v is not None}
    unknown = [k for k in chosen if k not in module.SEARCH_SETTINGS]
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        owners = sorted({e.display for e in engines.ENGINES.values() if e.name != engine
                         and all(k in importlib.import_module(e.module).SEARCH_SETTINGS for k in unknown)})
        raise ReproError(f"{flags}: {' or '.join(owners) or 'unknown'} settings, not settings of the "
                         f"{engines.get(engine).display} engine that built this index", index)
    if hasattr(module, "check_settings"):
        chosen = module.check_settings(chosen, module.SEARCH_SETTINGS, "search")
    return chosen


def run_search(index: Path, output: Path, *, topics: str | None = None, encoded_queries: str | None = None,
               model: str | None = None, topic_format: str = "auto", hits: int = defaults.HITS,
               threads: int | None = None, batch_size: int = defaults.BATCH_SIZE,
               query_max_length: int = defaults.QUERY_MAX_LENGTH, factor: float | None = None, tag: str | None = None,
               memory: str | None = None, backend: str | None = None, runtime: str = "torch",
               query_cut: int | None = None, heap_factor: float | None = None, settings: dict[str, Any] | None = None,
               force: bool = False) -> dict[str, Any]:
    """Search an index (its engine and kind from its manifest) and write a TREC run with a manifest.

    ``settings``: further engine search settings by name (``--setting KEY=VALUE``).
    """
    index, output = Path(index), Path(output)
    check_writable(output, force)
    meta = read_index_manifest(index)
    kind, engine = meta["config"]["kind"], engines.of_index(meta)
    if backend and backend != engine:
        raise ReproError(f"--backend {backend}, but this is a {engines.get(engine).display} {kind} index; "
                         f"build one with `repro index --backend {backend}`", index)
    if hits < 1:
        raise ReproError("--hits must be at least 1")
    settings = search_settings(engine, index, **_options(settings, query_cut=query_cut, heap_factor=heap_factor))
    threads = defaults.threads(threads)
    used_factor = None
    if kind == "bm25":
        if encoded_queries or model:
            raise ReproError("this is a BM25 index: give --topics (text), not --model or --encoded-queries", index)
        if not topics:
            raise ReproError("give --topics for a BM25 search")
        from repro.formats.topics import read_topics

        queries: dict[str, Any] = {qid: _clean(text) for qid, text in read_topics(topics, topic_format).items()}
        empty = [qid for qid, text in queries.items() if not text.strip()]
    else:
        if not encoded_queries:
            used_factor = factor if factor is not None else index_factor(meta, index)
        queries = impact_queries(topics, encoded_queries, model, topic_format, batch_size, query_max_length,
                                 used_factor, runtime, threads)
        empty = [qid for qid, vec in queries.items() if not any(w > 0 for w in vec.values())]
    if empty:
        log.warning("%d quer(ies) have no terms and get no results (e.g. %s)", len(empty), empty[0])
    skipped = set(empty)
    searchable = {qid: q for qid, q in queries.items() if qid not in skipped}
    if not searchable:
        results = {}
    elif kind == "bm25":
        from repro.engines.lucene import search_topics

        results = search_topics(index, searchable, kind="bm25", hits=hits, threads=threads, memory=memory)
    else:
        module = engines.get(engine).load()
        results = module.search_many(index, searchable, hits=hits, threads=threads, settings=settings, memory=memory)
    tag = tag or ("repro-bm25" if kind == "bm25" else "repro-splade" if engine == "lucene" else f"repro-splade-{engine}")
    lines = write_run(output, run_rows(results), tag, force=force)
    return write_manifest(output, "search", {"index": str(index), "kind": kind, "engine": engine, "topics": topics,
                                             "topic_format": topic_format if topics else None,
                                             "encoded_queries": encoded_queries, "model": model, "hits": hits,
                                             "query_factor": used_factor,
                                             "query_max_length": query_max_length if model else None,
                                             "runtime": runtime if model else None, "settings": settings or None},
                          queries=len(queries), empty_queries=len(empty), lines=lines)


def impact_queries(topics: str | None, encoded_queries: str | None, model: str | None,
                   topic_format: str = "auto", batch_size: int = defaults.BATCH_SIZE,
                   query_max_length: int = defaults.QUERY_MAX_LENGTH, factor: float | None = None,
                   runtime: str = "torch", threads: int | None = None) -> dict[str, dict[str, int]]:
    """Query vectors for a SPLADE index: a pre-encoded file as it is, or text encoded with ``model``."""
    if encoded_queries:
        if topics or model:
            raise ReproError("give either --encoded-queries, or --topics with --model, not both")
        from repro.formats.anserini_queries import read_encoded_queries

        return read_encoded_queries(encoded_queries)
    if not topics or not model:
        raise ReproError("impact search needs --topics with --model (text queries), or --encoded-queries FILE")
    from repro.encode.queries import query_encoder
    from repro.formats.topics import read_topics

    texts = read_topics(topics, topic_format)
    encoder = query_encoder(model, runtime=runtime, max_length=query_max_length, threads=threads)
    return dict(zip(texts, encoder.encode(list(texts.values()), factor=factor, batch_size=batch_size)))


def open_searcher(index: Path, *, query_cut: int | None = None, heap_factor: float | None = None,
                  memory: str | None = None, settings: dict[str, Any] | None = None) -> Any:
    """An in-process searcher for a SPLADE index of any engine: ``.search(vector, k)`` under the tie rule."""
    meta = read_index_manifest(Path(index))
    kind, engine = meta["config"]["kind"], engines.of_index(meta)
    if kind != "impact":
        raise ReproError(f"interactive search needs a SPLADE (impact) index, not {kind}", index)
    settings = search_settings(engine, Path(index), **_options(settings, query_cut=query_cut, heap_factor=heap_factor))
    return engines.get(engine).load().open_searcher(Path(index), settings=settings, memory=memory)
