/*
 * Golden frames from kafkajs (tests/golden/kafkajs, table in golden.c): every frame, wrapped in
 * the request/response header its API version calls for, decodes exactly (header and body,
 * nothing left over), re-encodes to the same bytes, and fails as incomplete when cut at any
 * byte. Selected frames are checked field by field against values read from their bytes by hand.
 */
#include "golden.h"

#include "base/error.h"
#include "base/limits.h"
#include "proto/gen/kafka.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#define CORRELATION_ID 0x01020304
#define CLIENT_ID      "chronik-golden"

struct decoded {
    struct arena arena;
    uint8_t *file;
    size_t file_len;
    struct buf frame; /* header + file bytes */
    void *body;       /* the decoded body, a struct of the message's size */
};

static const struct proto_message *frame_message(const struct golden_frame *g)
{
    const struct proto_api *api = proto_api_get(g->api_key);
    assert_non_null(api);
    return g->response ? api->response : api->request;
}

/* The header without tagged fields: the file supplies the tag byte in flexible versions. */
static void put_header(const struct golden_frame *g, struct buf *out)
{
    if (g->response) {
        struct kafka_response_header h;
        kafka_response_header_init(&h);
        h.correlation_id = CORRELATION_ID;
        assert_int_equal(kafka_response_header_encode(&h, 0, out), 0);
        return;
    }
    struct kafka_request_header h;
    kafka_request_header_init(&h);
    h.request_api_key = g->api_key;
    h.request_api_version = g->api_version;
    h.correlation_id = CORRELATION_ID;
    h.client_id = proto_str_make(CLIENT_ID);
    int16_t hv = (int16_t)proto_request_header_version(g->api_key, g->api_version);
    assert_int_equal(kafka_request_header_encode(&h, hv == 0 ? 0 : 1, out), 0);
}

static void check_header(const struct golden_frame *g, struct reader *r, struct arena *a)
{
    if (g->response) {
        int hv = proto_response_header_version(g->api_key, g->api_version);
        assert_true(hv == 0 || hv == 1);
        struct kafka_response_header h;
        assert_int_equal(kafka_response_header_decode(a, r, (int16_t)hv, &h), 0);
        assert_int_equal(h.correlation_id, CORRELATION_ID);
        return;
    }
    int hv = proto_request_header_version(g->api_key, g->api_version);
    assert_true(hv >= 0 && hv <= 2);
    struct kafka_request_header h;
    assert_int_equal(kafka_request_header_decode(a, r, (int16_t)hv, &h), 0);
    assert_int_equal(h.request_api_key, g->api_key);
    assert_int_equal(h.request_api_version, g->api_version);
    assert_int_equal(h.correlation_id, CORRELATION_ID);
    if (hv >= 1)
        assert_true(proto_str_eq(h.client_id, CLIENT_ID));
}

/* Loads a frame and decodes it; the caller checks fields and calls decoded_free. */
static void decode_frame(const struct golden_frame *g, struct decoded *d)
{
    const struct proto_message *m = frame_message(g);
    int err = golden_load(g->path, &d->file, &d->file_len);
    if (err != 0)
        print_error("%s: %s\n", g->path, err_str(err));
    assert_int_equal(err, 0);
    arena_init(&d->arena, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    buf_init(&d->frame);
    put_header(g, &d->frame);
    buf_append(&d->frame, d->file, d->file_len);
    d->body = calloc(1, m->body->bytes);
    assert_non_null(d->body);

    struct reader r;
    rd_init(&r, d->frame.data, d->frame.len);
    check_header(g, &r, &d->arena);
    err = proto_decode(m, &d->arena, &r, g->api_version, d->body);
    if (err != 0 || rd_left(&r) != 0)
        print_error("%s: decode %s, %zu bytes left\n", g->path, err_str(err), rd_left(&r));
    assert_int_equal(err, 0);
    assert_int_equal(rd_left(&r), 0);
}

static void decoded_free(struct decoded *d)
{
    free(d->body);
    buf_deinit(&d->frame);
    arena_deinit(&d->arena);
    free(d->file);
}

static const struct golden_frame *find_frame(const char *path)
{
    for (size_t i = 0; i < golden_frame_count; i++) {
        if (strcmp(golden_frames[i].path, path) == 0)
            return &golden_frames[i];
    }
    print_error("no golden frame %s\n", path);
    fail();
    return NULL;
}

/* Re-encoding header + body must give back the frame, byte for byte. */
static void check_reencode(const struct golden_frame *g, struct decoded *d)
{
    const struct proto_message *m = frame_message(g);
    struct buf out;
    buf_init(&out);
    struct reader r;
    rd_init(&r, d->frame.data, d->frame.len);
    int16_t hv = (int16_t)(g->response ? proto_response_header_version(g->api_key, g->api_version)
                                       : proto_request_header_version(g->api_key, g->api_version));
    const struct proto_message *hm =
        g->response ? &kafka_response_header_message : &kafka_request_header_message;
    void *header = calloc(1, hm->body->bytes);
    assert_int_equal(proto_decode(hm, &d->arena, &r, hv, header), 0);
    assert_int_equal(proto_encode(hm, header, hv, &out), 0);
    assert_int_equal(proto_encode(m, d->body, g->api_version, &out), 0);
    if (!slice_eq(buf_slice(&out), buf_slice(&d->frame)))
        print_error("%s: re-encoding differs\n", g->path);
    assert_true(slice_eq(buf_slice(&out), buf_slice(&d->frame)));
    free(header);
    buf_deinit(&out);
}

/* The body cut at every byte must fail as incomplete. */
static void check_truncations(const struct golden_frame *g, struct decoded *d)
{
    const struct proto_message *m = frame_message(g);
    size_t header_len = d->frame.len - d->file_len;
    void *tmp = calloc(1, m->body->bytes);
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    /* The first byte of a flexible file is the header's; the body starts after it. */
    size_t skip = g->response ? (proto_response_header_version(g->api_key, g->api_version) == 1)
                              : (proto_request_header_version(g->api_key, g->api_version) == 2);
    const uint8_t *body = d->frame.data + header_len + skip;
    size_t body_len = d->file_len - skip;
    for (size_t cut = 0; cut < body_len; cut++) {
        arena_reset(&a);
        struct reader r;
        rd_init(&r, body, cut);
        int err = proto_decode(m, &a, &r, g->api_version, tmp);
        if (err != ERR_INCOMPLETE)
            print_error("%s cut at %zu: %s\n", g->path, cut, err_str(err));
        assert_int_equal(err, ERR_INCOMPLETE);
    }
    arena_deinit(&a);
    free(tmp);
}

static void test_every_frame(void **state)
{
    (void)state;
    assert_true(golden_frame_count >= 180);
    for (size_t i = 0; i < golden_frame_count; i++) {
        const struct golden_frame *g = &golden_frames[i];
        struct decoded d;
        decode_frame(g, &d);
        check_reencode(g, &d);
        check_truncations(g, &d);
        decoded_free(&d);
    }
}

static bool slice_within(struct slice s, const struct buf *b)
{
    return s.ptr >= b->data && s.ptr + s.len <= b->data + b->len;
}

static void test_produce_v3_request(void **state)
{
    (void)state;
    struct decoded d;
    decode_frame(find_frame("kafkajs/requests/produce/fixtures/v3_request.json"), &d);
    const struct kafka_produce_request *req = d.body;
    assert_null(req->transactional_id.ptr);
    assert_int_equal(req->acks, -1);
    assert_int_equal(req->timeout_ms, 30000);
    assert_int_equal(req->topic_data.count, 1);
    const struct kafka_produce_request_topic_produce_data *t = &req->topic_data.items[0];
    assert_true(proto_str_eq(t->name, "test-topic-ebba68879c6f5081d8c2"));
    assert_int_equal(t->partition_data.count, 1);
    assert_int_equal(t->partition_data.items[0].index, 0);
    struct slice records = t->partition_data.items[0].records;
    assert_int_equal(records.len, 270);
    /* Records are never copied: the slice points into the received frame. */
    assert_true(slice_within(records, &d.frame));
    /* A magic-2 batch: base offset 0, batch length 258 (270 - 12), magic at byte 16. */
    assert_int_equal(be64_load(records.ptr), 0);
    assert_int_equal(be32_load(records.ptr + 8), 258);
    assert_int_equal(records.ptr[16], 2);
    decoded_free(&d);
}

static void test_metadata_v3_response(void **state)
{
    (void)state;
    struct decoded d;
    decode_frame(find_frame("kafkajs/requests/metadata/fixtures/v3_response.json"), &d);
    const struct kafka_metadata_response *resp = d.body;
    assert_int_equal(resp->throttle_time_ms, 0);
    assert_int_equal(resp->brokers.count, 3);
    static const int32_t nodes[] = {2, 1, 0};
    static const int32_t ports[] = {9098, 9095, 9092};
    for (size_t i = 0; i < 3; i++) {
        const struct kafka_metadata_response_metadata_response_broker *b = &resp->brokers.items[i];
        assert_int_equal(b->node_id, nodes[i]);
        assert_true(proto_str_eq(b->host, "192.168.1.173"));
        assert_int_equal(b->port, ports[i]);
        assert_null(b->rack.ptr);
    }
    assert_true(proto_str_eq(resp->cluster_id, "Q0WO3u_TTAeslFDJWiiGvA"));
    assert_int_equal(resp->controller_id, 1);
    assert_int_equal(resp->topics.count, 1);
    const struct kafka_metadata_response_metadata_response_topic *t = &resp->topics.items[0];
    assert_int_equal(t->error_code, 0);
    assert_true(proto_str_eq(t->name, "test-topic-0f67c79007c9157fc83d"));
    assert_false(t->is_internal);
    assert_int_equal(t->partitions.count, 1);
    const struct kafka_metadata_response_metadata_response_partition *p = &t->partitions.items[0];
    assert_int_equal(p->partition_index, 0);
    assert_int_equal(p->leader_id, 2);
    assert_int_equal(p->replica_nodes.count, 1);
    assert_int_equal(p->replica_nodes.items[0], 2);
    assert_int_equal(p->isr_nodes.count, 1);
    assert_int_equal(p->isr_nodes.items[0], 2);
    /* Absent in v3: the v5 offline replicas default to empty, the v8 field to its default. */
    assert_non_null(p->offline_replicas.items);
    assert_int_equal(p->offline_replicas.count, 0);
    assert_int_equal(p->leader_epoch, -1);
    decoded_free(&d);
}

static void test_fetch_v11_request(void **state)
{
    (void)state;
    struct decoded d;
    decode_frame(find_frame("kafkajs/requests/fetch/fixtures/v11_request.json"), &d);
    const struct kafka_fetch_request *req = d.body;
    assert_int_equal(req->replica_id, -1);
    assert_int_equal(req->max_wait_ms, 100);
    assert_int_equal(req->min_bytes, 1);
    assert_int_equal(req->max_bytes, 10485760);
    assert_int_equal(req->isolation_level, 1);
    assert_int_equal(req->session_id, 0);
    assert_int_equal(req->session_epoch, -1);
    assert_int_equal(req->topics.count, 1);
    const struct kafka_fetch_request_fetch_topic *t = &req->topics.items[0];
    assert_true(proto_str_eq(
        t->topic, "test-topic-2077b9d2b36c4082e594-4020-b5a52b27-56df-4b87-800d-82c1cf26317d"));
    assert_int_equal(t->partitions.count, 1);
    assert_int_equal(t->partitions.items[0].partition, 0);
    assert_int_equal(t->partitions.items[0].current_leader_epoch, -1);
    assert_int_equal(t->partitions.items[0].fetch_offset, 0);
    assert_int_equal(t->partitions.items[0].log_start_offset, -1);
    assert_int_equal(t->partitions.items[0].partition_max_bytes, 1048576);
    assert_int_equal(req->forgotten_topics_data.count, 0);
    assert_true(proto_str_eq(req->rack_id, "rack1"));
    /* ReplicaState (v15+, tagged) is absent: allocated with its defaults, never NULL. */
    assert_non_null(req->replica_state);
    assert_int_equal(req->replica_state->replica_id, -1);
    decoded_free(&d);
}

static void test_create_topics_v0_request(void **state)
{
    (void)state;
    struct decoded d;
    decode_frame(find_frame("kafkajs/requests/createTopics/fixtures/v0_request.json"), &d);
    const struct kafka_create_topics_request *req = d.body;
    assert_int_equal(req->topics.count, 2);
    assert_true(proto_str_eq(req->topics.items[0].name, "test-topic-c8d8ca3d95495c6b900d"));
    assert_true(proto_str_eq(req->topics.items[1].name, "test-topic-050fb2e6aed13a954288"));
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(req->topics.items[i].num_partitions, -1);
        assert_int_equal(req->topics.items[i].replication_factor, -1);
        assert_int_equal(req->topics.items[i].assignments.count, 0);
        assert_int_equal(req->topics.items[i].configs.count, 0);
    }
    assert_int_equal(req->timeout_ms, 5000);
    assert_false(req->validate_only); /* v1+ only: its default */
    decoded_free(&d);
}

static void test_list_offsets_v2_response(void **state)
{
    (void)state;
    struct decoded d;
    decode_frame(find_frame("kafkajs/requests/listOffsets/fixtures/v2_response.json"), &d);
    const struct kafka_list_offsets_response *resp = d.body;
    assert_int_equal(resp->throttle_time_ms, 0);
    assert_int_equal(resp->topics.count, 1);
    assert_true(
        proto_str_eq(resp->topics.items[0].name,
                     "test-topic-84efe7aaafc3844b00c1-36211-2ee431b4-d40b-4df8-b2c8-fc9e33ab5c77"));
    assert_int_equal(resp->topics.items[0].partitions.count, 1);
    const struct kafka_list_offsets_response_list_offsets_partition_response *p =
        &resp->topics.items[0].partitions.items[0];
    assert_int_equal(p->partition_index, 0);
    assert_int_equal(p->error_code, 0);
    assert_int_equal(p->timestamp, -1);
    assert_int_equal(p->offset, 1);
    decoded_free(&d);
}

static void test_describe_configs_v1_response(void **state)
{
    (void)state;
    struct decoded d;
    decode_frame(find_frame("kafkajs/requests/describeConfigs/fixtures/v1_response.json"), &d);
    const struct kafka_describe_configs_response *resp = d.body;
    assert_int_equal(resp->results.count, 1);
    const struct kafka_describe_configs_response_describe_configs_result *res =
        &resp->results.items[0];
    assert_int_equal(res->error_code, 0);
    assert_null(res->error_message.ptr);
    assert_int_equal(res->resource_type, 2);
    assert_true(proto_str_eq(res->resource_name, "topic-test1"));
    assert_int_equal(res->configs.count, 2);
    assert_true(proto_str_eq(res->configs.items[0].name, "compression.type"));
    assert_true(proto_str_eq(res->configs.items[0].value, "producer"));
    assert_int_equal(res->configs.items[0].config_source, 5);
    assert_int_equal(res->configs.items[0].synonyms.count, 1);
    assert_true(proto_str_eq(res->configs.items[0].synonyms.items[0].name, "compression.type"));
    assert_true(proto_str_eq(res->configs.items[1].name, "retention.ms"));
    assert_true(proto_str_eq(res->configs.items[1].value, "604800000"));
    assert_int_equal(res->configs.items[1].synonyms.count, 0);
    decoded_free(&d);
}

/* A flexible frame: compact strings and arrays, tagged-field sections, header v1. */
static void test_alter_partition_reassignments_v0_response(void **state)
{
    (void)state;
    const char *path = "kafkajs/requests/alterPartitionReassignments/fixtures/v0_response.json";
    assert_int_equal(proto_response_header_version(45, 0), 1);
    struct decoded d;
    decode_frame(find_frame(path), &d);
    const struct kafka_alter_partition_reassignments_response *resp = d.body;
    assert_int_equal(resp->throttle_time_ms, 0);
    assert_int_equal(resp->error_code, 0);
    assert_non_null(resp->error_message.ptr);
    assert_int_equal(resp->error_message.len, 0);
    assert_int_equal(resp->responses.count, 2);
    assert_true(proto_str_eq(resp->responses.items[0].name, "test-topic-1"));
    assert_int_equal(resp->responses.items[0].partitions.count, 2);
    assert_int_equal(resp->responses.items[0].partitions.items[0].partition_index, 1);
    assert_int_equal(resp->responses.items[0].partitions.items[0].error_code, 0);
    assert_null(resp->responses.items[0].partitions.items[0].error_message.ptr);
    assert_int_equal(resp->responses.items[0].partitions.items[1].partition_index, 0);
    assert_true(proto_str_eq(resp->responses.items[1].name, "test-topic-2"));
    assert_int_equal(resp->responses.items[1].partitions.count, 1);
    decoded_free(&d);
}

static void test_api_versions_responses(void **state)
{
    (void)state;
    struct decoded d;
    decode_frame(find_frame("kafkajs/requests/apiVersions/fixtures/v0_response.json"), &d);
    const struct kafka_api_versions_response *v0 = d.body;
    assert_int_equal(v0->error_code, 0);
    assert_int_equal(v0->api_keys.count, 21);
    assert_int_equal(v0->api_keys.items[0].api_key, 0);
    assert_int_equal(v0->api_keys.items[0].min_version, 0);
    assert_int_equal(v0->api_keys.items[0].max_version, 2);
    decoded_free(&d);

    decode_frame(find_frame("kafkajs/requests/apiVersions/fixtures/v1_response.json"), &d);
    const struct kafka_api_versions_response *v1 = d.body;
    assert_int_equal(v1->api_keys.count, 34);
    assert_int_equal(v1->throttle_time_ms, 0);
    decoded_free(&d);

    /* kafkajs's hand-made frame without ThrottleTimeMs: short at v1, exact with v0's layout. */
    uint8_t *bytes;
    size_t len;
    assert_int_equal(golden_load("kafkajs/requests/apiVersions/fixtures/"
                                 "v1_response_missing_throttle_time.json",
                                 &bytes, &len),
                     0);
    assert_int_equal(len, 210);
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    struct kafka_api_versions_response resp;
    struct reader r;
    rd_init(&r, bytes, len);
    assert_int_equal(kafka_api_versions_response_decode(&a, &r, 1, &resp), ERR_INCOMPLETE);
    rd_init(&r, bytes, len);
    assert_int_equal(kafka_api_versions_response_decode(&a, &r, 0, &resp), 0);
    assert_int_equal(rd_left(&r), 0);
    assert_int_equal(resp.api_keys.count, 34);
    arena_deinit(&a);
    free(bytes);
}

static void test_small_frames(void **state)
{
    (void)state;
    struct decoded d;
    decode_frame(find_frame("kafkajs/requests/findCoordinator/fixtures/v1_request.json"), &d);
    const struct kafka_find_coordinator_request *fc = d.body;
    assert_true(proto_str_eq(fc->key, "group-id"));
    assert_int_equal(fc->key_type, 0);
    decoded_free(&d);

    decode_frame(find_frame("kafkajs/requests/saslAuthenticate/fixtures/v0_request_plain.json"),
                 &d);
    const struct kafka_sasl_authenticate_request *sa = d.body;
    assert_int_equal(sa->auth_bytes.len, 14);
    assert_memory_equal(sa->auth_bytes.ptr, "\0test\0testtest", 14);
    decoded_free(&d);

    decode_frame(find_frame("kafkajs/requests/saslAuthenticate/fixtures/v0_response_plain.json"),
                 &d);
    const struct kafka_sasl_authenticate_response *sr = d.body;
    assert_int_equal(sr->error_code, 0);
    assert_null(sr->error_message.ptr);
    assert_non_null(sr->auth_bytes.ptr);
    assert_int_equal(sr->auth_bytes.len, 0);
    decoded_free(&d);

    decode_frame(find_frame("kafkajs/requests/heartbeat/fixtures/v0_response.json"), &d);
    assert_int_equal(((const struct kafka_heartbeat_response *)d.body)->error_code, 0);
    decoded_free(&d);
}

/* A consumer-protocol blob from a SyncGroup assignment: int16 version, then the data message. */
static void test_consumer_protocol_assignment(void **state)
{
    (void)state;
    uint8_t *bytes;
    size_t len;
    assert_int_equal(
        golden_load("kafkajs/requests/syncGroup/fixtures/v1_memberAssignment.json", &bytes, &len),
        0);
    struct reader r;
    rd_init(&r, bytes, len);
    int16_t version = (int16_t)rd_be16(&r);
    assert_int_equal(version, 1);
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    struct kafka_consumer_protocol_assignment as;
    assert_int_equal(kafka_consumer_protocol_assignment_decode(&a, &r, version, &as), 0);
    assert_int_equal(rd_left(&r), 0);
    assert_int_equal(as.assigned_partitions.count, 1);
    assert_int_equal(as.assigned_partitions.items[0].partitions.count, 1);
    assert_int_equal(as.assigned_partitions.items[0].partitions.items[0], 0);
    arena_deinit(&a);
    free(bytes);
}

static void test_header_versions(void **state)
{
    (void)state;
    assert_int_equal(proto_request_header_version(7, 0), 0); /* ControlledShutdown v0 */
    assert_int_equal(proto_request_header_version(7, 1), 1);
    assert_int_equal(proto_request_header_version(0, 8), 1); /* Produce v8 */
    assert_int_equal(proto_request_header_version(0, 9), 2); /* Produce v9 is flexible */
    assert_int_equal(proto_response_header_version(0, 9), 1);
    assert_int_equal(proto_response_header_version(18, 3), 0); /* ApiVersions: always v0 */
    assert_int_equal(proto_request_header_version(18, 3), 2);
    assert_int_equal(proto_request_header_version(-1, 0), ERR_UNSUPPORTED);
    assert_int_equal(proto_response_header_version(PROTO_API_COUNT, 0), ERR_UNSUPPORTED);
    const struct proto_api *api = proto_api_get(3);
    assert_non_null(api);
    assert_string_equal(api->name, "Metadata");
    assert_int_equal(api->version_max, 12);
    assert_int_equal(api->flexible_min, 9);
    assert_null(proto_api_get(PROTO_API_COUNT));
    assert_int_equal(proto_api_count(), 88);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_frame),
        cmocka_unit_test(test_produce_v3_request),
        cmocka_unit_test(test_metadata_v3_response),
        cmocka_unit_test(test_fetch_v11_request),
        cmocka_unit_test(test_create_topics_v0_request),
        cmocka_unit_test(test_list_offsets_v2_response),
        cmocka_unit_test(test_describe_configs_v1_response),
        cmocka_unit_test(test_alter_partition_reassignments_v0_response),
        cmocka_unit_test(test_api_versions_responses),
        cmocka_unit_test(test_small_frames),
        cmocka_unit_test(test_consumer_protocol_assignment),
        cmocka_unit_test(test_header_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
