#!/usr/bin/env bash
# The GPU probe in one guarded call (benchmarks/perf/probe.py): SDPA backend, profiler breakdown by
# category and MFU of the eager, padded-caption and compiled 0.6B training steps, written to
# $OUT/probe.json after every part, so the time limit ($LIMIT_S, default 480 s = 8 minutes) never
# loses what was measured. On a machine without CUDA (or DEVICE=cpu) it runs the tiny preset and
# records the GPU parts as skipped, with the reason (CI runs it so: tests/benchmarks/perf/test_probe.py).
# Wheels for packages the GPU machine's python lacks may sit in .whl/ (pydantic).
# Usage: OUT=/some/folder [DEVICE=cuda|cpu|auto] [PYTHON=python3] bash benchmarks/perf/run_gpu.sh
set -u
OUT=${OUT:-runs/perf/gpu}
DEVICE=${DEVICE:-auto}
PYTHON=${PYTHON:-python3}
LIMIT_S=${LIMIT_S:-480}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
LOG="$OUT/log.txt"
{ date; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true;
  "$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } >"$LOG" 2>&1
echo "== probe ($(date +%T), limit ${LIMIT_S} s)" >>"$LOG"
timeout --kill-after=20 "$LIMIT_S" "$PYTHON" -m benchmarks.perf.probe --device "$DEVICE" --out "$OUT" >>"$LOG" 2>&1
status=$?
echo "== probe exit $status ($(date +%T))" >>"$LOG"
cat "$LOG"
exit $status
