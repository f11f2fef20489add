"""Tests of the host reference runner itself (vmsim/conform/vmops.c + host.py, script.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from vmsim.conform.constants import CONSTANTS
from vmsim.conform.host import CFLAGS, SOURCE, HostRun, find_gcc, run_host
from vmsim.conform.script import Abs, Script, fmt_arg, op

RW = "PROT_READ|PROT_WRITE"
ANON_FIXED = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED"
SHARED_FIXED = "MAP_SHARED|MAP_FIXED"
PAGE = 4096
REL = re.compile(r"^ret (\+0x[0-9a-f]+|out)$")


def run(s: Script) -> HostRun:
    return run_host(s.lines)


# --------------------------------------------------------------- script layer


def test_fmt_arg() -> None:
    assert fmt_arg(None) == "-"
    assert fmt_arg(4095) == "4095"
    assert fmt_arg(0x10000) == "0x10000"
    assert fmt_arg(-1) == "-1"
    assert fmt_arg(-0x2000) == "-0x2000"
    assert fmt_arg(Abs(0xFFFF_F000)) == "=0xfffff000"
    assert fmt_arg(b"\x01\xab") == "01ab"
    assert fmt_arg("PROT_READ|PROT_EXEC") == "5"
    assert fmt_arg("MAP_SHARED|MAP_FIXED_NOREPLACE") == "0x100001"
    assert fmt_arg("/tmp/x") == "/tmp/x"
    assert fmt_arg("w") == "w"
    with pytest.raises(ValueError):
        fmt_arg("two words")
    with pytest.raises(ValueError):
        fmt_arg(b"")
    with pytest.raises(KeyError):
        fmt_arg("MAP_BOGUS")


def test_op_and_script() -> None:
    assert op("mmap", 0x10000, 0x3000, RW, ANON_FIXED, -1, 0) == "mmap 0x10000 0x3000 3 50 -1 0"
    s = Script().mmap(None, PAGE, "PROT_NONE", "MAP_PRIVATE|MAP_ANONYMOUS").maps()
    assert s.lines == ["mmap - 0x1000 0 34 -1 0", "maps"]
    assert list(s) == s.lines and len(s) == 2


# --------------------------------------------------------------- the runner


def test_compiles_without_warnings(tmp_path: Path) -> None:
    proc = subprocess.run(
        [find_gcc(), *CFLAGS, "-Wextra", "-o", str(tmp_path / "vmops"), str(SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_base_is_2m_aligned(vmops_exe: Path) -> None:
    r = run_host([])
    assert r.base % (2 << 20) == 0
    assert 0x1000_0000 < r.base < 1 << 47
    assert r.lines == []


def test_mmap_then_maps_shows_vma(vmops_exe: Path) -> None:
    r = run(Script().mmap(0x10000, 0x3000, RW, ANON_FIXED).maps())
    assert r.lines == ["ret +0x10000", "00010000-00013000 rw-p 00000000 00:00 0 ", "end"]


def test_maps_split_and_merge(vmops_exe: Path) -> None:
    s = Script().mmap(0, 0x4000, RW, ANON_FIXED)
    s.mprotect(0x1000, 0x1000, "PROT_READ").maps()
    s.mprotect(0x1000, 0x1000, RW).maps()
    r = run(s)
    assert r.lines == [
        "ret +0x0",
        "ret 0",
        "00000000-00001000 rw-p 00000000 00:00 0 ",
        "00001000-00002000 r--p 00000000 00:00 0 ",
        "00002000-00004000 rw-p 00000000 00:00 0 ",
        "end",
        "ret 0",
        "00000000-00004000 rw-p 00000000 00:00 0 ",
        "end",
    ]


def test_touch_signals(vmops_exe: Path) -> None:
    s = Script().mmap(0x10000, PAGE, "PROT_READ", ANON_FIXED)
    s.touch(0x20000, "r").touch(0x10000, "r").touch(0x10000, "w").touch(None, "r")
    r = run(s)
    assert r.lines == [
        "ret +0x10000",
        "sig SIGSEGV MAPERR +0x20000",
        "ok",
        "sig SIGSEGV ACCERR +0x10000",
        "sig SIGSEGV MAPERR =0x0",
    ]


def test_write_read_and_mincore(vmops_exe: Path) -> None:
    s = Script().mmap(0, 3 * PAGE, RW, ANON_FIXED)
    s.write_at(0x10, b"\x01\x02\x03").touch(2 * PAGE, "w")
    s.read_at(0x0F, 5).read_at(2 * PAGE, 1).mincore(0, 3 * PAGE).mincore(0, 0)
    s.mincore(0x100, PAGE).mincore(3 * PAGE, PAGE)
    r = run(s)
    assert r.lines == [
        "ret +0x0",
        "ok",
        "ok",
        "data 0001020300",
        "data 5a",
        "ret 0 101",
        "ret 0",
        "ret -22",
        "ret -12",
    ]


def test_fork_child_lines_and_cow(vmops_exe: Path) -> None:
    s = Script().mmap(0, PAGE, RW, ANON_FIXED).write_at(0, b"\x11")
    s.fork().write_at(0, b"\x22").read_at(0, 1)
    s.fork().read_at(0, 1).endchild()
    s.endchild()
    s.read_at(0, 1)
    r = run(s)
    assert r.lines == [
        "ret +0x0",
        "ok",
        "child: ok",
        "child: data 22",
        "child: child: data 22",
        "data 11",
    ]
    assert r.child() == ["ok", "data 22", "child: data 22"]
    assert r.parent() == ["ret +0x0", "ok", "data 11"]


def test_fault_counts(vmops_exe: Path) -> None:
    s = Script().faults().mmap(0, 4 * PAGE, RW, ANON_FIXED).faults()
    s.touch(0, "w").touch(PAGE, "w").touch(2 * PAGE, "r").faults()
    s.touch(0, "w").touch(0x100000, "r").faults()
    s.fork().faults().touch(0, "w").faults().endchild().faults()
    r = run(s)
    assert r.lines == [
        "faults 0 0",
        "ret +0x0",
        "faults 0 0",
        "ok",
        "ok",
        "ok",
        "faults 3 0",
        "ok",
        "sig SIGSEGV MAPERR +0x100000",
        "faults 0 0",
        "child: faults 0 0",
        "child: ok",
        "child: faults 1 0",
        "faults 0 0",
    ]


def test_pagemap_flags(vmops_exe: Path) -> None:
    s = Script().mmap(0, 2 * PAGE, RW, ANON_FIXED).touch(0, "w").pagemap(0, 3)
    r = run(s)
    assert r.lines[1] == "ok"
    words = r.lines[2].split()
    assert words[0] == "pagemap" and len(words) == 4
    flags = [int(w, 16) for w in words[1:]]
    assert flags[0] & (1 << (63 - 55))  # present
    assert flags[0] & (1 << (56 - 55))  # exclusively mapped
    assert flags[1] == 0 and flags[2] == 0


def test_smaps_and_mlock(vmops_exe: Path) -> None:
    s = Script().mmap(0, 2 * PAGE, RW, ANON_FIXED).mlock(0, 2 * PAGE).smaps()
    r = run(s)
    assert r.lines[:3] == ["ret +0x0", "ret 0", "00000000-00002000 rw-p 00000000 00:00 0 "]
    assert r.lines[-1] == "end"
    fields = dict(ln.split(":", 1) for ln in r.lines[3:-1])
    assert fields["Size"].split() == ["8", "kB"]
    assert fields["Rss"].split() == ["8", "kB"]
    assert fields["Locked"].split() == ["8", "kB"]
    assert "lo" in fields["VmFlags"].split()


def test_file_mapping(vmops_exe: Path, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    s = Script().open(path, "O_RDWR|O_CREAT|O_TRUNC").ftruncate(3, PAGE)
    s.pwrite(3, 0, b"hello").mmap(0x20000, 2 * PAGE, RW, SHARED_FIXED, 3, 0)
    s.read_at(0x20000, 5).write_at(0x20001, b"E").pread(3, 0, 5)
    s.touch(0x21000, "r").pread(3, PAGE, 1).maps().close(3).close(3)
    r = run(s)
    assert r.lines[:9] == [
        "ret 3",
        "ret 0",
        "ret 5",
        "ret +0x20000",
        "data 68656c6c6f",
        "ok",
        "data 68456c6c6f",
        "sig SIGBUS ADRERR +0x21000",
        "data",
    ]
    maps = r.lines[9]
    assert maps.startswith("00020000-00022000 rw-s 00000000 ")
    assert maps.endswith(" " + str(path))
    assert r.lines[10:] == ["end", "ret 0", "ret -9"]


def test_mremap_and_unplaced_results(vmops_exe: Path) -> None:
    s = Script().mmap(0, 2 * PAGE, RW, ANON_FIXED)
    s.mremap(0, 2 * PAGE, 4 * PAGE, "MREMAP_MAYMOVE|MREMAP_FIXED", 0x100000)
    s.mremap(0x100000, 4 * PAGE, 8 * PAGE, 0, 0)
    s.mmap(None, PAGE, "PROT_READ", "MAP_PRIVATE|MAP_ANONYMOUS")
    s.munmap(0x100001, PAGE).mmap(0x1000, PAGE, "PROT_READ", "MAP_PRIVATE|MAP_ANONYMOUS|0x10", 0, 0)
    r = run(s)
    assert r.lines[:3] == ["ret +0x0", "ret +0x100000", "ret +0x100000"]
    assert REL.match(r.lines[3]), r.lines[3]
    assert r.lines[4:] == ["ret -22", "ret +0x1000"]


def test_bad_ops_and_comments(vmops_exe: Path) -> None:
    r = run_host(
        ["# a comment", "", "frobnicate 1", "mmap 1 2", "munmap zz 1", "endchild", "munlockall"]
    )
    assert r.lines == ["bad-op", "bad-op", "bad-op", "bad-op", "ret 0"]


def test_absolute_addresses(vmops_exe: Path) -> None:
    s = Script().munmap(Abs((1 << 47) - 2 * PAGE), PAGE).munmap(Abs(1 << 47), PAGE)
    s.munmap(Abs(0xFFFF_FFFF_FFFF_F000), PAGE).mprotect(None, PAGE, "PROT_READ")
    r = run(s)
    assert r.lines == ["ret 0", "ret -22", "ret -22", "ret -12"]


def test_newer_than_headers_constants_work_on_host(vmops_exe: Path) -> None:
    """MADV_GUARD_* and MAP_DROPPABLE are not in the host's headers; check them live."""
    s = Script().mmap(0, 2 * PAGE, RW, ANON_FIXED)
    s.madvise(PAGE, PAGE, "MADV_GUARD_INSTALL").touch(PAGE, "r").touch(0, "w")
    s.madvise(PAGE, PAGE, "MADV_GUARD_REMOVE").touch(PAGE, "r")
    s.mmap(0x10000, PAGE, RW, "MAP_DROPPABLE|MAP_ANONYMOUS|MAP_FIXED")
    s.mmap(0x20000, PAGE, RW, CONSTANTS["MAP_TYPE"] | CONSTANTS["MAP_ANONYMOUS"])
    r = run(s)
    assert r.lines == [
        "ret +0x0",
        "ret 0",
        "sig SIGSEGV MAPERR +0x1000",
        "ok",
        "ret 0",
        "ok",
        "ret +0x10000",
        "ret -22",
    ]
