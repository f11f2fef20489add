"""vtop: the crash-style walk of one address, on every paging mode."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vmsim.arch import MODES, get_mode
from vmsim.arch.paging import walk
from vmsim.cli import main
from vmsim.introspect.vtop import demo_process, vtop, vtop_main, vtop_process
from vmsim.machine import Machine


@pytest.fixture(scope="module", params=sorted(MODES))
def demo(request: pytest.FixtureRequest) -> tuple[Machine, object, dict[str, int]]:
    machine = Machine(arch=request.param, memory="64M", seed=3)
    proc, points = demo_process(machine)
    return machine, proc, dict(points)


def test_every_kind_of_entry(demo: tuple[Machine, object, dict[str, int]]) -> None:
    machine, proc, points = demo
    mode = machine.kmem.mode
    names = [lv.name for lv in mode.levels]
    ps = mode.page_size
    written = vtop_process(proc, points["written private page"])
    w = walk(mode, machine.kmem.phys, proc.mm.pgd, points["written private page"])
    assert written.phys == w.phys is not None and written.page_size == ps
    assert [lv.name for lv in written.levels] == names
    assert [lv.kind for lv in written.levels] == ["table"] * (len(names) - 1) + ["leaf"]
    assert written.levels[-1].entry == w.steps[-1].entry
    assert written.user_access.startswith("r") and written.user_access[1] == "-"  # COW after fork
    assert written.vma is not None and "rw-p" in written.vma
    zero = vtop_process(proc, points["read fault: zero page"])
    assert zero.phys is not None and zero.phys // ps == machine.kmem.zero_pfn
    none = vtop_process(proc, points["never touched"])
    assert none.phys is None and none.levels[-1].kind == "none" and none.levels[-1].entry == 0
    guard = vtop_process(proc, points["guard marker"])
    assert guard.levels[-1].kind == "guard" and "MADV_GUARD_INSTALL" in (guard.stop or "")
    assert guard.levels[-1].bits == ()
    protnone = vtop_process(proc, points["PROT_NONE"])
    if mode.bits.protnone:  # x86, ARM64, RISC-V: a non-present entry Linux counts as present
        assert protnone.phys is None and protnone.levels[-1].kind == "protnone"
        assert "PROTNONE" in protnone.levels[-1].bits
    else:  # PowerPC: PAGE_NONE is present with no rights
        assert protnone.phys is not None and protnone.user_access == "---"
    assert "---p" in (protnone.vma or "")
    outside = vtop_process(proc, points["outside every VMA"])
    assert outside.phys is None and outside.vma is not None and "no VMA" in outside.vma
    shared = vtop_process(proc, points["shared anonymous"])
    assert shared.phys is not None and shared.user_access[:2] == "rw"


def test_text_rendering(demo: tuple[Machine, object, dict[str, int]]) -> None:
    machine, proc, points = demo
    mode = machine.kmem.mode
    text = vtop_process(proc, points["shared anonymous"]).text()
    assert mode.name in text and "VIRTUAL" in text and "PHYSICAL" in text
    for lv in mode.levels:
        assert f"{lv.name.upper()}:" in text
    assert "PAGE:" in text and "VMA:" in text and "rw-s" in text
    stop = vtop_process(proc, points["never touched"]).text()
    assert "(not mapped)" in stop and "STOP:" in stop


def test_vtop_reads_only(demo: tuple[Machine, object, dict[str, int]]) -> None:
    machine, proc, points = demo
    before = bytes(machine.kmem.phys.mv)
    for va in points.values():
        vtop_process(proc, va)
    assert bytes(machine.kmem.phys.mv) == before


@pytest.mark.parametrize("name", ["x86_64", "i386", "arm64-4k", "riscv-sv39", "ppc64-64k"])
def test_swap_entry_is_decoded(name: str) -> None:
    machine = Machine(arch=name, memory="32M", seed=1)
    proc, points = demo_process(machine)
    va = dict(points)["never touched"]
    mode = machine.kmem.mode
    slot = walk(mode, machine.kmem.phys, proc.mm.pgd, va).steps[-1].entry_addr
    mode.write_entry(machine.kmem.phys, slot, mode.swp_entry_to_pte(3, 0x1234))
    try:
        v = vtop_process(proc, va)
        assert v.swap == (3, 0x1234) and v.levels[-1].kind == "swap"
        assert "swap entry: type 3, offset 0x1234" in v.text()
    finally:
        mode.write_entry(machine.kmem.phys, slot, 0)


class _Ram:
    def __init__(self) -> None:
        self.mem = bytearray(1 << 20)

    def read_entry(self, phys: int, size: int) -> int:
        return int.from_bytes(self.mem[phys:phys + size], "little")

    def write_entry(self, phys: int, size: int, value: int) -> None:
        self.mem[phys:phys + size] = value.to_bytes(size, "little")


@pytest.mark.parametrize(("name", "leaf_bits"), [("x86_64", 0x80 | 0x7), ("riscv-sv39", 0x1F)])
def test_large_leaf_on_bare_tables(name: str, leaf_bits: int) -> None:
    """vtop on a Kmem-like object: a 2 MiB leaf one level above the last."""
    mode = get_mode(name)
    ram = _Ram()
    kmem = SimpleNamespace(mode=mode, phys=ram)
    va = 0x4020_1234
    table = 0x1000
    for lvl in range(len(mode.levels) - 2):
        nxt = table + 0x1000
        ram.write_entry(table + mode.index(lvl, va) * 8, 8, mode.make_entry(nxt >> 12, mode.table_flags))
        table = nxt
    ram.write_entry(table + mode.index(len(mode.levels) - 2, va) * 8, 8,
                    mode.make_entry(0x600, leaf_bits))
    v = vtop(kmem, 0x1000, va)
    assert v.phys == 0x60_0000 + (va & 0x1F_FFFF) and v.page_size == 2 << 20
    assert v.levels[-1].kind == "leaf (2 MiB)" and "(2 MiB)" in v.text()
    assert v.user_access == "rwx"


def test_non_canonical_address() -> None:
    kmem = SimpleNamespace(mode=get_mode("x86_64"), phys=_Ram())
    v = vtop(kmem, 0x1000, 1 << 50)
    assert v.phys is None and "canonical" in (v.stop or "") and v.levels == ()


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vtop", "--arch", "arm64-16k"]) == 0
    out = capsys.readouterr().out
    assert "## COW after fork" in out and "arm64-16k: 4 levels, 16 KiB pages" in out
    assert main(["vtop", "--arch", "i386", "0x1000", "3221225472"]) == 0
    out = capsys.readouterr().out
    assert "## 0x1000" in out and "## 0xc0000000" in out and "VIRTUAL     PHYSICAL" in out
    assert main(["vtop", "notanumber"]) == 2
    with pytest.raises(SystemExit):
        main(["vtop", "--arch", "vax"])


def test_cli_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vtop", "--sample", "hello"]) == 0
    out = capsys.readouterr().out
    assert "[stack]" in out and "## top of the stack" in out and "/hello" in out
    assert main(["vtop", "--sample", "nosuch"]) == 2


def test_vtop_main_default_addresses() -> None:
    text = vtop_main("ppc32", [])
    assert "ppc32: 2 levels, 4 KiB pages" in text and "PRESENT" in text
