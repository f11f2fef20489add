/* exec: fork, then execve another program in the child.  execve replaces the
 * child's whole address space (the parent's pages are untouched), keeps its
 * pid and open files, and the parent collects the exit status.  execve of a
 * missing file and of a file that is not a program fail, and the caller's
 * image survives. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char path[4096];

static void sibling(const char *argv0, const char *name)
{
    const char *slash = strrchr(argv0, '/');
    if (slash)
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - argv0), argv0, name);
    else
        snprintf(path, sizeof path, "./%s", name);
}

int main(int argc, char **argv)
{
    (void)argc;
    static char *envp[] = {"PATH=/bin", NULL};
    static char marker[] = "parent's data, intact";
    sibling(argv[0], "hello");
    printf("parent: running %s in a child\n", strrchr(path, '/') + 1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = {"hello", "from", "exec", NULL};
        execve(path, args, envp);
        perror("execve");
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("parent: child exited with status %d; %s\n",
           WIFEXITED(status) ? WEXITSTATUS(status) : -1, marker);

    char *none[] = {"missing", NULL};
    sibling(argv[0], "no-such-program");
    int r = execve(path, none, envp);
    printf("execve(missing): %d, %s\n", r, errno == ENOENT ? "ENOENT" : strerror(errno));

    int fd = open("exec-not-a-program.txt", O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (fd >= 0) {
        write(fd, "just text\n", 10);
        close(fd);
    }
    r = execve("exec-not-a-program.txt", none, envp);
    printf("execve(text file): %d, %s\n", r, errno == ENOEXEC ? "ENOEXEC" : strerror(errno));
    return 0;
}
