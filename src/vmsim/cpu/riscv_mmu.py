"""A Unicorn RISC-V 64 CPU whose own MMU (QEMU's Sv39/48/57 walker, ``UC_TLB_CPU``) walks
page tables in a host buffer -- the RISC-V sibling of `x86_mmu` and `arm64_mmu`.

RAM is mapped at physical 0 with `mem_map_ptr`; satp = MODE << 60 | root PPN; the hart
runs in U-mode (``UC_RISCV_REG_PRIV`` = 0). Probes: ``ld a1, 0(a1)``, ``sd a2, 0(a1)``
and a jump (fetch), single-stepped. QEMU's walker updates A and D itself (as vmsim's
RISC-V modes assume). Unicorn reports a page fault to ``UC_HOOK_INTR`` with the cause
(12 instruction, 13 load, 15 store/AMO page fault); in Unicorn 2.1 reading satp,
stval or the cause CSRs back through `reg_read` returns garbage, so the cause number
is what a probe reports (2, illegal instruction, on a fetch means the fetch itself
translated: QEMU decodes before the code hook runs, so fetched words should decode).
"""

from __future__ import annotations

from dataclasses import dataclass

from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV64, Uc
from unicorn.riscv_const import (
    UC_RISCV_REG_A1,
    UC_RISCV_REG_A2,
    UC_RISCV_REG_PC,
    UC_RISCV_REG_PRIV,
    UC_RISCV_REG_SATP,
)

from vmsim.cpu.mmu_probe import MmuProbe

#: ``ld a1, 0(a1)`` then ``sd a2, 0(a1)``.
PROBE_CODE = bytes.fromhex("83b50500" "23b0c500")
LOAD_OFF = 0
STORE_OFF = 4
CAUSE_FETCH, CAUSE_LOAD, CAUSE_STORE = 12, 13, 15
#: satp.MODE for each vmsim mode (the privileged spec, "satp").
SATP_MODE = {"riscv-sv39": 8, "riscv-sv48": 9, "riscv-sv57": 10}


@dataclass(frozen=True)
class Trap:
    """A probe's outcome: completed (cause None, a1 = the loaded value) or a page fault."""

    cause: int | None
    a1: int = 0

    @property
    def ok(self) -> bool:
        return self.cause is None


class RiscvMmu(MmuProbe[int]):
    """A U-mode RV64 hart with paging `mode` ("riscv-sv39/48/57") over host RAM."""

    def __init__(self, mode: str, ram_address: int, ram_size: int,
                 keepalive: object = None) -> None:
        self.satp_mode = SATP_MODE[mode]
        super().__init__(UC_ARCH_RISCV, UC_MODE_RISCV64, ram_address, ram_size, keepalive)
        self._hook()

    def _capture(self, uc: Uc, intno: int) -> int:
        return intno  # the trap cause

    def _run(self, root: int, begin: int, regs: dict[int, int], stop_first: bool = False) -> Trap:
        uc = self.uc
        uc.reg_write(UC_RISCV_REG_PRIV, 3)
        uc.reg_write(UC_RISCV_REG_SATP, self.satp_mode << 60 | root >> 12)
        uc.reg_write(UC_RISCV_REG_PRIV, 0)
        for reg, value in regs.items():
            uc.reg_write(reg, value)
        self._step(begin, stop_first)
        if self._fault is not None:
            return Trap(self._fault)
        return Trap(None, uc.reg_read(UC_RISCV_REG_A1))

    def load(self, root: int, code_va: int, va: int) -> Trap:
        return self._run(root, code_va + LOAD_OFF, {UC_RISCV_REG_A1: va})

    def store(self, root: int, code_va: int, va: int, value: int) -> Trap:
        return self._run(root, code_va + STORE_OFF, {UC_RISCV_REG_A1: va, UC_RISCV_REG_A2: value})

    def fetch(self, root: int, va: int) -> Trap:
        out = self._run(root, va, {}, stop_first=True)
        assert not out.ok or self._first == va, f"fetch at {va:#x} did not reach it"
        return out

    def pc(self) -> int:
        return int(self.uc.reg_read(UC_RISCV_REG_PC))
