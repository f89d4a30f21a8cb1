"""Spec -> resolved runs: profiles, grid (cartesian), zip (axes moving together) and seeds.

Dotted keys address the run config (`train.shift`, `path.kind`, `model.overrides.hidden_size`).
A profile (smoke / ci / default / full) overrides run-config keys and may also set `seeds`,
`grid.<key>` (an axis' values), `zip` (every zip group, e.g. fewer steps per arm in smoke),
`search.<field>` or `executor.<field>`.
"""

from __future__ import annotations

import copy
import difflib
import functools
import itertools
import json
from typing import Any

from pydantic import BaseModel

from harness import plugins
from harness.identity import canonical_json
from harness.records import RunSpec
from harness.spec import (
    LABELS,
    PROFILES,
    GridAxis,
    RunConfig,
    Section,
    Spec,
    SpecError,
    _short,
    resolve_run,
    validate_model,
    zip_keys,
)

SPEC_LEVEL = ("seeds", "grid", "zip", "search", "executor")


def _is_open(model: type[BaseModel], name: str) -> bool:
    """Keys below an open mapping, a plug-in section or a section whose keys depend on a kind (the
    path: `variant`) are checked when the run is resolved; such a section may be set whole."""
    ann = model.model_fields[name].annotation
    return getattr(ann, "__origin__", None) is dict or ann is Section or hasattr(ann, "variant")


def _model_of(ann: Any) -> type[BaseModel] | None:
    ann = next(
        (
            a
            for a in getattr(ann, "__args__", ())
            if isinstance(a, type) and issubclass(a, BaseModel)
        ),
        ann,
    )
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def dotted_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema below `model`: one per value (inherited fields included), plus
    the open sections (plug-in sections, `model.overrides`, `score.options`), whose keys are checked
    with the whole run."""
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _model_of(field.annotation)
        if sub is Section:
            keys += [key, f"{key}.name"]
        elif sub is not None:
            keys += dotted_keys(sub, f"{key}.")
        else:
            keys.append(key)
    return keys


def _did_you_mean(key: str, keys: list[str]) -> str:
    """ " Did you mean ...?" over every dotted key of the run config: close as a whole, or by the last
    part (`sample.temperature` finds nothing, `trian.steps` finds train.steps, `sample.stpes` finds
    sample.steps and train.steps...)."""
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    by_last: dict[str, list[str]] = {}
    for k in keys:
        by_last.setdefault(k.rsplit(".", 1)[-1], []).append(k)
    for name in difflib.get_close_matches(key.rsplit(".", 1)[-1], list(by_last), n=2, cutoff=0.8):
        close += by_last[name]
    close = list(dict.fromkeys(close))[:4]
    if not close:
        return ""
    others = f" (also close: {', '.join(close[1:])})" if len(close) > 1 else ""
    return f" Did you mean {close[0]!r}?{others}"


def check_key(key: str, where: str, source: str) -> None:
    """Raise SpecError unless `key` is a dotted path into RunConfig."""
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        if part not in model.model_fields:
            prefix = ".".join(parts[:i])
            options = [f"{prefix}.{f}" if prefix else f for f in model.model_fields]
            raise SpecError(
                f"{source}: {where}: unknown run-config key {key!r}.{_did_you_mean(key, dotted_keys())} "
                f"Expected a dotted key such as {', '.join(options[:6])}"
                f"{', ...' if len(options) > 6 else ''}."
            )
        if _is_open(model, part):  # plug-in options / overrides: validated with the whole run
            return
        ann = model.model_fields[part].annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            if i != len(parts) - 1:
                raise SpecError(
                    f"{source}: {where}: key {key!r} goes below {'.'.join(parts[: i + 1])!r}, which is a "
                    f"value, not a section."
                )
            return
        model = ann
    raise SpecError(
        f"{source}: {where}: key {key!r} names a whole section; expected a single value's dotted key."
    )


def set_dotted(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise SpecError(f"cannot set {key!r}: {p!r} is not a section")
    d[parts[-1]] = copy.deepcopy(value)


def base_dict(base: RunConfig) -> dict:
    """The base run config as a dict that axes and profiles set keys on. Its path section holds only
    the keys the spec gave: the defaults of one kind are unknown keys to another (`path.kind: masked`
    over a metric base without c, alpha or calibrate is a masked path)."""
    data = base.model_dump()
    data["path"] = base.path.model_dump(exclude_unset=True)
    return data


def _validate_run(cfg: dict, source: str, where: str) -> RunConfig:
    return resolve_run(cfg, source, where)


SEED_KEYS = ("train.seed", "sample.seed")  # set from the spec's `seeds` for every run


def count_runs(spec: Spec) -> int:
    """grid x zip x seeds, counted without building a run."""
    n = len(spec.seeds)
    for values in spec.grid_values.values():
        n *= len(values)
    for group in spec.zip:
        n *= len(next(iter(group.values()), []))
    return n


def check_run_count(spec: Spec, where: str = "") -> None:
    """Refuse, before any run is built, a spec that expands to more than its `max_runs`.

    `where` prefixes the key named (a profile); the key is the axis with the most values."""
    n = count_runs(spec)
    if n > spec.max_runs:
        factors = [(f"grid.{k}", len(v), f"{len(v):,} ({k})") for k, v in spec.grid_values.items()]
        factors += [
            (
                f"zip[{i}]",
                len(next(iter(g.values()), [])),
                f"{len(next(iter(g.values()), [])):,} (zip[{i}])",
            )
            for i, g in enumerate(spec.zip)
        ]
        factors.append(
            ("seeds", len(spec.seeds), f"{len(spec.seeds):,} seed{'s' * (len(spec.seeds) != 1)}")
        )
        text = " x ".join(f[2] for f in factors)
        text = text if len(text) <= 200 else text[:197] + "..."
        key = max(factors, key=lambda f: f[1])[0]
        raise SpecError(
            f"{spec.source}: {where + '.' if where else ''}{key}: expected at most max_runs = "
            f"{spec.max_runs:,} runs, got {n:,} ({text}); drop values, or raise the limit with a "
            f"top-level `max_runs: {n}` if you mean it."
        )
    if spec.search and spec.search.n_trials * len(spec.seeds) > spec.max_runs:
        n = spec.search.n_trials * len(spec.seeds)
        raise SpecError(
            f"{spec.source}: search.n_trials: expected at most max_runs = {spec.max_runs:,} runs, got "
            f"{n:,} ({spec.search.n_trials:,} trials x {len(spec.seeds)} seeds); lower n_trials, or raise "
            f"the limit with a top-level `max_runs: {n}` if you mean it."
        )


def _check_seed_key(key: str, where: str, source: str) -> None:
    if key in SEED_KEYS:
        raise SpecError(
            f"{source}: {where}: expected a key the spec may vary, got {key!r}, which every run takes "
            f"from the spec's seeds (train.seed = sample.seed = the run's seed); list the seeds under "
            f"`seeds:` instead."
        )


def check_axes(spec: Spec) -> None:
    """Check every grid / zip / profile / search key and each axis value against the base config,
    the run count, and the names report / search refer to (axes, metrics)."""
    check_run_count(spec)
    for key in SEED_KEYS:
        section, field = key.split(".")
        if field in getattr(spec.base, section).model_fields_set:
            _check_seed_key(key, f"base.{key}", spec.source)
    base = base_dict(spec.base)
    configs = [_validate_run(copy.deepcopy(base), spec.source, "base")]
    # (where, key, values, group): a zip axis's j-th value is checked together with its partners' j-th
    # values (they only ever occur together: frames=16 may need speed=0.2 beside it)
    axes = [(f"grid.{k}", k, v, {k: v}) for k, v in spec.grid_values.items()]
    axes += [
        (f"zip[{i}].{k}", k, g[k], {p: g[p] for p in zip_keys(g)})
        for i, g in enumerate(spec.zip)
        for k in zip_keys(g)
    ]
    seen: set[str] = set()
    for where, key, values, group in axes:
        check_key(key, where, spec.source)
        _check_seed_key(key, where, spec.source)
        if key in seen:
            raise SpecError(
                f"{spec.source}: {where}: key {key!r} appears on more than one axis; expected each key once."
            )
        seen.add(key)
        for j in range(len(values)):
            cfg = copy.deepcopy(base)
            for partner, partner_values in group.items():
                if j < len(partner_values):
                    set_dotted(cfg, partner, partner_values[j])
            configs.append(_validate_run(cfg, spec.source, f"{where}[{j}]"))
    if spec.search:
        for key in spec.search.params:
            check_key(key, f"search.params.{key}", spec.source)
            _check_seed_key(key, f"search.params.{key}", spec.source)
            if key in seen:
                raise SpecError(
                    f"{spec.source}: search.params.{key}: also a grid/zip axis; expected each key once."
                )
        for j, point in enumerate(spec.search.enqueue):
            for key in point:
                if key not in spec.search.params:
                    raise SpecError(
                        f"{spec.source}: search.enqueue[{j}].{key}: expected one of the search params "
                        f"{sorted(spec.search.params)}, got {key!r}."
                    )
            cfg = copy.deepcopy(base)
            for key, value in point.items():
                set_dotted(cfg, key, value)
            configs.append(_validate_run(cfg, spec.source, f"search.enqueue[{j}]"))
    arms = {"": arm_points(spec)}
    for profile in spec.profiles:
        resolved, profile_base = apply_profile(spec, profile)
        configs.append(_validate_run(profile_base, spec.source, f"profiles.{profile}"))
        arms[f" (profile {profile})"] = arm_points(resolved)
    check_names(spec, configs)
    check_report_arms(spec, configs, arms)
    check_gpus(spec, configs)


def check_gpus(spec: Spec, configs: list[RunConfig]) -> None:
    """A SLURM job that trains on CUDA runs one task per GPU: tasks_per_node may not exceed
    slurm.gpus_per_node (extra tasks would share a GPU, or find none, and fail at their first
    collective)."""
    ex = spec.executor
    cuda = [c for c in configs if c.train.device.startswith("cuda")]
    if ex.kind == "slurm" and cuda and ex.tasks_per_node > ex.slurm.gpus_per_node:
        raise SpecError(
            f"{spec.source}: executor.tasks_per_node: expected at most executor.slurm.gpus_per_node = "
            f"{ex.slurm.gpus_per_node} for runs that train on {cuda[0].train.device!r} (one task per "
            f"GPU), got {ex.tasks_per_node}; raise gpus_per_node or lower tasks_per_node."
        )


def metric_names(configs: list[RunConfig]) -> list[str]:
    """The result columns the runs of these configs can have: the harness's own metrics and every
    scorer's declared metrics per task (`<task>.<metric>` except for t2v, as harness.stages names them)."""
    names = [m.name for m in plugins.BUILTIN_METRICS]
    for config in configs:
        for task in config.sample.tasks:
            prefix = "" if task == "t2v" else f"{task}."
            for scorer in config.score.which:
                names += [prefix + m.name for m in plugins.SCORERS.get(scorer).metrics]
    return list(dict.fromkeys(names))


def _check_metric(name: str, names: list[str], where: str, spec: Spec) -> None:
    if any(
        name == n or name.startswith(n + "@") for n in names
    ):  # `denoise_ce@t=0.05`: one level of a metric
        return
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    shown = _listing(names)
    raise SpecError(
        f"{spec.source}: {where}: expected a metric the runs report ({shown}), got {_short(name)}.{hint} "
        f"Scorers declare their metrics (python -m harness plugins lists them); tasks other than t2v "
        f"prefix theirs with '<task>.'."
    )


def _listing(items: list[str], n: int = 12) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def check_names(spec: Spec, configs: list[RunConfig]) -> None:
    """report.x and report.trend.axis name axes; report.metrics, report.scaling, report.headline and
    search.objective name metrics the runs report."""
    axes = [
        *spec.grid,
        *(k for g in spec.zip for k in zip_keys(g)),
        *(spec.search.params if spec.search else ()),
    ]
    x = spec.report.x
    if x is not None and x not in axes:
        close = difflib.get_close_matches(x, axes, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise SpecError(
            f"{spec.source}: report.x: expected a key the spec varies (a grid, zip or search key: "
            f"{_listing(axes) or 'this spec varies none'}), got {_short(x)}.{hint}"
        )
    trend = spec.report.trend
    if trend is not None:
        if not spec.report.compare_within:
            raise SpecError(
                f"{spec.source}: report.trend: expected report.compare_within beside it (the trend "
                f"is the change of a slope between that axis' first and last values), got none."
            )
        if trend.axis not in axes or trend.axis == spec.report.compare_within:
            raise SpecError(
                f"{spec.source}: report.trend.axis: expected a numeric key the spec varies other "
                f"than report.compare_within ({_listing(axes) or 'this spec varies none'}), got "
                f"{_short(trend.axis)}."
            )
    names = metric_names(configs)
    for i, metric in enumerate(spec.report.metrics):
        _check_metric(metric, names, f"report.metrics[{i}]", spec)
    for group, metrics in spec.report.scaling.items():
        for i, metric in enumerate(metrics):
            _check_metric(metric, names, f"report.scaling.{group}[{i}]", spec)
    if getattr(spec.report, "headline", None):
        _check_metric(spec.report.headline, names, "report.headline", spec)
    if spec.search:
        _check_metric(spec.search.objective, names, "search.objective", spec)


def apply_profile(spec: Spec, profile: str) -> tuple[Spec, dict]:
    """Return (spec with spec-level overrides applied, base run-config dict with run-level ones)."""
    if profile not in PROFILES:
        raise SpecError(
            f"{spec.source}: --profile: expected one of {', '.join(PROFILES)}, got {profile!r}."
        )
    overrides = spec.profiles.get(profile, {})
    data = spec.model_dump()
    base = base_dict(spec.base)
    data.pop("base")
    for key, value in overrides.items():
        where = f"profiles.{profile}.{key}"
        head = key.split(".")[0]
        if head in SPEC_LEVEL:
            if head == "grid":
                axis = key[len("grid.") :]
                if axis not in data["grid"]:
                    raise SpecError(
                        f"{spec.source}: {where}: expected an existing grid axis "
                        f"({', '.join(data['grid']) or 'none'}), got {axis!r}."
                    )
                data["grid"][axis] = _keep_names(data["grid"][axis], value, spec.source, where)
            elif head == "search" and data["search"] is None:
                raise SpecError(
                    f"{spec.source}: {where}: the spec has no search block to override."
                )
            else:
                set_dotted(data, key, value)
        else:
            check_key(key, where, spec.source)
            _check_seed_key(key, where, spec.source)
            set_dotted(base, key, value)
    new = validate_model(Spec, {**data, "base": base}, spec.source, f"profiles.{profile}")
    if overrides:
        check_run_count(new, f"profiles.{profile}")
    _validate_run(copy.deepcopy(base), spec.source, f"profiles.{profile}")
    return new, base


def _keep_names(axis: Any, values: Any, source: str, where: str) -> Any:
    """A profile's plain list for a named grid axis keeps the names the spec gave those values
    (a smoke profile that drops values keeps its arms' labels); a value without one is an error."""
    if not (isinstance(axis, dict) and isinstance(values, list)):
        return values
    key = functools.partial(json.dumps, sort_keys=True, default=repr)
    names = {key(v): name for v, name in zip(axis["values"], axis[LABELS])}
    unnamed = [v for v in values if key(v) not in names]
    if unnamed:
        raise SpecError(
            f"{source}: {where}: expected values the spec's axis names ({_short(axis['values'])}), "
            f"or {{values: [...], {LABELS}: [...]}} naming new ones, got {_short(unnamed[0])}, "
            f"which has no label."
        )
    return {"values": values, LABELS: [names[key(v)] for v in values]}


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def flat_params(params: dict[str, Any]) -> dict[str, Any]:
    """Axis values with a whole section set (`path: {kind: masked}`) as its dotted keys
    (`path.kind: masked`): how runs record, label and report them."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and hasattr(
            getattr(RunConfig.model_fields.get(key), "annotation", None), "variant"
        ):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def arm_label(params: dict[str, Any]) -> str:
    """An unnamed arm's label: its axis values as `key=value` parts (numbers as %g: 1.0 prints 1)."""
    return ", ".join(f"{k}={_fmt(v)}" for k, v in flat_params(params).items()) or "base"


def arm_points(spec: Spec) -> list[tuple[str, dict[str, Any]]]:
    """(label, axis values) of every arm of `spec` (grid x zip), in the order `expand` makes
    them; a named grid value's or zip point's `labels:` entry stands in for its `key=value` parts."""
    # each axis point: (its name from `labels:` or None, its (key, value) pairs)
    axes = [
        [
            (a.labels[j] if isinstance(a, GridAxis) else None, ((k, v),))
            for j, v in enumerate(spec.grid_values[k])
        ]
        for k, a in spec.grid.items()
    ]
    axes += [
        [
            (g[LABELS][j] if LABELS in g else None, tuple((k, g[k][j]) for k in zip_keys(g)))
            for j in range(len(g[zip_keys(g)[0]]))
        ]
        for g in spec.zip
    ]
    points = []
    for point in itertools.product(*axes):
        params, parts, unnamed = {}, [], {}
        for name, pairs in point:
            params.update(pairs)
            if name is None:  # consecutive unnamed axes read as one `key=value, ...` run of parts
                unnamed.update(pairs)
                continue
            parts += [arm_label(unnamed)] if unnamed else []
            parts.append(name)
            unnamed = {}
        parts += [arm_label(unnamed)] if unnamed else []
        points.append((", ".join(parts) or "base", params))
    return points


def make_run(
    spec: Spec, profile: str, base: dict, params: dict[str, Any], seed: int, arm: str | None = None
) -> RunSpec:
    """Build one validated run from a base dict, axis values and a seed."""
    cfg = copy.deepcopy(base)
    for key, value in params.items():
        set_dotted(cfg, key, value)
    set_dotted(cfg, "train.seed", seed)
    set_dotted(cfg, "sample.seed", seed)
    run = _validate_run(cfg, spec.source, f"run {params}")
    arm = arm if arm is not None else arm_label(params)
    return RunSpec(
        spec=spec.name, profile=profile, arm=arm, seed=seed, params=flat_params(params), config=run
    )


def expand(spec: Spec, profile: str = "default") -> list[RunSpec]:
    """All grid x zip x seed runs of `spec` under `profile` (search trials are made by the search).

    Refuses more than `max_runs` runs (counted first), and arms that resolve to the same run."""
    spec, base = apply_profile(spec, profile)
    check_run_count(spec, f"profiles.{profile}" if profile in spec.profiles else "")
    runs = [
        make_run(spec, profile, base, params, seed, arm)
        for arm, params in arm_points(spec)
        for seed in spec.seeds
    ]
    check_distinct(spec, runs)
    return runs


def check_distinct(spec: Spec, runs: list[RunSpec]) -> None:
    """Two arms whose runs resolve to the same identity (same config as hashed, same seed) would be
    one run in the store under two labels, so validate and run would disagree on what runs: an error
    naming the axes that change nothing there and the arms that merge."""
    where = {k: f"grid.{k}" for k in spec.grid}
    where |= {k: f"zip[{i}].{k}" for i, g in enumerate(spec.zip) for k in zip_keys(g)}
    seen: dict[tuple[int, str], RunSpec] = {}
    for run in runs:
        first = seen.setdefault((run.seed, canonical_json(run.config.model_dump(mode="json"))), run)
        if first is run:
            continue
        differ = [
            k
            for k in run.params
            if canonical_json(run.params[k]) != canonical_json(first.params.get(k))
        ]
        why = (
            f"{' and '.join(differ) or 'their settings'} resolve to the same config for both "
            f"(e.g. 1 and 1.0); keep one of the values"
        )
        axes = _listing([where.get(k, k) for k in differ]) or "grid"
        raise SpecError(
            f"{spec.source}: {axes}: expected every arm to be a different run, got arms "
            f"{_short(first.arm, 160)} and {_short(run.arm, 160)} that are the same run (seed {run.seed}), "
            f"so they would merge into one: {why}."
        )


def check_report_arms(
    spec: Spec, configs: list[RunConfig], arms: dict[str, list[dict[str, Any]]]
) -> None:
    """report.baseline and report.primary.arm name an arm (a label or `key=value` parts of one)
    under the spec and every profile; report.primary names a metric and a learning curve to read.

    `arms`: {" (profile P)" or "": the arms' axis values}. An arm of a search trial is not known
    before the search, so a spec with `search:` and no grid or zip is checked for metrics only."""
    report, primary = spec.report, spec.report.primary
    if primary is not None:
        if primary.metric is not None:
            _check_metric(primary.metric, metric_names(configs), "report.primary.metric", spec)
        elif not report.headline:
            raise SpecError(
                f"{spec.source}: report.primary.metric: expected a metric (or "
                f"report.headline, its default), got neither."
            )
        short = [c for c in configs if len(c.train.snapshots) < 2]
        if primary.statistic != "final" and short:
            raise SpecError(
                f"{spec.source}: report.primary.statistic: {primary.statistic} reads "
                f"each run's learning curve, so it expects base.train.snapshots with 2 "
                f"or more points in the spec and every profile, got "
                f"{short[0].train.snapshots}."
            )
    if spec.search is not None and not spec.grid and not spec.zip:
        return
    named = (("report.baseline", report.baseline), ("report.primary.arm", primary and primary.arm))
    for where, pattern in named:
        for profile, points in arms.items() if pattern is not None else ():
            labels = [label for label, _ in points]
            # a named arm also answers to its `key=value` parts
            parts = [set(label.split(", ")) | set(arm_label(p).split(", ")) for label, p in points]
            if not any(set(pattern.split(", ")) <= have for have in parts):
                shown = "; ".join(labels[:8]) + ("; ..." if len(labels) > 8 else "")
                raise SpecError(
                    f"{spec.source}: {where}: expected an arm{profile}: its label or "
                    f"`key=value` parts of one, got {_short(pattern)}."
                    f"{_arm_hint(pattern, [p for _, p in points])} The arms ({len(labels)}): {shown}."
                )


def _arm_hint(pattern: str, points: list[dict[str, Any]]) -> str:
    """Why `pattern` matches no arm: a number written otherwise (1.0 for 1), a close key or value,
    a key no axis varies, or parts no single arm has together."""
    parts = {f"{k}={_fmt(v)}": (k, v) for p in points for k, v in p.items()}
    axes = list(dict.fromkeys(k for p in points for k in p))
    hints = []
    for part in (p for p in pattern.split(", ") if p not in parts):
        key, eq, value = part.partition("=")
        key = key.strip()
        same = [(text, v) for text, (k, v) in parts.items() if k == key]
        number = next(
            (
                text
                for text, v in same
                if _as_number(value) is not None and _as_number(value) == _as_number(v)
            ),
            None,
        )
        if number is not None:
            hints.append(
                f"{part!r} is written {number!r} in arm labels (numbers print as %g: 1.0 is 1)"
            )
        elif not eq:
            hints.append(f"{part!r} is not a `key=value` part (parts are separated by ', ')")
        elif not same:
            close = difflib.get_close_matches(key, axes, n=1, cutoff=0.6)
            hints.append(
                f"{key!r} is not a key the arms vary ({_listing(axes) or 'none'})"
                + (f"; did you mean {close[0]!r}?" if close else "")
            )
        else:
            close = difflib.get_close_matches(part, [t for t, _ in same], n=1, cutoff=0.8)
            values = _listing([t.partition("=")[2] for t, _ in same])
            hints.append(
                f"no arm has {part!r}; {key} takes {values}"
                + (f"; did you mean {close[0]!r}?" if close else "")
            )
    if not hints:
        hints.append("each part is some arm's, but no single arm has them all")
    text = "; ".join(hints)
    return f" {text[0].upper()}{text[1:]}{'' if text.endswith('?') else '.'}"


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
