"""The `vmsim` command."""

from __future__ import annotations

import argparse
import sys

from vmsim.demo import run_demo


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vmsim` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="vmsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="scripted demonstration: demand paging, fork, copy-on-write")
    demo.add_argument("--memory", default="64M", help="RAM size (default 64M)")
    demo.add_argument("--seed", type=int, default=1, help="randomisation seed")
    demo.add_argument("--no-aslr", action="store_true", help="turn address randomisation off")
    args = parser.parse_args(argv)
    if args.command == "demo":
        try:
            print(run_demo(memory=args.memory, seed=args.seed, aslr=not args.no_aslr), end="")
        except ValueError as exc:
            print(f"vmsim: {exc}", file=sys.stderr)
            return 2
        return 0
    return 2  # pragma: no cover (argparse enforces a command)


if __name__ == "__main__":
    sys.exit(main())
