"""Reproduction presets: TOML data files (repro/presets/<collection>.<model>.toml), loaded and validated.

A preset says everything a reproduction needs (model, corpus, topic sets with their qrels,
lengths, quantization, depth, measures) and every number it should reproduce, each with its
source, kind and tolerance. Validation is strict: an unknown key, a measure ir_measures cannot
parse, or a number without a source is an error naming the file and line, because a typo in a
preset would otherwise silently change what is being reproduced.

Paths may use ``${shared}`` (the shared data root: $REPRO_SHARED_DATA, else $REPRO_SHARED/data,
else ../shared/data beside the project) and ``${package}`` (the installed `repro` package, for
files shipped with it). A location may be a list of alternatives: the first one available here
is used (e.g. a local file, then an ir_datasets ID).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from repro import defaults, paths
from repro.errors import ReproError
from repro.formats import irds

PRESET_DIR = Path(__file__).resolve().parent / "presets"
KINDS = ("published", "ours", "subsample")
RETRIEVALS = ("splade", "bm25")
QRELS_FORMATS = ("trec", "cranfield")
QUERY_MODES = ("cached", "encode")
STAGES = ("encode", "index", "queries", "search", "evaluate")
_NAME = re.compile(r"^[a-z0-9][a-z0-9\-]*\.[a-z0-9][a-z0-9.\-]*$")
_TOPIC_NAME = re.compile(r"^[a-z0-9][a-z0-9\-]*$")
_VAR = re.compile(r"\$\{([a-z]+)\}")

# key -> (type(s), required); types checked after TOML parsing
_TOP = {
    "description": (str, True),
    "collection": (str, True),
    "retrieval": (str, True),
    "model": (str, False),
    "model_note": (str, False),
    "corpus": ((str, list), True),
    "corpus_format": (str, False),
    "doc_max_length": (int, False),
    "query_max_length": (int, False),
    "factor": ((int, float), False),
    "query_factor": (dict, False),
    "hits": (int, False),
    "batch_size": (int, False),
    "notes": (str, False),
    "part_of": (str, False),  # one part of a published average (BEIR's CQADupStack = the mean of 12 forums)
    "topics": (list, True),
}
_TOPICS = {
    "name": (str, True),
    "title": (str, False),
    "topics": ((str, list), True),
    "topic_format": (str, False),
    "split": (str, False),  # BEIR folder sources: which qrels/<split>.tsv (and its judged queries)
    "smart_ids": (str, False),  # SMART topics: number queries by "position" or by their .I "ids"
    "qrels": ((str, list), True),
    "qrels_format": (str, False),
    "encoded_queries": ((str, list), False),
    "measures": (list, True),
    "queries": (int, False),
    "qrels_lines": (int, False),
    "judged_queries": (int, False),
    "expected": (list, False),
}
_EXPECTED = {
    "measure": (str, True),
    "value": ((int, float), True),
    "source": (str, True),
    "kind": (str, False),
    "tolerance": ((int, float), True),
    "queries_mode": (str, False),
    "subsample_size": (int, False),
    "note": (str, False),
}


@dataclass(frozen=True)
class Expected:
    """One number to reproduce: value, where it comes from, and how close counts as reproduced."""

    measure: str
    value: float
    source: str
    tolerance: float
    kind: str = "published"
    queries_mode: str | None = None  # the query encoding the number was measured with, if known
    subsample_size: int | None = None
    note: str | None = None


@dataclass(frozen=True)
class TopicSet:
    name: str
    topics: tuple[str, ...]
    qrels: tuple[str, ...]
    measures: tuple[str, ...]
    title: str | None = None
    topic_format: str = "auto"
    qrels_format: str = "trec"
    encoded_queries: tuple[str, ...] = ()
    queries: int | None = None
    qrels_lines: int | None = None
    judged_queries: int | None = None
    expected: tuple[Expected, ...] = ()
    split: str | None = None
    smart_ids: str | None = None


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    description: str
    collection: str
    retrieval: str
    corpus: tuple[str, ...]
    topic_sets: tuple[TopicSet, ...]
    model: str | None = None
    model_note: str | None = None
    corpus_format: str = "auto"
    doc_max_length: int | None = None
    query_max_length: int = defaults.QUERY_MAX_LENGTH
    factor: float = defaults.DOC_FACTOR
    hits: int = defaults.HITS
    batch_size: int = defaults.BATCH_SIZE
    notes: str | None = None
    part_of: str | None = None
    query_factors: dict[str, float] = field(default_factory=dict)  # query source (encode|cached) -> factor

    def query_factor(self, source: str) -> float:
        """The quantization factor of queries from ``source`` (encode | cached): the preset's
        ``[query_factor]`` entry (the convention of the figure compared with), else the documents'."""
        return float(self.query_factors.get(source, self.factor))

    def topic_set(self, name: str) -> TopicSet:
        for ts in self.topic_sets:
            if ts.name == name:
                return ts
        raise ReproError(f"preset {self.name} has no topic set {name!r} (has: {', '.join(t.name for t in self.topic_sets)})")


# --- locations --------------------------------------------------------------------------------
def expand(text: str) -> str:
    """Substitute ``${shared}`` and ``${package}``; any other variable is an error."""
    def sub(match: re.Match) -> str:
        name = match.group(1)
        if name == "shared":
            return str(paths.shared_root())
        if name == "package":
            return str(paths.PACKAGE_DIR)
        raise ReproError(f"unknown variable ${{{name}}} in {text!r} (use ${{shared}} or ${{package}})")

    return _VAR.sub(sub, text)


def choose(alternatives: tuple[str, ...], what: str) -> str:
    """The first alternative available here: an existing path, else an ir_datasets ID."""
    for alt in alternatives:
        path = Path(expand(alt))
        if path.exists():
            return str(path)
        if irds.is_dataset_id(alt):
            return alt
    raise ReproError(f"{what} not found; tried: {', '.join(expand(a) for a in alternatives)}")


def available(alternatives: tuple[str, ...]) -> str | None:
    """Like `choose`, but None when nothing is available (for optional inputs such as cached queries)."""
    try:
        return choose(alternatives, "input")
    except ReproError:
        return None


# --- loading ----------------------------------------------------------------------------------
def preset_dirs() -> list[Path]:
    """The shipped presets, then the user's folders ($REPRO_PRESETS or --presets; see repro.paths)."""
    return [PRESET_DIR, *paths.user_preset_dirs()]


def preset_files() -> list[Path]:
    """Every preset file; a user preset with a shipped preset's name replaces it."""
    by_name: dict[str, Path] = {}
    for folder in preset_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                by_name[path.stem] = path
    return [by_name[name] for name in sorted(by_name)]


def list_presets() -> list[Preset]:
    return [load_preset(p) for p in preset_files()]


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a preset by name (``cranfield.splade-tiny``) or by path to a TOML file."""
    text = str(name_or_path)
    path = Path(text)
    if not (text.endswith(".toml") and path.is_file()):
        found = {p.stem: p for p in preset_files()}
        path = found.get(text, PRESET_DIR / f"{text}.toml")
        if not path.is_file():
            names = [p.stem for p in preset_files()]
            close = [n for n in names if text in n or n.split(".")[0] == text.split(".")[0]]
            hint = f"; did you mean {', '.join(close[:4])}?" if close else f"; `repro presets` lists them ({len(names)})"
            raise ReproError(f"no preset named {text!r}{hint}")
    raw_text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as err:
        raise ReproError(f"not valid TOML ({err})", path) from None
    return _build(path, data, raw_text)


def _line_of(raw_text: str, key: str, start: int = 0) -> int | None:
    """Best-effort line of ``key = ...`` (tomllib keeps no positions), for error messages."""
    lines = raw_text.splitlines()
    for i in range(start, len(lines)):
        if re.match(rf"\s*{re.escape(key)}\s*=", lines[i]) or re.match(rf"\s*\[+\s*{re.escape(key)}\s*\]+", lines[i]):
            return i + 1
    return None


def _check_keys(table: dict, spec: dict, where: str, path: Path, raw_text: str) -> None:
    for key, value in table.items():
        if key not in spec:
            raise ReproError(f"unknown key {key!r} in {where} (allowed: {', '.join(spec)})", path, _line_of(raw_text, key))
        types, _ = spec[key]
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            raise ReproError(f"{where}: {key} must be {wanted}, not {type(value).__name__}", path, _line_of(raw_text, key))
    for key, (_, required) in spec.items():
        if required and key not in table:
            what = "a source (URL or citation)" if key == "source" else key
            raise ReproError(f"{where}: missing {what!r}" if key != "source" else f"{where}: every number needs {what}",
                             path, _line_of(raw_text, "measure") if where.startswith("expected") else None)


def _alts(value: str | list, key: str, path: Path) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ReproError(f"{key} must be a non-empty string or list of strings", path)
    for v in items:
        for var in _VAR.findall(v):
            if var not in ("shared", "package"):
                raise ReproError(f"unknown variable ${{{var}}} in {key} (use ${{shared}} or ${{package}})", path)
    return tuple(items)


def _parse_measure(text: str, path: Path, raw_text: str) -> str:
    """The measure's canonical string (ir_measures' own), or an error naming the line."""
    import ir_measures

    try:
        measure = ir_measures.parse_measure(text)
        measure.validate_params()
    except Exception as err:  # ir_measures raises NameError/ValueError/SyntaxError/AssertionError
        line = next((i + 1 for i, t in enumerate(raw_text.splitlines()) if text in t), None)
        raise ReproError(f"bad measure {text!r} ({type(err).__name__}: {err}); use ir_measures syntax such as RR@10",
                         path, line) from None
    return str(measure)


def _build(path: Path, data: dict, raw_text: str) -> Preset:
    name = path.stem
    if not _NAME.match(name):
        raise ReproError("preset file names are <collection>.<model>.toml in lower case", path)
    _check_keys(data, _TOP, "preset", path, raw_text)
    retrieval = data["retrieval"]
    if retrieval not in RETRIEVALS:
        raise ReproError(f"retrieval must be one of {', '.join(RETRIEVALS)}, not {retrieval!r}", path, _line_of(raw_text, "retrieval"))
    if retrieval == "splade" and not data.get("model"):
        raise ReproError("a splade preset needs a model", path)
    if retrieval == "bm25" and "model" in data:
        raise ReproError("a bm25 preset has no model", path, _line_of(raw_text, "model"))
    if name.split(".")[0] != data["collection"]:
        raise ReproError(f"file name must start with the collection ({data['collection']!r})", path)
    for key in ("doc_max_length", "query_max_length", "hits", "batch_size"):
        if key in data and data[key] < 1:
            raise ReproError(f"{key} must be positive", path, _line_of(raw_text, key))
    if "factor" in data and data["factor"] <= 0:
        raise ReproError("factor must be positive", path, _line_of(raw_text, "factor"))
    query_factors = data.get("query_factor", {})
    for source, value in query_factors.items():
        line = _line_of(raw_text, "query_factor")
        if source not in QUERY_MODES:
            raise ReproError(f"query_factor.{source}: the query source must be one of {', '.join(QUERY_MODES)}", path, line)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ReproError(f"query_factor.{source} must be a positive number", path, line)
    topic_sets = []
    seen: set[str] = set()
    for ts in data["topics"]:
        if not isinstance(ts, dict):
            raise ReproError("topics must be [[topics]] tables", path)
        _check_keys(ts, _TOPICS, f"[[topics]] {ts.get('name', '?')}", path, raw_text)
        tname = ts["name"]
        if not _TOPIC_NAME.match(tname) or tname in seen:
            raise ReproError(f"topic set name {tname!r} must be unique, lower case, letters/digits/-", path, _line_of(raw_text, "name"))
        seen.add(tname)
        if ts.get("qrels_format", "trec") not in QRELS_FORMATS:
            raise ReproError(f"qrels_format must be one of {', '.join(QRELS_FORMATS)}", path, _line_of(raw_text, "qrels_format"))
        if retrieval == "bm25" and "encoded_queries" in ts:
            raise ReproError("a bm25 preset has no encoded queries", path, _line_of(raw_text, "encoded_queries"))
        measures = tuple(_parse_measure(m, path, raw_text) for m in ts["measures"]) if ts["measures"] else ()
        if not measures:
            raise ReproError(f"topic set {tname}: measures is empty", path)
        if len(set(measures)) != len(measures):
            raise ReproError(f"topic set {tname}: a measure is listed twice", path)
        expected = []
        for ex in ts.get("expected", []):
            if not isinstance(ex, dict):
                raise ReproError("expected values must be [[topics.expected]] tables", path)
            where = f"expected {ex.get('measure', '?')} = {ex.get('value', '?')} ({tname})"
            _check_keys(ex, _EXPECTED, where, path, raw_text)
            measure = _parse_measure(ex["measure"], path, raw_text)
            if measure not in measures:
                raise ReproError(f"{where}: {measure} is not among the topic set's measures", path)
            if not ex["source"].strip():
                raise ReproError(f"{where}: every number needs a source (URL or citation)", path)
            kind = ex.get("kind", "published")
            if kind not in KINDS:
                raise ReproError(f"{where}: kind must be one of {', '.join(KINDS)}", path, _line_of(raw_text, "kind"))
            if (kind == "subsample") != ("subsample_size" in ex):
                raise ReproError(f"{where}: subsample_size is required for, and only for, kind = \"subsample\"", path)
            if ex.get("queries_mode") not in (None, *QUERY_MODES, "onnx"):
                raise ReproError(f"{where}: queries_mode must be cached, encode or onnx", path)
            if not 0 <= ex["tolerance"] < 1:
                raise ReproError(f"{where}: tolerance must be in [0, 1)", path)
            expected.append(Expected(measure, float(ex["value"]), ex["source"].strip(), float(ex["tolerance"]), kind,
                                     ex.get("queries_mode"), ex.get("subsample_size"), ex.get("note")))
        topic_sets.append(TopicSet(
            name=tname, title=ts.get("title"), topics=_alts(ts["topics"], "topics", path),
            qrels=_alts(ts["qrels"], "qrels", path), measures=measures, topic_format=ts.get("topic_format", "auto"),
            qrels_format=ts.get("qrels_format", "trec"),
            encoded_queries=_alts(ts["encoded_queries"], "encoded_queries", path) if "encoded_queries" in ts else (),
            queries=ts.get("queries"), qrels_lines=ts.get("qrels_lines"), judged_queries=ts.get("judged_queries"),
            expected=tuple(expected), split=ts.get("split"), smart_ids=ts.get("smart_ids"),
        ))
        if ts.get("smart_ids") not in (None, "position", "ids"):
            raise ReproError(f"topic set {tname}: smart_ids must be \"position\" or \"ids\"", path,
                             _line_of(raw_text, "smart_ids"))
    if not topic_sets:
        raise ReproError("a preset needs at least one [[topics]] set", path)
    return Preset(
        name=name, path=path, description=data["description"], collection=data["collection"], retrieval=retrieval,
        corpus=_alts(data["corpus"], "corpus", path), topic_sets=tuple(topic_sets), model=data.get("model"),
        model_note=data.get("model_note"), corpus_format=data.get("corpus_format", "auto"),
        doc_max_length=data.get("doc_max_length"), query_max_length=data.get("query_max_length", defaults.QUERY_MAX_LENGTH),
        factor=data.get("factor", defaults.DOC_FACTOR), hits=data.get("hits", defaults.HITS),
        batch_size=data.get("batch_size", defaults.BATCH_SIZE),
        notes=data.get("notes"), part_of=data.get("part_of"),
        query_factors={k: float(v) for k, v in query_factors.items()},
    )
