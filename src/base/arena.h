/*
 * A bump allocator for data that lives exactly as long as one unit of work (a request, a
 * decoded message). Allocations are 16-byte aligned and freed all at once by arena_reset() or
 * arena_deinit().
 *
 * Every arena has a byte limit: an allocation that would take the total over it returns NULL,
 * which decoders turn into an error. This is what keeps hostile inputs from growing memory.
 * arena_reset() keeps the first block so a reused arena does not touch fresh memory again.
 *
 * An optional meter is told the size of every block the arena takes from the heap, so an owner
 * can count an arena's memory against a bound shared with others (the broker counts request
 * arenas against queued.max.request.bytes).
 */
#ifndef CHRONIK_BASE_ARENA_H
#define CHRONIK_BASE_ARENA_H

#include <stddef.h>

struct arena_block;

/* Called with the bytes of each block the arena allocates (header included). */
typedef void (*arena_meter_fn)(void *ctx, size_t bytes);

struct arena {
    struct arena_block *head; /* newest block first */
    size_t block_bytes;       /* payload size of an ordinary block */
    size_t limit_bytes;       /* most bytes the arena may hand out between resets */
    size_t used_bytes;        /* bytes handed out since the last reset (with alignment) */
    arena_meter_fn meter;     /* NULL: none */
    void *meter_ctx;
};

void arena_init(struct arena *a, size_t block_bytes, size_t limit_bytes);
/* Sets the meter for the blocks allocated from now on. */
void arena_set_meter(struct arena *a, arena_meter_fn fn, void *ctx);
void arena_deinit(struct arena *a);
void arena_reset(struct arena *a);

/* n bytes, 16-byte aligned; NULL if the limit would be exceeded. n == 0 returns a valid pointer. */
void *arena_alloc(struct arena *a, size_t n);
/* As arena_alloc, zero-filled. */
void *arena_zalloc(struct arena *a, size_t n);
/* count * size bytes zero-filled, NULL on overflow or limit. */
void *arena_calloc(struct arena *a, size_t count, size_t size);
/* A NUL-terminated copy of n bytes, NULL on limit. */
char *arena_strndup(struct arena *a, const char *s, size_t n);

static inline size_t arena_used(const struct arena *a)
{
    return a->used_bytes;
}

#endif
