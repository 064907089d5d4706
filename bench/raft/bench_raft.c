/*
 * bench_raft: throughput of the Raft core alone (no I/O, no network): three-node groups whose
 * messages are delivered in memory and whose log writes are "persisted" at once, so the figure
 * is the cost of the core's own bookkeeping per proposal. Also prints the bytes a group costs
 * while idle (sizeof(struct raft): the core owns nothing outside it).
 *
 *   bench_raft [--groups N] [--seconds S] [--batch K]
 *
 * It owns every group, log and message it creates and frees them before exiting.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/compiler.h"
#include "base/error.h"
#include "raft/raft.h"

#define NODES    3
#define LOG_KEEP 256 /* batches kept after compaction */
#define LOG_MAX  1024

struct bnode {
    struct raft r;
    struct raft_batch log[LOG_MAX]; /* log[0] starts at start */
    uint32_t len;
    int64_t start;
    int64_t start_prev_term;
};

struct bgroup {
    struct bnode n[NODES];
};

/* A message in flight; an append's batches are read from the sender's log on delivery (the
 * bench never truncates, and compaction keeps LOG_KEEP batches below the commit index). */
struct bmsg {
    int group;
    int from_slot;
    struct raft_msg m;
};

/* Two queues: one being delivered, one collecting what that delivery sends. */
static struct bmsg *queue, *spare;
static uint32_t queue_len;
static uint32_t queue_cap;

static int64_t b_last(const struct bnode *n)
{
    return n->len ? n->log[n->len - 1].last_index : n->start - 1;
}

/* Batches are one entry each here, so the index maps straight to a slot. */
static const struct raft_batch *b_at(const struct bnode *n, int64_t index)
{
    if (index < n->start || index > b_last(n))
        return NULL;
    return &n->log[index - n->start];
}

static int64_t op_start(void *ctx)
{
    return ((struct bnode *)ctx)->start;
}

static int64_t op_last(void *ctx)
{
    return b_last(ctx);
}

static int op_term_at(void *ctx, int64_t index, int64_t *term)
{
    struct bnode *n = ctx;
    const struct raft_batch *b;

    if (index == n->start - 1) {
        *term = n->start_prev_term;
        return 0;
    }
    b = b_at(n, index);
    if (b == NULL)
        return ERR_RANGE;
    *term = b->term;
    return 0;
}

static int op_batch_at(void *ctx, int64_t index, struct raft_batch *out)
{
    const struct raft_batch *b = b_at(ctx, index);

    if (b == NULL)
        return ERR_RANGE;
    *out = *b;
    return 0;
}

static void op_append(void *ctx, const struct raft_batch *b)
{
    struct bnode *n = ctx;

    ASSERT(b->first_index == b->last_index && n->len < LOG_MAX);
    n->log[n->len++] = *b;
}

static void op_truncate(void *ctx, int64_t from)
{
    struct bnode *n = ctx;

    n->len = (uint32_t)(from - n->start);
}

static const struct raft_log_ops ops = {op_start,    op_last,   op_term_at,
                                        op_batch_at, op_append, op_truncate};

static void compact(struct bnode *n)
{
    int64_t upto = n->r.commit + 1 - LOG_KEEP;
    uint32_t drop;

    if (n->len < LOG_MAX / 2 || upto <= n->start)
        return;
    drop = (uint32_t)(upto - n->start);
    n->start_prev_term = n->log[drop - 1].term;
    memmove(n->log, n->log + drop, (n->len - drop) * sizeof(n->log[0]));
    n->len -= drop;
    n->start = upto;
}

static void handle_ready(int gi, int slot, struct bnode *n)
{
    struct raft_ready rd;

    while (raft_has_ready(&n->r)) {
        raft_ready(&n->r, &rd);
        for (uint32_t i = 0; i < rd.msg_count; i++) {
            struct bmsg *q;

            if (queue_len == queue_cap) {
                queue_cap = queue_cap ? queue_cap * 2 : 1024;
                queue = xrealloc(queue, queue_cap * sizeof(*queue));
                spare = xrealloc(spare, queue_cap * sizeof(*spare));
            }
            q = &queue[queue_len++];
            q->group = gi;
            q->from_slot = slot;
            q->m = rd.msgs[i];
        }
        raft_advance(&n->r);
        if (rd.write_first <= rd.last_index) {
            int64_t term = 0;

            op_term_at(n, rd.last_index, &term);
            raft_persisted(&n->r, rd.last_index, term);
        }
    }
    compact(n);
}

static void run_queue(struct bgroup *groups)
{
    while (queue_len > 0) {
        uint32_t len = queue_len;
        struct bmsg *batch = queue;

        queue = spare;
        spare = batch;
        queue_len = 0;
        for (uint32_t i = 0; i < len; i++) {
            struct bgroup *g = &groups[batch[i].group];
            struct bnode *n = &g->n[batch[i].m.to];
            struct raft_msg *m = &batch[i].m;
            int rc;

            if (m->type == RAFT_MSG_APPEND && m->last_index > m->index) {
                const struct bnode *from = &g->n[batch[i].from_slot];

                ASSERT(m->index + 1 >= from->start);
                m->batches = b_at(from, m->index + 1);
                m->batch_count = (uint16_t)(m->last_index - m->index);
            }
            rc = raft_step(&n->r, m);
            ASSERT(rc == 0);
            handle_ready(batch[i].group, m->to, n);
        }
    }
}

static void group_init(struct bgroup *g, int gi)
{
    for (int i = 0; i < NODES; i++) {
        struct raft_options o;
        int rc;

        memset(&o, 0, sizeof(o));
        o.self = i;
        o.vote = RAFT_NONE;
        o.commit_index = -1;
        o.config.index = -1;
        for (int v = 0; v < NODES; v++) {
            o.config.ids[v] = v;
            o.config.voter[v] = 1;
        }
        o.config.count = NODES;
        o.config_prev = o.config;
        o.election_ticks = RAFT_ELECTION_TICKS_DEFAULT;
        o.heartbeat_ticks = RAFT_HEARTBEAT_TICKS_DEFAULT;
        o.pre_vote = true;
        o.check_quorum = true;
        o.seed = (uint64_t)gi * NODES + (uint64_t)i + 1;
        o.log = &ops;
        o.log_ctx = &g->n[i];
        rc = raft_init(&g->n[i].r, &o);
        ASSERT(rc == 0);
    }
}

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void bench(int group_count, double seconds, uint32_t batch)
{
    struct bgroup *groups = xcalloc((size_t)group_count, sizeof(*groups));
    uint64_t proposals = 0;
    int64_t commit_start = 0, commit_end = 0;
    double t0, t1;

    for (int gi = 0; gi < group_count; gi++) {
        group_init(&groups[gi], gi);
        /* Node 0 campaigns first: tick it alone past its timeout. */
        for (uint32_t t = 0; t < 2 * RAFT_ELECTION_TICKS_DEFAULT; t++) {
            raft_tick(&groups[gi].n[0].r);
            handle_ready(gi, 0, &groups[gi].n[0]);
            run_queue(groups);
            if (groups[gi].n[0].r.role == RAFT_LEADER)
                break;
        }
        ASSERT(groups[gi].n[0].r.role == RAFT_LEADER);
        commit_start += groups[gi].n[0].r.commit;
    }
    t0 = now_s();
    do {
        for (int round = 0; round < 16; round++) {
            for (int gi = 0; gi < group_count; gi++) {
                struct bnode *l = &groups[gi].n[0];
                struct raft_batch b;

                for (uint32_t k = 0; k < batch; k++) {
                    if (raft_propose(&l->r, 1, 1024, &b) == 0)
                        proposals++;
                }
                handle_ready(gi, 0, l);
            }
            run_queue(groups);
        }
        t1 = now_s();
    } while (t1 - t0 < seconds);
    for (int gi = 0; gi < group_count; gi++)
        commit_end += groups[gi].n[0].r.commit;
    printf("groups %5d, %u proposals per round: %" PRIu64 " proposals, %" PRId64
           " committed in %.2f s = %.0f commits/s (%.0f ns each)\n",
           group_count, batch, proposals, commit_end - commit_start, t1 - t0,
           (double)(commit_end - commit_start) / (t1 - t0),
           (t1 - t0) * 1e9 / (double)(commit_end - commit_start));
    free(groups);
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    uint32_t batch = 8;
    int groups = 0;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--groups") == 0)
            groups = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0)
            batch = (uint32_t)atoi(argv[i + 1]);
    }
    printf("bench_raft: core only, 3 voters per group, every write persisted at once\n");
    printf("bytes per idle group: sizeof(struct raft) = %zu (outbox %zu, members %zu)\n",
           sizeof(struct raft), sizeof(((struct raft *)0)->outbox),
           sizeof(((struct raft *)0)->members));
    if (groups > 0) {
        bench(groups, seconds, batch);
    } else {
        bench(1, seconds, batch);
        bench(1000, seconds, batch);
    }
    free(queue);
    free(spare);
    return 0;
}
