/*
 * What clients see of the cluster (src/broker/nodes.c and the handlers that use it), through
 * the real broker on the simulated disk: a client on a loopback socket sends requests encoded
 * with the generated codecs and decodes the answers.
 *
 * The metadata image is given what the metadata Raft group will put there: brokers 2 (alive)
 * and 3 (fenced) registered with their KRaft records, and partitions led by them, while this
 * node (1) is not registered (it then counts as registered, at its configured endpoint, as a
 * standalone node). Topic "t": partition 0 led here at epoch 3, 1 by node 2 at epoch 5, 2 by
 * the fenced node 3, 3 by nobody. Each test names the bug it catches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/error.h"
#include "broker/broker_internal.h"
#include "cluster/meta_records.h"
#include "group/group.h"
#include "io/io_sim.h"
#include "log/batch.h"
#include "proto/gen/kafka.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOPIC         "t"
#define PARTITIONS    4
#define OFFSETS_PARTS 4
#define NODE2_HOST    "node2.example"
#define NODE2_PORT    9093
#define NODE2_RACK    "rack-2"
#define NODE3_PORT    9094

enum { P_LOCAL = 0, P_NODE2 = 1, P_FENCED = 2, P_NONE = 3 };

struct world {
    struct io *io;
    struct broker_config cfg;
    struct broker_env env;
    struct broker *b;
    int fd;
    int32_t next_id;
    struct buf in;
    struct arena a; /* decoded responses */
};

static struct world w;

/* ---- the client ------------------------------------------------------------------------- */

static void config_make(struct broker_config *cfg)
{
    struct broker_config_input input;
    struct broker_config_error err;
    broker_config_input_init(&input, NULL);
    assert_int_equal(broker_config_input_set(&input, BROKER_CONFIG_SOURCE_FLAG, "log.dirs", "/data",
                                             0, "--data-dir", &err),
                     0);
    assert_int_equal(broker_config_input_set(&input, BROKER_CONFIG_SOURCE_SET,
                                             "offsets.topic.num.partitions", "4", 0, NULL, &err),
                     0);
    /* A joined group waits for more members: its JoinGroup stays parked while the test runs. */
    assert_int_equal(broker_config_input_set(&input, BROKER_CONFIG_SOURCE_SET,
                                             "group.initial.rebalance.delay.ms", "60000", 0, NULL,
                                             &err),
                     0);
    assert_int_equal(broker_config_resolve(&input, cfg, &err), 0);
    broker_config_input_deinit(&input);
    snprintf(cfg->listener.host, sizeof(cfg->listener.host), "127.0.0.1");
    cfg->listener.port = 0;
    cfg->cluster_port = 0;
}

static void send_request(int16_t key, int16_t version, const void *req)
{
    const struct proto_api *api = proto_api_get(key);
    assert_non_null(api);
    struct kafka_request_header h;
    kafka_request_header_init(&h);
    h.request_api_key = key;
    h.request_api_version = version;
    h.correlation_id = w.next_id++;
    h.client_id = proto_str_make("cluster-view-test");
    struct buf out;
    buf_init(&out);
    buf_append(&out, "\0\0\0\0", 4);
    int hv = proto_request_header_version(key, version);
    assert_true(hv >= 0);
    assert_int_equal(kafka_request_header_encode(&h, (int16_t)hv, &out), 0);
    assert_int_equal(proto_encode(api->request, req, version, &out), 0);
    be32_store(out.data, (uint32_t)(out.len - 4));
    ssize_t n = send(w.fd, out.data, out.len, MSG_NOSIGNAL);
    assert_int_equal(n, (ssize_t)out.len);
    buf_deinit(&out);
}

/* Runs the loop until the next response is in; decodes it (memory of w.a). */
static void *receive(int16_t key, int16_t version)
{
    const struct proto_api *api = proto_api_get(key);
    uint8_t chunk[65536];
    for (int i = 0; i < 5000; i++) {
        if (w.in.len >= 4 && w.in.len - 4 >= be32_load(w.in.data))
            break;
        assert_int_equal(broker_run_once(w.b, 1), 0);
        broker_flush_pending(w.b);
        ssize_t n = recv(w.fd, chunk, sizeof(chunk), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        assert_true(n > 0);
        buf_append(&w.in, chunk, (size_t)n);
    }
    assert_true(w.in.len >= 4);
    uint32_t size = be32_load(w.in.data);
    assert_true(w.in.len - 4 >= size);
    struct reader r;
    rd_init(&r, w.in.data + 4, size);
    struct kafka_response_header h;
    int hv = proto_response_header_version(key, version);
    assert_int_equal(kafka_response_header_decode(&w.a, &r, (int16_t)hv, &h), 0);
    void *resp = arena_zalloc(&w.a, api->response->body->bytes);
    assert_non_null(resp);
    int drc = proto_decode(api->response, &w.a, &r, version, resp);
    if (drc != 0)
        fail_msg("decoding the answer of api %d v%d: %s", key, version, err_str(drc));
    memmove(w.in.data, w.in.data + 4 + size, w.in.len - 4 - size);
    w.in.len -= 4 + size;
    return resp;
}

static void *call(int16_t key, int16_t version, const void *req)
{
    send_request(key, version, req);
    return receive(key, version);
}

/* ---- the image -------------------------------------------------------------------------- */

static void register_broker(int32_t id, const char *host, uint16_t port, const char *rack,
                            bool fenced)
{
    struct meta_endpoint e = {.name = "PLAINTEXT", .host = (char *)host, .port = port};
    struct meta_broker mb = {.id = id,
                             .epoch = 10 + id,
                             .endpoint_count = 1,
                             .endpoints = &e,
                             .rack = (char *)rack,
                             .fenced = fenced};
    mb.incarnation_id.b[0] = (uint8_t)id;
    struct meta_records r;
    meta_records_init(&r);
    meta_records_add_broker(&r, &mb);
    struct buf batch;
    buf_init(&batch);
    assert_int_equal(meta_records_batch(&r, 0, r.count, 0, &batch), 0);
    assert_int_equal(meta_apply_batch(&w.b->meta, buf_slice(&batch), NULL), 0);
    buf_deinit(&batch);
    meta_records_deinit(&r);
    assert_int_equal(meta_broker_find(&w.b->meta, id)->fenced, fenced);
}

/* The partition's leader and epoch, and its replicas and ISR as [leader] (none: [self]). */
static void set_leader(const char *topic, uint32_t p, int32_t leader, int32_t epoch)
{
    assert_int_equal(meta_partition_set_leader(&w.b->meta, topic, p, leader, epoch), 0);
    struct meta_partition *mp = &meta_topic_find(&w.b->meta, topic, strlen(topic))->partitions[p];
    mp->replicas[0] = mp->isr[0] = leader >= 0 ? leader : w.b->cfg->node_id;
    mp->replica_count = mp->isr_count = 1;
}

static void on_created(void *ctx, const struct buf *response)
{
    assert_non_null(response);
    *(bool *)ctx = true;
}

static int setup(void **state)
{
    (void)state;
    memset(&w, 0, sizeof(w));
    buf_init(&w.in);
    arena_init(&w.a, ARENA_BLOCK_BYTES_DEFAULT, 1ull << 30); /* every response of a test */
    w.io = io_sim_create();
    w.env = (struct broker_env){.io = w.io, .clock = clock_real(), .flush_manual = true};
    config_make(&w.cfg);
    assert_int_equal(broker_open(&w.cfg, &w.env, &w.b), 0);
    struct proto_str name = proto_str_make(TOPIC);
    bool created = false;
    broker_create_topics(w.b, &name, 1, PARTITIONS, NULL, NULL, 0, on_created, &created);
    while (!created) {
        broker_flush_pending(w.b);
        assert_int_equal(broker_run_once(w.b, 10), 0);
    }
    while (!broker_partitions_opened(w.b))
        assert_int_equal(broker_run_once(w.b, 10), 0);
    assert_int_equal(w.b->cfg->node_id, 1);

    register_broker(2, NODE2_HOST, NODE2_PORT, NODE2_RACK, false);
    register_broker(3, "node3.example", NODE3_PORT, NULL, true);
    set_leader(TOPIC, P_LOCAL, 1, 3);
    set_leader(TOPIC, P_NODE2, 2, 5);
    set_leader(TOPIC, P_FENCED, 3, 2);
    set_leader(TOPIC, P_NONE, -1, 1);

    w.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(w.fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(broker_port(w.b))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(w.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(fcntl(w.fd, F_SETFL, O_NONBLOCK), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(w.fd);
    broker_close(w.b);
    io_destroy(w.io);
    arena_deinit(&w.a);
    buf_deinit(&w.in);
    return 0;
}

/* ---- Metadata and DescribeCluster -------------------------------------------------------- */

static const struct kafka_metadata_response_metadata_response_partition *
partition_of(const struct kafka_metadata_response *resp, const char *topic, int32_t p)
{
    for (size_t t = 0; t < resp->topics.count; t++) {
        const struct kafka_metadata_response_metadata_response_topic *mt = &resp->topics.items[t];
        if (!proto_str_eq(mt->name, topic))
            continue;
        for (size_t i = 0; i < mt->partitions.count; i++)
            if (mt->partitions.items[i].partition_index == p)
                return &mt->partitions.items[i];
    }
    fail_msg("no partition %s-%d in Metadata", topic, p);
    return NULL;
}

/* Bug caught: Metadata naming this node as the only broker, controller and leader of every
 * partition (the single-node answer), listing a fenced broker, or sending clients to a
 * fenced leader or to none at all. */
static void test_metadata_is_the_image(void **state)
{
    (void)state;
    w.b->controller_id = 2; /* the metadata group's leader, as the lead's part will set it */
    for (int16_t v = 1; v <= 12; v++) {
        struct kafka_metadata_request req;
        kafka_metadata_request_init(&req);
        req.topics.items = NULL; /* all topics (v1+) */
        const struct kafka_metadata_response *resp = call(3, v, &req);
        assert_int_equal(resp->brokers.count, 2);
        assert_int_equal(resp->brokers.items[0].node_id, 1);
        assert_true(proto_str_eq(resp->brokers.items[0].host, w.b->cfg->advertised.host));
        assert_int_equal(resp->brokers.items[0].port, w.b->cfg->advertised.port);
        assert_int_equal(resp->brokers.items[1].node_id, 2);
        assert_true(proto_str_eq(resp->brokers.items[1].host, NODE2_HOST));
        assert_int_equal(resp->brokers.items[1].port, NODE2_PORT);
        assert_true(proto_str_eq(resp->brokers.items[1].rack, NODE2_RACK));
        assert_int_equal(resp->controller_id, 2);

        const struct kafka_metadata_response_metadata_response_partition *p;
        p = partition_of(resp, TOPIC, P_LOCAL);
        assert_int_equal(p->error_code, KAFKA_NONE);
        assert_int_equal(p->leader_id, 1);
        p = partition_of(resp, TOPIC, P_NODE2);
        assert_int_equal(p->error_code, KAFKA_NONE);
        assert_int_equal(p->leader_id, 2);
        assert_int_equal(p->replica_nodes.count, 1);
        assert_int_equal(p->replica_nodes.items[0], 2);
        assert_int_equal(p->isr_nodes.items[0], 2);
        assert_int_equal(p->offline_replicas.count, 0);
        if (v >= 7)
            assert_int_equal(p->leader_epoch, 5);
        /* A fenced leader is no leader to send to; its replica is offline (v5+). */
        p = partition_of(resp, TOPIC, P_FENCED);
        assert_int_equal(p->error_code, KAFKA_LEADER_NOT_AVAILABLE);
        assert_int_equal(p->leader_id, -1);
        if (v >= 5) {
            assert_int_equal(p->offline_replicas.count, 1);
            assert_int_equal(p->offline_replicas.items[0], 3);
        }
        p = partition_of(resp, TOPIC, P_NONE);
        assert_int_equal(p->error_code, KAFKA_LEADER_NOT_AVAILABLE);
        assert_int_equal(p->leader_id, -1);
        if (v >= 7)
            assert_int_equal(p->leader_epoch, 1);
    }
}

/* Bug caught: DescribeCluster answering this node alone as broker and controller. */
static void test_describe_cluster_is_the_image(void **state)
{
    (void)state;
    w.b->controller_id = 2;
    for (int16_t v = 0; v <= 1; v++) {
        struct kafka_describe_cluster_request req;
        kafka_describe_cluster_request_init(&req);
        req.endpoint_type = 1;
        const struct kafka_describe_cluster_response *resp = call(60, v, &req);
        assert_int_equal(resp->error_code, KAFKA_NONE);
        assert_int_equal(resp->controller_id, 2);
        assert_int_equal(resp->brokers.count, 2);
        assert_int_equal(resp->brokers.items[0].broker_id, 1);
        assert_int_equal(resp->brokers.items[1].broker_id, 2);
        assert_true(proto_str_eq(resp->brokers.items[1].host, NODE2_HOST));
        assert_int_equal(resp->brokers.items[1].port, NODE2_PORT);
        assert_true(proto_str_eq(resp->brokers.items[1].rack, NODE2_RACK));
    }
}

/* ---- Produce ---------------------------------------------------------------------------- */

static struct buf one_batch(void)
{
    struct batch_record rec = {.key = slice_make("k", 1), .value = slice_make("v", 1)};
    struct batch_build_opts opts = {
        .base_offset = 0, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    struct buf b;
    buf_init(&b);
    assert_int_equal(batch_build(&b, &opts, &rec, 1), 0);
    return b;
}

static const struct kafka_produce_response *produce(int16_t v, int32_t partition)
{
    struct buf batch = one_batch();
    struct kafka_produce_request_partition_produce_data pd = {
        .index = partition, .records = slice_make(batch.data, batch.len)};
    struct kafka_produce_request_topic_produce_data td = {.name = proto_str_make(TOPIC)};
    td.partition_data.items = &pd;
    td.partition_data.count = 1;
    struct kafka_produce_request req;
    kafka_produce_request_init(&req);
    req.acks = 1;
    req.timeout_ms = 30000;
    req.topic_data.items = &td;
    req.topic_data.count = 1;
    const struct kafka_produce_response *resp = call(0, v, &req);
    buf_deinit(&batch);
    assert_int_equal(resp->responses.count, 1);
    assert_int_equal(resp->responses.items[0].partition_responses.count, 1);
    return resp;
}

/* Bug caught: a node appending to a partition another node leads (two logs diverge), and a
 * v10+ answer without KIP-951's current leader and its endpoint, which costs clients a
 * Metadata round trip to find the new leader. */
static void test_produce_led_elsewhere(void **state)
{
    (void)state;
    const struct kafka_produce_response *resp = produce(9, P_NODE2);
    assert_int_equal(resp->responses.items[0].partition_responses.items[0].error_code,
                     KAFKA_NOT_LEADER_OR_FOLLOWER);

    resp = produce(10, P_NODE2);
    const struct kafka_produce_response_partition_produce_response *pr =
        &resp->responses.items[0].partition_responses.items[0];
    assert_int_equal(pr->error_code, KAFKA_NOT_LEADER_OR_FOLLOWER);
    assert_non_null(pr->current_leader);
    assert_int_equal(pr->current_leader->leader_id, 2);
    assert_int_equal(pr->current_leader->leader_epoch, 5);
    assert_int_equal(resp->node_endpoints.count, 1);
    assert_int_equal(resp->node_endpoints.items[0].node_id, 2);
    assert_true(proto_str_eq(resp->node_endpoints.items[0].host, NODE2_HOST));
    assert_int_equal(resp->node_endpoints.items[0].port, NODE2_PORT);
    assert_true(proto_str_eq(resp->node_endpoints.items[0].rack, NODE2_RACK));

    /* A fenced leader is named, but clients are given no endpoint to go to. */
    resp = produce(11, P_FENCED);
    pr = &resp->responses.items[0].partition_responses.items[0];
    assert_int_equal(pr->error_code, KAFKA_NOT_LEADER_OR_FOLLOWER);
    assert_non_null(pr->current_leader);
    assert_int_equal(pr->current_leader->leader_id, 3);
    assert_int_equal(resp->node_endpoints.count, 0);

    resp = produce(10, P_NONE);
    pr = &resp->responses.items[0].partition_responses.items[0];
    assert_int_equal(pr->error_code, KAFKA_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(pr->current_leader->leader_id, -1);

    /* Led here: appended as before. */
    resp = produce(10, P_LOCAL);
    pr = &resp->responses.items[0].partition_responses.items[0];
    assert_int_equal(pr->error_code, KAFKA_NONE);
    assert_int_equal(pr->base_offset, 0);
    assert_int_equal(resp->node_endpoints.count, 0);
}

/* ---- Fetch, ListOffsets, OffsetForLeaderEpoch ------------------------------------------- */

static const struct kafka_fetch_response_partition_data *fetch(int16_t v, int32_t partition,
                                                               int32_t current_leader_epoch)
{
    const struct meta_topic *mt = meta_topic_find(&w.b->meta, TOPIC, strlen(TOPIC));
    struct kafka_fetch_request_fetch_partition fp = {
        .partition = partition,
        .current_leader_epoch = current_leader_epoch,
        .fetch_offset = 0,
        .last_fetched_epoch = -1,
        .log_start_offset = -1,
        .partition_max_bytes = 1 << 20,
    };
    struct kafka_fetch_request_fetch_topic ft = {.topic = proto_str_make(TOPIC)};
    memcpy(ft.topic_id.bytes, mt->id.b, sizeof(ft.topic_id.bytes));
    ft.partitions.items = &fp;
    ft.partitions.count = 1;
    struct kafka_fetch_request req;
    kafka_fetch_request_init(&req);
    req.replica_id = -1;
    req.max_wait_ms = 0;
    req.min_bytes = 0;
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    req.topics.items = &ft;
    req.topics.count = 1;
    const struct kafka_fetch_response *resp = call(1, v, &req);
    assert_int_equal(resp->error_code, KAFKA_NONE);
    assert_int_equal(resp->responses.count, 1);
    assert_int_equal(resp->responses.items[0].partitions.count, 1);
    return &resp->responses.items[0].partitions.items[0];
}

/* Bug caught: a node serving reads of a partition another node leads (stale data), a v12+
 * answer without the current leader, v16 without its endpoint, and leader epochs checked
 * against the local log's instead of the image's (which clients got from Metadata). */
static void test_fetch_led_elsewhere(void **state)
{
    (void)state;
    for (int16_t v = 4; v <= 17; v++) {
        const struct kafka_fetch_response_partition_data *pd = fetch(v, P_NODE2, -1);
        assert_int_equal(pd->error_code, KAFKA_NOT_LEADER_OR_FOLLOWER);
        if (v >= 12) {
            assert_non_null(pd->current_leader);
            assert_int_equal(pd->current_leader->leader_id, 2);
            assert_int_equal(pd->current_leader->leader_epoch, 5);
        }
    }
    /* The same request, whole, to read NodeEndpoints (v16+). */
    const struct meta_topic *mt = meta_topic_find(&w.b->meta, TOPIC, strlen(TOPIC));
    struct kafka_fetch_request_fetch_partition fp[2] = {
        {.partition = P_NODE2,
         .current_leader_epoch = -1,
         .last_fetched_epoch = -1,
         .log_start_offset = -1,
         .partition_max_bytes = 1 << 20},
        {.partition = P_FENCED,
         .current_leader_epoch = -1,
         .last_fetched_epoch = -1,
         .log_start_offset = -1,
         .partition_max_bytes = 1 << 20},
    };
    struct kafka_fetch_request_fetch_topic ft = {.topic = proto_str_make(TOPIC)};
    memcpy(ft.topic_id.bytes, mt->id.b, sizeof(ft.topic_id.bytes));
    ft.partitions.items = fp;
    ft.partitions.count = 2;
    struct kafka_fetch_request req;
    kafka_fetch_request_init(&req);
    req.replica_id = -1;
    req.max_bytes = 1 << 20;
    req.session_epoch = -1;
    req.topics.items = &ft;
    req.topics.count = 1;
    const struct kafka_fetch_response *resp = call(1, 16, &req);
    const struct kafka_fetch_response_partition_data *pds =
        resp->responses.items[0].partitions.items;
    assert_int_equal(pds[0].error_code, KAFKA_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(pds[1].error_code, KAFKA_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(pds[1].current_leader->leader_id, 3);
    /* Only the alive leader has an endpoint. */
    assert_int_equal(resp->node_endpoints.count, 1);
    assert_int_equal(resp->node_endpoints.items[0].node_id, 2);
    assert_true(proto_str_eq(resp->node_endpoints.items[0].host, NODE2_HOST));
    assert_int_equal(resp->node_endpoints.items[0].port, NODE2_PORT);
    assert_true(proto_str_eq(resp->node_endpoints.items[0].rack, NODE2_RACK));

    /* Led here at epoch 3 (the log was opened at epoch 0): older is fenced, newer unknown. */
    const struct kafka_fetch_response_partition_data *pd = fetch(12, P_LOCAL, 2);
    assert_int_equal(pd->error_code, KAFKA_FENCED_LEADER_EPOCH);
    assert_non_null(pd->current_leader);
    assert_int_equal(pd->current_leader->leader_id, 1);
    assert_int_equal(pd->current_leader->leader_epoch, 3);
    assert_int_equal(fetch(12, P_LOCAL, 4)->error_code, KAFKA_UNKNOWN_LEADER_EPOCH);
    pd = fetch(12, P_LOCAL, 3);
    assert_int_equal(pd->error_code, KAFKA_NONE);
    /* Not sent: the decoder gives the default (-1). */
    assert_true(pd->current_leader == NULL || pd->current_leader->leader_id == -1);
    assert_int_equal(fetch(12, P_LOCAL, -1)->error_code, KAFKA_NONE);
}

/* Bug caught: offsets of a partition led elsewhere answered from a local log. */
static void test_offsets_led_elsewhere(void **state)
{
    (void)state;
    struct kafka_list_offsets_request_list_offsets_partition lp[2] = {
        {.partition_index = P_NODE2, .current_leader_epoch = -1, .timestamp = -1},
        {.partition_index = P_LOCAL, .current_leader_epoch = 3, .timestamp = -1},
    };
    struct kafka_list_offsets_request_list_offsets_topic lt = {.name = proto_str_make(TOPIC)};
    lt.partitions.items = lp;
    lt.partitions.count = 2;
    struct kafka_list_offsets_request lreq;
    kafka_list_offsets_request_init(&lreq);
    lreq.replica_id = -1;
    lreq.topics.items = &lt;
    lreq.topics.count = 1;
    const struct kafka_list_offsets_response *lresp = call(2, 7, &lreq);
    assert_int_equal(lresp->topics.items[0].partitions.items[0].error_code,
                     KAFKA_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(lresp->topics.items[0].partitions.items[1].error_code, KAFKA_NONE);

    struct kafka_offset_for_leader_epoch_request_offset_for_leader_partition op[2] = {
        {.partition = P_NODE2, .current_leader_epoch = -1, .leader_epoch = 0},
        {.partition = P_LOCAL, .current_leader_epoch = 1, .leader_epoch = 0},
    };
    struct kafka_offset_for_leader_epoch_request_offset_for_leader_topic ot = {
        .topic = proto_str_make(TOPIC)};
    ot.partitions.items = op;
    ot.partitions.count = 2;
    struct kafka_offset_for_leader_epoch_request oreq;
    kafka_offset_for_leader_epoch_request_init(&oreq);
    oreq.replica_id = -1;
    oreq.topics.items = &ot;
    oreq.topics.count = 1;
    const struct kafka_offset_for_leader_epoch_response *oresp = call(23, 4, &oreq);
    assert_int_equal(oresp->topics.items[0].partitions.items[0].error_code,
                     KAFKA_NOT_LEADER_OR_FOLLOWER);
    assert_int_equal(oresp->topics.items[0].partitions.items[1].error_code,
                     KAFKA_FENCED_LEADER_EPOCH);
}

/* ---- groups ----------------------------------------------------------------------------- */

/* A group id whose __consumer_offsets partition is p. */
static const char *group_in(uint32_t p, char *buf, size_t size)
{
    for (int i = 0;; i++) {
        snprintf(buf, size, "group-%d", i);
        if (group_partition_of(slice_make(buf, strlen(buf)), OFFSETS_PARTS) == p)
            return buf;
    }
}

static void send_find_v4(const char *group)
{
    struct proto_str key = proto_str_make(group);
    struct kafka_find_coordinator_request req;
    kafka_find_coordinator_request_init(&req);
    req.key_type = 0;
    req.coordinator_keys.items = &key;
    req.coordinator_keys.count = 1;
    send_request(10, 4, &req);
}

static const struct kafka_find_coordinator_response_coordinator *receive_find_v4(void)
{
    const struct kafka_find_coordinator_response *resp = receive(10, 4);
    assert_int_equal(resp->coordinators.count, 1);
    return &resp->coordinators.items[0];
}

static const struct kafka_find_coordinator_response_coordinator *find_v4(const char *group)
{
    send_find_v4(group);
    return receive_find_v4();
}

static const struct kafka_find_coordinator_response *find_v3(const char *group)
{
    struct kafka_find_coordinator_request req;
    kafka_find_coordinator_request_init(&req);
    req.key = proto_str_make(group);
    req.key_type = 0;
    return call(10, 3, &req);
}

static void send_join(const char *group, const char *member)
{
    struct kafka_join_group_request_join_group_request_protocol proto = {
        .name = proto_str_make("range"), .metadata = slice_make("", 0)};
    struct kafka_join_group_request req;
    kafka_join_group_request_init(&req);
    req.group_id = proto_str_make(group);
    req.session_timeout_ms = 30000;
    req.rebalance_timeout_ms = 30000;
    req.member_id = proto_str_make(member);
    req.protocol_type = proto_str_make("consumer");
    req.protocols.items = &proto;
    req.protocols.count = 1;
    send_request(11, 5, &req);
}

static int16_t commit(const char *group)
{
    struct kafka_offset_commit_request_offset_commit_request_partition cp = {
        .partition_index = 0, .committed_offset = 0, .committed_leader_epoch = -1};
    struct kafka_offset_commit_request_offset_commit_request_topic ct = {.name =
                                                                             proto_str_make(TOPIC)};
    ct.partitions.items = &cp;
    ct.partitions.count = 1;
    struct kafka_offset_commit_request req;
    kafka_offset_commit_request_init(&req);
    req.group_id = proto_str_make(group);
    req.generation_id_or_member_epoch = -1;
    req.member_id = proto_str_make("");
    req.topics.items = &ct;
    req.topics.count = 1;
    const struct kafka_offset_commit_response *resp = call(8, 8, &req);
    return resp->topics.items[0].partitions.items[0].error_code;
}

/* OffsetFetch v7 of t-0: the group's error, and the committed offset in *offset. */
static int16_t fetch_offset(const char *group, int64_t *offset)
{
    int32_t part = 0;
    struct kafka_offset_fetch_request_offset_fetch_request_topic ft = {.name =
                                                                           proto_str_make(TOPIC)};
    ft.partition_indexes.items = &part;
    ft.partition_indexes.count = 1;
    struct kafka_offset_fetch_request req;
    kafka_offset_fetch_request_init(&req);
    req.group_id = proto_str_make(group);
    req.topics.items = &ft;
    req.topics.count = 1;
    const struct kafka_offset_fetch_response *resp = call(9, 7, &req);
    *offset = -1;
    if (resp->error_code == KAFKA_NONE) {
        assert_int_equal(resp->topics.items[0].partitions.items[0].error_code, KAFKA_NONE);
        *offset = resp->topics.items[0].partitions.items[0].committed_offset;
    }
    return resp->error_code;
}

static bool listed(const char *group)
{
    struct kafka_list_groups_request req;
    kafka_list_groups_request_init(&req);
    const struct kafka_list_groups_response *resp = call(16, 4, &req);
    assert_int_equal(resp->error_code, KAFKA_NONE);
    for (size_t i = 0; i < resp->groups.count; i++)
        if (proto_str_eq(resp->groups.items[i].group_id, group))
            return true;
    return false;
}

/* Bug caught: FindCoordinator naming this node for every group whatever leads the group's
 * partition, and a node still coordinating (and answering) groups whose partition moved to
 * another node: two coordinators for one group, each with its own members and offsets. */
static void test_groups_follow_offsets_leaders(void **state)
{
    (void)state;
    char stay_buf[32], moved_buf[32], fenced_buf[32];
    const char *stay = group_in(0, stay_buf, sizeof(stay_buf));
    const char *moved = group_in(1, moved_buf, sizeof(moved_buf));
    const char *fenced = group_in(2, fenced_buf, sizeof(fenced_buf));

    /* The first group request has __consumer_offsets created (through the controller, every
     * partition led here): COORDINATOR_NOT_AVAILABLE until it exists, as Kafka answers. */
    struct meta_broker *node2 = (struct meta_broker *)meta_broker_find(&w.b->meta, 2);
    node2->fenced = true; /* so the controller places every partition here */
    const struct kafka_find_coordinator_response_coordinator *c = find_v4(moved);
    for (int i = 0; i < 1000 && c->error_code == KAFKA_COORDINATOR_NOT_AVAILABLE; i++) {
        broker_flush_pending(w.b);
        assert_int_equal(broker_run_once(w.b, 1), 0);
        c = find_v4(moved);
    }
    assert_int_equal(c->error_code, KAFKA_NONE);
    node2->fenced = false;
    assert_int_equal(c->node_id, 1);
    assert_int_equal(commit(moved), KAFKA_NONE);
    assert_int_equal(commit(stay), KAFKA_NONE);
    assert_true(listed(moved));
    /* A member waits in JoinGroup for the initial rebalance delay. */
    send_join(moved, "");
    const struct kafka_join_group_response *j = receive(11, 5);
    assert_int_equal(j->error_code, KAFKA_MEMBER_ID_REQUIRED);
    char member[256];
    snprintf(member, sizeof(member), "%.*s", (int)j->member_id.len, j->member_id.ptr);
    send_join(moved, member);

    /* The partitions of `moved` and `fenced` move to nodes 2 and 3. */
    set_leader(BROKER_OFFSETS_TOPIC, 1, 2, 1);
    set_leader(BROKER_OFFSETS_TOPIC, 2, 3, 1);

    send_find_v4(moved);
    /* The parked JoinGroup is answered first: its coordinator moved. */
    j = receive(11, 5);
    assert_int_equal(j->error_code, KAFKA_NOT_COORDINATOR);
    c = receive_find_v4();
    assert_int_equal(c->error_code, KAFKA_NONE);
    assert_int_equal(c->node_id, 2);
    assert_true(proto_str_eq(c->host, NODE2_HOST));
    assert_int_equal(c->port, NODE2_PORT);
    const struct kafka_find_coordinator_response *c3 = find_v3(moved);
    assert_int_equal(c3->error_code, KAFKA_NONE);
    assert_int_equal(c3->node_id, 2);
    assert_true(proto_str_eq(c3->host, NODE2_HOST));
    assert_int_equal(c3->port, NODE2_PORT);
    c = find_v4(fenced);
    assert_int_equal(c->error_code, KAFKA_COORDINATOR_NOT_AVAILABLE);
    assert_int_equal(c->node_id, -1);
    c = find_v4(stay);
    assert_int_equal(c->error_code, KAFKA_NONE);
    assert_int_equal(c->node_id, 1);

    send_join(moved, "");
    assert_int_equal(((const struct kafka_join_group_response *)receive(11, 5))->error_code,
                     KAFKA_NOT_COORDINATOR);
    assert_int_equal(commit(moved), KAFKA_NOT_COORDINATOR);
    assert_int_equal(commit(fenced), KAFKA_NOT_COORDINATOR);
    assert_int_equal(commit(stay), KAFKA_NONE);
    assert_false(listed(moved));
    assert_true(listed(stay));

    struct kafka_heartbeat_request hb;
    kafka_heartbeat_request_init(&hb);
    hb.group_id = proto_str_make(moved);
    hb.member_id = proto_str_make(member);
    hb.generation_id = 1;
    assert_int_equal(((const struct kafka_heartbeat_response *)call(12, 4, &hb))->error_code,
                     KAFKA_NOT_COORDINATOR);
    struct proto_str gid = proto_str_make(moved);
    struct kafka_describe_groups_request dg;
    kafka_describe_groups_request_init(&dg);
    dg.groups.items = &gid;
    dg.groups.count = 1;
    const struct kafka_describe_groups_response *dresp = call(15, 5, &dg);
    assert_int_equal(dresp->groups.items[0].error_code, KAFKA_NOT_COORDINATOR);
    int64_t offset = -1;
    assert_int_equal(fetch_offset(moved, &offset), KAFKA_NOT_COORDINATOR);
    struct kafka_delete_groups_request del;
    kafka_delete_groups_request_init(&del);
    del.groups_names.items = &gid;
    del.groups_names.count = 1;
    const struct kafka_delete_groups_response *delresp = call(42, 2, &del);
    assert_int_equal(delresp->results.items[0].error_code, KAFKA_NOT_COORDINATOR);

    /* Back here: loaded again from the log, with the offset committed before the move. */
    set_leader(BROKER_OFFSETS_TOPIC, 1, 1, 2);
    c = find_v4(moved);
    assert_int_equal(c->error_code, KAFKA_NONE);
    assert_int_equal(c->node_id, 1);
    assert_true(listed(moved));
    assert_int_equal(fetch_offset(moved, &offset), KAFKA_NONE);
    assert_int_equal(offset, 0);
}

/* Bug caught: this node described from its configuration even once its own registration is
 * in the image (another advertised endpoint, or fenced: then not offered to clients). */
static void test_own_registration_wins(void **state)
{
    (void)state;
    register_broker(1, "node1.example", 19092, "rack-1", false);
    struct kafka_metadata_request req;
    kafka_metadata_request_init(&req);
    req.topics.items = NULL;
    const struct kafka_metadata_response *resp = call(3, 12, &req);
    assert_int_equal(resp->brokers.count, 2);
    assert_int_equal(resp->brokers.items[0].node_id, 1);
    assert_true(proto_str_eq(resp->brokers.items[0].host, "node1.example"));
    assert_int_equal(resp->brokers.items[0].port, 19092);
    assert_true(proto_str_eq(resp->brokers.items[0].rack, "rack-1"));

    register_broker(1, "node1.example", 19092, "rack-1", true);
    resp = call(3, 12, &req);
    assert_int_equal(resp->brokers.count, 1);
    assert_int_equal(resp->brokers.items[0].node_id, 2);
    assert_int_equal(partition_of(resp, TOPIC, P_LOCAL)->error_code, KAFKA_LEADER_NOT_AVAILABLE);
    assert_int_equal(partition_of(resp, TOPIC, P_LOCAL)->leader_id, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metadata_is_the_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe_cluster_is_the_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_produce_led_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_led_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets_led_elsewhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups_follow_offsets_leaders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_registration_wins, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
