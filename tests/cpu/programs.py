"""C programs for the CPU-engine tests, and running one on a given engine.

Each program is built static with gcc (cached by `tests.progs`), installed
as /prog in a fresh sandbox root, and run on a fresh machine, so two runs
on different engines start from identical states.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.progs import build, install, run_native, shell_status
from vmsim import Machine
from vmsim.machine import RunResult

PRELUDE = """
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
"""

HELLO = r"""
int main(void) { printf("hello from %s\n", "a static program"); return 0; }
"""

#: fork + COW: the child's writes are invisible to the parent, a shared mapping's are not.
FORK_COW = r"""
int main(void) {
  char *anon = mmap(0, 4 * 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  char *shared = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0);
  for (int i = 0; i < 4; i++) anon[i * 4096] = 'a' + i;
  strcpy(shared, "parent");
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    anon[0] = 'X'; anon[4096]++; strcpy(shared, "child");
    printf("child sees %c %c %c\n", anon[0], anon[4096], anon[2 * 4096]);
    fflush(stdout);
    _exit(7);
  }
  int st; waitpid(pid, &st, 0);
  printf("parent sees %c %c %c %s, child exit %d\n", anon[0], anon[4096], anon[2 * 4096],
         shared, WEXITSTATUS(st));
  return 0;
}
"""

#: A store to an unmapped address with no handler: killed by SIGSEGV (status 139).
SEGFAULT = r"""
int main(void) {
  printf("before\n"); fflush(stdout);
  *(volatile int *)0x10 = 1;
  printf("after\n");
  return 0;
}
"""

#: A SIGSEGV handler that reports the fault (si_code, exact si_addr) and fixes it with
#: mprotect; the faulting store is then retried and completes.
HANDLER = r"""
static char *page;
static void h(int sig, siginfo_t *si, void *uc) {
  printf("SIGSEGV code %d at page+%ld\n", si->si_code, (long)((char *)si->si_addr - page));
  mprotect(page, 4096, PROT_READ|PROT_WRITE);
}
int main(void) {
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, 0);
  page = mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  printf("read %d\n", page[123]);
  page[123] = 5;
  printf("value %d\n", page[123]);
  return 0;
}
"""

#: Stale translations: each page is written first (so a TLB holds a writable entry for it),
#: then downgraded; every later access must see the downgrade.
STALE = r"""
static char *p;
static sigjmp_buf jb;
static void h(int sig, siginfo_t *si, void *uc) {
  printf("  SIGSEGV code %d at p+%ld\n", si->si_code, (long)((char *)si->si_addr - p));
  siglongjmp(jb, 1);
}
int main(void) {
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, 0);
  p = mmap(0, 3 * 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  for (int round = 0; round < 2; round++) {
    p[0] = 1; p[4096] = 2; p[2 * 4096] = 3;
    printf("round %d\n", round);
    mprotect(p, 4096, PROT_READ);
    if (!sigsetjmp(jb, 1)) { p[8] = 9; printf("  write after mprotect(PROT_READ): no fault\n"); }
    printf("  read after mprotect(PROT_READ): %d\n", p[0]);
    mprotect(p + 4096, 4096, PROT_NONE);
    if (!sigsetjmp(jb, 1)) { printf("  read after PROT_NONE: %d\n", p[4096 + 16]); }
    munmap(p + 2 * 4096, 4096);
    if (!sigsetjmp(jb, 1)) { printf("  read after munmap: %d\n", p[2 * 4096 + 32]); }
    mprotect(p, 2 * 4096, PROT_READ|PROT_WRITE);
    mmap(p + 2 * 4096, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
    printf("  remapped page reads %d\n", p[2 * 4096]);
  }
  return 0;
}
"""

#: mprotect(PROT_READ) of a page just written, then a write with no handler: SIGSEGV kills.
STALE_KILL = r"""
int main(void) {
  char *p = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  p[0] = 1;
  printf("written %d\n", p[0]); fflush(stdout);
  mprotect(p, 4096, PROT_READ);
  p[1] = 2;
  printf("not reached\n");
  return 0;
}
"""

#: Odd faults: a store split across a page boundary into a read-only page, a push onto a
#: read-only "stack", a non-canonical load (#GP, not #PF) and a load from the kernel half.
ODD = r"""
static char *p;
static sigjmp_buf jb;
static void h(int sig, siginfo_t *si, void *uc) {
  char *a = si->si_addr;
  if (a >= p && a < p + 2 * 4096)
    printf("  signal %d code %d at p+%ld\n", sig, si->si_code, (long)(a - p));
  else
    printf("  signal %d code %d at %p\n", sig, si->si_code, a);
  siglongjmp(jb, 1);
}
int main(int argc, char **argv) {
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  static char altstack[65536];
  stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
  sigaltstack(&ss, 0);
  sigaction(SIGSEGV, &sa, 0);
  p = mmap(0, 2 * 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  p[0] = 1;
  mprotect(p + 4096, 4096, PROT_READ);
  printf("split store\n");
  if (!sigsetjmp(jb, 1)) { *(volatile uint64_t *)(p + 4096 - 4) = ~0ul; printf("  no fault\n"); }
  printf("push onto a read-only stack\n");
  if (!sigsetjmp(jb, 1)) {
    __asm__ volatile("mov %%rsp, %%rbx; mov %0, %%rsp; push %%rax; mov %%rbx, %%rsp"
                     :: "r"(p + 2 * 4096 - 8) : "rbx", "memory");
    printf("  no fault\n");
  }
  printf("non-canonical load\n");
  if (!sigsetjmp(jb, 1)) { (void)*(volatile char *)0x8000000000000000ul; printf("  no fault\n"); }
  printf("load from the page of the engines' stop address\n");
  if (!sigsetjmp(jb, 1)) { (void)*(volatile char *)0xffff7ffffffff010ul; printf("  no fault\n"); }
  printf("jump to the engines' stop address\n");
  if (!sigsetjmp(jb, 1)) { ((void (*)(void))0xffff7ffffffffffful)(); printf("  no fault\n"); }
  printf("kernel-half load\n");
  if (!sigsetjmp(jb, 1)) { (void)*(volatile char *)0xffff888000001000ul; printf("  no fault\n"); }
  return 0;
}
"""

#: Code written at run time: an RWX page rewritten between calls, and a W^X page flipped with
#: mprotect (translated code must never outlive the bytes it was translated from).
JIT = r"""
typedef long (*fn)(void);
int main(void) {
  unsigned char *code = mmap(0, 4096, PROT_READ|PROT_WRITE|PROT_EXEC,
                             MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  for (int v = 1; v <= 3; v++) {
    unsigned char insns[] = {0x48, 0xc7, 0xc0, v, 0, 0, 0, 0xc3};  /* mov rax, v; ret */
    memcpy(code, insns, sizeof insns);
    printf("rwx returns %ld\n", ((fn)code)());
  }
  unsigned char *wx = mmap(0, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  memcpy(wx, (unsigned char[]){0x48, 0xc7, 0xc0, 7, 0, 0, 0, 0xc3}, 8);
  mprotect(wx, 4096, PROT_READ|PROT_EXEC);
  printf("rx returns %ld\n", ((fn)wx)());
  mprotect(wx, 4096, PROT_READ|PROT_WRITE);
  wx[3] = 9;
  mprotect(wx, 4096, PROT_READ|PROT_EXEC);
  printf("rx returns %ld\n", ((fn)wx)());
  return 0;
}
"""

#: Two processes running different code of the same program at the same time (so the
#: scheduler slices them by instruction counts), then one alone (no count): each function
#: sits on its own pages, which the other process never executes.
CONCURRENT = r"""
#define WORK(name, op) \
  __attribute__((noinline, aligned(4096))) static long name(long n) { \
    long x = 1; for (long i = 0; i < n; i++) x = (x op i) ^ (x >> 3); return x; } \
  static char pad_##name[4096] __attribute__((used, section(".text"))) = {0};
WORK(work_a, +)
WORK(work_b, *)
WORK(work_c, -)
int main(void) {
  int fd[2]; pipe(fd);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) { long r = work_a(2000000); write(fd[1], &r, sizeof r); _exit(0); }
  long r = work_b(2000000), c = 0;
  read(fd[0], &c, sizeof c);
  waitpid(pid, 0, 0);
  printf("%ld %ld %ld\n", r, c, work_c(1000));
  return 0;
}
"""

#: What the engines' page walks leave in the entries, as the program's own /proc shows it:
#: accessed and dirty bits (smaps Referenced, Private_Dirty) and present pages (pagemap).
SMAPS = r"""
#include <fcntl.h>
int main(void) {
  char *p = mmap(0, 8 * 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  volatile char s = 0;
  s += p[0]; s += p[4096];           /* reads: the zero page */
  p[2 * 4096] = 1; p[3 * 4096] = 1;  /* writes: new, dirty pages */
  s += p[2 * 4096];
  FILE *f = fopen("/proc/self/smaps", "r");
  char line[512], want[64];
  int in = 0;
  snprintf(want, sizeof want, "%lx-", (unsigned long)p);
  while (fgets(line, sizeof line, f)) {
    if (strchr(line, ':') == NULL || strchr(line, ' ') < strchr(line, ':'))
      in = strncmp(line, want, strlen(want)) == 0;  /* a mapping's header line */
    else if (in && (!strncmp(line, "Rss", 3) || !strncmp(line, "Referenced", 10)
                    || !strncmp(line, "Private_Dirty", 13) || !strncmp(line, "Anonymous", 9)))
      fputs(line, stdout);
  }
  int fd = open("/proc/self/pagemap", O_RDONLY);
  for (int i = 0; i < 8; i++) {
    uint64_t e = 0;
    pread(fd, &e, 8, ((uintptr_t)p / 4096 + i) * 8);
    printf("page %d present %d\n", i, (int)(e >> 63));
  }
  return 0;
}
"""

PROGRAMS = {"hello": HELLO, "fork_cow": FORK_COW, "segfault": SEGFAULT, "handler": HANDLER,
            "stale": STALE, "stale_kill": STALE_KILL, "odd": ODD, "jit": JIT,
            "concurrent": CONCURRENT, "smaps": SMAPS}


@dataclass
class EngineRun:
    """One program's run on one engine: the result, the machine's counters and the machine."""

    result: RunResult
    stats: dict[str, int]
    machine: Machine

    @property
    def faults(self) -> dict[str, int]:
        return {k: v for k, v in self.stats.items() if k.startswith("fault.")}


def binary(name: str, source: str | None = None) -> Path:
    return build(PRELUDE + (source if source is not None else PROGRAMS[name]), f"cpu-{name}")


def run_on(engine: str, prog: Path, root: Path, args: tuple[str, ...] = (),
           memory: str = "64M", record: bool = False) -> EngineRun:
    """Run `prog` as /prog on a fresh machine with `engine` (root: a scratch directory)."""
    root.mkdir(parents=True, exist_ok=True)
    install(prog, root, "/prog")
    m = Machine(memory=memory, seed=1, root=root, engine=engine)
    if record:
        m.events.record()
    result = m.run("/prog", ["prog", *args], timeout=60)
    return EngineRun(result, m.stats, m)


def native(prog: Path, args: tuple[str, ...] = ()) -> tuple[bytes, int]:
    """stdout and the exit status as a shell reports it, on the host kernel."""
    out = run_native(prog, list(args))
    return out.stdout, shell_status(out.returncode)
