/*
 * The metadata state machine (cluster/meta_records.h): each KRaft record applied to the image,
 * table by table (what applies and what is refused, with the image unchanged after a refusal),
 * records through a stored RecordBatch, and a seeded random test: random record sequences
 * applied to an image, the image written as a snapshot and loaded into a new image, equal.
 *
 * Seed: META_TEST_SEED overrides the base seed; a failing seed is printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/arena.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/rand.h"
#include "cluster/meta_records.h"
#include "log/batch.h"
#include "proto/gen/kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct proto_uuid tid(uint8_t n)
{
    struct proto_uuid u;
    memset(&u, 0, sizeof(u));
    u.bytes[0] = 0x5a;
    u.bytes[15] = n;
    return u;
}

/* Encodes, decodes and applies one record, as the log would carry it. */
static int apply_body(struct meta_image *img, int16_t type, const void *body)
{
    struct meta_records r;
    meta_records_init(&r);
    meta_records_add(&r, type, body);
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, META_RECORD_ARENA_MAX);
    int rc = meta_apply_value(img, &a, meta_records_at(&r, 0));
    arena_deinit(&a);
    meta_records_deinit(&r);
    return rc;
}

static int put_topic(struct meta_image *img, const char *name, uint8_t id)
{
    struct kafka_topic_record t;
    kafka_topic_record_init(&t);
    t.name = proto_str_make(name);
    t.topic_id = tid(id);
    return apply_body(img, METAREC_TOPIC, &t);
}

static int put_partition(struct meta_image *img, uint8_t id, int32_t index, const int32_t *replicas,
                         size_t nr, const int32_t *isr, size_t ni, int32_t leader)
{
    struct kafka_partition_record p;
    kafka_partition_record_init(&p);
    p.topic_id = tid(id);
    p.partition_id = index;
    p.replicas.items = (int32_t *)replicas;
    p.replicas.count = nr;
    p.isr.items = (int32_t *)isr;
    p.isr.count = ni;
    p.leader = leader;
    p.leader_epoch = 0;
    p.partition_epoch = 0;
    return apply_body(img, METAREC_PARTITION, &p);
}

static int put_broker(struct meta_image *img, int32_t id, int64_t epoch, const char *rack)
{
    struct kafka_register_broker_record r;
    kafka_register_broker_record_init(&r);
    struct kafka_register_broker_record_broker_endpoint e = {.name = proto_str_make("PLAINTEXT"),
                                                             .host = proto_str_make("127.0.0.1"),
                                                             .port = (uint16_t)(9092 + id),
                                                             .security_protocol = 0};
    r.broker_id = id;
    r.broker_epoch = epoch;
    r.incarnation_id = tid((uint8_t)(100 + id));
    r.end_points.items = &e;
    r.end_points.count = 1;
    r.rack = proto_str_make(rack);
    r.fenced = true;
    return apply_body(img, METAREC_REGISTER_BROKER, &r);
}

/* A refused record leaves the image equal to a copy made through the snapshot. */
static void assert_refused_unchanged(struct meta_image *img, int16_t type, const void *body,
                                     int want)
{
    struct meta_records snap;
    meta_records_init(&snap);
    meta_snapshot(img, &snap);
    uint64_t version = img->version;
    assert_int_equal(apply_body(img, type, body), want);
    assert_int_equal(img->version, version);
    struct meta_image copy;
    meta_image_init(&copy);
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, META_RECORD_ARENA_MAX);
    for (uint32_t i = 0; i < snap.count; i++) {
        arena_reset(&a);
        assert_int_equal(meta_apply_value(&copy, &a, meta_records_at(&snap, i)), 0);
    }
    assert_true(meta_image_equal(img, &copy));
    arena_deinit(&a);
    meta_image_deinit(&copy);
    meta_records_deinit(&snap);
}

static void test_topic_and_partitions(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    const int32_t r3[] = {1, 2, 3};
    assert_int_equal(put_topic(&img, "orders", 1), 0);
    const struct meta_topic *t = meta_topic_find(&img, "orders", 6);
    assert_non_null(t);
    assert_int_equal(t->partition_count, 0);
    assert_int_equal(put_partition(&img, 1, 0, r3, 3, r3, 3, 1), 0);
    assert_int_equal(put_partition(&img, 1, 1, r3, 3, r3, 2, 2), 0);
    assert_int_equal(t->partition_count, 2);
    assert_int_equal(t->replication_factor, 3);
    assert_int_equal(t->partitions[1].leader, 2);
    assert_int_equal(t->partitions[1].isr_count, 2);

    /* What is refused, each leaving the image as it was. */
    static const int32_t dup[] = {1, 1}, neg[] = {-3}, r2[] = {4, 5};
    static const int32_t big[] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct {
        const char *what;
        uint8_t topic;
        int32_t index;
        const int32_t *replicas;
        size_t nr;
        const int32_t *isr;
        size_t ni;
        int32_t leader;
        int want;
    } cases[] = {
        {"unknown topic id", 9, 0, r3, 3, r3, 3, 1, ERR_NOT_FOUND},
        {"index past the next", 1, 3, r3, 3, r3, 3, 1, ERR_NOT_FOUND},
        {"negative index", 1, -1, r3, 3, r3, 3, 1, ERR_NOT_FOUND},
        {"no replicas", 1, 2, r3, 0, r3, 0, -1, ERR_INVALID},
        {"duplicate replicas", 1, 2, dup, 2, dup, 1, 1, ERR_INVALID},
        {"negative replica", 1, 2, neg, 1, neg, 1, -3, ERR_INVALID},
        {"isr outside replicas", 1, 2, r3, 3, r2, 2, 4, ERR_INVALID},
        {"leader outside isr", 1, 2, r3, 3, r3, 2, 3, ERR_INVALID},
        {"too many replicas", 1, 2, big, 8, big, 8, 1, ERR_TOO_LARGE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kafka_partition_record p;
        kafka_partition_record_init(&p);
        p.topic_id = tid(cases[i].topic);
        p.partition_id = cases[i].index;
        p.replicas.items = (int32_t *)cases[i].replicas;
        p.replicas.count = cases[i].nr;
        p.isr.items = (int32_t *)cases[i].isr;
        p.isr.count = cases[i].ni;
        p.leader = cases[i].leader;
        p.leader_epoch = 0;
        p.partition_epoch = 0;
        print_message("case %s\n", cases[i].what);
        assert_refused_unchanged(&img, METAREC_PARTITION, &p, cases[i].want);
    }

    /* Topic records: a taken name, a taken id, a colliding name, reserved ids, bad names. */
    struct {
        const char *name;
        struct proto_uuid id;
        int want;
    } topics[] = {
        {"orders", tid(2), ERR_INVALID},  {"other", tid(1), ERR_INVALID},
        {"ord_ers", tid(3), ERR_INVALID}, {"x", {{0}}, ERR_INVALID},
        {"x", {{[15] = 1}}, ERR_INVALID}, {"bad name", tid(4), ERR_INVALID},
        {"", tid(5), ERR_INVALID},
    };
    assert_int_equal(put_topic(&img, "ord.ers", 6), 0);
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        struct kafka_topic_record tr;
        kafka_topic_record_init(&tr);
        tr.name = proto_str_make(topics[i].name);
        tr.topic_id = topics[i].id;
        assert_refused_unchanged(&img, METAREC_TOPIC, &tr, topics[i].want);
    }

    /* RemoveTopicRecord drops the topic and its configs; an unknown id is refused. */
    struct kafka_config_record c;
    kafka_config_record_init(&c);
    c.resource_type = META_RESOURCE_TOPIC;
    c.resource_name = proto_str_make("orders");
    c.name = proto_str_make("retention.ms");
    c.value = proto_str_make("1000");
    assert_int_equal(apply_body(&img, METAREC_CONFIG, &c), 0);
    assert_string_equal(meta_topic_config_get(t, "retention.ms"), "1000");
    struct kafka_remove_topic_record rm;
    kafka_remove_topic_record_init(&rm);
    rm.topic_id = tid(7);
    assert_refused_unchanged(&img, METAREC_REMOVE_TOPIC, &rm, ERR_NOT_FOUND);
    rm.topic_id = tid(1);
    assert_int_equal(apply_body(&img, METAREC_REMOVE_TOPIC, &rm), 0);
    assert_null(meta_topic_find(&img, "orders", 6));
    /* Its configs went with it: a config for it now names an unknown topic. */
    assert_refused_unchanged(&img, METAREC_CONFIG, &c, ERR_NOT_FOUND);
    /* A new topic of the same name starts without them. */
    assert_int_equal(put_topic(&img, "orders", 8), 0);
    assert_null(meta_topic_config_get(meta_topic_find(&img, "orders", 6), "retention.ms"));
    meta_image_deinit(&img);
}

/* PartitionChangeRecord with Kafka's optional fields (PartitionRegistration.merge). */
static void test_partition_change(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    const int32_t r3[] = {1, 2, 3}, i12[] = {1, 2}, i2[] = {2}, r45[] = {4, 5};
    assert_int_equal(put_topic(&img, "t", 1), 0);
    assert_int_equal(put_partition(&img, 1, 0, r3, 3, r3, 3, 1), 0);
    const struct meta_partition *p = &meta_topic_find(&img, "t", 1)->partitions[0];

    struct {
        const char *what;
        int32_t leader;
        const int32_t *isr; /* NULL: unchanged */
        size_t ni;
        const int32_t *replicas;
        size_t nr;
        int want;
        int32_t leader_after, leader_epoch_after, partition_epoch_after;
        uint8_t isr_after, replicas_after;
    } cases[] = {
        {"isr only: leader and its epoch kept", META_NO_LEADER_CHANGE, i12, 2, NULL, 0, 0, 1, 0, 1,
         2, 3},
        {"new leader: epoch bumped", 2, NULL, 0, NULL, 0, 0, 2, 1, 2, 2, 3},
        {"same leader named again: epoch bumped", 2, NULL, 0, NULL, 0, 0, 2, 2, 3, 2, 3},
        {"no leader", META_NO_LEADER, i2, 1, NULL, 0, 0, -1, 3, 4, 1, 3},
        {"leader outside the isr", 1, NULL, 0, NULL, 0, ERR_INVALID, -1, 3, 4, 1, 3},
        {"leader below -2", -3, NULL, 0, NULL, 0, ERR_INVALID, -1, 3, 4, 1, 3},
        {"isr outside new replicas", META_NO_LEADER_CHANGE, NULL, 0, r45, 2, ERR_INVALID, -1, 3, 4,
         1, 3},
        {"back to a leader", 2, NULL, 0, NULL, 0, 0, 2, 4, 5, 1, 3},
        {"nothing set: only the partition epoch", META_NO_LEADER_CHANGE, NULL, 0, NULL, 0, 0, 2, 4,
         6, 1, 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kafka_partition_change_record c;
        kafka_partition_change_record_init(&c);
        c.topic_id = tid(1);
        c.partition_id = 0;
        c.leader = cases[i].leader;
        c.isr.items = (int32_t *)cases[i].isr;
        c.isr.count = cases[i].ni;
        c.replicas.items = (int32_t *)cases[i].replicas;
        c.replicas.count = cases[i].nr;
        print_message("case %s\n", cases[i].what);
        if (cases[i].want != 0)
            assert_refused_unchanged(&img, METAREC_PARTITION_CHANGE, &c, cases[i].want);
        else
            assert_int_equal(apply_body(&img, METAREC_PARTITION_CHANGE, &c), 0);
        assert_int_equal(p->leader, cases[i].leader_after);
        assert_int_equal(p->leader_epoch, cases[i].leader_epoch_after);
        assert_int_equal(p->partition_epoch, cases[i].partition_epoch_after);
        assert_int_equal(p->isr_count, cases[i].isr_after);
        assert_int_equal(p->replica_count, cases[i].replicas_after);
    }
    /* Unknown topic, partition past the end, reassignment fields. */
    struct kafka_partition_change_record c;
    kafka_partition_change_record_init(&c);
    c.topic_id = tid(2);
    c.partition_id = 0;
    assert_refused_unchanged(&img, METAREC_PARTITION_CHANGE, &c, ERR_NOT_FOUND);
    c.topic_id = tid(1);
    c.partition_id = 1;
    assert_refused_unchanged(&img, METAREC_PARTITION_CHANGE, &c, ERR_NOT_FOUND);
    c.partition_id = 0;
    c.adding_replicas.items = (int32_t *)r45;
    c.adding_replicas.count = 1;
    assert_refused_unchanged(&img, METAREC_PARTITION_CHANGE, &c, ERR_UNSUPPORTED);
    /* New replicas on partition 0 change the topic's replication factor. */
    kafka_partition_change_record_init(&c);
    c.topic_id = tid(1);
    c.partition_id = 0;
    c.replicas.items = (int32_t *)i2;
    c.replicas.count = 1;
    assert_int_equal(apply_body(&img, METAREC_PARTITION_CHANGE, &c), 0);
    assert_int_equal(meta_topic_find(&img, "t", 1)->replication_factor, 1);
    meta_image_deinit(&img);
}

static void test_brokers(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    assert_int_equal(put_broker(&img, 2, 10, "r1"), 0);
    assert_int_equal(put_broker(&img, 1, 11, NULL), 0);
    assert_int_equal(img.broker_count, 2);
    const struct meta_broker *b = meta_broker_find(&img, 2);
    assert_non_null(b);
    assert_true(b->fenced);
    assert_string_equal(b->rack, "r1");
    assert_int_equal(b->endpoints[0].port, 9094);
    assert_null(meta_broker_find(&img, 1)->rack);

    struct kafka_unfence_broker_record u = {.id = 2, .epoch = 9};
    assert_refused_unchanged(&img, METAREC_UNFENCE_BROKER, &u, ERR_INVALID); /* stale epoch */
    u.id = 3;
    assert_refused_unchanged(&img, METAREC_UNFENCE_BROKER, &u, ERR_NOT_FOUND);
    u = (struct kafka_unfence_broker_record){.id = 2, .epoch = 10};
    assert_int_equal(apply_body(&img, METAREC_UNFENCE_BROKER, &u), 0);
    assert_false(meta_broker_find(&img, 2)->fenced);
    struct kafka_fence_broker_record f = {.id = 2, .epoch = 10};
    assert_int_equal(apply_body(&img, METAREC_FENCE_BROKER, &f), 0);
    assert_true(meta_broker_find(&img, 2)->fenced);

    struct kafka_broker_registration_change_record c;
    kafka_broker_registration_change_record_init(&c);
    c.broker_id = 2;
    c.broker_epoch = 10;
    c.fenced = -1;
    assert_int_equal(apply_body(&img, METAREC_BROKER_REGISTRATION_CHANGE, &c), 0);
    assert_false(meta_broker_find(&img, 2)->fenced);
    c.fenced = 0;
    c.in_controlled_shutdown = 1;
    assert_int_equal(apply_body(&img, METAREC_BROKER_REGISTRATION_CHANGE, &c), 0);
    assert_false(meta_broker_find(&img, 2)->fenced);
    assert_true(meta_broker_find(&img, 2)->in_controlled_shutdown);
    c.fenced = 2;
    assert_refused_unchanged(&img, METAREC_BROKER_REGISTRATION_CHANGE, &c, ERR_INVALID);

    /* A new registration replaces the old one whole (a restart: new epoch, fenced again). */
    assert_int_equal(put_broker(&img, 2, 20, NULL), 0);
    b = meta_broker_find(&img, 2);
    assert_int_equal(b->epoch, 20);
    assert_true(b->fenced);
    assert_false(b->in_controlled_shutdown);
    assert_null(b->rack);

    struct kafka_unregister_broker_record un = {.broker_id = 2, .broker_epoch = 10};
    assert_refused_unchanged(&img, METAREC_UNREGISTER_BROKER, &un, ERR_INVALID);
    un.broker_epoch = 20;
    assert_int_equal(apply_body(&img, METAREC_UNREGISTER_BROKER, &un), 0);
    assert_null(meta_broker_find(&img, 2));
    assert_int_equal(img.broker_count, 1);
    meta_image_deinit(&img);
}

static void test_configs_features_producer_ids(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    struct {
        int8_t type;
        const char *resource, *key, *value;
        int want;
    } cases[] = {
        {META_RESOURCE_BROKER, "", "log.retention.ms", "5", 0},
        {META_RESOURCE_BROKER, "3", "log.retention.ms", "6", 0},
        {META_RESOURCE_BROKER, "03", "x", "1", ERR_INVALID},
        {META_RESOURCE_BROKER, "-1", "x", "1", ERR_INVALID},
        {META_RESOURCE_BROKER, "99999999999", "x", "1", ERR_INVALID},
        {META_RESOURCE_BROKER, "", "", "1", ERR_INVALID},
        {META_RESOURCE_TOPIC, "nope", "x", "1", ERR_NOT_FOUND},
        {8 /* BROKER_LOGGER */, "1", "x", "1", ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kafka_config_record c;
        kafka_config_record_init(&c);
        c.resource_type = cases[i].type;
        c.resource_name = proto_str_make(cases[i].resource);
        c.name = proto_str_make(cases[i].key);
        c.value = proto_str_make(cases[i].value);
        if (cases[i].want != 0)
            assert_refused_unchanged(&img, METAREC_CONFIG, &c, cases[i].want);
        else
            assert_int_equal(apply_body(&img, METAREC_CONFIG, &c), 0);
    }
    assert_string_equal(meta_broker_config_get(&img, "3", "log.retention.ms"), "6");
    struct kafka_config_record del;
    kafka_config_record_init(&del);
    del.resource_type = META_RESOURCE_BROKER;
    del.resource_name = proto_str_make("3");
    del.name = proto_str_make("log.retention.ms");
    del.value = proto_str_make(NULL);
    assert_int_equal(apply_body(&img, METAREC_CONFIG, &del), 0);
    assert_null(meta_broker_config_get(&img, "3", "log.retention.ms"));

    struct kafka_feature_level_record f;
    kafka_feature_level_record_init(&f);
    f.name = proto_str_make("metadata.version");
    f.feature_level = 7;
    assert_int_equal(apply_body(&img, METAREC_FEATURE_LEVEL, &f), 0);
    assert_int_equal(meta_feature_level(&img, "metadata.version"), 7);
    f.feature_level = 0;
    assert_int_equal(apply_body(&img, METAREC_FEATURE_LEVEL, &f), 0);
    assert_int_equal(meta_feature_level(&img, "metadata.version"), 0);
    assert_int_equal(img.feature_count, 0);

    struct kafka_producer_ids_record p;
    kafka_producer_ids_record_init(&p);
    p.next_producer_id = 1000;
    assert_int_equal(apply_body(&img, METAREC_PRODUCER_IDS, &p), 0);
    assert_int_equal(img.next_producer_id, 1000);
    assert_refused_unchanged(&img, METAREC_PRODUCER_IDS, &p, ERR_INVALID); /* not upwards */
    struct kafka_no_op_record n;
    kafka_no_op_record_init(&n);
    assert_int_equal(apply_body(&img, METAREC_NO_OP, &n), 0);
    meta_image_deinit(&img);
}

/* Records through a stored batch: applied in order, a refused one skipped and reported with
 * its offset, a control batch skipped, a damaged batch refused whole. */
static void test_apply_batch(void **state)
{
    (void)state;
    struct meta_records r;
    meta_records_init(&r);
    struct kafka_topic_record t;
    kafka_topic_record_init(&t);
    t.name = proto_str_make("a");
    t.topic_id = tid(1);
    meta_records_add(&r, METAREC_TOPIC, &t);
    struct kafka_partition_record p;
    kafka_partition_record_init(&p);
    const int32_t one[] = {1};
    p.topic_id = tid(1);
    p.partition_id = 1; /* refused: partition 0 comes first */
    p.replicas.items = (int32_t *)one;
    p.replicas.count = 1;
    p.isr.items = (int32_t *)one;
    p.isr.count = 1;
    p.leader = 1;
    p.leader_epoch = 0;
    p.partition_epoch = 0;
    meta_records_add(&r, METAREC_PARTITION, &p);
    p.partition_id = 0;
    meta_records_add(&r, METAREC_PARTITION, &p);
    struct buf b;
    buf_init(&b);
    assert_int_equal(meta_records_batch(&r, 0, r.count, 1234, &b), 0);
    batch_stamp(b.data, 40, 3);

    struct meta_image img;
    meta_image_init(&img);
    struct meta_apply_result res = {0};
    assert_int_equal(meta_apply_batch(&img, buf_slice(&b), &res), ERR_NOT_FOUND);
    assert_int_equal(res.applied, 2);
    assert_int_equal(res.refused, 1);
    assert_int_equal(res.first_error, ERR_NOT_FOUND);
    assert_int_equal(res.first_error_offset, 41);
    assert_int_equal(meta_topic_find(&img, "a", 1)->partition_count, 1);

    /* A control batch holds no metadata. */
    struct buf c;
    buf_init(&c);
    struct batch_record cr = {.key = slice_make("\0\0\0\0", 4), .value = slice_make("x", 1)};
    struct batch_build_opts co = {.attributes = BATCH_ATTR_CONTROL, .producer_id = -1};
    assert_int_equal(batch_build(&c, &co, &cr, 1), 0);
    uint64_t version = img.version;
    assert_int_equal(meta_apply_batch(&img, buf_slice(&c), NULL), 0);
    assert_int_equal(img.version, version);
    /* A damaged batch: nothing applied. */
    b.data[b.len - 1] ^= 1;
    assert_int_equal(meta_apply_batch(&img, buf_slice(&b), NULL), ERR_CORRUPT);
    assert_int_equal(img.version, version);
    buf_deinit(&c);
    buf_deinit(&b);
    meta_records_deinit(&r);
    meta_image_deinit(&img);
}

/* ---- random sequences --------------------------------------------------------------------- */

static const char *const names[] = {"a", "b", "c.d", "c_d", "e", "f-1"};
static const char *const keys[] = {"retention.ms", "cleanup.policy", "segment.bytes"};

static void random_ids(struct rng *g, int32_t *out, size_t *n, size_t max)
{
    *n = (size_t)rng_below(g, max + 1);
    for (size_t i = 0; i < *n; i++)
        out[i] = (int32_t)rng_below(g, 6);
}

/* One random record, often valid, sometimes not. */
static void random_record(struct rng *g, struct meta_records *out)
{
    int32_t reps[8], isr[8];
    size_t nr, ni;
    struct proto_uuid id = tid((uint8_t)(1 + rng_below(g, 8)));
    switch (rng_below(g, 10)) {
    case 0: {
        struct kafka_topic_record t;
        kafka_topic_record_init(&t);
        t.name = proto_str_make(names[rng_below(g, 6)]);
        t.topic_id = id;
        meta_records_add(out, METAREC_TOPIC, &t);
        break;
    }
    case 1:
    case 2: {
        struct kafka_partition_record p;
        kafka_partition_record_init(&p);
        random_ids(g, reps, &nr, 4);
        random_ids(g, isr, &ni, nr);
        memcpy(isr, reps, ni * sizeof(*isr));
        p.topic_id = id;
        p.partition_id = (int32_t)rng_below(g, 4);
        p.replicas.items = reps;
        p.replicas.count = nr;
        p.isr.items = isr;
        p.isr.count = ni;
        p.leader = ni > 0 ? isr[rng_below(g, ni)] : -1;
        p.leader_epoch = (int32_t)rng_below(g, 5);
        p.partition_epoch = (int32_t)rng_below(g, 5);
        meta_records_add(out, METAREC_PARTITION, &p);
        break;
    }
    case 3: {
        struct kafka_partition_change_record c;
        kafka_partition_change_record_init(&c);
        c.topic_id = id;
        c.partition_id = (int32_t)rng_below(g, 3);
        if (rng_chance(g, 1, 2)) {
            random_ids(g, reps, &nr, 4);
            c.replicas.items = reps;
            c.replicas.count = nr;
        }
        if (rng_chance(g, 1, 2)) {
            random_ids(g, isr, &ni, 3);
            c.isr.items = isr;
            c.isr.count = ni;
        }
        c.leader = (int32_t)rng_below(g, 8) - 2;
        meta_records_add(out, METAREC_PARTITION_CHANGE, &c);
        break;
    }
    case 4: {
        struct kafka_remove_topic_record r;
        kafka_remove_topic_record_init(&r);
        r.topic_id = id;
        meta_records_add(out, METAREC_REMOVE_TOPIC, &r);
        break;
    }
    case 5: {
        struct kafka_config_record c;
        kafka_config_record_init(&c);
        bool topic = rng_chance(g, 1, 2);
        char resource[4];
        snprintf(resource, sizeof(resource), "%d", (int)rng_below(g, 3));
        c.resource_type = topic ? META_RESOURCE_TOPIC : META_RESOURCE_BROKER;
        c.resource_name = proto_str_make(topic ? names[rng_below(g, 6)] : resource);
        c.name = proto_str_make(keys[rng_below(g, 3)]);
        c.value = proto_str_make(rng_chance(g, 1, 3) ? NULL : rng_chance(g, 1, 2) ? "1" : "2");
        meta_records_add(out, METAREC_CONFIG, &c);
        break;
    }
    case 6: {
        struct kafka_register_broker_record r;
        kafka_register_broker_record_init(&r);
        struct kafka_register_broker_record_broker_endpoint e[2] = {
            {.name = proto_str_make("PLAINTEXT"), .host = proto_str_make("h1"), .port = 1},
            {.name = proto_str_make("SSL"),
             .host = proto_str_make("h2"),
             .port = 2,
             .security_protocol = 1}};
        r.broker_id = (int32_t)rng_below(g, 5);
        r.broker_epoch = (int64_t)rng_below(g, 3);
        r.incarnation_id = tid((uint8_t)rng_below(g, 3));
        r.end_points.items = e;
        r.end_points.count = (size_t)rng_below(g, 3);
        r.rack = proto_str_make(rng_chance(g, 1, 2) ? NULL : "r1");
        r.fenced = rng_chance(g, 1, 2);
        meta_records_add(out, METAREC_REGISTER_BROKER, &r);
        break;
    }
    case 7: {
        struct kafka_broker_registration_change_record c;
        kafka_broker_registration_change_record_init(&c);
        c.broker_id = (int32_t)rng_below(g, 5);
        c.broker_epoch = (int64_t)rng_below(g, 3);
        c.fenced = (int8_t)((int)rng_below(g, 3) - 1);
        c.in_controlled_shutdown = (int8_t)rng_below(g, 2);
        meta_records_add(out, METAREC_BROKER_REGISTRATION_CHANGE, &c);
        break;
    }
    case 8: {
        struct kafka_feature_level_record f;
        kafka_feature_level_record_init(&f);
        f.name = proto_str_make(rng_chance(g, 1, 2) ? "metadata.version" : "kraft.version");
        f.feature_level = (int16_t)rng_below(g, 3);
        meta_records_add(out, METAREC_FEATURE_LEVEL, &f);
        break;
    }
    default: {
        struct kafka_producer_ids_record p;
        kafka_producer_ids_record_init(&p);
        p.next_producer_id = (int64_t)rng_below(g, 20) * 1000;
        meta_records_add(out, METAREC_PRODUCER_IDS, &p);
        break;
    }
    }
}

/* Applies records [first, last) through batches of random sizes; returns records refused. */
static uint32_t apply_batches(struct meta_image *img, const struct meta_records *r, uint32_t first,
                              uint32_t last, struct rng *g)
{
    struct meta_apply_result res = {0};
    struct buf b;
    buf_init(&b);
    while (first < last) {
        uint32_t n = 1 + (uint32_t)rng_below(g, MIN(last - first, 20u));
        buf_reset(&b);
        assert_int_equal(meta_records_batch(r, first, n, 0, &b), 0);
        (void)meta_apply_batch(img, buf_slice(&b), &res);
        first += n;
    }
    buf_deinit(&b);
    return res.refused;
}

static uint64_t base_seed(void)
{
    const char *s = getenv("META_TEST_SEED");
    return s != NULL ? strtoull(s, NULL, 0) : 0x6d657461u;
}

/* Random image -> snapshot -> new image: equal; and snapshot + the tail of the log equals the
 * image that applied the whole log. */
static void test_random_snapshot(void **state)
{
    (void)state;
    uint64_t seed0 = base_seed();
    uint64_t refused = 0, applied = 0;
    for (uint64_t s = 0; s < 200; s++) {
        uint64_t seed = seed0 + s;
        struct rng g;
        rng_seed(&g, seed);
        struct meta_records log;
        meta_records_init(&log);
        uint32_t n = 1 + (uint32_t)rng_below(&g, 400);
        for (uint32_t i = 0; i < n; i++)
            random_record(&g, &log);
        uint32_t cut = (uint32_t)rng_below(&g, n + 1);

        struct meta_image live, early, restored;
        meta_image_init(&live);
        meta_image_init(&early);
        meta_image_init(&restored);
        uint32_t bad = apply_batches(&live, &log, 0, n, &g);
        refused += bad;
        applied += n - bad;
        apply_batches(&early, &log, 0, cut, &g);

        struct meta_records snap;
        meta_records_init(&snap);
        meta_snapshot(&early, &snap);
        assert_int_equal(apply_batches(&restored, &snap, 0, snap.count, &g), 0);
        if (!meta_image_equal(&early, &restored)) {
            print_error("seed 0x%llx: snapshot differs\n", (unsigned long long)seed);
            fail();
        }
        apply_batches(&restored, &log, cut, n, &g);
        if (!meta_image_equal(&live, &restored)) {
            print_error("seed 0x%llx: snapshot + tail differs\n", (unsigned long long)seed);
            fail();
        }
        meta_records_deinit(&snap);
        meta_image_deinit(&live);
        meta_image_deinit(&early);
        meta_image_deinit(&restored);
        meta_records_deinit(&log);
    }
    /* The generator exercises both paths. */
    assert_true(applied > 1000 && refused > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_and_partitions),
        cmocka_unit_test(test_partition_change),
        cmocka_unit_test(test_brokers),
        cmocka_unit_test(test_configs_features_producer_ids),
        cmocka_unit_test(test_apply_batch),
        cmocka_unit_test(test_random_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
