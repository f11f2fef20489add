"""Signals of real programs, compared with the host kernel: fault signals (SIGSEGV, SIGBUS)
with their siginfo and the kernel's log line, handlers, masks, sigsuspend, alarm, SIGCHLD."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.kernel.guest import compilers, same

FAULTS = r"""
#include <ucontext.h>
static sigjmp_buf jb;
static volatile uintptr_t bad;
static void h(int sig, siginfo_t *si, void *uc) {
  greg_t *g = ((ucontext_t *)uc)->uc_mcontext.gregs;
  printf("signo %d code %d addr==bad %d err %llx trapno %lld cr2==bad %d\n", si->si_signo,
         si->si_code, (uintptr_t)si->si_addr == bad, (long long)g[REG_ERR],
         (long long)g[REG_TRAPNO], (uintptr_t)g[REG_CR2] == bad);
  siglongjmp(jb, 1);
}
int main(int argc, char **argv) {
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
  if (argc > 2) sigaction(SIGSEGV, &sa, 0);
  char *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  char *rw = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  char *none = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  rw[0] = 0xc3; none[0] = 1; mprotect(none, 4096, PROT_NONE);
  (void)*(volatile char *)ro;
  int c = atoi(argv[1]);
  if (!sigsetjmp(jb, 1)) {
    switch (c) {
      case 0: bad = 0; (void)*(volatile char *)bad; break;
      case 1: bad = 0x1000; *(volatile char *)bad = 1; break;
      case 2: bad = (uintptr_t)ro; *(volatile char *)bad = 1; break;
      case 3: bad = (uintptr_t)none; (void)*(volatile char *)bad; break;
      case 4: bad = (uintptr_t)rw; ((void (*)(void))bad)(); break;
      case 5: bad = 0x1000; ((void (*)(void))bad)(); break;
      case 6: bad = 0xffff800000000000ul; (void)*(volatile char *)bad; break;
      case 7: bad = 0xffff800000000000ul; *(volatile char *)bad = 1; break;
      case 8: bad = 0xffff800000000000ul; ((void (*)(void))bad)(); break;
      case 9: bad = 0x7ffffffff000ul; (void)*(volatile char *)bad; break;
    }
    printf("no fault\n");
  }
  printf("after %d\n", c);
  return 3;
}
"""

#: case -> the error code Linux logs (hex, as dmesg prints it)
ERRORS = {0: "4", 1: "6", 2: "7", 3: "4", 4: "15", 5: "14", 6: "5", 7: "7", 8: "15", 9: "5"}
LINE = re.compile(r"\[(\d+)\]: segfault at ([0-9a-f]+) ip ([0-9a-f]+) sp ([0-9a-f]+) "
                  r"error ([0-9a-f]+)(?: in \S+(\[[0-9a-f]+,[0-9a-f]+\+[0-9a-f]+\]))?")


def _host_line(binary: Path, arg: str) -> tuple[str, str, str, str | None] | None:
    """Run natively and find the kernel's segfault line in dmesg (None if unreadable or
    rate-limited)."""
    def dmesg() -> str | None:
        try:
            got = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return got.stdout if got.returncode == 0 else None

    before = dmesg()
    proc = subprocess.Popen([str(binary), arg], stdout=subprocess.DEVNULL)
    proc.wait(timeout=30)
    log = dmesg()
    if before is None or log is None:
        return None
    log = log[len(before):] if log.startswith(before) else log  # only what this run added
    found = None
    for m in LINE.finditer(log):  # the last line of that pid (pids are reused)
        if int(m.group(1)) == proc.pid:
            found = m.group(2), m.group(5), m.group(3), m.group(6)
    return found


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_segv_unhandled_log_line(tmp_path: Path, case: int) -> None:
    out = same(tmp_path, FAULTS, "faults", args=(str(case),))
    assert out.vm.exit_code == 139 and out.vm.signal == 11
    lines = [m for line in out.vm.kernel_log if (m := LINE.search(line))]
    assert len(lines) == 1, out.vm.kernel_log
    assert lines[0].group(5) == ERRORS[case]
    host = _host_line(out.binary, str(case))
    if host is not None:
        assert host[1] == ERRORS[case]
        if case in (0, 1, 5, 6, 7, 8, 9):  # fixed addresses (the others are randomised)
            assert host[0] == lines[0].group(2)
        # a static non-PIE program: the same ip, and print_vma_addr's [offset,start+size]
        if case != 4:  # (4 jumps into a randomised mapping)
            assert (host[2], host[3]) == (lines[0].group(3), lines[0].group(6))


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_segv_handled_siginfo(tmp_path: Path, compiler: str) -> None:
    # every case in one vmsim run per case would be slow: the program loops over them
    src = FAULTS.replace("int main(int argc, char **argv) {", "int one(int c, int argc) {") \
        .replace("if (argc > 2) sigaction", "if (argc > 0) sigaction") \
        .replace("int c = atoi(argv[1]);", "") + r"""
int main(void) { for (int c = 0; c < 10; c++) one(c, 1); return 0; }
"""
    out = same(tmp_path, src, "faults-handled", compiler=compiler)
    text = out.native_stdout.decode()
    assert text.count("addr==bad 1") == 10 and "no fault" not in text
    assert out.vm.kernel_log == []


MPROTECT_RETRY = r"""
static char *page; static int calls;
static void h(int sig, siginfo_t *si, void *uc) {
  calls++;
  printf("handler: code %d at page offset %ld\n", si->si_code, (char *)si->si_addr - page);
  mprotect(page, 4096, PROT_READ | PROT_WRITE);
}
int main(void) {
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO; sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, 0);
  page = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  printf("before %d\n", page[100]);
  page[100] = 42;                       /* faults, the handler fixes it, the store is retried */
  printf("after %d calls %d\n", page[100], calls);
  mprotect(page, 4096, PROT_NONE);
  int v = page[200];                    /* a read this time */
  printf("read %d calls %d\n", v, calls);
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_handler_mprotects_and_returns(tmp_path: Path, compiler: str) -> None:
    same(tmp_path, MPROTECT_RETRY, "mprotect-retry", compiler=compiler)


STACK_OVERFLOW = r"""
#include <sys/resource.h>
static void h(int sig, siginfo_t *si, void *uc) {
  stack_t ss; sigaltstack(0, &ss);
  char local; int on_alt = (char *)&local >= (char *)ss.ss_sp &&
                           (char *)&local < (char *)ss.ss_sp + ss.ss_size;
  char msg[80];
  int n = snprintf(msg, sizeof msg, "overflow: sig %d code %d on altstack %d flags %d\n",
                   sig, si->si_code, on_alt, ss.ss_flags);
  write(1, msg, n);
  _exit(7);
}
static int depth(int n) { volatile char buf[1024]; buf[0] = n; return n + depth(n + 1) + buf[0]; }
int main(void) {
  struct rlimit rl = {1 << 20, 1 << 20}; setrlimit(RLIMIT_STACK, &rl);
  stack_t ss = {.ss_sp = malloc(65536), .ss_size = 65536, .ss_flags = 0};
  sigaltstack(&ss, 0);
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGSEGV, &sa, 0);
  stack_t cur; sigaltstack(0, &cur);
  printf("altstack size %zu flags %d\n", cur.ss_size, cur.ss_flags); fflush(stdout);
  return depth(0);
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_stack_overflow_on_sigaltstack(tmp_path: Path, compiler: str) -> None:
    out = same(tmp_path, STACK_OVERFLOW, "stack-overflow", compiler=compiler)
    assert b"on altstack 1 flags 1" in out.native_stdout


STACK_OVERFLOW_NO_ALTSTACK = STACK_OVERFLOW.replace("SA_SIGINFO | SA_ONSTACK", "SA_SIGINFO")


def test_stack_overflow_without_altstack_kills(tmp_path: Path) -> None:
    out = same(tmp_path, STACK_OVERFLOW_NO_ALTSTACK, "stack-overflow-noalt")
    assert out.vm.exit_code == 139


SIGBUS = r"""
static sigjmp_buf jb;
static volatile char *bad;
static void h(int sig, siginfo_t *si, void *uc) {
  printf("signo %d code %d addr==bad %d\n", si->si_signo, si->si_code, si->si_addr == bad);
  siglongjmp(jb, 1);
}
int main(int argc, char **argv) {
  int fd = open("small", O_RDWR | O_CREAT | O_TRUNC, 0644);
  write(fd, "0123456789", 10);
  char *p = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  printf("in the last page: %c %d\n", p[5], p[4000]);
  if (argc > 1) { bad = p + 4096 + 10; (void)*bad; }   /* unhandled: killed */
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
  sigaction(SIGBUS, &sa, 0);
  if (!sigsetjmp(jb, 1)) { bad = p + 4096; (void)*bad; }
  if (!sigsetjmp(jb, 1)) { bad = p + 2 * 4096 + 5; *bad = 1; }
  if (!sigsetjmp(jb, 1)) { bad = p + 2 * 4096; (void)*bad; }
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_sigbus_beyond_eof(tmp_path: Path, compiler: str) -> None:
    out = same(tmp_path, SIGBUS, "sigbus", compiler=compiler)
    assert out.native_stdout.count(b"signo 7 code 2 addr==bad 1") == 3


def test_sigbus_unhandled(tmp_path: Path) -> None:
    out = same(tmp_path, SIGBUS, "sigbus", args=("kill",))
    assert out.vm.exit_code == 135
    assert not [line for line in out.vm.kernel_log if "segfault" in line]


HANDLERS = r"""
static volatile int got[65], depth, maxdepth, raises, calls;
static void h(int sig) { got[sig]++; }
static void info(int sig, siginfo_t *si, void *uc) {
  printf("info: sig %d code %d pid ok %d uid %d\n", sig, si->si_code, si->si_pid == getpid(),
         si->si_uid == getuid());
}
static void nodefer(int sig) {
  depth++; calls++; if (depth > maxdepth) maxdepth = depth;
  if (raises++ < 2) raise(sig);
  depth--;
}
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  setpgid(0, 0);  /* kill(0, ...) below must reach this process only */
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_handler = h;
  sigaction(SIGUSR1, &sa, 0); sigaction(SIGTERM, &sa, 0); sigaction(SIGUSR2, &sa, 0);
  raise(SIGUSR1); kill(getpid(), SIGTERM); kill(0, SIGUSR2);
  printf("usr1 %d term %d usr2 %d\n", got[SIGUSR1], got[SIGTERM], got[SIGUSR2]);
  sa.sa_sigaction = info; sa.sa_flags = SA_SIGINFO;
  sigaction(SIGUSR1, &sa, 0);
  kill(getpid(), SIGUSR1);
  raise(SIGUSR1);
  /* blocking: pending until unblocked, delivered once (standard signals do not queue) */
  sa.sa_handler = h; sa.sa_flags = 0; sigaction(SIGUSR1, &sa, 0);
  sigset_t set, old, pend; sigemptyset(&set); sigaddset(&set, SIGUSR1); sigaddset(&set, SIGUSR2);
  sigprocmask(SIG_BLOCK, &set, &old);
  raise(SIGUSR1); raise(SIGUSR1); raise(SIGUSR2);
  sigpending(&pend);
  printf("blocked: usr1 %d pending %d %d %d\n", got[SIGUSR1], sigismember(&pend, SIGUSR1),
         sigismember(&pend, SIGUSR2), sigismember(&pend, SIGTERM));
  sigprocmask(SIG_SETMASK, &old, 0);
  printf("unblocked: usr1 %d usr2 %d\n", got[SIGUSR1], got[SIGUSR2]);
  /* SIG_IGN discards */
  signal(SIGUSR2, SIG_IGN); raise(SIGUSR2); signal(SIGUSR2, h);
  printf("ignored: usr2 %d\n", got[SIGUSR2]);
  /* ignoring a pending blocked signal discards it */
  sigprocmask(SIG_BLOCK, &set, 0); raise(SIGUSR2); signal(SIGUSR2, SIG_IGN);
  signal(SIGUSR2, h); sigprocmask(SIG_UNBLOCK, &set, 0);
  printf("discarded: usr2 %d\n", got[SIGUSR2]);
  /* SA_NODEFER: the handler interrupts itself */
  sa.sa_handler = nodefer; sa.sa_flags = SA_NODEFER; sigaction(SIGUSR1, &sa, 0);
  raise(SIGUSR1);
  printf("nodefer depth %d calls %d\n", maxdepth, calls);
  maxdepth = depth = raises = calls = 0; sa.sa_flags = 0; sigaction(SIGUSR1, &sa, 0);
  raise(SIGUSR1);
  printf("defer depth %d calls %d\n", maxdepth, calls);
  /* the old action comes back from sigaction */
  struct sigaction cur; sigaction(SIGUSR1, 0, &cur);
  printf("oldact is nodefer %d flags nodefer %d\n", cur.sa_handler == nodefer,
         !!(cur.sa_flags & SA_NODEFER));
  /* errors */
  int r = sigaction(SIGKILL, &sa, 0);
  printf("sigaction(SIGKILL) %d %d\n", r, errno);
  r = sigaction(0, &sa, 0);
  printf("sigaction(0) %d %d\n", r, errno);
  r = kill(getpid(), 1000);
  printf("kill(bad sig) %d %d\n", r, errno);
  r = kill(99999, SIGUSR1);
  printf("kill(no pid) %d %d\n", r, errno);
  r = kill(getpid(), 0);
  printf("kill(sig 0) %d\n", r);
  /* SA_RESETHAND: once, then the default (SIGTERM kills) */
  sa.sa_handler = h; sa.sa_flags = SA_RESETHAND; sigaction(SIGTERM, &sa, 0);
  raise(SIGTERM);
  sigaction(SIGTERM, 0, &cur);
  printf("term %d reset to default %d\n", got[SIGTERM], cur.sa_handler == SIG_DFL);
  raise(SIGTERM);
  printf("not reached\n");
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_handlers_masks_resethand_nodefer(tmp_path: Path, compiler: str) -> None:
    out = same(tmp_path, HANDLERS, "handlers", compiler=compiler)
    assert out.vm.exit_code == 143


SUSPEND = r"""
#include <sys/time.h>
static volatile int got;
static void h(int sig) { got = sig; }
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  signal(SIGUSR1, h); signal(SIGALRM, h);
  sigset_t set, old, wait; sigemptyset(&set); sigaddset(&set, SIGUSR1);
  sigprocmask(SIG_BLOCK, &set, &old);
  pid_t parent = getpid();
  pid_t c = fork();
  if (c == 0) { kill(parent, SIGUSR1); _exit(0); }
  sigemptyset(&wait);
  int r = sigsuspend(&wait);
  printf("sigsuspend %d errno %d got %d\n", r, errno, got);
  sigset_t now; sigprocmask(SIG_BLOCK, 0, &now);
  printf("mask restored %d\n", sigismember(&now, SIGUSR1));
  waitpid(c, 0, 0);
  got = 0;
  printf("alarm %u\n", alarm(5));
  printf("alarm again %u\n", alarm(3));
  printf("alarm cancel %u\n", alarm(0));
  struct itimerval it = {{0, 0}, {0, 20000}}, cur;
  setitimer(ITIMER_REAL, &it, 0);
  r = pause();
  printf("pause %d errno %d got %d\n", r, errno, got);
  getitimer(ITIMER_REAL, &cur);
  printf("disarmed %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0);
  it.it_interval.tv_usec = 10000;  /* periodic: three ticks */
  setitimer(ITIMER_REAL, &it, 0);
  for (int i = 0; i < 3; i++) { got = 0; while (!got) pause(); }
  printf("three ticks\n");
  it.it_interval.tv_usec = 0; setitimer(ITIMER_REAL, &it, 0);
  signal(SIGALRM, SIG_DFL);
  for (;;) pause();
}
"""


def test_sigsuspend_pause_alarm(tmp_path: Path) -> None:
    out = same(tmp_path, SUSPEND, "suspend")
    assert out.vm.exit_code == 142


SIGCHLD_INFO = r"""
static volatile int n; static volatile pid_t pids[4]; static volatile int codes[4], status[4];
static void h(int sig, siginfo_t *si, void *uc) {
  pids[n] = si->si_pid; codes[n] = si->si_code; status[n] = si->si_status; n++;
}
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGCHLD, &sa, 0);
  pid_t a = fork();
  if (a == 0) _exit(5);
  while (n < 1) pause();
  printf("child exited: pid ok %d code %d status %d\n", pids[0] == a, codes[0], status[0]);
  int st; waitpid(a, &st, 0);
  printf("wait: exited %d status %d\n", WIFEXITED(st), WEXITSTATUS(st));
  pid_t b = fork();
  if (b == 0) { for (;;) pause(); }
  kill(b, SIGTERM);
  while (n < 2) pause();
  printf("child killed: pid ok %d code %d status %d\n", pids[1] == b, codes[1], status[1]);
  waitpid(b, &st, 0);
  printf("wait: signaled %d sig %d\n", WIFSIGNALED(st), WTERMSIG(st));
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_sigchld_siginfo(tmp_path: Path, compiler: str) -> None:
    same(tmp_path, SIGCHLD_INFO, "sigchld", compiler=compiler)


SIGCHLD_IGN = r"""
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  signal(SIGCHLD, SIG_IGN);
  pid_t a = fork();
  if (a == 0) _exit(1);
  pid_t b = fork();
  if (b == 0) _exit(2);
  int st;
  pid_t r = wait(&st);          /* sleeps until both are gone, then ECHILD */
  printf("wait %d errno %d\n", r, errno);
  errno = 0;
  printf("kill reaped child %d errno %d\n", kill(a, 0), errno);
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = SIG_DFL;
  sa.sa_flags = SA_NOCLDWAIT;
  sigaction(SIGCHLD, &sa, 0);
  pid_t c = fork();
  if (c == 0) _exit(3);
  errno = 0;
  r = waitpid(c, &st, 0);
  printf("nocldwait: wait %d errno %d\n", r, errno);
  return 0;
}
"""


def test_sigchld_ignored_autoreaps(tmp_path: Path) -> None:
    same(tmp_path, SIGCHLD_IGN, "sigchld-ign")


RT_SIGTIMEDWAIT = r"""
int main(void) {
  sigset_t set; sigemptyset(&set); sigaddset(&set, SIGUSR1); sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, 0);
  raise(SIGUSR1);
  siginfo_t si;
  int s = sigwaitinfo(&set, &si);
  printf("sigwaitinfo %d signo %d code %d\n", s, si.si_signo, si.si_code);
  pid_t c = fork();
  if (c == 0) _exit(9);
  s = sigwaitinfo(&set, &si);
  printf("sigwaitinfo %d signo %d code %d status %d pid ok %d\n", s, si.si_signo, si.si_code,
         si.si_status, si.si_pid == c);
  struct timespec ts = {0, 1000};
  s = sigtimedwait(&set, &si, &ts);
  printf("sigtimedwait %d errno %d\n", s, errno);
  int sig;
  raise(SIGUSR1);
  s = sigwait(&set, &sig);
  printf("sigwait %d sig %d\n", s, sig);
  return 0;
}
"""


def test_sigwaitinfo(tmp_path: Path) -> None:
    same(tmp_path, RT_SIGTIMEDWAIT, "sigwaitinfo")


ALTSTACK = r"""
#include <ucontext.h>
#define AUTODISARM (1u << 31)
static void h(int sig, siginfo_t *si, void *p) {
  ucontext_t *uc = p; stack_t cur; sigaltstack(0, &cur);
  printf("uc_stack flags %d size %zu sp %d | now flags %d\n", uc->uc_stack.ss_flags,
         uc->uc_stack.ss_size, uc->uc_stack.ss_sp != 0, cur.ss_flags);
  if (sig == SIGUSR2) {                  /* on the alternate stack: it cannot be changed */
    stack_t ss = {.ss_sp = malloc(65536), .ss_size = 65536};
    errno = 0; int r = sigaltstack(&ss, 0);
    printf("change while on it: %d errno %d\n", r, errno);
  }
}
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
  sigaction(SIGUSR1, &sa, 0);
  stack_t q; sigaltstack(0, &q); printf("initial flags %d size %zu\n", q.ss_flags, q.ss_size);
  raise(SIGUSR1);
  stack_t ss = {.ss_sp = malloc(65536), .ss_size = 65536, .ss_flags = 0};
  sigaltstack(&ss, 0);
  raise(SIGUSR1);
  sa.sa_flags |= SA_ONSTACK; sigaction(SIGUSR1, &sa, 0); sigaction(SIGUSR2, &sa, 0);
  raise(SIGUSR1);
  raise(SIGUSR2);
  ss.ss_flags = AUTODISARM; printf("autodisarm set %d\n", sigaltstack(&ss, 0));
  raise(SIGUSR1);
  sigaltstack(0, &q); printf("after flags %d\n", q.ss_flags);
  ss.ss_flags = SS_DISABLE; sigaltstack(&ss, 0);
  sigaltstack(0, &q); printf("disabled flags %d size %zu\n", q.ss_flags, q.ss_size);
  raise(SIGUSR1);
  ss.ss_flags = 0; ss.ss_size = 100; errno = 0;
  int r = sigaltstack(&ss, 0); printf("too small %d errno %d\n", r, errno);
  ss.ss_flags = 5; ss.ss_size = 65536; errno = 0;
  r = sigaltstack(&ss, 0); printf("bad flags %d errno %d\n", r, errno);
  return 0;
}
"""


@pytest.mark.parametrize("compiler", compilers(musl=True))
def test_sigaltstack_flags_autodisarm(tmp_path: Path, compiler: str) -> None:
    same(tmp_path, ALTSTACK, "altstack", compiler=compiler)


QUEUE = r"""
static int seen[16], n;
static void h(int sig, siginfo_t *si, void *uc) {
  if (n < 16) seen[n++] = sig * 1000 + (si->si_code == SI_QUEUE ? si->si_value.sival_int : 0);
}
int main(void) {
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
  int rt = SIGRTMIN + 2;
  sigaction(rt, &sa, 0); sigaction(SIGUSR1, &sa, 0); sigaction(SIGRTMIN + 1, &sa, 0);
  sigset_t set; sigemptyset(&set);
  sigaddset(&set, rt); sigaddset(&set, SIGUSR1); sigaddset(&set, SIGRTMIN + 1);
  sigprocmask(SIG_BLOCK, &set, 0);
  for (int i = 1; i <= 3; i++) {
    union sigval v = {.sival_int = i};
    sigqueue(getpid(), rt, v);
    sigqueue(getpid(), SIGUSR1, v);
  }
  union sigval v = {.sival_int = 9};
  sigqueue(getpid(), SIGRTMIN + 1, v);
  raise(SIGUSR1);
  sigprocmask(SIG_UNBLOCK, &set, 0);
  printf("delivered %d:", n);
  for (int i = 0; i < n; i++) printf(" %d", seen[i] - (seen[i] >= SIGRTMIN * 1000 ? SIGRTMIN * 1000 : 0));
  printf("\n");
  siginfo_t si; memset(&si, 0, sizeof si);
  si.si_code = SI_USER;
  long r = syscall(SYS_rt_sigqueueinfo, getppid(), SIGUSR1, &si);
  printf("forged SI_USER for another process: %ld errno %d\n", r, errno);
  return 0;
}
"""


def test_realtime_signals_queue(tmp_path: Path) -> None:
    same(tmp_path, "#include <sys/syscall.h>\n" + QUEUE, "rt-queue")


EDGES = r"""
#include <sys/syscall.h>
#include <sys/time.h>
#define T(name, call) do { errno = 0; long r_ = (long)(call); \
  printf("%-34s %ld %d\n", name, r_, r_ < 0 ? errno : 0); } while (0)
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  char buf[256] = {0};
  unsigned long all = ~0ul;
  T("sigaction sig 0", syscall(SYS_rt_sigaction, 0, 0, buf, 8));
  T("sigaction sig 64", syscall(SYS_rt_sigaction, 64, 0, buf, 8));
  T("sigaction sig 65", syscall(SYS_rt_sigaction, 65, 0, buf, 8));
  T("sigaction sig -1", syscall(SYS_rt_sigaction, -1, 0, buf, 8));
  T("sigaction setsize 4", syscall(SYS_rt_sigaction, SIGUSR1, 0, buf, 4));
  T("sigaction setsize 16", syscall(SYS_rt_sigaction, SIGUSR1, 0, buf, 16));
  T("sigaction SIGKILL query", syscall(SYS_rt_sigaction, SIGKILL, 0, buf, 8));
  T("sigaction SIGSTOP set", syscall(SYS_rt_sigaction, SIGSTOP, buf, 0, 8));
  T("sigprocmask how 3", syscall(SYS_rt_sigprocmask, 3, &all, 0, 8));
  T("sigprocmask how -1 no set", syscall(SYS_rt_sigprocmask, -1, 0, buf, 8));
  T("sigprocmask setsize 7", syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, 0, 7));
  T("block everything", syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, 0, 8));
  unsigned long now = 0;
  T("mask read back", syscall(SYS_rt_sigprocmask, SIG_SETMASK, 0, &now, 8));
  printf("KILL/STOP never blocked: %d %d\n", !!(now & (1ul << (SIGKILL - 1))),
         !!(now & (1ul << (SIGSTOP - 1))));
  unsigned long none = 0;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, 0, 8);
  T("sigpending setsize 9", syscall(SYS_rt_sigpending, buf, 9));
  T("sigpending setsize 4", syscall(SYS_rt_sigpending, buf, 4));
  T("sigsuspend setsize 4", syscall(SYS_rt_sigsuspend, &none, 4));
  struct timespec bad = {0, -1}, neg = {-1, 0};
  T("sigtimedwait nsec -1", syscall(SYS_rt_sigtimedwait, &all, 0, &bad, 8));
  T("sigtimedwait sec -1", syscall(SYS_rt_sigtimedwait, &all, 0, &neg, 8));
  T("sigtimedwait setsize 4", syscall(SYS_rt_sigtimedwait, &all, 0, 0, 4));
  struct timespec zero = {0, 0};
  T("sigtimedwait zero timeout", syscall(SYS_rt_sigtimedwait, &all, 0, &zero, 8));
  T("kill sig -1", syscall(SYS_kill, getpid(), -1));
  T("kill sig 65", syscall(SYS_kill, getpid(), 65));
  T("kill INT_MIN pid", syscall(SYS_kill, -2147483647 - 1, 0));
  T("kill no such group", syscall(SYS_kill, -99999, 0));
  T("tgkill tid 0", syscall(SYS_tgkill, getpid(), 0, 0));
  T("tgkill tgid -5", syscall(SYS_tgkill, -5, getpid(), 0));
  T("tgkill wrong tgid", syscall(SYS_tgkill, getpid() + 1000, getpid(), 0));
  T("tkill tid -1", syscall(SYS_tkill, -1, 0));
  T("tkill self sig 0", syscall(SYS_tkill, getpid(), 0));
  T("sigqueueinfo bad info", syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, (void *)8));
  T("sigqueueinfo sig 99", syscall(SYS_rt_sigqueueinfo, getpid(), 99, buf));
  T("setitimer which 7", syscall(SYS_setitimer, 7, 0, 0));
  struct itimerval it = {{0, 0}, {0, 1000000}};
  T("setitimer usec 1000000", syscall(SYS_setitimer, ITIMER_REAL, &it, 0));
  T("setitimer NULL value", syscall(SYS_setitimer, ITIMER_REAL, 0, buf));
  T("getitimer which -1", syscall(SYS_getitimer, -1, buf));
  T("alarm 0 when none", syscall(SYS_alarm, 0));
  T("alarm huge", syscall(SYS_alarm, 4000000000u));
  T("alarm cancel huge", syscall(SYS_alarm, 0));
  stack_t ss = {.ss_sp = buf, .ss_size = 1 << 20, .ss_flags = 4};
  T("sigaltstack flags 4", syscall(SYS_sigaltstack, &ss, 0));
  ss.ss_flags = SS_ONSTACK;
  T("sigaltstack SS_ONSTACK accepted", syscall(SYS_sigaltstack, &ss, 0));
  ss.ss_flags = SS_DISABLE | SS_ONSTACK;
  T("sigaltstack DISABLE|ONSTACK", syscall(SYS_sigaltstack, &ss, 0));
  T("pause with a pending ignored sig", (signal(SIGCHLD, SIG_IGN), raise(SIGCHLD)));
  printf("alive\n");
  return 0;
}
"""


def test_signal_call_edge_cases(tmp_path: Path) -> None:
    same(tmp_path, EDGES, "signal-edges")


@pytest.mark.parametrize("name", ["FAULTS", "MPROTECT_RETRY", "STACK_OVERFLOW", "HANDLERS",
                                  "QUEUE"])
def test_soft_mmu_engine_agrees(tmp_path: Path, name: str) -> None:
    """The soft-MMU engine (vmsim's walker fills Unicorn's TLB) delivers the same signals."""
    src = globals()[name]
    if name == "FAULTS":  # every case in one run
        src = src.replace("int main(int argc, char **argv) {", "int one(int c, int argc) {") \
            .replace("if (argc > 2) sigaction", "if (argc > 0) sigaction") \
            .replace("int c = atoi(argv[1]);", "") + \
            "int main(void) { for (int c = 0; c < 10; c++) one(c, 1); return 0; }\n"
    if name == "QUEUE":
        src = "#include <sys/syscall.h>\n" + src
    same(tmp_path, src, f"soft-{name.lower()}", engine="soft")


TRAPS = r"""
int main(int argc, char **argv) {
  volatile int z = 0;
  int c = atoi(argv[1]);
  if (c == 0) printf("%d\n", 5 / z);
  if (c == 1) __asm__ volatile("ud2");
  if (c == 2) __asm__ volatile("int3");
  if (c == 3) __asm__ volatile("hlt");
  if (c == 4) __asm__ volatile("mov $0x8000000000000000, %%rax; mov (%%rax), %%rax" ::: "rax");
  return 0;
}
"""
TRAP_LINE = re.compile(r"traps: \S+\[(\d+)\] (.*) ip:([0-9a-f]+) sp:[0-9a-f]+ error:([0-9a-f]+)"
                       r"(?: in \S+(\[[0-9a-f]+,[0-9a-f]+\+[0-9a-f]+\]))?")


@pytest.mark.parametrize(("case", "status", "what"), [
    (0, 136, "trap divide error"), (1, 132, "trap invalid opcode"), (2, 133, "trap int3"),
    (3, 139, "general protection fault"), (4, 139, "general protection fault")])
def test_trap_signals_and_log_line(tmp_path: Path, case: int, status: int, what: str) -> None:
    out = same(tmp_path, TRAPS, "traps", args=(str(case),))
    assert out.vm.exit_code == status
    lines = [m for line in out.vm.kernel_log if (m := TRAP_LINE.search(line))]
    assert len(lines) == 1 and len(out.vm.kernel_log) == 1, out.vm.kernel_log
    assert lines[0].group(2) == what
    before = subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout
    proc = subprocess.Popen([str(out.binary), str(case)], stdout=subprocess.DEVNULL)
    proc.wait(timeout=30)
    log = subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout
    if not before or not log.startswith(before):
        return  # dmesg unreadable here
    host = [m for m in TRAP_LINE.finditer(log[len(before):]) if int(m.group(1)) == proc.pid]
    if host:  # (absent when rate-limited)
        assert host[-1].group(2, 3, 4, 5) == lines[0].group(2, 3, 4, 5)
