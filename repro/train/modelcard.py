"""The README.md model card of a trained model: config, data, library versions, final token quality."""

from __future__ import annotations

import json
from typing import Any

from repro.manifest import versions


def _mining_section(data: str) -> list[str]:
    """Where the negatives and teacher scores came from, when the data is a `repro mine` folder."""
    from pathlib import Path

    from repro.manifest import manifest_path

    folder = Path(data)
    if not folder.is_dir() or not manifest_path(folder).exists():
        return []
    meta = json.loads(manifest_path(folder).read_text(encoding="utf-8"))
    if meta.get("stage") != "mine":
        return []
    c = meta["config"]
    return [
        "",
        "## Hard negatives and teacher (`repro mine`)",
        f"- index: `{c['index']}` ({meta.get('index_kind')}, {meta.get('engine')})"
        + (f", queries encoded by `{c['model']}`" if c.get("model") else ""),
        f"- training queries `{c['queries']}`, qrels `{c['qrels']}` (positives: grade >= {c['min_rel']}), corpus `{c['corpus']}`",
        f"- window ranks [{c['rank_min']}, {c['rank_max']}), {c['num_negatives']} negatives per record, sampling "
        f"{c['sampling']} (seed {c['seed']}); false-negative guard: relative margin {c['relative_margin']}, "
        f"absolute margin {c['absolute_margin']}",
        f"- teacher: {('`' + c['teacher'] + '` (' + c['teacher_activation'] + ')') if c.get('teacher') else 'none'}",
        f"- counts: {meta['records']} records from {meta['queries']} queries; skipped by the guard "
        f"{meta['skipped_margin']}, positives removed from candidates {meta['skipped_positive']}, records with too "
        f"few negatives {meta['too_few_negatives']}",
    ]


def _dev_section(summary: dict[str, Any]) -> list[str]:
    curve = summary.get("dev_curve")
    if not curve:
        return []
    lines = ["", "## Dev curve (exact dot product over the dev corpus, ir_measures)", "",
             "| step | nDCG@10 | RR@10 | nnz/query | nnz/doc |", "|---|---|---|---|---|"]
    for r in curve:
        lines.append(f"| {r['step']} | {r['dev_ndcg@10']:.4f} | {r['dev_rr@10']:.4f} | {r['nnz_q']:.1f} | {r['nnz_d']:.1f} |")
    best = summary.get("best")
    if best:
        lines += ["", f"Best by {best['measure']}: step {best['step']} ({best['value']:.4f}), saved in `best/`."]
    return lines


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
        *([f"- inference-free: a Router whose query route is a SparseStaticEmbedding table "
           f"({summary.get('static_query_params')} weights, init `{cfg.static_init}`, lr {cfg.static_lr}, "
           f"frozen={cfg.freeze_static}) and whose document route is the MLM + SpladePooling; "
           "query regulariser weight 0"] if cfg.inference_free else []),
        f"- seconds per step (this session): {summary.get('seconds_per_step')}",
        *( [f"- dev set: queries `{cfg.dev_queries}`, corpus `{cfg.dev_corpus}`, qrels `{cfg.dev_qrels}`"] if cfg.dev_queries else []),
        *_mining_section(cfg.data),
        *_dev_section(summary),
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
