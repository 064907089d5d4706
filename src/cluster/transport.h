/*
 * The cluster transport: how the Raft host on one node reaches the others.
 *
 * A struct transport is a table of operations so the same host runs on the real network (TCP
 * on the cluster port, over the net loop) or on a simulated one (cluster/sim_net.h) in unit
 * tests and the whole-cluster simulation. Both implementations share the outbound queue below
 * and the wire format of cluster/wire.h, so what the simulation delivers is exactly what TCP
 * would: whole RaftMessages frames.
 *
 * Contract, for every implementation:
 *   - send() queues one Raft message for msg.to and copies everything it needs (the batch bytes
 *     too), so the caller may reuse its memory at once. Nothing leaves before flush().
 *   - flush(), called once at the end of each loop iteration, sends everything queued for a
 *     peer as one frame, or a few of about CLUSTER_FRAME_BYTES_TARGET each.
 *   - Queues are bounded (CLUSTER_QUEUE_BYTES_MAX / CLUSTER_QUEUE_MSGS_MAX per peer). A
 *     message over the bound is dropped and counted, never waited for: Raft retransmits, and a
 *     slow or dead peer must neither grow memory nor stall the loop.
 *   - Delivery is at most once per send as far as the host can tell, in no guaranteed order
 *     across connections (a reconnect may reorder; the simulated network may drop, duplicate
 *     and reorder on purpose). The Raft core tolerates all of it.
 *   - Callbacks run on the loop thread, never from inside a transport_* call of the same
 *     transport, so the host may call send() from them.
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
    /* Sends everything queued. */
    void (*flush)(struct transport *t);
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
static inline void transport_flush(struct transport *t)
{
    t->ops->flush(t);
}

/* ---- the outbound queue of one peer (shared by the implementations) ---------------------- */

struct tqueue_item {
    struct wire_msg w; /* msg.batches and batch_bytes are rebuilt at drain */
    size_t shape_at;   /* index of its first batch in shapes */
    size_t bytes_at;   /* offset of its first batch's bytes in bytes */
};

/* Messages queued for one peer, with copies of their batches. Owns its memory. */
struct tqueue {
    struct tqueue_item *items;
    size_t count, cap;
    struct raft_batch *shapes;
    size_t shape_count, shape_cap;
    struct buf bytes;
    size_t frame_bytes; /* sum of wire_msg_bytes() of the queued messages */
};

void tqueue_init(struct tqueue *q);
void tqueue_deinit(struct tqueue *q);
/* Drops everything queued; returns how many messages that was. */
size_t tqueue_clear(struct tqueue *q);
/* Copies m in. ERR_TOO_LARGE over the queue bounds, or wire_msg_check's error. */
int tqueue_push(struct tqueue *q, const struct wire_msg *m);

/* Called with each frame (size prefix included), valid during the call. */
typedef void (*tqueue_emit_fn)(void *ctx, struct slice frame);

/*
 * Encodes everything queued into frames from `from` to `to` of about CLUSTER_FRAME_BYTES_TARGET
 * (a message larger than that goes alone), numbering them from *correlation_id, calls emit for
 * each in order and empties the queue. scratch is reset before use. Returns the number of
 * messages that could not be encoded (0 unless a bound was broken; they are dropped).
 */
size_t tqueue_drain(struct tqueue *q, struct arena *scratch, int32_t from, int32_t to,
                    int32_t *correlation_id, struct buf *frame, tqueue_emit_fn emit, void *ctx);

#endif
