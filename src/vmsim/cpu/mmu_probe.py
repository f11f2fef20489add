"""What the Unicorn MMU probe harnesses share (`x86_mmu`, `x86_mmu32`, `arm64_mmu`,
`riscv_mmu`).

Each harness maps a host buffer (vmsim's RAM) at guest-physical address 0 with
`mem_map_ptr` under Unicorn's own page-table walker (``UC_TLB_CPU``) and runs one
instruction per probe: `MmuProbe` holds the Unicorn, its interrupt and code hooks and
that one-instruction run (TLB flushed first, so every probe walks the tables afresh).
The calibrations that find a field of QEMU's CPU state in `Uc.context_save()` bytes
build their hand-made tables with `calibration_ram` and look for the slots with
`context_slots`.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from collections.abc import Sequence
from typing import Generic, TypeVar

from unicorn import (
    UC_CTL_IO_WRITE,
    UC_CTL_TLB_FLUSH,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_PROT_ALL,
    UC_TLB_CPU,
    Uc,
)

F = TypeVar("F")


class MmuProbe(Generic[F]):
    """A Unicorn CPU over `ram_size` bytes of host memory at `ram_address` (which
    `keepalive` owns; it must outlive the CPU), probed one instruction at a time.

    A subclass brings the CPU to its probe state, then calls `_hook`; `_capture` says
    what an interrupt records as the probe's fault (of type F), or None for one that is
    not a fault. After `_step`, `_fault` is the first fault recorded (None if none) and
    `_first` the address of the first instruction reached.
    """

    def __init__(self, arch: int, mode: int, ram_address: int, ram_size: int,
                 keepalive: object = None, cpu_model: int | None = None) -> None:
        """`cpu_model` picks Unicorn's CPU model (None: the architecture's default)."""
        self._keepalive = keepalive
        uc = Uc(arch, mode)
        if cpu_model is not None:
            uc.ctl_set_cpu_model(cpu_model)
        uc.ctl_set_tlb_mode(UC_TLB_CPU)
        uc.mem_map_ptr(0, ram_size, UC_PROT_ALL, ram_address)
        self.uc = uc
        self._fault: F | None = None
        self._first: int | None = None
        self._stop_before_first = False

    def _hook(self) -> None:
        """Install the interrupt and code hooks (once the CPU is booted)."""
        self.uc.hook_add(UC_HOOK_INTR, self._on_intr)
        self.uc.hook_add(UC_HOOK_CODE, self._on_code)

    def _capture(self, uc: Uc, intno: int) -> F | None:
        raise NotImplementedError

    def _on_intr(self, uc: Uc, intno: int, _data: object) -> None:
        if self._fault is None:
            self._fault = self._capture(uc, intno)
        uc.emu_stop()

    def _on_code(self, uc: Uc, address: int, _size: int, _data: object) -> None:
        if self._first is None:
            self._first = address
        if self._stop_before_first:
            uc.emu_stop()

    def _step(self, begin: int, stop_before_first: bool = False,
              flush_code: bool = True) -> None:
        """Flush the TLB (and with `flush_code` the translated code: vmsim writes RAM
        behind QEMU's back), then run the one instruction at `begin` (with
        `stop_before_first`, stop before it executes: the fetch alone)."""
        uc = self.uc
        uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
        if flush_code:
            uc.ctl_flush_tb()
        self._fault = None
        self._first = None
        self._stop_before_first = stop_before_first
        uc.emu_start(begin, 0, count=1)


def host_address(buf: mmap.mmap) -> int:
    """The host address of `buf`'s first byte (for `mem_map_ptr`)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


#: RAM of a calibration: four table levels at 0x1000..0x4000, the probe code at 0x5000.
CALIBRATION_RAM = 0x10000
CALIBRATION_ROOT = 0x1000
CALIBRATION_VA = 0x400000


def calibration_ram(table: int, leaves: Sequence[int], code: bytes) -> mmap.mmap:
    """Hand-made 4K tables of 64-bit entries (root 0x1000 -> 0x2000 -> 0x3000 [slot 2] ->
    leaf table 0x4000): leaf i maps VA 0x400000 + i * 4K with entry `leaves[i]`; the
    upper levels are `table` entries. `code` is written at 0x5000."""
    ram = mmap.mmap(-1, CALIBRATION_RAM)
    q = memoryview(ram).cast("Q")
    q[0x1000 // 8] = 0x2000 | table
    q[0x2000 // 8] = 0x3000 | table
    q[0x3000 // 8 + 2] = 0x4000 | table
    for i, leaf in enumerate(leaves):
        q[0x4000 // 8 + i] = leaf
    q.release()
    ram[0x5000:0x5000 + len(code)] = code
    return ram


def context_slots(contexts: Sequence[bytes], expected: Sequence[int], fmt: str = "<i",
                  mask: int = -1) -> list[int]:
    """The 4-aligned offsets at which every saved context holds its expected value
    (``struct`` format `fmt`, the value ANDed with `mask`)."""
    size = struct.calcsize(fmt)
    return [off for off in range(0, len(contexts[0]) - size + 1, 4)
            if all(struct.unpack_from(fmt, ctx, off)[0] & mask == want
                   for ctx, want in zip(contexts, expected, strict=True))]
