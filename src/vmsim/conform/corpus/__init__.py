"""The conformance corpus: every hand-written script, as :class:`vmsim.conform.runner.Case`.

Four sources, each a module of plain data that other tests use too:

* ``errno/...`` - :mod:`.errno_cases`, one row per error case of the memory
  system calls (each checks the host still gives the errno it was written for);
* ``procfs/...`` - :mod:`.golden`, the /proc maps and smaps scenarios;
* ``merge/...`` - :mod:`.merges`, the VMA merge and split pictures that the
  host can replay (white-box scenarios and those that fill the map count
  up to vm.max_map_count are left to tests/mm/test_vma_merge.py);
* ``<category>/...`` - :mod:`.handwritten`, brk, fork, files, mremap,
  stacks, mlock, execute, madvise and MAP_FIXED scripts.

Scripts name files relatively; both sides run in the case's files directory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from vmsim.conform.corpus import errno_cases, golden, handwritten, merges
from vmsim.conform.files import FileSet, FileSpec
from vmsim.conform.pictures import file_contents, host_plan
from vmsim.conform.runner import Case
from vmsim.conform.script import Script

_REL = FileSet(Path("."), relative=True)


def _lines(build: Callable[[Script, FileSet], object]) -> tuple[str, ...]:
    s = Script()
    build(s, _REL)
    return tuple(s.lines)


@functools.cache
def corpus() -> tuple[Case, ...]:
    """All corpus cases, in a fixed order."""
    cases: list[Case] = []
    errno_files = FileSpec(errno_cases.FILES, errno_cases.DIRS)
    for c in errno_cases.CASES:
        cases.append(Case(f"errno/{c.id}", _lines(c.build), errno_files, "errno", c.expect))
    golden_files = FileSpec(golden.FILES)
    for sc in golden.SCENARIOS:
        cases.append(Case(f"procfs/{sc.id}", _lines(sc.build), golden_files, "procfs"))
    picture_files = FileSpec(file_contents())
    for pic in merges.SCENARIOS:
        if not pic.host or any(op.name == "fill" for op in pic.all_ops()):
            continue
        slug = pic.name.replace(" ", "-").replace(":", "").replace("/", "-").lower()
        lines = tuple(host_plan(pic, Path("")).lines)
        cases.append(Case(f"merge/{pic.category}/{slug}", lines, picture_files, "merge"))
    for h in handwritten.HANDWRITTEN:
        cases.append(Case(f"{h.category}/{h.id}", _lines(h.build), handwritten.FILES, h.category))
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise ValueError("corpus case ids must be unique")
    return tuple(cases)
