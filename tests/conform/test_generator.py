"""The random script generator: deterministic, any length, never outside its zones."""

from __future__ import annotations

from vmsim.conform.generator import STACK_TOP, ZONES, generate
from vmsim.conform.script import REGION_SIZE, parse_num, words

DESTRUCTIVE = {"mmap", "munmap", "mprotect", "mremap", "madvise"}


def test_deterministic_by_seed_and_index() -> None:
    assert generate(1, 5) == generate(1, 5)
    assert generate(1, 5) != generate(1, 6)
    assert generate(1, 5) != generate(2, 5)


def test_any_length() -> None:
    for n in (1, 10, 200):
        assert len(generate(7, 0, n).lines) >= n


def test_forks_are_balanced_and_nest_at_most_twice() -> None:
    for i in range(100):
        depth = 0
        for line in generate(3, i).lines:
            w = words(line)[0]
            depth += (w == "fork") - (w == "endchild")
            assert 0 <= depth <= 2
        assert depth == 0


def test_ranges_stay_in_the_region() -> None:
    """Every range a destructive call could act on lies in the region (or is refused early)."""
    lo = min(z for z, _ in ZONES) - 0x10000
    for i in range(300):
        for line in generate(11, i).lines:
            w = words(line)
            if w[0] not in DESTRUCTIVE or w[1].startswith("h"):
                continue
            addr, length = parse_num(w[1]), parse_num(w[2])
            assert lo <= addr < STACK_TOP + 0x10000 < REGION_SIZE, line
            if length < 1 << 63:
                assert addr + length < REGION_SIZE, line
            if w[0] == "mremap":
                assert parse_num(w[5]) + parse_num(w[3]) < REGION_SIZE or parse_num(w[4]) & 2 == 0


def test_never_dangerous_advice_or_unsafe_bytes() -> None:
    from vmsim.conform.corpus.handwritten import SAFE

    for i in range(300):
        for line in generate(5, i).lines:
            w = words(line)
            if w[0] == "madvise":
                assert parse_num(w[3]) not in (12, 100, 101), line
            if w[0] in ("write_at", "pwrite"):
                assert set(bytes.fromhex(w[-1])) <= set(SAFE), line
            if w[0] == "touch" and w[2] == "x" and not w[1].startswith("h"):
                assert parse_num(w[1]) % 4096 == 0, line
