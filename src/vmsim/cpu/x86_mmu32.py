"""A Unicorn x86 CPU in 32-bit protected mode whose own MMU walks i386 / PAE tables.

The 32-bit sibling of `vmsim.cpu.x86_mmu` (read that first): the same host
buffer mapped at guest-physical 0 with `mem_map_ptr`, the same single-stepped
probes, the same saved contexts and the same error-code slot (the CPU state
structure is QEMU's ``CPUX86State`` in both modes, so the offset calibrated
there serves here too). What differs is the mode the CPU is put in:

* ``UC_MODE_32``, a flat GDT with Linux's i386 selectors (arch/x86/include/asm/
  segment.h: __KERNEL_CS 0x60, __KERNEL_DS 0x68, __USER_DS 0x7b, __USER_CS 0x73),
  user mode reached by an ``iret`` from CPL 0 while paging is off;
* paging: CR0.PG|WP and, for "i386", CR4.PSE (4 MiB pages in the PDE; 2-level
  tables of 32-bit entries); for "i386-pae", CR4.PAE and EFER.NXE (a 4-entry PDPT
  at CR3, 64-bit entries, NX). CR3 is written before every probe.

The probes: ``mov eax, [edi]`` (load), ``mov [edi], esi`` (store) and a jump to
the address (fetch), at CPL 3 or 0.
"""

from __future__ import annotations

import struct

from unicorn import (
    UC_ARCH_X86,
    UC_CTL_IO_WRITE,
    UC_CTL_TLB_FLUSH,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_MODE_32,
    UC_PROT_ALL,
    UC_TLB_CPU,
    Uc,
)
from unicorn.unicorn import UcContext
from unicorn.x86_const import (
    UC_X86_REG_CR0,
    UC_X86_REG_CR2,
    UC_X86_REG_CR3,
    UC_X86_REG_CR4,
    UC_X86_REG_CS,
    UC_X86_REG_DS,
    UC_X86_REG_EAX,
    UC_X86_REG_EDI,
    UC_X86_REG_EFLAGS,
    UC_X86_REG_EIP,
    UC_X86_REG_ES,
    UC_X86_REG_ESI,
    UC_X86_REG_ESP,
    UC_X86_REG_GDTR,
    UC_X86_REG_SS,
)

from vmsim.cpu.x86_mmu import (
    CR0_PG,
    CR0_WP,
    CR4_PAE,
    CR4_SMAP,
    CR4_SMEP,
    EFER_NXE,
    MSR_EFER,
    RFLAGS_TF,
    VEC_DB,
    Outcome,
)

CR4_PSE = 1 << 4
CR0_PE = 1 << 0

# Linux i386 GDT slots (arch/x86/include/asm/segment.h, CONFIG_X86_32).
KERNEL_CS = 0x60
KERNEL_DS = 0x68
USER_CS = 0x73
USER_DS = 0x7B

STUB_BASE = 0xE000_0000

#: ``mov eax, [edi]`` at LOAD_OFF, ``mov [edi], esi`` at STORE_OFF.
PROBE_CODE32 = bytes.fromhex("8b07" "8937")
LOAD_OFF = 0
STORE_OFF = 2

#: The two 32-bit paging modes and the CR4 bits that select them.
CR4_FOR_MODE = {"i386": CR4_PSE, "i386-pae": CR4_PAE}


def _segment32(code: bool, dpl: int) -> bytes:
    """A flat 4 GiB 32-bit descriptor: code (execute/read) or data (read/write)."""
    access = 0x80 | (dpl << 5) | 0x10 | (0x0A if code else 0x02)
    return struct.pack("<HHBBBB", 0xFFFF, 0, 0, access, 0xCF, 0)  # G, D/B, limit 19:16


def gdt32() -> bytes:
    slots = [bytes(8)] * 16
    slots[KERNEL_CS >> 3] = _segment32(True, 0)
    slots[KERNEL_DS >> 3] = _segment32(False, 0)
    slots[USER_CS >> 3] = _segment32(True, 3)
    slots[USER_DS >> 3] = _segment32(False, 3)
    return b"".join(slots)


def enable_paging32(uc: Uc, mode: str) -> None:
    """CR4 for `mode` (PSE or PAE, SMEP/SMAP off), EFER.NXE for PAE, CR3 = 0, CR0.PG|WP."""
    cr4 = (uc.reg_read(UC_X86_REG_CR4) | CR4_FOR_MODE[mode]) & ~(CR4_SMEP | CR4_SMAP)
    if mode == "i386":
        cr4 &= ~CR4_PAE
    uc.reg_write(UC_X86_REG_CR4, cr4)
    if mode == "i386-pae":
        uc.msr_write(MSR_EFER, uc.msr_read(MSR_EFER) | EFER_NXE)
    uc.reg_write(UC_X86_REG_CR3, 0)
    uc.reg_write(UC_X86_REG_CR0, uc.reg_read(UC_X86_REG_CR0) | CR0_PE | CR0_PG | CR0_WP)


def boot_protected_mode(uc: Uc, stub_base: int, mode: str) -> tuple[UcContext, UcContext]:
    """Bring a fresh 32-bit Unicorn to a user (CPL 3) and a kernel (CPL 0) context with
    paging in `mode`; returns (user, kernel) saved contexts."""
    uc.mem_map(stub_base, 0x2000, UC_PROT_ALL)
    gdt = stub_base + 0x1000
    table = gdt32()
    uc.mem_write(gdt, table)
    uc.reg_write(UC_X86_REG_GDTR, (0, gdt, len(table) - 1, 0))
    uc.reg_write(UC_X86_REG_CR0, uc.reg_read(UC_X86_REG_CR0) | CR0_PE)
    uc.reg_write(UC_X86_REG_CS, KERNEL_CS)
    for reg in (UC_X86_REG_DS, UC_X86_REG_ES, UC_X86_REG_SS):
        uc.reg_write(reg, KERNEL_DS)
    uc.mem_write(stub_base, bytes.fromhex("cf"))  # iret
    user_entry = stub_base + 0x800
    kstack = stub_base + 0x1F00
    uc.mem_write(kstack, struct.pack("<5I", user_entry, USER_CS, 0x202, stub_base + 0x1800,
                                     USER_DS))
    uc.reg_write(UC_X86_REG_ESP, kstack)
    kernel = uc.context_save()
    uc.emu_start(stub_base, user_entry)
    if (uc.reg_read(UC_X86_REG_CS), uc.reg_read(UC_X86_REG_SS)) != (USER_CS, USER_DS):
        raise AssertionError("iret did not reach user mode")
    uc.reg_write(UC_X86_REG_DS, USER_DS)
    uc.reg_write(UC_X86_REG_ES, USER_DS)
    enable_paging32(uc, mode)
    user = uc.context_save()
    uc.context_restore(kernel)
    enable_paging32(uc, mode)
    kernel = uc.context_save()
    return user, kernel


class X86Mmu32:
    """A 32-bit protected-mode Unicorn CPU with paging `mode` ("i386" or "i386-pae") over
    `ram_size` bytes of host memory at `ram_address` (which `keepalive` owns)."""

    def __init__(self, mode: str, ram_address: int, ram_size: int,
                 keepalive: object = None) -> None:
        if mode not in CR4_FOR_MODE:
            raise ValueError(f"X86Mmu32: no 32-bit paging mode {mode!r}")
        self.mode = mode
        self._keepalive = keepalive
        uc = Uc(UC_ARCH_X86, UC_MODE_32)
        uc.ctl_set_tlb_mode(UC_TLB_CPU)
        uc.mem_map_ptr(0, ram_size, UC_PROT_ALL, ram_address)
        user, kernel = boot_protected_mode(uc, STUB_BASE, mode)
        self._contexts = {True: user, False: kernel}
        self.uc = uc
        self._fault: tuple[int, int, bytes] | None = None
        self._first: int | None = None
        self._stop_before_first = False
        uc.hook_add(UC_HOOK_INTR, self._on_intr)
        uc.hook_add(UC_HOOK_CODE, self._on_code)

    def _on_intr(self, uc: Uc, intno: int, _data: object) -> None:
        if intno != VEC_DB and self._fault is None:
            self._fault = (intno, uc.reg_read(UC_X86_REG_CR2), bytes(uc.context_save()))
        uc.emu_stop()

    def _on_code(self, uc: Uc, address: int, _size: int, _data: object) -> None:
        if self._first is None:
            self._first = address
        if self._stop_before_first:
            uc.emu_stop()

    def control(self, user: bool = True) -> dict[str, int]:
        """CR0, CR4, EFER and CS of the probe context (for the record)."""
        uc = self.uc
        uc.context_restore(self._contexts[user])
        return {"cr0": uc.reg_read(UC_X86_REG_CR0), "cr4": uc.reg_read(UC_X86_REG_CR4),
                "efer": uc.msr_read(MSR_EFER), "cs": uc.reg_read(UC_X86_REG_CS)}

    def _run(self, cr3: int, begin: int, user: bool, regs: dict[int, int],
             stop_before_first: bool = False, flush_code: bool = False) -> Outcome:
        uc = self.uc
        uc.context_restore(self._contexts[user])
        uc.reg_write(UC_X86_REG_EFLAGS, RFLAGS_TF | 2)
        for reg, value in regs.items():
            uc.reg_write(reg, value)
        uc.reg_write(UC_X86_REG_CR3, cr3)
        uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
        if flush_code:
            uc.ctl_flush_tb()
        self._fault = None
        self._first = None
        self._stop_before_first = stop_before_first
        uc.emu_start(begin, 0, count=1)
        eax, eip = uc.reg_read(UC_X86_REG_EAX), uc.reg_read(UC_X86_REG_EIP)
        if self._fault is not None:
            vector, cr2, context = self._fault
            return Outcome(vector, cr2, eax, eip, self._first, context)
        return Outcome(None, 0, eax, eip, self._first)

    def load(self, cr3: int, code_va: int, va: int, user: bool = True) -> Outcome:
        """``mov eax, [va]`` executed from the probe code at `code_va`."""
        out = self._run(cr3, code_va + LOAD_OFF, user, {UC_X86_REG_EDI: va, UC_X86_REG_EAX: 0})
        assert not out.ok or out.rip == code_va + STORE_OFF, f"load did not complete: {out}"
        return out

    def store(self, cr3: int, code_va: int, va: int, value: int, user: bool = True) -> Outcome:
        """``mov [va], esi`` with esi = `value`."""
        out = self._run(cr3, code_va + STORE_OFF, user, {UC_X86_REG_EDI: va,
                                                         UC_X86_REG_ESI: value})
        assert not out.ok or out.rip == code_va + len(PROBE_CODE32), f"store did not complete: {out}"
        return out

    def fetch(self, cr3: int, va: int, user: bool = True, execute: bool = False) -> Outcome:
        """Jump to `va`; with `execute` the instruction there runs (eax reset to 0 first)."""
        out = self._run(cr3, va, user, {UC_X86_REG_EAX: 0}, stop_before_first=not execute,
                        flush_code=True)
        assert not out.ok or out.first_insn == va, f"fetch at {va:#x} did not reach it: {out}"
        return out
