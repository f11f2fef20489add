"""The page-fault handler (mm/memory.c, with the VMA checks of arch/x86/mm/fault.c).

`do_user_addr_fault` makes the lecture's decisions: no VMA -> SIGSEGV
(SEGV_MAPERR); below a growsdown VMA -> grow the stack; rights forbid the
access -> SIGSEGV (SEGV_ACCERR); otherwise `handle_mm_fault` resolves it
(demand zero, page cache, copy-on-write). Outcomes are `VmFault` values,
never exceptions.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from vmsim.arch.paging import Access, MmuFault
from vmsim.mm import filemap
from vmsim.mm.hugetlb import hugetlb_fault
from vmsim.mm.mm_struct import MM_ANONPAGES
from vmsim.mm.page import PG
from vmsim.mm.pgtable import pte_alloc, pte_free_new, pte_offset, pte_view
from vmsim.mm.rmap import (
    anon_vma_prepare,
    mm_counter,
    page_add_new_anon_rmap,
    page_add_rmap,
    page_remove_rmap,
)
from vmsim.mm.swapops import is_guard_pte_marker
from vmsim.mm.tlb import flush_tlb_range
from vmsim.mm.vma import (
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_LOCKED,
    VM_RAND_READ,
    VM_READ,
    VM_SEQ_READ,
    VM_SHARED,
    VM_WRITE,
)

if TYPE_CHECKING:
    from vmsim.mm.kmem import Kmem
    from vmsim.mm.mm_struct import MmStruct
    from vmsim.mm.vma import Vma

SIGBUS = 7
SIGSEGV = 11
SEGV_MAPERR = 1
SEGV_ACCERR = 2
BUS_ADRERR = 2


class VmFault(enum.IntFlag):
    """enum vm_fault_reason (include/linux/mm_types.h); 0 means handled."""

    HANDLED = 0
    OOM = 0x000001
    SIGBUS = 0x000002
    MAJOR = 0x000004
    HWPOISON = 0x000010
    SIGSEGV = 0x000040
    NOPAGE = 0x000100
    LOCKED = 0x000200
    RETRY = 0x000400

    @property
    def is_error(self) -> bool:
        return bool(self and int(self) & VM_FAULT_ERROR)


VM_FAULT_ERROR = int(VmFault.OOM | VmFault.SIGBUS | VmFault.SIGSEGV | VmFault.HWPOISON)
_MAJOR = int(VmFault.MAJOR)
_WRITE = int(Access.WRITE)
_EXEC = int(Access.EXEC)
PF_PROT = int(MmuFault.PROT)
PF_WRITE = int(MmuFault.WRITE)
PF_USER = int(MmuFault.USER)
PF_INSTR = int(MmuFault.INSTR)


@dataclass
class FaultAccount:
    """The fault counters of a task (task_struct's min_flt and maj_flt), and its resolved
    faults by kind (vmsim's own statistics: an mm's counts are lost at exec)."""

    min_flt: int = 0
    maj_flt: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


class FaultOutcome(NamedTuple):
    """What a user fault came to: the VmFault bits, and the signal if it is fatal.

    (A NamedTuple: one is built per fault, and tuples are the cheapest record.)
    """

    result: VmFault
    signo: int = 0
    si_code: int = 0
    addr: int = 0
    kind: str = ""

    @property
    def ok(self) -> bool:
        return not self.signo and not int(self.result) & VM_FAULT_ERROR


def access_error(error_code: int, vma: Vma) -> bool:
    """access_error() (arch/x86/mm/fault.c): does the VMA forbid the access this #PF reports?

    Decided from the hardware error code, as x86 does: a write needs
    VM_WRITE; a fault on a present entry that is not a write is a protection
    fault (an NX fetch, say); a not-present read or fetch only needs the VMA
    to be accessible. So a fetch from a non-executable VMA first maps the
    page, and only the retried fetch fails (SEGV_ACCERR).
    """
    if error_code & PF_WRITE:
        return not vma.vm_flags & VM_WRITE
    if error_code & PF_PROT:
        return True
    return not vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC)


def vma_permits(access: int, vma: Vma) -> bool:
    """Do the VMA's rights allow this kind of access at all (read, write, fetch)?"""
    if access & _WRITE:
        return bool(vma.vm_flags & VM_WRITE)
    if access & _EXEC:
        return bool(vma.vm_flags & VM_EXEC)
    return bool(vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC))


def expand_stack(mm: MmStruct, vma: Vma, address: int) -> bool:
    """expand_downwards() (mm/mmap.c): grow a VM_GROWSDOWN area down to `address`.

    Refused below mmap_min_addr, within stack_guard_gap of an accessible
    non-stack VMA below, beyond RLIMIT_STACK or RLIMIT_AS, or past the
    memlock limit of a locked stack.
    """
    kmem = mm.kmem
    address &= ~(kmem.page_size - 1)
    if address < kmem.sysctl.mmap_min_addr:
        return False
    prev = mm.mm_rb.prev(vma)
    if prev is not None and prev.vm_end > address:
        return False
    if (prev is not None and not prev.vm_flags & VM_GROWSDOWN
            and prev.vm_flags & (VM_READ | VM_WRITE | VM_EXEC)
            and address - prev.vm_end < kmem.sysctl.stack_guard_gap):
        return False
    grow = (vma.vm_start - address) >> kmem.page_shift
    if grow <= 0:
        return True
    if vma.vm_end - address > mm.rlimits.stack:
        return False
    if (mm.total_vm + grow) << kmem.page_shift > mm.rlimits.as_:
        return False
    if vma.vm_flags & VM_LOCKED and not mm.rlimits.cap_ipc_lock and (
            (mm.locked_vm + grow) << kmem.page_shift > mm.rlimits.memlock):
        return False
    anon_vma_prepare(mm, vma)
    mm.mm_rb.update(vma, address, vma.vm_end, vma.vm_pgoff - grow)
    mm.vmacache_invalidate()
    mm.total_vm += grow
    mm.stack_vm += grow
    if mm.kmem.current is not None:
        mm.kmem.current.kinds["stack-growth"] += 1
    if vma.vm_flags & VM_LOCKED:
        mm.locked_vm += grow
    mm.update_hiwater_vm()
    return True


def do_user_addr_fault(mm: MmStruct, address: int, access: int,
                       error_code: int | None = None) -> FaultOutcome:
    """The arch fault path for a user-mode fault: VMA checks, then handle_mm_fault.

    `access` is an `Access` value (plain ints are accepted and fastest);
    `error_code` is the x86 #PF error code (X86_PF_*) the MMU reported, by
    default that of a not-present user access of that kind.
    """
    access = int(access)
    if error_code is None:
        error_code = PF_USER | (PF_WRITE if access & _WRITE else 0) | (
            PF_INSTR if access & _EXEC else 0)
    vma = mm.find_vma(address)
    if vma is None:
        return FaultOutcome(VmFault.SIGSEGV, SIGSEGV, SEGV_MAPERR, address, "segv-maperr")
    if vma.vm_start > address:
        if not vma.vm_flags & VM_GROWSDOWN or not expand_stack(mm, vma, address):
            return FaultOutcome(VmFault.SIGSEGV, SIGSEGV, SEGV_MAPERR, address, "segv-maperr")
    if access_error(error_code, vma):
        return FaultOutcome(VmFault.SIGSEGV, SIGSEGV, SEGV_ACCERR, address, "segv-accerr")
    result, kind = handle_mm_fault(mm, vma, address, access)
    if result:
        if result & VmFault.SIGBUS:
            return FaultOutcome(result, SIGBUS, BUS_ADRERR, address, kind)
        if result & VmFault.SIGSEGV:  # mm_fault_error() -> bad_area_nosemaphore()
            return FaultOutcome(result, SIGSEGV, SEGV_MAPERR, address, kind)
    return FaultOutcome(result, 0, 0, address, kind)


def handle_mm_fault(mm: MmStruct, vma: Vma, address: int, access: int,
                    count_major: bool = True) -> tuple[VmFault, str]:
    """handle_mm_fault(): allocate missing tables, then handle_pte_fault.

    Returns the VmFault bits and the kind of fault it was ("anon", "zero",
    "file", "cow", "shared", "wp-copy", "wp-reuse", "wp-shared", "spurious").
    Counts the fault in the machine's vm_event and the mm's per-kind stats;
    with count_major False a fault that read the file is charged to the task
    as minor (the caller re-faults after the I/O without FAULT_FLAG_TRIED).
    """
    kmem = mm.kmem
    kmem.vm_event["pgfault"] += 1
    if vma.vm_flags & VM_HUGETLB:
        result, kind = hugetlb_fault(mm, vma, address, access)
        mm.fault_kinds[kind] += 1
        mm_account_fault(kmem.current, VmFault(result))
        return VmFault(result), kind
    pmd_none = vma.vm_file is not None and pte_offset(kmem, mm.pgd, address) < 0
    pte_addr = pte_alloc(kmem, mm, address)
    if pte_addr < 0:
        return VmFault.OOM, "oom"
    result, kind = handle_pte_fault(mm, vma, address, pte_addr, access, pmd_none)
    if pmd_none and result and result & VM_FAULT_ERROR:
        pte_free_new(kmem, mm, address)  # the kernel never installed a table for it
    mm.fault_kinds[kind] += 1
    if kmem.current is not None:
        kmem.current.kinds[kind] += 1
    kmem.fault_kinds[kind] += 1
    if result and result & _MAJOR:
        kmem.vm_event["pgmajfault"] += 1
    mm_account_fault(kmem.current, result if count_major or not result
                     else VmFault(int(result) & ~_MAJOR))
    if kmem.events.active:
        kmem.events.emit("fault", mm=mm.owner_pid, addr=address,
                         access=Access(access).name or "READ", fault=kind, result=int(result))
    return result, kind


def mm_account_fault(acct: FaultAccount | None, result: VmFault) -> None:
    """mm_account_fault(): a completed fault is major or minor for the current task."""
    if acct is None or (result and result & VM_FAULT_ERROR):
        return
    if result and result & _MAJOR:
        acct.maj_flt += 1
    else:
        acct.min_flt += 1


def handle_pte_fault(mm: MmStruct, vma: Vma, address: int, pte_addr: int,
                     access: int, pmd_none: bool = False) -> tuple[VmFault, str]:
    """handle_pte_fault(): dispatch on the state of the entry.

    `pmd_none`: the kernel has no page table here yet (vmsim made one for
    the fault); only fault-around cares (see do_fault_around()).
    """
    kmem = mm.kmem
    mode = kmem.mode
    b = mode.bits
    entry = kmem.pt.read_entry(pte_addr, mode.entry_size)
    write = bool(access & _WRITE)
    if entry == 0:
        if vma.vm_file is None:
            return do_anonymous_page(mm, vma, address, pte_addr, write)
        if not write:
            return do_read_fault(mm, vma, address, pte_addr, pmd_none)
        if not vma.vm_flags & VM_SHARED:
            return do_cow_fault(mm, vma, address, pte_addr)
        return do_shared_fault(mm, vma, address, pte_addr)
    if not entry & b.present:
        if entry & b.protnone:  # PROT_NONE entry in an accessible VMA cannot happen without NUMA
            raise AssertionError(f"handle_pte_fault: PROT_NONE entry at {address:#x} in {vma!r}")
        if is_guard_pte_marker(mode, entry):
            return VmFault.SIGSEGV, "guard"  # handle_pte_marker(): a guard region
        raise AssertionError(f"handle_pte_fault: swap entry {entry:#x} at {address:#x} (no swap yet)")
    if write and not entry & b.write:
        return do_wp_page(mm, vma, address, pte_addr, entry)
    # Spurious: another access already resolved it; just set the bits hardware sets.
    new = entry | b.accessed | (b.dirty if write else 0)
    if new != entry:
        kmem.pt.write_entry(pte_addr, mode.entry_size, new)
    return VmFault.HANDLED, "spurious"


def _set_pte(kmem: Kmem, pte_addr: int, pfn: int, prot: int, special: bool = False) -> None:
    mode = kmem.mode
    entry = mode.make_entry(pfn, prot | (mode.bits.special if special else 0))
    kmem.pt.write_entry(pte_addr, mode.entry_size, entry)


def _writable_prot(kmem: Kmem, vma: Vma) -> int:
    """maybe_mkwrite(pte_mkdirty(mk_pte(page, vma->vm_page_prot)))'s flag bits."""
    b = kmem.mode.bits
    prot = vma.vm_page_prot | b.dirty | (b.soft_dirty if kmem.sysctl.mem_soft_dirty else 0)
    if vma.vm_flags & VM_WRITE:
        prot = (prot | b.write) & ~kmem.wr_clear  # pte_mkwrite() of a dirty entry (ARM64: RDONLY off)
    return prot


def do_anonymous_page(mm: MmStruct, vma: Vma, address: int, pte_addr: int,
                      write: bool) -> tuple[VmFault, str]:
    """do_anonymous_page(): the zero page on read, a fresh zeroed page on write."""
    kmem = mm.kmem
    if not write:
        _set_pte(kmem, pte_addr, kmem.zero_pfn, vma.vm_page_prot, special=True)
        return VmFault.HANDLED, "zero"
    anon_vma_prepare(mm, vma)
    pfn = kmem.alloc_page(zero=True)
    if pfn is None:
        return VmFault.OOM, "oom"
    page_add_new_anon_rmap(kmem, pfn, vma, address)
    mm.add_mm_counter(MM_ANONPAGES, 1)
    _set_pte(kmem, pte_addr, pfn, _writable_prot(kmem, vma))
    return VmFault.HANDLED, "anon"


def do_sync_mmap_readahead(kmem: Kmem, vma: Vma, index: int) -> None:
    """do_sync_mmap_readahead() (Linux 6.18): a fault missed the page cache at `index`; read around it.

    MADV_HUGEPAGE: two PMD-sized windows from the aligned index (one under
    MADV_RANDOM), the second marked. Otherwise MADV_RANDOM reads nothing
    ahead unless the area is executable; MADV_SEQUENTIAL reads as read()
    does (page_cache_sync_ra()); after MMAP_LOTSAMISS more misses than hits
    nothing is read ahead. Executable areas (6.16+) read from the page to at
    most ra_pages on, not past the VMA's end, unmarked; others read ra_pages
    centred on the page, marked a quarter before the end.
    """
    assert vma.vm_file is not None
    inode = vma.vm_file.inode
    ra = vma.vm_file.f_ra
    flags = vma.vm_flags
    ra_pages = kmem.sysctl.ra_pages
    if flags & VM_HUGEPAGE:
        nr = 1 << filemap.HPAGE_PMD_ORDER
        ra.size = nr if flags & VM_RAND_READ else 2 * nr
        ra.async_size = nr
        ra.order = filemap.HPAGE_PMD_ORDER
        filemap.page_cache_ra_order(kmem, inode, ra, index & ~(nr - 1))
        return
    if flags & (VM_RAND_READ | VM_EXEC) == VM_RAND_READ or not ra_pages:
        return
    if flags & VM_SEQ_READ:
        filemap.page_cache_sync_ra(kmem, inode, ra, index, ra_pages)
        return
    if ra.mmap_miss < filemap.MMAP_LOTSAMISS * 10:
        ra.mmap_miss += 1
    if ra.mmap_miss > filemap.MMAP_LOTSAMISS:
        return
    if flags & VM_EXEC:
        ra.start = max(index, vma.vm_pgoff)
        ra.size = min(ra.start + ra_pages, vma.vm_pgoff + (vma.size >> kmem.page_shift)) - ra.start
        ra.async_size = 0
    else:
        ra.start = max(index - ra_pages // 2, 0)
        ra.size = ra_pages
        ra.async_size = ra_pages // 4
    ra.order = 0
    filemap.page_cache_ra_order(kmem, inode, ra)


def do_async_mmap_readahead(kmem: Kmem, vma: Vma, index: int, pfn: int) -> bool:
    """do_async_mmap_readahead(): a fault found page `index` cached; read ahead if it is marked.

    A hit counts against mmap_miss. True if the next window was read: Linux
    drops the mmap lock for it and the fault is retried.
    """
    assert vma.vm_file is not None
    ra = vma.vm_file.f_ra
    ra_pages = kmem.sysctl.ra_pages
    if vma.vm_flags & VM_RAND_READ or not ra_pages:
        return False
    if ra.mmap_miss:
        ra.mmap_miss -= 1
    if not kmem.mem_map.flags_mv[pfn] & PG.readahead:
        return False
    filemap.page_cache_async_ra(kmem, vma.vm_file.inode, ra, index, pfn, ra_pages)
    return True


def _file_page(mm: MmStruct, vma: Vma, address: int) -> tuple[int, VmFault, bool] | VmFault:
    """__do_fault() -> filemap_fault(): the page-cache frame for address, or an error.

    Returns (pfn, HANDLED or MAJOR, retry): a cache hit is minor and may start
    asynchronous read-ahead or read a page that is not uptodate (retry: the
    fault would be retried after it);
    a miss reads around the page (do_sync_mmap_readahead()) and is major.
    Shmem pages are found or created zeroed (shmem_fault()): no read-ahead.
    """
    kmem = mm.kmem
    assert vma.vm_file is not None
    inode = vma.vm_file.inode
    index = vma.linear_page_index(address, kmem.page_shift)
    if index >= filemap.last_index(kmem, inode):
        return VmFault.SIGBUS
    pfn = inode.pages.get(index)
    if pfn is not None:
        retry = not inode.shmem and do_async_mmap_readahead(kmem, vma, index, pfn)
        if not kmem.mem_map.flags_mv[pfn] & PG.uptodate:
            filemap.filemap_read_folio(kmem, inode, index, pfn)  # page_not_uptodate:
            retry = True  # read with the lock dropped, then retried; still a minor fault
        return pfn, VmFault.HANDLED, retry
    if not inode.shmem:
        do_sync_mmap_readahead(kmem, vma, index)
    got = filemap.filemap_get_page(kmem, inode, index)
    if got is None:
        return VmFault.OOM
    return got[0], (VmFault.HANDLED if inode.shmem else VmFault.MAJOR), False


def _map_file_page(mm: MmStruct, pte_addr: int, pfn: int, prot: int) -> None:
    kmem = mm.kmem
    kmem.get_page(pfn)
    page_add_rmap(kmem, pfn)
    mm.add_mm_counter(mm_counter(kmem, pfn), 1)
    _set_pte(kmem, pte_addr, pfn, prot)


def do_fault_around(mm: MmStruct, vma: Vma, address: int, pte_addr: int,
                    pmd_none: bool = False) -> bool:
    """do_fault_around() + filemap_map_pages(): map already-cached pages near the fault.

    The window is fault_around_bytes, aligned, clipped to the VMA, the page
    table and EOF; only empty entries are filled, and pages marked
    PG_readahead are left for a fault to find (next_uptodate_folio()). Each
    cached page it looks at counts as a hit against the file's mmap_miss.
    Returns True if the faulting address itself got mapped.

    With no page table yet (`pmd_none`), Linux 6.18 installs one only when
    the first cached page it finds may be mapped large, which the page
    holding EOF may not (filemap_map_pages()'s i_size check gates
    filemap_map_pmd(), which is what installs the table): then nothing is
    mapped, and a fault beyond EOF leaves that page unmapped.
    """
    kmem = mm.kmem
    mode = kmem.mode
    nr = kmem.sysctl.fault_around_bytes >> kmem.page_shift
    if nr <= 1 or vma.vm_file is None:
        return False
    inode = vma.vm_file.inode
    ptrs = mode.ptrs_per[-1]
    pte_off = (address >> kmem.page_shift) & (ptrs - 1)
    vma_off = (address - vma.vm_start) >> kmem.page_shift
    from_pte = max(pte_off - pte_off % nr, pte_off - min(pte_off, vma_off))
    to_pte = min(from_pte + nr, ptrs, pte_off + (vma.size >> kmem.page_shift) - vma_off)
    file_pages = filemap.last_index(kmem, inode)
    table = pte_addr - pte_off * mode.entry_size
    base_index = vma.linear_page_index(address, kmem.page_shift) - pte_off
    mapped_target = False
    flags = kmem.mem_map.flags_mv
    looked = 0
    for i in range(from_pte, to_pte):
        index = base_index + i
        if index >= file_pages:
            break
        pfn = inode.pages.get(index)
        if pfn is None or flags[pfn] & (PG.uptodate | PG.readahead) != PG.uptodate:
            continue
        if pmd_none:
            if index == file_pages - 1 and not inode.shmem:
                return False
            pmd_none = False
        looked += 1
        slot = table + i * mode.entry_size
        if kmem.pt.read_entry(slot, mode.entry_size):
            continue
        _map_file_page(mm, slot, pfn, vma.vm_page_prot)
        mapped_target = mapped_target or i == pte_off
    ra = vma.vm_file.f_ra
    ra.mmap_miss = max(ra.mmap_miss - looked, 0)
    return mapped_target


def do_read_fault(mm: MmStruct, vma: Vma, address: int, pte_addr: int,
                  pmd_none: bool = False) -> tuple[VmFault, str]:
    """do_read_fault(): fault-around first, then read the page and map it read-only."""
    if do_fault_around(mm, vma, address, pte_addr, pmd_none):
        return VmFault.NOPAGE, "file"
    got = _file_page(mm, vma, address)
    if isinstance(got, VmFault):
        return got, "sigbus" if got & VmFault.SIGBUS else "oom"
    pfn, result, retry = got
    # A cache miss (or read-ahead started by a hit) makes filemap_fault() drop
    # the lock for the I/O and return VM_FAULT_RETRY; the retried fault finds
    # the pages cached (and unmarked) and maps the whole fault-around window,
    # the faulting page included.
    if pmd_none:  # a table is installed once fault-around has mapped something
        kmem = mm.kmem
        pte_off = (address >> kmem.page_shift) & (kmem.mode.ptrs_per[-1] - 1)
        pmd_none = not pte_view(kmem, pte_addr - pte_off * kmem.mode.entry_size).any()
    if (result or retry) and do_fault_around(mm, vma, address, pte_addr, pmd_none):
        return result | VmFault.NOPAGE, "file"
    _map_file_page(mm, pte_addr, pfn, vma.vm_page_prot)
    return result, "file"


def do_cow_fault(mm: MmStruct, vma: Vma, address: int, pte_addr: int) -> tuple[VmFault, str]:
    """do_cow_fault(): a write to a private file page: copy it into a new anonymous page."""
    kmem = mm.kmem
    anon_vma_prepare(mm, vma)
    new = kmem.alloc_page(zero=False)
    if new is None:
        return VmFault.OOM, "oom"
    got = _file_page(mm, vma, address)
    if isinstance(got, VmFault):
        kmem.put_page(new)
        return got, "sigbus" if got & VmFault.SIGBUS else "oom"
    pfn, result, _ = got
    kmem.phys.copy_frame(new, pfn)
    page_add_new_anon_rmap(kmem, new, vma, address)
    mm.add_mm_counter(MM_ANONPAGES, 1)
    _set_pte(kmem, pte_addr, new, _writable_prot(kmem, vma))
    kmem.vm_event["cow_fault"] += 1
    return result, "cow"


def do_shared_fault(mm: MmStruct, vma: Vma, address: int, pte_addr: int) -> tuple[VmFault, str]:
    """do_shared_fault(): a write to a shared file page: map the cache page writable, dirty it."""
    kmem = mm.kmem
    got = _file_page(mm, vma, address)
    if isinstance(got, VmFault):
        return got, "sigbus" if got & VmFault.SIGBUS else "oom"
    pfn, result, _ = got
    filemap.set_page_dirty(kmem, pfn)
    _map_file_page(mm, pte_addr, pfn, _writable_prot(kmem, vma))
    return result, "shared"


def do_wp_page(mm: MmStruct, vma: Vma, address: int, pte_addr: int,
               entry: int) -> tuple[VmFault, str]:
    """do_wp_page(): a write to a present read-only entry in a writable VMA.

    Shared mapping: the page just becomes writable and dirty (write-notify).
    Private: an anonymous page nobody else holds is reused in place;
    anything else (the zero page, a page-cache page, a page shared after
    fork) is copied into a new anonymous page: the copy in copy-on-write.
    """
    kmem = mm.kmem
    mode = kmem.mode
    b = mode.bits
    pfn = mode.entry_pfn(entry)
    if vma.vm_flags & VM_SHARED:
        filemap.set_page_dirty(kmem, pfn)
        kmem.pt.write_entry(pte_addr, mode.entry_size,
                            (entry | b.write | b.dirty | b.accessed) & ~kmem.wr_clear)
        return VmFault.HANDLED, "wp-shared"
    mem_map = kmem.mem_map
    if not entry & b.special and mem_map.flags_mv[pfn] & PG.anon and (
            mem_map.flags_mv[pfn] & PG.anon_exclusive or mem_map.refcount_mv[pfn] == 1):
        mem_map.flags_mv[pfn] |= PG.anon_exclusive
        kmem.pt.write_entry(pte_addr, mode.entry_size,
                            (entry | b.write | b.dirty | b.accessed) & ~kmem.wr_clear)
        kmem.vm_event["cow_reuse"] += 1
        return VmFault.HANDLED, "wp-reuse"
    return wp_page_copy(mm, vma, address, pte_addr, entry)


def wp_page_copy(mm: MmStruct, vma: Vma, address: int, pte_addr: int,
                 entry: int) -> tuple[VmFault, str]:
    """wp_page_copy(): break COW: new page (zeroed if the old one was the zero page)."""
    kmem = mm.kmem
    mode = kmem.mode
    old = mode.entry_pfn(entry)
    from_zero = bool(entry & mode.bits.special)
    anon_vma_prepare(mm, vma)
    new = kmem.alloc_page(zero=from_zero)
    if new is None:
        return VmFault.OOM, "oom"
    if not from_zero:
        kmem.phys.copy_frame(new, old)
        mm.add_mm_counter(mm_counter(kmem, old), -1)
        page_remove_rmap(kmem, old)
        kmem.put_page(old)
    page_add_new_anon_rmap(kmem, new, vma, address)
    mm.add_mm_counter(MM_ANONPAGES, 1)
    _set_pte(kmem, pte_addr, new, _writable_prot(kmem, vma))
    kmem.vm_event["cow_copy"] += 1
    if kmem.events.active:
        kmem.events.emit("cow", mm=mm.owner_pid, addr=address, old_pfn=old, new_pfn=new,
                         from_zero=from_zero)
    flush_tlb_range(mm, address, address + kmem.page_size)  # ptep_clear_flush()
    return VmFault.HANDLED, "wp-copy"

