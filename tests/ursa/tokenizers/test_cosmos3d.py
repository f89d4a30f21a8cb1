"""ursa.tokenizers.cosmos3d: the FSQ320 release's video tokenizer.

test_cosmos3d_golden.safetensors: a tiny AutoencoderVQCosmos3D (the release's config keys;
block_out_channels [4, 8, 8, 8], patch 2, 4x8x8 compression, 9-frame windows) whose state dict
(the authors' parameter names and shapes, deterministic formula values) was run through the
authors' own modules (diffnext/models/autoencoders, once, outside this repository) on two clips
(9 and 17 frames: one and two windows); the file keeps their ids and decoded videos. Our
implementation must load that state dict strictly and reproduce both.
"""

import math
import sys
from pathlib import Path

import pytest
import torch

from ursa.tokenizers.cosmos3d import (
    ReleaseVideoTokenizer,
    fsq_bound,
    load_release_vae,
    wavelet_down,
    wavelet_up,
)
from ursa.tokenizers.fsq import COSMOS_LEVELS, fsq_codes_to_indices, fsq_indices_to_codes

sys.path.insert(0, str(Path(__file__).parents[1]))
from test_release_helpers import load_golden, write_vae  # noqa: E402

GOLDEN = Path(__file__).with_name("test_cosmos3d_golden.safetensors")


@pytest.fixture(scope="module")
def golden():
    return load_golden(GOLDEN)


@pytest.fixture(scope="module")
def release(golden, tmp_path_factory) -> Path:
    config, weights, _ = golden
    return write_vae(tmp_path_factory.mktemp("release"), config, weights)


@pytest.mark.parametrize("case", ["9", "17"])
def test_encode_decode_reproduce_the_authors_modules(golden, release, case):
    video, ids_ref, decoded_ref = golden[2][case]
    vae = load_release_vae(release)
    ids = vae.encode(video)
    assert ids.dtype == torch.long and torch.equal(ids, ids_ref) and ids.unique().numel() > 5
    decoded = vae.decode(ids_ref)
    assert decoded.shape == video.shape == decoded_ref.shape
    assert (decoded - decoded_ref).abs().max() < 1e-4


def test_fsq_quantiser_every_code_round_trips():
    # For each of the 64000 codes, the latent whose tanh bound lands on its digits quantises back
    # to it: bound, rounding, digit offsets and the mixed radix (first level fastest) agree.
    levels = torch.tensor(COSMOS_LEVELS, dtype=torch.float64)
    ids = torch.arange(math.prod(COSMOS_LEVELS))
    digits = fsq_indices_to_codes(ids).double() * (levels // 2)  # (K, 6) integers, digit - L//2
    half, offset = (levels - 1) * (1 + 1e-3) / 2, torch.where(levels % 2 == 0, 0.5, 0.0)
    z = torch.atanh((digits + offset) / half) - torch.atanh(offset / half)  # fsq_bound(z) == digits
    assert torch.equal(torch.round(fsq_bound(z, COSMOS_LEVELS)), digits)
    assert torch.equal(
        fsq_codes_to_indices(torch.round(fsq_bound(z, COSMOS_LEVELS)) / (levels // 2)), ids
    )


def test_wavelets_invert_and_average():
    x = torch.randn(2, 3, 4, 6, 8, generator=torch.Generator().manual_seed(0))
    down = wavelet_down(x)
    assert down.shape == (2, 24, 2, 3, 4)
    assert torch.allclose(
        down[:, :3],
        x.unflatten(2, (2, 2)).unflatten(4, (3, 2)).unflatten(6, (4, 2)).mean((3, 5, 7)),
        atol=1e-6,
    )  # the all-low band is each 2x2x2 block's mean
    assert (wavelet_up(down) - x).abs().max() < 1e-5


def test_visual_tokenizer_uint8(release):
    tok = ReleaseVideoTokenizer(release)
    assert tok.vocab_size == 64000 and tok.latent_shape(17, 16, 24) == (5, 2, 3)
    video = torch.randint(
        0, 256, (2, 9, 16, 24, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    ids = tok.encode(video)
    assert ids.shape == (2, 3, 2, 3)
    assert torch.equal(
        ids, tok.model.encode((video.permute(0, 4, 1, 2, 3).float() - 127.5) / 127.5)
    )
    out = tok.decode(ids)
    assert out.dtype == torch.uint8 and out.shape == video.shape
    with pytest.raises(ValueError, match="F = 1 \\+ 4 k frames"):
        tok.encode(video[:, :8])
    with pytest.raises(ValueError, match="windows overlap by one"):
        tok.encode(torch.zeros(1, 13, 16, 24, 3, dtype=torch.uint8))


def test_strict_load_errors(golden, tmp_path):
    config, weights, _ = golden
    with pytest.raises(
        ValueError, match="missing vae/config.json, vae/diffusion_pytorch_model.safetensors"
    ):
        load_release_vae(tmp_path)
    bad = dict(weights)
    bad.pop("encoder.conv_in.0.weight")
    bad["encoder.extra.weight"] = torch.zeros(1)
    bad["decoder.conv_out.1.bias"] = torch.zeros(5)
    write_vae(tmp_path / "a", config, bad)
    with pytest.raises(ValueError) as err:
        load_release_vae(tmp_path / "a")
    msg = str(err.value)
    assert "3 problems" in msg and "missing 'encoder.conv_in.0.weight'" in msg
    assert (
        "unexpected 'encoder.extra.weight'" in msg
        and "'decoder.conv_out.1.bias' has shape (5,)" in msg
    )
    write_vae(tmp_path / "b", dict(config, norm_num_groups=32, vq_embed_dim=4), weights)
    with pytest.raises(ValueError, match="vq_embed_dim 6.*norm_num_groups 1, got 32"):
        load_release_vae(tmp_path / "b")
