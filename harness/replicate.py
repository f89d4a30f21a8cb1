"""`python -m harness replicate SPEC --seeds 11-15`: a spec rerun on fresh seeds, in runs of its
own.

Layout: a replicate's runs are the runs of spec name `<name>.replicate` in the same runs root
(`<runs_root>/<name>.replicate/<profile>/`, owned in its manifest by the same spec file), so
they never mix with the original's runs, `status` / `reset` / `ls` see them as one more spec, and
the original's report finds them by name. A spec has one replicate per profile: rerunning
`replicate` with other seeds makes those seeds the replicate (its manifest lists the latest
expansion, as `run` does). Seeds the original uses under that profile are refused.

The original's report then carries the agreement, per claim: the replicate's estimate, same
sign, overlapping intervals and the pooled estimate of both seed sets (harness.comparison.agreement).
"""

from __future__ import annotations

import re

from harness.expand import apply_profile
from harness.spec import MAX_NAME, Spec

SUFFIX = ".replicate"


def replicate_name(name: str) -> str:
    """The spec name the replicate's runs are stored under."""
    return name + SUFFIX


def parse_seeds(text: str) -> list[int]:
    """ "11-15", "11,12,20" or "11-13,20" -> the seeds, in order; ValueError on anything else."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(
                f"--seeds {text!r}: expected seeds as ranges and numbers, e.g. 11-15 or 11,12,20, "
                f"got {part.strip()!r}"
            )
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi - lo > 10_000:
            raise ValueError(
                f"--seeds {text!r}: expected at most 10,001 seeds in a range, got {hi - lo + 1:,}"
            )
        seeds += range(lo, hi + 1)
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ValueError(f"--seeds {text!r}: expected each seed once, got {twice[0]} twice")
    return seeds


def replicate_spec(spec: Spec, profile: str, seeds: list[int]) -> Spec:
    """`spec` under the replicate's name with `seeds` (the profile's own `seeds` override dropped);
    ValueError when a seed is one the original uses under `profile`, or the name gets too long."""
    original = apply_profile(spec, profile)[0].seeds
    shared = sorted(set(seeds) & set(original))
    if shared:
        raise ValueError(
            f"--seeds: expected seeds {spec.name!r} does not use under profile {profile} (it uses "
            f"{', '.join(map(str, original))}), got {', '.join(map(str, shared))}: a replicate "
            f"needs fresh seeds, or it repeats the original's runs"
        )
    name = replicate_name(spec.name)
    if len(name) > MAX_NAME:
        raise ValueError(
            f"{spec.source}: name: expected a name of at most {MAX_NAME - len(SUFFIX)} characters "
            f"to replicate (the replicate's runs are stored as {name!r}), got {len(spec.name)}"
        )
    profiles = {p: {k: v for k, v in o.items() if k != "seeds"} for p, o in spec.profiles.items()}
    return spec.model_copy(update={"name": name, "seeds": list(seeds), "profiles": profiles})
