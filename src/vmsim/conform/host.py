"""The host side: build ``vmops.c`` with gcc and run scripts on the host kernel.

``vmops.c`` ships as package data; :func:`build_vmops` compiles it once into a
cache directory keyed by a hash of the source and flags, so there is never a
prebuilt binary and an edited source gets a fresh build.  :func:`run_host`
feeds a script (:mod:`vmsim.conform.script`) to the program and returns its
output lines.  :func:`check_prerequisites` turns every missing prerequisite
(not Linux x86-64, no gcc, a failed compile) into one :class:`HostToolError`
with a message saying what to install.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("vmops.c")
#: gcc flags; ``-z now`` resolves every PLT slot at start-up so lazy binding
#: cannot add page faults to the ``faults`` deltas.
CFLAGS: tuple[str, ...] = ("-O1", "-Wall", "-Wl,-z,now")
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
            "gcc was not found on PATH; the host reference runner vmsim/conform/vmops.c "
            "is compiled at run time (Debian: apt-get install gcc libc6-dev)"
        )
    return gcc


def cache_dir() -> Path:
    """Where built helpers go: $VMSIM_CACHE_DIR, else the system temporary directory."""
    env = os.environ.get("VMSIM_CACHE_DIR")
    return Path(env) if env else Path(tempfile.gettempdir())


#: Extra flags of the binary-mode build: one static executable that runs unchanged on the
#: host kernel and under vmsim (same binary, two kernels).
STATIC_FLAGS: tuple[str, ...] = ("-static", "-DVMOPS_STATIC")


def build_vmops(source: Path = SOURCE, static: bool = False) -> Path:
    """Compile *source* once into a cache directory and return the executable.

    The directory is ``<cache>/vmsim-host-<hash>``, the hash covering the
    source text and the compiler flags, so an edited vmops.c gets a fresh
    build and an unchanged one is reused across runs.  The build is written
    to a private name and renamed into place, so parallel workers cannot see
    a half-written binary.
    """
    flags = CFLAGS + (STATIC_FLAGS if static else ())
    text = source.read_bytes()
    digest = hashlib.sha256(text + "\0".join(flags).encode()).hexdigest()[:16]
    outdir = cache_dir() / f"vmsim-host-{digest}"
    exe = outdir / "vmops"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe
    gcc = find_gcc()
    outdir.mkdir(parents=True, exist_ok=True)
    tmp = outdir / f"vmops.{os.getpid()}.tmp"
    proc = subprocess.run(
        [gcc, *flags, "-o", str(tmp), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise HostToolError(f"compiling {source} failed:\n{proc.stderr}")
    os.replace(tmp, exe)
    return exe


def check_prerequisites() -> Path:
    """Everything a host run needs, or a HostToolError saying what is missing; the runner."""
    if not host_supported():
        raise HostToolError(
            f"the host reference runner needs Linux on x86-64; this is "
            f"{platform.system()} on {platform.machine()}"
        )
    return build_vmops()


@dataclass(frozen=True)
class HostRun:
    """Result of one script run: the bases vmops chose and every later line."""

    base: int
    lines: list[str]
    heap: int = 0

    def parent(self) -> list[str]:
        """Lines printed by the top-level process (no ``child: `` prefix)."""
        return [ln for ln in self.lines if not ln.startswith("child: ")]

    def child(self) -> list[str]:
        """Lines printed by first-level children, with the prefix removed."""
        return [ln[len("child: ") :] for ln in self.lines if ln.startswith("child: ")]


def run_host(script: Sequence[str], timeout: float = DEFAULT_TIMEOUT,
             cwd: str | os.PathLike[str] | None = None,
             exe: Path | None = None) -> HostRun:
    """Execute *script* on the host kernel (in directory *cwd*) and return its output lines.

    *exe* is the runner to use (default: the dynamically linked build)."""
    exe = exe if exe is not None else build_vmops()
    data = "".join(line + "\n" for line in script)
    try:
        proc = subprocess.run(
            [str(exe)],
            input=data,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise HostToolError(f"vmops timed out after {timeout} s") from exc
    if proc.returncode != 0:
        raise HostToolError(
            f"vmops exited with {proc.returncode}\nstderr:\n{proc.stderr}\nstdout:\n{proc.stdout}"
        )
    return parse_output(proc.stdout, proc.stderr)


def parse_output(stdout: str, stderr: str = "") -> HostRun:
    """The base line and the result lines of a vmops run."""
    out = stdout.splitlines()
    if not out or not out[0].startswith("base "):
        raise HostToolError(f"vmops printed no base line:\n{stdout}\n{stderr}")
    head = out[0].split()
    heap = int(head[3], 16) if len(head) >= 4 and head[2] == "heap" else 0
    return HostRun(base=int(head[1], 16), lines=out[1:], heap=heap)


@functools.cache
def host_soft_dirty() -> bool:
    """Does the host kernel track soft-dirty (CONFIG_MEM_SOFT_DIRTY)?

    Such a kernel gives every VMA VM_SOFTDIRTY at exec, shown as ``sd`` in
    the VmFlags of smaps; this process's own smaps tells.
    """
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return False
    return any(line.startswith("VmFlags:") and " sd " in line + " "
               for line in text.splitlines())
