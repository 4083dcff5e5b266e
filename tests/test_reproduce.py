"""`repro reproduce`: plans, stage skipping, redo rules, identical numbers on a second run, verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli
from repro.paths import PACKAGE_DIR
from repro.reproduce.preset import Expected, load_preset
from repro.reproduce.plan import make_plan, reproduce
from repro.reproduce.verdict import compare, verdict

DEMO = PACKAGE_DIR / "data" / "demo"


def invoke(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


# --- verdicts ------------------------------------------------------------------------------------
def test_verdict_is_symmetric():
    assert verdict(0.3830, 0.3835, 0.001) == "reproduced"
    assert verdict(0.3830, 0.3825, 0.001) == "reproduced"
    assert verdict(0.3830, 0.3840, 0.001) == "reproduced"  # on the boundary counts as inside
    assert verdict(0.3830, 0.3900, 0.001) == "deviation (+0.0070)"  # higher is NOT a pass
    assert verdict(0.3830, 0.3760, 0.001) == "deviation (-0.0070)"


def test_subsample_verdicts():
    import numpy as np

    ex = Expected("RR@10", 0.392, "user report", 0.0015, kind="subsample", subsample_size=3000)
    assert compare(ex, 0.383).verdict == "not comparable (subsample)"
    rng = np.random.default_rng(1)
    per_query = (rng.random(6980) < 0.383).astype(float)  # sd ~0.49, mean ~0.383
    row = compare(ex, float(per_query.mean()), per_query)
    assert row.verdict == "consistent with a subsample", row.note
    far = Expected("RR@10", 0.45, "x", 0.0015, kind="subsample", subsample_size=3000)
    assert compare(far, float(per_query.mean()), per_query).verdict.startswith("deviation (-")


def test_queries_mode_mismatch_is_noted():
    ex = Expected("RR@10", 0.3830, "Anserini", 0.001, queries_mode="cached")
    assert "ours encode" in compare(ex, 0.3831, queries_mode="encode").note


# --- plans ---------------------------------------------------------------------------------------
def test_msmarco_dry_run_prints_the_complete_plan(tmp_path, shared_data):
    out = invoke("reproduce", "msmarco-v1-passage.splade-pp-ed", "--dry-run", "--workdir", tmp_path / "w",
                 "--runs", tmp_path / "runs")
    work = tmp_path / "w" / "msmarco-v1-passage.splade-pp-ed"
    lines = [line.strip() for line in out.splitlines()]
    encode = next(line for line in lines if line.startswith("repro encode"))
    assert encode.startswith("repro encode msmarco-passage -m naver/splade-cocondenser-ensembledistil -o ")
    assert "--max-length 256" in encode and "--factor 100" in encode and str(work / "collection") in encode
    assert f"repro index {work / 'collection'} -o {work / 'index'}" in lines
    searches = [line for line in lines if line.startswith("repro search")]
    evaluations = [line for line in lines if line.startswith("repro evaluate")]
    assert len(searches) == len(evaluations) == 3
    shared = shared_data / "msmarco-passage" / "splade-encoded-queries"
    for topics, cached in (("dev-small", "topics.msmarco-passage.dev-subset.splade-pp-ed.tsv.gz"),
                           ("dl19", "topics.dl19-passage.splade-pp-ed.tsv.gz"), ("dl20", "topics.dl20.splade-pp-ed.tsv.gz")):
        run = tmp_path / "runs" / f"msmarco-v1-passage.splade-pp-ed.{topics}.trec"
        assert any(f"--encoded-queries {shared / cached} -o {run} --hits 1000" in s for s in searches)
        assert any(e.startswith(f"repro evaluate {run} --qrels ") for e in evaluations)
    assert "-m RR@10 -m R@1000" in evaluations[0]
    assert "qrels.msmarco-passage.dev-subset.txt" in evaluations[0]
    assert "-m nDCG@10 -m 'R(rel=2)@1000'" in evaluations[1]
    assert not any("--queries" in line and line.startswith("repro encode") for line in lines)  # cached queries
    assert out.count("will run (not done yet)") == 8  # encode, index, 3 x (search, evaluate)
    assert not (tmp_path / "w").exists() and not (tmp_path / "runs").exists()  # nothing executed


def test_msmarco_dry_run_with_query_encoding(tmp_path, shared_data):
    out = invoke("reproduce", "msmarco-v1-passage.splade-pp-ed", "--dry-run", "--queries", "encode",
                 "--workdir", tmp_path / "w", "--runs", tmp_path / "runs")
    encodes = [line.strip() for line in out.splitlines() if line.strip().startswith("repro encode") and "--queries" in line]
    assert len(encodes) == 3 and all("--max-length 64" in e for e in encodes)
    # the convention of the figure encoded queries are compared with: Anserini's ONNX encoder, x51.2
    assert all("--factor 51.2" in e for e in encodes)
    assert "queries dev-small=encode" in out


def test_query_factor_is_per_source_and_validated(tmp_path):
    preset = load_preset("msmarco-v1-passage.splade-pp-ed")
    assert preset.query_factor("encode") == 51.2 and preset.query_factor("cached") == 1000 and preset.factor == 100
    assert load_preset("cranfield.splade-tiny").query_factor("encode") == load_preset("cranfield.splade-tiny").factor
    text = (PACKAGE_DIR / "reproduce" / "presets" / "msmarco-v1-passage.splade-pp-ed.toml").read_text()
    for bad, says in (("{ encode = 51.2, onnx = 5 }", "one of cached, encode"), ("{ encode = -1 }", "positive number")):
        path = tmp_path / "msmarco-v1-passage.bad.toml"
        path.write_text(text.replace("{ encode = 51.2, cached = 1000 }", bad))
        from repro.errors import ReproError

        with pytest.raises(ReproError, match=says):
            load_preset(path)


def test_bm25_preset_rejects_model(tmp_path):
    result = CliRunner().invoke(cli, ["reproduce", "cacm.bm25", "--model", "x", "--dry-run"])
    assert result.exit_code == 2 and "BM25 preset" in result.output


# --- real runs on a small subset of the demo collection (fast) ---------------------------------
def _mini_presets(tmp_path: Path) -> tuple[Path, Path]:
    """Presets over 80 demo documents and their 12 first topics (same schema as the shipped ones)."""
    data = tmp_path / "data"
    data.mkdir()
    docs = (DEMO / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:80]
    (data / "corpus.jsonl").write_text("\n".join(docs) + "\n", encoding="utf-8")
    ids = {json.loads(d)["id"] for d in docs}
    topics = (DEMO / "topics.tsv").read_text(encoding="utf-8").splitlines()[:12]
    (data / "topics.tsv").write_text("\n".join(topics) + "\n", encoding="utf-8")
    qids = {t.split("\t")[0] for t in topics}
    qrels = [q for q in (DEMO / "qrels.txt").read_text().splitlines() if q.split()[0] in qids and q.split()[2] in ids]
    (data / "qrels.txt").write_text("\n".join(qrels) + "\n")
    body = f'''corpus = "{data}/corpus.jsonl"
hits = 100

[[topics]]
name = "first12"
topics = "{data}/topics.tsv"
qrels = "{data}/qrels.txt"
measures = ["nDCG@10", "RR@10", "R@100"]
queries = 12
'''
    splade = tmp_path / "mini.splade-tiny.toml"
    splade.write_text('description = "splade-tiny on a demo subset"\ncollection = "mini"\nretrieval = "splade"\n'
                      'model = "splade-tiny"\ndoc_max_length = 256\nquery_max_length = 64\n' + body)
    bm25 = tmp_path / "mini.bm25.toml"
    bm25.write_text('description = "BM25 on a demo subset"\ncollection = "mini"\nretrieval = "bm25"\n' + body)
    return splade, bm25


@pytest.mark.slow
def test_reproduce_twice_same_numbers_and_skips(tmp_path, splade_tiny):
    splade, bm25 = _mini_presets(tmp_path)
    kw = dict(workdir=tmp_path / "w", runs_dir=tmp_path / "runs", echo=lambda s: None)
    first = reproduce(load_preset(splade), model=str(splade_tiny), **kw)
    assert all(s.status.startswith("done") for s in first.steps)
    assert [s.key for s in first.steps] == ["encode", "index", "queries.first12", "search.first12", "evaluate.first12"]
    result = json.loads((tmp_path / "runs" / "mini.splade-tiny.first12.eval.json").read_text())
    assert result["counts"]["queries"] == 12 and set(result["aggregate"]) == {"nDCG@10", "RR@10", "R@100"}
    assert len(result["per_query"]["nDCG@10"]) == result["counts"]["judged_queries"]
    assert result["command"] and result["date"] and result["run_file"] == "mini.splade-tiny.first12.trec"
    run_bytes = (tmp_path / "runs" / "mini.splade-tiny.first12.trec").read_bytes()

    second = reproduce(load_preset(splade), model=str(splade_tiny), **kw)
    assert all(s.status == "skipped (up to date)" for s in second.steps)
    assert json.loads((tmp_path / "runs" / "mini.splade-tiny.first12.eval.json").read_text()) == result

    # --from-stage search: search and evaluate again, same run, same numbers
    third = reproduce(load_preset(splade), model=str(splade_tiny), from_stage="search", **kw)
    assert [s.status.split()[0] for s in third.steps] == ["skipped", "skipped", "skipped", "done", "done"]
    assert (tmp_path / "runs" / "mini.splade-tiny.first12.trec").read_bytes() == run_bytes
    again = json.loads((tmp_path / "runs" / "mini.splade-tiny.first12.eval.json").read_text())
    assert again["aggregate"] == result["aggregate"] and again["per_query"] == result["per_query"]

    b1 = reproduce(load_preset(bm25), **kw)
    assert [s.key for s in b1.steps] == ["index", "search.first12", "evaluate.first12"]
    b2 = reproduce(load_preset(bm25), **kw)
    assert all(s.status == "skipped (up to date)" for s in b2.steps)


@pytest.mark.slow
def test_changed_input_redoes_downstream(tmp_path, splade_tiny):
    splade, _ = _mini_presets(tmp_path)
    kw = dict(workdir=tmp_path / "w", runs_dir=tmp_path / "runs", echo=lambda s: None)
    reproduce(load_preset(splade), model=str(splade_tiny), **kw)
    topics = tmp_path / "data" / "topics.tsv"
    lines = topics.read_text().splitlines()
    qid, text = lines[0].split("\t")
    lines[0] = f"{qid}\t{text} planet"
    topics.write_text("\n".join(lines) + "\n")
    plan = make_plan(load_preset(splade), workdir=tmp_path / "w", runs_dir=tmp_path / "runs", model=str(splade_tiny))
    from repro.reproduce.plan import step_status

    status = {s.key: step_status(plan, s) for s in plan.steps}
    assert status["encode"] == status["index"] == "up to date"
    assert status["queries.first12"] == "will run (settings or inputs changed)"
    again = reproduce(load_preset(splade), model=str(splade_tiny), **kw)
    assert [s.status.split()[0] for s in again.steps] == ["skipped", "skipped", "done", "done", "done"]


@pytest.mark.slow
def test_deleted_output_is_redone(tmp_path, splade_tiny):
    _, bm25 = _mini_presets(tmp_path)
    kw = dict(workdir=tmp_path / "w", runs_dir=tmp_path / "runs", echo=lambda s: None)
    reproduce(load_preset(bm25), **kw)
    (tmp_path / "runs" / "mini.bm25.first12.eval.json").unlink()
    plan = reproduce(load_preset(bm25), **kw)
    assert [s.status.split()[0] for s in plan.steps] == ["skipped", "skipped", "done"]


# --- the real offline collections (slow: minutes of CPU encoding each) ------------------------
@pytest.mark.slow
@pytest.mark.parametrize("collection", ["cranfield", "cacm"])
def test_offline_reproductions_are_repeatable(collection, tmp_path, shared_data, splade_tiny):
    kw = dict(workdir=tmp_path / "w", runs_dir=tmp_path / "runs", echo=lambda s: None)
    for name in (f"{collection}.splade-tiny", f"{collection}.bm25"):
        p = load_preset(name)
        model = str(splade_tiny) if p.retrieval == "splade" else None
        reproduce(p, model=model, **kw)
        first = json.loads((tmp_path / "runs" / f"{name}.all.eval.json").read_text())
        plan = reproduce(p, model=model, **kw)
        assert all(s.status == "skipped (up to date)" for s in plan.steps)
        plan = reproduce(p, model=model, from_stage="index", **kw)  # rebuild index, search again
        second = json.loads((tmp_path / "runs" / f"{name}.all.eval.json").read_text())
        assert second["aggregate"] == first["aggregate"]
        # and the numbers are the ones the preset expects (our committed measurements)
        for ts in p.topic_sets:
            for e in ts.expected:
                assert abs(first["aggregate"][e.measure] - e.value) <= e.tolerance, (name, e.measure)


def test_evaluate_compare_option(tmp_path, shared_data):
    """`repro evaluate --compare PRESET:TOPICS` prints verdict rows (both directions are deviations)."""
    qrels = shared_data / "msmarco-passage" / "qrels.msmarco-passage.dev-subset.txt"
    qid, _, doc, _ = qrels.read_text().splitlines()[0].split()
    run = tmp_path / "r.trec"
    run.write_text(f"{qid} Q0 {doc} 1 9 t\n")
    out = invoke("evaluate", run, "--qrels", qrels, "-m", "RR@10", "-m", "R@1000",
                 "--compare", "msmarco-v1-passage.splade-pp-ed:dev-small")
    assert "vs msmarco-v1-passage.splade-pp-ed:dev-small" in out
    assert "0.3828" in out and "deviation (-0.3827)" in out
    assert "beyond subsample spread" in out or "not comparable" in out


@pytest.mark.slow
def test_dry_run_commands_pasted_into_a_shell_make_the_same_outputs(tmp_path, splade_tiny):
    """What `--dry-run` prints is exactly what `repro reproduce` runs: the printed commands, run one by
    one in a shell, give byte-identical collections, runs, queries and evaluation records."""
    import os
    import shlex
    import shutil
    import subprocess
    import sys

    work, runs = tmp_path / "w", tmp_path / "runs"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    preset_args = ["demo.splade-tiny", "--model", str(splade_tiny), "--workdir", str(work), "--runs", str(runs)]
    dry = CliRunner().invoke(cli, ["reproduce", *preset_args, "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    commands = [line.strip() for line in dry.output.splitlines() if line.startswith("  repro ")]
    assert [shlex.split(c)[1] for c in commands] == ["encode", "index", "encode", "search", "evaluate"]
    assert not work.exists() and not runs.exists()
    for command in commands:
        proc = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, (command, proc.stderr[-2000:])

    def artefacts() -> dict[str, bytes]:
        found = {}
        for root in (work, runs):
            for path in sorted(root.rglob("*")):
                if path.is_file() and "manifest" not in path.name and "/stages/" not in str(path) \
                        and "/index/" not in str(path) and "/state/" not in str(path):
                    found[str(path.relative_to(tmp_path))] = path.read_bytes()
        return found

    pasted = artefacts()
    assert any(k.endswith(".trec") for k in pasted) and any(k.endswith(".eval.json") for k in pasted)
    assert any("/shards/" in k for k in pasted) and any(k.endswith("queries/all.tsv") for k in pasted)
    shutil.rmtree(work)
    shutil.rmtree(runs)
    real = CliRunner().invoke(cli, ["reproduce", *preset_args], catch_exceptions=False)
    assert real.exit_code == 0, real.output
    assert artefacts() == pasted
