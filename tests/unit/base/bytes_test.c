/*
 * base/bytes.h and base/buf.h: Kafka's varints against known encodings, their sizes, random
 * round trips, rejection of too-long, too-wide and truncated input, the reader's bounds and
 * sticky error, big-endian loads and stores, and the growable buffer with its writers.
 *
 * The random round trips print their seed; set BASE_TEST_SEED to replay one.
 */
#include "base/buf.h"
#include "base/bytes.h"
#include "base/error.h"
#include "base/rand.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

struct vec {
    uint64_t value;
    uint8_t bytes[10];
    size_t len;
};

static const struct vec uvarint_vecs[] = {
    {0, {0x00}, 1},
    {1, {0x01}, 1},
    {127, {0x7f}, 1},
    {128, {0x80, 0x01}, 2},
    {300, {0xac, 0x02}, 2},
    {16383, {0xff, 0x7f}, 2},
    {16384, {0x80, 0x80, 0x01}, 3},
    {INT32_MAX, {0xff, 0xff, 0xff, 0xff, 0x07}, 5},
    {UINT32_MAX, {0xff, 0xff, 0xff, 0xff, 0x0f}, 5},
    {1ull << 35, {0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 6},
    {UINT64_MAX, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10},
};

struct svec {
    int64_t value;
    uint8_t bytes[10];
    size_t len;
};

/* Zigzag varints (32-bit values). */
static const struct svec varint_vecs[] = {
    {0, {0x00}, 1},
    {-1, {0x01}, 1},
    {1, {0x02}, 1},
    {-2, {0x03}, 1},
    {63, {0x7e}, 1},
    {-64, {0x7f}, 1},
    {64, {0x80, 0x01}, 2},
    {300, {0xd8, 0x04}, 2},
    {INT32_MAX, {0xfe, 0xff, 0xff, 0xff, 0x0f}, 5},
    {INT32_MIN, {0xff, 0xff, 0xff, 0xff, 0x0f}, 5},
};

/* Zigzag varlongs (64-bit values). */
static const struct svec varlong_vecs[] = {
    {0, {0x00}, 1},
    {-1, {0x01}, 1},
    {1, {0x02}, 1},
    {INT32_MAX, {0xfe, 0xff, 0xff, 0xff, 0x0f}, 5},
    {INT32_MIN, {0xff, 0xff, 0xff, 0xff, 0x0f}, 5},
    {(int64_t)INT32_MAX + 1, {0x80, 0x80, 0x80, 0x80, 0x10}, 5},
    {INT64_MAX, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10},
    {INT64_MIN, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 10},
};

static uint64_t test_seed(void)
{
    const char *env = getenv("BASE_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 0xba5e;
    printf("BASE_TEST_SEED=%" PRIu64 "\n", seed);
    return seed;
}

static void test_uvarint_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(uvarint_vecs) / sizeof(uvarint_vecs[0]); i++) {
        const struct vec *v = &uvarint_vecs[i];
        uint8_t out[VARINT64_BYTES_MAX];
        assert_int_equal(uvarint_size(v->value), v->len);
        assert_int_equal(uvarint_encode(out, v->value), v->len);
        assert_memory_equal(out, v->bytes, v->len);
        uint64_t got = 12345;
        assert_int_equal(uvarint_decode(v->bytes, v->len, 64, &got), (int)v->len);
        assert_int_equal(got, v->value);
        if (v->value <= UINT32_MAX) {
            assert_int_equal(uvarint_decode(v->bytes, v->len, 32, &got), (int)v->len);
            assert_int_equal(got, v->value);
        } else {
            assert_int_equal(uvarint_decode(v->bytes, v->len, 32, &got), ERR_CORRUPT);
        }
        /* Trailing bytes are not consumed. */
        uint8_t longer[12] = {0};
        memcpy(longer, v->bytes, v->len);
        longer[v->len] = 0x7f;
        assert_int_equal(uvarint_decode(longer, v->len + 1, 64, &got), (int)v->len);
    }
}

static void test_signed_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(varint_vecs) / sizeof(varint_vecs[0]); i++) {
        const struct svec *v = &varint_vecs[i];
        struct buf b;
        buf_init(&b);
        buf_put_varint(&b, (int32_t)v->value);
        assert_int_equal(b.len, v->len);
        assert_memory_equal(b.data, v->bytes, v->len);
        assert_int_equal(varint_size((int32_t)v->value), v->len);
        struct reader r;
        rd_init(&r, v->bytes, v->len);
        assert_int_equal(rd_varint(&r), v->value);
        assert_int_equal(rd_err(&r), 0);
        assert_int_equal(rd_left(&r), 0);
        buf_deinit(&b);
    }
    for (size_t i = 0; i < sizeof(varlong_vecs) / sizeof(varlong_vecs[0]); i++) {
        const struct svec *v = &varlong_vecs[i];
        struct buf b;
        buf_init(&b);
        buf_put_varlong(&b, v->value);
        assert_int_equal(b.len, v->len);
        assert_memory_equal(b.data, v->bytes, v->len);
        assert_int_equal(varlong_size(v->value), v->len);
        struct reader r;
        rd_init(&r, v->bytes, v->len);
        assert_true(rd_varlong(&r) == v->value);
        assert_int_equal(rd_err(&r), 0);
        buf_deinit(&b);
    }
}

static void test_zigzag(void **state)
{
    (void)state;
    assert_int_equal(zigzag32_encode(0), 0);
    assert_int_equal(zigzag32_encode(-1), 1);
    assert_int_equal(zigzag32_encode(1), 2);
    assert_int_equal(zigzag32_encode(INT32_MAX), UINT32_MAX - 1);
    assert_int_equal(zigzag32_encode(INT32_MIN), UINT32_MAX);
    assert_int_equal(zigzag32_decode(UINT32_MAX), INT32_MIN);
    assert_true(zigzag64_encode(INT64_MIN) == UINT64_MAX);
    assert_true(zigzag64_decode(UINT64_MAX - 1) == INT64_MAX);
    assert_true(zigzag64_decode(3) == -2);
}

static void test_sizes_at_boundaries(void **state)
{
    (void)state;
    for (unsigned k = 1; k < 10; k++) {
        uint64_t first = 1ull << (7 * k); /* smallest value needing k + 1 bytes */
        assert_int_equal(uvarint_size(first - 1), k);
        assert_int_equal(uvarint_size(first), k + 1);
    }
    assert_int_equal(uvarint_size(UINT64_MAX), 10);
    assert_int_equal(varint_size(-64), 1);
    assert_int_equal(varint_size(64), 2);
    assert_int_equal(varlong_size(INT64_MIN), 10);
}

static void test_random_round_trips(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, test_seed());
    struct buf b;
    buf_init(&b);
    enum { N = 5000 };
    static uint64_t u[N];
    static int32_t i32[N];
    static int64_t i64[N];
    for (int i = 0; i < N; i++) {
        /* Spread the magnitudes so every encoded length shows up. */
        unsigned bits = (unsigned)rng_range(&rng, 1, 64);
        uint64_t x = rng_next(&rng);
        u[i] = bits == 64 ? x : x & ((1ull << bits) - 1);
        i32[i] = (int32_t)(uint32_t)(bits >= 32 ? u[i] : u[i] - (1ull << (bits - 1)));
        i64[i] = (int64_t)(rng_chance(&rng, 1, 2) ? u[i] : ~u[i]);
        size_t before = b.len;
        buf_put_uvarint(&b, u[i]);
        assert_int_equal(b.len - before, uvarint_size(u[i]));
        buf_put_varint(&b, i32[i]);
        buf_put_varlong(&b, i64[i]);
        buf_put_uvarint(&b, (uint32_t)u[i]);
    }
    struct reader r;
    rd_init(&r, b.data, b.len);
    for (int i = 0; i < N; i++) {
        assert_true(rd_uvarlong(&r) == u[i]);
        assert_int_equal(rd_varint(&r), i32[i]);
        assert_true(rd_varlong(&r) == i64[i]);
        assert_int_equal(rd_uvarint(&r), (uint32_t)u[i]);
    }
    assert_int_equal(rd_err(&r), 0);
    assert_int_equal(rd_left(&r), 0);
    buf_deinit(&b);
}

static void test_overlong_and_too_wide(void **state)
{
    (void)state;
    uint64_t v = 0;
    /* Six bytes for a 32-bit value, eleven for a 64-bit one. */
    const uint8_t long32[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    assert_int_equal(uvarint_decode(long32, sizeof(long32), 32, &v), ERR_CORRUPT);
    const uint8_t long64[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    assert_int_equal(uvarint_decode(long64, sizeof(long64), 64, &v), ERR_CORRUPT);
    /* Five bytes whose last group carries bit 32. */
    const uint8_t wide32[] = {0xff, 0xff, 0xff, 0xff, 0x1f};
    assert_int_equal(uvarint_decode(wide32, sizeof(wide32), 32, &v), ERR_CORRUPT);
    const uint8_t ok32[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(uvarint_decode(ok32, sizeof(ok32), 32, &v), 5);
    /* Ten bytes whose last group carries bit 64. */
    const uint8_t wide64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    assert_int_equal(uvarint_decode(wide64, sizeof(wide64), 64, &v), ERR_CORRUPT);
    /* The reader reports the same. */
    struct reader r;
    rd_init(&r, wide32, sizeof(wide32));
    assert_int_equal(rd_varint(&r), 0);
    assert_int_equal(rd_err(&r), ERR_CORRUPT);
    rd_init(&r, long64, sizeof(long64));
    assert_true(rd_varlong(&r) == 0);
    assert_int_equal(rd_err(&r), ERR_CORRUPT);
}

static void test_truncated(void **state)
{
    (void)state;
    uint64_t v = 77;
    const uint8_t cont[] = {0x80, 0xff, 0xff};
    assert_int_equal(uvarint_decode(cont, 0, 32, &v), ERR_INCOMPLETE);
    assert_int_equal(uvarint_decode(cont, 1, 32, &v), ERR_INCOMPLETE);
    assert_int_equal(uvarint_decode(cont, 3, 64, &v), ERR_INCOMPLETE);
    assert_int_equal(v, 77); /* untouched on failure */
    for (size_t i = 0; i < sizeof(uvarint_vecs) / sizeof(uvarint_vecs[0]); i++) {
        const struct vec *t = &uvarint_vecs[i];
        for (size_t n = 0; n < t->len; n++)
            assert_int_equal(uvarint_decode(t->bytes, n, 64, &v), ERR_INCOMPLETE);
    }
}

static void test_reader_bounds_and_sticky_error(void **state)
{
    (void)state;
    const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
    struct reader r;
    rd_init(&r, data, sizeof(data));
    assert_int_equal(rd_u8(&r), 0x01);
    assert_int_equal(rd_be16(&r), 0x0203);
    assert_int_equal(rd_left(&r), 4);
    const uint8_t *p = rd_bytes(&r, 2);
    assert_ptr_equal(p, data + 3);
    assert_int_equal(rd_left(&r), 2);
    /* Four bytes wanted, two left: the read fails and the reader is spent. */
    assert_int_equal(rd_be32(&r), 0);
    assert_int_equal(rd_err(&r), ERR_INCOMPLETE);
    assert_int_equal(rd_left(&r), 0);
    assert_int_equal(rd_u8(&r), 0);
    assert_null(rd_bytes(&r, 0 + 1));
    /* The first error sticks. */
    rd_fail(&r, ERR_CORRUPT);
    assert_int_equal(rd_err(&r), ERR_INCOMPLETE);

    rd_init(&r, data, sizeof(data));
    assert_ptr_equal(rd_bytes(&r, sizeof(data)), data);
    assert_non_null(rd_bytes(&r, 0));
    assert_int_equal(rd_err(&r), 0);
    assert_true(rd_be64(&r) == 0);
    assert_int_equal(rd_err(&r), ERR_INCOMPLETE);

    const uint8_t be[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0xff, 0xfe};
    rd_init(&r, be, sizeof(be));
    assert_true(rd_be64(&r) == 0x0102030405060708ull);
    assert_int_equal(rd_be16(&r), 0xfffe);
    assert_int_equal(rd_err(&r), 0);
}

static void test_big_endian(void **state)
{
    (void)state;
    uint8_t raw[11] = {0};
    uint8_t *p = raw + 1; /* unaligned on purpose */
    be16_store(p, 0xa1b2);
    assert_int_equal(p[0], 0xa1);
    assert_int_equal(p[1], 0xb2);
    assert_int_equal(be16_load(p), 0xa1b2);
    be32_store(p, 0xdeadbeef);
    assert_memory_equal(p, ((uint8_t[]){0xde, 0xad, 0xbe, 0xef}), 4);
    assert_int_equal(be32_load(p), 0xdeadbeef);
    be64_store(p, 0x0123456789abcdefull);
    assert_memory_equal(p, ((uint8_t[]){0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}), 8);
    assert_true(be64_load(p) == 0x0123456789abcdefull);
    assert_int_equal(raw[0], 0);
    assert_int_equal(raw[9], 0);
}

static void test_slice(void **state)
{
    (void)state;
    assert_true(slice_eq(slice_make("abc", 3), slice_make("abcd", 3)));
    assert_false(slice_eq(slice_make("abc", 3), slice_make("abd", 3)));
    assert_false(slice_eq(slice_make("abc", 3), slice_make("abc", 2)));
    assert_true(slice_eq(slice_make(NULL, 0), slice_make("x", 0)));
}

static void test_buf_growth(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    assert_null(b.data);
    buf_append(&b, "x", 0);
    assert_null(b.data);
    for (int i = 0; i < 10000; i++) {
        buf_put_u8(&b, (uint8_t)(i * 31));
        assert_true(b.len <= b.cap);
    }
    assert_int_equal(b.len, 10000);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(b.data[i], (uint8_t)(i * 31));
    size_t cap = b.cap;
    uint8_t *data = b.data;
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.data, data);
    buf_reserve(&b, cap + 1);
    assert_true(b.cap >= cap + 1);
    assert_int_equal(b.len, 0);
    uint8_t *ext = buf_extend(&b, 3);
    assert_ptr_equal(ext, b.data);
    assert_int_equal(b.len, 3);
    buf_deinit(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void test_buf_writers(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    buf_put_u8(&b, 0x11);
    buf_put_be16(&b, 0x2233);
    buf_put_be32(&b, 0x44556677);
    buf_put_be64(&b, 0x8899aabbccddeeffull);
    buf_put_uvarint(&b, 300);
    buf_put_varint(&b, -1);
    buf_put_varlong(&b, 1);
    buf_append(&b, "end", 3);
    const uint8_t want[] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
                            0xcc, 0xdd, 0xee, 0xff, 0xac, 0x02, 0x01, 0x02, 'e',  'n',  'd'};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    struct slice s = buf_slice(&b);
    assert_ptr_equal(s.ptr, b.data);
    assert_int_equal(s.len, b.len);
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uvarint_vectors),
        cmocka_unit_test(test_signed_vectors),
        cmocka_unit_test(test_zigzag),
        cmocka_unit_test(test_sizes_at_boundaries),
        cmocka_unit_test(test_random_round_trips),
        cmocka_unit_test(test_overlong_and_too_wide),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_reader_bounds_and_sticky_error),
        cmocka_unit_test(test_big_endian),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_writers),
    };
    return cmocka_run_group_tests_name("base_bytes", tests, NULL, NULL);
}
