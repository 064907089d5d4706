/*
 * Wire-level cases written out byte by byte: the flexible encoding (compact lengths, tagged
 * fields written only when not default, in tag order, unknown tags skipped), header v2 with its
 * classic ClientId, and hostile inputs (counts and lengths over the limits or over the bytes
 * left, impossible lengths, null where the version forbids it, an exhausted arena), each with
 * the error class the codec promises.
 */
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "proto/gen/kafka.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

struct fixture {
    struct arena arena;
    struct buf out;
};

static int setup(void **state)
{
    static struct fixture fx;
    arena_init(&fx.arena, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    buf_init(&fx.out);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    buf_deinit(&fx->out);
    arena_deinit(&fx->arena);
    return 0;
}

static int decode_bytes(const struct proto_message *m, struct arena *a, const uint8_t *p,
                        size_t len, int16_t version, void *out, size_t *left)
{
    struct reader r;
    rd_init(&r, p, len);
    int err = proto_decode(m, a, &r, version, out);
    if (left != NULL)
        *left = rd_left(&r);
    return err;
}

/* ApiVersionsResponse v3: error, compact api_keys, throttle, then tags 1 and 3 (not 0, 2). */
static const uint8_t api_versions_v3[] = {
    0x00, 0x00,                                           /* ErrorCode 0 */
    0x02,                                                 /* ApiKeys: 1 element */
    0x00, 0x12, 0x00, 0x00, 0x00, 0x04, 0x00,             /* ApiVersions 0..4, no tags */
    0x00, 0x00, 0x00, 0x00,                               /* ThrottleTimeMs 0 */
    0x02,                                                 /* 2 tagged fields */
    0x01, 0x08, 0,    0,    0,    0,    0,    0, 0, 0x07, /* FinalizedFeaturesEpoch = 7 */
    0x03, 0x01, 0x01,                                     /* ZkMigrationReady = true */
};

static void test_flexible_encoding(void **state)
{
    struct fixture *fx = *state;
    struct kafka_api_versions_response resp;
    kafka_api_versions_response_init(&resp);
    struct kafka_api_versions_response_api_version key = {
        .api_key = 18, .min_version = 0, .max_version = 4};
    resp.api_keys.items = &key;
    resp.api_keys.count = 1;
    resp.finalized_features_epoch = 7;
    resp.zk_migration_ready = true;
    /* Defaults: epoch -1 and both feature arrays empty, so only tags 1 and 3 are written. */
    assert_int_equal(kafka_api_versions_response_encode(&resp, 3, &fx->out), 0);
    assert_int_equal(fx->out.len, sizeof(api_versions_v3));
    assert_memory_equal(fx->out.data, api_versions_v3, sizeof(api_versions_v3));
    assert_int_equal(kafka_api_versions_response_size(&resp, 3), sizeof(api_versions_v3));

    struct kafka_api_versions_response back;
    size_t left;
    assert_int_equal(decode_bytes(&kafka_api_versions_response_message, &fx->arena, api_versions_v3,
                                  sizeof(api_versions_v3), 3, &back, &left),
                     0);
    assert_int_equal(left, 0);
    assert_int_equal(back.api_keys.count, 1);
    assert_int_equal(back.api_keys.items[0].api_key, 18);
    assert_int_equal(back.api_keys.items[0].max_version, 4);
    assert_int_equal(back.finalized_features_epoch, 7);
    assert_true(back.zk_migration_ready);
    assert_int_equal(back.supported_features.count, 0);

    /* An all-default message writes an empty tag section: one 0x00. */
    kafka_api_versions_response_init(&resp);
    buf_reset(&fx->out);
    assert_int_equal(kafka_api_versions_response_encode(&resp, 3, &fx->out), 0);
    static const uint8_t empty[] = {0, 0, 0x01, 0, 0, 0, 0, 0x00};
    assert_int_equal(fx->out.len, sizeof(empty));
    assert_memory_equal(fx->out.data, empty, sizeof(empty));
}

static void test_tagged_field_errors(void **state)
{
    struct fixture *fx = *state;
    struct kafka_api_versions_response back;
    uint8_t bad[sizeof(api_versions_v3) + 1];

    /* A known tag whose declared size is larger than its content: corrupt. */
    memcpy(bad, api_versions_v3, 16);
    bad[16] = 0x09;
    memcpy(bad + 17, api_versions_v3 + 17, 8);
    bad[25] = 0xee;
    memcpy(bad + 26, api_versions_v3 + 25, 3);
    assert_int_equal(decode_bytes(&kafka_api_versions_response_message, &fx->arena, bad,
                                  sizeof(bad), 3, &back, NULL),
                     ERR_CORRUPT);

    /* A declared size shorter than the int64 it holds: corrupt, not incomplete. */
    memcpy(bad, api_versions_v3, sizeof(api_versions_v3));
    bad[16] = 0x07;
    assert_int_equal(decode_bytes(&kafka_api_versions_response_message, &fx->arena, bad,
                                  sizeof(api_versions_v3), 3, &back, NULL),
                     ERR_CORRUPT);
}

static void test_unknown_tags_skipped(void **state)
{
    struct fixture *fx = *state;
    /* ApiVersionsRequest v3: two compact strings, then one unknown tag 5 of 2 bytes. */
    static const uint8_t req[] = {0x02, 'a', 0x02, 'b', 0x01, 0x05, 0x02, 0xaa, 0xbb};
    struct kafka_api_versions_request back;
    size_t left;
    assert_int_equal(decode_bytes(&kafka_api_versions_request_message, &fx->arena, req, sizeof(req),
                                  3, &back, &left),
                     0);
    assert_int_equal(left, 0);
    assert_true(proto_str_eq(back.client_software_name, "a"));
    assert_true(proto_str_eq(back.client_software_version, "b"));
    /* Unknown tags are kept nowhere: re-encoding drops them. */
    assert_int_equal(kafka_api_versions_request_encode(&back, 3, &fx->out), 0);
    static const uint8_t expect[] = {0x02, 'a', 0x02, 'b', 0x00};
    assert_int_equal(fx->out.len, sizeof(expect));
    assert_memory_equal(fx->out.data, expect, sizeof(expect));
}

static void test_request_header_v2(void **state)
{
    struct fixture *fx = *state;
    /* Header v2 keeps the int16-length ClientId (flexibleVersions "none"), then tags. */
    static const uint8_t hdr[] = {0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00,
                                  0x07, 0x00, 0x03, 'c',  'l',  'i',  0x00};
    struct kafka_request_header h;
    size_t left;
    assert_int_equal(
        decode_bytes(&kafka_request_header_message, &fx->arena, hdr, sizeof(hdr), 2, &h, &left), 0);
    assert_int_equal(left, 0);
    assert_int_equal(h.request_api_key, 18);
    assert_int_equal(h.request_api_version, 3);
    assert_int_equal(h.correlation_id, 7);
    assert_true(proto_str_eq(h.client_id, "cli"));
    assert_int_equal(h.client_id.ptr[3], '\0');
    assert_int_equal(kafka_request_header_encode(&h, 2, &fx->out), 0);
    assert_memory_equal(fx->out.data, hdr, sizeof(hdr));
    /* A null ClientId is int16 -1 in every version. */
    static const uint8_t null_client[] = {0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff};
    assert_int_equal(decode_bytes(&kafka_request_header_message, &fx->arena, null_client,
                                  sizeof(null_client), 1, &h, NULL),
                     0);
    assert_null(h.client_id.ptr);
}

static void test_hostile_counts(void **state)
{
    struct fixture *fx = *state;
    struct kafka_metadata_request req;

    /* MetadataRequest v1: Topics int32 count. Over PROTO_ARRAY_COUNT_MAX: too large. */
    static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 0, 0, 0};
    arena_reset(&fx->arena);
    assert_int_equal(decode_bytes(&kafka_metadata_request_message, &fx->arena, huge, sizeof(huge),
                                  1, &req, NULL),
                     ERR_TOO_LARGE);
    assert_int_equal(arena_used(&fx->arena), 0);

    /* A count within the limit but over the bytes left: incomplete, and nothing allocated. */
    static const uint8_t short_count[] = {0x00, 0x0f, 0x42, 0x40, 0x00, 0x01, 'x'};
    assert_int_equal(decode_bytes(&kafka_metadata_request_message, &fx->arena, short_count,
                                  sizeof(short_count), 1, &req, NULL),
                     ERR_INCOMPLETE);
    assert_int_equal(arena_used(&fx->arena), 0);

    /* Counts below -1 are impossible. */
    static const uint8_t negative[] = {0xff, 0xff, 0xff, 0xfe};
    assert_int_equal(decode_bytes(&kafka_metadata_request_message, &fx->arena, negative,
                                  sizeof(negative), 1, &req, NULL),
                     ERR_CORRUPT);

    /* Null Topics is allowed from v1 (all topics) but not in v0. */
    static const uint8_t null_topics[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(decode_bytes(&kafka_metadata_request_message, &fx->arena, null_topics,
                                  sizeof(null_topics), 1, &req, NULL),
                     0);
    assert_null(req.topics.items);
    assert_int_equal(decode_bytes(&kafka_metadata_request_message, &fx->arena, null_topics,
                                  sizeof(null_topics), 0, &req, NULL),
                     ERR_CORRUPT);
}

static void test_hostile_strings(void **state)
{
    struct fixture *fx = *state;
    struct kafka_metadata_request req;

    /* MetadataRequest v9: compact Topics of one, Name with a compact length of 40000. */
    static const uint8_t long_name[] = {0x02, 0xc1, 0xb8, 0x02, 'x'};
    arena_reset(&fx->arena);
    assert_int_equal(decode_bytes(&kafka_metadata_request_message, &fx->arena, long_name,
                                  sizeof(long_name), 9, &req, NULL),
                     ERR_TOO_LARGE);

    /* A classic string length below -1. */
    static const uint8_t bad_len[] = {0, 0, 0, 1, 0xff, 0xfe};
    assert_int_equal(decode_bytes(&kafka_metadata_request_message, &fx->arena, bad_len,
                                  sizeof(bad_len), 1, &req, NULL),
                     ERR_CORRUPT);

    /* Null Name where the version does not allow it (v1-v9 names are not nullable). */
    static const uint8_t null_name[] = {0, 0, 0, 1, 0xff, 0xff};
    assert_int_equal(decode_bytes(&kafka_metadata_request_message, &fx->arena, null_name,
                                  sizeof(null_name), 1, &req, NULL),
                     ERR_CORRUPT);

    /* A varint longer than 5 bytes is corrupt. */
    static const uint8_t long_varint[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    assert_int_equal(decode_bytes(&kafka_metadata_request_message, &fx->arena, long_varint,
                                  sizeof(long_varint), 9, &req, NULL),
                     ERR_CORRUPT);
}

static void test_arena_limit(void **state)
{
    (void)state;
    /* 200 topic names of 1 byte each need more than a 1 KiB arena: too large, within bound. */
    uint8_t frame[4 + 200 * 3];
    be32_store(frame, 200);
    for (size_t i = 0; i < 200; i++) {
        frame[4 + 3 * i] = 0;
        frame[5 + 3 * i] = 1;
        frame[6 + 3 * i] = 'a';
    }
    struct arena small;
    arena_init(&small, 256, 1024);
    struct kafka_metadata_request req;
    assert_int_equal(
        decode_bytes(&kafka_metadata_request_message, &small, frame, sizeof(frame), 1, &req, NULL),
        ERR_TOO_LARGE);
    assert_true(arena_used(&small) <= 1024);
    arena_deinit(&small);
}

static void test_lenient_encoding(void **state)
{
    struct fixture *fx = *state;
    /* A zeroed request: NULL non-nullable Topics and Name encode as empty in v0. */
    struct kafka_metadata_request req;
    memset(&req, 0, sizeof(req));
    assert_int_equal(kafka_metadata_request_encode(&req, 0, &fx->out), 0);
    static const uint8_t v0[] = {0, 0, 0, 0};
    assert_int_equal(fx->out.len, sizeof(v0));
    assert_memory_equal(fx->out.data, v0, sizeof(v0));
    /* From v1 a NULL Topics is null. */
    buf_reset(&fx->out);
    assert_int_equal(kafka_metadata_request_encode(&req, 1, &fx->out), 0);
    assert_int_equal(be32_load(fx->out.data), 0xffffffffu);

    /* A string too long for the wire fails and leaves the buffer as it was. */
    static char long_name[PROTO_STRING_BYTES_MAX + 2];
    memset(long_name, 'n', sizeof(long_name) - 1);
    struct kafka_metadata_request_metadata_request_topic topic;
    memset(&topic, 0, sizeof(topic));
    topic.name = proto_str_make(long_name);
    req.topics.items = &topic;
    req.topics.count = 1;
    buf_reset(&fx->out);
    buf_put_u8(&fx->out, 0x5a);
    assert_int_equal(kafka_metadata_request_encode(&req, 1, &fx->out), ERR_TOO_LARGE);
    assert_int_equal(kafka_metadata_request_size(&req, 1), ERR_TOO_LARGE);
    assert_int_equal(fx->out.len, 1);
}

/* A spliced FetchResponse, with each partition's records put back at the noted positions,
 * is byte for byte the ordinary encoding, for a classic and a flexible version. */
static void test_spliced_encoding(void **state)
{
    struct fixture *fx = *state;
    static const char *const payload[3] = {"first-records", "", "third records, longer"};
    struct kafka_fetch_response_partition_data parts[3];
    memset(parts, 0, sizeof(parts));
    struct kafka_fetch_response_fetchable_topic_response topic;
    memset(&topic, 0, sizeof(topic));
    topic.topic = proto_str_make("orders");
    topic.partitions.items = parts;
    topic.partitions.count = 3;
    struct kafka_fetch_response resp;
    kafka_fetch_response_init(&resp);
    resp.responses.items = &topic;
    resp.responses.count = 1;
    static const int16_t versions[] = {11, 12, 16};
    for (size_t v = 0; v < ARRAY_LEN(versions); v++) {
        for (int i = 0; i < 3; i++) {
            parts[i].partition_index = i;
            parts[i].high_watermark = 100 + i;
            parts[i].records = slice_make(payload[i], strlen(payload[i]));
        }
        struct buf plain;
        buf_init(&plain);
        assert_int_equal(kafka_fetch_response_encode(&resp, versions[v], &plain), 0);
        /* Cookies: the partitions themselves; the codec must not read them. */
        for (int i = 0; i < 3; i++)
            parts[i].records = slice_make(&parts[i], strlen(payload[i]));
        struct proto_splice sp[3];
        size_t n = 0;
        buf_reset(&fx->out);
        buf_append(&fx->out, "HDR", 3); /* positions count from the buffer's start */
        assert_int_equal(proto_encode_spliced(&kafka_fetch_response_message, &resp, versions[v],
                                              &fx->out, sp, 3, &n),
                         0);
        assert_int_equal(n, 3);
        struct buf joined;
        buf_init(&joined);
        size_t at = 3;
        for (size_t i = 0; i < n; i++) {
            const struct kafka_fetch_response_partition_data *pd = sp[i].cookie;
            assert_ptr_equal(pd, &parts[i]);
            assert_int_equal(sp[i].len, strlen(payload[i]));
            buf_append(&joined, fx->out.data + at, sp[i].at - at);
            buf_append(&joined, payload[i], sp[i].len);
            at = sp[i].at;
        }
        buf_append(&joined, fx->out.data + at, fx->out.len - at);
        assert_int_equal(joined.len, plain.len);
        assert_memory_equal(joined.data, plain.data, plain.len);
        /* Too few splice slots is an error, and leaves the buffer as it was. */
        size_t before = fx->out.len;
        assert_int_equal(proto_encode_spliced(&kafka_fetch_response_message, &resp, versions[v],
                                              &fx->out, sp, 2, &n),
                         ERR_TOO_LARGE);
        assert_int_equal(fx->out.len, before);
        buf_deinit(&joined);
        buf_deinit(&plain);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flexible_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tagged_field_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_tags_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_header_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lenient_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spliced_encoding, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
