/* bigalloc: allocate 16 MiB with malloc and touch it page by page.  Every
 * first touch is a page fault that allocates a zeroed frame (demand paging);
 * large allocations come from anonymous mmap, small ones from brk. */
#include <stdio.h>
#include <stdlib.h>

#define MIB (1024 * 1024)
#define BLOCKS 16

int main(void)
{
    unsigned char *blocks[BLOCKS];
    long sum = 0, pages = 0;
    for (int b = 0; b < BLOCKS; b++) {
        blocks[b] = malloc(MIB);
        if (!blocks[b]) {
            printf("malloc failed at block %d\n", b);
            return 1;
        }
        for (long i = 0; i < MIB; i += 4096) {
            blocks[b][i] = (unsigned char)(b + i / 4096);
            pages++;
        }
    }
    for (int b = 0; b < BLOCKS; b++)
        for (long i = 0; i < MIB; i += 4096)
            sum += blocks[b][i];
    /* many small allocations from the heap (brk) */
    long small = 0;
    for (int i = 0; i < 10000; i++) {
        int *p = malloc(64);
        if (!p)
            return 1;
        *p = i;
        small += *p;
    }
    printf("touched %ld pages in %d MiB, sum %ld, small allocations sum %ld\n",
           pages, BLOCKS, sum, small);
    for (int b = 0; b < BLOCKS; b++)
        free(blocks[b]);
    return 0;
}
