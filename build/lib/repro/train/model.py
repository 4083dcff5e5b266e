"""Loading a base model offline (plain *ForMaskedLM folder, SparseEncoder folder or cached hub ID) and freezing parts.

Freezing and tied weights: BERT/DistilBERT MLM heads tie the decoder weight (vocab x hidden) to the
input word embeddings; it is ONE parameter. `--freeze-encoder` freezes the whole base model
(embeddings + transformer layers), so a tied decoder weight is frozen with it and only the head's
transform (dense + LayerNorm) and the decoder bias train. An untied decoder weight keeps training.
`--freeze-embeddings` freezes the embedding layer (word, position, type, LayerNorm), and with it
a tied decoder weight.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from repro.errors import ReproError

log = logging.getLogger(__name__)


def _is_sparse_encoder_folder(path: Path) -> bool:
    return (path / "modules.json").is_file()


def _is_mlm_folder(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        archs = json.loads(cfg.read_text(encoding="utf-8")).get("architectures") or []
    except json.JSONDecodeError as err:
        raise ReproError(f"config.json is not valid JSON ({err})", cfg) from err
    return any(a.endswith("ForMaskedLM") for a in archs)


def load_sparse_encoder(name: str | Path, max_seq_length: int = 256, device: str | None = None):
    """A SparseEncoder from a local folder or an already-cached hub ID, never touching the network."""
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sparse_encoder import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling

    path = Path(name)
    try:
        if path.is_dir():
            if _is_sparse_encoder_folder(path):
                model = SparseEncoder(str(path), local_files_only=True, device=device)
                model.max_seq_length = max_seq_length
                return model
            if _is_mlm_folder(path):
                transformer = Transformer(str(path), transformer_task="fill-mask", max_seq_length=max_seq_length)
                return SparseEncoder(modules=[transformer, SpladePooling(pooling_strategy="max")], device=device)
            raise ReproError("not a SparseEncoder folder (modules.json) nor a *ForMaskedLM folder (config.json)", path)
        if path.exists():
            raise ReproError("expected a model folder", path)
        # Not a local folder: only an ID already in the local Hugging Face cache can work offline.
        model = SparseEncoder(str(name), local_files_only=True, device=device)
        model.max_seq_length = max_seq_length
        return model
    except ReproError:
        raise
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReproError(
            f"cannot load model {str(name)!r} offline: not a usable local folder and not in the Hugging Face cache ({first[:160]})"
        ) from err


def mlm_model(model):
    """The Hugging Face *ForMaskedLM inside a SparseEncoder."""
    return model[0].auto_model


def apply_freezing(model, freeze_encoder: bool = False, freeze_embeddings: bool = False) -> dict[str, int]:
    """Set requires_grad as asked; returns trainable / frozen parameter counts (tied weights counted once)."""
    hf = mlm_model(model)
    if freeze_encoder:
        for p in hf.base_model.parameters():
            p.requires_grad_(False)
    if freeze_embeddings:
        for p in hf.base_model.embeddings.parameters():
            p.requires_grad_(False)
    tied = hf.get_output_embeddings() is not None and (
        hf.get_output_embeddings().weight is hf.get_input_embeddings().weight
    )
    trainable = sum(p.numel() for p in hf.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in hf.parameters() if not p.requires_grad)
    if trainable == 0:
        raise ReproError("nothing left to train: every parameter is frozen")
    return {"trainable_params": trainable, "frozen_params": frozen, "decoder_tied_to_embeddings": int(tied)}
