/*
 * A partition replica: what the broker's handlers see of a partition. Handlers never touch the
 * log directly: produce calls replica_append ("append, then tell me when committed"), fetch
 * reads up to the replica's high watermark and watches it advance.
 *
 * Standalone mode (a partition of one replica): this node is the only replica and always the
 * leader; an entry is committed when it is durable in the local log, so the high watermark is
 * the log's durable offset and advances when the flusher's group commit covers an append.
 *
 * Raft mode (replica_attach: a partition with more replicas): the partition's Raft group on
 * the node's Raft host runs over the same log. Only a ready leader (its term's no-op
 * committed) appends and is read from; committed = durable on a majority, and the high
 * watermark is the commit index (set by the host). REPLICA_WAIT_COMMIT (acks=all) completes
 * once the batch is committed and held durably by at least min_insync replicas, or, committed
 * but short of them, with ERR_REPLICAS once the ISR is smaller than min_insync (Kafka's
 * NOT_ENOUGH_REPLICAS_AFTER_APPEND) or ERR_TIMEOUT at its deadline_ms;
 * REPLICA_WAIT_LEADER (acks=1) once it is durable here, if this node's log still holds it in
 * the term it was appended in. A batch that can no longer commit here, and any wait still
 * pending when this node stops leading, completes with ERR_STATE (Kafka's
 * NOT_LEADER_OR_FOLLOWER). The leader keeps the ISR: itself and every
 * follower that, when it last answered, had acknowledged the leader's log end of one tick
 * earlier, if that was within the last lag_ms (replica_tick), and whose broker is eligible
 * (replica_set_ineligible).
 *
 * Ownership: replica_open allocates the replica and its log; replica_close frees both. Commit
 * waiters and watches are caller-allocated (usually in a request's arena) and linked in while
 * active; the caller must not free one before its callback ran or it was removed.
 *
 * Threads: everything runs on the broker's loop thread. Callbacks are never called from inside
 * the function that registered them.
 */
#ifndef CHRONIK_CLUSTER_REPLICA_H
#define CHRONIK_CLUSTER_REPLICA_H

#include "cluster/raft_host.h"
#include "log/batch.h"
#include "log/log.h"
#include "log/producer_state.h"

#include <stdbool.h>
#include <stdint.h>

struct replica;

/* Called once the batch appended with it is committed (err 0) or can never be (err < 0: the
 * log failed). */
typedef void (*replica_commit_fn)(void *ctx, int err);

struct replica_commit {
    struct replica_commit *next;
    int64_t last_offset;
    int64_t term;        /* Raft mode: the term it was appended in */
    uint32_t min_insync; /* Raft mode, REPLICA_WAIT_COMMIT: replicas that must hold it */
    /* Raft mode, REPLICA_WAIT_COMMIT: 0, or set by the caller after replica_append (the clock
     * replica_tick is given): committed but still short of min_insync at a tick at or after
     * it, the wait ends with ERR_TIMEOUT (Kafka's REQUEST_TIMED_OUT at the request's timeout). */
    uint64_t deadline_ms;
    replica_commit_fn fn;
    void *ctx;
    struct replica *r;
    struct raft_waiter waiter; /* Raft mode, REPLICA_WAIT_COMMIT */
};

/* What an append waits for before its callback runs. */
enum replica_wait {
    REPLICA_WAIT_NONE,   /* acks=0: nothing */
    REPLICA_WAIT_LEADER, /* acks=1: durable on this node (the leader) */
    REPLICA_WAIT_COMMIT, /* acks=all: committed */
};

/* Raft mode: called on the loop when the group's leader, term or this node's readiness to lead
 * changed, or the ISR it keeps as leader changed. */
typedef void (*replica_change_fn)(void *ctx);

struct replica_raft {
    struct raft_host *host;
    struct wire_group group;
    struct raft_config config; /* the replicas, preferred leader first */
    uint32_t election_ticks;
    uint32_t heartbeat_ticks;
    uint64_t seed;
    replica_change_fn on_change;
    void *ctx;
};

/* Called on the loop when the high watermark advanced or the replica failed or closed. */
typedef void (*replica_watch_fn)(void *ctx);

struct replica_watch {
    struct replica_watch *prev, *next;
    bool linked;
    replica_watch_fn fn;
    void *ctx;
};

/* Opens (creating if needed) the partition's log in dir and recovers it. leader_epoch is the
 * epoch stamped on appended batches. */
int replica_open(const struct log_env *env, const char *dir, const struct log_config *cfg,
                 int32_t leader_epoch, struct replica **out);
/* Fails every waiting commit with ERR_CLOSED and notifies watches (replica_error() is then
 * ERR_CLOSED, so a watcher lets go of the replica), then closes the log cleanly. */
int replica_close(struct replica *r);
/* replica_close in two steps (see log_close_begin): the first on the loop thread, the second
 * on any one thread. */
void replica_close_begin(struct replica *r);
int replica_close_end(struct replica *r);
/* Frees without a clean close (used after the log failed or for a deleted partition). */
void replica_abandon(struct replica *r);

/* Puts the replica under a Raft group (loop thread, once, before any append): ERR_* of
 * raft_group_open. The high watermark drops to the log start until the group commits. */
int replica_attach(struct replica *r, const struct replica_raft *o);

/*
 * Appends one batch that passed batch_parse (stamped in place with its offset and the leader
 * epoch). On success *out holds the assigned offsets and, unless wait is REPLICA_WAIT_NONE,
 * c->fn runs once the batch is what wait asks for (see above). A negative return means nothing
 * was appended and no callback runs; ERR_STATE: this node does not lead (Raft mode).
 */
int replica_append(struct replica *r, uint8_t *batch, size_t len, enum replica_wait wait,
                   uint32_t min_insync, struct replica_commit *c, replica_commit_fn fn, void *ctx,
                   struct log_append_result *out);

/*
 * Idempotent producers: judges a batch with a producer id (h, as parsed) against the partition's
 * producer state before replica_append, on a replica that leads (log/producer_state.h has the
 * rules; producers silent for expiration_ms by now_ms, the wall clock, are forgotten). Returns
 * an enum producer_verdict (PRODUCER_DUPLICATE sets *dup: the batch as first written), ERR_STATE
 * when this node does not lead, or a storage error reading the log for the state.
 */
int replica_producer_check(struct replica *r, const struct batch_header *h, int64_t now_ms,
                           int64_t expiration_ms, struct producer_batch *dup);

/* Transaction markers: judges one (m: producer id, epochs) before its control batch is
 * appended, as replica_producer_check judges a batch: an enum producer_verdict
 * (PRODUCER_APPEND, PRODUCER_INVALID_EPOCH, PRODUCER_COORDINATOR_FENCED) or an error. */
int replica_marker_check(struct replica *r, const struct producer_marker *m, int64_t now_ms,
                         int64_t expiration_ms);

/* The last stable offset (log/producer_state.h): <= the high watermark; Raft mode, also <= what
 * the replica's committed producer state has read. A storage error reading the log for it. */
int replica_last_stable_offset(struct replica *r, int64_t *out);
/* The aborted transactions overlapping [from, upper), up to max (by marker offset). */
int replica_aborted(struct replica *r, int64_t from, int64_t upper, struct producer_aborted *out,
                    uint32_t max, uint32_t *count);

/* Raft mode, once per host tick (tick_ms apart): the ISR (see above; lag_ms is
 * replica.lag.time.max.ms) and acks=all waits for min_insync replicas. */
void replica_tick(struct replica *r, uint64_t now_ms, uint64_t tick_ms, uint64_t lag_ms);
/* Raft mode: the brokers that may not be in an ISR (the metadata says fenced or in controlled
 * shutdown), of any count: members among them leave a leader's ISR at its next replica_tick,
 * and rejoin it once eligible again and caught up. */
void replica_set_ineligible(struct replica *r, const int32_t *ids, uint32_t n);
/* Raft mode, ready leader: where a controlled shutdown's leadership transfer should go: the
 * first in-sync voter in replica order heard from within the last within_ticks (the one that
 * would campaign first were this node gone); -1 when there is none.
 * A stopped follower may still be in the ISR, and a transfer to it can only time out. */
int32_t replica_handover_target(struct replica *r, uint32_t within_ticks);
/* Raft mode, ready leader: member id holds everything in the leader's log. */
bool replica_caught_up(struct replica *r, int32_t id);
/* Raft mode: the group (NULL in standalone mode). */
struct raft_group *replica_group(struct replica *r);
/* True when this node serves the partition: standalone, or the ready Raft leader. */
bool replica_leads(struct replica *r);
/* Raft mode: this node leads the current term but cannot take appends yet (its term's first
 * entry is not committed) or for now (it hands the leadership over): what comes for it may
 * wait for that to settle (replica watches say when) rather than be refused. */
bool replica_leader_pending(struct replica *r);
/* Whether a leader has work only replica_tick does, so its group needs the tick even while
 * quiesced: acks=all waits committed but not yet held by min.insync.replicas replicas (the
 * acknowledgement that completes them moves no commit), or a member out of the ISR (the tick
 * takes it back once it has caught up, which is when its group quiesces). */
bool replica_needs_tick(const struct replica *r);
/* Raft mode: the leader this node knows (-1 when none) and the current term. */
int32_t replica_leader(const struct replica *r);
int64_t replica_term(const struct replica *r);
/* The ISR as the leader keeps it (standalone: this node), ids in replica order; the count. */
uint32_t replica_isr(const struct replica *r, int32_t *out, uint32_t max);

/* Whole batches from offset, up to max_bytes (KIP-74: the first batch whole), never past the
 * high watermark. Errors as log_read. */
int replica_read(struct replica *r, int64_t offset, uint64_t max_bytes, struct log_read *out);
/* A client's read (Fetch): as replica_read without Raft's no-ops (log_read_records), never past
 * limit either (read_committed: the last stable offset). */
int replica_read_records(struct replica *r, int64_t offset, uint64_t max_bytes, int64_t limit,
                         struct log_read *out);

void replica_watch_init(struct replica_watch *w, replica_watch_fn fn, void *ctx);
void replica_watch_add(struct replica *r, struct replica_watch *w);
void replica_watch_remove(struct replica *r, struct replica_watch *w);

struct log *replica_log(struct replica *r);
int64_t replica_high_watermark(const struct replica *r);
/* The high watermark clients are shown (Fetch, ListOffsets, DeleteRecords): without the no-ops
 * just below it (log_visible_end), so a consumer past every record is at the end. */
int64_t replica_visible_high_watermark(struct replica *r);
int64_t replica_log_start_offset(const struct replica *r);
int64_t replica_log_end_offset(const struct replica *r);
int32_t replica_leader_epoch(const struct replica *r);
/* The error that made the replica unusable (a storage error), or 0. */
int replica_error(const struct replica *r);

#endif
