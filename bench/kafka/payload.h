/*
 * Record values for chronik-bench: a pool of bytes that values are cut from, and the header a
 * value carries so that a consumer can measure end-to-end latency and recognise its own run.
 *
 * Header (big-endian, at the start of the value when the value is long enough):
 *   magic u32 "CHRB" | run id u32 | sequence number u64 | send time u64 (ns since the epoch)
 * A value shorter than the header carries none. The consumer validates what it reads (these
 * bytes come from the network and any producer may have written the topic), never asserts.
 *
 * A pool is caller-allocated; init allocates its bytes, deinit frees them. Values are cut from
 * consecutive positions of a BENCH_PAYLOAD_POOL_BYTES pool, so a producer batch smaller than
 * the pool never holds the same random bytes twice and compression sees random data as such.
 */
#ifndef CHRONIK_BENCH_KAFKA_PAYLOAD_H
#define CHRONIK_BENCH_KAFKA_PAYLOAD_H

#include "opts.h"

#include "base/rand.h"

#include <stddef.h>
#include <stdint.h>

#define PAYLOAD_HEADER_BYTES 24u
#define PAYLOAD_MAGIC        0x43485242u /* "CHRB" */

struct payload_header {
    uint32_t run_id;
    uint64_t seq;
    uint64_t send_wall_ns;
};

/* Reads the header of a value of len bytes. Returns 0, or ERR_NOT_FOUND when the value is too
 * short or does not start with the magic. */
int payload_header_read(const void *value, size_t len, struct payload_header *h);

struct payload_pool {
    uint8_t *bytes;      /* owned: BENCH_PAYLOAD_POOL_BYTES + record_bytes */
    size_t record_bytes; /* 1..BENCH_RECORD_BYTES_MAX */
    size_t next;         /* where the next value is cut, < BENCH_PAYLOAD_POOL_BYTES */
};

/* Fills the pool with random bytes from rng, or with zeros. */
void payload_pool_init(struct payload_pool *pool, enum bench_payload kind, uint32_t record_bytes,
                       struct rng *rng);
void payload_pool_deinit(struct payload_pool *pool);

/*
 * The next value, record_bytes long, with h written as its header when it is long enough. The
 * pointer is into the pool and is valid until the next call; librdkafka copies it.
 */
const uint8_t *payload_pool_next(struct payload_pool *pool, const struct payload_header *h);

#endif
