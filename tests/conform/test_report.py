"""The report: failures with their diff, the known-difference table, the closing line."""

from __future__ import annotations

import io
from collections import Counter

from vmsim.conform.known_differences import KNOWN_DIFFERENCES
from vmsim.conform.report import Report
from vmsim.conform.runner import Case, Result


def test_report_counts_and_format() -> None:
    out = io.StringIO()
    rep = Report(out=out)
    case = Case("x/1", ("munmap 0 1",))
    rep.add(Result(case, "pass", rewrites=Counter({"shmem-inode": 3})))
    rep.add(Result(case, "known", explained_by="lazyfree-batching", detail="d"))
    rep.add(Result(case, "fail", detail="script so far:\n>    0  munmap 0 1", step=0))
    rep.add(Result(case, "error", detail="vmsim raised"))
    rep.finish()
    text = out.getvalue()
    assert "FAIL x/1: first difference at step 0\n    script so far:" in text
    assert "FAIL x/1: vmsim error at step -1" in text
    assert "  shmem-inode: 3 lines rewritten in 1 scripts" in text
    assert "  lazyfree-batching: 1 scripts explained" in text
    for kd in KNOWN_DIFFERENCES:
        assert f"  {kd.id}" in text
    assert text.splitlines()[-1] == "1 passed, 2 failed, 1 known differences"
