/*
 * Writes the seed corpus for fuzz_cluster: hello and answer frames (a new node's too),
 * RaftMessages frames with every message type, coalesced heartbeats and an append, ClusterRpc
 * frames of requests and responses, and every metadata record type at
 * every version from random values, each behind fuzz_cluster's selector byte. Usage:
 * cluster_corpus_gen DIR.
 */
#include "../unit/proto/proto_fill.h"

#include "base/limits.h"
#include "cluster/wire.h"
#include "proto/gen/kafka.h"
#include "proto/metarec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int count;

static int put(const char *dir, uint8_t selector, const uint8_t *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/c%d-%04d", dir, selector, count++);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -errno;
    int ok = fwrite(&selector, 1, 1, f) == 1 && fwrite(p, 1, len, f) == len;
    return fclose(f) == 0 && ok ? 0 : -EIO;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: cluster_corpus_gen DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return 1;
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct buf b;
    buf_init(&b);
    int rc = 0;

    static const int32_t voter_ids[] = {1, 2, 3};
    struct wire_hello h = {.cluster_id = "MkU3OEVBNTcwNTJENDM2Qk",
                           .node_id = 2,
                           .target_node_id = 1,
                           .host = "127.0.0.1",
                           .port = 11093,
                           .voter_ids = voter_ids,
                           .voter_count = 3};
    wire_hello_frame(&h, 1, &b);
    rc |= put(dir, 0, b.data + 4, b.len - 4);
    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    struct wire_hello_answer ans;
    wire_hello_decide(&h, "other", 1, NULL, 0, true, reason, &ans);
    buf_reset(&b);
    wire_hello_answer_frame(&ans, 1, &b);
    rc |= put(dir, 1, b.data + 4, b.len - 4);

    static const uint8_t batch[70] = {0};
    struct raft_batch shape = {.first_index = 5, .last_index = 7, .term = 2, .bytes = 70};
    struct slice bytes = slice_make(batch, sizeof(batch));
    struct wire_msg msgs[RAFT_MSG_TYPE_COUNT + 2];
    for (uint8_t t = 0; t < RAFT_MSG_TYPE_COUNT + 2; t++) {
        memset(&msgs[t], 0, sizeof(msgs[t]));
        msgs[t].group = wire_metadata_group;
        msgs[t].group.partition = t;
        msgs[t].msg = (struct raft_msg){.type = t % RAFT_MSG_TYPE_COUNT,
                                        .from = 1,
                                        .to = 2,
                                        .term = 2,
                                        .index = 4,
                                        .log_term = 1,
                                        .commit = 3,
                                        .hint_index = t < RAFT_MSG_TYPE_COUNT ? 9 : -1};
    }
    msgs[RAFT_MSG_APPEND].msg.last_index = 7;
    msgs[RAFT_MSG_APPEND].msg.batches = &shape;
    msgs[RAFT_MSG_APPEND].msg.batch_count = 1;
    msgs[RAFT_MSG_APPEND].batch_bytes = &bytes;
    for (size_t n = 1; n <= RAFT_MSG_TYPE_COUNT + 2; n++) {
        buf_reset(&b);
        arena_reset(&a);
        if (wire_raft_frame(&a, 1, 2, msgs, n, (int32_t)n, &b) == 0)
            rc |= put(dir, 0, b.data + 4, b.len - 4);
    }

    /* A new node's hello and the member's answer that teaches it the id. */
    struct wire_hello fresh = h;
    fresh.cluster_id = "";
    buf_reset(&b);
    wire_hello_frame(&fresh, 2, &b);
    rc |= put(dir, 0, b.data + 4, b.len - 4);
    wire_hello_decide(&fresh, h.cluster_id, 1, NULL, 0, true, reason, &ans);
    buf_reset(&b);
    wire_hello_answer_frame(&ans, 2, &b);
    rc |= put(dir, 1, b.data + 4, b.len - 4);

    static const uint8_t body[] = "a Kafka message body";
    const struct wire_rpc rpcs[] = {
        {.from = 1,
         .to = 2,
         .kind = WIRE_RPC_REQUEST,
         .correlation_id = 1,
         .api_key = 19,
         .api_version = 7,
         .payload = slice_make(body, sizeof(body))},
        {.from = 1,
         .to = 2,
         .kind = WIRE_RPC_RESPONSE,
         .correlation_id = 2,
         .api_key = 19,
         .api_version = 7,
         .error = 41,
         .payload = slice_make(body, 0)},
        {.from = 1,
         .to = 2,
         .kind = WIRE_RPC_RESPONSE,
         .correlation_id = -3,
         .api_key = 62,
         .api_version = 0,
         .payload = slice_make(body, 5)},
    };
    for (size_t n = 1; n <= sizeof(rpcs) / sizeof(rpcs[0]); n++) {
        buf_reset(&b);
        arena_reset(&a);
        if (wire_rpc_frame(&a, 1, 2, rpcs, n, (int32_t)n, &b) == 0)
            rc |= put(dir, 0, b.data + 4, b.len - 4);
    }

    struct rng rng;
    rng_seed(&rng, 0x5eedc0de);
    for (int16_t t = 0; t < (int16_t)PROTO_METADATA_TYPE_COUNT; t++) {
        const struct proto_message *m = metarec_message(t);
        if (m == NULL)
            continue;
        for (int16_t v = m->version_min; v <= m->version_max; v++) {
            static _Alignas(max_align_t) uint8_t body[4096];
            arena_reset(&a);
            buf_reset(&b);
            if (proto_fill_random(m, &rng, &a, v, body) == 0 && metarec_encode(t, v, body, &b) == 0)
                rc |= put(dir, 2, b.data, b.len);
        }
    }
    buf_deinit(&b);
    arena_deinit(&a);
    return rc == 0 ? 0 : 1;
}
