/*
 * The cluster wire format (cluster/wire.h): every Raft message type round-trips through a whole
 * RaftMessages frame with every field equal and batch bytes borrowed from the frame; heartbeats
 * of many groups coalesce into short entries; counts and sizes over base/limits.h are refused
 * before anything is allocated; malformed frames and foreign requests are refused; the hello
 * decision refuses each kind of stranger and accepts a member, and lets a new node without a
 * cluster id learn it. ClusterRpc frames round-trip every field with payloads borrowed from the
 * frame; every refusal (oversized payload, hostile counts, bad kinds, truncation) in tables.
 *
 * Seed: WIRE_TEST_SEED overrides the seed; it is printed.
 */
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "base/rand.h"
#include "cluster/wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static uint64_t seed = 0x5eed0003;

static struct wire_group group_of(uint8_t topic, int32_t partition)
{
    struct wire_group g = {.partition = partition};
    g.topic_id.bytes[0] = 0xa0;
    g.topic_id.bytes[15] = topic;
    return g;
}

static int64_t rnd64(struct rng *r)
{
    return (int64_t)rng_below(r, 1ull << 40) - 1;
}

/* A message of type with every field random (a full message, never coalesced). */
static void random_msg(struct rng *r, uint8_t type, struct wire_msg *w)
{
    memset(w, 0, sizeof(*w));
    w->group = group_of((uint8_t)rng_below(r, 4), (int32_t)rng_below(r, 1000));
    w->msg = (struct raft_msg){
        .term = rnd64(r),
        .index = rnd64(r),
        .log_term = rnd64(r),
        .last_index = rnd64(r),
        .commit = rnd64(r),
        .hint_index = rnd64(r),
        .hint_term = rnd64(r),
        .seq = (uint32_t)rng_next(r),
        .from = 1,
        .to = 2,
        .type = type,
        .reject = (uint8_t)rng_below(r, 2),
        .flag = (uint8_t)rng_below(r, 2),
    };
    /* Make sure no random message looks like a core heartbeat. */
    w->msg.hint_term |= 1;
}

struct batches {
    struct raft_batch shapes[3];
    struct slice bytes[3];
    uint8_t data[3][100];
};

static void random_batches(struct rng *r, struct batches *b, struct wire_msg *w)
{
    uint16_t n = (uint16_t)rng_range(r, 1, 3);
    int64_t at = w->msg.index;

    for (uint16_t i = 0; i < n; i++) {
        size_t len = rng_range(r, 1, sizeof(b->data[i]));
        rng_fill(r, b->data[i], len);
        b->bytes[i] = slice_make(b->data[i], len);
        b->shapes[i] = (struct raft_batch){
            .first_index = at + 1,
            .last_index = at + 1 + (int64_t)rng_below(r, 10),
            .term = rnd64(r),
            .bytes = (uint32_t)len,
            .kind = (uint8_t)rng_below(r, 3),
            .op = (uint8_t)rng_below(r, 4),
            .node = (int32_t)rng_below(r, 100),
        };
        at = b->shapes[i].last_index;
    }
    w->msg.batches = b->shapes;
    w->msg.batch_count = n;
    w->batch_bytes = b->bytes;
}

static void assert_msg_equal(const struct wire_msg *a, const struct wire_msg *b)
{
    assert_true(wire_group_eq(&a->group, &b->group));
    assert_int_equal(a->msg.type, b->msg.type);
    assert_int_equal(a->msg.term, b->msg.term);
    assert_int_equal(a->msg.index, b->msg.index);
    assert_int_equal(a->msg.log_term, b->msg.log_term);
    assert_int_equal(a->msg.last_index, b->msg.last_index);
    assert_int_equal(a->msg.commit, b->msg.commit);
    assert_int_equal(a->msg.hint_index, b->msg.hint_index);
    assert_int_equal(a->msg.hint_term, b->msg.hint_term);
    assert_int_equal(a->msg.seq, b->msg.seq);
    assert_int_equal(a->msg.from, b->msg.from);
    assert_int_equal(a->msg.to, b->msg.to);
    assert_int_equal(a->msg.reject, b->msg.reject);
    assert_int_equal(a->msg.flag, b->msg.flag);
    assert_int_equal(a->msg.batch_count, b->msg.batch_count);
    for (uint16_t i = 0; i < a->msg.batch_count; i++) {
        const struct raft_batch *x = &a->msg.batches[i], *y = &b->msg.batches[i];
        assert_int_equal(x->first_index, y->first_index);
        assert_int_equal(x->last_index, y->last_index);
        assert_int_equal(x->term, y->term);
        assert_int_equal(x->bytes, y->bytes);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->op, y->op);
        assert_int_equal(x->node, y->node);
        assert_true(slice_eq(a->batch_bytes[i], b->batch_bytes[i]));
    }
}

/* Encodes msgs as one frame and decodes it; checks the frame's envelope. */
static void frame_round_trip(const struct wire_msg *msgs, size_t count, struct arena *a,
                             struct buf *frame, struct wire_request *req)
{
    buf_reset(frame);
    assert_int_equal(wire_raft_frame(a, 1, 2, msgs, count, 77, frame), 0);
    assert_int_equal(be32_load(frame->data), frame->len - WIRE_FRAME_PREFIX_BYTES);
    assert_int_equal(be16_load(frame->data + 4), WIRE_API_RAFT_MESSAGES); /* header v2 */
    struct slice body = slice_make(frame->data + 4, frame->len - 4);
    assert_int_equal(wire_request_decode(a, body, req), 0);
    assert_int_equal(req->api_key, WIRE_API_RAFT_MESSAGES);
    assert_int_equal(req->correlation_id, 77);
    assert_int_equal(req->raft.from, 1);
    assert_int_equal(req->raft.to, 2);
    assert_int_equal(req->raft.count, count);
}

/* The decoded message of group g with this type and term (frame order is by topic). */
static const struct wire_msg *find(const struct wire_raft *r, const struct wire_msg *want)
{
    for (size_t i = 0; i < r->count; i++) {
        const struct wire_msg *m = &r->msgs[i];
        if (wire_group_eq(&m->group, &want->group) && m->msg.type == want->msg.type &&
            m->msg.term == want->msg.term && m->msg.index == want->msg.index)
            return m;
    }
    return NULL;
}

static void test_every_type_round_trips(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, seed);
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct buf frame;
    buf_init(&frame);

    for (int round = 0; round < 200; round++) {
        struct wire_msg msgs[RAFT_MSG_TYPE_COUNT];
        struct batches b;
        for (uint8_t t = 0; t < RAFT_MSG_TYPE_COUNT; t++)
            random_msg(&rng, t, &msgs[t]);
        random_batches(&rng, &b, &msgs[RAFT_MSG_APPEND]);

        arena_reset(&a);
        struct wire_request req;
        frame_round_trip(msgs, RAFT_MSG_TYPE_COUNT, &a, &frame, &req);
        for (uint8_t t = 0; t < RAFT_MSG_TYPE_COUNT; t++) {
            const struct wire_msg *got = find(&req.raft, &msgs[t]);
            assert_non_null(got);
            assert_msg_equal(&msgs[t], got);
        }
        /* Batch bytes are borrowed from the frame, never copied. */
        const struct wire_msg *app = find(&req.raft, &msgs[RAFT_MSG_APPEND]);
        assert_true(app->batch_bytes[0].ptr > frame.data &&
                    app->batch_bytes[0].ptr < frame.data + frame.len);
    }
    buf_deinit(&frame);
    arena_deinit(&a);
}

/* A heartbeat as the core makes it (msg_new, then term, commit, seq). */
static struct wire_msg core_heartbeat(struct wire_group g, uint8_t type, int64_t term,
                                      int64_t commit, uint32_t seq)
{
    struct wire_msg w = {.group = g};
    w.msg = (struct raft_msg){.type = type,
                              .from = 1,
                              .to = 2,
                              .term = term,
                              .hint_index = -1,
                              .commit = commit,
                              .seq = seq};
    return w;
}

/* Heartbeats of 3 x 300 groups go as short entries in one frame: three topics, no full
 * messages, well under 30 bytes a group, and back exactly as they were. */
static void test_heartbeats_coalesce(void **state)
{
    (void)state;
    enum { PARTS = 300, TOPICS = 3 };
    static struct wire_msg msgs[2 * TOPICS * PARTS];
    size_t n = 0;
    for (uint8_t t = 0; t < TOPICS; t++) {
        for (int32_t p = 0; p < PARTS; p++) {
            msgs[n++] =
                core_heartbeat(group_of(t, p), RAFT_MSG_HEARTBEAT, 7 + p, 1000 + p, (uint32_t)p);
            msgs[n++] =
                core_heartbeat(group_of(t, p), RAFT_MSG_HEARTBEAT_RESP, 5, 0, (uint32_t)p * 3);
        }
    }
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct kafka_raft_messages_request req;
    assert_int_equal(wire_raft_pack(&a, 1, 2, msgs, n, &req), 0);
    assert_int_equal(req.topics.count, TOPICS);
    for (size_t t = 0; t < TOPICS; t++) {
        assert_int_equal(req.topics.items[t].messages.count, 0);
        assert_int_equal(req.topics.items[t].heartbeats.count, PARTS);
        assert_int_equal(req.topics.items[t].heartbeat_responses.count, PARTS);
        /* In the order the groups sent them. */
        assert_int_equal(req.topics.items[t].heartbeats.items[PARTS - 1].partition, PARTS - 1);
    }
    struct buf frame;
    buf_init(&frame);
    struct wire_request dec;
    frame_round_trip(msgs, n, &a, &frame, &dec);
    assert_true(frame.len < 100 + 25 * n);
    for (size_t i = 0; i < n; i++) {
        const struct wire_msg *got = find(&dec.raft, &msgs[i]);
        assert_non_null(got);
        assert_msg_equal(&msgs[i], got);
        assert_true(wire_msg_bytes(&msgs[i]) >= 25);
    }
    /* A heartbeat carrying anything else goes whole, so nothing is lost. */
    struct wire_msg odd = core_heartbeat(group_of(0, 1), RAFT_MSG_HEARTBEAT, 3, 4, 5);
    odd.msg.reject = 1;
    arena_reset(&a);
    assert_int_equal(wire_raft_pack(&a, 1, 2, &odd, 1, &req), 0);
    assert_int_equal(req.topics.items[0].messages.count, 1);
    assert_int_equal(req.topics.items[0].heartbeats.count, 0);
    frame_round_trip(&odd, 1, &a, &frame, &dec);
    assert_msg_equal(&odd, &dec.raft.msgs[0]);
    buf_deinit(&frame);
    arena_deinit(&a);
}

/* A group's messages keep their order; the metadata group is Kafka's METADATA_TOPIC_ID/0. */
static void test_order_and_metadata_group(void **state)
{
    (void)state;
    struct wire_msg msgs[6];
    for (int i = 0; i < 6; i++) {
        struct wire_group g = i % 2 == 0 ? wire_metadata_group : group_of(9, 4);
        msgs[i] = core_heartbeat(g, RAFT_MSG_APPEND_RESP, 2, 0, 0);
        msgs[i].msg.index = 10 + i;
    }
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct buf frame;
    buf_init(&frame);
    struct wire_request dec;
    frame_round_trip(msgs, 6, &a, &frame, &dec);
    int64_t last[2] = {-1, -1};
    for (size_t i = 0; i < 6; i++) {
        const struct wire_msg *m = &dec.raft.msgs[i];
        int k = wire_group_eq(&m->group, &wire_metadata_group) ? 0 : 1;
        assert_true(m->msg.index > last[k]);
        last[k] = m->msg.index;
    }
    assert_int_equal(wire_metadata_group.partition, 0);
    assert_int_equal(wire_metadata_group.topic_id.bytes[15], 1);
    for (int i = 0; i < 15; i++)
        assert_int_equal(wire_metadata_group.topic_id.bytes[i], 0);
    buf_deinit(&frame);
    arena_deinit(&a);
}

/* Bounds on the way out: too many messages, batches or bytes; messages of other nodes. */
static void test_pack_refuses(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct kafka_raft_messages_request req;

    struct wire_msg *many = calloc(CLUSTER_FRAME_MSGS_MAX + 1, sizeof(*many));
    assert_non_null(many);
    for (size_t i = 0; i <= CLUSTER_FRAME_MSGS_MAX; i++)
        many[i] = core_heartbeat(group_of(0, (int32_t)i), RAFT_MSG_HEARTBEAT, 1, 0, 0);
    assert_int_equal(wire_raft_pack(&a, 1, 2, many, CLUSTER_FRAME_MSGS_MAX + 1, &req),
                     ERR_TOO_LARGE);
    assert_int_equal(arena_used(&a), 0);
    assert_int_equal(wire_raft_pack(&a, 1, 2, many, CLUSTER_FRAME_MSGS_MAX, &req), 0);
    free(many);
    arena_reset(&a);

    static uint8_t data[16];
    struct raft_batch shapes[RAFT_MSG_BATCHES_MAX + 1];
    struct slice bytes[RAFT_MSG_BATCHES_MAX + 1];
    for (size_t i = 0; i <= RAFT_MSG_BATCHES_MAX; i++) {
        shapes[i] = (struct raft_batch){
            .first_index = (int64_t)i, .last_index = (int64_t)i, .term = 1, .bytes = sizeof(data)};
        bytes[i] = slice_make(data, sizeof(data));
    }
    struct wire_msg app = core_heartbeat(group_of(0, 0), RAFT_MSG_APPEND, 1, 0, 0);
    app.msg.batches = shapes;
    app.msg.batch_count = RAFT_MSG_BATCHES_MAX + 1;
    app.batch_bytes = bytes;
    assert_int_equal(wire_raft_pack(&a, 1, 2, &app, 1, &req), ERR_TOO_LARGE);
    app.msg.batch_count = RAFT_MSG_BATCHES_MAX;
    assert_int_equal(wire_raft_pack(&a, 1, 2, &app, 1, &req), 0);

    /* Two batches over RAFT_MSG_BYTES_MAX together; one alone may be larger (up to a batch). */
    shapes[0].bytes = RAFT_MSG_BYTES_MAX;
    bytes[0] = slice_make(data, RAFT_MSG_BYTES_MAX); /* never read: refused first */
    app.msg.batch_count = 2;
    assert_int_equal(wire_raft_pack(&a, 1, 2, &app, 1, &req), ERR_TOO_LARGE);
    shapes[0].bytes = LOG_BATCH_BYTES_MAX + 1;
    bytes[0].len = LOG_BATCH_BYTES_MAX + 1;
    app.msg.batch_count = 1;
    assert_int_equal(wire_raft_pack(&a, 1, 2, &app, 1, &req), ERR_TOO_LARGE);

    /* Bytes that disagree with the shape, batches on a vote, another sender, a bad type. */
    shapes[0].bytes = 3;
    bytes[0].len = 4;
    assert_int_equal(wire_raft_pack(&a, 1, 2, &app, 1, &req), ERR_INVALID);
    bytes[0].len = 3;
    app.msg.type = RAFT_MSG_VOTE;
    assert_int_equal(wire_raft_pack(&a, 1, 2, &app, 1, &req), ERR_INVALID);
    app.msg.type = RAFT_MSG_APPEND;
    assert_int_equal(wire_raft_pack(&a, 3, 2, &app, 1, &req), ERR_INVALID);
    app.msg.type = RAFT_MSG_TYPE_COUNT;
    assert_int_equal(wire_raft_pack(&a, 1, 2, &app, 1, &req), ERR_INVALID);
    arena_deinit(&a);
}

/* Bounds on the way in are checked before the converter allocates anything. */
static void test_unpack_refuses_before_allocating(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct wire_raft out;
    struct kafka_raft_messages_request req;
    kafka_raft_messages_request_init(&req);
    req.from_node_id = 1;
    req.to_node_id = 2;

    /* Counts only: the items are never read. */
    req.topics.count = CLUSTER_FRAME_TOPICS_MAX + 1;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_TOO_LARGE);
    struct kafka_raft_messages_request_raft_topic topic = {0};
    topic.heartbeats.count = CLUSTER_FRAME_MSGS_MAX;
    topic.heartbeat_responses.count = 1;
    req.topics.items = &topic;
    req.topics.count = 1;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_TOO_LARGE);
    assert_int_equal(arena_used(&a), 0);

    /* Batches: too many in a message, too many bytes, on a non-append, null records. */
    static uint8_t data[8];
    static struct kafka_raft_messages_request_raft_batch batches[RAFT_MSG_BATCHES_MAX + 1];
    for (size_t i = 0; i <= RAFT_MSG_BATCHES_MAX; i++)
        batches[i] = (struct kafka_raft_messages_request_raft_batch){
            .first_index = (int64_t)i,
            .last_index = (int64_t)i,
            .term = 1,
            .records = slice_make(data, sizeof(data))};
    struct kafka_raft_messages_request_raft_message m = {.type = RAFT_MSG_APPEND,
                                                         .batches = {batches, 1}};
    memset(&topic, 0, sizeof(topic));
    topic.messages.items = &m;
    topic.messages.count = 1;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), 0);
    assert_int_equal(out.msgs[0].msg.batches[0].bytes, sizeof(data));
    m.batches.count = RAFT_MSG_BATCHES_MAX + 1;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_TOO_LARGE);
    m.batches.count = 2;
    batches[0].records.len = RAFT_MSG_BYTES_MAX;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_TOO_LARGE);
    batches[0].records.len = sizeof(data);
    m.type = RAFT_MSG_VOTE_RESP;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_CORRUPT);
    m.type = RAFT_MSG_APPEND;
    batches[1].records.ptr = NULL;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_CORRUPT);
    batches[1].records.ptr = data;
    batches[1].kind = RAFT_BATCH_CONFIG + 1;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_CORRUPT);
    batches[1].kind = 0;
    m.type = RAFT_MSG_TYPE_COUNT;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_CORRUPT);
    m.type = RAFT_MSG_APPEND;
    m.partition = -1;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_CORRUPT);
    m.partition = 0;
    req.from_node_id = 2;
    assert_int_equal(wire_raft_unpack(&a, &req, &out), ERR_CORRUPT);
    arena_deinit(&a);
}

/* Frames that are not ours or not whole: a Kafka request on the cluster port, a short frame,
 * bytes after the body, a frame with more entries than a frame may hold. */
static void test_frames_refused(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct buf b;
    buf_init(&b);
    struct wire_request req;

    /* ApiVersions v3 as kcat sends it: a Kafka client dialled the cluster port. */
    struct kafka_request_header h;
    kafka_request_header_init(&h);
    h.request_api_key = 18;
    h.request_api_version = 3;
    h.client_id = proto_str_make("rdkafka");
    assert_int_equal(kafka_request_header_encode(&h, 2, &b), 0);
    assert_int_equal(wire_request_decode(&a, buf_slice(&b), &req), ERR_UNSUPPORTED);

    struct wire_msg m = core_heartbeat(group_of(1, 1), RAFT_MSG_VOTE, 4, 0, 0);
    buf_reset(&b);
    assert_int_equal(wire_raft_frame(&a, 1, 2, &m, 1, 5, &b), 0);
    struct slice body = slice_make(b.data + 4, b.len - 4);
    for (size_t cut = 0; cut < body.len; cut++) {
        arena_reset(&a);
        assert_int_equal(wire_request_decode(&a, slice_make(body.ptr, cut), &req), ERR_CORRUPT);
    }
    buf_put_u8(&b, 0);
    arena_reset(&a);
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &req), ERR_CORRUPT);

    /* Over CLUSTER_FRAME_MSGS_MAX heartbeats on the wire: refused, memory bounded. */
    struct kafka_raft_messages_request big;
    kafka_raft_messages_request_init(&big);
    big.from_node_id = 1;
    big.to_node_id = 2;
    struct kafka_raft_messages_request_raft_topic topic = {0};
    topic.heartbeats.count = CLUSTER_FRAME_MSGS_MAX + 1;
    topic.heartbeats.items = calloc(topic.heartbeats.count, sizeof(*topic.heartbeats.items));
    assert_non_null(topic.heartbeats.items);
    big.topics.items = &topic;
    big.topics.count = 1;
    buf_reset(&b);
    h.request_api_key = WIRE_API_RAFT_MESSAGES;
    h.request_api_version = 0;
    h.client_id = (struct proto_str){0};
    assert_int_equal(kafka_request_header_encode(&h, 2, &b), 0);
    assert_int_equal(kafka_raft_messages_request_encode(&big, 0, &b), 0);
    arena_reset(&a);
    assert_int_equal(wire_request_decode(&a, buf_slice(&b), &req), ERR_TOO_LARGE);
    assert_true(arena_used(&a) <= CLUSTER_FRAME_ARENA_MAX);
    free(topic.heartbeats.items);
    buf_deinit(&b);
    arena_deinit(&a);
}

static const struct wire_hello hello = {
    .cluster_id = "MkU3OEVBNTcwNTJENDM2Qk",
    .node_id = 2,
    .target_node_id = 1,
    .host = "127.0.0.1",
    .port = 11093,
    .version_min = 0,
    .version_max = 0,
};

/* Each stranger is refused with its own Kafka error code and a reason naming it. */
static void test_hello_decide(void **state)
{
    (void)state;
    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    struct wire_hello_answer ans;

    wire_hello_decide(&hello, hello.cluster_id, 1, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_OK);
    assert_null(ans.reason);
    assert_int_equal(ans.version, 0);
    assert_int_equal(ans.node_id, 1);

    wire_hello_decide(&hello, "AAAAAAAAAAAAAAAAAAAAAA", 1, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_INCONSISTENT_CLUSTER_ID);
    assert_non_null(strstr(ans.reason, "MkU3OEVBNTcwNTJENDM2Qk"));
    assert_int_equal(ans.version, -1);

    wire_hello_decide(&hello, hello.cluster_id, 1, NULL, 0, false, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_BROKER_ID_NOT_REGISTERED);
    assert_non_null(strstr(ans.reason, "node 2"));

    wire_hello_decide(&hello, hello.cluster_id, 3, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_INCONSISTENT_VOTER_SET);
    assert_non_null(strstr(ans.reason, "this is node 3"));

    wire_hello_decide(&hello, hello.cluster_id, 2, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_DUPLICATE_BROKER_REGISTRATION);

    struct wire_hello future = hello;
    future.version_min = 1;
    future.version_max = 3;
    wire_hello_decide(&future, hello.cluster_id, 1, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_UNSUPPORTED_VERSION);
}

/* Another voter list is refused. Found by hand: a standalone broker left running on the first
 * voter's address admitted new voters as observers and handed them its cluster id, which they
 * kept, so the real cluster could never form. */
static void test_hello_decide_voters(void **state)
{
    (void)state;
    static const int32_t three[] = {1, 2, 3}, alone[] = {1}, other[] = {1, 2, 4};
    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    struct wire_hello_answer ans;
    struct wire_hello voter = hello;
    voter.voter_ids = three;
    voter.voter_count = 3;
    struct wire_hello fresh = voter;
    fresh.cluster_id = "";

    wire_hello_decide(&fresh, hello.cluster_id, 1, alone, 1, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_INCONSISTENT_VOTER_SET);
    assert_int_equal(ans.version, -1);
    assert_non_null(strstr(ans.reason, "node 2 has voters 1,2,3, this node (1) has 1: all nodes "
                                       "need the same controller.quorum.voters"));
    wire_hello_decide(&voter, hello.cluster_id, 1, other, 3, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_INCONSISTENT_VOTER_SET);
    assert_non_null(strstr(ans.reason, "this node (1) has 1,2,4"));

    /* The same ids, or no list on either side (an earlier build): accepted. */
    wire_hello_decide(&fresh, hello.cluster_id, 1, three, 3, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_OK);
    assert_string_equal(ans.cluster_id, hello.cluster_id);
    wire_hello_decide(&hello, hello.cluster_id, 1, alone, 1, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_OK);
    wire_hello_decide(&voter, hello.cluster_id, 1, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_OK);
}

/* Hello and answer frames round-trip; a hello with over-long strings is refused. */
static void test_hello_frames(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct buf b;
    buf_init(&b);
    assert_int_equal(wire_hello_frame(&hello, 9, &b), 0);
    assert_int_equal(be32_load(b.data), b.len - 4);
    struct wire_request req;
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &req), 0);
    assert_int_equal(req.api_key, WIRE_API_CLUSTER_HELLO);
    assert_int_equal(req.correlation_id, 9);
    assert_string_equal(req.hello.cluster_id, hello.cluster_id);
    assert_string_equal(req.hello.host, "127.0.0.1");
    assert_int_equal(req.hello.node_id, 2);
    assert_int_equal(req.hello.target_node_id, 1);
    assert_int_equal(req.hello.port, 11093);
    assert_int_equal(req.hello.voter_count, 0);

    /* Voter ids travel ascending; others, or more than a group can have, are corrupt. */
    static const int32_t ids[] = {1, 2, 5}, unsorted[] = {2, 1},
                         many[RAFT_VOTERS_MAX + 1] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct wire_hello with_ids = hello;
    with_ids.voter_ids = ids;
    with_ids.voter_count = 3;
    buf_reset(&b);
    assert_int_equal(wire_hello_frame(&with_ids, 9, &b), 0);
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &req), 0);
    assert_int_equal(req.hello.voter_count, 3);
    assert_memory_equal(req.hello.voter_ids, ids, sizeof(ids));
    with_ids.voter_ids = unsorted;
    with_ids.voter_count = 2;
    buf_reset(&b);
    assert_int_equal(wire_hello_frame(&with_ids, 9, &b), 0);
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &req), ERR_CORRUPT);
    with_ids.voter_ids = many;
    with_ids.voter_count = RAFT_VOTERS_MAX + 1;
    buf_reset(&b);
    assert_int_equal(wire_hello_frame(&with_ids, 9, &b), 0);
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &req), ERR_CORRUPT);
    buf_reset(&b);
    assert_int_equal(wire_hello_frame(&hello, 9, &b), 0);
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &req), 0);

    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    struct wire_hello_answer ans, back;
    wire_hello_decide(&req.hello, "another-cluster", 1, NULL, 0, true, reason, &ans);
    buf_reset(&b);
    assert_int_equal(wire_hello_answer_frame(&ans, 9, &b), 0);
    int32_t corr = 0;
    assert_int_equal(wire_hello_answer_decode(&a, slice_make(b.data + 4, b.len - 4), &corr, &back),
                     0);
    assert_int_equal(corr, 9);
    assert_int_equal(back.error_code, WIRE_HELLO_INCONSISTENT_CLUSTER_ID);
    assert_string_equal(back.reason, ans.reason);
    assert_string_equal(back.cluster_id, "another-cluster");
    assert_int_equal(back.node_id, 1);

    char host[CLUSTER_HOST_BYTES_MAX + 2];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = 0;
    struct wire_hello bad = hello;
    bad.host = host;
    buf_reset(&b);
    assert_int_equal(wire_hello_frame(&bad, 1, &b), 0);
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &req), ERR_CORRUPT);

    /* A NUL inside a string (found by fuzz_cluster): "MkU3...\0x" must not pass for the cluster
     * id before the NUL, in a hello or in an answer. */
    buf_reset(&b);
    assert_int_equal(wire_hello_frame(&hello, 1, &b), 0);
    uint8_t *nul = memmem(b.data, b.len, "MkU3", 4);
    assert_non_null(nul);
    nul[21] = 0;
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &req), ERR_CORRUPT);
    buf_reset(&b);
    assert_int_equal(wire_hello_answer_frame(&ans, 9, &b), 0);
    nul = memmem(b.data, b.len, "another", 7);
    assert_non_null(nul);
    nul[3] = 0;
    assert_int_equal(wire_hello_answer_decode(&a, slice_make(b.data + 4, b.len - 4), &corr, &back),
                     ERR_CORRUPT);
    buf_deinit(&b);
    arena_deinit(&a);
}

/* A RaftMessages frame with one coalesced heartbeat of the metadata group, byte by byte. */
static void test_heartbeat_frame_bytes(void **state)
{
    (void)state;
    /* clang-format off */
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x42,             /* size: 66 */
        0x7d, 0x01,                         /* api key 32001: RaftMessages */
        0x00, 0x00,                         /* version 0 */
        0x00, 0x00, 0x00, 0x07,             /* correlation id */
        0xff, 0xff,                         /* client id: null (classic string) */
        0x00,                               /* header tags */
        0x00, 0x00, 0x00, 0x01,             /* FromNodeId */
        0x00, 0x00, 0x00, 0x02,             /* ToNodeId */
        0x02,                               /* Topics: 1 (compact) */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* METADATA_TOPIC_ID */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x01,                               /* Messages: none */
        0x02,                               /* Heartbeats: 1 */
        0x00, 0x00, 0x00, 0x00,             /* Partition 0 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, /* Term */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, /* Commit */
        0x00, 0x00, 0x00, 0x0b,             /* Seq */
        0x00,                               /* heartbeat tags */
        0x01,                               /* HeartbeatResponses: none */
        0x00,                               /* topic tags */
        0x00,                               /* body tags */
    };
    /* clang-format on */
    struct wire_msg hb = core_heartbeat(wire_metadata_group, RAFT_MSG_HEARTBEAT, 5, 9, 11);
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct buf b;
    buf_init(&b);
    assert_int_equal(wire_raft_frame(&a, 1, 2, &hb, 1, 7, &b), 0);
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    buf_deinit(&b);
    arena_deinit(&a);
}

/* ---- controller RPCs ---- */

static struct wire_rpc rpc_of(uint8_t kind, int64_t corr, int16_t error, struct slice payload)
{
    return (struct wire_rpc){.from = 1,
                             .to = 2,
                             .kind = kind,
                             .correlation_id = corr,
                             .api_key = 19,
                             .api_version = 7,
                             .error = error,
                             .payload = payload};
}

/* A frame of RPCs round-trips with every field equal, payloads pointing into the frame, and
 * the frame's envelope (api key 32002, correlation id, nodes). Catches: a field dropped or
 * truncated on the way (int64 correlation ids, negative api versions, errors on responses); a
 * payload copied (memory per frame) or mixed up between RPCs; an empty payload decoded as NULL. */
static void test_rpc_round_trip(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct buf b;
    buf_init(&b);
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    const struct wire_rpc rpcs[] = {
        rpc_of(WIRE_RPC_REQUEST, 1, 0, slice_make((const uint8_t *)"create", 6)),
        rpc_of(WIRE_RPC_RESPONSE, INT64_MAX, 0, slice_make((const uint8_t *)"created", 7)),
        rpc_of(WIRE_RPC_RESPONSE, INT64_MIN, 41, slice_make(NULL, 0)),
        rpc_of(WIRE_RPC_REQUEST, -5, 0, slice_make(big, sizeof(big))),
    };
    const size_t n = sizeof(rpcs) / sizeof(rpcs[0]);
    struct wire_rpc odd = rpcs[0];
    odd.api_key = 32767;
    odd.api_version = -1;

    for (size_t count = 0; count <= n; count++) {
        arena_reset(&a);
        buf_reset(&b);
        assert_int_equal(wire_rpc_frame(&a, 1, 2, rpcs, count, 31, &b), 0);
        assert_int_equal(be32_load(b.data), b.len - WIRE_FRAME_PREFIX_BYTES);
        assert_int_equal(be16_load(b.data + 4), WIRE_API_CLUSTER_RPC);
        struct slice body = slice_make(b.data + 4, b.len - 4);
        struct wire_request req;
        assert_int_equal(wire_request_decode(&a, body, &req), 0);
        assert_int_equal(req.api_key, WIRE_API_CLUSTER_RPC);
        assert_int_equal(req.correlation_id, 31);
        assert_int_equal(req.rpcs.from, 1);
        assert_int_equal(req.rpcs.to, 2);
        assert_int_equal(req.rpcs.count, count);
        for (size_t i = 0; i < count; i++) {
            const struct wire_rpc *x = &rpcs[i], *y = &req.rpcs.rpcs[i];
            assert_int_equal(y->from, 1);
            assert_int_equal(y->to, 2);
            assert_int_equal(y->kind, x->kind);
            assert_int_equal(y->correlation_id, x->correlation_id);
            assert_int_equal(y->api_key, x->api_key);
            assert_int_equal(y->api_version, x->api_version);
            assert_int_equal(y->error, x->error);
            assert_non_null(y->payload.ptr);
            assert_true(slice_eq(y->payload, x->payload));
            if (y->payload.len > 0)
                assert_true(y->payload.ptr > body.ptr && y->payload.ptr < body.ptr + body.len);
        }
    }
    size_t est = 0;
    for (size_t i = 0; i < n; i++)
        est += wire_rpc_bytes(&rpcs[i]);
    assert_true(b.len <= est + 64); /* the estimate bounds the frame, its header aside */

    arena_reset(&a);
    buf_reset(&b);
    assert_int_equal(wire_rpc_frame(&a, 1, 2, &odd, 1, 1, &b), 0);
    struct wire_request req;
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &req), 0);
    assert_int_equal(req.rpcs.rpcs[0].api_key, 32767);
    assert_int_equal(req.rpcs.rpcs[0].api_version, -1);
    buf_deinit(&b);
    arena_deinit(&a);
}

/* What the sender refuses: each row an RPC (or frame nodes) and the error. Catches: an RPC
 * that cannot be decoded by the peer leaving anyway (a whole frame lost for one bad RPC); a
 * payload over CLUSTER_RPC_BYTES_MAX read or copied before being refused; a frame from a node to
 * itself (self RPCs never touch the wire). */
static void test_rpc_pack_refuses(void **state)
{
    (void)state;
    static const uint8_t p[4] = {1, 2, 3, 4};
    const struct slice ok = slice_make(p, sizeof(p));
    const struct slice huge = slice_make(p, (size_t)CLUSTER_RPC_BYTES_MAX + 1); /* never read */
    struct row {
        const char *what;
        int32_t from, to;
        struct wire_rpc r;
        int want;
    } rows[] = {
        {"fine", 1, 2, rpc_of(WIRE_RPC_REQUEST, 1, 0, ok), 0},
        {"empty payload", 1, 2, rpc_of(WIRE_RPC_RESPONSE, 1, 0, slice_make(p, 0)), 0},
        {"payload over the bound", 1, 2, rpc_of(WIRE_RPC_REQUEST, 1, 0, huge), ERR_TOO_LARGE},
        {"kind 2", 1, 2, rpc_of(2, 1, 0, ok), ERR_INVALID},
        {"kind 255", 1, 2, rpc_of(255, 1, 0, ok), ERR_INVALID},
        {"request with an error", 1, 2, rpc_of(WIRE_RPC_REQUEST, 1, 41, ok), ERR_INVALID},
        {"NULL payload with a length", 1, 2, rpc_of(WIRE_RPC_REQUEST, 1, 0, slice_make(NULL, 3)),
         ERR_INVALID},
        {"frame to self", 1, 1, rpc_of(WIRE_RPC_REQUEST, 1, 0, ok), ERR_INVALID},
        {"negative node", -1, 2, rpc_of(WIRE_RPC_REQUEST, 1, 0, ok), ERR_INVALID},
        {"rpc of another sender", 3, 2, rpc_of(WIRE_RPC_REQUEST, 1, 0, ok), ERR_INVALID},
    };
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct row *w = &rows[i];
        if (w->from == w->to || w->from < 0)
            w->r.from = w->from, w->r.to = w->to;
        print_message("%s\n", w->what);
        arena_reset(&a);
        buf_reset(&b);
        assert_int_equal(wire_rpc_frame(&a, w->from, w->to, &w->r, 1, 1, &b), w->want);
        if (w->want != 0)
            assert_int_equal(b.len, 0);
        if (w->from == 1 && w->to == 2)
            assert_int_equal(wire_rpc_check(&w->r), w->want);
    }

    /* More RPCs than a frame may hold: refused by the count, before anything is read. */
    struct wire_rpc *many = calloc(CLUSTER_FRAME_RPCS_MAX + 1, sizeof(*many));
    assert_non_null(many);
    for (size_t i = 0; i <= CLUSTER_FRAME_RPCS_MAX; i++)
        many[i] = rpc_of(WIRE_RPC_REQUEST, (int64_t)i, 0, ok);
    struct kafka_cluster_rpc_request req;
    arena_reset(&a);
    assert_int_equal(wire_rpc_pack(&a, 1, 2, many, CLUSTER_FRAME_RPCS_MAX + 1, &req),
                     ERR_TOO_LARGE);
    assert_int_equal(arena_used(&a), 0);
    assert_int_equal(wire_rpc_pack(&a, 1, 2, many, CLUSTER_FRAME_RPCS_MAX, &req), 0);
    free(many);
    buf_deinit(&b);
    arena_deinit(&a);
}

/* Writes a ClusterRpc frame (after its size prefix) straight from the generated struct, with
 * none of pack's checks: what a hostile or broken peer could send. */
static void raw_rpc_frame(const struct kafka_cluster_rpc_request *req, struct buf *b)
{
    struct kafka_request_header h;
    kafka_request_header_init(&h);
    h.request_api_key = WIRE_API_CLUSTER_RPC;
    h.request_api_version = 0;
    h.correlation_id = 3;
    buf_reset(b);
    assert_int_equal(kafka_request_header_encode(&h, 2, b), 0);
    assert_int_equal(kafka_cluster_rpc_request_encode(req, 0, b), 0);
}

/* What the receiver refuses, each row a frame a peer could send, decoded from the wire. Catches:
 * a payload over CLUSTER_RPC_BYTES_MAX or more RPCs than a frame may hold accepted (or their
 * memory allocated before the check); an unknown kind or a request with an error passed up to
 * the RPC layer; a frame from a node to itself; a truncated frame or trailing bytes read past;
 * a huge count on the wire allocating before the bytes behind it are there. */
static void test_rpc_frames_refused(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_FRAME_ARENA_MAX);
    struct buf b;
    buf_init(&b);
    struct wire_request out;
    uint8_t *big = calloc(1, CLUSTER_RPC_BYTES_MAX + 1);
    assert_non_null(big);
    struct kafka_cluster_rpc_request_rpc one = {
        .kind = WIRE_RPC_REQUEST, .correlation_id = 1, .payload = slice_make(big, 10)};
    struct row {
        const char *what;
        int32_t from, to;
        int8_t kind;
        int16_t error;
        size_t payload_len;
        int want;
    } rows[] = {
        {"fine", 1, 2, WIRE_RPC_REQUEST, 0, 10, 0},
        {"largest payload", 1, 2, WIRE_RPC_RESPONSE, 0, CLUSTER_RPC_BYTES_MAX, 0},
        {"payload over the bound", 1, 2, WIRE_RPC_RESPONSE, 0, CLUSTER_RPC_BYTES_MAX + 1,
         ERR_TOO_LARGE},
        {"kind -1", 1, 2, -1, 0, 10, ERR_CORRUPT},
        {"kind 2", 1, 2, 2, 0, 10, ERR_CORRUPT},
        {"request with an error", 1, 2, WIRE_RPC_REQUEST, 41, 10, ERR_CORRUPT},
        {"response with an error", 1, 2, WIRE_RPC_RESPONSE, 41, 10, 0},
        {"from itself", 2, 2, WIRE_RPC_REQUEST, 0, 10, ERR_CORRUPT},
        {"negative sender", -1, 2, WIRE_RPC_REQUEST, 0, 10, ERR_CORRUPT},
        {"negative receiver", 1, -3, WIRE_RPC_REQUEST, 0, 10, ERR_CORRUPT},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        struct kafka_cluster_rpc_request req;
        print_message("%s\n", w->what);
        kafka_cluster_rpc_request_init(&req);
        req.from_node_id = w->from;
        req.to_node_id = w->to;
        one.kind = w->kind;
        one.error_code = w->error;
        one.payload = slice_make(big, w->payload_len);
        req.rpcs.items = &one;
        req.rpcs.count = 1;
        raw_rpc_frame(&req, &b);
        arena_reset(&a);
        assert_int_equal(wire_request_decode(&a, buf_slice(&b), &out), w->want);
        assert_true(arena_used(&a) < 4096); /* the payload is borrowed, never copied */
    }

    /* Counts: over CLUSTER_FRAME_RPCS_MAX whole RPCs on the wire; refused with memory bounded.
     * The converter alone refuses by the count before allocating. */
    struct kafka_cluster_rpc_request req;
    kafka_cluster_rpc_request_init(&req);
    req.from_node_id = 1;
    req.to_node_id = 2;
    req.rpcs.count = CLUSTER_FRAME_RPCS_MAX + 1;
    req.rpcs.items = calloc(req.rpcs.count, sizeof(*req.rpcs.items));
    assert_non_null(req.rpcs.items);
    for (size_t i = 0; i < req.rpcs.count; i++)
        req.rpcs.items[i].payload = slice_make(big, 0);
    raw_rpc_frame(&req, &b);
    arena_reset(&a);
    assert_int_equal(wire_request_decode(&a, buf_slice(&b), &out), ERR_TOO_LARGE);
    assert_true(arena_used(&a) <= CLUSTER_FRAME_ARENA_MAX);
    free(req.rpcs.items);
    struct wire_rpcs unpacked;
    req.rpcs.items = NULL; /* never read */
    arena_reset(&a);
    assert_int_equal(wire_rpc_unpack(&a, &req, &unpacked), ERR_TOO_LARGE);
    assert_int_equal(arena_used(&a), 0);

    /* A count of 2^31 - 2 RPCs with nothing behind it: short, not a huge allocation. */
    struct kafka_request_header h;
    kafka_request_header_init(&h);
    h.request_api_key = WIRE_API_CLUSTER_RPC;
    buf_reset(&b);
    assert_int_equal(kafka_request_header_encode(&h, 2, &b), 0);
    buf_put_be32(&b, 1);
    buf_put_be32(&b, 2);
    static const uint8_t count[] = {0xff, 0xff, 0xff, 0xff, 0x07}; /* compact: count + 1 */
    buf_append(&b, count, sizeof(count));
    arena_reset(&a);
    int rc = wire_request_decode(&a, buf_slice(&b), &out);
    assert_true(rc == ERR_CORRUPT || rc == ERR_TOO_LARGE);
    assert_true(arena_used(&a) < 4096);

    /* Every truncation of a good frame, and a byte too many. */
    struct wire_rpc good[2] = {rpc_of(WIRE_RPC_REQUEST, 7, 0, slice_make(big, 40)),
                               rpc_of(WIRE_RPC_RESPONSE, 8, 41, slice_make(big, 0))};
    buf_reset(&b);
    arena_reset(&a);
    assert_int_equal(wire_rpc_frame(&a, 1, 2, good, 2, 5, &b), 0);
    struct slice body = slice_make(b.data + 4, b.len - 4);
    for (size_t cut = 0; cut < body.len; cut++) {
        arena_reset(&a);
        assert_int_equal(wire_request_decode(&a, slice_make(body.ptr, cut), &out), ERR_CORRUPT);
    }
    buf_put_u8(&b, 0);
    arena_reset(&a);
    assert_int_equal(wire_request_decode(&a, slice_make(b.data + 4, b.len - 4), &out), ERR_CORRUPT);
    free(big);
    buf_deinit(&b);
    arena_deinit(&a);
}

/* A new node (no cluster id yet) and a member: the member admits it and tells it the id; two
 * new nodes refuse each other; admission and the other checks still apply to a new node.
 * Catches: a member refusing every new node (a cluster could never grow); a new node adopting
 * an id from a node it does not admit; two new nodes linking up with no cluster to agree on;
 * a member's answer that does not carry the id. */
static void test_hello_decide_new_node(void **state)
{
    (void)state;
    char reason[CLUSTER_HELLO_REASON_BYTES_MAX];
    struct wire_hello_answer ans;
    struct wire_hello fresh = hello;
    fresh.cluster_id = "";

    wire_hello_decide(&fresh, hello.cluster_id, 1, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_OK);
    assert_string_equal(ans.cluster_id, hello.cluster_id);

    wire_hello_decide(&fresh, hello.cluster_id, 1, NULL, 0, false, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_BROKER_ID_NOT_REGISTERED);

    wire_hello_decide(&fresh, "", 1, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_INCONSISTENT_CLUSTER_ID);
    assert_non_null(strstr(ans.reason, "knows the cluster id"));
    assert_string_equal(ans.cluster_id, "");

    /* A new node receiving a member's hello: accepted with the member's id, unless the member
     * is not admitted, in which case the answer carries the new node's (empty) id. */
    wire_hello_decide(&hello, "", 1, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_OK);
    assert_string_equal(ans.cluster_id, hello.cluster_id);
    wire_hello_decide(&hello, "", 1, NULL, 0, false, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_BROKER_ID_NOT_REGISTERED);
    assert_string_equal(ans.cluster_id, "");

    wire_hello_decide(&fresh, hello.cluster_id, 3, NULL, 0, true, reason, &ans);
    assert_int_equal(ans.error_code, WIRE_HELLO_INCONSISTENT_VOTER_SET);
}

int main(void)
{
    const char *env = getenv("WIRE_TEST_SEED");
    if (env != NULL)
        seed = strtoull(env, NULL, 0);
    printf("wire test seed 0x%llx (override with WIRE_TEST_SEED)\n", (unsigned long long)seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_type_round_trips),
        cmocka_unit_test(test_heartbeats_coalesce),
        cmocka_unit_test(test_order_and_metadata_group),
        cmocka_unit_test(test_pack_refuses),
        cmocka_unit_test(test_unpack_refuses_before_allocating),
        cmocka_unit_test(test_frames_refused),
        cmocka_unit_test(test_hello_decide),
        cmocka_unit_test(test_hello_decide_voters),
        cmocka_unit_test(test_hello_frames),
        cmocka_unit_test(test_heartbeat_frame_bytes),
        cmocka_unit_test(test_rpc_round_trip),
        cmocka_unit_test(test_rpc_pack_refuses),
        cmocka_unit_test(test_rpc_frames_refused),
        cmocka_unit_test(test_hello_decide_new_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
