"""Tasks on one CPU: run queue, sleeping and waking, fork, exit and wait
(kernel/sched/core.c, kernel/fork.c, kernel/exit.c, kernel/signal.c's kill paths).

The scheduler is a round robin. A task runs until it blocks (a system call
returned "block": it sleeps on a wait queue and repeats the call when
woken), stops for the kernel (exec, a signal to deliver, exit), or uses up
its slice of instructions when others are runnable. Each switch loads the
task's page-table root, which flushes the TLB. Before a task returns to
user mode its pending signals are acted on (`do_signal`).
"""

from __future__ import annotations

import errno as E
import time
from collections import deque
from typing import TYPE_CHECKING

from vmsim.kernel.files import fput, get_file
from vmsim.kernel.signal import (
    CLD_CONTINUED,
    CLD_DUMPED,
    CLD_EXITED,
    CLD_KILLED,
    CLD_STOPPED,
    NSIG,
    SA_NOCLDSTOP,
    SA_NOCLDWAIT,
    SI_KERNEL,
    SI_TKILL,
    SI_USER,
    SIG_IGN,
    SIGALRM,
    SIGCHLD,
    SIGCONT,
    SIGKILL,
    SigInfo,
    do_signal,
    has_pending,
    send_signal,
    sigbit,
)
from vmsim.kernel.uaccess import put_user_u32

if TYPE_CHECKING:
    from vmsim.kernel.ptrace import CpuEngine
    from vmsim.kernel.task import Process

CLONE_VM = 0x100
#: Instructions a task may run while others wait (about a millisecond of a real CPU).
TIME_SLICE = 200_000
#: Virtual time a dispatch costs: a slice used up counts as a millisecond, any other stop
#: (a system call that blocks or needs the kernel) as a microsecond. The clock is virtual so
#: that runs are deterministic; sleeps and timers advance it when every task waits.
SLICE_NS, STOP_NS = 1_000_000, 1_000


class BudgetExceeded(RuntimeError):
    """The machine's time budget ran out (the sandbox's limit on a runaway guest)."""


class Scheduler:
    """The run queue and the process-lifecycle paths of one machine."""

    def __init__(self, machine: object) -> None:
        self.machine = machine
        self.runqueue: deque[Process] = deque()
        self.sleeping: set[Process] = set()
        #: tasks stopped by job control (SIGSTOP, SIGTSTP, ...) until SIGCONT or SIGKILL
        self.stopped: set[Process] = set()
        #: stop (signal number) or continue (SIGCONT) events a parent has yet to wait for
        self.stop_reports: dict[int, int] = {}
        self.vfork_waiters: dict[int, Process] = {}  # child pid -> parent
        #: ITIMER_REAL of each process: pid -> (expiry on the virtual clock, interval), in ns
        self.itimer_real: dict[int, tuple[int, int]] = {}
        #: Sleeping calls with a timeout (rt_sigtimedwait): pid -> when to wake, in ns
        self.wakeups: dict[int, int] = {}
        #: rt_sigtimedwait's set while its caller sleeps: these wake it although blocked
        self.sigwait_mask: dict[int, int] = {}
        #: The deadline of a sleep in progress (nanosleep): pid -> ns on the virtual clock
        self.sleep_until: dict[int, int] = {}
        #: Work a blocked call already did (a pipe write's bytes): pid -> (what, count)
        self.partial: dict[int, tuple[object, int]] = {}

    # ---- queueing ------------------------------------------------------------------
    def add(self, task: Process) -> None:
        self.runqueue.append(task)

    def wake(self, task: Process) -> None:
        """try_to_wake_up(): a sleeping task becomes runnable."""
        if task in self.sleeping:
            self.sleeping.discard(task)
            if task.alive:
                self.runqueue.append(task)

    def find(self, pid: int) -> Process | None:
        proc = self.machine.processes.get(pid)  # type: ignore[attr-defined]
        return proc if proc is not None and proc.alive else None

    # ---- timers on the virtual clock ------------------------------------------------------
    def next_timer(self) -> int | None:
        """The earliest expiry of an armed timer or timed sleep (ns), or None."""
        times = [t for t, _ in self.itimer_real.values()] + list(self.wakeups.values())
        return min(times) if times else None

    def fire_timers(self) -> None:
        """hrtimer expiry: ITIMER_REAL sends SIGALRM (and re-arms with its interval); a timed
        sleep's task is woken to find its time is up."""
        now = self.machine.clock_ns  # type: ignore[attr-defined]
        for pid, (expires, interval) in sorted(self.itimer_real.items()):
            if expires > now:
                continue
            if interval:
                self.itimer_real[pid] = (expires + interval * max(1, (now - expires) // interval
                                                                  + 1), interval)
            else:
                del self.itimer_real[pid]
            task = self.find(pid)
            if task is not None:
                send_signal(task, SigInfo(SIGALRM, SI_KERNEL))
        for pid, when in sorted(self.wakeups.items()):
            if when <= now:
                del self.wakeups[pid]
                task = self.find(pid)
                if task is not None:
                    self.wake(task)

    def sleep(self, task: Process, deadline: int) -> int | None:
        """hrtimer_nanosleep() on the virtual clock: the caller blocks (None) until the clock
        reaches `deadline`, then the repeated call returns 0. A signal handler ends the
        sleep early with EINTR (signal.restart_interrupted_syscall)."""
        now = self.machine.clock_ns  # type: ignore[attr-defined]
        pid = task.pid
        if pid not in self.sleep_until:
            if deadline <= now:
                task.need_stop = True  # a zero sleep still lets the others run
                return 0
            self.sleep_until[pid] = self.wakeups[pid] = deadline
            return None
        if now >= self.sleep_until[pid]:
            del self.sleep_until[pid]
            self.wakeups.pop(pid, None)
            return 0
        return None

    # ---- the loop --------------------------------------------------------------------
    def run(self, cpu: CpuEngine, deadline: float = 0.0, kill_sleepers: bool = True) -> None:
        """Run tasks until none is runnable and no timer can wake one. Past `deadline`
        (time.monotonic(); 0: none) every task is killed and BudgetExceeded raised. Tasks
        left asleep with nothing to wake them are killed, unless `kill_sleepers` is False
        (a caller that wants to look at them first)."""
        machine = self.machine
        while True:
            self.fire_timers()
            if not self.runqueue:
                nxt = self.next_timer()
                if nxt is None or not (self.sleeping or self.itimer_real):
                    break
                machine.clock_ns = max(machine.clock_ns, nxt)  # type: ignore[attr-defined]
                continue
            task = self.runqueue.popleft()
            if not task.alive:
                continue
            do_signal(task)
            if not task.alive or task in self.sleeping or task in self.stopped:
                continue
            if task.vfork_child is not None:  # parked in vfork until the child execs or exits
                self.sleeping.add(task)
                continue
            task.need_stop = False
            timeout = 0
            if deadline:
                timeout = max(1, int((deadline - time.monotonic()) * 1e6))
            machine.current = task  # type: ignore[attr-defined]
            timed = self.runqueue or self.itimer_real or self.wakeups
            cpu.run(task, TIME_SLICE if timed else 0, timeout)
            machine.current = None  # type: ignore[attr-defined]
            stopped = task.need_stop or task.in_syscall_restart or not task.alive
            machine.clock_ns += STOP_NS if stopped else SLICE_NS  # type: ignore[attr-defined]
            if not task.alive:
                continue
            if task.in_syscall_restart:
                self.sleeping.add(task)
                if any(s == SIGKILL or not task.signal.blocked & sigbit(s)
                       or self.sigwait_mask.get(task.pid, 0) & sigbit(s)
                       for s in task.signal.pending):
                    self.wake(task)
            elif has_pending(task):
                self.runqueue.appendleft(task)  # a signal to itself: acted on before user mode
            else:
                self.runqueue.append(task)
            over = machine.max_instructions and machine.insns >= machine.max_instructions  # type: ignore[attr-defined]
            if over or (deadline and time.monotonic() >= deadline):
                for other in {t.pid: t for t in [*self.runqueue, *self.sleeping, task]}.values():
                    self.exit_task(other, 0, signo=SIGKILL)
                self.runqueue.clear()
                self.sleeping.clear()
                raise BudgetExceeded(("instruction" if over else "time")
                                     + " budget exhausted: every task was killed")
        if (self.sleeping or self.stopped) and kill_sleepers:
            asleep = sorted(self.sleeping | self.stopped, key=lambda t: t.pid)
            names = ", ".join(f"{t.comm}[{t.pid}]" for t in asleep)
            machine.kernel_log.append(f"vmsim: every task is asleep ({names}): killed")  # type: ignore[attr-defined]
            for task in asleep:
                self.sleeping.discard(task)
                self.stopped.discard(task)
                self.exit_task(task, 0, signo=SIGKILL)

    # ---- fork -------------------------------------------------------------------------
    def copy_process(self, parent: Process, exit_signal: int = SIGCHLD,
                     clone_flags: int = 0) -> Process | int:
        """copy_process(): a child with copies of the parent's state (COW memory, fd
        references); with CLONE_VM (vfork) the child uses the parent's mm itself, as
        copy_mm() does, so its stores before _exit or execve are the parent's."""
        if clone_flags & CLONE_VM:
            machine = self.machine
            mm = parent.mm
            mm.mm_users += 1
            child = machine._new_process(mm, ppid=parent.pid, comm=parent.comm)  # type: ignore[attr-defined]
            child.files = dict(parent.files)
        else:
            child = parent.fork()
        if isinstance(child, int):
            return child
        for f in child.files.values():
            get_file(f)
        child.cloexec = set(parent.cloexec)
        child.signal = parent.signal.copy()
        child.cwd = parent.cwd
        child.umask = parent.umask
        child.nofile = parent.nofile
        child.pgid, child.sid = parent.pgid, parent.sid
        child.exit_signal = exit_signal if 0 < exit_signal <= NSIG else 0
        child.exe = parent.exe
        child.mm.rlimits = type(parent.mm.rlimits)(**vars(parent.mm.rlimits))
        self.machine.cpu.copy_thread(parent, child)  # type: ignore[attr-defined]
        self.runqueue.append(child)
        return child

    def wait_vfork(self, parent: Process, child: Process) -> None:
        """CLONE_VFORK: the parent sleeps until the child execs or exits."""
        parent.vfork_child = child.pid
        self.vfork_waiters[child.pid] = parent
        parent.need_stop = True

    def vfork_done(self, child: Process) -> None:
        """mm_release(): the vfork child has exec'd or exited; the parent runs again and its
        mm (if the child shared it) is the parent's alone."""
        parent = self.vfork_waiters.pop(child.pid, None)
        if parent is not None:
            parent.vfork_child = None
            parent.mm.owner_pid = parent.pid
            self.wake(parent)

    # ---- exit ---------------------------------------------------------------------------
    def exit_task(self, task: Process, code: int, signo: int = 0, core: bool = False) -> None:
        """do_exit(): release files and memory, reparent children, notify the parent."""
        if not task.alive:
            return
        machine = self.machine
        if task.clear_child_tid:
            put_user_u32(task, task.clear_child_tid, 0)
        for fd in sorted(task.files):
            fput(task, task.files[fd])
        task.files.clear()
        task.cloexec.clear()
        # vmsim writes no core files (as with RLIMIT_CORE 0): no WCOREDUMP bit, CLD_KILLED
        core = False
        task.wait_status = signo if signo else (code & 0xFF) << 8
        machine.do_exit(task, exit_code=code if not signo else None,  # type: ignore[attr-defined]
                        kill_signal=signo or None)
        self.sleeping.discard(task)
        cpu = machine.cpu  # type: ignore[attr-defined]
        if cpu is not None:
            cpu.release(task)
        task.need_stop = True
        self.itimer_real.pop(task.pid, None)
        self.wakeups.pop(task.pid, None)
        self.sigwait_mask.pop(task.pid, None)
        self.partial.pop(task.pid, None)
        self.sleep_until.pop(task.pid, None)
        self.stopped.discard(task)
        self.stop_reports.pop(task.pid, None)
        self.vfork_done(task)
        reaper = 1 if 1 in machine.processes and task.pid != 1 else 0  # type: ignore[attr-defined]
        for other in list(machine.processes.values()) + list(machine.zombies.values()):  # type: ignore[attr-defined]
            if other.ppid == task.pid and other is not task:
                other.ppid = reaper  # forget_original_parent(): orphans go to init
        parent = machine.processes.get(task.ppid)  # type: ignore[attr-defined]
        if parent is None or not parent.alive:
            return
        autoreap = False
        if task.exit_signal:
            code_ = (CLD_DUMPED if core else CLD_KILLED) if signo else CLD_EXITED
            act = parent.signal.action(SIGCHLD)
            if task.exit_signal == SIGCHLD and (act.handler == SIG_IGN
                                                or act.flags & SA_NOCLDWAIT):
                autoreap = True  # do_notify_parent(): nobody will wait, release at once
            send_signal(parent, SigInfo(task.exit_signal, code_, pid=task.pid,
                                        uid=task.cred_uid, status=signo or code))
        if autoreap:
            self.reap(task)
        self.wake(parent)

    def _notify_parent_cldstop(self, task: Process, code: int, status: int) -> None:
        """do_notify_parent_cldstop(): SIGCHLD with CLD_STOPPED/CLD_CONTINUED unless the
        parent asked for SA_NOCLDSTOP; the event waits for wait(WUNTRACED/WCONTINUED)."""
        self.stop_reports[task.pid] = status
        parent = self.find(task.ppid)
        if parent is None:
            return
        act = parent.signal.action(SIGCHLD)
        if not act.flags & SA_NOCLDSTOP:
            send_signal(parent, SigInfo(SIGCHLD, code, pid=task.pid, uid=task.cred_uid,
                                        status=status))
        self.wake(parent)

    def stop_task(self, task: Process, signo: int) -> None:
        """do_signal_stop(): the task stops (keeping its place in any system call)."""
        self.stopped.add(task)
        self.sleeping.discard(task)
        task.need_stop = True
        self._notify_parent_cldstop(task, CLD_STOPPED, signo)

    def continue_task(self, task: Process, notify: bool = True) -> None:
        """SIGCONT (or SIGKILL) for a stopped task: it runs again, repeating the system call
        it was in, if any."""
        if task not in self.stopped:
            return
        self.stopped.discard(task)
        self.runqueue.append(task)
        if notify:
            self._notify_parent_cldstop(task, CLD_CONTINUED, SIGCONT)

    def kill_task(self, task: Process, signo: int, core: bool = False) -> None:
        """The default action of a fatal signal."""
        self.exit_task(task, 0, signo=signo, core=core)

    # ---- wait -----------------------------------------------------------------------------
    def do_wait(self, task: Process, pid: int, nohang: bool, untraced: bool = False,
                continued: bool = False) -> tuple[Process, int] | int | None:
        """do_wait(): a zombie child matching `pid` (-1 any, >0 that one, 0/< -1 a group) with
        its wait status, or with WUNTRACED/WCONTINUED a live child that stopped ((sig << 8) |
        0x7f) or continued (0xffff), an event reported once; 0 with WNOHANG; -ECHILD if there
        is no such child; None to sleep."""
        machine = self.machine

        def matches(child: Process) -> bool:
            if child.ppid != task.pid or child is task:
                return False
            if pid > 0:
                return child.pid == pid
            if pid == 0:
                return child.pgid == task.pgid
            if pid < -1:
                return child.pgid == -pid
            return True

        zombies = [c for c in machine.zombies.values() if matches(c) and not c.reaped]  # type: ignore[attr-defined]
        if zombies:
            child = min(zombies, key=lambda c: c.exit_order)
            return child, child.wait_status
        live = [c for c in machine.processes.values() if matches(c)]  # type: ignore[attr-defined]
        if not live:
            return -E.ECHILD
        for child in sorted(live, key=lambda c: c.pid):
            event = self.stop_reports.get(child.pid)
            if event is None:
                continue
            if event == SIGCONT and continued:
                del self.stop_reports[child.pid]
                return child, 0xFFFF
            if event != SIGCONT and untraced and child in self.stopped:
                del self.stop_reports[child.pid]
                return child, (event << 8) | 0x7F
        if nohang:
            return 0
        return None

    def reap(self, child: Process) -> None:
        """release_task(): the zombie is gone. (A live child reported as stopped or
        continued stays.)"""
        if child.alive:
            return
        child.reaped = True
        self.machine.zombies.pop(child.pid, None)  # type: ignore[attr-defined]

    # ---- kill -------------------------------------------------------------------------------
    def kill(self, sender: Process, pid: int, signo: int, exact: bool = False) -> int:
        """kill(2)/tkill(2): 0 or -errno. Signal 0 only checks that the target exists."""
        if not 0 <= signo <= NSIG:
            return -E.EINVAL
        machine = self.machine
        # A zombie still exists until it is reaped: it can be signalled (to no effect).
        known = [p for p in machine.processes.values() if p.alive]  # type: ignore[attr-defined]
        known += [z for z in machine.zombies.values() if not z.reaped]  # type: ignore[attr-defined]
        if exact or pid > 0:
            targets = [p for p in known if p.pid == pid]
        elif pid == 0:
            targets = [p for p in known if p.pgid == sender.pgid]
        elif pid == -1:  # everyone but init and the caller
            targets = [p for p in known if p.pid not in (1, sender.pid)]
        else:
            targets = [p for p in known if p.pgid == -pid]
        if not targets:
            return -E.ESRCH
        if signo:
            for target in targets:
                send_signal(target, SigInfo(signo, SI_USER if not exact else SI_TKILL,
                                            pid=sender.pid, uid=sender.cred_uid,
                                            private=exact))
        if any(t is sender for t in targets):
            sender.need_stop = True
        return 0

    # ---- ITIMER_REAL -------------------------------------------------------------------------
    def set_itimer_real(self, task: Process, value_ns: int, interval_ns: int) -> tuple[int, int]:
        """do_setitimer(ITIMER_REAL): arm (0: disarm) relative to now; returns the old
        (remaining, interval)."""
        old = self.get_itimer_real(task)
        if value_ns:
            now = self.machine.clock_ns  # type: ignore[attr-defined]
            self.itimer_real[task.pid] = (now + value_ns, interval_ns)
        else:
            self.itimer_real.pop(task.pid, None)
        return old

    def get_itimer_real(self, task: Process) -> tuple[int, int]:
        """(remaining, interval) of the process's ITIMER_REAL, in ns; (0, 0) when disarmed."""
        got = self.itimer_real.get(task.pid)
        if got is None:
            return 0, 0
        now = self.machine.clock_ns  # type: ignore[attr-defined]
        return max(1, got[0] - now), got[1]
