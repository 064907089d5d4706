/*
 * RecordBatch v2 tests: builder round trips, kafkajs golden batches, every single-byte
 * corruption of the CRC'd region, every truncation, hostile lengths and counts, unknown magic
 * and codecs, bad lastOffsetDelta, record count mismatches, stamping and the batch iterator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/compiler.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/limits.h"
#include "log/batch.h"
#include "log/compress.h"
#include "log_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_seed;

/* Recomputes the CRC after a test changed bytes inside the CRC'd region on purpose. */
static void recrc(uint8_t *p, size_t len)
{
    be32_store(p + BATCH_OFF_CRC, crc32c(p + BATCH_OFF_ATTRIBUTES, len - BATCH_OFF_ATTRIBUTES));
}

static void build_simple(struct buf *b, uint32_t n, int16_t attributes)
{
    struct batch_record recs[8];
    assert_true(n <= 8);
    for (uint32_t i = 0; i < n; i++) {
        recs[i] = (struct batch_record){
            .key = slice_make("k", 1),
            .value = slice_make("value", 5),
            .timestamp_ms = 1000 + i,
        };
    }
    struct batch_build_opts o = {.attributes = attributes, .producer_id = -1};
    assert_int_equal(batch_build(b, &o, recs, n), 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed);
    struct buf b;
    buf_init(&b);
    for (int iter = 0; iter < 500; iter++) {
        buf_reset(&b);
        test_batch_random(&b, &rng, 20, 300, 1700000000000, 5000);
        struct batch_header h;
        assert_int_equal(batch_parse(b.data, b.len, &h), 0);
        assert_int_equal(batch_total_bytes(&h), b.len);
        assert_int_equal(h.record_count, h.last_offset_delta + 1);
        assert_true(h.max_timestamp_ms >= h.base_timestamp_ms ||
                    h.max_timestamp_ms >= 1700000000000);
        assert_int_equal(batch_codec(&h), BATCH_CODEC_NONE);
    }
    buf_deinit(&b);
}

static void test_builder_fields(void **state)
{
    (void)state;
    struct batch_record_header hd = {.key = slice_make("hk", 2), .value = slice_make(NULL, 0)};
    struct batch_record recs[3] = {
        {.key = slice_make(NULL, 0), .value = slice_make("a", 1), .timestamp_ms = 50},
        {.key = slice_make("k", 1),
         .value = slice_make(NULL, 0),
         .timestamp_ms = 90,
         .headers = &hd,
         .header_count = 1},
        {.key = slice_make("k", 1), .value = slice_make("ccc", 3), .timestamp_ms = 20},
    };
    struct batch_build_opts o = {.base_offset = 7,
                                 .leader_epoch = 3,
                                 .producer_id = 11,
                                 .producer_epoch = 2,
                                 .base_sequence = 5,
                                 .attributes = BATCH_ATTR_TRANSACTIONAL};
    struct buf b;
    buf_init(&b);
    assert_int_equal(batch_build(&b, &o, recs, 3), 0);
    struct batch_header h;
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    assert_int_equal(h.base_offset, 7);
    assert_int_equal(h.leader_epoch, 3);
    assert_int_equal(h.magic, 2);
    assert_int_equal(h.last_offset_delta, 2);
    assert_int_equal(h.base_timestamp_ms, 50);
    assert_int_equal(h.max_timestamp_ms, 90);
    assert_int_equal(h.producer_id, 11);
    assert_int_equal(h.producer_epoch, 2);
    assert_int_equal(h.base_sequence, 5);
    assert_int_equal(h.record_count, 3);
    assert_true(batch_is_transactional(&h));
    assert_false(batch_is_control(&h));
    assert_int_equal(h.crc, batch_compute_crc(b.data, &h));
    /* Builder refuses what it cannot encode. */
    struct buf e;
    buf_init(&e);
    assert_int_equal(batch_build(&e, &o, recs, 0), ERR_INVALID);
    o.attributes = BATCH_CODEC_GZIP;
    assert_int_equal(batch_build(&e, &o, recs, 1), ERR_INVALID);
    buf_deinit(&e);
    buf_deinit(&b);
}

static void test_every_byte_corruption(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 1);
    struct buf b;
    buf_init(&b);
    test_batch_random(&b, &rng, 5, 40, 1000, 100);
    uint64_t cases = 0;
    /* Every position from the CRC field on, every other value: the CRC catches it. */
    for (size_t i = BATCH_OFF_CRC; i < b.len; i++) {
        uint8_t orig = b.data[i];
        for (int v = 0; v < 256; v++) {
            if (v == orig)
                continue;
            b.data[i] = (uint8_t)v;
            struct batch_header h;
            int rc = batch_parse(b.data, b.len, &h);
            if (rc == 0)
                fail_msg("corruption at byte %zu to %d not detected", i, v);
            cases++;
        }
        b.data[i] = orig;
    }
    struct batch_header h;
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    assert_true(cases == (b.len - BATCH_OFF_CRC) * 255);
    buf_deinit(&b);
}

static void test_every_truncation(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 2);
    struct buf b;
    buf_init(&b);
    test_batch_random(&b, &rng, 8, 100, 1000, 100);
    for (size_t len = 0; len < b.len; len++) {
        struct batch_header h;
        int rc = batch_parse(b.data, len, &h);
        assert_int_equal(rc, ERR_INCOMPLETE);
    }
    buf_deinit(&b);
}

static int parse_after(struct buf *b, size_t off, uint32_t v32, int width)
{
    if (width == 4)
        be32_store(b->data + off, v32);
    else
        b->data[off] = (uint8_t)v32;
    struct batch_header h;
    return batch_parse(b->data, b->len, &h);
}

static void test_hostile_header(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    build_simple(&b, 3, 0);
    struct buf c;
    buf_init(&c);
    buf_append(&c, b.data, b.len);
    assert_int_equal(parse_after(&c, BATCH_OFF_LENGTH, 0xffffffffu, 4), ERR_CORRUPT);
    memcpy(c.data, b.data, b.len);
    assert_int_equal(parse_after(&c, BATCH_OFF_LENGTH, 48, 4), ERR_CORRUPT);
    memcpy(c.data, b.data, b.len);
    assert_int_equal(parse_after(&c, BATCH_OFF_LENGTH, LOG_BATCH_BYTES_MAX, 4), ERR_TOO_LARGE);
    memcpy(c.data, b.data, b.len);
    assert_int_equal(parse_after(&c, BATCH_OFF_LENGTH, 0x7fffffff, 4), ERR_TOO_LARGE);
    /* A length that claims more than is present is incomplete, never read past the end. */
    memcpy(c.data, b.data, b.len);
    assert_int_equal(parse_after(&c, BATCH_OFF_LENGTH, (uint32_t)b.len, 4), ERR_INCOMPLETE);
    /* A length that claims less cuts records: CRC (and the record walk) reject it. */
    memcpy(c.data, b.data, b.len);
    assert_int_not_equal(parse_after(&c, BATCH_OFF_LENGTH, (uint32_t)b.len - 13, 4), 0);
    for (int magic = 0; magic < 256; magic++) {
        if (magic == 2)
            continue;
        memcpy(c.data, b.data, b.len);
        assert_int_equal(parse_after(&c, BATCH_OFF_MAGIC, (uint32_t)magic, 1), ERR_UNSUPPORTED);
    }
    for (int codec = 5; codec < 8; codec++) {
        memcpy(c.data, b.data, b.len);
        be16_store(c.data + BATCH_OFF_ATTRIBUTES, (uint16_t)codec);
        recrc(c.data, c.len);
        struct batch_header h;
        assert_int_equal(batch_parse(c.data, c.len, &h), ERR_UNSUPPORTED);
    }
    /* Negative base offset. */
    memcpy(c.data, b.data, b.len);
    be64_store(c.data, (uint64_t)-5);
    struct batch_header h;
    assert_int_equal(batch_parse(c.data, c.len, &h), ERR_CORRUPT);
    buf_deinit(&c);
    buf_deinit(&b);
}

/* Changes a field inside the CRC'd region, fixes the CRC, and parses. */
static int parse_tampered(const struct buf *b, size_t off, uint32_t v)
{
    struct buf c;
    buf_init(&c);
    buf_append(&c, b->data, b->len);
    be32_store(c.data + off, v);
    recrc(c.data, c.len);
    struct batch_header h;
    int rc = batch_parse(c.data, c.len, &h);
    buf_deinit(&c);
    return rc;
}

static void test_counts_and_deltas(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    build_simple(&b, 3, 0);
    assert_int_equal(parse_tampered(&b, BATCH_OFF_RECORD_COUNT, 2), ERR_CORRUPT);
    assert_int_equal(parse_tampered(&b, BATCH_OFF_RECORD_COUNT, 4), ERR_CORRUPT);
    assert_int_equal(parse_tampered(&b, BATCH_OFF_RECORD_COUNT, 0xffffffffu), ERR_CORRUPT);
    assert_int_equal(parse_tampered(&b, BATCH_OFF_RECORD_COUNT, 0x7fffffffu), ERR_CORRUPT);
    assert_int_equal(parse_tampered(&b, BATCH_OFF_LAST_DELTA, 1), ERR_CORRUPT);
    assert_int_equal(parse_tampered(&b, BATCH_OFF_LAST_DELTA, 0xffffffffu), ERR_CORRUPT);
    /* A larger lastOffsetDelta is legal (compaction leaves gaps at the end). */
    assert_int_equal(parse_tampered(&b, BATCH_OFF_LAST_DELTA, 9), 0);
    buf_deinit(&b);
}

/* Rewrites the first record's varint at rec_off (after the record length) and checks. */
static void test_hostile_records(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    build_simple(&b, 2, 0);
    /* Record 0 layout: len varint, attrs, tsDelta(0 -> 1 byte), offsetDelta(1 byte),
     * keyLen(1 byte), key, valueLen, value, headerCount. */
    size_t rec = LOG_BATCH_HEADER_BYTES;
    size_t fields[] = {rec, rec + 3, rec + 4, rec + 6, rec + 12};
    const uint8_t hostile[] = {0x7f, 0x7e, 0x01, 0x03, 0x40, 0x3f};
    for (size_t f = 0; f < ARRAY_LEN(fields); f++) {
        for (size_t v = 0; v < sizeof(hostile); v++) {
            struct buf c;
            buf_init(&c);
            buf_append(&c, b.data, b.len);
            if (c.data[fields[f]] == hostile[v]) {
                buf_deinit(&c);
                continue;
            }
            c.data[fields[f]] = hostile[v];
            recrc(c.data, c.len);
            struct batch_header h;
            int rc = batch_parse(c.data, c.len, &h);
            if (rc != ERR_CORRUPT)
                fail_msg("field at %zu value %#x: rc %d", fields[f], hostile[v], rc);
            buf_deinit(&c);
        }
    }
    /* An over-long varint (11 continuation bytes) in the record length. */
    struct buf c;
    buf_init(&c);
    buf_append(&c, b.data, LOG_BATCH_HEADER_BYTES);
    for (int i = 0; i < 11; i++)
        buf_put_u8(&c, 0xff);
    be32_store(c.data + BATCH_OFF_LENGTH, (uint32_t)(c.len - 12));
    recrc(c.data, c.len);
    struct batch_header h;
    assert_int_equal(batch_parse(c.data, c.len, &h), ERR_CORRUPT);
    buf_deinit(&c);
    buf_deinit(&b);
}

static void test_duplicate_offset_delta(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    build_simple(&b, 2, 0);
    /* Both records encode to the same length; make record 1's offsetDelta 0 like record 0. */
    size_t rec0 = LOG_BATCH_HEADER_BYTES;
    size_t rec_len = (size_t)(zigzag32_decode(b.data[rec0])) + 1;
    size_t rec1 = rec0 + rec_len;
    assert_int_equal(b.data[rec1 + 3], zigzag32_encode(1));
    b.data[rec1 + 3] = 0;
    recrc(b.data, b.len);
    struct batch_header h;
    assert_int_equal(batch_parse(b.data, b.len, &h), ERR_CORRUPT);
    buf_deinit(&b);
}

static void test_control_batches(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    build_simple(&b, 1, BATCH_ATTR_CONTROL);
    struct batch_header h;
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    assert_true(batch_is_control(&h));
    buf_reset(&b);
    build_simple(&b, 2, BATCH_ATTR_CONTROL | BATCH_ATTR_TRANSACTIONAL);
    assert_int_equal(batch_parse(b.data, b.len, &h), ERR_CORRUPT);
    buf_deinit(&b);
}

static void test_stamp(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    build_simple(&b, 3, 0);
    batch_stamp(b.data, 123456789012, 42);
    struct batch_header h;
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    assert_int_equal(h.base_offset, 123456789012);
    assert_int_equal(h.leader_epoch, 42);
    assert_int_equal(batch_last_offset(&h), 123456789014);
    buf_deinit(&b);
}

static void test_iterator(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, g_seed + 3);
    struct buf b;
    buf_init(&b);
    size_t sizes[10];
    for (int i = 0; i < 10; i++) {
        size_t before = b.len;
        test_batch_random(&b, &rng, 4, 64, 0, 10);
        sizes[i] = b.len - before;
    }
    struct batch_iter it;
    batch_iter_init(&it, buf_slice(&b));
    struct slice s;
    struct batch_header h;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(batch_iter_next(&it, &s, &h), 1);
        assert_int_equal(s.len, sizes[i]);
    }
    assert_int_equal(batch_iter_next(&it, &s, &h), 0);
    /* A trailing partial batch is reported, the good ones before it are not lost. */
    batch_iter_init(&it, slice_make(b.data, b.len - 1));
    for (int i = 0; i < 9; i++)
        assert_int_equal(batch_iter_next(&it, &s, &h), 1);
    assert_int_equal(batch_iter_next(&it, &s, &h), ERR_INCOMPLETE);
    buf_deinit(&b);
}

/* Loads a Node.js Buffer JSON fixture: {"type":"Buffer","data":[1,2,...]}. */
static void load_fixture(const char *name, struct buf *out)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", CHRONIK_GOLDEN_DIR, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    char *p = strchr(text, '[');
    assert_non_null(p);
    p++;
    while (*p && *p != ']') {
        char *end;
        long v = strtol(p, &end, 10);
        assert_true(end != p && v >= 0 && v <= 255);
        buf_put_u8(out, (uint8_t)v);
        p = end;
        if (*p == ',')
            p++;
    }
}

/* Decompresses a batch's records section as `codec` and counts its records, checking that the
 * offset deltas run 0, 1, 2, ... as a client writes them. */
static int32_t count_records(const uint8_t *p, const struct batch_header *h, enum batch_codec codec)
{
    struct buf plain;
    buf_init(&plain);
    assert_int_equal(records_decompress(codec, p + LOG_BATCH_HEADER_BYTES,
                                        batch_total_bytes(h) - LOG_BATCH_HEADER_BYTES,
                                        LOG_BATCH_BYTES_MAX, &plain),
                     0);
    struct batch_rec_iter it;
    batch_rec_iter_init(&it, buf_slice(&plain));
    struct batch_rec rec;
    int32_t n = 0;
    int rc;
    while ((rc = batch_rec_iter_next(&it, &rec)) == 1) {
        assert_int_equal(rec.offset_delta, n);
        assert_non_null(rec.value.ptr);
        n++;
    }
    assert_int_equal(rc, 0);
    buf_deinit(&plain);
    return n;
}

/* The record iterator gives back exactly what the builder wrote: keys, values, nulls, empty
 * fields, headers and timestamp deltas. */
static void test_record_iterator(void **state)
{
    (void)state;
    const struct batch_record_header hdrs[2] = {
        {.key = slice_make("h1", 2), .value = slice_make("v1", 2)},
        {.key = slice_make("h2", 2), .value = slice_make(NULL, 0)},
    };
    const struct batch_record recs[4] = {
        {.key = slice_make("key0", 4), .value = slice_make("value0", 6), .timestamp_ms = 5000},
        {.key = slice_make(NULL, 0), .value = slice_make("v", 1), .timestamp_ms = 5007},
        {.key = slice_make("", 0), .value = slice_make(NULL, 0), .timestamp_ms = 4990},
        {.key = slice_make("k3", 2),
         .value = slice_make("", 0),
         .timestamp_ms = 5100,
         .headers = hdrs,
         .header_count = 2},
    };
    struct buf b;
    buf_init(&b);
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    assert_int_equal(batch_build(&b, &opts, recs, 4), 0);
    struct batch_header h;
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    struct batch_rec_iter it;
    batch_rec_iter_init(
        &it, slice_make(b.data + LOG_BATCH_HEADER_BYTES, b.len - LOG_BATCH_HEADER_BYTES));
    struct batch_rec rec;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(batch_rec_iter_next(&it, &rec), 1);
        assert_int_equal(rec.offset_delta, i);
        assert_int_equal(h.base_timestamp_ms + rec.timestamp_delta, recs[i].timestamp_ms);
        assert_int_equal(rec.key.ptr == NULL, recs[i].key.ptr == NULL);
        assert_int_equal(rec.value.ptr == NULL, recs[i].value.ptr == NULL);
        assert_true(slice_eq(rec.key, recs[i].key));
        assert_true(slice_eq(rec.value, recs[i].value));
        assert_int_equal(rec.header_count, (int32_t)recs[i].header_count);
    }
    assert_true(rec.headers.len > 0);
    assert_int_equal(batch_rec_iter_next(&it, &rec), 0);
    /* Bytes that are not records: the error is reported and sticks. */
    batch_rec_iter_init(&it, slice_make("\x7f\x01", 2));
    assert_int_equal(batch_rec_iter_next(&it, &rec), ERR_CORRUPT);
    assert_int_equal(batch_rec_iter_next(&it, &rec), ERR_CORRUPT);
    buf_deinit(&b);
}

static void check_golden(const char *name, enum batch_codec codec)
{
    struct buf b;
    buf_init(&b);
    load_fixture(name, &b);
    struct batch_header h;
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    assert_int_equal(batch_codec(&h), codec);
    assert_int_equal(batch_total_bytes(&h), b.len);
    assert_true(h.record_count >= 1);
    assert_int_equal(count_records(b.data, &h, codec), h.record_count);
    /* Stamping keeps a real client's batch valid; a flipped payload byte does not. */
    batch_stamp(b.data, 99, 7);
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    b.data[b.len - 1] ^= 0x01;
    assert_int_equal(batch_parse(b.data, b.len, &h), ERR_CORRUPT);
    buf_deinit(&b);
}

static void test_kafkajs_golden(void **state)
{
    (void)state;
    check_golden("v0_recordbatch.json", BATCH_CODEC_GZIP);
    /* kafkajs's "zstd" fixture carries a zstd frame as records but attributes 0 (no codec)
     * under a valid CRC: the header and CRC pass, the record walk must refuse it. */
    struct buf b;
    buf_init(&b);
    load_fixture("v0_recordbatch_zstd.json", &b);
    struct batch_header h;
    assert_int_equal(batch_header_parse(b.data, b.len, &h), 0);
    assert_int_equal(batch_compute_crc(b.data, &h), h.crc);
    assert_int_equal(batch_codec(&h), BATCH_CODEC_NONE);
    assert_int_equal(batch_parse(b.data, b.len, &h), ERR_CORRUPT);
    /* Declared as zstd (CRC fixed up) it is accepted without decompressing. */
    be16_store(b.data + BATCH_OFF_ATTRIBUTES, BATCH_CODEC_ZSTD);
    recrc(b.data, b.len);
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    assert_int_equal(batch_codec(&h), BATCH_CODEC_ZSTD);
    /* Its payload is a real zstd frame of records. */
    assert_int_equal(count_records(b.data, &h, BATCH_CODEC_ZSTD), h.record_count);
    buf_deinit(&b);
}

/* Every record field at each varint width the record walk decodes inline (one and two bytes)
 * and past it (three bytes and more), at the boundaries between widths: the walk accepts the
 * batch and the iterator returns each field exactly. Then the second byte of a two-byte value
 * length is made a continuation byte at the very end of the batch: corrupt, not a read past it. */
static void test_varint_widths(void **state)
{
    (void)state;
    enum { RECORDS = 9000 };
    static const size_t lens[] = {0, 1, 63, 64, 65, 8191, 8192, 8193, 70000};
    static const int64_t ts_deltas[] = {-65, -64, 0, 63, 64, 8191, 8192, 1 << 20, -(1 << 20)};
    struct batch_record *recs = xcalloc(RECORDS, sizeof(*recs));
    uint8_t *payload = xcalloc(1, 70000);
    for (size_t i = 0; i < 70000; i++)
        payload[i] = (uint8_t)(i * 13);
    const int64_t base_ts = 1700000000000;
    for (uint32_t i = 0; i < RECORDS; i++) {
        /* Every pair of key and value widths once, then small records for the offset deltas. */
        size_t k = i % ARRAY_LEN(lens), v = (i / ARRAY_LEN(lens)) % ARRAY_LEN(lens);
        bool pair = i < ARRAY_LEN(lens) * ARRAY_LEN(lens);
        recs[i].key = i % 5 == 0 ? slice_make(NULL, 0) : slice_make(payload, pair ? lens[k] : 3);
        recs[i].value = slice_make(payload + 1, pair ? MIN(lens[v], 69999u) : i % 3);
        recs[i].timestamp_ms = i == 0 ? base_ts : base_ts + ts_deltas[i % ARRAY_LEN(ts_deltas)];
    }
    struct buf b;
    buf_init(&b);
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    assert_int_equal(batch_build(&b, &opts, recs, RECORDS), 0);
    struct batch_header h;
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    assert_int_equal(h.record_count, RECORDS);
    struct batch_rec_iter it;
    batch_rec_iter_init(
        &it, slice_make(b.data + LOG_BATCH_HEADER_BYTES, b.len - LOG_BATCH_HEADER_BYTES));
    struct batch_rec rec;
    for (uint32_t i = 0; i < RECORDS; i++) {
        assert_int_equal(batch_rec_iter_next(&it, &rec), 1);
        assert_int_equal(rec.offset_delta, (int32_t)i);
        assert_int_equal(h.base_timestamp_ms + rec.timestamp_delta, recs[i].timestamp_ms);
        assert_int_equal(rec.key.ptr == NULL, recs[i].key.ptr == NULL);
        assert_true(slice_eq(rec.key, recs[i].key));
        assert_true(slice_eq(rec.value, recs[i].value));
        assert_int_equal(rec.header_count, 0);
    }
    assert_int_equal(batch_rec_iter_next(&it, &rec), 0);

    /* A record of five bytes whose last one starts a two-byte value length: the varint runs
     * into the record's end (the batch's end too), so the record is corrupt. */
    struct batch_record one = {.value = slice_make(payload, 1), .timestamp_ms = base_ts};
    buf_reset(&b);
    assert_int_equal(batch_build(&b, &opts, &one, 1), 0);
    b.len = LOG_BATCH_HEADER_BYTES;
    static const uint8_t cut_record[] = {0x0a, 0x00, 0x00, 0x00, 0x01, 0x80};
    buf_append(&b, cut_record, sizeof(cut_record));
    be32_store(b.data + BATCH_OFF_LENGTH, (uint32_t)(b.len - 12));
    recrc(b.data, b.len);
    /* In a buffer of exactly its size, so a sanitizer build catches a read past it. */
    uint8_t *exact = xmalloc(b.len);
    memcpy(exact, b.data, b.len);
    assert_int_equal(batch_parse(exact, b.len, &h), ERR_CORRUPT);
    free(exact);
    /* The same record with a one-byte value length of 0 and a header count is valid. */
    b.len = LOG_BATCH_HEADER_BYTES;
    static const uint8_t whole_record[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    buf_append(&b, whole_record, sizeof(whole_record));
    be32_store(b.data + BATCH_OFF_LENGTH, (uint32_t)(b.len - 12));
    recrc(b.data, b.len);
    assert_int_equal(batch_parse(b.data, b.len, &h), 0);
    free(payload);
    free(recs);
    buf_deinit(&b);
}

/* Issue 8 item 9: Kafka's header rules for a produced batch (LogValidator.validateBatch). A
 * client's batch passes; each rule broken alone is refused. */
static void test_check_produced(void **state)
{
    (void)state;
    const struct batch_record recs[3] = {
        {.value = slice_make("a", 1), .timestamp_ms = 1},
        {.value = slice_make("b", 1), .timestamp_ms = 2},
        {.value = slice_make("c", 1), .timestamp_ms = 3},
    };
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    struct buf b;
    buf_init(&b);
    assert_int_equal(batch_build(&b, &opts, recs, 3), 0);
    struct batch_header good;
    assert_int_equal(batch_parse(b.data, b.len, &good), 0);
    assert_int_equal(batch_check_produced(&good), 0);

    struct batch_header h = good;
    h.last_offset_delta = 3; /* a gap: count 3 over offsets 0..3 */
    assert_int_equal(batch_check_produced(&h), ERR_INVALID);
    h = good;
    h.record_count = 0;
    h.last_offset_delta = 0;
    assert_int_equal(batch_check_produced(&h), ERR_INVALID);
    h = good;
    h.attributes |= BATCH_ATTR_CONTROL;
    assert_int_equal(batch_check_produced(&h), ERR_INVALID);
    h = good;
    h.producer_id = 7;
    assert_int_equal(batch_check_produced(&h), ERR_INVALID); /* no sequence */
    h.base_sequence = 0;
    assert_int_equal(batch_check_produced(&h), 0);
    buf_deinit(&b);
}

/* Transaction markers: Kafka's control record (key: version 0, type; value: version 0,
 * coordinator epoch) in a transactional control batch of one record, parsed back; a control
 * record of another type is returned as such, one whose key is cut is corrupt. */
static void test_marker_codec(void **state)
{
    (void)state;
    struct buf out;
    buf_init(&out);
    struct batch_marker m = {.type = BATCH_CONTROL_COMMIT, .coordinator_epoch = 0x01020304};
    assert_int_equal(batch_build_marker(&out, 77, 3, &m, 1234), 0);
    struct batch_header h;
    assert_int_equal(batch_parse(out.data, out.len, &h), 0);
    assert_true(batch_is_control(&h) && batch_is_transactional(&h));
    assert_int_equal(h.producer_id, 77);
    assert_int_equal(h.producer_epoch, 3);
    assert_int_equal(h.base_sequence, -1);
    assert_int_equal(h.record_count, 1);
    struct batch_marker got;
    assert_int_equal(batch_marker_parse(out.data, &h, &got), 0);
    assert_int_equal(got.type, BATCH_CONTROL_COMMIT);
    assert_int_equal(got.coordinator_epoch, 0x01020304);
    /* The record's key and value bytes are Kafka's. */
    struct batch_rec_iter it;
    batch_rec_iter_init(
        &it, slice_make(out.data + LOG_BATCH_HEADER_BYTES, out.len - LOG_BATCH_HEADER_BYTES));
    struct batch_rec rec;
    assert_int_equal(batch_rec_iter_next(&it, &rec), 1);
    static const uint8_t key[] = {0, 0, 0, 1}, value[] = {0, 0, 1, 2, 3, 4};
    assert_int_equal(rec.key.len, sizeof(key));
    assert_memory_equal(rec.key.ptr, key, sizeof(key));
    assert_int_equal(rec.value.len, sizeof(value));
    assert_memory_equal(rec.value.ptr, value, sizeof(value));

    /* Raft's LEADER_CHANGE no-op: type 2, no epoch. */
    buf_reset(&out);
    static const uint8_t noop_key[] = {0, 0, 0, 2};
    struct batch_record r = {.key = slice_make(noop_key, 4), .timestamp_ms = 1};
    struct batch_build_opts o = {.attributes = BATCH_ATTR_CONTROL,
                                 .producer_id = -1,
                                 .producer_epoch = -1,
                                 .base_sequence = -1};
    assert_int_equal(batch_build(&out, &o, &r, 1), 0);
    assert_int_equal(batch_parse(out.data, out.len, &h), 0);
    assert_int_equal(batch_marker_parse(out.data, &h, &got), 0);
    assert_int_equal(got.type, 2);
    /* A key cut short. */
    buf_reset(&out);
    r.key = slice_make(noop_key, 2);
    assert_int_equal(batch_build(&out, &o, &r, 1), 0);
    assert_int_equal(batch_parse(out.data, out.len, &h), 0);
    assert_int_equal(batch_marker_parse(out.data, &h, &got), ERR_CORRUPT);
    buf_deinit(&out);
}

int main(void)
{
    g_seed = test_seed("log_batch_test", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_builder_fields),
        cmocka_unit_test(test_every_byte_corruption),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_hostile_header),
        cmocka_unit_test(test_counts_and_deltas),
        cmocka_unit_test(test_hostile_records),
        cmocka_unit_test(test_duplicate_offset_delta),
        cmocka_unit_test(test_control_batches),
        cmocka_unit_test(test_stamp),
        cmocka_unit_test(test_iterator),
        cmocka_unit_test(test_kafkajs_golden),
        cmocka_unit_test(test_record_iterator),
        cmocka_unit_test(test_varint_widths),
        cmocka_unit_test(test_check_produced),
        cmocka_unit_test(test_marker_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
