"""CosmosTokenizer through its real loading path (torch.jit.load) on small randomly initialised
encoder / decoder modules scripted here with the released checkpoints' input/output contract:
encoder video (B, 3, F, H, W) in [-1, 1] -> (indices (B, T, h, w), codes (B, D, T, h, w), loss),
decoder indices -> video (B, 3, F, H, W) in [-1, 1], causal in time (F = 1 + ct * (T - 1))."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ursa.tokenizers.cosmos import CosmosTokenizer, MissingFilesError, resolve_geometry
from ursa.tokenizers.fsq import COSMOS_LEVELS, fsq_codebook, fsq_indices_to_codes

# torch >= 2.10 flags TorchScript as deprecated; Cosmos checkpoints are TorchScript, so the tests script
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


class TinyEncoder(nn.Module):
    """Patchify (first frame alone, then groups of ct frames), project to D = len(levels), FSQ-quantise."""

    def __init__(self, levels: tuple[int, ...], ct: int, s: int) -> None:
        super().__init__()
        d = len(levels)
        self.first = nn.Conv3d(3, d, kernel_size=(1, s, s), stride=(1, s, s))
        self.rest = nn.Conv3d(3, d, kernel_size=(ct, s, s), stride=(ct, s, s))
        sizes = torch.tensor(levels)
        self.register_buffer("sizes", sizes.view(1, d, 1, 1, 1))
        self.register_buffer(
            "basis",
            torch.cumprod(torch.cat([sizes.new_ones(1), sizes[:-1]]), 0).view(1, d, 1, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = torch.cat([self.first(x[:, :, :1]), self.rest(x[:, :, 1:])], dim=2)  # (B, D, T, h, w)
        digits = torch.round(
            (torch.tanh(3 * z) + 1) / 2 * (self.sizes - 1)
        ).long()  # (B, D, T, h, w) in [0, L)
        codes = digits.float() / torch.div(self.sizes, 2, rounding_mode="floor").float() - 1.0
        return (digits * self.basis).sum(1), codes, torch.zeros(())


class TinyDecoder(nn.Module):
    """indices -> FSQ codes -> transposed patchify back to pixels in [-1, 1]."""

    def __init__(self, levels: tuple[int, ...], ct: int, s: int) -> None:
        super().__init__()
        d = len(levels)
        self.first = nn.ConvTranspose3d(d, 3, kernel_size=(1, s, s), stride=(1, s, s))
        self.rest = nn.ConvTranspose3d(d, 3, kernel_size=(ct, s, s), stride=(ct, s, s))
        sizes = torch.tensor(levels)
        self.register_buffer("sizes", sizes.view(1, d, 1, 1, 1))
        self.register_buffer(
            "basis",
            torch.cumprod(torch.cat([sizes.new_ones(1), sizes[:-1]]), 0).view(1, d, 1, 1, 1),
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        digits = (
            torch.div(ids.unsqueeze(1), self.basis, rounding_mode="floor") % self.sizes
        )  # (B, D, T, h, w)
        codes = (digits.float() / torch.div(self.sizes, 2, rounding_mode="floor").float() - 1.0).to(
            self.first.weight.dtype
        )
        return torch.tanh(
            torch.cat([self.first(codes[:, :, :1]), self.rest(codes[:, :, 1:])], dim=2)
        )


def script_checkpoint(
    folder: Path,
    levels: tuple[int, ...] = COSMOS_LEVELS,
    ct: int = 4,
    s: int = 8,
    seed: int = 0,
    config: dict | None = None,
) -> Path:
    """Write encoder.jit / decoder.jit (torch.jit.save of scripted random modules) and config.json."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(TinyEncoder(levels, ct, s).eval()), str(folder / "encoder.jit"))
    torch.jit.save(torch.jit.script(TinyDecoder(levels, ct, s).eval()), str(folder / "decoder.jit"))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def clips(n: int, frames: int = 5, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        0,
        256,
        (n, frames, size, size, 3),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(seed),
    )


@pytest.fixture(scope="module")
def dv4x8x8(tmp_path_factory) -> Path:
    return script_checkpoint(tmp_path_factory.mktemp("ckpt") / "Cosmos-0.1-Tokenizer-DV4x8x8")


def test_round_trip_ids_in_range_decode_shape_and_fsq_codebook(dv4x8x8: Path) -> None:
    tok = CosmosTokenizer(
        dv4x8x8, batch_size=2
    )  # geometry from the folder name, levels the release's
    assert tok.vocab_size == 64000 and tok.latent_shape(17, 32, 48) == (5, 4, 6)
    video = clips(3)
    ids = tok.encode(video)
    assert ids.shape == (3, 2, 2, 2) and ids.dtype == torch.long
    assert 0 <= int(ids.min()) and int(ids.max()) < 64000 and len(ids.unique()) > 1
    assert torch.equal(
        ids, torch.cat([tok.encode(video[i : i + 1]) for i in range(3)])
    )  # chunking changes nothing
    out = tok.decode(ids)
    assert out.shape == video.shape and out.dtype == torch.uint8
    codebook = tok.codebook_embeddings()
    assert codebook.shape == (64000, 6) and torch.equal(codebook, fsq_codebook(COSMOS_LEVELS))
    # the decoder sees exactly the codebook rows of the ids: decoding equals the scripted math on those codes
    torch.manual_seed(0)
    TinyEncoder(COSMOS_LEVELS, 4, 8)  # the same draws as script_checkpoint: encoder, then decoder
    decoder = TinyDecoder(COSMOS_LEVELS, 4, 8)
    codes = codebook[ids].movedim(-1, 1)  # (B, 6, T, h, w)
    expect = torch.tanh(
        torch.cat([decoder.first(codes[:, :, :1]), decoder.rest(codes[:, :, 1:])], dim=2)
    )
    assert torch.equal(fsq_indices_to_codes(ids).movedim(-1, 1), codes)
    assert (
        out.int() - ((expect + 1) / 2 * 255 + 0.5).floor().int().permute(0, 2, 3, 4, 1)
    ).abs().max() <= 1


def test_geometry_from_config_json_and_options(tmp_path: Path) -> None:
    folder = script_checkpoint(
        tmp_path / "ckpt",
        levels=(4, 4, 3),
        ct=8,
        s=16,
        config={"levels": [4, 4, 3], "temporal_compression": 8, "spatial_compression": 16},
    )
    tok = CosmosTokenizer(folder)
    assert tok.vocab_size == 48 and tok.codebook_embeddings().shape == (48, 3)
    assert tok.encode(clips(1, frames=9, size=32)).shape == (1, 2, 2, 2)
    assert (
        resolve_geometry(folder, levels=[4, 4, 3], temporal_compression=8).spatial_compression == 16
    )
    with pytest.raises(ValueError, match="temporal_compression is 4 in the options but 8"):
        resolve_geometry(folder, temporal_compression=4)
    with pytest.raises(ValueError, match="temporal_compression: expected one of"):
        resolve_geometry(tmp_path / "unnamed")


def test_frames_and_sizes_that_do_not_fit_are_clear_errors(dv4x8x8: Path) -> None:
    tok = CosmosTokenizer(dv4x8x8)
    with pytest.raises(
        ValueError,
        match=r"expected 1 \+ 4 \* k frames .*got 4 and height and width multiples of 8, got 12 x 16",
    ):
        tok.encode(clips(1, frames=4, size=16)[:, :, :12])
    with pytest.raises(
        ValueError, match=r"video: expected uint8 tensor of shape \(B, F, H, W, 3\)"
    ):
        tok.encode(clips(1).float())
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 64000\)"):
        tok.decode(torch.full((1, 2, 2, 2), 64000))


def test_levels_that_do_not_match_the_checkpoint_are_caught(dv4x8x8: Path) -> None:
    """A wrong `levels` would give the metric path a wrong codebook: the encoder's codes expose it."""
    tok = CosmosTokenizer(dv4x8x8, levels=[8, 8, 8, 5, 5, 6])
    with pytest.raises(ValueError, match="codes do not map to its indices under FSQ levels"):
        tok.encode(clips(1))


def test_missing_files_are_listed_together_with_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(MissingFilesError) as err:
        CosmosTokenizer(tmp_path / "Cosmos-0.1-Tokenizer-DV4x8x8")
    msg = str(err.value)
    assert "2 required file(s) missing" in msg and "encoder.jit" in msg and "decoder.jit" in msg
    assert "huggingface-cli download nvidia/Cosmos-0.1-Tokenizer-DV4x8x8" in msg
    folder = tmp_path / "DV4x8x8"
    folder.mkdir()
    (folder / "encoder.jit").write_bytes(b"not a zip")
    (folder / "decoder.jit").write_bytes(b"")
    with pytest.raises(ValueError, match="encoder.jit: expected a TorchScript module"):
        CosmosTokenizer(folder)


def test_fingerprint_follows_the_weights(dv4x8x8: Path, tmp_path: Path) -> None:
    other = script_checkpoint(tmp_path / "DV4x8x8", seed=1)
    a, b = CosmosTokenizer(dv4x8x8), CosmosTokenizer(other)
    assert (
        a.fingerprint() == CosmosTokenizer(dv4x8x8).fingerprint()
        and a.fingerprint() != b.fingerprint()
    )
    assert math.prod(a.geometry.levels) == a.vocab_size


def test_bfloat16_as_nvidia_runs_it(dv4x8x8: Path) -> None:
    """dtype bfloat16 casts the modules and the input; ids stay valid and mostly agree with float32."""
    full, half = CosmosTokenizer(dv4x8x8), CosmosTokenizer(dv4x8x8, dtype="bfloat16")
    video = clips(2)
    ids = half.encode(video)
    assert ids.dtype == torch.long and int(ids.max()) < 64000
    assert (
        ids == full.encode(video)
    ).float().mean() > 0.9  # bfloat16 rounding may move a few codes across a level
    assert half.decode(ids).shape == video.shape
    with pytest.raises(ValueError, match="dtype: expected one of float32, bfloat16"):
        CosmosTokenizer(dv4x8x8, dtype="float16")
