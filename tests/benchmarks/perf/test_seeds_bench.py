"""The seeds suite's arithmetic: per-variant medians over rounds, means over workers, seeds per
CPU minute at the profile's step budget, speedups against eager, and the best usable lever
(the batched bound is never picked: it is no trainer). Timings are faked; no speed is asserted."""

from __future__ import annotations

import pytest

from benchmarks.perf import seeds_bench


def test_figures_take_medians_over_rounds_and_means_over_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = {
        "times": {
            "eager": [0.05, 0.04, 0.9],
            "compile": [0.04, 0.03, 0.04],
            "batched_x4": [0.001, 0.001, 0.001],
            "vmap_x4": [0.2, 0.2, 0.2],
        },
        "compile_first": [12.0, 8.0, 10.0],
    }
    other = {**worker, "times": {**worker["times"], "eager": [0.06, 0.06, 0.06]}}
    monkeypatch.setattr(seeds_bench, "_workers", lambda n, rounds, steps: [worker, other][:n])
    one = seeds_bench.figures(1, 3, 5)
    # the median, not the 0.9 outlier
    assert one["eager"]["step_ms_per_seed"] == pytest.approx(50.0)
    assert one["eager"]["seeds_per_cpu_min"] == pytest.approx(60 / (seeds_bench.STEPS * 0.05))
    assert one["compile"]["speedup_vs_eager"] == pytest.approx(0.05 / 0.04)
    assert one["compile_first_steps_s"] == pytest.approx(12.0)  # round 1: the compilation
    assert one["compile_first_steps_s_compiled"] == pytest.approx(9.0)
    assert one["best_lever"] == {"name": "compile", "speedup_vs_eager": pytest.approx(1.25)}
    two = seeds_bench.figures(2, 3, 5)
    assert two["eager"]["step_ms_per_seed"] == pytest.approx(55.0)  # mean of the workers' medians
    assert two["vmap_x4"]["speedup_vs_eager"] == pytest.approx(0.055 / 0.2)


def test_a_gpu_run_skips_the_suite_and_its_target_reads_not_measured() -> None:
    from benchmarks.perf.targets import verdicts

    figures = seeds_bench.run(quick=True, device="cuda")
    assert "--device cpu" in figures["skipped"]
    rows = [r for r in verdicts({"suites": {"seeds": figures}}) if r[0] == "seeds"]
    assert rows and all(r[4] == "not measured" for r in rows)
