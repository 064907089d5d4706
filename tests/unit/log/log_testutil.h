/*
 * Helpers shared by the log tests and the kill-test helper program: the seed every randomised
 * test prints and accepts (CHRONIK_SEED), deterministic batches derived from (seed, offset),
 * and a brute-force model of what a log holds.
 *
 * Owns nothing global. Batches are built into a caller-owned struct buf.
 */
#ifndef CHRONIK_TESTS_LOG_TESTUTIL_H
#define CHRONIK_TESTS_LOG_TESTUTIL_H

#include "base/buf.h"
#include "base/rand.h"
#include "log/batch.h"

#include <stdint.h>

/* The seed from CHRONIK_SEED, or def; printed with the test's name. */
uint64_t test_seed(const char *test_name, uint64_t def);

/* A deterministic batch whose records depend only on (seed, base_offset): 1..max_records
 * records of up to value_bytes_max value bytes, timestamps around ts_base (not monotonic).
 * Appended to out. */
void test_batch_for(struct buf *out, uint64_t seed, int64_t base_offset, uint32_t max_records,
                    uint32_t value_bytes_max, int64_t ts_base);

/* A random batch from rng (records, sizes, timestamps) appended to out. */
void test_batch_random(struct buf *out, struct rng *rng, uint32_t max_records,
                       uint32_t value_bytes_max, int64_t ts_base, int64_t ts_spread);

#endif
