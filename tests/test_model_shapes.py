"""Every model shape repro reads is encoded exactly as sentence-transformers encodes it.

For each shape (tiny random models built here): `repro encode` (documents) and `repro encode
--queries` give round(x * factor) of SparseEncoder.encode_document / encode_query on the same
folder, every term and weight, with special tokens ([CLS], [SEP], ...) removed as repro always
does. The only difference allowed is a one-unit flip where fp32 summation order (ST batches by
character length, repro by token length) moves x * factor across a .5 boundary; flips are counted.
Unsupported modules are refused with exit 2, one line, no output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli
from repro.formats.anserini_queries import read_encoded_queries
from repro.formats.collection import iter_vectors
from repro.testing import build_inference_free, build_sparse_encoder, place_in_hub_cache

TEXTS = [
    "what is python programming?", "best restaurants in paris: bistros and cafes near the seine",
    "the quick brown fox jumps over the lazy dog! how many legs does a spider have?",
    "aerodynamics of a wing in a slipstream; lift increase due to the propeller at angles of attack " * 3,
    "information retrieval ranks documents for queries", "sparse vectors, inverted indexes and lucene",
    "the boundary layer on a flat plate in supersonic flow, with heat transfer and skin friction",
    "machine learning models such as bert predict masked tokens", "caffeine during pregnancy",
    "time sharing systems for ibm computers, operating systems, compilers " * 2, "python python python",
    "Fruit native to Australia and the Manhattan Project", "eight legs.", "data science and web servers",
]
FACTOR = 100
MAX_FLIPS = 3  # one-unit .5-boundary flips allowed per shape (measured: 0 on these texts)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory, _tiny_mlm_session) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shapes")
    mlm = _tiny_mlm_session
    return {
        "plain-mlm": mlm,
        "max-relu": build_sparse_encoder(root / "max-relu", mlm),
        "sum-relu": build_sparse_encoder(root / "sum-relu", mlm, pooling="sum"),
        "max-log1p": build_sparse_encoder(root / "max-log1p", mlm, activation="log1p_relu", max_seq_length=16),
        "sum-log1p": build_sparse_encoder(root / "sum-log1p", mlm, pooling="sum", activation="log1p_relu"),
        "prompts": build_sparse_encoder(root / "prompts", mlm, prompts={"query": "query: ", "document": "passage: "}),
        "router": build_inference_free(root / "router", mlm),
        "router-sum": build_inference_free(root / "router-sum", mlm, pooling="sum", activation="log1p_relu"),
    }


def _reference(folder: Path, side: str) -> list[dict[str, int]]:
    """round(x * FACTOR) of SparseEncoder's own vectors, special tokens removed."""
    import torch
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(folder), device="cpu")
    run = model.encode_query if side == "query" else model.encode_document
    dense = run(TEXTS, convert_to_sparse_tensor=False)
    tokenizer = model.tokenizer
    vocab = tokenizer.convert_ids_to_tokens(list(range(dense.shape[1])))
    special = {i for i in tokenizer.all_special_ids if i is not None}
    q = torch.round(dense.float() * FACTOR).to(torch.int64)
    return [{vocab[c]: int(row[c]) for c in torch.nonzero(row > 0).flatten().tolist() if c not in special} for row in q]


def _compare(ours: list[dict[str, int]], ref: list[dict[str, int]]) -> tuple[int, int]:
    """(one-unit flips, weights compared); anything else fails."""
    flips = total = 0
    for mine, theirs in zip(ours, ref, strict=True):
        for tok in set(mine) | set(theirs):
            a, b = mine.get(tok, 0), theirs.get(tok, 0)
            total += 1
            assert abs(a - b) <= 1, (tok, a, b)
            flips += a != b
    return flips, total


def _repro_documents(tmp: Path, model: str, env: dict | None = None) -> list[dict[str, int]]:
    tmp.mkdir(parents=True, exist_ok=True)
    corpus = tmp / "corpus.tsv"
    corpus.write_text("".join(f"d{i}\t{t}\n" for i, t in enumerate(TEXTS)), encoding="utf-8")
    out = tmp / "coll"
    result = CliRunner().invoke(cli, ["encode", str(corpus), "-m", model, "-o", str(out), "-q", "--factor", str(FACTOR)],
                                env=env)
    assert result.exit_code == 0, result.output
    vectors = dict(iter_vectors(out))
    return [vectors[f"d{i}"] for i in range(len(TEXTS))]


def _repro_queries(tmp: Path, model: str, env: dict | None = None, max_length: int = 512) -> list[dict[str, int]]:
    tmp.mkdir(parents=True, exist_ok=True)
    topics = tmp / "topics.tsv"
    topics.write_text("".join(f"q{i}\t{t}\n" for i, t in enumerate(TEXTS)), encoding="utf-8")
    out = tmp / "queries.tsv"
    result = CliRunner().invoke(cli, ["encode", str(topics), "--queries", "-m", model, "-o", str(out),
                                      "--factor", str(FACTOR), "--max-length", str(max_length)], env=env)
    assert result.exit_code == 0, result.output
    vectors = read_encoded_queries(out)
    return [vectors.get(f"q{i}", {}) for i in range(len(TEXTS))]


@pytest.mark.parametrize("shape", ["plain-mlm", "max-relu", "sum-relu", "max-log1p", "sum-log1p", "prompts",
                                   "router", "router-sum"])
def test_documents_and_queries_equal_sparse_encoder(shape, shapes, tmp_path):
    folder = shapes[shape]
    docs = _repro_documents(tmp_path, str(folder))
    flips, total = _compare(docs, _reference(folder, "document"))
    assert total > 500 and flips <= MAX_FLIPS, (flips, total)
    # queries default to 64 tokens (naver's convention); the model's own length is given to compare
    queries = _repro_queries(tmp_path, str(folder), max_length=16 if shape == "max-log1p" else 512)
    flips, total = _compare(queries, _reference(folder, "query"))
    assert total > 20 and flips <= MAX_FLIPS, (flips, total)


def test_settings_are_honoured_not_defaulted(shapes, tmp_path):
    """Sum pooling, log1p_relu, prompts and max_seq_length each change the vectors."""
    base = _repro_documents(tmp_path / "a", str(shapes["max-relu"]))
    for other in ("sum-relu", "max-log1p", "prompts"):
        assert _repro_documents(tmp_path / other, str(shapes[other])) != base, other


def test_inference_free_queries_are_the_static_table(shapes, tmp_path):
    from repro.encode.queries import query_encoder

    encoder = query_encoder(str(shapes["router"]))
    assert not hasattr(encoder, "model")  # no transformer on the query side
    once, thrice = encoder.encode(["python", "python python python"])
    assert once == thrice and len(once) == 1


def test_hub_cache_entries_read_like_folders(shapes, tmp_path, monkeypatch):
    hf_home = tmp_path / "hf"
    place_in_hub_cache(shapes["sum-relu"], hf_home, "tiny-org/splade-sum")
    place_in_hub_cache(shapes["router"], hf_home, "tiny-org/splade-router")
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.chdir(tmp_path)
    assert _repro_documents(tmp_path / "hub", "tiny-org/splade-sum") == _repro_documents(tmp_path / "dir", str(shapes["sum-relu"]))
    assert _repro_queries(tmp_path / "hub", "tiny-org/splade-router") == _repro_queries(tmp_path / "dir", str(shapes["router"]))
    result = CliRunner().invoke(cli, ["encode", str(tmp_path / "dir" / "corpus.tsv"), "-m", "tiny-org/absent",
                                      "-o", str(tmp_path / "none")])
    assert result.exit_code == 2 and "models--tiny-org--absent" in result.output and "refs/main" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "none").exists()


def _csr(folder: Path, mlm: Path) -> Path:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sentence_transformer.modules import Pooling
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder, Transformer

    t = Transformer(str(mlm), transformer_task="feature-extraction")
    pooling = Pooling(t.get_embedding_dimension(), pooling_mode="mean")
    SparseEncoder(modules=[t, pooling, SparseAutoEncoder(input_dim=32, hidden_dim=64, k=8, k_aux=16)]).save(str(folder))
    return folder


def _with_dense(folder: Path, src: Path) -> Path:
    shutil.copytree(src, folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.base.modules.dense.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    return folder


def _feature_extraction(folder: Path, src: Path) -> Path:
    shutil.copytree(src, folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": "sentence_transformers.sparse_encoder.models.SpladePooling"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": False}))
    return folder


def _max_active(folder: Path, src: Path) -> Path:
    shutil.copytree(src, folder)
    cfg = json.loads((folder / "config_sentence_transformers.json").read_text())
    cfg["max_active_dims"] = 16
    (folder / "config_sentence_transformers.json").write_text(json.dumps(cfg))
    return folder


@pytest.mark.parametrize("kind,needle", [("csr", "Pooling"), ("dense", "Dense"),
                                          ("feature-extraction", "feature-extraction"), ("max-active", "max_active_dims")])
def test_unsupported_modules_are_refused_in_one_line(kind, needle, shapes, tmp_path, _tiny_mlm_session):
    folder = tmp_path / kind
    if kind == "csr":
        _csr(folder, _tiny_mlm_session)
    elif kind == "dense":
        _with_dense(folder, shapes["max-relu"])
    elif kind == "feature-extraction":
        _feature_extraction(folder, shapes["max-relu"])
    else:
        _max_active(folder, shapes["max-relu"])
    corpus = tmp_path / "c.tsv"
    corpus.write_text("d1\thello world\n", encoding="utf-8")
    for args in (["encode", str(corpus), "-m", str(folder), "-o", str(tmp_path / "out")],
                 ["encode", str(corpus), "--queries", "-m", str(folder), "-o", str(tmp_path / "q.tsv")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].lower().startswith("error:") and needle in lines[0], lines
    assert not (tmp_path / "out").exists() and not (tmp_path / "q.tsv").exists()
    if kind == "csr":  # the real command line: exit 2, one line on stderr, nothing on stdout
        import subprocess

        import sys

        proc = subprocess.run([str(Path(sys.executable).with_name("repro")), "encode", str(corpus), "-m", str(folder), "-o", str(tmp_path / "out")],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.strip() == f"error: {folder / 'modules.json'}: module 1_Pooling is a Pooling: repro " \
            "encodes exactly only SPLADE (Transformer fill-mask + SpladePooling, or a Router of those and SparseStaticEmbedding)"
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_checkpoint_saved_in_16_bits_is_encoded_in_float32(dtype, splade_tiny, tmp_path):
    """splade-tiny saved by transformers in bf16/fp16 (its config says so; transformers and ST would
    compute in it): repro loads it as float32, so the default head (mixed where auto picks it)
    runs, and documents and queries (torch and ONNX) equal ST's encode_* with dtype float32."""
    import torch
    from sentence_transformers import SparseEncoder
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = tmp_path / dtype
    AutoModelForMaskedLM.from_pretrained(str(splade_tiny)).to(getattr(torch, dtype)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(splade_tiny)).save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["dtype"] == dtype
    st = SparseEncoder(str(folder), device="cpu", model_kwargs={"dtype": torch.float32})
    vocab = st.tokenizer.convert_ids_to_tokens(list(range(st.tokenizer.vocab_size)))
    special = {i for i in st.tokenizer.all_special_ids if i is not None}

    def reference(run) -> list[dict[str, int]]:
        q = torch.round(run(TEXTS, convert_to_sparse_tensor=False).float() * FACTOR).to(torch.int64)
        return [{vocab[c]: int(row[c]) for c in torch.nonzero(row > 0).flatten().tolist() if c not in special}
                for row in q]

    docs = _repro_documents(tmp_path / "d", str(folder))
    flips, total = _compare(docs, reference(st.encode_document))
    assert total > 300 and flips <= MAX_FLIPS, (flips, total)
    for runtime in ("torch", "onnx"):
        topics = tmp_path / "topics.tsv"
        topics.write_text("".join(f"q{i}\t{t}\n" for i, t in enumerate(TEXTS)), encoding="utf-8")
        out = tmp_path / f"q-{runtime}.tsv"
        result = CliRunner().invoke(cli, ["encode", str(topics), "--queries", "-m", str(folder), "-o", str(out),
                                          "--factor", str(FACTOR), "--max-length", "512", "--runtime", runtime],
                                    env={"REPRO_CACHE": str(tmp_path / "cache")})
        assert result.exit_code == 0, result.output
        vectors = read_encoded_queries(out)
        flips, total = _compare([vectors.get(f"q{i}", {}) for i in range(len(TEXTS))], reference(st.encode_query))
        assert total > 100 and flips <= MAX_FLIPS, (runtime, flips, total)
