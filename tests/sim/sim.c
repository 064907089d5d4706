/*
 * The deterministic Raft simulator (see sim.h and docs/raft.md).
 *
 * Owns, for one run: the nodes, each node's replica of every group (its log, its durable hard
 * state and its struct raft), the network (a heap of in-flight messages), the clients'
 * proposals and the global record of what was committed and acknowledged.
 *
 * Model: time advances in units; every node ticks its groups every SIM_TICK_UNITS units (each
 * node at its own phase). A log write is visible at once but survives a crash only once its
 * fsync, which completes a random time later, covers it; hard state is written synchronously
 * in the ready's persist step. The network delays (and so reorders), drops, duplicates and
 * cuts links one way or both. Every event is a step, and after every step the invariants are
 * checked for what the step changed:
 *   election safety    one leader per term per group (checked when a node becomes leader);
 *   log matching       an entry (index, term) always has the same data and the same previous
 *                      term, in every log that ever holds it (checked at every append);
 *   leader completeness / no acknowledged entry lost
 *                      a new leader of term T holds every entry committed (or acknowledged to
 *                      a client) in a term below T;
 *   state machine safety
 *                      no two nodes commit different entries at one index;
 *   monotonicity       a node's term never decreases (across restarts too, from its hard
 *                      state) and its commit index never decreases while it runs;
 *   read index         a confirmed read index covers every write acknowledged before it;
 *   lease              while a leader holds a lease, no later term has a leader (checked
 *                      every time unit);
 *   lease promise      a follower that answered a heartbeat votes for no one else (but a
 *                      transfer's candidate) until the lease that answer supports may end;
 *   batch atomicity    a truncation never splits a batch.
 * Seeds fall into profiles (setup()): normal, chaos (five voters, slow disks, frequent crashes,
 * partitions and power failures) and Figure 8 (leaders write entries only they hold, then
 * crash, while a bare majority stays up); a run may force one of them or the lease profile
 * (leaders split off and healed mid-election, late and repeated vote requests).
 * After the fault phase the network heals and every node restarts; then each group must commit
 * a new proposal, and a leadership transfer to a caught-up follower must complete, within
 * stated bounds (SIM_LIVENESS_TICKS, SIM_TRANSFER_TICKS).
 *
 * The simulator never uses wall time or global state: one seed, one run.
 */
#include "sim/sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/rand.h"
#include "raft/raft.h"
#include "sim/sim_trace.h"

#define SIM_TICK_UNITS     10u
#define SIM_QUIET_UNITS    1500u /* quiesce runs: clients pause every other such stretch */
#define SIM_NODES_MAX      5
#define SIM_GROUPS_MAX     3
#define SIM_LIVENESS_TICKS 100u /* after healing: every group commits a new proposal */
#define SIM_TRANSFER_TICKS 30u  /* after asking: the transfer target leads */

struct entry {
    int64_t term;
    uint64_t data;
    struct raft_batch batch; /* the batch this entry belongs to */
};

/* One replica's log as the host would keep it. */
struct slog {
    struct entry *ents; /* ents[0] is index start */
    int64_t len;
    int64_t cap;
    int64_t start;
    int64_t start_prev_term;
    struct raft_config cfg; /* membership as of index start - 1 */
    struct raft_config cfg_prev;
    int64_t durable_last;
    bool sync_busy;
    bool sync_again;
    uint64_t sync_at;
    int64_t sync_covered;
    int64_t sync_trunc; /* lowest truncation while the fsync ran */
};

struct netmsg;

struct replica {
    struct sim *sim;
    int node;
    int group;
    struct slog log;
    struct raft r;
    int64_t hs_term; /* durable hard state */
    int32_t hs_vote;
    int64_t seen_term;
    int64_t seen_commit;
    uint8_t seen_role;
    const struct netmsg *incoming; /* the append being stepped */
    /* The lease this replica promised last: it answered a heartbeat of promise_leader in
     * promise_term, and that leader's lease may run until promise_until. */
    uint64_t promise_until;
    int32_t promise_leader;
    int64_t promise_term;
    uint64_t propose_data; /* data of the first entry being proposed */
};

struct node {
    bool alive;
    uint64_t restart_at;
    struct replica reps[SIM_GROUPS_MAX];
};

struct netmsg {
    uint64_t sent;
    uint64_t at;
    uint64_t seq;
    int group;
    struct raft_msg m;
    struct raft_batch *batches;
    struct entry *ents;
    int64_t ent_count;
    bool snapshot;
    int64_t snap_index;
    int64_t snap_term;
    struct raft_config snap_cfg;
};

struct centry {
    int64_t term;
    uint64_t data;
    int64_t commit_term; /* lowest term in which any node reported it committed */
    int64_t ack_term;    /* term in which its leader acknowledged it to a client, or 0 */
    bool set;
};

struct mkey {
    int64_t index;
    int64_t term;
    int64_t prev_term;
    uint64_t data;
    bool used;
};

struct proposal {
    int64_t first;
    int64_t last;
    int64_t term;
    int node;
    uint64_t at;
    bool acked;
};

struct pread {
    uint64_t id;
    int64_t acked_max;
};

struct gstate {
    struct centry *committed;
    int64_t committed_cap;
    int64_t commit_max;
    int32_t *leader_of_term;
    int64_t leader_cap;
    struct mkey *match;
    uint64_t match_cap;
    uint64_t match_used;
    struct proposal *props;
    uint64_t prop_count;
    uint64_t prop_cap;
    uint64_t prop_first_pending;
    int64_t acked_max;
    int64_t max_leader_term;
    struct pread reads[64];
    uint32_t read_count;
    uint64_t live_acked_at; /* time a proposal made after healing was acknowledged */
};

struct sim {
    struct rng rng;
    const struct sim_options *o;
    struct sim_result *res;
    uint64_t now;
    int nodes;
    int groups;
    bool pre_vote;
    bool check_quorum;
    bool faults;
    bool membership;
    bool clients_paused; /* during the transfer check, so a follower can catch up */
    uint32_t drop_pct;
    uint32_t dup_pct;
    uint32_t delay_max;
    uint32_t straggler_odds;  /* a message is a straggler with probability 1 / straggler_odds */
    uint32_t straggler_times; /* and takes up to straggler_times * delay_max */
    uint32_t vote_echo_pct;   /* a vote request is also delivered late, within vote_echo_max */
    uint32_t vote_echo_max;
    uint32_t sync_max;       /* fsync latency bound, time units */
    uint32_t restart_max;    /* downtime bound after a crash */
    uint32_t crash_odds;     /* a crash with probability 1 / crash_odds per time unit */
    uint32_t partition_odds; /* likewise for a partition change */
    uint32_t power_odds;     /* likewise for a power failure of every node */
    uint32_t isolate_odds;   /* a new leader is cut off with probability 1 / isolate_odds */
    uint32_t propose_odds;   /* a client proposal with probability 1 / propose_odds */
    int voters;              /* voters in the initial config: nodes 0 .. voters - 1 */
    bool figure8;            /* the "crash the leader" nemesis of the thesis's Figure 8 */
    uint32_t figure8_odds;   /* a leader crash with probability 1 / figure8_odds per unit */
    int crash_node;          /* a node the Figure 8 nemesis crashes at crash_at, or -1 */
    uint64_t crash_at;
    int isolate_node; /* the new leader the nemesis will cut off at isolate_at, or -1 */
    uint64_t isolate_at;
    uint32_t split_odds;  /* lease nemesis: split a leader off with probability 1 / split_odds */
    uint64_t split_until; /* and heal at this time (0: no split in force) */
    bool cut[SIM_NODES_MAX][SIM_NODES_MAX];
    /* Quiesce runs: when node a last heard anything from node b, and whether b is silent. */
    uint64_t heard[SIM_NODES_MAX][SIM_NODES_MAX];
    bool silent[SIM_NODES_MAX][SIM_NODES_MAX];
    struct node node[SIM_NODES_MAX];
    struct gstate g[SIM_GROUPS_MAX];
    struct netmsg **heap;
    uint64_t heap_len;
    uint64_t heap_cap;
    uint64_t msg_seq;
    uint64_t data_seq;
    uint64_t read_seq;
    struct sim_trace trace;
    bool failed;
};

/* ---- trace and failure --------------------------------------------------------------------- */

PRINTF_LIKE(2, 3) static void trace(struct sim *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sim_trace_line(&s->trace, s->now, fmt, ap);
    va_end(ap);
}

PRINTF_LIKE(2, 3) static void fail(struct sim *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)sim_trace_fail(&s->trace, s->now, &s->failed, s->res->why, sizeof(s->res->why), fmt, ap);
    va_end(ap);
}

/* A liveness bound missed: reported apart from safety, which the bug tests look for. */
PRINTF_LIKE(2, 3) static void fail_liveness(struct sim *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (sim_trace_fail(&s->trace, s->now, &s->failed, s->res->why, sizeof(s->res->why), fmt, ap))
        s->res->liveness = true;
    va_end(ap);
}

/* ---- the replica's log (the raft_log_ops the core sees) ------------------------------------ */

static int64_t slog_last(const struct slog *l)
{
    return l->start + l->len - 1;
}

static struct entry *slog_at(struct slog *l, int64_t index)
{
    ASSERT(index >= l->start && index <= slog_last(l));
    return &l->ents[index - l->start];
}

static int64_t slog_term(struct slog *l, int64_t index)
{
    if (index == l->start - 1)
        return l->start_prev_term;
    if (index < l->start - 1 || index > slog_last(l))
        return -1;
    return slog_at(l, index)->term;
}

static int64_t ops_start(void *ctx)
{
    return ((struct replica *)ctx)->log.start;
}

static int64_t ops_last(void *ctx)
{
    return slog_last(&((struct replica *)ctx)->log);
}

static int ops_term_at(void *ctx, int64_t index, int64_t *term)
{
    int64_t t = slog_term(&((struct replica *)ctx)->log, index);

    if (t < 0)
        return ERR_RANGE;
    *term = t;
    return 0;
}

static int ops_batch_at(void *ctx, int64_t index, struct raft_batch *out)
{
    struct slog *l = &((struct replica *)ctx)->log;

    if (index < l->start || index > slog_last(l))
        return ERR_RANGE;
    *out = slog_at(l, index)->batch;
    return 0;
}

static struct gstate *gs(struct replica *rep)
{
    return &rep->sim->g[rep->group];
}

static void match_grow(struct gstate *g);

/* Log matching: (index, term) names one entry with one predecessor term, everywhere. */
static void match_check(struct replica *rep, int64_t index, int64_t term, int64_t prev_term,
                        uint64_t data)
{
    struct gstate *g = gs(rep);
    uint64_t h;

    if (g->match_used * 2 >= g->match_cap)
        match_grow(g);
    h = ((uint64_t)index * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)term * 0xC2B2AE3D27D4EB4Full);
    for (uint64_t i = h & (g->match_cap - 1);; i = (i + 1) & (g->match_cap - 1)) {
        struct mkey *k = &g->match[i];

        if (!k->used) {
            *k = (struct mkey){index, term, prev_term, data, true};
            g->match_used++;
            return;
        }
        if (k->index != index || k->term != term)
            continue;
        if (k->data != data || (prev_term >= 0 && k->prev_term >= 0 && k->prev_term != prev_term))
            fail(rep->sim,
                 "log matching: g%d node %d entry (%" PRId64 ", term %" PRId64
                 ") differs from another log",
                 rep->group, rep->node, index, term);
        return;
    }
}

static void match_grow(struct gstate *g)
{
    struct mkey *old = g->match;
    uint64_t old_cap = g->match_cap;

    g->match_cap = old_cap ? old_cap * 2 : 4096;
    g->match = xcalloc(g->match_cap, sizeof(*g->match));
    g->match_used = 0;
    for (uint64_t i = 0; i < old_cap; i++) {
        struct mkey *k = &old[i];
        uint64_t h;

        if (!k->used)
            continue;
        h = ((uint64_t)k->index * 0x9E3779B97F4A7C15ull) ^
            ((uint64_t)k->term * 0xC2B2AE3D27D4EB4Full);
        for (uint64_t j = h & (g->match_cap - 1);; j = (j + 1) & (g->match_cap - 1)) {
            if (!g->match[j].used) {
                g->match[j] = *k;
                g->match_used++;
                break;
            }
        }
    }
    free(old);
}

static void slog_push(struct slog *l, const struct entry *e)
{
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->ents = xrealloc(l->ents, (size_t)l->cap * sizeof(*l->ents));
    }
    l->ents[l->len++] = *e;
}

static uint64_t incoming_data(struct replica *rep, int64_t index)
{
    const struct netmsg *nm = rep->incoming;
    int64_t at;

    ASSERT(nm != NULL);
    at = index - (nm->m.index + 1);
    ASSERT(at >= 0 && at < nm->ent_count);
    return nm->ents[at].data;
}

static void ops_append(void *ctx, const struct raft_batch *b)
{
    struct replica *rep = ctx;
    struct slog *l = &rep->log;

    ASSERT(b->first_index == slog_last(l) + 1);
    for (int64_t i = b->first_index; i <= b->last_index; i++) {
        struct entry e = {.term = b->term, .batch = *b};

        if (rep->incoming != NULL && rep->incoming->m.type == RAFT_MSG_APPEND)
            e.data = incoming_data(rep, i);
        else if (b->kind == RAFT_BATCH_DATA)
            e.data = rep->propose_data + (uint64_t)(i - b->first_index);
        else if (b->kind == RAFT_BATCH_CONFIG)
            e.data = ((uint64_t)b->op << 32) | (uint32_t)b->node;
        else
            e.data = 0;
        match_check(rep, i, e.term, slog_term(l, i - 1), e.data);
        slog_push(l, &e);
    }
}

static void ops_truncate(void *ctx, int64_t from)
{
    struct replica *rep = ctx;
    struct slog *l = &rep->log;

    ASSERT(from >= l->start && from <= slog_last(l));
    if (slog_at(l, from)->batch.first_index != from)
        fail(rep->sim, "g%d node %d truncation at %" PRId64 " splits a batch", rep->group,
             rep->node, from);
    l->len = from - l->start;
    /* The truncation is made durable at once; an fsync in flight no longer covers the cut. */
    l->durable_last = MIN(l->durable_last, from - 1);
    if (l->sync_busy)
        l->sync_trunc = MIN(l->sync_trunc, from);
}

static const struct raft_log_ops sim_log_ops = {
    .start_index = ops_start,
    .last_index = ops_last,
    .term_at = ops_term_at,
    .batch_at = ops_batch_at,
    .append = ops_append,
    .truncate = ops_truncate,
};

/* Membership as of the end of the log (and the one before the last change). */
static void slog_config(struct slog *l, struct raft_config *cfg, struct raft_config *prev)
{
    *cfg = l->cfg;
    *prev = l->cfg_prev;
    for (int64_t i = 0; i < l->len; i++) {
        struct raft_config next;
        const struct entry *e = &l->ents[i];

        if (e->batch.kind != RAFT_BATCH_CONFIG)
            continue;
        if (raft_config_apply(cfg, e->batch.op, e->batch.node, &next) != 0)
            continue;
        next.index = l->start + i;
        *prev = *cfg;
        *cfg = next;
    }
}

/* Drops the prefix below new_start, remembering the membership as of new_start - 1. */
static void slog_compact(struct slog *l, int64_t new_start)
{
    struct raft_config cfg = l->cfg, prev = l->cfg_prev;
    int64_t drop = new_start - l->start;

    ASSERT(drop > 0 && drop <= l->len);
    for (int64_t i = 0; i < drop; i++) {
        struct raft_config next;
        const struct entry *e = &l->ents[i];

        if (e->batch.kind != RAFT_BATCH_CONFIG ||
            raft_config_apply(&cfg, e->batch.op, e->batch.node, &next) != 0)
            continue;
        next.index = l->start + i;
        prev = cfg;
        cfg = next;
    }
    l->start_prev_term = l->ents[drop - 1].term;
    memmove(l->ents, l->ents + drop, (size_t)(l->len - drop) * sizeof(*l->ents));
    l->len -= drop;
    l->start = new_start;
    l->cfg = cfg;
    l->cfg_prev = prev;
}

/* ---- network ------------------------------------------------------------------------------- */

static bool heap_less(const struct netmsg *a, const struct netmsg *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(struct sim *s, struct netmsg *m)
{
    uint64_t i;

    if (s->heap_len == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
        s->heap = xrealloc(s->heap, s->heap_cap * sizeof(*s->heap));
    }
    i = s->heap_len++;
    while (i > 0 && heap_less(m, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = m;
}

static struct netmsg *heap_pop(struct sim *s)
{
    struct netmsg *top = s->heap[0], *last = s->heap[--s->heap_len];
    uint64_t i = 0;

    for (;;) {
        uint64_t c = 2 * i + 1;

        if (c >= s->heap_len)
            break;
        if (c + 1 < s->heap_len && heap_less(s->heap[c + 1], s->heap[c]))
            c++;
        if (!heap_less(s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->heap_len > 0)
        s->heap[i] = last;
    return top;
}

static void netmsg_free(struct netmsg *m)
{
    free(m->batches);
    free(m->ents);
    free(m);
}

static struct netmsg *netmsg_copy(const struct netmsg *m)
{
    struct netmsg *c = xmalloc(sizeof(*c));

    *c = *m;
    c->batches = NULL;
    c->ents = NULL;
    if (m->m.batch_count > 0) {
        c->batches = xmalloc(m->m.batch_count * sizeof(*c->batches));
        memcpy(c->batches, m->batches, m->m.batch_count * sizeof(*c->batches));
    }
    if (m->ent_count > 0) {
        c->ents = xmalloc((size_t)m->ent_count * sizeof(*c->ents));
        memcpy(c->ents, m->ents, (size_t)m->ent_count * sizeof(*c->ents));
    }
    c->m.batches = c->batches;
    return c;
}

static uint64_t net_delay(struct sim *s)
{
    if (s->faults && rng_chance(&s->rng, 1, s->straggler_odds))
        return rng_range(&s->rng, 1, s->straggler_times * (uint64_t)s->delay_max);
    return rng_range(&s->rng, 1, s->delay_max);
}

static void net_send(struct sim *s, struct netmsg *m, int from, int to)
{
    if (s->cut[from][to] || rng_chance(&s->rng, s->drop_pct, 100)) {
        netmsg_free(m);
        return;
    }
    m->seq = s->msg_seq++;
    m->sent = s->now;
    m->at = s->now + net_delay(s);
    if (rng_chance(&s->rng, s->dup_pct, 100)) {
        struct netmsg *d = netmsg_copy(m);

        d->seq = s->msg_seq++;
        d->at = s->now + net_delay(s);
        heap_push(s, d);
    }
    if (m->m.type == RAFT_MSG_VOTE && s->vote_echo_pct > 0 &&
        rng_chance(&s->rng, s->vote_echo_pct, 100)) {
        struct netmsg *d = netmsg_copy(m);

        d->seq = s->msg_seq++;
        d->at = s->now + rng_range(&s->rng, 1, s->vote_echo_max);
        heap_push(s, d);
    }
    heap_push(s, m);
}

/* The host attaches the batches and bytes (here: data) of [index + 1, last_index]. */
static void send_raft_msg(struct replica *rep, const struct raft_msg *rm)
{
    struct sim *s = rep->sim;
    struct netmsg *m = xcalloc(1, sizeof(*m));

    m->group = rep->group;
    m->m = *rm;
    if (rm->type == RAFT_MSG_APPEND && rm->last_index > rm->index) {
        struct slog *l = &rep->log;
        int64_t n = rm->last_index - rm->index, i = rm->index + 1;
        uint16_t count = 0;

        ASSERT(rm->index + 1 >= l->start && rm->last_index <= slog_last(l));
        m->ents = xmalloc((size_t)n * sizeof(*m->ents));
        m->batches = xmalloc(RAFT_MSG_BATCHES_MAX * sizeof(*m->batches));
        m->ent_count = n;
        for (int64_t k = 0; k < n; k++)
            m->ents[k] = *slog_at(l, rm->index + 1 + k);
        while (i <= rm->last_index) {
            struct raft_batch b;
            int rc = ops_batch_at(rep, i, &b);

            ASSERT(rc == 0 && b.first_index == i);
            ASSERT(count < RAFT_MSG_BATCHES_MAX);
            m->batches[count++] = b;
            i = b.last_index + 1;
        }
        m->m.batch_count = count;
    } else {
        m->m.batch_count = 0;
    }
    m->m.batches = m->batches;
    trace(s, "g%d %d->%d %s t%" PRId64 " i%" PRId64 " lt%" PRId64 " last%" PRId64 " c%" PRId64 "%s",
          rep->group, rm->from, rm->to, raft_msg_name(rm->type), rm->term, rm->index, rm->log_term,
          rm->last_index, rm->commit, rm->reject ? " rej" : "");
    net_send(s, m, rep->node, rm->to);
}

static void send_snapshot(struct replica *rep, int32_t to)
{
    struct netmsg *m = xcalloc(1, sizeof(*m));

    m->group = rep->group;
    m->snapshot = true;
    m->m.from = rep->node;
    m->m.to = to;
    m->snap_index = rep->log.start - 1;
    m->snap_term = rep->log.start_prev_term;
    m->snap_cfg = rep->log.cfg;
    rep->sim->res->snapshots++;
    trace(rep->sim, "g%d %d->%d snapshot at %" PRId64, rep->group, rep->node, to, m->snap_index);
    net_send(rep->sim, m, rep->node, to);
}

/* The nemesis that builds the thesis's Figure 8: cut a new leader off before its no-op
 * spreads, so that logs with conflicting suffixes of different terms pile up. */
static void isolate(struct sim *s, int n)
{
    for (int k = 0; k < s->nodes; k++) {
        s->cut[n][k] = k != n;
        s->cut[k][n] = k != n;
    }
    trace(s, "isolate node %d", n);
}

/* ---- ready processing and invariants ------------------------------------------------------- */

static void sync_start(struct slog *l, struct sim *s)
{
    if (l->sync_busy) {
        l->sync_again = true;
        return;
    }
    if (slog_last(l) <= l->durable_last)
        return;
    l->sync_busy = true;
    l->sync_again = false;
    l->sync_at = s->now + rng_range(&s->rng, 1, s->sync_max);
    l->sync_covered = slog_last(l);
    l->sync_trunc = INT64_MAX;
}

static void check_commit(struct replica *rep, int64_t commit)
{
    struct gstate *g = gs(rep);
    struct slog *l = &rep->log;

    if (commit < rep->seen_commit)
        fail(rep->sim, "g%d node %d commit went back %" PRId64 " -> %" PRId64, rep->group,
             rep->node, rep->seen_commit, commit);
    if (commit > slog_last(l))
        fail(rep->sim, "g%d node %d commit %" PRId64 " beyond its log", rep->group, rep->node,
             commit);
    for (int64_t i = MAX(rep->seen_commit + 1, l->start); i <= commit && i <= slog_last(l); i++) {
        const struct entry *e = slog_at(l, i);
        struct centry *c;

        if (i >= g->committed_cap) {
            int64_t cap = MAX(g->committed_cap * 2, i + 1024);

            g->committed = xrealloc(g->committed, (size_t)cap * sizeof(*g->committed));
            memset(g->committed + g->committed_cap, 0,
                   (size_t)(cap - g->committed_cap) * sizeof(*g->committed));
            g->committed_cap = cap;
        }
        c = &g->committed[i];
        if (!c->set) {
            *c = (struct centry){e->term, e->data, rep->r.term, 0, true};
            g->commit_max = MAX(g->commit_max, i);
        } else if (c->term != e->term || c->data != e->data) {
            fail(rep->sim,
                 "state machine safety: g%d node %d commits (%" PRId64 ", term %" PRId64
                 ") but (%" PRId64 ", term %" PRId64 ") was committed",
                 rep->group, rep->node, i, e->term, i, c->term);
        } else {
            c->commit_term = MIN(c->commit_term, rep->r.term);
        }
    }
    rep->seen_commit = MAX(rep->seen_commit, commit);
}

static void ack_proposals(struct replica *rep, int64_t commit)
{
    struct gstate *g = gs(rep);

    for (uint64_t k = g->prop_first_pending; k < g->prop_count; k++) {
        struct proposal *p = &g->props[k];

        if (p->acked || p->node != rep->node || p->last > commit)
            continue;
        if (slog_term(&rep->log, p->last) != p->term)
            continue; /* replaced: never acknowledged */
        p->acked = true;
        rep->sim->res->acked++;
        g->acked_max = MAX(g->acked_max, p->last);
        if (p->at >= rep->sim->o->time_max && g->live_acked_at == 0)
            g->live_acked_at = rep->sim->now;
        /* The term it is acknowledged in, not the one it was proposed in: a leader that
         * proposed in term 2 and, leading again in term 4, commits it then, owes it only to
         * leaders of terms above 4. A term-3 election that completes later (a vote request
         * delivered late) may elect a leader without it, and that leader can commit nothing
         * over it, since a term-4 majority holds it and refuses term 3. */
        for (int64_t i = p->first; i <= p->last && i < g->committed_cap; i++)
            g->committed[i].ack_term = rep->r.term;
    }
    while (g->prop_first_pending < g->prop_count &&
           (g->props[g->prop_first_pending].acked ||
            g->props[g->prop_first_pending].last <= g->commit_max - 100000))
        g->prop_first_pending++;
}

static void check_new_leader(struct replica *rep)
{
    struct gstate *g = gs(rep);
    struct slog *l = &rep->log;
    int64_t term = rep->r.term;

    rep->sim->res->elections++;
    if (term >= g->leader_cap) {
        int64_t cap = MAX(g->leader_cap * 2, term + 64);

        g->leader_of_term = xrealloc(g->leader_of_term, (size_t)cap * sizeof(int32_t));
        for (int64_t i = g->leader_cap; i < cap; i++)
            g->leader_of_term[i] = -1;
        g->leader_cap = cap;
    }
    if (g->leader_of_term[term] >= 0 && g->leader_of_term[term] != rep->node)
        fail(rep->sim, "election safety: g%d term %" PRId64 " has leaders %d and %d", rep->group,
             term, g->leader_of_term[term], rep->node);
    g->leader_of_term[term] = rep->node;
    g->max_leader_term = MAX(g->max_leader_term, term);
    for (int64_t i = MAX(l->start, 0); i <= g->commit_max; i++) {
        const struct centry *c = &g->committed[i];

        if (!c->set || (c->commit_term >= term && (c->ack_term == 0 || c->ack_term >= term)))
            continue;
        if (i > slog_last(l) || slog_at(l, i)->term != c->term || slog_at(l, i)->data != c->data)
            fail(rep->sim,
                 "%s: g%d leader %d of term %" PRId64 " lacks entry %" PRId64 " (term %" PRId64 ")",
                 c->ack_term && c->ack_term < term ? "acknowledged entry lost"
                                                   : "leader completeness",
                 rep->group, rep->node, term, i, c->term);
    }
}

static void check_reads(struct replica *rep, const struct raft_ready *rd)
{
    struct gstate *g = gs(rep);

    for (uint32_t k = 0; k < rd->read_count; k++) {
        for (uint32_t j = 0; j < g->read_count; j++) {
            if (g->reads[j].id != rd->reads[k].id)
                continue;
            if (rd->reads[k].index < g->reads[j].acked_max)
                fail(rep->sim,
                     "read index: g%d read %" PRIu64 " at %" PRId64 " misses write at %" PRId64,
                     rep->group, rd->reads[k].id, rd->reads[k].index, g->reads[j].acked_max);
            g->reads[j] = g->reads[--g->read_count];
            rep->sim->res->reads++;
            break;
        }
    }
}

/* persist -> send -> apply -> advance, until the core has nothing more. */
static void drain(struct replica *rep)
{
    struct sim *s = rep->sim;
    struct raft_ready rd;

    while (!s->failed && raft_has_ready(&rep->r)) {
        raft_ready(&rep->r, &rd);
        if (rd.term < rep->seen_term)
            fail(s, "g%d node %d term went back", rep->group, rep->node);
        rep->seen_term = rd.term;
        if (rd.hard_state_changed) {
            rep->hs_term = rd.term;
            rep->hs_vote = rd.vote;
        }
        if (rd.write_first <= rd.last_index || rd.truncated_from >= 0)
            sync_start(&rep->log, s);
        for (uint32_t i = 0; i < rd.msg_count; i++)
            send_raft_msg(rep, &rd.msgs[i]);
        for (uint32_t i = 0; i < rd.snapshot_peer_count; i++)
            send_snapshot(rep, rd.snapshot_peers[i]);
        if (rd.commit_changed) {
            check_commit(rep, rd.commit_index);
            if (rd.role == RAFT_LEADER) {
                ack_proposals(rep, rd.commit_index);
                /* Cutting a leader off right after it commits tests what survives it. */
                if (s->faults && s->isolate_node < 0 &&
                    rng_chance(&s->rng, 1, 4 * s->isolate_odds)) {
                    s->isolate_node = rep->node;
                    s->isolate_at = s->now + rng_below(&s->rng, SIM_TICK_UNITS);
                }
            }
        }
        check_reads(rep, &rd);
        if (rd.role_changed) {
            trace(s, "g%d node %d %s term %" PRId64 " leader %d", rep->group, rep->node,
                  raft_role_name(rd.role), rd.term, rd.leader);
            if (rd.role == RAFT_LEADER && rep->seen_role != RAFT_LEADER) {
                check_new_leader(rep);
                if (s->faults && rng_chance(&s->rng, 1, s->isolate_odds)) {
                    s->isolate_node = rep->node;
                    s->isolate_at = s->now + rng_below(&s->rng, 3 * SIM_TICK_UNITS);
                }
            }
            rep->seen_role = rd.role;
        }
        raft_advance(&rep->r);
    }
}

/* ---- nodes --------------------------------------------------------------------------------- */

static void replica_start(struct replica *rep)
{
    struct raft_options o;
    int rc;

    memset(&o, 0, sizeof(o));
    o.self = rep->node;
    o.term = rep->hs_term;
    o.vote = rep->hs_vote;
    o.commit_index = -1;
    slog_config(&rep->log, &o.config, &o.config_prev);
    o.election_ticks = RAFT_ELECTION_TICKS_DEFAULT;
    o.heartbeat_ticks = RAFT_HEARTBEAT_TICKS_DEFAULT;
    o.pre_vote = rep->sim->pre_vote;
    o.check_quorum = rep->sim->check_quorum;
    o.quiesce = rep->sim->o->quiesce;
    o.seed = rng_next(&rep->sim->rng);
    o.log = &sim_log_ops;
    o.log_ctx = rep;
    rc = raft_init(&rep->r, &o);
    ASSERT(rc == 0);
    rep->seen_commit = rep->r.commit;
    rep->seen_role = RAFT_FOLLOWER;
    if (rep->hs_term < rep->seen_term)
        fail(rep->sim, "g%d node %d restarted with an older term", rep->group, rep->node);
}

static void node_crash(struct sim *s, int n)
{
    struct node *nd = &s->node[n];

    nd->alive = false;
    nd->restart_at = s->now + rng_range(&s->rng, SIM_TICK_UNITS, s->restart_max);
    s->res->crashes++;
    trace(s, "node %d crashes", n);
    for (int g = 0; g < s->groups; g++) {
        struct slog *l = &nd->reps[g].log;

        /* Everything past the last completed fsync is gone. */
        if (l->durable_last < slog_last(l))
            l->len = MAX(l->durable_last - l->start + 1, 0);
        l->sync_busy = false;
        l->sync_again = false;
    }
}

static void node_restart(struct sim *s, int n)
{
    struct node *nd = &s->node[n];

    nd->alive = true;
    trace(s, "node %d restarts", n);
    for (int k = 0; k < s->nodes; k++) {
        s->heard[n][k] = s->now;
        s->silent[n][k] = false;
    }
    for (int g = 0; g < s->groups; g++)
        replica_start(&nd->reps[g]);
}

/*
 * Lease promise: a follower that answers a heartbeat lets its leader count it towards a lease
 * until election_ticks - RAFT_LEASE_MARGIN_TICKS ticks after the heartbeat was sent, so until
 * then it must grant no vote to anyone else but a transfer's candidate, whatever terms it
 * learns meanwhile. This catches the broken promise itself; the lease check (check_leases)
 * needs the candidate to win and the old leader to stay unaware as well.
 */
static void check_promise(struct replica *rep, const struct netmsg *m, int64_t term_before,
                          int32_t vote_before)
{
    struct sim *s = rep->sim;
    const struct raft_msg *rm = &m->m;

    if (!rep->r.check_quorum)
        return;
    if (rm->type == RAFT_MSG_HEARTBEAT && rep->r.role == RAFT_FOLLOWER && rep->r.term == rm->term &&
        rep->r.leader == rm->from) {
        uint64_t until =
            m->sent + (uint64_t)(rep->r.election_ticks - RAFT_LEASE_MARGIN_TICKS) * SIM_TICK_UNITS;

        if (rm->term > rep->promise_term || until > rep->promise_until) {
            rep->promise_until = MAX(rep->promise_until, until);
            rep->promise_leader = rm->from;
            rep->promise_term = rm->term;
        }
        return;
    }
    if (rm->type != RAFT_MSG_VOTE || rm->flag || s->now >= rep->promise_until ||
        rm->from == rep->promise_leader)
        return;
    if (rep->r.vote == rm->from && rep->r.term == rm->term &&
        !(vote_before == rm->from && term_before == rm->term))
        fail(s,
             "lease promise: g%d node %d votes for %d in term %" PRId64
             " although it answered leader %d of term %" PRId64 " whose lease may run to %" PRIu64,
             rep->group, rep->node, rm->from, rm->term, rep->promise_leader, rep->promise_term,
             rep->promise_until);
}

static void deliver(struct sim *s, struct netmsg *m)
{
    struct node *nd = &s->node[m->m.to];
    struct replica *rep;
    bool promised;
    int64_t term;
    int32_t vote;
    int rc;

    if (!nd->alive || s->cut[m->m.from][m->m.to])
        return;
    /* The host's liveness: any frame from a node means it is there; group -1 is only that. */
    s->heard[m->m.to][m->m.from] = s->now;
    s->silent[m->m.to][m->m.from] = false;
    if (m->group < 0)
        return;
    rep = &nd->reps[m->group];
    if (m->snapshot) {
        struct slog *l = &rep->log;
        struct raft_config cfg, prev;

        if (m->snap_index <= rep->r.commit || m->snap_index < l->start ||
            rep->r.role == RAFT_LEADER)
            return; /* stale: the leader will probe again */
        if (slog_term(l, m->snap_index) == m->snap_term) {
            slog_compact(l, m->snap_index + 1);
        } else {
            l->len = 0;
            l->start = m->snap_index + 1;
            l->start_prev_term = m->snap_term;
            l->cfg = m->snap_cfg;
            l->cfg_prev = m->snap_cfg;
            l->durable_last = m->snap_index;
            if (l->sync_busy)
                l->sync_trunc = MIN(l->sync_trunc, l->start);
        }
        l->durable_last = MAX(l->durable_last, m->snap_index);
        slog_config(l, &cfg, &prev);
        trace(s, "g%d node %d installs snapshot at %" PRId64, m->group, m->m.to, m->snap_index);
        rc = raft_snapshot_installed(&rep->r, m->snap_index, m->snap_term, &cfg);
        ASSERT(rc == 0);
        if (rep->r.commit > rep->seen_commit)
            rep->seen_commit = rep->r.commit; /* the snapshot's prefix was committed */
        drain(rep);
        return;
    }
    trace(s, "g%d %d<-%d %s t%" PRId64 " i%" PRId64, m->group, m->m.to, m->m.from,
          raft_msg_name(m->m.type), m->m.term, m->m.index);
    promised = s->now < rep->promise_until;
    term = rep->r.term;
    vote = rep->r.vote;
    rep->incoming = m;
    rc = raft_step(&rep->r, &m->m);
    rep->incoming = NULL;
    check_promise(rep, m, term, vote);
    if (promised && rep->r.term > term && rep->r.leader == RAFT_NONE)
        s->res->lease_bumps++;
    if (rc != 0)
        fail(s, "g%d node %d rejected a well-formed message: %s", m->group, m->m.to, err_str(rc));
    drain(rep);
}

static void sync_complete(struct sim *s, struct replica *rep)
{
    struct slog *l = &rep->log;
    int64_t upto = MIN(l->sync_covered, l->sync_trunc - 1);

    l->sync_busy = false;
    if (upto > l->durable_last)
        l->durable_last = MIN(upto, slog_last(l));
    if (l->durable_last >= l->start - 1) {
        raft_persisted(&rep->r, l->durable_last, slog_term(l, l->durable_last));
        drain(rep);
    }
    if (l->sync_again || slog_last(l) > l->durable_last)
        sync_start(l, s);
}

/* ---- clients and operators ----------------------------------------------------------------- */

static struct replica *find_leader(struct sim *s, int g)
{
    struct replica *best = NULL;

    for (int n = 0; n < s->nodes; n++) {
        struct replica *rep = &s->node[n].reps[g];

        if (s->node[n].alive && rep->r.role == RAFT_LEADER &&
            (best == NULL || rep->r.term > best->r.term))
            best = rep;
    }
    return best;
}

static void isolate(struct sim *s, int n);

static void propose(struct sim *s, int g)
{
    struct replica *rep = find_leader(s, g);
    struct gstate *gst = &s->g[g];
    struct raft_batch b;
    uint32_t count = (uint32_t)rng_range(&s->rng, 1, 4);

    if (rep == NULL)
        return;
    rep->propose_data = ((uint64_t)(g + 1) << 48) | (s->data_seq + 1);
    if (raft_propose(&rep->r, count, count * 100, &b) != 0)
        return;
    s->data_seq += count;
    if (gst->prop_count == gst->prop_cap) {
        gst->prop_cap = gst->prop_cap ? gst->prop_cap * 2 : 256;
        gst->props = xrealloc(gst->props, gst->prop_cap * sizeof(*gst->props));
    }
    gst->props[gst->prop_count++] =
        (struct proposal){b.first_index, b.last_index, b.term, rep->node, s->now, false};
    trace(s, "g%d node %d proposes [%" PRId64 ", %" PRId64 "] t%" PRId64, g, rep->node,
          b.first_index, b.last_index, b.term);
    /* Figure 8 needs entries that only their leader holds: cut it off before it sends. */
    if (s->figure8 && s->faults && s->crash_node < 0 && rng_chance(&s->rng, 1, 2)) {
        isolate(s, rep->node);
        s->crash_node = rep->node; /* and crash it once its write is durable */
        s->crash_at = s->now + s->sync_max + rng_below(&s->rng, 2 * SIM_TICK_UNITS);
    }
    drain(rep);
}

static void change_membership(struct sim *s, int g)
{
    struct replica *rep = find_leader(s, g);
    struct raft_config *c;
    struct raft_batch b;
    int32_t node = (int32_t)rng_below(&s->rng, (uint64_t)s->nodes);
    uint8_t op;
    int at = -1;

    if (rep == NULL)
        return;
    c = &rep->r.config;
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->ids[i] == node)
            at = (int)i;
    }
    if (at < 0)
        op = RAFT_CHANGE_ADD_LEARNER;
    else if (!c->voter[at])
        op = rng_chance(&s->rng, 3, 4) ? RAFT_CHANGE_ADD_VOTER : RAFT_CHANGE_REMOVE;
    else if (rep->r.config.count > 3 || rng_chance(&s->rng, 1, 8))
        op = RAFT_CHANGE_REMOVE;
    else
        return;
    if (raft_change(&rep->r, op, node, &b) != 0)
        return;
    s->res->changes++;
    trace(s, "g%d node %d config op %d node %d at %" PRId64, g, rep->node, op, node, b.first_index);
    drain(rep);
}

static void transfer(struct sim *s, int g, bool caught_up_only)
{
    struct replica *rep = find_leader(s, g);
    struct raft_progress pr[RAFT_MEMBERS_MAX];
    int n, pick = -1;

    if (rep == NULL)
        return;
    n = raft_progress(&rep->r, pr, RAFT_MEMBERS_MAX);
    for (int i = 0; i < n; i++) {
        if (pr[i].id == rep->node || !pr[i].voter || !s->node[pr[i].id].alive)
            continue;
        if (caught_up_only && pr[i].match_index != slog_last(&rep->log))
            continue;
        if (pick < 0 || rng_chance(&s->rng, 1, 2))
            pick = pr[i].id;
    }
    if (pick < 0 || raft_transfer(&rep->r, pick) != 0)
        return;
    s->res->transfers++;
    trace(s, "g%d node %d transfers to %d", g, rep->node, pick);
    drain(rep);
}

static void read_index(struct sim *s, int g)
{
    struct replica *rep = find_leader(s, g);
    struct gstate *gst = &s->g[g];
    uint64_t id = ++s->read_seq;

    if (rep == NULL || gst->read_count == ARRAY_LEN(gst->reads))
        return;
    gst->reads[gst->read_count] = (struct pread){id, gst->acked_max};
    if (raft_read_index(&rep->r, id) != 0)
        return;
    gst->read_count++;
    drain(rep);
}

static void compact(struct sim *s, int n, int g)
{
    struct replica *rep = &s->node[n].reps[g];
    struct slog *l = &rep->log;
    int64_t upto = MIN(rep->r.commit, l->durable_last), to;

    if (upto < l->start)
        return;
    /* The log start is always a batch boundary, as segment deletion keeps it. */
    to = (int64_t)rng_range(&s->rng, (uint64_t)l->start + 1, (uint64_t)upto + 1);
    if (to <= slog_last(l))
        to = slog_at(l, to)->batch.first_index;
    if (to <= l->start)
        return;
    slog_compact(l, to);
    trace(s, "g%d node %d compacts to %" PRId64, g, n, l->start);
}

static void partition(struct sim *s)
{
    uint32_t side = (uint32_t)rng_below(&s->rng, 1u << s->nodes);
    bool one_way = rng_chance(&s->rng, 1, 3);

    for (int a = 0; a < s->nodes; a++) {
        for (int b = 0; b < s->nodes; b++) {
            bool split = ((side >> a) & 1) != ((side >> b) & 1);

            s->cut[a][b] = split && (!one_way || a < b);
        }
    }
    trace(s, "partition %#x%s", side, one_way ? " one-way" : "");
}

static void heal(struct sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
    trace(s, "heal");
}

/* ---- the run ------------------------------------------------------------------------------- */

static void step_done(struct sim *s)
{
    s->res->steps++;
}

/*
 * Figure 8's nemesis (as in the well-known randomized "Figure 8" test): now and then crash the
 * leader of a group, mostly soon after it was elected or took a proposal, and keep a majority
 * of nodes up by restarting crashed ones.
 */
static void figure8(struct sim *s)
{
    struct rng *rng = &s->rng;
    int up = 0;

    if (s->crash_node >= 0 && s->now >= s->crash_at) {
        if (s->node[s->crash_node].alive)
            node_crash(s, s->crash_node);
        s->crash_node = -1;
        step_done(s);
    }
    if (rng_chance(rng, 1, s->figure8_odds)) {
        struct replica *l = find_leader(s, (int)rng_below(rng, (uint64_t)s->groups));

        if (l != NULL)
            node_crash(s, l->node);
        step_done(s);
    }
    for (int n = 0; n < s->nodes; n++)
        up += s->node[n].alive;
    /* Keep a bare majority up, so which nodes form it keeps changing. */
    if (up <= s->nodes / 2) {
        int n = (int)rng_below(rng, (uint64_t)s->nodes);

        if (!s->node[n].alive) {
            /* It comes back connected. */
            for (int k = 0; k < s->nodes; k++) {
                s->cut[n][k] = false;
                s->cut[k][n] = false;
            }
            node_restart(s, n);
            step_done(s);
        }
    }
}

/*
 * The lease nemesis: cut a leader and at most one follower off from the majority, and heal a
 * little over an election timeout later, when the majority side is likely to be electing: the
 * leader may still lead (check-quorum has not deposed it yet), regains a lease as soon as its
 * heartbeats get through, and meets candidates of later terms and their in-flight votes.
 */
static void lease_split(struct sim *s)
{
    struct rng *rng = &s->rng;
    struct replica *l;
    int mate;

    if (s->split_until != 0) {
        if (s->now >= s->split_until) {
            heal(s);
            s->split_until = 0;
            step_done(s);
        }
        return;
    }
    if (!rng_chance(rng, 1, s->split_odds))
        return;
    l = find_leader(s, (int)rng_below(rng, (uint64_t)s->groups));
    if (l == NULL)
        return;
    mate = rng_chance(rng, 1, 2) ? (int)rng_below(rng, (uint64_t)s->nodes) : l->node;
    for (int a = 0; a < s->nodes; a++) {
        for (int b = 0; b < s->nodes; b++) {
            bool a_in = a == l->node || a == mate, b_in = b == l->node || b == mate;

            s->cut[a][b] = a_in != b_in;
        }
    }
    s->split_until = s->now + rng_range(rng, 12 * SIM_TICK_UNITS, 22 * SIM_TICK_UNITS);
    trace(s, "split leader %d (and %d) off until %" PRIu64, l->node, mate, s->split_until);
    step_done(s);
}

static void random_actions(struct sim *s)
{
    struct rng *rng = &s->rng;
    int n = (int)rng_below(rng, (uint64_t)s->nodes), g = (int)rng_below(rng, (uint64_t)s->groups);
    /* Quiesce runs: clients stop every other SIM_QUIET_UNITS so groups go idle, and the faults
     * go on hitting them. */
    bool idle = s->o->quiesce && (s->now / SIM_QUIET_UNITS) % 2 == 1;

    if (s->isolate_node >= 0 && s->now >= s->isolate_at) {
        if (s->faults)
            isolate(s, s->isolate_node);
        s->isolate_node = -1;
        step_done(s);
    }
    if (!s->clients_paused && !idle && rng_chance(rng, 1, s->propose_odds)) {
        propose(s, g);
        step_done(s);
    }
    if (!idle && rng_chance(rng, 1, 40)) {
        read_index(s, g);
        step_done(s);
    }
    if (!s->faults)
        return;
    if (s->figure8) {
        figure8(s);
        return;
    }
    if (s->split_odds > 0)
        lease_split(s);
    if (rng_chance(rng, 1, s->crash_odds)) {
        if (s->node[n].alive)
            node_crash(s, n);
        step_done(s);
    }
    if (rng_chance(rng, 1, s->power_odds)) {
        /* A power failure: every node loses its unsynced tail at the same moment. */
        trace(s, "power failure");
        for (int k = 0; k < s->nodes; k++) {
            if (s->node[k].alive)
                node_crash(s, k);
        }
        step_done(s);
    }
    if (rng_chance(rng, 1, s->partition_odds)) {
        if (rng_chance(rng, 1, 2))
            partition(s);
        else
            heal(s);
        step_done(s);
    }
    if (rng_chance(rng, 1, 300)) {
        if (s->node[n].alive)
            compact(s, n, g);
        step_done(s);
    }
    if (s->membership && !idle && rng_chance(rng, 1, 250)) {
        change_membership(s, g);
        step_done(s);
    }
    if (!idle && rng_chance(rng, 1, 500)) {
        transfer(s, g, false);
        step_done(s);
    }
}

/* Lease: while a leader believes its lease holds, no later term may have a leader. */
static void check_leases(struct sim *s)
{
    for (int n = 0; n < s->nodes && !s->failed; n++) {
        for (int g = 0; g < s->groups && s->node[n].alive; g++) {
            struct replica *rep = &s->node[n].reps[g];

            if (raft_lease_valid(&rep->r) && s->g[g].max_leader_term > rep->r.term)
                fail(s,
                     "lease: g%d node %d holds a lease in term %" PRId64 " but term %" PRId64
                     " has a leader",
                     g, n, rep->r.term, s->g[g].max_leader_term);
        }
    }
}

/* The host's per-node liveness at node n's tick (quiesce runs): a liveness message to every
 * other node, and every quiesced group woken for a node unheard for an election timeout. */
static void liveness_tick(struct sim *s, int n)
{
    uint64_t timeout = (uint64_t)RAFT_ELECTION_TICKS_DEFAULT * SIM_TICK_UNITS;

    for (int k = 0; k < s->nodes; k++) {
        struct netmsg *m;

        if (k == n)
            continue;
        if (!s->silent[n][k] && s->now - s->heard[n][k] >= timeout) {
            uint32_t silent_ticks = (uint32_t)((s->now - s->heard[n][k]) / SIM_TICK_UNITS);

            s->silent[n][k] = true;
            trace(s, "node %d: node %d silent for %u ticks", n, k, silent_ticks);
            for (int g = 0; g < s->groups; g++) {
                struct replica *rep = &s->node[n].reps[g];
                bool was = rep->r.quiesced;

                raft_wake(&rep->r, k, silent_ticks);
                if (was && !rep->r.quiesced) {
                    s->res->wakes++;
                    drain(rep);
                }
            }
        }
        m = xcalloc(1, sizeof(*m));
        m->group = -1;
        m->m.type = RAFT_MSG_HEARTBEAT;
        m->m.from = n;
        m->m.to = k;
        net_send(s, m, n, k);
    }
}

static void time_unit(struct sim *s)
{
    while (!s->failed && s->heap_len > 0 && s->heap[0]->at <= s->now) {
        struct netmsg *m = heap_pop(s);

        deliver(s, m);
        netmsg_free(m);
        step_done(s);
    }
    for (int n = 0; n < s->nodes && !s->failed; n++) {
        struct node *nd = &s->node[n];

        if (!nd->alive) {
            if (s->faults && !s->figure8 && s->now >= nd->restart_at) {
                node_restart(s, n);
                step_done(s);
            }
            continue;
        }
        if (s->o->quiesce && (s->now + (uint64_t)n * 3) % SIM_TICK_UNITS == 0)
            liveness_tick(s, n);
        for (int g = 0; g < s->groups && !s->failed; g++) {
            struct replica *rep = &nd->reps[g];

            if (rep->log.sync_busy && rep->log.sync_at <= s->now) {
                sync_complete(s, rep);
                step_done(s);
            }
            if ((s->now + (uint64_t)n * 3) % SIM_TICK_UNITS == 0) {
                s->res->quiet_ticks += rep->r.quiesced;
                raft_tick(&rep->r);
                drain(rep);
                step_done(s);
            }
        }
    }
    check_leases(s);
    if (!s->failed)
        random_actions(s);
}

static void setup(struct sim *s)
{
    struct rng *rng = &s->rng;
    uint32_t shape = (uint32_t)rng_below(rng, 10), pick;

    s->nodes = shape == 0 ? 1 : (shape < 6 ? 3 : 5);
    s->groups = (int)rng_range(rng, 1, SIM_GROUPS_MAX);
    s->pre_vote = rng_chance(rng, 7, 8);
    s->check_quorum = s->pre_vote || rng_chance(rng, 1, 2);
    s->membership = s->pre_vote && s->check_quorum;
    s->faults = true;
    s->drop_pct = (uint32_t)rng_below(rng, 15);
    s->dup_pct = (uint32_t)rng_below(rng, 5);
    s->delay_max = (uint32_t)rng_range(rng, 1, 2 * SIM_TICK_UNITS);
    s->straggler_odds = 50;
    s->straggler_times = 4;
    s->sync_max = 3 * SIM_TICK_UNITS;
    s->restart_max = 40 * SIM_TICK_UNITS;
    s->crash_odds = 400;
    s->partition_odds = 300;
    s->power_odds = 3000;
    s->isolate_odds = 20;
    s->propose_odds = 3;
    s->isolate_node = -1;
    s->crash_node = -1;
    /* Five-node seeds start with three voters, so membership changes have spares to add. */
    s->voters = MIN(s->nodes, 3);
    /* A forced profile still makes the draw, so a mixed run's seeds replay unchanged. */
    pick = (uint32_t)rng_below(rng, 8);
    if (s->o->profile == SIM_PROFILE_NORMAL)
        pick = 4;
    else if (s->o->profile == SIM_PROFILE_CHAOS)
        pick = 0;
    else if (s->o->profile == SIM_PROFILE_FIGURE8)
        pick = 2;
    else if (s->o->profile == SIM_PROFILE_LEASE)
        pick = 8;
    switch (pick) {
    case 0:
    case 1:
        /* Chaos: five voters, slow disks, frequent short crashes, partitions and power
         * failures. This is where windows such as "acknowledged but not yet durable
         * everywhere" get hit. */
        s->nodes = 5;
        s->voters = 5;
        s->sync_max = (uint32_t)rng_range(rng, 3, 12) * SIM_TICK_UNITS;
        s->restart_max = 5 * SIM_TICK_UNITS;
        s->crash_odds = 60;
        s->partition_odds = 80;
        s->power_odds = 400;
        s->isolate_odds = 2;
        s->propose_odds = (uint32_t)rng_range(rng, 3, 60);
        break;
    case 2:
    case 3:
        /* Figure 8: leaders write entries only they hold and crash; a bare majority stays
         * up. Three nodes suffice when entries can reach no one. */
        s->figure8 = true;
        s->nodes = rng_chance(rng, 1, 2) ? 3 : 5;
        s->voters = s->nodes;
        s->sync_max = (uint32_t)rng_range(rng, 1, SIM_TICK_UNITS);
        s->drop_pct = (uint32_t)rng_range(rng, 0, 30);
        s->figure8_odds = (uint32_t)rng_range(rng, 2, 10) * SIM_TICK_UNITS;
        s->propose_odds = (uint32_t)rng_range(rng, 3, 30);
        break;
    case 8:
        /* Lease (only when forced, so the mixed seeds replay unchanged). The breach it aims
         * at (issue 8 item 15): a follower answers a leader's heartbeat, then learns a later
         * term from a candidate's message (a rejected pre-vote) and receives a vote request
         * of that term. That needs pre-vote, check-quorum, a candidate elected on the far
         * side of a partition that heals as it campaigns (the split nemesis, and partitions
         * that come and go within a few election timeouts), and vote requests that arrive
         * late (every one is delivered a second time within ten ticks; stragglers are ten
         * times as common and twice as slow as in the other profiles). */
        s->nodes = 5;
        s->voters = 5;
        s->pre_vote = true;
        s->check_quorum = true;
        s->membership = true;
        s->partition_odds = (uint32_t)rng_range(rng, 30, 60) * SIM_TICK_UNITS;
        s->delay_max = (uint32_t)rng_range(rng, SIM_TICK_UNITS / 2, 2 * SIM_TICK_UNITS);
        s->dup_pct = (uint32_t)rng_range(rng, 0, 30);
        s->drop_pct = (uint32_t)rng_range(rng, 0, 15);
        s->crash_odds = 1000;
        s->power_odds = 20000;
        s->vote_echo_pct = 100;
        s->vote_echo_max = 10 * SIM_TICK_UNITS;
        s->straggler_odds = 5;
        s->straggler_times = 8;
        s->split_odds = 50;
        break;
    default:
        break;
    }
    for (int n = 0; n < s->nodes; n++) {
        s->node[n].alive = true;
        for (int g = 0; g < s->groups; g++) {
            struct replica *rep = &s->node[n].reps[g];
            struct slog *l = &rep->log;
            int voters = s->voters;

            rep->sim = s;
            rep->node = n;
            rep->group = g;
            rep->hs_vote = RAFT_NONE;
            l->durable_last = -1;
            l->cfg.index = -1;
            for (int v = 0; v < voters; v++) {
                l->cfg.ids[v] = v;
                l->cfg.voter[v] = 1;
            }
            l->cfg.count = (uint32_t)voters;
            l->cfg_prev = l->cfg;
            replica_start(rep);
        }
    }
    for (int g = 0; g < s->groups; g++)
        s->g[g].commit_max = -1;
    trace(s,
          "seed %" PRIu64 ": %d nodes, %d groups, pre-vote %d, check-quorum %d, drop %u%%, "
          "dup %u%%, delay <= %u, fsync <= %u, crash 1/%u, figure8 %d",
          s->o->seed, s->nodes, s->groups, s->pre_vote, s->check_quorum, s->drop_pct, s->dup_pct,
          s->delay_max, s->sync_max, s->crash_odds, s->figure8);
}

static void heal_all(struct sim *s)
{
    s->faults = false;
    s->propose_odds = 3;
    s->delay_max = MIN(s->delay_max, SIM_TICK_UNITS / 2);
    s->drop_pct = 0;
    s->dup_pct = 0;
    heal(s);
    for (int n = 0; n < s->nodes; n++) {
        if (!s->node[n].alive) {
            node_restart(s, n);
            step_done(s);
        }
    }
}

static uint32_t voters_of(const struct raft_config *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->count; i++)
        n += c->voter[i];
    return n;
}

/* Liveness after healing: every group commits a new proposal, then a transfer completes. */
static void liveness(struct sim *s)
{
    uint64_t deadline = s->now + SIM_LIVENESS_TICKS * SIM_TICK_UNITS;
    bool all = false;

    while (!s->failed && !all && s->now < deadline) {
        s->now++;
        time_unit(s);
        all = true;
        for (int g = 0; g < s->groups; g++)
            all = all && s->g[g].live_acked_at != 0;
    }
    for (int g = 0; g < s->groups && !all; g++) {
        struct replica *l = find_leader(s, g);

        if (s->g[g].live_acked_at != 0)
            continue;
        fail_liveness(
            s,
            "liveness: g%d committed nothing within %u ticks of healing (leader %d, term %" PRId64
            ", commit %" PRId64 ", last %" PRId64 ", voters %u)",
            g, SIM_LIVENESS_TICKS, l ? l->node : -1, l ? l->r.term : -1, l ? l->r.commit : -1,
            l ? slog_last(&l->log) : -1, l ? voters_of(&l->r.config) : 0);
        return;
    }
    /* The thesis (3.10) has the leader stop taking proposals during a transfer; the clients
     * pause too, so that some follower is caught up when the transfer starts. */
    s->clients_paused = true;
    for (int g = 0; g < s->groups && !s->failed; g++) {
        struct replica *from = find_leader(s, g), *to;
        uint64_t start = s->now;
        uint64_t transfers = s->res->transfers;

        if (from == NULL || voters_of(&from->r.config) < 2)
            continue;
        while (!s->failed && s->res->transfers == transfers &&
               s->now < start + SIM_TRANSFER_TICKS * SIM_TICK_UNITS) {
            transfer(s, g, true);
            s->now++;
            time_unit(s);
        }
        to = NULL;
        deadline = s->now + SIM_TRANSFER_TICKS * SIM_TICK_UNITS;
        while (!s->failed && s->now < deadline) {
            to = find_leader(s, g);
            if (to != NULL && to != from)
                break;
            s->now++;
            time_unit(s);
        }
        if (s->res->transfers == transfers || to == NULL || to == from)
            fail_liveness(s, "liveness: g%d transfer from %d did not complete within %u ticks", g,
                          from->node, 2 * SIM_TRANSFER_TICKS);
    }
}

static void teardown(struct sim *s)
{
    while (s->heap_len > 0)
        netmsg_free(heap_pop(s));
    free(s->heap);
    for (int n = 0; n < s->nodes; n++) {
        for (int g = 0; g < s->groups; g++)
            free(s->node[n].reps[g].log.ents);
    }
    for (int g = 0; g < s->groups; g++) {
        free(s->g[g].committed);
        free(s->g[g].leader_of_term);
        free(s->g[g].match);
        free(s->g[g].props);
    }
}

int sim_profile_parse(const char *s)
{
    static const char *const names[] = {"mix", "normal", "chaos", "figure8", "lease"};

    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    }
    return -1;
}

int sim_run(const struct sim_options *o, struct sim_result *res)
{
    struct sim *s = xcalloc(1, sizeof(*s));
    int rc;

    ASSERT(o != NULL && res != NULL);
    memset(res, 0, sizeof(*res));
    s->o = o;
    s->trace.echo = o->trace;
    s->res = res;
    rng_seed(&s->rng, o->seed);
    setup(s);
    for (s->now = 1; s->now <= o->time_max && !s->failed; s->now++)
        time_unit(s);
    if (!s->failed) {
        heal_all(s);
        liveness(s);
    }
    res->failed = s->failed;
    if (s->failed && o->trace_on_fail) {
        printf("seed %" PRIu64 " FAILED at time %" PRIu64 ": %s\nlast events:\n", o->seed, s->now,
               res->why);
        sim_trace_print(&s->trace);
    }
    rc = s->failed ? -1 : 0;
    teardown(s);
    free(s);
    return rc;
}
