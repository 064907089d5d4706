/*
 * Heap allocation that never returns NULL.
 *
 * Every size that comes from outside (network, disk) is checked against base/limits.h before it
 * reaches an allocator, so an allocation failure means the machine itself is out of memory.
 * There is no sensible recovery from that inside a broker, so these wrappers print and abort
 * instead of threading -ENOMEM through every caller.
 */
#ifndef CHRONIK_BASE_ALLOC_H
#define CHRONIK_BASE_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* The size of a transparent huge page on x86-64 and arm64 with 4 KiB pages. */
#define ALLOC_HUGE_BYTES (2u * 1024u * 1024u)

/* n bytes (a multiple of ALLOC_HUGE_BYTES) aligned to ALLOC_HUGE_BYTES, which the kernel is asked
 * to back with transparent huge pages; freed with free(). For large buffers that are written
 * soon after they are allocated: fresh memory costs a page fault per 4 KiB page on first touch
 * otherwise (on the VM this project is measured on, 21 ms to touch 8 MiB page by page against
 * 0.7 ms on huge pages). Where the kernel has no huge pages to give, it is ordinary memory. */
void *xmalloc_huge(size_t n);

#endif
