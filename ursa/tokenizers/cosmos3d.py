"""The FSQ video tokenizer of the authors' FSQ320 release (`vae/`, `AutoencoderVQCosmos3D`):
this project's implementation of that architecture, loading their state dict strictly.

Architecture (their diffnext/models/autoencoders/autoencoder_vq_cosmos3d.py, wavelets_utils.py,
quantizers.py; a diffusers-format Cosmos-DV): the first frame is repeated `patch_size` times, a
Haar wavelet transform folds patch_size^3 blocks into channels, then factorised (1,3,3) + (3,1,1)
causal convolutions (front replicate padding in time), per-frame GroupNorm(1), residual blocks,
spatial/temporal down- and upsampling, a mid block with attention over space then over time,
and FSQ (levels (8, 8, 8, 5, 5, 5), tanh-bounded, first level fastest) on `vq_embed_dim` = 6
channels. Pixels in [-1, 1] as (v - 127.5) / 127.5; decoded as clamp(127.5 y + 127.5) truncated
to uint8 (their VaeImageProcessor.pt_to_numpy).

Shapes: video float (B, 3, F, H, W) <-> ids long (B, T, h, w), T = (F - 1) // temporal_stride + 1,
h = H // spatial_stride, w = W // spatial_stride (F = 1 + temporal_stride * k).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ursa.io import read_json_object
from ursa.tokenizers.base import VisualTokenizer, load_strict
from ursa.tokenizers.fsq import (
    COSMOS_LEVELS,
    fsq_codebook,
    fsq_codes_to_indices,
    fsq_indices_to_codes,
)

CLASS_NAME = "AutoencoderVQCosmos3D"
WEIGHTS = "diffusion_pytorch_model.safetensors"
_HAAR = 2**-0.5


# ---- wavelets ------------------------------------------------------------------------------
def _haar_split(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One Haar level along `dim`: (a (x0 + x1), a (x0 - x1)) of each pair, a = 1/sqrt(2); an odd
    length gets the reflected element n-2 appended first (as their reflect pad does)."""
    if x.shape[dim] % 2:
        x = torch.cat([x, x.narrow(dim, x.shape[dim] - 2, 1)], dim)
    even, odd = x.unflatten(dim, (-1, 2)).unbind(dim + 1)
    return _HAAR * (even + odd), _HAAR * (even - odd)


def _haar_merge(low: torch.Tensor, high: torch.Tensor, dim: int) -> torch.Tensor:
    """Inverse of _haar_split for even lengths: pairs (a (l + h), a (l - h)) interleaved along dim."""
    return torch.stack([_HAAR * (low + high), _HAAR * (low - high)], dim + 1).flatten(dim, dim + 1)


def wavelet_down(x: torch.Tensor) -> torch.Tensor:
    """3D Haar: (B, C, T, H, W) -> (B, 8C, T/2, H/2, W/2), band (t, h, w) in {low, high}^3 at
    channels [(4 t + 2 h + w) C, ...), scaled by 1 / (2 sqrt 2) (the low band is the block mean)."""
    bands = [x]
    for dim in (2, 3, 4):  # time, then height, then width: low before high at each level
        bands = [part for b in bands for part in _haar_split(b, dim)]
    return torch.cat(bands, 1) / (2 * math.sqrt(2))


def wavelet_up(x: torch.Tensor) -> torch.Tensor:
    """Inverse of wavelet_down: (B, 8C, T, H, W) -> (B, C, 2T, 2H, 2W)."""
    bands = list((x * (2 * math.sqrt(2))).chunk(8, 1))
    for dim in (4, 3, 2):
        bands = [_haar_merge(bands[i], bands[i + 1], dim) for i in range(0, len(bands), 2)]
    return bands[0]


# ---- layers --------------------------------------------------------------------------------
class FrameNorm(nn.GroupNorm):
    """GroupNorm(1, C) over each frame's (C, H, W): (B, C, T, H, W) -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__(1, channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        y = super().forward(x.transpose(1, 2).flatten(0, 1))  # (B T, C, H, W)
        return y.unflatten(0, (b, -1)).transpose(1, 2)


class CausalConv(nn.Conv3d):
    """Conv3d, zero spatial padding `pad`, causal in time: the first frame replicated in front
    ((kt - 1) + (1 - stride_t) frames), no temporal padding after."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        pad: int = 0,
    ) -> None:
        super().__init__(cin, cout, kernel, stride, (0, pad, pad))
        self.front = kernel[0] - 1 + 1 - stride[0] if kernel[0] > 1 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.front:
            x = torch.cat([x[:, :, :1].expand(-1, -1, self.front, -1, -1), x], 2)
        return super().forward(x)


def factorized_conv(cin: int, cout: int) -> nn.Sequential:
    """A (1, 3, 3) spatial then a (3, 1, 1) causal temporal convolution (keys .0, .1)."""
    return nn.Sequential(CausalConv(cin, cout, (1, 3, 3), pad=1), CausalConv(cout, cout, (3, 1, 1)))


class Attention(nn.Module):
    """Single-head attention over the tokens of each frame ("space") or each pixel's frames
    ("time"), on FrameNorm-ed input, residual: (B, C, T, H, W) -> same."""

    def __init__(self, channels: int, axis: str) -> None:
        super().__init__()
        self.axis = axis
        self.group_norm = FrameNorm(channels)
        self.to_q, self.to_k, self.to_v = (nn.Linear(channels, channels) for _ in range(3))
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = self.group_norm(x)
        if self.axis == "space":
            seq = y.permute(0, 2, 3, 4, 1).reshape(b * t, 1, h * w, c)
        else:
            seq = y.permute(0, 3, 4, 2, 1).reshape(b * h * w, 1, t, c)
        o = self.to_out[0](
            F.scaled_dot_product_attention(self.to_q(seq), self.to_k(seq), self.to_v(seq))
        )
        if self.axis == "space":
            o = o.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)
        else:
            o = o.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)
        return x + o


class ResBlock(nn.Module):
    """x -> shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = FrameNorm(cin), factorized_conv(cin, cout)
        self.norm2, self.conv2 = FrameNorm(cout), factorized_conv(cout, cout)
        self.conv_shortcut = CausalConv(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return skip + self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))


class Downsample(nn.Module):
    """2x down in space (strided conv + average pool) and/or time (causal strided conv + pool)."""

    def __init__(self, channels: int, spatial: bool, temporal: bool) -> None:
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        # their layer always holds the spatial conv in down mode, the temporal one only if used
        self.conv1 = (
            CausalConv(channels, channels, (1, 3, 3), (1, 2, 2))
            if spatial or temporal
            else nn.Identity()
        )
        self.conv2 = (
            CausalConv(channels, channels, (3, 1, 1), (2, 1, 1)) if temporal else nn.Identity()
        )
        self.conv3 = CausalConv(channels, channels) if spatial or temporal else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial:
            x = self.conv1(F.pad(x, (0, 1, 0, 1))) + F.avg_pool3d(x, (1, 2, 2), (1, 2, 2))
        if self.temporal:
            x = torch.cat([x[:, :, :1], x], 2)
            x = self.conv2(x) + F.avg_pool3d(x, (2, 1, 1), (2, 1, 1))
        return self.conv3(x)


class Upsample(nn.Module):
    """2x up in time (repeat, drop the first frame, + causal conv) and/or space (repeat + conv)."""

    def __init__(self, channels: int, spatial: bool, temporal: bool) -> None:
        super().__init__()
        self.spatial, self.temporal = spatial, temporal
        self.conv1 = CausalConv(channels, channels, (3, 1, 1)) if temporal else nn.Identity()
        self.conv2 = (
            CausalConv(channels, channels, (1, 3, 3), pad=1)
            if spatial or temporal
            else nn.Identity()
        )
        self.conv3 = CausalConv(channels, channels) if spatial or temporal else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal:
            x = x.repeat_interleave(2, dim=2)[:, :, 1:]
            x = self.conv1(x) + x
        if self.spatial:
            x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
            x = self.conv2(x) + x
        return self.conv3(x)


class Stage(nn.Module):
    """`depth` ResBlocks (cin -> cout first), then an optional resampler (keys downsamplers.0 /
    upsamplers.0)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        depth: int,
        down: tuple[bool, bool] | None = None,
        up: tuple[bool, bool] | None = None,
    ) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(ResBlock(cin if i == 0 else cout, cout) for i in range(depth))
        self.downsamplers = nn.ModuleList([Downsample(cout, *down)] if down is not None else [])
        self.upsamplers = nn.ModuleList([Upsample(cout, *up)] if up is not None else [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in [*self.resnets, *self.downsamplers, *self.upsamplers]:
            x = block(x)
        return x


class MidBlock(nn.Module):
    """ResBlock, attention over space then time, ResBlock."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResBlock(channels, channels), ResBlock(channels, channels)])
        self.attentions = nn.ModuleList(
            [nn.Sequential(Attention(channels, "space"), Attention(channels, "time"))]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Encoder(nn.Module):
    """Pixels (B, 3, F, H, W) in [-1, 1] -> latents (B, latent_channels, T, h, w)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        dims: list[int],
        depth: int,
        patch: int,
        t_stride: int,
        s_stride: int,
    ) -> None:
        super().__init__()
        self.patch, levels = patch, int(math.log2(patch))
        s_downs, t_downs = int(math.log2(s_stride)) - levels, int(math.log2(t_stride)) - levels
        self.conv_in = factorized_conv(cin * patch**3, dims[0])
        self.down_blocks = nn.ModuleList(
            Stage(
                dims[i],
                dims[i + 1],
                depth,
                (i < s_downs, i < t_downs) if i < len(dims) - 2 else None,
            )
            for i in range(len(dims) - 1)
        )
        self.mid_block = MidBlock(dims[-1])
        self.conv_norm_out, self.conv_out = FrameNorm(dims[-1]), factorized_conv(dims[-1], cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat(
            [x[:, :, :1].expand(-1, -1, self.patch - 1, -1, -1), x], 2
        )  # first frame patch times
        for _ in range(int(math.log2(self.patch))):
            x = wavelet_down(x)
        x = self.conv_in(x)
        for stage in self.down_blocks:
            x = stage(x)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))


class Decoder(nn.Module):
    """Latents (B, latent_channels, T, h, w) -> pixels (B, 3, F, H, W).

    Mirrors their decoder's channel plan: block_out_channels reversed, stage i maps
    dims[max(i - 1, 0)] -> dims[i] with depth + 1 ResBlocks (the last entry of dims is unused),
    upsampling space in the first stages and time from the second."""

    def __init__(
        self,
        cin: int,
        cout: int,
        dims: list[int],
        depth: int,
        patch: int,
        t_stride: int,
        s_stride: int,
    ) -> None:
        super().__init__()
        dims = list(reversed(dims))
        self.patch, levels = patch, int(math.log2(patch))
        s_ups, t_ups = int(math.log2(s_stride)) - levels, int(math.log2(t_stride)) - levels
        self.conv_in, self.mid_block = factorized_conv(cin, dims[0]), MidBlock(dims[0])
        stages = []
        for i in range(len(dims) - 1):
            up = None
            if i < len(dims) - 2:
                temporal = 0 < i < t_ups + 1
                up = (temporal or (i < s_ups and s_ups > t_ups), temporal)
            stages.append(Stage(dims[max(i - 1, 0)], dims[i], depth + 1, up=up))
        self.up_blocks = nn.ModuleList(stages)
        last = dims[len(dims) - 2]
        self.conv_norm_out, self.conv_out = FrameNorm(last), factorized_conv(last, cout * patch**3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(x))
        for stage in self.up_blocks:
            x = stage(x)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        for _ in range(int(math.log2(self.patch))):
            x = wavelet_up(x)
        return x[:, :, self.patch - 1 :]


# ---- quantiser and model -------------------------------------------------------------------
def fsq_bound(z: torch.Tensor, levels: tuple[int, ...], eps: float = 1e-3) -> torch.Tensor:
    """z (..., D) -> tanh-bounded values whose rounding is a digit - L//2 of each level."""
    lv = torch.tensor(levels, dtype=z.dtype, device=z.device)
    half = (lv - 1) * (1 + eps) / 2
    offset = torch.where(lv % 2 == 0, 0.5, 0.0).to(z.dtype)
    return torch.tanh(z + torch.atanh(offset / half)) * half - offset


class Cosmos3DAutoencoder(nn.Module):
    """The release's FSQ video autoencoder. encode: video float (B, 3, F, H, W) in [-1, 1] ->
    ids long (B, T, h, w); decode: ids -> video float (B, 3, F, H, W) (unclamped)."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        c = {**DEFAULTS, **config}
        self.config, self.levels = c, COSMOS_LEVELS
        args = (
            list(c["block_out_channels"]),
            c["layers_per_block"],
            c["patch_size"],
            c["temporal_stride"],
            c["spatial_stride"],
        )
        self.encoder = Encoder(c["in_channels"], c["latent_channels"], *args)
        self.decoder = Decoder(c["latent_channels"], c["out_channels"], *args)
        self.quant_conv = CausalConv(c["latent_channels"], c["vq_embed_dim"])
        self.post_quant_conv = CausalConv(c["vq_embed_dim"], c["latent_channels"])

    @property
    def window(self) -> tuple[int, int]:
        """(pixel frames, latent frames) of one temporal tile (their TilingMixin: sample_frames)."""
        frames = self.config["sample_frames"]
        return frames, (frames - 1) // self.config["temporal_stride"] + 1

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        frames = video.shape[2]
        size = self.window[0]
        if frames <= size:
            z = self.encoder(video)
        else:  # windows of `size` frames overlapping by one; a window past the end is dropped (theirs)
            z = torch.cat(
                [
                    self.encoder(video[:, :, s : s + size])
                    for s in range(0, frames, size - 1)
                    if s + size <= frames
                ],
                2,
            )
        z = self.quant_conv(z)  # (B, D, T, h, w)
        digits = torch.round(fsq_bound(z.movedim(1, -1).float(), self.levels))  # (B, T, h, w, D)
        half = torch.tensor(self.levels, device=z.device) // 2
        return fsq_codes_to_indices(digits / half, self.levels)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        z = fsq_indices_to_codes(ids, self.levels).movedim(-1, 1)  # (B, D, T, h, w)
        z = self.post_quant_conv(z.to(self.quant_conv.weight.dtype))
        size, steps = self.window[1], z.shape[2]
        if steps <= size:
            return self.decoder(z)
        tiles = [
            self.decoder(z[:, :, s : s + size]) for s in range(0, steps, size) if s + size <= steps
        ]
        return torch.cat(
            [tiles[0], *(t[:, :, 1:] for t in tiles[1:])], 2
        )  # a window's first frame overlaps


# The authors' AutoencoderVQCosmos3D.__init__ defaults, for keys a config.json omits.
DEFAULTS = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    latent_channels=16,
    norm_num_groups=1,
    num_vq_embeddings=64000,
    vq_embed_dim=6,
    patch_size=4,
    temporal_stride=4,
    spatial_stride=8,
    sample_frames=17,
)


def read_vae_config(folder: Path) -> dict:
    """vae/config.json -> its dict, checked: the class, FSQ (8,8,8,5,5,5) sizes, GroupNorm(1), powers of 2."""
    file = folder / "config.json"
    raw = read_json_object(file)
    c = {**DEFAULTS, **raw}
    problems = []
    if raw.get("_class_name", CLASS_NAME) != CLASS_NAME:
        problems.append(f"_class_name {CLASS_NAME!r}, got {raw.get('_class_name')!r}")
    if raw.get("_quantizer_name", "FSQuantizer") != "FSQuantizer":
        problems.append(f"_quantizer_name 'FSQuantizer', got {raw.get('_quantizer_name')!r}")
    if (c["num_vq_embeddings"], c["vq_embed_dim"]) != (
        math.prod(COSMOS_LEVELS),
        len(COSMOS_LEVELS),
    ):
        problems.append(
            f"num_vq_embeddings 64000 and vq_embed_dim 6 (FSQ levels {COSMOS_LEVELS}), got "
            f"{c['num_vq_embeddings']} and {c['vq_embed_dim']}"
        )
    if c["norm_num_groups"] != 1:
        problems.append(f"norm_num_groups 1, got {c['norm_num_groups']!r}")
    for key in ("patch_size", "temporal_stride", "spatial_stride"):
        v = c[key]
        if not isinstance(v, int) or v < 1 or v & (v - 1):
            problems.append(f"{key} a power of 2, got {v!r}")
    if not problems and not c["patch_size"] <= min(c["temporal_stride"], c["spatial_stride"]):
        problems.append(
            f"patch_size <= temporal_stride and spatial_stride, got {c['patch_size']}, "
            f"{c['temporal_stride']}, {c['spatial_stride']}"
        )
    if len(c["block_out_channels"]) < 2:
        problems.append(
            f"block_out_channels with at least 2 entries, got {c['block_out_channels']!r}"
        )
    if problems:
        raise ValueError(f"release vae {str(file)!r}: expected " + "; ".join(problems))
    return c


def load_release_vae(
    directory: str | Path,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> Cosmos3DAutoencoder:
    """<release>/vae -> Cosmos3DAutoencoder with their weights loaded strictly (every key, every
    shape; one error naming what differs)."""
    folder = Path(directory) / "vae"
    missing = [f"vae/{n}" for n in ("config.json", WEIGHTS) if not (folder / n).is_file()]
    if missing:
        raise ValueError(
            f"release folder {str(directory)!r}: expected the FSQ video tokenizer files, got missing "
            f"{', '.join(missing)} (config.json: AutoencoderVQCosmos3D; {WEIGHTS}: its weights)"
        )
    config = read_vae_config(folder)
    with torch.device("meta"):
        model = Cosmos3DAutoencoder(config)
    load_strict(model, folder / WEIGHTS, dtype, device)
    return model.eval()


class ReleaseVideoTokenizer(VisualTokenizer):
    """The release's vae/ as a VisualTokenizer: uint8 (B, F, H, W, 3) <-> ids (B, T, h, w)."""

    def __init__(
        self, directory: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        self.directory, self.device = Path(directory), torch.device(device)
        self.model = load_release_vae(directory, dtype=dtype, device=device)
        self.t_stride, self.s_stride = (
            self.model.config["temporal_stride"],
            self.model.config["spatial_stride"],
        )

    @property
    def vocab_size(self) -> int:
        return math.prod(COSMOS_LEVELS)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        if (num_frames - 1) % self.t_stride or height % self.s_stride or width % self.s_stride:
            raise ValueError(
                f"video shape: expected F = 1 + {self.t_stride} k frames and H, W multiples of "
                f"{self.s_stride}, got (F, H, W) = ({num_frames}, {height}, {width})"
            )
        return (
            (num_frames - 1) // self.t_stride + 1,
            height // self.s_stride,
            width // self.s_stride,
        )

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.validate_video(video)
        self.latent_shape(*video.shape[1:4])
        size, frames = self.model.window[0], video.shape[1]
        if frames > size and (frames - 1) % (size - 1):
            raise ValueError(
                f"video frames: expected at most {size} or 1 + {size - 1} k (the tokenizer's "
                f"{size}-frame windows overlap by one; other counts would lose frames), got {frames}"
            )
        dtype = self.model.quant_conv.weight.dtype
        x = (video.to(self.device).permute(0, 4, 1, 2, 3).to(dtype) - 127.5) / 127.5
        return self.model.encode(x).cpu()

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        self.validate_ids(ids)
        y = self.model.decode(ids.to(self.device)).float()
        return (
            (y * 127.5 + 127.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 4, 1).cpu()
        )  # truncation, as theirs

    def codebook_embeddings(self) -> torch.Tensor:
        return fsq_codebook(COSMOS_LEVELS)

    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256(json.dumps(self.model.config, sort_keys=True, default=str).encode())
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().float().cpu().numpy().tobytes()[:4096])
        return h.hexdigest()[:16]
