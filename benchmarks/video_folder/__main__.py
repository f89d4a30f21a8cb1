"""`python -m benchmarks.video_folder example DIR [--n N] [--seed S]`: write an example folder
(real mp4 / gif / png files of moving squares, varied sizes and lengths, captions.csv)."""

from __future__ import annotations

import argparse
import sys

from benchmarks.video_folder.example import make_example


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.video_folder", description=__doc__.splitlines()[0]
    )
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("example", help="write an example folder of captioned clips")
    ex.add_argument(
        "dir", help="folder to write (created; existing files of the same names are replaced)"
    )
    ex.add_argument("--n", type=int, default=200, help="clips (default 200)")
    ex.add_argument("--eval", type=int, default=16, help="rows split 'eval' (default 16)")
    ex.add_argument("--seed", type=int, default=0, help="seed of colours, motions and placements")
    args = ap.parse_args(argv)
    if args.n < 2 or not 0 <= args.eval < args.n:
        print(
            f"error: --n: expected >= 2 and --eval in [0, n), got --n {args.n} --eval {args.eval}",
            file=sys.stderr,
        )
        return 2
    manifest = make_example(args.dir, n=args.n, seed=args.seed, eval_rows=args.eval)
    print(f"{manifest}: {args.n} clips ({args.eval} eval)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
