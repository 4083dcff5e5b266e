"""`repro mine`: positives excluded, the margin guard, sampling, teacher scores = CrossEncoder.predict, resume."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from repro.errors import ReproError

WORDS = ("wing lift drag flow plate boundary layer heat transfer shock wave supersonic subsonic pressure "
         "nozzle jet turbulence laminar friction cone cylinder panel flutter vortex wake blade").split()


def make_data(folder: Path, docs: int = 60, queries: int = 8, seed: int = 3) -> dict[str, Path]:
    """A small corpus where each query's words come from its positive documents."""
    rnd = random.Random(seed)
    corpus = {f"d{i}": " ".join(rnd.sample(WORDS, 7)) for i in range(docs)}
    topics, qrels = {}, []
    for q in range(queries):
        pos = rnd.sample(sorted(corpus), 2)
        words = corpus[pos[0]].split()[:3]
        topics[f"q{q}"] = " ".join(words)
        qrels += [f"q{q} 0 {pos[0]} 1", f"q{q} 0 {pos[1]} 2", f"q{q} 0 d{(q * 7) % docs} 0"]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"corpus": folder / "corpus.tsv", "topics": folder / "topics.tsv", "qrels": folder / "qrels.txt"}
    paths["corpus"].write_text("".join(f"{k}\t{v}\n" for k, v in corpus.items()))
    paths["topics"].write_text("".join(f"{k}\t{v}\n" for k, v in topics.items()))
    paths["qrels"].write_text("\n".join(qrels) + "\n")
    return paths


@pytest.fixture(scope="module")
def bm25(tmp_path_factory):
    from repro.index.build import build_bm25_index

    root = tmp_path_factory.mktemp("mine")
    paths = make_data(root / "data")
    build_bm25_index(str(paths["corpus"]), root / "bm25", threads=1)
    return {**paths, "index": root / "bm25", "root": root}


def cfg_for(data, **kw):
    from repro.train.mine import MineConfig

    base = dict(index=str(data["index"]), queries=str(data["topics"]), qrels=str(data["qrels"]),
                corpus=str(data["corpus"]), rank_max=30, num_negatives=3, shard_size=8)
    base.update(kw)
    return MineConfig(**base)


def read_records(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("part-*.jsonl")) for line in f.read_text().splitlines()]


@pytest.mark.slow
def test_positives_excluded_margin_respected_and_train_reads_it(bm25, tmp_path):
    from repro.engines.lucene import search_topics
    from repro.formats.qrels import read_qrels
    from repro.train.mine import mine

    cfg = cfg_for(bm25, relative_margin=0.1, absolute_margin=None)
    info = mine(cfg, tmp_path / "mined", threads=1, progress=False)
    recs = read_records(tmp_path / "mined")
    assert recs and info["records"] == len(recs)
    judged = read_qrels(str(bm25["qrels"])).by_query
    topics = dict(line.split("\t") for line in bm25["topics"].read_text().splitlines())
    full = search_topics(bm25["index"], topics, kind="bm25", hits=30, threads=1)
    for rec in recs:
        positives = {d for d, r in judged[rec["qid"]].items() if r >= 1}
        assert rec["pid"] in positives and not positives & set(rec["nids"])
        assert len(rec["nids"]) == 3 and len(rec["negatives"]) == 3 and "scores" not in rec
        ref = rec["retrieval_scores"][0]
        assert ref is not None  # an unretrieved positive leaves no candidate under a guard
        limit = ref - abs(ref) * 0.1
        assert all(s <= limit for s in rec["retrieval_scores"][1:])
        # "top": the first 3 surviving candidates in rank order, nothing skipped but positives and the guard
        ranked = [(d, float(s)) for d, s in full[rec["qid"]]]
        survivors = [d for d, s in ranked if d not in positives and s <= limit]
        assert rec["nids"] == survivors[:3]
    assert info["skipped_positive"] > 0 and info["skipped_margin"] > 0
    # Without the guard more records survive and the hardest candidates come back.
    loose = mine(cfg_for(bm25, relative_margin=None), tmp_path / "loose", threads=1, progress=False)
    assert loose["skipped_margin"] == 0 and loose["records"] >= info["records"]
    # judged-non-relevant (rel 0) documents are allowed as negatives
    # `repro train` reads the folder
    from repro.train.config import TrainConfig
    from repro.train.data import build_dataset

    tc = TrainConfig(base_model="x", output=str(tmp_path / "o"), data=str(tmp_path / "mined"), num_negatives=3)
    ds, stats = build_dataset(tc, tmp_path / "cache")
    assert len(ds) == len(recs) and ds[0]["query"] == recs[0]["query"] and ds[0]["negative_3"] == recs[0]["negatives"][2]


@pytest.mark.slow
def test_random_sampling_is_seeded_per_record(bm25, tmp_path):
    from repro.train.mine import mine

    a = mine(cfg_for(bm25, sampling="random", relative_margin=None, shard_size=2), tmp_path / "a", threads=1, progress=False)
    b = mine(cfg_for(bm25, sampling="random", relative_margin=None, shard_size=5), tmp_path / "b", threads=1, progress=False)
    assert read_records(tmp_path / "a") == read_records(tmp_path / "b") and a["records"] == b["records"]
    top = mine(cfg_for(bm25, relative_margin=None), tmp_path / "top", threads=1, progress=False)
    assert [r["nids"] for r in read_records(tmp_path / "top")] != [r["nids"] for r in read_records(tmp_path / "a")]


def test_guard_rule_unit():
    from repro.train.mine import Counts, MineConfig, guard_threshold, select_negatives

    assert guard_threshold(10.0, 0.05, None) == pytest.approx(9.5)
    assert guard_threshold(-2.0, 0.5, None) == pytest.approx(-3.0)  # |s+|: sign-safe, as sentence-transformers
    assert guard_threshold(10.0, 0.05, 2.0) == pytest.approx(8.0)
    cfg = MineConfig(index="i", queries="q", qrels="r", corpus="c", num_negatives=2)
    counts = Counts()
    cands = [("a", 9.8), ("b", 9.5), ("c", 9.0), ("d", 1.0)]
    assert select_negatives(cands, 10.0, cfg, "q", "p", counts) == [("b", 9.5), ("c", 9.0)]  # equal to limit kept
    assert counts.skipped_margin == 1
    assert select_negatives(cands, None, cfg, "q", "p", counts) == []  # positive below every candidate


@pytest.mark.slow
def test_teacher_scores_equal_cross_encoder_predict(bm25, tmp_path):
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification

    from repro.testing import build_tokenizer
    from repro.train.mine import mine

    ce_dir = tmp_path / "ce"
    tok = build_tokenizer(ce_dir)
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=64, num_labels=1)).save_pretrained(ce_dir)
    info = mine(cfg_for(bm25, teacher=str(ce_dir), teacher_batch_size=5, relative_margin=None, shard_size=8),
                tmp_path / "t", threads=1, progress=False)
    recs = read_records(tmp_path / "t")
    assert recs and info["teacher"] == str(ce_dir)
    ce = CrossEncoder(str(ce_dir), local_files_only=True)
    for rec in recs:
        pairs = [(rec["query"], t) for t in [rec["positive"], *rec["negatives"]]]
        raw = ce.predict(pairs, activation_fn=torch.nn.Identity(), batch_size=2)
        assert rec["scores"] == pytest.approx([float(x) for x in raw], abs=1e-5)
    # the model's own activation (sigmoid for one label) when asked
    mine(cfg_for(bm25, teacher=str(ce_dir), teacher_activation="model", relative_margin=None, shard_size=8), tmp_path / "s",
         threads=1, progress=False)
    rec = read_records(tmp_path / "s")[0]
    assert rec["scores"] == pytest.approx([float(x) for x in ce.predict([(rec["query"], rec["positive"]), *[(rec["query"], n) for n in rec["negatives"]]])], abs=1e-5)
    assert all(0 < s < 1 for s in rec["scores"])
    # guard on teacher scores (a random teacher scores everything alike: margin 0 = below the positive)
    guarded = mine(cfg_for(bm25, teacher=str(ce_dir), relative_margin=0.0, num_negatives=1, shard_size=8),
                   tmp_path / "g", threads=1, progress=False)
    assert guarded["skipped_margin"] > 0
    for rec in read_records(tmp_path / "g"):
        assert all(s <= rec["scores"][0] for s in rec["scores"][1:])
    with pytest.raises(ReproError, match="cannot load cross-encoder 'org/no-such-ce' offline"):
        mine(cfg_for(bm25, teacher="org/no-such-ce"), tmp_path / "x", threads=1, progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_crash_and_resume_is_byte_identical(bm25, tmp_path, monkeypatch):
    import repro.train.mine as mining

    ref = mining.mine(cfg_for(bm25, shard_size=4), tmp_path / "ref", threads=1, progress=False)
    real = mining.write_shard
    calls = {"n": 0}

    def crashing(out, index, *a, **kw):
        if calls["n"] == 1:
            raise KeyboardInterrupt("simulated kill")
        calls["n"] += 1
        return real(out, index, *a, **kw)

    monkeypatch.setattr(mining, "write_shard", crashing)
    with pytest.raises(KeyboardInterrupt):
        mining.mine(cfg_for(bm25, shard_size=4), tmp_path / "crashy", threads=1, progress=False)
    monkeypatch.setattr(mining, "write_shard", real)
    assert (tmp_path / "crashy" / "part-00000.jsonl").exists() and not (tmp_path / "crashy" / "part-00001.jsonl").exists()
    # a half-written shard file left by a kill is redone
    (tmp_path / "crashy" / "part-00001.jsonl").write_text('{"cut')
    again = mining.mine(cfg_for(bm25, shard_size=4), tmp_path / "crashy", threads=1, progress=False)
    files = sorted(p.name for p in (tmp_path / "ref").glob("part-*.jsonl"))
    assert files == sorted(p.name for p in (tmp_path / "crashy").glob("part-*.jsonl")) and len(files) == 2
    for name in files:
        assert (tmp_path / "ref" / name).read_bytes() == (tmp_path / "crashy" / name).read_bytes()
    assert again["shards"] == ref["shards"] and again["records"] == ref["records"]
    with pytest.raises(ReproError, match="different settings"):
        mining.mine(cfg_for(bm25, shard_size=4, num_negatives=2), tmp_path / "crashy", threads=1, progress=False)


@pytest.mark.slow
def test_sigkill_and_rerun_subprocess(bm25, tmp_path):
    """SIGKILL a `repro mine` process after its first shard, run it again: same bytes as one clean run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def cmd(out):
        return [sys.executable, "-c", "from repro.cli import main; main()", "mine", "--index", str(bm25["index"]),
                "--queries", str(bm25["topics"]), "--qrels", str(bm25["qrels"]), "--corpus", str(bm25["corpus"]),
                "-o", str(out), "--rank-max", "30", "-n", "3", "--shard-size", "1", "--threads", "1", "--quiet"]

    subprocess.run(cmd(tmp_path / "ref"), check=True, capture_output=True)
    proc = subprocess.Popen(cmd(tmp_path / "k"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "k" / ".state" / "part-00001.jsonl.stats.json"
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if (tmp_path / "k" / "manifest.json").exists():
        pytest.skip("run finished before it could be killed")
    res = subprocess.run(cmd(tmp_path / "k"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "ref").glob("part-*.jsonl"))
    assert names == sorted(p.name for p in (tmp_path / "k").glob("part-*.jsonl"))
    for name in names:
        assert (tmp_path / "ref" / name).read_bytes() == (tmp_path / "k" / name).read_bytes()


def test_cli_errors_are_one_line(bm25, tmp_path):
    from click.testing import CliRunner

    from repro.cli import cli

    base = ["mine", "--index", str(bm25["index"]), "--queries", str(bm25["topics"]), "--qrels", str(bm25["qrels"]),
            "--corpus", str(bm25["corpus"]), "-o", str(tmp_path / "o"), "--quiet"]
    res = CliRunner().invoke(cli, base + ["--model", "m"])
    assert res.exit_code == 2 and "BM25 index: mining needs no --model" in res.output
    res = CliRunner().invoke(cli, base + ["--rank-min", "40", "--rank-max", "30"])
    assert res.exit_code == 2 and "--rank-min < --rank-max" in res.output
    res = CliRunner().invoke(cli, base + ["--threads", "1", "--absolute-margin", "0", "--relative-margin", "none"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["records"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["lucene", "seismic"])
def test_mining_from_splade_indexes(bm25, tiny_mlm, tmp_path, engine):
    """Impact (Lucene) and Seismic indexes: queries encoded at the index's factor; scores are the engine's integers."""
    from repro import engines
    from repro.encode.documents import encode_corpus
    from repro.index.build import build_index
    from repro.train.mine import mine

    if engine == "seismic" and not engines.ENGINES["seismic"].load().is_available():
        pytest.skip("pyseismic-lsr not installed")
    encode_corpus(str(bm25["corpus"]), tmp_path / "coll", model=str(tiny_mlm), progress=False, threads=1)
    settings = {"n_postings": 200} if engine == "seismic" else None
    build_index(tmp_path / "coll", tmp_path / "idx", engine=engine, threads=1, settings=settings)
    with pytest.raises(ReproError, match="give --model"):
        mine(cfg_for(bm25, index=str(tmp_path / "idx")), tmp_path / "no-model", threads=1, progress=False)
    info = mine(cfg_for(bm25, index=str(tmp_path / "idx"), model=str(tiny_mlm), relative_margin=None,
                        settings={"query_cut": 50} if engine == "seismic" else {}),
                tmp_path / "mined", threads=1, progress=False)
    recs = read_records(tmp_path / "mined")
    assert info["engine"] == engine and info["index_kind"] in ("impact", "seismic") and recs
    judged = {}
    for line in bm25["qrels"].read_text().splitlines():
        q, _, d, r = line.split()
        if int(r) >= 1:
            judged.setdefault(q, set()).add(d)
    for rec in recs:
        assert not judged[rec["qid"]] & set(rec["nids"])
        assert all(float(s).is_integer() for s in rec["retrieval_scores"][1:])
        assert rec["retrieval_scores"][1:] == sorted(rec["retrieval_scores"][1:], reverse=True)
