"""The fast paths give the same answers as the reference paths (docs/speed.md).

- (the fused SPLADE head against head-then-max is tested in tests/test_encoder_base.py);
- the ONNX query encoder's quantized vectors equal SpladeEncoder's (at most a few weights moved by
  float rounding at a .5 boundary; measured 0 of 5287 on 300 MS MARCO queries with splade-tiny);
- the in-process Lucene searcher returns exactly what the SearchCollection subprocess returns;
- Seismic with exhaustive settings returns the exact top-10;
- the benchmark scripts' --smoke modes run.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

QUERIES = ["what is python programming", "best restaurants in paris", "how many legs does a spider have",
           "lift increase due to the propeller", "sparse vectors and inverted indexes", "caffeine during pregnancy",
           "heat transfer in supersonic flow", "the quick brown fox", "", "operating systems for ibm computers"]
MAX_DIFFERING = 2  # quantized weights allowed to move (float rounding at .5 boundaries)


def _differing(a: list[dict[str, int]], b: list[dict[str, int]]) -> tuple[int, int]:
    differ = total = 0
    for x, y in zip(a, b):
        for tok in set(x) | set(y):
            total += 1
            differ += x.get(tok) != y.get(tok)
    return differ, total


@pytest.mark.parametrize("which", ["tiny_mlm", "splade_tiny"])
def test_onnx_query_encoder_matches_pytorch(which, request, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    model = request.getfixturevalue(which)
    from repro.encode.onnx_encoder import OnnxQueryEncoder
    from repro.encode.torch_encoder import SpladeEncoder

    ref = SpladeEncoder(str(model), max_length=64, device="cpu").encode(QUERIES)
    onnx = OnnxQueryEncoder(str(model), max_length=64, threads=1)
    got = onnx.encode(QUERIES)
    differ, total = _differing(ref, got)
    assert total > 0 and differ <= MAX_DIFFERING, (differ, total)
    assert got[QUERIES.index("")] == {}
    assert not any(tok in v for v in got for tok in ("[CLS]", "[SEP]", "[PAD]"))
    # the exported graph is cached: a second encoder reuses the file
    assert OnnxQueryEncoder(str(model), max_length=64).path == onnx.path


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    import common

    work = tmp_path_factory.mktemp("speed-index")
    synth = common.SyntheticSplade(seed=3)
    coll = common.write_collection(work / "collection", 400, synth)
    index = work / "lucene"
    common.build_lucene_index(coll, index, threads=1)
    return {"synth": synth, "collection": coll, "index": index, "docs": 400, "work": work}


def test_in_process_searcher_equals_subprocess(small_index):
    from repro.engines.lucene import search_topics
    from repro.engines.lucene import LuceneImpactSearcher
    from repro.formats.anserini_queries import query_line

    synth = small_index["synth"]
    vectors = {f"q{j}": synth.query_vector(j, small_index["docs"]) for j in range(8)}
    lines = {qid: query_line(qid, v).partition("\t")[2] for qid, v in vectors.items()}
    expected = search_topics(small_index["index"], lines, kind="impact", hits=50, threads=1)
    searcher = LuceneImpactSearcher(small_index["index"])
    try:
        for qid, vec in vectors.items():
            got = searcher.search(vec, 50)
            assert got == expected[qid]
            # scores are the exact integer dot products
            docid, score = got[0]
            doc = synth.doc_vector(int(docid[1:]))
            assert score == sum(w * doc.get(t, 0) for t, w in vec.items())
        assert searcher.search({}, 10) == []
    finally:
        searcher.close()


def test_seismic_exhaustive_is_exact(small_index):
    pytest.importorskip("seismic")
    from repro.engines.lucene import LuceneImpactSearcher
    from repro.engines.seismic import SeismicSearcher, build_seismic_index

    folder = small_index["work"] / "seismic"
    build_seismic_index(small_index["collection"], folder, n_postings=small_index["docs"], summary_energy=1.0,
                        doc_cut=1000, max_fraction=1.0, force=True)
    seis = SeismicSearcher(folder, query_cut=1000, heap_factor=1.0)
    lucene = LuceneImpactSearcher(small_index["index"])
    synth = small_index["synth"]
    for j in range(8):
        vec = synth.query_vector(j, small_index["docs"])
        assert seis.search(vec, 10) == lucene.search(vec, 10)


def _run_smoke(script: str, tmp_path: Path, *extra: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--work", str(tmp_path), *extra],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**__import__("os").environ, "REPRO_CACHE": str(tmp_path / "cache")})


def _succeeded(proc: subprocess.CompletedProcess, script: str) -> str:
    """The stdout of a benchmark run that exited 0 and printed whole tables."""
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _check_tables(proc.stdout, script)
    return proc.stdout


def _smoke(script: str, tmp_path: Path, *extra: str, timeout: int = 900) -> str:
    return _succeeded(_run_smoke(script, tmp_path, *extra, timeout=timeout), script)


def _check_tables(text: str, script: str) -> None:
    """Every markdown table the benchmark printed is whole: a header, a separator, data rows of the same
    width, and at least one measured number per data row (not only the presence of a "|")."""
    import re

    lines = text.splitlines()
    tables = []
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(row)
            tables.append((line, rows))
    assert tables, f"{script} printed no markdown table"
    for header, rows in tables:
        width = header.count("|")
        assert rows, f"{script}: table {header!r} has no rows"
        for row in rows:
            assert row.count("|") == width, (script, header, row)
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert any(re.match(r"[-+]?\d[\d,]*(\.\d+)?(\b|x|%)", c) for c in cells[1:]), (script, row)


@pytest.mark.slow
def test_bench_encode_smoke(tmp_path):
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers not installed")
    _smoke("bench_encode.py", tmp_path)


def test_bench_encode_fp32_emulation_probe(tmp_path):
    """The AMX probe behind docs/benchmarks.md's claim that exact fp32 cannot be bought with bf16 parts:
    its rows come out whole, one bf16 product is far less accurate than fp32, and six part products are
    as accurate as fp32 (so the probe measures real emulation, not a bf16 GEMM under another name)."""
    import re

    import torch

    from repro.encode.mixed_head import cpu_bf16_unit

    unit = cpu_bf16_unit()
    if not hasattr(getattr(torch.backends.mkldnn, "matmul", None), "fp32_precision") or unit is None:
        pytest.skip("needs torch's oneDNN fp32_precision setting and a CPU with bf16 arithmetic")
    proc = _run_smoke("bench_encode.py", tmp_path, "--fp32-emulation", "--reps", "1", timeout=300)
    if unit != "amx" and proc.returncode == 1 and "bf16 fp-math mode was not applied on this CPU" in proc.stderr:
        # AVX512-bf16 without AMX (an AMD EPYC here): oneDNN may keep fp32 multiplies; the probe must
        # then say so and publish nothing, not print a table of fp32 posing as bf16
        assert "|" not in proc.stdout and "appended" not in proc.stdout, proc.stdout
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    out = _succeeded(proc, "bench_encode.py")
    err = {label.strip(): float(e) for label, e in re.findall(r"^\|([^|]+)\|[^|]+\|[^|]+\|\s*([0-9.e+-]+)\s*\|$", out, re.M)}
    fp32 = err["fp32 (MKL, what the encoder runs)"]
    assert err["bf16 fp-math, 1 product (bf16 accuracy)"] > 100 * fp32, err
    assert err["bf16 fp-math, 6 part products (fp32 accuracy)"] < 4 * fp32, err


@pytest.mark.slow
def test_bench_encode_whole_process_smoke(tmp_path, shared_data):
    """`repro encode` against a sentence-transformers process on real passages: both tables whole,
    and the vectors of the two outputs compared (every weight equal on these 20 passages)."""
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers not installed")
    out = _smoke("bench_encode.py", tmp_path, "--whole-process", "--passages",
                 str(shared_data / "msmarco-passage-dl20-pool" / "corpus.jsonl"))
    assert "| model load |" in out and "| shard hashing (sha256) |" in out
    assert "Vectors: 0 of " in out and "20 documents, 0 missing" in out, out[-800:]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["bench_query_latency.py", "bench_scale.py", "bench_gpu.py", "bench_backends.py"])
def test_bench_smoke_slow(script, tmp_path, request):
    if script != "bench_gpu.py":
        pytest.importorskip("seismic")
        pytest.importorskip("onnxruntime")
    if script == "bench_backends.py":
        request.getfixturevalue("shared_data")  # real Cranfield + splade-tiny; skips without ../shared
        request.getfixturevalue("splade_tiny")
    _smoke(script, tmp_path)


def test_benchmarks_append_a_dated_section_with_machine_and_command(tmp_path):
    import common

    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nearlier results\n")
    common.append_to_docs("Scale", "| docs | q/s |\n|---|---:|\n| 10 | 5 |", docs=docs)
    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nearlier results\n\n## Scale (")
    assert "Machine: " in text and "Command: `" in text and text.rstrip().endswith("| 10 | 5 |")


def test_benchmark_recall_is_per_query_over_queries_with_exact_hits():
    """The one recall of every benchmark (common.recall): each query's share of its exact top-depth,
    averaged; a query with no exact hit is left out rather than counted as found or missed."""
    import common

    exact = [["a", "b", "c", "d"], [], ["x"]]
    got = [["b", "a", "z", "c"], ["q"], []]
    assert common.recall(exact, got, 2) == pytest.approx((2 / 2 + 0 / 1) / 2)
    assert common.recall(exact, got, 4) == pytest.approx((3 / 4 + 0) / 2)  # a pooled count would give 3/5
    assert math.isnan(common.recall([[], []], [["a"], []], 10))
    with pytest.raises(ValueError):
        common.recall(exact, got[:2], 10)  # unequal lists would pair the wrong queries


@pytest.mark.parametrize("script", ["gpu_prepare.sh", "gpu_run.sh"])
def test_device_scripts_parse(script):
    """The GPU scripts run only where a GPU is lent, rarely: at least they must be valid bash."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / script
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
