"""The Seismic engine (PyPI `pyseismic-lsr`): approximate impact search in milliseconds.

Seismic keeps, per term, only the documents with the largest weights (``n_postings`` on average),
groups them into blocks with a summary vector, and at query time scans only the ``query_cut``
heaviest query terms and skips blocks whose summary score cannot enter the top-k heap
(``heap_factor``). It is approximate: the recall it reaches is measured against exact Lucene search
in benchmarks/bench_query_latency.py and bench_scale.py, not assumed.

The index folder holds Seismic's binary index, the token -> component map and a manifest. Scores
are the integer dot product over the postings Seismic kept (values are stored as 16-bit floats,
exact for integers up to 2048; quantized SPLADE weights stay far below). Hits follow the tie rule
of `repro.search.ties`, including the deeper search when the cutoff ties.
"""

from __future__ import annotations

import importlib.util
import json
import math
import operator
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from repro import defaults
from repro.errors import ReproError
from repro.outputs import atomic_dir
from repro.search import ties

NAME = "seismic"
EXACT = False
INDEX_FILE = "seismic"  # Seismic appends .index.seismic
TOKENS_FILE = "tokens.json"
# Defaults from the Seismic authors' MS MARCO SPLADE settings; n_postings scales with collection size.
DEFAULTS = {"centroid_fraction": 0.1, "summary_energy": 0.4, "doc_cut": 15, "min_cluster_size": 2, "max_fraction": 1.5}
BUILD_SETTINGS: dict[str, Any] = {**DEFAULTS, "n_postings": None}
_INTEGER_SETTINGS = {"n_postings", "doc_cut", "min_cluster_size", "query_cut"}
SEARCH_SETTINGS: dict[str, Any] = {"query_cut": 20, "heap_factor": 0.8}
_SCORE, _DOCID = operator.itemgetter(1), operator.itemgetter(2)  # fields of Seismic's hit triples


def is_available() -> bool:
    return importlib.util.find_spec("seismic") is not None


def _require():
    try:
        import seismic
    except ImportError:
        raise ReproError("the Seismic backend needs pyseismic-lsr: pip install 'repro[seismic]'") from None
    return seismic


def check_settings(settings: dict[str, Any], allowed: dict[str, Any], what: str) -> dict[str, Any]:
    """Names known, numbers positive and finite (a 0 or negative setting makes Seismic return nothing or
    overflow). heap_factor may exceed 1: Seismic then skips blocks more aggressively (its guidelines:
    higher is faster and less accurate), which the top-1000 latency benchmark measures."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in allowed:
            raise ReproError(f"unknown Seismic {what} setting {key!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(sorted(allowed))}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ReproError(f"Seismic {what} setting {key}={value!r} must be a positive number")
        if key in _INTEGER_SETTINGS and int(value) != value:
            raise ReproError(f"Seismic {what} setting {key}={value!r} must be a whole number")
        out[key] = int(value) if key in _INTEGER_SETTINGS else float(value)
    return out


def build_into(folder: Path, vectors: Iterable[tuple[str, dict[str, int]]], *, threads: int = 0,
               settings: dict[str, Any] | None = None, batch: int = 50_000) -> dict[str, Any]:
    """Build a Seismic index from (id, integer vector) pairs into the existing ``folder``."""
    import numpy as np

    seismic = _require()
    settings = check_settings(settings or {}, BUILD_SETTINGS, "build")
    started = time.perf_counter()
    tokens: dict[str, int] = {}
    dataset = seismic.SeismicDataset()
    documents = nonzeros = weight_total = 0
    ids: list[str] = []
    comps: list[int] = []
    vals: list[float] = []
    offsets = [0]

    def flush() -> None:
        if ids:
            dataset.add_documents_by_id(ids, np.asarray(comps, dtype=np.int64), np.asarray(vals, dtype=np.float32),
                                        np.asarray(offsets, dtype=np.int64))
        ids.clear(), comps.clear(), vals.clear()
        offsets[:] = [0]

    for doc_id, vector in vectors:
        row = sorted((tokens.setdefault(tok, len(tokens)), w) for tok, w in vector.items() if w > 0)
        if not row:
            continue  # Seismic skips empty rows too; such a document can never be retrieved
        ids.append(doc_id)
        comps.extend(c for c, _ in row)
        vals.extend(float(w) for _, w in row)
        offsets.append(len(comps))
        documents += 1
        nonzeros += len(row)
        weight_total += sum(w for _, w in row)
        if len(ids) >= batch:
            flush()
    flush()
    if documents == 0:
        raise ReproError("no non-empty vectors to index")
    n_postings = settings.get("n_postings") or max(3500, int(3500 * documents / 1_000_000))
    used = {**DEFAULTS, **settings, "n_postings": n_postings}
    index = seismic.SeismicIndex.build_from_dataset(dataset, num_threads=threads, **used)
    index.save(str(folder / INDEX_FILE))
    (folder / TOKENS_FILE).write_text(json.dumps(tokens), encoding="utf-8")
    info = {"documents": documents, "nonzeros": nonzeros, "weight_total": weight_total, "terms": len(tokens),
            "settings": used, "seconds": round(time.perf_counter() - started, 2)}
    (folder / "seismic.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def build(shards: Path, output: Path, *, threads: int, settings: dict[str, Any], memory: str | None = None,
          vectors: Iterable[tuple[str, dict[str, int]]] | None = None) -> dict[str, Any]:
    """Engine entry point for `repro index --backend seismic` (``vectors``: the collection's documents)."""
    if vectors is None:
        raise ReproError("the Seismic engine indexes vectors; give the collection's documents")
    return build_into(output, vectors, threads=threads, settings=settings)


def build_seismic_index(vectors: Iterable[tuple[str, dict[str, int]]] | Path, output: Path, *, threads: int = 0,
                        force: bool = False, **settings: Any) -> dict[str, Any]:
    """A standalone Seismic index folder (benchmarks and tests), written atomically; no repro manifest."""
    if isinstance(vectors, (str, Path)):
        from repro.formats.collection import iter_vectors

        vectors = iter_vectors(Path(vectors))
    with atomic_dir(Path(output), force=force) as tmp:
        return build_into(tmp, vectors, threads=threads, settings=settings)


class SeismicSearcher:
    """Approximate top-k by dot product, ordered by the tie rule."""

    def __init__(self, index: Path, *, query_cut: int | None = None, heap_factor: float | None = None) -> None:
        seismic = _require()
        index = Path(index)
        path = index / (INDEX_FILE + ".index.seismic")
        if not path.exists():
            raise ReproError("not a Seismic index folder (no seismic.index.seismic)", index)
        given = check_settings({"query_cut": query_cut, "heap_factor": heap_factor}, SEARCH_SETTINGS, "search")
        self.index = seismic.SeismicIndex.load(str(path))
        self.tokens: dict[str, int] = json.loads((index / TOKENS_FILE).read_text(encoding="utf-8"))
        self.string = seismic.get_seismic_string()
        self.query_cut = given.get("query_cut", SEARCH_SETTINGS["query_cut"])
        self.heap_factor = given.get("heap_factor", SEARCH_SETTINGS["heap_factor"])
        self.documents = self.index.len
        self.searches = 0  # calls into Seismic: a query searched again deeper (tie at the cutoff) counts twice

    def raw(self, vector: dict[str, int], depth: int, *, query_cut: int | None = None,
            heap_factor: float | None = None) -> list[ties.Hit]:
        """Top-``depth`` (docid, exact integer score) in the tie rule's order."""
        import numpy as np

        known = [(str(self.tokens[t]), float(w)) for t, w in vector.items() if w > 0 and t in self.tokens]
        if not known:
            return []
        comps = np.array([c for c, _ in known], dtype=self.string)
        vals = np.array([w for _, w in known], dtype=np.float32)
        given = check_settings({"query_cut": query_cut, "heap_factor": heap_factor}, SEARCH_SETTINGS, "search")
        self.searches += 1
        hits = self.index.search("q", comps, vals, k=depth, query_cut=given.get("query_cut", self.query_cut),
                                 heap_factor=given.get("heap_factor", self.heap_factor))
        if not hits:
            return []
        # (query id, float score, docid) triples; two C-level passes beat zip(*hits) at 1,000 hits
        scores = np.fromiter(map(_SCORE, hits), dtype=np.float64, count=len(hits))
        return ties.ranked_impacts(list(map(_DOCID, hits)), scores)

    def search(self, vector: dict[str, int], k: int = defaults.HITS, *, query_cut: int | None = None,
               heap_factor: float | None = None) -> list[ties.Hit]:
        return ties.top_k(lambda depth: self.raw(vector, depth, query_cut=query_cut, heap_factor=heap_factor), k,
                          ordered=True, tight=True)


def open_searcher(index: Path, *, settings: dict[str, Any], memory: str | None = None) -> SeismicSearcher:
    return SeismicSearcher(index, **settings)


def search_many(index: Path, queries: dict[str, dict[str, int]], *, hits: int, threads: int,
                settings: dict[str, Any], memory: str | None = None) -> dict[str, list[ties.Hit]]:
    searcher = open_searcher(index, settings=settings)
    return {qid: searcher.search(vec, hits) for qid, vec in queries.items()}
