/*
 * Topic and broker configuration: the table of topic keys and its validation (see admin.h),
 * and the DescribeConfigs, AlterConfigs and IncrementalAlterConfigs handlers.
 *
 * Owns nothing long-lived: overrides live in the metadata image, which this file changes only
 * through meta_topic_config_set() and then saves; a change is in effect once the image is
 * saved, and is undone in memory when the save fails, so the image never holds what the disk
 * does not. Broker configuration is read-only at run time: DescribeConfigs reports it,
 * the Alter APIs refuse it as Kafka refuses a key that cannot change dynamically.
 *
 * Errors follow Kafka's ConfigAdminManager and ConfigurationControlManager: a resource named
 * twice, a key named twice in one resource and a null value are INVALID_REQUEST; an unknown
 * key or a bad value is INVALID_CONFIG; a change is all or nothing per resource.
 *
 * Never: trusts a stored override (each is validated again when read), or asserts on anything
 * a client sent.
 */
#include "base/assert.h"
#include "base/error.h"
#include "broker/admin.h"
#include "broker/broker_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kafka's ConfigResource.Type numbers. */
#define RESOURCE_TOPIC  2
#define RESOURCE_BROKER 4

/* ---- the topic key table --------------------------------------------------------------------- */

static const char *const cleanup_values[] = {"compact", "delete", NULL};
static const char *const cleanup_supported[] = {"delete", NULL};
static const char *const compression_values[] = {"uncompressed", "zstd",     "lz4", "snappy",
                                                 "gzip",         "producer", NULL};
static const char *const timestamp_values[] = {"CreateTime", "LogAppendTime", NULL};
static const char *const false_only[] = {"false", NULL};

const struct topic_config_key topic_config_keys[TOPIC_CONFIG_COUNT] = {
    [TOPIC_CONFIG_CLEANUP_POLICY] =
        {
            .name = "cleanup.policy",
            .type = TOPIC_CONFIG_LIST,
            .kafka_values = cleanup_values,
            .supported_values = cleanup_supported,
            .unsupported_why = " yet",
            .broker_key = TOPIC_CONFIG_NO_BROKER_KEY,
            .default_value = "delete",
            .doc = "What happens to old segments: delete removes them by retention.ms and "
                   "retention.bytes (compaction is not supported yet).",
        },
    [TOPIC_CONFIG_COMPRESSION_TYPE] =
        {
            .name = "compression.type",
            .type = TOPIC_CONFIG_STRING,
            .kafka_values = compression_values,
            .broker_key = BROKER_KEY_COMPRESSION_TYPE,
            .doc = "The codec of stored batches: producer keeps each batch as the producer "
                   "compressed it; another value makes the broker recompress batches with a "
                   "different codec.",
        },
    [TOPIC_CONFIG_MAX_MESSAGE_BYTES] =
        {
            .name = "max.message.bytes",
            .type = TOPIC_CONFIG_INT,
            .min = LOG_BATCH_HEADER_BYTES,
            .max = LOG_BATCH_BYTES_MAX,
            .broker_key = BROKER_KEY_MESSAGE_MAX_BYTES,
            .doc = "Largest record batch a produce may append to this topic, in bytes.",
        },
    [TOPIC_CONFIG_MESSAGE_TIMESTAMP_TYPE] =
        {
            .name = "message.timestamp.type",
            .type = TOPIC_CONFIG_STRING,
            .kafka_values = timestamp_values,
            .broker_key = TOPIC_CONFIG_NO_BROKER_KEY,
            .default_value = "CreateTime",
            .doc = "Whether record timestamps are the producer's (CreateTime) or the time the "
                   "broker appended them (LogAppendTime).",
        },
    [TOPIC_CONFIG_MIN_INSYNC_REPLICAS] =
        {
            .name = "min.insync.replicas",
            .type = TOPIC_CONFIG_INT,
            .min = 1,
            .max = RAFT_VOTERS_MAX,
            .broker_key = BROKER_KEY_MIN_INSYNC_REPLICAS,
            .doc = "In-sync replicas an acks=all produce needs, else NOT_ENOUGH_REPLICAS.",
        },
    [TOPIC_CONFIG_RETENTION_BYTES] =
        {
            .name = "retention.bytes",
            .type = TOPIC_CONFIG_LONG,
            .min = -1,
            .max = INT64_MAX,
            .broker_key = BROKER_KEY_LOG_RETENTION_BYTES,
            .doc = "Partition size above which the oldest closed segments are deleted; -1 sets "
                   "no limit.",
        },
    [TOPIC_CONFIG_RETENTION_MS] =
        {
            .name = "retention.ms",
            .type = TOPIC_CONFIG_LONG,
            .min = -1,
            .max = INT64_MAX,
            .broker_key = BROKER_KEY_LOG_RETENTION_MS,
            .doc = "Age in milliseconds after which closed segments are deleted; -1 keeps "
                   "them forever.",
        },
    [TOPIC_CONFIG_SEGMENT_BYTES] =
        {
            .name = "segment.bytes",
            .type = TOPIC_CONFIG_INT,
            .min = LOG_SEGMENT_BYTES_MIN,
            .max = LOG_SEGMENT_BYTES_MAX,
            .broker_key = BROKER_KEY_LOG_SEGMENT_BYTES,
            .doc = "Size at which a partition's active segment is closed and a new one begun.",
        },
    [TOPIC_CONFIG_SEGMENT_MS] =
        {
            .name = "segment.ms",
            .type = TOPIC_CONFIG_LONG,
            .min = 1,
            .max = INT64_MAX,
            .broker_key = BROKER_KEY_LOG_ROLL_MS,
            .doc = "Age in milliseconds at which a non-empty active segment is closed.",
        },
    [TOPIC_CONFIG_UNCLEAN_LEADER_ELECTION_ENABLE] =
        {
            .name = "unclean.leader.election.enable",
            .type = TOPIC_CONFIG_BOOLEAN,
            .supported_values = false_only,
            .unsupported_why = ": a leader is always elected from the in-sync replicas",
            .broker_key = TOPIC_CONFIG_NO_BROKER_KEY,
            .default_value = "false",
            .doc = "Whether an out-of-sync replica may become leader; always false.",
        },
};

int topic_config_find(const char *name, size_t len)
{
    ASSERT(name != NULL || len == 0);
    for (int i = 0; i < TOPIC_CONFIG_COUNT; i++) {
        const char *k = topic_config_keys[i].name;
        if (strlen(k) == len && memcmp(k, name, len) == 0)
            return i;
    }
    return ERR_NOT_FOUND;
}

/* Java's String.trim(): drops every byte <= ' ' at both ends. */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (unsigned char)(*s)[0] <= ' ') {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && (unsigned char)(*s)[*len - 1] <= ' ')
        (*len)--;
}

static bool in_list(const char *const *list, const char *s, size_t len)
{
    for (; *list != NULL; list++)
        if (strlen(*list) == len && memcmp(*list, s, len) == 0)
            return true;
    return false;
}

/* "a, b, c" into out, as Kafka's validators list the accepted values. */
static void join_list(const char *const *list, char *out, size_t out_bytes)
{
    size_t used = 0;
    out[0] = '\0';
    for (; *list != NULL && used < out_bytes; list++) {
        int n = snprintf(out + used, out_bytes - used, "%s%s", used > 0 ? ", " : "", *list);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static int invalid(char *why, size_t why_bytes, const struct topic_config_key *k, const char *value,
                   size_t len, const char *what)
{
    int quoted = (int)MIN(len, BROKER_ADMIN_QUOTE_BYTES_MAX);
    snprintf(why, why_bytes, "Invalid value %.*s%s for configuration %s: %s", quoted, value,
             len > BROKER_ADMIN_QUOTE_BYTES_MAX ? "..." : "", k->name, what);
    return ERR_INVALID;
}

static int unsupported(char *why, size_t why_bytes, const struct topic_config_key *k,
                       const char *item, size_t len)
{
    int quoted = (int)MIN(len, BROKER_ADMIN_QUOTE_BYTES_MAX);
    snprintf(why, why_bytes, "%s=%.*s is not supported%s", k->name, quoted, item,
             k->unsupported_why != NULL ? k->unsupported_why : "");
    return ERR_INVALID;
}

static int validate_number(const struct topic_config_key *k, const char *value, size_t len,
                           char *out, size_t out_bytes, char *why, size_t why_bytes)
{
    char text[32];
    const char *what =
        k->type == TOPIC_CONFIG_INT ? "Not a number of type INT" : "Not a number of type LONG";
    if (len == 0 || len >= sizeof(text))
        return invalid(why, why_bytes, k, value, len, what);
    memcpy(text, value, len);
    text[len] = '\0';
    /* Java's parseLong: an optional sign, then decimal digits only. */
    size_t first = text[0] == '-' || text[0] == '+' ? 1 : 0;
    if (text[first] == '\0' || strspn(text + first, "0123456789") != len - first)
        return invalid(why, why_bytes, k, value, len, what);
    errno = 0;
    long long v = strtoll(text, NULL, 10);
    if (errno == ERANGE || (k->type == TOPIC_CONFIG_INT && (v < INT32_MIN || v > INT32_MAX)))
        return invalid(why, why_bytes, k, value, len, what);
    char bound[64];
    if (v < k->min) {
        snprintf(bound, sizeof(bound), "Value must be at least %" PRId64, k->min);
        return invalid(why, why_bytes, k, value, len, bound);
    }
    if (v > k->max) {
        snprintf(bound, sizeof(bound), "Value must be no more than %" PRId64, k->max);
        return invalid(why, why_bytes, k, value, len, bound);
    }
    snprintf(out, out_bytes, "%lld", v);
    return 0;
}

static int validate_boolean(const struct topic_config_key *k, const char *value, size_t len,
                            char *out, size_t out_bytes, char *why, size_t why_bytes)
{
    const char *v = NULL;
    if (len == 4 && strncasecmp(value, "true", 4) == 0)
        v = "true";
    else if (len == 5 && strncasecmp(value, "false", 5) == 0)
        v = "false";
    else
        return invalid(why, why_bytes, k, value, len, "Expected value to be either true or false");
    if (k->supported_values != NULL && !in_list(k->supported_values, v, strlen(v)))
        return unsupported(why, why_bytes, k, v, strlen(v));
    snprintf(out, out_bytes, "%s", v);
    return 0;
}

static int validate_item(const struct topic_config_key *k, const char *value, size_t len,
                         const char *item, size_t item_len, char *why, size_t why_bytes)
{
    if (!in_list(k->kafka_values, item, item_len)) {
        char allowed[BROKER_ADMIN_MESSAGE_BYTES_MAX / 2];
        char what[BROKER_ADMIN_MESSAGE_BYTES_MAX / 2 + 32];
        join_list(k->kafka_values, allowed, sizeof(allowed));
        snprintf(what, sizeof(what), "String must be one of: %s", allowed);
        return invalid(why, why_bytes, k, value, len, what);
    }
    if (k->supported_values != NULL && !in_list(k->supported_values, item, item_len))
        return unsupported(why, why_bytes, k, item, item_len);
    return 0;
}

/* Appends item to the comma-separated list in out unless it is there already. */
static int list_add(char *out, size_t out_bytes, const char *item, size_t item_len)
{
    size_t used = strlen(out);
    const char *p = out;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if (n == item_len && memcmp(p, item, n) == 0)
            return 0;
        p += n + (p[n] == ',');
    }
    size_t need = used + (used > 0) + item_len + 1;
    if (need > out_bytes)
        return ERR_TOO_LARGE;
    if (used > 0)
        out[used++] = ',';
    memcpy(out + used, item, item_len);
    out[used + item_len] = '\0';
    return 0;
}

static int validate_list(const struct topic_config_key *k, const char *value, size_t len, char *out,
                         size_t out_bytes, char *why, size_t why_bytes)
{
    if (len == 0)
        return invalid(why, why_bytes, k, value, len, "The list must not be empty");
    out[0] = '\0';
    size_t at = 0;
    for (;;) {
        size_t n = 0;
        while (at + n < len && value[at + n] != ',')
            n++;
        const char *item = value + at;
        size_t item_len = n;
        trim(&item, &item_len);
        int rc = validate_item(k, value, len, item, item_len, why, why_bytes);
        if (rc == 0 && list_add(out, out_bytes, item, item_len) < 0)
            rc = invalid(why, why_bytes, k, value, len, "The list is too long");
        if (rc < 0)
            return rc;
        if (at + n >= len)
            return 0;
        at += n + 1;
    }
}

int topic_config_validate(enum topic_config_id id, const char *value, size_t len, char *out,
                          size_t out_bytes, char *why, size_t why_bytes)
{
    ASSERT(id < TOPIC_CONFIG_COUNT && out_bytes >= BROKER_TOPIC_VALUE_BYTES_MAX);
    ASSERT(why_bytes >= BROKER_ADMIN_MESSAGE_BYTES_MAX && (value != NULL || len == 0));
    const struct topic_config_key *k = &topic_config_keys[id];
    if (len >= META_CONFIG_VALUE_BYTES_MAX || memchr(value, '\0', len) != NULL)
        return invalid(why, why_bytes, k, value, len,
                       "Values are at most 1023 bytes and hold no NUL byte");
    trim(&value, &len);
    switch (k->type) {
    case TOPIC_CONFIG_INT:
    case TOPIC_CONFIG_LONG:
        return validate_number(k, value, len, out, out_bytes, why, why_bytes);
    case TOPIC_CONFIG_BOOLEAN:
        return validate_boolean(k, value, len, out, out_bytes, why, why_bytes);
    case TOPIC_CONFIG_STRING: {
        int rc = validate_item(k, value, len, value, len, why, why_bytes);
        if (rc == 0)
            snprintf(out, out_bytes, "%.*s", (int)len, value);
        return rc;
    }
    case TOPIC_CONFIG_LIST:
        return validate_list(k, value, len, out, out_bytes, why, why_bytes);
    }
    UNREACHABLE();
}

void topic_config_default(const struct broker_config *cfg, enum topic_config_id id, char *out,
                          size_t out_bytes)
{
    ASSERT(id < TOPIC_CONFIG_COUNT && out_bytes >= BROKER_CONFIG_VALUE_BYTES_MAX);
    const struct topic_config_key *k = &topic_config_keys[id];
    if (k->broker_key == TOPIC_CONFIG_NO_BROKER_KEY) {
        snprintf(out, out_bytes, "%s", k->default_value);
        return;
    }
    ASSERT(cfg != NULL);
    broker_config_value(cfg, (enum broker_config_key_id)k->broker_key, out, out_bytes);
}

static bool item_in(const char *list, size_t list_len, const char *item, size_t item_len)
{
    size_t at = 0;
    while (at < list_len) {
        size_t n = 0;
        while (at + n < list_len && list[at + n] != ',')
            n++;
        if (n == item_len && memcmp(list + at, item, n) == 0)
            return true;
        at += n + 1;
    }
    return false;
}

int topic_config_list_apply(const char *current, const char *operand, size_t operand_len,
                            bool append, char *out, size_t out_bytes)
{
    ASSERT(current != NULL && out != NULL && out_bytes > 0);
    ASSERT(operand != NULL || operand_len == 0);
    out[0] = '\0';
    size_t current_len = strlen(current);
    /* The current items first: all of them for APPEND, those not subtracted for SUBTRACT. */
    for (size_t at = 0; at < current_len;) {
        size_t n = strcspn(current + at, ",");
        bool keep = n > 0 && (append || !item_in(operand, operand_len, current + at, n));
        if (keep && list_add(out, out_bytes, current + at, n) < 0)
            return ERR_TOO_LARGE;
        at += n + 1;
    }
    for (size_t at = 0; append && at < operand_len;) {
        size_t n = 0;
        while (at + n < operand_len && operand[at + n] != ',')
            n++;
        if (n > 0 && list_add(out, out_bytes, operand + at, n) < 0)
            return ERR_TOO_LARGE;
        at += n + 1;
    }
    return 0;
}

void topic_config_set_load(struct topic_config_set *set, const struct meta_topic *mt)
{
    ASSERT(set != NULL);
    memset(set, 0, sizeof(*set));
    for (uint32_t i = 0; mt != NULL && i < mt->config_count; i++) {
        const struct meta_config_entry *e = &mt->configs[i];
        int id = topic_config_find(e->key, strlen(e->key));
        char why[BROKER_ADMIN_MESSAGE_BYTES_MAX];
        if (id >= 0 &&
            topic_config_validate((enum topic_config_id)id, e->value, strlen(e->value),
                                  set->values[id], sizeof(set->values[id]), why, sizeof(why)) == 0)
            set->present[id] = true;
    }
}

static const char *const op_names[] = {"SET", "DELETE", "APPEND", "SUBTRACT"};

int topic_config_set_apply(struct topic_config_set *set, const struct broker_config *cfg,
                           const char *name, size_t name_len, int8_t op, const char *value,
                           size_t value_len, char *why, size_t why_bytes)
{
    ASSERT(set != NULL && why_bytes >= BROKER_ADMIN_MESSAGE_BYTES_MAX);
    ASSERT(value != NULL || op == TOPIC_CONFIG_OP_DELETE);
    int quoted = (int)MIN(name_len, BROKER_ADMIN_QUOTE_BYTES_MAX);
    if (op < TOPIC_CONFIG_OP_SET || op > TOPIC_CONFIG_OP_SUBTRACT) {
        snprintf(why, why_bytes, "Unknown operations type %d", op);
        return KAFKA_INVALID_REQUEST;
    }
    int id = topic_config_find(name, name_len);
    if (id < 0) {
        snprintf(why, why_bytes, "Unknown topic config name: %.*s", quoted, name);
        return KAFKA_INVALID_CONFIG;
    }
    const struct topic_config_key *k = &topic_config_keys[id];
    char normal[BROKER_TOPIC_VALUE_BYTES_MAX];
    int rc = 0;
    if (op == TOPIC_CONFIG_OP_DELETE) {
        set->present[id] = false;
        return KAFKA_NONE;
    }
    if (op == TOPIC_CONFIG_OP_SET) {
        rc = topic_config_validate((enum topic_config_id)id, value, value_len, normal,
                                   sizeof(normal), why, why_bytes);
    } else if (k->type != TOPIC_CONFIG_LIST) {
        snprintf(why, why_bytes, "Can't %s to key %s because its type is not LIST.", op_names[op],
                 k->name);
        return KAFKA_INVALID_CONFIG;
    } else {
        char current[BROKER_CONFIG_VALUE_BYTES_MAX];
        char edited[META_CONFIG_VALUE_BYTES_MAX + BROKER_TOPIC_VALUE_BYTES_MAX];
        if (set->present[id])
            snprintf(current, sizeof(current), "%s", set->values[id]);
        else
            topic_config_default(cfg, (enum topic_config_id)id, current, sizeof(current));
        rc = topic_config_list_apply(current, value, value_len, op == TOPIC_CONFIG_OP_APPEND,
                                     edited, sizeof(edited));
        if (rc < 0)
            rc = invalid(why, why_bytes, k, value, value_len, "The list is too long");
        else
            rc = topic_config_validate((enum topic_config_id)id, edited, strlen(edited), normal,
                                       sizeof(normal), why, why_bytes);
    }
    if (rc < 0)
        return KAFKA_INVALID_CONFIG;
    memcpy(set->values[id], normal, sizeof(normal));
    set->present[id] = true;
    return KAFKA_NONE;
}

static int64_t effective_number(const struct broker_config *cfg, const struct topic_config_set *set,
                                enum topic_config_id id)
{
    char text[BROKER_CONFIG_VALUE_BYTES_MAX];
    if (set->present[id])
        snprintf(text, sizeof(text), "%s", set->values[id]);
    else
        topic_config_default(cfg, id, text, sizeof(text));
    return strtoll(text, NULL, 10);
}

int topic_compression_parse(const char *value)
{
    static const char *const names[] = {
        [BATCH_CODEC_NONE] = "uncompressed", [BATCH_CODEC_GZIP] = "gzip",
        [BATCH_CODEC_SNAPPY] = "snappy",     [BATCH_CODEC_LZ4] = "lz4",
        [BATCH_CODEC_ZSTD] = "zstd",
    };
    ASSERT(value != NULL);
    if (strcmp(value, "producer") == 0)
        return TOPIC_COMPRESSION_PRODUCER;
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (strcmp(value, names[i]) == 0)
            return (int)i;
    return ERR_INVALID;
}

void topic_config_resolve(const struct broker_config *cfg, const struct meta_topic *mt,
                          struct topic_config_values *out)
{
    ASSERT(cfg != NULL && out != NULL);
    struct topic_config_set set;
    topic_config_set_load(&set, mt);
    out->retention_ms = effective_number(cfg, &set, TOPIC_CONFIG_RETENTION_MS);
    out->retention_bytes = effective_number(cfg, &set, TOPIC_CONFIG_RETENTION_BYTES);
    out->segment_bytes = effective_number(cfg, &set, TOPIC_CONFIG_SEGMENT_BYTES);
    out->segment_ms = effective_number(cfg, &set, TOPIC_CONFIG_SEGMENT_MS);
    out->max_message_bytes = (int32_t)effective_number(cfg, &set, TOPIC_CONFIG_MAX_MESSAGE_BYTES);
    out->min_insync_replicas =
        (int32_t)effective_number(cfg, &set, TOPIC_CONFIG_MIN_INSYNC_REPLICAS);
    out->log_append_time =
        set.present[TOPIC_CONFIG_MESSAGE_TIMESTAMP_TYPE] &&
        strcmp(set.values[TOPIC_CONFIG_MESSAGE_TIMESTAMP_TYPE], "LogAppendTime") == 0;
    char compression[BROKER_CONFIG_VALUE_BYTES_MAX];
    if (set.present[TOPIC_CONFIG_COMPRESSION_TYPE])
        snprintf(compression, sizeof(compression), "%s", set.values[TOPIC_CONFIG_COMPRESSION_TYPE]);
    else
        topic_config_default(cfg, TOPIC_CONFIG_COMPRESSION_TYPE, compression, sizeof(compression));
    /* Both sources were validated against the same list of values. */
    out->compression = topic_compression_parse(compression);
    ASSERT(out->compression >= TOPIC_COMPRESSION_PRODUCER);
}

void broker_topic_log_config(const struct broker *b, const struct meta_topic *mt,
                             struct log_config *out)
{
    ASSERT(b != NULL && mt != NULL && out != NULL);
    *out = b->log_cfg;
    struct topic_config_set set;
    topic_config_set_load(&set, mt);
    /* Only overrides change the log's settings: without one, the broker's log configuration
     * (which may hold more than the broker keys say) stays as it is. */
    if (set.present[TOPIC_CONFIG_RETENTION_MS])
        out->retention_ms = strtoll(set.values[TOPIC_CONFIG_RETENTION_MS], NULL, 10);
    if (set.present[TOPIC_CONFIG_RETENTION_BYTES])
        out->retention_bytes = strtoll(set.values[TOPIC_CONFIG_RETENTION_BYTES], NULL, 10);
    if (set.present[TOPIC_CONFIG_SEGMENT_BYTES])
        out->segment_bytes = strtoull(set.values[TOPIC_CONFIG_SEGMENT_BYTES], NULL, 10);
    if (set.present[TOPIC_CONFIG_SEGMENT_MS])
        out->roll_ms = strtoull(set.values[TOPIC_CONFIG_SEGMENT_MS], NULL, 10);
}

/* ---- sources --------------------------------------------------------------------------------- */

void admin_broker_defaults(struct broker_config *out)
{
    struct broker_config_input input;
    struct broker_config_error err;
    broker_config_input_init(&input, NULL);
    int rc = broker_config_resolve(&input, out, &err);
    broker_config_input_deinit(&input);
    /* The table's own defaults always resolve; broker_config's tests hold that. */
    ASSERT(rc == 0);
}

enum admin_config_source admin_broker_value(const struct broker_config *cfg,
                                            const struct broker_config *defaults, int id, char *out,
                                            size_t out_bytes)
{
    ASSERT(id >= 0 && id < BROKER_KEY_COUNT && (int)broker_config_keys[id].synonym_of == id);
    char def[BROKER_CONFIG_VALUE_BYTES_MAX];
    broker_config_value(cfg, (enum broker_config_key_id)id, out, out_bytes);
    broker_config_value(defaults, (enum broker_config_key_id)id, def, sizeof(def));
    return strcmp(out, def) == 0 ? ADMIN_SOURCE_DEFAULT : ADMIN_SOURCE_STATIC_BROKER;
}

enum admin_config_source topic_config_effective(const struct broker_config *cfg,
                                                const struct broker_config *defaults,
                                                const struct topic_config_set *set,
                                                enum topic_config_id id, char *out,
                                                size_t out_bytes)
{
    ASSERT(id < TOPIC_CONFIG_COUNT && out_bytes >= BROKER_CONFIG_VALUE_BYTES_MAX);
    const struct topic_config_key *k = &topic_config_keys[id];
    if (set != NULL && set->present[id]) {
        snprintf(out, out_bytes, "%s", set->values[id]);
        return ADMIN_SOURCE_DYNAMIC_TOPIC;
    }
    if (k->broker_key == TOPIC_CONFIG_NO_BROKER_KEY) {
        snprintf(out, out_bytes, "%s", k->default_value);
        return ADMIN_SOURCE_DEFAULT;
    }
    return admin_broker_value(cfg, defaults, k->broker_key, out, out_bytes);
}

/* ---- request helpers ------------------------------------------------------------------------- */

struct proto_str admin_printf(struct arena *a, const char *fmt, ...)
{
    ASSERT(a != NULL && fmt != NULL);
    char text[BROKER_ADMIN_MESSAGE_BYTES_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    size_t len = strlen(text);
    char *copy = arena_strndup(a, text, len);
    return (struct proto_str){.ptr = copy, .len = copy != NULL ? len : 0};
}

struct keyed {
    struct slice key;
    size_t index;
};

static int key_cmp(const struct keyed *a, const struct keyed *b)
{
    size_t n = MIN(a->key.len, b->key.len);
    int c = n > 0 ? memcmp(a->key.ptr, b->key.ptr, n) : 0;
    if (c != 0)
        return c;
    return a->key.len < b->key.len ? -1 : a->key.len > b->key.len;
}

/* By key, then by position, so the first of equal keys is the earliest in the request. */
static int keyed_cmp(const void *x, const void *y)
{
    const struct keyed *a = x, *b = y;
    int c = key_cmp(a, b);
    if (c != 0)
        return c;
    return a->index < b->index ? -1 : a->index > b->index;
}

int admin_find_duplicates(struct arena *a, const struct slice *keys, size_t n, bool *dup,
                          bool *later)
{
    ASSERT(a != NULL && (n == 0 || (keys != NULL && dup != NULL)));
    struct keyed *sorted = arena_calloc(a, n, sizeof(*sorted));
    if (sorted == NULL)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        sorted[i] = (struct keyed){.key = keys[i], .index = i};
        dup[i] = false;
        if (later != NULL)
            later[i] = false;
    }
    if (n > 1)
        qsort(sorted, n, sizeof(*sorted), keyed_cmp);
    for (size_t i = 1; i < n; i++) {
        if (key_cmp(&sorted[i - 1], &sorted[i]) == 0) {
            dup[sorted[i - 1].index] = true;
            dup[sorted[i].index] = true;
            if (later != NULL)
                later[sorted[i].index] = true;
        }
    }
    return 0;
}

/* ---- DescribeConfigs ------------------------------------------------------------------------- */

typedef struct kafka_describe_configs_response_describe_configs_result describe_result;
typedef struct kafka_describe_configs_response_describe_configs_resource_result describe_entry;
typedef struct kafka_describe_configs_response_describe_configs_synonym describe_synonym;

struct describe_ctx {
    struct breq *rq;
    bool synonyms;
    bool documentation;
    const struct proto_str *filter; /* the keys asked for; NULL: all */
    size_t filter_count;
    struct broker_config defaults;
};

static bool wanted(const struct describe_ctx *c, const char *name)
{
    if (c->filter == NULL)
        return true;
    for (size_t i = 0; i < c->filter_count; i++)
        if (proto_str_eq(c->filter[i], name))
            return true;
    return false;
}

static struct proto_str arena_str(struct arena *a, const char *s, bool *failed)
{
    char *copy = arena_strndup(a, s, strlen(s));
    if (copy == NULL)
        *failed = true;
    return (struct proto_str){.ptr = copy, .len = copy != NULL ? strlen(s) : 0};
}

static void add_synonym(struct describe_ctx *c, describe_entry *e, const char *name,
                        const char *value, enum admin_config_source source, bool *failed)
{
    ASSERT(e->synonyms.count < BROKER_CONFIG_SYNONYMS_MAX);
    describe_synonym *s = &e->synonyms.items[e->synonyms.count++];
    s->name = proto_str_make(name);
    s->value = arena_str(&c->rq->arena, value, failed);
    s->source = (int8_t)source;
}

/* The broker keys a value inherits through, in Kafka's order: the key as set, then every key
 * of its synonym group at its table default. */
static void add_broker_synonyms(struct describe_ctx *c, describe_entry *e, int id,
                                const char *value, enum admin_config_source source, bool *failed)
{
    if (source == ADMIN_SOURCE_STATIC_BROKER)
        add_synonym(c, e, broker_config_keys[id].name, value, source, failed);
    for (int j = 0; j < BROKER_KEY_COUNT; j++) {
        const struct broker_config_key *k = &broker_config_keys[j];
        if ((int)k->synonym_of == id && k->default_value != NULL)
            add_synonym(c, e, k->name, k->default_value, ADMIN_SOURCE_DEFAULT, failed);
    }
}

static void fill_entry(struct describe_ctx *c, describe_entry *e, const char *name,
                       const char *value, enum admin_config_source source, bool read_only,
                       int8_t type, const char *doc, bool *failed)
{
    memset(e, 0, sizeof(*e));
    e->name = proto_str_make(name);
    e->value = arena_str(&c->rq->arena, value, failed);
    e->read_only = read_only;
    e->is_default = source == ADMIN_SOURCE_DEFAULT;
    e->config_source = (int8_t)source;
    e->is_sensitive = false;
    e->config_type = type;
    e->documentation = c->documentation ? proto_str_make(doc) : (struct proto_str){NULL, 0};
    if (!c->synonyms)
        return;
    e->synonyms.items =
        arena_calloc(&c->rq->arena, BROKER_CONFIG_SYNONYMS_MAX, sizeof(*e->synonyms.items));
    if (e->synonyms.items == NULL)
        *failed = true;
}

/* This node's resource name for dynamic broker configs: its id in decimal. */
static void node_resource(const struct broker *b, char *out, size_t out_bytes)
{
    snprintf(out, out_bytes, "%d", b->cfg->node_id);
}

/* The dynamic value of canonical key id that applies to this node and its source, or NULL. */
static const char *dynamic_value(const struct broker *b, int id, enum admin_config_source *source)
{
    char node[16];
    node_resource(b, node, sizeof(node));
    const char *name = broker_config_keys[id].name;
    const char *v = meta_broker_config_get(&b->meta, node, name);
    *source = ADMIN_SOURCE_DYNAMIC_BROKER;
    if (v == NULL) {
        v = meta_broker_config_get(&b->meta, "", name);
        *source = ADMIN_SOURCE_DYNAMIC_DEFAULT_BROKER;
    }
    return v;
}

enum admin_config_source admin_broker_key_source(const struct broker *b,
                                                 const struct broker_config *defaults, int id,
                                                 char *out, size_t out_bytes)
{
    enum admin_config_source source;
    if (!broker_config_keys[id].read_only && dynamic_value(b, id, &source) != NULL) {
        broker_config_value(b->cfg, (enum broker_config_key_id)id, out, out_bytes);
        return source;
    }
    return admin_broker_value(b->static_cfg, defaults, id, out, out_bytes);
}

static enum admin_config_source broker_key_value(const struct describe_ctx *c, int id, char *out,
                                                 size_t out_bytes)
{
    return admin_broker_key_source(c->rq->b, &c->defaults, id, out, out_bytes);
}

/* The synonyms of a broker key in Kafka's order: this node's dynamic value, the cluster-wide
 * dynamic default, then the static ones. */
static void add_all_broker_synonyms(struct describe_ctx *c, describe_entry *e, int id, bool *failed)
{
    const struct broker *b = c->rq->b;
    const char *name = broker_config_keys[id].name;
    char node[16];
    node_resource(b, node, sizeof(node));
    const char *v = meta_broker_config_get(&b->meta, node, name);
    if (v != NULL)
        add_synonym(c, e, name, v, ADMIN_SOURCE_DYNAMIC_BROKER, failed);
    v = meta_broker_config_get(&b->meta, "", name);
    if (v != NULL)
        add_synonym(c, e, name, v, ADMIN_SOURCE_DYNAMIC_DEFAULT_BROKER, failed);
    char value[BROKER_CONFIG_VALUE_BYTES_MAX];
    enum admin_config_source source =
        admin_broker_value(b->static_cfg, &c->defaults, id, value, sizeof(value));
    add_broker_synonyms(c, e, id, value, source, failed);
}

static int describe_topic(struct describe_ctx *c, const struct meta_topic *mt, describe_result *r)
{
    ASSERT(mt != NULL && r->configs.count == 0);
    struct topic_config_set set;
    topic_config_set_load(&set, mt);
    r->configs.items = arena_calloc(&c->rq->arena, TOPIC_CONFIG_COUNT, sizeof(*r->configs.items));
    if (r->configs.items == NULL)
        return ERR_TOO_LARGE;
    bool failed = false;
    for (int id = 0; id < TOPIC_CONFIG_COUNT && !failed; id++) {
        const struct topic_config_key *k = &topic_config_keys[id];
        if (!wanted(c, k->name))
            continue;
        char value[BROKER_CONFIG_VALUE_BYTES_MAX];
        enum admin_config_source source = topic_config_effective(
            c->rq->b->cfg, &c->defaults, &set, (enum topic_config_id)id, value, sizeof(value));
        if (source != ADMIN_SOURCE_DYNAMIC_TOPIC && k->broker_key != TOPIC_CONFIG_NO_BROKER_KEY)
            source = broker_key_value(c, k->broker_key, value, sizeof(value));
        describe_entry *e = &r->configs.items[r->configs.count++];
        fill_entry(c, e, k->name, value, source, false, (int8_t)k->type, k->doc, &failed);
        if (!c->synonyms || failed)
            continue;
        if (source == ADMIN_SOURCE_DYNAMIC_TOPIC)
            add_synonym(c, e, k->name, value, source, &failed);
        if (k->broker_key != TOPIC_CONFIG_NO_BROKER_KEY)
            add_all_broker_synonyms(c, e, k->broker_key, &failed);
    }
    return failed ? ERR_TOO_LARGE : 0;
}

static int describe_broker(struct describe_ctx *c, describe_result *r)
{
    ASSERT(c->rq->b->cfg != NULL && r->configs.count == 0);
    r->configs.items = arena_calloc(&c->rq->arena, BROKER_KEY_COUNT, sizeof(*r->configs.items));
    if (r->configs.items == NULL)
        return ERR_TOO_LARGE;
    bool failed = false;
    for (int id = 0; id < BROKER_KEY_COUNT && !failed; id++) {
        const struct broker_config_key *k = &broker_config_keys[id];
        /* Synonyms have no value of their own in the resolved configuration; they show up in
         * the synonyms of their canonical key. */
        if ((int)k->synonym_of != id || !wanted(c, k->name))
            continue;
        char value[BROKER_CONFIG_VALUE_BYTES_MAX];
        enum admin_config_source source = broker_key_value(c, id, value, sizeof(value));
        describe_entry *e = &r->configs.items[r->configs.count++];
        fill_entry(c, e, k->name, value, source, k->read_only, (int8_t)k->type, k->doc, &failed);
        if (c->synonyms && !failed)
            add_all_broker_synonyms(c, e, id, &failed);
    }
    return failed ? ERR_TOO_LARGE : 0;
}

/* The cluster-wide dynamic defaults that are set, as Kafka lists them for the empty name. */
static int describe_cluster_defaults(struct describe_ctx *c, describe_result *r)
{
    const struct meta_image *img = &c->rq->b->meta;
    r->configs.items =
        arena_calloc(&c->rq->arena, img->broker_config_count, sizeof(*r->configs.items));
    if (r->configs.items == NULL)
        return ERR_TOO_LARGE;
    bool failed = false;
    for (uint32_t i = 0; i < img->broker_config_count && !failed; i++) {
        const struct meta_broker_config *bc = &img->broker_configs[i];
        const struct broker_config_key *k = broker_config_key_find(bc->key);
        if (bc->resource[0] != '\0' || k == NULL || !wanted(c, k->name))
            continue;
        describe_entry *e = &r->configs.items[r->configs.count++];
        fill_entry(c, e, k->name, bc->value, ADMIN_SOURCE_DYNAMIC_DEFAULT_BROKER, false,
                   (int8_t)k->type, k->doc, &failed);
        if (c->synonyms && !failed)
            add_synonym(c, e, k->name, bc->value, ADMIN_SOURCE_DYNAMIC_DEFAULT_BROKER, &failed);
    }
    return failed ? ERR_TOO_LARGE : 0;
}

/* Kafka's resourceNameToBrokerId: the name must be this node's id, or with any_registered
 * (a change, which the controller makes for the whole cluster) a registered broker's. *why is
 * set on error. */
static int check_broker_name(struct breq *rq, struct proto_str name, bool or_empty,
                             bool any_registered, struct proto_str *why)
{
    char text[16];
    int32_t node = rq->b->cfg->node_id;
    bool digits =
        name.len > 0 && name.len < sizeof(text) && strspn(name.ptr, "-0123456789") == name.len;
    long long id = 0;
    if (digits) {
        memcpy(text, name.ptr, name.len);
        text[name.len] = '\0';
        char *end = NULL;
        errno = 0;
        id = strtoll(text, &end, 10);
        digits = errno == 0 && *end == '\0' && id >= INT32_MIN && id <= INT32_MAX;
    }
    int quoted = (int)MIN(name.len, BROKER_ADMIN_QUOTE_BYTES_MAX);
    if (!digits) {
        *why = admin_printf(&rq->arena, "Broker id must be an integer, but it is: %.*s", quoted,
                            name.ptr != NULL ? name.ptr : "");
        return KAFKA_INVALID_REQUEST;
    }
    if (id == node)
        return KAFKA_NONE;
    if (any_registered) {
        if (meta_broker_find(&rq->b->meta, (int32_t)id) != NULL)
            return KAFKA_NONE;
        *why = admin_printf(&rq->arena, "Unknown broker id %.*s: no such broker is registered",
                            quoted, name.ptr);
        return KAFKA_INVALID_REQUEST;
    }
    /* A node describes its own configuration only (admin clients send each broker's there). */
    *why = admin_printf(&rq->arena, "Unexpected broker id, expected %d%s, but received %.*s", node,
                        or_empty ? " or empty string" : "", quoted, name.ptr);
    return KAFKA_INVALID_REQUEST;
}

/* Kafka's Topic.validate, with its message, for a resource name. */
static int check_topic_name(struct breq *rq, struct proto_str name, struct proto_str *why)
{
    if (name.ptr != NULL && meta_topic_name_valid(name.ptr, name.len))
        return KAFKA_NONE;
    int quoted = (int)MIN(name.len, BROKER_ADMIN_QUOTE_BYTES_MAX);
    *why = admin_printf(&rq->arena,
                        "Topic name \"%.*s\" is illegal: it must be 1 to 249 characters of "
                        "[a-zA-Z0-9._-], and not '.' or '..'",
                        quoted, name.ptr != NULL ? name.ptr : "");
    return KAFKA_INVALID_TOPIC_EXCEPTION;
}

static int
describe_resource(struct describe_ctx *c,
                  const struct kafka_describe_configs_request_describe_configs_resource *q,
                  describe_result *r)
{
    struct breq *rq = c->rq;
    memset(r, 0, sizeof(*r));
    r->resource_type = q->resource_type;
    r->resource_name = q->resource_name;
    /* Kafka reads an empty list as a null one: every key. */
    c->filter = q->configuration_keys.count > 0 ? q->configuration_keys.items : NULL;
    c->filter_count = q->configuration_keys.count;
    if (q->resource_type == RESOURCE_TOPIC) {
        r->error_code = (int16_t)check_topic_name(rq, q->resource_name, &r->error_message);
        if (r->error_code != KAFKA_NONE)
            return 0;
        const struct meta_topic *mt =
            meta_topic_find(&rq->b->meta, q->resource_name.ptr, q->resource_name.len);
        if (mt == NULL) {
            r->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
            return 0;
        }
        return describe_topic(c, mt, r);
    }
    if (q->resource_type == RESOURCE_BROKER) {
        /* The empty name asks for the cluster-wide dynamic defaults that are set. */
        if (q->resource_name.len == 0)
            return describe_cluster_defaults(c, r);
        r->error_code =
            (int16_t)check_broker_name(rq, q->resource_name, true, false, &r->error_message);
        return r->error_code == KAFKA_NONE ? describe_broker(c, r) : 0;
    }
    r->error_code = KAFKA_INVALID_REQUEST;
    r->error_message =
        admin_printf(&rq->arena, "Unsupported resource type: %d", (int)q->resource_type);
    return 0;
}

void describe_configs_handle(struct breq *rq)
{
    const struct kafka_describe_configs_request *req = rq->body;
    struct kafka_describe_configs_response resp;
    kafka_describe_configs_response_init(&resp);
    struct describe_ctx *c = arena_calloc(&rq->arena, 1, sizeof(*c));
    size_t n = req->resources.count;
    resp.results.items = arena_calloc(&rq->arena, n, sizeof(*resp.results.items));
    int rc = c == NULL || resp.results.items == NULL ? ERR_TOO_LARGE : 0;
    if (rc == 0) {
        c->rq = rq;
        c->synonyms = rq->api_version >= 1 && req->include_synonyms;
        c->documentation = rq->api_version >= 3 && req->include_documentation;
        admin_broker_defaults(&c->defaults);
        resp.results.count = n;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = describe_resource(c, &req->resources.items[i], &resp.results.items[i]);
    if (rc < 0) {
        /* The answer does not fit the request's arena: too many resources at once. Kafka
         * would send it; we cannot, and a partial answer would be wrong. */
        breq_abort(rq);
        return;
    }
    breq_respond(rq, &resp);
}

/* ---- AlterConfigs and IncrementalAlterConfigs ------------------------------------------------ */

/* One resource of either Alter request, seen the same way. */
struct alter_item {
    struct proto_str name;
    struct proto_str value;
    int8_t op;
};

struct alter_resource {
    int8_t type;
    struct proto_str name;
    struct alter_item *items;
    size_t count;
    bool replace; /* AlterConfigs: the items become the whole override set */
};

/* Stages the topic's overrides as exactly `set` (keys the table does not know are dropped). */
static int store_overrides(struct breq *rq, const char *topic, const struct topic_config_set *set,
                           struct proto_str *why)
{
    struct meta_ctl_config cfgs[TOPIC_CONFIG_COUNT];
    uint32_t n = 0;
    for (int id = 0; id < TOPIC_CONFIG_COUNT; id++)
        if (set->present[id])
            cfgs[n++] = (struct meta_ctl_config){.key = topic_config_keys[id].name,
                                                 .value = set->values[id]};
    return broker_stage_configs(rq, META_RESOURCE_TOPIC, topic, cfgs, n, true, why);
}

/* The request-shape checks Kafka's ConfigAdminManager makes before anything else. */
static int check_shape(struct breq *rq, const struct alter_resource *res, struct proto_str *why)
{
    struct slice *names = arena_calloc(&rq->arena, res->count, sizeof(*names));
    bool *dup = arena_calloc(&rq->arena, res->count, sizeof(*dup));
    if (names == NULL || dup == NULL)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < res->count; i++)
        names[i] = slice_make(res->items[i].name.ptr, res->items[i].name.len);
    if (admin_find_duplicates(&rq->arena, names, res->count, dup, NULL) < 0)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < res->count; i++) {
        if (dup[i]) {
            *why = proto_str_make("Error due to duplicate config keys");
            return KAFKA_INVALID_REQUEST;
        }
    }
    char list[BROKER_ADMIN_MESSAGE_BYTES_MAX] = "";
    size_t used = 0;
    for (size_t i = 0; i < res->count; i++) {
        const struct alter_item *it = &res->items[i];
        if (it->value.ptr != NULL || it->op == TOPIC_CONFIG_OP_DELETE || used >= sizeof(list))
            continue;
        int n = snprintf(list + used, sizeof(list) - used, "%s%.*s", used > 0 ? ", " : "",
                         (int)MIN(it->name.len, BROKER_ADMIN_QUOTE_BYTES_MAX), it->name.ptr);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used > 0) {
        *why = admin_printf(&rq->arena, "Null value not supported for : %s", list);
        return KAFKA_INVALID_REQUEST;
    }
    return KAFKA_NONE;
}

/* The keys of res that cannot change at run time (unknown, synonyms, read-only), as Kafka lists
 * them in its refusal; "" when there is none. */
static void static_keys(const struct alter_resource *res, char *list, size_t list_bytes)
{
    size_t used = 0;
    list[0] = '\0';
    for (size_t i = 0; i < res->count && used < list_bytes; i++) {
        const struct alter_item *it = &res->items[i];
        char name[META_CONFIG_KEY_BYTES_MAX + 1];
        const struct broker_config_key *k = NULL;
        if (it->name.len < sizeof(name)) {
            memcpy(name, it->name.ptr, it->name.len);
            name[it->name.len] = '\0';
            k = broker_config_key_find(name);
        }
        if (k != NULL && !k->read_only && &broker_config_keys[k->synonym_of] == k)
            continue;
        int n = snprintf(list + used, list_bytes - used, "%s%.*s", used > 0 ? ", " : "",
                         (int)MIN(it->name.len, BROKER_ADMIN_QUOTE_BYTES_MAX), it->name.ptr);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* One change to a dynamic broker config: the key, and the new value (NULL removes it). */
struct broker_change {
    const char *key;
    char *value;
};

/* Checks every item of res and turns it into changes (replace: every other key of the resource
 * is removed). Returns a Kafka error with *why, or ERR_TOO_LARGE when the arena is full. */
static int plan_broker_changes(struct breq *rq, const struct alter_resource *res,
                               const char *resource, struct broker_change *ch, size_t *count,
                               struct proto_str *why)
{
    struct broker *b = rq->b;
    struct broker_config scratch = *b->cfg;
    size_t n = 0;
    for (size_t i = 0; i < res->count; i++) {
        const struct alter_item *it = &res->items[i];
        char name[META_CONFIG_KEY_BYTES_MAX + 1];
        memcpy(name, it->name.ptr, it->name.len);
        name[it->name.len] = '\0';
        const struct broker_config_key *k = broker_config_key_find(name);
        ASSERT(k != NULL); /* static_keys() refused the others */
        enum broker_config_key_id id = k->synonym_of;
        ch[n].key = k->name;
        ch[n].value = NULL;
        if (it->op == TOPIC_CONFIG_OP_APPEND || it->op == TOPIC_CONFIG_OP_SUBTRACT) {
            *why = admin_printf(&rq->arena, "Config value %s is not allowed for config key: %s",
                                it->op == TOPIC_CONFIG_OP_APPEND ? "append" : "subtract", k->name);
            return KAFKA_INVALID_CONFIG;
        }
        if (it->op == TOPIC_CONFIG_OP_SET) {
            char text[BROKER_CONFIG_VALUE_BYTES_MAX];
            char problem[BROKER_ADMIN_MESSAGE_BYTES_MAX];
            int quoted = (int)MIN(it->value.len, BROKER_ADMIN_QUOTE_BYTES_MAX);
            snprintf(text, sizeof(text), "%.*s", (int)MIN(it->value.len, sizeof(text) - 1),
                     it->value.ptr);
            if (it->value.len >= sizeof(text) ||
                broker_config_set_dynamic(&scratch, id, text, problem, sizeof(problem)) < 0) {
                *why = admin_printf(&rq->arena, "Invalid value %.*s for configuration %s: %s",
                                    quoted, it->value.ptr, k->name,
                                    it->value.len >= sizeof(text) ? "too long" : problem);
                return KAFKA_INVALID_CONFIG;
            }
            broker_config_value(&scratch, id, text, sizeof(text));
            ch[n].value = arena_strndup(&rq->arena, text, strlen(text));
            if (ch[n].value == NULL)
                return ERR_TOO_LARGE;
        }
        n++;
    }
    if (res->replace) {
        /* AlterConfigs sets the resource's whole set: what it does not name goes. */
        for (uint32_t i = 0; i < b->meta.broker_config_count; i++) {
            const struct meta_broker_config *bc = &b->meta.broker_configs[i];
            bool named = false;
            for (size_t j = 0; j < n && !named; j++)
                named = strcmp(ch[j].key, bc->key) == 0;
            if (strcmp(bc->resource, resource) != 0 || named)
                continue;
            const struct broker_config_key *k = broker_config_key_find(bc->key);
            if (k == NULL)
                continue;
            ch[n++] = (struct broker_change){.key = k->name, .value = NULL};
        }
    }
    *count = n;
    return KAFKA_NONE;
}

static int alter_broker(struct breq *rq, const struct alter_resource *res, bool validate_only,
                        struct proto_str *why)
{
    ASSERT(res->type == RESOURCE_BROKER && why != NULL);
    char resource[16] = "";
    if (res->name.len > 0) {
        int err = check_broker_name(rq, res->name, false, true, why);
        if (err != KAFKA_NONE)
            return err;
        snprintf(resource, sizeof(resource), "%.*s", (int)res->name.len, res->name.ptr);
    }
    char list[BROKER_ADMIN_MESSAGE_BYTES_MAX];
    static_keys(res, list, sizeof(list));
    if (list[0] != '\0') {
        /* What Kafka answers for a broker key that only a restart changes. */
        *why = admin_printf(&rq->arena, "Cannot update these configs dynamically: %s", list);
        return KAFKA_INVALID_REQUEST;
    }
    size_t cap = res->count + META_BROKER_CONFIGS_MAX;
    struct broker_change *ch = arena_calloc(&rq->arena, cap, sizeof(*ch));
    size_t n = 0;
    if (ch == NULL)
        return ERR_TOO_LARGE;
    int err = plan_broker_changes(rq, res, resource, ch, &n, why);
    if (err != KAFKA_NONE || validate_only || n == 0)
        return err;
    struct meta_ctl_config *cfgs = arena_calloc(&rq->arena, n, sizeof(*cfgs));
    if (cfgs == NULL)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++)
        cfgs[i] = (struct meta_ctl_config){.key = ch[i].key, .value = ch[i].value};
    return broker_stage_configs(rq, META_RESOURCE_BROKER, resource, cfgs, (uint32_t)n, false, why);
}

static int alter_topic(struct breq *rq, const struct alter_resource *res, bool validate_only,
                       struct proto_str *why)
{
    ASSERT(res->type == RESOURCE_TOPIC && why != NULL);
    struct broker *b = rq->b;
    if (res->name.len == 0) {
        *why = proto_str_make("Default topic resources are not allowed.");
        return KAFKA_INVALID_REQUEST;
    }
    int err = check_topic_name(rq, res->name, why);
    if (err != KAFKA_NONE)
        return err;
    const struct meta_topic *mt = meta_topic_find(&b->meta, res->name.ptr, res->name.len);
    if (mt == NULL) {
        *why = admin_printf(&rq->arena, "The topic '%.*s' does not exist.", (int)res->name.len,
                            res->name.ptr);
        return KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    }
    struct topic_config_set set;
    topic_config_set_load(&set, res->replace ? NULL : mt);
    char text[BROKER_ADMIN_MESSAGE_BYTES_MAX];
    for (size_t i = 0; i < res->count; i++) {
        const struct alter_item *it = &res->items[i];
        err = topic_config_set_apply(&set, b->cfg, it->name.ptr, it->name.len, it->op,
                                     it->value.ptr, it->value.len, text, sizeof(text));
        if (err != KAFKA_NONE) {
            *why = admin_printf(&rq->arena, "%s", text);
            return err;
        }
    }
    if (validate_only)
        return KAFKA_NONE;
    /* The name is copied: the image changes under mt. */
    char *topic = arena_strndup(&rq->arena, mt->name, strlen(mt->name));
    if (topic == NULL)
        return ERR_TOO_LARGE;
    return store_overrides(rq, topic, &set, why);
}

/* Answers one resource: its error code (or a negative error when the arena is full). */
static int alter_resource(struct breq *rq, const struct alter_resource *res, bool duplicate,
                          bool validate_only, struct proto_str *why)
{
    if (duplicate) {
        *why = proto_str_make("Each resource must appear at most once.");
        return KAFKA_INVALID_REQUEST;
    }
    int err = check_shape(rq, res, why);
    if (err != KAFKA_NONE)
        return err;
    if (res->type == RESOURCE_TOPIC)
        return alter_topic(rq, res, validate_only, why);
    if (res->type == RESOURCE_BROKER)
        return alter_broker(rq, res, validate_only, why);
    *why = admin_printf(&rq->arena, "Unknown resource type %d", (int)res->type);
    return KAFKA_INVALID_REQUEST;
}

/* Marks resources named twice (same type and name) in dup. */
static int find_duplicate_resources(struct breq *rq, const struct alter_resource *res, size_t n,
                                    bool *dup)
{
    struct slice *keys = arena_calloc(&rq->arena, n, sizeof(*keys));
    if (keys == NULL)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        uint8_t *k = arena_alloc(&rq->arena, res[i].name.len + 1);
        if (k == NULL)
            return ERR_TOO_LARGE;
        k[0] = (uint8_t)res[i].type;
        if (res[i].name.len > 0)
            memcpy(k + 1, res[i].name.ptr, res[i].name.len);
        keys[i] = slice_make(k, res[i].name.len + 1);
    }
    return admin_find_duplicates(&rq->arena, keys, n, dup, NULL);
}

typedef struct kafka_alter_configs_response_alter_configs_resource_response legacy_result;
typedef struct kafka_incremental_alter_configs_response_alter_configs_resource_response
    incremental_result;

/* Runs every resource; results[i] gets its error code and message. */
static int alter_all(struct breq *rq, const struct alter_resource *res, size_t n,
                     bool validate_only, int16_t *codes, struct proto_str *messages)
{
    bool *dup = arena_calloc(&rq->arena, n, sizeof(*dup));
    if (dup == NULL || find_duplicate_resources(rq, res, n, dup) < 0)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        messages[i] = (struct proto_str){NULL, 0};
        int err = alter_resource(rq, &res[i], dup[i], validate_only, &messages[i]);
        if (err < 0)
            return err;
        codes[i] = (int16_t)err;
    }
    return 0;
}

/* An Alter answer between the build and the commit. */
struct alter_answer {
    void *items;
    size_t count;
    bool validate_only;
};

#define COMMIT_FAILED(err)                                              \
    ((err) == KAFKA_NOT_CONTROLLER ? "The controller moved; try again." \
                                   : "The controller could not write the metadata.")

static void alter_finish(struct breq *rq, int16_t err)
{
    struct alter_answer *st = rq->admin_state;
    legacy_result *out = st->items;
    for (size_t i = 0; i < st->count && err != KAFKA_NONE && !st->validate_only; i++) {
        if (out[i].error_code == KAFKA_NONE) {
            out[i].error_code = err;
            out[i].error_message = proto_str_make(COMMIT_FAILED(err));
        }
    }
    struct kafka_alter_configs_response resp;
    kafka_alter_configs_response_init(&resp);
    resp.responses.items = out;
    resp.responses.count = st->count;
    breq_respond(rq, &resp);
}

static void incremental_finish(struct breq *rq, int16_t err)
{
    struct alter_answer *st = rq->admin_state;
    incremental_result *out = st->items;
    for (size_t i = 0; i < st->count && err != KAFKA_NONE && !st->validate_only; i++) {
        if (out[i].error_code == KAFKA_NONE) {
            out[i].error_code = err;
            out[i].error_message = proto_str_make(COMMIT_FAILED(err));
        }
    }
    struct kafka_incremental_alter_configs_response resp;
    kafka_incremental_alter_configs_response_init(&resp);
    resp.responses.items = out;
    resp.responses.count = st->count;
    breq_respond(rq, &resp);
}

void alter_configs_handle(struct breq *rq)
{
    const struct kafka_alter_configs_request *req = rq->body;
    size_t n = req->resources.count;
    struct alter_resource *res = arena_calloc(&rq->arena, n, sizeof(*res));
    int16_t *codes = arena_calloc(&rq->arena, n, sizeof(*codes));
    struct proto_str *messages = arena_calloc(&rq->arena, n, sizeof(*messages));
    legacy_result *out = arena_calloc(&rq->arena, n, sizeof(*out));
    int rc = res == NULL || codes == NULL || messages == NULL || out == NULL ? ERR_TOO_LARGE : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct kafka_alter_configs_request_alter_configs_resource *q =
            &req->resources.items[i];
        res[i] = (struct alter_resource){.type = q->resource_type,
                                         .name = q->resource_name,
                                         .count = q->configs.count,
                                         .replace = true};
        res[i].items = arena_calloc(&rq->arena, q->configs.count, sizeof(*res[i].items));
        if (res[i].items == NULL)
            rc = ERR_TOO_LARGE;
        for (size_t j = 0; j < q->configs.count && rc == 0; j++)
            res[i].items[j] = (struct alter_item){.name = q->configs.items[j].name,
                                                  .value = q->configs.items[j].value,
                                                  .op = TOPIC_CONFIG_OP_SET};
    }
    if (rc == 0)
        rc = alter_all(rq, res, n, req->validate_only, codes, messages);
    if (rc < 0) {
        breq_abort(rq);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (legacy_result){.error_code = codes[i],
                                 .error_message = messages[i],
                                 .resource_type = res[i].type,
                                 .resource_name = res[i].name};
    struct alter_answer *st = arena_calloc(&rq->arena, 1, sizeof(*st));
    if (st == NULL) {
        breq_abort(rq);
        return;
    }
    *st = (struct alter_answer){.items = out, .count = n, .validate_only = req->validate_only};
    rq->admin_state = st;
    broker_admin_commit(rq, alter_finish);
}

void incremental_alter_configs_handle(struct breq *rq)
{
    const struct kafka_incremental_alter_configs_request *req = rq->body;
    size_t n = req->resources.count;
    struct alter_resource *res = arena_calloc(&rq->arena, n, sizeof(*res));
    int16_t *codes = arena_calloc(&rq->arena, n, sizeof(*codes));
    struct proto_str *messages = arena_calloc(&rq->arena, n, sizeof(*messages));
    incremental_result *out = arena_calloc(&rq->arena, n, sizeof(*out));
    int rc = res == NULL || codes == NULL || messages == NULL || out == NULL ? ERR_TOO_LARGE : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct kafka_incremental_alter_configs_request_alter_configs_resource *q =
            &req->resources.items[i];
        res[i] = (struct alter_resource){
            .type = q->resource_type, .name = q->resource_name, .count = q->configs.count};
        res[i].items = arena_calloc(&rq->arena, q->configs.count, sizeof(*res[i].items));
        if (res[i].items == NULL)
            rc = ERR_TOO_LARGE;
        for (size_t j = 0; j < q->configs.count && rc == 0; j++)
            res[i].items[j] = (struct alter_item){.name = q->configs.items[j].name,
                                                  .value = q->configs.items[j].value,
                                                  .op = q->configs.items[j].config_operation};
    }
    if (rc == 0)
        rc = alter_all(rq, res, n, req->validate_only, codes, messages);
    if (rc < 0) {
        breq_abort(rq);
        return;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = (incremental_result){.error_code = codes[i],
                                      .error_message = messages[i],
                                      .resource_type = res[i].type,
                                      .resource_name = res[i].name};
    struct alter_answer *st = arena_calloc(&rq->arena, 1, sizeof(*st));
    if (st == NULL) {
        breq_abort(rq);
        return;
    }
    *st = (struct alter_answer){.items = out, .count = n, .validate_only = req->validate_only};
    rq->admin_state = st;
    broker_admin_commit(rq, incremental_finish);
}

void broker_apply_dynamic_configs(struct broker *b)
{
    char node[16];
    node_resource(b, node, sizeof(node));
    b->live_cfg = *b->static_cfg;
    /* The cluster-wide defaults first, then this node's values over them. */
    const char *const resources[] = {"", node};
    for (int r = 0; r < 2; r++) {
        for (uint32_t i = 0; i < b->meta.broker_config_count; i++) {
            const struct meta_broker_config *bc = &b->meta.broker_configs[i];
            const struct broker_config_key *k = broker_config_key_find(bc->key);
            if (strcmp(bc->resource, resources[r]) != 0 || k == NULL || k->read_only ||
                &broker_config_keys[k->synonym_of] != k)
                continue;
            char why[BROKER_ADMIN_MESSAGE_BYTES_MAX];
            /* A stored value is validated again; one that no longer passes is ignored. */
            if (broker_config_set_dynamic(&b->live_cfg, k->synonym_of, bc->value, why,
                                          sizeof(why)) < 0)
                fprintf(stderr, "chronik: ignoring dynamic config %s=%s: %s\n", bc->key, bc->value,
                        why);
        }
    }
    b->log_cfg.segment_bytes = (uint64_t)b->live_cfg.log_segment_bytes;
    b->log_cfg.roll_ms = (uint64_t)b->live_cfg.log_roll_ms;
    b->log_cfg.retention_ms = b->live_cfg.log_retention_ms;
    b->log_cfg.retention_bytes = b->live_cfg.log_retention_bytes;
    for (uint32_t i = 0; i < b->meta.topic_count; i++)
        broker_topic_reconfigure(b, b->meta.topics[i]->name);
}
