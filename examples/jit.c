/* jit: code written at run time.  A page is mapped writable, filled with
 * machine code, then made executable with mprotect (W^X) and called; a second
 * page is mapped read-write-execute and rewritten between calls (self-modifying
 * code: the CPU must not run the stale instructions); executing a page without
 * PROT_EXEC is a SIGSEGV. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

typedef int (*fn_t)(void);
static sigjmp_buf env;

static void on_segv(int sig, siginfo_t *si, void *ctx)
{
    (void)sig; (void)ctx;
    siglongjmp(env, si->si_code);
}

static void emit_return(unsigned char *p, int value)
{
    p[0] = 0xb8;                     /* mov eax, imm32 */
    memcpy(p + 1, &value, 4);
    p[5] = 0xc3;                     /* ret */
}

int main(void)
{
    unsigned char *wx = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    emit_return(wx, 42);
    mprotect(wx, 4096, PROT_READ | PROT_EXEC);
    printf("W^X page returns %d\n", ((fn_t)wx)());

    unsigned char *rwx = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int v = 1; v <= 3; v++) {
        emit_return(rwx, v * 100);
        printf("RWX page, version %d, returns %d\n", v, ((fn_t)rwx)());
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    unsigned char *nx = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    emit_return(nx, 7);
    int code = sigsetjmp(env, 1);
    if (code == 0)
        printf("no-exec page returned %d (wrong)\n", ((fn_t)nx)());
    else
        printf("no-exec page: SIGSEGV, si_code %s\n", code == SEGV_ACCERR ? "SEGV_ACCERR" : "other");
    return 0;
}
