"""`repro mine`: hard negatives (and optional cross-encoder teacher scores) for training queries, from any repro index.

One record per (query, judged positive), in topic order, then positive-id order:
``{"qid", "query", "pid", "positive", "nids", "negatives", "retrieval_scores", "scores"?}``.
`repro train` reads ``query``, ``positive``, ``negatives`` and ``scores`` (teacher scores of
[positive] + negatives); the ids and retrieval scores are kept for inspection and re-use.

Rules, all recorded in the manifest:
- Retrieval: the index's own engine (BM25 text search on a BM25 index; the SPLADE model's query
  vectors, quantized at the index's factor, on an impact or Seismic index), top ``rank_max`` hits
  under the tie rule of `repro.search.ties`.
- Candidates: hits at 0-based ranks [rank_min, rank_max) of that list, minus every document the
  qrels judge relevant (rel >= ``min_rel``) for the query (all positives, not only the record's).
- False-negative guard (as sentence-transformers' ``mine_hard_negatives``): with a reference score
  s+ (the positive's teacher score when a teacher is given, else its retrieval score), a candidate
  with score s is skipped when ``s > s+ - |s+| * relative_margin`` or ``s + absolute_margin > s+``.
  Default: relative_margin 0.05 (keep negatives at least 5% below the positive, the NV-Retriever
  "TopK-PercPos 95%" setting that sentence-transformers recommends), absolute margin off. A
  positive the retriever did not return in its top ``rank_max`` scores below every candidate, so
  with a retrieval-score guard every candidate outranks it and is skipped (counted as
  ``positive_not_retrieved``); that is the rule applied exactly, not a special case.
- Sampling: ``top`` keeps the first ``num_negatives`` surviving candidates in rank order;
  ``random`` draws ``num_negatives`` of them with a generator seeded by (seed, qid, pid), so a
  record never depends on which other records share its shard. A record with fewer survivors than
  ``num_negatives`` is dropped and counted (``too_few_negatives``), since `repro train` needs the
  same number of negatives in every example.
- Teacher: a sentence-transformers ``CrossEncoder`` (local folder or cached hub ID, offline),
  scoring (query, text) pairs in batches; raw logits by default (what MarginMSE distils), or the
  model's own activation (``teacher_activation="model"``, e.g. a sigmoid). bf16 on a GPU.

Output folder: ``part-NNNNN.jsonl`` shards of ``shard_size`` queries each, written atomically,
each followed by ``.state/part-NNNNN.jsonl.stats.json`` (its checksum and counts). A run killed at
any moment resumes by keeping finished shards and redoing the rest; since a shard depends only on
its own queries, the resumed output is byte-identical to an uninterrupted one. This is
`repro.encode.documents`' shard-and-stats scheme (``_chunks``, atomic writes, checksummed stats).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro import defaults, engines
from repro.encode.documents import _chunks
from repro.errors import ReproError
from repro.manifest import config_digest, manifest_path, read_manifest, sha256_file, write_manifest
from repro.outputs import atomic_write, remove_stale_temps, write_text

log = logging.getLogger(__name__)

STATE = ".state"
SAMPLING = ("top", "random")
TEACHER_ACTIVATIONS = ("logits", "model")


def shard_name(index: int) -> str:
    return f"part-{index:05d}.jsonl"


@dataclass
class MineConfig:
    """Everything the mined records depend on (the manifest's config; a resume must match it)."""

    index: str
    queries: str
    qrels: str
    corpus: str
    model: str | None = None  # query encoder for impact / Seismic indexes
    topic_format: str = "auto"
    corpus_format: str = "auto"
    rank_min: int = 0
    rank_max: int = 100
    num_negatives: int = 8
    sampling: str = "top"
    seed: int = 42
    relative_margin: float | None = 0.05
    absolute_margin: float | None = None
    min_rel: int = 1
    query_max_length: int = defaults.QUERY_MAX_LENGTH
    teacher: str | None = None
    teacher_batch_size: int = 32
    teacher_max_length: int | None = 512
    teacher_activation: str = "logits"
    shard_size: int = 1000
    settings: dict[str, Any] = field(default_factory=dict)  # engine search settings (Seismic)

    def validate(self) -> None:
        if not 0 <= self.rank_min < self.rank_max:
            raise ReproError("need 0 <= --rank-min < --rank-max")
        if self.num_negatives < 1:
            raise ReproError("--num-negatives must be at least 1")
        if self.sampling not in SAMPLING:
            raise ReproError(f"unknown --sampling {self.sampling!r}; choose one of {', '.join(SAMPLING)}")
        for name in ("relative_margin", "absolute_margin"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ReproError(f"--{name.replace('_', '-')} must be >= 0 (or 'none' to turn it off)")
        if self.teacher_activation not in TEACHER_ACTIVATIONS:
            raise ReproError(f"unknown --teacher-activation {self.teacher_activation!r}")
        if self.shard_size < 1 or self.teacher_batch_size < 1:
            raise ReproError("--shard-size and --teacher-batch-size must be at least 1")


@dataclass
class Counts:
    queries: int = 0
    queries_without_positive: int = 0
    records: int = 0
    candidates: int = 0
    skipped_positive: int = 0
    skipped_margin: int = 0
    positive_not_retrieved: int = 0
    too_few_negatives: int = 0
    missing_text: int = 0

    def add(self, other: "Counts") -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)


def guard_threshold(reference: float, relative_margin: float | None, absolute_margin: float | None) -> float | None:
    """The highest score a candidate may have and still count as a negative (None: no guard)."""
    limits = []
    if relative_margin is not None:
        limits.append(reference - abs(reference) * relative_margin)
    if absolute_margin is not None:
        limits.append(reference - absolute_margin)
    return min(limits) if limits else None


def select_negatives(candidates: list[tuple[str, float]], reference: float | None, cfg: MineConfig,
                     qid: str, pid: str, counts: Counts) -> list[tuple[str, float]]:
    """Apply the guard, then the sampling rule, to candidates already stripped of positives.

    ``reference`` None = the positive was not retrieved (its score is below every candidate's).
    Candidates are (docid, score) in rank order; the guard uses the same kind of score as
    ``reference``. Equal to the limit is kept, as in sentence-transformers (it removes ``>``).
    """
    guarded = cfg.relative_margin is not None or cfg.absolute_margin is not None
    if guarded and reference is None:
        counts.skipped_margin += len(candidates)
        return []
    limit = guard_threshold(reference, cfg.relative_margin, cfg.absolute_margin) if guarded else None
    kept = [c for c in candidates if limit is None or not c[1] > limit]
    counts.skipped_margin += len(candidates) - len(kept)
    if cfg.sampling == "top":
        return kept[: cfg.num_negatives]
    if len(kept) <= cfg.num_negatives:
        return kept
    rng = random.Random(f"{cfg.seed}:{qid}:{pid}")  # str seeds are hashed with SHA-512: stable across runs
    picks = sorted(rng.sample(range(len(kept)), cfg.num_negatives))
    return [kept[i] for i in picks]


# --- retrieval ----------------------------------------------------------------------------------
class Retriever:
    """Top-k (docid, float score) per query from a repro index of any engine, under the tie rule."""

    def __init__(self, cfg: MineConfig, threads: int | None = None, memory: str | None = None) -> None:
        from repro.index.build import index_factor, read_index_manifest
        from repro.search.run import search_settings

        self.index = Path(cfg.index)
        meta = read_index_manifest(self.index)
        self.kind, self.engine = meta["config"]["kind"], engines.of_index(meta)
        self.threads, self.memory, self.hits = defaults.threads(threads), memory, cfg.rank_max
        self.encoder = None
        if self.kind == "bm25":
            if cfg.model:
                raise ReproError("this is a BM25 index: mining needs no --model", self.index)
            self.settings: dict[str, Any] = {}
        else:
            if not cfg.model:
                raise ReproError(f"this is a {engines.get(self.engine).display} SPLADE index: give --model to "
                                 "encode the queries", self.index)
            from repro.encode.queries import query_encoder

            self.factor = index_factor(meta, self.index)
            self.settings = search_settings(self.engine, self.index, **cfg.settings)
            self.encoder = query_encoder(cfg.model, max_length=cfg.query_max_length, threads=threads)

    def search(self, topics: dict[str, str]) -> dict[str, list[tuple[str, float]]]:
        if self.kind == "bm25":
            from repro.engines.lucene import search_topics

            cleaned = {qid: " ".join(text.split()) for qid, text in topics.items()}
            live = {qid: text for qid, text in cleaned.items() if text}
            found = search_topics(self.index, live, kind="bm25", hits=self.hits, threads=self.threads,
                                  memory=self.memory) if live else {}
        else:
            vectors = dict(zip(topics, self.encoder.encode(list(topics.values()), factor=self.factor, names=list(topics),
                                                           kind="query")))
            live = {qid: v for qid, v in vectors.items() if any(w > 0 for w in v.values())}
            module = engines.get(self.engine).load()
            found = module.search_many(self.index, live, hits=self.hits, threads=self.threads,
                                       settings=self.settings, memory=self.memory) if live else {}
        return {qid: [(doc, float(score)) for doc, score in found.get(qid, [])] for qid in topics}


# --- teacher ------------------------------------------------------------------------------------
def load_teacher(name: str, max_length: int | None = None, device: str | None = None):
    """A CrossEncoder from a local folder or an already-cached hub ID, never touching the network."""
    import torch
    from sentence_transformers import CrossEncoder

    kwargs: dict[str, Any] = {}
    if torch.cuda.is_available() and (device is None or str(device).startswith("cuda")):
        kwargs["model_kwargs"] = {"dtype": torch.bfloat16}  # bf16 on a GPU: ranking-neutral, 2x throughput
    try:
        return CrossEncoder(str(name), local_files_only=True, max_length=max_length, device=device, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ReproError(f"cannot load cross-encoder {str(name)!r} offline: not a usable local folder and not "
                         f"in the Hugging Face cache ({first})") from err


def teacher_scores(teacher, pairs: list[tuple[str, str]], batch_size: int, activation: str,
                   progress: bool = False) -> list[float]:
    """CrossEncoder.predict over (query, text) pairs; raw logits unless the model's activation is asked for."""
    import torch

    if not pairs:
        return []
    kwargs = {"activation_fn": torch.nn.Identity()} if activation == "logits" else {}
    scores = teacher.predict(pairs, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True, **kwargs)
    return [float(s) for s in scores.reshape(-1)]


# --- shards -------------------------------------------------------------------------------------
def finished_shards(out: Path) -> dict[int, dict[str, Any]]:
    """Shards whose file and stats both exist and agree; anything else is redone."""
    done: dict[int, dict[str, Any]] = {}
    state = out / STATE
    if state.is_dir():
        for stats_file in sorted(state.glob("part-*.jsonl.stats.json")):
            stats = json.loads(stats_file.read_text(encoding="utf-8"))
            shard = out / shard_name(stats["shard"])
            if shard.exists() and sha256_file(shard) == stats["sha256"]:
                done[stats["shard"]] = stats
    return done


def _query_digest(qids: list[str], topics: dict[str, str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for qid in qids:
        digest.update(json.dumps([qid, topics[qid]], ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def mine_shard(cfg: MineConfig, qids: list[str], topics: dict[str, str], positives: dict[str, list[str]],
               retriever: Retriever, corpus, teacher=None, progress: bool = False) -> tuple[list[dict[str, Any]], Counts]:
    """The records of one shard of queries (depends on nothing outside these queries)."""
    counts = Counts(queries=len(qids))
    hits = retriever.search({qid: topics[qid] for qid in qids})
    drafts: list[dict[str, Any]] = []
    for qid in qids:
        pos_ids = positives.get(qid, [])
        if not pos_ids:
            counts.queries_without_positive += 1
            continue
        ranked = hits.get(qid, [])
        retrieval = dict(ranked)
        window = ranked[cfg.rank_min: cfg.rank_max]
        judged = set(pos_ids)
        candidates = [(d, s) for d, s in window if d not in judged]
        counts.skipped_positive += len(window) - len(candidates)
        for pid in pos_ids:
            positive = corpus.get(pid)
            if not positive or not positive.strip():  # unknown id, or an empty document (Cranfield has some)
                counts.missing_text += 1
                continue
            counts.candidates += len(candidates)
            if pid not in retrieval:
                counts.positive_not_retrieved += 1
            drafts.append({"qid": qid, "pid": pid, "positive": positive, "candidates": candidates,
                           "reference": retrieval.get(pid)})
    if teacher is not None:
        # Score the positive and every candidate once; the guard then runs on teacher scores.
        pairs, spans = [], []
        for d in drafts:
            texts = [t if (t := corpus.get(doc)) and t.strip() else None for doc, _ in d["candidates"]]
            d["candidate_texts"] = texts
            start = len(pairs)
            pairs.append((topics[d["qid"]], d["positive"]))
            pairs.extend((topics[d["qid"]], t) for t in texts if t is not None)
            spans.append((start, len(pairs)))
        scores = teacher_scores(teacher, pairs, cfg.teacher_batch_size, cfg.teacher_activation, progress)
        for d, (start, end) in zip(drafts, spans):
            d["teacher_positive"] = scores[start]
            known = iter(scores[start + 1: end])
            d["teacher"] = {doc: next(known) for (doc, _), t in zip(d["candidates"], d["candidate_texts"]) if t is not None}
    records = []
    for d in drafts:
        qid, pid = d["qid"], d["pid"]
        retrieval_of = dict(d["candidates"])
        if teacher is not None:
            pool = [(doc, d["teacher"][doc]) for doc, _ in d["candidates"] if doc in d["teacher"]]
            counts.missing_text += len(d["candidates"]) - len(pool)
            chosen = select_negatives(pool, d["teacher_positive"], cfg, qid, pid, counts)
        else:
            pool = [(doc, s) for doc, s in d["candidates"] if (corpus.get(doc) or "").strip()]
            counts.missing_text += len(d["candidates"]) - len(pool)
            chosen = select_negatives(pool, d["reference"], cfg, qid, pid, counts)
        if len(chosen) < cfg.num_negatives:
            counts.too_few_negatives += 1
            continue
        rec: dict[str, Any] = {
            "qid": qid, "query": topics[qid], "pid": pid, "positive": d["positive"],
            "nids": [doc for doc, _ in chosen], "negatives": [corpus.get(doc) for doc, _ in chosen],
            "retrieval_scores": [d["reference"]] + [retrieval_of[doc] for doc, _ in chosen],
        }
        if teacher is not None:
            rec["scores"] = [d["teacher_positive"]] + [score for _, score in chosen]
        records.append(rec)
    counts.records = len(records)
    return records, counts


def write_shard(out: Path, index: int, records: list[dict[str, Any]], counts: Counts, input_sha256: str) -> None:
    """The shard atomically, then its stats (a shard without stats is redone on resume)."""
    target = out / shard_name(index)
    with atomic_write(target) as handle:
        for rec in records:
            handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
    stats = {"shard": index, "sha256": sha256_file(target), "input_sha256": input_sha256, **asdict(counts)}
    write_text(out / STATE / (shard_name(index) + ".stats.json"), json.dumps(stats, sort_keys=True) + "\n")


def _prepare(out: Path, config: dict[str, Any], force: bool) -> None:
    cfg_file = out / STATE / "config.json"
    if out.exists() and force:
        shutil.rmtree(out)
    if out.exists() and manifest_path(out).exists() and read_manifest(out).get("stage") == "mine":
        if read_manifest(out)["config_digest"] == config_digest(config):
            return
        raise ReproError("mined data made with different settings is here; pass --force to redo it", out)
    if out.exists() and not cfg_file.exists() and any(p for p in out.iterdir() if p.name != STATE):
        raise ReproError("output folder exists and is not a `repro mine` output; pass --force or choose another", out)
    if cfg_file.exists():
        previous = json.loads(cfg_file.read_text(encoding="utf-8"))
        if previous.get("digest") != config_digest(config):
            raise ReproError("a partial `repro mine` run with different settings is here; pass --force to start over",
                             out)
    try:
        (out / STATE).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReproError(f"cannot create output folder: {err.strerror}", out) from err
    remove_stale_temps(out)
    remove_stale_temps(out / STATE)
    if not cfg_file.exists():
        write_text(cfg_file, json.dumps({"config": config, "digest": config_digest(config)}, sort_keys=True) + "\n")


def read_positives(qrels: str, min_rel: int) -> dict[str, list[str]]:
    from repro.formats.qrels import read_qrels

    judged = read_qrels(qrels)
    return {qid: sorted(d for d, rel in docs.items() if rel >= min_rel) for qid, docs in judged.by_query.items()}


def mine(cfg: MineConfig, output: str | Path, *, threads: int | None = None, memory: str | None = None,
         device: str | None = None, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Mine hard negatives into ``output`` (resuming a killed run with the same settings); return the manifest."""
    from tqdm import tqdm

    from repro.formats.topics import read_topics
    from repro.train.data import CorpusTexts

    cfg.validate()
    out = Path(output)
    config = asdict(cfg)
    if not force and out.is_dir() and manifest_path(out).exists():
        existing = read_manifest(out)
        if existing.get("stage") == "mine" and existing.get("config_digest") == config_digest(config):
            log.info("mined data already complete with these settings; nothing to do")
            return existing
    topics = read_topics(cfg.queries, cfg.topic_format)
    positives = read_positives(cfg.qrels, cfg.min_rel)
    retriever = Retriever(cfg, threads=threads, memory=memory)  # checks index and model before any output
    teacher = load_teacher(cfg.teacher, cfg.teacher_max_length, device) if cfg.teacher else None
    corpus = CorpusTexts(cfg.corpus, cfg.corpus_format)
    _prepare(out, config, force)
    done = finished_shards(out)
    if done:
        log.info("resuming: %d finished shard(s) kept", len(done))
    totals = Counts()
    qids_all = list(topics)
    bar = tqdm(desc="mine", unit="query", total=len(qids_all), disable=not progress, dynamic_ncols=True)
    shards = []
    try:
        for index, qids in enumerate(_chunks(iter(qids_all), cfg.shard_size)):
            digest = _query_digest(qids, topics)
            stats = done.get(index)
            if stats is None or stats.get("input_sha256") != digest:
                if stats is not None:
                    log.warning("%s: its queries changed since it was written; mining it again", shard_name(index))
                records, counts = mine_shard(cfg, qids, topics, positives, retriever, corpus, teacher, progress=False)
                write_shard(out, index, records, counts, digest)
                stats = {"shard": index, "sha256": sha256_file(out / shard_name(index)), **asdict(counts)}
            totals.add(Counts(**{k: stats[k] for k in asdict(Counts())}))
            shards.append({"file": shard_name(index), "records": stats["records"], "sha256": stats["sha256"]})
            bar.update(len(qids))
    finally:
        bar.close()
        corpus.close()
    if totals.records == 0:
        raise ReproError("no training records mined: no query kept enough negatives "
                         f"({asdict(totals)}); check the qrels ids against the corpus, --rank-max and the margins",
                         out)
    return write_manifest(out, "mine", config, index_kind=retriever.kind, engine=retriever.engine,
                          teacher=cfg.teacher, shards=shards, **asdict(totals))


def shard_files(folder: Path) -> list[Path]:
    """The record files of a complete `repro mine` output, in order (checked against its manifest)."""
    meta = read_manifest(folder, "mine")
    files = []
    for shard in meta["shards"]:
        path = folder / shard["file"]
        if not path.is_file() or sha256_file(path) != shard["sha256"]:
            raise ReproError("shard missing or changed since `repro mine` wrote it", path)
        files.append(path)
    return files
