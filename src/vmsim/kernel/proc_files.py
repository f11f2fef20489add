"""/proc as a guest sees it (fs/proc/base.c, array.c, task_mmu.c): open files whose text
vmsim's procfs generates from the kernel's own structures.

A program running on vmsim can read its own `/proc/self/maps`, `smaps`,
`status`, `stat`, `pagemap`, `cmdline` and `environ`, and the machine-wide
`/proc/meminfo` and `/proc/vmstat`, in Linux's formats. Text files are
generated on the first read and then read like a file (`seq_file` regenerates
per read; a snapshot per open is the simplification); `pagemap` is computed
for exactly the entries each read asks for.
"""

from __future__ import annotations

import errno as E
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmsim.kernel.uaccess import copy_from_user

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

PER_PID = {"maps", "smaps", "status", "stat", "pagemap", "cmdline", "environ", "comm", "statm"}
GLOBAL = {"meminfo", "vmstat", "uptime", "version"}
_PID_PATH = re.compile(r"^/proc/(self|\d+)/([a-z_]+)$")
_GLOBAL_PATH = re.compile(r"^/proc/([a-z_]+)$")
PM_ENTRY_BYTES = 8


@dataclass(eq=False)
class ProcFile:
    """An open /proc file: `pid` 0 for machine-wide files."""

    pid: int
    name: str
    f_pos: int = 0
    f_flags: int = 0
    text: bytes | None = None

    def _text(self, task: Process) -> bytes | int:
        if self.text is None:
            got = render(task, self.pid, self.name)
            if isinstance(got, int):
                return got
            self.text = got
        return self.text

    def pread(self, task: Process, n: int, off: int) -> bytes | int:
        if self.name == "pagemap":
            return self._pagemap(task, n, off)
        text = self._text(task)
        if isinstance(text, int):
            return text
        return text[off:off + n]

    def read(self, task: Process, n: int) -> bytes | int:
        got = self.pread(task, n, self.f_pos)
        if isinstance(got, bytes):
            self.f_pos += len(got)
        return got

    def write(self, task: Process, data: bytes) -> int:
        return -E.EINVAL

    def lseek(self, offset: int, whence: int) -> int:
        base = {0: 0, 1: self.f_pos}.get(whence)
        if base is None or base + offset < 0:
            return -E.EINVAL
        self.f_pos = base + offset
        return self.f_pos

    def _pagemap(self, task: Process, n: int, off: int) -> bytes | int:
        """pagemap_read(): 8-byte entries for the pages from offset/8; -EINVAL if misaligned."""
        if off % PM_ENTRY_BYTES or n % PM_ENTRY_BYTES:
            return -E.EINVAL
        machine = task.machine
        proc = machine.processes.get(self.pid)
        if proc is None:
            return -E.ESRCH
        shift = machine.kmem.page_shift
        start = (off // PM_ENTRY_BYTES) << shift
        top = proc.mm.task_size
        if start >= top:
            return b""
        npages = min(n // PM_ENTRY_BYTES, (top - start) >> shift)
        return machine.procfs.pagemap(self.pid, start, npages)


def open_proc(task: Process, path: str) -> ProcFile | int:
    """The ProcFile for a guest path under /proc, or -ENOENT."""
    path = "/" + "/".join(p for p in path.split("/") if p and p != ".")
    m = _PID_PATH.match(path)
    if m:
        pid = task.pid if m.group(1) == "self" else int(m.group(1))
        if m.group(2) not in PER_PID or pid not in task.machine.processes:
            return -E.ENOENT
        return ProcFile(pid, m.group(2))
    g = _GLOBAL_PATH.match(path)
    if g and g.group(1) in GLOBAL:
        return ProcFile(0, g.group(1))
    return -E.ENOENT


def _user_strings(task: Process, proc: Process, start: int, end: int) -> bytes:
    """cmdline/environ: the bytes of the target's argument or environment area."""
    if end <= start:
        return b""
    data = copy_from_user(proc, start, end - start)
    return data or b""


def proc_pid_stat(proc: Process) -> str:
    """do_task_stat(): the 52 fields of /proc/PID/stat (times in clock ticks)."""
    mm = proc.mm
    ps = proc.machine.kmem.page_size
    rss = mm.get_mm_rss()
    state = "R" if proc.alive else "Z"
    fields = [proc.pid, f"({proc.comm})", state, proc.ppid, proc.pgid, proc.sid, 0, -1,
              0x400000, proc.acct.min_flt, 0, proc.acct.maj_flt, 0, proc.cpu_ns // 10_000_000,
              0, 0, 0, 20, 0, 1, 0, 0, mm.total_vm * ps, rss, (1 << 64) - 1, mm.start_code,
              mm.end_code, mm.start_stack, 0, 0, 0, proc.signal.blocked, 0, 0, 0, 0, 0,
              proc.exit_signal, 0, 0, 0, 0, 0, 0, mm.start_data, mm.end_data, mm.start_brk,
              mm.arg_start, mm.arg_end, mm.env_start, mm.env_end, 0]
    return " ".join(str(f) for f in fields) + "\n"


def render(task: Process, pid: int, name: str) -> bytes | int:
    """The text of a /proc file now."""
    machine = task.machine
    procfs = machine.procfs
    if pid == 0:
        if name == "meminfo":
            return procfs.meminfo().encode()
        if name == "vmstat":
            return procfs.vmstat().encode()
        if name == "uptime":
            sec = machine.clock_ns / 1e9
            return f"{sec:.2f} {sec:.2f}\n".encode()
        if name == "version":
            return b"Linux version 6.12.0-vmsim (vmsim) #1 SMP PREEMPT_DYNAMIC\n"
        return -E.ENOENT
    proc = machine.processes.get(pid)
    if proc is None:
        return -E.ESRCH
    if name in ("maps", "smaps", "status"):
        return procfs.read(pid, name).encode()
    if name == "stat":
        return proc_pid_stat(proc).encode()
    if name == "statm":
        mm = proc.mm
        return f"{mm.total_vm} {mm.get_mm_rss()} {mm.rss_stat[0]} 0 0 {mm.data_vm} 0\n".encode()
    if name == "comm":
        return (proc.comm + "\n").encode()
    if name == "cmdline":
        return _user_strings(task, proc, proc.mm.arg_start, proc.mm.arg_end)
    if name == "environ":
        return _user_strings(task, proc, proc.mm.env_start, proc.mm.env_end)
    return -E.ENOENT
