"""CLI: `python -m benchmarks.shapes score --generator real --suite eval --n 200 --seed 0 --json`
and `python -m benchmarks.shapes bench` (speed figures)."""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.shapes.generators import GENERATORS, generate_reference
from benchmarks.shapes.prompts import SUITES, load_suite
from benchmarks.shapes.scoring import SCORERS, score
from benchmarks.shapes.tokenizer import load_or_fit_tokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shapes")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="score a reference generator on a prompt suite")
    s.add_argument("--generator", choices=GENERATORS, required=True)
    s.add_argument("--suite", choices=SUITES, default="eval")
    s.add_argument("--n", type=int, default=200)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--train-size", type=int, default=256, help="training prompts the memoriser recalls from"
    )
    s.add_argument("--which", nargs="+", choices=SCORERS, default=list(SCORERS))
    s.add_argument("--cache-dir", default=None)
    s.add_argument("--json", action="store_true", help="print one JSON object with every metric")
    b = sub.add_parser("bench", help="measure generation, tokenizer fit and scoring speed")
    b.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    if args.command == "bench":
        from benchmarks.shapes.speed import measure_speed

        print(json.dumps(measure_speed(args.cache_dir), indent=2))
        return 0
    prompts = load_suite(args.suite, args.n, args.seed)
    tokenizer = (
        load_or_fit_tokenizer(args.cache_dir)
        if args.generator in ("reconstruction", "random")
        else None
    )
    train = (
        load_suite("train", args.train_size, args.seed) if args.generator == "memoriser" else None
    )
    videos = generate_reference(args.generator, prompts, tokenizer, seed=args.seed, train=train)
    report = score(
        videos, prompts, which=tuple(args.which), seed=args.seed, cache_dir=args.cache_dir
    )
    if args.json:
        print(
            json.dumps(
                {
                    "generator": args.generator,
                    "suite": args.suite,
                    "n": args.n,
                    "seed": args.seed,
                    **report.metrics,
                }
            )
        )
    else:
        for k, v in report.metrics.items():
            print(f"{k:28s} {v:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
