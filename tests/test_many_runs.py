"""Statistics over many runs: `repro evaluate A B C --baseline A --significance`, corrections,
wins/ties/losses, short run labels and a table that fits 100 columns."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from repro.cli import cli
from repro.evaluate import significance as stats
from repro.evaluate.evaluation import run_labels

QRELS = "".join(f"{q} 0 d{q} 1\n{q} 0 e{q} 1\n" for q in range(1, 9))


def run_text(hit_queries: set[int]) -> str:
    """A run that ranks the relevant document first for the given queries, last otherwise."""
    lines = []
    for q in range(1, 9):
        docs = [f"d{q}", "x", "y"] if q in hit_queries else ["x", "y", f"d{q}"]
        lines += [f"{q} Q0 {d} {r} {10 - r} t" for r, d in enumerate(docs, 1)]
    return "\n".join(lines) + "\n"


def test_holm_and_bonferroni_by_hand():
    p = [0.01, 0.04, 0.03, float("nan")]
    assert stats.adjust(p, "bonferroni")[:3] == pytest.approx([0.03, 0.12, 0.09])
    # Holm: sorted 0.01*3, 0.03*2, 0.04*1 -> 0.03, 0.06, max(0.06, 0.04) = 0.06
    assert stats.adjust(p, "holm")[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(stats.adjust(p, "holm")[3])
    assert stats.adjust([0.6, 0.7], "holm") == pytest.approx([1.0, 1.0])
    assert stats.adjust(p, "none")[:3] == p[:3]
    with pytest.raises(ValueError):
        stats.adjust(p, "sidak")


def test_wins_ties_losses():
    assert stats.wins_ties_losses([0.5, 0.5, 0.2, 0.0], [0.7, 0.5, 0.1, 0.0]) == (1, 2, 1)


def test_labels_are_stems_unless_they_clash():
    assert run_labels(["runs/a.trec", "runs/b.trec.gz", "c.txt"]) == ["a", "b", "c"]
    assert run_labels(["x/one/a.trec", "y/one/a.trec", "b.trec"]) == ["x/one/a", "y/one/a", "b"]
    assert run_labels(["x/a.trec", "y/a.trec"]) == ["x/a", "y/a"]


def test_many_runs_against_a_chosen_baseline(tmp_path):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text(QRELS)
    runs = {}
    for name, hits in {"bm25": {1, 2, 3}, "splade": {1, 2, 3, 4, 5, 6}, "tuned": {1, 2, 3, 4, 5, 6, 7, 8},
                       "worse": {1}}.items():
        runs[name] = tmp_path / "some" / "long" / "folder" / f"{name}.trec"
        runs[name].parent.mkdir(parents=True, exist_ok=True)
        runs[name].write_text(run_text(hits))
    args = ["evaluate", *map(str, runs.values()), "--qrels", str(qrels), "-m", "RR", "-m", "P@1",
            "--significance", "--baseline", "bm25", "--permutations", "2000"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert str(tmp_path) not in out  # labels, not paths
    assert max(len(line) for line in out.splitlines()) <= 100
    sig = out.split("significance:")[1]
    lines = [line for line in sig.splitlines() if line.startswith(("splade", "tuned", "worse"))]
    assert [line.split()[0] for line in lines] == ["splade", "tuned", "worse"]
    tuned = next(line for line in sig.splitlines() if line.startswith("tuned")).split()
    assert tuned[1] == "RR" and tuned[-1] == "5/3/0"  # wins over bm25 on queries 4..8
    data = json.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).stdout)
    rows = {(r["run"].rsplit("/", 1)[-1], r["measure"]): r for r in data["significance"]}
    assert set(rows) == {(f"{n}.trec", m) for n in ("splade", "tuned", "worse") for m in ("P@1", "RR")}
    family = [rows[f"{n}.trec", m] for n in ("splade", "tuned", "worse") for m in ("RR", "P@1")]
    assert [r["p_ttest_adj"] for r in family] == pytest.approx(stats.adjust([r["p_ttest"] for r in family], "holm"))
    assert all(r["baseline"].endswith("bm25.trec") and r["correction"] == "holm" for r in family)
    bonf = json.loads(CliRunner().invoke(cli, [*args, "--format", "json", "--correction", "bonferroni"]).stdout)
    b = {(r["run"].rsplit("/", 1)[-1], r["measure"]): r for r in bonf["significance"]}
    assert b["splade.trec", "RR"]["p_ttest_adj"] == pytest.approx(min(1, 6 * rows["splade.trec", "RR"]["p_ttest"]))
    bad = CliRunner().invoke(cli, [*args, "--baseline", "nope"])
    assert bad.exit_code != 0 and "--baseline 'nope' is not one of the runs given (bm25, splade, tuned, worse)" in bad.output
