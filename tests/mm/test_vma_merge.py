"""VMA merging and splitting, drawn as pictures.

The picture language is vmsim/conform/pictures.py; the scenarios are in
vmsim/conform/corpus/merges.py, where the conformance harness uses them too.

Every scenario is *layout -> operations -> expected picture*: a window of
pages where ``.`` is unmapped and each VMA is a letter (A, B, C... in address
order, one letter per VMA, so ``"AB"`` is two VMAs that did not merge).
The layout is built with real system calls (mmap MAP_FIXED, mremap, mlock,
madvise, stores); the operation is a system call; the picture is read back
from the VMA tree.

The expectations follow Linux's rules (mm/vma.c: vma_merge_new_range,
vma_merge_existing_range, is_mergeable_vma, is_mergeable_anon_vma,
can_vma_merge_before/after; mm/mprotect.c, mm/mremap.c, mm/mmap.c) as of
the host kernel this was checked on (6.18).  ``test_host_agrees`` replays
every scenario that needs no white-box op on the host kernel through
vmsim/conform/vmops.c and asserts that /proc/self/maps draws the same pictures,
so the expectations are Linux's, not only our reading of it.

The scenarios follow Linux 6.16+'s anon_vma merge rule (see the docstring of
vmsim.conform.corpus.merges); the host confirms it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim import Machine
from vmsim.conform.corpus.merges import IDS, SCENARIOS
from vmsim.conform.host import HostToolError, host_supported, run_host
from vmsim.conform.pictures import (
    FILES,
    VMSIM_BASE,
    Scenario,
    check_host_output,
    host_plan,
    make_files,
    picture,
    render,
    ro,
    run_vmsim,
    runs,
    rw,
    scenario,
    setup,
    validate_picture,
)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    make_files(tmp_path)
    return Machine(memory="64M", root=tmp_path, aslr=False)


# ------------------------------------------------------------------ the DSL itself
def test_picture_letters_follow_vma_identity() -> None:
    p = 4096
    assert picture([(0, 2 * p), (3 * p, 5 * p)], 0, 5) == "AA.BB"
    assert picture([(p, 2 * p), (0, p), (2 * p, 3 * p)], 0, 3) == "ABC"
    assert picture([(-p, 2 * p), (4 * p, 9 * p)], 0, 5) == "AA..B"
    assert runs("AA.BBB") == {"A": (0, 2), "B": (3, 3)}
    for bad in ("ABBBA", "BA", "AAC", "A.A", "A?"):
        with pytest.raises(ValueError):
            validate_picture(bad)


def test_setup_builds_the_picture(machine: Machine) -> None:
    lay = setup("AA.BBB.C", A=rw, B=ro(file="f"), C=rw(written=True))
    sc = scenario("t", "t", lay, expect="AA.BBB.C", rule="")
    assert run_vmsim(sc, machine) == []
    p = machine.processes[1]
    assert render(p, VMSIM_BASE, 8) == "AA.BBB.C"
    machine.check()


def test_scenarios_are_well_formed() -> None:
    for sc in SCENARIOS:
        for op in sc.all_ops():
            if op.name == "mmap" and op.args[3] is not None:
                assert op.args[3] in FILES, sc.name


# ------------------------------------------------------------------ vmsim
@pytest.mark.parametrize("sc", SCENARIOS, ids=IDS)
def test_vmsim(sc: Scenario, machine: Machine) -> None:
    fails = run_vmsim(sc, machine)
    machine.check()
    assert not fails, "\n" + sc.describe() + "\n" + "\n".join(fails)


# ------------------------------------------------------------------ host kernel
HOST_SCENARIOS = [s for s in SCENARIOS if s.host]


@pytest.fixture(scope="module")
def host_max_map_count() -> int:
    return int(Path("/proc/sys/vm/max_map_count").read_text())


@pytest.mark.skipif(not host_supported(), reason="needs a Linux x86-64 host")
@pytest.mark.parametrize("sc", HOST_SCENARIOS, ids=[f"{s.category}: {s.name}" for s in HOST_SCENARIOS])
def test_host_agrees(sc: Scenario, tmp_path: Path, host_max_map_count: int) -> None:
    """The expected pictures are what Linux itself draws (maps of vmops.c)."""
    if any(op.name == "fill" for op in sc.all_ops()) and host_max_map_count > 200_000:
        pytest.skip(f"vm.max_map_count is {host_max_map_count}: too many VMAs to fill")
    make_files(tmp_path)
    plan = host_plan(sc, tmp_path, host_max_map_count)
    try:
        run = run_host(plan.lines, timeout=120)
    except HostToolError as exc:
        pytest.skip(f"host runner unavailable: {exc}")
    fails = check_host_output(sc, plan, run.lines)
    assert not fails, "\n" + sc.describe() + "\n" + "\n".join(fails)
