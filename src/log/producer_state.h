/*
 * Idempotent producers' state of one partition (Kafka's ProducerStateManager, without
 * transactions): producer id -> its epoch, the last PRODUCER_STATE_BATCHES batches it wrote
 * (first and last sequence, first and last offset) and the last batch's timestamp.
 *
 * Owns: the map and the rules a produced batch is judged by. Pure code: no I/O; the caller feeds
 * it the batches of its log (producer_state_update) and asks before appending
 * (producer_state_check).
 *
 * Rules (Kafka 3.x: ProducerStateManager.ProducerAppendInfo.checkProducerEpoch/checkSequence and
 * ProducerStateEntry.findDuplicateBatch, storage/src/main/java/org/apache/kafka/storage/
 * internals/log/ProducerAppendInfo.java, read for this module):
 * - a batch with the producer's epoch and the first and last sequence of one of its kept batches
 *   is a duplicate: answered with that batch's offsets, not appended;
 * - an epoch below the producer's: INVALID_PRODUCER_EPOCH (Kafka answers it since 2.7, not the
 *   fatal PRODUCER_FENCED, so a client can recover);
 * - a new (higher) epoch must start at sequence 0, the same epoch must continue at the last
 *   sequence + 1 (after INT32_MAX comes 0): otherwise OUT_OF_ORDER_SEQUENCE_NUMBER;
 * - a producer the partition does not know (never seen, or expired) is accepted at any sequence
 *   (KIP-360: Kafka no longer answers UNKNOWN_PRODUCER_ID since 2.5).
 *
 * Invariants: every entry holds 1..PRODUCER_STATE_BATCHES batches, oldest first, of its current
 * epoch; at most PRODUCER_STATE_PRODUCERS_MAX entries (the one written longest ago is forgotten to
 * make room, as if it had expired).
 */
#ifndef CHRONIK_LOG_PRODUCER_STATE_H
#define CHRONIK_LOG_PRODUCER_STATE_H

#include "base/limits.h"

#include <stdbool.h>
#include <stdint.h>

struct producer_batch {
    int32_t first_seq;
    int32_t last_seq;
    int64_t first_offset;
    int64_t last_offset;
};

struct producer_entry {
    int64_t producer_id; /* -1: an empty slot */
    int16_t epoch;
    uint8_t batch_count;
    int64_t last_timestamp_ms;
    struct producer_batch batches[PRODUCER_STATE_BATCHES]; /* oldest first */
};

struct producer_state {
    struct producer_entry *slots; /* open addressing, a power of two of them (or none) */
    uint32_t cap;
    uint32_t count;
};

/* A batch as the rules see it (producer_id >= 0). */
struct producer_append {
    int64_t producer_id;
    int16_t epoch;
    int32_t first_seq;
    int32_t record_count; /* lastOffsetDelta + 1 */
    int64_t first_offset; /* where it went (update only) */
    int64_t timestamp_ms; /* its max timestamp (update only) */
};

enum producer_verdict {
    PRODUCER_APPEND = 0,    /* write it */
    PRODUCER_DUPLICATE,     /* written before: *dup holds where */
    PRODUCER_OUT_OF_ORDER,  /* OUT_OF_ORDER_SEQUENCE_NUMBER */
    PRODUCER_INVALID_EPOCH, /* INVALID_PRODUCER_EPOCH */
};

void producer_state_init(struct producer_state *ps);
void producer_state_deinit(struct producer_state *ps);
void producer_state_clear(struct producer_state *ps);
/* dst (initialised) becomes a copy of src. */
void producer_state_copy(struct producer_state *dst, const struct producer_state *src);

/* The sequence count records after seq, wrapping past INT32_MAX to 0 (Kafka's
 * DefaultRecordBatch.incrementSequence). */
int32_t producer_seq_add(int32_t seq, int32_t count);

/* Judges a batch against the state (see above); *dup is set for PRODUCER_DUPLICATE. */
enum producer_verdict producer_state_check(const struct producer_state *ps,
                                           const struct producer_append *a,
                                           struct producer_batch *dup);

/* Records a batch the log holds (appended here or replicated): no rule is checked, as Kafka
 * applies a follower's batches. A new epoch forgets the producer's batches of the old one. */
void producer_state_update(struct producer_state *ps, const struct producer_append *a);

/* Forgets producers whose last batch's timestamp is expiration_ms or more before now_ms; the
 * count forgotten. */
uint32_t producer_state_expire(struct producer_state *ps, int64_t now_ms, int64_t expiration_ms);

/* The producer's entry, or NULL. */
const struct producer_entry *producer_state_find(const struct producer_state *ps,
                                                 int64_t producer_id);

#endif
