"""The Milvus engine (PyPI `pymilvus`, `milvus-lite`): the same index embedded here or on a Milvus cluster.

One collection holds the documents: a VARCHAR primary key (the doc id) and a SPARSE_FLOAT_VECTOR
whose keys are token ids and whose values are the integer impacts as float32 (exact below 2^24).
Token ids are the tokens' first-seen order in the collection (the collection does not record its
model's vocabulary); the map is stored in the index folder (`tokens.json`) and queries go through it.

Where the data lives:
- default: Milvus Lite, the real engine embedded in this process; its database folder `milvus.db`
  sits inside the index folder. Only one process at a time may open it.
- ``--uri http://host:19530``: a Milvus standalone or cluster; the index folder then holds only the
  manifest, `tokens.json` and `milvus.json` naming the URI, database and collection. The token
  (password) is never stored: it comes from ``--token`` or ``$MILVUS_TOKEN`` each time.

Building is resumable after a kill: documents are upserted in batches (idempotent per doc id) and
after each acknowledged batch a high-water mark is written to ``.partial-<name>/state.json`` beside
the output (for Milvus Lite the partial database lives there too, and moves into the index folder at
the end). A rerun of the same command skips the documents below the mark. The document count and
the weight total are then read back from the engine (every vector, with `query_iterator`).

Search is exact by default: Milvus Lite is exhaustive; on a server the index uses MaxScore
(`DAAT_MAXSCORE`, rank-safe) with no pruning (drop ratios 0). Milvus orders tied scores by its own
internal order and cuts them arbitrarily at the limit, so hits go through `repro.search.ties.top_k`,
which fetches deeper while the cutoff ties. Approximate settings (``drop_ratio_build``,
``drop_ratio_search``, ``dim_max_score_ratio`` < 1) need a server; Milvus Lite refuses them here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from repro.errors import ReproError
from repro.search import ties

log = logging.getLogger(__name__)

NAME = "milvus"
EXACT = True
RESUMES = True  # build() takes target= and force=: it keeps a resumable partial load beside the output
INFO_FILE, TOKENS_FILE, DB_FOLDER = "milvus.json", "tokens.json", "milvus.db"
ID_FIELD, VECTOR_FIELD = "id", "vector"
ID_MAX_BYTES = 512
MAX_TOPK = 16384  # a Milvus server's limit on `limit` (Milvus Lite does not enforce it)
LITE_COLLECTION = "splade"
NAME_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")  # what a Milvus server accepts as a name
URI_RULE = re.compile(r"(https?|tcp|grpc)://[^\s/:]+(:\d+)?/?")
STRING_SETTINGS = ("uri", "token", "db_name", "collection_name")
BUILD_SETTINGS: dict[str, Any] = {"uri": None, "token": None, "db_name": None, "collection_name": None,
                                  "drop_ratio_build": 0.0, "batch_size": 1000, "flush_every": 20_000,
                                  "timeout": 5.0, "shards": None}
SEARCH_SETTINGS: dict[str, Any] = {"drop_ratio_search": 0.0, "dim_max_score_ratio": None}
KILL_HOOK = "REPRO_TEST_MILVUS_KILL"  # tests: "N" = SIGKILL after N acknowledged batches, "N:before" = before its mark


def is_available() -> bool:
    return importlib.util.find_spec("pymilvus") is not None and importlib.util.find_spec("milvus_lite") is not None


def check_settings(settings: dict[str, Any], allowed: dict[str, Any], what: str) -> dict[str, Any]:
    """Known names; strings for the connection, ratios in range, whole positive batch sizes."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in allowed:
            raise ReproError(f"unknown Milvus {what} setting {key!r}: expected one of {', '.join(sorted(allowed))}")
        if value is None:
            continue
        if key in STRING_SETTINGS:
            if not isinstance(value, str) or not value:
                raise ReproError(f"Milvus {what} setting {key} must be a non-empty string")
            out[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReproError(f"Milvus {what} setting {key}={value!r} must be a number")
        if key in ("drop_ratio_build", "drop_ratio_search") and not 0 <= value < 1:
            raise ReproError(f"Milvus {what} setting {key}={value!r} must be in [0, 1)")
        if key == "dim_max_score_ratio" and not 0.5 <= value <= 1.3:
            raise ReproError(f"Milvus {what} setting {key}={value!r} must be in [0.5, 1.3]")
        if key in ("batch_size", "flush_every", "shards") and (int(value) != value or value < 1):
            raise ReproError(f"Milvus {what} setting {key}={value!r} must be a whole number >= 1")
        if key == "timeout" and value <= 0:
            raise ReproError(f"Milvus {what} setting timeout={value!r} must be positive (seconds)")
        out[key] = int(value) if key in ("batch_size", "flush_every", "shards") else float(value)
    return out


# --- connection -----------------------------------------------------------------------------------
def _quiet() -> None:
    """pymilvus and milvus_lite log failures with a traceback; the error we raise says it in one line."""
    for name in ("pymilvus", "milvus_lite"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _reason(err: Exception) -> str:
    return str(getattr(err, "message", None) or err).strip().splitlines()[0]


def check_uri(uri: str, where: Path | None = None) -> str:
    if not URI_RULE.fullmatch(uri):
        raise ReproError(f"--uri {uri!r} is not a Milvus server address like http://host:19530", where)
    return uri


def connect(uri: str, *, local: bool | None = None, db_name: str = "default", token: str | None = None,
            timeout: float = 5.0, where: Path | None = None):
    """A MilvusClient for a server URI or a Milvus Lite folder (``local``), or one line saying why not."""
    from pymilvus import MilvusClient

    _quiet()  # after the import: importing pymilvus sets its loggers' levels

    local = "://" not in uri if local is None else local
    if not local:
        check_uri(uri, where)
    token = token if token is not None else os.environ.get("MILVUS_TOKEN", "")
    try:
        # dedicated: close() really closes the channel. pymilvus otherwise keeps one shared channel per
        # address for the whole process, and a later Milvus Lite server on a reused port would inherit it.
        if local:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            return _open_lite(MilvusClient, uri)
        return MilvusClient(uri=uri, token=token, db_name=db_name, timeout=timeout, dedicated=True)
    except Exception as err:  # pymilvus raises MilvusException, ConnectionConfigException, ValueError
        if local:
            raise ReproError(f"cannot open the Milvus Lite database (is another process using it?): {_reason(err)}",
                             where or uri) from err
        raise ReproError(f"cannot reach Milvus at {uri} (database {db_name!r}) within {timeout:g}s: {_reason(err)}",
                         where) from err


def _open_lite(client_class, uri: str, attempts: int = 3):
    """Open a Milvus Lite database. Its in-process gRPC server can drop the very first connection on a
    loaded machine ("too_many_pings" GOAWAY): that one case is retried twice; a database held by
    another process fails at once, as before."""
    import time

    for attempt in range(attempts):
        try:
            return client_class(uri, dedicated=True)
        except Exception as err:
            if attempt == attempts - 1 or "Fail connecting to server" not in str(err):
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def release(uri: str) -> None:
    """Stop this process's Milvus Lite server for ``uri``, so the folder can move or another process open it."""
    if "://" in uri:
        return
    from milvus_lite import server_manager_instance

    server_manager_instance.release_server(uri)


def _call(what: str, fn, *args, where: Path | None = None, **kwargs):
    """One Milvus call; its failure as one line."""
    try:
        return fn(*args, **kwargs)
    except ReproError:
        raise
    except Exception as err:
        raise ReproError(f"Milvus {what} failed: {_reason(err)}", where) from err


def _ensure_loaded(client, collection: str, where: Path | None = None) -> None:
    """A reopened collection comes back released; search and query need it loaded."""
    state = str(_call("get_load_state", client.get_load_state, collection, where=where).get("state"))
    if "NotLoad" in state or "Loaded" not in state:
        _call("load_collection", client.load_collection, collection, where=where)


def _create(client, collection: str, *, lite: bool, drop_ratio_build: float, shards: int | None = None) -> None:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(ID_FIELD, DataType.VARCHAR, is_primary=True, max_length=ID_MAX_BYTES)
    schema.add_field(VECTOR_FIELD, DataType.SPARSE_FLOAT_VECTOR)
    params = client.prepare_index_params()
    algo = "TAAT_NAIVE" if lite else "DAAT_MAXSCORE"  # Lite implements TAAT_NAIVE only
    params.add_index(field_name=VECTOR_FIELD, index_type="SPARSE_INVERTED_INDEX", metric_type="IP",
                     params={"inverted_index_algo": algo, "drop_ratio_build": float(drop_ratio_build)})
    try:
        extra = {"num_shards": int(shards)} if shards else {}  # a server's write parallelism (docs/scale.md)
        client.create_collection(collection, schema=schema, index_params=params, **extra)
    except Exception as err:
        if client.has_collection(collection):  # a create that fails on the index still leaves the collection
            client.drop_collection(collection)
        raise ReproError(f"Milvus could not create collection {collection!r}: {_reason(err)}") from err


# --- building -------------------------------------------------------------------------------------
def _target(settings: dict[str, Any], output: Path) -> dict[str, Any]:
    """Where the collection lives (public facts only: never the token)."""
    uri = settings.get("uri")
    if uri is not None:
        check_uri(uri)
    name = settings.get("collection_name")
    if name is None:
        name = LITE_COLLECTION if uri is None else "repro_" + re.sub(r"[^A-Za-z0-9_]", "_", output.name)[:200]
    if not NAME_RULE.fullmatch(name):
        raise ReproError(f"--collection-name {name!r}: Milvus names are letters, digits and _, not starting with a digit")
    db_name = settings.get("db_name") or "default"
    if uri is None and db_name != "default":
        raise ReproError("--db-name is for a Milvus server (--uri); Milvus Lite has one database")
    if uri is None and settings.get("drop_ratio_build"):
        raise ReproError("drop_ratio_build needs a Milvus server (--uri): Milvus Lite indexes every posting")
    if uri is None and settings.get("shards"):
        raise ReproError("shards is for a Milvus server (--uri): Milvus Lite has one")
    return {"local": uri is None, "uri": uri, "db_name": db_name, "collection": name}


def _fingerprint(shards: Path) -> str:
    """Identifies the collection a partial load came from (its manifest changes when it is re-encoded)."""
    manifest = Path(shards).parent / "manifest.json"
    data = manifest.read_bytes() if manifest.exists() else str(shards).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _expected_documents(shards: Path) -> int | None:
    try:
        return int(json.loads((Path(shards).parent / "manifest.json").read_text(encoding="utf-8"))["documents"])
    except (OSError, ValueError, KeyError):
        return None


def _kill_hook() -> tuple[int, bool] | None:
    value = os.environ.get(KILL_HOOK)
    if not value:
        return None
    count, _, when = value.partition(":")
    return int(count), when == "before"


def build(shards: Path, output: Path, *, threads: int, settings: dict[str, Any], memory: str | None = None,
          vectors: Iterable[tuple[str, dict[str, int]]] | None = None, target: Path | None = None,
          force: bool = False) -> dict[str, Any]:
    """Load the collection's vectors into Milvus (resuming a killed load), read them back, describe it in ``output``."""
    if vectors is None:
        raise ReproError("the Milvus engine indexes vectors; give the collection's documents")
    target = Path(target or output)
    where = _target(settings, target)
    partial = target.parent / f".partial-{target.name}"
    state_file = partial / "state.json"
    # What the partial load must share with this run to be resumed (the batch size may change: the mark counts documents).
    identity = {**where, "source": _fingerprint(shards), "drop_ratio_build": settings.get("drop_ratio_build", 0.0),
                "shards": settings.get("shards")}
    state = None
    if state_file.exists():
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
        except ValueError:
            state = None
        if state is not None and state.get("identity") != identity:
            log.warning("ignoring a partial Milvus load of another collection or target in %s", partial)
            state = None
    if state is None and where["local"]:
        shutil.rmtree(partial, ignore_errors=True)
    uri = str(partial / DB_FOLDER) if where["local"] else where["uri"]
    timeout = settings.get("timeout", BUILD_SETTINGS["timeout"])
    client = connect(uri, local=where["local"], db_name=where["db_name"], token=settings.get("token"), timeout=timeout,
                     where=None if where["local"] else target)  # creates partial/ for Lite
    name = where["collection"]
    try:
        if state is not None and not _call("has_collection", client.has_collection, name):
            log.warning("the partial load's collection %r is gone; starting again", name)
            state = None
        if state is None:
            if _call("has_collection", client.has_collection, name):
                if not (force or where["local"]):
                    raise ReproError(f"collection {name!r} already exists in Milvus at {where['uri']} (database "
                                     f"{where['db_name']!r}); pass --force to replace it or choose --collection-name",
                                     target)
                _call("drop_collection", client.drop_collection, name)
            _create(client, name, lite=where["local"], drop_ratio_build=identity["drop_ratio_build"],
                    shards=settings.get("shards"))
            partial.mkdir(parents=True, exist_ok=True)
            state = {"identity": identity, "mark": 0}
            _write_json(state_file, state)
        else:
            _ensure_loaded(client, name)
        resumed_from = int(state["mark"])
        tokens, expected = _load(client, name, vectors, state, state_file, shards, settings)
        _call("flush", client.flush, name)
        _ensure_loaded(client, name)
        documents, weight_total = read_back(client, name)
    finally:
        client.close()
        if where["local"]:
            release(uri)
    if (documents, weight_total) != expected:
        raise ReproError(f"Milvus holds {documents} documents and {weight_total} weight units after loading "
                         f"{expected[0]} and {expected[1]}", target)
    if where["local"]:
        os.replace(partial / DB_FOLDER, Path(output) / DB_FOLDER)
    info = {k: v for k, v in where.items() if k != "uri" or not where["local"]}
    if where["local"]:
        info["db"] = DB_FOLDER
    _write_json(Path(output) / INFO_FILE, info)
    (Path(output) / TOKENS_FILE).write_text(json.dumps(tokens), encoding="utf-8")
    shutil.rmtree(partial, ignore_errors=True)
    public = {k: v for k, v in settings.items() if k != "token"}
    return {"documents": documents, "weight_total": weight_total, "terms": len(tokens), "resumed_from": resumed_from,
            "milvus": info, "settings": public}


def _load(client, name: str, vectors: Iterable[tuple[str, dict[str, int]]], state: dict[str, Any], state_file: Path,
          shards: Path, settings: dict[str, Any]) -> tuple[dict[str, int], tuple[int, int]]:
    """Upsert every document past the mark in batches, advancing the mark after each acknowledged batch."""
    from tqdm import tqdm

    batch_size = settings.get("batch_size", BUILD_SETTINGS["batch_size"])
    flush_every = settings.get("flush_every", BUILD_SETTINGS["flush_every"])
    mark = int(state["mark"])
    hook = _kill_hook()
    tokens: dict[str, int] = {}
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    consumed = weight_total = batches = since_flush = 0
    bar = tqdm(desc="milvus", unit="doc", total=_expected_documents(shards), initial=mark, smoothing=0.05,
               dynamic_ncols=True, disable=None)

    def send() -> None:
        nonlocal rows, batches, since_flush
        if not rows:
            return
        _call("upsert", client.upsert, name, rows)
        batches += 1
        since_flush += len(rows)
        bar.update(len(rows))
        rows = []
        if hook and hook == (batches, True):
            os.kill(os.getpid(), signal.SIGKILL)
        if since_flush >= flush_every:
            _call("flush", client.flush, name)
            since_flush = 0
        state["mark"] = consumed
        _write_json(state_file, state)
        if hook and hook == (batches, False):
            os.kill(os.getpid(), signal.SIGKILL)

    try:
        for doc_id, vector in vectors:
            if len(doc_id.encode("utf-8")) > ID_MAX_BYTES:
                raise ReproError(f"document id longer than {ID_MAX_BYTES} bytes: {doc_id[:40]!r}...")
            if doc_id in seen:
                raise ReproError(f"document id {doc_id!r} occurs twice (Milvus would keep one)")
            seen.add(doc_id)
            sparse: dict[int, float] = {}
            for token, weight in vector.items():
                if weight > 0:
                    if weight >= ties.EXACT_LIMIT:
                        raise ReproError(f"document {doc_id}: weight {weight} is not exact as float32")
                    sparse[tokens.setdefault(token, len(tokens))] = float(weight)  # pymilvus refuses Python ints
                    weight_total += weight
            if not sparse:
                raise ReproError(f"document {doc_id} has no positive weight (Milvus stores no empty vector)")
            consumed += 1
            if consumed <= mark:
                continue
            rows.append({ID_FIELD: doc_id, VECTOR_FIELD: sparse})
            if len(rows) >= batch_size:
                send()
        send()
    finally:
        bar.close()
    return tokens, (consumed, weight_total)


def iter_stored(client, name: str, batch_size: int = 1000):
    """Every (doc id, vector) the engine holds."""
    it = _call("query_iterator", client.query_iterator, name, batch_size=batch_size, filter="",
               output_fields=[ID_FIELD, VECTOR_FIELD])
    try:
        while rows := _call("query_iterator.next", it.next):
            for row in rows:
                yield row[ID_FIELD], row[VECTOR_FIELD]
    finally:
        it.close()


def read_back(client, name: str) -> tuple[int, int]:
    """Document count and weight total as the engine stores them (each id once)."""
    ids: set[str] = set()
    rows = 0
    total = 0.0
    for doc_id, vector in iter_stored(client, name):
        ids.add(doc_id)
        rows += 1
        total += sum(vector.values())
    count = _call("count", client.query, name, filter="", output_fields=["count(*)"])[0]["count(*)"]
    if not rows == len(ids) == count:
        raise ReproError(f"Milvus returned {rows} rows for {len(ids)} ids and counts {count}")
    return count, round(total)


# --- search ---------------------------------------------------------------------------------------
class MilvusSearcher:
    """Top-k by dot product from a Milvus collection, ordered by the tie rule."""

    def __init__(self, index: Path, *, drop_ratio_search: float | None = None,
                 dim_max_score_ratio: float | None = None, token: str | None = None) -> None:
        index = Path(index)
        info_path = index / INFO_FILE
        if not info_path.exists():
            raise ReproError(f"not a Milvus index folder (no {INFO_FILE})", index)
        self.info = json.loads(info_path.read_text(encoding="utf-8"))
        self.local = bool(self.info.get("local"))
        self.approximate = {k: v for k, v in (("drop_ratio_search", drop_ratio_search),
                                              ("dim_max_score_ratio", dim_max_score_ratio)) if v is not None}
        if self.approximate.get("drop_ratio_search") == 0:
            del self.approximate["drop_ratio_search"]
        if self.local and self.approximate:
            given = ", ".join(f"{k}={v:g}" for k, v in self.approximate.items())
            raise ReproError(f"{given}: Milvus Lite searches exhaustively only; approximate search needs a Milvus "
                             "server (an index built with --uri)", index)
        if self.local:
            self.uri = str(index / self.info.get("db", DB_FOLDER))
            if not Path(self.uri).is_dir():
                raise ReproError(f"the Milvus Lite database is missing ({self.info.get('db', DB_FOLDER)})", index)
        else:
            self.uri = self.info["uri"]
        self.collection = self.info["collection"]
        self.tokens: dict[str, int] = json.loads((index / TOKENS_FILE).read_text(encoding="utf-8"))
        self.client = connect(self.uri, local=self.local, db_name=self.info.get("db_name", "default"), token=token,
                              where=index)
        if not _call("has_collection", self.client.has_collection, self.collection, where=index):
            self.close()
            raise ReproError(f"collection {self.collection!r} not found in Milvus at {self.uri}", index)
        _ensure_loaded(self.client, self.collection, index)
        self.documents = _call("count", self.client.query, self.collection, filter="",
                               output_fields=["count(*)"])[0]["count(*)"]
        self.index = index

    def close(self) -> None:
        self.client.close()
        if self.local:
            release(self.uri)

    def _sparse(self, vector: dict[str, int]) -> dict[int, float]:
        # A token no document has contributes nothing to any score: leaving it out is exact.
        return {self.tokens[t]: float(w) for t, w in vector.items() if w > 0 and t in self.tokens}

    def _search(self, queries: list[dict[int, float]], depth: int) -> list[list[ties.Hit]]:
        limit = depth if self.local else min(depth, MAX_TOPK)
        params: dict[str, Any] = {"metric_type": "IP", "params": dict(self.approximate)}
        found = _call("search", self.client.search, self.collection, data=queries, anns_field=VECTOR_FIELD,
                      limit=limit, output_fields=[ID_FIELD], search_params=params, where=self.index)
        out = []
        for hits in found:
            ranked = [(hit["id"], ties.exact_impact(float(hit["distance"]))) for hit in hits]
            if limit < depth and len(ranked) >= limit:
                raise ReproError(f"the tie at the cutoff reaches past Milvus's top-k limit of {MAX_TOPK}; lower --hits",
                                 self.index)
            out.append(ranked)
        return out

    def raw(self, vector: dict[str, int], depth: int) -> list[ties.Hit]:
        """Top-``depth`` (docid, exact integer score) in Milvus's order (ties not yet resolved)."""
        query = self._sparse(vector)
        return self._search([query], depth)[0] if query else []

    def _check_k(self, k: int) -> None:
        if not self.local and k > MAX_TOPK:
            raise ReproError(f"--hits {k}: a Milvus server returns at most {MAX_TOPK} hits per query", self.index)

    def search(self, vector: dict[str, int], k: int = 1000) -> list[ties.Hit]:
        self._check_k(k)
        return ties.top_k(lambda depth: self.raw(vector, depth), k)

    def search_many(self, queries: dict[str, dict[str, int]], k: int, batch: int = 64) -> dict[str, list[ties.Hit]]:
        """Many queries per request; a query whose cutoff ties is searched again, deeper, on its own."""
        self._check_k(k)
        depth = ties.first_depth(k)
        results: dict[str, list[ties.Hit]] = {}
        items = [(qid, self._sparse(vec)) for qid, vec in queries.items()]
        for start in range(0, len(items), batch):
            chunk = [(qid, q) for qid, q in items[start:start + batch] if q]
            for (qid, _), hits in zip(chunk, self._search([q for _, q in chunk], depth) if chunk else []):
                ordered = ties.ranked(hits)
                results[qid] = (self.search(queries[qid], k) if ties.needs_deeper(ordered, depth, k)
                                else ordered[:k])
        return {qid: results.get(qid, []) for qid in queries}


def open_searcher(index: Path, *, settings: dict[str, Any], memory: str | None = None) -> MilvusSearcher:
    return MilvusSearcher(index, **settings)


def search_many(index: Path, queries: dict[str, dict[str, int]], *, hits: int, threads: int,
                settings: dict[str, Any], memory: str | None = None) -> dict[str, list[ties.Hit]]:
    searcher = open_searcher(index, settings=settings)
    try:
        return searcher.search_many(queries, hits)
    finally:
        searcher.close()
