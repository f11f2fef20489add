"""`vmsim conform`: exit statuses and the closing line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vmsim.cli import main
from vmsim.conform import report as report_mod
from vmsim.conform.runner import Result


def test_binary_mode_runs_the_same_static_runner_on_both_kernels(
        host_runner: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The static vmops binary runs on the host and as a real program on vmsim; corpus cases
    covering fork, files and faults agree step by step."""
    assert main(["conform", "--mode", "binary", "--only", "merge/fork/child-new-range"]) == 0
    assert main(["conform", "--mode", "binary", "--only", "errno/munmap"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"[1-9]\d* passed, 0 failed, \d+ known differences", out.splitlines()[-1])


def test_missing_gcc_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("VMSIM_CACHE_DIR", str(tmp_path))
    assert main(["conform", "--no-corpus", "--random", "1"]) == 2
    err = capsys.readouterr().err
    assert "gcc was not found" in err and "Traceback" not in err


def test_passing_run(host_runner: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--only", "errno/munmap", "--random", "2", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"\d+ passed, 0 failed, \d+ known differences", out.splitlines()[-1])


def test_failing_run_exits_1(host_runner: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    def fake(case: object, *a: object, **k: object) -> Result:
        return Result(case, "fail", detail="script so far:", step=0)  # type: ignore[arg-type]

    monkeypatch.setattr(report_mod, "run_case", fake)
    assert main(["conform", "--only", "errno/munmap-len-zero"]) == 1
    out = capsys.readouterr().out
    assert "FAIL errno/munmap-len-zero" in out
    assert out.splitlines()[-1] == "0 passed, 1 failed, 0 known differences"
