"""The user address-space layout of each paging mode, as Linux sets it up.

A mode's hardware geometry lives in `vmsim.arch`; what Linux makes of it for a
process -- TASK_SIZE, the default mmap window, the randomisation ranges, the
top-down or legacy layout -- is the per-architecture policy of
``arch_pick_mmap_layout()`` (arch/x86/mm/mmap.c, mm/util.c) and the
architectures' processor.h / elf.h headers, recorded here as data.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmsim.arch.paging import PagingMode


@dataclass(frozen=True)
class MmLayout:
    """One architecture's user address-space constants.

    `task_size` is TASK_SIZE (mm->task_size); `map_window` is where mmap
    searches without a hint above it (x86 DEFAULT_MAP_WINDOW, the generic
    arch_get_mmap_end(); equal to task_size where the whole space is used);
    `stack_top` is STACK_TOP (the base the mmap gap is measured from);
    `mmap_rnd_bits` is CONFIG_ARCH_MMAP_RND_BITS' default, `stack_rnd_mask`
    STACK_RND_MASK in pages; `unmapped_base` is TASK_UNMAPPED_BASE, the
    bottom-up (legacy) layout's start; `word` the pointer size in bytes.
    """

    task_size: int
    map_window: int
    stack_top: int
    mmap_rnd_bits: int
    stack_rnd_mask: int
    unmapped_base: int
    word: int = 8


def _page_align(x: int, page_size: int) -> int:
    return (x + page_size - 1) & ~(page_size - 1)


#: Per mode: (TASK_SIZE, default mmap window, CONFIG_ARCH_MMAP_RND_BITS default,
#: STACK_RND_MASK in pages (elf.h's, with its PAGE_SHIFT - 12 shift applied),
#: TASK_UNMAPPED_BASE as a fraction of the window, sizeof(void *)).
#: x86: page_{32,64}_types.h (TASK_SIZE 0xC0000000 with the 3G/1G split; TASK_SIZE_MAX
#:   (1 << 47) - PAGE_SIZE, with LA57 (1 << 56) - PAGE_SIZE and mmap below
#:   DEFAULT_MAP_WINDOW unless hinted), elf.h STACK_RND_MASK 0x3fffff / 0x7ff, Kconfig
#:   ARCH_MMAP_RND_BITS 28 / 8, processor.h TASK_UNMAPPED_BASE = PAGE_ALIGN(TASK_SIZE / 3).
#: powerpc: task_size_32.h (CONFIG_TASK_SIZE 0xb0000000 on book3s/32, TASK_UNMAPPED_BASE
#:   TASK_SIZE / 4), task_size_64.h (64K pages: TASK_SIZE_USER64 = TASK_SIZE_4PB, mmap below
#:   DEFAULT_MAP_WINDOW_USER64 = TASK_SIZE_128TB unless hinted; 4K pages: TASK_SIZE_64TB; the
#:   3.x 64K geometry's PGTABLE_RANGE was 1 << 46), TASK_UNMAPPED_BASE_USER64 = window / 4,
#:   elf.h STACK_RND_MASK 0x7ff / 0x3ffff >> (PAGE_SHIFT - 12), ARCH_MMAP_RND_BITS_MIN
#:   11 (32-bit), 14 (64K), 18 (4K).
#: arm64: processor.h TASK_SIZE_64 = DEFAULT_MAP_WINDOW_64 = 1 << VA_BITS (48),
#:   TASK_UNMAPPED_BASE = window / 4, elf.h STACK_RND_MASK 0x3ffff >> (PAGE_SHIFT - 12),
#:   ARCH_MMAP_RND_BITS_MIN 18 (4K), 16 (16K), 14 (64K).
#: riscv: pgtable.h TASK_SIZE = PGDIR_SIZE * PTRS_PER_PGD / 2, processor.h
#:   DEFAULT_MAP_WINDOW = 1 << (MMAP_VA_BITS - 1) with MMAP_VA_BITS 48 (mmap below Sv48
#:   unless hinted), TASK_UNMAPPED_BASE = PAGE_ALIGN(TASK_SIZE / 3) (of the window here: the
#:   bottom-up search stops at it), elf.h STACK_RND_MASK 0x3ffff, ARCH_MMAP_RND_BITS_MIN 18.
_LAYOUTS: dict[str, tuple[int, int, int, int, int, int]] = {
    "i386": (0xC000_0000, 0xC000_0000, 8, 0x7FF, 3, 4),
    "i386-pae": (0xC000_0000, 0xC000_0000, 8, 0x7FF, 3, 4),
    "x86_64": ((1 << 47) - 4096, (1 << 47) - 4096, 28, 0x3FFFFF, 3, 8),
    "x86_64-la57": ((1 << 56) - 4096, (1 << 47) - 4096, 28, 0x3FFFFF, 3, 8),
    "ppc32": (0xB000_0000, 0xB000_0000, 11, 0x7FF, 4, 4),
    "ppc64-4k": (1 << 46, 1 << 46, 18, 0x3FFFF, 4, 8),
    "ppc64-64k": (1 << 52, 1 << 47, 14, 0x3FFFF >> 4, 4, 8),
    "ppc64-64k-2012": (1 << 46, 1 << 46, 14, 0x3FFFF >> 4, 4, 8),
    "arm64-4k": (1 << 48, 1 << 48, 18, 0x3FFFF, 4, 8),
    "arm64-16k": (1 << 48, 1 << 48, 16, 0x3FFFF >> 2, 4, 8),
    "arm64-64k": (1 << 48, 1 << 48, 14, 0x3FFFF >> 4, 4, 8),
    "riscv-sv39": (1 << 38, 1 << 38, 18, 0x3FFFF, 3, 8),
    "riscv-sv48": (1 << 47, 1 << 47, 18, 0x3FFFF, 3, 8),
    "riscv-sv57": (1 << 56, 1 << 47, 18, 0x3FFFF, 3, 8),
}


def mm_layout(mode: PagingMode) -> MmLayout:
    """The layout Linux gives a native process of `mode` (default configs, 3G/1G split)."""
    try:
        task_size, window, rnd_bits, stack_mask, unmapped_div, word = _LAYOUTS[mode.name]
    except KeyError:
        raise ValueError(f"mm_layout: no layout for mode {mode.name!r}") from None
    ps = mode.page_size
    return MmLayout(task_size, window, window, rnd_bits, stack_mask,
                    _page_align(window // unmapped_div, ps), word)
