"""The files a script maps: one directory used by both sides.

vmsim's root is the same host directory the host runner works in, so a file
has the same device and inode number on both sides.  Before each side runs,
:func:`reset_files` rewrites every file in place (same inode), syncs it and
drops it from the host's page cache, so both start from the same contents
with a cold cache (which decides major faults, read-ahead and ``mincore``).
The directory must be on a disk file system: on tmpfs there is no cold cache.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FileSet:
    """The directory of files a script may use (the same on both sides).

    ``relative=True`` makes :meth:`path` give bare names, which both sides
    resolve against that directory (the host runner's working directory,
    vmsim's root); otherwise it gives absolute host paths, which vmsim's
    side maps into its root.
    """

    dir: Path
    relative: bool = False

    def path(self, name: str) -> str:
        return name if self.relative else str(self.dir / name)


@dataclass(frozen=True)
class FileSpec:
    """Named contents of a file set: the files (name -> bytes) and empty directories."""

    files: Mapping[str, bytes] = field(default_factory=dict)
    dirs: Sequence[str] = ()


def write_synced(path: Path, data: bytes) -> None:
    """Write *path* in place (same inode), sync it and drop it from the page cache."""
    with open(path, "r+b" if path.exists() else "wb") as f:
        f.truncate(0)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def reset_files(d: Path, files: Mapping[str, bytes], dirs: Sequence[str] = (),
                keep: Sequence[str] = ()) -> None:
    """Make *d* hold exactly *files* and *dirs* (and whatever of *keep* is there), reusing
    existing inodes."""
    wanted = set(files) | set(dirs) | set(keep)
    for entry in list(d.iterdir()):
        if entry.name not in wanted:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    for name in dirs:
        (d / name).mkdir(exist_ok=True)
    for name, data in files.items():
        write_synced(d / name, data)


def on_tmpfs(path: Path) -> bool:
    """Whether *path* is on tmpfs, where pages cannot be dropped to a cold cache."""
    try:
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return False
    best, fstype = "", ""
    target = str(path.resolve())
    for parts in mounts:
        if "-" not in parts:
            continue
        mnt = parts[4]
        kind = parts[parts.index("-") + 1]
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, kind
    return fstype == "tmpfs"
