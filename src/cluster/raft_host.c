/*
 * The Raft host (raft_host.h): the core's log view over a partition log, the persist -> send ->
 * apply -> advance loop, the hard-state file, and proposal waiters.
 *
 * Invariants:
 * - idx[0..idx_count) are the log's batches from the log start to its end, in order, without
 *   gaps; prev_term is the term of the entry before the first one (0 before offset 0).
 * - The core is told an index is persisted only when the log's durable offset passed it.
 * - No message of a ready reaches the transport before that ready's hard state is on disk.
 * - A closed group whose flush callbacks are still outstanding stays allocated (closed set)
 *   until the last one runs; nothing else touches it.
 *
 * RAFT_HOST_BUG_* (never defined in a product build) each break one of these promises on
 * purpose: tests/unit/cluster and tests/sim/cluster_sim build this file with them and must catch
 * every one.
 */
#include "cluster/raft_host.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/limits.h"
#include "log/batch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HS_VERSION 0
/* version, 3 zero bytes, be64 term, be32 vote, be64 log start, be64 term of the entry before the
 * log start, be32 CRC-32C of everything before it */
#define HS_BYTES 36
/* The control record type a no-op carries: Kafka's LEADER_CHANGE (ControlRecordType 2). */
#define NOOP_CONTROL_TYPE 2

struct rh_batch {
    int64_t first;
    int64_t last;
    int64_t term;
    uint32_t bytes;
    uint8_t kind;
};

struct raft_group {
    struct raft_host *host;
    struct wire_group id;
    struct log *log;
    struct raft raft;
    struct raft_log_ops ops;
    struct rh_batch *idx;
    size_t idx_count, idx_cap;
    int64_t prev_term;
    /* What the hard-state file holds. */
    int64_t hs_term;
    int32_t hs_vote;
    int64_t hs_start, hs_prev_term;
    int64_t reported_index, reported_term; /* last raft_persisted() */
    int64_t flush_end;                     /* highest end offset a flush callback waits for */
    uint32_t flush_outstanding;
    int err;
    bool closed;
    bool pumping, repump;
    /* While raft_group_propose runs: the batch to append. */
    uint8_t *prop_bytes;
    size_t prop_len;
    /* While an inbound append is stepped: its bytes. */
    const struct wire_msg *inbound;
    int64_t applied;
    struct raft_waiter *waiters, **waiters_tail;
    raft_group_apply_fn apply;
    raft_group_role_fn on_role;
    void *ctx;
    char state_path[IO_PATH_BYTES_MAX];
    char state_tmp[IO_PATH_BYTES_MAX + 8];
};

struct raft_host {
    int32_t self;
    struct io *io;
    struct clock *clock;
    char state_dir[IO_PATH_BYTES_MAX];
    struct transport *transport;
    struct raft_group **groups; /* sorted by group id */
    size_t group_count, group_cap;
    struct buf scratch; /* batch bytes of one outgoing append, and the no-op */
    struct raft_host_stats stats;
};

static void hs_save_start(struct raft_group *g);

/* ---- the batch index ----------------------------------------------------------------------- */

static void idx_push(struct raft_group *g, const struct rh_batch *b)
{
    if (g->idx_count == g->idx_cap) {
        g->idx_cap = g->idx_cap ? g->idx_cap * 2 : 64;
        g->idx = xrealloc(g->idx, g->idx_cap * sizeof(*g->idx));
    }
    g->idx[g->idx_count++] = *b;
}

/* Drops the batches the log no longer holds below its start (retention, DeleteRecords). */
static void idx_follow_start(struct raft_group *g)
{
    int64_t start = log_start_offset(g->log);
    size_t n = 0;

    while (n < g->idx_count && g->idx[n].last < start)
        n++;
    if (n == 0)
        return;
    g->prev_term = g->idx[n - 1].term;
    memmove(g->idx, g->idx + n, (g->idx_count - n) * sizeof(*g->idx));
    g->idx_count -= n;
    hs_save_start(g);
}

static int64_t idx_start(const struct raft_group *g)
{
    return g->idx_count ? g->idx[0].first : log_start_offset(g->log);
}

static int64_t idx_last(const struct raft_group *g)
{
    return g->idx_count ? g->idx[g->idx_count - 1].last : idx_start(g) - 1;
}

static const struct rh_batch *idx_find(const struct raft_group *g, int64_t index)
{
    size_t lo = 0, hi = g->idx_count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->idx[mid].last < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == g->idx_count || g->idx[lo].first > index)
        return NULL;
    return &g->idx[lo];
}

static int64_t term_of_epoch(int32_t epoch)
{
    return epoch < RAFT_HOST_TERM_STANDALONE ? RAFT_HOST_TERM_STANDALONE : epoch;
}

/* The batch of the log starting at offset, from its header. */
static int read_batch(struct raft_group *g, int64_t offset, struct rh_batch *out,
                      struct log_read *rd)
{
    uint8_t hdr[BATCH_OFF_RECORD_COUNT + 4];
    struct batch_header h;
    int rc = log_read(g->log, offset, 1, INT64_MAX, rd);

    if (rc != 0)
        return rc;
    if (rd->file == NULL || rd->first_offset != offset || rd->next_offset <= offset) {
        log_read_release(rd);
        return ERR_CORRUPT;
    }
    ssize_t n = io_pread(log_file_io(rd->file), hdr, sizeof(hdr), rd->position);
    if (n != (ssize_t)sizeof(hdr)) {
        log_read_release(rd);
        return n < 0 ? (int)n : ERR_CORRUPT;
    }
    rc = batch_header_parse(hdr, sizeof(hdr), &h);
    if (rc != 0 || h.base_offset != offset || batch_total_bytes(&h) > UINT32_MAX) {
        log_read_release(rd);
        return rc != 0 ? rc : ERR_CORRUPT;
    }
    *out = (struct rh_batch){.first = offset,
                             .last = batch_last_offset(&h),
                             .term = term_of_epoch(h.leader_epoch),
                             .bytes = (uint32_t)batch_total_bytes(&h),
                             .kind = batch_is_control(&h) ? RAFT_BATCH_NOOP : RAFT_BATCH_DATA};
    return 0;
}

static int idx_build(struct raft_group *g)
{
    int64_t off = log_start_offset(g->log), end = log_end_offset(g->log);
    int32_t epoch;

    /* The term before the start: from the hard-state file when it recorded this start; else
     * (the start moved behind the host's back and a crash came before it noticed) the term of
     * the first batch, which is an upper bound (see raft_group_compact). */
    g->prev_term = 0;
    if (off > 0 && off == g->hs_start)
        g->prev_term = g->hs_prev_term;
    else if (off > 0 && log_epoch_of(g->log, off, &epoch) == 0)
        g->prev_term = term_of_epoch(epoch);
    else if (off > 0)
        g->prev_term = g->hs_term;
    while (off < end) {
        struct rh_batch b;
        struct log_read rd;
        int rc = read_batch(g, off, &b, &rd);

        if (rc != 0)
            return rc;
        log_read_release(&rd);
        if (b.term < (g->idx_count ? g->idx[g->idx_count - 1].term : g->prev_term))
            return ERR_CORRUPT;
        idx_push(g, &b);
        off = b.last + 1;
    }
    return 0;
}

/* ---- the core's log view ------------------------------------------------------------------- */

static int64_t ops_start_index(void *ctx)
{
    struct raft_group *g = ctx;
    idx_follow_start(g);
    return idx_start(g);
}

static int64_t ops_last_index(void *ctx)
{
    return idx_last(ctx);
}

static int ops_term_at(void *ctx, int64_t index, int64_t *term)
{
    struct raft_group *g = ctx;

    idx_follow_start(g);
    if (index == idx_start(g) - 1) {
        *term = index < 0 ? 0 : g->prev_term;
        return 0;
    }
    const struct rh_batch *b = idx_find(g, index);
    if (b == NULL)
        return ERR_RANGE;
    *term = b->term;
    return 0;
}

static int ops_batch_at(void *ctx, int64_t index, struct raft_batch *out)
{
    struct raft_group *g = ctx;

    idx_follow_start(g);
    const struct rh_batch *b = idx_find(g, index);
    if (b == NULL)
        return ERR_RANGE;
    *out = (struct raft_batch){.first_index = b->first,
                               .last_index = b->last,
                               .term = b->term,
                               .bytes = b->bytes,
                               .kind = b->kind};
    return 0;
}

/* A new leader's no-op: one LEADER_CHANGE control record (Kafka consumers skip control
 * batches), stamped with the new term as its leader epoch. */
static int append_noop(struct raft_group *g, const struct raft_batch *b, uint32_t *bytes)
{
    static const uint8_t key[4] = {0, 0, 0, NOOP_CONTROL_TYPE}; /* version 0, type */
    struct buf *s = &g->host->scratch;
    struct batch_build_opts opts = {.base_offset = b->first_index,
                                    .leader_epoch = (int32_t)b->term,
                                    .attributes = BATCH_ATTR_CONTROL,
                                    .producer_id = -1,
                                    .producer_epoch = -1,
                                    .base_sequence = -1};
    struct batch_record rec = {.key = slice_make(key, sizeof(key)),
                               .value = slice_make(NULL, 0),
                               .timestamp_ms = g->host->clock ? clock_wall_ms(g->host->clock) : 0};
    struct log_append_result res;
    int rc;

    buf_reset(s);
    rc = batch_build(s, &opts, &rec, 1);
    if (rc == 0)
        rc = log_append(g->log, s->data, s->len, (int32_t)b->term, &res);
    *bytes = (uint32_t)s->len;
    return rc;
}

static void ops_append(void *ctx, const struct raft_batch *b)
{
    struct raft_group *g = ctx;
    struct rh_batch e = {
        .first = b->first_index, .last = b->last_index, .term = b->term, .kind = b->kind};
    struct log_append_result res = {.base_offset = b->first_index};
    int rc = ERR_CLOSED;

    if (g->err != 0) {
        /* Dead: keep the view consistent, write nothing. */
    } else if (g->prop_bytes != NULL) {
        rc = log_append(g->log, g->prop_bytes, g->prop_len, (int32_t)b->term, &res);
        e.bytes = (uint32_t)g->prop_len;
    } else if (g->inbound != NULL) {
        const struct wire_msg *m = g->inbound;
        rc = ERR_CORRUPT;
        for (uint16_t i = 0; i < m->msg.batch_count; i++) {
            if (m->msg.batches[i].first_index == b->first_index) {
                rc = log_append_at(g->log, m->batch_bytes[i].ptr, m->batch_bytes[i].len, &res);
                e.bytes = (uint32_t)m->batch_bytes[i].len;
                break;
            }
        }
    } else if (b->kind == RAFT_BATCH_NOOP) {
        rc = append_noop(g, b, &e.bytes);
    } else {
        rc = ERR_UNSUPPORTED; /* membership changes are not hosted yet */
    }
    if (rc == 0 && res.base_offset != b->first_index)
        rc = ERR_CORRUPT;
    if (rc != 0 && g->err == 0)
        g->err = rc;
    idx_push(g, &e);
}

static void fail_waiters_from(struct raft_group *g, int64_t from, int err);

static void ops_truncate(void *ctx, int64_t from)
{
    struct raft_group *g = ctx;

    while (g->idx_count > 0 && g->idx[g->idx_count - 1].first >= from)
        g->idx_count--;
    if (g->flush_end > from)
        g->flush_end = from;
#ifndef RAFT_HOST_BUG_WAITER_OFFSET_ONLY
    fail_waiters_from(g, from, ERR_STATE);
#endif
#ifndef RAFT_HOST_BUG_SKIP_TRUNCATE /* injected bug: the log on disk keeps the suffix */
    if (g->err == 0) {
        int rc = log_truncate_to(g->log, from); /* durable when it returns */
        if (rc != 0)
            g->err = rc;
    }
#endif
}

/* ---- hard state ---------------------------------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, int64_t v)
{
    put_be32(p, (uint32_t)((uint64_t)v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static int64_t get_be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)get_be32(p) << 32 | get_be32(p + 4));
}

/* Temp file, fsync, rename over the old one, directory fsync: the old state or the new one
 * survives a crash, never a mix. */
static int hs_write(struct raft_group *g)
{
    struct io *io = g->host->io;
    uint8_t b[HS_BYTES] = {HS_VERSION};
    struct io_file *f = NULL;
    int rc;

    put_be64(b + 4, g->hs_term);
    put_be32(b + 12, (uint32_t)g->hs_vote);
    put_be64(b + 16, g->hs_start);
    put_be64(b + 24, g->hs_prev_term);
    put_be32(b + 32, crc32c_update(0, b, 32));
    rc = io_open(io, g->state_tmp, IO_RDWR | IO_CREATE, &f);
    if (rc == 0)
        rc = io_truncate(f, 0);
    if (rc == 0) {
        ssize_t n = io_pwrite(f, b, sizeof(b), 0);
        rc = n == (ssize_t)sizeof(b) ? 0 : n < 0 ? (int)n : ERR_INCOMPLETE;
    }
    if (rc == 0)
        rc = io_sync(f);
    if (f != NULL)
        io_close(f);
    if (rc == 0)
        rc = io_rename(io, g->state_tmp, g->state_path);
    if (rc == 0)
        rc = io_sync_dir(io, g->host->state_dir);
    g->host->stats.hard_state_writes++;
    return rc;
}

static int hs_read(struct raft_group *g)
{
    uint8_t b[HS_BYTES];
    struct io_file *f;
    bool is_dir;
    ssize_t n;

    g->hs_term = RAFT_HOST_TERM_STANDALONE;
    g->hs_vote = RAFT_NONE;
    g->hs_start = -1;
    g->hs_prev_term = 0;
    int rc = io_exists(g->host->io, g->state_path, &is_dir);
    if (rc == -ENOENT)
        return 0; /* a new group (a temp file left by a crash is rewritten) */
    if (rc == 0)
        rc = io_open(g->host->io, g->state_path, IO_RDONLY, &f);
    if (rc != 0)
        return rc;
    n = io_pread(f, b, sizeof(b), 0);
    io_close(f);
    if (n < 0)
        return (int)n;
    if (n != (ssize_t)sizeof(b) || b[0] != HS_VERSION ||
        get_be32(b + 32) != crc32c_update(0, b, 32))
        return ERR_CORRUPT;
    g->hs_term = get_be64(b + 4);
    g->hs_vote = (int32_t)get_be32(b + 12);
    g->hs_start = get_be64(b + 16);
    g->hs_prev_term = get_be64(b + 24);
    if (g->hs_term < RAFT_HOST_TERM_STANDALONE || g->hs_vote < RAFT_NONE || g->hs_start < -1 ||
        g->hs_prev_term < 0 || g->hs_prev_term > g->hs_term)
        return ERR_CORRUPT;
    return 0;
}

/* Records the log start and the term before it, which the log's epoch cache forgets when its
 * start moves (term_at(start - 1) must survive restarts). */
static void hs_save_start(struct raft_group *g)
{
    int64_t start = idx_start(g);

    if (g->err != 0 || (start == g->hs_start && g->prev_term == g->hs_prev_term))
        return;
    g->hs_start = start;
    g->hs_prev_term = g->prev_term;
    int rc = hs_write(g);
    if (rc != 0)
        g->err = rc;
}

/* ---- waiters ------------------------------------------------------------------------------- */

static void waiters_run(struct raft_waiter *list, int err_other, struct raft_group *g)
{
    while (list != NULL) {
        struct raft_waiter *w = list;
        int64_t term = -1;
        list = w->next;
        w->next = NULL;
        /* Committed: success only if the committed entry is the one proposed (same term). */
        int err = err_other;
#ifdef RAFT_HOST_BUG_WAITER_OFFSET_ONLY
        /* injected bug: a waiter keyed by offset alone, kept across truncations */
        if (g != NULL)
            err = 0;
        (void)term;
#else
        if (g != NULL)
            err = ops_term_at(g, w->last_offset, &term) == 0 && term == w->term ? 0 : ERR_STATE;
#endif
        w->fn(w->ctx, err);
    }
}

/* Detaches the waiters with last_offset >= from (those at the tail) and fails them. */
static void fail_waiters_from(struct raft_group *g, int64_t from, int err)
{
    struct raft_waiter **link = &g->waiters, *gone = NULL, **gone_tail = &gone;

    while (*link != NULL) {
        struct raft_waiter *w = *link;
        if (w->last_offset >= from) {
            *link = w->next;
            w->next = NULL;
            *gone_tail = w;
            gone_tail = &w->next;
        } else {
            link = &w->next;
        }
    }
    g->waiters_tail = link;
    waiters_run(gone, err, NULL);
}

/* Detaches the waiters whose entries are committed (they are in offset order). */
static struct raft_waiter *waiters_take_committed(struct raft_group *g, int64_t commit)
{
    struct raft_waiter *done = g->waiters, **link = &g->waiters;

    while (*link != NULL && (*link)->last_offset <= commit)
        link = &(*link)->next;
    if (link == &g->waiters)
        return NULL; /* none committed */
    g->waiters = *link;
    *link = NULL;
    if (g->waiters == NULL)
        g->waiters_tail = &g->waiters;
    return done;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void group_pump(struct raft_group *g);

static void group_free(struct raft_group *g)
{
    free(g->idx);
    free(g);
}

static void on_flushed(void *ctx, int err, int64_t durable_offset)
{
    struct raft_group *g = ctx;

    (void)durable_offset;
    g->flush_outstanding--;
    if (g->closed) {
        if (g->flush_outstanding == 0)
            group_free(g);
        return;
    }
#ifdef RAFT_HOST_BUG_FSYNC_ERROR_IGNORED
    err = 0;
#endif
    if (err != 0 && g->err == 0)
        g->err = err;
    group_pump(g);
}

/* Tells the core what the log has made durable, and asks the flusher for the rest. */
static void report_durable(struct raft_group *g)
{
    int64_t end = log_end_offset(g->log);
    int64_t durable = log_durable_offset(g->log);
    int64_t index, term;

#ifdef RAFT_HOST_BUG_FSYNC_ERROR_IGNORED
    /* injected bug: a failed fsync taken as done (what the kernel dropped counted durable) */
    if (g->err == 0 && log_error(g->log) != 0 && g->flush_end > durable)
        durable = g->flush_end;
#else
    if (g->err == 0 && log_error(g->log) != 0)
        g->err = log_error(g->log);
#endif
    if (g->err != 0)
        return;
#ifdef RAFT_HOST_BUG_ACK_UNSYNCED
    durable = end; /* injected bug: acknowledge what is only in the page cache */
#endif
#ifdef RAFT_HOST_BUG_DURABLE_SURVIVES_TRUNCATE
    /* injected bug: what was reported durable once stays so, though a truncation cut it */
    if (durable < g->reported_index + 1)
        durable = g->reported_index + 1;
#endif
    if (durable > end)
        durable = end;
    index = durable - 1;
    if (index >= idx_start(g) && ops_term_at(g, index, &term) == 0 &&
        (index != g->reported_index || term != g->reported_term)) {
        g->reported_index = index;
        g->reported_term = term;
        raft_persisted(&g->raft, index, term);
    }
    if (end > durable && end > g->flush_end) {
        int rc = log_flush(g->log, end, on_flushed, g);
        if (rc == 0) {
            g->flush_end = end;
            g->flush_outstanding++;
        } else if (rc == 1) {
            g->repump = true; /* became durable meanwhile: report on the next round */
        } else if (g->err == 0) {
            g->err = rc;
        }
    }
}

/* Attaches the bytes of [m->index + 1, m->last_index] to an outgoing append and sends it. */
static int send_append(struct raft_group *g, const struct raft_msg *m, struct wire_msg *w)
{
    struct raft_batch shapes[RAFT_MSG_BATCHES_MAX];
    struct slice bytes[RAFT_MSG_BATCHES_MAX];
    size_t at[RAFT_MSG_BATCHES_MAX];
    struct buf *s = &g->host->scratch;
    uint16_t n = 0;
    int64_t i = m->index + 1;

    buf_reset(s);
    while (i <= m->last_index) {
        struct log_read rd;
        struct rh_batch b;
        const struct rh_batch *e = idx_find(g, i);
        int rc;

        if (e == NULL || e->first != i || n == RAFT_MSG_BATCHES_MAX)
            return ERR_RANGE;
        rc = read_batch(g, i, &b, &rd);
        if (rc != 0)
            return rc;
        at[n] = s->len;
        uint8_t *dst = buf_extend(s, b.bytes);
        ssize_t got = io_pread(log_file_io(rd.file), dst, b.bytes, rd.position);
        log_read_release(&rd);
        if (got != (ssize_t)b.bytes)
            return got < 0 ? (int)got : ERR_CORRUPT;
        shapes[n] = (struct raft_batch){.first_index = e->first,
                                        .last_index = e->last,
                                        .term = e->term,
                                        .bytes = b.bytes,
                                        .kind = e->kind};
        n++;
        i = e->last + 1;
    }
    for (uint16_t k = 0; k < n; k++)
        bytes[k] = slice_make(s->data + at[k], shapes[k].bytes);
    w->msg.batches = n ? shapes : NULL;
    w->msg.batch_count = n;
    w->batch_bytes = n ? bytes : NULL;
    return transport_send(g->host->transport, w);
}

static void send_msgs(struct raft_group *g, const struct raft_msg *msgs, uint32_t count)
{
    struct raft_host *h = g->host;

    for (uint32_t i = 0; i < count; i++) {
        struct wire_msg w = {.group = g->id, .msg = msgs[i]};
        int rc;

        if (h->transport == NULL) {
            h->stats.msgs_dropped++;
            continue;
        }
        if (msgs[i].type == RAFT_MSG_APPEND)
            rc = send_append(g, &msgs[i], &w);
        else
            rc = transport_send(h->transport, &w);
        if (rc == 0)
            h->stats.msgs_sent++;
        else
            h->stats.msgs_dropped++;
    }
}

static void process_ready(struct raft_group *g)
{
    struct raft_ready rd;
    struct raft_waiter *done = NULL;
    int32_t snapshot_peers[RAFT_MEMBERS_MAX];
    uint32_t snapshot_count;
    int64_t apply_first = -1, apply_last = -1;
    bool role_changed;
    uint8_t role;
    int32_t leader;

    raft_ready(&g->raft, &rd);
#ifdef RAFT_HOST_BUG_SEND_BEFORE_HARD_STATE
    send_msgs(g, rd.msgs, rd.msg_count); /* injected bug: a vote or term leaves before its fsync */
#endif
    /* 1. Persist: hard state now (before anything leaves); the log through the flusher. */
    if (rd.hard_state_changed) {
        g->hs_term = rd.term;
        g->hs_vote = rd.vote;
        int rc = hs_write(g);
        if (rc != 0) {
            g->err = rc;
            return;
        }
    }
    report_durable(g);
    if (g->err != 0)
        return;
        /* 2. Send. */
#ifndef RAFT_HOST_BUG_SEND_BEFORE_HARD_STATE
    send_msgs(g, rd.msgs, rd.msg_count);
#endif
    /* Snapshots (copies of sealed segments) are not hosted yet: the leader asks again later. */
    snapshot_count = rd.snapshot_peer_count;
    memcpy(snapshot_peers, rd.snapshot_peers, sizeof(snapshot_peers));
    /* 3. Apply (after advance, so callbacks may call back into the group). */
    if (rd.commit_changed && rd.commit_index > g->applied) {
        apply_first = g->applied + 1;
        apply_last = rd.commit_index;
        g->applied = rd.commit_index;
        done = waiters_take_committed(g, rd.commit_index);
        /* Consumers read up to the commit index, never past it. */
#ifdef RAFT_HOST_BUG_HW_BEYOND_COMMIT
        /* injected bug: consumers may read everything appended, committed or not */
        int rc = log_set_high_watermark(g->log, log_end_offset(g->log));
#else
        int rc = log_set_high_watermark(g->log, rd.commit_index + 1);
#endif
        if (rc != 0 && g->err == 0)
            g->err = rc;
    }
#ifdef RAFT_HOST_BUG_ACK_ON_LEADER_FSYNC
    /* injected bug: acks=all answered once the leader's own copy is durable */
    if (done == NULL && g->raft.role == RAFT_LEADER)
        done = waiters_take_committed(g, g->reported_index);
#endif
    role_changed = rd.role_changed;
    role = rd.role;
    leader = rd.leader;
    raft_advance(&g->raft);
    for (uint32_t i = 0; i < snapshot_count; i++)
        raft_snapshot_failed(&g->raft, snapshot_peers[i]);
    if (role_changed && g->on_role != NULL)
        g->on_role(g->ctx, role, leader, g->raft.term);
    if (apply_last >= 0 && g->apply != NULL)
        g->apply(g->ctx, apply_first, apply_last);
    waiters_run(done, 0, g);
}

static void group_pump(struct raft_group *g)
{
    if (g->pumping) {
        g->repump = true;
        return;
    }
    g->pumping = true;
    do {
        g->repump = false;
        if (g->err != 0)
            break;
        report_durable(g);
        while (g->err == 0 && !g->closed && raft_has_ready(&g->raft))
            process_ready(g);
    } while (g->repump && !g->closed);
    g->pumping = false;
    if (g->err != 0)
        fail_waiters_from(g, INT64_MIN, g->err);
}

/* ---- inbound ------------------------------------------------------------------------------- */

static int group_cmp(const struct wire_group *a, const struct wire_group *b)
{
    int c = memcmp(a->topic_id.bytes, b->topic_id.bytes, sizeof(a->topic_id.bytes));
    if (c != 0)
        return c;
    return (a->partition > b->partition) - (a->partition < b->partition);
}

/* The position of id in the sorted groups, or where it would go. */
static size_t group_pos(const struct raft_host *h, const struct wire_group *id)
{
    size_t lo = 0, hi = h->group_count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (group_cmp(&h->groups[mid]->id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct raft_group *find_group(struct raft_host *h, const struct wire_group *id)
{
    size_t i = group_pos(h, id);
    return i < h->group_count && wire_group_eq(&h->groups[i]->id, id) ? h->groups[i] : NULL;
}

/* The bytes of an inbound append must be the batches their shapes describe, stamped by the
 * leader with the same offsets and term; anything else never reaches the log. */
static bool append_bytes_ok(const struct wire_msg *m)
{
    for (uint16_t i = 0; i < m->msg.batch_count; i++) {
        const struct raft_batch *b = &m->msg.batches[i];
        struct batch_header h;

        if (m->batch_bytes == NULL || m->batch_bytes[i].len != b->bytes ||
            batch_parse(m->batch_bytes[i].ptr, m->batch_bytes[i].len, &h) != 0)
            return false;
        if (batch_total_bytes(&h) != b->bytes || h.base_offset != b->first_index ||
            batch_last_offset(&h) != b->last_index || term_of_epoch(h.leader_epoch) != b->term ||
            (batch_is_control(&h) ? RAFT_BATCH_NOOP : RAFT_BATCH_DATA) != b->kind)
            return false;
    }
    return true;
}

void raft_host_receive(struct raft_host *h, const struct wire_raft *frame)
{
    for (size_t i = 0; i < frame->count; i++) {
        const struct wire_msg *m = &frame->msgs[i];
        struct raft_group *g = find_group(h, &m->group);

        h->stats.msgs_received++;
        if (g == NULL || g->err != 0 || (m->msg.type == RAFT_MSG_APPEND && !append_bytes_ok(m))) {
            h->stats.msgs_refused++;
            continue;
        }
        g->inbound = m->msg.type == RAFT_MSG_APPEND ? m : NULL;
        int rc = raft_step(&g->raft, &m->msg);
        g->inbound = NULL;
        if (rc != 0)
            h->stats.msgs_refused++;
        group_pump(g);
    }
}

static void on_raft(void *ctx, const struct wire_raft *frame)
{
    raft_host_receive(ctx, frame);
}

static void on_peer(void *ctx, int32_t peer)
{
    (void)ctx;
    (void)peer;
}

static void on_peer_down(void *ctx, int32_t peer, int err, const char *reason)
{
    (void)ctx;
    (void)peer;
    (void)err;
    (void)reason;
}

/* ---- the host ------------------------------------------------------------------------------ */

int raft_host_create(const struct raft_host_options *o, struct raft_host **out)
{
    if (o->self < 0 || o->io == NULL || o->state_dir == NULL ||
        strlen(o->state_dir) + 64 > IO_PATH_BYTES_MAX)
        return ERR_INVALID;
    struct raft_host *h = xcalloc(1, sizeof(*h));
    h->self = o->self;
    h->io = o->io;
    h->clock = o->clock;
    snprintf(h->state_dir, sizeof(h->state_dir), "%s", o->state_dir);
    buf_init(&h->scratch);
    *out = h;
    return 0;
}

void raft_host_destroy(struct raft_host *h)
{
    if (h == NULL)
        return;
    ASSERT(h->group_count == 0);
    free(h->groups);
    buf_deinit(&h->scratch);
    free(h);
}

void raft_host_handler(struct raft_host *h, struct transport_handler *out)
{
    *out = (struct transport_handler){
        .on_raft = on_raft, .on_peer_up = on_peer, .on_peer_down = on_peer_down, .ctx = h};
}

void raft_host_set_transport(struct raft_host *h, struct transport *t)
{
    h->transport = t;
}

void raft_host_tick(struct raft_host *h)
{
    for (size_t i = 0; i < h->group_count; i++) {
        struct raft_group *g = h->groups[i];
        if (g->err != 0)
            continue;
        raft_tick(&g->raft);
        group_pump(g);
    }
}

void raft_host_stats(const struct raft_host *h, struct raft_host_stats *out)
{
    *out = h->stats;
}

/* ---- groups -------------------------------------------------------------------------------- */

int raft_group_open(struct raft_host *h, const struct raft_group_options *o,
                    struct raft_group **out)
{
    struct raft_options ro;
    char hex[33];
    int rc;

    if (o->log == NULL || find_group(h, &o->group) != NULL)
        return o->log == NULL ? ERR_INVALID : ERR_STATE;
    struct raft_group *g = xcalloc(1, sizeof(*g));
    g->host = h;
    g->id = o->group;
    g->log = o->log;
    g->apply = o->apply;
    g->on_role = o->on_role;
    g->ctx = o->ctx;
    g->waiters_tail = &g->waiters;
    g->reported_index = -1;
    g->reported_term = -1;
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", o->group.topic_id.bytes[i]);
    int n = snprintf(g->state_path, sizeof(g->state_path), "%s/%s-%" PRId32 ".raft-state",
                     h->state_dir, hex, o->group.partition);
    rc = n > 0 && (size_t)n < sizeof(g->state_path) ? 0 : ERR_INVALID;
    n = snprintf(g->state_tmp, sizeof(g->state_tmp), "%s.tmp", g->state_path);
    if (rc == 0 && (n <= 0 || (size_t)n >= sizeof(g->state_tmp)))
        rc = ERR_INVALID;
    if (rc == 0)
        rc = hs_read(g);
    if (rc == 0)
        rc = idx_build(g);
    if (rc != 0)
        goto fail;
    hs_save_start(g);
    if (g->err != 0) {
        rc = g->err;
        goto fail;
    }
    g->flush_end = log_end_offset(g->log);
    g->ops = (struct raft_log_ops){.start_index = ops_start_index,
                                   .last_index = ops_last_index,
                                   .term_at = ops_term_at,
                                   .batch_at = ops_batch_at,
                                   .append = ops_append,
                                   .truncate = ops_truncate};
    memset(&ro, 0, sizeof(ro));
    ro.self = h->self;
    ro.term = g->hs_term;
    ro.vote = g->hs_vote;
    ro.commit_index = o->applied_index < idx_last(g) ? o->applied_index : idx_last(g);
    ro.config = o->config;
    ro.passive = o->joining;
    ro.config_prev = o->config;
    ro.election_ticks = o->election_ticks ? o->election_ticks : RAFT_ELECTION_TICKS_DEFAULT;
    ro.heartbeat_ticks = o->heartbeat_ticks ? o->heartbeat_ticks : RAFT_HEARTBEAT_TICKS_DEFAULT;
    ro.pre_vote = true;
    ro.check_quorum = true;
    ro.seed = o->seed;
    ro.log = &g->ops;
    ro.log_ctx = g;
    rc = raft_init(&g->raft, &ro);
    if (rc != 0)
        goto fail;
    g->applied = g->raft.commit;
    if (h->group_count == h->group_cap) {
        h->group_cap = h->group_cap ? h->group_cap * 2 : 8;
        h->groups = xrealloc(h->groups, h->group_cap * sizeof(*h->groups));
    }
    size_t at = group_pos(h, &g->id);
    memmove(h->groups + at + 1, h->groups + at, (h->group_count - at) * sizeof(*h->groups));
    h->groups[at] = g;
    h->group_count++;
    *out = g;
    return 0;
fail:
    group_free(g);
    return rc;
}

void raft_group_close(struct raft_group *g)
{
    struct raft_host *h = g->host;

    size_t at = group_pos(h, &g->id);
    ASSERT(at < h->group_count && h->groups[at] == g);
    memmove(h->groups + at, h->groups + at + 1, (h->group_count - at - 1) * sizeof(*h->groups));
    h->group_count--;
    fail_waiters_from(g, INT64_MIN, ERR_CLOSED);
    g->closed = true;
    if (g->flush_outstanding == 0)
        group_free(g);
}

int raft_group_propose(struct raft_group *g, uint8_t *batch, size_t len, struct raft_waiter *w,
                       raft_group_done_fn fn, void *ctx, int64_t *offset, int64_t *term)
{
    struct batch_header hdr;
    struct raft_batch b;
    int rc;

    if (g->err != 0)
        return g->err;
    rc = batch_header_parse(batch, len, &hdr);
    if (rc != 0 || batch_is_control(&hdr) || batch_total_bytes(&hdr) != len ||
        g->raft.term > INT32_MAX)
        return rc != 0 ? rc : ERR_INVALID;
    if (g->raft.role != RAFT_LEADER)
        return ERR_STATE;
    g->prop_bytes = batch;
    g->prop_len = len;
    rc = raft_propose(&g->raft, (uint32_t)hdr.last_offset_delta + 1, (uint32_t)len, &b);
    g->prop_bytes = NULL;
    g->prop_len = 0;
    if (rc != 0)
        return rc;
    if (g->err != 0)
        return g->err;
    *offset = b.first_index;
    *term = b.term;
    if (w != NULL) {
        *w =
            (struct raft_waiter){.last_offset = b.last_index, .term = b.term, .fn = fn, .ctx = ctx};
        *g->waiters_tail = w;
        g->waiters_tail = &w->next;
    }
    group_pump(g);
    return 0;
}

int raft_group_compact(struct raft_group *g, int64_t offset)
{
    const struct rh_batch *b;
    int64_t before = 0;
    int rc;

    if (g->err != 0)
        return g->err;
    idx_follow_start(g);
    if (offset <= idx_start(g))
        return 0;
    b = idx_find(g, offset - 1);
    if (offset > g->raft.commit + 1 || b == NULL || b->last != offset - 1)
        return ERR_INVALID;
    before = b->term;
    /* The term before the new start is on disk before the start moves. */
    g->hs_start = offset;
    g->hs_prev_term = before;
    rc = hs_write(g);
    if (rc == 0)
        rc = log_delete_records(g->log, offset);
    if (rc != 0)
        return rc;
    idx_follow_start(g);
    return 0;
}

struct raft *raft_group_core(struct raft_group *g)
{
    return &g->raft;
}

bool raft_group_is_leader(const struct raft_group *g)
{
    return g->raft.role == RAFT_LEADER;
}

int64_t raft_group_commit(const struct raft_group *g)
{
    return g->raft.commit;
}

int raft_group_error(const struct raft_group *g)
{
    return g->err;
}
