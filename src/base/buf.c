#include "base/buf.h"

#include "base/alloc.h"
#include "base/assert.h"

#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_deinit(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reserve(struct buf *b, size_t extra)
{
    ASSERT(b->len <= b->cap);
    ASSERT(extra <= SIZE_MAX - b->len);
    size_t need = b->len + extra;
    /* A buffer never handed out memory has none: allocate even for zero bytes, so that
     * b->data + b->len is always a valid pointer. */
    if (need <= b->cap && b->data != NULL)
        return;
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

uint8_t *buf_extend(struct buf *b, size_t n)
{
    buf_reserve(b, n);
    uint8_t *p = b->data + b->len;
    b->len += n;
    return p;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(buf_extend(b, n), p, n);
}

void buf_put_u8(struct buf *b, uint8_t v)
{
    *buf_extend(b, 1) = v;
}

void buf_put_be16(struct buf *b, uint16_t v)
{
    be16_store(buf_extend(b, 2), v);
}

void buf_put_be32(struct buf *b, uint32_t v)
{
    be32_store(buf_extend(b, 4), v);
}

void buf_put_be64(struct buf *b, uint64_t v)
{
    be64_store(buf_extend(b, 8), v);
}

void buf_put_uvarint(struct buf *b, uint64_t v)
{
    buf_reserve(b, VARINT64_BYTES_MAX);
    b->len += uvarint_encode(b->data + b->len, v);
}

void buf_put_varint(struct buf *b, int32_t v)
{
    buf_put_uvarint(b, zigzag32_encode(v));
}

void buf_put_varlong(struct buf *b, int64_t v)
{
    buf_put_uvarint(b, zigzag64_encode(v));
}
