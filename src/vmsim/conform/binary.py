"""Binary mode: the host runner itself, as one static executable, under vmsim.

The purest comparison: the same `vmops` binary (built with ``-static``)
runs the same script on the host kernel and as a real program on vmsim
(`Machine.run`), where every one of its memory accesses goes through
vmsim's page tables and every /proc read it makes is answered by vmsim's
procfs. Both outputs then go through the API mode's normalisation and
comparison.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from vmsim.conform.host import HostRun, HostToolError, build_vmops, parse_output

#: The runner's name inside the sandbox root (hidden, so it is not one of the case's files).
GUEST_PATH = "/.vmops"
#: RAM for the guest: the runner's 64 MiB window plus its own buffers and libc.
MEMORY = "512M"


#: The runner's file name in the root, which resetting the case's files keeps in place (so
#: that the files a script creates get the same inode numbers on both sides).
RUNNER_NAME = GUEST_PATH.lstrip("/")


def install_runner(root: Path) -> Path:
    """The static runner in *root*, copied there once."""
    dest = root / RUNNER_NAME
    exe = build_vmops(static=True)
    if not dest.exists() or dest.stat().st_size != exe.stat().st_size:
        shutil.copy2(exe, dest)
    return dest


def run_binary_on_vmsim(script: Sequence[str], root: Path, soft_dirty: bool,
                        timeout: float = 120.0) -> tuple[HostRun, object]:
    """Run the static runner (already in *root*) on a fresh vmsim machine whose root is
    *root*; returns its output (parsed as the host's is) and the machine, for invariant
    checks."""
    from vmsim.machine import Machine

    machine = Machine(memory=MEMORY, seed=1, root=root)
    machine.kmem.sysctl.mem_soft_dirty = soft_dirty
    data = "".join(line + "\n" for line in script).encode()
    result = machine.run(GUEST_PATH, [GUEST_PATH], env=[], stdin=data, timeout=timeout)
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    if result.timed_out or result.exit_code != 0:
        machine.close()
        raise HostToolError(
            f"vmops under vmsim exited with {result.exit_code}"
            f"{' (timed out)' if result.timed_out else ''}\nstderr:\n{stderr}\n"
            f"kernel log:\n" + "\n".join(result.kernel_log[-5:]) + f"\nstdout:\n{stdout[-2000:]}")
    return parse_output(stdout, stderr), machine
