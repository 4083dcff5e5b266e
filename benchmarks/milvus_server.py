"""A Milvus gRPC server on this machine, for `bench_scale.py --milvus-uri` when no cluster is at hand.

milvus-lite 3.x (what `repro[milvus]` installs) keeps its postings as Python objects: about 39 KB
of RAM per document, so it cannot hold 1M documents on a 24 GB machine. milvus-lite 2.5 ships the
C++ Milvus engine itself (knowhere's SPARSE_INVERTED_INDEX, drop_ratio_search, the gRPC API) as one
binary, `milvus_lite/lib/milvus DB ADDRESS LOGLEVEL`. This script installs that wheel into a
folder of its own (never into the project's environment: it would replace milvus-lite 3.x), starts
the binary on a TCP port, and writes a JSON record (uri, pid, data folder, version) that
bench_scale.py reads (`--milvus-server-info`) to measure the server process's own memory and disk.

    .venv/bin/python benchmarks/milvus_server.py --data /tmp/milvus-server &   # prints the URI, serves until killed
    .venv/bin/python benchmarks/bench_scale.py --docs 100000 1000000 \\
        --milvus-uri http://127.0.0.1:19530 --milvus-server-info /tmp/milvus-server/server.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

VERSION = "2.5.1"


def install(prefix: Path) -> Path:
    """The milvus binary of milvus-lite VERSION under ``prefix`` (pip-installed there once)."""
    binary = prefix / "milvus_lite" / "lib" / "milvus"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(prefix),
                        f"milvus-lite=={VERSION}"], check=True)
    if not binary.exists():
        raise SystemExit(f"milvus-lite {VERSION} installed into {prefix} has no {binary.relative_to(prefix)}")
    return binary


def wait_for_port(host: str, port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the Milvus server exited with {proc.returncode} before listening on {host}:{port}")
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"the Milvus server did not listen on {host}:{port} within {seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder for the database and the server record")
    parser.add_argument("--port", type=int, default=19530)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--prefix", type=Path, default=None,
                        help=f"where milvus-lite {VERSION} is installed (default: DATA/pkg)")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    binary = install(args.prefix or args.data / "pkg")
    db = args.data / "db"
    env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent)}
    proc = subprocess.Popen([str(binary), str(db), f"{args.host}:{args.port}", "ERROR"], env=env, cwd=args.data)
    wait_for_port(args.host, args.port, proc)
    uri = f"http://{args.host}:{args.port}"
    record = {"uri": uri, "pid": proc.pid, "data": str(args.data), "db": str(db), "engine": f"milvus-lite {VERSION} "
              "(the C++ Milvus engine, knowhere sparse inverted index) as a standalone gRPC server"}
    (args.data / "server.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(uri, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
