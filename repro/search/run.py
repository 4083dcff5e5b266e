"""`repro search`: top-k retrieval through Anserini's SearchCollection, written as tie-free TREC runs.

Tie rule (documented in docs/search.md): documents are ranked by exact engine score, descending,
then by document id, ascending (Python string order). The run's score column is the exact score
followed by a tie-break fraction: for impact search the integer dot product, then `.` and six
digits that count down within a group of equal scores (e.g. 1234.000002, 1234.000001,
1234.000000). So int(score) is the exact dot product, no two scores in a query are equal, and
every evaluation tool (trec_eval, ir_measures' providers) sees the same order.

Ties at the cutoff k are resolved by the same rule, not by Lucene's internal docids: when the
k-th score still ties with the deepest hit fetched, the query is searched again deeper.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from repro.engines import anserini
from repro.outputs import check_writable
from repro.errors import ReproError
from repro.index.build import read_index_manifest
from repro.manifest import write_manifest
from repro.formats.runs import write_run
from repro.encode.torch_encoder import query_line

log = logging.getLogger(__name__)
EXACT_LIMIT = 2**24  # Lucene scores are float32: integers above this are no longer exact
TIE_DIGITS = 6


def _clean(text: str) -> str:
    return " ".join(text.split())  # tabs/newlines would break the TSV topic reader


def _run_anserini(index: Path, topics: dict[str, str], hits: int, kind: str, threads: int,
                  memory: str | None) -> dict[str, list[tuple[str, float]]]:
    """One SearchCollection run over all topics (one JVM for the whole batch)."""
    with tempfile.TemporaryDirectory(prefix="repro-search-") as tmp:
        qfile, rfile = Path(tmp) / "topics.tsv", Path(tmp) / "run.trec"
        with open(qfile, "w", encoding="utf-8") as handle:
            for qid, text in topics.items():
                handle.write(f"{qid}\t{text}\n")
        mode = ["-impact", "-pretokenized"] if kind == "impact" else ["-bm25"]
        anserini.run(
            "io.anserini.search.SearchCollection",
            ["-index", str(index), "-topics", str(qfile), "-topicReader", "TsvString", *mode,
             "-hits", str(hits), "-threads", str(threads), "-output", str(rfile)],
            memory=memory, what="Anserini SearchCollection",
        )
        results: dict[str, list[tuple[str, float]]] = defaultdict(list)
        with open(rfile, encoding="utf-8") as handle:
            for line in handle:
                qid, _, docid, _, score, _ = line.split()
                results[qid].append((docid, float(score)))
    return results


def _exact(kind: str, hits: list[tuple[str, float]], qid: str) -> list[tuple[str, int | str]]:
    """Undo Anserini's tie perturbation: integers for impact scores, 4 decimals for BM25."""
    out = []
    for docid, score in hits:
        if kind == "impact":
            exact = round(score)
            if abs(score - exact) > 0.01 or exact >= EXACT_LIMIT:
                raise ReproError(f"query {qid}: impact score {score} is not an exact integer below 2^24; "
                                 "use a smaller quantization factor")
            out.append((docid, exact))
        else:
            out.append((docid, f"{score:.4f}"))
    return out


def _order_key(kind: str):
    if kind == "impact":
        return lambda item: (-item[1], item[0])
    from decimal import Decimal

    return lambda item: (-Decimal(item[1]), item[0])


def search_topics(index: Path, topics: dict[str, str], *, kind: str, hits: int = 1000, threads: int | None = None,
                  memory: str | None = None) -> dict[str, list[tuple[str, int | str]]]:
    """Exact top-``hits`` per query under the tie rule; re-searches deeper where the cutoff ties."""
    threads = threads or max(1, os.cpu_count() or 1)
    key = _order_key(kind)
    final: dict[str, list[tuple[str, int | str]]] = {}
    pending, depth = dict(topics), hits + max(10, hits // 10)
    while pending:
        raw = _run_anserini(index, pending, depth, kind, threads, memory)
        deeper: dict[str, str] = {}
        for qid in pending:
            ranked = sorted(_exact(kind, raw.get(qid, []), qid), key=key)
            if len(ranked) >= depth and len(ranked) > hits and ranked[hits - 1][1] == ranked[-1][1]:
                deeper[qid] = pending[qid]  # the tie group at the cutoff may continue past what we fetched
                continue
            final[qid] = ranked[:hits]
        if deeper:
            log.info("%d quer(ies) tie at the cutoff; searching %d deep", len(deeper), depth * 4)
        pending, depth = deeper, depth * 4
    return {qid: final[qid] for qid in topics}


def format_scores(ranked: list[tuple[str, int | str]]) -> list[str]:
    """Exact score + countdown tie digits, so that no two scores of a query are equal."""
    texts: list[str] = []
    i = 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][1] == ranked[i][1]:
            j += 1
        size = j - i
        if size >= 10**TIE_DIGITS:
            raise ReproError(f"more than {10**TIE_DIGITS - 1} documents tie; lower --hits")
        for pos in range(i, j):
            base = str(ranked[pos][1])
            sep = "" if "." in base else "."
            texts.append(f"{base}{sep}{size - 1 - (pos - i):0{TIE_DIGITS}d}")
        i = j
    return texts


def run_rows(results: dict[str, list[tuple[str, int | str]]]):
    """(qid, docid, rank, score text) rows of a run, scores formatted by the tie rule."""
    for qid, ranked in results.items():
        for rank, ((docid, _), score) in enumerate(zip(ranked, format_scores(ranked)), start=1):
            yield qid, docid, rank, score


def run_search(index: Path, output: Path, *, topics: str | None = None, encoded_queries: str | None = None,
               model: str | None = None, topic_format: str = "auto", hits: int = 1000, threads: int | None = None,
               batch_size: int = 32, query_max_length: int = 64, factor: float | None = None, tag: str | None = None,
               memory: str | None = None, backend: str | None = None, runtime: str = "torch",
               query_cut: int | None = None, heap_factor: float | None = None, force: bool = False) -> dict[str, Any]:
    """Search an index (Lucene impact or BM25, or Seismic; from its manifest) and write a TREC run with a manifest."""
    index, output = Path(index), Path(output)
    check_writable(output, force)
    meta = read_index_manifest(index)
    kind = meta["config"]["kind"]
    engine = "seismic" if kind == "seismic" else "lucene"
    if backend and backend != engine:
        built = "a Seismic index" if engine == "seismic" else f"a Lucene {kind} index"
        raise ReproError(f"--backend {backend}, but this is {built}; build one with `repro index --backend {backend}`",
                         index)
    if hits < 1:
        raise ReproError("--hits must be at least 1")
    if engine == "lucene":
        _no_seismic_settings(index, query_cut, heap_factor)
    if kind == "bm25":
        if encoded_queries or model:
            raise ReproError("this is a BM25 index: give --topics (text), not --model or --encoded-queries", index)
        if not topics:
            raise ReproError("give --topics for a BM25 search")
        from repro.formats.topics import read_topics

        queries: dict[str, Any] = {qid: _clean(text) for qid, text in read_topics(topics, topic_format).items()}
        empty = [qid for qid, text in queries.items() if not text.strip()]
    else:
        queries = impact_queries(meta, topics, encoded_queries, model, topic_format, batch_size, query_max_length,
                                 factor, runtime, threads)
        empty = [qid for qid, vec in queries.items() if not any(w > 0 for w in vec.values())]
    if empty:
        log.warning("%d quer(ies) have no terms and get no results (e.g. %s)", len(empty), empty[0])
    skipped = set(empty)
    searchable = {qid: q for qid, q in queries.items() if qid not in skipped}
    if not searchable:
        results = {}
    elif engine == "seismic":
        searcher = open_searcher(index, query_cut=query_cut, heap_factor=heap_factor)
        results = {qid: searcher.search(vec, hits) for qid, vec in searchable.items()}
    else:
        if kind == "impact":
            searchable = {qid: query_line(qid, vec).partition("\t")[2] for qid, vec in searchable.items()}
        results = search_topics(index, searchable, kind=kind, hits=hits, threads=threads, memory=memory)
    tag = tag or {"impact": "repro-splade", "seismic": "repro-splade-seismic"}.get(kind, "repro-bm25")
    lines = write_run(output, run_rows(results), tag, force=force)
    return write_manifest(output, "search", {"index": str(index), "kind": kind, "topics": topics,
                                             "encoded_queries": encoded_queries, "model": model, "hits": hits,
                                             "runtime": runtime if model else None,
                                             "seismic": {"query_cut": query_cut, "heap_factor": heap_factor}
                                             if engine == "seismic" else None},
                          queries=len(queries), empty_queries=len(empty), lines=lines)


def impact_queries(meta: dict[str, Any], topics: str | None, encoded_queries: str | None, model: str | None,
                   topic_format: str = "auto", batch_size: int = 32, query_max_length: int = 64,
                   factor: float | None = None, runtime: str = "torch",
                   threads: int | None = None) -> dict[str, dict[str, int]]:
    """Query vectors for a SPLADE index: a pre-encoded file as it is, or text encoded with ``model``."""
    if encoded_queries:
        if topics or model:
            raise ReproError("give either --encoded-queries, or --topics with --model, not both")
        from repro.encode.queries import read_encoded_queries

        return read_encoded_queries(encoded_queries)
    if not topics or not model:
        raise ReproError("impact search needs --topics with --model (text queries), or --encoded-queries FILE")
    from repro.encode.queries import query_encoder
    from repro.formats.topics import read_topics

    texts = read_topics(topics, topic_format)
    if factor is None:
        factor = index_factor(meta)
    encoder = query_encoder(model, runtime=runtime, max_length=query_max_length, threads=threads)
    return dict(zip(texts, encoder.encode(list(texts.values()), factor=factor, batch_size=batch_size)))


def open_searcher(index: Path, *, query_cut: int | None = None, heap_factor: float | None = None,
                  memory: str | None = None) -> Any:
    """An in-process searcher for a SPLADE index (Lucene exact or Seismic approximate): ``.search(vector, k)``."""
    meta = read_index_manifest(Path(index))
    kind = meta["config"]["kind"]
    if kind == "seismic":
        from repro.engines.seismic import SeismicSearcher

        return SeismicSearcher(Path(index), query_cut=query_cut, heap_factor=heap_factor)
    if kind != "impact":
        raise ReproError(f"interactive search needs a SPLADE index (impact or Seismic), not {kind}", index)
    _no_seismic_settings(index, query_cut, heap_factor)
    from repro.engines.lucene_searcher import LuceneImpactSearcher

    return LuceneImpactSearcher(Path(index), memory=memory)


def index_factor(meta: dict[str, Any]) -> float:
    """The quantization factor the index's documents were encoded with (queries must use the same)."""
    return meta.get("encode_config", {}).get("factor", 100)


def _no_seismic_settings(index: Path, query_cut: int | None, heap_factor: float | None) -> None:
    if query_cut or heap_factor:
        raise ReproError("--query-cut and --heap-factor are Seismic settings; this is a Lucene index", index)
