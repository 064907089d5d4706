/*
 * Command-line parsing for chronik-bench (see opts.h).
 *
 * Each option is one row of a table that says which modes accept it, so an option that would
 * be silently ignored in a mode (--acks when only consuming, --group when only producing) is
 * an error instead. It never prints and never allocates.
 */
#include "opts.h"

#include "payload.h"

#include "base/assert.h"
#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TOPIC_DEFAULT        "chronik-bench"
#define BROKERS_DEFAULT      "127.0.0.1:9092"
#define RECORD_BYTES_DEFAULT 1024u
#define MESSAGES_DEFAULT     1000000u
#define TOPIC_BYTES_MAX      249u /* Kafka's limit on a topic name */

const char bench_usage_text[] =
    "Usage: chronik-bench MODE [OPTIONS]\n"
    "\n"
    "Measures a Kafka-compatible broker with librdkafka.\n"
    "\n"
    "Modes:\n"
    "  produce   send records; latency is send to delivery report\n"
    "  consume   read the topic; latency is end to end when records carry a send timestamp\n"
    "  e2e       produce and consume at once; latency is send timestamp to consumption\n"
    "\n"
    "Options:\n"
    "  --brokers LIST          bootstrap servers (default " BROKERS_DEFAULT ")\n"
    "  --topic NAME            topic (default " TOPIC_DEFAULT ")\n"
    "  --messages N            stop after N messages (produce and e2e default: 1000000;\n"
    "                          consume default: everything up to the end of each partition)\n"
    "  --duration S            stop after S seconds (with --messages: whichever comes first)\n"
    "  --record-size BYTES     value size (default 1024; e2e needs at least 24)\n"
    "  --acks 0|1|all          producer acks (default all)\n"
    "  --compression CODEC     none, gzip, snappy, lz4 or zstd (default none)\n"
    "  --partitions N          create the topic with N partitions when it is missing; fail when\n"
    "                          it exists with fewer\n"
    "  --replication-factor N  replication factor of a created topic (default: the broker's)\n"
    "  --linger-ms MS          producer linger.ms (default: librdkafka's)\n"
    "  --batch-size BYTES      producer batch.size (default: librdkafka's)\n"
    "  --rate MSG/S            target send rate; 0 is as fast as possible (default 0)\n"
    "  --warmup S              also report the send latency of the records sent after the\n"
    "                          first S seconds alone (the steady state)\n"
    "  --group ID              consume through consumer group ID with periodic commits\n"
    "                          instead of assign()\n"
    "  --commit-interval-ms MS commit period in group mode (default 1000)\n"
    "  --timeout-ms MS         the consumer gives up after MS without a message (default 10000)\n"
    "  --payload random|zeros  value bytes (default random)\n"
    "  --json                  print the summary as one JSON line\n"
    "  --client-stats FILE     write librdkafka's statistics to FILE, a JSON line a second\n"
    "                          from each client (its own queue time, round trips, ...)\n"
    "  -X KEY=VALUE            set a librdkafka property; wins over the options above\n"
    "  -h, --help              print this help and exit\n"
    "\n"
    "Progress goes to stderr every second, the summary to stdout. Exit status: 0 when every\n"
    "message was delivered and everything expected was consumed, 1 otherwise, 2 for a bad\n"
    "command line.\n";

enum opt_id {
    OPT_BROKERS,
    OPT_TOPIC,
    OPT_MESSAGES,
    OPT_DURATION,
    OPT_RECORD_SIZE,
    OPT_ACKS,
    OPT_COMPRESSION,
    OPT_PARTITIONS,
    OPT_REPLICATION,
    OPT_LINGER,
    OPT_BATCH,
    OPT_RATE,
    OPT_WARMUP,
    OPT_GROUP,
    OPT_COMMIT,
    OPT_TIMEOUT,
    OPT_PAYLOAD,
    OPT_JSON,
    OPT_CLIENT_STATS,
    OPT_COUNT,
};

STATIC_ASSERT(OPT_COUNT <= 32, "options seen are kept in a uint32_t");

#define M_PRODUCE (1u << BENCH_MODE_PRODUCE)
#define M_CONSUME (1u << BENCH_MODE_CONSUME)
#define M_E2E     (1u << BENCH_MODE_E2E)
#define M_ALL     (M_PRODUCE | M_CONSUME | M_E2E)
#define M_SENDS   (M_PRODUCE | M_E2E)
#define M_READS   (M_CONSUME | M_E2E)

struct opt_def {
    const char *name;
    enum opt_id id;
    bool takes_value;
    unsigned modes; /* M_* bits of the modes that accept it */
};

static const struct opt_def opt_defs[] = {
    {"--brokers", OPT_BROKERS, true, M_ALL},
    {"--topic", OPT_TOPIC, true, M_ALL},
    {"--messages", OPT_MESSAGES, true, M_ALL},
    {"--duration", OPT_DURATION, true, M_ALL},
    {"--record-size", OPT_RECORD_SIZE, true, M_SENDS},
    {"--acks", OPT_ACKS, true, M_SENDS},
    {"--compression", OPT_COMPRESSION, true, M_SENDS},
    {"--partitions", OPT_PARTITIONS, true, M_ALL},
    {"--replication-factor", OPT_REPLICATION, true, M_SENDS},
    {"--linger-ms", OPT_LINGER, true, M_SENDS},
    {"--batch-size", OPT_BATCH, true, M_SENDS},
    {"--rate", OPT_RATE, true, M_SENDS},
    {"--warmup", OPT_WARMUP, true, M_SENDS},
    {"--group", OPT_GROUP, true, M_READS},
    {"--commit-interval-ms", OPT_COMMIT, true, M_READS},
    {"--timeout-ms", OPT_TIMEOUT, true, M_READS},
    {"--payload", OPT_PAYLOAD, true, M_SENDS},
    {"--json", OPT_JSON, false, M_ALL},
    {"--client-stats", OPT_CLIENT_STATS, true, M_ALL},
};

static const char *const mode_names[] = {
    [BENCH_MODE_PRODUCE] = "produce",
    [BENCH_MODE_CONSUME] = "consume",
    [BENCH_MODE_E2E] = "e2e",
};

static const char *const acks_names[] = {"0", "1", "all"};
static const char *const codec_names[] = {"none", "gzip", "snappy", "lz4", "zstd"};

const char *bench_mode_name(enum bench_mode mode)
{
    ASSERT((size_t)mode < ARRAY_LEN(mode_names));
    return mode_names[mode];
}

int bench_fail(char *err, size_t err_bytes, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_bytes, fmt, ap);
    va_end(ap);
    return ERR_INVALID;
}

/* Strict decimal: digits only, no sign, no spaces, within [min, max]. */
static int parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    ASSERT(min <= max);
    if (*text == '\0')
        return ERR_INVALID;
    uint64_t v = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return ERR_INVALID;
        uint64_t digit = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10u)
            return ERR_INVALID;
        v = v * 10u + digit;
    }
    if (v < min || v > max)
        return ERR_INVALID;
    *out = v;
    return 0;
}

/* The entry of names equal to text (static storage), or NULL. */
static const char *pick(const char *text, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(text, names[i]) == 0)
            return names[i];
    return NULL;
}

/* Kafka's rule: 1 to 249 of [a-zA-Z0-9._-], and neither "." nor "..". */
static bool topic_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > TOPIC_BYTES_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static void set_defaults(struct bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->brokers = BROKERS_DEFAULT;
    o->topic = TOPIC_DEFAULT;
    o->record_bytes = RECORD_BYTES_DEFAULT;
    o->acks = "all";
    o->compression = "none";
    o->replication = -1;
    o->linger_ms = -1;
    o->batch_bytes = -1;
    o->commit_ms = BENCH_COMMIT_MS_DEFAULT;
    o->idle_timeout_ms = BENCH_IDLE_MS_DEFAULT;
    o->payload = BENCH_PAYLOAD_RANDOM;
}

static int add_setting(struct bench_opts *o, const char *pair, char *err, size_t err_bytes)
{
    const char *eq = strchr(pair, '=');
    if (eq == NULL || eq == pair)
        return bench_fail(err, err_bytes, "-X wants KEY=VALUE, got '%s'", pair);
    size_t key_len = (size_t)(eq - pair);
    if (key_len >= BENCH_CLIENT_KEY_BYTES_MAX)
        return bench_fail(err, err_bytes, "-X key longer than %u bytes",
                          BENCH_CLIENT_KEY_BYTES_MAX - 1);
    if (o->settings_count == BENCH_CLIENT_SETTINGS_MAX)
        return bench_fail(err, err_bytes, "more than %u -X settings", BENCH_CLIENT_SETTINGS_MAX);
    struct bench_setting *s = &o->settings[o->settings_count++];
    memcpy(s->key, pair, key_len);
    s->key[key_len] = '\0';
    s->value = eq + 1;
    return 0;
}

/* A number option: parse_u64 within [min, max], with a message naming the option. */
static int number(const struct opt_def *d, const char *value, uint64_t min, uint64_t max,
                  uint64_t *out, char *err, size_t err_bytes)
{
    if (parse_u64(value, min, max, out) < 0)
        return bench_fail(err, err_bytes, "%s wants a whole number from %llu to %llu, got '%s'",
                          d->name, (unsigned long long)min, (unsigned long long)max, value);
    return 0;
}

static int apply_choice(const struct opt_def *d, const char *value, struct bench_opts *o, char *err,
                        size_t err_bytes)
{
    const char *picked = NULL;
    switch (d->id) {
    case OPT_ACKS:
        picked = pick(strcmp(value, "-1") == 0 ? "all" : value, acks_names, ARRAY_LEN(acks_names));
        o->acks = picked;
        break;
    case OPT_COMPRESSION:
        picked = pick(value, codec_names, ARRAY_LEN(codec_names));
        o->compression = picked;
        break;
    case OPT_PAYLOAD:
        picked = strcmp(value, "random") == 0 || strcmp(value, "zeros") == 0 ? value : NULL;
        o->payload = strcmp(value, "zeros") == 0 ? BENCH_PAYLOAD_ZEROS : BENCH_PAYLOAD_RANDOM;
        break;
    default:
        UNREACHABLE();
    }
    if (picked == NULL)
        return bench_fail(err, err_bytes, "%s does not accept '%s' (see --help)", d->name, value);
    return 0;
}

static int apply_text(const struct opt_def *d, const char *value, struct bench_opts *o, char *err,
                      size_t err_bytes)
{
    switch (d->id) {
    case OPT_BROKERS:
        if (*value == '\0')
            return bench_fail(err, err_bytes, "--brokers is empty");
        o->brokers = value;
        return 0;
    case OPT_TOPIC:
        if (!topic_valid(value))
            return bench_fail(
                err, err_bytes,
                "--topic '%s' is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -)", value);
        o->topic = value;
        return 0;
    case OPT_GROUP:
        if (*value == '\0')
            return bench_fail(err, err_bytes, "--group is empty");
        o->group = value;
        return 0;
    case OPT_CLIENT_STATS:
        if (*value == '\0')
            return bench_fail(err, err_bytes, "--client-stats is empty");
        o->client_stats = value;
        return 0;
    default:
        return apply_choice(d, value, o, err, err_bytes);
    }
}

static int apply(const struct opt_def *d, const char *value, struct bench_opts *o, char *err,
                 size_t err_bytes)
{
    uint64_t v = 0;
    int rc = 0;
    switch (d->id) {
    case OPT_MESSAGES:
        rc = number(d, value, 1, BENCH_MESSAGES_MAX, &o->messages, err, err_bytes);
        break;
    case OPT_DURATION:
        rc = number(d, value, 1, BENCH_DURATION_S_MAX, &v, err, err_bytes);
        o->duration_ms = v * 1000u;
        break;
    case OPT_RECORD_SIZE:
        rc = number(d, value, 1, BENCH_RECORD_BYTES_MAX, &v, err, err_bytes);
        o->record_bytes = (uint32_t)v;
        break;
    case OPT_PARTITIONS:
        rc = number(d, value, 1, BENCH_PARTITIONS_MAX, &v, err, err_bytes);
        o->partitions = (uint32_t)v;
        break;
    case OPT_REPLICATION:
        rc = number(d, value, 1, BENCH_REPLICATION_MAX, &v, err, err_bytes);
        o->replication = (int32_t)v;
        break;
    case OPT_LINGER:
        rc = number(d, value, 0, BENCH_LINGER_MS_MAX, &v, err, err_bytes);
        o->linger_ms = (int64_t)v;
        break;
    case OPT_BATCH:
        rc = number(d, value, 1, BENCH_BATCH_BYTES_MAX, &v, err, err_bytes);
        o->batch_bytes = (int64_t)v;
        break;
    case OPT_RATE:
        rc = number(d, value, 0, BENCH_RATE_MAX, &o->rate_per_s, err, err_bytes);
        break;
    case OPT_WARMUP:
        rc = number(d, value, 1, BENCH_DURATION_S_MAX, &v, err, err_bytes);
        o->warmup_ms = v * 1000u;
        break;
    case OPT_COMMIT:
        rc = number(d, value, 1, BENCH_TIMEOUT_MS_MAX, &v, err, err_bytes);
        o->commit_ms = (uint32_t)v;
        break;
    case OPT_TIMEOUT:
        rc = number(d, value, 1, BENCH_TIMEOUT_MS_MAX, &v, err, err_bytes);
        o->idle_timeout_ms = (uint32_t)v;
        break;
    case OPT_JSON:
        o->json = true;
        break;
    default:
        rc = apply_text(d, value, o, err, err_bytes);
        break;
    }
    return rc;
}

static const struct opt_def *find_def(const char *name, size_t name_len)
{
    for (size_t i = 0; i < ARRAY_LEN(opt_defs); i++)
        if (strlen(opt_defs[i].name) == name_len && memcmp(opt_defs[i].name, name, name_len) == 0)
            return &opt_defs[i];
    return NULL;
}

static bool is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

/* Options may come before the mode, so which ones were seen is kept in *seen (a bit per
 * enum opt_id) and checked against the mode once it is known. */
static int parse_one(struct bench_opts *o, int argc, char *const argv[], int *i, bool *have_mode,
                     uint32_t *seen, char *err, size_t err_bytes)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "-X", 2) == 0) {
        const char *pair = arg[2] != '\0' ? arg + 2 : (*i + 1 < argc ? argv[++*i] : NULL);
        if (pair == NULL)
            return bench_fail(err, err_bytes, "-X needs KEY=VALUE");
        return add_setting(o, pair, err, err_bytes);
    }
    if (strncmp(arg, "--", 2) != 0) {
        for (size_t m = 0; m < ARRAY_LEN(mode_names); m++) {
            if (!*have_mode && strcmp(arg, mode_names[m]) == 0) {
                o->mode = (enum bench_mode)m;
                *have_mode = true;
                return 0;
            }
        }
        return bench_fail(err, err_bytes, "unexpected argument '%s' (see --help)", arg);
    }
    const char *eq = strchr(arg, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    const struct opt_def *d = find_def(arg, name_len);
    if (d == NULL)
        return bench_fail(err, err_bytes, "unknown option '%.*s' (see --help)", (int)name_len, arg);
    const char *value = "";
    if (d->takes_value) {
        value = eq != NULL ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
        if (value == NULL)
            return bench_fail(err, err_bytes, "%s needs a value", d->name);
    } else if (eq != NULL) {
        return bench_fail(err, err_bytes, "%s takes no value", d->name);
    }
    *seen |= 1u << d->id;
    return apply(d, value, o, err, err_bytes);
}

static int check_mode(const struct bench_opts *o, uint32_t seen, char *err, size_t err_bytes)
{
    for (size_t i = 0; i < ARRAY_LEN(opt_defs); i++) {
        const struct opt_def *d = &opt_defs[i];
        if ((seen & (1u << d->id)) != 0 && (d->modes & (1u << o->mode)) == 0)
            return bench_fail(err, err_bytes, "%s does not apply to mode %s", d->name,
                              bench_mode_name(o->mode));
    }
    if (o->mode == BENCH_MODE_E2E && o->record_bytes < PAYLOAD_HEADER_BYTES)
        return bench_fail(err, err_bytes,
                          "e2e needs --record-size of at least %u to carry the send time",
                          PAYLOAD_HEADER_BYTES);
    return 0;
}

int bench_opts_parse(struct bench_opts *opts, int argc, char *const argv[], char *err,
                     size_t err_bytes)
{
    ASSERT(opts != NULL && argv != NULL);
    ASSERT(err != NULL && err_bytes > 0);
    set_defaults(opts);
    err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            opts->help = true;
            return 0;
        }
    }
    bool have_mode = false;
    uint32_t seen = 0;
    for (int i = 1; i < argc; i++) {
        int rc = parse_one(opts, argc, argv, &i, &have_mode, &seen, err, err_bytes);
        if (rc < 0)
            return rc;
    }
    if (!have_mode)
        return bench_fail(err, err_bytes, "no mode: give produce, consume or e2e (see --help)");
    if (check_mode(opts, seen, err, err_bytes) < 0)
        return ERR_INVALID;
    if (opts->mode != BENCH_MODE_CONSUME && opts->messages == 0 && opts->duration_ms == 0)
        opts->messages = MESSAGES_DEFAULT;
    return 0;
}
