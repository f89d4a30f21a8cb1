import numpy as np

from benchmarks.shapes.detect import detect
from benchmarks.shapes.prompts import load_suite, real_videos
from benchmarks.shapes.world import COLOUR_NAMES, MOTIONS, SHAPES, SIZES


def test_detector_recovers_every_factor_of_real_clips():
    for name in ("eval", "t2i", "long"):
        prompts = load_suite(name, 150, 11)
        det = detect(real_videos(prompts).numpy(), prompts[0].cfg)
        for n, p in enumerate(prompts):
            assert det.count()[n] == len(p.spec)
            for o in p.spec:
                c = COLOUR_NAMES.index(o.colour)
                assert det.shape_of[n, c] == SHAPES.index(o.shape)
                assert det.size_of[n, c] == list(SIZES).index(o.size)
                assert det.motion_of[n, c] == (list(MOTIONS).index(o.motion) if o.motion else -1)


def test_detector_sees_nothing_in_noise():
    noise = np.random.default_rng(0).integers(0, 256, (20, 8, 32, 32, 3), dtype=np.uint8)
    assert detect(noise, load_suite("eval", 1)[0].cfg).count().sum() == 0


def test_a_square_with_a_clipped_corner_is_still_a_square():
    """Template matching: a clipped corner (a lossy codebook's typical error: 2x2 px of a small
    square, 3x3 of a large one) must not turn a square into a circle, as the earlier fill-ratio
    threshold (>= 0.94 of the box) did; the small circle itself (a 6 px square less its 4
    corner pixels) stays a circle."""
    from benchmarks.shapes.world import MASKS, PALETTE, WorldConfig

    cfg = WorldConfig(frames=1, height=16, width=16, max_objects=1)
    cases = []
    for shape, size in [
        ("square", "small"),
        ("square", "large"),
        ("circle", "small"),
        ("triangle", "small"),
    ]:
        mask = MASKS[(shape, size)].copy()
        if shape == "square":
            k = 2 if size == "small" else 3
            mask[:k, :k] = False
        frame = np.broadcast_to(PALETTE[0], (16, 16, 3)).copy()
        frame[3 : 3 + len(mask), 2 : 2 + len(mask)][mask] = PALETTE[1]
        cases.append((shape, frame))
    det = detect(np.stack([f for _, f in cases])[:, None], cfg)
    assert [SHAPES[k] for k in det.shape_of[:, 0]] == [s for s, _ in cases]
