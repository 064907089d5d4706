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
#include "base/buf.h"
#include "base/rand.h"
#include "broker/broker.h"
#include "broker/kafka_errors.h"
#include "cluster/meta_controller.h"
#include "cluster/meta_records.h"
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
struct txns;
struct fetch;
struct reaper;

/* The internal topic of the group coordinator; clients may read it but never produce to it. */
#define BROKER_OFFSETS_TOPIC "__consumer_offsets"
/* The internal topic of the transaction coordinator (txns.c). */
#define BROKER_TXN_STATE_TOPIC "__transaction_state"

/* The replicas of one topic, indexed by partition. A NULL replica is still opening
 * (open_errors[p] == 0), failed to open (open_errors[p] < 0), or is another node's
 * (open_errors[p] == 1). */
struct broker_topic {
    char *name;
    struct meta_uuid id;
    uint32_t partition_count;
    struct replica **replicas;
    struct broker_part **parts; /* replicated partitions hosted here (replication.c), or NULL */
    int *open_errors;
    uint32_t open_job_first; /* the start-up opener's job of partition 0 */
};

struct broker_opener;

struct broker {
    const struct broker_config *cfg;
    const struct broker_sim *sim; /* the simulator's environment, or NULL (broker.h) */
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
    struct rng rng; /* topic ids; seeded from the OS */
    /* Replicated partitions (replication.c). */
    bool handing_over;             /* a controlled shutdown is handing leaderships over */
    uint64_t handover_deadline_ms; /* when it stops anyway */
    uint64_t next_rebalance_ms;    /* next auto leader rebalance check */
    bool shutdown_asked; /* handed over: the controller is asked to mark the controlled shutdown */
    /* The brokers the image says are fenced or in controlled shutdown, as of image version
     * ineligible_version: their replicas leave the ISR of the partitions led here. */
    int32_t *ineligible_ids;
    uint32_t ineligible_count, ineligible_cap;
    uint64_t ineligible_version;
    /* The metadata image: the metadata group's committed records applied (cluster_node.c). */
    struct meta_image meta;
    struct broker_cluster *cluster; /* cluster_node.c: host, transport, metadata node */
    /* While an admin request builds on the controller: where its records go (else NULL). */
    struct meta_records *staging;
    struct broker_admin *admin; /* the admin request building now */
    /* Topics the building request created so far (its arena's strings), to refuse a second
     * name that collides with one of them. */
    const char *staged_names[BROKER_STAGED_NAMES_MAX];
    uint32_t staged_name_count;
    bool serving; /* caught up: partitions opened, listener up */
    void (*on_serving)(void *ctx);
    void *on_serving_ctx;
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
    struct broker_opener *opener; /* broker.c: start-up opening of partition logs, or NULL */
    /* broker.c: partitions created or grown since start-up, to open a step at a time: opening
     * is a few syncs each, and a 1,000-partition CreateTopics opened at once held the loop (and
     * its Raft ticks) for seconds. [open_head, open_count) of opens are pending. */
    struct broker_pending_open *opens;
    uint32_t open_head, open_count, open_cap;
    struct loop_timer open_timer;
    struct groups *groups;         /* groups.c: the group coordinator's host, NULL until opened */
    struct txns *txns;             /* txns.c: the transaction coordinator, NULL until opened */
    struct fetch *fetches_waiting; /* fetch.c: long polls waiting for data */
    struct metadata_wait *metadata_waiting; /* metadata.c: answers held for an election */
    struct loop_timer metadata_recheck;     /* metadata.c: leaderships changed: look again */
    struct records_codec codec; /* produce.c: codec contexts and scratch, reused per batch */
    /* producers.c: the producer ids this node hands out, [pid_next, pid_end), then the block
     * granted ahead (pid_spare_count 0: none). */
    int64_t pid_next, pid_end;
    int64_t pid_spare_first;
    int32_t pid_spare_count;
};

struct breq;
typedef void (*breq_handler_fn)(struct breq *rq);
typedef void (*breq_sink_fn)(void *ctx, const struct buf *response, int16_t error);

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
    /* A request not from a connection (net NULL): run for the controller (broker_run_frame),
     * its answer handed to sink. */
    breq_sink_fn sink;
    void *sink_ctx;
    /* A client's request run without a connection (broker_client_frame): its answer is
     * collected in sink_out and handed to sink. */
    bool sink_client;
    struct buf sink_out;
    uint8_t *client_frame; /* broker_client_frame: its copy of the frame, until let go */
    size_t client_frame_len;
    struct broker_admin *admin; /* the controller operation it builds, or NULL */
    bool auto_created;          /* Metadata: its missing topics were asked for already */
    bool metadata_held;         /* Metadata: held once for an election already */
    void *admin_state;          /* an admin handler's answer between build and finish */
};

/* Encodes the response header and body (a struct kafka_<api>_response) and sends it. */
void breq_respond(struct breq *rq, const void *response);
/* Sends the header and then pieces the caller already appended after it (see fetch). The
 * caller has called breq_begin_response() first. */
int breq_begin_response(struct breq *rq, struct buf *out);
/* Appends response bytes: to the connection, or to a client sink request's answer. */
int breq_append(struct breq *rq, const void *p, size_t n);
void breq_finish(struct breq *rq);
/* Lets go of the request's frame before answering (net_request_release_frame), once the
 * handler keeps nothing that points into it: decoded strings are arena copies, bytes fields
 * (records) point into the frame. */
void breq_release_frame(struct breq *rq);
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
/* Refuses a sink request whole with error (for its sender, e.g. NOT_CONTROLLER). */
void breq_refuse(struct breq *rq, int16_t error);

/* ---- topics and replicas (broker.c) ------------------------------------------------------ */

struct broker_topic *broker_topic_find(struct broker *b, const char *name, size_t len);
/* The partition's replica, or NULL: no such partition, or one not open (see below). */
struct replica *broker_replica(struct broker *b, const char *name, size_t len, int32_t partition);
/* The Kafka error for a partition broker_replica() gave no replica for: UNKNOWN_TOPIC_OR_PARTITION
 * when there is none, NOT_LEADER_OR_FOLLOWER while its log is still opening at start-up (a
 * retriable error, Kafka's answer for a partition it is still loading; the opener then opens it
 * next) or when another node hosts it, KAFKA_STORAGE_ERROR when its log failed to open. */
int16_t broker_replica_error(struct broker *b, const char *name, size_t len, int32_t partition);

/*
 * Topic administration runs on the controller only (cluster_node.c forwards every admin request
 * there, from any node, and answers the client once the change is applied on the node that
 * received it). There a handler runs as the build step of one controller operation
 * (meta_node_submit): it checks each entry against the image and stages KRaft records with the
 * functions below (b->staging), then calls broker_admin_commit() with what finishes the answer.
 * The staged records are proposed as one batch, so a request's changes commit together; finish
 * runs once they are committed and applied (err KAFKA_NONE), or with the error that stopped
 * them (NOT_CONTROLLER when leadership moved first). A handler that answers at once (a request
 * it refuses whole) does not call broker_admin_commit(), and what it staged is dropped.
 * The partitions themselves open (and deleted ones close) as the records apply, on every node
 * (broker_reconcile).
 */
typedef void (*broker_admin_finish_fn)(struct breq *rq, int16_t err);
void broker_admin_commit(struct breq *rq, broker_admin_finish_fn finish);
/* default.replication.factor, or when it is not set min(3, registered brokers that are unfenced
 * and not in controlled shutdown). */
int16_t broker_default_replication_factor(const struct broker *b);
/* Stages a topic creation. Returns 0 or a Kafka error code (positive) with a message in *why
 * (the request's arena) for the response; *id is the new topic's id. */
int broker_create_topic(struct breq *rq, const char *name, size_t len, int32_t partitions,
                        int16_t replication_factor, const char *const *config_keys,
                        const char *const *config_values, uint32_t config_count, bool validate_only,
                        struct proto_str *why, struct meta_uuid *id);
/* Stages growing a topic to new_count partitions. */
int broker_grow_topic(struct breq *rq, const char *name, size_t len, int32_t new_count,
                      bool validate_only, struct proto_str *why);
/* Stages deleting a topic. */
int broker_delete_topic(struct breq *rq, const char *name, size_t len);
/* Stages config overrides of a topic (resource_type META_RESOURCE_TOPIC) or of brokers
 * (META_RESOURCE_BROKER, resource "" or a node id): replace as AlterConfigs, else as
 * IncrementalAlterConfigs (a NULL value deletes). */
int broker_stage_configs(struct breq *rq, int8_t resource_type, const char *resource,
                         const struct meta_ctl_config *configs, uint32_t count, bool replace,
                         struct proto_str *why);
/* Applies a topic's current configuration to its open partition logs. */
void broker_topic_reconfigure(struct broker *b, const char *name);
/* After the image changed: opens the partitions this node now hosts, closes (and marks for
 * removal) those of deleted topics, applies configs. */
void broker_reconcile(struct broker *b);
/* Once the metadata is caught up at start-up: clears the data directory of what the metadata
 * does not know, opens the partitions and starts listening. */
int broker_start_serving(struct broker *b);
/* Start-up: marked directories and partition directories the metadata does not know go to the
 * reaper; created (a directory with no metadata at all): partition directories are refused
 * (ERR_CORRUPT, said why) and nothing is removed. */
int broker_clean_data_dir(struct broker *b, bool created);
/* Whether a partition is hosted by this node (its replicas include it). */
bool broker_hosts(const struct broker *b, const struct meta_partition *mp);

/* ---- cluster_node.c: the cluster transport, the Raft host and the metadata node ---------- */

struct meta_properties;
/* props: the data directory's meta.properties as broker.c read and checked it, or NULL. */
int broker_cluster_open(struct broker *b, const struct meta_properties *props);
/* clean: the metadata log is closed cleanly; otherwise left as a killed process leaves it.
 * The Raft host stays for the partitions' groups until broker_cluster_free. */
void broker_cluster_close(struct broker *b, bool clean);
/* Destroys the Raft host (every partition closed) and the cluster wiring. */
void broker_cluster_free(struct broker *b);
/* The cluster transport lost its connection to node peer and has not reconnected. */
bool broker_peer_down(struct broker *b, int32_t peer);
/* False while the Raft tick is overdue by half an election timeout (the process stalled): a
 * leader does not serve until the ticks it missed have run (and may have deposed it). */
bool broker_ticks_current(struct broker *b);
/* Sends what the Raft host and the metadata node queued, once this loop iteration's work is
 * done. */
void broker_cluster_kick(struct broker *b);
/* The metadata node, NULL before it is open (a node still learning its cluster id). */
struct meta_node *broker_meta_node(struct broker *b);
/*
 * Sends one Kafka request frame (header and body, no size prefix) to the controller, which
 * runs it as an admin request; done(ctx, response) gets the response frame once the change is
 * applied on this node, or NULL (timed out, or no controller answered in time). The frame is
 * copied. A node that is the controller runs it itself, through the same path.
 */
typedef void (*broker_forward_fn)(void *ctx, const struct buf *response);
void broker_forward(struct broker *b, struct slice frame, broker_forward_fn done, void *ctx);
/* Creates topics as a CreateTopics request of this node would (forwarded to the controller):
 * partitions -1 for the default, the default replication factor, the given configs for each.
 * done(ctx, response) as broker_forward's (NULL when it could not be sent). */
void broker_create_topics(struct broker *b, const struct proto_str *names, uint32_t count,
                          int32_t partitions, const char *const *keys, const char *const *values,
                          uint32_t config_count, broker_forward_fn done, void *ctx);
/* As broker_create_topics, one topic's replication factor given (-1: the default). */
void broker_create_topics_rf(struct broker *b, const struct proto_str *names, uint32_t count,
                             int32_t partitions, int16_t replication_factor,
                             const char *const *keys, const char *const *values,
                             uint32_t config_count, broker_forward_fn done, void *ctx);
/*
 * Sends one Kafka request frame (header and body, no size prefix) to node `node`, this one
 * included, which runs it as a client's request would run there (only WriteTxnMarkers is
 * served this way, broker_api_is_node_internal); done(ctx, response) gets its response frame,
 * or NULL when it could not be sent (the node is down), was refused, or got no answer within
 * BROKER_SEND_FRAME_TIMEOUT_MS. Sent once, never again: the caller retries. done may run before
 * this returns. The frame is copied.
 */
void broker_send_frame(struct broker *b, int32_t node, struct slice frame, broker_forward_fn done,
                       void *ctx);
/* Whether an API is sent node to node by broker_send_frame (WriteTxnMarkers). */
bool broker_api_is_node_internal(int16_t api_key);
/* Runs a request frame as if a client had sent it, answering into sink instead of a connection
 * (sink(ctx, NULL) when the request was refused whole or aborted). request.c. */
void broker_run_frame(struct broker *b, struct slice frame, breq_sink_fn sink, void *sink_ctx);
/* Runs a client's request frame (header and body, no size prefix) as the listener would run it
 * from a connection, any API, admin requests forwarded to the controller: sink(ctx, response)
 * gets the response frame (header and body; empty for acks=0), or NULL where the listener would
 * close the connection. For the simulator's clients (broker_sim); request.c. */
void broker_client_frame(struct broker *b, struct slice frame, breq_sink_fn sink, void *sink_ctx);
/* Whether an API is topic administration (run on the controller). */
bool broker_api_is_admin(int16_t api_key);
/* Runs an admin request (a sink request) as one controller operation: fn is its handler. */
void broker_admin_run(struct breq *rq, breq_handler_fn fn);
/* rq is being freed: its operation must not touch it any more. */
void broker_admin_forget(struct breq *rq);

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
bool broker_partition_leader(struct broker *b, const char *topic, size_t len, int32_t partition,
                             struct broker_leader *out);
/*
 * What the image alone says of a data request (Produce, Fetch, ListOffsets,
 * OffsetForLeaderEpoch, DeleteRecords) for a partition, before its replica is looked at:
 * UNKNOWN_TOPIC_OR_PARTITION when the image has no such partition; on a replica of it,
 * FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH when current_leader_epoch (-1: not given) is
 * older / newer than the image's, as Kafka checks the epoch first; NOT_LEADER_OR_FOLLOWER when
 * another node or none leads it; else KAFKA_NONE. *out (may be NULL) is the leader.
 */
int16_t broker_partition_check(struct broker *b, const char *topic, size_t len, int32_t partition,
                               int32_t current_leader_epoch, struct broker_leader *out);

/* ---- reaper.c: removes marked (deleted) partition directories on its own thread ---------- */

/* threaded false: no thread, reaper_add removes the directory at once (the simulator). */
struct reaper *reaper_create(struct io *io, bool threaded);
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
/* A leadership of a partition hosted here changed: held Metadata answers are looked at again
 * (once per loop iteration, whatever the number of changes). */
void metadata_leaders_changed(struct broker *b);
/* Answers every held Metadata request now (before replicas close). */
void metadata_finish_all(struct broker *b);
/* The metadata_recheck timer's callback (ctx: the broker). */
void metadata_recheck(void *ctx);
/* A replicated partition hosted here whose leader is not known (or is this node, not serving
 * yet) while this node is one of its voters: a leader is likely moments away. */
bool broker_replica_electing(struct broker *b, const char *topic, size_t len, int32_t partition);
/* produce.c, fetch.c, offsets.c: the data path. */
void produce_handle(struct breq *rq);
void fetch_handle(struct breq *rq);
/* Answers every waiting fetch now, with what is there (before replicas close). */
void fetch_finish_all(struct broker *b);
void list_offsets_handle(struct breq *rq);
void offset_for_leader_epoch_handle(struct breq *rq);
/* txn_markers.c: transaction markers written for a transaction coordinator. */
void write_txn_markers_handle(struct breq *rq);
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
/* producers.c: InitProducerId, and the blocks of producer ids the controller grants this node
 * (asked for from the cluster tick before the current block runs out). */
void init_producer_id_handle(struct breq *rq);
/* The next producer id of this node's blocks, -1 when none is left (asked for already). */
int64_t broker_take_producer_id(struct broker *b);
void broker_producer_ids_tick(struct broker *b);
void broker_producer_ids_granted(struct broker *b, int64_t first, int32_t count);
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
/* The partition count of __consumer_offsets once it exists (its creation is asked for
 * otherwise, and false returned). */
bool groups_offsets_partitions(struct broker *b, uint32_t *count);
/* txns.c: the transaction coordinator on __transaction_state. txns_start follows an existing
 * topic from start-up (call it once the topics are in the table); the first transactional
 * request creates it otherwise. txns_close frees it before the replicas close. */
void txns_start(struct broker *b);
void txns_close(struct broker *b);
/* Partition p of __transaction_state changed leadership here. */
void txns_leadership_changed(struct broker *b, uint32_t p);
/* FindCoordinator with key type 1: parks the request while the topic is being created (true:
 * it is answered later, by find_coordinator_handle again). */
bool txns_park_find(struct breq *rq);
/* The coordinator of a transactional id, as find_one's for a group. */
int16_t txns_find_coordinator(struct breq *rq, struct slice key, struct broker_node *node);
/* InitProducerId with a transactional id. */
void txns_init_producer_id(struct breq *rq);
void add_partitions_to_txn_handle(struct breq *rq);
void add_offsets_to_txn_handle(struct breq *rq);
void end_txn_handle(struct breq *rq);
void describe_transactions_handle(struct breq *rq);
void list_transactions_handle(struct breq *rq);
/* TxnOffsetCommit: a transaction's offsets, pending until its marker. */
void txn_offset_commit_handle(struct breq *rq);
/* A transaction marker committed on __consumer_offsets partition `partition`: the producer's
 * pending offsets there are committed or dropped (txn_markers.c calls it). */
void groups_txn_marker(struct broker *b, int32_t partition, int64_t producer_id, bool commit);

/* ---- replicated partitions (replication.c) ---- */
struct broker_part;
/* The node's Raft host (cluster_node.c), NULL before the cluster wiring opened it. */
struct raft_host *broker_raft_host(struct broker *b);
/* Puts partition p's freshly installed replica under its Raft group when the partition has more
 * than one replica (0 otherwise); ERR_* of replica_attach. */
int broker_replica_attach(struct broker *b, struct broker_topic *t, const struct meta_topic *mt,
                          uint32_t p);
/* Frees t->parts[p] (after its replica closed). */
void broker_part_free(struct broker_topic *t, uint32_t p);
/* Once per Raft tick: ISR bookkeeping and leadership reports of every replicated partition. */
void broker_replicas_tick(struct broker *b);
/* This node's own view of a replicated partition it hosts (the group's leader and term);
 * false for any other partition. */
bool broker_replica_view(struct broker *b, const char *topic, size_t len, int32_t partition,
                         struct broker_leader *out);
/* SIGTERM with controlled.shutdown.enable: hands every leadership held here to an in-sync
 * follower, then stops the broker (at the latest after controlled.shutdown.timeout.ms); false
 * when there is nothing to do that way (stop at once). */
bool broker_controlled_shutdown(struct broker *b);
/* A slot of b->topics holding a live topic. */
bool broker_topic_is_tombstone(const struct broker_topic *t);
/* The group coordinator: partition p of __consumer_offsets changed leadership here. */
void groups_leadership_changed(struct broker *b, uint32_t p);

#endif
