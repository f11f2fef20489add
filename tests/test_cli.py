"""The `vmsim` command and the demo it runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

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


# ---- vmsim run ---------------------------------------------------------------------------------
RUN_PROGS = {
    "status42": "int main(void) { return 42; }",
    "crash": "int main(void) { return *(volatile int *)16; }",
    "spin": "int main(void) { for (volatile unsigned long i = 0;; i++) ; }",
    "nosys": "#include <unistd.h>\n#include <sys/syscall.h>\n"
             "int main(void) { return syscall(499) == -1 ? 0 : 1; }",
    "writer": "#include <stdio.h>\nint main(void) { FILE *f = fopen(\"out.txt\", \"w\");"
              " fputs(\"x\", f); fclose(f); puts(\"wrote\"); return 0; }",
}


def prog(name: str) -> str:
    from tests.progs import build, have

    if not have("gcc"):
        pytest.skip("needs gcc")
    return str(build(RUN_PROGS[name], f"cli-{name}"))


def run_cli(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    status = main(["run", *argv])
    cap = capsysbinary.readouterr()
    return status, cap.out, cap.err.decode()


def test_run_a_bundled_sample(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert run_cli(capsysbinary, "hello", "one", "two") == (
        0, b"hello, world\nargv[1] = one\nargv[2] = two\n", "")


def test_run_reports_the_guest_status_as_a_shell_does(
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert run_cli(capsysbinary, prog("status42"))[0] == 42
    status, out, err = run_cli(capsysbinary, prog("crash"))
    assert status == 128 + 11 and out == b""
    assert "segfault at 10 ip" in err and "Segmentation fault (SIGSEGV)" in err
    assert "Traceback" not in err


def test_run_bad_programs_get_shell_statuses_and_messages(
        capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    status, _, err = run_cli(capsysbinary, str(tmp_path / "missing"))
    assert status == 127 and "No such file or directory" in err
    status, _, err = run_cli(capsysbinary, "no-such-sample")
    assert status == 127 and "not a bundled sample either: bigalloc, cow" in err
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n")
    text.chmod(0o755)
    status, _, err = run_cli(capsysbinary, str(text))
    assert status == 126 and "Exec format error" in err
    text.chmod(0o644)
    status, _, err = run_cli(capsysbinary, str(text))
    assert status == 126 and "Permission denied" in err
    status, _, err = run_cli(capsysbinary, str(tmp_path))
    assert status == 126 and "Is a directory" in err
    truncated = tmp_path / "truncated"
    truncated.write_bytes(Path(prog("status42")).read_bytes()[:100])
    truncated.chmod(0o755)
    status, _, err = run_cli(capsysbinary, str(truncated))
    assert status == 126 and "Exec format error" in err
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    status, _, err = run_cli(capsysbinary, str(script))
    assert status == 127 and "interpreter /bin/sh is not in the guest's root" in err
    assert "Traceback" not in err


def test_run_bad_options(capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path) -> None:
    status, _, err = run_cli(capsysbinary, "--memory", "lots", "hello")
    assert status == 2 and "bad memory size" in err
    status, _, err = run_cli(capsysbinary, "--root", str(tmp_path / "none"), "hello")
    assert status == 2 and "not a directory" in err
    with pytest.raises(SystemExit) as exc:
        main(["run", "--arch", "ppc64", "hello"])
    assert exc.value.code == 2


def test_run_out_of_memory_is_reported(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status, _, err = run_cli(capsysbinary, "--memory", "4M", "bigalloc")
    assert status == 128 + 9
    assert "Out of memory: Killed process 1 (bigalloc)" in err and "Killed (SIGKILL)" in err


def test_run_timeout_stops_a_runaway_guest(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status, _, err = run_cli(capsysbinary, "--timeout", "0.3", prog("spin"))
    assert status == 128 + 9 and "time limit of 0.3 s reached" in err


def test_run_trace(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status, out, err = run_cli(capsysbinary, "--trace", prog("nosys"))
    assert status == 0
    assert "[1] syscall_499(" in err and "= -38 ENOSYS (not implemented by vmsim)" in err
    assert "[1] exit_group(0) = ?" in err
    status, out, err = run_cli(capsysbinary, "--trace", "exec")
    assert "[1] fork() = 2" in err and "[2] execve(" in err
    assert "= -2 ENOENT" in err and "= -8 ENOEXEC" in err
    assert b"hello, world" in out


def test_run_trace_is_deterministic_for_a_seed(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    first = run_cli(capsysbinary, "--trace", "--seed", "5", "cow")
    assert run_cli(capsysbinary, "--trace", "--seed", "5", "cow") == first
    assert run_cli(capsysbinary, "--trace", "--seed", "6", "cow")[2] != first[2]
    assert run_cli(capsysbinary, "--trace", "--no-aslr", "--seed", "6", "cow")[2] == run_cli(
        capsysbinary, "--trace", "--no-aslr", "--seed", "7", "cow")[2]


def test_run_stats(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status, out, err = run_cli(capsysbinary, "--stats", "cow")
    assert status == 0 and b"child exit status 7" in out
    faults = re.search(r"page faults\s+(\d+)", err)
    assert faults is not None and int(faults.group(1)) > 10
    assert re.search(r"wp-copy\s+\d+\s+copy-on-write copy", err)
    assert re.search(r"COW copies\s+[1-9]", err) and re.search(r"TLB flushes\s+[1-9]", err)


def test_run_soft_engine(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status, out, err = run_cli(capsysbinary, "--engine", "soft", "--stats", "hello")
    assert (status, out) == (0, b"hello, world\n")
    assert re.search(r"CPU TLB fills\s+[1-9]", err)


def test_run_private_root_keeps_the_host_clean(capsysbinary: pytest.CaptureFixture[bytes],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from vmsim.machine import samples_dir

    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in samples_dir().iterdir())
    assert run_cli(capsysbinary, "mmapfile")[0] == 0
    assert run_cli(capsysbinary, prog("writer"))[:2] == (0, b"wrote\n")
    assert sorted(p.name for p in samples_dir().iterdir()) == before
    assert list(tmp_path.iterdir()) == []


def test_run_with_a_root_directory(capsysbinary: pytest.CaptureFixture[bytes],
                                   tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    shutil.copy2(prog("writer"), tmp_path / "bin" / "writer")
    assert run_cli(capsysbinary, "--root", str(tmp_path), "writer")[:2] == (0, b"wrote\n")
    assert (tmp_path / "out.txt").read_text() == "x"  # cwd "/" is the root
    assert run_cli(capsysbinary, "--root", str(tmp_path), "/bin/writer")[0] == 0
    status, _, err = run_cli(capsysbinary, "--root", str(tmp_path), "hello")
    assert status == 127 and "not found in" in err


def _static_busybox() -> bool:
    path = Path("/bin/busybox")
    return path.is_file() and b"/lib64/ld-linux" not in path.read_bytes()[:4096]


@pytest.mark.skipif(not _static_busybox(), reason="needs busybox-static")
def test_console_script_runs_busybox_with_stdin(tmp_path: Path) -> None:
    shutil.copy2("/bin/busybox", tmp_path / "busybox")
    got = subprocess.run([sys.executable, "-m", "vmsim.cli", "run", "--root", str(tmp_path),
                          "busybox", "sort", "-r"], input=b"a\nc\nb\n", capture_output=True,
                         check=False, timeout=60)
    assert (got.returncode, got.stdout, got.stderr) == (0, b"c\nb\na\n", b"")
    got = subprocess.run([sys.executable, "-m", "vmsim.cli", "run", "--root", str(tmp_path),
                          "busybox", "sh", "-c", "exit 9"], capture_output=True, check=False,
                         timeout=60)
    assert got.returncode == 9


def test_run_instruction_budget_and_count(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status, _, err = run_cli(capsysbinary, "--max-instructions", "100000", prog("spin"))
    assert status == 128 + 9 and "instruction budget of 100000 reached" in err
    status, _, err = run_cli(capsysbinary, "--count-instructions", "--stats", "hello")
    count = re.search(r"instructions\s+(\d+)", err)
    assert status == 0 and count is not None and 100 < int(count.group(1)) < 100_000
    status, _, err = run_cli(capsysbinary, "--max-instructions", "-1", "hello")
    assert status == 2 and "must be 0" in err


def test_run_stats_json_per_process(capsysbinary: pytest.CaptureFixture[bytes],
                                    tmp_path: Path) -> None:
    """--stats-json: one record per process with its faults by kind, which add up to its
    minor + major faults, and instructions when counted."""
    import json

    out = tmp_path / "stats.json"
    assert main(["run", "--count-instructions", "--stats", "--stats-json", str(out), "cow"]) == 0
    rows = json.loads(out.read_text())
    assert [r["pid"] for r in rows] == [1, 2] and rows[1]["ppid"] == 1
    for r in rows:
        assert set(r) >= {"pid", "comm", "exit_code", "signal", "faults", "minflt", "majflt",
                          "peak_rss_kb", "pgtable_kb", "instructions"}
        faults = {k: v for k, v in r["faults"].items() if k != "stack-growth"}
        assert sum(faults.values()) == r["minflt"] + r["majflt"] > 0
        assert r["instructions"] > 1000 and r["peak_rss_kb"] > 0 and r["pgtable_kb"] > 0
    assert rows[1]["exit_code"] == 7 and rows[1]["faults"].get("wp-copy", 0) >= 1
    assert "--- per process ---" in capsysbinary.readouterr().err.decode()


def test_run_host_dynamic_shell_on_a_read_only_root(capfd: pytest.CaptureFixture[str]) -> None:
    """The host's own dynamically linked /bin/sh runs with --root / --read-only: ld.so maps
    libc from the host's files, and a write is refused with EROFS."""
    status = main(["run", "--root", "/", "--read-only", "/bin/sh", "-c",
                   "echo hello; echo x > /vmsim-must-not-exist || echo refused"])
    out, err = capfd.readouterr()
    assert status == 0 and out == "hello\nrefused\n"
    assert "Read-only file system" in err
    assert not Path("/vmsim-must-not-exist").exists()
