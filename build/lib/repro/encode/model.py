"""Locate and load a SPLADE model: a local folder or hub ID, SparseEncoder or plain *ForMaskedLM.

A sentence-transformers SparseEncoder folder keeps the MLM transformer in a sub-folder named by
`modules.json`; a plain MLM folder (naver/splade checkpoints) holds it at the top. Both give the
same (tokenizer, masked-LM) pair here, with every failure explained in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.errors import ReproError

_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "vocab.json", "sentencepiece.bpe.model")


@dataclass
class ModelSource:
    """Where the masked-LM weights and tokenizer live, and the max length a SparseEncoder recorded."""

    name: str
    path: str  # local folder or hub ID
    local: bool
    max_length: int | None = None


def resolve(model: str | Path) -> ModelSource:
    """Find the masked-LM folder inside a model folder, or accept a hub ID."""
    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ReproError("model must be a folder (with config.json) or a hub ID", path)
        return _resolve_folder(path)
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ReproError("model folder not found", path)
    return ModelSource(name=text, path=text, local=False)


def _resolve_folder(path: Path) -> ModelSource:
    inner, max_length = path, None
    modules = path / "modules.json"
    if modules.exists():
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ReproError(f"modules.json is not valid JSON ({err.msg})", modules) from err
        first = next((e for e in entries if "Transformer" in e.get("type", "")), None)
        if first is None:
            raise ReproError("SparseEncoder folder has no (MLM)Transformer module in modules.json", modules)
        inner = path / first.get("path", "")
        for cfg_name in ("sentence_bert_config.json", "sentence_xlnet_config.json"):
            cfg = inner / cfg_name
            if cfg.exists():
                max_length = json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length")
                break
    if not (inner / "config.json").exists():
        raise ReproError("no config.json: not a transformers model folder", inner)
    config = json.loads((inner / "config.json").read_text(encoding="utf-8"))
    archs = config.get("architectures") or []
    if archs and not any(a.endswith("ForMaskedLM") for a in archs):
        raise ReproError(
            f"model has a {', '.join(archs)} head; SPLADE needs a masked-LM head (*ForMaskedLM)", inner / "config.json"
        )
    if not any((inner / f).exists() for f in _TOKENIZER_FILES) and not any((path / f).exists() for f in _TOKENIZER_FILES):
        raise ReproError("model folder has no tokenizer (tokenizer.json or vocab.txt)", path)
    return ModelSource(name=path.name, path=str(inner), local=True, max_length=max_length)


def load(source: ModelSource) -> tuple[Any, Any]:
    """Load (tokenizer, masked-LM model) in eval mode; hub failures become one clear line."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    kwargs = {"local_files_only": True} if source.local or _cached(source.path) else {}
    if not kwargs and not hub_reachable():
        raise ReproError(
            f"model {source.path!r} is not a local folder, not in the Hugging Face cache, and the hub is "
            "unreachable (no network?); download it elsewhere and pass the local folder"
        )
    try:
        with quiet_loading():
            tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
            model = AutoModelForMaskedLM.from_pretrained(source.path, **kwargs)
    except Exception as err:  # OSError, ValueError, safetensors' SafetensorError (damaged weights), ...
        if source.local:
            first = (str(err).splitlines() or [""])[0]
            raise ReproError(f"cannot load model: {type(err).__name__}: {first}", source.path) from err
        raise ReproError(
            f"could not fetch model {source.path!r} from the Hugging Face hub (no network? unknown ID?); "
            "download it elsewhere and pass the local folder"
        ) from err
    model.eval()
    return tokenizer, model


def _cached(repo_id: str) -> bool:
    """Whether a hub model is already in the local Hugging Face cache (then no network is needed)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an invalid repo id, an unreadable cache: treat as not cached
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub, instead of transformers' minute of retries when offline."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' per-load progress bar and warnings off while loading, restored after.

    Scoped, not process-wide: a caller's own transformers settings are left as they were.
    """
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
