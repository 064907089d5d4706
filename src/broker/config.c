/*
 * Broker configuration (see config.h): the key table, the properties-file parser, the command
 * line parser and the resolution of every source into a validated struct broker_config.
 *
 * Invariants: every value that reaches struct broker_config went through the same validation,
 * defaults included (they are parsed from the table's text, and an invalid default is a
 * programmer error caught by an ASSERT on the first resolve). The input keeps, per key, only
 * the value of the latest source; resolution never mutates the input.
 *
 * It must never exit, never print except the unknown-key warnings, and never trust a value:
 * everything here comes from a person's file or command line and is validated, not asserted.
 * The config file is read with plain POSIX reads because it is read once, before the broker's
 * io layer exists, and is never written.
 */
#include "broker/config.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MINUTE_MS (60ll * 1000)
#define HOUR_MS   (60ll * MINUTE_MS)

/* How much of a bad value an error message quotes; the rest is elided. */
#define QUOTE_BYTES_MAX 64

/* The longest hostname DNS allows (RFC 1035, without the trailing dot). */
#define HOSTNAME_BYTES_MAX 253u
STATIC_ASSERT(HOSTNAME_BYTES_MAX < BROKER_HOST_BYTES_MAX, "a hostname fits a listener host");

const struct broker_config_key broker_config_keys[BROKER_KEY_COUNT] = {
    [BROKER_KEY_NODE_ID] =
        {
            .name = "node.id",
            .type = BROKER_CONFIG_INT,
            .default_value = "1",
            .min = 0,
            .max = BROKER_NODE_ID_MAX,
            .synonym_of = BROKER_KEY_NODE_ID,
            .read_only = true,
            .doc = "The id of this node, unique in its cluster.",
        },
    [BROKER_KEY_LOG_DIRS] =
        {
            .name = "log.dirs",
            .type = BROKER_CONFIG_STRING,
            .default_value = "./data",
            .min = 1,
            .max = IO_PATH_BYTES_MAX - 1,
            .synonym_of = BROKER_KEY_LOG_DIRS,
            .read_only = true,
            .doc = "The one directory that holds this node's data.",
        },
    [BROKER_KEY_LOG_DIR] =
        {
            .name = "log.dir",
            .type = BROKER_CONFIG_STRING,
            .default_value = NULL,
            .min = 1,
            .max = IO_PATH_BYTES_MAX - 1,
            .synonym_of = BROKER_KEY_LOG_DIRS,
            .read_only = true,
            .doc = "Synonym of log.dirs, used when log.dirs is not set.",
        },
    [BROKER_KEY_LISTENERS] =
        {
            .name = "listeners",
            .type = BROKER_CONFIG_STRING,
            .default_value = "PLAINTEXT://127.0.0.1:9092",
            .min = 1,
            .max = BROKER_LISTENER_BYTES_MAX - 1,
            .synonym_of = BROKER_KEY_LISTENERS,
            .read_only = true,
            .doc = "The address the Kafka protocol is served on, as PLAINTEXT://HOST:PORT.",
        },
    [BROKER_KEY_ADVERTISED_LISTENERS] =
        {
            .name = "advertised.listeners",
            .type = BROKER_CONFIG_STRING,
            .default_value = NULL,
            .min = 1,
            .max = BROKER_LISTENER_BYTES_MAX - 1,
            .synonym_of = BROKER_KEY_ADVERTISED_LISTENERS,
            .read_only = true,
            .doc = "The address clients are told to connect to; the listener when not set.",
        },
    [BROKER_KEY_NUM_PARTITIONS] =
        {
            .name = "num.partitions",
            .type = BROKER_CONFIG_INT,
            .default_value = "1",
            .min = 1,
            .max = BROKER_NUM_PARTITIONS_MAX,
            .synonym_of = BROKER_KEY_NUM_PARTITIONS,
            .read_only = true,
            .doc = "Partitions of a topic created without a partition count.",
        },
    [BROKER_KEY_DEFAULT_REPLICATION_FACTOR] =
        {
            .name = "default.replication.factor",
            .type = BROKER_CONFIG_INT,
            .default_value = NULL,
            .min = 1,
            .max = RAFT_VOTERS_MAX,
            .synonym_of = BROKER_KEY_DEFAULT_REPLICATION_FACTOR,
            .read_only = true,
            .doc = "Replicas of a topic created without a replication factor; when not set, "
                   "min(3, registered brokers).",
        },
    [BROKER_KEY_MIN_INSYNC_REPLICAS] =
        {
            .name = "min.insync.replicas",
            .type = BROKER_CONFIG_INT,
            .default_value = "1",
            .min = 1,
            .max = RAFT_VOTERS_MAX,
            .synonym_of = BROKER_KEY_MIN_INSYNC_REPLICAS,
            .read_only = false,
            .doc = "In-sync replicas an acks=all produce needs, else NOT_ENOUGH_REPLICAS.",
        },
    [BROKER_KEY_AUTO_CREATE_TOPICS_ENABLE] =
        {
            .name = "auto.create.topics.enable",
            .type = BROKER_CONFIG_BOOLEAN,
            .default_value = "true",
            .synonym_of = BROKER_KEY_AUTO_CREATE_TOPICS_ENABLE,
            .read_only = true,
            .doc = "Whether Metadata and Produce for an unknown topic create it.",
        },
    [BROKER_KEY_LOG_SEGMENT_BYTES] =
        {
            .name = "log.segment.bytes",
            .type = BROKER_CONFIG_INT,
            .default_value = "1073741824",
            .min = LOG_SEGMENT_BYTES_MIN,
            .max = LOG_SEGMENT_BYTES_MAX,
            .synonym_of = BROKER_KEY_LOG_SEGMENT_BYTES,
            .read_only = false,
            .doc = "Size at which a partition's active segment is closed and a new one begun.",
        },
    [BROKER_KEY_LOG_ROLL_MS] =
        {
            .name = "log.roll.ms",
            .type = BROKER_CONFIG_LONG,
            .default_value = NULL,
            .min = 1,
            .max = INT64_MAX,
            .synonym_of = BROKER_KEY_LOG_ROLL_MS,
            .read_only = false,
            .doc = "Age at which a non-empty active segment is closed, in milliseconds.",
        },
    [BROKER_KEY_LOG_ROLL_HOURS] =
        {
            .name = "log.roll.hours",
            .type = BROKER_CONFIG_INT,
            .default_value = "168",
            .min = 1,
            .max = INT32_MAX,
            .synonym_of = BROKER_KEY_LOG_ROLL_MS,
            .read_only = true,
            .doc = "log.roll.ms in hours, used when log.roll.ms is not set.",
        },
    [BROKER_KEY_LOG_RETENTION_MS] =
        {
            .name = "log.retention.ms",
            .type = BROKER_CONFIG_LONG,
            .default_value = NULL,
            .min = -1,
            .max = INT64_MAX,
            .synonym_of = BROKER_KEY_LOG_RETENTION_MS,
            .read_only = false,
            .doc = "Age after which closed segments are deleted, in milliseconds; -1: never.",
        },
    [BROKER_KEY_LOG_RETENTION_MINUTES] =
        {
            .name = "log.retention.minutes",
            .type = BROKER_CONFIG_INT,
            .default_value = NULL,
            .min = -1,
            .max = INT32_MAX,
            .synonym_of = BROKER_KEY_LOG_RETENTION_MS,
            .read_only = true,
            .doc = "log.retention.ms in minutes, used when log.retention.ms is not set.",
        },
    [BROKER_KEY_LOG_RETENTION_HOURS] =
        {
            .name = "log.retention.hours",
            .type = BROKER_CONFIG_INT,
            .default_value = "168",
            .min = -1,
            .max = INT32_MAX,
            .synonym_of = BROKER_KEY_LOG_RETENTION_MS,
            .read_only = true,
            .doc = "log.retention.ms in hours, used when neither ms nor minutes is set.",
        },
    [BROKER_KEY_LOG_RETENTION_BYTES] =
        {
            .name = "log.retention.bytes",
            .type = BROKER_CONFIG_LONG,
            .default_value = "-1",
            .min = -1,
            .max = INT64_MAX,
            .synonym_of = BROKER_KEY_LOG_RETENTION_BYTES,
            .read_only = false,
            .doc = "Partition size above which the oldest segments are deleted; -1: no limit.",
        },
    [BROKER_KEY_LOG_CACHE_TAIL_BYTES] =
        {
            .name = "log.cache.tail.bytes",
            .type = BROKER_CONFIG_LONG,
            .default_value = "8388608",
            .min = -1,
            .max = BROKER_LOG_CACHE_TAIL_BYTES_MAX,
            .synonym_of = BROKER_KEY_LOG_CACHE_TAIL_BYTES,
            .read_only = true,
            .doc = "Newest bytes of each partition kept in the page cache once synced; -1: all.",
        },
    [BROKER_KEY_MESSAGE_MAX_BYTES] =
        {
            .name = "message.max.bytes",
            .type = BROKER_CONFIG_INT,
            .default_value = "1048588",
            .min = LOG_BATCH_HEADER_BYTES,
            .max = LOG_BATCH_BYTES_MAX,
            .synonym_of = BROKER_KEY_MESSAGE_MAX_BYTES,
            .read_only = false,
            .doc = "Largest record batch a produce may append, in bytes.",
        },
    [BROKER_KEY_COMPRESSION_TYPE] =
        {
            .name = "compression.type",
            .type = BROKER_CONFIG_STRING,
            .default_value = "producer",
            .min = 0,
            .max = BROKER_COMPRESSION_TYPE_BYTES_MAX - 1,
            .synonym_of = BROKER_KEY_COMPRESSION_TYPE,
            .read_only = false,
            .doc = "The default compression.type of topics: producer, uncompressed, gzip, "
                   "snappy, lz4 or zstd.",
        },
    [BROKER_KEY_SOCKET_REQUEST_MAX_BYTES] =
        {
            .name = "socket.request.max.bytes",
            .type = BROKER_CONFIG_INT,
            .default_value = "104857600",
            .min = BROKER_SOCKET_REQUEST_BYTES_MIN,
            .max = BROKER_SOCKET_REQUEST_BYTES_MAX,
            .synonym_of = BROKER_KEY_SOCKET_REQUEST_MAX_BYTES,
            .read_only = true,
            .doc = "Largest request frame accepted; a larger one closes the connection.",
        },
    [BROKER_KEY_QUEUED_MAX_REQUEST_BYTES] =
        {
            .name = "queued.max.request.bytes",
            .type = BROKER_CONFIG_LONG,
            .default_value = "268435456",
            .min = -1,
            .max = INT64_MAX,
            .synonym_of = BROKER_KEY_QUEUED_MAX_REQUEST_BYTES,
            .read_only = true,
            .doc = "Memory of requests in flight above which no more requests are read; -1: none.",
        },
    [BROKER_KEY_CONNECTIONS_MAX_IDLE_MS] =
        {
            .name = "connections.max.idle.ms",
            .type = BROKER_CONFIG_LONG,
            .default_value = "600000",
            .min = BROKER_IDLE_MS_MIN,
            .max = BROKER_IDLE_MS_MAX,
            .synonym_of = BROKER_KEY_CONNECTIONS_MAX_IDLE_MS,
            .read_only = true,
            .doc = "Idle time after which a client connection is closed, in milliseconds.",
        },
    [BROKER_KEY_HTTP_PORT] =
        {
            .name = "http.port",
            .type = BROKER_CONFIG_INT,
            .default_value = NULL,
            .min = 1,
            .max = BROKER_PORT_MAX,
            .synonym_of = BROKER_KEY_HTTP_PORT,
            .read_only = true,
            .doc = "Port reserved for the HTTP server (not bound yet: nothing serves HTTP); the "
                   "Kafka port + 1000 when not set.",
        },
    [BROKER_KEY_CLUSTER_PORT] =
        {
            .name = "cluster.port",
            .type = BROKER_CONFIG_INT,
            .default_value = NULL,
            .min = 1,
            .max = BROKER_PORT_MAX,
            .synonym_of = BROKER_KEY_CLUSTER_PORT,
            .read_only = true,
            .doc = "Port of the node-to-node cluster RPC; the Kafka port + 2000 when not set.",
        },
    [BROKER_KEY_CONTROLLER_QUORUM_VOTERS] =
        {
            .name = "controller.quorum.voters",
            .type = BROKER_CONFIG_STRING,
            .default_value = NULL,
            .min = 0,
            .max = BROKER_CONFIG_VALUE_BYTES_MAX - 1,
            .synonym_of = BROKER_KEY_CONTROLLER_QUORUM_VOTERS,
            .read_only = true,
            .doc = "The metadata group's voters as ID@HOST:PORT,... (each port that voter's "
                   "cluster port); not set: this node is the only voter.",
        },
    [BROKER_KEY_BROKER_RACK] =
        {
            .name = "broker.rack",
            .type = BROKER_CONFIG_STRING,
            .default_value = NULL,
            .min = 0,
            .max = BROKER_RACK_BYTES_MAX - 1,
            .synonym_of = BROKER_KEY_BROKER_RACK,
            .read_only = true,
            .doc = "The rack of this node, for rack-aware replica placement; not set: none.",
        },
    [BROKER_KEY_OFFSETS_TOPIC_NUM_PARTITIONS] =
        {
            .name = "offsets.topic.num.partitions",
            .type = BROKER_CONFIG_INT,
            .default_value = "50",
            .min = 1,
            .max = GROUP_OFFSETS_PARTITIONS_MAX,
            .synonym_of = BROKER_KEY_OFFSETS_TOPIC_NUM_PARTITIONS,
            .read_only = true,
            .doc = "Partitions of __consumer_offsets when the broker creates it.",
        },
    [BROKER_KEY_GROUP_INITIAL_REBALANCE_DELAY_MS] =
        {
            .name = "group.initial.rebalance.delay.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "3000",
            .min = 0,
            .max = GROUP_INITIAL_DELAY_MS_MAX,
            .synonym_of = BROKER_KEY_GROUP_INITIAL_REBALANCE_DELAY_MS,
            .read_only = true,
            .doc = "How long an empty group's first rebalance waits for more members.",
        },
    [BROKER_KEY_OFFSETS_RETENTION_MINUTES] =
        {
            .name = "offsets.retention.minutes",
            .type = BROKER_CONFIG_INT,
            .default_value = "10080",
            .min = 1,
            .max = INT32_MAX,
            .synonym_of = BROKER_KEY_OFFSETS_RETENTION_MINUTES,
            .read_only = true,
            .doc = "Minutes the committed offsets of an empty group are kept.",
        },
    [BROKER_KEY_CONTROLLER_MUTATION_RATE] =
        {
            .name = "controller.mutation.rate",
            .type = BROKER_CONFIG_INT,
            .default_value = "1000",
            .min = 1,
            .max = BROKER_MUTATION_RATE_MAX,
            .synonym_of = BROKER_KEY_CONTROLLER_MUTATION_RATE,
            .read_only = true,
            .doc = "Partitions per second that topic creation, partition creation and topic "
                   "deletion may add or remove (Kafka's controller_mutation_rate quota).",
        },
    [BROKER_KEY_CONTROLLER_QUOTA_WINDOW_NUM] =
        {
            .name = "controller.quota.window.num",
            .type = BROKER_CONFIG_INT,
            .default_value = "11",
            .min = 1,
            .max = BROKER_QUOTA_WINDOW_NUM_MAX,
            .synonym_of = BROKER_KEY_CONTROLLER_QUOTA_WINDOW_NUM,
            .read_only = true,
            .doc = "Samples of the mutation quota; the burst allowed is rate * samples * window.",
        },
    [BROKER_KEY_CONTROLLER_QUOTA_WINDOW_SIZE_SECONDS] =
        {
            .name = "controller.quota.window.size.seconds",
            .type = BROKER_CONFIG_INT,
            .default_value = "1",
            .min = 1,
            .max = BROKER_QUOTA_WINDOW_SECONDS_MAX,
            .synonym_of = BROKER_KEY_CONTROLLER_QUOTA_WINDOW_SIZE_SECONDS,
            .read_only = true,
            .doc = "Seconds per sample of the mutation quota.",
        },
    [BROKER_KEY_CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS] =
        {
            .name = "controller.quorum.election.timeout.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "300",
            .min = 2 * BROKER_RAFT_TICK_MS,
            .max = 60000,
            .synonym_of = BROKER_KEY_CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS,
            .read_only = true,
            .doc = "Milliseconds a Raft follower waits without hearing from its leader before it "
                   "starts an election (each waits a random time between this and twice this).",
        },
    [BROKER_KEY_BROKER_HEARTBEAT_INTERVAL_MS] =
        {
            .name = "broker.heartbeat.interval.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "2000",
            .min = BROKER_RAFT_TICK_MS,
            .max = 3600000,
            .synonym_of = BROKER_KEY_BROKER_HEARTBEAT_INTERVAL_MS,
            .read_only = true,
            .doc = "Milliseconds between a node's heartbeats to the controller.",
        },
    [BROKER_KEY_BROKER_SESSION_TIMEOUT_MS] =
        {
            .name = "broker.session.timeout.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "9000",
            .min = BROKER_RAFT_TICK_MS,
            .max = 3600000,
            .synonym_of = BROKER_KEY_BROKER_SESSION_TIMEOUT_MS,
            .read_only = true,
            .doc = "Milliseconds without a heartbeat after which the controller fences a node "
                   "(no longer offered to clients as a leader or coordinator).",
        },
    [BROKER_KEY_REPLICA_LAG_TIME_MAX_MS] =
        {
            .name = "replica.lag.time.max.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "30000",
            .min = BROKER_RAFT_TICK_MS,
            .max = 3600000,
            .synonym_of = BROKER_KEY_REPLICA_LAG_TIME_MAX_MS,
            .read_only = true,
            .doc = "Milliseconds a follower may go without reaching the leader's log end before "
                   "the leader takes it out of the ISR.",
        },
    [BROKER_KEY_CONTROLLED_SHUTDOWN_ENABLE] =
        {
            .name = "controlled.shutdown.enable",
            .type = BROKER_CONFIG_BOOLEAN,
            .default_value = "true",
            .synonym_of = BROKER_KEY_CONTROLLED_SHUTDOWN_ENABLE,
            .read_only = true,
            .doc = "Whether SIGTERM first hands every leadership of this node to an in-sync "
                   "follower.",
        },
    [BROKER_KEY_CONTROLLED_SHUTDOWN_TIMEOUT_MS] =
        {
            .name = "controlled.shutdown.timeout.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "10000",
            .min = 0,
            .max = 3600000,
            .synonym_of = BROKER_KEY_CONTROLLED_SHUTDOWN_TIMEOUT_MS,
            .read_only = true,
            .doc = "Longest a controlled shutdown waits for its leadership transfers.",
        },
    [BROKER_KEY_AUTO_LEADER_REBALANCE_ENABLE] =
        {
            .name = "auto.leader.rebalance.enable",
            .type = BROKER_CONFIG_BOOLEAN,
            .default_value = "true",
            .synonym_of = BROKER_KEY_AUTO_LEADER_REBALANCE_ENABLE,
            .read_only = true,
            .doc = "Whether a leader hands its partition back to the preferred replica (the "
                   "first) once that one is in sync.",
        },
    [BROKER_KEY_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS] =
        {
            .name = "leader.imbalance.check.interval.seconds",
            .type = BROKER_CONFIG_INT,
            .default_value = "300",
            .min = 1,
            .max = 86400,
            .synonym_of = BROKER_KEY_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS,
            .read_only = true,
            .doc = "Seconds between a node's checks for leaderships to hand back to preferred "
                   "replicas.",
        },
    [BROKER_KEY_PRODUCER_ID_EXPIRATION_MS] =
        {
            .name = "producer.id.expiration.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "86400000",
            .min = 1,
            .max = INT32_MAX,
            .synonym_of = BROKER_KEY_PRODUCER_ID_EXPIRATION_MS,
            .read_only = true,
            .doc = "Milliseconds a partition keeps an idempotent producer's state after the "
                   "timestamp of its last batch.",
        },
    [BROKER_KEY_TRANSACTION_STATE_LOG_NUM_PARTITIONS] =
        {
            .name = "transaction.state.log.num.partitions",
            .type = BROKER_CONFIG_INT,
            .default_value = "50",
            .min = 1,
            .max = TXN_STATE_PARTITIONS_MAX,
            .synonym_of = BROKER_KEY_TRANSACTION_STATE_LOG_NUM_PARTITIONS,
            .read_only = true,
            .doc = "Partitions of __transaction_state when the broker creates it.",
        },
    [BROKER_KEY_TRANSACTION_STATE_LOG_REPLICATION_FACTOR] =
        {
            .name = "transaction.state.log.replication.factor",
            .type = BROKER_CONFIG_INT,
            .default_value = "3",
            .min = 1,
            .max = RAFT_VOTERS_MAX,
            .synonym_of = BROKER_KEY_TRANSACTION_STATE_LOG_REPLICATION_FACTOR,
            .read_only = true,
            .doc = "Replicas of each __transaction_state partition when the broker creates it, "
                   "at most the registered brokers.",
        },
    [BROKER_KEY_TRANSACTION_STATE_LOG_MIN_ISR] =
        {
            .name = "transaction.state.log.min.isr",
            .type = BROKER_CONFIG_INT,
            .default_value = "2",
            .min = 1,
            .max = RAFT_VOTERS_MAX,
            .synonym_of = BROKER_KEY_TRANSACTION_STATE_LOG_MIN_ISR,
            .read_only = true,
            .doc = "min.insync.replicas of __transaction_state, at most its replication factor.",
        },
    [BROKER_KEY_TRANSACTION_MAX_TIMEOUT_MS] =
        {
            .name = "transaction.max.timeout.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "900000",
            .min = 1,
            .max = INT32_MAX,
            .synonym_of = BROKER_KEY_TRANSACTION_MAX_TIMEOUT_MS,
            .read_only = true,
            .doc = "The longest transaction.timeout.ms a producer may ask for; InitProducerId "
                   "with a longer one gets INVALID_TRANSACTION_TIMEOUT.",
        },
    [BROKER_KEY_TRANSACTIONAL_ID_EXPIRATION_MS] =
        {
            .name = "transactional.id.expiration.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "604800000",
            .min = 1,
            .max = INT32_MAX,
            .synonym_of = BROKER_KEY_TRANSACTIONAL_ID_EXPIRATION_MS,
            .read_only = true,
            .doc = "Milliseconds the transaction coordinator keeps a transactional id with no "
                   "transaction going on after its last change.",
        },
    [BROKER_KEY_TRANSACTION_ABORT_CHECK_INTERVAL_MS] =
        {
            .name = "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "10000",
            .min = 1,
            .max = INT32_MAX,
            .synonym_of = BROKER_KEY_TRANSACTION_ABORT_CHECK_INTERVAL_MS,
            .read_only = true,
            .doc = "How often the transaction coordinator looks for transactions past their "
                   "timeout (aborted, their producers fenced) and expired transactional ids.",
        },
    [BROKER_KEY_LOG_RETENTION_CHECK_INTERVAL_MS] =
        {
            .name = "log.retention.check.interval.ms",
            .type = BROKER_CONFIG_INT,
            .default_value = "30000",
            .min = 1,
            .max = INT32_MAX,
            .synonym_of = BROKER_KEY_LOG_RETENTION_CHECK_INTERVAL_MS,
            .read_only = true,
            .doc = "How often each partition's retention (by age and size) is applied.",
        },
};

const struct broker_config_key *broker_config_key_find(const char *name)
{
    ASSERT(name != NULL);
    for (size_t i = 0; i < ARRAY_LEN(broker_config_keys); i++) {
        if (strcmp(broker_config_keys[i].name, name) == 0)
            return &broker_config_keys[i];
    }
    return NULL;
}

static PRINTF_LIKE(3, 4) int fail(struct broker_config_error *err, int code, const char *fmt, ...)
{
    va_list ap;
    ASSERT(code < 0);
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
    return code;
}

/* The suffix of a value quoted in a message: "..." when it was cut at QUOTE_BYTES_MAX. */
static const char *elision(const char *value)
{
    return strlen(value) > QUOTE_BYTES_MAX ? "..." : "";
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\f';
}

static bool is_canonical(enum broker_config_key_id id)
{
    return broker_config_keys[id].synonym_of == id;
}

/* ---- input --------------------------------------------------------------------------------- */

void broker_config_input_init(struct broker_config_input *input, FILE *warn)
{
    ASSERT(input != NULL);
    memset(input, 0, sizeof(*input));
    input->warn = warn;
}

static void setting_clear(struct broker_config_setting *s)
{
    free(s->value);
    memset(s, 0, sizeof(*s));
}

void broker_config_input_deinit(struct broker_config_input *input)
{
    ASSERT(input != NULL);
    for (size_t i = 0; i < ARRAY_LEN(input->settings); i++)
        setting_clear(&input->settings[i]);
    setting_clear(&input->port);
    free(input->file_path);
    input->file_path = NULL;
}

/* Where a setting came from, for messages: "FILE line N", "--set", a flag or "default". */
static void origin_text(const struct broker_config_input *input,
                        const struct broker_config_setting *s, char *out, size_t out_bytes)
{
    switch (s->source) {
    case BROKER_CONFIG_SOURCE_NONE:
        snprintf(out, out_bytes, "default");
        break;
    case BROKER_CONFIG_SOURCE_FILE:
        snprintf(out, out_bytes, "%s line %u",
                 input->file_path != NULL ? input->file_path : "config file", s->line);
        break;
    case BROKER_CONFIG_SOURCE_SET:
        snprintf(out, out_bytes, "--set");
        break;
    case BROKER_CONFIG_SOURCE_FLAG:
        snprintf(out, out_bytes, "%s", s->flag);
        break;
    }
}

static void setting_store(struct broker_config_setting *s, enum broker_config_source source,
                          const char *value, uint32_t line, const char *flag)
{
    free(s->value);
    s->value = xstrdup(value);
    s->source = source;
    s->line = line;
    s->flag = flag;
}

int broker_config_input_set(struct broker_config_input *input, enum broker_config_source source,
                            const char *key, const char *value, uint32_t line, const char *flag,
                            struct broker_config_error *err)
{
    ASSERT(input != NULL && key != NULL && value != NULL);
    ASSERT(source != BROKER_CONFIG_SOURCE_NONE && (source != BROKER_CONFIG_SOURCE_FLAG || flag));
    struct broker_config_setting probe = {.source = source, .line = line, .flag = flag};
    char origin[IO_PATH_BYTES_MAX + 32];
    origin_text(input, &probe, origin, sizeof(origin));

    const struct broker_config_key *k = broker_config_key_find(key);
    if (k == NULL) {
        /* Kafka accepts keys it does not know and logs them; a typo then shows up here. */
        if (input->warn != NULL)
            fprintf(input->warn,
                    "chronik: warning: ignoring unknown configuration key '%.*s%s' (from %s)\n",
                    QUOTE_BYTES_MAX, key, elision(key), origin);
        return 0;
    }
    if (strlen(value) >= BROKER_CONFIG_VALUE_BYTES_MAX)
        return fail(err, ERR_TOO_LARGE, "the value of %s (from %s) is longer than %u bytes",
                    k->name, origin, BROKER_CONFIG_VALUE_BYTES_MAX - 1);

    struct broker_config_setting *s = &input->settings[k - broker_config_keys];
    if (s->value != NULL && s->source > source)
        return 0;
    setting_store(s, source, value, line, flag);
    return 0;
}

/* ---- properties files ---------------------------------------------------------------------- */

/* Index of the terminator ('\n' or '\r') of the natural line starting at pos, or len. */
static size_t line_end(const char *text, size_t len, size_t pos)
{
    while (pos < len && text[pos] != '\n' && text[pos] != '\r')
        pos++;
    return pos;
}

/* Start of the natural line after the one ending at end; "\r\n" is one terminator. */
static size_t line_next(const char *text, size_t len, size_t end)
{
    if (end >= len)
        return len;
    if (text[end] == '\r' && end + 1 < len && text[end + 1] == '\n')
        return end + 2;
    return end + 1;
}

static size_t skip_blanks(const char *text, size_t pos, size_t end)
{
    while (pos < end && is_blank(text[pos]))
        pos++;
    return pos;
}

/* A line continues onto the next when it ends in an odd number of backslashes. */
static bool line_continues(const char *text, size_t start, size_t end)
{
    size_t n = 0;
    while (end > start && text[end - 1] == '\\') {
        n++;
        end--;
    }
    return n % 2 == 1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits of a \uXXXX escape at p[*i] (just after the 'u'). */
static int read_hex4(const char *p, size_t n, size_t *i, uint32_t *out)
{
    uint32_t v = 0;
    if (n - *i < 4)
        return ERR_CORRUPT;
    for (size_t k = 0; k < 4; k++) {
        int h = hex_value(p[*i + k]);
        if (h < 0)
            return ERR_CORRUPT;
        v = v << 4 | (uint32_t)h;
    }
    *i += 4;
    *out = v;
    return 0;
}

static void put_utf8(struct buf *out, uint32_t cp)
{
    if (cp < 0x80) {
        buf_put_u8(out, (uint8_t)cp);
    } else if (cp < 0x800) {
        buf_put_u8(out, (uint8_t)(0xC0 | cp >> 6));
        buf_put_u8(out, (uint8_t)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        buf_put_u8(out, (uint8_t)(0xE0 | cp >> 12));
        buf_put_u8(out, (uint8_t)(0x80 | (cp >> 6 & 0x3F)));
        buf_put_u8(out, (uint8_t)(0x80 | (cp & 0x3F)));
    } else {
        buf_put_u8(out, (uint8_t)(0xF0 | cp >> 18));
        buf_put_u8(out, (uint8_t)(0x80 | (cp >> 12 & 0x3F)));
        buf_put_u8(out, (uint8_t)(0x80 | (cp >> 6 & 0x3F)));
        buf_put_u8(out, (uint8_t)(0x80 | (cp & 0x3F)));
    }
}

/*
 * Decodes a \uXXXX escape (the backslash and 'u' already consumed) as UTF-8, joining a UTF-16
 * surrogate pair written as two escapes. NUL and unpaired surrogates are rejected: values are
 * C strings and must be valid text.
 */
static int unescape_unicode(const char *p, size_t n, size_t *i, struct buf *out)
{
    uint32_t cp = 0;
    uint32_t low = 0;
    if (read_hex4(p, n, i, &cp) < 0 || cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
        return ERR_CORRUPT;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (n - *i < 2 || p[*i] != '\\' || p[*i + 1] != 'u')
            return ERR_CORRUPT;
        *i += 2;
        if (read_hex4(p, n, i, &low) < 0 || low < 0xDC00 || low > 0xDFFF)
            return ERR_CORRUPT;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    put_utf8(out, cp);
    return 0;
}

/*
 * Appends the unescaped text of p[*i..n) to out. A key stops at the first unescaped '=', ':'
 * or blank; a value runs to the end. *kept is set to the length of out up to its last escaped
 * or non-blank byte, so trailing unescaped blanks can be trimmed as Kafka trims values.
 */
static int unescape(const char *p, size_t n, size_t *i, bool is_key, struct buf *out, size_t *kept)
{
    *kept = out->len;
    while (*i < n) {
        char c = p[*i];
        if (is_key && (c == '=' || c == ':' || is_blank(c)))
            break;
        (*i)++;
        if (c != '\\') {
            buf_put_u8(out, (uint8_t)c);
            if (!is_blank(c))
                *kept = out->len;
            continue;
        }
        if (*i == n)
            break; /* A lone backslash at the very end of the text escapes nothing. */
        c = p[(*i)++];
        if (c == 'u') {
            if (unescape_unicode(p, n, i, out) < 0)
                return ERR_CORRUPT;
        } else {
            static const char from[] = "tnrf";
            static const char to[] = "\t\n\r\f";
            const char *m = memchr(from, c, sizeof(from) - 1);
            buf_put_u8(out, (uint8_t)(m != NULL ? to[m - from] : c));
        }
        *kept = out->len;
    }
    return 0;
}

/* Splits one logical line into key and value, Java's way, and records it. */
static int load_logical_line(struct broker_config_input *input, const char *p, size_t n,
                             uint32_t line, struct broker_config_error *err)
{
    struct buf key;
    struct buf value;
    size_t i = 0;
    size_t kept = 0;
    bool has_separator = false;
    int rc = 0;
    buf_init(&key);
    buf_init(&value);

    rc = unescape(p, n, &i, true, &key, &kept);
    if (rc < 0)
        goto fail;
    if (i < n && (p[i] == '=' || p[i] == ':')) {
        has_separator = true;
        i++;
    }
    /* Blanks, then at most one separator if none was seen yet, then blanks, then the value. */
    while (i < n && (is_blank(p[i]) || (!has_separator && (p[i] == '=' || p[i] == ':')))) {
        has_separator = has_separator || !is_blank(p[i]);
        i++;
    }
    rc = unescape(p, n, &i, false, &value, &kept);
    if (rc < 0)
        goto fail;
    value.len = kept;
    buf_put_u8(&key, 0);
    buf_put_u8(&value, 0);
    rc = broker_config_input_set(input, BROKER_CONFIG_SOURCE_FILE, (const char *)key.data,
                                 (const char *)value.data, line, NULL, err);
fail:
    if (rc == ERR_CORRUPT)
        fail(err, rc,
             "%s line %u: malformed \\uXXXX escape (four hex digits, no NUL, surrogates "
             "in pairs)",
             input->file_path, line);
    buf_deinit(&key);
    buf_deinit(&value);
    return rc;
}

int broker_config_input_load_text(struct broker_config_input *input, const char *text, size_t len,
                                  const char *origin, struct broker_config_error *err)
{
    ASSERT(input != NULL && origin != NULL && (text != NULL || len == 0));
    ASSERT(input->file_path == NULL);
    struct buf logical;
    size_t pos = 0;
    uint32_t line = 0;
    int rc = 0;
    buf_init(&logical);
    input->file_path = xstrdup(origin);

    if (len > BROKER_CONFIG_FILE_BYTES_MAX) {
        rc = fail(err, ERR_TOO_LARGE, "%s is larger than %u bytes", origin,
                  BROKER_CONFIG_FILE_BYTES_MAX);
        goto fail;
    }
    const char *nul = len > 0 ? memchr(text, '\0', len) : NULL;
    if (nul != NULL) {
        rc = fail(err, ERR_CORRUPT, "%s holds a NUL byte at offset %zu; it must be text", origin,
                  (size_t)(nul - text));
        goto fail;
    }
    while (pos < len) {
        size_t end = line_end(text, len, pos);
        size_t start = skip_blanks(text, pos, end);
        uint32_t first_line = ++line;
        pos = line_next(text, len, end);
        /* Blank lines and comments are skipped; a comment line never continues. */
        if (start == end || text[start] == '#' || text[start] == '!')
            continue;
        buf_reset(&logical);
        while (line_continues(text, start, end) && pos < len) {
            buf_append(&logical, text + start, end - start - 1);
            end = line_end(text, len, pos);
            start = skip_blanks(text, pos, end);
            line++;
            pos = line_next(text, len, end);
        }
        /* At the end of the text a continuation has nothing to join: Java drops it. */
        buf_append(&logical, text + start, end - start - line_continues(text, start, end));
        rc = load_logical_line(input, logical.len > 0 ? (const char *)logical.data : "",
                               logical.len, first_line, err);
        if (rc < 0)
            goto fail;
    }
fail:
    buf_deinit(&logical);
    return rc;
}

/* The error of a failed open or read, from errno. */
static int read_error(const char *path, struct broker_config_error *err)
{
    int rc = -errno;
    return fail(err, rc, "cannot read config file %s: %s", path, err_str(rc));
}

int broker_config_input_load_file(struct broker_config_input *input, const char *path,
                                  struct broker_config_error *err)
{
    ASSERT(input != NULL && path != NULL);
    char *text = xmalloc(BROKER_CONFIG_FILE_BYTES_MAX + 1);
    size_t len = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = read_error(path, err);
        goto fail;
    }
    /* Read one byte past the bound so an oversized file is noticed, not silently cut. */
    while (len <= BROKER_CONFIG_FILE_BYTES_MAX) {
        ssize_t n = read(fd, text + len, BROKER_CONFIG_FILE_BYTES_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = read_error(path, err);
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    rc = broker_config_input_load_text(input, text, len, path, err);
fail:
    if (fd >= 0)
        close(fd);
    free(text);
    return rc;
}

/* ---- command line -------------------------------------------------------------------------- */

enum cli_option {
    OPT_CONFIG,
    OPT_SET,
    OPT_DATA_DIR,
    OPT_PORT,
    OPT_NODE_ID,
    OPT_PRINT_CONFIG,
    OPT_HELP,
    OPT_VERSION,
};

struct cli_option_spec {
    const char *name;
    enum cli_option option;
    bool takes_value;
};

static const struct cli_option_spec cli_options[] = {
    {"--config", OPT_CONFIG, true},     {"--set", OPT_SET, true},
    {"--data-dir", OPT_DATA_DIR, true}, {"--port", OPT_PORT, true},
    {"--node-id", OPT_NODE_ID, true},   {"--print-config", OPT_PRINT_CONFIG, false},
    {"--help", OPT_HELP, false},        {"-h", OPT_HELP, false},
    {"--version", OPT_VERSION, false},
};

/* The option arg names (before any '='), or NULL. *inline_value gets the text after '='. */
static const struct cli_option_spec *cli_option_find(const char *arg, const char **inline_value)
{
    const char *eq = strchr(arg, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    *inline_value = eq != NULL ? eq + 1 : NULL;
    for (size_t i = 0; i < ARRAY_LEN(cli_options); i++) {
        if (strlen(cli_options[i].name) == name_len &&
            memcmp(cli_options[i].name, arg, name_len) == 0)
            return &cli_options[i];
    }
    return NULL;
}

/* Copies s[0..n) without surrounding blanks into a new string. */
static char *strndup_trimmed(const char *s, size_t n)
{
    while (n > 0 && (is_blank(*s) || *s == '\n' || *s == '\r')) {
        s++;
        n--;
    }
    while (n > 0 && (is_blank(s[n - 1]) || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    char *out = xmalloc(n + 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

static int cli_set(struct broker_config_input *input, const char *arg,
                   struct broker_config_error *err)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL)
        return fail(err, ERR_INVALID, "--set expects KEY=VALUE, got '%.*s'", QUOTE_BYTES_MAX, arg);
    char *key = strndup_trimmed(arg, (size_t)(eq - arg));
    char *value = strndup_trimmed(eq + 1, strlen(eq + 1));
    int rc = 0;
    if (key[0] == '\0')
        rc = fail(err, ERR_INVALID, "--set expects KEY=VALUE, got an empty key in '%.*s'",
                  QUOTE_BYTES_MAX, arg);
    else
        rc = broker_config_input_set(input, BROKER_CONFIG_SOURCE_SET, key, value, 0, NULL, err);
    free(key);
    free(value);
    return rc;
}

static int cli_apply(struct broker_config_input *input, const struct cli_option_spec *spec,
                     const char *value, bool *config_seen, struct broker_config_error *err)
{
    switch (spec->option) {
    case OPT_CONFIG:
        if (*config_seen)
            return fail(err, ERR_INVALID, "--config given more than once; give one file");
        *config_seen = true;
        return broker_config_input_load_file(input, value, err);
    case OPT_SET:
        return cli_set(input, value, err);
    case OPT_DATA_DIR:
        return broker_config_input_set(input, BROKER_CONFIG_SOURCE_FLAG, "log.dirs", value, 0,
                                       spec->name, err);
    case OPT_NODE_ID:
        return broker_config_input_set(input, BROKER_CONFIG_SOURCE_FLAG, "node.id", value, 0,
                                       spec->name, err);
    case OPT_PORT:
        if (strlen(value) >= BROKER_CONFIG_VALUE_BYTES_MAX)
            return fail(err, ERR_TOO_LARGE, "the value of --port is longer than %u bytes",
                        BROKER_CONFIG_VALUE_BYTES_MAX - 1);
        setting_store(&input->port, BROKER_CONFIG_SOURCE_FLAG, value, 0, spec->name);
        return 0;
    case OPT_PRINT_CONFIG:
    case OPT_HELP:
    case OPT_VERSION:
        break;
    }
    UNREACHABLE();
}

int broker_config_parse_args(struct broker_config_input *input, int argc, char *const argv[],
                             enum broker_cli_action *action, struct broker_config_error *err)
{
    ASSERT(input != NULL && action != NULL);
    ASSERT(argc >= 1 && argv != NULL);
    bool config_seen = false;
    *action = BROKER_CLI_RUN;
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        const struct cli_option_spec *spec = cli_option_find(argv[i], &value);
        if (spec == NULL && argv[i][0] == '-')
            return fail(err, ERR_INVALID, "unknown option '%.*s'; see chronik --help",
                        QUOTE_BYTES_MAX, argv[i]);
        if (spec == NULL)
            return fail(err, ERR_INVALID, "unexpected argument '%.*s'; see chronik --help",
                        QUOTE_BYTES_MAX, argv[i]);
        if (!spec->takes_value && value != NULL)
            return fail(err, ERR_INVALID, "option %s takes no value", spec->name);
        if (spec->option == OPT_HELP || spec->option == OPT_VERSION) {
            *action = spec->option == OPT_HELP ? BROKER_CLI_HELP : BROKER_CLI_VERSION;
            return 0;
        }
        if (spec->option == OPT_PRINT_CONFIG) {
            *action = BROKER_CLI_PRINT_CONFIG;
            continue;
        }
        if (value == NULL && i + 1 >= argc)
            return fail(err, ERR_INVALID, "option %s needs a value; see chronik --help",
                        spec->name);
        if (value == NULL)
            value = argv[++i];
        int rc = cli_apply(input, spec, value, &config_seen, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- validation ---------------------------------------------------------------------------- */

/* Kafka's integer syntax: optional sign, decimal digits, nothing else. */
static bool parse_int64(const char *s, int64_t *out)
{
    char *end = NULL;
    if (!(s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')))
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool is_hostname_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* An IPv6 literal with an optional %zone, as written between brackets. */
static bool is_ipv6_literal(const char *host)
{
    char addr[INET6_ADDRSTRLEN];
    struct in6_addr parsed;
    const char *zone = strchr(host, '%');
    size_t addr_len = zone != NULL ? (size_t)(zone - host) : strlen(host);
    if (addr_len == 0 || addr_len >= sizeof(addr))
        return false;
    if (zone != NULL) {
        if (zone[1] == '\0')
            return false;
        for (const char *z = zone + 1; *z != '\0'; z++) {
            if (!is_hostname_byte(*z))
                return false;
        }
    }
    memcpy(addr, host, addr_len);
    addr[addr_len] = '\0';
    return inet_pton(AF_INET6, addr, &parsed) == 1;
}

/* True for a host that means "every interface": empty, 0.0.0.0 or an unspecified IPv6. */
static bool is_wildcard_host(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (host[0] == '\0')
        return true;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return v4.s_addr == 0;
    return inet_pton(AF_INET6, host, &v6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&v6);
}

static bool parse_port(const char *s, uint16_t *out)
{
    int64_t v = 0;
    if (s[0] < '0' || s[0] > '9' || !parse_int64(s, &v) || v < 1 || v > BROKER_PORT_MAX)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* Parses HOST:PORT, [IPV6]:PORT or :PORT. On failure *why says what is wrong. */
static int parse_hostport(const char *s, struct broker_listener *out, const char **why)
{
    const char *colon = NULL;
    const char *host = s;
    size_t host_len = 0;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) {
            *why = "an IPv6 address needs its closing ']'";
            return ERR_INVALID;
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
        if (*colon != ':') {
            *why = "expected :PORT after the host";
            return ERR_INVALID;
        }
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            *why = "expected HOST:PORT";
            return ERR_INVALID;
        }
        host_len = (size_t)(colon - s);
    }
    if (host_len >= sizeof(out->host) || (s[0] != '[' && host_len > HOSTNAME_BYTES_MAX)) {
        *why = "the host is too long";
        return ERR_INVALID;
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    if (s[0] == '[' && !is_ipv6_literal(out->host)) {
        *why = "the host in brackets is not an IPv6 address";
        return ERR_INVALID;
    }
    if (s[0] != '[' && memchr(host, ':', host_len) != NULL) {
        *why = "an IPv6 host must be in brackets, as [::1]:9092";
        return ERR_INVALID;
    }
    for (size_t i = 0; s[0] != '[' && i < host_len; i++) {
        if (!is_hostname_byte(host[i])) {
            *why = "a host may hold only letters, digits, '-', '.' and '_'";
            return ERR_INVALID;
        }
    }
    if (!parse_port(colon + 1, &out->port)) {
        *why = "the port must be a number from 1 to 65535";
        return ERR_INVALID;
    }
    return 0;
}

/* Parses PLAINTEXT://HOST:PORT, the one listener form Chronik serves. */
static int parse_listener(const char *s, struct broker_listener *out, const char **why)
{
    static const char scheme[] = "PLAINTEXT://";
    if (strchr(s, ',') != NULL) {
        *why = "Chronik serves one listener; give exactly one";
        return ERR_INVALID;
    }
    if (strstr(s, "://") == NULL) {
        *why = "expected PLAINTEXT://HOST:PORT";
        return ERR_INVALID;
    }
    if (strncasecmp(s, scheme, sizeof(scheme) - 1) != 0) {
        *why = "only the PLAINTEXT security protocol is supported, as PLAINTEXT://HOST:PORT";
        return ERR_INVALID;
    }
    return parse_hostport(s + sizeof(scheme) - 1, out, why);
}

/* "[host]:65535" with the longest host, NUL included. */
#define HOSTPORT_BYTES_MAX (BROKER_HOST_BYTES_MAX + 8)
STATIC_ASSERT(HOSTPORT_BYTES_MAX + 12 <= BROKER_LISTENER_BYTES_MAX, "a listener fits its bound");

static void format_hostport(const struct broker_listener *l, uint16_t port, char *out,
                            size_t out_bytes)
{
    if (strchr(l->host, ':') != NULL)
        snprintf(out, out_bytes, "[%s]:%u", l->host, port);
    else
        snprintf(out, out_bytes, "%s:%u", l->host, port);
}

static bool same_address(const struct broker_listener *a, const struct broker_listener *b)
{
    return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

/* Parses one voter entry, ID@HOST:PORT, of entry_len bytes (blanks already trimmed). */
static int parse_voter(const char *entry, size_t entry_len, uint32_t index,
                       struct broker_voter *out, char *why, size_t why_bytes)
{
    char text[BROKER_CONFIG_VALUE_BYTES_MAX];
    const char *reason = NULL;
    int64_t id = 0;
    ASSERT(entry_len < sizeof(text));
    memcpy(text, entry, entry_len);
    text[entry_len] = '\0';
    char *at = strchr(text, '@');
    if (at == NULL) {
        snprintf(why, why_bytes, "entry %u '%.*s%s' is not ID@HOST:PORT", index, QUOTE_BYTES_MAX,
                 text, elision(text));
        return ERR_INVALID;
    }
    *at = '\0';
    if (text[0] < '0' || text[0] > '9' || !parse_int64(text, &id) || id > BROKER_NODE_ID_MAX) {
        snprintf(why, why_bytes, "entry %u: the node id '%.*s%s' is not an integer from 0 to %d",
                 index, QUOTE_BYTES_MAX, text, elision(text), (int)BROKER_NODE_ID_MAX);
        return ERR_INVALID;
    }
    out->id = (int32_t)id;
    if (parse_hostport(at + 1, &out->addr, &reason) < 0) {
        snprintf(why, why_bytes, "entry %u (node %d): %s", index, (int)out->id, reason);
        return ERR_INVALID;
    }
    if (is_wildcard_host(out->addr.host)) {
        snprintf(why, why_bytes,
                 "entry %u (node %d): peers need a host they can reach, not a wildcard address",
                 index, (int)out->id);
        return ERR_INVALID;
    }
    return 0;
}

int broker_voters_parse(const char *text, struct broker_voters *out, char *why, size_t why_bytes)
{
    ASSERT(text != NULL && out != NULL && why != NULL && why_bytes > 0);
    size_t len = strlen(text);
    size_t pos = 0;
    memset(out, 0, sizeof(*out));
    if (len >= BROKER_CONFIG_VALUE_BYTES_MAX) {
        snprintf(why, why_bytes, "longer than %u bytes", BROKER_CONFIG_VALUE_BYTES_MAX - 1);
        return ERR_INVALID;
    }
    for (uint32_t index = 1;; index++) {
        const char *comma = memchr(text + pos, ',', len - pos);
        size_t end = comma != NULL ? (size_t)(comma - text) : len;
        size_t start = pos;
        size_t stop = end;
        while (start < stop && is_blank(text[start]))
            start++;
        while (stop > start && is_blank(text[stop - 1]))
            stop--;
        if (start == stop) {
            snprintf(why, why_bytes, "entry %u is empty; expected ID@HOST:PORT,ID@HOST:PORT,...",
                     index);
            return ERR_INVALID;
        }
        if (out->count == BROKER_VOTERS_MAX) {
            snprintf(why, why_bytes, "more than %u voters", BROKER_VOTERS_MAX);
            return ERR_INVALID;
        }
        struct broker_voter *v = &out->voters[out->count];
        if (parse_voter(text + start, stop - start, index, v, why, why_bytes) < 0)
            return ERR_INVALID;
        for (uint32_t i = 0; i < out->count; i++) {
            const struct broker_voter *o = &out->voters[i];
            char hostport[HOSTPORT_BYTES_MAX];
            if (o->id == v->id) {
                snprintf(why, why_bytes, "node id %d appears twice", (int)v->id);
                return ERR_INVALID;
            }
            if (same_address(&o->addr, &v->addr)) {
                format_hostport(&v->addr, v->addr.port, hostport, sizeof(hostport));
                snprintf(why, why_bytes, "nodes %d and %d have the same address %s", (int)o->id,
                         (int)v->id, hostport);
                return ERR_INVALID;
            }
        }
        out->count++;
        if (comma == NULL)
            return 0;
        pos = end + 1;
    }
}

const struct broker_voter *broker_voters_find(const struct broker_voters *v, int32_t id)
{
    ASSERT(v != NULL);
    for (uint32_t i = 0; i < v->count; i++) {
        if (v->voters[i].id == id)
            return &v->voters[i];
    }
    return NULL;
}

/* Kafka's BrokerCompressionType names (exact case, as Kafka's validator takes them). */
static bool is_compression_type(const char *text)
{
    static const char *const names[] = {"producer", "uncompressed", "gzip",
                                        "snappy",   "lz4",          "zstd"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (strcmp(text, names[i]) == 0)
            return true;
    return false;
}

static int bad_value(const struct broker_config_input *input, enum broker_config_key_id id,
                     const struct broker_config_setting *s, const char *text, const char *allowed,
                     struct broker_config_error *err)
{
    char origin[IO_PATH_BYTES_MAX + 32];
    origin_text(input, s, origin, sizeof(origin));
    return fail(err, ERR_INVALID, "invalid value '%.*s%s' for %s (from %s): %s", QUOTE_BYTES_MAX,
                text, elision(text), broker_config_keys[id].name, origin, allowed);
}

/* Checks text as a value of key id: its syntax, its bounds, and what the key means. */
static int check_value(const struct broker_config_input *input, enum broker_config_key_id id,
                       const struct broker_config_setting *s, const char *text,
                       struct broker_config_error *err)
{
    const struct broker_config_key *k = &broker_config_keys[id];
    struct broker_listener listener;
    const char *why = NULL;
    char allowed[128];
    int64_t v = 0;

    switch (k->type) {
    case BROKER_CONFIG_BOOLEAN:
        if (strcasecmp(text, "true") == 0 || strcasecmp(text, "false") == 0)
            return 0;
        return bad_value(input, id, s, text, "expected true or false", err);
    case BROKER_CONFIG_INT:
    case BROKER_CONFIG_LONG:
        if (parse_int64(text, &v) && v >= k->min && v <= k->max)
            return 0;
        snprintf(allowed, sizeof(allowed), "expected an integer from %lld to %lld",
                 (long long)k->min, (long long)k->max);
        return bad_value(input, id, s, text, allowed, err);
    case BROKER_CONFIG_STRING:
        break;
    }
    if (strlen(text) > (size_t)k->max) {
        snprintf(allowed, sizeof(allowed), "expected at most %lld bytes", (long long)k->max);
        return bad_value(input, id, s, text, allowed, err);
    }
    switch (k->synonym_of) {
    case BROKER_KEY_LOG_DIRS:
        if (text[0] == '\0')
            return bad_value(input, id, s, text, "expected a directory path", err);
        if (strchr(text, ',') != NULL)
            return bad_value(input, id, s, text,
                             "Chronik keeps its data in one directory; give one path", err);
        return 0;
    case BROKER_KEY_LISTENERS:
        if (parse_listener(text, &listener, &why) < 0)
            return bad_value(input, id, s, text, why, err);
        return 0;
    case BROKER_KEY_COMPRESSION_TYPE:
        if (!is_compression_type(text))
            return bad_value(input, id, s, text,
                             "expected producer, uncompressed, gzip, snappy, lz4 or zstd", err);
        return 0;
    case BROKER_KEY_ADVERTISED_LISTENERS:
        if (parse_listener(text, &listener, &why) < 0)
            return bad_value(input, id, s, text, why, err);
        if (is_wildcard_host(listener.host))
            return bad_value(input, id, s, text,
                             "clients need a host they can reach, not a wildcard address", err);
        return 0;
    case BROKER_KEY_CONTROLLER_QUORUM_VOTERS: {
        struct broker_voters voters;
        char voters_why[BROKER_CONFIG_ERROR_BYTES_MAX / 2];
        if (broker_voters_parse(text, &voters, voters_why, sizeof(voters_why)) < 0)
            return bad_value(input, id, s, text, voters_why, err);
        return 0;
    }
    case BROKER_KEY_BROKER_RACK:
        for (const char *c = text; *c != '\0'; c++) {
            if ((unsigned char)*c < ' ')
                return bad_value(input, id, s, text, "a rack name holds no control characters",
                                 err);
        }
        return 0;
    default:
        UNREACHABLE();
    }
}

/* A setting counts when it has a value; an empty value clears a key with no fixed default,
 * so `--set log.retention.ms=` undoes the file's log.retention.ms. */
static bool is_present(const struct broker_config_setting *s, enum broker_config_key_id id)
{
    if (s->value == NULL)
        return false;
    return s->value[0] != '\0' || broker_config_keys[id].default_value != NULL;
}

/*
 * The member of canonical key c's synonym group whose value applies: the one from the latest
 * source; within a source, the first in table order (Kafka's precedence). When none is set,
 * the first member with a default. BROKER_KEY_COUNT when the key has neither (it is derived).
 */
static enum broker_config_key_id effective_member(const bool present[],
                                                  const struct broker_config_input *input,
                                                  enum broker_config_key_id c)
{
    enum broker_config_key_id best = BROKER_KEY_COUNT;
    enum broker_config_key_id fallback = BROKER_KEY_COUNT;
    ASSERT(is_canonical(c));
    for (enum broker_config_key_id id = c;
         id < BROKER_KEY_COUNT && broker_config_keys[id].synonym_of == c; id++) {
        if (present[id] &&
            (best == BROKER_KEY_COUNT || input->settings[id].source > input->settings[best].source))
            best = id;
        if (fallback == BROKER_KEY_COUNT && broker_config_keys[id].default_value != NULL)
            fallback = id;
    }
    return best != BROKER_KEY_COUNT ? best : fallback;
}

/* The number a member holds, scaled to its canonical key's unit; -1 (no limit) stays -1. */
static int64_t member_number(const char *text, enum broker_config_key_id id)
{
    int64_t v = 0;
    bool ok = parse_int64(text, &v);
    ASSERT(ok);
    if (v == -1)
        return v;
    switch (id) {
    case BROKER_KEY_LOG_ROLL_HOURS:
    case BROKER_KEY_LOG_RETENTION_HOURS:
        return v * HOUR_MS;
    case BROKER_KEY_LOG_RETENTION_MINUTES:
        return v * MINUTE_MS;
    default:
        return v;
    }
}

static void apply_number(struct broker_config *config, enum broker_config_key_id c, int64_t v)
{
    switch (c) {
    case BROKER_KEY_NODE_ID:
        config->node_id = (int32_t)v;
        break;
    case BROKER_KEY_NUM_PARTITIONS:
        config->num_partitions = (int32_t)v;
        break;
    case BROKER_KEY_DEFAULT_REPLICATION_FACTOR:
        config->default_replication_factor = (int32_t)v;
        break;
    case BROKER_KEY_MIN_INSYNC_REPLICAS:
        config->min_insync_replicas = (int32_t)v;
        break;
    case BROKER_KEY_LOG_SEGMENT_BYTES:
        config->log_segment_bytes = (int32_t)v;
        break;
    case BROKER_KEY_LOG_ROLL_MS:
        config->log_roll_ms = v;
        break;
    case BROKER_KEY_LOG_RETENTION_MS:
        config->log_retention_ms = v;
        break;
    case BROKER_KEY_LOG_RETENTION_BYTES:
        config->log_retention_bytes = v;
        break;
    case BROKER_KEY_LOG_CACHE_TAIL_BYTES:
        config->log_cache_tail_bytes = v;
        break;
    case BROKER_KEY_MESSAGE_MAX_BYTES:
        config->message_max_bytes = (int32_t)v;
        break;
    case BROKER_KEY_SOCKET_REQUEST_MAX_BYTES:
        config->socket_request_max_bytes = (int32_t)v;
        break;
    case BROKER_KEY_QUEUED_MAX_REQUEST_BYTES:
        config->queued_max_request_bytes = v;
        break;
    case BROKER_KEY_CONNECTIONS_MAX_IDLE_MS:
        config->connections_max_idle_ms = v;
        break;
    case BROKER_KEY_HTTP_PORT:
        config->http_port = (uint16_t)v;
        break;
    case BROKER_KEY_CLUSTER_PORT:
        config->cluster_port = (uint16_t)v;
        break;
    case BROKER_KEY_OFFSETS_TOPIC_NUM_PARTITIONS:
        config->offsets_topic_num_partitions = (int32_t)v;
        break;
    case BROKER_KEY_GROUP_INITIAL_REBALANCE_DELAY_MS:
        config->group_initial_rebalance_delay_ms = (int32_t)v;
        break;
    case BROKER_KEY_OFFSETS_RETENTION_MINUTES:
        config->offsets_retention_minutes = (int32_t)v;
        break;
    case BROKER_KEY_CONTROLLER_MUTATION_RATE:
        config->controller_mutation_rate = (int32_t)v;
        break;
    case BROKER_KEY_CONTROLLER_QUOTA_WINDOW_NUM:
        config->controller_quota_window_num = (int32_t)v;
        break;
    case BROKER_KEY_CONTROLLER_QUOTA_WINDOW_SIZE_SECONDS:
        config->controller_quota_window_size_seconds = (int32_t)v;
        break;
    case BROKER_KEY_CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS:
        config->controller_quorum_election_timeout_ms = (int32_t)v;
        break;
    case BROKER_KEY_BROKER_HEARTBEAT_INTERVAL_MS:
        config->broker_heartbeat_interval_ms = (int32_t)v;
        break;
    case BROKER_KEY_BROKER_SESSION_TIMEOUT_MS:
        config->broker_session_timeout_ms = (int32_t)v;
        break;
    case BROKER_KEY_REPLICA_LAG_TIME_MAX_MS:
        config->replica_lag_time_max_ms = (int32_t)v;
        break;
    case BROKER_KEY_CONTROLLED_SHUTDOWN_TIMEOUT_MS:
        config->controlled_shutdown_timeout_ms = (int32_t)v;
        break;
    case BROKER_KEY_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS:
        config->leader_imbalance_check_interval_seconds = (int32_t)v;
        break;
    case BROKER_KEY_PRODUCER_ID_EXPIRATION_MS:
        config->producer_id_expiration_ms = (int32_t)v;
        break;
    case BROKER_KEY_TRANSACTION_STATE_LOG_NUM_PARTITIONS:
        config->transaction_state_log_num_partitions = (int32_t)v;
        break;
    case BROKER_KEY_TRANSACTION_STATE_LOG_REPLICATION_FACTOR:
        config->transaction_state_log_replication_factor = (int32_t)v;
        break;
    case BROKER_KEY_TRANSACTION_STATE_LOG_MIN_ISR:
        config->transaction_state_log_min_isr = (int32_t)v;
        break;
    case BROKER_KEY_TRANSACTION_MAX_TIMEOUT_MS:
        config->transaction_max_timeout_ms = (int32_t)v;
        break;
    case BROKER_KEY_TRANSACTIONAL_ID_EXPIRATION_MS:
        config->transactional_id_expiration_ms = (int32_t)v;
        break;
    case BROKER_KEY_TRANSACTION_ABORT_CHECK_INTERVAL_MS:
        config->transaction_abort_check_interval_ms = (int32_t)v;
        break;
    case BROKER_KEY_LOG_RETENTION_CHECK_INTERVAL_MS:
        config->log_retention_check_interval_ms = (int32_t)v;
        break;
    default:
        UNREACHABLE();
    }
}

int broker_config_set_dynamic(struct broker_config *config, enum broker_config_key_id id,
                              const char *text, char *why, size_t why_bytes)
{
    ASSERT(id < BROKER_KEY_COUNT && broker_config_keys[id].synonym_of == id);
    const struct broker_config_key *k = &broker_config_keys[id];
    char trimmed[BROKER_CONFIG_VALUE_BYTES_MAX];
    size_t len = strlen(text);
    while (len > 0 && (unsigned char)text[0] <= ' ') {
        text++;
        len--;
    }
    while (len > 0 && (unsigned char)text[len - 1] <= ' ')
        len--;
    int64_t v = 0;
    if (len < sizeof(trimmed)) {
        memcpy(trimmed, text, len);
        trimmed[len] = '\0';
    }
    if (k->type != BROKER_CONFIG_INT && k->type != BROKER_CONFIG_LONG) {
        snprintf(why, why_bytes, "not a numeric key");
        return ERR_INVALID;
    }
    if (len >= sizeof(trimmed) || !parse_int64(trimmed, &v)) {
        snprintf(why, why_bytes, "Not a number of type %s",
                 k->type == BROKER_CONFIG_INT ? "INT" : "LONG");
        return ERR_INVALID;
    }
    if (v < k->min || v > k->max) {
        snprintf(why, why_bytes, "Value must be between %lld and %lld", (long long)k->min,
                 (long long)k->max);
        return ERR_INVALID;
    }
    apply_number(config, id, v);
    return 0;
}

/* Fills the field of canonical key c from text, already checked by check_value(). */
static void apply_value(struct broker_config *config, enum broker_config_key_id c,
                        enum broker_config_key_id member, const char *text)
{
    const char *why = NULL;
    switch (c) {
    case BROKER_KEY_LOG_DIRS:
        ASSERT(strlen(text) < sizeof(config->log_dir));
        strcpy(config->log_dir, text);
        break;
    case BROKER_KEY_LISTENERS:
        if (parse_listener(text, &config->listener, &why) < 0)
            UNREACHABLE();
        break;
    case BROKER_KEY_ADVERTISED_LISTENERS:
        if (parse_listener(text, &config->advertised, &why) < 0)
            UNREACHABLE();
        break;
    case BROKER_KEY_AUTO_CREATE_TOPICS_ENABLE:
        config->auto_create_topics_enable = strcasecmp(text, "true") == 0;
        break;
    case BROKER_KEY_CONTROLLED_SHUTDOWN_ENABLE:
        config->controlled_shutdown_enable = strcasecmp(text, "true") == 0;
        break;
    case BROKER_KEY_AUTO_LEADER_REBALANCE_ENABLE:
        config->auto_leader_rebalance_enable = strcasecmp(text, "true") == 0;
        break;
    case BROKER_KEY_COMPRESSION_TYPE:
        ASSERT(strlen(text) < sizeof(config->compression_type));
        strcpy(config->compression_type, text);
        break;
    case BROKER_KEY_CONTROLLER_QUORUM_VOTERS: {
        char voters_why[BROKER_CONFIG_ERROR_BYTES_MAX / 2];
        if (broker_voters_parse(text, &config->voters, voters_why, sizeof(voters_why)) < 0)
            UNREACHABLE();
        break;
    }
    case BROKER_KEY_BROKER_RACK:
        ASSERT(strlen(text) < sizeof(config->rack));
        strcpy(config->rack, text);
        break;
    default:
        apply_number(config, c, member_number(text, member));
        break;
    }
}

/* A port derived from the Kafka port when its key is not set; over 65535 is an error. */
static int derive_port(struct broker_config *config, enum broker_config_key_id id, uint32_t offset,
                       struct broker_config_error *err)
{
    uint32_t port = (uint32_t)config->listener.port + offset;
    if (port > BROKER_PORT_MAX)
        return fail(err, ERR_INVALID,
                    "%s is not set and the Kafka port %u + %u = %u is over %u; set %s or use a "
                    "lower Kafka port",
                    broker_config_keys[id].name, config->listener.port, offset, port,
                    BROKER_PORT_MAX, broker_config_keys[id].name);
    apply_number(config, id, port);
    return 0;
}

/* The listener port from --port, the advertised listener and the derived ports. */
static int resolve_addresses(const struct broker_config_input *input, const bool present[],
                             struct broker_config *config, struct broker_config_error *err)
{
    int rc = 0;
    if (input->port.value != NULL && !parse_port(input->port.value, &config->listener.port))
        return fail(err, ERR_INVALID,
                    "invalid value '%.*s%s' for --port (the listeners port): expected a number "
                    "from 1 to %u",
                    QUOTE_BYTES_MAX, input->port.value, elision(input->port.value),
                    BROKER_PORT_MAX);
    if (!present[BROKER_KEY_ADVERTISED_LISTENERS]) {
        if (is_wildcard_host(config->listener.host))
            return fail(err, ERR_INVALID,
                        "advertised.listeners is not set and listeners binds every interface "
                        "('%s'); set advertised.listeners to an address clients can reach",
                        config->listener.host);
        config->advertised = config->listener;
    }
    config->port_setting = input->port.value != NULL ? "--port" : "listeners";
    config->http_port_setting = "http.port";
    config->cluster_port_setting = "cluster.port";
    if (!present[BROKER_KEY_HTTP_PORT]) {
        config->http_port_setting = "the Kafka port + 1000, as http.port is not set";
        rc = derive_port(config, BROKER_KEY_HTTP_PORT, BROKER_HTTP_PORT_OFFSET, err);
    }
    if (rc == 0 && !present[BROKER_KEY_CLUSTER_PORT]) {
        config->cluster_port_setting = "the Kafka port + 2000, as cluster.port is not set";
        rc = derive_port(config, BROKER_KEY_CLUSTER_PORT, BROKER_CLUSTER_PORT_OFFSET, err);
    }
    STATIC_ASSERT(BROKER_HTTP_PORT_OFFSET == 1000 && BROKER_CLUSTER_PORT_OFFSET == 2000,
                  "the port setting texts name the offsets");
    if (rc < 0)
        return rc;
    if (config->http_port == config->listener.port ||
        config->cluster_port == config->listener.port || config->http_port == config->cluster_port)
        return fail(err, ERR_INVALID,
                    "the Kafka port %u (from %s), http.port %u and cluster.port %u must all differ",
                    config->listener.port, config->port_setting, config->http_port,
                    config->cluster_port);
    return 0;
}

/*
 * This node's place in the metadata group. Its cluster address is the advertised host (or the
 * listener host) at cluster.port; a voter entry for this node must name it, since peers dial
 * that entry. Without a voter list the node is the only voter, at that address.
 */
static int resolve_voters(const bool present[], struct broker_config *config,
                          struct broker_config_error *err)
{
    char own[HOSTPORT_BYTES_MAX];
    char named[HOSTPORT_BYTES_MAX];
    struct broker_listener self = config->advertised;
    self.port = config->cluster_port;
    config->standalone = !present[BROKER_KEY_CONTROLLER_QUORUM_VOTERS];
    if (config->standalone) {
        config->voters.count = 1;
        config->voters.voters[0] = (struct broker_voter){.id = config->node_id, .addr = self};
        config->role = BROKER_ROLE_VOTER;
        return 0;
    }
    const struct broker_voter *v = broker_voters_find(&config->voters, config->node_id);
    if (v == NULL) {
        config->role = BROKER_ROLE_OBSERVER;
        return 0;
    }
    config->role = BROKER_ROLE_VOTER;
    struct broker_listener bound = config->listener;
    bound.port = config->cluster_port;
    if (same_address(&v->addr, &self) || same_address(&v->addr, &bound))
        return 0;
    format_hostport(&v->addr, v->addr.port, named, sizeof(named));
    format_hostport(&self, self.port, own, sizeof(own));
    if (v->addr.port != config->cluster_port)
        return fail(err, ERR_INVALID,
                    "controller.quorum.voters names this node (node.id %d) at %s, but its "
                    "cluster port is %u (from %s); make the entry's port %u or set cluster.port=%u",
                    (int)config->node_id, named, config->cluster_port, config->cluster_port_setting,
                    config->cluster_port, v->addr.port);
    return fail(err, ERR_INVALID,
                "controller.quorum.voters names this node (node.id %d) at %s, but its cluster "
                "address is %s (the advertised host and cluster.port); make the entry say %s",
                (int)config->node_id, named, own, own);
}

int broker_config_resolve(const struct broker_config_input *input, struct broker_config *config,
                          struct broker_config_error *err)
{
    ASSERT(input != NULL && config != NULL && err != NULL);
    static const struct broker_config_setting default_setting = {0};
    bool present[BROKER_KEY_COUNT];
    int rc = 0;
    memset(config, 0, sizeof(*config));

    /* Every value given is checked, also those a synonym of higher precedence overrides, as
     * Kafka does: a typo never hides behind another key. */
    for (enum broker_config_key_id id = 0; id < BROKER_KEY_COUNT; id++) {
        const struct broker_config_setting *s = &input->settings[id];
        present[id] = is_present(s, id);
        if (present[id] && (rc = check_value(input, id, s, s->value, err)) < 0)
            return rc;
    }
    for (enum broker_config_key_id c = 0; c < BROKER_KEY_COUNT; c++) {
        if (!is_canonical(c))
            continue;
        enum broker_config_key_id m = effective_member(present, input, c);
        if (m == BROKER_KEY_COUNT)
            continue;
        const char *text =
            present[m] ? input->settings[m].value : broker_config_keys[m].default_value;
        /* Defaults go through the same checks; one failing is a bug in the table. */
        ASSERT(present[m] || check_value(input, m, &default_setting, text, err) == 0);
        apply_value(config, c, m, text);
    }
    /* Kafka's rule: a bounded pool holds at least one request of the largest size (0 and below
     * mean no bound). */
    if (config->queued_max_request_bytes > 0 &&
        config->queued_max_request_bytes < config->socket_request_max_bytes)
        return fail(err, ERR_INVALID,
                    "queued.max.request.bytes (%lld) must be -1 or at least "
                    "socket.request.max.bytes (%d)",
                    (long long)config->queued_max_request_bytes, config->socket_request_max_bytes);
    rc = resolve_addresses(input, present, config, err);
    if (rc < 0)
        return rc;
    return resolve_voters(present, config, err);
}

/* ---- output -------------------------------------------------------------------------------- */

static void format_listener(const struct broker_listener *l, char *out, size_t out_bytes)
{
    char hostport[HOSTPORT_BYTES_MAX];
    format_hostport(l, l->port, hostport, sizeof(hostport));
    snprintf(out, out_bytes, "PLAINTEXT://%s", hostport);
}

/* controller.quorum.voters as given; "" for a standalone node, so the output loads back as
 * standalone too. */
static void format_voters(const struct broker_config *config, char *out, size_t out_bytes)
{
    size_t used = 0;
    out[0] = '\0';
    for (uint32_t i = 0; !config->standalone && i < config->voters.count; i++) {
        const struct broker_voter *v = &config->voters.voters[i];
        char hostport[HOSTPORT_BYTES_MAX];
        format_hostport(&v->addr, v->addr.port, hostport, sizeof(hostport));
        int n = snprintf(out + used, out_bytes - used, "%s%d@%s", i > 0 ? "," : "", (int)v->id,
                         hostport);
        ASSERT(n > 0 && (size_t)n < out_bytes - used);
        used += (size_t)n;
    }
}

void broker_config_value(const struct broker_config *config, enum broker_config_key_id id,
                         char *out, size_t out_bytes)
{
    ASSERT(config != NULL && out != NULL && out_bytes >= BROKER_CONFIG_VALUE_BYTES_MAX);
    ASSERT(id < BROKER_KEY_COUNT && is_canonical(id));
    long long v = 0;
    switch (id) {
    case BROKER_KEY_LOG_DIRS:
        snprintf(out, out_bytes, "%s", config->log_dir);
        return;
    case BROKER_KEY_LISTENERS:
        format_listener(&config->listener, out, out_bytes);
        return;
    case BROKER_KEY_ADVERTISED_LISTENERS:
        format_listener(&config->advertised, out, out_bytes);
        return;
    case BROKER_KEY_AUTO_CREATE_TOPICS_ENABLE:
        snprintf(out, out_bytes, "%s", config->auto_create_topics_enable ? "true" : "false");
        return;
    case BROKER_KEY_CONTROLLED_SHUTDOWN_ENABLE:
        snprintf(out, out_bytes, "%s", config->controlled_shutdown_enable ? "true" : "false");
        return;
    case BROKER_KEY_AUTO_LEADER_REBALANCE_ENABLE:
        snprintf(out, out_bytes, "%s", config->auto_leader_rebalance_enable ? "true" : "false");
        return;
    case BROKER_KEY_COMPRESSION_TYPE:
        snprintf(out, out_bytes, "%s", config->compression_type);
        return;
    case BROKER_KEY_CONTROLLER_QUORUM_VOTERS:
        format_voters(config, out, out_bytes);
        return;
    case BROKER_KEY_BROKER_RACK:
        snprintf(out, out_bytes, "%s", config->rack);
        return;
    case BROKER_KEY_NODE_ID:
        v = config->node_id;
        break;
    case BROKER_KEY_NUM_PARTITIONS:
        v = config->num_partitions;
        break;
    case BROKER_KEY_DEFAULT_REPLICATION_FACTOR:
        if (config->default_replication_factor == 0) {
            out[0] = '\0'; /* not set: min(3, registered brokers) when a topic is created */
            return;
        }
        v = config->default_replication_factor;
        break;
    case BROKER_KEY_MIN_INSYNC_REPLICAS:
        v = config->min_insync_replicas;
        break;
    case BROKER_KEY_LOG_SEGMENT_BYTES:
        v = config->log_segment_bytes;
        break;
    case BROKER_KEY_LOG_ROLL_MS:
        v = config->log_roll_ms;
        break;
    case BROKER_KEY_LOG_RETENTION_MS:
        v = config->log_retention_ms;
        break;
    case BROKER_KEY_LOG_RETENTION_BYTES:
        v = config->log_retention_bytes;
        break;
    case BROKER_KEY_LOG_CACHE_TAIL_BYTES:
        v = config->log_cache_tail_bytes;
        break;
    case BROKER_KEY_MESSAGE_MAX_BYTES:
        v = config->message_max_bytes;
        break;
    case BROKER_KEY_SOCKET_REQUEST_MAX_BYTES:
        v = config->socket_request_max_bytes;
        break;
    case BROKER_KEY_QUEUED_MAX_REQUEST_BYTES:
        v = config->queued_max_request_bytes;
        break;
    case BROKER_KEY_CONNECTIONS_MAX_IDLE_MS:
        v = config->connections_max_idle_ms;
        break;
    case BROKER_KEY_HTTP_PORT:
        v = config->http_port;
        break;
    case BROKER_KEY_CLUSTER_PORT:
        v = config->cluster_port;
        break;
    case BROKER_KEY_OFFSETS_TOPIC_NUM_PARTITIONS:
        v = config->offsets_topic_num_partitions;
        break;
    case BROKER_KEY_GROUP_INITIAL_REBALANCE_DELAY_MS:
        v = config->group_initial_rebalance_delay_ms;
        break;
    case BROKER_KEY_OFFSETS_RETENTION_MINUTES:
        v = config->offsets_retention_minutes;
        break;
    case BROKER_KEY_CONTROLLER_MUTATION_RATE:
        v = config->controller_mutation_rate;
        break;
    case BROKER_KEY_CONTROLLER_QUOTA_WINDOW_NUM:
        v = config->controller_quota_window_num;
        break;
    case BROKER_KEY_CONTROLLER_QUOTA_WINDOW_SIZE_SECONDS:
        v = config->controller_quota_window_size_seconds;
        break;
    case BROKER_KEY_CONTROLLER_QUORUM_ELECTION_TIMEOUT_MS:
        v = config->controller_quorum_election_timeout_ms;
        break;
    case BROKER_KEY_BROKER_HEARTBEAT_INTERVAL_MS:
        v = config->broker_heartbeat_interval_ms;
        break;
    case BROKER_KEY_BROKER_SESSION_TIMEOUT_MS:
        v = config->broker_session_timeout_ms;
        break;
    case BROKER_KEY_REPLICA_LAG_TIME_MAX_MS:
        v = config->replica_lag_time_max_ms;
        break;
    case BROKER_KEY_CONTROLLED_SHUTDOWN_TIMEOUT_MS:
        v = config->controlled_shutdown_timeout_ms;
        break;
    case BROKER_KEY_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS:
        v = config->leader_imbalance_check_interval_seconds;
        break;
    case BROKER_KEY_PRODUCER_ID_EXPIRATION_MS:
        v = config->producer_id_expiration_ms;
        break;
    case BROKER_KEY_TRANSACTION_STATE_LOG_NUM_PARTITIONS:
        v = config->transaction_state_log_num_partitions;
        break;
    case BROKER_KEY_TRANSACTION_STATE_LOG_REPLICATION_FACTOR:
        v = config->transaction_state_log_replication_factor;
        break;
    case BROKER_KEY_TRANSACTION_STATE_LOG_MIN_ISR:
        v = config->transaction_state_log_min_isr;
        break;
    case BROKER_KEY_TRANSACTION_MAX_TIMEOUT_MS:
        v = config->transaction_max_timeout_ms;
        break;
    case BROKER_KEY_TRANSACTIONAL_ID_EXPIRATION_MS:
        v = config->transactional_id_expiration_ms;
        break;
    case BROKER_KEY_TRANSACTION_ABORT_CHECK_INTERVAL_MS:
        v = config->transaction_abort_check_interval_ms;
        break;
    case BROKER_KEY_LOG_RETENTION_CHECK_INTERVAL_MS:
        v = config->log_retention_check_interval_ms;
        break;
    default:
        UNREACHABLE();
    }
    snprintf(out, out_bytes, "%lld", v);
}

/* Appends value escaped for a properties file: backslashes and control characters always,
 * blanks at either end so they survive the loader's trimming. */
static void put_escaped(struct buf *out, const char *value)
{
    size_t len = strlen(value);
    size_t lead = 0;
    size_t tail = len;
    while (lead < len && is_blank(value[lead]))
        lead++;
    while (tail > lead && is_blank(value[tail - 1]))
        tail--;
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        const char *esc = NULL;
        switch (c) {
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\f':
            esc = "\\f";
            break;
        case ' ':
            esc = i < lead || i >= tail ? "\\ " : NULL;
            break;
        default:
            break;
        }
        if (esc != NULL)
            buf_append(out, esc, strlen(esc));
        else
            buf_put_u8(out, (uint8_t)c);
    }
}

void broker_config_format(const struct broker_config *config, struct buf *out)
{
    ASSERT(config != NULL && out != NULL);
    char *value = xmalloc(BROKER_CONFIG_VALUE_BYTES_MAX);
    char header[80];
    int n = snprintf(header, sizeof(header), "# Effective configuration of chronik node %d.\n",
                     (int)config->node_id);
    ASSERT(n > 0 && (size_t)n < sizeof(header));
    buf_append(out, header, (size_t)n);
    for (enum broker_config_key_id id = 0; id < BROKER_KEY_COUNT; id++) {
        if (!is_canonical(id))
            continue;
        broker_config_value(config, id, value, BROKER_CONFIG_VALUE_BYTES_MAX);
        buf_append(out, broker_config_keys[id].name, strlen(broker_config_keys[id].name));
        buf_put_u8(out, '=');
        put_escaped(out, value);
        buf_put_u8(out, '\n');
    }
    free(value);
}

void broker_config_describe(const struct broker_config *config, char *out, size_t out_bytes)
{
    ASSERT(config != NULL && out != NULL);
    ASSERT(out_bytes >= BROKER_CONFIG_DESCRIBE_BYTES_MAX);
    char kafka[BROKER_LISTENER_BYTES_MAX];
    char advertised[HOSTPORT_BYTES_MAX];
    char http[HOSTPORT_BYTES_MAX];
    char cluster[HOSTPORT_BYTES_MAX];
    format_listener(&config->listener, kafka, sizeof(kafka));
    format_hostport(&config->advertised, config->advertised.port, advertised, sizeof(advertised));
    format_hostport(&config->listener, config->http_port, http, sizeof(http));
    format_hostport(&config->listener, config->cluster_port, cluster, sizeof(cluster));
    int n = snprintf(out, out_bytes,
                     "chronik node %d: kafka %s (advertised as %s), http %s, cluster %s, data "
                     "dir %s",
                     (int)config->node_id, kafka, advertised, http, cluster, config->log_dir);
    ASSERT(n > 0 && (size_t)n < out_bytes);
}
