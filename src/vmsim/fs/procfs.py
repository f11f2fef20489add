"""/proc text in Linux's exact formats (fs/proc/task_mmu.c, task_mmu's task_mem, meminfo.c).

Everything here is computed from the live structures: VMAs, the page-table
bytes in RAM, and struct page counters. Nothing is cached.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmsim.mm.hugetlb import default_hstate, hstate_vma, huge_leaves, huge_pfn
from vmsim.mm.memory import present_pages
from vmsim.mm.mm_struct import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS
from vmsim.mm.page import PG
from vmsim.mm.swapops import MAX_SWAPFILES_SHIFT, is_guard_pte_marker
from vmsim.mm.vma import (
    VM_ACCOUNT,
    VM_ARCH_1,
    VM_DONTCOPY,
    VM_DONTDUMP,
    VM_DONTEXPAND,
    VM_DROPPABLE,
    VM_EXEC,
    VM_GROWSDOWN,
    VM_HUGEPAGE,
    VM_HUGETLB,
    VM_IO,
    VM_LOCKED,
    VM_LOCKONFAULT,
    VM_MAYBE_GUARD,
    VM_MAYEXEC,
    VM_MAYREAD,
    VM_MAYSHARE,
    VM_MAYWRITE,
    VM_MERGEABLE,
    VM_MIXEDMAP,
    VM_NOHUGEPAGE,
    VM_NORESERVE,
    VM_PFNMAP,
    VM_RAND_READ,
    VM_READ,
    VM_SEQ_READ,
    VM_SHARED,
    VM_SOFTDIRTY,
    VM_SYNC,
    VM_UFFD_MISSING,
    VM_UFFD_WP,
    VM_WIPEONFORK,
    VM_WRITE,
    Vma,
)

if TYPE_CHECKING:
    from vmsim.kernel.task import Process
    from vmsim.machine import Machine
    from vmsim.mm.kmem import Kmem
    from vmsim.mm.mm_struct import MmStruct

# show_smap_vma_flags(): mnemonics in bit order
VM_FLAG_MNEMONICS: tuple[tuple[int, str], ...] = tuple(sorted([
    (VM_READ, "rd"), (VM_WRITE, "wr"), (VM_EXEC, "ex"), (VM_SHARED, "sh"), (VM_MAYREAD, "mr"),
    (VM_MAYWRITE, "mw"), (VM_MAYEXEC, "me"), (VM_MAYSHARE, "ms"), (VM_GROWSDOWN, "gd"),
    (VM_MAYBE_GUARD, "gu"),
    (VM_PFNMAP, "pf"), (VM_LOCKED, "lo"), (VM_IO, "io"), (VM_SEQ_READ, "sr"),
    (VM_RAND_READ, "rr"), (VM_DONTCOPY, "dc"), (VM_DONTEXPAND, "de"), (VM_LOCKONFAULT, "lf"),
    (VM_ACCOUNT, "ac"), (VM_NORESERVE, "nr"), (VM_HUGETLB, "ht"), (VM_SYNC, "sf"),
    (VM_ARCH_1, "ar"), (VM_WIPEONFORK, "wf"), (VM_DONTDUMP, "dd"), (VM_SOFTDIRTY, "sd"),
    (VM_MIXEDMAP, "mm"), (VM_HUGEPAGE, "hg"), (VM_NOHUGEPAGE, "nh"), (VM_MERGEABLE, "mg"),
    (VM_UFFD_MISSING, "um"), (VM_UFFD_WP, "uw"), (VM_DROPPABLE, "dp"),
]))

PM_PFRAME_MASK = (1 << 55) - 1
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63


def vma_name(mm: MmStruct, vma: Vma) -> str:
    """The name column of /proc/PID/maps (get_vma_name())."""
    if vma.vm_file is not None:
        return vma.vm_file.path + (" (deleted)" if vma.vm_file.deleted else "")
    if vma.vm_flags & VM_HUGETLB:  # the unlinked hugetlbfs file behind an anonymous MAP_HUGETLB
        return "/anon_hugepage (deleted)"
    if vma.vm_start <= mm.brk and vma.vm_end >= mm.start_brk and mm.start_brk:
        return "[heap]"
    if vma.vm_start <= mm.start_stack <= vma.vm_end and mm.start_stack:
        return "[stack]"
    if vma.anon_name is not None:
        return f"[anon:{vma.anon_name}]"
    return ""


def show_map_vma(mm: MmStruct, vma: Vma, addr_width: int = 8) -> str:
    """One /proc/PID/maps line (show_vma_header_prefix(), fs/proc/task_mmu.c): addresses and
    offset in at least 8 hex digits, the name padded to 25 + sizeof(void *) * 6 - 1 columns
    (72 on a 64-bit kernel, 48 on a 32-bit one: i386, i386-pae, ppc32), then a space."""
    flags = vma.vm_flags
    dev_major = dev_minor = ino = 0
    pgoff = 0
    if vma.vm_file is not None:
        dev_major, dev_minor = vma.vm_file.inode.dev
        ino = vma.vm_file.inode.ino
        pgoff = vma.vm_pgoff << mm.kmem.page_shift
    perms = ("r" if flags & VM_READ else "-") + ("w" if flags & VM_WRITE else "-") + (
        "x" if flags & VM_EXEC else "-") + ("s" if flags & VM_MAYSHARE else "p")
    line = (f"{vma.vm_start:0{addr_width}x}-{vma.vm_end:0{addr_width}x} {perms} {pgoff:08x} "
            f"{dev_major:02x}:{dev_minor:02x} {ino} ")
    name = vma_name(mm, vma)
    if name:
        ptr = 4 if mm.kmem.mode.va_bits <= 32 else 8  # sizeof(void *) of the kernel
        width = 25 + ptr * 6 - 1  # seq_setwidth(m, 25 + sizeof(void *) * 6 - 1)
        line = line.ljust(width) + " " + name if len(line) < width else line + name
    return line + "\n"


@dataclass
class MemSizeStats:
    """struct mem_size_stats: byte counts, pss in fixed point (PSS_SHIFT = 12)."""

    resident: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    referenced: int = 0
    anonymous: int = 0
    lazyfree: int = 0
    swap: int = 0
    pss: int = 0
    pss_dirty: int = 0
    pss_locked: int = 0


def smaps_account(mm: MmStruct, vma: Vma) -> MemSizeStats:
    """smaps_pte_range() over one VMA: every mapped page's contribution."""
    kmem = mm.kmem
    mode = kmem.mode
    b = mode.bits
    mem_map = kmem.mem_map
    size = kmem.page_size
    mss = MemSizeStats()
    locked = bool(vma.vm_flags & VM_LOCKED)
    for _addr, entry in present_pages(kmem, mm, vma.vm_start, vma.vm_end):
        if not entry & (b.present | b.protnone) or entry & b.special:
            continue
        pfn = mode.entry_pfn(entry)
        flags = int(mem_map.flags_mv[pfn])
        dirty = kmem.pte_dirty(entry) or bool(flags & PG.dirty)
        if flags & PG.anon:
            mss.anonymous += size
            if not flags & PG.swapbacked and not dirty:
                mss.lazyfree += size
        mss.resident += size
        if entry & b.accessed or flags & PG.referenced:
            mss.referenced += size
        mapcount = max(int(mem_map.mapcount_mv[pfn]), 1)
        if int(mem_map.refcount_mv[pfn]) == 1:
            mapcount = 1
        pss = (size << 12) // mapcount
        private = mapcount < 2
        mss.pss += pss
        if locked:
            mss.pss_locked += pss
        if dirty:
            mss.pss_dirty += pss
            if private:
                mss.private_dirty += size
            else:
                mss.shared_dirty += size
        elif private:
            mss.private_clean += size
        else:
            mss.shared_clean += size
    return mss


def _kb_line(label: str, nbytes: int) -> str:
    return f"{label:<16}{nbytes >> 10:>8} kB\n"


def show_smap(mm: MmStruct, vma: Vma) -> str:
    """One VMA's /proc/PID/smaps block."""
    mss = smaps_account(mm, vma)
    ps = mm.kmem.page_size
    hugetlb = {"Shared_Hugetlb:": 0, "Private_Hugetlb:": 0}
    if vma.vm_flags & VM_HUGETLB:  # smaps_hugetlb_range(); vma_kernel_pagesize()
        hs = hstate_vma(vma)
        ps = hs.size
        for _a, _slot, entry in huge_leaves(mm, vma):
            pfn = huge_pfn(mm.kmem, hs, entry)
            shared = mm.kmem.mem_map.mapcount_mv[pfn] >= 2
            hugetlb["Shared_Hugetlb:" if shared else "Private_Hugetlb:"] += hs.size
    out = [show_map_vma(mm, vma)]
    out.append(_kb_line("Size:", vma.size))
    out.append(_kb_line("KernelPageSize:", ps))
    out.append(_kb_line("MMUPageSize:", ps))
    out.append(_kb_line("Rss:", mss.resident))
    out.append(_kb_line("Pss:", mss.pss >> 12))
    out.append(_kb_line("Pss_Dirty:", mss.pss_dirty >> 12))
    out.append(_kb_line("Shared_Clean:", mss.shared_clean))
    out.append(_kb_line("Shared_Dirty:", mss.shared_dirty))
    out.append(_kb_line("Private_Clean:", mss.private_clean))
    out.append(_kb_line("Private_Dirty:", mss.private_dirty))
    out.append(_kb_line("Referenced:", mss.referenced))
    out.append(_kb_line("Anonymous:", mss.anonymous))
    out.append(_kb_line("KSM:", 0))
    out.append(_kb_line("LazyFree:", mss.lazyfree))
    for label in ("AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:", "Shared_Hugetlb:",
                  "Private_Hugetlb:"):
        out.append(_kb_line(label, hugetlb.get(label, 0)))
    out.append(_kb_line("Swap:", mss.swap))
    out.append(_kb_line("SwapPss:", 0))
    out.append(_kb_line("Locked:", mss.pss_locked >> 12))
    out.append(f"{'THPeligible:':<16}{0:>8}\n")
    flags = "".join(f"{name} " for bit, name in VM_FLAG_MNEMONICS if vma.vm_flags & bit)
    out.append(f"VmFlags: {flags}\n")
    return "".join(out)


def task_mem(mm: MmStruct) -> str:
    """task_mem(): the Vm*/Rss* lines of /proc/PID/status."""
    shift = mm.kmem.page_shift
    ps = mm.kmem.page_size
    anon = mm.get_mm_counter(MM_ANONPAGES)
    file = mm.get_mm_counter(MM_FILEPAGES)
    shmem = mm.get_mm_counter(MM_SHMEMPAGES)
    total_vm = mm.total_vm
    hiwater_vm = max(total_vm, mm.hiwater_vm)
    total_rss = anon + file + shmem
    hiwater_rss = max(total_rss, mm.hiwater_rss)
    text = ((mm.end_code + ps - 1) & ~(ps - 1)) - (mm.start_code & ~(ps - 1))
    text = min(text, mm.exec_vm << shift)
    lib = (mm.exec_vm << shift) - text

    def line(label: str, kb: int) -> str:
        return f"{label}:\t{kb:>8} kB\n"

    kb = shift - 10
    return "".join([
        line("VmPeak", hiwater_vm << kb), line("VmSize", total_vm << kb),
        line("VmLck", mm.locked_vm << kb), line("VmPin", mm.pinned_vm << kb),
        line("VmHWM", hiwater_rss << kb), line("VmRSS", total_rss << kb),
        line("RssAnon", anon << kb), line("RssFile", file << kb), line("RssShmem", shmem << kb),
        line("VmData", mm.data_vm << kb), line("VmStk", mm.stack_vm << kb),
        line("VmExe", text >> 10), line("VmLib", lib >> 10),
        line("VmPTE", mm.pgtables_bytes >> 10), line("VmSwap", mm.get_mm_counter(MM_SWAPENTS) << kb),
        line("HugetlbPages", mm.hugetlb_usage >> 10),
    ])


def pagemap_entries(mm: MmStruct, start: int, npages: int) -> list[int]:
    """/proc/PID/pagemap entries for npages pages from start (pte_to_pagemap_entry())."""
    kmem = mm.kmem
    mode = kmem.mode
    b = mode.bits
    ps = kmem.page_size
    end = start + npages * ps
    out = [0] * npages
    for vma in mm.mm_rb.range(start, end):
        if vma.vm_flags & VM_SOFTDIRTY:
            lo = max(start, vma.vm_start)
            hi = min(end, vma.vm_end)
            for a in range(lo, hi, ps):
                out[(a - start) // ps] = PM_SOFT_DIRTY
    for vma in mm.mm_rb.range(start, end):  # pagemap_hugetlb_range(): one entry per base page
        if not vma.vm_flags & VM_HUGETLB:
            continue
        hs = hstate_vma(vma)
        for haddr, _slot, entry in huge_leaves(mm, vma, start, end):
            pfn = huge_pfn(kmem, hs, entry)
            flags = PM_PRESENT | (PM_FILE if vma.vm_flags & VM_SHARED else 0)
            if kmem.mem_map.mapcount_mv[pfn] == 1:
                flags |= PM_MMAP_EXCLUSIVE
            for a in range(max(haddr, start), min(haddr + hs.size, end), ps):
                out[(a - start) // ps] = flags | ((pfn + ((a - haddr) >> kmem.page_shift))
                                                  & PM_PFRAME_MASK)
    for addr, entry in present_pages(kmem, mm, start, end, include_markers=True):
        i = (addr - start) // ps
        flags = out[i]
        if is_guard_pte_marker(mode, entry):
            frame = mode.pte_swp_type(entry) | (mode.pte_swp_offset(entry) << MAX_SWAPFILES_SHIFT)
            flags |= PM_SWAP | PM_GUARD_REGION | (frame & PM_PFRAME_MASK)
        elif entry & (b.present | b.protnone):
            pfn = mode.entry_pfn(entry)
            flags |= PM_PRESENT | (pfn & PM_PFRAME_MASK)
            if b.soft_dirty and entry & b.soft_dirty:
                flags |= PM_SOFT_DIRTY
            if not entry & b.special:
                pflags = int(kmem.mem_map.flags_mv[pfn])
                if not pflags & PG.anon:
                    flags |= PM_FILE
                if kmem.mem_map.mapcount_mv[pfn] == 1:
                    flags |= PM_MMAP_EXCLUSIVE
        out[i] = flags
    return out


def hugetlb_report_meminfo(kmem: Kmem) -> str:
    """hugetlb_report_meminfo(): the default size's pool counts, and all pools' size."""
    hs = default_hstate(kmem)
    if hs is None:
        return ""
    total = sum(h.nr_pages * h.size for h in kmem.hstates.values())
    return (f"HugePages_Total:   {hs.nr_pages:>5}\nHugePages_Free:    {hs.free_count:>5}\n"
            f"HugePages_Rsvd:    {hs.resv:>5}\nHugePages_Surp:    {0:>5}\n"
            f"Hugepagesize:   {hs.size >> 10:>8} kB\nHugetlb:        {total >> 10:>8} kB\n")


class ProcFs:
    """The /proc files of a machine, by pid and name."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    def _proc(self, pid: int) -> Process:
        proc = self.machine.processes.get(pid)
        if proc is None:
            raise FileNotFoundError(f"/proc/{pid}: no such process")
        return proc

    def read(self, pid: int, name: str) -> str:
        """The text of /proc/PID/NAME (maps, smaps, status)."""
        proc = self._proc(pid)
        mm = proc.mm
        if name == "maps":
            return "".join(show_map_vma(mm, v) for v in mm)
        if name == "smaps":
            return "".join(show_smap(mm, v) for v in mm)
        if name == "status":
            head = (f"Name:\t{proc.comm[:15]}\nState:\tR (running)\nTgid:\t{pid}\nPid:\t{pid}\n"
                    f"PPid:\t{proc.ppid}\n")
            return head + task_mem(mm) + "Threads:\t1\n"
        raise FileNotFoundError(f"/proc/{pid}/{name}: not provided by vmsim")

    def pagemap(self, pid: int, start: int, npages: int) -> bytes:
        """The bytes a read of /proc/PID/pagemap at start's offset would return."""
        entries = pagemap_entries(self._proc(pid).mm, start, npages)
        return struct.pack(f"<{len(entries)}Q", *entries)

    def meminfo(self) -> str:
        kmem = self.machine.kmem
        kb = kmem.page_shift - 10
        vs = kmem.vm_stat

        def line(label: str, pages: int) -> str:
            return f"{label + ':':<16}{pages << kb:>8} kB\n"

        free = kmem.buddy.nr_free
        cached = vs["nr_file_pages"]
        return "".join([
            line("MemTotal", kmem.buddy.managed_pages), line("MemFree", free),
            line("MemAvailable", free + cached - vs["nr_shmem"]), line("Buffers", 0),
            line("Cached", cached), line("SwapCached", 0), line("SwapTotal", 0),
            line("SwapFree", 0), line("Dirty", vs["nr_dirty"]),
            line("AnonPages", vs["nr_anon_pages"]), line("Mapped", vs["nr_mapped"]),
            line("Shmem", vs["nr_shmem"]), line("PageTables", vs["nr_page_table_pages"]),
            hugetlb_report_meminfo(kmem),
        ])

    def vmstat(self) -> str:
        kmem = self.machine.kmem
        vs, ev = kmem.vm_stat, kmem.vm_event
        rows = [
            ("nr_free_pages", kmem.buddy.nr_free), ("nr_anon_pages", vs["nr_anon_pages"]),
            ("nr_mapped", vs["nr_mapped"]), ("nr_file_pages", vs["nr_file_pages"]),
            ("nr_dirty", vs["nr_dirty"]), ("nr_shmem", vs["nr_shmem"]),
            ("nr_page_table_pages", vs["nr_page_table_pages"]),
            ("pgalloc_normal", ev["pgalloc"]), ("pgfree", ev["pgfree"]),
            ("pgfault", ev["pgfault"]), ("pgmajfault", ev["pgmajfault"]),
        ]
        return "".join(f"{k} {v}\n" for k, v in rows)



