#include "base/arena.h"

#include "base/alloc.h"
#include "base/assert.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16

struct arena_block {
    struct arena_block *next;
    size_t cap;
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

void arena_init(struct arena *a, size_t block_bytes, size_t limit_bytes)
{
    ASSERT(block_bytes >= ARENA_ALIGN);
    a->head = NULL;
    a->block_bytes = block_bytes;
    a->limit_bytes = limit_bytes;
    a->used_bytes = 0;
    a->meter = NULL;
    a->meter_ctx = NULL;
}

void arena_set_meter(struct arena *a, arena_meter_fn fn, void *ctx)
{
    a->meter = fn;
    a->meter_ctx = ctx;
}

static void free_blocks(struct arena_block *b)
{
    while (b != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
}

void arena_deinit(struct arena *a)
{
    free_blocks(a->head);
    a->head = NULL;
    a->used_bytes = 0;
}

void arena_reset(struct arena *a)
{
    /* Keep one ordinary-sized block for reuse; oversized blocks are never kept. */
    struct arena_block *keep = NULL;
    struct arena_block *b = a->head;
    while (b != NULL) {
        struct arena_block *next = b->next;
        if (keep == NULL && b->cap == a->block_bytes) {
            keep = b;
            keep->next = NULL;
            keep->used = 0;
        } else {
            free(b);
        }
        b = next;
    }
    a->head = keep;
    a->used_bytes = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    ASSERT(a->used_bytes <= a->limit_bytes);
    size_t rounded = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (rounded < n || rounded > a->limit_bytes - a->used_bytes)
        return NULL;
    struct arena_block *b = a->head;
    if (b == NULL || b->cap - b->used < rounded) {
        size_t cap = rounded > a->block_bytes ? rounded : a->block_bytes;
        struct arena_block *nb = xmalloc(sizeof(*nb) + cap);
        if (a->meter != NULL)
            a->meter(a->meter_ctx, sizeof(*nb) + cap);
        nb->cap = cap;
        nb->used = 0;
        if (b != NULL && cap > a->block_bytes) {
            /* An oversized block goes behind the head so the head keeps serving small
             * allocations. */
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += rounded;
    a->used_bytes += rounded;
    return p;
}

void *arena_zalloc(struct arena *a, size_t n)
{
    void *p = arena_alloc(a, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

void *arena_calloc(struct arena *a, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    return arena_zalloc(a, count * size);
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
