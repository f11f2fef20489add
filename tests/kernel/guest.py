"""Run one C test program natively and on vmsim and compare (the host kernel is the referee).

`same(tmp_path, source, name)` builds `source` static (gcc, and musl-gcc
when asked and installed), runs it on the host in a scratch directory and
on a fresh vmsim machine whose root is another scratch directory (the
program is installed as /prog, run with cwd "/"), and asserts that stdout
and the exit status (as a shell reports it) are identical. It returns the
vmsim result for further checks (kernel log, signal).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.progs import build, have, install, run_native, shell_status
from vmsim import Machine
from vmsim.machine import RunResult

PRELUDE = """
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
"""


@dataclass
class Outcome:
    native_stdout: bytes
    native_status: int
    vm: RunResult
    binary: Path


def compilers(musl: bool) -> list[str]:
    return ["gcc", "musl-gcc"] if musl and have("musl-gcc") else ["gcc"]


def same(tmp_path: Path, source: str, name: str, *, compiler: str = "gcc",
         args: tuple[str, ...] = (), stdin: bytes = b"", memory: str = "64M",
         check_stderr: bool = False, engine: str = "unicorn") -> Outcome:
    """Build, run natively and on vmsim, assert identical stdout and status."""
    binary = build(PRELUDE + source, name, compiler)
    ndir = tmp_path / f"native-{compiler}"
    ndir.mkdir(exist_ok=True)
    native = run_native(binary, list(args), stdin=stdin, cwd=ndir)
    root = tmp_path / f"root-{compiler}"
    root.mkdir(exist_ok=True)
    install(binary, root, "/prog")
    m = Machine(memory=memory, seed=1, root=root, engine=engine)
    vm = m.run("/prog", ["prog", *args], stdin=stdin, timeout=30)
    status = shell_status(native.returncode)
    assert not vm.timed_out, vm.kernel_log
    assert (vm.stdout.decode(errors="replace"), vm.exit_code) == (
        native.stdout.decode(errors="replace"), status), vm.kernel_log
    if check_stderr:
        assert vm.stderr == native.stderr
    m.check()  # every frame accounted for after the processes are gone
    return Outcome(native.stdout, status, vm, binary)
