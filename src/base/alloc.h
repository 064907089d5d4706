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

#endif
