/*
 * bench/kafka/opts.h: the defaults of each mode, every option in both spellings, -X pairs,
 * and each way a command line is refused (no mode, unknown option, bad or out-of-range
 * numbers, bad choices, bad topic names, options that do not apply to the mode, e2e records
 * too short for the header, malformed or too many -X pairs), with an error message that names
 * the culprit.
 */
#include "opts.h"

#include "base/error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define ARGS_MAX 200

static struct bench_opts opts;
static char err[BENCH_ERROR_BYTES_MAX];

/* Parses a NULL-terminated list of arguments (the program name is added). */
static int parse_list(const char *const *args)
{
    char *argv[ARGS_MAX + 1];
    int argc = 0;
    argv[argc++] = (char *)"chronik-bench";
    for (; *args != NULL; args++) {
        assert_true(argc < ARGS_MAX);
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    return bench_opts_parse(&opts, argc, argv, err, sizeof(err));
}

#define PARSE(...) parse_list((const char *const[]){__VA_ARGS__, NULL})

/* The command line is refused and the message contains needle. */
static void assert_refused(int rc, const char *needle)
{
    assert_int_equal(rc, ERR_INVALID);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_produce_defaults(void **state)
{
    (void)state;
    assert_int_equal(PARSE("produce"), 0);
    assert_int_equal(opts.mode, BENCH_MODE_PRODUCE);
    assert_false(opts.help);
    assert_string_equal(opts.brokers, "127.0.0.1:9092");
    assert_string_equal(opts.topic, "chronik-bench");
    assert_int_equal(opts.messages, 1000000);
    assert_int_equal(opts.duration_ms, 0);
    assert_int_equal(opts.record_bytes, 1024);
    assert_string_equal(opts.acks, "all");
    assert_string_equal(opts.compression, "none");
    assert_int_equal(opts.partitions, 0);
    assert_int_equal(opts.replication, -1);
    assert_int_equal(opts.linger_ms, -1);
    assert_int_equal(opts.batch_bytes, -1);
    assert_int_equal(opts.rate_per_s, 0);
    assert_int_equal(opts.warmup_ms, 0);
    assert_null(opts.group);
    assert_int_equal(opts.payload, BENCH_PAYLOAD_RANDOM);
    assert_false(opts.json);
    assert_null(opts.client_stats);
    assert_int_equal(opts.settings_count, 0);
}

static void test_consume_and_duration_defaults(void **state)
{
    (void)state;
    /* Consume reads to the end of the partitions unless told a count. */
    assert_int_equal(PARSE("consume"), 0);
    assert_int_equal(opts.mode, BENCH_MODE_CONSUME);
    assert_int_equal(opts.messages, 0);
    assert_int_equal(opts.idle_timeout_ms, BENCH_IDLE_MS_DEFAULT);
    assert_int_equal(opts.commit_ms, BENCH_COMMIT_MS_DEFAULT);
    /* A duration alone does not get the default message count. */
    assert_int_equal(PARSE("e2e", "--duration", "5"), 0);
    assert_int_equal(opts.messages, 0);
    assert_int_equal(opts.duration_ms, 5000);
}

static void test_every_option(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--brokers", "h1:1,h2:2", "e2e", "--topic=t.1_x-y", "--messages", "42",
                           "--duration=7", "--record-size", "100", "--acks", "1",
                           "--compression=zstd", "--partitions", "8", "--replication-factor", "3",
                           "--linger-ms", "0", "--batch-size", "65536", "--rate", "1000",
                           "--warmup", "2", "--group", "g1", "--commit-interval-ms", "250",
                           "--timeout-ms", "3000", "--payload", "zeros", "--json", "--client-stats",
                           "s.json", "-X", "fetch.min.bytes=1", "-Xsocket.nagle.disable=true=x"),
                     0);
    assert_int_equal(opts.mode, BENCH_MODE_E2E);
    assert_string_equal(opts.brokers, "h1:1,h2:2");
    assert_string_equal(opts.topic, "t.1_x-y");
    assert_int_equal(opts.messages, 42);
    assert_int_equal(opts.duration_ms, 7000);
    assert_int_equal(opts.record_bytes, 100);
    assert_string_equal(opts.acks, "1");
    assert_string_equal(opts.compression, "zstd");
    assert_int_equal(opts.partitions, 8);
    assert_int_equal(opts.replication, 3);
    assert_int_equal(opts.linger_ms, 0);
    assert_int_equal(opts.batch_bytes, 65536);
    assert_int_equal(opts.rate_per_s, 1000);
    assert_int_equal(opts.warmup_ms, 2000);
    assert_string_equal(opts.group, "g1");
    assert_int_equal(opts.commit_ms, 250);
    assert_int_equal(opts.idle_timeout_ms, 3000);
    assert_int_equal(opts.payload, BENCH_PAYLOAD_ZEROS);
    assert_true(opts.json);
    assert_string_equal(opts.client_stats, "s.json");
    assert_int_equal(opts.settings_count, 2);
    assert_string_equal(opts.settings[0].key, "fetch.min.bytes");
    assert_string_equal(opts.settings[0].value, "1");
    /* Only the first '=' splits: values may contain more. */
    assert_string_equal(opts.settings[1].key, "socket.nagle.disable");
    assert_string_equal(opts.settings[1].value, "true=x");
}

static void test_choices(void **state)
{
    (void)state;
    const char *acks[][2] = {{"0", "0"}, {"1", "1"}, {"all", "all"}, {"-1", "all"}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(PARSE("produce", "--acks", acks[i][0]), 0);
        assert_string_equal(opts.acks, acks[i][1]);
    }
    const char *codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(PARSE("produce", "--compression", codecs[i]), 0);
        assert_string_equal(opts.compression, codecs[i]);
    }
    assert_refused(PARSE("produce", "--acks", "2"), "--acks");
    assert_refused(PARSE("produce", "--compression", "brotli"), "brotli");
    assert_refused(PARSE("produce", "--payload", "ones"), "--payload");
}

static void test_help(void **state)
{
    (void)state;
    /* Help wins over everything else, even a broken command line. */
    assert_int_equal(PARSE("--bogus", "-h"), 0);
    assert_true(opts.help);
    assert_int_equal(PARSE("produce", "--help"), 0);
    assert_true(opts.help);
    assert_non_null(strstr(bench_usage_text, "--partitions"));
}

static void test_numbers_refused(void **state)
{
    (void)state;
    assert_refused(PARSE("produce", "--messages", "0"), "--messages");
    assert_refused(PARSE("produce", "--messages", "-5"), "--messages");
    assert_refused(PARSE("produce", "--messages", "12x"), "--messages");
    assert_refused(PARSE("produce", "--messages", ""), "--messages");
    assert_refused(PARSE("produce", "--messages", "99999999999999999999999"), "--messages");
    assert_refused(PARSE("produce", "--record-size", "16777217"), "--record-size");
    assert_int_equal(PARSE("produce", "--record-size", "16777216"), 0);
    assert_refused(PARSE("produce", "--partitions", "100001"), "--partitions");
    assert_refused(PARSE("produce", "--linger-ms", "900001"), "--linger-ms");
    assert_refused(PARSE("produce", "--rate", "100000001"), "--rate");
    assert_refused(PARSE("produce", "--duration", "0"), "--duration");
    assert_refused(PARSE("produce", "--duration", " 5"), "--duration");
    assert_refused(PARSE("produce", "--warmup", "0"), "--warmup");
    assert_refused(PARSE("consume", "--timeout-ms", "0"), "--timeout-ms");
    assert_refused(PARSE("produce", "--replication-factor", "0"), "--replication-factor");
    assert_refused(PARSE("produce", "--client-stats", ""), "--client-stats is empty");
}

static void test_shapes_refused(void **state)
{
    (void)state;
    assert_refused(PARSE("--topic", "t"), "no mode");
    assert_refused(PARSE("produce", "consume"), "consume");
    assert_refused(PARSE("bogus"), "bogus");
    assert_refused(PARSE("produce", "--bogus"), "--bogus");
    assert_refused(PARSE("produce", "--bogus=1"), "--bogus");
    assert_refused(PARSE("produce", "--topic"), "--topic needs a value");
    assert_refused(PARSE("produce", "--json=yes"), "--json takes no value");
    assert_refused(PARSE("produce", "--brokers="), "--brokers");
    assert_refused(PARSE("consume", "--group", ""), "--group");
}

static void test_topic_names(void **state)
{
    (void)state;
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name));
    long_name[249] = '\0';
    assert_int_equal(PARSE("produce", "--topic", long_name), 0);
    long_name[249] = 'a';
    long_name[250] = '\0';
    assert_refused(PARSE("produce", "--topic", long_name), "not a Kafka topic name");
    assert_refused(PARSE("produce", "--topic", "a b"), "not a Kafka topic name");
    assert_refused(PARSE("produce", "--topic", "a\"b"), "not a Kafka topic name");
    assert_refused(PARSE("produce", "--topic", "."), "not a Kafka topic name");
    assert_refused(PARSE("produce", "--topic", ".."), "not a Kafka topic name");
    assert_refused(PARSE("produce", "--topic", ""), "not a Kafka topic name");
}

static void test_mode_mismatch(void **state)
{
    (void)state;
    assert_refused(PARSE("consume", "--acks", "1"), "--acks does not apply to mode consume");
    assert_refused(PARSE("--rate", "5", "consume"), "--rate does not apply to mode consume");
    assert_refused(PARSE("consume", "--warmup", "2"), "--warmup does not apply to mode consume");
    assert_refused(PARSE("produce", "--group", "g"), "--group does not apply to mode produce");
    assert_refused(PARSE("produce", "--timeout-ms", "5"), "--timeout-ms does not apply");
    /* e2e takes both sides' options. */
    assert_int_equal(PARSE("e2e", "--acks", "0", "--group", "g", "--rate", "10"), 0);
    /* e2e values must carry the header; produce alone may send anything. */
    assert_refused(PARSE("e2e", "--record-size", "23"), "at least 24");
    assert_int_equal(PARSE("e2e", "--record-size", "24"), 0);
    assert_int_equal(PARSE("produce", "--record-size", "1"), 0);
}

static void test_settings_refused(void **state)
{
    (void)state;
    assert_refused(PARSE("produce", "-X"), "-X needs");
    assert_refused(PARSE("produce", "-X", "novalue"), "KEY=VALUE");
    assert_refused(PARSE("produce", "-X", "=v"), "KEY=VALUE");
    char key[BENCH_CLIENT_KEY_BYTES_MAX + 8];
    memset(key, 'k', BENCH_CLIENT_KEY_BYTES_MAX);
    strcpy(key + BENCH_CLIENT_KEY_BYTES_MAX, "=v");
    assert_refused(PARSE("produce", "-X", key), "longer than");
    /* One more than the bound. */
    const char *args[2 * BENCH_CLIENT_SETTINGS_MAX + 4];
    size_t n = 0;
    args[n++] = "produce";
    for (uint32_t i = 0; i <= BENCH_CLIENT_SETTINGS_MAX; i++) {
        args[n++] = "-X";
        args[n++] = "a=b";
    }
    args[n] = NULL;
    assert_refused(parse_list(args), "more than");
    args[n - 2] = NULL;
    assert_int_equal(parse_list(args), 0);
    assert_int_equal(opts.settings_count, BENCH_CLIENT_SETTINGS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_defaults),
        cmocka_unit_test(test_consume_and_duration_defaults),
        cmocka_unit_test(test_every_option),
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_numbers_refused),
        cmocka_unit_test(test_shapes_refused),
        cmocka_unit_test(test_topic_names),
        cmocka_unit_test(test_mode_mismatch),
        cmocka_unit_test(test_settings_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
