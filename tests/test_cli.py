"""The `vmsim` command and the demo it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vmsim.cli import main


def test_demo_reports_cow_and_maps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--no-aslr"]) == 0
    out = capsys.readouterr().out
    assert "copy-on-write" in out and "machine.check() passed" in out
    assert out.count("rw-p 00000000 00:00 0") == 2  # the maps of both processes
    assert "wp-copy=" in out


def test_demo_is_deterministic_for_a_seed(capsys: pytest.CaptureFixture[str]) -> None:
    main(["demo", "--seed", "7"])
    first = capsys.readouterr().out
    main(["demo", "--seed", "7"])
    assert capsys.readouterr().out == first
    main(["demo", "--seed", "8"])
    assert capsys.readouterr().out != first


def test_bad_memory_size_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--memory", "lots"]) == 2
    assert "bad memory size" in capsys.readouterr().err


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "vmsim.cli", "demo"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("1. parent")
