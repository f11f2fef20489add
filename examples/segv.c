/* segv: page faults the kernel cannot resolve become SIGSEGV.  A handler
 * installed with SA_SIGINFO prints si_code (SEGV_MAPERR: no mapping,
 * SEGV_ACCERR: a mapping that forbids the access) and checks si_addr, then
 * recovers with siglongjmp.  The last case is a handler that mprotect()s the
 * page and returns: the faulting store is retried and succeeds. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile int got_code;
static void *volatile got_addr;
static volatile int faults;
static volatile int fix_by_mprotect;

static void handler(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)ctx;
    faults++;
    got_code = si->si_code;
    got_addr = si->si_addr;
    if (fix_by_mprotect) {
        uintptr_t page = (uintptr_t)si->si_addr & ~(uintptr_t)4095;
        mprotect((void *)page, 4096, PROT_READ | PROT_WRITE);
        return; /* the store is retried */
    }
    siglongjmp(env, 1);
}

static const char *code_name(int code)
{
    return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR" : "other";
}

static void try(const char *what, void *addr, int write)
{
    got_code = 0;
    got_addr = NULL;
    if (sigsetjmp(env, 1) == 0) {
        if (write)
            *(volatile char *)addr = 1;
        else
            (void)*(volatile char *)addr;
        printf("%-26s no fault\n", what);
    } else {
        printf("%-26s SIGSEGV %s, si_addr %s\n", what, code_name(got_code),
               got_addr == addr ? "matches" : "differs");
    }
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);

    char *p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    munmap(p + 4096, 4096); /* a hole between two pages */
    mprotect(p + 2 * 4096, 4096, PROT_READ);

    try("read NULL:", NULL, 0);
    try("write to a hole:", p + 4096 + 100, 1);
    try("read a read-only page:", p + 2 * 4096 + 8, 0);
    try("write a read-only page:", p + 2 * 4096 + 8, 1);
    mprotect(p, 4096, PROT_NONE);
    try("read a PROT_NONE page:", p + 5, 0);
    try("write a kernel address:", (void *)0xffffffff81000000UL, 1);

    fix_by_mprotect = 1;
    volatile char *q = p + 2 * 4096;
    q[100] = 'x'; /* read-only: the handler makes it writable, the store retries */
    printf("%-26s %d faults so far, q[100]='%c', handler saw %s\n", "mprotect and retry:",
           faults, q[100], code_name(got_code));
    return 0;
}
