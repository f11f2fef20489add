/* stack: recursion that grows the stack by 4 MiB.  Each call touches a 64 KiB
 * frame below the current stack area; the fault lands under the [stack] VMA,
 * which the kernel grows down to cover it (expand_stack), up to RLIMIT_STACK
 * (8 MiB by default). */
#include <stdio.h>
#include <string.h>

#define FRAME (64 * 1024)
#define DEPTH 64  /* 64 x 64 KiB = 4 MiB */

static unsigned long dive(int depth)
{
    volatile unsigned char frame[FRAME];
    memset((void *)frame, depth & 0xff, sizeof frame);
    unsigned long sum = frame[0] + frame[FRAME - 1];
    if (depth < DEPTH)
        sum += dive(depth + 1);
    return sum;
}

static unsigned long stack_kb(void)
{
    char line[256];
    unsigned long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmStk: %lu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

int main(void)
{
    unsigned long before = stack_kb();
    unsigned long sum = dive(1);
    unsigned long after = stack_kb();
    printf("recursed %d frames of %d KiB, checksum %lu\n", DEPTH, FRAME / 1024, sum);
    printf("stack grew by at least 4 MiB: %s\n", after >= before + 4096 ? "yes" : "no");
    return 0;
}
