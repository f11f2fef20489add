"""The default CPU engine: Unicorn's own x86-64 MMU walks vmsim's page tables.

RAM is vmsim's buffer, mapped at guest-physical 0 without copying. The
guest runs at CPL 3 in long mode with CR3 = its mm's PGD, so every load,
store and fetch is translated by QEMU's page walker from the entries vmsim
wrote (setting their accessed and dirty bits), and Python runs only when
the CPU raises an exception or executes ``syscall`` (both handled in
`cpu.base`, which this engine shares with the soft-MMU engine):

* #PF -> `kernel.traps.exc_page_fault` with CR2 and the hardware error code
  (read from the saved CPU state; see `x86_mmu.error_code_offset`). If the
  kernel resolved it, the instruction is retried, as after ``iretq``.
  QEMU's record of the exception in flight is cleared first, or the next
  fault would turn into a double fault (`x86_mmu.old_exception_offset`).
* other exceptions -> `kernel.traps.do_trap` (SIGSEGV, SIGILL, SIGFPE, ...).
* ``syscall`` -> `kernel.syscalls.do_syscall_64`.

Switching tasks writes CR3, which flushes QEMU's TLB, as a CR3 write
without PCID does on hardware.

Translated code: Unicorn drops all of it whenever `emu_start` returns, but
inside one run the kernel may put new instructions into a frame behind
QEMU's back; the kernel calls `flush_icache` then (a fault in an executable
area, a write by the kernel into one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import UC_TLB_CPU
from unicorn import x86_const as x

from vmsim.cpu.base import UnicornEngine

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

class UnicornCpu(UnicornEngine):
    """One x86-64 CPU for a machine's tasks; QEMU's MMU walks vmsim's tables."""

    name = "unicorn"
    tlb_mode = UC_TLB_CPU

    def _switch_mm(self, task: Process) -> None:
        self.uc.reg_write(x.UC_X86_REG_CR3, task.mm.pgd)  # a CR3 write flushes the TLB

    _page_fault = UnicornEngine._hardware_page_fault
