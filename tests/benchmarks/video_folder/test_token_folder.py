"""token_folder: ids tokenised elsewhere (a precomputed folder written here, with the scripted
Cosmos-contract decoder / encoder of tests/ursa/tokenizers/test_cosmos.py) trained and scored through
`python -m harness run`; its spec errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ursa" / "tokenizers"))
from test_cosmos import script_checkpoint  # noqa: E402

from harness.cli import main  # noqa: E402
from harness.data import load_data  # noqa: E402
from harness.expand import expand  # noqa: E402
from harness.identity import data_config  # noqa: E402
from harness.specfile import load_spec  # noqa: E402
from harness.token_shards import tokenize  # noqa: E402
from ursa.shards import ShardDataset  # noqa: E402
from ursa.tokenizers.fsq import fsq_codebook  # noqa: E402
from ursa.tokenizers.precomputed import write_precomputed  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
LEVELS = (4, 4, 3)  # K = 48
N, BAD_ROW = 14, 4  # clips; row 4 holds an id outside the codebook


def write_folder(root: Path, decoder: bool = True, encoder: bool = True) -> Path:
    """N clips of (2, 2, 2) ids (5 frames of 16 x 16 at 4x8x8) in shards of 5, the last 2 split eval;
    clip BAD_ROW has id 60 >= K. TorchScript decoder / encoder as asked."""
    ids = torch.randint(48, (N, 2, 2, 2), generator=torch.Generator().manual_seed(0))
    write_precomputed(
        root,
        ids,
        [f"clip {i} of the folder" for i in range(N)],
        fsq_codebook(LEVELS),
        temporal_compression=4,
        spatial_compression=8,
        shard_size=5,
    )
    captions = root / "shards" / "captions.jsonl"
    rows = [
        dict(json.loads(line), split="eval" if i >= N - 2 else "train")
        for i, line in enumerate(captions.read_text().splitlines())
    ]
    captions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shard = np.load(root / "shards" / "shard-00000.npy")
    shard[BAD_ROW, 3] = 60
    np.save(root / "shards" / "shard-00000.npy", shard)
    ckpt = script_checkpoint(root / "ckpt", levels=LEVELS)
    for name, wanted in (("decoder.jit", decoder), ("encoder.jit", encoder)):
        if wanted:
            (root / name).write_bytes((ckpt / name).read_bytes())
    torch.save(ids, root / "ids.pt")
    return root


def write_spec(path: Path, folder: Path, **base) -> Path:
    data = {
        "name": "tf_tiny",
        "base": {
            "benchmark": {"name": "token_folder", "path": str(folder), "shard_size": 4},
            "model": {"preset": "tiny"},
            "train": {"steps": 3, "batch_size": 4, "checkpoint_every": 2, "warmup_steps": 1},
            "sample": {"steps": 2, "batch_size": 2, "tasks": ["t2v", "i2v"]},
            "score": {"which": ["flicker", "frames"], "denoising_bins": 2},
            **base,
        },
        "executor": {"kind": "inprocess", "threads": 1},
    }
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    # no encoder: conditioned tasks and held-out losses read the stored ids; nothing may encode
    return write_folder(tmp_path_factory.mktemp("tokens"), encoder=False)


def test_stored_ids_become_shards_with_text_columns(folder: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", folder)
    data = load_data(data_config(expand(load_spec(spec), "default")[0].config), tmp_path)
    assert data.benchmark.geometry() == (5, 16, 16) and data.latent_shape() == (2, 2, 2)
    ds = ShardDataset(tokenize(data, tmp_path, progress=False))
    ids = torch.load(folder / "ids.pt")
    train = [i for i in range(N - 2) if i != BAD_ROW]  # eval rows held out, the bad row skipped
    batch = ds.select(torch.arange(len(ds)))
    assert len(ds) == len(train) and torch.equal(batch.visual_ids, ids[train])
    assert ds.captions() == [f"clip {i} of the folder" for i in train]
    text_ids, text_mask = data.text([f"clip {i} of the folder" for i in train])
    assert torch.equal(batch.text_ids, text_ids[:, : ds.text_length]) and torch.equal(
        batch.text_mask, text_mask
    )
    skipped = [
        json.loads(line) for line in (ds.directory / "skipped.jsonl").read_text().splitlines()
    ]
    low = int(ids[BAD_ROW].min())
    assert skipped == [
        {
            "key": f"shard-00000.npy:{BAD_ROW}",
            "reason": f"ids outside the codebook [0, 48): min {low}, max 60",
        }
    ]
    # the eval suite's real clips are the stored ids decoded by the folder's decoder
    prompts = data.benchmark.suite("i2v")
    assert [p.caption for p in prompts] == [f"clip {i} of the folder" for i in (N - 2, N - 1)]
    real = data.benchmark.real_videos(prompts)
    assert real.shape == (2, 5, 16, 16, 3) and torch.equal(
        real, data.tokenizer.decode(ids[N - 2 :])
    )


def test_harness_run_trains_from_the_stored_ids_and_scores(
    folder: Path, tmp_path: Path, capsys
) -> None:
    spec, runs = write_spec(tmp_path / "s.yaml", folder), tmp_path / "runs"
    assert main(["validate", str(spec)]) == 0
    assert (
        main(
            [
                "run",
                str(spec),
                "--runs-root",
                str(runs),
                "--reports-dir",
                str(tmp_path / "rep"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "2 done, 0 not done" in capsys.readouterr().out  # the run and the reference row `real`
    results = [
        json.loads(p.read_text()) for p in (runs / "tf_tiny" / "default").glob("*/result.json")
    ]
    run = next(r for r in results if r.get("reference") is None)["metrics"]
    ref = next(r for r in results if r.get("reference") == "real")["metrics"]
    assert (
        0 <= run["temporal_flickering"] <= 1
        and 0 < run["i2v.first_frame_psnr"]
        and run["denoise_ce"] > 0
    )
    assert ref["i2v.first_frame_psnr"] == 100.0  # the real clips against themselves
    assert not list(runs.glob("_cache/data/train-*"))  # streamed from shards, not an in-memory copy
    assert len(list(runs.glob("_cache/shards/*/index.json"))) == 1


def one_paragraph(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err
    return err


def test_spec_errors_before_any_compute(folder: Path, tmp_path: Path, capsys) -> None:
    bare = write_folder(tmp_path / "bare", decoder=False, encoder=False)
    assert main(["validate", str(write_spec(tmp_path / "a.yaml", bare))]) == 2
    assert "decoder.jit: every run decodes its samples (sample.tasks: t2v, i2v)" in one_paragraph(
        capsys
    )
    assert (
        main(["validate", str(write_spec(tmp_path / "b.yaml", folder))]) == 0
    )  # i2v + denoising, no encoder
    capsys.readouterr()
    other = write_spec(tmp_path / "d.yaml", folder, tokenizer={"name": "rgb_grid"})
    assert main(["validate", str(other)]) == 2
    assert "tokenizer {name: precomputed} (path left out, or" in one_paragraph(capsys)
    assert main(["validate", str(write_spec(tmp_path / "e.yaml", tmp_path / "nowhere"))]) == 2
    msg = one_paragraph(capsys)
    assert "(run-config key benchmark.path): expected a precomputed-tokens folder" in msg
    assert (
        "precomputed.json" in msg
        and "codebook.safetensors (or codebook.npy)" in msg
        and "shard-*.npy" in msg
    )
    # `precomputed` with its path left out names no folder under any other benchmark: exit 2 before compute
    shapes = tmp_path / "g.yaml"
    shapes.write_text(
        yaml.safe_dump(
            {
                "name": "g",
                "base": {
                    "benchmark": {"name": "shapes"},
                    "tokenizer": {"name": "precomputed"},
                    "model": {"preset": "tiny"},
                    "score": {"which": ["flicker"]},
                },
            }
        )
    )
    assert main(["run", str(shapes), "--runs-root", str(tmp_path / "runs"), "--no-progress"]) == 2
    assert (
        "tokenizer.path: expected a precomputed-tokens folder (required unless the benchmark holds one"
        in one_paragraph(capsys)
    )
    assert not list((tmp_path / "runs").glob("g/*/*/result.json"))
    (bare / "shards" / "captions.jsonl").write_text('{"caption": "one"}\n')  # 14 clips, 1 caption
    assert main(["validate", str(write_spec(tmp_path / "f.yaml", bare))]) == 2
    assert (
        "captions.jsonl: expected 14 captions (one per clip in the shards), got 1"
        in one_paragraph(capsys)
    )


def test_the_example_spec_validates_on_a_folder(folder: Path, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[3] / "ablations" / "examples" / "token_folder.yaml"
    spec = yaml.safe_load(example.read_text())
    spec["base"]["benchmark"]["path"] = str(folder)
    (tmp_path / "example.yaml").write_text(yaml.safe_dump(spec))
    assert main(["validate", str(tmp_path / "example.yaml"), "--profile", "smoke"]) == 0
