/*
 * The metadata node: this node's part in the metadata Raft group (`__cluster_metadata`) and, on
 * the group's leader, the controller.
 *
 * What it owns:
 * - The metadata group on the node's Raft host, over the metadata log (opened and closed by the
 *   caller). Every node applies the committed batches, in order, to the caller's image
 *   (cluster/meta_records.h) and tells the caller; nothing uncommitted ever reaches the image.
 * - The snapshot file: the image as KRaft records up to an applied offset, with the cluster id,
 *   written atomically once META_SNAPSHOT_BYTES of log were applied since the last one; the log
 *   below the snapshot before it is then dropped (one interval of log stays for peers that lag:
 *   snapshot transfer is not hosted yet, so a node that falls further behind cannot catch up).
 *   A restart loads the snapshot and applies only what follows.
 * - An observer (a node not among the voters): no Raft group; it fetches committed batches from
 *   a voter (Kafka's Fetch of the metadata topic id), appends them to its own metadata log and
 *   applies them, as a KRaft observer does.
 * - The controller (while this node leads the group and has applied every entry of earlier
 *   terms): one queue of operations, each built against the current image and proposed as one
 *   batch; the next is built only once the previous one committed and applied, so a build always
 *   sees every earlier change (two requests can never both pass a check only one may pass).
 *   It registers brokers, tracks their heartbeats, and fences a broker whose session expired
 *   (unfences it when it heartbeats again, caught up).
 * - This node's own registration as a broker: BrokerRegistration to the controller (over the
 *   transport's RPCs, to itself too: one code path whether or not this node leads), then a
 *   BrokerHeartbeat every heartbeat interval.
 *
 * Threads: the owner loop only. Callbacks run from inside meta_node_* calls or the host's.
 */
#ifndef CHRONIK_CLUSTER_META_NODE_H
#define CHRONIK_CLUSTER_META_NODE_H

#include "cluster/meta_records.h"
#include "cluster/metadata.h"
#include "cluster/raft_host.h"
#include "cluster/transport.h"
#include "cluster/wire.h"

#include <stdbool.h>
#include <stdint.h>

struct meta_node;

struct meta_node_config {
    int32_t self;
    const int32_t *voters; /* the metadata group's voters; self among them, or an observer */
    uint32_t voter_count;
    uint32_t election_ticks;
    uint32_t heartbeat_ticks;
    uint64_t seed;
    uint64_t broker_heartbeat_ms;  /* broker.heartbeat.interval.ms */
    uint64_t broker_session_ms;    /* broker.session.timeout.ms */
    const char *cluster_id;        /* registrations of another cluster are refused */
    struct meta_endpoint endpoint; /* this broker's advertised Kafka endpoint */
    const char *rack;              /* NULL: none */
    struct meta_uuid incarnation_id;
};

struct meta_node_env {
    struct io *io;
    struct clock *clock;
    struct raft_host *host;
    struct transport *transport;
    struct log *log;           /* the metadata log, open */
    const char *snapshot_dir;  /* holds snapshot_path */
    const char *snapshot_path; /* the snapshot file */
};

struct meta_node_handler {
    /* The image changed: every batch up to last_offset is applied. */
    void (*applied)(void *ctx, int64_t last_offset);
    /* The controller as known changed (-1: unknown). */
    void (*controller)(void *ctx, int32_t id);
    /* The controller granted this node count producer ids from first
     * (meta_node_alloc_producer_ids). May be NULL. */
    void (*producer_ids)(void *ctx, int64_t first, int32_t count);
    void *ctx;
};

/* Loads the snapshot at path into img (freshly initialised), its cluster id included: *applied
 * is the last offset it holds (-1 for one written before any entry). Without a snapshot, *found
 * is false, img stays empty and 0 is returned. ERR_CORRUPT for a damaged file. */
int meta_node_load(struct io *io, const char *path, struct meta_image *img, int64_t *applied,
                   bool *found);

/* Writes img (its cluster id set) as the snapshot file at path (atomically, dir synced),
 * holding the log up to applied. */
int meta_node_save(struct io *io, const char *dir, const char *path, const struct meta_image *img,
                   int64_t applied);

/* Opens the group with the image loaded by meta_node_load (applied: what it returned). */
int meta_node_open(const struct meta_node_config *cfg, const struct meta_node_env *env,
                   struct meta_image *img, int64_t applied, const struct meta_node_handler *h,
                   struct meta_node **out);
/* Closes the group (queued operations fail with ERR_CLOSED) and frees mn. */
void meta_node_close(struct meta_node *mn);
/* Every tick of the caller's timer (election_ticks count them), after raft_host_tick. */
void meta_node_tick(struct meta_node *mn);
/* An RPC this module serves or awaits (BrokerRegistration, BrokerHeartbeat); false for others. */
bool meta_node_on_rpc(struct meta_node *mn, const struct wire_rpc *r);

int32_t meta_node_controller(const struct meta_node *mn);
/* This node leads the group and has applied everything before its term: it may build. */
bool meta_node_is_controller(const struct meta_node *mn);
int64_t meta_node_applied(const struct meta_node *mn);
/* The image holds every entry committed as far as the leader's first word to this node said
 * (or, leading, everything before its term). After a restart that can be only the node's own
 * old log end; the broker serves once also unfenced, which needs its new registration applied,
 * which comes after everything committed before it. */
bool meta_node_caught_up(const struct meta_node *mn);
/* This broker is registered and unfenced. */
bool meta_node_unfenced(const struct meta_node *mn);
/* A controlled shutdown, its leaderships handed over: from now on every heartbeat says
 * WantShutDown, one a tick until the controller answers ShouldShutDown
 * (meta_node_shutdown_granted: the broker is marked in controlled shutdown, or fenced). */
void meta_node_request_shutdown(struct meta_node *mn);
bool meta_node_shutdown_granted(const struct meta_node *mn);
int meta_node_error(const struct meta_node *mn);

/*
 * Controller only: queues an operation. build(ctx, out) runs once every earlier operation has
 * committed and applied, against the current image, and appends the records to propose (none:
 * nothing to do). done(ctx, err, offset) follows once they are committed and applied here (err 0,
 * offset: the last offset of the batch, or the applied offset when there were no records), or
 * with ERR_STATE when leadership was lost first (the records may or may not commit), ERR_CLOSED
 * when the node closes, ERR_TOO_LARGE for records over one batch. ERR_STATE at once (neither
 * callback runs) when this node is not the controller.
 */
/*
 * A replicated partition's leadership, as its leader reports it to the controller (Kafka's
 * AlterPartition, api 56, over ClusterRpc): this node leads the partition in Raft term epoch
 * with this ISR. Reports are kept (the newest per partition) and sent in batches, one request
 * in flight; one the controller never answered goes again. The controller records each as a
 * PartitionChangeRecord carrying the epoch (meta_ctl_partition_report); a stale one is dropped.
 */
struct meta_node_report {
    struct meta_uuid topic_id;
    int32_t partition;
    int32_t epoch;
    uint32_t isr_count;
    int32_t isr[RAFT_VOTERS_MAX];
};
void meta_node_report(struct meta_node *mn, const struct meta_node_report *r);
/* Reports not yet answered by the controller (queued or in flight). */
uint32_t meta_node_reports_pending(const struct meta_node *mn);

/*
 * Asks the controller for a block of producer ids (Kafka's AllocateProducerIds, api 67, over
 * ClusterRpc, to itself too), which it grants by committing a ProducerIdsRecord
 * (meta_ctl_alloc_producer_ids) and then answering; the handler's producer_ids hears of it. One
 * request at a time: 0 while one is in flight (sent again after META_REPORT_RETRY_MS without an
 * answer); ERR_STATE when this node is not registered or knows no controller (ask again later).
 * A refusal is not reported: the caller asks again.
 */
int meta_node_alloc_producer_ids(struct meta_node *mn);

typedef void (*meta_node_build_fn)(void *ctx, struct meta_records *out);
typedef void (*meta_node_done_fn)(void *ctx, int err, int64_t offset);
int meta_node_submit(struct meta_node *mn, meta_node_build_fn build, meta_node_done_fn done,
                     void *ctx);

#endif
