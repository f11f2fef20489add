"""The operation language shared by the host runner and vmsim: lines of text.

A *script* is a list of lines, one operation each, in the format that
``vmops.c`` (next to this file) documents in its header comment: ``mmap``,
``munmap``, ``mprotect``, ``mremap``, ``brk``, ``madvise``, ``mlock``/
``mlock2``/``munlock``/``mlockall``/``munlockall``, ``msync``, ``mincore``,
``touch ADDR r|w|x``, ``write_at``/``read_at``, file ``open``/``close``/
``ftruncate``/``pread``/``pwrite``, ``fork`` ... ``endchild``, ``exit``, and
the observations ``maps``, ``smaps``, ``pagemap``, ``faults`` and ``snap``.
One plain-text language keeps both executors (C on the host, Python on vmsim)
small, and a failing script can be pasted into a shell: ``vmops < script``.

Addresses are relative to a 2 MiB-aligned *region* base that each side picks
(``None`` stands for absolute 0 / NULL, :class:`Abs` for any other absolute
address, :class:`Heap` for an offset from the initial program break).
:class:`Script` builds lines with symbolic constants
(``"PROT_READ|PROT_WRITE"``) resolved by :mod:`vmsim.conform.constants`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from vmsim.conform.constants import is_symbolic, resolve

#: Size of the region both sides keep free for scripts (vmops.c REGION_SIZE).
REGION_SIZE = 64 << 20
#: Size of the window above the initial program break (vmops.c HEAP_WINDOW).
HEAP_WINDOW = 64 << 20
PAGE = 4096
MASK64 = (1 << 64) - 1
CHILD = "child: "


class ScriptError(ValueError):
    """A malformed script line (vmops prints ``bad-op`` for it; so does vmsim's side)."""


@dataclass(frozen=True)
class Abs:
    """An absolute address (``=0x...`` in the script) instead of a relative one."""

    addr: int


@dataclass(frozen=True)
class Heap:
    """An address relative to the initial program break (``h0x...`` in the script)."""

    off: int


Arg = int | str | bytes | Abs | Heap | None
Addr = int | Abs | Heap | None


def fmt_int(v: int) -> str:
    """Decimal below 0x1000 in magnitude, else 0x-hex (negative with a leading minus)."""
    if -0x1000 < v < 0x1000:
        return str(v)
    return f"-{-v:#x}" if v < 0 else f"{v:#x}"


def fmt_arg(arg: Arg) -> str:
    """One script token.

    ``None`` -> ``-`` (absolute 0); ``int`` -> decimal, or 0x-hex from 0x1000
    up; ``bytes`` -> hex digits; :class:`Abs` -> ``=0x...``; :class:`Heap` ->
    ``h0x...``; a symbolic string (``"MAP_PRIVATE|MAP_ANONYMOUS"``) -> its
    number; any other string (a path, ``r``/``w``/``x``) is passed through and
    must not contain white space.
    """
    if arg is None:
        return "-"
    if isinstance(arg, bool):
        raise TypeError("bool is not a script argument")
    if isinstance(arg, Abs):
        return f"={arg.addr:#x}"
    if isinstance(arg, Heap):
        return "h" + fmt_int(arg.off)
    if isinstance(arg, int):
        return fmt_int(arg)
    if isinstance(arg, bytes):
        if not arg:
            raise ValueError("empty byte strings cannot be written as a script token")
        return arg.hex()
    if is_symbolic(arg):
        return fmt_arg(resolve(arg))
    if not arg or any(c.isspace() for c in arg):
        raise ValueError(f"bad script token {arg!r}")
    return arg


def op(name: str, *args: Arg) -> str:
    """One script line, e.g. ``op("munmap", 0x10000, 0x1000)``."""
    return " ".join([name, *(fmt_arg(a) for a in args)])


def parse_num(tok: str) -> int:
    """vmops.c's parse_num(): decimal or 0x-hex, optional sign, as unsigned 64-bit."""
    neg = tok.startswith("-")
    body = tok[1:] if tok[:1] in "+-" else tok
    if not body:
        raise ScriptError(tok)
    if body[:2].lower() == "0x":
        if not body[2:] or not all(c in "0123456789abcdefABCDEF" for c in body[2:]):
            raise ScriptError(tok)
        v = int(body[2:], 16)
    else:
        if not body.isdigit() or not body.isascii():
            raise ScriptError(tok)
        v = int(body, 10)
    return (-v if neg else v) & MASK64


def words(line: str) -> list[str]:
    """The tokens of a line as vmops splits them (spaces, tabs, carriage returns)."""
    return line.replace("\t", " ").replace("\r", " ").split()


def is_op(line: str) -> bool:
    """Whether a line is an operation (not blank, not a comment)."""
    w = words(line)
    return bool(w) and not w[0].startswith("#")


def matching_endchild(lines: Sequence[str], i: int) -> int:
    """Index of the ``endchild`` matching the ``fork`` at *i* (``len(lines)`` if none)."""
    depth = 0
    for j in range(i + 1, len(lines)):
        w = words(lines[j])
        word = w[0] if w else ""
        if word == "fork":
            depth += 1
        elif word == "endchild":
            if depth == 0:
                return j
            depth -= 1
    return len(lines)


class Script:
    """Builder for script lines; every method appends one line and returns self."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        self.lines: list[str] = list(lines)

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def add(self, name: str, *args: Arg) -> Script:
        self.lines.append(op(name, *args))
        return self

    def comment(self, text: str) -> Script:
        self.lines.append("# " + text)
        return self

    def mmap(self, addr: Addr, length: int, prot: int | str, flags: int | str,
             fd: int = -1, off: int = 0) -> Script:
        return self.add("mmap", addr, length, prot, flags, fd, off)

    def munmap(self, addr: Addr, length: int) -> Script:
        return self.add("munmap", addr, length)

    def mprotect(self, addr: Addr, length: int, prot: int | str) -> Script:
        return self.add("mprotect", addr, length, prot)

    def mremap(self, old: Addr, oldlen: int, newlen: int, flags: int | str = 0,
               new: Addr = 0) -> Script:
        return self.add("mremap", old, oldlen, newlen, flags, new)

    def brk(self, addr: Heap | Abs | None) -> Script:
        """brk(2); ``None`` asks for the current break (brk(0))."""
        return self.add("brk", addr)

    def madvise(self, addr: Addr, length: int, advice: int | str) -> Script:
        return self.add("madvise", addr, length, advice)

    def mlock(self, addr: Addr, length: int) -> Script:
        return self.add("mlock", addr, length)

    def mlock2(self, addr: Addr, length: int, flags: int | str) -> Script:
        return self.add("mlock2", addr, length, flags)

    def munlock(self, addr: Addr, length: int) -> Script:
        return self.add("munlock", addr, length)

    def mlockall(self, flags: int | str) -> Script:
        return self.add("mlockall", flags)

    def munlockall(self) -> Script:
        return self.add("munlockall")

    def msync(self, addr: Addr, length: int, flags: int | str) -> Script:
        return self.add("msync", addr, length, flags)

    def mincore(self, addr: Addr, length: int) -> Script:
        return self.add("mincore", addr, length)

    def touch(self, addr: Addr, mode: str = "r") -> Script:
        """Read (r), write 0x5a (w) or execute one instruction (x) at *addr*."""
        if mode not in ("r", "w", "x"):
            raise ValueError("touch mode is 'r', 'w' or 'x'")
        return self.add("touch", addr, mode)

    def write_at(self, addr: Addr, data: bytes) -> Script:
        return self.add("write_at", addr, data)

    def read_at(self, addr: Addr, n: int) -> Script:
        return self.add("read_at", addr, n)

    def open(self, path: str | os.PathLike[str], flags: int | str) -> Script:
        return self.add("open", os.fspath(path), flags)

    def close(self, fd: int) -> Script:
        return self.add("close", fd)

    def ftruncate(self, fd: int, length: int) -> Script:
        return self.add("ftruncate", fd, length)

    def pwrite(self, fd: int, off: int, data: bytes) -> Script:
        return self.add("pwrite", fd, off, data)

    def pread(self, fd: int, off: int, n: int) -> Script:
        return self.add("pread", fd, off, n)

    def maps(self) -> Script:
        return self.add("maps")

    def smaps(self) -> Script:
        return self.add("smaps")

    def pagemap(self, addr: Addr, npages: int) -> Script:
        return self.add("pagemap", addr, npages)

    def faults(self) -> Script:
        return self.add("faults")

    def snap(self) -> Script:
        return self.add("snap")

    def fork(self) -> Script:
        return self.add("fork")

    def endchild(self) -> Script:
        return self.add("endchild")

    def exit(self) -> Script:
        """End the current process: a child exits at once, the top level ends the script."""
        return self.add("exit")
