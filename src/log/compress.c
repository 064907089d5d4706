/*
 * Codec glue over zlib, libsnappy, liblz4 and libzstd (Debian packages). Each direction streams
 * into the caller's buffer in bounded steps and stops at out_max.
 */
#include "log/compress.h"

#include "base/assert.h"
#include "base/error.h"

#include <lz4frame.h>
#include <stdbool.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define STEP_BYTES (64u * 1024u)

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

static int gzip_decompress(const uint8_t *in, size_t len, size_t out_max, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return ERR_CORRUPT;
    size_t start = out->len;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)MIN(len, (size_t)UINT32_MAX);
    int rc;
    do {
        size_t room = step_room(out, start, out_max);
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)room;
        rc = inflate(&z, Z_NO_FLUSH);
        out->len += room - z.avail_out;
        if (over(out, start, out_max)) {
            inflateEnd(&z);
            return ERR_TOO_LARGE;
        }
    } while (rc == Z_OK);
    inflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : ERR_CORRUPT;
}

static int gzip_compress(const uint8_t *in, size_t len, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return ERR_INVALID;
    size_t bound = deflateBound(&z, (uLong)len);
    buf_reserve(out, bound);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = out->data + out->len;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    out->len += bound - z.avail_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : ERR_INVALID;
}

static int snappy_block(const uint8_t *in, size_t len, size_t out_max, size_t start,
                        struct buf *out)
{
    size_t n = 0;
    if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK)
        return ERR_CORRUPT;
    if (n > out_max - (out->len - start))
        return ERR_TOO_LARGE;
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

static int lz4_decompress(const uint8_t *in, size_t len, size_t out_max, struct buf *out)
{
    LZ4F_dctx *d = NULL;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&d, LZ4F_VERSION)))
        return ERR_CORRUPT;
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
    LZ4F_freeDecompressionContext(d);
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

static int zstd_decompress(const uint8_t *in, size_t len, size_t out_max, struct buf *out)
{
    ZSTD_DStream *d = ZSTD_createDStream();
    if (d == NULL)
        return ERR_CORRUPT;
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
    ZSTD_freeDStream(d);
    return rc;
}

static int zstd_compress(const uint8_t *in, size_t len, struct buf *out)
{
    size_t bound = ZSTD_compressBound(len);
    buf_reserve(out, bound);
    size_t n = ZSTD_compress(out->data + out->len, bound, in, len, 3);
    if (ZSTD_isError(n))
        return ERR_INVALID;
    out->len += n;
    return 0;
}

int records_decompress(enum batch_codec codec, const uint8_t *in, size_t len, size_t out_max,
                       struct buf *out)
{
    size_t start = out->len;
    int rc;
    switch (codec) {
    case BATCH_CODEC_NONE:
        if (len > out_max)
            return ERR_TOO_LARGE;
        buf_append(out, in, len);
        return 0;
    case BATCH_CODEC_GZIP:
        rc = gzip_decompress(in, len, out_max, out);
        break;
    case BATCH_CODEC_SNAPPY:
        rc = snappy_decompress(in, len, out_max, out);
        break;
    case BATCH_CODEC_LZ4:
        rc = lz4_decompress(in, len, out_max, out);
        break;
    case BATCH_CODEC_ZSTD:
        rc = zstd_decompress(in, len, out_max, out);
        break;
    default:
        return ERR_UNSUPPORTED;
    }
    if (rc < 0)
        out->len = start; /* nothing of a failed decompression stays */
    return rc;
}

int records_compress(enum batch_codec codec, const uint8_t *in, size_t len, struct buf *out)
{
    switch (codec) {
    case BATCH_CODEC_NONE:
        buf_append(out, in, len);
        return 0;
    case BATCH_CODEC_GZIP:
        return gzip_compress(in, len, out);
    case BATCH_CODEC_SNAPPY:
        return snappy_compress_xerial(in, len, out);
    case BATCH_CODEC_LZ4:
        return lz4_compress(in, len, out);
    case BATCH_CODEC_ZSTD:
        return zstd_compress(in, len, out);
    default:
        return ERR_UNSUPPORTED;
    }
}
