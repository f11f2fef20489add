"""Tests of the vmsim side of the comparison harness (vmsim/conform/vmsim_side.py) on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim.conform.compare import compare_with_host, normalize_host_line, normalize_shmem_inode
from vmsim.conform.files import FileSet
from vmsim.conform.script import Abs, Script, ScriptError
from vmsim.conform.script import parse_num as _num
from vmsim.conform.vmsim_side import VMSIM_BASE, VmsimRunner

P = 4096
RW = "PROT_READ|PROT_WRITE"
PAF = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED"


def run(s: Script, root: Path | None = None) -> list[str]:
    return VmsimRunner(root=root).run(s.lines)


def test_num_matches_vmops_parser() -> None:
    assert _num("10") == 10
    assert _num("010") == 10  # never octal
    assert _num("0x1F") == 31
    assert _num("-1") == (1 << 64) - 1
    assert _num("-0x1000") == (1 << 64) - 0x1000
    assert _num("+5") == 5
    for bad in ("", "-", "0x", "1a", "x1", "0xg"):
        with pytest.raises(ScriptError):
            _num(bad)


def test_base_is_like_a_host_base() -> None:
    assert VMSIM_BASE % (2 << 20) == 0
    assert len(f"{VMSIM_BASE:x}") == 12


def test_mmap_maps_and_relative_results() -> None:
    s = Script().mmap(0x10000, 3 * P, RW, PAF).maps()
    s.mmap(Abs(VMSIM_BASE + 0x20000), P, "PROT_READ", PAF).munmap(0x10001, P)
    assert run(s) == [
        "ret +0x10000",
        "00010000-00013000 rw-p 00000000 00:00 0 ",
        "end",
        "ret +0x20000",
        "ret -22",
    ]


def test_touch_mincore_read_write() -> None:
    s = Script().mmap(0, 3 * P, RW, PAF).write_at(0x10, b"\x01\x02").touch(2 * P, "w")
    s.read_at(0xF, 4).mincore(0, 3 * P).mincore(0, 0).pagemap(0, 2)
    out = run(s)
    assert out[:6] == ["ret +0x0", "ok", "ok", "data 00010200", "ret 0 101", "ret 0"]
    words = out[6].split()
    assert words[0] == "pagemap" and len(words) == 3
    assert int(words[1], 16) & 0x100 and not int(words[2], 16) & 0x100


def test_fatal_fault_then_dead() -> None:
    s = Script().touch(0x20000, "r").mmap(0, P, RW, PAF).maps()
    assert run(s) == ["sig SIGSEGV MAPERR +0x20000", "dead", "dead"]


def test_fork_prefix_cow_and_faults() -> None:
    s = Script().mmap(0, P, RW, PAF).write_at(0, b"\x11").faults()
    s.fork().faults().write_at(0, b"\x22").read_at(0, 1).faults().endchild()
    s.read_at(0, 1).faults()
    assert run(s) == [
        "ret +0x0",
        "ok",
        "faults 1 0",
        "child: faults 0 0",
        "child: ok",
        "child: data 22",
        "child: faults 1 0",
        "data 11",
        "faults 0 0",
    ]


def test_bad_ops() -> None:
    lines = ["# comment", "", "frobnicate", "mmap 1 2", "munmap zz 1", "endchild", "munlockall"]
    assert VmsimRunner().run(lines) == ["bad-op", "bad-op", "bad-op", "bad-op", "ret 0"]


def test_files_fds_start_at_3(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"abc")
    fs = FileSet(tmp_path)
    s = Script().open(fs.path("f.bin"), "O_RDWR").pread(3, 0, 5).pwrite(3, 1, b"ZZ")
    s.pread(3, 0, 3).close(3).close(3).open(fs.path("missing"), "O_RDONLY")
    out = VmsimRunner(root=tmp_path, path_map=(str(tmp_path), "/")).run(s.lines)
    assert out == ["ret 3", "data 616263", "ret 2", "data 615a5a", "ret 0", "ret -9", "ret -2"]


def test_normalize_host_line(tmp_path: Path) -> None:
    line = f"00100000-00102000 r-xp 00000000 fe:00 12                         {tmp_path}/lib.so"
    want = "00100000-00102000 r-xp 00000000 fe:00 12                         /lib.so"
    assert normalize_host_line(line, tmp_path) == want
    assert normalize_host_line("child: " + line, tmp_path) == "child: " + want
    assert normalize_host_line("Size:  4 kB", tmp_path) == "Size:  4 kB"


def test_normalize_shmem_inode() -> None:
    host = "00100000-00102000 rw-s 00000000 00:01 31                         /dev/zero (deleted)"
    sim = "00100000-00102000 rw-s 00000000 00:01 1001                       /dev/zero (deleted)"
    assert normalize_shmem_inode(host) == normalize_shmem_inode(sim)
    assert "<ino> @col65 " in normalize_shmem_inode(host)
    bad_pad = (
        "00100000-00102000 rw-s 00000000 00:01 1001                        /dev/zero (deleted)"
    )
    assert normalize_shmem_inode(bad_pad) != normalize_shmem_inode(host)


def test_compare_with_host_same_inode(vmops_exe: Path, tmp_path: Path) -> None:
    """Both sides see the same file (device, inode, guest path) in maps."""

    def build(s: Script, f: FileSet) -> None:
        s.open(f.path("lib.so"), "O_RDONLY").mmap(0, P, "PROT_READ", "MAP_PRIVATE|MAP_FIXED", 3, 0)
        s.maps()

    host, sim = compare_with_host(build, tmp_path, {"lib.so": b"x" * P})
    assert host.lines == sim
    assert sim[2].endswith(" /lib.so")
