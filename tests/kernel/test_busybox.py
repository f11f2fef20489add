"""Debian's busybox-static, the large third-party program: vmsim's output against the host's.

A sandbox root holds bin/busybox with applet links (bin/sh, bin/cat, ...), a
few data files and an empty tmp/. The same busybox runs natively with that
root as its working directory and PATH=ROOT/bin, and on vmsim with the root
as "/" (cwd "/") and PATH=/bin, so relative paths name the same files on
both sides. stdout and the exit status must be identical; where a line holds
something that differs by nature (file owners), it is normalised.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmsim import Machine
from vmsim.machine import RunResult

BUSYBOX = Path(shutil.which("busybox") or "/bin/busybox")


def _static_busybox() -> bool:
    try:
        head = BUSYBOX.read_bytes()[:4096]
    except OSError:
        return False
    return head[:4] == b"\x7fELF" and b"/lib64/ld-linux" not in head  # no PT_INTERP string


pytestmark = pytest.mark.skipif(not _static_busybox(),
                                reason="needs Debian's busybox-static (/bin/busybox)")

APPLETS = ("sh", "cat", "tr", "sort", "head", "wc", "echo", "ls", "seq", "md5sum", "sleep",
           "true", "false", "grep", "cut", "uniq", "printf", "kill", "tail")
FIXED_TIME = 1_600_000_000  # 2020-09-13: files older than six months list with their year
BIG = 10_000_000  # bytes of data/big (md5sum)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("busybox-root")
    (root / "bin").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    data = root / "data"
    (data / "dir").mkdir(parents=True)
    (data / "fruit.txt").write_text("banana\napple\ncherry\napple\n")
    (data / "dir" / "a").write_text("x\n")
    (data / "dir" / "b").write_text("yy\n")
    (data / "dir" / "c.txt").write_text("zzz\n")
    block = bytes(range(256)) * 4096
    with (data / "big").open("wb") as f:
        for i in range(BIG // len(block) + 1):
            f.write(bytes([i & 0xFF]) + block[1:])
        f.truncate(BIG)
    script = root / "bin" / "greet"
    script.write_text("#!/bin/sh\necho \"greetings, $1\"\nexit 3\n")
    script.chmod(0o755)
    (root / "tmp").mkdir()
    for path in [data, *data.rglob("*"), root]:
        os.utime(path, (FIXED_TIME, FIXED_TIME))
    return root


@dataclass
class Both:
    native: subprocess.CompletedProcess[bytes]
    vm: RunResult

    @property
    def native_status(self) -> int:
        rc = self.native.returncode
        return 128 - rc if rc < 0 else rc


def run_both(root: Path, args: list[str], stdin: bytes = b"", program: str = "busybox",
             normalise: Callable[[bytes], bytes] | None = None) -> Both:
    """Run bin/PROGRAM ARGS natively (cwd = root) and on vmsim (root as "/", cwd "/");
    assert the same stdout (after `normalise`) and exit status."""
    env = {"PATH": f"{root}/bin", "HOME": "/", "LANG": "C", "LC_ALL": "C"}
    native = subprocess.run([str(root / "bin" / program), *args], input=stdin, cwd=root,
                            env=env, capture_output=True, timeout=60, check=False)
    m = Machine(memory="128M", seed=1, root=root)
    try:
        vm = m.run(f"/bin/{program}", [program, *args], stdin=stdin, timeout=60,
                   env=["PATH=/bin", "HOME=/", "LANG=C", "LC_ALL=C"])
    finally:
        m.close()  # the VFS's host descriptors: a file open for writing cannot be executed
    both = Both(native, vm)
    fix = normalise or (lambda b: b)
    assert not vm.timed_out
    assert (fix(vm.stdout).decode(errors="replace"), vm.exit_code) == (
        fix(native.stdout).decode(errors="replace"), both.native_status), (
        vm.stderr, vm.kernel_log)
    return both


def test_echo(root: Path) -> None:
    both = run_both(root, ["echo", "hello", "world"])
    assert both.vm.stdout == b"hello world\n"


def test_cat(root: Path) -> None:
    run_both(root, ["cat", "data/fruit.txt", "data/dir/a"])


def test_cat_missing_file_message_and_status(root: Path) -> None:
    both = run_both(root, ["cat", "data/nope"])
    assert both.vm.exit_code == 1
    assert both.vm.stderr == both.native.stderr


def test_wc(root: Path) -> None:
    run_both(root, ["wc", "data/fruit.txt", "data/dir/b"])


def test_wc_from_stdin(root: Path) -> None:
    run_both(root, ["wc", "-l"], stdin=b"one\ntwo\nthree\n")


def test_sort(root: Path) -> None:
    run_both(root, ["sort", "data/fruit.txt"])


def test_sort_unique_from_stdin(root: Path) -> None:
    run_both(root, ["sort", "-u", "-r"], stdin=b"b\na\nc\na\n")


def test_ls_directory(root: Path) -> None:
    both = run_both(root, ["ls", "data/dir"])
    assert both.vm.stdout == b"a\nb\nc.txt\n"


def _owners(text: bytes) -> bytes:
    """`ls -l` lines with the owner and group columns blanked (the sandbox has no
    /etc/passwd; natively the files belong to whoever runs the tests) and the padding
    that depends on their width squeezed."""
    text = re.sub(rb"^([-dlrwxst]{10}\s+\d+)\s+\S+\s+\S+", rb"\1 - -", text, flags=re.M)
    return re.sub(rb" +", b" ", text)


def test_ls_long_listing(root: Path) -> None:
    both = run_both(root, ["ls", "-la", "data"], normalise=_owners)
    assert b"Sep 13  2020 fruit.txt" in both.vm.stdout


def _listing(text: bytes) -> bytes:
    """`ls -la` of the root: owners blanked, dates blanked (the guest's clock starts at
    2026-01-01, so a file changed today is in its future and shows a year), and the ".."
    line dropped (natively it is the directory holding the root), with the "total" line,
    which counts its blocks too."""
    text = re.sub(rb"\w{3} \d+ (\d{4}|\d\d:\d\d) ", b"DATE ", _owners(text))
    return b"".join(line for line in text.splitlines(keepends=True)
                    if not line.rstrip().endswith(b" ..") and not line.startswith(b"total "))


def test_ls_la_of_the_root(root: Path) -> None:
    both = run_both(root, ["ls", "-la", "."], normalise=_listing)
    assert b" bin\n" in both.vm.stdout and b" data\n" in both.vm.stdout


def test_echo_through_cat(root: Path) -> None:
    both = run_both(root, ["sh", "-c", "echo a | cat"])
    assert both.vm.stdout == b"a\n"


def test_pipe_through_tr(root: Path) -> None:
    both = run_both(root, ["sh", "-c", "echo a | tr a b"])
    assert both.vm.stdout == b"b\n"


def test_for_loop(root: Path) -> None:
    run_both(root, ["sh", "-c", "for i in 1 2 3; do echo $i; done"])


def test_for_loop_piped_to_wc(root: Path) -> None:
    run_both(root, ["sh", "-c", "for i in 1 2 3 4 5 6 7; do echo line $i; done | wc -l"])


def test_pipeline_of_five_processes(root: Path) -> None:
    both = run_both(root, ["sh", "-c", "cat data/fruit.txt | sort | uniq | tr a-z A-Z | head -n 2"])
    assert both.vm.stdout == b"APPLE\nBANANA\n"


def test_command_substitution(root: Path) -> None:
    run_both(root, ["sh", "-c", "n=$(cat data/fruit.txt | wc -l); echo \"$n lines, $(echo sub)\""])


def test_exit_status(root: Path) -> None:
    both = run_both(root, ["sh", "-c", "exit 7"])
    assert both.vm.exit_code == 7


def test_status_of_a_signalled_shell(root: Path) -> None:
    both = run_both(root, ["sh", "-c", "echo before; kill -TERM $$; echo after"])
    assert both.vm.exit_code == 128 + 15 and both.vm.stdout == b"before\n"


def test_status_of_failing_commands(root: Path) -> None:
    run_both(root, ["sh", "-c", "false; echo $?; grep -q zzz data/fruit.txt; echo $?; "
                                "sh -c 'exit 5'; echo $?"])


def test_a_dozen_forks(root: Path) -> None:
    both = run_both(root, ["sh", "-c", "for i in $(seq 1 12); do (echo child $i); done | tail -n 3"])
    assert both.vm.stdout == b"child 10\nchild 11\nchild 12\n"


def test_md5sum_of_ten_megabytes(root: Path) -> None:
    run_both(root, ["md5sum", "data/big", "data/fruit.txt"])


def test_write_then_read_a_file(root: Path) -> None:
    run_both(root, ["sh", "-c", "printf 'x\\ny\\n' > tmp/out.txt; seq 3 >> tmp/out.txt; "
                                "cat tmp/out.txt; wc -c < tmp/out.txt"])


def test_script_with_interpreter_line(root: Path) -> None:
    """binfmt_script: bin/greet starts with "#!/bin/sh" (busybox in the sandbox, the host's
    /bin/sh natively)."""
    both = run_both(root, ["world"], program="greet")
    assert both.vm.stdout == b"greetings, world\n" and both.vm.exit_code == 3


def test_background_job_and_wait(root: Path) -> None:
    """busybox sh gives a background job /dev/null as its stdin."""
    both = run_both(root, ["sh", "-c", "sleep 0 & wait $!; echo \"status $?\"; "
                                       "for i in 1 2 3; do echo bg $i > tmp/bg$i & done; wait; "
                                       "cat tmp/bg1 tmp/bg2 tmp/bg3"])
    assert both.vm.stdout == b"status 0\nbg 1\nbg 2\nbg 3\n"
