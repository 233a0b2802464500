"""The `stratumkit` command: serve the pool, run benchmarks, lease rigs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _bench(args: argparse.Namespace) -> int:
    if args.what == "hash":
        from stratumkit.bench import hash as bench_hash

        bench_hash.run(args.seconds)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratumkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="measure performance")
    bench.add_argument("what", choices=["hash"], help="what to measure")
    bench.add_argument("--seconds", type=float, default=1.0, help="time per figure (default 1)")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
