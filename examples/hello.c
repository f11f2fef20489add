/* hello: the smallest real program.  Its text and data are demand-paged from
 * the ELF file (file-backed private mappings), its stack is an anonymous
 * VM_GROWSDOWN area built by execve, and its output goes through write(2). */
#include <stdio.h>

int main(int argc, char **argv)
{
    printf("hello, world\n");
    for (int i = 1; i < argc; i++)
        printf("argv[%d] = %s\n", i, argv[i]);
    return 0;
}
