"""Run a C test program natively in a chroot and on vmsim, on identical sandbox trees.

`both(tmp_path, source, name, setup)` builds `source` static, makes two
identical directory trees with `setup(root)`, installs the program as
/prog in each, runs it natively with the tree as its root (chroot as
root, or `unshare -r` for other users; the test is skipped if neither
works) and on vmsim with the tree as the machine's root, and returns both
outputs normalised: numbers printed as `ino=N`, `dev=N` are renumbered by
first appearance, `time=N` becomes `time=T`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.progs import build, have, install, shell_status
from vmsim import Machine

PRELUDE = """
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
/* R(expr): print the expression, its value and errno (0 if it succeeded). */
#define R(e) do { errno = 0; long _r = (long)(e); \\
    printf("%-58s -> %ld errno=%d\\n", #e, _r, _r < 0 ? errno : 0); } while (0)
"""


def normalise(text: str) -> str:
    seen: dict[tuple[str, str], str] = {}

    def sub(m: re.Match[str]) -> str:
        key = (m.group(1), m.group(2))
        if key not in seen:
            seen[key] = f"{m.group(1)}=#{sum(1 for k in seen if k[0] == m.group(1))}"
        return seen[key]

    text = re.sub(r"\b(ino|dev)=(\d+)", sub, text)
    return re.sub(r"\btime=\d+", "time=T", text)


def native_root_cmd(root: Path, args: list[str]) -> list[str]:
    if os.geteuid() == 0 and shutil.which("chroot"):
        return ["chroot", str(root), "/prog", *args]
    if shutil.which("unshare") and shutil.which("chroot"):
        return ["unshare", "-r", "chroot", str(root), "/prog", *args]
    pytest.skip("no way to run a program natively in a chroot")


def both(tmp_path: Path, source: str, name: str, setup: Callable[[Path], None] | None = None,
         args: tuple[str, ...] = (), compiler: str = "gcc") -> tuple[str, str, Machine]:
    """(native output, vmsim output, the machine), each normalised; statuses must agree."""
    if not have(compiler):
        pytest.skip(f"{compiler} is not installed")
    binary = build(PRELUDE + source, name, compiler)
    outs = []
    machine = None
    for side in ("native", "vmsim"):
        root = tmp_path / side
        root.mkdir()
        if setup is not None:
            setup(root)
        install(binary, root, "/prog")
        if side == "native":
            proc = subprocess.run(native_root_cmd(root, list(args)), capture_output=True,
                                  timeout=60, check=False)
            if proc.returncode and b"unshare" in proc.stderr:
                pytest.skip(f"cannot chroot: {proc.stderr!r}")
            outs.append((proc.stdout.decode(errors="replace"), shell_status(proc.returncode)))
        else:
            machine = Machine(memory="64M", seed=1, root=root)
            res = machine.run("/prog", ["/prog", *args], timeout=60)
            assert not res.timed_out, res.kernel_log
            outs.append((res.stdout.decode(errors="replace"), res.exit_code))
    assert machine is not None
    assert outs[0][1] == outs[1][1], (outs, machine.unimplemented)
    return normalise(outs[0][0]), normalise(outs[1][0]), machine
