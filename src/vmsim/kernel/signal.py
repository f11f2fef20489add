"""Signals (kernel/signal.c, arch/x86/kernel/signal.c, signal_64.c).

A task has pending signals with their siginfo, a blocked mask and a table
of actions. Before a task returns to user mode the scheduler calls
`do_signal`: the lowest pending unblocked signal is either handled by its
default action (terminate, ignore, stop/continue treated as ignore) or
delivered to a user handler on an `rt_sigframe` (siginfo + ucontext) built
on the user stack, whose return address is the handler's `sa_restorer`;
`rt_sigreturn` reads the frame back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vmsim.kernel.uaccess import copy_from_user, copy_to_user

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE = 1, 2, 3, 4, 5, 6, 7, 8
SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM = 9, 10, 11, 12, 13, 14, 15
SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG = 17, 18, 19, 20, 21, 22, 23
SIGXCPU, SIGXFSZ, SIGWINCH, SIGSYS = 24, 25, 28, 31
SIGRTMIN = 32
#: Signals a faulting instruction raises (dequeue_synchronous_signal()).
SYNCHRONOUS = frozenset({SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP})
NSIG = 64

SIG_DFL, SIG_IGN = 0, 1
SA_NOCLDSTOP, SA_NOCLDWAIT, SA_SIGINFO = 1, 2, 4
SA_ONSTACK, SA_RESTART, SA_NODEFER, SA_RESETHAND = 0x08000000, 0x10000000, 0x40000000, 0x80000000
SA_RESTORER = 0x04000000
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
SS_FLAG_BITS = SS_AUTODISARM
MINSIGSTKSZ = 2048

SI_USER, SI_KERNEL, SI_QUEUE, SI_TKILL = 0, 0x80, -1, -6
CLD_EXITED, CLD_KILLED, CLD_DUMPED, CLD_STOPPED, CLD_CONTINUED = 1, 2, 3, 5, 6

NAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
         7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
         13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
         18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
         24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH",
         29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS"}
#: Default action "ignore" (signal(7)); stop and continue are treated as ignore too.
DEFAULT_IGNORE = {SIGCHLD, SIGURG, SIGWINCH, SIGCONT}
#: Default action "stop" (job control): the task sleeps until SIGCONT or SIGKILL.
DEFAULT_STOP = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU}
#: Default action "core" (the others terminate without a core).
DEFAULT_CORE = {SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ,
                SIGSYS}

# struct rt_sigframe (arch/x86/include/asm/sigframe.h), 64-bit: pretcode, ucontext, siginfo.
UC_FLAGS_OFF = 8
UC_STACK_OFF = 24
MCONTEXT_OFF = 48  # struct sigcontext inside the frame
SIGMASK_OFF = MCONTEXT_OFF + 256
INFO_OFF = SIGMASK_OFF + 8
FRAME_SIZE = INFO_OFF + 128
#: struct sigcontext_64 registers, in order (then cs/gs/fs/ss, err, trapno, oldmask, cr2, fpstate).
SIGCONTEXT_REGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp",
                   "rbx", "rdx", "rax", "rcx", "rsp", "rip", "rflags")
UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 1, 2, 4
#: Flags a user may change through rt_sigreturn (FIX_EFLAGS in signal.c).
FIX_EFLAGS = 0x40DD5  # AC|OF|DF|TF|SF|ZF|AF|PF|CF|RF


@dataclass
class SigAction:
    handler: int = SIG_DFL
    flags: int = 0
    restorer: int = 0
    mask: int = 0


@dataclass
class SigInfo:
    """A queued signal's siginfo: number, code, and the fields its code uses."""

    signo: int
    code: int = SI_USER
    addr: int = 0  # SIGSEGV, SIGBUS, SIGILL, SIGFPE
    raw: bytes = b""  # a siginfo given by the sender (rt_sigqueueinfo), sent as it is
    #: sent to the thread (tkill, tgkill, faults, SIGPIPE: task->pending) rather than to the
    #: process (kill, sigqueue, SIGCHLD, SIGALRM: signal->shared_pending)
    private: bool = False
    pid: int = 0  # SI_USER, SIGCHLD
    uid: int = 0
    status: int = 0  # SIGCHLD
    trapno: int = 0
    error_code: int = 0

    @property
    def name(self) -> str:
        return NAMES.get(self.signo, f"SIG{self.signo}")

    def pack(self) -> bytes:
        """The 128-byte struct siginfo the kernel copies to user space."""
        if self.raw:
            return struct.pack("<i", self.signo) + self.raw[4:128]
        head = struct.pack("<iii4x", self.signo, 0, self.code)
        if self.signo in (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP) and self.code > 0:
            body = struct.pack("<Q", self.addr)
        elif self.signo == SIGCHLD and self.code > 0:
            body = struct.pack("<iIiQQ", self.pid, self.uid, self.status, 0, 0)
        else:
            body = struct.pack("<iI", self.pid, self.uid)
        return (head + body).ljust(128, b"\0")


@dataclass
class SignalState:
    """A task's signal state: pending, blocked, actions, alternate stack."""

    #: the oldest pending instance of each signal ...
    pending: dict[int, SigInfo] = field(default_factory=dict)
    #: ... and the others, oldest first. Real-time signals queue; a standard signal has at
    #: most one instance in each of Linux's two sets (the thread's and the process's), so a
    #: tkill and a kill of the same blocked signal are both delivered.
    queued: dict[int, list[SigInfo]] = field(default_factory=dict)
    blocked: int = 0
    actions: dict[int, SigAction] = field(default_factory=dict)
    #: sas_ss_sp, sas_ss_flags (as last set: 0, SS_DISABLE or SS_AUTODISARM), sas_ss_size;
    #: a size of 0 means there is none
    altstack: tuple[int, int, int] = (0, 0, 0)
    saved_fpu: dict[int, object] = field(default_factory=dict)  # frame address -> FPU state

    def instances(self, signo: int) -> list[SigInfo]:
        head = self.pending.get(signo)
        return [] if head is None else [head, *self.queued.get(signo, ())]

    def enqueue(self, info: SigInfo) -> bool:
        """Add a pending instance (False if a standard signal is already in that set)."""
        got = self.instances(info.signo)
        if info.signo < SIGRTMIN and any(i.private == info.private for i in got):
            return False
        if got:
            self.queued.setdefault(info.signo, []).append(info)
        else:
            self.pending[info.signo] = info
        return True

    def dequeue(self, signo: int) -> SigInfo:
        """Take the oldest instance of `signo` off the queue, the thread's before the
        process's (dequeue_signal() looks at task->pending first)."""
        got = self.instances(signo)
        pick = next((i for i in got if i.private), got[0])
        rest = [i for i in got if i is not pick]
        self.queued.pop(signo, None)
        self.pending.pop(signo)
        if rest:
            self.pending[signo] = rest[0]
            if rest[1:]:
                self.queued[signo] = rest[1:]
        return pick

    def next_signal(self, ready: list[int]) -> int:
        """next_signal(): among deliverable signals, the thread's own first, synchronous
        (fault) signals first within a set, then the lowest number."""
        def key(s: int) -> tuple[bool, bool, int]:
            insts = self.instances(s)
            private = any(i.private for i in insts)
            sync = s in SYNCHRONOUS and any(i.private and i.code > 0 for i in insts)
            return (not private, not sync, s)
        return min(ready, key=key)

    def discard(self, signo: int) -> None:
        """Forget every pending instance of `signo` (it became ignored)."""
        self.pending.pop(signo, None)
        self.queued.pop(signo, None)

    def action(self, signo: int) -> SigAction:
        return self.actions.get(signo) or SigAction()

    def reset_for_exec(self) -> None:
        """flush_signal_handlers(): handled signals go back to SIG_DFL; ignored stay ignored;
        the alternate stack is gone."""
        self.actions = {s: SigAction(SIG_IGN) for s, a in self.actions.items()
                        if a.handler == SIG_IGN}
        self.altstack = (0, self.altstack[1], 0)
        self.saved_fpu.clear()

    def copy(self) -> SignalState:
        """fork(): actions, mask and alternate stack are inherited; pending signals are not."""
        return SignalState(blocked=self.blocked, actions=dict(self.actions),
                           altstack=self.altstack)


def _s32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value


def sigbit(signo: int) -> int:
    return 1 << (signo - 1)


def sig_ignored(task: Process, signo: int) -> bool:
    """sig_ignored(): would the signal be dropped at once? A blocked signal never is (the
    action may change before it is unblocked, or sigwaitinfo may take it)."""
    if signo == SIGKILL or task.signal.blocked & sigbit(signo):
        return False
    act = task.signal.action(signo)
    return act.handler == SIG_IGN or (act.handler == SIG_DFL and signo in DEFAULT_IGNORE)


def prepare_signal(task: Process, signo: int) -> None:
    """prepare_signal(): a stop signal cancels a pending SIGCONT; SIGCONT cancels pending stop
    signals and resumes a stopped task at once, whatever its action or mask; SIGKILL wakes a
    stopped task to die."""
    sig = task.signal
    sched = task.machine.sched
    if signo in DEFAULT_STOP:
        sig.discard(SIGCONT)
    elif signo == SIGCONT:
        for stop in DEFAULT_STOP:
            sig.discard(stop)
        sched.continue_task(task)
    elif signo == SIGKILL and task in sched.stopped:
        sched.continue_task(task, notify=False)


def send_signal(task: Process, info: SigInfo) -> None:
    """__send_signal(): queue `info` (one instance per signal, as for non-realtime signals),
    unless it is ignored; wake the task if it will act on it (or waits for it in
    rt_sigtimedwait)."""
    if not task.alive:
        return
    sig = task.signal
    prepare_signal(task, info.signo)
    if sig_ignored(task, info.signo):
        return
    sig.enqueue(info)
    bit = sigbit(info.signo)
    waiting = task.machine.sched.sigwait_mask.get(task.pid, 0)
    if info.signo == SIGKILL or not sig.blocked & bit or waiting & bit:
        task.need_stop = True
        task.machine.sched.wake(task)


def force_sig_fault(task: Process, signo: int, code: int, addr: int, trapno: int = 14,
                    error_code: int = 0) -> None:
    """force_sig_fault(): a signal caused by the task's own instruction. If it is blocked or
    ignored, the handler is reset to the default and the signal unblocked, so it kills."""
    sig = task.signal
    act = sig.action(signo)
    if sig.blocked & sigbit(signo) or act.handler == SIG_IGN:
        sig.actions[signo] = SigAction()
        sig.blocked &= ~sigbit(signo)
    info = SigInfo(signo, code, addr, trapno=trapno, error_code=error_code, private=True)
    old = [i for i in sig.instances(signo) if not i.private]  # a kill()ed one stays queued
    sig.pending[signo] = info
    sig.queued.pop(signo, None)
    if old:
        sig.queued[signo] = old[:1]
    task.need_stop = True


def force_sigsegv(task: Process, signo: int) -> None:
    """force_sigsegv(): the frame for `signo` could not be built. If that was SIGSEGV itself
    the handler is dropped first (force_fatal_sig), so the task dies instead of looping."""
    if signo == SIGSEGV:
        task.signal.actions[SIGSEGV] = SigAction()
    force_sig_fault(task, SIGSEGV, SI_KERNEL, 0, trapno=0)


def has_pending(task: Process) -> bool:
    """signal_pending(): is there a signal the task would act on now?"""
    sig = task.signal
    return any(s == SIGKILL or s == SIGSTOP or not sig.blocked & sigbit(s) for s in sig.pending)


def do_signal(task: Process) -> None:
    """Act on pending signals before returning to user mode (arch_do_signal_or_restart)."""
    sig = task.signal
    _do_signal(task)
    if task.restore_sigmask_after_signal is not None:  # no handler ran: rt_sigsuspend's mask ends
        sig.blocked = task.restore_sigmask_after_signal
        task.restore_sigmask_after_signal = None


def _end_sigsuspend(task: Process) -> None:
    """A signal is acted on while the task sleeps in rt_sigsuspend: the mask to put back
    (saved_sigmask, TIF_RESTORE_SIGMASK) goes into the handler's frame, or back at once."""
    if task.in_syscall_restart and task.saved_sigmask is not None:
        task.restore_sigmask_after_signal = task.saved_sigmask
        task.saved_sigmask = None


def _do_signal(task: Process) -> None:
    sig = task.signal
    while task.alive:
        ready = sorted(s for s in sig.pending
                       if s in (SIGKILL, SIGSTOP) or not sig.blocked & sigbit(s))
        if not ready:
            return
        signo = sig.next_signal(ready)
        info = sig.dequeue(signo)
        act = sig.action(signo)
        if signo in (SIGKILL, SIGSTOP) or act.handler == SIG_DFL:
            if signo in DEFAULT_IGNORE:
                continue
            if signo in DEFAULT_STOP:
                task.machine.sched.stop_task(task, signo)  # do_signal_stop()
                return
            task.machine.sched.kill_task(task, signo, core=signo in DEFAULT_CORE)
            return
        if act.handler == SIG_IGN:
            continue
        _end_sigsuspend(task)
        restart_interrupted_syscall(task, act)
        if not setup_rt_frame(task, signo, info, act):
            force_sigsegv(task, signo)
            continue
        if act.flags & SA_RESETHAND:
            sig.actions[signo] = SigAction()
        mask = act.mask
        if not act.flags & SA_NODEFER:
            mask |= sigbit(signo)
        sig.blocked |= mask & ~(sigbit(SIGKILL) | sigbit(SIGSTOP))
        # exit_to_user_mode_loop() repeats while signals are pending: every deliverable
        # signal gets its frame now, nested, so the last one's handler runs first.


#: Calls that return -ERESTARTNOHAND when a signal interrupts them: a handler makes them
#: fail with EINTR whatever SA_RESTART says (pause, rt_sigsuspend, rt_sigtimedwait, poll,
#: select, pselect6, ppoll, epoll_wait, epoll_pwait, nanosleep, clock_nanosleep, wait for
#: a timer: the sleeping calls).
RESTART_NOHAND = frozenset({7, 23, 34, 35, 128, 130, 230, 232, 270, 271, 281})
#: The same calls by their i386 numbers (poll, select, pause, nanosleep, rt_sigsuspend,
#: rt_sigtimedwait, clock_nanosleep, epoll_wait, pselect6, ppoll, epoll_pwait).
RESTART_NOHAND_32 = frozenset({168, 142, 29, 162, 179, 177, 267, 256, 308, 309, 319})


def restart_interrupted_syscall(task: Process, act: SigAction) -> None:
    """handle_signal()'s restart decision for a task blocked in a system call, which is
    parked on its `syscall` instruction with rax still the call's number. -ERESTARTSYS
    calls (read, write, wait4, ...) repeat after the handler with SA_RESTART and fail with
    EINTR without it; -ERESTARTNOHAND calls always fail with EINTR. A call that had already
    done part of its work (a pipe write) returns that count instead (`task_partial`)."""
    if not task.in_syscall_restart:
        return
    task.in_syscall_restart = False
    sched = task.machine.sched
    sched.wakeups.pop(task.pid, None)  # the sleep ends here (rt_sigtimedwait)
    sched.sigwait_mask.pop(task.pid, None)
    sched.sleep_until.pop(task.pid, None)
    regs = task.regs
    partial = sched.partial.pop(task.pid, None)
    if partial is not None:
        regs.set("rip", regs.get("rip") + 2)
        regs.set("rax", partial[1])
        return
    nohand = RESTART_NOHAND_32 if task.machine.layout.word == 4 else RESTART_NOHAND
    if act.flags & SA_RESTART and regs.get("rax") not in nohand:
        return
    regs.set("rip", regs.get("rip") + 2)
    regs.set("rax", -4)  # EINTR


def on_sig_stack(task: Process, sp: int) -> bool:
    """on_sig_stack(): is `sp` on the alternate stack? Never with SS_AUTODISARM (the stack is
    disarmed while a handler runs on it)."""
    ss_sp, ss_flags, ss_size = task.signal.altstack
    if ss_flags & SS_AUTODISARM:
        return False
    return ss_sp < sp and sp - ss_sp <= ss_size


def sas_ss_flags(task: Process, sp: int) -> int:
    """sas_ss_flags(): SS_DISABLE without an alternate stack, SS_ONSTACK when `sp` is on it."""
    if not task.signal.altstack[2]:
        return SS_DISABLE
    return SS_ONSTACK if on_sig_stack(task, sp) else 0


def do_sigaltstack(task: Process, new: tuple[int, int, int], sp: int) -> int:
    """do_sigaltstack() for a new (ss_sp, ss_flags, ss_size): 0 or -errno (EPERM while on
    the stack, EINVAL for a bad mode, ENOMEM below MINSIGSTKSZ)."""
    ss_sp, ss_flags, ss_size = new
    if on_sig_stack(task, sp):
        return -1  # EPERM
    mode = ss_flags & ~SS_FLAG_BITS
    if mode not in (0, SS_ONSTACK, SS_DISABLE):
        return -22  # EINVAL
    if mode == SS_DISABLE:
        ss_sp = ss_size = 0
    elif ss_size < MINSIGSTKSZ:
        return -12  # ENOMEM
    task.signal.altstack = (ss_sp, ss_flags, ss_size)
    return 0


def _altstack_for(task: Process, act: SigAction, sp: int) -> int:
    """get_sigframe(): with SA_ONSTACK, the top of the alternate stack unless already on it."""
    ss_sp, _flags, ss_size = task.signal.altstack
    if act.flags & SA_ONSTACK and sas_ss_flags(task, sp) == 0:
        return ss_sp + ss_size
    return sp


def setup_rt_frame(task: Process, signo: int, info: SigInfo, act: SigAction) -> bool:
    """x64_setup_rt_frame(): the frame below the red zone, 16-byte aligned minus 8 (as after a
    call); False if it cannot be written (the task then dies of SIGSEGV)."""
    if task.machine.layout.word == 4:  # an i386 task: ia32_setup_rt_frame()
        from vmsim.kernel.signal_i386 import ia32_setup_rt_frame

        return ia32_setup_rt_frame(task, signo, info, act)
    regs = task.regs
    sp = regs.get("rsp")
    sp = _altstack_for(task, act, sp - 128)
    frame = ((sp - FRAME_SIZE) & ~0xF) - 8
    values = {name: regs.get(name) for name in SIGCONTEXT_REGS}
    mcontext = struct.pack("<18Q", *(values[n] for n in SIGCONTEXT_REGS))
    mcontext += struct.pack("<HHHH", regs.get("cs"), 0, 0, regs.get("ss"))
    saved_mask = task.signal.blocked
    if task.restore_sigmask_after_signal is not None:  # rt_sigsuspend: the mask to go back to
        saved_mask = task.restore_sigmask_after_signal
        task.restore_sigmask_after_signal = None
    mcontext += struct.pack("<QQQQQ", info.error_code, info.trapno, saved_mask & 0xFFFFFFFF,
                            info.addr if info.trapno == 14 else 0, 0)
    mcontext = mcontext.ljust(256, b"\0")
    ss_sp, ss_flags, ss_size = task.signal.altstack  # __save_altstack(): as last set
    ucontext = struct.pack("<QQQi4xQ", UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0, ss_sp,
                           _s32(ss_flags), ss_size)
    body = (struct.pack("<Q", act.restorer) + ucontext + mcontext
            + struct.pack("<Q", saved_mask) + info.pack())
    assert len(body) == FRAME_SIZE
    if not copy_to_user(task, frame, body):
        return False
    saved = task.signal.saved_fpu
    user_sp = values["rsp"]
    for stale in [f for f in saved if f < user_sp]:
        del saved[stale]  # frames below the interrupted sp were left by siglongjmp
    while len(saved) >= 256:
        del saved[next(iter(saved))]
    saved[frame] = task.machine.cpu.save_fpu(task)
    if ss_flags & SS_AUTODISARM:
        task.signal.altstack = (0, SS_DISABLE, 0)  # sas_ss_reset() until rt_sigreturn
    regs.set("rdi", signo)
    regs.set("rsi", frame + INFO_OFF)
    regs.set("rdx", frame + 8)
    regs.set("rax", 0)
    regs.set("rsp", frame)
    regs.set("rip", act.handler)
    regs.set("rflags", regs.get("rflags") & ~(0x100 | 0x400 | 0x40000))  # TF, DF, AC
    return True


def sys_rt_sigreturn(task: Process) -> int:
    """rt_sigreturn(): restore the registers and mask saved in the frame at rsp - 8."""
    regs = task.regs
    frame = regs.get("rsp") - 8
    raw = copy_from_user(task, frame, FRAME_SIZE)
    if raw is None:
        force_sig_fault(task, SIGSEGV, SI_KERNEL, 0)
        return 0
    fpu = task.signal.saved_fpu.pop(frame, None)
    if fpu is not None:
        task.machine.cpu.restore_fpu(task, fpu)
    values = struct.unpack_from("<18Q", raw, MCONTEXT_OFF)
    old_flags = regs.get("rflags")
    for name, value in zip(SIGCONTEXT_REGS, values, strict=True):
        if name == "rflags":
            value = (old_flags & ~FIX_EFLAGS) | (value & FIX_EFLAGS)
        regs.set(name, value)
    (blocked,) = struct.unpack_from("<Q", raw, SIGMASK_OFF)
    task.signal.blocked = blocked & ~(sigbit(SIGKILL) | sigbit(SIGSTOP))
    ss_sp, ss_flags, ss_size = struct.unpack_from("<Qi4xQ", raw, UC_STACK_OFF)
    do_sigaltstack(task, (ss_sp, ss_flags & 0xFFFF_FFFF, ss_size),  # restore_altstack()
                   values[SIGCONTEXT_REGS.index("rsp")])
    task.need_stop = True
    return values[SIGCONTEXT_REGS.index("rax")]
