"""Exact object detector for decoded shapes-world clips.

Colours come from a known palette, so each pixel is labelled with its nearest palette entry;
per frame and colour the largest 8-connected component is the candidate object. Its
bounding box gives the size, the world's silhouette it overlaps best (intersection over union
with each shape's template at the box's side, over every placement of the component in the
template's box) the shape, and its centroid track the motion. Template matching, not
thresholds on the fill ratio, so a square missing a corner pixel stays a square: the earlier
rule (a square fills >= 0.94 of its box) read 85% of the squares reconstructed by the K = 65 and
129 patch codebooks as circles. A candidate counts as an object only if it is plausible (size within the world's
range, little other pixel mass of that colour in the frame), so noise does not read as objects.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from benchmarks.shapes.world import (
    COLOUR_NAMES,
    MOTIONS,
    SHAPES,
    SIZES,
    WorldConfig,
    _shape_mask,
    palette_labels,
)

MIN_AREA = 8  # pixels; the smallest silhouette (small triangle) has 24
SIDE_RANGE = (4, 13)  # plausible bounding-box sides (world: 6 and 10)
MAX_CLUTTER = 0.25  # other same-colour pixels in the frame, as a fraction of the object's area
SIZE_SPLIT = sum(SIZES.values()) / len(SIZES)  # box side separating small from large
PALETTE_TOLERANCE = (
    24  # max RGB L2 distance of an on-palette pixel (palette colours are >= 100 apart)
)
_FRAME_ONLY = np.zeros((3, 3, 3), dtype=bool)
_FRAME_ONLY[1] = True  # 8-connectivity inside a frame, none across frames


@dataclass
class Detections:
    """Per clip n, colour c (COLOUR_NAMES order) and frame f:

    present bool (N, C, F), centre float (N, C, F, 2) as (x, y) (nan where absent),
    area int (N, C, F), shape int (N, C, F) index into SHAPES (-1 absent), side float (N, C, F);
    and per clip and colour: exists bool (N, C), shape_of, size_of, motion_of int (N, C)
    (indices into SHAPES, SIZES, MOTIONS; -1 when the object does not exist / has no motion);
    foreground int (N, F) non-background pixels per frame; on_palette float (N,) fraction of
    pixels within PALETTE_TOLERANCE of a palette colour."""

    present: np.ndarray
    centre: np.ndarray
    area: np.ndarray
    shape: np.ndarray
    side: np.ndarray
    exists: np.ndarray
    shape_of: np.ndarray
    size_of: np.ndarray
    motion_of: np.ndarray
    foreground: np.ndarray
    on_palette: np.ndarray

    def count(self) -> np.ndarray:
        """int (N,) number of detected objects per clip."""
        return self.exists.sum(1)


@functools.lru_cache(maxsize=64)
def _templates(side: int) -> np.ndarray:
    """bool (S, side, side): every shape's silhouette drawn at `side` px (SHAPES order)."""
    return np.stack([_shape_mask(shape, side) for shape in SHAPES])


def _best_template(crop: np.ndarray) -> int:
    """Index into SHAPES of the template with the highest IoU with bool (h, w) `crop`, the
    component cut to its bounding box, over every placement of the crop in the s x s template
    box (s = max(h, w)); ties go to the earlier shape."""
    h, w = crop.shape
    s = max(h, w)
    t = _templates(s)  # (S, s, s)
    best = np.zeros(len(SHAPES))
    area = crop.sum()
    for dy in range(s - h + 1):
        for dx in range(s - w + 1):
            inter = t[:, dy : dy + h, dx : dx + w][:, crop].sum(1)  # (S,)
            best = np.maximum(best, inter / (t.reshape(len(SHAPES), -1).sum(1) + area - inter))
    return int(best.argmax())


def _largest_components(mask: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame of bool (G, H, W): the largest component's features (arrays of shape (G,)) and
    `sel` bool (G, H, W), the component itself."""
    g, h, w = mask.shape
    lab, n = ndimage.label(mask, structure=_FRAME_ONLY)
    total = mask.reshape(g, -1).sum(1)
    best = np.full(g, -1, dtype=np.int64)
    if n:
        areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        # labels are numbered in scan order, so each frame owns a contiguous label range
        last = np.maximum.accumulate(lab.reshape(g, -1).max(1))
        frame_of = np.searchsorted(last, np.arange(1, n + 1))
        order = np.lexsort((-areas, frame_of))
        frames, first = np.unique(frame_of[order], return_index=True)
        best[frames] = order[first] + 1
    sel = lab == best[:, None, None]  # (G, H, W)
    area = sel.reshape(g, -1).sum(1)
    rows, cols = sel.any(2), sel.any(1)  # (G, H), (G, W)
    ys, xs = np.arange(h), np.arange(w)
    y0 = np.where(rows.any(1), rows.argmax(1), 0)
    y1 = np.where(rows.any(1), h - 1 - rows[:, ::-1].argmax(1), -1)
    x0 = np.where(cols.any(1), cols.argmax(1), 0)
    x1 = np.where(cols.any(1), w - 1 - cols[:, ::-1].argmax(1), -1)
    bh, bw = y1 - y0 + 1, x1 - x0 + 1
    safe = np.maximum(area, 1)
    cy = (sel.sum(2) * ys).sum(1) / safe
    cx = (sel.sum(1) * xs).sum(1) / safe
    return {
        "area": area,
        "clutter": total - area,
        "bh": bh,
        "bw": bw,
        "cx": cx,
        "cy": cy,
        "x0": x0,
        "y0": y0,
        "sel": sel,
    }


def detect(videos: np.ndarray, cfg: WorldConfig) -> Detections:
    """Detect the objects of uint8 (N, F, H, W, 3) clips made in world `cfg`."""
    n, f = videos.shape[:2]
    labels, dist2 = palette_labels(videos)
    on_palette = (dist2 <= PALETTE_TOLERANCE**2).reshape(n, -1).mean(1)
    foreground = (labels > 0).reshape(n, f, -1).sum(2)
    labels = labels.reshape(n * f, *videos.shape[2:4])
    c = len(COLOUR_NAMES)
    present = np.zeros((n, c, f), dtype=bool)
    centre = np.full((n, c, f, 2), np.nan)
    area = np.zeros((n, c, f), dtype=np.int64)
    shape = np.full((n, c, f), -1, dtype=np.int64)
    side = np.zeros((n, c, f))
    for k in range(c):
        comp = _largest_components(labels == k + 1)
        s = np.maximum(comp["bh"], comp["bw"])
        ok = (comp["area"] >= MIN_AREA) & (comp["clutter"] <= MAX_CLUTTER * comp["area"])
        ok &= (s >= SIDE_RANGE[0]) & (s <= SIDE_RANGE[1])
        kind = np.full(len(ok), -1, dtype=np.int64)
        for i in np.flatnonzero(ok):  # only plausible objects: noise has a component in every frame
            y0, x0 = comp["y0"][i], comp["x0"][i]
            kind[i] = _best_template(
                comp["sel"][i, y0 : y0 + comp["bh"][i], x0 : x0 + comp["bw"][i]]
            )
        present[:, k] = ok.reshape(n, f)
        centre[:, k] = np.where(ok[:, None], np.stack([comp["cx"], comp["cy"]], 1), np.nan).reshape(
            n, f, 2
        )
        area[:, k] = np.where(ok, comp["area"], 0).reshape(n, f)
        shape[:, k] = np.where(ok, kind, -1).reshape(n, f)
        side[:, k] = np.where(ok, s, 0).reshape(n, f)
    exists = (
        present.sum(2) >= f // 2 + 1
    )  # visible in a strict majority of frames (held condition frames alone do not count)
    shape_of = np.where(exists, _majority(shape, len(SHAPES)), -1)
    frames_seen = np.maximum(present.sum(2), 1)
    median_side = np.where(exists, (side * present).sum(2) / frames_seen, 0)
    size_of = np.where(
        exists, (median_side >= SIZE_SPLIT).astype(np.int64), -1
    )  # SIZES order: small, large
    motion_of = (
        np.where(exists, _motion(present, centre, cfg), -1) if f > 1 else np.full((n, c), -1)
    )
    return Detections(
        present,
        centre,
        area,
        shape,
        side,
        exists,
        shape_of,
        size_of,
        motion_of,
        foreground,
        on_palette,
    )


def _majority(values: np.ndarray, k: int) -> np.ndarray:
    """int (N, C, F) class indices (-1 ignored) -> most frequent class (N, C), ties to lowest."""
    votes = np.stack([(values == j).sum(-1) for j in range(k)], -1)
    return votes.argmax(-1)


def _motion(present: np.ndarray, centre: np.ndarray, cfg: WorldConfig) -> np.ndarray:
    """int (N, C) index into MOTIONS from the centroid velocity between the first and last
    frames where the object is present; 'still' when slower than half the world's speed."""
    f = present.shape[-1]
    idx = np.arange(f)
    first = np.where(present.any(-1), np.where(present, idx, f).min(-1), 0)
    last = np.where(present.any(-1), np.where(present, idx, -1).max(-1), 0)
    c_first = np.take_along_axis(centre, first[..., None, None].repeat(2, -1), 2)[..., 0, :]
    c_last = np.take_along_axis(centre, last[..., None, None].repeat(2, -1), 2)[..., 0, :]
    v = np.nan_to_num(
        (c_last - c_first) / np.maximum(last - first, 1)[..., None]
    )  # (N, C, 2) px/frame
    vx, vy = v[..., 0], v[..., 1]
    names = list(MOTIONS)
    horizontal = np.where(vx < 0, names.index("left"), names.index("right"))
    vertical = np.where(vy < 0, names.index("up"), names.index("down"))
    moving = np.maximum(np.abs(vx), np.abs(vy)) >= cfg.speed / 2
    return np.where(
        moving, np.where(np.abs(vx) >= np.abs(vy), horizontal, vertical), names.index("still")
    )
