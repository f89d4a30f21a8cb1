#!/usr/bin/env bash
# The GPU figures in one short run, as recorded in reports/perf/<device>/ (see reports/perf/TARGETS.md).
# On a machine whose python3 has torch + CUDA; wheels for packages it lacks in .whl/ (pydantic).
# Usage: OUT=/some/folder bash benchmarks/perf/run_gpu.sh   (each part has its own time limit; 570 s in all)
set -u
OUT=${OUT:-runs/perf/gpu}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
LOG="$OUT/log.txt"
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv;
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } >"$LOG" 2>&1
part() {  # part NAME SECONDS SUITE...: one perf run, its own folder and time limit
  local name=$1 limit=$2; shift 2
  local args=(); for s in "$@"; do args+=(--suite "$s"); done
  echo "== $name ($(date +%T))" >>"$LOG"
  timeout "$limit" python3 -m benchmarks.perf --device cuda "${args[@]}" --out "$OUT/$name" >>"$LOG" 2>&1
  echo "== $name exit $? ($(date +%T))" >>"$LOG"
}
part train 240 train
part train_compile 150 train_compile
part release 90 release_sample
part paths 90 paths sampler
cat "$LOG"
