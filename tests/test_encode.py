"""`repro encode` as a stage: shards, manifests, sharding across ranks, settings changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli


def run(*args, env=None):
    return CliRunner(env=env).invoke(cli, [str(a) for a in args])


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"id": f"doc{i}", "contents": f"python programming {i} " + "heat flow " * (i % 7)}) for i in range(53)]
    lines.insert(5, json.dumps({"_id": "beir1", "title": "Paris", "text": "best restaurants"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def shard_bytes(coll: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((coll / "shards").iterdir())]


def test_ranks_together_make_the_same_collection(tmp_path, corpus, _tiny_mlm_session):
    """Under torchrun each rank encodes shards k % WORLD_SIZE == RANK; together they equal one run."""
    model = str(_tiny_mlm_session)
    single = run("encode", corpus, "-m", model, "-o", tmp_path / "one", "--shard-size", 10, "-q")
    assert single.exit_code == 0, single.output
    first = run("encode", corpus, "-m", model, "-o", tmp_path / "two", "--shard-size", 10, "-q",
                env={"RANK": "1", "WORLD_SIZE": "2"})
    assert first.exit_code == 0 and "other ranks" in first.output
    assert not (tmp_path / "two" / "manifest.json").exists()
    second = run("encode", corpus, "-m", model, "-o", tmp_path / "two", "--shard-size", 10, "-q",
                 env={"RANK": "0", "WORLD_SIZE": "2"})
    assert second.exit_code == 0 and "encoded 54 documents" in second.output
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert one["shards"] == two["shards"] and one["weight_total"] == two["weight_total"]


def test_beir_and_anserini_records_and_shard_layout(tmp_path, corpus, _tiny_mlm_session):
    result = run("encode", corpus, "-m", _tiny_mlm_session, "-o", tmp_path / "c", "--shard-size", 20, "-q")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "c" / "shards").iterdir())
    assert names == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    records = [json.loads(line) for p in sorted((tmp_path / "c" / "shards").iterdir()) for line in p.read_text().splitlines()]
    assert [r["id"] for r in records][:7] == ["doc0", "doc1", "doc2", "doc3", "doc4", "beir1", "doc5"]
    assert records[5]["contents"] == "Paris best restaurants"
    assert all(set(r) == {"id", "contents", "vector"} for r in records)


def test_changed_settings_on_existing_output_are_refused(tmp_path, corpus, _tiny_mlm_session):
    model = _tiny_mlm_session
    assert run("encode", corpus, "-m", model, "-o", tmp_path / "c", "--shard-size", 20, "-q").exit_code == 0
    again = run("encode", corpus, "-m", model, "-o", tmp_path / "c", "--shard-size", 20, "-q")
    assert again.exit_code == 0  # same settings: nothing to do
    changed = run("encode", corpus, "-m", model, "-o", tmp_path / "c", "--shard-size", 20, "--factor", 50, "-q")
    assert changed.exit_code != 0 and "--force" in changed.output
    forced = run("encode", corpus, "-m", model, "-o", tmp_path / "c", "--shard-size", 20, "--factor", 50, "--force", "-q")
    assert forced.exit_code == 0
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["config"]["factor"] == 50


def _runs(line: str) -> list[tuple[str, int]]:
    """(token, run length) of a query line: Anserini's format repeats each token in one contiguous run."""
    import itertools

    return [(tok, len(list(group))) for tok, group in itertools.groupby(line.split("\t", 1)[1].split())]


def test_queries_mode_matches_anserini_cached_format(tmp_path, _tiny_mlm_session, shared_data):
    """Ours and Anserini's cached files have the same grammar, checked line by line: `qid<TAB>` then each
    token once as a contiguous run of `weight` copies; Anserini's real lines survive our reader and writer
    unchanged as multisets; ours carry no special tokens and only wordpieces of the model's vocabulary."""
    import gzip

    from transformers import AutoTokenizer

    from repro.formats.anserini_queries import query_line, read_encoded_queries

    cached = shared_data / "msmarco-passage" / "splade-encoded-queries" / "topics.dl19-passage.splade-pp-ed.tsv.gz"
    theirs = read_encoded_queries(cached)
    assert len(theirs) == 43 and all(all(w > 0 for w in v.values()) for v in theirs.values())
    for line in gzip.open(cached, "rt", encoding="utf-8").read().splitlines():
        qid = line.split("\t", 1)[0]
        runs = _runs(line)
        assert len({tok for tok, _ in runs}) == len(runs), qid  # every token in ONE run
        assert dict(runs) == theirs[qid]
        assert sorted(_runs(query_line(qid, theirs[qid]))) == sorted(runs)  # our writer, their vector: same line content
    topics = tmp_path / "t.tsv"
    topics.write_text("1\twhat is python programming\n2\tbest restaurants in paris\n")
    result = run("encode", topics, "--queries", "-m", _tiny_mlm_session, "-o", tmp_path / "q.tsv")
    assert result.exit_code == 0, result.output
    ours = read_encoded_queries(tmp_path / "q.tsv")
    assert set(ours) == {"1", "2"} and all(ours.values())
    vocab = AutoTokenizer.from_pretrained(str(_tiny_mlm_session)).get_vocab()
    for line in (tmp_path / "q.tsv").read_text(encoding="utf-8").splitlines():
        runs = _runs(line)
        assert len({tok for tok, _ in runs}) == len(runs) and dict(runs) == ours[line.split("\t")[0]]
        weights = [w for _, w in runs]
        assert weights == sorted(weights, reverse=True)  # ours: heaviest first
        assert all(tok in vocab and not (tok.startswith("[") and tok.endswith("]")) for tok, _ in runs)


def test_complete_collection_notices_a_changed_corpus(tmp_path, corpus, _tiny_mlm_session):
    """Same settings, same file name, other documents: the shards that changed are encoded again, and a
    shorter corpus leaves no stale shard behind (before, a complete collection was returned as it was)."""
    model = _tiny_mlm_session
    out = tmp_path / "c"
    assert run("encode", corpus, "-m", model, "-o", out, "--shard-size", 20, "-q").exit_code == 0
    before = shard_bytes(out)
    lines = corpus.read_text().splitlines()
    lines[30] = json.dumps({"id": "doc29", "contents": "supersonic wing lift"})  # shard 1 changes
    corpus.write_text("\n".join(lines) + "\n")
    again = run("encode", corpus, "-m", model, "-o", out, "--shard-size", 20, "-q")
    assert again.exit_code == 0, again.output
    after = shard_bytes(out)
    assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]
    assert any(json.loads(line)["contents"] == "supersonic wing lift" for line in after[1].decode().splitlines())
    corpus.write_text("\n".join(lines[:25]) + "\n")  # now 2 shards instead of 3
    shorter = run("encode", corpus, "-m", model, "-o", out, "--shard-size", 20, "-q")
    assert shorter.exit_code == 0, shorter.output
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["part-00000.jsonl", "part-00001.jsonl"]
    from repro.formats.collection import verify_collection

    assert verify_collection(out)["documents"] == 25


def test_a_writer_failure_does_not_hide_the_error_that_stopped_the_run(tmp_path, _tiny_mlm_session, monkeypatch):
    """The corpus error at line 15 is what the user must see, not the failure the background writer met
    with shard 0 meanwhile (which `finally: writer.close()` used to raise in its place)."""
    import repro.encode.documents as documents
    from repro.errors import ReproError

    path = tmp_path / "corpus.tsv"
    path.write_text("".join(f"d{i}\ttext {i}\n" for i in range(14)) + "no tab here\n")

    def failing(*args, **kwargs):
        raise ReproError("simulated: the disk is full")

    monkeypatch.setattr(documents, "write_shard", failing)
    with pytest.raises(ReproError) as err:
        documents.encode_corpus(str(path), tmp_path / "c", model=str(_tiny_mlm_session), shard_size=10, progress=False)
    assert f"{path}:15:" in str(err.value) and "no tab" in str(err.value)
