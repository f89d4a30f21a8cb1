"""Strict VAE weight loading: every missing, unexpected and mis-shaped tensor named in one error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ursa.tokenizers.base import load_strict


def _meta() -> torch.nn.Module:
    with torch.device("meta"):
        return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))


def test_loads_in_dtype_and_names_every_problem(tmp_path: Path) -> None:
    good = {
        "0.weight": torch.ones(4, 3),
        "0.bias": torch.zeros(4),
        "1.weight": torch.ones(2, 4),
        "1.bias": torch.zeros(2),
    }
    save_file(good, str(tmp_path / "good.safetensors"))
    model = _meta()
    load_strict(model, tmp_path / "good.safetensors", torch.bfloat16, "cpu")
    assert model[0].weight.dtype == torch.bfloat16 and model[0].weight.device.type == "cpu"
    assert torch.equal(model[1].weight.float(), torch.ones(2, 4))

    bad = {
        "0.weight": torch.ones(4, 5),
        "1.weight": torch.ones(2, 4),
        "1.bias": torch.zeros(2),
        "extra": torch.ones(1),
    }
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError) as err:
        load_strict(_meta(), tmp_path / "bad.safetensors", torch.float32, None)
    msg = str(err.value)
    assert "3 problems" in msg and "missing '0.bias'" in msg and "unexpected 'extra'" in msg
    assert (
        "'0.weight' has shape (4, 5), the config implies (4, 3)" in msg
        and str(tmp_path / "bad.safetensors") in msg
    )
