"""The corpus: its size and categories, and every case passes against the host kernel."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from vmsim.conform.corpus import corpus
from vmsim.conform.host import host_soft_dirty
from vmsim.conform.runner import Case, run_case

CASES = corpus()
CATEGORIES = {"errno", "procfs", "merge", "brk", "fork", "file", "mremap", "stack", "mlock",
              "exec", "madvise", "fixed"}


def test_size_and_categories() -> None:
    assert len(CASES) >= 150
    counts = Counter(c.category for c in CASES)
    assert set(counts) == CATEGORIES
    assert len({c.id for c in CASES}) == len(CASES)


def chunks(n: int) -> list[tuple[Case, ...]]:
    return [CASES[i : i + n] for i in range(0, len(CASES), n)]


@pytest.mark.parametrize("cases", chunks(25), ids=lambda cs: cs[0].id)
def test_corpus_passes(cases: tuple[Case, ...], host_runner: Path, tmp_path: Path) -> None:
    bad = []
    for case in cases:
        res = run_case(case, tmp_path / "files", soft_dirty=host_soft_dirty())
        if res.failed:
            bad.append(f"{case.id}: {res.status}\n{res.detail}")
    assert not bad, "\n\n".join(bad)
