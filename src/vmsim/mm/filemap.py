"""Files and the page cache (mm/filemap.c, mm/readahead.c, mm/truncate.c).

An `Inode` owns its page cache (`pages`, the kernel's ``i_pages``): file
page index -> frame. Every mapping of the file, shared or private, reads
the same frames, so two processes see one copy. The page cache holds one
reference on each of its pages; each mapping adds one more and a map count.

Backing store is a host file (inside the machine's sandbox root), a byte
buffer, or nothing (shmem: anonymous shared memory, whose pages exist only
in RAM).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from vmsim.mm.page import PG
from vmsim.mm.rmap import page_mkclean

if TYPE_CHECKING:
    from vmsim.mm.kmem import Kmem
    from vmsim.mm.vma import Vma

FMODE_READ = 0x1
FMODE_WRITE = 0x2


class Backing(Protocol):
    """Where a file's bytes live when they are not in the page cache."""

    def pread(self, offset: int, n: int) -> bytes: ...

    def pwrite(self, offset: int, data: bytes) -> None: ...

    def truncate(self, size: int) -> None: ...

    def size(self) -> int: ...


class HostBacking:
    """A host file, opened once by the machine (read-write if the host allows)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def pread(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def pwrite(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def size(self) -> int:
        return os.fstat(self.fd).st_size


class BytesBacking:
    """An in-memory file for scripted use and tests."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = bytearray(data)

    def pread(self, offset: int, n: int) -> bytes:
        return bytes(self.data[offset:offset + n])

    def pwrite(self, offset: int, data: bytes) -> None:
        if offset > len(self.data):
            self.data.extend(bytes(offset - len(self.data)))
        self.data[offset:offset + len(data)] = data

    def truncate(self, size: int) -> None:
        if size < len(self.data):
            del self.data[size:]
        else:
            self.data.extend(bytes(size - len(self.data)))

    def size(self) -> int:
        return len(self.data)


@dataclass(eq=False)
class Inode:
    """An inode with its address_space: size, identity for /proc, and the page cache.

    `shmem` marks tmpfs/shared-anonymous memory: no backing store, pages
    counted as shmem, no dirty accounting (so no write-notify faults).
    """

    ino: int
    dev: tuple[int, int]
    i_size: int
    backing: Backing | None
    shmem: bool = False
    i_mode: int = 0o100644  # S_IFREG | 0644; only regular files (and shmem) can be mapped
    pages: dict[int, int] = field(default_factory=dict)
    i_mmap: set[Vma] = field(default_factory=set)
    i_mmap_writable: int = 0

    @property
    def nrpages(self) -> int:
        return len(self.pages)

    @property
    def mmap_supported(self) -> bool:
        """Does the file's f_op have ->mmap? (regular files and shmem; not directories)."""
        return self.shmem or (self.i_mode & 0o170000) == 0o100000


@dataclass(eq=False)
class File:
    """struct file: an open inode with its mode bits and the path /proc shows."""

    inode: Inode
    path: str
    f_mode: int
    f_flags: int = 0
    f_pos: int = 0
    deleted: bool = False

    @property
    def readable(self) -> bool:
        return bool(self.f_mode & FMODE_READ)

    @property
    def writable(self) -> bool:
        return bool(self.f_mode & FMODE_WRITE)


def _read_page_into(kmem: Kmem, inode: Inode, index: int, pfn: int) -> None:
    """Fill a fresh frame with file page `index` (zeroes past EOF)."""
    ps = kmem.page_size
    if inode.backing is not None:
        want = min(ps, max(inode.i_size - index * ps, 0))
        data = inode.backing.pread(index * ps, want) if want else b""
        if data:
            kmem.phys.write(pfn * ps, data)


def add_to_page_cache(kmem: Kmem, inode: Inode, index: int, pfn: int) -> None:
    """filemap_add_folio(): the cache takes its reference (the caller's alloc ref)."""
    mm = kmem.mem_map
    mm.mapping[pfn] = inode
    mm.index_mv[pfn] = index
    mm.flags_mv[pfn] |= PG.uptodate | PG.lru | (PG.swapbacked if inode.shmem else 0)
    inode.pages[index] = pfn
    kmem.vm_stat["nr_file_pages"] += 1
    if inode.shmem:
        kmem.vm_stat["nr_shmem"] += 1


def delete_from_page_cache(kmem: Kmem, inode: Inode, index: int) -> None:
    pfn = inode.pages.pop(index)
    kmem.vm_stat["nr_file_pages"] -= 1
    if inode.shmem:
        kmem.vm_stat["nr_shmem"] -= 1
    if kmem.mem_map.flags_mv[pfn] & PG.dirty:
        kmem.vm_stat["nr_dirty"] -= 1
    kmem.mem_map.mapping[pfn] = None
    kmem.mem_map.flags_mv[pfn] &= ~(PG.dirty | PG.uptodate | PG.lru)
    kmem.put_page(pfn)


def last_index(kmem: Kmem, inode: Inode) -> int:
    """Number of pages the file has (pages at or beyond it are past EOF)."""
    return (inode.i_size + kmem.page_size - 1) >> kmem.page_shift


def filemap_get_page(kmem: Kmem, inode: Inode, index: int,
                     readahead: tuple[int, int] | None) -> tuple[int, bool] | None:
    """filemap_fault()'s page lookup: (pfn, major) for page `index`, or None on OOM.

    A cache miss reads the page from the backing store, and also the pages
    of the `readahead` window [first, end) (chosen by the caller as
    do_sync_mmap_readahead() would), which is what makes later neighbouring
    faults minor. A miss is a major fault. Shmem pages are created zeroed.
    """
    pfn = inode.pages.get(index)
    if pfn is not None:
        return pfn, False
    pfn = kmem.alloc_page(zero=True)
    if pfn is None:
        return None
    if inode.shmem:
        add_to_page_cache(kmem, inode, index, pfn)
        return pfn, False
    _read_page_into(kmem, inode, index, pfn)
    add_to_page_cache(kmem, inode, index, pfn)
    if readahead is not None:
        start, end = readahead[0], min(readahead[1], last_index(kmem, inode))
        for i in range(start, end):
            if i in inode.pages:
                continue
            extra = kmem.alloc_page(zero=True)
            if extra is None:
                break
            _read_page_into(kmem, inode, i, extra)
            add_to_page_cache(kmem, inode, i, extra)
    kmem.vm_event["pgmajfault_io"] += 1
    return pfn, True


def set_page_dirty(kmem: Kmem, pfn: int) -> None:
    if not kmem.mem_map.flags_mv[pfn] & PG.dirty:
        kmem.mem_map.flags_mv[pfn] |= PG.dirty
        kmem.vm_stat["nr_dirty"] += 1


def writeback_range(kmem: Kmem, inode: Inode, start_index: int, end_index: int) -> int:
    """filemap_write_and_wait_range(): write dirty cached pages to the backing store.

    Returns the number of pages written. Shmem has nowhere to write.
    """
    if inode.shmem or inode.backing is None:
        return 0
    ps = kmem.page_size
    written = 0
    for index in sorted(i for i in inode.pages if start_index <= i < end_index):
        pfn = inode.pages[index]
        if not kmem.mem_map.flags_mv[pfn] & PG.dirty:
            continue
        page_mkclean(kmem, inode, index, pfn)
        n = min(ps, inode.i_size - index * ps)
        if n > 0:
            inode.backing.pwrite(index * ps, kmem.phys.read(pfn * ps, n))
        kmem.mem_map.flags_mv[pfn] &= ~PG.dirty
        kmem.vm_stat["nr_dirty"] -= 1
        written += 1
    return written


def get_init_ra_size(size: int, max_pages: int) -> int:
    """get_init_ra_size() (mm/readahead.c): the first read-ahead window for a read of `size` pages."""
    newsize = 1 << max(size - 1, 0).bit_length()
    if newsize <= max_pages // 32:
        return newsize * 4
    if newsize <= max_pages // 4:
        return newsize * 2
    return max_pages


def file_read(kmem: Kmem, inode: Inode, offset: int, n: int) -> bytes:
    """filemap_read(): bytes through the page cache, reading missing pages into it.

    As page_cache_sync_ra() does for a fresh file, a read from the start of the
    file also reads ahead the initial window; a read elsewhere (random) reads
    only the pages it needs. Out of memory, the rest is read uncached.
    """
    n = max(min(n, inode.i_size - offset), 0)
    out = bytearray()
    ps = kmem.page_size
    first, last = offset // ps, (offset + n + ps - 1) // ps
    window = None
    if first == 0 and n:
        window = (0, get_init_ra_size(last - first, kmem.sysctl.ra_pages))
    pos = offset
    while pos < offset + n:
        index, off = divmod(pos, ps)
        chunk = min(ps - off, offset + n - pos)
        got = filemap_get_page(kmem, inode, index, window if index == first else None)
        if got is not None:
            out += kmem.phys.read(got[0] * ps + off, chunk)
        elif inode.backing is not None:
            out += inode.backing.pread(pos, chunk).ljust(chunk, b"\0")
        else:
            out += bytes(chunk)
        pos += chunk
    return bytes(out)


def file_write(kmem: Kmem, inode: Inode, offset: int, data: bytes) -> int:
    """generic_perform_write(): bytes go into page-cache pages (created as needed), then to disk.

    Existing mappings of those pages see the new bytes at once. Vmsim writes
    through to the backing store immediately, so the pages stay clean.
    Returns the count written, or -ENOMEM (as -12) if no frame was free.
    """
    ps = kmem.page_size
    pos = offset
    end = offset + len(data)
    while pos < end:
        index, off = divmod(pos, ps)
        chunk = min(ps - off, end - pos)
        pfn = inode.pages.get(index)
        if pfn is None:
            pfn = kmem.alloc_page(zero=True)
            if pfn is None:
                return -12 if pos == offset else pos - offset
            _read_page_into(kmem, inode, index, pfn)
            add_to_page_cache(kmem, inode, index, pfn)
        kmem.phys.write(pfn * ps + off, data[pos - offset:pos - offset + chunk])
        pos += chunk
    if inode.backing is not None:
        inode.backing.pwrite(offset, data)
    inode.i_size = max(inode.i_size, end)
    return len(data)


def drop_page_cache(kmem: Kmem, inode: Inode) -> int:
    """Drop every unmapped clean page of the inode (echo 1 > drop_caches); returns pages freed."""
    freed = 0
    for index in list(inode.pages):
        pfn = inode.pages[index]
        mm = kmem.mem_map
        if mm.mapcount_mv[pfn] or mm.flags_mv[pfn] & PG.dirty or inode.shmem:
            continue
        delete_from_page_cache(kmem, inode, index)
        freed += 1
    return freed
