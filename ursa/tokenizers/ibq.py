"""The IBQ image tokenizer of the authors' IBQ1024 release (`vae/`, `AutoencoderVQ` with
`VQuantizer`): this project's implementation of that architecture, loading their state dict
strictly.

Architecture (their diffnext/models/autoencoders/autoencoder_vq.py on autoencoder_kl.py's
Encoder / Decoder, quantizers.py): a 2D convolutional autoencoder with GroupNorm(32) residual
blocks, a 2x downsample (pad right/bottom, 3x3 stride 2) after every encoder stage but the last
and a nearest 2x upsample + 3x3 after every decoder stage but the last, a mid block with one
single-head self-attention, optional extra attentions in the last encoder / first decoder stage
(`attn_down_block`, `attn_up_block`), and a codebook quantiser: id = argmax of the dot product
with the codebook rows (`quantizer.embedding.weight`, (K, D)), dequantised by lookup.

Shapes: images float (B, 3, H, W) in [-1, 1] <-> ids long (B, h, w); frames of a video are
coded one by one (ids (B, T = F, h, w)). Pixels as (v - 127.5) / 127.5 and back truncated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ursa.io import read_json_object
from ursa.tokenizers.base import VisualTokenizer, load_strict

CLASS_NAME = "AutoencoderVQ"
WEIGHTS = "diffusion_pytorch_model.safetensors"
DEFAULTS = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    latent_channels=16,
    norm_num_groups=32,
    num_vq_embeddings=16384,
    vq_embed_dim=8,
    attn_down_block=False,
    attn_up_block=False,
    decoder_dtype=None,
)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class Attention(nn.Module):
    """Single-head self-attention over the H*W positions of GroupNorm-ed input; the caller adds
    the residual. (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.group_norm = _norm(channels)
        self.to_q, self.to_k, self.to_v = (nn.Linear(channels, channels) for _ in range(3))
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = self.group_norm(x).flatten(2).transpose(1, 2)[:, None]  # (B, 1, HW, C)
        o = F.scaled_dot_product_attention(self.to_q(seq), self.to_k(seq), self.to_v(seq))[:, 0]
        return self.to_out[0](o).transpose(1, 2).reshape(b, c, h, w)


class ResBlock(nn.Module):
    """x -> shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class Resample(nn.Module):
    """down: pad right/bottom by one, 3x3 stride 2; up: nearest 2x, 3x3 (key conv)."""

    def __init__(self, channels: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv = (
            nn.Conv2d(channels, channels, 3, 2, 0)
            if down
            else nn.Conv2d(channels, channels, 3, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(
            F.pad(x, (0, 1, 0, 1))
            if self.down
            else F.interpolate(x, scale_factor=2.0, mode="nearest")
        )


class Stage(nn.Module):
    """ResBlocks, each followed by its attention where one exists (residual), then a resampler."""

    def __init__(
        self, cin: int, cout: int, depth: int, down: bool = False, up: bool = False
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(ResBlock(cin if i == 0 else cout, cout) for i in range(depth))
        self.attentions = nn.ModuleList()  # filled by attn_down_block / attn_up_block
        self.downsamplers = nn.ModuleList([Resample(cout, True)] if down else [])
        self.upsamplers = nn.ModuleList([Resample(cout, False)] if up else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = resnet(x)
            if i < len(self.attentions):
                x = x + self.attentions[i](x)
        for resample in [*self.downsamplers, *self.upsamplers]:
            x = resample(x)
        return x


class MidBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResBlock(channels, channels), ResBlock(channels, channels)])
        self.attentions = nn.ModuleList([Attention(channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        return self.resnets[1](x + self.attentions[0](x))


class Encoder(nn.Module):
    def __init__(self, cin: int, cout: int, dims: list[int], depth: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(cin, dims[0], 3, 1, 1)
        self.down_blocks = nn.ModuleList(
            Stage(dims[max(i - 1, 0)], d, depth, down=i < len(dims) - 1) for i, d in enumerate(dims)
        )
        self.mid_block = MidBlock(dims[-1])
        self.conv_norm_out, self.conv_out = _norm(dims[-1]), nn.Conv2d(dims[-1], cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for stage in self.down_blocks:
            x = stage(x)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class Decoder(nn.Module):
    def __init__(self, cin: int, cout: int, dims: list[int], depth: int) -> None:
        super().__init__()
        dims = list(reversed(dims))
        self.up_blocks = nn.ModuleList(
            Stage(dims[max(i - 1, 0)], d, depth + 1, up=i < len(dims) - 1)
            for i, d in enumerate(dims)
        )
        self.conv_in, self.mid_block = nn.Conv2d(cin, dims[0], 3, 1, 1), MidBlock(dims[0])
        self.conv_norm_out, self.conv_out = _norm(dims[-1]), nn.Conv2d(dims[-1], cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(x))
        for stage in self.up_blocks:
            x = stage(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Codebook(nn.Module):
    """VQuantizer: id = argmax_k <z, e_k>; z = e_id (key embedding.weight, (K, D))."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(size, dim)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D, h, w) -> ids long (B, h, w)."""
        return (z.movedim(1, -1) @ self.embedding.weight.T).argmax(-1)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, h, w) -> z (B, D, h, w)."""
        return self.embedding(ids).movedim(-1, 1)


class IBQAutoencoder(nn.Module):
    """encode: images float (B, 3, H, W) in [-1, 1] -> ids long (B, h, w); decode: ids -> images."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        c = {**DEFAULTS, **config}
        self.config = c
        dims, depth = list(c["block_out_channels"]), c["layers_per_block"]
        self.encoder = Encoder(c["in_channels"], c["latent_channels"], dims, depth)
        self.decoder = Decoder(c["latent_channels"], c["out_channels"], dims, depth)
        self.quant_conv = nn.Conv2d(c["latent_channels"], c["vq_embed_dim"], 1)
        self.post_quant_conv = nn.Conv2d(c["vq_embed_dim"], c["latent_channels"], 1)
        if c["attn_down_block"]:
            cast(nn.ModuleList, self.encoder.down_blocks[-1].attentions).extend(
                Attention(dims[-1]) for _ in range(depth)
            )
        if c["attn_up_block"]:
            cast(nn.ModuleList, self.decoder.up_blocks[0].attentions).extend(
                Attention(dims[-1]) for _ in range(depth + 1)
            )
        self.quantizer = Codebook(c["num_vq_embeddings"], c["vq_embed_dim"])

    @property
    def stride(self) -> int:
        return 2 ** (len(self.config["block_out_channels"]) - 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.quantizer.quantize(self.quant_conv(self.encoder(images)))

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        z = self.post_quant_conv(self.quantizer.dequantize(ids))
        return self.decoder(z.to(self.decoder.conv_in.weight.dtype))


def read_ibq_config(folder: Path) -> dict:
    """vae/config.json -> its dict, checked (class, quantiser, GroupNorm(32) divisibility)."""
    file = folder / "config.json"
    raw = read_json_object(file)
    c = {**DEFAULTS, **raw}
    problems = []
    if raw.get("_class_name", CLASS_NAME) != CLASS_NAME:
        problems.append(f"_class_name {CLASS_NAME!r}, got {raw.get('_class_name')!r}")
    if raw.get("_quantizer_name", "VQuantizer") != "VQuantizer":
        problems.append(f"_quantizer_name 'VQuantizer', got {raw.get('_quantizer_name')!r}")
    bad = [d for d in c["block_out_channels"] if d % 32]
    if c["norm_num_groups"] != 32 or bad:  # their blocks hard-code GroupNorm(32)
        problems.append(
            f"norm_num_groups 32 and block_out_channels multiples of 32, got {c['norm_num_groups']!r} "
            f"and {c['block_out_channels']!r}"
        )
    if problems:
        raise ValueError(f"release vae {str(file)!r}: expected " + "; ".join(problems))
    return c


def load_release_ibq(
    directory: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> IBQAutoencoder:
    """<release>/vae -> IBQAutoencoder with their weights loaded strictly (one error naming every
    missing, unexpected and mis-shaped tensor); `decoder_dtype` in the config casts the decoder."""
    folder = Path(directory) / "vae"
    missing = [f"vae/{n}" for n in ("config.json", WEIGHTS) if not (folder / n).is_file()]
    if missing:
        raise ValueError(
            f"release folder {str(directory)!r}: expected the IBQ image tokenizer files, got missing "
            f"{', '.join(missing)} (config.json: AutoencoderVQ; {WEIGHTS}: its weights)"
        )
    config = read_ibq_config(folder)
    with torch.device("meta"):
        model = IBQAutoencoder(config)
    load_strict(model, folder / WEIGHTS, dtype, device)
    if config["decoder_dtype"]:
        model.decoder.to(getattr(torch, config["decoder_dtype"]))
    return model.eval()


class ReleaseImageTokenizer(VisualTokenizer):
    """The IBQ1024 release's vae/ as a VisualTokenizer: uint8 (B, F, H, W, 3) <-> ids (B, F, h, w)
    (each frame an image; URSA's text-to-image has F = 1). codebook_embeddings are the codebook rows."""

    def __init__(
        self, directory: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        self.directory, self.device = Path(directory), torch.device(device)
        self.model = load_release_ibq(directory, dtype=dtype, device=device)

    @property
    def vocab_size(self) -> int:
        return self.model.config["num_vq_embeddings"]

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        s = self.model.stride
        if height % s or width % s:
            raise ValueError(
                f"image shape: expected H and W multiples of {s}, got (H, W) = ({height}, {width})"
            )
        return num_frames, height // s, width // s

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.validate_video(video)
        self.latent_shape(*video.shape[1:4])
        b = video.shape[0]
        x = (
            video.to(self.device)
            .flatten(0, 1)
            .permute(0, 3, 1, 2)
            .to(self.model.quant_conv.weight.dtype)
        )
        return self.model.encode((x - 127.5) / 127.5).unflatten(0, (b, -1)).cpu()

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        self.validate_ids(ids)
        y = self.model.decode(ids.to(self.device).flatten(0, 1).long()).float()
        pixels = (
            (y * 127.5 + 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        )  # truncation, as theirs
        return pixels.unflatten(0, (ids.shape[0], -1)).cpu()

    def codebook_embeddings(self) -> torch.Tensor:
        return self.model.quantizer.embedding.weight.detach().float().cpu()

    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256(json.dumps(self.model.config, sort_keys=True, default=str).encode())
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
        return h.hexdigest()[:16]
