"""The soft-MMU engine: every TLB fill is vmsim's walk, visible, and never stale.

The program-level comparison with the default engine is in
`test_engines.py`; these tests look at the engine itself: the fills it
reports, the rights a fill grants, where it flushes, the privilege level it
runs at, and the exact fault address it recovers from the instruction.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from unicorn import UC_MEM_FETCH, UC_MEM_READ, UC_MEM_WRITE, UC_PROT_READ
from unicorn import UC_PROT_WRITE as W
from unicorn import x86_const as ux
from unicorn.unicorn_py3.unicorn import uc_tlb_entry

from tests.cpu.programs import binary, run_on
from tests.progs import have
from vmsim import Machine
from vmsim.arch.paging import walk
from vmsim.cpu.soft_cpu import SoftMmuCpu
from vmsim.cpu.x86_insn import Decoder, fault_address
from vmsim.kernel.signal import SIGSEGV
from vmsim.mm.fault import SEGV_ACCERR

R = UC_PROT_READ
needs_gcc = pytest.mark.skipif(not have("gcc"), reason="needs gcc to build the programs")


def soft_machine() -> tuple[Machine, SoftMmuCpu]:
    m = Machine(memory="32M", engine="soft")
    cpu = m.get_cpu()
    assert isinstance(cpu, SoftMmuCpu)
    return m, cpu


def fill(cpu: SoftMmuCpu, va: int, mem_type: int) -> tuple[bool, int, int]:
    """Call the TLB-fill hook as Unicorn would: (filled, paddr, perms)."""
    entry = uc_tlb_entry()
    ok = cpu._on_tlb_fill(cpu.uc, va, mem_type, entry, None)
    return bool(ok), entry.paddr, entry.perms


# ---- what a run reports -----------------------------------------------------------------------
def test_fills_are_counted_and_emitted() -> None:
    m = Machine(memory="64M", engine="soft")
    events = m.events.record()
    r = m.run("hello", timeout=60)
    assert r.exit_code == 0 and r.stdout
    cpu = m.cpu
    assert isinstance(cpu, SoftMmuCpu)
    fills = [e for e in events if e.kind == "tlb_fill"]
    assert fills and len(fills) == cpu.fills == m.stats["cpu.tlb_fills"]
    assert sum(cpu.fills_by_pid.values()) == cpu.fills
    assert {e.fields["access"] for e in fills} == {"READ", "WRITE", "EXEC"}
    for e in fills:
        f = e.fields
        assert f["pid"] == r.pid and f["addr"] % 4096 == 0 and f["phys"] % 4096 == 0
        want = {"READ": "r", "WRITE": "w", "EXEC": "x"}[f["access"]]
        assert want in f["perms"]
    # every fill followed a walk of the tables vmsim wrote: the fault events (demand paging)
    # come before the fill of the same page
    faulted = [e.fields["addr"] & ~0xFFF for e in events if e.kind == "fault"]
    assert faulted and set(faulted) <= {e.fields["addr"] for e in fills}
    assert m.stats["cpu.tlb_flushes"] >= 1


def test_runs_at_cpl3() -> None:
    """UC_TLB_VIRTUAL replaces only the page walk: the guest still runs in user mode."""
    m = Machine(memory="64M", engine="soft")
    m.run("hello", timeout=60)
    cpu = m.cpu
    assert isinstance(cpu, SoftMmuCpu)
    assert cpu.uc.reg_read(ux.UC_X86_REG_CS) & 3 == 3
    assert cpu.template.reg_read(ux.UC_X86_REG_CS) == 0x33


# ---- what a fill grants ---------------------------------------------------------------------------
def test_fill_grants_what_walks_proved_until_a_flush() -> None:
    m, cpu = soft_machine()
    p = m.spawn()
    a = p.mmap(None, 4096, "rw-", "private|anonymous")
    p.store(a, b"x")
    cpu._switch_mm(p)
    cpu.on_cpu = p
    try:
        ok, phys, perms = fill(cpu, a, UC_MEM_READ)
        assert ok and perms == R  # no write proven yet: a store must come back and walk
        assert phys == p.translate(a) & ~0xFFF
        assert fill(cpu, a, UC_MEM_WRITE)[2] == R | W
        assert fill(cpu, a, UC_MEM_READ)[2] == R | W  # a refill keeps what was proven
        cpu.flush_tlb()
        assert fill(cpu, a, UC_MEM_READ)[2] == R
    finally:
        cpu.on_cpu = None


def test_user_rights_come_from_vmsims_walker() -> None:
    """Clear the user bit of a present entry: a user read now faults with PROT|USER, and the
    kernel answers SEGV_ACCERR, as for a user access to a supervisor page on hardware."""
    m, cpu = soft_machine()
    p = m.spawn()
    a = p.mmap(None, 4096, "rw-", "private|anonymous")
    p.store(a, b"x")
    kmem = m.kmem
    leaf = walk(kmem.mode, kmem.phys, p.mm.pgd, a).steps[-1]
    kmem.phys.write_entry(leaf.entry_addr, 8, leaf.entry & ~kmem.mode.bits.user)
    cpu._switch_mm(p)
    cpu.on_cpu = p
    try:
        ok, _, _ = fill(cpu, a, UC_MEM_READ)
    finally:
        cpu.on_cpu = None
    assert not ok
    info = p.signal.pending[SIGSEGV]
    assert (info.code, info.addr, info.error_code) == (SEGV_ACCERR, a, 0b101)


def test_fetch_from_a_no_exec_page_faults() -> None:
    m, cpu = soft_machine()
    p = m.spawn()
    a = p.mmap(None, 4096, "rw-", "private|anonymous")
    p.store(a, b"\xc3")
    cpu._switch_mm(p)
    cpu.on_cpu = p
    try:
        assert fill(cpu, a, UC_MEM_READ)[0]
        assert not fill(cpu, a, UC_MEM_FETCH)[0]
    finally:
        cpu.on_cpu = None
    info = p.signal.pending[SIGSEGV]
    assert info.code == SEGV_ACCERR and info.error_code & 0x10  # PF_INSTR


def test_switch_flushes_when_the_address_space_changes() -> None:
    m, cpu = soft_machine()
    p, q = m.spawn(), m.spawn()
    cpu._switch_mm(p)
    n = cpu.flushes
    cpu._switch_mm(p)
    assert cpu.flushes == n  # the same mm runs again: Linux keeps the TLB
    cpu._switch_mm(q)
    assert cpu.flushes == n + 1
    cpu._proven[1] = R
    cpu._switch_mm(p)
    assert cpu.flushes == n + 2 and not cpu._proven


# ---- never stale ----------------------------------------------------------------------------------
@needs_gcc
def test_stale_entries_are_real_and_flushed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QEMU's TLB really caches vmsim's translations: with the mm's flush hook switched off
    the write through the stale writable entry succeeds after mprotect(PROT_READ), and the
    reads after PROT_NONE and munmap see the old frames. With the hook it all faults."""
    prog = binary("stale")
    good = run_on("soft", prog, tmp_path / "good").result.stdout.decode()
    assert "no fault" not in good and good.count("SIGSEGV code 2 at p+8\n") == 2
    assert good.count("SIGSEGV code 1 at p+8224") == 2  # munmap: SEGV_MAPERR, exact address
    monkeypatch.setattr(Machine, "_flush_cpu_tlb", lambda self, start, end: None)
    stale = run_on("soft", prog, tmp_path / "stale").result.stdout.decode()
    assert "write after mprotect(PROT_READ): no fault" in stale
    assert "read after munmap: 0" in stale


@needs_gcc
def test_mprotect_then_write_is_sigsegv(tmp_path: Path) -> None:
    run = run_on("soft", binary("stale_kill"), tmp_path)
    assert run.result.exit_code == 128 + SIGSEGV
    assert run.result.stdout == b"written 1\n"
    assert "segfault at" in run.result.kernel_log[0] and "error 7" in run.result.kernel_log[0]


# ---- the exact fault address -----------------------------------------------------------------------
REGS = {ux.UC_X86_REG_RDI: 0x5000_0ff8, ux.UC_X86_REG_RSI: 0x6000_0010,
        ux.UC_X86_REG_RSP: 0x7000_0000, ux.UC_X86_REG_RBP: 0x7000_1230,
        ux.UC_X86_REG_RAX: 0x10, ux.UC_X86_REG_FS_BASE: 0x8000_0000,
        ux.UC_X86_REG_RBX: 0x9000_0000, ux.UC_X86_REG_AL: 0x10}
RIP = 0x40_1000


def addr_of(code: str, page: int, access: int, rip: int = RIP) -> int:
    raw = bytes.fromhex(code)
    return fault_address(Decoder(), REGS.__getitem__, lambda va, n: raw[:n], page, 4096,
                         access, rip)


@pytest.mark.parametrize(("code", "page", "access", "want"), [
    ("488907", 0x5000_0000, 1, 0x5000_0ff8),  # mov [rdi], rax
    ("488907", 0x5000_1000, 1, 0x5000_1000),  # ... split into the next page: its first byte
    ("488b4710", 0x5000_1000, 0, 0x5000_1008),  # mov rax, [rdi+0x10]
    ("488b0500100000", 0x40_2000, 0, 0x40_2007),  # mov rax, [rip+0x1000]
    ("64488b042528000000", 0x8000_0000, 0, 0x8000_0028),  # mov rax, fs:[0x28]
    ("488b0406", 0x6000_0000, 0, 0x6000_0020),  # mov rax, [rsi+rax]
    ("50", 0x6fff_f000, 1, 0x6fff_fff8),  # push rax
    ("e800000000", 0x6fff_f000, 1, 0x6fff_fff8),  # call: the return address
    ("58", 0x7000_0000, 0, 0x7000_0000),  # pop rax
    ("c3", 0x7000_0000, 0, 0x7000_0000),  # ret
    ("c9", 0x7000_1000, 0, 0x7000_1230),  # leave reads [rbp]
    ("a4", 0x5000_0000, 1, 0x5000_0ff8),  # movsb: the store goes to [rdi] ...
    ("a4", 0x6000_0000, 0, 0x6000_0010),  # ... the load comes from [rsi]
    ("ff30", 0x6fff_f000, 1, 0x6fff_fff8),  # push [rax]: the implicit stack store
    ("ff30", 0x0, 0, 0x10),  # ... and the explicit load
    ("d7", 0x9000_0000, 0, 0x9000_0010),  # xlatb: [rbx + al]
    ("0fae07", 0x5000_1000, 1, 0x5000_1000),  # fxsave [rdi]: 512 bytes into the next page
    ("90", 0x40_1000, 2, RIP),  # a fetch: rip itself
    ("90", 0x40_2000, 2, 0x40_2000),  # ... or the page an instruction runs into
    ("ffff", 0x1234_5000, 0, 0x1234_5000),  # undecodable: the page
    ("488907", 0x1234_5000, 1, 0x1234_5000),  # no operand in that page: the page
])
def test_fault_address(code: str, page: int, access: int, want: int) -> None:
    assert addr_of(code, page, access) == want


def test_fault_address_32_bit_addressing() -> None:
    regs = dict(REGS)
    regs[ux.UC_X86_REG_EDI] = 0x5000_0ff8
    got = fault_address(Decoder(), regs.__getitem__, lambda va, n: bytes.fromhex("67488b07")[:n],
                        0x5000_0000, 4096, 0, RIP)
    assert got == 0x5000_0ff8


def test_machine_engine_choice() -> None:
    assert isinstance(Machine(memory="16M", engine="soft").get_cpu(), SoftMmuCpu)
    with pytest.raises(ValueError, match="unknown CPU engine"):
        Machine(memory="16M", engine="bogus").get_cpu()
