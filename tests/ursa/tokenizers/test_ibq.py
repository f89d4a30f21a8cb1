"""ursa.tokenizers.ibq: the IBQ1024 release's image tokenizer.

test_ibq_golden.safetensors: a tiny AutoencoderVQ + VQuantizer (block_out_channels [32, 32], K =
64, attention in the last encoder and first decoder stage) whose state dict (the authors'
parameter names and shapes, deterministic formula values) was run through the authors' own
modules (diffnext/models/autoencoders, once, outside this repository) on two images; the file
keeps their ids and decoded images. Ours must load that state dict strictly and reproduce both.
"""

import sys
from pathlib import Path

import pytest
import torch

from ursa.tokenizers.ibq import ReleaseImageTokenizer, load_release_ibq

sys.path.insert(0, str(Path(__file__).parents[1]))
from test_release_helpers import load_golden, write_vae  # noqa: E402

GOLDEN = Path(__file__).with_name("test_ibq_golden.safetensors")


@pytest.fixture(scope="module")
def golden():
    return load_golden(GOLDEN)


@pytest.fixture(scope="module")
def release(golden, tmp_path_factory) -> Path:
    config, weights, _ = golden
    return write_vae(tmp_path_factory.mktemp("release"), config, weights)


def test_encode_decode_reproduce_the_authors_modules(golden, release):
    images, ids_ref, decoded_ref = golden[2]["2"]
    vae = load_release_ibq(release)
    ids = vae.encode(images)
    assert ids.dtype == torch.long and torch.equal(ids, ids_ref) and ids.unique().numel() > 10
    assert (
        vae.decode(ids_ref) - decoded_ref
    ).abs().max() < 1e-3  # float summation order (threads, kernels) only


def test_quantiser_is_argmax_dot_product(release):
    vae = load_release_ibq(release)
    z = torch.randn(3, 4, 2, 5, generator=torch.Generator().manual_seed(0))  # (B, D, h, w)
    e = vae.quantizer.embedding.weight
    ref = torch.einsum("bdhw,kd->bhwk", z, e).argmax(-1)
    assert torch.equal(vae.quantizer.quantize(z), ref)
    assert torch.equal(vae.quantizer.dequantize(ref), e[ref].permute(0, 3, 1, 2))


def test_visual_tokenizer_frames_are_images(release):
    tok = ReleaseImageTokenizer(release)
    assert tok.vocab_size == 64 and tok.latent_shape(1, 16, 16) == (1, 8, 8)
    assert tok.codebook_embeddings().shape == (64, 4)
    video = torch.randint(
        0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    ids = tok.encode(video)
    assert ids.shape == (2, 3, 8, 8)
    assert torch.equal(ids[1, 2], tok.encode(video[1:2, 2:3])[0, 0])  # each frame on its own
    out = tok.decode(ids)
    assert out.dtype == torch.uint8 and out.shape == video.shape
    with pytest.raises(ValueError, match="multiples of 2"):
        tok.encode(video[:, :, :15])


def test_strict_load_errors(golden, tmp_path):
    config, weights, _ = golden
    with pytest.raises(
        ValueError, match="missing vae/config.json, vae/diffusion_pytorch_model.safetensors"
    ):
        load_release_ibq(tmp_path)
    bad = {k: v for k, v in weights.items() if not k.startswith("encoder.down_blocks.1.attentions")}
    write_vae(tmp_path / "a", config, bad)
    with pytest.raises(
        ValueError, match="missing 'encoder.down_blocks.1.attentions.0.group_norm.bias'"
    ):
        load_release_ibq(tmp_path / "a")
    write_vae(
        tmp_path / "b", dict(config, attn_up_block=False), weights
    )  # their weights, the wrong config
    with pytest.raises(ValueError, match="unexpected 'decoder.up_blocks.0.attentions.0"):
        load_release_ibq(tmp_path / "b")
    write_vae(tmp_path / "c", dict(config, _quantizer_name="LFQuantizer"), weights)
    with pytest.raises(ValueError, match="_quantizer_name 'VQuantizer', got 'LFQuantizer'"):
        load_release_ibq(tmp_path / "c")
