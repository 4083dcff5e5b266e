"""Approximate impact search with Seismic (PyPI `pyseismic-lsr`), for low-latency retrieval.

Seismic keeps, per term, only the documents with the largest weights (``n_postings`` on average),
groups them into blocks with a summary vector, and at query time scans only the ``query_cut``
heaviest query terms and skips blocks whose summary score cannot enter the top-k heap
(``heap_factor``). It is approximate: the recall it reaches is measured against exact Lucene search
in benchmarks/bench_query_latency.py and bench_scale.py, not assumed.

Input is a `repro encode` collection (JsonVectorCollection shards with integer weights); the index
folder holds Seismic's binary index, the token -> component map and a manifest. Scores are the
integer dot product over the postings Seismic kept (values are stored as 16-bit floats, exact for
integers up to 2048; quantized SPLADE weights stay far below).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from repro.outputs import atomic_dir
from repro.errors import ReproError
from repro.manifest import write_manifest

INDEX_FILE = "seismic"  # Seismic appends .index.seismic
TOKENS_FILE = "tokens.json"
# Defaults from the Seismic authors' MS MARCO SPLADE settings, scaled by collection size at build.
DEFAULTS = {"centroid_fraction": 0.1, "summary_energy": 0.4, "doc_cut": 15, "min_cluster_size": 2, "max_fraction": 1.5}
SEARCH_DEFAULTS = {"query_cut": 20, "heap_factor": 0.8}


def _require():
    try:
        import seismic
    except ImportError:
        raise ReproError("the Seismic backend needs pyseismic-lsr: pip install 'repro[seismic]'") from None
    return seismic


def iter_collection(collection: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """(id, vector) from a `repro encode` folder (OUT/shards/*.jsonl) or a folder of *.jsonl shards."""
    collection = Path(collection)
    shards_dir = collection / "shards" if (collection / "shards").is_dir() else collection
    files = sorted(shards_dir.glob("*.jsonl"))
    if not files:
        raise ReproError("no *.jsonl shards found (give a `repro encode` output folder)", collection)
    for shard in files:
        with open(shard, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                yield str(record["id"]), record["vector"]


def build_seismic_index(collection: Path | Iterable[tuple[str, dict[str, int]]], output: Path, *,
                        n_postings: int | None = None, threads: int = 0, force: bool = False,
                        batch: int = 50_000, manifest: dict[str, Any] | None = None,
                        **params: Any) -> dict[str, Any]:
    """Build a Seismic index from integer vectors; returns counts, seconds and the settings used.

    ``n_postings`` (average postings kept per term) defaults to Seismic's 3500 for collections of
    up to 1M documents, scaled linearly above (the authors use 4000-6000 at 8.8M). With
    ``manifest`` (config and facts of the source collection), the folder also gets a repro index
    manifest of kind "seismic", so `repro search` knows which engine to use.
    """
    import numpy as np

    seismic = _require()
    started = time.perf_counter()
    records = iter_collection(collection) if isinstance(collection, (str, Path)) else collection
    tokens: dict[str, int] = {}
    dataset = seismic.SeismicDataset()
    documents = nonzeros = 0
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

    for doc_id, vector in records:
        row = sorted((tokens.setdefault(tok, len(tokens)), w) for tok, w in vector.items() if w > 0)
        if not row:
            continue  # Seismic skips empty rows too; such a document can never be retrieved
        ids.append(doc_id)
        comps.extend(c for c, _ in row)
        vals.extend(float(w) for _, w in row)
        offsets.append(len(comps))
        documents += 1
        nonzeros += len(row)
        if len(ids) >= batch:
            flush()
    flush()
    if documents == 0:
        raise ReproError("no non-empty vectors to index", collection if isinstance(collection, (str, Path)) else None)
    if n_postings is None:
        n_postings = max(3500, int(3500 * documents / 1_000_000))
    settings = {**DEFAULTS, **params, "n_postings": n_postings}
    index = seismic.SeismicIndex.build_from_dataset(dataset, num_threads=threads, **settings)
    output = Path(output)
    with atomic_dir(output, force=force) as tmp:
        index.save(str(tmp / INDEX_FILE))
        (tmp / TOKENS_FILE).write_text(json.dumps(tokens), encoding="utf-8")
        info = {"documents": documents, "nonzeros": nonzeros, "terms": len(tokens), "settings": settings,
                "seconds": round(time.perf_counter() - started, 2)}
        (tmp / "seismic.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        if manifest is not None:
            config = {"kind": "seismic", **manifest.get("config", {}), "settings": settings}
            info = write_manifest(tmp, "index", config, **manifest.get("facts", {}), **info)
    return info


class SeismicSearcher:
    """Approximate top-k by dot product; results ordered by score desc, then docid asc."""

    def __init__(self, index: Path, *, query_cut: int | None = None, heap_factor: float | None = None) -> None:
        seismic = _require()
        index = Path(index)
        path = index / (INDEX_FILE + ".index.seismic")
        if not path.exists():
            raise ReproError("not a Seismic index folder (no seismic.index.seismic)", index)
        self.index = seismic.SeismicIndex.load(str(path))
        self.tokens: dict[str, int] = json.loads((index / TOKENS_FILE).read_text(encoding="utf-8"))
        self.string = seismic.get_seismic_string()
        self.query_cut = query_cut or SEARCH_DEFAULTS["query_cut"]
        self.heap_factor = heap_factor or SEARCH_DEFAULTS["heap_factor"]
        self.documents = self.index.len

    def search(self, vector: dict[str, int], k: int = 1000, *, query_cut: int | None = None,
               heap_factor: float | None = None) -> list[tuple[str, int]]:
        import numpy as np

        known = [(str(self.tokens[t]), float(w)) for t, w in vector.items() if w > 0 and t in self.tokens]
        if not known:
            return []
        comps = np.array([c for c, _ in known], dtype=self.string)
        vals = np.array([w for _, w in known], dtype=np.float32)
        hits = self.index.search("q", comps, vals, k=k, query_cut=query_cut or self.query_cut,
                                 heap_factor=heap_factor or self.heap_factor)
        ranked = [(docid, int(round(score))) for _, score, docid in hits]
        ranked.sort(key=lambda item: (-item[1], item[0]))
        return ranked
