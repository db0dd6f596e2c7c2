#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>

static void alloc_oom(size_t n) __attribute__((noreturn, cold));

static void alloc_oom(size_t n)
{
    /* No logger here: it may allocate. One line, then abort for a core dump. */
    fprintf(stderr, "level=fatal event=oom bytes=%zu\n", n);
    abort();
}

void *wsp_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        alloc_oom(n);
    return p;
}

void *wsp_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        alloc_oom(count * size);
    return p;
}
