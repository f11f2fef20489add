"""Fixtures for the host reference runner tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim.conform.host import build_vmops, host_supported


@pytest.fixture(scope="session")
def vmops_exe() -> Path:
    """The compiled vmops runner (built once per session; skipped off Linux x86-64)."""
    if not host_supported():
        pytest.skip("the host reference runner needs Linux on x86-64")
    return build_vmops()
