"""DPG-Bench (ELLA): dependency-graph VQA scoring of 2x2-tiled text-to-image samples.

Per prompt (item), a CSV gives propositions (qid, question, tuple "category - sub(...)",
parent qids; 0 = no parent). For each tile a VQA model answers every question; a question scores
1 only if the answer is "yes" and every parent question scored 1 (parents processed in CSV
order, so zeroing is transitive). Image score = mean over tiles of the mean over questions;
DPG score = mean over images x 100. Category scores (L2 = tuple text before "(", L1 = its part
before "-") average the raw yes/no answers, as upstream does.

Upstream (dpg_bench/compute_dpg_bench.py) has two bugs:
1. the first CSV row is skipped (`if i == 0: continue` after pandas already consumed the header),
   dropping one proposition; an image whose question depends on it then raises KeyError and is
   skipped from the overall score;
2. category scores use the answers of the last tile only.
`official_compat=True` reproduces both (the `dpg` scorer: figures comparable with published ones);
False fixes them (the `dpg_fixed` scorer, named apart so no fixed figure reads as a published one).
Tiles are cut at half the height and half the width (upstream cuts squares of a given resolution,
the same for square tiles).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmarks.official.resources import Resource, require

CSV_URL = "https://github.com/TencentQQGYLab/ELLA/raw/main/dpg_bench/dpg_bench.csv"
MPLUG_ID = "damo/mplug_visual-question-answering_coco_large_en"


class VQABackend(Protocol):
    """Answers a natural-language question about one RGB image ("yes"/"no"/free text)."""

    def answer(self, image: Image.Image, question: str) -> str: ...


@dataclass
class Item:
    """Propositions of one prompt, in CSV order."""

    questions: dict[int, str] = field(default_factory=dict)
    parents: dict[int, list[int]] = field(default_factory=dict)
    categories: dict[int, str] = field(default_factory=dict)  # L2 category per qid


@dataclass
class DPGResult:
    score: float  # 0-100
    l1: dict[str, float]  # 0-100
    l2: dict[str, float]  # 0-100
    per_image: dict[str, float]  # item_id -> 0-1
    skipped: list[str]  # item ids upstream would drop (official_compat only)


def load_questions(csv_path: Path | str, *, official_compat: bool = False) -> dict[str, Item]:
    """dpg_bench.csv -> {item_id: Item}. Raises MissingResourceError if the file is absent."""
    csv_path = Path(csv_path)
    require("DPG-Bench questions", [Resource(csv_path, CSV_URL)])
    items: dict[str, Item] = {}
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"item_id", "proposition_id", "dependency", "tuple", "question_natural_language"}
    if not rows or not need <= set(rows[0]):
        raise ValueError(
            f"{csv_path}: expected columns {sorted(need)}, got {sorted(rows[0]) if rows else 'no rows'}"
        )
    for row in rows[1:] if official_compat else rows:
        item = items.setdefault(row["item_id"], Item())
        qid = int(row["proposition_id"])
        item.questions[qid] = row["question_natural_language"]
        item.parents[qid] = [int(p) for p in row["dependency"].split(",")]
        item.categories[qid] = row["tuple"].split("(")[0].strip()
    if not official_compat:
        for item_id, item in items.items():
            for qid, parents in item.parents.items():
                bad = [p for p in parents if p != 0 and p not in item.questions]
                if bad:
                    raise ValueError(
                        f"{csv_path}: item {item_id} question {qid} depends on "
                        f"unknown question(s) {bad}"
                    )
    return items


def split_tiles(image: np.ndarray, tiles: int = 4) -> list[np.ndarray]:
    """uint8 (2H,2W,3) -> the first `tiles` of [top-left, top-right, bottom-left, bottom-right],
    each (H,W,3): rows and columns are halved apart, so non-square tiles come back as tiled."""
    if image.ndim != 3 or image.shape[0] % 2 or image.shape[1] % 2:
        raise ValueError(
            f"image: expected a 2x2 grid of equal tiles (2H, 2W, 3), got shape {image.shape}"
        )
    h, w = image.shape[0] // 2, image.shape[1] // 2
    grid = [image[:h, :w], image[:h, w:], image[h:, :w], image[h:, w:]]
    return grid[:tiles]


def dependency_scores(answers: dict[int, bool], parents: dict[int, list[int]]) -> dict[int, float]:
    """Zero a question whose parent (already processed, CSV order) scored 0. KeyError on an unknown parent."""
    scores = {q: float(a) for q, a in answers.items()}
    for qid, ps in parents.items():
        if any(p != 0 and scores[p] == 0 for p in ps):
            scores[qid] = 0.0
    return scores


def score_image(
    image: np.ndarray, item: Item, vqa: VQABackend, *, tiles: int = 4
) -> tuple[float, list[dict[int, bool]]]:
    """uint8 (2H,2W,3) -> (image score in [0,1], raw yes/no answers per tile)."""
    tile_scores, tile_answers = [], []
    for tile in split_tiles(image, tiles):
        pil = Image.fromarray(tile)
        answers = {q: vqa.answer(pil, text) == "yes" for q, text in item.questions.items()}
        scores = dependency_scores(answers, item.parents)
        tile_scores.append(sum(scores.values()) / len(scores))
        tile_answers.append(answers)
    return sum(tile_scores) / len(tile_scores), tile_answers


def score_folder(
    image_dir: Path | str,
    csv_path: Path | str,
    vqa: VQABackend,
    *,
    tiles: int = 4,
    official_compat: bool = False,
    progress: bool = True,
) -> DPGResult:
    """Score `{image_dir}/{item_id}.png` (export_dpg layout) against the DPG-Bench CSV."""
    if tiles not in (1, 2, 3, 4):
        raise ValueError(f"tiles: expected 1..4, got {tiles}")
    items = load_questions(csv_path, official_compat=official_compat)
    image_dir = Path(image_dir)
    files = sorted(p for p in image_dir.glob("*.png") if not p.name.startswith("."))
    unknown = [p.name for p in files if p.name.split(".")[0] not in items]
    if not files or unknown:
        raise ValueError(
            f"{image_dir}: expected {{item_id}}.png files for DPG-Bench items, "
            f"got {len(files)} file(s), unknown ids {unknown[:5]}"
        )
    per_image: dict[str, float] = {}
    categories: dict[str, list[float]] = defaultdict(list)
    skipped: list[str] = []
    for path in tqdm(files, disable=not progress, desc="DPG-Bench"):
        item_id = path.name.split(".")[0]
        item = items[item_id]
        try:
            score, answers = score_image(
                np.asarray(Image.open(path).convert("RGB")), item, vqa, tiles=tiles
            )
        except KeyError:  # upstream: parent dropped by the first-row bug -> image skipped
            skipped.append(item_id)
            continue
        per_image[item_id] = score
        for tile_answers in answers[-1:] if official_compat else answers:
            for qid, yes in tile_answers.items():
                categories[item.categories[qid]].append(float(yes))
    l1: dict[str, list[float]] = defaultdict(list)
    for cat, values in categories.items():
        l1[cat.split("-")[0].strip()].extend(values)
    return DPGResult(
        score=100.0 * float(np.mean(list(per_image.values()))),
        l1={k: 100.0 * float(np.mean(v)) for k, v in l1.items()},
        l2={k: 100.0 * float(np.mean(v)) for k, v in sorted(categories.items())},
        per_image=per_image,
        skipped=skipped,
    )


def item_prompts(csv_path: Path | str) -> dict[str, str]:
    """{prompt text: item_id} from the CSV's `text` column (ELLA's dpg_bench.csv has it); {} without it."""
    with Path(csv_path).open(newline="") as f:
        return {row["text"].strip(): row["item_id"] for row in csv.DictReader(f) if row.get("text")}


# VQA backends by name (the `dpg` scorer's `backend` option): a class built as cls(model_dir, device)
# with a `requirements(model_dir)` static method listing the files it needs (checked before compute).
VQA_BACKENDS: dict[str, type] = {}


def register_vqa_backend(name: str):
    """Class decorator: make a VQA backend available to the `dpg` scorer under `name`."""

    def add(cls: type) -> type:
        VQA_BACKENDS[name] = cls
        return cls

    return add


@register_vqa_backend("mplug")
class MPLUGBackend:
    """mPLUG-large VQA through modelscope (the upstream choice); weights must be local."""

    @staticmethod
    def requirements(model_dir: Path | str) -> list[Resource]:
        """The model files and the modelscope package, each with how to obtain it."""
        model_dir = Path(model_dir)
        how = (
            f"modelscope download --model {MPLUG_ID} --local_dir {model_dir}  "
            "(needs `pip install modelscope`)"
        )
        needed = [
            Resource(model_dir / "configuration.json", how),
            Resource(model_dir / "pytorch_model.bin", how),
        ]
        try:
            import modelscope  # noqa: F401
        except ImportError:
            needed.append(
                Resource(
                    Path("<python package modelscope>"),
                    "pip install 'modelscope[multi-modal]' in the scoring env",
                )
            )
        return needed

    def __init__(self, model_dir: Path | str, device: str = "cpu"):
        model_dir = Path(model_dir)
        require("DPG-Bench mPLUG VQA", self.requirements(model_dir))
        from modelscope.pipelines import pipeline
        from modelscope.utils.constant import Tasks

        self._pipeline = pipeline(
            Tasks.visual_question_answering, model=str(model_dir), device=device
        )

    def answer(self, image: Image.Image, question: str) -> str:
        return self._pipeline({"image": image, "question": question})["text"]
