/*
 * WriteTxnMarkers (api 27): the transaction coordinator ends a transaction on each partition it
 * touched by writing a COMMIT or ABORT marker there (a control batch, log/batch.h) through the
 * partition's leader. Served from the network (Kafka's coordinator on another node, tooling) and
 * from broker_run_frame (the transaction coordinator of this node).
 *
 * Per partition, as Kafka's ReplicaManager.appendRecords for markers (origin COORDINATOR, acks
 * all): UNKNOWN_TOPIC_OR_PARTITION or NOT_LEADER_OR_FOLLOWER when not led here; the marker is
 * judged against the partition's producer state (log/producer_state.h): an epoch below the
 * producer's is INVALID_PRODUCER_EPOCH, a coordinator epoch below the producer's last marker's
 * TRANSACTION_COORDINATOR_FENCED; else it is appended and the partition answered once it is
 * committed and on min.insync.replicas replicas (NOT_ENOUGH_REPLICAS when fewer are in sync,
 * checked before the append). A retried marker of a transaction already ended is appended again
 * and ends nothing, so a retry after a lost answer succeeds (Kafka does the same).
 *
 * On __consumer_offsets the committed marker also decides the transaction's pending group
 * offsets of that partition (groups.c: the committed offsets, or dropped), as Kafka's
 * GroupCoordinator.scheduleHandleTxnCompletion.
 */
#include "base/assert.h"
#include "base/buf.h"
#include "base/error.h"
#include "broker/admin.h"
#include "broker/broker_internal.h"
#include "log/batch.h"

#include <string.h>

struct txn_markers;

struct marker_part {
    struct txn_markers *tm;
    struct kafka_write_txn_markers_response_writable_txn_marker_partition_result *out;
    struct replica_commit commit;
    int32_t offsets_partition; /* __consumer_offsets: the partition, else -1 */
    int64_t producer_id;
    bool commit_result;
};

struct txn_markers {
    struct breq *rq;
    struct kafka_write_txn_markers_response resp;
    uint32_t pending; /* appends not yet committed, plus one while the request is scanned */
};

static int16_t storage_error(int err)
{
    if (err == ERR_CLOSED || err == ERR_STATE)
        return KAFKA_NOT_LEADER_OR_FOLLOWER;
    /* Written, then the ISR shrank below min.insync.replicas: the coordinator sends it again. */
    return err == ERR_REPLICAS ? KAFKA_NOT_ENOUGH_REPLICAS_AFTER_APPEND : KAFKA_KAFKA_STORAGE_ERROR;
}

static void markers_done(struct txn_markers *tm)
{
    ASSERT(tm->pending > 0);
    if (--tm->pending > 0)
        return;
    breq_respond(tm->rq, &tm->resp);
}

static void on_commit(void *ctx, int err)
{
    struct marker_part *part = ctx;
    if (err != 0)
        part->out->error_code = storage_error(err);
    else if (part->offsets_partition >= 0)
        groups_txn_marker(part->tm->rq->b, part->offsets_partition, part->producer_id,
                          part->commit_result);
    markers_done(part->tm);
}

static int16_t verdict_error(int v)
{
    switch (v) {
    case PRODUCER_APPEND:
        return KAFKA_NONE;
    case PRODUCER_INVALID_EPOCH:
        return KAFKA_INVALID_PRODUCER_EPOCH;
    case PRODUCER_COORDINATOR_FENCED:
        return KAFKA_TRANSACTION_COORDINATOR_FENCED;
    default:
        return v < 0 ? storage_error(v) : KAFKA_UNKNOWN_SERVER_ERROR;
    }
}

static void marker_partition(struct txn_markers *tm,
                             const struct kafka_write_txn_markers_request_writable_txn_marker *mk,
                             struct proto_str topic, int32_t index, struct marker_part *part)
{
    struct breq *rq = tm->rq;
    struct broker *b = rq->b;
    struct kafka_write_txn_markers_response_writable_txn_marker_partition_result *out = part->out;
    out->partition_index = index;
    const struct meta_topic *mt =
        topic.ptr != NULL ? meta_topic_find(&b->meta, topic.ptr, topic.len) : NULL;
    out->error_code = mt != NULL ? broker_partition_check(b, topic.ptr, topic.len, index, -1, NULL)
                                 : KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    if (out->error_code != KAFKA_NONE)
        return;
    struct replica *r = broker_replica(b, topic.ptr, topic.len, index);
    if (r == NULL) {
        out->error_code = broker_replica_error(b, topic.ptr, topic.len, index);
        return;
    }
    struct topic_config_values tc;
    topic_config_resolve(b->cfg, mt, &tc);
    uint32_t min_insync = tc.min_insync_replicas > 0 ? (uint32_t)tc.min_insync_replicas : 1;
    if (min_insync > 1) {
        int32_t isr[RAFT_MEMBERS_MAX];
        uint32_t n = replica_group(r) != NULL ? replica_isr(r, isr, RAFT_MEMBERS_MAX) : 1;
        if (n < min_insync) {
            out->error_code = KAFKA_NOT_ENOUGH_REPLICAS;
            return;
        }
    }
    int64_t now_ms = clock_wall_ms(b->clock);
    struct producer_marker m = {.producer_id = mk->producer_id,
                                .epoch = mk->producer_epoch,
                                .coordinator_epoch = mk->coordinator_epoch,
                                .commit = mk->transaction_result};
    out->error_code =
        verdict_error(replica_marker_check(r, &m, now_ms, b->cfg->producer_id_expiration_ms));
    if (out->error_code != KAFKA_NONE)
        return;

    struct batch_marker bm = {.type = mk->transaction_result ? BATCH_CONTROL_COMMIT
                                                             : BATCH_CONTROL_ABORT,
                              .coordinator_epoch = mk->coordinator_epoch};
    struct buf batch;
    buf_init(&batch);
    int rc = batch_build_marker(&batch, mk->producer_id, mk->producer_epoch, &bm, now_ms);
    /* The bytes stay with the request until it is answered, as a produced batch does. */
    uint8_t *bytes = rc == 0 ? arena_alloc(&rq->arena, batch.len) : NULL;
    if (bytes == NULL) {
        buf_deinit(&batch);
        rq->out_of_memory = true;
        out->error_code = KAFKA_UNKNOWN_SERVER_ERROR;
        return;
    }
    memcpy(bytes, batch.data, batch.len);
    size_t len = batch.len;
    buf_deinit(&batch);
    part->tm = tm;
    part->offsets_partition = strcmp(mt->name, BROKER_OFFSETS_TOPIC) == 0 ? index : -1;
    part->producer_id = mk->producer_id;
    part->commit_result = mk->transaction_result;
    struct log_append_result res;
    rc = replica_append(r, bytes, len, REPLICA_WAIT_COMMIT, min_insync, &part->commit, on_commit,
                        part, &res);
    if (rc < 0) {
        out->error_code = storage_error(rc);
        return;
    }
    tm->pending++;
}

/* The whole answer and every partition's wait, taken before the first append: a request that
 * does not fit its budget fails having written nothing. */
static struct marker_part *markers_alloc(struct breq *rq, struct txn_markers *tm)
{
    const struct kafka_write_txn_markers_request *req = rq->body;
    struct kafka_write_txn_markers_response *resp = &tm->resp;
    size_t total = 0;
    resp->markers.count = req->markers.count;
    resp->markers.items =
        arena_calloc(&rq->arena, req->markers.count, sizeof(*resp->markers.items));
    if (resp->markers.items == NULL)
        return NULL;
    for (size_t i = 0; i < req->markers.count; i++) {
        const struct kafka_write_txn_markers_request_writable_txn_marker *mk =
            &req->markers.items[i];
        struct kafka_write_txn_markers_response_writable_txn_marker_result *om =
            &resp->markers.items[i];
        om->producer_id = mk->producer_id;
        om->topics.count = mk->topics.count;
        om->topics.items = arena_calloc(&rq->arena, mk->topics.count, sizeof(*om->topics.items));
        if (om->topics.items == NULL)
            return NULL;
        for (size_t t = 0; t < mk->topics.count; t++) {
            size_t np = mk->topics.items[t].partition_indexes.count;
            om->topics.items[t].name = mk->topics.items[t].name;
            om->topics.items[t].partitions.count = np;
            om->topics.items[t].partitions.items =
                arena_calloc(&rq->arena, np, sizeof(*om->topics.items[t].partitions.items));
            if (om->topics.items[t].partitions.items == NULL)
                return NULL;
            total += np;
        }
    }
    return arena_calloc(&rq->arena, total + 1, sizeof(struct marker_part));
}

void write_txn_markers_handle(struct breq *rq)
{
    const struct kafka_write_txn_markers_request *req = rq->body;
    struct txn_markers *tm = arena_zalloc(&rq->arena, sizeof(*tm));
    if (tm == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    kafka_write_txn_markers_response_init(&tm->resp);
    struct marker_part *parts = markers_alloc(rq, tm);
    if (parts == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    tm->rq = rq;
    tm->pending = 1;
    size_t k = 0;
    for (size_t i = 0; i < req->markers.count; i++) {
        const struct kafka_write_txn_markers_request_writable_txn_marker *mk =
            &req->markers.items[i];
        for (size_t t = 0; t < mk->topics.count; t++) {
            const struct kafka_write_txn_markers_request_writable_txn_marker_topic *in =
                &mk->topics.items[t];
            struct kafka_write_txn_markers_response_writable_txn_marker_topic_result *ot =
                &tm->resp.markers.items[i].topics.items[t];
            for (size_t p = 0; p < in->partition_indexes.count; p++, k++) {
                parts[k].out = &ot->partitions.items[p];
                marker_partition(tm, mk, in->name, in->partition_indexes.items[p], &parts[k]);
            }
        }
    }
    markers_done(tm);
}
