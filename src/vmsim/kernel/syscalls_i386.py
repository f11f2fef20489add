"""The i386 system-call table (arch/x86/entry/syscalls/syscall_32.tbl, entry/common.c
do_int80_syscall_32).

An i386 program enters the kernel with ``int $0x80``: eax holds the number,
ebx, ecx, edx, esi, edi and ebp the six arguments (32-bit values), the
result goes back to eax. Where a call's ABI is the same on both
architectures (scalars and pointers to structures laid out alike) the
x86-64 handler serves it (`SAME_ABI`, i386 number -> the x86-64 handler's
name). Where the i386 layout differs, a handler here lays the structures
out as the i386 (ia32) kernel does: struct stat64 (cp_new_stat64), 32-bit
iovecs, timespecs and timevals (old_timespec32), struct sigaction with
4-byte words, 64-bit offsets split over two registers (_llseek, pread64,
mmap2's page offset), argv/envp arrays of 4-byte pointers (execve), and
set_thread_area's user_desc (a TLS descriptor in GDT slots 6..8, which the
program then loads into %gs). A number with no handler returns -ENOSYS and
is recorded as the x86-64 table records it.
"""

from __future__ import annotations

import errno as E
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from vmsim.kernel.syscalls import SYSCALLS, dispatch, s32
from vmsim.kernel.uaccess import (
    copy_from_user,
    copy_to_user,
    strncpy_from_user,
)

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

Handler = Callable[..., "int | None"]
CLONE_SETTLS = 0x0008_0000
#: GDT_ENTRY_TLS_MIN and GDT_ENTRY_TLS_ENTRIES on i386 (arch/x86/include/asm/segment.h).
TLS_MIN, TLS_ENTRIES = 6, 3

#: i386 number -> the x86-64 handler's name, for the calls whose ABI is the same.
SAME_ABI: dict[int, str] = {
    1: "exit", 2: "fork", 3: "read", 4: "write", 5: "open", 6: "close", 9: "link",
    10: "unlink", 12: "chdir", 15: "chmod", 20: "getpid", 24: "getuid", 27: "alarm",
    29: "pause", 33: "access", 36: "sync", 37: "kill", 38: "rename", 39: "mkdir", 40: "rmdir",
    41: "dup", 42: "pipe", 45: "brk", 47: "getgid", 49: "geteuid", 50: "getegid", 54: "ioctl",
    57: "setpgid", 60: "umask", 63: "dup2", 64: "getppid", 65: "getpgrp", 66: "setsid",
    83: "symlink", 85: "readlink", 91: "munmap", 92: "truncate", 93: "ftruncate", 94: "fchmod",
    118: "fsync", 122: "uname", 125: "mprotect", 132: "getpgid", 133: "fchdir", 144: "msync",
    147: "getsid", 148: "fdatasync", 150: "mlock", 151: "munlock", 152: "mlockall",
    153: "munlockall", 158: "sched_yield", 163: "mremap", 172: "prctl",
    175: "rt_sigprocmask", 176: "rt_sigpending", 179: "rt_sigsuspend", 183: "getcwd",
    184: "capget", 185: "capset", 190: "vfork", 198: "lchown", 199: "getuid", 200: "getgid",
    201: "geteuid", 202: "getegid", 207: "fchown", 212: "chown", 218: "mincore",
    219: "madvise", 220: "getdents64", 224: "gettid", 238: "tkill", 241: "sched_setaffinity",
    242: "sched_getaffinity", 252: "exit_group", 258: "set_tid_address", 270: "tgkill",
    295: "openat", 296: "mkdirat", 298: "fchownat", 301: "unlinkat", 302: "renameat",
    303: "linkat", 304: "symlinkat", 305: "readlinkat", 306: "fchmodat", 307: "faccessat",
    318: "getcpu", 330: "dup3", 331: "pipe2", 340: "prlimit64", 344: "syncfs",
    353: "renameat2", 355: "getrandom", 376: "mlock2", 383: "statx", 436: "close_range",
    439: "faccessat2",
}
#: Names of i386 calls vmsim does not implement (for the trace and the statistics).
KNOWN_NAMES_32: dict[int, str] = {
    7: "waitpid", 43: "times", 75: "setrlimit", 76: "getrlimit", 77: "getrusage",
    90: "mmap", 120: "clone", 240: "futex", 244: "get_thread_area",
    311: "set_robust_list", 384: "arch_prctl", 386: "rseq", 422: "futex_time64",
    435: "clone3",
}

#: i386 number -> (name, handler) for the calls laid out here.
SYSCALLS_32: dict[int, tuple[str, Handler]] = {}


def syscall32(nr: int, name: str) -> Callable[[Handler], Handler]:
    """Register `fn` as i386 system call `nr`."""

    def register(fn: Handler) -> Handler:
        if nr in SYSCALLS_32:
            raise ValueError(f"i386 syscall {nr} ({name}) registered twice")
        SYSCALLS_32[nr] = (name, fn)
        return fn

    return register


def _handler64(name: str) -> Handler:
    for hname, fn in SYSCALLS.values():
        if hname == name:
            return fn
    raise KeyError(name)


def _table() -> dict[int, tuple[str, Handler]]:
    table = {nr: (name, _handler64(name)) for nr, name in SAME_ABI.items()}
    table.update(SYSCALLS_32)
    return table


_TABLE: dict[int, tuple[str, Handler]] | None = None


def do_int80_syscall_32(task: Process, nr: int, args: list[int]) -> int | None:
    """do_int80_syscall_32(): dispatch by i386 number; the result for eax, or None to block."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _table()
    return dispatch(task, _TABLE, nr, args, KNOWN_NAMES_32.get(nr, f"syscall32_{nr}"))


def _call(name: str, task: Process, *args: int) -> int | None:
    return _handler64(name)(task, *args, *([0] * (6 - len(args))))


def _sx(value: int) -> int:
    """A 32-bit register as the signed long the x86-64 handler expects (64-bit two's
    complement), as the compat entry's sign extension of an `int`/`long` argument."""
    return s32(value) & 0xFFFF_FFFF_FFFF_FFFF


# ---- memory ----------------------------------------------------------------------------------
@syscall32(192, "mmap2")
def sys_mmap2(task: Process, addr: int, length: int, prot: int, flags: int, fd: int,
              pgoff: int) -> int:
    """mmap2 (arch/x86/kernel/sys_ia32.c -> ksys_mmap_pgoff): the offset in 4 KiB pages."""
    return _call("mmap", task, addr, length, prot, flags, _sx(fd), pgoff << 12) or 0


@syscall32(90, "mmap")
def sys_old_mmap(task: Process, argp: int, *_: int) -> int:
    """old_mmap (mm/mmap.c): the six arguments in a struct mmap_arg_struct of 32-bit words."""
    raw = copy_from_user(task, argp, 24)
    if raw is None:
        return -E.EFAULT
    addr, length, prot, flags, fd, off = struct.unpack("<6I", raw)
    if off & 0xFFF:
        return -E.EINVAL
    return _call("mmap", task, addr, length, prot, flags, _sx(fd), off) or 0


# ---- files ------------------------------------------------------------------------------------
@syscall32(19, "lseek")
def sys_lseek32(task: Process, fd: int, offset: int, whence: int, *_: int) -> int:
    """lseek with a 32-bit off_t (compat_sys_lseek); EOVERFLOW past 2 GiB."""
    ret = _call("lseek", task, fd, _sx(offset), whence)
    assert ret is not None
    return -E.EOVERFLOW if ret > 0x7FFF_FFFF else ret


@syscall32(140, "_llseek")
def sys_llseek(task: Process, fd: int, high: int, low: int, result: int, whence: int,
               *_: int) -> int:
    """_llseek (fs/read_write.c): the offset in two halves, the new position stored as a
    64-bit loff_t at `result`."""
    ret = _call("lseek", task, fd, ((high << 32) | low) & 0xFFFF_FFFF_FFFF_FFFF, whence)
    assert ret is not None
    if ret < 0:
        return ret
    return 0 if copy_to_user(task, result, struct.pack("<q", ret)) else -E.EFAULT


@syscall32(180, "pread64")
def sys_pread64_32(task: Process, fd: int, buf: int, count: int, lo: int, hi: int,
                   *_: int) -> int | None:
    """ia32_pread64 (arch/x86/kernel/sys_ia32.c): the offset split over two registers."""
    return _call("pread64", task, fd, buf, count, (hi << 32) | lo)


@syscall32(181, "pwrite64")
def sys_pwrite64_32(task: Process, fd: int, buf: int, count: int, lo: int, hi: int,
                    *_: int) -> int | None:
    """ia32_pwrite64: the offset split over two registers."""
    return _call("pwrite64", task, fd, buf, count, (hi << 32) | lo)


@syscall32(146, "writev")
def sys_writev32(task: Process, fd: int, iov: int, iovcnt: int, *_: int) -> int | None:
    """writev with struct compat_iovec (32-bit base and length), as compat_sys_writev."""
    from vmsim.kernel.sys_fs import do_writev

    return do_writev(task, fd, iov, iovcnt, "<II")


@syscall32(145, "readv")
def sys_readv32(task: Process, fd: int, iov: int, iovcnt: int, *_: int) -> int | None:
    """readv with struct compat_iovec, as compat_sys_readv."""
    from vmsim.kernel.sys_fs import do_readv

    return do_readv(task, fd, iov, iovcnt, "<II")


def _pack_stat64(k: object) -> bytes:
    """cp_new_stat64 (fs/stat.c) into struct stat64 of i386 (96 bytes, packed to 4)."""
    from vmsim.kernel.sys_stat import Kstat

    assert isinstance(k, Kstat)
    at, mt, ct = (divmod(ns, 10**9) for ns in (k.atime_ns, k.mtime_ns, k.ctime_ns))
    return struct.pack("<Q4xIIIIIQ4xqIQIIIIIIQ", k.dev, k.ino & 0xFFFF_FFFF, k.mode, k.nlink,
                       k.uid, k.gid, k.rdev, k.size, k.blksize, k.blocks, at[0], at[1], mt[0],
                       mt[1], ct[0], ct[1], k.ino)


def _put_stat64(task: Process, buf: int, k: object) -> int:
    if isinstance(k, int):
        return k
    return 0 if copy_to_user(task, buf, _pack_stat64(k)) else -E.EFAULT


@syscall32(195, "stat64")
def sys_stat64(task: Process, path: int, buf: int, *_: int) -> int:
    from vmsim.kernel.sys_stat import AT_FDCWD, statat

    return _put_stat64(task, buf, statat(task, AT_FDCWD, path, 0))


@syscall32(196, "lstat64")
def sys_lstat64(task: Process, path: int, buf: int, *_: int) -> int:
    from vmsim.kernel.sys_stat import AT_FDCWD, AT_SYMLINK_NOFOLLOW, statat

    return _put_stat64(task, buf, statat(task, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW))


@syscall32(197, "fstat64")
def sys_fstat64(task: Process, fd: int, buf: int, *_: int) -> int:
    from vmsim.kernel.sys_stat import kstat_of

    f = task.files.get(s32(fd))
    if f is None:
        return -E.EBADF
    return _put_stat64(task, buf, kstat_of(task, f))


@syscall32(300, "fstatat64")
def sys_fstatat64(task: Process, dfd: int, path: int, buf: int, flags: int, *_: int) -> int:
    from vmsim.kernel.sys_stat import statat

    return _put_stat64(task, buf, statat(task, _sx(dfd), path, flags))


@syscall32(55, "fcntl")
def sys_fcntl32(task: Process, fd: int, cmd: int, arg: int, *_: int) -> int | None:
    return _call("fcntl", task, fd, cmd, arg)


@syscall32(221, "fcntl64")
def sys_fcntl64(task: Process, fd: int, cmd: int, arg: int, *_: int) -> int | None:
    """fcntl64: the same commands (the 64-bit lock structures are x86-64's struct flock)."""
    return _call("fcntl", task, fd, cmd, arg)


@syscall32(193, "truncate64")
def sys_truncate64(task: Process, path: int, lo: int, hi: int, *_: int) -> int | None:
    return _call("truncate", task, path, (hi << 32) | lo)


@syscall32(194, "ftruncate64")
def sys_ftruncate64(task: Process, fd: int, lo: int, hi: int, *_: int) -> int | None:
    return _call("ftruncate", task, fd, (hi << 32) | lo)


# ---- processes -------------------------------------------------------------------------------
def _strings32(task: Process, ptr: int) -> list[bytes] | int:
    """An argv/envp array of 4-byte pointers (get_user_arg_ptr() of a compat task)."""
    out: list[bytes] = []
    while ptr:
        raw = copy_from_user(task, ptr + 4 * len(out), 4)
        if raw is None:
            return -E.EFAULT
        p = struct.unpack("<I", raw)[0]
        if not p:
            break
        s = strncpy_from_user(task, p, 32 * 4096)
        if isinstance(s, int):
            return s
        out.append(s)
        if len(out) > 0x10000:
            return -E.E2BIG
    return out


@syscall32(11, "execve")
def sys_execve32(task: Process, path: int, argv: int, envp: int, *_: int) -> int:
    """execve from an i386 task: 4-byte argv/envp pointers."""
    from vmsim.kernel.sys_proc import do_sys_execve

    return do_sys_execve(task, path, argv, envp, _strings32)


@syscall32(114, "wait4")
def sys_wait4_32(task: Process, pid: int, status: int, options: int, rusage: int,
                 *_: int) -> int | None:
    """wait4 with a struct compat_rusage (18 4-byte longs), zeroed as vmsim keeps none."""
    ret = _call("wait4", task, pid, status, options, 0)
    if ret is not None and ret > 0 and rusage and not copy_to_user(task, rusage, bytes(72)):
        return -E.EFAULT
    return ret


@syscall32(7, "waitpid")
def sys_waitpid(task: Process, pid: int, status: int, options: int, *_: int) -> int | None:
    """waitpid (kernel/exit.c): wait4 without rusage."""
    return _call("wait4", task, pid, status, options, 0)


@syscall32(120, "clone")
def sys_clone32(task: Process, flags: int, stack: int, ptid: int, tls: int, ctid: int,
                *_: int) -> int | None:
    """clone on i386 (CONFIG_CLONE_BACKWARDS): flags, stack, parent_tid, tls, child_tid.
    With CLONE_SETTLS, `tls` is a struct user_desc for the child's TLS slot
    (do_set_thread_area() on the child, as copy_thread() does for a 32-bit task)."""
    desc = None
    if flags & CLONE_SETTLS:
        raw = copy_from_user(task, tls, 16)
        if raw is None:
            return -E.EFAULT
        desc = struct.unpack("<iIII", raw)
        if not TLS_MIN <= desc[0] < TLS_MIN + TLS_ENTRIES:
            return -E.EINVAL
        flags &= ~CLONE_SETTLS
    ret = _call("clone", task, flags, stack, ptid, ctid, 0)
    child = task.machine.processes.get(ret) if ret is not None and ret > 0 else None
    if desc is not None and child is not None:
        slots = list(_tls_slots(task))
        slots[desc[0] - TLS_MIN] = fill_ldt(desc[1], desc[2], desc[3])
        child.tls_array = slots  # type: ignore[attr-defined]
    return ret


@syscall32(191, "ugetrlimit")
def sys_ugetrlimit(task: Process, resource: int, rlim: int, *_: int) -> int:
    """getrlimit with struct compat_rlimit: 32-bit words, RLIM_INFINITY as 0xffffffff."""
    from vmsim.kernel.sys_proc import _get_rlimit

    cur = _get_rlimit(task, s32(resource))
    if cur is None:
        return -E.EINVAL
    soft, hard = (min(v, 0xFFFF_FFFF) for v in cur)
    return 0 if copy_to_user(task, rlim, struct.pack("<II", soft, hard)) else -E.EFAULT


@syscall32(311, "set_robust_list")
def sys_set_robust_list32(task: Process, head: int, length: int, *_: int) -> int:
    """set_robust_list with struct compat_robust_list_head (12 bytes)."""
    if length != 12:
        return -E.EINVAL
    task.robust_list = head
    return 0


# ---- TLS: set_thread_area (arch/x86/kernel/tls.c) -----------------------------------------------


def _tls_slots(task: Process) -> list[bytes]:
    slots = getattr(task, "tls_array", None)
    if slots is None:
        slots = [bytes(8)] * TLS_ENTRIES
        task.tls_array = slots  # type: ignore[attr-defined]
    return slots


def fill_ldt(base: int, limit: int, flags: int) -> bytes:
    """fill_ldt() (arch/x86/include/asm/desc.h): a user_desc as a GDT descriptor (DPL 3)."""
    seg_32bit, contents = flags & 1, (flags >> 1) & 3
    read_exec_only, limit_in_pages = (flags >> 3) & 1, (flags >> 4) & 1
    seg_not_present, useable = (flags >> 5) & 1, (flags >> 6) & 1
    if not base and not limit and flags & 0x7F in (0, 0x28):
        return bytes(8)  # LDT_empty() / LDT_zero(): clears the slot
    type_ = ((not read_exec_only) << 1) | (contents << 2) | 1  # accessed
    access = type_ | 0x10 | (3 << 5) | ((not seg_not_present) << 7)
    hi = (limit >> 16) & 0xF | (useable << 4) | (seg_32bit << 6) | (limit_in_pages << 7)
    return struct.pack("<HHBBBB", limit & 0xFFFF, base & 0xFFFF, (base >> 16) & 0xFF, access,
                       hi, (base >> 24) & 0xFF)


def load_tls(task: Process) -> None:
    """load_TLS() on a switch to `task`: its three slots into the CPU's GDT."""
    cpu = task.machine.cpu
    set_slot = getattr(cpu, "set_tls_slot", None)
    if set_slot is not None:
        for i, desc in enumerate(_tls_slots(task)):
            set_slot(TLS_MIN + i, desc)


@syscall32(243, "set_thread_area")
def sys_set_thread_area(task: Process, u_info: int, *_: int) -> int:
    """do_set_thread_area(): entry_number -1 picks the first free TLS slot and is written
    back; the descriptor goes into the task's TLS array and the GDT."""
    raw = copy_from_user(task, u_info, 16)
    if raw is None:
        return -E.EFAULT
    idx, base, limit, flags = struct.unpack("<iIII", raw)
    slots = _tls_slots(task)
    if idx == -1:
        free = [i for i, d in enumerate(slots) if d == bytes(8)]
        if not free:
            return -E.ESRCH
        idx = TLS_MIN + free[0]
        if not copy_to_user(task, u_info, struct.pack("<i", idx)):
            return -E.EFAULT
    if not TLS_MIN <= idx < TLS_MIN + TLS_ENTRIES:
        return -E.EINVAL
    slots[idx - TLS_MIN] = fill_ldt(base, limit, flags)
    load_tls(task)
    return 0


# ---- time -------------------------------------------------------------------------------------
def _now(task: Process, clk: int) -> int | None:
    from vmsim.kernel.sys_time import _clock

    return _clock(task, s32(clk))


@syscall32(265, "clock_gettime")
def sys_clock_gettime32(task: Process, clk: int, tp: int, *_: int) -> int:
    """clock_gettime with struct old_timespec32."""
    ns = _now(task, clk)
    if ns is None:
        return -E.EINVAL
    sec, nsec = divmod(ns, 10**9)
    return 0 if copy_to_user(task, tp, struct.pack("<iI", sec, nsec)) else -E.EFAULT


@syscall32(403, "clock_gettime64")
def sys_clock_gettime64(task: Process, clk: int, tp: int, *_: int) -> int | None:
    """clock_gettime64: struct __kernel_timespec, as x86-64's."""
    return _call("clock_gettime", task, clk, tp)


@syscall32(266, "clock_getres")
def sys_clock_getres32(task: Process, clk: int, tp: int, *_: int) -> int:
    if _now(task, clk) is None:
        return -E.EINVAL
    return 0 if not tp or copy_to_user(task, tp, struct.pack("<iI", 0, 1)) else -E.EFAULT


@syscall32(406, "clock_getres_time64")
def sys_clock_getres64(task: Process, clk: int, tp: int, *_: int) -> int | None:
    return _call("clock_getres", task, clk, tp)


@syscall32(78, "gettimeofday")
def sys_gettimeofday32(task: Process, tv: int, tz: int, *_: int) -> int:
    """gettimeofday with struct old_timeval32."""
    ns = task.machine.boot_epoch_ns + task.machine.clock_ns
    if tv and not copy_to_user(task, tv, struct.pack("<iI", ns // 10**9, ns % 10**9 // 1000)):
        return -E.EFAULT
    if tz and not copy_to_user(task, tz, bytes(8)):
        return -E.EFAULT
    return 0


@syscall32(13, "time")
def sys_time32(task: Process, tloc: int, *_: int) -> int:
    """time with a 32-bit time_t."""
    sec = (task.machine.boot_epoch_ns + task.machine.clock_ns) // 10**9
    if tloc and not copy_to_user(task, tloc, struct.pack("<i", sec)):
        return -E.EFAULT
    return sec


# ---- signals ----------------------------------------------------------------------------------
@syscall32(174, "rt_sigaction")
def sys_rt_sigaction32(task: Process, sig: int, act: int, oact: int, sigsetsize: int,
                       *_: int) -> int:
    """rt_sigaction with struct compat_sigaction: handler, flags, restorer (4 bytes each),
    then the 8-byte mask. A caught signal gets the i386 frame (`signal_i386`)."""
    from vmsim.kernel.sys_signal import do_rt_sigaction

    return do_rt_sigaction(task, sig, act, oact, sigsetsize, "<IIIQ", 0xFFFF_FFFF)


@syscall32(173, "rt_sigreturn")
def sys_rt_sigreturn32(task: Process, *_: int) -> int:
    """rt_sigreturn from an i386 handler (signal_i386.ia32_sys_rt_sigreturn)."""
    from vmsim.kernel.signal_i386 import ia32_sys_rt_sigreturn

    return ia32_sys_rt_sigreturn(task)


@syscall32(119, "sigreturn")
def sys_sigreturn32(task: Process, *_: int) -> int:
    """sigreturn from a handler installed without SA_SIGINFO (the non-RT i386 frame)."""
    from vmsim.kernel.signal_i386 import ia32_sys_sigreturn

    return ia32_sys_sigreturn(task)


@syscall32(186, "sigaltstack")
def sys_sigaltstack32(task: Process, uss: int, uoss: int, *_: int) -> int:
    """sigaltstack with a compat stack_t (ss_sp, ss_flags, ss_size: 4 bytes each)."""
    from vmsim.kernel.sys_signal import do_sys_sigaltstack

    return do_sys_sigaltstack(task, uss, uoss, "<IiI", 0xFFFF_FFFF)


def _sleep32(task: Process, req: int, clk: int = 1, flags: int = 0) -> int | None:
    """A sleep whose request is a struct old_timespec32."""
    from vmsim.kernel.sys_time import _clock

    raw = copy_from_user(task, req, 8)
    if raw is None:
        return -E.EFAULT
    sec, nsec = struct.unpack("<ii", raw)
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        return -E.EINVAL
    sched = task.machine.sched
    if task.pid in sched.sleep_until:  # woken: is the time up?
        return sched.sleep(task, 0)
    delta = sec * 1_000_000_000 + nsec
    if flags & 1:  # TIMER_ABSTIME
        delta = max(0, delta - (_clock(task, clk) or 0))
    return sched.sleep(task, task.machine.clock_ns + delta)


@syscall32(162, "nanosleep")
def sys_nanosleep32(task: Process, req: int, rem: int, *_: int) -> int | None:
    """nanosleep with struct old_timespec32 (hrtimer_nanosleep)."""
    return _sleep32(task, req)


@syscall32(267, "clock_nanosleep")
def sys_clock_nanosleep32(task: Process, clk: int, flags: int, req: int, rem: int,
                          *_: int) -> int | None:
    """clock_nanosleep with struct old_timespec32."""
    if _now(task, clk) is None or s32(clk) in (2, 3):
        return -E.EINVAL
    return _sleep32(task, req, s32(clk), flags)


@syscall32(407, "clock_nanosleep_time64")
def sys_clock_nanosleep64(task: Process, clk: int, flags: int, req: int, rem: int,
                          *_: int) -> int | None:
    """clock_nanosleep_time64: struct __kernel_timespec, as x86-64's clock_nanosleep."""
    return _call("clock_nanosleep", task, clk, flags, req, rem)


@syscall32(116, "sysinfo")
def sys_sysinfo32(task: Process, info: int, *_: int) -> int:
    """sysinfo with struct compat_sysinfo (32-bit counts in mem_unit pages, 64 bytes)."""
    kmem = task.machine.kmem
    raw = struct.pack("<i3I6IHHIII", task.machine.clock_ns // 10**9, 0, 0, 0, kmem.nr_frames,
                      kmem.buddy.nr_free, 0, 0, 0, 0, len(task.machine.processes), 0, 0, 0,
                      kmem.page_size)
    return 0 if copy_to_user(task, info, raw.ljust(64, b"\0")) else -E.EFAULT


@syscall32(77, "getrusage")
def sys_getrusage32(task: Process, who: int, ru: int, *_: int) -> int:
    """getrusage with struct compat_rusage (old_timeval32 times, 4-byte longs)."""
    if s32(who) not in (0, -1, 1):
        return -E.EINVAL
    utime = task.cpu_ns
    own = s32(who) == 0
    fields = [task.mm.hiwater_rss * 4 if own else 0, 0, 0, 0,
              task.acct.min_flt if own else 0, task.acct.maj_flt if own else 0,
              0, 0, 0, 0, 0, 0, 0, 0]
    raw = struct.pack("<iiii14i", utime // 10**9, utime % 10**9 // 1000, 0, 0, *fields)
    return 0 if copy_to_user(task, ru, raw) else -E.EFAULT
