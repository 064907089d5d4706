/*
 * ListOffsets and OffsetForLeaderEpoch: offsets by position (earliest, latest), by time, by
 * maximum timestamp, and the end offset of a leader epoch. Only the partition's leader answers
 * (NOT_LEADER_OR_FOLLOWER elsewhere), with the leader epoch the image has (nodes.c).
 * ListOffsets answers within what the request's isolation level may read (Kafka's
 * lastFetchableOffset): the high watermark, or with read_committed (v2+) the last stable offset;
 * LATEST is that offset, and a search by time finds nothing at or past it.
 */
#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "broker/broker_internal.h"
#include "log/batch.h"
#include "log/compress.h"

#include <stdlib.h>
#include <string.h>

#define LIST_OFFSETS_LATEST        (-1)
#define LIST_OFFSETS_EARLIEST      (-2)
#define LIST_OFFSETS_MAX_TIMESTAMP (-3)

/*
 * The log indexes timestamps per batch; Kafka answers per record. So the batch the log found
 * is read (decompressed if needed) and its records searched: with max_mode false for the first
 * record at or after `ts` (from `from_offset` on), else for the first record carrying the
 * batch's maximum timestamp. Returns 0 with *offset and *ts_out set, or a negative error, in
 * which case the caller keeps the batch-level answer.
 */
static int find_record(struct log *log, int64_t batch_offset, int64_t from_offset, int64_t ts,
                       bool max_mode, int64_t *offset, int64_t *ts_out)
{
    struct log_read rd;
    int rc = log_read(log, batch_offset, 1, INT64_MAX, &rd);
    if (rc < 0 || rd.file == NULL) {
        if (rc == 0)
            log_read_release(&rd);
        return rc < 0 ? rc : ERR_NOT_FOUND;
    }
    uint8_t *bytes = xmalloc(rd.bytes);
    struct buf plain;
    buf_init(&plain);
    struct batch_header h;
    ssize_t got = io_pread(log_file_io(rd.file), bytes, rd.bytes, rd.position);
    rc = got == (ssize_t)rd.bytes ? batch_header_parse(bytes, rd.bytes, &h) : ERR_CORRUPT;
    if (rc == 0 && (h.attributes & BATCH_ATTR_LOG_APPEND_TS) != 0) {
        /* LogAppendTime: every record of the batch carries the batch's timestamp. */
        *offset = MAX(h.base_offset, from_offset);
        *ts_out = h.max_timestamp_ms;
        goto out;
    }
    if (rc == 0)
        rc = records_decompress(batch_codec(&h), bytes + LOG_BATCH_HEADER_BYTES,
                                rd.bytes - LOG_BATCH_HEADER_BYTES, LOG_BATCH_BYTES_MAX, &plain);
    if (rc < 0)
        goto out;
    struct batch_rec_iter it;
    batch_rec_iter_init(&it, buf_slice(&plain));
    struct batch_rec rec;
    rc = ERR_NOT_FOUND;
    while (batch_rec_iter_next(&it, &rec) == 1) {
        int64_t rec_offset = h.base_offset + rec.offset_delta;
        int64_t rec_ts = h.base_timestamp_ms + rec.timestamp_delta;
        bool hit =
            max_mode ? rec_ts == h.max_timestamp_ms : rec_offset >= from_offset && rec_ts >= ts;
        if (hit) {
            *offset = rec_offset;
            *ts_out = rec_ts;
            rc = 0;
            break;
        }
    }
out:
    buf_deinit(&plain);
    free(bytes);
    log_read_release(&rd);
    return rc;
}

/* The partition's replica when the image says it is led here and current_leader_epoch
 * matches (nodes.c), else NULL with the error for the response in *err. */
static struct replica *leader_replica(struct broker *b, struct proto_str topic, int32_t partition,
                                      int32_t current_leader_epoch, int16_t *err)
{
    *err = topic.ptr != NULL ? broker_partition_check(b, topic.ptr, topic.len, partition,
                                                      current_leader_epoch, NULL)
                             : KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    if (*err != KAFKA_NONE)
        return NULL;
    struct replica *r = broker_replica(b, topic.ptr, topic.len, partition);
    if (r == NULL)
        *err = broker_replica_error(b, topic.ptr, topic.len, partition);
    return r;
}

static void list_partition(struct breq *rq, struct proto_str topic, bool committed,
                           const struct kafka_list_offsets_request_list_offsets_partition *in,
                           struct kafka_list_offsets_response_list_offsets_partition_response *out)
{
    out->partition_index = in->partition_index;
    out->timestamp = -1;
    out->offset = -1;
    out->leader_epoch = -1;
    out->old_style_offsets.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
    struct replica *r = leader_replica(rq->b, topic, in->partition_index, in->current_leader_epoch,
                                       &out->error_code);
    if (r == NULL)
        return;
    struct log *log = replica_log(r);
    int64_t offset = -1, ts = -1;
    int64_t fetchable = replica_visible_high_watermark(r), lso;
    if (committed && replica_last_stable_offset(r, &lso) < 0) {
        out->error_code = KAFKA_KAFKA_STORAGE_ERROR;
        return;
    }
    if (committed)
        fetchable = MIN(fetchable, lso);
    if (in->timestamp == LIST_OFFSETS_LATEST) {
#ifdef BROKER_BUG_LATEST_IS_LOG_END
        /* An injected bug of the whole-cluster simulator (tests/sim, never in the broker): the
         * latest offset is the leader's log end, uncommitted records included. */
        offset = replica_log_end_offset(r);
#else
        offset = fetchable;
#endif
    } else if (in->timestamp == LIST_OFFSETS_EARLIEST) {
        offset = replica_log_start_offset(r);
    } else if (in->timestamp == LIST_OFFSETS_MAX_TIMESTAMP) {
        if (log_max_timestamp(log, &ts, &offset) < 0)
            offset = ts = -1;
        else
            find_record(log, offset, offset, ts, true, &offset, &ts);
    } else if (in->timestamp >= 0) {
        if (log_offset_for_timestamp(log, in->timestamp, &offset) == 0 && offset < fetchable) {
            /* The batch-level answer stands if the search fails. */
            ts = in->timestamp;
            find_record(log, offset, offset, in->timestamp, false, &offset, &ts);
        } else {
            offset = -1;
        }
    } else {
        out->error_code = KAFKA_INVALID_REQUEST;
        return;
    }
    out->offset = offset;
    out->timestamp = ts;
    int32_t epoch = -1;
    if (offset >= 0 && offset < replica_log_end_offset(r) && log_epoch_of(log, offset, &epoch) == 0)
        out->leader_epoch = epoch;
    else if (offset >= 0)
        out->leader_epoch = replica_leader_epoch(r);
}

void list_offsets_handle(struct breq *rq)
{
    const struct kafka_list_offsets_request *req = rq->body;
    struct kafka_list_offsets_response resp;
    kafka_list_offsets_response_init(&resp);
    resp.topics.count = req->topics.count;
    resp.topics.items = arena_calloc(&rq->arena, req->topics.count, sizeof(*resp.topics.items));
    if (resp.topics.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    for (size_t t = 0; t < req->topics.count; t++) {
        const struct kafka_list_offsets_request_list_offsets_topic *in = &req->topics.items[t];
        struct kafka_list_offsets_response_list_offsets_topic_response *out = &resp.topics.items[t];
        out->name = in->name;
        out->partitions.count = in->partitions.count;
        out->partitions.items =
            arena_calloc(&rq->arena, in->partitions.count, sizeof(*out->partitions.items));
        if (out->partitions.items == NULL) {
            breq_fail(rq, ERR_TOO_LARGE);
            return;
        }
        for (size_t p = 0; p < in->partitions.count; p++)
            list_partition(rq, in->name, req->isolation_level == 1, &in->partitions.items[p],
                           &out->partitions.items[p]);
    }
    breq_respond(rq, &resp);
}

void offset_for_leader_epoch_handle(struct breq *rq)
{
    const struct kafka_offset_for_leader_epoch_request *req = rq->body;
    struct kafka_offset_for_leader_epoch_response resp;
    kafka_offset_for_leader_epoch_response_init(&resp);
    resp.topics.count = req->topics.count;
    resp.topics.items = arena_calloc(&rq->arena, req->topics.count, sizeof(*resp.topics.items));
    if (resp.topics.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    for (size_t t = 0; t < req->topics.count; t++) {
        const struct kafka_offset_for_leader_epoch_request_offset_for_leader_topic *in =
            &req->topics.items[t];
        struct kafka_offset_for_leader_epoch_response_offset_for_leader_topic_result *out =
            &resp.topics.items[t];
        out->topic = in->topic;
        out->partitions.count = in->partitions.count;
        out->partitions.items =
            arena_calloc(&rq->arena, in->partitions.count, sizeof(*out->partitions.items));
        if (out->partitions.items == NULL) {
            breq_fail(rq, ERR_TOO_LARGE);
            return;
        }
        for (size_t p = 0; p < in->partitions.count; p++) {
            const struct kafka_offset_for_leader_epoch_request_offset_for_leader_partition *ip =
                &in->partitions.items[p];
            struct kafka_offset_for_leader_epoch_response_epoch_end_offset *op =
                &out->partitions.items[p];
            op->partition = ip->partition;
            op->leader_epoch = -1;
            op->end_offset = -1;
            struct replica *r = leader_replica(rq->b, in->topic, ip->partition,
                                               ip->current_leader_epoch, &op->error_code);
            if (r == NULL)
                continue;
            log_end_offset_for_epoch(replica_log(r), ip->leader_epoch, &op->leader_epoch,
                                     &op->end_offset);
        }
    }
    breq_respond(rq, &resp);
}
