"""Assorted calls real programs make at start-up or for introspection (kernel/sys.c prctl,
kernel/capability.c, kernel/futex/, kernel/sched/core.c affinity, mm/process_vm_access.c)."""

from __future__ import annotations

import errno as E
import struct
from typing import TYPE_CHECKING

from vmsim.kernel.syscalls import s32, syscall
from vmsim.kernel.uaccess import (
    copy_from_user,
    copy_to_user,
    get_user_u32,
    strncpy_from_user,
)

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME = 15, 16
PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 38, 39
PR_SET_VMA = 0x53564D41
PR_SET_VMA_ANON_NAME = 0
CAP_IPC_LOCK, CAP_SYS_RAWIO = 14, 17
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
#: Every capability of a root task (CAP_LAST_CAP 40 -> 41 bits).
ALL_CAPS = (1 << 41) - 1
FUTEX_WAIT, FUTEX_WAKE, FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 0, 1, 128, 256
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10


@syscall(157, "prctl")
def sys_prctl(task: Process, option: int, arg2: int, arg3: int, arg4: int, arg5: int,
              *_: int) -> int:
    option = s32(option)
    if option == PR_SET_NAME:
        name = strncpy_from_user(task, arg2, 16)
        if isinstance(name, int) and name != -36:
            return name
        raw = copy_from_user(task, arg2, 15) if isinstance(name, int) else name
        task.comm = (raw or b"").split(b"\0", 1)[0][:15].decode("utf-8", "replace")
        return 0
    if option == PR_GET_NAME:
        raw = task.comm.encode()[:15].ljust(16, b"\0")
        return 0 if copy_to_user(task, arg2, raw) else -E.EFAULT
    if option == PR_SET_THP_DISABLE:
        if arg3 or arg4 or arg5:
            return -E.EINVAL
        task.thp_disable = bool(arg2)
        return 0
    if option == PR_GET_THP_DISABLE:
        return int(getattr(task, "thp_disable", False))
    if option == PR_SET_DUMPABLE:
        return 0 if arg2 in (0, 1) else -E.EINVAL
    if option == PR_GET_DUMPABLE:
        return 1
    if option == PR_SET_PDEATHSIG:
        return 0 if arg2 <= 64 else -E.EINVAL
    if option == PR_GET_PDEATHSIG:
        return 0 if copy_to_user(task, arg2, bytes(4)) else -E.EFAULT
    if option == PR_SET_NO_NEW_PRIVS:
        return 0 if arg2 == 1 and not (arg3 or arg4 or arg5) else -E.EINVAL
    if option == PR_GET_NO_NEW_PRIVS:
        return 0
    return -E.EINVAL


def _caps(task: Process) -> int:
    caps = ALL_CAPS
    if not task.mm.rlimits.cap_ipc_lock:
        caps &= ~(1 << CAP_IPC_LOCK)
    if not task.mm.rlimits.cap_sys_rawio:
        caps &= ~(1 << CAP_SYS_RAWIO)
    return caps


@syscall(125, "capget")
def sys_capget(task: Process, hdrp: int, datap: int, *_: int) -> int:
    """capget(): version 3, two 32-bit words per set. The memory-relevant capabilities
    (CAP_IPC_LOCK, CAP_SYS_RAWIO) are the mm's; a root task has the rest."""
    version = get_user_u32(task, hdrp)
    if version is None:
        return -E.EFAULT
    if version != _LINUX_CAPABILITY_VERSION_3:  # report the version the kernel wants
        if not copy_to_user(task, hdrp, struct.pack("<I", _LINUX_CAPABILITY_VERSION_3)):
            return -E.EFAULT
        return 0 if not datap else -E.EINVAL
    if not datap:
        return 0
    eff = _caps(task)
    words = [eff & 0xFFFF_FFFF, ALL_CAPS & 0xFFFF_FFFF, 0, eff >> 32, ALL_CAPS >> 32, 0]
    return 0 if copy_to_user(task, datap, struct.pack("<6I", *words)) else -E.EFAULT


@syscall(126, "capset")
def sys_capset(task: Process, hdrp: int, datap: int, *_: int) -> int:
    version = get_user_u32(task, hdrp)
    if version is None:
        return -E.EFAULT
    if version != _LINUX_CAPABILITY_VERSION_3:
        return -E.EINVAL
    raw = copy_from_user(task, datap, 24)
    if raw is None:
        return -E.EFAULT
    w = struct.unpack("<6I", raw)
    eff = w[0] | (w[3] << 32)
    perm = w[1] | (w[4] << 32)
    if eff & ~perm:
        return -E.EPERM
    task.mm.rlimits.cap_ipc_lock = bool(eff & (1 << CAP_IPC_LOCK))
    task.mm.rlimits.cap_sys_rawio = bool(eff & (1 << CAP_SYS_RAWIO))
    return 0


@syscall(202, "futex")
def sys_futex(task: Process, uaddr: int, op: int, val: int, timeout: int, uaddr2: int,
              val3: int) -> int | None:
    """futex() for single-threaded tasks: WAKE wakes nobody; WAIT on a changed value is
    -EAGAIN, on an unchanged one it would sleep until another thread wakes it — with no
    other thread that is forever, so it sleeps (the scheduler reports the deadlock)."""
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        return 0
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        cur = get_user_u32(task, uaddr)
        if cur is None:
            return -E.EFAULT
        if cur != val & 0xFFFF_FFFF:
            return -E.EAGAIN
        if timeout:
            return -E.ETIMEDOUT
        return None
    return -E.ENOSYS


@syscall(204, "sched_getaffinity")
def sys_sched_getaffinity(task: Process, pid: int, size: int, mask: int, *_: int) -> int:
    if size < 8 or size & 7:
        return -E.EINVAL
    return 8 if copy_to_user(task, mask, struct.pack("<Q", 1)) else -E.EFAULT


@syscall(203, "sched_setaffinity")
def sys_sched_setaffinity(task: Process, pid: int, size: int, mask: int, *_: int) -> int:
    raw = copy_from_user(task, mask, min(size, 8))
    if raw is None:
        return -E.EFAULT
    return 0 if int.from_bytes(raw, "little") & 1 else -E.EINVAL


@syscall(309, "getcpu")
def sys_getcpu(task: Process, cpu: int, node: int, *_: int) -> int:
    if cpu and not copy_to_user(task, cpu, bytes(4)):
        return -E.EFAULT
    if node and not copy_to_user(task, node, bytes(4)):
        return -E.EFAULT
    return 0


def _iovec_list(task: Process, iov: int, cnt: int) -> list[tuple[int, int]] | int:
    if cnt > 1024:
        return -E.EINVAL
    raw = copy_from_user(task, iov, 16 * cnt)
    if raw is None:
        return -E.EFAULT
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(cnt)]


def _process_vm_rw(task: Process, pid: int, lvec: int, liovcnt: int, rvec: int, riovcnt: int,
                   flags: int, write: bool) -> int:
    """process_vm_readv/writev(): copy between this task's and another's memory through both
    page tables (faulting in the remote pages as get_user_pages would)."""
    if flags:
        return -E.EINVAL
    other = task.machine.sched.find(s32(pid))
    if other is None:
        return -E.ESRCH
    local = _iovec_list(task, lvec, liovcnt)
    remote = _iovec_list(task, rvec, riovcnt)
    if isinstance(local, int):
        return local
    if isinstance(remote, int):
        return remote
    src_task, dst_task = (task, other) if write else (other, task)
    src_vec, dst_vec = (local, remote) if write else (remote, local)
    data = bytearray()
    for base, length in src_vec:
        chunk = copy_from_user(src_task, base, length)
        if chunk is None:
            break
        data += chunk
    done = 0
    for base, length in dst_vec:
        piece = bytes(data[done:done + length])
        if not piece:
            break
        if not copy_to_user(dst_task, base, piece):
            break
        done += len(piece)
    if done == 0 and any(length for _, length in src_vec):
        return -E.EFAULT
    return done


@syscall(310, "process_vm_readv")
def sys_process_vm_readv(task: Process, pid: int, lvec: int, liovcnt: int, rvec: int,
                         riovcnt: int, flags: int) -> int:
    return _process_vm_rw(task, pid, lvec, liovcnt, rvec, riovcnt, flags, write=False)


@syscall(311, "process_vm_writev")
def sys_process_vm_writev(task: Process, pid: int, lvec: int, liovcnt: int, rvec: int,
                          riovcnt: int, flags: int) -> int:
    return _process_vm_rw(task, pid, lvec, liovcnt, rvec, riovcnt, flags, write=True)
