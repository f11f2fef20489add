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

from unicorn import UC_ARCH_X86, UC_MODE_32, Uc
from unicorn.unicorn import UcContext
from unicorn.x86_const import (
    UC_X86_REG_CR0,
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
    X86Probe,
    iret_to_user,
    load_stub_gdt,
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
    load_stub_gdt(uc, stub_base, gdt32())
    uc.reg_write(UC_X86_REG_CR0, uc.reg_read(UC_X86_REG_CR0) | CR0_PE)
    uc.reg_write(UC_X86_REG_CS, KERNEL_CS)
    for reg in (UC_X86_REG_DS, UC_X86_REG_ES, UC_X86_REG_SS):
        uc.reg_write(reg, KERNEL_DS)

    def user_data_segments(u: Uc) -> None:
        u.reg_write(UC_X86_REG_DS, USER_DS)
        u.reg_write(UC_X86_REG_ES, USER_DS)

    return iret_to_user(uc, stub_base, bytes.fromhex("cf"), "I", UC_X86_REG_ESP, USER_CS,
                        USER_DS, lambda u: enable_paging32(u, mode), user_data_segments)


class X86Mmu32(X86Probe):
    """A 32-bit protected-mode Unicorn CPU with paging `mode` ("i386" or "i386-pae") over
    `ram_size` bytes of host memory at `ram_address` (which `keepalive` owns)."""

    PROBE = PROBE_CODE32
    LOAD_AT = LOAD_OFF
    STORE_AT = STORE_OFF
    REG_FLAGS = UC_X86_REG_EFLAGS
    REG_ACC = UC_X86_REG_EAX
    REG_PTR = UC_X86_REG_EDI
    REG_VAL = UC_X86_REG_ESI
    REG_IP = UC_X86_REG_EIP

    def __init__(self, mode: str, ram_address: int, ram_size: int,
                 keepalive: object = None) -> None:
        if mode not in CR4_FOR_MODE:
            raise ValueError(f"X86Mmu32: no 32-bit paging mode {mode!r}")
        self.mode = mode
        super().__init__(UC_ARCH_X86, UC_MODE_32, ram_address, ram_size, keepalive)
        user, kernel = boot_protected_mode(self.uc, STUB_BASE, mode)
        self._contexts = {True: user, False: kernel}
        self._hook()

    def control(self, user: bool = True) -> dict[str, int]:
        """CR0, CR4, EFER and CS of the probe context (for the record)."""
        uc = self.uc
        uc.context_restore(self._contexts[user])
        return {"cr0": uc.reg_read(UC_X86_REG_CR0), "cr4": uc.reg_read(UC_X86_REG_CR4),
                "efer": uc.msr_read(MSR_EFER), "cs": uc.reg_read(UC_X86_REG_CS)}
