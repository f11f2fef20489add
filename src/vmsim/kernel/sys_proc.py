"""Process system calls (kernel/fork.c, kernel/exit.c, fs/exec.c, kernel/sys.c,
arch/x86/kernel/process_64.c)."""

from __future__ import annotations

import errno as E
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from vmsim.kernel.exec import do_execve
from vmsim.kernel.syscalls import s32, s64, syscall
from vmsim.kernel.uaccess import (
    copy_from_user,
    copy_to_user,
    put_user_u32,
    strings_from_user,
    strncpy_from_user,
)

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_VFORK, CLONE_PARENT, CLONE_THREAD, CLONE_SETTLS = 0x4000, 0x8000, 0x10000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x100000, 0x200000, 0x1000000
WNOHANG, WUNTRACED, WCONTINUED, WEXITED, WNOWAIT = 1, 2, 8, 4, 0x01000000
__WALL, __WCLONE, __WNOTHREAD = 0x40000000, 0x80000000, 0x20000000
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
RLIMIT_STACK, RLIMIT_NOFILE, RLIMIT_AS, RLIMIT_MEMLOCK, RLIMIT_DATA = 3, 7, 9, 8, 2
RLIM_INFINITY = (1 << 64) - 1


@syscall(60, "exit")
def sys_exit(task: Process, code: int, *_: int) -> int:
    task.machine.sched.exit_task(task, code & 0xFF)
    return 0


@syscall(231, "exit_group")
def sys_exit_group(task: Process, code: int, *_: int) -> int:
    task.machine.sched.exit_task(task, code & 0xFF)
    return 0


@syscall(39, "getpid")
def sys_getpid(task: Process, *_: int) -> int:
    return task.pid


@syscall(186, "gettid")
def sys_gettid(task: Process, *_: int) -> int:
    return task.pid


@syscall(110, "getppid")
def sys_getppid(task: Process, *_: int) -> int:
    return task.ppid


@syscall(102, "getuid")
def sys_getuid(task: Process, *_: int) -> int:
    return task.cred_uid


@syscall(107, "geteuid")
def sys_geteuid(task: Process, *_: int) -> int:
    return task.cred_uid


@syscall(104, "getgid")
def sys_getgid(task: Process, *_: int) -> int:
    return task.cred_gid


@syscall(108, "getegid")
def sys_getegid(task: Process, *_: int) -> int:
    return task.cred_gid


@syscall(121, "getpgid")
def sys_getpgid(task: Process, pid: int, *_: int) -> int:
    target = task.machine.sched.find(s32(pid)) if s32(pid) else task
    return -E.ESRCH if target is None else target.pgid


@syscall(111, "getpgrp")
def sys_getpgrp(task: Process, *_: int) -> int:
    return task.pgid


@syscall(109, "setpgid")
def sys_setpgid(task: Process, pid: int, pgid: int, *_: int) -> int:
    target = task.machine.sched.find(s32(pid)) if s32(pid) else task
    if target is None:
        return -E.ESRCH
    if s32(pgid) < 0:
        return -E.EINVAL
    target.pgid = s32(pgid) or target.pid
    return 0


@syscall(112, "setsid")
def sys_setsid(task: Process, *_: int) -> int:
    if task.pgid == task.pid:
        return -E.EPERM
    task.sid = task.pgid = task.pid
    return task.pid


@syscall(124, "getsid")
def sys_getsid(task: Process, pid: int, *_: int) -> int:
    target = task.machine.sched.find(s32(pid)) if s32(pid) else task
    return -E.ESRCH if target is None else target.sid


@syscall(95, "umask")
def sys_umask(task: Process, mask: int, *_: int) -> int:
    old, task.umask = task.umask, mask & 0o777
    return old


@syscall(158, "arch_prctl")
def sys_arch_prctl(task: Process, code: int, addr: int, *_: int) -> int:
    regs = task.regs
    if code in (ARCH_SET_FS, ARCH_SET_GS):
        if addr >= 0x7FFF_FFFF_F000:
            return -E.EPERM
        regs.set("fs_base" if code == ARCH_SET_FS else "gs_base", addr)
        return 0
    if code in (ARCH_GET_FS, ARCH_GET_GS):
        value = regs.get("fs_base" if code == ARCH_GET_FS else "gs_base")
        return 0 if copy_to_user(task, addr, struct.pack("<Q", value)) else -E.EFAULT
    return -E.EINVAL


@syscall(218, "set_tid_address")
def sys_set_tid_address(task: Process, tidptr: int, *_: int) -> int:
    task.clear_child_tid = tidptr
    return task.pid


@syscall(273, "set_robust_list")
def sys_set_robust_list(task: Process, head: int, length: int, *_: int) -> int:
    if length != 24:
        return -E.EINVAL
    task.robust_list = head
    return 0


@syscall(24, "sched_yield")
def sys_sched_yield(task: Process, *_: int) -> int:
    task.need_stop = True  # to the back of the run queue
    return 0


@syscall(63, "uname")
def sys_uname(task: Process, buf: int, *_: int) -> int:
    fields = [b"Linux", task.machine.hostname.encode(), b"6.12.0-vmsim",
              b"#1 SMP PREEMPT_DYNAMIC vmsim", b"x86_64", b"(none)"]
    raw = b"".join(f[:64].ljust(65, b"\0") for f in fields)
    return 0 if copy_to_user(task, buf, raw) else -E.EFAULT


# ---- resource limits -----------------------------------------------------------------------
def _get_rlimit(task: Process, resource: int) -> tuple[int, int] | None:
    lim = task.mm.rlimits
    if resource == RLIMIT_STACK:
        return lim.stack, RLIM_INFINITY
    if resource == RLIMIT_NOFILE:
        return task.nofile, 4096
    if resource == RLIMIT_AS:
        return lim.as_, lim.as_
    if resource == RLIMIT_MEMLOCK:
        return lim.memlock, lim.memlock
    if resource == RLIMIT_DATA:
        return lim.data, lim.data
    if 0 <= resource < 16:
        return RLIM_INFINITY, RLIM_INFINITY
    return None


def _set_rlimit(task: Process, resource: int, cur: int, maxv: int) -> int:
    if cur > maxv:
        return -E.EINVAL
    lim = task.mm.rlimits
    if resource == RLIMIT_STACK:
        lim.stack = cur
    elif resource == RLIMIT_NOFILE:
        task.nofile = min(cur, 1 << 20)
    elif resource == RLIMIT_AS:
        lim.as_ = cur
    elif resource == RLIMIT_MEMLOCK:
        lim.memlock = cur
    elif resource == RLIMIT_DATA:
        lim.data = cur
    elif not 0 <= resource < 16:
        return -E.EINVAL
    return 0


@syscall(302, "prlimit64")
def sys_prlimit64(task: Process, pid: int, resource: int, new: int, old: int, *_: int) -> int:
    target = task.machine.sched.find(s32(pid)) if s32(pid) else task
    if target is None:
        return -E.ESRCH
    resource = s32(resource)
    cur = _get_rlimit(target, resource)
    if cur is None:
        return -E.EINVAL
    if new:
        raw = copy_from_user(task, new, 16)
        if raw is None:
            return -E.EFAULT
        err = _set_rlimit(target, resource, *struct.unpack("<QQ", raw))
        if err:
            return err
    if old and not copy_to_user(task, old, struct.pack("<QQ", *cur)):
        return -E.EFAULT
    return 0


@syscall(97, "getrlimit")
def sys_getrlimit(task: Process, resource: int, rlim: int, *_: int) -> int:
    cur = _get_rlimit(task, s32(resource))
    if cur is None:
        return -E.EINVAL
    return 0 if copy_to_user(task, rlim, struct.pack("<QQ", *cur)) else -E.EFAULT


@syscall(160, "setrlimit")
def sys_setrlimit(task: Process, resource: int, rlim: int, *_: int) -> int:
    raw = copy_from_user(task, rlim, 16)
    if raw is None:
        return -E.EFAULT
    return _set_rlimit(task, s32(resource), *struct.unpack("<QQ", raw))


# ---- fork, exec, wait ------------------------------------------------------------------------
def kernel_clone(task: Process, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    """kernel_clone() for process-style clones: a child with a COW copy of the address space."""
    if flags & (CLONE_VM | CLONE_THREAD | CLONE_SIGHAND) and not flags & CLONE_VFORK:
        return -E.ENOSYS  # threads are not modelled yet
    if flags & CLONE_THREAD:
        return -E.ENOSYS
    child = task.machine.sched.copy_process(task, exit_signal=flags & 0xFF, clone_flags=flags)
    if isinstance(child, int):
        return child
    if stack:
        task.machine.cpu.regs(child).set("rsp", stack)
    if flags & CLONE_SETTLS:
        task.machine.cpu.regs(child).set("fs_base", tls)
    if flags & CLONE_PARENT_SETTID:
        put_user_u32(task, ptid, child.pid)
    if flags & CLONE_CHILD_SETTID:
        put_user_u32(child, ctid, child.pid)
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = ctid
    if flags & CLONE_VFORK:
        task.machine.sched.wait_vfork(task, child)
    return child.pid


@syscall(57, "fork")
def sys_fork(task: Process, *_: int) -> int:
    return kernel_clone(task, 17, 0, 0, 0, 0)


@syscall(58, "vfork")
def sys_vfork(task: Process, *_: int) -> int:
    return kernel_clone(task, CLONE_VFORK | CLONE_VM | 17, 0, 0, 0, 0)


@syscall(56, "clone")
def sys_clone(task: Process, flags: int, stack: int, ptid: int, ctid: int, tls: int,
              *_: int) -> int:
    return kernel_clone(task, flags, stack, ptid, ctid, tls)


def do_sys_execve(task: Process, path: int, argv: int, envp: int,
                  read_strings: Callable[[Process, int], list[bytes] | int]) -> int:
    """do_execve() from the system call: copy the name and the argv/envp arrays in (with
    `read_strings`, which knows the ABI's pointer size), then replace the image."""
    name = strncpy_from_user(task, path, 4096)
    if isinstance(name, int):
        return name
    args = read_strings(task, argv)
    if isinstance(args, int):
        return args
    env = read_strings(task, envp)
    if isinstance(env, int):
        return env
    if not name:
        return -E.ENOENT
    ret = do_execve(task, name.decode("utf-8", "surrogateescape"), args, env)
    task.need_stop = True
    return ret


@syscall(59, "execve")
def sys_execve(task: Process, path: int, argv: int, envp: int, *_: int) -> int:
    return do_sys_execve(task, path, argv, envp, strings_from_user)


@syscall(61, "wait4")
def sys_wait4(task: Process, pid: int, status: int, options: int, rusage: int,
              *_: int) -> int | None:
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WALL | __WCLONE | __WNOTHREAD):
        return -E.EINVAL
    got = task.machine.sched.do_wait(task, s32(pid), bool(options & WNOHANG),
                                     bool(options & WUNTRACED), bool(options & WCONTINUED))
    if got is None or isinstance(got, int):
        return got
    child, wstatus = got
    task.machine.sched.reap(child)  # kernel_wait4(): the child is released before the copies
    if rusage and not copy_to_user(task, rusage, struct.pack("<4Q", 0, 0, 0, 0) + bytes(112)):
        return -E.EFAULT
    if status and not put_user_u32(task, status, wstatus):
        return -E.EFAULT
    return child.pid


P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
WSTOPPED = WUNTRACED
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3


@syscall(247, "waitid")
def sys_waitid(task: Process, idtype: int, upid: int, infop: int, options: int, rusage: int,
               *_: int) -> int | None:
    """waitid() (kernel/exit.c kernel_waitid): wait for a child of `idtype`/`id` to change
    state and describe it in a siginfo (SIGCHLD, CLD_EXITED/CLD_KILLED/CLD_DUMPED, pid, uid,
    status). WNOWAIT leaves the child waitable; WNOHANG with no child ready returns 0 and
    zeroes the fields. Only exits are modelled: WSTOPPED/WCONTINUED alone never report."""
    idtype, upid = s32(idtype), s32(upid)
    options &= 0xFFFF_FFFF
    if options & ~(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | __WNOTHREAD | __WCLONE
                   | __WALL):
        return -E.EINVAL
    if not options & (WEXITED | WSTOPPED | WCONTINUED):
        return -E.EINVAL
    if idtype == P_ALL:
        pid = -1
    elif idtype == P_PID:
        if upid <= 0:
            return -E.EINVAL
        pid = upid
    elif idtype == P_PGID:
        if upid < 0:
            return -E.EINVAL
        pgid = upid or task.pgid
        pid = 0 if pgid == task.pgid else -pgid
    else:  # P_PIDFD: pidfds are not modelled
        return -E.EINVAL
    sched = task.machine.sched
    got = sched.do_wait(task, pid, True)
    if isinstance(got, int) and got < 0:
        return got  # -ECHILD
    if isinstance(got, int) or not options & WEXITED:  # children, none with news to report
        if not options & WNOHANG:
            return None  # sleep until a child exits
        if infop and not copy_to_user(task, infop, bytes(28)):
            return -E.EFAULT
        return 0
    child, wstatus = got
    if wstatus & 0x7F:
        code, status = (CLD_DUMPED if wstatus & 0x80 else CLD_KILLED), wstatus & 0x7F
    else:
        code, status = CLD_EXITED, (wstatus >> 8) & 0xFF
    if not options & WNOWAIT:
        sched.reap(child)
    if rusage and not copy_to_user(task, rusage, bytes(144)):
        return -E.EFAULT
    info = struct.pack("<iiiiiIi", 17, 0, code, 0, child.pid, child.cred_uid, status)
    if infop and not copy_to_user(task, infop, info):
        return -E.EFAULT
    return 0


@syscall(62, "kill")
def sys_kill(task: Process, pid: int, sig: int, *_: int) -> int:
    return task.machine.sched.kill(task, s32(pid), s32(sig))


__all__ = ["s64"]
