"""The file layout of the authors' released URSA pipeline folder (docs/release.md): which files
each part needs and which of them a folder lacks. Read by the loader (ursa.release) and by the
model config's check of `init_from` (ursa.config), before anything is loaded."""

from __future__ import annotations

import json
from pathlib import Path

WEIGHTS = "diffusion_pytorch_model.safetensors"  # diffusers' SAFETENSORS_WEIGHTS_NAME
WEIGHTS_INDEX = WEIGHTS + ".index.json"  # diffusers' SAFE_WEIGHTS_INDEX_NAME (sharded weights)

# part -> {file: what it is}; the transformer's weights are checked apart (single or sharded)
RELEASE_FILES: dict[str, dict[str, str]] = {
    "transformer": {
        "transformer/config.json": "the denoiser's configuration (URSATransformer3DModel)"
    },
    "scheduler": {
        "scheduler/scheduler_config.json": "the path parameters c, alpha, shift, eps (KineticOptimalScheduler)",
        "scheduler/scheduler_model.pth": "the codebook embedding the metric path uses (entry 'path.emb')",
    },
    "tokenizer": {
        "tokenizer/tokenizer_config.json": "the Qwen3 text tokenizer's configuration",
        "tokenizer/tokenizer.json": "the Qwen3 text tokenizer's vocabulary and merges",
    },
}


def release_error(directory: Path, what: str) -> ValueError:
    """The error for a release folder that is not as expected, naming the folder."""
    return ValueError(f"release folder {str(directory)!r}: {what}")


def weight_files(directory: Path) -> tuple[dict[str, Path] | None, list[str]]:
    """{parameter name: safetensors file} of transformer/, or (None, [missing file descriptions])."""
    tdir = directory / "transformer"
    if (tdir / WEIGHTS).is_file():
        from safetensors import safe_open

        with safe_open(str(tdir / WEIGHTS), framework="pt") as f:
            return {k: tdir / WEIGHTS for k in f.keys()}, []
    if not (tdir / WEIGHTS_INDEX).is_file():
        return None, [
            f"transformer/{WEIGHTS} (the denoiser's weights; or a sharded set listed in transformer/{WEIGHTS_INDEX})"
        ]
    try:
        weight_map = json.loads((tdir / WEIGHTS_INDEX).read_text())["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError(f"weight_map is a {type(weight_map).__name__}")
    except (ValueError, KeyError, TypeError) as err:
        raise release_error(
            directory,
            f"expected transformer/{WEIGHTS_INDEX} to be JSON with a 'weight_map' object "
            f"{{parameter: shard file}}, got {err!r}",
        ) from err
    missing = sorted({f for f in weight_map.values() if not (tdir / f).is_file()})
    return (
        {k: tdir / f for k, f in weight_map.items()} if not missing else None,
        [f"transformer/{f} (a weight shard listed in {WEIGHTS_INDEX})" for f in missing],
    )


def missing_release_files(
    directory: str | Path, parts: tuple[str, ...] = ("transformer", "scheduler")
) -> list[str]:
    """Every missing file of `parts` as "name (what it is)"; [] when the folder is complete."""
    directory = Path(directory)
    if not directory.is_dir():
        return [
            f"{directory} (the authors' pipeline folder: transformer/, scheduler/, tokenizer/, vae/)"
        ]
    missing = [
        f"{name} ({what})"
        for part in parts
        for name, what in RELEASE_FILES[part].items()
        if not (directory / name).is_file()
    ]
    if "transformer" in parts:
        missing += weight_files(directory)[1]
    return missing
