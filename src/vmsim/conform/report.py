"""Running many cases and printing the conformance report.

:func:`run_cases` runs cases one after another in one scratch directory and
feeds each :class:`~vmsim.conform.runner.Result` to a :class:`Report`, which
prints failures as they come (a small diff with the script so far) and, at
the end, the known-difference table and the closing line::

    1272 passed, 0 failed, 52 known differences

``passed`` scripts printed the same as the host after normalisation,
``failed`` ones differ in a way nothing explains (or vmsim raised, or a
corpus case went stale), ``known differences`` counts the scripts whose first
difference an entry of :mod:`vmsim.conform.known_differences` explains.
Lines that a ``rewrite`` entry normalised are counted in the table too.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from vmsim.conform.files import on_tmpfs
from vmsim.conform.host import HostToolError, cache_dir, host_soft_dirty
from vmsim.conform.known_differences import KNOWN_DIFFERENCES, KnownDifference
from vmsim.conform.runner import Case, Result, run_case


@dataclass
class Report:
    """Counts and output of a conformance run."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    verbose: bool = False
    table: tuple[KnownDifference, ...] = KNOWN_DIFFERENCES
    results: list[Result] = field(default_factory=list)
    explained: Counter[str] = field(default_factory=Counter)
    rewritten_lines: Counter[str] = field(default_factory=Counter)
    rewritten_scripts: Counter[str] = field(default_factory=Counter)

    @property
    def passed(self) -> int:
        return sum(r.status == "pass" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.results)

    @property
    def known(self) -> int:
        return sum(r.status == "known" for r in self.results)

    def add(self, res: Result) -> None:
        """Count one result and print what the reader must see of it."""
        self.results.append(res)
        for kd, n in res.rewrites.items():
            self.rewritten_lines[kd] += n
            self.rewritten_scripts[kd] += 1
        if res.explained_by:
            self.explained[res.explained_by] += 1
        if res.failed:
            head = {"fail": "first difference at step", "stale": "stale corpus case at step",
                    "error": "vmsim error at step"}[res.status]
            print(f"FAIL {res.case.id}: {head} {res.step}", file=self.out)
            print(_indent(res.detail), file=self.out)
        elif self.verbose:
            tail = f" (known difference: {res.explained_by})" if res.explained_by else ""
            print(f"{res.status.upper()} {res.case.id} [{res.seconds:.2f} s]{tail}", file=self.out)
            if res.status == "known":
                print(_indent(res.detail), file=self.out)

    def summary_line(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.known} known differences"

    def finish(self) -> None:
        """The known-difference table, then the closing line."""
        print("known differences (vmsim/conform/known_differences.py):", file=self.out)
        for kd in self.table:
            if kd.rewrite is not None:
                count = (f"{self.rewritten_lines[kd.id]} lines rewritten in "
                         f"{self.rewritten_scripts[kd.id]} scripts")
            else:
                count = f"{self.explained[kd.id]} scripts explained"
            bug = " [vmsim bug, to fix]" if kd.vmsim_bug else ""
            print(f"  {kd.id}{bug}: {count}", file=self.out)
            if self.verbose:
                print(_indent(kd.reason, "      "), file=self.out)
        print(self.summary_line(), file=self.out)


def _indent(text: str, pad: str = "    ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def scratch_dir() -> Path:
    """A fresh directory for the files on a disk file system (not tmpfs: see files.py)."""
    env = os.environ.get("VMSIM_CONFORM_DIR")
    for parent in ([Path(env)] if env else []) + [Path(tempfile.gettempdir()), cache_dir(),
                                                   Path.home() / ".cache"]:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if not on_tmpfs(parent):
            return Path(tempfile.mkdtemp(prefix="vmsim-conform-", dir=parent))
    raise HostToolError("no directory on a disk file system for the test files (all are "
                        "tmpfs); set VMSIM_CONFORM_DIR")


def header(mode: str = "api") -> str:
    """Where the run happens: the host kernel and how vmsim was set to match it."""
    sd = host_soft_dirty()
    return (f"vmsim conform: host {platform.system()} {platform.release()} "
            f"{platform.machine()}, mode {mode}, soft-dirty "
            f"{'on' if sd else 'off'} on the host (vmsim's mem_soft_dirty set to match)")


def run_cases(cases: Iterable[Case], report: Report, workdir: Path | None = None,
              mode: str = "api") -> Report:
    """Run every case (host, then vmsim) and add each result to *report*."""
    d = workdir if workdir is not None else scratch_dir()
    sd = host_soft_dirty()
    for case in cases:
        try:
            res = run_case(case, d / "files", soft_dirty=sd, table=report.table, mode=mode)
        except HostToolError as exc:
            res = Result(case, "error", detail=f"the host runner failed: {exc}")
        report.add(res)
    return report
