"""The README's spec-key reference is generated from the schema and kept current."""

from __future__ import annotations

from pydantic import BaseModel, Field

from harness.spec import RunConfig, Spec
from harness.specdoc import README, field_comments, main, readme_block, reference, rows


class _Toy(BaseModel):
    # a block comment above
    # on two lines
    a: int = Field(1, ge=0)
    b: str = "x"  # the comment on the line
    c: float = Field(0.5, description="a description wins")  # not this
    d: list[int] = Field(default_factory=list)


def test_descriptions_come_from_comments_and_descriptions() -> None:
    assert field_comments(_Toy) == {
        "a": "a block comment above on two lines",
        "b": "the comment on the line",
        "c": "not this",
    }
    table = {key: (kind, default, doc) for key, kind, default, doc in rows(_Toy)}
    assert table["a"] == ("int", "1", "a block comment above on two lines; >= 0")
    assert table["c"][2] == "a description wins" and table["d"] == ("list[int]", "[]", "")


def test_every_schema_key_is_in_the_reference() -> None:
    keys = {key for key, *_ in rows(Spec)}
    for section in ("model", "path", "train", "sample", "score"):
        model = RunConfig.model_fields[section].annotation
        for field in model.model_fields:
            assert f"base.{section}.{field}" in keys
    assert {
        "name",
        "grid",
        "zip",
        "seeds",
        "profiles",
        "executor.slurm.partition",
        "report.headline",
        "search.objective",
        "base.benchmark",
    } <= keys
    assert "source" not in keys  # the loader's own bookkeeping is not a spec key


def test_readme_block_is_current() -> None:
    text = README.read_text()
    start, end = readme_block(text)
    assert text[start:end] == reference(), (
        "README spec keys are stale: run `python -m harness.specdoc --write`"
    )
    assert main(["--check"]) == 0
