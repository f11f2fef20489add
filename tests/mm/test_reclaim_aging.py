"""Page aging and MADV_PAGEOUT reclaim: vmsim's page flags, and the same scripts on the host.

Each host case is a short conformance script (vmsim/conform/script.py format)
run through the conform harness: every step is followed by a snapshot
(smaps, pagemap, fault counts) on both sides and the two must be equal, with
no known difference allowed but the shmem inode number's rewrite.  They are the minimal forms of random conform
scripts that once failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim import Machine
from vmsim.conform.corpus.handwritten import FILES
from vmsim.conform.host import host_supported
from vmsim.conform.known_differences import by_id
from vmsim.conform.runner import Case, run_case
from vmsim.fs.vfs import O_RDONLY
from vmsim.mm import mman as m
from vmsim.mm.page import PG

PS = 4096
A = 0x100000
B = 0x400000

HOST_CASES = {
    # MADV_PAGEOUT drops clean shmem pages (never written: they hold zeros)
    # and keeps a dirty one (no swap); the exec fault's fault-around then
    # maps the faulting page and the kept one only.  (random/1/836)
    "pageout-shmem": (
        f"mmap {A:#x} {4 * PS:#x} 7 0x8031 -1 0",  # RWX, MAP_SHARED|ANONYMOUS|FIXED|POPULATE
        f"touch {A + PS:#x} w",
        f"madvise {A:#x} {4 * PS:#x} 21",  # MADV_PAGEOUT
        f"touch {A:#x} x",
        f"mincore {A:#x} {4 * PS:#x}",
        f"read_at {A + PS:#x} 1",
    ),
    # Unmapping an anonymous page does not mark it accessed (only page-cache
    # pages are): after the child that read it exits, the next child's old
    # entry must not show it Referenced.  (random/1/632)
    "zap-anon-not-accessed": (
        f"mmap {A:#x} {2 * PS:#x} 3 50 -1 0",
        f"touch {A:#x} w",
        "fork", f"touch {A:#x} r", "endchild",
        "fork", "endchild",
    ),
    # A page-cache page zapped with a young entry is marked accessed; the
    # second time it was already referenced, so it is activated and loses
    # PG_referenced (folio_mark_accessed()).  The child's old entries show
    # the page flag alone.
    "zap-file-mark-accessed": (
        "open file.bin 0",
        f"mmap {B:#x} {2 * PS:#x} 3 18 3 0",  # MAP_PRIVATE|MAP_FIXED
        f"touch {B + PS:#x} w",  # a COW page gives the area an anon_vma: fork copies it
        f"touch {B:#x} r", f"madvise {B:#x} {PS:#x} 4", f"touch {B:#x} r",
        "fork", "endchild",
        f"madvise {B:#x} {PS:#x} 4", f"touch {B:#x} r",
        "fork", "endchild",
    ),
    # GUP's FOLL_TOUCH is mark_page_accessed(): MADV_POPULATE_READ of a page
    # that is already referenced activates it and clears PG_referenced; the
    # next one sets it again.  (random/1/780)
    "gup-touch-activates": (
        f"mmap {A:#x} {PS:#x} 3 0x8032 -1 0",  # MAP_PRIVATE|ANONYMOUS|FIXED|POPULATE
        "fork",
        f"madvise {A:#x} {PS:#x} 22",
        f"madvise {A:#x} {PS:#x} 22",
        f"madvise {A:#x} {PS:#x} 22",
        "endchild",
    ),
}


@pytest.mark.skipif(not host_supported(), reason="needs a Linux x86-64 host")
@pytest.mark.parametrize("name", sorted(HOST_CASES))
def test_same_as_host(name: str, tmp_path: Path) -> None:
    res = run_case(Case(name, HOST_CASES[name], FILES), tmp_path / "files", table=(by_id("shmem-inode"),))
    assert res.status == "pass", res.detail


def test_pageout_drops_clean_shmem_keeps_dirty(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 4 * PS, "rw-", "shared|anonymous|populate")
    inode = p.mm.mm_rb.find_vma(a).vm_file.inode
    assert sorted(inode.pages) == [0, 1, 2, 3]
    assert p.store(a + PS, b"x")
    assert p.madvise(a, 4 * PS, m.MADV_PAGEOUT) == 0
    assert sorted(inode.pages) == [1]  # only the written page stays (no swap)
    assert p.translate(a + PS) is None  # but it was unmapped
    assert p.load(a + PS, 1) == b"x" and p.load(a, 1) == b"\0"
    machine.check()


def _flags(machine: Machine, p, addr: int) -> int:
    pfn = p.translate(addr) >> machine.kmem.page_shift
    return int(machine.kmem.mem_map.flags_mv[pfn])


def test_gup_touch_is_folio_mark_accessed(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, PS, "rw-", "private|anonymous|populate")
    assert _flags(machine, p, a) & (PG.referenced | PG.active) == PG.referenced
    assert p.madvise(a, PS, m.MADV_POPULATE_READ) == 0
    assert _flags(machine, p, a) & (PG.referenced | PG.active) == PG.active
    assert p.madvise(a, PS, m.MADV_POPULATE_READ) == 0
    assert _flags(machine, p, a) & (PG.referenced | PG.active) == PG.referenced | PG.active


def test_zap_marks_only_page_cache_pages_accessed(machine: Machine, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(bytes(2 * PS))
    p = machine.spawn()
    a = p.mmap(None, PS, "rw-", "private|anonymous")
    assert p.store(a, b"x")
    pfn = p.translate(a) >> machine.kmem.page_shift
    c = p.fork()
    assert c.load(a, 1) == b"x"
    c.exit()
    assert not machine.kmem.mem_map.flags_mv[pfn] & PG.referenced
    f = p.mmap(None, PS, "r--", "shared", p.open("/f", O_RDONLY), 0)
    assert p.load(f, 1) == b"\0"
    pfn = p.translate(f) >> machine.kmem.page_shift
    assert p.madvise(f, PS, m.MADV_DONTNEED) == 0
    assert machine.kmem.mem_map.flags_mv[pfn] & PG.referenced
    machine.check()
