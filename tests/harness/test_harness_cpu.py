"""harness.cpu: the kernel pins reach fresh processes and fix their kernels; facts name them."""

from __future__ import annotations

import pytest

from benchmarks.perf.cpu_isa_bench import _once
from harness.cpu import PINS, facts, host_flags, pin, pinnable

AVX2_HOST = {"sse4_2", "avx", "avx2", "fma"}


def test_pin_sets_what_the_user_left_unset() -> None:
    env: dict[str, str] = {"ATEN_CPU_CAPABILITY": "avx512", "PATH": "/bin"}
    added = pin(env, AVX2_HOST, "x86_64")
    assert added == {k: v for k, v in PINS.items() if k != "ATEN_CPU_CAPABILITY"}
    assert env["ATEN_CPU_CAPABILITY"] == "avx512"  # the user's choice wins (and facts() records it)
    assert pin(env, AVX2_HOST, "x86_64") == {}  # idempotent


@pytest.mark.parametrize(
    ("flags", "machine"),
    [({"sse4_2", "avx"}, "x86_64"), ({"avx2"}, "x86_64"), (AVX2_HOST, "aarch64")],
)
def test_no_pins_on_a_host_that_cannot_run_them(flags: set[str], machine: str) -> None:
    env: dict[str, str] = {}
    assert pin(env, flags, machine) == {} and env == {}


def test_facts_name_level_pins_threads_and_versions() -> None:
    got = facts()
    assert got["capability"] in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256")
    assert set(got["pins"]) == set(PINS) and got["threads"] >= 1
    assert got["versions"]["torch"] and got["versions"]["numpy"]


@pytest.mark.skipif(not pinnable(host_flags()), reason="not x86-64 with AVX2 and FMA: no pins")
def test_pinned_processes_run_avx2_kernels_and_agree_bitwise() -> None:
    """Two fresh processes under the pins train bit-identically on the AVX2 kernels; on a host whose
    best level is above AVX2 an unpinned process runs other kernels and its losses differ (what
    made results machine-dependent), so the pin is what fixes them."""
    first, second = _once("pinned", 6), _once("pinned", 6)
    assert first["capability"] == "AVX2" and first["digest"] == second["digest"]
    native = _once("native", 6)
    if native["capability"] == "AVX2":
        pytest.skip("this host's best kernel level is AVX2: pinned and native are the same kernels")
    assert native["digest"] != first["digest"], native
