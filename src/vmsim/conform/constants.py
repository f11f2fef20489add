"""Linux x86-64 user-ABI constant values used by the host comparison scripts.

The values are the kernel's (the numbers that reach the system call); they are
written out here rather than taken from Python's ``mmap``/``os`` modules so that
the table is complete (those modules lack most MADV_*/MREMAP_*/MAP_* names) and
does not depend on the interpreter's build.  ``tests/host/test_constants.py``
compiles a C program against the host's system headers and checks every value.
"""

from __future__ import annotations

import re

_PROT = {
    "PROT_NONE": 0x0,
    "PROT_READ": 0x1,
    "PROT_WRITE": 0x2,
    "PROT_EXEC": 0x4,
    "PROT_SEM": 0x8,
    "PROT_GROWSDOWN": 0x01000000,
    "PROT_GROWSUP": 0x02000000,
}

_MAP = {
    "MAP_SHARED": 0x01,
    "MAP_PRIVATE": 0x02,
    "MAP_SHARED_VALIDATE": 0x03,
    "MAP_DROPPABLE": 0x08,
    "MAP_TYPE": 0x0F,
    "MAP_FIXED": 0x10,
    "MAP_ANONYMOUS": 0x20,
    "MAP_ANON": 0x20,
    "MAP_32BIT": 0x40,
    "MAP_GROWSDOWN": 0x0100,
    "MAP_DENYWRITE": 0x0800,
    "MAP_EXECUTABLE": 0x1000,
    "MAP_LOCKED": 0x2000,
    "MAP_NORESERVE": 0x4000,
    "MAP_POPULATE": 0x8000,
    "MAP_NONBLOCK": 0x10000,
    "MAP_STACK": 0x20000,
    "MAP_HUGETLB": 0x40000,
    "MAP_SYNC": 0x80000,
    "MAP_FIXED_NOREPLACE": 0x100000,
    "MAP_UNINITIALIZED": 0x4000000,
    "MAP_HUGE_SHIFT": 26,
    "MAP_HUGE_MASK": 0x3F,
    "MAP_HUGE_2MB": 21 << 26,
    "MAP_HUGE_1GB": 30 << 26,
}

_MREMAP = {
    "MREMAP_MAYMOVE": 1,
    "MREMAP_FIXED": 2,
    "MREMAP_DONTUNMAP": 4,
}

_MADV = {
    "MADV_NORMAL": 0,
    "MADV_RANDOM": 1,
    "MADV_SEQUENTIAL": 2,
    "MADV_WILLNEED": 3,
    "MADV_DONTNEED": 4,
    "MADV_FREE": 8,
    "MADV_REMOVE": 9,
    "MADV_DONTFORK": 10,
    "MADV_DOFORK": 11,
    "MADV_MERGEABLE": 12,
    "MADV_UNMERGEABLE": 13,
    "MADV_HUGEPAGE": 14,
    "MADV_NOHUGEPAGE": 15,
    "MADV_DONTDUMP": 16,
    "MADV_DODUMP": 17,
    "MADV_WIPEONFORK": 18,
    "MADV_KEEPONFORK": 19,
    "MADV_COLD": 20,
    "MADV_PAGEOUT": 21,
    "MADV_POPULATE_READ": 22,
    "MADV_POPULATE_WRITE": 23,
    "MADV_DONTNEED_LOCKED": 24,
    "MADV_COLLAPSE": 25,
    "MADV_HWPOISON": 100,
    "MADV_SOFT_OFFLINE": 101,
    "MADV_GUARD_INSTALL": 102,
    "MADV_GUARD_REMOVE": 103,
}

_MLOCK = {
    "MCL_CURRENT": 1,
    "MCL_FUTURE": 2,
    "MCL_ONFAULT": 4,
    "MLOCK_ONFAULT": 0x01,
}

_MS = {
    "MS_ASYNC": 1,
    "MS_INVALIDATE": 2,
    "MS_SYNC": 4,
}

_O = {
    "O_ACCMODE": 0o3,
    "O_RDONLY": 0o0,
    "O_WRONLY": 0o1,
    "O_RDWR": 0o2,
    "O_CREAT": 0o100,
    "O_EXCL": 0o200,
    "O_NOCTTY": 0o400,
    "O_TRUNC": 0o1000,
    "O_APPEND": 0o2000,
    "O_NONBLOCK": 0o4000,
    "O_DSYNC": 0o10000,
    "O_ASYNC": 0o20000,
    "O_DIRECT": 0o40000,
    "O_LARGEFILE": 0o100000,
    "O_DIRECTORY": 0o200000,
    "O_NOFOLLOW": 0o400000,
    "O_NOATIME": 0o1000000,
    "O_CLOEXEC": 0o2000000,
    "O_SYNC": 0o4010000,
    "O_PATH": 0o10000000,
    "O_TMPFILE": 0o20200000,
}

#: name -> value, Linux x86-64.
CONSTANTS: dict[str, int] = {**_PROT, **_MAP, **_MREMAP, **_MADV, **_MLOCK, **_MS, **_O}

#: Names newer than the kernel headers of the reference host (Debian 12 ships
#: the 6.1 UAPI headers), with the kernel release that added each.  They cannot
#: be checked against headers there; test_constants.py checks them whenever a
#: header does define them.
NEWER_THAN_HOST_HEADERS: dict[str, str] = {
    "MAP_DROPPABLE": "Linux 6.11",
    "MADV_GUARD_INSTALL": "Linux 6.13",
    "MADV_GUARD_REMOVE": "Linux 6.13",
}

#: Names whose glibc value intentionally differs from the kernel's.
GLIBC_DIFFERS: dict[str, str] = {
    "O_LARGEFILE": "glibc defines O_LARGEFILE as 0 on 64-bit targets; the kernel bit is 0o100000",
}

_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def is_symbolic(expr: str) -> bool:
    """True if *expr* looks like ``NAME|NAME|0x10`` (names and integers joined by ``|``)."""
    parts = [p.strip() for p in expr.split("|")]
    return (
        bool(parts)
        and any(_NAME.fullmatch(p) for p in parts)
        and all(_NAME.fullmatch(p) or _is_int(p) for p in parts)
    )


def _is_int(text: str) -> bool:
    try:
        int(text, 0)
    except ValueError:
        return False
    return True


def resolve(expr: str | int) -> int:
    """Value of ``"PROT_READ|PROT_WRITE"``-style expressions (ints pass through).

    Each ``|``-separated part is a name from :data:`CONSTANTS` or an integer
    literal (``0x..``/decimal).  Unknown names raise :class:`KeyError`.
    """
    if isinstance(expr, int):
        return expr
    value = 0
    for part in (p.strip() for p in expr.split("|")):
        if _NAME.fullmatch(part):
            if part not in CONSTANTS:
                raise KeyError(f"unknown constant {part!r} in {expr!r}")
            value |= CONSTANTS[part]
        else:
            value |= int(part, 0)
    return value
