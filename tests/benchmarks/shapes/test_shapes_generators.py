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
