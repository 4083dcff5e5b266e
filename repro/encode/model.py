"""Locate and read a SPLADE model: every setting of its folder (or hub cache entry), in one place.

Shapes understood (docs/models.md), each encoded exactly as sentence-transformers 6.x does:
- a plain ``*ForMaskedLM`` folder (naver's checkpoints): max pooling of log(1 + ReLU(logits));
- a SparseEncoder folder: ``[Transformer(fill-mask) | MLMTransformer, SpladePooling]``, with
  SpladePooling's ``pooling_strategy`` (max|sum) and ``activation_function`` (relu|log1p_relu), the
  legacy ``max_seq_length`` / ``do_lower_case`` of ``sentence_bert_config.json``, and the prompts of
  ``config_sentence_transformers.json``;
- a ``Router`` (inference-free SPLADE): each of the query and document routes is one of the above
  MLM stacks or a ``SparseStaticEmbedding`` (tokenize without specials, one weight per distinct token).
Anything else (CSR's SparseAutoEncoder, Dense, Pooling, a feature-extraction Transformer,
``max_active_dims``) is refused with one line naming the module: never encoded approximately.

A hub ID is read from the local Hugging Face cache (``HF_HOME/hub/models--org--name/snapshots/<rev>/``
with ``refs/main``), so a hub model and its folder are the same thing here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.errors import ReproError
from repro.manifest import cached_sha256

_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "vocab.json", "sentencepiece.bpe.model")
FINGERPRINT_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")
POOLINGS = ("max", "sum")
ACTIVATIONS = ("relu", "log1p_relu")
MLM_CLASSES = ("Transformer", "MLMTransformer")
SIDES = ("query", "document")


@dataclass
class Route:
    """How one side (query or document) is encoded: an MLM stack, or a static weight table."""

    kind: str  # "mlm" | "static"
    path: str  # the folder holding this side's weights and tokenizer
    pooling: str = "max"
    activation: str = "relu"
    max_length: int | None = None  # legacy sentence_bert_config.json max_seq_length
    do_lower_case: bool = False
    sentence_transformers: bool = False  # ST caps model_max_length at the position embeddings
    module: str = ""  # what modules.json / router_config.json call it, for messages


@dataclass
class ModelSource:
    """A resolved model: where it is and how each side is encoded."""

    name: str
    root: str  # the model folder (a hub ID's snapshot folder)
    routes: dict[str, Route]
    prompts: dict[str, str] = field(default_factory=dict)
    shape: str = "mlm"  # "mlm" (plain *ForMaskedLM) | "sparse-encoder" | "router"
    local: bool = True

    def route(self, side: str) -> Route:
        return self.routes[side]

    @property
    def path(self) -> str:
        """The document side's folder (the MLM every shape has)."""
        return self.routes["document"].path

    @property
    def max_length(self) -> int | None:
        return self.routes["document"].max_length

    @property
    def inference_free(self) -> bool:
        return self.routes["query"].kind == "static"


def resolve(model: str | Path) -> ModelSource:
    """Read a model folder, or a hub ID from the local Hugging Face cache; every problem in one line."""
    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ReproError("model must be a folder (with config.json) or a hub ID", path)
        return read_folder(path, path.name)
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or not text.strip():
        raise ReproError("model folder not found", path)
    return read_folder(_hub_snapshot(text), text)


def _hub_snapshot(repo_id: str) -> Path:
    """The cached snapshot folder of a hub model (downloading it only when the hub is reachable)."""
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), invalid ID (HFValidationError), ...
        pass
    where = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    placement = f"place it as {where}/snapshots/<rev>/ with {where}/refs/main holding <rev>, or pass a local folder"
    if not hub_reachable():
        raise ReproError(f"model {repo_id!r} is not a local folder and not in the Hugging Face cache, and the hub "
                         f"is unreachable (offline?); {placement}")
    try:
        return Path(snapshot_download(repo_id))
    except Exception as err:
        first = (str(err).splitlines() or [""])[0]
        raise ReproError(f"could not fetch model {repo_id!r} from the Hugging Face hub ({type(err).__name__}: "
                         f"{first}); {placement}") from err


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReproError(f"not valid JSON ({err.msg})", path, err.lineno) from err
    except (OSError, UnicodeDecodeError) as err:
        raise ReproError(f"cannot read ({type(err).__name__})", path) from err


def read_folder(path: Path, name: str) -> ModelSource:
    """A plain *ForMaskedLM folder or a SparseEncoder folder (modules.json) -> ModelSource."""
    modules_file = path / "modules.json"
    if not modules_file.exists():
        route = _mlm_route(path, "model", pooling="max", activation="relu", st=False)
        return ModelSource(name=name, root=str(path), routes={"query": route, "document": route}, shape="mlm")
    entries = _json(modules_file)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ReproError("modules.json must be a list of modules", modules_file)
    entries = sorted(entries, key=lambda e: e.get("idx", 0))
    classes = [_class_of(e.get("type", ""), modules_file, e.get("path", "")) for e in entries]
    if classes == ["Router"]:
        routes = _router(path / entries[0].get("path", ""), modules_file)
        return ModelSource(name=name, root=str(path), routes=routes, prompts=_prompts(path), shape="router")
    route = _stack(path, [(e.get("path", ""), c) for e, c in zip(entries, classes)], modules_file)
    prompts = _prompts(path)
    return ModelSource(name=name, root=str(path), routes={"query": route, "document": route}, prompts=prompts,
                       shape="sparse-encoder")


def _class_of(type_name: str, where: Path, module: str) -> str:
    """The class name of a modules.json type; only sentence_transformers' own classes are read."""
    if not type_name.startswith("sentence_transformers."):
        raise ReproError(f"module {module or '(root)'} has type {type_name!r}, custom code repro cannot encode "
                         "exactly (only sentence_transformers' SPLADE modules)", where)
    return type_name.rsplit(".", 1)[-1]


def _unsupported(module: str, cls: str, where: Path) -> ReproError:
    return ReproError(f"module {module or '(root)'} is a {cls}: repro encodes exactly only SPLADE "
                      "(Transformer fill-mask + SpladePooling, or a Router of those and SparseStaticEmbedding)", where)


def _stack(root: Path, modules: list[tuple[str, str]], where: Path) -> Route:
    """One route's module list -> Route: [MLM, SpladePooling] or [SparseStaticEmbedding]."""
    for sub, cls in modules:
        if cls not in (*MLM_CLASSES, "SpladePooling", "SparseStaticEmbedding"):
            raise _unsupported(sub, cls, where)
    classes = [cls for _, cls in modules]
    if classes == ["SparseStaticEmbedding"]:
        return _static_route(root / modules[0][0], modules[0][0] or "(root)")
    if len(classes) == 2 and classes[0] in MLM_CLASSES and classes[1] == "SpladePooling":
        pool_dir = root / modules[1][0]
        pool = _json(pool_dir / "config.json") if (pool_dir / "config.json").exists() else {}
        pooling = pool.get("pooling_strategy", "max")
        activation = pool.get("activation_function", "relu")
        if pooling not in POOLINGS:
            raise ReproError(f"SpladePooling pooling_strategy {pooling!r} is not one of {', '.join(POOLINGS)}", pool_dir / "config.json")
        if activation not in ACTIVATIONS:
            raise ReproError(f"SpladePooling activation_function {activation!r} is not one of {', '.join(ACTIVATIONS)}", pool_dir / "config.json")
        route = _mlm_route(root / modules[0][0], modules[0][0] or "(root)", pooling=pooling, activation=activation,
                           st=True, cls=classes[0])
        dim = pool.get("embedding_dimension", pool.get("word_embedding_dimension"))
        vocab = _json(Path(route.path) / "config.json").get("vocab_size")
        if dim is not None and vocab is not None and int(dim) != int(vocab):
            raise ReproError(f"SpladePooling embedding dimension {dim} differs from the MLM's vocabulary ({vocab})",
                             pool_dir / "config.json")
        return route
    raise ReproError(f"module list {' + '.join(classes) or '(empty)'} is not a SPLADE stack repro encodes exactly "
                     "(MLM Transformer + SpladePooling, or SparseStaticEmbedding)", where)


def _mlm_route(folder: Path, module: str, *, pooling: str, activation: str, st: bool, cls: str = "Transformer") -> Route:
    max_length, lower = None, False
    cfg_file = folder / "sentence_bert_config.json"
    if st and cfg_file.exists():
        cfg = _json(cfg_file)
        task = cfg.get("transformer_task", "fill-mask" if cls == "MLMTransformer" else "feature-extraction")
        if task != "fill-mask":
            raise ReproError(f"module {module} is a Transformer with transformer_task {task!r}: SPLADE needs "
                             "'fill-mask' (MLM logits), so repro cannot encode it exactly", cfg_file)
        max_length, lower = cfg.get("max_seq_length"), bool(cfg.get("do_lower_case", False))
    elif st and cls != "MLMTransformer":
        raise ReproError(f"module {module} is a Transformer without sentence_bert_config.json (feature-extraction "
                         "by default): SPLADE needs transformer_task 'fill-mask'", folder)
    if not (folder / "config.json").exists():
        raise ReproError("no config.json: not a transformers model folder", folder)
    archs = _json(folder / "config.json").get("architectures") or []
    if archs and not any(a.endswith("ForMaskedLM") for a in archs):
        raise ReproError(f"model has a {', '.join(archs)} head; SPLADE needs a masked-LM head (*ForMaskedLM)",
                         folder / "config.json")
    if not any((folder / f).exists() for f in _TOKENIZER_FILES):
        raise ReproError("model folder has no tokenizer (tokenizer.json or vocab.txt)", folder)
    return Route("mlm", str(folder), pooling=pooling, activation=activation, max_length=max_length,
                 do_lower_case=lower, sentence_transformers=st, module=module)


def _static_route(folder: Path, module: str) -> Route:
    if not any((folder / f).exists() for f in _TOKENIZER_FILES):
        raise ReproError("SparseStaticEmbedding folder has no tokenizer (tokenizer.json)", folder)
    cfg = _json(folder / "config.json") if (folder / "config.json").exists() else {}
    weights = [folder / "model.safetensors", folder / "pytorch_model.bin"]
    if isinstance(cfg.get("path"), str):
        weights.insert(0, folder / cfg["path"])
    if not any(w.exists() for w in weights):
        raise ReproError("SparseStaticEmbedding folder has no weights (model.safetensors)", folder)
    return Route("static", str(folder), pooling="static", activation="", module=module)


def _router(folder: Path, modules_file: Path) -> dict[str, Route]:
    """Router -> {query: Route, document: Route}, routes chosen as SparseEncoder.encode_query/_document do."""
    cfg_file = folder / "router_config.json"
    if not cfg_file.exists():
        cfg_file = folder / "config.json"
    if not cfg_file.exists():
        raise ReproError("Router has no router_config.json", folder)
    cfg = _json(cfg_file)
    types, structure = cfg.get("types") or {}, cfg.get("structure") or {}
    params = cfg.get("parameters") or {}
    if not structure:
        raise ReproError("router_config.json has no \"structure\" (routes)", cfg_file)
    mappings: dict[tuple, str] = {}
    for key, value in (params.get("route_mappings") or {}).items():
        try:
            import ast

            mappings[tuple(ast.literal_eval(key))] = value
        except (ValueError, SyntaxError, TypeError):
            raise ReproError(f"router_config.json route_mappings key {key!r} is not a (task, modality) pair", cfg_file) from None
    routes = {}
    for side in SIDES:
        name = _route_name(side, structure, mappings, params.get("default_route"), cfg_file)
        stack = [(sub, _class_of(types.get(sub, ""), cfg_file, sub)) for sub in structure[name]]
        routes[side] = _stack(folder, stack, cfg_file)
    if routes["document"].kind != "mlm":
        raise ReproError("the Router's document route is a SparseStaticEmbedding: repro indexes documents with an MLM "
                         "route only", cfg_file)
    return routes


def _route_name(task: str, structure: dict, mappings: dict, default: str | None, where: Path) -> str:
    """sentence-transformers' route resolution for text input (router.py _resolve_route_name)."""
    for key in ((task, "text"), (task, None), (None, "text"), (None, None)):
        if key in mappings:
            return mappings[key]
    for name in (task, "text"):
        if name in structure:
            return name
    raise ReproError(f"Router has no route for {task}s (routes: {', '.join(structure)})", where)


def _prompts(path: Path) -> dict[str, str]:
    """Query and document prompts of config_sentence_transformers.json (prepended as text, like ST)."""
    cfg_file = path / "config_sentence_transformers.json"
    if not cfg_file.exists():
        return {}
    cfg = _json(cfg_file)
    if cfg.get("max_active_dims") is not None:
        raise ReproError(f"max_active_dims = {cfg['max_active_dims']} (top-k pruning of every vector) is not "
                         "supported: repro would not give the model's vectors", cfg_file)
    prompts = cfg.get("prompts") or {}
    document = next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts), "")
    return {"query": prompts.get("query") or "", "document": document or ""}


# --- loading ------------------------------------------------------------------------------------
def load_tokenizer(route: Route) -> Any:
    """The route's tokenizer, with do_lower_case applied as sentence-transformers applies it."""
    from transformers import AutoTokenizer

    tokenizer = _loading(route.path, lambda: AutoTokenizer.from_pretrained(route.path, local_files_only=True))
    if route.do_lower_case and getattr(tokenizer, "is_fast", False):
        from tokenizers.normalizers import Lowercase, Sequence

        normalizer = tokenizer.backend_tokenizer.normalizer
        parts = list(normalizer) if isinstance(normalizer, Sequence) else ([normalizer] if normalizer is not None else [])
        if not any(isinstance(n, Lowercase) for n in parts):
            tokenizer.backend_tokenizer.normalizer = Sequence([Lowercase(), *parts])
    return tokenizer


# Weights are loaded as float32 whatever dtype the folder was saved in: transformers 5 (and so
# sentence-transformers) would keep a bf16/fp16 checkpoint in that dtype, which the fp32 and mixed
# heads, `--dtype float32` and the equivalence with ST loaded in float32 all rest on not doing. The
# upcast is exact; `--dtype bfloat16`/`float16` (autocast) is the way to compute in 16 bits.
LOAD_DTYPE = "float32"


def load(source: ModelSource, side: str = "document", *, in_memory: bool = False) -> tuple[Any, Any]:
    """Load (tokenizer, masked-LM model in float32) of one side, in eval mode; failures become one line.

    ``in_memory``: read the weights into memory instead of mapping the file, for a caller that
    replaces most of them (oneDNN's reordered copies, repro.encode.cpu_linear): a mapped file's pages
    touched while copying stay in the process's memory as long as the map does, which the remaining
    weights keep open (BERT-base-sized: peak 1,667 MiB mapped against 1,383 read in)."""
    from transformers import AutoModelForMaskedLM

    route = source.route(side)
    if route.kind != "mlm":
        raise ReproError(f"the {side} side of this model is a {route.module} (no transformer)", route.path)
    tokenizer = load_tokenizer(route)
    model = _loading(route.path, lambda: AutoModelForMaskedLM.from_pretrained(route.path, local_files_only=True,
                                                                             dtype=LOAD_DTYPE, disable_mmap=in_memory))
    model.eval()
    return tokenizer, model


def default_max_length(route: Route, tokenizer: Any, positions: int | None) -> int:
    """The model's own max length: the legacy max_seq_length, else the tokenizer's, within the positions."""
    if route.max_length:
        return int(route.max_length)
    own = tokenizer.model_max_length or 512
    if not route.sentence_transformers:
        own = min(own, 512)  # a plain MLM folder: at most BERT's 512, as before
    return int(min(own, positions or 512))


def load_static(route: Route) -> tuple[Any, Any]:
    """(tokenizer, float32 weight per token id) of a SparseStaticEmbedding folder."""
    import torch

    folder = Path(route.path)
    tokenizer = load_tokenizer(route)
    cfg = _json(folder / "config.json") if (folder / "config.json").exists() else {}
    if isinstance(cfg.get("path"), str) and cfg["path"].endswith(".json"):
        table = _json(folder / cfg["path"])
        weight = torch.zeros(len(tokenizer.get_vocab()), dtype=torch.float32)
        ids = tokenizer.convert_tokens_to_ids(list(table))
        weight[torch.tensor(ids, dtype=torch.long)] = torch.tensor(list(table.values()), dtype=torch.float32)
        return tokenizer, weight
    if (folder / "model.safetensors").exists():
        from safetensors.torch import load_file

        state = _loading(route.path, lambda: load_file(str(folder / "model.safetensors")))
    else:
        state = _loading(route.path, lambda: torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True))
    if set(state) != {"weight"} or state["weight"].dim() != 1:
        raise ReproError(f"SparseStaticEmbedding weights must be one 1-D tensor 'weight' (found {', '.join(state)})", folder)
    return tokenizer, state["weight"].float()


def _loading(path: str, loader: Any) -> Any:
    try:
        with quiet_loading():
            return loader()
    except ReproError:
        raise
    except Exception as err:  # OSError, ValueError, safetensors' SafetensorError (damaged weights), ...
        first = (str(err).splitlines() or [""])[0]
        raise ReproError(f"cannot load model: {type(err).__name__}: {first}", path) from err


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


# --- fingerprint --------------------------------------------------------------------------------
def fingerprint(folder: str | Path) -> str:
    """What identifies a model folder's content: the SHA-256 of its weight, config and tokenizer files,
    sub-folders (SparseEncoder modules, Router routes) included; the same bytes give the same value."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for item in sorted(folder.rglob("*")):
        if item.is_file() and item.suffix in FINGERPRINT_SUFFIXES and not item.name.startswith("."):
            digest.update(f"{item.relative_to(folder).as_posix()}:{cached_sha256(item)}\n".encode())
    return digest.hexdigest()


def is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "modules.json").is_file()


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
