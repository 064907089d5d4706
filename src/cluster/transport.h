/*
 * The cluster transport: how the Raft host on one node reaches the others.
 *
 * A struct transport is a table of operations so the same host runs on the real network (TCP
 * on the cluster port, over the net loop) or on a simulated one (cluster/sim_net.h) in unit
 * tests and the whole-cluster simulation. Both implementations share the outbound queue below
 * and the wire format of cluster/wire.h, so what the simulation delivers is exactly what TCP
 * would: whole RaftMessages and ClusterRpc frames.
 *
 * Contract, for every implementation:
 *   - send() queues one Raft message for msg.to and copies everything it needs (the batch bytes
 *     too), so the caller may reuse its memory at once. Nothing leaves before flush().
 *   - flush(), called once at the end of each loop iteration, sends everything queued for a
 *     peer as one frame, or a few of about CLUSTER_FRAME_BYTES_TARGET each.
 *   - Queues are bounded (CLUSTER_QUEUE_BYTES_MAX / CLUSTER_QUEUE_MSGS_MAX per peer). A
 *     message over the bound is dropped and counted, never waited for: Raft retransmits, and a
 *     slow or dead peer must neither grow memory nor stall the loop.
 *   - send_rpc() queues one controller RPC for r->to likewise (payload copied), in the peer's
 *     queue beside its Raft messages, bounded apart (CLUSTER_QUEUE_RPCS_MAX /
 *     CLUSTER_QUEUE_RPC_BYTES_MAX) so neither kind crowds out the other; it leaves at the next
 *     flush() after that peer's Raft messages, as ClusterRpc frames. RPCs get the same delivery
 *     as Raft messages (at most once, maybe lost): the RPC layer above times out and retries.
 *     An RPC to this node itself is legal: flush() hands it to on_rpc (never send_rpc itself),
 *     so a single node runs the same code as a cluster. RPCs that on_rpc sends to self during
 *     that delivery are delivered by the same flush, for up to CLUSTER_SELF_RPC_ROUNDS_MAX
 *     rounds, then by the next one.
 *   - Delivery is at most once per send as far as the host can tell, in no guaranteed order
 *     across connections (a reconnect may reorder; the simulated network may drop, duplicate
 *     and reorder on purpose). The Raft core tolerates all of it.
 *   - Callbacks run on the loop thread, never from inside a transport_* call of the same
 *     transport (except on_rpc for RPCs to self, from flush()), so the host may call send() and
 *     send_rpc() from them.
 *   - peer_up: the link to the peer works (TCP: our connection to it passed the hello). peer_down:
 *     it stopped working (connection lost or refused, with the reason); queued messages for it
 *     are dropped. The host uses these for observability and to stop sending to dead peers
 *     early; correctness never depends on them.
 */
#ifndef CHRONIK_CLUSTER_TRANSPORT_H
#define CHRONIK_CLUSTER_TRANSPORT_H

#include "base/arena.h"
#include "base/buf.h"
#include "cluster/wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct transport;

/* What the transport tells its owner. */
struct transport_handler {
    /* Raft messages from one peer, all of one frame; valid only during the call (they borrow the
     * frame's bytes). frame->to is this node. */
    void (*on_raft)(void *ctx, const struct wire_raft *frame);
    /* One controller RPC for this node (r->to == self); r and its payload are valid only during
     * the call. May call send_rpc() and send(). NULL: RPCs are dropped and counted. */
    void (*on_rpc)(void *ctx, const struct wire_rpc *r);
    /* A transport created without a cluster id learnt it (TCP; see tcp_transport.h): called once,
     * before the on_peer_up of the link that taught it. NULL: not told. */
    void (*on_cluster_id)(void *ctx, const char *cluster_id);
    void (*on_peer_up)(void *ctx, int32_t peer);
    /* err: a negative error; reason: for the operator (a refusal's text), may be NULL. */
    void (*on_peer_down)(void *ctx, int32_t peer, int err, const char *reason);
    void *ctx;
};

/* Counters every implementation keeps (never reset). */
struct transport_stats {
    uint64_t msgs_queued;
    uint64_t msgs_dropped; /* over a queue bound, refused by wire_msg_check, or peer lost */
    uint64_t frames_sent;
    uint64_t bytes_sent;
    uint64_t frames_received;
    uint64_t msgs_received;
    uint64_t frames_refused; /* received but malformed, oversized or not for this node */
    uint64_t rpcs_queued;
    uint64_t rpcs_dropped; /* over a queue bound, refused by wire_rpc_check, peer lost, no on_rpc */
    uint64_t rpcs_received; /* delivered to on_rpc (self included) */
};

struct transport_ops {
    /* Makes node a peer reachable at host:port (a simulated network ignores the address);
     * replaces a known peer's address. ERR_INVALID for this node or a negative id,
     * ERR_TOO_LARGE beyond CLUSTER_PEERS_MAX. */
    int (*peer_set)(struct transport *t, int32_t node, const char *host, uint16_t port);
    /* Forgets a peer, dropping what is queued for it. */
    void (*peer_remove)(struct transport *t, int32_t node);
    /* Queues m for m->msg.to (m->msg.from must be this node). 0, ERR_NOT_FOUND for an unknown
     * peer, ERR_TOO_LARGE when its queue is full, or wire_msg_check's error; the message is then
     * dropped and counted. */
    int (*send)(struct transport *t, const struct wire_msg *m);
    /* Queues r for r->to (r->from must be this node; r->to may be this node). 0, ERR_INVALID for
     * another sender or wire_rpc_check's error, ERR_NOT_FOUND for an unknown peer, ERR_TOO_LARGE
     * when the RPC queue is full, ERR_CLOSED while the link is known dead (TCP backoff); the RPC
     * is then dropped and counted. */
    int (*send_rpc)(struct transport *t, const struct wire_rpc *r);
    /* Sends everything queued. */
    void (*flush)(struct transport *t);
    /* True when the link to node is lost: reported down and not back yet, or its connection
     * found closed by looking at it now (one system call; reported down like any loss). For a
     * caller that must not act on a link the peer's death closed an instant ago, before the
     * event loop got to it. NULL: links are never found lost that way. */
    bool (*peer_lost)(struct transport *t, int32_t node);
};

struct transport {
    const struct transport_ops *ops;
    struct transport_handler handler;
    int32_t self;
    struct transport_stats stats;
};

static inline int transport_peer_set(struct transport *t, int32_t node, const char *host,
                                     uint16_t port)
{
    return t->ops->peer_set(t, node, host, port);
}
static inline void transport_peer_remove(struct transport *t, int32_t node)
{
    t->ops->peer_remove(t, node);
}
static inline int transport_send(struct transport *t, const struct wire_msg *m)
{
    return t->ops->send(t, m);
}
static inline int transport_send_rpc(struct transport *t, const struct wire_rpc *r)
{
    return t->ops->send_rpc(t, r);
}
static inline void transport_flush(struct transport *t)
{
    t->ops->flush(t);
}
static inline bool transport_peer_lost(struct transport *t, int32_t node)
{
    return t->ops->peer_lost != NULL && t->ops->peer_lost(t, node);
}

/* ---- the outbound queue of one peer (shared by the implementations) ---------------------- */

struct tqueue_item {
    struct wire_msg w; /* msg.batches and batch_bytes are rebuilt at drain */
    size_t shape_at;   /* index of its first batch in shapes */
    size_t bytes_at;   /* offset of its first batch's bytes in bytes */
};

struct tqueue_rpc {
    struct wire_rpc r; /* payload.ptr is rebuilt at drain */
    size_t payload_at; /* offset of its payload in bytes */
};

/* Messages and RPCs queued for one peer, with copies of their batches and payloads. Owns its
 * memory. */
struct tqueue {
    struct tqueue_item *items;
    size_t count, cap;
    struct raft_batch *shapes;
    size_t shape_count, shape_cap;
    struct buf bytes;   /* batch bytes and RPC payloads */
    size_t frame_bytes; /* sum of wire_msg_bytes() of the queued messages */
    struct tqueue_rpc *rpcs;
    size_t rpc_count, rpc_cap;
    size_t rpc_bytes; /* sum of the queued RPCs' payload lengths */
};

void tqueue_init(struct tqueue *q);
void tqueue_deinit(struct tqueue *q);
/* Drops everything queued; returns how many Raft messages that was and adds to *rpcs how many
 * RPCs. */
size_t tqueue_clear(struct tqueue *q, uint64_t *rpcs);
static inline bool tqueue_empty(const struct tqueue *q)
{
    return q->count == 0 && q->rpc_count == 0;
}
/* Copies m in. ERR_TOO_LARGE over the queue bounds, or wire_msg_check's error. */
int tqueue_push(struct tqueue *q, const struct wire_msg *m);
/* Copies r in (payload included). ERR_TOO_LARGE over the RPC bounds, or wire_rpc_check's error. */
int tqueue_push_rpc(struct tqueue *q, const struct wire_rpc *r);

/* Called with each frame (size prefix included), valid during the call. */
typedef void (*tqueue_emit_fn)(void *ctx, struct slice frame);

/*
 * Encodes everything queued into frames from `from` to `to` of about CLUSTER_FRAME_BYTES_TARGET
 * (a message or RPC larger than that goes alone): RaftMessages frames, then ClusterRpc frames,
 * numbered from *correlation_id; calls emit for each in order and empties the queue. scratch is
 * reset before use. Returns the number of Raft messages that could not be encoded and adds to
 * *rpcs_lost the RPCs that could not (0 unless a bound was broken; they are dropped).
 */
size_t tqueue_drain(struct tqueue *q, struct arena *scratch, int32_t from, int32_t to,
                    int32_t *correlation_id, struct buf *frame, tqueue_emit_fn emit, void *ctx,
                    uint64_t *rpcs_lost);

/* ---- RPCs a node sends itself (shared by the implementations) ----------------------------- */

struct tself {
    struct tqueue queue;      /* send_rpc to self appends here */
    struct tqueue delivering; /* what the current round of flush() hands to on_rpc */
    bool busy;                /* inside tself_deliver (a nested flush does not deliver) */
};

void tself_init(struct tself *s);
void tself_deinit(struct tself *s);
/* Delivers what is queued to t's on_rpc, then what on_rpc queued meanwhile, for at most
 * CLUSTER_SELF_RPC_ROUNDS_MAX rounds (the rest waits for the next call); counts in t->stats.
 * Called by flush(). */
void tself_deliver(struct tself *s, struct transport *t);

#endif
