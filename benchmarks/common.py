"""Shared helpers for the speed benchmarks: machine facts, interleaved timing, text and vector sets.

Every benchmark measures the baseline and ours in the same process run, interleaved, several
repetitions, and reports medians and their ratio: the machine is small and shared, so only
same-run comparisons mean anything.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("REPRO_SHARED", ROOT.parent / "shared"))
SPLADE_TINY = SHARED / "models" / "splade-tiny"
DATA = SHARED / "data"
DEFAULT_WORK = Path(os.environ.get("REPRO_BENCH_WORK", Path.home() / ".cache" / "repro-bench"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- machine and reporting ---------------------------------------------------------------------
def machine() -> str:
    """One line: CPU model, cores, RAM, Python, torch (if importable)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    extra = ""
    try:
        import torch

        extra = f", torch {torch.__version__}"
        if torch.cuda.is_available():  # every GPU number carries the card's name
            extra += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} cores{ram}, Python {platform.python_version()}{extra}"


def today() -> str:
    return _dt.date.today().isoformat()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def docids(hits: Sequence[tuple[str, Any]]) -> list[str]:
    """The docids of a searcher's ranked (docid, score) hits."""
    return [d for d, _ in hits]


def recall(exact: Sequence[Sequence[str]], got: Sequence[Sequence[str]], depth: int) -> float:
    """recall@depth of approximate ranked docid lists against exact ones: per query, the share of its
    exact top-depth that the approximate top-depth also holds, averaged over the queries that have
    an exact hit (a query with none says nothing about recall); nan when no query has one."""
    shares = []
    for ref, mine in zip(exact, got, strict=True):
        want = set(ref[:depth])
        if want:
            shares.append(len(want & set(mine[:depth])) / len(want))
    return sum(shares) / len(shares) if shares else float("nan")


def count_differences(pairs: Iterable[tuple[dict[str, int], dict[str, int]]]) -> dict[str, int]:
    """Over (ours, theirs) vectors keyed by token: terms in either, integer weights that differ, max |difference|."""
    differ = total = worst = 0
    for a, b in pairs:
        for tok in set(a) | set(b):
            total += 1
            d = abs(a.get(tok, 0) - b.get(tok, 0))
            if d:
                differ += 1
                worst = max(worst, d)
    return {"weights": total, "differ": differ, "max_abs_diff": worst}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[pos]


def interleaved(candidates: dict[str, Callable[[], Any]], reps: int) -> dict[str, list[float]]:
    """Run each candidate once per repetition, in rotating order; wall seconds per run."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for rep in range(reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    return times


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def add_run_options(parser: Any, smoke_help: str = "tiny sizes: checks that the script runs") -> None:
    """The options every benchmark shares: cache folder, smoke mode, JSON output, whether to append."""
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="cache of models, collections and indexes")
    parser.add_argument("--smoke", action="store_true", help=smoke_help)
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--no-append", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--docs-file", type=Path, default=None, metavar="FILE",
                        help="append the section to FILE instead of docs/benchmarks.md (a device run: into $OUT)")


def publish(args: Any, title: str, body: str) -> None:
    """Append a finished run to docs/benchmarks.md, except smoke runs and --no-append."""
    if not (args.smoke or args.no_append):
        append_to_docs(title, body, docs=args.docs_file)


def append_to_docs(title: str, body: str, *, docs: Path | None = None) -> Path:
    """Append a dated section (title, machine, the exact command, the printed table) to
    docs/benchmarks.md, so every run leaves its numbers where the project keeps them."""
    from repro.outputs import write_text

    target = docs or ROOT / "docs" / "benchmarks.md"
    old = target.read_text(encoding="utf-8") if target.exists() else "# Benchmarks\n"
    python = ".venv/bin/python" if Path(sys.prefix).resolve() == (ROOT / ".venv").resolve() else "python3"
    command = " ".join([python, str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute()
                        and ROOT in Path(sys.argv[0]).parents else sys.argv[0], *sys.argv[1:]])
    section = (f"## {title} ({today()}, appended by the script)\n\nMachine: {machine()}.\n"
               f"Command: `{command}`\n\n{body.strip()}\n")
    write_text(target, old.rstrip("\n") + "\n\n" + section)
    print(f"appended to {target}", file=sys.stderr)
    return target


def save_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- models ------------------------------------------------------------------------------------
def bert_base_splade(work: Path, *, layers: int = 12, hidden: int = 768, heads: int = 12,
                     intermediate: int = 3072) -> Path:
    """A random-weight BERT-base-sized MLM (vocab 30522) with the real bert-base-uncased tokenizer
    of splade-tiny (random weights cost exactly what trained ones do); cached under ``work``.

    Random weights alone give dense vectors (about 30,000 terms per passage), which no trained
    SPLADE does and which would make converting the output cost far more than it does for a real
    model. So the MLM decoder bias is set to one constant, calibrated on real MS MARCO passages
    to leave about ``DOC_TERMS`` terms per passage (queries, being shorter, get fewer): the network
    and its FLOPs are unchanged, the output has a SPLADE-like size.
    """
    folder = work / f"bert-l{layers}-h{hidden}-random-sparse"
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import BertConfig, BertForMaskedLM

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if (SPLADE_TINY / "tokenizer.json").exists():
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(SPLADE_TINY / name, tmp / name)
    else:  # no real tokenizer: a small trained one; its ids are < 30522 so the config still fits
        from repro.testing import build_tokenizer

        build_tokenizer(tmp)
    config = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=512)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    _calibrate_bias(model, tmp)
    model.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


DOC_TERMS = 200  # nonzeros per passage of the calibrated random model (SPLADE++ passages: 150-250)


def _calibrate_bias(model: Any, folder: Path, texts: int = 16) -> None:
    """Set the decoder bias to -c, c = median over real passages of the DOC_TERMS-th largest
    max-over-tokens logit: about DOC_TERMS positive SPLADE weights per passage."""
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    passages = msmarco_like_texts(texts, tokenizer)[0]  # real MS MARCO passages when ../shared has them
    bias = model.cls.predictions.bias
    with torch.no_grad():
        bias.zero_()
        cuts = []
        for text in passages:
            enc = tokenizer(text, truncation=True, max_length=256, return_tensors="pt")
            logits = model(**enc).logits[0].amax(dim=0)
            cuts.append(torch.topk(logits, DOC_TERMS).values[-1].item())
        bias.fill_(-statistics.median(cuts))


def tiny_model(work: Path) -> Path:
    """splade-tiny when present, else a random 2-layer/128-hidden BERT MLM of the same shape."""
    if (SPLADE_TINY / "model.safetensors").exists():
        return SPLADE_TINY
    return bert_base_splade(work, layers=2, hidden=128, heads=2, intermediate=512)


# --- texts ---------------------------------------------------------------------------------------
def _source_texts() -> tuple[list[str], list[str]]:
    """(real MS MARCO passages, other real abstracts: CACM and Cranfield)."""
    marco: list[str] = []
    for name in ("full_collection", "val_collection"):
        path = DATA / "splade-toy" / name / "raw.tsv"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                parts = line.split("\t", 1)
                if len(parts) == 2 and parts[1].strip():
                    marco.append(parts[1].strip())
    marco = list(dict.fromkeys(marco))
    other: list[str] = []
    cacm = DATA / "cacm" / "cacm.jsonl"
    if cacm.exists():
        for line in cacm.read_text(encoding="utf-8").splitlines():
            text = json.loads(line).get("contents", "")
            if len(text.split()) > 40:
                other.append(" ".join(text.split()))
    cran = DATA / "cranfield" / "cran.all.1400"
    if cran.exists():
        for block in cran.read_text(encoding="utf-8", errors="replace").split(".W")[1:]:
            body = block.split("\n.I ")[0]
            if len(body.split()) > 40:
                other.append(" ".join(body.split()))
    return marco, other


def msmarco_like_texts(n: int, tokenizer: Any, seed: int = 0) -> tuple[list[str], dict[str, float]]:
    """``n`` real texts with MS MARCO passage lengths.

    Target lengths (wordpieces incl. [CLS]/[SEP]) are drawn from the lengths of the real MS MARCO
    passages in splade-toy (mean about 75). Each text is a real MS MARCO passage, or a window of
    a real CACM/Cranfield abstract cut to the drawn length (whole words, cut by the tokenizer's
    offsets). Without the shared data, synthetic word salad of the same lengths is used.
    """
    rng = random.Random(seed)
    marco, other = _source_texts()
    if not marco:
        words = "the of retrieval sparse model query document index passage system aircraft flow".split()
        targets = [max(8, int(rng.gauss(75, 25))) for _ in range(n)]
        texts = [" ".join(rng.choice(words) for _ in range(t - 2)) for t in targets]
    else:
        lengths = [len(ids) for ids in tokenizer(marco)["input_ids"]]
        texts = list(marco[:n])
        pool = other or marco
        while len(texts) < n:
            target = rng.choice(lengths)
            src = rng.choice(pool).split()
            start = rng.randrange(0, max(1, len(src) - 10))
            window = src[start : start + target]  # words >= wordpieces - 2; cut below
            ids = tokenizer(" ".join(window), add_special_tokens=False)["input_ids"]
            while len(ids) > target - 2 and len(window) > 1:
                window = window[: max(1, int(len(window) * (target - 2) / len(ids)))]
                ids = tokenizer(" ".join(window), add_special_tokens=False)["input_ids"]
            texts.append(" ".join(window))
        rng.shuffle(texts)
    lens = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    return texts, {"mean": statistics.mean(lens), "median": statistics.median(lens), "max": max(lens),
                   "p10": percentile(lens, 10), "p90": percentile(lens, 90)}


def real_queries(n: int) -> list[str]:
    path = DATA / "msmarco-passage" / "topics.msmarco-passage.dev-subset.txt"
    if path.exists():
        queries = [line.split("\t", 1)[1].strip() for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]
        return queries[:n]
    rng = random.Random(1)
    words = "what is the best way to cook rice how many legs does a spider have define retrieval".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 9))) for _ in range(n)]


# --- synthetic SPLADE-like vectors ----------------------------------------------------------------
VOCAB = 30522


def vocabulary() -> list[str]:
    """Index terms: the real wordpieces (specials removed) when available, else t00000..."""
    path = SPLADE_TINY / "tokenizer.json"
    if path.exists():
        vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
        tokens = [tok for tok, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
        tokens = [t for t in tokens if not (t.startswith("[") and t.endswith("]"))]
        return tokens
    return [f"t{i:05d}" for i in range(VOCAB)]


class SyntheticSplade:
    """SPLADE-like integer vectors: documents of 150-200 nonzeros, queries of 20-40.

    Terms: Zipf (exponent 1.0) over the vocabulary, drawn without replacement, the term ranks
    shuffled once so frequent terms are spread over the vocabulary. Weights (x100 quantized):
    log-normal, median about 35 for documents and 60 for queries, clipped to 1..300, the shape of
    real SPLADE++ weights (many small weights, a long tail). Queries are drawn as half terms from a
    random document (so each query has real matches) and half from the Zipf distribution.
    """

    def __init__(self, seed: int = 0, exponent: float = 1.0) -> None:
        import numpy as np

        self.np = np
        self.tokens = vocabulary()
        v = len(self.tokens)
        rng = np.random.default_rng(seed)
        p = 1.0 / np.arange(1, v + 1) ** exponent
        self.cdf = np.cumsum(p / p.sum())
        self.perm = rng.permutation(v)
        self.seed = seed

    def _terms(self, rng, k: int):
        np = self.np
        seen: list[int] = []
        have: set[int] = set()
        while len(seen) < k:
            draw = np.searchsorted(self.cdf, rng.random(2 * k))
            for t in draw.tolist():
                if t not in have:
                    have.add(t)
                    seen.append(t)
                    if len(seen) == k:
                        break
        return self.perm[np.array(seen)]

    def _weights(self, rng, k: int, mu: float):
        np = self.np
        return np.clip(np.rint(np.exp(rng.normal(mu, 0.8, k))), 1, 300).astype(np.int64)

    def doc(self, i: int) -> tuple[Any, Any]:
        """Term ids (sorted) and weights of document ``i`` (deterministic in i)."""
        np = self.np
        rng = np.random.default_rng([self.seed, i])
        k = int(rng.integers(150, 201))
        terms = np.sort(self._terms(rng, k))
        return terms, self._weights(rng, k, 3.55)

    def query(self, j: int, docs: int) -> tuple[Any, Any]:
        np = self.np
        rng = np.random.default_rng([self.seed, 10**9 + j])
        k = int(rng.integers(20, 41))
        dterms, _ = self.doc(int(rng.integers(0, docs)))
        a = rng.choice(dterms, size=k // 2, replace=False)
        b = self._terms(rng, k)
        terms = np.array(list(dict.fromkeys(list(a.tolist()) + list(b.tolist())))[:k])
        return np.sort(terms), self._weights(rng, len(terms), 4.1)

    def doc_vector(self, i: int) -> dict[str, int]:
        terms, weights = self.doc(i)
        return {self.tokens[t]: int(w) for t, w in zip(terms.tolist(), weights.tolist())}

    def query_vector(self, j: int, docs: int) -> dict[str, int]:
        terms, weights = self.query(j, docs)
        return {self.tokens[t]: int(w) for t, w in zip(terms.tolist(), weights.tolist())}


def doc_id(i: int) -> str:
    return f"d{i}"


def write_collection(folder: Path, docs: int, synth: SyntheticSplade, shard: int = 100_000) -> Path:
    """A JsonVectorCollection (repro.formats.collection's layout) of docs 0..docs-1 (cached: reused if complete)."""
    from repro.formats.collection import SHARDS, record_line, shard_name

    done = folder / "COMPLETE"
    if done.exists():
        return folder
    (folder / SHARDS).mkdir(parents=True, exist_ok=True)
    for start in range(0, docs, shard):
        with open(folder / SHARDS / shard_name(start // shard), "w", encoding="utf-8") as out:
            for i in range(start, min(docs, start + shard)):
                out.write(record_line(doc_id(i), "", synth.doc_vector(i)) + "\n")
    done.write_text(str(docs))
    return folder


def build_lucene_index(collection: Path, index: Path, threads: int = 2, memory: str | None = None) -> dict[str, float]:
    """Anserini impact index (cached); returns build seconds, size and the JVM's peak RSS when built now."""
    from repro.engines import lucene
    from repro.formats.collection import SHARDS

    info_file = index.parent / (index.name + ".build.json")
    if (index / "COMPLETE").exists() and info_file.exists():
        return json.loads(info_file.read_text())
    shutil.rmtree(index, ignore_errors=True)
    start = time.perf_counter()
    with PeakWatcher() as peak:
        lucene.build(collection / SHARDS, index, threads=threads, settings={}, memory=memory)
    seconds = time.perf_counter() - start
    info = {"seconds": seconds, "bytes": dir_bytes(index), "peak_rss_mib": peak.children_mib}
    (index / "COMPLETE").write_text("ok")
    info_file.write_text(json.dumps(info))
    return info


class PeakWatcher:
    """Polls (every 0.1 s) the RSS of this process (or of process ``pid``, e.g. a local server) and,
    separately, of all its child processes."""

    def __init__(self, pid: int | None = None) -> None:
        import threading

        self.pid = pid
        self.self_mib = self.children_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process(self.pid)
        while True:
            try:
                kids = sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                kids = 0
            self.children_mib = max(self.children_mib, kids / 2**20)
            self.self_mib = max(self.self_mib, me.memory_info().rss / 2**20)
            if self._stop.wait(0.1):
                return

    def __enter__(self) -> "PeakWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def flops_per_text(config: Any, tokens: float, tokens_sq: float) -> float:
    """Forward FLOPs of a BERT SPLADE encoder for one text of ``tokens`` real tokens (mean of T^2 given).

    encoder 2*P*T + 4*L*T^2*H (matmuls, attention), MLM head 2*T*(H*H + H*V) at real tokens only.
    """
    h, v, layers, inter = config.hidden_size, config.vocab_size, config.num_hidden_layers, config.intermediate_size
    per_layer = 4 * h * h + 2 * h * inter  # q,k,v,o projections + the two MLP matrices
    encoder = 2 * layers * per_layer * tokens + 4 * layers * tokens_sq * h
    head = 2 * tokens * (h * h + h * v)
    return encoder + head


def gemm_ceiling(dtype: str = "float32", threads: int = 2, reps: int = 7, kernel: str = "blas") -> float:
    """Achievable dense matmul FLOP/s on this CPU (BERT-base-sized FFN shape): the practical roof.
    ``kernel``: torch's default (``blas``: MKL for fp32) or oneDNN's linear (repro.encode.cpu_linear),
    which on the AMD EPYC here is about twice MKL's fp32 rate."""
    import torch

    from repro.encode.cpu_linear import prepared, product

    torch.set_num_threads(threads)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    a, w = torch.randn(2048, 768, dtype=dt), torch.randn(3072, 768, dtype=dt)
    w = prepared(w, kernel)
    with torch.inference_mode():
        for _ in range(2):
            product(a, w, kernel)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            product(a, w, kernel)
            times.append(time.perf_counter() - start)
    return 2 * 2048 * 768 * 3072 / median(times)


@contextlib.contextmanager
def cpu_linear_kernel(kernel: str) -> Iterator[None]:
    """Encoders built inside run their linear layers with ``kernel`` (repro.encode.cpu_linear)."""
    from repro.encode.cpu_linear import ENV

    before = os.environ.get(ENV)
    os.environ[ENV] = kernel
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


def dir_bytes(path: Path) -> int:
    """Bytes of the files under a folder (a file: its size; missing: 0)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
