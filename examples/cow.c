/* cow: copy-on-write after fork.  A private page (.data), a private anonymous
 * mapping and a shared anonymous mapping are written by the child; the parent
 * sees the child's write only in the shared mapping.  The parent then writes
 * its private page again: that fault reuses the frame (the child is gone). */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGES 8

static char data_page[4096] __attribute__((aligned(4096))) = "parent's .data";

static long sum(const unsigned char *p, size_t n)
{
    long s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

int main(void)
{
    size_t len = PAGES * 4096;
    unsigned char *priv = mmap(NULL, len, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (priv == MAP_FAILED || shared == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (size_t i = 0; i < len; i++)
        priv[i] = (unsigned char)(i * 7);
    strcpy(shared, "parent's shared");
    printf("before fork: data=\"%s\" shared=\"%s\" private sum=%ld\n",
           data_page, shared, sum(priv, len));
    fflush(stdout);

    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        strcpy(data_page, "child's .data");
        strcpy(shared, "child's shared");
        memset(priv, 1, len / 2); /* half the pages: COW copies */
        printf("child:       data=\"%s\" shared=\"%s\" private sum=%ld\n",
               data_page, shared, sum(priv, len));
        fflush(stdout);
        _exit(7);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) {
        perror("waitpid");
        return 1;
    }
    printf("parent:      data=\"%s\" shared=\"%s\" private sum=%ld\n",
           data_page, shared, sum(priv, len));
    printf("child exit status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    strcpy(data_page, "parent again");
    priv[0] = 2;
    printf("after child: data=\"%s\" private sum=%ld\n", data_page, sum(priv, len));
    return 0;
}
