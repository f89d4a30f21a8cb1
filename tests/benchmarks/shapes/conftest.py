"""Shared fitted artefacts for the shapes tests: one tmp cache, one tokenizer, one extractor."""

from pathlib import Path

import pytest

from benchmarks.shapes.scorers.extractor import load_or_train_extractor
from benchmarks.shapes.tokenizer import ShapesTokenizer, load_or_fit_tokenizer
from benchmarks.shapes.world import WorldConfig


@pytest.fixture(scope="session")
def shapes_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shapes-cache")


@pytest.fixture(scope="session")
def shapes_tokenizer(shapes_cache: Path) -> ShapesTokenizer:
    return load_or_fit_tokenizer(shapes_cache, WorldConfig(), fit_clips=256)


@pytest.fixture(scope="session")
def shapes_extractor(shapes_cache: Path) -> Path:
    return load_or_train_extractor(shapes_cache, WorldConfig())[1]
