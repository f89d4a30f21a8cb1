"""DPG-Bench rules with a table-driven test-double VQA (mPLUG itself needs its weights)."""

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.official.dpg import MPLUGBackend, dependency_scores, score_folder
from benchmarks.official.export import export_dpg
from benchmarks.official.resources import MissingResourceError

CAT, RED, DOG, LEFT = (
    "is there a cat?",
    "is the cat red?",
    "is there a dog?",
    "is the red cat on the left?",
)
ROWS = [  # item_id, proposition_id, dependency, tuple, question
    ("a", 1, "0", "entity - whole (cat)", CAT),
    ("a", 2, "1", "attribute - color (cat, red)", RED),
    ("a", 3, "0", "entity - whole (dog)", DOG),
    ("b", 1, "0", "entity - whole (cat)", CAT),
    ("b", 2, "1", "attribute - color (cat, red)", RED),
    ("b", 3, "2", "relation - spatial (cat, left)", LEFT),
]
# Tile grey level -> questions answered "yes". Image b tiles 10..40, image a tiles 50..80.
YES = {
    10: {CAT, RED, LEFT},
    20: {RED, LEFT},
    30: {CAT, LEFT},
    40: {CAT, RED},
    **{level: {CAT, DOG} for level in (50, 60, 70, 80)},
}


class TableVQA:
    """Answers from YES, keyed by the tile's grey level; records every question asked."""

    def __init__(self):
        self.asked: list[str] = []

    def answer(self, image: Image.Image, question: str) -> str:
        self.asked.append(question)
        return "yes" if question in YES[int(np.asarray(image)[0, 0, 0])] else "no"


@pytest.fixture
def bench(tmp_path):
    path = tmp_path / "dpg_bench.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "item_id",
                "text",
                "keywords",
                "proposition_id",
                "dependency",
                "category_broad",
                "category_detailed",
                "tuple",
                "question_natural_language",
            ]
        )
        for item, qid, dep, tup, q in ROWS:
            w.writerow([item, "prompt", "", qid, dep, "", "", tup, q])
    levels = torch.tensor([[50, 60, 70, 80], [10, 20, 30, 40]], dtype=torch.uint8)
    images = levels.view(2, 4, 1, 1, 1).expand(2, 4, 8, 8, 3).clone()
    return export_dpg(images, ["a", "b"], tmp_path / "images"), path


def test_dependency_zeroing_is_transitive():
    parents = {1: [0], 2: [1], 3: [2]}
    assert dependency_scores({1: False, 2: True, 3: True}, parents) == {1: 0.0, 2: 0.0, 3: 0.0}
    assert dependency_scores({1: True, 2: False, 3: True}, parents) == {1: 1.0, 2: 0.0, 3: 0.0}
    assert dependency_scores({1: True, 2: True, 3: False}, parents) == {1: 1.0, 2: 1.0, 3: 0.0}


def test_fixed_scoring(bench):
    images, csv_path = bench
    vqa = TableVQA()
    r = score_folder(images, csv_path, vqa, progress=False)
    # b: tiles score 3/3, 0 (no cat zeroes red, hence left), 1/3 (not red zeroes left), 2/3 -> 0.5
    # a: every tile cat yes, red no, dog yes -> 2/3
    assert r.per_image == pytest.approx({"a": 2 / 3, "b": 0.5})
    assert r.score == pytest.approx(100 * (2 / 3 + 0.5) / 2)
    assert r.skipped == []
    # categories use raw answers over all 4 tiles of both images
    assert r.l2 == pytest.approx(
        {
            "attribute - color": 100 * 3 / 8,
            "entity - whole": 100 * 11 / 12,
            "relation - spatial": 100 * 3 / 4,
        }
    )
    assert r.l1 == pytest.approx(
        {"attribute": 100 * 3 / 8, "entity": 100 * 11 / 12, "relation": 75.0}
    )
    assert len(vqa.asked) == 4 * 3 * 2 and set(vqa.asked) == {CAT, RED, DOG, LEFT}


def test_official_compat_reproduces_both_upstream_bugs(bench):
    images, csv_path = bench
    r = score_folder(images, csv_path, TableVQA(), official_compat=True, progress=False)
    # bug 1: row ("a", 1) dropped -> a's question 2 depends on a missing parent -> a skipped
    assert r.skipped == ["a"] and r.per_image == pytest.approx({"b": 0.5})
    assert r.score == pytest.approx(50.0)
    # bug 2: categories from b's last tile only (cat yes, red yes, left no)
    assert r.l2 == pytest.approx(
        {"attribute - color": 100.0, "entity - whole": 100.0, "relation - spatial": 0.0}
    )


def test_tile_count_and_unknown_files(bench, tmp_path):
    images, csv_path = bench
    r = score_folder(images, csv_path, TableVQA(), tiles=1, progress=False)
    assert r.per_image == pytest.approx({"a": 2 / 3, "b": 1.0})  # only the top-left tiles
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(images / "zzz.png")
    with pytest.raises(ValueError, match="unknown ids"):
        score_folder(images, csv_path, TableVQA(), progress=False)


def test_missing_csv_and_mplug_weights(tmp_path):
    with pytest.raises(MissingResourceError, match="dpg_bench.csv"):
        score_folder(tmp_path, tmp_path / "dpg_bench.csv", TableVQA(), progress=False)
    with pytest.raises(MissingResourceError) as err:
        MPLUGBackend(tmp_path / "mplug")
    message = str(err.value)
    assert "mplug/configuration.json" in message and "mplug/pytorch_model.bin" in message
    assert (
        "modelscope download --model damo/mplug_visual-question-answering_coco_large_en" in message
    )


def test_non_square_tiles_come_back_as_tiled():
    """2x2 grids of 16x32 and 32x16 tiles: each tile is cut at half the height and half the width
    (cutting squares of the height, as before, made tiles 2 and 4 copies of wrong regions)."""
    from benchmarks.official.dpg import split_tiles
    from benchmarks.official.export import tile_2x2

    for h, w in ((16, 32), (32, 16), (8, 8)):
        tiles = np.random.default_rng(h).integers(0, 256, (4, h, w, 3), dtype=np.uint8)
        back = split_tiles(tile_2x2(tiles))
        assert len(back) == 4 and all(np.array_equal(a, b) for a, b in zip(back, tiles)), (h, w)
    with pytest.raises(ValueError, match="2x2 grid of equal tiles"):
        split_tiles(np.zeros((33, 64, 3), dtype=np.uint8))
