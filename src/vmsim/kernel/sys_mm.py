"""Memory-management system calls of real programs: thin entries into vmsim's mm core.

Each one is the scripted `Process` method of the same name (which already
returns what Linux returns), given the raw registers; `mincore` copies its
vector out through `copy_to_user`.
"""

from __future__ import annotations

import errno as E
from typing import TYPE_CHECKING

from vmsim.kernel.syscalls import s32, syscall
from vmsim.kernel.uaccess import copy_to_user

if TYPE_CHECKING:
    from vmsim.kernel.task import Process


@syscall(9, "mmap")
def sys_mmap(task: Process, addr: int, length: int, prot: int, flags: int, fd: int,
             off: int, *_: int) -> int:
    ret = task.mmap(addr, length, prot & 0xFFFF_FFFF, flags & 0xFFFF_FFFF, s32(fd), off)
    if ret >= 0 and prot & 4 and task.machine.cpu is not None:
        task.machine.cpu.flush_icache()
    return ret


@syscall(10, "mprotect")
def sys_mprotect(task: Process, addr: int, length: int, prot: int, *_: int) -> int:
    return task.mprotect(addr, length, prot & 0xFFFF_FFFF)


@syscall(11, "munmap")
def sys_munmap(task: Process, addr: int, length: int, *_: int) -> int:
    return task.munmap(addr, length)


@syscall(12, "brk")
def sys_brk(task: Process, addr: int, *_: int) -> int:
    return task.brk(addr)


@syscall(25, "mremap")
def sys_mremap(task: Process, old: int, old_len: int, new_len: int, flags: int, new: int,
               *_: int) -> int:
    return task.mremap(old, old_len, new_len, flags, new)


@syscall(26, "msync")
def sys_msync(task: Process, addr: int, length: int, flags: int, *_: int) -> int:
    return task.msync(addr, length, s32(flags))


@syscall(27, "mincore")
def sys_mincore(task: Process, addr: int, length: int, vec: int, *_: int) -> int:
    got = task.mincore(addr, length)
    if isinstance(got, int):
        return got
    return 0 if copy_to_user(task, vec, got) else -E.EFAULT


@syscall(28, "madvise")
def sys_madvise(task: Process, addr: int, length: int, advice: int, *_: int) -> int:
    return task.madvise(addr, length, s32(advice))


@syscall(149, "mlock")
def sys_mlock(task: Process, addr: int, length: int, *_: int) -> int:
    return task.mlock(addr, length)


@syscall(150, "munlock")
def sys_munlock(task: Process, addr: int, length: int, *_: int) -> int:
    return task.munlock(addr, length)


@syscall(151, "mlockall")
def sys_mlockall(task: Process, flags: int, *_: int) -> int:
    return task.mlockall(s32(flags))


@syscall(152, "munlockall")
def sys_munlockall(task: Process, *_: int) -> int:
    return task.munlockall()


@syscall(325, "mlock2")
def sys_mlock2(task: Process, addr: int, length: int, flags: int, *_: int) -> int:
    return task.mlock2(addr, length, flags)
