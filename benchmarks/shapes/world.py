"""The shapes world: scenes of coloured shapes moving over a background, rendered to video,
and the caption grammar that describes them.

A scene is a tuple of objects with distinct colours; each object has a shape, a size, a motion
and a start position. `render` draws a clip uint8 (F, H, W, 3). Captions follow the grammar

    caption := object ("and" object)*
    object  := "a" SIZE COLOUR SHAPE [MOTION]        (MOTION omitted for single images)
    MOTION  := "moving" ("left"|"right"|"up"|"down") | "staying still"

`parse_caption` is its exact inverse on the attribute level (positions are not captioned).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 50, 50),
    "green": (50, 200, 80),
    "blue": (60, 90, 235),
    "yellow": (240, 220, 50),
}
BACKGROUND: tuple[int, int, int] = (20, 20, 30)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: dict[str, int] = {"small": 6, "large": 10}  # bounding-box side in pixels
MOTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "still": (0, 0),
}
# Palette row 0 is the background, rows 1.. the colours in COLOURS order (uint8 (1+C, 3)).
PALETTE = np.array([BACKGROUND, *COLOURS.values()], dtype=np.uint8)
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)


@dataclass(frozen=True)
class WorldConfig:
    """Clip geometry and dynamics. `speed` is pixels per frame along the motion direction."""

    frames: int = 8
    height: int = 32
    width: int = 32
    min_objects: int = 1
    max_objects: int = 2
    speed: float = 2.0

    def __post_init__(self) -> None:
        if self.frames < 1 or self.height < 16 or self.width < 16:
            raise ValueError(
                f"WorldConfig: expected frames >= 1 and height, width >= 16, "
                f"got {self.frames}x{self.height}x{self.width}"
            )
        if self.height % 4 or self.width % 4:
            raise ValueError(
                f"WorldConfig: expected height and width divisible by 4 (patch size), got {self.height}x{self.width}"
            )
        if not 1 <= self.min_objects <= self.max_objects <= len(COLOURS):
            raise ValueError(
                f"WorldConfig: expected 1 <= min_objects <= max_objects <= {len(COLOURS)}, "
                f"got {self.min_objects}, {self.max_objects}"
            )
        room = min(self.height, self.width) - max(SIZES.values()) - 2
        if self.travel > room:
            raise ValueError(
                f"WorldConfig: speed * (frames - 1) = {self.travel:.1f} px does not fit in the "
                f"frame (max {room} px); lower speed"
            )

    @property
    def travel(self) -> float:
        """Distance in pixels a moving object covers from the first to the last frame."""
        return self.speed * (self.frames - 1)


@dataclass(frozen=True)
class ObjectSpec:
    """The captioned attributes of one object; motion None means a still image caption."""

    colour: str
    shape: str
    size: str
    motion: str | None


@dataclass(frozen=True)
class SceneObject:
    spec: ObjectSpec
    x: int  # top-left column at frame 0
    y: int  # top-left row at frame 0


Spec = tuple[ObjectSpec, ...]
Scene = tuple[SceneObject, ...]


def _shape_mask(shape: str, side: int) -> np.ndarray:
    """bool (side, side) silhouette: a disc, a full square, or an upward isosceles triangle."""
    i, j = np.mgrid[0:side, 0:side].astype(np.float64)
    c = (side - 1) / 2
    if shape == "square":
        return np.ones((side, side), dtype=bool)
    if shape == "circle":
        return (i - c) ** 2 + (j - c) ** 2 <= (side / 2) ** 2 - 0.5
    return (
        np.abs(j - c) <= (i + 1) / 2
    )  # half-width grows half a pixel per row: apex up, base = side


MASKS: dict[tuple[str, str], np.ndarray] = {
    (s, z): _shape_mask(s, n) for s in SHAPES for z, n in SIZES.items()
}


def offsets(motion: str | None, cfg: WorldConfig) -> np.ndarray:
    """int (F, 2) per-frame (dx, dy) displacement of an object with this motion."""
    dx, dy = MOTIONS[motion or "still"]
    steps = np.round(np.arange(cfg.frames) * cfg.speed).astype(np.int64)
    return np.stack([dx * steps, dy * steps], axis=1)


def _boxes(obj: SceneObject, cfg: WorldConfig) -> np.ndarray:
    """int (F, 4) bounding boxes (x0, y0, x1, y1), exclusive ends, of an object over the clip."""
    side = SIZES[obj.spec.size]
    off = offsets(obj.spec.motion, cfg)
    x0, y0 = obj.x + off[:, 0], obj.y + off[:, 1]
    return np.stack([x0, y0, x0 + side, y0 + side], axis=1)


def place(spec: Spec, rng: np.random.Generator, cfg: WorldConfig, tries: int = 50) -> Scene:
    """Sample start positions so every object stays in frame and all objects keep >= 2 px
    apart in every frame (so the detector sees whole silhouettes).

    Objects are placed in order, each uniformly over its feasible start grid given the ones
    already placed; if a later object has no room, the whole placement restarts."""
    for _ in range(tries):
        placed: list[SceneObject] = []
        for obj in spec:
            xs, ys = _feasible_starts(obj, placed, cfg)
            if len(xs) == 0:
                break
            k = int(rng.integers(len(xs)))
            placed.append(SceneObject(obj, int(xs[k]), int(ys[k])))
        else:
            return tuple(placed)
    raise ValueError(
        f"place: could not fit objects {spec} in a {cfg.width}x{cfg.height} frame after {tries} tries"
    )


def _feasible_starts(
    obj: ObjectSpec, placed: list[SceneObject], cfg: WorldConfig, gap: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """int (n,), int (n,): every top-left start (x, y) keeping `obj` in frame and >= gap px from `placed`."""
    side = SIZES[obj.size]
    off = offsets(obj.motion, cfg)  # (F, 2)
    lo, hi = -off.min(axis=0), np.array([cfg.width, cfg.height]) - side - off.max(axis=0)
    ys, xs = np.mgrid[lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]
    xs, ys = xs.ravel(), ys.ravel()
    ok = np.ones(xs.shape, dtype=bool)
    for p in placed:
        b = _boxes(p, cfg)  # (F, 4)
        x0 = xs[:, None] + off[None, :, 0]  # (n, F)
        y0 = ys[:, None] + off[None, :, 1]
        sep_x = (x0 >= b[:, 2] + gap) | (b[:, 0] >= x0 + side + gap)
        sep_y = (y0 >= b[:, 3] + gap) | (b[:, 1] >= y0 + side + gap)
        ok &= np.all(sep_x | sep_y, axis=1)
    return xs[ok], ys[ok]


def sample_spec(rng: np.random.Generator, cfg: WorldConfig, motion: bool = True) -> Spec:
    """Attributes of a random scene: 1..max objects with distinct colours."""
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    colours = rng.permutation(len(COLOURS))[:n]
    motions = list(MOTIONS)
    return tuple(
        ObjectSpec(
            COLOUR_NAMES[c],
            SHAPES[rng.integers(len(SHAPES))],
            tuple(SIZES)[rng.integers(len(SIZES))],
            motions[rng.integers(len(motions))] if motion else None,
        )
        for c in colours
    )


def sample_scene(rng: np.random.Generator, cfg: WorldConfig) -> Scene:
    """A random scene (attributes and positions) for clips of `cfg`."""
    return place(sample_spec(rng, cfg), rng, cfg)


def render(scene: Scene, cfg: WorldConfig) -> np.ndarray:
    """Draw the clip: uint8 (F, H, W, 3), background colour then each object's silhouette."""
    video = np.empty((cfg.frames, cfg.height, cfg.width, 3), dtype=np.uint8)
    video[:] = BACKGROUND
    for obj in scene:
        mask = MASKS[(obj.spec.shape, obj.spec.size)]
        side = mask.shape[0]
        colour = np.array(COLOURS[obj.spec.colour], dtype=np.uint8)
        for f, (dx, dy) in enumerate(offsets(obj.spec.motion, cfg)):
            x, y = obj.x + dx, obj.y + dy
            video[f, y : y + side, x : x + side][mask] = colour
    return video


def caption(scene_or_spec: Scene | Spec) -> str:
    """The grammar's caption of a scene (or a spec); motion phrases only when motion is set."""
    specs = [o.spec if isinstance(o, SceneObject) else o for o in scene_or_spec]
    parts = []
    for s in specs:
        words = f"a {s.size} {s.colour} {s.shape}"
        if s.motion is not None:
            words += " staying still" if s.motion == "still" else f" moving {s.motion}"
        parts.append(words)
    return " and ".join(parts)


def parse_caption(text: str) -> Spec:
    """Inverse of `caption`: the attribute spec of a grammar caption; ValueError otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"caption: expected a non-empty grammar caption, got {text!r}")
    specs = []
    for k, chunk in enumerate(" ".join(text.split()).split(" and ")):
        w = chunk.split(" ")
        ok = (
            len(w) in (4, 6)
            and w[0] == "a"
            and w[1] in SIZES
            and w[2] in COLOURS
            and w[3] in SHAPES
        )
        motion = None
        if ok and len(w) == 6:
            if w[4] == "moving" and w[5] in MOTIONS and w[5] != "still":
                motion = w[5]
            elif w[4:] == ["staying", "still"]:
                motion = "still"
            else:
                ok = False
        if not ok:
            raise ValueError(
                f"caption {text!r}: object {k} {chunk!r} is outside the grammar "
                f"'a SIZE COLOUR SHAPE [moving DIR | staying still]' with SIZE in {tuple(SIZES)}, "
                f"COLOUR in {COLOUR_NAMES}, SHAPE in {SHAPES}"
            )
        specs.append(ObjectSpec(w[2], w[3], w[1], motion))
    if len({s.colour for s in specs}) != len(specs):
        raise ValueError(
            f"caption {text!r}: expected distinct colours per object, got {[s.colour for s in specs]}"
        )
    if len({s.motion is None for s in specs}) != 1:
        raise ValueError(f"caption {text!r}: expected motion phrases on all objects or on none")
    return tuple(specs)


def palette_labels(video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest palette entry of every pixel of uint8 (..., 3) video.

    Returns labels uint8 (...) with 0 = background, c = COLOUR_NAMES[c - 1], and the squared
    RGB distance int32 (...) to that entry (large distances are off-palette artefacts)."""
    v = video.astype(np.int32)[..., None, :]  # (..., 1, 3)
    d = ((v - PALETTE.astype(np.int32)) ** 2).sum(-1)  # (..., 1 + C)
    labels = d.argmin(-1).astype(np.uint8)
    return labels, np.take_along_axis(d, labels[..., None].astype(np.int64), -1)[..., 0]
