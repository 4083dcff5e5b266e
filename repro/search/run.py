"""`repro search`: query vectors (or BM25 text) against any registered engine, written as a tie-free TREC run.

The tie rule and the exact-score check live in `repro.search.ties`; each engine applies them.
Query vectors come from a pre-encoded query file as it is, or from text topics encoded with the
model at the factor of the index's documents (`repro.index.build.index_factor`).

Two checks stop a plausible-looking but empty run: a ``--model`` other than the one the index's
documents were encoded with is refused (the index manifest records it; ``allow_other_model``
overrides), and a run with no lines, or where more than half of the queries got no document, is
an error unless ``allow_empty``.
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
from repro.outputs import prepare_output
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
               force: bool = False, allow_empty: bool = False, allow_other_model: bool = False, split: str = "test",
               smart_ids: str | None = None) -> dict[str, Any]:
    """Search an index (its engine and kind from its manifest) and write a TREC run with a manifest.

    ``settings``: further engine search settings by name (``--setting KEY=VALUE``).
    """
    index, output = Path(index), Path(output)
    prepare_output(output, "search", inputs=[index, topics, encoded_queries, model], force=force)
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
    counts: dict[str, int] = {"truncated_queries": 0}
    if kind == "bm25":
        if encoded_queries or model:
            raise ReproError("this is a BM25 index: give --topics (text), not --model or --encoded-queries", index)
        if not topics:
            raise ReproError("give --topics for a BM25 search")
        from repro.formats.topics import read_topics

        queries: dict[str, Any] = {qid: _clean(text) for qid, text in read_topics(topics, topic_format, smart_ids=smart_ids, split=split).items()}
        empty = [qid for qid, text in queries.items() if not text.strip()]
    else:
        if model and not allow_other_model:
            check_same_model(meta, model, index)
        if not encoded_queries:
            used_factor = factor if factor is not None else index_factor(meta, index)
        queries = impact_queries(topics, encoded_queries, model, topic_format, batch_size, query_max_length,
                                 used_factor, runtime, threads, counts=counts, split=split, smart_ids=smart_ids)
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
    nothing = len(queries) - sum(1 for hits_ in results.values() if len(hits_) > 0)
    if not allow_empty and (nothing == len(queries) or 2 * nothing > len(queries)):
        hint = " (is --model the one the index was encoded with?)" if model else ""
        raise ReproError(f"{nothing} of {len(queries)} queries got no document{hint}; no run written. "
                         f"Pass --allow-empty to write such a run anyway", index)
    tag = tag or ("repro-bm25" if kind == "bm25" else "repro-splade" if engine == "lucene" else f"repro-splade-{engine}")
    lines = write_run(output, run_rows(results), tag, force=force)
    return write_manifest(output, "search", {"index": str(index), "kind": kind, "engine": engine, "topics": topics,
                                             "topic_format": topic_format if topics else None,
                                             "split": split if topics else None, "smart_ids": smart_ids,
                                             "encoded_queries": encoded_queries, "model": model, "hits": hits,
                                             "query_factor": used_factor,
                                             "query_max_length": query_max_length if model else None,
                                             "runtime": runtime if model else None, "settings": settings or None},
                          queries=len(queries), empty_queries=len(empty), queries_without_results=nothing,
                          truncated_queries=counts["truncated_queries"], lines=lines)


def impact_queries(topics: str | None, encoded_queries: str | None, model: str | None,
                   topic_format: str = "auto", batch_size: int = defaults.BATCH_SIZE,
                   query_max_length: int = defaults.QUERY_MAX_LENGTH, factor: float | None = None,
                   runtime: str = "torch", threads: int | None = None,
                   counts: dict[str, int] | None = None, *, split: str = "test",
                   smart_ids: str | None = None) -> dict[str, dict[str, int]]:
    """Query vectors for a SPLADE index: a pre-encoded file as it is, or text encoded with ``model``.

    ``counts`` (when given) receives ``truncated_queries``: texts cut at ``query_max_length``.
    """
    if encoded_queries:
        if topics or model:
            raise ReproError("give either --encoded-queries, or --topics with --model, not both")
        from repro.formats.anserini_queries import read_encoded_queries

        return read_encoded_queries(encoded_queries)
    if not topics or not model:
        raise ReproError("impact search needs --topics with --model (text queries), or --encoded-queries FILE")
    from repro.encode.queries import query_encoder
    from repro.formats.topics import read_topics

    texts = read_topics(topics, topic_format, smart_ids=smart_ids, split=split)
    encoder = query_encoder(model, runtime=runtime, max_length=query_max_length, threads=threads)
    vectors = encoder.encode(list(texts.values()), factor=factor, batch_size=batch_size, names=list(texts), kind="query")
    if counts is not None:
        counts["truncated_queries"] = int(encoder.stats.truncated)
    return dict(zip(texts, vectors))


def check_same_model(meta: dict[str, Any], model: str, index: Path) -> None:
    """Refuse a query model other than the index's (its manifest's ``encode_config.model``)."""
    recorded = (meta.get("encode_config") or {}).get("model")
    if not recorded or same_model(str(recorded), str(model)):
        return
    raise ReproError(f"--model {model} is not the model this index was encoded with ({recorded}); its queries "
                     f"would not match the documents. Pass --allow-other-model to search with it anyway", index)


def same_model(a: str, b: str) -> bool:
    """The same model: the same folder, the same files (a copy), or the same hub name.

    A local folder and a hub ID match when the folder is that ID's hub-cache snapshot
    (``models--org--name``) or has the ID's last part as its name.
    """
    from repro.encode.model import fingerprint as model_fingerprint

    pa_, pb_ = Path(a).expanduser(), Path(b).expanduser()
    if pa_.is_dir() and pb_.is_dir():
        return pa_.resolve() == pb_.resolve() or model_fingerprint(pa_) == model_fingerprint(pb_)
    if pa_.is_dir() or pb_.is_dir():
        folder, hub_id = (pa_, b) if pa_.is_dir() else (pb_, a)
        cache_name = "models--" + hub_id.strip("/").replace("/", "--")
        return cache_name in folder.resolve().parts or folder.resolve().name == hub_id.strip("/").split("/")[-1]
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def open_searcher(index: Path, *, query_cut: int | None = None, heap_factor: float | None = None,
                  memory: str | None = None, settings: dict[str, Any] | None = None) -> Any:
    """An in-process searcher for a SPLADE index of any engine: ``.search(vector, k)`` under the tie rule."""
    meta = read_index_manifest(Path(index))
    kind, engine = meta["config"]["kind"], engines.of_index(meta)
    if kind != "impact":
        raise ReproError(f"interactive search needs a SPLADE (impact) index, not {kind}", index)
    settings = search_settings(engine, Path(index), **_options(settings, query_cut=query_cut, heap_factor=heap_factor))
    return engines.get(engine).load().open_searcher(Path(index), settings=settings, memory=memory)
