"""A VFS over one host directory: guests see only that root (the sandbox).

Path lookup is fs/namei.c's, done by vmsim itself, component by component,
as `openat2(RESOLVE_IN_ROOT)` would do it: every host call names a single
component relative to a host directory descriptor that the walk itself
obtained (with `O_NOFOLLOW`), never a host path. So

* `..` pops the walk's own stack of directories and stops at the root
  (follow_dotdot() at `nd->root`), as in a chroot;
* a symlink is read (`readlinkat`) and its body walked by vmsim: an absolute
  body restarts at the root (nd_jump_root()), a relative one at the link's
  directory; more than MAXSYMLINKS (40) links in one lookup is -ELOOP;
* a host component that is swapped for a symlink between two steps is just
  a symlink the next step refuses to follow, so nothing outside the root is
  ever opened, stat'ed, listed or modified.

Calls that act on a final component without following it (mkdir, unlink,
rmdir, rename, symlink) hand the host the parent's descriptor and the last
name (with its trailing slash, which those calls never follow); the host
kernel then gives Linux's own errno for EEXIST, ENOTEMPTY, EISDIR, EINVAL
(a directory into itself) and so on. Cases with no last name (`.`, `..`,
`/`) are answered here, as filename_parentat()'s callers do.

One `Inode` per host file (keyed by device and inode number) is shared by
every open, so every process mapping the file shares one page cache. An
inode whose host file loses its last link is moved aside (an orphan, still
usable by whoever has it open or mapped) so that a recycled host inode
number gets a fresh `Inode`. The host descriptor behind an inode is
read-only unless a guest opened the file for writing, and is closed when the
inode goes away.

/dev/null, zero, full, random and urandom exist in every root (`CharDevice`,
drivers/char/mem.c); the host's own nodes of those numbers are never opened.

Where vmsim knowingly differs: attributes (inode and device numbers, times,
owners) are the host file's; d_off in getdents64 is an index, not a hash
cookie; a task's working directory is kept as a path, so a cwd that is
removed (or renamed away) makes relative lookups fail with ENOENT, where
Linux still reaches the dead directory; likewise a directory descriptor used
by an *at call stands for the path it was opened by. chmod and file creation drop the
set-user-ID and set-group-ID bits of non-directories (the sandbox's rule).
"""

from __future__ import annotations

import ctypes
import errno as E
import os
import stat as S
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from vmsim.mm.filemap import FMODE_READ, FMODE_WRITE, File, HostBacking, Inode, drop_page_cache
from vmsim.mm.kmem import Kmem
from vmsim.mm.truncate import truncate_setsize

R = TypeVar("R")

# Guest (x86-64 Linux) open flags; translated to the host's `os` constants explicitly.
O_ACCMODE = 0o3
O_RDONLY = 0
O_WRONLY = 1
O_RDWR = 2
O_CREAT = 0o100
O_EXCL = 0o200
O_NOCTTY = 0o400
O_TRUNC = 0o1000
O_APPEND = 0o2000
O_NONBLOCK = 0o4000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_CLOEXEC = 0o2000000
O_PATH = 0o10000000
O_TMPFILE = 0o20000000 | O_DIRECTORY
O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4

MAXSYMLINKS = 40
NAME_MAX = 255
LAST_NORM, LAST_ROOT, LAST_DOT, LAST_DOTDOT = 0, 1, 2, 3
#: d_type values of struct linux_dirent64, by file type.
DT_OF_MODE = {S.S_IFIFO: 1, S.S_IFCHR: 2, S.S_IFDIR: 4, S.S_IFBLK: 6, S.S_IFREG: 8,
              S.S_IFLNK: 10, S.S_IFSOCK: 12}

_PATH_FD = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _errno(exc: OSError) -> int:
    return -(exc.errno or E.EIO)


class VfsBacking(HostBacking):
    """A host file held open by the VFS for its inode: `level` 2 read-write, 1 one way only,
    0 an O_PATH descriptor (stat only). The descriptor closes when the inode goes away.
    Host I/O errors never escape as exceptions: a failed read reads nothing."""

    def __init__(self, fd: int, level: int) -> None:
        super().__init__(fd)
        self.level = level

    def pread(self, offset: int, n: int) -> bytes:
        try:
            return os.pread(self.fd, n, offset)
        except OSError:
            return b""

    def pwrite(self, offset: int, data: bytes) -> None:
        try:
            os.pwrite(self.fd, data, offset)
        except OSError:
            pass

    def truncate(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
        except OSError:
            pass

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def replace(self, fd: int, level: int) -> None:
        old, self.fd, self.level = self.fd, fd, level
        os.close(old)

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


@dataclass(eq=False)
class DirFile(File):
    """An open directory: getdents64 reads a snapshot of its entries taken at position 0
    (name, inode number, d_type); f_pos indexes the snapshot."""

    entries: list[tuple[bytes, int, int]] | None = field(default=None)


#: The character devices every Linux system has (drivers/char/mem.c), by name: (major, minor).
MEM_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
               "urandom": (1, 9)}
DEV_READ_MAX = 1 << 20  # at most this much per read of /dev/zero or /dev/urandom


@dataclass(eq=False)
class CharDevice:
    """An open memory device (drivers/char/mem.c): /dev/null reads end of file and swallows
    writes, /dev/zero reads zeroes, /dev/full fails writes with ENOSPC, /dev/random and
    /dev/urandom read bytes from the machine's seeded generator (runs stay deterministic).

    vmsim provides these when the root has no such node (as a container runtime does) and
    in place of the host's own nodes, which are never opened."""

    name: str
    f_flags: int = 2
    f_pos: int = 0
    inode: Inode = field(init=False)

    def __post_init__(self) -> None:
        minor = MEM_DEVICES[self.name][1]
        self.inode = Inode(ino=0x100 + minor, dev=(0, 5), i_size=0, backing=None,
                           i_mode=S.S_IFCHR | 0o666)

    @property
    def rdev(self) -> int:
        return os.makedev(*MEM_DEVICES[self.name])

    def read(self, task: object, n: int) -> bytes | int:
        n = min(n, DEV_READ_MAX)
        if self.name == "null":
            return b""
        if self.name in ("random", "urandom"):
            return task.machine.rng.randbytes(n)  # type: ignore[attr-defined]
        return bytes(n)

    def write(self, task: object, data: bytes) -> int:
        return -E.ENOSPC if self.name == "full" else len(data)


def lexical_parts(path: str) -> list[str]:
    """A guest path's components with "." and ".." resolved as text (".." at the root stays
    at the root), for the names vmsim itself provides (/dev's memory devices, /proc)."""
    parts: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            continue
        parts.append(p)
    return parts


def mem_device_name(path: str) -> str | None:
    """The memory device a guest path names lexically ("/dev/null" -> "null"), or None."""
    parts = lexical_parts(path)
    if len(parts) == 2 and parts[0] == "dev" and parts[1] in MEM_DEVICES:
        return parts[1]
    return None


class Nameidata:
    """struct nameidata (fs/namei.c): where a lookup stands.

    `stack` holds (name, O_PATH descriptor) for each directory from the root
    down; `leaf` a non-directory result. `last`/`last_type`/`trailing` are
    the final component as filename_parentat() leaves it. The descriptors
    belong to the walk and are closed by `close()`.
    """

    def __init__(self, root_fd: int) -> None:
        self.stack: list[tuple[str, int]] = [("", root_fd)]
        self.leaf: tuple[str, int, os.stat_result] | None = None
        self.last = ""
        self.last_type = LAST_ROOT
        self.trailing = False
        self.links = 0
        self.must_dir = False

    @property
    def dir_fd(self) -> int:
        return self.stack[-1][1]

    @property
    def last_name(self) -> str:
        """`last` as the host is given it: with the path's trailing slash, if it had one
        (so the host checks that the object is a directory)."""
        return self.last + ("/" if self.trailing else "")

    def close(self) -> None:
        """Close the walk's descriptors (the root's belongs to the Vfs)."""
        if self.leaf is not None:
            os.close(self.leaf[1])
            self.leaf = None
        for _, fd in self.stack[1:]:
            os.close(fd)
        self.stack = []

    def jump_root(self) -> None:
        """nd_jump_root(): back to the sandbox root."""
        self.drop_leaf()
        while len(self.stack) > 1:
            os.close(self.stack.pop()[1])

    def drop_leaf(self) -> None:
        if self.leaf is not None:
            os.close(self.leaf[1])
            self.leaf = None

    def dotdot(self) -> None:
        """follow_dotdot(): the parent, but never above the root."""
        self.drop_leaf()
        if len(self.stack) > 1:
            os.close(self.stack.pop()[1])

    # ---- the result of a lookup -----------------------------------------------------------
    @property
    def is_dir(self) -> bool:
        return self.leaf is None

    @property
    def fd(self) -> int:
        """The O_PATH descriptor of the object found."""
        return self.leaf[1] if self.leaf is not None else self.stack[-1][1]

    def at(self) -> tuple[int, str]:
        """(directory descriptor, name) naming the object found without following it."""
        if self.leaf is not None:
            return self.stack[-1][1], self.leaf[0]
        return self.stack[-1][1], "."

    @property
    def path(self) -> str:
        """d_path(): the guest's canonical path of the object found."""
        names = [n for n, _ in self.stack[1:]]
        if self.leaf is not None:
            names.append(self.leaf[0])
        return "/" + "/".join(names)

    @property
    def parent_path(self) -> str:
        return "/" + "/".join(n for n, _ in self.stack[1:])


class Vfs:
    """Files under `root` for a machine; `root=None` means no files at all.

    Methods take absolute guest paths (a relative one is taken from the
    root) and return a result or -errno, as the system calls do.
    `read_only` makes every change -EROFS (a read-only mount).
    """

    def __init__(self, kmem: Kmem, root: str | os.PathLike[str] | None,
                 read_only: bool = False) -> None:
        self.kmem = kmem
        self.root = Path(root).resolve() if root is not None else None
        self.read_only = read_only
        self.inodes: dict[tuple[int, ...], Inode] = {}
        self._orphans = 0
        self._root_fd: int | None = None
        self._root_for: Path | None = None
        old = os.umask(0o022)
        os.umask(old)
        self.host_umask = old
        #: Guests may not make set-user-ID or set-group-ID files on the host: other host
        #: users could run them with vmsim's identity (root's, if vmsim runs as root).
        self.file_mode_mask = 0o1777

    # ---- path walk (fs/namei.c) --------------------------------------------------------------
    def _start(self) -> Nameidata | int:
        """A walk at the root (whose O_PATH descriptor the Vfs keeps open)."""
        if self.root is None:
            return -E.ENOENT
        if self._root_fd is None or self._root_for != self.root:
            self._close_root()
            try:
                self._root_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                return _errno(exc)
            self._root_for = self.root
        return Nameidata(self._root_fd)

    def _close_root(self) -> None:
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def __del__(self) -> None:
        try:
            self._close_root()
        except (OSError, AttributeError):
            pass

    def _lookup_one(self, nd: Nameidata, name: str, follow: bool,
                    dir_likely: bool = False) -> int | str:
        """lookup_fast()/lookup_slow() + step_into() for one normal component: the object
        becomes the top of the stack (a directory) or the leaf; a symlink to follow returns
        its body instead (0 or -errno otherwise). `dir_likely`: try it as a directory first
        (one host call for the usual middle component)."""
        if len(name.encode("utf-8", "surrogateescape")) > NAME_MAX:
            return -E.ENAMETOOLONG
        nd.drop_leaf()
        if dir_likely:
            try:
                nd.stack.append((name, os.open(name, _PATH_FD | os.O_DIRECTORY, dir_fd=nd.dir_fd)))
                return 0
            except NotADirectoryError:
                pass  # a symlink or a file: look again
            except OSError as exc:
                return _errno(exc)
        try:
            fd = os.open(name, _PATH_FD, dir_fd=nd.dir_fd)
        except OSError as exc:
            return _errno(exc)
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            return _errno(exc)
        if S.S_ISLNK(st.st_mode) and follow:
            os.close(fd)
            nd.links += 1
            if nd.links > MAXSYMLINKS:
                return -E.ELOOP
            try:
                body = os.readlink(name, dir_fd=nd.dir_fd)
            except OSError as exc:
                return _errno(exc)
            return body if body else -E.ENOENT
        if S.S_ISDIR(st.st_mode):
            nd.stack.append((name, fd))
        else:
            nd.leaf = (name, fd, st)
        return 0

    def _parentat(self, nd: Nameidata, path: str) -> int:
        """link_path_walk(): walk every component but the last, following symlinks; the
        last is left in nd.last / last_type / trailing."""
        if path.startswith("/"):
            nd.jump_root()
        comps = [c for c in path.split("/") if c]
        if not comps:
            nd.last, nd.last_type, nd.trailing = "", LAST_ROOT, False
            return 0
        for name in comps[:-1]:
            if nd.leaf is not None:
                return -E.ENOTDIR
            err = self._walk_component(nd, name)
            if err:
                return err
        if nd.leaf is not None:
            return -E.ENOTDIR
        last = comps[-1]
        nd.last = last
        nd.last_type = LAST_DOT if last == "." else LAST_DOTDOT if last == ".." else LAST_NORM
        nd.trailing = path.endswith("/")
        return 0

    def _walk_component(self, nd: Nameidata, name: str) -> int:
        """walk_component() for a component that is not the last: it must end as a
        directory (a symlink is followed through, its own last component included)."""
        if name == ".":
            return 0
        if name == "..":
            nd.dotdot()
            return 0
        got = self._lookup_one(nd, name, True, dir_likely=True)
        if isinstance(got, str):
            saved = nd.last, nd.last_type, nd.trailing, nd.must_dir
            err = self._parentat(nd, got)
            if not err:
                err = self._lookup_last(nd, True)
            nd.last, nd.last_type, nd.trailing, nd.must_dir = saved
            if err:
                return err
        elif got:
            return got
        return -E.ENOTDIR if nd.leaf is not None else 0

    def _lookup_last(self, nd: Nameidata, follow: bool) -> int:
        """lookup_last() in path_lookupat()'s loop: resolve nd.last (a trailing slash means
        follow and require a directory), following a final symlink if asked."""
        while True:
            if nd.last_type == LAST_DOTDOT:
                nd.dotdot()
            elif nd.last_type == LAST_NORM:
                if nd.trailing:
                    follow = nd.must_dir = True
                got = self._lookup_one(nd, nd.last, follow)
                if isinstance(got, str):
                    err = self._parentat(nd, got)
                    if err:
                        return err
                    continue
                if got:
                    return got
            break
        if nd.must_dir and nd.leaf is not None:
            return -E.ENOTDIR
        return 0

    def lookup(self, path: str, follow: bool = True, directory: bool = False) -> Nameidata | int:
        """filename_lookup(): the object at `path` (the caller closes the Nameidata)."""
        if not path:
            return -E.ENOENT
        nd = self._start()
        if isinstance(nd, int):
            return nd
        nd.must_dir = directory
        err = self._parentat(nd, path)
        if not err:
            err = self._lookup_last(nd, follow)
        if err:
            nd.close()
            return err
        return nd

    def parentat(self, path: str) -> Nameidata | int:
        """filename_parentat(): the directory holding the last component (caller closes)."""
        if not path:
            return -E.ENOENT
        nd = self._start()
        if isinstance(nd, int):
            return nd
        err = self._parentat(nd, path)
        if err:
            nd.close()
            return err
        return nd

    @staticmethod
    def _with_nd(nd: Nameidata | int, op: Callable[[Nameidata], R]) -> R | int:
        """`op` on the result of a lookup (`lookup`, `parentat`), closed afterwards; a
        failed lookup's -errno as it is."""
        if isinstance(nd, int):
            return nd
        try:
            return op(nd)
        finally:
            nd.close()

    def resolve(self, path: str) -> Path | int:
        """The host path of the object a guest path names (following symlinks inside the
        root), for display: vmsim itself never opens a host path it computed."""
        def op(nd: Nameidata) -> Path | int:
            assert self.root is not None
            return self.root / nd.path.lstrip("/")

        return self._with_nd(self.lookup(path), op)

    def canonical(self, path: str, directory: bool = False) -> str | int:
        """The guest's canonical path of an existing object (getcwd, chdir, /proc links)."""
        def op(nd: Nameidata) -> str | int:
            return nd.path

        return self._with_nd(self.lookup(path, True, directory), op)

    # ---- inodes --------------------------------------------------------------------------
    def _inode_for(self, fd: int, level: int) -> Inode:
        """iget(): the one Inode of the host file open at `fd` (which it adopts or closes)."""
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        inode = self.inodes.get(key)
        if inode is not None:
            backing = inode.backing
            stale = True
            if isinstance(backing, VfsBacking):
                try:
                    stale = os.fstat(backing.fd).st_nlink == 0 and st.st_nlink > 0
                except OSError:
                    stale = True
            if stale:
                self._orphan(key)
                inode = None
        if inode is None:
            inode = Inode(ino=st.st_ino, dev=(os.major(st.st_dev), os.minor(st.st_dev)),
                          i_size=st.st_size,
                          backing=VfsBacking(fd, level), i_mode=st.st_mode)
            self.inodes[key] = inode
            return inode
        assert isinstance(inode.backing, VfsBacking)
        if level > inode.backing.level:
            inode.backing.replace(fd, level)
        else:
            os.close(fd)
        inode.i_mode = st.st_mode
        return inode

    def _orphan(self, key: tuple[int, ...]) -> None:
        """The host file of inode `key` lost its last link: keep the Inode for its openers
        (under a key no host file has) and drop its unmapped cached pages."""
        inode = self.inodes.pop(key, None)
        if inode is None:
            return
        self._orphans += 1
        self.inodes[(-1, inode.ino, self._orphans)] = inode
        drop_page_cache(self.kmem, inode)

    def _forget_if_unlinked(self, key: tuple[int, int] | None) -> None:
        if key is None or key not in self.inodes:
            return
        backing = self.inodes[key].backing
        try:
            if isinstance(backing, VfsBacking) and os.fstat(backing.fd).st_nlink > 0:
                return
        except OSError:
            pass
        self._orphan(key)

    def _key_at(self, dir_fd: int, name: str) -> tuple[int, int] | None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    @staticmethod
    def _reopen(fd: int, flags: int) -> int | None:
        """A new descriptor for the very object `fd` refers to (the /proc magic link)."""
        try:
            return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError:
            return None

    # ---- open (fs/namei.c path_openat, fs/open.c) ------------------------------------------
    def mem_device(self, path: str) -> str | None:
        """The memory device `path` names: /dev/NAME when the root has no such entry, or a
        host character node with a memory device's number."""
        name = mem_device_name(path)
        if name is None:
            return None
        st = self.stat(path)
        if isinstance(st, int):
            return name if st == -E.ENOENT else None
        if S.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == MEM_DEVICES[name]:
            return name
        return None

    def open(self, path: str, flags: int, mode: int = 0o644) -> File | CharDevice | int:
        """do_filp_open(): a File for `path` with open(2)'s `flags` (guest values) and the
        creation `mode` (umask already applied), or -errno."""
        if "\0" in path:
            return -E.EINVAL
        if not path:
            return -E.ENOENT
        if flags & O_PATH:
            flags &= O_PATH_FLAGS
        elif flags & O_TMPFILE & ~O_DIRECTORY:
            if flags & (O_TMPFILE | O_CREAT) != O_TMPFILE or flags & O_ACCMODE == O_RDONLY:
                return -E.EINVAL
        elif flags & O_CREAT and flags & O_DIRECTORY:
            return -E.EINVAL
        if flags & O_TMPFILE & ~O_DIRECTORY:
            return self._open_tmpfile(path, flags, mode)
        dev = self.mem_device(path)
        if dev is not None:
            return CharDevice(dev, flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC))
        acc = flags & O_ACCMODE
        writes = not flags & O_PATH and (acc in (O_WRONLY, O_RDWR) or bool(flags & O_TRUNC))
        nd = self._start()
        if isinstance(nd, int):
            return nd
        try:
            err = self._parentat(nd, path)
            if err:
                return err
            got = self._open_last(nd, flags, mode, writes)
            if isinstance(got, int):
                return got
            fd, created = got
            return self._make_file(nd, fd, flags, created)
        finally:
            nd.close()

    def _host_flags(self, flags: int) -> int:
        if flags & O_PATH:
            out = os.O_PATH
        else:
            out = {O_RDONLY: os.O_RDONLY, O_WRONLY: os.O_WRONLY, O_RDWR: os.O_RDWR, 3: os.O_RDWR}[
                flags & O_ACCMODE]
            out |= os.O_NONBLOCK | os.O_NOCTTY  # a host FIFO or tty must never block vmsim
            if flags & O_TRUNC:
                out |= os.O_TRUNC
        if flags & O_DIRECTORY:
            out |= os.O_DIRECTORY
        return out | os.O_CLOEXEC | os.O_NOFOLLOW

    def _open_last(self, nd: Nameidata, flags: int, mode: int,
                   writes: bool) -> tuple[int, bool] | int:
        """open_last_lookups() + do_open(): a host descriptor for the last component with
        the guest's flags, and whether it was created."""
        follow = not flags & O_NOFOLLOW and not (flags & O_CREAT and flags & O_EXCL)
        creat = bool(flags & O_CREAT) and not flags & O_PATH
        host = self._host_flags(flags)
        while True:
            if nd.last_type != LAST_NORM:
                if nd.last_type == LAST_DOTDOT:
                    nd.dotdot()
                if creat:
                    return -E.EISDIR
                try:
                    return os.open(".", host, dir_fd=nd.dir_fd), False
                except OSError as exc:
                    return _errno(exc)
            if not creat and nd.trailing:
                follow = nd.must_dir = True
            if creat and nd.trailing:
                return -E.EISDIR
            if len(nd.last.encode("utf-8", "surrogateescape")) > NAME_MAX:
                return -E.ENAMETOOLONG
            try:
                st: os.stat_result | None = os.stat(nd.last, dir_fd=nd.dir_fd,
                                                    follow_symlinks=False)
            except FileNotFoundError:
                st = None
            except OSError as exc:
                return _errno(exc)
            if st is not None and S.S_ISLNK(st.st_mode) and follow:
                nd.links += 1
                if nd.links > MAXSYMLINKS:
                    return -E.ELOOP
                try:
                    body = os.readlink(nd.last, dir_fd=nd.dir_fd)
                except OSError as exc:
                    return _errno(exc)
                if not body:
                    return -E.ENOENT
                err = self._parentat(nd, body)
                if err:
                    return err
                continue
            if nd.must_dir:
                host |= os.O_DIRECTORY
            if self.read_only:
                if st is None and creat:
                    return -E.EROFS
                if st is not None and S.S_ISREG(st.st_mode) and writes:
                    return -E.EROFS
            created = st is None and creat
            try:
                if creat:
                    fd = os.open(nd.last, host | os.O_CREAT | (os.O_EXCL if flags & O_EXCL else 0),
                                 mode & self.file_mode_mask, dir_fd=nd.dir_fd)
                else:
                    fd = os.open(nd.last, host, dir_fd=nd.dir_fd)
            except OSError as exc:
                return _errno(exc)
            if created and mode & self.file_mode_mask & self.host_umask:
                try:
                    os.fchmod(fd, mode & self.file_mode_mask)
                except OSError:
                    pass
            return fd, created

    def _open_tmpfile(self, path: str, flags: int, mode: int) -> File | int:
        """do_tmpfile(): an unnamed regular file in the directory `path` names."""
        def op(nd: Nameidata) -> File | int:
            if self.read_only:
                return -E.EROFS
            acc = os.O_WRONLY if flags & O_ACCMODE == O_WRONLY else os.O_RDWR
            try:
                fd = os.open(".", os.O_TMPFILE | acc | os.O_CLOEXEC, mode & 0o7777,
                             dir_fd=nd.fd)
            except OSError as exc:
                return _errno(exc)
            try:
                os.fchmod(fd, mode & self.file_mode_mask)
            except OSError:
                pass
            nd.last_type = LAST_DOT
            return self._make_file(nd, fd, flags, True)

        return self._with_nd(self.lookup(path, True, True), op)

    def _make_file(self, nd: Nameidata, fd: int, flags: int, created: bool) -> File | int:
        """do_dentry_open(): wrap the host descriptor as the guest's struct file."""
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            return _errno(exc)
        acc = flags & O_ACCMODE
        if flags & O_PATH:
            level, f_mode = 0, 0
        else:
            level = 2 if acc in (O_RDWR, 3) else 1
            f_mode = {O_RDONLY: FMODE_READ, O_WRONLY: FMODE_WRITE,
                      O_RDWR: FMODE_READ | FMODE_WRITE, 3: 0}[acc]
        if acc == O_WRONLY and S.S_ISREG(st.st_mode):  # the page cache reads partial pages
            better = self._reopen(fd, os.O_RDWR)
            if better is not None:
                os.close(fd)
                fd, level = better, 2
        try:
            inode = self._inode_for(fd, level)
        except OSError as exc:
            os.close(fd)
            return _errno(exc)
        if flags & O_TRUNC and not flags & O_PATH and S.S_ISREG(st.st_mode) and not created:
            truncate_setsize(self.kmem, inode, 0)
        elif S.S_ISREG(st.st_mode) and created:
            inode.i_size = st.st_size
        if flags & O_TMPFILE & ~O_DIRECTORY:
            path = f"{nd.path.rstrip('/')}/#{st.st_ino} (deleted)"
        elif nd.last_type == LAST_NORM:
            path = nd.parent_path.rstrip("/") + "/" + nd.last
        else:
            path = nd.path
        cls = DirFile if S.S_ISDIR(st.st_mode) else File
        return cls(inode, path, f_mode, flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC))

    # ---- attributes (fs/stat.c, fs/open.c) ----------------------------------------------------
    def stat(self, path: str, follow: bool = True) -> os.stat_result | int:
        """vfs_statx() by path: the host attributes of the object found inside the root."""
        def op(nd: Nameidata) -> os.stat_result | int:
            return self._fstat_nd(nd)

        return self._with_nd(self.lookup(path, follow), op)

    def _fstat_nd(self, nd: Nameidata) -> os.stat_result | int:
        try:
            st = os.fstat(nd.fd)
        except OSError as exc:
            return _errno(exc)
        return st

    def fstat(self, f: File) -> os.stat_result | int:
        """vfs_fstat() of an open file: the host attributes, with vmsim's own size."""
        backing = f.inode.backing
        if not isinstance(backing, VfsBacking):
            return -E.EBADF
        try:
            return os.fstat(backing.fd)
        except OSError as exc:
            return _errno(exc)

    def access(self, path: str, mode: int, follow: bool = True) -> int:
        """do_faccessat() after the lookup: the host's answer for the object found (vmsim's
        guests run as the host user: root passes read/write checks, not execute)."""
        def op(nd: Nameidata) -> int:
            if mode & 2 and self.read_only:
                return -E.EROFS
            dfd, name = nd.at()
            try:
                ok = os.access(name, mode & 7, dir_fd=dfd, follow_symlinks=False)
            except (OSError, NotImplementedError):
                ok = os.access(f"/proc/self/fd/{nd.fd}", mode & 7)
            return 0 if ok else -E.EACCES

        return self._with_nd(self.lookup(path, follow), op)

    def readlink(self, path: str) -> bytes | int:
        """do_readlinkat(): the body of the symlink `path` names; -EINVAL if not a link."""
        def op(nd: Nameidata) -> bytes | int:
            if nd.leaf is None or not S.S_ISLNK(nd.leaf[2].st_mode):
                return -E.EINVAL
            dfd, name = nd.at()
            try:
                return os.readlink(name.encode("utf-8", "surrogateescape"), dir_fd=dfd)
            except OSError as exc:
                return _errno(exc)

        return self._with_nd(self.lookup(path, follow=False), op)

    def chmod(self, path: str, mode: int, follow: bool = True) -> int:
        """chmod_common() on the object found; a symlink's own mode cannot be changed
        (-EOPNOTSUPP, as fchmodat2(AT_SYMLINK_NOFOLLOW) on Linux)."""
        def op(nd: Nameidata) -> int:
            if nd.leaf is not None and S.S_ISLNK(nd.leaf[2].st_mode):
                return -E.EOPNOTSUPP
            return self._chmod_fd(nd.fd, mode)

        return self._with_nd(self.lookup(path, follow), op)

    def _chmod_fd(self, fd: int, mode: int) -> int:
        if self.read_only:
            return -E.EROFS
        try:
            st = os.fstat(fd)
            if not S.S_ISDIR(st.st_mode):
                mode &= self.file_mode_mask
            os.chmod(f"/proc/self/fd/{fd}", mode & 0o7777)
            st = os.fstat(fd)
        except OSError as exc:
            return _errno(exc)
        inode = self.inodes.get((st.st_dev, st.st_ino))
        if inode is not None:
            inode.i_mode = st.st_mode
        return 0

    def fchmod(self, f: File, mode: int) -> int:
        backing = f.inode.backing
        if not isinstance(backing, VfsBacking) or f.f_flags & O_PATH:
            return -E.EBADF
        return self._chmod_fd(backing.fd, mode)

    def chown(self, path: str, uid: int, gid: int, follow: bool = True) -> int:
        """chown_common() on the object found (-1 leaves an id unchanged)."""
        def op(nd: Nameidata) -> int:
            if self.read_only:
                return -E.EROFS
            dfd, name = nd.at()
            try:
                os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            except OSError as exc:
                return _errno(exc)
            return 0

        return self._with_nd(self.lookup(path, follow), op)

    def fchown(self, f: File, uid: int, gid: int) -> int:
        backing = f.inode.backing
        if not isinstance(backing, VfsBacking):
            return -E.EBADF
        if self.read_only:
            return -E.EROFS
        try:
            os.chown(f"/proc/self/fd/{backing.fd}", uid, gid)
        except OSError as exc:
            return _errno(exc)
        return 0

    def truncate(self, path: str, length: int) -> int:
        """do_sys_truncate(): by path, through the page cache of the file's one Inode."""
        nd = self.lookup(path)
        if isinstance(nd, int):
            return nd
        try:
            st = self._fstat_nd(nd)
            if isinstance(st, int):
                return st
            if S.S_ISDIR(st.st_mode):
                return -E.EISDIR
            if not S.S_ISREG(st.st_mode):
                return -E.EINVAL
            if self.read_only:
                return -E.EROFS
            fd = self._reopen(nd.fd, os.O_RDWR)
            if fd is None:
                dfd, name = nd.at()
                try:
                    fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                                 dir_fd=dfd)
                except OSError as exc:
                    return _errno(exc)
            inode = self._inode_for(fd, 1)
        finally:
            nd.close()
        return self.truncate_inode(inode, length)

    def truncate_inode(self, inode: Inode, length: int) -> int:
        """The host file first (so its errors, EFBIG, come back as errno), then the cache."""
        backing = inode.backing
        if isinstance(backing, VfsBacking):
            try:
                os.ftruncate(backing.fd, length)
            except OSError as exc:
                return _errno(exc)
        truncate_setsize(self.kmem, inode, length)
        return 0

    # ---- directories (fs/namei.c, fs/readdir.c) --------------------------------------------------
    def readdir(self, f: DirFile) -> list[tuple[bytes, int, int]] | int:
        """iterate_dir(): ".", ".." and the entries of an open directory (name, ino, d_type).
        The root's ".." is the root itself."""
        backing = f.inode.backing
        if not isinstance(backing, VfsBacking) or backing.level == 0:
            return -E.EBADF
        fd = self._reopen(backing.fd, os.O_RDONLY | os.O_DIRECTORY)
        if fd is None:
            fd = os.dup(backing.fd)
        try:
            st = os.fstat(fd)
            out = [(b".", st.st_ino, 4)]
            parent = self.lookup(f.path + "/..", True, True)
            pino = st.st_ino
            if not isinstance(parent, Nameidata):
                pass
            else:
                try:
                    pino = os.fstat(parent.fd).st_ino
                finally:
                    parent.close()
            out.append((b"..", pino, 4))
            with os.scandir(fd) as it:
                for entry in it:
                    name = os.fsencode(entry.name)
                    if entry.is_dir(follow_symlinks=False):
                        dt = 4
                    elif entry.is_symlink():
                        dt = 10
                    elif entry.is_file(follow_symlinks=False):
                        dt = 8
                    else:
                        try:
                            dt = DT_OF_MODE.get(S.S_IFMT(entry.stat(follow_symlinks=False).st_mode), 0)
                        except OSError:
                            dt = 0
                    out.append((name, entry.inode(), dt))
            return out
        except OSError as exc:
            return _errno(exc)
        finally:
            os.close(fd)

    def mkdir(self, path: str, mode: int) -> int:
        """do_mkdirat(): filename_create() with LOOKUP_DIRECTORY, then vfs_mkdir()."""
        def op(nd: Nameidata) -> int:
            if nd.last_type != LAST_NORM:
                return -E.EEXIST
            if self.read_only:  # filename_create() reports EEXIST before EROFS
                return -E.EEXIST if self._key_at(nd.dir_fd, nd.last) else -E.EROFS
            name = nd.last_name
            try:
                os.mkdir(name, mode & 0o1777, dir_fd=nd.dir_fd)
            except OSError as exc:
                return _errno(exc)
            if mode & 0o1777 & self.host_umask:
                try:
                    fd = os.open(nd.last, _PATH_FD | os.O_DIRECTORY, dir_fd=nd.dir_fd)
                    try:
                        self._chmod_fd(fd, (os.fstat(fd).st_mode & 0o2000) | (mode & 0o1777))
                    finally:
                        os.close(fd)
                except OSError:
                    pass
            return 0

        return self._with_nd(self.parentat(path), op)

    def rmdir(self, path: str) -> int:
        """do_rmdir(): `..` is -ENOTEMPTY, `.` -EINVAL, `/` -EBUSY; else the host's answer."""
        def op(nd: Nameidata) -> int:
            if nd.last_type != LAST_NORM:
                return {LAST_DOTDOT: -E.ENOTEMPTY, LAST_DOT: -E.EINVAL}.get(nd.last_type, -E.EBUSY)
            if self.read_only:
                return -E.EROFS if self._key_at(nd.dir_fd, nd.last) else -E.ENOENT
            key = self._key_at(nd.dir_fd, nd.last)
            try:
                os.rmdir(nd.last_name, dir_fd=nd.dir_fd)
            except OSError as exc:
                return _errno(exc)
            self._forget_if_unlinked(key)
            return 0

        return self._with_nd(self.parentat(path), op)

    def unlink(self, path: str) -> int:
        """do_unlinkat(): no last name is -EISDIR; else the host's answer (a trailing
        slash gives -ENOTDIR or -EISDIR)."""
        def op(nd: Nameidata) -> int:
            if nd.last_type != LAST_NORM:
                return -E.EISDIR
            key = self._key_at(nd.dir_fd, nd.last)
            if self.read_only:
                return -E.EROFS if key else -E.ENOENT
            try:
                os.unlink(nd.last_name, dir_fd=nd.dir_fd)
            except OSError as exc:
                return _errno(exc)
            self._forget_if_unlinked(key)
            return 0

        return self._with_nd(self.parentat(path), op)

    def symlink(self, target: str, path: str) -> int:
        """do_symlinkat(): filename_create() then vfs_symlink(); the body is stored as given
        (vmsim resolves it inside the root when it is followed)."""
        def op(nd: Nameidata) -> int:
            if nd.last_type != LAST_NORM:
                return -E.EEXIST
            if self.read_only:
                return -E.EEXIST if self._key_at(nd.dir_fd, nd.last) else -E.EROFS
            try:
                os.symlink(target.encode("utf-8", "surrogateescape"),
                           nd.last_name.encode("utf-8", "surrogateescape"),
                           dir_fd=nd.dir_fd)
            except OSError as exc:
                return _errno(exc)
            return 0

        return self._with_nd(self.parentat(path), op)

    def link(self, old: str, new: str, follow: bool = False) -> int:
        """do_linkat(): a new name for an existing non-directory."""
        def op(ond: Nameidata) -> int:
            def in_new(nnd: Nameidata) -> int:
                if nnd.last_type != LAST_NORM:
                    return -E.EEXIST
                if ond.leaf is None:
                    return -E.EPERM  # hard links to directories are not allowed
                if self.read_only:
                    return -E.EROFS
                odfd, oname = ond.at()
                try:
                    os.link(oname, nnd.last_name, src_dir_fd=odfd, dst_dir_fd=nnd.dir_fd,
                            follow_symlinks=False)
                except OSError as exc:
                    return _errno(exc)
                return 0

            return self._with_nd(self.parentat(new), in_new)

        return self._with_nd(self.lookup(old, follow), op)

    def rename(self, old: str, new: str, flags: int = 0) -> int:
        """do_renameat2(): flag checks, then the last-component rules (EBUSY, EEXIST under
        RENAME_NOREPLACE), then the host's rename of one name in one directory to another."""
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
            return -E.EINVAL
        if flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) and flags & RENAME_EXCHANGE:
            return -E.EINVAL
        def op(ond: Nameidata) -> int:
            def in_new(nnd: Nameidata) -> int:
                if ond.last_type != LAST_NORM:
                    return -E.EBUSY
                if nnd.last_type != LAST_NORM:
                    return -E.EEXIST if flags & RENAME_NOREPLACE else -E.EBUSY
                if self.read_only:
                    return -E.EROFS if self._key_at(ond.dir_fd, ond.last) else -E.ENOENT
                victim = self._key_at(nnd.dir_fd, nnd.last)
                err = _host_renameat2(ond.dir_fd, ond.last_name, nnd.dir_fd, nnd.last_name, flags)
                if err:
                    return err
                if not flags & RENAME_EXCHANGE:
                    self._forget_if_unlinked(victim)
                return 0

            return self._with_nd(self.parentat(new), in_new)

        return self._with_nd(self.parentat(old), op)


_libc: ctypes.CDLL | None = None


def _host_renameat2(odfd: int, old: str, ndfd: int, new: str, flags: int) -> int:
    """renameat2(2) on the host (Python's os.rename has no flags)."""
    if not flags:
        try:
            os.rename(old, new, src_dir_fd=odfd, dst_dir_fd=ndfd)
        except OSError as exc:
            return _errno(exc)
        return 0
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fn = _libc.syscall
    fn.restype = ctypes.c_long
    ret = fn(ctypes.c_long(316), ctypes.c_int(odfd), os.fsencode(old), ctypes.c_int(ndfd),
             os.fsencode(new), ctypes.c_uint(flags))
    return -ctypes.get_errno() if ret < 0 else 0
