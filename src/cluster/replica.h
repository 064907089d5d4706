/*
 * A partition replica: what the broker's handlers see of a partition. Handlers never touch the
 * log directly: produce calls replica_append ("append, then tell me when committed"), fetch
 * reads up to the replica's high watermark and watches it advance.
 *
 * Standalone mode (today): this node is the only replica and always the leader; an entry is
 * committed when it is durable in the local log, so the high watermark is the log's durable
 * offset and advances when the flusher's group commit covers an append. The cluster mode will
 * put a Raft group under this same interface (committed = durable on a majority).
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

#include "log/log.h"

#include <stdbool.h>
#include <stdint.h>

struct replica;

/* Called once the batch appended with it is committed (err 0) or can never be (err < 0: the
 * log failed). */
typedef void (*replica_commit_fn)(void *ctx, int err);

struct replica_commit {
    struct replica_commit *next;
    int64_t last_offset;
    replica_commit_fn fn;
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
/* Frees without a clean close (used after the log failed or for a deleted partition). */
void replica_abandon(struct replica *r);

/*
 * Appends one batch that passed batch_parse (stamped in place with its offset and the leader
 * epoch). On success *out holds the assigned offsets and, if c is not NULL, c->fn runs once the
 * batch is committed. A negative return means nothing was appended and no callback runs.
 */
int replica_append(struct replica *r, uint8_t *batch, size_t len, struct replica_commit *c,
                   replica_commit_fn fn, void *ctx, struct log_append_result *out);

/* Whole batches from offset, up to max_bytes (KIP-74: the first batch whole), never past the
 * high watermark. Errors as log_read. */
int replica_read(struct replica *r, int64_t offset, uint64_t max_bytes, struct log_read *out);

void replica_watch_init(struct replica_watch *w, replica_watch_fn fn, void *ctx);
void replica_watch_add(struct replica *r, struct replica_watch *w);
void replica_watch_remove(struct replica *r, struct replica_watch *w);

struct log *replica_log(struct replica *r);
int64_t replica_high_watermark(const struct replica *r);
int64_t replica_log_start_offset(const struct replica *r);
int64_t replica_log_end_offset(const struct replica *r);
int32_t replica_leader_epoch(const struct replica *r);
/* The error that made the replica unusable (a storage error), or 0. */
int replica_error(const struct replica *r);

#endif
