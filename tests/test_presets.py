"""Presets are data: every shipped preset loads and validates; bad presets fail with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from repro.cli import cli
from repro.errors import ReproError
from repro.reproduce.preset import PRESET_DIR, choose, expand, list_presets, load_preset

REQUIRED = [
    "msmarco-v1-passage.splade-pp-ed", "msmarco-v1-passage.splade-pp-sd", "msmarco-v1-passage.splade-v3",
    "cranfield.splade-tiny", "cranfield.bm25", "cacm.splade-tiny", "cacm.bm25", "demo.splade-tiny", "demo.bm25",
]


def test_every_preset_loads_and_validates():
    import ir_measures

    names = [p.name for p in list_presets()]
    assert set(REQUIRED) <= set(names)
    for p in list_presets():
        assert p.path.name == f"{p.name}.toml"
        for ts in p.topic_sets:
            for m in ts.measures:
                assert str(ir_measures.parse_measure(m)) == m
            for e in ts.expected:
                assert e.source.strip() and e.tolerance >= 0
                assert e.measure in ts.measures


def test_splade_pp_ed_numbers():
    p = load_preset("msmarco-v1-passage.splade-pp-ed")
    assert p.model == "naver/splade-cocondenser-ensembledistil" and p.factor == 100
    dev = p.topic_set("dev-small")
    values = {(e.measure, e.value, e.kind, e.queries_mode) for e in dev.expected}
    assert ("RR@10", 0.380, "published", None) in values
    assert ("RR@10", 0.383, "published", None) in values
    assert ("RR@10", 0.3830, "published", "cached") in values
    assert ("RR@10", 0.3828, "published", "onnx") in values
    assert ("R@1000", 0.9831, "published", "cached") in values
    sub = [e for e in dev.expected if e.kind == "subsample"]
    assert len(sub) == 1 and sub[0].value == 0.392 and sub[0].subsample_size == 3000
    assert [e.value for e in p.topic_set("dl19").expected] == [0.7317]
    assert [e.value for e in p.topic_set("dl20").expected] == [0.7198]
    assert "R(rel=2)@1000" in p.topic_set("dl19").measures
    sd, v3 = load_preset("msmarco-v1-passage.splade-pp-sd"), load_preset("msmarco-v1-passage.splade-v3")
    assert {e.value for e in sd.topic_sets[0].expected} == {0.3776, 0.9846}
    assert {e.value for e in v3.topic_sets[0].expected} == {0.3999, 0.9868}


def test_offline_presets_state_lengths():
    for name in ("cranfield.splade-tiny", "cacm.splade-tiny", "demo.splade-tiny"):
        p = load_preset(name)
        assert (p.doc_max_length, p.query_max_length, p.model) == (256, 64, "splade-tiny")
        for ts in p.topic_sets:
            assert all(e.kind == "ours" for e in ts.expected)
    assert load_preset("cranfield.splade-tiny").topic_sets[0].qrels_format == "cranfield"


def _copy(tmp_path: Path, name: str, edit) -> Path:
    text = (PRESET_DIR / f"{name}.toml").read_text(encoding="utf-8")
    target = tmp_path / f"{name}.toml"
    target.write_text(edit(text), encoding="utf-8")
    return target


def test_unknown_key_is_an_error(tmp_path):
    bad = _copy(tmp_path, "cacm.bm25", lambda t: t.replace("hits = 1000", "hits = 1000\nhitz = 10"))
    with pytest.raises(ReproError, match=r"unknown key 'hitz'.*") as err:
        load_preset(bad)
    assert f"{bad}:" in str(err.value)  # names the file and line


def test_unknown_key_in_expected_is_an_error(tmp_path):
    bad = _copy(tmp_path, "msmarco-v1-passage.splade-pp-sd", lambda t: t.replace("tolerance = 0.001", "tolerance = 0.001\ntolerence = 1", 1))
    with pytest.raises(ReproError, match="unknown key 'tolerence'"):
        load_preset(bad)


def test_bad_measure_is_an_error(tmp_path):
    bad = _copy(tmp_path, "cacm.bm25", lambda t: t.replace('"RR@10"', '"MRR@ten"'))
    with pytest.raises(ReproError, match="bad measure 'MRR@ten'"):
        load_preset(bad)


def test_number_without_source_is_an_error(tmp_path):
    def drop_source(text: str) -> str:
        lines = text.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("source ="))
        return "\n".join(lines[:first] + lines[first + 1:]) + "\n"

    bad = _copy(tmp_path, "msmarco-v1-passage.splade-pp-sd", drop_source)
    with pytest.raises(ReproError, match="every number needs a source"):
        load_preset(bad)


def test_expected_measure_must_be_listed(tmp_path):
    bad = _copy(tmp_path, "msmarco-v1-passage.splade-pp-sd", lambda t: t.replace('measure = "R@1000"', 'measure = "nDCG@10"'))
    with pytest.raises(ReproError, match="not among the topic set's measures"):
        load_preset(bad)


def test_unknown_preset_suggests_names():
    with pytest.raises(ReproError, match="did you mean"):
        load_preset("cranfield.splade")


def test_variables_and_alternatives(monkeypatch, tmp_path):
    monkeypatch.setenv("REPRO_SHARED_DATA", str(tmp_path))
    assert expand("${shared}/x") == f"{tmp_path}/x"
    assert expand("${package}/data").endswith("repro/data")
    with pytest.raises(ReproError, match="unknown variable"):
        expand("${home}/x")
    assert choose(("${shared}/missing.tsv", "msmarco-passage/dev/small"), "topics") == "msmarco-passage/dev/small"
    (tmp_path / "here.tsv").write_text("1\tq\n")
    assert choose(("${shared}/here.tsv", "msmarco-passage/dev/small"), "topics") == f"{tmp_path}/here.tsv"
    with pytest.raises(ReproError, match="not found"):
        choose(("${shared}/missing.tsv",), "topics")


def test_presets_command_lists_and_shows():
    out = CliRunner().invoke(cli, ["presets"], catch_exceptions=False).output
    for name in REQUIRED:
        assert name in out
    shown = CliRunner().invoke(cli, ["presets", "msmarco-v1-passage.splade-pp-ed"], catch_exceptions=False).output
    assert "0.3828" in shown and "onnx" in shown and "subsample of 3000" in shown


# --- MS MARCO files in the shared data, against the preset -------------------------------------
def _cached_files():
    from repro.reproduce.preset import available

    for name in ("msmarco-v1-passage.splade-pp-ed", "msmarco-v1-passage.splade-v3"):
        for ts in load_preset(name).topic_sets:
            cached = available(ts.encoded_queries)
            assert cached, f"{name} {ts.name}: cached query file missing"
            yield name, ts, cached


def test_msmarco_cached_queries_match_preset(shared_data):
    """Every cached query file has exactly the preset's topics (fast: ids only; DL files fully parsed)."""
    import gzip

    from repro.formats.anserini_queries import read_encoded_queries
    from repro.reproduce.plan import check_counts
    from repro.formats.topics import read_topics

    for name, ts, cached in _cached_files():
        with gzip.open(cached, "rt", encoding="utf-8") as handle:
            ids = [line.split("\t", 1)[0] for line in handle if line.strip()]
        assert len(ids) == len(set(ids)) == ts.queries, (name, ts.name)
        topics_file = choose(ts.topics, "topics")
        assert set(ids) == set(read_topics(topics_file))
        if ts.queries < 1000:
            queries = read_encoded_queries(cached)
            assert all(sum(v.values()) > 0 for v in queries.values())
        facts = check_counts(ts, topics_file, choose(ts.qrels, "qrels"))
        assert facts == {"queries": ts.queries, "qrels_lines": ts.qrels_lines, "judged_queries": ts.judged_queries}
    dev = load_preset("msmarco-v1-passage.splade-pp-ed").topic_set("dev-small")
    assert (dev.queries, dev.qrels_lines, dev.judged_queries) == (6980, 7437, 6980)
    lines = (shared_data / "msmarco-passage" / "qrels.msmarco-passage.dev-subset.txt").read_text().splitlines()
    assert len(lines) == 7437


@pytest.mark.slow
def test_msmarco_dev_cached_queries_parse_fully(shared_data):
    from repro.formats.anserini_queries import read_encoded_queries

    for name, ts, cached in _cached_files():
        if ts.name == "dev-small":
            queries = read_encoded_queries(cached)
            assert len(queries) == 6980
            assert all(sum(v.values()) > 0 for v in queries.values())


def test_count_mismatch_is_an_error(shared_data, tmp_path):
    from dataclasses import replace

    from repro.reproduce.plan import check_counts

    ts = replace(load_preset("msmarco-v1-passage.splade-pp-ed").topic_set("dl19"), queries=44)
    with pytest.raises(ReproError, match="the preset says 44 queries, the data has 43"):
        check_counts(ts, choose(ts.topics, "t"), choose(ts.qrels, "q"))
