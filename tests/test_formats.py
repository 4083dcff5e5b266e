"""BEIR folders, TREC SGML and SMART files: every format and variant, field by field, from small files
built here (CRLF, .gz, header line, BOM, missing title); bad lines name the file and line."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from repro.errors import ReproError
from repro.formats import beir, smart, trec
from repro.formats.corpus import detect_format, iter_docs
from repro.formats.qrels import detect_qrels_format, read_qrels
from repro.formats.textio import ReadCounts
from repro.formats.topics import detect_topic_format, read_topics
from repro.testing import REPRO


def write(path: Path, text: str, *, gz: bool = False, crlf: bool = False, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if crlf:
        text = text.replace("\n", "\r\n")
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def beir_folder(root: Path, *, gz: bool = False, crlf: bool = False, bom: bool = False) -> Path:
    folder = root / "scifact"
    write(folder / "corpus.jsonl", jsonl(
        {"_id": "d1", "title": "Aspirin", "text": "reduces fever.", "metadata": {"x": 1}},
        {"_id": " d2 ", "text": "no title key"},
        {"_id": "d3", "title": "", "text": "empty title"},
        {"_id": 4, "title": None, "text": "int id, null title"},
    ), gz=gz, crlf=crlf, bom=bom)
    write(folder / "queries.jsonl", jsonl(
        {"_id": "q1", "text": "does aspirin reduce fever", "metadata": {}},
        {"_id": "q2", "text": "train only query"},
        {"_id": "q3", "text": "another test query"},
    ), gz=gz, crlf=crlf, bom=bom)
    write(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq3\td2\t2\nq3\td3\t0\n",
          gz=gz, crlf=crlf, bom=bom)
    write(folder / "qrels" / "train.tsv", "query-id\tcorpus-id\tscore\nq2\td3\t1\n", gz=gz, crlf=crlf)
    return folder


# --- BEIR ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", [{}, {"gz": True}, {"crlf": True}, {"bom": True}, {"gz": True, "crlf": True, "bom": True}])
def test_beir_folder_is_one_source(tmp_path, variant):
    folder = beir_folder(tmp_path, **variant)
    assert detect_format(folder) == "beir" and detect_topic_format(folder) == "beir"
    assert detect_qrels_format(folder) == "beir"
    docs = list(iter_docs(folder))
    assert [(d.id, d.text) for d in docs] == [
        ("d1", "Aspirin reduces fever."),  # Pyserini's BEIR join: f"{title} {text}"
        ("d2", "no title key"),            # missing title: the text alone, no leading space
        ("d3", "empty title"),
        ("4", "int id, null title"),
    ]
    assert read_topics(folder) == {"q1": "does aspirin reduce fever", "q3": "another test query"}
    assert read_topics(folder, split="train") == {"q2": "train only query"}
    qrels = read_qrels(folder)
    assert qrels.by_query == {"q1": {"d1": 1}, "q3": {"d2": 2, "d3": 0}}
    assert qrels.source.endswith(("test.tsv", "test.tsv.gz"))
    assert read_qrels(folder, split="train").by_query == {"q2": {"d3": 1}}


def test_beir_files_alone_and_without_header(tmp_path):
    folder = beir_folder(tmp_path)
    assert read_topics(folder / "queries.jsonl") == {"q1": "does aspirin reduce fever", "q2": "train only query",
                                                   "q3": "another test query"}
    nohead = write(tmp_path / "nohead.tsv", "q1\td1\t1\nq1\td2\t0\n")
    assert detect_qrels_format(nohead) == "beir"
    assert read_qrels(nohead).by_query == {"q1": {"d1": 1, "d2": 0}}


def test_beir_unknown_split_lists_the_splits(tmp_path):
    folder = beir_folder(tmp_path)
    with pytest.raises(ReproError, match=r"no qrels for split 'dev' \(has: test, train\)"):
        read_qrels(folder, split="dev")


@pytest.mark.parametrize("line,message", [
    ('{"_id": "d9", "title": "t"}', "record has no 'text'"),
    ('{"title": "t", "text": "x"}', r"empty document id \('_id'\)"),
    ('{"_id": "d 9", "text": "x"}', "contains whitespace"),
    ('{"_id": "d9", "text": 5}', "'text' is a int, not a string"),
    ('{"_id": "d9", "text": "x"', "not valid JSON"),
    ('["d9"]', "expected a JSON object"),
])
def test_beir_bad_corpus_line_names_file_and_line(tmp_path, line, message):
    folder = beir_folder(tmp_path)
    corpus = folder / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + line + "\n")
    with pytest.raises(ReproError, match=message) as err:
        list(iter_docs(folder))
    assert err.value.path == corpus and err.value.line == 5
    stats = ReadCounts()
    assert len(list(iter_docs(folder, skip_bad_lines=True, stats=stats))) == 4 and stats.skipped_lines == 1


@pytest.mark.parametrize("text,line,message", [
    ("query-id\tcorpus-id\tscore\nq1\td1\n", 2, "expected 3 columns"),
    ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", 2, "score .column 3. is not an integer"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t0\n", 3, "duplicate judgement"),
    ("qid\tdocid\trel\nq1\td1\t1\n", 1, "neither the header"),
])
def test_beir_bad_qrels_line(tmp_path, text, line, message):
    path = write(tmp_path / "qrels" / "test.tsv", text)
    with pytest.raises(ReproError, match=message) as err:
        beir.read_qrels(path)
    assert err.value.path == path and err.value.line == line


def test_beir_judged_query_missing_from_queries(tmp_path):
    folder = beir_folder(tmp_path)
    write(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq7\td1\t1\n")
    with pytest.raises(ReproError, match="1 judged quer.*not in queries.jsonl .e.g. 'q7'"):
        read_topics(folder)


def test_beir_duplicate_document_id(tmp_path):
    folder = beir_folder(tmp_path)
    corpus = folder / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + jsonl({"_id": "d1", "text": "again"}))
    with pytest.raises(ReproError, match="duplicate document id 'd1'") as err:
        list(iter_docs(folder))
    assert err.value.line == 5


# --- TREC SGML ----------------------------------------------------------------------------------
TREC_DOCS = """<DOC>
<DOCNO> FT911-1 </DOCNO>
<PROFILE>_AN-BEOA7AAIFT</PROFILE>
<DATE>910514
</DATE>
<HEADLINE>
FT  14 MAY 91 / Airbus subsidies
</HEADLINE>
<BYLINE>By a reporter</BYLINE>
<TEXT>
Airbus received <F P=102>state</F> aid.
Second line.
</TEXT>
loose text outside any tag
</DOC>
<DOC>
<DOCNO>
LA010189-0001
</DOCNO>
<DOCID>1</DOCID>
<TEXT>Short one-line text.</TEXT>
</DOC>
"""


@pytest.mark.parametrize("variant", [{}, {"gz": True}, {"crlf": True}, {"bom": True}])
def test_trec_documents_follow_anserini_trec_collection(tmp_path, variant):
    path = write(tmp_path / "fbis.txt", TREC_DOCS, **variant)
    assert detect_format(path) == "trec"
    docs = list(iter_docs(path))
    assert [d.id for d in docs] == ["FT911-1", "LA010189-0001"]
    # DATE, HEADLINE and TEXT blocks are taken; PROFILE, BYLINE, DOCID and loose text are not; tags removed
    assert docs[0].text == "910514 FT 14 MAY 91 / Airbus subsidies Airbus received state aid. Second line."
    assert docs[1].text == "Short one-line text."


@pytest.mark.parametrize("text,line,message", [
    ("<DOC>\n<TEXT>x</TEXT>\n</DOC>\n", 1, "without <DOCNO>"),
    ("<DOC>\n<DOCNO> A B </DOCNO>\n</DOC>\n", 2, "contains whitespace"),
    ("<DOC>\n<DOCNO>A</DOCNO>\n<TEXT>x</TEXT>\n", 1, "missing </DOC>"),
    ("<DOC>\n<DOCNO>A</DOCNO>\n<DOC>\n", 3, "inside the document"),
    ("junk\n<DOC>\n", 1, "outside <DOC>"),
])
def test_trec_bad_documents(tmp_path, text, line, message):
    path = write(tmp_path / "bad.trec", text)
    with pytest.raises(ReproError, match=message) as err:
        list(iter_docs(path, "trec"))
    assert err.value.path == path and err.value.line == line


TREC_TOPICS = """<top>
<num> Number: 301
<title> International Organized Crime

<desc> Description:
Identify organizations that participate in international criminal activity.

<narr> Narrative:
A relevant document must name the organization.
</top>

<top>
<head> Tipster Topic Description
<num> Number: 051
<dom> Domain: International Economics
<title> Topic: Airbus Subsidies
<desc> Description:
Document will discuss government assistance to Airbus.
<con> Concept(s):
1. Airbus Industrie
</top>
<top><num>702</num><title>pearl farming</title><desc>desc 702</desc></top>
<top>
<num> Number: 703
<desc> Description:
only a description here
</top>
"""


@pytest.mark.parametrize("variant", [{}, {"gz": True}, {"crlf": True}, {"bom": True}])
def test_trec_topics_and_variants(tmp_path, variant, caplog):
    path = write(tmp_path / "topics.301.txt", TREC_TOPICS, **variant)
    assert detect_topic_format(path) == "trec"
    topics = read_topics(path)
    assert topics == {"301": "International Organized Crime", "051": "Airbus Subsidies", "702": "pearl farming",
                      "703": "only a description here"}
    assert "1 topic(s) have no <title>" in caplog.text


@pytest.mark.parametrize("text,line,message", [
    ("<top>\n<title> x\n</top>\n", 1, "without <num>"),
    ("<top>\n<num> Number: 3 01\n<title> x\n</top>\n", 1, "contains whitespace"),
    ("<top>\n<num> 1\n<title> x\n<top>\n", 4, "inside the topic"),
    ("<top>\n<num> 1\n<title> x\n", 1, "missing </top>"),
    ("<top>\n<num> 1\n<title>x\n</top>\n<top>\n<num> 1\n<title>y\n</top>\n", 5, "duplicate topic id '1'"),
    ("<top>\n<num> 1\n<title>\n</top>\n", 1, "no <title> or <desc> text"),
])
def test_trec_bad_topics(tmp_path, text, line, message):
    path = write(tmp_path / "t.txt", text)
    with pytest.raises(ReproError, match=message) as err:
        read_topics(path, "trec")
    assert err.value.path == path and err.value.line == line


def test_cacm_style_topics_still_read(tmp_path):
    path = write(tmp_path / "cacm.txt", "<DOC>\n<DOCNO> 1 </DOCNO>\n\n What articles\nexist?\n</DOC>\n")
    assert read_topics(path) == {"1": "What articles exist?"}


# --- SMART --------------------------------------------------------------------------------------
SMART_DOCS = """.I 1
.W
the text of one
.T
Title One
.A
Some Author
.B
J. Aero 1958
.X
3 5 1
.I 002
.T
repeated title
.W
repeated title then the abstract.
.I 3
.A
only an author
"""


@pytest.mark.parametrize("variant", [{}, {"gz": True}, {"crlf": True}, {"bom": True}])
def test_smart_documents_fields_in_any_order(tmp_path, variant):
    path = write(tmp_path / "med.all", SMART_DOCS, **variant)
    assert detect_format(path) == "smart"
    docs = list(iter_docs(path))
    # .T and .W are indexed (title first); .A .B .X are not; zero padding dropped; Cranfield's title repeat once
    assert [(d.id, d.text) for d in docs] == [("1", "Title One the text of one"),
                                            ("2", "repeated title then the abstract."), ("3", "")]


def test_smart_marker_with_text_on_the_same_line_and_repeats(tmp_path):
    path = write(tmp_path / "x.smart", ".I 7\n.T Same line title\n.W first\n.W\nsecond\n")
    assert [(d.id, d.text) for d in iter_docs(path)] == [("7", "Same line title first\nsecond".replace("\n", " "))]


@pytest.mark.parametrize("text,line,message", [
    (".T\ntitle\n", 1, "before the first '.I'"),
    ("stray\n.I 1\n", 1, "text outside any field"),
    (".I\n.W\nx\n", 1, "empty '.I' id"),
    (".I 1\n.W\nx\n.I 1\n.W\ny\n", 4, "duplicate document id '1'"),
])
def test_smart_bad_documents(tmp_path, text, line, message):
    path = write(tmp_path / "bad.smart", text)
    with pytest.raises(ReproError, match=message) as err:
        list(iter_docs(path))
    assert err.value.path == path and err.value.line == line


SMART_QUERIES = ".I 001\n.W\nfirst query\n.I 004\n.W\nsecond\nquery\n.I 9\n.T\ntitle only\n"


@pytest.mark.parametrize("variant", [{}, {"crlf": True}, {"gz": True}, {"bom": True}])
def test_smart_query_numbering_is_explicit(tmp_path, variant):
    path = write(tmp_path / "q.qry", SMART_QUERIES, **variant)
    assert read_topics(path) == {"1": "first query", "2": "second query", "3": "title only"}
    assert read_topics(path, smart_ids="position") == read_topics(path)
    assert read_topics(path, smart_ids="ids") == {"1": "first query", "4": "second query", "9": "title only"}
    with pytest.raises(ReproError, match="must be position or ids"):
        read_topics(path, smart_ids="order")


def test_smart_numbering_warning(tmp_path):
    path = write(tmp_path / "q.qry", SMART_QUERIES)
    # qrels that use the .I ids (4 and 9 exist only that way): position numbering is the worse fit
    warning = smart.numbering_warning(path, "position", ["1", "4", "9"])
    assert warning and "fit numbering by ids better (3 of 3" in warning and "--smart-ids ids" in warning
    assert smart.numbering_warning(path, "ids", ["1", "4", "9"]) is None
    assert smart.numbering_warning(path, "ids", ["1", "2", "3"]) is not None
    assert smart.numbering_warning(path, "position", ["1", "2", "3"]) is None


@pytest.mark.parametrize("text", ["1 28\n1 29\n2 28\n", "1 28 0 0.000000\n1 29 0 0.000000\n2 28 0 0.000000\n",
                                  "01 0028 0 0\n01 29 0 0\n02 28 0 0\n"])
def test_smart_qrels_pairs_with_or_without_extra_columns(tmp_path, text):
    path = write(tmp_path / "qrels.text", text)
    assert detect_qrels_format(path) == "smart"
    # every listed pair is relevant; the 3rd/4th columns are not grades
    assert read_qrels(path).by_query == {"1": {"28": 1, "29": 1}, "2": {"28": 1}}


def test_smart_qrels_crlf_gz_and_bad_line(tmp_path):
    path = write(tmp_path / "qrels.text", "1 28 0 0.0\n1 29 0 0.0\n", gz=True, crlf=True)
    assert read_qrels(path, fmt="smart").by_query == {"1": {"28": 1, "29": 1}}
    bad = write(tmp_path / "bad.text", "1 28\n7\n")
    with pytest.raises(ReproError, match="expected 'query-id doc-id'") as err:
        read_qrels(bad, fmt="smart")
    assert err.value.line == 2


def test_trec_qrels_still_trec(tmp_path):
    path = write(tmp_path / "q.txt", "1 0 d1 1\n1 0 d2 0\n2 Q0 d1 2\n")
    assert detect_qrels_format(path) == "trec"
    assert read_qrels(path).by_query == {"1": {"d1": 1, "d2": 0}, "2": {"d1": 2}}


# --- through the CLI ----------------------------------------------------------------------------
def repro(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([REPRO, *args], cwd=cwd, capture_output=True, text=True)


def test_cli_bad_line_is_one_line_with_file_and_line(tmp_path):
    folder = beir_folder(tmp_path)
    corpus = folder / "corpus.jsonl"
    corpus.write_text(corpus.read_text() + '{"_id": "d 9", "text": "x"}\n')
    result = repro("index", str(folder), "--bm25", "-o", str(tmp_path / "idx"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {corpus}:5: document id ('_id') 'd 9' contains whitespace; ids may not (TREC runs and qrels "
        "separate columns by whitespace): rename it")


def test_cranfield_numbering_warning_on_the_real_files(tmp_path, shared_data):
    """Cranfield's qrels number queries by position: numbering by .I ids is flagged, position is not."""
    from repro.formats.cranfield import convert_cranfield_qrels

    qrels = tmp_path / "cran.qrels"
    convert_cranfield_qrels(shared_data / "cranfield" / "cranqrel", qrels)
    judged = read_qrels(qrels).by_query
    qry = shared_data / "cranfield" / "cran.qry"
    warning = smart.numbering_warning(qry, "ids", judged)
    assert warning and "(225 of 225 judged queries exist that way, 152 this way)" in warning
    assert smart.numbering_warning(qry, "position", judged) is None
    docs = list(iter_docs(shared_data / "cranfield" / "cran.all.1400"))
    assert len(docs) == 1400 and docs[0].id == "1" and docs[0].text.startswith("experimental investigation")
