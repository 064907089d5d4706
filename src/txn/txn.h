/*
 * The transaction coordinator's state, as a pure module: Kafka's TransactionMetadata of every
 * transactional id of the __transaction_state partitions this node coordinates, the records
 * that make it durable (Kafka's TransactionLogKey/TransactionLogValue, so the topic reads as a
 * Kafka broker's), and the decisions of Kafka's TransactionCoordinator for InitProducerId,
 * AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, a timed-out transaction and an expired id.
 *
 * Owns: the table of metadata (struct txn_coord) and the state of each __transaction_state
 * partition (not owned, loading, ready, failed). A transactional id lives in partition
 * txn_partition_of(id) (Kafka's abs(Java String.hashCode) mod partitions, the rule of
 * __consumer_offsets too); the coordinator answers for it only while that partition is ready.
 *
 * How a change happens (Kafka's prepareTransitionTo / completeTransitionTo): a decision
 * function reads the current metadata and fills a target (a full copy of what the metadata
 * becomes). The host marks the current one pending, appends the target's record to the
 * partition with acks=all, and on success stores the target with txn_coord_put(); on failure
 * it only clears pending. While pending, every request for the id gets CONCURRENT_TRANSACTIONS,
 * so at most one change per id is in flight.
 *
 * States (Kafka's numbering, persisted): Empty -> Ongoing (partitions added) -> PrepareCommit or
 * PrepareAbort (EndTxn, a timeout, or an InitProducerId fencing an ongoing transaction) ->
 * CompleteCommit or CompleteAbort once every partition has its marker -> Ongoing again, or
 * Empty after an epoch bump. A timeout and a fence abort with the epoch bumped, so the producer
 * of the transaction is fenced (PRODUCER_FENCED), as Kafka does.
 *
 * Pure: no sockets, files, clocks or threads; time comes in as now_ms. Decoders never trust a
 * length before checking it against the bytes present and base/limits.h, and never assert on
 * input. Not thread-safe; one owner thread.
 */
#ifndef CHRONIK_TXN_TXN_H
#define CHRONIK_TXN_TXN_H

#include "base/buf.h"
#include "base/bytes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The Kafka error codes the coordinator answers with (their protocol values). */
enum txn_error {
    TXN_ERR_UNKNOWN_SERVER_ERROR = -1,
    TXN_ERR_NONE = 0,
    TXN_ERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
    TXN_ERR_LOAD_IN_PROGRESS = 14,
    TXN_ERR_COORDINATOR_NOT_AVAILABLE = 15,
    TXN_ERR_NOT_COORDINATOR = 16,
    TXN_ERR_INVALID_REQUEST = 42,
    TXN_ERR_INVALID_PRODUCER_EPOCH = 47,
    TXN_ERR_INVALID_TXN_STATE = 48,
    TXN_ERR_INVALID_PRODUCER_ID_MAPPING = 49,
    TXN_ERR_INVALID_TRANSACTION_TIMEOUT = 50,
    TXN_ERR_CONCURRENT_TRANSACTIONS = 51,
    TXN_ERR_OPERATION_NOT_ATTEMPTED = 55,
    TXN_ERR_PRODUCER_FENCED = 90,
    TXN_ERR_TRANSACTIONAL_ID_NOT_FOUND = 105,
};

/* Kafka's TransactionState ids, as stored in TransactionLogValue.TransactionStatus. */
enum txn_state {
    TXN_EMPTY = 0,
    TXN_ONGOING = 1,
    TXN_PREPARE_COMMIT = 2,
    TXN_PREPARE_ABORT = 3,
    TXN_COMPLETE_COMMIT = 4,
    TXN_COMPLETE_ABORT = 5,
    TXN_DEAD = 6,
};
#define TXN_STATE_COUNT 7

/* Kafka's name of a state ("Empty", "Ongoing", ...). */
const char *txn_state_name(enum txn_state s);
/* The state of a name (exact, as Kafka's ListTransactions filter); false for none. */
bool txn_state_parse(struct slice name, enum txn_state *out);

/* One partition of a transaction; topic owned, NUL-terminated. */
struct txn_part {
    char *topic;
    int32_t partition;
};

struct txn_meta {
    char *id; /* owned, NUL-terminated (a Kafka string has no NUL); id_len bytes */
    size_t id_len;
    uint32_t partition; /* of __transaction_state */
    int64_t producer_id;
    int16_t epoch;
    int32_t timeout_ms;
    enum txn_state state;
    struct txn_part *parts; /* sorted by (topic, partition), unique */
    size_t part_count;
    int64_t start_ms;   /* when the ongoing transaction started, -1 when none */
    int64_t update_ms;  /* when it last changed */
    int16_t last_epoch; /* in memory only: the epoch before InitProducerId's last bump, -1 */
    bool pending;       /* in memory only: a change is being appended */
};

/* Frees what m owns and leaves it empty. */
void txn_meta_clear(struct txn_meta *m);
/* dst (empty) becomes a deep copy of src, pending false. */
void txn_meta_copy(struct txn_meta *dst, const struct txn_meta *src);
/* Whether the transaction holds the partition. */
bool txn_meta_has(const struct txn_meta *m, struct slice topic, int32_t partition);

/* ---- records ----------------------------------------------------------------------------- */

/* Key: int16 version 0, transactional id (int16-length string). */
void txn_key_encode(struct buf *out, struct slice id);
/* Value version 0: producer id int64, epoch int16, timeout int32, status int8, partitions
 * (nullable array of topic string and int32 array), last update int64, start int64. */
void txn_value_encode(struct buf *out, const struct txn_meta *m);
/* ERR_UNSUPPORTED for a key version that is not a transaction's, ERR_CORRUPT for bad bytes. */
int txn_key_decode(struct slice in, struct slice *id);
/* Versions 0 and 1 (1 is flexible: its tagged fields are skipped). Fills the value's fields
 * of out (empty; parts allocated); id and partition are left to the caller. */
int txn_value_decode(struct slice in, struct txn_meta *out);

/* ---- the table of metadata and the partitions' states ------------------------------------ */

enum txn_part_state {
    TXN_PART_NOT_OWNED = 0,
    TXN_PART_LOADING,
    TXN_PART_READY,
    TXN_PART_FAILED,
};

struct txn_coord {
    uint32_t partition_count;
    enum txn_part_state *part_states;
    struct txn_meta **slots; /* open addressing by id, a power of two of them; NULL empty */
    uint32_t slot_count;
    uint32_t count;
    struct txn_meta **all; /* the same metadata, in no order: for iteration */
};

void txn_coord_init(struct txn_coord *c, uint32_t partition_count);
void txn_coord_deinit(struct txn_coord *c);
/* Kafka's partition of an id: abs(Java String.hashCode(id)) mod partition_count. */
uint32_t txn_partition_of(struct slice id, uint32_t partition_count);
/* Whether requests for the id are served here: NONE, or NOT_COORDINATOR, LOAD_IN_PROGRESS,
 * UNKNOWN_SERVER_ERROR (its partition failed to load). */
int16_t txn_coord_check(const struct txn_coord *c, struct slice id);
/* The id's metadata (its partition ready or loading), or NULL. */
struct txn_meta *txn_coord_find(const struct txn_coord *c, struct slice id);
/* Stores *m (moved: *m is left empty) in place of the id's metadata; returns the stored one.
 * ERR_TOO_LARGE (nothing stored, *m untouched) when TXN_IDS_MAX are held. */
int txn_coord_put(struct txn_coord *c, struct txn_meta *m, struct txn_meta **stored);
void txn_coord_remove(struct txn_coord *c, struct slice id);
/* Iteration: the i-th metadata, i < c->count; removing changes the order. */
static inline struct txn_meta *txn_coord_at(const struct txn_coord *c, uint32_t i)
{
    return c->all[i];
}

/* Loading partition p: begin (its old metadata dropped), apply its batches in log order,
 * then done or failed (a failed one drops what it loaded and answers UNKNOWN_SERVER_ERROR). */
void txn_coord_load_begin(struct txn_coord *c, uint32_t p);
int txn_coord_load_batches(struct txn_coord *c, uint32_t p, const uint8_t *bytes, size_t len,
                           int64_t first_offset, int64_t *bad_offset);
void txn_coord_load_done(struct txn_coord *c, uint32_t p);
void txn_coord_load_failed(struct txn_coord *c, uint32_t p);
/* Partition p is no longer led here: its metadata is dropped. */
void txn_coord_unload(struct txn_coord *c, uint32_t p);

/* ---- decisions ----------------------------------------------------------------------------- */

struct txn_init_req {
    struct slice id;
    int32_t timeout_ms;
    int64_t producer_id; /* KIP-360: the producer's current id and epoch, -1 when not given */
    int16_t epoch;
    int32_t timeout_max_ms;  /* transaction.max.timeout.ms */
    int64_t new_producer_id; /* an id the host took, when txn_init_needs_id() said so */
};

/* Whether an InitProducerId for m (NULL: an id not known) needs a fresh producer id. */
bool txn_init_needs_id(const struct txn_meta *m);
/*
 * InitProducerId with a transactional id. On NONE *target is what to append; *fence says the
 * target aborts an ongoing transaction (PrepareAbort with the epoch bumped): once appended
 * its markers go out and the producer is answered CONCURRENT_TRANSACTIONS (it retries);
 * otherwise it is answered with the target's producer id and epoch. *retry: the request is a
 * retry of the bump that made the current epoch (KIP-360 producer id and epoch equal to the
 * epoch before it, Kafka's lastProducerEpoch): *target is a copy of m, answered at once with
 * no append.
 */
int16_t txn_decide_init(const struct txn_meta *m, const struct txn_init_req *r, uint32_t partition,
                        int64_t now_ms, struct txn_meta *target, bool *fence, bool *retry);
/* AddPartitionsToTxn / AddOffsetsToTxn. On NONE with *append false nothing changes (every
 * partition is in the transaction already). */
int16_t txn_decide_add(const struct txn_meta *m, int64_t producer_id, int16_t epoch,
                       const struct txn_part *parts, size_t count, int64_t now_ms,
                       struct txn_meta *target, bool *append);
/* EndTxn. On NONE with *append false the answer is NONE at once (a retry of a completed end). */
int16_t txn_decide_end(const struct txn_meta *m, int64_t producer_id, int16_t epoch, bool commit,
                       int64_t now_ms, struct txn_meta *target, bool *append);
/* A transaction ongoing past its timeout: true with *target its abort (epoch bumped). */
bool txn_decide_timeout(const struct txn_meta *m, int64_t now_ms, struct txn_meta *target);
/* Every marker of a PrepareCommit/PrepareAbort is written: *target is its completion. */
void txn_decide_complete(const struct txn_meta *m, int64_t now_ms, struct txn_meta *target);
/* Whether an idle id (Empty, CompleteCommit, CompleteAbort) has expired: its tombstone goes. */
bool txn_decide_expire(const struct txn_meta *m, int64_t now_ms, int64_t expiration_ms);

#endif
