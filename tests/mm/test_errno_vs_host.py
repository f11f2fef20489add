"""Error returns of the memory system calls: vmsim against the host kernel.

One row per case (the rows are in vmsim/conform/corpus/errno_cases.py).  Each
row is a short script (vmsim/conform/script.py format): some set-up lines and,
last, the call under test.  The script runs on the host through
vmsim/conform/vmops.c and on a fresh vmsim process through
vmsim/conform/vmsim_side.py; the two outputs must be equal line for line (so the
set-up lines are compared too).  ``expect`` is what the row is about - the
host's result of the last line - and is checked against the host as well, so a
row that no longer exercises its case on a new kernel fails loudly instead of
silently comparing something else.

Addresses are relative to a 2 MiB-aligned base (see vmops.c); ``A`` is an
empty spot well inside the 64 MiB region.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim.conform.compare import compare_with_host
from vmsim.conform.corpus.errno_cases import CASES, DIRS, FILES, Case
from vmsim.conform.host import host_supported

pytestmark = pytest.mark.skipif(not host_supported(), reason="needs a Linux x86-64 host")


def test_case_ids_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_errno_matches_host(case: Case, tmp_path: Path) -> None:
    host, sim = compare_with_host(lambda s, files: case.build(s, files), tmp_path, FILES, dirs=DIRS)
    assert host.lines, "the host printed nothing"
    assert host.lines[-1] == case.expect, f"host kernel: {host.lines}"
    assert sim == host.lines
