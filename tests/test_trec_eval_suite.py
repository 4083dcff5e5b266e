"""NIST trec_eval's own test suite, replayed through `repro evaluate` (CLI, JSON, per query).

Each expected output (out.test*) was produced by trec_eval on the files beside it; we map its
measure names to ir_measures measures and require the same values to the printed 4 decimals,
per query and for the 'all' row. Also: the tie rule, where ir_measures' default RR provider and
trec_eval legitimately differ, and `--provider pytrec_eval` matches trec_eval.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli

# trec_eval name -> ir_measures measure; "{rel}" becomes "(rel=2)" under trec_eval -l2
TREC_TO_IR_MEASURES = {
    "map": "AP{rel}",
    "recip_rank": "RR{rel}",
    "ndcg": "nDCG",
    **{f"P_{k}": f"P{{rel}}@{k}" for k in (5, 10, 15, 20, 30, 100, 200, 500, 1000)},
    **{f"recall_{k}": f"R{{rel}}@{k}" for k in (5, 10, 15, 20, 30, 100, 200, 500, 1000)},
    **{f"ndcg_cut_{k}": f"nDCG@{k}" for k in (5, 10, 15, 20, 30, 100, 200, 500, 1000)},
}

CASES = {
    # expected file: (run file, qrels file, relevance level, per query)
    "out.test": ("results.test", "qrels.test", 1, False),
    "out.test.aq": ("results.test", "qrels.test", 1, True),
    "out.test.aqc": ("results.trunc", "qrels.test", 1, True),  # -c: missing queries count as 0
    "out.test.aql": ("results.test", "qrels.rel_level", 2, True),  # -l2, graded qrels with -1
}


def read_expected(path: Path) -> dict[tuple[str, str], str]:
    """{(trec_eval measure, qid or 'all'): printed value} for the measures we map."""
    expected = {}
    for line in path.read_text().splitlines():
        name, qid, value = line.split()
        if name in TREC_TO_IR_MEASURES:
            expected[name, qid] = value
    return expected


def six_columns(src: Path, dest: Path) -> Path:
    """results.trunc has trailing junk after the tag, which trec_eval skips and we reject."""
    dest.write_text("".join(" ".join(line.split()[:6]) + "\n" for line in src.read_text().splitlines()))
    return dest


def run_cli(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["evaluate", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("provider", ["auto", "pytrec_eval"])
@pytest.mark.parametrize("expected_name", list(CASES))
def test_matches_trec_eval_expected_output(shared_data, tmp_path, expected_name, provider):
    folder = shared_data / "trec_eval-tests"
    run_name, qrels_name, rel, per_query = CASES[expected_name]
    expected = read_expected(folder / expected_name)
    assert expected, f"no mapped measure in {expected_name}"
    run = folder / run_name
    if run_name == "results.trunc":
        run = six_columns(run, tmp_path / "results.trunc")
    names = sorted({name for name, _ in expected})
    measure_of = {name: TREC_TO_IR_MEASURES[name].format(rel="" if rel == 1 else f"(rel={rel})") for name in names}

    args = [str(run), "--qrels", str(folder / qrels_name), "--provider", provider]
    for measure in measure_of.values():
        args += ["-m", measure]
    out = run_cli(*args, *(["--per-query"] if per_query else []))
    (result,) = out["runs"].values()

    checked = 0
    for (name, qid), value in expected.items():
        measure = measure_of[name]
        got = result["aggregate"][measure] if qid == "all" else result["per_query"][qid][measure]
        assert f"{got:.4f}" == value, f"{name} ({measure}) for {qid}: {got:.4f} != trec_eval {value}"
        checked += 1
    assert checked >= len(names) * (4 if per_query else 1)
    assert out["num_queries"] == 3


def test_trunc_run_reports_missing_query(shared_data, tmp_path):
    folder = shared_data / "trec_eval-tests"
    run = six_columns(folder / "results.trunc", tmp_path / "results.trunc")
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--qrels", str(folder / "qrels.test"), "-m", "AP"])
    assert result.exit_code == 0, result.output
    assert "1 of 3 qrels queries are not in the run; they count as 0" in result.stderr


def test_trailing_junk_is_rejected_not_skipped(shared_data):
    folder = shared_data / "trec_eval-tests"
    result = CliRunner().invoke(cli, ["evaluate", str(folder / "results.trunc"), "--qrels", str(folder / "qrels.test")])
    assert result.exit_code == 2
    assert re.search(r"results\.trunc:1: expected 6 whitespace-separated columns .* found 9", result.output)


# --- ties: ir_measures' msmarco provider (auto for RR@k) vs trec_eval --------------------------

TIED_QRELS = "q1 0 d1 0\nq1 0 d2 1\nq1 0 d3 0\nq2 0 e5 1\n"
# q1: d2, d3, d4 tie at 1.0 behind d1; q2: e1, e5, e9 all tie. The relevant d2 is the LOWEST
# docid of its tie group: trec_eval (ties by descending docid) ranks it 4th, msmarco
# (ascending docid) 2nd.
TIED_RUN = (
    "q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\nq1 Q0 d3 3 1.0 t\nq1 Q0 d4 4 1.0 t\n"
    "q2 Q0 e1 1 5 t\nq2 Q0 e5 2 5 t\nq2 Q0 e9 3 5 t\n"
)
# Printed by the trec_eval binary in Anserini's jar: `trec_eval -q -m recip_rank` and with `-M 2`.
TREC_EVAL_RR = {"q1": 0.25, "q2": 0.5, "all": 0.375}
TREC_EVAL_RR_M2 = {"q1": 0.0, "q2": 0.5, "all": 0.25}


def _tied(tmp_path: Path, provider: str) -> dict:
    (tmp_path / "qrels").write_text(TIED_QRELS)
    (tmp_path / "run").write_text(TIED_RUN)
    out = run_cli(str(tmp_path / "run"), "--qrels", str(tmp_path / "qrels"), "-m", "RR RR@2 RR@10", "--per-query", "--provider", provider)
    (result,) = out["runs"].values()
    values = {q: v for q, v in result["per_query"].items()}
    values["all"] = result["aggregate"]
    return values


def test_ties_default_provider_differs_from_trec_eval(tmp_path):
    values = _tied(tmp_path, "auto")
    # RR (no cutoff) goes to pytrec_eval = trec_eval; RR@k goes to the msmarco provider
    assert {q: v["RR"] for q, v in values.items()} == pytest.approx(TREC_EVAL_RR)
    assert values["q1"]["RR@10"] == pytest.approx(0.5)  # != trec_eval's 0.25: other tie order
    assert values["q1"]["RR@2"] == pytest.approx(0.5)  # != trec_eval -M 2's 0.0


def test_ties_pytrec_eval_provider_matches_trec_eval(tmp_path):
    values = _tied(tmp_path, "pytrec_eval")
    assert {q: v["RR"] for q, v in values.items()} == pytest.approx(TREC_EVAL_RR)
    assert {q: v["RR@10"] for q, v in values.items()} == pytest.approx(TREC_EVAL_RR)
    assert {q: v["RR@2"] for q, v in values.items()} == pytest.approx(TREC_EVAL_RR_M2)
