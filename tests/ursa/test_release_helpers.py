"""Synthetic release folders in the authors' exact layout (tiny shapes, random weights), and an
independent reference forward written from their conventions (not from ursa.release's code)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

# Tiny URSATransformer3DModel: text vocab 40 (BOV = 37 inside it), 27 visual codes (FSQ (3, 3, 3));
# head_dim 128 as the authors' model always has (ursa.release._AUTHORS_FIXED).
TINY = dict(
    _class_name="URSATransformer3DModel",
    _diffusers_version="0.32.2",
    hidden_size=32,
    intermediate_size=48,
    num_attention_heads=4,
    num_key_value_heads=2,
    num_hidden_layers=2,
    max_window_layers=2,
    rope_theta=1000000,
    vocab_size=67,
    lm_vocab_size=40,
    lm_head_size=27,
    bov_token_id=37,
    head_dim=128,
    pad_token_id=38,
)
MAX_PROMPT = 320  # the release's max_prompt_length


def release_state(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the authors' parameter names (transformer_ursa.py / qwen3.py)."""
    g = torch.Generator().manual_seed(seed)
    H, D, I = cfg["hidden_size"], cfg["head_dim"], cfg["intermediate_size"]  # noqa: E741 - hidden, head, intermediate sizes
    nq, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]

    def w(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    state = {
        "model.embed_tokens.weight": w(cfg["vocab_size"], H, scale=1.0),
        "model.norm.weight": 1 + w(H),
        "lm_head.weight": w(cfg["lm_head_size"], H),
    }
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}."
        state |= {
            p + "self_attn.q_proj.weight": w(nq * D, H),
            p + "self_attn.k_proj.weight": w(nkv * D, H),
            p + "self_attn.v_proj.weight": w(nkv * D, H),
            p + "self_attn.o_proj.weight": w(H, nq * D),
            p + "self_attn.q_norm.weight": 1 + w(D),
            p + "self_attn.k_norm.weight": 1 + w(D),
            p + "mlp.gate_proj.weight": w(I, H),
            p + "mlp.up_proj.weight": w(I, H),
            p + "mlp.down_proj.weight": w(H, I),
            p + "input_layernorm.weight": 1 + w(H),
            p + "post_attention_layernorm.weight": 1 + w(H),
        }
    return state


def fsq_codebook(levels=(3, 3, 3)) -> torch.Tensor:
    """(prod(levels), len(levels)) FSQ values, first level fastest, digit d -> (d - L//2) / (L//2)."""
    idx = torch.arange(int(torch.tensor(levels).prod()))
    digits, base = [], 1
    for L in levels:
        digits.append((idx // base) % L)
        base *= L
    return torch.stack([(d - L // 2) / (L // 2) for d, L in zip(digits, levels)], dim=1).float()


def make_release(
    root: Path,
    cfg: dict = TINY,
    *,
    shards: int = 1,
    seed: int = 0,
    alpha: float | None = 0.9,
    c: float = 3.0,
    shift: float = 3.0,
    codebook: torch.Tensor | None = None,
) -> Path:
    """Write transformer/, scheduler/ and model_index.json into root; returns root."""
    (root / "transformer").mkdir(parents=True, exist_ok=True)
    (root / "scheduler").mkdir(exist_ok=True)
    (root / "transformer" / "config.json").write_text(json.dumps(cfg))
    state = release_state(cfg, seed)
    if shards == 1:
        save_file(state, str(root / "transformer" / "diffusion_pytorch_model.safetensors"))
    else:
        keys = sorted(state)
        weight_map = {}
        for i in range(shards):
            name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = {k: state[k] for k in keys[i::shards]}
            save_file(part, str(root / "transformer" / name))
            weight_map |= {k: name for k in part}
        (root / "transformer" / "diffusion_pytorch_model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map})
        )
    (root / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(
            {
                "_class_name": "KineticOptimalScheduler",
                "_diffusers_version": "0.32.2",
                "alpha": alpha,
                "c": c,
                "shift": shift,
                "eps": 1e-5,
            }
        )
    )
    emb = fsq_codebook() if codebook is None else codebook
    torch.save({"path.emb": emb.half()}, root / "scheduler" / "scheduler_model.pth")
    (root / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "URSAPipeline",
                "transformer": ["diffnext", "URSATransformer3DModel"],
                "scheduler": ["diffnext", "KineticOptimalScheduler"],
                "tokenizer": ["transformers", "Qwen2TokenizerFast"],
            }
        )
    )
    return root


# ---- independent reference forward ---------------------------------------------------------
def _rms(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _positions(text_len: int, latent_shape) -> torch.Tensor:
    """(S, 3): text slot i -> (i, i, i); BOV -> (L, L, L); visual (f, y, x) -> (L + 1 + f, y, x)."""
    T, h, w = latent_shape
    rows = [[i, i, i] for i in range(text_len)] + [[text_len] * 3]
    rows += [[text_len + 1 + f, y, x] for f in range(T) for y in range(h) for x in range(w)]
    return torch.tensor(rows, dtype=torch.float64)


def _rope(x, pos, head_dim, theta):
    """Their FlexRotaryEmbedding: slot j (of head_dim/2) uses axis (t,h,w)[j%3] for j < 3*(D//8),
    else (h,w)[(j-3*(D//8))%2]; input halves (x1, x2) rotated, output written pair-interleaved."""
    r1 = head_dim // 8
    axes = [j % 3 for j in range(3 * r1)] + [
        1 + (j - 3 * r1) % 2 for j in range(3 * r1, head_dim // 2)
    ]
    inv = torch.tensor(
        [theta ** (-2 * j / head_dim) for j in range(head_dim // 2)], dtype=torch.float64
    )
    ang = torch.stack([pos[:, a] for a in axes], dim=-1) * inv  # (S, D/2)
    cos, sin = ang.cos()[:, None].to(x.dtype), ang.sin()[:, None].to(x.dtype)  # (S, 1, D/2)
    x1, x2 = x[..., : head_dim // 2], x[..., head_dim // 2 :]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


@torch.no_grad()
def reference_logits(
    state: dict,
    cfg: dict,
    text_ids: torch.Tensor,
    visual_ids: torch.Tensor,
    text_mask: torch.Tensor | None = None,
    pad_id: int | None = None,
) -> torch.Tensor:
    """The release's visual-token logits (B, T, h, w, K) float32, from the conventions: each row's
    real tokens (first 320) left-padded with the pad id to 320, then [text][BOV][codes +
    lm_vocab_size], no attention mask, logits z[:, -(N+1):-1]."""
    pad = cfg["pad_token_id"] if pad_id is None else pad_id
    rows = []
    for i in range(text_ids.shape[0]):
        real = [
            int(v) for j, v in enumerate(text_ids[i]) if text_mask is None or bool(text_mask[i, j])
        ][:MAX_PROMPT]
        rows.append([pad] * (MAX_PROMPT - len(real)) + real)
    text_ids = torch.tensor(rows)
    B, L = text_ids.shape
    shape = tuple(visual_ids.shape[1:])
    N = visual_ids[0].numel()
    D, nq, nkv = cfg["head_dim"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    ids = torch.cat(
        [
            text_ids,
            torch.full((B, 1), cfg["bov_token_id"]),
            visual_ids.flatten(1) + cfg["lm_vocab_size"],
        ],
        1,
    )
    pos = _positions(L, shape)
    x = state["model.embed_tokens.weight"][ids]
    for n in range(cfg["num_hidden_layers"]):
        p = lambda k: state[f"model.layers.{n}.{k}"]  # noqa: E731, B023 - used in this iteration only
        a = _rms(x, p("input_layernorm.weight"))
        q = (a @ p("self_attn.q_proj.weight").T).unflatten(-1, (nq, D))
        k = (a @ p("self_attn.k_proj.weight").T).unflatten(-1, (nkv, D))
        v = (a @ p("self_attn.v_proj.weight").T).unflatten(-1, (nkv, D))
        q, k = _rms(q, p("self_attn.q_norm.weight")), _rms(k, p("self_attn.k_norm.weight"))
        q, k = _rope(q, pos, D, cfg["rope_theta"]), _rope(k, pos, D, cfg["rope_theta"])
        k, v = (t.repeat_interleave(nq // nkv, dim=2) for t in (k, v))
        att = torch.einsum("bqhd,bkhd->bhqk", q, k) / D**0.5
        o = torch.einsum("bhqk,bkhd->bqhd", att.softmax(-1), v).flatten(2)
        x = x + o @ p("self_attn.o_proj.weight").T
        m = _rms(x, p("post_attention_layernorm.weight"))
        x = (
            x
            + (
                torch.nn.functional.silu(m @ p("mlp.gate_proj.weight").T)
                * (m @ p("mlp.up_proj.weight").T)
            )
            @ p("mlp.down_proj.weight").T
        )
    z = _rms(x, state["model.norm.weight"]) @ state["lm_head.weight"].T
    return z[:, -(N + 1) : -1].float().reshape(B, *shape, -1)


WORDS = [
    "<|endoftext|>",
    "motion=9.0,",
    "a",
    "red",
    "blue",
    "circle",
    "square",
    "moving",
    "left",
    "right",
    "up",
    "down",
    "worst",
    "quality,",
    "<unk>",
]


def make_tokenizer(folder: Path) -> Path:
    """A tiny word-level tokenizer saved like the release's tokenizer/ (tokenizer.json +
    tokenizer_config.json, pad token <|endoftext|>): ids are positions in WORDS."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|endoftext|>", unk_token="<unk>"
    ).save_pretrained(str(folder))
    return folder


def formula_weights(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Deterministic weights for a state dict's names and shapes, no RNG (golden fixtures store
    only names and shapes): sines scaled by 1/sqrt(fan_in); norm weights around 1, biases small."""
    out = {}
    for i, (name, shape) in enumerate(sorted(shapes.items())):
        n = int(torch.tensor(shape).prod()) if shape else 1
        wave = (
            torch.sin(torch.arange(n, dtype=torch.float64) * 1.618 + 0.37 * i).float().view(shape)
        )
        if len(shape) >= 2:
            out[name] = wave * (3.0 / n * shape[0]) ** 0.5  # ~ uniform(-sqrt(3/fan_in), ..) scale
        elif "norm" in name and name.endswith("weight"):
            out[name] = 1 + 0.1 * wave
        else:
            out[name] = 0.1 * wave
    return out


def formula_input(shape: list[int], phase: float) -> torch.Tensor:
    """A deterministic float32 input in [-1, 1] of `shape` (golden fixtures store only shape and phase)."""
    n = int(torch.tensor(shape).prod())
    return torch.sin(torch.arange(n, dtype=torch.float64) * 0.7310 + phase).float().view(shape)


def write_vae(root: Path, config: dict, weights: dict) -> Path:
    """root/vae/ (config.json + diffusion_pytorch_model.safetensors) as the release lays out a VAE; root."""
    (root / "vae").mkdir(parents=True, exist_ok=True)
    (root / "vae" / "config.json").write_text(json.dumps(config))
    save_file(weights, str(root / "vae" / "diffusion_pytorch_model.safetensors"))
    return root


def load_golden(
    path: Path,
) -> tuple[
    dict, dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
]:
    """A golden tokenizer fixture -> (vae config, state dict under the authors' names,
    {case: (input, ids, decoded)}). The file holds the config, the state dict's names and shapes
    (values: formula_weights, then the stored overrides) and, per case, the input's shape and
    phase with the ids and decoded output the authors' modules gave for it."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta, data = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    weights = formula_weights(json.loads(meta["shapes"]))
    weights.update(
        {k.removeprefix("override/"): v for k, v in data.items() if k.startswith("override/")}
    )
    cases = {
        name: (formula_input(shape, phase), data[f"ids_{name}"], data[f"decoded_{name}"])
        for name, (shape, phase) in json.loads(meta["inputs"]).items()
    }
    return json.loads(meta["config"]), weights, cases
