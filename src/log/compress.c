/*
 * Codec glue over zlib, libsnappy, liblz4 and libzstd (Debian packages). Each direction streams
 * into the caller's buffer in bounded steps and stops at out_max. Contexts come from a struct
 * records_codec and are reset, never re-created, between calls; a context a library fails to
 * create is a failed allocation (fatal, as xmalloc).
 */
#include "log/compress.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/crc32c.h"
#include "base/limits.h"

#include <lz4frame.h>
#include <stdbool.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define STEP_BYTES (64u * 1024u)

/* log2 of LOG_BATCH_PLAIN_BYTES_MAX: the largest zstd window a frame may ask for. */
#define ZSTD_WINDOW_LOG_MAX 26
STATIC_ASSERT((1ull << ZSTD_WINDOW_LOG_MAX) == LOG_BATCH_PLAIN_BYTES_MAX, "zstd window bound");

static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_BYTES 16u

/* Room for the next step of output. At the bound it is one byte more than allowed: a stream
 * that still has its trailer to read may finish in it without output, one with more data fills
 * it, which the caller sees as going over the bound. */
static size_t step_room(struct buf *out, size_t start, size_t out_max)
{
    size_t produced = out->len - start;
    size_t room = out_max > produced ? out_max - produced : 1;
    room = MIN(room, (size_t)STEP_BYTES);
    buf_reserve(out, room);
    return room;
}

static bool over(const struct buf *out, size_t start, size_t out_max)
{
    return out->len - start > out_max;
}

static z_stream *inflate_ctx(struct records_codec *c)
{
    if (c->inflate == NULL) {
        c->inflate = xcalloc(1, sizeof(*c->inflate));
        if (inflateInit2(c->inflate, 16 + MAX_WBITS) != Z_OK)
            base_panic(__FILE__, __LINE__, "zlib: cannot create an inflate stream");
    } else if (inflateReset(c->inflate) != Z_OK) {
        base_panic(__FILE__, __LINE__, "zlib: cannot reset an inflate stream");
    }
    return c->inflate;
}

static int gzip_decompress(struct records_codec *c, const uint8_t *in, size_t len, size_t out_max,
                           struct buf *out)
{
    z_stream *z = inflate_ctx(c);
    size_t start = out->len;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)MIN(len, (size_t)UINT32_MAX);
    int rc;
    do {
        size_t room = step_room(out, start, out_max);
        z->next_out = out->data + out->len;
        z->avail_out = (uInt)room;
        rc = inflate(z, Z_NO_FLUSH);
        out->len += room - z->avail_out;
        if (over(out, start, out_max))
            return ERR_TOO_LARGE;
    } while (rc == Z_OK);
    /* Bytes after the stream are refused as the other codecs refuse them: a consumer reading
     * them as a next stream fails. */
    return rc == Z_STREAM_END && z->avail_in == 0 ? 0 : ERR_CORRUPT;
}

static int gzip_compress(struct records_codec *c, const uint8_t *in, size_t len, struct buf *out)
{
    if (c->deflate == NULL) {
        c->deflate = xcalloc(1, sizeof(*c->deflate));
        if (deflateInit2(c->deflate, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
            base_panic(__FILE__, __LINE__, "zlib: cannot create a deflate stream");
    } else if (deflateReset(c->deflate) != Z_OK) {
        base_panic(__FILE__, __LINE__, "zlib: cannot reset a deflate stream");
    }
    z_stream *z = c->deflate;
    size_t bound = deflateBound(z, (uLong)len);
    buf_reserve(out, bound);
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)len;
    z->next_out = out->data + out->len;
    z->avail_out = (uInt)bound;
    int rc = deflate(z, Z_FINISH);
    out->len += bound - z->avail_out;
    return rc == Z_STREAM_END ? 0 : ERR_INVALID;
}

static int snappy_block(const uint8_t *in, size_t len, size_t out_max, size_t start,
                        struct buf *out)
{
    size_t n = 0;
    if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK)
        return ERR_CORRUPT;
    if (n > out_max - (out->len - start)) {
        /* Too large only if it is a block at all: garbage often claims a huge length. */
        return snappy_validate_compressed_buffer((const char *)in, len) == SNAPPY_OK ? ERR_TOO_LARGE
                                                                                     : ERR_CORRUPT;
    }
    buf_reserve(out, n);
    size_t got = n;
    if (snappy_uncompress((const char *)in, len, (char *)out->data + out->len, &got) != SNAPPY_OK ||
        got != n)
        return ERR_CORRUPT;
    out->len += n;
    return 0;
}

static int snappy_decompress(const uint8_t *in, size_t len, size_t out_max, struct buf *out)
{
    size_t start = out->len;
    if (len < XERIAL_HEADER_BYTES || memcmp(in, xerial_magic, sizeof(xerial_magic)) != 0)
        return snappy_block(in, len, out_max, start, out);
    size_t pos = XERIAL_HEADER_BYTES;
    while (pos < len) {
        if (len - pos < 4)
            return ERR_CORRUPT;
        uint32_t n = be32_load(in + pos);
        pos += 4;
        if (n > len - pos)
            return ERR_CORRUPT;
        int rc = snappy_block(in + pos, n, out_max, start, out);
        if (rc < 0)
            return rc;
        pos += n;
    }
    return 0;
}

static int snappy_compress_xerial(const uint8_t *in, size_t len, struct buf *out)
{
    buf_append(out, xerial_magic, sizeof(xerial_magic));
    buf_put_be32(out, 1); /* version */
    buf_put_be32(out, 1); /* minimum compatible version */
    size_t pos = 0;
    do {
        size_t chunk = MIN(len - pos, (size_t)32 * 1024); /* xerial's block size */
        size_t max = snappy_max_compressed_length(chunk);
        size_t len_at = out->len;
        buf_put_be32(out, 0);
        buf_reserve(out, max);
        size_t n = max;
        if (snappy_compress((const char *)in + pos, chunk, (char *)out->data + out->len, &n) !=
            SNAPPY_OK)
            return ERR_INVALID;
        be32_store(out->data + len_at, (uint32_t)n);
        out->len += n;
        pos += chunk;
    } while (pos < len);
    return 0;
}

static int lz4_decompress(struct records_codec *c, const uint8_t *in, size_t len, size_t out_max,
                          struct buf *out)
{
    if (c->lz4_in == NULL &&
        LZ4F_isError(LZ4F_createDecompressionContext(&c->lz4_in, LZ4F_VERSION)))
        base_panic(__FILE__, __LINE__, "lz4: cannot create a decompression context");
    LZ4F_dctx *d = c->lz4_in;
    /* A context left mid-frame by a failed call starts over. */
    LZ4F_resetDecompressionContext(d);
    size_t start = out->len;
    size_t pos = 0;
    size_t hint = 1;
    int rc = 0;
    while (hint != 0) {
        size_t room = step_room(out, start, out_max);
        size_t dst = room, src = len - pos;
        hint = LZ4F_decompress(d, out->data + out->len, &dst, in + pos, &src, NULL);
        if (LZ4F_isError(hint)) {
            rc = ERR_CORRUPT;
            break;
        }
        out->len += dst;
        pos += src;
        if (over(out, start, out_max)) {
            rc = ERR_TOO_LARGE;
            break;
        }
        if (hint != 0 && pos == len && dst == 0) {
            rc = ERR_CORRUPT; /* the frame needs more input than there is */
            break;
        }
    }
    if (rc == 0 && pos != len)
        rc = ERR_CORRUPT; /* bytes after the frame */
    return rc;
}

static int lz4_compress(const uint8_t *in, size_t len, struct buf *out)
{
    size_t bound = LZ4F_compressFrameBound(len, NULL);
    buf_reserve(out, bound);
    size_t n = LZ4F_compressFrame(out->data + out->len, bound, in, len, NULL);
    if (LZ4F_isError(n))
        return ERR_INVALID;
    out->len += n;
    return 0;
}

static int zstd_decompress(struct records_codec *c, const uint8_t *in, size_t len, size_t out_max,
                           struct buf *out)
{
    if (c->zstd_in == NULL) {
        c->zstd_in = ZSTD_createDCtx();
        if (c->zstd_in == NULL)
            base_panic(__FILE__, __LINE__, "zstd: cannot create a decompression context");
        /* A frame header may claim a window of up to 2 GiB, which the context would allocate;
         * no window is needed beyond the largest output accepted. */
        ZSTD_DCtx_setParameter(c->zstd_in, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
    }
    ZSTD_DCtx *d = c->zstd_in;
    ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
    size_t start = out->len;
    ZSTD_inBuffer ib = {in, len, 0};
    int rc = 0;
    size_t left = 1;
    while (left != 0) {
        size_t room = step_room(out, start, out_max);
        ZSTD_outBuffer ob = {out->data + out->len, room, 0};
        left = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(left)) {
            rc = ERR_CORRUPT;
            break;
        }
        out->len += ob.pos;
        if (over(out, start, out_max)) {
            rc = ERR_TOO_LARGE;
            break;
        }
        if (left != 0 && ib.pos == ib.size && ob.pos < room) {
            rc = ERR_CORRUPT; /* truncated frame */
            break;
        }
    }
    if (rc == 0 && ib.pos != ib.size)
        rc = ERR_CORRUPT; /* bytes after the frame */
    return rc;
}

static int zstd_compress(struct records_codec *c, const uint8_t *in, size_t len, struct buf *out)
{
    if (c->zstd_out == NULL && (c->zstd_out = ZSTD_createCCtx()) == NULL)
        base_panic(__FILE__, __LINE__, "zstd: cannot create a compression context");
    size_t bound = ZSTD_compressBound(len);
    buf_reserve(out, bound);
    size_t n = ZSTD_compressCCtx(c->zstd_out, out->data + out->len, bound, in, len, 3);
    if (ZSTD_isError(n))
        return ERR_INVALID;
    out->len += n;
    return 0;
}

void records_codec_init(struct records_codec *c)
{
    memset(c, 0, sizeof(*c));
    buf_init(&c->plain);
    buf_init(&c->rebuilt);
}

void records_codec_deinit(struct records_codec *c)
{
    if (c->inflate != NULL)
        inflateEnd(c->inflate);
    if (c->deflate != NULL)
        deflateEnd(c->deflate);
    free(c->inflate);
    free(c->deflate);
    LZ4F_freeDecompressionContext(c->lz4_in);
    ZSTD_freeDCtx(c->zstd_in);
    ZSTD_freeCCtx(c->zstd_out);
    buf_deinit(&c->plain);
    buf_deinit(&c->rebuilt);
    memset(c, 0, sizeof(*c));
}

void records_codec_trim(struct records_codec *c)
{
    /* A zstd frame with a large window leaves its buffers in the context. */
    if (c->zstd_in != NULL && ZSTD_sizeof_DCtx(c->zstd_in) > LOG_CODEC_SCRATCH_KEEP_BYTES) {
        ZSTD_freeDCtx(c->zstd_in);
        c->zstd_in = NULL;
    }
    if (c->plain.cap > LOG_CODEC_SCRATCH_KEEP_BYTES)
        buf_deinit(&c->plain);
    if (c->rebuilt.cap > LOG_CODEC_SCRATCH_KEEP_BYTES)
        buf_deinit(&c->rebuilt);
}

int records_codec_decompress(struct records_codec *c, enum batch_codec codec, const uint8_t *in,
                             size_t len, size_t out_max, struct buf *out)
{
    ASSERT(c != NULL && out != NULL && (in != NULL || len == 0));
    size_t start = out->len;
    int rc;
    switch (codec) {
    case BATCH_CODEC_NONE:
        if (len > out_max)
            return ERR_TOO_LARGE;
        buf_append(out, in, len);
        return 0;
    case BATCH_CODEC_GZIP:
        rc = gzip_decompress(c, in, len, out_max, out);
        break;
    case BATCH_CODEC_SNAPPY:
        rc = snappy_decompress(in, len, out_max, out);
        break;
    case BATCH_CODEC_LZ4:
        rc = lz4_decompress(c, in, len, out_max, out);
        break;
    case BATCH_CODEC_ZSTD:
        rc = zstd_decompress(c, in, len, out_max, out);
        break;
    default:
        return ERR_UNSUPPORTED;
    }
    if (rc < 0)
        out->len = start; /* nothing of a failed decompression stays */
    return rc;
}

int records_codec_compress(struct records_codec *c, enum batch_codec codec, const uint8_t *in,
                           size_t len, struct buf *out)
{
    ASSERT(c != NULL && out != NULL && (in != NULL || len == 0));
    switch (codec) {
    case BATCH_CODEC_NONE:
        buf_append(out, in, len);
        return 0;
    case BATCH_CODEC_GZIP:
        return gzip_compress(c, in, len, out);
    case BATCH_CODEC_SNAPPY:
        return snappy_compress_xerial(in, len, out);
    case BATCH_CODEC_LZ4:
        return lz4_compress(in, len, out);
    case BATCH_CODEC_ZSTD:
        return zstd_compress(c, in, len, out);
    default:
        return ERR_UNSUPPORTED;
    }
}

int records_decompress(enum batch_codec codec, const uint8_t *in, size_t len, size_t out_max,
                       struct buf *out)
{
    struct records_codec c;
    records_codec_init(&c);
    int rc = records_codec_decompress(&c, codec, in, len, out_max, out);
    records_codec_deinit(&c);
    return rc;
}

int records_compress(enum batch_codec codec, const uint8_t *in, size_t len, struct buf *out)
{
    struct records_codec c;
    records_codec_init(&c);
    int rc = records_codec_compress(&c, codec, in, len, out);
    records_codec_deinit(&c);
    return rc;
}

/* The records of a decompressed batch, as Kafka's record iterator reads them: exactly
 * recordCount records, the i-th with offset delta i, and nothing after the last. */
static int walk_plain(struct slice records, const struct batch_header *h)
{
    struct batch_rec_iter it;
    batch_rec_iter_init(&it, records);
    struct batch_rec rec;
    int64_t count = 0;
    int rc;
    while (count < h->record_count && (rc = batch_rec_iter_next(&it, &rec)) == 1) {
        if (rec.offset_delta != count)
            return ERR_INVALID;
        count++;
    }
    if (count != h->record_count)
        return ERR_INVALID; /* a record that does not parse, or fewer than the header says */
    if (batch_rec_iter_next(&it, &rec) != 0)
        return ERR_INVALID; /* bytes after the last record */
    return 0;
}

int records_check(struct records_codec *c, const uint8_t *p, const struct batch_header *h,
                  size_t plain_max, struct slice *records)
{
    ASSERT(c != NULL && p != NULL && h != NULL && records != NULL);
    ASSERT(batch_total_bytes(h) >= LOG_BATCH_HEADER_BYTES);
    const uint8_t *payload = p + LOG_BATCH_HEADER_BYTES;
    size_t payload_bytes = batch_total_bytes(h) - LOG_BATCH_HEADER_BYTES;
    if (batch_codec(h) == BATCH_CODEC_NONE) {
        *records = slice_make(payload, payload_bytes);
        return 0;
    }
    buf_reset(&c->plain);
    int rc =
        records_codec_decompress(c, batch_codec(h), payload, payload_bytes, plain_max, &c->plain);
    if (rc == ERR_UNSUPPORTED)
        return rc;
    if (rc == 0)
        rc = walk_plain(buf_slice(&c->plain), h);
    if (rc == 0)
        *records = buf_slice(&c->plain);
    return rc;
}

int records_rebuild(struct records_codec *c, const uint8_t *p, const struct batch_header *h,
                    struct slice records, enum batch_codec target, struct slice *out)
{
    ASSERT(c != NULL && p != NULL && h != NULL && out != NULL);
    ASSERT(records.ptr != NULL || records.len == 0);
    struct buf *b = &c->rebuilt;
    buf_reset(b);
    buf_append(b, p, LOG_BATCH_HEADER_BYTES);
    int rc = records_codec_compress(c, target, records.ptr, records.len, b);
    if (rc < 0)
        return rc;
    if (b->len > LOG_BATCH_BYTES_MAX)
        return ERR_TOO_LARGE;
    uint8_t *hdr = b->data;
    uint16_t attributes = (uint16_t)(((uint16_t)h->attributes & ~BATCH_ATTR_CODEC_MASK) | target);
    be32_store(hdr + BATCH_OFF_LENGTH, (uint32_t)(b->len - BATCH_LENGTH_PREFIX_BYTES));
    be16_store(hdr + BATCH_OFF_ATTRIBUTES, attributes);
    be32_store(hdr + BATCH_OFF_CRC,
               crc32c(hdr + BATCH_OFF_ATTRIBUTES, b->len - BATCH_OFF_ATTRIBUTES));
    *out = buf_slice(b);
    return 0;
}
