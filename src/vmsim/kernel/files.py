"""Open files of real programs: the terminal, pipes and the fd table (fs/file.c, fs/pipe.c).

Regular files are `mm.filemap.File` (their data goes through the page
cache); the terminal and pipes are the objects here. `read`/`write` return
bytes or a count, -errno, or None when the caller must block (the
scheduler then parks the task on its `syscall` instruction and repeats the
call when woken).
"""

from __future__ import annotations

import errno as E
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from vmsim.kernel.signal import SI_USER, SIGPIPE, SigInfo, send_signal
from vmsim.mm import filemap
from vmsim.mm.filemap import File

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

PIPE_BUF = 4096
PAGE_SIZE = 4096
PIPE_SIZE = 16 * 4096  # the default pipe capacity: 16 pages
O_NONBLOCK = 0o4000


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
    """pipe_inode_info: a ring of up to `max_usage` page-sized buffers (16 by default, 64 KiB)
    with reader and writer counts. As in Linux, a write whose length is not a multiple of the
    page size first tries to append its tail part to the last buffer; everything else goes
    into fresh pages, so the capacity in bytes depends on how the data was written."""

    bufs: deque[bytearray] = field(default_factory=deque)
    readers: int = 0
    writers: int = 0
    waiters: list[Process] = field(default_factory=list)
    ino: int = 0
    max_usage: int = PIPE_SIZE // 4096

    @property
    def buf(self) -> bytes:
        """Every byte in the pipe, oldest first (FIONREAD counts them)."""
        return b"".join(self.bufs)

    @property
    def full(self) -> bool:
        return len(self.bufs) >= self.max_usage

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
        """pipe_read(): up to n bytes of what is there (without waiting for more), EOF when
        no writer is left, -EAGAIN with O_NONBLOCK, else block until a writer acts."""
        if self.writer:
            return -E.EBADF
        p = self.pipe
        if n == 0:
            return b""
        if p.bufs:
            out = bytearray()
            while p.bufs and len(out) < n:
                head = p.bufs[0]
                take = min(n - len(out), len(head))
                out += head[:take]
                del head[:take]
                if not head:
                    p.bufs.popleft()
            p.wake_all(task.machine.sched.wake)
            return bytes(out)
        if p.writers == 0:
            return b""
        if self.f_flags & O_NONBLOCK:
            return -E.EAGAIN
        p.waiters.append(task)
        return None

    def write(self, task: Process, data: bytes) -> int | None:
        """pipe_write(): with no reader, SIGPIPE and -EPIPE (or the count already written).
        A blocking write sleeps whenever the ring is full and returns only when all of it
        is in (or a signal ends it: then the count so far, see `Scheduler.partial`); with
        O_NONBLOCK it returns what fitted, or -EAGAIN if nothing did. Writes of at most
        PIPE_BUF bytes are never split."""
        if not self.writer:
            return -E.EBADF
        p = self.pipe
        sched = task.machine.sched
        key = (id(p), len(data))
        done = 0
        got = sched.partial.pop(task.pid, None)
        if got is not None and got[0] == key:
            done = got[1]
        total = len(data)
        if p.readers == 0:
            send_signal(task, SigInfo(SIGPIPE, SI_USER, pid=task.pid, uid=task.cred_uid,
                                      private=True))
            return done if done else -E.EPIPE
        if done == 0 and total == 0:
            return 0
        rest = total - done
        chars = rest & (PAGE_SIZE - 1)
        if done == 0 and chars and p.bufs:  # merge the tail part into the last page
            last = p.bufs[-1]
            if len(last) + chars <= PAGE_SIZE:
                last += data[:chars]
                done = chars
        while done < total and not p.full:
            piece = data[done:done + PAGE_SIZE]
            p.bufs.append(bytearray(piece))
            done += len(piece)
        if done:
            p.wake_all(sched.wake)
        if done == total:
            return total
        if self.f_flags & O_NONBLOCK:
            return done if done else -E.EAGAIN
        sched.partial[task.pid] = (key, done)
        p.waiters.append(task)
        return None

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
        data = filemap.file_read(task.machine.kmem, f.inode, f.f_pos, n, f.f_ra)
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
