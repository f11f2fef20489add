"""One case on both sides: the observation expansion, verdicts, and random scripts passing."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim.conform.generator import generate
from vmsim.conform.host import host_soft_dirty
from vmsim.conform.runner import Case, last_result, observe, run_case

#: The random scripts the suite runs: SEED, COUNT scripts, in chunks (about 25 s on one core).
SEED, COUNT, CHUNK = 1, 300, 30


def test_observe_marks_and_snaps_every_step() -> None:
    lines = ["# c", "mmap 0 1 3 50 -1 0", "fork", "touch 0 w", "exit", "endchild", "maps"]
    assert observe(lines) == [
        "mark 1", "mmap 0 1 3 50 -1 0", "snap", "mark 2", "fork", "snap",
        "mark 3", "touch 0 w", "snap", "mark 4", "exit", "endchild", "mark 5", "snap",
        "mark 6", "maps", "snap"]


def test_last_result() -> None:
    out = ["mark 0", "ret 0", "snap", "end", "mark 1", "ret -22", "snap", "end"]
    assert last_result(out, 1) == "ret -22"
    assert last_result(["child: mark 3", "child: ok", "child: snap"], 3) == "child: ok"
    assert last_result(out, 7) is None


def test_verdicts(host_runner: Path, tmp_path: Path) -> None:
    ok = Case("t/ok", ("mmap 0x100000 0x1000 3 50 -1 0", "touch 0x100000 w"), expect="ok")
    assert run_case(ok, tmp_path / "f").status == "pass"
    stale = Case("t/stale", ok.lines, expect="ret -22")
    res = run_case(stale, tmp_path / "f")
    assert res.status == "stale" and "'ok'" in res.detail


def test_unexplained_difference_fails(host_runner: Path, tmp_path: Path) -> None:
    """With vmsim's default soft-dirty on and the host's off, the sd flag is a plain failure."""
    if host_soft_dirty():
        pytest.skip("the host tracks soft-dirty")
    case = Case("t/sd", ("mmap 0x100000 0x1000 3 50 -1 0",))
    res = run_case(case, tmp_path / "f", soft_dirty=True)
    assert res.status == "fail" and res.step == 0
    assert "-VmFlags: rd wr mr mw me ac " in res.detail
    assert "+VmFlags: rd wr mr mw me ac sd " in res.detail


@pytest.mark.parametrize("first", range(0, COUNT, CHUNK))
def test_random_scripts_pass(first: int, host_runner: Path, tmp_path: Path) -> None:
    bad = []
    for i in range(first, first + CHUNK):
        res = run_case(generate(SEED, i), tmp_path / "files", soft_dirty=host_soft_dirty())
        if res.failed:
            bad.append(f"{res.case.id}: {res.status}\n{res.detail}")
    assert not bad, "\n\n".join(bad)
