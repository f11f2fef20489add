"""A task and the scripted process API (kernel/exit.c, kernel/fork.c entry points).

`Process` methods are the system calls and the user accesses of one
process. Calls return what Linux returns (a value or -errno). `load`,
`store` and `fetch` are CPU accesses: they translate through the page
tables exactly as the MMU would (setting accessed/dirty bits), and on a
miss enter the fault handler and retry, as the hardware does after the
handler returns. A fatal fault kills the process with its signal; the
caller's code is not interrupted unless it asks (`check=True`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vmsim.arch.paging import Access, translate
from vmsim.arch.tlb import Tlb
from vmsim.kernel.fork import dup_mm
from vmsim.kernel.signal import SignalState
from vmsim.mm import filemap
from vmsim.mm import mman as m
from vmsim.mm.fault import FaultAccount, FaultOutcome, do_user_addr_fault
from vmsim.mm.filemap import File as FileT
from vmsim.mm.gup import mm_populate
from vmsim.mm.hugetlb import hugetlb_mmap
from vmsim.mm.madvise import do_madvise
from vmsim.mm.mlock import sys_mlock, sys_mlock2, sys_mlockall, sys_munlock, sys_munlockall
from vmsim.mm.mmap import do_mmap, do_munmap, exit_mmap, sys_brk
from vmsim.mm.mprotect import do_mprotect
from vmsim.mm.mremap import do_mremap
from vmsim.mm.msync import do_mincore, do_msync
from vmsim.mm.truncate import truncate_setsize

if TYPE_CHECKING:
    from vmsim.kernel.ptrace import PtRegs
    from vmsim.machine import Machine
    from vmsim.mm.filemap import File
    from vmsim.mm.mm_struct import MmStruct

SIGCHLD_NR = 17
SIGNAL_NAMES = {7: "SIGBUS", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}
# Access kinds as plain ints: they travel the per-page access path, where enum
# arithmetic would dominate the cost.
READ, WRITE, EXEC = int(Access.READ), int(Access.WRITE), int(Access.EXEC)
U64 = (1 << 64) - 1
SI_KERNEL = 0x80


def ul(value: int) -> int:
    """A system-call argument as the unsigned long the kernel receives (-4096 -> 2**64 - 4096)."""
    return value & U64


class ProcessGone(RuntimeError):
    """Raised when the caller uses a process that has exited or was killed."""


class FatalFault(RuntimeError):
    """Raised by an access with check=True when the process is killed by a fault."""


@dataclass
class SigInfo:
    """The siginfo of a fatal fault: signal number, si_code and si_addr."""

    signo: int
    code: int
    addr: int

    @property
    def name(self) -> str:
        return SIGNAL_NAMES.get(self.signo, f"SIG{self.signo}")


@dataclass(eq=False)
class Process:
    """One single-threaded process: pid, mm, open files, fault counters, fate."""

    machine: Machine
    pid: int
    mm: MmStruct
    ppid: int = 0
    comm: str = "scripted"
    files: dict[int, File | Any] = field(default_factory=dict)
    acct: FaultAccount = field(default_factory=FaultAccount)
    tlb: Tlb | None = None  # the CPU's TLB for this address space (set by the machine)
    state: str = "running"  # running | exited | killed
    exit_code: int | None = None
    siginfo: SigInfo | None = None
    log: list[str] = field(default_factory=list)
    # ---- what a task running a real program has besides (kernel/sched.py, signal.py) ----
    signal: SignalState = field(default_factory=SignalState)
    cloexec: set[int] = field(default_factory=set)
    nofile: int = 1024  # RLIMIT_NOFILE
    umask: int = 0o022
    cwd: str = "/"
    exe: str = ""
    pgid: int = 0
    sid: int = 0
    cred_uid: int = 0
    cred_gid: int = 0
    exit_signal: int = SIGCHLD_NR
    wait_status: int = 0
    exit_order: int = 0
    reaped: bool = False
    clear_child_tid: int = 0
    robust_list: int = 0
    vfork_child: int | None = None
    need_stop: bool = False  # the CPU must return to the scheduler (signal, exec, exit, yield)
    in_syscall_restart: bool = False  # asleep in a system call that repeats when woken
    saved_sigmask: int | None = None  # rt_sigsuspend's mask to put back
    restore_sigmask_after_signal: int | None = None
    cpu_ns: int = 0
    insns: int = 0  # instructions executed (when the machine counts them)
    host_ns: int = 0  # host time spent running this task's instructions and its faults
    peak_rss_pages: int = 0  # the largest RSS of any address space the task had
    pgtables_bytes: int = 0  # page-table bytes of its address space at exit (or exec)

    # ---- bookkeeping ------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.state == "running"

    @property
    def min_flt(self) -> int:
        return self.acct.min_flt

    @property
    def maj_flt(self) -> int:
        return self.acct.maj_flt

    @property
    def regs(self) -> PtRegs:
        """The task's user registers (struct pt_regs), from the machine's CPU engine."""
        return self.machine.get_cpu().regs(self)

    def resolve_path(self, dfd: int, path: str) -> str | int:
        """A guest path made absolute against the cwd (or an open directory for *at calls)."""
        if path.startswith("/"):
            return path
        if dfd == -100:  # AT_FDCWD
            base = self.cwd
        else:
            f = self.files.get(dfd)
            if f is None:
                return -m.EBADF
            if not isinstance(f, FileT) or (f.inode.i_mode & 0o170000) != 0o040000:
                return -20  # ENOTDIR
            base = f.path
        return base.rstrip("/") + "/" + path

    def _enter(self) -> MmStruct:
        """Become `current`: the mm code charges faults to this task."""
        if not self.alive:
            raise ProcessGone(f"process {self.pid} is {self.state}")
        self.machine.kmem.current = self.acct
        return self.mm

    # ---- memory system calls ---------------------------------------------------
    def mmap(self, addr: int | None, length: int, prot: int | str, flags: int | str,
             fd: int = -1, offset: int = 0) -> int:
        """mmap(2): the address, or -errno. `prot`/`flags` may be "rw-" / "private|anonymous"."""
        mm = self._enter()
        prot_v, flags_v = m.parse_prot(prot), m.parse_map_flags(flags)
        if offset & (self.machine.kmem.page_size - 1):
            return -m.EINVAL
        file = None
        if not flags_v & m.MAP_ANONYMOUS:
            got = self.files.get(fd)
            if got is None:
                return -m.EBADF
            if not isinstance(got, FileT):
                return -m.ENODEV  # a pipe or terminal has no ->mmap
            file = got
        elif flags_v & m.MAP_HUGETLB:
            return hugetlb_mmap(mm, ul(addr or 0), ul(length), prot_v, flags_v)
        if file is not None and flags_v & m.MAP_HUGETLB:
            return -m.EINVAL
        ret, populate = do_mmap(mm, file, ul(addr or 0), ul(length), prot_v, flags_v,
                                ul(offset) >> self.machine.kmem.page_shift)
        if ret >= 0 and populate:
            mm_populate(mm, ret, ret + populate)
        return ret

    def munmap(self, addr: int, length: int) -> int:
        return do_munmap(self._enter(), ul(addr), ul(length))

    def mprotect(self, addr: int, length: int, prot: int | str) -> int:
        return do_mprotect(self._enter(), ul(addr), ul(length), m.parse_prot(prot))

    def mremap(self, old: int, old_len: int, new_len: int, flags: int = 0, new_addr: int = 0) -> int:
        return do_mremap(self._enter(), ul(old), ul(old_len), ul(new_len), ul(flags), ul(new_addr))

    def brk(self, addr: int) -> int:
        return sys_brk(self._enter(), ul(addr))

    def madvise(self, addr: int, length: int, advice: int) -> int:
        return do_madvise(self._enter(), ul(addr), ul(length), advice)

    def mlock(self, addr: int, length: int) -> int:
        return sys_mlock(self._enter(), ul(addr), ul(length))

    def mlock2(self, addr: int, length: int, flags: int = 0) -> int:
        return sys_mlock2(self._enter(), ul(addr), ul(length), ul(flags))

    def munlock(self, addr: int, length: int) -> int:
        return sys_munlock(self._enter(), ul(addr), ul(length))

    def mlockall(self, flags: int) -> int:
        return sys_mlockall(self._enter(), flags)

    def munlockall(self) -> int:
        return sys_munlockall(self._enter())

    def msync(self, addr: int, length: int, flags: int = m.MS_SYNC) -> int:
        return do_msync(self._enter(), ul(addr), ul(length), flags)

    def mincore(self, addr: int, length: int) -> bytes | int:
        return do_mincore(self._enter(), ul(addr), ul(length))

    # ---- files -------------------------------------------------------------------
    def open(self, path: str, flags: int = 0, mode: int = 0o644) -> int:
        """open(2) inside the machine's root; the lowest free fd or -errno."""
        self._enter()
        got = self.machine.vfs.open(path, flags, mode)
        if isinstance(got, int):
            return got
        if got.f_flags & 0o1000:  # O_TRUNC
            truncate_setsize(self.machine.kmem, got.inode, 0)
        fd = 0
        while fd in self.files:
            fd += 1
        self.files[fd] = got
        return fd

    def close(self, fd: int) -> int:
        self._enter()
        return 0 if self.files.pop(fd, None) is not None else -m.EBADF

    def pread(self, fd: int, n: int, offset: int) -> bytes | int:
        self._enter()
        file = self.files.get(fd)
        if file is None or not file.readable:
            return -m.EBADF
        if offset < 0:
            return -m.EINVAL
        return filemap.file_read(self.machine.kmem, file.inode, offset, n, file.f_ra)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        self._enter()
        file = self.files.get(fd)
        if file is None or not file.writable:
            return -m.EBADF
        if offset < 0:
            return -m.EINVAL
        return filemap.file_write(self.machine.kmem, file.inode, offset, bytes(data))

    def ftruncate(self, fd: int, length: int) -> int:
        self._enter()
        file = self.files.get(fd)
        if file is None:
            return -m.EBADF
        if not file.writable or length < 0:
            return -m.EINVAL
        truncate_setsize(self.machine.kmem, file.inode, length)
        return 0

    # ---- CPU accesses ------------------------------------------------------------
    def _access(self, addr: int, access: int, check: bool) -> int | None:
        """Translate one byte's address for `access`, faulting and retrying; phys or None."""
        mm = self._enter()
        kmem = self.machine.kmem
        if not kmem.mode.canonical(addr):
            self._general_protection()
            if check:
                raise FatalFault(self.log[-1])
            return None
        lookup = self.tlb.lookup if self.tlb is not None else None
        for _ in range(4):
            if lookup is not None:
                phys, err = lookup(mm.pgd, addr, access)
            else:
                phys, err = translate(kmem.mode, kmem.phys, mm.pgd, addr, access)
            if phys >= 0:
                return phys
            outcome = do_user_addr_fault(mm, addr, access, err)
            if not outcome.ok:
                self._fatal_fault(outcome, err)
                if check:
                    raise FatalFault(self.log[-1])
                return None
        raise AssertionError(f"_access: fault at {addr:#x} resolved but the access still fails")

    def _general_protection(self) -> None:
        """exc_general_protection(): a non-canonical address is #GP, not a page fault:
        SIGSEGV with si_code SI_KERNEL and no address, as Linux reports it."""
        self.siginfo = SigInfo(11, SI_KERNEL, 0)
        line = (f"traps: {self.comm}[{self.pid}] general protection fault ip:0 sp:0 error:0")
        self.log.append(line)
        self.machine.kernel_log.append(line)
        self.machine.do_exit(self, kill_signal=11)

    def _fatal_fault(self, outcome: FaultOutcome, error_code: int) -> None:
        """force_sig_fault() with the default action: the process dies of the signal."""
        self.siginfo = SigInfo(outcome.signo, outcome.si_code, outcome.addr)
        if outcome.signo == 11:
            line = (f"{self.comm}[{self.pid}]: segfault at {outcome.addr:x} ip 0000000000000000 "
                    f"sp 0000000000000000 error {error_code:x}")
        elif outcome.result & 1:  # VM_FAULT_OOM
            line = f"Out of memory: killed process {self.pid} ({self.comm})"
            self.siginfo = SigInfo(9, 0, outcome.addr)
        else:
            line = f"{self.comm}[{self.pid}]: bus error at {outcome.addr:x}"
        self.log.append(line)
        self.machine.kernel_log.append(line)
        self.machine.do_exit(self, kill_signal=self.siginfo.signo)

    def load(self, addr: int, n: int = 1, check: bool = False) -> bytes | None:
        """Read n bytes as the CPU would; None if the process died of the access."""
        return self._copy(ul(addr), n, READ, None, check)

    def fetch(self, addr: int, n: int = 1, check: bool = False) -> bytes | None:
        """An instruction fetch of n bytes (needs VM_EXEC and no NX)."""
        return self._copy(ul(addr), n, EXEC, None, check)

    def store(self, addr: int, data: bytes, check: bool = False) -> bool:
        """Write bytes as the CPU would; False if the process died of the access."""
        return self._copy(ul(addr), len(data), WRITE, bytes(data), check) is not None

    def _copy(self, addr: int, n: int, access: int, data: bytes | None,
              check: bool) -> bytes | None:
        kmem = self.machine.kmem
        ps = kmem.page_size
        out = bytearray()
        pos = addr
        end = addr + n
        while pos < end:
            chunk = min(ps - (pos & (ps - 1)), end - pos)
            phys = self._access(pos, access, check)
            if phys is None:
                return None
            if data is None:
                out += kmem.phys.read(phys, chunk)
            else:
                kmem.phys.write(phys, data[pos - addr:pos - addr + chunk])
            pos += chunk
        return bytes(out)

    def translate(self, addr: int, access: int = READ) -> int | None:
        """The physical address the MMU would use now, without faulting (None if it would fault)."""
        kmem = self.machine.kmem
        phys, _ = translate(kmem.mode, kmem.phys, self.mm.pgd, addr, int(access))
        return phys if phys >= 0 else None

    # ---- lifecycle ----------------------------------------------------------------
    def fork(self) -> Process | int:
        """fork(2): the child process (COW address space), or -ENOMEM."""
        mm = self._enter()
        child_mm = dup_mm(mm)
        if child_mm is None:
            return -m.ENOMEM
        child = self.machine._new_process(child_mm, ppid=self.pid, comm=self.comm)
        child.files = dict(self.files)
        return child

    def exit(self, code: int = 0) -> None:
        """exit(2): release the address space and files."""
        self._enter()
        self.machine.do_exit(self, exit_code=code)

    def account_mm(self) -> None:
        """Remember the address space's peak RSS and page tables before it goes (exit, exec)."""
        mm = self.mm
        mm.update_hiwater_rss()
        self.peak_rss_pages = max(self.peak_rss_pages, mm.hiwater_rss)
        self.pgtables_bytes = mm.pgtables_bytes

    def release_mm(self) -> None:
        """exit_mm() -> mmput() -> exit_mmap()."""
        self.account_mm()
        self.mm.mm_users -= 1
        if self.mm.mm_users == 0:
            exit_mmap(self.mm)
        self.files.clear()

    # ---- views ---------------------------------------------------------------------
    def maps(self) -> str:
        return self.machine.procfs.read(self.pid, "maps")

    def smaps(self) -> str:
        return self.machine.procfs.read(self.pid, "smaps")

    def status(self) -> str:
        return self.machine.procfs.read(self.pid, "status")
