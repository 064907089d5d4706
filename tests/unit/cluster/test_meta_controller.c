/*
 * The controller's record builders (cluster/meta_controller.h): placement balance (3 brokers,
 * 300 partitions: each leads 100 +- 1) and rack spread, Kafka's errors table by table, fencing
 * and unfencing with their leader moves, registration, and a seeded random test: random request
 * sequences -> records -> applied to a live image, and to a second image made from a snapshot
 * taken midway plus the records after it: equal, and no built record is ever refused.
 *
 * Seed: META_TEST_SEED overrides the base seed; a failing seed is printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/compiler.h"
#include "base/error.h"
#include "base/rand.h"
#include "broker/kafka_errors.h"
#include "cluster/meta_controller.h"
#include "log/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The controller's codes are Kafka's (this test may include both modules). */
_Static_assert(META_CTL_TOPIC_ALREADY_EXISTS == (int)KAFKA_TOPIC_ALREADY_EXISTS, "code");
_Static_assert(META_CTL_INVALID_REPLICATION_FACTOR == (int)KAFKA_INVALID_REPLICATION_FACTOR,
               "code");
_Static_assert(META_CTL_INVALID_PARTITIONS == (int)KAFKA_INVALID_PARTITIONS, "code");
_Static_assert(META_CTL_INVALID_TOPIC_EXCEPTION == (int)KAFKA_INVALID_TOPIC_EXCEPTION, "code");
_Static_assert(META_CTL_UNKNOWN_TOPIC_OR_PARTITION == (int)KAFKA_UNKNOWN_TOPIC_OR_PARTITION,
               "code");
_Static_assert(META_CTL_INVALID_CONFIG == (int)KAFKA_INVALID_CONFIG, "code");
_Static_assert(META_CTL_INVALID_REQUEST == (int)KAFKA_INVALID_REQUEST, "code");
_Static_assert(META_CTL_POLICY_VIOLATION == (int)KAFKA_POLICY_VIOLATION, "code");

/* Applies the records as one stored batch; every one must apply. */
static void commit(struct meta_image *img, struct meta_records *r)
{
    if (r->count == 0)
        return;
    struct buf b;
    buf_init(&b);
    assert_int_equal(meta_records_batch(r, 0, r->count, 0, &b), 0);
    struct meta_apply_result res = {0};
    int rc = meta_apply_batch(img, buf_slice(&b), &res);
    if (rc != 0)
        print_error("refused: %s at record %lld\n", err_str(rc), (long long)res.first_error_offset);
    assert_int_equal(rc, 0);
    assert_int_equal(res.applied, r->count);
    buf_deinit(&b);
    meta_records_reset(r);
}

static struct meta_uuid uuid_n(uint32_t n)
{
    struct meta_uuid u;
    memset(&u, 0, sizeof(u));
    u.b[0] = 0x77;
    memcpy(u.b + 8, &n, sizeof(n));
    return u;
}

/* Registers brokers 1..n (racks[i] for broker i + 1, or none) and unfences them. */
/* Registers broker i (rack: NULL for none) and unfences it. */
static void add_broker(struct meta_image *img, int i, const char *rack)
{
    struct meta_records r;
    meta_records_init(&r);
    struct meta_ctl_result res;
    struct meta_endpoint e = {
        .name = "PLAINTEXT", .host = "127.0.0.1", .port = (uint16_t)(9091 + i)};
    struct meta_ctl_register_broker req = {.id = i,
                                           .incarnation_id = uuid_n(1000 + (uint32_t)i),
                                           .epoch = 100 + i,
                                           .endpoints = &e,
                                           .endpoint_count = 1,
                                           .rack = rack};
    int64_t epoch = 0;
    assert_int_equal(meta_ctl_register_broker(img, &req, &r, &res, &epoch), 0);
    commit(img, &r);
    assert_true(meta_broker_find(img, i)->fenced);
    assert_int_equal(meta_ctl_unfence_broker(img, i, epoch, &r, &res), 0);
    commit(img, &r);
    meta_records_deinit(&r);
}

static void add_brokers(struct meta_image *img, int n, const char *const *racks)
{
    for (int i = 1; i <= n; i++)
        add_broker(img, i, racks != NULL ? racks[i - 1] : NULL);
}

static int16_t create(struct meta_image *img, const char *name, uint32_t id, int32_t partitions,
                      int16_t rf, struct meta_ctl_result *res)
{
    struct meta_records r;
    meta_records_init(&r);
    struct meta_ctl_create_topic req = {
        .name = name, .id = uuid_n(id), .partitions = partitions, .replication_factor = rf};
    int16_t e = meta_ctl_create_topic(img, &req, &r, res);
    if (e == 0)
        commit(img, &r);
    else
        assert_int_equal(r.count, 0);
    meta_records_deinit(&r);
    return e;
}

static void count_load(const struct meta_image *img, uint32_t *leaders, uint32_t *replicas)
{
    for (uint32_t t = 0; t < img->topic_count; t++)
        for (uint32_t p = 0; p < img->topics[t]->partition_count; p++) {
            const struct meta_partition *mp = &img->topics[t]->partitions[p];
            leaders[mp->replicas[0]]++;
            for (unsigned i = 0; i < mp->replica_count; i++)
                replicas[mp->replicas[i]]++;
            assert_int_equal(mp->leader, mp->replicas[0]);
        }
}

static void test_balance(void **state)
{
    (void)state;
    for (int16_t rf = 1; rf <= 3; rf++) {
        struct meta_image img;
        meta_image_init(&img);
        add_brokers(&img, 3, NULL);
        struct meta_ctl_result res;
        assert_int_equal(create(&img, "t", 1, 300, rf, &res), 0);
        uint32_t leaders[4] = {0}, replicas[4] = {0};
        count_load(&img, leaders, replicas);
        for (int b = 1; b <= 3; b++) {
            assert_in_range(leaders[b], 99, 101);
            assert_int_equal(replicas[b], 100 * (uint32_t)rf);
        }
        /* Topic after topic of one partition: still even across topics. */
        for (uint32_t i = 0; i < 30; i++) {
            char name[16];
            snprintf(name, sizeof(name), "s%u", i);
            assert_int_equal(create(&img, name, 10 + i, 1, rf, &res), 0);
        }
        /* Growing a topic spreads its new partitions likewise. */
        struct meta_records r;
        meta_records_init(&r);
        assert_int_equal(meta_ctl_create_partitions(&img, "t", 330, &r, &res), 0);
        commit(&img, &r);
        meta_records_deinit(&r);
        memset(leaders, 0, sizeof(leaders));
        memset(replicas, 0, sizeof(replicas));
        count_load(&img, leaders, replicas);
        for (int b = 1; b <= 3; b++) {
            assert_in_range(leaders[b], 119, 121);
            assert_in_range(replicas[b], 120u * (uint32_t)rf - 1, 120u * (uint32_t)rf + 1);
        }
        meta_image_deinit(&img);
    }
}

/* A new topic's preferred leaders spread over the brokers even when the cluster's are uneven:
 * broker 3 joined after 30 partitions were placed on brokers 1 and 2. Catches: every partition
 * of the new topic led by broker 3 (the fewest leaderships of the cluster), one broker taking
 * all of that topic's traffic. The cluster still evens out over the next topics. */
static void test_topic_spreads_over_an_uneven_cluster(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    add_brokers(&img, 2, NULL);
    struct meta_ctl_result res;
    assert_int_equal(create(&img, "old", 1, 30, 2, &res), 0);
    add_broker(&img, 3, NULL);
    assert_int_equal(create(&img, "new", 2, 3, 3, &res), 0);
    const struct meta_topic *t = meta_topic_find(&img, "new", 3);
    assert_non_null(t);
    uint32_t led[4] = {0};
    for (uint32_t p = 0; p < t->partition_count; p++)
        led[t->partitions[p].replicas[0]]++;
    for (int b = 1; b <= 3; b++)
        assert_int_equal(led[b], 1);
    /* Growing it by three more keeps one more each. */
    struct meta_records r;
    meta_records_init(&r);
    assert_int_equal(meta_ctl_create_partitions(&img, "new", 6, &r, &res), 0);
    commit(&img, &r);
    meta_records_deinit(&r);
    t = meta_topic_find(&img, "new", 3);
    memset(led, 0, sizeof(led));
    for (uint32_t p = 0; p < t->partition_count; p++)
        led[t->partitions[p].replicas[0]]++;
    for (int b = 1; b <= 3; b++)
        assert_int_equal(led[b], 2);
    /* Topics of one partition each go to broker 3 until the cluster is even. */
    for (uint32_t i = 0; i < 30; i++) {
        char name[16];
        snprintf(name, sizeof(name), "s%u", i);
        assert_int_equal(create(&img, name, 10 + i, 1, 1, &res), 0);
    }
    uint32_t leaders[4] = {0}, replicas[4] = {0};
    count_load(&img, leaders, replicas);
    for (int b = 1; b <= 3; b++)
        assert_in_range(leaders[b], 22, 23);
    meta_image_deinit(&img);
}

static void test_racks(void **state)
{
    (void)state;
    static const char *const six[] = {"a", "a", "b", "b", "c", "c"};
    struct meta_image img;
    meta_image_init(&img);
    add_brokers(&img, 6, six);
    struct meta_ctl_result res;
    assert_int_equal(create(&img, "t", 1, 60, 3, &res), 0);
    const struct meta_topic *t = meta_topic_find(&img, "t", 1);
    uint32_t leaders[7] = {0}, replicas[7] = {0};
    count_load(&img, leaders, replicas);
    for (uint32_t p = 0; p < t->partition_count; p++) {
        const int32_t *r = t->partitions[p].replicas;
        assert_true(six[r[0] - 1][0] != six[r[1] - 1][0]);
        assert_true(six[r[0] - 1][0] != six[r[2] - 1][0]);
        assert_true(six[r[1] - 1][0] != six[r[2] - 1][0]);
    }
    for (int b = 1; b <= 6; b++) {
        assert_int_equal(leaders[b], 10);
        assert_int_equal(replicas[b], 30);
    }
    meta_image_deinit(&img);

    /* Uneven racks: a:{1,2}, b:{3}. Every partition of factor 2 uses both racks, so broker 3
     * holds them all; factor 3 must reuse a rack. */
    static const char *const three[] = {"a", "a", "b"};
    meta_image_init(&img);
    add_brokers(&img, 3, three);
    assert_int_equal(create(&img, "u", 1, 12, 2, &res), 0);
    t = meta_topic_find(&img, "u", 1);
    for (uint32_t p = 0; p < t->partition_count; p++) {
        const struct meta_partition *mp = &t->partitions[p];
        assert_true(mp->replicas[0] == 3 || mp->replicas[1] == 3);
    }
    assert_int_equal(create(&img, "v", 2, 3, 3, &res), 0);
    meta_image_deinit(&img);
}

static void test_errors(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    add_brokers(&img, 3, NULL);
    struct meta_records r;
    meta_records_init(&r);
    struct meta_ctl_result res;
    assert_int_equal(meta_ctl_fence_broker(&img, 3, &r, &res), 0);
    commit(&img, &r);
    assert_int_equal(create(&img, "a.b", 1, 1, 1, &res), 0);

    struct {
        const char *name;
        uint32_t id;
        int32_t partitions;
        int16_t rf;
        int16_t want;
    } cases[] = {
        {"a.b", 2, 1, 1, KAFKA_TOPIC_ALREADY_EXISTS},
        {"a_b", 2, 1, 1, KAFKA_INVALID_TOPIC_EXCEPTION},
        {"bad name", 2, 1, 1, KAFKA_INVALID_TOPIC_EXCEPTION},
        {"..", 2, 1, 1, KAFKA_INVALID_TOPIC_EXCEPTION},
        {"x", 2, 0, 1, KAFKA_INVALID_PARTITIONS},
        {"x", 2, -1, 1, KAFKA_INVALID_PARTITIONS},
        {"x", 2, 100001, 1, KAFKA_INVALID_PARTITIONS},
        {"x", 2, 1, 0, KAFKA_INVALID_REPLICATION_FACTOR},
        {"x", 2, 1, 3, KAFKA_INVALID_REPLICATION_FACTOR}, /* broker 3 is fenced */
        {"x", 1, 1, 1, KAFKA_INVALID_REQUEST},            /* id in use */
        {"x", 0, 1, 2, KAFKA_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %s %d %d\n", cases[i].name, cases[i].partitions, cases[i].rf);
        int16_t e =
            create(&img, cases[i].name, cases[i].id, cases[i].partitions, cases[i].rf, &res);
        assert_int_equal(e, cases[i].want);
        assert_int_equal(res.error, e);
        assert_true(e == 0 ? res.message[0] == '\0' : res.message[0] != '\0');
    }
    /* The message names the brokers there are (Kafka's wording). */
    assert_int_equal(create(&img, "y", 3, 1, 3, &res), KAFKA_INVALID_REPLICATION_FACTOR);
    assert_non_null(strstr(res.message, "only 2 broker(s)"));
    /* The fenced broker got nothing. */
    const struct meta_topic *x = meta_topic_find(&img, "x", 1);
    assert_int_equal(x->partitions[0].replica_count, 2);
    assert_int_not_equal(x->partitions[0].replicas[0], 3);
    assert_int_not_equal(x->partitions[0].replicas[1], 3);

    assert_int_equal(meta_ctl_delete_topic(&img, "nope", &r, &res),
                     KAFKA_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(meta_ctl_create_partitions(&img, "nope", 3, &r, &res),
                     KAFKA_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(meta_ctl_create_partitions(&img, "x", 1, &r, &res), KAFKA_INVALID_PARTITIONS);
    assert_int_equal(meta_ctl_create_partitions(&img, "x", 0, &r, &res), KAFKA_INVALID_PARTITIONS);
    assert_int_equal(r.count, 0);

    /* Configs: unknown topic, bad broker name, duplicate key, bounds, no-op changes. */
    struct meta_ctl_config set[] = {{"retention.ms", "100"}, {"cleanup.policy", "compact"}};
    struct meta_ctl_config dup[] = {{"retention.ms", "1"}, {"retention.ms", "2"}};
    struct meta_ctl_config empty[] = {{"", "1"}};
    assert_int_equal(
        meta_ctl_alter_configs(&img, META_RESOURCE_TOPIC, "nope", set, 2, false, &r, &res),
        KAFKA_UNKNOWN_TOPIC_OR_PARTITION);
    assert_int_equal(
        meta_ctl_alter_configs(&img, META_RESOURCE_BROKER, "x1", set, 2, false, &r, &res),
        KAFKA_INVALID_REQUEST);
    assert_int_equal(meta_ctl_alter_configs(&img, 8, "1", set, 2, false, &r, &res),
                     KAFKA_INVALID_REQUEST);
    assert_int_equal(
        meta_ctl_alter_configs(&img, META_RESOURCE_TOPIC, "x", dup, 2, false, &r, &res),
        KAFKA_INVALID_REQUEST);
    assert_int_equal(
        meta_ctl_alter_configs(&img, META_RESOURCE_TOPIC, "x", empty, 1, false, &r, &res),
        KAFKA_INVALID_CONFIG);
    assert_int_equal(r.count, 0);
    assert_int_equal(
        meta_ctl_alter_configs(&img, META_RESOURCE_TOPIC, "x", set, 2, false, &r, &res), 0);
    assert_int_equal(r.count, 2);
    commit(&img, &r);
    assert_int_equal(
        meta_ctl_alter_configs(&img, META_RESOURCE_TOPIC, "x", set, 2, false, &r, &res), 0);
    assert_int_equal(r.count, 0); /* nothing changes */
    /* AlterConfigs replaces the set: cleanup.policy goes. */
    assert_int_equal(meta_ctl_alter_configs(&img, META_RESOURCE_TOPIC, "x", set, 1, true, &r, &res),
                     0);
    assert_int_equal(r.count, 1);
    commit(&img, &r);
    x = meta_topic_find(&img, "x", 1);
    assert_null(meta_topic_config_get(x, "cleanup.policy"));
    assert_string_equal(meta_topic_config_get(x, "retention.ms"), "100");
    struct meta_ctl_config del[] = {{"retention.ms", NULL}};
    assert_int_equal(
        meta_ctl_alter_configs(&img, META_RESOURCE_TOPIC, "x", del, 1, false, &r, &res), 0);
    commit(&img, &r);
    assert_int_equal(x->config_count, 0);
    assert_int_equal(
        meta_ctl_alter_configs(&img, META_RESOURCE_BROKER, "", set, 1, false, &r, &res), 0);
    commit(&img, &r);
    assert_string_equal(meta_broker_config_get(&img, "", "retention.ms"), "100");

    assert_int_equal(meta_ctl_delete_topic(&img, "x", &r, &res), 0);
    commit(&img, &r);
    assert_null(meta_topic_find(&img, "x", 1));
    meta_records_deinit(&r);
    meta_image_deinit(&img);
}

/* A controlled shutdown, its leaderships handed over, marks the broker in controlled shutdown
 * (BrokerRegistrationChangeRecord) and changes nothing else: the ISRs are the partition
 * leaders' to shrink, its partitions of one replica keep their leader until its session ends,
 * and placement passes it over. Its restart's registration clears the mark. Catches: a
 * stopping broker never marked (its replicas kept in every ISR until replica.lag.time.max.ms),
 * a shutdown writing a record per partition, new topics placed on a broker that is going, the
 * mark outliving its restart. */
static void test_shut_down_broker(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    add_brokers(&img, 3, NULL);
    struct meta_records r;
    meta_records_init(&r);
    struct meta_ctl_result res;
    assert_int_equal(create(&img, "one", 1, 3, 1, &res), 0);
    const struct meta_topic *one = meta_topic_find(&img, "one", 3);
    uint32_t p2 = one->partitions[0].leader == 2 ? 0 : one->partitions[1].leader == 2 ? 1 : 2;
    assert_int_equal(one->partitions[p2].leader, 2);

    assert_int_equal(meta_ctl_shut_down_broker(&img, 9, &r, &res),
                     META_CTL_BROKER_ID_NOT_REGISTERED);
    assert_int_equal(meta_ctl_shut_down_broker(&img, 2, &r, &res), 0);
    assert_int_equal(r.count, 1);
    commit(&img, &r);
    const struct meta_broker *b = meta_broker_find(&img, 2);
    assert_true(b->in_controlled_shutdown);
    assert_false(b->fenced);
    assert_false(meta_broker_find(&img, 1)->in_controlled_shutdown);
    assert_int_equal(one->partitions[p2].leader, 2);
    /* Asked again (its next heartbeat): nothing more. */
    assert_int_equal(meta_ctl_shut_down_broker(&img, 2, &r, &res), 0);
    assert_int_equal(r.count, 0);
    /* A new topic goes to the other two only. */
    assert_int_equal(create(&img, "two", 2, 4, 2, &res), 0);
    const struct meta_topic *two = meta_topic_find(&img, "two", 3);
    for (uint32_t p = 0; p < 4; p++)
        for (unsigned k = 0; k < two->partitions[p].replica_count; k++)
            assert_int_not_equal(two->partitions[p].replicas[k], 2);

    /* The restart registers a new incarnation: fenced until its heartbeat, not shutting down. */
    struct meta_endpoint e = {.name = "PLAINTEXT", .host = "h", .port = 1};
    struct meta_ctl_register_broker req = {.id = 2,
                                           .incarnation_id = uuid_n(2002),
                                           .epoch = 900,
                                           .endpoints = &e,
                                           .endpoint_count = 1};
    int64_t got = 0;
    assert_int_equal(meta_ctl_register_broker(&img, &req, &r, &res, &got), 0);
    commit(&img, &r);
    b = meta_broker_find(&img, 2);
    assert_true(b->fenced);
    assert_false(b->in_controlled_shutdown);
    meta_records_deinit(&r);
    meta_image_deinit(&img);
}

static void test_fence_unfence_register(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    add_brokers(&img, 3, NULL);
    struct meta_records r;
    meta_records_init(&r);
    struct meta_ctl_result res;
    assert_int_equal(create(&img, "one", 1, 3, 1, &res), 0);
    assert_int_equal(create(&img, "three", 2, 3, 3, &res), 0);
    const struct meta_topic *one = meta_topic_find(&img, "one", 3);
    const struct meta_topic *three = meta_topic_find(&img, "three", 5);
    uint32_t p1 = one->partitions[0].leader == 1 ? 0 : one->partitions[1].leader == 1 ? 1 : 2;
    assert_int_equal(one->partitions[p1].leader, 1);

    assert_int_equal(meta_ctl_fence_broker(&img, 9, &r, &res), META_CTL_BROKER_ID_NOT_REGISTERED);
    assert_int_equal(meta_ctl_fence_broker(&img, 1, &r, &res), 0);
    commit(&img, &r);
    assert_true(meta_broker_find(&img, 1)->fenced);
    /* Factor 1: the last ISR member stays, leaderless; the leader epoch moved. */
    assert_int_equal(one->partitions[p1].leader, META_NO_LEADER);
    assert_int_equal(one->partitions[p1].leader_epoch, 1);
    assert_int_equal(one->partitions[p1].isr_count, 1);
    /* Factor 3 (a Raft group each): the ISR is the group leader's to report, so it stays; a
     * partition broker 1 led is leaderless at the same epoch until its next leader reports
     * (the controller does not elect for a group: it would name a leader the group has not). */
    for (uint32_t p = 0; p < 3; p++) {
        const struct meta_partition *mp = &three->partitions[p];
        assert_int_equal(mp->isr_count, 3);
        assert_int_equal(mp->leader_epoch, 0);
        assert_int_not_equal(mp->leader, 1);
        if (mp->replicas[0] == 1)
            assert_int_equal(mp->leader, META_NO_LEADER);
        else
            assert_int_equal(mp->leader, mp->replicas[0]);
    }
    /* Fencing again changes nothing. */
    assert_int_equal(meta_ctl_fence_broker(&img, 1, &r, &res), 0);
    assert_int_equal(r.count, 0);

    int64_t epoch = meta_broker_find(&img, 1)->epoch;
    assert_int_equal(meta_ctl_unfence_broker(&img, 1, epoch - 1, &r, &res),
                     META_CTL_STALE_BROKER_EPOCH);
    assert_int_equal(meta_ctl_unfence_broker(&img, 1, epoch, &r, &res), 0);
    commit(&img, &r);
    assert_int_equal(one->partitions[p1].leader, 1);
    assert_int_equal(one->partitions[p1].leader_epoch, 2);

    /* Registration: a retry with the same incarnation adds nothing; another incarnation while
     * the old one is alive is refused; once its session is gone it registers, fenced. */
    struct meta_endpoint e = {.name = "PLAINTEXT", .host = "h", .port = 1};
    struct meta_ctl_register_broker req = {.id = 2,
                                           .incarnation_id = uuid_n(1002),
                                           .epoch = 500,
                                           .endpoints = &e,
                                           .endpoint_count = 1,
                                           .current_alive = true};
    int64_t got = 0;
    assert_int_equal(meta_ctl_register_broker(&img, &req, &r, &res, &got), 0);
    assert_int_equal(r.count, 0);
    assert_int_equal(got, 102);
    req.incarnation_id = uuid_n(2002);
    assert_int_equal(meta_ctl_register_broker(&img, &req, &r, &res, &got),
                     META_CTL_DUPLICATE_BROKER_REGISTRATION);
    req.current_alive = false;
    req.epoch = 50;
    assert_int_equal(meta_ctl_register_broker(&img, &req, &r, &res, &got), KAFKA_INVALID_REQUEST);
    req.epoch = 500;
    assert_int_equal(meta_ctl_register_broker(&img, &req, &r, &res, &got), 0);
    commit(&img, &r);
    assert_int_equal(got, 500);
    assert_true(meta_broker_find(&img, 2)->fenced);

    int64_t first = 0;
    assert_int_equal(meta_ctl_alloc_producer_ids(&img, 2, 102, &r, &res, &first),
                     META_CTL_STALE_BROKER_EPOCH);
    assert_int_equal(meta_ctl_alloc_producer_ids(&img, 2, 500, &r, &res, &first), 0);
    commit(&img, &r);
    assert_int_equal(first, 0);
    assert_int_equal(meta_ctl_alloc_producer_ids(&img, 2, 500, &r, &res, &first), 0);
    commit(&img, &r);
    assert_int_equal(first, META_PRODUCER_ID_BLOCK);
    meta_records_deinit(&r);
    meta_image_deinit(&img);
}

/* Leader and ISR news from a partition's leader: only what differs is recorded. */
static void test_partition_change(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    add_brokers(&img, 3, NULL);
    struct meta_ctl_result res;
    assert_int_equal(create(&img, "t", 1, 1, 3, &res), 0);
    const struct meta_partition *p = &meta_topic_find(&img, "t", 1)->partitions[0];
    struct meta_uuid id = uuid_n(1);
    struct meta_uuid other = uuid_n(2);
    int32_t l0 = p->replicas[0], l1 = p->replicas[1];
    const int32_t all[] = {p->replicas[0], p->replicas[1], p->replicas[2]};
    const int32_t two[] = {l1, l0}, dup[] = {l0, l0}, stranger[] = {l0, 9};
    struct {
        const char *what;
        const struct meta_uuid *topic;
        int32_t partition, leader;
        const int32_t *isr;
        uint32_t isr_count;
        int16_t want;
        uint32_t records;
        int32_t leader_epoch_after, partition_epoch_after;
    } cases[] = {
        {"unknown topic id", &other, 0, l0, NULL, 0, META_CTL_UNKNOWN_TOPIC_ID, 0, 0, 0},
        {"unknown partition", &id, 1, l0, NULL, 0, KAFKA_UNKNOWN_TOPIC_OR_PARTITION, 0, 0, 0},
        {"nothing changes", &id, 0, l0, all, 3, 0, 0, 0, 0},
        {"isr shrinks", &id, 0, l0, two, 2, 0, 1, 0, 1},
        {"leader moves", &id, 0, l1, NULL, 0, 0, 1, 1, 2},
        {"leader outside isr", &id, 0, all[2], NULL, 0, KAFKA_INVALID_REQUEST, 0, 1, 2},
        {"isr repeats", &id, 0, l0, dup, 2, KAFKA_INVALID_REQUEST, 0, 1, 2},
        {"isr outside replicas", &id, 0, l0, stranger, 2, KAFKA_INVALID_REQUEST, 0, 1, 2},
        {"no leader", &id, 0, META_NO_LEADER, NULL, 0, 0, 1, 2, 3},
    };
    struct meta_records r;
    meta_records_init(&r);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %s\n", cases[i].what);
        assert_int_equal(meta_ctl_partition_change(&img, cases[i].topic, cases[i].partition,
                                                   cases[i].leader, cases[i].isr,
                                                   cases[i].isr_count, &r, &res),
                         cases[i].want);
        assert_int_equal(r.count, cases[i].records);
        commit(&img, &r);
        assert_int_equal(p->leader_epoch, cases[i].leader_epoch_after);
        assert_int_equal(p->partition_epoch, cases[i].partition_epoch_after);
    }
    meta_records_deinit(&r);
    meta_image_deinit(&img);
}

/* A replicated partition's leader reports (AlterPartition): the image takes the group's term as
 * the leader epoch. Catches: a stale report (a deposed leader's, delivered late) overwriting a
 * newer leader, an epoch moving backwards, a non-replica taking leadership. */
static void test_partition_report(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    add_brokers(&img, 3, NULL);
    struct meta_ctl_result res;
    assert_int_equal(create(&img, "t", 1, 1, 3, &res), 0);
    assert_int_equal(create(&img, "single", 2, 1, 1, &res), 0);
    const struct meta_partition *p = &meta_topic_find(&img, "t", 1)->partitions[0];
    struct meta_uuid id = uuid_n(1), single = uuid_n(2);
    int32_t a = p->replicas[0], b = p->replicas[1], c = p->replicas[2];
    const int32_t abc[] = {a, b, c}, ab[] = {a, b}, bc[] = {b, c}, ba[] = {b, a}, aa[] = {a, a};
    struct {
        const char *what;
        const struct meta_uuid *topic;
        int32_t broker, epoch;
        const int32_t *isr;
        uint32_t isr_count;
        int16_t want;
        uint32_t records;
        int32_t leader_after, epoch_after;
    } cases[] = {
        {"first leader, term 2", &id, a, 2, abc, 3, 0, 1, a, 2},
        {"same again: nothing", &id, a, 2, abc, 3, 0, 0, a, 2},
        {"isr shrinks", &id, a, 2, ab, 2, 0, 1, a, 2},
        {"another leader, same term", &id, b, 2, bc, 2, META_CTL_FENCED_LEADER_EPOCH, 0, a, 2},
        {"new leader, term 5", &id, b, 5, ba, 2, 0, 1, b, 5},
        {"deposed leader, late", &id, a, 3, abc, 3, META_CTL_FENCED_LEADER_EPOCH, 0, b, 5},
        {"not a replica", &id, 9, 6, abc, 3, META_CTL_NOT_LEADER_OR_FOLLOWER, 0, b, 5},
        {"isr without leader", &id, c, 6, ab, 2, META_CTL_INVALID_REQUEST, 0, b, 5},
        {"isr repeats", &id, a, 6, aa, 2, META_CTL_INVALID_REQUEST, 0, b, 5},
        {"one replica", &single, 1, 3, abc, 1, KAFKA_INVALID_REQUEST, 0, b, 5},
    };
    struct meta_records r;
    meta_records_init(&r);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %s\n", cases[i].what);
        const struct meta_topic *t = meta_topic_find_id(&img, cases[i].topic);
        int32_t broker = cases[i].topic == &single ? t->partitions[0].replicas[0] : cases[i].broker;
        assert_int_equal(meta_ctl_partition_report(&img, cases[i].topic, 0, broker, cases[i].epoch,
                                                   cases[i].isr, cases[i].isr_count, &r, &res),
                         cases[i].want);
        assert_int_equal(r.count, cases[i].records);
        commit(&img, &r);
        assert_int_equal(p->leader, cases[i].leader_after);
        assert_int_equal(p->leader_epoch, cases[i].epoch_after);
    }
    /* Fencing the leader leaves the partition leaderless at its epoch, which the next leader's
     * higher term then replaces. */
    assert_int_equal(meta_ctl_fence_broker(&img, b, &r, &res), 0);
    commit(&img, &r);
    assert_int_equal(p->leader, META_NO_LEADER);
    assert_int_equal(p->leader_epoch, 5);
    assert_int_equal(meta_ctl_partition_report(&img, &id, 0, c, 6, bc, 2, &r, &res), 0);
    commit(&img, &r);
    assert_int_equal(p->leader, c);
    assert_int_equal(p->leader_epoch, 6);
    meta_records_deinit(&r);
    meta_image_deinit(&img);
}

/* ---- random request sequences ------------------------------------------------------------- */

static const char *const topic_names[] = {"a", "b", "c.d", "c_d", "e"};
static const char *const racks[] = {"r1", "r2", NULL};

static void random_request(struct meta_image *img, struct rng *g, uint32_t *next_id,
                           int64_t *next_epoch, struct meta_records *out)
{
    struct meta_ctl_result res;
    const char *name = topic_names[rng_below(g, 5)];
    int32_t broker = 1 + (int32_t)rng_below(g, 5);
    switch (rng_below(g, 9)) {
    case 8: {
        const struct meta_topic *t = meta_topic_find(img, name, strlen(name));
        if (t == NULL || t->partition_count == 0)
            break;
        uint32_t p = (uint32_t)rng_below(g, t->partition_count);
        const struct meta_partition *mp = &t->partitions[p];
        int32_t isr[RAFT_VOTERS_MAX];
        uint32_t n = 1 + (uint32_t)rng_below(g, mp->replica_count);
        memcpy(isr, mp->replicas, n * sizeof(*isr));
        int32_t leader = rng_chance(g, 1, 4) ? META_NO_LEADER : isr[rng_below(g, n)];
        (void)meta_ctl_partition_change(img, &t->id, (int32_t)p, leader, isr, n, out, &res);
        break;
    }
    case 0:
    case 1: {
        struct meta_ctl_config cfg[] = {{"retention.ms", "5"}};
        struct meta_ctl_create_topic req = {.name = name,
                                            .id = uuid_n((*next_id)++),
                                            .partitions = 1 + (int32_t)rng_below(g, 6),
                                            .replication_factor = (int16_t)(1 + rng_below(g, 3)),
                                            .configs = cfg,
                                            .config_count = (uint32_t)rng_below(g, 2)};
        (void)meta_ctl_create_topic(img, &req, out, &res);
        break;
    }
    case 2:
        (void)meta_ctl_delete_topic(img, name, out, &res);
        break;
    case 3: {
        const struct meta_topic *t = meta_topic_find(img, name, strlen(name));
        int32_t n = (t != NULL ? (int32_t)t->partition_count : 0) + (int32_t)rng_below(g, 4);
        (void)meta_ctl_create_partitions(img, name, n, out, &res);
        break;
    }
    case 4: {
        struct meta_ctl_config cfg[] = {{"retention.ms", rng_chance(g, 1, 3) ? NULL : "7"},
                                        {"segment.bytes", "1024"}};
        bool topic = rng_chance(g, 2, 3);
        (void)meta_ctl_alter_configs(img, topic ? META_RESOURCE_TOPIC : META_RESOURCE_BROKER,
                                     topic ? name : "1", cfg, 1 + (uint32_t)rng_below(g, 2),
                                     rng_chance(g, 1, 2), out, &res);
        break;
    }
    case 5: {
        struct meta_endpoint e = {.name = "PLAINTEXT", .host = "h", .port = (uint16_t)broker};
        struct meta_ctl_register_broker req = {.id = broker,
                                               .incarnation_id = uuid_n((uint32_t)rng_below(g, 3)),
                                               .epoch = (*next_epoch)++,
                                               .endpoints = &e,
                                               .endpoint_count = 1,
                                               .rack = racks[rng_below(g, 3)],
                                               .current_alive = rng_chance(g, 1, 2)};
        int64_t epoch;
        (void)meta_ctl_register_broker(img, &req, out, &res, &epoch);
        break;
    }
    case 6:
        (void)meta_ctl_fence_broker(img, broker, out, &res);
        break;
    default: {
        const struct meta_broker *b = meta_broker_find(img, broker);
        if (b != NULL)
            (void)meta_ctl_unfence_broker(img, broker, b->epoch, out, &res);
        int64_t first;
        if (b != NULL && rng_chance(g, 1, 4))
            (void)meta_ctl_alloc_producer_ids(img, broker, b->epoch, out, &res, &first);
        break;
    }
    }
}

static void test_random_requests(void **state)
{
    (void)state;
    const char *env = getenv("META_TEST_SEED");
    uint64_t seed0 = env != NULL ? strtoull(env, NULL, 0) : 0x63746c;
    uint64_t records = 0;
    for (uint64_t s = 0; s < 100; s++) {
        uint64_t seed = seed0 + s;
        struct rng g;
        rng_seed(&g, seed);
        struct meta_image live, restored;
        meta_image_init(&live);
        meta_image_init(&restored);
        struct meta_records log, req;
        meta_records_init(&log);
        meta_records_init(&req);
        uint32_t next_id = 1;
        int64_t next_epoch = 1;
        uint32_t n = 1 + (uint32_t)rng_below(&g, 300);
        uint32_t snap_at = (uint32_t)rng_below(&g, n);
        uint32_t log_at_snap = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (i == snap_at) {
                /* The restarted node: the snapshot at this point, then the log after it. */
                struct meta_records snap;
                meta_records_init(&snap);
                meta_snapshot(&live, &snap);
                commit(&restored, &snap);
                meta_records_deinit(&snap);
                log_at_snap = log.count;
            }
            random_request(&live, &g, &next_id, &next_epoch, &req);
            for (uint32_t k = 0; k < req.count; k++) {
                struct slice v = meta_records_at(&req, k);
                buf_append(&log.bytes, v.ptr, v.len);
                if (log.count == log.cap) {
                    log.cap = log.cap == 0 ? 16 : log.cap * 2;
                    log.ends = realloc(log.ends, log.cap * sizeof(*log.ends));
                }
                log.ends[log.count++] = log.bytes.len;
            }
            commit(&live, &req); /* every built record applies */
        }
        records += log.count;
        if (log.count > log_at_snap) {
            struct buf b;
            buf_init(&b);
            assert_int_equal(meta_records_batch(&log, log_at_snap, log.count - log_at_snap, 0, &b),
                             0);
            assert_int_equal(meta_apply_batch(&restored, buf_slice(&b), NULL), 0);
            buf_deinit(&b);
        }
        if (!meta_image_equal(&live, &restored)) {
            print_error("seed 0x%llx: snapshot + tail differs from the live image\n",
                        (unsigned long long)seed);
            fail();
        }
        meta_records_deinit(&log);
        meta_records_deinit(&req);
        meta_image_deinit(&live);
        meta_image_deinit(&restored);
    }
    assert_true(records > 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_topic_spreads_over_an_uneven_cluster),
        cmocka_unit_test(test_racks),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_fence_unfence_register),
        cmocka_unit_test(test_shut_down_broker),
        cmocka_unit_test(test_partition_change),
        cmocka_unit_test(test_random_requests),
        cmocka_unit_test(test_partition_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
