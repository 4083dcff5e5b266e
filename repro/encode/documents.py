"""`repro encode`: a corpus -> an Anserini JsonVectorCollection, sharded, resumable, verified.

The folder layout is `repro.formats.collection`'s. Shard k holds documents [k*S, (k+1)*S) of the corpus in corpus order, so a run killed at any
moment (SIGKILL included) resumes by skipping finished shards and redoing the one in progress:
each shard appears by atomic rename only when complete, and its encoding depends only on its
own documents, so the result is byte-identical to an uninterrupted run. Each shard's stats keep a
fingerprint of its input documents: a shard whose documents changed before the resume is redone.
"""

from __future__ import annotations

import json
import logging
import sys
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from repro import defaults
from repro.distributed import rank_and_world
from repro.errors import BadInputError, ReproError
from repro.formats.collection import EMPTY_TOKEN, SHARDS, STATE, record_line, shard_name, weight_units
from repro.formats.corpus import Doc, iter_docs
from repro.formats.textio import ReadCounts
from repro.manifest import config_digest, manifest_path, read_manifest, sha256_file, write_manifest
from repro.outputs import (TMP_PREFIX, atomic_write, refuse_overlap, remove_stale_temps, swap_in, write_text,
                           written_by_repro)

log = logging.getLogger(__name__)

def _chunks(docs: Iterator[Doc], size: int) -> Iterator[list[Doc]]:
    chunk: list[Doc] = []
    for doc in docs:
        chunk.append(doc)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def input_digest(docs: list[Doc]) -> str:
    """Fingerprint of a shard's input (ids and texts): a resumed run redoes a shard whose input changed."""
    import hashlib

    digest = hashlib.sha256()
    for doc in docs:
        digest.update(json.dumps([doc.id, doc.text], ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


class _ShardWriter:
    """Writes finished shards in a background thread so the model never waits for JSON or disk."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.jobs: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def submit(self, index: int, docs: list[Doc], vectors: list[dict[str, int]], facts: dict[str, int]) -> None:
        self._raise()
        self.jobs.put((index, docs, vectors, facts))

    def close(self, raise_error: bool = True) -> None:
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()
        if raise_error:
            self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is not None:
                continue
            try:
                write_shard(self.out, *job)
            except BaseException as err:  # surfaced to the main thread on the next submit/close
                self.error = err


def write_shard(out: Path, index: int, docs: list[Doc], vectors: list[dict[str, int]], facts: dict[str, int]) -> None:
    """Write shard ``index`` atomically, then its stats (a shard without stats is redone on resume)."""
    target = out / SHARDS / shard_name(index)
    weight_total = 0
    with atomic_write(target) as handle:
        for doc, vec in zip(docs, vectors):
            handle.write(record_line(doc.id, doc.text, vec) + "\n")
            weight_total += weight_units(vec)
    stats = {
        "shard": index,
        "docs": len(docs),
        "weight_total": weight_total,
        "nonzeros": sum(len(v) for v in vectors),
        "sha256": sha256_file(target),
        "first_id": docs[0].id,
        "last_id": docs[-1].id,
        "input_sha256": input_digest(docs),
        **facts,
    }
    write_text(out / STATE / (shard_name(index) + ".stats.json"), json.dumps(stats, sort_keys=True) + "\n")


def finished_shards(out: Path) -> dict[int, dict[str, Any]]:
    """Shards whose file and stats both exist and agree; anything else will be redone."""
    done: dict[int, dict[str, Any]] = {}
    state = out / STATE
    if not state.is_dir():
        return done
    for stats_file in sorted(state.glob("part-*.jsonl.stats.json")):
        stats = json.loads(stats_file.read_text(encoding="utf-8"))
        shard = out / SHARDS / shard_name(stats["shard"])
        if shard.exists() and sha256_file(shard) == stats["sha256"]:
            done[stats["shard"]] = stats
    return done


def shard_heads(shard_stats: Iterable[dict[str, Any]]) -> set[str]:
    """The MLM heads the shards were encoded with (shards written before the option: fp32)."""
    return {stats.get("precision", "fp32") for stats in shard_stats}


def _keep_head(encoder: Any, precision: str, done: dict[int, dict[str, Any]], out: Path) -> None:
    """A resumed collection keeps the head its finished shards were made with: ``auto`` follows
    them; an explicit other head is refused (the weights agree but for rare .5-boundary flips, and
    one collection should come from one head)."""
    heads = shard_heads(done.values())
    if precision == "auto" and len(heads) == 1:
        encoder.use_precision(next(iter(heads)))
    if heads - {encoder.precision}:
        made = sorted(heads)
        raise ReproError(f"the finished shards here were encoded with the {', '.join(made)} head and this run uses "
                         f"{encoder.precision}; pass --precision {made[0]} to resume, or --force to redo them", out)


def encode_corpus(
    source: str,
    out: Path,
    *,
    model: str,
    fmt: str = "auto",
    factor: float = defaults.DOC_FACTOR,
    max_length: int | None = None,
    batch_size: int = defaults.BATCH_SIZE,
    shard_size: int = defaults.SHARD_SIZE,
    device: str | None = None,
    dtype: str = "float32",
    precision: str = "auto",
    threads: int | None = None,
    skip_bad_lines: bool = False,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Encode a corpus into ``out`` (resuming a killed run with the same config); return the manifest."""
    out = Path(out)
    refuse_overlap(out, [source, model])
    if out.exists() and not out.is_dir():
        raise ReproError("the output is an existing file; encode writes a collection folder: give a folder path", out)
    config = {
        "source": str(source),
        "format": fmt,
        "model": str(model),
        "factor": factor,
        "max_length": max_length,
        "batch_size": batch_size,
        "shard_size": shard_size,
        "dtype": dtype,
        # Collections made without --precision mixed keep the digest they had before the option (the
        # weights are the same); the head each shard was made with is in its stats and the manifest.
        **({"precision": precision} if precision == "mixed" else {}),
    }
    if not force and (existing := _complete_manifest(out)) is not None:
        if existing.get("config_digest") != config_digest(config):
            raise ReproError("a complete collection made with different settings is here; pass --force to redo it", out)
        if _same_input(out, source, fmt, skip_bad_lines, shard_size):
            log.info("collection already complete with these settings and this corpus; nothing to do")
            return existing
        log.warning("the corpus changed since the collection was written; re-encoding the shards that changed")
    # Before the model (and torch) loads: a missing or malformed corpus fails in well under a second.
    _check_corpus_start(source, fmt, skip_bad_lines)
    target = _rebuild_target(out) if force and out.is_dir() and any(out.iterdir()) else out
    from repro.encode.torch_encoder import SpladeEncoder

    # Load the model first: a missing model must not leave an empty output folder behind.
    encoder = SpladeEncoder(model, max_length=max_length, device=device, dtype=dtype, threads=threads,
                            precision=precision)
    # Without a config.json nothing finished is here yet: on a bad corpus this run leaves nothing behind.
    fresh, existed = target != out or not (out / STATE / "config.json").exists(), target.exists()
    _prepare_output(target, config)
    rank, world = rank_and_world()
    done = finished_shards(target)
    if done:
        log.info("resuming: %d finished shard(s) kept", len(done))
        _keep_head(encoder, precision, done, target)
    read_counts = ReadCounts()
    bar = _progress(progress, len(done) * shard_size)
    writer = _ShardWriter(target)
    total_docs = 0
    try:
        for index, docs in enumerate(_chunks(iter_docs(source, fmt, skip_bad_lines, read_counts), shard_size)):
            total_docs += len(docs)
            if index % world != rank:
                continue
            if index in done:
                if done[index].get("input_sha256") == input_digest(docs):
                    continue
                log.warning("%s: its input documents changed since it was written; encoding it again", shard_name(index))
            before = asdict(encoder.stats)
            vectors = encoder.encode([d.text for d in docs], factor=factor, batch_size=batch_size,
                                     names=[d.id for d in docs], kind="document")
            facts = {k: v - before[k] for k, v in asdict(encoder.stats).items() if k in ("empty", "truncated", "quantized_empty")}
            writer.submit(index, docs, vectors, {**facts, "precision": encoder.precision,
                                                 "linear_kernel": encoder.linear_kernel})
            bar.update(len(docs))
        if total_docs == 0:
            raise BadInputError("corpus has no documents", source)
    except ReproError as err:
        # A bad or unreadable corpus must not leave a half collection behind in a folder this run
        # created; a failed write (disk full) keeps the finished shards, so the run can resume.
        if fresh and err is not writer.error:
            writer.close(raise_error=False)
            _remove_output(target, keep_folder=existed and target == out)
        raise
    except BaseException:
        if target != out:  # an interrupted --force rebuild: the old collection stays, the temp goes
            writer.close(raise_error=False)
            _remove_output(target, keep_folder=False)
        raise
    finally:
        # With an error already on its way, a writer error must not replace it (it is the cause's echo).
        writer.close(raise_error=sys.exc_info()[0] is None)
        bar.close()
    info = _finish(target, config, total_docs, shard_size, read_counts, encoder.max_length)
    if target != out:
        swap_in(target, out)
        info["artefact"] = out.name
        write_text(manifest_path(out), json.dumps(info, indent=2, sort_keys=True, default=str) + "\n")
    return info


def _check_corpus_start(source: str, fmt: str, skip_bad_lines: bool) -> None:
    """Read up to the first document: a missing file, a wrong format or a bad first line stops here."""
    for _ in iter_docs(source, fmt, skip_bad_lines, ReadCounts()):
        break


def _rebuild_target(out: Path) -> Path:
    """Where ``--force`` builds the new collection: beside ``out``, swapped in only when complete.

    Only an earlier repro collection (complete or partial) may be replaced; under several ranks the
    swap (which deletes the old one) has no single owner, so --force is refused there.
    """
    if not (written_by_repro(out, "encode") or _is_ours(out, layout_only=True)):
        raise ReproError("the output folder is not empty and is not a repro collection; --force replaces only "
                         "those: move its files away or choose another output", out)
    if rank_and_world()[1] > 1:
        raise ReproError("--force under several ranks: remove the old collection first (on one process), then "
                         "encode without --force", out)
    remove_stale_temps(out.parent, out.name)  # e.g. the rebuild folder of a killed --force run
    return out.parent / f"{TMP_PREFIX}{out.name}.rebuild"


def _same_input(out: Path, source: str, fmt: str, skip_bad_lines: bool, shard_size: int) -> bool:
    """Whether the corpus still holds exactly the documents each finished shard was made from.

    Reading the corpus costs a small fraction of encoding it, and it is the only way to notice that a
    file with the same name now holds other documents.
    """
    done = finished_shards(out)
    count = 0
    for index, docs in enumerate(_chunks(iter_docs(source, fmt, skip_bad_lines), shard_size)):
        count = index + 1
        if done.get(index, {}).get("input_sha256") != input_digest(docs):
            return False
    return count == len(done)


def _progress(enabled: bool, initial: int):
    from tqdm import tqdm

    return tqdm(desc="encode", unit="doc", initial=initial, disable=not enabled, smoothing=0.05, dynamic_ncols=True)


def _prepare_output(out: Path, config: dict[str, Any]) -> None:
    """Create the layout, or check that an existing partial run used the same config (nothing is deleted)."""
    cfg_file = out / STATE / "config.json"
    if out.exists() and not cfg_file.exists() and not _is_ours(out, layout_only=True) and any(out.iterdir()):
        raise ReproError("output folder exists, is not empty and is not a repro collection; choose another "
                         "output or move its files away", out)
    if cfg_file.exists():
        previous = json.loads(cfg_file.read_text(encoding="utf-8"))
        if previous.get("digest") != config_digest(config):
            raise ReproError(
                "a partial collection made with different settings is here; pass --force to start over", out
            )
    try:
        (out / SHARDS).mkdir(parents=True, exist_ok=True)
        (out / STATE).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReproError(f"cannot create output folder: {err.strerror}", out) from err
    remove_stale_temps(out.parent, out.name)  # a killed run's temps of this output only
    remove_stale_temps(out)  # e.g. a manifest being written when the run was killed
    remove_stale_temps(out / SHARDS)
    remove_stale_temps(out / STATE)
    if not cfg_file.exists():
        write_text(cfg_file, json.dumps({"config": config, "digest": config_digest(config)}, sort_keys=True) + "\n")


def _is_ours(out: Path, layout_only: bool = False) -> bool:
    """Whether ``out`` holds a (partial) repro collection; ``layout_only``: also one killed before its config."""
    if (out / STATE / "config.json").exists():
        return True
    if not layout_only or not out.is_dir():
        return False
    return all(item.name in (SHARDS, STATE) and item.is_dir() and not any(
        f for f in item.iterdir() if not f.name.startswith(TMP_PREFIX)) for item in out.iterdir())


def _remove_output(out: Path, keep_folder: bool) -> None:
    """Remove what this run created: the whole folder, or only our layout in a folder the user made.

    Only rank 0 deletes: the other ranks may still be writing their shards.
    """
    import shutil

    from repro.distributed import is_main_process

    if not is_main_process():
        return
    for item in ((out / SHARDS, out / STATE) if keep_folder else (out,)):
        shutil.rmtree(item, ignore_errors=True)


def _complete_manifest(out: Path) -> dict[str, Any] | None:
    if out.is_dir() and manifest_path(out).exists() and (out / SHARDS).is_dir():
        return read_manifest(out, "encode")
    return None


def _finish(
    out: Path, config: dict[str, Any], total_docs: int, shard_size: int, read_counts: ReadCounts, max_length: int
) -> dict[str, Any]:
    expected = (total_docs + shard_size - 1) // shard_size
    done = finished_shards(out)
    for index in [i for i in done if i >= expected]:  # the corpus shrank: these shards are ours and stale
        (out / SHARDS / shard_name(index)).unlink(missing_ok=True)
        (out / STATE / (shard_name(index) + ".stats.json")).unlink(missing_ok=True)
        del done[index]
    missing = [i for i in range(expected) if i not in done]
    if missing:
        rank, world = rank_and_world()
        if world > 1:
            log.info("rank %d done; %d shard(s) still being written by other ranks", rank, len(missing))
            return {"complete": False, "missing_shards": missing}
        raise ReproError(f"{len(missing)} shard(s) missing after encoding (first: {shard_name(missing[0])})", out)
    shards = [done[i] for i in range(expected)]
    totals = {key: sum(s[key] for s in shards) for key in ("docs", "weight_total", "nonzeros", "empty", "truncated", "quantized_empty")}
    return write_manifest(
        out,
        "encode",
        config,
        documents=totals["docs"],
        model_max_length=max_length,
        weight_total=totals["weight_total"],
        nonzeros=totals["nonzeros"],
        empty_documents=totals["empty"],
        quantized_to_nothing=totals["quantized_empty"],
        truncated_documents=totals["truncated"],
        head_precision=sorted(shard_heads(shards)),  # mixed: repro.encode.mixed_head
        # onednn or blas (repro.encode.cpu_linear); shards from before the choice ran torch's BLAS
        linear_kernel=sorted({s.get("linear_kernel", "blas") for s in shards}),
        empty_token=EMPTY_TOKEN,
        bad_utf8_lines=read_counts.bad_utf8_lines,
        first_bad_utf8_line=read_counts.first_bad_utf8,
        skipped_lines=read_counts.skipped_lines,
        skipped_examples=read_counts.skipped_examples,
        shards=[{"file": f"{SHARDS}/{shard_name(s['shard'])}", "docs": s["docs"], "sha256": s["sha256"], "weight_total": s["weight_total"]} for s in shards],
    )
