"""Dynamically linked programs: ld.so from the guest's root maps libc itself with mmap of a
file descriptor, so libc's pages are one page-cache copy shared by every process — the
lecture's "shared objects" on a real library.

The host's own gcc builds the program and the host's root is the guest's root, mounted
read-only.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vmsim.machine import Machine
from vmsim.mm.vma import VM_EXEC

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char *p = malloc(100);
    strcpy(p, argc > 1 ? argv[1] : "nobody");
    printf("hello from %s, pid %s\n", p, getpid() > 0 ? "positive" : "negative");
    fflush(stdout);
    if (argc > 2)
        pause();  /* wait, so that a test can look at two live processes */
    return 0;
}
"""


@pytest.fixture(scope="module")
def dyn_prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("dyn")
    src = d / "dyn.c"
    src.write_text(SOURCE)
    out = d / "dyn"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(src)], check=True)
    return out


def test_dynamic_program_runs_on_a_read_only_host_root(dyn_prog: Path) -> None:
    native = subprocess.run([str(dyn_prog), "vmsim"], capture_output=True, check=False)
    m = Machine(memory="128M", root="/", read_only=True)
    result = m.run(str(dyn_prog), [str(dyn_prog), "vmsim"])
    assert (result.exit_code, result.stdout) == (native.returncode, native.stdout)
    assert result.stdout == b"hello from vmsim, pid positive\n"
    assert m.unimplemented.keys() <= {"rseq"}, m.unimplemented
    m.close()


def _exec_pages(m: Machine, pid: int, suffix: str) -> dict[int, int]:
    """Virtual page -> PFN of the present pages of the executable mapping of `suffix`."""
    proc = m.processes[pid]
    out = {}
    for vma in proc.mm:
        if vma.vm_file is None or not vma.vm_file.path.endswith(suffix) or not vma.vm_flags & VM_EXEC:
            continue
        for va in range(vma.vm_start, vma.vm_end, 4096):
            phys = proc.translate(va)
            if phys is not None:
                out[va - vma.vm_start] = phys >> 12
    return out


def test_two_processes_share_libc_text_frames(dyn_prog: Path) -> None:
    m = Machine(memory="128M", root="/", read_only=True, aslr=True, seed=3)
    a = m.exec_process(str(dyn_prog), [str(dyn_prog), "a", "wait"])
    b = m.exec_process(str(dyn_prog), [str(dyn_prog), "b", "wait"])
    assert not isinstance(a, int) and not isinstance(b, int)
    m.sched.run(m.get_cpu(), kill_sleepers=False)
    assert a.alive and b.alive
    libc_a = _exec_pages(m, a.pid, "libc.so.6")
    libc_b = _exec_pages(m, b.pid, "libc.so.6")
    common = libc_a.keys() & libc_b.keys()
    assert len(common) >= 10, (len(libc_a), len(libc_b))
    assert all(libc_a[off] == libc_b[off] for off in common)  # the same frames, not copies
    # ... and different virtual addresses: each process placed libc itself (ASLR)
    va_a = min(v.vm_start for v in a.mm if v.vm_file and v.vm_file.path.endswith("libc.so.6"))
    va_b = min(v.vm_start for v in b.mm if v.vm_file and v.vm_file.path.endswith("libc.so.6"))
    assert va_a != va_b
    for p in (a, b):
        m.sched.kill_task(p, 9)
    assert m.console["stdout"].sink.count(b"hello from") == 2
    m.check()
    m.close()
