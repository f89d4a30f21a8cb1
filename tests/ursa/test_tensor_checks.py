"""Tests for ursa.tensor_checks: what each check accepts and the one-line messages it raises."""

from __future__ import annotations

import pytest
import torch

from ursa.tensor_checks import FLOAT, check_ids, check_tensor, check_time, describe


def test_describe() -> None:
    assert describe(torch.zeros(2, 3, dtype=torch.int64)) == "int64 of shape (2, 3)"
    assert describe([1, 2]) == "list"


def test_check_tensor_accepts() -> None:
    check_tensor("x", torch.zeros(2, 3, 4, 4, dtype=torch.long), torch.int64, ("B", "T", "h", "w"))
    check_tensor("x", torch.zeros(2, 3, dtype=torch.int32), (torch.int64, torch.int32), (2, None))
    check_tensor("x", torch.zeros(5, dtype=torch.bfloat16), FLOAT, ("N",))
    check_tensor("x", torch.zeros(1, 2, 3), torch.float32)  # any shape


@pytest.mark.parametrize(
    "x, dtypes, shape, message",
    [
        (
            torch.zeros(2, 3),
            torch.int64,
            ("B", "T", "h", "w"),
            "visual_ids: expected int64 tensor of shape (B, T, h, w), got float32 of shape (2, 3)",
        ),
        (
            torch.zeros(2, 3, dtype=torch.long),
            torch.int64,
            (2, 4),
            "visual_ids: expected int64 tensor of shape (2, 4), got int64 of shape (2, 3)",
        ),
        (
            torch.zeros(2, dtype=torch.int16),
            (torch.int64, torch.int32),
            None,
            "visual_ids: expected int64 or int32 tensor, got int16 of shape (2,)",
        ),
        (
            torch.zeros(2, dtype=torch.long),
            FLOAT,
            (None,),
            "visual_ids: expected float tensor of shape (*), got int64 of shape (2,)",
        ),
        (
            [1, 2],
            torch.uint8,
            ("N", 3),
            "visual_ids: expected uint8 tensor of shape (N, 3), got list",
        ),
    ],
)
def test_check_tensor_rejects(x: object, dtypes, shape, message: str) -> None:
    with pytest.raises(ValueError) as err:
        check_tensor("visual_ids", x, dtypes, shape)
    assert str(err.value) == message


def test_check_ids() -> None:
    ids = torch.tensor([[0, 4], [2, 3]])
    assert check_ids("ids", ids, 5, ("B", "n")) is ids
    with pytest.raises(
        ValueError, match=r"^ids: expected ids in \[0, 4\), got values in \[0, 4\]$"
    ):
        check_ids("ids", ids, 4)
    with pytest.raises(ValueError, match=r"^ids: expected int64 or int32 tensor, got float32"):
        check_ids("ids", ids.float(), 5)
    check_ids("ids", torch.zeros(0, dtype=torch.long), 1)  # empty: nothing to range-check


def test_check_time() -> None:
    assert check_time("t", 0.25).dtype == torch.float64 and float(check_time("t", 0.25)) == 0.25
    t = torch.tensor([0.0, 1.0], dtype=torch.float32)
    assert torch.equal(check_time("t", t), t.double())
    for bad, message in (
        (1.5, r"t: expected values in \[0, 1\], got values in \[1.5, 1.5\]"),
        (torch.tensor([0.5, float("nan")]), r"t: expected values in \[0, 1\], got NaN"),
        (torch.tensor([1]), "t: expected a float tensor or float in .*got dtype torch.int64"),
        (True, "t: expected a float tensor or float in .*got bool"),
    ):
        with pytest.raises(ValueError, match=message):
            check_time("t", bad)
