"""Components for real video data that need no downloads: the Cosmos and precomputed visual
tokenizers as plug-ins, and pixel-space scorers (VBench's temporal flickering, frame-comparison task
metrics). Registered through this project's `ursa_bench.plugins` entry point (`plugin.py`)."""
