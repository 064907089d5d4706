/*
 * bench/kafka/hist.h: percentiles against a brute-force sort of the same random values (each
 * within the stated relative error, never below the true value), for several distributions;
 * the edge cases: an empty histogram, one value (exact at every percentile, 0 and UINT64_MAX
 * included), the maximum, exact small values, every power-of-two boundary; and the mean.
 *
 * Random cases print their seed; BENCH_HIST_SEED=N replays one.
 */
#include "hist.h"

#include "base/alloc.h"
#include "base/compiler.h"
#include "base/rand.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static uint64_t test_seed(void)
{
    const char *env = getenv("BENCH_HIST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 10) : 20261127u;
    printf("bench_kafka_hist_test: seed %llu (set BENCH_HIST_SEED to replay)\n",
           (unsigned long long)seed);
    return seed;
}

static struct hist *hist_new(void)
{
    struct hist *h = xmalloc(sizeof(*h));
    hist_init(h);
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The reference: rank ceil(n * percent / 100), at least 1, on the sorted values. The
 * percentages used here are whole thousandths of a percent, so the rank is exact in integers. */
static uint64_t brute_percentile(const uint64_t *sorted, size_t n, uint64_t milli_percent)
{
    unsigned __int128 scaled = (unsigned __int128)milli_percent * n;
    uint64_t rank = (uint64_t)((scaled + 100000u - 1u) / 100000u);
    if (rank == 0)
        rank = 1;
    return sorted[rank - 1];
}

/* The reported value is never below the truth and less than 1/128 of it above. */
static void assert_within(uint64_t reported, uint64_t truth)
{
    if (reported < truth || reported - truth > truth / BENCH_HIST_SUB_BUCKETS) {
        fail_msg("reported %llu for true %llu: outside [x, x + x/%u]", (unsigned long long)reported,
                 (unsigned long long)truth, BENCH_HIST_SUB_BUCKETS);
    }
}

static void test_empty(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    assert_int_equal(h->count, 0);
    assert_int_equal(hist_percentile(h, 0.0), 0);
    assert_int_equal(hist_percentile(h, 50.0), 0);
    assert_int_equal(hist_percentile(h, 100.0), 0);
    assert_true(hist_mean(h) == 0.0);
    free(h);
}

static void test_one_value_is_exact(void **state)
{
    (void)state;
    const uint64_t values[] = {0,         1, 255, 256, 1000, 123456789, 1ull << 40, UINT64_MAX - 1,
                               UINT64_MAX};
    const double percents[] = {0.0, 0.1, 50.0, 99.0, 99.9, 100.0};
    for (size_t i = 0; i < ARRAY_LEN(values); i++) {
        struct hist *h = hist_new();
        hist_record(h, values[i]);
        assert_int_equal(h->count, 1);
        for (size_t j = 0; j < ARRAY_LEN(percents); j++)
            assert_true(hist_percentile(h, percents[j]) == values[i]);
        assert_true(h->min == values[i] && h->max == values[i]);
        free(h);
    }
}

static void test_max_is_exact(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    for (uint64_t v = 0; v < 1000; v++)
        hist_record(h, v);
    hist_record(h, UINT64_MAX);
    assert_true(hist_percentile(h, 100.0) == UINT64_MAX);
    assert_true(h->max == UINT64_MAX);
    /* Rank ceil(1001 * 0.999) = 1000 is the value 999, which lies in a bucket of width 4. */
    assert_within(hist_percentile(h, 99.9), 999);
    assert_true(hist_percentile(h, 0.0) == 0);
    free(h);
}

static void test_small_values_exact(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    for (uint64_t v = 0; v < 2u * BENCH_HIST_SUB_BUCKETS; v++)
        hist_record(h, v);
    uint64_t n = 2u * BENCH_HIST_SUB_BUCKETS;
    for (uint64_t rank = 1; rank <= n; rank++) {
        double percent = 100.0 * (double)rank / (double)n;
        assert_int_equal(hist_percentile(h, percent), rank - 1);
    }
    free(h);
}

/* Two values either side of each power of two: p0 finds the lower, p100 the upper. */
static void test_power_of_two_boundaries(void **state)
{
    (void)state;
    for (unsigned k = 1; k < 64; k++) {
        uint64_t edge = 1ull << k;
        struct hist *h = hist_new();
        hist_record(h, edge - 1);
        hist_record(h, edge);
        assert_within(hist_percentile(h, 50.0), edge - 1);
        assert_true(hist_percentile(h, 100.0) == edge);
        free(h);
    }
}

static uint64_t draw(struct rng *r, int distribution)
{
    switch (distribution) {
    case 0: /* uniform over a typical latency range in microseconds */
        return rng_below(r, 1000000u);
    case 1: /* log-uniform over the whole range */
        return rng_next(r) >> rng_below(r, 64);
    case 2: /* many repeats of few values */
        return 1000u + 37u * rng_below(r, 20);
    default: /* a tight body with a long tail, like real latencies */
        return rng_chance(r, 1, 1000) ? rng_range(r, 100000u, 10000000u) : rng_range(r, 900, 1100);
    }
}

static void test_random_against_sort(void **state)
{
    (void)state;
    enum { N = 100000, DISTRIBUTIONS = 4 };
    const uint64_t fixed[] = {0, 1000, 10000, 50000, 90000, 99000, 99900, 99990, 100000};
    struct rng r;
    rng_seed(&r, test_seed());
    uint64_t *values = xmalloc(N * sizeof(uint64_t));
    for (int d = 0; d < DISTRIBUTIONS; d++) {
        struct hist *h = hist_new();
        size_t n = 1 + rng_below(&r, N);
        for (size_t i = 0; i < n; i++) {
            values[i] = draw(&r, d);
            hist_record(h, values[i]);
        }
        qsort(values, n, sizeof(uint64_t), cmp_u64);
        assert_true(h->count == n && h->min == values[0] && h->max == values[n - 1]);
        for (size_t j = 0; j < ARRAY_LEN(fixed) + 50; j++) {
            uint64_t p = j < ARRAY_LEN(fixed) ? fixed[j] : rng_below(&r, 100001);
            assert_within(hist_percentile(h, (double)p / 1000.0), brute_percentile(values, n, p));
        }
        free(h);
    }
    free(values);
}

static void test_mean(void **state)
{
    (void)state;
    struct hist *h = hist_new();
    hist_record(h, 10);
    hist_record(h, 20);
    hist_record(h, 60);
    assert_true(hist_mean(h) == 30.0);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_one_value_is_exact),
        cmocka_unit_test(test_max_is_exact),
        cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_power_of_two_boundaries),
        cmocka_unit_test(test_random_against_sort),
        cmocka_unit_test(test_mean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
