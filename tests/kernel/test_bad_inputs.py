"""Bad input gets the Linux answer and vmsim carries on: malformed executables, a fork bomb
against the memory cap, a runaway guest against the time budget.

The host kernel is the referee for execve's errno: the same file is given
to the host's execve (in a child Python) and to vmsim's.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.progs import build, install
from vmsim.machine import Machine

HELLO = r"""
#include <stdio.h>
int main(void) { puts("hello"); return 0; }
"""

FORK_BOMB = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    int n = 0, err = 0;
    for (int i = 0; i < 5000; i++) {
        pid_t p = fork();
        if (p < 0) { err = errno; break; }
        if (p == 0) { char *m = malloc(256 << 10); if (m) memset(m, 1, 256 << 10); pause(); _exit(0); }
        n++;
    }
    printf("forked %d, then %s\n", n, err ? strerror(err) : "no error");
    fflush(stdout);
    signal(SIGTERM, SIG_IGN);
    kill(0, SIGTERM);
    return 0;
}
"""

SPIN = r"""
int main(void) { volatile unsigned long x = 0; for (;;) x++; }
"""


def host_execve_errno(path: Path) -> int:
    """The errno the host kernel's execve gives for `path` (0 if it ran)."""
    code = ("import os, sys\n"
            "try:\n    os.execv(sys.argv[1], [sys.argv[1]])\n"
            "except OSError as e:\n    print('errno', e.errno)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, timeout=30, check=False)
    words = out.stdout.split()
    return int(words[1]) if words[:1] == ["errno"] else 0


def bad_files(root: Path) -> dict[str, Path]:
    """Executables that must not run: each is a file the host's execve also refuses."""
    hello = build(HELLO, "hello")
    data = hello.read_bytes()
    files = {
        "truncated-elf": data[:100],
        "header-only-elf": data[:64],
        "empty": b"",
        "text": b"echo hello\n",
        "foreign-machine": data[:18] + struct.pack("<H", 183) + data[20:],  # EM_AARCH64
        # Linux ignores e_ident's class and byte-order bytes for a native ELF: these run.
        "32-bit-class": data[:4] + b"\x01" + data[5:],
        "big-endian": data[:5] + b"\x02" + data[6:],
        "bad-interpreter": b"#!/no/such/interpreter\n",
    }
    out = {}
    for name, raw in files.items():
        p = root / name
        p.write_bytes(raw)
        p.chmod(0o755)
        out[name] = p
    (root / "a-directory").mkdir()
    out["a-directory"] = root / "a-directory"
    noexec = root / "not-executable"
    noexec.write_bytes(data)
    noexec.chmod(0o644)
    out["not-executable"] = noexec
    return out


def test_bad_executables_get_the_hosts_errno(tmp_path: Path) -> None:
    files = bad_files(tmp_path)
    refused = 0
    for name, path in files.items():
        expected = host_execve_errno(path)
        m = Machine(memory="32M", root=tmp_path)
        result = m.run("/" + name, ["/" + name])
        assert result.errno == expected, (name, os.strerror(result.errno), os.strerror(expected))
        if expected:
            refused += 1
            assert result.exit_code == (127 if expected == 2 else 126) and not m.processes, name
        else:
            assert (result.exit_code, result.stdout) == (0, b"hello\n"), name
        m.check()
    assert refused >= 8


def test_fork_bomb_meets_the_memory_cap_and_vmsim_carries_on(tmp_path: Path) -> None:
    """Forking until RAM runs out: the OOM killer kills the biggest task (by oom_badness, as
    Linux: here the parent, whose file pages outnumber each child's) until the faulting one
    can go on; every task ends, every frame comes back, and the invariants hold."""
    guest = install(build(FORK_BOMB, "forkbomb"), tmp_path, "/forkbomb")
    m = Machine(memory="24M", root=tmp_path)
    free_before = m.kmem.buddy.nr_free
    result = m.run(guest, [guest], timeout=240)
    assert not result.timed_out
    kills = [line for line in result.kernel_log if line.startswith("Out of memory: Killed process")]
    assert kills, result.kernel_log[-3:]
    assert result.exit_code == 128 + 9 or result.stdout.startswith(b"forked ")
    assert not m.processes
    m.check()
    assert m.kmem.buddy.nr_free >= free_before - 256  # only the binary's page cache remains


def test_runaway_guest_is_stopped_by_the_time_budget(tmp_path: Path) -> None:
    guest = install(build(SPIN, "spin"), tmp_path, "/spin")
    m = Machine(memory="16M", root=tmp_path)
    result = m.run(guest, [guest], timeout=1.0)
    assert result.timed_out and result.exit_code == 128 + 9
    assert not m.processes
    m.check()


def test_runaway_guest_is_stopped_by_the_instruction_budget(tmp_path: Path) -> None:
    guest = install(build(SPIN, "spin"), tmp_path, "/spin")
    m = Machine(memory="16M", root=tmp_path)
    m.max_instructions = 2_000_000
    result = m.run(guest, [guest], timeout=60)
    assert result.timed_out and result.exit_code == 128 + 9
    assert "vmsim: instruction budget exhausted" in result.kernel_log[-1]
    assert 2_000_000 <= m.insns < 2_000_000 + 100
    m.check()


def test_instruction_counts_are_exact_and_deterministic(tmp_path: Path) -> None:
    guest = install(build(HELLO, "hello"), tmp_path, "/hello")
    counts = []
    for _ in range(2):
        m = Machine(memory="16M", root=tmp_path)
        m.count_instructions = True
        assert m.run(guest, [guest]).stdout == b"hello\n"
        counts.append((m.insns, m.zombies[1].insns))
    assert counts[0] == counts[1] and counts[0][0] == counts[0][1] > 10_000


@pytest.mark.parametrize("memory", ["8M"])
def test_program_larger_than_ram_is_oom_killed_cleanly(tmp_path: Path, memory: str) -> None:
    src = r"""
    #include <stdlib.h>
    #include <string.h>
    int main(void) { for (;;) { char *p = malloc(1 << 20); if (!p) return 3; memset(p, 7, 1 << 20); } }
    """
    guest = install(build(src, "hog"), tmp_path, "/hog")
    m = Machine(memory=memory, root=tmp_path)
    result = m.run(guest, [guest], timeout=60)
    assert result.exit_code in (3, 128 + 9), result
    if result.exit_code == 128 + 9:
        assert any("Out of memory" in line for line in result.kernel_log)
    m.check()


WILD_POINTERS = r"""
#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
static void show(const char *name, long r) {
    printf("%-18s %ld %d\n", name, r, r < 0 ? errno : 0);
}
int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    int fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, "0123456789", 10);
    int dir = open(".", O_RDONLY | O_DIRECTORY);
    void *wild[] = {(void *)1, (void *)0xffff800000000000ul, (void *)0x00007ffffffff000ul};
    for (int i = 0; i < 3; i++) {
        void *p = wild[i];
        errno = 0;
        printf("-- pointer %d\n", i);
        show("read", syscall(SYS_read, fd, p, 4));
        show("write", syscall(SYS_write, fd, p, 4));
        show("pread64", syscall(SYS_pread64, fd, p, 4, 0));
        show("pwrite64", syscall(SYS_pwrite64, fd, p, 4, 0));
        show("readv", syscall(SYS_readv, fd, p, 1));
        show("writev", syscall(SYS_writev, fd, p, 1));
        show("openat", syscall(SYS_openat, AT_FDCWD, p, O_RDONLY));
        show("newfstatat path", syscall(SYS_newfstatat, AT_FDCWD, p, p, 0));
        show("fstat", syscall(SYS_fstat, fd, p));
        show("statx", syscall(SYS_statx, AT_FDCWD, "f", 0, 0x7ff, p));
        show("readlinkat", syscall(SYS_readlinkat, AT_FDCWD, "f", p, 16));
        show("getdents64", syscall(SYS_getdents64, dir, p, 4096));
        show("getcwd", syscall(SYS_getcwd, p, 4096));  /* room for any cwd: else ERANGE */
        show("pipe2", syscall(SYS_pipe2, p, 0));
        show("clock_gettime", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, p));
        show("gettimeofday", syscall(SYS_gettimeofday, p, 0));
        show("nanosleep", syscall(SYS_nanosleep, p, 0));
        show("getrlimit", syscall(SYS_getrlimit, RLIMIT_STACK, p));
        show("prlimit64", syscall(SYS_prlimit64, 0, RLIMIT_STACK, p, 0));
        show("getrusage", syscall(SYS_getrusage, RUSAGE_SELF, p));
        show("sysinfo", syscall(SYS_sysinfo, p));
        show("uname", syscall(SYS_uname, p));
        show("rt_sigaction", syscall(SYS_rt_sigaction, SIGUSR1, p, 0, 8));
        show("rt_sigprocmask", syscall(SYS_rt_sigprocmask, SIG_BLOCK, p, 0, 8));
        show("sigaltstack", syscall(SYS_sigaltstack, p, 0));
        show("getrandom", syscall(SYS_getrandom, p, 8, 0));
        show("mincore", syscall(SYS_mincore, wild, 4096, p));
        show("wait4", syscall(SYS_wait4, -1, p, WNOHANG, 0));
        show("execve", syscall(SYS_execve, p, 0, 0));
        show("sched_getaffinity", syscall(SYS_sched_getaffinity, 0, 128, p));
    }
    puts("still alive");
    return 0;
}
"""


def test_wild_pointers_to_thirty_syscalls_get_efault_as_on_the_host(tmp_path: Path) -> None:
    """Thirty system calls each given three wild pointers (low, kernel, top of user space):
    the same return value and errno as the host kernel, and the program lives on."""
    from tests.kernel.guest import same

    out = same(tmp_path, WILD_POINTERS, "wild")
    text = out.native_stdout.decode()
    assert text.endswith("still alive\n") and text.count(" 14\n") >= 60  # EFAULT
