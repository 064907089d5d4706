/*
 * Unit tests of the pure parts of the administration APIs (src/broker/admin.h, configs.c): the
 * topic config table, value validation and normalisation with Kafka's messages, the list edits
 * of IncrementalAlterConfigs, every operation on an override set, loading overrides back from
 * the metadata image, the effective values and their sources, the log configuration of a topic,
 * duplicate detection, and docs/configuration.md's topic section against the table.
 *
 * The randomised duplicate test prints its seed; set CHRONIK_TEST_SEED to replay one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/rand.h"
#include "broker/admin.h"
#include "broker/broker_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef CHRONIK_DOCS_CONFIGURATION
#error "CHRONIK_DOCS_CONFIGURATION must name docs/configuration.md"
#endif

static uint64_t test_seed;

#define assert_contains(haystack, needle)              \
    do {                                               \
        const char *h_ = (haystack);                   \
        const char *n_ = (needle);                     \
        if (strstr(h_, n_) == NULL)                    \
            fail_msg("expected '%s' in '%s'", n_, h_); \
    } while (0)

static int key_id(const char *name)
{
    int id = topic_config_find(name, strlen(name));
    if (id < 0)
        fail_msg("no topic key %s", name);
    return id;
}

/* Validation must pass and normalise value to want. */
static void valid(const char *key, const char *value, const char *want)
{
    char out[BROKER_TOPIC_VALUE_BYTES_MAX];
    char why[BROKER_ADMIN_MESSAGE_BYTES_MAX] = "";
    int rc = topic_config_validate((enum topic_config_id)key_id(key), value, strlen(value), out,
                                   sizeof(out), why, sizeof(why));
    if (rc != 0)
        fail_msg("%s=%s refused: %s", key, value, why);
    assert_string_equal(out, want);
}

/* Validation must fail with a message holding needle. */
static void refused(const char *key, const char *value, size_t len, const char *needle)
{
    char out[BROKER_TOPIC_VALUE_BYTES_MAX];
    char why[BROKER_ADMIN_MESSAGE_BYTES_MAX] = "";
    int rc = topic_config_validate((enum topic_config_id)key_id(key), value, len, out, sizeof(out),
                                   why, sizeof(why));
    if (rc != ERR_INVALID)
        fail_msg("%s=%.*s accepted (rc %d)", key, (int)len, value, rc);
    assert_contains(why, needle);
}

static void refused_s(const char *key, const char *value, const char *needle)
{
    refused(key, value, strlen(value), needle);
}

static void test_table_is_consistent(void **state)
{
    (void)state;
    struct broker_config defaults;
    admin_broker_defaults(&defaults);
    for (int id = 0; id < TOPIC_CONFIG_COUNT; id++) {
        const struct topic_config_key *k = &topic_config_keys[id];
        assert_int_equal(topic_config_find(k->name, strlen(k->name)), id);
        if (id > 0 && strcmp(topic_config_keys[id - 1].name, k->name) >= 0)
            fail_msg("keys out of name order at %s", k->name);
        assert_non_null(k->doc);
        assert_true(k->broker_key == TOPIC_CONFIG_NO_BROKER_KEY ||
                    (k->broker_key >= 0 && k->broker_key < BROKER_KEY_COUNT));
        assert_true((k->broker_key == TOPIC_CONFIG_NO_BROKER_KEY) == (k->default_value != NULL));
        if (k->type == TOPIC_CONFIG_STRING || k->type == TOPIC_CONFIG_LIST)
            assert_non_null(k->kafka_values);
        /* Every default, inherited or fixed, passes the key's own validation unchanged. */
        char def[BROKER_CONFIG_VALUE_BYTES_MAX];
        topic_config_default(&defaults, (enum topic_config_id)id, def, sizeof(def));
        valid(k->name, def, def);
    }
    assert_int_equal(topic_config_find("retention.ms", 11), ERR_NOT_FOUND);
    assert_int_equal(topic_config_find("log.retention.ms", 16), ERR_NOT_FOUND);
    assert_int_equal(topic_config_find("", 0), ERR_NOT_FOUND);
}

static void test_numbers(void **state)
{
    (void)state;
    valid("retention.ms", "1000", "1000");
    valid("retention.ms", " +42\t", "42");
    valid("retention.ms", "-1", "-1");
    valid("retention.ms", "9223372036854775807", "9223372036854775807");
    valid("retention.bytes", "007", "7");
    refused_s("retention.ms", "-2",
              "Invalid value -2 for configuration retention.ms: Value must "
              "be at least -1");
    refused_s("retention.ms", "abc", "Not a number of type LONG");
    refused_s("retention.ms", "9223372036854775808", "Not a number of type LONG");
    refused_s("retention.ms", "", "Not a number of type LONG");
    refused_s("retention.ms", "1e3", "Not a number of type LONG");
    refused_s("retention.ms", "0x10", "Not a number of type LONG");
    refused_s("retention.ms", "1 000", "Not a number of type LONG");
    refused_s("retention.ms", "-", "Not a number of type LONG");
    valid("segment.bytes", "65536", "65536");
    refused_s("segment.bytes", "65535", "Value must be at least 65536");
    refused_s("segment.bytes", "2147483648", "Not a number of type INT");
    valid("segment.bytes", "2147483647", "2147483647");
    refused_s("segment.ms", "0", "Value must be at least 1");
    refused_s("min.insync.replicas", "8", "Value must be no more than 7");
    refused_s("max.message.bytes", "60", "Value must be at least 61");
    refused_s("max.message.bytes", "67108865", "Value must be no more than 67108864");
}

static void test_strings_and_booleans(void **state)
{
    (void)state;
    valid("message.timestamp.type", "LogAppendTime", "LogAppendTime");
    valid("message.timestamp.type", " CreateTime ", "CreateTime");
    refused_s("message.timestamp.type", "logappendtime",
              "Invalid value logappendtime for configuration message.timestamp.type: String "
              "must be one of: CreateTime, LogAppendTime");
    /* Issue 8 item 12: every codec Kafka names is accepted (it was refused with "not
     * supported"); the broker recompresses to it. */
    static const char *const codecs[] = {"producer", "uncompressed", "gzip",
                                         "snappy",   "lz4",          "zstd"};
    for (size_t i = 0; i < ARRAY_LEN(codecs); i++)
        valid("compression.type", codecs[i], codecs[i]);
    refused_s("compression.type", "brotli", "String must be one of: uncompressed, zstd, lz4");
    refused_s("compression.type", "GZIP", "String must be one of: uncompressed, zstd, lz4");
    valid("unclean.leader.election.enable", "FALSE", "false");
    valid("unclean.leader.election.enable", " false ", "false");
    refused_s("unclean.leader.election.enable", "True",
              "unclean.leader.election.enable=true is not supported");
    refused_s("unclean.leader.election.enable", "yes", "Expected value to be either true or false");
}

static void test_cleanup_policy(void **state)
{
    (void)state;
    valid("cleanup.policy", "delete", "delete");
    valid("cleanup.policy", " delete , delete ", "delete");
    char why[BROKER_ADMIN_MESSAGE_BYTES_MAX];
    char out[BROKER_TOPIC_VALUE_BYTES_MAX];
    static const char *const compacting[] = {"compact", "compact,delete", "delete,compact",
                                             " compact , delete"};
    for (size_t i = 0; i < ARRAY_LEN(compacting); i++) {
        int rc = topic_config_validate(TOPIC_CONFIG_CLEANUP_POLICY, compacting[i],
                                       strlen(compacting[i]), out, sizeof(out), why, sizeof(why));
        assert_int_equal(rc, ERR_INVALID);
        assert_string_equal(why, "cleanup.policy=compact is not supported yet");
    }
    refused_s("cleanup.policy", "", "The list must not be empty");
    refused_s("cleanup.policy", "delete,", "String must be one of: compact, delete");
    refused_s("cleanup.policy", "delete,foo", "String must be one of: compact, delete");
    refused_s("cleanup.policy", "DELETE", "String must be one of: compact, delete");
}

static void test_value_bounds(void **state)
{
    (void)state;
    char *big = xmalloc(META_CONFIG_VALUE_BYTES_MAX);
    memset(big, '1', META_CONFIG_VALUE_BYTES_MAX);
    refused("retention.ms", big, META_CONFIG_VALUE_BYTES_MAX, "at most 1023 bytes");
    free(big);
    refused("retention.ms",
            "10\0"
            "00",
            5, "hold no NUL byte");
    /* The quoted value is cut, so a long value still leaves room for the reason. */
    char *longer = xmalloc(600);
    memset(longer, 'x', 599);
    longer[599] = '\0';
    refused_s("retention.ms", longer, "...");
    refused_s("retention.ms", longer, "Not a number of type LONG");
    free(longer);
}

static void list_ok(const char *current, const char *operand, bool append, const char *want)
{
    char out[64];
    int rc = topic_config_list_apply(current, operand, strlen(operand), append, out, sizeof(out));
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
}

static void test_list_apply(void **state)
{
    (void)state;
    list_ok("delete", "compact", true, "delete,compact");
    list_ok("delete", "delete", true, "delete");
    list_ok("", "a,b,a", true, "a,b");
    list_ok("a,,b", ",c,", true, "a,b,c");
    list_ok("delete,compact", "delete", false, "compact");
    list_ok("delete,compact", "x", false, "delete,compact");
    list_ok("a,b,c", "c,a", false, "b");
    list_ok("a", "a", false, "");
    char small[4];
    assert_int_equal(topic_config_list_apply("abc", "def", 3, true, small, sizeof(small)),
                     ERR_TOO_LARGE);
}

static int apply(struct topic_config_set *set, const struct broker_config *cfg, const char *key,
                 int8_t op, const char *value, char *why)
{
    return topic_config_set_apply(set, cfg, key, strlen(key), op, value,
                                  value != NULL ? strlen(value) : 0, why,
                                  BROKER_ADMIN_MESSAGE_BYTES_MAX);
}

static void test_set_operations(void **state)
{
    (void)state;
    struct broker_config cfg;
    admin_broker_defaults(&cfg);
    struct topic_config_set set, before;
    memset(&set, 0, sizeof(set));
    char why[BROKER_ADMIN_MESSAGE_BYTES_MAX];

    assert_int_equal(apply(&set, &cfg, "retention.ms", TOPIC_CONFIG_OP_SET, " 1000", why),
                     KAFKA_NONE);
    assert_true(set.present[TOPIC_CONFIG_RETENTION_MS]);
    assert_string_equal(set.values[TOPIC_CONFIG_RETENTION_MS], "1000");

    /* A refused change leaves the set exactly as it was. */
    before = set;
    assert_int_equal(apply(&set, &cfg, "retention.ms", TOPIC_CONFIG_OP_SET, "x", why),
                     KAFKA_INVALID_CONFIG);
    assert_memory_equal(&set, &before, sizeof(set));
    assert_int_equal(apply(&set, &cfg, "retention.ms", TOPIC_CONFIG_OP_APPEND, "1", why),
                     KAFKA_INVALID_CONFIG);
    assert_string_equal(why, "Can't APPEND to key retention.ms because its type is not LIST.");
    assert_int_equal(apply(&set, &cfg, "segment.ms", TOPIC_CONFIG_OP_SUBTRACT, "1", why),
                     KAFKA_INVALID_CONFIG);
    assert_string_equal(why, "Can't SUBTRACT to key segment.ms because its type is not LIST.");
    assert_int_equal(apply(&set, &cfg, "no.such.key", TOPIC_CONFIG_OP_SET, "1", why),
                     KAFKA_INVALID_CONFIG);
    assert_string_equal(why, "Unknown topic config name: no.such.key");
    assert_int_equal(apply(&set, &cfg, "no.such.key", TOPIC_CONFIG_OP_DELETE, NULL, why),
                     KAFKA_INVALID_CONFIG);
    assert_int_equal(apply(&set, &cfg, "retention.ms", 9, "1", why), KAFKA_INVALID_REQUEST);
    assert_string_equal(why, "Unknown operations type 9");
    assert_int_equal(apply(&set, &cfg, "retention.ms", -1, "1", why), KAFKA_INVALID_REQUEST);
    /* APPEND starts from the default when there is no override, and a list that would hold
     * compact is refused whole. */
    assert_int_equal(apply(&set, &cfg, "cleanup.policy", TOPIC_CONFIG_OP_APPEND, "compact", why),
                     KAFKA_INVALID_CONFIG);
    assert_string_equal(why, "cleanup.policy=compact is not supported yet");
    assert_int_equal(apply(&set, &cfg, "cleanup.policy", TOPIC_CONFIG_OP_SUBTRACT, "delete", why),
                     KAFKA_INVALID_CONFIG);
    assert_contains(why, "The list must not be empty");
    assert_memory_equal(&set, &before, sizeof(set));

    assert_int_equal(apply(&set, &cfg, "cleanup.policy", TOPIC_CONFIG_OP_APPEND, "delete", why),
                     KAFKA_NONE);
    assert_true(set.present[TOPIC_CONFIG_CLEANUP_POLICY]);
    assert_string_equal(set.values[TOPIC_CONFIG_CLEANUP_POLICY], "delete");
    assert_int_equal(apply(&set, &cfg, "cleanup.policy", TOPIC_CONFIG_OP_SUBTRACT, "compact", why),
                     KAFKA_NONE);
    assert_string_equal(set.values[TOPIC_CONFIG_CLEANUP_POLICY], "delete");

    assert_int_equal(apply(&set, &cfg, "retention.ms", TOPIC_CONFIG_OP_DELETE, NULL, why),
                     KAFKA_NONE);
    assert_false(set.present[TOPIC_CONFIG_RETENTION_MS]);
    /* Deleting a key that is not set is no error. */
    assert_int_equal(apply(&set, &cfg, "retention.ms", TOPIC_CONFIG_OP_DELETE, NULL, why),
                     KAFKA_NONE);
    assert_false(set.present[TOPIC_CONFIG_RETENTION_MS]);
}

/* A metadata image holding topic "t" with the given overrides. */
static void image_with(struct meta_image *img, const char *const *kv, size_t pairs)
{
    meta_image_init(img);
    struct meta_uuid id;
    memset(&id, 7, sizeof(id));
    int32_t assignment[1] = {1};
    assert_int_equal(meta_topic_create(img, "t", &id, 1, 1, assignment), 0);
    for (size_t i = 0; i < pairs; i++)
        assert_int_equal(meta_topic_config_set(img, "t", kv[2 * i], kv[2 * i + 1]), 0);
}

static void test_load_and_resolve(void **state)
{
    (void)state;
    static const char *const kv[] = {
        "retention.ms",     "junk", /* stored but no longer valid: ignored */
        "retention.bytes",  "5000", "segment.bytes",          " 70000 ",
        "some.unknown.key", "x",    "message.timestamp.type", "LogAppendTime",
        "compression.type", "lz4",
    };
    struct meta_image img;
    image_with(&img, kv, ARRAY_LEN(kv) / 2);
    const struct meta_topic *mt = meta_topic_find(&img, "t", 1);
    assert_non_null(mt);

    struct topic_config_set set;
    topic_config_set_load(&set, mt);
    assert_false(set.present[TOPIC_CONFIG_RETENTION_MS]);
    assert_true(set.present[TOPIC_CONFIG_RETENTION_BYTES]);
    assert_string_equal(set.values[TOPIC_CONFIG_SEGMENT_BYTES], "70000");
    int count = 0;
    for (int id = 0; id < TOPIC_CONFIG_COUNT; id++)
        count += set.present[id];
    assert_int_equal(count, 4);

    struct broker_config cfg;
    admin_broker_defaults(&cfg);
    cfg.log_retention_ms = 123456;
    struct topic_config_values v;
    topic_config_resolve(&cfg, mt, &v);
    assert_int_equal(v.retention_ms, 123456);
    assert_int_equal(v.retention_bytes, 5000);
    assert_int_equal(v.segment_bytes, 70000);
    assert_int_equal(v.segment_ms, cfg.log_roll_ms);
    assert_int_equal(v.max_message_bytes, cfg.message_max_bytes);
    assert_int_equal(v.min_insync_replicas, cfg.min_insync_replicas);
    assert_true(v.log_append_time);
    assert_int_equal(v.compression, BATCH_CODEC_LZ4);
    topic_config_resolve(&cfg, NULL, &v);
    assert_false(v.log_append_time);
    assert_int_equal(v.compression, TOPIC_COMPRESSION_PRODUCER);
    /* Without an override a topic takes the broker's compression.type. */
    snprintf(cfg.compression_type, sizeof(cfg.compression_type), "%s", "zstd");
    topic_config_resolve(&cfg, NULL, &v);
    assert_int_equal(v.compression, BATCH_CODEC_ZSTD);
    assert_int_equal(v.retention_bytes, cfg.log_retention_bytes);
    meta_image_deinit(&img);
}

static void test_log_config(void **state)
{
    (void)state;
    static const char *const kv[] = {"retention.ms", "1000",       "segment.bytes",
                                     "65536",        "segment.ms", "5000"};
    struct meta_image img;
    image_with(&img, kv, ARRAY_LEN(kv) / 2);
    struct broker b;
    memset(&b, 0, sizeof(b));
    log_config_default(&b.log_cfg);
    b.log_cfg.retention_bytes = 777;
    b.log_cfg.prealloc_bytes = 12345;
    struct log_config out;
    broker_topic_log_config(&b, meta_topic_find(&img, "t", 1), &out);
    assert_int_equal(out.retention_ms, 1000);
    assert_int_equal(out.segment_bytes, 65536);
    assert_int_equal(out.roll_ms, 5000);
    /* What the topic does not override stays the broker's. */
    assert_int_equal(out.retention_bytes, 777);
    assert_int_equal(out.prealloc_bytes, 12345);
    assert_int_equal(out.index_interval_bytes, b.log_cfg.index_interval_bytes);
    meta_image_deinit(&img);
}

static void test_sources(void **state)
{
    (void)state;
    struct broker_config defaults, cfg;
    admin_broker_defaults(&defaults);
    cfg = defaults;
    cfg.log_segment_bytes = 1 << 20;
    struct topic_config_set set;
    memset(&set, 0, sizeof(set));
    char value[BROKER_CONFIG_VALUE_BYTES_MAX];
    assert_int_equal(topic_config_effective(&cfg, &defaults, &set, TOPIC_CONFIG_SEGMENT_BYTES,
                                            value, sizeof(value)),
                     ADMIN_SOURCE_STATIC_BROKER);
    assert_string_equal(value, "1048576");
    assert_int_equal(topic_config_effective(&cfg, &defaults, &set, TOPIC_CONFIG_RETENTION_MS, value,
                                            sizeof(value)),
                     ADMIN_SOURCE_DEFAULT);
    assert_string_equal(value, "604800000");
    assert_int_equal(topic_config_effective(&cfg, &defaults, &set, TOPIC_CONFIG_CLEANUP_POLICY,
                                            value, sizeof(value)),
                     ADMIN_SOURCE_DEFAULT);
    assert_string_equal(value, "delete");
    set.present[TOPIC_CONFIG_SEGMENT_BYTES] = true;
    strcpy(set.values[TOPIC_CONFIG_SEGMENT_BYTES], "65536");
    assert_int_equal(topic_config_effective(&cfg, &defaults, &set, TOPIC_CONFIG_SEGMENT_BYTES,
                                            value, sizeof(value)),
                     ADMIN_SOURCE_DYNAMIC_TOPIC);
    assert_string_equal(value, "65536");
    assert_int_equal(admin_broker_value(&cfg, &defaults, BROKER_KEY_NODE_ID, value, sizeof(value)),
                     ADMIN_SOURCE_DEFAULT);
    assert_string_equal(value, "1");
}

static void test_find_duplicates(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, test_seed);
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, 16 * MIB);
    for (int round = 0; round < 200; round++) {
        size_t n = (size_t)rng_below(&rng, 40);
        struct slice keys[40];
        char text[40][3];
        bool dup[40], later[40];
        for (size_t i = 0; i < n; i++) {
            /* Short keys over a small alphabet, so equal keys, prefixes and empty keys occur. */
            size_t len = (size_t)rng_below(&rng, 3);
            for (size_t j = 0; j < len; j++)
                text[i][j] = (char)('a' + rng_below(&rng, 2));
            keys[i] = slice_make(text[i], len);
        }
        assert_int_equal(admin_find_duplicates(&a, keys, n, dup, later), 0);
        for (size_t i = 0; i < n; i++) {
            bool want_dup = false, want_later = false;
            for (size_t j = 0; j < n; j++) {
                bool same = j != i && keys[j].len == keys[i].len &&
                            memcmp(keys[j].ptr, keys[i].ptr, keys[i].len) == 0;
                want_dup |= same;
                want_later |= same && j < i;
            }
            if (dup[i] != want_dup || later[i] != want_later)
                fail_msg("round %d key %zu: dup %d/%d later %d/%d (seed %" PRIu64 ")", round, i,
                         dup[i], want_dup, later[i], want_later, test_seed);
        }
        arena_reset(&a);
    }
    /* A full arena is an error, not a crash. */
    struct arena tiny;
    arena_init(&tiny, 64, 64);
    struct slice many[8];
    bool d[8];
    for (int i = 0; i < 8; i++)
        many[i] = slice_make("k", 1);
    assert_int_equal(admin_find_duplicates(&tiny, many, 8, d, NULL), ERR_TOO_LARGE);
    arena_deinit(&tiny);
    arena_deinit(&a);
}

static void test_admin_printf(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1024, 4096);
    struct proto_str s = admin_printf(&a, "Topic '%s' already exists.", "x");
    assert_true(proto_str_eq(s, "Topic 'x' already exists."));
    char long_name[2000];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    s = admin_printf(&a, "%s", long_name);
    assert_int_equal(s.len, BROKER_ADMIN_MESSAGE_BYTES_MAX - 1);
    while (arena_alloc(&a, 16) != NULL)
        ;
    s = admin_printf(&a, "%s", "does not fit");
    assert_null(s.ptr);
    arena_deinit(&a);
}

static char *read_docs(void)
{
    FILE *f = fopen(CHRONIK_DOCS_CONFIGURATION, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", CHRONIK_DOCS_CONFIGURATION);
    char *text = xmalloc(1024 * 1024);
    size_t n = fread(text, 1, 1024 * 1024 - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void test_docs_topic_section(void **state)
{
    (void)state;
    char *docs = read_docs();
    char *section = strstr(docs, "\n## Topic configuration\n");
    if (section == NULL)
        fail_msg("docs/configuration.md has no '## Topic configuration' section");
    char *next = strstr(section + 1, "\n## ");
    if (next != NULL)
        *next = '\0';
    for (int id = 0; id < TOPIC_CONFIG_COUNT; id++) {
        char row[128];
        snprintf(row, sizeof(row), "\n| %s |", topic_config_keys[id].name);
        if (strstr(section, row) == NULL)
            fail_msg("docs/configuration.md's topic section has no row '| %s |'",
                     topic_config_keys[id].name);
    }
    /* Every row of the section (past the header and its rule) names a key of the table. */
    int rows = 0;
    for (const char *p = strstr(section, "\n| "); p != NULL; p = strstr(p + 1, "\n| ")) {
        const char *name = p + 3;
        size_t n = strcspn(name, " |");
        if (strncmp(name, "key", n) == 0 || strncmp(name, "---", n) == 0)
            continue;
        if (topic_config_find(name, n) < 0)
            fail_msg("the topic section documents '%.*s', which is not a topic key", (int)n, name);
        rows++;
    }
    assert_int_equal(rows, TOPIC_CONFIG_COUNT);
    free(docs);
}

int main(void)
{
    const char *seed_env = getenv("CHRONIK_TEST_SEED");
    test_seed = seed_env != NULL ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
    printf("test_topic_configs: seed %" PRIu64 " (replay with CHRONIK_TEST_SEED=%" PRIu64 ")\n",
           test_seed, test_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),  cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings_and_booleans), cmocka_unit_test(test_cleanup_policy),
        cmocka_unit_test(test_value_bounds),         cmocka_unit_test(test_list_apply),
        cmocka_unit_test(test_set_operations),       cmocka_unit_test(test_load_and_resolve),
        cmocka_unit_test(test_log_config),           cmocka_unit_test(test_sources),
        cmocka_unit_test(test_find_duplicates),      cmocka_unit_test(test_admin_printf),
        cmocka_unit_test(test_docs_topic_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
