/*
 * host_bench.c - the host kernel's side of vmsim's benchmarks.
 *
 * Compiled at run time by benchmarks/_common.py (gcc -O2 into a temporary
 * directory; no binary is kept in the repository) and run once per
 * repetition, so host and vmsim figures come from the same run of a
 * benchmark script.  Every subcommand prints one line of "key=value"
 * fields on stdout; fault counts come from getrusage(RUSAGE_SELF) deltas and
 * times from clock_gettime(CLOCK_PROCESS_CPUTIME_ID): the CPU time (user +
 * system) of the measuring process, so that waiting for a shared core is not
 * counted.  With HOST_BENCH_CLOCK=wall in the environment, times come from
 * CLOCK_MONOTONIC instead.
 *
 *   anon N        mmap N private anonymous pages (MADV_NOHUGEPAGE), write
 *                 one byte per page, munmap; then the same again ("warm":
 *                 the pages just freed are reused, so on a VM no fault is a
 *                 first touch of guest memory); reports the second pass and,
 *                 as cold_*, the first:
 *                   anon pages=N ns=T ns_per_fault=T/N minflt=F majflt=M
 *                        cold_ns_per_fault=.. cold_minflt=..
 *                 minflt should equal N: one fault per page.
 *   file PATH N   read the first N pages of PATH once with pread() (so the
 *                 page cache is warm), mmap them MAP_PRIVATE PROT_READ
 *                 (MADV_NOHUGEPAGE) and read one byte per page:
 *                   file pages=N ns=T ns_per_page=.. minflt=F majflt=M
 *                        faults=F+M ns_per_fault=.. pages_per_fault=..
 *                 Fault-around (vm fault_around_bytes, 64 KiB by default)
 *                 maps 16 cached pages per fault, so faults is about N/16.
 *   fork MIB      populate MIB MiB of private anonymous memory
 *                 (MADV_NOHUGEPAGE, one written byte per page), then time
 *                 fork() on the parent's side until it returns; the child
 *                 calls _exit(0) at once:
 *                   fork mib=MIB pages=P ns=T ms=.. ms_per_mib=..
 *   cow MIB       as fork (after backing and freeing 2*MIB MiB once, so no
 *                 page is a first touch of guest memory), but the child
 *                 writes one byte per page (each a copy-on-write fault) and
 *                 reports its time through a pipe:
 *                   cow mib=MIB pages=P ns=T ns_per_page=.. minflt=F
 *   vma N OPS     make N one-page VMAs separated by one-page holes (an
 *                 mmap of 2N pages with every other page unmapped), fill
 *                 the gaps of 2+ pages above them with F 2-page areas,
 *                 then time OPS pairs of mmap(NULL, 2 pages)/munmap:
 *                   vma n=N ops=OPS ns=T ns_per_pair=.. map_count=.. below=B
 *                        fillers=F
 *                 B counts the new areas placed below the N VMAs (the gap
 *                 search went past all N holes); it should equal OPS.
 *                 Fails with status 3 if vm.max_map_count is too low.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_NOHUGEPAGE
#define MADV_NOHUGEPAGE 15
#endif

static long page_size;
static clockid_t bench_clock = CLOCK_PROCESS_CPUTIME_ID;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void faults(long *minflt, long *majflt)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        perror("getrusage");
        exit(1);
    }
    *minflt = ru.ru_minflt;
    *majflt = ru.ru_majflt;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static long parse_long(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 0);
    if (errno || *end || v <= 0) {
        fprintf(stderr, "host_bench: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

/* A private anonymous area of `pages` pages with transparent huge pages off. */
static volatile char *anon_area(long pages)
{
    size_t len = (size_t)pages * page_size;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    if (madvise(p, len, MADV_NOHUGEPAGE) != 0)
        die("madvise(MADV_NOHUGEPAGE)");
    return p;
}

/* One write per page of a fresh anonymous area; returns ns, sets the fault deltas. */
static long long touch_fresh(long pages, long *minflt, long *majflt)
{
    volatile char *p = anon_area(pages);
    long min0, maj0, min1, maj1;
    now_ns(); /* a first vDSO call may fault on the vvar page: not in the window */
    faults(&min0, &maj0);
    long long t0 = now_ns();
    for (long i = 0; i < pages; i++)
        p[i * page_size] = 1;
    long long t1 = now_ns();
    faults(&min1, &maj1);
    *minflt = min1 - min0;
    *majflt = maj1 - maj0;
    if (munmap((void *)p, (size_t)pages * page_size) != 0)
        die("munmap");
    return t1 - t0;
}

static int cmd_anon(long pages)
{
    long cmin, cmaj, min, maj;
    long long cold = touch_fresh(pages, &cmin, &cmaj);
    long long ns = touch_fresh(pages, &min, &maj);
    printf("anon pages=%ld ns=%lld ns_per_fault=%.1f minflt=%ld majflt=%ld "
           "cold_ns_per_fault=%.1f cold_minflt=%ld\n", pages, ns, (double)ns / pages, min, maj,
           (double)cold / pages, cmin);
    return 0;
}

static int cmd_file(const char *path, long pages)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("open");
    size_t len = (size_t)pages * page_size;
    char *buf = malloc(page_size);
    if (!buf)
        die("malloc");
    for (long i = 0; i < pages; i++) /* warm the page cache */
        if (pread(fd, buf, page_size, (off_t)i * page_size) != page_size) {
            fprintf(stderr, "host_bench: %s is shorter than %ld pages\n", path, pages);
            return 2;
        }
    free(buf);
    volatile char *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        die("mmap");
    /* No PMD mapping of a 2 MiB page-cache folio: measure 4 KiB faults with fault-around. */
    if (madvise((void *)p, len, MADV_NOHUGEPAGE) != 0)
        die("madvise(MADV_NOHUGEPAGE)");
    long min0, maj0, min1, maj1;
    unsigned sum = 0;
    now_ns();
    faults(&min0, &maj0);
    long long t0 = now_ns();
    for (long i = 0; i < pages; i++)
        sum += (unsigned char)p[i * page_size];
    long long t1 = now_ns();
    faults(&min1, &maj1);
    long long ns = t1 - t0;
    long nf = (min1 - min0) + (maj1 - maj0);
    printf("file pages=%ld ns=%lld ns_per_page=%.1f minflt=%ld majflt=%ld faults=%ld "
           "ns_per_fault=%.1f pages_per_fault=%.2f sum=%u\n",
           pages, ns, (double)ns / pages, min1 - min0, maj1 - maj0, nf,
           nf ? (double)ns / nf : 0.0, nf ? (double)pages / nf : 0.0, sum);
    return 0;
}

static volatile char *populated(long mib, long *pages_out)
{
    long pages = (mib << 20) / page_size;
    volatile char *p = anon_area(pages);
    for (long i = 0; i < pages; i++)
        p[i * page_size] = 1;
    *pages_out = pages;
    return p;
}

static int cmd_fork(long mib)
{
    long pages;
    populated(mib, &pages);
    fflush(stdout);
    long long t0 = now_ns();
    pid_t pid = fork();
    long long t1 = now_ns();
    if (pid < 0)
        die("fork");
    if (pid == 0)
        _exit(0);
    int status;
    if (waitpid(pid, &status, 0) < 0)
        die("waitpid");
    long long ns = t1 - t0;
    printf("fork mib=%ld pages=%ld ns=%lld ms=%.4f ms_per_mib=%.5f\n", mib, pages, ns,
           ns / 1e6, ns / 1e6 / mib);
    return 0;
}

static int cmd_cow(long mib)
{
    long pages;
    /* Back twice the size with memory first and free it again, so that neither the
     * parent's pages nor the child's copies are first touches of guest memory (on a VM
     * those cost a hypervisor fault each, which is not the kernel's COW path). */
    long warm = 2 * (mib << 20) / page_size;
    volatile char *w = anon_area(warm);
    for (long i = 0; i < warm; i++)
        w[i * page_size] = 1;
    if (munmap((void *)w, (size_t)warm * page_size) != 0)
        die("munmap");
    volatile char *p = populated(mib, &pages);
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        long min0, maj0, min1, maj1;
        now_ns();
        faults(&min0, &maj0);
        long long t0 = now_ns();
        for (long i = 0; i < pages; i++)
            p[i * page_size] = 2;
        long long t1 = now_ns();
        faults(&min1, &maj1);
        long long res[2] = {t1 - t0, min1 - min0};
        if (write(fds[1], res, sizeof res) != (ssize_t)sizeof res)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    long long res[2];
    if (read(fds[0], res, sizeof res) != (ssize_t)sizeof res) {
        fprintf(stderr, "host_bench: child sent no result\n");
        return 1;
    }
    int status;
    if (waitpid(pid, &status, 0) < 0)
        die("waitpid");
    printf("cow mib=%ld pages=%ld ns=%lld ns_per_page=%.1f minflt=%lld\n", mib, pages, res[0],
           (double)res[0] / pages, res[1]);
    return 0;
}

static long map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int cmd_vma(long n, long ops)
{
    size_t len = (size_t)2 * n * page_size;
    char *base = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        die("mmap");
    for (long i = 1; i < 2 * n; i += 2)
        if (munmap(base + i * page_size, page_size) != 0) {
            if (errno == ENOMEM) {
                fprintf(stderr, "host_bench: vm.max_map_count too low for %ld VMAs\n", n);
                return 3;
            }
            die("munmap");
        }
    /* Fill every gap of 2+ pages between the block and mmap_base (around the shared
     * libraries), so that the timed mmap(NULL) must search past all N holes, as in vmsim
     * (whose scripted process has no other VMAs). */
    size_t plen = 2 * page_size;
    long fillers = 0;
    for (;;) {
        char *q = mmap(NULL, plen, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED)
            die("mmap (filler)");
        if (q < base) {
            munmap(q, plen);
            break;
        }
        if (++fillers > 100000) {
            fprintf(stderr, "host_bench: could not fill the gaps above the VMAs\n");
            return 1;
        }
    }
    long vmas = map_count();
    long below = 0;
    long long t0 = now_ns();
    for (long i = 0; i < ops; i++) {
        char *q = mmap(NULL, plen, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED)
            die("mmap (timed)");
        below += q < base;
        if (munmap(q, plen) != 0)
            die("munmap (timed)");
    }
    long long ns = now_ns() - t0;
    printf("vma n=%ld ops=%ld ns=%lld ns_per_pair=%.1f map_count=%ld below=%ld fillers=%ld\n", n,
           ops, ns, (double)ns / ops, vmas, below, fillers);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: host_bench anon N | file PATH N | fork MIB | cow MIB | vma N OPS\n");
    return 2;
}

int main(int argc, char **argv)
{
    page_size = sysconf(_SC_PAGESIZE);
    const char *clock_name = getenv("HOST_BENCH_CLOCK");
    if (clock_name && !strcmp(clock_name, "wall"))
        bench_clock = CLOCK_MONOTONIC;
    if (argc < 2)
        return usage();
    if (!strcmp(argv[1], "anon") && argc == 3)
        return cmd_anon(parse_long(argv[2], "page count"));
    if (!strcmp(argv[1], "file") && argc == 4)
        return cmd_file(argv[2], parse_long(argv[3], "page count"));
    if (!strcmp(argv[1], "fork") && argc == 3)
        return cmd_fork(parse_long(argv[2], "MiB"));
    if (!strcmp(argv[1], "cow") && argc == 3)
        return cmd_cow(parse_long(argv[2], "MiB"));
    if (!strcmp(argv[1], "vma") && argc == 4)
        return cmd_vma(parse_long(argv[2], "VMA count"), parse_long(argv[3], "op count"));
    return usage();
}
