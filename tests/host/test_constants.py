"""Keep vmsim/conform/constants.py honest: compare it with the host's C headers.

Two small C programs print every constant of the table that their headers
define: one built against glibc's headers (<sys/mman.h>, <fcntl.h>), one
against the kernel's UAPI headers (<linux/mman.h>, <linux/fcntl.h>).  Every
value either set defines must equal the table (except the documented glibc
differences), and every name must be defined somewhere unless it is newer than
the host's headers.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vmsim.conform.constants import CONSTANTS, GLIBC_DIFFERS, NEWER_THAN_HOST_HEADERS, resolve
from vmsim.conform.host import find_gcc, host_supported, run_host
from vmsim.conform.script import Script

PAGE = 4096

pytestmark = pytest.mark.skipif(not host_supported(), reason="constants are Linux x86-64 values")

HEADER_SETS: dict[str, tuple[str, ...]] = {
    "glibc": ("sys/mman.h", "fcntl.h"),
    "uapi": ("linux/mman.h", "linux/fcntl.h"),
}


def _program(headers: tuple[str, ...]) -> str:
    lines = ["#define _GNU_SOURCE"]
    lines += [f"#include <{h}>" for h in headers]
    lines += ["#include <stdio.h>", "int main(void)", "{"]
    for name in CONSTANTS:
        lines += [
            f"#ifdef {name}",
            f'\tprintf("{name} %lld\\n", (long long)({name}));',
            "#endif",
        ]
    lines += ["\treturn 0;", "}", ""]
    return "\n".join(lines)


def _header_values(tmp: Path, tag: str, headers: tuple[str, ...]) -> dict[str, int]:
    src = tmp / f"consts_{tag}.c"
    exe = tmp / f"consts_{tag}"
    src.write_text(_program(headers))
    subprocess.run([find_gcc(), "-O0", "-w", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    values: dict[str, int] = {}
    for line in out.splitlines():
        name, value = line.split()
        values[name] = int(value)
    return values


@pytest.fixture(scope="module")
def header_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, int]]:
    tmp = tmp_path_factory.mktemp("constants")
    return {tag: _header_values(tmp, tag, hs) for tag, hs in HEADER_SETS.items()}


@pytest.mark.parametrize("name", sorted(CONSTANTS))
def test_constant_matches_headers(name: str, header_values: dict[str, dict[str, int]]) -> None:
    seen = {tag: vals[name] for tag, vals in header_values.items() if name in vals}
    if not seen:
        assert name in NEWER_THAN_HOST_HEADERS, f"{name} is defined by no host header"
        _check_on_live_kernel(name)
        return
    for tag, value in seen.items():
        if tag == "glibc" and name in GLIBC_DIFFERS:
            continue
        assert value == CONSTANTS[name], f"{name}: table {CONSTANTS[name]:#x}, {tag} {value:#x}"


def _kernel_version() -> tuple[int, int]:
    major, minor = os.uname().release.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def _check_on_live_kernel(name: str) -> None:
    """A constant newer than the host's headers is checked against the running kernel instead:
    from the version that introduced it, the kernel must accept the table's value; before, refuse it."""
    since = tuple(int(x) for x in NEWER_THAN_HOST_HEADERS[name].split()[-1].split("."))
    script = Script().mmap(0, PAGE, "PROT_READ|PROT_WRITE", "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED")
    if name.startswith("MADV_"):
        script.madvise(0, PAGE, CONSTANTS[name])
    else:
        script.mmap(PAGE * 4, PAGE, "PROT_READ|PROT_WRITE", CONSTANTS[name] | resolve("MAP_ANONYMOUS"))
    last = run_host(list(script)).lines[-1]
    accepted = last == "ret 0" or last.startswith("ret +") or last == "ret out"
    assert accepted == (_kernel_version() >= since), f"{name}: kernel {os.uname().release} said {last}"


def test_glibc_differences_are_real(header_values: dict[str, dict[str, int]]) -> None:
    for name in GLIBC_DIFFERS:
        assert header_values["glibc"].get(name) != CONSTANTS[name], name


def test_resolve() -> None:
    assert resolve("PROT_READ|PROT_WRITE") == 3
    assert resolve("MAP_PRIVATE | MAP_ANONYMOUS | 0x10") == 0x32
    assert resolve(7) == 7
    with pytest.raises(KeyError):
        resolve("PROT_BOGUS")
