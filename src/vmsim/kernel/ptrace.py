"""What the kernel needs from a CPU engine (arch/x86/include/asm/ptrace.h, processor.h).

The kernel never imports an emulator. A task's user registers are a
`PtRegs` (struct pt_regs, by register name); the engine that runs tasks is a
`CpuEngine`. The engine enters the kernel only through the doors a real CPU
has: a page fault (`kernel.traps.exc_page_fault`), another exception
(`kernel.traps.do_trap`) and the `syscall` instruction
(`kernel.syscalls.do_syscall_64`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

#: The general registers of struct pt_regs (x86-64), in user_regs_struct order.
GPRS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
        "rdx", "rsi", "rdi")


class PtRegs(Protocol):
    """A task's user registers: general registers, rip, rsp, rflags, fs_base, gs_base."""

    def get(self, name: str) -> int: ...

    def set(self, name: str, value: int) -> None: ...


class CpuEngine(Protocol):
    """An execution engine for user tasks (one CPU)."""

    name: str

    def run(self, task: Process, max_insns: int = 0, timeout_us: int = 0) -> None:
        """Run `task` in user mode until it blocks, exits or needs the kernel, or has run
        `max_insns` instructions or `timeout_us` microseconds (0: no limit)."""

    def regs(self, task: Process) -> PtRegs:
        """The task's registers (live while it is on the CPU, saved otherwise)."""

    def start_thread(self, task: Process, ip: int, sp: int) -> None:
        """start_thread(): a fresh user context (execve) that starts at `ip` with stack `sp`."""

    def copy_thread(self, parent: Process, child: Process) -> None:
        """copy_thread(): the child resumes where the parent is, with rax = 0."""

    def save_fpu(self, task: Process) -> object:
        """The task's extended (FPU/SSE) state, opaque, for a signal frame."""

    def restore_fpu(self, task: Process, state: object) -> None:
        """Put back what `save_fpu` returned (rt_sigreturn); general registers are kept."""

    def flush_tlb(self) -> None:
        """Drop every cached translation (a CR3 write without PCID)."""

    def flush_icache(self) -> None:
        """Forget translated code: the kernel wrote to memory that may hold instructions."""

    def release(self, task: Process) -> None:
        """Forget a task that has exited."""
