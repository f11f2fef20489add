"""A Unicorn x86-64 CPU whose own MMU walks page tables kept in someone else's RAM.

`X86Mmu` maps a host buffer (vmsim's RAM) at guest-physical address 0 with
`mem_map_ptr`, so Unicorn reads and writes the very bytes vmsim owns: its
page-table walker (QEMU's x86 MMU, `UC_TLB_CPU`) sees vmsim's entries and sets
accessed/dirty bits in them, and data goes to and comes from vmsim's frames.

The CPU runs in long mode with paging: CR0.PE|PG|WP, CR4.PAE (SMEP/SMAP off),
EFER.LME|LMA|NXE, CR3 = the root table to test. Each probe executes one
instruction, either at privilege level 3 (the default) or 0:

* a user context is reached the way a kernel enters user mode: a flat GDT with
  Linux's selectors (kernel CS 0x10/DS 0x18, user DS 0x2b, CS 0x33) and an
  `iretq` run at CPL 0 from a stub page that Unicorn alone maps, far above the
  RAM, while paging is still off. Paging is switched on afterwards with
  register writes, so neither the GDT nor the stub need be in the tested
  tables;
* the CPU state of each privilege level is saved once and restored before
  every probe, then CR3 is written, which flushes Unicorn's TLB (it is also
  flushed explicitly), so every probe walks the tables afresh;
* RFLAGS.TF is set, which makes QEMU translate exactly one instruction per
  block: nothing beyond the probed instruction is fetched (a block running on
  past the end of a page would fetch, and fault on, the next page);
* before a fetch probe the translated-code cache is flushed too, since vmsim
  writes RAM behind QEMU's back. The probe code of loads and stores never
  changes, and its cached translation is still found by physical address
  through the flushed TLB, that is through a fresh walk.

Unicorn never delivers exceptions through an IDT: it calls `UC_HOOK_INTR`
with the vector. CR2 is a readable register, but the page-fault error code
exists only in the CPU state (QEMU's ``env->error_code``). A saved context is
a copy of that state, so `error_code_offset` finds the field once by
calibration: it raises ten faults whose error codes the architecture fixes
(not present / protection, read / write / fetch, user / supervisor, and a #GP
with error code 0), through tables built by hand here (not by vmsim), and
requires exactly one 4-byte slot of the saved context to hold all ten values.
Restoring the saved context before each probe also clears QEMU's record of the
exception in flight, which would otherwise turn the next #PF into a #DF.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from unicorn import UC_ARCH_X86, UC_MODE_64, UC_PROT_ALL, Uc
from unicorn.unicorn import UcContext
from unicorn.x86_const import (
    UC_X86_REG_CR0,
    UC_X86_REG_CR2,
    UC_X86_REG_CR3,
    UC_X86_REG_CR4,
    UC_X86_REG_CS,
    UC_X86_REG_GDTR,
    UC_X86_REG_RAX,
    UC_X86_REG_RDI,
    UC_X86_REG_RFLAGS,
    UC_X86_REG_RIP,
    UC_X86_REG_RSI,
    UC_X86_REG_RSP,
    UC_X86_REG_SS,
)

from vmsim.cpu.mmu_probe import (
    CALIBRATION_RAM,
    MmuProbe,
    calibration_ram,
    context_slots,
    host_address,
)

# Control registers and EFER (Intel SDM vol. 3, 2.5 and 2.2.1).
CR0_WP = 1 << 16
CR0_PG = 1 << 31
CR4_PAE = 1 << 5
CR4_LA57 = 1 << 12  # 57-bit linear addresses, 5-level paging
CR4_SMEP = 1 << 20
CR4_SMAP = 1 << 21
MSR_EFER = 0xC000_0080
EFER_NXE = 1 << 11

RFLAGS_TF = 1 << 8

# Exception vectors and page-fault error-code bits.
VEC_DB = 1
VEC_GP = 13
VEC_PF = 14
PF_PROT = 1
PF_WRITE = 2
PF_USER = 4
PF_RSVD = 8
PF_INSTR = 16

# Linux's GDT slots: 2 kernel CS, 3 kernel DS, 5 user DS, 6 user CS (RPL 3).
KERNEL_CS = 0x10
KERNEL_DS = 0x18
USER_DS = 0x2B
USER_CS = 0x33

#: Guest-physical page pair for the GDT, the iretq stub and its stack; Unicorn
#: maps it itself, well above any RAM this harness is given.
STUB_BASE = 0xE000_0000

#: The probe instructions: ``mov rax, [rdi]`` at LOAD_OFF, ``mov [rdi], rsi`` at STORE_OFF.
PROBE_CODE = bytes.fromhex("488b07" "488937")
LOAD_OFF = 0
STORE_OFF = 3

# x86 entry bits the calibration tables use.
_P, _RW, _US, _A, _D = 1, 2, 4, 0x20, 0x40
_NX = 1 << 63


def _segment(code: bool, dpl: int) -> bytes:
    """A flat descriptor: 64-bit code (execute/read, L=1) or data (read/write)."""
    access = 0x80 | (dpl << 5) | 0x10 | (0x0B if code else 0x03)  # P, DPL, S, type
    flags = 0xA if code else 0xC  # G|L for code, G|D/B for data
    return struct.pack("<HHBBBB", 0xFFFF, 0, 0, access, (flags << 4) | 0xF, 0)


GDT = (bytes(16) + _segment(True, 0) + _segment(False, 0) + bytes(8)
       + _segment(False, 3) + _segment(True, 3))


@dataclass(frozen=True)
class Outcome:
    """What one probe came to: completed (vector None) or an exception."""

    vector: int | None
    cr2: int = 0
    rax: int = 0
    rip: int = 0
    first_insn: int | None = None
    context: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.vector is None

    @property
    def error_code(self) -> int:
        """The exception's error code (meaningful for #PF and #GP)."""
        assert self.context, "no exception was raised"
        return struct.unpack_from("<i", self.context, error_code_offset())[0]

    def __str__(self) -> str:
        if self.ok:
            return f"ok(rax={self.rax:#x})"
        code = f" error={self.error_code:#x}" if self.context and _OFFSET else ""
        return f"vector {self.vector} cr2={self.cr2:#x}{code}"


def enable_paging(uc: Uc, cr4_set: int = 0) -> None:
    """CR4.PAE (+ `cr4_set`, SMEP/SMAP off), EFER.NXE, CR3 = 0, then CR0.PG|WP."""
    cr4 = uc.reg_read(UC_X86_REG_CR4)
    uc.reg_write(UC_X86_REG_CR4, (cr4 | CR4_PAE | cr4_set) & ~(CR4_SMEP | CR4_SMAP))
    uc.msr_write(MSR_EFER, uc.msr_read(MSR_EFER) | EFER_NXE)
    uc.reg_write(UC_X86_REG_CR3, 0)
    uc.reg_write(UC_X86_REG_CR0, uc.reg_read(UC_X86_REG_CR0) | CR0_PG | CR0_WP)


def load_stub_gdt(uc: Uc, stub_base: int, gdt: bytes) -> None:
    """Map the two-page stub at guest-physical `stub_base` (outside any RAM) and load
    `gdt` from its second page into GDTR."""
    uc.mem_map(stub_base, 0x2000, UC_PROT_ALL)
    base = stub_base + 0x1000
    uc.mem_write(base, gdt)
    uc.reg_write(UC_X86_REG_GDTR, (0, base, len(gdt) - 1, 0))


def iret_to_user(uc: Uc, stub_base: int, iret: bytes, word: str, sp_reg: int, user_cs: int,
                 user_ds: int, enable: Callable[[Uc], None],
                 enter_user: Callable[[Uc], None] | None = None) -> tuple[UcContext, UcContext]:
    """From CPL 0 with paging off, run the `iret` instruction at `stub_base` over a frame
    of `word`-sized (``struct`` code) slots on a stack in the stub (`sp_reg` points to
    it) to reach CPL 3 with `user_cs`/`user_ds`; then `enter_user` (if any), and
    `enable` paging in both the user and the kernel context. Returns (user, kernel)
    saved contexts."""
    uc.mem_write(stub_base, iret)
    user_entry = stub_base + 0x800
    kstack = stub_base + 0x1F00
    uc.mem_write(kstack, struct.pack(f"<5{word}", user_entry, user_cs, 0x202,
                                     stub_base + 0x1800, user_ds))
    uc.reg_write(sp_reg, kstack)
    kernel = uc.context_save()
    uc.emu_start(stub_base, user_entry)
    if (uc.reg_read(UC_X86_REG_CS), uc.reg_read(UC_X86_REG_SS)) != (user_cs, user_ds):
        raise AssertionError(f"{'iretq' if word == 'Q' else 'iret'} did not reach user mode")
    if enter_user is not None:
        enter_user(uc)
    enable(uc)
    user = uc.context_save()
    uc.context_restore(kernel)
    enable(uc)
    kernel = uc.context_save()
    return user, kernel


def boot_long_mode(uc: Uc, stub_base: int, cr4_set: int = 0) -> tuple[UcContext, UcContext]:
    """Bring a fresh 64-bit Unicorn to a user (CPL 3) and a kernel (CPL 0) context, both
    with paging on; returns (user, kernel) saved contexts.

    A two-page stub at guest-physical `stub_base` (mapped here, outside any RAM)
    holds the GDT and an ``iretq`` that enters user mode while paging is off.
    """
    load_stub_gdt(uc, stub_base, GDT)
    return iret_to_user(uc, stub_base, bytes.fromhex("48cf"), "Q", UC_X86_REG_RSP, USER_CS,
                        USER_DS, lambda u: enable_paging(u, cr4_set))


class X86Probe(MmuProbe[tuple[int, int, bytes]]):
    """The probes of an x86 CPU in a paging mode, long (`X86Mmu`) or 32-bit (`X86Mmu32`):
    a load and a store from the probe code, and a fetch. A subclass boots the CPU into
    `_contexts` (user True, kernel False) and names its probe code and registers."""

    PROBE: bytes
    LOAD_AT: int
    STORE_AT: int
    REG_FLAGS: int
    REG_ACC: int  # rax / eax: the loaded value
    REG_PTR: int  # rdi / edi: the address accessed
    REG_VAL: int  # rsi / esi: the value stored
    REG_IP: int
    _contexts: dict[bool, UcContext]

    def _capture(self, uc: Uc, intno: int) -> tuple[int, int, bytes] | None:
        if intno == VEC_DB:  # the single-step trap after a completed instruction
            return None
        return (intno, uc.reg_read(UC_X86_REG_CR2), bytes(uc.context_save()))

    def _run(self, cr3: int, begin: int, user: bool, regs: dict[int, int],
             stop_before_first: bool = False, flush_code: bool = False) -> Outcome:
        uc = self.uc
        uc.context_restore(self._contexts[user])
        uc.reg_write(self.REG_FLAGS, RFLAGS_TF | 2)
        for reg, value in regs.items():
            uc.reg_write(reg, value)
        uc.reg_write(UC_X86_REG_CR3, cr3)  # mov cr3 flushes the TLB (and _step does, to be sure)
        # With `flush_code` (a fetch) the translated code goes too: vmsim writes RAM behind
        # QEMU's back, so a cached translation of the instruction at `begin` could be stale.
        # (Cached or not, the fetch still walks the tables: QEMU looks code up by physical
        # address, through the flushed TLB.)
        self._step(begin, stop_before_first, flush_code)
        acc, ip = uc.reg_read(self.REG_ACC), uc.reg_read(self.REG_IP)
        if self._fault is not None:
            vector, cr2, context = self._fault
            return Outcome(vector, cr2, acc, ip, self._first, context)
        return Outcome(None, 0, acc, ip, self._first)

    def load(self, cr3: int, code_va: int, va: int, user: bool = True) -> Outcome:
        """``mov rax, [va]`` (32-bit: ``mov eax, [va]``) executed from the probe code at
        `code_va`."""
        out = self._run(cr3, code_va + self.LOAD_AT, user, {self.REG_PTR: va, self.REG_ACC: 0})
        assert not out.ok or out.rip == code_va + self.STORE_AT, f"load did not complete: {out}"
        return out

    def store(self, cr3: int, code_va: int, va: int, value: int, user: bool = True) -> Outcome:
        """``mov [va], rsi`` with rsi = `value` (32-bit: esi), executed from the probe code
        at `code_va`."""
        out = self._run(cr3, code_va + self.STORE_AT, user, {self.REG_PTR: va,
                                                             self.REG_VAL: value})
        assert not out.ok or out.rip == code_va + len(self.PROBE), f"store did not complete: {out}"
        return out

    def fetch(self, cr3: int, va: int, user: bool = True, execute: bool = False) -> Outcome:
        """Jump to `va`: the instruction there is fetched and decoded.

        With `execute` False it is stopped before it runs (the fetch alone is
        probed); with `execute` True it runs (rax/eax is reset to 0 first).
        """
        out = self._run(cr3, va, user, {self.REG_ACC: 0}, stop_before_first=not execute,
                        flush_code=True)
        assert not out.ok or out.first_insn == va, f"fetch at {va:#x} did not reach it: {out}"
        return out


class X86Mmu(X86Probe):
    """A long-mode Unicorn CPU over `ram_size` bytes of host memory at `ram_address`.

    `keepalive` is any object that owns the memory (it must outlive the CPU).
    """

    PROBE = PROBE_CODE
    LOAD_AT = LOAD_OFF
    STORE_AT = STORE_OFF
    REG_FLAGS = UC_X86_REG_RFLAGS
    REG_ACC = UC_X86_REG_RAX
    REG_PTR = UC_X86_REG_RDI
    REG_VAL = UC_X86_REG_RSI
    REG_IP = UC_X86_REG_RIP

    def __init__(self, ram_address: int, ram_size: int, keepalive: object = None,
                 cpu_model: int | None = None, cr4_set: int = 0) -> None:
        """`cpu_model` picks Unicorn's CPU model (UC_CPU_X86_*; the default, qemu64, lacks
        LA57); `cr4_set` adds CR4 bits, e.g. CR4_LA57 for 5-level paging."""
        super().__init__(UC_ARCH_X86, UC_MODE_64, ram_address, ram_size, keepalive, cpu_model)
        user, kernel = boot_long_mode(self.uc, STUB_BASE, cr4_set)
        self._contexts = {True: user, False: kernel}
        self._hook()

    def cpl(self, user: bool = True) -> int:
        """The privilege level a probe with `user` runs at (CS.RPL of the saved context)."""
        self.uc.context_restore(self._contexts[user])
        return self.uc.reg_read(UC_X86_REG_CS) & 3

    def control(self, user: bool = True) -> dict[str, int]:
        """CR0, CR4 and EFER of the probe context (for the record)."""
        self.uc.context_restore(self._contexts[user])
        return {"cr0": self.uc.reg_read(UC_X86_REG_CR0), "cr4": self.uc.reg_read(UC_X86_REG_CR4),
                "efer": self.uc.msr_read(MSR_EFER)}


_OFFSET: list[int] = []
_OLD_EXCEPTION: list[int] = []


def old_exception_offset() -> int:
    """The offset of QEMU's ``env->old_exception`` in `Uc.context_save()` bytes.

    QEMU remembers the exception being delivered so that a second fault
    during delivery becomes a double fault (#DF). Unicorn hands exceptions to
    `UC_HOOK_INTR` instead of delivering them, so the record is never cleared
    and the *next* #PF would arrive as a #DF with error code 0. A CPU engine
    that handles a fault and lets the guest retry must write -1 there. Found
    by the same calibration: the one slot that is -1 before any fault and
    holds each calibration fault's vector afterwards.
    """
    error_code_offset()
    return _OLD_EXCEPTION[0]


def error_code_offset() -> int:
    """The offset of the error code in `Uc.context_save()` bytes, found by calibration.

    Hand-made tables (PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000) map at
    VA 0x400000: the probe code (user, read-only, executable), then a user
    read-only no-execute page, a supervisor read/write page and a hole.
    """
    if _OFFSET:
        return _OFFSET[0]
    table = _P | _RW | _US | _A | _D
    ram = calibration_ram(table, [0x5000 | _P | _US | _A, 0x6000 | _P | _US | _A | _NX,
                                  0x7000 | _P | _RW | _A | _D], PROBE_CODE)
    cpu = X86Mmu(host_address(ram), CALIBRATION_RAM, keepalive=ram)
    fresh = bytes(cpu._contexts[True])
    code, ro_nx, kpage, hole = 0x400000, 0x401000, 0x402000, 0x403000
    cases = [
        (cpu.load(0x1000, code, hole), VEC_PF, PF_USER),
        (cpu.store(0x1000, code, hole, 1), VEC_PF, PF_USER | PF_WRITE),
        (cpu.store(0x1000, code, ro_nx, 1), VEC_PF, PF_USER | PF_WRITE | PF_PROT),
        (cpu.load(0x1000, code, kpage), VEC_PF, PF_USER | PF_PROT),
        (cpu.fetch(0x1000, ro_nx), VEC_PF, PF_USER | PF_INSTR | PF_PROT),
        (cpu.fetch(0x1000, hole), VEC_PF, PF_USER | PF_INSTR),
        (cpu.store(0x1000, code, hole, 1, user=False), VEC_PF, PF_WRITE),
        (cpu.store(0x1000, code, ro_nx, 1, user=False), VEC_PF, PF_WRITE | PF_PROT),
        (cpu.load(0x1000, code, hole, user=False), VEC_PF, 0),
        (cpu.load(0x1000, code, 1 << 60), VEC_GP, 0),
    ]
    for out, vector, _ in cases:
        if out.vector != vector:
            raise AssertionError(f"calibration fault {out} is not vector {vector}")
    contexts = [out.context for out, _, _ in cases]
    offsets = context_slots(contexts, [error for _, _, error in cases])
    if len(offsets) != 1:
        raise AssertionError(f"error-code calibration: {len(offsets)} candidate slots {offsets[:8]}")
    old = [off for off in context_slots(contexts, [vector for _, vector, _ in cases])
           if struct.unpack_from("<i", fresh, off)[0] == -1]
    if len(old) != 1:
        raise AssertionError(f"old_exception calibration: {len(old)} candidate slots {old[:8]}")
    _OFFSET.append(offsets[0])
    _OLD_EXCEPTION.append(old[0])
    return offsets[0]
