"""Shared fixtures: a small machine with a sandbox root."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim import Machine


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(memory="32M", seed=1, root=tmp_path)
