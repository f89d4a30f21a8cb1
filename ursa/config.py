"""URSAConfig: the shape and vocabulary layout of an URSA denoiser, and the named presets.

Kept apart from ursa/model.py so that reading or validating a configuration (a spec's
`model.overrides`, a saved config.json) does not import transformers. `ModelConfig` is the
`model:` section of a spec.
"""

from __future__ import annotations

import difflib
import functools
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ursa.release_layout import missing_release_files

if TYPE_CHECKING:
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextConfig

QWEN_TEXT_VOCAB = 151_669  # Qwen3 tokenizer size (URSA's text vocabulary)
COSMOS_FSQ_VOCAB = 64_000  # FSQ levels (8, 8, 8, 5, 5, 5)

_PRESETS: dict[str, dict] = {
    "tiny": dict(
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        intermediate_size=128,
    ),
    "small": dict(
        hidden_size=128,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        head_dim=32,
        intermediate_size=384,
    ),
    "base": dict(
        hidden_size=192,
        num_layers=6,
        num_heads=6,
        num_kv_heads=3,
        head_dim=32,
        intermediate_size=576,
    ),
    # Qwen3-0.6B / Qwen3-1.7B backbone shapes with URSA's vocabulary layout.
    "0.6B": dict(
        hidden_size=1024,
        num_layers=28,
        num_heads=16,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=3072,
        text_vocab_size=QWEN_TEXT_VOCAB,
        visual_vocab_size=COSMOS_FSQ_VOCAB,
        max_position_embeddings=40960,
    ),
    "1.7B": dict(
        hidden_size=2048,
        num_layers=28,
        num_heads=16,
        num_kv_heads=8,
        head_dim=128,
        intermediate_size=6144,
        text_vocab_size=QWEN_TEXT_VOCAB,
        visual_vocab_size=COSMOS_FSQ_VOCAB,
        max_position_embeddings=40960,
    ),
}


_CONVENTIONS = (
    "bov_token_id",
    "text_padding",
    "head_shift",
    "rope_layout",
    "max_prompt_length",
    "text_pad_id",
)


def default_mrope_section(head_dim: int) -> tuple[int, int, int]:
    """(t, h, w) rotary-pair split; Qwen3-VL's (24, 20, 20) for head_dim 128, scaled down otherwise."""
    half = head_dim // 2
    spatial = half * 20 // 64
    return (half - 2 * spatial, spatial, spatial)


@dataclass
class URSAConfig:
    """Backbone shape and vocabulary layout of an URSA denoiser."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    text_vocab_size: int = 256
    visual_vocab_size: int = 64
    mask_token: bool = False
    rope_theta: float = 1e6
    rms_norm_eps: float = 1e-6
    mrope_section: tuple[int, int, int] | None = None  # None -> default_mrope_section(head_dim)
    max_position_embeddings: int = 8192
    initializer_range: float = 0.02
    # Layout conventions. The defaults are this project's layout; a model loaded from the
    # authors' release records theirs (ursa/release.py, docs/release.md).
    bov_token_id: int | None = (
        None  # None: BOV is an extra last embedding row; int: a text id (release: 151652)
    )
    # "masked": pads unattended, real tokens numbered; "attended": every slot is a token at its index
    text_padding: str = "masked"
    head_shift: bool = (
        False  # True: the hidden state at position p predicts the visual token at p + 1
    )
    rope_layout: str = (
        "mrope_interleaved"  # rotary frequency layout, a key of ursa.model.ROPE_LAYOUTS
    )
    max_prompt_length: int | None = (
        None  # "attended": text re-laid left-padded to this length (release: 320)
    )
    text_pad_id: int | None = (
        None  # "attended": the pad id of that layout (release: the tokenizer's pad token)
    )

    def __post_init__(self) -> None:
        for name in (
            "hidden_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "intermediate_size",
            "text_vocab_size",
            "visual_vocab_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"URSAConfig.{name}: expected a positive int, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"URSAConfig.num_heads: expected a multiple of num_kv_heads={self.num_kv_heads}, got {self.num_heads}"
            )
        if self.head_dim % 2:
            raise ValueError(f"URSAConfig.head_dim: expected an even int, got {self.head_dim}")
        section = (
            default_mrope_section(self.head_dim)
            if self.mrope_section is None
            else tuple(self.mrope_section)
        )
        if (
            len(section) != 3
            or sum(section) != self.head_dim // 2
            or 3 * max(section[1:]) > self.head_dim // 2
        ):
            raise ValueError(
                f"URSAConfig.mrope_section: expected 3 ints summing to head_dim/2={self.head_dim // 2} "
                f"with 3*max(h, w) <= head_dim/2, got {section}"
            )
        self.mrope_section = (int(section[0]), int(section[1]), int(section[2]))
        if self.bov_token_id is not None and not (
            isinstance(self.bov_token_id, int) and 0 <= self.bov_token_id < self.text_vocab_size
        ):
            raise ValueError(
                f"URSAConfig.bov_token_id: expected None or a text id in "
                f"[0, {self.text_vocab_size}), got {self.bov_token_id!r}"
            )
        if self.text_padding not in ("masked", "attended"):
            raise ValueError(
                f"URSAConfig.text_padding: expected 'masked' or 'attended', got {self.text_padding!r}"
            )
        if self.rope_layout not in ("mrope_interleaved", "ursa_release"):
            raise ValueError(
                f"URSAConfig.rope_layout: expected 'mrope_interleaved' or 'ursa_release', got {self.rope_layout!r}"
            )
        if (
            self.rope_layout == "ursa_release"
            and (self.head_dim // 2 - 3 * (self.head_dim // 8)) % 2
        ):
            raise ValueError(
                f"URSAConfig.head_dim: the 'ursa_release' rotary layout needs head_dim/2 - 3*(head_dim//8) "
                f"even (its (t, h, w) x head_dim//8 + (h, w) cycle fills head_dim/2 slots), got {self.head_dim}"
            )
        if self.max_prompt_length is not None and (
            not isinstance(self.max_prompt_length, int) or self.max_prompt_length < 1
        ):
            raise ValueError(
                f"URSAConfig.max_prompt_length: expected None or a positive int, got {self.max_prompt_length!r}"
            )
        if self.text_pad_id is not None and not (
            isinstance(self.text_pad_id, int) and 0 <= self.text_pad_id < self.text_vocab_size
        ):
            raise ValueError(
                f"URSAConfig.text_pad_id: expected None or a text id in "
                f"[0, {self.text_vocab_size}), got {self.text_pad_id!r}"
            )

    @classmethod
    def preset(cls, name: str, **overrides) -> URSAConfig:
        """A named size ("tiny", "small", "base", "0.6B", "1.7B") with field overrides."""
        if name not in _PRESETS:
            raise ValueError(f"preset name: expected one of {sorted(_PRESETS)}, got {name!r}")
        return cls(**{**_PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        """Every field, except layout conventions left at their defaults (a project model's
        config.json stays as it was before the conventions existed)."""
        d = asdict(self)
        d["mrope_section"] = list(self.mrope_section or ())
        for name in _CONVENTIONS:
            if d[name] == self.__dataclass_fields__[name].default:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> URSAConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"URSAConfig keys: expected a subset of {sorted(cls.__dataclass_fields__)}, "
                f"got unknown {sorted(unknown)}"
            )
        return cls(**d)

    @property
    def embedding_rows(self) -> int:
        """Rows of the embedding table: text, visual (and mask) ids, and an extra BOV row unless
        the BOV id is a text id."""
        return (
            self.text_vocab_size
            + self.visual_vocab_size
            + int(self.mask_token)
            + int(self.bov_token_id is None)
        )

    def backbone_config(self) -> Qwen3VLTextConfig:
        """The transformers config of the Qwen3-VL text backbone (sdpa attention, no KV cache)."""
        from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextConfig

        cfg = Qwen3VLTextConfig(
            vocab_size=self.embedding_rows,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.rms_norm_eps,
            initializer_range=self.initializer_range,
            use_cache=False,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": self.rope_theta,
                "mrope_section": list(self.mrope_section or ()),
                "mrope_interleaved": True,
            },
        )
        cfg._attn_implementation = "sdpa"
        cfg.is_causal = False  # transformers' switch from causal to bidirectional mask creation
        return cfg


class ModelConfig(BaseModel):
    """The `model:` section of a spec: a preset, URSAConfig overrides, or the checkpoint to start from."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)

    preset: Literal["tiny", "small", "base", "0.6B", "1.7B"] = (
        "tiny"  # URSAConfig.preset sizes (ursa/config.py)
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict
    )  # URSAConfig fields set over the preset (num_layers, ...)
    init_format: Literal["pretrained", "release"] = (
        "pretrained"  # from `init_from: {format: ..., path: ...}`
    )
    # a saved URSAModel directory, or {format: release, path: DIR}: the authors' released pipeline
    # folder (ursa/release.py); with train.steps 0 the run only evaluates it
    init_from: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _init_from_mapping(cls, data: Any) -> Any:
        init = data.get("init_from") if isinstance(data, dict) else None
        if isinstance(init, dict):
            if set(init) - {"format", "path"} or not isinstance(init.get("path"), str):
                raise ValueError(
                    f"model.init_from as a path or {{format: pretrained | release, path: DIR}}, got {_short(init)}"
                )
            data = {
                **data,
                "init_from": init["path"],
                "init_format": init.get("format", "pretrained"),
            }
        return data

    @field_validator("init_from")
    @classmethod
    def _checkpoint_exists(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and info.data.get("init_format") == "release":
            missing = missing_release_files(path, ("transformer", "scheduler"))
            if missing:  # one message naming every missing file and what it is
                raise ValueError(
                    f"the authors' release folder (transformer/, scheduler/); {len(missing)} missing: "
                    + "; ".join(missing)
                )
        elif path is not None and not (Path(path) / "config.json").is_file():
            raise ValueError(
                f"a saved URSAModel directory (with config.json), got missing path {path!r}"
            )
        return path

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        check_model_overrides(overrides)
        return overrides


@functools.cache
def _ursa_fields() -> dict[str, str]:
    """{field: annotation} of URSAConfig."""
    return {f.name: str(f.type) for f in fields(URSAConfig)}


def check_model_overrides(overrides: dict[str, Any]) -> None:
    """`model.overrides` are URSAConfig fields: sizes and counts positive integers, floats finite
    and positive, mask_token a boolean. Raises ValueError ("... got ...") on the first bad one."""
    for key, value in overrides.items():
        if key == "mask_token":
            if not isinstance(value, bool):
                raise ValueError(
                    f"model.overrides.mask_token to be true or false, got {_short(value)}"
                )
            continue
        kinds = _ursa_fields()
        if key not in kinds:
            close = difflib.get_close_matches(str(key), list(kinds), n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"model.overrides keys that are fields of ursa.config.URSAConfig ({', '.join(kinds)}), "
                f"got {key!r}.{hint}"
            )
        kind = kinds[key]
        if kind == "int" or key.endswith("_size") or key.startswith("num_"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"model.overrides.{key} to be a positive integer (a size or count), got "
                    f"{_short(value)}"
                )
        elif kind == "float":
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"model.overrides.{key} to be a finite number > 0, got {_short(value)}"
                )
        elif (
            key == "mrope_section"
            and value is not None
            and not (
                isinstance(value, list)
                and len(value) == 3
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
            )
        ):
            raise ValueError(
                f"model.overrides.mrope_section to be null or 3 non-negative integers, got "
                f"{_short(value)}"
            )


def _short(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
