"""`python -m harness report SPEC`: tables, plots and samples of one spec + profile.

Writes `reports/<spec>/<profile>/` (or `out_dir`; a smoke run never overwrites the default report): `report.md` (plots and strips as files beside it),
a self-contained `report.html` (images embedded as base64 PNG), `results.csv` / `.parquet`
(one row per run) and `summary.csv` (one row per arm: mean, 95% CI and n per metric).
Missing pieces (no study, no numeric axis, no losses, failed runs) shrink the report; they
never stop it.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness import compare, plots, plugins, stats, tables
from harness.spec import Spec
from harness.specfile import load_spec
from harness.store import export_results, load_results, read_json
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
        lines.append("| " + " | ".join(_fmt_cell(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
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
            out += [f"![{b.text}]({b.file})", ""]
        elif b.kind == "code":
            out += [f"<details><summary>{b.file}</summary>\n\n```json\n{b.text}\n```\n</details>", ""]
    return "\n".join(out)


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;"
        "padding:3px 7px;text-align:left}th{background:#f3f3f3}img{max-width:100%}pre{font-size:11px}"
        ".note{color:#a33}")


def to_html(title: str, blocks: list[Block]) -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for b in blocks:
        if b.kind == "h2":
            out.append(f"<h2>{html.escape(b.text)}</h2>")
        elif b.kind == "p":
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif b.kind == "table" and b.table is not None:
            out.append(b.table.map(_fmt_cell).to_html(index=False, escape=True, border=0))
        elif b.kind == "img" and b.png is not None:
            data = base64.b64encode(b.png).decode()
            out.append(f"<figure><img alt='{html.escape(b.text)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
        elif b.kind == "code":
            out.append(f"<details><summary>{html.escape(b.file)}</summary><pre>{html.escape(b.text)}</pre></details>")
    return "\n".join(out) + "</body></html>\n"


# ----------------------------------------------------------------------------- sections

def _axis(spec: Spec, summary: pd.DataFrame) -> str | None:
    """The x axis for metric-vs-param: report.x, else a numeric varying grid axis (shift first)."""
    if spec.report.x:
        return spec.report.x
    keys = [*spec.grid, *(k for g in spec.zip for k in g)]
    numeric = [k for k in keys if f"param.{k}" in summary
               and pd.to_numeric(summary[f"param.{k}"], errors="coerce").notna().sum() > 1]
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
    """"N runs computed in M min (first start to last finish)", from the runs' result.json."""
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
    """"model <id>: arm a, arm b (seed s)" for every trained model that more than one arm uses."""
    out = []
    runs = df[df["model"].notna() & df["reference"].isna()] if "model" in df else df.iloc[:0]
    for model, group in runs.groupby("model", sort=True):
        arms = sorted(set(group["arm"].astype(str)))
        if len(arms) > 1:
            seeds = ", ".join(str(s) for s in sorted(set(group["seed"])))
            out.append(f"model {model} (seed {seeds}): {', '.join(arms)}")
    return out


def _run_table(df: pd.DataFrame) -> tuple[pd.DataFrame, list[Block]]:
    """Per-run provenance (code version, data fingerprint, error) and each run's config."""
    rows, configs = [], []
    for _, r in df.iterrows():
        cfg_path = Path(str(r.get("run_dir") or "")) / "config.json"
        cfg = read_json(cfg_path) if cfg_path.is_file() else {}
        code = cfg.get("code") or {}
        data = cfg.get("data") or ""  # written by harness.runner.prepare_run_dir
        commit = str(code.get("commit", ""))[:10] + ("+dirty" if code.get("dirty") else "") if code else ""
        rows.append({"run_id": r["run_id"], "arm": r["arm"], "seed": r.get("seed"), "state": r["state"],
                     "model": r.get("model") or "",
                     "code": f"{code.get('package', '')} {commit}".strip(), "data": str(data)[:16],
                     "error": (r.get("error") or "")[:160] if r["state"] != "done" else ""})
        if cfg:
            configs.append(Block("code", json.dumps(cfg, indent=1, sort_keys=True, default=str),
                                 file=f"config of {r['run_id']} ({r['arm']}, seed {r.get('seed')})"))
    return pd.DataFrame(rows), configs


def _study(spec: Spec, runs_root: Path, profile: str) -> Any | None:
    """The spec's Optuna study if one exists in its storage."""
    if spec.search is None:
        return None
    from harness.search import load_existing_study

    return load_existing_study(spec, runs_root, profile)


def corruption_curves(embeddings: Any, metric_params: set[tuple[float, float]], n: int = 2048,
                      seed: int = 0) -> dict[str, tuple[list[float], list[float]]]:
    """{label: (t, mean d(x_t, x_1))} at t = 0, 0.1, ..., 1 for masked, mixture and each metric (c, alpha).

    embeddings: float (K, D) codebook. Monte Carlo over n uniform x_1 (seeded)."""
    import torch

    from ursa.paths import build_path
    from ursa.calibration import mean_corruption_distance

    t = torch.linspace(0, 1, 11)
    paths = [("masked", {}), ("mixture", {})] + [("metric", {"c": c, "alpha": a}) for c, a in sorted(metric_params)]
    curves = {}
    for kind, kw in paths:
        path = build_path(kind, vocab_size=embeddings.shape[0], embeddings=embeddings, **kw)
        d = mean_corruption_distance(path, embeddings, t, n=n, generator=torch.Generator().manual_seed(seed))
        label = kind if not kw else f"metric c={kw['c']:.3g} alpha={kw['alpha']:.3g}"
        curves[label] = (t.tolist(), d.tolist())
    return curves


def _linearity(spec: Spec, runs_root: Path, profile: str, df: pd.DataFrame, study: Any) -> tuple[dict, str]:
    """Corruption curves on the tokenizer of the spec's runs (read from the run cache, never fitted
    here) for masked, mixture and every metric (c, alpha) of the spec and of the best trial."""
    if df.empty or not (runs_root / "_cache").is_dir():
        return {}, "linearity plot skipped: no runs, so no cached tokenizer to measure the paths on"
    try:
        from harness.data import data_for
        from harness.expand import expand

        runs = expand(spec, profile)
        emb = data_for(runs[0].config, runs_root).tokenizer.codebook_embeddings().float()
        params = {(r.config.path.c, r.config.path.alpha) for r in runs if r.config.path.kind == "metric"}
        best = _best_params(study)
        if best and {"path.c", "path.alpha"} <= set(best):
            params.add((best["path.c"], best["path.alpha"]))
        return corruption_curves(emb, params), ""
    except Exception as exc:  # noqa: BLE001 - the report goes on without this plot
        return {}, f"linearity plot unavailable: {type(exc).__name__}: {exc}"


def trial_table(study: Any) -> pd.DataFrame:
    """One row per Optuna trial: number, state, objective value, parameters, source, run ids."""
    rows = [{"trial": t.number, "state": t.state.name, "value": t.value, **t.params,
             "source": t.user_attrs.get("source", "sampler"), "runs": ", ".join(t.user_attrs.get("run_ids", [])),
             "error": t.user_attrs.get("error", "")} for t in study.trials]
    return pd.DataFrame(rows)


def _best_params(study: Any) -> dict[str, Any] | None:
    try:
        return dict(study.best_params) if study is not None else None
    except ValueError:  # no completed trial
        return None


def _strips(df: pd.DataFrame) -> list[tuple[str, str, Path]]:
    """(arm, task, png) of the first finished run of each arm that has frame strips."""
    out = []
    for arm, group in df[df["state"] == "done"].groupby("arm", sort=False):
        for _, r in group.iterrows():
            stages = Path(str(r["run_dir"])) / "stages"
            found = sorted([*(stages / "sample").glob("strip_*.png"), *(stages / "reference").glob("strip_*.png")])
            if found:
                out += [(str(arm), p.stem[len("strip_"):], p) for p in found]
                break
    return out


def with_derived(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`df` plus the metrics scorers derive from each run's metrics (plugins.derived_metrics, e.g.
    VBench's Quality / Total over the dimensions scored) as `metric.*` columns, and their notes."""
    rows, notes = [], []
    for _, row in df.iterrows():
        metrics = {c[len("metric."):]: v for c, v in row.items() if c.startswith("metric.") and pd.notna(v)}
        derived, lines = plugins.derived_metrics(metrics)
        rows.append({f"metric.{k}": v for k, v in derived.items() if f"metric.{k}" not in df.columns})
        notes += lines
    extra = pd.DataFrame(rows, index=df.index)
    return (pd.concat([df, extra], axis=1) if len(extra.columns) else df), list(dict.fromkeys(notes))


def render_report(spec: Spec | str | Path, runs_root: str | Path, profile: str,
                  out_dir: str | Path | None = None) -> Path:
    """Render the report of `spec` under `profile`; returns the path of report.md."""
    from harness.check import require_runs

    spec = as_spec(spec)
    runs_root = Path(runs_root)
    out = Path(out_dir) if out_dir is not None else Path("reports") / spec.name / profile
    df = load_results(runs_root, spec.name, profile)
    require_runs(df, spec, runs_root, profile)
    df, derived_notes = with_derived(df)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    metrics = spec.report.metrics or tables.metric_columns(df)
    summary = tables.summarise(df, metrics)
    figures = tables.paper_figures(spec.name, spec.report.paper)
    # run directories relative to the runs root: a committed report names no path of the machine that made it
    portable = df.assign(run_dir=[os.path.relpath(d, runs_root) for d in df["run_dir"]]) if len(df) else df
    export_results(portable, out / "results.csv")
    export_results(portable, out / "results.parquet")
    export_results(summary, out / "summary.csv")

    n_failed = int((df["state"] == "failed").sum()) if len(df) else 0
    blocks = [Block("p", f"{spec.description.strip()} Profile: {profile}. Runs: {len(df)} "
                         f"({int((df['state'] == 'done').sum()) if len(df) else 0} done, {n_failed} failed). "
                         f"Spec: {spec.source}. Runs root: {runs_root}.{wall_time(df)}")]
    headline = spec.report.headline
    within = spec.report.compare_within
    partners = next((tuple(g) for g in spec.zip if within in g), ())
    comparison = None if not headline else (
        compare.compare_within(df, headline, spec.report.baseline, within, partners) if within
        else compare.compare(df, headline, spec.report.baseline))
    if comparison is not None:
        blocks += [Block("h2", f"Verdict ({headline})"), *[Block("p", v) for v in comparison.verdicts]]
        if not comparison.per_seed.empty:
            blocks += [Block("p", f"{headline} per seed (mean over prompts) and the arm's mean with its 95% "
                                  "bootstrap interval over seeds and prompts:"),
                       Block("table", table=comparison.per_seed)]
    else:
        blocks.append(Block("p", "No verdict: set report.headline (and report.baseline) in the spec."))
    blocks += [Block("h2", "Results per arm (mean [95% bootstrap interval over seeds]; no interval for one seed)"),
               Block("p", "Rows ref:* are the reference generators: real clips and tokenizer reconstructions are "
                          "ceilings, a static clip and a memoriser of the nearest training clip are degenerate "
                          "samples a good model must beat, shuffled prompts and random tokens are floors.")]
    shared = shared_models(df)
    if shared:
        blocks.append(Block("p", "Arms sharing one trained model (they differ only in sampling or scoring "
                                 "settings, so the model was trained once): " + "; ".join(shared) + "."))
    groups = tables.metric_groups(metrics)
    for i, (task, names) in enumerate(groups.items()):  # one table per sampled task keeps each readable
        if len(groups) > 1:
            blocks.append(Block("p", f"Task: {task}"))
        blocks.append(Block("table", table=tables.display_table(summary, names)))
    blocks += [Block("p", note) for note in derived_notes]
    if figures:
        blocks += [Block("h2", f"Paper reference figures ({tables.PAPER_NOTE})"),
                   Block("table", table=tables.paper_table(figures))]

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
        add_plot("metric_vs_param", plots.metric_vs_param(summary, x, metrics), f"metrics vs {x}")
    study = _study(spec, runs_root, profile)
    if study is not None:
        blocks += [Block("p", f"Optuna study {study.study_name} ({spec.search.sampler} sampler, seed "
                              f"{spec.search.sampler_seed}; objective {spec.search.objective}, {spec.search.direction}):"),
                   Block("table", table=trial_table(study))]
    if study is not None and (wanted("optimization_history") or wanted("contour")):
        for name, fig in plots.optuna_figures(study, ("path.c", "path.alpha")
                                              if {"path.c", "path.alpha"} <= set(spec.search.params) else None).items():
            if wanted(name):
                add_plot(name, fig, f"Optuna {name.replace('_', ' ')} ({study.study_name})")
            else:
                plots.plt.close(fig)
    if wanted("linearity"):
        curves, why = _linearity(spec, runs_root, profile, df, study)
        add_plot("linearity", plots.linearity(curves), "mean corruption distance vs t per path")
        if why:
            blocks.append(Block("p", why))
    if headline and wanted("learning_curves"):
        curves = compare.curve_summary(compare.curve_frame(df, headline))
        add_plot("learning_curves", plots.learning_curves(curves, headline, _tokens_per_step(df)),
                 f"{headline} against training steps per arm")
        if not curves.empty and curves["step"].nunique() > 1:
            table = curves.assign(value=[stats.Estimate(m, lo, hi, int(n), 1).fmt() for m, lo, hi, n in
                                         zip(curves["mean"], curves["low"], curves["high"], curves["seeds"])])
            blocks.append(Block("table", table=table.pivot(index="arm", columns="step", values="value").reset_index()))
    denoise = compare.denoise_table(df)
    if not denoise.empty and wanted("denoising"):
        blocks += [Block("p", "Held-out cross-entropy of the final model at fixed noise levels (every frame "
                              "corrupted to t; mean over seeds, nats): how hard each path makes each noise level.")]
        add_plot("denoising", plots.denoising(denoise), "held-out cross-entropy per noise level")
        blocks.append(Block("table", table=denoise))
    if wanted("loss_curves"):
        add_plot("loss_curves", plots.loss_curves(df), "training loss per run")

    strips = _strips(df) if wanted("frame_strips") else []
    if strips:
        blocks.append(Block("h2", "Samples (frame strips, first finished seed per arm)"))
        (out / "strips").mkdir(exist_ok=True)
        for arm, task, png_path in strips:
            name = f"{''.join(ch if ch.isalnum() else '_' for ch in arm)}_{task}.png"
            png = png_path.read_bytes()
            atomic_write_bytes(out / "strips" / name, png)
            blocks.append(Block("img", f"{arm} — {task}", png=png, file=f"strips/{name}"))

    run_table, configs = _run_table(df)
    blocks += [Block("h2", "Runs (config, code version, data fingerprint)"), Block("table", table=run_table), *configs]
    perf = out.parent.parent / "perf"
    if perf.is_dir() and any(perf.iterdir()):
        blocks += [Block("h2", "Performance benchmarks"),
                   Block("p", "See " + ", ".join(f"../../perf/{p.name}" for p in sorted(perf.iterdir()) if p.is_file()))]

    title = f"{spec.name} — {profile}"
    atomic_write_bytes(out / "report.md", to_markdown(title, blocks).encode())
    atomic_write_bytes(out / "report.html", to_html(title, blocks).encode())
    return out / "report.md"
