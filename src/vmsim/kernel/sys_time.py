"""Time, randomness and system information (kernel/time/, drivers/char/random.c, kernel/sys.c).

The machine keeps a virtual clock so that runs are deterministic: it starts
at the machine's boot time, advances a microsecond per system call, and a
sleep advances it by the time slept instead of waiting. getrandom draws from
the machine's seeded generator.
"""

from __future__ import annotations

import errno as E
import struct
from typing import TYPE_CHECKING

from vmsim.kernel.syscalls import s32, s64, syscall
from vmsim.kernel.uaccess import copy_from_user, copy_to_user

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4


def _clock(task: Process, clk: int) -> int | None:
    """Nanoseconds on clock `clk`, or None for an unknown clock."""
    mono = task.machine.clock_ns
    if clk in (CLOCK_REALTIME, 5, 8, 11):  # REALTIME(_COARSE), REALTIME_ALARM, TAI
        return task.machine.boot_epoch_ns + mono
    if clk in (CLOCK_MONOTONIC, 4, 6, 7, 9):  # MONOTONIC(_RAW,_COARSE), BOOTTIME(_ALARM)
        return mono
    if clk in (2, 3):  # PROCESS/THREAD_CPUTIME_ID
        return task.cpu_ns
    return None


def _timespec(ns: int) -> bytes:
    return struct.pack("<qq", ns // 1_000_000_000, ns % 1_000_000_000)


@syscall(228, "clock_gettime")
def sys_clock_gettime(task: Process, clk: int, tp: int, *_: int) -> int:
    ns = _clock(task, s32(clk))
    if ns is None:
        return -E.EINVAL
    return 0 if copy_to_user(task, tp, _timespec(ns)) else -E.EFAULT


@syscall(229, "clock_getres")
def sys_clock_getres(task: Process, clk: int, tp: int, *_: int) -> int:
    if _clock(task, s32(clk)) is None:
        return -E.EINVAL
    return 0 if not tp or copy_to_user(task, tp, _timespec(1)) else -E.EFAULT


@syscall(96, "gettimeofday")
def sys_gettimeofday(task: Process, tv: int, tz: int, *_: int) -> int:
    ns = task.machine.boot_epoch_ns + task.machine.clock_ns
    if tv and not copy_to_user(task, tv, struct.pack("<qq", ns // 10**9, ns % 10**9 // 1000)):
        return -E.EFAULT
    if tz and not copy_to_user(task, tz, bytes(8)):
        return -E.EFAULT
    return 0


@syscall(201, "time")
def sys_time(task: Process, tloc: int, *_: int) -> int:
    sec = (task.machine.boot_epoch_ns + task.machine.clock_ns) // 10**9
    if tloc and not copy_to_user(task, tloc, struct.pack("<q", sec)):
        return -E.EFAULT
    return sec


def _sleep(task: Process, req: int) -> int | None:
    raw = copy_from_user(task, req, 16)
    if raw is None:
        return -E.EFAULT
    sec, nsec = struct.unpack("<qq", raw)
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        return -E.EINVAL
    if task.pid in task.machine.sched.sleep_until:  # woken: is the time up?
        return task.machine.sched.sleep(task, 0)
    return task.machine.sched.sleep(task, task.machine.clock_ns + sec * 1_000_000_000 + nsec)


@syscall(35, "nanosleep")
def sys_nanosleep(task: Process, req: int, rem: int, *_: int) -> int | None:
    return _sleep(task, req)


@syscall(230, "clock_nanosleep")
def sys_clock_nanosleep(task: Process, clk: int, flags: int, req: int, rem: int,
                        *_: int) -> int | None:
    if _clock(task, s32(clk)) is None or s32(clk) in (2, 3):
        return -E.EINVAL
    if flags & 1:  # TIMER_ABSTIME
        raw = copy_from_user(task, req, 16)
        if raw is None:
            return -E.EFAULT
        sec, nsec = struct.unpack("<qq", raw)
        now = _clock(task, s32(clk)) or 0
        sched = task.machine.sched
        if task.pid in sched.sleep_until:
            return sched.sleep(task, 0)
        return sched.sleep(task, task.machine.clock_ns + max(0, sec * 10**9 + nsec - now))
    return _sleep(task, req)


@syscall(318, "getrandom")
def sys_getrandom(task: Process, buf: int, count: int, flags: int, *_: int) -> int:
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) or (
            flags & GRND_RANDOM and flags & GRND_INSECURE):
        return -E.EINVAL
    count = min(count, 0x1FF_FFFF)
    data = task.machine.rng.randbytes(count)
    return count if copy_to_user(task, buf, data) else -E.EFAULT


@syscall(99, "sysinfo")
def sys_sysinfo(task: Process, info: int, *_: int) -> int:
    kmem = task.machine.kmem
    unit = kmem.page_size
    raw = struct.pack("<qQQQQQQQQHHxxxxQQI", task.machine.clock_ns // 10**9, 0, 0, 0,
                      kmem.nr_frames, kmem.buddy.nr_free, 0, 0, 0, 0,
                      len(task.machine.processes), 0, 0, unit)
    return 0 if copy_to_user(task, info, raw.ljust(112, b"\0")) else -E.EFAULT


@syscall(98, "getrusage")
def sys_getrusage(task: Process, who: int, ru: int, *_: int) -> int:
    if s32(who) not in (0, -1, 1):
        return -E.EINVAL
    utime = task.cpu_ns
    raw = struct.pack("<qqqq", utime // 10**9, utime % 10**9 // 1000, 0, 0)
    fields = [task.mm.hiwater_rss * 4 if s32(who) == 0 else 0, 0, 0, 0,
              task.acct.min_flt if s32(who) == 0 else 0,
              task.acct.maj_flt if s32(who) == 0 else 0, 0, 0, 0, 0, 0, 0, 0, 0]
    raw += struct.pack("<14q", *fields)
    return 0 if copy_to_user(task, ru, raw) else -E.EFAULT


__all__ = ["s64"]
