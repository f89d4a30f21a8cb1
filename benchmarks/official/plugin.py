"""The official scorers as harness plug-ins, usable in a spec's `score.which`.

Registered through this project's `ursa_bench.plugins` entry point (pyproject.toml):
`vbench.<dimension>` and `vbench_i2v.<dimension>` (benchmarks.official.vbench_scorers), `dpg`,
`fid.inception`, `kid.inception` and `is.inception` (benchmarks.official.image_scorers), and
the `vbench` evaluator environment (benchmarks.official.envs).
"""

from benchmarks.official import envs, image_scorers, vbench_scorers  # noqa: F401 - importing registers them
