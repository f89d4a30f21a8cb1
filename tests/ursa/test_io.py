"""Tests for ursa.io: atomic writes replace whole files and leave nothing behind on failure."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from ursa.io import atomic_write, atomic_write_bytes, atomic_write_json


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_bytes_replace_whole_file_and_create_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.bin"
    atomic_write_bytes(target, b"first version, longer")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert leftovers(target.parent) == []


def test_json_format(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"b": 1, "a": [1.5, None], "p": Path("x/y")})
    text = target.read_text()
    assert (
        text == json.dumps({"a": [1.5, None], "b": 1, "p": "x/y"}, indent=2) + "\n"
    )  # sorted, str(), newline


def test_failure_mid_write_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # type: ignore[arg-type]  # fails inside write()
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        atomic_write_json(target, loop)  # fails while encoding, before any file is created

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text('{"v": 2, "trunc')  # a partial file exists when the writer dies
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert json.loads(target.read_text()) == {"v": 1}
    assert leftovers(tmp_path) == []


def test_callback_gets_empty_temp_beside_target_with_suffix(tmp_path: Path) -> None:
    target = tmp_path / "clip.mp4"
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        assert (
            tmp.parent == tmp_path
            and tmp.name.startswith(".clip.mp4.")
            and tmp.name.endswith(".tmp.mp4")
        )
        assert tmp.read_bytes() == b"" and not target.exists()
        tmp.write_bytes(b"data")

    atomic_write(target, write, suffix=".tmp.mp4")
    assert target.read_bytes() == b"data" and not seen[0].exists()
    assert leftovers(tmp_path) == []


def test_permissions_follow_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
        atomic_write(tmp_path / "g", lambda tmp: tmp.write_bytes(b"y"))
    finally:
        os.umask(old)
    for name in ("f", "g"):  # as a plain open() would create it, not mkstemp's 0o600
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_read_json_object_names_the_file_for_every_failure(tmp_path) -> None:
    from ursa.io import read_json_object

    good = tmp_path / "a.json"
    good.write_text('{"k": 1}')
    assert read_json_object(good) == {"k": 1}
    for name, text, detail in (
        ("b.json", "[1]", "got a JSON list"),
        ("c.json", "{", "could not read or parse"),
        ("missing.json", None, "could not read or parse"),
    ):
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=detail) as err:
            read_json_object(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and "expected a JSON object" in str(err.value)
