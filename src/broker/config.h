/*
 * Broker configuration: the table of keys, the sources they come from, and the validated
 * `struct broker_config` the rest of the broker reads.
 *
 * Keys carry Kafka's broker config names wherever Kafka has one, so a Kafka operator's
 * server.properties mostly works as is. Sources, later wins: the table's defaults < a Java
 * .properties file (--config) < --set key=value < the short flags (--data-dir, --port,
 * --node-id). Within one source, synonyms follow Kafka's precedence (log.retention.ms over
 * log.retention.minutes over log.retention.hours; log.roll.ms over log.roll.hours; log.dirs
 * over log.dir).
 *
 * Invariants: a `struct broker_config` filled by broker_config_resolve() holds only values
 * inside the table's bounds, with distinct Kafka, HTTP and cluster ports, a routable
 * advertised listener, and a voter list of distinct ids and distinct addresses in which this
 * node, when it is a voter, has its own cluster address. The table is the single list of keys:
 * defaults are parsed from its text, DescribeConfigs will list it, and a unit test checks
 * docs/configuration.md against it.
 *
 * This module never exits the process and never prints anything except warnings about unknown
 * keys to the stream given to broker_config_input_init(); errors come back as text in a
 * `struct broker_config_error` for main.c to print.
 */
#ifndef CHRONIK_BROKER_CONFIG_H
#define CHRONIK_BROKER_CONFIG_H

#include "base/buf.h"
#include "base/limits.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* The value types, numbered as Kafka's DescribeConfigs configType so they can be sent as is. */
enum broker_config_type {
    BROKER_CONFIG_BOOLEAN = 1,
    BROKER_CONFIG_STRING = 2,
    BROKER_CONFIG_INT = 3,
    BROKER_CONFIG_LONG = 5,
};

/* One entry per key of the table, in table order. Synonyms follow their canonical key in
 * decreasing precedence. */
enum broker_config_key_id {
    BROKER_KEY_NODE_ID,
    BROKER_KEY_LOG_DIRS,
    BROKER_KEY_LOG_DIR,
    BROKER_KEY_LISTENERS,
    BROKER_KEY_ADVERTISED_LISTENERS,
    BROKER_KEY_NUM_PARTITIONS,
    BROKER_KEY_DEFAULT_REPLICATION_FACTOR,
    BROKER_KEY_MIN_INSYNC_REPLICAS,
    BROKER_KEY_AUTO_CREATE_TOPICS_ENABLE,
    BROKER_KEY_LOG_SEGMENT_BYTES,
    BROKER_KEY_LOG_ROLL_MS,
    BROKER_KEY_LOG_ROLL_HOURS,
    BROKER_KEY_LOG_RETENTION_MS,
    BROKER_KEY_LOG_RETENTION_MINUTES,
    BROKER_KEY_LOG_RETENTION_HOURS,
    BROKER_KEY_LOG_RETENTION_BYTES,
    BROKER_KEY_LOG_CACHE_TAIL_BYTES,
    BROKER_KEY_MESSAGE_MAX_BYTES,
    BROKER_KEY_COMPRESSION_TYPE,
    BROKER_KEY_SOCKET_REQUEST_MAX_BYTES,
    BROKER_KEY_QUEUED_MAX_REQUEST_BYTES,
    BROKER_KEY_CONNECTIONS_MAX_IDLE_MS,
    BROKER_KEY_HTTP_PORT,
    BROKER_KEY_CLUSTER_PORT,
    BROKER_KEY_CONTROLLER_QUORUM_VOTERS,
    BROKER_KEY_BROKER_RACK,
    BROKER_KEY_OFFSETS_TOPIC_NUM_PARTITIONS,
    BROKER_KEY_GROUP_INITIAL_REBALANCE_DELAY_MS,
    BROKER_KEY_OFFSETS_RETENTION_MINUTES,
    BROKER_KEY_CONTROLLER_MUTATION_RATE,
    BROKER_KEY_CONTROLLER_QUOTA_WINDOW_NUM,
    BROKER_KEY_CONTROLLER_QUOTA_WINDOW_SIZE_SECONDS,
    BROKER_KEY_CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS,
    BROKER_KEY_BROKER_HEARTBEAT_INTERVAL_MS,
    BROKER_KEY_BROKER_SESSION_TIMEOUT_MS,
    BROKER_KEY_REPLICA_LAG_TIME_MAX_MS,
    BROKER_KEY_CONTROLLED_SHUTDOWN_ENABLE,
    BROKER_KEY_CONTROLLED_SHUTDOWN_TIMEOUT_MS,
    BROKER_KEY_AUTO_LEADER_REBALANCE_ENABLE,
    BROKER_KEY_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS,
    BROKER_KEY_PRODUCER_ID_EXPIRATION_MS,
    BROKER_KEY_TRANSACTION_STATE_LOG_NUM_PARTITIONS,
    BROKER_KEY_TRANSACTION_STATE_LOG_REPLICATION_FACTOR,
    BROKER_KEY_TRANSACTION_STATE_LOG_MIN_ISR,
    BROKER_KEY_TRANSACTION_MAX_TIMEOUT_MS,
    BROKER_KEY_TRANSACTIONAL_ID_EXPIRATION_MS,
    BROKER_KEY_TRANSACTION_ABORT_CHECK_INTERVAL_MS,
    BROKER_KEY_LOG_RETENTION_CHECK_INTERVAL_MS,
    BROKER_KEY_COUNT,
};

struct broker_config_key {
    const char *name;
    enum broker_config_type type;
    /* The default as it would be written in a properties file; NULL when the key has no fixed
     * default (it is derived from another key, or a synonym supplies it). */
    const char *default_value;
    /* INT and LONG: inclusive bounds of the value. STRING: max is the longest value in bytes.
     * BOOLEAN: unused. */
    int64_t min;
    int64_t max;
    /* The canonical key this one is a synonym of; the key itself when it is canonical. */
    enum broker_config_key_id synonym_of;
    /* True when only a restart changes the key; false for the keys Kafka lets an operator
     * change cluster-wide at run time, which Chronik will accept the same way. */
    bool read_only;
    const char *doc; /* one sentence */
};

/* The table, indexed by enum broker_config_key_id. Static storage; never freed. */
extern const struct broker_config_key broker_config_keys[BROKER_KEY_COUNT];

/* The key named name, or NULL. Names are matched exactly, as Kafka does. */
const struct broker_config_key *broker_config_key_find(const char *name);

/* A TCP endpoint parsed from a listener such as PLAINTEXT://[::1]:9092. */
struct broker_listener {
    /* Without brackets, NUL-terminated. "" (and 0.0.0.0 or ::) binds every interface. */
    char host[BROKER_HOST_BYTES_MAX];
    uint16_t port; /* 1..65535 */
};

/* One entry of controller.quorum.voters: ID@HOST:PORT, the port being that voter's cluster port. */
struct broker_voter {
    int32_t id;
    struct broker_listener addr;
};

/* The voters of the metadata group, in the order given. */
struct broker_voters {
    uint32_t count; /* 1..BROKER_VOTERS_MAX once resolved */
    struct broker_voter voters[BROKER_VOTERS_MAX];
};

/* What this node is in the metadata group. */
enum broker_node_role {
    BROKER_ROLE_VOTER,    /* in controller.quorum.voters (or standalone: the only voter) */
    BROKER_ROLE_OBSERVER, /* not in the list: a learner of the metadata log */
};

/* The validated configuration. Plain data: copy it freely; nothing in it needs freeing. */
struct broker_config {
    int32_t node_id;
    char log_dir[IO_PATH_BYTES_MAX];
    struct broker_listener listener;   /* listeners: where the Kafka protocol is served */
    struct broker_listener advertised; /* advertised.listeners: what Metadata tells clients */
    int32_t num_partitions;
    int32_t default_replication_factor; /* 0: not set (min(3, registered brokers)) */
    int32_t min_insync_replicas;
    bool auto_create_topics_enable;
    int32_t log_segment_bytes;
    int64_t log_roll_ms;
    int64_t log_retention_ms;     /* -1: no time limit */
    int64_t log_retention_bytes;  /* -1: no size limit */
    int64_t log_cache_tail_bytes; /* -1: the page cache is left to the kernel */
    int32_t message_max_bytes;
    char compression_type[BROKER_COMPRESSION_TYPE_BYTES_MAX]; /* a topic's default codec */
    int32_t socket_request_max_bytes;
    int64_t queued_max_request_bytes; /* -1: no broker-wide bound on request memory */
    int64_t connections_max_idle_ms;
    uint16_t http_port;    /* served on the listener's host */
    uint16_t cluster_port; /* served on the listener's host */
    /* Which setting chose each port, for messages ("--port", "cluster.port", "the Kafka port +
     * 2000, as cluster.port is not set", ...). Static storage. */
    const char *port_setting;
    const char *http_port_setting;
    const char *cluster_port_setting;
    /* controller.quorum.voters; when it is not set (standalone), this node alone at its cluster
     * address. */
    struct broker_voters voters;
    bool standalone; /* controller.quorum.voters was not set */
    enum broker_node_role role;
    char rack[BROKER_RACK_BYTES_MAX];         /* broker.rack; "" when not set */
    int32_t offsets_topic_num_partitions;     /* partitions of __consumer_offsets */
    int32_t group_initial_rebalance_delay_ms; /* an empty group's first rebalance waits this */
    int32_t offsets_retention_minutes;        /* offsets of an empty group live this long */
    int32_t controller_mutation_rate;         /* partition mutations per second, all clients */
    int32_t controller_quota_window_num;      /* the burst is rate * num * size seconds */
    int32_t controller_quota_window_size_seconds;
    int32_t controller_quorum_election_timeout_ms; /* a Raft follower's patience (randomised up
                                                    * to twice it) */
    int32_t broker_heartbeat_interval_ms;          /* to the controller */
    int32_t broker_session_timeout_ms;             /* fenced after this without heartbeats */
    int32_t replica_lag_time_max_ms;               /* a follower this far behind leaves the ISR */
    bool controlled_shutdown_enable;               /* SIGTERM hands leaderships over first */
    int32_t controlled_shutdown_timeout_ms;        /* bound on that hand-over */
    bool auto_leader_rebalance_enable;             /* leaderships go back to preferred replicas */
    int32_t leader_imbalance_check_interval_seconds;
    int32_t producer_id_expiration_ms; /* a partition forgets a producer silent this long */
    int32_t transaction_state_log_num_partitions;     /* partitions of __transaction_state */
    int32_t transaction_state_log_replication_factor; /* its replicas (capped at brokers) */
    int32_t transaction_state_log_min_isr;            /* its min.insync.replicas (capped) */
    int32_t transaction_max_timeout_ms;     /* longest transaction.timeout.ms a producer gets */
    int32_t transactional_id_expiration_ms; /* an idle transactional id is forgotten */
    int32_t transaction_abort_check_interval_ms; /* timed-out transactions are looked for */
    int32_t log_retention_check_interval_ms;     /* retention and roll by age are applied */
};

/* Where a setting came from; a later (greater) source wins over an earlier one. */
enum broker_config_source {
    BROKER_CONFIG_SOURCE_NONE = 0, /* not set: the table default applies */
    BROKER_CONFIG_SOURCE_FILE,     /* the --config properties file */
    BROKER_CONFIG_SOURCE_SET,      /* --set key=value */
    BROKER_CONFIG_SOURCE_FLAG,     /* --data-dir, --port, --node-id */
};

struct broker_config_setting {
    char *value; /* owned by the input; NULL when not set */
    enum broker_config_source source;
    uint32_t line;    /* the file line the value starts on, for SOURCE_FILE */
    const char *flag; /* the flag's name, for SOURCE_FLAG (static storage) */
};

/*
 * The raw settings gathered from every source, before validation. Caller-allocated; init,
 * fill with the functions below, resolve, then deinit (which frees every value it holds).
 */
struct broker_config_input {
    struct broker_config_setting settings[BROKER_KEY_COUNT];
    struct broker_config_setting port; /* --port: replaces the port of the Kafka listener */
    char *file_path;                   /* owned; the --config file, for messages */
    FILE *warn;                        /* borrowed; NULL silences warnings */
};

/* A configuration error for a person to read: names the key, the value and what is allowed. */
struct broker_config_error {
    char text[BROKER_CONFIG_ERROR_BYTES_MAX];
};

/* What the command line asked for. */
enum broker_cli_action {
    BROKER_CLI_RUN,
    BROKER_CLI_HELP,
    BROKER_CLI_VERSION,
    BROKER_CLI_PRINT_CONFIG,
};

/* warn receives one line per unknown key (Kafka accepts and logs them); it may be NULL. */
void broker_config_input_init(struct broker_config_input *input, FILE *warn);
void broker_config_input_deinit(struct broker_config_input *input);

/*
 * Records key=value from source, unless the key already holds a value from a later source.
 * value is stored as given (callers trim it). An unknown key is warned about and ignored (0).
 * Returns ERR_TOO_LARGE for a value of BROKER_CONFIG_VALUE_BYTES_MAX bytes or more. Values are
 * checked only by broker_config_resolve(). line is for SOURCE_FILE, flag for SOURCE_FLAG.
 */
int broker_config_input_set(struct broker_config_input *input, enum broker_config_source source,
                            const char *key, const char *value, uint32_t line, const char *flag,
                            struct broker_config_error *err);

/*
 * Parses Java .properties text (key=value, key: value or key value; # and ! comments;
 * backslash escapes and line continuations) of len bytes into SOURCE_FILE settings. origin
 * names the text in messages. Returns ERR_CORRUPT for malformed text (a bad \u escape, a NUL
 * byte), ERR_TOO_LARGE for text or a value over its bound. Called at most once per input: the
 * settings it records name origin in later messages.
 */
int broker_config_input_load_text(struct broker_config_input *input, const char *text, size_t len,
                                  const char *origin, struct broker_config_error *err);

/* Reads the file at path (at most BROKER_CONFIG_FILE_BYTES_MAX bytes) and loads it as above.
 * Returns -errno when it cannot be read. */
int broker_config_input_load_file(struct broker_config_input *input, const char *path,
                                  struct broker_config_error *err);

/*
 * Parses the command line (argv[0] is the program and is skipped): --config FILE (loaded at
 * once), --set KEY=VALUE (repeatable), --data-dir DIR, --port N, --node-id N, --print-config,
 * --help, --version; "--flag=value" works too. Stops at --help or --version. Returns
 * ERR_INVALID for an unknown option, a missing value or a stray argument.
 */
int broker_config_parse_args(struct broker_config_input *input, int argc, char *const argv[],
                             enum broker_cli_action *action, struct broker_config_error *err);

/*
 * Validates every setting and fills config: defaults for what is unset, synonyms by Kafka's
 * precedence, the listener port from --port, the advertised listener and the HTTP and cluster
 * ports derived when not given. Returns ERR_INVALID with a message naming the key, the value
 * and what is allowed; config is then unspecified.
 */
int broker_config_resolve(const struct broker_config_input *input, struct broker_config *config,
                          struct broker_config_error *err);

/*
 * Parses a controller.quorum.voters value: ID@HOST:PORT entries separated by commas, blanks
 * around an entry allowed, HOST a name, an IPv4 address or a bracketed IPv6 address. Checks
 * each entry (not empty, an id from 0 to BROKER_NODE_ID_MAX, a valid port, no wildcard host),
 * at most BROKER_VOTERS_MAX of them, no id and no HOST:PORT twice. Returns 0, or ERR_INVALID
 * with what is wrong in why (why_bytes bytes, one line).
 */
int broker_voters_parse(const char *text, struct broker_voters *out, char *why, size_t why_bytes);

/* The voter with node id id, or NULL. */
const struct broker_voter *broker_voters_find(const struct broker_voters *v, int32_t id);

/*
 * Writes the value of canonical key id in config as it would appear in a properties file,
 * unescaped, into out (out_bytes >= BROKER_CONFIG_VALUE_BYTES_MAX). Synonyms have no value of
 * their own and must not be asked for.
 */
void broker_config_value(const struct broker_config *config, enum broker_config_key_id id,
                         char *out, size_t out_bytes);

/*
 * A dynamic broker config: parses text (Kafka's integer syntax, blanks around it allowed) as
 * the value of canonical numeric key id and, when it is within the key's bounds, stores it in
 * config. Returns 0, or ERR_INVALID with what is allowed in why (why_bytes bytes).
 */
int broker_config_set_dynamic(struct broker_config *config, enum broker_config_key_id id,
                              const char *text, char *why, size_t why_bytes);

/* Appends the effective configuration to out as a properties file: every canonical key in
 * table order, escaped so that loading it back gives the same configuration. */
void broker_config_format(const struct broker_config *config, struct buf *out);

/*
 * Writes the broker's one start-up line into out (out_bytes >= BROKER_CONFIG_DESCRIBE_BYTES_MAX):
 * node id, Kafka listener and advertised address, HTTP and cluster addresses, data directory.
 * No newline.
 */
void broker_config_describe(const struct broker_config *config, char *out, size_t out_bytes);

#endif
