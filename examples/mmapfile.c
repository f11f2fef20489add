/* mmapfile: a file mapped MAP_SHARED and MAP_PRIVATE at once.  A store through
 * the shared mapping reaches the page cache (read(2) sees it, and so does the
 * private mapping while its page is not yet copied); a store through the
 * private mapping is a copy-on-write fault and never reaches the file. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NAME "mmapfile.dat"
#define LEN (2 * 4096)

static void show(const char *what, const char *p)
{
    printf("%-28s page0=\"%.16s\" page1=\"%.16s\"\n", what, p, p + 4096);
}

int main(void)
{
    static char buf[LEN];
    int fd = open(NAME, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open " NAME);
        return 1;
    }
    memset(buf, '.', LEN);
    if (write(fd, buf, LEN) != LEN) {
        perror("write");
        return 1;
    }
    char *sh = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *pr = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (sh == MAP_FAILED || pr == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memcpy(sh, "shared write....", 16);      /* page 0, through the shared mapping */
    memcpy(pr + 4096, "private write...", 16); /* page 1, through the private one */
    show("shared mapping:", sh);
    show("private mapping:", pr);
    if (pread(fd, buf, LEN, 0) != LEN) {
        perror("pread");
        return 1;
    }
    show("file (read):", buf);
    /* a write(2) to the file shows in the shared mapping and in the private
     * mapping's page 0 (still the page-cache page), not in its copied page 1 */
    if (pwrite(fd, "written by pwrite", 16, 4096) != 16 ||
        pwrite(fd, "page0 by pwrite.", 16, 0) != 16) {
        perror("pwrite");
        return 1;
    }
    show("shared after pwrite:", sh);
    show("private after pwrite:", pr);
    if (msync(sh, LEN, MS_SYNC) != 0)
        perror("msync");
    munmap(sh, LEN);
    munmap(pr, LEN);
    close(fd);
    fd = open(NAME, O_RDONLY);
    memset(buf, 0, LEN);
    if (fd < 0 || read(fd, buf, LEN) != LEN) {
        perror("reopen");
        return 1;
    }
    show("file after close:", buf);
    close(fd);
    return 0;
}
