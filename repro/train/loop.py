"""One SPLADE training run: model + data + SpladeLoss + SparseEncoderTrainer, checkpoints, resume, output folder.

Folders: the finished model goes to `OUTPUT` (written atomically at the end: a SparseEncoder folder
with README.md model card, diagnostics.jsonl, diagnostics.png, training-summary.json and a
manifest beside it). Everything a killed run needs to continue lives in `OUTPUT.work/`:
`checkpoints/checkpoint-N` (weights, optimizer, scheduler, RNG states, trainer state with the
step, i.e. the position in the data), `data-cache/` (the Arrow copy of the training set),
`config.json` (the run's config, which `--resume` must match) and the diagnostics JSONL so far.

Exact resume relies on the Hugging Face Trainer: it restores optimizer, scheduler, RNG states and
global step from the checkpoint and skips the batches already seen in the current epoch; the
batch sampler is seeded with seed + epoch, so the skipped prefix is the same. tests/test_train.py
checks that a SIGKILLed and resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from repro.distributed import is_main_process
from repro.outputs import prepare_output, refuse_overlap, write_text
from repro.errors import ReproError
from repro.train.config import TrainConfig

log = logging.getLogger("repro.train")

# Settings that may differ between the interrupted run and its --resume without changing the result.
_RESUME_FREE = {"resume", "force", "save_total_limit", "push_to_hub"}


def work_dir(output: str | Path) -> Path:
    out = Path(output)
    return out.with_name(out.name + ".work")


def _prepare_folders(cfg: TrainConfig) -> tuple[Path, Path]:
    out, work = Path(cfg.output), work_dir(cfg.output)
    inputs = [cfg.base_model, cfg.data, cfg.queries, cfg.corpus]
    prepare_output(out, "train", inputs=inputs, force=cfg.force, folder=True)
    refuse_overlap(work, inputs)
    saved = work / "config.json"
    if cfg.resume:
        if not saved.exists():
            raise ReproError("nothing to resume: no earlier run of this output (its .work folder is missing)", work)
        old = json.loads(saved.read_text(encoding="utf-8"))
        new = cfg.to_dict()
        diff = sorted(k for k in set(old) | set(new) if k not in _RESUME_FREE and old.get(k) != new.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:4])
            raise ReproError(f"--resume needs the same settings as the interrupted run; changed: {shown}", saved)
    else:
        if work.exists():
            if not cfg.force:
                raise ReproError("an earlier run left its work folder here; pass --resume to continue it or --force to start over", work)
            if not saved.exists():  # not a folder repro train made: never delete it
                raise ReproError("this folder is in the way of the training work folder and was not made by "
                                 "repro train (no config.json); move it away", work)
            if is_main_process():
                shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        write_text(saved, json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    return out, work


def build_loss(model, cfg: TrainConfig):
    """SpladeLoss around the ranking loss; under several ranks, gathered so that N x B equals 1 x N*B.

    With world size W > 1: MNRL scores each rank's queries against the documents of ALL ranks
    (sentence-transformers' ``gather_across_devices``), and the FLOPS regulariser is computed on
    the embeddings gathered from all ranks (`GatheredFlops`), i.e. on the global batch: its value
    is the one a single process with the whole batch computes, whatever W (docs/training.md has
    the gradient arithmetic). MarginMSE and KL are per-example means and need no gathering.
    """
    from sentence_transformers.sparse_encoder.losses import (
        SparseDistillKLDivLoss,
        SparseMarginMSELoss,
        SparseMultipleNegativesRankingLoss,
        SpladeLoss,
    )

    from repro.distributed import rank_and_world

    several = rank_and_world()[1] > 1
    if cfg.loss == "mnrl":
        inner = SparseMultipleNegativesRankingLoss(model, gather_across_devices=several)
    elif cfg.loss == "margin-mse":
        inner = SparseMarginMSELoss(model)
    else:
        inner = SparseDistillKLDivLoss(model, temperature=cfg.kl_temperature)
    # inference-free: lambda_q is 0 (config validation), the static query table is not regularised
    loss = SpladeLoss(model, loss=inner, document_regularizer_weight=cfg.lambda_d,
                      query_regularizer_weight=0.0 if cfg.inference_free else cfg.lambda_q)
    if several:
        loss.document_regularizer = gathered_flops(model)
        loss.query_regularizer = gathered_flops(model)
    return loss


def gathered_flops(model):
    """FLOPS over the global batch: sum_j (mean over ALL ranks' rows of w_j)^2, with gradients to every rank.

    The all-gather's backward sums each rank's gradient into the rows it contributed (W identical
    losses -> W x dF/dE_r), and DDP then averages parameter gradients over the W ranks, so the
    update is exactly dF/dtheta of the single-process FLOPS on the whole batch.
    """
    from sentence_transformers.sparse_encoder.losses import FlopsLoss
    from sentence_transformers.util.distributed import all_gather_with_grad

    class GatheredFlops(FlopsLoss):
        def compute_loss_from_embeddings(self, embeddings):
            return super().compute_loss_from_embeddings(all_gather_with_grad(embeddings))

    return GatheredFlops(model)


def build_trainer(cfg: TrainConfig, work: Path):
    """Model, data, loss and trainer, wired with our callbacks; returns (trainer, parts)."""
    import torch
    import transformers
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.callbacks.splade_callbacks import (
        SpladeRegularizerWeightSchedulerCallback,
    )

    from repro.train.callbacks import DiagnosticsCallback, ExplicitRegularizerWarmup
    from repro.train.data import build_dataset
    from repro.train.model import (apply_freezing, build_inference_free, load_sparse_encoder, static_module,
                                   static_param_pattern)

    if (cfg.bf16 or cfg.fp16) and not torch.cuda.is_available():
        if cfg.fp16:
            raise ReproError("--fp16 needs a CUDA GPU; on CPU train in fp32 (default) or --bf16")
    transformers.set_seed(cfg.seed)
    model = load_sparse_encoder(cfg.base_model, max_seq_length=cfg.max_length)
    if cfg.inference_free:
        model = build_inference_free(model, cfg.static_init, cfg.freeze_static)
    elif static_module(model) is not None:
        raise ReproError("the base model is inference-free (a Router with a static query table): "
                         "pass --inference-free to continue training it", cfg.base_model)
    freeze = apply_freezing(model, cfg.freeze_encoder, cfg.freeze_embeddings)
    from repro.distributed import is_main_process, main_first, rank_and_world

    # rank 0 writes the Arrow cache first; the others then read it
    dataset, stats = main_first(lambda: build_dataset(cfg, work / "data-cache"))
    if stats.get("skipped_lines"):
        log.warning("skipped %d malformed line(s), e.g. %s", stats["skipped_lines"], "; ".join(stats.get("skipped_examples", [])[:2]))
    loss = build_loss(model, cfg)
    warmup = ExplicitRegularizerWarmup(loss, cfg.reg_warmup_steps)
    routing = {}
    if cfg.inference_free:
        # which column goes to which Router route; the static table gets its own learning rate
        routing["router_mapping"] = {c: ("query" if c == "query" else "document")
                                     for c in dataset.column_names if c != "label"}
        if not cfg.freeze_static:
            routing["learning_rate_mapping"] = {static_param_pattern(model): cfg.static_lr}
    args = SparseEncoderTrainingArguments(
        output_dir=str(work / "checkpoints"),
        max_steps=cfg.max_steps if cfg.max_steps > 0 else -1,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        warmup_steps=cfg.lr_warmup_steps,
        weight_decay=cfg.weight_decay,
        lr_scheduler_type="linear",
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=cfg.bf16,
        fp16=cfg.fp16,
        batch_sampler=BatchSamplers.NO_DUPLICATES if cfg.no_duplicates else BatchSamplers.BATCH_SAMPLER,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_strategy="steps",
        logging_steps=cfg.diagnostics_steps,
        report_to="none",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        eval_strategy="no",
        disable_tqdm=not is_main_process(),
        **routing,
        **({"ddp_backend": "gloo", "use_cpu": True} if rank_and_world()[1] > 1 and not torch.cuda.is_available() else {}),
    )
    n = min(cfg.diagnostics_texts, len(dataset))
    head = dataset.select(range(n))
    from repro.train.dev import load_dev

    dev = load_dev(cfg)
    diagnostics = DiagnosticsCallback(model, loss, work / "diagnostics.jsonl", list(head["query"]),
                                      list(head["positive"]), list(cfg.probes), cfg.diagnostics_steps, dev=dev,
                                      best_measure=cfg.best_measure, best_dir=work / "best-model" if dev else None)
    trainer = SparseEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[warmup])
    schedulers = [c for c in trainer.callback_handler.callbacks if isinstance(c, SpladeRegularizerWeightSchedulerCallback)]
    if schedulers != [warmup]:  # the trainer must not have added its silent 1/3-of-the-run default
        raise RuntimeError(f"unexpected regulariser schedulers: {schedulers}")
    # Before the ProgressCallback, so the diagnostics' numbers appear in the progress log lines.
    trainer.callback_handler.callbacks.insert(1, diagnostics)
    return trainer, {"model": model, "loss": loss, "warmup": warmup, "diagnostics": diagnostics,
                     "dataset": dataset, "read_counts": stats, "freeze": freeze}


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train, then write the model folder; returns the summary printed by the command."""
    cfg.validate()  # before the imports below load torch: a bad setting fails at once
    from repro.distributed import end_process_group, init_process_group, is_main_process, main_first

    init_process_group()
    # only rank 0 writes; the others wait for its folders (or stop with its error)
    out, work = main_first(lambda: _prepare_folders(cfg) if is_main_process() else (Path(cfg.output), work_dir(cfg.output)))
    summary = _train_and_write(cfg, out, work)
    # the trainer and its DDP wrapper (which holds the group) are unreachable by now, so they are torn
    # down inside end_process_group's time bound, not later while a frame unwinds (a hang seen there)
    end_process_group()  # the model is written: the other ranks may exit (before any upload, however long)
    if not is_main_process():
        return summary
    summary["output"] = str(out)
    summary["work"] = str(work)
    if cfg.push_to_hub:
        summary["pushed"] = push_to_hub(out, cfg.push_to_hub)
    return summary


def _train_and_write(cfg: TrainConfig, out: Path, work: Path) -> dict[str, Any]:
    """Train and (rank 0) write the model folder; the trainer lives only inside this call."""
    from repro.outputs import atomic_dir
    from repro.manifest import write_manifest
    from repro.train.callbacks import plot_curves, read_records
    from repro.train.modelcard import model_card

    trainer, parts = build_trainer(cfg, work)
    checkpoint = None
    if cfg.resume:
        ckpt_dir = work / "checkpoints"
        checkpoint = last_complete_checkpoint(ckpt_dir)
        if checkpoint is None:
            log.warning("no checkpoint saved yet in %s; starting from step 0", ckpt_dir)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - t0
    state = trainer.state
    if not is_main_process():
        return {"rank_finished": True, "steps": state.global_step}
    diagnostics = parts["diagnostics"]
    if diagnostics.last_step != state.global_step:
        diagnostics._write(diagnostics.measure(state.global_step, {"loss": result.training_loss}))
    records = read_records(work / "diagnostics.jsonl")
    steps_run = state.global_step - (int(Path(checkpoint).name.split("-")[-1]) if checkpoint else 0)
    summary = {
        "steps": state.global_step,
        "steps_this_session": steps_run,
        "seconds_this_session": round(seconds, 2),
        "seconds_per_step": round(seconds / steps_run, 4) if steps_run > 0 else None,
        "train_rows": len(parts["dataset"]),
        "skipped_lines": parts["read_counts"].get("skipped_lines", 0),
        "resumed_from": checkpoint,
        **parts["freeze"],
        "final": {k: records[-1].get(k) for k in ("nnz_q", "nnz_d", "flops", "punct_share_q", "punct_share_d",
                                                   "special_share_q", "stopword_share_q", "expansion_share_q")}
        if records else {},
        "warnings_at_end": records[-1].get("warnings", []) if records else [],
    }
    if diagnostics.dev is not None:
        summary["dev_curve"] = [{"step": r["step"], **{k: r.get(k) for k in ("dev_ndcg@10", "dev_rr@10", "nnz_q", "nnz_d")}}
                                for r in records if r.get("dev_ndcg@10") is not None]
        summary["best"] = diagnostics.best()
    with atomic_dir(out, force=True) as tmp:
        parts["model"].save(str(tmp))
        (tmp / "diagnostics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        if records:
            plot_curves(records, tmp / "diagnostics.png")
        (tmp / "training-summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if summary.get("best") and (work / "best-model").is_dir():
            shutil.copytree(work / "best-model", tmp / "best")  # a complete SparseEncoder folder
        (tmp / "README.md").write_text(model_card(cfg, summary, parts), encoding="utf-8")
    write_manifest(out, "train", cfg.to_dict(), steps=state.global_step, train_rows=summary["train_rows"],
                   skipped_lines=summary["skipped_lines"], seconds_per_step=summary["seconds_per_step"],
                   best=summary.get("best"))
    return summary


def push_to_hub(folder: Path, repo_id: str) -> str:
    """Upload the saved model folder; any failure is one line that says the model is safe on disk."""
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="repro train")
    except Exception as err:  # offline mode, no token, network: all end the same way for the user
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ReproError(f"the model is saved here, but pushing it to the hub as {repo_id!r} failed ({first}); "
                         f"push it later with: huggingface-cli upload {repo_id} {folder}", folder) from err
    return str(getattr(info, "commit_url", info))


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint whose save finished.

    The Trainer writes `checkpoint-N/` in place and `trainer_state.json` last, so a run killed while
    saving leaves a folder without it; transformers' `get_last_checkpoint` would pick that folder
    and crash on resume. Such a folder is skipped (and reported).
    """
    if not folder.is_dir():
        return None
    numbered = sorted(
        (p for p in folder.iterdir() if p.is_dir() and p.name.startswith("checkpoint-") and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for candidate in numbered:
        if (candidate / "trainer_state.json").is_file():
            return str(candidate)
        log.warning("skipping %s: its save did not finish (no trainer_state.json)", candidate)
    return None
