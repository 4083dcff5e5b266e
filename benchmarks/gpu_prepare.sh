#!/usr/bin/env bash
# Run HERE, before asking the device tool for a GPU: gathers into .device/ (git-ignored) what
# benchmarks/gpu_run.sh needs on the lent machine, which has python3 with torch, transformers and
# sentence-transformers but no `datasets`, no network and no ../shared. Then, in one device call:
#   command: bash benchmarks/gpu_run.sh      carry: [".device"]      timeout_s: 420
# The device's own transformers / sentence-transformers are older than the ones tested here, so
# the tested versions travel as wheels too (pure Python; the device's torch and tokenizers stay).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SHARED=${REPRO_SHARED:-../shared}
rm -rf .device
mkdir -p .device/whl .device/shared/models .device/shared/data/splade-toy .device/shared/data/cacm \
         .device/shared/data/cranfield .device/shared/data/msmarco-passage .device/shared/data/msmarco-passage-dl20-pool
pins=$("$PY" -c 'from importlib.metadata import version as v
print(" ".join(f"{p}=={v(p)}" for p in ("transformers", "sentence-transformers", "datasets", "dill", "multiprocess")))')
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .device/whl $pins
cp -r "$SHARED/models/splade-tiny" .device/shared/models/
cp -r "$SHARED/data/splade-toy/full_collection" "$SHARED/data/splade-toy/val_collection" .device/shared/data/splade-toy/
cp "$SHARED/data/cacm/cacm.jsonl" .device/shared/data/cacm/
cp "$SHARED/data/cranfield/cran.all.1400" .device/shared/data/cranfield/
cp "$SHARED/data/msmarco-passage/topics.msmarco-passage.dev-subset.txt" .device/shared/data/msmarco-passage/
cp "$SHARED/data/msmarco-passage-dl20-pool/corpus.jsonl" .device/shared/data/msmarco-passage-dl20-pool/
echo "pinned: $pins"
du -sh .device
