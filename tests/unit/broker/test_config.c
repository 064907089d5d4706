/*
 * Unit tests of src/broker/config: the key table, properties parsing, the command line, the
 * precedence of sources and synonyms, validation of every key, listeners and derived ports,
 * the properties output, and docs/configuration.md against the table.
 *
 * The randomised round-trip test prints its seed; set CHRONIK_TEST_SEED to replay one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base/alloc.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/rand.h"
#include "broker/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef CHRONIK_DOCS_CONFIGURATION
#error "CHRONIK_DOCS_CONFIGURATION must name docs/configuration.md"
#endif

static uint64_t test_seed;

/* Fails the test unless haystack contains needle, showing both. */
#define assert_contains(haystack, needle)              \
    do {                                               \
        const char *h_ = (haystack);                   \
        const char *n_ = (needle);                     \
        if (strstr(h_, n_) == NULL)                    \
            fail_msg("expected '%s' in '%s'", n_, h_); \
    } while (0)

static void resolve_ok(struct broker_config_input *in, struct broker_config *config)
{
    struct broker_config_error err = {{0}};
    int rc = broker_config_resolve(in, config, &err);
    if (rc != 0)
        fail_msg("resolve failed (%d): %s", rc, err.text);
}

/* Resolving must fail with ERR_INVALID and a message holding both needles (NULL: skipped). */
static void resolve_fails(struct broker_config_input *in, const char *needle1, const char *needle2)
{
    struct broker_config config;
    struct broker_config_error err = {{0}};
    int rc = broker_config_resolve(in, &config, &err);
    if (rc != ERR_INVALID)
        fail_msg("resolve returned %d, expected ERR_INVALID (needles '%s', '%s')", rc,
                 needle1 != NULL ? needle1 : "", needle2 != NULL ? needle2 : "");
    if (needle1 != NULL)
        assert_contains(err.text, needle1);
    if (needle2 != NULL)
        assert_contains(err.text, needle2);
}

static void set_ok(struct broker_config_input *in, enum broker_config_source source,
                   const char *key, const char *value)
{
    struct broker_config_error err = {{0}};
    const char *flag = source == BROKER_CONFIG_SOURCE_FLAG ? "--test-flag" : NULL;
    int rc = broker_config_input_set(in, source, key, value, 1, flag, &err);
    if (rc != 0)
        fail_msg("set %s=%s failed (%d): %s", key, value, rc, err.text);
}

static void load_ok(struct broker_config_input *in, const char *text)
{
    struct broker_config_error err = {{0}};
    int rc = broker_config_input_load_text(in, text, strlen(text), "test.properties", &err);
    if (rc != 0)
        fail_msg("load failed (%d): %s", rc, err.text);
}

/* Resolves text loaded as a properties file into config. */
static void config_from_text(const char *text, struct broker_config *config)
{
    struct broker_config_input in;
    broker_config_input_init(&in, NULL);
    load_ok(&in, text);
    resolve_ok(&in, config);
    broker_config_input_deinit(&in);
}

/* Resolution of a properties text must fail naming both needles. */
static void text_fails(const char *text, const char *needle1, const char *needle2)
{
    struct broker_config_input in;
    broker_config_input_init(&in, NULL);
    load_ok(&in, text);
    resolve_fails(&in, needle1, needle2);
    broker_config_input_deinit(&in);
}

/* Parses a NULL-terminated argument list (program name first). */
static int parse_args(struct broker_config_input *in, enum broker_cli_action *action,
                      struct broker_config_error *err, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    va_start(ap, err);
    for (char *a = va_arg(ap, char *); a != NULL; a = va_arg(ap, char *)) {
        assert_true(argc < (int)(sizeof(argv) / sizeof(argv[0])));
        argv[argc++] = a;
    }
    va_end(ap);
    return broker_config_parse_args(in, argc, argv, action, err);
}

/* Writes text to a new temporary file; the caller unlinks and frees the returned path. */
static char *temp_file(const char *text)
{
    const char *dir = getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp";
    char *path = xmalloc(strlen(dir) + 64);
    sprintf(path, "%s/chronik-config-XXXXXX", dir);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

/* ---- the table ----------------------------------------------------------------------------- */

static void test_table_is_consistent(void **state)
{
    (void)state;
    for (int i = 0; i < BROKER_KEY_COUNT; i++) {
        const struct broker_config_key *k = &broker_config_keys[i];
        assert_non_null(k->name);
        assert_ptr_equal(broker_config_key_find(k->name), k);
        assert_true(k->type == BROKER_CONFIG_BOOLEAN || k->type == BROKER_CONFIG_STRING ||
                    k->type == BROKER_CONFIG_INT || k->type == BROKER_CONFIG_LONG);
        assert_true(k->min <= k->max || k->type == BROKER_CONFIG_BOOLEAN);
        if (k->type == BROKER_CONFIG_INT) {
            assert_true(k->min >= INT32_MIN);
            assert_true(k->max <= INT32_MAX);
        }
        assert_true(strlen(k->doc) > 10 && k->doc[strlen(k->doc) - 1] == '.');
        /* A synonym follows its canonical key or another synonym of it. */
        enum broker_config_key_id c = k->synonym_of;
        assert_true(c <= (enum broker_config_key_id)i);
        assert_int_equal(broker_config_keys[c].synonym_of, c);
        for (int j = (int)c; j <= i; j++)
            assert_int_equal(broker_config_keys[j].synonym_of, c);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(broker_config_keys[j].name, k->name);
    }
    assert_null(broker_config_key_find("no.such.key"));
    assert_null(broker_config_key_find("NODE.ID"));
    assert_null(broker_config_key_find(""));
}

/* Defaults come from the table's text; they must equal the constants in base/limits.h. */
static void test_defaults(void **state)
{
    (void)state;
    struct broker_config_input in;
    struct broker_config c;
    broker_config_input_init(&in, NULL);
    resolve_ok(&in, &c);
    assert_int_equal(c.node_id, 1);
    assert_string_equal(c.log_dir, "./data");
    assert_string_equal(c.listener.host, "127.0.0.1");
    assert_int_equal(c.listener.port, 9092);
    assert_string_equal(c.advertised.host, "127.0.0.1");
    assert_int_equal(c.advertised.port, 9092);
    assert_int_equal(c.num_partitions, 1);
    assert_int_equal(c.default_replication_factor, 0); /* not set: min(3, brokers) */
    assert_int_equal(c.min_insync_replicas, 1);
    assert_true(c.auto_create_topics_enable);
    assert_int_equal(c.log_segment_bytes, LOG_SEGMENT_BYTES_DEFAULT);
    assert_int_equal(c.log_roll_ms, LOG_ROLL_MS_DEFAULT);
    assert_int_equal(c.log_retention_ms, LOG_RETENTION_MS_DEFAULT);
    assert_int_equal(c.log_retention_bytes, LOG_RETENTION_BYTES_DEFAULT);
    assert_int_equal(c.message_max_bytes, BROKER_MESSAGE_BYTES_DEFAULT);
    assert_int_equal(c.socket_request_max_bytes, NET_FRAME_BYTES_MAX_DEFAULT);
    assert_int_equal(c.connections_max_idle_ms, NET_IDLE_MS_DEFAULT);
    assert_int_equal(c.http_port, 9092 + BROKER_HTTP_PORT_OFFSET);
    assert_int_equal(c.cluster_port, 9092 + BROKER_CLUSTER_PORT_OFFSET);

    /* Printing the defaults gives back each table default text. */
    char value[BROKER_CONFIG_VALUE_BYTES_MAX];
    for (int i = 0; i < BROKER_KEY_COUNT; i++) {
        const struct broker_config_key *k = &broker_config_keys[i];
        if (k->synonym_of != (enum broker_config_key_id)i || k->default_value == NULL)
            continue;
        broker_config_value(&c, (enum broker_config_key_id)i, value, sizeof(value));
        assert_string_equal(value, k->default_value);
    }
    broker_config_input_deinit(&in);
}

/* ---- properties syntax --------------------------------------------------------------------- */

static void test_properties_separators_and_comments(void **state)
{
    (void)state;
    struct broker_config c;
    config_from_text("# a comment\n"
                     "! another comment, with = and : inside\n"
                     "   \t\n"
                     "\n"
                     "node.id = 4\n"
                     "num.partitions:7\n"
                     "log.dirs /var/lib/chronik   \n"
                     "  \tmin.insync.replicas\t=\t2\n"
                     "default.replication.factor  :  3\n"
                     "   # an indented comment\n"
                     "log.segment.bytes=65536",
                     &c);
    assert_int_equal(c.node_id, 4);
    assert_int_equal(c.num_partitions, 7);
    assert_string_equal(c.log_dir, "/var/lib/chronik");
    assert_int_equal(c.min_insync_replicas, 2);
    assert_int_equal(c.default_replication_factor, 3);
    assert_int_equal(c.log_segment_bytes, 65536);

    /* After '=' only blanks are skipped: a second '=' belongs to the value. */
    config_from_text("log.dirs==x\n", &c);
    assert_string_equal(c.log_dir, "=x");
    config_from_text("log.dirs = :x\n", &c);
    assert_string_equal(c.log_dir, ":x");
    /* Without '=' or ':' the first separator met after blanks is skipped. */
    config_from_text("log.dirs   :   x:y\n", &c);
    assert_string_equal(c.log_dir, "x:y");
    /* Later lines win over earlier ones. */
    config_from_text("node.id=1\nnode.id=2\nnode.id=3\n", &c);
    assert_int_equal(c.node_id, 3);
}

static void test_properties_line_endings(void **state)
{
    (void)state;
    struct broker_config c;
    config_from_text("node.id=4\r\nnum.partitions=5\rmin.insync.replicas=3\n\r\n\rlog.dirs=/d", &c);
    assert_int_equal(c.node_id, 4);
    assert_int_equal(c.num_partitions, 5);
    assert_int_equal(c.min_insync_replicas, 3);
    assert_string_equal(c.log_dir, "/d");
}

static void test_properties_continuations(void **state)
{
    (void)state;
    struct broker_config c;
    /* Leading blanks of a continuation line are dropped. */
    config_from_text("log.retention.bytes=\\\n    12\\\n\t34\nnode.id=9\n", &c);
    assert_int_equal(c.log_retention_bytes, 1234);
    assert_int_equal(c.node_id, 9);
    /* Continuations across CRLF and CR. */
    config_from_text("log.dirs=/a\\\r\n  /b\\\r  /c\r\n", &c);
    assert_string_equal(c.log_dir, "/a/b/c");
    /* An even number of backslashes is an escaped backslash, not a continuation. */
    config_from_text("log.dirs=C:\\\\\nnode.id=3\n", &c);
    assert_string_equal(c.log_dir, "C:\\");
    assert_int_equal(c.node_id, 3);
    /* Three backslashes: an escaped backslash, then a continuation. */
    config_from_text("log.dirs=C:\\\\\\\n  x\n", &c);
    assert_string_equal(c.log_dir, "C:\\x");
    /* A comment never continues. */
    config_from_text("# comment \\\nnode.id=8\n", &c);
    assert_int_equal(c.node_id, 8);
    /* A continuation line starting with '#' is data, not a comment. */
    config_from_text("log.dirs=/a\\\n  #b\n", &c);
    assert_string_equal(c.log_dir, "/a#b");
    /* A continuation at the end of the text joins nothing. */
    config_from_text("node.id=4\\", &c);
    assert_int_equal(c.node_id, 4);
    /* A key may be continued too. */
    config_from_text("node.\\\n  id=6\n", &c);
    assert_int_equal(c.node_id, 6);
    /* Line numbers in messages count natural lines. */
    text_fails("node.id=1\nlog.dirs=a\\\n b\n\nnum.partitions=x\n", "test.properties line 5",
               "num.partitions");
}

static void test_properties_escapes_and_whitespace(void **state)
{
    (void)state;
    struct broker_config c;
    config_from_text("log.dirs=/tmp/a\\ b\\\\c\\u00e9\\t\\=\\:\\#\\!\\z\n", &c);
    assert_string_equal(c.log_dir, "/tmp/a b\\c\xc3\xa9\t=:#!z");
    /* Unescaped trailing blanks are trimmed (as Kafka trims values); escaped ones stay. */
    config_from_text("log.dirs=  /x   \t\n", &c);
    assert_string_equal(c.log_dir, "/x");
    config_from_text("log.dirs=\\ /x\\ \\t  \n", &c);
    assert_string_equal(c.log_dir, " /x \t");
    /* A surrogate pair written as two escapes becomes one four-byte UTF-8 character. */
    config_from_text("log.dirs=/\\uD83D\\uDE00\\u20AC\n", &c);
    assert_string_equal(c.log_dir, "/\xf0\x9f\x98\x80\xe2\x82\xac");
    /* An escaped '=' belongs to the key, so this key is unknown and warned about. */
    char *warnings = NULL;
    size_t warnings_len = 0;
    FILE *warn = open_memstream(&warnings, &warnings_len);
    assert_non_null(warn);
    struct broker_config_input in;
    broker_config_input_init(&in, warn);
    load_ok(&in, "node\\=id=3\n");
    resolve_ok(&in, &c);
    assert_int_equal(c.node_id, 1);
    broker_config_input_deinit(&in);
    fclose(warn);
    assert_contains(warnings, "'node=id'");
    free(warnings);
}

static void test_properties_empty_values(void **state)
{
    (void)state;
    struct broker_config_input in;
    struct broker_config c;
    broker_config_input_init(&in, NULL);
    load_ok(&in, "advertised.listeners=\nlog.retention.ms:\nhttp.port\nlog.dir =   \n");
    /* The raw settings are recorded as empty... */
    assert_string_equal(in.settings[BROKER_KEY_ADVERTISED_LISTENERS].value, "");
    assert_string_equal(in.settings[BROKER_KEY_HTTP_PORT].value, "");
    assert_int_equal(in.settings[BROKER_KEY_LOG_DIR].line, 4);
    /* ...and an empty value leaves a key with no fixed default unset. */
    resolve_ok(&in, &c);
    assert_int_equal(c.advertised.port, 9092);
    assert_int_equal(c.log_retention_ms, LOG_RETENTION_MS_DEFAULT);
    assert_int_equal(c.http_port, 10092);
    assert_string_equal(c.log_dir, "./data");
    broker_config_input_deinit(&in);
    /* A key with a fixed default must not be empty. */
    text_fails("num.partitions=\n", "num.partitions", "''");
    text_fails("log.dirs=\n", "log.dirs", "directory");
    text_fails("listeners=\n", "listeners", "PLAINTEXT://");
    text_fails("auto.create.topics.enable=\n", "auto.create.topics.enable", "true or false");
}

static void test_properties_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "log.dirs=\\u12\n",          "log.dirs=\\uZZZZ\n",  "log.dirs=\\u0000\n",
        "log.dirs=\\uD800\n",        "log.dirs=\\uDC00x\n", "log.dirs=\\uD800\\u0041\n",
        "node.id=1\nlog.dirs=\\u\n", "log.dirs=\\uD83D\\",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct broker_config_input in;
        struct broker_config_error err = {{0}};
        broker_config_input_init(&in, NULL);
        int rc = broker_config_input_load_text(&in, bad[i], strlen(bad[i]), "bad.properties", &err);
        if (rc != ERR_CORRUPT)
            fail_msg("'%s' loaded with %d", bad[i], rc);
        assert_contains(err.text, "bad.properties line");
        assert_contains(err.text, "\\uXXXX");
        broker_config_input_deinit(&in);
    }

    struct broker_config_input in;
    struct broker_config_error err = {{0}};
    broker_config_input_init(&in, NULL);
    assert_int_equal(broker_config_input_load_text(&in, "node.id=1\0x", 11, "nul.properties", &err),
                     ERR_CORRUPT);
    assert_contains(err.text, "NUL");
    broker_config_input_deinit(&in);

    char *big = xmalloc(BROKER_CONFIG_FILE_BYTES_MAX + 2);
    memset(big, '#', BROKER_CONFIG_FILE_BYTES_MAX + 1);
    big[BROKER_CONFIG_FILE_BYTES_MAX + 1] = '\0';
    broker_config_input_init(&in, NULL);
    assert_int_equal(broker_config_input_load_text(&in, big, BROKER_CONFIG_FILE_BYTES_MAX + 1,
                                                   "big.properties", &err),
                     ERR_TOO_LARGE);
    assert_contains(err.text, "big.properties");
    broker_config_input_deinit(&in);
    /* Exactly at the bound is fine: all of it is one comment. */
    broker_config_input_init(&in, NULL);
    assert_int_equal(broker_config_input_load_text(&in, big, BROKER_CONFIG_FILE_BYTES_MAX,
                                                   "big.properties", &err),
                     0);
    broker_config_input_deinit(&in);
    free(big);

    /* A value too long to be any key's value is refused when recorded, naming the key. */
    char *long_value = xmalloc(BROKER_CONFIG_VALUE_BYTES_MAX + 16);
    strcpy(long_value, "log.dirs=");
    memset(long_value + 9, 'a', BROKER_CONFIG_VALUE_BYTES_MAX);
    long_value[9 + BROKER_CONFIG_VALUE_BYTES_MAX] = '\0';
    broker_config_input_init(&in, NULL);
    assert_int_equal(
        broker_config_input_load_text(&in, long_value, strlen(long_value), "long.properties", &err),
        ERR_TOO_LARGE);
    assert_contains(err.text, "log.dirs");
    assert_contains(err.text, "long.properties line 1");
    broker_config_input_deinit(&in);
    free(long_value);
}

static void test_unknown_keys_warn(void **state)
{
    (void)state;
    char *warnings = NULL;
    size_t warnings_len = 0;
    FILE *warn = open_memstream(&warnings, &warnings_len);
    assert_non_null(warn);
    struct broker_config_input in;
    struct broker_config c;
    struct broker_config_error err;
    enum broker_cli_action action;
    broker_config_input_init(&in, warn);
    load_ok(&in, "node.id=2\nbogus.key=1\nzookeeper.connect=localhost:2181\n");
    assert_int_equal(
        parse_args(&in, &action, &err, "chronik", "--set", "log.flush.interval.ms=1", NULL), 0);
    resolve_ok(&in, &c);
    assert_int_equal(c.node_id, 2);
    broker_config_input_deinit(&in);
    fclose(warn);
    assert_contains(warnings,
                    "unknown configuration key 'bogus.key' (from test.properties line 2)");
    assert_contains(warnings, "'zookeeper.connect' (from test.properties line 3)");
    assert_contains(warnings, "'log.flush.interval.ms' (from --set)");
    free(warnings);
}

/* ---- sources and precedence ---------------------------------------------------------------- */

static void test_precedence_of_sources(void **state)
{
    (void)state;
    char *path = temp_file("node.id=5\nlog.dirs=/file\nnum.partitions=2\nmin.insync.replicas=2\n"
                           "default.replication.factor=3\n");
    struct broker_config_input in;
    struct broker_config_error err = {{0}};
    struct broker_config c;
    enum broker_cli_action action;
    broker_config_input_init(&in, NULL);
    /* Flags and --set come before --config on purpose: the source decides, not the order. */
    int rc = parse_args(&in, &action, &err, "chronik", "--node-id", "7", "--set",
                        "default.replication.factor=2", "--data-dir", "/flag", "--config", path,
                        "--set", "node.id=6", "--set", " log.dirs = /set ", "--set",
                        "num.partitions=3", "--set", "num.partitions=4", NULL);
    if (rc != 0)
        fail_msg("parse_args: %s", err.text);
    assert_int_equal(action, BROKER_CLI_RUN);
    resolve_ok(&in, &c);
    assert_int_equal(c.node_id, 7);                    /* flag over --set over file */
    assert_string_equal(c.log_dir, "/flag");           /* flag over --set over file */
    assert_int_equal(c.num_partitions, 4);             /* the last --set of a key */
    assert_int_equal(c.default_replication_factor, 2); /* --set over file */
    assert_int_equal(c.min_insync_replicas, 2);        /* file over default */
    assert_int_equal(c.log_segment_bytes, LOG_SEGMENT_BYTES_DEFAULT);
    assert_int_equal(in.settings[BROKER_KEY_LOG_DIRS].source, BROKER_CONFIG_SOURCE_FLAG);
    assert_int_equal(in.settings[BROKER_KEY_NUM_PARTITIONS].source, BROKER_CONFIG_SOURCE_SET);
    assert_int_equal(in.settings[BROKER_KEY_MIN_INSYNC_REPLICAS].source, BROKER_CONFIG_SOURCE_FILE);
    broker_config_input_deinit(&in);

    /* An earlier source never overwrites a later one, whatever the call order. */
    broker_config_input_init(&in, NULL);
    set_ok(&in, BROKER_CONFIG_SOURCE_FLAG, "node.id", "9");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "node.id", "8");
    set_ok(&in, BROKER_CONFIG_SOURCE_FILE, "node.id", "7");
    resolve_ok(&in, &c);
    assert_int_equal(c.node_id, 9);
    broker_config_input_deinit(&in);

    /* Errors name the source: file line, --set or the flag. */
    broker_config_input_init(&in, NULL);
    rc = parse_args(&in, &action, &err, "chronik", "--config", path, "--node-id", "x", NULL);
    assert_int_equal(rc, 0);
    resolve_fails(&in, "'x' for node.id (from --node-id)", "from 0 to 2147483647");
    broker_config_input_deinit(&in);
    broker_config_input_init(&in, NULL);
    rc = parse_args(&in, &action, &err, "chronik", "--config", path, "--set", "num.partitions=0",
                    NULL);
    assert_int_equal(rc, 0);
    resolve_fails(&in, "'0' for num.partitions (from --set)", "from 1 to 10000");
    broker_config_input_deinit(&in);
    unlink(path);
    free(path);

    path = temp_file("\n\nnum.partitions=zero\n");
    broker_config_input_init(&in, NULL);
    rc = parse_args(&in, &action, &err, "chronik", "--config", path, NULL);
    assert_int_equal(rc, 0);
    resolve_fails(&in, "'zero' for num.partitions (from ", " line 3)");
    resolve_fails(&in, path, NULL);
    broker_config_input_deinit(&in);
    unlink(path);
    free(path);
}

static void test_retention_precedence(void **state)
{
    (void)state;
    struct broker_config c;
    const int64_t hour = 3600 * 1000;
    config_from_text("log.retention.hours=2\n", &c);
    assert_int_equal(c.log_retention_ms, 2 * hour);
    config_from_text("log.retention.hours=2\nlog.retention.minutes=5\n", &c);
    assert_int_equal(c.log_retention_ms, 5 * 60 * 1000);
    /* Within one source ms wins whatever the line order. */
    config_from_text("log.retention.ms=7\nlog.retention.hours=2\nlog.retention.minutes=5\n", &c);
    assert_int_equal(c.log_retention_ms, 7);
    config_from_text("log.retention.minutes=-1\nlog.retention.hours=2\n", &c);
    assert_int_equal(c.log_retention_ms, -1);
    config_from_text("log.retention.hours=-1\n", &c);
    assert_int_equal(c.log_retention_ms, -1);
    config_from_text("log.retention.ms=0\n", &c);
    assert_int_equal(c.log_retention_ms, 0);
    config_from_text("log.retention.hours=2147483647\n", &c);
    assert_int_equal(c.log_retention_ms, 2147483647ll * hour);

    /* Across sources the later source wins, even with a lower-precedence synonym. */
    struct broker_config_input in;
    broker_config_input_init(&in, NULL);
    load_ok(&in, "log.retention.ms=7\nlog.retention.minutes=3\n");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "log.retention.hours", "2");
    resolve_ok(&in, &c);
    assert_int_equal(c.log_retention_ms, 2 * hour);
    broker_config_input_deinit(&in);

    /* An empty --set clears the file's ms; the file's minutes then apply. */
    broker_config_input_init(&in, NULL);
    load_ok(&in, "log.retention.ms=7\nlog.retention.minutes=3\n");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "log.retention.ms", "");
    resolve_ok(&in, &c);
    assert_int_equal(c.log_retention_ms, 3 * 60 * 1000);
    broker_config_input_deinit(&in);

    /* A bad synonym is an error even when a higher-precedence one is set. */
    text_fails("log.retention.ms=7\nlog.retention.hours=x\n", "log.retention.hours", "'x'");
    text_fails("log.retention.minutes=-2\n", "log.retention.minutes", "from -1 to 2147483647");
    text_fails("log.retention.ms=-5\n", "log.retention.ms", "from -1 to");
}

static void test_roll_precedence(void **state)
{
    (void)state;
    struct broker_config c;
    config_from_text("log.roll.hours=2\n", &c);
    assert_int_equal(c.log_roll_ms, 2 * 3600 * 1000);
    config_from_text("log.roll.hours=2\nlog.roll.ms=5\n", &c);
    assert_int_equal(c.log_roll_ms, 5);
    text_fails("log.roll.hours=0\n", "log.roll.hours", "from 1 to");
    text_fails("log.roll.ms=0\n", "log.roll.ms", "from 1 to");
    text_fails("log.roll.ms=-1\n", "log.roll.ms", "'-1'");
}

static void test_log_dir_synonym(void **state)
{
    (void)state;
    struct broker_config c;
    config_from_text("log.dir=/a\n", &c);
    assert_string_equal(c.log_dir, "/a");
    config_from_text("log.dirs=/b\nlog.dir=/a\n", &c);
    assert_string_equal(c.log_dir, "/b");

    struct broker_config_input in;
    broker_config_input_init(&in, NULL);
    load_ok(&in, "log.dirs=/b\n");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "log.dir", "/c");
    resolve_ok(&in, &c);
    assert_string_equal(c.log_dir, "/c");
    set_ok(&in, BROKER_CONFIG_SOURCE_FLAG, "log.dirs", "/flag");
    resolve_ok(&in, &c);
    assert_string_equal(c.log_dir, "/flag");
    broker_config_input_deinit(&in);

    text_fails("log.dirs=/a,/b\n", "log.dirs", "one directory");
    text_fails("log.dir=/a,/b\n", "log.dir", "one path");
}

/* ---- every key's bad values ---------------------------------------------------------------- */

/* Checks that value for key resolves (ok) or fails naming the key and the value. */
static void check_key_value(const char *key, const char *value, bool ok)
{
    struct broker_config_input in;
    struct broker_config c;
    broker_config_input_init(&in, NULL);
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, key, value);
    if (ok) {
        resolve_ok(&in, &c);
    } else {
        char quoted[128];
        snprintf(quoted, sizeof(quoted), "'%s' for %s (from --set)", value, key);
        resolve_fails(&in, quoted, NULL);
    }
    broker_config_input_deinit(&in);
}

static const char *const compression_names[] = {"producer", "uncompressed", "gzip",
                                                "snappy",   "lz4",          "zstd"};

static void test_every_key_rejects_bad_values(void **state)
{
    (void)state;
    static const char *const not_numbers[] = {"abc", "1.5", "0x10", "1e3", "12abc", "1 2",
                                              "--1", "+",   "-",    " 1",  "1_000"};
    char text[64];
    for (int i = 0; i < BROKER_KEY_COUNT; i++) {
        const struct broker_config_key *k = &broker_config_keys[i];
        switch (k->type) {
        case BROKER_CONFIG_INT:
        case BROKER_CONFIG_LONG:
            for (size_t j = 0; j < sizeof(not_numbers) / sizeof(not_numbers[0]); j++)
                check_key_value(k->name, not_numbers[j], false);
            if (k->default_value != NULL)
                check_key_value(k->name, "", false);
            snprintf(text, sizeof(text), "%" PRId64, k->min);
            check_key_value(k->name, text, true);
            snprintf(text, sizeof(text), "%" PRId64, k->max);
            check_key_value(k->name, text, true);
            snprintf(text, sizeof(text), "%" PRId64, k->min - 1);
            check_key_value(k->name, text, false);
            if (k->max < INT64_MAX)
                snprintf(text, sizeof(text), "%" PRId64, k->max + 1);
            else
                snprintf(text, sizeof(text), "9223372036854775808");
            check_key_value(k->name, text, false);
            check_key_value(k->name, "99999999999999999999999", false);
            break;
        case BROKER_CONFIG_BOOLEAN:
            check_key_value(k->name, "yes", false);
            check_key_value(k->name, "1", false);
            check_key_value(k->name, "truee", false);
            check_key_value(k->name, "", false);
            check_key_value(k->name, "TRUE", true);
            check_key_value(k->name, "False", true);
            break;
        case BROKER_CONFIG_STRING: {
            /* One byte over the key's bound; the meaning of each string key is tested below. */
            size_t n = (size_t)k->max + 1;
            char *long_value = xmalloc(n + 1);
            memset(long_value, 'a', n);
            long_value[n] = '\0';
            struct broker_config_input in;
            struct broker_config_error err = {{0}};
            broker_config_input_init(&in, NULL);
            int rc = broker_config_input_set(&in, BROKER_CONFIG_SOURCE_SET, k->name, long_value, 0,
                                             NULL, &err);
            if (rc == 0)
                resolve_fails(&in, k->name, "expected at most");
            else
                assert_contains(err.text, k->name);
            broker_config_input_deinit(&in);
            free(long_value);
            break;
        }
        }
    }
    check_key_value("auto.create.topics.enable", "false", true);
    struct broker_config c;
    config_from_text("auto.create.topics.enable=FALSE\n", &c);
    assert_false(c.auto_create_topics_enable);
    /* compression.type takes Kafka's names, in Kafka's case. */
    for (size_t i = 0; i < ARRAY_LEN(compression_names); i++)
        check_key_value("compression.type", compression_names[i], true);
    check_key_value("compression.type", "LZ4", false);
    check_key_value("compression.type", "none", false);
    check_key_value("compression.type", "", false);
    config_from_text("compression.type=zstd\n", &c);
    assert_string_equal(c.compression_type, "zstd");
}

/* ---- listeners and ports ------------------------------------------------------------------- */

static void test_listener_parsing(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *host;
        uint16_t port;
    } good[] = {
        {"PLAINTEXT://localhost:9092", "localhost", 9092},
        {"plaintext://Host-1.example_com:1", "Host-1.example_com", 1},
        {"PLAINTEXT://10.0.0.1:65535", "10.0.0.1", 65535},
        {"PLAINTEXT://[::1]:9093", "::1", 9093},
        {"PLAINTEXT://[fe80::1%eth0]:9094", "fe80::1%eth0", 9094},
        {"PLAINTEXT://[2001:db8::7]:0009095", "2001:db8::7", 9095},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct broker_config_input in;
        struct broker_config c;
        broker_config_input_init(&in, NULL);
        set_ok(&in, BROKER_CONFIG_SOURCE_SET, "listeners", good[i].text);
        set_ok(&in, BROKER_CONFIG_SOURCE_SET, "http.port", "8001");
        set_ok(&in, BROKER_CONFIG_SOURCE_SET, "cluster.port", "8002");
        resolve_ok(&in, &c);
        assert_string_equal(c.listener.host, good[i].host);
        assert_int_equal(c.listener.port, good[i].port);
        assert_string_equal(c.advertised.host, good[i].host);
        assert_int_equal(c.advertised.port, good[i].port);
        broker_config_input_deinit(&in);
    }

    char long_host[300];
    snprintf(long_host, sizeof(long_host), "PLAINTEXT://%0254d:1", 0);
    const char *const bad[] = {
        "localhost:9092",
        "SSL://localhost:9092",
        "INTERNAL://localhost:9092",
        "PLAINTEXT://a:1,PLAINTEXT://b:2",
        "PLAINTEXT://localhost",
        "PLAINTEXT://localhost:",
        "PLAINTEXT://localhost:0",
        "PLAINTEXT://localhost:65536",
        "PLAINTEXT://localhost:99999999999",
        "PLAINTEXT://localhost:abc",
        "PLAINTEXT://localhost:-1",
        "PLAINTEXT://localhost:+1",
        "PLAINTEXT://localhost:9092/",
        "PLAINTEXT://::1:9092",
        "PLAINTEXT://[::1:9092",
        "PLAINTEXT://[::1]9092",
        "PLAINTEXT://[zz::1]:9092",
        "PLAINTEXT://[]:9092",
        "PLAINTEXT://[10.0.0.1]:9092",
        "PLAINTEXT://[fe80::1%]:9092",
        "PLAINTEXT://ho st:1",
        "PLAINTEXT://a/b:1",
        "PLAINTEXT:/localhost:1",
        "://localhost:1",
        long_host,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct broker_config_input in;
        broker_config_input_init(&in, NULL);
        set_ok(&in, BROKER_CONFIG_SOURCE_SET, "listeners", bad[i]);
        resolve_fails(&in, "for listeners (from --set)", NULL);
        broker_config_input_deinit(&in);
        /* The same forms are refused for advertised.listeners. */
        broker_config_input_init(&in, NULL);
        set_ok(&in, BROKER_CONFIG_SOURCE_SET, "advertised.listeners", bad[i]);
        resolve_fails(&in, "for advertised.listeners (from --set)", NULL);
        broker_config_input_deinit(&in);
    }
    text_fails("listeners=SSL://h:1\n", "'SSL://h:1'", "PLAINTEXT");
    text_fails("listeners=PLAINTEXT://a:1,PLAINTEXT://b:2\n", "listeners", "one listener");
    text_fails("listeners=PLAINTEXT://::1:9092\n", "listeners", "brackets");
}

static void test_advertised_listener(void **state)
{
    (void)state;
    static const char *const wildcards[] = {"PLAINTEXT://:9092", "PLAINTEXT://0.0.0.0:9092",
                                            "PLAINTEXT://[::]:9092", "PLAINTEXT://[0::0]:9092"};
    for (size_t i = 0; i < sizeof(wildcards) / sizeof(wildcards[0]); i++) {
        struct broker_config_input in;
        struct broker_config c;
        /* A wildcard listener needs an explicit advertised listener... */
        broker_config_input_init(&in, NULL);
        set_ok(&in, BROKER_CONFIG_SOURCE_SET, "listeners", wildcards[i]);
        resolve_fails(&in, "advertised.listeners is not set", "every interface");
        /* ...which is used as given. */
        set_ok(&in, BROKER_CONFIG_SOURCE_SET, "advertised.listeners",
               "PLAINTEXT://broker1.example:19092");
        resolve_ok(&in, &c);
        assert_int_equal(c.listener.port, 9092);
        assert_string_equal(c.advertised.host, "broker1.example");
        assert_int_equal(c.advertised.port, 19092);
        broker_config_input_deinit(&in);
        /* A wildcard is never advertised. */
        broker_config_input_init(&in, NULL);
        set_ok(&in, BROKER_CONFIG_SOURCE_SET, "advertised.listeners", wildcards[i]);
        resolve_fails(&in, "for advertised.listeners", "wildcard");
        broker_config_input_deinit(&in);
    }

    /* --port moves the listener; an explicit advertised listener stays as given. */
    struct broker_config_input in;
    struct broker_config c;
    broker_config_input_init(&in, NULL);
    set_ok(&in, BROKER_CONFIG_SOURCE_FILE, "advertised.listeners", "PLAINTEXT://public:9000");
    struct broker_config_error err = {{0}};
    enum broker_cli_action action;
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--port", "19092", NULL), 0);
    resolve_ok(&in, &c);
    assert_int_equal(c.listener.port, 19092);
    assert_string_equal(c.advertised.host, "public");
    assert_int_equal(c.advertised.port, 9000);
    broker_config_input_deinit(&in);
}

static void test_port_derivation(void **state)
{
    (void)state;
    struct broker_config_input in;
    struct broker_config_error err = {{0}};
    struct broker_config c;
    enum broker_cli_action action;

    broker_config_input_init(&in, NULL);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--port=19092", NULL), 0);
    resolve_ok(&in, &c);
    assert_string_equal(c.listener.host, "127.0.0.1");
    assert_int_equal(c.listener.port, 19092);
    assert_int_equal(c.advertised.port, 19092);
    assert_int_equal(c.http_port, 20092);
    assert_int_equal(c.cluster_port, 21092);
    broker_config_input_deinit(&in);

    /* Explicit ports win over derived ones; the other one is still derived. */
    broker_config_input_init(&in, NULL);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--port", "19092", "--set",
                                "http.port=8080", NULL),
                     0);
    resolve_ok(&in, &c);
    assert_int_equal(c.http_port, 8080);
    assert_int_equal(c.cluster_port, 21092);
    broker_config_input_deinit(&in);

    /* The listener port comes from listeners when --port is absent. */
    config_from_text("listeners=PLAINTEXT://10.1.2.3:7000\ncluster.port=7777\n", &c);
    assert_int_equal(c.http_port, 8000);
    assert_int_equal(c.cluster_port, 7777);

    /* --port keeps the host of listeners when listeners is set. */
    broker_config_input_init(&in, NULL);
    load_ok(&in, "listeners=PLAINTEXT://10.1.2.3:9000\n");
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--port", "9100", NULL), 0);
    resolve_ok(&in, &c);
    assert_string_equal(c.listener.host, "10.1.2.3");
    assert_int_equal(c.listener.port, 9100);
    assert_string_equal(c.advertised.host, "10.1.2.3");
    assert_int_equal(c.advertised.port, 9100);
    assert_int_equal(c.http_port, 10100);
    broker_config_input_deinit(&in);

    /* A derived port over 65535 is an error naming the key to set... */
    broker_config_input_init(&in, NULL);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--port", "63600", NULL), 0);
    resolve_fails(&in, "cluster.port is not set", "65600");
    /* ...and setting it resolves the problem. */
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "cluster.port", "63000");
    resolve_ok(&in, &c);
    assert_int_equal(c.http_port, 64600);
    broker_config_input_deinit(&in);
    broker_config_input_init(&in, NULL);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--port", "65000", NULL), 0);
    resolve_fails(&in, "http.port is not set", "66000");
    broker_config_input_deinit(&in);

    /* Ports must differ. */
    text_fails("http.port=9092\n", "must all differ", NULL);
    text_fails("cluster.port=10092\n", "must all differ", NULL);
    text_fails("listeners=PLAINTEXT://h:7000\ncluster.port=7000\n", "must all differ", NULL);

    /* Bad --port values name the flag. */
    static const char *const bad_ports[] = {"0", "65536", "abc", "", "-1", "+80", "80x"};
    for (size_t i = 0; i < sizeof(bad_ports) / sizeof(bad_ports[0]); i++) {
        broker_config_input_init(&in, NULL);
        assert_int_equal(parse_args(&in, &action, &err, "chronik", "--port", bad_ports[i], NULL),
                         0);
        resolve_fails(&in, "for --port", "from 1 to 65535");
        broker_config_input_deinit(&in);
    }
}

/* ---- command line -------------------------------------------------------------------------- */

static void test_args_actions(void **state)
{
    (void)state;
    struct broker_config_input in;
    struct broker_config_error err = {{0}};
    enum broker_cli_action action;

    broker_config_input_init(&in, NULL);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", NULL), 0);
    assert_int_equal(action, BROKER_CLI_RUN);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--print-config", NULL), 0);
    assert_int_equal(action, BROKER_CLI_PRINT_CONFIG);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--version", NULL), 0);
    assert_int_equal(action, BROKER_CLI_VERSION);
    /* --help stops parsing: what follows it is not looked at. */
    assert_int_equal(
        parse_args(&in, &action, &err, "chronik", "--print-config", "--help", "--bogus", NULL), 0);
    assert_int_equal(action, BROKER_CLI_HELP);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "-h", NULL), 0);
    assert_int_equal(action, BROKER_CLI_HELP);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--data-dir=/x", "--node-id=4",
                                "--set=num.partitions=6", NULL),
                     0);
    struct broker_config c;
    resolve_ok(&in, &c);
    assert_string_equal(c.log_dir, "/x");
    assert_int_equal(c.node_id, 4);
    assert_int_equal(c.num_partitions, 6);
    broker_config_input_deinit(&in);
}

static void test_args_errors(void **state)
{
    (void)state;
    static const struct {
        const char *args[4];
        const char *needle;
    } cases[] = {
        {{"--bogus"}, "unknown option '--bogus'"},
        {{"-x"}, "unknown option '-x'"},
        {{"stray"}, "unexpected argument 'stray'"},
        {{"--set"}, "--set needs a value"},
        {{"--config"}, "--config needs a value"},
        {{"--port"}, "--port needs a value"},
        {{"--set", "novalue"}, "KEY=VALUE, got 'novalue'"},
        {{"--set", " =3"}, "empty key"},
        {{"--print-config=yes"}, "--print-config takes no value"},
        {{"--help=1"}, "--help takes no value"},
        {{"--config", "/nonexistent/chronik.properties"},
         "cannot read config file /nonexistent/chronik.properties: No such file"},
        {{"--config", "/"}, "cannot read config file /: Is a directory"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct broker_config_input in;
        struct broker_config_error err = {{0}};
        enum broker_cli_action action;
        char *argv[6] = {"chronik"};
        int argc = 1;
        for (int j = 0; j < 4 && cases[i].args[j] != NULL; j++)
            argv[argc++] = (char *)cases[i].args[j];
        broker_config_input_init(&in, NULL);
        int rc = broker_config_parse_args(&in, argc, argv, &action, &err);
        if (rc >= 0)
            fail_msg("case %zu ('%s') parsed", i, cases[i].needle);
        assert_contains(err.text, cases[i].needle);
        broker_config_input_deinit(&in);
    }

    /* One --config only. */
    char *path = temp_file("node.id=2\n");
    struct broker_config_input in;
    struct broker_config_error err = {{0}};
    enum broker_cli_action action;
    broker_config_input_init(&in, NULL);
    assert_int_equal(
        parse_args(&in, &action, &err, "chronik", "--config", path, "--config", path, NULL),
        ERR_INVALID);
    assert_contains(err.text, "--config given more than once");
    broker_config_input_deinit(&in);
    unlink(path);
    free(path);
}

/* ---- output -------------------------------------------------------------------------------- */

/* Formats config, loads the text back and checks the same configuration comes out. */
static void check_round_trip(const struct broker_config *a)
{
    struct buf text_a;
    struct buf text_b;
    struct broker_config b;
    buf_init(&text_a);
    buf_init(&text_b);
    broker_config_format(a, &text_a);
    struct broker_config_input in;
    struct broker_config_error err = {{0}};
    broker_config_input_init(&in, NULL);
    int rc =
        broker_config_input_load_text(&in, (const char *)text_a.data, text_a.len, "printed", &err);
    if (rc != 0)
        fail_msg("reloading printed config failed: %s\n%.*s", err.text, (int)text_a.len,
                 (const char *)text_a.data);
    resolve_ok(&in, &b);
    broker_config_format(&b, &text_b);
    assert_string_equal(a->log_dir, b.log_dir);
    assert_string_equal(a->listener.host, b.listener.host);
    assert_string_equal(a->advertised.host, b.advertised.host);
    assert_int_equal(a->log_retention_ms, b.log_retention_ms);
    assert_int_equal(a->log_roll_ms, b.log_roll_ms);
    assert_int_equal(a->http_port, b.http_port);
    assert_int_equal(text_a.len, text_b.len);
    assert_memory_equal(text_a.data, text_b.data, text_a.len);
    broker_config_input_deinit(&in);
    buf_deinit(&text_a);
    buf_deinit(&text_b);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    struct broker_config_input in;
    struct broker_config c;
    broker_config_input_init(&in, NULL);
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "log.dirs", "  /a b\\c\t#!=: x\n\r\f  ");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "listeners", "PLAINTEXT://[::1]:7000");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "log.retention.minutes", "3");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "auto.create.topics.enable", "FALSE");
    resolve_ok(&in, &c);
    assert_string_equal(c.log_dir, "  /a b\\c\t#!=: x\n\r\f  ");
    check_round_trip(&c);

    struct buf out;
    buf_init(&out);
    broker_config_format(&c, &out);
    buf_put_u8(&out, 0);
    assert_contains((const char *)out.data, "\nlog.dirs=\\ \\ /a b\\\\c\\t#!=: x\\n\\r\\f\\ \\ \n");
    assert_contains((const char *)out.data, "\nlisteners=PLAINTEXT://[::1]:7000\n");
    assert_contains((const char *)out.data, "\nlog.retention.ms=180000\n");
    assert_contains((const char *)out.data, "\nauto.create.topics.enable=false\n");
    assert_contains((const char *)out.data, "\nhttp.port=8000\n");
    /* Synonyms are not printed: the canonical key carries the value. */
    assert_null(strstr((const char *)out.data, "log.retention.minutes"));
    assert_null(strstr((const char *)out.data, "log.dir="));
    buf_deinit(&out);
    broker_config_input_deinit(&in);
}

static void random_text(struct rng *r, char *out, size_t len, const char *alphabet)
{
    size_t n = strlen(alphabet);
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[rng_below(r, n)];
    out[len] = '\0';
}

static void random_listener(struct rng *r, char *out, size_t out_bytes, uint16_t port)
{
    char host[64];
    uint8_t addr[16];
    switch (rng_below(r, 3)) {
    case 0:
        random_text(r, host, 1 + rng_below(r, 20), "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-._");
        snprintf(out, out_bytes, "PLAINTEXT://%s:%u", host, port);
        break;
    case 1:
        rng_fill(r, addr, 4);
        addr[0] |= 1; /* never the wildcard */
        inet_ntop(AF_INET, addr, host, sizeof(host));
        snprintf(out, out_bytes, "PLAINTEXT://%s:%u", host, port);
        break;
    default:
        rng_fill(r, addr, 16);
        addr[0] |= 1;
        inet_ntop(AF_INET6, addr, host, sizeof(host));
        snprintf(out, out_bytes, "PLAINTEXT://[%s]:%u", host, port);
        break;
    }
}

/* A valid voter list of 1 to BROKER_VOTERS_MAX entries: distinct ids and distinct addresses
 * (entry i has port i + 1), written with blanks around some entries. */
static void random_voters(struct rng *r, char *out, size_t out_bytes)
{
    uint32_t count = 1 + (uint32_t)rng_below(r, BROKER_VOTERS_MAX);
    int32_t ids[BROKER_VOTERS_MAX];
    size_t used = 0;
    for (uint32_t i = 0; i < count; i++) {
        bool fresh = false;
        while (!fresh) {
            ids[i] = (int32_t)rng_range(r, 0, BROKER_NODE_ID_MAX);
            fresh = true;
            for (uint32_t j = 0; j < i; j++)
                fresh = fresh && ids[j] != ids[i];
        }
        char listener[BROKER_LISTENER_BYTES_MAX];
        random_listener(r, listener, sizeof(listener), (uint16_t)(i + 1));
        int n = snprintf(out + used, out_bytes - used, "%s%s%d@%s", i > 0 ? "," : "",
                         rng_chance(r, 1, 4) ? " " : "", (int)ids[i],
                         listener + strlen("PLAINTEXT://"));
        assert_true(n > 0 && (size_t)n < out_bytes - used);
        used += (size_t)n;
    }
}

/* Random valid settings of every key resolve, print and load back to the same configuration;
 * random bytes fed to the loader never crash it. */
static void test_random_round_trip(void **state)
{
    (void)state;
    struct rng r;
    rng_seed(&r, test_seed);
    char value[BROKER_CONFIG_VALUE_BYTES_MAX];
    for (int iter = 0; iter < 300; iter++) {
        struct broker_config_input in;
        struct broker_config c;
        broker_config_input_init(&in, NULL);
        for (int i = 0; i < BROKER_KEY_COUNT; i++) {
            const struct broker_config_key *k = &broker_config_keys[i];
            if (rng_chance(&r, 1, 3))
                continue;
            switch (k->type) {
            case BROKER_CONFIG_INT:
            case BROKER_CONFIG_LONG:
                /* Unsigned arithmetic: max - min may not fit an int64_t. */
                snprintf(value, sizeof(value), "%" PRId64,
                         (int64_t)(rng_range(&r, 0, (uint64_t)k->max - (uint64_t)k->min) +
                                   (uint64_t)k->min));
                break;
            case BROKER_CONFIG_BOOLEAN:
                snprintf(value, sizeof(value), "%s", rng_chance(&r, 1, 2) ? "True" : "false");
                break;
            case BROKER_CONFIG_STRING:
                if (k->synonym_of == BROKER_KEY_LOG_DIRS)
                    random_text(&r, value, 1 + rng_below(&r, 100),
                                " \t\n\r\f\\#!=:/abc\xc3\xa9.-_");
                else if (k->synonym_of == BROKER_KEY_COMPRESSION_TYPE)
                    snprintf(value, sizeof(value), "%s",
                             compression_names[rng_below(&r, ARRAY_LEN(compression_names))]);
                else if (k->synonym_of == BROKER_KEY_CONTROLLER_QUORUM_VOTERS)
                    random_voters(&r, value, sizeof(value));
                else if (k->synonym_of == BROKER_KEY_BROKER_RACK)
                    random_text(&r, value, 1 + rng_below(&r, 30), "abcXYZ019 -_./");
                else
                    random_listener(&r, value, sizeof(value),
                                    (uint16_t)rng_range(&r, 1, BROKER_PORT_MAX));
                break;
            }
            set_ok(&in, rng_chance(&r, 1, 2) ? BROKER_CONFIG_SOURCE_FILE : BROKER_CONFIG_SOURCE_SET,
                   k->name, value);
        }
        /* Ports chosen at random may collide or overflow; keep the draws that resolve. */
        struct broker_config_error err;
        if (broker_config_resolve(&in, &c, &err) == 0)
            check_round_trip(&c);
        else
            assert_true(strstr(err.text, "port") != NULL);
        broker_config_input_deinit(&in);

        uint8_t garbage[256];
        size_t n = rng_below(&r, sizeof(garbage));
        rng_fill(&r, garbage, n);
        for (size_t i = 0; i < n; i++) {
            static const char pieces[] = "=:\\ \n\r#!u";
            if (rng_chance(&r, 1, 2))
                garbage[i] = (uint8_t)pieces[rng_below(&r, sizeof(pieces) - 1)];
        }
        broker_config_input_init(&in, NULL);
        if (broker_config_input_load_text(&in, (const char *)garbage, n, "garbage", &err) == 0)
            (void)broker_config_resolve(&in, &c, &err);
        broker_config_input_deinit(&in);
    }
}

/* Every way a controller.quorum.voters value can be wrong has its own message; valid lists
 * parse to their ids, hosts and ports in order. */
static void test_voters_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint32_t count; /* 0: refused */
        const char *needle;
    } cases[] = {
        {"1@127.0.0.1:11092", 1, NULL},
        {"1@127.0.0.1:11092,2@127.0.0.1:11093,3@127.0.0.1:11094", 3, NULL},
        {" 1@a:1 , 2@b:1\t", 2, NULL},
        {"0@[::1]:5,2147483647@[fe80::1%eth0]:6", 2, NULL},
        {"1@h:1,2@h:2,3@h:3,4@h:4,5@h:5,6@h:6,7@h:7", 7, NULL},
        {"1@h:1,2@H:2", 2, NULL},
        {",", 0, "entry 1 is empty"},
        {" ", 0, "entry 1 is empty"},
        {"1@a:1,", 0, "entry 2 is empty"},
        {"1@a:1,,2@b:2", 0, "entry 2 is empty"},
        {"1@a:1, ,2@b:2", 0, "entry 2 is empty"},
        {"a:1", 0, "entry 1 'a:1' is not ID@HOST:PORT"},
        {"1@a:1,2", 0, "entry 2 '2' is not ID@HOST:PORT"},
        {"x@a:1", 0, "the node id 'x' is not an integer"},
        {"@a:1", 0, "the node id '' is not an integer"},
        {"-1@a:1", 0, "the node id '-1' is not an integer"},
        {"+1@a:1", 0, "the node id '+1' is not an integer"},
        {"2147483648@a:1", 0, "the node id '2147483648' is not an integer from 0 to 2147483647"},
        {"1 @a:1", 0, "the node id '1 ' is not an integer"},
        {"1@a", 0, "entry 1 (node 1): expected HOST:PORT"},
        {"1@a:0", 0, "the port must be a number from 1 to 65535"},
        {"1@a:65536", 0, "the port must be a number from 1 to 65535"},
        {"1@a:x", 0, "the port must be a number"},
        {"1@:5", 0, "not a wildcard address"},
        {"1@0.0.0.0:5", 0, "not a wildcard address"},
        {"1@[::]:5", 0, "not a wildcard address"},
        {"1@::1:5", 0, "an IPv6 host must be in brackets"},
        {"1@[::1:5", 0, "closing ']'"},
        {"1@a b:5", 0, "a host may hold only"},
        {"1@a@b:5", 0, "a host may hold only"},
        {"1@a:1,1@b:2", 0, "node id 1 appears twice"},
        {"1@a:1,2@b:2,1@c:3", 0, "node id 1 appears twice"},
        {"1@a:1,2@a:1", 0, "nodes 1 and 2 have the same address a:1"},
        {"1@a:1,2@A:1", 0, "nodes 1 and 2 have the same address A:1"},
        {"1@[::1]:1,2@[::1]:1", 0, "nodes 1 and 2 have the same address [::1]:1"},
        {"1@h:1,2@h:2,3@h:3,4@h:4,5@h:5,6@h:6,7@h:7,8@h:8", 0, "more than 7 voters"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct broker_voters v;
        char why[256] = "";
        int rc = broker_voters_parse(cases[i].text, &v, why, sizeof(why));
        if (cases[i].count == 0) {
            if (rc != ERR_INVALID)
                fail_msg("'%s' was accepted", cases[i].text);
            assert_contains(why, cases[i].needle);
            continue;
        }
        if (rc != 0)
            fail_msg("'%s' refused: %s", cases[i].text, why);
        assert_int_equal(v.count, cases[i].count);
    }
    struct broker_voters v;
    char why[256];
    assert_int_equal(
        broker_voters_parse("3@node-3.example:11094, 1@[::1]:11092", &v, why, sizeof(why)), 0);
    assert_int_equal(v.voters[0].id, 3);
    assert_string_equal(v.voters[0].addr.host, "node-3.example");
    assert_int_equal(v.voters[0].addr.port, 11094);
    assert_int_equal(v.voters[1].id, 1);
    assert_string_equal(v.voters[1].addr.host, "::1");
    assert_int_equal(v.voters[1].addr.port, 11092);
    assert_ptr_equal(broker_voters_find(&v, 1), &v.voters[1]);
    assert_null(broker_voters_find(&v, 2));
}

/* The voter list against this node: standalone, voter, observer, and an entry for this node
 * with another address than its own cluster address (refused, saying which). */
static void test_voters_role(void **state)
{
    (void)state;
    struct broker_config c;
    config_from_text("node.id=4\nlisteners=PLAINTEXT://127.0.0.1:9095\n", &c);
    assert_true(c.standalone);
    assert_int_equal(c.role, BROKER_ROLE_VOTER);
    assert_int_equal(c.voters.count, 1);
    assert_int_equal(c.voters.voters[0].id, 4);
    assert_string_equal(c.voters.voters[0].addr.host, "127.0.0.1");
    assert_int_equal(c.voters.voters[0].addr.port, 11095);

    /* An empty value is no value: standalone too, and printed as empty. */
    config_from_text("controller.quorum.voters=\n", &c);
    assert_true(c.standalone);
    assert_int_equal(c.voters.count, 1);

    static const char voters[] = "controller.quorum.voters=1@127.0.0.1:11092,2@127.0.0.1:11093,"
                                 "3@127.0.0.1:11094\n";
    char text[512];
    snprintf(text, sizeof(text), "node.id=2\nlisteners=PLAINTEXT://127.0.0.1:9093\n%s", voters);
    config_from_text(text, &c);
    assert_false(c.standalone);
    assert_int_equal(c.role, BROKER_ROLE_VOTER);
    assert_int_equal(c.voters.count, 3);
    snprintf(text, sizeof(text), "node.id=4\nlisteners=PLAINTEXT://127.0.0.1:9095\n%s", voters);
    config_from_text(text, &c);
    assert_int_equal(c.role, BROKER_ROLE_OBSERVER);
    assert_int_equal(c.voters.count, 3);

    /* A wildcard listener: the entry names the advertised host (or the listener's, were it
     * not a wildcard). */
    config_from_text("node.id=1\nlisteners=PLAINTEXT://0.0.0.0:9092\n"
                     "advertised.listeners=PLAINTEXT://node1.example:9092\n"
                     "controller.quorum.voters=1@node1.example:11092,2@node2.example:11092\n",
                     &c);
    assert_int_equal(c.role, BROKER_ROLE_VOTER);
    config_from_text("node.id=1\nlisteners=PLAINTEXT://10.0.0.1:9092\n"
                     "advertised.listeners=PLAINTEXT://node1.example:9092\n"
                     "controller.quorum.voters=1@10.0.0.1:11092\n",
                     &c);
    assert_int_equal(c.role, BROKER_ROLE_VOTER);

    struct broker_config_input in;
    broker_config_input_init(&in, NULL);
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "node.id", "2");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "controller.quorum.voters",
           "1@127.0.0.1:11092,2@127.0.0.1:11092");
    resolve_fails(&in, "controller.quorum.voters", "same address 127.0.0.1:11092");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "controller.quorum.voters",
           "1@127.0.0.1:11093,2@127.0.0.1:11094");
    resolve_fails(&in, "names this node (node.id 2) at 127.0.0.1:11094",
                  "cluster port is 11092 (from the Kafka port + 2000, as cluster.port is not set)");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "cluster.port", "12000");
    resolve_fails(&in, "cluster port is 12000 (from cluster.port)", "set cluster.port=11094");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "controller.quorum.voters",
           "1@127.0.0.1:11093,2@127.0.0.2:12000");
    resolve_fails(&in, "names this node (node.id 2) at 127.0.0.2:12000",
                  "its cluster address is 127.0.0.1:12000");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "controller.quorum.voters",
           "1@127.0.0.1:11093,2@localhost:12000");
    resolve_fails(&in, "at localhost:12000", "make the entry say 127.0.0.1:12000");
    set_ok(&in, BROKER_CONFIG_SOURCE_SET, "controller.quorum.voters",
           "1@127.0.0.1:11093,2@127.0.0.1:12000");
    resolve_ok(&in, &c);
    assert_int_equal(c.role, BROKER_ROLE_VOTER);
    broker_config_input_deinit(&in);
}

/* broker.rack: any text but control characters, printed back as given. */
static void test_rack(void **state)
{
    (void)state;
    struct broker_config c;
    config_from_text("broker.rack=eu-west-1a\n", &c);
    assert_string_equal(c.rack, "eu-west-1a");
    config_from_text("", &c);
    assert_string_equal(c.rack, "");
    check_key_value("broker.rack", "a\x01b", false);
    check_key_value("broker.rack", "rack 7", true);
}

static void test_describe(void **state)
{
    (void)state;
    struct broker_config_input in;
    struct broker_config_error err = {{0}};
    struct broker_config c;
    enum broker_cli_action action;
    char line[BROKER_CONFIG_DESCRIBE_BYTES_MAX];
    broker_config_input_init(&in, NULL);
    assert_int_equal(parse_args(&in, &action, &err, "chronik", "--node-id", "3", "--port", "19092",
                                "--data-dir", "/d", NULL),
                     0);
    resolve_ok(&in, &c);
    broker_config_describe(&c, line, sizeof(line));
    assert_string_equal(line, "chronik node 3: kafka PLAINTEXT://127.0.0.1:19092 (advertised as "
                              "127.0.0.1:19092), http 127.0.0.1:20092, cluster "
                              "127.0.0.1:21092, data dir /d");
    broker_config_input_deinit(&in);

    config_from_text("listeners=PLAINTEXT://[::1]:9092\n", &c);
    broker_config_describe(&c, line, sizeof(line));
    assert_contains(line, "kafka PLAINTEXT://[::1]:9092");
    assert_contains(line, "http [::1]:10092, cluster [::1]:11092");
}

/* ---- docs ---------------------------------------------------------------------------------- */

static char *read_docs(void)
{
    FILE *f = fopen(CHRONIK_DOCS_CONFIGURATION, "rb");
    if (f == NULL)
        fail_msg("cannot open %s: %s", CHRONIK_DOCS_CONFIGURATION, strerror(errno));
    char *text = xmalloc(1024 * 1024);
    size_t n = fread(text, 1, 1024 * 1024 - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* The row documenting key: the line starting with "| `key` |", or NULL. */
static const char *docs_row(const char *docs, const char *key, size_t *row_len)
{
    char start[128];
    snprintf(start, sizeof(start), "\n| `%s` |", key);
    const char *row = strstr(docs, start);
    if (row == NULL)
        return NULL;
    row++;
    const char *end = strchr(row, '\n');
    *row_len = end != NULL ? (size_t)(end - row) : strlen(row);
    return row;
}

static void test_docs_list_every_key(void **state)
{
    (void)state;
    char *docs = read_docs();
    for (int i = 0; i < BROKER_KEY_COUNT; i++) {
        const struct broker_config_key *k = &broker_config_keys[i];
        size_t row_len = 0;
        const char *row = docs_row(docs, k->name, &row_len);
        if (row == NULL)
            fail_msg("docs/configuration.md has no row '| `%s` |'", k->name);
        if (k->default_value == NULL)
            continue;
        char expected[128];
        snprintf(expected, sizeof(expected), "`%s`", k->default_value);
        char *copy = xmalloc(row_len + 1);
        memcpy(copy, row, row_len);
        copy[row_len] = '\0';
        if (strstr(copy, expected) == NULL)
            fail_msg("docs row of %s lacks its default %s: %s", k->name, expected, copy);
        free(copy);
    }
    /* Every key row in the docs is a key of the table: no stale keys. */
    for (const char *p = strstr(docs, "\n| `"); p != NULL; p = strstr(p + 1, "\n| `")) {
        const char *name = p + 4;
        const char *end = strchr(name, '`');
        assert_non_null(end);
        char key[128];
        size_t n = (size_t)(end - name);
        assert_true(n < sizeof(key));
        memcpy(key, name, n);
        key[n] = '\0';
        if (broker_config_key_find(key) == NULL)
            fail_msg("docs/configuration.md documents '%s', which is not a key", key);
    }
    free(docs);
}

int main(void)
{
    const char *seed_env = getenv("CHRONIK_TEST_SEED");
    test_seed = seed_env != NULL ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
    printf("test_config: seed %" PRIu64 " (replay with CHRONIK_TEST_SEED=%" PRIu64 ")\n", test_seed,
           test_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_properties_separators_and_comments),
        cmocka_unit_test(test_properties_line_endings),
        cmocka_unit_test(test_properties_continuations),
        cmocka_unit_test(test_properties_escapes_and_whitespace),
        cmocka_unit_test(test_properties_empty_values),
        cmocka_unit_test(test_properties_malformed),
        cmocka_unit_test(test_unknown_keys_warn),
        cmocka_unit_test(test_precedence_of_sources),
        cmocka_unit_test(test_retention_precedence),
        cmocka_unit_test(test_roll_precedence),
        cmocka_unit_test(test_log_dir_synonym),
        cmocka_unit_test(test_every_key_rejects_bad_values),
        cmocka_unit_test(test_listener_parsing),
        cmocka_unit_test(test_advertised_listener),
        cmocka_unit_test(test_port_derivation),
        cmocka_unit_test(test_args_actions),
        cmocka_unit_test(test_args_errors),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_random_round_trip),
        cmocka_unit_test(test_voters_parse),
        cmocka_unit_test(test_voters_role),
        cmocka_unit_test(test_rack),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_docs_list_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
