/*
 * The outbound queue every transport keeps per peer (see transport.h). Messages are copied in
 * with their batch shapes and bytes, RPCs with their payloads, in arrays that grow until the
 * queue bounds, and leave as frames at drain, each kind in the order it was queued. Also the
 * delivery of RPCs a node sends itself.
 *
 * Invariant: items[i] owns shapes[shape_at, shape_at + batch_count) and the bytes of those
 * batches back to back from bytes_at; rpcs[i] owns bytes[payload_at, payload_at + payload.len);
 * frame_bytes bounds the Raft frames' total size, rpc_bytes is the sum of the payloads.
 */
#include "cluster/transport.h"

#include "base/alloc.h"
#include "base/error.h"
#include "base/limits.h"

#include <stdlib.h>
#include <string.h>

void tqueue_init(struct tqueue *q)
{
    memset(q, 0, sizeof(*q));
    buf_init(&q->bytes);
}

void tqueue_deinit(struct tqueue *q)
{
    free(q->items);
    free(q->shapes);
    free(q->rpcs);
    buf_deinit(&q->bytes);
    memset(q, 0, sizeof(*q));
}

size_t tqueue_clear(struct tqueue *q, uint64_t *rpcs)
{
    size_t n = q->count;

    *rpcs += q->rpc_count;
    q->count = 0;
    q->shape_count = 0;
    q->frame_bytes = 0;
    q->rpc_count = 0;
    q->rpc_bytes = 0;
    buf_reset(&q->bytes);
    return n;
}

int tqueue_push(struct tqueue *q, const struct wire_msg *m)
{
    size_t est = wire_msg_bytes(m);
    uint16_t nb = m->msg.batch_count;
    int rc = wire_msg_check(m);

    if (rc != 0)
        return rc;
    if (q->count >= CLUSTER_QUEUE_MSGS_MAX || q->frame_bytes + est > CLUSTER_QUEUE_BYTES_MAX)
        return ERR_TOO_LARGE;
    if (q->count == q->cap) {
        q->cap = q->cap == 0 ? 64 : q->cap * 2;
        q->items = xrealloc(q->items, q->cap * sizeof(*q->items));
    }
    if (q->shape_count + nb > q->shape_cap) {
        while (q->shape_count + nb > q->shape_cap)
            q->shape_cap = q->shape_cap == 0 ? 64 : q->shape_cap * 2;
        q->shapes = xrealloc(q->shapes, q->shape_cap * sizeof(*q->shapes));
    }
    struct tqueue_item *it = &q->items[q->count++];
    it->w = *m;
    it->w.msg.batches = NULL;
    it->w.batch_bytes = NULL;
    it->shape_at = q->shape_count;
    it->bytes_at = q->bytes.len;
    for (uint16_t i = 0; i < nb; i++) {
        q->shapes[q->shape_count++] = m->msg.batches[i];
        buf_append(&q->bytes, m->batch_bytes[i].ptr, m->batch_bytes[i].len);
    }
    q->frame_bytes += est;
    return 0;
}

int tqueue_push_rpc(struct tqueue *q, const struct wire_rpc *r)
{
    int rc = wire_rpc_check(r);

    if (rc != 0)
        return rc;
    if (q->rpc_count >= CLUSTER_QUEUE_RPCS_MAX ||
        q->rpc_bytes + r->payload.len > CLUSTER_QUEUE_RPC_BYTES_MAX)
        return ERR_TOO_LARGE;
    if (q->rpc_count == q->rpc_cap) {
        q->rpc_cap = q->rpc_cap == 0 ? 16 : q->rpc_cap * 2;
        q->rpcs = xrealloc(q->rpcs, q->rpc_cap * sizeof(*q->rpcs));
    }
    struct tqueue_rpc *it = &q->rpcs[q->rpc_count++];
    it->r = *r;
    it->r.payload = slice_make(NULL, r->payload.len);
    it->payload_at = q->bytes.len;
    buf_append(&q->bytes, r->payload.ptr, r->payload.len);
    q->rpc_bytes += r->payload.len;
    return 0;
}

/* Queued RPC i with its payload pointing into q->bytes (stable until the queue grows); an empty
 * payload points at a static byte, as a decoded one does, never at NULL. */
static struct wire_rpc rpc_at(const struct tqueue *q, size_t i)
{
    static const uint8_t empty[1];
    struct wire_rpc r = q->rpcs[i].r;

    r.payload = r.payload.len == 0
                    ? slice_make(empty, 0)
                    : slice_make(q->bytes.data + q->rpcs[i].payload_at, r.payload.len);
    return r;
}

/* Encodes the queued RPCs into ClusterRpc frames of about CLUSTER_FRAME_BYTES_TARGET. */
static uint64_t drain_rpcs(struct tqueue *q, struct arena *scratch, int32_t from, int32_t to,
                           int32_t *correlation_id, struct buf *frame, tqueue_emit_fn emit,
                           void *ctx)
{
    uint64_t lost = 0;
    size_t start = 0, est = 0;
    struct wire_rpc *rpcs;

    arena_reset(scratch);
    rpcs = arena_calloc(scratch, q->rpc_count, sizeof(*rpcs));
    if (rpcs == NULL)
        return q->rpc_count;
    for (size_t i = 0; i < q->rpc_count; i++)
        rpcs[i] = rpc_at(q, i);
    for (size_t i = 0; i <= q->rpc_count; i++) {
        size_t n = i < q->rpc_count ? wire_rpc_bytes(&rpcs[i]) : 0;

        if (i > start && (i == q->rpc_count || est + n > CLUSTER_FRAME_BYTES_TARGET)) {
            buf_reset(frame);
            if (wire_rpc_frame(scratch, from, to, rpcs + start, i - start, (*correlation_id)++,
                               frame) == 0)
                emit(ctx, buf_slice(frame));
            else
                lost += i - start;
            start = i;
            est = 0;
        }
        est += n;
    }
    return lost;
}

static size_t drain_msgs(struct tqueue *q, struct arena *scratch, int32_t from, int32_t to,
                         int32_t *correlation_id, struct buf *frame, tqueue_emit_fn emit, void *ctx)
{
    size_t lost = 0, start = 0, est = 0;
    struct wire_msg *msgs;
    struct slice *slices;

    arena_reset(scratch);
    msgs = arena_calloc(scratch, q->count, sizeof(*msgs));
    slices = arena_calloc(scratch, q->shape_count, sizeof(*slices));
    if (msgs == NULL || slices == NULL)
        return q->count;
    /* The queue no longer grows, so pointers into its arrays are stable from here on. */
    for (size_t i = 0; i < q->count; i++) {
        const struct tqueue_item *it = &q->items[i];
        size_t off = it->bytes_at;

        msgs[i] = it->w;
        if (it->w.msg.batch_count == 0)
            continue;
        msgs[i].msg.batches = &q->shapes[it->shape_at];
        msgs[i].batch_bytes = &slices[it->shape_at];
        for (uint16_t b = 0; b < it->w.msg.batch_count; b++) {
            uint32_t len = q->shapes[it->shape_at + b].bytes;

            slices[it->shape_at + b] = slice_make(q->bytes.data + off, len);
            off += len;
        }
    }
    for (size_t i = 0; i <= q->count; i++) {
        size_t n = i < q->count ? wire_msg_bytes(&msgs[i]) : 0;

        /* Close the frame before a message that would take it over the target. */
        if (i > start && (i == q->count || est + n > CLUSTER_FRAME_BYTES_TARGET)) {
            buf_reset(frame);
            if (wire_raft_frame(scratch, from, to, msgs + start, i - start, (*correlation_id)++,
                                frame) == 0)
                emit(ctx, buf_slice(frame));
            else
                lost += i - start;
            start = i;
            est = 0;
        }
        est += n;
    }
    return lost;
}

size_t tqueue_drain(struct tqueue *q, struct arena *scratch, int32_t from, int32_t to,
                    int32_t *correlation_id, struct buf *frame, tqueue_emit_fn emit, void *ctx,
                    uint64_t *rpcs_lost)
{
    size_t lost = 0;
    uint64_t cleared = 0;

    if (q->count > 0)
        lost = drain_msgs(q, scratch, from, to, correlation_id, frame, emit, ctx);
    if (q->rpc_count > 0)
        *rpcs_lost += drain_rpcs(q, scratch, from, to, correlation_id, frame, emit, ctx);
    tqueue_clear(q, &cleared);
    return lost;
}

/* ---- RPCs to self -------------------------------------------------------------------------- */

void tself_init(struct tself *s)
{
    tqueue_init(&s->queue);
    tqueue_init(&s->delivering);
    s->busy = false;
}

void tself_deinit(struct tself *s)
{
    tqueue_deinit(&s->queue);
    tqueue_deinit(&s->delivering);
}

void tself_deliver(struct tself *s, struct transport *t)
{
    if (s->busy)
        return;
    s->busy = true;
    for (unsigned round = 0; round < CLUSTER_SELF_RPC_ROUNDS_MAX && s->queue.rpc_count > 0;
         round++) {
        /* Swap, so that what on_rpc sends itself now lands in the other queue: the payloads
         * being delivered stay where they are. */
        struct tqueue q = s->delivering;
        s->delivering = s->queue;
        s->queue = q;
        struct tqueue *d = &s->delivering;
        for (size_t i = 0; i < d->rpc_count; i++) {
            struct wire_rpc r = rpc_at(d, i);

            if (t->handler.on_rpc == NULL) {
                t->stats.rpcs_dropped++;
                continue;
            }
            t->stats.rpcs_received++;
            t->handler.on_rpc(t->handler.ctx, &r);
        }
        uint64_t none = 0;
        tqueue_clear(d, &none);
    }
    s->busy = false;
}
