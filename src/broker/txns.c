/*
 * The transaction coordinator's host: FindCoordinator for transactional ids, InitProducerId
 * with a transactional id, AddPartitionsToTxn (v0-v3, the client's form), AddOffsetsToTxn,
 * EndTxn, DescribeTransactions and ListTransactions, on the pure state of src/txn.
 *
 * Owns: struct txns (b->txns), created on first need, and the internal topic
 * __transaction_state, created when first needed (transaction.state.log.num.partitions,
 * replication factor transaction.state.log.replication.factor and min.insync.replicas
 * transaction.state.log.min.isr, both capped at the registered brokers). A transactional id's
 * coordinator is the leader of partition txn_partition_of(id) of that topic; this node
 * coordinates exactly the partitions it leads (looked at every tick and at every leadership
 * change of the topic), loading one from its log start to its high watermark before it
 * answers for it (COORDINATOR_LOAD_IN_PROGRESS meanwhile; the loader groups.c uses too,
 * coord_load.h, at most LOAD_CHUNKS_PER_TICK chunks a turn) and dropping one it no longer leads
 * (NOT_COORDINATOR).
 *
 * A change of an id's state is appended to its partition with acks=all and is applied (and the
 * request answered) only once committed; while it is in flight the id answers
 * CONCURRENT_TRANSACTIONS. An AddPartitionsToTxn or AddOffsetsToTxn that would get that answer
 * because the id's change or its previous transaction's markers are in flight is held instead
 * (struct thold) and tried again whenever an id's state changes, for at most TXN_HOLD_MS (then
 * answered at the next tick, as before). A client begins its next transaction a moment after
 * EndTxn is answered, before the markers are written; answered at once, librdkafka waits 20 ms
 * or more before it asks again, longer than the markers take. A transaction in PrepareCommit or
 * PrepareAbort gets its markers: a WriteTxnMarkers v1 request to the leader of each partition of it
 * (this node's through broker_run_frame, another's over the cluster port, broker_send_frame), sent
 * again every TXN_MARKER_RETRY_MS for partitions not done yet, then CompleteCommit or CompleteAbort
 * is appended. A partition whose topic is gone needs no marker. The same rule resumes the markers
 * of a partition loaded in a Prepare state (a coordinator that failed over), so every prepared
 * transaction completes. Each tick also aborts transactions past their timeout (epoch bumped,
 * the producer fenced) and removes ids idle past transactional.id.expiration.ms (a tombstone).
 *
 * It must never trust a request: the pure module validates what it keeps, and this file only
 * copies, bounded by the request's arena.
 */
#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"
#include "broker/broker_internal.h"
#include "broker/coord_load.h"
#include "group/group.h"
#include "log/batch.h"
#include "txn/txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TXN_TOPIC             BROKER_TXN_STATE_TOPIC
#define API_WRITE_TXN_MARKERS 27
#define MARKERS_VERSION       1
#define LOAD_CHUNKS_PER_TICK  64u

struct tload {
    struct coord_load load;
    bool owned;    /* led here: loading or loaded */
    int32_t epoch; /* the partition's leader epoch when it came here: the coordinator epoch */
    uint64_t gen;  /* bumped whenever ownership changes: stale completions are ignored */
};

struct tappend;
struct tmark;
struct thold;

struct txns {
    struct broker *b;
    struct txn_coord coord;
    bool topic_ready;
    bool creating;
    struct breq *parked[TXN_PARKED_FIND_MAX];
    uint32_t parked_count;
    struct coord_loader loader;
    struct tload *loads;
    struct tappend *inflight;
    struct tmark *marks;
    struct thold *held;
    uint32_t held_count;
    struct loop_timer tick_timer;
    int64_t next_abort_check_ms;
};

/* What an append's outcome does. */
enum tkind {
    TK_INIT,     /* answer InitProducerId with the target's id and epoch */
    TK_FENCE,    /* answer InitProducerId CONCURRENT_TRANSACTIONS; markers follow */
    TK_ADD,      /* answer AddPartitionsToTxn / AddOffsetsToTxn */
    TK_END,      /* answer EndTxn; markers follow */
    TK_TIMEOUT,  /* markers follow */
    TK_COMPLETE, /* nothing more */
    TK_EXPIRE,   /* the id is removed */
};

typedef void (*tanswer_fn)(struct breq *rq, void *resp, int16_t err, const struct txn_meta *m);

struct tappend {
    struct replica_commit commit;
    struct txns *ts; /* NULL once the coordinator closed */
    struct tappend *next;
    uint32_t p;
    uint64_t gen;
    enum tkind kind;
    struct txn_meta target; /* TK_EXPIRE: only its id */
    struct breq *rq;        /* or NULL */
    void *resp;
    tanswer_fn answer;
};

/* The markers of one prepared transaction. */
struct tmark {
    struct tmark *next;
    struct txns *ts; /* NULL once the coordinator closed */
    char *id;
    size_t id_len;
    uint32_t p;
    uint64_t gen;
    int64_t producer_id;
    int16_t epoch;
    bool commit;
    struct txn_part *left; /* partitions without their marker yet (topics owned) */
    size_t left_count;
    uint32_t outstanding; /* requests sent and not answered */
    int64_t send_ms;      /* when to send again (outstanding 0, left_count > 0) */
};

/* A request held while its id's state changes: AddPartitionsToTxn (parts) or AddOffsetsToTxn
 * (parts NULL), its answer prepared in resp. */
struct thold {
    struct thold *next;
    struct breq *rq;
    void *resp;
    struct txn_part *parts;
    size_t part_count;
    int64_t until_ms;
};

/* One WriteTxnMarkers request of a job. */
struct tsend {
    struct tmark *job;
};

static int64_t now_ms(const struct txns *ts)
{
    return clock_wall_ms(ts->b->clock);
}

static struct slice sl(struct proto_str s)
{
    return slice_make(s.ptr, s.len);
}

static void *answer_mem(struct breq *rq, void *p)
{
    if (p == NULL)
        rq->out_of_memory = true;
    return p;
}

static int16_t leader_replication(struct txns *ts, uint32_t p)
{
    const struct meta_topic *mt = meta_topic_find(&ts->b->meta, TXN_TOPIC, strlen(TXN_TOPIC));
    if (mt == NULL || p >= mt->partition_count)
        return 1;
    return (int16_t)mt->partitions[p].replica_count;
}

/* ---- appends ------------------------------------------------------------------------------ */

static void start_markers(struct txns *ts, const struct txn_meta *m);

static void tappend_free(struct tappend *a)
{
    txn_meta_clear(&a->target);
    free(a);
}

static void held_retry(struct txns *ts);
static void held_answer_all(struct txns *ts, int16_t err);

/* The append is done (err 0: committed): applies the target or gives up on it. */
static void append_apply(struct tappend *a, int err)
{
    struct txns *ts = a->ts;
    struct slice id = slice_make(a->target.id, a->target.id_len);
    bool current = ts != NULL && ts->loads[a->p].gen == a->gen && ts->loads[a->p].owned;
    struct txn_meta *m = current ? txn_coord_find(&ts->coord, id) : NULL;
    if (m == NULL || err != 0) {
        if (m != NULL && m->state == TXN_DEAD)
            txn_coord_remove(&ts->coord, id); /* a new id whose first record failed */
        else if (m != NULL)
            m->pending = false;
        if (a->rq != NULL)
            a->answer(a->rq, a->resp,
                      err == 0 || err == ERR_CLOSED || err == ERR_STATE
                          ? TXN_ERR_NOT_COORDINATOR
                          : TXN_ERR_COORDINATOR_NOT_AVAILABLE,
                      NULL);
        tappend_free(a);
        return;
    }
    if (a->kind == TK_EXPIRE) {
        txn_coord_remove(&ts->coord, id);
        tappend_free(a);
        return;
    }
    struct txn_meta *stored = NULL;
    int rc = txn_coord_put(&ts->coord, &a->target, &stored);
    ASSERT(rc == 0); /* the id is held already */
    switch (a->kind) {
    case TK_INIT:
    case TK_ADD:
    case TK_END:
        a->answer(a->rq, a->resp, TXN_ERR_NONE, stored);
        break;
    case TK_FENCE:
        a->answer(a->rq, a->resp, TXN_ERR_CONCURRENT_TRANSACTIONS, stored);
        break;
    case TK_TIMEOUT:
    case TK_COMPLETE:
    case TK_EXPIRE:
        break;
    }
    if (stored->state == TXN_PREPARE_COMMIT || stored->state == TXN_PREPARE_ABORT)
        start_markers(ts, stored);
    tappend_free(a);
}

/* An id's state changed (or stayed, its change failed): the held requests may go on. */
static void append_finish(struct tappend *a, int err)
{
    struct txns *ts = a->ts;
    append_apply(a, err);
    if (ts != NULL)
        held_retry(ts);
}

static void on_append_commit(void *ctx, int err)
{
    struct tappend *a = ctx;
    if (a->ts != NULL) {
        struct tappend **pp = &a->ts->inflight;
        while (*pp != a)
            pp = &(*pp)->next;
        *pp = a->next;
    }
    append_finish(a, err);
}

/*
 * Appends the change of m to target (moved; TK_EXPIRE: a tombstone of m's id), answering rq
 * through answer once done. m is pending until then. Answers at once when the append cannot
 * start.
 */
static void txn_append(struct txns *ts, struct txn_meta *m, struct txn_meta *target,
                       enum tkind kind, struct breq *rq, void *resp, tanswer_fn answer)
{
    struct broker *b = ts->b;
    struct tappend *a = xcalloc(1, sizeof(*a));
    a->ts = ts;
    a->p = m != NULL ? m->partition : target->partition;
    a->gen = ts->loads[a->p].gen;
    a->kind = kind;
    a->rq = rq;
    a->resp = resp;
    a->answer = answer;
    if (kind == TK_EXPIRE) {
        txn_meta_copy(&a->target, m);
    } else {
        a->target = *target;
        memset(target, 0, sizeof(*target));
    }
    struct slice id = slice_make(a->target.id, a->target.id_len);
    struct buf key, value, batch;
    buf_init(&key);
    buf_init(&value);
    buf_init(&batch);
    txn_key_encode(&key, id);
    if (kind != TK_EXPIRE)
        txn_value_encode(&value, &a->target);
    struct batch_record rec = {.key = buf_slice(&key),
                               .value = kind == TK_EXPIRE ? slice_make(NULL, 0) : buf_slice(&value),
                               .timestamp_ms = now_ms(ts)};
    struct batch_build_opts opts = {
        .base_offset = 0, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    int rc = batch_build(&batch, &opts, &rec, 1);
    struct replica *r = broker_replica(b, TXN_TOPIC, strlen(TXN_TOPIC), (int32_t)a->p);
    if (rc == 0 && r == NULL)
        rc = ERR_CLOSED;
    if (rc == 0) {
        uint32_t min_isr =
            (uint32_t)MIN(b->cfg->transaction_state_log_min_isr, leader_replication(ts, a->p));
        struct log_append_result res;
        rc = replica_append(r, batch.data, batch.len, REPLICA_WAIT_COMMIT, MAX(min_isr, 1u),
                            &a->commit, on_append_commit, a, &res);
    }
    buf_deinit(&key);
    buf_deinit(&value);
    buf_deinit(&batch);
    if (rc < 0) {
        append_finish(a, rc);
        return;
    }
    if (m != NULL)
        m->pending = true;
    a->next = ts->inflight;
    ts->inflight = a;
}

/* ---- markers ------------------------------------------------------------------------------ */

static void mark_free(struct tmark *j)
{
    for (size_t i = 0; i < j->left_count; i++)
        free(j->left[i].topic);
    free(j->left);
    free(j->id);
    free(j);
}

static void mark_unlink(struct txns *ts, struct tmark *j)
{
    for (struct tmark **pp = &ts->marks; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            return;
        }
    }
}

/* Whether the job is for the partition as it is loaded now (not from before a reload). */
static bool mark_current(const struct txns *ts, const struct tmark *j)
{
    return ts->loads[j->p].owned && ts->loads[j->p].gen == j->gen;
}

static bool mark_running(const struct txns *ts, const struct txn_meta *m)
{
    for (const struct tmark *j = ts->marks; j != NULL; j = j->next)
        if (j->p == m->partition && mark_current(ts, j) && j->id_len == m->id_len &&
            memcmp(j->id, m->id, m->id_len) == 0)
            return true;
    return false;
}

/* Every marker is written: the transaction completes (if it is still the one prepared). */
static void mark_done(struct txns *ts, struct tmark *j)
{
    mark_unlink(ts, j);
    struct txn_meta *m = NULL;
    if (mark_current(ts, j))
        m = txn_coord_find(&ts->coord, slice_make(j->id, j->id_len));
    if (m != NULL && !m->pending && m->producer_id == j->producer_id && m->epoch == j->epoch &&
        m->state == (j->commit ? TXN_PREPARE_COMMIT : TXN_PREPARE_ABORT)) {
        struct txn_meta target;
        txn_decide_complete(m, now_ms(ts), &target);
        txn_append(ts, m, &target, TK_COMPLETE, NULL, NULL, NULL);
    }
    mark_free(j);
}

static void drop_left(struct tmark *j, struct slice topic, int32_t partition)
{
    for (size_t i = 0; i < j->left_count; i++) {
        if (j->left[i].partition == partition && strlen(j->left[i].topic) == topic.len &&
            memcmp(j->left[i].topic, topic.ptr, topic.len) == 0) {
            free(j->left[i].topic);
            j->left[i] = j->left[--j->left_count];
            return;
        }
    }
}

/* A WriteTxnMarkers answer: partitions written (or gone) need no more markers. */
static void on_markers_answer(void *ctx, const struct buf *response)
{
    struct tsend *s = ctx;
    struct tmark *j = s->job;
    free(s);
    if (response != NULL) {
        struct arena a;
        arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
        struct reader r;
        rd_init(&r, response->data, response->len);
        struct kafka_response_header h;
        struct kafka_write_txn_markers_response resp;
        int hv = proto_response_header_version(API_WRITE_TXN_MARKERS, MARKERS_VERSION);
        int rc = kafka_response_header_decode(&a, &r, (int16_t)hv, &h);
        if (rc == 0)
            rc = proto_decode(proto_api_get(API_WRITE_TXN_MARKERS)->response, &a, &r,
                              MARKERS_VERSION, &resp);
        for (size_t m = 0; rc == 0 && m < resp.markers.count; m++) {
            for (size_t t = 0; t < resp.markers.items[m].topics.count; t++) {
                const struct kafka_write_txn_markers_response_writable_txn_marker_topic_result *tr =
                    &resp.markers.items[m].topics.items[t];
                for (size_t p = 0; p < tr->partitions.count; p++) {
                    int16_t err = tr->partitions.items[p].error_code;
                    if (err == TXN_ERR_NONE || err == TXN_ERR_UNKNOWN_TOPIC_OR_PARTITION)
                        drop_left(j, sl(tr->name), tr->partitions.items[p].partition_index);
                }
            }
        }
        arena_deinit(&a);
    }
    ASSERT(j->outstanding > 0);
    if (--j->outstanding > 0)
        return;
    if (j->ts == NULL) {
        mark_free(j);
        return;
    }
    if (j->left_count == 0) {
        mark_done(j->ts, j);
        return;
    }
    j->send_ms = now_ms(j->ts) + TXN_MARKER_RETRY_MS;
}

/* One WriteTxnMarkers v1 frame with the job's marker for the partitions of leader `node`. */
static int markers_frame(const struct tmark *j, const int32_t *leaders, int32_t node,
                         struct buf *frame)
{
    struct kafka_write_txn_markers_request_writable_txn_marker_topic *topics =
        xcalloc(j->left_count + 1, sizeof(*topics));
    int32_t *parts = xcalloc(j->left_count + 1, sizeof(*parts));
    size_t nt = 0, np = 0;
    /* left is unordered: one topic entry per run of equal names is enough for the protocol. */
    for (size_t i = 0; i < j->left_count; i++) {
        if (leaders[i] != node)
            continue;
        struct kafka_write_txn_markers_request_writable_txn_marker_topic *t =
            nt > 0 && strcmp(topics[nt - 1].name.ptr, j->left[i].topic) == 0 ? &topics[nt - 1]
                                                                             : NULL;
        if (t == NULL) {
            t = &topics[nt++];
            t->name = proto_str_make(j->left[i].topic);
            t->partition_indexes.items = &parts[np];
        }
        parts[np++] = j->left[i].partition;
        t->partition_indexes.count++;
    }
    struct kafka_write_txn_markers_request_writable_txn_marker marker = {
        .producer_id = j->producer_id,
        .producer_epoch = j->epoch,
        .transaction_result = j->commit,
        .coordinator_epoch = j->ts->loads[j->p].epoch,
    };
    marker.topics.items = topics;
    marker.topics.count = nt;
    struct kafka_write_txn_markers_request req;
    kafka_write_txn_markers_request_init(&req);
    req.markers.items = &marker;
    req.markers.count = 1;
    struct kafka_request_header h;
    kafka_request_header_init(&h);
    h.request_api_key = API_WRITE_TXN_MARKERS;
    h.request_api_version = MARKERS_VERSION;
    h.client_id = proto_str_make("chronik-txn-coordinator");
    int hv = proto_request_header_version(API_WRITE_TXN_MARKERS, MARKERS_VERSION);
    int rc = kafka_request_header_encode(&h, (int16_t)hv, frame);
    if (rc == 0)
        rc = proto_encode(proto_api_get(API_WRITE_TXN_MARKERS)->request, &req, MARKERS_VERSION,
                          frame);
    free(topics);
    free(parts);
    return rc;
}

/* Sends the job's markers to the leaders of the partitions left; those without a leader now
 * wait for the next round, those whose topic is gone need none. */
static void mark_send(struct txns *ts, struct tmark *j)
{
    struct broker *b = ts->b;
    int32_t *leaders = xcalloc(j->left_count + 1, sizeof(*leaders));
    int32_t *nodes = xcalloc(j->left_count + 1, sizeof(*nodes));
    size_t node_count = 0;
    for (size_t i = 0; i < j->left_count;) {
        struct broker_leader l;
        const char *topic = j->left[i].topic;
        if (!broker_partition_leader(b, topic, strlen(topic), j->left[i].partition, &l)) {
            free(j->left[i].topic);
            j->left[i] = j->left[--j->left_count];
            continue;
        }
        leaders[i] = l.id;
        size_t k = 0;
        while (k < node_count && nodes[k] != l.id)
            k++;
        if (k == node_count && l.id >= 0)
            nodes[node_count++] = l.id;
        i++;
    }
    j->send_ms = now_ms(ts) + TXN_MARKER_RETRY_MS;
    if (j->left_count == 0) {
        free(leaders);
        free(nodes);
        mark_done(ts, j);
        return;
    }
    struct buf *frames = xcalloc(node_count + 1, sizeof(*frames));
    size_t ready = 0;
    for (size_t k = 0; k < node_count; k++) {
        buf_init(&frames[k]);
        if (markers_frame(j, leaders, nodes[k], &frames[k]) == 0)
            ready++;
        else
            buf_deinit(&frames[k]);
    }
    /* Counted before any is sent: an answer may come at once, and the last one may free j. */
    j->outstanding = (uint32_t)ready;
    for (size_t k = 0; k < node_count; k++) {
        if (frames[k].data == NULL)
            continue;
        struct tsend *s = xcalloc(1, sizeof(*s));
        s->job = j;
        struct buf f = frames[k];
        broker_send_frame(b, nodes[k], buf_slice(&f), on_markers_answer, s);
        buf_deinit(&f);
    }
    free(frames);
    free(leaders);
    free(nodes);
}

static void start_markers(struct txns *ts, const struct txn_meta *m)
{
    if (mark_running(ts, m))
        return;
    struct tmark *j = xcalloc(1, sizeof(*j));
    j->ts = ts;
    j->id = xmalloc(m->id_len + 1);
    memcpy(j->id, m->id, m->id_len + 1);
    j->id_len = m->id_len;
    j->p = m->partition;
    j->gen = ts->loads[m->partition].gen;
    j->producer_id = m->producer_id;
    j->epoch = m->epoch;
    j->commit = m->state == TXN_PREPARE_COMMIT;
    j->left = xcalloc(m->part_count + 1, sizeof(*j->left));
    for (size_t i = 0; i < m->part_count; i++) {
        size_t len = strlen(m->parts[i].topic);
        j->left[i].topic = xmalloc(len + 1);
        memcpy(j->left[i].topic, m->parts[i].topic, len + 1);
        j->left[i].partition = m->parts[i].partition;
    }
    j->left_count = m->part_count;
    j->next = ts->marks;
    ts->marks = j;
    mark_send(ts, j);
}

/* Jobs waiting to send again whose time has come; those of a partition no longer loaded as
 * when they started are dropped (its next load starts its own). */
static void marks_tick(struct txns *ts)
{
    int64_t now = now_ms(ts);
    struct tmark *j = ts->marks;
    while (j != NULL) {
        struct tmark *next = j->next;
        if (j->outstanding == 0 && !mark_current(ts, j)) {
            mark_unlink(ts, j);
            mark_free(j);
        } else if (j->outstanding == 0 && now >= j->send_ms) {
            mark_send(ts, j);
        }
        j = next;
    }
}

/* ---- loading and following the leaders ---------------------------------------------------- */

static int load_apply(void *ctx, uint32_t p, const uint8_t *bytes, size_t len, int64_t first_offset,
                      int64_t *bad_offset)
{
    return txn_coord_load_batches(ctx, p, bytes, len, first_offset, bad_offset);
}

/* Loads what is loading, a bounded number of chunks per call. */
static void load_all(struct txns *ts)
{
    int64_t now = now_ms(ts);
    uint32_t chunks = 0;
    for (uint32_t p = 0; p < ts->coord.partition_count; p++) {
        struct coord_load *l = &ts->loads[p].load;
        while (l->next >= 0 && now >= l->retry_ms && chunks < LOAD_CHUNKS_PER_TICK) {
            chunks++;
            enum coord_load_result res = coord_load_step(&ts->loader, l, p, now);
            if (res == COORD_LOAD_MORE)
                continue;
            if (res == COORD_LOAD_DONE) {
                txn_coord_load_done(&ts->coord, p);
                /* Transactions it left prepared get their markers (again). */
                for (uint32_t i = 0; i < ts->coord.count; i++) {
                    struct txn_meta *m = txn_coord_at(&ts->coord, i);
                    if (m->partition == p &&
                        (m->state == TXN_PREPARE_COMMIT || m->state == TXN_PREPARE_ABORT))
                        start_markers(ts, m);
                }
            } else if (res == COORD_LOAD_FAILED) {
                txn_coord_load_failed(&ts->coord, p);
            }
            break;
        }
    }
}

/* Coordinates exactly the partitions this node leads. */
static void follow_leaders(struct txns *ts)
{
    struct broker *b = ts->b;
    for (uint32_t p = 0; p < ts->coord.partition_count; p++) {
        struct broker_leader l;
        bool here =
            broker_partition_leader(b, TXN_TOPIC, strlen(TXN_TOPIC), (int32_t)p, &l) && l.local;
        struct tload *ld = &ts->loads[p];
        if (here && ld->owned && l.epoch != ld->epoch) {
            /* Led again in a newer term: what was loaded may be behind what another leader
             * wrote meanwhile, so it is loaded again. */
            txn_coord_unload(&ts->coord, p);
            ld->owned = false;
        }
        if (here == ld->owned)
            continue;
        ld->gen++;
        ld->owned = here;
        if (here) {
            coord_load_begin(&ld->load);
            ld->epoch = l.epoch;
            txn_coord_load_begin(&ts->coord, p);
        } else {
            coord_load_stop(&ld->load);
            txn_coord_unload(&ts->coord, p);
        }
    }
    load_all(ts);
}

/* ---- the tick: timeouts, expiry, markers --------------------------------------------------- */

static void abort_check(struct txns *ts)
{
    int64_t now = now_ms(ts);
    if (now < ts->next_abort_check_ms)
        return;
    ts->next_abort_check_ms = now + ts->b->cfg->transaction_abort_check_interval_ms;
    /* Collected first: an append that fails at once changes nothing, but one that completes
     * may not reorder the table under the walk. */
    uint32_t n = ts->coord.count;
    struct txn_meta **due = xcalloc(n + 1, sizeof(*due));
    bool *expire = xcalloc(n + 1, sizeof(*expire));
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct txn_meta *m = txn_coord_at(&ts->coord, i);
        if (ts->coord.part_states[m->partition] != TXN_PART_READY || m->pending)
            continue;
        /* A prepared transaction whose completion append failed gets its markers again. */
        if ((m->state == TXN_PREPARE_COMMIT || m->state == TXN_PREPARE_ABORT) &&
            !mark_running(ts, m))
            start_markers(ts, m);
        if (m->state == TXN_ONGOING && now - m->start_ms >= m->timeout_ms) {
            due[k++] = m;
        } else if (txn_decide_expire(m, now, ts->b->cfg->transactional_id_expiration_ms)) {
            expire[k] = true;
            due[k++] = m;
        }
    }
    for (uint32_t i = 0; i < k; i++) {
        struct txn_meta target;
        if (expire[i]) {
            txn_append(ts, due[i], NULL, TK_EXPIRE, NULL, NULL, NULL);
        } else if (txn_decide_timeout(due[i], now, &target)) {
            fprintf(stderr,
                    "chronik: transaction of '%.*s' (producer id %lld, epoch %d) ran past its "
                    "timeout of %d ms: aborting it and fencing the producer\n",
                    (int)MIN(due[i]->id_len, BROKER_ADMIN_QUOTE_BYTES_MAX), due[i]->id,
                    (long long)due[i]->producer_id, due[i]->epoch, due[i]->timeout_ms);
            txn_append(ts, due[i], &target, TK_TIMEOUT, NULL, NULL, NULL);
        }
    }
    free(due);
    free(expire);
}

static void on_tick(void *ctx)
{
    struct txns *ts = ctx;
    if (!ts->topic_ready)
        return;
    follow_leaders(ts);
    abort_check(ts);
    marks_tick(ts);
    held_retry(ts); /* answers those held past TXN_HOLD_MS */
    broker_cluster_kick(ts->b);
}

/* ---- the topic ------------------------------------------------------------------------------ */

static void unpark(struct txns *ts)
{
    uint32_t n = ts->parked_count;
    struct breq *parked[TXN_PARKED_FIND_MAX];
    memcpy(parked, ts->parked, n * sizeof(*parked));
    ts->parked_count = 0;
    for (uint32_t i = 0; i < n; i++)
        find_coordinator_handle(parked[i]);
}

static void on_topic_created(void *ctx, const struct buf *response)
{
    struct txns *ts = ctx;
    (void)response; /* the image says whether it exists now */
    ts->creating = false;
    unpark(ts);
}

static int32_t brokers_unfenced(const struct broker *b)
{
    int32_t n = 0;
    for (uint32_t i = 0; i < b->meta.broker_count; i++)
        n += !b->meta.brokers[i].fenced;
    return n < 1 ? 1 : n;
}

/* Creates __transaction_state if needed and starts following it; false while it does not
 * exist. */
static bool txns_topic(struct txns *ts)
{
    if (ts->topic_ready)
        return true;
    struct broker *b = ts->b;
    const struct meta_topic *mt = meta_topic_find(&b->meta, TXN_TOPIC, strlen(TXN_TOPIC));
    if (mt == NULL) {
        if (!ts->creating) {
            /* Kept for as long as ids live: never by the log's age or size (no compaction yet,
             * so the topic grows with every transaction). */
            int32_t rf = MIN(b->cfg->transaction_state_log_replication_factor, brokers_unfenced(b));
            char isr[16];
            snprintf(isr, sizeof(isr), "%d", (int)MIN(b->cfg->transaction_state_log_min_isr, rf));
            const char *keys[] = {"retention.ms", "retention.bytes", "segment.bytes",
                                  "min.insync.replicas"};
            const char *values[] = {"-1", "-1", "104857600", isr};
            ts->creating = true;
            struct proto_str name = proto_str_make(TXN_TOPIC);
            broker_create_topics_rf(b, &name, 1, b->cfg->transaction_state_log_num_partitions,
                                    (int16_t)rf, keys, values, 4, on_topic_created, ts);
        }
        return false;
    }
    uint32_t n = MIN(mt->partition_count, TXN_STATE_PARTITIONS_MAX);
    if (n != ts->coord.partition_count) {
        txn_coord_deinit(&ts->coord);
        txn_coord_init(&ts->coord, n);
    }
    free(ts->loads);
    ts->loads = xcalloc(n, sizeof(*ts->loads));
    for (uint32_t p = 0; p < n; p++)
        coord_load_stop(&ts->loads[p].load);
    ts->topic_ready = true;
    follow_leaders(ts);
    return true;
}

static int txns_open(struct broker *b)
{
    if (b->txns != NULL)
        return 0;
    struct txns *ts = xcalloc(1, sizeof(*ts));
    ts->b = b;
    txn_coord_init(&ts->coord, (uint32_t)b->cfg->transaction_state_log_num_partitions);
    loop_timer_init(&ts->tick_timer, on_tick, ts);
    /* A partition still opening is read again soon, without a message. */
    ts->loader = (struct coord_loader){
        .b = b,
        .topic = TXN_TOPIC,
        .what = "transactions",
        .holders = "ids",
        .apply = load_apply,
        .ctx = &ts->coord,
        .unavailable_retry_ms = TXN_MARKER_RETRY_MS,
        .unavailable_quiet = true,
    };
    int rc = loop_timer_start(b->loop, &ts->tick_timer, TXN_TICK_MS, TXN_TICK_MS);
    if (rc < 0) {
        txn_coord_deinit(&ts->coord);
        free(ts);
        return rc;
    }
    b->txns = ts;
    return 0;
}

void txns_start(struct broker *b)
{
    /* An existing topic is followed from start-up, so prepared transactions complete. */
    if (meta_topic_find(&b->meta, TXN_TOPIC, strlen(TXN_TOPIC)) != NULL && txns_open(b) == 0)
        (void)txns_topic(b->txns);
}

void txns_close(struct broker *b)
{
    struct txns *ts = b->txns;
    if (ts == NULL)
        return;
    loop_timer_stop(b->loop, &ts->tick_timer);
    for (uint32_t i = 0; i < ts->parked_count; i++)
        breq_abort(ts->parked[i]);
    held_answer_all(ts, TXN_ERR_NOT_COORDINATOR);
    for (struct tappend *a = ts->inflight; a != NULL; a = a->next)
        a->ts = NULL;
    struct tmark *j = ts->marks;
    while (j != NULL) {
        struct tmark *next = j->next;
        if (j->outstanding > 0)
            j->ts = NULL; /* freed by its last answer */
        else
            mark_free(j);
        j = next;
    }
    txn_coord_deinit(&ts->coord);
    free(ts->loads);
    free(ts);
    b->txns = NULL;
}

void txns_leadership_changed(struct broker *b, uint32_t p)
{
    (void)p;
    struct txns *ts = b->txns;
    if (ts != NULL && ts->topic_ready && !loop_timer_active(&ts->tick_timer))
        (void)loop_timer_start(b->loop, &ts->tick_timer, 0, TXN_TICK_MS);
}

/* The coordinator ready for a request, or NULL (COORDINATOR_NOT_AVAILABLE). */
static struct txns *txns_get(struct broker *b)
{
    if (b->txns == NULL && txns_open(b) < 0)
        return NULL;
    if (!txns_topic(b->txns))
        return NULL;
    follow_leaders(b->txns);
    return b->txns;
}

/* ---- FindCoordinator ---------------------------------------------------------------------- */

bool txns_park_find(struct breq *rq)
{
    if (rq->auto_created)
        return false;
    rq->auto_created = true;
    struct broker *b = rq->b;
    if (b->txns == NULL && txns_open(b) < 0)
        return false;
    struct txns *ts = b->txns;
    if (ts->topic_ready || txns_topic(ts) || !ts->creating ||
        ts->parked_count >= TXN_PARKED_FIND_MAX)
        return false;
    ts->parked[ts->parked_count++] = rq;
    return true;
}

int16_t txns_find_coordinator(struct breq *rq, struct slice key, struct broker_node *node)
{
    if (key.ptr == NULL || key.len == 0)
        return TXN_ERR_INVALID_REQUEST;
    struct txns *ts = txns_get(rq->b);
    if (ts == NULL)
        return TXN_ERR_COORDINATOR_NOT_AVAILABLE;
    uint32_t p = txn_partition_of(key, ts->coord.partition_count);
    struct broker_leader l;
    if (!broker_partition_leader(rq->b, TXN_TOPIC, strlen(TXN_TOPIC), (int32_t)p, &l) ||
        !broker_node_alive(rq->b, l.id, node))
        return TXN_ERR_COORDINATOR_NOT_AVAILABLE;
    if (!l.local)
        return TXN_ERR_NONE;
    struct replica *r = broker_replica(rq->b, TXN_TOPIC, strlen(TXN_TOPIC), (int32_t)p);
    return r != NULL && replica_error(r) == 0 ? TXN_ERR_NONE : TXN_ERR_COORDINATOR_NOT_AVAILABLE;
}

/* The coordinator for an id, with its metadata (NULL when not known), or the error to answer. */
static int16_t coordinator_for(struct breq *rq, struct slice id, struct txns **out,
                               struct txn_meta **m)
{
    *out = NULL;
    *m = NULL;
    if (id.ptr == NULL || id.len == 0)
        return TXN_ERR_INVALID_REQUEST;
    struct txns *ts = txns_get(rq->b);
    if (ts == NULL)
        return TXN_ERR_COORDINATOR_NOT_AVAILABLE;
    int16_t err = txn_coord_check(&ts->coord, id);
    if (err != TXN_ERR_NONE)
        return err;
    *out = ts;
    *m = txn_coord_find(&ts->coord, id);
    return TXN_ERR_NONE;
}

/* KIP-588: requests older than the version that knows PRODUCER_FENCED get
 * INVALID_PRODUCER_EPOCH instead. */
static int16_t fenced_as(int16_t err, int16_t version, int16_t fenced_since)
{
    return err == TXN_ERR_PRODUCER_FENCED && version < fenced_since ? TXN_ERR_INVALID_PRODUCER_EPOCH
                                                                    : err;
}

/* ---- InitProducerId ----------------------------------------------------------------------- */

static void answer_init(struct breq *rq, void *resp, int16_t err, const struct txn_meta *m)
{
    struct kafka_init_producer_id_response *r = resp;
    r->error_code = fenced_as(err, rq->api_version, 4);
    r->producer_id = err == TXN_ERR_NONE ? m->producer_id : -1;
    r->producer_epoch = err == TXN_ERR_NONE ? m->epoch : -1;
    breq_respond(rq, r);
}

void txns_init_producer_id(struct breq *rq)
{
    const struct kafka_init_producer_id_request *req = rq->body;
    struct kafka_init_producer_id_response *resp = arena_zalloc(&rq->arena, sizeof(*resp));
    if (resp == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    kafka_init_producer_id_response_init(resp);
    struct slice id = sl(req->transactional_id);
    struct txns *ts;
    struct txn_meta *m;
    int16_t err = coordinator_for(rq, id, &ts, &m);
    if (err != TXN_ERR_NONE) {
        answer_init(rq, resp, err, NULL);
        return;
    }
    struct txn_init_req ir = {
        .id = id,
        .timeout_ms = req->transaction_timeout_ms,
        .producer_id = req->producer_id,
        .epoch = req->producer_epoch,
        .timeout_max_ms = ts->b->cfg->transaction_max_timeout_ms,
        .new_producer_id = -1,
    };
    if (txn_init_needs_id(m) && (m == NULL || !m->pending)) {
        ir.new_producer_id = broker_take_producer_id(ts->b);
        if (ir.new_producer_id < 0) {
            answer_init(rq, resp, TXN_ERR_LOAD_IN_PROGRESS, NULL);
            return;
        }
    }
    struct txn_meta target;
    bool fence = false, retry = false;
    err = txn_decide_init(m, &ir, txn_partition_of(id, ts->coord.partition_count), now_ms(ts),
                          &target, &fence, &retry);
    if (err != TXN_ERR_NONE || retry) {
        answer_init(rq, resp, err, &target);
        if (retry)
            txn_meta_clear(&target);
        return;
    }
    if (m == NULL) {
        /* A new id is held (pending) from now, so a second InitProducerId waits for this one. */
        struct txn_meta held;
        txn_meta_copy(&held, &target);
        held.state = TXN_DEAD; /* not visible as a transaction until its record commits */
        if (txn_coord_put(&ts->coord, &held, &m) < 0) {
            txn_meta_clear(&held);
            txn_meta_clear(&target);
            answer_init(rq, resp, TXN_ERR_COORDINATOR_NOT_AVAILABLE, NULL);
            return;
        }
    }
    txn_append(ts, m, &target, fence ? TK_FENCE : TK_INIT, rq, resp, answer_init);
}

/* ---- AddPartitionsToTxn, AddOffsetsToTxn -------------------------------------------------- */

struct add_answer;
static void add_try(struct breq *rq, struct add_answer *aa, struct txn_part *parts, size_t k,
                    int64_t until_ms);
static void offsets_try(struct breq *rq, struct kafka_add_offsets_to_txn_response *resp,
                        int64_t until_ms);
static void answer_add(struct breq *rq, void *resp, int16_t err, const struct txn_meta *m);
static void answer_offsets(struct breq *rq, void *resp, int16_t err, const struct txn_meta *m);

/* Holds a request answered err if the id is only busy completing: its change in flight or its
 * markers being written (until_ms: -1 for a new hold). Whether it was held. */
static bool hold(struct txns *ts, const struct txn_meta *m, int16_t err, struct breq *rq,
                 void *resp, struct txn_part *parts, size_t part_count, int64_t until_ms)
{
    if (err != TXN_ERR_CONCURRENT_TRANSACTIONS || ts == NULL || m == NULL ||
        ts->held_count >= TXN_HELD_MAX)
        return false;
    if (!m->pending && m->state != TXN_PREPARE_COMMIT && m->state != TXN_PREPARE_ABORT)
        return false;
    int64_t now = now_ms(ts);
    if (until_ms < 0)
        until_ms = now + TXN_HOLD_MS;
    else if (now >= until_ms)
        return false;
    struct thold *h = xcalloc(1, sizeof(*h));
    *h = (struct thold){.next = ts->held,
                        .rq = rq,
                        .resp = resp,
                        .parts = parts,
                        .part_count = part_count,
                        .until_ms = until_ms};
    ts->held = h;
    ts->held_count++;
    return true;
}

/* Tries every held request again (each is answered, appended or held anew). */
static void held_retry(struct txns *ts)
{
    struct thold *h = ts->held;
    ts->held = NULL;
    ts->held_count = 0;
    while (h != NULL) {
        struct thold *next = h->next;
        if (h->parts != NULL)
            add_try(h->rq, h->resp, h->parts, h->part_count, h->until_ms);
        else
            offsets_try(h->rq, h->resp, h->until_ms);
        free(h);
        h = next;
    }
}

static void held_answer_all(struct txns *ts, int16_t err)
{
    while (ts->held != NULL) {
        struct thold *h = ts->held;
        ts->held = h->next;
        if (h->parts != NULL)
            answer_add(h->rq, h->resp, err, NULL);
        else
            answer_offsets(h->rq, h->resp, err, NULL);
        free(h);
    }
    ts->held_count = 0;
}

/* Every partition's error slot of a v0-v3 AddPartitionsToTxn answer. */
struct add_answer {
    struct kafka_add_partitions_to_txn_response resp;
    int16_t **slots;
    size_t slot_count;
};

static void answer_add(struct breq *rq, void *resp, int16_t err, const struct txn_meta *m)
{
    struct add_answer *aa = resp;
    (void)m;
    err = fenced_as(err, rq->api_version, 2);
    for (size_t i = 0; i < aa->slot_count; i++)
        *aa->slots[i] = err;
    breq_respond(rq, &aa->resp);
}

/* Adds the partitions, or holds the request (until_ms: how long; -1: TXN_HOLD_MS from now). */
static void add_try(struct breq *rq, struct add_answer *aa, struct txn_part *parts, size_t k,
                    int64_t until_ms)
{
    const struct kafka_add_partitions_to_txn_request *req = rq->body;
    struct txns *ts;
    struct txn_meta *m;
    int16_t err = coordinator_for(rq, sl(req->v3_and_below_transactional_id), &ts, &m);
    struct txn_meta target;
    bool append = false;
    if (err == TXN_ERR_NONE)
        err = txn_decide_add(m, req->v3_and_below_producer_id, req->v3_and_below_producer_epoch,
                             parts, k, now_ms(ts), &target, &append);
    if (hold(ts, m, err, rq, aa, parts, k, until_ms))
        return;
    if (err != TXN_ERR_NONE || !append) {
        answer_add(rq, aa, err, NULL);
        return;
    }
    txn_append(ts, m, &target, TK_ADD, rq, aa, answer_add);
}

void add_partitions_to_txn_handle(struct breq *rq)
{
    const struct kafka_add_partitions_to_txn_request *req = rq->body;
    struct add_answer *aa = arena_zalloc(&rq->arena, sizeof(*aa));
    size_t nt = req->v3_and_below_topics.count, total = 0;
    for (size_t t = 0; t < nt; t++)
        total += req->v3_and_below_topics.items[t].partitions.count;
    struct txn_part *parts = arena_calloc(&rq->arena, total + 1, sizeof(*parts));
    int16_t **slots = arena_calloc(&rq->arena, total + 1, sizeof(*slots));
    bool fits = aa != NULL && parts != NULL && slots != NULL;
    if (fits) {
        kafka_add_partitions_to_txn_response_init(&aa->resp);
        aa->resp.results_by_topic_v3_and_below.items =
            arena_calloc(&rq->arena, nt + 1, sizeof(*aa->resp.results_by_topic_v3_and_below.items));
        fits = aa->resp.results_by_topic_v3_and_below.items != NULL;
    }
    for (size_t t = 0; t < nt && fits; t++) {
        size_t np = req->v3_and_below_topics.items[t].partitions.count;
        struct kafka_add_partitions_to_txn_response_add_partitions_to_txn_topic_result *o =
            &aa->resp.results_by_topic_v3_and_below.items[t];
        o->name = req->v3_and_below_topics.items[t].name;
        o->results_by_partition.items =
            arena_calloc(&rq->arena, np + 1, sizeof(*o->results_by_partition.items));
        o->results_by_partition.count = np;
        fits = o->results_by_partition.items != NULL;
    }
    if (!fits) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    aa->resp.results_by_topic_v3_and_below.count = nt;
    aa->slots = slots;
    /* Partitions the metadata does not have fail the request: UNKNOWN_TOPIC_OR_PARTITION for
     * them and OPERATION_NOT_ATTEMPTED for the others, as Kafka answers. */
    bool unknown = false;
    size_t k = 0;
    for (size_t t = 0; t < nt; t++) {
        const struct kafka_add_partitions_to_txn_request_add_partitions_to_txn_topic *it =
            &req->v3_and_below_topics.items[t];
        const struct meta_topic *mt =
            it->name.ptr != NULL ? meta_topic_find(&rq->b->meta, it->name.ptr, it->name.len) : NULL;
        for (size_t p = 0; p < it->partitions.count; p++) {
            struct kafka_add_partitions_to_txn_response_add_partitions_to_txn_partition_result *o =
                &aa->resp.results_by_topic_v3_and_below.items[t].results_by_partition.items[p];
            int32_t index = it->partitions.items[p];
            o->partition_index = index;
            if (mt == NULL || index < 0 || (uint32_t)index >= mt->partition_count) {
                o->partition_error_code = TXN_ERR_UNKNOWN_TOPIC_OR_PARTITION;
                unknown = true;
                continue;
            }
            slots[k] = &o->partition_error_code;
            parts[k].topic = arena_strndup(&rq->arena, it->name.ptr, it->name.len);
            parts[k].partition = index;
            if (parts[k].topic == NULL) {
                breq_fail(rq, ERR_TOO_LARGE);
                return;
            }
            k++;
        }
    }
    aa->slot_count = k;
    if (unknown) {
        answer_add(rq, aa, TXN_ERR_OPERATION_NOT_ATTEMPTED, NULL);
        return;
    }
    add_try(rq, aa, parts, k, -1);
}

static void answer_offsets(struct breq *rq, void *resp, int16_t err, const struct txn_meta *m)
{
    struct kafka_add_offsets_to_txn_response *r = resp;
    (void)m;
    r->error_code = fenced_as(err, rq->api_version, 2);
    breq_respond(rq, r);
}

/* Adds the group's offsets partition, or holds the request (until_ms as add_try's). */
static void offsets_try(struct breq *rq, struct kafka_add_offsets_to_txn_response *resp,
                        int64_t until_ms)
{
    const struct kafka_add_offsets_to_txn_request *req = rq->body;
    struct txns *ts;
    struct txn_meta *m;
    int16_t err = coordinator_for(rq, sl(req->transactional_id), &ts, &m);
    /* The group's offsets go to its partition of __consumer_offsets, which gets a marker at
     * the end like any partition of the transaction. */
    uint32_t offsets_partitions = 0;
    if (err == TXN_ERR_NONE && (req->group_id.ptr == NULL || req->group_id.len == 0))
        err = TXN_ERR_INVALID_REQUEST;
    if (err == TXN_ERR_NONE && !groups_offsets_partitions(rq->b, &offsets_partitions))
        err = TXN_ERR_COORDINATOR_NOT_AVAILABLE;
    struct txn_meta target;
    bool append = false;
    if (err == TXN_ERR_NONE) {
        struct txn_part part = {
            .topic = (char *)BROKER_OFFSETS_TOPIC,
            .partition = (int32_t)group_partition_of(sl(req->group_id), offsets_partitions),
        };
        err = txn_decide_add(m, req->producer_id, req->producer_epoch, &part, 1, now_ms(ts),
                             &target, &append);
    }
    if (hold(ts, m, err, rq, resp, NULL, 0, until_ms))
        return;
    if (err != TXN_ERR_NONE || !append) {
        answer_offsets(rq, resp, err, NULL);
        return;
    }
    txn_append(ts, m, &target, TK_ADD, rq, resp, answer_offsets);
}

void add_offsets_to_txn_handle(struct breq *rq)
{
    struct kafka_add_offsets_to_txn_response *resp = arena_zalloc(&rq->arena, sizeof(*resp));
    if (resp == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    kafka_add_offsets_to_txn_response_init(resp);
    offsets_try(rq, resp, -1);
}

/* ---- EndTxn ------------------------------------------------------------------------------- */

static void answer_end(struct breq *rq, void *resp, int16_t err, const struct txn_meta *m)
{
    struct kafka_end_txn_response *r = resp;
    (void)m;
    r->error_code = fenced_as(err, rq->api_version, 2);
    breq_respond(rq, r);
}

void end_txn_handle(struct breq *rq)
{
    const struct kafka_end_txn_request *req = rq->body;
    struct kafka_end_txn_response *resp = arena_zalloc(&rq->arena, sizeof(*resp));
    if (resp == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    kafka_end_txn_response_init(resp);
    struct txns *ts;
    struct txn_meta *m;
    int16_t err = coordinator_for(rq, sl(req->transactional_id), &ts, &m);
    struct txn_meta target;
    bool append = false;
    if (err == TXN_ERR_NONE)
        err = txn_decide_end(m, req->producer_id, req->producer_epoch, req->committed, now_ms(ts),
                             &target, &append);
    if (err != TXN_ERR_NONE || !append) {
        answer_end(rq, resp, err, NULL);
        return;
    }
    txn_append(ts, m, &target, TK_END, rq, resp, answer_end);
}

/* ---- DescribeTransactions, ListTransactions ----------------------------------------------- */

static void describe_one(struct breq *rq, struct proto_str id,
                         struct kafka_describe_transactions_response_transaction_state *out)
{
    out->transactional_id = id;
    out->transaction_state = proto_str_make("");
    out->producer_id = -1;
    out->producer_epoch = -1;
    out->transaction_start_time_ms = -1;
    out->topics.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
    struct txns *ts;
    struct txn_meta *m;
    out->error_code = coordinator_for(rq, sl(id), &ts, &m);
    if (out->error_code != TXN_ERR_NONE)
        return;
    if (m == NULL || m->state == TXN_DEAD) {
        out->error_code = TXN_ERR_TRANSACTIONAL_ID_NOT_FOUND;
        return;
    }
    out->transaction_state = proto_str_make(txn_state_name(m->state));
    out->transaction_timeout_ms = m->timeout_ms;
    out->transaction_start_time_ms = m->start_ms;
    out->producer_id = m->producer_id;
    out->producer_epoch = m->epoch;
    size_t topics = 0;
    for (size_t i = 0; i < m->part_count; i++)
        topics += i == 0 || strcmp(m->parts[i].topic, m->parts[i - 1].topic) != 0;
    out->topics.items =
        answer_mem(rq, arena_calloc(&rq->arena, topics + 1, sizeof(*out->topics.items)));
    int32_t *parts = answer_mem(rq, arena_calloc(&rq->arena, m->part_count + 1, sizeof(*parts)));
    if (out->topics.items == NULL || parts == NULL)
        return;
    for (size_t i = 0; i < m->part_count; i++) {
        bool same = out->topics.count > 0 && strcmp(m->parts[i].topic, m->parts[i - 1].topic) == 0;
        if (!same) {
            struct kafka_describe_transactions_response_topic_data *t =
                &out->topics.items[out->topics.count++];
            char *name = answer_mem(
                rq, arena_strndup(&rq->arena, m->parts[i].topic, strlen(m->parts[i].topic)));
            t->topic = name != NULL ? proto_str_make(name) : proto_str_make("");
            t->partitions.items = &parts[i];
        }
        parts[i] = m->parts[i].partition;
        out->topics.items[out->topics.count - 1].partitions.count++;
    }
}

void describe_transactions_handle(struct breq *rq)
{
    const struct kafka_describe_transactions_request *req = rq->body;
    struct kafka_describe_transactions_response resp;
    kafka_describe_transactions_response_init(&resp);
    size_t n = req->transactional_ids.count;
    resp.transaction_states.items =
        arena_calloc(&rq->arena, n + 1, sizeof(*resp.transaction_states.items));
    if (resp.transaction_states.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    resp.transaction_states.count = n;
    for (size_t i = 0; i < n; i++)
        describe_one(rq, req->transactional_ids.items[i], &resp.transaction_states.items[i]);
    breq_respond(rq, &resp);
}

void list_transactions_handle(struct breq *rq)
{
    const struct kafka_list_transactions_request *req = rq->body;
    struct kafka_list_transactions_response resp;
    kafka_list_transactions_response_init(&resp);
    resp.unknown_state_filters.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
    resp.transaction_states.items = arena_alloc(&rq->arena, 0);
    bool want[TXN_STATE_COUNT];
    size_t nf = req->state_filters.count;
    resp.unknown_state_filters.items =
        arena_calloc(&rq->arena, nf + 1, sizeof(*resp.unknown_state_filters.items));
    if (resp.unknown_state_filters.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    for (int s = 0; s < TXN_STATE_COUNT; s++)
        want[s] = nf == 0;
    for (size_t i = 0; i < nf; i++) {
        enum txn_state s;
        if (txn_state_parse(sl(req->state_filters.items[i]), &s))
            want[s] = true;
        else
            resp.unknown_state_filters.items[resp.unknown_state_filters.count++] =
                req->state_filters.items[i];
    }
    struct txns *ts = txns_get(rq->b);
    if (ts == NULL) {
        resp.error_code = TXN_ERR_COORDINATOR_NOT_AVAILABLE;
        breq_respond(rq, &resp);
        return;
    }
    for (uint32_t p = 0; p < ts->coord.partition_count; p++)
        if (ts->coord.part_states[p] == TXN_PART_LOADING)
            resp.error_code = TXN_ERR_LOAD_IN_PROGRESS;
    uint32_t n = ts->coord.count;
    resp.transaction_states.items =
        arena_calloc(&rq->arena, n + 1, sizeof(*resp.transaction_states.items));
    if (resp.transaction_states.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    int64_t now = now_ms(ts);
    for (uint32_t i = 0; i < n && resp.error_code == TXN_ERR_NONE; i++) {
        const struct txn_meta *m = txn_coord_at(&ts->coord, i);
        if (m->state == TXN_DEAD || !want[m->state] ||
            ts->coord.part_states[m->partition] != TXN_PART_READY)
            continue;
        bool pid_ok = req->producer_id_filters.count == 0;
        for (size_t k = 0; k < req->producer_id_filters.count && !pid_ok; k++)
            pid_ok = req->producer_id_filters.items[k] == m->producer_id;
        if (!pid_ok)
            continue;
        /* DurationFilter (v1): only transactions running longer than it. */
        if (req->duration_filter >= 0 &&
            (m->state != TXN_ONGOING || now - m->start_ms <= req->duration_filter))
            continue;
        struct kafka_list_transactions_response_transaction_state *o =
            &resp.transaction_states.items[resp.transaction_states.count++];
        char *id = answer_mem(rq, arena_strndup(&rq->arena, m->id, m->id_len));
        o->transactional_id = id != NULL ? (struct proto_str){id, m->id_len} : proto_str_make("");
        o->producer_id = m->producer_id;
        o->transaction_state = proto_str_make(txn_state_name(m->state));
    }
    breq_respond(rq, &resp);
}
