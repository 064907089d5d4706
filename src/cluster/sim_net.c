/*
 * The simulated network (see sim_net.h). Frames in flight sit in a binary heap ordered by
 * (delivery time, send sequence); each remembers the incarnations of both ends and the epoch of
 * its link when it was sent, and is lost if any of them changed by the time it is due.
 *
 * Invariants: nodes[i] is NULL or the attached node with id i; link_epoch[a][b] grows each time
 * the link a -> b is cut and each time a or b crashes; with !reorder, link_last_ms[a][b] is the
 * latest delivery time scheduled on the link, so later frames never arrive earlier.
 */
#include "cluster/sim_net.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"
#include "base/rand.h"

#include <stdlib.h>
#include <string.h>

#define N CLUSTER_SIM_NODES_MAX

struct sim_node {
    struct transport t; /* first: the ops get a struct transport * */
    struct sim_net *net;
    bool known[N]; /* peers set with peer_set */
    bool up[N];    /* what on_peer_up/down last told the handler */
    int32_t correlation[N];
    struct tqueue queues[N]; /* queues[self] stays empty: RPCs to self wait in self_rpcs */
    struct tself self_rpcs;
};

struct packet {
    uint64_t due_ms;
    uint64_t seq;
    uint32_t epoch; /* link_epoch[from][to] at send */
    int32_t from, to;
    size_t len;
    uint8_t bytes[]; /* the frame, size prefix included */
};

struct sim_net {
    struct sim_net_options opt;
    struct rng rng;
    uint64_t now_ms;
    uint64_t seq;
    struct sim_node *nodes[N];
    bool blocked[N][N];
    uint32_t link_epoch[N][N];
    uint64_t link_last_ms[N][N];
    struct packet **heap;
    size_t heap_len, heap_cap;
    struct arena scratch; /* drains */
    struct arena decode;  /* deliveries */
    struct buf frame;
    struct sim_net_stats stats;
};

static bool valid_id(int32_t id)
{
    return id >= 0 && id < (int32_t)N;
}

static int check_options(const struct sim_net_options *o)
{
    if (o->delay_ms_min > o->delay_ms_max || o->delay_ms_max > CLUSTER_SIM_DELAY_MS_MAX ||
        o->drop_ppm > 1000000 || o->duplicate_ppm > 1000000)
        return ERR_INVALID;
    return 0;
}

/* ---- the heap of frames in flight ---------------------------------------------------------- */

static bool before(const struct packet *a, const struct packet *b)
{
    return a->due_ms != b->due_ms ? a->due_ms < b->due_ms : a->seq < b->seq;
}

static void heap_swap(struct sim_net *n, size_t a, size_t b)
{
    struct packet *p = n->heap[a];
    n->heap[a] = n->heap[b];
    n->heap[b] = p;
}

static void heap_push(struct sim_net *n, struct packet *p)
{
    size_t i;

    if (n->heap_len == n->heap_cap) {
        n->heap_cap = n->heap_cap == 0 ? 256 : n->heap_cap * 2;
        n->heap = xrealloc(n->heap, n->heap_cap * sizeof(*n->heap));
    }
    i = n->heap_len++;
    n->heap[i] = p;
    while (i > 0 && before(n->heap[i], n->heap[(i - 1) / 2])) {
        heap_swap(n, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static struct packet *heap_pop(struct sim_net *n)
{
    struct packet *top = n->heap[0];
    size_t i = 0;

    n->heap[0] = n->heap[--n->heap_len];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < n->heap_len && before(n->heap[l], n->heap[m]))
            m = l;
        if (r < n->heap_len && before(n->heap[r], n->heap[m]))
            m = r;
        if (m == i)
            break;
        heap_swap(n, i, m);
        i = m;
    }
    return top;
}

/* ---- sending ------------------------------------------------------------------------------- */

static void schedule(struct sim_net *n, int32_t from, int32_t to, struct slice frame)
{
    uint64_t due = n->now_ms + rng_range(&n->rng, n->opt.delay_ms_min, n->opt.delay_ms_max);
    struct packet *p;

    if (n->heap_len >= CLUSTER_SIM_INFLIGHT_MAX) {
        n->stats.frames_dropped++;
        return;
    }
    if (!n->opt.reorder) {
        due = due > n->link_last_ms[from][to] ? due : n->link_last_ms[from][to];
        n->link_last_ms[from][to] = due;
    }
    p = xmalloc(sizeof(*p) + frame.len);
    p->due_ms = due;
    p->seq = n->seq++;
    p->epoch = n->link_epoch[from][to];
    p->from = from;
    p->to = to;
    p->len = frame.len;
    memcpy(p->bytes, frame.ptr, frame.len);
    heap_push(n, p);
}

struct emit_ctx {
    struct sim_net *net;
    int32_t from, to;
};

static void emit(void *ctx, struct slice frame)
{
    struct emit_ctx *e = ctx;
    struct sim_net *n = e->net;

    n->stats.frames_sent++;
    e->net->nodes[e->from]->t.stats.frames_sent++;
    e->net->nodes[e->from]->t.stats.bytes_sent += frame.len;
    if (n->blocked[e->from][e->to] || n->nodes[e->to] == NULL ||
        rng_chance(&n->rng, n->opt.drop_ppm, 1000000)) {
        n->stats.frames_dropped++;
        return;
    }
    schedule(n, e->from, e->to, frame);
    if (rng_chance(&n->rng, n->opt.duplicate_ppm, 1000000)) {
        n->stats.frames_duplicated++;
        schedule(n, e->from, e->to, frame);
    }
}

static struct sim_node *node_of(struct transport *t)
{
    return (struct sim_node *)t;
}

static int op_peer_set(struct transport *t, int32_t node, const char *host, uint16_t port)
{
    struct sim_node *s = node_of(t);

    (void)host;
    (void)port;
    if (!valid_id(node) || node == t->self)
        return ERR_INVALID;
    s->known[node] = true;
    return 0;
}

static void op_peer_remove(struct transport *t, int32_t node)
{
    struct sim_node *s = node_of(t);

    if (!valid_id(node) || !s->known[node])
        return;
    s->known[node] = false;
    s->up[node] = false;
    t->stats.msgs_dropped += tqueue_clear(&s->queues[node], &t->stats.rpcs_dropped);
}

static int op_send(struct transport *t, const struct wire_msg *m)
{
    struct sim_node *s = node_of(t);
    int32_t to = m->msg.to;
    int rc;

    if (m->msg.from != t->self) {
        rc = ERR_INVALID;
    } else if (!valid_id(to) || !s->known[to]) {
        rc = ERR_NOT_FOUND;
    } else {
        rc = tqueue_push(&s->queues[to], m);
    }
    if (rc != 0) {
        t->stats.msgs_dropped++;
        return rc;
    }
    t->stats.msgs_queued++;
    return 0;
}

static int op_send_rpc(struct transport *t, const struct wire_rpc *r)
{
    struct sim_node *s = node_of(t);
    int32_t to = r->to;
    int rc;

    if (r->from != t->self)
        rc = ERR_INVALID;
    else if (to == t->self)
        rc = tqueue_push_rpc(&s->self_rpcs.queue, r);
    else if (!valid_id(to) || !s->known[to])
        rc = ERR_NOT_FOUND;
    else
        rc = tqueue_push_rpc(&s->queues[to], r);
    if (rc != 0) {
        t->stats.rpcs_dropped++;
        return rc;
    }
    t->stats.rpcs_queued++;
    return 0;
}

static void op_flush(struct transport *t)
{
    struct sim_node *s = node_of(t);

    /* RPCs to self first: what their handlers send to peers leaves in this flush. */
    tself_deliver(&s->self_rpcs, t);
    for (int32_t to = 0; to < (int32_t)N; to++) {
        struct emit_ctx e = {.net = s->net, .from = t->self, .to = to};

        if (tqueue_empty(&s->queues[to]))
            continue;
        t->stats.msgs_dropped +=
            tqueue_drain(&s->queues[to], &s->net->scratch, t->self, to, &s->correlation[to],
                         &s->net->frame, emit, &e, &t->stats.rpcs_dropped);
    }
}

static const struct transport_ops sim_ops = {
    .peer_set = op_peer_set,
    .peer_remove = op_peer_remove,
    .send = op_send,
    .send_rpc = op_send_rpc,
    .flush = op_flush,
};

/* ---- the network --------------------------------------------------------------------------- */

int sim_net_create(const struct sim_net_options *o, struct sim_net **out)
{
    struct sim_net *n;

    if (check_options(o) != 0)
        return ERR_INVALID;
    n = xcalloc(1, sizeof(*n));
    n->opt = *o;
    rng_seed(&n->rng, o->seed);
    arena_init(&n->scratch, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    arena_init(&n->decode, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    buf_init(&n->frame);
    *out = n;
    return 0;
}

void sim_net_destroy(struct sim_net *n)
{
    for (int32_t i = 0; i < (int32_t)N; i++)
        sim_net_detach(n, i);
    while (n->heap_len > 0)
        free(heap_pop(n));
    free(n->heap);
    arena_deinit(&n->scratch);
    arena_deinit(&n->decode);
    buf_deinit(&n->frame);
    free(n);
}

int sim_net_set_faults(struct sim_net *n, const struct sim_net_options *o)
{
    uint64_t seed = n->opt.seed;

    if (check_options(o) != 0)
        return ERR_INVALID;
    n->opt = *o;
    n->opt.seed = seed;
    return 0;
}

int sim_net_attach(struct sim_net *n, int32_t node, const struct transport_handler *h,
                   struct transport **out)
{
    struct sim_node *s;

    if (!valid_id(node))
        return ERR_INVALID;
    if (n->nodes[node] != NULL)
        return ERR_STATE;
    s = xcalloc(1, sizeof(*s));
    s->t.ops = &sim_ops;
    s->t.handler = *h;
    s->t.self = node;
    s->net = n;
    for (size_t i = 0; i < N; i++)
        tqueue_init(&s->queues[i]);
    tself_init(&s->self_rpcs);
    n->nodes[node] = s;
    *out = &s->t;
    return 0;
}

/* Everything in flight on links touching node is lost (their epochs move on). */
static void cut_links_of(struct sim_net *n, int32_t node)
{
    for (size_t i = 0; i < N; i++) {
        n->link_epoch[node][i]++;
        n->link_epoch[i][node]++;
    }
}

void sim_net_detach(struct sim_net *n, int32_t node)
{
    struct sim_node *s;

    if (!valid_id(node) || n->nodes[node] == NULL)
        return;
    s = n->nodes[node];
    for (size_t i = 0; i < N; i++)
        tqueue_deinit(&s->queues[i]);
    tself_deinit(&s->self_rpcs);
    free(s);
    n->nodes[node] = NULL;
    cut_links_of(n, node);
}

void sim_net_block(struct sim_net *n, int32_t from, int32_t to, bool blocked)
{
    ASSERT(valid_id(from) && valid_id(to));
    if (blocked && !n->blocked[from][to])
        n->link_epoch[from][to]++;
    n->blocked[from][to] = blocked;
}

void sim_net_partition(struct sim_net *n, const int32_t *side, size_t count)
{
    bool in[N] = {false};

    for (size_t i = 0; i < count; i++) {
        ASSERT(valid_id(side[i]));
        in[side[i]] = true;
    }
    for (int32_t a = 0; a < (int32_t)N; a++) {
        for (int32_t b = 0; b < (int32_t)N; b++) {
            if (in[a] != in[b])
                sim_net_block(n, a, b, true);
        }
    }
}

void sim_net_heal(struct sim_net *n)
{
    memset(n->blocked, 0, sizeof(n->blocked));
}

uint64_t sim_net_now_ms(const struct sim_net *n)
{
    return n->now_ms;
}

uint64_t sim_net_next_ms(const struct sim_net *n)
{
    return n->heap_len > 0 ? n->heap[0]->due_ms : UINT64_MAX;
}

/* Tells every node about links to its known peers that went up or down, in id order. */
static void notify_links(struct sim_net *n)
{
    for (int32_t a = 0; a < (int32_t)N; a++) {
        for (int32_t b = 0; b < (int32_t)N; b++) {
            struct sim_node *s = n->nodes[a];
            bool usable;

            if (s == NULL || !s->known[b])
                continue;
            usable = n->nodes[b] != NULL && !n->blocked[a][b];
            if (usable == s->up[b])
                continue;
            s->up[b] = usable;
            if (!usable)
                s->t.stats.msgs_dropped += tqueue_clear(&s->queues[b], &s->t.stats.rpcs_dropped);
            if (usable && s->t.handler.on_peer_up != NULL)
                s->t.handler.on_peer_up(s->t.handler.ctx, b);
            else if (!usable && s->t.handler.on_peer_down != NULL)
                s->t.handler.on_peer_down(s->t.handler.ctx, b, ERR_CLOSED,
                                          n->nodes[b] == NULL ? "peer down" : "link cut");
        }
    }
}

static void deliver(struct sim_net *n, const struct packet *p)
{
    struct sim_node *s = n->nodes[p->to];
    struct wire_request req;
    int rc;

    arena_reset(&n->decode);
    rc = wire_request_decode(
        &n->decode,
        slice_make(p->bytes + WIRE_FRAME_PREFIX_BYTES, p->len - WIRE_FRAME_PREFIX_BYTES), &req);
    s->t.stats.frames_received++;
    if (rc == 0 && req.api_key == WIRE_API_RAFT_MESSAGES && req.raft.from == p->from &&
        req.raft.to == p->to) {
        s->t.stats.msgs_received += req.raft.count;
        n->stats.frames_delivered++;
        if (s->t.handler.on_raft != NULL)
            s->t.handler.on_raft(s->t.handler.ctx, &req.raft);
    } else if (rc == 0 && req.api_key == WIRE_API_CLUSTER_RPC && req.rpcs.from == p->from &&
               req.rpcs.to == p->to) {
        n->stats.frames_delivered++;
        for (size_t i = 0; i < req.rpcs.count; i++) {
            if (s->t.handler.on_rpc == NULL) {
                s->t.stats.rpcs_dropped++;
                continue;
            }
            s->t.stats.rpcs_received++;
            s->t.handler.on_rpc(s->t.handler.ctx, &req.rpcs.rpcs[i]);
        }
    } else {
        s->t.stats.frames_refused++;
    }
}

size_t sim_net_advance(struct sim_net *n, uint64_t now_ms)
{
    uint64_t first_new = n->seq;
    size_t delivered = 0;

    if (now_ms > n->now_ms)
        n->now_ms = now_ms;
    notify_links(n);
    /* Frames that handlers send now wait for the next call, even with no delay, so two nodes
     * answering each other can never keep one call going. They sort after every older frame
     * due by now (same or later time, larger sequence), so stopping at the first is enough. */
    while (n->heap_len > 0 && n->heap[0]->due_ms <= n->now_ms && n->heap[0]->seq < first_new) {
        struct packet *p = heap_pop(n);

        if (n->nodes[p->to] == NULL || n->blocked[p->from][p->to] ||
            p->epoch != n->link_epoch[p->from][p->to]) {
            n->stats.frames_dropped++;
        } else {
            deliver(n, p);
            delivered++;
        }
        free(p);
    }
    return delivered;
}

void sim_net_stats(const struct sim_net *n, struct sim_net_stats *out)
{
    *out = n->stats;
}
