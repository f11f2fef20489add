"""Descriptors and I/O of real programs (fs/read_write.c, fs/open.c, fs/fcntl.c, fs/pipe.c,
fs/ioctl.c). Every pointer goes through `uaccess` (-EFAULT on a bad one; reads and writes
stop with a short count at the first bad byte, as Linux's copy routines do).

The calls that look at or change names live beside this module: `sys_stat`
(stat, statx, access, readlink) and `sys_dir` (getdents64, cwd, mkdir, rmdir,
unlink, rename, symlink, link, chmod, truncate, fsync); paths are resolved
inside the sandbox by `fs/vfs.py`.
"""

from __future__ import annotations

import errno as E
import struct
from typing import TYPE_CHECKING

from vmsim.fs.vfs import O_PATH, CharDevice, DirFile
from vmsim.kernel.files import Console, Pipe, PipeEnd, fd_read, fd_write, fput, get_file
from vmsim.kernel.proc_files import ProcFile, open_proc
from vmsim.kernel.syscalls import s32, s64, syscall
from vmsim.kernel.uaccess import (
    access_ok,
    copy_from_user,
    copy_from_user_partial,
    copy_to_user,
    copy_to_user_partial,
    get_user_u64,
    put_user_u64,
    strncpy_from_user,
)
from vmsim.mm.filemap import File

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

AT_FDCWD = -100
PATH_MAX = 4096
MAX_RW_COUNT = 0x7FFF_F000  # INT_MAX & PAGE_MASK: the most one read/write moves
O_CLOEXEC = 0o2000000
O_NONBLOCK = 0o4000
O_LARGEFILE = 0o100000
#: setfl(): the status flags F_SETFL may change (O_APPEND, O_NONBLOCK, O_ASYNC, O_DIRECT,
#: O_NOATIME).
SETFL_MASK = 0o2000 | O_NONBLOCK | 0o20000 | 0o40000 | 0o1000000
FD_CLOEXEC = 1
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
TCGETS, TIOCGWINSZ, FIONREAD = 0x5401, 0x5413, 0x541B
S_IFIFO, S_IFCHR, S_IFREG = 0o010000, 0o020000, 0o100000
IOV_MAX = 1024
PIPE_PAGE = 4096


def lookup_fd(task: Process, fd: int) -> object | None:
    return task.files.get(s32(fd)) if s64(fd) == s32(fd) else None


def install_fd(task: Process, f: object, cloexec: bool = False, lowest: int = 0) -> int:
    """fd_install() at the lowest free descriptor >= `lowest`; -EMFILE past RLIMIT_NOFILE."""
    fd = lowest
    while fd in task.files:
        fd += 1
    if fd >= task.nofile:
        return -E.EMFILE
    task.files[fd] = f
    if cloexec:
        task.cloexec.add(fd)
    else:
        task.cloexec.discard(fd)
    return fd


def close_fd(task: Process, fd: int) -> int:
    f = task.files.pop(fd, None)
    if f is None:
        return -E.EBADF
    task.cloexec.discard(fd)
    fput(task, f)
    return 0


# ---- read and write ----------------------------------------------------------------------
def _unread(f: object, rest: bytes) -> None:
    """Put back what a read took but could not copy to the user (the copy stopped at a bad
    byte): the file position moves back, a pipe or the console keeps the bytes."""
    if not rest:
        return
    if isinstance(f, PipeEnd):  # back at the head of the ring, page by page
        for at in reversed(range(0, len(rest), PIPE_PAGE)):
            f.pipe.bufs.appendleft(bytearray(rest[at:at + PIPE_PAGE]))
    elif isinstance(f, Console):
        f.source[:0] = rest
    elif hasattr(f, "f_pos") and not isinstance(f, CharDevice):
        f.f_pos -= len(rest)  # type: ignore[attr-defined]


def _read_done(f: object, data: bytes, done: int) -> int:
    """The result of a read that copied `done` bytes of `data` to the user: a pipe or the
    console consumes nothing on a short copy (pipe_read(): a pipe buffer is consumed only
    once wholly copied; vmsim treats the bytes of one read as one buffer), the uncopied rest
    is put back (`_unread`); the count, or -EFAULT if nothing was copied."""
    if done < len(data) and isinstance(f, (PipeEnd, Console)):
        done = 0
    _unread(f, data[done:])
    return done if done or not data else -E.EFAULT


@syscall(0, "read")
def sys_read(task: Process, fd: int, buf: int, count: int, *_: int) -> int | None:
    """ksys_read() -> vfs_read(): -EBADF, then access_ok() on the whole buffer (-EFAULT even
    for a count of 0 at a kernel address), then the read; a copy that stops at an
    inaccessible byte returns the short count (-EFAULT if nothing was copied). A pipe
    consumes nothing on a short copy (vmsim treats the bytes of one read as one buffer)."""
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    if isinstance(f, File) and not f.readable:
        return -E.EBADF
    if not access_ok(buf, count):
        return -E.EFAULT
    data = fd_read(task, f, min(count, MAX_RW_COUNT))
    if data is None or isinstance(data, int):
        return data
    return _read_done(f, data, copy_to_user_partial(task, buf, data))


@syscall(1, "write")
def sys_write(task: Process, fd: int, buf: int, count: int, *_: int) -> int | None:
    """ksys_write() -> vfs_write(): -EBADF, access_ok(), then as many leading bytes as can be
    copied from the user (-EFAULT if none; a pipe takes all or nothing)."""
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    if isinstance(f, File) and not f.writable:
        return -E.EBADF
    if not access_ok(buf, count):
        return -E.EFAULT
    count = min(count, MAX_RW_COUNT)
    data = copy_from_user_partial(task, buf, count)
    if (count and not data) or (len(data) < count and isinstance(f, (PipeEnd, Console))):
        return -E.EFAULT  # pipe_write() fails a short copy
    return fd_write(task, f, data)


IOVEC = "<QQ"  # struct iovec; an i386 task's struct compat_iovec is "<II"


def _iovecs(task: Process, iov: int, iovcnt: int,
            layout: str = IOVEC) -> list[tuple[int, int]] | int:
    """import_iovec(): the vectors, -EINVAL for a bad count or a negative length (as the
    ABI's ssize_t), -EFAULT for an unreadable array."""
    if s32(iovcnt) < 0 or s32(iovcnt) > IOV_MAX:
        return -E.EINVAL
    size = struct.calcsize(layout)
    raw = copy_from_user(task, iov, size * iovcnt)
    if raw is None:
        return -E.EFAULT
    vecs = [struct.unpack_from(layout, raw, size * i) for i in range(iovcnt)]
    if any(length >> (4 * size - 1) for _, length in vecs):
        return -E.EINVAL
    return vecs


@syscall(19, "readv")
def sys_readv(task: Process, fd: int, iov: int, iovcnt: int, *_: int) -> int | None:
    return do_readv(task, fd, iov, iovcnt, IOVEC)


def do_readv(task: Process, fd: int, iov: int, iovcnt: int, layout: str) -> int | None:
    """do_readv(): one read, scattered over the vectors (`layout`: the ABI's iovec)."""
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    vecs = _iovecs(task, iov, iovcnt, layout)
    if isinstance(vecs, int):
        return vecs
    want = sum(length for _, length in vecs)
    if not want:
        return 0
    data = fd_read(task, f, min(want, MAX_RW_COUNT))
    if data is None or isinstance(data, int):
        return data
    done = 0  # scatter: copy_page_to_iter() across the vectors, stopping at a bad byte
    for base, length in vecs:
        piece = data[done:done + length]
        if not piece:
            break
        got = copy_to_user_partial(task, base, piece)
        done += got
        if got < len(piece):
            break
    return _read_done(f, data, done)


@syscall(20, "writev")
def sys_writev(task: Process, fd: int, iov: int, iovcnt: int, *_: int) -> int | None:
    return do_writev(task, fd, iov, iovcnt, IOVEC)


def do_writev(task: Process, fd: int, iov: int, iovcnt: int, layout: str) -> int | None:
    """do_writev(): the vectors gathered (stopping at the first bad byte) and written as one
    write (`layout`: the ABI's iovec)."""
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    vecs = _iovecs(task, iov, iovcnt, layout)
    if isinstance(vecs, int):
        return vecs
    if isinstance(f, File) and not f.writable:
        return -E.EBADF
    chunks = []
    for base, length in vecs:
        data = copy_from_user_partial(task, base, length)
        chunks.append(data)
        if len(data) < length:  # the copy stops at the first bad byte
            if isinstance(f, (PipeEnd, Console)):
                return -E.EFAULT
            break
    data = b"".join(chunks)
    if not data and any(length for _, length in vecs):
        return -E.EFAULT
    return fd_write(task, f, data)


@syscall(17, "pread64")
def sys_pread64(task: Process, fd: int, buf: int, count: int, pos: int, *_: int) -> int:
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    if s64(pos) < 0:
        return -E.EINVAL
    if isinstance(f, ProcFile):
        data = f.pread(task, min(count, MAX_RW_COUNT), pos)
        if isinstance(data, int):
            return data
        return len(data) if copy_to_user(task, buf, data) else -E.EFAULT
    if not isinstance(f, File):
        return -E.ESPIPE
    if f.f_flags & O_PATH or not f.readable:
        return -E.EBADF
    if isinstance(f, DirFile):
        return -E.EISDIR
    if not access_ok(buf, count):
        return -E.EFAULT
    got = task.pread(s32(fd), min(count, MAX_RW_COUNT), pos)
    if isinstance(got, int):
        return got
    done = copy_to_user_partial(task, buf, got)
    return done if done or not got else -E.EFAULT


@syscall(18, "pwrite64")
def sys_pwrite64(task: Process, fd: int, buf: int, count: int, pos: int, *_: int) -> int:
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    if not isinstance(f, File):
        return -E.ESPIPE
    if not f.writable:
        return -E.EBADF
    if s64(pos) < 0:
        return -E.EINVAL
    if not access_ok(buf, count):
        return -E.EFAULT
    count = min(count, MAX_RW_COUNT)
    data = copy_from_user_partial(task, buf, count)
    if count and not data:
        return -E.EFAULT
    return task.pwrite(s32(fd), data, s64(pos))


@syscall(40, "sendfile")
def sys_sendfile(task: Process, out_fd: int, in_fd: int, offset_ptr: int, count: int,
                 *_: int) -> int | None:
    """do_sendfile() (fs/read_write.c): copy from a regular file (at *offset, which is
    updated, or at its file position) to any file; -EBADF unless readable/writable, -EINVAL
    for a source that is not a regular file or an O_APPEND destination."""
    fin, fout = lookup_fd(task, in_fd), lookup_fd(task, out_fd)
    if fin is None or fout is None:
        return -E.EBADF
    if isinstance(fin, File) and (fin.f_flags & O_PATH or not fin.readable):
        return -E.EBADF
    if isinstance(fout, File) and (fout.f_flags & O_PATH or not fout.writable):
        return -E.EBADF
    if not isinstance(fin, File) or isinstance(fin, DirFile) or fin.inode.backing is None:
        return -E.EINVAL
    if isinstance(fout, File) and fout.f_flags & 0o2000:
        return -E.EINVAL
    if offset_ptr:
        pos = get_user_u64(task, offset_ptr)
        if pos is None:
            return -E.EFAULT
        if s64(pos) < 0:
            return -E.EINVAL
    else:
        pos = fin.f_pos
    data = task.pread(s32(in_fd), min(count, MAX_RW_COUNT), pos)
    if isinstance(data, int):
        return data
    n = fd_write(task, fout, data) if data else 0
    if n is None or n < 0:
        return n
    if offset_ptr:
        return n if put_user_u64(task, offset_ptr, pos + n) else -E.EFAULT
    fin.f_pos = pos + n
    return n


@syscall(8, "lseek")
def sys_lseek(task: Process, fd: int, offset: int, whence: int, *_: int) -> int:
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    if isinstance(f, ProcFile):
        return f.lseek(s64(offset), s32(whence))
    if isinstance(f, CharDevice):  # null_lseek(): the position stays 0
        return 0
    if not isinstance(f, File):
        return -E.ESPIPE
    if f.f_flags & O_PATH:
        return -E.EBADF
    if isinstance(f, DirFile):  # a position in the directory's entries; 0 rereads them
        base = {0: 0, 1: f.f_pos}.get(s32(whence))
    else:
        base = {0: 0, 1: f.f_pos, 2: f.inode.i_size}.get(s32(whence))
    if base is None:
        return -E.EINVAL
    pos = base + s64(offset)
    if pos < 0:
        return -E.EINVAL
    f.f_pos = pos
    return pos


# ---- open and close -------------------------------------------------------------------------
def do_sys_open(task: Process, dfd: int, path_ptr: int, flags: int, mode: int) -> int:
    path = strncpy_from_user(task, path_ptr, PATH_MAX)
    if isinstance(path, int):
        return path
    if not path:
        return -E.ENOENT
    name = task.resolve_path(s32(dfd), path.decode("utf-8", "surrogateescape"))
    if isinstance(name, int):
        return name
    if name == "/proc" or name.startswith("/proc/"):  # generated by vmsim, not the host
        proc = open_proc(task, name)
        return proc if isinstance(proc, int) else install_fd(task, proc, bool(flags & O_CLOEXEC))
    flags |= O_LARGEFILE  # force_o_largefile(): always on 64-bit
    got = task.machine.vfs.open(name, flags & ~O_CLOEXEC, mode & 0o7777 & ~task.umask)
    if isinstance(got, int):
        return got
    return install_fd(task, got, bool(flags & O_CLOEXEC))


@syscall(2, "open")
def sys_open(task: Process, path: int, flags: int, mode: int, *_: int) -> int:
    return do_sys_open(task, AT_FDCWD, path, flags & 0xFFFF_FFFF, mode)


@syscall(257, "openat")
def sys_openat(task: Process, dfd: int, path: int, flags: int, mode: int, *_: int) -> int:
    return do_sys_open(task, dfd, path, flags & 0xFFFF_FFFF, mode)


@syscall(3, "close")
def sys_close(task: Process, fd: int, *_: int) -> int:
    return close_fd(task, s32(fd))


CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4


@syscall(436, "close_range")
def sys_close_range(task: Process, first: int, last: int, flags: int, *_: int) -> int:
    """close_range() (fs/file.c): close, or mark close-on-exec, every descriptor in
    [first, last] (unsigned ints); CLOSE_RANGE_UNSHARE is a no-op (no shared tables)."""
    first, last, flags = first & 0xFFFF_FFFF, last & 0xFFFF_FFFF, flags & 0xFFFF_FFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        return -E.EINVAL
    for fd in sorted(fd for fd in task.files if first <= fd <= last):
        if flags & CLOSE_RANGE_CLOEXEC:
            task.cloexec.add(fd)
        else:
            close_fd(task, fd)
    return 0


@syscall(221, "fadvise64")
def sys_fadvise64(task: Process, fd: int, offset: int, length: int, advice: int,
                  *_: int) -> int:
    """generic_fadvise(): advice is accepted and not acted on (vmsim's read-ahead is the
    page cache's own); -ESPIPE for pipes, -EINVAL for bad advice or a negative length."""
    f = lookup_fd(task, fd)
    if f is None or (isinstance(f, File) and f.f_flags & O_PATH):
        return -E.EBADF
    if isinstance(f, (PipeEnd, Console)):
        return -E.ESPIPE
    if s64(length) < 0 or not 0 <= s32(advice) <= 5:
        return -E.EINVAL
    return 0


@syscall(32, "dup")
def sys_dup(task: Process, fd: int, *_: int) -> int:
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    new = install_fd(task, f)
    if new >= 0:
        get_file(f)
    return new


def _dup_to(task: Process, old: int, new: int, cloexec: bool) -> int:
    f = lookup_fd(task, old)
    if f is None:
        return -E.EBADF
    new = s32(new)
    if new < 0 or new >= task.nofile:
        return -E.EBADF
    if new in task.files:
        close_fd(task, new)
    get_file(f)
    task.files[new] = f
    if cloexec:
        task.cloexec.add(new)
    return new


@syscall(33, "dup2")
def sys_dup2(task: Process, old: int, new: int, *_: int) -> int:
    if s32(old) == s32(new):
        return s32(new) if lookup_fd(task, old) is not None else -E.EBADF
    return _dup_to(task, old, new, False)


@syscall(292, "dup3")
def sys_dup3(task: Process, old: int, new: int, flags: int, *_: int) -> int:
    if flags & ~O_CLOEXEC:
        return -E.EINVAL
    if s32(old) == s32(new):
        return -E.EINVAL
    return _dup_to(task, old, new, bool(flags & O_CLOEXEC))


@syscall(72, "fcntl")
def sys_fcntl(task: Process, fd: int, cmd: int, arg: int, *_: int) -> int:
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    cmd, fd = s32(cmd), s32(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if s64(arg) < 0 or s64(arg) >= task.nofile:
            return -E.EINVAL
        new = install_fd(task, f, cmd == F_DUPFD_CLOEXEC, lowest=arg)
        if new >= 0:
            get_file(f)
        return new
    if cmd == F_GETFD:
        return FD_CLOEXEC if fd in task.cloexec else 0
    if cmd == F_SETFD:
        if arg & FD_CLOEXEC:
            task.cloexec.add(fd)
        else:
            task.cloexec.discard(fd)
        return 0
    if cmd == F_GETFL:
        return getattr(f, "f_flags", 0) & ~O_CLOEXEC
    if cmd == F_SETFL:
        keep = getattr(f, "f_flags", 0) & ~SETFL_MASK
        f.f_flags = keep | (arg & SETFL_MASK)  # type: ignore[attr-defined]
        return 0
    return -E.EINVAL


# ---- pipes ------------------------------------------------------------------------------------
def do_pipe2(task: Process, fds_ptr: int, flags: int) -> int:
    if flags & ~(O_CLOEXEC | O_NONBLOCK | 0o40000):  # O_DIRECT accepted
        return -E.EINVAL
    pipe = Pipe(ino=task.machine.next_ino())
    ends = [PipeEnd(pipe, False, 0 | (flags & O_NONBLOCK)), PipeEnd(pipe, True, 1 | (flags & O_NONBLOCK))]
    fds = []
    for end in ends:
        fd = install_fd(task, end, bool(flags & O_CLOEXEC))
        if fd < 0:
            for got in fds:
                task.files.pop(got, None)
            return fd
        end.opened()
        fds.append(fd)
    if not copy_to_user(task, fds_ptr, struct.pack("<ii", *fds)):
        for fd in fds:
            close_fd(task, fd)
        return -E.EFAULT
    return 0


@syscall(22, "pipe")
def sys_pipe(task: Process, fds: int, *_: int) -> int:
    return do_pipe2(task, fds, 0)


@syscall(293, "pipe2")
def sys_pipe2(task: Process, fds: int, flags: int, *_: int) -> int:
    return do_pipe2(task, fds, flags & 0xFFFF_FFFF)


# ---- ioctl ----------------------------------------------------------------------------------
@syscall(16, "ioctl")
def sys_ioctl(task: Process, fd: int, cmd: int, arg: int, *_: int) -> int:
    f = lookup_fd(task, fd)
    if f is None:
        return -E.EBADF
    cmd &= 0xFFFF_FFFF
    if cmd == FIONREAD and isinstance(f, PipeEnd):
        return 0 if copy_to_user(task, arg, struct.pack("<i", len(f.pipe.buf))) else -E.EFAULT
    if isinstance(f, Console) and f.is_tty:
        if cmd == TIOCGWINSZ:
            return 0 if copy_to_user(task, arg, struct.pack("<HHHH", 24, 80, 0, 0)) else -E.EFAULT
        if cmd == TCGETS:
            termios = struct.pack("<IIII", 0x500, 0x5, 0xBF, 0x8A3B) + bytes(19 + 2 * 4)
            return 0 if copy_to_user(task, arg, termios[:36]) else -E.EFAULT
    return -E.ENOTTY
