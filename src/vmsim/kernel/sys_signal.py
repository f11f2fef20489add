"""Signal system calls (kernel/signal.c, arch/x86/kernel/signal_64.c)."""

from __future__ import annotations

import errno as E
import struct
from typing import TYPE_CHECKING

from vmsim.kernel.signal import (
    MINSIGSTKSZ,
    NSIG,
    SA_RESTORER,
    SIG_DFL,
    SIG_IGN,
    SIGKILL,
    SIGSTOP,
    SS_DISABLE,
    SS_ONSTACK,
    SigAction,
    has_pending,
    sigbit,
    sys_rt_sigreturn,
)
from vmsim.kernel.syscalls import s32, syscall
from vmsim.kernel.uaccess import copy_from_user, copy_to_user

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
UNBLOCKABLE = sigbit(SIGKILL) | sigbit(SIGSTOP)


@syscall(13, "rt_sigaction")
def sys_rt_sigaction(task: Process, sig: int, act: int, oact: int, sigsetsize: int,
                     *_: int) -> int:
    signo = s32(sig)
    if sigsetsize != 8:
        return -E.EINVAL
    if not 1 <= signo <= NSIG:
        return -E.EINVAL
    new = None
    if act:
        raw = copy_from_user(task, act, 32)
        if raw is None:
            return -E.EFAULT
        handler, flags, restorer, mask = struct.unpack("<QQQQ", raw)
        if signo in (SIGKILL, SIGSTOP):
            return -E.EINVAL
        new = SigAction(handler, flags & 0xFFFF_FFFF, restorer, mask & ~UNBLOCKABLE)
    if oact:
        cur = task.signal.action(signo)
        raw = struct.pack("<QQQQ", cur.handler, cur.flags, cur.restorer, cur.mask)
        if not copy_to_user(task, oact, raw):
            return -E.EFAULT
    if new is not None:
        task.signal.actions[signo] = new
        if new.handler == SIG_IGN or (new.handler == SIG_DFL and signo in (17, 23, 28)):
            task.signal.pending.pop(signo, None)  # setting SIG_IGN discards a pending signal
    return 0


@syscall(14, "rt_sigprocmask")
def sys_rt_sigprocmask(task: Process, how: int, nset: int, oset: int, sigsetsize: int,
                       *_: int) -> int:
    if sigsetsize != 8:
        return -E.EINVAL
    sig = task.signal
    old = sig.blocked
    if nset:
        raw = copy_from_user(task, nset, 8)
        if raw is None:
            return -E.EFAULT
        (mask,) = struct.unpack("<Q", raw)
        how = s32(how)
        if how == SIG_BLOCK:
            new = old | mask
        elif how == SIG_UNBLOCK:
            new = old & ~mask
        elif how == SIG_SETMASK:
            new = mask
        else:
            return -E.EINVAL
        sig.blocked = new & ~UNBLOCKABLE
        if has_pending(task):
            task.need_stop = True
    if oset and not copy_to_user(task, oset, struct.pack("<Q", old)):
        return -E.EFAULT
    return 0


@syscall(127, "rt_sigpending")
def sys_rt_sigpending(task: Process, uset: int, sigsetsize: int, *_: int) -> int:
    if sigsetsize > 8:
        return -E.EINVAL
    mask = 0
    for s in task.signal.pending:
        mask |= sigbit(s)
    return 0 if copy_to_user(task, uset, struct.pack("<Q", mask & task.signal.blocked)[:sigsetsize]) else -E.EFAULT


@syscall(15, "rt_sigreturn")
def sys_rt_sigreturn_entry(task: Process, *_: int) -> int:
    return sys_rt_sigreturn(task)


@syscall(130, "rt_sigsuspend")
def sys_rt_sigsuspend(task: Process, uset: int, sigsetsize: int, *_: int) -> int | None:
    """Wait with a temporary mask until a signal is delivered; then -EINTR (the handler runs
    with the temporary mask in force, and the old mask returns with rt_sigreturn)."""
    if sigsetsize != 8:
        return -E.EINVAL
    raw = copy_from_user(task, uset, 8)
    if raw is None:
        return -E.EFAULT
    if task.saved_sigmask is None:
        task.saved_sigmask = task.signal.blocked
        task.signal.blocked = struct.unpack("<Q", raw)[0] & ~UNBLOCKABLE
    if has_pending(task):
        task.restore_sigmask_after_signal = task.saved_sigmask
        task.saved_sigmask = None
        task.need_stop = True
        return -E.EINTR
    return None


@syscall(34, "pause")
def sys_pause(task: Process, *_: int) -> int | None:
    if has_pending(task):
        task.need_stop = True
        return -E.EINTR
    return None


@syscall(131, "sigaltstack")
def sys_sigaltstack(task: Process, uss: int, uoss: int, *_: int) -> int:
    sig = task.signal
    sp = task.regs.get("rsp")
    ss_sp, ss_flags, ss_size = sig.altstack
    on_stack = not ss_flags & SS_DISABLE and ss_sp < sp <= ss_sp + ss_size
    if uoss:
        flags = SS_ONSTACK if on_stack else (ss_flags & SS_DISABLE)
        if not copy_to_user(task, uoss, struct.pack("<Qi4xQ", ss_sp, flags, ss_size)):
            return -E.EFAULT
    if uss:
        raw = copy_from_user(task, uss, 24)
        if raw is None:
            return -E.EFAULT
        new_sp, new_flags, new_size = struct.unpack("<Qi4xQ", raw)
        if on_stack:
            return -E.EPERM
        if new_flags & ~(SS_DISABLE | SS_ONSTACK | (1 << 31)):
            return -E.EINVAL
        if new_flags & SS_DISABLE:
            sig.altstack = (0, SS_DISABLE, 0)
        else:
            if new_size < MINSIGSTKSZ:
                return -E.ENOMEM
            sig.altstack = (new_sp, 0, new_size)
    return 0


@syscall(200, "tkill")
def sys_tkill(task: Process, tid: int, sig: int, *_: int) -> int:
    return task.machine.sched.kill(task, s32(tid), s32(sig), exact=True)


@syscall(234, "tgkill")
def sys_tgkill(task: Process, tgid: int, tid: int, sig: int, *_: int) -> int:
    if s32(tgid) <= 0 or s32(tid) <= 0:
        return -E.EINVAL
    if s32(tgid) != s32(tid):
        return -E.ESRCH
    return task.machine.sched.kill(task, s32(tid), s32(sig), exact=True)


__all__ = ["SA_RESTORER"]
