"""File-system system calls of real programs, run natively (in a chroot of an identical
tree) and on vmsim; outputs compared after renumbering inode/device numbers."""

from __future__ import annotations

import errno as E
import os
import struct
from pathlib import Path

import pytest

from tests.kernel.fsprog import PRELUDE, both
from tests.progs import build, install
from vmsim import Machine
from vmsim.kernel import sys_dir, sys_fs, sys_stat
from vmsim.kernel.task import Process

NAMES_AND_STAT = r"""
static void show(const char *p, int follow) {
    struct stat st;
    int r = follow ? stat(p, &st) : lstat(p, &st);
    if (r < 0) { printf("%s: errno=%d\n", p, errno); return; }
    printf("%s: mode=%o nlink=%lu size=%ld ino=%lu dev=%lu uid=%u blocks=%ld time=%ld\n", p,
           st.st_mode, (unsigned long)st.st_nlink, (long)(S_ISDIR(st.st_mode) ? 0 : st.st_size),
           (unsigned long)st.st_ino, (unsigned long)st.st_dev, st.st_uid,
           (long)(S_ISDIR(st.st_mode) ? 0 : st.st_blocks), (long)st.st_mtime);
}
static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }
static void list(const char *p) {
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    if (fd < 0) { printf("list %s: errno=%d\n", p, errno); return; }
    char buf[512], *names[256]; int n = 0;
    for (;;) {
        long got = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (got <= 0) { if (got < 0) printf("getdents errno=%d\n", errno); break; }
        for (long off = 0; off < got;) {
            struct { unsigned long ino; long off; unsigned short reclen; unsigned char type; char name[]; } *d = (void *)(buf + off);
            char *s = malloc(300);
            snprintf(s, 300, "%s type=%d", d->name, d->type);
            names[n++] = s;
            off += d->reclen;
        }
    }
    qsort(names, n, sizeof *names, cmp);
    printf("list %s:", p);
    for (int i = 0; i < n; i++) printf(" [%s]", names[i]);
    printf("\n");
    close(fd);
}
int main(void) {
    umask(022);
    R(mkdir("/d", 0755));
    R(mkdir("/d", 0755));
    R(mkdir("/d/sub/", 0700));
    R(mkdir("/nope/x", 0755));
    R(mkdir("/", 0755));
    R(mkdir("/d/.", 0755));
    R(mkdir("/d/..", 0755));
    int fd = open("/d/f", O_CREAT | O_WRONLY | O_TRUNC, 0666);
    R(fd);
    R(write(fd, "hello world\n", 12));
    R(fsync(fd));
    R(fdatasync(fd));
    R(ftruncate(fd, 5));
    R(ftruncate(fd, -1));
    R(ftruncate(0xdead, 1));
    R(close(fd));
    show("/d/f", 1);
    R(truncate("/d/f", 3));
    R(truncate("/d", 3));
    R(truncate("/d/f", -3));
    R(truncate("/missing", 3));
    show("/d/f", 1);
    R(symlink("f", "/d/lf"));
    R(symlink("/d", "/ld"));
    R(symlink("/d/sub/../f", "/lf2"));
    R(symlink("dangling", "/dl"));
    R(symlink("x", "/d/f/bad"));
    R(symlink("x", "/ld"));
    R(symlink("", "/empty"));
    show("/d/lf", 1); show("/d/lf", 0); show("/ld/f", 1); show("/lf2", 1); show("/dl", 1); show("/dl", 0);
    show("/d/f/", 1); show("/ld/", 0); show("/d/lf/", 0); show("/d/./sub/../f", 1);
    char buf[64];
    long n = readlink("/d/lf", buf, sizeof buf); printf("readlink %ld %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    n = readlink("/lf2", buf, 4); printf("readlink %ld %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    R(readlink("/d/f", buf, sizeof buf));
    R(readlink("/d/lf", buf, 0));
    R(readlink("/missing", buf, 10));
    R(readlink("/ld/", buf, 10));
    R(access("/d/f", R_OK | W_OK));
    R(access("/d/f", X_OK));
    R(access("/d", X_OK));
    R(access("/dl", F_OK));
    R(access("/d/f", 8));
    R(syscall(SYS_faccessat, AT_FDCWD, "/dl", F_OK, 0));
    R(syscall(439, AT_FDCWD, "/dl", F_OK, AT_SYMLINK_NOFOLLOW));
    R(syscall(439, AT_FDCWD, "/dl", F_OK, 0x8000));
    R(chmod("/d/f", 0751));
    show("/d/f", 1);
    R(syscall(452, AT_FDCWD, "/d/lf", 0700, AT_SYMLINK_NOFOLLOW));
    R(syscall(452, AT_FDCWD, "/d/lf", 0751, 0));
    R(syscall(452, AT_FDCWD, "/d/lf", 0751, 0x2));
    R(fchmodat(AT_FDCWD, "/nope", 0751, 0));
    R(access("/d/f", X_OK));
    fd = open("/d/f", O_RDONLY);
    R(fchmod(fd, 0640));
    close(fd);
    show("/d/f", 1);
    R(link("/d/f", "/d/hard"));
    R(link("/d", "/d2"));
    show("/d/hard", 1);
    R(rename("/d/hard", "/d/hard2"));
    R(rename("/d/hard2", "/d/sub/"));
    R(rename("/d/sub", "/d/sub/deeper"));
    R(rename("/d/missing", "/d/x"));
    R(rename("/d/.", "/d/x"));
    R(syscall(SYS_renameat2, AT_FDCWD, "/d/hard2", AT_FDCWD, "/d/f", 1));
    R(syscall(SYS_renameat2, AT_FDCWD, "/d/hard2", AT_FDCWD, "/d/f", 3));
    R(syscall(SYS_renameat2, AT_FDCWD, "/d/hard2", AT_FDCWD, "/d/lf", 2));
    show("/d/lf", 0); show("/d/hard2", 0);
    R(mkdir("/d/sub/x", 0755));
    R(rmdir("/d/sub"));
    R(rmdir("/d/f"));
    R(rmdir("/d/."));
    R(rmdir("/d/.."));
    R(rmdir("/"));
    R(unlink("/d"));
    R(unlink("/d/f/"));
    R(unlink("/d/sub/x/"));
    R(unlink("/d/.."));
    R(unlinkat(AT_FDCWD, "/d/sub/x", AT_REMOVEDIR));
    R(unlinkat(AT_FDCWD, "/d/sub", 0x4));
    list("/"); list("/d"); list("/d/sub"); list("/ld/"); list("/d/f");
    R(unlink("/d/hard2"));
    R(unlink("/dl"));
    list("/d");
    return 0;
}
"""


@pytest.mark.parametrize("compiler", ["gcc", "musl-gcc"])
def test_names_and_stat_match_native(tmp_path: Path, compiler: str) -> None:
    native, vm, m = both(tmp_path, NAMES_AND_STAT, "fs_names", compiler=compiler)
    assert vm == native
    m.check()


CWD_AND_OPEN = r"""
#include <sys/mman.h>
#include <linux/stat.h>
static void cwd(void) {
    char buf[256];
    long r = syscall(SYS_getcwd, buf, sizeof buf);
    printf("getcwd -> %ld %s errno=%d\n", r, r > 0 ? buf : "", r < 0 ? errno : 0);
}
int main(void) {
    char *bad = (char *)1;
    char big[5000]; memset(big, 'a', sizeof big); big[4999] = 0;
    char name256[300]; memset(name256, 'n', 256); name256[0] = '/'; name256[257] = 0;
    name256[256] = 'n';
    R(mkdir("/a", 0755)); R(mkdir("/a/b", 0755)); R(mkdir("/a/b/c", 0755));
    cwd();
    R(chdir("/a/b"));
    cwd();
    R(chdir("c/../../b/./c"));
    cwd();
    R(chdir("../../../../../.."));
    cwd();
    R(chdir("/a/b/c/nope"));
    R(chdir("/prog"));
    R(chdir(bad));
    R(chdir(""));
    R(chdir(big));
    R(mkdir(name256, 0755));
    R(syscall(SYS_getcwd, (char *)0, 100));
    char tiny[2];
    R(chdir("/a"));
    R(syscall(SYS_getcwd, tiny, 2));
    R(syscall(SYS_getcwd, tiny, 3));
    R(syscall(SYS_getcwd, tiny, 0));
    int d = open("/a/b", O_RDONLY | O_DIRECTORY);
    R(d);
    R(fchdir(d));
    cwd();
    R(fchdir(0xdead));
    int f = open("/prog", O_RDONLY);
    R(fchdir(f));
    R(openat(d, "c", O_RDONLY | O_DIRECTORY) >= 0);
    R(openat(f, "c", O_RDONLY));
    R(openat(0xdead, "c", O_RDONLY));
    R(openat(0xdead, "/a", O_RDONLY) >= 0);
    R(mkdirat(d, "e", 0700));
    struct stat st;
    R(fstatat(d, "e", &st, 0)); printf("mode=%o\n", st.st_mode);
    R(fstatat(d, "", &st, 0));
    R(fstatat(d, "", &st, AT_EMPTY_PATH)); printf("mode=%o\n", st.st_mode);
    R(fstatat(f, "", &st, AT_EMPTY_PATH)); printf("mode=%o size=%ld\n", st.st_mode, (long)st.st_size);
    R(fstatat(AT_FDCWD, "", &st, AT_EMPTY_PATH)); printf("mode=%o\n", st.st_mode);
    R(fstatat(d, "e", &st, 0x4000000));
    R(fstatat(d, "e", (struct stat *)8, 0));
    R(fstatat(d, bad, &st, 0));
    R(syscall(SYS_stat, "/a", (void *)0));
    R(syscall(SYS_lstat, big, &st));
    R(renameat(d, "e", d, "e2"));
    R(unlinkat(d, "e2", AT_REMOVEDIR));
    R(symlinkat("c", d, "lc"));
    char lb[32];
    long n = readlinkat(d, "lc", lb, sizeof lb); printf("readlinkat %ld %.*s\n", n, (int)(n > 0 ? n : 0), lb);
    R(readlinkat(d, "lc", bad, 10));
    int p = open("/a/b/lc", O_PATH | O_NOFOLLOW);
    R(p >= 0);
    n = readlinkat(p, "", lb, sizeof lb); printf("readlinkat-empty %ld %.*s\n", n, (int)(n > 0 ? n : 0), lb);
    R(readlinkat(d, "", lb, sizeof lb));
    R(fstatat(p, "", &st, AT_EMPTY_PATH)); printf("mode=%o\n", st.st_mode);
    R(read(p, lb, 1));
    R(lseek(p, 0, SEEK_SET));
    R(fchmod(p, 0777));
    R(fsync(p));
    /* open flags */
    R(open("/a/new", O_CREAT | O_DIRECTORY | O_RDWR, 0644));
    R(open("/a/b", O_WRONLY));
    R(open("/a/b", O_RDONLY | O_CREAT, 0644));
    R(open("/a/nodir/", O_CREAT | O_RDWR, 0644));
    R(open("/prog/", O_RDONLY));
    R(open("/prog", O_RDONLY | O_DIRECTORY));
    R(symlink("/a/target", "/a/dang"));
    R(open("/a/dang", O_CREAT | O_EXCL | O_WRONLY, 0600));
    R(open("/a/dang", O_NOFOLLOW | O_RDONLY));
    R(open("/a/dang", O_CREAT | O_WRONLY, 0600) >= 0);
    R(stat("/a/target", &st)); printf("mode=%o\n", st.st_mode);
    R(symlink("loop2", "/a/loop1")); R(symlink("loop1", "/a/loop2"));
    R(open("/a/loop1", O_RDONLY));
    R(stat("/a/loop1/x", &st));
    R(lstat("/a/loop1", &st));
    R(mkdir("/a/loop1", 0755));
    R(open("/a", O_TMPFILE | O_RDWR, 0600) >= 0);
    R(open("/a", O_TMPFILE | O_RDONLY, 0600));
    R(open("/prog", O_TMPFILE | O_RDWR, 0600));
    /* getdents64 edge cases */
    char db[64];
    R(syscall(SYS_getdents64, d, db, 10));
    R(syscall(SYS_getdents64, f, db, sizeof db));
    R(syscall(SYS_getdents64, 0xdead, db, sizeof db));
    R(syscall(SYS_getdents64, d, bad, sizeof db));
    long tot = 0, k;
    while ((k = syscall(SYS_getdents64, d, db, sizeof db)) > 0) tot += k;
    printf("drained %ld last=%ld\n", tot > 0, k);
    R(lseek(d, 0, SEEK_SET));
    R(syscall(SYS_getdents64, d, db, sizeof db) > 0);
    /* statx */
    struct statx sx;
    R(statx(AT_FDCWD, "/prog", 0, STATX_BASIC_STATS, &sx));
    printf("statx mask=%x mode=%o size=%llu nlink=%u ino=%llu dev=%u\n", sx.stx_mask & 0x7ff,
           sx.stx_mode, (unsigned long long)sx.stx_size, sx.stx_nlink,
           (unsigned long long)sx.stx_ino, sx.stx_dev_major);
    R(statx(AT_FDCWD, "/a/b/lc", AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx)); printf("mode=%o\n", sx.stx_mode);
    R(statx(f, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx)); printf("mode=%o\n", sx.stx_mode);
    R(statx(AT_FDCWD, "/prog", 0, 0x80000000, &sx));
    R(statx(AT_FDCWD, "/prog", 0x6000, STATX_BASIC_STATS, &sx));
    R(statx(AT_FDCWD, "/prog", 0x10000, STATX_BASIC_STATS, &sx));
    R(statx(AT_FDCWD, "/prog", 0, STATX_BASIC_STATS, (void *)8));
    /* unlinked while open, then the name reused */
    int g = open("/a/tmp", O_CREAT | O_RDWR, 0644);
    R(write(g, "first", 5));
    R(unlink("/a/tmp"));
    int h = open("/a/tmp", O_CREAT | O_RDWR, 0644);
    R(write(h, "xy", 2));
    char rb[8] = {0};
    R(pread(g, rb, 5, 0)); printf("old=%s\n", rb);
    memset(rb, 0, sizeof rb);
    R(pread(h, rb, 5, 0)); printf("new=%s\n", rb);
    R(fstat(g, &st)); printf("nlink=%lu\n", (unsigned long)st.st_nlink);
    /* rmdir the cwd */
    R(mkdir("/gone", 0755)); R(chdir("/gone")); R(rmdir("/gone"));
    cwd();  /* (vmsim keeps the cwd as a path: open(".") here is ENOENT, Linux opens it) */
    R(chdir("/"));
    cwd();
    return 0;
}
"""


def test_cwd_dirfd_open_flags_statx_match_native(tmp_path: Path) -> None:
    native, vm, _ = both(tmp_path, CWD_AND_OPEN, "fs_cwd")
    assert vm == native


# ---- direct calls: errno cases and writeback, on a scripted process ------------------------------

U64 = (1 << 64) - 1
AT_FDCWD = U64 - 99
UNMAPPED = 0x1000


class Guest:
    """A scripted process with a scratch area: strings become guest pointers."""

    def __init__(self, root: Path) -> None:
        self.m = Machine(memory="16M", seed=1, root=root)
        self.p: Process = self.m.spawn()
        self.base = self.p.mmap(None, 16 * 4096, "rw-", "private|anonymous")
        self.top = self.base

    def s(self, text: str | bytes) -> int:
        data = text.encode() if isinstance(text, str) else text
        addr = self.top
        assert self.p.store(addr, data + b"\0")
        self.top += (len(data) + 8) & ~7
        return addr

    def buf(self, n: int) -> int:
        addr = self.top
        self.top += (n + 7) & ~7
        return addr

    def read(self, addr: int, n: int) -> bytes:
        got = self.p.load(addr, n)
        assert got is not None
        return got


@pytest.fixture
def g(tmp_path: Path) -> Guest:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").write_bytes(b"0123456789")
    os.symlink("file", tmp_path / "dir" / "link")
    return Guest(tmp_path)


def test_bad_pointers_are_efault(g: Guest) -> None:
    st = g.buf(256)
    for bad in (0, UNMAPPED, U64 - 4095, 1 << 47):
        assert sys_stat.sys_stat(g.p, bad, st) == -E.EFAULT
        assert sys_stat.sys_lstat(g.p, bad, st) == -E.EFAULT
        assert sys_stat.sys_stat(g.p, g.s("/dir/file"), bad) == -E.EFAULT
        assert sys_stat.sys_newfstatat(g.p, AT_FDCWD, g.s("/dir"), bad, 0) == -E.EFAULT
        assert sys_stat.sys_statx(g.p, AT_FDCWD, g.s("/dir"), 0, 0x7FF, bad) == -E.EFAULT
        assert sys_stat.sys_access(g.p, bad, 0) == -E.EFAULT
        assert sys_stat.sys_readlink(g.p, g.s("/dir/link"), bad, 10) == -E.EFAULT
        assert sys_dir.sys_getcwd(g.p, bad, 100) == -E.EFAULT
        assert sys_dir.sys_chdir(g.p, bad) == -E.EFAULT
        assert sys_dir.sys_mkdir(g.p, bad, 0o755) == -E.EFAULT
        assert sys_dir.sys_rmdir(g.p, bad) == -E.EFAULT
        assert sys_dir.sys_unlink(g.p, bad) == -E.EFAULT
        assert sys_dir.sys_rename(g.p, bad, g.s("/x")) == -E.EFAULT
        assert sys_dir.sys_rename(g.p, g.s("/dir/file"), bad) == -E.EFAULT
        assert sys_dir.sys_symlink(g.p, bad, g.s("/x")) == -E.EFAULT
        assert sys_dir.sys_truncate(g.p, bad, 0) == -E.EFAULT
        assert sys_dir.sys_chmod(g.p, bad, 0o644) == -E.EFAULT
    fd = sys_fs.sys_open(g.p, g.s("/dir"), 0o200000, 0)
    assert fd >= 0
    assert sys_dir.sys_getdents64(g.p, fd, UNMAPPED, 4096) == -E.EFAULT
    assert (g.m.kernel_log, g.p.alive) == ([], True)  # a fix-up, not a signal
    assert (Path(g.m.vfs.root or "") / "dir" / "file").read_bytes() == b"0123456789"


def test_errno_cases(g: Guest) -> None:
    st = g.buf(256)
    long_name = "/" + "n" * 256
    too_long = "/" + "a/" * 2048
    cases = [
        (sys_stat.sys_stat, (g.s(""), st), -E.ENOENT),
        (sys_stat.sys_stat, (g.s(long_name), st), -E.ENAMETOOLONG),
        (sys_stat.sys_stat, (g.s(too_long), st), -E.ENAMETOOLONG),
        (sys_stat.sys_stat, (g.s("/dir/file/x"), st), -E.ENOTDIR),
        (sys_stat.sys_stat, (g.s("/dir/nope/x"), st), -E.ENOENT),
        (sys_stat.sys_fstat, (99, st), -E.EBADF),
        (sys_stat.sys_fstat, (U64, st), -E.EBADF),
        (sys_stat.sys_newfstatat, (AT_FDCWD, g.s("/dir"), st, 0x8000), -E.EINVAL),
        (sys_stat.sys_newfstatat, (77, g.s("rel"), st, 0), -E.EBADF),
        (sys_stat.sys_newfstatat, (77, g.s(""), st, 0x1000), -E.EBADF),
        (sys_stat.sys_statx, (AT_FDCWD, g.s("/dir"), 0, 1 << 31, st), -E.EINVAL),
        (sys_stat.sys_access, (g.s("/dir"), 8), -E.EINVAL),
        (sys_stat.sys_faccessat2, (AT_FDCWD, g.s("/dir"), 0, 1), -E.EINVAL),
        (sys_stat.sys_readlink, (g.s("/dir/file"), st, 10), -E.EINVAL),
        (sys_stat.sys_readlink, (g.s("/dir/link"), st, 0), -E.EINVAL),
        (sys_stat.sys_readlink, (g.s("/dir/link"), st, U64), -E.EINVAL),
        (sys_dir.sys_mkdir, (g.s("/dir"), 0o755), -E.EEXIST),
        (sys_dir.sys_mkdir, (g.s("/dir/link"), 0o755), -E.EEXIST),
        (sys_dir.sys_rmdir, (g.s("/dir"), 0), -E.ENOTEMPTY),
        (sys_dir.sys_rmdir, (g.s("/dir/link"), 0), -E.ENOTDIR),
        (sys_dir.sys_rmdir, (g.s("/"), 0), -E.EBUSY),
        (sys_dir.sys_unlink, (g.s("/dir"),), -E.EISDIR),
        (sys_dir.sys_unlinkat, (AT_FDCWD, g.s("/dir/file"), 1), -E.EINVAL),
        (sys_dir.sys_renameat2, (AT_FDCWD, g.s("/dir/file"), AT_FDCWD, g.s("/x"), 8), -E.EINVAL),
        (sys_dir.sys_rename, (g.s("/dir"), g.s("/dir/sub")), -E.EINVAL),
        (sys_dir.sys_rename, (g.s("/"), g.s("/x")), -E.EBUSY),
        (sys_dir.sys_getcwd, (st, 1), -E.ERANGE),
        (sys_dir.sys_chdir, (g.s("/dir/file"),), -E.ENOTDIR),
        (sys_dir.sys_fchdir, (99,), -E.EBADF),
        (sys_dir.sys_getdents64, (99, st, 100), -E.EBADF),
        (sys_dir.sys_ftruncate, (99, 0), -E.EBADF),
        (sys_dir.sys_ftruncate, (0, U64), -E.EINVAL),
        (sys_dir.sys_truncate, (g.s("/dir"), 0), -E.EISDIR),
        (sys_dir.sys_fsync, (99,), -E.EBADF),
        (sys_dir.sys_linkat, (AT_FDCWD, g.s("/dir/file"), AT_FDCWD, g.s("/x"), 1), -E.EINVAL),
        (sys_fs.sys_open, (g.s("/dir"), 0o200000 | 0o100, 0o644), -E.EINVAL),
        (sys_fs.sys_open, (g.s("/dir"), 1, 0), -E.EISDIR),
        (sys_fs.sys_open, (g.s("/dir/file"), 0o200000, 0), -E.ENOTDIR),
        (sys_fs.sys_open, (g.s("/dir/link"), 0o400000, 0), -E.ELOOP),
        (sys_fs.sys_open, (g.s("/dir/new/"), 0o101, 0o644), -E.EISDIR),
    ]
    for fn, args, want in cases:
        assert fn(g.p, *args) == want, (fn.__name__, args)
    # ftruncate of something that is not a regular file open for writing
    fd = sys_fs.sys_open(g.p, g.s("/dir/file"), 0, 0)
    assert sys_dir.sys_ftruncate(g.p, fd, 0) == -E.EINVAL
    pipe = g.buf(8)
    assert sys_fs.sys_pipe(g.p, pipe) == 0
    rfd = struct.unpack("<i", g.read(pipe, 4))[0]
    assert sys_dir.sys_ftruncate(g.p, rfd, 0) == -E.EINVAL
    assert sys_dir.sys_fsync(g.p, rfd) == -E.EINVAL
    assert sys_dir.sys_getdents64(g.p, rfd, st, 100) == -E.ENOTDIR
    assert sys_stat.sys_fstat(g.p, rfd, st) == 0
    assert struct.unpack_from("<I", g.read(st, 144), 24)[0] & 0o170000 == 0o010000


def test_stat_layout(g: Guest, tmp_path: Path) -> None:
    st = g.buf(144)
    assert sys_stat.sys_stat(g.p, g.s("/dir/link"), st) == 0
    raw = g.read(st, 144)
    dev, ino, nlink, mode, uid, gid = struct.unpack_from("<QQQIII", raw)
    size, blksize, blocks = struct.unpack_from("<qqq", raw, 48)
    mtime, mtime_ns = struct.unpack_from("<qq", raw, 88)
    host = os.stat(tmp_path / "dir" / "file")
    assert (dev, ino, nlink, mode, uid, gid) == (host.st_dev, host.st_ino, host.st_nlink,
                                                 host.st_mode, host.st_uid, host.st_gid)
    assert (size, blksize, blocks) == (10, host.st_blksize, host.st_blocks)
    assert mtime * 10**9 + mtime_ns == host.st_mtime_ns
    sx = g.buf(256)
    assert sys_stat.sys_statx(g.p, AT_FDCWD, g.s("/dir/link"), 0x100, 0xFFF, sx) == 0
    raw = g.read(sx, 256)
    mask, _, _, _, _, _, mode2 = struct.unpack_from("<IIQIIIH", raw)
    ino2, size2 = struct.unpack_from("<QQ", raw, 0x20)
    assert mask & 0x7FF == 0x7FF and mode2 & 0o170000 == 0o120000 and size2 == 4
    assert ino2 == os.lstat(tmp_path / "dir" / "link").st_ino


def test_getdents64_small_buffers_and_rewind(g: Guest, tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / "dir" / f"entry-{i:02}").write_text("")
    fd = sys_fs.sys_open(g.p, g.s("/dir"), 0o200000, 0)
    buf = g.buf(4096)
    assert sys_dir.sys_getdents64(g.p, fd, buf, 8) == -E.EINVAL
    names = []
    while (n := sys_dir.sys_getdents64(g.p, fd, buf, 64)) > 0:
        raw = g.read(buf, n)
        off = 0
        while off < n:
            ino, _, reclen, _ = struct.unpack_from("<QqHB", raw, off)
            assert reclen % 8 == 0 and ino
            names.append(raw[off + 19:off + reclen].split(b"\0")[0].decode())
            off += reclen
    assert n == 0
    assert sorted(names) == sorted([".", "..", "file", "link"] + [f"entry-{i:02}" for i in range(30)])
    assert sys_fs.sys_lseek(g.p, fd, 0, 0) == 0
    assert sys_dir.sys_getdents64(g.p, fd, buf, 4096) > 0


def test_fsync_writes_back_a_shared_mapping(g: Guest, tmp_path: Path) -> None:
    """fsync moves the dirty bits of a MAP_SHARED mapping to the page cache and writes the
    pages to the host file (vmsim's write() is write-through; a store through a mapping is not)."""
    host = tmp_path / "dir" / "file"
    fd = sys_fs.sys_open(g.p, g.s("/dir/file"), 2, 0)
    addr = g.p.mmap(None, 4096, "rw-", "shared", fd, 0)
    assert addr > 0
    assert g.p.store(addr + 2, b"AB")
    assert host.read_bytes() == b"0123456789"
    assert sys_dir.sys_fdatasync(g.p, fd) == 0
    assert host.read_bytes() == b"01AB456789"
    assert g.p.store(addr, b"Z")
    assert sys_dir.sys_fsync(g.p, fd) == 0
    assert host.read_bytes() == b"Z1AB456789"
    assert g.p.munmap(addr, 4096) == 0
    g.m.check()


def test_truncate_drops_mapped_pages(g: Guest, tmp_path: Path) -> None:
    host = tmp_path / "dir" / "big"
    host.write_bytes(b"x" * 3 * 4096)
    fd = sys_fs.sys_open(g.p, g.s("/dir/big"), 2, 0)
    addr = g.p.mmap(None, 3 * 4096, "r--", "shared", fd, 0)
    assert g.p.load(addr + 2 * 4096) == b"x"
    assert sys_dir.sys_truncate(g.p, g.s("/dir/big"), 4096) == 0
    assert host.stat().st_size == 4096
    assert g.p.load(addr + 2 * 4096) is None and g.p.siginfo is not None
    assert g.p.siginfo.signo == 7  # SIGBUS past the new end of file


def test_one_inode_per_host_file_and_orphans(g: Guest, tmp_path: Path) -> None:
    vfs = g.m.vfs
    a = vfs.open("/dir/file", 0)
    b = vfs.open("/dir/link", 2)
    assert sys_dir.sys_link(g.p, g.s("/dir/file"), g.s("/hard")) == 0
    c = vfs.open("/hard", 1)
    assert not isinstance(a, int) and not isinstance(b, int) and not isinstance(c, int)
    assert a.inode is b.inode is c.inode
    assert sys_dir.sys_unlink(g.p, g.s("/dir/file")) == 0
    assert sys_dir.sys_unlink(g.p, g.s("/hard")) == 0
    fresh = vfs.open("/dir/file", 0o102, 0o644)
    assert not isinstance(fresh, int) and fresh.inode is not a.inode
    assert a.inode.backing is not None and a.inode.backing.pread(0, 4) == b"0123"
    g.m.check()


def test_proc_links_on_vmsim(tmp_path: Path) -> None:
    """/proc is vmsim's own: readlink of /proc/self/exe, cwd, fd/N; stat of /proc files."""
    src = r"""
int main(void) {
    char b[256]; long n;
    n = readlink("/proc/self/exe", b, sizeof b); printf("exe=%.*s\n", (int)n, b);
    chdir("/sub");
    n = readlink("/proc/self/cwd", b, sizeof b); printf("cwd=%.*s\n", (int)n, b);
    int fd = open("/sub/f", O_RDONLY);
    snprintf(b, sizeof b, "/proc/self/fd/%d", fd);
    char l[256]; n = readlink(b, l, sizeof l); printf("fd=%.*s\n", (int)n, l);
    struct stat st;
    int r = stat("/proc/self/maps", &st); printf("maps=%d %o\n", r, st.st_mode);
    r = stat("/proc/self", &st); printf("dir=%d %o\n", r, st.st_mode);
    r = stat("/proc/self/nope", &st); printf("nope=%d %d\n", r, errno);
    r = stat("/proc/self/exe", &st); printf("exe-stat=%d %o\n", r, st.st_mode);
    r = chdir("/proc/self"); printf("chdir=%d cwd=%s\n", r, getcwd(b, sizeof b));
    printf("relative=%d\n", open("maps", O_RDONLY) > 0);
    return 0;
}
"""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_text("")
    install(build(PRELUDE + src, "fs_proc"), tmp_path, "/bin/p")
    m = Machine(memory="64M", root=tmp_path)
    res = m.run("/bin/p", ["p"])
    assert res.stdout.decode().splitlines() == [
        "exe=/bin/p", "cwd=/sub", "fd=/sub/f", "maps=0 100444", "dir=0 40555",
        "nope=-1 2", "exe-stat=0 100755", f"chdir=0 cwd=/proc/{res.pid}", "relative=1"]


DEVICES = r"""
int main(void) {
    char b[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    int n = open("/dev/null", O_RDWR), z = open("/dev/zero", O_RDONLY), f = open("/dev/full", O_WRONLY);
    R(n >= 0); R(read(n, b, 8)); R(write(n, "abc", 3)); R(lseek(n, 10, SEEK_SET));
    R(read(z, b, 8)); printf("zero %d%d\n", b[0], b[7]);
    R(write(f, "x", 1));
    struct stat st;
    R(fstat(n, &st)); printf("null mode=%o rdev=%d:%d\n", st.st_mode, major(st.st_rdev), minor(st.st_rdev));
    R(stat("/dev/zero", &st)); printf("zero mode=%o rdev=%d:%d\n", st.st_mode, major(st.st_rdev), minor(st.st_rdev));
    R(open("/dev/nope", O_RDONLY));
    int u = open("/dev/urandom", O_RDONLY); R(read(u, b, 8));
    R(access("/dev/null", R_OK | W_OK)); R(access("/dev/null", X_OK));
    R(readlink("/dev/null", b, 8));
    struct statx sx; R(statx(AT_FDCWD, "/dev/full", 0, STATX_BASIC_STATS, &sx));
    printf("full mode=%o rdev=%u:%u\n", sx.stx_mode, sx.stx_rdev_major, sx.stx_rdev_minor);
    return 0;
}
"""


def test_memory_devices(tmp_path: Path) -> None:
    """/dev/null, zero, full, urandom exist in every root (a native run sees the host's)."""
    src = "#include <sys/sysmacros.h>\n" + DEVICES
    (tmp_path / "root").mkdir()
    install(build(PRELUDE + src, "fs_dev"), tmp_path / "root", "/prog")
    res = Machine(memory="64M", root=tmp_path / "root").run("/prog", ["/prog"])
    results = {line.split("->")[0].strip(): line.split("->")[1].strip()
               for line in res.stdout.decode().splitlines() if "->" in line}
    assert results == {
        "n >= 0": "1 errno=0", "read(n, b, 8)": "0 errno=0", 'write(n, "abc", 3)': "3 errno=0",
        "lseek(n, 10, SEEK_SET)": "0 errno=0", "read(z, b, 8)": "8 errno=0",
        'write(f, "x", 1)': "-1 errno=28", "fstat(n, &st)": "0 errno=0",
        'stat("/dev/zero", &st)': "0 errno=0", 'open("/dev/nope", O_RDONLY)': "-1 errno=2",
        "read(u, b, 8)": "8 errno=0", "access(\"/dev/null\", R_OK | W_OK)": "0 errno=0",
        "access(\"/dev/null\", X_OK)": "-1 errno=13", "readlink(\"/dev/null\", b, 8)": "-1 errno=22",
        "statx(AT_FDCWD, \"/dev/full\", 0, STATX_BASIC_STATS, &sx)": "0 errno=0"}
    out = res.stdout.decode()
    assert "zero 00" in out and "null mode=20666 rdev=1:3" in out
    assert "zero mode=20666 rdev=1:5" in out and "full mode=20666 rdev=1:7" in out
    assert res.exit_code == 0


PARTIAL_IO = r"""
#include <sys/mman.h>
#include <sys/uio.h>
int main(void) {
    char *two = mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(two + 4096, 4096);
    char *edge = two + 4096 - 10;
    memset(two, 'w', 4096);
    int fd = open("/data", O_RDWR | O_CREAT | O_TRUNC, 0644);
    char text[300]; memset(text, 'd', sizeof text);
    R(write(fd, text, sizeof text));
    R(pread(fd, edge, 100, 0));
    R(pwrite(fd, edge, 100, 0));
    R(pread(fd, (char *)0xffff800000000000ul, 0, 0));
    R(pwrite(fd, edge, 100, -1));
    struct iovec v[2] = {{text, 5}, {edge, 100}};
    R(lseek(fd, 0, SEEK_SET));
    R(readv(fd, v, 2));
    R(lseek(fd, 0, SEEK_CUR));
    R(writev(fd, v, 2));
    R(lseek(fd, 0, SEEK_CUR));
    struct iovec w[1] = {{edge + 10, 5}};
    R(readv(fd, w, 1));
    R(writev(fd, w, 1));
    int p[2]; pipe(p); write(p[1], text, 50);
    R(readv(p[0], v, 2));
    R(read(p[0], text, 100));
    R(writev(p[1], v, 2));
    int d = open("/", O_RDONLY);
    R(pread(d, text, 10, 0));
    R(pread(p[0], text, 10, 0));
    int o = open("/data", O_PATH);
    R(pread(o, text, 10, 0));
    R(read(o, text, 10));
    return 0;
}
"""


def test_partial_copies_match_native(tmp_path: Path) -> None:
    """read/write/pread/pwrite/readv/writev whose buffer runs into an unmapped page."""
    native, vm, _ = both(tmp_path, PARTIAL_IO, "fs_partial")
    assert vm == native


def test_random_calls_never_raise(tmp_path: Path) -> None:
    """Every handler here, fed random mixes of good and bad paths, pointers, descriptors and
    flags, returns a value or -errno (vmsim never raises because of what a guest does)."""
    import random

    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "f").write_bytes(b"data" * 100)
    os.symlink("f", tmp_path / "d" / "l")
    os.symlink("loop", tmp_path / "loop")
    os.symlink("/d/../..", tmp_path / "up")
    outside = snapshot_dir(tmp_path.parent, exclude=tmp_path.name)
    g = Guest(tmp_path)
    rng = random.Random(7)
    names = ["", "/", ".", "..", "/d", "/d/", "d/f", "/d/f", "/d/f/", "/d/l", "/d/e", "/loop",
             "/up/x", "/new", "/d/new/", "/dev/null", "/dev/zero", "/proc", "/proc/self",
             "/proc/self/exe", "/proc/self/fd/0", "/proc/1/maps", "/x" * 300, "n" * 256,
             b"/d/\xff\xfe", "/d/e/../../d/./f"]
    paths = [g.s(n) for n in names] + [0, UNMAPPED, U64, 1 << 47, g.base + 16 * 4096 - 2]
    bufs = [g.buf(4096), 0, UNMAPPED, U64 - 100, g.base + 16 * 4096 - 20]
    fds = [0, 1, 2, 3, 4, 5, 6, 99, U64, AT_FDCWD, 1 << 32]
    nums = [0, 1, 2, 0o100, 0o200000 | 0o100, 0x100, 0x200, 0x1000, 0x6000, 0o777, U64,
            1 << 31, 4096, 7, 0o20200002, 0o10000000]
    for name in ("/d", "/d/f", "/", "/d/l"):
        sys_fs.sys_open(g.p, g.s(name), 0o10000000 if name == "/d/l" else 0, 0)
    handlers = [
        (sys_stat.sys_stat, "pb"), (sys_stat.sys_lstat, "pb"), (sys_stat.sys_fstat, "fb"),
        (sys_stat.sys_newfstatat, "fpbn"), (sys_stat.sys_statx, "fpnnb"),
        (sys_stat.sys_access, "pn"), (sys_stat.sys_faccessat2, "fpnn"),
        (sys_stat.sys_readlink, "pbn"), (sys_stat.sys_readlinkat, "fpbn"),
        (sys_dir.sys_getdents64, "fbn"), (sys_dir.sys_getcwd, "bn"), (sys_dir.sys_chdir, "p"),
        (sys_dir.sys_fchdir, "f"), (sys_dir.sys_mkdirat, "fpn"), (sys_dir.sys_unlinkat, "fpn"),
        (sys_dir.sys_renameat2, "fpfpn"), (sys_dir.sys_symlinkat, "pfp"),
        (sys_dir.sys_linkat, "fpfpn"), (sys_dir.sys_fchmodat, "fpn"), (sys_dir.sys_fchmod, "fn"),
        (sys_dir.sys_truncate, "pn"), (sys_dir.sys_ftruncate, "fn"), (sys_dir.sys_fsync, "f"),
        (sys_fs.sys_openat, "fpnn"), (sys_fs.sys_read, "fbn"), (sys_fs.sys_write, "fbn"),
        (sys_fs.sys_pread64, "fbnn"), (sys_fs.sys_lseek, "fnn"), (sys_fs.sys_close, "f"),
    ]
    pick = {"p": paths, "b": bufs, "f": fds, "n": nums}
    for _ in range(3000):
        fn, sig = rng.choice(handlers)
        args = [rng.choice(pick[c]) for c in sig]
        if fn is sys_fs.sys_read or fn is sys_fs.sys_pread64:
            args[2] = min(args[2], 1 << 16)
        ret = fn(g.p, *args)
        assert isinstance(ret, int) and (ret >= 0 or -ret in E.errorcode), (fn.__name__, args, ret)
    assert g.p.alive and g.m.kernel_log == []
    assert snapshot_dir(tmp_path.parent, exclude=tmp_path.name) == outside


def snapshot_dir(top: Path, exclude: str) -> list[tuple[str, int]]:
    return sorted((str(p), p.lstat().st_mtime_ns) for p in top.iterdir() if p.name != exclude)


SENDFILE = r"""
#include <sys/sendfile.h>
int main(void) {
    int in = open("/src", O_RDWR | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 1000; i++) dprintf(in, "line %d\n", i);
    int out = open("/dst", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    R(lseek(in, 0, SEEK_SET));
    R(sendfile(out, in, 0, 100));
    R(lseek(in, 0, SEEK_CUR));
    off_t off = 5000;
    R(sendfile(out, in, &off, 1 << 20)); printf("off=%ld\n", (long)off);
    R(lseek(in, 0, SEEK_CUR));
    R(sendfile(out, in, (off_t *)1, 10));
    off = -1; R(sendfile(out, in, &off, 10));
    R(sendfile(in, out, 0, 10));
    R(sendfile(99, in, 0, 10));
    int p[2]; pipe(p);
    R(sendfile(p[1], in, 0, 50));
    char buf[64]; R(read(p[0], buf, sizeof buf));
    R(sendfile(out, p[0], 0, 10));
    R(sendfile(out, open("/", O_RDONLY), 0, 10));
    int app = open("/dst", O_WRONLY | O_APPEND);
    R(sendfile(app, in, 0, 10));
    struct stat st; fstat(out, &st); printf("dst size=%ld\n", (long)st.st_size);
    return 0;
}
"""


def test_sendfile_matches_native(tmp_path: Path) -> None:
    native, vm, _ = both(tmp_path, SENDFILE, "fs_sendfile")
    assert vm == native


TIMES_AND_STATFS = r"""
#include <sys/statfs.h>
#include <sys/time.h>
static void mt(const char *p) {
    struct stat st;
    if (lstat(p, &st) < 0) { printf("%s errno=%d\n", p, errno); return; }
    printf("%s atime=%ld.%09ld mtime=%ld.%09ld\n", p, (long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
           (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}
int main(void) {
    close(open("/f", O_CREAT | O_WRONLY, 0644));
    R(symlink("f", "/l"));
    struct timespec ts[2] = {{1000000000, 5}, {1200000000, 999999999}};
    R(utimensat(AT_FDCWD, "/f", ts, 0)); mt("/f");
    struct timespec om[2] = {{7, UTIME_OMIT}, {1300000000, 0}};
    R(utimensat(AT_FDCWD, "/l", om, 0)); mt("/f");
    R(utimensat(AT_FDCWD, "/l", ts, AT_SYMLINK_NOFOLLOW)); mt("/l");
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    R(utimensat(AT_FDCWD, "/f", bad, 0));
    R(utimensat(AT_FDCWD, "/f", (void *)1, 0));
    R(utimensat(AT_FDCWD, "/nope", ts, 0));
    R(utimensat(AT_FDCWD, "/f", ts, 0x8));
    int fd = open("/f", O_RDONLY);
    ts[1].tv_sec = 1400000000;
    R(futimens(fd, ts)); mt("/f");
    R(syscall(SYS_utimensat, 99, 0, ts, 0));
    struct timeval tv[2] = {{1500000000, 1}, {1500000001, 2}};
    R(utimes("/f", tv)); mt("/f");
    R(utimensat(AT_FDCWD, "/f", 0, 0));
    struct statfs a, b;
    R(statfs("/f", &a)); R(fstatfs(fd, &b));
    printf("type %d bsize %d namelen %ld\n", a.f_type == b.f_type, a.f_bsize == b.f_bsize, (long)a.f_namelen);
    R(statfs("/nope", &a));
    R(fstatfs(99, &a));
    return 0;
}
"""


def test_times_and_statfs_match_native(tmp_path: Path) -> None:
    native, vm, _ = both(tmp_path, TIMES_AND_STATFS, "fs_times")
    assert vm == native


OWNERS = r"""
static void own(const char *p) {
    struct stat st; lstat(p, &st); printf("%s uid=%u gid=%u mode=%o\n", p, st.st_uid, st.st_gid, st.st_mode);
}
int main(void) {
    close(open("/f", O_CREAT | O_WRONLY, 0755));
    R(symlink("f", "/l"));
    R(chown("/f", 1234, 5678)); own("/f");
    R(lchown("/l", 42, -1)); own("/l"); own("/f");
    R(chown("/l", -1, 99)); own("/f");
    int fd = open("/f", O_RDONLY);
    R(fchown(fd, 0, 0)); own("/f");
    R(fchownat(AT_FDCWD, "/l", 7, 7, AT_SYMLINK_NOFOLLOW)); own("/l");
    R(fchownat(AT_FDCWD, "/l", 7, 7, 0x8));
    R(chown("/nope", 1, 1));
    R(fchown(99, 1, 1));
    R(fchownat(fd, "", 3, 3, AT_EMPTY_PATH)); own("/f");
    return 0;
}
"""


def test_ownership_matches_native(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing owners needs a privileged host user")
    native, vm, _ = both(tmp_path, OWNERS, "fs_owners")
    assert vm == native


GETFL = r"""
int main(void) {
    int fd = open("/f", O_CREAT | O_RDWR | O_TRUNC | O_EXCL | O_NOCTTY | O_APPEND, 0644);
    printf("file %o\n", fcntl(fd, F_GETFL));
    printf("dir %o\n", fcntl(open("/", O_RDONLY | O_DIRECTORY), F_GETFL));
    printf("path %o\n", fcntl(open("/f", O_PATH | O_CLOEXEC), F_GETFL));
    printf("nofollow %o\n", fcntl(open("/f", O_WRONLY | O_NOFOLLOW | O_NONBLOCK), F_GETFL));
    int p[2]; pipe2(p, O_NONBLOCK);
    printf("pipe %o %o\n", fcntl(p[0], F_GETFL), fcntl(p[1], F_GETFL));
    R(fcntl(fd, F_SETFL, O_NONBLOCK)); printf("file %o\n", fcntl(fd, F_GETFL));
    return 0;
}
"""


def test_file_status_flags_match_native(tmp_path: Path) -> None:
    native, vm, _ = both(tmp_path, GETFL, "fs_getfl")
    assert vm == native


FD_MISC = r"""
int main(void) {
    for (int i = 0; i < 6; i++) open("/prog", O_RDONLY);  /* fds 3..8 */
    R(syscall(436, 4, 6, 0));
    R(fcntl(4, F_GETFD)); R(fcntl(6, F_GETFD)); R(fcntl(7, F_GETFD));
    R(syscall(436, 7, ~0u, 4));
    R(fcntl(7, F_GETFD)); R(fcntl(8, F_GETFD));
    R(syscall(436, 5, 4, 0));
    R(syscall(436, 0, 1, 8));
    R(posix_fadvise(3, 0, 0, POSIX_FADV_SEQUENTIAL) == 0);
    R(syscall(SYS_fadvise64, 3, 0, 0, 99));
    R(syscall(SYS_fadvise64, 3, 0, -1, 0));
    R(syscall(SYS_fadvise64, 99, 0, 0, 0));
    int p[2]; pipe(p);
    R(syscall(SYS_fadvise64, p[0], 0, 0, 0));
    sync();
    R(syncfs(3)); R(syncfs(99));
    return 0;
}
"""


def test_close_range_fadvise_sync_match_native(tmp_path: Path) -> None:
    native, vm, _ = both(tmp_path, FD_MISC, "fs_fdmisc")
    assert vm == native
