"""The `vmsim` command."""

from __future__ import annotations

import argparse
import os
import sys

from vmsim.demo import run_demo


def conform(args: argparse.Namespace) -> int:
    """`vmsim conform`: the corpus and N random scripts on the host kernel and on vmsim."""
    if args.random < 0:
        print("vmsim conform: --random must be 0 or more", file=sys.stderr)
        return 2
    from vmsim.conform.corpus import corpus
    from vmsim.conform.generator import generate
    from vmsim.conform.host import HostToolError, build_vmops, check_prerequisites
    from vmsim.conform.report import Report, header, run_cases, scratch_dir

    try:
        check_prerequisites()
        if args.mode == "binary":
            build_vmops(static=True)
        workdir = scratch_dir()
    except HostToolError as exc:
        print(f"vmsim conform: {exc}", file=sys.stderr)
        return 2
    cases = list(corpus()) if args.corpus else []
    cases += [generate(args.seed, i, args.length) for i in range(args.random)]
    if args.only:
        cases = [c for c in cases if args.only in c.id]
    report = Report(verbose=args.verbose)
    print(header(args.mode), flush=True)
    print(f"{len(cases)} scripts: {'the corpus and ' if args.corpus else ''}"
          f"{args.random} random (seed {args.seed})", flush=True)
    run_cases(cases, report, workdir, mode=args.mode)
    report.finish()
    return 1 if report.failed else 0


def run(args: argparse.Namespace) -> int:
    """`vmsim run`: a real program on vmsim (see `vmsim.cli_run`). A vmsim bug surfacing
    while the guest runs is reported in one line (VMSIM_DEBUG=1 shows the traceback)."""
    from vmsim.cli_run import run_command

    try:
        return run_command(args)
    except KeyboardInterrupt:
        print("vmsim: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("VMSIM_DEBUG"):
            raise
        print(f"vmsim: internal error while running {args.program}: "
              f"{type(exc).__name__}: {exc} (VMSIM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 70  # EX_SOFTWARE


def add_vtop_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `vmsim vtop` subcommand's arguments."""
    from vmsim.arch import MODES

    p = sub.add_parser(
        "vtop", help="walk addresses of a scripted process level by level, as crash's vtop",
        description="Build a scripted process (private, shared, copy-on-write, PROT_NONE and "
        "guard pages; or a bundled sample right after execve) on the given paging mode and "
        "print, for each address, every level's table, index, entry and decoded bits, then "
        "the physical address or why the walk stops, and the VMA.")
    p.add_argument("--arch", default="x86_64", choices=sorted(MODES), help="paging mode")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--demo", action="store_true", help="the scripted process (the default)")
    what.add_argument("--sample", metavar="NAME", help="a bundled sample, just exec'd")
    p.add_argument("--memory", default="64M", help="RAM size (default 64M)")
    p.add_argument("--seed", type=int, default=1, help="address-layout seed")
    p.add_argument("addresses", nargs="*", metavar="ADDR",
                   help="addresses (hex with 0x, or decimal); default: the scenario's own")


def vtop(args: argparse.Namespace) -> int:
    """`vmsim vtop`: see `vmsim.introspect.vtop.vtop_main`."""
    from vmsim.introspect.vtop import vtop_main

    try:
        addresses = [int(a, 0) for a in args.addresses]
        print(vtop_main(args.arch, addresses, args.sample, args.memory, args.seed), end="")
    except ValueError as exc:
        print(f"vmsim vtop: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vmsim` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="vmsim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="scripted demonstration: demand paging, fork, copy-on-write")
    demo.add_argument("--memory", default="64M", help="RAM size (default 64M)")
    demo.add_argument("--seed", type=int, default=1, help="randomisation seed")
    demo.add_argument("--no-aslr", action="store_true", help="turn address randomisation off")
    conf = sub.add_parser(
        "conform",
        help="run memory-operation scripts on the host kernel and on vmsim and compare them",
        description="Run the hand-written corpus and N seeded random scripts on the host "
        "kernel (a small C runner built with gcc) and on vmsim, compare every step "
        "(results, VMAs, smaps, pagemap, fault counts) and report each difference; "
        "known, deliberate differences are counted separately.  Exit status 1 on any "
        "unexplained difference, 2 when the host cannot run it.",
    )
    conf.add_argument("--random", type=int, default=0, metavar="N",
                      help="number of random scripts (default 0)")
    conf.add_argument("--seed", type=int, default=1, help="seed of the random scripts")
    conf.add_argument("--length", type=int, default=None, metavar="LINES",
                      help="lines per random script (default: 8 to 48)")
    conf.add_argument("--mode", choices=("api", "binary"), default="api",
                      help="api: scripts through vmsim's process API; binary: the same static "
                      "runner binary on the host kernel and as a real program on vmsim")
    conf.add_argument("--corpus", action=argparse.BooleanOptionalAction, default=True,
                      help="run the hand-written corpus (default: yes)")
    conf.add_argument("--only", default="", metavar="TEXT",
                      help="run only the scripts whose id contains TEXT")
    conf.add_argument("--verbose", "-v", action="store_true",
                      help="print every script's verdict and the known differences' reasons")
    from vmsim.cli_run import add_parser as add_run_parser

    add_run_parser(sub)
    add_vtop_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "vtop":
        return vtop(args)
    if args.command == "run":
        return run(args)
    if args.command == "demo":
        try:
            print(run_demo(memory=args.memory, seed=args.seed, aslr=not args.no_aslr), end="")
        except ValueError as exc:
            print(f"vmsim: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "conform":
        return conform(args)
    return 2  # pragma: no cover (argparse enforces a command)


if __name__ == "__main__":
    sys.exit(main())
