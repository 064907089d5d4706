#include "base/alloc.h"

#include "base/assert.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static NORETURN void out_of_memory(void)
{
    base_panic(__FILE__, __LINE__, "out of memory");
}

void *xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL)
        out_of_memory();
    return p;
}

void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
    if (p == NULL)
        out_of_memory();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n == 0 ? 1 : n);
    if (q == NULL)
        out_of_memory();
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

void *xmalloc_huge(size_t n)
{
    ASSERT(n > 0 && n % ALLOC_HUGE_BYTES == 0);
    void *p = aligned_alloc(ALLOC_HUGE_BYTES, n);
    if (p == NULL)
        out_of_memory();
    /* Only a hint: EINVAL where the kernel was built without huge pages. */
    (void)madvise(p, n, MADV_HUGEPAGE);
    return p;
}
