"""Corpus readers: TSV, Anserini/BEIR JSONL, BEIR folders, TREC SGML, SMART and ir_datasets, with validation.

The BEIR, TREC and SMART readers live in their own modules (`repro.formats.beir`, `.trec`,
`.smart`); this module picks one and applies the checks common to all.

Every reader yields `Doc` in file order (the order defines encode shards, so it must be stable)
and raises `BadInputError` naming the file and line for a malformed record, unless the caller
asked to skip bad lines (then they are counted and reported).

Files are opened by `repro.formats.textio.open_input` (gzip recognised by content, a leading UTF-8
BOM dropped, UTF-16 refused by name); ids follow `repro.formats.ids` (surrounding whitespace
stripped, whitespace inside refused with file and line).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from repro.formats import beir, irds, smart, trec
from repro.errors import BadInputError, ReproError, short
from repro.formats.ids import clean_id, id_problem
from repro.formats.textio import ReadCounts, bad_line, head_text, iter_json_objects, iter_lines

FORMATS = ("auto", "tsv", "jsonl", "beir", "trec", "smart", "irds")


@dataclass(frozen=True)
class Doc:
    id: str
    text: str


def detect_format(source: str | Path) -> str:
    """Pick a reader from the file name; ir_datasets IDs are names that are not paths."""
    path = irds.local_source(source, "corpus")
    if path is None:
        return "irds"
    if path.is_dir():
        if beir.is_folder(path):
            return "beir"
        raise ReproError("is a folder; give a corpus file (.tsv, .jsonl, .smart or cran.all*, optionally gzipped), a "
                         "BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or an ir_datasets ID", path)
    name = path.name.lower().removesuffix(".gz")
    head = head_text(path)
    if trec.looks_like_documents(head):
        return "trec"
    if head.startswith(".I"):
        return "smart"
    if name.endswith((".tsv", ".txt")):
        return "tsv"
    if name.endswith((".jsonl", ".json")):
        return "jsonl"
    if name.startswith("cran.all") or name.endswith(".smart"):
        return "smart"
    if name.endswith((".trec", ".sgml")):
        return "trec"
    raise ReproError("cannot tell the corpus format from the file name (expected .tsv, .txt, .jsonl, .json, "
                     ".trec, .sgml, .smart or cran.all*, optionally .gz); rename it or pass --format "
                     "tsv|jsonl|beir|trec|smart", path)


def iter_docs(
    source: str | Path, fmt: str = "auto", skip_bad_lines: bool = False, stats: ReadCounts | None = None
) -> Iterator[Doc]:
    """Yield the documents of a corpus, checking ids are present and unique."""
    stats = stats if stats is not None else ReadCounts()
    fmt = detect_format(source) if fmt == "auto" else fmt
    readers = {"tsv": _iter_tsv, "jsonl": _iter_jsonl, "beir": _iter_beir, "trec": _iter_trec, "smart": _iter_smart,
               "irds": _iter_irds}
    if fmt not in readers:
        raise ReproError(f"unknown corpus format {fmt!r}; choose one of {', '.join(FORMATS)}")
    seen: dict[str, str] = {}
    for where, doc in readers[fmt](source, skip_bad_lines, stats):
        if doc.id in seen:
            raise BadInputError(f"duplicate document id {doc.id!r} (first at {seen[doc.id]})", *where)
        seen[doc.id] = f"line {where[1]}" if where[1] is not None else "earlier"
        yield doc


def _iter_tsv(source, skip, stats) -> Iterator[tuple[tuple, Doc]]:
    path = Path(source)
    for lineno, line in iter_lines(path, stats):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            bad_line(skip, stats, path, lineno, f"expected 'id<TAB>text', found no tab: {short(line)!r}")
            continue
        # Extra tabs belong to the text (e.g. id<TAB>title<TAB>body): joined with a space.
        doc_id, text = parts[0].strip(), " ".join(parts[1:])
        if problem := id_problem(doc_id, "document id"):
            bad_line(skip, stats, path, lineno, problem)
            continue
        yield (path, lineno), Doc(doc_id, text)


def _iter_jsonl(source, skip, stats) -> Iterator[tuple[tuple, Doc]]:
    path = Path(source)
    for lineno, record in iter_json_objects(path, stats, skip):
        doc_id = record.get("id", record.get("_id", record.get("docid")))
        if doc_id is None or str(doc_id).strip() == "":
            bad_line(skip, stats, path, lineno, "record has no 'id' (Anserini) or '_id' (BEIR)")
            continue
        if "contents" in record:
            text = record["contents"]
        elif "text" in record or "title" in record:
            # BEIR: title and text joined with a space, as BEIR's own evaluation does.
            text = " ".join(t for t in (record.get("title") or "", record.get("text") or "") if t)
        else:
            bad_line(skip, stats, path, lineno, "record has no 'contents' (Anserini) or 'title'/'text' (BEIR)")
            continue
        if not isinstance(text, str):
            bad_line(skip, stats, path, lineno, "document text is not a string")
            continue
        if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
            bad_line(skip, stats, path, lineno, f"document id is a JSON {type(doc_id).__name__}, expected a string or number")
            continue
        if problem := id_problem(str(doc_id).strip(), "document id"):
            bad_line(skip, stats, path, lineno, problem)
            continue
        yield (path, lineno), Doc(str(doc_id).strip(), text)


def _iter_smart(source, skip, stats) -> Iterator[tuple[tuple, Doc]]:
    """SMART: title (.T) and text (.W) are indexed; see `repro.formats.smart`."""
    path = Path(source)
    for start, doc_id, text in smart.iter_documents(path, stats):
        yield (path, start), Doc(doc_id, text)


def _iter_beir(source, skip, stats) -> Iterator[tuple[tuple, Doc]]:
    """BEIR folder (or its corpus.jsonl): title and text joined as `repro.formats.beir` says."""
    path = Path(source)
    corpus = path if path.is_file() else beir._need(path, "corpus.jsonl")
    for lineno, doc_id, text in beir.iter_corpus(path, skip, stats):
        yield (corpus, lineno), Doc(doc_id, text)


def _iter_trec(source, skip, stats) -> Iterator[tuple[tuple, Doc]]:
    """TREC SGML: Anserini TrecCollection's content tags; see `repro.formats.trec`."""
    path = Path(source)
    for start, doc_id, text in trec.iter_documents(path, stats):
        yield (path, start), Doc(doc_id, text)


def _iter_irds(source, skip, stats) -> Iterator[tuple[tuple, Doc]]:
    for doc in irds.iterate(str(source), "docs"):
        text = getattr(doc, "text", None)
        if text is None:
            text = getattr(doc, "body", "") or ""
        title = getattr(doc, "title", None)
        if title:
            text = f"{title} {text}"
        yield (str(source), None), Doc(clean_id(doc.doc_id, "document id", str(source), None), text)
