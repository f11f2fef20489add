"""Hardware paging formats: data declarations and one generic walker."""

from vmsim.arch.arm64 import ARM64_4K, ARM64_16K, ARM64_64K
from vmsim.arch.paging import Access, PagingMode, Walk, translate, walk
from vmsim.arch.powerpc import PPC32, PPC64_4K, PPC64_64K, PPC64_64K_2012
from vmsim.arch.riscv import RISCV_SV39, RISCV_SV48, RISCV_SV57
from vmsim.arch.x86 import I386, I386_PAE, X86_64, X86_64_LA57

#: Every paging mode by its `Machine(arch=...)` name.
MODES: dict[str, PagingMode] = {m.name: m for m in (
    I386, I386_PAE, X86_64, X86_64_LA57,
    PPC32, PPC64_4K, PPC64_64K, PPC64_64K_2012,
    ARM64_4K, ARM64_16K, ARM64_64K,
    RISCV_SV39, RISCV_SV48, RISCV_SV57,
)}


def get_mode(name: str) -> PagingMode:
    """The paging mode called `name`; ValueError names the known ones."""
    try:
        return MODES[name]
    except KeyError:
        raise ValueError(f"unknown arch {name!r}; known: {', '.join(sorted(MODES))}") from None


__all__ = ["ARM64_4K", "ARM64_16K", "ARM64_64K", "I386", "I386_PAE", "MODES", "PPC32",
           "PPC64_4K", "PPC64_64K", "PPC64_64K_2012", "RISCV_SV39", "RISCV_SV48",
           "RISCV_SV57", "X86_64", "X86_64_LA57", "Access", "PagingMode", "Walk", "get_mode",
           "translate", "walk"]
