"""A Unicorn AArch64 CPU whose own MMU (QEMU's VMSAv8-64 stage-1 walker, ``UC_TLB_CPU``)
walks translation tables kept in a host buffer -- the ARM64 sibling of `x86_mmu`.

RAM is mapped at physical 0 with `mem_map_ptr`. The EL1&0 regime is set up as Linux
does for user space: MAIR_EL1 attribute 0 = Normal write-back (MT_NORMAL), TCR_EL1 with
T0SZ = 64 - 48, TG0 = the granule, EPD1 (no TTBR1 walks: only the user half is tested),
IPS = 40 bits; TTBR0_EL1 = the table root; SCTLR_EL1.M. Probes run at EL0 (PSTATE.M =
EL0t) or EL1: ``ldr x0, [x1]``, ``str x2, [x1]`` and a jump (fetch), single-stepped.

What it took: Unicorn's ARM64 CPU comes up with SCR_EL3.RW = 0, which makes QEMU treat
EL1 as AArch32 for translation (``arm_el_is_aa64(env, 1)`` is false): every walk then goes
down the 32-bit LPAE path and fails with a level-1 translation fault, even with
correct tables. Setting SCR_EL3.RW (and NS) and HCR_EL2.RW makes the EL1&0 regime
AArch64. QEMU's model here has no FEAT_HAFDBS (QEMU 5): the access flag and the dirty
state are software's (an AF-clear leaf is an Access flag fault, a write to an AP[2]
read-only page a Permission fault whatever DBM says), so the matching vmsim model is
`vmsim.arch.arm64.without_hw_ad`. ID_AA64MMFR0 says the 16K granule is not implemented.

Unicorn reports an abort to ``UC_HOOK_INTR`` (3 = prefetch abort, 4 = data abort)
before delivering it, so ESR_EL1/FAR_EL1 are not written; the syndrome's fault status
and the faulting address are in QEMU's ``env->exception`` (``fsr``, ``vaddress``),
found in `Uc.context_save()` bytes by calibration (`fault_offsets`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, UC_PROT_ALL, Uc
from unicorn.arm64_const import (
    UC_ARM64_REG_CP_REG,
    UC_ARM64_REG_ELR_EL1,
    UC_ARM64_REG_MAIR_EL1,
    UC_ARM64_REG_PC,
    UC_ARM64_REG_PSTATE,
    UC_ARM64_REG_TTBR0_EL1,
    UC_ARM64_REG_X0,
    UC_ARM64_REG_X1,
    UC_ARM64_REG_X2,
)

from vmsim.cpu.mmu_probe import (
    CALIBRATION_RAM,
    MmuProbe,
    calibration_ram,
    context_slots,
    host_address,
)

#: ``ldr x0, [x1]`` then ``str x2, [x1]``.
PROBE_CODE = bytes.fromhex("200040f9" "220000f9")
LOAD_OFF = 0
STORE_OFF = 4

EXCP_PREFETCH_ABORT = 3
EXCP_DATA_ABORT = 4

# (CRn, CRm, op0, op1, op2) of the system registers set through UC_ARM64_REG_CP_REG.
SCTLR_EL1 = (1, 0, 3, 0, 0)
TCR_EL1 = (2, 0, 3, 0, 2)
SCR_EL3 = (1, 1, 3, 6, 0)
HCR_EL2 = (1, 1, 3, 4, 0)
SPSR_EL1 = (4, 0, 3, 0, 0)
SCR_NS, SCR_RW = 1 << 0, 1 << 10
HCR_RW = 1 << 31
SCTLR_M = 1 << 0
PSTATE_EL1H = 0x3C5  # EL1h, DAIF masked
PSTATE_EL0T = 0x0

#: A page Unicorn alone maps (outside RAM) for the ``eret`` that enters EL0, MMU off.
STUB_BASE = 0x80_0000_0000
ERET_NOP = bytes.fromhex("e0039fd6" "1f2003d5")

#: TCR_EL1.TG0 encodings (4K 0b00, 64K 0b01, 16K 0b10).
TG0 = {12: 0, 16: 1, 14: 2}


def fault_status_kind(fsc: int) -> str:
    """The kind of a long-descriptor fault status code (ARM ARM, ESR_ELx.DFSC/IFSC)."""
    kinds = {0: "address size", 1: "translation", 2: "access flag", 3: "permission"}
    return kinds.get(fsc >> 2, f"other {fsc:#x}") if fsc < 0x10 else f"other {fsc:#x}"


@dataclass(frozen=True)
class Abort:
    """What one probe came to: completed (exception None) or an abort with its FSC and FAR."""

    exception: int | None
    x0: int = 0
    pc: int = 0
    context: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.exception is None

    @property
    def fsc(self) -> int:
        """The fault status code (low 6 bits of the syndrome: kind << 2 | level)."""
        return struct.unpack_from("<I", self.context, fault_offsets()[0])[0] & 0x3F

    @property
    def far(self) -> int:
        return struct.unpack_from("<Q", self.context, fault_offsets()[1])[0]

    def __str__(self) -> str:
        if self.ok:
            return f"ok(x0={self.x0:#x})"
        return f"exception {self.exception} {fault_status_kind(self.fsc)} level {self.fsc & 3} far={self.far:#x}"


class Arm64Mmu(MmuProbe[tuple[int, bytes]]):
    """An AArch64 Unicorn CPU with stage-1 translation on, over host memory at `ram_address`."""

    def __init__(self, ram_address: int, ram_size: int, page_shift: int = 12,
                 keepalive: object = None) -> None:
        super().__init__(UC_ARCH_ARM64, UC_MODE_ARM, ram_address, ram_size, keepalive)
        uc = self.uc

        def cp(reg: tuple[int, ...]) -> int:
            return int(uc.reg_read(UC_ARM64_REG_CP_REG, reg))

        uc.reg_write(UC_ARM64_REG_CP_REG, (*SCR_EL3, cp(SCR_EL3) | SCR_NS | SCR_RW))
        uc.reg_write(UC_ARM64_REG_CP_REG, (*HCR_EL2, cp(HCR_EL2) | HCR_RW))
        uc.reg_write(UC_ARM64_REG_MAIR_EL1, 0xFF)  # attr 0: Normal, inner/outer write-back
        tcr = (64 - 48) | (1 << 8) | (1 << 10) | (3 << 12) | (TG0[page_shift] << 14) | (
            1 << 23) | (2 << 32)
        uc.reg_write(UC_ARM64_REG_CP_REG, (*TCR_EL1, tcr))
        # EL0 is entered the way a kernel enters it, by ``eret`` (with the MMU still off, from
        # a stub page outside RAM): writing PSTATE.M from outside leaves QEMU's cached
        # translation regime at EL1 (aborts then report EL0 but are checked as EL1).
        uc.mem_map(STUB_BASE, 0x1000, UC_PROT_ALL)
        uc.mem_write(STUB_BASE, ERET_NOP)
        uc.reg_write(UC_ARM64_REG_PSTATE, PSTATE_EL1H)
        kernel = uc.context_save()
        uc.reg_write(UC_ARM64_REG_CP_REG, (*SPSR_EL1, PSTATE_EL0T))
        uc.reg_write(UC_ARM64_REG_ELR_EL1, STUB_BASE + 4)
        uc.emu_start(STUB_BASE, STUB_BASE + 4)
        if uc.reg_read(UC_ARM64_REG_PSTATE) & 0xF != PSTATE_EL0T:
            raise AssertionError("eret did not reach EL0")
        uc.reg_write(UC_ARM64_REG_CP_REG, (*SCTLR_EL1, cp(SCTLR_EL1) | SCTLR_M))
        user = uc.context_save()
        uc.context_restore(kernel)
        uc.reg_write(UC_ARM64_REG_CP_REG, (*SCTLR_EL1, cp(SCTLR_EL1) | SCTLR_M))
        self._contexts = {True: user, False: uc.context_save()}
        self.tcr = tcr
        self._hook()

    def _capture(self, uc: Uc, intno: int) -> tuple[int, bytes]:
        return (intno, bytes(uc.context_save()))

    def _run(self, ttbr0: int, begin: int, user: bool, regs: dict[int, int],
             stop_before_first: bool = False) -> Abort:
        uc = self.uc
        uc.context_restore(self._contexts[user])
        uc.reg_write(UC_ARM64_REG_TTBR0_EL1, ttbr0)
        for reg, value in regs.items():
            uc.reg_write(reg, value)
        self._step(begin, stop_before_first)
        x0, pc = uc.reg_read(UC_ARM64_REG_X0), uc.reg_read(UC_ARM64_REG_PC)
        if self._fault is not None:
            return Abort(self._fault[0], x0, pc, self._fault[1])
        return Abort(None, x0, pc)

    def load(self, ttbr0: int, code_va: int, va: int, user: bool = True) -> Abort:
        return self._run(ttbr0, code_va + LOAD_OFF, user, {UC_ARM64_REG_X1: va, UC_ARM64_REG_X0: 0})

    def store(self, ttbr0: int, code_va: int, va: int, value: int, user: bool = True) -> Abort:
        return self._run(ttbr0, code_va + STORE_OFF, user, {UC_ARM64_REG_X1: va,
                                                            UC_ARM64_REG_X2: value})

    def fetch(self, ttbr0: int, va: int, user: bool = True) -> Abort:
        """Jump to `va`; stopped before the instruction there runs (the fetch alone)."""
        out = self._run(ttbr0, va, user, {UC_ARM64_REG_X0: 0}, stop_before_first=True)
        assert not out.ok or self._first == va, f"fetch at {va:#x} did not reach it: {out}"
        return out


_OFFSETS: list[tuple[int, int]] = []


def fault_offsets() -> tuple[int, int]:
    """(fsr offset, vaddress offset) in `Uc.context_save()` bytes, found by calibration.

    Hand-made 4K tables (L0 0x1000, L1 0x2000, L2 0x3000, L3 0x4000) map at VA
    0x400000: the probe code (EL0 read+exec), a user read-only page, a page with AF
    clear, a kernel-only page, a hole. Five aborts with known fault status codes and
    addresses must each pin down exactly one slot.
    """
    if _OFFSETS:
        return _OFFSETS[0]
    table, page = 3, 3 | 1 << 10 | 3 << 8  # valid table; valid page + AF + inner shareable
    user, rdonly, uxn, pxn = 1 << 6, 1 << 7, 1 << 54, 1 << 53
    ram = calibration_ram(table, [
        0x5000 | page | user | rdonly | pxn,
        0x6000 | page | user | rdonly | pxn | uxn,
        0x7000 | (page & ~(1 << 10)) | user | pxn | uxn,
        0x8000 | page | pxn | uxn,
    ], PROBE_CODE)
    cpu = Arm64Mmu(host_address(ram), CALIBRATION_RAM, keepalive=ram)
    code, ro, noaf, kern, hole = 0x400000, 0x401000, 0x402000, 0x403000, 0x404008
    cases = [
        (cpu.load(0x1000, code, hole), hole, 0b000111),  # translation, level 3
        (cpu.store(0x1000, code, ro + 8, 1), ro + 8, 0b001111),  # permission, level 3
        (cpu.load(0x1000, code, noaf + 16), noaf + 16, 0b001011),  # access flag, level 3
        (cpu.load(0x1000, code, kern + 24), kern + 24, 0b001111),  # permission
        (cpu.load(0x1000, code, 0x8000_0000_0000), 0x8000_0000_0000, 0b000100),  # L0 translation
        (cpu.fetch(0x1000, hole + 0x1000), hole + 0x1000, 0b000111),  # a fetch: X1 is not the FAR
        (cpu.fetch(0x1000, ro), ro, 0b001111),  # UXN
    ]
    for out, _, _ in cases:
        if out.ok:
            raise AssertionError("arm64 calibration: an access that must abort completed")
    contexts = [out.context for out, _, _ in cases]
    fsr = context_slots(contexts, [fsc for _, _, fsc in cases], "<I", 0x3F)
    far = context_slots(contexts, [va for _, va, _ in cases], "<Q")
    if len(far) != 1 or not fsr:  # fsr: the syndrome and QEMU's own fsr both qualify
        raise AssertionError(f"arm64 calibration: fsr slots {fsr[:8]}, vaddress slots {far[:8]}")
    _OFFSETS.append((fsr[0], far[0]))
    del cpu
    return _OFFSETS[0]
