"""Result files: reading a run's result.json, the per-run results table of a spec+profile
(`load_results`) and its export as .csv or .parquet."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from harness.records import RunResult
from harness.store.files import read_json_or_none, warn_damaged
from harness.store.layout import profile_dir
from harness.store.manifest import read_manifest
from ursa.io import atomic_write_bytes


def read_result(rdir: Path) -> RunResult | None:
    """The run's result.json; None when absent, or damaged (reported once with its path: the run is
    then treated as not done and recomputed from its stages)."""
    data = read_json_or_none(
        rdir / "result.json", "the run is treated as not done and resumed from its stages"
    )
    if data is None:
        return None
    try:
        return RunResult.from_json(data)
    except (TypeError, ValueError, AttributeError) as exc:
        warn_damaged(
            rdir / "result.json", exc, "the run is treated as not done and resumed from its stages"
        )
        return None


def load_results(runs_root: str | Path, spec_name: str, profile: str) -> pd.DataFrame:
    """One row per run of the latest expansion (plus reference rows).

    Columns: run_id, spec, profile, arm, seed, state, reference, model (the train-stage id, shared
    by arms that reuse one trained model), run_dir, error, then `param.<dotted key>` for every
    axis and `metric.<name>` for every metric (NaN where a run lacks it). A damaged manifest falls
    back to the run directories; a run whose result.json is damaged is left out (both reported).
    """
    pdir = profile_dir(runs_root, spec_name, profile)
    manifest = read_manifest(pdir / "manifest.json")
    ids = manifest["run_ids"] if manifest else sorted(p.name for p in pdir.glob("*") if p.is_dir())
    rows = []
    for rid in ids:
        res = read_result(pdir / rid)
        if res is None:
            continue
        row = {
            "run_id": res.run_id,
            "spec": res.spec,
            "profile": res.profile,
            "arm": res.arm,
            "seed": res.seed,
            "state": res.state.value,
            "reference": res.reference,
            "model": res.stage_ids.get("train"),
            "run_dir": str(pdir / rid),
            "error": (res.error or {}).get("message"),
        }
        row.update({f"param.{k}": v for k, v in res.params.items()})
        row.update({f"metric.{k}": v for k, v in res.metrics.items()})
        if res.trial is not None:
            row["trial"] = res.trial
        rows.append(row)
    base = [
        "run_id",
        "spec",
        "profile",
        "arm",
        "seed",
        "state",
        "reference",
        "model",
        "run_dir",
        "error",
    ]
    df = pd.DataFrame(rows, columns=None if rows else base)
    rest = sorted(c for c in df.columns if c not in base)
    order = sorted(
        range(len(df)), key=lambda i: (natural_key(str(df["arm"].iat[i])), df["seed"].iat[i])
    )
    return df[base + rest].iloc[order].reset_index(drop=True)


_NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def natural_key(text: str) -> tuple:
    """Sort key reading the numbers in `text` as numbers: "shift=2" < "shift=10" < "shift=10.5".
    (text, number) chunks alternate, so any two keys compare position by position."""
    parts = _NUMBER.split(text)
    return tuple(float(p) if i % 2 else p for i, p in enumerate(parts))


def export_results(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a results table as .csv or .parquet (atomically)."""
    path = Path(path)
    if path.suffix == ".csv":
        atomic_write_bytes(path, df.to_csv(index=False).encode())
    elif path.suffix == ".parquet":
        atomic_write_bytes(path, df.to_parquet(index=False))
    else:
        raise ValueError(f"export path: expected a .csv or .parquet file, got {str(path)!r}")
    return path
