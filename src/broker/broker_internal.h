/*
 * What the broker's API handler files share: the broker's state, the per-request context,
 * and the helpers to answer. Private to src/broker.
 *
 * A request's life: the listener hands over a frame; request.c decodes the header and the body
 * into the request's arena and calls the API's handler with a struct breq. The handler answers
 * exactly once with breq_respond() (or breq_respond_none() for acks=0, or breq_abort() to close
 * the connection), now or later from a loop callback; answering frees the breq and its arena.
 * Everything runs on the loop thread.
 */
#ifndef CHRONIK_BROKER_BROKER_INTERNAL_H
#define CHRONIK_BROKER_BROKER_INTERNAL_H

#include "base/arena.h"
#include "base/rand.h"
#include "broker/broker.h"
#include "broker/kafka_errors.h"
#include "cluster/metadata.h"
#include "cluster/replica.h"
#include "log/compress.h"
#include "log/log.h"
#include "net/loop.h"
#include "net/server.h"
#include "proto/gen/kafka.h"
#include "proto/proto.h"

#include <stdbool.h>
#include <stdint.h>

struct groups;
struct fetch;
struct reaper;

/* The internal topic of the group coordinator; clients may read it but never produce to it. */
#define BROKER_OFFSETS_TOPIC "__consumer_offsets"

/* The replicas of one topic, indexed by partition. A NULL replica is still opening
 * (open_errors[p] == 0) or failed to open (open_errors[p] < 0). */
struct broker_topic {
    char *name;
    uint32_t partition_count;
    struct replica **replicas;
    int *open_errors;
    uint32_t open_job_first; /* the start-up opener's job of partition 0 */
};

struct broker_opener;

struct broker {
    const struct broker_config *cfg;
    struct clock *clock;
    struct loop *loop;
    struct io *io;
    struct log_files *files;
    struct log_flusher *flusher;
    struct log_config log_cfg;
    struct loop_fd flusher_watch;
    struct loop_signal signals;
    struct loop_timer retention_timer;
    struct net_server server;
    bool server_up;
    /* The cluster port, bound and listening from start-up so no other process (another node
     * started with conflicting ports) can take it; the cluster transport takes it over. -1
     * when not open. Nothing accepts on it yet. */
    int cluster_listen_fd;
    int32_t controller_id; /* the metadata group's leader as last known, -1 unknown */
    bool stopping;
    int exit_status;
    struct rng rng;          /* topic ids; seeded from the OS */
    struct meta_store store; /* the metadata journal and snapshot of cfg->log_dir */
    struct meta_image meta;
    /* Topic changes made to `meta` and recorded in `store` but not committed yet. */
    struct broker_staged *staged;
    uint32_t staged_count;
    uint32_t staged_cap;
    /* The controller mutation quota (KIP-599): a token bucket of partition mutations. */
    double quota_tokens;
    uint64_t quota_updated_ns;
    struct reaper *reaper; /* reaper.c: removes deleted partition directories in the background */
    /* cfg points here: the configuration given at start-up (static_cfg) with the dynamic
     * broker configs of the metadata applied (configs.c). */
    struct broker_config live_cfg;
    const struct broker_config *static_cfg;
    /* Replicas by topic name: open addressing, power-of-two capacity. */
    struct broker_topic **topics;
    uint32_t topic_slots;
    uint32_t topic_count;
    struct broker_opener *opener;  /* broker.c: start-up opening of partition logs, or NULL */
    struct groups *groups;         /* groups.c: the group coordinator's host, NULL until opened */
    struct fetch *fetches_waiting; /* fetch.c: long polls waiting for data */
    struct records_codec codec;    /* produce.c: codec contexts and scratch, reused per batch */
};

struct breq;
typedef void (*breq_handler_fn)(struct breq *rq);

struct breq {
    struct broker *b;
    struct net_request *net;
    struct arena arena;
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    struct proto_str client_id;
    const struct proto_api *api;
    void *body;         /* the decoded request, a struct kafka_<api>_request */
    bool out_of_memory; /* an allocation for the answer failed: breq_respond() fails instead */
};

/* Encodes the response header and body (a struct kafka_<api>_response) and sends it. */
void breq_respond(struct breq *rq, const void *response);
/* Sends the header and then pieces the caller already appended after it (see fetch). The
 * caller has called breq_begin_response() first. */
int breq_begin_response(struct breq *rq, struct buf *out);
void breq_finish(struct breq *rq);
/* Answers with no response at all (Produce with acks=0). */
void breq_respond_none(struct breq *rq);
/* Closes the connection: what Kafka does with a request it cannot parse. */
void breq_abort(struct breq *rq);
/*
 * Answers a request the broker cannot serve within its memory budget (err: why, for the log):
 * with UNKNOWN_SERVER_ERROR in the response's top-level ErrorCode when its version has one (as
 * Kafka answers a request whose handler failed), else by closing the connection; logs one line.
 * A handler calls it instead of answering, before any effect the answer would have to report.
 * Helpers that cannot return an error may set rq->out_of_memory instead: breq_respond() then
 * calls this.
 */
void breq_fail(struct breq *rq, int err);

/* ---- topics and replicas (broker.c) ------------------------------------------------------ */

/* A staged topic change: what broker_topics_commit() opens, or undoes when the commit fails. */
struct broker_staged {
    char *name;
    uint32_t old_count; /* 0 for a created topic */
};

struct broker_topic *broker_topic_find(struct broker *b, const char *name, size_t len);
/* The partition's replica, or NULL: no such partition, or one not open (see below). */
struct replica *broker_replica(struct broker *b, const char *name, size_t len, int32_t partition);
/* The Kafka error for a partition broker_replica() gave no replica for: UNKNOWN_TOPIC_OR_PARTITION
 * when there is none, NOT_LEADER_OR_FOLLOWER while its log is still opening at start-up (a
 * retriable error, Kafka's answer for a partition it is still loading; the opener then opens it
 * next), KAFKA_STORAGE_ERROR when its log failed to open. */
int16_t broker_replica_error(struct broker *b, const char *name, size_t len, int32_t partition);
/*
 * Topic changes are staged, then committed once per request: broker_create_topic,
 * broker_grow_topic and broker_delete_topic change the image and record the change in the
 * metadata store; broker_topics_commit() makes all of them durable with one journal append
 * and one sync, then opens the new partitions. Nothing staged is visible to a client before
 * the commit: every handler commits before it answers.
 *
 * Stages a topic creation. Returns 0 or a Kafka error code (positive) with a message in *why
 * (static storage) for the response.
 */
int broker_create_topic(struct broker *b, const char *name, int32_t partitions,
                        int16_t replication_factor, const char *const *config_keys,
                        const char *const *config_values, uint32_t config_count, bool validate_only,
                        const char **why);
/* Stages growing a topic to new_count partitions. Returns a Kafka error code with *why set for
 * the response when not KAFKA_NONE. */
int broker_grow_topic(struct broker *b, const char *name, size_t len, int32_t new_count,
                      bool validate_only, const char **why);
/* Applies a topic's current configuration to its open partition logs. */
void broker_topic_reconfigure(struct broker *b, const char *name);
/* Stages deleting a topic: closes its replicas and renames their directories to
 * `<topic>-<partition>.<topic id>-delete` at once (so the name can be created again, empty),
 * and records the removal; the commit hands the renamed directories to the reaper. Returns a
 * Kafka error code. */
int broker_delete_topic(struct broker *b, const char *name, size_t len);
/* Commits the staged changes: KAFKA_NONE, or KAFKA_KAFKA_STORAGE_ERROR when the metadata could
 * not be written (created and grown topics are then undone in memory). */
int broker_topics_commit(struct broker *b);
/* The controller mutation quota: whether a change of `mutations` partitions may go ahead now
 * (admitted while the bucket is not negative, then taken from it, as Kafka does), and the
 * throttle time a refused or over-quota client is told to wait. */
bool broker_quota_admit(struct broker *b, uint32_t mutations);
int32_t broker_quota_throttle_ms(struct broker *b);
/* configs.c: applies the dynamic broker configs of b->meta to b->live_cfg and b->log_cfg. */
void broker_apply_dynamic_configs(struct broker *b);
/* Whether a Metadata or Produce request may create the topic. */
bool broker_auto_create_allowed(const struct broker *b);

/* ---- nodes.c: the cluster as clients see it, from the metadata image ------------------- */

/*
 * A node as clients are told about it: its advertised endpoint (the listener named PLAINTEXT,
 * else its first) and rack. Until this node's own registration is in the image (a standalone
 * node never registers), it counts as registered and unfenced, with the advertised listener
 * and rack of its configuration. Strings belong to the image or the configuration: valid until
 * the next change to the image.
 */
struct broker_node {
    int32_t id;
    const char *host;
    uint16_t port;
    const char *rack; /* NULL: none */
    bool fenced;
};

/* The node with this id, fenced or not; false when it is not registered or has no endpoint. */
bool broker_node_find(const struct broker *b, int32_t id, struct broker_node *out);
/* Whether the node is registered, has an endpoint and is not fenced: what clients may be sent
 * to (as a leader or a coordinator). */
bool broker_node_alive(const struct broker *b, int32_t id, struct broker_node *out);
/* The alive nodes by id, in the request's memory; NULL when that is spent. */
struct broker_node *broker_nodes_alive(struct breq *rq, size_t *count);

/* Who leads a partition, as the image says. */
struct broker_leader {
    int32_t id;    /* -1 when none */
    int32_t epoch; /* the partition's leader epoch */
    bool local;    /* this node leads it: its requests are served here */
    bool replica;  /* this node is one of its replicas */
};

/* The partition's leader; false when the image has no such partition. */
bool broker_partition_leader(const struct broker *b, const char *topic, size_t len,
                             int32_t partition, struct broker_leader *out);
/*
 * What the image alone says of a data request (Produce, Fetch, ListOffsets,
 * OffsetForLeaderEpoch, DeleteRecords) for a partition, before its replica is looked at:
 * UNKNOWN_TOPIC_OR_PARTITION when the image has no such partition; on a replica of it,
 * FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH when current_leader_epoch (-1: not given) is
 * older / newer than the image's, as Kafka checks the epoch first; NOT_LEADER_OR_FOLLOWER when
 * another node or none leads it; else KAFKA_NONE. *out (may be NULL) is the leader.
 */
int16_t broker_partition_check(const struct broker *b, const char *topic, size_t len,
                               int32_t partition, int32_t current_leader_epoch,
                               struct broker_leader *out);

/* ---- reaper.c: removes marked (deleted) partition directories on its own thread ---------- */

struct reaper *reaper_create(struct io *io);
/* Stops the thread; paths still queued are left on disk for the next start-up. */
void reaper_destroy(struct reaper *r);
/* Queues a marked directory for removal (the path is copied). */
void reaper_add(struct reaper *r, const char *path);

/* ---- handlers, one file per API family --------------------------------------------------- */

/* The listener's request callback (request.c). */
void broker_on_request(void *ctx, struct net_request *req);
/* The listener's memory-pressure callback (request.c): queued.max.request.bytes is reached and
 * no request is read until memory is freed, so waiting fetches are answered now with what
 * they have (as at their timeout) rather than hold that memory for up to their max wait. */
void broker_on_pressure(void *ctx);

void api_versions_handle(struct breq *rq);
/* Fills resp->api_keys with every API Chronik implements (arena of rq). */
void api_versions_fill(struct breq *rq, struct kafka_api_versions_response *resp);
/* The inclusive version range Chronik implements for an API, false when not implemented. */
bool api_versions_supported(int16_t api_key, int16_t *min, int16_t *max);
void metadata_handle(struct breq *rq);
/* produce.c, fetch.c, offsets.c: the data path. */
void produce_handle(struct breq *rq);
void fetch_handle(struct breq *rq);
/* Answers every waiting fetch now, with what is there (before replicas close). */
void fetch_finish_all(struct broker *b);
void list_offsets_handle(struct breq *rq);
void offset_for_leader_epoch_handle(struct breq *rq);
/* topics.c: topic administration. */
void create_topics_handle(struct breq *rq);
void delete_topics_handle(struct breq *rq);
void create_partitions_handle(struct breq *rq);
void delete_records_handle(struct breq *rq);
/* configs.c: topic and broker configuration. */
void describe_configs_handle(struct breq *rq);
void alter_configs_handle(struct breq *rq);
void incremental_alter_configs_handle(struct breq *rq);
/* The log configuration of a topic's partitions: the broker's defaults (b->log_cfg) with the
 * topic's overrides (retention.ms, retention.bytes, segment.bytes, segment.ms) applied. */
void broker_topic_log_config(const struct broker *b, const struct meta_topic *mt,
                             struct log_config *out);
/* cluster.c */
void describe_cluster_handle(struct breq *rq);
/* groups.c: the group coordinator. groups_open loads __consumer_offsets if it exists (call it
 * once the topics are open; the first group request opens it otherwise); groups_close frees
 * it before the replicas close. */
int groups_open(struct broker *b);
void groups_close(struct broker *b);
void find_coordinator_handle(struct breq *rq);
void join_group_handle(struct breq *rq);
void sync_group_handle(struct breq *rq);
void heartbeat_handle(struct breq *rq);
void leave_group_handle(struct breq *rq);
void offset_commit_handle(struct breq *rq);
void offset_fetch_handle(struct breq *rq);
void list_groups_handle(struct breq *rq);
void describe_groups_handle(struct breq *rq);
void delete_groups_handle(struct breq *rq);
void offset_delete_handle(struct breq *rq);

#endif
