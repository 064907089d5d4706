/*
 * Fetch: whole record batches from each partition's log, up to its high watermark, with
 * Kafka's limits (KIP-74: max_bytes over the response and partition_max_bytes per partition,
 * whole batches only, the first batch of the first non-empty partition returned even when it
 * is larger than both) and long polling (answer when min_bytes are available, else when an
 * append advances a high watermark far enough, else after max_wait_ms).
 *
 * Isolation (KIP-98): every partition answers its last stable offset (the first offset not yet
 * decided by a transaction marker, replica_last_stable_offset); read_uncommitted reads up to the
 * high watermark, read_committed up to the last stable offset and answers the aborted
 * transactions overlapping the offsets it returns (producer id, first offset), so the client
 * drops their records; control batches are returned to both, as Kafka does (clients skip them).
 *
 * Fetch sessions (KIP-227): Chronik creates none. A full fetch is answered with session id 0,
 * which tells the client to keep sending full fetches; an incremental fetch (a non-zero
 * session id) is answered FETCH_SESSION_ID_NOT_FOUND, which makes the client start over.
 */
#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "broker/broker_internal.h"

#include <stdlib.h>
#include <string.h>

struct fetch;

struct fetch_part {
    struct fetch *f;
    const struct kafka_fetch_request_fetch_partition *in;
    struct kafka_fetch_response_partition_data *out;
    const char *name; /* the topic's, NULL when unknown */
    size_t name_len;
    struct replica *r;
    struct replica_watch watch;
    struct log_read *read; /* pinned bytes of the response, heap-allocated */
};

struct fetch {
    struct breq *rq;
    struct kafka_fetch_response resp;
    struct fetch_part *parts;
    size_t part_count;
    struct proto_splice *splices; /* part_count of them, for respond() */
    /* v12+ (KIP-951): one current leader per partition; v16+: room for the endpoints of the
     * alive brokers as the image had them when the request came (endpoints_cap). */
    struct kafka_fetch_response_leader_id_and_epoch *leaders;
    size_t endpoints_cap;
    struct loop_timer timer;
    bool waiting;
    struct fetch *prev_waiting, *next_waiting; /* in b->fetches_waiting while waiting */
};

/* Checks the partition's leader and epoch against the image (nodes.c), finds its replica and
 * checks the offset; the error for the response, or KAFKA_NONE with p->r set. */
static int16_t check_partition(struct fetch_part *p, bool by_id)
{
    struct broker *b = p->f->rq->b;
    p->r = NULL;
    int16_t err = p->name != NULL
                      ? broker_partition_check(b, p->name, p->name_len, p->in->partition,
                                               p->in->current_leader_epoch, NULL)
                      : KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    if (err == KAFKA_NONE) {
        p->r = broker_replica(b, p->name, p->name_len, p->in->partition);
        if (p->r == NULL)
            err = broker_replica_error(b, p->name, p->name_len, p->in->partition);
    }
    if (err != KAFKA_NONE)
        return err == KAFKA_UNKNOWN_TOPIC_OR_PARTITION && by_id ? KAFKA_UNKNOWN_TOPIC_ID : err;
    if (replica_error(p->r) != 0)
        return KAFKA_KAFKA_STORAGE_ERROR;
    int64_t off = p->in->fetch_offset;
    if (off < replica_log_start_offset(p->r) || off > replica_log_end_offset(p->r))
        return KAFKA_OFFSET_OUT_OF_RANGE;
    return KAFKA_NONE;
}

/* The endpoint of an alive leader, once per node (v16+); leaders past the room taken at the
 * start (brokers registered since) are left out: the client then asks Metadata. */
static void add_endpoint(struct fetch *f, int32_t id)
{
    struct kafka_fetch_response *resp = &f->resp;
    for (size_t i = 0; i < resp->node_endpoints.count; i++)
        if (resp->node_endpoints.items[i].node_id == id)
            return;
    struct broker_node n;
    if (resp->node_endpoints.count == f->endpoints_cap || !broker_node_alive(f->rq->b, id, &n))
        return;
    resp->node_endpoints.items[resp->node_endpoints.count++] =
        (struct kafka_fetch_response_node_endpoint){.node_id = n.id,
                                                    .host = proto_str_make(n.host),
                                                    .port = n.port,
                                                    .rack = proto_str_make(n.rack)};
}

/*
 * KIP-951 (v12+): a partition answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH carries
 * the leader and epoch the image names now (-1 when there is none), and (v16+) the response the
 * endpoints of those leaders that are alive, as Kafka answers. Done when answering, as a replica
 * that closed while the fetch waited also answers NOT_LEADER_OR_FOLLOWER.
 */
static void add_current_leaders(struct fetch *f)
{
    if (f->leaders == NULL)
        return;
    for (size_t i = 0; i < f->part_count; i++) {
        struct fetch_part *p = &f->parts[i];
        if (p->out->error_code != KAFKA_NOT_LEADER_OR_FOLLOWER &&
            p->out->error_code != KAFKA_FENCED_LEADER_EPOCH)
            continue;
        struct broker_leader l;
        broker_partition_leader(f->rq->b, p->name, p->name_len, p->in->partition, &l);
        f->leaders[i] = (struct kafka_fetch_response_leader_id_and_epoch){.leader_id = l.id,
                                                                          .leader_epoch = l.epoch};
        p->out->current_leader = &f->leaders[i];
        if (f->endpoints_cap > 0)
            add_endpoint(f, l.id);
    }
}

/* read_committed: the aborted transactions overlapping [fetch offset, upper) into the
 * partition's answer (at most PRODUCER_ABORTED_FETCH_MAX; request memory only when there are
 * some, as a waiting fetch reads again at every advance). */
static int add_aborted(struct fetch_part *p, int64_t upper)
{
    struct kafka_fetch_response_partition_data *out = p->out;
    struct producer_aborted few[16];
    struct producer_aborted *found = few;
    uint32_t max = ARRAY_LEN(few), n = 0;
    int rc;
    for (;;) {
        rc = replica_aborted(p->r, p->in->fetch_offset, upper, found, max, &n);
        if (rc < 0 || n < max || max == PRODUCER_ABORTED_FETCH_MAX)
            break;
        max = max * 8 < PRODUCER_ABORTED_FETCH_MAX ? max * 8 : PRODUCER_ABORTED_FETCH_MAX;
        if (found != few)
            free(found);
        found = xmalloc(max * sizeof(*found));
    }
    out->aborted_transactions.count = 0;
    if (rc == 0 && n > 0) {
        out->aborted_transactions.items =
            arena_calloc(&p->f->rq->arena, n, sizeof(*out->aborted_transactions.items));
        if (out->aborted_transactions.items == NULL)
            rc = ERR_TOO_LARGE;
    }
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        out->aborted_transactions.items[i] = (struct kafka_fetch_response_aborted_transaction){
            .producer_id = found[i].producer_id, .first_offset = found[i].first_offset};
    if (rc == 0)
        out->aborted_transactions.count = n;
    if (found != few)
        free(found);
    return rc;
}

/* Reads p into the response under the limits and returns the bytes read; a failed replica or
 * read sets the partition's error instead. *used is the response size so far. */
static uint64_t read_partition(struct fetch_part *p, uint64_t *used)
{
    struct breq *rq = p->f->rq;
    const struct kafka_fetch_request *req = rq->body;
    struct kafka_fetch_response_partition_data *out = p->out;
    ASSERT(p->read == NULL);
    int err = replica_error(p->r);
    if (err != 0) {
        /* A replica closing (topic deleted, broker stopping) is no longer served here; one
         * whose log failed cannot be read. */
        out->error_code =
            err == ERR_CLOSED ? KAFKA_NOT_LEADER_OR_FOLLOWER : KAFKA_KAFKA_STORAGE_ERROR;
        return 0;
    }
    /* A fetch that waited (or came in while this node stalled) is answered only while this
     * node still leads: a deposed leader's high watermark can be behind what the client saw
     * from the new one, and clients must never see it go back. */
    if (out->error_code == KAFKA_NONE &&
        broker_partition_check(rq->b, p->name, p->name_len, p->in->partition, -1, NULL) !=
            KAFKA_NONE) {
        out->error_code = KAFKA_NOT_LEADER_OR_FOLLOWER;
        return 0;
    }
    out->high_watermark = replica_visible_high_watermark(p->r);
    int64_t lso;
    if (replica_last_stable_offset(p->r, &lso) < 0) {
        out->error_code = KAFKA_KAFKA_STORAGE_ERROR;
        return 0;
    }
    out->last_stable_offset = MIN(lso, out->high_watermark);
    out->log_start_offset = replica_log_start_offset(p->r);
    if (out->error_code != KAFKA_NONE)
        return 0;
    bool committed = req->isolation_level == 1;

    uint64_t max_bytes = req->max_bytes > 0 ? (uint64_t)req->max_bytes : 0;
    uint64_t part_max = p->in->partition_max_bytes > 0 ? (uint64_t)p->in->partition_max_bytes : 0;
    uint64_t room = max_bytes > *used ? max_bytes - *used : 0;
    uint64_t limit = MIN(room, part_max);
    struct log_read rd;
#ifdef BROKER_BUG_FETCH_BEYOND_HW
    /* An injected bug of the whole-cluster simulator (tests/sim, never in the broker): the
     * handler reads to the leader's log end, past the high watermark. */
    struct log *bug_log = replica_log(p->r);
    int rc = log_read(bug_log, p->in->fetch_offset, limit, log_end_offset(bug_log), &rd);
#else
    int rc =
        replica_read_records(p->r, p->in->fetch_offset, limit, committed ? lso : INT64_MAX, &rd);
#endif
    if (rc < 0) {
        out->error_code = rc == ERR_RANGE ? KAFKA_OFFSET_OUT_OF_RANGE : KAFKA_KAFKA_STORAGE_ERROR;
        return 0;
    }
    uint64_t n = rd.bytes;
    /* KIP-74: only the first non-empty partition may exceed the limits, by one batch. */
    if (rd.file == NULL || (n > limit && *used > 0)) {
        log_read_release(&rd);
        return 0;
    }
    if (committed && add_aborted(p, rd.next_offset) < 0) {
        log_read_release(&rd);
        out->error_code = KAFKA_KAFKA_STORAGE_ERROR;
        return 0;
    }
    /* The read stays pinned until the listener has sent it; the record bytes are spliced into
     * the response from the segment file (see respond()). */
    p->read = xmalloc(sizeof(*p->read));
    *p->read = rd;
    out->records = slice_make(p, n);
    *used += n;
    return n;
}

static void release_read(void *ctx)
{
    struct log_read *rd = ctx;
    log_read_release(rd);
    free(rd);
}

/* Sends the encoded response with each partition's records taken from its segment file:
 * sendfile where the file has a descriptor, else read into the response. */
static void respond(struct fetch *f)
{
    struct breq *rq = f->rq;
    struct buf out;
    buf_init(&out);
    struct proto_splice *splices = f->splices;
    size_t count = 0;
    add_current_leaders(f);
    int rc = breq_begin_response(rq, &out);
    if (rc == 0)
        rc = proto_encode_spliced(rq->api->response, &f->resp, rq->api_version, &out, splices,
                                  f->part_count, &count);
    size_t at = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        struct fetch_part *p = (struct fetch_part *)splices[i].cookie;
        if (splices[i].len == 0)
            continue;
        ASSERT(p->read != NULL && p->read->bytes == splices[i].len);
        rc = breq_append(rq, out.data + at, splices[i].at - at);
        at = splices[i].at;
        int fd = rq->net != NULL ? log_file_fd(p->read->file) : -1;
        if (rc == 0 && fd >= 0) {
            rc = net_request_append_file(rq->net, fd, p->read->position, p->read->bytes,
                                         release_read, p->read);
            if (rc == 0)
                p->read = NULL; /* released by the listener once sent */
        } else if (rc == 0) {
            /* Read into the request's memory: past its budget the connection closes, as the
             * response is already partly built. */
            uint8_t *data = arena_alloc(&rq->arena, p->read->bytes);
            ssize_t got = data == NULL ? ERR_TOO_LARGE
                                       : io_pread(log_file_io(p->read->file), data, p->read->bytes,
                                                  p->read->position);
            rc = got == (ssize_t)p->read->bytes ? breq_append(rq, data, (size_t)got)
                                                : (got < 0 ? (int)got : ERR_CORRUPT);
        }
    }
    if (rc == 0)
        rc = breq_append(rq, out.data + at, out.len - at);
    buf_deinit(&out);
    for (size_t i = 0; i < f->part_count; i++) {
        if (f->parts[i].read != NULL) {
            release_read(f->parts[i].read);
            f->parts[i].read = NULL;
        }
    }
    if (rc != 0)
        breq_abort(rq);
    else
        breq_finish(rq);
}

/* Reads every partition into the response under the limits; returns the bytes read. */
static uint64_t fill_reads(struct fetch *f)
{
    uint64_t used = 0;
    for (size_t i = 0; i < f->part_count; i++)
        if (f->parts[i].r != NULL)
            read_partition(&f->parts[i], &used);
    return used;
}

/* Gives back the reads of a fetch that keeps waiting: the next fill reads again. */
static void release_reads(struct fetch *f)
{
    for (size_t i = 0; i < f->part_count; i++) {
        struct fetch_part *p = &f->parts[i];
        if (p->read != NULL) {
            release_read(p->read);
            p->read = NULL;
            p->out->records = slice_make("", 0);
            p->out->aborted_transactions.count = 0;
        }
    }
}

/* Whether a filled fetch answers now: an error to report or at least min_bytes. */
static bool filled_ready(const struct fetch *f, uint64_t have)
{
    const struct kafka_fetch_request *req = f->rq->body;
    for (size_t i = 0; i < f->part_count; i++)
        if (f->parts[i].out->error_code != KAFKA_NONE)
            return true;
    return req->min_bytes <= 0 || have >= (uint64_t)req->min_bytes;
}

/* Answers the fetch: stops waiting if it was, reads everything unless `filled` says the reads
 * are already in the response (made in this same loop turn), and responds. */
static void fetch_finish(struct fetch *f, bool filled)
{
    if (f->waiting) {
        struct broker *b = f->rq->b;
        if (f->prev_waiting != NULL)
            f->prev_waiting->next_waiting = f->next_waiting;
        else
            b->fetches_waiting = f->next_waiting;
        if (f->next_waiting != NULL)
            f->next_waiting->prev_waiting = f->prev_waiting;
        loop_timer_stop(b->loop, &f->timer);
        for (size_t i = 0; i < f->part_count; i++)
            if (f->parts[i].r != NULL)
                replica_watch_remove(f->parts[i].r, &f->parts[i].watch);
        f->waiting = false;
    }
    if (!filled)
        fill_reads(f);
    respond(f);
}

/* Fills the response and answers when that is enough; else gives the reads back. Reading once
 * for both the decision and the answer spares a second walk of every partition's log. */
static bool fetch_try(struct fetch *f)
{
    if (!filled_ready(f, fill_reads(f))) {
        release_reads(f);
        return false;
    }
    fetch_finish(f, true);
    return true;
}

static void on_timeout(void *ctx)
{
    fetch_finish(ctx, false);
}

static void on_advance(void *ctx)
{
    struct fetch_part *p = ctx;
    struct fetch *f = p->f;
    if (f->waiting)
        fetch_try(f);
}

static void fetch_wait(struct fetch *f, int32_t max_wait_ms)
{
    struct broker *b = f->rq->b;
    loop_timer_init(&f->timer, on_timeout, f);
    if (loop_timer_start(b->loop, &f->timer, (uint64_t)max_wait_ms, 0) < 0) {
        fetch_finish(f, false); /* too many timers: answer now rather than never */
        return;
    }
    f->waiting = true;
    f->prev_waiting = NULL;
    f->next_waiting = b->fetches_waiting;
    if (b->fetches_waiting != NULL)
        b->fetches_waiting->prev_waiting = f;
    b->fetches_waiting = f;
    for (size_t i = 0; i < f->part_count; i++) {
        struct fetch_part *p = &f->parts[i];
        if (p->r == NULL)
            continue;
        replica_watch_init(&p->watch, on_advance, p);
        replica_watch_add(p->r, &p->watch);
    }
}

static size_t count_partitions(const struct kafka_fetch_request *req)
{
    size_t n = 0;
    for (size_t t = 0; t < req->topics.count; t++)
        n += req->topics.items[t].partitions.count;
    return n;
}

/* The memory of the whole answer, taken before anything is read or parked, so a fetch that
 * does not fit its request's budget fails at once. */
static int fetch_alloc(struct fetch *f, const struct kafka_fetch_request *req)
{
    struct arena *a = &f->rq->arena;
    f->part_count = count_partitions(req);
    f->parts = arena_calloc(a, f->part_count, sizeof(*f->parts));
    f->splices = arena_calloc(a, f->part_count, sizeof(*f->splices));
    f->resp.responses.count = req->topics.count;
    f->resp.responses.items = arena_calloc(a, req->topics.count, sizeof(*f->resp.responses.items));
    if (f->parts == NULL || f->splices == NULL || f->resp.responses.items == NULL)
        return ERR_TOO_LARGE;
    if (f->rq->api_version >= 12) {
        f->leaders = arena_calloc(a, f->part_count + 1, sizeof(*f->leaders));
        if (f->leaders == NULL)
            return ERR_TOO_LARGE;
    }
    if (f->rq->api_version >= 16) {
        f->endpoints_cap = (size_t)f->rq->b->meta.broker_count + 1;
        f->resp.node_endpoints.items =
            arena_calloc(a, f->endpoints_cap, sizeof(*f->resp.node_endpoints.items));
        if (f->resp.node_endpoints.items == NULL)
            return ERR_TOO_LARGE;
    }
    for (size_t t = 0; t < req->topics.count; t++) {
        size_t n = req->topics.items[t].partitions.count;
        struct kafka_fetch_response_fetchable_topic_response *ot = &f->resp.responses.items[t];
        ot->partitions.count = n;
        ot->partitions.items = arena_calloc(a, n, sizeof(*ot->partitions.items));
        if (ot->partitions.items == NULL)
            return ERR_TOO_LARGE;
    }
    return 0;
}

void fetch_handle(struct breq *rq)
{
    const struct kafka_fetch_request *req = rq->body;
    struct fetch *f = arena_zalloc(&rq->arena, sizeof(*f));
    if (f == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    f->rq = rq;
    kafka_fetch_response_init(&f->resp);
    f->resp.session_id = 0;
    f->resp.node_endpoints.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
    if (req->session_id != 0) {
        f->resp.error_code = KAFKA_FETCH_SESSION_ID_NOT_FOUND;
        f->resp.responses.items = arena_alloc(&rq->arena, 0);
        breq_respond(rq, &f->resp);
        return;
    }
    int rc = fetch_alloc(f, req);
    if (rc < 0) {
        breq_fail(rq, rc);
        return;
    }
    bool by_id = rq->api_version >= 13;
    size_t k = 0;
    for (size_t t = 0; t < req->topics.count; t++) {
        const struct kafka_fetch_request_fetch_topic *in = &req->topics.items[t];
        struct kafka_fetch_response_fetchable_topic_response *ot = &f->resp.responses.items[t];
        const char *name = in->topic.ptr;
        size_t name_len = in->topic.len;
        if (by_id) {
            struct meta_uuid id;
            memcpy(id.b, in->topic_id.bytes, sizeof(id.b));
            const struct meta_topic *mt = meta_topic_find_id(&rq->b->meta, &id);
            name = mt != NULL ? mt->name : NULL;
            name_len = mt != NULL ? strlen(mt->name) : 0;
        }
        ot->topic = in->topic;
        ot->topic_id = in->topic_id;
        for (size_t i = 0; i < in->partitions.count; i++, k++) {
            struct fetch_part *p = &f->parts[k];
            struct kafka_fetch_response_partition_data *out = &ot->partitions.items[i];
            p->f = f;
            p->in = &in->partitions.items[i];
            p->out = out;
            p->name = name;
            p->name_len = name_len;
            out->partition_index = p->in->partition;
            out->high_watermark = -1;
            out->last_stable_offset = -1;
            out->log_start_offset = -1;
            out->preferred_read_replica = -1;
            out->records = slice_make("", 0); /* empty, not null: clients reject null */
            out->aborted_transactions.items =
                req->isolation_level == 1 ? arena_alloc(&rq->arena, 0) : NULL;
            out->aborted_transactions.count = 0;
            out->error_code = check_partition(p, by_id);
            if (out->error_code != KAFKA_NONE)
                p->r = NULL;
        }
    }
    if (req->max_wait_ms <= 0)
        fetch_finish(f, false);
    else if (!fetch_try(f))
        fetch_wait(f, req->max_wait_ms);
}

void fetch_finish_all(struct broker *b)
{
    while (b->fetches_waiting != NULL)
        fetch_finish(b->fetches_waiting, false);
}
