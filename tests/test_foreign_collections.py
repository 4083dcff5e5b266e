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
