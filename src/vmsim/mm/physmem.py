"""Physical RAM: one contiguous anonymous mapping shared with every user.

Page tables, program text, heap data and page-cache pages all live in this
buffer; a CPU emulator can map the very same bytes (`address`) without a
copy. Entries are read and written in place through typed views.
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np


def parse_size(size: int | str) -> int:
    """Bytes from an int or a string such as "256M", "1G", "64K"."""
    if isinstance(size, int):
        return size
    text = size.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise ValueError(f"bad memory size {size!r}: use e.g. '256M' or an integer") from None


#: madvise(2) advice (Linux 5.14+): populate (prefault) page tables writable.
MADV_POPULATE_WRITE = 23
POPULATE_CHUNK = 2 << 20


class PhysMem:
    """RAM of `size` bytes, page-aligned, zero-filled at boot."""

    def __init__(self, size: int, page_size: int = 4096, prefault: bool = False) -> None:
        if size <= 0 or size % page_size:
            raise ValueError(f"PhysMem: size {size} is not a positive multiple of {page_size}")
        self.size = size
        self.page_size = page_size
        # prefault (MAP_POPULATE) makes the host back all of RAM up front, so a simulated
        # fault never pays for a host fault on the first touch of its frame; it costs the
        # whole RAM size in host memory at once, so it is off by default.
        populate = getattr(mmap, "MAP_POPULATE", 0) if prefault else 0
        self.buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
        self.mv = memoryview(self.buf)
        self.q = self.mv.cast("Q")
        self.l = self.mv.cast("I")
        self.u8 = np.frombuffer(self.buf, dtype=np.uint8)
        self.u64 = np.frombuffer(self.buf, dtype=np.uint64)
        self._zero = bytes(page_size)
        # Chunks of RAM the host has already backed (see zero_frame), one byte per 2 MiB.
        self._populated = bytearray(size // POPULATE_CHUNK + 1)

    @property
    def address(self) -> int:
        """Host virtual address of RAM byte 0 (for Unicorn's mem_map_ptr)."""
        return ctypes.addressof(ctypes.c_char.from_buffer(self.buf))

    def read_entry(self, phys: int, size: int) -> int:
        """A page-table entry of `size` (4 or 8) bytes at `phys`, little-endian."""
        if size == 8:
            return self.q[phys >> 3]
        return self.l[phys >> 2]

    def write_entry(self, phys: int, size: int, value: int) -> None:
        if size == 8:
            self.q[phys >> 3] = value
        else:
            self.l[phys >> 2] = value

    def read(self, phys: int, n: int) -> bytes:
        return bytes(self.mv[phys:phys + n])

    def write(self, phys: int, data: bytes | bytearray | memoryview) -> None:
        self.mv[phys:phys + len(data)] = data

    def zero_frame(self, pfn: int) -> None:
        """Zero a frame. The first frame zeroed in each 2 MiB of RAM asks the host to back
        the whole chunk at once (MADV_POPULATE_WRITE): one host call instead of a host
        page fault on the first touch of each of its 512 frames."""
        ps = self.page_size
        off = pfn * ps
        chunk = off // POPULATE_CHUNK
        if not self._populated[chunk]:
            self._populated[chunk] = 1
            try:
                self.buf.madvise(MADV_POPULATE_WRITE, chunk * POPULATE_CHUNK,
                                 min(POPULATE_CHUNK, self.size - chunk * POPULATE_CHUNK))
            except OSError:  # a host kernel before 5.14: the frames fault in one by one
                pass
        self.mv[off:off + ps] = self._zero

    def copy_frame(self, dst_pfn: int, src_pfn: int) -> None:
        """copy_user_highpage: the bytes of one frame into another."""
        ps = self.page_size
        self.mv[dst_pfn * ps:(dst_pfn + 1) * ps] = self.mv[src_pfn * ps:(src_pfn + 1) * ps]

    def frame(self, pfn: int) -> memoryview:
        ps = self.page_size
        return self.mv[pfn * ps:(pfn + 1) * ps]
