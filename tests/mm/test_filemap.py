"""File mappings through the page cache: sharing, COW, coherence, writeback, SIGBUS."""

from __future__ import annotations

from pathlib import Path

from vmsim import Machine
from vmsim.fs.vfs import O_RDONLY, O_RDWR
from vmsim.mm import mman as m

PS = 4096


def _file(root: Path, name: str, size: int) -> bytes:
    data = bytes((i * 7 + i // PS) % 251 for i in range(size))
    (root / name).write_bytes(data)
    return data


def test_shared_mappings_share_frames_across_processes(machine: Machine, tmp_path: Path) -> None:
    data = _file(tmp_path, "f", 4 * PS)
    p, q = machine.spawn(), machine.spawn()
    fp, fq = p.open("/f", O_RDWR), q.open("/f", O_RDWR)
    a = p.mmap(None, 4 * PS, "rw-", "shared", fp, 0)
    b = q.mmap(None, 2 * PS, "rw-", "shared", fq, 2 * PS)
    assert p.load(a + 2 * PS, 16) == data[2 * PS:2 * PS + 16]
    assert p.maj_flt == 1  # the first access read the file (major), read-around did the rest
    assert q.load(b, 16) == data[2 * PS:2 * PS + 16] and q.maj_flt == 0
    assert p.translate(a + 2 * PS) == q.translate(b)  # one page-cache frame, two addresses
    assert p.store(a + 2 * PS, b"SHARED")
    assert q.load(b, 6) == b"SHARED"
    machine.check()


def test_private_file_mapping_cow(machine: Machine, tmp_path: Path) -> None:
    data = _file(tmp_path, "f", 2 * PS)
    p, q = machine.spawn(), machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", "private", p.open("/f", O_RDONLY), 0)
    b = q.mmap(None, 2 * PS, "r--", "shared", q.open("/f", O_RDONLY), 0)
    assert p.load(a, 4) == data[:4]
    cache_frame = p.translate(a)
    assert p.store(a, b"mine")
    assert p.translate(a) != cache_frame
    assert q.load(b, 4) == data[:4]  # the file and other mappings are untouched
    assert p.mm.fault_kinds["wp-copy"] == 1
    assert (tmp_path / "f").read_bytes() == data
    machine.check()


def test_write_to_private_file_page_first_is_do_cow_fault(machine: Machine, tmp_path: Path) -> None:
    _file(tmp_path, "f", PS)
    p = machine.spawn()
    a = p.mmap(None, PS, "rw-", "private", p.open("/f", O_RDONLY), 0)
    assert p.store(a + 1, b"z")
    assert p.mm.fault_kinds == {"cow": 1}
    assert p.mm.rss_stat[1] == 1 and p.mm.rss_stat[0] == 0  # anon, not file
    machine.check()


def test_pwrite_is_seen_by_mappings_and_msync_reaches_file(machine: Machine, tmp_path: Path) -> None:
    _file(tmp_path, "f", 2 * PS)
    p = machine.spawn()
    fd = p.open("/f", O_RDWR)
    a = p.mmap(None, 2 * PS, "rw-", "shared", fd, 0)
    assert p.load(a, 1) is not None
    assert p.pwrite(fd, b"via write()", 100) == 11
    assert p.load(a + 100, 11) == b"via write()"
    assert p.store(a + PS, b"via mapping")
    assert p.pread(fd, 11, PS) == b"via mapping"  # same page-cache page
    assert (tmp_path / "f").read_bytes()[PS:PS + 11] != b"via mapping"
    assert p.msync(a, 2 * PS, m.MS_SYNC) == 0
    assert (tmp_path / "f").read_bytes()[PS:PS + 11] == b"via mapping"
    machine.check()


def test_munmap_and_exit_write_back_shared_pages(machine: Machine, tmp_path: Path) -> None:
    _file(tmp_path, "f", PS)
    p = machine.spawn()
    a = p.mmap(None, PS, "rw-", "shared", p.open("/f", O_RDWR), 0)
    p.store(a, b"at munmap")
    p.munmap(a, PS)
    assert (tmp_path / "f").read_bytes()[:9] == b"at munmap"
    b = p.mmap(None, PS, "rw-", "shared", p.open("/f", O_RDWR), 0)
    p.store(b, b"at exit")
    p.exit()
    assert (tmp_path / "f").read_bytes()[:7] == b"at exit"
    machine.check()


def test_access_beyond_eof_is_sigbus(machine: Machine, tmp_path: Path) -> None:
    _file(tmp_path, "f", PS + 10)
    p = machine.spawn()
    a = p.mmap(None, 3 * PS, "r--", "private", p.open("/f", O_RDONLY), 0)
    assert p.load(a + PS + 20, 1) == b"\0"  # the partial last page reads zeros past EOF
    assert p.load(a + 2 * PS) is None
    assert p.siginfo is not None and (p.siginfo.signo, p.siginfo.code) == (7, 2)
    assert p.exit_code == 128 + 7
    machine.check()


def test_truncate_unmaps_pages_beyond_new_size(machine: Machine, tmp_path: Path) -> None:
    _file(tmp_path, "f", 3 * PS)
    p = machine.spawn()
    fd = p.open("/f", O_RDWR)
    a = p.mmap(None, 3 * PS, "rw-", "shared", fd, 0)
    for i in range(3):
        p.load(a + i * PS)
    assert p.ftruncate(fd, PS) == 0
    assert p.load(a, 1) is not None
    assert p.load(a + 2 * PS) is None and p.siginfo is not None and p.siginfo.signo == 7
    machine.check()


def test_mmap_file_errors(machine: Machine, tmp_path: Path) -> None:
    _file(tmp_path, "f", PS)
    p = machine.spawn()
    ro = p.open("/f", O_RDONLY)
    assert p.mmap(None, PS, "rw-", "shared", ro, 0) == -m.EACCES
    assert p.mmap(None, PS, "rw-", "private", ro, 0) > 0  # private write of a read-only file is fine
    assert p.mmap(None, PS, "r--", "shared", 77, 0) == -m.EBADF
    assert p.mmap(None, PS, "r--", "shared", ro, 1) == -m.EINVAL
    assert p.mmap(None, PS, "r--", m.MAP_SHARED_VALIDATE | 0x200000, ro, 0) == -m.EOPNOTSUPP
    assert p.mmap(None, PS, "r--", m.MAP_SHARED | 0x200000, ro, 0) > 0  # MAP_SHARED ignores unknown bits


def test_sandbox_blocks_escape(machine: Machine, tmp_path: Path) -> None:
    p = machine.spawn()
    assert p.open("/../../etc/passwd", O_RDONLY) < 0
    (tmp_path / "link").symlink_to("/etc/passwd")
    assert p.open("/link", O_RDONLY) == -m.ENOENT  # /etc/passwd inside the root (chroot)
    assert p.open("/missing", O_RDONLY) == -2


def test_shared_anonymous_is_shmem_shared_with_child(machine: Machine) -> None:
    p = machine.spawn()
    a = p.mmap(None, 2 * PS, "rw-", "shared|anonymous")
    p.store(a, b"before fork")
    c = p.fork()
    assert not isinstance(c, int)
    c.store(a + 6, b"FORK")
    assert p.load(a, 10) == b"beforeFORK"
    assert p.mm.rss_stat[3] == 1  # MM_SHMEMPAGES
    assert "/dev/zero (deleted)" in p.maps()
    c.exit()
    p.exit()
    machine.check()
    assert machine.kmem.vm_stat["nr_shmem"] == 0  # the unlinked shmem file went with its last mapping
