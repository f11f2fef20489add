"""Directories and names: getdents64, getcwd, chdir, mkdir, rmdir, unlink, rename, symlink,
link, chmod, chown, truncate, fsync (fs/readdir.c, fs/d_path.c, fs/open.c, fs/namei.c, fs/sync.c).

Each call copies its paths (`sys_stat.user_path`), checks its flags in
Linux's order and hands the lookup and the change to `fs/vfs.py`, which
works inside the sandbox root only.
"""

from __future__ import annotations

import errno as E
import os
import stat as S
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from vmsim.fs.vfs import O_PATH, DirFile, VfsBacking
from vmsim.kernel import sys_stat
from vmsim.kernel.files import Console, PipeEnd
from vmsim.kernel.proc_files import ProcFile
from vmsim.kernel.syscalls import s32, s64, syscall
from vmsim.kernel.uaccess import copy_to_user
from vmsim.mm import filemap
from vmsim.mm.filemap import File, Inode
from vmsim.mm.msync import sync_shared_dirty
from vmsim.mm.vma import VM_SHARED

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

AT_EMPTY_PATH = 0x1000
AT_FDCWD = -100
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_SYMLINK_NOFOLLOW = 0x100


DIRENT64_HEAD = 19  # d_ino, d_off, d_reclen, d_type


def _fd(task: Process, fd: int) -> object | None:
    return task.files.get(s32(fd)) if s64(fd) == s32(fd) else None


def _path_at(task: Process, dfd: int, ptr: int) -> str | int:
    """getname() + the dfd: an absolute guest path, or -errno."""
    path = sys_stat.user_path(task, ptr)
    if isinstance(path, int):
        return path
    return sys_stat.at_path(task, dfd, path)


def _not_in_proc(name: str) -> int:
    """vmsim's /proc cannot be changed: -EPERM/-ENOENT as procfs answers (0 = not /proc)."""
    if sys_stat.proc_normalise(name) is None:
        return 0
    return -E.EACCES


def _change_at(task: Process, dfd: int, ptr: int, change: Callable[[str], int]) -> int:
    """`change` of the guest path the user string at `ptr` names relative to `dfd`; -errno
    if it cannot be copied, `_not_in_proc`'s answer for vmsim's /proc."""
    name = _path_at(task, dfd, ptr)
    if isinstance(name, int):
        return name
    return _not_in_proc(name) or change(name)


def _empty_path_at(task: Process, dfd: int, ptr: int, flags: int) -> str | int | None:
    """`_path_at` for the calls that take AT_EMPTY_PATH in `flags`: None for an empty path
    then (the call acts on `dfd` itself)."""
    path = sys_stat.user_path(task, ptr, bool(flags & AT_EMPTY_PATH))
    if isinstance(path, int):
        return path
    if not path:
        return None
    return sys_stat.at_path(task, dfd, path)


def _two_names(task: Process, olddfd: int, old: int, newdfd: int,
               new: int) -> tuple[str, str] | int:
    """Both paths of rename/link, the old copied first; -EXDEV if either is in /proc."""
    oname = _path_at(task, olddfd, old)
    if isinstance(oname, int):
        return oname
    nname = _path_at(task, newdfd, new)
    if isinstance(nname, int):
        return nname
    if sys_stat.proc_normalise(oname) is not None or sys_stat.proc_normalise(nname) is not None:
        return -E.EXDEV
    return oname, nname


# ---- getdents64 -------------------------------------------------------------------------------
@syscall(217, "getdents64")
def sys_getdents64(task: Process, fd: int, dirp: int, count: int, *_: int) -> int:
    """getdents64(): as many struct linux_dirent64 as fit in `count` bytes (reclen rounded
    up to 8); -EINVAL if not even the next one fits; 0 at the end. d_off is the position
    after the entry (an index: what lseek/telldir give back)."""
    f = task.files.get(fd & 0xFFFF_FFFF) if (fd & 0xFFFF_FFFF) < (1 << 31) else None
    if f is None or (isinstance(f, File) and f.f_flags & O_PATH):
        return -E.EBADF
    if not isinstance(f, DirFile):
        return -E.ENOTDIR
    if f.entries is None or f.f_pos == 0:
        got = task.machine.vfs.readdir(f)
        if isinstance(got, int):
            return got
        f.entries = got
    room = s32(count)
    out = bytearray()
    pos = f.f_pos
    while pos < len(f.entries):
        name, ino, dtype = f.entries[pos]
        reclen = (DIRENT64_HEAD + len(name) + 1 + 7) & ~7
        if reclen > room - len(out):
            if not out:
                return -E.EINVAL
            break
        out += struct.pack("<QqHB", ino, pos + 1, reclen, dtype) + name
        out += bytes(reclen - DIRENT64_HEAD - len(name))
        pos += 1
    if out and not copy_to_user(task, dirp, bytes(out)):
        return -E.EFAULT
    f.f_pos = pos
    return len(out)


# ---- the working directory ------------------------------------------------------------------------
@syscall(79, "getcwd")
def sys_getcwd(task: Process, buf: int, size: int, *_: int) -> int:
    """getcwd(): the cwd's path with its NUL; -ENOENT if it was removed, -ERANGE if it does
    not fit. (vmsim keeps the cwd as a path: a cwd renamed away is treated as removed.)"""
    got = (task.cwd if sys_stat.proc_normalise(task.cwd) is not None
           else task.machine.vfs.canonical(task.cwd, directory=True))
    if isinstance(got, int):
        return -E.ENOENT
    data = got.encode("utf-8", "surrogateescape") + b"\0"
    if len(data) > size:
        return -E.ERANGE
    return len(data) if copy_to_user(task, buf, data) else -E.EFAULT


def _set_cwd(task: Process, name: str) -> int:
    vfs = task.machine.vfs
    got = vfs.canonical(name, directory=True)
    if isinstance(got, int):
        return got
    err = vfs.access(got, 1)
    if err:
        return err
    task.cwd = got
    return 0


@syscall(80, "chdir")
def sys_chdir(task: Process, path: int, *_: int) -> int:
    name = _path_at(task, AT_FDCWD, path)
    if isinstance(name, int):
        return name
    proc = sys_stat.proc_normalise(name)
    if proc is not None:  # vmsim's /proc: its directories can be the cwd too
        k = sys_stat.proc_kstat(task, proc, True)
        if isinstance(k, int):
            return k
        if not S.S_ISDIR(k.mode):
            return -E.ENOTDIR
        parts = proc.split("/")
        if len(parts) > 2 and parts[2] == "self":  # /proc/self is a link to /proc/PID
            parts[2] = str(task.pid)
        task.cwd = "/".join(parts)
        return 0
    return _set_cwd(task, name)


@syscall(81, "fchdir")
def sys_fchdir(task: Process, fd: int, *_: int) -> int:
    f = _fd(task, fd)
    if f is None:
        return -E.EBADF
    if not isinstance(f, DirFile):
        return -E.ENOTDIR
    return _set_cwd(task, f.path)


# ---- creating and removing names ----------------------------------------------------------------
def do_mkdirat(task: Process, dfd: int, path: int, mode: int) -> int:
    name = _path_at(task, dfd, path)
    if isinstance(name, int):
        return name
    if sys_stat.proc_normalise(name) is not None:
        return -E.EEXIST if sys_stat.proc_normalise(name) == "/proc" else -E.ENOENT
    return task.machine.vfs.mkdir(name, mode & 0o1777 & ~task.umask)


@syscall(83, "mkdir")
def sys_mkdir(task: Process, path: int, mode: int, *_: int) -> int:
    return do_mkdirat(task, AT_FDCWD, path, mode)


@syscall(258, "mkdirat")
def sys_mkdirat(task: Process, dfd: int, path: int, mode: int, *_: int) -> int:
    return do_mkdirat(task, dfd, path, mode)


def do_rmdir(task: Process, dfd: int, path: int) -> int:
    return _change_at(task, dfd, path, task.machine.vfs.rmdir)


def do_unlinkat(task: Process, dfd: int, path: int) -> int:
    return _change_at(task, dfd, path, task.machine.vfs.unlink)


@syscall(84, "rmdir")
def sys_rmdir(task: Process, path: int, *_: int) -> int:
    return do_rmdir(task, AT_FDCWD, path)


@syscall(87, "unlink")
def sys_unlink(task: Process, path: int, *_: int) -> int:
    return do_unlinkat(task, AT_FDCWD, path)


@syscall(263, "unlinkat")
def sys_unlinkat(task: Process, dfd: int, path: int, flags: int, *_: int) -> int:
    flags = s32(flags)
    if flags & ~AT_REMOVEDIR:
        return -E.EINVAL
    if flags & AT_REMOVEDIR:
        return do_rmdir(task, dfd, path)
    return do_unlinkat(task, dfd, path)


def do_renameat2(task: Process, olddfd: int, old: int, newdfd: int, new: int, flags: int) -> int:
    """do_renameat2(): both names are copied first, then vfs.rename checks the flags."""
    names = _two_names(task, olddfd, old, newdfd, new)
    if isinstance(names, int):
        return names
    return task.machine.vfs.rename(*names, flags)


@syscall(82, "rename")
def sys_rename(task: Process, old: int, new: int, *_: int) -> int:
    return do_renameat2(task, AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall(264, "renameat")
def sys_renameat(task: Process, olddfd: int, old: int, newdfd: int, new: int, *_: int) -> int:
    return do_renameat2(task, olddfd, old, newdfd, new, 0)


@syscall(316, "renameat2")
def sys_renameat2(task: Process, olddfd: int, old: int, newdfd: int, new: int, flags: int,
                  *_: int) -> int:
    return do_renameat2(task, olddfd, old, newdfd, new, flags & 0xFFFF_FFFF)


def do_symlinkat(task: Process, target_ptr: int, newdfd: int, path: int) -> int:
    target = sys_stat.user_path(task, target_ptr)
    if isinstance(target, int):
        return target
    return _change_at(task, newdfd, path, lambda name: task.machine.vfs.symlink(target, name))


@syscall(88, "symlink")
def sys_symlink(task: Process, target: int, path: int, *_: int) -> int:
    return do_symlinkat(task, target, AT_FDCWD, path)


@syscall(266, "symlinkat")
def sys_symlinkat(task: Process, target: int, newdfd: int, path: int, *_: int) -> int:
    return do_symlinkat(task, target, newdfd, path)


def do_linkat(task: Process, olddfd: int, old: int, newdfd: int, new: int, flags: int) -> int:
    """do_linkat(): AT_SYMLINK_FOLLOW follows a final symlink of the old name."""
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    names = _two_names(task, olddfd, old, newdfd, new)
    if isinstance(names, int):
        return names
    return task.machine.vfs.link(*names, bool(flags & AT_SYMLINK_FOLLOW))


@syscall(86, "link")
def sys_link(task: Process, old: int, new: int, *_: int) -> int:
    return do_linkat(task, AT_FDCWD, old, AT_FDCWD, new, 0)


@syscall(265, "linkat")
def sys_linkat(task: Process, olddfd: int, old: int, newdfd: int, new: int, flags: int,
               *_: int) -> int:
    return do_linkat(task, olddfd, old, newdfd, new, s32(flags))


# ---- attributes -----------------------------------------------------------------------------------
def do_fchmodat(task: Process, dfd: int, path: int, mode: int, flags: int = 0) -> int:
    """do_fchmodat(): AT_SYMLINK_NOFOLLOW (fchmodat2 only) refuses symlinks."""
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    name = _empty_path_at(task, dfd, path, flags)
    if name is None:
        return sys_fchmod(task, dfd, mode)
    if isinstance(name, int):
        return name
    return _not_in_proc(name) or task.machine.vfs.chmod(name, mode & 0o7777,
                                                        not flags & AT_SYMLINK_NOFOLLOW)


@syscall(90, "chmod")
def sys_chmod(task: Process, path: int, mode: int, *_: int) -> int:
    return do_fchmodat(task, AT_FDCWD, path, mode)


@syscall(268, "fchmodat")
def sys_fchmodat(task: Process, dfd: int, path: int, mode: int, *_: int) -> int:
    return do_fchmodat(task, dfd, path, mode)


@syscall(452, "fchmodat2")
def sys_fchmodat2(task: Process, dfd: int, path: int, mode: int, flags: int, *_: int) -> int:
    return do_fchmodat(task, dfd, path, mode, s32(flags))


@syscall(91, "fchmod")
def sys_fchmod(task: Process, fd: int, mode: int, *_: int) -> int:
    f = _fd(task, fd)
    if f is None or (isinstance(f, File) and f.f_flags & O_PATH):
        return -E.EBADF
    if isinstance(f, File) and isinstance(f.inode.backing, VfsBacking):
        return task.machine.vfs.fchmod(f, mode & 0o7777)
    if isinstance(f, File):
        f.inode.i_mode = (f.inode.i_mode & ~0o7777) | (mode & 0o7777)
        return 0
    return 0 if isinstance(f, (PipeEnd, Console)) else -E.EPERM


@syscall(76, "truncate")
def sys_truncate(task: Process, path: int, length: int, *_: int) -> int:
    """do_sys_truncate(): a negative length first, then the lookup."""
    if s64(length) < 0:
        return -E.EINVAL
    return _change_at(task, AT_FDCWD, path,
                      lambda name: task.machine.vfs.truncate(name, s64(length)))


@syscall(77, "ftruncate")
def sys_ftruncate(task: Process, fd: int, length: int, *_: int) -> int:
    """do_sys_ftruncate(): -EINVAL for a negative length, then -EBADF, then -EINVAL unless
    a regular file open for writing; pages past the new end leave every mapping."""
    if s64(length) < 0:
        return -E.EINVAL
    f = _fd(task, fd)
    if f is None or (isinstance(f, File) and f.f_flags & O_PATH):
        return -E.EBADF
    if not isinstance(f, File) or not f.writable:
        return -E.EINVAL
    inode = f.inode
    if not (inode.shmem or S.S_ISREG(inode.i_mode)):
        return -E.EINVAL
    return task.machine.vfs.truncate_inode(inode, s64(length))


# ---- writeback --------------------------------------------------------------------------------------
def _writeback(task: Process, inode: Inode) -> None:
    """Hardware dirty bits of shared mappings to the pages, then the dirty pages out."""
    kmem = task.machine.kmem
    for vma in list(inode.i_mmap):
        if vma.vm_flags & VM_SHARED and vma.vm_mm is not None:
            sync_shared_dirty(vma.vm_mm, vma.vm_start, vma.vm_end)
    filemap.writeback_range(kmem, inode, 0, filemap.last_index(kmem, inode) + 1)


def vfs_fsync(task: Process, fd: int, datasync: bool) -> int:
    """vfs_fsync_range() -> file_write_and_wait_range(): dirty bits of shared mappings move to
    their pages (as msync does), the dirty page-cache pages are written to the host file,
    and the host file is synced. Pipes, the console and /proc have no ->fsync: -EINVAL."""
    f = _fd(task, fd)
    if f is None or (isinstance(f, File) and f.f_flags & O_PATH):
        return -E.EBADF
    if isinstance(f, (PipeEnd, Console, ProcFile)) or not isinstance(f, File):
        return -E.EINVAL
    inode = f.inode
    _writeback(task, inode)
    backing = inode.backing
    if isinstance(backing, VfsBacking) and backing.level:
        try:
            (os.fdatasync if datasync else os.fsync)(backing.fd)
        except OSError as exc:
            if exc.errno not in (E.EINVAL, E.EBADF):
                return -(exc.errno or E.EIO)
    return 0


@syscall(74, "fsync")
def sys_fsync(task: Process, fd: int, *_: int) -> int:
    return vfs_fsync(task, fd, False)


@syscall(75, "fdatasync")
def sys_fdatasync(task: Process, fd: int, *_: int) -> int:
    return vfs_fsync(task, fd, True)


# ---- ownership ----------------------------------------------------------------------------------
def _ids(uid: int, gid: int) -> tuple[int, int]:
    """uid/gid arguments as the host wants them (-1, i.e. 0xFFFFFFFF, leaves one unchanged)."""
    u, g = uid & 0xFFFF_FFFF, gid & 0xFFFF_FFFF
    return (-1 if u == 0xFFFF_FFFF else u), (-1 if g == 0xFFFF_FFFF else g)


def do_fchownat(task: Process, dfd: int, path: int, uid: int, gid: int, flags: int) -> int:
    """do_fchownat(): AT_SYMLINK_NOFOLLOW changes a symlink itself; the host decides EPERM."""
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -E.EINVAL
    name = _empty_path_at(task, dfd, path, flags)
    if name is None:
        return sys_fchown(task, dfd, uid, gid)
    if isinstance(name, int):
        return name
    if sys_stat.proc_normalise(name) is not None:
        return -E.EPERM
    return task.machine.vfs.chown(name, *_ids(uid, gid), not flags & AT_SYMLINK_NOFOLLOW)


@syscall(92, "chown")
def sys_chown(task: Process, path: int, uid: int, gid: int, *_: int) -> int:
    return do_fchownat(task, AT_FDCWD, path, uid, gid, 0)


@syscall(94, "lchown")
def sys_lchown(task: Process, path: int, uid: int, gid: int, *_: int) -> int:
    return do_fchownat(task, AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)


@syscall(260, "fchownat")
def sys_fchownat(task: Process, dfd: int, path: int, uid: int, gid: int, flags: int,
                 *_: int) -> int:
    return do_fchownat(task, dfd, path, uid, gid, s32(flags))


@syscall(93, "fchown")
def sys_fchown(task: Process, fd: int, uid: int, gid: int, *_: int) -> int:
    f = _fd(task, fd)
    if f is None or (isinstance(f, File) and f.f_flags & O_PATH):
        return -E.EBADF
    if not isinstance(f, File) or not isinstance(f.inode.backing, VfsBacking):
        return 0
    return task.machine.vfs.fchown(f, *_ids(uid, gid))


@syscall(162, "sync")
def sys_sync(task: Process, *_: int) -> int:
    """ksys_sync(): write back every file's dirty pages (shared mappings included)."""
    for inode in list(task.machine.vfs.inodes.values()):
        _writeback(task, inode)
    return 0


@syscall(306, "syncfs")
def sys_syncfs(task: Process, fd: int, *_: int) -> int:
    if _fd(task, fd) is None:
        return -E.EBADF
    return sys_sync(task)
