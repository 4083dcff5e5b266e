"""`repro reproduce PRESET`: run a preset's stages (encode -> index -> queries -> search -> evaluate).

Each step is ONE record: the `repro` command line that does it (``argv``), the settings that
decide whether it must run again, its inputs and its outputs. Running a step runs exactly that
command line in this process (`repro.cli`), so what `--dry-run` prints is what runs: pasted into a
shell, the printed commands make byte-identical outputs (tests/test_reproduce.py checks it).

After a step finishes, a record (`WORKDIR/<preset>/stages/<step>.json`) stores a digest of its
settings plus the fingerprints of its inputs (SHA-256 of files; of the manifest for repro folders;
the files of a model folder), and the fingerprints of its outputs. A step is skipped when its record
matches what it would do now and its outputs are unchanged; a changed input (say, a re-encoded
collection) changes the fingerprints the next step sees, so everything downstream is redone.
`--from-stage S` redoes S and every later stage; `--force` redoes all of them.

Results: `RUNS/<preset>.<topics>.trec` (with its manifest) and `RUNS/<preset>.<topics>.eval.json`
(aggregate and per-query values, date, git commit, command, versions), which `repro report` reads.
"""

from __future__ import annotations

import enum
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from repro import paths
from repro.encode import model as model_io
from repro.encode import model_cache
from repro.errors import ReproError
from repro.manifest import DIR_MANIFEST, cached_sha256, config_digest, git_commit, sha256_file, versions
from repro.outputs import write_text
from repro.reproduce.preset import STAGES, Preset, TopicSet, available, choose, load_preset

RECORDS = "stages"
EVAL_SUFFIX = ".eval.json"


class StepStatus(str, enum.Enum):
    """Where a step stands; the value is how it is shown."""

    UP_TO_DATE = "up to date"
    NOT_DONE = "will run (not done yet)"
    UNREADABLE = "will run (unreadable record)"
    CHANGED = "will run (settings or inputs changed)"
    OUTPUT_CHANGED = "will run (output missing or changed)"
    FORCED = "will run (forced)"
    AFTER_EARLIER = "will run (after an earlier step)"
    SKIPPED = "skipped (up to date)"
    DONE = "done"

    def __str__(self) -> str:
        return self.value

    @property
    def will_run(self) -> bool:
        return self.value.startswith("will run")


@dataclass
class Step:
    """One unit of work: the command that does it, what decides a redo, what it needs and makes."""

    key: str
    stage: str
    argv: list[str]  # the `repro ...` command line, without --force
    config: dict[str, Any]
    inputs: list[str]
    outputs: list[Path]
    prepare: Callable[[], None] | None = None  # e.g. fetch splade-tiny into the cache; not part of the command
    status: StepStatus | None = None
    seconds: float | None = None

    def command_argv(self, status: StepStatus) -> list[str]:
        """The exact command line run for ``status``: with --force when it must replace its own output."""
        redo = status in (StepStatus.FORCED, StepStatus.CHANGED) or (
            status.will_run and any(Path(o).exists() for o in self.outputs) and self.stage != "encode")
        return self.argv + (["--force"] if redo else [])

    def command(self, status: StepStatus | None = None) -> str:
        return shlex.join(self.command_argv(status or self.status or StepStatus.NOT_DONE))


@dataclass
class Plan:
    preset: Preset
    workdir: Path
    runs_dir: Path
    model: str | None  # what the encoder loads (a folder or hub ID)
    model_label: str | None  # what the preset or --model said
    queries_mode: dict[str, str]  # topic set -> cached | encode (splade only)
    steps: list[Step] = field(default_factory=list)
    source: str | None = None  # --source: a local BEIR folder replacing the preset's corpus, topics and qrels

    def corpus(self) -> str:
        return self.source or choose(self.preset.corpus, "corpus")

    def topics(self, ts: TopicSet) -> str:
        return self.source or choose(ts.topics, f"topics of {ts.name}")

    def qrels(self, ts: TopicSet) -> str:
        return self.source or choose(ts.qrels, f"qrels of {ts.name}")

    def topic_args(self, ts: TopicSet, topics: str) -> list[str]:
        """--split for a BEIR folder and --smart-ids for SMART topics, as the topic set says."""
        from repro.formats import beir

        args = ["--split", ts.split or ts.name] if beir.is_folder(topics) else []
        return args + (["--smart-ids", ts.smart_ids] if ts.smart_ids else [])
    vectors: str | None = None  # an already encoded collection (repro's or another tool's) instead of encoding

    def run_file(self, ts: TopicSet) -> Path:
        return run_file(self.runs_dir, self.preset.name, ts.name)

    def eval_file(self, ts: TopicSet) -> Path:
        return eval_file(self.runs_dir, self.preset.name, ts.name)


def run_file(runs_dir: Path, preset: str, topics: str) -> Path:
    return Path(runs_dir) / f"{preset}.{topics}.trec"


def eval_file(runs_dir: Path, preset: str, topics: str) -> Path:
    return Path(runs_dir) / f"{preset}.{topics}{EVAL_SUFFIX}"


# --- fingerprints and records -------------------------------------------------------------------
def fingerprint(item: str | Path) -> str:
    """What identifies an input or output's content: a checksum, or the ID itself for remote data."""
    path = Path(item)
    if path.is_file():
        return "sha256:" + cached_sha256(path)
    if path.is_dir():
        if (path / DIR_MANIFEST).is_file():
            return "manifest:" + cached_sha256(path / DIR_MANIFEST)
        from repro.formats import beir

        if beir.is_folder(path):  # a BEIR folder: corpus, queries and every qrels file
            files = sorted(p for p in path.rglob("*") if p.is_file())
            return "beir:" + config_digest({str(p.relative_to(path)): cached_sha256(p) for p in files})
        if model_io.is_model_folder(path):  # a model: all its files, sub-folders (modules, routes) included
            return "model:" + model_io.fingerprint(path)
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in model_io.FINGERPRINT_SUFFIXES)
        return "files:" + config_digest({p.name: cached_sha256(p) for p in files})
    if str(item).startswith(("/", ".", "~")) or Path(str(item)).suffix:
        return "missing"
    return "id:" + str(item)  # ir_datasets or hub ID: identified by name


def _record_path(plan: Plan, step: Step) -> Path:
    return plan.workdir / RECORDS / f"{step.key}.json"


def _digest(step: Step) -> str:
    return config_digest({"config": step.config, "inputs": {i: fingerprint(i) for i in step.inputs}})


def step_status(plan: Plan, step: Step) -> StepStatus:
    """Up to date, or why the step must run."""
    record = _record_path(plan, step)
    if not record.is_file():
        return StepStatus.NOT_DONE
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return StepStatus.UNREADABLE
    if data.get("digest") != _digest(step):
        return StepStatus.CHANGED
    for out in step.outputs:
        if data.get("outputs", {}).get(str(out)) != fingerprint(out) or fingerprint(out) == "missing":
            return StepStatus.OUTPUT_CHANGED
    return StepStatus.UP_TO_DATE


def _write_record(plan: Plan, step: Step) -> None:
    data = {
        "step": step.key,
        "command": step.command(),
        "digest": _digest(step),
        "inputs": {i: fingerprint(i) for i in step.inputs},
        "outputs": {str(o): fingerprint(o) for o in step.outputs},
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text(_record_path(plan, step), json.dumps(data, indent=2, sort_keys=True) + "\n")


# --- planning -----------------------------------------------------------------------------------
def make_plan(preset: Preset | str, *, workdir: Path | str = "work", runs_dir: Path | str | None = None,
              queries: str | None = None, model: str | None = None, source: str | Path | None = None,
              vectors: str | Path | None = None) -> Plan:
    """Every step of a reproduction, in order, each as the `repro` command that does it.

    ``source``: a local BEIR folder used instead of the preset's corpus, topics and qrels locations.
    ``vectors``: index this already encoded collection (e.g. Anserini's pre-encoded corpus, a
    foreign JsonVectorCollection) instead of encoding the corpus; nothing is encoded when the
    preset's cached queries are here too."""
    if not isinstance(preset, Preset):
        preset = load_preset(preset)
    if source is not None:
        from repro.formats import beir

        if not beir.is_folder(source):
            raise ReproError("--source must be a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)", source)
        source = str(Path(source).resolve())
    if vectors is not None:
        if preset.retrieval != "splade":
            raise ReproError(f"{preset.name} is a BM25 preset: --vectors does not apply")
        from repro.formats import collection as coll

        if not (coll.is_collection(vectors) or coll.is_foreign_collection(vectors)):
            raise ReproError("--vectors must be an encoded collection: a `repro encode` folder or a JsonVectorCollection "
                             "folder (*.json / *.jsonl files, maybe .gz)", vectors)
        vectors = str(Path(vectors).resolve())
    if queries not in (None, "cached", "encode"):
        raise ReproError("--queries must be cached or encode")
    if preset.retrieval == "bm25" and (model or queries):
        raise ReproError(f"{preset.name} is a BM25 preset: --model and --queries do not apply")
    work = Path(workdir).resolve() / preset.name
    runs = paths.runs_dir(runs_dir)
    label = model or preset.model
    if model:
        encoder_model = str(Path(model).resolve()) if Path(model).exists() else model
    elif preset.model and model_cache.is_splade_tiny(preset.model):
        encoder_model = str(model_cache.cache_dir())
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
    plan = Plan(preset, work, runs, encoder_model, label, modes, source=source, vectors=vectors)
    if preset.retrieval == "splade":
        _splade_steps(plan)
    else:
        _bm25_steps(plan)
    return plan


def _fetch_model(plan: Plan) -> Callable[[], None] | None:
    """splade-tiny is fetched into the cache just before a step needs it (nothing else to prepare)."""
    if plan.model_label and model_cache.is_splade_tiny(plan.model_label) and plan.model == str(model_cache.cache_dir()):
        return lambda: model_cache.ensure_splade_tiny()
    return None


def _splade_steps(plan: Plan) -> None:
    p, work, model = plan.preset, plan.workdir, plan.model
    corpus = plan.corpus()
    coll, index = work / "collection", work / "index"
    factor = _num(p.factor)
    if plan.vectors:
        coll = Path(plan.vectors)  # indexed as it is: verified by the index step, nothing encoded
    else:
        argv = ["repro", "encode", corpus, "-m", model, "-o", str(coll)]
        if p.doc_max_length:
            argv += ["--max-length", str(p.doc_max_length)]
        argv += ["--factor", factor, "--batch-size", str(p.batch_size), "-q"]
        if p.corpus_format != "auto":
            argv += ["--format", p.corpus_format]
        plan.steps.append(Step("encode", "encode", argv, {"factor": float(p.factor), "max_length": p.doc_max_length,
                                                          "batch_size": p.batch_size, "format": p.corpus_format,
                                                          "model": model},
                               [corpus, model], [coll], prepare=_fetch_model(plan)))
    plan.steps.append(Step("index", "index", ["repro", "index", str(coll), "-o", str(index)], {"kind": "impact"},
                           [str(coll)], [index]))
    for ts in p.topic_sets:
        topics = plan.topics(ts)
        if plan.queries_mode[ts.name] == "cached":
            qfile = choose(ts.encoded_queries, f"cached queries of {ts.name}")
        else:
            qfile = str(work / "queries" / f"{ts.name}.tsv")
            qfactor = p.query_factor("encode")  # the convention of the figure encoded queries are compared with
            qargv = ["repro", "encode", topics, "--queries", "-m", model, "-o", qfile,
                     "--max-length", str(p.query_max_length), "--factor", _num(qfactor)]
            if ts.topic_format != "auto":
                qargv += ["--format", ts.topic_format]
            qargv += plan.topic_args(ts, topics)
            plan.steps.append(Step(f"queries.{ts.name}", "queries", qargv,
                                   {"max_length": p.query_max_length, "factor": qfactor, "model": model,
                                    "format": ts.topic_format}, [topics, model], [Path(qfile)],
                                   prepare=_fetch_model(plan)))
        mode = plan.queries_mode[ts.name]
        factor_note = {"query_factor": p.query_factor(mode)} if mode in p.query_factors else {}
        _search_and_evaluate(plan, ts, index, ["--encoded-queries", qfile], [qfile], factor_note)


def _bm25_steps(plan: Plan) -> None:
    p, work = plan.preset, plan.workdir
    corpus = plan.corpus()
    index = work / "index"
    plan.steps.append(Step("index", "index", ["repro", "index", corpus, "--bm25", "-o", str(index)], {"kind": "bm25"},
                           [corpus], [index]))
    for ts in p.topic_sets:
        topics = plan.topics(ts)
        extra = ["-t", topics] + (["--topic-format", ts.topic_format] if ts.topic_format != "auto" else [])
        extra += plan.topic_args(ts, topics)
        _search_and_evaluate(plan, ts, index, extra, [topics], {"topic_format": ts.topic_format})


def _search_and_evaluate(plan: Plan, ts: TopicSet, index: Path, query_args: list[str], query_inputs: list[str],
                         config: dict[str, Any]) -> None:
    p = plan.preset
    run = plan.run_file(ts)
    tag = f"repro-{p.name}"
    plan.steps.append(Step(f"search.{ts.name}", "search",
                           ["repro", "search", str(index), *query_args, "-o", str(run), "--hits", str(p.hits),
                            "--tag", tag],
                           {"hits": p.hits, "tag": tag, **config}, [str(index), *query_inputs], [run]))
    qrels_source = plan.qrels(ts)
    if ts.qrels_format == "cranfield":
        qrels = str(plan.workdir / "qrels" / f"{ts.name}.qrels")
        plan.steps.append(Step(f"qrels.{ts.name}", "evaluate",
                               ["repro", "convert-qrels", "cranfield", qrels_source, "-o", qrels],
                               {"format": "cranfield"}, [qrels_source], [Path(qrels)]))
    else:
        qrels = qrels_source
    out = plan.eval_file(ts)
    from repro.formats import beir

    split = (ts.split or ts.name) if beir.is_folder(qrels) else None
    argv = evaluate_argv(str(run), qrels, ts.measures, f"{preset_ref(p)}:{ts.name}", plan.model_label,
                         plan.queries_mode.get(ts.name), str(out), split=split)
    topics_source = plan.topics(ts)
    plan.steps.append(Step(f"evaluate.{ts.name}", "evaluate", argv,
                           {"measures": list(ts.measures), "queries": ts.queries, "qrels_lines": ts.qrels_lines,
                            "judged_queries": ts.judged_queries},
                           [str(run), qrels, topics_source], [out]))


def preset_ref(preset: Preset) -> str:
    """How a command names the preset: its name when loading the name finds this file, else the file."""
    try:
        if load_preset(preset.name).path.resolve() == preset.path.resolve():
            return preset.name
    except ReproError:
        pass
    return str(preset.path)


def evaluate_argv(run: str, qrels: str, measures, preset_topics: str, model_label: str | None,
                  queries_mode: str | None, output: str, split: str | None = None) -> list[str]:
    """The `repro evaluate` command that writes a reproduction's evaluation record (one form, two users:
    the plan builds its step from it, and the record stores it as its own provenance)."""
    argv = ["repro", "evaluate", run, "--qrels", qrels, *(["--split", split] if split else []),
            *[a for m in measures for a in ("-m", m)],
            "--record", preset_topics]
    if model_label:
        argv += ["--model-label", model_label]
    if queries_mode:
        argv += ["--queries-mode", queries_mode]
    return argv + ["-o", output]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --- evaluation ---------------------------------------------------------------------------------
def check_counts(ts: TopicSet, topics_source: str, qrels_path: str, split: str = "test") -> dict[str, int]:
    """Topic and qrels counts, checked against what the preset states (a mismatch means other data)."""
    from repro.formats.qrels import read_qrels
    from repro.formats.topics import detect_topic_format, read_topics

    topics = read_topics(topics_source, ts.topic_format, smart_ids=ts.smart_ids, split=split)
    qrels = read_qrels(qrels_path, split=split)
    fmt = detect_topic_format(topics_source) if ts.topic_format == "auto" else ts.topic_format
    if fmt == "smart":
        from repro.formats import smart

        warning = smart.numbering_warning(topics_source, ts.smart_ids or "position", qrels.by_query)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    facts = {"queries": len(topics), "judged_queries": len(qrels.by_query), "qrels_lines": len(qrels)}
    for key, found in facts.items():
        want = getattr(ts, key)
        if want is not None and want != found:
            raise ReproError(f"topic set {ts.name}: the preset says {want} {key.replace('_', ' ')}, the data has {found}; "
                             "different data than the published numbers used?", qrels_path if "qrels" in key else topics_source)
    return facts


def write_evaluation(preset_topics: str, run: Path, qrels: str, measures: list[str], out: Path, *,
                     model_label: str | None = None, queries_mode: str | None = None,
                     split: str | None = None) -> dict[str, Any]:
    """Evaluate a run for a preset's topic set and save aggregate + per-query values with provenance.

    The record stores, as its command, the `repro evaluate` line that makes it (`evaluate_argv`).
    """
    from repro.evaluate.evaluation import evaluate

    name, _, topic_name = preset_topics.rpartition(":")
    preset = load_preset(name)
    ts = preset.topic_set(topic_name)
    run = Path(run)
    measures = list(measures or ts.measures)
    from repro.formats import beir
    from repro.formats.qrels import read_qrels

    # a BEIR folder given as the qrels (`--source DIR`) is also where the topics are
    topics_source = qrels if beir.is_folder(qrels) else choose(ts.topics, f"topics of {ts.name}")
    counts = check_counts(ts, topics_source, qrels, split or "test")
    result = evaluate([run], read_qrels(qrels, split=split or "test"), measures)
    ev = result.runs[0]
    command = shlex.join(evaluate_argv(str(run), qrels, measures, preset_topics, model_label, queries_mode, str(out),
                                       split=(split or "test") if beir.is_folder(qrels) else None))
    data = {
        "preset": preset.name,
        "topics": ts.name,
        "collection": preset.collection,
        "retrieval": preset.retrieval,
        "model": model_label,
        "queries_mode": queries_mode,
        "run_file": run.name,
        "run_sha256": sha256_file(run),
        "qrels": _portable(qrels),
        "measures": measures,
        "aggregate": {m: ev.aggregate[m] for m in measures},
        "providers": result.providers,
        "evaluated_queries": ev.evaluated_queries,
        "missing_queries": ev.missing_queries,
        "warnings": [w.replace(str(run), run.name) for w in ev.warnings],
        "counts": counts,
        "per_query": {m: {q: float(v) for q, v in zip(result.query_ids, ev.per_query[m].tolist())} for m in measures},
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "git_commit": git_commit(),
        "command": command,
        "versions": versions(),
    }
    write_text(out, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return data


def _portable(path: str) -> str:
    """A path as it reads on any machine: shared data and package files by their variable."""
    for root, name in ((paths.shared_root(), "${shared}"), (paths.PACKAGE_DIR, "${package}")):
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
def run_step(step: Step, status: StepStatus) -> None:
    """Run the step's command line in this process, exactly as printed."""
    from repro.cli import cli

    if step.prepare is not None:
        step.prepare()
    cli.main(args=step.command_argv(status)[1:], prog_name="repro", standalone_mode=False)


def reproduce(preset: Preset | str, *, workdir: Path | str = "work", runs_dir: Path | str | None = None,
              dry_run: bool = False, from_stage: str | None = None, force: bool = False, queries: str | None = None,
              model: str | None = None, echo: Callable[[str], None] = print, source: str | Path | None = None,
              vectors: str | Path | None = None) -> Plan:
    """Run (or, with dry_run, print) every step of a preset; return the plan with each step's status."""
    if from_stage is not None and from_stage not in STAGES:
        raise ReproError(f"--from-stage must be one of {', '.join(STAGES)}")
    plan = make_plan(preset, workdir=workdir, runs_dir=runs_dir, queries=queries, model=model, source=source,
                     vectors=vectors)
    p = plan.preset
    redo_from = 0 if force else (STAGES.index(from_stage) if from_stage else len(STAGES))
    echo(f"# {p.name}: {p.description}")
    echo(f"# workdir {plan.workdir}  runs {plan.runs_dir}"
         + (f"  model {plan.model_label}" if plan.model_label else "")
         + (f"  queries {', '.join(f'{k}={v}' for k, v in plan.queries_mode.items())}" if plan.queries_mode else ""))
    if dry_run:
        echo("# dry run: nothing is executed; each step as the command that runs it")
    upstream_changed = False
    for step in plan.steps:
        status = StepStatus.FORCED if STAGES.index(step.stage) >= redo_from else step_status(plan, step)
        if dry_run and upstream_changed and status == StepStatus.UP_TO_DATE:
            status = StepStatus.AFTER_EARLIER  # in a real run, the earlier step changes this one's inputs
        upstream_changed = upstream_changed or status != StepStatus.UP_TO_DATE
        if dry_run:
            step.status = status
            echo(f"[{step.key}] {status}")
            echo(f"  {step.command(status)}")
            continue
        if status == StepStatus.UP_TO_DATE:
            step.status = StepStatus.SKIPPED
            echo(f"[{step.key}] skipped: up to date")
            continue
        echo(f"[{step.key}] {status.value.removeprefix('will run ')}: {step.command(status)}")
        started = time.perf_counter()
        run_step(step, status)
        _write_record(plan, step)
        step.status, step.seconds = StepStatus.DONE, time.perf_counter() - started
        echo(f"[{step.key}] done in {step.seconds:.1f}s")
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
