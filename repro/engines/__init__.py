"""Search engines behind one registry: each engine is one module here, registered below.

An engine module provides (see lucene.py, the reference):
- ``NAME``, ``EXACT`` (whether its scores and top-k are exact), ``is_available()``;
- ``BUILD_SETTINGS`` / ``SEARCH_SETTINGS``: the settings a user may give, with their defaults;
- ``build(shards, output, *, threads, settings, memory, vectors)`` -> facts read back from the engine
  (``documents`` and ``weight_total``, which `repro.index.build` checks against the collection);
- ``open_searcher(index, *, settings, memory)`` -> an object with ``search(vector, k)`` (tie rule applied);
- ``search_many(index, queries, *, hits, threads, settings, memory)`` -> {qid: hits};
- optionally ``RESUMES = True``: ``build`` also takes ``target`` (the final index folder) and ``force``, to
  keep a resumable partial load beside it (Milvus).
Adding an engine: write ``repro/engines/NAME.py`` with these, and add one `Engine` line below
(with the pip extra that installs its library).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from repro.errors import ReproError


@dataclass(frozen=True)
class Engine:
    name: str
    display: str
    module: str
    summary: str
    extra: str | None = None  # pip extra that installs the engine's library
    requirement: str | None = None

    def load(self) -> ModuleType:
        """The engine module, or one line naming what to install."""
        module = importlib.import_module(self.module)
        if not module.is_available():
            raise ReproError(f"the {self.name} engine needs {self.requirement}: pip install 'repro[{self.extra}]'")
        return module


ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> None:
    ENGINES[engine.name] = engine


register(Engine("lucene", "Lucene", "repro.engines.lucene", "exact impact search (Anserini, Lucene)"))
register(Engine("seismic", "Seismic", "repro.engines.seismic", "approximate, millisecond search", "seismic", "pyseismic-lsr"))
register(Engine("milvus", "Milvus", "repro.engines.milvus", "exact search in an embedded or distributed Milvus",
                "milvus", "pymilvus and milvus-lite"))


def names() -> tuple[str, ...]:
    return tuple(ENGINES)


def get(name: str) -> Engine:
    if name not in ENGINES:
        raise ReproError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
    return ENGINES[name]


def of_index(meta: dict) -> str:
    """The engine an index was built with, from its manifest (older manifests: from the kind)."""
    config = meta.get("config", {})
    return config.get("engine") or ("seismic" if config.get("kind") == "seismic" else "lucene")
