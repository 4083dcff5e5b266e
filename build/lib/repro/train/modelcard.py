"""The README.md model card of a trained model: config, data, library versions, final token quality."""

from __future__ import annotations

import json
from typing import Any

from repro.manifest import versions


def model_card(cfg, summary: dict[str, Any], parts: dict[str, Any]) -> str:
    final = summary.get("final", {})
    lines = [
        "---",
        "library_name: sentence-transformers",
        "tags: [sparse-encoder, splade, repro]",
        "---",
        "",
        "# SPLADE model trained with `repro train`",
        "",
        "Load offline: `SparseEncoder(path, local_files_only=True)`.",
        "",
        "## Training",
        f"- base model: `{cfg.base_model}`",
        f"- data: `{cfg.data}` ({summary['train_rows']} examples; {summary['skipped_lines']} malformed lines skipped)",
        f"- loss: {cfg.loss} inside SpladeLoss, lambda_q {cfg.lambda_q}, lambda_d {cfg.lambda_d}, "
        f"quadratic FLOPS warm-up over {cfg.reg_warmup_steps} steps",
        f"- steps: {summary['steps']} at batch {cfg.batch_size} x accumulation {cfg.grad_accum}, lr {cfg.lr}, "
        f"seed {cfg.seed}, max length {cfg.max_length}",
        f"- frozen: encoder={cfg.freeze_encoder}, embeddings={cfg.freeze_embeddings}; "
        f"trainable parameters {summary.get('trainable_params')}",
        f"- seconds per step (this session): {summary.get('seconds_per_step')}",
        "",
        "## Token quality at the end (diagnostic sample of training texts)",
        "",
        "```json",
        json.dumps(final, indent=2),
        "```",
        "",
        f"Warnings at the end: {summary.get('warnings_at_end') or 'none'}",
        "",
        "## Full config",
        "",
        "```json",
        json.dumps(cfg.to_dict(), indent=2, sort_keys=True),
        "```",
        "",
        "## Library versions",
        "",
        "```json",
        json.dumps(versions(), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
