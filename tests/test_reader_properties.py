"""Property-based tests of every reader (corpus, topics, qrels, run): whatever the bytes, lines, BOMs,
encodings or compression, a reader returns a result or raises ReproError (one line), never another
exception, and the CLI never prints a traceback or an ``internal error:`` line.

Kept fast for the plain suite: 150 examples per reader, no deadline.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repro.errors import ReproError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

_TOKENS = st.sampled_from(["d1", "q1", "Q0", "0", "1", "-1", "2.5", "nan", "inf", "x y", "\u00a0", "\ufeff", "é",
                           "{", '"id"', ":", "<top>", "<num>", "</top>", ".I", ".W", ".T", "1e309", ""])
_SEPARATORS = st.sampled_from([" ", "\t", "  ", "\u00a0", "\x0b", "\r", ""])


@st.composite
def line_shaped(draw) -> bytes:
    """Lines that look almost right: tokens and separators in random orders, numbers of columns."""
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        parts = draw(st.lists(_TOKENS, max_size=8))
        seps = [draw(_SEPARATORS) for _ in parts]
        lines.append("".join(p + s for p, s in zip(parts, seps)))
    ending = draw(st.sampled_from(["\n", "\r\n", ""]))
    return ending.join(lines).encode("utf-8") + (ending.encode() if lines and draw(st.booleans()) else b"")


@st.composite
def file_bytes(draw) -> bytes:
    """Random or line-shaped content, then maybe a BOM, a re-encoding to UTF-16, gzip, or a cut."""
    data = draw(st.one_of(st.binary(max_size=300), line_shaped()))
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    transform = draw(st.sampled_from(["none", "utf16", "gzip", "gzip-cut", "utf16-nobom"]))
    if transform == "utf16":
        data = data.decode("utf-8", errors="replace").encode("utf-16")
    elif transform == "utf16-nobom":
        data = data.decode("utf-8", errors="replace").encode("utf-16-le")
    elif transform == "gzip":
        data = gzip.compress(data)
    elif transform == "gzip-cut":
        data = gzip.compress(data)[: draw(st.integers(0, 20))]
    return data


def _check(read, data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("input" + suffix)
        path.write_bytes(data)
        try:
            read(path)
        except ReproError as err:
            message = err.format_message()
            assert "\n" not in message and "internal error" not in message, message


@SETTINGS
@given(data=file_bytes(), suffix=st.sampled_from([".tsv", ".jsonl", ".tsv.gz", ".smart"]), skip=st.booleans())
def test_corpus_reader_never_crashes(data, suffix, skip):
    from repro.formats.corpus import iter_docs

    _check(lambda p: list(iter_docs(p, skip_bad_lines=skip)), data, suffix)


@SETTINGS
@given(data=file_bytes(), fmt=st.sampled_from(["auto", "tsv", "trec", "smart"]))
def test_topics_reader_never_crashes(data, fmt):
    from repro.formats.topics import read_topics

    _check(lambda p: read_topics(p, fmt), data, ".txt")


@SETTINGS
@given(data=file_bytes())
def test_qrels_reader_never_crashes(data):
    from repro.formats.qrels import read_qrels

    _check(read_qrels, data, ".txt")


@SETTINGS
@given(data=file_bytes())
def test_run_reader_never_crashes(data):
    from repro.formats.runs import read_run

    _check(read_run, data, ".trec")


@SETTINGS
@given(data=file_bytes())
def test_encoded_queries_reader_never_crashes(data):
    from repro.formats.anserini_queries import read_encoded_queries

    _check(read_encoded_queries, data, ".tsv")


@SETTINGS
@given(tokens=st.lists(st.sampled_from(["a", "aa", "a.", "ab", "##a", "\u00e9", "\u00df"]), max_size=14),
       gaps=st.lists(st.sampled_from([" ", " ", "  ", "\t", "\u00a0", "\u3000"]), min_size=15, max_size=15))
def test_run_counting_of_query_tokens_equals_a_plain_count(tokens, gaps):
    """The regex run count behind read_encoded_queries gives str.split()'s counts, repeats adjacent
    or not, a token a prefix of the next or not, whatever the whitespace."""
    from collections import Counter

    from repro.formats.anserini_queries import token_counts

    body = gaps[-1] + "".join(tok + gap for tok, gap in zip(tokens, gaps))
    assert token_counts(body) == dict(Counter(body.split()))


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf"])
def test_fast_and_slow_run_paths_agree(tmp_path, prefix):
    """The pyarrow path and the line reader read the same run the same way (BOM or not)."""
    from repro.formats import runs

    body = b"q1 Q0 d1 1 2.0 t\nq2 Q0 d2 1 1.5 t\nq1 Q0 d3 2 1.0 t\n"
    (tmp_path / "r.trec").write_bytes(prefix + body)
    fast = runs._read_fast(tmp_path / "r.trec")
    assert fast is not None
    assert fast.to_dict() == runs._read_slow(tmp_path / "r.trec").to_dict()


def test_cli_never_prints_an_internal_error(tmp_path, capsys):
    """A few of the generated shapes through the real entry point: one `error:` line, no traceback."""
    from faultkit import repro_main

    samples = [b"\xff\xfe" + "q1 0 d1 1\n".encode("utf-16-le"), gzip.compress(b"q1 0 d1 1\n")[:15], b"\x00\x01\x02",
               b"\xef\xbb\xbfq1 Q0 d1 1 nan t\n", b"q1 Q0 d1\xc2\xa0x 1 1 t\n"]
    (tmp_path / "ok.qrels").write_text("q1 0 d1 1\n")
    for i, data in enumerate(samples):
        (tmp_path / f"{i}.trec").write_bytes(data)
        res = repro_main(capsys, "evaluate", tmp_path / f"{i}.trec", "--qrels", tmp_path / "ok.qrels")
        assert res.code == 2, (data, res.err)
        assert "Traceback" not in res.err and "internal error" not in res.err, res.err
        assert len([ln for ln in res.err.splitlines() if ln.startswith("error: ")]) == 1
