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

from vmsim.mm.page import PG, folio_mark_accessed
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


@dataclass
class FileRaState:
    """struct file_ra_state (include/linux/fs.h): the read-ahead state of one open file.

    The last read-ahead read [start, start + size) with folio order `order`;
    the page at start + size - async_size was marked PG_readahead, and
    touching it starts the next, asynchronous, read-ahead. prev_pos is the
    end of the previous read() (-1: none yet); mmap_miss counts page-cache
    misses of faults, less hits (MMAP_LOTSAMISS of them stop read-around).
    """

    start: int = 0
    size: int = 0
    async_size: int = 0
    order: int = 0
    prev_pos: int = -1
    mmap_miss: int = 0


@dataclass(eq=False)
class File:
    """struct file: an open inode with its mode bits, the path /proc shows, its read-ahead state."""

    inode: Inode
    path: str
    f_mode: int
    f_flags: int = 0
    f_pos: int = 0
    deleted: bool = False
    f_ra: FileRaState = field(default_factory=FileRaState)

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


def filemap_get_page(kmem: Kmem, inode: Inode, index: int) -> tuple[int, bool] | None:
    """The page-cache frame of page `index`: (pfn, major), or None on OOM.

    A hit is minor; a miss reads just that page (filemap_create_folio()) and
    is major. Shmem pages are created zeroed, and minor. Read-ahead is the
    callers' business (see page_cache_sync_ra()).
    """
    pfn = inode.pages.get(index)
    if pfn is not None:
        return pfn, False
    pfn = _cache_new_page(kmem, inode, index)
    if pfn is None:
        return None
    if inode.shmem:
        return pfn, False
    kmem.vm_event["pgmajfault_io"] += 1
    return pfn, True


def filemap_read_folio(kmem: Kmem, inode: Inode, index: int, pfn: int) -> None:
    """filemap_read_folio(): fill a cached page that is not uptodate from the file."""
    if not inode.shmem:
        _read_page_into(kmem, inode, index, pfn)
    kmem.mem_map.flags_mv[pfn] |= PG.uptodate


def _cache_new_page(kmem: Kmem, inode: Inode, index: int) -> int | None:
    """A fresh frame holding file page `index`, added to the page cache (None: out of memory)."""
    pfn = kmem.alloc_page(zero=True)
    if pfn is None:
        return None
    if not inode.shmem:
        _read_page_into(kmem, inode, index, pfn)
    add_to_page_cache(kmem, inode, index, pfn)
    return pfn


# ------------------------------------------------------------------ read-ahead
# mm/readahead.c as of Linux 6.18, for a file system with large folios (ext4
# since 6.16). vmsim's page cache holds only order-0 pages: where Linux reads
# a window as large folios (asynchronous read-ahead, MADV_HUGEPAGE), vmsim
# reads the same pages one by one and marks one page where Linux marks the
# folio holding it. Read I/O completes at once (the host's asynchronous
# read-ahead may still be in flight, so not yet uptodate, when looked at).

MMAP_LOTSAMISS = 100
HPAGE_PMD_ORDER = 9  # x86-64 with 4 KiB pages: a PMD maps 512 pages


def get_next_ra_size(size: int, max_pages: int) -> int:
    """get_next_ra_size(): the next window after one of `size` pages (x4 while small, then x2)."""
    if size < max_pages // 16:
        return 4 * size
    if size <= max_pages // 2:
        return 2 * size
    return max_pages


def page_cache_next_miss(inode: Inode, index: int, max_scan: int) -> int:
    """page_cache_next_miss(): the first uncached index in [index, index + max_scan), else the end."""
    for i in range(index, index + max_scan):
        if i not in inode.pages:
            return i
    return index + max_scan


ULONG_MAX = (1 << 64) - 1


def page_cache_prev_miss(inode: Inode, index: int, max_scan: int) -> int:
    """page_cache_prev_miss(): the last uncached index in (index - max_scan, index].

    If every page down to index 0 is cached, ULONG_MAX (the scan wrapped);
    if there is no gap within max_scan pages, index - max_scan.
    """
    for i in range(index, index - max_scan, -1):
        if i < 0:
            return ULONG_MAX
        if i not in inode.pages:
            return i
    return index - max_scan


def page_cache_ra_unbounded(kmem: Kmem, inode: Inode, index: int, nr_to_read: int,
                            lookahead: int) -> None:
    """page_cache_ra_unbounded(): read the uncached pages of [index, index + nr_to_read).

    Cached pages are skipped; the page lookahead pages before the end gets
    PG_readahead if this call reads it. Stops when memory runs out.
    """
    mark = index + nr_to_read - lookahead if lookahead <= nr_to_read else -1
    flags = kmem.mem_map.flags_mv
    for i in range(index, index + nr_to_read):
        if i in inode.pages:
            continue
        pfn = _cache_new_page(kmem, inode, i)
        if pfn is None:
            return
        if i == mark:
            flags[pfn] |= PG.readahead


def do_page_cache_ra(kmem: Kmem, inode: Inode, index: int, nr_to_read: int,
                     lookahead: int) -> None:
    """do_page_cache_ra(): page_cache_ra_unbounded(), not past the page holding EOF."""
    if inode.i_size == 0:
        return
    end_index = (inode.i_size - 1) >> kmem.page_shift
    if index > end_index:
        return
    nr_to_read = min(nr_to_read, end_index - index + 1)
    page_cache_ra_unbounded(kmem, inode, index, nr_to_read, lookahead)


def page_cache_ra_order(kmem: Kmem, inode: Inode, ra: FileRaState,
                        start: int | None = None) -> None:
    """page_cache_ra_order(): read ra.size pages from `start` (ra.start if None).

    The page at start + size - async_size gets PG_readahead; nothing is read
    past EOF (the mark is set even when EOF cuts the window short). The
    folio order is capped by the window (ra.order records it). Meeting a
    page already cached ends the pass; do_page_cache_ra() reads the rest of
    the window from there.
    """
    index = start = ra.start if start is None else start
    if inode.i_size == 0 or ra.size <= 0:
        return
    limit = min((inode.i_size - 1) >> kmem.page_shift, start + ra.size - 1)
    ra.order = min(HPAGE_PMD_ORDER, ra.order, ra.size.bit_length() - 1)
    mark = start + ra.size - ra.async_size
    flags = kmem.mem_map.flags_mv
    while index <= limit:
        if index in inode.pages:
            break
        pfn = _cache_new_page(kmem, inode, index)
        if pfn is None:
            return
        if index == mark:
            flags[pfn] |= PG.readahead
        index += 1
    else:
        return
    if ra.size > index - start:
        do_page_cache_ra(kmem, inode, index, ra.size - (index - start), ra.async_size)


def page_cache_sync_ra(kmem: Kmem, inode: Inode, ra: FileRaState, index: int,
                       req_count: int) -> None:
    """page_cache_sync_ra(): a read of req_count pages missed the cache at `index`.

    From the start of the file, for an oversized read, or right after the
    previous read (prev_pos): a fresh window, get_init_ra_size() pages,
    marked where the request ends. A small random read reads just what it
    needs; one that follows cached pages (a sequential stream the state lost)
    reads that many more, marked at the window's last page.
    """
    max_pages = kmem.sysctl.ra_pages
    if not max_pages:
        do_page_cache_ra(kmem, inode, index, 1, 0)  # force_page_cache_ra() of one page
        return
    sequential = ra.prev_pos >= 0 and 0 <= index - (ra.prev_pos >> kmem.page_shift) <= 1
    if not index or req_count > max_pages or sequential:
        ra.start = index
        ra.size = get_init_ra_size(req_count, max_pages)
        ra.async_size = ra.size - req_count if ra.size > req_count else ra.size >> 1
    else:
        miss = page_cache_prev_miss(inode, index - 1, max_pages)
        contig = index if miss == ULONG_MAX else index - miss - 1
        if contig <= req_count:
            do_page_cache_ra(kmem, inode, index, req_count, 0)
            return
        if miss == ULONG_MAX:
            contig *= 2  # cached from the beginning: a whole-file read
        ra.start = index
        ra.size = min(contig + req_count, max_pages)
        ra.async_size = 1
    ra.order = 0
    page_cache_ra_order(kmem, inode, ra)


def page_cache_async_ra(kmem: Kmem, inode: Inode, ra: FileRaState, index: int, pfn: int,
                        req_count: int) -> None:
    """page_cache_async_ra(): page `index` (frame pfn) carried PG_readahead: read the next window.

    The mark is cleared. At the expected index the window moves on and
    grows (get_next_ra_size()); elsewhere (the state was lost) its size is
    guessed from the cached run after the page. The folio order grows by two
    and the window end is aligned to it, as Linux does.
    """
    max_pages = kmem.sysctl.ra_pages
    if not max_pages:
        return
    kmem.mem_map.flags_mv[pfn] &= ~PG.readahead
    if index == ra.start + ra.size - ra.async_size:
        ra.start += ra.size
        ra.size = max(ra.size, get_next_ra_size(ra.size, max_pages))
    else:
        start = page_cache_next_miss(inode, index + 1, max_pages)
        if not start or start - index > max_pages:
            return
        ra.start = start
        ra.size = get_next_ra_size(start - index + req_count, max_pages)
    ra.order += 2
    align = 1 << min(ra.order, (max_pages & -max_pages).bit_length() - 1)
    end = ra.start + ra.size
    aligned_end = end - end % align
    if aligned_end > ra.start:
        ra.size -= end - aligned_end
    ra.async_size = ra.size
    page_cache_ra_order(kmem, inode, ra)


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


def file_read(kmem: Kmem, inode: Inode, offset: int, n: int,
              ra: FileRaState | None = None) -> bytes:
    """filemap_read(): bytes through the page cache, reading missing pages into it.

    `ra` is the open file's read-ahead state (a fresh one if None). A miss
    starts page_cache_sync_ra() for the rest of the request; reaching a page
    marked PG_readahead starts page_cache_async_ra(). Every page read is
    marked accessed, except the page the previous read() ended in when this
    one starts there. Out of memory, the rest is read uncached.
    """
    if ra is None:
        ra = FileRaState()
    ps = kmem.page_size
    last_index = (offset + n + ps - 1) // ps  # the page after the request (the request, not EOF)
    n = max(min(n, inode.i_size - offset), 0)
    out = bytearray()
    flags = kmem.mem_map.flags_mv
    last_pos = ra.prev_pos
    pos = offset
    while pos < offset + n:
        index, off = divmod(pos, ps)
        chunk = min(ps - off, offset + n - pos)
        pfn = inode.pages.get(index)
        if pfn is None:
            page_cache_sync_ra(kmem, inode, ra, index, last_index - index)
            pfn = inode.pages.get(index)
            if pfn is None:
                got = filemap_get_page(kmem, inode, index)
                pfn = got[0] if got is not None else None
        elif flags[pfn] & PG.readahead:
            page_cache_async_ra(kmem, inode, ra, index, pfn, last_index - index)
        if pfn is not None and not flags[pfn] & PG.uptodate:
            filemap_read_folio(kmem, inode, index, pfn)  # filemap_update_page()
        if pfn is not None:
            if pos != offset or last_pos < 1 or (last_pos - 1) // ps != index:
                folio_mark_accessed(flags, pfn)
            out += kmem.phys.read(pfn * ps + off, chunk)
        elif inode.backing is not None:
            out += inode.backing.pread(pos, chunk).ljust(chunk, b"\0")
        else:
            out += bytes(chunk)
        pos += chunk
        last_pos = pos
    ra.prev_pos = last_pos
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
        elif not kmem.mem_map.flags_mv[pfn] & PG.uptodate:
            filemap_read_folio(kmem, inode, index, pfn)  # write_begin reads what it keeps
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
