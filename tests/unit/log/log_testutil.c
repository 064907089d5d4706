/*
 * Shared log test helpers (see log_testutil.h).
 */
#include "log_testutil.h"

#include "base/assert.h"
#include "base/compiler.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

uint64_t test_seed(const char *test_name, uint64_t def)
{
    const char *env = getenv("CHRONIK_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : def;
    fprintf(stderr, "%s: seed %" PRIu64 " (set CHRONIK_SEED to replay)\n", test_name, seed);
    return seed;
}

void test_batch_random(struct buf *out, struct rng *rng, uint32_t max_records,
                       uint32_t value_bytes_max, int64_t ts_base, int64_t ts_spread)
{
    ASSERT(max_records >= 1 && max_records <= 64);
    uint32_t n = (uint32_t)rng_range(rng, 1, max_records);
    struct batch_record recs[64];
    struct batch_record_header hdrs[64];
    uint8_t keys[64][8];
    uint8_t *values = malloc((size_t)n * (value_bytes_max + 1));
    ASSERT(values != NULL);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t vlen = (uint32_t)rng_below(rng, value_bytes_max + 1);
        uint8_t *v = values + (size_t)i * (value_bytes_max + 1);
        rng_fill(rng, v, vlen);
        rng_fill(rng, keys[i], sizeof(keys[i]));
        hdrs[i] = (struct batch_record_header){
            .key = slice_make("h", 1),
            .value = rng_chance(rng, 1, 2) ? slice_make(keys[i], 4) : slice_make(NULL, 0),
        };
        int64_t spread = ts_spread > 0 ? (int64_t)rng_below(rng, (uint64_t)ts_spread) : 0;
        recs[i] = (struct batch_record){
            .key = rng_chance(rng, 1, 3) ? slice_make(NULL, 0) : slice_make(keys[i], 8),
            .value = slice_make(v, vlen),
            .timestamp_ms = ts_base + spread,
            .headers = rng_chance(rng, 1, 2) ? &hdrs[i] : NULL,
        };
        recs[i].header_count = recs[i].headers ? 1 : 0;
    }
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    int rc = batch_build(out, &opts, recs, n);
    ASSERT(rc == 0);
    free(values);
}

void test_batch_for(struct buf *out, uint64_t seed, int64_t base_offset, uint32_t max_records,
                    uint32_t value_bytes_max, int64_t ts_base)
{
    struct rng rng;
    rng_seed(&rng, seed ^ ((uint64_t)base_offset * 0x9e3779b97f4a7c15ull));
    test_batch_random(out, &rng, max_records, value_bytes_max, ts_base + base_offset, 1000);
}
