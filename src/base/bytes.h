/*
 * Byte-level encoding shared by the log format, the Kafka codecs and the cluster transport:
 * slices, big-endian integers, Kafka's varints, and a bounds-checked reader.
 *
 * Kafka's varints (KIP-98 / the protocol guide): an unsigned varint is LEB128, 7 bits per byte,
 * low groups first; a signed varint/varlong is the unsigned encoding of the zigzag transform
 * (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...). A 32-bit varint takes at most 5 bytes, a 64-bit one 10.
 *
 * The reader never reads past its end. Its error is sticky: after the first failure every read
 * returns 0/NULL and rd_err() reports the first error, so a decoder can read a whole structure
 * and check once. Nothing here allocates.
 */
#ifndef CHRONIK_BASE_BYTES_H
#define CHRONIK_BASE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define VARINT32_BYTES_MAX 5
#define VARINT64_BYTES_MAX 10

/* A borrowed view of bytes; it never owns them. */
struct slice {
    const uint8_t *ptr;
    size_t len;
};

static inline struct slice slice_make(const void *ptr, size_t len)
{
    return (struct slice){.ptr = (const uint8_t *)ptr, .len = len};
}

static inline bool slice_eq(struct slice a, struct slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Big-endian loads and stores on unaligned memory. */
static inline uint16_t be16_load(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t be32_load(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t be64_load(const uint8_t *p)
{
    return (uint64_t)be32_load(p) << 32 | be32_load(p + 4);
}
static inline void be16_store(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void be32_store(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void be64_store(uint8_t *p, uint64_t v)
{
    be32_store(p, (uint32_t)(v >> 32));
    be32_store(p + 4, (uint32_t)v);
}

static inline uint32_t zigzag32_encode(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}
static inline int32_t zigzag32_decode(uint32_t v)
{
    return (int32_t)(v >> 1) ^ -(int32_t)(v & 1);
}
static inline uint64_t zigzag64_encode(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static inline int64_t zigzag64_decode(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Bytes an unsigned varint encoding of v takes (1..10). */
size_t uvarint_size(uint64_t v);
static inline size_t varint_size(int32_t v)
{
    return uvarint_size(zigzag32_encode(v));
}
static inline size_t varlong_size(int64_t v)
{
    return uvarint_size(zigzag64_encode(v));
}

/* Writes v to out (room for uvarint_size(v) bytes); returns the bytes written. */
size_t uvarint_encode(uint8_t *out, uint64_t v);

/*
 * Decodes an unsigned varint of at most bytes_max bytes (5 for 32-bit, 10 for 64-bit) whose
 * value fits in value_bits bits. Returns the bytes consumed, ERR_INCOMPLETE if the input ends
 * inside it, or ERR_CORRUPT if it is longer than bytes_max or its value is too wide.
 */
int uvarint_decode(const uint8_t *p, size_t len, unsigned value_bits, uint64_t *out);

/* A bounds-checked cursor over borrowed bytes. */
struct reader {
    const uint8_t *pos;
    const uint8_t *end;
    int err; /* 0, or the first error: ERR_INCOMPLETE or ERR_CORRUPT (or a decoder's own) */
};

static inline void rd_init(struct reader *r, const void *ptr, size_t len)
{
    /* An empty buffer may have a NULL pointer; pointer arithmetic on NULL is undefined. */
    static const uint8_t empty[1];
    r->pos = ptr != NULL ? (const uint8_t *)ptr : empty;
    r->end = r->pos + len;
    r->err = 0;
}
static inline size_t rd_left(const struct reader *r)
{
    return (size_t)(r->end - r->pos);
}
static inline int rd_err(const struct reader *r)
{
    return r->err;
}
/* Records err unless an earlier error is already recorded. */
static inline void rd_fail(struct reader *r, int err)
{
    if (r->err == 0)
        r->err = err;
    r->pos = r->end;
}

/* Returns a pointer to the next n bytes and skips them, or NULL (ERR_INCOMPLETE). */
const uint8_t *rd_bytes(struct reader *r, size_t n);
uint8_t rd_u8(struct reader *r);
uint16_t rd_be16(struct reader *r);
uint32_t rd_be32(struct reader *r);
uint64_t rd_be64(struct reader *r);
uint32_t rd_uvarint(struct reader *r);  /* unsigned, 32-bit */
uint64_t rd_uvarlong(struct reader *r); /* unsigned, 64-bit */
int32_t rd_varint(struct reader *r);    /* zigzag, 32-bit */
int64_t rd_varlong(struct reader *r);   /* zigzag, 64-bit */

#endif
