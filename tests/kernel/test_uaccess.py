"""Bad pointers passed to system calls, compared with the host kernel: every one gives -1 with
EFAULT (or what Linux gives) and the process lives on, as with the kernel's exception-table
fix-ups; partial copies stop where Linux stops."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernel.guest import compilers, same

EFAULT = r"""
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#define T(name, call) do { errno = 0; long r_ = (long)(call); \
  printf("%-28s %ld %s\n", name, r_, r_ < 0 ? strerrorname_np(errno) : "-"); } while (0)
static const char *strerrorname_np_(int e) {
  switch (e) { case EFAULT: return "EFAULT"; case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT"; case EBADF: return "EBADF"; case ECHILD: return "ECHILD";
    case ENAMETOOLONG: return "ENAMETOOLONG"; case ENOSYS: return "ENOSYS"; }
  static char b[16]; snprintf(b, sizeof b, "E%d", e); return b;
}
#define strerrorname_np strerrorname_np_
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  int fd = open("data", O_RDWR | O_CREAT | O_TRUNC, 0644);
  char text[200]; memset(text, 'd', sizeof text); write(fd, text, sizeof text);
  char *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *two = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(two + 4096, 4096);                   /* a hole between two mapped pages */
  char *unmapped = two + 4096;
  char *kernel = (char *)0xffff800000000000ul;
  char *noncanon = (char *)0x8000000000000000ul;
  char *bad[] = {0, unmapped, kernel, noncanon, ro};
  const char *names[] = {"NULL", "unmapped", "kernel", "non-canonical", "read-only"};
  char label[64];
  for (int i = 0; i < 5; i++) {
    lseek(fd, 0, SEEK_SET);
    snprintf(label, sizeof label, "read %s", names[i]);
    T(label, syscall(SYS_read, fd, bad[i], 10));
    if (ZERO_COUNTS || i == 0 || i == 1 || i == 4) {
      snprintf(label, sizeof label, "read 0 bytes %s", names[i]);
      T(label, syscall(SYS_read, fd, bad[i], 0));
      snprintf(label, sizeof label, "write 0 bytes %s", names[i]);
      T(label, syscall(SYS_write, 1, bad[i], 0));
    }
    if (i < 4) {
      snprintf(label, sizeof label, "write %s", names[i]);
      T(label, syscall(SYS_write, 1, bad[i], 10));
      snprintf(label, sizeof label, "open %s", names[i]);
      T(label, syscall(SYS_open, bad[i], O_RDONLY));
      snprintf(label, sizeof label, "stat path %s", names[i]);
      struct stat st; T(label, syscall(SYS_stat, bad[i], &st));
    }
    snprintf(label, sizeof label, "stat buf %s", names[i]);
    T(label, syscall(SYS_stat, "data", bad[i]));
    snprintf(label, sizeof label, "fstat %s", names[i]);
    T(label, syscall(SYS_fstat, fd, bad[i]));
    snprintf(label, sizeof label, "pipe %s", names[i]);
    T(label, syscall(SYS_pipe, bad[i]));
    snprintf(label, sizeof label, "uname %s", names[i]);
    T(label, syscall(SYS_uname, bad[i]));
    snprintf(label, sizeof label, "getcwd %s", names[i]);
    T(label, syscall(SYS_getcwd, bad[i], 100));
    snprintf(label, sizeof label, "nanosleep %s", names[i]);
    T(label, syscall(SYS_nanosleep, bad[i], 0));
    snprintf(label, sizeof label, "sigaction act %s", names[i]);
    T(label, syscall(SYS_rt_sigaction, SIGUSR1, bad[i] ? bad[i] : (char *)1, 0, 8));
    snprintf(label, sizeof label, "sigaction oldact %s", names[i]);
    T(label, syscall(SYS_rt_sigaction, SIGUSR1, 0, bad[i] ? bad[i] : (char *)1, 8));
    snprintf(label, sizeof label, "sigprocmask %s", names[i]);
    T(label, syscall(SYS_rt_sigprocmask, SIG_BLOCK, bad[i] ? bad[i] : (char *)1, 0, 8));
    snprintf(label, sizeof label, "getrandom %s", names[i]);
    T(label, syscall(SYS_getrandom, bad[i], 16, 0));
    snprintf(label, sizeof label, "readv iov %s", names[i]);
    T(label, syscall(SYS_readv, fd, bad[i], 1));
    snprintf(label, sizeof label, "execve %s", names[i]);
    T(label, syscall(SYS_execve, bad[i], 0, 0));
    snprintf(label, sizeof label, "sigaltstack %s", names[i]);
    T(label, syscall(SYS_sigaltstack, 0, bad[i] ? bad[i] : (char *)1));
  }
  int next = dup(0); close(next);
  printf("no descriptor leaked by the failed pipes: next fd %d\n", next);
  /* a wild string: no NUL before the end of the mapping */
  memset(two, 'a', 4096);
  T("open unterminated", syscall(SYS_open, two, O_RDONLY));
#if PARTIAL
  /* read() into and write() from a buffer whose end is not mapped: a short count */
  lseek(fd, 0, SEEK_SET);
  T("read straddling (file)", syscall(SYS_read, fd, unmapped - 10, 100));
  T("file position", lseek(fd, 0, SEEK_CUR));
  T("write straddling (file)", syscall(SYS_write, fd, unmapped - 10, 100));
  int p[2]; pipe(p); write(p[1], text, 100);
  T("read straddling (pipe)", syscall(SYS_read, p[0], unmapped - 10, 100));
  T("then", syscall(SYS_read, p[0], text, 200));
  T("write straddling (pipe)", syscall(SYS_write, p[1], unmapped - 10, 100));
#endif
  /* wait4 with a bad status pointer still reaps the child */
  pid_t c = fork();
  if (c == 0) _exit(3);
  T("wait4 bad status", syscall(SYS_wait4, c, kernel, 0, 0) == c);
  T("then", syscall(SYS_wait4, c, 0, 0, 0));
  printf("still alive\n");
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_bad_pointers_give_efault(tmp_path: Path, compiler: str) -> None:
    src = "#define ZERO_COUNTS 0\n#define PARTIAL 0\n" + EFAULT
    out = same(tmp_path, src, "efault", compiler=compiler)
    assert b"still alive" in out.native_stdout
    assert out.native_stdout.count(b"EFAULT") > 70
    assert out.vm.kernel_log == []


def test_zero_counts_and_partial_copies(tmp_path: Path) -> None:
    """access_ok() before a zero-byte read or write; short counts up to the first bad byte;
    a pipe read that faults leaves the data in the pipe."""
    same(tmp_path, "#define ZERO_COUNTS 1\n#define PARTIAL 1\n" + EFAULT, "efault-partial")
