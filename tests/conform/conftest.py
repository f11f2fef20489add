"""Fixtures: skip host tests where the host runner cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim.conform.host import HostToolError, check_prerequisites


@pytest.fixture(scope="session")
def host_runner() -> Path:
    """The built host runner; the test is skipped off Linux x86-64 or without gcc."""
    try:
        return check_prerequisites()
    except HostToolError as exc:
        pytest.skip(str(exc))
