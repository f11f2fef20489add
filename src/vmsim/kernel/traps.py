"""The CPU's way into the kernel for exceptions (arch/x86/mm/fault.c, arch/x86/kernel/traps.c).

`exc_page_fault` is the #PF handler for user-mode faults of a running
program: it resolves the fault through `do_user_addr_fault` or queues
SIGSEGV/SIGBUS with `si_code` and `si_addr`, and logs the kernel's line
(`show_signal_msg`) when the signal will kill the task. `do_trap` maps the
other exceptions to their signals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.kernel.oom_kill import out_of_memory
from vmsim.kernel.signal import (
    SI_KERNEL,
    SIG_DFL,
    SIG_IGN,
    SIGBUS,
    SIGFPE,
    SIGILL,
    SIGKILL,
    SIGSEGV,
    SIGTRAP,
    force_sig_fault,
)
from vmsim.kernel.uaccess import TASK_SIZE_MAX
from vmsim.mm.fault import PF_INSTR, PF_PROT, PF_WRITE, VmFault, do_user_addr_fault
from vmsim.mm.vma import VM_EXEC

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

READ, WRITE, EXEC = 0, 1, 2
ILL_ILLOPN = 2
FPE_INTDIV = 1
TRAP_BRKPT = 1

#: Exception vector -> (signal, si_code, name in the kernel's trap message).
TRAPS = {0: (SIGFPE, FPE_INTDIV, "divide error"), 1: (SIGTRAP, TRAP_BRKPT, "debug"),
         3: (SIGTRAP, SI_KERNEL, "int3"), 4: (SIGSEGV, SI_KERNEL, "overflow"),
         5: (SIGSEGV, SI_KERNEL, "bounds"), 6: (SIGILL, ILL_ILLOPN, "invalid opcode"),
         7: (SIGSEGV, SI_KERNEL, "device not available"),
         13: (SIGSEGV, SI_KERNEL, "general protection fault"),
         16: (SIGFPE, 0, "coprocessor error"), 17: (SIGBUS, 0, "alignment check"),
         19: (SIGFPE, 0, "simd exception")}


def exc_page_fault(task: Process, address: int, error_code: int, ip: int) -> bool:
    """A #PF from user mode: True if resolved (retry the instruction), else the task now
    has SIGSEGV/SIGBUS pending (or is killed by the OOM killer)."""
    access = EXEC if error_code & PF_INSTR else WRITE if error_code & PF_WRITE else READ
    outcome = do_user_addr_fault(task.mm, address, access, error_code)
    if outcome.ok:
        vma = task.mm.find_vma(address)
        if vma is not None and vma.vm_flags & VM_EXEC and task.machine.cpu is not None:
            task.machine.cpu.flush_icache()  # a frame may now hold code QEMU translated before
        return True
    if outcome.result & VmFault.OOM:  # pagefault_out_of_memory(): the OOM killer chooses
        return out_of_memory(task) is not task
    if address >= TASK_SIZE_MAX:
        error_code |= PF_PROT  # __bad_area_nosemaphore(): kernel addresses are protection faults
    if outcome.signo == SIGSEGV and unhandled(task, outcome.signo):
        show_signal_msg(task, outcome.signo, address, error_code, ip)  # do_sigbus() logs nothing
    force_sig_fault(task, outcome.signo, outcome.si_code, address, 14, error_code)
    return False


def _kill_info():
    from vmsim.kernel.signal import SigInfo

    return SigInfo(SIGKILL, SI_KERNEL)


def unhandled(task: Process, signo: int) -> bool:
    """unhandled_signal(): is there no user handler for this signal (SIG_DFL or SIG_IGN)? The
    blocked mask does not count: a blocked fault signal kills without the log line."""
    return task.signal.action(signo).handler in (SIG_DFL, SIG_IGN)


def _vma_suffix(task: Process, ip: int) -> str:
    """print_vma_addr() (Linux 6.9+): " in FILE[OFFSET,START+SIZE]" for the file VMA holding
    the instruction, OFFSET being the instruction's offset in the file."""
    vma = task.mm.find_vma(ip)
    if vma is None or vma.vm_start > ip or vma.vm_file is None:
        return ""
    name = vma.vm_file.path.rsplit("/", 1)[-1]
    offset = ip - vma.vm_start + (vma.vm_pgoff << task.machine.kmem.page_shift)
    return f" in {name}[{offset:x},{vma.vm_start:x}+{vma.vm_end - vma.vm_start:x}]"


def show_signal_msg(task: Process, signo: int, address: int, error_code: int, ip: int) -> None:
    """show_signal_msg(): the kernel's one line about a user fault that kills the task."""
    what = "segfault" if signo == SIGSEGV else "bus error"
    sp = task.regs.get("rsp")
    line = (f"{task.comm}[{task.pid}]: {what} at {address:x} ip {ip:016x} sp {sp:016x} "
            f"error {error_code:x}{_vma_suffix(task, ip)}")
    task.machine.kernel_log.append(line)
    task.log.append(line)


#: Exceptions whose signal the kernel does not log (debug, x87 and SIMD math errors).
SILENT = frozenset({1, 16, 19})
VEC_GP = 13


def do_trap(task: Process, vector: int, error_code: int, ip: int, detail: str) -> None:
    """do_trap()/exc_general_protection(): an exception other than #PF becomes a signal.
    show_signal() logs it when no handler is set: "trap NAME" for the do_trap() family,
    plain "general protection fault" for #GP. An emulator failure other than an invalid
    instruction (which is #UD) is logged on a line of vmsim's own."""
    signo, code, name = TRAPS.get(vector, (SIGSEGV, SI_KERNEL, f"trap {vector}"))
    if unhandled(task, signo) and vector not in SILENT:
        sp = task.regs.get("rsp")
        kind = "" if vector == VEC_GP or vector not in TRAPS else "trap "
        line = (f"traps: {task.comm}[{task.pid}] {kind}{name} ip:{ip:x} sp:{sp:x} "
                f"error:{error_code:x}{_vma_suffix(task, ip)}")
        task.machine.kernel_log.append(line)
        task.log.append(line)
    if detail and "INSN_INVALID" not in detail:
        line = f"vmsim: {task.comm}[{task.pid}]: {detail}"
        task.machine.kernel_log.append(line)
        task.log.append(line)
    addr = ip if signo in (SIGILL, SIGFPE) or (signo == SIGTRAP and code != SI_KERNEL) else 0
    force_sig_fault(task, signo, code, addr, vector, error_code)
