"""The authors' released URSA pipeline folders (baaivision/URSA) loaded into this project's model
and paths, exactly: same logits, same probability path.

A release is a diffusers-style folder (docs/release.md has the layout and where each convention
was confirmed in the authors' code):

    transformer/config.json                       URSATransformer3DModel (Qwen3 sizes + vocab layout)
    transformer/diffusion_pytorch_model.safetensors   (or a sharded set with its .index.json)
    scheduler/scheduler_config.json               KineticOptimalScheduler: c, alpha (null: mixture), shift, eps
    scheduler/scheduler_model.pth                 {"path.emb": codebook (K, D)}
    tokenizer/                                    the Qwen3 tokenizer files

Their forward conventions become URSAConfig fields, not a second model: the BOV id is a text id
(`bov_token_id`), visual ids are offset by `lm_vocab_size` (= text_vocab_size here), text pads
are ordinary attended tokens (`text_padding="attended"`), the head is next-position shifted
(`head_shift`) and the rotary frequencies follow their FlexRotaryEmbedding (`rope_layout=
"ursa_release"`, `ReleaseRotaryEmbedding` in ursa.model).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ursa.config import URSAConfig
from ursa.io import read_json_object
from ursa.release_layout import missing_release_files, release_error, weight_files

TRANSFORMER_CLASSES = ("URSATransformer3DModel",)  # architectures this loader reproduces
SCHEDULER_CLASSES = ("KineticOptimalScheduler",)
# The authors' URSATransformer3DModel.__init__ defaults (1.7B), used where config.json omits a key.
_TRANSFORMER_DEFAULTS = dict(
    hidden_size=2048,
    intermediate_size=6144,
    num_attention_heads=16,
    num_key_value_heads=8,
    num_hidden_layers=28,
    rope_theta=1_000_000.0,
    vocab_size=215_669,
    lm_vocab_size=151_669,
    lm_head_size=64_000,
    bov_token_id=151_652,
)
# Keys outside URSATransformer3DModel.__init__'s signature never reach its Qwen3Config: diffusers'
# register_to_config / from_config keep only the signature's keys, so the authors' model always has
# transformers' Qwen3Config defaults for these, whatever config.json says (read_transformer_config
# refuses a config.json that states another value rather than build a model theirs is not).
_AUTHORS_FIXED = dict(head_dim=128, rms_norm_eps=1e-6, max_position_embeddings=32_768)
_QWEN3_DEFAULTS = dict(_AUTHORS_FIXED, attention_bias=False)
MAX_PROMPT_LENGTH = 320  # URSAPipeline.__call__(max_prompt_length=320)


def check_release(
    directory: str | Path, parts: tuple[str, ...] = ("transformer", "scheduler")
) -> Path:
    """Raise one ValueError listing every missing file of `parts` (what each is); return the folder."""
    directory = Path(directory)
    missing = missing_release_files(directory, parts)
    if missing:
        raise release_error(
            directory,
            f"expected every file of {', '.join(parts)}, got {len(missing)} missing: "
            + "; ".join(missing),
        )
    return directory


def read_transformer_config(directory: str | Path) -> URSAConfig:
    """transformer/config.json -> the URSAConfig with the release's conventions."""
    directory = Path(directory)
    file = directory / "transformer" / "config.json"
    try:
        raw = read_json_object(file)
    except ValueError as err:
        raise release_error(
            directory, f"expected transformer/config.json to be a JSON object ({err})"
        ) from None
    name = raw.get("_class_name", TRANSFORMER_CLASSES[0])
    if name not in TRANSFORMER_CLASSES:
        raise release_error(
            directory,
            f"expected transformer/config.json '_class_name' in {list(TRANSFORMER_CLASSES)}, got "
            f"{name!r} (an architecture this loader does not reproduce)",
        )
    c = {**_TRANSFORMER_DEFAULTS, **_QWEN3_DEFAULTS, **raw}
    ignored = {k: raw[k] for k, v in _AUTHORS_FIXED.items() if k in raw and raw[k] != v}
    if ignored:
        want = ", ".join(f"{k} {_AUTHORS_FIXED[k]!r}" for k in ignored)
        got = ", ".join(f"{k} {v!r}" for k, v in ignored.items())
        raise release_error(
            directory,
            f"expected transformer/config.json {want} (the authors' "
            f"URSATransformer3DModel drops keys outside its signature, so "
            f"their Qwen3 backbone always uses Qwen3Config's head_dim 128, "
            f"rms_norm_eps 1e-6, max_position_embeddings 32768), got {got}: "
            f"their model would not be built with these",
        )
    if c["attention_bias"] or c.get("use_sliding_window"):
        raise release_error(
            directory,
            "expected a Qwen3 backbone without attention bias or sliding window, got "
            f"attention_bias={c['attention_bias']!r}, use_sliding_window={c.get('use_sliding_window')!r}",
        )
    if c["vocab_size"] != c["lm_vocab_size"] + c["lm_head_size"]:
        raise release_error(
            directory,
            f"expected transformer/config.json vocab_size = lm_vocab_size + lm_head_size = "
            f"{c['lm_vocab_size']} + {c['lm_head_size']} (text ids, then the visual codes), got {c['vocab_size']}",
        )
    try:
        return URSAConfig(
            hidden_size=c["hidden_size"],
            num_layers=c["num_hidden_layers"],
            num_heads=c["num_attention_heads"],
            num_kv_heads=c["num_key_value_heads"],
            head_dim=c["head_dim"],
            intermediate_size=c["intermediate_size"],
            text_vocab_size=c["lm_vocab_size"],
            visual_vocab_size=c["lm_head_size"],
            rope_theta=float(c["rope_theta"]),
            rms_norm_eps=float(c["rms_norm_eps"]),
            max_position_embeddings=c["max_position_embeddings"],
            bov_token_id=c["bov_token_id"],
            text_padding="attended",
            head_shift=True,
            rope_layout="ursa_release",
            max_prompt_length=MAX_PROMPT_LENGTH,
            text_pad_id=release_pad_id(directory, raw),
        )
    except (ValueError, TypeError) as err:
        raise release_error(
            directory, f"expected transformer/config.json to describe a valid model, got {err}"
        ) from err


def release_pad_id(directory: Path, raw: dict) -> int | None:
    """The text pad id of the layout: the tokenizer's pad token (tokenizer/tokenizer_config.json's
    pad_token looked up in tokenizer/tokenizer.json), else config.json's pad_token_id, else None."""
    try:
        pad = json.loads((directory / "tokenizer" / "tokenizer_config.json").read_text()).get(
            "pad_token"
        )
        pad = pad.get("content") if isinstance(pad, dict) else pad
        added = json.loads((directory / "tokenizer" / "tokenizer.json").read_text()).get(
            "added_tokens", []
        )
        ids = [t["id"] for t in added if t.get("content") == pad]
        vocab = (
            json.loads((directory / "tokenizer" / "tokenizer.json").read_text())
            .get("model", {})
            .get("vocab", {})
        )
        found = ids[0] if ids else vocab.get(pad) if isinstance(vocab, dict) else None
        if isinstance(found, int):
            return found
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no (readable) tokenizer folder: fall back to the config
    pad = raw.get("pad_token_id")
    return pad if isinstance(pad, int) else None


def release_to_project_key(key: str) -> str:
    """Their parameter name -> this project's: model.* -> backbone.*, lm_head.weight -> head.weight."""
    if key.startswith("model."):
        return "backbone." + key[len("model.") :]
    return "head.weight" if key == "lm_head.weight" else key


def project_to_release_key(key: str) -> str:
    """Inverse of release_to_project_key."""
    if key.startswith("backbone."):
        return "model." + key[len("backbone.") :]
    return "lm_head.weight" if key == "head.weight" else key


def load_transformer(
    directory: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
):
    """The released denoiser as a URSAModel, in `dtype` on `device`.

    The model is built on the meta device and each tensor is read from its safetensors file,
    cast and moved on its own, then assigned: peak memory is the model in `dtype` plus one tensor.
    Every name and shape is checked against the config before anything is read.
    """
    from safetensors import safe_open

    from ursa.model import ROPE_LAYOUTS, URSAModel

    directory = check_release(directory, ("transformer",))
    config = read_transformer_config(directory)
    device = torch.device(device or "cpu")
    with torch.device("meta"):
        model = URSAModel(config, seed=None)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    files, missing = weight_files(directory)
    if files is None:  # check_release found them; a folder changed since fails plainly
        raise release_error(directory, "expected " + "; ".join(missing))
    ours = {release_to_project_key(k): k for k in files}
    problems = [f"missing {project_to_release_key(k)!r}" for k in sorted(set(expected) - set(ours))]
    problems += [
        f"unexpected {k!r}"
        for k in sorted(set(ours.values()))
        if release_to_project_key(k) not in expected
    ]
    handles: dict[Path, Any] = {}  # safetensors' safe_open handles
    try:
        for name in sorted(set(expected) & set(ours)):
            file = files[ours[name]]
            if file not in handles:
                handles[file] = safe_open(str(file), framework="pt", device="cpu")
            shape = tuple(handles[file].get_slice(ours[name]).get_shape())
            if shape != expected[name]:
                problems.append(
                    f"{ours[name]!r} has shape {shape}, the config implies {expected[name]}"
                )
        if problems:
            raise release_error(
                directory,
                f"expected transformer weights matching transformer/config.json, got "
                f"{len(problems)} problems: "
                + "; ".join(problems[:8])
                + (" ..." if len(problems) > 8 else ""),
            )
        state = {
            name: handles[files[ours[name]]].get_tensor(ours[name]).to(device=device, dtype=dtype)
            for name in expected
        }
    finally:
        handles.clear()
    model.load_state_dict(state, assign=True)
    model.backbone.rotary_emb = ROPE_LAYOUTS[config.rope_layout](config).to(device)  # type: ignore[assignment]  # meta buffers
    return model.eval()


@dataclass(frozen=True)
class ReleaseScheduler:
    """scheduler/: the path parameters and the codebook (K, D) float32 it is built on."""

    c: float | None
    alpha: float | None  # None: the mixture path
    shift: float
    eps: float
    codebook: torch.Tensor

    @property
    def kind(self) -> str:
        return "mixture" if self.alpha is None else "metric"


def _number(
    directory: Path, raw: dict, key: str, default: float | None, allow_none: bool = False
) -> float:
    value = raw.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise release_error(
            directory,
            f"expected scheduler/scheduler_config.json {key!r} a finite number > 0"
            f"{' or null' if allow_none else ''}, got {value!r}",
        )
    return float(value)


def _number_or_none(directory: Path, raw: dict, key: str) -> float | None:
    """None where `key` is null or absent, else the number (as _number checks it)."""
    return None if raw.get(key) is None else _number(directory, raw, key, None, allow_none=True)


def _scheduler_config(directory: Path) -> dict:
    try:
        raw = read_json_object(directory / "scheduler" / "scheduler_config.json")
    except ValueError as err:
        raise release_error(
            directory, f"expected scheduler/scheduler_config.json to be a JSON object ({err})"
        ) from None
    name = raw.get("_class_name", SCHEDULER_CLASSES[0])
    if name not in SCHEDULER_CLASSES:
        raise release_error(
            directory,
            f"expected scheduler/scheduler_config.json '_class_name' in "
            f"{list(SCHEDULER_CLASSES)}, got {name!r}",
        )
    return raw


def release_shift(directory: str | Path) -> float:
    """The sampling shift of the release: scheduler/scheduler_config.json's `shift` (default 1.0,
    KineticOptimalScheduler.__init__), read without loading the codebook."""
    directory = Path(directory)
    return _number(directory, _scheduler_config(directory), "shift", 1.0)


def load_scheduler(directory: str | Path, trust_pickle: bool = False) -> ReleaseScheduler:
    """scheduler/scheduler_config.json + scheduler_model.pth -> ReleaseScheduler.

    The .pth is read with torch.load(weights_only=True): a plain {name: tensor} pickle loads that
    way and nothing in it can run code. The authors read it with weights_only=False; a file that
    needs that (pickled objects besides tensors) is refused unless `trust_pickle=True`.
    """
    directory = check_release(directory, ("scheduler",))
    raw = _scheduler_config(directory)
    alpha = _number_or_none(directory, raw, "alpha")
    c = (
        _number_or_none(directory, raw, "c")
        if alpha is None
        else _number(directory, raw, "c", None)
    )
    shift, eps = _number(directory, raw, "shift", 1.0), _number(directory, raw, "eps", 1e-5)
    file = directory / "scheduler" / "scheduler_model.pth"
    try:
        state = torch.load(file, map_location="cpu", weights_only=not trust_pickle)
    except Exception as err:  # UnpicklingError, or a corrupt / truncated archive
        raise release_error(
            directory,
            f"expected scheduler/scheduler_model.pth to be a torch file of tensors (read with "
            f"weights_only=True; pass trust_pickle=True only for a file you trust), got "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
        ) from err
    emb = state.get("path.emb") if isinstance(state, dict) else None
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or not emb.is_floating_point():
        got = (
            f"{emb.dtype} {tuple(emb.shape)}"
            if isinstance(emb, torch.Tensor)
            else type(emb).__name__
        )
        raise release_error(
            directory,
            f"expected scheduler/scheduler_model.pth entry 'path.emb' a float (K, D) codebook, got {got}",
        )
    return ReleaseScheduler(c=c, alpha=alpha, shift=shift, eps=eps, codebook=emb.float())


def build_release_path(
    directory: str | Path,
    chunk_size: int = 4096,
    trust_pickle: bool = False,
    zero_rows: Literal["origin", "equidistant"] = "origin",
):
    """The release's probability path as a ursa.paths ProbPath: MetricPath(codebook, c, alpha),
    or MixturePath(K) when alpha is null (KineticOptimalScheduler.load_pretrained).

    zero_rows "origin" (default) gives a zero codebook row the authors' distances: their
    MetricDiscreteProbPath.get_dist computes |e_x|^2 + |e_y|^2 - 2 e_x.e_y on F.normalize'd rows,
    where a zero row (FSQ's all-zero code) stays zero, so d = 1 to every unit row. "equidistant" is
    this project's MetricPath default (2 - 2 cos = 2). Other rows get identical distances either way.
    """
    from ursa.paths import MetricPath, MixturePath

    s = load_scheduler(directory, trust_pickle=trust_pickle)
    if s.alpha is None or s.c is None:  # the mixture path (c is null only there)
        return MixturePath(s.codebook.shape[0])
    return MetricPath(s.codebook, c=s.c, alpha=s.alpha, chunk_size=chunk_size, zero_rows=zero_rows)


# ---- text ----------------------------------------------------------------------------------
VBENCH_NEGATIVE_PROMPT = (
    "worst quality, low quality, inconsistent motion, static, still, blurry, jittery, "
    "distorted, ugly"
)  # evaluations/vbench/sample.py


def motion_prefix(score: float) -> str:
    """The video prompts' prefix, "motion=9.0, " for score 9 (evaluations/vbench/sample.py)."""
    return f"motion={score:.1f}, "


class ReleaseTextTokenizer:
    """The release's Qwen3 tokenizer (tokenizer/) with its padding convention: every caption is
    `prefix + caption`, truncated and left-padded to `max_length` (URSAPipeline.encode_prompt:
    padding="max_length", padding_side="left", truncation=True, max_length=320).

    __call__(captions) -> (ids long (B, max_length), mask bool (B, max_length)); a release model
    (text_padding="attended") attends to the pads anyway, the mask only says where they are.
    `uncond(batch)` is the negative prompt the same way (default "", as the pipeline's).
    """

    def __init__(
        self,
        path: str | Path,
        max_length: int = MAX_PROMPT_LENGTH,
        prefix: str = "",
        negative_prompt: str = "",
    ) -> None:
        from transformers import AutoTokenizer

        path = Path(path)
        missing = [
            f for f in ("tokenizer_config.json", "tokenizer.json") if not (path / f).is_file()
        ]
        if missing:
            raise ValueError(
                f"release tokenizer {str(path)!r}: expected the Qwen3 tokenizer files, got missing {missing}"
            )
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(
                f"release tokenizer max_length: expected a positive int, got {max_length!r}"
            )
        self._tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if self._tok.pad_token_id is None:
            raise ValueError(
                f"release tokenizer {str(path)!r}: expected a pad token in tokenizer_config.json, got none"
            )
        self.vocab_size, self.pad_id = len(self._tok), int(self._tok.pad_token_id)
        self.path = path
        self.max_length, self.prefix, self.negative_prompt = max_length, prefix, negative_prompt

    def __call__(
        self, captions: list[str], max_length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self._tok(
            [self.prefix + c for c in captions],
            padding="max_length",
            padding_side="left",
            truncation=True,
            max_length=max_length or self.max_length,
            return_tensors="pt",
        )
        return enc.input_ids.long(), enc.attention_mask.bool()

    def uncond(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The negative prompt, no prefix (the pipeline tokenises it as given): (B, max_length) twice."""
        enc = self._tok(
            [self.negative_prompt] * batch,
            padding="max_length",
            padding_side="left",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return enc.input_ids.long(), enc.attention_mask.bool()
