"""Read-ahead (mm/readahead.c): windows, PG_readahead marks, and what fault-around makes of them.

The host cases are short conformance scripts run through the conform
harness on the host kernel and on vmsim; every step is followed by a
snapshot (smaps, pagemap, fault counts) and the two sides must be equal,
with no known difference allowed.  Their files are at most four pages, so
every read-ahead window ends at EOF and the host's device read-ahead size
(vmsim's ``ra_pages``) does not matter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim import Machine
from vmsim.conform.generator import FILES
from vmsim.conform.host import host_supported
from vmsim.conform.runner import Case, run_case
from vmsim.fs.vfs import O_RDONLY
from vmsim.mm import filemap
from vmsim.mm import mman as m
from vmsim.mm.page import PG

PS = 4096
A = 0x100000

HOST_CASES = {
    # read() from the start of a file reads a window of four pages and marks
    # the page after the request PG_readahead; MAP_POPULATE's first fault
    # maps around it, and the second fault finds it, clears the mark and is
    # retried: two minor faults, not one.  (random/1/375)
    "populate-locked-after-pread": (
        "open g1.bin 0", "pread 3 2334 1",
        "mmap 0x411000 0x2000 5 0x2012 3 0",  # PROT_READ|EXEC, MAP_LOCKED|MAP_FIXED|MAP_PRIVATE
    ),
    "fault-around-skips-marked-page": (
        "open g0.bin 0", "pread 3 0 1",
        f"mmap {A:#x} {4 * PS:#x} 1 18 3 0",
        f"mincore {A:#x} {4 * PS:#x}",
        f"touch {A:#x} r", f"touch {A + PS:#x} r", f"touch {A + 2 * PS:#x} r",
    ),
    # a read() that reaches the marked page clears the mark
    "pread-clears-mark": (
        "open g0.bin 0", "pread 3 0 1", "pread 3 0x1000 1",
        f"mmap {A:#x} {4 * PS:#x} 1 18 3 0", f"touch {A:#x} r",
    ),
    # a two-page read marks the third page
    "pread-two-pages": (
        "open g0.bin 0", "pread 3 0 0x1800",
        f"mmap {A:#x} {4 * PS:#x} 1 18 3 0", f"touch {A:#x} r", f"touch {A + 2 * PS:#x} r",
    ),
    # MADV_RANDOM does not stop the read-ahead of an executable area (6.16+)
    "exec-random-reads-ahead": (
        "open g0.bin 0", f"mmap {A:#x} {4 * PS:#x} 5 18 3 0",
        f"madvise {A:#x} {4 * PS:#x} 1", f"touch {A + PS:#x} r", f"mincore {A:#x} {4 * PS:#x}",
    ),
    # nor that of MADV_HUGEPAGE, which reads PMD-sized windows
    "hugepage-random-reads-ahead": (
        "open g0.bin 0", f"mmap {A:#x} {4 * PS:#x} 1 18 3 0",
        f"madvise {A:#x} {4 * PS:#x} 1", f"madvise {A:#x} {4 * PS:#x} 14",
        f"touch {A:#x} r", f"mincore {A:#x} {4 * PS:#x}",
    ),
}


@pytest.mark.skipif(not host_supported(), reason="needs a Linux x86-64 host")
@pytest.mark.parametrize("name", sorted(HOST_CASES))
def test_same_as_host(name: str, tmp_path: Path) -> None:
    res = run_case(Case(name, HOST_CASES[name], FILES), tmp_path / "files", table=())
    assert res.status == "pass", res.detail


def test_sync_read_window_and_mark(machine: Machine) -> None:
    kmem = machine.kmem
    inode = filemap.Inode(1, (0, 1), 64 * PS, filemap.BytesBacking(bytes(64 * PS)))
    ra = filemap.FileRaState()
    filemap.file_read(kmem, inode, 0, 1, ra)
    assert sorted(inode.pages) == [0, 1, 2, 3]  # get_init_ra_size(1) = 4
    assert (ra.start, ra.size, ra.async_size) == (0, 4, 3)
    assert [i for i, pfn in inode.pages.items() if kmem.mem_map.flags_mv[pfn] & PG.readahead] == [1]
    assert ra.prev_pos == 1
    # the next read reaches the mark: the window moves on and doubles (ra_pages 32)
    filemap.file_read(kmem, inode, PS, 1, ra)
    assert not kmem.mem_map.flags_mv[inode.pages[1]] & PG.readahead
    assert (ra.start, ra.size, ra.async_size) == (4, 8, 8)
    assert sorted(inode.pages) == list(range(12))
    assert kmem.mem_map.flags_mv[inode.pages[4]] & PG.readahead  # async_size == size: marked first


def test_random_read_reads_only_what_it_needs(machine: Machine) -> None:
    kmem = machine.kmem
    inode = filemap.Inode(1, (0, 1), 64 * PS, filemap.BytesBacking(bytes(64 * PS)))
    filemap.file_read(kmem, inode, 10 * PS, 2 * PS, filemap.FileRaState())
    assert sorted(inode.pages) == [10, 11]
    assert not any(kmem.mem_map.flags_mv[pfn] & PG.readahead for pfn in inode.pages.values())


def test_fault_read_around_marks_and_exec_window(machine: Machine, tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(bytes(128 * PS))
    p = machine.spawn()
    fd = p.open("/big", O_RDONLY)
    a = p.mmap(None, 128 * PS, "r--", "private", fd, 0)
    inode = p.mm.mm_rb.find_vma(a).vm_file.inode
    assert p.load(a + 40 * PS, 1) == b"\0"
    ra_pages = machine.kmem.sysctl.ra_pages
    window = list(range(40 - ra_pages // 2, 40 + ra_pages // 2))
    assert sorted(inode.pages) == window
    marked = [i for i, pfn in inode.pages.items() if machine.kmem.mem_map.flags_mv[pfn] & PG.readahead]
    assert marked == [window[0] + ra_pages - ra_pages // 4]
    x = p.mmap(None, 8 * PS, "r-x", "private", fd, 100 * PS)
    assert p.madvise(x, 8 * PS, m.MADV_RANDOM) == 0
    assert p.load(x + 2 * PS, 1) == b"\0"
    assert sorted(i for i in inode.pages if i >= 100) == list(range(102, 108))  # to the VMA's end
    machine.check()
