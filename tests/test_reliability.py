"""Issue #16, reliability round two: never destroy what the user owns, never a plausible wrong number,
never an internal error. Each case asserts the exit code, the message, and that the user's files are
unchanged (SHA-256 of every file under the test folder before and after, outputs excepted).

Commands run through the real entry point in-process (faultkit.repro_main); the start-up time and
the Ctrl-C cases start real processes. The table in docs/reliability.md names each test.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faultkit import assert_user_error, make_corpus, repro_cmd, subprocess_env

ROOT = Path(__file__).resolve().parent.parent
BOM = b"\xef\xbb\xbf"


def checksums(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (except under ``skip``): what the user had."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and not any(path == s or s in path.parents for s in skip):
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def seismic_index(collection, tmp_path, cli) -> Path:
    pytest.importorskip("seismic")
    res = cli("index", collection, "--backend", "seismic", "-o", tmp_path / "idx")
    assert res.code == 0, res.err
    return tmp_path / "idx"


def fake_index(folder: Path, model: str = "some/other-model") -> Path:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"stage": "index", "config": {"kind": "impact"},
                                                      "encode_config": {"factor": 100, "model": model}}))
    return folder


# --- 1. --force never deletes what repro did not write ------------------------------------------------


def test_force_into_a_folder_of_user_files_is_refused(cli, model, tmp_path):
    make_corpus(tmp_path / "d20.tsv", 20)
    (tmp_path / "DIR").mkdir()
    (tmp_path / "DIR" / "thesis.txt").write_text("years of work")
    before = checksums(tmp_path)
    res = cli("encode", tmp_path / "d20.tsv", "-m", model, "-o", tmp_path / "DIR", "--force")
    assert_user_error(res, "not a repro collection", "--force replaces only those", path=tmp_path / "DIR")
    assert checksums(tmp_path) == before


def test_force_output_dot_or_the_inputs_folder_is_refused(cli, model, tmp_path, monkeypatch):
    make_corpus(tmp_path / "d20.tsv", 20)
    (tmp_path / "notes.txt").write_text("mine")
    before = checksums(tmp_path)
    monkeypatch.chdir(tmp_path)
    for out in (".", str(tmp_path)):
        res = cli("encode", "d20.tsv", "-m", model, "-o", out, "--force")
        assert_user_error(res, "the output folder contains the input d20.tsv")
    assert checksums(tmp_path) == before


def test_index_onto_its_collection_is_refused(cli, collection, tmp_path):
    before = checksums(tmp_path)
    res = cli("index", collection, "-o", collection, "--force")
    assert_user_error(res, "the output is the input", path=collection)
    res = cli("index", collection, "-o", collection / "inside", "--force")
    assert_user_error(res, "lies inside the input folder")
    assert checksums(tmp_path) == before


def test_search_onto_its_queries_is_refused(cli, tmp_path):
    index = fake_index(tmp_path / "idx")
    (tmp_path / "Q.tsv").write_text("q1\tboundary layer\n")
    before = checksums(tmp_path)
    res = cli("search", index, "--encoded-queries", tmp_path / "Q.tsv", "-o", tmp_path / "Q.tsv", "--force")
    assert_user_error(res, "the output is the input", path=tmp_path / "Q.tsv")
    res = cli("search", index, "--encoded-queries", tmp_path / "Q.tsv", "-o", index / "run.trec", "--force")
    assert_user_error(res, "lies inside the input folder")
    assert checksums(tmp_path) == before


def test_train_onto_its_base_model_is_refused(cli, tiny_mlm, tmp_path):
    (tmp_path / "t.tsv").write_text("q\tpos text here\tneg text here\n")
    before = checksums(tmp_path)
    res = cli("train", "--base-model", tiny_mlm, "--data", tmp_path / "t.tsv", "--output", tiny_mlm, "--force",
              "--max-steps", "1")
    assert_user_error(res, "the output is the input", path=tiny_mlm)
    assert checksums(tmp_path) == before


def test_force_replaces_only_a_repro_output_of_the_same_kind(cli, tmp_path):
    index = fake_index(tmp_path / "idx")
    (tmp_path / "Q.tsv").write_text("q1\tboundary\n")
    (tmp_path / "user.trec").write_text("q1 Q0 d1 1 1.0 mine\n")
    (tmp_path / "other.trec").write_text("q1 Q0 d1 1 1.0 x\n")  # a repro output, but of another kind
    (tmp_path / "other.trec.manifest.json").write_text(json.dumps({"stage": "encode-queries"}))
    before = checksums(tmp_path)
    res = cli("search", index, "--encoded-queries", tmp_path / "Q.tsv", "-o", tmp_path / "user.trec", "--force")
    assert_user_error(res, "file is not a repro search output", path=tmp_path / "user.trec")
    res = cli("search", index, "--encoded-queries", tmp_path / "Q.tsv", "-o", tmp_path / "other.trec", "--force")
    assert_user_error(res, "not a repro search output")
    res = cli("search", index, "--encoded-queries", tmp_path / "Q.tsv", "-o", tmp_path / "user.trec")
    assert_user_error(res, "output exists; pass --force")
    assert checksums(tmp_path) == before


def test_encode_force_rebuilds_beside_and_keeps_the_old_collection_on_failure(cli, model, tmp_path):
    make_corpus(tmp_path / "a.tsv", 12)
    assert cli("encode", tmp_path / "a.tsv", "-m", model, "-o", tmp_path / "coll", "--shard-size", "5").code == 0
    old = checksums(tmp_path / "coll")
    (tmp_path / "bad.tsv").write_text("x1\tfine\nno tab here\n")
    res = cli("encode", tmp_path / "bad.tsv", "-m", model, "-o", tmp_path / "coll", "--force")
    assert_user_error(res, "found no tab", path=tmp_path / "bad.tsv", line=2)
    assert checksums(tmp_path / "coll") == old
    assert not list(tmp_path.glob(".tmp-*"))
    make_corpus(tmp_path / "b.tsv", 7, seed=9)
    res = cli("encode", tmp_path / "b.tsv", "-m", model, "-o", tmp_path / "coll", "--force")
    assert res.code == 0, res.err
    manifest = json.loads((tmp_path / "coll" / "manifest.json").read_text())
    assert manifest["documents"] == 7 and manifest["artefact"] == "coll"
    assert not list(tmp_path.glob(".tmp-*"))


def test_encode_into_an_existing_file_says_so(cli, model, tmp_path):
    make_corpus(tmp_path / "d.tsv", 3)
    (tmp_path / "out.txt").write_text("keep")
    before = checksums(tmp_path)
    res = cli("encode", tmp_path / "d.tsv", "-m", model, "-o", tmp_path / "out.txt")
    assert_user_error(res, "existing file; encode writes a collection folder", path=tmp_path / "out.txt")
    assert checksums(tmp_path) == before


def test_rerun_cleans_its_own_stale_temps_only(cli, collection, tmp_path):
    pytest.importorskip("seismic")
    (tmp_path / ".tmp-idx.k9dead").mkdir()  # what a SIGKILLed `repro index -o idx` leaves
    (tmp_path / ".tmp-idx.k9dead" / "part").write_text("x")
    (tmp_path / ".tmp-idx2.other").mkdir()  # another output's temp: not ours to delete
    res = cli("index", collection, "--backend", "seismic", "-o", tmp_path / "idx")
    assert res.code == 0, res.err
    assert not (tmp_path / ".tmp-idx.k9dead").exists()
    assert (tmp_path / ".tmp-idx2.other").exists()


def test_only_rank_zero_deletes(tmp_path, monkeypatch):
    from repro.outputs import remove_stale_temps

    (tmp_path / ".tmp-out.1").write_text("x")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert remove_stale_temps(tmp_path, "out") == 0 and (tmp_path / ".tmp-out.1").exists()
    monkeypatch.setenv("RANK", "0")
    assert remove_stale_temps(tmp_path, "out") == 1 and not (tmp_path / ".tmp-out.1").exists()


# --- 3. a byte-order mark never becomes part of an id -------------------------------------------------


def test_bom_is_stripped_by_every_reader(tmp_path):
    from repro.formats.corpus import iter_docs
    from repro.formats.qrels import read_qrels
    from repro.formats.runs import read_run
    from repro.formats.topics import read_topics

    files = {
        "c.tsv": b"d1\tfirst text\nd2\tsecond\n",
        "c.jsonl": b'{"id": "d1", "contents": "first"}\n',
        "t.tsv": b"q1\tfirst query\nq2\tsecond\n",
        "q.txt": b"q1 0 d1 1\nq2 0 d2 1\n",
        "fast.trec": b"q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\n",
        "slow.trec": b"q1\tQ0\td1\t1\t2.0\tt\nq1\tQ0\td2\t2\t1.0\tt\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(BOM + data)
    assert [d.id for d in iter_docs(tmp_path / "c.tsv")] == ["d1", "d2"]
    assert [d.id for d in iter_docs(tmp_path / "c.jsonl")] == ["d1"]
    assert list(read_topics(tmp_path / "t.tsv")) == ["q1", "q2"]
    assert read_qrels(tmp_path / "q.txt").by_query == {"q1": {"d1": 1}, "q2": {"d2": 1}}
    for name in ("fast.trec", "slow.trec"):
        assert read_run(tmp_path / name).to_dict() == {"q1": {"d1": 2.0, "d2": 1.0}}


def test_bom_changes_no_number(cli, tmp_path):
    run = b"".join(f"q{q} Q0 d{d} {r} {10 - r}.0 t\n".encode() for q in (1, 2, 3) for r, d in enumerate((q, 9, q + 1), 1))
    qrels = b"q1 0 d1 1\nq2 0 d2 2\nq3 0 d3 1\nq3 0 d4 1\n"
    (tmp_path / "run.trec").write_bytes(run)
    (tmp_path / "qrels.txt").write_bytes(qrels)
    (tmp_path / "bom.trec").write_bytes(BOM + run)
    (tmp_path / "bom.qrels").write_bytes(BOM + qrels)
    plain = cli("evaluate", tmp_path / "run.trec", "--qrels", tmp_path / "qrels.txt", "-m", "nDCG@10 P@1", "--format", "json")
    boms = cli("evaluate", tmp_path / "bom.trec", "--qrels", tmp_path / "bom.qrels", "-m", "nDCG@10 P@1", "--format", "json")
    assert plain.code == boms.code == 0, boms.err
    a, b = json.loads(plain.out)["runs"], json.loads(boms.out)["runs"]
    assert list(a.values())[0]["aggregate"] == list(b.values())[0]["aggregate"]
    assert list(b.values())[0]["aggregate"]["P@1"] == 1.0


# --- 4. ids: whitespace inside refused where it enters, surrounding whitespace stripped ----------------


@pytest.mark.parametrize("name, data, line, fragment", [
    ("c.tsv", "d1\tok\ndoc 6\ttext\n", 2, "document id 'doc 6' contains whitespace"),
    ("c.jsonl", '{"id": "d1", "contents": "a"}\n{"id": "doc\\t8", "contents": "b"}\n', 2, "contains whitespace"),
    ("c.smart", ".I 1\n.W\nfine\n.I 2 b\n.W\ntext\n", 4, "'.I' id '2 b' contains whitespace"),
])
def test_ids_with_whitespace_are_refused_by_encode(cli, model, tmp_path, name, data, line, fragment):
    (tmp_path / name).write_text(data)
    before = checksums(tmp_path)
    res = cli("encode", tmp_path / name, "-m", model, "-o", tmp_path / "coll")
    assert_user_error(res, fragment, path=tmp_path / name, line=line)
    assert checksums(tmp_path) == before and not (tmp_path / "coll").exists()


def test_query_ids_with_whitespace_are_refused(cli, model, tmp_path):
    (tmp_path / "t.tsv").write_text("q1\tfine\nq 1\tbroken\n")
    (tmp_path / "enc.tsv").write_text("q\u00a01\ttok tok\n")
    (tmp_path / "run.trec").write_text("q1 Q0 d\u00a01 1 2.0 t\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\n")
    before = checksums(tmp_path)
    assert_user_error(cli("encode", tmp_path / "t.tsv", "--queries", "-m", model, "-o", tmp_path / "q.out"),
                      "query id 'q 1' contains whitespace", path=tmp_path / "t.tsv", line=2)
    assert_user_error(cli("search", fake_index(tmp_path / "idx"), "--encoded-queries", tmp_path / "enc.tsv",
                          "-o", tmp_path / "r"), "contains whitespace", path=tmp_path / "enc.tsv", line=1)
    assert_user_error(cli("evaluate", tmp_path / "run.trec", "--qrels", tmp_path / "qrels.txt"),
                      "document id", "contains whitespace", path=tmp_path / "run.trec", line=1)
    assert checksums(tmp_path, skip=(tmp_path / "idx",)) == before


def test_surrounding_whitespace_is_stripped_by_the_stated_rule(tmp_path):
    from repro.formats.corpus import iter_docs
    from repro.formats.topics import read_topics

    (tmp_path / "c.jsonl").write_text('{"id": "doc1 ", "contents": "a"}\n{"id": " doc2", "contents": "b"}\n')
    (tmp_path / "t.tsv").write_text(" q1 \tquery\n")
    assert [d.id for d in iter_docs(tmp_path / "c.jsonl")] == ["doc1", "doc2"]
    assert list(read_topics(tmp_path / "t.tsv")) == ["q1"]
    (tmp_path / "dup.jsonl").write_text('{"id": "doc1", "contents": "a"}\n{"id": "doc1 ", "contents": "b"}\n')
    from repro.errors import BadInputError

    with pytest.raises(BadInputError, match="duplicate document id 'doc1'"):
        list(iter_docs(tmp_path / "dup.jsonl"))


# --- 5. no silent empty run ----------------------------------------------------------------------------


def test_search_with_another_model_than_the_index_is_refused(cli, model, tmp_path):
    index = fake_index(tmp_path / "idx", model="naver/splade-cocondenser-ensembledistil")
    (tmp_path / "t.tsv").write_text("q1\tboundary layer\n")
    before = checksums(tmp_path)
    res = cli("search", index, "-t", tmp_path / "t.tsv", "-m", model, "-o", tmp_path / "run.trec")
    assert_user_error(res, "is not the model this index was encoded with", "--allow-other-model", path=index)
    assert checksums(tmp_path) == before and not (tmp_path / "run.trec").exists()


def test_same_model_by_folder_copy_or_hub_name(model, tmp_path):
    from repro.search.run import same_model

    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert same_model(str(model), str(copy))
    assert same_model("org/splade-x", "org/splade-x/")
    snapshot = tmp_path / "hub" / "models--org--splade-x" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    assert same_model("org/splade-x", str(snapshot))
    assert not same_model("org/splade-x", str(model))


def test_empty_run_is_an_error_unless_allowed(cli, seismic_index, tmp_path):
    (tmp_path / "enc.tsv").write_text("q1\tzzznotinvocab zzznotinvocab\nq2\tqqqnothere\n")
    before = checksums(tmp_path, skip=(seismic_index,))
    res = cli("search", seismic_index, "--encoded-queries", tmp_path / "enc.tsv", "-o", tmp_path / "run.trec")
    assert_user_error(res, "2 of 2 queries got no document", "--allow-empty", path=seismic_index)
    assert not (tmp_path / "run.trec").exists() and checksums(tmp_path, skip=(seismic_index,)) == before
    res = cli("search", seismic_index, "--encoded-queries", tmp_path / "enc.tsv", "-o", tmp_path / "run.trec",
              "--allow-empty")
    assert res.code == 0, res.err
    assert "0 lines" in res.out and "2 without results" in res.out


@pytest.mark.parametrize("setting, fragment", [
    ("n_postings=0", "must be a positive number"),
    ("n_postings=-5", "must be a positive number"),
    ("summary_energy=-0.5", "must be a positive number"),
    ("doc_cut=2.5", "must be a whole number"),
])
def test_seismic_settings_that_give_nothing_are_refused(cli, collection, tmp_path, setting, fragment):
    pytest.importorskip("seismic")
    before = checksums(tmp_path)
    res = cli("index", collection, "--backend", "seismic", "--setting", setting, "-o", tmp_path / "idx")
    assert_user_error(res, fragment)
    assert checksums(tmp_path) == before and not (tmp_path / "idx").exists()


def test_seismic_negative_search_settings_are_refused(cli, seismic_index, tmp_path):
    (tmp_path / "enc.tsv").write_text("q1\ttok\n")
    for flag, value in (("--query-cut", "-1"), ("--query-cut", "0"), ("--heap-factor", "-0.2")):
        res = cli("search", seismic_index, "--encoded-queries", tmp_path / "enc.tsv", flag, value, "-o", tmp_path / "r")
        assert_user_error(res, "must be a positive number")
    assert not (tmp_path / "r").exists()


# --- 6. --max-length checked; truncated queries counted ----------------------------------------------


@pytest.mark.parametrize("value", ["1", "0", "-3"])
def test_max_length_out_of_range_is_refused(cli, model, tmp_path, value):
    """Below 2 is refused everywhere before anything loads; past the position embeddings (e.g. 100000)
    the encoder clamps (tests/test_encoder_base.py)."""
    make_corpus(tmp_path / "d.tsv", 3)
    (tmp_path / "t.tsv").write_text("q1\ttext\n")
    before = checksums(tmp_path)
    assert_user_error(cli("encode", tmp_path / "d.tsv", "-m", model, "-o", tmp_path / "c", "--max-length", value),
                      f"--max-length {value}: must be at least 2 tokens")
    assert_user_error(cli("encode", tmp_path / "t.tsv", "--queries", "-m", model, "-o", tmp_path / "q",
                          "--max-length", value), "must be at least 2 tokens")
    assert_user_error(cli("search", fake_index(tmp_path / f"idx{value}"), "-t", tmp_path / "t.tsv", "-m", model,
                          "-o", tmp_path / "r", "--query-max-length", value), "--query-max-length")
    assert_user_error(cli("train", "--base-model", model, "--data", tmp_path / "d.tsv", "-o", tmp_path / "m",
                          "--max-length", value), "must be at least 2 tokens")
    assert checksums(tmp_path, skip=(tmp_path / f"idx{value}",)) == before


def test_truncated_queries_are_counted_in_the_output(cli, model, tmp_path):
    (tmp_path / "t.tsv").write_text("q1\tpython programming language code data science web server\nq2\tfox\n")
    res = cli("encode", tmp_path / "t.tsv", "--queries", "-m", model, "-o", tmp_path / "q.tsv", "--max-length", "4")
    assert res.code == 0, res.err
    assert "1 truncated at 4 tokens" in res.out


# --- 7. measures validated before computing -----------------------------------------------------------


@pytest.fixture
def run_and_qrels(tmp_path):
    (tmp_path / "run.trec").write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0 t\nq2 Q0 d3 1 1.0 t\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d2 1\nq2 0 d3 2\n")
    return tmp_path / "run.trec", tmp_path / "qrels.txt"


@pytest.mark.parametrize("measure, fragment", [
    ("nDCG@0", "the cutoff @0 must be a whole number >= 1"),
    ("P@0", "the cutoff @0"),
    ("R@0", "the cutoff @0"),
    ("AP(rel=0)", "rel=0 must be a whole number >= 1"),
    ("ERR@10", "gdeval provider"),
    ("nosuch@3", "bad measure 'nosuch@3'"),
])
def test_bad_measures_are_refused_before_computing(cli, run_and_qrels, measure, fragment):
    run, qrels = run_and_qrels
    before = checksums(run.parent)
    assert_user_error(cli("evaluate", run, "--qrels", qrels, "-m", measure), fragment)
    assert checksums(run.parent) == before


def test_trec_eval_names_are_aliases(cli, run_and_qrels):
    run, qrels = run_and_qrels
    ours = cli("evaluate", run, "--qrels", qrels, "-m", "AP nDCG@10 P@10 RR R@1000", "--format", "json")
    trec = cli("evaluate", run, "--qrels", qrels, "-m", "map ndcg_cut_10 P_10 recip_rank recall_1000", "--format", "json")
    assert ours.code == trec.code == 0, trec.err
    assert json.loads(ours.out)["runs"] == json.loads(trec.out)["runs"]


# --- 8. compression by content, UTF-16 by name ---------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gz", ".GZ", ""])
def test_gzip_is_detected_by_content_for_qrels_runs_and_corpora(cli, run_and_qrels, tmp_path, suffix):
    from repro.formats.corpus import iter_docs

    run, qrels = run_and_qrels
    for path in (run, qrels):
        Path(str(path) + ".z" + suffix).write_bytes(gzip.compress(path.read_bytes()))
    plain = cli("evaluate", run, "--qrels", qrels, "--format", "json")
    packed = cli("evaluate", str(run) + ".z" + suffix, "--qrels", str(qrels) + ".z" + suffix, "--format", "json")
    assert plain.code == packed.code == 0, packed.err
    assert list(json.loads(plain.out)["runs"].values()) == list(json.loads(packed.out)["runs"].values())
    (tmp_path / ("c.tsv" + (suffix or ".gz"))).write_bytes(gzip.compress(b"d1\tone\nd2\ttwo\n"))
    docs = list(iter_docs(tmp_path / ("c.tsv" + (suffix or ".gz")), skip_bad_lines=True))
    assert [(d.id, d.text) for d in docs] == [("d1", "one"), ("d2", "two")]


@pytest.mark.parametrize("what", ["encode", "queries", "evaluate-run", "evaluate-qrels"])
def test_utf16_files_are_named_as_such(cli, model, run_and_qrels, tmp_path, what):
    run, qrels = run_and_qrels
    f16 = tmp_path / "f16.tsv"
    text = {"encode": "d1\tone\n", "queries": "q1\tone\n"}.get(what, run.read_text() if what == "evaluate-run" else qrels.read_text())
    f16.write_bytes(text.encode("utf-16"))
    before = checksums(tmp_path)
    args = {"encode": ("encode", f16, "-m", model, "-o", tmp_path / "c"),
            "queries": ("encode", f16, "--queries", "-m", model, "-o", tmp_path / "q"),
            "evaluate-run": ("evaluate", f16, "--qrels", qrels),
            "evaluate-qrels": ("evaluate", run, "--qrels", f16)}[what]
    assert_user_error(cli(*args), "file is UTF-16; convert it to UTF-8", path=f16)
    assert checksums(tmp_path) == before


# --- 9. messages that say what to do ------------------------------------------------------------------


def test_folder_as_corpus_or_topics(cli, model, tmp_path):
    (tmp_path / "folder").mkdir()
    assert_user_error(cli("encode", tmp_path / "folder", "-m", model, "-o", tmp_path / "c"),
                      "is a folder; give a corpus file", path=tmp_path / "folder")
    assert_user_error(cli("encode", tmp_path / "folder", "--queries", "-m", model, "-o", tmp_path / "q"),
                      "is a folder; give a topics file")


def test_index_names_an_option_it_has(cli, tmp_path):
    (tmp_path / "corpus.xml").write_text("<doc/>")
    res = cli("index", tmp_path / "corpus.xml", "--bm25", "-o", tmp_path / "idx")
    assert_user_error(res, "pass --format tsv|jsonl|beir|trec|smart", path=tmp_path / "corpus.xml")
    assert "--format" in cli("index", "--help").out


# --- 10. arguments and inputs checked before torch loads ----------------------------------------------

_PROBE = ("import sys, time; t = time.perf_counter(); from repro.cli import main; sys.argv = ['repro'] + sys.argv[1:]\n"
          "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
          "print(code, 'torch' in sys.modules, 'transformers' in sys.modules, round(time.perf_counter() - t, 2))")


@pytest.mark.parametrize("args", [
    ["encode", "missing.tsv", "-m", "x", "-o", "y"],
    ["encode", "missing.tsv", "--queries", "-m", "x", "-o", "y.tsv"],
    ["encode", "bad.tsv", "-m", "x", "-o", "y"],
    ["search", "idx", "-t", "missing.tsv", "-m", "x", "-o", "r.trec"],
    ["train", "--base-model", "x", "--data", "missing.tsv", "-o", "m"],
    ["train", "--base-model", "x", "--data", "bad.tsv", "-o", "m", "--max-steps", "0"],
], ids=["encode", "encode-queries", "encode-bad-first-line", "search", "train", "train-max-steps-0"])
def test_bad_input_fails_before_torch_is_imported(tmp_path, args):
    (tmp_path / "bad.tsv").write_text("no tab on this line\n")
    fake_index(tmp_path / "idx", model="x")
    res = subprocess.run([sys.executable, "-c", _PROBE, *args], cwd=tmp_path, capture_output=True, text=True,
                         env=subprocess_env(PYTHONPATH=str(ROOT)), timeout=120)
    code, torch, transformers, seconds = res.stdout.split()
    assert code == "2" and res.stderr.startswith("error: "), res.stderr
    assert torch == "False" and transformers == "False", res.stderr
    assert float(seconds) < 5.0, seconds  # typically 0.3-0.7 s (docs/reliability.md); generous for a loaded CI box


# --- 11. train ------------------------------------------------------------------------------------------


def test_train_max_steps_zero_is_refused(cli, model, tmp_path):
    (tmp_path / "t.tsv").write_text("q\tpos text here\tneg text here\n")
    before = checksums(tmp_path)
    res = cli("train", "--base-model", model, "--data", tmp_path / "t.tsv", "-o", tmp_path / "m", "--max-steps", "0")
    assert_user_error(res, "--max-steps 0: give a positive number of optimizer steps, or -1")
    assert checksums(tmp_path) == before and not (tmp_path / "m").exists()


def test_readme_train_config_carries_its_data(shared_data, splade_tiny):
    from repro.train.config import TrainConfig, load_toml
    from repro.train.data import _Bad, iter_records

    settings = load_toml(ROOT / "configs" / "cranfield-finetune.toml")
    cfg = TrainConfig(**settings)
    cfg.validate()
    assert Path(cfg.data).is_file() and Path(cfg.base_model).resolve() == splade_tiny.resolve()
    pairs = list(iter_records(cfg.data, cfg.data_format, None, None, _Bad(False)))
    assert len(pairs) > 1000 and all(p["negatives"] == [] for p in pairs)
    assert pairs[0]["query"] and not pairs[0]["positive"].startswith(pairs[0]["query"])


@pytest.mark.slow
def test_readme_train_command_runs(shared_data, splade_tiny, tmp_path):
    res = subprocess.run([*repro_cmd(), "train", "--config", str(ROOT / "configs" / "cranfield-finetune.toml"),
                          "--max-steps", "2", "--save-steps", "1", "--diagnostics-steps", "1", "--batch-size", "4",
                          "-o", str(tmp_path / "m")], cwd=tmp_path, capture_output=True, text=True,
                         env=subprocess_env(PYTHONPATH=str(ROOT)), timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "m" / "manifest.json").is_file()


# --- 12. permissions and Ctrl-C -------------------------------------------------------------------------


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775), (0o077, 0o600, 0o700)])
def test_outputs_honour_the_umask(tmp_path, mask, file_mode, dir_mode):
    from repro.outputs import atomic_dir, write_text

    old = os.umask(mask)
    try:
        write_text(tmp_path / "run.trec", "x\n")
        with atomic_dir(tmp_path / "idx") as tmp:
            write_text(tmp / "inner.json", "{}")
            (tmp / "sub").mkdir()
    finally:
        os.umask(old)
    assert (tmp_path / "run.trec").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "idx").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "idx" / "inner.json").stat().st_mode & 0o777 == file_mode


def test_encoded_outputs_are_readable_by_others(cli, model, tmp_path):
    make_corpus(tmp_path / "d.tsv", 4)
    old = os.umask(0o022)
    try:
        assert cli("encode", tmp_path / "d.tsv", "-m", model, "-o", tmp_path / "c").code == 0
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path / "c").as_posix(): p.stat().st_mode & 0o777 for p in (tmp_path / "c").rglob("*")}
    assert modes and all(m == (0o755 if (tmp_path / "c" / k).is_dir() else 0o644) for k, m in modes.items()), modes


_CTRL_C = """
import os, signal, sys, click
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background job inherits SIG_IGN)
from repro import cli as repro_cli
from repro.errors import success

@click.command("fake")
@click.option("--when")
def fake(when):
    if when == "before":
        os.kill(os.getpid(), signal.SIGINT)
    success("wrote run.trec")
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after the run is complete

repro_cli.cli.add_command(fake)
sys.argv = ["repro", "fake", "--when", sys.argv[1]]
repro_cli.main()
"""


@pytest.mark.parametrize("when, code", [("after", 0), ("before", 130)])
def test_ctrl_c_gives_success_or_130_never_both(when, code):
    res = subprocess.run([sys.executable, "-c", _CTRL_C, when], capture_output=True, text=True, timeout=60,
                         env=subprocess_env(PYTHONPATH=str(ROOT)))
    assert res.returncode == code, res.stderr
    printed, interrupted = "wrote run.trec" in res.stdout, "interrupted" in res.stderr
    assert (printed, interrupted) == ((True, False) if code == 0 else (False, True)), (res.stdout, res.stderr)


def test_report_replaces_only_its_own_page(cli, tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "notes.md").write_text("# my notes\n")
    before = checksums(tmp_path)
    assert_user_error(cli("report", "--runs", tmp_path / "runs", "-o", tmp_path / "notes.md", "--no-figures"),
                      "not written by repro report", path=tmp_path / "notes.md")
    assert_user_error(cli("report", "--runs", tmp_path / "runs", "-o", tmp_path / "runs" / "page.md", "--no-figures"),
                      "lies inside the input folder")
    assert checksums(tmp_path) == before
    res = cli("report", "--runs", tmp_path / "runs", "-o", tmp_path / "page.md", "--no-figures")
    assert res.code == 0, res.err
    assert cli("report", "--runs", tmp_path / "runs", "-o", tmp_path / "page.md", "--no-figures").code == 0


def test_convert_qrels_onto_its_source_is_refused(cli, tmp_path):
    (tmp_path / "cranqrel").write_text("1 184 2\n1 29 -1\n")
    (tmp_path / "badq").write_text("x 184 2\n")
    before = checksums(tmp_path)
    assert_user_error(cli("convert-qrels", "cranfield", tmp_path / "cranqrel", "-o", tmp_path / "cranqrel"),
                      "the output is the input")
    assert_user_error(cli("convert-qrels", "cranfield", tmp_path / "badq", "-o", tmp_path / "q.out"),
                      "query number 'x' is not a whole number", path=tmp_path / "badq", line=1)
    assert checksums(tmp_path) == before
