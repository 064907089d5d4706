/*
 * bench/kafka/payload.h: a header written into a value reads back the same; values too short
 * for it carry none; a wrong magic, a short value or no value is not read as a header; zeros
 * stay zeros and random bytes are random and seeded; successive values are consecutive cuts
 * of the pool that wrap around inside it.
 */
#include "payload.h"

#include "base/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_header_round_trip(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 1);
    struct payload_pool pool;
    payload_pool_init(&pool, BENCH_PAYLOAD_RANDOM, 100, &r);
    struct payload_header in = {.run_id = 0xdeadbeef, .seq = 1ull << 33, .send_wall_ns = 17};
    const uint8_t *v = payload_pool_next(&pool, &in);
    struct payload_header out;
    assert_int_equal(payload_header_read(v, 100, &out), 0);
    assert_true(out.run_id == in.run_id && out.seq == in.seq);
    assert_true(out.send_wall_ns == in.send_wall_ns);
    /* Exactly the header's length is enough; one byte less is not. */
    assert_int_equal(payload_header_read(v, PAYLOAD_HEADER_BYTES, &out), 0);
    assert_int_equal(payload_header_read(v, PAYLOAD_HEADER_BYTES - 1, &out), ERR_NOT_FOUND);
    assert_int_equal(payload_header_read(NULL, 0, &out), ERR_NOT_FOUND);
    payload_pool_deinit(&pool);
}

static void test_foreign_values_rejected(void **state)
{
    (void)state;
    uint8_t v[64] = {0};
    struct payload_header out;
    assert_int_equal(payload_header_read(v, sizeof(v), &out), ERR_NOT_FOUND);
    memcpy(v, "CHRA", 4);
    assert_int_equal(payload_header_read(v, sizeof(v), &out), ERR_NOT_FOUND);
    memcpy(v, "CHRB", 4);
    assert_int_equal(payload_header_read(v, sizeof(v), &out), 0);
}

static void test_short_values_carry_no_header(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 2);
    struct payload_pool pool;
    payload_pool_init(&pool, BENCH_PAYLOAD_ZEROS, PAYLOAD_HEADER_BYTES - 1, &r);
    struct payload_header h = {.run_id = 1, .seq = 2, .send_wall_ns = 3};
    const uint8_t *v = payload_pool_next(&pool, &h);
    for (size_t i = 0; i < PAYLOAD_HEADER_BYTES - 1; i++)
        assert_int_equal(v[i], 0);
    payload_pool_deinit(&pool);
}

static void test_zeros_and_random(void **state)
{
    (void)state;
    enum { SIZE = 1000 };
    struct rng r1, r2, r3;
    rng_seed(&r1, 7);
    rng_seed(&r2, 7);
    rng_seed(&r3, 8);
    struct payload_pool zeros, a, b, c;
    payload_pool_init(&zeros, BENCH_PAYLOAD_ZEROS, SIZE, &r1);
    payload_pool_init(&a, BENCH_PAYLOAD_RANDOM, SIZE, &r1);
    payload_pool_init(&b, BENCH_PAYLOAD_RANDOM, SIZE, &r2);
    payload_pool_init(&c, BENCH_PAYLOAD_RANDOM, SIZE, &r3);
    struct payload_header h = {0};
    const uint8_t *z = payload_pool_next(&zeros, &h);
    for (size_t i = PAYLOAD_HEADER_BYTES; i < SIZE; i++)
        assert_int_equal(z[i], 0);
    /* A zero pool draws nothing from its generator, so a and b start from the same seed and
     * state, and c from another seed. */
    const uint8_t *va = payload_pool_next(&a, &h);
    const uint8_t *vb = payload_pool_next(&b, &h);
    const uint8_t *vc = payload_pool_next(&c, &h);
    assert_memory_equal(va, vb, SIZE);
    assert_memory_not_equal(va + PAYLOAD_HEADER_BYTES, vc + PAYLOAD_HEADER_BYTES,
                            SIZE - PAYLOAD_HEADER_BYTES);
    size_t zero_bytes = 0;
    for (size_t i = PAYLOAD_HEADER_BYTES; i < SIZE; i++)
        zero_bytes += va[i] == 0;
    assert_true(zero_bytes < 20); /* about 4 expected among 976 random bytes */
    payload_pool_deinit(&zeros);
    payload_pool_deinit(&a);
    payload_pool_deinit(&b);
    payload_pool_deinit(&c);
}

static void test_cuts_are_consecutive_and_wrap(void **state)
{
    (void)state;
    enum { SIZE = 3000 };
    struct rng r;
    rng_seed(&r, 3);
    struct payload_pool pool;
    payload_pool_init(&pool, BENCH_PAYLOAD_RANDOM, SIZE, &r);
    struct payload_header h = {0};
    const uint8_t *first = payload_pool_next(&pool, &h);
    const uint8_t *prev = first;
    size_t cuts = 1;
    for (;;) {
        const uint8_t *v = payload_pool_next(&pool, &h);
        if (v == first)
            break;
        assert_ptr_equal(v, prev + SIZE);
        assert_true(v + SIZE <= first + BENCH_PAYLOAD_POOL_BYTES + SIZE);
        prev = v;
        cuts++;
    }
    /* Every cut starts inside the pool, so there are ceil(pool / size) of them. */
    assert_int_equal(cuts, (BENCH_PAYLOAD_POOL_BYTES + SIZE - 1) / SIZE);
    payload_pool_deinit(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_foreign_values_rejected),
        cmocka_unit_test(test_short_values_carry_no_header),
        cmocka_unit_test(test_zeros_and_random),
        cmocka_unit_test(test_cuts_are_consecutive_and_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
