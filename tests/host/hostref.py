"""Run memory-operation scripts on the real host kernel (via ``vmops.c``).

A *script* is a list of text lines, one operation each, in the format that
``tests/host/vmops.c`` documents in its header comment.  Build scripts with
:class:`Script` (or :func:`op`), which turns symbolic names such as
``"PROT_READ|PROT_WRITE"`` into numbers with :mod:`constants`, then run them
with :func:`run_host`.  ``tests/host/vmsimref.py`` runs the same lines on a
vmsim process and prints the same result format, so host and simulator can be
compared with a plain list equality.

Addresses in scripts are relative to a 2 MiB-aligned base that vmops picks at
run time (``None`` stands for absolute 0 / NULL, :class:`Abs` for any other
absolute address).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .constants import is_symbolic, resolve

SOURCE = Path(__file__).with_name("vmops.c")
#: gcc flags; ``-z now`` resolves every PLT slot at start-up so lazy binding
#: cannot add page faults to the ``faults`` deltas.
CFLAGS: tuple[str, ...] = ("-O1", "-Wall", "-Wl,-z,now")
REGION_SIZE = 64 << 20
PAGE = 4096
DEFAULT_TIMEOUT = 60.0


class HostToolError(RuntimeError):
    """The host reference runner cannot be built or did not run cleanly."""


def host_supported() -> bool:
    """vmops.c hard-codes Linux x86-64 numbers (syscall numbers, constants)."""
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def find_gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise HostToolError(
            "gcc was not found on PATH; the host reference runner tests/host/vmops.c "
            "is compiled at test time (Debian: apt-get install gcc libc6-dev)"
        )
    return gcc


def build_vmops(source: Path = SOURCE) -> Path:
    """Compile *source* once into a cache directory and return the executable.

    The directory is ``<tmp>/vmsim-host-<hash>``, the hash covering the source
    text and the compiler flags, so an edited vmops.c gets a fresh build and an
    unchanged one is reused across test sessions.  The build is written to a
    private name and renamed into place, so parallel workers cannot see a
    half-written binary.
    """
    text = source.read_bytes()
    digest = hashlib.sha256(text + "\0".join(CFLAGS).encode()).hexdigest()[:16]
    outdir = Path(tempfile.gettempdir()) / f"vmsim-host-{digest}"
    exe = outdir / "vmops"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe
    gcc = find_gcc()
    outdir.mkdir(parents=True, exist_ok=True)
    tmp = outdir / f"vmops.{os.getpid()}.tmp"
    proc = subprocess.run(
        [gcc, *CFLAGS, "-o", str(tmp), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise HostToolError(f"compiling {source} failed:\n{proc.stderr}")
    os.replace(tmp, exe)
    return exe


@dataclass(frozen=True)
class HostRun:
    """Result of one script run: the base vmops chose and every later line."""

    base: int
    lines: list[str]

    def parent(self) -> list[str]:
        """Lines printed by the top-level process (no ``child: `` prefix)."""
        return [ln for ln in self.lines if not ln.startswith("child: ")]

    def child(self) -> list[str]:
        """Lines printed by first-level children, with the prefix removed."""
        return [ln[len("child: ") :] for ln in self.lines if ln.startswith("child: ")]


def run_host(script: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> HostRun:
    """Execute *script* on the host kernel and return its output lines."""
    exe = build_vmops()
    data = "".join(line + "\n" for line in script)
    try:
        proc = subprocess.run(
            [str(exe)],
            input=data,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HostToolError(f"vmops timed out after {timeout} s") from exc
    if proc.returncode != 0:
        raise HostToolError(
            f"vmops exited with {proc.returncode}\nstderr:\n{proc.stderr}\nstdout:\n{proc.stdout}"
        )
    out = proc.stdout.splitlines()
    if not out or not out[0].startswith("base "):
        raise HostToolError(f"vmops printed no base line:\n{proc.stdout}\n{proc.stderr}")
    return HostRun(base=int(out[0].split()[1], 16), lines=out[1:])


# --------------------------------------------------------------------------
# Script building


@dataclass(frozen=True)
class Abs:
    """An absolute address (``=0x...`` in the script) instead of a relative one."""

    addr: int


Arg = int | str | bytes | Abs | None


def fmt_arg(arg: Arg) -> str:
    """One script token.

    ``None`` -> ``-`` (absolute 0); ``int`` -> decimal, or 0x-hex from 0x1000
    up; ``bytes`` -> hex digits; :class:`Abs` -> ``=0x...``; a symbolic string
    (``"MAP_PRIVATE|MAP_ANONYMOUS"``) -> its number; any other string (a path,
    ``r``/``w``) is passed through and must not contain white space.
    """
    if arg is None:
        return "-"
    if isinstance(arg, bool):
        raise TypeError("bool is not a script argument")
    if isinstance(arg, Abs):
        return f"={arg.addr:#x}"
    if isinstance(arg, int):
        if -0x1000 < arg < 0x1000:
            return str(arg)
        return f"-{-arg:#x}" if arg < 0 else f"{arg:#x}"
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

    def mmap(
        self,
        addr: int | Abs | None,
        length: int,
        prot: int | str,
        flags: int | str,
        fd: int = -1,
        off: int = 0,
    ) -> Script:
        return self.add("mmap", addr, length, prot, flags, fd, off)

    def munmap(self, addr: int | Abs | None, length: int) -> Script:
        return self.add("munmap", addr, length)

    def mprotect(self, addr: int | Abs | None, length: int, prot: int | str) -> Script:
        return self.add("mprotect", addr, length, prot)

    def mremap(
        self,
        old: int | Abs | None,
        oldlen: int,
        newlen: int,
        flags: int | str = 0,
        new: int | Abs | None = 0,
    ) -> Script:
        return self.add("mremap", old, oldlen, newlen, flags, new)

    def madvise(self, addr: int | Abs | None, length: int, advice: int | str) -> Script:
        return self.add("madvise", addr, length, advice)

    def mlock(self, addr: int | Abs | None, length: int) -> Script:
        return self.add("mlock", addr, length)

    def mlock2(self, addr: int | Abs | None, length: int, flags: int | str) -> Script:
        return self.add("mlock2", addr, length, flags)

    def munlock(self, addr: int | Abs | None, length: int) -> Script:
        return self.add("munlock", addr, length)

    def mlockall(self, flags: int | str) -> Script:
        return self.add("mlockall", flags)

    def munlockall(self) -> Script:
        return self.add("munlockall")

    def msync(self, addr: int | Abs | None, length: int, flags: int | str) -> Script:
        return self.add("msync", addr, length, flags)

    def mincore(self, addr: int | Abs | None, length: int) -> Script:
        return self.add("mincore", addr, length)

    def touch(self, addr: int | Abs | None, mode: str = "r") -> Script:
        if mode not in ("r", "w"):
            raise ValueError("touch mode is 'r' or 'w'")
        return self.add("touch", addr, mode)

    def write_at(self, addr: int | Abs | None, data: bytes) -> Script:
        return self.add("write_at", addr, data)

    def read_at(self, addr: int | Abs | None, n: int) -> Script:
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

    def pagemap(self, addr: int | Abs | None, npages: int) -> Script:
        return self.add("pagemap", addr, npages)

    def faults(self) -> Script:
        return self.add("faults")

    def fork(self) -> Script:
        return self.add("fork")

    def endchild(self) -> Script:
        return self.add("endchild")
