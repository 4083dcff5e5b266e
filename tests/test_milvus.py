"""The Milvus engine against the real engine: Milvus Lite embedded, and the same engine as a server over gRPC.

Runs equal Lucene's (every query, rank and score), a SIGKILL during indexing resumes to exactly the
collection's documents, and user mistakes (bad or unreachable URI, approximate settings on Milvus
Lite, another engine's settings) give one line and exit 2 with nothing written.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install 'repro[milvus]')")
pytest.importorskip("milvus_lite", reason="no milvus-lite wheel for this platform (pip install 'repro[milvus]')")

from test_pipeline import TOPICS, build_pipeline, invoke, read_collection  # noqa: E402

REPRO = [sys.executable, "-c", "from repro.cli import main; main()"]


def repro(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`repro` as a user runs it (its own process: exit codes, stderr, SIGKILL)."""
    return subprocess.run([*REPRO, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def run_lines(path: Path) -> list[tuple[str, ...]]:
    """A run's (qid, docid, rank, score) lines; the tag differs by engine."""
    return [tuple(line.split()[:5]) for line in path.read_text().splitlines()]


def stored(db: Path, collection: str = "splade") -> dict[str, dict[int, float]]:
    """Every (doc id, vector) a Milvus Lite database holds, read in this process and released again."""
    from repro.engines import milvus

    client = milvus.connect(str(db))
    try:
        milvus._ensure_loaded(client, collection)
        rows = {}
        for doc_id, vector in milvus.iter_stored(client, collection):
            assert doc_id not in rows, f"{doc_id} stored twice"
            rows[doc_id] = vector
        count = client.query(collection, filter="", output_fields=["count(*)"])[0]["count(*)"]
        assert count == len(rows)
        return rows
    finally:
        client.close()
        milvus.release(str(db))


@pytest.fixture(scope="module")
def built(tmp_path_factory, _tiny_mlm_session):
    b = build_pipeline(tmp_path_factory.mktemp("milvus"), str(_tiny_mlm_session), TOPICS)
    invoke("index", str(b["tmp"] / "coll"), "--backend", "milvus", "-o", str(b["tmp"] / "mil"),
           "--setting", "batch_size=50")
    return b


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The Milvus engine served over gRPC by another process, as a Milvus server would be."""
    folder = tmp_path_factory.mktemp("milvus-server")
    code = ("import sys, time; from milvus_lite import server_manager_instance as s; "
            f"print(s.start_and_get_uri({str(folder / 'server.db')!r}), flush=True); time.sleep(3600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        uri = proc.stdout.readline().strip()
        assert uri.startswith("http://127.0.0.1:"), uri
        yield uri
    finally:
        proc.kill()
        proc.wait()


def test_lite_index_folder_and_manifest(built):
    tmp = built["tmp"]
    manifest = json.loads((tmp / "mil" / "manifest.json").read_text())
    collection = json.loads((tmp / "coll" / "manifest.json").read_text())
    assert manifest["config"]["engine"] == "milvus"
    assert (manifest["documents"], manifest["weight_total"]) == (collection["documents"], collection["weight_total"])
    assert manifest["resumed_from"] == 0
    info = json.loads((tmp / "mil" / "milvus.json").read_text())
    assert info == {"local": True, "db_name": "default", "collection": "splade", "db": "milvus.db"}
    assert (tmp / "mil" / "milvus.db").is_dir() and not (tmp / ".partial-mil").exists()
    vectors = read_collection(tmp / "coll")
    tokens = json.loads((tmp / "mil" / "tokens.json").read_text())
    first_seen = list(dict.fromkeys(t for v in vectors.values() for t in v))  # documents in collection order
    assert list(tokens) == first_seen and list(tokens.values()) == list(range(len(tokens)))
    rows = stored(tmp / "mil" / "milvus.db")
    assert rows == {d: {tokens[t]: float(w) for t, w in v.items()} for d, v in vectors.items()}


@pytest.mark.parametrize("hits", [5, pytest.param(40, marks=pytest.mark.slow), pytest.param(300, marks=pytest.mark.slow)])
def test_milvus_run_equals_lucene_run(built, hits):
    """Every query, rank and score; the 30 duplicate documents tie, so the tie rule decides the cut."""
    tmp = built["tmp"]
    invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / f"l{hits}.trec"),
           "-k", str(hits))
    invoke("search", str(tmp / "mil"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp / f"m{hits}.trec"),
           "-k", str(hits))
    lucene, milvus = run_lines(tmp / f"l{hits}.trec"), run_lines(tmp / f"m{hits}.trec")
    assert len(lucene) > 0 and milvus == lucene
    assert json.loads((tmp / f"m{hits}.trec.manifest.json").read_text())["config"]["engine"] == "milvus"


def test_query_command_equals_lucene(built):
    tmp = built["tmp"]

    def results(index: str) -> list[str]:
        out = invoke("query", str(tmp / index), "-m", built["model"], "--runtime", "torch", "-k", "35",
                     "boundary layer heat transfer")
        return [line for line in out.splitlines() if not line.startswith("#")]

    assert results("mil") == results("idx") and len(results("mil")) == 35


@pytest.mark.parametrize("hook, mark", [pytest.param("3", 48, marks=pytest.mark.slow), pytest.param("3:before", 32, marks=pytest.mark.slow)])
def test_kill_during_indexing_then_rerun(built, tmp_path, hook, mark):
    """SIGKILL after the 3rd acknowledged batch (or between its upsert and its mark); the rerun resumes."""
    coll = built["tmp"] / "coll"
    out = tmp_path / "mil"
    killed = repro("index", coll, "--backend", "milvus", "-o", out, "--setting", "batch_size=16",
                   env={"REPRO_TEST_MILVUS_KILL": hook})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    partial = tmp_path / ".partial-mil"
    assert not out.exists()
    assert json.loads((partial / "state.json").read_text())["mark"] == mark
    assert len(stored(partial / "milvus.db")) == 48  # the batch after the mark may already be in

    done = repro("index", coll, "--backend", "milvus", "-o", out, "--setting", "batch_size=40")  # another size: fine
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    collection = json.loads((coll / "manifest.json").read_text())
    assert manifest["resumed_from"] == mark
    assert (manifest["documents"], manifest["weight_total"]) == (collection["documents"], collection["weight_total"])
    vectors = read_collection(coll)
    rows = stored(out / "milvus.db")
    assert set(rows) == set(vectors)
    assert round(sum(sum(v.values()) for v in rows.values())) == collection["weight_total"]
    assert not partial.exists()


@pytest.mark.slow
def test_server_uri_index_and_search(built, server, tmp_path, monkeypatch):
    """--uri: the index folder names the collection; nothing but the manifest, the map and milvus.json."""
    tmp = built["tmp"]
    out = tmp_path / "remote"
    monkeypatch.setenv("MILVUS_TOKEN", "root:Milvus")  # Milvus's default credentials: used, never stored
    done = repro("index", tmp / "coll", "--backend", "milvus", "--uri", server, "-o", out, "--token", "root:Milvus",
                 "--collection-name", "cran_test", "--setting", "batch_size=64", "--setting", "shards=2")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "milvus.json", "tokens.json"]
    assert json.loads((out / "milvus.json").read_text()) == {"local": False, "uri": server, "db_name": "default",
                                                             "collection": "cran_test"}
    assert not any("root:Milvus" in p.read_text() for p in out.iterdir())
    assert "--token ***" in json.loads((out / "manifest.json").read_text())["command"]
    search = repro("search", out, "--encoded-queries", tmp / "q.tsv", "-o", tmp_path / "r.trec", "-k", "40")
    assert search.returncode == 0, search.stderr
    invoke("search", str(tmp / "idx"), "--encoded-queries", str(tmp / "q.tsv"), "-o", str(tmp_path / "l.trec"),
           "-k", "40")
    assert run_lines(tmp_path / "r.trec") == run_lines(tmp_path / "l.trec")
    # approximate settings travel to the server; this one (the embedded engine behind the gRPC API) refuses them
    approx = repro("search", out, "--encoded-queries", tmp / "q.tsv", "-o", tmp_path / "a.trec",
                   "--setting", "drop_ratio_search=0.2")
    _one_line_error(approx, "Milvus search failed", "drop_ratio_search")
    again = repro("index", tmp / "coll", "--backend", "milvus", "--uri", server, "-o", tmp_path / "other",
                  "--collection-name", "cran_test")
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_server_uri_kill_then_rerun(built, server, tmp_path):
    """With --uri the high-water mark beside the output is all that is kept; the rerun resumes from it."""
    from pymilvus import MilvusClient

    coll = built["tmp"] / "coll"
    out = tmp_path / "remote"
    args = ("index", coll, "--backend", "milvus", "--uri", server, "-o", out, "--collection-name", "killed",
            "--setting", "batch_size=20")
    killed = repro(*args, env={"REPRO_TEST_MILVUS_KILL": "4"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads((tmp_path / ".partial-remote" / "state.json").read_text())["mark"] == 80
    assert sorted(p.name for p in (tmp_path / ".partial-remote").iterdir()) == ["state.json"]
    done = repro(*args)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    collection = json.loads((coll / "manifest.json").read_text())
    assert manifest["resumed_from"] == 80
    assert (manifest["documents"], manifest["weight_total"]) == (collection["documents"], collection["weight_total"])
    client = MilvusClient(uri=server, timeout=5)
    assert client.query("killed", filter="", output_fields=["count(*)"])[0]["count(*)"] == collection["documents"]
    client.close()


def _silent_listener() -> tuple[socket.socket, int]:
    """A TCP port that accepts connections and never answers (a firewall or a wrong service)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    threading.Thread(target=lambda: [sock.accept() for _ in range(8)], daemon=True).start()
    return sock, sock.getsockname()[1]


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unreachable_or_wrong_uri_one_line_nothing_written(built, tmp_path):
    coll = built["tmp"] / "coll"
    sock, port = _silent_listener()
    try:
        cases = [("http://127.0.0.1:1", "cannot reach Milvus at http://127.0.0.1:1"),
                 (f"http://127.0.0.1:{port}", f"cannot reach Milvus at http://127.0.0.1:{port}"),
                 ("not a uri", "is not a Milvus server address"),
                 ("http://127.0.0.1:notaport", "is not a Milvus server address")]
        for uri, needle in cases:
            proc = repro("index", coll, "--backend", "milvus", "--uri", uri, "-o", tmp_path / "out",
                         "--setting", "timeout=1")
            _one_line_error(proc, needle)
            assert list(tmp_path.iterdir()) == [], uri
    finally:
        sock.close()


def test_settings_refused_with_one_line(built, tmp_path):
    tmp = built["tmp"]
    q = ["--encoded-queries", tmp / "q.tsv", "-o", tmp_path / "r.trec"]
    _one_line_error(repro("search", tmp / "mil", *q, "--setting", "drop_ratio_search=0.2"),
                    "drop_ratio_search=0.2", "Milvus Lite searches exhaustively only")
    _one_line_error(repro("search", tmp / "mil", *q, "--setting", "drop_ratio_search=1.5"), "must be in [0, 1)")
    _one_line_error(repro("search", tmp / "mil", *q, "--query-cut", "5"), "Seismic settings")
    _one_line_error(repro("search", tmp / "idx", *q, "--setting", "drop_ratio_search=0.1"),
                    "Milvus settings, not settings of the Lucene engine")
    _one_line_error(repro("query", tmp / "mil", "-m", built["model"], "--setting", "dim_max_score_ratio=0.8", "x"),
                    "Milvus Lite searches exhaustively only")
    assert not (tmp_path / "r.trec").exists()
    coll = tmp / "coll"
    _one_line_error(repro("index", coll, "--backend", "milvus", "-o", tmp_path / "o", "--setting", "drop_ratio_build=0.3"),
                    "drop_ratio_build needs a Milvus server")
    _one_line_error(repro("index", coll, "--backend", "milvus", "-o", tmp_path / "o", "--setting", "shards=2"),
                    "shards is for a Milvus server")
    _one_line_error(repro("index", coll, "--backend", "milvus", "-o", tmp_path / "o", "--setting", "nope=1"),
                    "unknown Milvus build setting 'nope'")
    _one_line_error(repro("index", coll, "-o", tmp_path / "o", "--uri", "http://x:19530"), "--uri is for --backend milvus")
    _one_line_error(repro("index", coll, "--backend", "milvus", "-o", tmp_path / "o", "--collection-name", "1-bad"),
                    "Milvus names are letters")
    assert not (tmp_path / "o").exists() and not (tmp_path / ".partial-o").exists()


@pytest.mark.slow
def test_cranfield_splade_tiny_milvus_run_equals_lucene(tmp_path, shared_data, splade_tiny, cranfield_splade_collection):
    """The real model on the real collection: all 225 queries, 1000 hits, every rank and score."""
    coll = cranfield_splade_collection
    invoke("encode", str(shared_data / "cranfield" / "cran.qry"), "--queries", "-m", str(splade_tiny),
           "-o", str(tmp_path / "q.tsv"))
    invoke("index", str(coll), "-o", str(tmp_path / "lucene"))
    invoke("index", str(coll), "--backend", "milvus", "-o", str(tmp_path / "milvus"))
    for engine in ("lucene", "milvus"):
        invoke("search", str(tmp_path / engine), "--encoded-queries", str(tmp_path / "q.tsv"),
               "-o", str(tmp_path / f"{engine}.trec"))
    lucene, milvus = run_lines(tmp_path / "lucene.trec"), run_lines(tmp_path / "milvus.trec")
    assert len({line[0] for line in lucene}) == 225 and len(lucene) > 200_000
    assert milvus == lucene


def test_lite_index_open_in_another_process_is_one_line(built, tmp_path):
    """Milvus Lite lets one process at a time open a database: the second gets one line, not a traceback."""
    from repro.engines import milvus

    db = str(built["tmp"] / "mil" / "milvus.db")
    client = milvus.connect(db)
    try:
        proc = repro("search", built["tmp"] / "mil", "--encoded-queries", built["tmp"] / "q.tsv",
                     "-o", tmp_path / "r.trec")
        _one_line_error(proc, "cannot open the Milvus Lite database (is another process using it?)")
    finally:
        client.close()
        milvus.release(db)
    assert not (tmp_path / "r.trec").exists()
