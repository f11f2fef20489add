"""Open files of real programs: the terminal, pipes and the fd table (fs/file.c, fs/pipe.c).

Regular files are `mm.filemap.File` (their data goes through the page
cache); the terminal and pipes are the objects here. `read`/`write` return
bytes or a count, -errno, or None when the caller must block (the
scheduler then parks the task on its `syscall` instruction and repeats the
call when woken).
"""

from __future__ import annotations

import errno as E
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from vmsim.mm import filemap
from vmsim.mm.filemap import File

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

PIPE_BUF = 4096
PIPE_SIZE = 16 * 4096  # the default pipe capacity: 16 pages


@dataclass(eq=False)
class Console:
    """The machine's terminal: writes are collected per stream (and may be echoed); reads
    take from the input given to the machine, then see end of file."""

    name: str  # "stdin" | "stdout" | "stderr"
    sink: bytearray = field(default_factory=bytearray)
    source: bytearray = field(default_factory=bytearray)
    echo: TextIO | None = None
    f_flags: int = 2  # O_RDWR
    is_tty: bool = False

    def read(self, task: Process, n: int) -> bytes | int | None:
        data = bytes(self.source[:n])
        del self.source[:n]
        return data

    def write(self, task: Process, data: bytes) -> int | None:
        self.sink += data
        if self.echo is not None:
            self.echo.write(data.decode("utf-8", "replace"))
            self.echo.flush()
        return len(data)


@dataclass(eq=False)
class Pipe:
    """pipe_inode_info: a bounded byte buffer with reader and writer counts."""

    buf: bytearray = field(default_factory=bytearray)
    readers: int = 0
    writers: int = 0
    waiters: list[Process] = field(default_factory=list)
    ino: int = 0

    def wake_all(self, wake: Callable[[Process], None]) -> None:
        waiters, self.waiters = self.waiters, []
        for task in waiters:
            wake(task)


@dataclass(eq=False)
class PipeEnd:
    """One end of a pipe, as an open file (O_RDONLY or O_WRONLY)."""

    pipe: Pipe
    writer: bool
    f_flags: int = 0
    closed: bool = False

    def read(self, task: Process, n: int) -> bytes | int | None:
        """pipe_read(): what is there (up to n), EOF when no writer is left, else block."""
        if self.writer:
            return -E.EBADF
        p = self.pipe
        if p.buf:
            data = bytes(p.buf[:n])
            del p.buf[:n]
            p.wake_all(task.machine.sched.wake)
            return data
        if p.writers == 0:
            return b""
        if self.f_flags & 0o4000:  # O_NONBLOCK
            return -E.EAGAIN
        p.waiters.append(task)
        return None

    def write(self, task: Process, data: bytes) -> int | None:
        """pipe_write(): SIGPIPE and -EPIPE with no reader; block while full. Writes of at
        most PIPE_BUF bytes are atomic; larger ones may be split."""
        if not self.writer:
            return -E.EBADF
        p = self.pipe
        if p.readers == 0:
            from vmsim.kernel.signal import SIGPIPE, SigInfo, send_signal

            send_signal(task, SigInfo(SIGPIPE, 0, pid=task.pid))
            return -E.EPIPE
        room = PIPE_SIZE - len(p.buf)
        if room <= 0 or (len(data) <= PIPE_BUF and room < len(data)):
            if self.f_flags & 0o4000:
                return -E.EAGAIN
            p.waiters.append(task)
            return None
        n = min(room, len(data))
        p.buf += data[:n]
        p.wake_all(task.machine.sched.wake)
        return n

    def opened(self) -> None:
        if self.writer:
            self.pipe.writers += 1
        else:
            self.pipe.readers += 1

    def release(self, task: Process | None) -> None:
        """The last reference to this end is gone: wake the other side (EOF / EPIPE)."""
        if self.writer:
            self.pipe.writers -= 1
        else:
            self.pipe.readers -= 1
        if task is not None:
            self.pipe.wake_all(task.machine.sched.wake)


def fd_read(task: Process, f: object, n: int) -> bytes | int | None:
    """vfs_read() for any open file."""
    if isinstance(f, File):
        if not f.readable:
            return -E.EBADF
        if (f.inode.i_mode & 0o170000) == 0o040000:
            return -E.EISDIR
        data = filemap.file_read(task.machine.kmem, f.inode, f.f_pos, n)
        f.f_pos += len(data)
        return data
    return f.read(task, n)  # type: ignore[attr-defined]


def fd_write(task: Process, f: object, data: bytes) -> int | None:
    """vfs_write() for any open file (O_APPEND writes at the end)."""
    if isinstance(f, File):
        if not f.writable:
            return -E.EBADF
        if f.f_flags & 0o2000:
            f.f_pos = f.inode.i_size
        n = filemap.file_write(task.machine.kmem, f.inode, f.f_pos, data)
        if n > 0:
            f.f_pos += n
        return n
    return f.write(task, data)  # type: ignore[attr-defined]


def get_file(f: object) -> None:
    """A new reference to an open file (dup, fork)."""
    refs = getattr(f, "_refs", 1)
    object.__setattr__(f, "_refs", refs + 1)


def fput(task: Process | None, f: object) -> None:
    """Drop one reference; the last one releases the file (a pipe end wakes its peer)."""
    refs = getattr(f, "_refs", 1) - 1
    object.__setattr__(f, "_refs", refs)
    if refs <= 0 and isinstance(f, PipeEnd):
        f.release(task)
