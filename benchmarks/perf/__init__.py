"""Speed and memory benchmarks: every ratio measured side by side in one process.

`python -m benchmarks.perf [--quick] [--device cpu|cuda] [--suite NAME] [--out DIR]` runs each
suite, prints every target (benchmarks/perf/targets.py) met or missed, and writes JSON plus a
Markdown table (machine, date, commit) to DIR (default runs/perf/<device>-<date>/; the committed
figures in reports/perf/ change only when --out names them).
"""
