"""The known-difference table: well-formed, and every matcher precise."""

from __future__ import annotations

from vmsim.conform.known_differences import KNOWN_DIFFERENCES, Mismatch, by_id, explain


def mism(step: str, host: str, sim: str, script: tuple[str, ...] = (), header: str = "") -> Mismatch:
    seg = [header, host] if header else [host]
    return Mismatch([*script, step], step, seg, [header, sim] if header else [sim], host, sim,
                    len(seg) - 1)


def test_table_is_well_formed() -> None:
    ids = [kd.id for kd in KNOWN_DIFFERENCES]
    assert len(ids) == len(set(ids))
    for kd in KNOWN_DIFFERENCES:
        assert len(kd.reason) > 80, kd.id
        assert kd.vmsim_bug == kd.reason.startswith("vmsim bug, to fix"), kd.id


def test_shmem_inode_rewrite() -> None:
    rw = by_id("shmem-inode").rewrite
    assert rw is not None
    line = "00100000-00102000 rw-s 00000000 00:01 31                         /dev/zero (deleted)"
    assert rw(line).endswith("00:01 <ino> @col65 /dev/zero (deleted)")
    assert rw("child: child: " + line).startswith("child: child: 00100000")
    assert rw("Rss: 4 kB") == "Rss: 4 kB"


def test_matchers_are_precise() -> None:
    other = mism("madvise 0x100000 0x1000 102", "VmFlags: rd wr mr mw me lo ac ",
                 "VmFlags: rd wr mr mw me ac ")
    assert explain(other) is None
    assert explain(mism("mremap 0x105000 0x1000 0x1000 3 0x103000", "ret -22", "ret -14")) is None
    assert explain(mism("munmap 0x100000 0x1000", "Referenced:            0 kB",
                        "Referenced:            4 kB")) is None
    assert explain(mism("touch 0x100000 r", "faults 1 0", "faults 0 1")) is None
    hdr = "00100000-00101000 rw-s 00000000 <dev> <ino:f> @col73 /f"
    m = mism("touch 0x100000 r", "Private_Dirty:         4 kB", "Private_Dirty:         0 kB",
             ("pwrite 3 0 11",), hdr)
    assert explain(m) is by_id("page-cache-write-through")
    anon_hdr = "00100000-00101000 rw-p 00000000 00:00 0 "
    assert explain(mism("touch 0x100000 r", "Private_Dirty:         4 kB",
                        "Private_Dirty:         0 kB", ("pwrite 3 0 11",), anon_hdr)) is None


def test_readahead_in_flight_is_narrow() -> None:
    kd = by_id("readahead-io-in-flight")
    populate = "mmap 0x40d000 0x2000 4 0x8012 3 0"
    assert explain(mism(populate, "faults 2 0", "faults 1 0")) is kd
    assert explain(mism("madvise 0x100000 0x2000 22", "faults 3 0", "faults 1 0")) is kd
    assert explain(mism("mlock 0x100000 0x2000", "faults 2 0", "faults 1 0")) is kd
    assert explain(mism(populate, "faults 1 0", "faults 2 0")) is None  # vmsim faulted more
    assert explain(mism(populate, "faults 2 1", "faults 1 0")) is None  # majors differ
    assert explain(mism("mmap 0x40d000 0x2000 4 0x8032 -1 0", "faults 2 0", "faults 1 0")) is None
    assert explain(mism("mmap 0x40d000 0x2000 4 0x12 3 0", "faults 2 0", "faults 1 0")) is None
    assert explain(mism("touch 0x40d000 r", "faults 2 0", "faults 1 0")) is None
    assert explain(mism(populate, "Rss:                   4 kB",
                        "Rss:                   8 kB")) is None
