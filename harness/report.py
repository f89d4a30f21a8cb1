"""`python -m harness report SPEC`: tables, plots and samples of one spec + profile.

Writes `reports/<spec>/<profile>/` (or `out_dir`; a smoke run never overwrites the default
report): `report.md` (plots and strips as files beside it), a self-contained `report.html`
(images embedded as base64 PNG), `results.csv` / `.parquet` (one row per run), `summary.csv`
(one row per arm: mean, 95% CI and n per metric) and `verdict.json` (the verdict's tests, the
seeds, the replicate's agreement and the commit the report was made at: what `python -m harness
findings` reads). Missing pieces (no study, no numeric axis, no losses, failed runs) shrink the
report; they never stop it.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness import plots, plugins, scaling, stats, tables
from harness.comparison import (
    Claim,
    Comparison,
    _fmt_p,
    agreement,
    compare_within,
    curve_frame,
    curve_summary,
    denoise_table,
    headline_comparison,
    headline_values,
    metric_range,
    power_table,
)
from harness.spec import Spec, zip_keys
from harness.specfile import load_spec
from harness.store import export_results, load_results, read_json, read_json_or_none, read_result
from ursa.io import atomic_write_bytes


@dataclass
class Block:
    """One piece of the report: kind "h2" | "p" | "table" | "img" | "code"."""

    kind: str
    text: str = ""
    table: pd.DataFrame | None = None
    png: bytes | None = None
    file: str = ""  # image path relative to the report directory


def as_spec(spec: Spec | str | Path) -> Spec:
    return spec if isinstance(spec, Spec) else load_spec(spec)


def _fmt_cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append(
            "| "
            + " | ".join(_fmt_cell(v).replace("|", "\\|").replace("\n", " ") for v in row)
            + " |"
        )
    return "\n".join(lines)


def to_markdown(title: str, blocks: list[Block]) -> str:
    out = [f"# {title}", ""]
    for b in blocks:
        if b.kind == "h2":
            out += [f"## {b.text}", ""]
        elif b.kind == "p":
            out += [b.text, ""]
        elif b.kind == "table" and b.table is not None:
            out += [_md_table(b.table), ""]
        elif b.kind == "img":
            out += [f"![{b.text}]({b.file})", "", f"*{b.text}*", ""]
        elif b.kind == "code":
            out += [
                f"<details><summary>{b.file}</summary>\n\n```json\n{b.text}\n```\n</details>",
                "",
            ]
    return "\n".join(out)


# tables wider than the page scroll inside their own box (.wide), never the page
_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    ".wide{max-width:100%;overflow-x:auto}"
    "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;"
    "padding:3px 7px;text-align:left}th{background:#f3f3f3}img{max-width:100%}"
    "pre{font-size:11px;white-space:pre-wrap;overflow-wrap:anywhere}figure{margin:1em 0}"
    ".note{color:#a33}"
)


def to_html(title: str, blocks: list[Block]) -> str:
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    for b in blocks:
        if b.kind == "h2":
            out.append(f"<h2>{html.escape(b.text)}</h2>")
        elif b.kind == "p":
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "table" and b.table is not None:
            table = b.table.map(_fmt_cell).to_html(index=False, escape=True, border=0)
            out.append(f"<div class='wide'>{table}</div>")
        elif b.kind == "img" and b.png is not None:
            data = base64.b64encode(b.png).decode()
            out.append(
                f"<figure><img alt='{html.escape(b.text)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(b.text)}</figcaption></figure>"
            )
        elif b.kind == "code":
            out.append(
                f"<details><summary>{html.escape(b.file)}</summary><pre>{html.escape(b.text)}</pre></details>"
            )
    return "\n".join(out) + "</body></html>\n"


# ----------------------------------------------------------------------------- sections


def _axis(spec: Spec, summary: pd.DataFrame) -> str | None:
    """The x axis for metric-vs-param: report.x, else a numeric varying grid axis (shift first)."""
    if spec.report.x:
        return spec.report.x
    keys = [*spec.grid, *(k for g in spec.zip for k in zip_keys(g))]
    numeric = [
        k
        for k in keys
        if f"param.{k}" in summary  # a boolean axis is no quantity to plot
        and not summary[f"param.{k}"].dropna().map(lambda v: isinstance(v, bool)).any()
        and pd.to_numeric(summary[f"param.{k}"], errors="coerce").notna().sum() > 1
    ]
    return next((k for k in numeric if "shift" in k), numeric[0] if numeric else None)


def _tokens_per_step(df: pd.DataFrame) -> int | None:
    """Visual tokens one training step sees (batch x tokens per clip), as the train stage recorded it."""
    for run_dir in df["run_dir"] if "run_dir" in df else []:
        done = Path(str(run_dir)) / "stages" / "train" / "done.json"
        tokens = read_json(done).get("tokens_per_step") if done.is_file() else None
        if tokens:
            return int(tokens)
    return None


def wall_time(df: pd.DataFrame) -> str:
    """ "N runs computed in M min (first start to last finish)", from the runs' result.json."""
    spans = []
    for d in df["run_dir"] if len(df) else []:
        try:
            r = read_json(Path(str(d)) / "result.json")
        except (OSError, ValueError):
            continue
        if r.get("started") and r.get("finished"):
            spans.append((float(r["started"]), float(r["finished"])))
    if not spans:
        return ""
    start, end = min(s for s, _ in spans), max(e for _, e in spans)
    return f" Compute: {len(spans)} runs, {(end - start) / 60:.1f} min from the first start to the last finish."


def shared_models(df: pd.DataFrame) -> list[str]:
    """ "model <id>: arm a, arm b (seed s)" for every trained model that more than one arm uses."""
    out = []
    runs = df[df["model"].notna() & df["reference"].isna()] if "model" in df else df.iloc[:0]
    for model, group in runs.groupby("model", sort=True):
        arms = sorted(set(group["arm"].astype(str)))
        if len(arms) > 1:
            seeds = ", ".join(str(s) for s in sorted(set(group["seed"])))
            out.append(f"model {model} (seed {seeds}): {' | '.join(arms)}")  # labels hold commas
    return out


_RUN_KEYS = (
    "run_id",
    "spec",
    "profile",
    "arm",
    "seed",
    "params",
    "reference",
    "stage_ids",
    "trial",
)  # config.json's "run" without the plan's pending state and empty metrics


def _run_table(df: pd.DataFrame) -> tuple[pd.DataFrame, list[Block]]:
    """Per-run provenance (code version, data fingerprint, error) and each run's config."""
    rows, configs = [], []
    for _, r in df.iterrows():
        cfg_path = Path(str(r.get("run_dir") or "")) / "config.json"
        cfg = read_json(cfg_path) if cfg_path.is_file() else {}
        code = cfg.get("code") or {}
        data = cfg.get("data") or ""  # written by harness.runner.prepare_run_dir
        commit = (
            str(code.get("commit", ""))[:10] + ("+dirty" if code.get("dirty") else "")
            if code
            else ""
        )
        rows.append(
            {
                "run_id": r["run_id"],
                "arm": r["arm"],
                "seed": r.get("seed"),
                "state": r["state"],
                "model": r.get("model") or "",
                "code": f"{code.get('package', '')} {commit}".strip(),
                "data": str(data)[:16],
                "error": str(r.get("error") or "")[:160] if r["state"] != "done" else "",
            }
        )
        if cfg:  # the run's result is in the table above
            head = {k: v for k, v in (cfg.get("run") or {}).items() if k in _RUN_KEYS}
            cfg = {**cfg, "run": head}
            configs.append(
                Block(
                    "code",
                    json.dumps(cfg, indent=1, sort_keys=True, default=str),
                    file=f"config of {r['run_id']} ({r['arm']}, seed {r.get('seed')})",
                )
            )
    return pd.DataFrame(rows), configs


def _study(spec: Spec, runs_root: Path, profile: str) -> Any | None:
    """The spec's Optuna study if one exists in its storage."""
    if spec.search is None:
        return None
    from harness.search import load_existing_study

    return load_existing_study(spec, runs_root, profile)


def corruption_curves(
    embeddings: Any, paths: dict[str, Any], n: int = 2048, seed: int = 0
) -> dict[str, tuple[list[float], list[float]]]:
    """{label: (t, mean d(x_t, x_1))} at t = 0, 0.1, ..., 1 for each of `paths` ({label: a fitted
    ursa.path_config.PathConfig}). embeddings: float (K, D) codebook. Monte Carlo over n uniform x_1 (seeded)."""
    import torch

    from ursa.calibration import mean_corruption_distance

    t = torch.linspace(0, 1, 11)
    curves = {}
    for label, config in paths.items():
        path = config.build(embeddings.shape[0], embeddings)
        d = mean_corruption_distance(
            path, embeddings, t, n=n, generator=torch.Generator().manual_seed(seed)
        )
        curves[label] = (t.tolist(), d.tolist())
    return curves


def _path_label(config: Any) -> str:
    """`metric c=3 alpha=0.9`: the kind and its settings (numbers %.3g)."""
    settings = config.model_dump(exclude={"kind"})
    return " ".join(
        [config.kind, *(f"{k}={v:.3g}" for k, v in settings.items() if isinstance(v, float))]
    )


def _linearity(
    spec: Spec, runs_root: Path, profile: str, df: pd.DataFrame, study: Any
) -> tuple[dict, str]:
    """Corruption curves on the tokenizer of the spec's runs (read from the run cache, never fitted
    here) for the path of every arm, each labelled by the arms that train it (with the settings its
    train stage fitted, e.g. a calibrated metric path's (c, alpha)), and the best trial's path."""
    if df.empty or not (runs_root / "_cache").is_dir():
        return {}, "linearity plot skipped: no runs, so no cached tokenizer to measure the paths on"
    try:
        from harness.data import data_for
        from harness.expand import expand

        runs = expand(spec, profile)
        emb = data_for(runs[0].config, runs_root).tokenizer.codebook_embeddings().float()
        arms: dict[str, list[str]] = {}  # path label -> the arms that train that path
        paths: dict[str, Any] = {}  # path label -> its fitted config
        run_dirs = dict(zip(df["arm"].astype(str), df["run_dir"])) if "run_dir" in df else {}
        for r in runs:
            record = Path(str(run_dirs.get(r.arm, ""))) / "stages" / "train" / "path.json"
            fitted = (
                read_json_or_none(record, "the plot fits the path again instead")
                if record.exists()
                else None
            )
            config = r.config.path.model_copy(
                update=fitted if isinstance(fitted, dict) else r.config.path.fit(emb)
            )
            label = _path_label(config)
            paths[label] = config
            if r.arm not in arms.setdefault(label, []):
                arms[label].append(r.arm)
        best = _best_params(study)
        if best and all(k.startswith("path.") for k in best):
            config = runs[0].config.path.model_copy(
                update={k[len("path.") :]: v for k, v in best.items()}
            )
            paths.setdefault(_path_label(config), config)
        curves = corruption_curves(emb, paths)
        return {" | ".join(arms.get(label) or [label]): v for label, v in curves.items()}, ""
    except Exception as exc:  # noqa: BLE001 - the report goes on without this plot
        return {}, f"linearity plot unavailable: {type(exc).__name__}: {exc}"


def trial_table(study: Any) -> pd.DataFrame:
    """One row per Optuna trial: number, state, objective value and its standard error over the
    trial's seeds, parameters, source, run ids."""
    rows = [
        {
            "trial": t.number,
            "state": t.state.name,
            "value": t.value,
            "se": t.user_attrs.get("se"),
            **t.params,
            "source": t.user_attrs.get("source", "sampler"),
            "runs": ", ".join(t.user_attrs.get("run_ids", [])),
            "error": t.user_attrs.get("error", ""),
        }
        for t in study.trials
    ]
    return pd.DataFrame(rows)


def _trial_values(df: pd.DataFrame, trial: Any, metric: str) -> dict[int, Any]:
    """{seed: per-prompt values of `metric`} of one trial's runs."""
    runs = df[df["run_id"].isin(trial.user_attrs.get("run_ids", []))] if len(df) else df
    return {s: v for by_seed in headline_values(runs, metric).values() for s, v in by_seed.items()}


SEARCH_POINTS = {"calibrated": "calibrated point", "enqueue": "enqueued point"}
"""The arm a search verdict's test names, by the trial's `source` (harness.search)."""


def search_point_arm(source: str, params: dict[str, float]) -> str:
    """ "calibrated point", or "enqueued point (path.alpha=0.9; path.c=3)": its keys sorted."""
    if source == "calibrated":
        return SEARCH_POINTS[source]
    return f"{SEARCH_POINTS[source]} ({'; '.join(f'{k}={v:g}' for k, v in sorted(params.items()))})"


def test_arms(spec: Spec) -> list[str]:
    """The arms a test of the spec's verdict.json can name: the spec's arms, and the trend's,
    scaling fit's and search points' (harness.findings checks a claim's tests against these)."""
    from harness.comparison import trend_arm
    from harness.expand import arm_points

    arms = [label for label, _ in arm_points(spec)]
    if spec.report.trend is not None:
        arms.append(trend_arm(spec.report.trend))
    if spec.report.scaling:
        arms.append(scaling.SLOPE_ARM)
    if spec.search is not None:
        arms += [SEARCH_POINTS["calibrated"]] if spec.search.enqueue_calibrated else []
        arms += [search_point_arm("enqueue", point) for point in spec.search.enqueue]
    return arms


def search_claims(study: Any, df: pd.DataFrame, metric: str) -> tuple[list[str], list[Claim]]:
    """Where each enqueued point (the calibrated (c, alpha), the authors' point) lands against the
    best trial: (sentences, tests). Each point's rank among the finished trials and its paired
    difference point - best (the point that is the best: point - runner-up) over the seeds and
    prompts both were scored on (harness.stats.paired_difference), as a test of the verdict
    (arm `search_point_arm`) that verdict.json records."""
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        return [], []
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(done, key=lambda t: -t.value if maximize else t.value)
    best = ranked[0]

    def point(t: Any) -> str:
        se = t.user_attrs.get("se")
        where = ", ".join(f"{k.split('.')[-1]} {v:.3g}" for k, v in t.params.items())
        return f"trial {t.number} ({where}): {t.value:.3g}" + (
            f" ± {se:.2g} (SE over seeds)" if se else ""
        )

    text = [f"Best trial of {len(done)} finished: {point(best)}."]
    claims = []
    lo, hi = metric_range(metric)
    bounds = (lo - hi, hi - lo)
    for rank, t in enumerate(ranked if len(ranked) > 1 else [], 1):
        source = t.user_attrs.get("source")
        if source not in SEARCH_POINTS:
            continue
        # against the best trial, or when the point is the best, against the runner-up
        other, versus = (best, "the best") if rank > 1 else (ranked[1], "the runner-up")
        d = stats.paired_difference(
            _trial_values(df, t, metric), _trial_values(df, other, metric), bounds
        )
        arm = search_point_arm(source, t.params)
        claims.append(
            Claim(arm, "final", metric, d, maximize, where=f"{versus} (trial {other.number})")
        )
        text.append(
            f"{'Calibrated' if source == 'calibrated' else 'Enqueued'} point, {point(t)}: rank "
            f"{rank} of {len(done)}"
            + (" (the best trial itself)" if rank == 1 else "")
            + f"; it minus {versus} {d.fmt(signed=True)} "
            f"({int(stats.LEVEL * 100)}% interval, {d.method or 'no interval'}, p "
            f"{_fmt_p(d.p)}; {d.seeds} seeds x {d.clips} prompts)."
        )
    if len(text) > 1:
        text.append(
            "The best trial was picked on these same seeds, so its lead is biased upward "
            "(winner's curse); `python -m harness replicate` scores the points on fresh seeds."
        )
    return text, claims


def _best_params(study: Any) -> dict[str, Any] | None:
    try:
        return dict(study.best_params) if study is not None else None
    except ValueError:  # no completed trial
        return None


def _strips(df: pd.DataFrame) -> list[tuple[str, str, Path, list[str]]]:
    """(arm, task, png, captions of its rows top to bottom) of the first finished run of each arm
    that has frame strips."""
    out = []
    for arm, group in df[df["state"] == "done"].groupby("arm", sort=False):
        for _, r in group.iterrows():
            stages = Path(str(r["run_dir"])) / "stages"
            found = sorted(
                [
                    *(stages / "sample").glob("strip_*.png"),
                    *(stages / "reference").glob("strip_*.png"),
                ]
            )
            if found:
                tasks = [p.stem[len("strip_") :] for p in found]
                out += [
                    (str(arm), task, p, _strip_prompts(Path(str(r["run_dir"])), task))
                    for task, p in zip(tasks, found)
                ]
                break
    return out


def _strip_prompts(rdir: Path, task: str, rows: int = 4) -> list[str]:
    """The captions of a strip's rows: the first `rows` prompts of the run's `task` suite (the
    strip shows the first clips, harness.media.strip); [] where they cannot be rebuilt."""
    try:
        from harness.data import data_for
        from harness.spec import RunConfig

        config = RunConfig.model_validate(read_json(rdir / "config.json")["config"])
        suite = data_for(config, rdir.parents[2]).benchmark.suite(task)[:rows]
        return [str(getattr(p, "caption", p)) for p in suite]
    except Exception:  # noqa: BLE001 - a strip without its prompts is still a strip
        return []


def with_derived(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`df` plus the metrics scorers derive from each run's metrics (plugins.derived_metrics, e.g.
    VBench's Quality / Total over the dimensions scored) as `metric.*` columns, and their notes."""
    rows, notes = [], []
    for _, row in df.iterrows():
        metrics = {
            c[len("metric.") :]: v
            for c, v in row.items()
            if c.startswith("metric.") and pd.notna(v)
        }
        derived, lines = plugins.derived_metrics(metrics)
        rows.append(
            {f"metric.{k}": v for k, v in derived.items() if f"metric.{k}" not in df.columns}
        )
        notes += lines
    extra = pd.DataFrame(rows, index=df.index)
    return (pd.concat([df, extra], axis=1) if len(extra.columns) else df), list(
        dict.fromkeys(notes)
    )


def paragraphs(text: str) -> list[str]:
    """A spec description as paragraphs: blank lines separate them; a literal block's (`|`) lines
    are kept apart, a folded one (`>`) is one line already."""
    parts = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
    return [line.strip() for p in parts for line in p.splitlines() if line.strip()]


def with_labels(df: pd.DataFrame, spec: Spec, profile: str) -> pd.DataFrame:
    """Runs labelled by the spec's current arm names (`labels:` in a zip group): a run's stored
    label is the one it was planned under; its axis values find its arm now."""
    if df.empty:
        return df
    from harness.expand import expand
    from harness.identity import canonical_json

    try:
        names = {canonical_json(r.params): r.arm for r in expand(spec, profile)}
    except ValueError:  # a spec that no longer expands: the stored labels stay
        return df
    params = [c for c in df.columns if c.startswith("param.")]
    arms = []
    for _, row in df.iterrows():
        point = {c[len("param.") :]: row[c] for c in params if not _missing(row[c])}
        reference = not _missing(row.get("reference"))
        arms.append(row["arm"] if reference else names.get(canonical_json(point), row["arm"]))
    return df.assign(arm=arms)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def arm_legend(df: pd.DataFrame) -> pd.DataFrame | None:
    """arm -> its settings ("key=value" per axis), once, for specs that name their arms; None when
    every label already is its settings."""
    params = [c for c in df.columns if c.startswith("param.")]
    rows: dict[str, str] = {}
    for _, row in df[df["reference"].isna()].iterrows() if len(df) else []:
        config = ", ".join(
            f"{c[len('param.') :]}={_fmt_cell(row[c])}" for c in params if not _missing(row[c])
        )
        rows.setdefault(str(row["arm"]), config)
    if all(arm == config for arm, config in rows.items()):
        return None
    return pd.DataFrame([{"arm": a, "settings": c} for a, c in rows.items()])


def flag_damaged(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Finished runs whose stages no longer check out become state "damaged" (out of every
    statistic, which counts state "done" only), and "<arm> seed <s> (<run id>): <stages>" each."""
    from harness.store import damaged_stages

    states, damaged = [], []
    for _, row in df.iterrows():
        bad = (
            damaged_stages(Path(str(row["run_dir"])), not _missing(row.get("reference")))
            if row["state"] == "done"
            else []
        )
        states.append("damaged" if bad else row["state"])
        if bad:
            damaged.append(f"{row['arm']} seed {row['seed']} ({row['run_id']}): {', '.join(bad)}")
    return (df.assign(state=states) if len(df) else df), damaged


def floor_note(summary: pd.DataFrame, metric: str) -> str:
    """A sentence, said before the verdict, when no trained arm beats the best floor row on
    `metric` (then differences between arms are differences between failures), or, failing that,
    the best degenerate row (a static or memorised clip); "" otherwise."""
    from harness.regression_gate import direction_of

    col = f"{metric}.mean"
    if summary.empty or col not in summary:
        return ""
    arms = summary[(summary["role"] == "arm") & summary[col].notna()]
    try:
        higher = direction_of(metric) == "higher"
    except ValueError:
        return ""
    side = "below" if higher else "above"

    def unbeaten(role: str) -> pd.Series | None:
        """The best row of `role` when no arm beats it, else None."""
        rows = summary[summary["role"].astype(str).str.startswith(role) & summary[col].notna()]
        if rows.empty or arms.empty:
            return None
        best = rows.loc[rows[col].idxmax() if higher else rows[col].idxmin()]
        beats = arms[col] > best[col] if higher else arms[col] < best[col]
        return None if beats.any() else best

    floor = unbeaten("floor")
    if floor is not None:
        return (
            f"No arm beats the floor: every arm's {metric} is at or {side} {floor['arm']} "
            f"({floor['role']}, {floor[col]:.4g}), so the arms have not learnt what "
            f"{metric} measures and the comparison below is between failures."
        )
    degenerate = unbeaten("degenerate")
    if degenerate is not None:
        return (
            f"No arm beats a degenerate sample: every arm's {metric} is at or {side} "
            f"{degenerate['arm']} ({degenerate['role']}, {degenerate[col]:.4g}). The arms beat "
            f"the floor but are not yet good models, and the comparison below is between them."
        )
    return ""


def skipped_items(df: pd.DataFrame, runs_root: Path) -> list[str]:
    """One line per training set whose benchmark skipped items (unreadable, too short...): counts
    and the first reasons, from the skipped.jsonl harness.token_shards leaves beside its shards; and
    one for the held-out items the runs' scores leave out (each result's `skipped`)."""
    prints: set[str] = set()
    held_out: dict[str, Any] = {}
    for d in df["run_dir"] if len(df) and "run_dir" in df else []:
        meta = read_json_or_none(Path(str(d)) / "config.json", "its data set is not described")
        if isinstance(meta, dict) and isinstance(meta.get("data"), str):
            prints.add(meta["data"])
        result = read_result(Path(str(d)))
        for row in result.skipped if result is not None else ():
            held_out.setdefault(str(row.get("key")), str(row.get("reason")))
    lines = []
    if held_out:
        reasons = "; ".join(f"{k}: {r}" for k, r in sorted(held_out.items())[:3])
        lines.append(
            f"Held-out data: {len(held_out)} item{'s' * (len(held_out) != 1)} left out of every "
            f"suite the runs are scored on ({reasons}{' ...' if len(held_out) > 3 else ''}; every "
            f"reason: `skipped` in each run's result.json)."
        )
    for fp in sorted(prints):
        path = runs_root / "_cache" / "shards" / fp / "skipped.jsonl"
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, ValueError):
            continue
        if rows:
            used = read_json_or_none(path.parent / "index.json", "the used count is left out") or {}
            count = f"{used['num_clips']} used, " if isinstance(used.get("num_clips"), int) else ""
            reasons = "; ".join(f"{r.get('key')}: {r.get('reason')}" for r in rows[:3])
            lines.append(
                f"Training data {fp}: {count}{len(rows)} item{'s' * (len(rows) != 1)} "
                f"skipped "
                f"({reasons}{' ...' if len(rows) > 3 else ''}; every reason: "
                f"{os.path.relpath(path, runs_root)} under the runs root)."
            )
    return lines


def report_owner_error(out: Path, spec: Spec, runs_root: Path) -> str | None:
    """Why `out` may not take the report of `spec` on `runs_root`: it holds the report of another
    spec file or runs root that still exists (a copied spec, or the same spec run on a scratch
    runs root, must not overwrite it); None when it may (see claim_report_dir)."""
    from harness.store import spec_source

    if spec.source.startswith("<"):  # a spec made in memory names no file and claims nothing
        return None
    try:
        theirs = json.loads((out / "source.json").read_text())
        owner = (out.resolve() / theirs["spec"]).resolve()
        their_root = (out.resolve() / theirs["runs_root"]).resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # a report whose spec file or runs root is gone is nobody's: the new one takes its place
    if not (owner.is_file() and their_root.is_dir()) or (owner, their_root) == (
        Path(spec_source(spec.source)).resolve(),
        runs_root.resolve(),
    ):
        return None
    return (
        f"{out}: holds the report of spec file {owner} on runs root {their_root}; expected the "
        f"report of {spec.source} on runs root {runs_root} to go elsewhere: pass --reports-dir, or "
        f"delete {out} to give it to this spec file and runs root"
    )


def claim_report_dir(out: Path, spec: Spec, runs_root: Path) -> None:
    """Record in `out`/source.json which spec file and runs root its report comes from;
    ValueError when it holds another's (report_owner_error)."""
    from harness.store import spec_source

    if spec.source.startswith("<"):
        return
    problem = report_owner_error(out, spec, runs_root)
    if problem:
        raise ValueError(problem)
    out.mkdir(parents=True, exist_ok=True)
    here = out.resolve()
    # paths relative to the report: a committed report names no path of the machine that made it
    mine = {
        "spec": os.path.relpath(spec_source(spec.source), here),
        "runs_root": os.path.relpath(runs_root, here),
    }
    atomic_write_bytes(out / "source.json", (json.dumps(mine, indent=1) + "\n").encode())


def verdict(spec: Spec, df: pd.DataFrame) -> Comparison | None:
    """The spec's verdict on the runs in `df` (None without report.headline or report.primary)."""
    headline = spec.report.headline or (spec.report.primary.metric if spec.report.primary else None)
    if not headline:
        return None
    within = spec.report.compare_within
    if within:
        partners = next((tuple(zip_keys(g)) for g in spec.zip if within in g), ())
        return compare_within(
            df,
            headline,
            spec.report.baseline,
            within,
            partners,
            spec.report.primary,
            spec.report.trend,
        )
    return headline_comparison(df, headline, spec.report.baseline, spec.report.primary)


def replicate_agreement(
    spec: Spec, runs_root: Path, profile: str, df: pd.DataFrame, comparison: Comparison
) -> tuple[str, pd.DataFrame, str] | None:
    """(sentence, per-claim table, fresh seeds) of the spec's replicate (`python -m harness
    replicate`) against `comparison`; None when the replicate has no finished run."""
    from harness.replicate import replicate_name

    rep = load_results(runs_root, replicate_name(spec.name), profile)
    rep = rep[rep["reference"].isna()] if len(rep) else rep
    if rep.empty or not (rep["state"] == "done").any():
        return None
    rep = with_derived(rep)[0]
    seeds = ", ".join(str(s) for s in sorted(set(rep["seed"])))
    replicate = verdict(spec, rep)
    pooled = verdict(spec, pd.concat([df, rep], ignore_index=True))
    if replicate is None or pooled is None:
        return None
    text, table = agreement(comparison, replicate, pooled, seeds)
    return text, table, seeds


def replicate_blocks(
    spec: Spec, runs_root: Path, profile: str, df: pd.DataFrame, comparison: Comparison
) -> list[Block]:
    """The agreement of the spec's replicate (`python -m harness replicate`), when one has runs."""
    return agreement_blocks(
        spec, runs_root, profile, replicate_agreement(spec, runs_root, profile, df, comparison)
    )


def agreement_blocks(
    spec: Spec, runs_root: Path, profile: str, agreement: tuple[str, pd.DataFrame, str] | None
) -> list[Block]:
    """The replicate's agreement as the report shows it (nothing without a replicate)."""
    from harness.replicate import replicate_name

    if agreement is None:
        return []
    return [
        Block("p", agreement[0] + f" Runs: {runs_root / replicate_name(spec.name) / profile}."),
        Block("table", table=agreement[1]),
    ]


VERDICT_FILE = "verdict.json"  # the verdict's tests, machine-readable (harness.findings reads it)


def verdict_record(
    spec: Spec,
    profile: str,
    df: pd.DataFrame,
    comparison: Comparison | None,
    agreement: tuple[str, pd.DataFrame, str] | None,
    other_tests: Sequence[Claim] = (),
) -> dict[str, Any]:
    """What verdict.json holds: the spec, profile and code commit the report was made at, the
    seeds of its finished trained runs, and every test of the verdict (arm against the baseline,
    or `other_tests`: a search's points against its best trial, a scaling fit's slopes;
    statistic, where along report.compare_within, the difference with the interval the report
    prints, p (Holm-adjusted for a family), the call, the minimum detectable effect) with the
    replicate's agreement per test when a replicate has runs."""
    from harness.identity import code_version

    trained = df[df["reference"].isna() & (df["state"] == "done")] if len(df) else df
    agrees: dict[
        str, bool
    ] = {}  # claim label -> the replicate agrees (harness.comparison.agreement)
    if agreement is not None:
        for _, row in agreement[1].iterrows():
            agrees[row["claim"].removeprefix("primary: ")] = row["agrees"] == "yes"

    def test(c: Claim) -> dict[str, Any]:
        shown = c.shown or c.difference
        comps = c.difference.components
        mde = comps.mde(alpha=c.alpha) if comps is not None and comps.seeds >= 2 else None
        return {
            "label": c.label(),
            "arm": c.arm,
            "metric": c.metric,
            "statistic": c.statistic,
            "level": c.level,
            "where": c.where,
            "interaction": c.interaction,
            "primary": c.primary,
            "difference": _finite(shown.mean),
            "low": _finite(shown.low),
            "high": _finite(shown.high),
            "interval": shown.fmt(signed=True),
            "p": _finite(c.p),
            "alpha": c.alpha,
            "significant": c.significant,
            "better_if_positive": c.better_if_positive,
            "call": c.call(),
            "mde": _finite(mde),
            "seeds": c.difference.seeds,
            "prompts": c.difference.clips,
            "replicate_agrees": agrees.get(c.label()),
        }

    code = code_version()
    return {
        "spec": spec.name,
        "profile": profile,
        "commit": str(code["commit"])[:10] + ("+dirty" if code["dirty"] else ""),
        "headline": spec.report.headline,
        "baseline": spec.report.baseline,
        "compare_within": spec.report.compare_within,
        "seeds": sorted(int(s) for s in set(trained["seed"])) if len(trained) else [],
        "replicate_seeds": agreement[2] if agreement is not None else None,
        "tests": [test(c) for c in (comparison.claims if comparison is not None else [])]
        + [test(c) for c in other_tests],
    }


def _finite(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def render_report(
    spec: Spec | str | Path, runs_root: str | Path, profile: str, out_dir: str | Path | None = None
) -> Path:
    """Render the report of `spec` under `profile`; returns the path of report.md."""
    from harness.regression_gate import require_runs

    spec = as_spec(spec)
    runs_root = Path(runs_root)
    out = Path(out_dir) if out_dir is not None else Path("reports") / spec.name / profile
    df = load_results(runs_root, spec.name, profile)
    require_runs(df, spec, runs_root, profile)
    claim_report_dir(out, spec, runs_root)
    df = with_labels(df, spec, profile)
    df, damaged = flag_damaged(df)
    df, derived_notes = with_derived(df)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    metrics = spec.report.metrics or tables.metric_columns(df)
    summary = tables.summarise(df, metrics)
    figures = tables.paper_figures(spec.name, spec.report.paper)
    # run directories relative to the runs root: a committed report names no path of the machine that made it
    portable = (
        df.assign(run_dir=[os.path.relpath(d, runs_root) for d in df["run_dir"]]) if len(df) else df
    )
    export_results(portable, out / "results.csv")
    export_results(portable, out / "results.parquet")
    export_results(summary, out / "summary.csv")

    n_failed = int((df["state"] == "failed").sum()) if len(df) else 0
    blocks = [Block("p", para) for para in paragraphs(spec.description)]
    n_done = int((df["state"] == "done").sum()) if len(df) else 0
    n_damaged = f", {len(damaged)} damaged" if damaged else ""
    blocks.append(
        Block(
            "p",
            f"Profile: {profile}. Runs: {len(df)} ({n_done} done, {n_failed} "
            f"failed{n_damaged}). "
            f"Spec: {spec.source}. Runs root: {runs_root}.{wall_time(df)}",
        )
    )
    if damaged:
        blocks.append(
            Block(
                "p",
                "Damaged runs, left out of every table and plot (their stored "
                "outputs no longer match their checksums; `python -m harness run` "
                "recomputes them): " + "; ".join(damaged) + ".",
            )
        )
    blocks += [Block("p", note) for note in skipped_items(df, runs_root)]
    legend = arm_legend(df)
    if legend is not None:
        blocks += [Block("h2", "Arms"), Block("table", table=legend)]
    trained = [str(a) for a in df.loc[df["reference"].isna(), "arm"]] if len(df) else []
    colours = plots.arm_colours(trained)  # one colour per arm in every plot
    headline = spec.report.headline or (spec.report.primary.metric if spec.report.primary else None)
    comparison = verdict(spec, df)
    agreement = None
    other_tests: list[Claim] = []  # the search's and the scaling fit's tests, for verdict.json
    study = _study(spec, runs_root, profile)
    if comparison is not None:
        blocks += [Block("h2", f"Verdict ({headline})")]
        floor = floor_note(summary, headline) if headline else None
        blocks += [Block("p", floor)] if floor else []
        blocks += [Block("p", v) for v in comparison.verdicts]
        agreement = replicate_agreement(spec, runs_root, profile, df, comparison)
        blocks += agreement_blocks(spec, runs_root, profile, agreement)
        if comparison.claims:
            blocks += [
                Block(
                    "p",
                    "Every test of the verdict with its power (MDE: the smallest "
                    "true difference its test detects with 80% power at its alpha "
                    "and the spec's seeds and prompts, from the measured variance "
                    "components):",
                ),
                Block("table", table=power_table(comparison.claims)),
            ]
        if not comparison.per_seed.empty:
            blocks += [
                Block(
                    "p",
                    f"{headline} per seed (mean over prompts) and the arm's mean with its 95% "
                    "interval (seeds and prompts crossed):",
                ),
                Block("table", table=comparison.per_seed),
            ]
    elif study is not None and spec.search is not None:
        text, other_tests = search_claims(study, df, spec.search.objective)
        blocks += [Block("h2", f"Verdict (search, {spec.search.objective})")]
        blocks += [Block("p", p) for p in text]
    else:
        blocks.append(
            Block("p", "No verdict: set report.headline (and report.baseline) in the spec.")
        )
    blocks += [
        Block("h2", "Results per arm (mean [95% t interval over seeds]; none for one seed)"),
        Block(
            "p",
            "Rows ref:* are the reference generators: real clips and tokenizer reconstructions are "
            "ceilings, a static clip and a memoriser of the nearest training clip are degenerate "
            "samples a good model must beat, shuffled prompts and random tokens are floors.",
        ),
    ]
    shared = shared_models(df)
    if shared:
        blocks.append(
            Block(
                "p",
                "Arms sharing one trained model (they differ only in sampling or scoring "
                "settings, so the model was trained once): " + "; ".join(shared) + ".",
            )
        )
    groups = tables.metric_groups(metrics)
    for task, names in groups.items():  # one table per sampled task keeps each readable
        if len(groups) > 1:
            blocks.append(Block("p", f"Task: {task}"))
        blocks.append(Block("table", table=tables.display_table(summary, names)))
    blocks += [Block("p", note) for note in derived_notes]
    if figures:
        blocks += [
            Block("h2", f"Paper reference figures ({tables.PAPER_NOTE})"),
            Block("table", table=tables.paper_table(figures)),
        ]

    # report.plots, when the spec sets it, picks the plots; otherwise every plot the data allows
    chosen = set(spec.report.plots) if "plots" in spec.report.model_fields_set else None

    def wanted(kind: str) -> bool:
        return chosen is None or kind in chosen

    def add_plot(name: str, fig: Any, caption: str) -> None:
        if fig is None:
            return
        png = plots.to_png(fig)
        atomic_write_bytes(out / "plots" / f"{name}.png", png)
        blocks.append(Block("img", caption, png=png, file=f"plots/{name}.png"))

    blocks.append(Block("h2", "Plots"))
    x = _axis(spec, summary)
    if x and wanted("metric_vs_param"):
        flat = plots.flat_metrics(summary, metrics)
        shown = [m for m in metrics if m not in flat]
        add_plot("metric_vs_param", plots.metric_vs_param(summary, x, shown), f"metrics vs {x}")
        if flat:
            blocks.append(
                Block(
                    "p",
                    f"Not plotted against {x}: every arm shares these metrics "
                    f"(arm means within 0.5%): {', '.join(flat)}.",
                )
            )
    if study is not None and spec.search is not None:
        blocks += [
            Block(
                "p",
                f"Optuna study {study.study_name} ({spec.search.sampler} sampler, seed "
                f"{spec.search.sampler_seed}; objective {spec.search.objective}, {spec.search.direction}, "
                f"a trial's value is the mean over its seeds, se its standard error over them):",
            ),
            Block("table", table=trial_table(study)),
        ]
    if (
        study is not None
        and spec.search is not None
        and (wanted("optimization_history") or wanted("contour"))
    ):
        for name, fig in plots.optuna_figures(
            study,
            ("path.c", "path.alpha")
            if {"path.c", "path.alpha"} <= set(spec.search.params)
            else None,
        ).items():
            if wanted(name):
                add_plot(name, fig, f"Optuna {name.replace('_', ' ')} ({study.study_name})")
            else:
                plots.plt.close(fig)
    if wanted("linearity"):
        curves, why = _linearity(spec, runs_root, profile, df, study)
        add_plot(
            "linearity", plots.linearity(curves, colours), "mean corruption distance vs t per path"
        )
        if why:
            blocks.append(Block("p", why))
    if headline and wanted("learning_curves"):
        curves = curve_summary(curve_frame(df, headline), metric_range(headline))
        add_plot(
            "learning_curves",
            plots.learning_curves(curves, headline, _tokens_per_step(df), colours),
            f"{headline} against training steps per arm",
        )
        if not curves.empty and curves["step"].nunique() > 1:
            table = curves.assign(
                value=[
                    stats.Estimate(m, lo, hi, int(n), 1).fmt()
                    for m, lo, hi, n in zip(
                        curves["mean"], curves["low"], curves["high"], curves["seeds"]
                    )
                ]
            )
            wide = table.pivot(index="arm", columns="step", values="value")
            wide.columns = [f"step {c}" for c in wide.columns]  # no unnamed column-name header row
            blocks.append(Block("table", table=wide.reset_index()))
    denoise = denoise_table(df)
    if not denoise.empty and wanted("denoising"):
        blocks += [
            Block(
                "p",
                "Held-out cross-entropy of the final model at fixed noise levels (every frame "
                "corrupted to t; mean over seeds, nats): how hard each path makes each noise level.",
            )
        ]
        add_plot(
            "denoising", plots.denoising(denoise, colours), "held-out cross-entropy per noise level"
        )
        blocks.append(Block("table", table=denoise))
    if spec.report.scaling:
        fitted = scaling.fits(df, summary, spec.report.scaling)
        if fitted.empty:
            blocks.append(
                Block(
                    "p",
                    "Scaling: fewer than two model sizes with a recorded parameter "
                    "count (stages/train/done.json), so no slope.",
                )
            )
        else:
            gap = scaling.share_gap(df, fitted)
            blocks += [
                Block("p", scaling.verdict(fitted, gap)),
                Block("table", table=scaling.table(fitted)),
            ]
            other_tests += scaling.claims(fitted) + ([gap] if gap is not None else [])
            if wanted("scaling"):
                add_plot(
                    "scaling",
                    plots.scaling(summary, scaling.parameters(df), fitted),
                    "metrics against log10 non-embedding parameters, with the fitted slope",
                )
    if wanted("loss_curves"):
        add_plot("loss_curves", plots.loss_curves(df, colours=colours), "training loss per run")

    strips = _strips(df) if wanted("frame_strips") else []
    if strips:
        blocks.append(Block("h2", "Samples (frame strips, first finished seed per arm)"))
        (out / "strips").mkdir(exist_ok=True)
        for arm, task, png_path, prompts in strips:
            name = f"{''.join(ch if ch.isalnum() else '_' for ch in arm)}_{task}.png"
            png = png_path.read_bytes()
            atomic_write_bytes(out / "strips" / name, png)
            rows = "; ".join(f"row {i + 1}: {p!r}" for i, p in enumerate(prompts))
            blocks.append(
                Block(
                    "img",
                    f"{arm} — {task}" + (f" (prompts, {rows})" if rows else ""),
                    png=png,
                    file=f"strips/{name}",
                )
            )

    run_table, configs = _run_table(df)
    blocks += [
        Block("h2", "Runs (config, code version, data fingerprint)"),
        Block("table", table=run_table),
        *configs,
    ]
    perf = out.parent.parent / "perf"
    if perf.is_dir() and any(perf.iterdir()):
        blocks += [
            Block("h2", "Performance benchmarks"),
            Block(
                "p",
                "See "
                + ", ".join(f"../../perf/{p.name}" for p in sorted(perf.iterdir()) if p.is_file()),
            ),
        ]

    record = verdict_record(spec, profile, df, comparison, agreement, other_tests)
    atomic_write_bytes(out / VERDICT_FILE, (json.dumps(record, indent=1) + "\n").encode())
    title = f"{spec.name} — {profile}"
    atomic_write_bytes(out / "report.md", to_markdown(title, blocks).encode())
    atomic_write_bytes(out / "report.html", to_html(title, blocks).encode())
    return out / "report.md"
