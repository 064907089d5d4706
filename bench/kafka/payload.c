/*
 * Record values and their header (see payload.h).
 *
 * Invariant: pool->next < BENCH_PAYLOAD_POOL_BYTES, so a cut of record_bytes from it always
 * lies inside the allocation. Writing a header into the pool only replaces bytes that were
 * random (or zero) with the header, so the pool never needs restoring.
 */
#include "payload.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/bytes.h"
#include "base/error.h"

#include <stdlib.h>

int payload_header_read(const void *value, size_t len, struct payload_header *h)
{
    ASSERT(h != NULL);
    if (value == NULL || len < PAYLOAD_HEADER_BYTES)
        return ERR_NOT_FOUND;
    const uint8_t *p = value;
    if (be32_load(p) != PAYLOAD_MAGIC)
        return ERR_NOT_FOUND;
    h->run_id = be32_load(p + 4);
    h->seq = be64_load(p + 8);
    h->send_wall_ns = be64_load(p + 16);
    return 0;
}

void payload_pool_init(struct payload_pool *pool, enum bench_payload kind, uint32_t record_bytes,
                       struct rng *rng)
{
    ASSERT(record_bytes >= 1 && record_bytes <= BENCH_RECORD_BYTES_MAX);
    ASSERT(rng != NULL);
    size_t total = (size_t)BENCH_PAYLOAD_POOL_BYTES + record_bytes;
    pool->bytes = xcalloc(1, total);
    if (kind == BENCH_PAYLOAD_RANDOM)
        rng_fill(rng, pool->bytes, total);
    pool->record_bytes = record_bytes;
    pool->next = 0;
}

void payload_pool_deinit(struct payload_pool *pool)
{
    ASSERT(pool->bytes != NULL);
    free(pool->bytes);
    pool->bytes = NULL;
}

const uint8_t *payload_pool_next(struct payload_pool *pool, const struct payload_header *h)
{
    ASSERT(pool->next < BENCH_PAYLOAD_POOL_BYTES);
    ASSERT(h != NULL);
    uint8_t *value = pool->bytes + pool->next;
    pool->next += pool->record_bytes;
    if (pool->next >= BENCH_PAYLOAD_POOL_BYTES)
        pool->next = 0;
    if (pool->record_bytes >= PAYLOAD_HEADER_BYTES) {
        be32_store(value, PAYLOAD_MAGIC);
        be32_store(value + 4, h->run_id);
        be64_store(value + 8, h->seq);
        be64_store(value + 16, h->send_wall_ns);
    }
    return value;
}
