import pytest
import torch

from benchmarks.shapes.generators import generate_reference
from benchmarks.shapes.prompts import load_suite, real_videos
from benchmarks.shapes.world import WorldConfig


def test_reference_generators(shapes_tokenizer):
    prompts = load_suite("i2v", 12, 0)
    real = real_videos(prompts)
    assert torch.equal(generate_reference("real", prompts), real)
    shuffled = generate_reference("shuffled", prompts, seed=1)
    assert torch.equal(shuffled[:, 0], real[:, 0])  # condition frame held
    assert all(not torch.equal(shuffled[i], real[i]) for i in range(12))  # no clip paired with its own prompt
    rand = generate_reference("random", prompts, shapes_tokenizer, seed=1)
    assert torch.equal(rand[:, 0], shapes_tokenizer.decode(shapes_tokenizer.encode(real[:, :1])) [:, 0])
    assert torch.equal(rand, generate_reference("random", prompts, shapes_tokenizer, seed=1))
    assert not torch.equal(rand, generate_reference("random", prompts, shapes_tokenizer, seed=2))


def test_bad_generator_arguments(shapes_tokenizer):
    prompts = load_suite("eval", 3, 0)
    with pytest.raises(ValueError, match="generator"):
        generate_reference("noise", prompts, shapes_tokenizer)
    with pytest.raises(ValueError, match="tokenizer"):
        generate_reference("random", prompts)
    with pytest.raises(ValueError, match="cfg"):
        generate_reference("real", prompts, cfg=WorldConfig(height=64, width=64))
    with pytest.raises(ValueError, match="prompts"):
        generate_reference("real", [])


def test_latent_condition_maps_pixel_frames_to_the_latents_holding_them() -> None:
    """random's held frames under temporal compression: causal 4x (17 pixel -> 5 latent frames,
    latent 0 = pixel 0), equal groups (8 -> 2), and no compression (the same frames)."""
    from benchmarks.shapes.generators import latent_condition

    cond = torch.zeros(3, 17, dtype=torch.bool)
    cond[0, 0] = True  # i2v
    cond[1, [0, 16]] = True  # interpolation
    cond[2, :5] = True  # extrapolation from 5 pixel frames = latents 0 and 1
    assert latent_condition(cond, 5).int().tolist() == [[1, 0, 0, 0, 0], [1, 0, 0, 0, 1], [1, 1, 0, 0, 0]]
    groups = torch.zeros(1, 12, dtype=torch.bool)
    groups[0, 11] = True
    assert latent_condition(groups, 3).int().tolist() == [[0, 0, 1]]
    assert torch.equal(latent_condition(cond, 17), cond)
