"""The speed paths behind the CLI: ONNX query runtimes, the Seismic backend and `repro query`.

Each is checked against the exact reference on the same collection: ONNX vectors against PyTorch's,
Seismic's and the in-process searcher's results against exact dot products and the Lucene run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli
from test_pipeline import TOPICS, build_pipeline, invoke, read_collection, read_run

MAX_DIFFERING = 2  # quantized weights allowed to move between runtimes (float rounding at .5 boundaries)


def read_queries(path: Path) -> dict[str, Counter]:
    return {line.split("\t")[0]: Counter(line.split("\t")[1].split()) for line in path.read_text().splitlines()}


def differing(a: dict[str, Counter], b: dict[str, Counter]) -> tuple[int, int]:
    differ = total = 0
    for qid in a:
        for tok in set(a[qid]) | set(b[qid]):
            total += 1
            differ += a[qid].get(tok) != b[qid].get(tok)
    return differ, total


@pytest.fixture(scope="module")
def built(tmp_path_factory, _tiny_mlm_session):
    return build_pipeline(tmp_path_factory.mktemp("backends"), str(_tiny_mlm_session), [*TOPICS, "supersonic wing lift"])


@pytest.fixture(autouse=True)
def _onnx_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path_factory.getbasetemp() / "onnx-cache"))


def test_onnx_runtime_encodes_the_same_queries(built):
    pytest.importorskip("onnxruntime")
    tmp = built["tmp"]
    invoke("encode", str(built["topics"]), "--queries", "-m", built["model"], "--runtime", "onnx", "-o", str(tmp / "qo.tsv"))
    ref, got = read_queries(tmp / "q.tsv"), read_queries(tmp / "qo.tsv")
    differ, total = differing(ref, got)
    assert total > 50 and differ <= MAX_DIFFERING, (differ, total)
    manifest = json.loads((tmp / "qo.tsv.manifest.json").read_text())
    assert manifest["config"]["runtime"] == "onnx" and manifest["queries"] == 5


def test_onnx_int8_runtime_is_close_but_not_identical(built):
    pytest.importorskip("onnxruntime")
    tmp = built["tmp"]
    invoke("encode", str(built["topics"]), "--queries", "-m", built["model"], "--runtime", "onnx-int8",
           "-o", str(tmp / "q8.tsv"))
    ref, got = read_queries(tmp / "q.tsv"), read_queries(tmp / "q8.tsv")
    for qid in ref:  # the heaviest terms survive int8 weights
        top = {t for t, _ in ref[qid].most_common(5)}
        assert len(top & set(got[qid])) >= 4, qid


def test_search_with_onnx_runtime_equals_encoded_queries_run(built):
    pytest.importorskip("onnxruntime")
    tmp = built["tmp"]
    invoke("search", str(tmp / "idx"), "-t", str(built["topics"]), "-m", built["model"], "--runtime", "onnx",
           "-o", str(tmp / "onnx.trec"), "-k", "20")
    invoke("encode", str(built["topics"]), "--queries", "-m", built["model"], "--runtime", "onnx",
           "-o", str(tmp / "qo2.tsv"))
    invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "qo2.tsv"), "-o", str(tmp / "enc.trec"), "-k", "20")
    strip = lambda p: [line.rsplit(" ", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731
    assert strip(tmp / "onnx.trec") == strip(tmp / "enc.trec")


def test_runtime_is_refused_for_documents(built, tmp_path):
    result = CliRunner().invoke(cli, ["encode", str(built["tmp"] / "corpus.tsv"), "-m", built["model"],
                                      "--runtime", "onnx", "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "--queries" in result.output
    assert not (tmp_path / "c").exists()


@pytest.fixture(scope="module")
def seismic_index(built):
    pytest.importorskip("seismic")
    tmp = built["tmp"]
    out = invoke("index", str(tmp / "coll"), "--backend", "seismic", "-o", str(tmp / "seis"))
    assert "Seismic index" in out
    return tmp / "seis"


def test_seismic_index_has_a_manifest_checked_against_the_collection(built, seismic_index):
    manifest = json.loads((seismic_index / "manifest.json").read_text())
    coll = json.loads((built["tmp"] / "coll" / "manifest.json").read_text())
    assert manifest["config"]["engine"] == "seismic" and manifest["config"]["kind"] == "impact"
    assert manifest["weight_total"] == coll["weight_total"]
    assert manifest["documents"] == coll["documents"] == len(built["docs"])
    assert manifest["collection_digest"] == coll["config_digest"]


def test_seismic_search_scores_are_exact(built, seismic_index):
    """At the default settings every score Seismic reports is the exact dot product (it is approximate
    in WHICH documents it finds, not in their scores)."""
    tmp = built["tmp"]
    invoke("search", str(seismic_index), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / "seis0.trec"), "-k", "10")
    docs = read_collection(tmp / "coll")
    queries = read_queries(tmp / "q.tsv")
    for qid, ranked in read_run(tmp / "seis0.trec").items():
        assert ranked
        for docid, score in ranked:
            assert int(score.split(".")[0]) == sum(w * docs[docid].get(t, 0) for t, w in queries[qid].items())


def test_exhaustive_seismic_equals_lucene(built):
    """With nothing pruned or skipped (all postings, full summaries, every query term) Seismic must
    return exactly Lucene's ranking. (The random model's vectors, hundreds of flat weights, are far
    from SPLADE's; recall at the defaults on SPLADE vectors is measured in docs/benchmarks.md.)"""
    pytest.importorskip("seismic")
    tmp = built["tmp"]
    invoke("index", str(tmp / "coll"), "--backend", "seismic", "-o", str(tmp / "seis-full"), "--seismic", "n_postings=1000",
           "--seismic", "summary_energy=1.0", "--seismic", "max_fraction=1.0", "--seismic", "doc_cut=1000")
    invoke("search", str(tmp / "seis-full"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / "seis.trec"),
           "-k", "10", "--query-cut", "1000", "--heap-factor", "1.0")
    invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / "luc.trec"), "-k", "10")
    seis, exact = read_run(tmp / "seis.trec"), read_run(tmp / "luc.trec")
    assert seis == exact
    assert "repro-splade-seismic" in (tmp / "seis.trec").read_text().splitlines()[0]


def test_bad_seismic_settings_are_refused(built, tmp_path):
    for arg, says in (("nope=1", "KEY one of"), ("n_postings=abc", "not a number")):
        result = CliRunner().invoke(cli, ["index", str(built["tmp"] / "coll"), "--backend", "seismic", "--seismic", arg,
                                          "-o", str(tmp_path / "s")])
        assert result.exit_code == 2 and says in result.output
        assert not (tmp_path / "s").exists()


def test_backend_must_match_the_index(built, seismic_index, tmp_path):
    tmp = built["tmp"]
    for index, backend, says in ((tmp / "idx", "seismic", "Lucene impact index"), (seismic_index, "lucene", "Seismic")):
        result = CliRunner().invoke(cli, ["search", str(index), "--backend", backend, "--encoded-queries",
                                          str(tmp / "q.tsv"), "-o", str(tmp_path / "x.trec")])
        assert result.exit_code == 2 and says in result.output and "repro index --backend" in result.output
        assert not (tmp_path / "x.trec").exists()
    result = CliRunner().invoke(cli, ["search", str(tmp / "idx"), "--query-cut", "5", "--encoded-queries",
                                      str(tmp / "q.tsv"), "-o", str(tmp_path / "x.trec")])
    assert result.exit_code == 2 and "Seismic settings" in result.output


def test_bm25_with_seismic_backend_is_refused(built, tmp_path):
    result = CliRunner().invoke(cli, ["index", str(built["tmp"] / "coll"), "--bm25", "--backend", "seismic",
                                      "-o", str(tmp_path / "b")])
    assert result.exit_code == 2 and "--bm25" in result.output


def test_query_command_equals_the_run(built):
    """`repro query` (in-process Lucene, encoder kept loaded) prints the same top-k as `repro search`."""
    tmp = built["tmp"]
    invoke("search", str(tmp / "idx"), "-t", str(built["topics"]), "-m", built["model"], "-o", str(tmp / "t.trec"), "-k", "5")
    expected = read_run(tmp / "t.trec")
    stdin = "boundary layer heat transfer\n\nlazy dog\n"
    result = CliRunner().invoke(cli, ["query", str(tmp / "idx"), "-m", built["model"], "--runtime", "torch", "-k", "5"],
                                input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    blocks = [b for b in result.output.split("# ")[1:]]
    assert len(blocks) == 2 and "ms" in blocks[0]
    for block, qid in zip(blocks, ("q1", "q3")):
        rows = [line.split("\t") for line in block.splitlines()[1:]]
        assert [(d, int(s)) for _, d, s in rows] == [(d, int(s.split(".")[0])) for d, s in expected[qid]]


def test_query_command_on_seismic_and_bad_index(built, seismic_index, tmp_path):
    out = invoke("query", str(seismic_index), "-m", built["model"], "--runtime", "torch", "-k", "3", "lazy", "dog")
    assert out.startswith("# lazy dog") and len(out.strip().splitlines()) == 4
    result = CliRunner().invoke(cli, ["query", str(tmp_path), "-m", built["model"], "x"])
    assert result.exit_code == 2 and "manifest" in result.output


def test_onnx_runtime_refuses_other_dtypes(built, tmp_path):
    result = CliRunner().invoke(cli, ["encode", str(built["topics"]), "--queries", "-m", built["model"], "--runtime", "onnx",
                                      "--dtype", "bfloat16", "-o", str(tmp_path / "q.tsv")])
    assert result.exit_code == 2 and "float32" in result.output
    assert not (tmp_path / "q.tsv").exists()


@pytest.mark.parametrize("flag,value", [("--heap-factor", "0"), ("--query-cut", "0"), ("--query-cut", "-3"),
                                        ("--heap-factor", "nan"), ("--heap-factor", "inf")])
def test_zero_or_negative_seismic_search_settings_are_refused(built, seismic_index, tmp_path, flag, value):
    """0 used to mean "the default" (`heap_factor or 0.8`), negatives overflowed inside Seismic, and nan
    passed a `<= 0` check."""
    result = CliRunner().invoke(cli, ["search", str(seismic_index), flag, value, "--encoded-queries",
                                      str(built["tmp"] / "q.tsv"), "-o", str(tmp_path / "x.trec")])
    assert result.exit_code == 2 and flag.strip("-").replace("-", "_") in result.output
    assert not (tmp_path / "x.trec").exists()


def test_seismic_gets_the_heap_factor_and_the_tight_first_depth(built, seismic_index):
    """heap_factor > 1 reaches Seismic as given (its guidelines allow it: more skipping), and the
    first search asks for k + ties.TIGHT_MARGIN hits; each call is counted in ``searches``."""
    from repro.engines.seismic import SeismicSearcher
    from repro.formats.collection import iter_vectors
    from repro.search import ties

    searcher = SeismicSearcher(seismic_index)
    calls: list[dict] = []

    class Recording:  # Seismic's index type is native: wrap it instead of patching it
        def __init__(self, index):
            self.index = index

        def search(self, *args, **kwargs):
            calls.append(kwargs)
            return self.index.search(*args, **kwargs)

    searcher.index = Recording(searcher.index)
    _, vector = next(iter(iter_vectors(built["tmp"] / "coll")))
    hits = searcher.search(vector, 5, heap_factor=3.0)
    assert hits and hits[0][1] > 0
    assert calls[0]["heap_factor"] == 3.0 and calls[0]["k"] == 5 + ties.TIGHT_MARGIN
    assert searcher.searches == len(calls) >= 1


def test_zero_seismic_build_setting_is_refused(built, tmp_path):
    result = CliRunner().invoke(cli, ["index", str(built["tmp"] / "coll"), "--backend", "seismic", "--setting",
                                      "n_postings=0", "-o", str(tmp_path / "s")])
    assert result.exit_code == 2 and "n_postings=0" in result.output and not (tmp_path / "s").exists()
