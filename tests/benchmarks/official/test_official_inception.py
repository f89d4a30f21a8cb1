"""Inception metrics: local-weights resolution and the errors raised before any compute."""

import pytest
import torch

from benchmarks.official.inception import (
    INCEPTION_FILE,
    ImageTensorDataset,
    inception_metrics,
    inception_weights_path,
)
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


def test_small_samples_adapt_is_splits_and_kid_subsets(tmp_path, monkeypatch):
    """torch-fidelity's fixed 10 IS splits: NaN below 10 images, exactly 1.0 at 10 (its own
    isc_features_to_metric on logits that do differ); ours lower the split count and refuse
    below 10.
    KID: at N <= kid_subset_size every subset is the whole sets, so one is drawn."""
    import torch_fidelity
    from torch_fidelity.metric_isc import isc_features_to_metric

    from benchmarks.official.inception import inception_metrics, is_splits

    logits = torch.randn(10, 1008, generator=torch.Generator().manual_seed(0)) * 5
    assert isc_features_to_metric(logits, splits=10)["inception_score_mean"] == pytest.approx(1.0)
    assert isc_features_to_metric(logits, splits=is_splits(10))["inception_score_mean"] > 2.0
    assert [is_splits(n) for n in (10, 19, 99, 100, 50_000)] == [1, 1, 9, 10, 10]
    with pytest.raises(ValueError, match="at least 10 generated images .* got 9"):
        is_splits(9)

    seen = {}
    monkeypatch.setattr(torch_fidelity, "calculate_metrics", lambda **kw: seen.update(kw) or {})
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    images = lambda n: torch.zeros(n, 8, 8, 3, dtype=torch.uint8)  # noqa: E731
    out = inception_metrics(images(64), images(64), weights_path=weights, kid_subset_size=1000)
    assert (seen["isc_splits"], seen["kid_subset_size"], seen["kid_subsets"]) == (6, 64, 1)
    assert out == {"n_generated": 64, "is_splits": 6, "n_reference": 64, "kid_subsets": 1}
    inception_metrics(images(64), images(100), weights_path=weights, kid_subset_size=1000)
    # the larger set's subsets differ
    assert (seen["kid_subset_size"], seen["kid_subsets"]) == (64, 100)


def test_inception_figures_carry_n_and_their_caveat_in_reports():
    from harness import plugins

    derived, notes = plugins.derived_metrics(
        {
            "fid.inception": 80.0,
            "fid.inception.n": 64.0,
            "is.inception": 1.5,
            "is.inception.n": 64.0,
        }
    )
    assert derived == {} and len(notes) == 2
    assert notes[0].startswith("fid.inception is on N = 64 generated images")
    assert "biased upwards" in notes[0]
    assert notes[1].startswith("is.inception is on N = 64") and "exactly 1.0 at 10" in notes[1]
