/*
 * The __consumer_offsets record formats: round trips of every key and value we write, values of
 * older versions written by hand as Kafka lays them out, every truncation of a value rejected,
 * and the walk over the records of a stored batch (tombstones included).
 */
#include "base/buf.h"
#include "base/error.h"
#include "base/limits.h"
#include "group/records.h"
#include "log/batch.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static struct slice s(const char *text)
{
    return slice_make(text, strlen(text));
}

static void assert_slice(struct slice got, const char *want)
{
    assert_non_null(got.ptr);
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.ptr, want, got.len);
}

static void test_offset_key_round_trip(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    grec_offset_key_encode(&b, s("g1"), s("topic-a"), 7);
    /* version 1, "g1", "topic-a", partition 7: Kafka's OffsetCommitKey layout. */
    static const uint8_t want[] = {0,   1,   0,   2,   'g', '1', 0, 7, 't', 'o',
                                   'p', 'i', 'c', '-', 'a', 0,   0, 0, 7};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    struct grec_key k;
    assert_int_equal(grec_key_decode(buf_slice(&b), &k), 0);
    assert_int_equal(k.kind, GREC_OFFSET);
    assert_slice(k.group, "g1");
    assert_slice(k.topic, "topic-a");
    assert_int_equal(k.partition, 7);
    buf_deinit(&b);
}

static void test_group_key_and_bad_keys(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    grec_group_key_encode(&b, s("grp"));
    struct grec_key k;
    assert_int_equal(grec_key_decode(buf_slice(&b), &k), 0);
    assert_int_equal(k.kind, GREC_GROUP);
    assert_slice(k.group, "grp");
    /* Every truncation is corrupt; a trailing byte is too. */
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(grec_key_decode(slice_make(b.data, n), &k), ERR_CORRUPT);
    buf_put_u8(&b, 0);
    assert_int_equal(grec_key_decode(buf_slice(&b), &k), ERR_CORRUPT);
    /* Key version 3 belongs to Kafka's newer group types: skipped, not an error in the log. */
    static const uint8_t v3[] = {0, 3, 0, 1, 'x'};
    assert_int_equal(grec_key_decode(slice_make(v3, sizeof(v3)), &k), ERR_UNSUPPORTED);
    buf_deinit(&b);
}

static void test_offset_value_round_trip(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    struct grec_offset_value v = {.offset = 1234567890123ll,
                                  .leader_epoch = 5,
                                  .metadata = s("meta"),
                                  .commit_ms = 1700000000000ll,
                                  .expire_ms = -1};
    grec_offset_value_encode(&b, &v);
    struct grec_offset_value out;
    assert_int_equal(grec_offset_value_decode(buf_slice(&b), &out), 0);
    assert_int_equal(out.offset, v.offset);
    assert_int_equal(out.leader_epoch, 5);
    assert_slice(out.metadata, "meta");
    assert_int_equal(out.commit_ms, v.commit_ms);
    assert_int_equal(out.expire_ms, -1);
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(grec_offset_value_decode(slice_make(b.data, n), &out), ERR_CORRUPT);
    buf_deinit(&b);
}

static void test_offset_value_version1(void **state)
{
    (void)state;
    /* Version 1: offset, metadata, commitTimestamp, expireTimestamp; no leader epoch. */
    struct buf b;
    buf_init(&b);
    buf_put_be16(&b, 1);
    buf_put_be64(&b, 42);
    buf_put_be16(&b, 0);
    buf_put_be64(&b, 1000);
    buf_put_be64(&b, 5000);
    struct grec_offset_value out;
    assert_int_equal(grec_offset_value_decode(buf_slice(&b), &out), 0);
    assert_int_equal(out.offset, 42);
    assert_int_equal(out.leader_epoch, -1);
    assert_int_equal(out.metadata.len, 0);
    assert_int_equal(out.commit_ms, 1000);
    assert_int_equal(out.expire_ms, 5000);
    /* Version 4 is flexible (tagged fields), which we do not read. */
    b.data[1] = 4;
    assert_int_equal(grec_offset_value_decode(buf_slice(&b), &out), ERR_UNSUPPORTED);
    buf_deinit(&b);
}

static void test_group_value_round_trip(void **state)
{
    (void)state;
    struct grec_member ms[2] = {
        {.member_id = s("m-1"),
         .instance_id = s("inst-1"),
         .client_id = s("c1"),
         .client_host = s("/127.0.0.1"),
         .rebalance_timeout_ms = 30000,
         .session_timeout_ms = 10000,
         .subscription = s("sub1"),
         .assignment = s("asg1")},
        {.member_id = s("m-2"),
         .instance_id = slice_make(NULL, 0),
         .client_id = s("c2"),
         .client_host = s("/10.0.0.2"),
         .rebalance_timeout_ms = 40000,
         .session_timeout_ms = 20000,
         .subscription = s("sub2"),
         .assignment = s("")},
    };
    struct grec_group_value v = {.protocol_type = s("consumer"),
                                 .generation = 9,
                                 .protocol = s("range"),
                                 .leader = s("m-1"),
                                 .state_ms = 777,
                                 .members = ms,
                                 .member_count = 2};
    struct buf b;
    buf_init(&b);
    grec_group_value_encode(&b, &v);
    struct grec_group_value out;
    assert_int_equal(grec_group_value_decode(buf_slice(&b), &out), 0);
    assert_slice(out.protocol_type, "consumer");
    assert_int_equal(out.generation, 9);
    assert_slice(out.protocol, "range");
    assert_slice(out.leader, "m-1");
    assert_int_equal(out.state_ms, 777);
    assert_int_equal(out.member_count, 2);
    assert_slice(out.members[0].instance_id, "inst-1");
    assert_null(out.members[1].instance_id.ptr);
    assert_slice(out.members[1].client_host, "/10.0.0.2");
    assert_int_equal(out.members[1].rebalance_timeout_ms, 40000);
    assert_int_equal(out.members[1].session_timeout_ms, 20000);
    assert_slice(out.members[0].subscription, "sub1");
    assert_slice(out.members[0].assignment, "asg1");
    assert_int_equal(out.members[1].assignment.len, 0);
    grec_group_value_free(&out);
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(grec_group_value_decode(slice_make(b.data, n), &out), ERR_CORRUPT);
    buf_deinit(&b);
}

static void test_group_value_hostile_count(void **state)
{
    (void)state;
    /* A member count far beyond the bytes present is refused before any allocation. */
    struct buf b;
    buf_init(&b);
    buf_put_be16(&b, 3);
    buf_put_be16(&b, 0);
    buf_put_be32(&b, 1);
    buf_put_be16(&b, (uint16_t)-1);
    buf_put_be16(&b, (uint16_t)-1);
    buf_put_be64(&b, 0);
    buf_put_be32(&b, 5000);
    struct grec_group_value out;
    assert_int_equal(grec_group_value_decode(buf_slice(&b), &out), ERR_CORRUPT);
    assert_null(out.members);
    buf_deinit(&b);
}

struct seen {
    int count;
    int64_t offsets[4];
    struct slice keys[4];
    struct slice values[4];
};

static int on_record(void *ctx, int64_t offset, struct slice key, struct slice value)
{
    struct seen *sn = ctx;
    assert_true(sn->count < 4);
    sn->offsets[sn->count] = offset;
    sn->keys[sn->count] = key;
    sn->values[sn->count] = value;
    sn->count++;
    return 0;
}

static void test_batch_walk(void **state)
{
    (void)state;
    struct batch_record recs[3] = {
        {.key = s("k0"), .value = s("v0"), .timestamp_ms = 1},
        {.key = s("k1"), .value = slice_make(NULL, 0), .timestamp_ms = 1},
        {.key = s("k2"), .value = s("value-two"), .timestamp_ms = 2},
    };
    struct batch_build_opts opts = {
        .base_offset = 100, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    struct buf b;
    buf_init(&b);
    assert_int_equal(batch_build(&b, &opts, recs, 3), 0);
    struct seen sn = {0};
    assert_int_equal(grec_batch_walk(b.data, b.len, on_record, &sn), 0);
    assert_int_equal(sn.count, 3);
    assert_int_equal(sn.offsets[2], 102);
    assert_slice(sn.keys[1], "k1");
    assert_null(sn.values[1].ptr);
    assert_slice(sn.values[2], "value-two");
    /* A record length that runs past the batch is corrupt, never read beyond. */
    struct buf bad;
    buf_init(&bad);
    buf_append(&bad, b.data, b.len);
    bad.data[LOG_BATCH_HEADER_BYTES] = 0x7e; /* zigzag 63: longer than the first record */
    memset(&sn, 0, sizeof(sn));
    assert_int_equal(grec_batch_walk(bad.data, bad.len, on_record, &sn), ERR_CORRUPT);
    /* A compressed batch is not ours. */
    buf_reset(&bad);
    buf_append(&bad, b.data, b.len);
    bad.data[BATCH_OFF_ATTRIBUTES + 1] |= BATCH_CODEC_GZIP;
    assert_int_equal(grec_batch_walk(bad.data, bad.len, on_record, &sn), ERR_UNSUPPORTED);
    buf_deinit(&bad);
    buf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset_key_round_trip),
        cmocka_unit_test(test_group_key_and_bad_keys),
        cmocka_unit_test(test_offset_value_round_trip),
        cmocka_unit_test(test_offset_value_version1),
        cmocka_unit_test(test_group_value_round_trip),
        cmocka_unit_test(test_group_value_hostile_count),
        cmocka_unit_test(test_batch_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
