"""Pipes of real programs, compared with the host kernel: EOF, SIGPIPE and EPIPE, capacity
and O_NONBLOCK, a 1 MiB transfer between processes, dup2 into stdout, interrupted calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernel.guest import compilers, same

EOF_EPIPE = r"""
#include <sys/ioctl.h>
static volatile int got, code, from_me;
static void h(int sig, siginfo_t *si, void *uc) { got = sig; code = si->si_code;
                                                  from_me = si->si_pid == getpid(); }
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  int p[2]; pipe(p);
  char buf[100];
  printf("write %zd\n", write(p[1], "hello", 5));
  int avail; ioctl(p[0], FIONREAD, &avail);
  printf("FIONREAD %d\n", avail);
  close(p[1]);
  ssize_t n = read(p[0], buf, sizeof buf);
  printf("read %zd '%.*s'\n", n, (int)n, buf);
  printf("then EOF %zd\n", read(p[0], buf, sizeof buf));
  printf("write on the read end %zd errno %d\n", write(p[0], "x", 1), errno);
  close(p[0]);
  /* no reader: SIGPIPE ignored -> EPIPE */
  pipe(p); close(p[0]);
  signal(SIGPIPE, SIG_IGN);
  errno = 0;
  ssize_t r = write(p[1], "x", 1);
  printf("ignored: write %zd errno %d\n", r, errno);
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO; sigaction(SIGPIPE, &sa, 0);
  errno = 0;
  r = write(p[1], "x", 1);
  printf("handled: write %zd errno %d sig %d code %d from me %d\n", r, errno, got, code,
         from_me);
  /* default: a child writing into a pipe nobody reads dies of SIGPIPE */
  pid_t c = fork();
  if (c == 0) { signal(SIGPIPE, SIG_DFL); write(p[1], "x", 1); _exit(0); }
  int st; waitpid(c, &st, 0);
  printf("child: signaled %d sig %d\n", WIFSIGNALED(st), WTERMSIG(st));
  /* the reader goes away while a writer sleeps on a full pipe */
  int q[2]; pipe(q);
  c = fork();
  if (c == 0) {
    close(q[0]); signal(SIGPIPE, SIG_IGN);
    static char big[100000];
    ssize_t w = write(q[1], big, sizeof big);   /* 65536 go in, then the reader is gone */
    printf("child: write %zd errno %d\n", w, errno);
    _exit(0);
  }
  close(q[1]);
  int inpipe = 0;
  while (inpipe < 65536) { usleep(1000); ioctl(q[0], FIONREAD, &inpipe); }  /* writer asleep */
  close(q[0]);
  waitpid(c, &st, 0);
  signal(SIGPIPE, SIG_DFL);
  write(p[1], "x", 1);
  printf("not reached\n");
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_eof_sigpipe_epipe(tmp_path: Path, compiler: str) -> None:
    out = same(tmp_path, EOF_EPIPE, "pipe-eof", compiler=compiler)
    assert out.vm.exit_code == 141


NONBLOCK = r"""
#include <sys/ioctl.h>
int main(void) {
  int p[2]; pipe2(p, O_NONBLOCK);
  char buf[100000];
  memset(buf, 'a', sizeof buf);
  errno = 0;
  ssize_t r = read(p[0], buf, 10);
  printf("empty: read %zd errno %d\n", r, errno);
  long total = 0; int writes = 0;
  while ((r = write(p[1], buf, 1000)) > 0) { total += r; writes++; }
  printf("1000-byte writes: %d writes, %ld bytes, then errno %d\n", writes, total, errno);
  int avail; ioctl(p[0], FIONREAD, &avail); printf("FIONREAD %d\n", avail);
  total = 0; while ((r = read(p[0], buf, 3000)) > 0) total += r;
  printf("drained %ld, then errno %d\n", total, errno);
  total = 0; while ((r = write(p[1], buf, 4096)) > 0) total += r;
  printf("4096-byte writes: %ld\n", total);
  while (read(p[0], buf, sizeof buf) > 0) {}
  write(p[1], buf, 1);
  r = write(p[1], buf, 100000);
  printf("1 byte, then a big write: %zd\n", r);
  while (read(p[0], buf, sizeof buf) > 0) {}
  r = write(p[1], buf, 100000);
  printf("big write into an empty pipe: %zd\n", r);
  while (read(p[0], buf, sizeof buf) > 0) {}
  write(p[1], buf, 3000);
  r = write(p[1], buf, 4096);
  printf("4096 after 3000: %zd; FIONREAD ", r);
  ioctl(p[0], FIONREAD, &avail); printf("%d\n", avail);
  int fl = fcntl(p[0], F_GETFL);
  printf("flags nonblock %d accmode %d %d\n", !!(fl & O_NONBLOCK), fl & O_ACCMODE,
         fcntl(p[1], F_GETFL) & O_ACCMODE);
  fcntl(p[0], F_SETFL, fl & ~O_NONBLOCK);
  printf("cleared %d\n", !!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
  struct stat st; fstat(p[0], &st);
  printf("fifo %d\n", S_ISFIFO(st.st_mode));
  errno = 0;
  r = lseek(p[0], 0, SEEK_SET);
  printf("lseek %zd errno %d\n", r, errno);
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_capacity_and_nonblock(tmp_path: Path, compiler: str) -> None:
    same(tmp_path, NONBLOCK, "pipe-nonblock", compiler=compiler)


TRANSFER = r"""
#define MB (1 << 20)
static unsigned char pat(long i) { return (unsigned char)((i * 31 + 7) % 251); }
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  int down[2], up[2]; pipe(down); pipe(up);
  pid_t c = fork();
  if (c == 0) {
    close(up[0]); close(down[1]);
    static unsigned char out[10000];
    for (long i = 0; i < MB; ) {             /* child -> parent, 10000 bytes a write */
      long n = MB - i < 10000 ? MB - i : 10000;
      for (long j = 0; j < n; j++) out[j] = pat(i + j);
      if (write(up[1], out, n) != n) _exit(2);
      i += n;
    }
    close(up[1]);
    static unsigned char in[65536];
    long got = 0, bad = 0; ssize_t r;        /* parent -> child, read 64 KiB at a time */
    while ((r = read(down[0], in, sizeof in)) > 0) {
      for (long j = 0; j < r; j++) bad += in[j] != pat(got + j);
      got += r;
    }
    _exit(got == MB && !bad ? 0 : 1);
  }
  close(up[1]); close(down[0]);
  static unsigned char buf[777];
  long got = 0, bad = 0, reads = 0; ssize_t r;
  while ((r = read(up[0], buf, sizeof buf)) > 0) {   /* a slow reader: the writer blocks */
    for (long j = 0; j < r; j++) bad += buf[j] != pat(got + j);
    got += r; reads++;
  }
  printf("parent read %ld bytes, %ld wrong, more than %d reads %d\n", got, bad, MB / 777,
         reads > MB / 777);
  unsigned char *big = malloc(MB);
  for (long i = 0; i < MB; i++) big[i] = pat(i);
  ssize_t w = write(down[1], big, MB);        /* one blocking write of 1 MiB */
  printf("one write of 1 MiB returned %zd\n", w);
  close(down[1]);
  int st; waitpid(c, &st, 0);
  printf("child exit %d\n", WEXITSTATUS(st));
  return 0;
}
"""


def test_one_mebibyte_between_processes(tmp_path: Path) -> None:
    same(tmp_path, TRANSFER, "pipe-1m")


DUP2 = r"""
int main(int argc, char **argv) {
  if (argc > 1) { printf("exec'd program writes to its stdout: %s\n", argv[1]); return 0; }
  setvbuf(stdout, 0, _IONBF, 0);
  int p[2]; pipe(p);
  pid_t c = fork();
  if (c == 0) {
    dup2(p[1], 1); close(p[0]); close(p[1]);
    printf("child printf into the pipe\n");
    char *args[] = {argv[0], "hello", 0};
    execv(argv[0], args);
    _exit(1);
  }
  close(p[1]);
  char buf[256]; ssize_t n, total = 0;
  while ((n = read(p[0], buf + total, sizeof buf - total)) > 0) total += n;
  waitpid(c, 0, 0);
  printf("parent got %zd bytes:\n%.*s", total, (int)total, buf);
  printf("dup2 same fd %d, bad fd %d errno %d\n", dup2(1, 1), dup2(77, 1), errno);
  int d = dup(1);
  printf("dup %d\n", d);
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_dup2_into_stdout(tmp_path: Path, compiler: str) -> None:
    same(tmp_path, DUP2, "pipe-dup2", compiler=compiler)


INTERRUPTED = r"""
#include <sys/time.h>
static int p[2]; static volatile int ticks;
static void tick(int sig) { ticks++; if (ticks == 2) write(p[1], "data", 4); }
static void arm(int usec) {
  struct itimerval it = {{0, usec}, {0, usec}}; setitimer(ITIMER_REAL, &it, 0);
}
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  pipe(p);
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = tick;
  sigaction(SIGALRM, &sa, 0);
  char buf[16];
  arm(50000);
  errno = 0;
  ssize_t r = read(p[0], buf, sizeof buf);   /* no SA_RESTART: EINTR at the first tick */
  int e = errno, t = ticks;
  arm(0);
  printf("read without SA_RESTART: %zd errno %d ticks %d\n", r, e, t);
  ticks = 0;
  sa.sa_flags = SA_RESTART; sigaction(SIGALRM, &sa, 0);
  arm(50000);
  r = read(p[0], buf, sizeof buf);           /* restarted; the second tick brings data */
  t = ticks;
  arm(0);
  printf("read with SA_RESTART: %zd '%.*s' ticks %d\n", r, (int)r, buf, t);
  /* a write into a full pipe, interrupted after part of it went in */
  static char big[100000];
  sa.sa_flags = 0; sa.sa_handler = SIG_IGN; sigaction(SIGALRM, &sa, 0);
  sa.sa_handler = tick; sigaction(SIGALRM, &sa, 0);
  ticks = 5;
  arm(50000);
  errno = 0;
  r = write(p[1], big, sizeof big);
  arm(0);
  printf("interrupted write: %zd errno %d\n", r, errno);
  return 0;
}
"""


def test_interrupted_read_and_write(tmp_path: Path) -> None:
    same(tmp_path, INTERRUPTED, "pipe-eintr")
