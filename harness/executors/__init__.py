"""The harness's own executors (`executor.kind`): inprocess, local and slurm, one module each,
registered in plugins.EXECUTORS when harness.plugins.load_plugins imports them. Kept empty so
that `python -m harness.executors.local_controller` starts without importing them."""
