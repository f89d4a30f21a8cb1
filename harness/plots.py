"""Report plots (matplotlib, Agg backend): metric vs an axis, loss curves, Optuna history and
(c, alpha) contour, and mean corruption distance vs t per path (linearity).

Every function returns a `Figure` (or None when there is nothing to draw); `to_png` renders it.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports render on CI machines and cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

Colour = tuple[float, float, float, float]


def arm_colours(arms: list[str]) -> dict[str, Colour]:
    """One colour per trained arm, in the report's arm order, for every plot of a report (tab10,
    tab20 beyond ten arms); curves that are not arms (references, untrained paths) draw in grey."""
    cmap = plt.get_cmap("tab10" if len(arms) <= 10 else "tab20")
    return {arm: cmap(i % cmap.N) for i, arm in enumerate(dict.fromkeys(arms))}


def _colour(colours: dict[str, Colour] | None, label: str, i: int) -> Colour | str:
    """The arm's colour; a label that is no arm gets a grey (when the arms have colours)."""
    if colours is None:
        return plt.get_cmap("tab10")(i % 10)
    return colours.get(label, ("0.15", "0.45", "0.65")[i % 3])


def flat_metrics(summary: pd.DataFrame, metrics: list[str], rel: float = 0.005) -> list[str]:
    """Metrics every trained arm shares: arm means within `rel` (0.5%) of their size, so a panel
    of them would draw noise as if it were an effect."""
    trained = summary[summary["role"] == "arm"] if "role" in summary else summary.iloc[:0]
    flat = []
    for m in metrics:
        if f"{m}.mean" not in trained:
            continue
        mean = pd.to_numeric(trained[f"{m}.mean"], errors="coerce").dropna()
        if len(mean) > 1 and mean.max() - mean.min() <= rel * max(mean.abs().max(), 1e-12):
            flat.append(m)
    return flat


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render and close a figure; returns PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _grid(n: int, width: float = 4.2, height: float = 3.2) -> tuple[Figure, list[Any]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def scaling(summary: pd.DataFrame, sizes: dict[str, int], fitted: pd.DataFrame) -> Figure | None:
    """One panel per group of `fitted` (harness.scaling.fits): each metric's arm means +- 95% CI
    against log10 non-embedding parameters (`sizes`: {arm: count}) and its fitted slope (a line
    through the mean of the points)."""
    if fitted.empty or not sizes:
        return None
    groups = list(dict.fromkeys(fitted["group"]))
    fig, axes = _grid(len(groups))
    arms = sorted(sizes, key=sizes.get)
    x = [math.log10(sizes[a]) for a in arms]
    rows = summary.set_index("arm") if "arm" in summary else summary
    for ax, group in zip(axes, groups):
        for i, (_, f) in enumerate(fitted[fitted["group"] == group].iterrows()):
            m = f["metric"]
            if f"{m}.mean" not in rows or not all(a in rows.index for a in arms):
                continue
            mean = [float(rows.loc[a, f"{m}.mean"]) for a in arms]
            err = [
                [
                    max(mu - float(rows.loc[a, f"{m}.low"]), 0.0)
                    if pd.notna(rows.loc[a, f"{m}.low"])
                    else 0.0
                    for a, mu in zip(arms, mean)
                ],
                [
                    max(float(rows.loc[a, f"{m}.high"]) - mu, 0.0)
                    if pd.notna(rows.loc[a, f"{m}.high"])
                    else 0.0
                    for a, mu in zip(arms, mean)
                ],
            ]
            colour = plt.get_cmap("tab10")(i % 10)
            ax.errorbar(x, mean, yerr=err, marker="o", capsize=3, ls="none", color=colour)
            x0, y0, b = sum(x) / len(x), sum(mean) / len(mean), f["slope"].mean
            ax.plot(
                [x[0], x[-1]],
                [y0 + b * (x[0] - x0), y0 + b * (x[-1] - x0)],
                color=colour,
                label=f"{m} ({b:+.3g}/decade)",
            )
        ax.set_xlabel("log10 non-embedding parameters", fontsize=8)
        ax.set_title(group, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return fig


def metric_vs_param(summary: pd.DataFrame, x: str, metrics: list[str]) -> Figure | None:
    """Mean +- 95% CI of each metric against numeric axis `x` (a `param.<key>` column), one line per
    value of the other axes; reference rows drawn as horizontal dashed lines."""
    col = f"param.{x}"
    if col not in summary or not metrics:
        return None
    trained = summary[summary["role"] == "arm"].copy()
    trained[col] = pd.to_numeric(trained[col], errors="coerce")
    trained = trained.dropna(subset=[col])
    if trained.empty:
        return None
    # separate lines only for axes that vary at a fixed x (zip partners of x move with it)
    others = [
        c
        for c in summary.columns
        if c.startswith("param.")
        and c != col
        and trained.groupby(col)[c].nunique(dropna=False).max() > 1
    ]
    refs = summary[summary["role"] != "arm"]
    ref_styles = [(":", "0.35"), ("--", "0.5"), ("-.", "0.6"), ((0, (1, 3)), "0.7")]
    fig, axes = _grid(len(metrics))
    for ax, m in zip(axes, metrics):
        for key, group in trained.groupby(others, dropna=False) if others else [((), trained)]:
            group = group.sort_values(col)
            label = ", ".join(
                f"{o[6:]}={v}" for o, v in zip(others, key if isinstance(key, tuple) else (key,))
            )
            mean = group[f"{m}.mean"]
            err = [
                (mean - group[f"{m}.low"]).fillna(0.0).clip(lower=0),
                (group[f"{m}.high"] - mean).fillna(0.0).clip(lower=0),
            ]
            ax.errorbar(group[col], mean, yerr=err, marker="o", capsize=3, label=label or "trained")
        for (_, ref), (ls, grey) in zip(refs.iterrows(), ref_styles):
            if math.isfinite(ref[f"{m}.mean"]):
                ax.axhline(
                    ref[f"{m}.mean"],
                    ls=ls,
                    lw=1.0,
                    color=grey,
                    label=f"{ref['arm']} ({ref['role']})",
                )
        ax.set_xlabel(x, fontsize=8)
        ax.set_title(m, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes:  # one legend for the figure: a metric may lack a reference row
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    # above the panels: a tall figure's bottom legend sits a screen or more below its first panels
    fig.legend(
        handles.values(),
        handles.keys(),
        loc="outside upper center",
        ncols=min(3, len(handles)),
        fontsize=7,
    )
    fig.suptitle(f"metrics vs {x} (mean, 95% t interval over seeds)", fontsize=10)
    return fig


def read_losses(run_dir: str | Path) -> pd.DataFrame | None:
    """`<run_dir>/stages/train/losses.csv` (columns step, loss) or None if absent/unreadable."""
    path = Path(run_dir) / "stages" / "train" / "losses.csv"
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    return frame if {"step", "loss"} <= set(frame.columns) and len(frame) else None


def loss_curves(
    runs: pd.DataFrame, smooth: int = 10, colours: dict[str, Colour] | None = None
) -> Figure | None:
    """Training loss vs step per run (running mean over `smooth` steps), one colour per arm."""
    curves = [
        (r["arm"], r["seed"], read_losses(r["run_dir"]))
        for _, r in runs.iterrows()
        if r.get("run_dir")
    ]
    curves = [c for c in curves if c[2] is not None]
    if not curves:
        return None
    colours = colours or arm_colours([arm for arm, _, _ in curves])
    fig, ax = plt.subplots(figsize=(7, 4))
    labelled: set[str] = set()
    for arm, _seed, frame in curves:
        loss = (
            frame["loss"].rolling(max(1, min(smooth, len(frame) // 5 or 1)), min_periods=1).mean()
        )
        ax.plot(
            frame["step"],
            loss,
            color=_colour(colours, arm, 0),
            lw=1.2,
            alpha=0.85,
            label=None if arm in labelled else arm,
        )
        labelled.add(arm)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("training loss (running mean)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def optuna_figures(study: Any, params: tuple[str, str] | None = None) -> dict[str, Figure]:
    """Optimisation history and, with >= 2 parameters, the contour of the first two (or `params`)."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not finished:
        return {}
    figs: dict[str, Figure] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna.visualization.matplotlib is flagged experimental
        figs["optimization_history"] = ovm.plot_optimization_history(study).figure
        names = sorted({p for t in finished for p in t.params})
        pair = list(params) if params else names[:2]
        if len(pair) == 2 and set(pair) <= set(names) and len(finished) >= 2:
            ax = ovm.plot_contour(study, params=pair)
            figs["contour"] = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
    for fig in figs.values():
        fig.set_size_inches(7, 4.5)
    return figs


def linearity(
    curves: dict[str, tuple[list[float], list[float]]], colours: dict[str, Colour] | None = None
) -> Figure | None:
    """Mean corruption distance E d(x_t, x_1) vs t per path (labelled by the arm that trains it,
    in that arm's colour), with the ideal linear reference."""
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, (t, d)) in enumerate(curves.items()):
        ax.plot(t, d, marker=".", label=label, color=_colour(colours, label, i))
    d0 = max(d[0] for _, d in curves.values())
    ax.plot([0, 1], [d0, 0], ls="--", color="grey", lw=0.8, label="linear in t")
    ax.set_xlabel("t")
    ax.set_ylabel("mean distance d(x_t, x_1)")
    ax.set_title("corruption distance vs t (linearity)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def learning_curves(
    summary: pd.DataFrame,
    metric: str,
    tokens_per_step: int | None = None,
    colours: dict[str, Colour] | None = None,
) -> Figure | None:
    """`metric` against training step per arm: mean over seeds with its 95% seed-level t band
    (frame of harness.comparison.curve_summary); a second axis counts visual tokens seen."""
    if summary.empty or summary["step"].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for i, (arm, g) in enumerate(summary.groupby("arm", sort=False)):
        colour = _colour(colours, str(arm), i)
        ax.plot(
            g["step"],
            g["mean"],
            marker="o",
            color=colour,
            label=f"{arm} ({int(g['seeds'].max())} seeds)",
        )
        ax.fill_between(
            g["step"],
            g["low"].fillna(g["mean"]),
            g["high"].fillna(g["mean"]),
            color=colour,
            alpha=0.15,
        )
    ax.set_xlabel("training step")
    ax.set_ylabel(metric)
    if tokens_per_step:
        top = ax.secondary_xaxis(
            "top",
            functions=(lambda s: s * tokens_per_step / 1e6, lambda t: t * 1e6 / tokens_per_step),
        )
        top.set_xlabel("visual tokens seen (millions)", fontsize=8)
    ax.set_title(
        f"{metric} over training (mean, 95% t band over seeds)",
        fontsize=10,
        pad=30 if tokens_per_step else 6,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def denoising(table: pd.DataFrame, colours: dict[str, Colour] | None = None) -> Figure | None:
    """Held-out cross-entropy against noise level t per arm (frame of harness.comparison.denoise_table)."""
    if table.empty:
        return None
    columns = [c for c in table.columns if c.startswith("t=")]
    ts = [float(c[2:]) for c in columns]
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for i, (_, row) in enumerate(table.iterrows()):
        ax.plot(
            ts,
            [row[c] for c in columns],
            marker="o",
            label=row["arm"],
            color=_colour(colours, str(row["arm"]), i),
        )
    ax.set_xlabel("noise level t (0 = pure noise, 1 = clean)")
    ax.set_ylabel("held-out cross-entropy (nats)")
    ax.set_title("denoising difficulty per noise level (mean over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig
