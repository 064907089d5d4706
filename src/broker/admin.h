/*
 * What the administration handlers (topics.c, configs.c, cluster.c) share: the table of topic
 * configuration keys with its validation, the edits AlterConfigs and IncrementalAlterConfigs
 * make to a topic's overrides, the effective values the data path reads, and two request
 * helpers. Private to src/broker.
 *
 * The table is the one list of topic keys Chronik knows: CreateTopics and the Alter APIs accept
 * exactly these keys, DescribeConfigs lists them, and docs/configuration.md documents them (a
 * unit test checks that). A key's default is the broker setting it inherits from when it has
 * one (retention.ms inherits log.retention.ms), else a fixed value.
 *
 * Overrides are stored in the metadata image normalised (a number without sign or blanks,
 * "delete" for cleanup.policy), so the data path parses them without surprises. Values read
 * back from the image are validated again, never trusted: a stored value that no longer passes
 * is ignored and the default applies.
 *
 * Everything here is plain data: nothing allocates from the heap, and the request helpers take
 * their memory from the caller's arena.
 */
#ifndef CHRONIK_BROKER_ADMIN_H
#define CHRONIK_BROKER_ADMIN_H

#include "base/arena.h"
#include "base/bytes.h"
#include "base/compiler.h"
#include "base/limits.h"
#include "broker/config.h"
#include "cluster/metadata.h"
#include "proto/proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kafka's DescribeConfigs configType numbers, sent as they are. */
enum topic_config_type {
    TOPIC_CONFIG_BOOLEAN = 1,
    TOPIC_CONFIG_STRING = 2,
    TOPIC_CONFIG_INT = 3,
    TOPIC_CONFIG_LONG = 5,
    TOPIC_CONFIG_LIST = 7,
};

/* The keys, in name order (the order DescribeConfigs lists them in). */
enum topic_config_id {
    TOPIC_CONFIG_CLEANUP_POLICY,
    TOPIC_CONFIG_COMPRESSION_TYPE,
    TOPIC_CONFIG_MAX_MESSAGE_BYTES,
    TOPIC_CONFIG_MESSAGE_TIMESTAMP_TYPE,
    TOPIC_CONFIG_MIN_INSYNC_REPLICAS,
    TOPIC_CONFIG_RETENTION_BYTES,
    TOPIC_CONFIG_RETENTION_MS,
    TOPIC_CONFIG_SEGMENT_BYTES,
    TOPIC_CONFIG_SEGMENT_MS,
    TOPIC_CONFIG_UNCLEAN_LEADER_ELECTION_ENABLE,
    TOPIC_CONFIG_COUNT,
};

/* No broker key: the default is the table's default_value. */
#define TOPIC_CONFIG_NO_BROKER_KEY (-1)

struct topic_config_key {
    const char *name;
    enum topic_config_type type;
    /* INT and LONG: inclusive bounds. */
    int64_t min;
    int64_t max;
    /* STRING and LIST: the values Kafka accepts, NULL-terminated; BOOLEAN: unused. */
    const char *const *kafka_values;
    /* The subset of kafka_values (or of true/false) Chronik honours; NULL: all of them. */
    const char *const *supported_values;
    /* Why a value Kafka accepts is refused here, completing "<key>=<value> is not supported". */
    const char *unsupported_why;
    /* The enum broker_config_key_id it inherits from, or TOPIC_CONFIG_NO_BROKER_KEY. */
    int broker_key;
    const char *default_value; /* when broker_key is TOPIC_CONFIG_NO_BROKER_KEY */
    const char *doc;           /* one sentence */
};

/* The table, indexed by enum topic_config_id. Static storage. */
extern const struct topic_config_key topic_config_keys[TOPIC_CONFIG_COUNT];

/* The id of the key named name (len bytes, matched exactly), or ERR_NOT_FOUND. */
int topic_config_find(const char *name, size_t len);

/*
 * Checks value (len bytes, not NUL-terminated) for key id as Kafka parses it (numbers and
 * booleans trimmed, lists split on commas with blanks around items dropped). On success writes
 * the normalised value to out (out_bytes >= BROKER_TOPIC_VALUE_BYTES_MAX) and returns 0. On
 * failure returns ERR_INVALID with a message naming the key and the value in why (why_bytes
 * >= BROKER_ADMIN_MESSAGE_BYTES_MAX).
 */
int topic_config_validate(enum topic_config_id id, const char *value, size_t len, char *out,
                          size_t out_bytes, char *why, size_t why_bytes);

/* The value key id takes when a topic has no override: the broker setting it inherits from, or
 * the table default. out_bytes >= BROKER_CONFIG_VALUE_BYTES_MAX. */
void topic_config_default(const struct broker_config *cfg, enum topic_config_id id, char *out,
                          size_t out_bytes);

/*
 * A list value edited by IncrementalAlterConfigs, as Kafka does it: APPEND adds each item of
 * operand that the list lacks, at the end; SUBTRACT removes each item of operand. Items are
 * compared exactly. Writes the comma-joined result to out; ERR_TOO_LARGE when it does not fit.
 */
int topic_config_list_apply(const char *current, const char *operand, size_t operand_len,
                            bool append, char *out, size_t out_bytes);

/* A topic's overrides of the known keys while a request edits them. */
struct topic_config_set {
    bool present[TOPIC_CONFIG_COUNT];
    char values[TOPIC_CONFIG_COUNT][BROKER_TOPIC_VALUE_BYTES_MAX];
};

/* The overrides of mt (NULL: none) that pass validation; others are left out. */
void topic_config_set_load(struct topic_config_set *set, const struct meta_topic *mt);

/* IncrementalAlterConfigs' operations, numbered as on the wire. */
enum topic_config_op {
    TOPIC_CONFIG_OP_SET = 0,
    TOPIC_CONFIG_OP_DELETE = 1,
    TOPIC_CONFIG_OP_APPEND = 2,
    TOPIC_CONFIG_OP_SUBTRACT = 3,
};

/*
 * Applies one operation to set. value is NULL (value_len 0) only for DELETE. APPEND and SUBTRACT
 * start from the override, else the default (from cfg). Returns a Kafka error code: KAFKA_NONE,
 * KAFKA_INVALID_CONFIG (unknown key, bad value, APPEND/SUBTRACT on a key that is not a list) or
 * KAFKA_INVALID_REQUEST (unknown operation); why then holds the message (why_bytes >=
 * BROKER_ADMIN_MESSAGE_BYTES_MAX) and set is unchanged.
 */
int topic_config_set_apply(struct topic_config_set *set, const struct broker_config *cfg,
                           const char *name, size_t name_len, int8_t op, const char *value,
                           size_t value_len, char *why, size_t why_bytes);

/* The effective settings of a topic that the data path reads: overrides, else defaults. */
struct topic_config_values {
    int64_t retention_ms;    /* -1: no limit */
    int64_t retention_bytes; /* -1: no limit */
    int64_t segment_bytes;
    int64_t segment_ms;
    int32_t max_message_bytes;
    int32_t min_insync_replicas;
    bool log_append_time; /* message.timestamp.type=LogAppendTime */
    int compression;      /* compression.type: an enum batch_codec, or TOPIC_COMPRESSION_PRODUCER */
};

/* compression.type=producer: batches are stored with the codec the producer chose. */
#define TOPIC_COMPRESSION_PRODUCER (-1)

/* The codec a compression.type value names (enum batch_codec), TOPIC_COMPRESSION_PRODUCER for
 * "producer", or ERR_INVALID for anything else. */
int topic_compression_parse(const char *value);

void topic_config_resolve(const struct broker_config *cfg, const struct meta_topic *mt,
                          struct topic_config_values *out);

/* Kafka's DescribeConfigs configSource numbers, sent as they are. */
enum admin_config_source {
    ADMIN_SOURCE_DYNAMIC_TOPIC = 1,
    ADMIN_SOURCE_DYNAMIC_BROKER = 2,         /* a dynamic config of this broker */
    ADMIN_SOURCE_DYNAMIC_DEFAULT_BROKER = 3, /* a cluster-wide dynamic default */
    ADMIN_SOURCE_STATIC_BROKER = 4,
    ADMIN_SOURCE_DEFAULT = 5,
};

struct broker;
/* A broker key's effective value on this node and its source, dynamic broker configs
 * included: this node's dynamic value, the cluster-wide default, then as admin_broker_value()
 * on the static configuration (configs.c). */
enum admin_config_source admin_broker_key_source(const struct broker *b,
                                                 const struct broker_config *defaults, int id,
                                                 char *out, size_t out_bytes);

/* The broker configuration with nothing set: every key at its default. */
void admin_broker_defaults(struct broker_config *out);

/*
 * The value of canonical broker key id in cfg (into out, out_bytes >=
 * BROKER_CONFIG_VALUE_BYTES_MAX) and where it comes from: STATIC_BROKER when it differs from
 * defaults (from admin_broker_defaults), else DEFAULT. A value set to its default reads as
 * DEFAULT: the resolved configuration does not remember where a value came from.
 */
enum admin_config_source admin_broker_value(const struct broker_config *cfg,
                                            const struct broker_config *defaults, int id, char *out,
                                            size_t out_bytes);

/* The effective value of topic key id (override in set, else inherited) into out (out_bytes >=
 * BROKER_CONFIG_VALUE_BYTES_MAX), and its source. */
enum admin_config_source topic_config_effective(const struct broker_config *cfg,
                                                const struct broker_config *defaults,
                                                const struct topic_config_set *set,
                                                enum topic_config_id id, char *out,
                                                size_t out_bytes);

/* ---- request helpers ------------------------------------------------------------------------- */

/* A message formatted into a, for an error_message field; cut at BROKER_ADMIN_MESSAGE_BYTES_MAX.
 * A null string when the arena is full: the error code still goes out, the text does not. */
struct proto_str admin_printf(struct arena *a, const char *fmt, ...) PRINTF_LIKE(2, 3);

/*
 * Marks in dup[i] (n entries) whether keys[i] equals another key of keys (byte for byte), and
 * in later[i] (when later is not NULL) whether one of those comes before it, in O(n log n).
 * Kafka answers a name given twice once, so handlers skip the later ones. Scratch memory comes
 * from a; ERR_TOO_LARGE when it is full (dup and later are then unset).
 */
int admin_find_duplicates(struct arena *a, const struct slice *keys, size_t n, bool *dup,
                          bool *later);

#endif
