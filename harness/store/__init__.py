"""Run store: run directories, done markers, shared stages, locks, run ownership, result files,
the SQLite results index and manifests, one module each; this package re-exports their public
names (`from harness.store import load_results`).

Layout (the results contract, harness/store/layout.py): `<runs_root>/<spec>/<profile>/<run_id>/`
holds `config.json`, `stages/<stage>/...` (with a `done.json` marker once the stage finished,
markers.py) and `result.json` (results.py, record.py); `<runs_root>/<spec>/<profile>/manifest.json`
lists the run ids of the latest expansion (manifest.py) and `<runs_root>/index.sqlite` (table
`runs`, index.py) indexes every run of every spec. result.json is the source of truth: the index
is updated on every write of a result, reconciled with the result files of a spec+profile by every
`run`, rebuilt by `python -m harness reindex`, and a corrupt index is moved aside
(`index.sqlite.corrupt-<time>`) and rebuilt where it is found.

Stages that several runs share (a trained model, a set of samples) live once under
`<runs_root>/_stages/<stage>/<stage_id>/`; a run's `stages/train` and `stages/sample` are
relative symlinks to them (links.py), so every reader sees one run directory. A shared stage is
computed under an exclusive file lock (locks.py), so two workers never compute it at once. A done
marker records the sha256 of the outputs it vouches for (`*.safetensors` and `*.json` of the
stage, checkpoints aside); a marker that is unreadable or whose files no longer match means "not
done". Temp files that killed writers left are swept (temps.py).

Every run has one owner (ownership.py): the process executing it holds an exclusive lock on
`<run_dir>/.owner` (pid and host written in it). Another process skips or waits for a run a live
process owns and takes over one whose owner died (the kernel releases the lock of a dead process).
A run is reset (its directory and the shared stages no other run uses deleted) by reset.py.
"""

from harness.store.files import read_json, read_json_or_none, warn, warn_damaged
from harness.store.index import (
    INDEX,
    index_result,
    query_index,
    reconcile_index,
    reindex,
    remove_from_index,
)
from harness.store.layout import profile_dir, run_dir, run_dirs, shared_stage_dir, stage_dir
from harness.store.links import link_stage
from harness.store.locks import stage_busy, stage_lock
from harness.store.manifest import (
    add_to_manifest,
    check_owner,
    read_manifest,
    spec_source,
    write_manifest,
)
from harness.store.markers import (
    DONE,
    damaged_stages,
    invalidate_stage,
    mark_stage_done,
    stage_done,
    stage_outputs,
)
from harness.store.ownership import OWNER, Owner, RunHold, acquire_run, owner_of, wait_for_owner
from harness.store.record import record_result, write_result
from harness.store.reset import reset_run
from harness.store.results import export_results, load_results, natural_key, read_result
from harness.store.temps import sweep_temps

__all__ = [
    "DONE",
    "INDEX",
    "OWNER",
    "Owner",
    "RunHold",
    "acquire_run",
    "add_to_manifest",
    "check_owner",
    "damaged_stages",
    "export_results",
    "index_result",
    "invalidate_stage",
    "link_stage",
    "load_results",
    "mark_stage_done",
    "natural_key",
    "owner_of",
    "profile_dir",
    "query_index",
    "read_json",
    "read_json_or_none",
    "read_manifest",
    "read_result",
    "reconcile_index",
    "record_result",
    "reindex",
    "remove_from_index",
    "reset_run",
    "run_dir",
    "run_dirs",
    "shared_stage_dir",
    "spec_source",
    "stage_busy",
    "stage_dir",
    "stage_done",
    "stage_lock",
    "stage_outputs",
    "sweep_temps",
    "wait_for_owner",
    "warn",
    "warn_damaged",
    "write_manifest",
    "write_result",
]
