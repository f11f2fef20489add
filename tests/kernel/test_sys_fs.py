"""File-system system calls of real programs, run natively (in a chroot of an identical
tree) and on vmsim; outputs compared after renumbering inode/device numbers."""

from __future__ import annotations

from pathlib import Path

from tests.kernel.fsprog import both

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


def test_names_and_stat_match_native(tmp_path: Path) -> None:
    native, vm, _ = both(tmp_path, NAMES_AND_STAT, "fs_names")
    assert vm == native


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
