"""BEIR presets and `--source`: the presets list and plan, the offline message, a local BEIR folder
end to end (tiny, and the real MS MARCO DL20 pool as a BEIR folder: slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

from repro.reproduce.preset import list_presets, load_preset
from repro.testing import REPRO

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ["trec-covid", "nfcorpus", "nq", "hotpotqa", "fiqa", "arguana", "webis-touche2020", "quora",
          "dbpedia-entity", "scidocs", "fever", "climate-fever", "scifact"]
FORUMS = ["android", "english", "gaming", "gis", "mathematica", "physics", "programmers", "stats", "tex", "unix",
          "webmasters", "wordpress"]


def repro(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([REPRO, *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_every_public_dataset_has_three_presets_with_sourced_numbers():
    matrix = ("bm25", "splade-pp-ed", "splade-v3")  # Pyserini's matrix (other models' BEIR presets aside)
    names = {p.name: p for p in list_presets() if p.collection.startswith("beir-") and p.name.split(".", 1)[1] in matrix}
    datasets = PUBLIC + [f"cqadupstack-{f}" for f in FORUMS]
    assert set(names) == {f"beir-{d}.{m}" for d in datasets for m in matrix}
    for p in names.values():
        (ts,) = p.topic_sets
        assert {e.measure for e in ts.expected} == {"nDCG@10", "R@100", "R@1000"}
        assert all(e.kind == "published" and "github.com/castorini" in e.source for e in ts.expected)
        assert ts.split == "test" and p.corpus[0].startswith("beir/")
        assert (p.part_of == "cqadupstack") == p.collection.startswith("beir-cqadupstack-")
    covid = names["beir-trec-covid.splade-pp-ed"].topic_sets[0]
    assert {e.measure: e.value for e in covid.expected} == {"nDCG@10": 0.7274, "R@100": 0.1282, "R@1000": 0.4441}
    assert names["beir-webis-touche2020.bm25"].topic_sets[0].topics == ("beir/webis-touche2020/v2",)
    assert names["beir-scifact.splade-v3"].topic_sets[0].qrels == ("beir/scifact/test",)
    assert names["beir-scifact.splade-v3"].factor == 51.2


def test_generated_presets_are_current(tmp_path):
    spec = importlib.util.spec_from_file_location("make_beir_presets", ROOT / "scripts" / "make_beir_presets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for ds in module.IDS:
        for model in ("bm25", "splade-pp-ed", "splade-v3"):
            path = module.OUT / f"beir-{ds}.{model}.toml"
            assert path.read_text(encoding="utf-8") == module.preset(ds, model), path


def test_presets_list_and_dry_run(tmp_path):
    listed = repro("presets", cwd=tmp_path)
    assert listed.returncode == 0 and "beir-trec-covid.splade-pp-ed" in listed.stdout
    matrix = [line for line in listed.stdout.splitlines()
              if line.startswith("beir-") and line.split()[0].split(".", 1)[1] in ("bm25", "splade-pp-ed", "splade-v3")]
    assert len(matrix) == 75
    plan = repro("reproduce", "beir-trec-covid.splade-pp-ed", "--dry-run", "--workdir", "w", "--runs", "r", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "repro encode beir/trec-covid -m naver/splade-cocondenser-ensembledistil" in plan.stdout
    assert "--qrels beir/trec-covid -m nDCG@10 -m R@100 -m R@1000 --record beir-trec-covid.splade-pp-ed:test" in plan.stdout


def test_offline_failure_is_one_line_naming_source(tmp_path):
    env = {"IR_DATASETS_HOME": str(tmp_path / "irds"), "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    result = repro("reproduce", "beir-scifact.bm25", "--workdir", "w", "--runs", "r", cwd=tmp_path, env=env)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ir_datasets could not provide the docs of 'beir/scifact'") and "--source DIR" in last
    assert "Traceback" not in result.stderr


def tiny_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [("d1", "Aspirin", "aspirin reduces fever"), ("d2", "", "the weather in paris"),
            ("d3", "Fever", "fever and headache"), ("d4", "Paris", "capital of france")]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": x}) + "\n" for q, x in
                                                  [("q1", "aspirin fever"), ("q2", "paris weather"), ("q3", "unjudged")]))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td3\t1\nq2\td2\t1\n")
    return folder


def test_source_dir_replaces_the_ids_in_the_plan(tmp_path):
    folder = tiny_beir(tmp_path / "scifact")
    plan = repro("reproduce", "beir-scifact.bm25", "--dry-run", "--source", str(folder), "--workdir", "w", "--runs", "r",
                 cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert f"repro index {folder} --bm25" in plan.stdout
    assert f"-t {folder} --split test" in plan.stdout and f"--qrels {folder} --split test" in plan.stdout
    bad = repro("reproduce", "beir-scifact.bm25", "--dry-run", "--source", str(tmp_path), cwd=tmp_path)
    assert bad.returncode == 2 and "--source must be a BEIR folder" in bad.stderr


@pytest.mark.slow
def test_user_preset_on_a_local_beir_folder_end_to_end(tmp_path):
    """Lucene index and searches (a JVM): about 20 s on a quiet 2-core machine."""
    folder = tiny_beir(tmp_path / "tiny")
    preset = tmp_path / "tiny.bm25.toml"
    preset.write_text(f'description = "BM25 on a tiny BEIR folder"\ncollection = "tiny"\nretrieval = "bm25"\n'
                      f'corpus = "{folder}"\n\n[[topics]]\nname = "test"\ntopics = "{folder}"\nqrels = "{folder}"\n'
                      'split = "test"\nmeasures = ["nDCG@10", "R@100"]\nqueries = 2\njudged_queries = 2\n')
    from click.testing import CliRunner

    from repro.cli import cli

    work, runs = tmp_path / "w", tmp_path / "r"
    runner = CliRunner()  # in process: one JVM for the index, both searches and the evaluations
    result = runner.invoke(cli, ["reproduce", str(preset), "--workdir", str(work), "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    record = json.loads((runs / "tiny.bm25.test.eval.json").read_text())
    assert record["counts"] == {"queries": 2, "judged_queries": 2, "qrels_lines": 3}
    assert record["aggregate"]["nDCG@10"] == pytest.approx(1.0)  # both queries rank their relevant documents first
    search = runner.invoke(cli, ["search", str(work / "tiny.bm25" / "index"), "-t", str(folder), "--split", "test",
                                 "-o", str(tmp_path / "again.trec")])
    assert search.exit_code == 0 and search.stdout.startswith("2 queries"), search.output
    evaluated = runner.invoke(cli, ["evaluate", str(tmp_path / "again.trec"), "--qrels", str(folder), "--split", "test",
                                    "-m", "nDCG@10"])
    assert evaluated.exit_code == 0 and "again" in evaluated.stdout and "1.0000" in evaluated.stdout


def test_evaluate_with_a_beir_folder_and_split(tmp_path):
    from click.testing import CliRunner

    from repro.cli import cli

    folder = tiny_beir(tmp_path / "f")
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq2\td4\t1\n")
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d3 2 1.0 t\nq2 Q0 d4 1 2.0 t\nq2 Q0 d2 2 1.0 t\n")
    test = CliRunner().invoke(cli, ["evaluate", str(run), "--qrels", str(folder), "-m", "RR", "--format", "json"])
    assert test.exit_code == 0, test.output
    assert json.loads(test.stdout)["runs"][str(run)]["aggregate"]["RR"] == pytest.approx((1 + 0.5) / 2)
    dev = CliRunner().invoke(cli, ["evaluate", str(run), "--qrels", str(folder), "--split", "dev", "-m", "RR",
                                   "--format", "json"])
    assert json.loads(dev.stdout)["runs"][str(run)]["aggregate"]["RR"] == pytest.approx(1.0)
    missing = CliRunner().invoke(cli, ["evaluate", str(run), "--qrels", str(folder), "--split", "train"])
    assert missing.exit_code != 0 and "no qrels for split 'train' (has: dev, test)" in missing.output


@pytest.mark.slow
def test_msmarco_dl20_pool_as_beir_folder(tmp_path, shared_data, splade_tiny):
    """The real 5,400 MS MARCO passages as a BEIR folder: BM25 and splade-tiny through `repro reproduce --source`
    (numbers recorded in docs/beir.md; about 3 minutes on 2 CPU cores, mostly encoding)."""
    spec = importlib.util.spec_from_file_location("pool", ROOT / "scripts" / "make_beir_dl20_pool.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = module.build(tmp_path, shared_data)
    first = json.loads((folder / "corpus.jsonl").open().readline())
    assert set(first) == {"_id", "title", "text"} and first["title"] == ""
    assert (folder / "qrels" / "test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    env = {"REPRO_PRESETS": str(tmp_path / "presets")}
    numbers = {}
    for name, extra in (("bm25", []), ("splade-tiny", ["--model", str(splade_tiny)])):
        result = repro("reproduce", f"dl20-pool.{name}", "--source", str(folder), "--workdir", "w", "--runs", "r",
                       *extra, cwd=tmp_path, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        record = json.loads((tmp_path / "r" / f"dl20-pool.{name}.test.eval.json").read_text())
        assert record["counts"]["queries"] == 54 and record["counts"]["judged_queries"] == 54
        numbers[name] = record["aggregate"]["nDCG@10"]
    assert numbers["bm25"] == pytest.approx(0.5371, abs=2e-4)
    assert numbers["splade-tiny"] == pytest.approx(SPLADE_TINY_POOL_NDCG10, abs=2e-3)


SPLADE_TINY_POOL_NDCG10 = 0.6528  # the recorded run (docs/beir.md)


def test_a_changed_beir_folder_changes_its_fingerprint(tmp_path):
    from repro.reproduce.plan import fingerprint

    folder = tiny_beir(tmp_path / "f")
    before = fingerprint(folder)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert fingerprint(folder) != before and before.startswith("beir:")
