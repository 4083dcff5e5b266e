#!/usr/bin/env bash
# Run ON the lent GPU machine (device tool: command `bash benchmarks/gpu_run.sh`, carry [".device"],
# after benchmarks/gpu_prepare.sh here). Everything lands in $OUT: gpu.log (all output),
# gpu.json, and benchmarks-gpu.md, the dated section to append to docs/benchmarks.md here:
#   sed -n '/^## /,$p' <files_at>/benchmarks-gpu.md >> docs/benchmarks.md
# GPU_BENCH_ARGS adds options to bench_gpu.py (e.g. "--passages 64 --reps 1" to try the script on a CPU).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
[ -d .device/whl ] || { echo "no .device/: run benchmarks/gpu_prepare.sh here first and carry .device" >&2; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl \
    || exit 3
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1 REPRO_SHARED="$PWD/.device/shared" REPRO_BENCH_WORK=/tmp/repro-bench
{
    nvidia-smi -L
    python3 -c 'import torch, transformers, sentence_transformers, datasets
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NO GPU",
      "| transformers", transformers.__version__, "| sentence-transformers", sentence_transformers.__version__,
      "| datasets", datasets.__version__)'
    timeout "${GPU_BENCH_SECONDS:-360}" python3 benchmarks/bench_gpu.py --docs-file "$OUT/benchmarks-gpu.md" --json "$OUT/gpu.json" ${GPU_BENCH_ARGS:-}
    echo "bench_gpu exit $?"
} 2>&1 | tee "$OUT/gpu.log"
