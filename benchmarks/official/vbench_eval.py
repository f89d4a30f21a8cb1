"""VBench and VBench-I2V (VBench++): run the official package in its own env, then score.

Scores follow the official scripts (VBench scripts/cal_final_score.py, cal_i2v_final_score.py):
each dimension is normalised (x - min) / (max - min) and weighted; group scores are weighted
means; VBench Total = (4 Quality + Semantic) / 5, VBench-I2V Total = (Quality + I2V) / 2.
Values are reported on the leaderboard's 0-100 scale.

Missing dimensions: the official scripts substitute a raw score of 0 (so a missing
temporal_flickering contributes (0 - 0.6293) / 0.3707 < 0). We report group scores over the
dimensions present, list the missing ones, and put the official-script figure beside them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.official.envs import require_env
from benchmarks.official.resources import Resource, require
from harness.env import MARKER, default_env_path, env_python, is_built, site_packages

# name: (min, max, weight) -- VBench scripts/constant.py NORMALIZE_DIC / DIM_WEIGHT.
VBENCH_DIMENSIONS: dict[str, tuple[float, float, float]] = {
    "subject_consistency": (0.1462, 1.0, 1.0),
    "background_consistency": (0.2615, 1.0, 1.0),
    "temporal_flickering": (0.6293, 1.0, 1.0),
    "motion_smoothness": (0.706, 0.9975, 1.0),
    "dynamic_degree": (0.0, 1.0, 0.5),
    "aesthetic_quality": (0.0, 1.0, 1.0),
    "imaging_quality": (0.0, 1.0, 1.0),
    "object_class": (0.0, 1.0, 1.0),
    "multiple_objects": (0.0, 1.0, 1.0),
    "human_action": (0.0, 1.0, 1.0),
    "color": (0.0, 1.0, 1.0),
    "spatial_relationship": (0.0, 1.0, 1.0),
    "scene": (0.0, 0.8222, 1.0),
    "appearance_style": (0.0009, 0.2855, 1.0),
    "temporal_style": (0.0, 0.364, 1.0),
    "overall_consistency": (0.0, 0.364, 1.0),
}
QUALITY = (
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "motion_smoothness",
    "aesthetic_quality",
    "imaging_quality",
    "dynamic_degree",
)
SEMANTIC = (
    "object_class",
    "multiple_objects",
    "human_action",
    "color",
    "spatial_relationship",
    "scene",
    "appearance_style",
    "temporal_style",
    "overall_consistency",
)

# NORMALIZE_DIC_I2V / DIM_WEIGHT_I2V, keyed by the eval-results names (I2VKEY).
I2V_DIMENSIONS: dict[str, tuple[float, float, float]] = {
    "camera_motion": (0.0, 1.0, 0.1),
    "i2v_subject": (0.1462, 1.0, 1.0),
    "i2v_background": (0.2615, 1.0, 1.0),
    "subject_consistency": (0.1462, 1.0, 1.0),
    "background_consistency": (0.2615, 1.0, 1.0),
    "motion_smoothness": (0.706, 0.9975, 1.0),
    "dynamic_degree": (0.0, 1.0, 0.5),
    "aesthetic_quality": (0.0, 1.0, 1.0),
    "imaging_quality": (0.0, 1.0, 1.0),
}
I2V = ("camera_motion", "i2v_subject", "i2v_background")
# What vbench2_beta_i2v.VBenchI2V evaluates (its i2v_dims + quality_dims); temporal_flickering runs
# but the official I2V score does not use it.
I2V_EVALUATOR_DIMENSIONS = (
    *I2V,
    "subject_consistency",
    "background_consistency",
    "aesthetic_quality",
    "imaging_quality",
    "temporal_flickering",
    "motion_smoothness",
    "dynamic_degree",
)
# VBench.check_dimension_requires_extra_info: these read the standard suite's auxiliary info.
CUSTOM_UNSUPPORTED = (
    "object_class",
    "multiple_objects",
    "scene",
    "appearance_style",
    "color",
    "spatial_relationship",
)
# Dimensions whose standard protocol has a step this project does not run (vbench_standard
# refuses them).
STANDARD_PROTOCOL_MISSING = {
    "temporal_flickering": "VBench's protocol samples 25 videos per prompt of its "
    "temporal_flickering suite and keeps only the static ones with "
    "static_filter (RAFT optical flow; the vbench prompts README) before "
    "scoring; this scorer exports 5 per prompt and has no static filter, so "
    "its figure would not be VBench's: use mode custom_input (the "
    "benchmark's own clips, no filter), or run the official procedure "
    "outside the harness",
}
# vbench2_beta_i2v/camera_motion.py get_type: the motion a clip is asked for, read from its file
# name (the first phrase of this order found in it; ValueError when none is)
CAMERA_MOTIONS = {
    "camera pans left": "pan_left",
    "camera pans right": "pan_right",
    "camera tilts up": "tilt_up",
    "camera tilts down": "tilt_down",
    "camera zooms in": "zoom_in",
    "camera zooms out": "zoom_out",
    "camera static": "static",
}


def camera_phrase(caption: str) -> str | None:
    """The camera-motion phrase VBench-I2V's camera_motion reads for `caption`, or None."""
    return next((p for p in CAMERA_MOTIONS if p in caption), None)


# VBench 0.1.5 reads the mp4s of every dimension but these with decord 0.6.0 at their own size, and
# decord fails ("The size must exactly match") on frames of these widths, at every height, lossless
# or yuv420p; probed in the vbench env on every width 1-80 and every even width up to 1024 (the
# env test re-probes them and their neighbours). These four read with cv2, or resize to 384 px first.
DECORD_UNREADABLE_WIDTHS = frozenset({1, 2, 3, 4, 6, 8, 12, 16, 24, 48, 72})
ANY_WIDTH = ("temporal_flickering", "motion_smoothness", "dynamic_degree", "scene")
I2V_QUALITY = (
    "subject_consistency",
    "background_consistency",
    "motion_smoothness",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
)


def width_problem(scorer: str, dimension: str, width: int | None) -> str | None:
    """Why `scorer` cannot read videos `width` pixels wide (one line), or None when it can."""
    if width is None or dimension in ANY_WIDTH or width not in DECORD_UNREADABLE_WIDTHS:
        return None
    return (
        f"{scorer} cannot read videos {width} pixels wide: VBench decodes them with decord 0.6.0, which "
        f"fails on frame widths {', '.join(map(str, sorted(DECORD_UNREADABLE_WIDTHS)))} at any height; "
        f"give the benchmark a width not listed (e.g. 32 or 64), or score only {', '.join(ANY_WIDTH)}"
    )


def load_eval_results(path: Path | str) -> dict[str, float]:
    """`{name}_eval_results.json` ({dimension: [score, per-video rows]}) -> {dimension: score}."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"eval results: expected a JSON file written by VBench, got {path} (missing)"
        )
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(v, list) and v for v in data.values()):
        raise ValueError(
            f"{path}: expected {{dimension: [score, rows]}}, got {type(data).__name__}"
        )
    return {dim: float(value[0]) for dim, value in data.items()}


def _normalise(raw: float, table: dict[str, tuple[float, float, float]], dim: str) -> float:
    lo, hi, _ = table[dim]
    return (raw - lo) / (hi - lo)


def _weighted_mean(
    values: dict[str, float], dims: tuple[str, ...], table: dict[str, tuple[float, float, float]]
) -> float | None:
    present = [d for d in dims if d in values]
    if not present:
        return None
    return sum(values[d] * table[d][2] for d in present) / sum(table[d][2] for d in present)


def _summarise(
    raw: dict[str, float],
    table: dict[str, tuple[float, float, float]],
    groups: dict[str, tuple[str, ...]],
    total_weights: dict[str, float],
) -> dict:
    unknown = sorted(set(raw) - set(table))
    if unknown:
        raise ValueError(
            f"eval results: unknown dimension(s) {unknown}; expected names from {sorted(table)}"
        )
    normalised = {d: _normalise(v, table, d) for d, v in raw.items()}
    # Official figure: a missing dimension scored as raw 0.
    official_norm = {d: normalised.get(d, _normalise(0.0, table, d)) for d in table}

    def combine(values: dict[str, float]) -> dict[str, float | None]:
        out = {g: _weighted_mean(values, dims, table) for g, dims in groups.items()}
        if all(out[g] is not None for g in groups):
            out["total"] = sum(out[g] * w for g, w in total_weights.items()) / sum(
                total_weights.values()
            )
        else:
            out["total"] = None
        return {k: None if v is None else 100.0 * v for k, v in out.items()}

    ours = combine(normalised)
    missing = [d for dims in groups.values() for d in dims if d not in raw]
    return {
        **ours,
        "complete": not missing,
        "missing": missing,
        "dimensions": {d: 100.0 * normalised[d] for d in table if d in normalised},
        "raw": dict(raw),
        "official": combine(official_norm),
    }


def scores_from_raw(raw: dict[str, float], *, i2v: bool = False) -> dict:
    """summarize() / summarize_i2v() of raw scores {dimension: raw} already read (a harness run's metrics)."""
    if i2v:
        return _summarise(
            raw, I2V_DIMENSIONS, {"i2v": I2V, "quality": I2V_QUALITY}, {"i2v": 1.0, "quality": 1.0}
        )
    return _summarise(
        raw,
        VBENCH_DIMENSIONS,
        {"quality": QUALITY, "semantic": SEMANTIC},
        {"quality": 4.0, "semantic": 1.0},
    )


def summarize(path: Path | str) -> dict:
    """VBench scores from `{name}_eval_results.json`, 0-100.

    Returns {"quality", "semantic", "total" (None unless both groups have a dimension),
    "complete", "missing": [dims], "dimensions": {dim: normalised 0-100}, "raw": {dim: raw},
    "official": {"quality", "semantic", "total"} with missing dims scored as raw 0}.
    """
    return scores_from_raw(load_eval_results(path))


def summarize_i2v(path: Path | str) -> dict:
    """VBench-I2V scores, 0-100: keys "i2v", "quality", "total" plus the fields of summarize()."""
    return scores_from_raw(load_eval_results(path), i2v=True)


def vbench_cache_dir() -> Path:
    """$VBENCH_CACHE_DIR, else ~/.cache/vbench (where vbench itself looks)."""
    return Path(os.environ.get("VBENCH_CACHE_DIR") or Path.home() / ".cache" / "vbench")


_HF = "https://huggingface.co/OpenGVLab/VBench_Used_Models/resolve/main/"
_CLIP = "https://openaipublic.azureedge.net/clip/models/"
# dimension -> [(path under the cache dir, URL / how, is_dir)], as vbench.utils.init_submodules
# expects them with local=True (we never let vbench download during a scoring run).
_WEIGHTS: dict[str, list[tuple[str, str, bool]]] = {
    "temporal_flickering": [],
    "subject_consistency": [
        (
            "dino_model/facebookresearch_dino_main",
            "git clone https://github.com/facebookresearch/dino",
            True,
        ),
        (
            "dino_model/dino_vitbase16_pretrain.pth",
            "https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
            False,
        ),
    ],
    "background_consistency": [
        (
            "clip_model/ViT-B-32.pt",
            _CLIP + "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
            False,
        )
    ],
    "appearance_style": [
        (
            "clip_model/ViT-B-32.pt",
            _CLIP + "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
            False,
        )
    ],
    "aesthetic_quality": [
        (
            "clip_model/ViT-L-14.pt",
            _CLIP + "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
            False,
        ),
        (
            "aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth",
            "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth",
            False,
        ),
    ],
    "imaging_quality": [
        (
            "pyiqa_model/musiq_spaq_ckpt-358bb6af.pth",
            "https://github.com/chaofengc/IQA-PyTorch/releases/download/v0.1-weights/musiq_spaq_ckpt-358bb6af.pth",
            False,
        )
    ],
    "motion_smoothness": [
        (
            "amt_model/amt-s.pth",
            "https://huggingface.co/lalala125/AMT/resolve/main/amt-s.pth",
            False,
        )
    ],
    "dynamic_degree": [
        (
            "raft_model/models/raft-things.pth",
            "unzip https://dl.dropboxusercontent.com/s/4j4z58wuv8o0mfz/models.zip into raft_model/",
            False,
        )
    ],
    "human_action": [
        (
            "umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth",
            _HF + "l16_ptk710_ftk710_ftk400_f16_res224.pth",
            False,
        )
    ],
    "scene": [
        (
            "caption_model/tag2text_swin_14m.pth",
            "https://huggingface.co/spaces/xinyu1205/recognize-anything/resolve/main/tag2text_swin_14m.pth",
            False,
        )
    ],
    **{
        d: [
            (
                "grit_model/grit_b_densecap_objectdet.pth",
                "https://datarelease.blob.core.windows.net/grit/models/grit_b_densecap_objectdet.pth "
                "(also needs detectron2 installed in the vbench env)",
                False,
            )
        ]
        for d in ("object_class", "multiple_objects", "color", "spatial_relationship")
    },
    **{
        d: [
            ("ViCLIP/ViClip-InternVid-10M-FLT.pth", _HF + "ViClip-InternVid-10M-FLT.pth", False),
            (
                "ViCLIP/bpe_simple_vocab_16e6.txt.gz",
                "https://github.com/openai/CLIP/raw/main/clip/bpe_simple_vocab_16e6.txt.gz",
                False,
            ),
        ]
        for d in ("temporal_style", "overall_consistency")
    },
}


_WEIGHTS["i2v_subject"] = _WEIGHTS["subject_consistency"]  # the same DINO ViT-B/16
# i2v_background runs DreamSim, which is no vbench dependency and loads its weights from ./models
# (the worker runs in the cache dir, so $VBENCH_CACHE_DIR/models).
_WEIGHTS["i2v_background"] = [
    (
        "models/ensemble_lora",
        "python -c 'from dreamsim import dreamsim; "
        'dreamsim(pretrained=True, cache_dir="models")\' run in the cache dir on a '
        "machine with internet (it also fetches its DINO/CLIP/OpenCLIP ViT-B/16 backbones)",
        True,
    )
]
_WEIGHTS["camera_motion"] = []  # its code is missing from the wheel: see env_requirements

# dimension -> [(path under the env's site-packages, how, is_dir)]: code the vbench 0.1.5 wheel lacks.
_ENV_CODE: dict[str, list[tuple[str, str, bool]]] = {
    "i2v_background": [
        (
            "dreamsim",
            "pip install dreamsim==0.1.3 into the vbench env "
            "(<env>/bin/python -m pip install dreamsim==0.1.3)",
            True,
        )
    ],
    "camera_motion": [
        (
            "vbench2_beta_i2v/third_party/cotracker",
            "not shipped in the vbench 0.1.5 wheel: copy vbench2_beta_i2v/third_party/cotracker from "
            "github.com/Vchitect/VBench into the env; CoTracker2 itself loads through torch.hub from "
            "GitHub (facebookresearch/co-tracker), so it also needs its hub checkout and weights "
            "under $TORCH_HOME/hub",
            True,
        )
    ],
}


def required_resources(dimensions: list[str], cache_dir: Path | None = None) -> list[Resource]:
    """Every weight file the given VBench / VBench-I2V dimensions read, under the vbench cache dir."""
    unknown = [d for d in dimensions if d not in _WEIGHTS]
    if unknown:
        raise ValueError(f"dimensions: unknown {unknown}; expected names from {sorted(_WEIGHTS)}")
    root = cache_dir or vbench_cache_dir()
    return [
        Resource(root / rel, f"{how}  [cache dir: $VBENCH_CACHE_DIR={root}]", is_dir)
        for d in dimensions
        for rel, how, is_dir in _WEIGHTS[d]
    ]


def env_site_packages(env_path: Path | str | None = None) -> Path:
    """The vbench env's site-packages, where it is or will be (same Python as this interpreter)."""
    env = Path(env_path) if env_path else default_env_path("vbench")
    if (env / "lib").is_dir():
        try:
            return site_packages(env)
        except ValueError:
            pass
    return (
        env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )


def env_requirements(dimensions: list[str], env_path: Path | str | None = None) -> list[Resource]:
    """Code the given dimensions need inside the vbench env beyond what `harness env vbench` installs."""
    site = env_site_packages(env_path)
    return [
        Resource(site / rel, how, is_dir)
        for d in dimensions
        for rel, how, is_dir in _ENV_CODE.get(d, [])
    ]


def vbench_prompts(dimension: str, env_path: Path | str | None = None) -> list[str]:
    """The standard-suite prompts of one dimension, from the env's VBench_full_info.json."""
    info = site_packages(require_env("vbench", env_path)) / "vbench" / "VBench_full_info.json"
    return [e["prompt_en"] for e in json.loads(info.read_text()) if dimension in e["dimension"]]


def _required_videos(
    videos_path: Path,
    dimensions: list[str],
    env_path: Path | str | None,
    samples_per_prompt: int = 5,
) -> list[Resource]:
    how = "sample it and write it with benchmarks.official.export.export_vbench_standard"
    return [
        Resource(videos_path / d / f"{p}-{i}.mp4", how)
        for d in dimensions
        for p in vbench_prompts(d, env_path)
        for i in range(samples_per_prompt)
    ]


def run_vbench(
    videos_path: Path | str,
    output_dir: Path | str,
    name: str,
    dimensions: list[str],
    *,
    mode: str = "vbench_standard",
    device: str = "cpu",
    env_path: Path | str | None = None,
    prompt_file: Path | str | None = None,
    info_file: Path | str | None = None,
    resolution: str = "1-1",
    timeout: float | None = None,
) -> Path:
    """Run VBench (or VBench-I2V) in its env; returns `{output_dir}/{name}_eval_results.json`.

    mode: "vbench_standard" (videos_path = export root with `{dimension}/` folders),
    "custom_input" (flat folder; prompt_file = the exporter's prompts.json), or "i2v"
    (videos_path = the videos folder of `export.export_vbench_i2v_custom`, info_file = its
    i2v_info.json: each video's first-frame image; vbench 0.1.5 ships `vbench2_beta_i2v` but
    not the official I2V suite's info file or images). Before starting, checks the env, every
    weight file and (standard mode) every expected video, raising one MissingResourceError for
    all; an earlier `{name}_eval_results.json` is removed first so a failed run leaves none.
    """
    modes = ("vbench_standard", "custom_input", "i2v")
    if mode not in modes:
        raise ValueError(f"mode: expected one of {modes}, got {mode!r}")
    table = I2V_EVALUATOR_DIMENSIONS if mode == "i2v" else VBENCH_DIMENSIONS
    if not dimensions or any(d not in table for d in dimensions):
        raise ValueError(
            f"dimensions: expected a non-empty list from {sorted(table)}, got {dimensions}"
        )
    env = Path(env_path) if env_path else default_env_path("vbench")
    videos_path, output_dir = Path(videos_path).resolve(), Path(output_dir).resolve()
    needed = [Resource(env / MARKER, "python -m harness env vbench  (or set $URSA_VBENCH_ENV)")]
    needed += required_resources([d for d in dimensions if d in _WEIGHTS])
    needed += env_requirements(dimensions, env)
    if mode == "vbench_standard" and is_built(env):  # the prompt list lives in the env
        needed += _required_videos(videos_path, dimensions, env)
    elif not videos_path.is_dir():
        needed.append(Resource(videos_path, "export the samples there first", is_dir=True))
    if mode == "i2v":
        needed.append(
            Resource(
                Path(info_file or "<info_file not given>"),
                "benchmarks.official.export.export_vbench_i2v_custom writes it",
            )
        )
    require(f"VBench {mode} run", needed)

    output_dir.mkdir(parents=True, exist_ok=True)
    result = output_dir / f"{name}_eval_results.json"
    result.unlink(missing_ok=True)  # never leave an old result looking like this run's
    # -P: keep this folder off the worker's sys.path (no module here may shadow vbench's imports).
    cmd = [
        str(env_python(env)),
        "-P",
        str(Path(__file__).with_name("_vbench_worker.py")),
        "--videos-path",
        str(videos_path),
        "--output",
        str(output_dir),
        "--name",
        name,
        "--mode",
        mode,
        "--device",
        device,
        "--resolution",
        resolution,
        "--dimensions",
        *dimensions,
    ]
    if prompt_file:
        cmd += ["--prompt-file", str(Path(prompt_file).resolve())]
    if info_file:
        cmd += ["--info-file", str(Path(info_file).resolve())]
    cache = vbench_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    env_vars = dict(os.environ, VBENCH_CACHE_DIR=str(cache))
    # cwd: the cache dir, where DreamSim (i2v_background) looks for ./models
    proc = subprocess.run(
        cmd, env=env_vars, capture_output=True, text=True, timeout=timeout, cwd=cache
    )
    if proc.returncode != 0 or not result.is_file():
        raise RuntimeError(
            f"VBench worker failed (exit {proc.returncode}); command: {' '.join(cmd)}\n"
            f"{(proc.stdout + proc.stderr)[-4000:]}"
        )
    return result
