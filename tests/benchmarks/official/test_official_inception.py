"""Inception metrics: local-weights resolution and the errors raised before any compute."""

import pytest
import torch

from benchmarks.official.inception import (INCEPTION_FILE, ImageTensorDataset,
                                          inception_metrics, inception_weights_path)
from benchmarks.official.resources import MissingResourceError


def test_weights_path_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("URSA_INCEPTION_WEIGHTS", str(tmp_path / "env.pth"))
    assert inception_weights_path(tmp_path / "arg.pth") == tmp_path / "arg.pth"
    assert inception_weights_path() == tmp_path / "env.pth"
    monkeypatch.delenv("URSA_INCEPTION_WEIGHTS")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert inception_weights_path() == tmp_path / "th" / "hub" / "checkpoints" / INCEPTION_FILE


def test_missing_weights_error_names_file_and_source(tmp_path):
    images = torch.zeros(4, 8, 8, 3, dtype=torch.uint8)
    with pytest.raises(MissingResourceError) as err:
        inception_metrics(images, images, weights_path=tmp_path / "w.pth")
    assert str(tmp_path / "w.pth") in str(err.value)
    assert "releases/download/v0.2.0/" + INCEPTION_FILE in str(err.value)


def test_argument_errors(tmp_path):
    images = torch.zeros(4, 8, 8, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="reference"):
        inception_metrics(images, None, fid=True)
    with pytest.raises(ValueError, match=r"uint8 \(N,H,W,3\)"):
        ImageTensorDataset(images.float())
    item = ImageTensorDataset(torch.arange(48, dtype=torch.uint8).view(1, 4, 4, 3))[0]
    assert item.shape == (3, 4, 4) and item[1, 0, 1] == 4  # channel 1 of pixel (0,1): 3*1+1
