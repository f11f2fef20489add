"""Run one conformance case on both sides and judge it.

A :class:`Case` is a script plus the files it needs.  :func:`observe`
expands the script so that every step is followed by an observation: a
``mark N`` label before step N and a ``snap`` after it (region and heap
VMAs with their smaps fields, the pagemap flags of their pages, and the
minor/major fault deltas); after ``fork`` the snap is the child's first view,
after ``endchild`` the parent's view once the child has gone.  The expanded
script runs on the host (``vmops``) and on vmsim (API mode), both outputs
are normalised (:mod:`vmsim.conform.compare`) and compared line by line.

Verdicts: ``pass`` (equal), ``known`` (the first difference is explained by
an entry of :mod:`vmsim.conform.known_differences`), ``fail`` (any other
difference), ``stale`` (a corpus case whose host result is no longer the
one it was written for), ``error`` (vmsim raised, or its invariants broke).
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vmsim.conform.binary import RUNNER_NAME, install_runner, run_binary_on_vmsim
from vmsim.conform.compare import (
    _MARK,
    differing_lines,
    first_difference,
    format_difference,
    normalise,
    step_op,
)
from vmsim.conform.files import FileSpec, reset_files
from vmsim.conform.host import HostToolError, host_soft_dirty, run_host
from vmsim.conform.known_differences import KNOWN_DIFFERENCES, KnownDifference, Mismatch, explain
from vmsim.conform.script import words
from vmsim.conform.vmsim_side import VmsimRunner


@dataclass(frozen=True)
class Case:
    """One script to compare: its lines, the files it uses, and what the host should print.

    ``expect``, when set, is the host's output line for the last step's
    operation (its last result line); a corpus case checks it so that a case
    which stopped exercising what it was written for fails loudly.
    """

    id: str
    lines: tuple[str, ...]
    files: FileSpec = field(default_factory=FileSpec)
    category: str = ""
    expect: str | None = None


@dataclass
class Result:
    """The verdict on one case and what the report needs to show it."""

    case: Case
    status: str  # pass | known | fail | stale | error
    rewrites: Counter[str] = field(default_factory=Counter)
    explained_by: str | None = None
    detail: str = ""
    step: int = -1
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "stale", "error")


def observe(lines: Sequence[str]) -> list[str]:
    """The script with a ``mark`` before and a ``snap`` after every step (comments dropped)."""
    out: list[str] = []
    for i, line in enumerate(lines):
        w = words(line)
        if not w or w[0].startswith("#"):
            continue
        if w[0] == "endchild":
            out += [line, f"mark {i}", "snap"]
        elif w[0] == "exit":
            out += [f"mark {i}", line]
        else:
            out += [f"mark {i}", line, "snap"]
    return out


def last_result(lines: Sequence[str], step: int) -> str | None:
    """The last result line the step *step* printed before its snap (None if absent)."""
    start = None
    for i, ln in enumerate(lines):
        m = _MARK.match(ln)
        if m and int(m[1]) == step:
            start = i
    if start is None:
        return None
    prefix = lines[start][: lines[start].index("mark ")]
    seg: list[str] = []
    for ln in lines[start + 1 :]:
        if ln == prefix + "snap" or _MARK.match(ln):
            break
        seg.append(ln)
    return seg[-1] if seg else None


def file_names(case: Case) -> list[str]:
    """Files whose device and inode become tokens: the case's own and every file its script
    opens (one it creates gets a fresh inode number on each side)."""
    names = list(case.files.files)
    for line in case.lines:
        w = words(line)
        if len(w) >= 2 and w[0] == "open" and w[1].lstrip("/") not in names:
            names.append(w[1].lstrip("/"))
    return names


def run_case(case: Case, files_dir: Path, soft_dirty: bool | None = None,
             check_invariants: bool = True,
             table: Sequence[KnownDifference] = KNOWN_DIFFERENCES, mode: str = "api") -> Result:
    """Run *case* on the host and on vmsim in *files_dir* (a scratch directory) and judge it.

    *soft_dirty* sets vmsim's ``mem_soft_dirty`` sysctl; None means "as the host kernel".
    *mode* "api" runs the script through vmsim's process API; "binary" runs the
    static runner on both kernels (:mod:`vmsim.conform.binary`).
    """
    t0 = time.perf_counter()
    if soft_dirty is None:
        soft_dirty = host_soft_dirty()
    d = files_dir.resolve()
    d.mkdir(parents=True, exist_ok=True)
    expanded = observe(case.lines)
    binary = mode == "binary"
    keep = (RUNNER_NAME,) if binary else ()
    reset_files(d, case.files.files, case.files.dirs, keep)
    host = run_host(expanded, cwd=d, exe=install_runner(d) if binary else None)
    reset_files(d, case.files.files, case.files.dirs, keep)
    try:
        if binary:
            sim_run, machine = run_binary_on_vmsim(expanded, d, soft_dirty)
            sim = sim_run.lines
            try:
                if check_invariants:
                    machine.check()  # type: ignore[attr-defined]
            finally:
                machine.close()  # type: ignore[attr-defined]
        else:
            runner = VmsimRunner(root=d, path_map=(str(d), "/"), catch_signals=True,
                                 soft_dirty=soft_dirty)
            sim = runner.run(expanded)
            if check_invariants and runner.machine is not None:
                runner.machine.check()
    except HostToolError as exc:
        return Result(case, "error", detail=f"vmsim could not run the runner: {exc}",
                      seconds=time.perf_counter() - t0)
    except Exception:
        return Result(case, "error", detail="vmsim raised:\n" + traceback.format_exc(limit=8),
                      seconds=time.perf_counter() - t0)
    norm = normalise(host.lines, sim, d, file_names(case), table)
    res = Result(case, "pass", rewrites=norm.rewrites)
    diff = first_difference(norm.host, norm.sim)
    if diff is not None:
        h_line, s_line = differing_lines(diff, norm.host, norm.sim)
        so_far = case.lines[: diff.step + 1] if diff.step >= 0 else ()
        mism = Mismatch(list(so_far), step_op(case.lines, diff.step), diff.host_seg,
                        diff.sim_seg, h_line, s_line, diff.index - diff.start)
        kd = explain(mism, table)
        res.step = diff.step
        res.detail = format_difference(case.lines, diff)
        if kd is not None:
            res.status, res.explained_by = "known", kd.id
        else:
            res.status = "fail"
    if res.status == "pass" and case.expect is not None:
        last = max((i for i, ln in enumerate(case.lines) if words(ln) and
                    not words(ln)[0].startswith("#")), default=-1)
        got = last_result(norm.host, last)
        if got != case.expect:
            res.status = "stale"
            res.detail = (f"the host printed {got!r} for the last step, the case expects "
                          f"{case.expect!r}: it no longer exercises what it was written for")
    res.seconds = time.perf_counter() - t0
    return res
