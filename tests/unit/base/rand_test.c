/*
 * base/rand.h: known outputs for fixed seeds (the generator must be the same on every
 * platform), same seed same sequence, different seeds differ, rng_below and rng_range in bounds
 * and roughly uniform (a chi-square test with a generous threshold over a fixed seed),
 * rng_chance at its edges and its rate, and rng_fill.
 */
#include "base/rand.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_known_outputs(void **state)
{
    (void)state;
    /* xoshiro256** seeded through splitmix64, computed by an independent implementation. */
    struct rng r;
    rng_seed(&r, 42);
    assert_true(rng_next(&r) == 0x15780b2e0c2ec716ull);
    assert_true(rng_next(&r) == 0x6104d9866d113a7eull);
    assert_true(rng_next(&r) == 0xae17533239e499a1ull);
    rng_seed(&r, 0);
    assert_true(rng_next(&r) == 0x99ec5f36cb75f2b4ull);
    assert_true(rng_next(&r) == 0xbf6e1f784956452aull);
    assert_true(rng_next(&r) == 0x1a5f849d4933e6e0ull);
}

static void test_same_seed_same_sequence(void **state)
{
    (void)state;
    struct rng a, b, c;
    rng_seed(&a, 7);
    rng_seed(&b, 7);
    rng_seed(&c, 8);
    int same_as_other = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_next(&a);
        assert_true(x == rng_next(&b));
        same_as_other += x == rng_next(&c);
    }
    assert_int_equal(same_as_other, 0);
}

/* Chi-square statistic of counts against a uniform expectation. */
static double chi_square(const uint64_t *counts, size_t bins, uint64_t draws)
{
    double expected = (double)draws / (double)bins;
    double x2 = 0;
    for (size_t i = 0; i < bins; i++) {
        double d = (double)counts[i] - expected;
        x2 += d * d / expected;
    }
    return x2;
}

static void test_below_bounds_and_uniform(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 12345);
    for (int i = 0; i < 100; i++)
        assert_true(rng_below(&r, 1) == 0);
    for (int i = 0; i < 10000; i++) {
        assert_true(rng_below(&r, 7) < 7);
        assert_true(rng_below(&r, (1ull << 63) + 1) <= (1ull << 63));
        assert_true(rng_below(&r, UINT64_MAX) < UINT64_MAX);
    }
    /* 10 bins, 200000 draws, 9 degrees of freedom: the 0.001 critical value is 27.9; a broken
     * generator (e.g. modulo bias toward low bins, or a stuck bin) lands far above 60. */
    enum { BINS = 10, DRAWS = 200000 };
    uint64_t counts[BINS] = {0};
    for (int i = 0; i < DRAWS; i++)
        counts[rng_below(&r, BINS)]++;
    assert_true(chi_square(counts, BINS, DRAWS) < 60.0);
    /* A bin count that is not a power of two and does not divide 2^64 evenly. */
    uint64_t counts3[3] = {0};
    for (int i = 0; i < DRAWS; i++)
        counts3[rng_below(&r, 3)]++;
    assert_true(chi_square(counts3, 3, DRAWS) < 40.0);
}

static void test_range(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 99);
    bool seen_lo = false, seen_hi = false;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = rng_range(&r, 10, 20);
        assert_true(v >= 10 && v <= 20);
        seen_lo |= v == 10;
        seen_hi |= v == 20;
        assert_true(rng_range(&r, 5, 5) == 5);
        uint64_t top = rng_range(&r, UINT64_MAX - 1, UINT64_MAX);
        assert_true(top >= UINT64_MAX - 1);
    }
    assert_true(seen_lo && seen_hi);
    /* The full range works and is not stuck. */
    uint64_t first = rng_range(&r, 0, UINT64_MAX);
    bool differs = false;
    for (int i = 0; i < 10; i++)
        differs |= rng_range(&r, 0, UINT64_MAX) != first;
    assert_true(differs);
}

static void test_chance(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, 5);
    int hits = 0;
    for (int i = 0; i < 100000; i++) {
        assert_false(rng_chance(&r, 0, 10));
        assert_true(rng_chance(&r, 10, 10));
        hits += rng_chance(&r, 1, 4);
    }
    /* Expected 25000, standard deviation about 137. */
    assert_in_range(hits, 24000, 26000);
}

static void test_fill(void **state)
{
    (void)state;
    struct rng a, b;
    rng_seed(&a, 3);
    rng_seed(&b, 3);
    uint8_t buf[21];
    memset(buf, 0xcc, sizeof(buf));
    rng_fill(&a, buf, 0);
    assert_int_equal(buf[0], 0xcc);
    rng_fill(&a, buf, 20);
    assert_int_equal(buf[20], 0xcc); /* nothing past n */
    /* Whole words in order, the tail from one more word. */
    for (int w = 0; w < 2; w++) {
        uint64_t x = rng_next(&b);
        assert_memory_equal(buf + 8 * w, &x, 8);
    }
    uint64_t x = rng_next(&b);
    assert_memory_equal(buf + 16, &x, 4);
    assert_true(rng_next(&a) == rng_next(&b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_outputs),
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_below_bounds_and_uniform),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_chance),
        cmocka_unit_test(test_fill),
    };
    return cmocka_run_group_tests_name("base_rand", tests, NULL, NULL);
}
