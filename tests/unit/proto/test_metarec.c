/*
 * KRaft metadata records in their log frame (proto/metarec.h): every record type at every
 * version round-trips from random values through the frame; hand-checked byte vectors for a
 * TopicRecord and a PartitionRecord; and every malformed frame is refused with the error class
 * metarec.h promises (a short value is corrupt, never incomplete).
 *
 * Seed: PROTO_TEST_SEED overrides the base seed; the seed of a failing case is printed.
 */
#include "proto_fill.h"

#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "proto/gen/kafka.h"
#include "proto/metarec.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#define SEEDS_PER_VERSION 32

static uint64_t base_seed;

static void report(const struct proto_message *m, int16_t version, uint64_t seed, const char *what)
{
    print_error("%s v%d seed 0x%llx: %s (replay with PROTO_TEST_SEED=0x%llx)\n", m->name, version,
                (unsigned long long)seed, what, (unsigned long long)base_seed);
}

static void round_trip(const struct proto_message *m, int16_t version, uint64_t seed)
{
    struct arena fill, dec;
    arena_init(&fill, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    arena_init(&dec, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    struct buf first, second;
    buf_init(&first);
    buf_init(&second);
    void *body = test_calloc(1, m->body->bytes);
    struct rng rng;
    rng_seed(&rng, seed);
    assert_int_equal(proto_fill_random(m, &rng, &fill, version, body), 0);

    int rc = metarec_encode(m->api_key, version, body, &first);
    if (rc != 0)
        report(m, version, seed, "encode failed");
    assert_int_equal(rc, 0);
    assert_int_equal(metarec_size(m->api_key, version, body), first.len);
    /* The frame: version 1, then the type and version as one-byte varints here. */
    assert_true(first.len >= 4);
    assert_int_equal(first.data[0], METAREC_FRAME_VERSION);

    struct metarec rec;
    rc = metarec_decode(&dec, buf_slice(&first), &rec);
    if (rc != 0)
        report(m, version, seed, "decode failed");
    assert_int_equal(rc, 0);
    assert_int_equal(rec.type, m->api_key);
    assert_int_equal(rec.version, version);
    assert_ptr_equal(rec.message, m);
    assert_int_equal(metarec_encode(rec.type, rec.version, rec.body, &second), 0);
    if (!slice_eq(buf_slice(&first), buf_slice(&second)))
        report(m, version, seed, "re-encoding differs");
    assert_true(slice_eq(buf_slice(&first), buf_slice(&second)));

    /* Every strict prefix is corrupt: a record value is always whole. */
    for (size_t cut = 0; cut < first.len; cut++) {
        arena_reset(&dec);
        rc = metarec_decode(&dec, slice_make(first.data, cut), &rec);
        if (rc != ERR_CORRUPT) {
            report(m, version, seed, "truncated value not refused as corrupt");
            print_error("cut at %zu of %zu: %d (%s)\n", cut, first.len, rc, err_str(rc));
            fail();
        }
    }
    /* So is a byte after the body (Kafka: "byte(s) of garbage after"). */
    buf_put_u8(&first, 0);
    arena_reset(&dec);
    assert_int_equal(metarec_decode(&dec, buf_slice(&first), &rec), ERR_CORRUPT);

    test_free(body);
    buf_deinit(&second);
    buf_deinit(&first);
    arena_deinit(&dec);
    arena_deinit(&fill);
}

static void test_every_record_every_version(void **state)
{
    (void)state;
    size_t types = 0, cases = 0;
    for (int16_t t = 0; t < (int16_t)PROTO_METADATA_TYPE_COUNT; t++) {
        const struct proto_message *m = metarec_message(t);
        if (m == NULL)
            continue;
        assert_int_equal(m->kind, PROTO_KIND_METADATA);
        assert_int_equal(m->api_key, t);
        types++;
        for (int16_t v = m->version_min; v <= m->version_max; v++) {
            for (unsigned s = 0; s < SEEDS_PER_VERSION; s++) {
                round_trip(m, v, base_seed ^ ((uint64_t)t << 32) ^ ((uint64_t)v << 16) ^ s);
                cases++;
            }
        }
    }
    /* The 13 record schemas the cluster uses, 22 versions between them. */
    assert_int_equal(types, 13);
    assert_int_equal(cases, 22 * SEEDS_PER_VERSION);
}

/* The enum names the schema it says (a renumbered schema would break the log format). */
static void test_types_match_schemas(void **state)
{
    (void)state;
    static const struct {
        int16_t type;
        const char *name;
    } names[] = {
        {METAREC_REGISTER_BROKER, "RegisterBrokerRecord"},
        {METAREC_UNREGISTER_BROKER, "UnregisterBrokerRecord"},
        {METAREC_TOPIC, "TopicRecord"},
        {METAREC_PARTITION, "PartitionRecord"},
        {METAREC_CONFIG, "ConfigRecord"},
        {METAREC_PARTITION_CHANGE, "PartitionChangeRecord"},
        {METAREC_FENCE_BROKER, "FenceBrokerRecord"},
        {METAREC_UNFENCE_BROKER, "UnfenceBrokerRecord"},
        {METAREC_REMOVE_TOPIC, "RemoveTopicRecord"},
        {METAREC_FEATURE_LEVEL, "FeatureLevelRecord"},
        {METAREC_PRODUCER_IDS, "ProducerIdsRecord"},
        {METAREC_BROKER_REGISTRATION_CHANGE, "BrokerRegistrationChangeRecord"},
        {METAREC_NO_OP, "NoOpRecord"},
    };
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        const struct proto_message *m = metarec_message(names[i].type);
        assert_non_null(m);
        assert_string_equal(m->name, names[i].name);
    }
    assert_null(metarec_message(6)); /* AccessControlEntryRecord: not carried */
    assert_null(metarec_message(-1));
    assert_null(metarec_message((int16_t)PROTO_METADATA_TYPE_COUNT));
}

static const uint8_t topic_id[16] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                     0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};

static void check_bytes(const struct buf *b, const uint8_t *want, size_t len)
{
    if (b->len != len || memcmp(b->data, want, len) != 0) {
        for (size_t i = 0; i < b->len; i++)
            print_error("%02x%s", b->data[i], i + 1 == b->len ? "\n" : " ");
        fail_msg("encoding differs from the hand-checked vector");
    }
}

/* TopicRecord v0 {Name "foo", TopicId 00..0f}, byte by byte. */
static void test_topic_record_vector(void **state)
{
    (void)state;
    /* clang-format off */
    static const uint8_t want[] = {
        0x01,                   /* frame version 1 */
        0x02,                   /* record type 2: TopicRecord */
        0x00,                   /* version 0 */
        0x04, 'f', 'o', 'o',    /* Name: compact string, uvarint(3 + 1) */
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, /* TopicId */
        0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
        0x00,                   /* no tagged fields */
    };
    /* clang-format on */
    struct kafka_topic_record rec;
    kafka_topic_record_init(&rec);
    rec.name = proto_str_make("foo");
    memcpy(rec.topic_id.bytes, topic_id, 16);
    struct buf b;
    buf_init(&b);
    assert_int_equal(metarec_encode(METAREC_TOPIC, 0, &rec, &b), 0);
    check_bytes(&b, want, sizeof(want));

    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    struct metarec out;
    assert_int_equal(metarec_decode(&a, slice_make(want, sizeof(want)), &out), 0);
    assert_int_equal(out.type, METAREC_TOPIC);
    const struct kafka_topic_record *back = out.body;
    assert_true(proto_str_eq(back->name, "foo"));
    assert_memory_equal(back->topic_id.bytes, topic_id, 16);
    arena_deinit(&a);
    buf_deinit(&b);
}

/*
 * PartitionRecord v0 {PartitionId 1, TopicId 00..0f, Replicas [1, 2], Isr [1], no removing or
 * adding replicas, Leader 1, LeaderRecoveryState 1 (tag 0), LeaderEpoch 5, PartitionEpoch 7}.
 */
static void test_partition_record_vector(void **state)
{
    (void)state;
    /* clang-format off */
    static const uint8_t want[] = {
        0x01, 0x03, 0x00,       /* frame version 1, type 3: PartitionRecord, version 0 */
        0x00, 0x00, 0x00, 0x01, /* PartitionId */
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, /* TopicId */
        0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
        0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, /* Replicas: uvarint(2 + 1) */
        0x02, 0x00, 0x00, 0x00, 0x01,                         /* Isr */
        0x01,                   /* RemovingReplicas: empty */
        0x01,                   /* AddingReplicas: empty */
        0x00, 0x00, 0x00, 0x01, /* Leader */
        0x00, 0x00, 0x00, 0x05, /* LeaderEpoch */
        0x00, 0x00, 0x00, 0x07, /* PartitionEpoch */
        0x01,                   /* one tagged field: */
        0x00, 0x01, 0x01,       /* tag 0, 1 byte, LeaderRecoveryState 1 */
    };
    /* clang-format on */
    int32_t replicas[] = {1, 2}, isr[] = {1};
    struct kafka_partition_record rec;
    kafka_partition_record_init(&rec);
    rec.partition_id = 1;
    memcpy(rec.topic_id.bytes, topic_id, 16);
    rec.replicas.items = replicas;
    rec.replicas.count = 2;
    rec.isr.items = isr;
    rec.isr.count = 1;
    rec.leader = 1;
    rec.leader_recovery_state = 1;
    rec.leader_epoch = 5;
    rec.partition_epoch = 7;
    struct buf b;
    buf_init(&b);
    assert_int_equal(metarec_encode(METAREC_PARTITION, 0, &rec, &b), 0);
    check_bytes(&b, want, sizeof(want));

    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    struct metarec out;
    assert_int_equal(metarec_decode(&a, slice_make(want, sizeof(want)), &out), 0);
    const struct kafka_partition_record *back = out.body;
    assert_int_equal(back->partition_id, 1);
    assert_int_equal(back->replicas.count, 2);
    assert_int_equal(back->replicas.items[1], 2);
    assert_int_equal(back->isr.count, 1);
    assert_int_equal(back->removing_replicas.count, 0);
    assert_int_equal(back->leader, 1);
    assert_int_equal(back->leader_recovery_state, 1);
    assert_int_equal(back->leader_epoch, 5);
    assert_int_equal(back->partition_epoch, 7);
    arena_deinit(&a);
    buf_deinit(&b);
}

/* Frames Kafka refuses: frame version 0 (the 2.8 preview) or 2, unknown types, a type or version
 * over int16, a version the schema lacks. Encoding an unknown type or version writes nothing. */
static void test_refused_frames(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    struct metarec out;
    static const struct {
        uint8_t bytes[8];
        size_t len;
        int err;
    } cases[] = {
        {{0x00, 0x14, 0x00, 0x00}, 4, ERR_UNSUPPORTED},         /* frame version 0 */
        {{0x02, 0x14, 0x00, 0x00}, 4, ERR_UNSUPPORTED},         /* frame version 2 */
        {{0x01, 0x06, 0x00, 0x00}, 4, ERR_UNSUPPORTED},         /* type 6: no schema here */
        {{0x01, 0x7f, 0x00, 0x00}, 4, ERR_UNSUPPORTED},         /* type 127 */
        {{0x01, 0x14, 0x01, 0x00}, 4, ERR_UNSUPPORTED},         /* NoOpRecord v1 */
        {{0x01, 0x80, 0x80, 0x02, 0x00, 0x00}, 6, ERR_CORRUPT}, /* type 32768 */
        {{0x01, 0x14, 0x80, 0x80, 0x02, 0x00}, 6, ERR_CORRUPT}, /* version 32768 */
        {{0x01, 0x14, 0x00, 0x01, 0x05, 0x05}, 6, ERR_CORRUPT}, /* tag size over the end */
        {{0x01, 0x14, 0x00, 0x00, 0x00}, 5, ERR_CORRUPT},       /* garbage after the body */
        {{0x01, 0x14, 0x00}, 3, ERR_CORRUPT},                   /* no body */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        arena_reset(&a);
        int rc = metarec_decode(&a, slice_make(cases[i].bytes, cases[i].len), &out);
        if (rc != cases[i].err)
            fail_msg("case %zu: %d (%s), want %s", i, rc, err_str(rc), err_str(cases[i].err));
    }
    /* NoOpRecord v0 is the smallest valid record: the frame and an empty tag section. */
    static const uint8_t noop[] = {0x01, 0x14, 0x00, 0x00};
    assert_int_equal(metarec_decode(&a, slice_make(noop, sizeof(noop)), &out), 0);
    assert_int_equal(out.type, METAREC_NO_OP);

    struct kafka_no_op_record rec;
    kafka_no_op_record_init(&rec);
    struct buf b;
    buf_init(&b);
    assert_int_equal(metarec_encode(6, 0, &rec, &b), ERR_NOT_FOUND);
    assert_int_equal(metarec_encode(METAREC_NO_OP, 1, &rec, &b), ERR_UNSUPPORTED);
    assert_int_equal(metarec_size(METAREC_NO_OP, 1, &rec), ERR_UNSUPPORTED);
    assert_int_equal(b.len, 0);
    assert_int_equal(metarec_encode(METAREC_NO_OP, 0, &rec, &b), 0);
    assert_memory_equal(b.data, noop, sizeof(noop));
    buf_deinit(&b);
    arena_deinit(&a);
}

/* The decode arena bounds a record's memory: a full arena is ERR_TOO_LARGE, not a crash. */
static void test_arena_limit(void **state)
{
    (void)state;
    struct kafka_topic_record rec;
    kafka_topic_record_init(&rec);
    rec.name = proto_str_make("a-topic-name-long-enough-to-need-memory");
    struct buf b;
    buf_init(&b);
    assert_int_equal(metarec_encode(METAREC_TOPIC, 0, &rec, &b), 0);
    struct arena a;
    arena_init(&a, 64, sizeof(struct kafka_topic_record));
    struct metarec out;
    assert_int_equal(metarec_decode(&a, buf_slice(&b), &out), ERR_TOO_LARGE);
    arena_deinit(&a);
    buf_deinit(&b);
}

int main(void)
{
    base_seed = proto_test_seed("PROTO_TEST_SEED", 0x5eed0002);
    printf("metarec seed 0x%llx (override with PROTO_TEST_SEED)\n", (unsigned long long)base_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_record_every_version),
        cmocka_unit_test(test_types_match_schemas),
        cmocka_unit_test(test_topic_record_vector),
        cmocka_unit_test(test_partition_record_vector),
        cmocka_unit_test(test_refused_frames),
        cmocka_unit_test(test_arena_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
