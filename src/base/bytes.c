#include "base/bytes.h"

#include "base/assert.h"
#include "base/error.h"

size_t uvarint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t uvarint_encode(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

int uvarint_decode(const uint8_t *p, size_t len, unsigned value_bits, uint64_t *out)
{
    ASSERT(value_bits == 32 || value_bits == 64);
    size_t bytes_max = value_bits == 32 ? VARINT32_BYTES_MAX : VARINT64_BYTES_MAX;
    uint64_t v = 0;
    for (size_t i = 0; i < bytes_max; i++) {
        if (i >= len)
            return ERR_INCOMPLETE;
        uint64_t group = p[i] & 0x7f;
        unsigned shift = (unsigned)(7 * i);
        /* The last permitted byte may only carry the bits that still fit in value_bits. */
        if (shift + 7 > value_bits && (group >> (value_bits - shift)) != 0)
            return ERR_CORRUPT;
        v |= group << shift;
        if ((p[i] & 0x80) == 0) {
            *out = v;
            return (int)(i + 1);
        }
    }
    return ERR_CORRUPT;
}

const uint8_t *rd_bytes(struct reader *r, size_t n)
{
    if (rd_left(r) < n) {
        rd_fail(r, ERR_INCOMPLETE);
        return NULL;
    }
    const uint8_t *p = r->pos;
    r->pos += n;
    return p;
}

uint8_t rd_u8(struct reader *r)
{
    const uint8_t *p = rd_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t rd_be16(struct reader *r)
{
    const uint8_t *p = rd_bytes(r, 2);
    return p ? be16_load(p) : 0;
}

uint32_t rd_be32(struct reader *r)
{
    const uint8_t *p = rd_bytes(r, 4);
    return p ? be32_load(p) : 0;
}

uint64_t rd_be64(struct reader *r)
{
    const uint8_t *p = rd_bytes(r, 8);
    return p ? be64_load(p) : 0;
}

static uint64_t rd_uvar(struct reader *r, unsigned bits)
{
    uint64_t v = 0;
    int n = uvarint_decode(r->pos, rd_left(r), bits, &v);
    if (n < 0) {
        rd_fail(r, n);
        return 0;
    }
    r->pos += n;
    return v;
}

uint32_t rd_uvarint(struct reader *r)
{
    return (uint32_t)rd_uvar(r, 32);
}

uint64_t rd_uvarlong(struct reader *r)
{
    return rd_uvar(r, 64);
}

int32_t rd_varint(struct reader *r)
{
    return zigzag32_decode((uint32_t)rd_uvar(r, 32));
}

int64_t rd_varlong(struct reader *r)
{
    return zigzag64_decode(rd_uvar(r, 64));
}
