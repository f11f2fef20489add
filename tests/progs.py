"""Build small C programs for tests (static, with gcc or musl-gcc), cached by source hash.

`build(source, name)` returns the path of a static x86-64 executable built
from C source text; the same source is compiled once per machine (the cache
lives under the system temp directory). `run_native(path, args)` runs it on
the host kernel, the referee for output and exit status.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CACHE = Path(tempfile.gettempdir()) / "vmsim-test-progs"


def have(compiler: str) -> bool:
    return shutil.which(compiler) is not None


def build(source: str, name: str, compiler: str = "gcc", flags: tuple[str, ...] = ()) -> Path:
    """A static executable built from `source` (cached); raises if the compiler fails."""
    key = hashlib.sha256(f"{compiler} {flags} {source}".encode()).hexdigest()[:16]
    out = CACHE / f"{name}-{compiler}-{key}"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    src = CACHE / f"{name}-{key}-{os.getpid()}.c"
    src.write_text(source)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")  # parallel workers may build the same program
    subprocess.run([compiler, "-static", "-O1", "-o", str(tmp), str(src), *flags], check=True,
                   capture_output=True, text=True)
    os.replace(tmp, out)
    return out


def install(binary: Path, root: Path, guest_path: str) -> str:
    """Copy `binary` into the sandbox `root` at `guest_path` (executable); returns guest_path."""
    dest = root / guest_path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, dest)
    return guest_path


def run_native(binary: Path, args: list[str] | None = None, stdin: bytes = b"",
               cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run on the host kernel; returncode is negative for a signal, as subprocess reports."""
    return subprocess.run([str(binary), *(args or [])], input=stdin, capture_output=True,
                          cwd=cwd, timeout=60, check=False)


def shell_status(returncode: int) -> int:
    """A subprocess return code as a shell reports it (128 + signal for a killed process)."""
    return 128 - returncode if returncode < 0 else returncode
