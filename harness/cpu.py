"""CPU results that do not depend on the host's instruction set: pinned kernels, recorded facts.

Three libraries pick their CPU kernels by the best instruction set of the host, and the kernels
round differently: ATen's vectorised kernels (softmax, norms, reductions, optimiser updates:
`ATEN_CPU_CAPABILITY` default / avx2 / avx512), MKL's BLAS (matmul: `MKL_CBWR`) and oneDNN
(`ONEDNN_MAX_CPU_ISA`). Training amplifies the last-bit differences into different models, so
the same code and seed gave different per-seed numbers on two machines. Measured on an AMD EPYC
with AVX-512 (100-200 steps of the path_shape default profile's masked seed 0 through
ursa.train.train; benchmarks/perf/cpu_isa_bench.py repeats it on the same model): the losses
change with ATEN_CPU_CAPABILITY (avx512, avx2 and default all differ) and with
MKL_CBWR=COMPATIBLE; MKL_CBWR=AVX2 and ONEDNN_MAX_CPU_ISA=AVX2 changed nothing on this host
(MKL already ran its AVX2 path here; on another vendor's AVX-512 host it need not).

`pin()` sets PINS in this process's environment unless the user set a variable already (a user
setting wins and is recorded): every x86-64 host with AVX2 and FMA then runs the same kernels
(AVX2 is the newest level the machines of the last decade all have; AVX-512 is not). They must
be set before torch is imported: `python -m harness` pins first thing, and worker processes
(local, SLURM) inherit the environment. A host without AVX2 (or not x86-64) gets no pins: its
results are its own, and `facts()` says so. Threads matter too (reductions split by thread): the
shipped profiles set `executor.threads`.
"""

from __future__ import annotations

import os
import platform
import warnings
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

# the kernel level every x86-64 host with AVX2 + FMA runs alike
PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# the host flags that decide which kernels a library may pick (reported, not all used)
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
)


def host_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU flags of the host (Linux /proc/cpuinfo); empty where it cannot be read."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def pinnable(flags: set[str], machine: str | None = None) -> bool:
    """Whether the host can run PINS: x86-64 with AVX2 and FMA (what ATen's avx2 kernels need)."""
    machine = (machine or platform.machine()).lower()
    return machine in ("x86_64", "amd64") and {"avx2", "fma"} <= flags


def pin(
    environ: MutableMapping[str, str] | None = None,
    flags: set[str] | None = None,
    machine: str | None = None,
) -> dict[str, str]:
    """Set every PINS variable the environment does not set already (before torch is imported);
    returns those set. Nothing on a host that cannot run them (flags, machine: of this host)."""
    environ = os.environ if environ is None else environ
    if not pinnable(host_flags() if flags is None else flags, machine):
        return {}
    added = {k: v for k, v in PINS.items() if k not in environ}
    environ.update(added)
    return added


def capability() -> str:
    """The ATen kernel level this process runs ("DEFAULT", "AVX2", "AVX512"...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def warn_if_unpinned() -> None:
    """In a process that imported torch before `pin()` (the in-process executor under pytest or a
    notebook), the pinned level cannot take effect any more: say so, once; `facts()` records it."""
    wanted = os.environ.get("ATEN_CPU_CAPABILITY")
    if wanted and capability().lower() != wanted.lower():
        warnings.warn(
            f"ATEN_CPU_CAPABILITY={wanted} but this process runs {capability()} kernels "
            f"(torch was imported before the pin): its CPU results may differ from other "
            f"hosts'; run through `python -m harness` or an executor that starts workers "
            f"(local, slurm) for the pinned kernels",
            RuntimeWarning,
            stacklevel=2,
        )


def _library_versions() -> dict[str, str | None]:
    import numpy
    import torch

    config = torch.__config__.show()

    def after(marker: str) -> str | None:
        line = next((ln for ln in config.splitlines() if marker in ln), None)
        return line.split(marker, 1)[1].split()[0] if line else None

    return {
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "mkl": after("Kernel Library Version "),
        "onednn": after("MKL-DNN v"),
        "python": platform.python_version(),
    }


def facts() -> dict[str, Any]:
    """What decides this process's CPU results: the kernel level torch runs, the pins in effect,
    the host's instruction-set flags and CPU model, threads, and library versions. Two runs whose
    facts agree in `capability`, `pins`, `threads` and `versions` give bit-identical results."""
    import torch

    flags = host_flags()
    model = next(
        (ln.split(":", 1)[1].strip() for ln in _cpuinfo_lines() if ln.startswith("model name")),
        None,
    )
    pins = {k: os.environ.get(k) for k in PINS}
    return {
        "capability": capability(),
        "pins": pins,
        "pinned": pins == PINS and capability() == "AVX2",
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "cpu": model,
        "isa": [f for f in ISA_FLAGS if f in flags],
        "versions": _library_versions(),
    }


def _cpuinfo_lines() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []
