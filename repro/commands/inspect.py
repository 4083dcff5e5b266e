"""`repro inspect`: token-quality report of any SPLADE model (are the learned tokens any good?)."""

from __future__ import annotations

import json

import click

from repro.errors import ReproError


def _read_texts(path: str) -> list[str]:
    """Queries file: `id<TAB>text` lines (the text is the last field) or plain one-text-per-line."""
    from repro.formats.textio import iter_lines

    texts = []
    for _lineno, line in iter_lines(path):
        if line.strip():
            texts.append(line.split("\t")[-1])
    if not texts:
        raise ReproError("no texts in file", path)
    return texts


def _table(report: dict) -> str:
    rows = []
    for r in report["texts"]:
        top = " ".join(f"{t}:{w:.2f}" for t, w in r["top"])
        rows.append(
            f"{r['text'][:40]:40s} nnz={r['nnz']:<5d} punct={r['punct_share']:.3f} stop={r['stopword_share']:.3f} "
            f"special={r['special_share']:.3f} expansion={r['expansion_share']:.3f}\n    top: {top}"
        )
    agg = report["aggregate"]
    rows.append(
        f"AGGREGATE over {agg['texts']} texts: mean nnz {agg['mean_nnz']:.1f} (min {agg['min_nnz']}), "
        f"punct {agg['mean_punct_share']:.3f}, stopword {agg['mean_stopword_share']:.3f}, "
        f"special {agg['mean_special_share']:.3f}, expansion {agg['mean_expansion_share']:.3f}, "
        f"FLOPS reg {agg['flops_reg']:.3f}"
    )
    if report.get("pooling_fault"):
        rows.insert(0, f"*** DIAGNOSTIC: faulty pooling '{report['pooling_fault']}' (max over padding) ***")
    rows.append("WARNINGS: " + ("; ".join(report["warnings"]) if report["warnings"] else "none"))
    return "\n".join(rows)


def _positions_table(pos: dict) -> str:
    rows = ["SOURCE POSITIONS (token:weight:kind@position; the max of max pooling comes from that position)"]
    for r in pos["texts"]:
        rows.append(f"{r['text'][:40]:40s} " + " ".join(f"{t}:{w:.2f}:{src}" for t, w, src in r["top"]))

    def fmt(d: dict) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in d.items())

    rows.append(f"share of ALL weight by source position: {fmt(pos['weight_share_by_position'])}")
    rows.append(f"share of PUNCTUATION weight ({pos['punct_weight']:.2f} of {pos['total_weight']:.2f}) by source "
                f"position: {fmt(pos['punct_weight_share_by_position'])}")
    return "\n".join(rows)


@click.command("inspect")
@click.option("--model", "-m", required=True, help="SparseEncoder folder, plain *ForMaskedLM folder, or cached hub ID.")
@click.argument("texts", nargs=-1)
@click.option("--queries", type=click.Path(dir_okay=False), help="File of texts (id<TAB>text or one per line).")
@click.option("--limit", type=int, default=0, help="Only the first N texts of --queries (0 = all).")
@click.option("--top-k", type=int, default=10, show_default=True)
@click.option("--max-length", type=int, default=256, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--pooling-fault", type=click.Choice(["pad"]), default=None,
              help="DIAGNOSTIC ONLY: max-pool over padding positions too (texts padded to --max-length), to see the fault.")
@click.option("--explain-positions", is_flag=True, default=False,
              help="Also show which input position ([CLS], [SEP], padding, text) supplies each top weight.")
@click.option("--side", type=click.Choice(["document", "query"]), default="document", show_default=True,
              help="Which route encodes the texts (an inference-free model's query side is its static table).")
def command(model, texts, queries, limit, top_k, max_length, fmt, pooling_fault, explain_positions, side) -> None:
    """Per-text nonzeros, top tokens and punctuation/stopword/special/expansion shares, plus an aggregate.

    Computed on the raw SPLADE vector (no special-token filtering). Without TEXTS or --queries the
    default probe queries are used.

    \b
      repro inspect -m naver/splade-cocondenser-ensembledistil "what is python programming"
      repro inspect -m runs/model --queries topics.tsv --limit 50 --explain-positions
    """
    from repro.encode.quality import DEFAULT_PROBES, model_report
    from repro.train.model import load_sparse_encoder

    items = list(texts)
    if queries:
        items += _read_texts(queries)[: limit or None]
    if not items:
        items = list(DEFAULT_PROBES)
    encoder = load_sparse_encoder(model, max_seq_length=max_length)
    report = model_report(encoder, items, top_k=top_k, pooling_fault=pooling_fault, max_length=max_length, task=side)
    report["model"] = str(model)
    report["side"] = side
    if explain_positions:
        from repro.encode.quality import position_sources

        report["positions"] = position_sources(encoder, items, top_k=top_k, pooling_fault=pooling_fault,
                                               max_length=max_length)
    if fmt == "json":
        click.echo(json.dumps(report, indent=1))
    else:
        click.echo(_table(report))
        if explain_positions:
            click.echo(_positions_table(report["positions"]))
