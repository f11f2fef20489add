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
