"""Runs inside the vbench env (numpy<2, transformers 4.33): evaluate, merge, write results.

Invoked by benchmarks.official.vbench_eval.run_vbench as `python -P <this file>` (-P: this folder,
whose modules have generic names, stays off sys.path); imports nothing from this project.
Each dimension is evaluated in its own VBench call (standard mode reads `{videos}/{dimension}/`);
the per-dimension results are merged into `{name}_eval_results.json`, written atomically last.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def _videos_only(folder: str, output: str, tag: str) -> str:
    """A folder of links to the .mp4 files of `folder`: standard mode takes the suffix of the
    videos it looks for from the folder's first listed entry, which could be export.json."""
    view = Path(output) / f"videos.{tag}"
    view.mkdir(parents=True, exist_ok=True)
    for path in Path(folder).iterdir():
        if path.suffix == ".mp4" and not (view / path.name).exists():
            (view / path.name).symlink_to(path.resolve())
    return str(view)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos-path", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--mode", choices=("vbench_standard", "custom_input", "i2v"), required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", default="1-1")
    parser.add_argument("--prompt-file", default=None)
    parser.add_argument(
        "--info-file", default=None, help="i2v: the info JSON of the exported videos"
    )
    parser.add_argument("--dimensions", nargs="+", required=True)
    args = parser.parse_args()

    if args.mode == "i2v":  # the info file pairs each video with its first-frame image
        from vbench2_beta_i2v import VBenchI2V

        bench = VBenchI2V(args.device, args.info_file, args.output)
    else:
        import vbench
        from vbench import VBench

        info = Path(vbench.__file__).parent / "VBench_full_info.json"
        bench = VBench(args.device, str(info), args.output)
    prompts = json.loads(Path(args.prompt_file).read_text()) if args.prompt_file else []

    merged = {}
    for dim in args.dimensions:
        part = f"{args.name}.{dim}"
        if args.mode == "i2v":
            bench.evaluate(
                videos_path=args.videos_path,
                name=part,
                dimension_list=[dim],
                local=True,
                resolution=args.resolution,
            )
        else:
            videos = (
                _videos_only(os.path.join(args.videos_path, dim), args.output, part)
                if args.mode == "vbench_standard"
                else args.videos_path
            )
            bench.evaluate(
                videos_path=videos,
                name=part,
                dimension_list=[dim],
                local=True,
                mode=args.mode,
                prompt_list=prompts,
            )
        merged.update(json.loads((Path(args.output) / f"{part}_eval_results.json").read_text()))

    final = Path(args.output) / f"{args.name}_eval_results.json"
    # a temp name of this process's own: two workers writing one output folder never share it
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(merged, indent=2))
    os.replace(tmp, final)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
