/* maps: a program reads its own /proc/self/maps and prints its areas, with the
 * addresses left out (they are randomised), so the output is the same on every
 * run and every kernel: permissions, file offset and the mapped file's name or
 * [heap]/[stack].  The kernel's own pages ([vdso], [vvar], [vsyscall]) are
 * skipped: vmsim does not provide them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char buf[1 << 16];

int main(void)
{
    char *heap = malloc(1 << 12);  /* make sure there is a heap */
    heap[0] = 1;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) {
        perror("/proc/self/maps");
        return 1;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    int areas = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char range[64], perms[8], offset[32], dev[16], path[4096] = "";
        unsigned long inode;
        if (sscanf(line, "%63s %7s %31s %15s %lu %4095s", range, perms, offset, dev, &inode, path) < 5)
            continue;
        if (!strcmp(path, "[vdso]") || !strcmp(path, "[vvar]") || !strcmp(path, "[vsyscall]") ||
            !strcmp(path, "[vvar_vclock]"))
            continue;
        const char *name = strrchr(path, '/');
        name = name ? name + 1 : path[0] ? path : "(anonymous)";
        printf("%s %s %s\n", perms, offset, name);
        areas++;
    }
    printf("%d areas\n", areas);
    return 0;
}
