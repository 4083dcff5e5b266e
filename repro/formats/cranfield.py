"""Converters for the real test collections whose files are not in TREC format.

Cranfield's `cranqrel` is `query_position doc_id grade` with grades 1 (most relevant) .. 4
(least) and -1 (judged not relevant). TREC qrels want larger = more relevant, so grade g > 0 maps
to 5 - g (1 -> 4 ... 4 -> 1) and -1 maps to 0 (judged, not relevant). Query numbers are positions
in cran.qry, which `repro.formats.topics` also uses as query ids for SMART topics.
"""

from __future__ import annotations

from pathlib import Path

from repro.outputs import atomic_write
from repro.errors import BadInputError, ReproError
from repro.formats.textio import iter_lines


def cranfield_grade(grade: int) -> int:
    """Cranfield grade (1 best .. 4, -1 not relevant) -> TREC relevance (4 best .. 1, 0)."""
    if grade == -1:
        return 0
    if 1 <= grade <= 4:
        return 5 - grade
    if grade == 5:  # some distributions use 5 for "no relevance"
        return 0
    raise ValueError(grade)


def convert_cranfield_qrels(source: str | Path, output: str | Path, *, force: bool = True) -> int:
    """Write Cranfield's qrels as TREC qrels; return the number of judgements."""
    from repro.outputs import check_writable, refuse_overlap

    source, output = Path(source), Path(output)
    refuse_overlap(output, [source])
    check_writable(output, force)
    count = 0
    with atomic_write(output) as handle:
        for lineno, line in iter_lines(source):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3:
                raise BadInputError(f"expected 'query doc grade' (3 columns), found {len(parts)}", source, lineno)
            try:
                rel = cranfield_grade(int(parts[2]))
            except ValueError:
                raise BadInputError(f"grade {parts[2]!r} is not one of -1, 1..5", source, lineno) from None
            if not parts[0].isdigit():
                raise BadInputError(f"query number {parts[0]!r} is not a whole number", source, lineno)
            handle.write(f"{int(parts[0])} 0 {parts[1]} {rel}\n")
            count += 1
    if count == 0:
        raise ReproError("no judgements in file", source)
    return count
