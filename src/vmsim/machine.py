"""The machine: RAM, the memory system, the VFS, procfs and the processes.

`Machine` is the Python entry point (see ARCHITECTURE.md, "Interfaces").
It also owns `check()`, which verifies the invariants that tie the
kernel's bookkeeping to the bytes of the page tables.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vmsim.arch import get_mode
from vmsim.arch.tlb import Tlb
from vmsim.events import EventBus
from vmsim.fs.procfs import ProcFs
from vmsim.fs.vfs import Vfs
from vmsim.kernel.exec import do_execve
from vmsim.kernel.files import Console
from vmsim.kernel.ptrace import CpuEngine
from vmsim.kernel.sched import BudgetExceeded, Scheduler
from vmsim.kernel.task import Process
from vmsim.mm.hugetlb import hstate_vma, huge_leaves, huge_pfn
from vmsim.mm.kmem import Kmem
from vmsim.mm.layout import mm_layout
from vmsim.mm.mm_struct import MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MmStruct
from vmsim.mm.page import PG
from vmsim.mm.pgtable import pgd_alloc, pte_tables, pte_view
from vmsim.mm.physmem import parse_size
from vmsim.mm.swapops import is_guard_pte_marker
from vmsim.mm.vma import VM_HUGETLB, VmaTree

#: The virtual clock's CLOCK_REALTIME at boot: 2026-01-01T00:00:00Z (runs are deterministic).
BOOT_EPOCH_NS = 1_767_225_600 * 10**9
DEFAULT_ENV = ["PATH=/bin:/usr/bin:/sbin:/usr/sbin", "HOME=/", "TERM=dumb", "LANG=C"]


def samples_dir() -> Path:
    """The directory of the bundled sample programs (static x86-64 binaries)."""
    return Path(__file__).parent / "samples"


@dataclass
class RunResult:
    """The outcome of `Machine.run`: exit code as a shell reports it (128 + signal when
    killed), console output, the first process's pid and the kernel log."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    pid: int
    kernel_log: list[str] = field(default_factory=list)
    timed_out: bool = False
    signal: int = 0
    errno: int = 0




class Machine:
    """A simulated computer running vmsim's Linux memory system.

    `memory` is RAM size ("256M"); `seed` drives address-space
    randomisation (`aslr=False` turns it off); `root` is the host directory
    that guests see as "/" (nothing outside it is reachable); `prefault`
    backs all of RAM with host memory at once (for benchmarks); `engine` is
    the CPU that runs real programs: "unicorn" (Unicorn's MMU walks vmsim's
    tables) or "soft" (vmsim's walker fills Unicorn's TLB); `hugepages` gives
    the hugetlb pools reserved at boot ({"2M": 16, "1G": 1}: sizes the mode's
    large leaves allow); `read_only`
    mounts the root read-only (every change is -EROFS).
    """

    def __init__(self, arch: str = "x86_64", memory: int | str = "256M", seed: int = 1,
                 root: str | os.PathLike[str] | None = None, aslr: bool = True,
                 prefault: bool = False, engine: str = "unicorn",
                 read_only: bool = False, hugepages: dict[str, int] | None = None) -> None:
        self.mode = get_mode(arch)
        self.layout = mm_layout(self.mode)
        self.events = EventBus()
        self.kmem = Kmem(self.mode, parse_size(memory), self.events, prefault, hugepages)
        self.vfs = Vfs(self.kmem, root, read_only=read_only)
        self.console = {name: Console(name) for name in ("stdin", "stdout", "stderr")}
        self.procfs = ProcFs(self)
        self.seed = seed
        self.aslr = aslr
        self.rng = random.Random(seed)
        self.processes: dict[int, Process] = {}
        self.zombies: dict[int, Process] = {}
        self.kernel_log: list[str] = []
        self._next_pid = 1
        # ---- running real programs (kernel/sched.py, cpu/) ----
        self.engine = engine
        self.cpu: CpuEngine | None = None
        self.sched = Scheduler(self)
        self.current: Process | None = None
        self.unimplemented: Counter[str] = Counter()
        self.strace: Callable[[Process, str, list[int], int | None, str], None] | None = None
        self.clock_ns = 0  # the virtual monotonic clock (kernel/sys_time.py)
        # Instructions: counted only when asked (a native hook per instruction, cpu/insn_counter)
        self.count_instructions = False
        self.max_instructions = 0  # the sandbox's instruction budget (0: none)
        self.insns = 0
        self.boot_epoch_ns = BOOT_EPOCH_NS
        self.hostname = "vmsim"
        self._next_ino = 0x1000
        self._exit_seq = 0
        self._private_root: Path | None = None
        self.history: list[Process] = []  # every process the machine has had, for statistics

    # ---- processes ------------------------------------------------------------
    def mm_alloc(self) -> MmStruct:
        """mm_alloc() + arch_pick_mmap_layout(): an empty address space, top-down layout."""
        kmem = self.kmem
        mm = MmStruct(kmem=kmem, mm_rb=VmaTree(kmem.sysctl.stack_guard_gap, seed=self._next_pid))
        pgd = pgd_alloc(kmem, mm)
        if pgd is None:
            raise MemoryError("mm_alloc: no frame for a page-global directory")
        mm.pgd = pgd
        lay = self.layout
        mm.task_size = lay.task_size
        mm.mmap_window = lay.map_window
        ps = kmem.page_size
        # arch_mmap_rnd(), mmap_base(), mmap_legacy_base() (arch/x86/mm/mmap.c, mm/util.c):
        # the gap below STACK_TOP is the stack rlimit plus the guard gap and the stack's
        # random range, clamped to [128 MiB, 5/6 of the space]; the legacy base is
        # TASK_UNMAPPED_BASE; both shifted by the random offset.
        rnd = (self.rng.getrandbits(lay.mmap_rnd_bits) << kmem.page_shift) if self.aslr else 0
        pad = kmem.sysctl.stack_guard_gap + (
            (lay.stack_rnd_mask << kmem.page_shift) if self.aslr else 0)
        gap = min(max(mm.rlimits.stack + pad, 128 << 20), lay.stack_top // 6 * 5)
        mm.mmap_base = (lay.stack_top - gap - rnd) & ~(ps - 1)
        mm.mmap_legacy_base = lay.unmapped_base + rnd
        # mmap_is_legacy(): ADDR_COMPAT_LAYOUT or vm.legacy_va_layout (and, outside x86, an
        # unlimited stack rlimit) select the bottom-up layout.
        mm.mmap_topdown = not kmem.sysctl.legacy_va_layout
        return mm

    def _new_process(self, mm: MmStruct, ppid: int = 0, comm: str = "scripted") -> Process:
        pid = self._next_pid
        self._next_pid += 1
        mm.owner_pid = pid
        tlb = Tlb(self.mode, self.kmem.phys)
        proc = Process(self, pid, mm, ppid=ppid, comm=comm, tlb=tlb)
        proc.pgid = proc.sid = pid
        self.attach_mm(proc)
        self.processes[pid] = proc
        self.history.append(proc)
        return proc

    def attach_mm(self, proc: Process) -> None:
        """Flush this task's TLBs (the scripted one and the CPU's) where Linux flushes."""
        mm = proc.mm
        mm.owner_pid = proc.pid
        if proc.tlb is not None:
            proc.tlb.flush_all()
            mm.tlb_flush_hooks.append(proc.tlb.flush_range)
        mm.tlb_flush_hooks.append(self._flush_cpu_tlb)

    def _flush_cpu_tlb(self, start: int, end: int) -> None:
        if self.cpu is not None:
            self.cpu.flush_tlb()

    def next_ino(self) -> int:
        self._next_ino += 1
        return self._next_ino

    # ---- real programs ----------------------------------------------------------------
    def get_cpu(self) -> CpuEngine:
        """The CPU engine, created on first use."""
        if self.cpu is None:
            if self.engine == "unicorn" and self.mode.name in ("i386", "i386-pae"):
                from vmsim.cpu.unicorn_cpu32 import UnicornCpu32

                self.cpu = UnicornCpu32(self)
            elif self.engine == "unicorn":
                from vmsim.cpu.unicorn_cpu import UnicornCpu

                self.cpu = UnicornCpu(self)
            elif self.engine == "soft" and self.layout.word == 4:
                raise ValueError("the soft-MMU engine runs x86_64 programs only")
            elif self.engine == "soft":
                from vmsim.cpu.soft_cpu import SoftMmuCpu

                self.cpu = SoftMmuCpu(self)
            else:
                raise ValueError(f"unknown CPU engine {self.engine!r} (unicorn, soft)")
        return self.cpu

    def cpu_start_thread(self, proc: Process, ip: int, sp: int) -> None:
        self.get_cpu().start_thread(proc, ip, sp)

    def exec_process(self, path: str, argv: list[str] | None = None,
                     env: list[str] | None = None, stdin: bytes = b"",
                     echo: bool = False) -> Process | int:
        """A new process (pid 1 if it is the first) running the program at guest `path`, with
        stdin/stdout/stderr on the machine's console; -errno if execve fails."""
        proc = self.spawn(comm=path.rsplit("/", 1)[-1][:15])
        # The guest's first process runs as root (uid 0 in its auxv): it has the capabilities
        # mm code consults (CAP_IPC_LOCK lifts RLIMIT_MEMLOCK, CAP_SYS_RAWIO mmap_min_addr).
        proc.mm.rlimits.cap_ipc_lock = proc.mm.rlimits.cap_sys_rawio = True
        for fd, name in enumerate(("stdin", "stdout", "stderr")):
            proc.files[fd] = self.console[name]
        self.console["stdin"].source += stdin
        if echo:
            self.console["stdout"].echo = sys.stdout
            self.console["stderr"].echo = sys.stderr
        args = [a.encode() for a in (argv if argv is not None else [path])]
        envp = [e.encode() for e in (env if env is not None else DEFAULT_ENV)]
        self.kmem.current = proc.acct
        err = do_execve(proc, path, args, envp)
        if err < 0:  # the process never ran: it leaves no zombie
            proc.release_mm()
            self.processes.pop(proc.pid, None)
            return err
        self.sched.add(proc)
        return proc

    def run(self, program: str, argv: list[str] | None = None, env: list[str] | None = None,
            stdin: bytes = b"", timeout: float = 60.0, echo: bool = False) -> RunResult:
        """Run a program to completion: a sample's name ("hello") or a guest path.

        Returns the first process's exit code, the console output and the
        kernel log. `timeout` (seconds of host time) is the sandbox's budget.
        """
        path = program
        if "/" not in program:
            path = "/" + program
            if self.vfs.root is None:  # a bundled sample, in a private root of its own
                self._private_root = Path(tempfile.mkdtemp(prefix="vmsim-root-"))
                sample = samples_dir() / program
                if sample.is_file():
                    shutil.copy2(sample, self._private_root / program)
                    (self._private_root / program).chmod(0o755)
                self.vfs = Vfs(self.kmem, self._private_root, read_only=self.vfs.read_only)
        proc = self.exec_process(path, argv if argv is not None else [program], env, stdin, echo)
        if isinstance(proc, int):  # a shell's statuses: 127 not found, 126 cannot execute
            return RunResult(127 if proc == -2 else 126, b"", f"vmsim: {program}: {os.strerror(-proc)}\n".encode(), 0,
                             list(self.kernel_log), timed_out=False, errno=-proc)
        timed_out = False
        try:
            self.sched.run(self.get_cpu(), time.monotonic() + timeout if timeout else 0.0)
        except BudgetExceeded as exc:
            timed_out = True
            self.kernel_log.append(f"vmsim: {exc}")
        return RunResult(proc.exit_code if proc.exit_code is not None else 0,
                         bytes(self.console["stdout"].sink), bytes(self.console["stderr"].sink),
                         proc.pid, list(self.kernel_log), timed_out=timed_out,
                         signal=proc.wait_status & 0x7F)

    def spawn(self, comm: str = "scripted") -> Process:
        """An empty process (no VMAs) for scripted use."""
        return self._new_process(self.mm_alloc(), comm=comm)

    def do_exit(self, proc: Process, exit_code: int | None = None,
                kill_signal: int | None = None) -> None:
        """do_exit(): free the address space; the process becomes a zombie record."""
        proc.release_mm()
        if kill_signal is not None:
            proc.state = "killed"
            proc.exit_code = 128 + kill_signal
        else:
            proc.state = "exited"
            proc.exit_code = exit_code or 0
        self.processes.pop(proc.pid, None)
        self._exit_seq += 1
        proc.exit_order = self._exit_seq
        self.zombies[proc.pid] = proc
        if self.events.active:
            self.events.emit("exit", pid=proc.pid, code=proc.exit_code)

    # ---- statistics -------------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """Machine-wide counters: faults by kind, COW copies, allocations, TLB flushes."""
        out: dict[str, int] = {}
        for key, value in sorted(self.kmem.fault_kinds.items()):
            out[f"fault.{key}"] = value
        for key, value in sorted(self.kmem.vm_event.items()):
            out[key] = value
        tlbs = [p.tlb for p in (*self.processes.values(), *self.zombies.values()) if p.tlb]
        out["tlb_hits"] = sum(t.hits for t in tlbs)
        out["tlb_fills"] = sum(t.fills for t in tlbs)
        cpu_fills = getattr(self.cpu, "fills", None)  # engines that see their TLB fills (soft)
        if cpu_fills is not None:
            out["cpu.tlb_fills"] = cpu_fills
            out["cpu.tlb_flushes"] = getattr(self.cpu, "flushes", 0)
        out["free_pages"] = self.kmem.buddy.nr_free
        return out

    def close(self) -> None:
        """Close the host files the VFS holds open (a host file held open for writing cannot
        be executed by the host: ETXTBSY). The machine's files are unusable afterwards."""
        for inode in self.vfs.inodes.values():
            fd = getattr(inode.backing, "fd", None)
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                inode.backing.fd = -1  # type: ignore[union-attr]
        if self._private_root is not None:
            shutil.rmtree(self._private_root, ignore_errors=True)
            self._private_root = None

    def drop_caches(self) -> int:
        """echo 1 > /proc/sys/vm/drop_caches: free clean, unmapped page-cache pages."""
        from vmsim.mm.filemap import drop_page_cache

        return sum(drop_page_cache(self.kmem, inode) for inode in self.vfs.inodes.values())

    # ---- invariants ---------------------------------------------------------------------
    def check(self) -> None:
        """Verify every invariant; AssertionError lists each broken fact."""
        errors = check_machine(self)
        if errors:
            raise AssertionError("machine.check: " + "; ".join(errors[:20]))


def check_machine(machine: Machine) -> list[str]:
    """The invariant checks behind Machine.check()."""
    kmem = machine.kmem
    mode = kmem.mode
    b = mode.bits
    mem_map = kmem.mem_map
    errors: list[str] = []
    ps = kmem.page_size
    mapped = np.zeros(kmem.nr_frames, dtype=np.int64)
    table_frames = 0
    for proc in machine.processes.values():
        mm = proc.mm
        tree = mm.mm_rb
        errors += [f"pid {proc.pid}: {e}" for e in tree.check()]
        if tree.count != mm.map_count:
            errors.append(f"pid {proc.pid}: map_count {mm.map_count} != {tree.count} VMAs")
        total = 0
        for vma in tree:
            if vma.vm_start % ps or vma.vm_end % ps:
                errors.append(f"pid {proc.pid}: unaligned {vma!r}")
            total += vma.size // ps
        if total != mm.total_vm:
            errors.append(f"pid {proc.pid}: total_vm {mm.total_vm} != {total} pages in VMAs")
        rss = Counter[int]()
        for table, i0, i1, base in pte_tables(kmem, mm.pgd, 0, mm.task_size):
            part = pte_view(kmem, table)[i0:i1]
            nz = np.flatnonzero(part)
            for i in nz.tolist():
                entry = int(part[i])
                addr = base + (i0 + i) * ps
                vma = tree.find_vma(addr)
                if vma is None or vma.vm_start > addr:
                    errors.append(f"pid {proc.pid}: entry {entry:#x} at {addr:#x} outside any VMA")
                if not mode.is_present(entry):
                    if not is_guard_pte_marker(mode, entry):
                        errors.append(f"pid {proc.pid}: unknown non-present entry {entry:#x} at {addr:#x}")
                    continue
                pfn = mode.entry_pfn(entry)
                if entry & b.special:
                    if pfn != kmem.zero_pfn:
                        errors.append(f"pid {proc.pid}: special entry at {addr:#x} is not the zero page")
                    continue
                if pfn >= kmem.nr_frames or mem_map.flags_mv[pfn] & (PG.buddy | PG.pgtable):
                    errors.append(f"pid {proc.pid}: entry at {addr:#x} maps a free or table frame {pfn:#x}")
                    continue
                mapped[pfn] += 1
                flags = int(mem_map.flags_mv[pfn])
                rss[MM_ANONPAGES if flags & PG.anon else
                    MM_SHMEMPAGES if flags & PG.swapbacked else MM_FILEPAGES] += 1
        for vma in tree:
            if vma.vm_flags & VM_HUGETLB:
                hs = hstate_vma(vma)
                for addr, _slot, entry in huge_leaves(mm, vma):
                    pfn = huge_pfn(kmem, hs, entry)
                    if not mem_map.flags_mv[pfn] & PG.head or pfn < kmem.hugetlb_start:
                        errors.append(f"pid {proc.pid}: huge leaf at {addr:#x} maps {pfn:#x}, "
                                      "not a pool page in use")
                        continue
                    mapped[pfn] += 1
        for member, name in ((MM_ANONPAGES, "anon"), (MM_FILEPAGES, "file"),
                             (MM_SHMEMPAGES, "shmem")):
            if mm.rss_stat[member] != rss[member]:
                errors.append(f"pid {proc.pid}: rss {name} {mm.rss_stat[member]} != {rss[member]} mapped")
        tables, table_bytes = _count_tables(machine, mm)
        table_frames += tables
        if mm.pgtables_bytes != table_bytes:
            errors.append(f"pid {proc.pid}: pgtables_bytes {mm.pgtables_bytes} != {tables} tables "
                          f"of {table_bytes} bytes")
    bad = np.flatnonzero(mapped != mem_map.mapcount)
    for pfn in bad[:5].tolist():
        errors.append(f"pfn {pfn:#x}: mapcount {mem_map.mapcount_mv[pfn]} but {mapped[pfn]} entries map it")
    low = np.flatnonzero(mem_map.refcount < mem_map.mapcount)
    for pfn in low[:5].tolist():
        errors.append(f"pfn {pfn:#x}: refcount {mem_map.refcount_mv[pfn]} < mapcount {mem_map.mapcount_mv[pfn]}")
    cache_pages = sum(inode.nrpages for inode in _all_inodes(machine))
    anon = int(np.count_nonzero((mem_map.flags & PG.anon) != 0))
    used = kmem.nr_frames - 1 - kmem.buddy.nr_free  # frame 0 is reserved
    expected = 1 + table_frames + cache_pages + anon + (kmem.nr_frames - kmem.hugetlb_start)
    if kmem.hugetlb_start < kmem.nr_frames:  # every huge page in use is held by someone
        in_use = sum(hs.nr_pages - hs.free_count for hs in kmem.hstates.values())
        lo = kmem.hugetlb_start
        held = int(np.count_nonzero(((mem_map.flags[lo:] & PG.head) != 0)
                                    & (mem_map.refcount[lo:] > 0)))
        if held != in_use:
            errors.append(f"hugetlb: {in_use} huge pages in use, {held} held")
        for hs in kmem.hstates.values():
            if hs.resv < 0 or hs.resv > hs.free_count:
                errors.append(f"hugetlb {hs.size >> 10} kB: {hs.resv} reserved of "
                              f"{hs.free_count} free")
    if used != expected:
        errors.append(f"frame leak: {used} frames in use, accounted for {expected} "
                      f"(zero page, {table_frames} tables, {cache_pages} cache, {anon} anon)")
    return errors


def _all_inodes(machine: Machine) -> list:  # type: ignore[type-arg]
    seen = {id(i): i for i in machine.vfs.inodes.values()}
    for proc in machine.processes.values():
        for vma in proc.mm:
            if vma.vm_file is not None:
                seen[id(vma.vm_file.inode)] = vma.vm_file.inode
        for f in proc.files.values():
            inode = getattr(f, "inode", None)  # terminals, pipes and /proc files have none
            if inode is not None:
                seen[id(inode)] = inode
    return list(seen.values())


def _count_tables(machine: Machine, mm: MmStruct) -> tuple[int, int]:
    """Page-table frames reachable from mm.pgd (the PGD included), and their bytes as
    pgtables_bytes counts them (each level's own table size: PowerPC tables differ)."""
    kmem = machine.kmem
    mode = kmem.mode
    pt = kmem.pt
    es = mode.entry_size
    last = len(mode.levels) - 1
    tmask_addr, tr, tl = kmem.pt_taddr
    sizes = mode.table_sizes

    def rec(table: int, lvl: int) -> tuple[int, int]:
        if lvl == last:
            return 1, sizes[lvl]
        count, nbytes = 1, sizes[lvl]
        _shift, _mask, present, tmask, tval, leaf_ok, _tflags = kmem.pt_steps[lvl]
        for i in range(mode.ptrs_per[lvl]):
            entry = pt.read_entry(table + i * es, es)
            if entry & present and not (leaf_ok and entry & tmask != tval):
                c, n = rec((entry & tmask_addr) >> tr << tl, lvl + 1)
                count += c
                nbytes += n
        return count, nbytes

    return rec(mm.pgd, 0)
