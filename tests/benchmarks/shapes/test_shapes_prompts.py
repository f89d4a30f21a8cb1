import pytest

from benchmarks.shapes.prompts import HELD_OUT, SUITES, load_suite, make_training_set


def _pairs(prompts):
    return {(o.colour, o.shape) for p in prompts for o in p.spec}


def test_held_out_combinations_split_train_and_eval():
    train, ev = load_suite("train", 300, 0), load_suite("eval", 300, 0)
    assert not _pairs(train) & HELD_OUT
    assert all(any((o.colour, o.shape) in HELD_OUT for o in p.spec) for p in ev)


@pytest.mark.parametrize("name", SUITES)
def test_suites_are_deterministic_and_well_formed(name):
    a, b = load_suite(name, 20, 5), load_suite(name, 20, 5)
    assert [p.caption for p in a] == [p.caption for p in b] and [p.scene for p in a] == [p.scene for p in b]
    assert a[0].real().shape == (a[0].cfg.frames, 32, 32, 3)
    assert load_suite(name, 20, 6)[0].scene != a[0].scene or load_suite(name, 20, 6)[1].scene != a[1].scene
    frames = a[0].cfg.frames
    expected = {"i2v": (0,), "interpolation": (0, frames - 1), "extrapolation": tuple(range(frames // 2))}
    assert a[0].condition_frames == expected.get(name, ())
    assert (frames, a[0].num_windows) == {"t2i": (1, 1), "long": (24, 3)}.get(name, (frames, a[0].num_windows))


def test_training_set():
    captions, videos = make_training_set(None, 6, 0)
    assert len(captions) == 6 and videos.shape == (6, 8, 32, 32, 3)


def test_bad_suite_arguments():
    with pytest.raises(ValueError, match="suite"):
        load_suite("evl", 3)
    with pytest.raises(ValueError, match="n:"):
        load_suite("eval", 0)
