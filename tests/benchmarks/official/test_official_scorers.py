"""The official scorers as plug-ins: spec-level checks (missing files, tasks), derived VBench
aggregates, and the score cache (exercised through DPG-Bench with a test-double VQA backend)."""

import csv
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from benchmarks.official import dpg
from benchmarks.official import vbench_eval as vb
from benchmarks.official.image_scorers import DPGBench, DPGBenchFixed
from benchmarks.official.inception import INCEPTION_FILE
from harness import plugins
from harness.spec import SpecError, resolve_run

WORLD = {
    "frames": 4,
    "height": 16,
    "width": 32,
    "max_objects": 1,
    "speed": 1.0,
}  # a width VBench can read


def run_config(which, tasks=("t2v",), options=None, world=WORLD):
    return {
        "benchmark": {
            "name": "shapes",
            "world": world,
            "train_size": 16,
            "eval_size": 4,
            "task_size": 2,
        },
        "model": {"preset": "tiny"},
        "train": {"steps": 2, "batch_size": 4},
        "sample": {"steps": 2, "tasks": list(tasks)},
        "score": {"which": list(which), "options": options or {}},
    }


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Empty weight caches and env folders: every check sees a machine without downloads."""
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "vbench-cache"))
    monkeypatch.setenv("URSA_VBENCH_ENV", str(tmp_path / "vbench-env"))
    monkeypatch.setenv("URSA_INCEPTION_WEIGHTS", str(tmp_path / "inception.pth"))
    monkeypatch.setenv("URSA_DPG_CSV", str(tmp_path / "dpg" / "dpg_bench.csv"))
    monkeypatch.setenv("URSA_DPG_VQA", str(tmp_path / "dpg" / "mplug"))
    return tmp_path


def test_every_vbench_dimension_lists_its_missing_weights_in_one_error(no_weights):
    dims = [d for d in vb.VBENCH_DIMENSIONS if d != "temporal_flickering"]
    which = [f"vbench.{d}" for d in dims]
    options = {w: {"mode": "vbench_standard"} for w in which}
    with pytest.raises(SpecError) as err:
        resolve_run(run_config(which, options=options), "spec.yaml")
    message = str(err.value)
    assert message.startswith(
        "spec.yaml: score.which: expected every scorer's files in place; missing "
    )
    assert "\n" not in message and "Traceback" not in message
    for r in vb.required_resources(dims):
        assert str(r.path) in message, r.path  # where it is expected ...
    for how in (
        "dino_vitbase16_pretrain.pth",
        "ViT-B-32.pt",
        "ViT-L-14.pt",
        "sa_0_4_vit_l_14_linear.pth",
        "musiq_spaq_ckpt-358bb6af.pth",
        "amt-s.pth",
        "raft-things.pth",
        "tag2text_swin_14m.pth",
        "grit_b_densecap_objectdet.pth",
        "detectron2",
        "ViClip-InternVid-10M-FLT.pth",
        "l16_ptk710_ftk710_ftk400_f16_res224.pth",
        "$VBENCH_CACHE_DIR",
    ):
        assert how in message, how  # ... and how to obtain it
    distinct = {str(r.path) for r in vb.required_resources(dims)}
    assert f"missing {len(distinct)}:" in message  # a file two dimensions share is listed once
    assert message.count(str(no_weights / "vbench-cache" / "clip_model" / "ViT-B-32.pt")) == 1
    assert "[vbench.background_consistency, vbench.appearance_style]" in message


def test_temporal_flickering_needs_no_weights_and_validates(no_weights):
    config = resolve_run(run_config(["alignment", "vbench.temporal_flickering"]))
    assert config.score.which == ["alignment", "vbench.temporal_flickering"]
    assert plugins.metric_info("vbench.total").higher_is_better


def test_custom_input_cannot_score_dimensions_that_need_the_suites_info(no_weights):
    with pytest.raises(
        SpecError, match="vbench.color cannot run on custom inputs.*mode: vbench_standard"
    ):
        resolve_run(run_config(["vbench.color"]))


@pytest.mark.parametrize("width", [16, 24, 48, 72])
def test_a_frame_width_decord_cannot_read_is_a_spec_error_for_the_dimensions_that_decode_with_it(
    no_weights, width
):
    world = {**WORLD, "width": width}
    with pytest.raises(SpecError) as err:
        resolve_run(
            run_config(["vbench.subject_consistency", "vbench.temporal_flickering"], world=world)
        )
    message = str(err.value)
    assert (
        f"vbench.subject_consistency cannot read videos {width} pixels wide: VBench decodes them with "
        f"decord 0.6.0"
        in message
        and "[vbench.subject_consistency]" in message
    )
    assert "vbench.temporal_flickering cannot" not in message  # read with cv2: any width
    for which, tasks in (
        (["vbench.temporal_flickering"], ("t2v",)),
        (["vbench_i2v.temporal_flickering"], ("i2v",)),
    ):
        resolve_run(run_config(which, tasks=tasks, world=world))  # no decord, no weights: valid
    with pytest.raises(
        SpecError, match=f"vbench_i2v.i2v_subject cannot read videos {width} pixels wide"
    ):
        resolve_run(run_config(["vbench_i2v.i2v_subject"], tasks=("i2v",), world=world))


def test_the_scorer_refuses_unreadable_widths_it_sees_only_at_scoring_time():
    """A benchmark whose geometry is known only once built (a token folder) reaches `evaluate`:
    the width is checked there, before the env is built or a file is written."""
    scorer = plugins.SCORERS.get("vbench.subject_consistency")
    instance = scorer.__new__(scorer)  # evaluate reads nothing of the instance before the check
    with pytest.raises(ValueError, match="cannot read videos 48 pixels wide.*e.g. 32 or 64"):
        instance.evaluate(torch.zeros(1, 4, 16, 48, 3, dtype=torch.uint8), [], "t2v", 0)


def test_vbench_i2v_checks(no_weights):
    with pytest.raises(
        SpecError,
        match="scorer 'vbench_i2v.i2v_subject' applies to task.s. i2v, but sample.tasks has t2v",
    ):
        resolve_run(run_config(["vbench_i2v.i2v_subject"]))
    resolve_run(run_config(["vbench_i2v.temporal_flickering"], tasks=("i2v",)))  # no weights needed
    with pytest.raises(SpecError) as err:
        resolve_run(run_config([f"vbench_i2v.{d}" for d in vb.I2V], tasks=("i2v",)))
    message = str(err.value)
    assert (
        "dino_model/dino_vitbase16_pretrain.pth (obtain: https://dl.fbaipublicfiles.com/dino/"
        in message
    )
    assert "site-packages/dreamsim/ (obtain: pip install dreamsim" in message
    assert (
        "vbench-cache/models/ensemble_lora/ (obtain: python -c 'from dreamsim import dreamsim"
        in message
    )
    assert (
        "vbench2_beta_i2v/third_party/cotracker/ (obtain: not shipped in the vbench 0.1.5 wheel"
        in message
    )
    assert "CoTracker2 itself loads through torch.hub from GitHub" in message
    assert "[vbench_i2v.i2v_subject]" in message and "[vbench_i2v.camera_motion]" in message


def test_dpg_and_inception_missing_files(no_weights):
    with pytest.raises(SpecError) as err:
        resolve_run(
            run_config(["dpg", "fid.inception", "kid.inception", "is.inception"], tasks=("t2i",))
        )
    message = str(err.value)
    for expected in (
        "dpg/dpg_bench.csv (obtain: https://github.com/TencentQQGYLab/ELLA",
        "dpg/mplug/configuration.json (obtain: modelscope download --model "
        "damo/mplug_visual-question-answering_coco_large_en",
        "dpg/mplug/pytorch_model.bin",
        f"inception.pth (obtain: download https://github.com/toshas/"
        f"torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}",
    ):
        assert expected in message, expected
    # fid / kid / is share the one weights file: one entry naming the three scorers
    assert message.count("inception.pth (obtain") == 1
    assert "[fid.inception, kid.inception, is.inception]" in message
    with pytest.raises(SpecError, match="a registered VQA backend for dpg .*not 'blip'"):
        resolve_run(run_config(["dpg"], tasks=("t2i",), options={"dpg": {"backend": "blip"}}))
    with pytest.raises(SpecError, match="scorer 'dpg' applies to task.s. t2i"):
        resolve_run(run_config(["dpg"]))


def test_derived_vbench_aggregates_partial_and_official():
    tf, subject = 0.9, 0.8  # raw scores
    derived, notes = plugins.derived_metrics(
        {"alignment": 0.5, "vbench.temporal_flickering": tf, "i2v.vbench_i2v.i2v_subject": subject}
    )
    quality = 100 * (tf - 0.6293) / (1 - 0.6293)
    assert derived["vbench.quality"] == pytest.approx(quality)
    assert (
        "vbench.semantic" not in derived and "vbench.total" not in derived
    )  # no semantic dimension
    official_quality = (
        quality / 100
        + sum(
            (0 - lo) / (hi - lo) * w
            for d, (lo, hi, w) in vb.VBENCH_DIMENSIONS.items()
            if d in vb.QUALITY and d != "temporal_flickering"
        )
    ) / 6.5
    assert derived["vbench.quality_missing_as_0"] == pytest.approx(100 * official_quality)
    assert derived["vbench.coverage"] == pytest.approx(1 / 16)
    assert derived["i2v.vbench_i2v.i2v"] == pytest.approx(100 * (subject - 0.1462) / (1 - 0.1462))
    assert derived["i2v.vbench_i2v.coverage"] == pytest.approx(1 / 9)
    assert any(
        n.startswith("vbench aggregates are partial") and "missing: subject_consistency" in n
        for n in notes
    )
    assert any(n.startswith("i2v: vbench_i2v aggregates are partial") for n in notes)
    full = {f"vbench.{d}": lo + 0.5 * (hi - lo) for d, (lo, hi, _) in vb.VBENCH_DIMENSIONS.items()}
    derived, notes = plugins.derived_metrics(full)
    assert derived["vbench.total"] == pytest.approx(50.0) and derived[
        "vbench.total_missing_as_0"
    ] == pytest.approx(50.0)
    assert notes == []


# ----------------------------------------------------------------------------- DPG through the plug-in


@dataclass
class _Prompt:
    caption: str
    task: str = "t2i"
    condition_frames: tuple = ()


class _GreyVQA:
    """Test double (mPLUG needs its weights): "yes" to everything on tiles brighter than 100."""

    calls = 0

    @staticmethod
    def requirements(model_dir):
        return []

    def __init__(self, model_dir, device="cpu"):
        pass

    def answer(self, image, question):
        type(self).calls += 1
        return "yes" if np.asarray(image).mean() > 100 else "no"


def test_dpg_scorer_scores_through_the_export_and_caches(tmp_path, monkeypatch):
    """dpg_fixed (upstream's bugs fixed) on two items; `dpg` (upstream's computation) on the same
    samples drops item a's first proposition, so item a is skipped as upstream skips it."""
    monkeypatch.setitem(dpg.VQA_BACKENDS, "grey", _GreyVQA)
    path = tmp_path / "dpg_bench.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "item_id",
                "text",
                "proposition_id",
                "dependency",
                "tuple",
                "question_natural_language",
            ]
        )
        for item, text in (("a", "a cat"), ("b", "a dog")):
            w.writerow([item, text, 1, "0", "entity - whole (x)", "is there an x?"])
            w.writerow([item, text, 2, "1", "attribute - color (x, red)", "is the x red?"])
    options = DPGBench.Options(csv_path=str(path), backend="grey")
    assert DPGBenchFixed.check(options, None) == []
    scorer = DPGBenchFixed(options, benchmark=None, cache_dir=tmp_path / "cache")
    levels = torch.tensor(
        [200, 200, 0, 200, 0, 0, 0, 0], dtype=torch.uint8
    )  # "a cat" x4, then "a dog" x4
    videos = levels.view(8, 1, 1, 1, 1).expand(8, 1, 8, 8, 3).clone()
    prompts = [_Prompt("a cat")] * 4 + [_Prompt("a dog")] * 4
    metrics, clips = scorer.evaluate(videos, prompts, "t2i", seed=0)
    assert metrics["dpg_fixed"] == pytest.approx(100 * (3 / 4 + 0) / 2)
    assert metrics["dpg_fixed.entity"] == pytest.approx(100 * 3 / 8)
    assert clips["dpg_fixed"] == pytest.approx([75.0] * 4 + [0.0] * 4)
    assert "differs from published DPG-Bench figures" in plugins.derived_metrics(metrics)[1][0]
    upstream = DPGBench(options, benchmark=None, cache_dir=tmp_path / "cache")
    official = upstream.evaluate(videos, prompts, "t2i", 0)
    # item a skipped (its question 2's parent was dropped with the first row), b all "no"
    assert official == ({"dpg": 0.0, "dpg.entity": 0.0, "dpg.attribute": 0.0}, {})
    assert plugins.derived_metrics(official[0]) == ({}, [])
    asked = _GreyVQA.calls
    assert scorer.evaluate(videos, prompts, "t2i", seed=0) == (metrics, clips)
    assert _GreyVQA.calls == asked  # the rerun read the cache
    scorer.evaluate(videos.flip(0), prompts, "t2i", seed=0)
    assert _GreyVQA.calls > asked  # other samples, other key
    with pytest.raises(
        ValueError, match="expected 4 samples per DPG-Bench prompt .tiled 2x2., got 3 for item 'b'"
    ):
        scorer.evaluate(videos[:7], prompts[:7], "t2i", seed=0)
    with pytest.raises(ValueError, match="'a bird' is not a DPG-Bench prompt"):
        scorer.evaluate(videos[:4], [_Prompt("a bird")] * 4, "t2i", seed=0)


def test_example_spec_validates_without_weights(no_weights):
    from benchmarks.official.envs import REPO_ROOT
    from harness.expand import expand
    from harness.specfile import load_spec

    runs = expand(
        load_spec(REPO_ROOT / "ablations" / "examples" / "vbench_scoring.yaml"), "default"
    )
    assert len(runs) == 4 and all(
        "vbench.temporal_flickering" in r.config.score.which for r in runs
    )


def test_exported_mp4s_play_at_the_benchmarks_declared_fps(tmp_path, no_weights, monkeypatch):
    """shapes declares 8 fps: the vbench export writes it into the mp4 (read back from the file);
    the scorer's fps option overrides it; a benchmark that declares none needs the option."""
    import imageio.v2 as imageio

    from benchmarks.shapes.plugin import ShapesBenchmark

    options = ShapesBenchmark.Options(world=WORLD, train_size=16, eval_size=4, task_size=2)
    bench = ShapesBenchmark(options, tmp_path / "bench")
    cls = plugins.SCORERS.get("vbench.subject_consistency")
    videos = torch.randint(
        0, 256, (2, 4, 16, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    prompts = bench.suite("t2v")[:2]
    assert ShapesBenchmark.fps == 8.0
    for options, fps in ((cls.Options(), 8.0), (cls.Options(fps=12), 12.0)):
        scorer = cls(options, bench, tmp_path / "cache")
        folder, names, _ = scorer._export(videos, prompts, f"{fps:g}" * 12)
        with imageio.get_reader(folder / names[0], format="FFMPEG") as reader:
            assert reader.get_meta_data()["fps"] == fps
    monkeypatch.setattr(ShapesBenchmark, "fps", None)
    with pytest.raises(SpecError, match="options.vbench.temporal_flickering.fps .the mp4 frame"):
        resolve_run(run_config(["vbench.temporal_flickering"]))
    options = {"vbench.temporal_flickering": {"fps": 8}}
    resolve_run(run_config(["vbench.temporal_flickering"], options=options))


def test_standard_mode_temporal_flickering_is_refused_for_its_missing_static_filter(no_weights):
    options = {"vbench.temporal_flickering": {"mode": "vbench_standard"}}
    with pytest.raises(
        SpecError,
        match="vbench.temporal_flickering in mode vbench_standard: "
        "VBench's protocol samples 25 videos per prompt .* "
        "static_filter",
    ):
        resolve_run(run_config(["vbench.temporal_flickering"], options=options))


def test_i2v_clip_names_carry_the_camera_motion_and_camera_motion_needs_one():
    from benchmarks.official.export import i2v_clip_name

    assert i2v_clip_name(3, "a harbour at dusk, camera pans left") == "clip00003 camera pans left"
    assert i2v_clip_name(12, "a red circle") == "clip00012"
    scorer = plugins.SCORERS.get("vbench_i2v.camera_motion")
    instance = scorer.__new__(scorer)  # refused before the env is built or a file written

    @dataclass
    class P:
        caption: str

    with pytest.raises(
        ValueError,
        match="every prompt to ask for a camera motion .* got 1 of 2 without, e.g. 'a red circle'",
    ):
        instance.evaluate(
            torch.zeros(2, 4, 16, 32, 3, dtype=torch.uint8),
            [P("a boat, camera zooms in"), P("a red circle")],
            "i2v",
            0,
        )


def test_env_packages_follow_what_is_installed(tmp_path):
    """The score cache keys on the vbench env's resolved packages: a distribution added after the
    build changes them."""
    from harness.env import env_packages

    site = tmp_path / "lib" / "python3.12" / "site-packages"

    def install(name: str, version: str) -> None:
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")

    install("vbench", "0.1.5")
    assert env_packages(tmp_path) == ["vbench==0.1.5"]
    install("dreamsim", "0.1.3")
    assert env_packages(tmp_path) == ["dreamsim==0.1.3", "vbench==0.1.5"]
