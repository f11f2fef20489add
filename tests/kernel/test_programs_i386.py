"""Static i386 programs (`gcc -m32 -static`) on vmsim's i386 and i386-pae machines.

Each sample of examples/ that vmsim runs as an i386 program is built with
glibc for i386, run on the host kernel (the referee: an x86-64 kernel's ia32
emulation) and on vmsim with 2-level (PSE) and PAE page tables, through the
int $0x80 system-call ABI: same stdout, same exit status, and every invariant
of the machine holds afterwards. `segv` and `jit` take SIGSEGV in handlers on
the i386 signal frame and leave them with siglongjmp. `jit` differs in one
line on the 2-level "i386" tables, as it would on a real i386 CPU without PAE:
those entries have no no-execute bit, so the no-exec page runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.progs import build, have, run_native, shell_status
from vmsim import Machine
from vmsim.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
#: The samples that run as i386 programs (exec runs its sibling hello).
NAMES = ["hello", "cow", "mmapfile", "bigalloc", "pipe", "exec", "maps", "stack", "segv", "jit"]
#: What `jit` prints for its no-exec page where the tables cannot forbid execution.
NO_NX_LINE = b"no-exec page returned 7 (wrong)\n"
ARCHES = ["i386", "i386-pae"]


def _multilib() -> bool:
    if not have("gcc"):
        return False
    try:
        build("int main(void) { return 0; }\n", "m32-probe", flags=("-m32",))
    except subprocess.CalledProcessError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _multilib(), reason="gcc -m32 (gcc-multilib) not available")


def _i386(name: str) -> Path:
    return build((EXAMPLES / f"{name}.c").read_text(), f"{name}-i386", flags=("-m32",))


@pytest.fixture(scope="module")
def binaries() -> dict[str, Path]:
    return {name: _i386(name) for name in NAMES}


def _populate(directory: Path, binaries: dict[str, Path]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, binary in binaries.items():
        shutil.copy2(binary, directory / name)


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("name", NAMES)
def test_i386_sample_same_as_native(tmp_path: Path, binaries: dict[str, Path], name: str,
                                    arch: str) -> None:
    ndir, root = tmp_path / "native", tmp_path / "root"
    _populate(ndir, binaries)
    _populate(root, binaries)
    native = run_native(ndir / name, cwd=ndir)
    m = Machine(arch=arch, memory="128M", seed=3, root=root)
    vm = m.run("/" + name, ["/" + name], timeout=60)
    assert not vm.timed_out
    expected = native.stdout
    if name == "jit" and arch == "i386":  # no NX bit in 2-level entries: the page runs
        lines = expected.splitlines(keepends=True)
        assert lines[-1] == b"no-exec page: SIGSEGV, si_code SEGV_ACCERR\n"
        expected = b"".join(lines[:-1]) + NO_NX_LINE
    assert (vm.stdout.decode(errors="replace"), vm.exit_code) == (
        expected.decode(errors="replace"), shell_status(native.returncode)), vm.kernel_log
    assert m.cpu is not None and type(m.cpu).__name__ == "UnicornCpu32"
    m.check()


def test_elf_class_must_match_the_machine(tmp_path: Path, binaries: dict[str, Path]) -> None:
    """An x86-64 program on an i386 machine and an i386 one on x86-64: ENOEXEC (126)."""
    x86_64 = build((EXAMPLES / "hello.c").read_text(), "hello")
    _populate(tmp_path, {"h32": binaries["hello"], "h64": x86_64})
    m32 = Machine(arch="i386", memory="64M", root=tmp_path)
    assert m32.run("/h64", ["/h64"]).exit_code == 126
    m64 = Machine(arch="x86_64", memory="64M", root=tmp_path)
    assert m64.run("/h32", ["/h32"]).exit_code == 126
    m32b = Machine(arch="i386", memory="64M", root=tmp_path)
    assert m32b.run("/h32", ["/h32"]).stdout == b"hello, world\n"
    m32b.check()


TLS_AND_CALLS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/syscall.h>
static __thread int counter = 5;
int main(void) {
    counter += 2;
    struct stat st;
    int fd = open("/data", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, "0123456789", 10) != 10) return 1;
    off_t pos = lseek(fd, 3, SEEK_SET);
    char b[4] = {0};
    if (read(fd, b, 3) != 3) return 2;
    if (fstat(fd, &st) != 0) return 3;
    char *p = mmap(0, 8192, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return 4;
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 5;
    errno = 0;
    long r = syscall(0x7fff);
    printf("tls=%d pos=%ld read=%s size=%lld mode=%o map=%.4s nosys=%ld/%d\n", counter,
           (long)pos, b, (long long)st.st_size, st.st_mode & 0777, p + 2, r, errno);
    return 0;
}
"""


@pytest.mark.parametrize("arch", ARCHES)
def test_tls_stat64_llseek_mmap2(tmp_path: Path, arch: str) -> None:
    """__thread (set_thread_area + %gs), stat64 layout, _llseek, mmap2 of a file; an
    unknown number is -ENOSYS and recorded."""
    prog = build(TLS_AND_CALLS, "i386-calls", flags=("-m32",))
    _populate(tmp_path / "root", {"calls": prog})
    m = Machine(arch=arch, memory="64M", root=tmp_path / "root")
    vm = m.run("/calls", ["/calls"])
    assert vm.stdout == (b"tls=7 pos=3 read=345 size=10 mode=644 map=2345 nosys=-1/38\n"), (
        vm.stdout, vm.kernel_log)
    assert vm.exit_code == 0
    assert m.unimplemented["syscall32_32767"] == 1
    m.check()


def test_cli_run_arch_i386(binaries: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["run", "--arch", "i386", str(binaries["hello"])]) == 0
    assert capsys.readouterr().out == "hello, world\n"
    assert cli_main(["run", "--arch", "i386-pae", str(binaries["hello"])]) == 0
    assert capsys.readouterr().out == "hello, world\n"


MISC = r"""
#include <stdio.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
static volatile int got;
static volatile char *where;
static void h(int s) { char c; got = s; where = &c; }
int main(void) {
    struct timespec ts = {0, 1000000};
    int a = nanosleep(&ts, 0);
    int b = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, 0);
    stack_t ss; ss.ss_sp = malloc(65536); ss.ss_size = 65536; ss.ss_flags = 0;
    int c = sigaltstack(&ss, 0);
    struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = h; sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR1, &sa, 0);
    kill(getpid(), SIGUSR1);
    int onalt = where >= (char *)ss.ss_sp && where < (char *)ss.ss_sp + 65536;
    struct rusage ru; int d = getrusage(RUSAGE_SELF, &ru);
    struct sysinfo si; int e = sysinfo(&si);
    struct rlimit rl; int g = getrlimit(RLIMIT_STACK, &rl);
    pid_t p = fork();
    if (p == 0) _exit(5);
    int st; waitpid(p, &st, 0);
    printf("%d %d %d got=%d onalt=%d %d %d %d cur=%lu st=%d\n", a, b, c, got, onalt, d, e, g,
           (unsigned long)rl.rlim_cur, WEXITSTATUS(st));
    return 0;
}
"""


@pytest.mark.parametrize("arch", ARCHES)
def test_sleeps_altstack_plain_handler_rusage(tmp_path: Path, arch: str) -> None:
    """nanosleep / clock_nanosleep (32-bit timespecs), a handler without SA_SIGINFO on the
    alternate stack (the non-RT frame and sigreturn), getrusage, sysinfo, fork + waitpid."""
    prog = build(MISC, "i386-misc", flags=("-m32",))
    native = run_native(prog)
    _populate(tmp_path / "root", {"misc": prog})
    m = Machine(arch=arch, memory="64M", root=tmp_path / "root")
    vm = m.run("/misc", ["/misc"])
    assert (vm.stdout, vm.exit_code) == (native.stdout, 0), vm.kernel_log
    assert vm.stdout.startswith(b"0 0 0 got=10 onalt=1 0 0 0 ")
    assert not m.unimplemented.keys() - {"rseq"}
    m.check()


def test_soft_engine_is_x86_64_only(binaries: dict[str, Path]) -> None:
    m = Machine(arch="i386", memory="64M", engine="soft")
    with pytest.raises(ValueError, match="x86_64 programs only"):
        m.get_cpu()
    assert cli_main(["run", "--arch", "i386", "--engine", "soft", str(binaries["hello"])]) == 2
