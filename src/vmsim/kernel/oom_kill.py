"""The OOM killer (mm/oom_kill.c): when a fault cannot get a frame, kill the biggest task.

`out_of_memory` scores every live task as `oom_badness` does (resident
pages + page-table pages, the mm's footprint) and kills the highest with
SIGKILL, logging the kernel's line. Its memory is freed at once, so the
faulting task can retry. If the faulting task is itself the biggest, it is
the one killed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.kernel.signal import SIGKILL

if TYPE_CHECKING:
    from vmsim.kernel.task import Process


def oom_badness(task: Process) -> int:
    """Pages the kill would free: RSS (anon, file, shmem) + swap entries + page tables."""
    mm = task.mm
    return mm.get_mm_rss() + mm.rss_stat[2] + mm.pgtables_bytes // task.machine.kmem.page_size


def out_of_memory(current: Process) -> Process:
    """Choose and kill a victim; returns it (the caller retries unless it is itself)."""
    machine = current.machine
    candidates = [t for t in machine.processes.values() if (t.alive and t.pid != 1) or t is current]
    victim = max(candidates, key=lambda t: (oom_badness(t), t is current, -t.pid))
    mm = victim.mm
    kb = machine.kmem.page_size // 1024
    line = (f"Out of memory: Killed process {victim.pid} ({victim.comm}) "
            f"total-vm:{mm.total_vm * kb}kB, anon-rss:{mm.rss_stat[1] * kb}kB, "
            f"file-rss:{mm.rss_stat[0] * kb}kB, shmem-rss:{mm.rss_stat[3] * kb}kB, "
            f"UID:{victim.cred_uid} pgtables:{mm.pgtables_bytes // 1024}kB oom_score_adj:0")
    machine.kernel_log.append(line)
    victim.log.append(line)
    machine.vm_oom_kills = getattr(machine, "vm_oom_kills", 0) + 1
    if victim is current:
        current.signal.pending[SIGKILL] = current.signal.pending.get(SIGKILL) or _kill_info()
        current.need_stop = True
    else:
        machine.sched.kill_task(victim, SIGKILL)
    return victim


def _kill_info():
    from vmsim.kernel.signal import SI_KERNEL, SigInfo

    return SigInfo(SIGKILL, SI_KERNEL)
