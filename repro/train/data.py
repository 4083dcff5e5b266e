"""Training examples from local files or ir_datasets, as an on-disk (memory-mapped) `datasets.Dataset`.

Formats (`--data-format`, `auto` guesses from the name):
- `triplets`: TSV `query<TAB>positive<TAB>negative` (naver/splade's format).
- `jsonl`: `{"query", "positive", "negatives": [...], "scores": [...]}` where `scores` are
  cross-encoder scores of [positive] + negatives (required by margin-mse and kl); other keys are
  ignored. A `repro mine` output FOLDER is read as its JSONL shards in order (checked against
  its manifest).
- `ids`: TSV `qid<TAB>pid<TAB>nid`, resolved against `--queries` (`id<TAB>text`) and `--corpus`
  (`id<TAB>text`, MS MARCO collection.tsv style; held as byte offsets, not texts).
- `smart-pairs`: a SMART-format corpus (Cranfield's `cran.all.1400`) as title -> abstract pairs
  (the title removed from the front of the abstract; titles under 2 words or abstracts under 5
  words skipped), in-batch negatives only: what configs/cranfield-finetune.toml trains on.
- `irds`: an ir_datasets ID with doc pairs, e.g. `msmarco-passage/train/triples-small`
  (optionally written `irds:...`).
- `hf`: `hf:ORG/NAME[:SUBSET][@SPLIT]`, a Hugging Face dataset read streaming through `datasets`
  (or a local folder of its files in place of ORG/NAME), with text columns or id columns resolved
  against `--queries` / `--corpus` (see `_hub`; the IDs and layouts are in docs/training.md).

Why `Dataset.from_generator` and not an `IterableDataset`: the generator streams the file once
into an Arrow file on disk (memory-mapped afterwards, so 40M triplets never sit in RAM), and the
result is a map-style dataset. That keeps (1) shuffling over the WHOLE file, (2) the
no-duplicates batch sampler (which needs random access), and (3) exact resume: the Trainer skips
already-seen batches by index in O(1) instead of re-reading and discarding the stream. The cache
key includes the file's size and mtime, so an edited file is re-read.

Malformed lines raise a ReproError naming file:line, or with `skip_bad_lines` are skipped and
counted (the count is reported and written to the manifest).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from repro.errors import BadInputError, ReproError, short
from repro.formats.textio import iter_lines


def detect_format(data: str, data_format: str = "auto") -> str:
    if data_format != "auto":
        return data_format
    if data.startswith("hf:"):
        return "hf"
    if data.startswith("irds:"):
        return "irds"
    path = Path(data)
    if not path.exists():
        if "/" in data and not data.startswith((".", "/")) and not path.suffix:
            return "irds"
        raise ReproError("training data not found", path)
    name = path.name.removesuffix(".gz")
    if path.is_dir() or name.endswith((".jsonl", ".json")):
        return "jsonl"
    if name.startswith("cran.all") or name.endswith(".smart"):
        return "smart-pairs"
    return "triplets"


def negative_columns(n: int) -> list[str]:
    if n == 0:
        return []
    return ["negative"] if n == 1 else [f"negative_{i + 1}" for i in range(n)]


class _Bad:
    """Reports a malformed line: raise, or count it when skipping is allowed."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.count = 0
        self.examples: list[str] = []

    def __call__(self, path: Path, lineno: int, why: str, text: str) -> None:
        if not self.skip:
            raise BadInputError(f"{why}: {short(text)} (pass --skip-bad-lines to skip such lines)", path, lineno)
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(f"{path}:{lineno}: {why}")


def _three_fields(path: Path, bad: _Bad, names: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line number, line, fields) of each non-blank line with 3 tab-separated fields; others go to ``bad``."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            bad(path, lineno, f"expected 3 tab-separated fields ({names}), found {len(parts)}", line)
            continue
        yield lineno, line, parts


def _tsv_triplets(path: Path, bad: _Bad) -> Iterator[dict[str, Any]]:
    for lineno, line, parts in _three_fields(path, bad, "query, positive, negative"):
        if not all(p.strip() for p in parts):
            bad(path, lineno, "empty field", line)
            continue
        yield {"query": parts[0], "positive": parts[1], "negatives": [parts[2]], "scores": None}


def _jsonl(path: Path, bad: _Bad) -> Iterator[dict[str, Any]]:
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            bad(path, lineno, f"not valid JSON ({err.msg})", line)
            continue
        if not isinstance(rec, dict):
            bad(path, lineno, "expected a JSON object", line)
            continue
        query, pos, negs, scores = rec.get("query"), rec.get("positive"), rec.get("negatives", []), rec.get("scores")
        if not isinstance(query, str) or not query.strip() or not isinstance(pos, str) or not pos.strip():
            bad(path, lineno, "needs non-empty string fields 'query' and 'positive'", line)
            continue
        if not isinstance(negs, list) or not all(isinstance(n, str) and n.strip() for n in negs):
            bad(path, lineno, "'negatives' must be a list of non-empty strings", line)
            continue
        if scores is not None and (
            not isinstance(scores, list)
            or len(scores) != 1 + len(negs)
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores)
        ):
            bad(path, lineno, f"'scores' must be {1 + len(negs)} numbers (positive + each negative)", line)
            continue
        yield {"query": query, "positive": pos, "negatives": negs, "scores": scores}


def _read_id_text(path: Path, bad: _Bad) -> dict[str, str]:
    table: dict[str, str] = {}
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t", 1)
        if len(parts) != 2:
            bad(path, lineno, "expected 'id<TAB>text'", line)
            continue
        table[parts[0]] = parts[1]
    return table


def _offsets(path: Path) -> dict[str, int]:
    """Byte offset of each `id<TAB>text` line, so a large corpus is looked up without holding its text."""
    offsets: dict[str, int] = {}
    with open(path, "rb") as handle:
        pos = 0
        for raw in handle:
            tab = raw.find(b"\t")
            if tab > 0:
                offsets[raw[:tab].decode("utf-8", "replace")] = pos
            pos += len(raw)
    return offsets


class CorpusTexts:
    """Document text by id, looked up lazily: a plain `id<TAB>text` file is held as byte offsets
    (one int per passage: MS MARCO's 8.8M passages cost offsets, not 3 GB of text); other corpus
    formats (JSONL, SMART, ir_datasets) are read once into memory (small collections)."""

    def __init__(self, source: str | Path, fmt: str = "auto") -> None:
        from repro.formats.corpus import detect_format as corpus_format
        from repro.formats.corpus import iter_docs

        self.source = str(source)
        fmt = corpus_format(source) if fmt == "auto" else fmt
        path = Path(source)
        self._handle = None
        self._texts: dict[str, str] | None = None
        if fmt == "tsv" and path.is_file() and not path.name.endswith(".gz"):
            self._offsets = _offsets(path)
            self._handle = open(path, "rb")
        else:
            self._texts = {d.id: d.text for d in iter_docs(source, fmt)}

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in (self._texts if self._texts is not None else self._offsets)

    def __len__(self) -> int:
        return len(self._texts if self._texts is not None else self._offsets)

    def get(self, doc_id: str) -> str | None:
        if self._texts is not None:
            return self._texts.get(doc_id)
        pos = self._offsets.get(doc_id)
        if pos is None:
            return None
        self._handle.seek(pos)
        line = self._handle.readline().decode("utf-8", "replace").rstrip("\r\n")
        return " ".join(line.split("\t")[1:])  # extra tabs belong to the text, as the corpus reader joins them

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _id_triplets(path: Path, queries: str | None, corpus: str | None, bad: _Bad) -> Iterator[dict[str, Any]]:
    if not queries or not corpus:
        raise ReproError("id triplets need --queries FILE and --corpus FILE to resolve the ids", path)
    qtext = _read_id_text(Path(queries), bad)
    corpus_path = Path(corpus)
    if not corpus_path.is_file():
        raise ReproError("corpus file not found", corpus_path)
    docs = CorpusTexts(corpus_path, "tsv")
    try:
        for lineno, line, parts in _three_fields(path, bad, "qid, pid, nid"):
            q, p, n = qtext.get(parts[0]), docs.get(parts[1]), docs.get(parts[2])
            if q is None or p is None or n is None:
                missing = [x for x, t in zip(parts, (q, p, n)) if t is None]
                bad(path, lineno, f"unknown id(s) {missing}", line)
                continue
            yield {"query": q, "positive": p, "negatives": [n], "scores": None}
    finally:
        docs.close()


def _irds(dataset_id: str) -> Iterator[dict[str, Any]]:
    dataset_id = dataset_id.removeprefix("irds:")
    try:
        import ir_datasets
    except ImportError as err:
        raise ReproError("ir_datasets is not installed") from err
    try:
        ds = ir_datasets.load(dataset_id)
        if not ds.has_docpairs():
            raise ReproError(f"ir_datasets {dataset_id!r} has no training doc pairs (try .../train/triples-small)")
        queries = {q.query_id: q.text for q in ds.queries_iter()}
        store = ds.docs_store()
        for pair in ds.docpairs_iter():
            yield {
                "query": queries[pair.query_id],
                "positive": store.get(pair.doc_id_a).text,
                "negatives": [store.get(pair.doc_id_b).text],
                "scores": None,
            }
    except ReproError:
        raise
    except KeyError as err:
        raise ReproError(f"ir_datasets has no dataset {dataset_id!r}") from err
    except Exception as err:  # network errors surface as many types (ConnectionError, HTTPError, IOError)
        msg = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ReproError(
            f"cannot load ir_datasets {dataset_id!r} (offline? its files must be under $IR_DATASETS_HOME): {msg}"
        ) from err


def _smart_pairs(path: Path) -> Iterator[dict[str, Any]]:
    """Title -> abstract pairs from a SMART corpus (no queries or judgements are used)."""
    from repro.formats.smart import iter_smart_records

    for _line, _doc_id, fields in iter_smart_records(path):
        title, body = " ".join(fields.get("T", "").split()), " ".join(fields.get("W", "").split())
        if body.startswith(title):
            body = body[len(title):].strip()
        if len(title.split()) >= 2 and len(body.split()) >= 5:
            yield {"query": title, "positive": body, "negatives": [], "scores": None}
_ID_COLUMNS = {"query": ("query_id", "qid", "query"), "positive": ("positive_id", "pid", "passage_id", "positive"),
               "negative": ("negative_id", "nid", "negative")}


def parse_hub_spec(data: str) -> tuple[str, str | None, str]:
    """`hf:NAME[:SUBSET][@SPLIT]` -> (name, subset, split); NAME is a hub dataset ID or a local folder."""
    spec = data.removeprefix("hf:")
    spec, _, split = spec.partition("@")
    name, _, subset = spec.partition(":")
    if not name:
        raise ReproError(f"--data {data!r}: expected hf:ORG/NAME[:SUBSET][@SPLIT]")
    return name, subset or None, split or "train"


def _negatives(row: dict[str, Any], prefix: str) -> list[Any]:
    """The negative column(s) of a row: `negative`, `negative_ids` (a list) or `negative_1..k` in order."""
    for key in (prefix, prefix + "s"):
        if key in row:
            value = row[key]
            return list(value) if isinstance(value, (list, tuple)) else [value]
    numbered = sorted((int(k.rsplit("_", 1)[1]), k) for k in row if k.startswith(prefix + "_") and k.rsplit("_", 1)[1].isdigit())
    return [row[k] for _, k in numbered]


def _hub(data: str, queries: str | None, corpus: str | None, bad: _Bad) -> Iterator[dict[str, Any]]:
    """A Hugging Face dataset read streaming (never downloaded whole): text columns as they are,
    id columns (query_id, positive_id, negative_id[s], score) resolved against --queries / --corpus
    (id<TAB>text; the corpus as byte offsets). A single `score` is a teacher MARGIN
    (score(q, pos) - score(q, neg), as in sentence-transformers/msmarco:bert-ensemble-margin-mse) and
    becomes scores [margin, 0.0]: MarginMSE and KL both depend only on score differences."""
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - a dependency of sentence-transformers
        raise ReproError("reading hub datasets needs the 'datasets' package") from err
    name, subset, split = parse_hub_spec(data)
    local = Path(name)
    shown = f"{name}{':' + subset if subset else ''}"
    try:
        if local.exists():
            stream = datasets.load_dataset(str(local), data_dir=subset, split=split, streaming=True)
        else:
            stream = datasets.load_dataset(name, subset, split=split, streaming=True)
        rows = iter(stream)
        first = next(rows, None)
    except ReproError:
        raise
    except Exception as err:  # offline, unknown ID, no such subset: many exception types
        msg = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ReproError(f"cannot read Hugging Face dataset {shown!r} (offline, or not in the local cache? "
                         f"{msg})") from err
    if first is None:
        return
    import itertools

    def column(row, kind):
        for key in _ID_COLUMNS[kind]:
            if key in row:
                return row[key]
        raise ReproError(f"dataset {shown!r} has no {kind} column (columns: {', '.join(row)})")

    by_id = "query_id" in first or isinstance(column(first, "query"), int)
    qtext = docs = None
    if by_id:
        if not queries or not corpus:
            raise ReproError(f"dataset {shown!r} holds ids: pass --queries FILE and --corpus FILE (id<TAB>text) "
                             "to resolve them")
        qtext = _read_id_text(Path(queries), bad)
        docs = CorpusTexts(corpus, "tsv")
    try:
        for number, row in enumerate(itertools.chain([first], rows), start=1):
            q, p = column(row, "query"), column(row, "positive")
            negs = _negatives(row, "negative_id" if "negative_id" in row or "negative_ids" in row else "negative")
            if by_id:
                q_t, p_t = qtext.get(str(q)), docs.get(str(p))
                n_t = [docs.get(str(n)) for n in negs]
                if q_t is None or p_t is None or any(t is None for t in n_t):
                    bad(Path(shown), number, "unknown id(s)", json.dumps({k: row[k] for k in row}, default=str))
                    continue
                q, p, negs = q_t, p_t, n_t
            score = row.get("scores", row.get("label", row.get("score")))
            if score is None:
                scores = None
            elif isinstance(score, (list, tuple)):
                scores = [float(x) for x in score]
            else:
                scores = [float(score), 0.0]
            yield {"query": q, "positive": p, "negatives": negs, "scores": scores}
    finally:
        if docs is not None:
            docs.close()


def iter_records(data: str, data_format: str, queries: str | None, corpus: str | None, bad: _Bad) -> Iterator[dict]:
    fmt = detect_format(data, data_format)
    if fmt == "irds":
        return _irds(data)
    if fmt == "hf":
        return _hub(data, queries, corpus, bad)
    path = Path(data)
    if fmt == "jsonl" and path.is_dir():
        fmt = "mined"
    elif not path.is_file():
        raise ReproError("training data not found", path)
    if fmt == "triplets":
        return _tsv_triplets(path, bad)
    if fmt == "jsonl":
        return _jsonl(path, bad)
    if fmt == "smart-pairs":
        return _smart_pairs(path)
    if fmt == "mined":
        from repro.train.mine import shard_files

        return (rec for shard in shard_files(path) for rec in _jsonl(shard, bad))
    return _id_triplets(path, queries, corpus, bad)


def _rows(data, data_format, queries, corpus, loss, num_negatives, skip_bad_lines, stats_path, fingerprint):
    """Generator for Dataset.from_generator (module level so the datasets cache can hash it)."""
    del fingerprint  # only part of the cache key
    bad = _Bad(skip_bad_lines)
    cols = negative_columns(num_negatives)
    rows = 0
    where = data
    for rec in iter_records(data, data_format, queries, corpus, bad):
        rows += 1
        negs, scores = rec["negatives"], rec["scores"]
        if len(negs) < num_negatives:
            raise BadInputError(
                f"example {rows} has {len(negs)} negative(s), --num-negatives is {num_negatives}", where
            )
        row = {"query": rec["query"], "positive": rec["positive"]}
        row.update({c: negs[i] for i, c in enumerate(cols)})
        if loss != "mnrl":
            if scores is None:
                raise BadInputError(
                    f"--loss {loss} needs cross-encoder 'scores' for each example (JSONL format); example {rows} has none",
                    where,
                )
            row["label"] = [float(s) for s in scores[: 1 + num_negatives]]
        yield row
    Path(stats_path).write_text(json.dumps({"rows": rows, "skipped_lines": bad.count, "skipped_examples": bad.examples}))


def build_dataset(cfg, cache_dir: Path):
    """The training set as a map-style Dataset cached on disk, and its read statistics."""
    import datasets
    from datasets import Features, Sequence, Value

    fmt = detect_format(cfg.data, cfg.data_format)
    if fmt in ("triplets", "ids", "irds") and cfg.num_negatives > 1:
        raise ReproError(f"{fmt} data has one negative per example; use --num-negatives 1 (or 0 to drop it)")
    if fmt == "hf" and Path(parse_hub_spec(cfg.data)[0]).exists():
        local = Path(parse_hub_spec(cfg.data)[0])
        fingerprint = f"{cfg.data}:" + ",".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                                                for p in sorted(local.rglob("*")) if p.is_file())
    elif fmt in ("irds", "hf"):
        fingerprint = cfg.data
    else:
        st = os.stat(cfg.data) if Path(cfg.data).exists() else None
        if st is None:
            raise ReproError("training data not found", cfg.data)
        fingerprint = f"{Path(cfg.data).resolve()}:{st.st_size}:{st.st_mtime_ns}"
        if Path(cfg.data).is_dir():  # a `repro mine` folder: its manifest's checksums say what is in it
            from repro.manifest import sha256_file, manifest_path

            fingerprint = f"{Path(cfg.data).resolve()}:{sha256_file(manifest_path(Path(cfg.data)))}"
    features = {"query": Value("string"), "positive": Value("string")}
    features.update({c: Value("string") for c in negative_columns(cfg.num_negatives)})
    if cfg.loss != "mnrl":
        features["label"] = Sequence(Value("float32"), length=1 + cfg.num_negatives)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stats_path = cache_dir / "read-stats.json"
    kwargs = dict(
        data=cfg.data, data_format=fmt, queries=cfg.queries, corpus=cfg.corpus, loss=cfg.loss,
        num_negatives=cfg.num_negatives, skip_bad_lines=cfg.skip_bad_lines, stats_path=str(stats_path),
        fingerprint=fingerprint,
    )
    datasets.disable_progress_bars()
    try:
        ds = datasets.Dataset.from_generator(_rows, features=Features(features), gen_kwargs=kwargs,
                                             cache_dir=str(cache_dir))
    except Exception as err:  # datasets wraps generator errors in DatasetGenerationError
        cause = err
        while cause is not None and not isinstance(cause, ReproError):
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            raise cause from None
        raise
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {"rows": len(ds), "skipped_lines": 0}
    if len(ds) == 0:
        raise ReproError("no training examples found", cfg.data)
    return ds, stats
