"""The video_folder benchmark on a folder the tests write: decoding, manifests, bad items, options."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from video_folder_fixtures import BAD, EVAL_BAD, GOOD_TRAIN, OPTIONS, build_folder

from benchmarks.video_folder.decode import ClipSpec, read_clip
from benchmarks.video_folder.example import render, write_video
from benchmarks.video_folder.manifest import read_manifest
from benchmarks.video_folder.plugin import VideoFolderBenchmark, VideoFolderOptions
from benchmarks.video_folder.tokenizers import ByteTokenizer, RGBGridTokenizer
from harness.plugins import BadClip, ClipItem
from harness.spec import SpecError, validate_model


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return build_folder(tmp_path_factory.mktemp("videos"))


def bench(root: Path, **options) -> VideoFolderBenchmark:
    return VideoFolderBenchmark(
        VideoFolderOptions(root=str(root), **{**OPTIONS, **options}), root / "_cache"
    )


def test_gif_frames_decode_exactly_with_stride_resize_and_crop(tmp_path: Path) -> None:
    """A GIF of 3 flat colours is lossless: frames come back exactly, every `stride`-th one; crop
    keeps the centre at scale, resize stretches; a still image repeats or is refused."""
    video = render("red", "right", 8, 32, 48, np.random.default_rng(0))  # (8, 32, 48, 3)
    write_video(tmp_path / "a.gif", video)
    same = read_clip(
        tmp_path / "a.gif", ClipSpec(frames=3, height=32, width=48, stride=2, fit="resize")
    )
    assert same.shape == (3, 32, 48, 3) and same.dtype == np.uint8
    assert np.array_equal(same, video[[0, 2, 4]])
    crop = read_clip(
        tmp_path / "a.gif", ClipSpec(frames=2, height=32, width=32)
    )  # same scale, centre cut
    assert np.array_equal(crop, video[:2, :, 8:40])
    # one way of counting: 4 frames at stride 3 reach the file's 10th frame (source index 9)
    with pytest.raises(
        BadClip, match=r"the file has 8, the clip needs 10 \(its 4 frames reach source frame 10 "
    ):
        read_clip(tmp_path / "a.gif", ClipSpec(frames=4, height=8, width=8, stride=3))
    from PIL import Image

    Image.fromarray(video[0]).save(tmp_path / "s.png")
    still = read_clip(tmp_path / "s.png", ClipSpec(frames=3, height=16, width=24, fit="resize"))
    assert still.shape == (3, 16, 24, 3) and np.array_equal(still[0], still[2])
    with pytest.raises(BadClip, match="still image has 1 frame"):
        read_clip(tmp_path / "s.png", ClipSpec(frames=3, height=16, width=24, images="skip"))


def test_mp4_decodes_close_to_its_source_and_fps_resamples(tmp_path: Path) -> None:
    video = render("yellow", "down", 12, 48, 64, np.random.default_rng(2))
    write_video(tmp_path / "v.mp4", video, fps=8.0)
    clip = read_clip(tmp_path / "v.mp4", ClipSpec(frames=4, height=48, width=64, fit="resize"))
    assert clip.shape == (4, 48, 64, 3)
    assert np.abs(clip.astype(int) - video[:4]).mean() < 6  # H.264 is lossy, not wrong
    half = read_clip(
        tmp_path / "v.mp4", ClipSpec(frames=4, height=48, width=64, fps=4.0, fit="resize")
    )
    assert np.array_equal(
        half,
        read_clip(
            tmp_path / "v.mp4", ClipSpec(frames=4, height=48, width=64, stride=2, fit="resize")
        ),
    )


@pytest.mark.parametrize("manifest", ["captions.csv", "captions.jsonl"])
def test_every_bad_item_is_skipped_with_its_reason(folder: Path, manifest: str) -> None:
    """Manifest-level reasons without decoding; decoding reasons come from load_clip; CSV and JSONL agree."""
    entries, skipped = read_manifest(folder, folder / manifest)
    reasons = {r["key"]: r["reason"] for r in skipped}
    b = bench(folder, manifest=manifest)
    for key in ("clips/truncated.mp4", "clips/one_frame.mp4"):  # only decoding finds these
        assert key not in reasons
        with pytest.raises(BadClip) as err:
            b.load_clip(ClipItem(key, "x"))
        reasons[key] = str(err.value)
    assert set(reasons) == set(BAD)
    for key, want in BAD.items():
        assert want in reasons[key], (key, reasons[key])
    assert (
        len(b.split.train) == GOOD_TRAIN + 2 and len(b.split.eval) == 3
    )  # + truncated + one_frame; + eval_truncated


def test_training_set_suites_and_references(folder: Path) -> None:
    b = bench(folder)
    captions, videos = b.training_set()
    assert len(captions) == GOOD_TRAIN and videos.shape == (GOOD_TRAIN, 4, 16, 16, 3)
    assert b.geometry() == (4, 16, 16)
    t2v, i2v = b.suite("t2v"), b.suite("i2v")
    # the held-out clip only decoding finds bad is in no suite, and the benchmark says why
    assert [(r["key"], EVAL_BAD[r["key"]] in r["reason"]) for r in b.eval_skipped()] == [
        (k, True) for k in EVAL_BAD
    ]
    assert (
        len(t2v) == 2
        and i2v[0].condition_frames == (0,)
        and b.suite("interpolation")[0].condition_frames == (0, 3)
    )
    real = b.real_videos(t2v)
    assert real.shape == (2, 4, 16, 16, 3) and b.real_videos(b.suite("t2i")).shape == (
        2,
        1,
        16,
        16,
        3,
    )
    tok = RGBGridTokenizer(patch=4, levels=4)
    assert torch.equal(b.generate_reference("real", t2v, tok, 0), real)
    rec = b.generate_reference("reconstruction", t2v, tok, 0)
    assert rec.shape == real.shape and (rec.float() - real.float()).abs().mean() < 40


def test_eval_prompt_file_gives_text_only_t2v_prompts(folder: Path) -> None:
    (folder / "prompts.txt").write_text("a red square moving up\n\na blue square\n")
    b = bench(folder, eval_prompts="prompts.txt")
    assert [p.caption for p in b.suite("t2v")] == ["a red square moving up", "a blue square"]
    with pytest.raises(ValueError, match="comes from eval_prompts and has no real clip"):
        b.real_videos(b.suite("t2v"))
    assert len(b.suite("i2v")) == 2  # conditioned tasks still use the eval clips


def test_fingerprint_follows_files_manifest_and_options(folder: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(folder, root)
    first = bench(root).fingerprint()
    assert bench(root).fingerprint() == first
    assert bench(root, frame_stride=2).fingerprint() != first
    clip = root / "clips" / "clip0001.mp4"
    os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10**9))
    touched = bench(root).fingerprint()
    assert touched != first
    with open(root / "captions.csv", "a") as f:
        f.write("clips/clip0002.mp4,a second caption,train\n")
    assert bench(root).fingerprint() != touched  # manifest content (the duplicate row is a skip)


def check(root: Path, **options) -> str:
    with pytest.raises(SpecError) as err:
        validate_model(
            VideoFolderOptions,
            {"root": str(root), **options},
            "spec.yaml",
            "base",
            section=("benchmark",),
        )
    return str(err.value)


def test_bad_options_are_one_paragraph_spec_errors(folder: Path, tmp_path: Path) -> None:
    assert "expected either fps or frame_stride, not both" in check(folder, fps=4, frame_stride=2)
    assert "benchmark.root): expected a folder of videos and images" in check(tmp_path / "nowhere")
    assert "benchmark.manifest): expected a file in the folder" in check(
        folder, manifest="missing.csv"
    )
    assert "benchmark.eval_prompts): expected a file" in check(folder, eval_prompts="p.txt")
    (tmp_path / "bad.jsonl").write_text('{"path": "a.mp4", "caption": "x"}\n{not json\n')
    msg = check(tmp_path, manifest="bad.jsonl")
    assert "bad.jsonl:2: expected one JSON object per line" in msg and "\n" not in msg
    (tmp_path / "cols.csv").write_text("file,text\na.mp4,x\n")
    assert "cols.csv:1: expected a header row with columns path, caption" in check(
        tmp_path, manifest="cols.csv"
    )
    (tmp_path / "none.csv").write_text("path,caption\nmissing.mp4,a caption\n")
    msg = check(tmp_path, manifest="none.csv")
    assert "expected a valid" not in msg and "at least one usable training clip" in msg
    assert "missing.mp4: none.csv:2: caption of a missing file" in msg


def test_no_weights_tokenizers_round_trip() -> None:
    tok = RGBGridTokenizer(patch=2, levels=4)
    video = torch.randint(0, 256, (2, 3, 4, 6, 3), dtype=torch.uint8)
    ids = tok.encode(video)
    assert ids.shape == (2, 3, 2, 3) and int(ids.max()) < tok.vocab_size == 64
    assert torch.equal(tok.encode(tok.decode(ids)), ids)  # decode is a fixed point of encode
    assert tok.codebook_embeddings().shape == (64, 3)
    with pytest.raises(ValueError, match="divisible by the tokenizer's patch 2"):
        tok.latent_shape(3, 5, 6)
    ids, mask = ByteTokenizer(max_length=4)(["ab", "héllo"])
    assert ids.tolist() == [[98, 99, 0, 0], [105, 196, 170, 109]] and mask.sum(1).tolist() == [2, 4]


def test_a_relative_root_is_the_spec_folders_and_validate_counts_the_items(
    folder: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`benchmark.root` relative to the spec file's folder (as `include:` is), whatever the working
    directory; a missing one is named resolved; `validate` counts usable and skipped items."""
    import shutil

    import yaml
    from video_folder_fixtures import folder_spec

    from harness.cli import main

    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copytree(folder, specs / "videos")
    spec = folder_spec(specs / "s.yaml", Path("videos"))
    monkeypatch.chdir(tmp_path)  # not the spec's folder: the root must not resolve here
    assert main(["validate", str(spec)]) == 0
    out = capsys.readouterr().out
    usable, skipped = read_manifest(folder, folder / "captions.csv")
    assert f"data: {specs / 'videos'}: " in out and f"{len(skipped)} skipped" in out
    assert f"{sum(e.split != 'eval' for e in usable)} training and" in out
    data = yaml.safe_load(spec.read_text())
    data["base"]["benchmark"]["root"] = "missing"
    spec.write_text(yaml.safe_dump(data))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"(no such folder: {specs / 'missing'})" in err and "benchmark.root" in err
