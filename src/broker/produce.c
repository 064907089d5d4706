/*
 * Produce: validate each partition's record batch, recompress it when the topic's
 * compression.type asks for another codec, append it through the partition's replica, and
 * answer once every append is committed (acks=1 and acks=all: after the group commit's fsync
 * covers it), or at once with no response (acks=0).
 *
 * Validation follows Kafka's (LogValidator): exactly one batch of magic 2 per partition, with
 * recordCount = lastOffsetDelta + 1 > 0, no control batch and a sequence when a producer id is
 * set (INVALID_RECORD); a batch that fails its CRC or structure, or whose compressed payload
 * does not decompress (CORRUPT_MESSAGE); records of a compressed batch that do not parse, are
 * fewer or more than its header says, or have offset deltas other than 0, 1, 2, ...
 * (INVALID_RECORD); one larger than the topic's max.message.bytes, before or after
 * recompression, or decompressing past LOG_BATCH_PLAIN_BYTES_MAX (MESSAGE_TOO_LARGE), or than
 * its segment size (RECORD_LIST_TOO_LARGE). An uncompressed batch is checked in place, without
 * a copy; a compressed one is decompressed into the broker's reused codec scratch.
 * A topic with message.timestamp.type=LogAppendTime gets the broker's time stamped on the batch.
 *
 * Idempotent producers (a batch with a producer id): the partition's producer state judges the
 * batch before it is appended (replica_producer_check, Kafka's rules in log/producer_state.h):
 * OUT_OF_ORDER_SEQUENCE_NUMBER for a gap or a new epoch not at sequence 0, INVALID_PRODUCER_EPOCH
 * for a stale epoch, and a duplicate of one of the producer's last five batches is not appended
 * again but answered with the offsets it was written at, once they are committed (as its first
 * answer would have been: a retry must not learn of a write that may still be lost).
 * Transactional batches follow the same rules (a stale epoch is INVALID_PRODUCER_EPOCH, as Kafka
 * 3.x answers a transactional producer too); a non-transactional batch of a producer whose
 * transaction is ongoing on the partition is INVALID_TXN_STATE.
 */
#include "base/assert.h"
#include "base/error.h"
#include "broker/admin.h"
#include "broker/broker_internal.h"
#include "log/batch.h"
#include "log/compress.h"

#include <stdlib.h>
#include <string.h>

struct produce_part {
    struct produce *pr;
    struct kafka_produce_response_partition_produce_response *out;
    struct replica_commit commit;
    /* A duplicate waiting for its original to commit: up to dup_last, in the leader's term. Or
     * (parked) the batch waiting for this node's leadership to settle. */
    struct replica *r;
    struct replica_watch watch;
    int64_t dup_last;
    int64_t term;
    /* Parked: the request's partition data, run again once the leadership settles, and the
     * timer that bounds the wait. */
    const char *name;
    size_t name_len;
    const struct kafka_produce_request_partition_produce_data *in;
    struct loop_timer timer;
};

struct produce {
    struct breq *rq;
    struct kafka_produce_response resp;
    uint32_t pending; /* appends not yet committed, plus one while the request is scanned */
    uint32_t parked;  /* partitions that ever waited for their leadership to settle */
    /* v10+ (KIP-951): one current leader per partition, and room for the endpoints of the
     * alive brokers as the image had them when the request came (endpoints_cap). */
    struct kafka_produce_response_leader_id_and_epoch *leaders;
    struct kafka_produce_response_node_endpoint *endpoints;
    size_t endpoints_cap;
};

static int16_t storage_error(int err)
{
    switch (err) {
    case ERR_CLOSED: /* closed under the request */
    case ERR_STATE:  /* no longer (or not yet) the leader */
        return KAFKA_NOT_LEADER_OR_FOLLOWER;
    case ERR_REPLICAS: /* committed, then the ISR shrank below min.insync.replicas */
        return KAFKA_NOT_ENOUGH_REPLICAS_AFTER_APPEND;
    case ERR_TIMEOUT: /* committed, still short of min.insync.replicas at the timeout */
        return KAFKA_REQUEST_TIMED_OUT;
    default:
        return KAFKA_KAFKA_STORAGE_ERROR;
    }
}

/* The endpoint of an alive leader, once per node; leaders past the room taken at the start
 * (brokers registered since) are left out: the client then asks Metadata. */
static void add_endpoint(struct produce *pr, int32_t id)
{
    struct kafka_produce_response *resp = &pr->resp;
    for (size_t i = 0; i < resp->node_endpoints.count; i++)
        if (resp->node_endpoints.items[i].node_id == id)
            return;
    struct broker_node n;
    if (resp->node_endpoints.count == pr->endpoints_cap || !broker_node_alive(pr->rq->b, id, &n))
        return;
    resp->node_endpoints.items[resp->node_endpoints.count++] =
        (struct kafka_produce_response_node_endpoint){.node_id = n.id,
                                                      .host = proto_str_make(n.host),
                                                      .port = n.port,
                                                      .rack = proto_str_make(n.rack)};
}

/*
 * KIP-951 (v10+): every partition answered NOT_LEADER_OR_FOLLOWER carries the leader and epoch
 * the image names now (-1 when there is none), and the response the endpoints of those leaders
 * that are alive, so the client goes there without a Metadata round trip. Done when answering,
 * as a replica that closed under an append also answers NOT_LEADER_OR_FOLLOWER.
 */
static void add_current_leaders(struct produce *pr)
{
    if (pr->leaders == NULL)
        return;
    size_t k = 0;
    for (size_t t = 0; t < pr->resp.responses.count; t++) {
        struct kafka_produce_response_topic_produce_response *ot = &pr->resp.responses.items[t];
        for (size_t p = 0; p < ot->partition_responses.count; p++, k++) {
            struct kafka_produce_response_partition_produce_response *op =
                &ot->partition_responses.items[p];
            if (op->error_code != KAFKA_NOT_LEADER_OR_FOLLOWER)
                continue;
            struct broker_leader l;
            broker_partition_leader(pr->rq->b, ot->name.ptr, ot->name.len, op->index, &l);
            pr->leaders[k] = (struct kafka_produce_response_leader_id_and_epoch){
                .leader_id = l.id, .leader_epoch = l.epoch};
            op->current_leader = &pr->leaders[k];
            add_endpoint(pr, l.id);
        }
    }
}

static void produce_done(struct produce *pr)
{
    ASSERT(pr->pending > 0);
    if (--pr->pending > 0)
        return;
    add_current_leaders(pr);
    breq_respond(pr->rq, &pr->resp);
}

static void on_commit(void *ctx, int err)
{
    struct produce_part *part = ctx;
    if (err != 0) {
        part->out->error_code = storage_error(err);
        part->out->base_offset = -1;
    }
    produce_done(part->pr);
}

/* A duplicate's original: answered once committed, NOT_LEADER_OR_FOLLOWER when this node stops
 * leading in the term it was written in (it may be cut), the storage error when the replica
 * failed. */
static void on_duplicate_watch(void *ctx)
{
    struct produce_part *part = ctx;
    struct replica *r = part->r;
    int err = replica_error(r);
    if (err == 0 && !(replica_leads(r) && replica_term(r) == part->term))
        err = ERR_STATE;
    if (err == 0 && replica_high_watermark(r) <= part->dup_last)
        return;
    replica_watch_remove(r, &part->watch);
    on_commit(part, err);
}

static void answer_duplicate(struct produce *pr, struct produce_part *part, struct replica *r,
                             const struct producer_batch *dup, bool wait)
{
    part->pr = pr;
    part->out->base_offset = dup->first_offset;
    part->out->log_start_offset = replica_log_start_offset(r);
    if (!wait || replica_high_watermark(r) > dup->last_offset)
        return;
    part->r = r;
    part->dup_last = dup->last_offset;
    part->term = replica_term(r);
    replica_watch_init(&part->watch, on_duplicate_watch, part);
    replica_watch_add(r, &part->watch);
    pr->pending++;
}

/* Idempotence: false to append the batch; true when the partition is answered (an error, or
 * a duplicate's original offsets). */
static bool check_producer(struct produce *pr, struct produce_part *part, struct replica *r,
                           const struct batch_header *h)
{
    struct broker *b = pr->rq->b;
    const struct kafka_produce_request *req = pr->rq->body;
    struct producer_batch dup;
    int v = replica_producer_check(r, h, clock_wall_ms(b->clock), b->cfg->producer_id_expiration_ms,
                                   &dup);
    if (v == PRODUCER_APPEND)
        return false;
    if (v == PRODUCER_DUPLICATE)
        answer_duplicate(pr, part, r, &dup, req->acks != 0);
    else
        part->out->error_code = v < 0                        ? storage_error(v)
                                : v == PRODUCER_OUT_OF_ORDER ? KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER
                                : v == PRODUCER_INVALID_TXN_STATE ? KAFKA_INVALID_TXN_STATE
                                                                  : KAFKA_INVALID_PRODUCER_EPOCH;
    return true;
}

/* The answer to a failed records_check or records_rebuild. */
static int16_t codec_error(int err)
{
    switch (err) {
    case ERR_INVALID:
        return KAFKA_INVALID_RECORD;
    case ERR_TOO_LARGE:
        return KAFKA_MESSAGE_TOO_LARGE;
    case ERR_UNSUPPORTED:
        return KAFKA_UNSUPPORTED_COMPRESSION_TYPE;
    default:
        return KAFKA_CORRUPT_MESSAGE;
    }
}

static int16_t check_size(const struct topic_config_values *tc, size_t len)
{
    if ((int64_t)len > tc->max_message_bytes)
        return KAFKA_MESSAGE_TOO_LARGE;
    if ((int64_t)len > tc->segment_bytes)
        return KAFKA_RECORD_LIST_TOO_LARGE;
    return KAFKA_NONE;
}

/*
 * The records of a batch that passed its header and CRC checks, and the batch to store: the
 * request's bytes, or, when the topic's compression.type names another codec than the batch's,
 * the batch rebuilt with that codec in the broker's codec scratch (valid until the next batch).
 */
static int16_t check_payload(struct records_codec *codec, const struct topic_config_values *tc,
                             struct slice *batch, struct batch_header *h)
{
    struct slice plain;
    int rc = records_check(codec, batch->ptr, h, LOG_BATCH_PLAIN_BYTES_MAX, &plain);
    if (rc < 0)
        return codec_error(rc);
    if (tc->compression == TOPIC_COMPRESSION_PRODUCER || tc->compression == (int)batch_codec(h))
        return KAFKA_NONE;
    rc = records_rebuild(codec, batch->ptr, h, plain, (enum batch_codec)tc->compression, batch);
    if (rc == 0)
        rc = batch_header_parse(batch->ptr, batch->len, h);
    if (rc < 0)
        return codec_error(rc);
    return check_size(tc, batch->len);
}

/* Checks one partition's records; KAFKA_NONE and the batch, or the error for the response. */
static int16_t check_records(struct records_codec *codec, const struct topic_config_values *tc,
                             struct slice records, struct slice *batch, struct batch_header *h)
{
    if (records.ptr == NULL || records.len == 0)
        return KAFKA_INVALID_RECORD;
    int rc = batch_parse(records.ptr, records.len, h);
    if (rc == ERR_UNSUPPORTED) {
        /* An unknown magic is a wrong format; an unknown codec is a bad compression type. */
        return records.len > BATCH_OFF_MAGIC && records.ptr[BATCH_OFF_MAGIC] != BATCH_MAGIC
                   ? KAFKA_INVALID_RECORD
                   : KAFKA_UNSUPPORTED_COMPRESSION_TYPE;
    }
    if (rc == ERR_TOO_LARGE)
        return KAFKA_MESSAGE_TOO_LARGE;
    if (rc < 0)
        return KAFKA_CORRUPT_MESSAGE;
    if (batch_total_bytes(h) != records.len)
        return KAFKA_INVALID_RECORD; /* Produce v3+ carries exactly one batch per partition */
    int16_t err = check_size(tc, records.len);
    if (err != KAFKA_NONE)
        return err;
    if (batch_check_produced(h) < 0)
        return KAFKA_INVALID_RECORD;
    *batch = records;
    return check_payload(codec, tc, batch, h);
}

/* message.timestamp.type=LogAppendTime: the batch's timestamp becomes the broker's clock,
 * flagged in its attributes, as Kafka does; both lie inside the CRC, so it is recomputed. */
static void stamp_log_append_time(uint8_t *p, const struct batch_header *h, int64_t now_ms)
{
    be16_store(p + BATCH_OFF_ATTRIBUTES, (uint16_t)(h->attributes | BATCH_ATTR_LOG_APPEND_TS));
    be64_store(p + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)now_ms);
    struct batch_header stamped = *h;
    stamped.attributes = (int16_t)(h->attributes | BATCH_ATTR_LOG_APPEND_TS);
    be32_store(p + BATCH_OFF_CRC, batch_compute_crc(p, &stamped));
}

static bool park(struct produce *pr, const char *name, size_t name_len,
                 const struct kafka_produce_request_partition_produce_data *in, struct replica *r,
                 struct produce_part *part);

static void produce_partition(struct produce *pr, const struct meta_topic *mt, const char *name,
                              size_t name_len,
                              const struct kafka_produce_request_partition_produce_data *in,
                              struct kafka_produce_response_partition_produce_response *out,
                              struct produce_part *part)
{
    struct breq *rq = pr->rq;
    struct broker *b = rq->b;
    const struct kafka_produce_request *req = rq->body;
    out->index = in->index;
    out->base_offset = -1;
    out->log_append_time_ms = -1;
    out->log_start_offset = -1;
    out->record_errors.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
    part->out = out;

    /* Led elsewhere (or nowhere): NOT_LEADER_OR_FOLLOWER, with the leader (see above). A
     * leadership settling here (not ready yet, which is refused so, or handing over, which is
     * not) makes the batch wait instead. */
    out->error_code = mt != NULL ? broker_partition_check(b, name, name_len, in->index, -1, NULL)
                                 : KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    if (out->error_code != KAFKA_NONE && out->error_code != KAFKA_NOT_LEADER_OR_FOLLOWER)
        return;
    struct replica *r = broker_replica(b, name, name_len, in->index);
    if (r != NULL && req->acks != 0 && replica_leader_pending(r) &&
        park(pr, name, name_len, in, r, part)) {
        out->error_code = KAFKA_NONE;
        return;
    }
    if (out->error_code != KAFKA_NONE)
        return;
    if (r == NULL) {
        out->error_code = broker_replica_error(b, name, name_len, in->index);
        return;
    }
    if (strcmp(mt->name, BROKER_OFFSETS_TOPIC) == 0 ||
        strcmp(mt->name, BROKER_TXN_STATE_TOPIC) == 0) {
        /* Only the coordinators write their internal topics, as in Kafka. */
        out->error_code = KAFKA_INVALID_TOPIC_EXCEPTION;
        out->error_message =
            proto_str_make(strcmp(mt->name, BROKER_OFFSETS_TOPIC) == 0
                               ? "Cannot append to internal topic " BROKER_OFFSETS_TOPIC
                               : "Cannot append to internal topic " BROKER_TXN_STATE_TOPIC);
        return;
    }
    if (req->acks != 0 && req->acks != 1 && req->acks != -1) {
        out->error_code = KAFKA_INVALID_REQUIRED_ACKS;
        return;
    }
    struct topic_config_values tc;
    topic_config_resolve(b->cfg, mt, &tc);
    struct slice batch;
    struct batch_header h;
    out->error_code = check_records(&b->codec, &tc, in->records, &batch, &h);
    if (out->error_code != KAFKA_NONE)
        return;
    /* Too few in-sync replicas: refused before anything is appended (standalone, the ISR is
     * this node alone). */
    if (req->acks == -1 && tc.min_insync_replicas > 1) {
        int32_t isr[RAFT_MEMBERS_MAX];
        uint32_t n = replica_group(r) != NULL ? replica_isr(r, isr, RAFT_MEMBERS_MAX) : 1;
        if (n < (uint32_t)tc.min_insync_replicas) {
            out->error_code = KAFKA_NOT_ENOUGH_REPLICAS;
            return;
        }
    }

    part->pr = pr;
    if (h.producer_id >= 0 && check_producer(pr, part, r, &h))
        return;
    struct log_append_result res;
    /* The batch (or its rebuilt copy) is stamped in place with its offset and leader epoch,
     * outside the CRC, and stored as received: the log has written it when replica_append
     * returns, so the frame is not needed for it afterwards. */
    uint8_t *bytes = (uint8_t *)batch.ptr;
    if (tc.log_append_time) {
        out->log_append_time_ms = clock_wall_ms(b->clock);
        stamp_log_append_time(bytes, &h, out->log_append_time_ms);
    }
#ifdef CHRONIK_BUG_ACK_BEFORE_FSYNC
    /* The injected bug of the crash test's "does it bite" build (never in the broker): the
     * answer leaves at append time, before the group commit's fsync. */
    enum replica_wait wait = REPLICA_WAIT_NONE;
#elif defined(BROKER_BUG_ACKS_ALL_ON_LEADER)
    /* An injected bug of the whole-cluster simulator (tests/sim, never in the broker): acks=all
     * answered once the leader alone has the batch durably, as acks=1. */
    enum replica_wait wait = req->acks == 0 ? REPLICA_WAIT_NONE : REPLICA_WAIT_LEADER;
#else
    enum replica_wait wait = req->acks == 0   ? REPLICA_WAIT_NONE
                             : req->acks == 1 ? REPLICA_WAIT_LEADER
                                              : REPLICA_WAIT_COMMIT;
#endif
    int rc = replica_append(r, bytes, batch.len, wait,
                            tc.min_insync_replicas > 0 ? (uint32_t)tc.min_insync_replicas : 1,
                            &part->commit, on_commit, part, &res);
    if (rc < 0) {
        out->error_code = storage_error(rc);
        return;
    }
    out->base_offset = res.base_offset;
    out->log_start_offset = replica_log_start_offset(r);
    /* Kafka answers an acks=all write the replicas do not reach at the request's timeout. */
    if (wait == REPLICA_WAIT_COMMIT)
        part->commit.deadline_ms = clock_mono_ms(b->clock) + (uint64_t)MAX(req->timeout_ms, 0);
    if (wait != REPLICA_WAIT_NONE)
        pr->pending++;
}

/*
 * A batch for a partition whose leadership is not settled here: this node won the election but
 * has not committed its term's first entry, or it is handing the leadership over. Refusing it
 * (NOT_LEADER_OR_FOLLOWER) while a batch the same client pipelined behind it is judged once
 * the leadership settled gets that one OUT_OF_ORDER_SEQUENCE_NUMBER (its predecessor was never
 * written), which librdkafka 2.0.2 answers with a fatal error (a batch it believes possibly
 * written, after a broken connection) or with an epoch bump that renumbers, and so writes
 * again, batches of other partitions that were written. Kafka's leader has no such moment, so
 * its clients never meet it: the batch waits here instead, in arrival order (watches are run in
 * the order they were added), and is judged and appended once the leadership settled, refused
 * if it went elsewhere, or refused when half the request's timeout has passed (the client's
 * own timeout would otherwise fire first).
 */
static void unpark(struct produce_part *part, bool timed_out)
{
    struct produce *pr = part->pr;
    struct broker *b = pr->rq->b;
    loop_timer_stop(b->loop, &part->timer);
    replica_watch_remove(part->r, &part->watch);
    part->r = NULL;
    if (timed_out) {
        part->out->error_code = KAFKA_NOT_LEADER_OR_FOLLOWER;
    } else {
        const struct meta_topic *mt = meta_topic_find(&b->meta, part->name, part->name_len);
        produce_partition(pr, mt, part->name, part->name_len, part->in, part->out, part);
    }
    produce_done(pr);
}

static void on_park_watch(void *ctx)
{
    struct produce_part *part = ctx;
    if (replica_error(part->r) == 0 && replica_leader_pending(part->r))
        return;
    unpark(part, false);
}

static void on_park_timeout(void *ctx)
{
    unpark(ctx, true);
}

static bool park(struct produce *pr, const char *name, size_t name_len,
                 const struct kafka_produce_request_partition_produce_data *in, struct replica *r,
                 struct produce_part *part)
{
    struct broker *b = pr->rq->b;
    const struct kafka_produce_request *req = pr->rq->body;
    if (req->timeout_ms < 2)
        return false;
    part->pr = pr;
    part->name = name;
    part->name_len = name_len;
    part->in = in;
    loop_timer_init(&part->timer, on_park_timeout, part);
    if (loop_timer_start(b->loop, &part->timer, (uint64_t)req->timeout_ms / 2, 0) < 0)
        return false; /* too many timers: refused at once, as before */
    part->r = r;
    replica_watch_init(&part->watch, on_park_watch, part);
    replica_watch_add(r, &part->watch);
    pr->pending++;
    pr->parked++;
    return true;
}

static bool any_error(const struct kafka_produce_response *resp)
{
    for (size_t i = 0; i < resp->responses.count; i++) {
        const struct kafka_produce_response_topic_produce_response *t = &resp->responses.items[i];
        for (size_t p = 0; p < t->partition_responses.count; p++)
            if (t->partition_responses.items[p].error_code != KAFKA_NONE)
                return true;
    }
    return false;
}

/* The memory of the whole answer and of every partition's commit, taken before the first
 * append: a request that does not fit its budget fails having written nothing. */
static struct produce *produce_alloc(struct breq *rq, struct produce_part **parts)
{
    const struct kafka_produce_request *req = rq->body;
    struct produce *pr = arena_zalloc(&rq->arena, sizeof(*pr));
    if (pr == NULL)
        return NULL;
    size_t nt = req->topic_data.count, total = 0;
    pr->resp.responses.items = arena_calloc(&rq->arena, nt, sizeof(*pr->resp.responses.items));
    if (pr->resp.responses.items == NULL)
        return NULL;
    for (size_t i = 0; i < nt; i++) {
        size_t np = req->topic_data.items[i].partition_data.count;
        struct kafka_produce_response_topic_produce_response *ot = &pr->resp.responses.items[i];
        ot->partition_responses.items =
            arena_calloc(&rq->arena, np, sizeof(*ot->partition_responses.items));
        if (ot->partition_responses.items == NULL)
            return NULL;
        total += np;
    }
    *parts = arena_calloc(&rq->arena, total, sizeof(**parts));
    if (*parts == NULL)
        return NULL;
    if (rq->api_version >= 10) {
        pr->endpoints_cap = (size_t)rq->b->meta.broker_count + 1;
        pr->leaders = arena_calloc(&rq->arena, total + 1, sizeof(*pr->leaders));
        pr->endpoints = arena_calloc(&rq->arena, pr->endpoints_cap, sizeof(*pr->endpoints));
        if (pr->leaders == NULL || pr->endpoints == NULL)
            return NULL;
    }
    return pr;
}

void produce_handle(struct breq *rq)
{
    const struct kafka_produce_request *req = rq->body;
    struct produce_part *parts = NULL;
    struct produce *pr = produce_alloc(rq, &parts);
    if (pr == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    pr->rq = rq;
    pr->pending = 1;
    struct kafka_produce_response_topic_produce_response *topics = pr->resp.responses.items;
    kafka_produce_response_init(&pr->resp);
    size_t nt = req->topic_data.count;
    pr->resp.responses.count = nt;
    pr->resp.responses.items = topics;
    if (pr->endpoints != NULL)
        pr->resp.node_endpoints.items = pr->endpoints;
    size_t k = 0;
    for (size_t i = 0; i < nt; i++) {
        const struct kafka_produce_request_topic_produce_data *t = &req->topic_data.items[i];
        struct kafka_produce_response_topic_produce_response *ot = &pr->resp.responses.items[i];
        ot->name = t->name;
        size_t np = t->partition_data.count;
        ot->partition_responses.count = np;
        const struct meta_topic *mt =
            t->name.ptr != NULL ? meta_topic_find(&rq->b->meta, t->name.ptr, t->name.len) : NULL;
        for (size_t p = 0; p < np; p++, k++)
            produce_partition(pr, mt, t->name.ptr, t->name.len, &t->partition_data.items[p],
                              &ot->partition_responses.items[p], &parts[k]);
    }
    /* Every batch is written or refused: a scratch buffer a huge batch grew is let go. */
    records_codec_trim(&rq->b->codec);
    /* Every batch is in its log and the answer waits for commits: the frame's buffer goes
     * back now, so the next request is read into memory still in the CPU's caches (at full
     * speed the answers of dozens of 1 MB requests wait for their sync at once). Only the
     * batches point into the frame (decoded strings, topic names too, are arena copies); a
     * parked partition still needs its batch, so the frame stays then. */
    if (req->acks != 0 && pr->pending > 1 && pr->parked == 0)
        breq_release_frame(rq);
    if (req->acks == 0) {
        /* No response at all: Kafka's acks=0 contract. A failed partition closes the
         * connection instead, as Kafka does, which is the only way to tell such a client. */
        if (any_error(&pr->resp))
            breq_abort(rq);
        else
            breq_respond_none(rq);
        return;
    }
    produce_done(pr);
}
