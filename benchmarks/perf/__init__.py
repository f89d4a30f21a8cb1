"""Speed and memory benchmarks: every ratio measured side by side in one process.

`python -m benchmarks.perf [--quick] [--device cpu|cuda] --json OUT` runs each suite and writes
JSON plus a Markdown table (machine, date, commit) to `reports/perf/`.
"""
