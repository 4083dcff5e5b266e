"""`repro reproduce PRESET`: run a preset's stages (encode -> index -> queries -> search -> evaluate).

Each stage is a `Step` with its settings, its inputs and its outputs. After a step finishes, a
record (`WORKDIR/<preset>/stages/<step>.json`) stores a digest of its settings plus the
fingerprints of its inputs (SHA-256 of files; of the manifest for repro folders; the files of a
model folder), and the fingerprints of its outputs. A step is skipped when its record matches
what it would do now and its outputs are unchanged; a changed input (say, a re-encoded
collection) changes the fingerprints the next step sees, so everything downstream is redone.
`--from-stage S` redoes S and every later stage; `--force` redoes all of them. `--dry-run` prints
each step as the equivalent `repro ...` command, with whether it would run, and runs nothing.

Results: `RUNS/<preset>.<topics>.trec` (with its manifest) and `RUNS/<preset>.<topics>.eval.json`
(aggregate and per-query values, date, git commit, command, versions), which `repro report` reads.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from repro.encode import model_cache as modelcache
from repro.outputs import write_text
from repro.errors import ReproError
from repro.manifest import DIR_MANIFEST, config_digest, git_commit, sha256_file, versions
from repro.reproduce.preset import STAGES, Preset, TopicSet, available, choose, load_preset

RECORDS = "stages"
EVAL_SUFFIX = ".eval.json"


@dataclass
class Step:
    """One unit of work: what it needs, what it makes, how to make it, and the CLI that does the same."""

    key: str
    stage: str
    argv: list[str]
    config: dict[str, Any]
    inputs: list[str]
    outputs: list[Path]
    action: Callable[[bool], Any]
    needs_model: bool = False
    status: str = ""

    @property
    def command(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv)


@dataclass
class Plan:
    preset: Preset
    workdir: Path
    runs_dir: Path
    model: str | None  # what the encoder loads (a folder or hub ID)
    model_label: str | None  # what the preset or --model said
    queries_mode: dict[str, str]  # topic set -> cached | encode (splade only)
    steps: list[Step] = field(default_factory=list)

    def run_file(self, ts: TopicSet) -> Path:
        return run_file(self.runs_dir, self.preset.name, ts.name)

    def eval_file(self, ts: TopicSet) -> Path:
        return eval_file(self.runs_dir, self.preset.name, ts.name)


def run_file(runs_dir: Path, preset: str, topics: str) -> Path:
    return Path(runs_dir) / f"{preset}.{topics}.trec"


def eval_file(runs_dir: Path, preset: str, topics: str) -> Path:
    return Path(runs_dir) / f"{preset}.{topics}{EVAL_SUFFIX}"


# --- fingerprints and records -------------------------------------------------------------------
_HASHES: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


def fingerprint(item: str | Path) -> str:
    """What identifies an input or output's content: a checksum, or the ID itself for remote data."""
    path = Path(item)
    if path.is_file():
        return "sha256:" + _file_hash(path)
    if path.is_dir():
        if (path / DIR_MANIFEST).is_file():
            return "manifest:" + _file_hash(path / DIR_MANIFEST)
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt", ".model"))
        return "files:" + config_digest({p.name: _file_hash(p) for p in files})
    if str(item).startswith(("/", ".", "~")) or Path(str(item)).suffix:
        return "missing"
    return "id:" + str(item)  # ir_datasets or hub ID: identified by name


def _record_path(plan: Plan, step: Step) -> Path:
    return plan.workdir / RECORDS / f"{step.key}.json"


def _digest(step: Step) -> str:
    return config_digest({"config": step.config, "inputs": {i: fingerprint(i) for i in step.inputs}})


def step_status(plan: Plan, step: Step) -> str:
    """'up to date', or why the step must run."""
    record = _record_path(plan, step)
    if not record.is_file():
        return "will run (not done yet)"
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return "will run (unreadable record)"
    if data.get("digest") != _digest(step):
        return "will run (settings or inputs changed)"
    for out in step.outputs:
        if data.get("outputs", {}).get(str(out)) != fingerprint(out) or fingerprint(out) == "missing":
            return "will run (output missing or changed)"
    return "up to date"


def _write_record(plan: Plan, step: Step) -> None:
    data = {
        "step": step.key,
        "command": step.command,
        "digest": _digest(step),
        "inputs": {i: fingerprint(i) for i in step.inputs},
        "outputs": {str(o): fingerprint(o) for o in step.outputs},
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text(_record_path(plan, step), json.dumps(data, indent=2, sort_keys=True) + "\n")


# --- planning -----------------------------------------------------------------------------------
def make_plan(preset: Preset | str, *, workdir: Path | str = "work", runs_dir: Path | str = "runs",
              queries: str | None = None, model: str | None = None, command: str | None = None,
              quiet: bool = False) -> Plan:
    """Every step of a reproduction, in order, with its equivalent CLI command."""
    if not isinstance(preset, Preset):
        preset = load_preset(preset)
    if queries not in (None, "cached", "encode"):
        raise ReproError("--queries must be cached or encode")
    if preset.retrieval == "bm25" and (model or queries):
        raise ReproError(f"{preset.name} is a BM25 preset: --model and --queries do not apply")
    work = Path(workdir).resolve() / preset.name
    runs = Path(runs_dir)
    label = model or preset.model
    if model:
        encoder_model = str(Path(model).resolve()) if Path(model).exists() else model
    elif preset.model and modelcache.is_splade_tiny(preset.model):
        encoder_model = str(modelcache.cache_dir())
    else:
        encoder_model = preset.model
    modes: dict[str, str] = {}
    for ts in preset.topic_sets:
        if preset.retrieval == "splade":
            cached = available(ts.encoded_queries) if ts.encoded_queries else None
            if queries == "cached" and not cached:
                raise ReproError(
                    f"--queries cached: topic set {ts.name} has no cached query file here"
                    + (f" (looked for {ts.encoded_queries[0]})" if ts.encoded_queries else " (the preset lists none)"))
            modes[ts.name] = "encode" if queries == "encode" or not cached else "cached"
    plan = Plan(preset, work, runs, encoder_model, label, modes)
    command = command or "repro reproduce " + preset.name
    if preset.retrieval == "splade":
        _splade_steps(plan, command)
    else:
        _bm25_steps(plan, command)
    return plan


def _splade_steps(plan: Plan, command: str) -> None:
    p, work, model = plan.preset, plan.workdir, plan.model
    corpus = choose(p.corpus, "corpus")
    coll, index = work / "collection", work / "index"
    factor = float(p.factor)
    argv = ["repro", "encode", corpus, "-m", model, "-o", str(coll), "--factor", _num(factor),
            "--batch-size", str(p.batch_size), "-q"]
    if p.doc_max_length:
        argv[7:7] = ["--max-length", str(p.doc_max_length)]
    if p.corpus_format != "auto":
        argv += ["--format", p.corpus_format]

    def encode(force: bool) -> Any:
        from repro.encode.documents import encode_corpus

        return encode_corpus(corpus, coll, model=_model_path(plan), fmt=p.corpus_format, factor=factor,
                             max_length=p.doc_max_length, batch_size=p.batch_size, force=force, progress=False)

    plan.steps.append(Step("encode", "encode", argv, {"factor": factor, "max_length": p.doc_max_length,
                                                      "batch_size": p.batch_size, "format": p.corpus_format,
                                                      "model": model},
                           [corpus, model], [coll], encode, needs_model=True))

    def build(force: bool) -> Any:
        from repro.index.build import build_impact_index

        return build_impact_index(coll, index, force=True)

    plan.steps.append(Step("index", "index", ["repro", "index", str(coll), "-o", str(index)], {"kind": "impact"},
                           [str(coll)], [index], build))
    for ts in p.topic_sets:
        topics = choose(ts.topics, f"topics of {ts.name}")
        if plan.queries_mode[ts.name] == "cached":
            qfile = choose(ts.encoded_queries, f"cached queries of {ts.name}")
        else:
            qfile = str(work / "queries" / f"{ts.name}.tsv")
            qargv = ["repro", "encode", topics, "--queries", "-m", model, "-o", qfile,
                     "--max-length", str(p.query_max_length), "--factor", _num(factor), "--force"]
            if ts.topic_format != "auto":
                qargv += ["--format", ts.topic_format]

            def encode_queries(force: bool, topics=topics, qfile=qfile, ts=ts) -> Any:
                from repro.encode.queries import encode_topics

                return encode_topics(topics, Path(qfile), model=_model_path(plan), fmt=ts.topic_format, factor=factor,
                                     max_length=p.query_max_length, batch_size=p.batch_size, force=True)

            plan.steps.append(Step(f"queries.{ts.name}", "queries", qargv,
                                   {"max_length": p.query_max_length, "factor": factor, "model": model,
                                    "format": ts.topic_format}, [topics, model], [Path(qfile)], encode_queries,
                                   needs_model=True))
        _search_and_evaluate(plan, ts, index, ["--encoded-queries", qfile], {"encoded_queries": qfile}, command)


def _bm25_steps(plan: Plan, command: str) -> None:
    p, work = plan.preset, plan.workdir
    corpus = choose(p.corpus, "corpus")
    index = work / "index"

    def build(force: bool) -> Any:
        from repro.index.build import build_bm25_index

        return build_bm25_index(corpus, index, force=True)

    plan.steps.append(Step("index", "index", ["repro", "index", corpus, "--bm25", "-o", str(index)], {"kind": "bm25"},
                           [corpus], [index], build))
    for ts in p.topic_sets:
        topics = choose(ts.topics, f"topics of {ts.name}")
        extra = ["-t", topics] + (["--topic-format", ts.topic_format] if ts.topic_format != "auto" else [])
        _search_and_evaluate(plan, ts, index, extra, {"topics": topics, "topic_format": ts.topic_format}, command)


def _search_and_evaluate(plan: Plan, ts: TopicSet, index: Path, query_args: list[str], query_kw: dict,
                         command: str) -> None:
    p = plan.preset
    run = plan.run_file(ts)
    tag = f"repro-{p.name}"

    def search(force: bool) -> Any:
        from repro.search.run import run_search

        return run_search(index, run, hits=p.hits, tag=tag, force=True, **query_kw)

    query_inputs = [query_kw.get("encoded_queries") or query_kw["topics"]]
    plan.steps.append(Step(f"search.{ts.name}", "search",
                           ["repro", "search", str(index), *query_args, "-o", str(run), "--hits", str(p.hits),
                            "--tag", tag, "--force"],
                           {"hits": p.hits, "tag": tag, **{k: v for k, v in query_kw.items() if k == "topic_format"}},
                           [str(index), *query_inputs], [run], search))
    qrels_source = choose(ts.qrels, f"qrels of {ts.name}")
    if ts.qrels_format == "cranfield":
        qrels = str(plan.workdir / "qrels" / f"{ts.name}.qrels")

        def convert(force: bool, src=qrels_source, dst=qrels) -> Any:
            from repro.formats.cranfield import convert_cranfield_qrels

            return convert_cranfield_qrels(src, dst)

        plan.steps.append(Step(f"qrels.{ts.name}", "evaluate",
                               ["repro", "convert-qrels", "cranfield", qrels_source, "-o", qrels],
                               {"format": "cranfield"}, [qrels_source], [Path(qrels)], convert))
    else:
        qrels = qrels_source
    out = plan.eval_file(ts)
    argv = ["repro", "evaluate", str(run), "--qrels", qrels, *[a for m in ts.measures for a in ("-m", m)],
            "--per-query", "--format", "json"]
    topics_source = choose(ts.topics, f"topics of {ts.name}")

    def evaluate(force: bool) -> Any:
        return write_evaluation(plan, ts, run, qrels, topics_source, out, command)

    plan.steps.append(Step(f"evaluate.{ts.name}", "evaluate", argv, {"measures": list(ts.measures),
                                                                     "queries": ts.queries, "qrels_lines": ts.qrels_lines,
                                                                     "judged_queries": ts.judged_queries},
                           [str(run), qrels, topics_source], [out], evaluate))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _model_path(plan: Plan) -> str:
    """The model to load; splade-tiny is fetched into the cache here, only when a step needs it."""
    if plan.model_label and modelcache.is_splade_tiny(plan.model_label) and plan.model == str(modelcache.cache_dir()):
        return str(modelcache.ensure_splade_tiny())
    return plan.model


# --- evaluation ---------------------------------------------------------------------------------
def check_counts(ts: TopicSet, topics_source: str, qrels_path: str) -> dict[str, int]:
    """Topic and qrels counts, checked against what the preset states (a mismatch means other data)."""
    from repro.formats.qrels import read_qrels
    from repro.formats.topics import read_topics

    topics = read_topics(topics_source, ts.topic_format)
    qrels = read_qrels(qrels_path)
    facts = {"queries": len(topics), "judged_queries": len(qrels.by_query), "qrels_lines": len(qrels)}
    for key, found in facts.items():
        want = getattr(ts, key)
        if want is not None and want != found:
            raise ReproError(f"topic set {ts.name}: the preset says {want} {key.replace('_', ' ')}, the data has {found}; "
                             "different data than the published numbers used?", qrels_path if "qrels" in key else topics_source)
    return facts


def write_evaluation(plan: Plan, ts: TopicSet, run: Path, qrels: str, topics_source: str, out: Path,
                     command: str) -> dict[str, Any]:
    """Evaluate a run with repro.evaluate.evaluation and save aggregate + per-query values with provenance."""
    from repro.evaluate.evaluation import evaluate

    counts = check_counts(ts, topics_source, qrels)
    result = evaluate([run], qrels, list(ts.measures))
    ev = result.runs[0]
    data = {
        "preset": plan.preset.name,
        "topics": ts.name,
        "collection": plan.preset.collection,
        "retrieval": plan.preset.retrieval,
        "model": plan.model_label,
        "queries_mode": plan.queries_mode.get(ts.name),
        "run_file": run.name,
        "run_sha256": sha256_file(run),
        "qrels": _portable(qrels),
        "measures": list(ts.measures),
        "aggregate": {m: ev.aggregate[m] for m in ts.measures},
        "providers": result.providers,
        "evaluated_queries": ev.evaluated_queries,
        "missing_queries": ev.missing_queries,
        "warnings": [w.replace(str(run), run.name) for w in ev.warnings],
        "counts": counts,
        "per_query": {m: {q: float(v) for q, v in zip(result.query_ids, ev.per_query[m].tolist())} for m in ts.measures},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "git_commit": git_commit(),
        "command": command,
        "versions": versions(),
    }
    write_text(out, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def _portable(path: str) -> str:
    """A path as it reads on any machine: shared data and package files by their variable."""
    from repro.reproduce.preset import PACKAGE_DIR, shared_root

    for root, name in ((shared_root(), "${shared}"), (PACKAGE_DIR, "${package}")):
        try:
            return name + "/" + str(Path(path).resolve().relative_to(Path(root).resolve()))
        except ValueError:
            continue
    return Path(path).name if Path(path).exists() else path


def read_evaluation(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ReproError(f"cannot read evaluation results ({err})", path) from None


# --- running ------------------------------------------------------------------------------------
def reproduce(preset: Preset | str, *, workdir: Path | str = "work", runs_dir: Path | str = "runs",
              dry_run: bool = False, from_stage: str | None = None, force: bool = False, queries: str | None = None,
              model: str | None = None, command: str | None = None, echo: Callable[[str], None] = print) -> Plan:
    """Run (or, with dry_run, print) every step of a preset; return the plan with each step's status."""
    if from_stage is not None and from_stage not in STAGES:
        raise ReproError(f"--from-stage must be one of {', '.join(STAGES)}")
    plan = make_plan(preset, workdir=workdir, runs_dir=runs_dir, queries=queries, model=model, command=command)
    p = plan.preset
    redo_from = 0 if force else (STAGES.index(from_stage) if from_stage else len(STAGES))
    echo(f"# {p.name}: {p.description}")
    echo(f"# workdir {plan.workdir}  runs {plan.runs_dir}"
         + (f"  model {plan.model_label}" if plan.model_label else "")
         + (f"  queries {', '.join(f'{k}={v}' for k, v in plan.queries_mode.items())}" if plan.queries_mode else ""))
    if dry_run:
        echo("# dry run: nothing is executed; each step as the equivalent command")
    upstream_changed = False
    for step in plan.steps:
        forced = STAGES.index(step.stage) >= redo_from
        if dry_run:
            status = step_status(plan, step)
            if forced:
                status = "will run (forced)"
            elif upstream_changed and status == "up to date":
                status = "will run (after an earlier step)"
            upstream_changed = upstream_changed or status != "up to date"
            step.status = status
            echo(f"[{step.key}] {status}")
            echo(f"  {step.command}" + (f"  > {plan.eval_file(plan.preset.topic_set(step.key.split('.', 1)[1]))}"
                                          if step.key.startswith("evaluate.") else ""))
            continue
        status = "will run (forced)" if forced else step_status(plan, step)
        if status == "up to date":
            step.status = "skipped (up to date)"
            echo(f"[{step.key}] skipped: up to date")
            continue
        echo(f"[{step.key}] {status.removeprefix('will run ')}: {step.command}")
        started = time.perf_counter()
        # Encoding resumes a killed run of the same settings; redo from scratch only when asked
        # or when its inputs changed under the same output folder.
        step_force = forced or status == "will run (settings or inputs changed)"
        step.action(step_force)
        _write_record(plan, step)
        step.status = f"done in {time.perf_counter() - started:.1f}s"
        echo(f"[{step.key}] {step.status}")
    return plan


def results(plan: Plan) -> dict[str, dict[str, Any]]:
    """The saved evaluation of each topic set that has one."""
    found = {}
    for ts in plan.preset.topic_sets:
        path = plan.eval_file(ts)
        if path.is_file():
            found[ts.name] = read_evaluation(path)
    return found


def summary(plan: Plan) -> str:
    """Verdict tables for every topic set that has results."""
    from repro.reproduce.verdict import compare_all, format_rows

    parts = []
    for ts in plan.preset.topic_sets:
        path = plan.eval_file(ts)
        if not path.is_file():
            continue
        data = read_evaluation(path)
        values = "  ".join(f"{m} {data['aggregate'][m]:.4f}" for m in data["measures"])
        parts.append(f"{plan.preset.name} {ts.name}: {values}  ({path})")
        if ts.expected:
            per_query = {m: list(v.values()) for m, v in data.get("per_query", {}).items()}
            parts.append(format_rows(compare_all(ts.expected, data["aggregate"], per_query, data.get("queries_mode"))))
    return "\n".join(parts)


def cli_command(argv: list[str] | None = None) -> str:
    """The command line as typed (for the provenance of results)."""
    args = sys.argv[1:] if argv is None else argv
    return "repro " + " ".join(shlex.quote(a) for a in args)
