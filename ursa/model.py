"""The URSA denoiser: a bidirectional Qwen3 backbone with 3D M-RoPE over [text][BOV][video].

The backbone is transformers' `Qwen3VLTextModel` (Qwen3 blocks: RMSNorm, SwiGLU, GQA, q/k
RMSNorm, interleaved 3D M-RoPE). URSA changes three things: attention is fully bidirectional,
one embedding table holds text, visual (and mask) ids, and a head Linear(hidden, K) is applied
only at the visual positions. There is no timestep input: the noise level is read from tokens.

Embedding table rows (size `text_vocab_size + num_visual_inputs + 1`):
    [0, V)            text ids (V = text_vocab_size)
    [V, V + K)        visual ids 0..K-1 (offset V)
    V + K             mask id K (only when mask_token=True; visual input id K)
    last row          the begin-of-vision (BOV) token, an extra row after everything else

Positions (3, B, S) follow docs/math.md, "Model inputs and positions": real text token number i (counted per sample over
`text_mask`, so padding never shifts positions) -> (i, i, i); BOV -> (n, n, n) with n the
sample's real text length; visual token at latent (t, y, x) -> (n + 1 + t, y, x).

A model loaded from the authors' release (ursa/release.py) records their conventions in its
URSAConfig instead: BOV is a text id (`bov_token_id`), text is re-laid left-padded to
`max_prompt_length` with every slot attended (`text_padding="attended"`), the head is next-position
shifted (`head_shift`) and the rotary frequencies follow their layout (`rope_layout`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.models.qwen3_vl.modeling_qwen3_vl import (
    Qwen3VLTextAttention,
    Qwen3VLTextModel,
    Qwen3VLTextRotaryEmbedding,
)

from ursa.config import URSAConfig
from ursa.io import atomic_write, atomic_write_json
from ursa.loss import linear_cross_entropy

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class ReleaseRotaryEmbedding(nn.Module):
    """The authors' rotary layout (FlexRotaryEmbedding.get_func): head_dim/2 frequency slots j
    with inverse frequency theta^(-2j/head_dim); the first 3*(head_dim//8) slots take the position
    axes in the cycle (t, h, w, t, h, w, ...), the rest the cycle (h, w, h, w, ...).

    forward(x, position_ids long (3, B, S)) -> (cos, sin), each (B, S, head_dim) in x's dtype, in
    the rotate-half form transformers' Qwen3-VL attention applies. (Theirs writes each rotated pair
    next to each other; q and k are permuted alike, so every attention score is the same.)
    """

    axis: torch.Tensor
    inv_freq: torch.Tensor

    def __init__(self, head_dim: int, theta: float) -> None:
        super().__init__()
        half, rep1 = head_dim // 2, head_dim // 8
        axes = [j % 3 for j in range(3 * rep1)] + [1 + j % 2 for j in range(half - 3 * rep1)]
        self.register_buffer(
            "axis", torch.tensor(axes, dtype=torch.long), persistent=False
        )  # (head_dim/2,)
        inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)  # (head_dim/2,)

    def forward(
        self, x: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pos = position_ids.expand(3, -1, -1).float()[
            self.axis.to(position_ids.device)
        ]  # (head_dim/2, B, S)
        freqs = pos.permute(1, 2, 0) * self.inv_freq.to(x.device)  # (B, S, head_dim/2)
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def release_text_layout(
    text_ids: torch.Tensor, text_mask: torch.Tensor | None, config: URSAConfig
) -> torch.Tensor:
    """The release's text layout: the real tokens of each row (text_mask True; all when None),
    their first `max_prompt_length` kept, right-aligned after left padding with `text_pad_id`
    (URSAPipeline.encode_prompt: padding "max_length", padding_side "left", truncation).
    long (B, L) -> long (B, max_prompt_length); unchanged when either setting is None."""
    length, pad = config.max_prompt_length, config.text_pad_id
    if length is None or pad is None:
        return text_ids
    mask = torch.ones_like(text_ids, dtype=torch.bool) if text_mask is None else text_mask
    rank = mask.long().cumsum(1) - 1  # (B, L) index of each real token among its row's real tokens
    keep = mask & (rank < length)
    kept = keep.sum(1, keepdim=True)  # (B, 1)
    out = text_ids.new_full((text_ids.shape[0], length), pad)
    rows = torch.arange(text_ids.shape[0], device=text_ids.device)[:, None].expand_as(text_ids)
    out[rows[keep], (length - kept + rank)[keep]] = text_ids[keep]
    return out


def _release_rope(config: URSAConfig) -> nn.Module:
    return ReleaseRotaryEmbedding(config.head_dim, config.rope_theta)


# URSAConfig.rope_layout -> rotary module (forward(x, position_ids (3, B, S)) -> cos, sin (B, S, head_dim)).
ROPE_LAYOUTS = {
    "mrope_interleaved": lambda config: Qwen3VLTextRotaryEmbedding(
        config.backbone_config()
    ),  # Qwen3-VL
    "ursa_release": _release_rope,  # the authors' FlexRotaryEmbedding layout (ursa/release.py)
}


def mrope_positions(text_mask: torch.Tensor, latent_shape: tuple[int, int, int]) -> torch.Tensor:
    """3D positions long (3, B, L + 1 + T*h*w) for the sequence [text (L)][BOV][visual (T, h, w)].

    text_mask: bool (B, L). Real text tokens get (i, i, i) counting only real tokens; padded
    slots get the last real position (they are masked out of attention anyway).
    """
    batch, device = text_mask.shape[0], text_mask.device
    t, h, w = latent_shape
    text_pos = (text_mask.long().cumsum(1) - 1).clamp_min(0)  # (B, L)
    n = text_mask.long().sum(1, keepdim=True)  # (B, 1) real text length = BOV position
    grid = torch.stack(
        torch.meshgrid(
            torch.arange(t, device=device),
            torch.arange(h, device=device),
            torch.arange(w, device=device),
            indexing="ij",
        )
    ).reshape(3, 1, -1)
    visual = grid.expand(3, batch, -1).clone()
    visual[0] += n + 1
    prefix = torch.cat([text_pos, n], dim=1).unsqueeze(0).expand(3, -1, -1)
    return torch.cat([prefix, visual], dim=2)


class URSAModel(nn.Module):
    """Bidirectional Qwen3 denoiser: (text ids, noisy visual ids) -> float32 logits over K visual ids."""

    def __init__(self, config: URSAConfig, seed: int | None = 0) -> None:
        super().__init__()
        self.config = config
        self.num_visual_inputs = config.visual_vocab_size + int(config.mask_token)
        # BOV: an extra last embedding row (project) or a text id (the authors' release)
        self.bov_id = (
            config.text_vocab_size + self.num_visual_inputs
            if config.bov_token_id is None
            else config.bov_token_id
        )
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            if seed is not None:
                torch.manual_seed(seed)
            self.backbone = Qwen3VLTextModel(config.backbone_config())
            self.head = nn.Linear(config.hidden_size, config.visual_vocab_size, bias=False)
            nn.init.normal_(self.head.weight, std=config.initializer_range)
        if config.rope_layout != "mrope_interleaved":
            self.backbone.rotary_emb = ROPE_LAYOUTS[config.rope_layout](config)  # type: ignore[assignment]  # any rotary module
        for module in self.backbone.modules():  # sdpa must never fall back to is_causal=True
            if isinstance(module, Qwen3VLTextAttention):
                module.is_causal = False

    def _validate(
        self,
        text_ids: torch.Tensor,
        visual_ids: torch.Tensor,
        text_mask: torch.Tensor | None,
        targets: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> None:
        """Types and shapes, always; id ranges only on the CPU, where reading them back is free (on
        an accelerator it would stop the host every forward: `check_ids` does it once, at a boundary)."""

        def describe(x: object) -> str:
            return (
                f"{x.dtype} of shape {tuple(x.shape)}"
                if isinstance(x, torch.Tensor)
                else type(x).__name__
            )

        if (
            not isinstance(text_ids, torch.Tensor)
            or text_ids.dtype != torch.long
            or text_ids.dim() != 2
        ):
            raise ValueError(
                f"text_ids: expected torch.long tensor of shape (B, L), got {describe(text_ids)}"
            )
        if (
            not isinstance(visual_ids, torch.Tensor)
            or visual_ids.dtype != torch.long
            or visual_ids.dim() != 4
        ):
            raise ValueError(
                f"visual_ids: expected torch.long tensor of shape (B, T, h, w), got {describe(visual_ids)}"
            )
        if visual_ids.shape[0] != text_ids.shape[0] or visual_ids[0].numel() == 0:
            raise ValueError(
                f"visual_ids: expected a non-empty (B={text_ids.shape[0]}, T, h, w) grid, "
                f"got shape {tuple(visual_ids.shape)}"
            )
        if text_mask is not None and (
            not isinstance(text_mask, torch.Tensor)
            or text_mask.dtype != torch.bool
            or text_mask.shape != text_ids.shape
        ):
            raise ValueError(
                f"text_mask: expected torch.bool tensor of shape {tuple(text_ids.shape)}, got {describe(text_mask)}"
            )
        if targets is not None and (
            not isinstance(targets, torch.Tensor)
            or targets.dtype != torch.long
            or targets.shape != visual_ids.shape
        ):
            raise ValueError(
                f"targets: expected torch.long tensor of shape {tuple(visual_ids.shape)}, got {describe(targets)}"
            )
        if weights is not None and (
            targets is None
            or not isinstance(weights, torch.Tensor)
            or not weights.is_floating_point()
            or weights.shape != visual_ids.shape
        ):
            raise ValueError(
                f"weights: expected a float tensor of shape {tuple(visual_ids.shape)} beside targets, "
                f"got {describe(weights)}"
            )
        if text_ids.device.type == "cpu":
            self.check_ids(text_ids, visual_ids, targets)

    def check_ids(
        self,
        text_ids: torch.Tensor | None = None,
        visual_ids: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> None:
        """Raise ValueError unless every id given is in its range (reads the ranges back: a host sync
        on an accelerator, so callers there check once per data set or sampling call, not every forward)."""
        for name, ids, high in (
            ("text_ids", text_ids, self.config.text_vocab_size),
            ("visual_ids", visual_ids, self.num_visual_inputs),
            ("targets", targets, self.config.visual_vocab_size),
        ):
            if ids is not None and ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= high):
                raise ValueError(
                    f"{name}: expected ids in [0, {high}), got values in [{int(ids.min())}, {int(ids.max())}]"
                )

    def forward(
        self,
        text_ids: torch.Tensor,
        visual_ids: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """text_ids long (B, L), visual_ids long (B, T, h, w) in [0, num_visual_inputs),
        text_mask bool (B, L) (True = real token; None = all real) -> logits float32 (B, T, h, w, K).

        With targets long (B, T, h, w) in [0, K) (and weights float (B, T, h, w), None = all 1): the
        training loss sum_i weights_i * CE(logits_i, targets_i) instead, a float32 scalar computed by
        ursa.loss.linear_cross_entropy without materialising the logits.

        A text_mask that is all True is dropped on the CPU (the unmasked attention kernel); on an
        accelerator a given mask is always applied (checking would stop the host every forward), so
        callers pass None there when every token is real, as train() and the sampler do.
        """
        self._validate(text_ids, visual_ids, text_mask, targets, weights)
        batch, length = text_ids.shape
        _, t, h, w = visual_ids.shape
        latent_shape = (t, h, w)
        if (
            self.config.text_padding == "attended"
        ):  # the release's layout: left-padded, pads attended
            text_ids, text_mask = release_text_layout(text_ids, text_mask, self.config), None
            length = text_ids.shape[1]
        if text_mask is not None and text_mask.device.type == "cpu" and bool(text_mask.all()):
            text_mask = None
        bov = torch.full((batch, 1), self.bov_id, dtype=torch.long, device=text_ids.device)
        input_ids = torch.cat(
            [text_ids, bov, visual_ids.flatten(1) + self.config.text_vocab_size], dim=1
        )
        attention_mask = (
            None  # None + is_causal=False -> full bidirectional attention (flash-eligible)
        )
        if text_mask is None:
            text_mask = torch.ones_like(text_ids, dtype=torch.bool)
        else:
            keys = torch.cat(
                [text_mask, text_mask.new_ones(batch, input_ids.shape[1] - length)], dim=1
            )
            attention_mask = keys[
                :, None, None, :
            ]  # (B, 1, 1, S) bool: padded keys are never attended
        positions = mrope_positions(text_mask, latent_shape)
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=False,
        ).last_hidden_state
        # head only at visual positions, or (head_shift) at the positions just before them: [BOV, v_0..v_{N-2}]
        hidden = hidden[:, length:-1] if self.config.head_shift else hidden[:, length + 1 :]
        if targets is not None:
            return linear_cross_entropy(
                hidden.flatten(0, 1),
                self.head.weight,
                targets.flatten(),
                None if weights is None else weights.flatten(),
            )
        return self.head(hidden).float().view(batch, *latent_shape, self.config.visual_vocab_size)

    def count_parameters(self, non_embedding: bool = True) -> int:
        """Number of parameters; non_embedding=True excludes the vocabulary-sized matrices,
        the input embedding table and the head, as Qwen3's published non-embedding counts do
        (its LM head is tied to, i.e. is, the embedding matrix)."""
        skip = (
            {id(self.backbone.embed_tokens.weight), id(self.head.weight)}
            if non_embedding
            else set()
        )
        return sum(p.numel() for p in self.parameters() if id(p) not in skip)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json and model.safetensors into `directory`, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        atomic_write(
            directory / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt"})
        )
        atomic_write_json(directory / CONFIG_NAME, self.config.to_dict())

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device | None = None
    ) -> URSAModel:
        """Load a model written by `save_pretrained`; ValueError names a missing or bad file."""
        directory = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).is_file():
                raise ValueError(
                    f"from_pretrained: expected file {str(directory / name)!r}, got nothing there"
                )
        try:
            config = URSAConfig.from_dict(json.loads((directory / CONFIG_NAME).read_text()))
        except (ValueError, TypeError) as err:  # bad JSON, unknown or invalid fields
            raise ValueError(
                f"from_pretrained: expected a valid URSAConfig in {str(directory / CONFIG_NAME)!r}, got {err}"
            ) from err
        with torch.device("meta"):
            model = cls(config, seed=None)
        state = load_file(str(directory / WEIGHTS_NAME), device=str(device or "cpu"))
        missing = set(model.state_dict()) ^ set(state)
        if missing:
            raise ValueError(
                f"from_pretrained: expected weights for {WEIGHTS_NAME} matching the config, "
                f"got mismatched keys {sorted(missing)[:5]}"
            )
        model.load_state_dict(state, assign=True)
        model.backbone.rotary_emb = ROPE_LAYOUTS[config.rope_layout](config).to(device or "cpu")  # type: ignore[assignment]  # meta buffers
        return model


def check_tokenizer(model: URSAModel, visual_tokenizer) -> None:
    """Raise ValueError unless the tokenizer's codebook size equals the model head's K."""
    if visual_tokenizer.vocab_size != model.config.visual_vocab_size:
        raise ValueError(
            f"visual_tokenizer.vocab_size: expected {model.config.visual_vocab_size} (model head K), "
            f"got {visual_tokenizer.vocab_size}"
        )
