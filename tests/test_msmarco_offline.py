"""The MS MARCO user path through the real loaders, offline (slow).

A user's machine where ir_datasets and the Hugging Face hub work, simulated without network:
an ir_datasets `msmarco-passage` folder under IR_DATASETS_HOME (irds_version.txt = v2, a 500-passage
collection.tsv made from real MS MARCO passages, dev/small, DL19 and DL20 queries and qrels, at the
paths ir_datasets reads them from) and a hub cache entry under HF_HOME, HF_HUB_OFFLINE=1, and no
shared data (so every input comes through ir_datasets). `repro reproduce msmarco-v1-passage.splade-pp-ed
--queries encode` then runs every stage with no other help: for the preset's own hub ID (a plain MLM
entry holding the splade-tiny weights), and, on the DL19/DL20 topic sets, for a SparseEncoder-format
hub entry and an inference-free one.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from repro.testing import build_inference_free, build_sparse_encoder, place_in_hub_cache

PRESET = "msmarco-v1-passage.splade-pp-ed"
PASSAGES = 500


@pytest.fixture(scope="module")
def user_machine(tmp_path_factory, shared_data, splade_tiny) -> dict:
    root = tmp_path_factory.mktemp("user")
    base = root / "irds" / "msmarco-passage"
    for sub in ("dev/small", "trec-dl-2019", "trec-dl-2020"):
        (base / sub).mkdir(parents=True)
    (base / "irds_version.txt").write_text("v2")
    ids = []
    with open(shared_data / "msmarco-passage-dl20-pool" / "corpus.jsonl", encoding="utf-8") as src, \
            open(base / "collection.tsv", "w", encoding="utf-8") as out:
        for line in src:
            doc = json.loads(line)
            out.write(f"{doc['id']}\t{' '.join(doc['contents'].split())}\n")
            ids.append(doc["id"])
            if len(ids) == PASSAGES:
                break
    mm, dl19, dl20 = (shared_data / "msmarco-passage", shared_data / "trec-dl-2019-passage",
                      shared_data / "trec-dl-2020-passage")
    shutil.copy(mm / "topics.msmarco-passage.dev-subset.txt", base / "dev/small/queries.tsv")
    shutil.copy(mm / "qrels.msmarco-passage.dev-subset.txt", base / "dev/small/qrels")
    shutil.copy(dl19 / "topics.dl19-passage.txt", base / "trec-dl-2019/queries.tsv")
    shutil.copy(dl19 / "qrels.dl19-passage.txt", base / "trec-dl-2019/qrels")
    (base / "trec-dl-2020/queries.tsv.gz").write_bytes(gzip.compress((dl20 / "topics.dl20.txt").read_bytes()))
    shutil.copy(dl20 / "qrels.dl20-passage.txt", base / "trec-dl-2020/qrels")
    hf = root / "hf"
    place_in_hub_cache(splade_tiny, hf, "naver/splade-cocondenser-ensembledistil")
    place_in_hub_cache(build_sparse_encoder(root / "st", splade_tiny), hf, "tiny-org/splade-tiny-st")
    place_in_hub_cache(build_inference_free(root / "if", splade_tiny), hf, "tiny-org/splade-tiny-inference-free")
    (root / "empty-shared").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "REPRO_SHARED")}
    env.update(HF_HOME=str(hf), HF_HUB_OFFLINE="1", IR_DATASETS_HOME=str(root / "irds"),
               REPRO_SHARED_DATA=str(root / "empty-shared"), REPRO_CACHE=str(root / "cache"))
    return {"root": root, "env": env, "ids": set(ids)}


def _reproduce(machine: dict, name: str, *extra: str) -> tuple[str, Path]:
    runs = machine["root"] / f"runs-{name}"
    proc = subprocess.run([str(Path(sys.executable).with_name("repro")), "reproduce", PRESET, "--queries", "encode",
                           "--workdir", str(machine["root"] / f"work-{name}"), "--runs", str(runs), *extra],
                          env=machine["env"], cwd=machine["root"], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, runs


def _check_runs(runs: Path, topic_sets: list[str], ids: set[str]) -> dict[str, dict]:
    results = {}
    for ts in topic_sets:
        lines = (runs / f"{PRESET}.{ts}.trec").read_text().splitlines()
        assert lines and {line.split()[2] for line in lines} <= ids
        results[ts] = json.loads((runs / f"{PRESET}.{ts}.eval.json").read_text())["aggregate"]
    return results


@pytest.mark.slow
def test_preset_hub_id_through_every_stage(user_machine):
    out, runs = _reproduce(user_machine, "naver")
    for stage in ("[encode] done", "[index] done", "[queries.dev-small] done", "[search.dev-small] done",
                  "[evaluate.dev-small] done", "[evaluate.dl19] done", "[evaluate.dl20] done"):
        assert stage in out, stage
    assert "repro encode msmarco-passage -m naver/splade-cocondenser-ensembledistil" in out
    assert "--factor 51.2" in out  # queries in the convention of the figure compared with
    results = _check_runs(runs, ["dev-small", "dl19", "dl20"], user_machine["ids"])
    assert results["dl20"]["nDCG@10"] > 0  # the 500 passages are from DL20's judged pool


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tiny-org/splade-tiny-st", "tiny-org/splade-tiny-inference-free"])
def test_sparse_encoder_and_inference_free_hub_entries(model, user_machine):
    """The same path with --model (DL19 and DL20 only: a user preset without dev-small, for time)."""
    presets = user_machine["root"] / f"presets-{model.split('/')[1]}"
    presets.mkdir()
    from repro.reproduce.preset import load_preset

    text = load_preset(PRESET).path.read_text()
    start = text.index("[[topics]]\nname = \"dev-small\"")
    end = text.index("[[topics]]\nname = \"dl19\"")
    (presets / f"{PRESET}.toml").write_text(text[:start] + text[end:])
    machine = dict(user_machine, env=dict(user_machine["env"], REPRO_PRESETS=str(presets)))
    out, runs = _reproduce(machine, model.split("/")[1], "--model", model)
    assert "[evaluate.dl19] done" in out and "[evaluate.dl20] done" in out and "dev-small" not in out
    results = _check_runs(runs, ["dl19", "dl20"], user_machine["ids"])
    assert results["dl20"]["nDCG@10"] > 0


def test_offline_without_the_files_says_what_to_place_where(tmp_path, monkeypatch, _tiny_mlm_session):
    import ir_datasets.util.download as download
    from click.testing import CliRunner

    from repro.cli import cli

    def offline(*args, **kwargs):
        raise ConnectionError("simulated: no network")

    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds"))
    monkeypatch.setattr(download.RequestsDownload, "stream", offline)
    result = CliRunner().invoke(cli, ["encode", "msmarco-passage/dev/small", "--queries", "-m", str(_tiny_mlm_session),
                                      "-o", str(tmp_path / "q.tsv")])
    assert result.exit_code == 2
    (line,) = [x for x in result.output.splitlines() if "could not provide" in x]
    assert "$IR_DATASETS_HOME/msmarco-passage/dev/small/queries.tsv" in line and "irds_version.txt" in line
    assert not (tmp_path / "q.tsv").exists()
