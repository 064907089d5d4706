/*
 * Standalone replica: the log's group commit drives the high watermark.
 *
 * Invariants: commits are queued in append order, so their last offsets increase; the high
 * watermark equals the log's durable offset and only grows (except through truncation, which
 * the standalone mode never does); a commit callback runs exactly once.
 *
 * The replica keeps at most two flush waiters on its log, each for the end of the log when it
 * was registered: standalone, the second one for appends made while the first waits, so the log
 * may sync them beside the sync in flight; the next one is registered from a callback when more
 * was appended meanwhile (Raft mode: one, plus, after a truncation cut the log below what it
 * waits for, that one, until the log grows back past it: at most one per truncation).
 * One waiter per append would tie the log's waiter bound to how fast clients produce while a
 * sync is slow (acks=0 producers add appends without waiting for anything), and reaching that
 * bound must never fail the partition. The group commit is unchanged: a sync covers everything
 * appended before it starts, and the log has at most two in flight.
 * What waits on the replica (commits, watches) is memory of the requests that wait, which the
 * broker bounds (queued.max.request.bytes).
 *
 * Raft mode: the host owns the high watermark (commit + 1) and the log's durability; the
 * replica keeps the acks=1 waits (commits, as above, completed by the log's durable offset but
 * only for entries still in the log in their term), the acks=all waits that are committed but
 * not yet on min_insync replicas (insync, rechecked at each commit and tick: the acknowledgement
 * that completes one moves no commit, so replica_needs_tick keeps a quiesced group ticked),
 * and the ISR (recomputed at each tick; replica_needs_tick also asks for the tick while a member
 * is out of it).
 *
 * REPLICA_BUG_* (never defined in a product build) each break one of these promises, so the
 * whole-cluster simulator (tests/sim/cluster_sim.c) can show it catches the break:
 * ACK_ON_LEADER_FSYNC answers acks=all once the batch is durable here, READ_BEYOND_COMMIT reads
 * up to the log end instead of the high watermark, ISR_IGNORED answers acks=all at the commit
 * however many replicas min_insync asks for, PRODUCERS_COMMITTED judges a producer's batch
 * by the committed producer state alone (a retry of a batch appended but not committed yet is
 * appended again).
 */
#include "cluster/replica.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "io/io.h"
#include "log/batch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct replica {
    struct log *log;
    int32_t leader_epoch;
    int err;
    struct replica_commit *commits; /* oldest first */
    struct replica_commit *commits_tail;
    struct replica_watch watches; /* list head */
    uint32_t flush_waiters;       /* ours registered with the log: one, more after truncations */
    int64_t flush_target;         /* the end the newest one waits for */

    /* Idempotent producers (see "Producer state" below). */
    struct producer_state producers; /* standalone: the log's; Raft mode: the committed log's */
    struct producer_state live;      /* Raft mode, ready leader: producers + appended since */
    bool producers_loaded;           /* standalone: producers holds the whole log */
    int64_t producers_next;          /* Raft mode: the first offset producers has not read */
    int64_t producers_from;          /* standalone: what the snapshot held, the load reads from */
    char *snapshot_path;             /* the producer-state snapshot file */
    struct buf closing_snapshot;     /* replica_close_begin to _end: the snapshot to write */
    uint32_t snapshot_segments;      /* the log's segment count at the last snapshot (or open) */
    struct io *io;
    int64_t producers_expire_ms; /* wall clock of the next expiry pass */

    /* Raft mode */
    struct raft_group *group;
    replica_change_fn on_change;
    void *change_ctx;
    int32_t leader;                /* as the group knows it, -1 when none */
    int64_t term;                  /* the group's current term */
    bool ready;                    /* leads with its term's no-op committed */
    bool transferring;             /* ready, and handing the leadership over */
    struct replica_commit *insync; /* committed acks=all waits short of min_insync replicas */
    uint32_t member_count;
    int32_t members[RAFT_MEMBERS_MAX];
    uint64_t caught_up_ms[RAFT_MEMBERS_MAX]; /* leader: when each last reached the end */
    bool in_isr[RAFT_MEMBERS_MAX];
    bool ineligible[RAFT_MEMBERS_MAX]; /* its broker may not be in the ISR (replica_set_ineligible)
                                        */
    bool rejoin[RAFT_MEMBERS_MAX];     /* ineligible since it was last seen caught up */
    uint64_t now_ms;                   /* the clock of the last replica_tick (insync deadlines) */
    int64_t end_at_tick;               /* leader: the log end at the previous tick */
};

/* The producer-state snapshot, in the partition's directory. */
#define REPLICA_SNAPSHOT_FILE "producer-state.snapshot"

static void on_durable(void *ctx, int err, int64_t durable_offset);

/* Registers our flush waiter for the log's end unless it is there already or nothing waits to
 * become durable. A failure of the log fails the replica. */
static int flush_ensure(struct replica *r)
{
    if (r->err != 0)
        return r->err;
    /* Raft mode: a truncation may have cut the log below the end our waiter waits for, and it
     * then waits until the log grows back past it (log_truncate_to), however long the partition
     * stays idle; one more waiter for the end as it is now. */
    int64_t end = log_end_offset(r->log);
    /* Standalone: a second waiter for what was appended since the first, so the log can start
     * its sync beside the one in flight (log_flush) rather than after it; never a third. */
    bool second = r->group == NULL && r->flush_waiters == 1 && r->flush_target < end;
    if (r->flush_waiters > 0 && r->flush_target <= end && !second)
        return 0;
    int rc = log_flush(r->log, end, on_durable, r);
    if (rc == 0) {
        r->flush_waiters++;
        r->flush_target = end;
    }
    if (rc < 0) {
        /* Only a failed log refuses our one waiter: the log's bound on waiters is far above it,
         * so no temporary limit can fail the replica. */
        ASSERT(rc == log_error(r->log));
        r->err = rc;
    }
    return rc < 0 ? rc : 0;
}

/*
 * The producer-state snapshot (log/producer_state.h) of a clean close: its state covers every
 * batch below its next offset, all durable then. It is used when that offset is within the
 * recovered log, which then still holds exactly those batches below it (only a crash's torn tail
 * is ever cut in standalone mode, and Raft mode snapshots committed state only); otherwise, or
 * when it does not decode, it is removed and the state read from the log start.
 */
static int snapshot_load(struct replica *r, const char *dir)
{
    bool is_dir = false;
    int rc = io_exists(r->io, r->snapshot_path, &is_dir);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    struct io_file *f = NULL;
    uint64_t size = 0;
    uint8_t *bytes = NULL;
    int64_t next = -1;
    rc = io_open(r->io, r->snapshot_path, IO_RDONLY, &f);
    if (rc == 0)
        rc = io_size(f, &size);
    if (rc == 0 && size <= PRODUCER_SNAPSHOT_BYTES_MAX) {
        bytes = xmalloc(size + 1);
        ssize_t got = io_pread(f, bytes, size, 0);
        rc = got < 0 ? (int)got : 0;
        if (got >= 0 && (uint64_t)got != size)
            rc = ERR_CORRUPT;
    } else if (rc == 0) {
        rc = ERR_CORRUPT;
    }
    if (f != NULL)
        io_close(f);
    if (rc == 0)
        rc = producer_state_decode(&r->producers, bytes, size, &next);
    free(bytes);
    /* Past the recovered end (it covered what a crash cut), or below the log start (retention
     * or a snapshot install dropped batches after it, which the state never read): not the
     * state of this log, so it is read from the log start instead, as Kafka does with a
     * producer snapshot older than the log start. */
    if (rc == 0 && (next > log_end_offset(r->log) || next < log_start_offset(r->log)))
        rc = ERR_CORRUPT;
    if (rc == ERR_CORRUPT) {
        /* Never trusted, and durably gone before anything is appended past it. */
        producer_state_clear(&r->producers);
        rc = io_remove(r->io, r->snapshot_path);
        return rc < 0 ? rc : io_sync_dir(r->io, dir);
    }
    if (rc < 0)
        return rc;
    r->producers_from = next > log_start_offset(r->log) ? next : log_start_offset(r->log);
    r->producers_next = r->producers_from;
    return 0;
}

/* Clean close: the state and the offset it covers, encoded before the log closes; written once
 * the log is closed, so everything it covers is durable. Empty when there is nothing to save. */
static void snapshot_encode(struct replica *r, struct buf *out)
{
    if (r->err != 0)
        return;
    if (r->group != NULL)
        producer_state_encode(&r->producers, r->producers_next, out);
    else if (r->producers_loaded)
        producer_state_encode(&r->producers, log_end_offset(r->log), out);
}

/*
 * Besides the clean close, a snapshot at every segment roll (as Kafka takes one at each roll), so
 * a restart after a crash reads only the log since the last roll, not since the last clean
 * close. A failed write keeps the previous snapshot, still a true state of a prefix of the log;
 * the next roll or the close tries again. Retention changing the segment count writes one too.
 */
static void snapshot_at_roll(struct replica *r)
{
    uint32_t segments = log_segment_count(r->log);
    if (segments == r->snapshot_segments)
        return;
    r->snapshot_segments = segments;
    struct buf snapshot;
    buf_init(&snapshot);
    snapshot_encode(r, &snapshot);
    /* The index entries of the markers it covers first: a restart re-reads only the log
     * after it, so it must not find them lost. */
    if (snapshot.len > 0 && log_txn_sync(r->log) == 0)
        (void)log_replace_file(r->io, r->snapshot_path, &snapshot);
    buf_deinit(&snapshot);
}

int replica_open(const struct log_env *env, const char *dir, const struct log_config *cfg,
                 int32_t leader_epoch, struct replica **out)
{
    struct replica *r = xcalloc(1, sizeof(*r));
    int rc = log_open(env, dir, cfg, &r->log);
    if (rc < 0) {
        free(r);
        return rc;
    }
    r->leader_epoch = leader_epoch;
    producer_state_init(&r->producers);
    producer_state_init(&r->live);
    r->producers_next = log_start_offset(r->log);
    r->producers_from = r->producers_next;
    r->io = env->io;
    size_t n = strlen(dir) + sizeof("/" REPLICA_SNAPSHOT_FILE);
    r->snapshot_path = xmalloc(n);
    snprintf(r->snapshot_path, n, "%s/" REPLICA_SNAPSHOT_FILE, dir);
    r->snapshot_segments = log_segment_count(r->log);
    rc = snapshot_load(r, dir);
    /* The state re-reads the log from there, adding the index entries of the markers after it
     * again: those a crash left (or lost, or tore) go first, so none is missing or twice. */
    if (rc == 0)
        rc = log_txn_truncate(r->log, r->producers_from);
    if (rc < 0) {
        producer_state_deinit(&r->producers);
        producer_state_deinit(&r->live);
        log_abandon(r->log);
        free(r->snapshot_path);
        free(r);
        return rc;
    }
    r->watches.prev = r->watches.next = &r->watches;
    /* Everything recovered is durable, so it is all committed. */
    rc = log_set_high_watermark(r->log, log_durable_offset(r->log));
    ASSERT(rc == 0);
    *out = r;
    return 0;
}

static void notify_watches(struct replica *r)
{
    /* Move the watches to a local list, then put each back before calling it: a callback may
     * remove any watch (its own or another still waiting on the local list) safely. */
    struct replica_watch pending;
    if (r->watches.next == &r->watches)
        return;
    pending.next = r->watches.next;
    pending.prev = r->watches.prev;
    pending.next->prev = &pending;
    pending.prev->next = &pending;
    r->watches.next = r->watches.prev = &r->watches;
    while (pending.next != &pending) {
        struct replica_watch *w = pending.next;
        pending.next = w->next;
        w->next->prev = &pending;
        w->prev = r->watches.prev;
        w->next = &r->watches;
        r->watches.prev->next = w;
        r->watches.prev = w;
        w->fn(w->ctx);
    }
}

/* Raft mode: an entry durable here counts for acks=1 only if the log still holds it in the
 * term it was appended in (a truncation may have put another leader's entry there). One that
 * a compaction (retention, DeleteRecords) dropped before its sync was seen is committed, and
 * is ours while this node still leads the term it was appended in: a leader never replaces
 * its own entries (it was refused as not ours: cluster_sim seed 322261). */
static int still_ours(struct replica *r, const struct replica_commit *c)
{
    int64_t term;
    if (r->group == NULL)
        return 0;
    if (raft_group_term_at(r->group, c->last_offset, &term) == 0)
        return term == c->term ? 0 : ERR_STATE;
    if (c->last_offset < log_start_offset(r->log) && raft_group_is_leader(r->group) &&
        raft_group_core(r->group)->term == c->term)
        return 0;
    return ERR_STATE;
}

static void finish_commits(struct replica *r, int err, int64_t durable_offset)
{
    while (r->commits != NULL && (err != 0 || r->commits->last_offset < durable_offset)) {
        struct replica_commit *c = r->commits;
        r->commits = c->next;
        if (r->commits == NULL)
            r->commits_tail = NULL;
        c->fn(c->ctx, err != 0 ? err : still_ours(r, c));
    }
}

static void on_durable(void *ctx, int err, int64_t durable_offset)
{
    struct replica *r = ctx;
    r->flush_waiters--;
    if (err != 0) {
        if (r->err == 0)
            r->err = err;
        finish_commits(r, err, 0);
        notify_watches(r);
        return;
    }
    if (r->group != NULL) {
        finish_commits(r, 0, durable_offset); /* the host owns the high watermark */
    } else if (durable_offset > log_high_watermark(r->log)) {
        int rc = log_set_high_watermark(r->log, durable_offset);
        ASSERT(rc == 0);
        finish_commits(r, 0, durable_offset);
        notify_watches(r);
    }
    /* Appends made while that sync ran: the log starts the next one now. */
    if (flush_ensure(r) < 0) {
        finish_commits(r, r->err, 0);
        notify_watches(r);
    }
}

static void finish_insync(struct replica *r, int err);

static void drop_all(struct replica *r)
{
    /* Watchers see the replica failed, so none keeps a pointer to it past this call. */
    if (r->err == 0)
        r->err = ERR_CLOSED;
    finish_commits(r, ERR_CLOSED, 0);
    finish_insync(r, ERR_CLOSED);
    /* Its acks=all waiters fail with ERR_CLOSED as the group closes. */
    if (r->group != NULL)
        raft_group_close(r->group);
    r->group = NULL;
    notify_watches(r);
    ASSERT(r->commits == NULL);
}

static void producers_free(struct replica *r)
{
    producer_state_deinit(&r->producers);
    producer_state_deinit(&r->live);
    free(r->snapshot_path);
}

int replica_close(struct replica *r)
{
    replica_close_begin(r);
    return replica_close_end(r);
}

void replica_close_begin(struct replica *r)
{
    buf_init(&r->closing_snapshot);
    snapshot_encode(r, &r->closing_snapshot); /* before drop_all marks the replica closed */
    drop_all(r);
    log_close_begin(r->log);
}

int replica_close_end(struct replica *r)
{
    int rc = log_close_end(r->log);
    if (rc == 0 && r->closing_snapshot.len > 0)
        rc = log_replace_file(r->io, r->snapshot_path, &r->closing_snapshot);
    buf_deinit(&r->closing_snapshot);
    producers_free(r);
    free(r);
    return rc;
}

void replica_abandon(struct replica *r)
{
    drop_all(r);
    producers_free(r);
    log_abandon(r->log);
    free(r);
}

/* ---- Producer state --------------------------------------------------------------------- */

/*
 * Idempotent producers' state (log/producer_state.h), derived from the log's batch headers.
 * Standalone: `producers` is the state of the whole log, read on first use (a restart reads
 * the log once, from the batches not older than the expiration), then kept by every append.
 * Raft mode: `producers` is the committed log's, read forward to the high watermark every tick
 * on every replica (followers too), so a new leader has it; when this node becomes the ready
 * leader (its no-op committed: everything before is committed) it reads the rest and `live`
 * starts as a copy, then takes every batch this leader appends, so retries of batches in flight
 * are duplicates too. A leadership lost leaves `live` unused: what it appended may be cut.
 * Only `producers` adds entries to the log's aborted-transaction index (log.h has the rules
 * that keep it complete across crashes: synced before each snapshot, re-added after it).
 */

/* Takes one batch of the log (h parsed, a control batch present whole) into ps: a producer's
 * batch, or a transaction marker, whose aborted transaction goes into index (the log's
 * aborted-transaction index) unless it is NULL. ERR_CORRUPT for a control batch whose record
 * does not parse; a storage error adding the entry. */
static int producers_apply(struct producer_state *ps, struct log *index, const uint8_t *batch,
                           const struct batch_header *h)
{
    if (h->producer_id < 0)
        return 0;
    if (!batch_is_control(h)) {
        struct producer_append a = {.producer_id = h->producer_id,
                                    .epoch = h->producer_epoch,
                                    .first_seq = h->base_sequence,
                                    .record_count = h->last_offset_delta + 1,
                                    .first_offset = h->base_offset,
                                    .timestamp_ms = h->max_timestamp_ms,
                                    .transactional = batch_is_transactional(h)};
        producer_state_update(ps, &a);
        return 0;
    }
    struct batch_marker bm;
    int rc = batch_marker_parse(batch, h, &bm);
    if (rc < 0)
        return rc;
    if (bm.type != BATCH_CONTROL_ABORT && bm.type != BATCH_CONTROL_COMMIT)
        return 0;
    struct producer_marker m = {.producer_id = h->producer_id,
                                .epoch = h->producer_epoch,
                                .coordinator_epoch = bm.coordinator_epoch,
                                .commit = bm.type == BATCH_CONTROL_COMMIT,
                                .offset = h->base_offset,
                                .timestamp_ms = h->max_timestamp_ms};
    struct producer_aborted aborted;
    if (!producer_state_end_txn(ps, &m, &aborted) || index == NULL)
        return 0;
    return log_txn_add(index, &aborted);
}

/* Reads the headers of the batches in [from, limit) into ps, in at most reads_max log reads;
 * *next is the offset after the last batch read. */
static int producers_scan(struct replica *r, int64_t from, int64_t limit, uint32_t reads_max,
                          struct producer_state *ps, int64_t *next)
{
    uint8_t *chunk = xmalloc(LOG_SCAN_CHUNK_BYTES);
    int64_t off = from > log_start_offset(r->log) ? from : log_start_offset(r->log);
    int rc = 0;
    if (limit > log_end_offset(r->log))
        limit = log_end_offset(r->log);
    for (uint32_t reads = 0; off < limit && rc == 0 && reads < reads_max; reads++) {
        struct log_read rd;
        rc = log_read(r->log, off, LOG_SCAN_CHUNK_BYTES, limit, &rd);
        if (rc < 0)
            break;
        if (rd.file == NULL) {
            log_read_release(&rd);
            break;
        }
        uint64_t pos = rd.position, end = rd.position + rd.bytes;
        while (pos < end && rc == 0) {
            size_t n =
                end - pos < LOG_SCAN_CHUNK_BYTES ? (size_t)(end - pos) : LOG_SCAN_CHUNK_BYTES;
            ssize_t got = io_pread(log_file_io(rd.file), chunk, n, pos);
            if (got != (ssize_t)n) {
                rc = got < 0 ? (int)got : -EIO;
                break;
            }
            uint64_t at = 0;
            while (at + LOG_BATCH_HEADER_BYTES <= n) {
                struct batch_header h;
                rc = batch_header_parse(chunk + at, n - at, &h);
                if (rc < 0)
                    break;
                /* A marker is read whole: one cut by the chunk's end starts the next chunk. */
                if (batch_is_control(&h) && at + batch_total_bytes(&h) > n && at > 0)
                    break;
                if (batch_is_control(&h) && at + batch_total_bytes(&h) > n) {
                    rc = ERR_CORRUPT; /* a control batch longer than a chunk */
                    break;
                }
                rc = producers_apply(ps, ps == &r->producers ? r->log : NULL, chunk + at, &h);
                if (rc < 0)
                    break;
                at += batch_total_bytes(&h);
            }
            if (rc == 0 && at == 0)
                rc = ERR_CORRUPT; /* less than a header left of a read of whole batches */
            pos += at;
        }
        off = rd.next_offset;
        log_read_release(&rd);
    }
    free(chunk);
    if (rc < 0)
        return rc == ERR_INCOMPLETE || rc == ERR_TOO_LARGE || rc == ERR_UNSUPPORTED ? ERR_CORRUPT
                                                                                    : rc;
    *next = off;
    return 0;
}

/* Raft mode: producers takes the committed batches it has not read yet, in at most reads_max
 * log reads (a tick's share, so a long log after a restart does not stall the loop). */
static int producers_catch_up(struct replica *r, uint32_t reads_max)
{
    /* The core's commit index: everything up to it is committed, even in the moment before the
     * host moved the high watermark there. */
    int64_t limit = raft_group_commit(r->group) + 1;
    if (limit > log_end_offset(r->log))
        limit = log_end_offset(r->log);
    /* The log start moved past what the state read (a snapshot install, or retention ahead
     * of a lagging read): the batches between are gone, and a state that missed them would
     * judge their producers' next sequences out of order. Kafka's follower starts afresh at
     * the new start (truncateFullyAndStartAt); so does this one. */
    if (r->producers_next < log_start_offset(r->log)) {
        producer_state_clear(&r->producers);
        r->producers_next = log_start_offset(r->log);
    }
    if (r->producers_next >= limit)
        return 0;
    return producers_scan(r, r->producers_next, limit, reads_max, &r->producers,
                          &r->producers_next);
}

/* A batch this node appended into ps (and its aborted transaction into index unless NULL): a
 * storage error adding the entry. */
static int producers_record(struct producer_state *ps, struct log *index, const uint8_t *batch,
                            size_t len)
{
    struct batch_header h;
    if (batch_header_parse(batch, len, &h) != 0)
        return 0; /* appended by us, so it parses */
    return producers_apply(ps, index, batch, &h);
}

/* Standalone: the state of the whole log, read on first use from the snapshot's offset (else the
 * log start), adding the aborted-transaction index entries of the markers read. */
static int producers_load(struct replica *r)
{
    if (r->group != NULL || r->producers_loaded)
        return 0;
    int64_t unused;
    int64_t from =
        r->producers_from > log_start_offset(r->log) ? r->producers_from : log_start_offset(r->log);
    int rc = producers_scan(r, from, INT64_MAX, UINT32_MAX, &r->producers, &unused);
    if (rc < 0) {
        /* What the snapshot gave is mixed with part of the tail: the next try reads it all. */
        producer_state_clear(&r->producers);
        r->producers_from = log_start_offset(r->log);
        return rc;
    }
    r->producers_loaded = true;
    return 0;
}

/* The leader's state, loaded and expired, for judging a batch or a marker; NULL with *err. */
static struct producer_state *leader_producers(struct replica *r, int64_t now_ms,
                                               int64_t expiration_ms, int *err)
{
    *err = r->err;
    if (*err == 0 && r->group != NULL && !r->ready)
        *err = ERR_STATE;
    if (*err == 0)
        *err = producers_load(r);
    if (*err != 0)
        return NULL;
    if (now_ms >= r->producers_expire_ms) {
        producer_state_expire(&r->producers, now_ms, expiration_ms);
        producer_state_expire(&r->live, now_ms, expiration_ms);
        r->producers_expire_ms = now_ms + PRODUCER_EXPIRE_CHECK_MS;
    }
#ifdef REPLICA_BUG_PRODUCERS_COMMITTED
    return &r->producers; /* injected bug: batches appended but not committed are unknown */
#endif
    return r->group != NULL ? &r->live : &r->producers;
}

int replica_producer_check(struct replica *r, const struct batch_header *h, int64_t now_ms,
                           int64_t expiration_ms, struct producer_batch *dup)
{
    int rc;
    struct producer_state *ps = leader_producers(r, now_ms, expiration_ms, &rc);
    if (ps == NULL)
        return rc;
    struct producer_append a = {.producer_id = h->producer_id,
                                .epoch = h->producer_epoch,
                                .first_seq = h->base_sequence,
                                .record_count = h->last_offset_delta + 1,
                                .transactional = batch_is_transactional(h)};
    return (int)producer_state_check(ps, &a, dup);
}

int replica_marker_check(struct replica *r, const struct producer_marker *m, int64_t now_ms,
                         int64_t expiration_ms)
{
    int rc;
    struct producer_state *ps = leader_producers(r, now_ms, expiration_ms, &rc);
    if (ps == NULL)
        return rc;
    return (int)producer_state_check_marker(ps, m);
}

/* The state transactions are read from, and the offsets it has read up to: the ready leader's
 * live state (every batch it holds: a marker not yet committed still counts as undecided, so the
 * last stable offset moves with the high watermark as in Kafka), else the committed state
 * (Raft mode, up to what it has read) or the log's (standalone, taking the high watermark into
 * account the same way). */
static int stable_producers(struct replica *r, struct producer_state **ps, int64_t *limit)
{
    if (r->err != 0)
        return r->err;
    int rc = producers_load(r);
    if (rc < 0)
        return rc;
    bool live = r->group != NULL && r->ready;
    *ps = live ? &r->live : &r->producers;
    *limit = r->group != NULL && !live ? r->producers_next : INT64_MAX;
    return 0;
}

int replica_last_stable_offset(struct replica *r, int64_t *out)
{
    struct producer_state *ps = NULL;
    int64_t limit = 0;
    int rc = stable_producers(r, &ps, &limit);
    if (rc < 0)
        return rc;
    int64_t lso = producer_state_stable_offset(ps, log_high_watermark(r->log));
    *out = lso < limit ? lso : limit;
    return 0;
}

int replica_aborted(struct replica *r, int64_t from, int64_t upper, struct producer_aborted *out,
                    uint32_t max, uint32_t *count)
{
    struct producer_state *ps = NULL;
    int64_t limit = 0;
    int rc = stable_producers(r, &ps, &limit);
    /* Raft mode: the index holds what the committed state has read, which a tick's share may
     * leave short of the high watermark (upper is below it). */
    if (rc == 0 && r->group != NULL && r->producers_next < upper)
        rc = producers_catch_up(r, UINT32_MAX);
    if (rc < 0)
        return rc;
    return log_txn_collect(r->log, from, upper, out, max, count);
}

/* ---- Raft mode -------------------------------------------------------------------------- */

/* Replicas holding offset durably (the leader by its durable offset, the others by the match
 * they acknowledged, which they send only once durable). */
static uint32_t holders(struct replica *r, int64_t offset)
{
    struct raft_progress pr[RAFT_MEMBERS_MAX];
    int n = raft_group_progress(r->group, pr, RAFT_MEMBERS_MAX);
    uint32_t count = 0;
    for (int i = 0; i < n; i++)
        count += pr[i].voter && pr[i].match_index >= offset;
    return count;
}

/* Answers the committed acks=all waits that min_insync replicas hold now, and, as Kafka's
 * delayed produce does, those that can no longer expect them: the ISR shrank below min_insync
 * (ERR_REPLICAS; the batch stays written) or the request's deadline passed (ERR_TIMEOUT). */
static void finish_insync(struct replica *r, int err)
{
    struct replica_commit **link = &r->insync;
    while (*link != NULL) {
        struct replica_commit *c = *link;
        int e = err;
        if (e == 0 && !r->ready)
            e = ERR_STATE; /* no longer leads: whether it reaches more replicas is unknown */
        if (e == 0 && holders(r, c->last_offset) < c->min_insync) {
            int32_t isr[RAFT_MEMBERS_MAX];
            if (replica_isr(r, isr, RAFT_MEMBERS_MAX) < c->min_insync) {
                e = ERR_REPLICAS;
            } else if (c->deadline_ms != 0 && r->now_ms >= c->deadline_ms) {
                e = ERR_TIMEOUT;
            } else {
                link = &c->next;
                continue;
            }
        }
        *link = c->next;
        c->next = NULL;
        c->fn(c->ctx, e);
    }
}

static void on_committed(void *ctx, int err)
{
    struct replica_commit *c = ctx;
    struct replica *r = c->r;
    /* Committed means durable on a majority: enough unless min_insync asks for more (then the
     * leader counts the holders; a node that stopped leading meanwhile cannot). */
    bool short_of_insync = err == 0 && r->group != NULL &&
                           c->min_insync > r->member_count / 2 + 1 &&
                           holders(r, c->last_offset) < c->min_insync;
#ifdef REPLICA_BUG_ISR_IGNORED
    short_of_insync = false; /* injected bug: answered at the commit, min_insync or not */
#endif
    if (short_of_insync) {
        c->next = r->insync;
        r->insync = c;
        return;
    }
    c->fn(c->ctx, err);
}

static void isr_reset(struct replica *r, uint64_t now_ms)
{
    for (uint32_t i = 0; i < r->member_count; i++) {
        r->caught_up_ms[i] = now_ms;
        r->in_isr[i] = !r->ineligible[i];
        r->rejoin[i] = r->ineligible[i];
    }
    r->end_at_tick = log_end_offset(r->log);
}

/* Role, leader, readiness or a handover changed: the broker hears of it, watches look again. */
static void check_role(struct replica *r)
{
    struct raft *core = raft_group_core(r->group);
    bool ready = raft_group_leader_ready(r->group);
    bool transferring = ready && core->transferee != RAFT_NONE;
    if (ready == r->ready && core->leader == r->leader && core->term == r->term &&
        transferring == r->transferring)
        return;
    bool became = ready && !r->ready;
    bool lost = !ready && r->ready;
    r->ready = ready;
    r->transferring = transferring;
    r->leader = core->leader;
    r->term = core->term;
    if (became) {
        isr_reset(r, 0);
        int rc = producers_catch_up(r, UINT32_MAX);
        if (rc < 0 && r->err == 0)
            r->err = rc;
        producer_state_copy(&r->live, &r->producers);
    }
    if (!ready)
        finish_insync(r, ERR_STATE);
    /* No longer the leader: what waits here for a commit is answered NOT_LEADER_OR_FOLLOWER
     * now (Kafka's delayed produce does the same), not whenever another leader decides. */
    if (lost) {
        raft_group_fail_waiters(r->group, ERR_STATE);
        /* acks=1 too: a follower's log may be truncated below them without a word to us. */
        finish_commits(r, ERR_STATE, 0);
    }
    notify_watches(r);
    if (r->on_change != NULL)
        r->on_change(r->change_ctx);
}

static void on_group_apply(void *ctx, int64_t first, int64_t last)
{
    struct replica *r = ctx;
    (void)first;
    (void)last;
    check_role(r);
    /* The last stable offset follows the committed producer state: keep it close behind the
     * high watermark, so a read_committed fetch woken below sees it advance. */
    int rc = producers_catch_up(r, PRODUCER_SCAN_TICK_READS);
    if (rc < 0 && r->err == 0) {
        r->err = rc;
        finish_commits(r, r->err, 0);
        finish_insync(r, r->err);
        notify_watches(r);
        return;
    }
    finish_insync(r, 0);
    notify_watches(r);
}

static void on_group_role(void *ctx, uint8_t role, int32_t leader, int64_t term)
{
    (void)role;
    (void)leader;
    (void)term;
    check_role(ctx);
}

int replica_attach(struct replica *r, const struct replica_raft *o)
{
    ASSERT(r->group == NULL && r->commits == NULL);
    int64_t start = log_start_offset(r->log);
    /* Nothing is known committed until the group says so; below the start everything was. */
    int rc = log_set_high_watermark(r->log, start);
    if (rc != 0)
        return rc;
    struct raft_group_options go = {
        .group = o->group,
        .log = r->log,
        .config = o->config,
        .election_ticks = o->election_ticks,
        .heartbeat_ticks = o->heartbeat_ticks,
        .seed = o->seed,
        .applied_index = start - 1,
        .log_snapshots = true,
        .apply = on_group_apply,
        .on_role = on_group_role,
        .ctx = r,
    };
    rc = raft_group_open(o->host, &go, &r->group);
    if (rc != 0)
        return rc;
    r->on_change = o->on_change;
    r->change_ctx = o->ctx;
    /* Read from the snapshot, else from the log start: the index entries from there on are
     * added by that read (replica_open dropped them). */
    r->producers_next = r->producers_from > start ? r->producers_from : start;
    r->leader = -1;
    r->term = raft_group_core(r->group)->term;
    r->member_count = o->config.count;
    memcpy(r->members, o->config.ids, o->config.count * sizeof(*r->members));
    return 0;
}

void replica_tick(struct replica *r, uint64_t now_ms, uint64_t tick_ms, uint64_t lag_ms)
{
    if (r->group == NULL)
        return;
    r->now_ms = now_ms;
    if (raft_group_error(r->group) != 0 && r->err == 0) {
        r->err = raft_group_error(r->group);
        finish_commits(r, r->err, 0);
        finish_insync(r, r->err);
        notify_watches(r);
        return;
    }
    check_role(r);
    int rc = producers_catch_up(r, PRODUCER_SCAN_TICK_READS);
    if (rc < 0 && r->err == 0) {
        r->err = rc;
        finish_commits(r, r->err, 0);
        finish_insync(r, r->err);
        notify_watches(r);
        return;
    }
    snapshot_at_roll(r);
    if (!r->ready)
        return;
    struct raft_progress pr[RAFT_MEMBERS_MAX];
    int n = raft_group_progress(r->group, pr, RAFT_MEMBERS_MAX);
    bool changed = false;
    for (int k = 0; k < n; k++) {
        for (uint32_t i = 0; i < r->member_count; i++) {
            if (r->members[i] != pr[k].id)
                continue;
            /* Caught up when it last answered (a follower that stopped answering stops being
             * caught up, however idle the partition). */
            uint64_t heard = (uint64_t)pr[k].ticks_since_contact * tick_ms;
            uint64_t at = now_ms > heard ? now_ms - heard : 0;
            bool leader = pr[k].id == r->leader;
            bool caught_up = pr[k].match_index >= r->end_at_tick - 1;
            if (r->caught_up_ms[i] == 0 || leader)
                r->caught_up_ms[i] = now_ms;
            else if (caught_up && at > r->caught_up_ms[i])
                r->caught_up_ms[i] = at;
            /* A broker in controlled shutdown or fenced (its session expired) leaves the ISR at
             * once, as in Kafka, and comes back only once eligible again and seen caught up:
             * not on the strength of answers from before it stopped. */
            if (r->ineligible[i] && !leader)
                r->rejoin[i] = true;
            else if (r->rejoin[i] && caught_up && now_ms - at <= lag_ms)
                r->rejoin[i] = false;
            bool in = !r->rejoin[i] && now_ms - r->caught_up_ms[i] <= lag_ms;
            changed |= in != r->in_isr[i];
            r->in_isr[i] = in;
        }
    }
    r->end_at_tick = log_end_offset(r->log);
    finish_insync(r, 0);
    if (changed && r->on_change != NULL)
        r->on_change(r->change_ctx);
}

void replica_set_ineligible(struct replica *r, const int32_t *ids, uint32_t n)
{
    for (uint32_t i = 0; i < r->member_count; i++) {
        r->ineligible[i] = false;
        for (uint32_t k = 0; k < n && !r->ineligible[i]; k++)
            r->ineligible[i] = ids[k] == r->members[i];
    }
}

int32_t replica_handover_target(struct replica *r, uint32_t within_ticks)
{
    struct raft_progress pr[RAFT_MEMBERS_MAX];
    int n = r->ready ? raft_group_progress(r->group, pr, RAFT_MEMBERS_MAX) : 0;
    /* The first in replica order: the follower that campaigns at once when this node's
     * connections close (raft_leader_gone), so that campaign finds it leading already instead
     * of starting a second election. */
    for (uint32_t i = 0; i < r->member_count; i++) {
        if (r->members[i] == r->leader || !r->in_isr[i])
            continue;
        for (int k = 0; k < n; k++)
            if (pr[k].id == r->members[i] && pr[k].voter &&
                pr[k].ticks_since_contact <= within_ticks)
                return pr[k].id;
    }
    return -1;
}

bool replica_caught_up(struct replica *r, int32_t id)
{
    struct raft_progress pr[RAFT_MEMBERS_MAX];
    int n = r->ready ? raft_group_progress(r->group, pr, RAFT_MEMBERS_MAX) : 0;
    for (int i = 0; i < n; i++)
        if (pr[i].id == id)
            return pr[i].match_index >= log_end_offset(r->log) - 1;
    return false;
}

struct raft_group *replica_group(struct replica *r)
{
    return r->group;
}

bool replica_leads(struct replica *r)
{
    return r->group == NULL || r->ready;
}

bool replica_leader_pending(struct replica *r)
{
    if (r->group == NULL || r->err != 0 || raft_group_error(r->group) != 0)
        return false;
    /* Settled is as check_role last saw it, which is when watches are told: a batch never
     * overtakes one that waits. A handover counts from the moment it starts. */
    const struct raft *core = raft_group_core(r->group);
    return core->role == RAFT_LEADER &&
           (!r->ready || r->transferring || core->transferee != RAFT_NONE);
}

bool replica_needs_tick(const struct replica *r)
{
    if (r->group == NULL || !r->ready)
        return false;
    if (r->insync != NULL)
        return true;
    for (uint32_t i = 0; i < r->member_count; i++)
        if (!r->in_isr[i] && r->members[i] != r->leader)
            return true;
    return false;
}

int32_t replica_leader(const struct replica *r)
{
    return r->leader;
}

int64_t replica_term(const struct replica *r)
{
    return r->term;
}

uint32_t replica_isr(const struct replica *r, int32_t *out, uint32_t max)
{
    uint32_t n = 0;
    if (r->group == NULL)
        return 0;
    for (uint32_t i = 0; i < r->member_count && n < max; i++)
        if (r->in_isr[i] || r->members[i] == r->leader)
            out[n++] = r->members[i];
    return n;
}

static int append_raft(struct replica *r, uint8_t *batch, size_t len, enum replica_wait wait,
                       uint32_t min_insync, struct replica_commit *c, replica_commit_fn fn,
                       void *ctx, struct log_append_result *out)
{
    if (!r->ready)
        return ERR_STATE;
    struct batch_header h;
    int rc = batch_header_parse(batch, len, &h);
    if (rc != 0)
        return rc;
    if (c != NULL)
        *c = (struct replica_commit){.fn = fn, .ctx = ctx, .r = r, .min_insync = min_insync};
    int64_t offset, term;
#ifdef REPLICA_BUG_ACK_ON_LEADER_FSYNC
    /* acks=all waits only for this node's fsync, like acks=1. */
    if (wait == REPLICA_WAIT_COMMIT)
        wait = REPLICA_WAIT_LEADER;
#endif
    rc = raft_group_propose(r->group, batch, len, wait == REPLICA_WAIT_COMMIT ? &c->waiter : NULL,
                            on_committed, c, &offset, &term);
    if (rc != 0) {
        if (raft_group_error(r->group) != 0 && r->err == 0)
            r->err = raft_group_error(r->group);
        return rc;
    }
    out->base_offset = offset;
    out->last_offset = offset + h.last_offset_delta;
    (void)producers_record(&r->live, NULL, batch, len); /* no index entry: cannot fail */
    if (c != NULL) {
        c->last_offset = out->last_offset;
        c->term = term;
    }
    if (wait != REPLICA_WAIT_LEADER)
        return 0;
    rc = flush_ensure(r);
    if (rc < 0)
        return rc;
    if (r->commits_tail != NULL)
        r->commits_tail->next = c;
    else
        r->commits = c;
    r->commits_tail = c;
    return 0;
}

int replica_append(struct replica *r, uint8_t *batch, size_t len, enum replica_wait wait,
                   uint32_t min_insync, struct replica_commit *c, replica_commit_fn fn, void *ctx,
                   struct log_append_result *out)
{
    ASSERT(batch != NULL && out != NULL);
    ASSERT(wait == REPLICA_WAIT_NONE || (c != NULL && fn != NULL));
    if (r->err != 0)
        return r->err;
    if (r->group != NULL)
        return append_raft(r, batch, len, wait, min_insync, c, fn, ctx, out);
    if (wait == REPLICA_WAIT_NONE)
        c = NULL;
    int rc = log_append(r->log, batch, len, r->leader_epoch, out);
    if (rc < 0) {
        if (log_error(r->log) != 0 && r->err == 0)
            r->err = log_error(r->log);
        return rc;
    }
    if (r->producers_loaded) {
        /* The marker is written, so a failure to index it stops the replica like a failed
         * write: a read_committed reader would otherwise see the aborted records. */
        rc = producers_record(&r->producers, r->log, batch, len);
        if (rc < 0) {
            if (r->err == 0)
                r->err = rc;
            return rc;
        }
        snapshot_at_roll(r);
    }
    /* The batch is written but would never be reported committed if no flush covered it, so a
     * failure here stops the replica. */
    rc = flush_ensure(r);
    if (rc < 0)
        return rc;
    if (c != NULL) {
        *c = (struct replica_commit){.last_offset = out->last_offset, .fn = fn, .ctx = ctx, .r = r};
        if (r->commits_tail != NULL)
            r->commits_tail->next = c;
        else
            r->commits = c;
        r->commits_tail = c;
    }
    return 0;
}

int replica_read_records(struct replica *r, int64_t offset, uint64_t max_bytes, int64_t limit,
                         struct log_read *out)
{
    int64_t hw = log_high_watermark(r->log);
    return log_read_records(r->log, offset, max_bytes, limit < hw ? limit : hw, out);
}

int64_t replica_visible_high_watermark(struct replica *r)
{
    int64_t hw = log_high_watermark(r->log);
    return r->group != NULL ? log_visible_end(r->log, hw) : hw;
}

int replica_read(struct replica *r, int64_t offset, uint64_t max_bytes, struct log_read *out)
{
#ifdef REPLICA_BUG_READ_BEYOND_COMMIT
    return log_read(r->log, offset, max_bytes, log_end_offset(r->log), out);
#else
    return log_read(r->log, offset, max_bytes, log_high_watermark(r->log), out);
#endif
}

void replica_watch_init(struct replica_watch *w, replica_watch_fn fn, void *ctx)
{
    w->prev = w->next = NULL;
    w->linked = false;
    w->fn = fn;
    w->ctx = ctx;
}

void replica_watch_add(struct replica *r, struct replica_watch *w)
{
    ASSERT(!w->linked);
    w->prev = r->watches.prev;
    w->next = &r->watches;
    r->watches.prev->next = w;
    r->watches.prev = w;
    w->linked = true;
}

void replica_watch_remove(struct replica *r, struct replica_watch *w)
{
    (void)r;
    if (!w->linked)
        return;
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->linked = false;
}

struct log *replica_log(struct replica *r)
{
    return r->log;
}

int64_t replica_high_watermark(const struct replica *r)
{
    return log_high_watermark(r->log);
}

int64_t replica_log_start_offset(const struct replica *r)
{
    return log_start_offset(r->log);
}

int64_t replica_log_end_offset(const struct replica *r)
{
    return log_end_offset(r->log);
}

int32_t replica_leader_epoch(const struct replica *r)
{
    return r->group != NULL ? (int32_t)r->term : r->leader_epoch;
}

int replica_error(const struct replica *r)
{
    return r->err;
}
