"""What the two Unicorn CPU engines share: one x86-64 CPU, task contexts, system calls, traps.

Both engines run the guest in long mode at CPL 3 on one Unicorn instance
whose physical memory is vmsim's RAM (`mem_map_ptr` at guest-physical 0, no
copy). They differ only in who translates a virtual address:

* `UnicornCpu` (`unicorn_cpu.py`, the default): QEMU's own x86 MMU walks
  vmsim's tables (``UC_TLB_CPU``, CR3 = the task's PGD); Python runs on #PF.
* `SoftMmuCpu` (`soft_cpu.py`): ``UC_TLB_VIRTUAL``; every miss in QEMU's TLB
  calls vmsim's walker (`arch.paging.translate`) through ``UC_HOOK_TLB_FILL``.

Everything else lives here, so the engines cannot drift apart in what the
kernel sees:

* a task's registers live in a saved Unicorn context while it is off the
  CPU. While it is on the CPU the kernel reads registers live; writes other
  than a system call's return value are applied when the engine stops,
  which it then does at once (a changed rip cannot be taken inside a hook);
* ``syscall`` -> `kernel.syscalls.do_syscall_64`; rcx and r11 are clobbered
  with the return address and rflags, as the instruction does. Inside the
  hook QEMU's rip is still the ``syscall`` instruction's own address (it
  adds the length afterwards), so the address the task resumes at is kept
  in `syscall_next` for the kernel (signal frames, fork);
* exceptions arrive at `UC_HOOK_INTR` with the vector: the error code is read
  from the saved CPU state (`x86_mmu.error_code_offset`) and QEMU's record
  of the exception in flight is cleared (`x86_mmu.old_exception_offset`),
  or the next exception would turn into a double fault. #PF goes to the
  subclass's `_page_fault`; the others to `kernel.traps.do_trap`.
"""

from __future__ import annotations

import ctypes
import pickle
import time
from typing import TYPE_CHECKING

from unicorn import (
    UC_ARCH_X86,
    UC_CTL_IO_WRITE,
    UC_CTL_TLB_FLUSH,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_MODE_64,
    UC_PROT_ALL,
    UC_TLB_CPU,
    Uc,
    UcError,
)
from unicorn import x86_const as x
from unicorn.unicorn import UcContext

from vmsim.cpu.insn_counter import InstructionCounter
from vmsim.cpu.insn_counter import available as insn_counter_available
from vmsim.cpu.x86_mmu import (
    VEC_GP,
    VEC_PF,
    boot_long_mode,
    error_code_offset,
    old_exception_offset,
)
from vmsim.kernel.syscalls import do_syscall_64
from vmsim.kernel.traps import do_trap, exc_page_fault

if TYPE_CHECKING:
    from vmsim.kernel.task import Process
    from vmsim.machine import Machine

U64 = (1 << 64) - 1
#: Where emulation would stop: a non-canonical address no user code can reach.
NEVER = 0xFFFF_8000_0000_0000 - 1
CR0_EM, CR0_MP = 1 << 2, 1 << 1
CR4_OSFXSR, CR4_OSXMMEXCPT = 1 << 9, 1 << 10
VEC_UD = 6

REG_IDS: dict[str, int] = {
    name: getattr(x, f"UC_X86_REG_{name.upper()}")
    for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
                 "r11", "r12", "r13", "r14", "r15", "rip", "rflags", "fs_base", "gs_base",
                 "cs", "ss")
}
RAX, RIP, RCX, R11, RFLAGS, RSP = (REG_IDS[n] for n in ("rax", "rip", "rcx", "r11", "rflags",
                                                         "rsp"))
ARGS = tuple(REG_IDS[n] for n in ("rdi", "rsi", "rdx", "r10", "r8", "r9"))


def clone_context(ctx: UcContext) -> UcContext:
    """An independent copy of a saved context."""
    copy = UcContext.__new__(UcContext)
    copy.__setstate__(ctx.__getstate__())
    return copy


class FastRegs:
    """Register reads and writes straight through libunicorn's C API.

    The Python binding's `reg_read` spends ~30 µs per call choosing a register class; the
    fault and system-call paths read a handful of 64-bit registers each time, so they call
    `uc_reg_read`/`uc_reg_read_batch` directly with preallocated buffers (~1 µs).
    """

    def __init__(self, uc: Uc) -> None:
        from unicorn.unicorn_py3.unicorn import uclib

        self._h = uc._uch
        self._read = uclib.uc_reg_read
        self._write = uclib.uc_reg_write
        self._batch = uclib.uc_reg_read_batch
        self._buf = ctypes.c_uint64()
        self._ref = ctypes.cast(ctypes.pointer(self._buf), ctypes.c_void_p)
        self._vals = (ctypes.c_uint64 * 8)()
        self._ptrs = (ctypes.c_void_p * 8)(*(ctypes.addressof(self._vals) + 8 * i
                                             for i in range(8)))

    def read(self, reg: int) -> int:
        self._read(self._h, reg, self._ref)
        return self._buf.value

    def write(self, reg: int, value: int) -> None:
        self._buf.value = value
        self._write(self._h, reg, self._ref)

    def read_many(self, regs: tuple[int, ...]) -> list[int]:
        """Up to eight 64-bit registers in one call."""
        ids = (ctypes.c_int * len(regs))(*regs)
        self._batch(self._h, ids, self._ptrs, len(regs))
        return list(self._vals[:len(regs)])


_SYSCALL_REGS = (RAX, *ARGS, RIP)


def _ctx_int(ctx: UcContext, offset: int) -> ctypes.c_int:
    return ctypes.c_int.from_address(ctypes.cast(ctx.context, ctypes.c_void_p).value + offset)


class Regs:
    """PtRegs of one task: live on the CPU, or in its saved context."""

    def __init__(self, cpu: UnicornEngine, task: Process) -> None:
        self.cpu = cpu
        self.task = task

    def get(self, name: str) -> int:
        cpu = self.cpu
        if cpu.on_cpu is self.task:
            if name in cpu.pending:
                return cpu.pending[name]
            if name == "rip" and cpu.syscall_next is not None:
                return cpu.syscall_next
            return cpu.uc.reg_read(cpu.reg_ids[name])
        return cpu.context(self.task).reg_read(cpu.reg_ids[name])

    def set(self, name: str, value: int) -> None:
        cpu = self.cpu
        if cpu.on_cpu is self.task:
            cpu.pending[name] = value & U64
            cpu.uc.emu_stop()
        else:
            cpu.context(self.task).reg_write(cpu.reg_ids[name], value & U64)


class UnicornEngine:
    """One x86-64 CPU for a machine's tasks; `run` executes a task until it must stop.

    A subclass chooses `tlb_mode`, how an address space is loaded
    (`_switch_mm`), what a #PF means (`_page_fault`) and may add hooks
    (`_install_hooks`) or wrap the emulation (`_emulate`).
    """

    name = "unicorn-base"
    tlb_mode = UC_TLB_CPU
    #: Register names the kernel uses (PtRegs) -> Unicorn ids, and the ones the engine needs.
    reg_ids: dict[str, int] = REG_IDS
    _rip, _rsp, _rax = RIP, RSP, RAX
    #: The `until` address of emu_start: one no user code can reach.
    never = NEVER

    def __init__(self, machine: Machine) -> None:
        phys = machine.kmem.phys
        self.machine = machine
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        uc.ctl_set_tlb_mode(self.tlb_mode)
        uc.mem_map_ptr(0, phys.size, UC_PROT_ALL, phys.address)
        stub = max(0xE000_0000, (phys.size + 0x1F_FFFF) & ~0x1F_FFFF)
        user, _kernel = boot_long_mode(uc, stub, CR4_OSFXSR | CR4_OSXMMEXCPT)
        uc.context_restore(user)
        uc.reg_write(x.UC_X86_REG_CR0, (uc.reg_read(x.UC_X86_REG_CR0) & ~CR0_EM) | CR0_MP)
        self.template = uc.context_save()
        self.uc = uc
        self._err_off = error_code_offset()
        self._old_off = old_exception_offset()
        self._scratch = uc.context_save()
        self.fast = FastRegs(uc)
        self.counter: InstructionCounter | None = None
        # The scratch context is reused for every exception: its two fields are fixed views.
        self._scratch_err = _ctx_int(self._scratch, self._err_off)
        self._scratch_old = _ctx_int(self._scratch, self._old_off)
        self.on_cpu: Process | None = None
        self.pending: dict[str, int] = {}
        # Inside the syscall hook QEMU's rip is still the `syscall` instruction's address (it
        # adds the length afterwards); this is the address the task resumes at.
        self.syscall_next: int | None = None
        self._fresh: tuple[int, int] | None = None
        self._restore: bytes | None = None
        self._contexts: dict[int, UcContext] = {}
        self.stop_reason = ""
        self.insns_budget_hit = False
        uc.hook_add(UC_HOOK_INTR, self._on_intr)
        uc.hook_add(UC_HOOK_INSN, self._on_syscall, None, 1, 0, x.UC_X86_INS_SYSCALL)
        self._install_hooks(uc)

    # ---- what a subclass decides ------------------------------------------------------
    def _install_hooks(self, uc: Uc) -> None:
        """Add engine-specific hooks (called once, after boot)."""

    def _switch_mm(self, task: Process) -> None:
        """switch_mm(): make `task`'s page tables the ones the CPU translates with."""
        raise NotImplementedError

    def _page_fault(self, uc: Uc, task: Process, error_code: int, ip: int) -> None:
        """A #PF raised by QEMU's x86 MMU (only the hardware-walk engine gets these)."""
        do_trap(task, VEC_PF, error_code, ip, "unexpected #PF")
        uc.emu_stop()

    def _emulate(self, task: Process, max_insns: int, timeout_us: int) -> None:
        """Run from the current rip until something stops the CPU; UcError propagates."""
        uc = self.uc
        uc.emu_start(uc.reg_read(self._rip), self.never, timeout_us, max_insns)

    # ---- contexts ---------------------------------------------------------------------
    def context(self, task: Process) -> UcContext:
        ctx = self._contexts.get(task.pid)
        if ctx is None:
            ctx = self._contexts[task.pid] = clone_context(self.template)
        return ctx

    def regs(self, task: Process) -> Regs:
        return Regs(self, task)

    def start_thread(self, task: Process, ip: int, sp: int) -> None:
        if self.on_cpu is task:
            self._fresh = (ip, sp)
            self.pending.clear()
            self._restore = None
            self.uc.emu_stop()
            return
        ctx = self._contexts[task.pid] = clone_context(self.template)
        ctx.reg_write(self._rip, ip)
        ctx.reg_write(self._rsp, sp)

    def copy_thread(self, parent: Process, child: Process) -> None:
        if self.on_cpu is parent:
            ctx = self.uc.context_save()
            if self.syscall_next is not None:
                ctx.reg_write(self._rip, self.syscall_next)
            for name, value in self.pending.items():
                ctx.reg_write(self.reg_ids[name], value)
        else:
            ctx = clone_context(self.context(parent))
        ctx.reg_write(self._rax, 0)
        self._contexts[child.pid] = ctx

    def save_fpu(self, task: Process) -> object:
        if self.on_cpu is task:
            ctx = self.uc.context_save()
            if self.syscall_next is not None:
                ctx.reg_write(self._rip, self.syscall_next)
            return pickle.dumps(ctx.__getstate__())
        return pickle.dumps(self.context(task).__getstate__())

    def restore_fpu(self, task: Process, state: object) -> None:
        assert isinstance(state, bytes)
        if self.on_cpu is task:
            self._restore = state
            self.uc.emu_stop()
            return
        keep = {name: self.context(task).reg_read(reg) for name, reg in self.reg_ids.items()}
        ctx = UcContext.__new__(UcContext)
        ctx.__setstate__(pickle.loads(state))
        for name, value in keep.items():
            ctx.reg_write(self.reg_ids[name], value)
        self._contexts[task.pid] = ctx

    def flush_tlb(self) -> None:
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)

    def flush_icache(self) -> None:
        self.uc.ctl_flush_tb()

    def release(self, task: Process) -> None:
        self._contexts.pop(task.pid, None)

    # ---- running --------------------------------------------------------------------------
    def run(self, task: Process, max_insns: int = 0, timeout_us: int = 0) -> None:
        """Run `task` until it stops: a system call or fault that needs the scheduler, a
        signal, exit, `max_insns` instructions or `timeout_us` (0: no limit)."""
        uc = self.uc
        ctx = self.context(task)
        # No exception is in flight when a task is resumed: a stale record (a context saved
        # while QEMU still held one, or a frame's state put back by rt_sigreturn) would turn
        # the next #PF into a double or triple fault.
        _ctx_int(ctx, self._old_off).value = -1
        uc.context_restore(ctx)
        self._switch_mm(task)
        self.on_cpu = task
        self.pending.clear()
        self._fresh = None
        self._restore = None
        self.stop_reason = ""
        machine = task.machine
        machine.kmem.current = task.acct
        counter = self._counter(machine)
        before = counter.count if counter is not None else 0
        if counter is not None:
            counter.set_limit(machine.max_instructions or None)
        started = time.perf_counter_ns()
        try:
            if uc.reg_read(self._rip) == self.never:
                # emu_start would stop at once without fetching (it is its `until` address),
                # and the task would be run again forever; a CPU raises #GP there.
                do_trap(task, VEC_GP, 0, self.never, "")
            else:
                self._emulate(task, max_insns, timeout_us)
        except UcError as exc:  # the emulator itself gave up: the task gets SIGILL
            self.stop_reason = f"emulator: {exc}"
            do_trap(task, VEC_UD, 0, uc.reg_read(self._rip), str(exc))
        finally:
            self.on_cpu = None
            task.host_ns += time.perf_counter_ns() - started
            if counter is not None:
                task.insns += counter.count - before
                machine.insns = counter.count
        self._save(task)

    def _counter(self, machine: Machine) -> InstructionCounter | None:
        """The native instruction counter, installed the first time the machine wants a count
        or an instruction budget (it costs a helper call per instruction)."""
        if self.counter is None and (machine.count_instructions or machine.max_instructions):
            if insn_counter_available():
                self.counter = InstructionCounter(self.uc)
        return self.counter

    def _save(self, task: Process) -> None:
        if task.pid not in self._contexts and not task.alive:
            return
        ctx = self.context(task)
        if self._fresh is not None:
            ctx = self._contexts[task.pid] = clone_context(self.template)
            ctx.reg_write(self._rip, self._fresh[0])
            ctx.reg_write(self._rsp, self._fresh[1])
        else:
            self.uc.context_update(ctx)
            if self._restore is not None:
                keep = {name: ctx.reg_read(reg) for name, reg in self.reg_ids.items()}
                ctx.__setstate__(pickle.loads(self._restore))
                for name, value in keep.items():
                    ctx.reg_write(self.reg_ids[name], value)
        for name, value in self.pending.items():
            ctx.reg_write(self.reg_ids[name], value)
        self.pending.clear()

    def _on_intr(self, uc: Uc, intno: int, _data: object) -> None:
        task = self.on_cpu
        assert task is not None
        self._exception(uc, task, intno, self._accept_exception(uc))

    def _accept_exception(self, uc: Uc) -> int:
        """The exception's error code, and QEMU's record of it cleared (it is "delivered")."""
        scratch = self._scratch
        uc.context_update(scratch)
        error_code = self._scratch_err.value & 0xFFFF
        self._scratch_old.value = -1
        uc.context_restore(scratch)
        return error_code

    def _hardware_page_fault(self, uc: Uc, task: Process, error_code: int, ip: int) -> None:
        """A #PF from QEMU's own page walk: CR2 and the error code into exc_page_fault; the
        instruction is retried if it was resolved (so it is counted once)."""
        if self.counter is not None:
            self.counter.state.count -= 1  # the faulting instruction did not complete
        if exc_page_fault(task, self.fast.read(x.UC_X86_REG_CR2), error_code, ip):
            if task.need_stop:
                uc.emu_stop()
            return
        uc.emu_stop()

    def _exception(self, uc: Uc, task: Process, intno: int, error_code: int) -> None:
        """A #PF to the page-fault path, anything else to its signal (do_trap)."""
        ip = self.fast.read(self._rip)
        if intno == VEC_PF:
            self._page_fault(uc, task, error_code, ip)
            return
        do_trap(task, intno, error_code, ip, "")
        uc.emu_stop()

    def _on_syscall(self, uc: Uc, _data: object) -> None:
        task = self.on_cpu
        assert task is not None
        fast = self.fast
        nr, *args, rip = fast.read_many(_SYSCALL_REGS)  # rip: the `syscall` instruction itself
        self.syscall_next = rip + 2
        try:
            ret = do_syscall_64(task, nr, args)
        finally:
            self.syscall_next = None
        if ret is None:  # blocked: execute the `syscall` again when woken
            self.pending["rip"] = rip
            uc.emu_stop()
            return
        fast.write(RAX, ret & U64)
        fast.write(RCX, rip + 2)
        fast.write(R11, fast.read(RFLAGS))
        if task.need_stop:
            uc.emu_stop()
