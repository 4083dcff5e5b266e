"""JsonVectorCollections written by another tool (Anserini's test layouts: per-file JSON, JSON
arrays, JSONL, gzipped) are indexed and verified by counting documents and weights, and give
exactly the run Anserini's own end-to-end test expects (JsonVectorEndToEndTest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli
from repro.formats.collection import scan_foreign

LAYOUTS = ["collection1", "collection1_gz", "collection2", "collection2_gz", "collection3", "collection3_gz"]


def invoke(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _run_rows(path: Path) -> list[tuple[str, str, str, str]]:
    """(qid, docid, rank, score) of every line; the tag column differs by tool."""
    return [tuple(line.split()[i] for i in (0, 2, 3, 4)) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def data(shared_data) -> Path:
    return shared_data / "anserini-json-vector"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_scan_counts_documents_and_weights(layout, data):
    facts = scan_foreign(data / layout)
    assert facts["documents"] == 2 and facts["weight_total"] == 9 + 20  # doc1 1+2+1+4+1, doc2 3+1+2+6+8


# every layout once fast (per-file JSON, a JSON array, gzipped JSONL); the other three under slow
@pytest.mark.parametrize("layout", [
    layout if layout in ("collection1", "collection2", "collection3_gz") else pytest.param(layout, marks=pytest.mark.slow)
    for layout in LAYOUTS])
def test_index_and_search_give_anserinis_expected_run(layout, data, tmp_path):
    invoke("index", data / layout, "-o", tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["documents"] == 2 and manifest["weight_total"] == 29
    invoke("search", tmp_path / "idx", "--encoded-queries", data / "json_vector_topics.tsv", "-o", tmp_path / "run.trec")
    assert _run_rows(tmp_path / "run.trec") == _run_rows(data / "expected_run.impact.txt")


def test_seismic_reads_a_foreign_collection(data, tmp_path):
    pytest.importorskip("seismic")
    invoke("index", data / "collection3_gz", "--backend", "seismic", "-o", tmp_path / "seis")
    invoke("search", tmp_path / "seis", "--encoded-queries", data / "json_vector_topics.tsv", "-o", tmp_path / "run.trec")
    assert _run_rows(tmp_path / "run.trec") == _run_rows(data / "expected_run.impact.txt")


@pytest.mark.parametrize("damage,says", [
    ('"f1": 1,', "not a positive integer"), ('"id": "doc1"', "duplicate document id"),
    ('"vector": {"f1": 1, "f2": 2, "f3": 1, "f4": 4, "f5": 1}', "empty vector"), ("{", "not valid JSON")])
def test_bad_foreign_collections_are_refused_with_file_and_line(damage, says, data, tmp_path):
    folder = tmp_path / "coll"
    shutil.copytree(data / "collection3", folder)
    seg = folder / "segment1.json"
    text = seg.read_text()
    if says == "not a positive integer":
        text = text.replace('"f1": 1,', '"f1": 1.5,', 1)
    elif says == "duplicate document id":
        text = text.replace('"id": "doc2"', '"id": "doc1"', 1)
    elif says == "empty vector":
        text = text.replace(damage, '"vector": {}', 1)
    else:
        text = text + "\n{"
    seg.write_text(text)
    result = CliRunner().invoke(cli, ["index", str(folder), "-o", str(tmp_path / "idx")])
    assert result.exit_code == 2 and says in result.output and f"{seg}:" in result.output, result.output
    assert not (tmp_path / "idx").exists()


def test_reproduce_with_vectors_indexes_them_and_encodes_nothing(data, tmp_path, monkeypatch):
    """A user preset over Anserini's test collection: --vectors DIR indexes the foreign collection,
    searches with the cached queries and evaluates, with no model and no encoding step."""
    presets = tmp_path / "presets"
    presets.mkdir()
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("1 0 doc2 1\n2 0 doc1 1\n3 0 doc2 1\n")
    (presets / "anserini-json-vector.cached.toml").write_text(f'''
description = "Anserini's JsonVectorEndToEndTest collection with its pre-encoded queries"
collection = "anserini-json-vector"
retrieval = "splade"
model = "not-needed/with-vectors"
corpus = "{data / 'collection1'}"
[[topics]]
name = "test"
topics = "{data / 'json_vector_topics.tsv'}"
qrels = "{qrels}"
encoded_queries = "{data / 'json_vector_topics.tsv'}"
measures = ["RR@10"]
[[topics.expected]]
measure = "RR@10"
value = 0.8333
tolerance = 0.0001
source = "by hand from expected_run.impact.txt: ranks 1, 1, 2"
''')
    monkeypatch.setenv("REPRO_PRESETS", str(presets))
    out = invoke("reproduce", "anserini-json-vector.cached", "--vectors", data / "collection2_gz",
                 "--workdir", tmp_path / "w", "--runs", tmp_path / "runs")
    assert "repro encode" not in out
    run = tmp_path / "runs" / "anserini-json-vector.cached.test.trec"
    assert _run_rows(run) == _run_rows(data / "expected_run.impact.txt")
    result = json.loads((tmp_path / "runs" / "anserini-json-vector.cached.test.eval.json").read_text())
    assert abs(result["aggregate"]["RR@10"] - 5 / 6) < 1e-9


def test_msmarco_reproduce_with_vectors_plan(data, tmp_path):
    out = invoke("reproduce", "msmarco-v1-passage.splade-pp-ed", "--vectors", data / "collection1", "--dry-run",
                 "--workdir", tmp_path / "w", "--runs", tmp_path / "runs")
    lines = [line.strip() for line in out.splitlines()]
    assert not any(line.startswith("repro encode") for line in lines)
    assert any(line.startswith(f"repro index {data / 'collection1'} ") for line in lines), out
    assert "queries dev-small=cached" in out
    result = CliRunner().invoke(cli, ["reproduce", "msmarco-v1-passage.splade-pp-ed", "--vectors", str(tmp_path),
                                      "--dry-run"])
    assert result.exit_code == 2 and "--vectors must be an encoded collection" in result.output
