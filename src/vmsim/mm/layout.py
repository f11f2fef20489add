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


def mm_layout(mode: PagingMode) -> MmLayout:
    """The layout Linux gives a native process of `mode` (default configs, 3G/1G split)."""
    ps = mode.page_size
    name = mode.name
    if name == "x86_64":
        # arch/x86/include/asm/page_64_types.h: TASK_SIZE_MAX = (1 << 47) - PAGE_SIZE;
        # elf.h: STACK_RND_MASK 0x3fffff; Kconfig ARCH_MMAP_RND_BITS default 28.
        ts = (1 << 47) - ps
        return MmLayout(ts, ts, ts, 28, 0x3FFFFF, _page_align(ts // 3, ps))
    if name == "x86_64-la57":
        # With 5-level paging TASK_SIZE_MAX = (1 << 56) - PAGE_SIZE, but mmap stays below
        # DEFAULT_MAP_WINDOW = (1 << 47) - PAGE_SIZE unless a hint above it is given
        # (processor.h, arch/x86/kernel/sys_x86_64.c).
        window = (1 << 47) - ps
        return MmLayout((1 << 56) - ps, window, window, 28, 0x3FFFFF,
                        _page_align(window // 3, ps))
    if name in ("i386", "i386-pae"):
        # page_32_types.h: TASK_SIZE = __PAGE_OFFSET = 0xC0000000; elf.h: STACK_RND_MASK
        # 0x7ff for 32-bit; Kconfig ARCH_MMAP_RND_BITS default 8 on 32-bit;
        # processor.h: TASK_UNMAPPED_BASE = PAGE_ALIGN(TASK_SIZE / 3).
        ts = 0xC000_0000
        return MmLayout(ts, ts, ts, 8, 0x7FF, _page_align(ts // 3, ps), word=4)
    if name == "ppc32":
        # arch/powerpc/include/asm/task_size_32.h: TASK_SIZE = CONFIG_TASK_SIZE (0xb0000000
        # on book3s/32), TASK_UNMAPPED_BASE = PAGE_ALIGN(TASK_SIZE / 4); elf.h STACK_RND_MASK
        # 0x7ff >> (PAGE_SHIFT - 12) for 32-bit; ARCH_MMAP_RND_BITS_MIN 11 on 32-bit.
        ts = 0xB000_0000
        return MmLayout(ts, ts, ts, 11, 0x7FF, _page_align(ts // 4, ps), word=4)
    if name.startswith("ppc64"):
        # arch/powerpc/include/asm/task_size_64.h: with 64K pages TASK_SIZE_USER64 =
        # TASK_SIZE_4PB and DEFAULT_MAP_WINDOW_USER64 = TASK_SIZE_128TB; with 4K pages both
        # are TASK_SIZE_64TB. The 3.x 64K geometry (PGTABLE_RANGE 1 << 46) had 64 TB.
        # TASK_UNMAPPED_BASE_USER64 = PAGE_ALIGN(DEFAULT_MAP_WINDOW_USER64 / 4);
        # STACK_RND_MASK 0x3ffff >> (PAGE_SHIFT - 12); ARCH_MMAP_RND_BITS_MIN 14 (64K) / 18 (4K).
        if name == "ppc64-64k":
            ts, window, bits = 1 << 52, 1 << 47, 14
        elif name == "ppc64-4k":
            ts, window, bits = 1 << 46, 1 << 46, 18
        else:
            ts, window, bits = 1 << 46, 1 << 46, 14
        return MmLayout(ts, window, window, bits, 0x3FFFF >> (mode.page_shift - 12),
                        _page_align(window // 4, ps))
    if name.startswith("arm64"):
        # arch/arm64/include/asm/processor.h: TASK_SIZE_64 = DEFAULT_MAP_WINDOW_64 =
        # 1 << VA_BITS (48); STACK_TOP = DEFAULT_MAP_WINDOW; TASK_UNMAPPED_BASE =
        # PAGE_ALIGN(DEFAULT_MAP_WINDOW / 4); elf.h STACK_RND_MASK 0x3ffff >> (PAGE_SHIFT - 12);
        # Kconfig ARCH_MMAP_RND_BITS_MIN 18 (4K), 16 (16K), 14 (64K), the default.
        ts = 1 << 48
        bits = {12: 18, 14: 16, 16: 14}[mode.page_shift]
        return MmLayout(ts, ts, ts, bits, 0x3FFFF >> (mode.page_shift - 12),
                        _page_align(ts // 4, ps))
    if name.startswith("riscv"):
        # arch/riscv/include/asm/pgtable.h: TASK_SIZE = PGDIR_SIZE * PTRS_PER_PGD / 2
        # (Sv39: 1 << 38, Sv48: 1 << 47, Sv57: 1 << 56); processor.h: DEFAULT_MAP_WINDOW
        # = 1 << (MMAP_VA_BITS - 1) with MMAP_VA_BITS 48 on Sv48/Sv57 (mmap stays below
        # Sv48 unless hinted higher), STACK_TOP = DEFAULT_MAP_WINDOW, TASK_UNMAPPED_BASE =
        # PAGE_ALIGN(TASK_SIZE / 3); elf.h STACK_RND_MASK 0x3ffff; ARCH_MMAP_RND_BITS_MIN 18.
        ts = 1 << (mode.va_bits - 1)
        window = min(ts, 1 << 47)
        # The bottom-up search stops at the window, so its base is a third of the window.
        return MmLayout(ts, window, window, 18, 0x3FFFF, _page_align(window // 3, ps))
    raise ValueError(f"mm_layout: no layout for mode {name!r}")
