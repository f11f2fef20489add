"""User-visible constants of the memory system calls (include/uapi/asm-generic/mman*.h, errno.h).

Values are Linux x86-64's; tests compare them with the host's C headers.
"""

from __future__ import annotations

PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
PROT_SEM = 0x8
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000

MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_SHARED_VALIDATE = 0x03
MAP_DROPPABLE = 0x08
MAP_TYPE = 0x0F
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_32BIT = 0x40
MAP_GROWSDOWN = 0x0100
MAP_DENYWRITE = 0x0800
MAP_EXECUTABLE = 0x1000
MAP_LOCKED = 0x2000
MAP_NORESERVE = 0x4000
MAP_POPULATE = 0x8000
MAP_NONBLOCK = 0x10000
MAP_STACK = 0x20000
MAP_HUGETLB = 0x40000
MAP_SYNC = 0x80000
MAP_FIXED_NOREPLACE = 0x100000
MAP_UNINITIALIZED = 0x4000000
MAP_HUGE_SHIFT = 26
MAP_HUGE_MASK = 0x3F
LEGACY_MAP_MASK = (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE
                   | MAP_EXECUTABLE | MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED
                   | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB)

MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MREMAP_DONTUNMAP = 4

MADV_NORMAL = 0
MADV_RANDOM = 1
MADV_SEQUENTIAL = 2
MADV_WILLNEED = 3
MADV_DONTNEED = 4
MADV_FREE = 8
MADV_REMOVE = 9
MADV_DONTFORK = 10
MADV_DOFORK = 11
MADV_MERGEABLE = 12
MADV_UNMERGEABLE = 13
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_DONTDUMP = 16
MADV_DODUMP = 17
MADV_WIPEONFORK = 18
MADV_KEEPONFORK = 19
MADV_COLD = 20
MADV_PAGEOUT = 21
MADV_POPULATE_READ = 22
MADV_POPULATE_WRITE = 23
MADV_DONTNEED_LOCKED = 24
MADV_COLLAPSE = 25
MADV_HWPOISON = 100
MADV_SOFT_OFFLINE = 101
MADV_GUARD_INSTALL = 102
MADV_GUARD_REMOVE = 103

MCL_CURRENT = 1
MCL_FUTURE = 2
MCL_ONFAULT = 4
MLOCK_ONFAULT = 0x01

MS_ASYNC = 1
MS_INVALIDATE = 2
MS_SYNC = 4

EPERM = 1
ENOENT = 2
EINTR = 4
EIO = 5
EBADF = 9
EAGAIN = 11
ENOMEM = 12
EACCES = 13
EFAULT = 14
EBUSY = 16
EEXIST = 17
ENODEV = 19
EISDIR = 21
EINVAL = 22
ETXTBSY = 26
EFBIG = 27
ENOSPC = 28
ESPIPE = 29
ENOSYS = 38
EOVERFLOW = 75
EOPNOTSUPP = 95
EHWPOISON = 133

_PROT_NAMES = {"r": PROT_READ, "w": PROT_WRITE, "x": PROT_EXEC}
_FLAG_NAMES = {
    "shared": MAP_SHARED, "private": MAP_PRIVATE, "shared_validate": MAP_SHARED_VALIDATE,
    "fixed": MAP_FIXED, "anonymous": MAP_ANONYMOUS, "anon": MAP_ANONYMOUS,
    "growsdown": MAP_GROWSDOWN, "locked": MAP_LOCKED, "noreserve": MAP_NORESERVE,
    "populate": MAP_POPULATE, "nonblock": MAP_NONBLOCK, "stack": MAP_STACK,
    "hugetlb": MAP_HUGETLB, "fixed_noreplace": MAP_FIXED_NOREPLACE, "32bit": MAP_32BIT,
}


def parse_prot(prot: int | str) -> int:
    """PROT_* bits from an int or a string like "rw-" / "r-x" / "---"."""
    if isinstance(prot, int):
        return prot
    value = 0
    for ch in prot:
        if ch in _PROT_NAMES:
            value |= _PROT_NAMES[ch]
        elif ch != "-":
            raise ValueError(f"bad protection {prot!r}: use letters r, w, x and -")
    return value


def parse_map_flags(flags: int | str) -> int:
    """MAP_* bits from an int or a string like "private|anonymous"."""
    if isinstance(flags, int):
        return flags
    value = 0
    for word in flags.replace(",", "|").split("|"):
        word = word.strip().lower().removeprefix("map_")
        if not word:
            continue
        if word not in _FLAG_NAMES:
            raise ValueError(f"bad mmap flag {word!r}; known: {', '.join(sorted(_FLAG_NAMES))}")
        value |= _FLAG_NAMES[word]
    return value
