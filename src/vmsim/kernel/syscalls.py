"""The x86-64 system-call table (arch/x86/entry/syscalls/syscall_64.tbl, entry/common.c).

Handlers live in the `sys_*` modules and register here with `@syscall(NR,
"name")`. A handler receives the task and the six argument registers as
unsigned 64-bit values and returns the value for rax (a result or -errno),
or None to block: the task is parked on its `syscall` instruction and the
call is made again when it is woken. A number with no handler returns
-ENOSYS and is recorded in `machine.unimplemented` and the trace.
"""

from __future__ import annotations

import errno as E
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

Handler = Callable[..., "int | None"]

#: nr -> (name, handler)
SYSCALLS: dict[int, tuple[str, Handler]] = {}
#: Names of the x86-64 calls vmsim knows by number but does not implement (for the trace).
KNOWN_NAMES: dict[int, str] = {
    7: "poll", 13: "rt_sigaction", 16: "ioctl", 23: "select", 41: "socket", 42: "connect",
    43: "accept", 44: "sendto", 45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 49: "bind",
    50: "listen", 53: "socketpair", 54: "setsockopt", 55: "getsockopt", 56: "clone",
    59: "execve", 62: "kill", 76: "truncate", 90: "chmod", 92: "chown", 98: "getrusage",
    101: "ptrace", 157: "prctl", 202: "futex", 228: "clock_gettime", 232: "epoll_wait",
    257: "openat", 273: "set_robust_list", 293: "pipe2", 302: "prlimit64", 318: "getrandom",
    324: "membarrier", 332: "statx", 334: "rseq", 435: "clone3",
}

U64 = (1 << 64) - 1


def syscall(nr: int, name: str) -> Callable[[Handler], Handler]:
    """Register `fn` as system call `nr`."""

    def register(fn: Handler) -> Handler:
        if nr in SYSCALLS:
            raise ValueError(f"syscall {nr} ({name}) registered twice")
        SYSCALLS[nr] = (name, fn)
        return fn

    return register


def s64(value: int) -> int:
    """An argument register as a signed long (for offsets, fds, pids)."""
    value &= U64
    return value - (1 << 64) if value >> 63 else value


def s32(value: int) -> int:
    """An argument register as a signed int (the C prototype's `int`)."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value


def dispatch(task: Process, table: dict[int, tuple[str, Handler]], nr: int, args: list[int],
             unknown_name: str) -> int | None:
    """Call the handler `table` has for `nr` (an ABI's system-call table); -ENOSYS, counted in
    machine.unimplemented under `unknown_name`, when there is none. None means block."""
    machine = task.machine
    entry = table.get(nr)
    if entry is None:
        machine.unimplemented[unknown_name] += 1
        if machine.strace is not None:
            machine.strace(task, unknown_name, args, -E.ENOSYS, "unimplemented")
        return -E.ENOSYS
    name, fn = entry
    task.in_syscall_restart = False
    ret = fn(task, *args)
    if ret is None:
        task.in_syscall_restart = True
    if machine.strace is not None:
        machine.strace(task, name, args, ret, "")
    return ret


def do_syscall_64(task: Process, nr: int, args: list[int]) -> int | None:
    """do_syscall_64(): dispatch by number; the result for rax, or None to block."""
    return dispatch(task, SYSCALLS, nr, args, KNOWN_NAMES.get(nr, f"syscall_{nr}"))


def _load_handlers() -> None:
    from vmsim.kernel import (  # noqa: F401
        sys_attr,
        sys_dir,
        sys_fs,
        sys_misc,
        sys_mm,
        sys_proc,
        sys_signal,
        sys_stat,
        sys_time,
    )


_load_handlers()
