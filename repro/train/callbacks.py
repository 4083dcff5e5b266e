"""Trainer callbacks: the explicit FLOPS-weight warm-up, and periodic token-quality diagnostics.

The warm-up subclasses sentence-transformers' SpladeRegularizerWeightSchedulerCallback on
purpose: SparseEncoderTrainer inserts its own default (quadratic over 1/3 of ALL steps) only when
it finds no instance of that class bound to the same loss, so passing this one keeps the default
out, and `train.loop` checks that exactly one such callback is present.

Inference-free models (a Router): the sample queries are measured through the query route (the
static table: their nonzeros are their own tokens, so expansion and special-token shares are 0 by
construction, which is the true state of that side), documents through the document route, and
the probes through the DOCUMENT route: a probe shows what the MLM expands a text into, and the
query side has no MLM (through the table a probe would only echo its own tokens). Each record
says so (`query_side`, `probes_route`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from sentence_transformers.sparse_encoder.callbacks.splade_callbacks import SpladeRegularizerWeightSchedulerCallback
from transformers import TrainerCallback

from repro.encode import quality
log = logging.getLogger("repro.train")


def warmup_weight(step: int, max_value: float, warmup_steps: int) -> float:
    """Quadratic warm-up: max * (step / N)^2 for step < N, then max (N = 0: max from step 0)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return max_value
    return max_value * (step / warmup_steps) ** 2


class ExplicitRegularizerWarmup(SpladeRegularizerWeightSchedulerCallback):
    """Quadratic lambda warm-up over a fixed number of optimizer steps (not a ratio of the run)."""

    def __init__(self, loss, warmup_steps: int) -> None:
        super().__init__(loss=loss, scheduler_type="quadratic", warmup_ratio=1.0)
        self.fixed_warmup_steps = int(warmup_steps)
        self.history: list[tuple[int, float, float | None]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.total_steps = state.max_steps
        self.warmup_steps = self.fixed_warmup_steps
        self._apply(state.global_step)

    def _apply(self, step: int) -> None:
        q = None if self.max_query_regularizer_weight is None else warmup_weight(
            step, self.max_query_regularizer_weight, self.fixed_warmup_steps)
        d = warmup_weight(step, self.max_document_regularizer_weight, self.fixed_warmup_steps)
        self.loss.query_regularizer_weight = q
        self.loss.document_regularizer_weight = d
        self._current_query_regularizer_weight = q
        self._current_document_regularizer_weight = d

    def on_step_begin(self, args, state, control, **kwargs):
        self._apply(state.global_step)
        self.history.append((state.global_step, self.loss.document_regularizer_weight, self.loss.query_regularizer_weight))


class DiagnosticsCallback(TrainerCallback):
    """Every N steps: loss parts, sparsity, FLOPS, token-quality shares and probe top tokens -> JSONL."""

    def __init__(self, model, loss, jsonl_path: Path, sample_queries: list[str], sample_docs: list[str],
                 probes: list[str], every: int, dev=None, best_measure: str = "ndcg@10",
                 best_dir: Path | None = None) -> None:
        self.model = model
        self.dev = dev  # repro.train.dev.DevSet or None
        self.best_measure = best_measure
        self.best_dir = best_dir
        self.best_file = None if best_dir is None else best_dir.with_name(best_dir.name + ".json")
        self.loss = loss
        self.path = Path(jsonl_path)
        self.sample_queries = sample_queries
        self.sample_docs = sample_docs
        self.probes = probes
        self.every = every
        self.classes = quality.VocabClasses.from_tokenizer(model.tokenizer)
        from repro.train.model import static_module

        self.inference_free = static_module(model) is not None
        # a Router needs the task to pick its route; a plain model keeps its default path (task None)
        self.tasks = ("query", "document") if self.inference_free else (None, None)
        self.records: list[dict[str, Any]] = []
        self.last_step = -1

    def measure(self, step: int, logs: dict[str, float] | None = None) -> dict[str, Any]:
        t0 = time.perf_counter()
        qt, dt = self.tasks
        q = quality.model_report(self.model, self.sample_queries, top_k=5, classes=self.classes, task=qt)
        d = quality.model_report(self.model, self.sample_docs, top_k=5, classes=self.classes, task=dt)
        p = quality.model_report(self.model, self.probes, top_k=10, classes=self.classes, task=dt)
        qv = quality.raw_vectors(self.model, self.sample_queries, task=qt)
        dv = quality.raw_vectors(self.model, self.sample_docs, task=dt)
        logs = logs or {}
        rec = {
            "step": step,
            "loss": logs.get("loss"),
            "ranking_loss": logs.get("base_loss"),
            "flops_q_weighted": logs.get("query_regularizer_loss"),
            "flops_d_weighted": logs.get("document_regularizer_loss"),
            "lambda_q_now": self.loss.query_regularizer_weight,
            "lambda_d_now": self.loss.document_regularizer_weight,
            "learning_rate": logs.get("learning_rate"),
            "flops_reg_q": q["aggregate"]["flops_reg"],
            "flops_reg_d": d["aggregate"]["flops_reg"],
            "flops": quality.expected_flops(qv, dv),
            "nnz_q": q["aggregate"]["mean_nnz"],
            "nnz_d": d["aggregate"]["mean_nnz"],
            "min_nnz_q": q["aggregate"]["min_nnz"],
        }
        for part, rep in (("q", q), ("d", d)):
            agg = rep["aggregate"]
            rec[f"punct_share_{part}"] = agg["mean_punct_share"]
            rec[f"stopword_share_{part}"] = agg["mean_stopword_share"]
            rec[f"special_share_{part}"] = agg["mean_special_share"]
            rec[f"expansion_share_{part}"] = agg["mean_expansion_share"]
        rec["probes"] = {r["text"]: r["top"] for r in p["texts"]}
        if self.inference_free:
            rec["query_side"] = "static"  # table lookup: no expansion, no special tokens by construction
            rec["probes_route"] = "document"  # the query side has no MLM to probe
        rec["warnings"] = quality.quality_warnings({r["text"]: r for r in p["texts"]}, q["aggregate"]) + [
            f"documents: {w}" for w in quality.quality_warnings({}, d["aggregate"])
        ]
        if self.dev is not None:
            from repro.train.dev import evaluate

            t1 = time.perf_counter()
            result = evaluate(self.model, self.dev, names=("ndcg@10", "rr@10"))
            for name, value in result["aggregate"].items():
                rec[f"dev_{name}"] = value
            rec["dev_queries"] = result["queries"]
            rec["dev_seconds"] = round(time.perf_counter() - t1, 3)
        rec["diagnostics_seconds"] = round(time.perf_counter() - t0, 3)
        return rec

    def best(self) -> dict[str, Any] | None:
        """The best dev record so far ({step, measure, value}), kept across a resume in best-model.json."""
        if self.best_file is None or not self.best_file.exists():
            return None
        return json.loads(self.best_file.read_text(encoding="utf-8"))

    def _keep_if_best(self, rec: dict[str, Any]) -> None:
        from repro.outputs import write_text
        from repro.train.dev import write_best

        value = rec.get(f"dev_{self.best_measure}")
        if value is None or self.best_dir is None:
            return
        best = self.best()
        if best is not None and not value > best["value"]:  # ties keep the earlier (sparser, cheaper) model
            return
        write_best(self.model, self.best_dir)
        write_text(self.best_file, json.dumps({"step": rec["step"], "measure": self.best_measure, "value": value}) + "\n")

    def _write(self, rec: dict[str, Any]) -> None:
        self._keep_if_best(rec)
        self.records.append(rec)
        with open(self.path, "a", encoding="utf-8") as handle:  # append-only log; a killed run leaves whole lines
            handle.write(json.dumps(rec) + "\n")
        for w in rec["warnings"]:
            log.warning("step %d: token-quality warning: %s", rec["step"], w)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.global_step == 0 and not self.path.exists():
            self._write(self.measure(0))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs or state.global_step == self.last_step or not state.is_world_process_zero:
            return
        self.last_step = state.global_step
        rec = self.measure(state.global_step, logs)
        self._write(rec)
        # Shown by the progress bar's log line (this callback runs before the ProgressCallback).
        logs["nnz_q"] = round(rec["nnz_q"], 1)
        logs["nnz_d"] = round(rec["nnz_d"], 1)
        logs["punct_q"] = round(rec["punct_share_q"], 3)
        logs["special_q"] = round(rec["special_share_q"], 3)
        logs["warnings"] = len(rec["warnings"])


def read_records(path: Path) -> list[dict[str, Any]]:
    """The diagnostics JSONL; when a run was resumed, the later record of a step wins."""
    by_step: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def plot_curves(records: list[dict[str, Any]], png: Path) -> None:
    """Training curves (loss parts, nonzeros, token-quality shares) as one PNG, Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]

    def series(key):
        return [r.get(key) if r.get(key) is not None else float("nan") for r in records]

    dev_keys = [k for k in ("dev_ndcg@10", "dev_rr@10") if any(r.get(k) is not None for r in records)]
    fig, axes = plt.subplots(1, 4 if dev_keys else 3, figsize=(20 if dev_keys else 15, 4))
    for key in ("loss", "ranking_loss", "flops_q_weighted", "flops_d_weighted"):
        axes[0].plot(steps, series(key), marker=".", label=key)
    axes[0].set_title("loss parts")
    axes[0].set_yscale("symlog", linthresh=1e-3)
    for key in ("nnz_q", "nnz_d"):
        axes[1].plot(steps, series(key), marker=".", label=key)
    axes[1].set_title("mean nonzeros")
    axes[1].set_yscale("log")
    for key in ("punct_share_q", "punct_share_d", "stopword_share_q", "special_share_q", "special_share_d",
                "expansion_share_q"):
        axes[2].plot(steps, series(key), marker=".", label=key)
    axes[2].set_title("share of weight")
    if dev_keys:
        for key in dev_keys:
            axes[3].plot(steps, series(key), marker=".", label=key)
        axes[3].set_title("dev set (exact dot product)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(".tmp-" + png.name)
    fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    tmp.replace(png)
