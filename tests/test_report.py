"""`repro report`: docs/reproductions.md is generated, deterministic, and current."""

from __future__ import annotations

import json
from pathlib import Path

from repro.reproduce.report import BANNER, NOT_RUN, figure_ndcg_differences, render

ROOT = Path(__file__).resolve().parent.parent


def test_reproductions_page_is_current():
    """Regenerate in memory from the presets and runs/*.eval.json; it must equal the committed page."""
    committed = (ROOT / "docs" / "reproductions.md").read_text(encoding="utf-8")
    assert render(runs_dir=ROOT / "runs", figures_dir=ROOT / "docs") == committed, \
        "docs/reproductions.md is stale: run `repro report`"


def test_page_without_results(tmp_path):
    text = render(runs_dir=tmp_path)
    assert text.startswith(BANNER)
    assert text == render(runs_dir=tmp_path)  # deterministic
    assert "## msmarco-v1-passage" in text and "## cranfield" in text and "## demo" in text
    assert NOT_RUN in text
    assert "| `RR@10` | 0.3828 ± 0.001 | published |" in text
    assert "not run here yet: `repro reproduce cranfield.splade-tiny`" in text


def _fake_eval(path: Path, preset: str, collection: str, values: dict[str, list[float]]) -> None:
    per_query = {m: {str(i): v for i, v in enumerate(vals)} for m, vals in values.items()}
    data = {"preset": preset, "topics": "all", "collection": collection, "retrieval": "splade", "model": "m",
            "queries_mode": "encode", "run_file": f"{preset}.all.trec", "measures": list(values),
            "aggregate": {m: sum(v) / len(v) for m, v in values.items()}, "per_query": per_query,
            "counts": {"queries": 3, "judged_queries": 3, "qrels_lines": 9}, "date": "2026-11-29",
            "git_commit": "abc", "command": f"repro reproduce {preset}"}
    path.write_text(json.dumps(data))


def test_page_with_results_and_figure(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    _fake_eval(runs / "msmarco-v1-passage.splade-pp-ed.dev-small.eval.json", "msmarco-v1-passage.splade-pp-ed",
               "msmarco-v1-passage", {"RR@10": [0.39, 0.38, 0.379], "R@1000": [1.0, 1.0, 0.9493]})
    text = render(runs_dir=runs)
    section = text[text.index("### `msmarco-v1-passage.splade-pp-ed`"):]
    assert "| `RR@10` | 0.3830 ± 0.001 | published |" in section
    assert "| 0.3830 | +0.0000 | reproduced |" in section
    assert "| 0.3830 | +0.0030 | deviation (+0.0030) |" in section  # 0.380 published: higher is a deviation
    assert "not comparable (subsample)" in section  # 3 queries cannot show a 3000-query spread
    assert "`repro reproduce msmarco-v1-passage.splade-pp-ed`" in section
    a, b = runs / "a.eval.json", runs / "b.eval.json"
    _fake_eval(a, "x.splade-tiny", "x", {"nDCG@10": [0.5, 0.2, 0.9]})
    _fake_eval(b, "x.bm25", "x", {"nDCG@10": [0.4, 0.3, 0.9]})
    png = tmp_path / "fig.png"
    facts = figure_ndcg_differences(a, b, png)
    assert facts == {"queries": 3, "better": 1, "worse": 1, "mean": 0.0} or abs(facts["mean"]) < 1e-12
    first = png.read_bytes()
    figure_ndcg_differences(a, b, png)
    assert png.read_bytes() == first and first.startswith(b"\x89PNG")
