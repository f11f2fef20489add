"""stat, statx, access and readlink (fs/stat.c, fs/open.c do_faccessat, fs/namei.c).

Paths are copied with `user_path` (getname(): -EFAULT, -ENAMETOOLONG at
PATH_MAX, -ENOENT for "" unless AT_EMPTY_PATH), made absolute against the
cwd or a directory descriptor, and looked up inside the sandbox by
`fs/vfs.py`. Attributes are the host file's own (device and inode numbers
included); `struct stat` and `struct statx` are laid out as on x86-64 Linux.
Files vmsim makes up itself (pipes, the console, /proc, shared memory) get
attributes of the same kind Linux gives them.
"""

from __future__ import annotations

import ctypes
import errno as E
import os
import re
import stat as S
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vmsim.fs.vfs import O_PATH, CharDevice, VfsBacking, lexical_parts, mem_device_name
from vmsim.kernel.files import Console, PipeEnd
from vmsim.kernel.proc_files import ProcFile, open_proc
from vmsim.kernel.syscalls import s32, s64, syscall
from vmsim.kernel.uaccess import copy_to_user, strncpy_from_user
from vmsim.mm.filemap import File

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EACCESS = 0x200
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_STATX_SYNC_TYPE = 0x6000
STATX_BASIC_STATS = 0x7FF
STATX__RESERVED = 0x8000_0000
PATH_MAX = 4096
PROC_DEV = 0x16  # proc's anonymous device (0:22)
PIPE_DEV = 0xD  # pipefs (0:13)
STATX_SIZE = 0x100


@dataclass
class Kstat:
    """struct kstat: what getattr() reports, before cp_new_stat()/cp_statx() lay it out."""

    dev: int
    ino: int
    mode: int
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    rdev: int = 0
    size: int = 0
    blksize: int = 4096
    blocks: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0

    @classmethod
    def from_host(cls, st: os.stat_result) -> Kstat:
        return cls(st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid,
                   st.st_rdev, st.st_size, st.st_blksize, st.st_blocks, st.st_atime_ns,
                   st.st_mtime_ns, st.st_ctime_ns)


def _ts(ns: int) -> tuple[int, int]:
    return divmod(ns, 10**9)


def pack_stat(k: Kstat) -> bytes:
    """cp_new_stat(): struct stat on x86-64 (144 bytes)."""
    return struct.pack("<QQQIII4xQqqqqqqqqq24x", k.dev, k.ino, k.nlink, k.mode, k.uid, k.gid,
                       k.rdev, k.size, k.blksize, k.blocks, *_ts(k.atime_ns), *_ts(k.mtime_ns),
                       *_ts(k.ctime_ns))


def pack_statx(k: Kstat) -> bytes:
    """cp_statx(): struct statx (256 bytes) with the basic fields (STATX_BASIC_STATS)."""
    head = struct.pack("<IIQIIIHHQQQQ", STATX_BASIC_STATS, k.blksize, 0, k.nlink, k.uid, k.gid,
                       k.mode & 0xFFFF, 0, k.ino, k.size, k.blocks, 0)
    times = b"".join(struct.pack("<qIi", *_ts(ns), 0)
                     for ns in (k.atime_ns, 0, k.ctime_ns, k.mtime_ns))
    devs = struct.pack("<IIII", os.major(k.rdev), os.minor(k.rdev), os.major(k.dev),
                       os.minor(k.dev))
    return (head + times + devs).ljust(STATX_SIZE, b"\0")


_libc: ctypes.CDLL | None = None


def host_statx(fd: int, flags: int, mask: int) -> bytes | None:
    """statx(2) of an open host descriptor (AT_EMPTY_PATH): the host's own struct statx,
    with birth time and mount id where the host file system has them."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(STATX_SIZE)
        fn = _libc.syscall
        fn.restype = ctypes.c_long
        ret = fn(ctypes.c_long(332), ctypes.c_int(fd), b"", ctypes.c_int(
            AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | (flags & AT_STATX_SYNC_TYPE)),
            ctypes.c_uint(mask), buf)
    except (OSError, AttributeError):
        return None
    return buf.raw if ret == 0 else None


# ---- paths ----------------------------------------------------------------------------------
def user_path(task: Process, ptr: int, empty_ok: bool = False) -> str | int:
    """getname_flags(): the path string, or -EFAULT/-ENAMETOOLONG/-ENOENT ("" unless
    `empty_ok`; a NULL pointer is "" too when empty paths are allowed, as Linux 6.11+)."""
    if empty_ok and ptr == 0:
        return ""
    raw = strncpy_from_user(task, ptr, PATH_MAX)
    if isinstance(raw, int):
        return raw
    if not raw and not empty_ok:
        return -E.ENOENT
    return raw.decode("utf-8", "surrogateescape")


def at_path(task: Process, dfd: int, path: str) -> str | int:
    """An absolute guest path for `path` relative to `dfd` (AT_FDCWD or a directory)."""
    return task.resolve_path(s32(dfd), path)


_PROC_PID = re.compile(r"^/proc/(self|\d+)(?:/(.*))?$")


def proc_normalise(name: str) -> str | None:
    """The path lexically inside /proc (vmsim generates /proc itself), or None."""
    parts = lexical_parts(name)
    if not parts or parts[0] != "proc":
        return None
    return "/" + "/".join(parts)


def fd_path(task: Process, f: object) -> str:
    """What /proc/PID/fd/N reads for an open file (d_path or the anon-inode name)."""
    if isinstance(f, File):
        return f.path
    if isinstance(f, PipeEnd):
        return f"pipe:[{f.pipe.ino}]"
    if isinstance(f, ProcFile):
        return f"/proc/{f.pid}/{f.name}" if f.pid else f"/proc/{f.name}"
    if isinstance(f, Console):
        return "/dev/pts/0" if f.is_tty else "pipe:[1]"
    return "anon_inode:[unknown]"


def proc_link(task: Process, name: str) -> str | int | None:
    """The body of a /proc symlink (self, PID/exe, PID/cwd, PID/fd/N); None if `name` is
    not a link; -ENOENT if it does not exist."""
    if name == "/proc/self":
        return str(task.pid)
    m = _PROC_PID.match(name)
    if not m or m.group(2) is None:
        return None
    pid = task.pid if m.group(1) == "self" else int(m.group(1))
    proc = task.machine.processes.get(pid)
    if proc is None:
        return -E.ENOENT
    rest = m.group(2)
    if rest == "exe":
        exe = proc.exe if proc.exe.startswith("/") else proc.cwd.rstrip("/") + "/" + proc.exe
        got = task.machine.vfs.canonical(exe)
        return got if isinstance(got, str) else exe
    if rest == "cwd":
        return proc.cwd
    if rest.startswith("fd/"):
        try:
            f = proc.files.get(int(rest[3:]))
        except ValueError:
            return -E.ENOENT
        return -E.ENOENT if f is None else fd_path(task, f)
    return None


def proc_kstat(task: Process, name: str, follow: bool) -> Kstat | int:
    """Attributes of a /proc path: directories, the links above, the generated files."""
    for _ in range(8):
        link = proc_link(task, name)
        if isinstance(link, int):
            return link
        if link is None:
            break
        if not follow:
            return Kstat(PROC_DEV, 0x2000 + len(name), S.S_IFLNK | 0o777, size=0)
        name = link if link.startswith("/") else "/proc/" + link
        if proc_normalise(name) is None:
            return stat_path(task, name, True)
    dirs = {"/proc"}
    m = _PROC_PID.match(name)
    if m and (m.group(1) == "self" or int(m.group(1)) in task.machine.processes):
        pid = m.group(1)
        dirs |= {f"/proc/{pid}", f"/proc/{pid}/fd"}
    if name in dirs:
        return Kstat(PROC_DEV, 1 + len(name), S.S_IFDIR | 0o555, nlink=2)
    got = open_proc(task, name)
    if isinstance(got, int):
        return got
    return Kstat(PROC_DEV, 0x1000 + len(name), S.S_IFREG | 0o444)


def stat_path(task: Process, name: str, follow: bool) -> Kstat | int:
    """vfs_statx() by absolute guest path."""
    proc = proc_normalise(name)
    if proc is not None:
        return proc_kstat(task, proc, follow)
    st = task.machine.vfs.stat(name, follow)
    if st == -E.ENOENT and mem_device_name(name) is not None:
        return kstat_of(task, CharDevice(mem_device_name(name) or "null"))
    return st if isinstance(st, int) else Kstat.from_host(st)


def kstat_of(task: Process, f: object) -> Kstat | int:
    """vfs_getattr() of an open file."""
    if isinstance(f, File):
        inode = f.inode
        if isinstance(inode.backing, VfsBacking):
            st = task.machine.vfs.fstat(f)
            if isinstance(st, int):
                return st
            k = Kstat.from_host(st)
            if S.S_ISREG(k.mode):
                k.size = inode.i_size
            return k
        dev = os.makedev(*inode.dev)
        return Kstat(dev, inode.ino, inode.i_mode, size=inode.i_size,
                     blocks=(inode.nrpages * 8))
    if isinstance(f, PipeEnd):
        return Kstat(PIPE_DEV, f.pipe.ino, S.S_IFIFO | 0o600)
    if isinstance(f, CharDevice):
        return Kstat(os.makedev(*f.inode.dev), f.inode.ino, f.inode.i_mode, rdev=f.rdev)
    if isinstance(f, Console) and f.is_tty:
        return Kstat(0x16, 3, S.S_IFCHR | 0o620, rdev=os.makedev(136, 0), blksize=1024)
    if isinstance(f, ProcFile):
        return Kstat(PROC_DEV, 0x1000 + len(f.name), S.S_IFREG | 0o444, blksize=1024)
    return Kstat(PIPE_DEV, 1, S.S_IFIFO | 0o600)


def file_at(task: Process, dfd: int) -> object | int:
    """The open file of `dfd` for an AT_EMPTY_PATH call (AT_FDCWD: the cwd)."""
    if s32(dfd) == AT_FDCWD:
        return task.cwd
    f = task.files.get(s32(dfd)) if s64(dfd) == s32(dfd) else None
    return -E.EBADF if f is None else f


def statat(task: Process, dfd: int, path_ptr: int, flags: int) -> Kstat | int:
    """vfs_fstatat()/vfs_statx() minus the layout: the attributes or -errno."""
    path = user_path(task, path_ptr, bool(flags & AT_EMPTY_PATH))
    if isinstance(path, int):
        return path
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE):
        return -E.EINVAL
    if not path:
        f = file_at(task, dfd)
        if isinstance(f, int):
            return f
        if isinstance(f, str):
            return stat_path(task, f, True)
        return kstat_of(task, f)
    name = at_path(task, dfd, path)
    if isinstance(name, int):
        return name
    return stat_path(task, name, not flags & AT_SYMLINK_NOFOLLOW)


def put_out(task: Process, buf: int, data: bytes) -> int:
    return 0 if copy_to_user(task, buf, data) else -E.EFAULT


@syscall(4, "stat")
def sys_stat(task: Process, path: int, buf: int, *_: int) -> int:
    k = statat(task, AT_FDCWD, path, 0)
    return k if isinstance(k, int) else put_out(task, buf, pack_stat(k))


@syscall(6, "lstat")
def sys_lstat(task: Process, path: int, buf: int, *_: int) -> int:
    k = statat(task, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW)
    return k if isinstance(k, int) else put_out(task, buf, pack_stat(k))


@syscall(5, "fstat")
def sys_fstat(task: Process, fd: int, buf: int, *_: int) -> int:
    f = task.files.get(s32(fd)) if s64(fd) == s32(fd) else None
    if f is None:
        return -E.EBADF
    k = kstat_of(task, f)
    return k if isinstance(k, int) else put_out(task, buf, pack_stat(k))


@syscall(262, "newfstatat")
def sys_newfstatat(task: Process, dfd: int, path: int, buf: int, flags: int, *_: int) -> int:
    k = statat(task, dfd, path, flags & 0xFFFF_FFFF)
    return k if isinstance(k, int) else put_out(task, buf, pack_stat(k))


@syscall(332, "statx")
def sys_statx(task: Process, dfd: int, path_ptr: int, flags: int, mask: int, buf: int,
              *_: int) -> int:
    """do_statx(): the host's struct statx for host files, basic stats for the rest."""
    flags &= 0xFFFF_FFFF
    mask &= 0xFFFF_FFFF
    path = user_path(task, path_ptr, bool(flags & AT_EMPTY_PATH))
    if isinstance(path, int):
        return path
    if mask & STATX__RESERVED or flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE:
        return -E.EINVAL
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE):
        return -E.EINVAL
    follow = not flags & AT_SYMLINK_NOFOLLOW
    target: object
    if not path:
        got = file_at(task, dfd)
        if isinstance(got, int):
            return got
        target = got
    else:
        name = at_path(task, dfd, path)
        if isinstance(name, int):
            return name
        target = name
    vfs = task.machine.vfs
    if isinstance(target, str) and proc_normalise(target) is None:
        nd = vfs.lookup(target, follow)
        if nd == -E.ENOENT and mem_device_name(target) is not None:
            k = stat_path(task, target, follow)
            return k if isinstance(k, int) else put_out(task, buf, pack_statx(k))
        if isinstance(nd, int):
            return nd
        try:
            raw = host_statx(nd.fd, flags, mask)
        finally:
            nd.close()
        if raw is not None:
            return put_out(task, buf, raw)
        k = stat_path(task, target, follow)
    elif isinstance(target, File) and isinstance(target.inode.backing, VfsBacking):
        raw = host_statx(target.inode.backing.fd, flags, mask)
        if raw is not None:
            if S.S_ISREG(target.inode.i_mode):
                raw = raw[:0x28] + struct.pack("<Q", target.inode.i_size) + raw[0x30:]
            return put_out(task, buf, raw)
        k = kstat_of(task, target)
    elif isinstance(target, str):
        k = stat_path(task, target, follow)
    else:
        k = kstat_of(task, target)
    return k if isinstance(k, int) else put_out(task, buf, pack_statx(k))


# ---- access -----------------------------------------------------------------------------------
def do_faccessat(task: Process, dfd: int, path_ptr: int, mode: int, flags: int) -> int:
    """do_faccessat(): mode and flag checks, then the lookup and the permission check."""
    if mode & ~7:
        return -E.EINVAL
    if flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    path = user_path(task, path_ptr, bool(flags & AT_EMPTY_PATH))
    if isinstance(path, int):
        return path
    follow = not flags & AT_SYMLINK_NOFOLLOW
    if not path:
        f = file_at(task, dfd)
        if isinstance(f, int):
            return f
        if not isinstance(f, str):
            if isinstance(f, File) and isinstance(f.inode.backing, VfsBacking):
                name = f.path
            else:
                return 0 if not mode & 1 else -E.EACCES
        else:
            name = f
    else:
        got = at_path(task, dfd, path)
        if isinstance(got, int):
            return got
        name = got
    proc = proc_normalise(name)
    if proc is not None:
        k = proc_kstat(task, proc, follow)
        if isinstance(k, int):
            return k
        return -E.EACCES if mode & 1 and not k.mode & 0o111 else 0
    got = task.machine.vfs.access(name, mode, follow)
    if got == -E.ENOENT and mem_device_name(name) is not None:
        return -E.EACCES if mode & 1 else 0  # /dev/null and friends: crw-rw-rw-
    return got


@syscall(21, "access")
def sys_access(task: Process, path: int, mode: int, *_: int) -> int:
    return do_faccessat(task, AT_FDCWD, path, s32(mode), 0)


@syscall(269, "faccessat")
def sys_faccessat(task: Process, dfd: int, path: int, mode: int, *_: int) -> int:
    return do_faccessat(task, dfd, path, s32(mode), 0)


@syscall(439, "faccessat2")
def sys_faccessat2(task: Process, dfd: int, path: int, mode: int, flags: int, *_: int) -> int:
    return do_faccessat(task, dfd, path, s32(mode), flags & 0xFFFF_FFFF)


# ---- readlink ----------------------------------------------------------------------------------
def do_readlinkat(task: Process, dfd: int, path_ptr: int, buf: int, bufsiz: int) -> int:
    """do_readlinkat(): the body (not NUL-terminated, cut to bufsiz); -EINVAL if the
    object is not a symlink (-ENOENT for an empty path naming a non-link)."""
    if s32(bufsiz) <= 0:
        return -E.EINVAL
    path = user_path(task, path_ptr, empty_ok=True)
    if isinstance(path, int):
        return path
    if not path:
        f = file_at(task, dfd)
        if isinstance(f, int):
            return f
        if not (isinstance(f, File) and f.f_flags & O_PATH and S.S_ISLNK(f.inode.i_mode)):
            return -E.ENOENT
        backing = f.inode.backing
        try:
            assert isinstance(backing, VfsBacking)
            body = os.readlink(b"", dir_fd=backing.fd)
        except (OSError, AssertionError):
            return -E.ENOENT
    else:
        name = at_path(task, dfd, path)
        if isinstance(name, int):
            return name
        proc = proc_normalise(name)
        if proc is not None:
            link = proc_link(task, proc)
            if link is None:
                k = proc_kstat(task, proc, False)
                return k if isinstance(k, int) else -E.EINVAL
            if isinstance(link, int):
                return link
            body = link.encode("utf-8", "surrogateescape")
        else:
            got = task.machine.vfs.readlink(name)
            if got == -E.ENOENT and mem_device_name(name) is not None:
                return -E.EINVAL
            if isinstance(got, int):
                return got
            body = got
    body = body[:s32(bufsiz)]
    return len(body) if copy_to_user(task, buf, body) else -E.EFAULT


@syscall(89, "readlink")
def sys_readlink(task: Process, path: int, buf: int, bufsiz: int, *_: int) -> int:
    return do_readlinkat(task, AT_FDCWD, path, buf, bufsiz)


@syscall(267, "readlinkat")
def sys_readlinkat(task: Process, dfd: int, path: int, buf: int, bufsiz: int, *_: int) -> int:
    return do_readlinkat(task, dfd, path, buf, bufsiz)
