"""/proc text from vmsim's structures: formats and the numbers behind them."""

from __future__ import annotations

import struct
from pathlib import Path

from vmsim import Machine
from vmsim.fs.procfs import PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT, PM_SOFT_DIRTY
from vmsim.mm import mman as m

PS = 4096


def test_maps_line_columns(machine: Machine, tmp_path: Path) -> None:
    (tmp_path / "lib.so").write_bytes(b"\x7fELF" + bytes(3 * PS))
    p = machine.spawn()
    fd = p.open("/lib.so", 0)
    a = p.mmap(0x7F00_0000_0000, 2 * PS, "r-x", "private|fixed", fd, PS)
    b = p.mmap(0x7F00_0001_0000, PS, "rw-", "private|anonymous|fixed")
    lines = p.maps().splitlines()
    inode = (tmp_path / "lib.so").stat().st_ino
    dev = (tmp_path / "lib.so").stat().st_dev
    head = f"7f0000000000-7f0000002000 r-xp 00001000 {dev >> 8:02x}:{dev & 0xff:02x} {inode}"
    assert lines[0].startswith(head)
    assert lines[0].index("/lib.so") == 73
    assert lines[1] == "7f0000010000-7f0000011000 rw-p 00000000 00:00 0 "
    assert (a, b) == (0x7F00_0000_0000, 0x7F00_0001_0000)


def test_heap_and_stack_names(machine: Machine) -> None:
    p = machine.spawn()
    p.mm.start_brk = p.mm.brk = 0x55_0000_0000
    p.brk(0x55_0000_2000)
    s = p.mmap(0x7FFF_0000_0000, 4 * PS, "rw-", "private|anonymous|growsdown|fixed")
    p.mm.start_stack = s + 3 * PS
    text = p.maps()
    assert "[heap]" in text and "[stack]" in text
    assert text.splitlines()[0].endswith(" " * 26 + "[heap]")


def test_smaps_counts_follow_pages(machine: Machine) -> None:
    p = machine.spawn()
    p.mm.rlimits.cap_ipc_lock = True
    a = p.mmap(None, 4 * PS, "rw-", "private|anonymous")
    p.store(a, b"1")
    p.store(a + PS, b"2")
    p.load(a + 2 * PS)  # zero page: not counted
    c = p.fork()
    assert not isinstance(c, int)
    text = p.smaps()
    assert "Rss:                   8 kB\n" in text
    assert "Pss:                   4 kB\n" in text  # two pages, each shared by two
    assert "Shared_Dirty:          8 kB\n" in text and "Anonymous:             8 kB\n" in text
    assert text.rstrip().endswith("VmFlags: rd wr mr mw me ac sd")
    c.store(a, b"x")
    assert "Private_Dirty:         4 kB\n" in p.smaps()
    p.mlock(a, PS)
    assert any(line.startswith("VmFlags: rd wr mr mw me lo ac sd") for line in p.smaps().splitlines())


def test_status_vm_lines(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 16 * PS, "rw-", "private|anonymous")
    for i in range(5):
        p.store(a + i * PS, b"x")
    p.munmap(a + 8 * PS, 8 * PS)
    status = p.status()
    assert "VmPeak:\t      64 kB\n" in status
    assert "VmSize:\t      32 kB\n" in status
    assert "VmRSS:\t      20 kB\n" in status and "RssAnon:\t      20 kB\n" in status
    assert "VmData:\t      32 kB\n" in status
    assert f"VmPTE:\t{p.mm.pgtables_bytes >> 10:>8} kB\n" in status


def test_pagemap_bits(machine: Machine, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(bytes(PS))
    p = machine.spawn()
    a = p.mmap(None, 3 * PS, "rw-", "private|anonymous")
    p.store(a, b"x")
    p.load(a + PS)
    f = p.mmap(None, PS, "r--", "shared", p.open("/f", 0), 0)
    p.load(f)
    raw = machine.procfs.pagemap(p.pid, a, 3)
    e0, e1, e2 = struct.unpack("<3Q", raw)
    pfn = p.translate(a) // PS  # type: ignore[operator]
    assert e0 == PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY | pfn
    assert e1 & PM_PRESENT and not e1 & (PM_FILE | PM_MMAP_EXCLUSIVE)  # the zero page
    assert e2 == PM_SOFT_DIRTY  # a hole inside a soft-dirty VMA
    (ef,) = struct.unpack("<Q", machine.procfs.pagemap(p.pid, f, 1))
    assert ef & PM_FILE and ef & PM_PRESENT and ef & PM_MMAP_EXCLUSIVE


def test_meminfo_and_vmstat(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 8 * PS, "rw-", m.MAP_PRIVATE | m.MAP_ANONYMOUS | m.MAP_POPULATE)
    assert a > 0
    info = machine.procfs.meminfo()
    assert f"MemTotal:       {machine.kmem.buddy.managed_pages * 4:>8} kB\n" in info
    assert "AnonPages:            32 kB\n" in info
    vmstat = dict(line.split() for line in machine.procfs.vmstat().splitlines())
    assert int(vmstat["pgfault"]) == 8 and int(vmstat["nr_anon_pages"]) == 8
