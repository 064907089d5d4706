/*
 * The TCP cluster transport (see tcp_transport.h).
 *
 * Outbound, per peer: IDLE (no socket) -> CONNECTING (non-blocking connect) -> HELLO (hello
 * sent, waiting for the answer) -> READY (what was queued meanwhile leaves at once); any failure
 * -> BACKOFF (socket closed, queue dropped, timer running) -> IDLE. Inbound, per accepted socket:
 * waiting for the hello, then reading RaftMessages and ClusterRpc frames; a refusal is written
 * and the socket closed once it is out.
 *
 * Invariant: cluster_id is "" until learnt (or given at creation), then never changes; every
 * accepted hello and every accepted answer agreed with it as it was at that moment.
 *
 * Handler callbacks run only from fd and timer callbacks, never inside a transport op: a failure
 * found inside send() or flush() is reported by a zero-delay timer.
 */
#include "cluster/tcp_transport.h"

#include "base/alloc.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum peer_state { PEER_IDLE, PEER_CONNECTING, PEER_HELLO, PEER_READY, PEER_BACKOFF };

struct tcp_transport;

/* A socket with buffered input and output. */
struct conn {
    struct tcp_transport *tt;
    struct loop_fd watch;
    struct buf in;
    struct buf out;
    size_t out_sent;
};

struct peer {
    struct conn c; /* first: the fd callback's ctx */
    int32_t id;
    char host[CLUSTER_HOST_BYTES_MAX];
    uint16_t port;
    uint8_t state;
    bool down_pending;
    int down_err;
    char down_reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    uint32_t backoff_ms;
    int32_t correlation;
    struct loop_timer timer;
    struct tqueue queue;
};

struct inbound {
    struct conn c;
    struct inbound *prev, *next;
    bool accepted; /* the hello was accepted */
    bool closing;  /* a refusal is being written */
    int32_t peer;  /* after the hello */
    struct loop_timer hello_timer;
};

struct tcp_transport {
    struct transport t; /* first */
    struct loop *loop;
    char cluster_id[CLUSTER_ID_BYTES_MAX + 1];
    char adv_host[CLUSTER_HOST_BYTES_MAX];
    uint16_t adv_port;
    uint16_t port;
    tcp_admit_fn admit;
    void *admit_ctx;
    bool learn_only_from_set;
    int32_t learn_only_from;
    int32_t voter_ids[RAFT_VOTERS_MAX]; /* ascending: sent in every hello, checked in others' */
    uint32_t voter_count;
    struct loop_fd listen_watch;
    struct peer **peers;
    size_t peer_count;
    struct inbound *inbound;
    size_t inbound_count;
    struct arena scratch; /* encoding */
    struct arena decode;
    struct buf frame;
    struct tself self_rpcs;
};

/* ---- connections --------------------------------------------------------------------------- */

static void conn_init(struct conn *c, struct tcp_transport *tt, int fd, loop_fd_fn fn, void *ctx)
{
    c->tt = tt;
    loop_fd_init(&c->watch, fd, fn, ctx);
    buf_init(&c->in);
    buf_init(&c->out);
    c->out_sent = 0;
}

static void conn_close(struct conn *c)
{
    if (c->watch.fd >= 0) {
        loop_fd_stop(c->tt->loop, &c->watch);
        close(c->watch.fd);
        c->watch.fd = -1;
    }
    buf_deinit(&c->in);
    buf_deinit(&c->out);
    c->out_sent = 0;
}

static size_t conn_unsent(const struct conn *c)
{
    return c->out.len - c->out_sent;
}

/* Writes what the socket takes; keeps LOOP_WRITE interest while output remains. 0 or -errno. */
static int conn_write(struct conn *c)
{
    while (conn_unsent(c) > 0) {
        ssize_t n = send(c->watch.fd, c->out.data + c->out_sent, conn_unsent(c), MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            return -errno;
        c->out_sent += (size_t)n;
    }
    if (conn_unsent(c) == 0) {
        buf_reset(&c->out);
        c->out_sent = 0;
    }
    return loop_fd_update(c->tt->loop, &c->watch,
                          LOOP_READ | (conn_unsent(c) > 0 ? LOOP_WRITE : 0));
}

/* Reads what is available, at most NET_READ_WAKEUP_BYTES_MAX. 0, ERR_CLOSED at end of stream,
 * or -errno. */
static int conn_read(struct conn *c)
{
    size_t got = 0;

    while (got < NET_READ_WAKEUP_BYTES_MAX) {
        buf_reserve(&c->in, NET_READ_CHUNK_BYTES);
        ssize_t n = read(c->watch.fd, c->in.data + c->in.len, NET_READ_CHUNK_BYTES);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return -errno;
        if (n == 0)
            return ERR_CLOSED;
        c->in.len += (size_t)n;
        got += (size_t)n;
    }
    return 0;
}

/* The next whole frame in c->in (after its size prefix), or 0 if none yet; ERR_TOO_LARGE for a
 * frame over CLUSTER_FRAME_BYTES_MAX. *used is the bytes to consume after handling it. */
static int conn_frame(struct conn *c, size_t at, struct slice *frame, size_t *used)
{
    if (c->in.len - at < WIRE_FRAME_PREFIX_BYTES)
        return 0;
    uint32_t len = be32_load(c->in.data + at);
    if (len > CLUSTER_FRAME_BYTES_MAX)
        return ERR_TOO_LARGE;
    if (c->in.len - at - WIRE_FRAME_PREFIX_BYTES < len)
        return 0;
    *frame = slice_make(c->in.data + at + WIRE_FRAME_PREFIX_BYTES, len);
    *used = WIRE_FRAME_PREFIX_BYTES + len;
    return 1;
}

static void conn_consume(struct conn *c, size_t n)
{
    memmove(c->in.data, c->in.data + n, c->in.len - n);
    c->in.len -= n;
}

/* ---- outbound ------------------------------------------------------------------------------ */

static void peer_ready(void *ctx, uint32_t events);
static void peer_flush(struct peer *p);

/* Reports a peer's link down and starts the backoff; callbacks come from the peer's timer. */
static void peer_fail(struct peer *p, int err, const char *reason)
{
    struct tcp_transport *tt = p->c.tt;

    conn_close(&p->c);
    tt->t.stats.msgs_dropped += tqueue_clear(&p->queue, &tt->t.stats.rpcs_dropped);
    p->state = PEER_BACKOFF;
    p->down_pending = true;
    p->down_err = err;
    snprintf(p->down_reason, sizeof(p->down_reason), "%s", reason);
    loop_timer_start(tt->loop, &p->timer, 0, 0);
}

static void peer_timer(void *ctx)
{
    struct peer *p = ctx;
    struct tcp_transport *tt = p->c.tt;

    if (p->down_pending) {
        p->down_pending = false;
        if (tt->t.handler.on_peer_down != NULL)
            tt->t.handler.on_peer_down(tt->t.handler.ctx, p->id, p->down_err, p->down_reason);
        loop_timer_start(tt->loop, &p->timer, p->backoff_ms, 0);
        p->backoff_ms = MIN(p->backoff_ms * 2, CLUSTER_REDIAL_MS_MAX);
        return;
    }
    if (p->state == PEER_BACKOFF)
        p->state = PEER_IDLE;
}

static void peer_dial(struct peer *p)
{
    struct tcp_transport *tt = p->c.tt;
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    char port[8], reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    int fd = -1, rc = ERR_NOT_FOUND, one = 1;

    snprintf(port, sizeof(port), "%u", (unsigned)p->port);
    if (getaddrinfo(p->host, port, &hints, &list) != 0 || list == NULL) {
        snprintf(reason, sizeof(reason), "cannot resolve %.200s", p->host);
        peer_fail(p, ERR_NOT_FOUND, reason);
        return;
    }
    fd = socket(list->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, list->ai_addr, list->ai_addrlen) != 0 && errno != EINPROGRESS) {
        rc = -errno;
        close(fd);
        fd = -1;
    } else if (fd < 0) {
        rc = -errno;
    }
    freeaddrinfo(list);
    if (fd < 0) {
        snprintf(reason, sizeof(reason), "connect to %.200s:%u: %s", p->host, (unsigned)p->port,
                 strerror(-rc));
        peer_fail(p, rc, reason);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn_init(&p->c, tt, fd, peer_ready, p);
    if (loop_fd_start(tt->loop, &p->c.watch, LOOP_WRITE) < 0) {
        peer_fail(p, ERR_STATE, "cannot watch the socket");
        return;
    }
    p->state = PEER_CONNECTING;
}

static void peer_hello(struct peer *p)
{
    struct tcp_transport *tt = p->c.tt;
    struct wire_hello h = {
        .cluster_id = tt->cluster_id,
        .node_id = tt->t.self,
        .target_node_id = p->id,
        .host = tt->adv_host,
        .port = tt->adv_port,
        .version_min = WIRE_PROTOCOL_VERSION_MIN,
        .version_max = WIRE_PROTOCOL_VERSION_MAX,
        .voter_ids = tt->voter_ids,
        .voter_count = tt->voter_count,
    };

    (void)wire_hello_frame(&h, p->correlation++, &p->c.out);
    p->state = PEER_HELLO;
}

/* Adopts id as this node's cluster id if it has none yet, telling the handler (once). */
/* Whether a node that does not know its cluster id yet may link to (and learn it from) node. */
static bool may_learn_from(const struct tcp_transport *tt, int32_t node)
{
    return tt->cluster_id[0] != 0 || !tt->learn_only_from_set || node == tt->learn_only_from;
}

static void learn_cluster_id(struct tcp_transport *tt, const char *id)
{
    if (tt->cluster_id[0] != 0 || id[0] == 0)
        return;
    snprintf(tt->cluster_id, sizeof(tt->cluster_id), "%s", id);
    if (tt->t.handler.on_cluster_id != NULL)
        tt->t.handler.on_cluster_id(tt->t.handler.ctx, tt->cluster_id);
}

/* The answer to our hello. 0 when accepted (a node without a cluster id adopts the answer's);
 * otherwise the link fails with the reason. */
static int peer_answer(struct peer *p, struct slice frame)
{
    struct tcp_transport *tt = p->c.tt;
    struct wire_hello_answer a;
    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    int32_t corr;
    int rc;

    arena_reset(&tt->decode);
    rc = wire_hello_answer_decode(&tt->decode, frame, &corr, &a);
    if (rc != 0) {
        snprintf(reason, sizeof(reason), "node %d sent a malformed hello answer (%s)", p->id,
                 err_str(rc));
    } else if (a.error_code != WIRE_HELLO_OK) {
        snprintf(reason, sizeof(reason), "node %d refused the connection (error %d): %s", p->id,
                 a.error_code, a.reason != NULL ? a.reason : "");
        rc = ERR_INVALID;
    } else if (a.node_id != p->id || a.cluster_id[0] == 0 ||
               (tt->cluster_id[0] != 0 && strcmp(a.cluster_id, tt->cluster_id) != 0)) {
        snprintf(reason, sizeof(reason), "%.64s:%u is node %d of cluster %.64s, not node %d",
                 p->host, (unsigned)p->port, a.node_id, a.cluster_id, p->id);
        rc = ERR_INVALID;
    } else if (!may_learn_from(tt, p->id)) {
        snprintf(reason, sizeof(reason),
                 "node %d says the cluster is %.64s, but this new node learns its cluster id "
                 "from node %d only",
                 p->id, a.cluster_id, tt->learn_only_from);
        rc = ERR_INVALID;
    } else {
        learn_cluster_id(tt, a.cluster_id);
        return 0;
    }
    peer_fail(p, rc, reason);
    return rc;
}

static void peer_ready(void *ctx, uint32_t events)
{
    struct peer *p = ctx;
    struct tcp_transport *tt = p->c.tt;
    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    int rc = 0, read_rc = 0;
    bool became_ready = false;

    if (p->state == PEER_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(p->c.watch.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            snprintf(reason, sizeof(reason), "connect to %.200s:%u: %s", p->host, (unsigned)p->port,
                     strerror(err));
            peer_fail(p, -err, reason);
            return;
        }
        peer_hello(p);
        rc = conn_write(&p->c);
    } else if (events & LOOP_WRITE) {
        rc = conn_write(&p->c);
    }
    /* A refusal arrives followed by the end of the stream: read the answer before the end. */
    if (rc == 0 && (events & (LOOP_READ | LOOP_ERROR)))
        read_rc = conn_read(&p->c);
    if (rc != 0) {
        snprintf(reason, sizeof(reason), "connection to node %d lost: %s", p->id, err_str(rc));
        peer_fail(p, rc, reason);
        return;
    }
    if (p->state == PEER_HELLO) {
        struct slice frame;
        size_t used;

        rc = conn_frame(&p->c, 0, &frame, &used);
        if (rc < 0) {
            peer_fail(p, rc, "oversized hello answer");
            return;
        }
        if (rc == 0 && read_rc == 0)
            return;
        if (rc == 0) {
            snprintf(reason, sizeof(reason), "node %d closed the connection before answering",
                     p->id);
            peer_fail(p, read_rc, reason);
            return;
        }
        if (peer_answer(p, frame) != 0)
            return;
        conn_consume(&p->c, used);
        p->state = PEER_READY;
        became_ready = true;
        p->backoff_ms = CLUSTER_REDIAL_MS_MIN;
        if (tt->t.handler.on_peer_up != NULL)
            tt->t.handler.on_peer_up(tt->t.handler.ctx, p->id);
    }
    if (read_rc != 0) {
        snprintf(reason, sizeof(reason), "connection to node %d lost: %s", p->id, err_str(read_rc));
        peer_fail(p, read_rc, reason);
    } else if (p->state == PEER_READY && p->c.in.len > 0) {
        peer_fail(p, ERR_CORRUPT, "the peer sent bytes on our connection after its answer");
    } else if (became_ready) {
        /* What was queued while connecting leaves now: the host flushes only when it has work
         * of its own, which may be a Raft tick away (a pre-vote held that long let both
         * survivors of a dead controller campaign in one term and split the vote). */
        peer_flush(p);
    }
}

static struct peer *peer_find(struct tcp_transport *tt, int32_t id)
{
    for (size_t i = 0; i < tt->peer_count; i++) {
        if (tt->peers[i]->id == id)
            return tt->peers[i];
    }
    return NULL;
}

static void peer_free(struct peer *p)
{
    struct tcp_transport *tt = p->c.tt;

    conn_close(&p->c);
    loop_timer_stop(tt->loop, &p->timer);
    tqueue_deinit(&p->queue);
    free(p);
}

/* ---- inbound ------------------------------------------------------------------------------- */

static void inbound_close(struct inbound *ib)
{
    struct tcp_transport *tt = ib->c.tt;

    conn_close(&ib->c);
    loop_timer_stop(tt->loop, &ib->hello_timer);
    if (ib->prev != NULL)
        ib->prev->next = ib->next;
    else
        tt->inbound = ib->next;
    if (ib->next != NULL)
        ib->next->prev = ib->prev;
    tt->inbound_count--;
    free(ib);
}

static void inbound_hello_timeout(void *ctx)
{
    inbound_close(ctx);
}

static bool admitted(struct tcp_transport *tt, const struct wire_hello *h)
{
    if (peer_find(tt, h->node_id) != NULL)
        return true;
    return tt->admit != NULL && tt->admit(tt->admit_ctx, h->node_id, h->host, h->port);
}

/* Handles one whole frame. 0 to go on, or an error to close the connection. */
static int inbound_frame(struct inbound *ib, struct slice frame)
{
    struct tcp_transport *tt = ib->c.tt;
    struct wire_request req;
    int rc;

    arena_reset(&tt->decode);
    rc = wire_request_decode(&tt->decode, frame, &req);
    if (!ib->accepted) {
        char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
        struct wire_hello_answer a;

        if (rc != 0 || req.api_key != WIRE_API_CLUSTER_HELLO)
            return rc != 0 ? rc : ERR_STATE; /* not a cluster node: no answer */
        wire_hello_decide(&req.hello, tt->cluster_id, tt->t.self, tt->voter_ids, tt->voter_count,
                          admitted(tt, &req.hello), reason, &a);
        if (a.error_code == WIRE_HELLO_OK && !may_learn_from(tt, req.hello.node_id)) {
            a.error_code = WIRE_HELLO_INCONSISTENT_CLUSTER_ID;
            a.cluster_id = tt->cluster_id;
            a.version = -1;
            snprintf(reason, sizeof(reason),
                     "this node (%d) has not learnt its cluster id from node %d yet", tt->t.self,
                     tt->learn_only_from);
            a.reason = reason;
        }
        (void)wire_hello_answer_frame(&a, req.correlation_id, &ib->c.out);
        loop_timer_stop(tt->loop, &ib->hello_timer);
        if (a.error_code != WIRE_HELLO_OK) {
            ib->closing = true; /* the dialler reports the reason on its side */
            tt->t.stats.frames_refused++;
        } else {
            ib->accepted = true;
            ib->peer = req.hello.node_id;
            learn_cluster_id(tt, a.cluster_id);
        }
        return conn_write(&ib->c);
    }
    tt->t.stats.frames_received++;
    if (rc == 0 && req.api_key == WIRE_API_RAFT_MESSAGES && req.raft.from == ib->peer &&
        req.raft.to == tt->t.self) {
        tt->t.stats.msgs_received += req.raft.count;
        if (tt->t.handler.on_raft != NULL)
            tt->t.handler.on_raft(tt->t.handler.ctx, &req.raft);
        return 0;
    }
    if (rc == 0 && req.api_key == WIRE_API_CLUSTER_RPC && req.rpcs.from == ib->peer &&
        req.rpcs.to == tt->t.self) {
        for (size_t i = 0; i < req.rpcs.count; i++) {
            if (tt->t.handler.on_rpc == NULL) {
                tt->t.stats.rpcs_dropped++;
                continue;
            }
            tt->t.stats.rpcs_received++;
            tt->t.handler.on_rpc(tt->t.handler.ctx, &req.rpcs.rpcs[i]);
        }
        return 0;
    }
    tt->t.stats.frames_refused++;
    return rc != 0 ? rc : ERR_CORRUPT;
}

static void inbound_ready(void *ctx, uint32_t events)
{
    struct inbound *ib = ctx;
    size_t at = 0, used;
    struct slice frame;
    int rc = 0;

    if (events & LOOP_WRITE)
        rc = conn_write(&ib->c);
    if (ib->closing) {
        if (rc != 0 || conn_unsent(&ib->c) == 0)
            inbound_close(ib);
        return;
    }
    if (rc != 0) {
        inbound_close(ib);
        return;
    }
    /* Frames that arrived before the end of the stream are handled before closing. */
    int read_rc = (events & (LOOP_READ | LOOP_ERROR)) ? conn_read(&ib->c) : 0;
    while (rc == 0 && !ib->closing) {
        int got = conn_frame(&ib->c, at, &frame, &used);

        if (got <= 0) {
            rc = got;
            break;
        }
        rc = inbound_frame(ib, frame);
        at += used;
    }
    if (rc != 0 || read_rc != 0) {
        inbound_close(ib);
        return;
    }
    conn_consume(&ib->c, at);
    if (ib->closing && conn_unsent(&ib->c) == 0)
        inbound_close(ib);
}

static void listen_ready(void *ctx, uint32_t events)
{
    struct tcp_transport *tt = ctx;

    (void)events;
    for (unsigned i = 0; i < NET_ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(tt->listen_watch.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int one = 1;

        if (fd < 0)
            return;
        if (tt->inbound_count >= CLUSTER_INBOUND_CONNS_MAX) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct inbound *ib = xcalloc(1, sizeof(*ib));
        conn_init(&ib->c, tt, fd, inbound_ready, ib);
        loop_timer_init(&ib->hello_timer, inbound_hello_timeout, ib);
        ib->next = tt->inbound;
        if (ib->next != NULL)
            ib->next->prev = ib;
        tt->inbound = ib;
        tt->inbound_count++;
        if (loop_fd_start(tt->loop, &ib->c.watch, LOOP_READ) < 0 ||
            loop_timer_start(tt->loop, &ib->hello_timer, CLUSTER_HELLO_TIMEOUT_MS, 0) < 0)
            inbound_close(ib);
    }
}

/* ---- operations ---------------------------------------------------------------------------- */

static struct tcp_transport *tt_of(struct transport *t)
{
    return (struct tcp_transport *)t;
}

static int op_peer_set(struct transport *t, int32_t node, const char *host, uint16_t port)
{
    struct tcp_transport *tt = tt_of(t);
    struct peer *p = peer_find(tt, node);

    if (node < 0 || node == t->self || host == NULL || strlen(host) >= CLUSTER_HOST_BYTES_MAX ||
        port == 0)
        return ERR_INVALID;
    if (p == NULL) {
        if (tt->peer_count >= CLUSTER_PEERS_MAX)
            return ERR_TOO_LARGE;
        p = xcalloc(1, sizeof(*p));
        p->id = node;
        p->c.tt = tt;
        p->c.watch.fd = -1;
        p->backoff_ms = CLUSTER_REDIAL_MS_MIN;
        loop_timer_init(&p->timer, peer_timer, p);
        tqueue_init(&p->queue);
        tt->peers = xrealloc(tt->peers, (tt->peer_count + 1) * sizeof(*tt->peers));
        tt->peers[tt->peer_count++] = p;
    } else if (strcmp(p->host, host) == 0 && p->port == port) {
        return 0;
    } else if (p->state != PEER_IDLE && p->state != PEER_BACKOFF) {
        conn_close(&p->c);
        tt->t.stats.msgs_dropped += tqueue_clear(&p->queue, &tt->t.stats.rpcs_dropped);
        p->state = PEER_IDLE;
    }
    snprintf(p->host, sizeof(p->host), "%s", host);
    p->port = port;
    return 0;
}

static void op_peer_remove(struct transport *t, int32_t node)
{
    struct tcp_transport *tt = tt_of(t);

    for (size_t i = 0; i < tt->peer_count; i++) {
        if (tt->peers[i]->id != node)
            continue;
        tt->t.stats.msgs_dropped += tt->peers[i]->queue.count;
        tt->t.stats.rpcs_dropped += tt->peers[i]->queue.rpc_count;
        peer_free(tt->peers[i]);
        tt->peers[i] = tt->peers[--tt->peer_count];
        return;
    }
}

static int op_send(struct transport *t, const struct wire_msg *m)
{
    struct tcp_transport *tt = tt_of(t);
    struct peer *p = m->msg.from == t->self ? peer_find(tt, m->msg.to) : NULL;
    int rc;

    if (m->msg.from != t->self)
        rc = ERR_INVALID;
    else if (p == NULL)
        rc = ERR_NOT_FOUND;
    else if (p->state == PEER_BACKOFF)
        rc = ERR_CLOSED;
    else
        rc = tqueue_push(&p->queue, m);
    if (rc != 0) {
        t->stats.msgs_dropped++;
        return rc;
    }
    t->stats.msgs_queued++;
    if (p->state == PEER_IDLE)
        peer_dial(p);
    return 0;
}

static int op_send_rpc(struct transport *t, const struct wire_rpc *r)
{
    struct tcp_transport *tt = tt_of(t);
    struct peer *p = NULL;
    int rc;

    if (r->from != t->self)
        rc = ERR_INVALID;
    else if (r->to == t->self)
        rc = tqueue_push_rpc(&tt->self_rpcs.queue, r);
    else if ((p = peer_find(tt, r->to)) == NULL)
        rc = ERR_NOT_FOUND;
    else if (p->state == PEER_BACKOFF)
        rc = ERR_CLOSED;
    else
        rc = tqueue_push_rpc(&p->queue, r);
    if (rc != 0) {
        t->stats.rpcs_dropped++;
        return rc;
    }
    t->stats.rpcs_queued++;
    if (p != NULL && p->state == PEER_IDLE)
        peer_dial(p);
    return 0;
}

static void emit(void *ctx, struct slice frame)
{
    struct peer *p = ctx;
    struct tcp_transport *tt = p->c.tt;

    tt->t.stats.frames_sent++;
    tt->t.stats.bytes_sent += frame.len;
    buf_append(&p->c.out, frame.ptr, frame.len);
}

/* What is queued for a ready peer leaves as one frame (or a few). */
static void peer_flush(struct peer *p)
{
    struct tcp_transport *tt = p->c.tt;
    struct transport *t = &tt->t;
    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    int rc;

    if (p->state != PEER_READY || tqueue_empty(&p->queue))
        return;
    if (conn_unsent(&p->c) > CLUSTER_QUEUE_BYTES_MAX) {
        /* The peer does not read: drop rather than grow; Raft sends again later, the RPC
         * layer times out. */
        t->stats.msgs_dropped += tqueue_clear(&p->queue, &t->stats.rpcs_dropped);
        return;
    }
    t->stats.msgs_dropped += tqueue_drain(&p->queue, &tt->scratch, t->self, p->id, &p->correlation,
                                          &tt->frame, emit, p, &t->stats.rpcs_dropped);
    rc = conn_write(&p->c);
    if (rc != 0) {
        snprintf(reason, sizeof(reason), "connection to node %d lost: %s", p->id, err_str(rc));
        peer_fail(p, rc, reason);
    }
}

static void op_flush(struct transport *t)
{
    struct tcp_transport *tt = tt_of(t);

    /* RPCs to self first: what their handlers send to peers leaves in this flush. */
    tself_deliver(&tt->self_rpcs, t);
    for (size_t i = 0; i < tt->peer_count; i++)
        peer_flush(tt->peers[i]);
}

static bool op_peer_lost(struct transport *t, int32_t node)
{
    struct tcp_transport *tt = (struct tcp_transport *)t;
    struct peer *p = peer_find(tt, node);
    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    uint8_t byte;

    if (p == NULL)
        return false;
    if (p->down_pending)
        return true;
    if (p->state != PEER_READY)
        return false;
    /* Nothing flows to the dialler after the hello answer: readable means closed. */
    ssize_t n = recv(p->c.watch.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
        return false;
    int err = n == 0 ? ERR_CLOSED : -errno;
    snprintf(reason, sizeof(reason), "connection to node %d lost: %s", p->id, err_str(err));
    peer_fail(p, err, reason);
    return true;
}

static const struct transport_ops tcp_ops = {
    .peer_set = op_peer_set,
    .peer_remove = op_peer_remove,
    .send = op_send,
    .send_rpc = op_send_rpc,
    .flush = op_flush,
    .peer_lost = op_peer_lost,
};

/* ---- lifecycle ----------------------------------------------------------------------------- */

static int listen_open(struct tcp_transport *tt, const char *host, uint16_t port)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    char port_str[8];
    int fd = -1, rc = ERR_NOT_FOUND, one = 1;

    snprintf(port_str, sizeof(port_str), "%u", (unsigned)port);
    if (getaddrinfo(host, port_str, &hints, &list) != 0)
        return ERR_NOT_FOUND;
    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
            rc = 0;
            break;
        }
        rc = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (rc < 0)
        return rc;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    tt->port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                : ((struct sockaddr_in *)&addr)->sin_port);
    return fd;
}

static int cmp_node_id(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int tcp_transport_create(struct loop *loop, const struct tcp_transport_config *cfg,
                         const struct transport_handler *h, struct tcp_transport **out)
{
    struct tcp_transport *tt;
    int fd;

    if (cfg->self < 0 ||
        (cfg->cluster_id != NULL && strlen(cfg->cluster_id) > CLUSTER_ID_BYTES_MAX) ||
        cfg->advertised_host == NULL || strlen(cfg->advertised_host) >= CLUSTER_HOST_BYTES_MAX ||
        cfg->voter_count > RAFT_VOTERS_MAX || (cfg->voter_count > 0 && cfg->voter_ids == NULL))
        return ERR_INVALID;
    tt = xcalloc(1, sizeof(*tt));
    fd = listen_open(tt, cfg->listen_host, cfg->listen_port);
    if (fd < 0) {
        free(tt);
        return fd;
    }
    tt->t.ops = &tcp_ops;
    tt->t.handler = *h;
    tt->t.self = cfg->self;
    tt->loop = loop;
    snprintf(tt->cluster_id, sizeof(tt->cluster_id), "%s",
             cfg->cluster_id != NULL ? cfg->cluster_id : "");
    snprintf(tt->adv_host, sizeof(tt->adv_host), "%s", cfg->advertised_host);
    tt->adv_port = cfg->advertised_port != 0 ? cfg->advertised_port : tt->port;
    tt->admit = cfg->admit;
    tt->learn_only_from_set = cfg->learn_only_from_set;
    tt->learn_only_from = cfg->learn_only_from;
    tt->admit_ctx = cfg->admit_ctx;
    tt->voter_count = cfg->voter_count;
    if (cfg->voter_count > 0) {
        memcpy(tt->voter_ids, cfg->voter_ids, cfg->voter_count * sizeof(*cfg->voter_ids));
        qsort(tt->voter_ids, tt->voter_count, sizeof(*tt->voter_ids), cmp_node_id);
    }
    arena_init(&tt->scratch, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    arena_init(&tt->decode, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    buf_init(&tt->frame);
    tself_init(&tt->self_rpcs);
    loop_fd_init(&tt->listen_watch, fd, listen_ready, tt);
    int rc = loop_fd_start(loop, &tt->listen_watch, LOOP_READ);
    if (rc < 0) {
        close(fd);
        tt->listen_watch.fd = -1;
        tcp_transport_destroy(tt);
        return rc;
    }
    *out = tt;
    return 0;
}

void tcp_transport_destroy(struct tcp_transport *tt)
{
    while (tt->inbound != NULL)
        inbound_close(tt->inbound);
    for (size_t i = 0; i < tt->peer_count; i++)
        peer_free(tt->peers[i]);
    free(tt->peers);
    if (tt->listen_watch.fd >= 0) {
        loop_fd_stop(tt->loop, &tt->listen_watch);
        close(tt->listen_watch.fd);
    }
    arena_deinit(&tt->scratch);
    arena_deinit(&tt->decode);
    buf_deinit(&tt->frame);
    tself_deinit(&tt->self_rpcs);
    free(tt);
}

struct transport *tcp_transport_base(struct tcp_transport *tt)
{
    return &tt->t;
}

uint16_t tcp_transport_port(const struct tcp_transport *tt)
{
    return tt->port;
}

const char *tcp_transport_cluster_id(const struct tcp_transport *tt)
{
    return tt->cluster_id[0] != 0 ? tt->cluster_id : NULL;
}
