"""Counting executed instructions without calling Python per instruction.

Unicorn has no instruction counter, and a Python `UC_HOOK_CODE` callback
costs microseconds per instruction. This installs a native callback instead:
25 bytes of x86-64 machine code in an executable page of the host process
(so it needs an x86-64 host, which `available()` tells) that increments a
64-bit counter and, once the counter reaches a limit, tail-calls
`uc_emu_stop`. QEMU still calls it once per instruction (a helper call in
the translated code), so a run with counting is slower; it is on only when
the machine is asked for an instruction budget or count.

    inc  qword [rcx]          ; user_data->count++   (rcx: the 4th argument)
    mov  rax, [rcx]
    cmp  rax, [rcx + 8]       ; user_data->limit
    jb   done
    mov  rax, uc_emu_stop
    jmp  rax                  ; uc_emu_stop(uc)      (rdi: the 1st argument)
done:
    ret
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import struct

from unicorn import UC_HOOK_CODE, Uc


class _Counter(ctypes.Structure):
    _fields_ = [("count", ctypes.c_uint64), ("limit", ctypes.c_uint64)]


def available() -> bool:
    """The native callback is x86-64 machine code: only an x86-64 host can run it."""
    return platform.machine() in ("x86_64", "AMD64")


class InstructionCounter:
    """A native UC_HOOK_CODE counter with an optional limit that stops emulation."""

    def __init__(self, uc: Uc) -> None:
        from unicorn.unicorn_py3.unicorn import uclib

        if not available():
            raise RuntimeError("instruction counting needs an x86-64 host")
        self.uc = uc
        self.state = _Counter(0, (1 << 64) - 1)
        stop = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value
        code = (bytes.fromhex("48ff01" "488b01" "483b4108" "720c" "48b8")
                + struct.pack("<Q", stop) + bytes.fromhex("ffe0" "c3"))
        self._page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._page.write(code)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        hook_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                                  ctypes.c_void_p)
        self._callback = hook_t(address)
        self._handle = ctypes.c_size_t()
        err = uclib.uc_hook_add(uc._uch, ctypes.byref(self._handle), UC_HOOK_CODE,
                                ctypes.cast(self._callback, ctypes.c_void_p),
                                ctypes.cast(ctypes.pointer(self.state), ctypes.c_void_p),
                                ctypes.c_uint64(1), ctypes.c_uint64(0))
        if err:
            raise RuntimeError(f"uc_hook_add failed: {err}")

    @property
    def count(self) -> int:
        return self.state.count

    def set_limit(self, limit: int | None) -> None:
        """Stop emulation when the count reaches `limit` (None: never)."""
        self.state.limit = (1 << 64) - 1 if limit is None else max(0, limit)

    def reached(self) -> bool:
        return self.state.count >= self.state.limit
