"""The sample programs (examples/*.c) on vmsim and on the host kernel: same stdout, same status.

Three builds of every sample run both ways: the committed musl-static
binaries in src/vmsim/samples (what `vmsim run NAME` runs), glibc
`gcc -static` builds made at test time, and glibc static-PIE builds of a
few. Each runs with every sample beside it (the `exec` sample runs its
sibling `hello`), with cwd "/" of a fresh sandbox root on vmsim and a fresh
directory natively. A further test rebuilds the samples from examples/ with
examples/build.sh and checks that the committed binaries behave the same as
the rebuilt ones, so a changed source cannot ship with a stale binary.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.progs import CACHE, build, have, run_native, shell_status
from vmsim import Machine
from vmsim.machine import RunResult, samples_dir

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.c"))
#: Samples that are also built as glibc static-PIE programs (loaded at a random base).
PIE_NAMES = ["hello", "cow", "segv", "exec"]


def test_every_example_has_a_committed_sample() -> None:
    committed = sorted(p.name for p in samples_dir().iterdir()
                       if p.is_file() and p.read_bytes()[:4] == b"\x7fELF")
    assert NAMES == committed
    assert len(NAMES) >= 5


def _populate(directory: Path, binaries: dict[str, Path]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, binary in binaries.items():
        shutil.copy2(binary, directory / name)


def _native(tmp: Path, binaries: dict[str, Path], name: str) -> tuple[bytes, int]:
    ndir = tmp / "native"
    _populate(ndir, binaries)
    got = run_native(ndir / name, cwd=ndir)
    return got.stdout, shell_status(got.returncode)


def _vmsim(tmp: Path, binaries: dict[str, Path], name: str, engine: str = "unicorn") -> tuple[
        RunResult, Machine]:
    root = tmp / "root"
    _populate(root, binaries)
    m = Machine(memory="128M", seed=3, root=root, engine=engine)
    return m.run("/" + name, ["/" + name], timeout=30), m


def _same_output(tmp: Path, binaries: dict[str, Path], name: str) -> RunResult:
    native_out, native_status = _native(tmp, binaries, name)
    vm, m = _vmsim(tmp, binaries, name)
    assert not vm.timed_out
    assert (vm.stdout.decode(errors="replace"), vm.exit_code) == (
        native_out.decode(errors="replace"), native_status), vm.kernel_log
    m.check()  # every process gone: no frame, page table or page-cache page leaked
    return vm


def _same(tmp: Path, binaries: dict[str, Path], name: str) -> RunResult:
    vm = _same_output(tmp, binaries, name)
    assert vm.stderr == b"" and vm.kernel_log == []
    return vm


def committed() -> dict[str, Path]:
    return {name: samples_dir() / name for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_musl_sample_same_as_native(tmp_path: Path, name: str) -> None:
    _same(tmp_path, committed(), name)


def glibc_builds(flags: tuple[str, ...] = ()) -> dict[str, Path]:
    return {name: build((EXAMPLES / f"{name}.c").read_text(), name, "gcc", flags)
            for name in NAMES}


@pytest.mark.skipif(not have("gcc"), reason="needs gcc")
@pytest.mark.parametrize("name", NAMES)
def test_glibc_sample_same_as_native(tmp_path: Path, name: str) -> None:
    _same(tmp_path, glibc_builds(), name)


def static_pie(name: str) -> Path:
    """A glibc static-PIE build (tests/progs.py always links with -static, which
    -static-pie does not combine with), cached like progs.build."""
    source = (EXAMPLES / f"{name}.c").read_bytes()
    key = hashlib.sha256(b"static-pie " + source).hexdigest()[:16]
    out = CACHE / f"{name}-static-pie-{key}"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f"{out.name}.{os.getpid()}")
        subprocess.run(["gcc", "-static-pie", "-O2", "-o", str(tmp), str(EXAMPLES / f"{name}.c")],
                       check=True, capture_output=True)
        tmp.replace(out)
    return out


@pytest.mark.skipif(not have("gcc"), reason="needs gcc")
@pytest.mark.parametrize("name", PIE_NAMES)
def test_glibc_static_pie_sample_same_as_native(tmp_path: Path, name: str) -> None:
    binaries = {n: static_pie(n) for n in PIE_NAMES}
    vm = _same(tmp_path, binaries, name)
    assert vm.exit_code == 0


def test_soft_engine_runs_the_samples_the_same(tmp_path: Path) -> None:
    """The soft-MMU engine (vmsim's walker fills Unicorn's TLB) gives the same output."""
    for name in ("cow", "segv", "exec"):
        native_out, status = _native(tmp_path / name, committed(), name)
        vm, m = _vmsim(tmp_path / name, committed(), name, engine="soft")
        assert (vm.stdout, vm.exit_code) == (native_out, status)
        assert m.stats["cpu.tlb_fills"] > 0


def test_samples_show_the_memory_system_at_work(tmp_path: Path) -> None:
    """What each sample is there to show is visible in vmsim's counters."""
    def stats(name: str) -> dict[str, int]:
        vm, m = _vmsim(tmp_path / name, committed(), name)
        assert vm.exit_code == 0
        return m.stats

    cow = stats("cow")
    assert cow["fault.wp-copy"] >= 5  # the child's writes: 4 private pages and .data
    assert cow["fault.wp-reuse"] >= 1  # the parent's last write, the child gone
    assert cow["fault.shared"] >= 1
    big = stats("bigalloc")
    assert big["fault.anon"] >= 16 * 256  # one fault per touched page of the 16 MiB
    mapped = stats("mmapfile")
    assert mapped["fault.cow"] >= 1 and mapped["fault.shared"] >= 1
    segv = stats("segv")
    assert segv.get("fault.zero", 0) + segv.get("fault.anon", 0) >= 1


@pytest.mark.skipif(not have("musl-gcc"), reason="needs musl-gcc (musl-tools)")
def test_committed_samples_are_up_to_date(tmp_path: Path) -> None:
    """examples/build.sh rebuilds every sample; the rebuilt and the committed binaries
    print the same and exit the same, natively."""
    out = tmp_path / "rebuilt"
    subprocess.run(["sh", str(EXAMPLES / "build.sh"), str(out)], check=True, capture_output=True)
    rebuilt = {name: out / name for name in NAMES}
    assert all(p.is_file() for p in rebuilt.values())
    for name in NAMES:
        a = _native(tmp_path / "committed" / name, committed(), name)
        b = _native(tmp_path / "fresh" / name, rebuilt, name)
        assert a == b, f"src/vmsim/samples/{name} is stale: run examples/build.sh"


# ---- process calls the samples do not reach (kernel/sys_proc.py) ---------------------------------
WAITID = r"""
static void show(const char *what, int r, siginfo_t *si) {
    printf("%s: ret=%d errno=%s signo=%d code=%d status=%d pid_ok=%d\n", what, r,
           r < 0 ? strerror(errno) : "-", si->si_signo, si->si_code, si->si_status,
           si->si_pid != 0);
}
int main(void) {
    siginfo_t si;
    memset(&si, 0x55, sizeof si);
    int r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG);
    printf("no children: %d %s\n", r, strerror(errno));
    pid_t a = fork();
    if (a == 0) _exit(7);
    pid_t b = fork();
    if (b == 0) { raise(SIGTERM); _exit(0); }
    pid_t c = fork();
    if (c == 0) { pause(); _exit(0); }
    memset(&si, 0x55, sizeof si);
    r = waitid(P_PID, a, &si, WEXITED | WNOWAIT);
    show("a, WNOWAIT", r, &si);
    r = waitid(P_PID, a, &si, WEXITED);
    show("a", r, &si);
    r = waitid(P_PID, a, &si, WEXITED | WNOHANG);
    printf("a again: %d %s\n", r, strerror(errno));
    r = waitid(P_PID, b, &si, WEXITED);
    show("b", r, &si);
    memset(&si, 0x55, sizeof si);
    r = waitid(P_PID, c, &si, WEXITED | WNOHANG);
    show("c running, WNOHANG", r, &si);
    r = waitid(P_ALL, 0, &si, WNOHANG);
    printf("bad options: %d %s\n", r, strerror(errno));
    r = waitid(P_PID, 0, &si, WEXITED);
    printf("bad id: %d %s\n", r, strerror(errno));
    kill(c, SIGKILL);
    r = waitid(P_PGID, 0, &si, WEXITED);
    show("c", r, &si);
    pid_t d = fork();
    if (d == 0) _exit(1);
    r = waitid(P_ALL, 0, (siginfo_t *)8, WEXITED);
    printf("bad pointer: %d %s\n", r, strerror(errno));
    r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG);
    printf("after the bad pointer: %d %s\n", r, strerror(errno));
    return 0;
}
"""


@pytest.mark.skipif(not have("gcc"), reason="needs gcc")
def test_waitid_against_the_host(tmp_path: Path) -> None:
    from tests.kernel.guest import same

    out = same(tmp_path, WAITID, "waitid")
    assert b"a: ret=0 errno=- signo=17 code=1 status=7 pid_ok=1" in out.native_stdout
    assert b"c: ret=0 errno=- signo=17 code=2 status=9" in out.native_stdout
    assert b"bad options: -1 Invalid argument" in out.native_stdout
    assert b"bad pointer: -1 Bad address\nafter the bad pointer: -1 No child" in out.native_stdout


EXEC_EDGES = r"""#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>
static void mk(const char *name, const char *text, int mode) {
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, mode);
    write(fd, text, strlen(text)); close(fd); chmod(name, mode);
}
static void try(const char *what, const char *path, char **argv, char **envp) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        execve(path, argv, envp);
        printf("%s: execve failed: %s\n", what, strerrorname_np(errno));
        fflush(stdout); _exit(99);
    }
    int st; waitpid(p, &st, 0);
    printf("%s: status %d\n", what, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}
int main(int argc, char **argv, char **envp) {
    if (argc != 1 || !argv[0] || !strstr(argv[0], "execedge")) {
        printf("child argc=%d argv0=%s envc=", argc, argv[0] ? (*argv[0] ? argv[0] : "(empty)") : "(null)");
        int n = 0; while (envp[n]) n++;
        printf("%d\n", n);
        for (int i = 1; i < argc && i < 4; i++) printf(" arg %s\n", argv[i]);
        return argc;
    }
    char *self[] = {"self", "a", "b", NULL};
    char *env[] = {"A=1", NULL};
    try("plain", "./execedge", self, env);
    try("null argv", "./execedge", NULL, NULL);
    char *empty[] = {NULL};
    try("empty argv", "./execedge", empty, env);
    mkdir("d", 0755);
    try("directory", "d", self, env);
    mk("noexec", "x", 0644);
    try("no x bit", "noexec", self, env);
    mk("text", "hello\n", 0755);
    try("text", "text", self, env);
    mk("s1", "#!./execedge -opt\n", 0755);
    try("script", "s1", self, env);
    mk("s2", "#!./missing\n", 0755);
    try("script missing interp", "s2", self, env);
    mk("s3", "#!./s3\n", 0755);
    try("script loop", "s3", self, env);
    mk("s4", "#!\n", 0755);
    try("script empty", "s4", self, env);
    char big[300]; memset(big, 'x', 299); big[0]='#'; big[1]='!'; big[299]=0;
    mk("s5", big, 0755);
    try("script long line", "s5", self, env);
    try("missing", "./nothing", self, env);
    try("empty path", "", self, env);
    static char huge[200000]; memset(huge, 'y', sizeof huge - 1);
    char *hv[] = {"self", huge, NULL};
    try("arg 200k", "./execedge", hv, env);
    try("bad argv ptr", "./execedge", (char **)8, env);
    char *badarg[] = {"self", (char *)8, NULL};
    try("bad arg string", "./execedge", badarg, env);
    return 0;
}
"""


@pytest.mark.skipif(not have("gcc"), reason="needs gcc")
def test_execve_edge_cases_against_the_host(tmp_path: Path) -> None:
    """execve of itself with arguments, with a NULL or empty argv (argc becomes 1 with an
    empty argv[0]), of a directory, a file without x, a text file, #! scripts (with an
    argument, a missing interpreter, a loop, an empty or overlong line), a missing file, an
    empty path, a 200 kB argument, bad argv pointers: same statuses and errno names."""
    binaries = {"execedge": build(EXEC_EDGES, "execedge", "gcc")}
    vm = _same_output(tmp_path, binaries, "execedge")
    assert b"null argv: status 1" in vm.stdout and b"script loop: execve failed: ELOOP" in vm.stdout
    assert vm.kernel_log == ["process 'execedge' launched './execedge' with NULL argv: empty "
                             "string added"]
