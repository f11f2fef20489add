"""The i386 engine: a Unicorn CPU in 32-bit protected mode walking vmsim's i386 / PAE tables.

The 32-bit sibling of `unicorn_cpu.UnicornCpu` (which it shares `cpu.base`
with: task contexts, fork, exec, the #PF path). What differs:

* ``UC_MODE_32`` booted to CPL 3 with Linux's i386 GDT selectors
  (arch/x86/include/asm/segment.h, CONFIG_X86_32: __USER_CS 0x73, __USER_DS
  0x7b) and paging over the task's tables: CR4.PSE for "i386" (2-level, 4 MiB
  leaves), CR4.PAE + EFER.NXE for "i386-pae" (the PDPT at CR3);
* the GDT (with the three TLS slots 6..8, GDT_ENTRY_TLS_MIN on i386) sits in a
  stub outside RAM; descriptor loads (``mov %ax, %gs`` after set_thread_area)
  read it through the paging unit at CPL 0, so every address space gets a
  supervisor-only large-page entry in its kernel quarter mapping the stub
  (what the kernel's own mapping of its GDT is on Linux: above TASK_SIZE,
  invisible to user mode and to every walk of vmsim's user range);
* system calls are ``int $0x80`` (entry_INT80_32, arch/x86/entry/entry_32.S):
  vector 0x80 reaches the UC_HOOK_INTR hook with eip already past the
  two-byte instruction (measured); eax is the number, ebx, ecx, edx, esi, edi
  and ebp the arguments, and the result goes back in eax
  (`kernel.syscalls_i386.do_int80_syscall_32`).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unicorn import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_32, UC_PROT_ALL, UC_TLB_CPU, Uc
from unicorn import x86_const as x
from unicorn.unicorn import UcContext

from vmsim.cpu.base import (
    CR0_EM,
    CR0_MP,
    CR4_OSFXSR,
    CR4_OSXMMEXCPT,
    FastRegs,
    UnicornEngine,
    _ctx_int,
)
from vmsim.cpu.x86_mmu import error_code_offset, old_exception_offset

if TYPE_CHECKING:
    from vmsim.kernel.task import Process
    from vmsim.machine import Machine

U32 = 0xFFFF_FFFF
CR0_PE, CR0_WP, CR0_PG = 1, 1 << 16, 1 << 31
CR4_PSE, CR4_PAE, CR4_SMEP, CR4_SMAP = 1 << 4, 1 << 5, 1 << 20, 1 << 21
MSR_EFER, EFER_NXE = 0xC000_0080, 1 << 11
KERNEL_CS, KERNEL_DS, USER_CS, USER_DS = 0x60, 0x68, 0x73, 0x7B
#: GDT_ENTRY_TLS_MIN..MAX on i386 (segment.h): set_thread_area's slots.
TLS_MIN, TLS_ENTRIES = 6, 3
VEC_INT80 = 0x80
#: Where the stub (boot code, GDT, the PAE kernel PMD) lives, physically and virtually.
STUB = 0xE000_0000
STUB_SIZE = 0x4000
GDT_AT = STUB + 0x1000
PMD_AT = STUB + 0x2000

REG_IDS32: dict[str, int] = {
    "rax": x.UC_X86_REG_EAX, "rbx": x.UC_X86_REG_EBX, "rcx": x.UC_X86_REG_ECX,
    "rdx": x.UC_X86_REG_EDX, "rsi": x.UC_X86_REG_ESI, "rdi": x.UC_X86_REG_EDI,
    "rbp": x.UC_X86_REG_EBP, "rsp": x.UC_X86_REG_ESP, "rip": x.UC_X86_REG_EIP,
    "rflags": x.UC_X86_REG_EFLAGS,
}  # segment registers are not here: a write would load a descriptor through the GDT
_INT80_REGS = (x.UC_X86_REG_EAX, x.UC_X86_REG_EBX, x.UC_X86_REG_ECX, x.UC_X86_REG_EDX,
               x.UC_X86_REG_ESI, x.UC_X86_REG_EDI, x.UC_X86_REG_EBP, x.UC_X86_REG_EIP)


def segment32(base: int, limit: int, code: bool, dpl: int, gran: bool = True) -> bytes:
    """A 32-bit code (execute/read) or data (read/write) descriptor, accessed bit set."""
    access = 0x80 | (dpl << 5) | 0x10 | (0x0B if code else 0x03)
    flags = (0x8 if gran else 0) | 0x4
    return struct.pack("<HHBBBB", limit & 0xFFFF, base & 0xFFFF, (base >> 16) & 0xFF, access,
                       (flags << 4) | ((limit >> 16) & 0xF), (base >> 24) & 0xFF)


def gdt_i386() -> bytes:
    """32 slots: Linux's kernel and user flat segments, TLS slots empty."""
    slots = [bytes(8)] * 32
    slots[KERNEL_CS >> 3] = segment32(0, 0xFFFFF, True, 0)
    slots[KERNEL_DS >> 3] = segment32(0, 0xFFFFF, False, 0)
    slots[USER_CS >> 3] = segment32(0, 0xFFFFF, True, 3)
    slots[USER_DS >> 3] = segment32(0, 0xFFFFF, False, 3)
    return b"".join(slots)


def boot_i386(uc: Uc, mode: str) -> UcContext:
    """Enter CPL 3 by an ``iret`` with paging off, then switch paging on for `mode`
    (CR4.PSE, or CR4.PAE and EFER.NXE; CR0.PG|WP; SSE usable); the user context."""
    uc.mem_map(STUB, STUB_SIZE, UC_PROT_ALL)
    table = gdt_i386()
    uc.mem_write(GDT_AT, table)
    uc.reg_write(x.UC_X86_REG_GDTR, (0, GDT_AT, len(table) - 1, 0))
    uc.reg_write(x.UC_X86_REG_CR0, uc.reg_read(x.UC_X86_REG_CR0) | CR0_PE)
    uc.reg_write(x.UC_X86_REG_CS, KERNEL_CS)
    for reg in (x.UC_X86_REG_DS, x.UC_X86_REG_ES, x.UC_X86_REG_SS):
        uc.reg_write(reg, KERNEL_DS)
    uc.mem_write(STUB, b"\xcf")  # iret
    entry, kstack = STUB + 0x800, STUB + 0xF00
    uc.mem_write(kstack, struct.pack("<5I", entry, USER_CS, 0x202, STUB + 0xE00, USER_DS))
    uc.reg_write(x.UC_X86_REG_ESP, kstack)
    uc.emu_start(STUB, entry)
    if (uc.reg_read(x.UC_X86_REG_CS), uc.reg_read(x.UC_X86_REG_SS)) != (USER_CS, USER_DS):
        raise AssertionError("iret did not reach user mode")
    for reg in (x.UC_X86_REG_DS, x.UC_X86_REG_ES):
        uc.reg_write(reg, USER_DS)
    cr4 = uc.reg_read(x.UC_X86_REG_CR4) & ~(CR4_SMEP | CR4_SMAP | CR4_PAE | CR4_PSE)
    cr4 |= CR4_OSFXSR | CR4_OSXMMEXCPT | (CR4_PAE if mode == "i386-pae" else CR4_PSE)
    uc.reg_write(x.UC_X86_REG_CR4, cr4)
    if mode == "i386-pae":
        uc.msr_write(MSR_EFER, uc.msr_read(MSR_EFER) | EFER_NXE)
        # The kernel quarter's PMD: one 2 MiB supervisor leaf over the stub.
        uc.mem_write(PMD_AT + ((STUB >> 21) & 511) * 8, struct.pack("<Q", STUB | 0x83))
    uc.reg_write(x.UC_X86_REG_CR3, 0)
    cr0 = (uc.reg_read(x.UC_X86_REG_CR0) | CR0_PE | CR0_PG | CR0_WP | CR0_MP) & ~CR0_EM
    uc.reg_write(x.UC_X86_REG_CR0, cr0)
    return uc.context_save()


class UnicornCpu32(UnicornEngine):
    """One i386 CPU for a machine's tasks; QEMU's MMU walks vmsim's 2-level or PAE tables."""

    name = "unicorn"
    tlb_mode = UC_TLB_CPU
    reg_ids = REG_IDS32
    _rip, _rsp, _rax = x.UC_X86_REG_EIP, x.UC_X86_REG_ESP, x.UC_X86_REG_EAX
    never = 0xFFFF_F000  # in the kernel quarter: a fetch there faults first

    def __init__(self, machine: Machine) -> None:
        phys = machine.kmem.phys
        self.machine = machine
        self.mode = machine.mode.name
        if phys.size > STUB:
            raise ValueError("i386 engine: guest RAM must end below 0xE0000000")
        uc = Uc(UC_ARCH_X86, UC_MODE_32)
        uc.ctl_set_tlb_mode(self.tlb_mode)
        uc.mem_map_ptr(0, phys.size, UC_PROT_ALL, phys.address)
        self.template = boot_i386(uc, self.mode)
        self.uc = uc
        self._err_off = error_code_offset()
        self._old_off = old_exception_offset()
        self._scratch = uc.context_save()
        self.fast = FastRegs(uc)
        self.counter = None
        self._scratch_err = _ctx_int(self._scratch, self._err_off)
        self._scratch_old = _ctx_int(self._scratch, self._old_off)
        self.on_cpu = None
        self.pending = {}
        self.syscall_next = None
        self._fresh = None
        self._restore = None
        self._contexts = {}
        self.stop_reason = ""
        self.insns_budget_hit = False
        self._mapped_pgd: int | None = None
        uc.hook_add(UC_HOOK_INTR, self._on_intr)
        self._install_hooks(uc)

    # ---- the kernel quarter -------------------------------------------------------------
    def _map_kernel(self, pgd: int) -> None:
        """clone_pgd_range() of the kernel mapping: the stub (GDT) above TASK_SIZE,
        supervisor-only, in this page directory (i386: a PSE PDE; PAE: PDPT entry 3).

        The entry exists only while the guest runs: it is taken out again before any
        kernel code runs (`_kernel_enter`), so vmsim's own walks (free_pgtables of a whole
        address space at exit, the checks) never meet an entry pointing outside RAM."""
        phys = self.machine.kmem.phys
        if self.mode == "i386-pae":
            phys.write(pgd + 3 * 8, struct.pack("<Q", PMD_AT | 1))
        else:
            phys.write(pgd + (STUB >> 22) * 4, struct.pack("<I", STUB | 0x83))
        self._mapped_pgd = pgd

    def _kernel_enter(self) -> None:
        """Take the kernel entry out of the page directory it was put in."""
        pgd = self._mapped_pgd
        if pgd is None:
            return
        phys = self.machine.kmem.phys
        if self.mode == "i386-pae":
            phys.write(pgd + 3 * 8, bytes(8))
        else:
            phys.write(pgd + (STUB >> 22) * 4, bytes(4))
        self._mapped_pgd = None

    def _kernel_exit(self, task: Process) -> None:
        """Back to the guest: the entry into the (possibly new, after execve) address space."""
        if task.alive and task.mm is not None and task.mm.pgd:
            self._map_kernel(task.mm.pgd)

    def _emulate(self, task: Process, max_insns: int, timeout_us: int) -> None:
        try:
            super()._emulate(task, max_insns, timeout_us)
        finally:
            self._kernel_enter()

    def _switch_mm(self, task: Process) -> None:
        """switch_mm() + load_TLS(): CR3 (which flushes the TLB) and the task's TLS slots."""
        pgd = task.mm.pgd
        self._map_kernel(pgd)
        slots = getattr(task, "tls_array", None) or [bytes(8)] * TLS_ENTRIES
        self.uc.mem_write(GDT_AT + TLS_MIN * 8, b"".join(slots))
        self.uc.reg_write(x.UC_X86_REG_CR3, pgd)

    def copy_thread(self, parent: Process, child: Process) -> None:
        """copy_thread(): the child's registers, eax 0, and the parent's TLS array."""
        super().copy_thread(parent, child)
        slots = getattr(parent, "tls_array", None)
        if slots is not None:
            child.tls_array = list(slots)  # type: ignore[attr-defined]

    # ---- system-call threads -----------------------------------------------------------
    def set_tls_slot(self, index: int, desc: bytes) -> None:
        """Write GDT slot `index` (set_thread_area's descriptor; one GDT, one CPU)."""
        self.uc.mem_write(GDT_AT + index * 8, desc)
        self.flush_tlb()

    _page_fault = UnicornEngine._hardware_page_fault

    def _on_intr(self, uc: Uc, intno: int, _data: object) -> None:
        task = self.on_cpu
        assert task is not None
        error_code = self._accept_exception(uc)
        self._kernel_enter()
        try:
            if intno == VEC_INT80:
                self._int80(uc, task)
                return
            self._exception(uc, task, intno, error_code)
        finally:
            self._kernel_exit(task)

    def _int80(self, uc: Uc, task: Process) -> None:
        from vmsim.kernel.syscalls_i386 import do_int80_syscall_32

        fast = self.fast
        nr, *args, eip = (v & U32 for v in fast.read_many(_INT80_REGS))  # eip: past `int`
        self.syscall_next = eip
        try:
            ret = do_int80_syscall_32(task, nr, args)
        finally:
            self.syscall_next = None
        if ret is None:  # blocked: execute the `int $0x80` again when woken
            self.pending["rip"] = eip - 2
            uc.emu_stop()
            return
        fast.write(x.UC_X86_REG_EAX, ret & U32)
        if task.need_stop:
            uc.emu_stop()
