/*
 * The Raft host (raft_host.h): the core's log view over a partition log, the persist -> send ->
 * apply -> advance loop, the node's hard-state journal, and proposal waiters.
 *
 * Invariants:
 * - idx[0..idx_count) are the log's batches from the log start to its end, in order, without
 *   gaps; prev_term is the term of the entry before the first one (0 before offset 0).
 * - The core is told an index is persisted only when the log's durable offset passed it.
 * - No message of a ready reaches the transport before that ready's hard state is on disk:
 *   while a group's term or vote is queued and not synced (hold_epoch == host epoch) its
 *   messages wait in host->held, in order; raft_host_flush syncs, then bumps the epoch.
 * - The table holds exactly one entry per group the journal (or an open group) knows; an entry
 *   is in host->dirty at most once (queued); the journal file ends at journal_bytes after the
 *   last good record.
 * - A closed group whose flush callbacks are still outstanding stays allocated (closed set)
 *   until the last one runs; nothing else touches it.
 * - active[0..active_count) holds every open group whose core is not quiesced and that has not
 *   failed, each once, at its active_at (SIZE_MAX when not in it); after a tick it holds no
 *   other. Only groups in it are ticked; quiesced ones are woken by a message, a proposal or a
 *   silent peer (raft_wake), and group_pump puts them back.
 * - peers holds every other node that is a member of an open group, with the number of such
 *   groups; heard is the host tick of its last frame; silent is set once it went unheard for
 *   election_ticks_min ticks (or the transport reported it down) and cleared by its next frame.
 *
 * RAFT_HOST_BUG_* (never defined in a product build) each break one of these promises on
 * purpose: tests/unit/cluster and tests/sim/cluster_sim build this file with them and must catch
 * every one.
 */
#include "cluster/raft_host.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/compiler.h"
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
/* The per-group file before the journal (read once to migrate): version, 3 zero bytes, be64 term,
 * be32 vote, be64 log start, be64 term of the entry before the log start, be32 CRC-32C of
 * everything before it. */
#define HS_LEGACY_BYTES 36
/* A journal record: be32 CRC-32C of everything after it, be32 entry count (> 0), version, 3 zero
 * bytes; then count entries of HS_ENTRY_BYTES: topic id (16 bytes), be32 partition, be32 vote,
 * be64 term, be64 log start, be64 term of the entry before the log start. */
#define HS_RECORD_HEADER_BYTES 12
#define HS_ENTRY_BYTES         48
#define HS_JOURNAL_NAME        "raft.state"
/* The control record type a no-op carries: Kafka's LEADER_CHANGE (ControlRecordType 2). */
#define NOOP_CONTROL_TYPE 2
/* A log-start marker's control record type: Chronik's own, outside Kafka's types (consumers
 * skip every control batch). */
#define LOG_START_CONTROL_TYPE 0x4301

/* The Raft kind of a batch of the log: a no-op is a control batch outside any transaction; a
 * transaction marker (a transactional control batch) is data a leader proposed. */
static uint8_t batch_kind(const struct batch_header *h)
{
    return batch_is_control(h) && !batch_is_transactional(h) ? RAFT_BATCH_NOOP : RAFT_BATCH_DATA;
}

struct rh_batch {
    int64_t first;
    int64_t last;
    int64_t term;
    uint32_t bytes;
    uint8_t kind;
};

/* One group's hard state as the host keeps it (the journal's latest entry, or newer and queued). */
struct rh_state {
    struct wire_group id;
    int64_t term;
    int32_t vote;
    int64_t start, prev_term;
    bool queued; /* in host->dirty: goes out with the next journal record */
};

/* A message held until the hard state it depends on is synced (raft_host_flush). */
struct rh_held {
    struct raft_group *g; /* NULL once the group closed */
    struct raft_msg msg;
};

struct raft_group {
    struct raft_host *host;
    size_t active_at; /* position in host->active, SIZE_MAX when quiesced or failed */
    struct wire_group id;
    struct log *log;
    struct raft raft;
    struct raft_log_ops ops;
    struct rh_batch *idx;
    size_t idx_count, idx_cap;
    int64_t prev_term;
    struct rh_state *hs; /* the host's entry for this group */
    /* Equal to host->epoch while this group's term or vote is not yet synced: its messages are
     * held until raft_host_flush. */
    uint64_t hold_epoch;
    int64_t reported_index, reported_term; /* last raft_persisted() */
    int64_t flush_end;                     /* highest end offset a flush callback waits for */
    uint32_t flush_outstanding;
    int err;
    bool closed;
    bool pumping, repump;
    /* Partition groups (raft_group_options.log_snapshots): the log is the snapshot. While a
     * follower installs one (installing >= 0: its last index) the group is frozen (no ticks,
     * inbound messages refused) until the new log is durable. */
    bool log_snapshots;
    int64_t installing, install_term;
    /* The log start the committed log-start markers name; applied once the log is durable up
     * to it (never a start checkpoint beyond the durable data). */
    int64_t start_want;
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
};

/* Another node that is a member of one of our groups. */
struct rh_peer {
    int32_t id;
    uint32_t groups;      /* open groups it is a member of */
    uint64_t heard;       /* host tick of its last frame */
    uint32_t incarnation; /* of its host, from its liveness messages; 0 until the first */
    bool silent;
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
    int err; /* the journal failed: every group stops */
    /* The journal: an open-addressing table of every group's hard state (open or not), the
     * entries queued for the next record, and the file. */
    struct rh_state **states;
    size_t state_count, state_cap; /* cap a power of two, at most half full */
    struct rh_state **dirty;
    size_t dirty_count, dirty_cap;
    struct io_file *journal;
    uint64_t journal_bytes;
    struct buf jbuf;
    char journal_path[IO_PATH_BYTES_MAX];
    char journal_tmp[IO_PATH_BYTES_MAX];
    /* Per-group files migrated into the journal, deleted once it is synced. */
    char (*migrated)[IO_PATH_BYTES_MAX];
    size_t migrated_count, migrated_cap;
    /* Messages waiting for the sync of their group's hard state, in order; bumping epoch
     * releases every group. */
    struct rh_held *held;
    size_t held_count, held_cap;
    uint64_t epoch;
    /* Quiescence: the groups ticked, the peers, and the timing liveness uses (the shortest of
     * every group opened: UINT32_MAX before the first). */
    struct raft_group **active;
    size_t active_count, active_cap;
    struct rh_peer *peers;
    size_t peer_count, peer_cap;
    uint32_t election_ticks_min, heartbeat_ticks_min;
    uint32_t incarnation; /* this host's, never 0: a peer that sees it change knows we restarted */
};

const struct wire_group raft_host_liveness_group = {.partition = 0};

static void active_add(struct raft_group *g)
{
    struct raft_host *h = g->host;

    if (g->active_at != SIZE_MAX)
        return;
    if (h->active_count == h->active_cap) {
        h->active_cap = h->active_cap ? 2 * h->active_cap : 64;
        h->active = xrealloc(h->active, h->active_cap * sizeof(*h->active));
    }
    g->active_at = h->active_count;
    h->active[h->active_count++] = g;
}

static void active_remove(struct raft_group *g)
{
    struct raft_host *h = g->host;
    size_t at = g->active_at;

    if (at == SIZE_MAX)
        return;
    ASSERT(at < h->active_count && h->active[at] == g);
    h->active[at] = h->active[--h->active_count];
    h->active[at]->active_at = at;
    g->active_at = SIZE_MAX;
}

static struct rh_peer *peer_find(struct raft_host *h, int32_t id)
{
    for (size_t i = 0; i < h->peer_count; i++)
        if (h->peers[i].id == id)
            return &h->peers[i];
    return NULL;
}

/* The members of c other than this node are peers (one more group each). */
static void peers_ref(struct raft_host *h, const struct raft_config *c)
{
    for (uint32_t i = 0; i < c->count; i++) {
        struct rh_peer *p;

        if (c->ids[i] == h->self)
            continue;
        p = peer_find(h, c->ids[i]);
        if (p == NULL) {
            if (h->peer_count == h->peer_cap) {
                h->peer_cap = h->peer_cap ? 2 * h->peer_cap : 8;
                h->peers = xrealloc(h->peers, h->peer_cap * sizeof(*h->peers));
            }
            /* Not heard from yet, but not silent either: it gets an election timeout. */
            p = &h->peers[h->peer_count++];
            *p = (struct rh_peer){.id = c->ids[i], .heard = h->stats.host_ticks};
        }
        p->groups++;
    }
}

static void peers_unref(struct raft_host *h, const struct raft_config *c)
{
    for (uint32_t i = 0; i < c->count; i++) {
        struct rh_peer *p = c->ids[i] == h->self ? NULL : peer_find(h, c->ids[i]);

        if (p != NULL && --p->groups == 0)
            *p = h->peers[--h->peer_count];
    }
}

static void hs_save_start(struct raft_group *g);
static void peer_restarted(struct raft_host *h, struct rh_peer *p);
static int propose_bytes(struct raft_group *g, uint8_t *batch, size_t len, uint32_t count,
                         struct raft_waiter *w, raft_group_done_fn fn, void *ctx, int64_t *offset,
                         int64_t *term);

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
    /* The first batch may begin before a log start that a marker put inside it. */
    int64_t start = log_start_offset(g->log);
    int rc = log_read(g->log, offset < start ? start : offset, 1, INT64_MAX, rd);

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
                             .kind = batch_kind(&h)};
    return 0;
}

static int idx_build(struct raft_group *g)
{
    int64_t off = log_start_offset(g->log), end = log_end_offset(g->log);

    /* A log-start marker may have put the start inside a batch: the index starts with that
     * batch (the Raft log keeps whole batches). */
    if (off < end) {
        struct log_read rd;
        int rc = log_read(g->log, off, 1, INT64_MAX, &rd);
        if (rc != 0)
            return rc;
        if (rd.file != NULL)
            off = rd.first_offset;
        log_read_release(&rd);
    }

    /* The term before the start: from the hard-state file when it recorded this start; else
     * (the start moved behind the host's back and a crash came before it noticed) the term of
     * the first batch, which is an upper bound (see raft_group_compact). That term is read
     * from the batch itself: a marker inside it puts the log's start, and with it the epoch
     * cache's first entry, after the batch's first offset (cluster_sim seed 261304). With no
     * batch left, the current term is the bound. */
    bool prev_from_first = false;
    g->prev_term = 0;
    if (off > 0 && off == g->hs->start)
        g->prev_term = g->hs->prev_term;
    else if (off > 0 && off < end)
        prev_from_first = true;
    else if (off > 0)
        g->prev_term = g->hs->term;
    while (off < end) {
        struct rh_batch b;
        struct log_read rd;
        int rc = read_batch(g, off, &b, &rd);

        if (rc != 0)
            return rc;
        log_read_release(&rd);
        if (prev_from_first && g->idx_count == 0)
            g->prev_term = b.term;
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

/* A new leader's no-op: one LEADER_CHANGE control record, stamped with the new term as its
 * leader epoch (client reads leave it out: log_read_records). */
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
        struct batch_header h;
        rc = log_append(g->log, g->prop_bytes, g->prop_len, (int32_t)b->term, &res);
        e.bytes = (uint32_t)g->prop_len;
        if (rc == 0 && batch_header_parse(g->prop_bytes, g->prop_len, &h) == 0)
            e.kind = batch_kind(&h); /* as read back: a log-start marker is a no-op, a
                                      * transaction marker data */
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

/* ---- hard state: the node's journal -------------------------------------------------------- */

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

static bool hs_valid(const struct raft_host_hard_state *s)
{
    return s->term >= RAFT_HOST_TERM_STANDALONE && s->vote >= RAFT_NONE && s->start >= -1 &&
           s->prev_term >= 0 && s->prev_term <= s->term;
}

static void hs_encode(const struct rh_state *s, uint8_t *p)
{
    memcpy(p, s->id.topic_id.bytes, sizeof(s->id.topic_id.bytes));
    put_be32(p + 16, (uint32_t)s->id.partition);
    put_be32(p + 20, (uint32_t)s->vote);
    put_be64(p + 24, s->term);
    put_be64(p + 32, s->start);
    put_be64(p + 40, s->prev_term);
}

static void hs_decode(const uint8_t *p, struct raft_host_hard_state *s)
{
    memset(s, 0, sizeof(*s));
    memcpy(s->id.topic_id.bytes, p, sizeof(s->id.topic_id.bytes));
    s->id.partition = (int32_t)get_be32(p + 16);
    s->vote = (int32_t)get_be32(p + 20);
    s->term = get_be64(p + 24);
    s->start = get_be64(p + 32);
    s->prev_term = get_be64(p + 40);
}

/* Starts a record of count entries in b (header with the CRC left to hs_record_end). */
static void hs_record_begin(struct buf *b, uint32_t count)
{
    uint8_t *p;

    buf_reset(b);
    p = buf_extend(b, HS_RECORD_HEADER_BYTES);
    memset(p, 0, HS_RECORD_HEADER_BYTES);
    put_be32(p + 4, count);
    p[8] = HS_VERSION;
}

static void hs_record_add(struct buf *b, const struct rh_state *s)
{
    hs_encode(s, buf_extend(b, HS_ENTRY_BYTES));
}

static void hs_record_end(struct buf *b)
{
    put_be32(b->data, crc32c_update(0, b->data + 4, b->len - 4));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* True when the bytes of f from off to size are all zero (a torn append's unwritten blocks). */
static int tail_is_zero(struct io_file *f, uint64_t off, uint64_t size, bool *zero)
{
    uint8_t b[4096];

    *zero = true;
    while (off < size && *zero) {
        size_t n = size - off < sizeof(b) ? (size_t)(size - off) : sizeof(b);
        ssize_t got = io_pread(f, b, n, off);
        if (got != (ssize_t)n)
            return got < 0 ? (int)got : ERR_INCOMPLETE;
        *zero = all_zero(b, n);
        off += n;
    }
    return 0;
}

/*
 * Reads the journal f of size bytes record by record, calling fn for every entry in file
 * order (a later entry of a group replaces an earlier one). *valid is where the good records
 * end. Only the last record can be torn (each is synced before the next is written): one
 * running past the end, failing its CRC and ending exactly at the end, or followed only by
 * zeros, is ignored. A bad record with good bytes after it is ERR_CORRUPT.
 */
int raft_host_journal_read(struct io_file *f, uint64_t size,
                           int (*fn)(void *ctx, const struct raft_host_hard_state *s), void *ctx,
                           uint64_t *valid)
{
    struct buf b;
    uint64_t off = 0;
    int rc = 0;

    buf_init(&b);
    while (rc == 0 && off < size) {
        uint8_t hdr[HS_RECORD_HEADER_BYTES];
        uint64_t left = size - off;
        bool zero;

        if (left < sizeof(hdr))
            break; /* torn header */
        ssize_t got = io_pread(f, hdr, sizeof(hdr), off);
        if (got != (ssize_t)sizeof(hdr)) {
            rc = got < 0 ? (int)got : ERR_INCOMPLETE;
            break;
        }
        uint32_t count = get_be32(hdr + 4);
        uint64_t len = sizeof(hdr) + (uint64_t)count * HS_ENTRY_BYTES;
        bool header_ok = count > 0 && count <= RAFT_HOST_GROUPS_MAX && hdr[8] == HS_VERSION &&
                         all_zero(hdr + 9, 3);
        if (header_ok && len > left)
            break; /* torn: the end of the last record never reached the disk */
        buf_reset(&b);
        if (header_ok) {
            memcpy(buf_extend(&b, (size_t)len), hdr, sizeof(hdr));
            got = io_pread(f, b.data + sizeof(hdr), (size_t)len - sizeof(hdr), off + sizeof(hdr));
            if (got != (ssize_t)(len - sizeof(hdr))) {
                rc = got < 0 ? (int)got : ERR_INCOMPLETE;
                break;
            }
        }
        if (!header_ok || get_be32(b.data) != crc32c_update(0, b.data + 4, b.len - 4)) {
            if (header_ok && len == left)
                break; /* torn: the last record, partly written */
            rc = tail_is_zero(f, off, size, &zero);
            if (rc == 0 && !zero)
                rc = ERR_CORRUPT;
            break;
        }
        for (uint32_t i = 0; i < count && rc == 0; i++) {
            struct raft_host_hard_state s;
            hs_decode(b.data + sizeof(hdr) + (size_t)i * HS_ENTRY_BYTES, &s);
            rc = hs_valid(&s) ? fn(ctx, &s) : ERR_CORRUPT;
        }
        if (rc == 0)
            off += len;
    }
    buf_deinit(&b);
    *valid = off;
    return rc;
}

/* ---- the table of hard states: every group the journal knows, open or not ------------------- */

static uint64_t hs_hash(const struct wire_group *id)
{
    uint64_t x = 1469598103934665603ull;

    for (size_t i = 0; i < sizeof(id->topic_id.bytes); i++)
        x = (x ^ id->topic_id.bytes[i]) * 1099511628211ull;
    x = (x ^ (uint32_t)id->partition) * 1099511628211ull;
    return x ^ (x >> 29);
}

static struct rh_state *hs_find(const struct raft_host *h, const struct wire_group *id)
{
    if (h->state_cap == 0)
        return NULL;
    for (size_t i = hs_hash(id) & (h->state_cap - 1);; i = (i + 1) & (h->state_cap - 1)) {
        struct rh_state *s = h->states[i];
        if (s == NULL || wire_group_eq(&s->id, id))
            return s;
    }
}

static void hs_insert_slot(struct rh_state **tab, size_t cap, struct rh_state *s)
{
    size_t i = hs_hash(&s->id) & (cap - 1);

    while (tab[i] != NULL)
        i = (i + 1) & (cap - 1);
    tab[i] = s;
}

/* The entry of id, created with the initial hard state when absent; NULL over the bound. */
static struct rh_state *hs_get(struct raft_host *h, const struct wire_group *id)
{
    struct rh_state *s = hs_find(h, id);

    if (s != NULL)
        return s;
    if (h->state_count == RAFT_HOST_GROUPS_MAX)
        return NULL;
    if (2 * (h->state_count + 1) > h->state_cap) {
        size_t cap = h->state_cap ? 2 * h->state_cap : 64;
        struct rh_state **tab = xcalloc(cap, sizeof(*tab));
        for (size_t i = 0; i < h->state_cap; i++)
            if (h->states[i] != NULL)
                hs_insert_slot(tab, cap, h->states[i]);
        free(h->states);
        h->states = tab;
        h->state_cap = cap;
    }
    s = xcalloc(1, sizeof(*s));
    *s = (struct rh_state){.id = *id,
                           .term = RAFT_HOST_TERM_STANDALONE,
                           .vote = RAFT_NONE,
                           .start = -1,
                           .prev_term = 0};
    hs_insert_slot(h->states, h->state_cap, s);
    h->state_count++;
    return s;
}

/* Queues s for the next journal write. */
static void hs_dirty(struct raft_host *h, struct rh_state *s)
{
    if (s->queued)
        return;
    if (h->dirty_count == h->dirty_cap) {
        h->dirty_cap = h->dirty_cap ? 2 * h->dirty_cap : 64;
        h->dirty = xrealloc(h->dirty, h->dirty_cap * sizeof(*h->dirty));
    }
    h->dirty[h->dirty_count++] = s;
    s->queued = true;
}

static int journal_load_entry(void *ctx, const struct raft_host_hard_state *in)
{
    struct raft_host *h = ctx;
    struct rh_state *s = hs_get(h, &in->id);

    if (s == NULL)
        return ERR_CORRUPT; /* more groups than any journal this host writes */
    s->term = in->term;
    s->vote = in->vote;
    s->start = in->start;
    s->prev_term = in->prev_term;
    return 0;
}

static int journal_compact(struct raft_host *h);

/* Reads <state_dir>/raft.state into the table, cuts a torn tail, rewrites it durably, and opens
 * it for appending. */
static int journal_open(struct raft_host *h)
{
    uint64_t size = 0, valid = 0;
    bool is_dir;
    int rc = io_exists(h->io, h->journal_path, &is_dir);
    bool created = rc == -ENOENT;

    if (rc != 0 && !created)
        return rc;
    rc = io_open(h->io, h->journal_path, IO_RDWR | IO_CREATE, &h->journal);
    if (rc == 0)
        rc = io_size(h->journal, &size);
    if (rc == 0)
        rc = raft_host_journal_read(h->journal, size, journal_load_entry, h, &valid);
    if (rc == 0 && valid < size) {
        rc = io_truncate(h->journal, valid);
        if (rc == 0)
            rc = io_sync(h->journal);
        h->stats.hard_state_syncs++;
    }
    if (rc == 0 && created) {
        rc = io_sync_dir(h->io, h->state_dir); /* the file itself survives a crash */
        h->stats.hard_state_syncs++;
    }
    h->journal_bytes = valid;
    /* What was read may be only in the page cache: after a failed fsync (the process that saw
     * it failed and exited) the kernel may drop those pages unwritten while reads still show
     * them, and the records this process syncs behind them would then follow a hole that reads
     * as damage after a power loss (cluster_sim --brokers --nodes 5 --seed 15: the node no
     * longer started). Rewritten once at start-up, what was read is durable. */
    if (rc == 0 && h->state_count > 0)
        rc = journal_compact(h);
    return rc;
}

/* Rewrites the journal as one record of every entry: temp file, fsync, rename, directory fsync
 * (the old journal or the new one survives a crash, never a mix). */
static int journal_compact(struct raft_host *h)
{
    struct io_file *f = NULL;
    uint32_t n = 0;
    int rc;

    hs_record_begin(&h->jbuf, (uint32_t)h->state_count);
    for (size_t i = 0; i < h->state_cap; i++) {
        if (h->states[i] != NULL) {
            hs_record_add(&h->jbuf, h->states[i]);
            n++;
        }
    }
    ASSERT(n == h->state_count);
    hs_record_end(&h->jbuf);
    rc = io_open(h->io, h->journal_tmp, IO_RDWR | IO_CREATE, &f);
    if (rc == 0)
        rc = io_truncate(f, 0);
    if (rc == 0) {
        ssize_t w = io_pwrite(f, h->jbuf.data, h->jbuf.len, 0);
        rc = w == (ssize_t)h->jbuf.len ? 0 : w < 0 ? (int)w : ERR_INCOMPLETE;
    }
    if (rc == 0)
        rc = io_sync(f);
    if (rc == 0)
        rc = io_rename(h->io, h->journal_tmp, h->journal_path);
    if (rc == 0)
        rc = io_sync_dir(h->io, h->state_dir);
    h->stats.hard_state_syncs += 2;
    h->stats.journal_compactions++;
    if (rc != 0) {
        if (f != NULL)
            io_close(f);
        return rc;
    }
    io_close(h->journal);
    h->journal = f;
    h->journal_bytes = h->jbuf.len;
    return 0;
}

static void host_fail(struct raft_host *h, int err);

/* Writes every queued hard state as one record and syncs it once, then deletes the migrated
 * per-group files (their state is in the journal now) and compacts a journal grown past
 * max(RAFT_HOST_JOURNAL_BYTES_MIN, 4 x its live size). */
static int journal_commit(struct raft_host *h)
{
    int rc = 0;

    if (h->err != 0 || h->dirty_count == 0)
        return h->err;
    hs_record_begin(&h->jbuf, (uint32_t)h->dirty_count);
    for (size_t i = 0; i < h->dirty_count; i++) {
        hs_record_add(&h->jbuf, h->dirty[i]);
        h->dirty[i]->queued = false;
    }
    hs_record_end(&h->jbuf);
    h->stats.hard_state_writes += h->dirty_count;
    h->dirty_count = 0;
    ssize_t w = io_pwrite(h->journal, h->jbuf.data, h->jbuf.len, h->journal_bytes);
    rc = w == (ssize_t)h->jbuf.len ? 0 : w < 0 ? (int)w : ERR_INCOMPLETE;
    if (rc == 0)
        rc = io_sync(h->journal);
    h->stats.hard_state_syncs++;
    if (rc == 0) {
        uint64_t live = HS_RECORD_HEADER_BYTES + (uint64_t)h->state_count * HS_ENTRY_BYTES;
        h->journal_bytes += h->jbuf.len;
        for (size_t i = 0; i < h->migrated_count; i++)
            (void)io_remove(h->io, h->migrated[i]); /* a leftover is harmless: the journal wins */
        h->migrated_count = 0;
        if (h->journal_bytes > RAFT_HOST_JOURNAL_BYTES_MIN && h->journal_bytes > 4 * live)
            rc = journal_compact(h);
    }
    if (rc != 0)
        host_fail(h, rc);
    return rc;
}

/* The hard state of a group opened for the first time since the journal: from the per-group
 * file of the format before it (<topic id hex>-<partition>.raft-state), queued for the journal
 * and the old file deleted once the journal is synced; the initial state when there is none. */
static int hs_migrate(struct raft_host *h, struct rh_state *s)
{
    char path[IO_PATH_BYTES_MAX], hex[33];
    uint8_t b[HS_LEGACY_BYTES];
    struct io_file *f;
    struct raft_host_hard_state old = {.id = s->id};
    bool is_dir;
    ssize_t n;

    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", s->id.topic_id.bytes[i]);
    int len = snprintf(path, sizeof(path), "%s/%s-%" PRId32 ".raft-state", h->state_dir, hex,
                       s->id.partition);
    if (len <= 0 || (size_t)len >= sizeof(path))
        return ERR_INVALID;
    int rc = io_exists(h->io, path, &is_dir);
    if (rc == -ENOENT)
        return 0;
    if (rc == 0)
        rc = io_open(h->io, path, IO_RDONLY, &f);
    if (rc != 0)
        return rc;
    n = io_pread(f, b, sizeof(b), 0);
    io_close(f);
    if (n < 0)
        return (int)n;
    if (n != (ssize_t)sizeof(b) || b[0] != HS_VERSION ||
        get_be32(b + 32) != crc32c_update(0, b, 32))
        return ERR_CORRUPT;
    old.term = get_be64(b + 4);
    old.vote = (int32_t)get_be32(b + 12);
    old.start = get_be64(b + 16);
    old.prev_term = get_be64(b + 24);
    if (!hs_valid(&old))
        return ERR_CORRUPT;
    s->term = old.term;
    s->vote = old.vote;
    s->start = old.start;
    s->prev_term = old.prev_term;
    hs_dirty(h, s);
    if (h->migrated_count == h->migrated_cap) {
        h->migrated_cap = h->migrated_cap ? 2 * h->migrated_cap : 4;
        h->migrated = xrealloc(h->migrated, h->migrated_cap * sizeof(*h->migrated));
    }
    memcpy(h->migrated[h->migrated_count++], path, (size_t)len + 1);
    return 0;
}

/* Records the log start and the term before it, which the log's epoch cache forgets when its
 * start moves (term_at(start - 1) must survive restarts). Written with the next journal
 * record; until then a crash leaves the term before the start as an upper bound. */
static void hs_save_start(struct raft_group *g)
{
    int64_t start = idx_start(g);

    if (g->err != 0 || (start == g->hs->start && g->prev_term == g->hs->prev_term))
        return;
    g->hs->start = start;
    g->hs->prev_term = g->prev_term;
    hs_dirty(g->host, g->hs);
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

/* A flush of g ended; false when g is closed (freed with its last flush): the callback stops. */
static bool flush_ended(struct raft_group *g)
{
    g->flush_outstanding--;
    if (!g->closed)
        return true;
    if (g->flush_outstanding == 0)
        group_free(g);
    return false;
}

static void on_flushed(void *ctx, int err, int64_t durable_offset)
{
    struct raft_group *g = ctx;

    (void)durable_offset;
    if (!flush_ended(g))
        return;
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
    g->host->stats.append_batches_sent += n;
    g->host->stats.append_bytes_sent += s->len;
    w->msg.batches = n ? shapes : NULL;
    w->msg.batch_count = n;
    w->batch_bytes = n ? bytes : NULL;
    return transport_send(g->host->transport, w);
}

static void send_msg(struct raft_group *g, const struct raft_msg *m)
{
    struct raft_host *h = g->host;
    struct wire_msg w = {.group = g->id, .msg = *m};
    int rc;

    if (h->transport == NULL) {
        h->stats.msgs_dropped++;
        return;
    }
    if (m->type == RAFT_MSG_APPEND)
        rc = send_append(g, m, &w);
    else
        rc = transport_send(h->transport, &w);
    if (rc == 0) {
        h->stats.msgs_sent++;
        h->stats.msgs_sent_by_type[m->type < RAFT_MSG_TYPE_COUNT ? m->type : 0]++;
    } else
        h->stats.msgs_dropped++;
}

/* True while the group's term or vote is not synced: its messages wait for raft_host_flush. */
static bool holds(const struct raft_group *g)
{
#ifdef RAFT_HOST_BUG_SEND_BEFORE_HARD_STATE
    (void)g;
    return false; /* injected bug: a vote or term leaves before its sync */
#else
    return g->hold_epoch == g->host->epoch;
#endif
}

/* Sends now, or holds (in order: once one message of a group is held, the rest of the
 * iteration's are too, since holds() stays true until raft_host_flush). */
static void send_msgs(struct raft_group *g, const struct raft_msg *msgs, uint32_t count)
{
    struct raft_host *h = g->host;

    for (uint32_t i = 0; i < count; i++) {
        if (!holds(g)) {
            send_msg(g, &msgs[i]);
            continue;
        }
        if (h->held_count == h->held_cap) {
            h->held_cap = h->held_cap ? 2 * h->held_cap : 64;
            h->held = xrealloc(h->held, h->held_cap * sizeof(*h->held));
        }
        h->held[h->held_count++] = (struct rh_held){.g = g, .msg = msgs[i]};
        h->stats.msgs_held++;
    }
}

/* ---- log-start markers (DeleteRecords on replicated partitions) ------------------------------ */

/*
 * A partition's log start is replicated state: the leader proposes a marker, one control
 * record of type LOG_START_CONTROL_TYPE whose value is the new start (8 bytes, big endian),
 * and every replica moves its log start there (log_delete_records) when its commit index
 * passes the marker. Committed means on a majority, and every later leader holds the marker
 * and applies it before it serves (apply runs before readiness is reported), so a start once
 * answered never goes back, across fail-overs and restarts (a replica whose start checkpoint
 * was lost applies the marker again when it commits it again: applying is idempotent).
 * Consumers skip control batches.
 */
static int marker_read(struct raft_group *g, const struct rh_batch *e, int64_t *start)
{
    struct log_read rd;
    struct rh_batch b;
    struct batch_header h;
    struct batch_rec_iter it;
    struct batch_rec rec;
    uint8_t bytes[RAFT_HOST_MARKER_BYTES_MAX];
    int rc;

    *start = -1;
    if (e->bytes > sizeof(bytes))
        return 0; /* larger than any marker: some other control batch */
    rc = read_batch(g, e->first, &b, &rd);
    if (rc != 0)
        return rc;
    ssize_t got = io_pread(log_file_io(rd.file), bytes, e->bytes, rd.position);
    log_read_release(&rd);
    if (got != (ssize_t)e->bytes)
        return got < 0 ? (int)got : ERR_CORRUPT;
    if (batch_parse(bytes, e->bytes, &h) != 0 || batch_codec(&h) != BATCH_CODEC_NONE)
        return 0;
    batch_rec_iter_init(
        &it, slice_make(bytes + LOG_BATCH_HEADER_BYTES, e->bytes - LOG_BATCH_HEADER_BYTES));
    if (batch_rec_iter_next(&it, &rec) != 1 || rec.key.len != 4 || rec.value.len != 8 ||
        rec.key.ptr[2] != (LOG_START_CONTROL_TYPE >> 8) ||
        rec.key.ptr[3] != (LOG_START_CONTROL_TYPE & 0xff))
        return 0;
    *start = get_be64(rec.value.ptr);
    return 0;
}

/*
 * Moves the log start to start_want once the log is durable up to it: a follower may commit
 * (and apply) a marker before its own copy of the entries below it is on disk, and a start
 * checkpoint beyond the durable data would open as an empty log there after a crash. A leader
 * is always durable past its committed markers (it counts itself only once persisted), so it
 * applies them in the ready that commits them, before it is ready to serve.
 */
static void start_follow(struct raft_group *g)
{
    if (g->err != 0 || g->start_want <= log_start_offset(g->log) ||
        g->start_want > log_durable_offset(g->log) || g->start_want > log_high_watermark(g->log))
        return;
    int rc = log_delete_records(g->log, g->start_want);
    if (rc != 0 && g->err == 0)
        g->err = rc;
    idx_follow_start(g);
}

/* Applies the markers among the committed entries [first, last]. */
static void markers_apply(struct raft_group *g, int64_t first, int64_t last)
{
    int64_t target = -1;

#ifdef RAFT_HOST_BUG_MARKER_LEADER_ONLY
    /* injected bug: only the leader moves its log start (followers keep theirs) */
    if (g->raft.role != RAFT_LEADER)
        return;
#endif
    idx_follow_start(g);
    for (const struct rh_batch *e = idx_find(g, MAX(first, idx_start(g)));
         e != NULL && e < g->idx + g->idx_count && e->first <= last; e++) {
        int64_t start;

        if (e->kind != RAFT_BATCH_NOOP)
            continue;
        int rc = marker_read(g, e, &start);
        if (rc != 0) {
            if (g->err == 0)
                g->err = rc;
            return;
        }
        /* A marker never names an offset past itself (the leader's high watermark then). */
        if (start > target && start <= e->first)
            target = start;
    }
    if (target > g->start_want)
        g->start_want = target;
    if (log_high_watermark(g->log) < last + 1) {
        int rc = log_set_high_watermark(g->log, last + 1);
        if (rc != 0 && g->err == 0)
            g->err = rc;
    }
    start_follow(g);
}

int raft_group_propose_start(struct raft_group *g, int64_t start, struct raft_waiter *w,
                             raft_group_done_fn fn, void *ctx)
{
    static const uint8_t key[4] = {0, 0, LOG_START_CONTROL_TYPE >> 8,
                                   LOG_START_CONTROL_TYPE & 0xff}; /* version 0, type */
    uint8_t value[8];
    struct buf b;
    int64_t offset, term;

    if (g->err != 0)
        return g->err;
    if (g->raft.role != RAFT_LEADER)
        return ERR_STATE;
    if (start < 0 || start > log_high_watermark(g->log))
        return ERR_RANGE;
    put_be64(value, start);
    struct batch_build_opts opts = {.attributes = BATCH_ATTR_CONTROL,
                                    .producer_id = -1,
                                    .producer_epoch = -1,
                                    .base_sequence = -1};
    struct batch_record rec = {.key = slice_make(key, sizeof(key)),
                               .value = slice_make(value, sizeof(value)),
                               .timestamp_ms = g->host->clock ? clock_wall_ms(g->host->clock) : 0};
    buf_init(&b);
    int rc = batch_build(&b, &opts, &rec, 1);
    if (rc == 0)
        rc = propose_bytes(g, b.data, b.len, 1, w, fn, ctx, &offset, &term);
    buf_deinit(&b);
    return rc;
}

/* ---- snapshots of partition groups ---------------------------------------------------------- */

/*
 * A partition's state machine is its log, so its snapshot at the leader's log start S is
 * nothing but (S - 1, its term): the entries before S are committed and gone everywhere they
 * were dropped. A follower that needs entries below S (raft_ready.snapshot_peers) gets a
 * SNAPSHOT message naming S - 1 and its term; it replaces its log by an empty one starting at
 * S (log_reset) and is then caught up by ordinary appends from S, out of the leader's sealed
 * segments: it ends with the leader's bytes at the same offsets. Install, on the follower:
 *   1. a suffix that disagrees with the leader at S - 1 is cut (uncommitted: the leader's
 *      committed entry there differs), durably, so the log ends below S;
 *   2. the new start and the term before it go to the journal, synced at once (as in
 *      raft_group_compact), so a restart after step 3 knows term_at(S - 1) exactly;
 *   3. log_reset: durable once the log's durable offset reaches S (its start checkpoint is the
 *      commit point: a crash leaves the old log or the new one, log.h);
 *   4. then, and only then, raft_snapshot_installed: the core acknowledges S - 1.
 * Between 1 and 4 the group is frozen (no ticks, inbound messages refused: a lossy network to
 * Raft), so the core never acts on a log view it has not been told about. Producer state is
 * not carried: the replica reads it forward from the new start (replica.c).
 */
static void snapshot_offer(struct raft_group *g, const int32_t *peers, uint32_t count)
{
    int64_t index = ops_start_index(g) - 1, term;

    if (count == 0 || index < 0 || ops_term_at(g, index, &term) != 0)
        return;
    for (uint32_t i = 0; i < count; i++) {
        struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT,
                             .term = g->raft.term,
                             .from = g->host->self,
                             .to = peers[i],
                             .index = index,
                             .log_term = term,
                             .last_index = index,
                             .commit = g->raft.commit,
                             .hint_index = -1};
        send_msgs(g, &m, 1);
        g->host->stats.snapshots_sent++;
    }
}

static void snapshot_done(struct raft_group *g)
{
    struct raft_config c = g->raft.config;
    int64_t index = g->installing;

    g->installing = -1;
    g->host->stats.snapshots_installed++;
    int rc = raft_snapshot_installed(&g->raft, index, g->install_term, &c);
    if (rc != 0 && g->err == 0)
        g->err = rc; /* the frozen log view changed: a host bug, the group stops */
    group_pump(g);
}

static void on_snapshot_durable(void *ctx, int err, int64_t durable_offset)
{
    struct raft_group *g = ctx;

    (void)durable_offset;
    if (!flush_ended(g))
        return;
    if (err != 0 && g->err == 0)
        g->err = err;
    if (g->err != 0 || g->installing < 0) {
        g->installing = -1;
        group_pump(g);
        return;
    }
    snapshot_done(g);
}

static void snapshot_install(struct raft_group *g, int64_t index, int64_t term)
{
    int64_t start = index + 1;
    int rc;

    if (g->err != 0 || g->installing >= 0 || g->raft.role == RAFT_LEADER || idx_start(g) > start)
        return; /* the leader offers it again if still needed */
    if (idx_last(g) >= index) {
        /* The core saw the terms at index differ, so that batch is not committed. */
        const struct rh_batch *b = idx_find(g, index);
        if (b == NULL || b->first <= g->raft.commit)
            return;
        ops_truncate(g, b->first);
        if (g->err != 0)
            return;
    }
    g->installing = index;
    g->install_term = term;
    g->hs->start = start;
    g->hs->prev_term = term;
    hs_dirty(g->host, g->hs);
    rc = journal_commit(g->host);
    if (rc == 0)
        rc = log_reset(g->log, start);
    if (rc != 0) {
        if (g->err == 0)
            g->err = rc;
        g->installing = -1;
        return;
    }
    g->idx_count = 0;
    g->prev_term = term;
    g->flush_end = start;
    rc = log_flush(g->log, start, on_snapshot_durable, g);
#ifdef RAFT_HOST_BUG_INSTALL_BEFORE_DURABLE
    /* injected bug: the snapshot acknowledged before the new log is on disk */
    if (rc == 0) {
        g->flush_outstanding++;
        rc = 1;
    }
#endif
    if (rc == 0)
        g->flush_outstanding++;
    else if (rc == 1)
        snapshot_done(g);
    else if (g->err == 0)
        g->err = rc;
}

static void process_ready(struct raft_group *g)
{
    struct raft_ready rd;
    struct raft_waiter *done = NULL;
    int32_t snapshot_peers[RAFT_MEMBERS_MAX];
    uint32_t snapshot_count;
    int64_t apply_first = -1, apply_last = -1, install_index, install_term;
    bool role_changed;
    uint8_t role;
    int32_t leader;

    raft_ready(&g->raft, &rd);
    g->host->stats.readies++;
    /* 1. Persist: hard state queued for the journal, synced once for all groups by
     * raft_host_flush, which releases the messages held meanwhile; the log through the
     * flusher. */
    if (rd.hard_state_changed) {
        g->hs->term = rd.term;
        g->hs->vote = rd.vote;
        hs_dirty(g->host, g->hs);
        g->hold_epoch = g->host->epoch;
    }
    report_durable(g);
    if (g->err != 0)
        return;
    /* 2. Send (or hold). */
    send_msgs(g, rd.msgs, rd.msg_count);
    /* A partition's snapshot is its own log: the peers are told where it starts. Other groups
     * host no snapshots: the leader asks again later. */
    snapshot_count = 0;
    if (g->log_snapshots) {
        snapshot_offer(g, rd.snapshot_peers, rd.snapshot_peer_count);
    } else {
        snapshot_count = rd.snapshot_peer_count;
        memcpy(snapshot_peers, rd.snapshot_peers, sizeof(snapshot_peers));
    }
    install_index = g->log_snapshots ? rd.install_index : -1;
    install_term = rd.install_term;
    /* 3. Apply (after advance, so callbacks may call back into the group). */
    if (rd.commit_changed && rd.commit_index > g->applied) {
        apply_first = g->applied + 1;
        apply_last = rd.commit_index;
        g->applied = rd.commit_index;
        done = waiters_take_committed(g, rd.commit_index);
        /* Committed log-start markers move the log start here, before the role callbacks: a
         * new leader is ready only with every marker it holds applied (an error stops the
         * group at the next pump; what committed still completes). */
        markers_apply(g, apply_first, apply_last);
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
    if (install_index >= 0)
        snapshot_install(g, install_index, install_term);
    if (role_changed && g->on_role != NULL)
        g->on_role(g->ctx, role, leader, g->raft.term);
    if (apply_last >= 0 && g->apply != NULL)
        g->apply(g->ctx, apply_first, apply_last);
    waiters_run(done, 0, g);
}

static void group_pump(struct raft_group *g)
{
    if (g->closed)
        return;
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
        start_follow(g);
        while (g->err == 0 && !g->closed && raft_has_ready(&g->raft))
            process_ready(g);
    } while (g->repump && !g->closed);
    g->pumping = false;
    if (g->err != 0)
        fail_waiters_from(g, INT64_MIN, g->err);
    else if (!g->closed && !g->raft.quiesced)
        active_add(g);
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
            batch_kind(&h) != b->kind)
            return false;
    }
    return true;
}

void raft_host_receive(struct raft_host *h, const struct wire_raft *frame)
{
    struct rh_peer *p = peer_find(h, frame->from);

    if (p != NULL) {
        p->heard = h->stats.host_ticks;
        p->silent = false;
    }
    for (size_t i = 0; i < frame->count; i++) {
        const struct wire_msg *m = &frame->msgs[i];
        struct raft_group *g;

        if (wire_group_eq(&m->group, &raft_host_liveness_group)) {
            /* The frame itself was the news; seq is the sender's incarnation. */
            h->stats.liveness_received++;
            if (p != NULL && m->msg.seq != 0 && m->msg.seq != p->incarnation) {
                bool restarted = p->incarnation != 0;
                p->incarnation = m->msg.seq;
                if (restarted)
                    peer_restarted(h, p);
            }
            continue;
        }
        g = find_group(h, &m->group);
        h->stats.msgs_received++;
        if (m->msg.type < RAFT_MSG_TYPE_COUNT)
            h->stats.msgs_received_by_type[m->msg.type]++;
        if (g == NULL || g->err != 0 || g->installing >= 0 ||
            (m->msg.type == RAFT_MSG_APPEND && !append_bytes_ok(m))) {
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

/*
 * Wakes every quiesced group that depends on peer p (raft_wake decides: the groups it leads, and
 * those this node leads with it as a member), p unheard for silent ticks. O(groups), once per
 * silence or restart of a peer.
 */
static void peer_wake(struct raft_host *h, struct rh_peer *p, uint64_t silent)
{
    for (size_t i = 0; i < h->group_count; i++) {
        struct raft_group *g = h->groups[i];

        if (g->err != 0 || !g->raft.quiesced || g->installing >= 0)
            continue;
        raft_wake(&g->raft, p->id, silent > UINT32_MAX ? UINT32_MAX : (uint32_t)silent);
        if (!g->raft.quiesced) {
            h->stats.peer_wakes++;
            group_pump(g);
        }
    }
}

static void peer_silent(struct raft_host *h, struct rh_peer *p)
{
    p->silent = true;
    h->stats.peers_silent++;
    peer_wake(h, p, h->stats.host_ticks - p->heard);
}

/* p's host restarted (a new incarnation) faster than it could go silent: it may have lost its
 * groups' state (a wiped disk, a member joining passively), so the groups that depend on it wake
 * and talk to it rather than wait for a message it may never send. */
static void peer_restarted(struct raft_host *h, struct rh_peer *p)
{
    h->stats.peer_restarts++;
    peer_wake(h, p, 0);
}

static void on_peer_down(void *ctx, int32_t peer, int err, const char *reason)
{
    struct raft_host *h = ctx;
    struct rh_peer *p = peer_find(h, peer);

    (void)err;
    (void)reason;
    if (p != NULL && !p->silent)
        peer_silent(h, p);
}

void raft_host_peer_gone(struct raft_host *h, int32_t peer)
{
    for (size_t i = 0; i < h->group_count; i++) {
        struct raft_group *g = h->groups[i];

        if (g->err != 0 || g->raft.role == RAFT_LEADER || g->raft.leader != peer)
            continue;
        raft_leader_gone(&g->raft, peer);
        h->stats.leaders_gone++;
        group_pump(g);
    }
}

/* Once per host tick: a liveness message to every peer each heartbeat interval, and peers
 * unheard for an election timeout become silent. */
static void liveness_tick(struct raft_host *h)
{
    uint64_t now = h->stats.host_ticks;
    bool beat = h->heartbeat_ticks_min != UINT32_MAX && now % h->heartbeat_ticks_min == 0;

    for (size_t i = 0; i < h->peer_count; i++) {
        struct rh_peer *p = &h->peers[i];

        if (!p->silent && now - p->heard >= h->election_ticks_min)
            peer_silent(h, p);
        if (beat && h->transport != NULL) {
            struct wire_msg w = {.group = raft_host_liveness_group,
                                 .msg = {.type = RAFT_MSG_HEARTBEAT,
                                         .from = h->self,
                                         .to = p->id,
                                         .hint_index = -1,
                                         .seq = h->incarnation}};
            if (transport_send(h->transport, &w) == 0)
                h->stats.liveness_sent++;
        }
    }
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
    h->epoch = 1;
    h->election_ticks_min = UINT32_MAX;
    h->heartbeat_ticks_min = UINT32_MAX;
    /* Distinct across restarts of this node: the start time, and a count for hosts started in
     * the same millisecond (or without a clock) by one process. */
    static uint32_t created;
    uint64_t t = o->clock != NULL ? (uint64_t)clock_wall_ms(o->clock) : 0;
    h->incarnation = (uint32_t)(t * 2654435761u) ^ (uint32_t)(t >> 32) ^ ++created;
    if (h->incarnation == 0)
        h->incarnation = 1;
    snprintf(h->state_dir, sizeof(h->state_dir), "%s", o->state_dir);
    snprintf(h->journal_path, sizeof(h->journal_path), "%s/%s", o->state_dir, HS_JOURNAL_NAME);
    snprintf(h->journal_tmp, sizeof(h->journal_tmp), "%s/%s.tmp", o->state_dir, HS_JOURNAL_NAME);
    buf_init(&h->scratch);
    buf_init(&h->jbuf);
    int rc = journal_open(h);
    if (rc != 0) {
        h->group_count = 0;
        raft_host_destroy(h);
        return rc;
    }
    *out = h;
    return 0;
}

void raft_host_destroy(struct raft_host *h)
{
    if (h == NULL)
        return;
    ASSERT(h->group_count == 0);
    if (h->journal != NULL)
        io_close(h->journal);
    for (size_t i = 0; i < h->state_cap; i++)
        free(h->states[i]);
    free(h->states);
    free(h->dirty);
    free(h->migrated);
    free(h->held);
    free(h->groups);
    free(h->active);
    free(h->peers);
    buf_deinit(&h->jbuf);
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
    size_t keep = 0;

    h->stats.host_ticks++;
    liveness_tick(h);
    /* Groups woken meanwhile (a callback proposing) join at the end and are ticked too. */
    for (size_t i = 0; i < h->active_count; i++) {
        struct raft_group *g = h->active[i];
        if (g->err != 0 || g->installing >= 0)
            continue;
        h->stats.group_ticks++;
        raft_tick(&g->raft);
        group_pump(g);
    }
    for (size_t i = 0; i < h->active_count; i++) {
        struct raft_group *g = h->active[i];
        if (g->err == 0 && !g->raft.quiesced) {
            g->active_at = keep;
            h->active[keep++] = g;
        } else {
            g->active_at = SIZE_MAX;
        }
    }
    h->active_count = keep;
}

/* The journal failed: nothing this node says about its term or votes can be trusted any more,
 * so every group stops (held messages are dropped, waiters fail). */
static void host_fail(struct raft_host *h, int err)
{
    if (h->err == 0)
        h->err = err;
    h->held_count = 0;
    for (size_t i = 0; i < h->group_count; i++) {
        struct raft_group *g = h->groups[i];
        if (g->err == 0)
            g->err = err;
        fail_waiters_from(g, INT64_MIN, g->err);
    }
}

int raft_host_flush(struct raft_host *h)
{
    size_t n = h->held_count;

    if (h->err != 0)
        return h->err;
    int rc = journal_commit(h);
    if (rc != 0)
        return rc;
    /* Synced: the held messages leave, in order; groups stop holding. A message of a term the
     * group has left since (a candidate that learnt a higher term in the same iteration) is
     * dropped: what is on disk now is the later term, and Raft tolerates the loss. */
    h->epoch++;
    h->held_count = 0;
    for (size_t i = 0; i < n; i++) {
        struct rh_held *m = &h->held[i];
        if (m->g == NULL || m->g->err != 0)
            continue;
        if (m->msg.term < m->g->raft.term)
            h->stats.msgs_stale++;
        else
            send_msg(m->g, &m->msg);
    }
    return 0;
}

void raft_host_stats(const struct raft_host *h, struct raft_host_stats *out)
{
    *out = h->stats;
    out->groups_active = h->active_count;
}

/* ---- groups -------------------------------------------------------------------------------- */

int raft_group_open(struct raft_host *h, const struct raft_group_options *o,
                    struct raft_group **out)
{
    struct raft_options ro;
    int rc;

    if (h->err != 0)
        return h->err;
    if (o->log == NULL || find_group(h, &o->group) != NULL)
        return o->log == NULL ? ERR_INVALID : ERR_STATE;
    bool known = hs_find(h, &o->group) != NULL;
    struct rh_state *hs = hs_get(h, &o->group);
    if (hs == NULL)
        return ERR_TOO_LARGE;
    if (!known) {
        rc = hs_migrate(h, hs);
        if (rc != 0)
            return rc;
    }
    struct raft_group *g = xcalloc(1, sizeof(*g));
    g->hs = hs;
    g->host = h;
    g->id = o->group;
    g->log = o->log;
    g->apply = o->apply;
    g->on_role = o->on_role;
    g->ctx = o->ctx;
    g->waiters_tail = &g->waiters;
    g->active_at = SIZE_MAX;
    g->reported_index = -1;
    g->reported_term = -1;
    g->log_snapshots = o->log_snapshots;
    g->installing = -1;
    g->start_want = -1;
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
    ro.term = hs->term;
    ro.vote = hs->vote;
    ro.commit_index = o->applied_index < idx_last(g) ? o->applied_index : idx_last(g);
    ro.config = o->config;
    ro.passive = o->joining;
    ro.config_prev = o->config;
    ro.election_ticks = o->election_ticks ? o->election_ticks : RAFT_ELECTION_TICKS_DEFAULT;
    ro.heartbeat_ticks = o->heartbeat_ticks ? o->heartbeat_ticks : RAFT_HEARTBEAT_TICKS_DEFAULT;
    ro.pre_vote = true;
    ro.check_quorum = true;
    ro.quiesce = true;
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
    h->election_ticks_min = MIN(h->election_ticks_min, ro.election_ticks);
    h->heartbeat_ticks_min = MIN(h->heartbeat_ticks_min, ro.heartbeat_ticks);
    peers_ref(h, &g->raft.config);
    active_add(g);
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
    if (g->err == 0 && g->raft.quiesced && g->raft.role == RAFT_LEADER && h->err == 0) {
        /* Its followers stopped their timers for this leader: a last heartbeat wakes them,
         * so they elect another one an election timeout from now. */
        struct raft_ready rd;
        for (uint32_t i = 0; i < g->raft.config.count && g->raft.quiesced; i++)
            raft_wake(&g->raft, g->raft.config.ids[i], 0);
        raft_ready(&g->raft, &rd);
        if (!rd.hard_state_changed)
            send_msgs(g, rd.msgs, rd.msg_count);
        raft_advance(&g->raft);
    }
    active_remove(g);
    peers_unref(h, &g->raft.config);
    memmove(h->groups + at, h->groups + at + 1, (h->group_count - at - 1) * sizeof(*h->groups));
    h->group_count--;
    for (size_t i = 0; i < h->held_count; i++)
        if (h->held[i].g == g)
            h->held[i].g = NULL;
    /* Closed before its waiters hear so: a callback that reaches the group again must not
     * pump it back into the active list it just left, where it stayed after it was freed
     * (cluster_sim --brokers --seed 23623: a use after free at a power loss). */
    g->closed = true;
    fail_waiters_from(g, INT64_MIN, ERR_CLOSED);
    if (g->flush_outstanding == 0)
        group_free(g);
}

int raft_group_propose(struct raft_group *g, uint8_t *batch, size_t len, struct raft_waiter *w,
                       raft_group_done_fn fn, void *ctx, int64_t *offset, int64_t *term)
{
    struct batch_header hdr;
    int rc;

    if (g->err != 0)
        return g->err;
    if (g->closed)
        return ERR_CLOSED; /* a waiter's callback during raft_group_close */
    rc = batch_header_parse(batch, len, &hdr);
    if (rc != 0 || batch_kind(&hdr) != RAFT_BATCH_DATA || batch_total_bytes(&hdr) != len ||
        g->raft.term > INT32_MAX)
        return rc != 0 ? rc : ERR_INVALID;
    if (g->raft.role != RAFT_LEADER)
        return ERR_STATE;
    return propose_bytes(g, batch, len, (uint32_t)hdr.last_offset_delta + 1, w, fn, ctx, offset,
                         term);
}

static int propose_bytes(struct raft_group *g, uint8_t *batch, size_t len, uint32_t count,
                         struct raft_waiter *w, raft_group_done_fn fn, void *ctx, int64_t *offset,
                         int64_t *term)
{
    struct raft_batch b;
    int rc;

    if (g->raft.term > INT32_MAX)
        return ERR_INVALID;
    g->prop_bytes = batch;
    g->prop_len = len;
    rc = raft_propose(&g->raft, count, (uint32_t)len, &b);
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
    if (g->installing >= 0)
        return ERR_STATE;
    idx_follow_start(g);
    if (offset <= idx_start(g))
        return 0;
    b = idx_find(g, offset - 1);
    if (offset > g->raft.commit + 1 || b == NULL || b->last != offset - 1)
        return ERR_INVALID;
    before = b->term;
    /* The term before the new start is on disk before the start moves. */
    g->hs->start = offset;
    g->hs->prev_term = before;
    hs_dirty(g->host, g->hs);
    rc = journal_commit(g->host);
    if (rc == 0)
        rc = log_delete_records(g->log, offset);
    if (rc != 0)
        return rc;
    idx_follow_start(g);
    return 0;
}

int raft_group_transfer(struct raft_group *g, int32_t target)
{
    struct raft_progress p[RAFT_MEMBERS_MAX];
    int rc;

    if (g->err != 0)
        return g->err;
    if (g->raft.role != RAFT_LEADER)
        return ERR_STATE;
    if (target == RAFT_NONE) {
        /* The voter most caught up becomes leader soonest (the core waits for it to match). */
        int64_t best = INT64_MIN;
        int n = raft_progress(&g->raft, p, RAFT_MEMBERS_MAX);
        for (int i = 0; i < n; i++) {
            if (!p[i].voter || p[i].id == g->host->self)
                continue;
            if (p[i].match_index > best || (p[i].match_index == best && p[i].id < target)) {
                best = p[i].match_index;
                target = p[i].id;
            }
        }
        if (target == RAFT_NONE)
            return ERR_INVALID; /* no other voter */
    }
    rc = raft_transfer(&g->raft, target);
    if (rc == 0)
        group_pump(g);
    return rc;
}

int raft_group_progress(struct raft_group *g, struct raft_progress *out, uint32_t max)
{
    return raft_progress(&g->raft, out, max);
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
    /* A quiesced group is not pumped, so it may not have looked at its log yet: a storage error
     * shows at once all the same (the next pump stops the group). */
    return g->err != 0 ? g->err : log_error(g->log);
}

bool raft_group_leader_ready(struct raft_group *g)
{
    int64_t term;
    /* The commit index may sit just below the log start (retention moved it there): the term
     * before the start is kept for that. */
    return g->err == 0 && g->raft.role == RAFT_LEADER && g->raft.commit >= idx_start(g) - 1 &&
           ops_term_at(g, g->raft.commit, &term) == 0 && term == g->raft.term;
}

int raft_group_term_at(struct raft_group *g, int64_t offset, int64_t *term)
{
    if (offset < idx_start(g) || offset > idx_last(g))
        return ERR_RANGE;
    return ops_term_at(g, offset, term);
}

void raft_group_fail_waiters(struct raft_group *g, int err)
{
    fail_waiters_from(g, INT64_MIN, err);
}
