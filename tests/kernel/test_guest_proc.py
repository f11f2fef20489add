"""A program reads its own /proc: Linux-format lines, and vmsim's real fault counts.

The touch-64-MiB program counts its minor faults through /proc/self/stat
(field 10) around touching 64 MiB page by page, with transparent huge pages
disabled for itself (PR_SET_THP_DISABLE), on the host and on vmsim; the two
counts must agree within 10%.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.progs import build, install, run_native
from vmsim.machine import Machine

TOUCH = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static char buf[65536];

static long minflt(void) {
    int fd = open("/proc/self/stat", O_RDONLY);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    char *p = strrchr(buf, ')');
    long v = 0;
    for (int field = 2; p && *p; p++) {
        if (*p == ' ' && ++field == 10) { v = strtol(p + 1, NULL, 10); break; }
    }
    return v;
}

int main(void) {
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    size_t size = 64UL << 20;
    long before = minflt();
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t off = 0; off < size; off += 4096)
        p[off] = 1;
    long after = minflt();
    printf("minflt %ld\n", after - before);
    int fd = open("/proc/self/maps", O_RDONLY);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    fputs(buf, stdout);
    return 0;
}
"""

#: A /proc/PID/maps line (show_map_vma): range, perms, offset, dev, inode, padded name.
MAPS_LINE = re.compile(r"^[0-9a-f]{8,16}-[0-9a-f]{8,16} [r-][w-][x-][ps] [0-9a-f]{8} "
                       r"[0-9a-f]{2,}:[0-9a-f]{2,} \d+(\s+.*)?$")


def test_touch_64mib_minflt_matches_the_host_within_10_percent(tmp_path: Path) -> None:
    binary = build(TOUCH, "touch64")
    native = run_native(binary)
    host_flt = int(native.stdout.split()[1])
    guest = install(binary, tmp_path, "/touch64")
    m = Machine(memory="160M", root=tmp_path)
    result = m.run(guest, [guest])
    assert result.exit_code == 0, result
    lines = result.stdout.decode().splitlines()
    vm_flt = int(lines[0].split()[1])
    assert abs(vm_flt - host_flt) <= 0.1 * host_flt, (vm_flt, host_flt)
    assert vm_flt >= 16384  # one fault per page: no fault-around for anonymous memory
    maps = lines[1:]
    assert maps and all(MAPS_LINE.match(line) for line in maps), maps
    assert any(line.endswith("[stack]") for line in maps)
    assert any(line.endswith("/touch64") for line in maps)
    native_maps = native.stdout.decode().splitlines()[1:]
    # the same shape as the host's: same permissions column sequence for the program's areas
    assert [ln.split()[1] for ln in maps if ln.endswith("/touch64")] == \
        [ln.split()[1] for ln in native_maps if ln.split()[-1] == str(binary)]
    m.check()
