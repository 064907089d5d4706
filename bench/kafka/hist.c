/*
 * The log-linear histogram of hist.h.
 *
 * Invariant: counts[] sums to count, and min <= max whenever count > 0. Bucket i < 2S (S =
 * BENCH_HIST_SUB_BUCKETS) holds exactly the value i; above, bucket shift * S + m, with m in
 * [S, 2S), holds the values whose top bits are m when shifted right by shift. It never
 * allocates and never fails.
 */
#include "hist.h"

#include "base/assert.h"

#include <math.h>
#include <string.h>

#define SUB_BITS 7u

STATIC_ASSERT(BENCH_HIST_SUB_BUCKETS == 1u << SUB_BITS, "sub-buckets are 2^SUB_BITS");
STATIC_ASSERT(BENCH_HIST_BUCKETS == (64u - SUB_BITS + 1u) * BENCH_HIST_SUB_BUCKETS,
              "one row of sub-buckets per shift, for every uint64_t value");

static unsigned value_shift(uint64_t value)
{
    if (value < BENCH_HIST_SUB_BUCKETS)
        return 0;
    unsigned msb = 63u - (unsigned)__builtin_clzll(value);
    return msb - SUB_BITS;
}

static uint32_t bucket_of(uint64_t value)
{
    unsigned shift = value_shift(value);
    uint64_t index = (uint64_t)shift * BENCH_HIST_SUB_BUCKETS + (value >> shift);
    ASSERT(index < BENCH_HIST_BUCKETS);
    return (uint32_t)index;
}

/* The highest value that falls into bucket index. */
static uint64_t bucket_highest(uint32_t index)
{
    ASSERT(index < BENCH_HIST_BUCKETS);
    if (index < 2u * BENCH_HIST_SUB_BUCKETS)
        return index;
    unsigned shift = index / BENCH_HIST_SUB_BUCKETS - 1u;
    uint64_t mantissa = index - (uint64_t)shift * BENCH_HIST_SUB_BUCKETS;
    ASSERT(mantissa >= BENCH_HIST_SUB_BUCKETS && mantissa < 2u * BENCH_HIST_SUB_BUCKETS);
    return (mantissa << shift) + ((1ull << shift) - 1u);
}

void hist_init(struct hist *h)
{
    ASSERT(h != NULL);
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void hist_record(struct hist *h, uint64_t value)
{
    ASSERT(h->count < UINT64_MAX);
    h->counts[bucket_of(value)]++;
    h->count++;
    h->sum += (double)value;
    h->min = MIN(h->min, value);
    h->max = MAX(h->max, value);
}

uint64_t hist_percentile(const struct hist *h, double percent)
{
    ASSERT(percent >= 0.0 && percent <= 100.0);
    if (h->count == 0)
        return 0;
    /* Integer ranks: 99.9 is not exact as a double, and count * 99.9 / 100 would round up a
     * whole rank for some counts. A millionth of a percent is far below what anyone asks. */
    unsigned __int128 ppm = (unsigned __int128)llround(percent * 1e6);
    unsigned __int128 scaled = ppm * h->count;
    unsigned __int128 whole = 100u * 1000000u;
    uint64_t rank = (uint64_t)((scaled + whole - 1u) / whole);
    rank = MAX(rank, 1u);
    ASSERT(rank <= h->count);
    uint64_t seen = 0;
    for (uint32_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            return MAX(MIN(bucket_highest(i), h->max), h->min);
    }
    UNREACHABLE();
}

double hist_mean(const struct hist *h)
{
    ASSERT(h != NULL);
    return h->count == 0 ? 0.0 : h->sum / (double)h->count;
}
