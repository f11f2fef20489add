"""/proc/<pid>/maps and smaps of vmsim against the host kernel, byte for byte.

Each scenario (vmsim/conform/corpus/golden.py) is a script of mmap, mprotect,
munmap, mremap, madvise, mlock and page-touching operations with ``maps`` and
``smaps`` dumps in between.  It runs on the host through vmsim/conform/vmops.c
and on a vmsim process through vmsim/conform/vmsim_side.py.  Both sides rewrite the
VMA address range to offsets from their base (see vmops.c for the exact rule)
and keep every other byte, so the outputs must be equal line for line.

Files live in one directory that is vmsim's root and is reset (same inodes,
contents synced and dropped from the host's page cache) before each side
runs, so device and inode numbers agree; the two rewrites that remain are
done by vmsim/conform/compare.py and documented there: host paths in that
directory are shown as the guest path (``/lib.so``), and the inode number of
a shared-anonymous mapping's ``/dev/zero (deleted)`` file becomes ``<ino>``
with the padding still checked.

The only smaps lines not compared are listed, with the reason for each, in
:data:`SMAPS_EXCLUSIONS`; they are removed from both sides by
:func:`strip_excluded`, never silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim.conform.compare import compare_with_host
from vmsim.conform.corpus.golden import FILES, PAF, RW, SCENARIOS, A, P, Scenario
from vmsim.conform.host import host_supported, run_host
from vmsim.conform.script import Script

pytestmark = pytest.mark.skipif(not host_supported(), reason="needs a Linux x86-64 host")

#: What is left out of the smaps comparison, with the reason for each.  A key
#: ``"Field"`` drops that field's line; ``"VmFlags:xx"`` drops only the
#: mnemonic ``xx`` from the VmFlags line.  Everything else is compared.
SMAPS_EXCLUSIONS: dict[str, str] = {
    "VmFlags:sd": (
        "soft-dirty tracking is a kernel build option (CONFIG_MEM_SOFT_DIRTY): vmsim "
        "models a kernel that has it (new VMAs get VM_SOFTDIRTY, shown as 'sd'); the "
        "reference host's kernel is built without it (test_soft_dirty_exclusion_needed "
        "fails once a host shows 'sd', so the exclusion goes away with such a host)"
    ),
}


def strip_excluded(lines: list[str]) -> list[str]:
    """Apply :data:`SMAPS_EXCLUSIONS` to output lines (either side's)."""
    fields = {k for k in SMAPS_EXCLUSIONS if ":" not in k}
    flags = {k.split(":", 1)[1] for k in SMAPS_EXCLUSIONS if k.startswith("VmFlags:")}
    out: list[str] = []
    for line in lines:
        body = line.removeprefix("child: ") if line.startswith("child: ") else line
        lead = line[: len(line) - len(body)]
        name = body.split(":", 1)[0]
        if name in fields:
            continue
        if name == "VmFlags" and flags:
            kept = [f for f in body[len("VmFlags: ") :].split(" ") if f not in flags]
            line = lead + "VmFlags: " + " ".join(kept)
        out.append(line)
    return out


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[sc.id for sc in SCENARIOS])
def test_maps_and_smaps_match_host(scenario: Scenario, tmp_path: Path) -> None:
    host, sim = compare_with_host(scenario.build, tmp_path, FILES)
    assert "end" in host.lines
    assert strip_excluded(sim) == strip_excluded(host.lines)


def test_soft_dirty_exclusion_needed() -> None:
    """The VmFlags:sd exclusion holds only while the host kernel lacks soft-dirty."""
    run = run_host(Script().mmap(A, P, RW, PAF).smaps().lines)
    vmflags = [ln for ln in run.lines if ln.startswith("VmFlags:")]
    assert vmflags, run.lines
    assert "sd" not in vmflags[0].split(), "the host has soft-dirty: drop the VmFlags:sd exclusion"


def test_strip_excluded() -> None:
    lines = ["Size: 4 kB", "VmFlags: rd wr sd ", "child: VmFlags: rd sd ac "]
    assert strip_excluded(lines) == ["Size: 4 kB", "VmFlags: rd wr ", "child: VmFlags: rd ac "]
