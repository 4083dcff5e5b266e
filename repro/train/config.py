"""Training configuration: one dataclass, loaded from TOML and overridden by explicit CLI flags.

Precedence: explicit flag > TOML file (`--config`) > built-in default. The TOML keys are the long
flag names with `-` or `_` (e.g. `lambda-q = 0.5` or `lambda_q = 0.5`), at top level or under a
`[train]` table. Unknown keys are an error naming the file, so a typo never silently falls back
to a default. ``${shared}`` in a string value is the shared data root (`repro.paths.shared_root`),
so a config can carry its data: configs/cranfield-finetune.toml trains on
``${shared}/cranfield/cran.all.1400`` with no other flag.

Lambda convention (FLOPS regulariser): as in naver/splade and sentence-transformers' FlopsLoss,
FLOPS = sum over the vocabulary of (mean over the batch of the weight)^2, computed separately for
the query column (lambda_q) and for all document columns together (positives + negatives,
lambda_d). It is a batch MEAN, so lambdas are not rescaled with batch size; the mean over a small
batch is noisier (its expectation is mean^2 + variance/B), so a small batch regularises slightly
harder at the same lambda. The regulariser is added to the ranking loss as is, so the lambda
scale is tied to the loss scale: SPLADE++'s lambda_q 0.5 / lambda_d 0.4 (50k-step quadratic
warm-up, batch 128) go with MarginMSE on raw cross-encoder margins; with MNRL (cross-entropy of a
few nats) much smaller lambdas (1e-3 .. 1e-1) are the usual range.

Inference-free SPLADE (`inference_free = true`, default false): the model is a sentence-transformers
Router whose query route is a SparseStaticEmbedding (one weight per vocabulary token, a table
lookup at query time) and whose document route is the MLM + SpladePooling. `static_init` ("ones",
the default, or "idf:FILE" with a {token: weight} JSON) initialises the table when the base model
is a plain MLM (an existing inference-free model keeps its table); `static_lr` (default 1e-3) is
the table's learning rate (the rest trains at `lr`), `freeze_static` (default false) keeps it fixed.
The query regulariser weight is 0 in this mode (a static table has no expansion to sparsify; its
vectors hold only the query's own tokens), so a nonzero `lambda_q` is overridden to 0 with a warning.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.errors import ReproError
from repro.encode.quality import DEFAULT_PROBES

LOSSES = ("mnrl", "margin-mse", "kl")
DATA_FORMATS = ("auto", "triplets", "jsonl", "irds", "ids", "hf", "smart-pairs")


@dataclass
class TrainConfig:
    """Everything one training run depends on; recorded in the manifest and the model card."""

    base_model: str = ""
    output: str = ""
    data: str = ""
    data_format: str = "auto"
    queries: str | None = None
    corpus: str | None = None
    loss: str = "mnrl"
    lambda_q: float = 5e-3
    lambda_d: float = 4e-3
    reg_warmup_steps: int = 0
    num_negatives: int = 1
    kl_temperature: float = 1.0
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 2e-5
    lr_warmup_steps: int = 0
    weight_decay: float = 0.01
    max_steps: int = -1
    epochs: float = 1.0
    seed: int = 42
    max_length: int = 128
    bf16: bool = False
    fp16: bool = False
    freeze_encoder: bool = False
    freeze_embeddings: bool = False
    no_duplicates: bool = True
    save_steps: int = 500
    save_total_limit: int = 2
    diagnostics_steps: int = 50
    diagnostics_texts: int = 32
    probes: list[str] = field(default_factory=lambda: list(DEFAULT_PROBES))
    dev_queries: str | None = None
    dev_corpus: str | None = None
    dev_qrels: str | None = None
    best_measure: str = "ndcg@10"
    push_to_hub: str | None = None
    skip_bad_lines: bool = False
    resume: bool = False
    force: bool = False
    inference_free: bool = False
    static_init: str = "ones"
    static_lr: float = 1e-3
    freeze_static: bool = False

    def validate(self) -> None:
        if not self.base_model:
            raise ReproError("no base model: pass --base-model (or base-model in the config file)")
        if not self.output:
            raise ReproError("no output folder: pass --output")
        if not self.data:
            raise ReproError("no training data: pass --data")
        from repro.train.data import detect_format

        detect_format(self.data, self.data_format)  # a missing data file fails before torch loads
        if self.loss not in LOSSES:
            raise ReproError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.data_format not in DATA_FORMATS:
            raise ReproError(f"unknown data format {self.data_format!r}; choose one of {', '.join(DATA_FORMATS)}")
        if self.lambda_q < 0 or self.lambda_d < 0:
            raise ReproError("--lambda-q and --lambda-d must be >= 0")
        if self.reg_warmup_steps < 0:
            raise ReproError("--reg-warmup-steps must be >= 0 (0 = full lambda from the first step)")
        if self.bf16 and self.fp16:
            raise ReproError("choose one of --bf16 and --fp16")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ReproError("--batch-size and --grad-accum must be >= 1")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ReproError(f"--max-steps {self.max_steps}: give a positive number of optimizer steps, or -1 "
                             "(the default) to train for --epochs")
        if self.max_steps == -1 and self.epochs <= 0:
            raise ReproError("give --max-steps N or --epochs E (> 0)")
        from repro.defaults import check_max_length

        check_max_length(self.max_length)
        if self.num_negatives < 0:
            raise ReproError("--num-negatives must be >= 0")
        if self.loss != "mnrl" and self.num_negatives < 1:
            raise ReproError(f"--loss {self.loss} needs at least one scored negative per example (--num-negatives >= 1)")
        if self.best_measure not in ("ndcg@10", "rr@10"):
            raise ReproError(f"unknown --best-measure {self.best_measure!r}; choose ndcg@10 or rr@10")
        if self.save_steps < 1 or self.diagnostics_steps < 1:
            raise ReproError("--save-steps and --diagnostics-steps must be >= 1")
        self._validate_inference_free()

    def _validate_inference_free(self) -> None:
        if not self.inference_free:
            if self.static_init != "ones" or self.freeze_static:
                raise ReproError("--static-init and --freeze-static only apply with --inference-free")
            return
        if not (self.static_lr > 0):
            raise ReproError(f"--static-lr {self.static_lr}: give a learning rate > 0 for the static query table")
        if self.static_init != "ones":
            if not self.static_init.startswith("idf:") or not self.static_init[4:]:
                raise ReproError(f"--static-init {self.static_init!r}: choose 'ones' or 'idf:FILE' "
                                 "(a JSON object of token -> weight)")
            if not Path(self.static_init[4:]).is_file():
                raise ReproError("--static-init: IDF file not found", self.static_init[4:])
        if self.lambda_q != 0:
            import logging

            logging.getLogger("repro.train").warning(
                "--inference-free: the query regulariser weight is 0 (queries are a static table); "
                "ignoring --lambda-q %g", self.lambda_q)
            self.lambda_q = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _expand(value: Any) -> Any:
    """``${shared}`` -> the shared data root, in strings and lists of strings."""
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, str) and "${shared}" in value:
        from repro.paths import shared_root

        return value.replace("${shared}", str(shared_root()))
    return value


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a training config file into {field: value}; unknown keys are an error."""
    path = Path(path)
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as err:
            raise ReproError("reading TOML on Python 3.10 needs the 'tomli' package") from err
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ReproError("config file not found", path) from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ReproError(f"not valid TOML: {err}", path) from err
    if isinstance(data.get("train"), dict):
        data = {**{k: v for k, v in data.items() if k != "train" and not isinstance(v, dict)}, **data["train"]}
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            continue  # other tables (e.g. [notes]) are documentation for humans
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise ReproError(f"unknown setting {key!r} (known: {', '.join(sorted(FIELDS))})", path)
        out[name] = _expand(value)
    return out
