"""File times and file-system statistics: utimensat, statfs, fstatfs (fs/utimes.c,
fs/statfs.c). Times are set on the host file (a file's times are the host's, as
`sys_stat` reports them); statfs reports the host file system holding the file.
"""

from __future__ import annotations

import ctypes
import errno as E
import os
import struct
import time
from typing import TYPE_CHECKING

from vmsim.fs.vfs import O_PATH, VfsBacking, mem_device_name
from vmsim.kernel import sys_stat
from vmsim.kernel.syscalls import s32, s64, syscall
from vmsim.kernel.uaccess import copy_from_user
from vmsim.mm.filemap import File

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

AT_EMPTY_PATH = 0x1000
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100


_libc: ctypes.CDLL | None = None
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
STATFS_SIZE = 120


def _times_from_user(task: Process, times: int) -> list[int | None] | int:
    """The two timespecs of utimensat as ns, None for UTIME_NOW, -1 for UTIME_OMIT."""
    want: list[int | None] = [None, None]
    if not times:
        return want
    raw = copy_from_user(task, times, 32)
    if raw is None:
        return -E.EFAULT
    for i in range(2):
        sec, nsec = struct.unpack_from("<qq", raw, 16 * i)
        if nsec == UTIME_OMIT:
            want[i] = -1
        elif nsec == UTIME_NOW:
            want[i] = None
        elif not 0 <= nsec < 10**9:
            return -E.EINVAL
        else:
            want[i] = sec * 10**9 + nsec
    return want


def _set_times(fd: int, name: str, want: list[int | None]) -> int:
    """utimes_common() on the host object (dir fd + one name, never followed; or an fd)."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False) if name else os.fstat(fd)
        now = time.time_ns()
        old = (st.st_atime_ns, st.st_mtime_ns)
        ns = tuple(old[i] if w == -1 else now if w is None else w for i, w in enumerate(want))
        if name:
            os.utime(name, ns=ns, dir_fd=fd, follow_symlinks=False)
        else:
            os.utime(fd, ns=ns)
    except OSError as exc:
        return -(exc.errno or E.EIO)
    return 0


@syscall(280, "utimensat")
def sys_utimensat(task: Process, dfd: int, path_ptr: int, times: int, flags: int,
                  *_: int) -> int:
    """do_utimes(): set the access and modification times (NULL times: now; UTIME_NOW and
    UTIME_OMIT per field); a NULL path names the open file `dfd` itself. "Now" is the
    host's clock, as a file's times are the host file's (see stat)."""
    flags &= 0xFFFF_FFFF
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    want = _times_from_user(task, times)
    if isinstance(want, int):
        return want
    if want == [-1, -1]:
        return 0
    vfs = task.machine.vfs
    if path_ptr == 0:  # futimens()
        f = sys_stat.file_at(task, dfd)
        if isinstance(f, int):
            return f
        if isinstance(f, str) or (isinstance(f, File) and f.f_flags & O_PATH):
            return -E.EFAULT if isinstance(f, str) else -E.EBADF
        if not isinstance(f, File) or not isinstance(f.inode.backing, VfsBacking):
            return 0  # pipes, the console, /proc: nothing kept
        return -E.EROFS if vfs.read_only else _set_times(f.inode.backing.fd, "", want)
    path = sys_stat.user_path(task, path_ptr, bool(flags & AT_EMPTY_PATH))
    if isinstance(path, int):
        return path
    if not path:
        f = sys_stat.file_at(task, dfd)
        if isinstance(f, int):
            return f
        name = f if isinstance(f, str) else getattr(f, "path", "")
    else:
        got = sys_stat.at_path(task, dfd, path)
        if isinstance(got, int):
            return got
        name = got
    if not name or sys_stat.proc_normalise(name) is not None or mem_device_name(name) is not None:
        return 0
    nd = vfs.lookup(name, not flags & AT_SYMLINK_NOFOLLOW)
    if isinstance(nd, int):
        return nd
    try:
        return -E.EROFS if vfs.read_only else _set_times(*nd.at(), want)
    finally:
        nd.close()


def host_statfs(fd: int) -> bytes | None:
    """fstatfs(2) of a host descriptor: the host's struct statfs (120 bytes)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(STATFS_SIZE)
        fn = _libc.syscall
        fn.restype = ctypes.c_long
        ret = fn(ctypes.c_long(138), ctypes.c_int(fd), buf)
    except (OSError, AttributeError):
        return None
    return buf.raw if ret == 0 else None


@syscall(137, "statfs")
def sys_statfs(task: Process, path_ptr: int, buf: int, *_: int) -> int:
    """user_statfs(): the statistics of the host file system holding the object."""
    path = sys_stat.user_path(task, path_ptr)
    if isinstance(path, int):
        return path
    name = sys_stat.at_path(task, AT_FDCWD, path)
    if isinstance(name, int):
        return name
    nd = task.machine.vfs.lookup(name)
    if isinstance(nd, int):
        return nd
    try:
        raw = host_statfs(nd.fd)
    finally:
        nd.close()
    return -E.ENOSYS if raw is None else sys_stat.put_out(task, buf, raw)


@syscall(138, "fstatfs")
def sys_fstatfs(task: Process, fd: int, buf: int, *_: int) -> int:
    f = task.files.get(s32(fd)) if s64(fd) == s32(fd) else None
    if f is None:
        return -E.EBADF
    if not isinstance(f, File) or not isinstance(f.inode.backing, VfsBacking):
        return -E.ENOSYS
    raw = host_statfs(f.inode.backing.fd)
    return -E.ENOSYS if raw is None else sys_stat.put_out(task, buf, raw)
