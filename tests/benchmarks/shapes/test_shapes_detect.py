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
