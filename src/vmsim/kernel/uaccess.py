"""Kernel access to user memory (arch/x86/include/asm/uaccess.h, lib/usercopy.c).

A system call's pointer argument is read or written by the kernel through
the task's page tables, with vmsim's walker, exactly as the CPU would in
kernel mode. A miss enters the fault handler (`do_user_addr_fault` with a
kernel-mode error code); if the fault cannot be resolved, the exception
table's fix-up makes the copy fail and the system call returns -EFAULT —
the lecture's "bad system call parameter -> fix-up code". The task is not
signalled.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from vmsim.arch.paging import translate
from vmsim.mm.fault import do_user_addr_fault
from vmsim.mm.vma import VM_EXEC

if TYPE_CHECKING:
    from vmsim.kernel.task import Process

EFAULT = 14
ENAMETOOLONG = 36
READ, WRITE = 0, 1
#: TASK_SIZE_MAX on x86-64 with 4-level tables: the highest user address + 1.
TASK_SIZE_MAX = 0x7FFF_FFFF_F000


def access_ok(addr: int, size: int) -> bool:
    """access_ok(): the whole range lies in user space (checked before any copy)."""
    return 0 <= addr and size >= 0 and addr + size <= TASK_SIZE_MAX


def _kernel_translate(task: Process, addr: int, access: int) -> int:
    """The physical address for a kernel-mode access to user `addr`; -1 after a failed fault."""
    kmem = task.machine.kmem
    mm = task.mm
    for _ in range(4):
        phys, err = translate(kmem.mode, kmem.phys, mm.pgd, addr, access, user=False)
        if phys >= 0:
            return phys
        outcome = do_user_addr_fault(mm, addr, access, err)
        if not outcome.ok:
            return -1  # fixup_exception(): the copy stops here
    return -1


def copy_from_user(task: Process, addr: int, n: int) -> bytes | None:
    """copy_from_user(): n bytes, or None (-> -EFAULT) if any of them is inaccessible."""
    if n == 0:
        return b""
    if not access_ok(addr, n):
        return None
    data = copy_from_user_partial(task, addr, n)
    return data if len(data) == n else None


def copy_to_user(task: Process, addr: int, data: bytes) -> bool:
    """copy_to_user(): False (-> -EFAULT) if any byte is not writable. Bytes before the
    failing page may have been written, as in Linux."""
    if not data:
        return True
    return access_ok(addr, len(data)) and copy_to_user_partial(task, addr, data) == len(data)


def copy_to_user_partial(task: Process, addr: int, data: bytes) -> int:
    """copy_to_user() as the read paths use it (filemap_read, pipe_read): how many leading
    bytes were written before the first inaccessible one (Linux returns the rest's length;
    a caller returns the short count, or -EFAULT if it is 0)."""
    n = len(data)
    if n == 0 or not access_ok(addr, n):
        return 0
    kmem = task.machine.kmem
    ps = kmem.page_size
    pos, end = addr, addr + n
    while pos < end:
        chunk = min(ps - (pos & (ps - 1)), end - pos)
        phys = _kernel_translate(task, pos, WRITE)
        if phys < 0:
            break
        kmem.phys.write(phys, data[pos - addr:pos - addr + chunk])
        pos += chunk
    vma = task.mm.find_vma(addr)
    if pos > addr and vma is not None and vma.vm_flags & VM_EXEC and task.machine.cpu is not None:
        task.machine.cpu.flush_icache()
    return pos - addr


def copy_from_user_partial(task: Process, addr: int, n: int) -> bytes:
    """copy_from_user() as the write paths use it (generic_perform_write, pipe_write): the
    leading bytes that could be read before the first inaccessible one."""
    if n == 0 or not access_ok(addr, n):
        return b""
    kmem = task.machine.kmem
    ps = kmem.page_size
    out = bytearray()
    pos, end = addr, addr + n
    while pos < end:
        chunk = min(ps - (pos & (ps - 1)), end - pos)
        phys = _kernel_translate(task, pos, READ)
        if phys < 0:
            break
        out += kmem.phys.read(phys, chunk)
        pos += chunk
    return bytes(out)


def clear_user(task: Process, addr: int, n: int) -> bool:
    """clear_user(): zero n bytes of user memory."""
    return copy_to_user(task, addr, bytes(n))


def strncpy_from_user(task: Process, addr: int, limit: int) -> bytes | int:
    """strncpy_from_user(): the NUL-terminated string at addr (without the NUL), -EFAULT,
    or -ENAMETOOLONG if no NUL comes within `limit` bytes."""
    kmem = task.machine.kmem
    ps = kmem.page_size
    out = bytearray()
    pos = addr
    while len(out) < limit:
        if not access_ok(pos, 1):
            return -EFAULT
        chunk = min(ps - (pos & (ps - 1)), limit - len(out))
        phys = _kernel_translate(task, pos, READ)
        if phys < 0:
            return -EFAULT
        piece = kmem.phys.read(phys, chunk)
        nul = piece.find(b"\0")
        if nul >= 0:
            return bytes(out + piece[:nul])
        out += piece
        pos += chunk
    return -ENAMETOOLONG


def get_user_u64(task: Process, addr: int) -> int | None:
    raw = copy_from_user(task, addr, 8)
    return None if raw is None else struct.unpack("<Q", raw)[0]


def put_user_u64(task: Process, addr: int, value: int) -> bool:
    return copy_to_user(task, addr, struct.pack("<Q", value & ((1 << 64) - 1)))


def get_user_u32(task: Process, addr: int) -> int | None:
    raw = copy_from_user(task, addr, 4)
    return None if raw is None else struct.unpack("<I", raw)[0]


def put_user_u32(task: Process, addr: int, value: int) -> bool:
    return copy_to_user(task, addr, struct.pack("<I", value & 0xFFFF_FFFF))


def strings_from_user(task: Process, addr: int, max_count: int = 0x7FFF_FFFF,
                      max_len: int = 128 * 1024) -> list[bytes] | int:
    """A NULL-terminated user array of string pointers (argv, envp); -EFAULT or -E2BIG."""
    out: list[bytes] = []
    if addr == 0:
        return out
    total = 0
    while True:
        ptr = get_user_u64(task, addr + 8 * len(out))
        if ptr is None:
            return -EFAULT
        if ptr == 0:
            return out
        s = strncpy_from_user(task, ptr, max_len)
        if isinstance(s, int):
            return -7 if s == -ENAMETOOLONG else s  # E2BIG
        total += len(s) + 1
        out.append(s)
        if len(out) > max_count or total > 32 * max_len:
            return -7


__all__ = ["access_ok", "clear_user", "copy_from_user", "copy_from_user_partial",
           "copy_to_user", "copy_to_user_partial",
           "get_user_u32", "get_user_u64", "put_user_u32", "put_user_u64", "strings_from_user",
           "strncpy_from_user"]
