"""The exact address of a faulting x86-64 access, from the instruction and the registers.

Unicorn's ``UC_HOOK_TLB_FILL`` gives the page of a miss, never the byte: a
hook is called with ``vaddr & TARGET_PAGE_MASK``. A hardware #PF reports the
byte (CR2), and Linux passes it on as ``si_addr`` and in its ``segfault at``
line, so an engine that resolves faults from the TLB-fill hook must find the
byte itself. `fault_address` decodes the instruction at rip with capstone
(once per distinct instruction bytes), lists the memory operands it reads
and writes, explicit and implicit (the stack of push/pop/call/ret/leave/
enter, xlat), evaluates their effective addresses from the live registers
and picks the one whose bytes fall in the faulting page:

* the access starts in the page: that address;
* it starts in the page before and runs into this one: the page's first
  byte, which is also what QEMU reports for the second half of a split
  access (it fills the second page at the aligned address after the first).

Operands are matched on the access kind first (a store for a write miss),
then on the page alone with a generous length (capstone reports odd sizes
for fxsave and the like, and ``lock cmpxchg``'s operand as read-only though
QEMU fills it for a store). An instruction the decoder cannot place gets
the page address, which differs from hardware only in the low 12 bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import capstone
from capstone import x86_const as cx
from unicorn import x86_const as ux

ACC_READ, ACC_WRITE = 1, 2  # capstone's CS_AC_READ, CS_AC_WRITE
_LOOSE_SIZE = 512  # fxsave/xsave areas, the longest single x86 access QEMU splits
_U64 = (1 << 64) - 1


class Operand(NamedTuple):
    """One memory access of an instruction: kind mask, length and how to form the address."""

    access: int
    size: int
    seg: int  # Unicorn register id of fs_base/gs_base, or 0
    base: int  # Unicorn register id, or 0
    index: int
    scale: int
    disp: int  # for rip-relative: displacement + instruction length
    rip_relative: bool
    addr_mask: int


#: Instructions that touch the stack without naming it: (kind, rsp/rbp displacement, base).
_PUSHES = {"push", "pushfq", "pushf", "call", "enter"}
_POPS = {"pop", "popfq", "popf", "ret"}


class Decoder:
    """Decodes instructions to their memory operands; results cached by instruction bytes."""

    def __init__(self) -> None:
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        md.detail = True
        self._md = md
        self._cache: dict[bytes, tuple[int, tuple[Operand, ...]] | None] = {}

    def operands(self, code: bytes) -> tuple[int, tuple[Operand, ...]] | None:
        """(instruction length, memory operands) of the instruction at the start of `code`,
        or None if capstone cannot decode it."""
        if code in self._cache:
            return self._cache[code]
        try:
            insn = next(self._md.disasm(code, 0, 1), None)
        except capstone.CsError:
            insn = None
        out = None if insn is None else (insn.size, tuple(self._memory_operands(insn)))
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[code] = out
        return out

    @staticmethod
    def _memory_operands(insn: capstone.CsInsn) -> list[Operand]:
        mask = 0xFFFF_FFFF if insn.addr_size == 4 else _U64
        ops = []
        for op in insn.operands:
            if op.type != cx.X86_OP_MEM or insn.mnemonic == "lea" or insn.mnemonic.startswith("nop"):
                continue
            mem = op.mem
            seg = {cx.X86_REG_FS: ux.UC_X86_REG_FS_BASE,
                   cx.X86_REG_GS: ux.UC_X86_REG_GS_BASE}.get(mem.segment, 0)
            rip_rel = mem.base == cx.X86_REG_RIP
            ops.append(Operand(op.access or ACC_READ, max(op.size, 1), seg,
                               0 if rip_rel else _uc_reg(insn, mem.base), _uc_reg(insn, mem.index),
                               mem.scale, mem.disp + (insn.size if rip_rel else 0), rip_rel, mask))
        name = insn.mnemonic
        if name in _PUSHES:
            ops.append(Operand(ACC_WRITE, 8, 0, ux.UC_X86_REG_RSP, 0, 1, -8, False, _U64))
        elif name in _POPS:
            ops.append(Operand(ACC_READ, 8, 0, ux.UC_X86_REG_RSP, 0, 1, 0, False, _U64))
        elif name == "leave":
            ops.append(Operand(ACC_READ, 8, 0, ux.UC_X86_REG_RBP, 0, 1, 0, False, _U64))
        elif name == "xlatb":
            ops.append(Operand(ACC_READ, 1, 0, ux.UC_X86_REG_RBX, ux.UC_X86_REG_AL, 1, 0, False,
                               _U64))
        return ops


def _uc_reg(insn: capstone.CsInsn, reg: int) -> int:
    """The Unicorn register id for a capstone register (0 for none or unknown)."""
    if not reg:
        return 0
    return getattr(ux, f"UC_X86_REG_{insn.reg_name(reg).upper()}", 0)


def fault_address(decoder: Decoder, read_reg: Callable[[int], int],
                  read_code: Callable[[int, int], bytes], page: int, page_size: int,
                  access: int, rip: int) -> int:
    """The byte address of the access that missed in `page`, as CR2 would hold it.

    `access` is 0 read, 1 write, 2 fetch; `read_reg(uc_reg_id)` reads a live
    register, `read_code(va, n)` up to n instruction bytes (fewer if the rest
    is unreadable). Falls back to `page` when no operand fits.
    """
    end = page + page_size
    if access == 2:  # an instruction fetch: rip itself, or the page it runs into
        return rip if page <= rip < end else page
    decoded = decoder.operands(read_code(rip, 15))
    if decoded is None:
        return page
    _length, ops = decoded
    want = ACC_WRITE if access == 1 else ACC_READ
    for strict in (True, False):
        for op in ops:
            if strict and not op.access & want:
                continue
            if op.rip_relative:
                ea = rip + op.disp
            else:
                ea = (read_reg(op.base) if op.base else 0) + op.disp
                if op.index:
                    ea += read_reg(op.index) * op.scale
            ea &= op.addr_mask
            if op.seg:
                ea += read_reg(op.seg)
            ea &= _U64
            size = op.size if strict else max(op.size, _LOOSE_SIZE)
            if ea < end and ea + size > page:
                return max(ea, page)
    return page
