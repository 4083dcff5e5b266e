"""Inference-free SPLADE end to end (a Router: SparseStaticEmbedding queries, MLM documents).

Documents go through the MLM route, queries through the static table (tokenize, look up, no
transformer) in `repro encode --queries`, `repro search -m`, `repro query`, `repro inspect`, on
Lucene and Seismic; every score is the exact dot product of the two quantized vectors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli
from repro.formats.anserini_queries import read_encoded_queries
from repro.formats.collection import iter_vectors
from repro.testing import build_inference_free

DOCS = ["python is a programming language used for scripting", "best restaurants in paris near the seine",
        "the quick brown fox jumps over the lazy dog", "a spider has eight legs", "lift of a wing in a slipstream",
        "sparse vectors and inverted indexes in lucene", "heat transfer in supersonic flow on a flat plate",
        "bert predicts masked tokens from their context", "time sharing systems for ibm computers",
        "caffeine during pregnancy", "fruit native to australia", "the manhattan project"] * 2
TOPICS = {"1": "what is python programming", "2": "restaurants in paris", "3": "how many legs does a spider have",
          "4": "supersonic heat transfer"}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def read_run(path: Path) -> dict[str, list[tuple[str, str]]]:
    run: dict[str, list[tuple[str, str]]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, []).append((docid, score))
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory, _tiny_mlm_session):
    tmp = tmp_path_factory.mktemp("inference-free")
    model = str(build_inference_free(tmp / "model", _tiny_mlm_session))
    (tmp / "corpus.tsv").write_text("".join(f"d{i}\t{t}\n" for i, t in enumerate(DOCS)), encoding="utf-8")
    (tmp / "topics.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in TOPICS.items()), encoding="utf-8")
    invoke("encode", str(tmp / "corpus.tsv"), "-m", model, "-o", str(tmp / "coll"), "-q")
    invoke("index", str(tmp / "coll"), "-o", str(tmp / "idx"))
    invoke("encode", str(tmp / "topics.tsv"), "--queries", "-m", model, "-o", str(tmp / "q.tsv"))
    return {"tmp": tmp, "model": model}


def test_queries_are_the_static_table_and_scores_are_exact(built):
    tmp = built["tmp"]
    queries = read_encoded_queries(tmp / "q.tsv")
    from repro.encode.torch_encoder import StaticQueryEncoder

    static = StaticQueryEncoder(built["model"])
    for qid, text in TOPICS.items():
        ids = static.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert set(queries[qid]) == {static.vocab[i] for i in ids}  # one term per distinct token, no expansion
    invoke("search", str(tmp / "idx"), "-t", str(tmp / "topics.tsv"), "-m", built["model"], "-o", str(tmp / "text.trec"), "-k", "10")
    invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / "enc.trec"), "-k", "10")
    strip = lambda p: [line.rsplit(" ", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731
    assert strip(tmp / "text.trec") == strip(tmp / "enc.trec")
    docs = dict(iter_vectors(tmp / "coll"))
    for qid, ranked in read_run(tmp / "text.trec").items():
        assert ranked
        for docid, score in ranked:
            assert int(score.split(".")[0]) == sum(w * docs[docid].get(t, 0) for t, w in queries[qid].items())


def test_seismic_path_equals_lucene(built):
    pytest.importorskip("seismic")
    tmp = built["tmp"]
    invoke("index", str(tmp / "coll"), "--backend", "seismic", "-o", str(tmp / "seis"), "--seismic", "n_postings=1000",
           "--seismic", "summary_energy=1.0", "--seismic", "max_fraction=1.0", "--seismic", "doc_cut=1000")
    invoke("search", str(tmp / "seis"), "-t", str(tmp / "topics.tsv"), "-m", built["model"], "-o", str(tmp / "seis.trec"),
           "-k", "10", "--query-cut", "1000", "--heap-factor", "1.0")
    if not (tmp / "luc.trec").exists():
        invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / "luc.trec"), "-k", "10")
    seis, luc = read_run(tmp / "seis.trec"), read_run(tmp / "luc.trec")
    assert {q: [d for d, _ in r] for q, r in seis.items()} == {q: [d for d, _ in r] for q, r in luc.items()}
    out = invoke("query", str(tmp / "seis"), "-m", built["model"], "-k", "3", "--query-cut", "1000", TOPICS["1"])
    assert [line.split("\t")[1] for line in out.splitlines() if not line.startswith("#")] == [d for d, _ in luc["1"][:3]]


def test_query_command_and_inspect(built):
    tmp = built["tmp"]
    out = invoke("query", str(tmp / "idx"), "-m", built["model"], "-k", "3", "--show-terms", "20", TOPICS["3"])
    if not (tmp / "luc.trec").exists():
        invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / "luc.trec"), "-k", "10")
    expected = [d for d, _ in read_run(tmp / "luc.trec")["3"][:3]]
    assert [line.split("\t")[1] for line in out.splitlines() if not line.startswith("#")] == expected
    queries = read_encoded_queries(tmp / "q.tsv")
    assert f"({len(queries['3'])} terms;" in out
    shown = invoke("inspect", "-m", built["model"], "--side", "query", "python python is")
    assert "nnz=2 " in shown  # two distinct tokens, nothing expanded
    assert "nnz=2 " not in invoke("inspect", "-m", built["model"], "python python is")  # the MLM route expands
