"""Helpers shared by tests and benchmarks: tiny download-free models (a random BERT MLM with its own
tokenizer, SparseEncoder shapes, hub-cache entries) and a torchrun launcher that reports hangs.

Random weights from a config cost exactly what trained ones do, so benchmarks can use a
BERT-base-sized model built here; tests use a 2-layer one that builds in about a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPRO = str(Path(sys.executable).parent / "repro")  # the console script of this environment


def torchrun(args: list[str], env: dict[str, str], hang_s: float, program: list[str] | None = None,
             nproc: int = 2) -> tuple[subprocess.CompletedProcess, bool]:
    """``repro ARGS`` on ``nproc`` ranks (``--standalone``: a free port, so concurrent jobs never join
    each other's store); returns (result, hung). A run still going after ``hang_s`` is sent SIGUSR1
    first (every repro rank then prints its stacks to stderr), then killed with its whole session."""
    import psutil

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           *(program or ["--no-python", REPRO]), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=hang_s)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err), False
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.send_signal(signal.SIGUSR1)
        time.sleep(3)
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err), True

# Small English sample so the trained WordPiece vocabulary has real words, punctuation and
# subwords; the texts are written for this project.
_TOKENIZER_TEXT = """
what is python programming. python is a programming language used for scripting, data science and web servers.
best restaurants in paris: bistros, brasseries and cafes near the seine serve french food.
the quick brown fox jumps over the lazy dog! how many legs does a spider have? eight legs.
aerodynamics of a wing in a slipstream; lift increase due to the propeller at angles of attack.
information retrieval ranks documents for queries; sparse vectors, inverted indexes and lucene.
the boundary layer on a flat plate in supersonic flow, with heat transfer and skin friction.
machine learning models such as bert predict masked tokens from their context in a sentence.
time sharing systems for ibm computers, operating systems, compilers, algorithms and data structures.
caffeine during pregnancy, the canadian military, fruit native to australia, and the manhattan project.
"""


# Subword endings put in the vocabulary so that words outside it split into a stem and a "##" piece.
_SUFFIXES = ("s", "es", "ed", "er", "ing", "ion", "ly", "al", "ic", "ity")


def _sample_vocabulary(vocab_size: int, specials: list[str]) -> dict[str, int]:
    """WordPiece vocabulary of the sample text, in a fixed order: specials, characters, "##"
    characters, the suffix pieces, words, then word starts and endings, each by falling frequency
    (ties: first appearance).
    Built by rule because tokenizers' WordPieceTrainer breaks ties by hash order, so it gave a
    different vocabulary (even a different size) in each process, hence a different test model."""
    from tokenizers import normalizers, pre_tokenizers

    text = normalizers.BertNormalizer(lowercase=True).normalize_str(_TOKENIZER_TEXT)
    words = [w for w, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(text)]
    chars = sorted({c for w in words for c in w})
    inner = sorted({c for w in words for c in w[1:]})
    pieces = [*specials, *chars, *(f"##{c}" for c in inner), *(f"##{s}" for s in _SUFFIXES)]
    pieces += [w for w, _ in Counter(words).most_common()]  # most_common: ties keep first appearance
    # word starts and "##" endings of 2-3 characters, so that subwords are common
    parts = Counter(part for w in words for n in (2, 3) if len(w) > n for part in (w[:n], f"##{w[-n:]}"))
    pieces += [part for part, _ in parts.most_common()]
    vocab: dict[str, int] = {}
    for piece in pieces:
        if len(vocab) < vocab_size:
            vocab.setdefault(piece, len(vocab))
    return vocab


def build_tokenizer(folder: Path, vocab_size: int = 600):
    """A BERT WordPiece tokenizer over the sample text, identical in every process (no download)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(_sample_vocabulary(vocab_size, specials), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    fast.save_pretrained(folder)
    return fast


def build_random_mlm(
    folder: str | Path,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate: int = 64,
    vocab_size: int = 600,
    max_position: int = 512,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised BertForMaskedLM plus tokenizer into ``folder``."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(folder, vocab_size=vocab_size)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_position,
    )
    torch.manual_seed(seed)
    model = BertForMaskedLM(config)
    model.save_pretrained(folder)
    return folder


def build_sparse_encoder(
    folder: str | Path,
    mlm: str | Path,
    *,
    pooling: str = "max",
    activation: str = "relu",
    prompts: dict[str, str] | None = None,
    max_seq_length: int | None = None,
) -> Path:
    """Save a sentence-transformers SparseEncoder [Transformer(fill-mask), SpladePooling] around ``mlm``."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    kwargs = {"max_seq_length": max_seq_length} if max_seq_length else {}
    module = Transformer(str(mlm), transformer_task="fill-mask", **kwargs)
    model = SparseEncoder(modules=[module, SpladePooling(pooling_strategy=pooling, activation_function=activation)],
                          prompts=prompts or None)
    model.save(str(folder))
    return Path(folder)


def build_inference_free(
    folder: str | Path, mlm: str | Path, *, pooling: str = "max", activation: str = "relu", seed: int = 1,
    prompts: dict[str, str] | None = None,
) -> Path:
    """Save an inference-free SparseEncoder: a Router whose query route is a SparseStaticEmbedding
    (random IDF-like weights in [0, 5)) and whose document route is the MLM + SpladePooling."""
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding, SpladePooling, Transformer

    document = Transformer(str(mlm), transformer_task="fill-mask")
    vocab = len(document.tokenizer.get_vocab())
    weight = torch.rand(vocab, generator=torch.Generator().manual_seed(seed)) * 5.0
    static = SparseStaticEmbedding(tokenizer=document.tokenizer, weight=weight, frozen=True)
    router = Router.for_query_document(query_modules=[static],
                                       document_modules=[document, SpladePooling(pooling, activation_function=activation)])
    SparseEncoder(modules=[router], similarity_fn_name="dot", prompts=prompts or None).save(str(folder))
    return Path(folder)


def place_in_hub_cache(folder: str | Path, hf_home: str | Path, repo_id: str) -> Path:
    """Copy a model folder into a Hugging Face hub cache as ``repo_id`` (hub/models--org--name/
    snapshots/<rev>/ plus refs/main), so HF_HOME=hf_home with HF_HUB_OFFLINE=1 loads it by ID."""
    import hashlib
    import shutil

    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    rev = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / rev
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(folder, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    return snapshot
