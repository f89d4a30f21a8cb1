import numpy as np
import pytest
import torch

from benchmarks.shapes.generators import caption_distance, generate_reference, nearest_training
from benchmarks.shapes.prompts import load_suite, real_videos
from benchmarks.shapes.world import WorldConfig, parse_caption


def test_reference_generators(shapes_tokenizer):
    prompts = load_suite("i2v", 12, 0)
    real = real_videos(prompts)
    assert torch.equal(generate_reference("real", prompts), real)
    shuffled = generate_reference("shuffled", prompts, seed=1)
    assert torch.equal(shuffled[:, 0], real[:, 0])  # condition frame held
    assert all(
        not torch.equal(shuffled[i], real[i]) for i in range(12)
    )  # no clip paired with its own prompt
    rand = generate_reference("random", prompts, shapes_tokenizer, seed=1)
    assert torch.equal(
        rand[:, 0], shapes_tokenizer.decode(shapes_tokenizer.encode(real[:, :1]))[:, 0]
    )
    assert torch.equal(rand, generate_reference("random", prompts, shapes_tokenizer, seed=1))
    assert not torch.equal(rand, generate_reference("random", prompts, shapes_tokenizer, seed=2))


def test_static_repeats_the_first_frame():
    prompts = load_suite("interpolation", 6, 0)
    real, static = real_videos(prompts), generate_reference("static", prompts)
    assert torch.equal(static[:, :-1], real[:, :1].expand_as(static[:, :-1]))
    assert torch.equal(static[:, -1], real[:, -1])  # interpolation's last frame is a held condition


def test_memoriser_recalls_the_nearest_training_clip():
    cfg = WorldConfig(frames=4, height=16, width=16, max_objects=1, speed=1.0)
    prompts, train = load_suite("eval", 30, 0, cfg), load_suite("train", 512, 0, cfg)
    clips = generate_reference("memoriser", prompts, train=train, seed=0)
    by_clip = {t.real().tobytes(): t for t in train}
    for p, t, clip in zip(
        prompts, nearest_training(prompts, train, np.random.default_rng(0)), clips
    ):
        (want,), (got,), (drawn,) = (
            p.spec,
            by_clip[clip.numpy().tobytes()].spec,
            t.spec,
        )  # a training clip
        assert drawn.shape != want.shape and (drawn.colour, drawn.size) == (want.colour, want.size)
        # right colour, size and motion; a shape seen in training, so never the held-out one
        assert (got.colour, got.size, got.motion) == (want.colour, want.size, want.motion)
        assert got.shape != want.shape
    one = parse_caption("a small red circle moving up")
    assert caption_distance(one, parse_caption("a small red square moving up")) == 1
    # the best pairing is with the red object (shape + size = 3), plus one object too many (100)
    assert (
        caption_distance(
            one, parse_caption("a small blue circle moving up and a large red square moving up")
        )
        == 103
    )


def test_bad_generator_arguments(shapes_tokenizer):
    prompts = load_suite("eval", 3, 0)
    with pytest.raises(ValueError, match="generator"):
        generate_reference("noise", prompts, shapes_tokenizer)
    with pytest.raises(ValueError, match="tokenizer"):
        generate_reference("random", prompts)
    with pytest.raises(ValueError, match="train"):
        generate_reference("memoriser", prompts)
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
    assert latent_condition(cond, 5).int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 0, 0, 0, 1],
        [1, 1, 0, 0, 0],
    ]
    groups = torch.zeros(1, 12, dtype=torch.bool)
    groups[0, 11] = True
    assert latent_condition(groups, 3).int().tolist() == [[0, 0, 1]]
    assert torch.equal(latent_condition(cond, 17), cond)
