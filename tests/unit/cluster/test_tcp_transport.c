/*
 * The TCP cluster transport on a real loop over loopback (two or more transports in one
 * process): messages queued while the connection is set up leave as one frame after the hello;
 * both directions work; each kind of stranger is refused with its reason; a dead peer is
 * reported down and messages to it are dropped, not kept; a Kafka client on the cluster port is
 * disconnected. Controller RPCs travel both ways beside Raft messages and to self. A node created
 * without a cluster id learns it from the first admitted node that knows it, once, and is then
 * as strict as any member.
 */
#include "base/clock.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "cluster/tcp_transport.h"
#include "net/loop_epoll.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define NODES 8

struct node {
    int32_t id;
    struct tcp_transport *tt;
    struct transport *t;
    size_t frames, msgs;
    int64_t index_sum;
    size_t batch_len;
    uint8_t batch_byte;
    bool up[NODES];
    size_t downs[NODES];
    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    /* RPCs */
    size_t requests, responses;
    int64_t corr_sum;
    size_t payload_len;
    uint8_t payload_byte;
    int32_t last_from;
    bool answer;
    /* cluster id learning */
    size_t ids_learnt;
    char learnt[CLUSTER_ID_BYTES_MAX + 1];
    uint64_t learnt_seq, up_seq[NODES];
};

static uint64_t events; /* orders the callbacks */

static struct loop_epoll lp;
static struct node nodes[NODES];

static void on_raft(void *ctx, const struct wire_raft *f)
{
    struct node *n = ctx;
    n->frames++;
    for (size_t i = 0; i < f->count; i++) {
        n->msgs++;
        n->index_sum += f->msgs[i].msg.index;
        if (f->msgs[i].msg.batch_count > 0) {
            n->batch_len = f->msgs[i].batch_bytes[0].len;
            n->batch_byte = f->msgs[i].batch_bytes[0].ptr[0];
        }
    }
}

static void on_rpc(void *ctx, const struct wire_rpc *r)
{
    struct node *n = ctx;
    assert_int_equal(r->to, n->id);
    n->last_from = r->from;
    n->payload_len = r->payload.len;
    n->payload_byte = r->payload.len > 0 ? r->payload.ptr[r->payload.len - 1] : 0;
    if (r->kind == WIRE_RPC_RESPONSE) {
        n->responses++;
        n->corr_sum += r->correlation_id;
        return;
    }
    n->requests++;
    if (n->answer) {
        struct wire_rpc resp = *r;
        resp.from = n->id;
        resp.to = r->from;
        resp.kind = WIRE_RPC_RESPONSE;
        assert_int_equal(transport_send_rpc(n->t, &resp), 0);
    }
}

static void on_cluster_id(void *ctx, const char *id)
{
    struct node *n = ctx;
    n->ids_learnt++;
    n->learnt_seq = ++events;
    snprintf(n->learnt, sizeof(n->learnt), "%s", id);
}

static void on_up(void *ctx, int32_t peer)
{
    struct node *n = ctx;
    n->up[peer] = true;
    n->up_seq[peer] = ++events;
}

static void on_down(void *ctx, int32_t peer, int err, const char *reason)
{
    struct node *n = ctx;
    assert_true(err < 0);
    n->up[peer] = false;
    n->downs[peer]++;
    snprintf(n->reason, sizeof(n->reason), "%s", reason);
}

/* learn_from >= 0: a new node that learns its cluster id from that node only. */
static void start_learning(int32_t id, const char *cluster_id, int32_t learn_from)
{
    struct node *n = &nodes[id];
    memset(n, 0, sizeof(*n));
    n->id = id;
    struct tcp_transport_config cfg = {
        .self = id,
        .cluster_id = cluster_id,
        .listen_host = "127.0.0.1",
        .advertised_host = "127.0.0.1",
        .learn_only_from_set = learn_from >= 0,
        .learn_only_from = learn_from,
    };
    struct transport_handler h = {.on_raft = on_raft,
                                  .on_rpc = on_rpc,
                                  .on_cluster_id = on_cluster_id,
                                  .on_peer_up = on_up,
                                  .on_peer_down = on_down,
                                  .ctx = n};
    assert_int_equal(tcp_transport_create(&lp.loop, &cfg, &h, &n->tt), 0);
    n->t = tcp_transport_base(n->tt);
}

static void start(int32_t id, const char *cluster_id)
{
    start_learning(id, cluster_id, -1);
}

static void know(int32_t a, int32_t b)
{
    assert_int_equal(
        transport_peer_set(nodes[a].t, b, "127.0.0.1", tcp_transport_port(nodes[b].tt)), 0);
}

/* One loop iteration as the host runs it: events, then flush every transport. */
static void iterate(void)
{
    assert_int_equal(loop_run_once(&lp.loop, 5), 0);
    for (int i = 0; i < NODES; i++) {
        if (nodes[i].tt != NULL)
            transport_flush(nodes[i].t);
    }
}

#define RUN_UNTIL(cond)                                        \
    do {                                                       \
        uint64_t until_ = clock_mono_ms(clock_real()) + 5000;  \
        while (!(cond)) {                                      \
            assert_true(clock_mono_ms(clock_real()) < until_); \
            iterate();                                         \
        }                                                      \
    } while (0)

static int setup(void **state)
{
    (void)state;
    memset(nodes, 0, sizeof(nodes));
    return loop_epoll_init(&lp, clock_real());
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NODES; i++) {
        if (nodes[i].tt != NULL)
            tcp_transport_destroy(nodes[i].tt);
        nodes[i].tt = NULL;
    }
    loop_epoll_deinit(&lp);
    return 0;
}

static struct wire_msg msg(int32_t from, int32_t to, int32_t partition, int64_t index)
{
    struct wire_msg w = {0};
    w.group.topic_id.bytes[3] = 5;
    w.group.partition = partition;
    w.msg = (struct raft_msg){.type = RAFT_MSG_APPEND_RESP,
                              .from = from,
                              .to = to,
                              .term = 2,
                              .index = index,
                              .hint_index = -1};
    return w;
}

static void test_loopback_both_ways(void **state)
{
    (void)state;
    start(1, "cluster-A");
    start(2, "cluster-A");
    know(1, 2);
    know(2, 1);

    static uint8_t data[3000];
    memset(data, 0x5c, sizeof(data));
    struct raft_batch shape = {.first_index = 1, .last_index = 9, .term = 2, .bytes = sizeof(data)};
    struct slice bytes = slice_make(data, sizeof(data));
    struct wire_msg app = msg(1, 2, 0, 0);
    app.msg.type = RAFT_MSG_APPEND;
    app.msg.last_index = 9;
    app.msg.batches = &shape;
    app.msg.batch_count = 1;
    app.batch_bytes = &bytes;
    assert_int_equal(transport_send(nodes[1].t, &app), 0);
    for (int64_t i = 1; i < 100; i++) {
        struct wire_msg m = msg(1, 2, (int32_t)i, i);
        assert_int_equal(transport_send(nodes[1].t, &m), 0);
    }
    struct wire_msg back = msg(2, 1, 0, 42);
    assert_int_equal(transport_send(nodes[2].t, &back), 0);

    RUN_UNTIL(nodes[2].msgs == 100 && nodes[1].msgs == 1);
    /* Everything queued while connecting left as one frame once the hello was accepted. */
    assert_int_equal(nodes[1].t->stats.frames_sent, 1);
    assert_int_equal(nodes[2].frames, 1);
    assert_int_equal(nodes[2].index_sum, 99 * 100 / 2);
    assert_int_equal(nodes[2].batch_len, sizeof(data));
    assert_int_equal(nodes[2].batch_byte, 0x5c);
    assert_int_equal(nodes[1].index_sum, 42);
    assert_true(nodes[1].up[2]);
    assert_true(nodes[2].up[1]);

    /* Later iterations: one frame each. */
    for (int64_t i = 0; i < 10; i++) {
        struct wire_msg m = msg(1, 2, (int32_t)i, 1000);
        assert_int_equal(transport_send(nodes[1].t, &m), 0);
    }
    transport_flush(nodes[1].t);
    assert_int_equal(nodes[1].t->stats.frames_sent, 2);
    RUN_UNTIL(nodes[2].msgs == 110);
    assert_int_equal(nodes[2].t->stats.frames_refused, 0);
}

/* Bug caught: what was queued while the connection was being set up waited for the host's next
 * flush (the broker flushes only when it has work, so up to a Raft tick later). Two followers
 * that never talked before an election met that delay on the pre-vote and its answer, both
 * campaigned in the same term and split the vote: a failover took a second election timeout.
 * The host here flushes once, right after sending, as the broker does. */
static void test_queued_while_connecting_leaves_without_another_flush(void **state)
{
    (void)state;
    start(1, "cluster-A");
    start(2, "cluster-A");
    know(1, 2);
    know(2, 1);
    struct wire_msg m = msg(1, 2, 0, 7);
    assert_int_equal(transport_send(nodes[1].t, &m), 0);
    transport_flush(nodes[1].t);
    uint64_t until = clock_mono_ms(clock_real()) + 5000;
    while (nodes[2].msgs == 0) {
        assert_true(clock_mono_ms(clock_real()) < until);
        assert_int_equal(loop_run_once(&lp.loop, 5), 0); /* no flush */
    }
    assert_int_equal(nodes[2].index_sum, 7);
    assert_int_equal(nodes[1].t->stats.frames_sent, 1);
}

/* Another cluster, an unknown node, a hello meant for another node: each refused, with a reason
 * the dialler reports, and nothing delivered. */
static void test_strangers_refused(void **state)
{
    (void)state;
    start(2, "cluster-A");
    start(3, "cluster-B");
    start(4, "cluster-A");
    start(5, "cluster-A");
    know(2, 5);
    know(3, 2);
    know(4, 2);
    /* Node 5's address book says node 6 lives at node 2's port. */
    assert_int_equal(
        transport_peer_set(nodes[5].t, 6, "127.0.0.1", tcp_transport_port(nodes[2].tt)), 0);

    struct wire_msg m3 = msg(3, 2, 0, 1), m4 = msg(4, 2, 0, 1), m5 = msg(5, 6, 0, 1);
    assert_int_equal(transport_send(nodes[3].t, &m3), 0);
    assert_int_equal(transport_send(nodes[4].t, &m4), 0);
    assert_int_equal(transport_send(nodes[5].t, &m5), 0);

    RUN_UNTIL(nodes[3].downs[2] == 1 && nodes[4].downs[2] == 1 && nodes[5].downs[6] == 1);
    assert_non_null(strstr(nodes[3].reason, "cluster-B"));
    assert_non_null(strstr(nodes[3].reason, "error 104"));
    assert_non_null(strstr(nodes[4].reason, "not a known member"));
    assert_non_null(strstr(nodes[4].reason, "error 102"));
    assert_non_null(strstr(nodes[5].reason, "this is node 2"));
    assert_non_null(strstr(nodes[5].reason, "error 94"));
    assert_int_equal(nodes[2].msgs, 0);
    assert_int_equal(nodes[2].t->stats.frames_refused, 3);
    assert_false(nodes[3].up[2]);

    /* In backoff, sends are dropped at once rather than queued. */
    assert_int_equal(transport_send(nodes[3].t, &m3), ERR_CLOSED);
}

/* A peer nobody listens for: reported down; messages dropped, never piling up; a later send
 * after the backoff dials again. */
static void test_dead_peer(void **state)
{
    (void)state;
    start(1, "cluster-A");
    start(7, "cluster-A");
    uint16_t dead_port = tcp_transport_port(nodes[7].tt);
    tcp_transport_destroy(nodes[7].tt);
    nodes[7].tt = NULL;
    assert_int_equal(transport_peer_set(nodes[1].t, 7, "127.0.0.1", dead_port), 0);

    struct wire_msg m = msg(1, 7, 0, 1);
    assert_int_equal(transport_send(nodes[1].t, &m), 0);
    RUN_UNTIL(nodes[1].downs[7] == 1);
    assert_non_null(strstr(nodes[1].reason, "connect"));
    assert_true(nodes[1].t->stats.msgs_dropped >= 1);
    assert_int_equal(nodes[1].t->stats.frames_sent, 0);

    /* After the backoff the next send dials again (and fails again). */
    uint64_t until = clock_mono_ms(clock_real()) + CLUSTER_REDIAL_MS_MIN * 4;
    while (clock_mono_ms(clock_real()) < until)
        iterate();
    assert_int_equal(transport_send(nodes[1].t, &m), 0);
    RUN_UNTIL(nodes[1].downs[7] == 2);
}

/* A Kafka client that dials the cluster port is disconnected without an answer. */
static void test_kafka_client_disconnected(void **state)
{
    (void)state;
    start(2, "cluster-A");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons(tcp_transport_port(nodes[2].tt))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    /* ApiVersions v0: size, api key 18, version 0, correlation 1, client id "x". */
    static const uint8_t req[] = {0, 0, 0, 11, 0, 18, 0, 0, 0, 0, 0, 1, 0, 1, 'x'};
    assert_int_equal(write(fd, req, sizeof(req)), sizeof(req));
    uint8_t b;
    ssize_t n = -1;
    uint64_t until = clock_mono_ms(clock_real()) + 5000;
    while (clock_mono_ms(clock_real()) < until) {
        iterate();
        n = recv(fd, &b, 1, MSG_DONTWAIT);
        if (n >= 0)
            break;
    }
    assert_int_equal(n, 0); /* closed, nothing written */
    close(fd);
}

/* A peer that accepts the hello and then never reads: the socket's unsent output stops growing
 * near CLUSTER_QUEUE_BYTES_MAX, later messages are dropped and counted, and the loop runs on. */
static void test_stalled_peer_bounded(void **state)
{
    (void)state;
    start(1, "cluster-A");
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    assert_int_equal(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    socklen_t alen = sizeof(addr);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);
    assert_int_equal(transport_peer_set(nodes[1].t, 3, "127.0.0.1", ntohs(addr.sin_port)), 0);

    static uint8_t data[RAFT_MSG_BYTES_MAX];
    struct raft_batch shape = {.first_index = 1, .last_index = 1, .term = 2, .bytes = sizeof(data)};
    struct slice bytes = slice_make(data, sizeof(data));
    struct wire_msg app = msg(1, 3, 0, 0);
    app.msg.type = RAFT_MSG_APPEND;
    app.msg.last_index = 1;
    app.msg.batches = &shape;
    app.msg.batch_count = 1;
    app.batch_bytes = &bytes;
    assert_int_equal(transport_send(nodes[1].t, &app), 0);

    /* Play node 3: read the hello, accept it, then read nothing more. */
    int fd = -1;
    while (fd < 0) {
        iterate();
        fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    }
    uint8_t hello[512];
    size_t got = 0;
    while (got < 4 || got < 4 + be32_load(hello)) {
        iterate();
        ssize_t n = recv(fd, hello + got, sizeof(hello) - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
    }
    struct wire_hello_answer ans = {
        .error_code = WIRE_HELLO_OK, .cluster_id = "cluster-A", .node_id = 3, .version = 0};
    struct buf b;
    buf_init(&b);
    assert_int_equal(wire_hello_answer_frame(&ans, 0, &b), 0);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    buf_deinit(&b);
    RUN_UNTIL(nodes[1].up[3]);

    /* 1 MiB a loop iteration for 150 iterations: far more than the bound. */
    for (int i = 0; i < 150; i++) {
        transport_send(nodes[1].t, &app);
        iterate();
    }
    const struct transport_stats *st = &nodes[1].t->stats;
    assert_true(st->msgs_dropped > 0);
    assert_true(st->bytes_sent <= CLUSTER_QUEUE_BYTES_MAX + 16u * MIB);
    assert_true(nodes[1].up[3]);
    close(fd);
    close(lfd);
}

static struct wire_rpc rpc(int32_t from, int32_t to, int64_t corr, const uint8_t *p, size_t len)
{
    return (struct wire_rpc){.from = from,
                             .to = to,
                             .kind = WIRE_RPC_REQUEST,
                             .correlation_id = corr,
                             .api_key = 19,
                             .api_version = 7,
                             .payload = slice_make(p, len)};
}

/* Requests from node 1 to node 2 (and to itself) queued in the same iteration as Raft messages
 * leave in the same flush, a RaftMessages frame then a ClusterRpc frame; node 2 answers from
 * on_rpc on its own connection. Catches: RPC frames refused by the receiver as "not Raft" (the
 * connection dropped); RPCs waiting for a later flush or crowding out Raft messages; answers
 * lost on the way back; a self RPC dialling the node itself instead of being delivered by the
 * flush; an RPC to an unknown node queued instead of refused. */
static void test_rpc_loopback_both_ways(void **state)
{
    (void)state;
    start(1, "cluster-A");
    start(2, "cluster-A");
    know(1, 2);
    know(2, 1);
    nodes[2].answer = true;

    static uint8_t body[200000]; /* more than one read */
    memset(body, 0x3d, sizeof(body));
    for (int64_t i = 0; i < 5; i++) {
        struct wire_msg m = msg(1, 2, (int32_t)i, i);
        assert_int_equal(transport_send(nodes[1].t, &m), 0);
        struct wire_rpc r = rpc(1, 2, 10 + i, body, sizeof(body));
        assert_int_equal(transport_send_rpc(nodes[1].t, &r), 0);
    }
    memset(body, 0, sizeof(body));
    struct wire_rpc self = rpc(1, 1, 99, (const uint8_t *)"me", 2);
    assert_int_equal(transport_send_rpc(nodes[1].t, &self), 0);
    struct wire_rpc nobody = rpc(1, 6, 1, body, 1);
    assert_int_equal(transport_send_rpc(nodes[1].t, &nobody), ERR_NOT_FOUND);
    assert_int_equal(nodes[1].requests, 0);
    transport_flush(nodes[1].t);
    assert_int_equal(nodes[1].requests, 1); /* to self, by the flush, before any connection */
    assert_int_equal(nodes[1].last_from, 1);

    RUN_UNTIL(nodes[2].requests == 5 && nodes[1].responses == 5);
    /* Everything queued while connecting left in one flush: one frame of each kind. */
    assert_int_equal(nodes[1].t->stats.frames_sent, 2);
    assert_int_equal(nodes[2].msgs, 5);
    assert_int_equal(nodes[2].frames, 1);
    assert_int_equal(nodes[2].payload_len, sizeof(body));
    assert_int_equal(nodes[2].payload_byte, 0x3d);
    assert_int_equal(nodes[1].corr_sum, 10 + 11 + 12 + 13 + 14);
    assert_int_equal(nodes[1].last_from, 2);
    assert_int_equal(nodes[1].t->stats.rpcs_received, 6);
    assert_int_equal(nodes[2].t->stats.frames_refused, 0);
    assert_int_equal(nodes[1].t->stats.frames_refused, 0);
    assert_int_equal(nodes[1].t->stats.rpcs_dropped, 1);
    assert_true(nodes[1].up[2] && nodes[2].up[1]);
}

/* Node 2 starts without a cluster id and learns it from node 1, once, before the matching
 * peer up; node 1 then reaches node 2 as any member; node 3 of another cluster is refused by
 * both. Catches: a member refusing a new node (the cluster could not grow); the id not learnt,
 * learnt twice or after on_peer_up (the host would act on a link before knowing its cluster);
 * a joiner that keeps accepting any cluster once it has an id. */
static void test_cluster_id_learnt(void **state)
{
    (void)state;
    start(1, "cluster-A");
    start(2, NULL);
    start(3, "cluster-B");
    assert_null(tcp_transport_cluster_id(nodes[2].tt));
    assert_string_equal(tcp_transport_cluster_id(nodes[1].tt), "cluster-A");
    know(1, 2);
    know(2, 1);
    know(3, 1);
    know(3, 2);

    struct wire_msg m = msg(2, 1, 0, 5);
    assert_int_equal(transport_send(nodes[2].t, &m), 0);
    struct wire_rpc r = rpc(2, 1, 7, (const uint8_t *)"join", 4);
    assert_int_equal(transport_send_rpc(nodes[2].t, &r), 0);
    RUN_UNTIL(nodes[1].msgs == 1 && nodes[1].requests == 1);
    assert_int_equal(nodes[2].ids_learnt, 1);
    assert_string_equal(nodes[2].learnt, "cluster-A");
    assert_string_equal(tcp_transport_cluster_id(nodes[2].tt), "cluster-A");
    assert_true(nodes[2].up[1]);
    assert_true(nodes[2].learnt_seq < nodes[2].up_seq[1]);

    struct wire_msg back = msg(1, 2, 0, 6);
    assert_int_equal(transport_send(nodes[1].t, &back), 0);
    RUN_UNTIL(nodes[2].msgs == 1);
    assert_int_equal(nodes[2].ids_learnt, 1);
    assert_int_equal(nodes[1].ids_learnt, 0);

    struct wire_msg m31 = msg(3, 1, 0, 1), m32 = msg(3, 2, 0, 1);
    assert_int_equal(transport_send(nodes[3].t, &m31), 0);
    assert_int_equal(transport_send(nodes[3].t, &m32), 0);
    RUN_UNTIL(nodes[3].downs[1] == 1 && nodes[3].downs[2] == 1);
    assert_non_null(strstr(nodes[3].reason, "error 104"));
    assert_int_equal(nodes[1].msgs, 1);
    assert_int_equal(nodes[2].msgs, 1);
    assert_int_equal(nodes[3].ids_learnt, 0);
    assert_string_equal(tcp_transport_cluster_id(nodes[2].tt), "cluster-A");
}

/* A new node learns the id from an inbound hello of a node it admits, but never from one it
 * does not admit, and two new nodes refuse each other. Catches: a joiner adopting the id of any
 * node that dials it (a stranger could capture a new node into its cluster); two nodes with no
 * id exchanging Raft messages before either knows its cluster. */
static void test_cluster_id_only_from_admitted(void **state)
{
    (void)state;
    start(1, "cluster-A");
    start(4, NULL);
    start(5, "cluster-B");
    start(6, NULL);
    know(5, 4); /* node 4 does not know node 5 and has no admit fn */
    struct wire_msg m = msg(5, 4, 0, 1);
    assert_int_equal(transport_send(nodes[5].t, &m), 0);
    RUN_UNTIL(nodes[5].downs[4] == 1);
    assert_non_null(strstr(nodes[5].reason, "error 102"));
    assert_null(tcp_transport_cluster_id(nodes[4].tt));
    assert_int_equal(nodes[4].ids_learnt, 0);

    know(6, 4);
    know(4, 6);
    struct wire_msg m64 = msg(6, 4, 0, 1);
    assert_int_equal(transport_send(nodes[6].t, &m64), 0);
    RUN_UNTIL(nodes[6].downs[4] == 1);
    assert_non_null(strstr(nodes[6].reason, "knows the cluster id"));
    assert_int_equal(nodes[4].msgs, 0);
    assert_null(tcp_transport_cluster_id(nodes[6].tt));

    /* Node 1, a member node 4 knows, dials it: node 4 accepts and learns the id from the hello. */
    know(1, 4);
    know(4, 1);
    struct wire_msg m14 = msg(1, 4, 0, 3);
    assert_int_equal(transport_send(nodes[1].t, &m14), 0);
    RUN_UNTIL(nodes[4].msgs == 1);
    assert_int_equal(nodes[4].ids_learnt, 1);
    assert_string_equal(tcp_transport_cluster_id(nodes[4].tt), "cluster-A");
    struct wire_msg m41 = msg(4, 1, 0, 3);
    assert_int_equal(transport_send(nodes[4].t, &m41), 0);
    RUN_UNTIL(nodes[1].msgs == 1);
    assert_int_equal(nodes[4].ids_learnt, 1);
    assert_true(nodes[4].up[1]);

    /* Now a member, node 4 refuses node 5's cluster even from a node it admits. */
    know(4, 5);
    struct wire_msg m45 = msg(4, 5, 0, 1);
    assert_int_equal(transport_send(nodes[4].t, &m45), 0);
    RUN_UNTIL(nodes[4].downs[5] == 1);
    assert_non_null(strstr(nodes[4].reason, "error 104"));
    assert_string_equal(tcp_transport_cluster_id(nodes[4].tt), "cluster-A");
}

/* Bug caught: a new node adopting the cluster id of whichever node reaches it first - a node
 * started with another cluster's data directory - and then mixing that cluster's Raft messages
 * into its own; it must learn from the cluster's first voter only and link to nobody before. */
static void test_cluster_id_only_from_first_voter(void **state)
{
    (void)state;
    start(1, "cluster-A");
    start_learning(4, NULL, 1);
    start(3, "cluster-B");
    know(3, 4);
    know(4, 3);
    know(4, 1);
    know(1, 4);
    /* The stranger dials first: refused, no id learnt, nothing delivered. */
    struct wire_msg m34 = msg(3, 4, 0, 1);
    assert_int_equal(transport_send(nodes[3].t, &m34), 0);
    RUN_UNTIL(nodes[3].downs[4] == 1);
    assert_non_null(strstr(nodes[3].reason, "has not learnt its cluster id from node 1"));
    assert_int_equal(nodes[4].ids_learnt, 0);
    assert_int_equal(nodes[4].msgs, 0);
    /* Node 4 dials the stranger: its answer names cluster-B, which node 4 does not adopt. */
    struct wire_msg m43 = msg(4, 3, 0, 1);
    assert_int_equal(transport_send(nodes[4].t, &m43), 0);
    RUN_UNTIL(nodes[4].downs[3] == 1);
    assert_non_null(strstr(nodes[4].reason, "learns its cluster id from node 1 only"));
    assert_null(tcp_transport_cluster_id(nodes[4].tt));
    /* The first voter: learnt. */
    struct wire_msg m41 = msg(4, 1, 0, 3);
    assert_int_equal(transport_send(nodes[4].t, &m41), 0);
    RUN_UNTIL(nodes[1].msgs == 1);
    assert_int_equal(nodes[4].ids_learnt, 1);
    assert_string_equal(tcp_transport_cluster_id(nodes[4].tt), "cluster-A");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_loopback_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_while_connecting_leaves_without_another_flush,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_strangers_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_client_disconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_peer_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpc_loopback_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_id_learnt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_id_only_from_admitted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_id_only_from_first_voter, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
