/*
 * Codec tests: every codec round-trips random and repetitive payloads; snappy decodes both the
 * xerial framing (Kafka's Java client) and a raw block (librdkafka); truncated streams are
 * refused; the output bound stops a decompression bomb and leaves the buffer as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/compiler.h"
#include "base/error.h"
#include "base/rand.h"
#include "log/compress.h"
#include "log_testutil.h"

#include <snappy-c.h>
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

int main(void)
{
    g_seed = test_seed("log_compress_test", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_snappy_raw_block),
        cmocka_unit_test(test_truncated_refused),
        cmocka_unit_test(test_bomb_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
