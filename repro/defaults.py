"""Every default of the pipeline, defined once: the CLI options, presets, `reproduce` and the manifests read them here.

The numbers are the field's conventions, with their sources:
- documents are quantized x100 (naver/splade and Anserini's SPLADE++ regressions: `round(w * 100)`);
- queries are encoded to at most 64 tokens (naver/splade's evaluation configs);
- runs keep the top 1000 (TREC and MS MARCO convention; R@1000 needs it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DOC_FACTOR = 100.0
QUERY_MAX_LENGTH = 64
HITS = 1000
BATCH_SIZE = 32
SHARD_SIZE = 10_000
MAX_POSITIONS = 512  # never encode past BERT's position embeddings


@dataclass(frozen=True)
class EncodeConfig:
    """How documents are encoded; ``max_length`` None = the model's own (at most MAX_POSITIONS)."""

    factor: float = DOC_FACTOR
    max_length: int | None = None
    batch_size: int = BATCH_SIZE
    shard_size: int = SHARD_SIZE
    dtype: str = "float32"


@dataclass(frozen=True)
class QueryConfig:
    """How queries are encoded; ``factor`` None = the factor the index's documents were encoded with."""

    max_length: int = QUERY_MAX_LENGTH
    factor: float | None = None
    batch_size: int = BATCH_SIZE
    runtime: str = "torch"


@dataclass(frozen=True)
class SearchConfig:
    """How many hits a run keeps, and how many threads search (None = all cores)."""

    hits: int = HITS
    threads: int | None = None


ENCODE = EncodeConfig()
QUERY = QueryConfig()
SEARCH = SearchConfig()


def threads(requested: int | None) -> int:
    """Threads to use: the requested number, else every core of this machine."""
    return requested or max(1, os.cpu_count() or 1)


MIN_LENGTH = 2  # [CLS] and [SEP]: below that no text token survives (and 1 turned truncation off)


def check_max_length(value: int | None, option: str = "--max-length") -> None:
    """The one rule for a requested token limit: at least 2, so a text token fits beside [CLS] and [SEP]
    (1 used to turn truncation off). A limit past a model's position embeddings is not refused here:
    the encoder, which knows the model, clamps it (repro.encode.base.clamp_max_length)."""
    if value is None:
        return
    from repro.errors import ReproError

    if value < MIN_LENGTH:
        raise ReproError(f"{option} {value}: must be at least {MIN_LENGTH} tokens ([CLS] and [SEP])")
