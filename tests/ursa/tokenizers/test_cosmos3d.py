"""ursa.tokenizers.cosmos3d: the FSQ320 release's video tokenizer.

test_cosmos3d_golden.safetensors holds a tiny AutoencoderVQCosmos3D (the release's config keys;
block_out_channels [4, 8, 8, 8], patch 2, 4x8x8 compression, 9-frame windows) with random weights
under the authors' parameter names, two clips (9 and 17 frames: one and two windows) and the ids
and decoded videos the authors' own modules (diffnext/models/autoencoders, run once outside this
repository) produced for them. Our implementation must load that state dict strictly and
reproduce both.
"""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ursa.tokenizers.cosmos3d import (ReleaseVideoTokenizer, fsq_bound, load_release_vae, wavelet_down,
                                      wavelet_up)
from ursa.tokenizers.fsq import COSMOS_LEVELS, fsq_codes_to_indices, fsq_indices_to_codes

GOLDEN = Path(__file__).with_name("test_cosmos3d_golden.safetensors")


@pytest.fixture(scope="module")
def golden() -> tuple[dict, dict]:
    with safe_open(str(GOLDEN), framework="pt") as f:
        return json.loads(f.metadata()["config"]), {k: f.get_tensor(k) for k in f.keys()}


def write_vae(root: Path, config: dict, weights: dict) -> Path:
    (root / "vae").mkdir(parents=True, exist_ok=True)
    (root / "vae" / "config.json").write_text(json.dumps(config))
    save_file(weights, str(root / "vae" / "diffusion_pytorch_model.safetensors"))
    return root


@pytest.fixture(scope="module")
def release(golden, tmp_path_factory) -> Path:
    config, data = golden
    weights = {k.removeprefix("weights/"): v for k, v in data.items() if k.startswith("weights/")}
    return write_vae(tmp_path_factory.mktemp("release"), config, weights)


@pytest.mark.parametrize("frames", [9, 17])
def test_encode_decode_reproduce_the_authors_modules(golden, release, frames):
    _, data = golden
    vae = load_release_vae(release)
    ids = vae.encode(data[f"video{frames}"])
    assert ids.dtype == torch.long and torch.equal(ids, data[f"ids{frames}"])
    decoded = vae.decode(data[f"ids{frames}"])
    assert decoded.shape == (1, 3, frames, 16, 24)
    assert (decoded - data[f"decoded{frames}"]).abs().max() < 1e-4


def test_fsq_quantiser_every_code_round_trips():
    # For each of the 64000 codes, the latent whose tanh bound lands on its digits quantises back
    # to it: bound, rounding, digit offsets and the mixed radix (first level fastest) agree.
    levels = torch.tensor(COSMOS_LEVELS, dtype=torch.float64)
    ids = torch.arange(math.prod(COSMOS_LEVELS))
    digits = fsq_indices_to_codes(ids).double() * (levels // 2)  # (K, 6) integers, digit - L//2
    half, offset = (levels - 1) * (1 + 1e-3) / 2, torch.where(levels % 2 == 0, 0.5, 0.0)
    z = torch.atanh((digits + offset) / half) - torch.atanh(offset / half)  # fsq_bound(z) == digits
    assert torch.equal(torch.round(fsq_bound(z, COSMOS_LEVELS)), digits)
    assert torch.equal(fsq_codes_to_indices(torch.round(fsq_bound(z, COSMOS_LEVELS)) / (levels // 2)), ids)


def test_wavelets_invert_and_average():
    x = torch.randn(2, 3, 4, 6, 8, generator=torch.Generator().manual_seed(0))
    down = wavelet_down(x)
    assert down.shape == (2, 24, 2, 3, 4)
    assert torch.allclose(down[:, :3], x.unflatten(2, (2, 2)).unflatten(4, (3, 2)).unflatten(6, (4, 2))
                          .mean((3, 5, 7)), atol=1e-6)  # the all-low band is each 2x2x2 block's mean
    assert (wavelet_up(down) - x).abs().max() < 1e-5


def test_visual_tokenizer_uint8(release):
    tok = ReleaseVideoTokenizer(release)
    assert tok.vocab_size == 64000 and tok.latent_shape(17, 16, 24) == (5, 2, 3)
    video = torch.randint(0, 256, (2, 9, 16, 24, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    ids = tok.encode(video)
    assert ids.shape == (2, 3, 2, 3)
    out = tok.decode(ids)
    assert out.dtype == torch.uint8 and out.shape == video.shape
    with pytest.raises(ValueError, match="F = 1 \\+ 4 k frames"):
        tok.encode(video[:, :8])
    with pytest.raises(ValueError, match="windows overlap by one"):
        tok.encode(torch.zeros(1, 13, 16, 24, 3, dtype=torch.uint8))


def test_strict_load_errors(golden, tmp_path):
    config, data = golden
    weights = {k.removeprefix("weights/"): v for k, v in data.items() if k.startswith("weights/")}
    with pytest.raises(ValueError, match="missing vae/config.json, vae/diffusion_pytorch_model.safetensors"):
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
    assert "unexpected 'encoder.extra.weight'" in msg and "'decoder.conv_out.1.bias' has shape (5,)" in msg
    write_vae(tmp_path / "b", dict(config, norm_num_groups=32, vq_embed_dim=4), weights)
    with pytest.raises(ValueError, match="vq_embed_dim 6.*norm_num_groups 1, got 32"):
        load_release_vae(tmp_path / "b")
