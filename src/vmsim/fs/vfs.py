"""A VFS over one host directory: guests see only that root (the sandbox).

Paths are resolved inside the root with symlinks followed only while they
stay inside it; anything else is -ENOENT or -EACCES. One `Inode` per host
file (keyed by device and inode number) is shared by every open, so every
process mapping the file shares one page cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from vmsim.mm import mman as m
from vmsim.mm.filemap import FMODE_READ, FMODE_WRITE, File, HostBacking, Inode
from vmsim.mm.kmem import Kmem

O_ACCMODE = 0o3
O_RDONLY = 0
O_WRONLY = 1
O_RDWR = 2
O_CREAT = 0o100
O_EXCL = 0o200
O_TRUNC = 0o1000
O_APPEND = 0o2000


class Vfs:
    """Opens files under `root` for a machine; `root=None` means no files at all."""

    def __init__(self, kmem: Kmem, root: str | os.PathLike[str] | None) -> None:
        self.kmem = kmem
        self.root = Path(root).resolve() if root is not None else None
        self.inodes: dict[tuple[int, int], Inode] = {}

    def resolve(self, path: str) -> Path | int:
        """The host path for a guest path, or -errno if it would leave the root."""
        if self.root is None:
            return -m.ENOENT
        if "\0" in path:
            return -m.EINVAL
        guest = Path("/") / path.lstrip("/")
        host = (self.root / guest.relative_to("/")).resolve()
        if host != self.root and self.root not in host.parents:
            return -m.EACCES
        return host

    def open(self, path: str, flags: int, mode: int = 0o644) -> File | int:
        """open(2) semantics for the flags vmsim supports; a File or -errno."""
        host = self.resolve(path)
        if isinstance(host, int):
            return host
        acc = flags & O_ACCMODE
        if acc == 3:
            return -m.EINVAL
        host_flags = {O_RDONLY: os.O_RDONLY, O_WRONLY: os.O_WRONLY, O_RDWR: os.O_RDWR}[acc]
        if flags & O_CREAT:
            host_flags |= os.O_CREAT
        if flags & O_EXCL:
            host_flags |= os.O_EXCL
        if flags & O_TRUNC:
            host_flags |= os.O_TRUNC
        try:
            if host.is_dir() and acc != O_RDONLY:
                return -m.EISDIR
            os.close(os.open(host, host_flags | os.O_CLOEXEC, mode))  # permission, create, trunc
            st = os.stat(host)
        except OSError as exc:
            return -(exc.errno or m.EIO)
        key = (st.st_dev, st.st_ino)
        inode = self.inodes.get(key)
        if inode is None:
            try:
                fd = os.open(host, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                fd = os.open(host, os.O_RDONLY | os.O_CLOEXEC)
            inode = Inode(ino=st.st_ino, dev=(os.major(st.st_dev), os.minor(st.st_dev)),
                          i_size=st.st_size, backing=HostBacking(fd), i_mode=st.st_mode)
            self.inodes[key] = inode
        elif flags & O_TRUNC:
            inode.i_size = 0
        f_mode = (FMODE_READ if acc in (O_RDONLY, O_RDWR) else 0) | (
            FMODE_WRITE if acc in (O_WRONLY, O_RDWR) else 0)
        return File(inode, "/" + str(host.relative_to(self.root)) if self.root else path,
                    f_mode, flags)
