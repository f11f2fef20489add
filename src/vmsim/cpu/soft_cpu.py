"""The soft-MMU CPU engine: every TLB miss of Unicorn is a walk by vmsim's own walker.

Unicorn runs in ``UC_TLB_VIRTUAL`` mode: QEMU's x86 page walker is never
used, and on every miss in QEMU's software TLB Unicorn calls our
``UC_HOOK_TLB_FILL`` hook with the page and the kind of access (its
``UC_MEM_READ``/``WRITE``/``FETCH``, which QEMU derives from the memory
operation it is performing: a load, a store, a code fetch). The hook walks
the current task's tables with `arch.paging.translate` (user=True, setting
accessed and dirty bits as hardware does) and

* on success fills QEMU's TLB entry with the physical page (in vmsim's RAM,
  mapped at guest-physical 0) and the rights that walk proved;
* on a miss calls `kernel.traps.exc_page_fault` with the exact faulting
  byte (`x86_insn.fault_address`: the hook is only given the page), the x86
  error code the walk produced and rip, as the default engine does from a
  #PF; if the kernel resolved it the walk is retried and the entry filled
  (no trip back through the emulator loop), otherwise the hook refuses
  the fill, QEMU abandons the instruction with its state restored to it,
  and the kernel delivers the signal the fault handler queued.

Privilege: the guest still runs at CPL 3 in long mode (``UC_TLB_VIRTUAL``
only replaces the page walk; segmentation and CPL are untouched, and a test
checks CS.RPL). The rights come from vmsim's walker alone, which is asked
for a user access: a user-mode load from a supervisor page faults exactly
as it does in hardware. A non-canonical address never reaches a walk: it
is a #GP (SIGSEGV with SI_KERNEL), as in the hardware engine.

What a fill grants. Like `arch.tlb.Tlb` (and a hardware TLB that caches
the dirty state), an entry allows only the kinds of access a walk proved
since the last flush: a read proves read, a write proves read and write
(and set the dirty bit), a fetch proves read and execute. A first write
through a read-filled entry therefore misses again and walks, which is how
the dirty bit gets set and a write to a COW page reaches `do_wp_page`.
The proven kinds per page are remembered (`_proven`) so a refill after
QEMU evicted an entry, or a fetch after a read of the same page, does not
take away what was already proved.

Flushing. `flush_tlb` empties QEMU's TLB (and `_proven`); the kernel calls
it through the mm's flush hooks wherever Linux flushes (munmap, mprotect,
COW break, reclaim). A task switch flushes when the address space changes
(switch_mm() with a different mm; Linux keeps the TLB when the same mm
runs again, and so does this engine).

Translated code. The kernel may ask for `flush_icache` from inside a hook
(a fault in an executable area, a system call writing into one). Dropping
QEMU's translation blocks there is not safe: a fill can happen in the
middle of translating a block. The request is recorded, the CPU is
stopped (QEMU checks for the stop before entering the next block), the
cache is flushed outside the emulator and emulation resumes at rip.

Unicorn's own lookups. Not every call of the hook is a guest access:
Unicorn looks up the code page of emu_start's `until` address when it
stops, and every page of the blocks a code hook instrumented when that
hook is deleted (its instruction-counting hook goes when a run has no
instruction budget after one that had). Both are recognised and refused
without a walk or a fault (`_exit_probe`, `_switch_counting`); taken for
guest fetches they would fault in pages the guest never executes.

Every fill is counted (`fills`, per task in `fills_by_pid`) and, when
someone listens, emitted as a "tlb_fill" event on `machine.events`.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from unicorn import (
    UC_HOOK_TLB_FILL,
    UC_MEM_FETCH,
    UC_MEM_WRITE,
    UC_PROT_EXEC,
    UC_PROT_READ,
    UC_PROT_WRITE,
    UC_TLB_VIRTUAL,
    Uc,
    UcError,
)

from vmsim.arch.paging import translate
from vmsim.cpu.base import NEVER, REG_IDS, RIP, UnicornEngine
from vmsim.cpu.x86_insn import Decoder, fault_address
from vmsim.cpu.x86_mmu import VEC_GP
from vmsim.kernel.traps import do_trap, exc_page_fault

if TYPE_CHECKING:
    from unicorn.unicorn_py3.unicorn import uc_tlb_entry

    from vmsim.kernel.task import Process
    from vmsim.machine import Machine
    from vmsim.mm.mm_struct import MmStruct

READ, WRITE, EXEC = 0, 1, 2
ACCESS_NAMES = ("READ", "WRITE", "EXEC")
#: What a successful walk for each kind of access proves (a user page is readable on x86).
PROVES = (UC_PROT_READ, UC_PROT_READ | UC_PROT_WRITE, UC_PROT_READ | UC_PROT_EXEC)
#: How often one miss may be "resolved" by the kernel yet still fail the walk before the
#: instruction is abandoned and restarted from the scheduler (hardware would re-fault forever).
MAX_REFAULTS = 4
_NEVER_PAGE = NEVER & ~0xFFF
_WIDE_REGS = frozenset({*REG_IDS.values()} - {REG_IDS["cs"], REG_IDS["ss"]})


def perms_text(perms: int) -> str:
    """'rw-' style text of Unicorn protection bits."""
    return "".join(c if perms & bit else "-" for c, bit in
                   (("r", UC_PROT_READ), ("w", UC_PROT_WRITE), ("x", UC_PROT_EXEC)))


class SoftMmuCpu(UnicornEngine):
    """One x86-64 CPU whose TLB is filled by vmsim's page walker; see the module docstring."""

    name = "soft"
    tlb_mode = UC_TLB_VIRTUAL

    def __init__(self, machine: Machine) -> None:
        kmem = machine.kmem
        self._mode = kmem.mode
        self._phys = kmem.phys
        self._page_shift = kmem.page_shift
        self._page_size = kmem.page_size
        self._events = machine.events
        self._decoder = Decoder()
        self._mm: MmStruct | None = None  # the address space QEMU's TLB holds entries of
        self._proven: dict[int, int] = {}  # virtual page number -> rights proven since a flush
        self.fills = 0
        self.flushes = 0
        self.fills_by_pid: Counter[int] = Counter()
        self._fault_stop = False  # a fill was refused: the task has a signal (or must refault)
        self._exit_probe = False  # the fill Unicorn asks for at `until` was refused
        self._quiet = False  # Unicorn's own lookups, not the guest's: refuse every fill
        self._counting = False  # the last emu_start had an instruction count
        self._tb_stale = False  # flush_icache was asked for while emulating
        super().__init__(machine)

    def _install_hooks(self, uc: Uc) -> None:
        uc.hook_add(UC_HOOK_TLB_FILL, self._on_tlb_fill)

    # ---- the CpuEngine operations that differ ---------------------------------------------
    def _switch_mm(self, task: Process) -> None:
        if task.mm is not self._mm:
            self._mm = task.mm  # held, so a new mm can never be mistaken for it
            self.flush_tlb()

    def flush_tlb(self) -> None:
        """Drop every cached translation, and what the walks since the last flush proved."""
        super().flush_tlb()
        self._proven.clear()
        self.flushes += 1

    def flush_icache(self) -> None:
        """Forget translated code; deferred to outside the emulator while it runs."""
        if self.on_cpu is None:
            self.uc.ctl_flush_tb()
            return
        self._tb_stale = True
        self.uc.emu_stop()

    # ---- running --------------------------------------------------------------------------
    def _emulate(self, task: Process, max_insns: int, timeout_us: int) -> None:
        """emu_start, again after a deferred translation-cache flush (at the same rip).

        A resumed run gets `max_insns` afresh (Unicorn does not say how many instructions
        ran before the stop), so a time slice can be longer than on the default engine;
        programs that synchronise (wait, pipes) see no difference.
        """
        deadline = time.monotonic() + timeout_us / 1e6 if timeout_us else 0.0
        if (max_insns > 0) != self._counting:
            self._switch_counting(max_insns)
        fills = self.fills
        try:
            self._run_until_stopped(task, max_insns, timeout_us, deadline)
        finally:
            self.fills_by_pid[task.pid] += self.fills - fills

    def _run_until_stopped(self, task: Process, max_insns: int, timeout_us: int,
                           deadline: float) -> None:
        """emu_start until the CPU stops for a reason other than a deferred icache flush."""
        uc = self.uc
        while True:
            self._fault_stop = False
            self._exit_probe = False
            self._tb_stale = False
            try:
                uc.emu_start(uc.reg_read(RIP), NEVER, timeout_us, max_insns)
            except UcError:
                if not (self._fault_stop or self._exit_probe):
                    raise
            if not self._tb_stale:
                return
            uc.ctl_flush_tb()
            self._tb_stale = False
            # Resume only if nothing else wanted the CPU stopped: a refused fill, a register
            # or context change for the kernel, a blocked call, a signal, exit.
            if (self._fault_stop or task.need_stop or not task.alive or self.pending
                    or self._fresh is not None or self._restore is not None):
                return
            if deadline:
                timeout_us = int((deadline - time.monotonic()) * 1e6)
                if timeout_us <= 0:
                    return

    def _switch_counting(self, max_insns: int) -> None:
        """Let Unicorn add or delete its instruction-counting hook while no guest runs.

        emu_start with a count installs a code hook; emu_start without one deletes it, and
        deleting a code hook makes Unicorn invalidate every block it instrumented, looking
        each one's page up through the TLB: a burst of fetch fills at pages the guest is not
        executing. Answered as guest fetches they would fault pages in (the fault counts of
        a pipeline differed from the default engine's before this). So the change is made
        by an empty emu_start (begin == until) during which every fill is refused quietly.
        """
        uc = self.uc
        rip = uc.reg_read(RIP)
        self._quiet = True
        try:
            uc.emu_start(NEVER, NEVER, 0, max_insns)
        except UcError:
            pass  # the refused fetch at NEVER
        finally:
            self._quiet = False
            uc.reg_write(RIP, rip)
        self._counting = max_insns > 0

    def _on_tlb_fill(self, uc: Uc, vaddr: int, mem_type: int, entry: uc_tlb_entry,
                     _data: object) -> bool:
        """UC_HOOK_TLB_FILL: walk vmsim's tables for `vaddr` (a page); True fills `entry`."""
        if self._quiet:
            return False
        task = self.on_cpu
        if task is None or (vaddr == _NEVER_PAGE and mem_type == UC_MEM_FETCH
                            and self.fast.read(RIP) & ~0xFFF != _NEVER_PAGE):
            # Unicorn looks up the code at emu_start's `until` address when it stops (rip is
            # still the guest's); there is nothing there (it is not canonical) and no guest
            # access to account for. A guest access to that page is a #GP like any other.
            self._exit_probe = True
            return False
        access = WRITE if mem_type == UC_MEM_WRITE else EXEC if mem_type == UC_MEM_FETCH else READ
        mm = task.mm
        phys, err = translate(self._mode, self._phys, mm.pgd, vaddr, access)
        if phys < 0:
            phys = self._fault(uc, task, vaddr, access, err)
            if phys < 0:
                self._fault_stop = True
                return False
            mm = task.mm
        vpn = vaddr >> self._page_shift
        perms = PROVES[access] | self._proven.get(vpn, 0)
        self._proven[vpn] = perms
        entry.paddr = phys
        entry.perms = perms
        self.fills += 1
        if self._events.active:
            self._events.emit("tlb_fill", pid=task.pid, addr=vaddr, phys=phys,
                              access=ACCESS_NAMES[access], perms=perms_text(perms))
        return True

    def _fault(self, uc: Uc, task: Process, page: int, access: int, err: int) -> int:
        """The walk of `page` failed with x86 error code `err`: enter the kernel's #PF handler
        as the hardware would, and walk again if it resolved the fault. Returns the physical
        page, or -1 if the access must not complete (a signal is pending, or a refault)."""
        ip = self.fast.read(RIP)
        if not self._mode.canonical(page):
            do_trap(task, VEC_GP, 0, ip, "")  # a non-canonical address is #GP, not #PF
            return -1
        try:
            address = fault_address(self._decoder, self._read_reg, self._read_code, page,
                                    self._page_size, access, ip)
        except (UcError, ValueError, TypeError, OverflowError):  # an operand it cannot read
            address = page
        for _ in range(MAX_REFAULTS):
            if not exc_page_fault(task, address, err, ip):
                return -1
            if task.need_stop:
                uc.emu_stop()
            phys, err = translate(self._mode, self._phys, task.mm.pgd, page, access)
            if phys >= 0:
                return phys
        return -1

    def _read_reg(self, reg: int) -> int:
        """A live register for the fault-address decoder: the C API for the 64-bit ones (a
        narrower one writes only its own bytes into the 64-bit buffer), else the binding."""
        return self.fast.read(reg) if reg in _WIDE_REGS else self.uc.reg_read(reg)

    def _read_code(self, va: int, n: int) -> bytes:
        """Up to `n` instruction bytes at `va` through the current task's tables (fewer where
        the walk fails); used only to decode a faulting instruction."""
        task = self.on_cpu
        assert task is not None
        out = b""
        buf = self._phys.buf
        while len(out) < n:
            phys, _ = translate(self._mode, self._phys, task.mm.pgd, va, READ)
            if phys < 0:
                break
            take = min(n - len(out), self._page_size - (va & (self._page_size - 1)))
            out += buf[phys:phys + take]
            va += take
        return out
