"""A dev set scored with the model being trained: brute-force sparse dot product, ir_measures, the tie rule.

At dev scale (thousands of documents) an exact float dot product over every document is cheap
and needs no index: queries and documents are encoded with the current weights (float vectors,
no quantization), scored as one sparse x sparse^T product, and the top ``depth`` per query are
ranked by the tie rule of `repro.search.ties` (score descending, then docid ascending). Each run
handed to ir_measures carries rank-derived scores, so no evaluator re-orders ties its own way.
Queries with an empty vector get no hits and count 0 (ir_measures averages over the qrels'
queries, as `trec_eval -c`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.errors import ReproError

MEASURES = {"ndcg@10": "nDCG@10", "rr@10": "RR@10", "r@100": "R@100"}


@dataclass
class DevSet:
    queries: dict[str, str]
    doc_ids: list[str]
    doc_texts: list[str]
    qrels: dict[str, dict[str, int]]

    @classmethod
    def load(cls, queries: str, corpus: str, qrels: str, topic_format: str = "auto") -> "DevSet":
        """Local files or ir_datasets IDs; queries are restricted to judged ones."""
        from repro.formats.corpus import iter_docs
        from repro.formats.qrels import read_qrels
        from repro.formats.topics import read_topics

        judged = read_qrels(qrels).by_query
        topics = {qid: text for qid, text in read_topics(queries, topic_format).items() if qid in judged}
        if not topics:
            raise ReproError("no dev query has judgements (do the query ids match the qrels?)", queries)
        docs = list(iter_docs(corpus))
        if not docs:
            raise ReproError("dev corpus has no documents", corpus)
        return cls(topics, [d.id for d in docs], [d.text for d in docs], {q: judged[q] for q in topics})


def _encode(model, texts: list[str], query: bool, batch_size: int):
    import torch

    with torch.inference_mode():
        fn = model.encode_query if query else model.encode_document
        return fn(texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False).coalesce().cpu()


def rank(model, dev: DevSet, depth: int = 100, batch_size: int = 32) -> dict[str, list[tuple[str, float]]]:
    """Top ``depth`` (docid, score) per dev query by exact float dot product, ordered by the tie rule."""
    import torch

    was_training = model.training
    model.eval()
    try:
        q = _encode(model, list(dev.queries.values()), True, batch_size)
        d = _encode(model, dev.doc_texts, False, batch_size)
    finally:
        model.train(was_training)
    scores = torch.sparse.mm(q, d.t()).to_dense()  # (queries x documents)
    k = min(depth, scores.shape[1])
    out: dict[str, list[tuple[str, float]]] = {}
    for row, qid in enumerate(dev.queries):
        values = scores[row]
        # take everything tied with the k-th score, then apply the tie rule (docid breaks ties)
        kth = torch.topk(values, k).values[-1]
        idx = torch.nonzero(values >= kth).flatten().tolist()
        hits = [(dev.doc_ids[i], float(values[i])) for i in idx if values[i] > 0]
        hits.sort(key=lambda h: (-h[1], h[0]))
        out[qid] = hits[:k]
    return out


def measure(run: dict[str, list[tuple[str, float]]], qrels: dict[str, dict[str, int]],
            names: tuple[str, ...] = ("ndcg@10", "rr@10")) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Aggregate and per-query values of ``names`` (keys of MEASURES) with ir_measures."""
    import ir_measures

    measures = [ir_measures.parse_measure(MEASURES[n]) for n in names]
    qrel_rows = [ir_measures.Qrel(q, d, rel) for q, docs in qrels.items() for d, rel in docs.items()]
    run_rows = [ir_measures.ScoredDoc(q, d, float(len(hits) - i)) for q, hits in run.items() for i, (d, _) in enumerate(hits)]
    per_query: dict[str, dict[str, float]] = {q: {n: 0.0 for n in names} for q in qrels}
    by_measure = {str(m): n for m, n in zip(measures, names)}
    for row in ir_measures.iter_calc(measures, qrel_rows, run_rows):
        per_query.setdefault(row.query_id, {n: 0.0 for n in names})[by_measure[str(row.measure)]] = float(row.value)
    aggregate = {n: sum(v[n] for v in per_query.values()) / len(per_query) for n in names} if per_query else {}
    return aggregate, per_query


def evaluate(model, dev: DevSet, names: tuple[str, ...] = ("ndcg@10", "rr@10"), depth: int = 100,
             batch_size: int = 32) -> dict[str, Any]:
    """One dev evaluation: aggregate measures, per-query values and the mean nonzeros of the vectors."""
    run = rank(model, dev, depth=depth, batch_size=batch_size)
    aggregate, per_query = measure(run, dev.qrels, names)
    return {"aggregate": aggregate, "per_query": per_query, "queries": len(dev.queries)}


def load_dev(cfg) -> DevSet | None:
    """The training config's dev set, or None when it names none (all three or none must be given)."""
    given = [cfg.dev_queries, cfg.dev_corpus, cfg.dev_qrels]
    if not any(given):
        return None
    if not all(given):
        raise ReproError("a dev set needs all of --dev-queries, --dev-corpus and --dev-qrels")
    return DevSet.load(cfg.dev_queries, cfg.dev_corpus, cfg.dev_qrels)


def write_best(model, folder: Path) -> None:
    """Save the best model so far, atomically (a kill mid-save keeps the previous best)."""
    from repro.outputs import atomic_dir

    with atomic_dir(folder, force=True) as tmp:
        model.save(str(tmp))
