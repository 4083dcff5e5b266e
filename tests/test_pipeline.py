"""The real engine end to end: encode -> Lucene impact index -> search, exact to the last digit."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli

WORDS = ("python programming language code data science web server aerodynamics wing lift flow heat "
         "boundary layer plate supersonic paris restaurants food cafe river fox dog spider legs bert "
         "tokens sparse lucene index query retrieval ranking military fruit australia caffeine").split()


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def make_corpus(path: Path, n: int = 240, duplicates: int = 30, seed: int = 7) -> list[tuple[str, str]]:
    """Random texts plus many exact duplicates (ties in every score), and one empty document."""
    rng = random.Random(seed)
    docs = [(f"d{i:03d}", " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))) for i in range(n)]
    dup_text = "boundary layer heat transfer on a supersonic plate"
    docs += [(f"dup{j:02d}", dup_text) for j in reversed(range(duplicates))]  # reversed: file order != id order
    docs.append(("empty", "   "))
    path.write_text("".join(f"{i}\t{t}\n" for i, t in docs), encoding="utf-8")
    return docs


def read_collection(coll: Path) -> dict[str, dict[str, int]]:
    vectors = {}
    for shard in sorted((coll / "shards").glob("*.jsonl")):
        for line in shard.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            vectors[rec["id"]] = rec["vector"]
    return vectors


def read_run(path: Path) -> dict[str, list[tuple[str, str]]]:
    run: dict[str, list[tuple[str, str]]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, rank, score, _ = line.split()
        run.setdefault(qid, []).append((docid, score))
        assert int(rank) == len(run[qid])
    return run


TOPICS = ["boundary layer heat transfer", "python web server", "lazy dog", "best restaurants in paris"]


def build_pipeline(tmp: Path, model: str, topics: list[str]) -> dict:
    """corpus.tsv -> coll/ (encode) -> idx/ (Lucene impact index), and topics -> q.tsv (encoded)."""
    docs = make_corpus(tmp / "corpus.tsv")
    path = tmp / "topics.tsv"
    path.write_text("".join(f"q{i}\t{text}\n" for i, text in enumerate(topics, start=1)), encoding="utf-8")
    invoke("encode", str(tmp / "corpus.tsv"), "-m", model, "-o", str(tmp / "coll"), "--shard-size", "64", "-q")
    invoke("index", str(tmp / "coll"), "-o", str(tmp / "idx"), "--threads", "2")
    invoke("encode", str(path), "--queries", "-m", model, "-o", str(tmp / "q.tsv"))
    return {"tmp": tmp, "model": model, "docs": docs, "topics": path}


@pytest.fixture(scope="module")
def built(tmp_path_factory, _tiny_mlm_session):
    return build_pipeline(tmp_path_factory.mktemp("pipeline"), str(_tiny_mlm_session), TOPICS)


def test_collection_and_index_counts(built):
    tmp = built["tmp"]
    manifest = json.loads((tmp / "coll" / "manifest.json").read_text())
    vectors = read_collection(tmp / "coll")
    assert manifest["documents"] == len(built["docs"]) == len(vectors)
    assert manifest["empty_documents"] == 1 and vectors["empty"] == {"[repro:empty]": 1}
    assert manifest["weight_total"] == sum(sum(v.values()) for v in vectors.values())
    assert all(isinstance(w, int) and w > 0 for v in vectors.values() for w in v.values())
    index_manifest = json.loads((tmp / "idx" / "manifest.json").read_text())
    assert index_manifest["documents"] == manifest["documents"]
    assert index_manifest["index_tokens"] == manifest["weight_total"] + manifest["documents"]


@pytest.mark.parametrize("hits", [5, 40, 300])
def test_scores_are_exact_dot_products_and_lists_are_true_top_k(built, hits):
    tmp = built["tmp"]
    out = tmp / f"run{hits}.trec"
    invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(out), "-k", str(hits))
    docs = read_collection(tmp / "coll")
    queries = {line.split("\t")[0]: Counter(line.split("\t")[1].split())
               for line in (tmp / "q.tsv").read_text().splitlines()}
    run = read_run(out)
    assert set(run) == set(queries)
    for qid, qvec in queries.items():
        dots = {d: sum(w * vec.get(t, 0) for t, w in qvec.items()) for d, vec in docs.items()}
        expected = sorted(((d, s) for d, s in dots.items() if s > 0), key=lambda x: (-x[1], x[0]))[:hits]
        got = run[qid]
        assert [d for d, _ in got] == [d for d, _ in expected]
        assert [int(s.split(".")[0]) for _, s in got] == [s for _, s in expected]
        assert len({s for _, s in got}) == len(got), "scores must be tie-free"
        assert [float(s) for _, s in got] == sorted((float(s) for _, s in got), reverse=True)


def test_cutoff_ties_follow_the_docid_rule(built):
    """30 identical documents tie; a cutoff inside that group must keep the smallest ids, not Lucene's
    internal order (the duplicates were written in reverse id order, so Lucene alone would differ)."""
    tmp = built["tmp"]
    docs = read_collection(tmp / "coll")
    qline = (tmp / "q.tsv").read_text().splitlines()[0]
    qvec = Counter(qline.split("\t")[1].split())
    dots = {d: sum(w * vec.get(t, 0) for t, w in qvec.items()) for d, vec in docs.items()}
    ranking = sorted(dots, key=lambda d: (-dots[d], d))
    first_dup = next(i for i, d in enumerate(ranking) if d.startswith("dup"))
    k = first_dup + 3  # the cutoff falls inside the group of 30 tied duplicates
    out = tmp / "ties.trec"
    invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(out), "-k", str(k))
    ranked = read_run(out)[qline.split("\t")[0]]
    assert [d for d, _ in ranked] == ranking[:k]
    assert [d for d, _ in ranked if d.startswith("dup")] == ["dup00", "dup01", "dup02"]
    tied = [s for d, s in ranked if d.startswith("dup")]
    assert len(set(tied)) == 3 and len({s.split(".")[0] for s in tied}) == 1


def test_text_queries_with_model_equal_pre_encoded_queries(built):
    tmp = built["tmp"]
    invoke("search", str(tmp / "idx"), "-t", str(built["topics"]), "-m", built["model"], "-o", str(tmp / "a.trec"), "-k", "50")
    invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / "b.trec"), "-k", "50")
    strip = lambda p: [line.rsplit(" ", 1)[0] for line in p.read_text().splitlines()]  # noqa: E731
    assert strip(tmp / "a.trec") == strip(tmp / "b.trec")


def test_bm25_baseline_over_the_same_texts(built):
    tmp = built["tmp"]
    invoke("index", str(tmp / "coll"), "--bm25", "-o", str(tmp / "bm25"))
    invoke("search", str(tmp / "bm25"), "-t", str(built["topics"]), "-o", str(tmp / "bm25.trec"), "-k", "10")
    run = read_run(tmp / "bm25.trec")
    assert set(run) == {"q1", "q2", "q3", "q4"}
    for ranked in run.values():
        scores = [float(s) for _, s in ranked]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    assert json.loads((tmp / "bm25" / "manifest.json").read_text())["documents"] == len(built["docs"])


def test_search_runs_are_byte_identical(built):
    tmp = built["tmp"]
    for name in ("x1.trec", "x2.trec"):
        invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / name), "-k", "100")
    assert (tmp / "x1.trec").read_bytes() == (tmp / "x2.trec").read_bytes()


def test_resumed_encode_skips_finished_collection(built):
    out = invoke("encode", str(built["tmp"] / "corpus.tsv"), "-m", built["model"], "-o", str(built["tmp"] / "coll"),
                 "--shard-size", "64", "-q")
    assert "encoded 271 documents" in out


def test_index_refuses_tampered_collection(built, tmp_path):
    import shutil

    coll = tmp_path / "coll"
    shutil.copytree(built["tmp"] / "coll", coll)
    shard = coll / "shards" / "part-00001.jsonl"
    shard.write_text(shard.read_text().replace('"d0', '"x0', 1))
    result = CliRunner().invoke(cli, ["index", str(coll), "-o", str(tmp_path / "idx")])
    assert result.exit_code != 0 and "checksum" in result.output
    assert not (tmp_path / "idx").exists()


def test_terms_in_nearly_every_document_still_count(built):
    """Pyserini's Python search drops query terms with very low idf; our Java path must not."""
    tmp = built["tmp"]
    docs = read_collection(tmp / "coll")
    common = set.intersection(*(set(v) for d, v in docs.items() if d != "empty"))
    assert common, "the random model should give some tokens to every document"
    token = sorted(common)[0]
    (tmp / "common.tsv").write_text(f"qc\t{token} {token}\n")
    invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "common.tsv"), "-o", str(tmp / "c.trec"), "-k", "1000")
    ranked = read_run(tmp / "c.trec")["qc"]
    assert len(ranked) == len(docs) - 1  # every non-empty document matches
    assert all(int(s.split(".")[0]) == 2 * docs[d][token] for d, s in ranked)


def test_search_never_imports_pyserini(built):
    """Importing pyserini's search module crashes without OPENAI_API_KEY and costs ~10 s; we do not need it."""
    import subprocess
    import sys

    code = ("import sys; from repro.search.run import run_search; from repro.index.build import build_impact_index; "
            "print('pyserini' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_run_manifest_records_how_the_queries_were_made(built, tmp_path):
    """A run made from text topics records the query factor, length and topic format it used."""
    tmp = built["tmp"]
    out = tmp_path / "text.trec"
    invoke("search", str(tmp / "idx"), "-t", str(built["topics"]), "-m", built["model"], "-o", str(out), "-k", "5")
    config = json.loads((tmp_path / "text.trec.manifest.json").read_text())["config"]
    assert config["query_factor"] == 100 and config["query_max_length"] == 64 and config["topic_format"] == "auto"
    assert config["engine"] == "lucene" and config["kind"] == "impact"


def test_an_index_without_its_factor_is_refused_not_guessed(built, tmp_path):
    """A query factor silently defaulting to 100 would mis-scale queries against x1000 documents."""
    import shutil

    from repro.errors import ReproError
    from repro.index.build import index_factor

    with pytest.raises(ReproError, match="quantization factor"):
        index_factor({"config": {"kind": "impact"}}, Path("idx"))
    index = tmp_path / "idx"
    shutil.copytree(built["tmp"] / "idx", index)
    manifest = json.loads((index / "manifest.json").read_text())
    del manifest["encode_config"]["factor"]
    (index / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(cli, ["search", str(index), "-t", str(built["topics"]), "-m", built["model"],
                                      "-o", str(tmp_path / "r.trec")])
    assert result.exit_code == 2 and "pass --factor" in result.output and not (tmp_path / "r.trec").exists()
