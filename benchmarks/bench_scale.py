"""Build time, index size, memory, latency, queries/s and recall@10 vs collection size: Lucene, Seismic, Milvus.

Synthetic SPLADE-like vectors (common.SyntheticSplade: 150-200 nonzeros/doc, 20-40/query, Zipf
over the 30522 wordpieces, log-normal integer weights). Indexes are cached under --work, so a
second run only searches (build numbers come from the cached build record). All engines are
measured in the same run on the same vectors and queries. Recall@10 is against the exact top-10
(Lucene's, tie rule applied). Milvus runs embedded (Milvus Lite, in this process, exhaustive
search) up to --milvus-lite-max documents, or on a server with --milvus-uri (then also with
approximate drop_ratio_search values, their recall measured). Without a cluster,
benchmarks/milvus_server.py serves the C++ Milvus engine from this machine; with its record
(--milvus-server-info) the server process's own build peak, serving memory and disk are measured.

    .venv/bin/python benchmarks/bench_scale.py --docs 10000 100000
    .venv/bin/python benchmarks/bench_scale.py --docs 1000000       # ~25 min Lucene build here
    .venv/bin/python benchmarks/bench_scale.py --smoke
    .venv/bin/python benchmarks/bench_scale.py --docs 10000 --no-milvus   # Lucene and Seismic only
    .venv/bin/python benchmarks/bench_scale.py --docs 1000000 --milvus-uri http://host:19530
    .venv/bin/python benchmarks/bench_scale.py --docs 10000 100000 1000000 --milvus-uri http://127.0.0.1:19530 \
        --milvus-server-info /tmp/milvus-server/server.json       # after benchmarks/milvus_server.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from bench_query_latency import prepare_indexes  # noqa: E402


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def server_rss_mib(server: dict | None) -> float | None:
    """The RSS of a local server process (benchmarks/milvus_server.py's record), else None."""
    if not server:
        return None
    import psutil

    return psutil.Process(server["pid"]).memory_info().rss / 2**20


@contextlib.contextmanager
def _client(uri: str, timeout: float):
    """A pymilvus client of the server at ``uri``, closed afterwards."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=timeout)
    try:
        yield client
    finally:
        client.close()


def _on_server(folder: Path, uri: str) -> bool:
    """Whether the server still holds the collection a cached build record describes."""
    from repro.engines import milvus

    with _client(uri, 60) as client:
        return client.has_collection(json.loads((folder / milvus.INFO_FILE).read_text())["collection"])


def build_milvus(collection: Path, folder: Path, uri: str | None = None, server: dict | None = None) -> dict:
    """A Milvus index of the collection (cached): Milvus Lite here, or on the server at ``uri``.

    Build time and this process's peak RSS; for a local server (``server``: milvus_server.py's
    record) also the server process's peak RSS and the bytes its database grew by."""
    from repro.engines import milvus
    from repro.formats.collection import SHARDS, iter_vectors

    record = folder.parent / (folder.name + ".build.json")
    if (folder / milvus.INFO_FILE).exists() and record.exists() and (not uri or _on_server(folder, uri)):
        return json.loads(record.read_text())
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    before = rss_mib()
    disk_before = common.dir_bytes(Path(server["db"])) if server else 0
    server_before = server_rss_mib(server)
    start = time.perf_counter()
    with common.PeakWatcher() as peak, common.PeakWatcher(server["pid"] if server else None) as server_peak:
        settings = {"uri": uri, "collection_name": f"repro_bench_{folder.parent.name.replace('-', '_')}"} if uri else {}
        facts = milvus.build(collection / SHARDS, folder, threads=2, settings=settings, vectors=iter_vectors(collection),
                             target=folder, force=True)
    info = {"seconds": time.perf_counter() - start, "bytes": common.dir_bytes(folder), "peak_rss_mib": peak.self_mib,
            "rss_before_mib": before, "documents": facts["documents"]}
    if server:  # the engine's own numbers: the folder holds only the manifest
        info.update(bytes=common.dir_bytes(Path(server["db"])) - disk_before, peak_rss_mib=server_peak.self_mib,
                    client_peak_rss_mib=peak.self_mib, server_rss_before_mib=server_before, engine=server["engine"])
    common.save_json(record, info)
    return info


def release_all(uri: str) -> None:
    """Release every loaded collection of the server, so its RSS is measured without them."""
    with _client(uri, 600) as client:
        for name in client.list_collections():
            client.release_collection(name)


def latencies(retrievers: dict, vectors: list, reps: int) -> dict[str, list[float]]:
    """Seconds per query, one query at a time, engines in rotating order each pass."""
    out: dict[str, list[float]] = {name: [] for name in retrievers}
    names = list(retrievers)
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            for v in vectors:
                start = time.perf_counter()
                retrievers[name](v)
                out[name].append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--hits", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-milvus", action="store_true", help="leave Milvus out (pymilvus/milvus-lite missing)")
    parser.add_argument("--milvus-uri", default=None,
                        help="measure a Milvus server (e.g. http://host:19530; token from $MILVUS_TOKEN) instead of Milvus Lite")
    parser.add_argument("--milvus-drop", type=float, nargs="*", default=[0.1, 0.3],
                        help="with --milvus-uri: also search with these drop_ratio_search values (approximate)")
    parser.add_argument("--milvus-server-info", type=Path, default=None,
                        help="with --milvus-uri of a local server: benchmarks/milvus_server.py's server.json, to "
                             "measure the server process's memory and disk")
    parser.add_argument("--milvus-lite-max", type=int, default=200_000,
                        help="largest collection to load into Milvus Lite (about 39 KB of RAM per document)")
    common.add_run_options(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.docs, args.queries, args.reps = [2000], 10, 1
    from repro.engines.lucene import LuceneImpactSearcher, search_topics
    from repro.engines.seismic import SeismicSearcher
    from repro.errors import ReproError
    from repro.formats.anserini_queries import query_line

    server = json.loads(args.milvus_server_info.read_text()) if args.milvus_server_info else None
    if server and not args.milvus_uri:
        parser.error("--milvus-server-info needs --milvus-uri")
    synth = common.SyntheticSplade()
    header = ["docs", "engine", "build s", "index MiB", "index B/doc", "build peak RSS MiB",
              "serving RSS MiB (added)", f"p50 ms (k={args.hits}, 1 at a time)", "p99 ms",
              "q/s batch", "recall@10 vs exact"]
    rows = []
    print(f"machine: {common.machine()}")
    for docs in args.docs:
        idx = prepare_indexes(args.work, docs, synth, seismic=True, threads=args.threads)
        builds = {"lucene": idx["lucene_build"],
                  "seismic": json.loads((idx["seismic"].parent / "seismic.build.json").read_text())}
        builds["seismic"]["bytes"] = common.dir_bytes(idx["seismic"])
        use_milvus = not args.no_milvus and (args.milvus_uri or docs <= args.milvus_lite_max)
        if not args.no_milvus and not use_milvus:
            print(f"Milvus Lite skipped at {docs} documents (> --milvus-lite-max {args.milvus_lite_max}: about "
                  f"{docs * 39e3 / 2**30:.0f} GiB of RAM); give --milvus-uri to measure a server", file=sys.stderr)
        if use_milvus:
            milvus_dir = idx["lucene"].parent / ("milvus-server" if args.milvus_uri else "milvus")
            builds["milvus"] = build_milvus(idx["lucene"].parent / "collection", milvus_dir, args.milvus_uri, server)
            if server:  # serving memory is measured from a server holding no loaded collection
                release_all(args.milvus_uri)
        vectors = [synth.query_vector(j, docs) for j in range(args.queries)]
        lines = {f"q{j}": query_line(f"q{j}", v).partition("\t")[2] for j, v in enumerate(vectors)}
        batch_qps = {}
        start = time.perf_counter()  # batch path: one SearchCollection JVM, all queries, 2 threads
        search_topics(idx["lucene"], lines, kind="impact", hits=args.hits, threads=args.threads)
        batch_qps["lucene"] = len(lines) / (time.perf_counter() - start)

        serving = {}
        searchers = {}
        base = rss_mib()
        searchers["lucene"] = LuceneImpactSearcher(idx["lucene"])
        serving["lucene"], base = rss_mib() - base, rss_mib()
        searchers["seismic"] = SeismicSearcher(idx["seismic"])
        serving["seismic"], base = rss_mib() - base, rss_mib()
        if use_milvus:
            from repro.engines.milvus import MilvusSearcher

            server_base = server_rss_mib(server)
            searchers["milvus"] = MilvusSearcher(milvus_dir)
            for drop in (args.milvus_drop if args.milvus_uri else []):
                approximate = MilvusSearcher(milvus_dir, drop_ratio_search=drop)
                try:
                    approximate.search(vectors[0], 10)
                except ReproError as err:  # e.g. Milvus Lite behind the URI: exhaustive only
                    print(f"drop_ratio_search={drop:g} skipped: {err}", file=sys.stderr)
                    approximate.close()
                    continue
                searchers[f"milvus drop {drop:g}"] = approximate
                builds[f"milvus drop {drop:g}"] = {"seconds": "-", "bytes": None}
            searchers["milvus"].search(vectors[0], args.hits)  # Milvus Lite builds its postings on first search
            serving["milvus"] = rss_mib() - base if not server else server_rss_mib(server) - server_base
            start = time.perf_counter()
            searchers["milvus"].search_many({f"q{j}": v for j, v in enumerate(vectors)}, args.hits)
            batch_qps["milvus"] = len(vectors) / (time.perf_counter() - start)
        retrievers = {name: (lambda v, s=s: s.search(v, args.hits)) for name, s in searchers.items()}
        for v in vectors[:20]:  # warm-up
            for retrieve in retrievers.values():
                retrieve(v)
        exact = [searchers["lucene"].search(v, 10) for v in vectors]
        recall = {name: common.recall([common.docids(r) for r in exact],
                                      [common.docids(s.search(v, 10)) for v in vectors], 10)
                  for name, s in searchers.items()}
        times = latencies(retrievers, vectors, args.reps)
        for name, searcher in searchers.items():
            if name != "seismic":
                searcher.close()
        if server:
            release_all(args.milvus_uri)
        labels = {"lucene": "Lucene (Anserini impact)", "seismic": "Seismic (default settings)",
                  "milvus": (f"Milvus server (exact{', local ' + server['engine'].split(' (')[0] if server else ''})"
                             if args.milvus_uri else "Milvus Lite (embedded, exact)")}
        for name in searchers:
            b = builds[name]
            size = b["bytes"]  # a server's index size is not visible from here (the folder holds only the manifest)
            # this process is only the client; a local server's own numbers are measured (its record)
            client_side = bool(args.milvus_uri) and name.startswith("milvus") and not (server and name == "milvus")
            if client_side:
                size = None
            ms = [1000 * t for t in times[name]]
            rows.append([f"{docs:,}", labels.get(name, f"Milvus server, drop_ratio_search={name.split()[-1]}"),
                         b["seconds"], "-" if size is None else size / 2**20, "-" if size is None else size / docs,
                         "-" if client_side else b.get("peak_rss_mib", "-"),
                         "-" if client_side else serving.get(name, "-"), common.percentile(ms, 50),
                         common.percentile(ms, 99), batch_qps.get(name, "-"), recall[name]])
        # each size's rows as soon as they are measured: a long run stopped later keeps them
        print(f"{docs} documents: " + json.dumps([r for r in rows if r[0] == f"{docs:,}"], default=str),
              file=sys.stderr, flush=True)
    table = common.markdown_table(header, rows)
    print(table)
    common.publish(args, "Scale: Lucene, Seismic and Milvus vs collection size", table)
    if args.json:
        common.save_json(args.json, {"machine": common.machine(), "date": common.today(), "header": header, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
