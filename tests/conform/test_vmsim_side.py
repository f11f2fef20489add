"""The vmsim executor on its own: heap, caught signals, exit, snap."""

from __future__ import annotations

from vmsim.conform.script import Heap, Script
from vmsim.conform.vmsim_side import VmsimRunner

P = 4096
PAF = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED"


def run(s: Script, **kw: object) -> list[str]:
    return VmsimRunner(**kw).run(s.lines)  # type: ignore[arg-type]


def test_brk_is_relative_to_the_initial_break() -> None:
    s = Script().brk(None).brk(Heap(2 * P + 5)).touch(Heap(P), "w").maps().brk(Heap(-P))
    out = run(s)
    assert out[:3] == ["ret h+0x0", "ret h+0x2005", "ok"]
    assert out[3].startswith("h00000000-h00003000 rw-p 00000000 00:00 0 ")
    assert out[3].endswith(" [heap]")
    assert out[4:] == ["end", "ret h+0x2005"]


def test_heap_address_outside_window_is_bad_op() -> None:
    assert run(Script().touch(Heap(-P), "r")) == ["bad-op"]


def test_caught_signals_let_the_process_go_on() -> None:
    s = Script().touch(0x1000, "r").mmap(0, P, "PROT_READ", PAF).touch(0, "w").touch(0, "x")
    assert run(s, catch_signals=True) == [
        "sig SIGSEGV MAPERR +0x1000", "ret +0x0", "sig SIGSEGV ACCERR +0x0",
        "sig SIGSEGV ACCERR +0x0"]
    assert run(s) == ["sig SIGSEGV MAPERR +0x1000", "dead", "dead", "dead"]


def test_exit_in_child_and_at_top() -> None:
    s = Script().mmap(0, P, "PROT_READ", PAF).fork().touch(0, "r").exit().touch(0, "r")
    s.endchild().touch(0, "r").exit().touch(0, "r")
    assert run(s) == ["ret +0x0", "child: ok", "ok"]


def test_snap_block() -> None:
    s = Script().mmap(0, 2 * P, "PROT_READ|PROT_WRITE", PAF).touch(0, "w").snap()
    out = run(s, soft_dirty=False)
    assert out[2] == "snap" and out[-1] == "end"
    assert out[3] == "00000000-00002000 rw-p 00000000 00:00 0 "
    assert "pagemap 0x102*1 0x0*1" in out
    assert out[-2] == "faults 1 0"
    assert "VmFlags: rd wr mr mw me ac " in out
