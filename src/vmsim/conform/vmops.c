/*
 * vmops.c - host-kernel reference runner of vmsim's conformance harness.
 *
 * Reads a line-based script of memory operations on stdin, executes each
 * operation on the real host kernel and prints one result line per operation
 * on stdout.  Shipped as package data of vmsim.conform and compiled with gcc
 * at run time (vmsim/conform/host.py); vmsim/conform/vmsim_side.py executes
 * the same language on vmsim and prints the same lines.
 *
 * Addresses
 *   At start the program reserves 66 MiB of PROT_NONE address space, rounds
 *   the start up to a 2 MiB boundary (this is `base`), and unmaps the whole
 *   reservation again, so [base, base + 64 MiB) ("the region") is empty and
 *   very likely free.  It also records the program break, which is still
 *   the initial one since the runner never calls malloc (this is `heap`;
 *   [heap, heap + 64 MiB) is "the heap window", checked to be empty).  It
 *   prints "base 0x<hex> heap 0x<hex>" as its first line.
 *   Every ADDR in the script is relative to base, with four spellings:
 *     N      base + N  (N is a decimal or 0x-hex integer, may be negative)
 *     hN     heap + N  (N as above; except for brk, heap + N must lie in the
 *            heap window, else the line is a bad-op, so that a script cannot
 *            reach the runner's own data below the heap)
 *     -      absolute 0 (NULL)
 *     =N     the absolute address N
 *   Every other number is a decimal or 0x-hex integer, optionally negative
 *   (two's complement, so -1 is all ones).  A leading 0 does NOT mean octal.
 *   An address printed by the runner is "+0x<hex>" inside the region,
 *   "h+0x<hex>" inside the heap window, and otherwise "=0x<hex>" (fault
 *   addresses) or "out" (system-call results).
 *
 * Operations and their output lines
 *   mmap ADDR LEN PROT FLAGS FD OFF       ret R
 *   mremap OLD OLDLEN NEWLEN FLAGS NEW    ret R
 *   brk ADDR                              ret R  (brk(2) never fails: R is
 *                                         the new or the unchanged break)
 *       R is "+0x<hex>" / "h+0x<hex>" (returned address - base / - heap)
 *       when the address lies in the region / heap window, "out" when it
 *       lies elsewhere, "-ERRNO" (e.g. "-22") on failure.
 *   munmap ADDR LEN | mprotect ADDR LEN PROT | madvise ADDR LEN ADVICE |
 *   mlock ADDR LEN | mlock2 ADDR LEN FLAGS | munlock ADDR LEN |
 *   mlockall FLAGS | munlockall | msync ADDR LEN FLAGS
 *                                         ret 0 | ret -ERRNO
 *   mincore ADDR LEN                      ret 0 0110... | ret -ERRNO
 *       one character per page: the low bit of each vector byte.  When the
 *       vector is empty (LEN 0) the line is just "ret 0".
 *   touch ADDR r|w|x                      ok | sig SIGNAME CODE A
 *       r reads one byte, w writes 0x5a, x executes one instruction at ADDR
 *       (see "Execute probes" below).  A SIGSEGV/SIGBUS of the access is
 *       caught and printed, e.g. "sig SIGSEGV MAPERR +0x1000" / "sig SIGBUS
 *       ADRERR +0x3000".  CODE is MAPERR/ACCERR/BNDERR/PKUERR for SIGSEGV,
 *       ADRALN/ADRERR/OBJERR/MCEERR_AR/MCEERR_AO for SIGBUS, otherwise the
 *       decimal si_code.  A is si_addr, spelt as above.
 *   write_at ADDR HEXBYTES                ok | sig ...   (bytes stored in
 *                                         ascending order; a fault stops it)
 *   read_at ADDR N                        data HEX | sig ...
 *   open PATH FLAGS                       ret FD | ret -ERRNO  (mode 0644;
 *                                         a relative PATH is relative to the
 *                                         working directory)
 *   close FD | ftruncate FD LEN           ret 0 | ret -ERRNO
 *   pwrite FD OFF HEXBYTES                ret NWRITTEN | ret -ERRNO
 *   pread FD OFF N                        data HEX | ret -ERRNO
 *       "data" is followed by " HEX" only when at least one byte was read.
 *   maps                                  the /proc/self/maps lines of every
 *                                         VMA intersecting the region or the
 *                                         heap window, then "end"
 *   smaps                                 every line of /proc/self/smaps of
 *                                         the same VMAs, then "end"
 *       Rewrite rule: only the leading "START-END" field of a VMA header
 *       line is replaced, by "%08lx-%08lx" of (START - base, END - base)
 *       (a VMA starting below base gets "-%08lx" of base - START), or for a
 *       VMA in the heap window by "h%08lx-h%08lx" of (START - heap,
 *       END - heap).  All bytes from the first space after END onward are
 *       kept exactly, including the kernel's padding before the path, which
 *       the kernel computes from the width of the ABSOLUTE addresses; so a
 *       simulator must use bases with as many hex digits as the host's (12
 *       on x86-64 user space) for the padding to compare equal.
 *   pagemap ADDR NPAGES                   pagemap 0x.. 0x.. ...
 *       one entry per page: the /proc/self/pagemap entry shifted right by
 *       55 (the flag bits 55-63 only), as 0x-hex; "pagemap -ERRNO" if the
 *       file cannot be read.
 *   faults                                faults MINOR MAJOR
 *       deltas of getrusage(RUSAGE_SELF) ru_minflt/ru_majflt since the
 *       previous "faults" or "snap", or since the start of the script, or
 *       since the last fork: at a fork both the child (at its start) and the
 *       parent (once the child has exited) re-prefault the harness and take
 *       a new baseline, since fork write-protects the harness's own pages.
 *       All harness memory is pre-faulted (see prefault_*) so that, as far
 *       as possible, the deltas count only the script's own operations.
 *   snap                                  "snap", then what "smaps" prints
 *       (without its "end"), with after each VMA's block a line
 *       "pagemap V*N V*N ..." - the pagemap flag values (as above) of the
 *       VMA's pages inside the region or heap window, run-length encoded in
 *       address order - then the "faults" line, then "end".  It is the
 *       per-step observation of vmsim.conform.
 *   mark TEXT                             mark TEXT  (a step label)
 *   fork                                  (no line) the child runs the
 *       following lines up to the matching "endchild" (nesting allowed) and
 *       _exit(0)s there; every child output line is prefixed "child: ".  The
 *       parent waits for the child, then continues after the matching
 *       "endchild".  If the child does not exit with status 0 the parent
 *       prints "child-abnormal 0x<wait status>".
 *   endchild                              (no line in a child; "bad-op" if
 *                                         reached outside any child)
 *   exit                                  (no line) in a child: _exit(0)
 *                                         now; at the top: end the script
 *   setrlimit RESOURCE SOFT HARD          ret 0 | ret -ERRNO
 *   capdrop CAP                           ret 0 | ret -ERRNO  (removes CAP
 *                                         from the effective set)
 *   anything else, or a malformed line    bad-op
 *   empty lines and lines starting with '#' are skipped without output.
 *
 * Execute probes
 *   "touch ADDR x" jumps to ADDR with the trap flag set, rsp and every
 *   other general register zero: the CPU fetches and executes exactly one
 *   instruction there, then traps.  A SIGSEGV/SIGBUS whose si_addr is ADDR
 *   (or a #GP on the jump to a non-canonical ADDR) is the fetch failing and
 *   is printed; anything else (the single-step trap, a fault of the
 *   instruction's own data access, which can only touch low addresses with
 *   zero registers, SIGILL, SIGFPE) means the fetch succeeded: "ok".  A
 *   RIP-relative instruction could reach memory near ADDR, so scripts must
 *   only execute bytes that cannot encode one: vmsim.conform executes page
 *   starts whose first bytes come from a small safe alphabet.
 *
 * Output is written with write(2) from static, pre-faulted buffers, one
 * line per write, so nothing is buffered across fork().  Nothing calls
 * malloc, so the program break is still the kernel's initial one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/ucontext.h>
#include <sys/wait.h>
#include <unistd.h>

#define REGION_SIZE (64UL << 20)
#define HEAP_WINDOW (64UL << 20)
#define ALIGN_2M (2UL << 20)
#define PAGE_SIZE_4K 4096UL

#ifndef SYS_mlock2
#define SYS_mlock2 325
#endif

#define OUT_CAP (1UL << 20)      /* one output line */
#define IN_CAP (256UL << 10)     /* /proc read buffer */
#define DATA_CAP (256UL << 10)   /* read_at / pread / pwrite / write_at bytes */
#define VEC_CAP (1UL << 20)      /* mincore vector: covers 4 GiB of range */
#define PM_CAP 16384UL           /* pagemap entries per request */
#define MAX_ARGS 16
#define ALTSTACK_SIZE (256UL << 10)
#define STACK_PREFAULT (512UL << 10)

static unsigned long base;
static unsigned long heap;
static char outbuf[OUT_CAP];
static char inbuf[IN_CAP + 1];
static unsigned char databuf[DATA_CAP];
static unsigned char vecbuf[VEC_CAP];
static uint64_t pmbuf[PM_CAP];
static char altstack[ALTSTACK_SIZE];
static char prefix[256];
static size_t prefix_len;
static long prev_minflt, prev_majflt;

static sigjmp_buf probe_env;
static volatile sig_atomic_t in_probe;
static volatile int fault_signo, fault_code;
static void *volatile fault_addr;

/* Execute probes (see the header comment): the jump target, and how far the
 * single-stepping got: 1 = stepping through the runner's own jump, 2 = the
 * next instruction is the one at the target. */
unsigned long vmops_exec_target;
static volatile sig_atomic_t exec_state;

/* ------------------------------------------------------------------ output */

static void write_all_fd(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			_exit(3);
		}
		p += w;
		n -= (size_t)w;
	}
}

static void write_all(const char *p, size_t n)
{
	write_all_fd(1, p, n);
}

/* Start a line: the prefix ("child: " per fork level) is copied in first. */
static size_t line_start(void)
{
	memcpy(outbuf, prefix, prefix_len);
	return prefix_len;
}

static size_t line_add(size_t pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (pos >= OUT_CAP - 2)
		return pos;
	va_start(ap, fmt);
	n = vsnprintf(outbuf + pos, OUT_CAP - 2 - pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return pos;
	pos += (size_t)n;
	if (pos > OUT_CAP - 2)
		pos = OUT_CAP - 2;
	return pos;
}

static void line_end(size_t pos)
{
	outbuf[pos++] = '\n';
	write_all(outbuf, pos);
}

static void emit(const char *fmt, ...)
{
	va_list ap;
	size_t pos = line_start();
	int n;

	va_start(ap, fmt);
	n = vsnprintf(outbuf + pos, OUT_CAP - 2 - pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		pos += (size_t)n;
	if (pos > OUT_CAP - 2)
		pos = OUT_CAP - 2;
	line_end(pos);
}

static void emit_ret(long r)
{
	if (r == -1)
		emit("ret -%d", errno);
	else
		emit("ret %ld", r);
}

static int in_region(unsigned long a)
{
	return a >= base && a < base + REGION_SIZE;
}

static int in_heap(unsigned long a)
{
	return a >= heap && a < heap + HEAP_WINDOW;
}

static void emit_addr_ret(long r)
{
	if (r == -1 && errno > 0 && errno < 4096)
		emit("ret -%d", errno);
	else if (in_region((unsigned long)r))
		emit("ret +0x%lx", (unsigned long)r - base);
	else if (in_heap((unsigned long)r))
		emit("ret h+0x%lx", (unsigned long)r - heap);
	else
		emit("ret out");
}

static size_t add_addr(size_t pos, unsigned long a)
{
	if (in_region(a))
		return line_add(pos, "+0x%lx", a - base);
	if (in_heap(a))
		return line_add(pos, "h+0x%lx", a - heap);
	return line_add(pos, "=0x%lx", a);
}

static size_t add_hex(size_t pos, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n && pos < OUT_CAP - 3; i++) {
		outbuf[pos++] = digits[p[i] >> 4];
		outbuf[pos++] = digits[p[i] & 15];
	}
	return pos;
}

/* ----------------------------------------------------------------- parsing */

static int parse_num(const char *s, unsigned long *out)
{
	int neg = 0, any = 0;
	unsigned long v = 0;

	if (*s == '-') {
		neg = 1;
		s++;
	} else if (*s == '+') {
		s++;
	}
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		for (; *s; s++, any = 1) {
			int d;
			if (*s >= '0' && *s <= '9')
				d = *s - '0';
			else if (*s >= 'a' && *s <= 'f')
				d = *s - 'a' + 10;
			else if (*s >= 'A' && *s <= 'F')
				d = *s - 'A' + 10;
			else
				return -1;
			v = v * 16 + (unsigned long)d;
		}
	} else {
		for (; *s; s++, any = 1) {
			if (*s < '0' || *s > '9')
				return -1;
			v = v * 10 + (unsigned long)(*s - '0');
		}
	}
	if (!any)
		return -1;
	*out = neg ? (unsigned long)0 - v : v;
	return 0;
}

/* An ADDR token; a heap-relative one must lie in the heap window unless
 * any_heap is set (brk may ask for any break: the kernel checks it). */
/* A decimal number ending at a space or the end of the string. */
static int parse_num_prefix(const char *s, unsigned long *out)
{
	unsigned long v = 0;
	int any = 0;

	for (; *s >= '0' && *s <= '9'; s++, any = 1)
		v = v * 10 + (unsigned long)(*s - '0');
	if (!any || (*s && *s != ' ' && *s != '\n'))
		return -1;
	*out = v;
	return 0;
}

static int parse_addr_ex(const char *s, unsigned long *out, int any_heap)
{
	unsigned long v;

	if (strcmp(s, "-") == 0) {
		*out = 0;
		return 0;
	}
	if (s[0] == '=')
		return parse_num(s + 1, out);
	if (s[0] == 'h') {
		if (parse_num(s + 1, &v))
			return -1;
		if (!any_heap && v >= HEAP_WINDOW)
			return -1;
		*out = heap + v;
		return 0;
	}
	if (parse_num(s, &v))
		return -1;
	*out = base + v;
	return 0;
}

static int parse_addr(const char *s, unsigned long *out)
{
	return parse_addr_ex(s, out, 0);
}

static int parse_hexbytes(const char *s, size_t *n)
{
	size_t len = strlen(s), i;

	if (len % 2 || len / 2 > DATA_CAP)
		return -1;
	for (i = 0; i < len / 2; i++) {
		unsigned int hi, lo;
		char c;
		c = s[2 * i];
		hi = (c >= '0' && c <= '9') ? (unsigned)(c - '0') :
		     (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10) :
		     (c >= 'A' && c <= 'F') ? (unsigned)(c - 'A' + 10) : 99u;
		c = s[2 * i + 1];
		lo = (c >= '0' && c <= '9') ? (unsigned)(c - '0') :
		     (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10) :
		     (c >= 'A' && c <= 'F') ? (unsigned)(c - 'A' + 10) : 99u;
		if (hi > 15 || lo > 15)
			return -1;
		databuf[i] = (unsigned char)(hi << 4 | lo);
	}
	*n = len / 2;
	return 0;
}

/* ------------------------------------------------------------ fault probes */

static void fault_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!in_probe) {
		/* A fault outside a probe is a harness bug: die with the signal. */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	fault_signo = sig;
	fault_code = si->si_code;
	fault_addr = si->si_addr;
	in_probe = 0;
	if (exec_state == 2 && (unsigned long)si->si_addr != vmops_exec_target) {
		/* The fetch worked; the instruction's own data access faulted. */
		exec_state = 0;
		siglongjmp(probe_env, 2);
	}
	exec_state = 0;
	siglongjmp(probe_env, 1);
}

/*
 * SIGTRAP/SIGILL/SIGFPE: single steps of an execute probe.  While stepping
 * through the runner's own jump (state 1) a trap whose next instruction is
 * the target moves to state 2 and returns, so the CPU fetches the target;
 * any signal in state 2 means that instruction was fetched and executed.
 */
static void step_handler(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;

	(void)si;
	if (in_probe && sig == SIGTRAP && exec_state == 1) {
		if ((unsigned long)uc->uc_mcontext.gregs[REG_RIP] == vmops_exec_target)
			exec_state = 2;
		return;
	}
	if (in_probe && exec_state == 2) {
		exec_state = 0;
		in_probe = 0;
		siglongjmp(probe_env, 2);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Jump to vmops_exec_target with TF set and every register but rip zero. */
extern void vmops_exec_jump(void) __attribute__((noreturn));
__asm__(
	".text\n"
	".globl vmops_exec_jump\n"
	".type vmops_exec_jump, @function\n"
	"vmops_exec_jump:\n"
	"\tpushfq\n"
	"\torq $0x100, (%rsp)\n"
	"\txorl %eax, %eax\n"
	"\txorl %ebx, %ebx\n"
	"\txorl %ecx, %ecx\n"
	"\txorl %edx, %edx\n"
	"\txorl %esi, %esi\n"
	"\txorl %edi, %edi\n"
	"\txorl %ebp, %ebp\n"
	"\txorl %r8d, %r8d\n"
	"\txorl %r9d, %r9d\n"
	"\txorl %r10d, %r10d\n"
	"\txorl %r11d, %r11d\n"
	"\txorl %r12d, %r12d\n"
	"\txorl %r13d, %r13d\n"
	"\txorl %r14d, %r14d\n"
	"\txorl %r15d, %r15d\n"
	"\tpopfq\n"
	"\txorl %esp, %esp\n"
	"\tjmpq *vmops_exec_target(%rip)\n"
	".size vmops_exec_jump, .-vmops_exec_jump\n"
);

static void emit_fault(void)
{
	size_t pos = line_start();
	const char *name = fault_signo == SIGSEGV ? "SIGSEGV" : "SIGBUS";
	const char *code = NULL;

	if (fault_signo == SIGSEGV) {
		switch (fault_code) {
		case SEGV_MAPERR: code = "MAPERR"; break;
		case SEGV_ACCERR: code = "ACCERR"; break;
		case SEGV_BNDERR: code = "BNDERR"; break;
		case SEGV_PKUERR: code = "PKUERR"; break;
		}
	} else {
		switch (fault_code) {
		case BUS_ADRALN: code = "ADRALN"; break;
		case BUS_ADRERR: code = "ADRERR"; break;
		case BUS_OBJERR: code = "OBJERR"; break;
		case BUS_MCEERR_AR: code = "MCEERR_AR"; break;
		case BUS_MCEERR_AO: code = "MCEERR_AO"; break;
		}
	}
	if (code)
		pos = line_add(pos, "sig %s %s ", name, code);
	else
		pos = line_add(pos, "sig %s %d ", name, fault_code);
	pos = add_addr(pos, (unsigned long)fault_addr);
	line_end(pos);
}

/* Execute one instruction at a; prints "ok" or the fault.  Returns 0 or 1. */
static int probe_exec(unsigned long a)
{
	int r = sigsetjmp(probe_env, 1);

	if (r == 1) {
		emit_fault();
		return 1;
	}
	if (r == 2) {
		emit("ok");
		return 0;
	}
	vmops_exec_target = a;
	exec_state = 1;
	in_probe = 1;
	vmops_exec_jump();
}

/* Returns 0 on success, 1 if a SIGSEGV/SIGBUS was caught (already printed). */
static int probe_copy(unsigned char *dst, const unsigned char *src, size_t n)
{
	volatile size_t i;

	if (sigsetjmp(probe_env, 1)) {
		emit_fault();
		return 1;
	}
	in_probe = 1;
	for (i = 0; i < n; i++)
		((volatile unsigned char *)dst)[i] = ((const volatile unsigned char *)src)[i];
	in_probe = 0;
	return 0;
}

/* ---------------------------------------------------------------- prefault */

static void __attribute__((noinline)) prefault_stack(void)
{
	volatile char big[STACK_PREFAULT];
	size_t i;

	for (i = 0; i < sizeof(big); i += 512)
		big[i] = 0;
}

static void touch_range_rw(unsigned long s, unsigned long e)
{
	unsigned long a;

	for (a = s; a < e; a += PAGE_SIZE_4K) {
		volatile unsigned char *p = (volatile unsigned char *)a;
		*p = *p;
	}
}

static void touch_range_r(unsigned long s, unsigned long e)
{
	unsigned long a;

	for (a = s; a < e; a += PAGE_SIZE_4K)
		(void)*(volatile unsigned char *)a;
}

/*
 * After fork() every writable private page of the harness is write-protected
 * in both processes, so the harness's own stores would show up as minor
 * faults; and the child starts without page-table entries for file mappings
 * that have no anonymous pages (libc's text, for instance), so its first
 * instruction fetches would too.  So every readable mapping outside the
 * region and the heap window is touched page by page - writable private ones by reading and
 * re-storing one byte, the rest by reading - and the caller takes a new
 * getrusage baseline afterwards.  The maps buffer itself is prefaulted first.
 */
static int window_of(unsigned long s, unsigned long e);

static void prefault_after_fork(void)
{
	int fd;
	size_t have = 0;
	int eof = 0;

	prefault_stack();
	touch_range_rw((unsigned long)inbuf, (unsigned long)inbuf + sizeof(inbuf));
	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (!eof || have > 0) {
		char *nl;
		if (!eof && have < IN_CAP) {
			ssize_t r = read(fd, inbuf + have, IN_CAP - have);
			if (r <= 0)
				eof = 1;
			else
				have += (size_t)r;
		}
		inbuf[have] = 0;
		nl = memchr(inbuf, '\n', have);
		if (!nl) {
			if (eof)
				break;
			continue;
		}
		*nl = 0;
		{
			unsigned long s, e;
			char perms[8];
			if (sscanf(inbuf, "%lx-%lx %7s", &s, &e, perms) == 3 &&
			    perms[0] == 'r' && window_of(s, e) == 0 &&
			    strstr(inbuf, "[vsyscall]") == NULL &&
			    strstr(inbuf, "[vvar") == NULL) {
				if (perms[1] == 'w' && perms[3] == 'p')
					touch_range_rw(s, e);
				else
					touch_range_r(s, e);
			}
		}
		have -= (size_t)(nl + 1 - inbuf);
		memmove(inbuf, nl + 1, have);
	}
	close(fd);
}

static void rusage_baseline(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	prev_minflt = ru.ru_minflt;
	prev_majflt = ru.ru_majflt;
}

static void emit_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	emit("faults %ld %ld", ru.ru_minflt - prev_minflt, ru.ru_majflt - prev_majflt);
	/* Re-read so the emit above is not charged to the next delta. */
	rusage_baseline();
}

/* -------------------------------------------------------------- /proc dump */

static int header_range(const char *line, unsigned long *s, unsigned long *e, const char **rest)
{
	const char *p = line;
	unsigned long v;
	int n;

	for (v = 0, n = 0; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); p++, n++)
		v = v * 16 + (unsigned long)(*p <= '9' ? *p - '0' : *p - 'a' + 10);
	if (n == 0 || *p != '-')
		return 0;
	*s = v;
	p++;
	for (v = 0, n = 0; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'); p++, n++)
		v = v * 16 + (unsigned long)(*p <= '9' ? *p - '0' : *p - 'a' + 10);
	if (n == 0 || *p != ' ')
		return 0;
	*e = v;
	*rest = p;
	return 1;
}

/* Which window a VMA [s, e) intersects: 1 the region, 2 the heap window, 0 none.
 * (The harness never touches the windows' pages itself, e.g. in prefault_after_fork.) */
static int window_of(unsigned long s, unsigned long e)
{
	if (s < base + REGION_SIZE && e > base)
		return 1;
	if (s < heap + HEAP_WINDOW && e > heap)
		return 2;
	return 0;
}

static size_t add_rel(size_t pos, unsigned long a, unsigned long origin, const char *tag)
{
	if (a >= origin)
		return line_add(pos, "%s%08lx", tag, a - origin);
	return line_add(pos, "%s-%08lx", tag, origin - a);
}

/* "pagemap V*N ..." for the pages of VMA [s, e) inside its window. */
static void emit_vma_pagemap(unsigned long s, unsigned long e)
{
	unsigned long lo, hi, a, run = 0;
	unsigned long long cur = 0;
	size_t pos;
	int fd;

	if (window_of(s, e) == 1) {
		lo = s > base ? s : base;
		hi = e < base + REGION_SIZE ? e : base + REGION_SIZE;
	} else {
		lo = s > heap ? s : heap;
		hi = e < heap + HEAP_WINDOW ? e : heap + HEAP_WINDOW;
	}
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		emit("pagemap -%d", errno);
		return;
	}
	pos = line_start();
	pos = line_add(pos, "pagemap");
	for (a = lo; a < hi;) {
		size_t n = (hi - a) / PAGE_SIZE_4K, i, got;
		ssize_t r;

		if (n > PM_CAP)
			n = PM_CAP;
		r = pread(fd, pmbuf, n * 8, (off_t)((a / PAGE_SIZE_4K) * 8));
		if (r <= 0) {
			emit("pagemap -%d", r < 0 ? errno : 0);
			close(fd);
			return;
		}
		got = (size_t)r / 8;
		for (i = 0; i < got; i++) {
			unsigned long long v = (unsigned long long)(pmbuf[i] >> 55);
			if (run > 0 && v == cur) {
				run++;
				continue;
			}
			if (run > 0)
				pos = line_add(pos, " 0x%llx*%lu", cur, run);
			cur = v;
			run = 1;
		}
		a += got * PAGE_SIZE_4K;
	}
	if (run > 0)
		pos = line_add(pos, " 0x%llx*%lu", cur, run);
	close(fd);
	line_end(pos);
}

/*
 * Print the lines of every VMA of a maps/smaps file that intersects the
 * region or the heap window, header ranges made relative; with_pagemap adds
 * each VMA's pagemap line after its block.  Returns -errno if the file
 * cannot be opened, else 0.
 */
static int dump_vmas(const char *path, int with_pagemap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t have = 0;
	int eof = 0, keep = 0;
	unsigned long ks = 0, ke = 0;

	if (fd < 0)
		return -errno;
	while (!eof || have > 0) {
		char *nl;
		unsigned long s, e;
		const char *rest;

		if (!eof && have < IN_CAP) {
			ssize_t r = read(fd, inbuf + have, IN_CAP - have);
			if (r <= 0)
				eof = 1;
			else
				have += (size_t)r;
		}
		nl = memchr(inbuf, '\n', have);
		if (!nl) {
			if (!eof)
				continue;
			if (have == 0)
				break;
			nl = inbuf + have; /* unterminated last line */
			inbuf[have] = '\n';
		}
		*nl = 0;
		if (header_range(inbuf, &s, &e, &rest)) {
			int w = window_of(s, e);
			if (keep && with_pagemap)
				emit_vma_pagemap(ks, ke);
			keep = w != 0;
			ks = s;
			ke = e;
			if (keep) {
				unsigned long origin = w == 1 ? base : heap;
				const char *tag = w == 1 ? "" : "h";
				size_t pos = line_start();
				pos = add_rel(pos, s, origin, tag);
				pos = line_add(pos, "-");
				pos = add_rel(pos, e, origin, tag);
				pos = line_add(pos, "%s", rest);
				line_end(pos);
			}
		} else if (keep) {
			emit("%s", inbuf);
		}
		if (nl == inbuf + have) {
			have = 0;
		} else {
			have -= (size_t)(nl + 1 - inbuf);
			memmove(inbuf, nl + 1, have);
		}
	}
	close(fd);
	if (keep && with_pagemap)
		emit_vma_pagemap(ks, ke);
	return 0;
}

static void dump_proc(const char *path)
{
	int r = dump_vmas(path, 0);

	if (r < 0)
		emit("ret %d", r);
	emit("end");
}

static void emit_faults(void);

/* The per-step observation: smaps + pagemap of every VMA in the windows, fault deltas. */
static void do_snap(void)
{
	int r;

	emit("snap");
	r = dump_vmas("/proc/self/smaps", 1);
	if (r < 0)
		emit("ret %d", r);
	emit_faults();
	emit("end");
}

static void do_pagemap(unsigned long addr, unsigned long npages)
{
	int fd;
	ssize_t r;
	size_t pos, i, got;

	if (npages > PM_CAP) {
		emit("bad-op");
		return;
	}
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		emit("pagemap -%d", errno);
		return;
	}
	r = pread(fd, pmbuf, npages * 8, (off_t)((addr / PAGE_SIZE_4K) * 8));
	if (r < 0) {
		emit("pagemap -%d", errno);
		close(fd);
		return;
	}
	close(fd);
	got = (size_t)r / 8;
	pos = line_start();
	pos = line_add(pos, "pagemap");
	for (i = 0; i < got; i++)
		pos = line_add(pos, " 0x%llx", (unsigned long long)(pmbuf[i] >> 55));
	line_end(pos);
}

/* --------------------------------------------------------------- execution */

static char **lines;
static size_t nlines;

static int split_args(char *line, char **argv)
{
	int argc = 0;
	char *p = line;

	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			*p++ = 0;
		if (!*p)
			break;
		if (argc == MAX_ARGS)
			return -1;
		argv[argc++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
	}
	return argc;
}

static const char *first_word(const char *line, char *buf, size_t cap)
{
	size_t n = 0;

	while (*line == ' ' || *line == '\t')
		line++;
	while (*line && *line != ' ' && *line != '\t' && *line != '\r' && n + 1 < cap)
		buf[n++] = *line++;
	buf[n] = 0;
	return buf;
}

/* Index of the "endchild" matching the "fork" at index i (or nlines). */
static size_t matching_endchild(size_t i)
{
	int depth = 0;
	char w[32];

	for (i = i + 1; i < nlines; i++) {
		first_word(lines[i], w, sizeof(w));
		if (strcmp(w, "fork") == 0)
			depth++;
		else if (strcmp(w, "endchild") == 0) {
			if (depth == 0)
				return i;
			depth--;
		}
	}
	return nlines;
}

#define NEED(n) do { if (argc != (n)) goto bad; } while (0)
#define NUM(i, v) do { if (parse_num(argv[i], &(v))) goto bad; } while (0)
#define ADDR(i, v) do { if (parse_addr(argv[i], &(v))) goto bad; } while (0)

static void run(void)
{
	size_t i;
	int depth = 0;
	static char copy[OUT_CAP];

	for (i = 0; i < nlines; i++) {
		char *argv[MAX_ARGS];
		int argc;
		const char *op;
		unsigned long a, b, c, d, e, f;
		long r;

		if (strlen(lines[i]) >= sizeof(copy)) {
			emit("bad-op");
			continue;
		}
		strcpy(copy, lines[i]);
		argc = split_args(copy, argv);
		if (argc == 0 || (argc > 0 && argv[0][0] == '#'))
			continue;
		if (argc < 0)
			goto bad;
		op = argv[0];

		if (strcmp(op, "mmap") == 0) {
			NEED(7);
			ADDR(1, a); NUM(2, b); NUM(3, c); NUM(4, d); NUM(5, e); NUM(6, f);
			r = syscall(SYS_mmap, a, b, c, d, e, f);
			emit_addr_ret(r);
		} else if (strcmp(op, "munmap") == 0) {
			NEED(3);
			ADDR(1, a); NUM(2, b);
			emit_ret(syscall(SYS_munmap, a, b));
		} else if (strcmp(op, "mprotect") == 0) {
			NEED(4);
			ADDR(1, a); NUM(2, b); NUM(3, c);
			emit_ret(syscall(SYS_mprotect, a, b, c));
		} else if (strcmp(op, "mremap") == 0) {
			NEED(6);
			ADDR(1, a); NUM(2, b); NUM(3, c); NUM(4, d); ADDR(5, e);
			r = syscall(SYS_mremap, a, b, c, d, e);
			emit_addr_ret(r);
		} else if (strcmp(op, "madvise") == 0) {
			NEED(4);
			ADDR(1, a); NUM(2, b); NUM(3, c);
			emit_ret(syscall(SYS_madvise, a, b, c));
		} else if (strcmp(op, "mlock") == 0) {
			NEED(3);
			ADDR(1, a); NUM(2, b);
			emit_ret(syscall(SYS_mlock, a, b));
		} else if (strcmp(op, "mlock2") == 0) {
			NEED(4);
			ADDR(1, a); NUM(2, b); NUM(3, c);
			emit_ret(syscall(SYS_mlock2, a, b, c));
		} else if (strcmp(op, "munlock") == 0) {
			NEED(3);
			ADDR(1, a); NUM(2, b);
			emit_ret(syscall(SYS_munlock, a, b));
		} else if (strcmp(op, "mlockall") == 0) {
			NEED(2);
			NUM(1, a);
			emit_ret(syscall(SYS_mlockall, a));
		} else if (strcmp(op, "munlockall") == 0) {
			NEED(1);
			emit_ret(syscall(SYS_munlockall));
		} else if (strcmp(op, "msync") == 0) {
			NEED(4);
			ADDR(1, a); NUM(2, b); NUM(3, c);
			emit_ret(syscall(SYS_msync, a, b, c));
		} else if (strcmp(op, "mincore") == 0) {
			size_t pos, n, k;
			NEED(3);
			ADDR(1, a); NUM(2, b);
			n = (b + PAGE_SIZE_4K - 1) / PAGE_SIZE_4K;
			if (b > (unsigned long)-PAGE_SIZE_4K)
				n = 0;
			r = syscall(SYS_mincore, a, b, vecbuf);
			if (r == -1) {
				emit("ret -%d", errno);
				continue;
			}
			pos = line_start();
			pos = line_add(pos, "ret %ld", r);
			if (n > VEC_CAP)
				n = VEC_CAP;
			if (n > 0 && pos < OUT_CAP - 2)
				outbuf[pos++] = ' ';
			for (k = 0; k < n && pos < OUT_CAP - 2; k++)
				outbuf[pos++] = (char)('0' + (vecbuf[k] & 1));
			line_end(pos);
		} else if (strcmp(op, "touch") == 0) {
			NEED(3);
			ADDR(1, a);
			if (strcmp(argv[2], "r") == 0) {
				if (probe_copy(databuf, (const unsigned char *)a, 1) == 0)
					emit("ok");
			} else if (strcmp(argv[2], "w") == 0) {
				static const unsigned char five_a = 0x5a;
				if (probe_copy((unsigned char *)a, &five_a, 1) == 0)
					emit("ok");
			} else if (strcmp(argv[2], "x") == 0) {
				probe_exec(a);
			} else {
				goto bad;
			}
		} else if (strcmp(op, "write_at") == 0) {
			size_t n;
			NEED(3);
			ADDR(1, a);
			if (parse_hexbytes(argv[2], &n))
				goto bad;
			if (probe_copy((unsigned char *)a, databuf, n) == 0)
				emit("ok");
		} else if (strcmp(op, "read_at") == 0) {
			size_t pos;
			NEED(3);
			ADDR(1, a); NUM(2, b);
			if (b > DATA_CAP)
				goto bad;
			if (probe_copy(databuf, (const unsigned char *)a, b) == 0) {
				pos = line_start();
				pos = line_add(pos, "data");
				if (b > 0)
					pos = line_add(pos, " ");
				pos = add_hex(pos, databuf, b);
				line_end(pos);
			}
		} else if (strcmp(op, "open") == 0) {
			NEED(3);
			NUM(2, b);
			r = open(argv[1], (int)b, 0644);
			emit_ret(r);
		} else if (strcmp(op, "close") == 0) {
			NEED(2);
			NUM(1, a);
			emit_ret(close((int)a));
		} else if (strcmp(op, "ftruncate") == 0) {
			NEED(3);
			NUM(1, a); NUM(2, b);
			emit_ret(ftruncate((int)a, (off_t)b));
		} else if (strcmp(op, "pwrite") == 0) {
			size_t n;
			NEED(4);
			NUM(1, a); NUM(2, b);
			if (parse_hexbytes(argv[3], &n))
				goto bad;
			emit_ret(pwrite((int)a, databuf, n, (off_t)b));
		} else if (strcmp(op, "pread") == 0) {
			size_t pos;
			NEED(4);
			NUM(1, a); NUM(2, b); NUM(3, c);
			if (c > DATA_CAP)
				goto bad;
			r = pread((int)a, databuf, c, (off_t)b);
			if (r < 0) {
				emit("ret -%d", errno);
				continue;
			}
			pos = line_start();
			pos = line_add(pos, "data");
			if (r > 0)
				pos = line_add(pos, " ");
			pos = add_hex(pos, databuf, (size_t)r);
			line_end(pos);
		} else if (strcmp(op, "maps") == 0) {
			NEED(1);
			dump_proc("/proc/self/maps");
		} else if (strcmp(op, "smaps") == 0) {
			NEED(1);
			dump_proc("/proc/self/smaps");
		} else if (strcmp(op, "pagemap") == 0) {
			NEED(3);
			ADDR(1, a); NUM(2, b);
			do_pagemap(a, b);
		} else if (strcmp(op, "faults") == 0) {
			NEED(1);
			emit_faults();
		} else if (strcmp(op, "snap") == 0) {
			NEED(1);
			do_snap();
		} else if (strcmp(op, "mark") == 0) {
			NEED(2);
			emit("mark %s", argv[1]);
		} else if (strcmp(op, "brk") == 0) {
			NEED(2);
			if (parse_addr_ex(argv[1], &a, 1))
				goto bad;
			emit_addr_ret(syscall(SYS_brk, a));
		} else if (strcmp(op, "exit") == 0) {
			NEED(1);
			if (depth > 0)
				_exit(0);
			return;
		} else if (strcmp(op, "fork") == 0) {
			pid_t pid;
			size_t end = matching_endchild(i);
			NEED(1);
			pid = fork();
			if (pid < 0) {
				emit("ret -%d", errno);
				i = end;
				continue;
			}
			if (pid == 0) {
				depth++;
				if (prefix_len + 7 < sizeof(prefix)) {
					memcpy(prefix + prefix_len, "child: ", 7);
					prefix_len += 7;
				}
				prefault_after_fork();
				rusage_baseline();
				continue;
			} else {
				int status = 0;
				while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
					;
				prefault_after_fork();
				if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
					emit("child-abnormal 0x%x", status);
				rusage_baseline();
				i = end;
			}
		} else if (strcmp(op, "endchild") == 0) {
			NEED(1);
			if (depth > 0)
				_exit(0);
			goto bad;
		} else if (strcmp(op, "setrlimit") == 0) {
			struct rlimit rl;
			NEED(4);
			NUM(1, a); NUM(2, b); NUM(3, c);
			rl.rlim_cur = b;
			rl.rlim_max = c;
			emit_ret(setrlimit((int)a, &rl));
		} else if (strcmp(op, "capdrop") == 0) {
			struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
			struct __user_cap_data_struct data[2];
			NEED(2);
			NUM(1, a);
			if (a >= 64)
				goto bad;
			if (syscall(SYS_capget, &hdr, data) != 0) {
				emit("ret -%d", errno);
				continue;
			}
			data[a / 32].effective &= ~(1u << (a % 32));
			emit_ret(syscall(SYS_capset, &hdr, data));
		} else {
			goto bad;
		}
		continue;
bad:
		emit("bad-op");
	}
	if (depth > 0)
		_exit(0);
}

/* ----------------------------------------------------------------- startup */

/* A bigger anonymous buffer with the old contents (no malloc: see the header). */
static void *grow_buffer(void *old, size_t oldcap, size_t newcap)
{
	void *p = mmap(NULL, newcap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(2);
	if (old) {
		memcpy(p, old, oldcap);
		munmap(old, oldcap);
	}
	return p;
}

static void read_script(void)
{
	size_t cap = 1 << 16, len = 0, i, n;
	char *buf = grow_buffer(NULL, 0, cap);

	for (;;) {
		ssize_t r;
		if (len + 1 >= cap) {
			buf = grow_buffer(buf, cap, cap * 2);
			cap *= 2;
		}
		r = read(0, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = 0;
	for (i = 0, n = 0; i < len; i++)
		if (buf[i] == '\n')
			n++;
	lines = grow_buffer(NULL, 0, (n + 2) * sizeof(*lines));
	nlines = 0;
	if (len == 0)
		return;
	lines[nlines++] = buf;
	for (i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			buf[i] = 0;
			if (i + 1 < len)
				lines[nlines++] = buf + i + 1;
		}
	}
}

static void fail(const char *msg)
{
	write_all_fd(2, msg, strlen(msg));
	_exit(2);
}

/*
 * The heap window must start at the kernel's initial break (start_brk, field
 * 47 of /proc/self/stat) and hold no mapping, so that brk acts on an empty
 * heap exactly as it does in a fresh vmsim process.
 */
static void check_heap(void)
{
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ssize_t r;
	char *p;
	int field;
	unsigned long start_brk = 0;

	if (fd < 0)
		fail("vmops: cannot open /proc/self/stat\n");
	r = read(fd, inbuf, IN_CAP);
	close(fd);
	if (r <= 0)
		fail("vmops: cannot read /proc/self/stat\n");
	inbuf[r] = 0;
	p = strrchr(inbuf, ')');
	if (!p)
		fail("vmops: bad /proc/self/stat\n");
	for (field = 2; *p && field < 47; p++)
		if (*p == ' ')
			field++;
	if (field != 47 || parse_num_prefix(p, &start_brk))
		fail("vmops: no start_brk in /proc/self/stat\n");
#ifdef VMOPS_STATIC
	/* A static libc puts its TLS block on the heap with brk() before main(),
	 * so the break has moved; the window above it must still be empty. */
	if (start_brk > heap)
#else
	if (start_brk != heap)
#endif
		fail("vmops: the program break moved before the script started\n");
	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("vmops: cannot open /proc/self/maps\n");
	{
		size_t have = 0;
		char *line, *nl;

		while (have < IN_CAP && (r = read(fd, inbuf + have, IN_CAP - have)) > 0)
			have += (size_t)r;
		close(fd);
		if (have == IN_CAP)
			fail("vmops: /proc/self/maps is too long\n");
		inbuf[have] = 0;
		for (line = inbuf; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
			unsigned long s, e;
			const char *rest;

			*nl = 0;
			if (header_range(line, &s, &e, &rest) && s < heap + HEAP_WINDOW && e > heap)
				fail("vmops: the heap window is not empty\n");
		}
	}
}

static void install_handlers(void)
{
	stack_t ss;
	struct sigaction sa;

	ss.ss_sp = altstack;
	ss.ss_size = sizeof(altstack);
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL) != 0)
		_exit(2);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fault_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sa.sa_sigaction = step_handler;
	sigaction(SIGTRAP, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
}

/* Exercise every code path once so lazy faults of libc/our text and data
 * (and /proc seq_file paths) happen before the baseline. */
static void warm_up(void)
{
	static const unsigned char zero;
	int fd;
	struct rusage ru;
	char tmp[64];
	unsigned long v;

	snprintf(tmp, sizeof(tmp), "%ld %lx %08lx %s %d %llx", 1L, 2UL, 3UL, "x", 4, 5ULL);
	parse_num("0x10", &v);
	getrusage(RUSAGE_SELF, &ru);
	(void)probe_copy(databuf, &zero, 1);
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!pread(fd, pmbuf, 8, 0);
		close(fd);
	}
	fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		while (read(fd, inbuf, IN_CAP) > 0)
			;
		close(fd);
	}
}

int main(void)
{
	unsigned long raw, aligned;

	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	read_script();
	install_handlers();

	/* Pre-fault the harness: deep stack, static buffers, text and data. */
	prefault_stack();
	memset(outbuf, 0, sizeof(outbuf));
	memset(inbuf, 0, sizeof(inbuf));
	memset(databuf, 0, sizeof(databuf));
	memset(vecbuf, 0, sizeof(vecbuf));
	memset(pmbuf, 0, sizeof(pmbuf));
	memset(altstack, 0, sizeof(altstack));
	warm_up();
	/* Populate every current mapping (text of libc included), then unlock. */
	if (mlockall(MCL_CURRENT) == 0)
		munlockall();

	raw = (unsigned long)mmap(NULL, REGION_SIZE + ALIGN_2M, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if ((void *)raw == MAP_FAILED) {
		perror("vmops: reserve");
		return 2;
	}
	aligned = (raw + ALIGN_2M - 1) & ~(ALIGN_2M - 1);
	munmap((void *)raw, REGION_SIZE + ALIGN_2M);
	base = aligned;
	heap = (unsigned long)syscall(SYS_brk, 0);
	check_heap();

	emit("base 0x%lx heap 0x%lx", base, heap);
	rusage_baseline();
	run();
	return 0;
}
