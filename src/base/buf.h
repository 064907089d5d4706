/*
 * A growable byte buffer that owns its memory, with big-endian and varint writers.
 *
 * Growth never fails (base/alloc.h aborts on out-of-memory); callers bound what they write with
 * base/limits.h. buf_reset() keeps the memory so a hot path can reuse one buffer.
 */
#ifndef CHRONIK_BASE_BUF_H
#define CHRONIK_BASE_BUF_H

#include "base/bytes.h"

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data; /* NULL until the first write */
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_deinit(struct buf *b); /* frees the memory; b is empty again */
static inline void buf_reset(struct buf *b)
{
    b->len = 0;
}
/* Makes room for at least extra more bytes without changing len. */
void buf_reserve(struct buf *b, size_t extra);
/* Appends n uninitialised bytes and returns a pointer to them (valid until the next growth). */
uint8_t *buf_extend(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
static inline struct slice buf_slice(const struct buf *b)
{
    return slice_make(b->data, b->len);
}

void buf_put_u8(struct buf *b, uint8_t v);
void buf_put_be16(struct buf *b, uint16_t v);
void buf_put_be32(struct buf *b, uint32_t v);
void buf_put_be64(struct buf *b, uint64_t v);
void buf_put_uvarint(struct buf *b, uint64_t v);
void buf_put_varint(struct buf *b, int32_t v);
void buf_put_varlong(struct buf *b, int64_t v);

#endif
