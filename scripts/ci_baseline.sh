#!/usr/bin/env bash
# Regenerate reports/baselines/path_shape.json, the baseline of the regression gate
# (`python -m harness check ablations/path_shape.yaml --profile ci`): path_shape's `ci` profile on
# seeds 0, 1 and 2 (the gate itself runs seed 0), values = per-arm means over those seeds,
# tolerance per metric = 3 x pooled seed SD x sqrt(1 + 1/3) (harness/regression_gate.py). About 12
# CPU-minutes (two runs at a time). Rerun it after any change that moves the ci profile's
# results (scorer, sampler, training), then commit the baseline.
#   scripts/ci_baseline.sh [RUNS_ROOT]     (default: runs/ci-baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-runs/ci-baseline}"
mkdir -p "$root"
spec="$root/path_shape_ci_seeds.yaml"  # the shipped spec with three seeds in its ci profile
printf 'include: %s\nprofiles:\n  ci:\n    seeds: [0, 1, 2]\n' "$PWD/ablations/path_shape.yaml" > "$spec"
python -m harness run "$spec" --profile ci --runs-root "$root" --no-report
python -m harness check "$spec" --profile ci --runs-root "$root" \
    --baseline reports/baselines/path_shape.json --update-baseline
