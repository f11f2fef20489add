"""The host runner's additions: heap window, brk, execute probes, snap, exit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vmsim.conform import host
from vmsim.conform.host import HostToolError, run_host
from vmsim.conform.script import Heap, Script

P = 4096
PAF = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED"


def test_base_line_has_the_heap(host_runner: Path) -> None:
    r = run_host([])
    assert r.heap % P == 0 and r.heap != 0 and len(f"{r.base:x}") == 12


def test_brk_and_heap_window(host_runner: Path) -> None:
    s = Script().brk(None).brk(Heap(2 * P)).touch(Heap(P), "w").maps().brk(Heap(-P))
    s.touch(Heap(-P), "r")
    lines = run_host(s.lines).lines
    assert lines[:3] == ["ret h+0x0", "ret h+0x2000", "ok"]
    assert lines[3].startswith("h00000000-h00002000 rw-p ") and lines[3].endswith("[heap]")
    assert lines[4:] == ["end", "ret h+0x2000", "bad-op"]


def test_execute_probe(host_runner: Path) -> None:
    s = Script().mmap(0, 2 * P, "PROT_READ|PROT_WRITE|PROT_EXEC", PAF).touch(0, "x")
    s.mmap(0x10000, P, "PROT_READ", PAF).touch(0x10000, "x").touch(0x20000, "x")
    s.touch(Heap(0), "x")
    assert run_host(s.lines).lines == [
        "ret +0x0", "ok", "ret +0x10000", "sig SIGSEGV ACCERR +0x10000",
        "sig SIGSEGV MAPERR +0x20000", "sig SIGSEGV MAPERR h+0x0"]


def test_fork_exit_and_snap(host_runner: Path) -> None:
    s = Script().mmap(0, P, "PROT_READ|PROT_WRITE", PAF).fork().touch(0, "w").exit()
    s.touch(0, "w").endchild().snap().exit().snap()
    lines = run_host(s.lines).lines
    assert lines[:3] == ["ret +0x0", "child: ok", "snap"]
    assert lines[3] == "00000000-00001000 rw-p 00000000 00:00 0 "
    assert lines[-3:] == ["pagemap 0x0*1", "faults 0 0", "end"]


def test_missing_gcc_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("VMSIM_CACHE_DIR", str(tmp_path))
    with pytest.raises(HostToolError, match="gcc was not found"):
        host.build_vmops()


def test_not_linux_x86_64_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host.platform, "machine", lambda: "riscv64")
    with pytest.raises(HostToolError, match="needs Linux on x86-64"):
        host.check_prerequisites()


def test_source_compiles_cleanly(tmp_path: Path) -> None:
    if not host.host_supported():
        pytest.skip("needs Linux x86-64")
    proc = subprocess.run([host.find_gcc(), *host.CFLAGS, "-Wextra", "-o", str(tmp_path / "v"),
                           str(host.SOURCE)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
