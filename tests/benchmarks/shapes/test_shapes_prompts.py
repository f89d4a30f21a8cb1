from collections import Counter

import pytest

from benchmarks.shapes.prompts import (
    HELD_OUT,
    SUITES,
    held_out_specs,
    is_held_out,
    load_suite,
    make_training_set,
)
from benchmarks.shapes.world import WorldConfig, caption


def _pairs(prompts):
    return {(o.colour, o.shape) for p in prompts for o in p.spec}


def test_held_out_combinations_split_train_and_eval():
    train, ev = load_suite("train", 300, 0), load_suite("eval", 300, 0)
    assert not _pairs(train) & HELD_OUT
    assert all(any((o.colour, o.shape) in HELD_OUT for o in p.spec) for p in ev)


@pytest.mark.parametrize("name", SUITES)
def test_suites_are_deterministic_and_well_formed(name):
    a, b = load_suite(name, 20, 5), load_suite(name, 20, 5)
    assert [p.caption for p in a] == [p.caption for p in b] and [p.scene for p in a] == [
        p.scene for p in b
    ]
    assert a[0].real().shape == (a[0].cfg.frames, 32, 32, 3)
    assert (
        load_suite(name, 20, 6)[0].scene != a[0].scene
        or load_suite(name, 20, 6)[1].scene != a[1].scene
    )
    frames = a[0].cfg.frames
    expected = {
        "i2v": (0,),
        "interpolation": (0, frames - 1),
        "extrapolation": tuple(range(frames // 2)),
    }
    assert a[0].condition_frames == expected.get(name, ())
    assert (frames, a[0].num_windows) == {"t2i": (1, 1), "long": (24, 3)}.get(
        name, (frames, a[0].num_windows)
    )


def test_eval_suites_cycle_through_every_held_out_caption():
    """One object per clip: 30 moving held-out captions (3 pairs x 2 sizes x 5 motions), 6 still
    images; n prompts hold each caption n // L or n // L + 1 times."""
    cfg = WorldConfig(frames=4, height=16, width=16, max_objects=1, speed=1.0)
    every = {caption(s) for s in held_out_specs(1, motion=True)}
    assert len(every) == 30 and len({caption(s) for s in held_out_specs(1, motion=False)}) == 6
    for n in (32, 120):
        counts = Counter(p.caption for p in load_suite("eval", n, 3, cfg))
        assert set(counts) == every and set(counts.values()) <= {n // 30, n // 30 + 1}, counts
    still = sum("still" in p.caption for p in load_suite("eval", 120, 3, cfg))
    assert still == 24  # 1 in 5, not the half an i.i.d. draw gave
    assert len({p.caption for p in load_suite("t2i", 12, 0, cfg)}) == 6


def test_two_object_eval_suites_draw_distinct_held_out_captions():
    ev = load_suite("eval", 60, 0)  # 1-2 objects: 30 one-object and 5,000+ two-object captions
    assert all(is_held_out(p.spec) for p in ev)
    assert {len(p.spec) for p in ev} == {1, 2}
    two = [p.caption for p in ev if len(p.spec) == 2]
    assert len(set(two)) == len(two)
    assert held_out_specs(3, motion=True) is None  # too many to enumerate: drawn i.i.d.
    assert all(
        is_held_out(p.spec)
        for p in load_suite("eval", 10, 0, WorldConfig(max_objects=3, min_objects=3))
    )


def test_training_set():
    captions, videos = make_training_set(None, 6, 0)
    assert len(captions) == 6 and videos.shape == (6, 8, 32, 32, 3)


def test_bad_suite_arguments():
    with pytest.raises(ValueError, match="suite"):
        load_suite("evl", 3)
    with pytest.raises(ValueError, match="n:"):
        load_suite("eval", 0)
