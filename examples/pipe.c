/* pipe: a parent and two children connected by pipes.  The parent writes more
 * than a pipe holds (64 KiB), so it sleeps until the child has read; the
 * child exits with a status the parent reads with waitpid.  A second child
 * is killed by a signal, and a write to a pipe without readers fails with
 * EPIPE (SIGPIPE ignored). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOTAL (200 * 1024L)

static void report(const char *who, int status)
{
    if (WIFEXITED(status))
        printf("%s exited with status %d\n", who, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s killed by signal %d\n", who, WTERMSIG(status));
    else
        printf("%s: status %#x\n", who, status);
}

int main(void)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        static char buf[8192];
        long total = 0, sum = 0;
        ssize_t n;
        while ((n = read(fds[0], buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                sum += (unsigned char)buf[i];
            total += n;
        }
        printf("child: read %ld bytes, sum %ld, then end of file\n", total, sum);
        fflush(stdout);
        _exit(total == TOTAL ? 42 : 1);
    }
    close(fds[0]);
    static char chunk[10000];
    long sent = 0;
    while (sent < TOTAL) {
        size_t want = sizeof chunk;
        if (TOTAL - sent < (long)want)
            want = (size_t)(TOTAL - sent);
        for (size_t i = 0; i < want; i++)
            chunk[i] = (char)((sent + i) % 251);
        ssize_t n = write(fds[1], chunk, want);
        if (n <= 0) {
            perror("write");
            return 1;
        }
        sent += n;
    }
    close(fds[1]); /* the reader sees end of file once the pipe is empty */
    int status;
    waitpid(pid, &status, 0);
    printf("parent: wrote %ld bytes\n", sent);
    report("reader child", status);

    pid = fork();
    if (pid == 0) {
        pause(); /* until the parent's SIGTERM */
        _exit(0);
    }
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    report("second child", status);

    signal(SIGPIPE, SIG_IGN);
    if (pipe(fds) != 0)
        return 1;
    close(fds[0]);
    ssize_t r = write(fds[1], "x", 1);
    printf("write without a reader: %zd (%s)\n", r, r < 0 && errno == EPIPE ? "EPIPE" : "?");
    return 0;
}
