"""Token-quality metrics of SPLADE vectors: are the learned tokens any good?

Shared by `repro train` (periodic diagnostics) and `repro inspect`. Everything is computed on
the RAW pooled vector of the model (before any top-k pruning or special-token filtering), so a
model that puts weight on `[CLS]` or `.` is reported as such instead of being hidden.

Definitions (all shares are of the text's total weight, i.e. sum of its nonzero weights):
- punctuation: a token whose characters (after stripping a leading `##`) are all Unicode
  punctuation or symbols (categories P* and S*), e.g. `.` `,` `!` `?` `;` `"` `#` `$`.
- stopword: a token in the small English list `STOPWORDS` below (written for this project).
- special: a token the tokenizer declares special ([CLS], [SEP], [PAD], [MASK], [UNK], ...).
- expansion: a token id that does not occur among the text's own input token ids.

Warning rule (see `quality_warnings`): a punctuation or special token among the top-3 tokens of
any probe text, or an aggregate punctuation share above 10% or special share above 5% of the
weight, or a probe query with fewer than 3 nonzeros ("collapsed").

`position_sources` says which input position ([CLS], [SEP], padding, the text's own tokens)
supplied each pooled weight (`repro inspect --explain-positions`): the evidence for WHERE a
punctuation weight comes from.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_PROBES = ("what is python programming", "best restaurants in paris")
PUNCT_SHARE_LIMIT = 0.10
SPECIAL_SHARE_LIMIT = 0.05
TOP_RANKS_CHECKED = 3
COLLAPSED_NNZ = 3
POOLING_FAULTS = ("pad",)

# A small English function-word list, written for this project (not copied from a library).
STOPWORDS = frozenset(
    """
    a an the and or but nor so yet if then else than that this these those there here
    i me my mine we us our ours you your yours he him his she her hers it its they them their theirs
    who whom whose which what when where why how
    am is are was were be been being do does did doing done have has had having
    can could shall should will would may might must
    of in on at by for with without within from to into onto over under up down out off about
    above below between among through during before after again against along around across
    as such both each few more most other some any all no not only own same too very just
    also however because while until unless although though whether
    s t don doesn didn isn aren wasn weren won wouldn shouldn couldn can't don't it's
    """.split()
)


def is_punctuation(token: str) -> bool:
    """True when every character of the token (minus a WordPiece `##`) is punctuation or a symbol."""
    core = token[2:] if token.startswith("##") and len(token) > 2 else token
    return bool(core) and all(unicodedata.category(ch)[0] in "PS" for ch in core)


def is_stopword(token: str) -> bool:
    return token.lower() in STOPWORDS


@dataclass
class VocabClasses:
    """Per-vocabulary-id flags, computed once per tokenizer."""

    tokens: list[str]
    punct: list[bool]
    stop: list[bool]
    special: list[bool]

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "VocabClasses":
        size = max(len(tokenizer), max(tokenizer.get_vocab().values()) + 1)
        tokens = [""] * size
        for tok, idx in tokenizer.get_vocab().items():
            tokens[idx] = tok
        special_ids = set(tokenizer.all_special_ids)
        return cls(
            tokens=tokens,
            punct=[is_punctuation(t) for t in tokens],
            stop=[is_stopword(t) for t in tokens],
            special=[i in special_ids for i in range(size)],
        )


def text_report(
    vector: dict[int, float], input_ids: set[int], classes: VocabClasses, top_k: int = 10
) -> dict[str, Any]:
    """Quality numbers of one sparse vector given as {token id: weight} (weights > 0 only)."""
    items = sorted(((i, w) for i, w in vector.items() if w > 0), key=lambda kv: (-kv[1], kv[0]))
    total = sum(w for _, w in items)

    def share(flag) -> float:
        return (sum(w for i, w in items if flag(i)) / total) if total > 0 else 0.0

    expansion = [i for i, _ in items if i not in input_ids]
    return {
        "nnz": len(items),
        "total_weight": total,
        "punct_share": share(lambda i: classes.punct[i]),
        "stopword_share": share(lambda i: classes.stop[i]),
        "special_share": share(lambda i: classes.special[i]),
        "expansion_share": share(lambda i: i not in input_ids),
        "expansion_terms": len(expansion),
        "top": [[classes.tokens[i], round(w, 4)] for i, w in items[:top_k]],
        "top_punct_or_special": [
            classes.tokens[i] for i, _ in items[:TOP_RANKS_CHECKED] if classes.punct[i] or classes.special[i]
        ],
    }


def _mean_and_active(vectors: Sequence[dict[int, float]]) -> tuple[dict[int, float], dict[int, float]]:
    """Per-token mean weight and activation probability over a batch of vectors."""
    n = max(len(vectors), 1)
    mean: dict[int, float] = {}
    active: dict[int, float] = {}
    for vec in vectors:
        for i, w in vec.items():
            if w > 0:
                mean[i] = mean.get(i, 0.0) + w / n
                active[i] = active.get(i, 0.0) + 1 / n
    return mean, active


def flops_reg(vectors: Sequence[dict[int, float]]) -> float:
    """The FLOPS regulariser as SpladeLoss computes it: sum over vocab of (batch-mean weight)^2."""
    mean, _ = _mean_and_active(vectors)
    return float(sum(v * v for v in mean.values()))


def expected_flops(queries: Sequence[dict[int, float]], docs: Sequence[dict[int, float]]) -> float:
    """SPLADE's FLOPS cost: expected number of shared nonzero terms of a query-document pair."""
    _, pq = _mean_and_active(queries)
    _, pd = _mean_and_active(docs)
    return float(sum(p * pd.get(i, 0.0) for i, p in pq.items()))


def aggregate(reports: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Means over texts of the per-text numbers, plus the smallest nonzero count."""
    if not reports:
        return {}
    keys = ("nnz", "punct_share", "stopword_share", "special_share", "expansion_share", "expansion_terms")
    out = {f"mean_{k}": sum(r[k] for r in reports) / len(reports) for k in keys}
    out["min_nnz"] = min(r["nnz"] for r in reports)
    out["texts"] = len(reports)
    return out


def quality_warnings(probe_reports: dict[str, dict[str, Any]], agg: dict[str, float]) -> list[str]:
    """The warning rule stated in the module docstring; returns human-readable messages."""
    found = []
    for text, rep in probe_reports.items():
        if rep["top_punct_or_special"]:
            found.append(f"probe {text!r}: punctuation/special token in top-{TOP_RANKS_CHECKED}: {rep['top_punct_or_special']}")
        if rep["nnz"] < COLLAPSED_NNZ:
            found.append(f"probe {text!r}: only {rep['nnz']} nonzeros (collapsed vector)")
    if agg.get("mean_punct_share", 0.0) > PUNCT_SHARE_LIMIT:
        found.append(f"punctuation holds {agg['mean_punct_share']:.1%} of the weight (limit {PUNCT_SHARE_LIMIT:.0%})")
    if agg.get("mean_special_share", 0.0) > SPECIAL_SHARE_LIMIT:
        found.append(f"special tokens hold {agg['mean_special_share']:.1%} of the weight (limit {SPECIAL_SHARE_LIMIT:.0%})")
    return found


# --------------------------------------------------------------------------- model side


def raw_vectors(model, texts: Sequence[str], batch_size: int = 32, pooling_fault: str | None = None,
                max_length: int | None = None, task: str | None = None) -> list[dict[int, float]]:
    """Raw pooled SPLADE vectors of `texts` as {id: weight}, straight from the model's forward.

    `pooling_fault="pad"` is a DIAGNOSTIC ONLY (never used by training): pad every text to
    `max_length` and max-pool log(1+relu(logits)) over ALL positions, padding included, to show
    what a pooling bug does to the vectors. ``task`` ("query"|"document") picks a Router's route
    (an inference-free model's queries go through its static table); None = the model's default.
    """
    import torch

    if pooling_fault not in (None, *POOLING_FAULTS):
        raise ValueError(f"unknown pooling fault {pooling_fault!r}")
    was_training = model.training
    model.eval()
    out: list[dict[int, float]] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = list(texts[start:start + batch_size])
                if pooling_fault is None and task is not None:
                    features = model.preprocess(chunk, task=task)  # keeps the task: the Router routes on it
                    features = {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
                    emb = model(features)["sentence_embedding"]
                elif pooling_fault is None:
                    features = model.tokenize(chunk)
                    features = {k: v.to(model.device) for k, v in features.items() if isinstance(v, torch.Tensor)}
                    emb = model(features)["sentence_embedding"]
                else:
                    length = max_length or model.max_seq_length
                    features = model.tokenizer(chunk, padding="max_length", truncation=True, max_length=length,
                                               return_tensors="pt")
                    features = {k: v.to(model.device) for k, v in features.items()}
                    logits = model[0](dict(features))["token_embeddings"]
                    emb = torch.log1p(torch.relu(logits)).amax(dim=1)  # no attention mask: the fault
                emb = emb.float().cpu()
                if emb.is_sparse:
                    emb = emb.to_dense()
                for row in emb:
                    idx = torch.nonzero(row > 0).flatten()
                    out.append(dict(zip(idx.tolist(), row[idx].tolist())))
    finally:
        model.train(was_training)
    return out


def input_id_sets(model, texts: Sequence[str]) -> list[set[int]]:
    """The token ids each text itself contains (special tokens excluded)."""
    tok = model.tokenizer
    enc = tok(list(texts), add_special_tokens=False, truncation=True, max_length=model.max_seq_length)
    return [set(ids) for ids in enc["input_ids"]]


def model_report(model, texts: Sequence[str], top_k: int = 10, pooling_fault: str | None = None,
                 max_length: int | None = None, classes: VocabClasses | None = None,
                 batch_size: int = 32, task: str | None = None) -> dict[str, Any]:
    """Per-text reports, the aggregate and the warnings for a list of texts."""
    classes = classes or VocabClasses.from_tokenizer(model.tokenizer)
    vectors = raw_vectors(model, texts, batch_size=batch_size, pooling_fault=pooling_fault, max_length=max_length,
                          task=task)
    ids = input_id_sets(model, texts)
    per_text = [dict(text=t, **text_report(v, i, classes, top_k)) for t, v, i in zip(texts, vectors, ids)]
    agg = aggregate(per_text)
    agg["flops_reg"] = flops_reg(vectors)
    warnings = quality_warnings({r["text"]: r for r in per_text}, agg)
    return {"texts": per_text, "aggregate": agg, "warnings": warnings, "pooling_fault": pooling_fault}


POSITION_KINDS = ("cls", "sep", "pad", "text")


def position_sources(model, texts: Sequence[str], top_k: int = 10, pooling_fault: str | None = None,
                     max_length: int | None = None, batch_size: int = 32) -> dict[str, Any]:
    """WHICH input positions produce the pooled weights (the max of max pooling comes from one position).

    For every text and vocabulary term, the position whose log(1+relu(logit)) is the max is the
    term's source. Positions are classed as `cls` (the [CLS] slot), `sep` ([SEP]), `pad` (padding,
    only reachable with `pooling_fault="pad"`) and `text` (the text's own tokens). Returns per-text
    top-k terms with their source position, and, over all texts, the share of the total weight and
    of the punctuation weight that each kind of position supplies. Same vectors as `raw_vectors`.
    """
    import torch

    if pooling_fault not in (None, *POOLING_FAULTS):
        raise ValueError(f"unknown pooling fault {pooling_fault!r}")
    classes = VocabClasses.from_tokenizer(model.tokenizer)
    punct_mask = torch.tensor(classes.punct[: len(classes.tokens)])
    tok = model.tokenizer
    length = max_length or model.max_seq_length
    totals = {k: 0.0 for k in POSITION_KINDS}
    punct = {k: 0.0 for k in POSITION_KINDS}
    per_text: list[dict[str, Any]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = list(texts[start:start + batch_size])
                padding = "max_length" if pooling_fault == "pad" else True
                feats = tok(chunk, padding=padding, truncation=True, max_length=length, return_tensors="pt")
                feats = {k: v.to(model.device) for k, v in feats.items()}
                logits = model[0](dict(feats))["token_embeddings"].float()
                act = torch.log1p(torch.relu(logits))
                if pooling_fault is None:  # the correct pooling: padding can never be the max
                    act = act * feats["attention_mask"].unsqueeze(-1).to(act.dtype)
                weights, src = act.max(dim=1)  # (batch, vocab) each
                ids = feats["input_ids"].cpu()
                mask = feats["attention_mask"].cpu()
                code = torch.full(ids.shape, POSITION_KINDS.index("text"))
                code[ids == tok.cls_token_id] = POSITION_KINDS.index("cls")
                code[ids == tok.sep_token_id] = POSITION_KINDS.index("sep")
                code[mask == 0] = POSITION_KINDS.index("pad")
                for b in range(len(chunk)):
                    w = weights[b].cpu()
                    s = src[b].cpu()
                    nz = torch.nonzero(w > 0).flatten()
                    term_kind = code[b][s[nz]]
                    for k, kind in enumerate(POSITION_KINDS):
                        sel = nz[term_kind == k]
                        totals[kind] += float(w[sel].sum())
                        punct[kind] += float(w[sel][punct_mask[sel]].sum())
                    order = nz[torch.argsort(-w[nz])][:top_k]
                    per_text.append({"text": chunk[b], "top": [
                        [classes.tokens[int(i)], round(float(w[i]), 4),
                         f"{POSITION_KINDS[int(code[b][s[i]])]}@{int(s[i])}"] for i in order]})
    finally:
        model.train(was_training)

    def shares(d: dict[str, float]) -> dict[str, float]:
        t = sum(d.values())
        return {k: (v / t if t > 0 else 0.0) for k, v in d.items()}

    return {"texts": per_text, "weight_share_by_position": shares(totals),
            "punct_weight_share_by_position": shares(punct), "punct_weight": sum(punct.values()),
            "total_weight": sum(totals.values()), "pooling_fault": pooling_fault}
