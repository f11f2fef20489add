"""The two CPU engines run the same static programs to the same end.

The default engine lets QEMU's x86 MMU walk vmsim's tables and enters the
kernel on #PF; the soft engine walks them with vmsim's own walker on every
TLB miss and enters the kernel from the fill hook. Whatever a program can
observe must not depend on which one runs it: stdout and the exit status
(both also checked against the host kernel), the kernel's log lines (which
print the exact fault address, ip and error code) and the machine's fault
counts by kind. The counts agree exactly because both engines make the
same accesses in the same order: QEMU's translated code issues the loads,
stores and fetches, and only the translation differs (see the note on
read-modify-write instructions in `test_rmw_faults_agree`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cpu.programs import PROGRAMS, binary, native, run_on
from tests.progs import have

pytestmark = pytest.mark.skipif(not have("gcc"), reason="needs gcc to build the programs")


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_same_program_same_outcome(tmp_path: Path, name: str) -> None:
    prog = binary(name)
    out, status = native(prog)
    hw = run_on("unicorn", prog, tmp_path / "hw")
    soft = run_on("soft", prog, tmp_path / "soft")
    for run in (hw, soft):
        assert not run.result.timed_out, run.result.kernel_log
        assert (run.result.stdout.decode(), run.result.exit_code) == (out.decode(), status), (
            run.machine.engine, run.result.kernel_log)
    assert soft.result.kernel_log == hw.result.kernel_log
    assert soft.faults == hw.faults
    assert soft.faults  # a program always faults its text and stack in


RMW = r"""
int main(void) {
  volatile long *p = mmap(0, 8 * 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  for (int i = 0; i < 8; i++) __asm__ volatile("addq $1, %0" : "+m"(p[i * 512]));
  long s = 0;
  for (int i = 0; i < 8; i++) s += p[i * 512];
  printf("%ld\n", s);
  return 0;
}
"""


def test_rmw_faults_agree(tmp_path: Path) -> None:
    """`add [mem], 1` on fresh pages. A real CPU checks write access first and takes one
    write fault (a new anonymous page); QEMU performs the load, then the store, so both
    engines take a read fault (the zero page) and then a write fault (a copy of it).
    The engines agree with each other; they both differ from the host here, and only in
    the fault kinds, never in what the program sees."""
    prog = binary("rmw", RMW)
    out, status = native(prog)
    hw = run_on("unicorn", prog, tmp_path / "hw")
    soft = run_on("soft", prog, tmp_path / "soft")
    assert (hw.result.stdout, hw.result.exit_code) == (out, status)
    assert (soft.result.stdout, soft.result.exit_code) == (out, status)
    assert soft.faults == hw.faults
    assert hw.faults.get("fault.zero", 0) >= 8 and hw.faults.get("fault.wp-copy", 0) >= 8


def _samples() -> list[str]:
    from vmsim.machine import samples_dir

    d = samples_dir()
    return sorted(p.name for p in d.iterdir() if p.is_file() and not p.suffix) if d.is_dir() else []


@pytest.mark.parametrize("name", _samples())
def test_bundled_samples_agree(name: str) -> None:
    """Every bundled sample program (no compiler needed) runs to the same end on both."""
    from vmsim import Machine

    runs = {}
    for engine in ("unicorn", "soft"):
        m = Machine(memory="128M", engine=engine)
        r = m.run(name, timeout=60)
        runs[engine] = (r.exit_code, r.stdout, r.kernel_log,
                        {k: v for k, v in m.stats.items() if k.startswith("fault.")})
    assert runs["soft"] == runs["unicorn"]


BUSYBOX = Path("/bin/busybox")


@pytest.mark.skipif(not BUSYBOX.exists(), reason="needs a static busybox")
@pytest.mark.parametrize("script", ["echo a | cat", "for i in 1 2 3; do echo $i; done | wc -l",
                                    "x=$(echo sub); echo got $x"])
def test_busybox_pipelines_agree(tmp_path: Path, script: str) -> None:
    """Processes running concurrently are sliced by instruction counts; when a task then
    runs alone Unicorn deletes its counting hook and looks up the pages of every block it
    had instrumented (blocks other processes of the same binary translated). The soft
    engine must not take those lookups for guest fetches, or it faults in text pages the
    guest never runs: these pipelines caught it (`SoftMmuCpu._switch_counting`)."""
    import shutil

    from vmsim import Machine

    runs = {}
    for engine in ("unicorn", "soft"):
        root = tmp_path / engine
        (root / "bin").mkdir(parents=True)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for name in ("sh", "echo", "cat", "wc"):
            (root / "bin" / name).symlink_to("busybox")
        m = Machine(memory="128M", seed=1, root=root, engine=engine)
        r = m.run("/bin/sh", ["sh", "-c", script], timeout=120)
        runs[engine] = (r.exit_code, r.stdout, r.kernel_log,
                        {k: v for k, v in m.stats.items() if k.startswith("fault.")})
    assert runs["soft"] == runs["unicorn"]
    assert runs["soft"][0] == 0 and runs["soft"][1]
