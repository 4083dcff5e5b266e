"""`repro train`: fine-tune a SPLADE model (SparseEncoder + SpladeLoss) from a TOML config and flags."""

from __future__ import annotations

import json

import click

from repro.errors import ReproError, success


def _load_config(ctx: click.Context, _param, value):
    """Eager: read the TOML into ctx.default_map, so every explicit flag still wins over the file."""
    if value:
        from repro.train.config import load_toml

        ctx.default_map = {**(ctx.default_map or {}), **load_toml(value)}
    return value


@click.command("train")
@click.option("--config", type=click.Path(dir_okay=False), is_eager=True, expose_value=False, callback=_load_config,
              help="TOML file of settings (keys = long flag names); explicit flags override it.")
@click.option("--base-model", help="Local *ForMaskedLM folder, SparseEncoder folder, or cached hub ID.")
@click.option("--output", "-o", help="Folder for the trained SparseEncoder (OUTPUT.work/ holds checkpoints).")
@click.option("--data", help="Triplets TSV, JSONL with scores, a `repro mine` folder, id triplets TSV, an ir_datasets ID, or hf:ORG/NAME[:SUBSET].")
@click.option("--data-format", type=click.Choice(["auto", "triplets", "jsonl", "irds", "ids", "hf", "smart-pairs"]), default="auto", show_default=True)
@click.option("--queries", help="id<TAB>text queries file (for id-based data: ids TSV, hf: id subsets).")
@click.option("--corpus", help="id<TAB>text corpus file (for id-based data; looked up by byte offset).")
@click.option("--loss", type=click.Choice(["mnrl", "margin-mse", "kl"]), default="mnrl", show_default=True)
@click.option("--lambda-q", type=float, default=5e-3, show_default=True, help="FLOPS weight on queries (batch-mean convention).")
@click.option("--lambda-d", type=float, default=4e-3, show_default=True, help="FLOPS weight on documents.")
@click.option("--reg-warmup-steps", type=int, default=0, show_default=True,
              help="Quadratic warm-up of both lambdas over N optimizer steps (0 = full weight at once).")
@click.option("--num-negatives", type=int, default=1, show_default=True)
@click.option("--kl-temperature", type=float, default=1.0, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--grad-accum", type=int, default=1, show_default=True)
@click.option("--lr", type=float, default=2e-5, show_default=True)
@click.option("--lr-warmup-steps", type=int, default=0, show_default=True)
@click.option("--weight-decay", type=float, default=0.01, show_default=True)
@click.option("--max-steps", type=int, default=-1, show_default=True, help="Optimizer steps (overrides --epochs).")
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--max-length", type=int, default=128, show_default=True, help="Max tokens per query and document.")
@click.option("--bf16/--no-bf16", default=False, show_default=True)
@click.option("--fp16/--no-fp16", default=False, show_default=True)
@click.option("--freeze-encoder/--no-freeze-encoder", default=False, show_default=True,
              help="Train only the MLM head (transform + decoder bias; a tied decoder weight stays frozen).")
@click.option("--freeze-embeddings/--no-freeze-embeddings", default=False, show_default=True)
@click.option("--inference-free/--no-inference-free", default=False, show_default=True,
              help="Train an inference-free Router: static query table (SparseStaticEmbedding) + MLM documents.")
@click.option("--static-init", default="ones", show_default=True, metavar="ones|idf:FILE",
              help="Initial query table for --inference-free from a plain MLM: ones, or a {token: weight} JSON.")
@click.option("--static-lr", type=float, default=1e-3, show_default=True,
              help="Learning rate of the static query table (--inference-free; the rest uses --lr).")
@click.option("--freeze-static/--no-freeze-static", default=False, show_default=True,
              help="Keep the static query table fixed (--inference-free).")
@click.option("--no-duplicates/--allow-duplicates", default=True, show_default=True,
              help="Shuffled batches without repeated texts (in-batch negatives stay true negatives).")
@click.option("--save-steps", type=int, default=500, show_default=True)
@click.option("--save-total-limit", type=int, default=2, show_default=True)
@click.option("--diagnostics-steps", type=int, default=50, show_default=True)
@click.option("--diagnostics-texts", type=int, default=32, show_default=True)
@click.option("--probe", "probes", multiple=True, help="Probe query shown in diagnostics (repeatable).")
@click.option("--dev-queries", help="Dev topics scored every --diagnostics-steps steps (file or ir_datasets ID).")
@click.option("--dev-corpus", help="Dev corpus (brute-force exact dot product: keep it to dev scale).")
@click.option("--dev-qrels", help="Dev judgements (file or ir_datasets ID).")
@click.option("--best-measure", type=click.Choice(["ndcg@10", "rr@10"]), default="ndcg@10", show_default=True,
              help="Dev measure that picks the best model (saved as OUTPUT/best).")
@click.option("--push-to-hub", default=None, metavar="ID", help="Upload the saved model folder to this hub repo at the end.")
@click.option("--skip-bad-lines", is_flag=True, default=False, help="Skip and count malformed lines instead of failing.")
@click.option("--resume", is_flag=True, default=False, help="Continue the interrupted run of this --output exactly.")
@click.option("--force", is_flag=True, default=False, help="Overwrite an existing output / start over.")
def command(**options) -> None:
    """Fine-tune SPLADE with FLOPS regularisation, checkpoints, exact resume and token-quality diagnostics.

    \b
      repro train --config configs/cranfield-finetune.toml
      repro train --base-model splade-tiny-folder --data triplets.tsv -o models/mine --max-steps 200
    """
    from repro.train.config import TrainConfig
    from repro.train.loop import run_training

    if not options.get("probes"):
        options.pop("probes", None)
    else:
        options["probes"] = list(options["probes"])
    try:
        cfg = TrainConfig(**options)
    except TypeError as err:  # pragma: no cover - options and fields are kept in step by a test
        raise ReproError(f"bad settings: {err}") from err
    summary = run_training(cfg)
    success(json.dumps(summary, indent=2))
