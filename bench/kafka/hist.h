/*
 * An HDR-style latency histogram: log-linear buckets over the whole uint64_t range.
 *
 * Values below 2 * BENCH_HIST_SUB_BUCKETS are counted exactly. Above that, each power of two
 * [2^k, 2^(k+1)) is split into BENCH_HIST_SUB_BUCKETS equal buckets, so a bucket is never wider
 * than 1/BENCH_HIST_SUB_BUCKETS of the smallest value it holds. A percentile is reported as the
 * highest value of its bucket (clamped to the exact maximum), which makes it never below the
 * true value and less than 1/BENCH_HIST_SUB_BUCKETS (under 1%) above it.
 *
 * The struct is plain data with no pointers: the caller allocates it (it is about 60 KiB, so
 * not on a small stack) and nothing needs freeing. Not thread-safe; one writer at a time.
 */
#ifndef CHRONIK_BENCH_KAFKA_HIST_H
#define CHRONIK_BENCH_KAFKA_HIST_H

#include "base/limits.h"

#include <stdint.h>

struct hist {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t count; /* values recorded */
    uint64_t min;   /* exact; UINT64_MAX while empty */
    uint64_t max;   /* exact; 0 while empty */
    double sum;     /* for the mean; a double cannot overflow where a uint64_t sum could */
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t value);

/*
 * The value at rank ceil(count * percent / 100) (at least 1) of the recorded values in
 * ascending order, with the error bound above; percent is in [0, 100] and is taken to a
 * millionth of a percent. Returns 0 for an empty histogram.
 */
uint64_t hist_percentile(const struct hist *h, double percent);

/* The arithmetic mean; 0 for an empty histogram. */
double hist_mean(const struct hist *h);

#endif
