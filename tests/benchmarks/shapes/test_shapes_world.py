import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.shapes.world import (
    BACKGROUND,
    COLOURS,
    MOTIONS,
    SHAPES,
    SIZES,
    ObjectSpec,
    WorldConfig,
    caption,
    parse_caption,
    place,
    render,
    sample_scene,
)

CFG = WorldConfig()


def test_render_is_deterministic_and_in_palette():
    a = render(sample_scene(np.random.default_rng(3), CFG), CFG)
    b = render(sample_scene(np.random.default_rng(3), CFG), CFG)
    assert a.dtype == np.uint8 and a.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    colours = {tuple(c) for c in a.reshape(-1, 3)}
    assert colours <= {BACKGROUND, *COLOURS.values()}


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000))
def test_objects_stay_in_frame_apart_and_move_as_captioned(seed):
    scene = sample_scene(np.random.default_rng(seed), CFG)
    video = render(scene, CFG)
    for obj in scene:
        mask = np.all(video == COLOURS[obj.spec.colour], axis=-1)  # (F, H, W)
        ys, xs = np.nonzero(mask[0])
        side = SIZES[obj.spec.size]
        assert max(np.ptp(ys), np.ptp(xs)) + 1 == side  # whole silhouette visible in frame 0
        dx, dy = MOTIONS[obj.spec.motion]
        cx0, cy0 = xs.mean(), ys.mean()
        ys1, xs1 = np.nonzero(mask[-1])
        assert np.isclose(xs1.mean() - cx0, dx * CFG.travel) and np.isclose(
            ys1.mean() - cy0, dy * CFG.travel
        )
        assert mask.sum(axis=(1, 2)).min() == mask[0].sum()  # never occluded or cut


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_caption_round_trip(seed, still_image):
    scene = sample_scene(np.random.default_rng(seed), CFG)
    spec = tuple(o.spec for o in scene)
    if still_image:
        spec = tuple(ObjectSpec(s.colour, s.shape, s.size, None) for s in spec)
    assert parse_caption(caption(spec)) == spec


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a huge red circle",
        "a small red circle moving sideways",
        "a small red circle and a large red square",
        "a small red circle moving left and a large blue square",
        "the small red circle",
    ],
)
def test_parse_rejects_text_outside_grammar(text):
    with pytest.raises(ValueError, match="caption"):
        parse_caption(text)


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="speed"):
        WorldConfig(frames=32, speed=2.0)
    with pytest.raises(ValueError, match="divisible"):
        WorldConfig(height=30)
    with pytest.raises(ValueError, match="max_objects"):
        WorldConfig(max_objects=9)


def test_every_pair_of_objects_can_be_placed():
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        for m1 in MOTIONS:
            for m2 in MOTIONS:
                spec = (
                    ObjectSpec("red", shape, "large", m1),
                    ObjectSpec("blue", "square", "large", m2),
                )
                assert len(place(spec, rng, CFG)) == 2
