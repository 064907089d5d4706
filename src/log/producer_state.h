/*
 * Idempotent and transactional producers' state of one partition (Kafka's
 * ProducerStateManager): producer id -> its epoch, the last PRODUCER_STATE_BATCHES batches it
 * wrote (first and last sequence, first and last offset), the last batch's timestamp, the first
 * offset of its ongoing transaction and the coordinator epoch of its last marker; and for the
 * partition the ongoing transactions (by first offset) and the ended ones whose marker is not yet
 * below the high watermark. The aborted ones are not kept here: each ABORT marker yields its
 * entry (producer_state_end_txn) for the log's aborted-transaction index (log.h), which keeps
 * the whole history on disk, segment by segment, so this state stays as small as the producers.
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
 *   (KIP-360: Kafka no longer answers UNKNOWN_PRODUCER_ID since 2.5);
 * - a non-transactional batch of a producer with an ongoing transaction: INVALID_TXN_STATE.
 * Transaction markers (Kafka's ProducerAppendInfo.appendEndTxnMarker): an epoch below the
 * producer's is INVALID_PRODUCER_EPOCH, a coordinator epoch below the one of the producer's last
 * marker TRANSACTION_COORDINATOR_FENCED; otherwise the marker ends the producer's ongoing
 * transaction (if any: a retried marker ends nothing), takes its epoch and coordinator epoch.
 *
 * Last stable offset (Kafka's firstUnstableOffset): the smallest first offset of a transaction
 * that is ongoing, or ended by a marker at or past the high watermark (a marker not yet
 * committed may still be lost, so its transaction is not yet decided), capped by the high
 * watermark. Everything below it is decided: read_committed readers see it, filtering the
 * aborted transactions out.
 *
 * Invariants: every entry holds 0..PRODUCER_STATE_BATCHES batches, oldest first, of its current
 * epoch (none only after a marker of a new epoch, or for a producer known from a marker alone); at
 * most PRODUCER_STATE_PRODUCERS_MAX entries (the one written longest ago is forgotten to make room,
 * as if it had expired; a producer with an ongoing transaction never expires, as in Kafka).
 * `ongoing` holds exactly the entries with txn_first_offset >= 0, by first offset; `ended` by
 * marker offset.
 */
#ifndef CHRONIK_LOG_PRODUCER_STATE_H
#define CHRONIK_LOG_PRODUCER_STATE_H

#include "base/buf.h"
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
    int64_t txn_first_offset;  /* the ongoing transaction's first offset, -1: none */
    int32_t coordinator_epoch; /* of the producer's last marker, -1: none yet */
    struct producer_batch batches[PRODUCER_STATE_BATCHES]; /* oldest first */
};

/* A transaction: ongoing (last_offset -1) or ended by the marker at last_offset. */
struct producer_txn {
    int64_t producer_id;
    int64_t first_offset;
    int64_t last_offset;
};

/* An aborted transaction (Kafka's AbortedTxn), an entry of the log's aborted-transaction index:
 * the last stable offset right after its marker. */
struct producer_aborted {
    int64_t producer_id;
    int64_t first_offset;
    int64_t last_offset; /* the ABORT marker's offset */
    int64_t last_stable_offset;
};

struct producer_state {
    struct producer_entry *slots; /* open addressing, a power of two of them (or none) */
    uint32_t cap;
    uint32_t count;
    struct producer_txn *ongoing; /* by first offset */
    uint32_t ongoing_count, ongoing_cap;
    struct producer_txn *ended; /* by marker offset, the marker at or past the high watermark */
    uint32_t ended_count, ended_cap;
};

/* A batch as the rules see it (producer_id >= 0). */
struct producer_append {
    int64_t producer_id;
    int16_t epoch;
    int32_t first_seq;
    int32_t record_count; /* lastOffsetDelta + 1 */
    int64_t first_offset; /* where it went (update only) */
    int64_t timestamp_ms; /* its max timestamp (update only) */
    bool transactional;
};

/* A transaction marker (a control batch) as the rules see it. */
struct producer_marker {
    int64_t producer_id;
    int16_t epoch;
    int32_t coordinator_epoch;
    bool commit;
    int64_t offset;       /* where it went (end only) */
    int64_t timestamp_ms; /* (end only) */
};

enum producer_verdict {
    PRODUCER_APPEND = 0,         /* write it */
    PRODUCER_DUPLICATE,          /* written before: *dup holds where */
    PRODUCER_OUT_OF_ORDER,       /* OUT_OF_ORDER_SEQUENCE_NUMBER */
    PRODUCER_INVALID_EPOCH,      /* INVALID_PRODUCER_EPOCH */
    PRODUCER_INVALID_TXN_STATE,  /* INVALID_TXN_STATE */
    PRODUCER_COORDINATOR_FENCED, /* TRANSACTION_COORDINATOR_FENCED (markers) */
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

/* Judges a marker (see above): PRODUCER_APPEND, PRODUCER_INVALID_EPOCH or
 * PRODUCER_COORDINATOR_FENCED. */
enum producer_verdict producer_state_check_marker(const struct producer_state *ps,
                                                  const struct producer_marker *m);

/* Records a marker the log holds, unchecked: ends the producer's ongoing transaction. Returns
 * true when an ABORT ended one: *aborted is then its entry for the aborted-transaction index. */
bool producer_state_end_txn(struct producer_state *ps, const struct producer_marker *m,
                            struct producer_aborted *aborted);

/* The last stable offset for the high watermark hw (see above); forgets ended transactions
 * whose marker is below hw. */
int64_t producer_state_stable_offset(struct producer_state *ps, int64_t hw);

/*
 * Snapshots (Kafka's producer-state snapshot files): the whole state as of next_offset (every
 * batch below it taken in), so a replica reads only the log after it. Layout, big-endian:
 * crc32c u32 (of everything after it), version i16 = 2, next_offset i64, then producers (count
 * u32; each: id i64, epoch i16, coordinator epoch i32, last timestamp i64, transaction first
 * offset i64, batch count u8, batches (first seq i32, last seq i32, first offset i64, last offset
 * i64)) and ended transactions (count u32; id, first, last i64). The ongoing transactions follow
 * from the producers. A version 1 snapshot (which also held the aborted transactions) does not
 * decode: its state is rebuilt from the log, and with it the aborted-transaction index.
 */
void producer_state_encode(const struct producer_state *ps, int64_t next_offset, struct buf *out);
/* Replaces ps (initialised) with the snapshot's state: 0 and *next_offset, or ERR_CORRUPT for
 * bytes that are not a whole, consistent snapshot (ps is then empty). Never trusts a count. */
int producer_state_decode(struct producer_state *ps, const uint8_t *p, size_t len,
                          int64_t *next_offset);

/* The producer's entry, or NULL. */
const struct producer_entry *producer_state_find(const struct producer_state *ps,
                                                 int64_t producer_id);

#endif
