"""Adapters for the official external scorers: VBench / VBench-I2V, DPG-Bench, Inception FID/KID/IS.

Modules: `export` (sample layouts each benchmark reads), `vbench_eval` (runs vbench in its own env and
turns `{name}_eval_results.json` into leaderboard scores), `dpg` (DPG-Bench dependency-graph
scoring over a pluggable VQA backend), `inception` (torch-fidelity with local weights),
`resources` (the one error listing every missing file).
"""
