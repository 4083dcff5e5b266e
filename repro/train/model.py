"""Loading a base model offline (plain *ForMaskedLM folder, SparseEncoder folder or cached hub ID) and freezing parts.

Freezing and tied weights: BERT/DistilBERT MLM heads tie the decoder weight (vocab x hidden) to the
input word embeddings; it is ONE parameter. `--freeze-encoder` freezes the whole base model
(embeddings + transformer layers), so a tied decoder weight is frozen with it and only the head's
transform (dense + LayerNorm) and the decoder bias train. An untied decoder weight keeps training.
`--freeze-embeddings` freezes the embedding layer (word, position, type, LayerNorm), and with it
a tied decoder weight.

Inference-free models (a Router with a SparseStaticEmbedding query route): the freezing flags act
on the document route's MLM; `--freeze-static` on the query table (`build_inference_free`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from repro.encode import model as model_io
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

    # float32 master weights whatever dtype the checkpoint was saved in (repro.encode.model.LOAD_DTYPE):
    # bf16 training is autocast over them, never optimizer steps on 16-bit parameters
    dtype = {"dtype": model_io.LOAD_DTYPE}
    path = Path(name)
    try:
        if path.is_dir():
            if _is_sparse_encoder_folder(path):
                model = SparseEncoder(str(path), local_files_only=True, device=device, model_kwargs=dtype)
                model.max_seq_length = max_seq_length
                return model
            if _is_mlm_folder(path):
                transformer = Transformer(str(path), transformer_task="fill-mask", max_seq_length=max_seq_length,
                                          model_kwargs=dtype)
                return SparseEncoder(modules=[transformer, SpladePooling(pooling_strategy="max")], device=device)
            raise ReproError("not a SparseEncoder folder (modules.json) nor a *ForMaskedLM folder (config.json)", path)
        if path.exists():
            raise ReproError("expected a model folder", path)
        # Not a local folder: only an ID already in the local Hugging Face cache can work offline.
        model = SparseEncoder(str(name), local_files_only=True, device=device, model_kwargs=dtype)
        model.max_seq_length = max_seq_length
        return model
    except ReproError:
        raise
    except (OSError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReproError(
            f"cannot load model {str(name)!r} offline: not a usable local folder and not in the Hugging Face cache ({first[:160]})"
        ) from err


def _router(model):
    from sentence_transformers.base.modules import Router

    first = model[0]
    return first if isinstance(first, Router) else None


def static_module(model):
    """The SparseStaticEmbedding of an inference-free model's query route, or None."""
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding

    router = _router(model)
    if router is None:
        return None
    found = [m for m in router.sub_modules["query"] if isinstance(m, SparseStaticEmbedding)] \
        if "query" in router.sub_modules else []
    return found[0] if found else None


def static_param_pattern(model) -> str:
    """A regex matching exactly the static table's parameter name(s) as the trainer sees them.

    sentence-transformers' docs use ``SparseStaticEmbedding\\.*``, but the trainer matches the
    pattern against parameter NAMES (e.g. ``model.0.sub_modules.query.0.weight``), which hold no
    class name; in 6.2 that pattern finds nothing and the trainer stops. So the pattern is built
    from where the module actually sits.
    """
    import re

    static = static_module(model)
    for name, module in model.named_modules():
        if module is static:
            return r"(^|\.)" + re.escape(name) + r"\."
    raise ReproError("the model has no SparseStaticEmbedding query route")


def mlm_model(model):
    """The Hugging Face *ForMaskedLM inside a SparseEncoder (an inference-free Router: its document route's)."""
    router = _router(model)
    if router is not None:
        return router.sub_modules["document"][0].auto_model
    return model[0].auto_model


def build_inference_free(model, static_init: str = "ones", freeze_static: bool = False):
    """An inference-free SparseEncoder from a loaded base model.

    A plain SPLADE model ([Transformer fill-mask, SpladePooling]) becomes the document route of
    ``Router.for_query_document`` with a new SparseStaticEmbedding query route over the same
    tokenizer, initialised with ones or from an IDF JSON ({token: weight}; tokens not in it get 0).
    An already inference-free model keeps its table (continued training; `static_init` unused).
    Either way the table trains unless `freeze_static`.
    """
    from sentence_transformers.sparse_encoder import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding, SpladePooling

    static = static_module(model)
    if static is None:
        if _router(model) is not None:
            raise ReproError("the base model is a Router without a SparseStaticEmbedding query route; "
                             "--inference-free starts from an MLM, a SPLADE model or an inference-free model")
        modules = list(model)
        if len(modules) != 2 or not isinstance(modules[1], SpladePooling):
            raise ReproError("--inference-free needs a SPLADE base model (MLM Transformer + SpladePooling)")
        tokenizer = modules[0].tokenizer
        if static_init == "ones":
            static = SparseStaticEmbedding(tokenizer=tokenizer, frozen=freeze_static)
        else:
            path = static_init[4:]
            try:
                static = SparseStaticEmbedding.from_json(path, tokenizer=tokenizer, frozen=freeze_static)
            except (ValueError, json.JSONDecodeError, AttributeError) as err:
                raise ReproError(f"cannot read the IDF file ({err}); expected a JSON object of token -> weight",
                                 path) from err
        router = Router.for_query_document(query_modules=[static], document_modules=modules)
        model = SparseEncoder(modules=[router], similarity_fn_name="dot", prompts=model.prompts or None,
                              device=str(model.device))
    elif static_init != "ones":
        log.warning("the base model is already inference-free: its query table is kept, --static-init ignored")
    static.frozen = bool(freeze_static)
    static.weight.requires_grad_(not freeze_static)
    return model


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
    counts = {"trainable_params": trainable, "frozen_params": frozen, "decoder_tied_to_embeddings": int(tied)}
    static = static_module(model)
    if static is not None:
        n = static.weight.numel()
        counts["static_query_params"] = n
        counts["trainable_params" if static.weight.requires_grad else "frozen_params"] += n
        trainable = counts["trainable_params"]
    if trainable == 0:
        raise ReproError("nothing left to train: every parameter is frozen")
    return counts
