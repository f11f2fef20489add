"""Hardware paging formats: data declarations and one generic walker."""

from vmsim.arch.paging import Access, PagingMode, Walk, translate, walk
from vmsim.arch.x86 import X86_64

MODES: dict[str, PagingMode] = {X86_64.name: X86_64}


def get_mode(name: str) -> PagingMode:
    """The paging mode called `name`; ValueError names the known ones."""
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"unknown arch {name!r}; known: {', '.join(sorted(MODES))}") from None


__all__ = ["MODES", "X86_64", "Access", "PagingMode", "Walk", "get_mode", "translate", "walk"]
