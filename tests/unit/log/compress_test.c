/*
 * Codec tests: every codec round-trips random and repetitive payloads; snappy decodes both the
 * xerial framing (Kafka's Java client) and a raw block (librdkafka); truncated streams are
 * refused; the output bound stops a decompression bomb and leaves the buffer as it was.
 *
 * Produce-path steps (issue 8): records_check refuses compressed batches no consumer could
 * decode (item 9: garbage, truncated or trailing compressed bytes; fewer or more records than
 * the header says; a bad varint inside a record; offset deltas not 0, 1, 2, ...; a payload
 * decompressing past the bound), and records_rebuild turns a batch of any codec into any other
 * with the same records and a valid CRC (item 12).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "base/rand.h"
#include "log/compress.h"
#include "log_testutil.h"

#include <snappy-c.h>
#include <zstd.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_seed;

static const enum batch_codec codecs[] = {BATCH_CODEC_NONE, BATCH_CODEC_GZIP, BATCH_CODEC_SNAPPY,
                                          BATCH_CODEC_LZ4, BATCH_CODEC_ZSTD};

/* n bytes: random when `random`, else text with long repeats (what compresses well). */
static void payload(struct rng *rng, struct buf *b, size_t n, bool random)
{
    buf_reset(b);
    uint8_t *p = buf_extend(b, n);
    if (random) {
        rng_fill(rng, p, n);
        return;
    }
    static const char text[] = "chronik record payload 0123456789 ";
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)text[i % (sizeof(text) - 1)];
    for (size_t i = 0; i < n / 512; i++)
        p[rng_below(rng, n)] = (uint8_t)rng_next(rng);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed);
    struct buf in, packed, out;
    buf_init(&in);
    buf_init(&packed);
    buf_init(&out);
    static const size_t sizes[] = {0, 1, 100, 4096, 70000, 300000};
    for (size_t c = 0; c < ARRAY_LEN(codecs); c++) {
        for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
            for (int random = 0; random < 2; random++) {
                payload(&rng, &in, sizes[s], random);
                buf_reset(&packed);
                buf_reset(&out);
                assert_int_equal(records_compress(codecs[c], in.data, in.len, &packed), 0);
                if (codecs[c] != BATCH_CODEC_NONE && !random && sizes[s] >= 4096)
                    assert_true(packed.len < in.len / 2);
                assert_int_equal(
                    records_decompress(codecs[c], packed.data, packed.len, in.len, &out), 0);
                assert_int_equal(out.len, in.len);
                if (in.len > 0)
                    assert_memory_equal(out.data, in.data, in.len);
            }
        }
    }
    buf_deinit(&in);
    buf_deinit(&packed);
    buf_deinit(&out);
}

static void test_snappy_raw_block(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 1);
    struct buf in, out;
    buf_init(&in);
    buf_init(&out);
    payload(&rng, &in, 50000, false);
    size_t max = snappy_max_compressed_length(in.len);
    char *raw = malloc(max);
    assert_int_equal(snappy_compress((const char *)in.data, in.len, raw, &max), SNAPPY_OK);
    assert_int_equal(records_decompress(BATCH_CODEC_SNAPPY, (uint8_t *)raw, max, in.len, &out), 0);
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    free(raw);
    buf_deinit(&in);
    buf_deinit(&out);
}

static void test_truncated_refused(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 2);
    struct buf in, packed, out;
    buf_init(&in);
    buf_init(&packed);
    buf_init(&out);
    payload(&rng, &in, 20000, true);
    for (size_t c = 1; c < ARRAY_LEN(codecs); c++) {
        buf_reset(&packed);
        assert_int_equal(records_compress(codecs[c], in.data, in.len, &packed), 0);
        /* Every cut of the last 64 bytes, and a few deeper ones. */
        for (size_t cut = 1; cut < packed.len; cut += cut < 64 ? 1 : packed.len / 16) {
            buf_reset(&out);
            buf_append(&out, "x", 1);
            int rc = records_decompress(codecs[c], packed.data, packed.len - cut, in.len, &out);
            if (codecs[c] == BATCH_CODEC_SNAPPY && rc == 0) {
                /* xerial framing has no end marker: a cut between blocks is a shorter stream. */
                assert_true(out.len - 1 < in.len);
                continue;
            }
            assert_int_equal(rc, ERR_CORRUPT);
            assert_int_equal(out.len, 1); /* nothing of a failed call stays */
        }
    }
    uint8_t junk[64];
    rng_fill(&rng, junk, sizeof(junk));
    for (size_t c = 1; c < ARRAY_LEN(codecs); c++) {
        buf_reset(&out);
        assert_int_equal(records_decompress(codecs[c], junk, sizeof(junk), 1 << 20, &out),
                         ERR_CORRUPT);
    }
    assert_int_equal(records_decompress((enum batch_codec)5, junk, 4, 100, &out), ERR_UNSUPPORTED);
    buf_deinit(&in);
    buf_deinit(&packed);
    buf_deinit(&out);
}

static void test_bomb_bounded(void **state)
{
    (void)state;
    struct buf in, packed, out;
    buf_init(&in);
    buf_init(&packed);
    buf_init(&out);
    memset(buf_extend(&in, 8u << 20), 0, 8u << 20);
    for (size_t c = 0; c < ARRAY_LEN(codecs); c++) {
        buf_reset(&packed);
        assert_int_equal(records_compress(codecs[c], in.data, in.len, &packed), 0);
        buf_deinit(&out);
        assert_int_equal(records_decompress(codecs[c], packed.data, packed.len, 1u << 20, &out),
                         ERR_TOO_LARGE);
        assert_int_equal(out.len, 0);
        assert_true(out.cap <= (2u << 20)); /* it stopped near the bound */
        assert_int_equal(records_decompress(codecs[c], packed.data, packed.len, in.len, &out), 0);
        assert_int_equal(out.len, in.len);
    }
    buf_deinit(&in);
    buf_deinit(&packed);
    buf_deinit(&out);
}

/* ---- records_check and records_rebuild (issue 8 items 9 and 12) ---------------------------- */

/* A batch with the header of the uncompressed batch `plain` (record count and last offset delta
 * replaced when >= 0), the codec bits set to codec and payload as its records section, with a
 * correct batchLength and CRC: what a client that compressed badly would send. */
static void forge(struct buf *out, const struct buf *plain, enum batch_codec codec,
                  const uint8_t *payload, size_t len, int32_t count)
{
    buf_reset(out);
    buf_append(out, plain->data, LOG_BATCH_HEADER_BYTES);
    buf_append(out, payload, len);
    uint8_t *p = out->data;
    uint16_t attributes = (uint16_t)((be16_load(p + BATCH_OFF_ATTRIBUTES) & ~7u) | codec);
    be16_store(p + BATCH_OFF_ATTRIBUTES, attributes);
    if (count >= 0) {
        be32_store(p + BATCH_OFF_RECORD_COUNT, (uint32_t)count);
        be32_store(p + BATCH_OFF_LAST_DELTA, (uint32_t)(count - 1));
    }
    be32_store(p + BATCH_OFF_LENGTH, (uint32_t)(out->len - BATCH_LENGTH_PREFIX_BYTES));
    struct batch_header h;
    assert_int_equal(batch_header_parse(p, out->len, &h), 0);
    be32_store(p + BATCH_OFF_CRC, batch_compute_crc(p, &h));
}

/* The records section of an uncompressed batch. */
static struct slice section(const struct buf *plain)
{
    return slice_make(plain->data + LOG_BATCH_HEADER_BYTES, plain->len - LOG_BATCH_HEADER_BYTES);
}

/* records_check of the batch in b, which must pass batch_parse (header and CRC). */
static int check(struct records_codec *c, const struct buf *b, size_t plain_max,
                 struct slice *records)
{
    struct batch_header h;
    assert_int_equal(batch_parse(b->data, b->len, &h), 0);
    return records_check(c, b->data, &h, plain_max, records);
}

/* A compressed batch of `plain`'s records whose payload is `records` (which may differ from
 * plain's) compressed as codec, the header saying count records. */
static void forge_packed(struct buf *out, const struct buf *plain, enum batch_codec codec,
                         struct slice records, int32_t count)
{
    struct buf packed;
    buf_init(&packed);
    assert_int_equal(records_compress(codec, records.ptr, records.len, &packed), 0);
    forge(out, plain, codec, packed.data, packed.len, count);
    buf_deinit(&packed);
}

static int32_t header_count(const struct buf *b)
{
    return (int32_t)be32_load(b->data + BATCH_OFF_RECORD_COUNT);
}

static void test_check_refuses_bad_payloads(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 3);
    struct records_codec c;
    records_codec_init(&c);
    struct buf plain, bad, records;
    buf_init(&plain);
    buf_init(&bad);
    buf_init(&records);
    for (int round = 0; round < 20; round++) {
        buf_reset(&plain);
        test_batch_random(&plain, &rng, 40, 300, 1000000, 5000);
        int32_t n = header_count(&plain);
        struct slice sec = section(&plain);
        struct slice got;
        for (size_t k = 1; k < ARRAY_LEN(codecs); k++) {
            enum batch_codec codec = codecs[k];
            /* A good batch passes and gives back its records exactly. */
            forge_packed(&bad, &plain, codec, sec, n);
            assert_int_equal(check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got), 0);
            assert_int_equal(got.len, sec.len);
            assert_memory_equal(got.ptr, sec.ptr, sec.len);
            /* It decompresses past the bound. */
            assert_int_equal(check(&c, &bad, sec.len - 1, &got), ERR_TOO_LARGE);

            /* Garbage: random bytes under a valid CRC. */
            uint8_t junk[200];
            rng_fill(&rng, junk, sizeof(junk));
            forge(&bad, &plain, codec, junk, sizeof(junk), n);
            assert_int_equal(check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got), ERR_CORRUPT);

            /* Truncated: the compressed stream cut short. */
            struct buf packed;
            buf_init(&packed);
            assert_int_equal(records_compress(codec, sec.ptr, sec.len, &packed), 0);
            size_t cut = 1 + rng_below(&rng, MIN(packed.len - 1, (size_t)16));
            forge(&bad, &plain, codec, packed.data, packed.len - cut, n);
            int rc = check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got);
            /* xerial snappy has no end marker: a cut at a block boundary leaves fewer records. */
            assert_true(rc == ERR_CORRUPT || (codec == BATCH_CODEC_SNAPPY && rc == ERR_INVALID));
            /* Bytes after the compressed stream. */
            buf_append(&packed, "junk", 4);
            forge(&bad, &plain, codec, packed.data, packed.len, n);
            assert_int_equal(check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got), ERR_CORRUPT);
            buf_deinit(&packed);

            /* The header says one record more, or one fewer, than the payload holds. */
            forge_packed(&bad, &plain, codec, sec, n + 1);
            assert_int_equal(check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got), ERR_INVALID);
            if (n > 1) {
                forge_packed(&bad, &plain, codec, sec, n - 1);
                assert_int_equal(check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got), ERR_INVALID);
            }

            /* Trailing bytes after the last record, inside the compressed stream. */
            buf_reset(&records);
            buf_append(&records, sec.ptr, sec.len);
            buf_put_u8(&records, 0);
            forge_packed(&bad, &plain, codec, buf_slice(&records), n);
            assert_int_equal(check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got), ERR_INVALID);

            /* A bad varint inside the first record: its key length runs past the record. */
            buf_reset(&records);
            buf_append(&records, sec.ptr, sec.len);
            struct reader r;
            rd_init(&r, records.data, records.len);
            rd_varint(&r);  /* record length */
            rd_u8(&r);      /* attributes */
            rd_varlong(&r); /* timestamp delta */
            rd_varint(&r);  /* offset delta */
            assert_int_equal(rd_err(&r), 0);
            records.data[r.pos - records.data] = 0x7e; /* key length 63 */
            forge_packed(&bad, &plain, codec, buf_slice(&records), n);
            assert_int_equal(check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got), ERR_INVALID);
            /* An overlong varint (ten continuation bytes) as the first record's length. */
            buf_reset(&records);
            memset(buf_extend(&records, 10), 0xff, 10);
            buf_append(&records, sec.ptr, sec.len);
            forge_packed(&bad, &plain, codec, buf_slice(&records), n);
            assert_int_equal(check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got), ERR_INVALID);
        }
    }
    records_codec_deinit(&c);
    buf_deinit(&plain);
    buf_deinit(&bad);
    buf_deinit(&records);
}

/* Offset deltas 0, 0 (or 1, 0) where a client writes 0, 1: Kafka would renumber them; the
 * broker refuses them, as no v2 client writes them. */
static void test_check_refuses_bad_offset_deltas(void **state)
{
    (void)state;
    const struct batch_record recs[2] = {
        {.key = slice_make("a", 1), .value = slice_make("x", 1), .timestamp_ms = 10},
        {.key = slice_make("b", 1), .value = slice_make("y", 1), .timestamp_ms = 11},
    };
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    struct buf plain, bad, records;
    buf_init(&plain);
    buf_init(&bad);
    buf_init(&records);
    assert_int_equal(batch_build(&plain, &opts, recs, 2), 0);
    struct records_codec c;
    records_codec_init(&c);
    struct slice got;
    /* Record layout from the builder: length, attributes, timestamp delta, offset delta. */
    struct slice sec = section(&plain);
    size_t first_len = (size_t)sec.ptr[0] / 2 + 1;
    for (int which = 0; which < 2; which++) {
        buf_reset(&records);
        buf_append(&records, sec.ptr, sec.len);
        size_t at = which == 0 ? 3 : first_len + 3;
        assert_int_equal(records.data[at], which == 0 ? 0 : 2); /* zigzag of 0 and 1 */
        records.data[at] = which == 0 ? 2 : 0;
        forge_packed(&bad, &plain, BATCH_CODEC_LZ4, buf_slice(&records), 2);
        assert_int_equal(check(&c, &bad, LOG_BATCH_PLAIN_BYTES_MAX, &got), ERR_INVALID);
    }
    records_codec_deinit(&c);
    buf_deinit(&plain);
    buf_deinit(&bad);
    buf_deinit(&records);
}

/* An uncompressed batch is checked where it lies: no copy. */
static void test_check_uncompressed_in_place(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 4);
    struct buf plain;
    buf_init(&plain);
    test_batch_random(&plain, &rng, 10, 100, 0, 10);
    struct records_codec c;
    records_codec_init(&c);
    struct slice got;
    assert_int_equal(check(&c, &plain, LOG_BATCH_PLAIN_BYTES_MAX, &got), 0);
    assert_ptr_equal(got.ptr, plain.data + LOG_BATCH_HEADER_BYTES);
    assert_int_equal(got.len, plain.len - LOG_BATCH_HEADER_BYTES);
    assert_int_equal(c.plain.cap, 0);
    records_codec_deinit(&c);
    buf_deinit(&plain);
}

/* Every codec pair: the rebuilt batch parses with a valid CRC, carries the target codec, the
 * same header fields otherwise, and decompresses to the very same records. */
static void test_rebuild_every_codec_pair(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 5);
    struct records_codec c;
    records_codec_init(&c);
    struct buf plain, src, rebuilt;
    buf_init(&plain);
    buf_init(&src);
    buf_init(&rebuilt);
    for (int round = 0; round < 10; round++) {
        buf_reset(&plain);
        test_batch_random(&plain, &rng, 50, round < 5 ? 200 : 5000, 1700000000000, 100000);
        struct slice sec = section(&plain);
        for (size_t a = 0; a < ARRAY_LEN(codecs); a++) {
            for (size_t z = 0; z < ARRAY_LEN(codecs); z++) {
                if (codecs[a] == BATCH_CODEC_NONE)
                    forge(&src, &plain, BATCH_CODEC_NONE, sec.ptr, sec.len, -1);
                else
                    forge_packed(&src, &plain, codecs[a], sec, -1);
                struct slice records;
                assert_int_equal(check(&c, &src, LOG_BATCH_PLAIN_BYTES_MAX, &records), 0);
                struct batch_header h;
                assert_int_equal(batch_parse(src.data, src.len, &h), 0);
                struct slice out;
                assert_int_equal(records_rebuild(&c, src.data, &h, records, codecs[z], &out), 0);
                buf_reset(&rebuilt);
                buf_append(&rebuilt, out.ptr, out.len);

                struct batch_header nh;
                assert_int_equal(batch_parse(rebuilt.data, rebuilt.len, &nh), 0); /* CRC */
                assert_int_equal(batch_total_bytes(&nh), rebuilt.len);
                assert_int_equal(batch_codec(&nh), codecs[z]);
                assert_int_equal(nh.attributes & ~BATCH_ATTR_CODEC_MASK,
                                 h.attributes & ~BATCH_ATTR_CODEC_MASK);
                assert_int_equal(nh.base_offset, h.base_offset);
                assert_int_equal(nh.record_count, h.record_count);
                assert_int_equal(nh.last_offset_delta, h.last_offset_delta);
                assert_int_equal(nh.base_timestamp_ms, h.base_timestamp_ms);
                assert_int_equal(nh.max_timestamp_ms, h.max_timestamp_ms);
                assert_int_equal(nh.producer_id, h.producer_id);
                assert_int_equal(nh.base_sequence, h.base_sequence);
                /* The bytes from the first 12 through the CRC field match, but for the length. */
                assert_memory_equal(rebuilt.data + BATCH_OFF_LEADER_EPOCH,
                                    plain.data + BATCH_OFF_LEADER_EPOCH,
                                    BATCH_OFF_CRC - BATCH_OFF_LEADER_EPOCH);
                struct slice again;
                assert_int_equal(check(&c, &rebuilt, LOG_BATCH_PLAIN_BYTES_MAX, &again), 0);
                assert_int_equal(again.len, sec.len);
                assert_memory_equal(again.ptr, sec.ptr, sec.len);
            }
        }
    }
    records_codec_deinit(&c);
    buf_deinit(&plain);
    buf_deinit(&src);
    buf_deinit(&rebuilt);
}

/* One codec state serves every codec in turn, also after a failure left a context mid-stream,
 * and trimming lets go of a scratch buffer only past its bound. */
static void test_codec_reuse(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 6);
    struct records_codec c;
    records_codec_init(&c);
    struct buf in, packed, out;
    buf_init(&in);
    buf_init(&packed);
    buf_init(&out);
    for (int i = 0; i < 200; i++) {
        enum batch_codec codec = codecs[1 + rng_below(&rng, ARRAY_LEN(codecs) - 1)];
        payload(&rng, &in, 1 + rng_below(&rng, 100000), rng_chance(&rng, 1, 2));
        buf_reset(&packed);
        assert_int_equal(records_codec_compress(&c, codec, in.data, in.len, &packed), 0);
        buf_reset(&out);
        if (rng_chance(&rng, 1, 3)) {
            int rc = records_codec_decompress(&c, codec, packed.data, packed.len / 2, in.len, &out);
            assert_true(rc == ERR_CORRUPT || codec == BATCH_CODEC_SNAPPY);
            buf_reset(&out);
        }
        assert_int_equal(records_codec_decompress(&c, codec, packed.data, packed.len, in.len, &out),
                         0);
        assert_int_equal(out.len, in.len);
        assert_memory_equal(out.data, in.data, in.len);
    }
    buf_reserve(&c.plain, 1024);
    records_codec_trim(&c);
    assert_true(c.plain.cap >= 1024);
    buf_reserve(&c.plain, LOG_CODEC_SCRATCH_KEEP_BYTES + 1);
    records_codec_trim(&c);
    assert_int_equal(c.plain.cap, 0);
    records_codec_deinit(&c);
    buf_deinit(&in);
    buf_deinit(&packed);
    buf_deinit(&out);
}

/* A zstd frame of unknown size with window log w, as a streaming compressor writes it. */
static void zstd_frame(struct buf *out, const struct buf *in, int w)
{
    ZSTD_CCtx *z = ZSTD_createCCtx();
    assert_non_null(z);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_windowLog, w)));
    buf_reset(out);
    buf_reserve(out, ZSTD_compressBound(in->len) + 64);
    ZSTD_outBuffer ob = {out->data, out->cap, 0};
    ZSTD_inBuffer ib = {in->data, in->len, 0};
    /* Input given before the end: the compressor does not know the size, keeps the window. */
    assert_false(ZSTD_isError(ZSTD_compressStream2(z, &ob, &ib, ZSTD_e_continue)));
    assert_int_equal(ib.pos, ib.size);
    assert_int_equal(ZSTD_compressStream2(z, &ob, &ib, ZSTD_e_end), 0);
    out->len = ob.pos;
    ZSTD_freeCCtx(z);
}

/* A tiny zstd frame may ask for a window of up to 2 GiB, which the decompression context would
 * allocate: frames asking for more than the plain bound are refused, and a context grown by a
 * large window is let go by trim. */
static void test_zstd_window_bounded(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 7);
    struct records_codec c;
    records_codec_init(&c);
    struct buf in, packed, out;
    buf_init(&in);
    buf_init(&packed);
    buf_init(&out);
    payload(&rng, &in, 3u << 20, false);
    zstd_frame(&packed, &in, 27);
    assert_int_equal(
        records_codec_decompress(&c, BATCH_CODEC_ZSTD, packed.data, packed.len, 64u << 20, &out),
        ERR_CORRUPT);
    zstd_frame(&packed, &in, 26);
    assert_int_equal(
        records_codec_decompress(&c, BATCH_CODEC_ZSTD, packed.data, packed.len, 64u << 20, &out),
        0);
    assert_int_equal(out.len, in.len);
    assert_memory_equal(out.data, in.data, in.len);
    records_codec_trim(&c);
    assert_true(c.zstd_in == NULL || ZSTD_sizeof_DCtx(c.zstd_in) <= LOG_CODEC_SCRATCH_KEEP_BYTES);
    records_codec_deinit(&c);
    buf_deinit(&in);
    buf_deinit(&packed);
    buf_deinit(&out);
}

int main(void)
{
    g_seed = test_seed("log_compress_test", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_snappy_raw_block),
        cmocka_unit_test(test_truncated_refused),
        cmocka_unit_test(test_bomb_bounded),
        cmocka_unit_test(test_check_refuses_bad_payloads),
        cmocka_unit_test(test_check_refuses_bad_offset_deltas),
        cmocka_unit_test(test_check_uncompressed_in_place),
        cmocka_unit_test(test_rebuild_every_codec_pair),
        cmocka_unit_test(test_codec_reuse),
        cmocka_unit_test(test_zstd_window_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
