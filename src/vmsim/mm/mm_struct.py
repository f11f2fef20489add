"""mm_struct: one address space (include/linux/mm_types.h)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmsim.mm.vma import VmaTree

if TYPE_CHECKING:
    from vmsim.mm.kmem import Kmem
    from vmsim.mm.vma import Vma

# rss_stat indices (include/linux/mm_types_task.h)
MM_FILEPAGES = 0
MM_ANONPAGES = 1
MM_SWAPENTS = 2
MM_SHMEMPAGES = 3

RLIM_INFINITY = (1 << 64) - 1


@dataclass
class Rlimits:
    """The resource limits mm code consults (RLIMIT_AS, RLIMIT_DATA, RLIMIT_MEMLOCK, RLIMIT_STACK),
    and the two capabilities that override mm limits."""

    as_: int = RLIM_INFINITY
    data: int = RLIM_INFINITY
    memlock: int = 8 << 20  # Linux's default MLOCK_LIMIT (8 MiB since 5.16)
    stack: int = 8 << 20
    cap_ipc_lock: bool = False  # CAP_IPC_LOCK lifts RLIMIT_MEMLOCK
    cap_sys_rawio: bool = False  # CAP_SYS_RAWIO allows mappings below mmap_min_addr


@dataclass(eq=False)
class MmStruct:
    """An address space: VMAs, the page-table root and the kernel's counters.

    Page counts (`total_vm`, `locked_vm`, ...) are in pages, as in the kernel.
    """

    kmem: Kmem
    mm_rb: VmaTree
    pgd: int = 0
    map_count: int = 0
    mm_users: int = 1
    mm_count: int = 1
    total_vm: int = 0
    locked_vm: int = 0
    pinned_vm: int = 0
    data_vm: int = 0
    exec_vm: int = 0
    stack_vm: int = 0
    def_flags: int = 0
    start_code: int = 0
    end_code: int = 0
    start_data: int = 0
    end_data: int = 0
    start_brk: int = 0
    brk: int = 0
    start_stack: int = 0
    arg_start: int = 0
    arg_end: int = 0
    env_start: int = 0
    env_end: int = 0
    rss_stat: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    hiwater_rss: int = 0
    hiwater_vm: int = 0
    pgtables_bytes: int = 0
    mmap_base: int = 0
    mmap_legacy_base: int = 0
    task_size: int = 0
    # Where mmap searches without a hint above it (DEFAULT_MAP_WINDOW; 0: task_size), and
    # whether it searches top-down (arch_pick_mmap_layout(); False: the legacy bottom-up).
    mmap_window: int = 0
    mmap_topdown: bool = True
    hugetlb_usage: int = 0  # bytes of huge pages mapped (HugetlbPages in /proc/PID/status)
    rlimits: Rlimits = field(default_factory=Rlimits)
    fault_kinds: Counter[str] = field(default_factory=Counter)
    vmacache: list[Vma | None] = field(default_factory=lambda: [None] * 4)
    owner_pid: int = 0
    tlb_flush_hooks: list[Callable[[int, int], None]] = field(default_factory=list)

    # ---- counters --------------------------------------------------------
    def get_mm_counter(self, member: int) -> int:
        return self.rss_stat[member]

    def add_mm_counter(self, member: int, value: int) -> None:
        """add_mm_counter(); the RSS high-water mark is caught up lazily (update_hiwater_rss)."""
        self.rss_stat[member] += value

    def update_hiwater_rss(self) -> None:
        """update_hiwater_rss(): called before RSS can drop (unmap, zap, exit)."""
        rss = self.get_mm_rss()
        if rss > self.hiwater_rss:
            self.hiwater_rss = rss

    def get_mm_rss(self) -> int:
        """get_mm_rss(): file + anon + shmem pages mapped (not swap)."""
        s = self.rss_stat
        return s[MM_FILEPAGES] + s[MM_ANONPAGES] + s[MM_SHMEMPAGES]

    def update_hiwater_vm(self) -> None:
        if self.total_vm > self.hiwater_vm:
            self.hiwater_vm = self.total_vm

    # ---- VMA lookup with the per-mm cache ------------------------------------
    def find_vma(self, addr: int) -> Vma | None:
        """find_vma() through a 4-entry vmacache keyed by page (the pre-6.1 VMACACHE)."""
        slot = (addr >> 12) & 3
        vma = self.vmacache[slot]
        if vma is not None and vma.vm_start <= addr < vma.vm_end:
            return vma
        vma = self.mm_rb.find_vma(addr)
        if vma is not None and vma.vm_start <= addr:
            self.vmacache[slot] = vma
        return vma

    def vmacache_invalidate(self) -> None:
        """Drop cached VMAs; called whenever a VMA is added, removed or resized."""
        self.vmacache = [None] * 4

    def __iter__(self) -> Iterator[Vma]:
        return iter(self.mm_rb)
