"""Signal system calls (kernel/signal.c, arch/x86/kernel/signal_64.c)."""

from __future__ import annotations

import errno as E
import struct
from typing import TYPE_CHECKING

from vmsim.kernel.signal import (
    NSIG,
    SA_RESTORER,
    SI_TKILL,
    SIG_DFL,
    SIG_IGN,
    SIGKILL,
    SIGSTOP,
    SS_FLAG_BITS,
    SigAction,
    SigInfo,
    _s32,
    do_sigaltstack,
    has_pending,
    sas_ss_flags,
    send_signal,
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
    return do_rt_sigaction(task, sig, act, oact, sigsetsize)


def do_rt_sigaction(task: Process, sig: int, act: int, oact: int, sigsetsize: int,
                    layout: str = "<QQQQ", word: int = (1 << 64) - 1) -> int:
    """do_sigaction(): `layout` is the ABI's struct sigaction (handler, flags, restorer,
    mask), `word` its pointer mask. Setting SIG_IGN (or SIG_DFL of a signal whose default
    is to ignore it) discards the pending signal."""
    signo = s32(sig)
    if sigsetsize != 8 or not 1 <= signo <= NSIG:
        return -E.EINVAL
    new = None
    if act:
        raw = copy_from_user(task, act, struct.calcsize(layout))
        if raw is None:
            return -E.EFAULT
        handler, flags, restorer, mask = struct.unpack(layout, raw)
        if signo in (SIGKILL, SIGSTOP):
            return -E.EINVAL
        new = SigAction(handler, flags & 0xFFFF_FFFF, restorer, mask & ~UNBLOCKABLE)
    if oact:
        cur = task.signal.action(signo)
        raw = struct.pack(layout, cur.handler & word, cur.flags & word, cur.restorer & word,
                          cur.mask)
        if not copy_to_user(task, oact, raw):
            return -E.EFAULT
    if new is not None:
        task.signal.actions[signo] = new
        if new.handler == SIG_IGN or (new.handler == SIG_DFL and signo in (17, 18, 23, 28)):
            task.signal.discard(signo)
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
    """sys_pause(): sleep until a signal is acted on; a handler makes it fail with EINTR
    (-ERESTARTNOHAND, see signal.RESTART_NOHAND)."""
    if has_pending(task):
        task.need_stop = True
        return -E.EINTR
    return None


@syscall(128, "rt_sigtimedwait")
def sys_rt_sigtimedwait(task: Process, uthese: int, uinfo: int, uts: int, sigsetsize: int,
                        *_: int) -> int | None:
    """do_sigtimedwait(): take a pending signal of the set off the queue (its siginfo to
    `uinfo`) and return its number, without running its action. With none pending, sleep
    (the set's signals wake the task although blocked) until one comes (its number), the
    timeout passes (-EAGAIN) or another signal is acted on (-EINTR)."""
    sched = task.machine.sched
    if sigsetsize != 8:
        return -E.EINVAL
    raw = copy_from_user(task, uthese, 8)
    if raw is None:
        return -E.EFAULT
    these = struct.unpack("<Q", raw)[0] & ~UNBLOCKABLE
    timeout = None
    if uts:
        ts = copy_from_user(task, uts, 16)
        if ts is None:
            return -E.EFAULT
        sec, nsec = struct.unpack("<qq", ts)
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            return -E.EINVAL
        timeout = sec * 1_000_000_000 + nsec
    ready = sorted(s for s in task.signal.pending if these & sigbit(s))
    if ready:
        sched.wakeups.pop(task.pid, None)
        sched.sigwait_mask.pop(task.pid, None)
        info = task.signal.dequeue(ready[0])
        if uinfo and not copy_to_user(task, uinfo, info.pack()):
            return -E.EFAULT
        return info.signo
    now = task.machine.clock_ns
    if task.pid in sched.sigwait_mask:  # woken again while waiting
        if task.pid not in sched.wakeups and timeout is not None:
            sched.sigwait_mask.pop(task.pid, None)
            return -E.EAGAIN  # the timer fired
        if has_pending(task):
            sched.wakeups.pop(task.pid, None)
            sched.sigwait_mask.pop(task.pid, None)
            task.need_stop = True
            return -E.EINTR
        return None
    if timeout == 0:
        return -E.EAGAIN
    sched.sigwait_mask[task.pid] = these
    if timeout is not None:
        sched.wakeups[task.pid] = now + timeout
    return None


# ---- timers -----------------------------------------------------------------------------------
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
NSEC_PER_USEC, NSEC_PER_SEC = 1000, 1_000_000_000


def _timeval_ns(sec: int, usec: int) -> int:
    return sec * NSEC_PER_SEC + usec * NSEC_PER_USEC


def _pack_itimerval(value_ns: int, interval_ns: int) -> bytes:
    """struct itimerval; a remaining time rounds up to the next microsecond."""
    def tv(ns: int) -> tuple[int, int]:
        us = (ns + NSEC_PER_USEC - 1) // NSEC_PER_USEC
        return us // 1_000_000, us % 1_000_000
    return struct.pack("<qqqq", *tv(interval_ns), *tv(value_ns))


@syscall(37, "alarm")
def sys_alarm(task: Process, seconds: int, *_: int) -> int:
    """alarm_setitimer(): ITIMER_REAL for `seconds` (0 cancels); returns the seconds left
    on the old timer, rounded to the nearest, and 1 rather than 0 if it was armed."""
    seconds &= 0xFFFF_FFFF
    old, _interval = task.machine.sched.set_itimer_real(task, seconds * NSEC_PER_SEC, 0)
    if not old:
        return 0
    us = (old + NSEC_PER_USEC - 1) // NSEC_PER_USEC
    sec, rem = divmod(us, 1_000_000)
    if rem >= 500_000:
        sec += 1
    return sec or 1


@syscall(38, "setitimer")
def sys_setitimer(task: Process, which: int, value: int, ovalue: int, *_: int) -> int:
    """do_setitimer(): ITIMER_REAL on the virtual clock; the CPU-time timers are accepted
    but never fire (vmsim does not account user CPU time per process yet)."""
    which = s32(which)
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -E.EINVAL
    new = (0, 0)
    if value:
        raw = copy_from_user(task, value, 32)
        if raw is None:
            return -E.EFAULT
        isec, iusec, vsec, vusec = struct.unpack("<qqqq", raw)
        if not (0 <= iusec < 1_000_000 and 0 <= vusec < 1_000_000) or isec < 0 or vsec < 0:
            return -E.EINVAL
        new = (_timeval_ns(vsec, vusec), _timeval_ns(isec, iusec))
    if which == ITIMER_REAL:
        old = task.machine.sched.set_itimer_real(task, *new)
    else:
        old = (0, 0)
    if ovalue and not copy_to_user(task, ovalue, _pack_itimerval(*old)):
        return -E.EFAULT
    return 0


@syscall(36, "getitimer")
def sys_getitimer(task: Process, which: int, value: int, *_: int) -> int:
    which = s32(which)
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -E.EINVAL
    cur = task.machine.sched.get_itimer_real(task) if which == ITIMER_REAL else (0, 0)
    return 0 if copy_to_user(task, value, _pack_itimerval(*cur)) else -E.EFAULT


def do_sys_sigaltstack(task: Process, uss: int, uoss: int, layout: str = "<Qi4xQ",
                       word: int = (1 << 64) - 1) -> int:
    """sys_sigaltstack(): the new stack is read first, set, and only then the old one is
    written out; the old flags are sas_ss_flags(sp) plus SS_AUTODISARM if it was asked.
    `layout` is the ABI's stack_t (ss_sp, ss_flags, ss_size), `word` its pointer mask."""
    sp = task.regs.get("rsp")
    ss_sp, ss_flags, ss_size = task.signal.altstack
    flags = _s32(sas_ss_flags(task, sp) | (ss_flags & SS_FLAG_BITS))
    old = struct.pack(layout, ss_sp & word, flags, ss_size & word)
    if uss:
        raw = copy_from_user(task, uss, struct.calcsize(layout))
        if raw is None:
            return -E.EFAULT
        new_sp, new_flags, new_size = struct.unpack(layout, raw)
        err = do_sigaltstack(task, (new_sp, new_flags & 0xFFFF_FFFF, new_size), sp)
        if err:
            return err
    if uoss and not copy_to_user(task, uoss, old):
        return -E.EFAULT
    return 0


@syscall(131, "sigaltstack")
def sys_sigaltstack(task: Process, uss: int, uoss: int, *_: int) -> int:
    return do_sys_sigaltstack(task, uss, uoss)


def _sigqueueinfo(task: Process, pid: int, tid: int, signo: int, uinfo: int) -> int:
    """do_rt_sigqueueinfo(): send `signo` with the caller's siginfo (si_value and all). Only
    codes below 0 other than SI_TKILL may be forged for another process (else EPERM)."""
    if not 0 <= signo <= NSIG:
        return -E.EINVAL
    raw = copy_from_user(task, uinfo, 128)
    if raw is None:
        return -E.EFAULT
    (code,) = struct.unpack_from("<i", raw, 8)
    if (code >= 0 or code == SI_TKILL) and pid != task.pid:
        return -E.EPERM
    sched = task.machine.sched
    target = sched.find(tid if tid else pid)
    if target is None or (tid and target.pid != pid):
        return -E.ESRCH
    if signo:
        send_signal(target, SigInfo(signo, code, raw=raw, private=bool(tid)))
        if target is task:
            task.need_stop = True
    return 0


@syscall(129, "rt_sigqueueinfo")
def sys_rt_sigqueueinfo(task: Process, pid: int, sig: int, uinfo: int, *_: int) -> int:
    return _sigqueueinfo(task, s32(pid), 0, s32(sig), uinfo)


@syscall(297, "rt_tgsigqueueinfo")
def sys_rt_tgsigqueueinfo(task: Process, tgid: int, tid: int, sig: int, uinfo: int,
                          *_: int) -> int:
    if s32(tgid) <= 0 or s32(tid) <= 0:
        return -E.EINVAL
    return _sigqueueinfo(task, s32(tgid), s32(tid), s32(sig), uinfo)


@syscall(200, "tkill")
def sys_tkill(task: Process, tid: int, sig: int, *_: int) -> int:
    if s32(tid) <= 0:
        return -E.EINVAL
    return task.machine.sched.kill(task, s32(tid), s32(sig), exact=True)


@syscall(234, "tgkill")
def sys_tgkill(task: Process, tgid: int, tid: int, sig: int, *_: int) -> int:
    if s32(tgid) <= 0 or s32(tid) <= 0:
        return -E.EINVAL
    if s32(tgid) != s32(tid):
        return -E.ESRCH
    return task.machine.sched.kill(task, s32(tid), s32(sig), exact=True)


__all__ = ["SA_RESTORER"]
