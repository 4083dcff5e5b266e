"""Build a BEIR-layout folder from the real MS MARCO DL20 pool, plus two user presets that reproduce on it.

Usage (from the project root):
    .venv/bin/python scripts/make_beir_dl20_pool.py OUT
    REPRO_PRESETS=OUT/presets repro reproduce dl20-pool.bm25 --source OUT/dl20-pool --workdir OUT/work --runs OUT/runs
    REPRO_PRESETS=OUT/presets repro reproduce dl20-pool.splade-tiny --source OUT/dl20-pool --workdir OUT/work --runs OUT/runs

Input: ../shared/data/msmarco-passage-dl20-pool/ (5,400 passages = SPLADE++ ED's top-100 for the 54 judged
TREC DL 2020 queries; Anserini JSON ``{"id", "contents"}``, and ``queries.tsv``) and the DL20 judgements
../shared/data/trec-dl-2020-passage/qrels.dl20-passage.txt. Output: OUT/dl20-pool/corpus.jsonl
(``_id``, ``title`` = "" as MS MARCO passages have none, ``text``), queries.jsonl (``_id``, ``text``) and
qrels/test.tsv (header ``query-id corpus-id score``, the graded 0..3 judgements of the 54 queries).
Because the pool is SPLADE++'s own top-100, nDCG@10 on it is a re-ranking figure: compare models with
each other on it, not with full-corpus numbers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    if os.environ.get("REPRO_SHARED_DATA"):
        return Path(os.environ["REPRO_SHARED_DATA"])
    return Path(os.environ.get("REPRO_SHARED", ROOT.parent / "shared")) / "data"


PRESET = """# A user preset (written by scripts/make_beir_dl20_pool.py): {model} on the DL20 pool as a BEIR folder.
description = "{label} on the MS MARCO DL20 pool (5,400 passages, 54 judged queries) as a BEIR folder"
collection = "dl20-pool"
retrieval = "{retrieval}"
{model_lines}corpus = "{folder}"
hits = 1000

[[topics]]
name = "test"
topics = "{folder}"
qrels = "{folder}"
split = "test"
measures = ["nDCG@10", "R@100"]
queries = 54
judged_queries = 54
"""


def build(out: Path, data: Path | None = None) -> Path:
    """Write OUT/dl20-pool/ (the BEIR folder) and OUT/presets/; return the folder."""
    data = data or shared_data()
    pool, dl20 = data / "msmarco-passage-dl20-pool", data / "trec-dl-2020-passage"
    folder = out / "dl20-pool"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(pool / "corpus.jsonl", encoding="utf-8") as src, open(folder / "corpus.jsonl", "w", encoding="utf-8") as dst:
        for line in src:
            record = json.loads(line)
            dst.write(json.dumps({"_id": record["id"], "title": "", "text": record["contents"]}) + "\n")
    queries = {}
    for line in (pool / "queries.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            qid, text = line.split("\t", 1)
            queries[qid] = text
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as dst:
        for qid, text in queries.items():
            dst.write(json.dumps({"_id": qid, "text": text}) + "\n")
    rows = []
    for line in (dl20 / "qrels.dl20-passage.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in queries:
            rows.append(f"{parts[0]}\t{parts[2]}\t{parts[3]}")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n", encoding="utf-8")
    presets = out / "presets"
    presets.mkdir(parents=True, exist_ok=True)
    (presets / "dl20-pool.bm25.toml").write_text(PRESET.format(
        model="BM25", label="BM25 (Anserini defaults)", retrieval="bm25", model_lines="", folder=folder), encoding="utf-8")
    (presets / "dl20-pool.splade-tiny.toml").write_text(PRESET.format(
        model="splade-tiny", label="splade-tiny", retrieval="splade",
        model_lines='model = "splade-tiny"\ndoc_max_length = 256\nquery_max_length = 64\nfactor = 100\n',
        folder=folder), encoding="utf-8")
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(build(Path(sys.argv[1]).resolve()))
