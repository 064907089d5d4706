/*
 * The simulated network behind the transport interface (cluster/sim_net.h): what one flush
 * queues for a peer arrives as one frame with every message intact (batch bytes copied at send);
 * large queues split into frames near the target; queues are bounded; links report up and down;
 * cuts and crashes lose what is in flight; without reorder a link is FIFO, with it frames
 * overtake; drop and duplicate do what they say; and one seed replays exactly. Controller RPCs:
 * requests and answers between three nodes and to self (delivered by flush, never by send_rpc),
 * mixed with Raft messages; their queue bounds; faults apply to their frames too.
 */
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "base/rand.h"
#include "cluster/sim_net.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define NODES 4

/* What one node's handler saw. */
struct node {
    int32_t id;
    struct transport *t;
    size_t frames;
    size_t msgs;
    int64_t last_index; /* for FIFO checks: index of the last message seen */
    size_t inversions;
    bool up[NODES], down_seen[NODES];
    uint64_t trace; /* a hash of everything delivered, in order */
    uint8_t batch_first_byte;
    size_t batch_len;
    /* RPCs */
    size_t requests, responses;
    int64_t corr_sum;      /* of the responses */
    uint64_t payload_hash; /* of every RPC payload, in order */
    int32_t last_from;
    int16_t last_error;
    bool answer;    /* answer each request with a response to its sender */
    bool echo_self; /* send itself a request for every request from itself */
    bool in_send;   /* set around send_rpc calls: on_rpc must never run inside one */
};

static struct node nodes[NODES];

static void on_raft(void *ctx, const struct wire_raft *f)
{
    struct node *nd = ctx;
    assert_int_equal(f->to, nd->id);
    nd->frames++;
    for (size_t i = 0; i < f->count; i++) {
        const struct raft_msg *m = &f->msgs[i].msg;
        nd->msgs++;
        if (m->index < nd->last_index)
            nd->inversions++;
        nd->last_index = m->index;
        nd->trace = nd->trace * 1000003u ^ (uint64_t)m->index ^ ((uint64_t)f->from << 40);
        if (m->batch_count > 0) {
            nd->batch_first_byte = f->msgs[i].batch_bytes[0].ptr[0];
            nd->batch_len = f->msgs[i].batch_bytes[0].len;
        }
    }
}

static uint64_t hash_bytes(uint64_t h, struct slice s)
{
    for (size_t i = 0; i < s.len; i++)
        h = h * 1099511628211u ^ s.ptr[i];
    return h * 31 + s.len;
}

static void on_rpc(void *ctx, const struct wire_rpc *r)
{
    struct node *nd = ctx;
    assert_false(nd->in_send);
    assert_int_equal(r->to, nd->id);
    assert_non_null(r->payload.ptr);
    nd->last_from = r->from;
    nd->last_error = r->error;
    nd->payload_hash = hash_bytes(nd->payload_hash, r->payload);
    if (r->kind == WIRE_RPC_RESPONSE) {
        nd->responses++;
        nd->corr_sum += r->correlation_id;
        return;
    }
    nd->requests++;
    if (nd->echo_self && r->from == nd->id) {
        struct wire_rpc again = *r;
        assert_int_equal(transport_send_rpc(nd->t, &again), 0);
    }
    if (nd->answer) {
        uint8_t body[3] = {'o', 'k', (uint8_t)r->api_key};
        struct wire_rpc resp = {.from = nd->id,
                                .to = r->from,
                                .kind = WIRE_RPC_RESPONSE,
                                .correlation_id = r->correlation_id,
                                .api_key = r->api_key,
                                .api_version = r->api_version,
                                .payload = slice_make(body, sizeof(body))};
        assert_int_equal(transport_send_rpc(nd->t, &resp), 0);
    }
}

static void on_up(void *ctx, int32_t peer)
{
    struct node *nd = ctx;
    nd->up[peer] = true;
}

static void on_down(void *ctx, int32_t peer, int err, const char *reason)
{
    struct node *nd = ctx;
    assert_true(err < 0);
    assert_non_null(reason);
    nd->up[peer] = false;
    nd->down_seen[peer] = true;
}

static void attach(struct sim_net *net, int32_t id)
{
    struct node *nd = &nodes[id];
    memset(nd, 0, sizeof(*nd));
    nd->id = id;
    nd->last_index = -1;
    struct transport_handler h = {.on_raft = on_raft,
                                  .on_rpc = on_rpc,
                                  .on_peer_up = on_up,
                                  .on_peer_down = on_down,
                                  .ctx = nd};
    assert_int_equal(sim_net_attach(net, id, &h, &nd->t), 0);
    for (int32_t p = 0; p < NODES; p++) {
        if (p != id)
            assert_int_equal(transport_peer_set(nd->t, p, "sim", 1), 0);
    }
}

static struct sim_net *make(const struct sim_net_options *o)
{
    struct sim_net *net;
    assert_int_equal(sim_net_create(o, &net), 0);
    for (int32_t i = 0; i < NODES; i++)
        attach(net, i);
    return net;
}

static struct wire_msg msg(int32_t from, int32_t to, int32_t partition, int64_t index)
{
    struct wire_msg w = {0};
    w.group.topic_id.bytes[0] = 7;
    w.group.partition = partition;
    w.msg = (struct raft_msg){.type = RAFT_MSG_APPEND_RESP,
                              .from = from,
                              .to = to,
                              .term = 3,
                              .index = index,
                              .hint_index = -1};
    return w;
}

/* Runs the network until nothing is in flight. */
static void drain(struct sim_net *net)
{
    while (sim_net_next_ms(net) != UINT64_MAX)
        sim_net_advance(net, sim_net_next_ms(net));
}

/* 50 groups' messages queued in one iteration leave as one frame, arrive whole, and an
 * append's bytes were copied at send (the sender's buffer changes before the flush). */
static void test_one_frame_per_flush(void **state)
{
    (void)state;
    struct sim_net_options o = {.seed = 1, .delay_ms_min = 5, .delay_ms_max = 5};
    struct sim_net *net = make(&o);

    uint8_t data[300];
    memset(data, 0xab, sizeof(data));
    struct raft_batch shape = {.first_index = 1, .last_index = 4, .term = 3, .bytes = sizeof(data)};
    struct slice bytes = slice_make(data, sizeof(data));
    struct wire_msg app = msg(1, 2, 99, 0);
    app.msg.type = RAFT_MSG_APPEND;
    app.msg.last_index = 4;
    app.msg.batches = &shape;
    app.msg.batch_count = 1;
    app.batch_bytes = &bytes;
    assert_int_equal(transport_send(nodes[1].t, &app), 0);
    memset(data, 0, sizeof(data));
    for (int32_t p = 0; p < 49; p++) {
        struct wire_msg m = msg(1, 2, p, p + 1);
        assert_int_equal(transport_send(nodes[1].t, &m), 0);
    }
    transport_flush(nodes[1].t);
    assert_int_equal(nodes[1].t->stats.frames_sent, 1);
    assert_int_equal(nodes[1].t->stats.msgs_queued, 50);

    sim_net_advance(net, 4);
    assert_int_equal(nodes[2].frames, 0);
    sim_net_advance(net, 5);
    assert_int_equal(nodes[2].frames, 1);
    assert_int_equal(nodes[2].msgs, 50);
    assert_int_equal(nodes[2].batch_first_byte, 0xab);
    assert_int_equal(nodes[2].batch_len, sizeof(data));
    assert_int_equal(nodes[2].t->stats.msgs_received, 50);

    /* Unknown peers, foreign senders and bad messages are refused and counted. */
    struct wire_msg bad = msg(1, 9, 0, 0);
    assert_int_equal(transport_send(nodes[1].t, &bad), ERR_NOT_FOUND);
    bad = msg(2, 3, 0, 0);
    assert_int_equal(transport_send(nodes[1].t, &bad), ERR_INVALID);
    bad = msg(1, 2, 0, 0);
    bad.msg.type = RAFT_MSG_TYPE_COUNT;
    assert_int_equal(transport_send(nodes[1].t, &bad), ERR_INVALID);
    assert_int_equal(nodes[1].t->stats.msgs_dropped, 3);
    sim_net_destroy(net);
}

/* A full queue drops (Raft retransmits) instead of growing; a big queue leaves as several
 * frames near CLUSTER_FRAME_BYTES_TARGET, all delivered. */
static void test_bounded_queue_and_split(void **state)
{
    (void)state;
    struct sim_net_options o = {.seed = 2, .delay_ms_min = 1, .delay_ms_max = 1};
    struct sim_net *net = make(&o);
    size_t ok = 0, full = 0;
    for (size_t i = 0; i < CLUSTER_QUEUE_MSGS_MAX + 10; i++) {
        struct wire_msg m = msg(0, 1, (int32_t)(i % 5000), (int64_t)i);
        int rc = transport_send(nodes[0].t, &m);
        assert_true(rc == 0 || rc == ERR_TOO_LARGE);
        rc == 0 ? ok++ : full++;
    }
    assert_int_equal(ok, CLUSTER_QUEUE_MSGS_MAX);
    assert_int_equal(full, 10);
    assert_int_equal(nodes[0].t->stats.msgs_dropped, 10);
    transport_flush(nodes[0].t);
    assert_true(nodes[0].t->stats.frames_sent > 1);
    assert_true(nodes[0].t->stats.bytes_sent / nodes[0].t->stats.frames_sent <=
                CLUSTER_FRAME_BYTES_TARGET);
    drain(net);
    assert_int_equal(nodes[1].msgs, CLUSTER_QUEUE_MSGS_MAX);
    assert_int_equal(nodes[1].frames, nodes[0].t->stats.frames_sent);
    assert_int_equal(nodes[1].inversions, 0);

    /* Appends of 400 KiB each: at most two to a frame. */
    static uint8_t big[400 * KIB];
    struct raft_batch shape = {.first_index = 1, .last_index = 1, .term = 3, .bytes = sizeof(big)};
    struct slice bytes = slice_make(big, sizeof(big));
    uint64_t frames = nodes[2].t->stats.frames_sent;
    for (int i = 0; i < 6; i++) {
        struct wire_msg app = msg(2, 3, i, 0);
        app.msg.type = RAFT_MSG_APPEND;
        app.msg.last_index = 1;
        app.msg.batches = &shape;
        app.msg.batch_count = 1;
        app.batch_bytes = &bytes;
        assert_int_equal(transport_send(nodes[2].t, &app), 0);
    }
    transport_flush(nodes[2].t);
    assert_int_equal(nodes[2].t->stats.frames_sent - frames, 3);
    drain(net);
    assert_int_equal(nodes[3].msgs, 6);
    sim_net_destroy(net);
}

/* Links report up, then down when cut or when the peer crashes, and up again. Frames in flight
 * on a cut link are lost even if it is restored before they are due; a crash loses frames to
 * the crashed node. */
static void test_links_cuts_crashes(void **state)
{
    (void)state;
    struct sim_net_options o = {.seed = 3, .delay_ms_min = 10, .delay_ms_max = 10};
    struct sim_net *net = make(&o);
    sim_net_advance(net, 0);
    for (int32_t a = 0; a < NODES; a++)
        for (int32_t b = 0; b < NODES; b++)
            assert_true(a == b || nodes[a].up[b]);

    struct wire_msg m = msg(0, 1, 0, 1);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    transport_flush(nodes[0].t);
    sim_net_block(net, 0, 1, true);
    sim_net_advance(net, 5);
    assert_false(nodes[0].up[1]);
    assert_true(nodes[1].up[0]); /* one-way */
    sim_net_block(net, 0, 1, false);
    sim_net_advance(net, 20);
    assert_true(nodes[0].up[1]);
    assert_int_equal(nodes[1].msgs, 0); /* lost with the cut */

    /* A partition {0} | {1, 2, 3}, then heal. */
    int32_t side[] = {0};
    sim_net_partition(net, side, 1);
    sim_net_advance(net, 21);
    assert_false(nodes[0].up[2]);
    assert_false(nodes[3].up[0]);
    assert_true(nodes[3].up[2]);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    transport_flush(nodes[0].t);
    sim_net_heal(net);
    drain(net);
    assert_int_equal(nodes[1].msgs, 0);

    /* Node 1 crashes with a frame on its way; it restarts empty; node 0 sees it go and come. */
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    transport_flush(nodes[0].t);
    sim_net_detach(net, 1);
    sim_net_advance(net, 25);
    assert_false(nodes[0].up[1]);
    assert_true(nodes[0].down_seen[1]);
    attach(net, 1);
    drain(net);
    assert_int_equal(nodes[1].msgs, 0);
    sim_net_advance(net, sim_net_now_ms(net) + 1);
    assert_true(nodes[0].up[1]);
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    transport_flush(nodes[0].t);
    drain(net);
    assert_int_equal(nodes[1].msgs, 1);

    struct sim_net_stats st;
    sim_net_stats(net, &st);
    assert_int_equal(st.frames_dropped, 3);
    sim_net_destroy(net);
}

/* One frame per iteration for 400 iterations with delays 1..50 ms: FIFO without reorder,
 * overtaking with it. */
static size_t inversions(bool reorder)
{
    struct sim_net_options o = {
        .seed = 4, .delay_ms_min = 1, .delay_ms_max = 50, .reorder = reorder};
    struct sim_net *net = make(&o);
    for (int64_t i = 0; i < 400; i++) {
        struct wire_msg m = msg(0, 1, 0, i);
        assert_int_equal(transport_send(nodes[0].t, &m), 0);
        transport_flush(nodes[0].t);
        sim_net_advance(net, (uint64_t)i);
    }
    drain(net);
    assert_int_equal(nodes[1].msgs, 400);
    size_t n = nodes[1].inversions;
    sim_net_destroy(net);
    return n;
}

static void test_fifo_unless_reorder(void **state)
{
    (void)state;
    assert_int_equal(inversions(false), 0);
    assert_true(inversions(true) > 10);
}

/* Drop everything, duplicate everything, and a 30% drop rate within reason. */
static void test_drop_duplicate(void **state)
{
    (void)state;
    struct sim_net_options o = {.seed = 5, .delay_ms_max = 3, .drop_ppm = 1000000};
    struct sim_net *net = make(&o);
    for (int64_t i = 0; i < 100; i++) {
        struct wire_msg m = msg(0, 1, 0, i);
        transport_send(nodes[0].t, &m);
        transport_flush(nodes[0].t);
    }
    drain(net);
    assert_int_equal(nodes[1].msgs, 0);

    o.drop_ppm = 0;
    o.duplicate_ppm = 1000000;
    assert_int_equal(sim_net_set_faults(net, &o), 0);
    for (int64_t i = 0; i < 100; i++) {
        struct wire_msg m = msg(0, 1, 0, i);
        transport_send(nodes[0].t, &m);
        transport_flush(nodes[0].t);
    }
    drain(net);
    assert_int_equal(nodes[1].msgs, 200);

    o.duplicate_ppm = 0;
    o.drop_ppm = 300000;
    assert_int_equal(sim_net_set_faults(net, &o), 0);
    for (int64_t i = 0; i < 1000; i++) {
        struct wire_msg m = msg(0, 2, 0, i);
        transport_send(nodes[0].t, &m);
        transport_flush(nodes[0].t);
    }
    drain(net);
    assert_true(nodes[2].msgs > 600 && nodes[2].msgs < 800);

    o.delay_ms_min = 2;
    o.delay_ms_max = 1;
    assert_int_equal(sim_net_set_faults(net, &o), ERR_INVALID);
    sim_net_destroy(net);
}

/* Every node sends to every other in random bursts under every fault; the delivery trace. */
static uint64_t chaos(uint64_t seed)
{
    struct sim_net_options o = {.seed = seed,
                                .delay_ms_min = 0,
                                .delay_ms_max = 20,
                                .drop_ppm = 100000,
                                .duplicate_ppm = 50000,
                                .reorder = true};
    struct sim_net *net = make(&o);
    struct rng rng;
    rng_seed(&rng, seed * 7 + 1);
    for (uint64_t now = 0; now < 500; now++) {
        for (int32_t a = 0; a < NODES; a++) {
            for (uint64_t k = rng_below(&rng, 4); k > 0; k--) {
                int32_t b = (int32_t)rng_below(&rng, NODES);
                if (b == a)
                    continue;
                struct wire_msg m = msg(a, b, (int32_t)rng_below(&rng, 8), (int64_t)now);
                transport_send(nodes[a].t, &m);
            }
            transport_flush(nodes[a].t);
        }
        if (now == 200) {
            int32_t side[] = {0, 1};
            sim_net_partition(net, side, 2);
        }
        if (now == 300)
            sim_net_heal(net);
        sim_net_advance(net, now);
    }
    drain(net);
    uint64_t h = 0;
    for (int32_t i = 0; i < NODES; i++)
        h = h * 31 + nodes[i].trace + nodes[i].msgs;
    sim_net_destroy(net);
    return h;
}

static void test_seed_replays(void **state)
{
    (void)state;
    uint64_t a = chaos(11), b = chaos(11), c = chaos(12);
    assert_int_equal(a, b);
    assert_true(a != c);
}

static struct wire_rpc rpc(int32_t from, int32_t to, int64_t corr, const void *p, size_t len)
{
    return (struct wire_rpc){.from = from,
                             .to = to,
                             .kind = WIRE_RPC_REQUEST,
                             .correlation_id = corr,
                             .api_key = 19, /* CreateTopics */
                             .api_version = 7,
                             .payload = slice_make(p, len)};
}

static int send_rpc(int32_t id, const struct wire_rpc *r)
{
    nodes[id].in_send = true;
    int rc = transport_send_rpc(nodes[id].t, r);
    nodes[id].in_send = false;
    return rc;
}

/* Node 1 sends requests to 2 and 3 and to itself in one iteration, beside a Raft message; 2 and
 * 3 answer from on_rpc. Catches: RPCs to self delivered inside send_rpc (re-entering the caller)
 * or never; a payload referenced instead of copied at send; an RPC frame that does not arrive
 * or arrives altered; RPCs crowding Raft messages out of the flush; answers sent from on_rpc
 * lost; unknown peers, foreign senders and malformed RPCs queued instead of refused; a missing
 * on_rpc crashing instead of dropping. */
static void test_rpc_three_nodes_and_self(void **state)
{
    (void)state;
    struct sim_net_options o = {.seed = 21, .delay_ms_min = 2, .delay_ms_max = 2};
    struct sim_net *net = make(&o);
    nodes[2].answer = nodes[3].answer = true;

    uint8_t body[100];
    memset(body, 0x11, sizeof(body));
    for (int32_t to = 1; to <= 3; to++) {
        struct wire_rpc r = rpc(1, to, 100 + to, body, sizeof(body));
        assert_int_equal(send_rpc(1, &r), 0);
    }
    memset(body, 0x22, sizeof(body)); /* the transport copied the payload */
    struct wire_msg m = msg(1, 2, 0, 7);
    assert_int_equal(transport_send(nodes[1].t, &m), 0);
    assert_int_equal(nodes[1].requests, 0); /* nothing before the flush, not even to self */

    transport_flush(nodes[1].t);
    assert_int_equal(nodes[1].requests, 1); /* to self: delivered by the flush */
    assert_int_equal(nodes[1].last_from, 1);
    /* To node 2 a Raft frame and an RPC frame; to node 3 an RPC frame. */
    assert_int_equal(nodes[1].t->stats.frames_sent, 3);
    assert_int_equal(nodes[1].t->stats.rpcs_queued, 3);

    sim_net_advance(net, 2);
    assert_int_equal(nodes[2].requests, 1);
    assert_int_equal(nodes[2].msgs, 1);
    assert_int_equal(nodes[3].requests, 1);
    assert_int_equal(nodes[2].last_from, 1);
    uint8_t want[100];
    memset(want, 0x11, sizeof(want));
    uint64_t h = hash_bytes(0, slice_make(want, sizeof(want)));
    assert_int_equal(nodes[2].payload_hash, h);
    assert_int_equal(nodes[1].payload_hash, h);

    /* The answers were sent from on_rpc; they leave with the peers' next flush. */
    transport_flush(nodes[2].t);
    transport_flush(nodes[3].t);
    drain(net);
    assert_int_equal(nodes[1].responses, 2);
    assert_int_equal(nodes[1].corr_sum, 102 + 103);
    assert_int_equal(nodes[1].last_error, 0);
    assert_int_equal(nodes[1].t->stats.rpcs_received, 3);

    /* Refusals: unknown peer, foreign sender, bad kind, a request with an error, too big. */
    struct wire_rpc bad = rpc(1, 9, 1, body, 1);
    assert_int_equal(send_rpc(1, &bad), ERR_NOT_FOUND);
    bad = rpc(2, 3, 1, body, 1);
    assert_int_equal(send_rpc(1, &bad), ERR_INVALID);
    bad = rpc(1, 2, 1, body, 1);
    bad.kind = 2;
    assert_int_equal(send_rpc(1, &bad), ERR_INVALID);
    bad = rpc(1, 2, 1, body, 1);
    bad.error = 41;
    assert_int_equal(send_rpc(1, &bad), ERR_INVALID);
    bad = rpc(1, 1, 1, body, CLUSTER_RPC_BYTES_MAX + 1); /* never read: refused by its length */
    assert_int_equal(send_rpc(1, &bad), ERR_TOO_LARGE);
    assert_int_equal(nodes[1].t->stats.rpcs_dropped, 5);

    /* A response carrying a transport error, and an empty payload, arrive as sent. */
    struct wire_rpc resp = rpc(1, 3, 55, NULL, 0);
    resp.kind = WIRE_RPC_RESPONSE;
    resp.error = 41; /* NOT_CONTROLLER */
    assert_int_equal(send_rpc(1, &resp), 0);
    transport_flush(nodes[1].t);
    drain(net);
    assert_int_equal(nodes[3].responses, 1);
    assert_int_equal(nodes[3].last_error, 41);

    /* A node whose handler has no on_rpc (the Raft host's) drops RPCs and counts them. */
    sim_net_detach(net, 0);
    struct transport *t0;
    struct transport_handler plain = {.on_raft = on_raft, .ctx = &nodes[0]};
    assert_int_equal(sim_net_attach(net, 0, &plain, &t0), 0);
    nodes[0].t = t0;
    struct wire_rpc to0 = rpc(1, 0, 1, body, 4);
    assert_int_equal(send_rpc(1, &to0), 0);
    struct wire_rpc self0 = rpc(0, 0, 1, body, 4);
    assert_int_equal(transport_send_rpc(t0, &self0), 0);
    transport_flush(nodes[1].t);
    transport_flush(t0);
    drain(net);
    assert_int_equal(t0->stats.rpcs_dropped, 2);
    assert_int_equal(t0->stats.rpcs_received, 0);
    assert_int_equal(t0->stats.frames_refused, 0);
    sim_net_destroy(net);
}

/* A node answering its own requests (the standalone controller) gets the answer in the same
 * flush; a handler that keeps sending itself RPCs cannot keep one flush going. Catches: a
 * standalone answer waiting a whole loop iteration for the next flush; a flush that loops for
 * ever on a self-sending handler; a nested flush from on_rpc delivering the same RPCs twice. */
static void test_rpc_self_rounds(void **state)
{
    (void)state;
    struct sim_net_options o = {.seed = 22};
    struct sim_net *net = make(&o);
    nodes[1].answer = true;
    struct wire_rpc r = rpc(1, 1, 9, "req", 3);
    assert_int_equal(send_rpc(1, &r), 0);
    transport_flush(nodes[1].t);
    assert_int_equal(nodes[1].requests, 1);
    assert_int_equal(nodes[1].responses, 1);
    assert_int_equal(nodes[1].corr_sum, 9);
    assert_int_equal(nodes[1].t->stats.frames_sent, 0); /* self never touches the network */

    nodes[1].answer = false;
    nodes[1].echo_self = true;
    assert_int_equal(send_rpc(1, &r), 0);
    transport_flush(nodes[1].t);
    assert_int_equal(nodes[1].requests, 1 + CLUSTER_SELF_RPC_ROUNDS_MAX);
    transport_flush(nodes[1].t); /* the rest waits for the next flush, round by round */
    assert_int_equal(nodes[1].requests, 1 + 2 * CLUSTER_SELF_RPC_ROUNDS_MAX);
    sim_net_destroy(net);
}

/* Per peer at most CLUSTER_QUEUE_RPCS_MAX RPCs and CLUSTER_QUEUE_RPC_BYTES_MAX payload bytes
 * wait, apart from the Raft queue; beyond, send_rpc refuses at once and counts. Catches: an
 * unbounded RPC queue (a dead controller growing memory); RPCs and Raft messages sharing one
 * bound so that either kind starves the other; the largest RPC not fitting a frame. */
static void test_rpc_queue_bounds(void **state)
{
    (void)state;
    struct sim_net_options o = {.seed = 23, .delay_ms_max = 1};
    struct sim_net *net = make(&o);
    for (size_t i = 0; i < CLUSTER_QUEUE_RPCS_MAX; i++) {
        struct wire_rpc r = rpc(0, 1, (int64_t)i, "x", 1);
        assert_int_equal(send_rpc(0, &r), 0);
    }
    struct wire_rpc r = rpc(0, 1, -1, "x", 1);
    assert_int_equal(send_rpc(0, &r), ERR_TOO_LARGE);
    r.to = 0; /* the self queue is bounded the same way */
    for (size_t i = 0; i < CLUSTER_QUEUE_RPCS_MAX; i++)
        assert_int_equal(send_rpc(0, &r), 0);
    assert_int_equal(send_rpc(0, &r), ERR_TOO_LARGE);
    struct wire_msg m = msg(0, 1, 0, 1); /* the Raft queue is not full */
    assert_int_equal(transport_send(nodes[0].t, &m), 0);
    assert_int_equal(nodes[0].t->stats.rpcs_dropped, 2);
    transport_flush(nodes[0].t);
    drain(net);
    assert_int_equal(nodes[1].requests, CLUSTER_QUEUE_RPCS_MAX);
    assert_int_equal(nodes[0].requests, CLUSTER_QUEUE_RPCS_MAX);
    assert_int_equal(nodes[1].msgs, 1);

    /* Bytes: four of the largest RPCs fill the queue; each leaves in a frame of its own. */
    uint8_t *big = calloc(1, CLUSTER_RPC_BYTES_MAX);
    assert_non_null(big);
    size_t fit = CLUSTER_QUEUE_RPC_BYTES_MAX / CLUSTER_RPC_BYTES_MAX;
    for (size_t i = 0; i < fit; i++) {
        struct wire_rpc b = rpc(2, 3, (int64_t)i, big, CLUSTER_RPC_BYTES_MAX);
        assert_int_equal(send_rpc(2, &b), 0);
    }
    struct wire_rpc b = rpc(2, 3, 99, big, 1);
    assert_int_equal(send_rpc(2, &b), ERR_TOO_LARGE);
    free(big);
    transport_flush(nodes[2].t);
    assert_int_equal(nodes[2].t->stats.frames_sent, fit);
    drain(net);
    assert_int_equal(nodes[3].requests, fit);
    assert_int_equal(nodes[3].t->stats.frames_refused, 0);
    sim_net_destroy(net);
}

/* Drop, duplicate and cuts apply to RPC frames as to Raft frames. Catches: RPCs bypassing the
 * simulated faults (tests above the transport would then never see a lost request). */
static void test_rpc_faults(void **state)
{
    (void)state;
    struct sim_net_options o = {.seed = 24, .delay_ms_max = 3, .drop_ppm = 1000000};
    struct sim_net *net = make(&o);
    for (int64_t i = 0; i < 50; i++) {
        struct wire_rpc r = rpc(0, 1, i, "q", 1);
        assert_int_equal(send_rpc(0, &r), 0);
        transport_flush(nodes[0].t);
    }
    drain(net);
    assert_int_equal(nodes[1].requests, 0);

    o.drop_ppm = 0;
    o.duplicate_ppm = 1000000;
    assert_int_equal(sim_net_set_faults(net, &o), 0);
    for (int64_t i = 0; i < 50; i++) {
        struct wire_rpc r = rpc(0, 1, i, "q", 1);
        assert_int_equal(send_rpc(0, &r), 0);
        transport_flush(nodes[0].t);
    }
    drain(net);
    assert_int_equal(nodes[1].requests, 100);

    o.duplicate_ppm = 0;
    assert_int_equal(sim_net_set_faults(net, &o), 0);
    struct wire_rpc r = rpc(0, 2, 1, "q", 1);
    assert_int_equal(send_rpc(0, &r), 0);
    transport_flush(nodes[0].t);
    sim_net_block(net, 0, 2, true);
    drain(net);
    assert_int_equal(nodes[2].requests, 0);
    sim_net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_frame_per_flush),
        cmocka_unit_test(test_bounded_queue_and_split),
        cmocka_unit_test(test_links_cuts_crashes),
        cmocka_unit_test(test_fifo_unless_reorder),
        cmocka_unit_test(test_drop_duplicate),
        cmocka_unit_test(test_seed_replays),
        cmocka_unit_test(test_rpc_three_nodes_and_self),
        cmocka_unit_test(test_rpc_self_rounds),
        cmocka_unit_test(test_rpc_queue_bounds),
        cmocka_unit_test(test_rpc_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
