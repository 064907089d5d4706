/*
 * Standalone replica: the log's group commit drives the high watermark.
 *
 * Invariants: commits are queued in append order, so their last offsets increase; the high
 * watermark equals the log's durable offset and only grows (except through truncation, which
 * the standalone mode never does); a commit callback runs exactly once.
 *
 * The replica keeps at most one flush waiter on its log, for the end of the log when it was
 * registered, and registers the next one from its callback when more was appended meanwhile.
 * One waiter per append would tie the log's waiter bound to how fast clients produce while a
 * sync is slow (acks=0 producers add appends without waiting for anything), and reaching that
 * bound must never fail the partition. The group commit is unchanged: the log has one sync in
 * flight, and the next one starts when it completes, covering everything appended meanwhile.
 * What waits on the replica (commits, watches) is memory of the requests that wait, which the
 * broker bounds (queued.max.request.bytes).
 */
#include "cluster/replica.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"

#include <stdlib.h>

struct replica {
    struct log *log;
    int32_t leader_epoch;
    int err;
    struct replica_commit *commits; /* oldest first */
    struct replica_commit *commits_tail;
    struct replica_watch watches; /* list head */
    bool flush_waiting;           /* our one flush waiter is registered with the log */
};

static void on_durable(void *ctx, int err, int64_t durable_offset);

/* Registers our flush waiter for the log's end unless it is there already or nothing waits to
 * become durable. A failure of the log fails the replica. */
static int flush_ensure(struct replica *r)
{
    if (r->flush_waiting || r->err != 0)
        return r->err;
    int rc = log_flush(r->log, log_end_offset(r->log), on_durable, r);
    if (rc == 0)
        r->flush_waiting = true;
    if (rc < 0) {
        /* Only a failed log refuses our one waiter: the log's bound on waiters is far above it,
         * so no temporary limit can fail the replica. */
        ASSERT(rc == log_error(r->log));
        r->err = rc;
    }
    return rc < 0 ? rc : 0;
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

static void finish_commits(struct replica *r, int err, int64_t durable_offset)
{
    while (r->commits != NULL && (err != 0 || r->commits->last_offset < durable_offset)) {
        struct replica_commit *c = r->commits;
        r->commits = c->next;
        if (r->commits == NULL)
            r->commits_tail = NULL;
        c->fn(c->ctx, err);
    }
}

static void on_durable(void *ctx, int err, int64_t durable_offset)
{
    struct replica *r = ctx;
    r->flush_waiting = false;
    if (err != 0) {
        if (r->err == 0)
            r->err = err;
        finish_commits(r, err, 0);
        notify_watches(r);
        return;
    }
    if (durable_offset > log_high_watermark(r->log)) {
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

static void drop_all(struct replica *r)
{
    /* Watchers see the replica failed, so none keeps a pointer to it past this call. */
    if (r->err == 0)
        r->err = ERR_CLOSED;
    finish_commits(r, ERR_CLOSED, 0);
    notify_watches(r);
    ASSERT(r->commits == NULL);
}

int replica_close(struct replica *r)
{
    drop_all(r);
    int rc = log_close(r->log);
    free(r);
    return rc;
}

void replica_abandon(struct replica *r)
{
    drop_all(r);
    log_abandon(r->log);
    free(r);
}

int replica_append(struct replica *r, uint8_t *batch, size_t len, struct replica_commit *c,
                   replica_commit_fn fn, void *ctx, struct log_append_result *out)
{
    ASSERT(batch != NULL && out != NULL);
    ASSERT(c == NULL || fn != NULL);
    if (r->err != 0)
        return r->err;
    int rc = log_append(r->log, batch, len, r->leader_epoch, out);
    if (rc < 0) {
        if (log_error(r->log) != 0 && r->err == 0)
            r->err = log_error(r->log);
        return rc;
    }
    /* The batch is written but would never be reported committed if no flush covered it, so a
     * failure here stops the replica. */
    rc = flush_ensure(r);
    if (rc < 0)
        return rc;
    if (c != NULL) {
        *c = (struct replica_commit){.last_offset = out->last_offset, .fn = fn, .ctx = ctx};
        if (r->commits_tail != NULL)
            r->commits_tail->next = c;
        else
            r->commits = c;
        r->commits_tail = c;
    }
    return 0;
}

int replica_read(struct replica *r, int64_t offset, uint64_t max_bytes, struct log_read *out)
{
    return log_read(r->log, offset, max_bytes, log_high_watermark(r->log), out);
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
    return r->leader_epoch;
}

int replica_error(const struct replica *r)
{
    return r->err;
}
