/*
 * libFuzzer target over what a node decodes from other nodes: cluster frames
 * (cluster/wire.h) and KRaft metadata records (proto/metarec.h).
 *
 * Input: one selector byte, then the bytes. Selector % 3: 0 a request frame after its size
 * prefix (wire_request_decode), 1 a hello answer frame (wire_hello_answer_decode), 2 a metadata
 * record value (metarec_decode). Checks: no crash, leak or sanitizer report; only the documented
 * errors; the decode arena stays within CLUSTER_FRAME_ARENA_MAX; whatever decodes encodes again
 * and decodes to the same thing (the same messages of a RaftMessages frame, the same RPCs of a
 * ClusterRpc frame with payloads inside the input, the same hello fields, and for a metadata
 * record a fixed point of encode(decode(x))). Any violation aborts.
 */
#include "base/arena.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/limits.h"
#include "cluster/wire.h"
#include "proto/metarec.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool documented(int err)
{
    return err == 0 || err == ERR_CORRUPT || err == ERR_TOO_LARGE || err == ERR_UNSUPPORTED;
}

static void check_request(struct arena *a, struct arena *b, struct slice in)
{
    struct wire_request req, back;
    struct buf out;
    int err = wire_request_decode(a, in, &req);

    ASSERT(documented(err));
    ASSERT(arena_used(a) <= CLUSTER_FRAME_ARENA_MAX);
    if (err != 0)
        return;
    buf_init(&out);
    if (req.api_key == WIRE_API_CLUSTER_HELLO) {
        ASSERT(wire_hello_frame(&req.hello, req.correlation_id, &out) == 0);
    } else if (req.api_key == WIRE_API_CLUSTER_RPC) {
        ASSERT(wire_rpc_frame(b, req.rpcs.from, req.rpcs.to, req.rpcs.rpcs, req.rpcs.count,
                              req.correlation_id, &out) == 0);
    } else {
        ASSERT(wire_raft_frame(b, req.raft.from, req.raft.to, req.raft.msgs, req.raft.count,
                               req.correlation_id, &out) == 0);
    }
    ASSERT(wire_request_decode(b, slice_make(out.data + 4, out.len - 4), &back) == 0);
    ASSERT(back.api_key == req.api_key && back.correlation_id == req.correlation_id);
    if (req.api_key == WIRE_API_CLUSTER_HELLO) {
        ASSERT(strcmp(back.hello.cluster_id, req.hello.cluster_id) == 0);
        ASSERT(strcmp(back.hello.host, req.hello.host) == 0);
        ASSERT(back.hello.node_id == req.hello.node_id && back.hello.port == req.hello.port);
    } else if (req.api_key == WIRE_API_CLUSTER_RPC) {
        ASSERT(back.rpcs.count == req.rpcs.count && back.rpcs.from == req.rpcs.from &&
               back.rpcs.to == req.rpcs.to);
        for (size_t i = 0; i < req.rpcs.count; i++) {
            const struct wire_rpc *x = &req.rpcs.rpcs[i], *y = &back.rpcs.rpcs[i];

            /* Payloads are borrowed from the input, never copied. */
            ASSERT(x->payload.len == 0 || (x->payload.ptr >= in.ptr &&
                                           x->payload.ptr + x->payload.len <= in.ptr + in.len));
            ASSERT(x->kind == y->kind && x->correlation_id == y->correlation_id &&
                   x->api_key == y->api_key && x->api_version == y->api_version &&
                   x->error == y->error && x->from == y->from && x->to == y->to);
            ASSERT(slice_eq(x->payload, y->payload));
        }
    } else {
        ASSERT(back.raft.count == req.raft.count && back.raft.from == req.raft.from);
    }
    buf_deinit(&out);
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_answer(struct arena *a, struct arena *b, struct slice in)
{
    struct wire_hello_answer ans, back;
    int32_t corr, corr_back;
    int err = wire_hello_answer_decode(a, in, &corr, &ans);

    ASSERT(documented(err));
    if (err != 0)
        return;
    /* Unknown tagged fields are dropped, so compare what was understood, not the bytes. */
    struct buf out;
    buf_init(&out);
    ASSERT(wire_hello_answer_frame(&ans, corr, &out) == 0);
    ASSERT(wire_hello_answer_decode(b, slice_make(out.data + 4, out.len - 4), &corr_back, &back) ==
           0);
    ASSERT(corr_back == corr && back.error_code == ans.error_code && back.node_id == ans.node_id &&
           back.version == ans.version);
    ASSERT(same_str(back.reason, ans.reason) && same_str(back.cluster_id, ans.cluster_id));
    buf_deinit(&out);
}

static void check_record(struct arena *a, struct arena *b, struct slice in)
{
    struct metarec rec, back;
    struct buf first, second;
    int err = metarec_decode(a, in, &rec);

    ASSERT(documented(err));
    if (err != 0)
        return;
    buf_init(&first);
    buf_init(&second);
    ASSERT(metarec_encode(rec.type, rec.version, rec.body, &first) == 0);
    ASSERT(metarec_decode(b, buf_slice(&first), &back) == 0);
    ASSERT(metarec_encode(back.type, back.version, back.body, &second) == 0);
    ASSERT(slice_eq(buf_slice(&first), buf_slice(&second)));
    buf_deinit(&second);
    buf_deinit(&first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct arena a, b;
    static bool ready;

    if (!ready) {
        arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
        arena_init(&b, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
        ready = true;
    }
    if (size < 1)
        return 0;
    arena_reset(&a);
    arena_reset(&b);
    struct slice in = slice_make(data + 1, size - 1);
    switch (data[0] % 3) {
    case 0:
        check_request(&a, &b, in);
        break;
    case 1:
        check_answer(&a, &b, in);
        break;
    default:
        check_record(&a, &b, in);
        break;
    }
    return 0;
}
