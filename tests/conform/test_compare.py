"""Normalisation and the first-difference diff."""

from __future__ import annotations

from pathlib import Path

from vmsim.conform.compare import (
    first_difference,
    format_difference,
    normalise,
    normalize_host_line,
    tokenize_file_ids,
)

HDR = "00100000-00102000 r-xp 00000000 fe:00 1234                       /lib.so"


def test_host_paths_become_guest_paths(tmp_path: Path) -> None:
    line = f"h00000000-h00001000 r--p 00000000 fe:00 12   {tmp_path}/a.bin"
    assert normalize_host_line("child: " + line, tmp_path).endswith("   /a.bin")


def test_file_ids_become_tokens_with_the_column() -> None:
    out = tokenize_file_ids(HDR, ["lib.so"])
    assert out == "00100000-00102000 r-xp 00000000 <dev> <ino:lib.so> @col65 /lib.so"
    assert tokenize_file_ids(HDR.replace("1234 ", "99 "), ["lib.so"]).endswith("@col63 /lib.so")
    assert tokenize_file_ids(HDR, ["other"]) == HDR
    assert tokenize_file_ids("Rss:  4 kB", ["lib.so"]) == "Rss:  4 kB"


def test_normalise_counts_rewrites(tmp_path: Path) -> None:
    shm = "00100000-00102000 rw-s 00000000 00:01 {} {}/dev/zero (deleted)"
    host = [shm.format(77, " " * 24), "end"]
    sim = [shm.format(1000, " " * 22), "end"]
    n = normalise(host, sim, tmp_path, [])
    assert n.host == n.sim and n.rewrites["shmem-inode"] == 1


def test_first_difference_locates_the_step() -> None:
    host = ["mark 0", "ret +0x0", "snap", "end", "mark 1", "ret 0", "snap", "Rss: 4", "end"]
    sim = [*host[:7], "Rss: 8", "end"]
    d = first_difference(host, sim)
    assert d is not None and d.step == 1 and d.index == 7
    assert d.host_seg == host[4:] and d.sim_seg == sim[4:]
    text = format_difference(["mmap 0 1 3 50 -1 0", "touch 0 w", "munmap 0 1"], d)
    assert ">    1  touch 0 w" in text and "munmap" not in text
    assert "-Rss: 4" in text and "+Rss: 8" in text
    assert first_difference(host, list(host)) is None
    short = first_difference(host, host[:5])
    assert short is not None and short.index == 5
