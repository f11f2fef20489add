"""Processes of real programs, compared with the host kernel: fork and copy-on-write, vfork,
execve, wait statuses, zombies, orphans."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kernel.guest import compilers, same

FORK_COW = r"""
static int data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  char *heap = malloc(8 * 4096);
  for (int i = 0; i < 8 * 4096; i++) heap[i] = (char)(i * 7);
  char *shared = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pid_t kids[4];
  for (int k = 0; k < 4; k++) {
    kids[k] = fork();
    if (kids[k] == 0) {
      data[k] = 100 + k; heap[k * 4096] = (char)(200 + k); shared[k] = (char)(k + 1);
      int ok = 1;
      for (int j = 0; j < 8; j++) if (j != k && data[j] != j + 1) ok = 0;
      for (int j = 0; j < 8 * 4096; j++)
        if (j != k * 4096 && heap[j] != (char)(j * 7)) ok = 0;
      pid_t g = fork();                  /* a grandchild: COW of a COW page */
      if (g == 0) { data[k] = 999; heap[k * 4096] = 1; _exit(data[k] == 999 ? 0 : 1); }
      int st; waitpid(g, &st, 0);
      if (data[k] != 100 + k || heap[k * 4096] != (char)(200 + k) || WEXITSTATUS(st)) ok = 0;
      _exit(ok ? 10 + k : 1);
    }
  }
  for (int k = 3; k >= 0; k--) {
    int st; pid_t r = waitpid(kids[k], &st, 0);
    printf("child %d: pid ok %d exited %d code %d\n", k, r == kids[k], WIFEXITED(st),
           WEXITSTATUS(st));
  }
  int ok = 1;
  for (int j = 0; j < 8; j++) if (data[j] != j + 1) ok = 0;
  for (int j = 0; j < 8 * 4096; j++) if (heap[j] != (char)(j * 7)) ok = 0;
  printf("parent memory unchanged %d, shared %d %d %d %d\n", ok, shared[0], shared[1],
         shared[2], shared[3]);
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_fork_cow_several_children(tmp_path: Path, compiler: str) -> None:
    out = same(tmp_path, FORK_COW, "fork-cow", compiler=compiler)
    assert b"parent memory unchanged 1, shared 1 2 3 4" in out.native_stdout
    out.vm  # noqa: B018


EXEC = r"""
static void h(int sig) { (void)sig; }
int main(int argc, char **argv) {
  setvbuf(stdout, 0, _IONBF, 0);
  if (argc > 1 && strcmp(argv[1], "child") == 0) {
    struct sigaction a; sigset_t now;
    sigaction(SIGUSR1, 0, &a); int ign = a.sa_handler == SIG_IGN;
    sigaction(SIGUSR2, 0, &a); int dfl = a.sa_handler == SIG_DFL;
    sigprocmask(SIG_BLOCK, 0, &now);
    sigset_t pend; sigpending(&pend);
    printf("exec'd: argv %s %s, usr1 ignored %d, usr2 default %d, term blocked %d "
           "term pending %d\n", argv[1], argv[2], ign, dfl, sigismember(&now, SIGTERM),
           sigismember(&pend, SIGTERM));
    return 42;
  }
  signal(SIGUSR1, SIG_IGN); signal(SIGUSR2, h);
  sigset_t set; sigemptyset(&set); sigaddset(&set, SIGTERM); sigprocmask(SIG_BLOCK, &set, 0);
  pid_t c = fork();
  if (c == 0) {
    raise(SIGTERM);
    char *args[] = {argv[0], "child", "two", 0};
    execv(argv[0], args);
    _exit(99);
  }
  int st; waitpid(c, &st, 0);
  printf("fork+exec: exited %d code %d\n", WIFEXITED(st), WEXITSTATUS(st));
  c = fork();
  if (c == 0) {
    char *args[] = {"nothing", 0};
    execv("/no/such/program", args);
    printf("execv failed: errno %d\n", errno);
    _exit(3);
  }
  waitpid(c, &st, 0);
  printf("code %d\n", WEXITSTATUS(st));
  c = vfork();
  if (c == 0) {
    char *args[] = {argv[0], "child", "vfork", 0};
    execv(argv[0], args);
    _exit(99);
  }
  waitpid(c, &st, 0);
  printf("vfork+exec: code %d\n", WEXITSTATUS(st));
  static volatile int shared_with_vfork_child = 1;
  c = vfork();
  if (c == 0) { shared_with_vfork_child = 2; _exit(7); }
  waitpid(c, &st, 0);
  printf("vfork+_exit: code %d, the child's store is the parent's: %d\n", WEXITSTATUS(st),
         shared_with_vfork_child);
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_fork_exec_vfork(tmp_path: Path, compiler: str) -> None:
    same(tmp_path, EXEC, "exec", compiler=compiler)


WAIT = r"""
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  int codes[] = {0, 1, 255, 256, 42};
  for (int i = 0; i < 5; i++) {
    pid_t c = fork();
    if (c == 0) exit(codes[i]);
    int st; waitpid(c, &st, 0);
    printf("exit(%d): exited %d status %d signaled %d\n", codes[i], WIFEXITED(st),
           WEXITSTATUS(st), WIFSIGNALED(st));
  }
  int sigs[] = {SIGKILL, SIGTERM, SIGUSR1, SIGSEGV, SIGABRT, SIGPIPE};
  for (int i = 0; i < 6; i++) {
    pid_t c = fork();
    if (c == 0) {
      if (sigs[i] == SIGSEGV) *(volatile int *)0 = 1;
      if (sigs[i] == SIGABRT) abort();
      for (;;) pause();
    }
    if (sigs[i] != SIGSEGV && sigs[i] != SIGABRT) kill(c, sigs[i]);
    int st; waitpid(c, &st, 0);
    printf("signal %d: exited %d signaled %d termsig %d\n", sigs[i], WIFEXITED(st),
           WIFSIGNALED(st), WTERMSIG(st));
  }
  /* a dozen children, reaped in any order by wait() */
  int sum = 0, n = 0;
  for (int i = 0; i < 12; i++) if (fork() == 0) _exit(i);
  int st; pid_t r;
  while ((r = wait(&st)) > 0) { sum += WEXITSTATUS(st); n++; }
  printf("reaped %d sum %d then errno %d\n", n, sum, errno);
  errno = 0;
  r = waitpid(-1, &st, WNOHANG);
  printf("WNOHANG without children: %d errno %d\n", r, errno);
  errno = 0;
  r = waitpid(getpid(), &st, 0);
  printf("wait for a non-child: %d errno %d\n", r, errno);
  errno = 0;
  r = waitpid(-1, &st, 0x1000);
  printf("bad options: %d errno %d\n", r, errno);
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_wait_statuses(tmp_path: Path, compiler: str) -> None:
    out = same(tmp_path, WAIT, "wait", compiler=compiler)
    assert [line for line in out.vm.kernel_log if "segfault at 0 " in line]


ZOMBIE = r"""
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  int p[2]; pipe(p);
  pid_t c = fork();
  if (c == 0) { close(p[0]); _exit(5); }
  close(p[1]);
  char b; read(p[0], &b, 1);          /* EOF: the child is gone, a zombie */
  int r = kill(c, 0);
  printf("zombie exists: kill %d\n", r);
  r = kill(c, SIGKILL);
  printf("signal a zombie: %d\n", r);
  int st; pid_t w = waitpid(c, &st, 0);  /* (EOF may come just before the zombie does) */
  printf("reaped %d code %d\n", w == c, WEXITSTATUS(st));
  errno = 0; r = kill(c, 0);
  printf("after reaping: kill %d errno %d\n", r, errno);
  errno = 0; w = waitpid(c, &st, 0);
  printf("wait again: %d errno %d\n", w, errno);
  /* WNOHANG while the child still runs */
  int q[2]; pipe(q);
  c = fork();
  if (c == 0) { close(q[1]); char x; read(q[0], &x, 1); _exit(6); }
  close(q[0]);
  w = waitpid(c, &st, WNOHANG);
  printf("running child, WNOHANG: %d\n", w);
  close(q[1]);
  w = waitpid(c, &st, 0);
  printf("then: pid ok %d code %d\n", w == c, WEXITSTATUS(st));
  return 0;
}
"""


def test_zombie_and_wnohang(tmp_path: Path) -> None:
    same(tmp_path, ZOMBIE, "zombie")


ORPHAN = r"""
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  int result[2]; pipe(result);
  pid_t c = fork();
  if (c == 0) {
    int hold[2]; pipe(hold);
    int started[2]; pipe(started);
    pid_t me = getpid();
    pid_t g = fork();
    if (g == 0) {
      close(hold[1]); close(result[0]);
      int before = getppid() == me;
      write(started[1], "s", 1);
      char x; read(hold[0], &x, 1);   /* EOF once the middle process has exited */
      while (getppid() == me) sched_yield();
      char msg[64];
      int n = snprintf(msg, sizeof msg, "grandchild: parent was %d, reparented %d\n",
                       before, getppid() != me);
      write(result[1], msg, n);
      _exit(0);
    }
    char s; read(started[0], &s, 1);    /* the grandchild has looked at its parent */
    _exit(3);
  }
  close(result[1]);
  int st; waitpid(c, &st, 0);
  printf("middle exited %d\n", WEXITSTATUS(st));
  char buf[128]; ssize_t n = read(result[0], buf, sizeof buf);
  if (n > 0) fwrite(buf, 1, n, stdout);
  return 0;
}
"""


def test_orphan_is_reparented(tmp_path: Path) -> None:
    same(tmp_path, ORPHAN, "orphan")


EXIT_FIRST = r"""
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  int p[2]; pipe(p);
  int chain[4][2]; for (int i = 0; i < 4; i++) pipe(chain[i]);
  for (int i = 0; i < 3; i++) {
    if (fork() == 0) {
      close(p[1]);
      char x; ssize_t n = read(p[0], &x, 1);  /* EOF when the parent is gone */
      if (i > 0) read(chain[i][0], &x, 1);    /* then in turn, each after the one before */
      usleep(1000);
      printf("child %d: read %zd, still running after the parent\n", i, n);
      write(chain[i + 1][1], "t", 1);
      _exit(0);
    }
  }
  printf("parent exits first\n");
  return 4;
}
"""


def test_parent_exits_while_children_run(tmp_path: Path) -> None:
    out = same(tmp_path, EXIT_FIRST, "exit-first")
    assert out.native_stdout.count(b"still running") == 3


STOP_CONT = r"""
static void chld(const char *what) {
  sigset_t set; sigemptyset(&set); sigaddset(&set, SIGCHLD);
  siginfo_t si; sigwaitinfo(&set, &si);
  printf("  SIGCHLD after %s: code %d status %d\n", what, si.si_code, si.si_status);
}
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  sigset_t set; sigemptyset(&set); sigaddset(&set, SIGCHLD); sigprocmask(SIG_BLOCK, &set, 0);
  int p[2]; pipe(p);
  pid_t c = fork();
  if (c == 0) {
    setpgid(0, 0);  /* a group of its own, not orphaned: SIGTSTP is not discarded */
    close(p[1]);
    char x; ssize_t r = read(p[0], &x, 1);   /* sleeps; a stop and continue do not end it */
    printf("child: read %zd '%c'\n", r, x);
    _exit(0);
  }
  close(p[0]);
  setpgid(c, c);
  int st;
  kill(c, SIGSTOP);
  chld("SIGSTOP");
  pid_t w = waitpid(c, &st, WUNTRACED);
  printf("stopped: pid ok %d WIFSTOPPED %d WSTOPSIG %d\n", w == c, WIFSTOPPED(st), WSTOPSIG(st));
  w = waitpid(c, &st, WUNTRACED | WNOHANG);
  printf("reported once: %d\n", w);
  kill(c, SIGCONT);
  chld("SIGCONT");
  w = waitpid(c, &st, WCONTINUED);
  printf("continued: pid ok %d WIFCONTINUED %d\n", w == c, WIFCONTINUED(st));
  kill(c, SIGTSTP);
  chld("SIGTSTP");
  w = waitpid(c, &st, WUNTRACED);
  printf("SIGTSTP: WIFSTOPPED %d WSTOPSIG %d\n", WIFSTOPPED(st), WSTOPSIG(st));
  kill(c, SIGCONT);
  chld("SIGCONT");
  waitpid(c, &st, WCONTINUED);
  write(p[1], "x", 1);
  waitpid(c, &st, 0);
  chld("exit");
  printf("exited %d code %d\n", WIFEXITED(st), WEXITSTATUS(st));
  /* SA_NOCLDSTOP: no SIGCHLD for stops */
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = SIG_DFL;
  sa.sa_flags = SA_NOCLDSTOP; sigaction(SIGCHLD, &sa, 0);
  /* a stopped child is killed by SIGKILL; SIGTERM waits until it continues */
  c = fork();
  if (c == 0) { for (;;) pause(); }
  kill(c, SIGSTOP); waitpid(c, &st, WUNTRACED);
  sigset_t pend; sigpending(&pend);
  printf("SA_NOCLDSTOP: SIGCHLD pending %d\n", sigismember(&pend, SIGCHLD));
  kill(c, SIGTERM);
  w = waitpid(c, &st, WNOHANG);
  printf("SIGTERM while stopped: %d\n", w);
  kill(c, SIGKILL);
  waitpid(c, &st, 0);
  printf("killed: %d %d\n", WIFSIGNALED(st), WTERMSIG(st));
  return 0;
}
"""


def test_stop_and_continue(tmp_path: Path) -> None:
    same(tmp_path, STOP_CONT, "stop-cont")
