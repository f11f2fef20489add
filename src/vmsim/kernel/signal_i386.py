"""The i386 signal frame: ia32_setup_rt_frame() and sys_rt_sigreturn() of a 32-bit task
(arch/x86/kernel/signal_32.c, arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h).

struct rt_sigframe_ia32, at a stack address 4 below a 16-byte boundary (as
just after a ``call``)::

    0    pretcode  (the handler's return address: sa_restorer with SA_RESTORER,
                    else `retcode` in the frame)
    4    sig, 8 pinfo, 12 puc  (the handler's three stack arguments)
    16   struct siginfo (128 bytes, the 32-bit layout: the union at offset 12)
    144  struct ucontext_ia32: uc_flags, uc_link, uc_stack (sp, flags, size),
         uc_mcontext = struct sigcontext_32 (88 bytes), uc_sigmask (8 bytes)
    260  retcode: ``popl %eax; movl $__NR_rt_sigreturn, %eax; int $0x80``

The FPU/SSE state is not written into the frame: the engine keeps the whole
saved CPU state for the frame's address, as the x86-64 frame does
(`SignalState.saved_fpu`), and rt_sigreturn puts it back. Segment selectors
are recorded but not reloaded from the frame.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from vmsim.kernel.signal import (
    FIX_EFLAGS,
    SA_RESTORER,
    SA_SIGINFO,
    SI_KERNEL,
    SIGBUS,
    SIGCHLD,
    SIGFPE,
    SIGILL,
    SIGKILL,
    SIGSEGV,
    SIGSTOP,
    SIGTRAP,
    SS_AUTODISARM,
    SS_DISABLE,
    SigAction,
    SigInfo,
    _altstack_for,
    _s32,
    do_sigaltstack,
    force_sig_fault,
    sigbit,
)
from vmsim.kernel.uaccess import copy_from_user, copy_to_user

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

NR_RT_SIGRETURN_32 = 173
INFO_OFF32 = 16
UC_OFF32 = INFO_OFF32 + 128
UC_STACK_OFF32 = UC_OFF32 + 8
MCONTEXT_OFF32 = UC_OFF32 + 20
SIGMASK_OFF32 = MCONTEXT_OFF32 + 88
RETCODE_OFF32 = SIGMASK_OFF32 + 8
FRAME_SIZE32 = RETCODE_OFF32 + 8
#: popl %eax; movl $173, %eax; int $0x80 (the frame's own return trampoline)
RETCODE32 = bytes.fromhex("58b8ad000000cd80")
#: sigcontext_32's general registers, in order after the four segment words.
GREGS32 = ("rdi", "rsi", "rbp", "rsp", "rbx", "rdx", "rcx", "rax")
UC_FP_XSTATE = 1
UC_SIGCONTEXT_SS = 2
UC_STRICT_RESTORE_SS = 4


def pack_siginfo32(info: SigInfo) -> bytes:
    """copy_siginfo_to_user32(): struct compat_siginfo (128 bytes; the union at 12)."""
    if info.raw:
        return struct.pack("<i", info.signo) + info.raw[4:128]
    head = struct.pack("<iii", info.signo, 0, info.code)
    if info.signo in (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP) and info.code > 0:
        body = struct.pack("<I", info.addr & 0xFFFF_FFFF)
    elif info.signo == SIGCHLD and info.code > 0:
        body = struct.pack("<iIiII", info.pid, info.uid, info.status, 0, 0)
    else:
        body = struct.pack("<iI", info.pid, info.uid)
    return (head + body).ljust(128, b"\0")


def _segments(task: Process) -> tuple[int, int, int, int, int, int]:
    """gs, fs, es, ds, cs, ss of the task (read from the CPU or its saved context)."""
    from unicorn import x86_const as x

    cpu = task.machine.cpu
    assert cpu is not None
    ids = (x.UC_X86_REG_GS, x.UC_X86_REG_FS, x.UC_X86_REG_ES, x.UC_X86_REG_DS,
           x.UC_X86_REG_CS, x.UC_X86_REG_SS)
    src = cpu.uc if cpu.on_cpu is task else cpu.context(task)
    gs, fs, es, ds, cs, ss = (src.reg_read(r) & 0xFFFF for r in ids)
    return gs, fs, es, ds, cs, ss


def _sigcontext32(task: Process, info: SigInfo, g: dict[str, int], user_sp: int,
                  saved_mask: int) -> bytes:
    """setup_sigcontext() of a 32-bit task: struct sigcontext_32 (88 bytes)."""
    gs, fs, es, ds, cs, ss = _segments(task)
    sigcontext = struct.pack("<HHHHHHHH", gs, 0, fs, 0, es, 0, ds, 0)
    sigcontext += struct.pack("<8I", *(g[n] for n in GREGS32))
    sigcontext += struct.pack("<III", info.trapno, info.error_code, g["rip"])
    sigcontext += struct.pack("<HHII", cs, 0, g["rflags"], user_sp)
    sigcontext += struct.pack("<HHIII", ss, 0, 0, saved_mask & 0xFFFF_FFFF,
                              info.addr & 0xFFFF_FFFF if info.trapno == 14 else 0)
    assert len(sigcontext) == 88
    return sigcontext


def _saved_mask(task: Process) -> int:
    saved_mask = task.signal.blocked
    if task.restore_sigmask_after_signal is not None:  # rt_sigsuspend: the mask to go back to
        saved_mask = task.restore_sigmask_after_signal
        task.restore_sigmask_after_signal = None
    return saved_mask


def _keep_fpu(task: Process, frame: int, user_sp: int) -> None:
    saved = task.signal.saved_fpu
    for stale in [f for f in saved if f < user_sp]:
        del saved[stale]  # frames below the interrupted sp were left by siglongjmp
    while len(saved) >= 256:
        del saved[next(iter(saved))]
    cpu = task.machine.cpu
    assert cpu is not None
    saved[frame] = cpu.save_fpu(task)


#: struct sigframe_ia32: pretcode, sig, sigcontext_32, the unused 624-byte _fpstate_32,
#: extramask[1] (the mask's high word), retcode[8].
SC_OFF = 8
EXTRAMASK_OFF = SC_OFF + 88 + 624
SFRAME_RETCODE_OFF = EXTRAMASK_OFF + 4
SFRAME_SIZE = SFRAME_RETCODE_OFF + 8
#: popl %eax; movl $__NR_sigreturn, %eax; int $0x80
RETCODE_SIGRETURN = bytes.fromhex("58b877000000cd80")


def ia32_setup_frame(task: Process, signo: int, info: SigInfo, act: SigAction) -> bool:
    """ia32_setup_frame(): the non-RT frame of a handler installed without SA_SIGINFO
    (eax = sig and the signal number on the stack; returns through sigreturn)."""
    regs = task.regs
    user_sp = regs.get("rsp") & 0xFFFF_FFFF
    sp = _altstack_for(task, act, user_sp)
    frame = ((sp - SFRAME_SIZE + 4) & ~0xF) - 4
    g = {name: regs.get(name) & 0xFFFF_FFFF for name in (*GREGS32, "rip", "rflags")}
    saved_mask = _saved_mask(task)
    restorer = act.restorer if act.flags & SA_RESTORER else frame + SFRAME_RETCODE_OFF
    body = (struct.pack("<Ii", restorer & 0xFFFF_FFFF, signo)
            + _sigcontext32(task, info, g, user_sp, saved_mask) + bytes(624)
            + struct.pack("<I", saved_mask >> 32) + RETCODE_SIGRETURN)
    assert len(body) == SFRAME_SIZE
    if not copy_to_user(task, frame, body):
        return False
    _keep_fpu(task, frame, user_sp)
    if task.signal.altstack[1] & SS_AUTODISARM:
        task.signal.altstack = (0, SS_DISABLE, 0)
    regs.set("rax", signo)
    regs.set("rdx", 0)
    regs.set("rcx", 0)
    regs.set("rsp", frame)
    regs.set("rip", act.handler & 0xFFFF_FFFF)
    regs.set("rflags", g["rflags"] & ~(0x100 | 0x400 | 0x40000))  # TF, DF, AC
    return True


def ia32_sys_sigreturn(task: Process, *_: int) -> int:
    """sys_sigreturn() of a 32-bit task: the sigframe_ia32 at esp - 8 (pretcode and the
    signal number were popped); the mask is sc.oldmask | extramask << 32."""
    regs = task.regs
    frame = (regs.get("rsp") - 8) & 0xFFFF_FFFF
    raw = copy_from_user(task, frame, SFRAME_SIZE)
    if raw is None:
        force_sig_fault(task, SIGSEGV, SI_KERNEL, 0)
        return 0
    low = struct.unpack_from("<I", raw, SC_OFF + 80)[0]
    high = struct.unpack_from("<I", raw, EXTRAMASK_OFF)[0]
    return _restore(task, frame, raw, SC_OFF, (high << 32) | low, None)


def _restore(task: Process, frame: int, raw: bytes, sc_off: int, blocked: int,
             altstack: tuple[int, int, int] | None) -> int:
    """restore_sigcontext() + the mask (+ restore_altstack()); the saved eax."""
    regs = task.regs
    fpu = task.signal.saved_fpu.pop(frame, None)
    cpu = task.machine.cpu
    if fpu is not None and cpu is not None:
        cpu.restore_fpu(task, fpu)
    values = dict(zip(GREGS32, struct.unpack_from("<8I", raw, sc_off + 16), strict=True))
    (eip,) = struct.unpack_from("<I", raw, sc_off + 56)
    (eflags,) = struct.unpack_from("<I", raw, sc_off + 64)
    for name, value in values.items():
        regs.set(name, value)
    regs.set("rip", eip)
    old = regs.get("rflags")
    regs.set("rflags", (old & ~FIX_EFLAGS) | (eflags & FIX_EFLAGS))
    task.signal.blocked = blocked & ~(sigbit(SIGKILL) | sigbit(SIGSTOP))
    if altstack is not None:
        do_sigaltstack(task, altstack, values["rsp"])
    task.need_stop = True
    return values["rax"]


def ia32_setup_rt_frame(task: Process, signo: int, info: SigInfo, act: SigAction) -> bool:
    """ia32_setup_rt_frame(): build the frame, point esp at it and eip at the handler with
    eax = sig, edx = &info, ecx = &uc (for a regparm(3) handler, as Linux sets them).
    Without SA_SIGINFO the handler gets the older, non-RT frame (`ia32_setup_frame`)."""
    if not act.flags & SA_SIGINFO:
        return ia32_setup_frame(task, signo, info, act)
    regs = task.regs
    user_sp = regs.get("rsp") & 0xFFFF_FFFF
    sp = _altstack_for(task, act, user_sp)
    frame = ((sp - FRAME_SIZE32 + 4) & ~0xF) - 4  # align_sigframe(): (sp + 4) % 16 == 0
    g = {name: regs.get(name) & 0xFFFF_FFFF for name in (*GREGS32, "rip", "rflags")}
    saved_mask = _saved_mask(task)
    sigcontext = _sigcontext32(task, info, g, user_sp, saved_mask)
    ss_sp, ss_flags, ss_size = task.signal.altstack
    ucontext = struct.pack("<IIIiI", 0, 0, ss_sp & 0xFFFF_FFFF, _s32(ss_flags),
                           ss_size & 0xFFFF_FFFF) + sigcontext + struct.pack("<Q", saved_mask)
    restorer = act.restorer if act.flags & SA_RESTORER else frame + RETCODE_OFF32
    body = (struct.pack("<IiII", restorer & 0xFFFF_FFFF, signo, frame + INFO_OFF32,
                        frame + UC_OFF32) + pack_siginfo32(info) + ucontext + RETCODE32)
    assert len(body) == FRAME_SIZE32
    if not copy_to_user(task, frame, body):
        return False
    _keep_fpu(task, frame, user_sp)
    if ss_flags & SS_AUTODISARM:
        task.signal.altstack = (0, SS_DISABLE, 0)
    regs.set("rax", signo)
    regs.set("rdx", frame + INFO_OFF32)
    regs.set("rcx", frame + UC_OFF32)
    regs.set("rsp", frame)
    regs.set("rip", act.handler & 0xFFFF_FFFF)
    regs.set("rflags", g["rflags"] & ~(0x100 | 0x400 | 0x40000))  # TF, DF, AC
    return True


def ia32_sys_rt_sigreturn(task: Process, *_: int) -> int:
    """sys_rt_sigreturn() of a 32-bit task: the frame is at esp - 4 (the handler's ``ret``
    popped pretcode); registers, mask and alternate stack come back from it."""
    regs = task.regs
    frame = (regs.get("rsp") - 4) & 0xFFFF_FFFF
    raw = copy_from_user(task, frame, FRAME_SIZE32)
    if raw is None:
        force_sig_fault(task, SIGSEGV, SI_KERNEL, 0)
        return 0
    (blocked,) = struct.unpack_from("<Q", raw, SIGMASK_OFF32)
    ss_sp, ss_flags, ss_size = struct.unpack_from("<IiI", raw, UC_STACK_OFF32)
    return _restore(task, frame, raw, MCONTEXT_OFF32, blocked,
                    (ss_sp, ss_flags & 0xFFFF_FFFF, ss_size))
