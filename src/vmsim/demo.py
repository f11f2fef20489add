"""`vmsim demo`: demand paging, the zero page, fork and copy-on-write, narrated.

Every number printed is read from the simulated machine (fault counters,
frame numbers from the page-table entries, /proc text), never written in.
"""

from __future__ import annotations

from vmsim.kernel.task import Process
from vmsim.machine import Machine

PAGES = 4


def _frames(proc: Process, addr: int, pages: int, page_size: int) -> list[str]:
    """The frame each page maps now, as pfn hex, or '-' if the MMU would fault."""
    out = []
    for i in range(pages):
        phys = proc.translate(addr + i * page_size)
        out.append("-" if phys is None else f"{phys // page_size:#x}")
    return out


def run_demo(memory: str = "64M", seed: int = 1, aslr: bool = True) -> str:
    """Run the scripted scenario and return its report."""
    m = Machine(memory=memory, seed=seed, aslr=aslr)
    ps = m.kmem.page_size
    lines: list[str] = []
    say = lines.append

    def faults(proc: Process) -> str:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(proc.mm.fault_kinds.items())) or "none"
        return f"minor={proc.min_flt} major={proc.maj_flt} ({kinds})"

    parent = m.spawn("parent")
    addr = parent.mmap(None, PAGES * ps, "rw-", "private|anonymous")
    say(f"1. parent (pid {parent.pid}) maps {PAGES} private anonymous pages at {addr:#x}: "
        f"no frame yet (demand paging)")
    say(f"   frames: {_frames(parent, addr, PAGES, ps)}")
    parent.load(addr, 1)
    say(f"2. a read of page 0 maps the shared zero page read-only: frames "
        f"{_frames(parent, addr, PAGES, ps)} (zero page pfn {m.kmem.zero_pfn:#x})")
    for i in range(PAGES):
        parent.store(addr + i * ps, f"parent page {i}".encode())
    say(f"3. writes to all {PAGES} pages: page 0 breaks away from the zero page (COW), the "
        f"others get fresh zeroed frames")
    say(f"   frames: {_frames(parent, addr, PAGES, ps)}   faults: {faults(parent)}")
    before = _frames(parent, addr, PAGES, ps)
    child = parent.fork()
    assert isinstance(child, Process)
    say(f"4. fork: child pid {child.pid} shares every frame, both sides write-protected")
    say(f"   parent frames {_frames(parent, addr, PAGES, ps)}  child frames "
        f"{_frames(child, addr, PAGES, ps)}")
    child.store(addr + ps, b"child was here")
    say("5. the child writes page 1: copy-on-write gives it a private copy")
    say(f"   parent frames {_frames(parent, addr, PAGES, ps)}  child frames "
        f"{_frames(child, addr, PAGES, ps)}")
    say(f"   parent still reads {parent.load(addr + ps, 13)!r}; child reads "
        f"{child.load(addr + ps, 14)!r}")
    parent.store(addr + 2 * ps, b"P")
    say("6. the parent writes page 2: it copies too (the child still maps the old frame)")
    say(f"   parent frames {_frames(parent, addr, PAGES, ps)}  child frames "
        f"{_frames(child, addr, PAGES, ps)}")
    changed = [i for i, (a, b) in enumerate(zip(before, _frames(parent, addr, PAGES, ps),
                                                strict=True)) if a != b]
    say(f"   parent pages whose frame changed since fork: {changed}")
    say(f"7. faults  parent: {faults(parent)}")
    say(f"           child:  {faults(child)}")
    stats = m.stats
    say(f"   machine: {stats.get('pgfault', 0)} faults, {stats.get('cow_copy', 0)} COW copies, "
        f"{stats.get('cow_reuse', 0)} COW reuses, {stats['tlb_fills']} TLB fills, "
        f"{stats['tlb_hits']} TLB hits, {stats.get('tlb_flush', 0)} TLB flushes")
    say(f"8. /proc/{parent.pid}/maps")
    lines.extend(parent.maps().splitlines())
    say(f"   /proc/{child.pid}/maps")
    lines.extend(child.maps().splitlines())
    child.exit()
    parent.exit()
    m.check()
    say(f"9. both exited; machine.check() passed: no leaked frame ({m.kmem.buddy.nr_free} free)")
    return "\n".join(lines) + "\n"
