"""fork's memory half (kernel/fork.c): dup_mm and dup_mmap."""

from __future__ import annotations

from vmsim.mm.memory import copy_page_range
from vmsim.mm.mm_struct import MmStruct
from vmsim.mm.mmap import exit_mmap, vm_stat_account, vma_link
from vmsim.mm.pgtable import pgd_alloc
from vmsim.mm.vma import (
    VM_DONTCOPY,
    VM_LOCKED_MASK,
    VM_NOHUGEPAGE,
    VM_WIPEONFORK,
    AnonVma,
    Vma,
    VmaTree,
)


def mm_alloc_like(old: MmStruct) -> MmStruct | None:
    """The memcpy + mm_init() of dup_mm(): same layout fields, fresh counters and PGD."""
    kmem = old.kmem
    mm = MmStruct(kmem=kmem, mm_rb=VmaTree(kmem.sysctl.stack_guard_gap, seed=old.owner_pid + 7))
    for name in ("total_vm", "data_vm", "exec_vm", "stack_vm", "start_code", "end_code",
                 "start_data", "end_data", "start_brk", "brk", "start_stack", "arg_start",
                 "arg_end", "env_start", "env_end", "mmap_base", "mmap_legacy_base",
                 "task_size", "mmap_window", "mmap_topdown"):
        setattr(mm, name, getattr(old, name))
    mm.rlimits = type(old.rlimits)(**vars(old.rlimits))
    mm.def_flags = old.def_flags & VM_NOHUGEPAGE  # VM_INIT_DEF_MASK: mlockall(MCL_FUTURE) is not inherited
    pgd = pgd_alloc(kmem, mm)
    if pgd is None:
        return None
    mm.pgd = pgd
    return mm


def anon_vma_fork(child: Vma, parent: Vma) -> None:
    """anon_vma_fork(): the child's VMA links to the parent's anon_vmas plus a new one of its own."""
    if parent.anon_vma is None:
        return
    own = AnonVma(parent.anon_vma)
    child.anon_vma_chain = [*parent.anon_vma_chain, own]
    for anon in child.anon_vma_chain:
        anon.refcount += 1
    child.anon_vma = own


def dup_mmap(mm: MmStruct, oldmm: MmStruct) -> bool:
    """dup_mmap(): copy each VMA (honouring VM_DONTCOPY / VM_WIPEONFORK) and its entries."""
    shift = mm.kmem.page_shift
    for vma in oldmm:
        if vma.vm_flags & VM_DONTCOPY:
            vm_stat_account(mm, vma.vm_flags, -(vma.size >> shift))
            continue
        tmp = Vma(vma.vm_start, vma.vm_end, vma.vm_flags & ~VM_LOCKED_MASK, vma.vm_page_prot,
                  vma.vm_pgoff, vma.vm_file, None, [], vma.anon_name)
        if not vma.vm_flags & VM_WIPEONFORK:
            anon_vma_fork(tmp, vma)
        vma_link(mm, tmp)
        if not vma.vm_flags & VM_WIPEONFORK and not copy_page_range(mm, oldmm, tmp, vma):
            return False
    mm.hiwater_rss = mm.get_mm_rss()
    mm.hiwater_vm = mm.total_vm
    return True


def dup_mm(oldmm: MmStruct) -> MmStruct | None:
    """dup_mm(): a copy-on-write duplicate of an address space, or None when out of memory."""
    mm = mm_alloc_like(oldmm)
    if mm is None:
        return None
    if not dup_mmap(mm, oldmm):
        exit_mmap(mm)
        return None
    return mm
