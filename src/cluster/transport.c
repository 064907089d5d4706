/*
 * The outbound queue every transport keeps per peer (see transport.h). Messages are copied in
 * with their batch shapes and bytes, in arrays that grow until the queue bounds, and leave as
 * frames at drain, in the order they were queued.
 *
 * Invariant: items[i] owns shapes[shape_at, shape_at + batch_count) and the bytes of those
 * batches back to back from bytes_at; frame_bytes bounds the frames' total size.
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
    buf_deinit(&q->bytes);
    memset(q, 0, sizeof(*q));
}

size_t tqueue_clear(struct tqueue *q)
{
    size_t n = q->count;

    q->count = 0;
    q->shape_count = 0;
    q->frame_bytes = 0;
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

size_t tqueue_drain(struct tqueue *q, struct arena *scratch, int32_t from, int32_t to,
                    int32_t *correlation_id, struct buf *frame, tqueue_emit_fn emit, void *ctx)
{
    size_t lost = 0, start = 0, est = 0;
    struct wire_msg *msgs;
    struct slice *slices;

    if (q->count == 0)
        return 0;
    arena_reset(scratch);
    msgs = arena_calloc(scratch, q->count, sizeof(*msgs));
    slices = arena_calloc(scratch, q->shape_count, sizeof(*slices));
    if (msgs == NULL || slices == NULL)
        return tqueue_clear(q);
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
    tqueue_clear(q);
    return lost;
}
