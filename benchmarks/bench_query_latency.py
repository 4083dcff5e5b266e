"""One query at a time, text in -> top-1000 out: p50/p99 latency, split into encoding and retrieval.

Encoders (real MS MARCO dev query texts, 1 thread): PyTorch SpladeEncoder (baseline) vs the ONNX
query encoder (fp32 and int8), for splade-tiny and a BERT-base-sized model (random weights); and
the query side of an inference-free model (`--models inference-free`: a Router whose queries are
a static table over the bert-base-uncased vocabulary, random weights in [0, 5)), whose OWN vector
of the real query text is searched (its terms are the index's wordpieces): text in, top-k out.
Retrievers (synthetic index with SPLADE-like statistics, see common.SyntheticSplade; query j is
synthetic query vector j, since a random-weight model's vectors are not SPLADE-like):
  baseline  a fresh Anserini SearchCollection subprocess per query (repro.engines.lucene.search_topics)
  lucene    the in-process searcher (repro.engines.lucene.LuceneImpactSearcher), exact
  seismic   repro.engines.seismic.SeismicSearcher, approximate (recall@10 vs exact reported)
End to end = encoding + retrieval of the same query, every variant run per query, interleaved.
Interleaving is fair between variants but leaves each one the caches the others emptied (a
BERT-base forward pass streams 440 MB of weights), so with `--models inference-free` the
inference-free model is also timed ALONE: a child process holding only its static encoder and one
Seismic index (no JVM, no other model), as a service serving it runs; one pass over the queries
per search setting. `--seismic-build n_postings=2000` adds Seismic indexes built with other settings.

    .venv/bin/python benchmarks/bench_query_latency.py --docs 10000 100000
    .venv/bin/python benchmarks/bench_query_latency.py --docs 1000000      # ~25 min index build, cached
    .venv/bin/python benchmarks/bench_query_latency.py --smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def prepare_indexes(work: Path, docs: int, synth, *, seismic: bool, threads: int,
                    seismic_builds: list[dict] = ()) -> dict:
    """The cached Lucene index, the default Seismic index (``seismic``) and, in ``seismic_builds``,
    it and one Seismic index per extra build setting (``{"n_postings": 2000}`` -> folder
    ``seismic-n_postings2000``), keyed by their table labels."""
    coll = common.write_collection(work / f"synthetic-{docs}" / "collection", docs, synth)
    lucene = work / f"synthetic-{docs}" / "lucene"
    info = {"lucene": lucene, "lucene_build": common.build_lucene_index(coll, lucene, threads=threads),
            "seismic_builds": {}}
    if seismic:
        from repro.engines.seismic import build_seismic_index

        for build in [{}, *seismic_builds]:
            name = "seismic" + "".join(f"-{k}{v}" for k, v in sorted(build.items()))
            folder = work / f"synthetic-{docs}" / name
            if not (folder / "seismic.json").exists():
                with common.PeakWatcher() as peak:
                    built = build_seismic_index(coll, folder, threads=threads, **build)
                built["peak_rss_mib"] = peak.self_mib
                common.save_json(folder.parent / f"{name}.build.json", built)
            info["seismic_builds"][build_label(build)] = folder
        info["seismic"] = info["seismic_builds"][build_label({})]
    return info


def build_label(build: dict) -> str:
    """How a Seismic build is named in the tables: '' for the defaults, else '[n_postings=2000] '."""
    return "[" + ", ".join(f"{k}={v}" for k, v in sorted(build.items())) + "] " if build else ""


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def run_size(docs: int, args, encoders: dict, synth) -> dict:
    from repro.engines.lucene import search_topics
    from repro.engines.lucene import LuceneImpactSearcher
    from repro.formats.anserini_queries import query_line

    idx = prepare_indexes(args.work, docs, synth, seismic=not args.no_seismic, threads=args.threads,
                          seismic_builds=args.seismic_build)
    lucene = LuceneImpactSearcher(idx["lucene"])
    retrievers = {"lucene in-process": lambda v: lucene.search(v, args.hits)}
    if idx["seismic_builds"]:
        from repro.engines.seismic import SeismicSearcher

        for label, folder in idx["seismic_builds"].items():
            seis = SeismicSearcher(folder)
            for cut, heap in args.seismic:
                retrievers[seismic_name(cut, heap, label)] = (
                    lambda v, cut=cut, heap=heap, seis=seis: seis.search(v, args.hits, query_cut=cut, heap_factor=heap))
    vectors = [synth.query_vector(j, docs) for j in range(args.queries)]
    texts = common.real_queries(args.queries)
    # warm-up: JIT of the in-process JVM, ONNX sessions, caches
    for j in range(min(args.warmup, len(vectors))):
        for retrieve in retrievers.values():
            retrieve(vectors[j])
        for enc in encoders.values():
            enc.encode([texts[j]])
    times: dict[str, list[float]] = {}
    # (exact, approximate) docid lists per query, scored by common.recall at the end
    recall_pairs: dict[str, list[tuple[list, list]]] = {}
    own_pairs: dict[tuple[str, int], list[tuple[list, list]]] = {}  # inference-free own vectors, by (name, depth)
    own_exact: list[list[str]] = []  # the exact top-k of each query's own vector (one inference-free model)
    for j, (vec, text) in enumerate(zip(vectors, texts)):
        names = list(encoders)
        for name in names[j % len(names):] + names[: j % len(names)]:
            _, sec = timed(encoders[name].encode, [text])
            times.setdefault(f"encode {name}", []).append(sec)
        results = {}
        for name in list(retrievers)[j % len(retrievers):] + list(retrievers)[: j % len(retrievers)]:
            results[name], sec = timed(retrievers[name], vec)
            times.setdefault(f"retrieve {name}", []).append(sec)
        if j < args.baseline_queries:  # a fresh JVM per query: slow, so fewer queries
            line = query_line(f"q{j}", vec).partition("\t")[2]
            base, sec = timed(search_topics, idx["lucene"], {f"q{j}": line}, kind="impact", hits=args.hits, threads=1)
            times.setdefault("retrieve subprocess SearchCollection", []).append(sec)
            if base[f"q{j}"] != results["lucene in-process"]:
                raise SystemExit(f"in-process results differ from SearchCollection for query {j}")
        for name in [n for n in encoders if n.endswith(" static")]:  # inference-free: its own vector
            own = encoders[name].encode([text])[0]
            got = {}
            for rname in list(retrievers)[j % len(retrievers):] + list(retrievers)[: j % len(retrievers)]:
                got[rname], sec = timed(retrievers[rname], own)
                times.setdefault(f"retrieve-own {name} {rname}", []).append(sec)
            own_exact.append(common.docids(got["lucene in-process"]))
            for rname in retrievers:
                if rname.startswith("seismic"):
                    for depth in (10, args.hits):
                        own_pairs.setdefault((f"{name} {rname}", depth), []).append(
                            (own_exact[-1], common.docids(got[rname])))
        for name in retrievers:
            if name.startswith("seismic"):
                recall_pairs.setdefault(name, []).append(
                    (common.docids(results["lucene in-process"]), common.docids(results[name])))
    lucene.close()
    return {"docs": docs, "times": times, "hits": args.hits,
            "recall_at_10": {k: common.recall(*zip(*pairs), 10) for k, pairs in recall_pairs.items()},
            "own_recall": {f"{k} @{depth}": common.recall(*zip(*pairs), depth)
                           for (k, depth), pairs in own_pairs.items()},
            "build": idx["lucene_build"], "own_exact": own_exact, "seismic_builds": idx["seismic_builds"]}


ALONE_FLAG = "--alone-child"


def alone_child(spec_file: Path) -> int:
    """The serving process of an inference-free model on Seismic, as a service runs it: the static
    query encoder and one Seismic index, no JVM and no other model in the process. One pass over
    all queries per search setting (each query searched once per pass: no cache warmed by the same
    query), text in -> top-k out, timed per query. Writes times and docids as JSON."""
    import json

    from repro.encode.queries import query_encoder
    from repro.engines.seismic import SeismicSearcher

    spec = json.loads(spec_file.read_text())
    encoder = query_encoder(spec["model"])
    searcher = SeismicSearcher(Path(spec["index"]))
    texts, out = spec["texts"], {}
    for (cut, heap), hits in [(c, k) for c in spec["settings"] for k in spec["depths"]]:
        for text in texts[: spec["warmup"]]:
            searcher.search(encoder.encode([text])[0], hits, query_cut=cut, heap_factor=heap)
        enc, e2e, runs, again = [], [], [], 0
        for text in texts:
            before = searcher.searches
            start = time.perf_counter()
            vector = encoder.encode([text])[0]
            middle = time.perf_counter()
            ranked = searcher.search(vector, hits, query_cut=cut, heap_factor=heap)
            e2e.append(time.perf_counter() - start)
            enc.append(middle - start)
            runs.append(common.docids(ranked))
            again += searcher.searches - before > 1  # searched deeper: the cutoff tied past the first depth
        out[f"{cut}:{heap}:{hits}"] = {"cut": cut, "heap": heap, "hits": hits, "encode": enc, "e2e": e2e, "runs": runs,
                                       "searched_again": again}
    Path(spec["output"]).write_text(json.dumps(out))
    return 0


def alone_rows(res: dict, args, model: Path, texts: list[str]) -> list[list]:
    """Rows of the inference-free model served alone (alone_child), one child process per Seismic
    index; recall against the parent's exact Lucene top-k of the same own vectors."""
    import json
    import subprocess
    import tempfile

    rows, pct = [], common.percentile
    for label, folder in res["seismic_builds"].items():
        with tempfile.TemporaryDirectory() as tmp:
            spec = {"model": str(model), "index": str(folder), "texts": texts, "depths": sorted({args.hits, 10}, reverse=True),
                    "warmup": args.warmup, "settings": args.seismic, "output": str(Path(tmp) / "out.json")}
            (Path(tmp) / "spec.json").write_text(json.dumps(spec))
            subprocess.run([sys.executable, __file__, ALONE_FLAG, str(Path(tmp) / "spec.json")], check=True)
            got = json.loads((Path(tmp) / "out.json").read_text())
        for part in got.values():
            ret = [b - a for a, b in zip(part["encode"], part["e2e"])]
            rec = {depth: common.recall(res["own_exact"], part["runs"], depth)
                   for depth in sorted({10, part["hits"]})}
            quality = ", ".join(f"recall@{d} {r:.3f}" for d, r in rec.items())
            quality += f", {part['searched_again']} of {len(texts)} searched again (tie at rank {part['hits']})"
            rows.append([res["docs"], f"inference-free ALONE in its process, top-{part['hits']}: static table + Seismic "
                         f"{label}cut {part['cut']} heap {part['heap']}, own query vector, {quality}",
                         *(1000 * pct(x, q) for x in (part["encode"], ret, part["e2e"]) for q in (50, 99))])
    return rows


def seismic_name(cut: int, heap: float, build: str = "") -> str:
    return f"seismic {build}cut {cut} heap {heap}"


def summarize(res: dict, models: list[str]) -> list[list]:
    t = res["times"]
    rows = []
    pct = common.percentile

    def row(label, enc_key, ret_key):
        if enc_key not in t or ret_key not in t:
            return
        n = min(len(t[enc_key]), len(t[ret_key]))
        e2e = [a + b for a, b in zip(t[enc_key][:n], t[ret_key][:n])]
        rows.append([res["docs"], label, 1000 * pct(t[enc_key], 50), 1000 * pct(t[enc_key], 99),
                     1000 * pct(t[ret_key], 50), 1000 * pct(t[ret_key], 99), 1000 * pct(e2e, 50), 1000 * pct(e2e, 99)])

    for m in models:
        row(f"{m}: baseline (PyTorch + SearchCollection subprocess)", f"encode {m} pytorch", "retrieve subprocess SearchCollection")
        row(f"{m}: ONNX fp32 + in-process Lucene (exact)", f"encode {m} onnx", "retrieve lucene in-process")
        row(f"{m}: ONNX int8 + in-process Lucene (exact)", f"encode {m} onnx-int8", "retrieve lucene in-process")
        for name, recall in res["recall_at_10"].items():
            label = f"Seismic {name.removeprefix('seismic ')}, recall@10 {recall:.3f}"
            row(f"{m}: ONNX fp32 + {label}", f"encode {m} onnx", f"retrieve {name}")
            row(f"{m}: ONNX int8 + {label}", f"encode {m} onnx-int8", f"retrieve {name}")
        row(f"{m}: PyTorch + in-process Lucene", f"encode {m} pytorch", "retrieve lucene in-process")
        row(f"{m}: static table + in-process Lucene (exact), own query vector", f"encode {m} static",
            f"retrieve-own {m} static lucene in-process")
        for name in res["recall_at_10"]:
            own = res["own_recall"]
            key = f"{m} static {name} @"
            if key + "10" not in own:
                continue
            label = f"recall@10 {own[key + '10']:.3f}, recall@{res['hits']} {own[key + str(res['hits'])]:.3f}"
            row(f"{m}: static table + Seismic {name.removeprefix('seismic ')}, own query vector, {label}",
                f"encode {m} static", f"retrieve-own {m} static {name}")
    return rows


def inference_free_model(work: Path) -> Path:
    """An inference-free Router over splade-tiny (or the tiny stand-in): its query side, a static
    table over the same wordpiece vocabulary as the synthetic index, is what is timed."""
    folder = work / "inference-free"
    if not (folder / "router_config.json").exists():
        from repro.testing import build_inference_free

        build_inference_free(folder, common.tiny_model(work))
    return folder


def setting(text: str) -> tuple[int, float]:
    cut, _, heap = text.partition(":")
    return int(cut), float(heap)


def build_setting(text: str) -> dict:
    """'n_postings=2000,summary_energy=0.5' -> checked Seismic build settings."""
    from repro.engines.seismic import BUILD_SETTINGS, check_settings
    from repro.errors import ReproError

    pairs = [item.partition("=") for item in text.split(",")]
    try:
        return check_settings({k: float(v) for k, _, v in pairs}, BUILD_SETTINGS, "build")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY=NUMBER[,KEY=NUMBER], got {text!r}")
    except ReproError as err:
        raise argparse.ArgumentTypeError(str(err))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [ALONE_FLAG]:
        return alone_child(Path(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-queries", type=int, default=20, help="queries run through a subprocess each")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="index build threads")
    parser.add_argument("--encode-threads", type=int, default=1, help="threads of the query encoders (all of them)")
    parser.add_argument("--models", default="tiny,base", help="comma list of tiny,base,inference-free")
    parser.add_argument("--seismic", type=setting, nargs="+", default=[(20, 0.8), (10, 0.8), (5, 0.7)],
                        metavar="CUT:HEAP", help="Seismic query_cut:heap_factor settings to time (recall@10 each)")
    parser.add_argument("--seismic-build", type=build_setting, nargs="+", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help="extra Seismic indexes with these build settings (e.g. n_postings=2000), "
                             "each timed with every --seismic search setting")
    parser.add_argument("--no-seismic", action="store_true")
    common.add_run_options(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.docs, args.queries, args.baseline_queries, args.warmup, args.models = [2000], 6, 2, 2, "tiny,inference-free"
        args.seismic_build = args.seismic_build or [{"n_postings": 500}]
    from repro.encode.onnx_encoder import OnnxQueryEncoder
    from repro.encode.torch_encoder import SpladeEncoder

    encoders = {}
    models = []
    for m in args.models.split(","):
        if m == "inference-free":
            from repro.encode.queries import query_encoder

            models.append(m)
            encoders["inference-free static"] = query_encoder(str(inference_free_model(args.work)))
            continue
        path = common.tiny_model(args.work) if m == "tiny" else common.bert_base_splade(args.work)
        name = "splade-tiny" if path == common.SPLADE_TINY else ("tiny" if m == "tiny" else "BERT-base")
        models.append(name)
        threads = args.encode_threads
        encoders[f"{name} pytorch"] = SpladeEncoder(str(path), max_length=64, device="cpu", threads=threads)
        encoders[f"{name} onnx"] = OnnxQueryEncoder(str(path), max_length=64, threads=threads)
        encoders[f"{name} onnx-int8"] = OnnxQueryEncoder(str(path), max_length=64, threads=threads, int8=True)
    synth = common.SyntheticSplade()
    print(f"machine: {common.machine()}")
    all_rows, results = [], []
    for docs in args.docs:
        res = run_size(docs, args, encoders, synth)
        results.append(res)
        all_rows += summarize(res, models)
        if "inference-free" in models and res["seismic_builds"] and res["own_exact"]:
            all_rows += alone_rows(res, args, inference_free_model(args.work), common.real_queries(args.queries))
        for name, recall in res["recall_at_10"].items():
            print(f"{docs} docs: {name}: recall@10 vs exact Lucene {recall:.3f}")
        for name, recall in res["own_recall"].items():
            print(f"{docs} docs: {name.replace(' @', ': recall@')} vs exact Lucene on the same vector {recall:.3f}")
    table = common.markdown_table(["docs", "pipeline", "encode p50 ms", "encode p99 ms", "retrieve p50 ms",
                                   "retrieve p99 ms", "end-to-end p50 ms", "end-to-end p99 ms"], all_rows)
    print(table)
    common.publish(args, "Query latency, one query at a time", table)
    if args.json:
        common.save_json(args.json, {"machine": common.machine(), "date": common.today(), "rows": all_rows,
                                     "recall_at_10": {r["docs"]: r["recall_at_10"] for r in results},
                                     "own_recall": {r["docs"]: r["own_recall"] for r in results},
                                     "args": {k: str(v) for k, v in vars(args).items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
