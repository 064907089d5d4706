/*
 * The group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
 * OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete) and the host of the
 * pure group coordinator (src/group): its effects become responses and appends to
 * __consumer_offsets, its time comes from a timer armed for its next deadline (and from every
 * request, which first lets it expire what is due), and its state is loaded from the topic
 * before it answers for a partition.
 *
 * Owns: struct groups (b->groups), created on the first group request or by groups_open, and
 * the internal topic __consumer_offsets, created when first needed. A group's coordinator is
 * the leader of __consumer_offsets partition group_partition_of(id) as the metadata image names
 * it (nodes.c): FindCoordinator names that node, and this node coordinates exactly the
 * partitions it leads (follow_leaders), so a request for a group led elsewhere is answered
 * NOT_COORDINATOR by the coordinator and the client looks the group up again. Standalone, this
 * node leads every partition.
 *
 * Invariants: every JoinGroup and SyncGroup given to the coordinator is answered exactly once
 * through its effect; a request waiting for an append is answered only after the append is
 * committed (or failed), so an acknowledged commit is durable. Loading reads each partition from
 * its log start to its high watermark with the loader txns.c uses too (coord_load.h), one chunk
 * of every loading partition per turn of the loop; requests for a partition not loaded yet get
 * COORDINATOR_LOAD_IN_PROGRESS. A partition is served only once all of it was read and applied:
 * a read that fails keeps it loading and is retried (the error logged once), and stored data
 * that cannot be applied fails the partition for good (UNKNOWN_SERVER_ERROR, logged with its
 * offset), never leaving part of it served.
 *
 * It must never trust a request: the coordinator validates what it keeps, and this file only
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

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OFFSETS_TOPIC BROKER_OFFSETS_TOPIC

/* Kafka's bits for the operations a group allows (READ, DELETE, DESCRIBE): no ACLs here. */
#define GROUP_AUTHORIZED_OPERATIONS ((1 << 3) | (1 << 6) | (1 << 8))

enum { KEY_TYPE_GROUP = 0, KEY_TYPE_TRANSACTION = 1 };

struct groups {
    struct broker *b;
    struct group_coord coord;
    bool topic_ready; /* __consumer_offsets exists and its loads started */
    bool creating;    /* its creation was asked of the controller and is not answered yet */
    /* FindCoordinator requests waiting for that creation (answered again once it is done). */
    struct breq *parked[GROUP_PARKED_FIND_MAX];
    uint32_t parked_count;
    struct coord_loader loader;
    struct gload {
        struct coord_load load;
        bool owned;           /* led here: loading or loaded (see follow_leaders) */
    } * loads;                /* per partition */
    bool followed;            /* follow_leaders ran since topic_ready */
    uint64_t meta_version;    /* the image version it followed */
    bool loads_retrying;      /* a partition waits to retry a read */
    struct gappend *inflight; /* appends the replicas have not reported yet */
    struct loop_timer tick_timer;
    struct loop_timer load_timer;
    /* Appends that failed synchronously, reported once the effect queue is drained. */
    struct failed_append {
        uint64_t id;
        void *token;
        int err;
    } * failed;
    size_t failed_count;
    size_t failed_cap;
};

/* A request that waits for appends: answered when the last is done. */
struct gop {
    struct breq *rq;
    void *resp;
    uint32_t pending;
};

/* The token of one append: which response errors it decides. */
struct gwait {
    struct gop *op;
    int16_t **slots;
    size_t slot_count;
};

/* The append in flight with the replica; gs is NULL once the coordinator closed. */
struct gappend {
    struct replica_commit commit;
    struct groups *gs;
    struct gappend *next; /* in gs->inflight */
    uint64_t id;
    struct gwait *wait;
};

/* Request memory for an answer built from coordinator state: when the request's budget is
 * spent, the request is marked so that breq_respond() fails it (breq_fail) instead of
 * answering, and the caller gets NULL. */
static void *answer_mem(struct breq *rq, void *p)
{
    if (p == NULL)
        rq->out_of_memory = true;
    return p;
}

static int64_t now_ms(const struct groups *gs)
{
    return clock_wall_ms(gs->b->clock);
}

static struct slice sl(struct proto_str s)
{
    return slice_make(s.ptr, s.len);
}

static struct proto_str str_copy(struct breq *rq, struct slice s)
{
    if (s.ptr == NULL)
        return (struct proto_str){NULL, 0};
    char *p = answer_mem(rq, arena_strndup(&rq->arena, (const char *)s.ptr, s.len));
    return p != NULL ? (struct proto_str){p, s.len} : proto_str_make("");
}

static struct slice bytes_copy(struct breq *rq, struct slice s)
{
    uint8_t *p = answer_mem(rq, arena_alloc(&rq->arena, s.len));
    if (p == NULL)
        return slice_make("", 0);
    if (s.len > 0)
        memcpy(p, s.ptr, s.len);
    return slice_make(p, s.len);
}

/* ---- appends and effects ----------------------------------------------------------------- */

static void drain(struct groups *gs);

static void gop_done(struct gop *op)
{
    ASSERT(op->pending > 0);
    if (--op->pending == 0)
        breq_respond(op->rq, op->resp);
}

/* The outcome of an append for the response that waits for it. */
static void wait_done(struct gwait *w, int err)
{
    if (w == NULL)
        return;
    if (err != 0) {
        int16_t code = err == ERR_CLOSED ? KAFKA_NOT_COORDINATOR : KAFKA_COORDINATOR_NOT_AVAILABLE;
        for (size_t i = 0; i < w->slot_count; i++)
            if (*w->slots[i] == KAFKA_NONE)
                *w->slots[i] = code;
    }
    gop_done(w->op);
}

static void on_append_commit(void *ctx, int err)
{
    struct gappend *a = ctx;
    struct groups *gs = a->gs;
    struct gwait *w = a->wait;
    if (gs != NULL) {
        struct gappend **pp = &gs->inflight;
        while (*pp != a)
            pp = &(*pp)->next;
        *pp = a->next;
        group_coord_append_done(&gs->coord, a->id, err, now_ms(gs));
    }
    free(a);
    if (gs != NULL)
        drain(gs);
    wait_done(w, err);
}

static void append_failed(struct groups *gs, uint64_t id, void *token, int err)
{
    if (gs->failed_count == gs->failed_cap) {
        gs->failed_cap = gs->failed_cap == 0 ? 8 : gs->failed_cap * 2;
        gs->failed = xrealloc(gs->failed, gs->failed_cap * sizeof(*gs->failed));
    }
    gs->failed[gs->failed_count++] = (struct failed_append){id, token, err};
}

static void do_append(struct groups *gs, const struct group_fx *fx)
{
    struct broker *b = gs->b;
    struct replica *r =
        broker_replica(b, OFFSETS_TOPIC, strlen(OFFSETS_TOPIC), (int32_t)fx->partition);
    if (r == NULL) {
        append_failed(gs, fx->append_id, fx->token, ERR_CLOSED);
        return;
    }
    struct batch_record *recs = xcalloc(fx->record_count, sizeof(*recs));
    int64_t ts = now_ms(gs);
    for (size_t i = 0; i < fx->record_count; i++)
        recs[i] = (struct batch_record){
            .key = fx->records[i].key, .value = fx->records[i].value, .timestamp_ms = ts};
    /* A transaction's offsets: a transactional batch of its producer, at sequence 0 as Kafka's
     * coordinator writes them (the partition checks no sequence of its own appends). */
    struct batch_build_opts opts = {.base_offset = 0,
                                    .attributes =
                                        fx->producer_id >= 0 ? BATCH_ATTR_TRANSACTIONAL : 0,
                                    .producer_id = fx->producer_id,
                                    .producer_epoch = fx->producer_epoch,
                                    .base_sequence = fx->producer_id >= 0 ? 0 : -1};
    struct buf batch;
    buf_init(&batch);
    int rc = batch_build(&batch, &opts, recs, fx->record_count);
    free(recs);
    struct gappend *a = NULL;
    if (rc == 0) {
        a = xcalloc(1, sizeof(*a));
        a->gs = gs;
        a->id = fx->append_id;
        a->wait = fx->token;
        struct log_append_result res;
        rc = replica_append(r, batch.data, batch.len, REPLICA_WAIT_COMMIT, 1, &a->commit,
                            on_append_commit, a, &res);
        if (rc == 0) {
            a->next = gs->inflight;
            gs->inflight = a;
        }
    }
    buf_deinit(&batch);
    if (rc < 0) {
        free(a);
        append_failed(gs, fx->append_id, fx->token, rc);
    }
}

static void answer_join(const struct group_fx *fx)
{
    struct breq *rq = fx->token;
    struct kafka_join_group_response resp;
    kafka_join_group_response_init(&resp);
    resp.error_code = fx->error;
    resp.generation_id = fx->generation;
    resp.protocol_type = str_copy(rq, fx->protocol_type);
    resp.protocol_name = str_copy(rq, fx->protocol_name);
    resp.leader = str_copy(rq, fx->leader_id.ptr != NULL ? fx->leader_id : slice_make("", 0));
    resp.member_id = str_copy(rq, fx->member_id);
    resp.skip_assignment = fx->skip_assignment;
    resp.members.items =
        answer_mem(rq, arena_calloc(&rq->arena, fx->member_count + 1, sizeof(*resp.members.items)));
    resp.members.count = resp.members.items != NULL ? fx->member_count : 0;
    for (size_t i = 0; i < resp.members.count; i++) {
        resp.members.items[i].member_id = str_copy(rq, fx->members[i].member_id);
        resp.members.items[i].group_instance_id = str_copy(rq, fx->members[i].instance_id);
        resp.members.items[i].metadata = bytes_copy(rq, fx->members[i].metadata);
    }
    breq_respond(rq, &resp);
}

static void answer_sync(const struct group_fx *fx)
{
    struct breq *rq = fx->token;
    struct kafka_sync_group_response resp;
    kafka_sync_group_response_init(&resp);
    resp.error_code = fx->error;
    resp.protocol_type = str_copy(rq, fx->protocol_type);
    resp.protocol_name = str_copy(rq, fx->protocol_name);
    resp.assignment = bytes_copy(rq, fx->assignment);
    breq_respond(rq, &resp);
}

/* Arms the tick timer for the coordinator's next deadline, so a session or a rebalance ends when
 * it is due, not up to a tick later. It still fires at least every GROUP_TICK_MS (a tick with
 * nothing due costs nothing), which bounds how late a deadline can be if the wall clock the
 * deadlines use jumps against the loop's monotonic timers. */
static void arm_tick(struct groups *gs)
{
    int64_t next = group_coord_next_deadline_ms(&gs->coord);
    int64_t now = now_ms(gs);
    uint64_t delay_ms = next <= now ? 0 : (uint64_t)MIN(next - now, (int64_t)GROUP_TICK_MS);
    int rc = loop_timer_start(gs->b->loop, &gs->tick_timer, delay_ms, GROUP_TICK_MS);
    ASSERT(rc == 0); /* the timer is active (groups_open): restarting it reuses its place */
}

/* Turns every effect into a response or an append, until none is left. */
static void drain(struct groups *gs)
{
    for (;;) {
        struct group_fx fx;
        while (group_coord_poll(&gs->coord, &fx) == 1) {
            switch (fx.kind) {
            case GROUP_FX_JOIN:
                answer_join(&fx);
                break;
            case GROUP_FX_SYNC:
                answer_sync(&fx);
                break;
            case GROUP_FX_APPEND:
                do_append(gs, &fx);
                break;
            }
        }
        if (gs->failed_count == 0) {
            arm_tick(gs);
            return;
        }
        struct failed_append f = gs->failed[--gs->failed_count];
        group_coord_append_done(&gs->coord, f.id, f.err, now_ms(gs));
        drain(gs);
        wait_done(f.token, f.err);
    }
}

/* ---- loading ----------------------------------------------------------------------------- */

static int load_apply(void *ctx, uint32_t p, const uint8_t *bytes, size_t len, int64_t first_offset,
                      int64_t *bad_offset)
{
    return group_coord_load_batches(ctx, p, bytes, len, first_offset, bad_offset);
}

/* One chunk of every partition still loading (those waiting to retry a read only once their
 * time has come); true when one has more to read at once. */
static bool load_all_step(struct groups *gs)
{
    bool more = false;
    int64_t now = now_ms(gs);
    gs->loads_retrying = false;
    for (uint32_t p = 0; p < gs->coord.cfg.partition_count; p++) {
        struct coord_load *l = &gs->loads[p].load;
        if (l->next < 0)
            continue;
        if (now < l->retry_ms) {
            gs->loads_retrying = true;
            continue;
        }
        switch (coord_load_step(&gs->loader, l, p, now)) {
        case COORD_LOAD_DONE:
            group_coord_load_done(&gs->coord, p, now);
            break;
        case COORD_LOAD_MORE:
            more = true;
            break;
        case COORD_LOAD_RETRY:
            gs->loads_retrying = true;
            break;
        case COORD_LOAD_FAILED:
            group_coord_load_failed(&gs->coord, p);
            break;
        }
    }
    return more;
}

static void follow_leaders(struct groups *gs);

static void on_load_timer(void *ctx)
{
    struct groups *gs = ctx;
    follow_leaders(gs);
    if (load_all_step(gs) && loop_timer_start(gs->b->loop, &gs->load_timer, 0, 0) < 0)
        while (load_all_step(gs)) /* no timer left: finish now rather than never */
            ;
    drain(gs);
}

void groups_leadership_changed(struct broker *b, uint32_t p)
{
    struct groups *gs = b->groups;
    (void)p;
    if (gs == NULL || !gs->topic_ready)
        return;
    /* Looked at from the loop, not from inside the Raft host's callback that said so. */
    gs->followed = false;
    if (!loop_timer_active(&gs->load_timer))
        (void)loop_timer_start(b->loop, &gs->load_timer, 0, 0);
}

/*
 * Coordinates exactly the partitions of __consumer_offsets this node leads (a replicated one
 * by its group's own view, which tells of every change: groups_leadership_changed): one
 * that came here starts loading, one that left is unloaded (its groups dropped, their parked
 * JoinGroup and SyncGroup answered NOT_COORDINATOR), so clients find the new coordinator.
 * Looks again only when the image changed.
 */
static void follow_leaders(struct groups *gs)
{
    struct broker *b = gs->b;
    if (!gs->topic_ready || (gs->followed && gs->meta_version == b->meta.version))
        return;
    gs->followed = true;
    gs->meta_version = b->meta.version;
    bool started = false;
    for (uint32_t p = 0; p < gs->coord.cfg.partition_count; p++) {
        struct broker_leader l;
        bool here =
            broker_partition_leader(b, OFFSETS_TOPIC, strlen(OFFSETS_TOPIC), (int32_t)p, &l) &&
            l.local;
        struct gload *ld = &gs->loads[p];
        if (here == ld->owned)
            continue;
        ld->owned = here;
        if (here) {
            coord_load_begin(&ld->load);
            group_coord_load_begin(&gs->coord, p);
            started = true;
        } else {
            coord_load_stop(&ld->load);
            group_coord_unload(&gs->coord, p);
        }
    }
    /* Small topics load at once; a large one continues from the loop, one chunk per turn. */
    if (started && load_all_step(gs))
        on_load_timer(gs);
}

static void on_tick(void *ctx)
{
    struct groups *gs = ctx;
    /* Reads that failed are retried from here: the tick timer is always active, and a retry
     * waits GROUP_LOAD_RETRY_MS anyway. */
    if (gs->loads_retrying && !loop_timer_active(&gs->load_timer))
        on_load_timer(gs);
    follow_leaders(gs);
    group_coord_tick(&gs->coord, now_ms(gs));
    drain(gs);
}

/* Answers the parked FindCoordinator requests again, now without waiting. */
static void unpark(struct groups *gs)
{
    uint32_t n = gs->parked_count;
    struct breq *parked[GROUP_PARKED_FIND_MAX];
    memcpy(parked, gs->parked, n * sizeof(*parked));
    gs->parked_count = 0;
    for (uint32_t i = 0; i < n; i++)
        find_coordinator_handle(parked[i]);
}

static void on_topic_created(void *ctx, const struct buf *response)
{
    struct groups *gs = ctx;
    (void)response; /* the image says whether it exists now */
    gs->creating = false;
    unpark(gs);
}

/* Creates __consumer_offsets if needed and starts loading it; false while it does not exist. */
static bool groups_topic(struct groups *gs)
{
    if (gs->topic_ready)
        return true;
    struct broker *b = gs->b;
    const struct meta_topic *mt = meta_topic_find(&b->meta, OFFSETS_TOPIC, strlen(OFFSETS_TOPIC));
    if (mt == NULL) {
        /* Created through the controller like any topic; group requests are answered
         * COORDINATOR_NOT_AVAILABLE until it exists here, and clients retry. Offsets are kept
         * until they are deleted or expire, never by the log's age or size (there is no
         * compaction yet, so the topic grows with every commit). */
        static const char *const keys[] = {"retention.ms", "retention.bytes", "segment.bytes"};
        static const char *const values[] = {"-1", "-1", "104857600"};
        if (!gs->creating) {
            gs->creating = true;
            struct proto_str name = proto_str_make(OFFSETS_TOPIC);
            broker_create_topics(b, &name, 1, (int32_t)gs->coord.cfg.partition_count, keys, values,
                                 3, on_topic_created, gs);
        }
        return false;
    }
    if (mt->partition_count != gs->coord.cfg.partition_count) {
        /* The topic's partition count decides where groups live, whatever the default. */
        struct group_config cfg = gs->coord.cfg;
        cfg.partition_count = MIN(mt->partition_count, GROUP_OFFSETS_PARTITIONS_MAX);
        group_coord_deinit(&gs->coord);
        group_coord_init(&gs->coord, &cfg);
    }
    uint32_t n = gs->coord.cfg.partition_count;
    gs->loads = xcalloc(n, sizeof(*gs->loads));
    for (uint32_t p = 0; p < n; p++)
        coord_load_stop(&gs->loads[p].load); /* not owned until follow_leaders finds it led */
    gs->topic_ready = true;
    gs->followed = false;
    follow_leaders(gs);
    return true;
}

int groups_open(struct broker *b)
{
    if (b->groups != NULL)
        return 0;
    struct groups *gs = xcalloc(1, sizeof(*gs));
    gs->b = b;
    struct group_config cfg;
    group_config_default(&cfg);
    cfg.partition_count = (uint32_t)b->cfg->offsets_topic_num_partitions;
    cfg.initial_delay_ms = (uint32_t)b->cfg->group_initial_rebalance_delay_ms;
    cfg.retention_ms = (int64_t)b->cfg->offsets_retention_minutes * 60 * 1000;
    cfg.seed = rng_next(&b->rng);
    group_coord_init(&gs->coord, &cfg);
    loop_timer_init(&gs->tick_timer, on_tick, gs);
    loop_timer_init(&gs->load_timer, on_load_timer, gs);
    gs->loader = (struct coord_loader){
        .b = b,
        .topic = OFFSETS_TOPIC,
        .what = "groups",
        .holders = "groups",
        .apply = load_apply,
        .ctx = &gs->coord,
        .unavailable_retry_ms = GROUP_LOAD_RETRY_MS,
    };
    /* The tick timer stays active from here to groups_close (arm_tick relies on it). */
    int rc = loop_timer_start(b->loop, &gs->tick_timer, GROUP_TICK_MS, GROUP_TICK_MS);
    if (rc < 0) {
        group_coord_deinit(&gs->coord);
        free(gs);
        return rc;
    }
    b->groups = gs;
    /* An existing topic is loaded at start-up; a missing one waits for the first need. */
    if (meta_topic_find(&b->meta, OFFSETS_TOPIC, strlen(OFFSETS_TOPIC)) != NULL)
        groups_topic(gs);
    return 0;
}

void groups_close(struct broker *b)
{
    struct groups *gs = b->groups;
    if (gs == NULL)
        return;
    /* Parked JoinGroup/SyncGroup requests are answered NOT_COORDINATOR, as when leadership
     * moves; appends still in flight answer their requests without the coordinator. */
    for (uint32_t p = 0; gs->topic_ready && p < gs->coord.cfg.partition_count; p++)
        group_coord_unload(&gs->coord, p);
    /* Requests still waiting for the topic: their connections close (clients retry). */
    for (uint32_t i = 0; i < gs->parked_count; i++)
        breq_abort(gs->parked[i]);
    gs->parked_count = 0;
    drain(gs);
    /* After the last drain, which re-arms the tick. */
    loop_timer_stop(b->loop, &gs->tick_timer);
    loop_timer_stop(b->loop, &gs->load_timer);
    for (struct gappend *a = gs->inflight; a != NULL; a = a->next)
        a->gs = NULL;
    group_coord_deinit(&gs->coord);
    free(gs->loads);
    free(gs->failed);
    free(gs);
    b->groups = NULL;
}

/* The coordinator ready for a group request, or NULL (then the request gets
 * COORDINATOR_NOT_AVAILABLE). */
static struct groups *groups_get(struct broker *b)
{
    if (b->groups == NULL && groups_open(b) < 0)
        return NULL;
    struct groups *gs = b->groups;
    if (!groups_topic(gs))
        return NULL;
    follow_leaders(gs);
    /* What is due by now (a session that ended) happens before the request is answered, even
     * if the timer has not fired yet: views like DescribeGroups never show it. */
    group_coord_tick(&gs->coord, now_ms(gs));
    drain(gs);
    return gs;
}

/* ---- FindCoordinator --------------------------------------------------------------------- */

/* The coordinator of a group: the alive leader of its partition as the image names it, in
 * *node; COORDINATOR_NOT_AVAILABLE when there is none (or, led here, its log is not open). */
static int16_t find_one(struct breq *rq, struct slice key, int8_t key_type,
                        struct broker_node *node)
{
    if (key_type == KEY_TYPE_TRANSACTION)
        return txns_find_coordinator(rq, key, node);
    if (key_type != KEY_TYPE_GROUP)
        return KAFKA_INVALID_REQUEST;
    if (key.ptr == NULL)
        return KAFKA_INVALID_REQUEST;
    struct groups *gs = groups_get(rq->b);
    if (gs == NULL)
        return KAFKA_COORDINATOR_NOT_AVAILABLE;
    uint32_t p = group_partition_of(key, gs->coord.cfg.partition_count);
    struct broker_leader l;
    if (!broker_partition_leader(rq->b, OFFSETS_TOPIC, strlen(OFFSETS_TOPIC), (int32_t)p, &l) ||
        !broker_node_alive(rq->b, l.id, node))
        return KAFKA_COORDINATOR_NOT_AVAILABLE;
    if (!l.local)
        return KAFKA_NONE;
    struct replica *r = broker_replica(rq->b, OFFSETS_TOPIC, strlen(OFFSETS_TOPIC), (int32_t)p);
    return r != NULL && replica_error(r) == 0 ? KAFKA_NONE : KAFKA_COORDINATOR_NOT_AVAILABLE;
}

static const char *find_message(int16_t err)
{
    switch (err) {
    case KAFKA_NONE:
        return NULL;
    case KAFKA_COORDINATOR_NOT_AVAILABLE:
        return "The coordinator is not available.";
    default:
        return "Invalid coordinator key type.";
    }
}

void find_coordinator_handle(struct breq *rq)
{
    const struct kafka_find_coordinator_request *req = rq->body;
    /* The first group request has __consumer_offsets created; FindCoordinator waits for it (a
     * bounded number at once), so clients are not sent into their retry backoff (librdkafka
     * waits seconds before it asks again). Asked once: after that, the answer is what is. */
    if (req->key_type == KEY_TYPE_TRANSACTION && txns_park_find(rq))
        return;
    if (!rq->auto_created) {
        rq->auto_created = true;
        struct groups *gs = rq->b->groups;
        if (gs == NULL && groups_open(rq->b) == 0)
            gs = rq->b->groups;
        if (gs != NULL && !gs->topic_ready && !groups_topic(gs) && gs->creating &&
            gs->parked_count < GROUP_PARKED_FIND_MAX) {
            gs->parked[gs->parked_count++] = rq;
            return;
        }
    }
    struct kafka_find_coordinator_response resp;
    kafka_find_coordinator_response_init(&resp);
    struct broker_node node;
    if (rq->api_version < 4) {
        int16_t err = find_one(rq, sl(req->key), req->key_type, &node);
        resp.error_code = err;
        resp.error_message = proto_str_make(find_message(err));
        resp.node_id = err == KAFKA_NONE ? node.id : -1;
        resp.host = proto_str_make(err == KAFKA_NONE ? node.host : "");
        resp.port = err == KAFKA_NONE ? node.port : -1;
        breq_respond(rq, &resp);
        return;
    }
    size_t n = req->coordinator_keys.count;
    resp.coordinators.count = n;
    resp.coordinators.items = arena_calloc(&rq->arena, n + 1, sizeof(*resp.coordinators.items));
    if (resp.coordinators.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct kafka_find_coordinator_response_coordinator *c = &resp.coordinators.items[i];
        int16_t err = find_one(rq, sl(req->coordinator_keys.items[i]), req->key_type, &node);
        c->key = req->coordinator_keys.items[i];
        c->error_code = err;
        c->error_message = proto_str_make(find_message(err));
        c->node_id = err == KAFKA_NONE ? node.id : -1;
        c->host = proto_str_make(err == KAFKA_NONE ? node.host : "");
        c->port = err == KAFKA_NONE ? node.port : -1;
    }
    breq_respond(rq, &resp);
}

bool groups_offsets_partitions(struct broker *b, uint32_t *count)
{
    struct groups *gs = groups_get(b);
    if (gs == NULL)
        return false;
    *count = gs->coord.cfg.partition_count;
    return true;
}

/* ---- JoinGroup, SyncGroup, Heartbeat, LeaveGroup ---------------------------------------- */

void join_group_handle(struct breq *rq)
{
    const struct kafka_join_group_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    if (gs == NULL) {
        struct kafka_join_group_response resp;
        kafka_join_group_response_init(&resp);
        resp.error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
        resp.member_id = req->member_id;
        resp.leader = proto_str_make("");
        resp.members.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
        breq_respond(rq, &resp);
        return;
    }
    size_t n = req->protocols.count;
    struct slice *names = arena_calloc(&rq->arena, n + 1, sizeof(*names));
    struct slice *metas = arena_calloc(&rq->arena, n + 1, sizeof(*metas));
    if (names == NULL || metas == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = sl(req->protocols.items[i].name);
        metas[i] = req->protocols.items[i].metadata;
    }
    struct group_join_req jr = {
        .group_id = sl(req->group_id),
        .member_id = sl(req->member_id),
        .instance_id = sl(req->group_instance_id),
        .protocol_type = sl(req->protocol_type),
        .client_id = rq->client_id.ptr != NULL ? sl(rq->client_id) : slice_make("", 0),
        /* The listener does not tell the peer's address; Kafka's field is informational. */
        .client_host = slice_make("/", 1),
        .session_timeout_ms = req->session_timeout_ms,
        .rebalance_timeout_ms = req->rebalance_timeout_ms,
        .protocol_names = names,
        .protocol_metadata = metas,
        .protocol_count = n,
        .require_known_member_id = rq->api_version >= 4,
    };
    group_join(&gs->coord, &jr, rq, now_ms(gs));
    drain(gs);
}

void sync_group_handle(struct breq *rq)
{
    const struct kafka_sync_group_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    if (gs == NULL) {
        struct kafka_sync_group_response resp;
        kafka_sync_group_response_init(&resp);
        resp.error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
        resp.assignment = slice_make("", 0);
        breq_respond(rq, &resp);
        return;
    }
    size_t n = req->assignments.count;
    struct slice *ids = arena_calloc(&rq->arena, n + 1, sizeof(*ids));
    struct slice *as = arena_calloc(&rq->arena, n + 1, sizeof(*as));
    if (ids == NULL || as == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = sl(req->assignments.items[i].member_id);
        as[i] = req->assignments.items[i].assignment;
    }
    struct group_sync_req sr = {
        .group_id = sl(req->group_id),
        .member_id = sl(req->member_id),
        .instance_id = sl(req->group_instance_id),
        .protocol_type = sl(req->protocol_type),
        .protocol_name = sl(req->protocol_name),
        .generation = req->generation_id,
        .assign_member_ids = ids,
        .assignments = as,
        .assignment_count = n,
    };
    group_sync(&gs->coord, &sr, rq, now_ms(gs));
    drain(gs);
}

void heartbeat_handle(struct breq *rq)
{
    const struct kafka_heartbeat_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    struct kafka_heartbeat_response resp;
    kafka_heartbeat_response_init(&resp);
    resp.error_code =
        gs == NULL ? KAFKA_COORDINATOR_NOT_AVAILABLE
                   : group_heartbeat(&gs->coord, sl(req->group_id), sl(req->member_id),
                                     sl(req->group_instance_id), req->generation_id, now_ms(gs));
    if (gs != NULL)
        drain(gs);
    breq_respond(rq, &resp);
}

void leave_group_handle(struct breq *rq)
{
    const struct kafka_leave_group_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    struct kafka_leave_group_response resp;
    kafka_leave_group_response_init(&resp);
    bool batched = rq->api_version >= 3;
    size_t n = batched ? req->members.count : 1;
    struct group_leave_member *lm = arena_calloc(&rq->arena, n + 1, sizeof(*lm));
    int16_t *errors = arena_calloc(&rq->arena, n + 1, sizeof(*errors));
    resp.members.items = arena_calloc(&rq->arena, n + 1, sizeof(*resp.members.items));
    if (lm == NULL || errors == NULL || resp.members.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        lm[i].member_id = batched ? sl(req->members.items[i].member_id) : sl(req->member_id);
        lm[i].instance_id =
            batched ? sl(req->members.items[i].group_instance_id) : slice_make(NULL, 0);
    }
    resp.error_code = gs == NULL
                          ? KAFKA_COORDINATOR_NOT_AVAILABLE
                          : group_leave(&gs->coord, sl(req->group_id), lm, n, errors, now_ms(gs));
    if (gs != NULL)
        drain(gs);
    resp.members.count = batched ? n : 0;
    for (size_t i = 0; batched && i < n; i++) {
        resp.members.items[i].member_id = req->members.items[i].member_id;
        resp.members.items[i].group_instance_id = req->members.items[i].group_instance_id;
        resp.members.items[i].error_code =
            resp.error_code == KAFKA_NONE ? errors[i] : resp.error_code;
    }
    /* Before v3 the one member's outcome is the response's. */
    if (!batched && resp.error_code == KAFKA_NONE)
        resp.error_code = errors[0];
    breq_respond(rq, &resp);
}

/* ---- OffsetCommit ------------------------------------------------------------------------ */

/* Whether the metadata has the partition. Kafka answers UNKNOWN_TOPIC_OR_PARTITION for one it
 * does not have before the coordinator sees the commit, so no offset (and no group) is ever
 * stored for a topic that does not exist. */
static bool partition_exists(struct broker *b, struct proto_str topic, int32_t partition)
{
    if (topic.ptr == NULL || partition < 0)
        return false;
    const struct meta_topic *mt = meta_topic_find(&b->meta, topic.ptr, topic.len);
    return mt != NULL && (uint32_t)partition < mt->partition_count;
}

/* An OffsetCommit or TxnOffsetCommit on its way to the coordinator: the partitions that
 * exist, each with the response error it decides. The two requests differ only in their types
 * and in the coordinator's call. */
struct commit_op {
    struct gop *op;
    struct gwait *w;
    struct group_commit_part *parts;
    int16_t *errors;
    int16_t **slots;
    size_t count;
};

/* Room for up to total partitions, answered with resp; false when the request's budget is
 * spent (then nothing was sent to the coordinator). */
static bool commit_begin(struct breq *rq, void *resp, size_t total, struct commit_op *c)
{
    *c = (struct commit_op){
        .op = arena_zalloc(&rq->arena, sizeof(*c->op)),
        .w = arena_zalloc(&rq->arena, sizeof(*c->w)),
        .parts = arena_calloc(&rq->arena, total + 1, sizeof(*c->parts)),
        .errors = arena_calloc(&rq->arena, total + 1, sizeof(*c->errors)),
        .slots = arena_calloc(&rq->arena, total + 1, sizeof(*c->slots)),
    };
    if (c->op == NULL || c->w == NULL || c->parts == NULL || c->errors == NULL || c->slots == NULL)
        return false;
    c->op->rq = rq;
    c->op->resp = resp;
    c->op->pending = 1;
    return true;
}

/* One partition of the request, whose answer goes to *error. */
static void commit_add(struct commit_op *c, struct proto_str topic, int32_t partition,
                       int64_t offset, int32_t leader_epoch, struct proto_str metadata,
                       int16_t *error)
{
    if (!partition_exists(c->op->rq->b, topic, partition)) {
        *error = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    c->slots[c->count] = error;
    c->parts[c->count++] = (struct group_commit_part){
        .topic = sl(topic),
        .partition = partition,
        .offset = offset,
        .leader_epoch = leader_epoch,
        .metadata = sl(metadata),
    };
}

/* Whether the coordinator is to see the commit; when not, the request is answered. Only the
 * partitions that exist go to the coordinator; with none, Kafka answers without looking at the
 * group at all. */
static bool commit_ready(struct commit_op *c, const struct groups *gs)
{
    if (c->count > 0 && gs != NULL) {
        c->w->op = c->op;
        c->w->slots = c->slots;
        c->w->slot_count = c->count;
        return true;
    }
    for (size_t i = 0; i < c->count; i++)
        *c->slots[i] = KAFKA_COORDINATOR_NOT_AVAILABLE;
    gop_done(c->op);
    return false;
}

/* After the coordinator's call: its errors go to the response, which is sent once the append
 * (if one was queued) is done. */
static void commit_end(struct commit_op *c, struct groups *gs, bool appended)
{
    for (size_t i = 0; i < c->count; i++)
        *c->slots[i] = c->errors[i];
    if (appended)
        c->op->pending++;
    drain(gs);
    gop_done(c->op);
}

void offset_commit_handle(struct breq *rq)
{
    const struct kafka_offset_commit_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    struct kafka_offset_commit_response *resp = arena_zalloc(&rq->arena, sizeof(*resp));
    size_t nt = req->topics.count, total = 0;
    for (size_t t = 0; t < nt; t++)
        total += req->topics.items[t].partitions.count;
    struct commit_op c;
    bool fits = resp != NULL && commit_begin(rq, resp, total, &c);
    if (fits) {
        kafka_offset_commit_response_init(resp);
        resp->topics.count = nt;
        resp->topics.items = arena_calloc(&rq->arena, nt + 1, sizeof(*resp->topics.items));
        fits = resp->topics.items != NULL;
    }
    for (size_t t = 0; t < nt && fits; t++) {
        const struct kafka_offset_commit_request_offset_commit_request_topic *it =
            &req->topics.items[t];
        struct kafka_offset_commit_response_offset_commit_response_topic *ot =
            &resp->topics.items[t];
        ot->name = it->name;
        ot->partitions.count = it->partitions.count;
        ot->partitions.items =
            arena_calloc(&rq->arena, it->partitions.count + 1, sizeof(*ot->partitions.items));
        fits = ot->partitions.items != NULL;
        for (size_t p = 0; p < it->partitions.count && fits; p++) {
            const struct kafka_offset_commit_request_offset_commit_request_partition *ip =
                &it->partitions.items[p];
            ot->partitions.items[p].partition_index = ip->partition_index;
            commit_add(&c, it->name, ip->partition_index, ip->committed_offset,
                       ip->committed_leader_epoch, ip->committed_metadata,
                       &ot->partitions.items[p].error_code);
        }
    }
    if (!fits) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    if (!commit_ready(&c, gs))
        return;
    struct group_commit_req cr = {
        .group_id = sl(req->group_id),
        .member_id = sl(req->member_id),
        .instance_id = sl(req->group_instance_id),
        .generation = req->generation_id_or_member_epoch,
        .retention_ms = req->retention_time_ms,
    };
    bool appended = false;
    group_offset_commit(&gs->coord, &cr, c.parts, c.count, c.errors, c.w, &appended, now_ms(gs));
    commit_end(&c, gs, appended);
}

/* ---- TxnOffsetCommit --------------------------------------------------------------------- */

void txn_offset_commit_handle(struct breq *rq)
{
    const struct kafka_txn_offset_commit_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    struct kafka_txn_offset_commit_response *resp = arena_zalloc(&rq->arena, sizeof(*resp));
    size_t nt = req->topics.count, total = 0;
    for (size_t t = 0; t < nt; t++)
        total += req->topics.items[t].partitions.count;
    struct commit_op c;
    bool fits = resp != NULL && commit_begin(rq, resp, total, &c);
    if (fits) {
        kafka_txn_offset_commit_response_init(resp);
        resp->topics.count = nt;
        resp->topics.items = arena_calloc(&rq->arena, nt + 1, sizeof(*resp->topics.items));
        fits = resp->topics.items != NULL;
    }
    for (size_t t = 0; t < nt && fits; t++) {
        const struct kafka_txn_offset_commit_request_txn_offset_commit_request_topic *it =
            &req->topics.items[t];
        struct kafka_txn_offset_commit_response_txn_offset_commit_response_topic *ot =
            &resp->topics.items[t];
        ot->name = it->name;
        ot->partitions.count = it->partitions.count;
        ot->partitions.items =
            arena_calloc(&rq->arena, it->partitions.count + 1, sizeof(*ot->partitions.items));
        fits = ot->partitions.items != NULL;
        for (size_t p = 0; p < it->partitions.count && fits; p++) {
            const struct kafka_txn_offset_commit_request_txn_offset_commit_request_partition *ip =
                &it->partitions.items[p];
            ot->partitions.items[p].partition_index = ip->partition_index;
            commit_add(&c, it->name, ip->partition_index, ip->committed_offset,
                       ip->committed_leader_epoch, ip->committed_metadata,
                       &ot->partitions.items[p].error_code);
        }
    }
    if (!fits) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    if (!commit_ready(&c, gs))
        return;
    struct group_txn_commit_req cr = {
        .group_id = sl(req->group_id),
        .member_id = sl(req->member_id),
        .instance_id = sl(req->group_instance_id),
        .generation = req->generation_id,
        .producer_id = req->producer_id,
        .producer_epoch = req->producer_epoch,
    };
    bool appended = false;
    group_txn_offset_commit(&gs->coord, &cr, c.parts, c.count, c.errors, c.w, &appended,
                            now_ms(gs));
    commit_end(&c, gs, appended);
}

void groups_txn_marker(struct broker *b, int32_t partition, int64_t producer_id, bool commit)
{
    struct groups *gs = b->groups;
    if (gs == NULL || partition < 0 || (uint32_t)partition >= gs->coord.cfg.partition_count)
        return;
    group_coord_txn_end(&gs->coord, (uint32_t)partition, producer_id, commit);
    drain(gs);
}

/* ---- OffsetFetch ------------------------------------------------------------------------- */

/* One partition's committed offset, or -1 with no metadata (Kafka's "no offset"). */
static int16_t fetch_one(struct groups *gs, struct slice group, struct slice topic,
                         int32_t partition, bool stable, int64_t *offset, int32_t *epoch,
                         struct slice *metadata)
{
    const struct group_offset *o = NULL;
    int16_t err = group_offset_get(&gs->coord, group, topic, partition, stable, &o);
    *offset = o != NULL ? o->offset : -1;
    *epoch = o != NULL ? o->leader_epoch : -1;
    *metadata = o != NULL ? group_bytes_slice(o->metadata) : slice_make("", 0);
    return err;
}

/* The distinct topics of a group's offsets, for a fetch of "all topics". */
static size_t group_topics(struct breq *rq, const struct group *g, struct slice **out)
{
    struct slice *topics =
        answer_mem(rq, arena_calloc(&rq->arena, g->offset_count + 1, sizeof(*topics)));
    size_t n = 0;
    *out = topics;
    if (topics == NULL)
        return 0;
    for (size_t i = 0; i < g->offset_count; i++) {
        struct slice t = group_bytes_slice(g->offsets[i].topic);
        size_t k = 0;
        while (k < n && !slice_eq(topics[k], t))
            k++;
        if (k == n)
            topics[n++] = t;
    }
    return n;
}

/* The partitions of a topic the group has offsets for. */
static size_t group_topic_partitions(struct breq *rq, const struct group *g, struct slice topic,
                                     int32_t **out)
{
    int32_t *parts = answer_mem(rq, arena_calloc(&rq->arena, g->offset_count + 1, sizeof(*parts)));
    size_t n = 0;
    *out = parts;
    if (parts == NULL)
        return 0;
    for (size_t i = 0; i < g->offset_count; i++)
        if (slice_eq(group_bytes_slice(g->offsets[i].topic), topic))
            parts[n++] = g->offsets[i].partition;
    return n;
}

/* The topics of one group of a v8+ fetch (topics NULL: all of them). */
static void fetch_group_v8(struct breq *rq, struct groups *gs, bool stable,
                           const struct kafka_offset_fetch_request_offset_fetch_request_group *in,
                           struct kafka_offset_fetch_response_offset_fetch_response_group *out)
{
    out->group_id = in->group_id;
    out->topics.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
    out->error_code = gs == NULL ? KAFKA_COORDINATOR_NOT_AVAILABLE
                                 : group_coord_check(&gs->coord, sl(in->group_id));
    if (out->error_code != KAFKA_NONE)
        return;
    const struct group *g = group_coord_find(&gs->coord, sl(in->group_id));
    bool all = in->topics.items == NULL;
    struct slice *names = NULL;
    size_t nt = all ? (g != NULL ? group_topics(rq, g, &names) : 0) : in->topics.count;
    out->topics.items =
        answer_mem(rq, arena_calloc(&rq->arena, nt + 1, sizeof(*out->topics.items)));
    out->topics.count = out->topics.items != NULL ? nt : 0;
    for (size_t t = 0; t < out->topics.count; t++) {
        struct kafka_offset_fetch_response_offset_fetch_response_topics *ot = &out->topics.items[t];
        struct slice topic = all ? names[t] : sl(in->topics.items[t].name);
        int32_t *parts = NULL;
        size_t np = all ? group_topic_partitions(rq, g, topic, &parts)
                        : in->topics.items[t].partition_indexes.count;
        if (!all)
            parts = in->topics.items[t].partition_indexes.items;
        ot->name = all ? str_copy(rq, topic) : in->topics.items[t].name;
        ot->partitions.items =
            answer_mem(rq, arena_calloc(&rq->arena, np + 1, sizeof(*ot->partitions.items)));
        ot->partitions.count = ot->partitions.items != NULL && parts != NULL ? np : 0;
        for (size_t p = 0; p < ot->partitions.count; p++) {
            struct kafka_offset_fetch_response_offset_fetch_response_partitions *op =
                &ot->partitions.items[p];
            struct slice md;
            op->partition_index = parts[p];
            op->error_code = fetch_one(gs, sl(in->group_id), topic, parts[p], stable,
                                       &op->committed_offset, &op->committed_leader_epoch, &md);
            op->metadata = str_copy(rq, md);
        }
    }
}

/* Versions 0-7: one group; a group-level error goes in the top-level field (v2+) or in every
 * partition (v0-1). */
static void fetch_v0(struct breq *rq, struct groups *gs, struct kafka_offset_fetch_response *resp)
{
    const struct kafka_offset_fetch_request *req = rq->body;
    int16_t gerr = gs == NULL ? KAFKA_COORDINATOR_NOT_AVAILABLE
                              : group_coord_check(&gs->coord, sl(req->group_id));
    const struct group *g =
        gerr == KAFKA_NONE ? group_coord_find(&gs->coord, sl(req->group_id)) : NULL;
    bool all = req->topics.items == NULL;
    struct slice *names = NULL;
    size_t nt = all ? (g != NULL ? group_topics(rq, g, &names) : 0) : req->topics.count;
    if (rq->api_version >= 2 && gerr != KAFKA_NONE) {
        resp->error_code = gerr;
        nt = 0;
    }
    resp->topics.items =
        answer_mem(rq, arena_calloc(&rq->arena, nt + 1, sizeof(*resp->topics.items)));
    resp->topics.count = resp->topics.items != NULL ? nt : 0;
    for (size_t t = 0; t < resp->topics.count; t++) {
        struct kafka_offset_fetch_response_offset_fetch_response_topic *ot = &resp->topics.items[t];
        struct slice topic = all ? names[t] : sl(req->topics.items[t].name);
        int32_t *parts = NULL;
        size_t np = all ? group_topic_partitions(rq, g, topic, &parts)
                        : req->topics.items[t].partition_indexes.count;
        if (!all)
            parts = req->topics.items[t].partition_indexes.items;
        ot->name = all ? str_copy(rq, topic) : req->topics.items[t].name;
        ot->partitions.items =
            answer_mem(rq, arena_calloc(&rq->arena, np + 1, sizeof(*ot->partitions.items)));
        ot->partitions.count = ot->partitions.items != NULL && parts != NULL ? np : 0;
        for (size_t p = 0; p < ot->partitions.count; p++) {
            struct kafka_offset_fetch_response_offset_fetch_response_partition *op =
                &ot->partitions.items[p];
            op->partition_index = parts[p];
            op->committed_offset = -1;
            op->committed_leader_epoch = -1;
            op->metadata = proto_str_make("");
            if (gerr != KAFKA_NONE) {
                op->error_code = gerr;
                continue;
            }
            struct slice md;
            op->error_code = fetch_one(gs, sl(req->group_id), topic, parts[p], req->require_stable,
                                       &op->committed_offset, &op->committed_leader_epoch, &md);
            op->metadata = str_copy(rq, md);
        }
    }
}

void offset_fetch_handle(struct breq *rq)
{
    const struct kafka_offset_fetch_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    struct kafka_offset_fetch_response resp;
    kafka_offset_fetch_response_init(&resp);
    resp.groups.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
    resp.topics.items = arena_alloc(&rq->arena, 0);
    if (rq->api_version < 8) {
        fetch_v0(rq, gs, &resp);
        breq_respond(rq, &resp);
        return;
    }
    size_t ng = req->groups.count;
    resp.groups.count = ng;
    resp.groups.items = arena_calloc(&rq->arena, ng + 1, sizeof(*resp.groups.items));
    if (resp.groups.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    for (size_t i = 0; i < ng; i++)
        fetch_group_v8(rq, gs, req->require_stable, &req->groups.items[i], &resp.groups.items[i]);
    breq_respond(rq, &resp);
}

/* ---- ListGroups, DescribeGroups ---------------------------------------------------------- */

static bool in_filter(struct proto_str *items, size_t count, const char *value)
{
    if (count == 0)
        return true;
    for (size_t i = 0; i < count; i++)
        if (items[i].ptr != NULL && items[i].len == strlen(value) &&
            strncasecmp(items[i].ptr, value, items[i].len) == 0)
            return true;
    return false;
}

void list_groups_handle(struct breq *rq)
{
    const struct kafka_list_groups_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    struct kafka_list_groups_response resp;
    kafka_list_groups_response_init(&resp);
    resp.groups.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
    resp.error_code =
        gs == NULL ? KAFKA_COORDINATOR_NOT_AVAILABLE : group_coord_list_error(&gs->coord);
    if (resp.error_code != KAFKA_NONE) {
        breq_respond(rq, &resp);
        return;
    }
    size_t n = group_coord_group_count(&gs->coord);
    resp.groups.items = arena_calloc(&rq->arena, n + 1, sizeof(*resp.groups.items));
    if (resp.groups.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    bool classic = in_filter(req->types_filter.items, req->types_filter.count, "classic");
    for (size_t i = 0; classic && i < n; i++) {
        const struct group *g = group_coord_group_at(&gs->coord, i);
        if (g == NULL)
            continue;
        const char *state = group_state_name(g->state);
        if (!in_filter(req->states_filter.items, req->states_filter.count, state))
            continue;
        struct kafka_list_groups_response_listed_group *lg =
            &resp.groups.items[resp.groups.count++];
        lg->group_id = str_copy(rq, group_bytes_slice(g->id));
        lg->protocol_type =
            str_copy(rq, g->protocol_type.ptr != NULL ? group_bytes_slice(g->protocol_type)
                                                      : slice_make("", 0));
        lg->group_state = proto_str_make(state);
        lg->group_type = proto_str_make("classic");
    }
    breq_respond(rq, &resp);
}

static void describe_one(struct breq *rq, struct groups *gs, struct proto_str id, bool ops,
                         struct kafka_describe_groups_response_described_group *out)
{
    out->group_id = id;
    out->protocol_type = proto_str_make("");
    out->protocol_data = proto_str_make("");
    out->group_state = proto_str_make("Dead");
    out->members.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
    out->authorized_operations = ops ? GROUP_AUTHORIZED_OPERATIONS : INT32_MIN;
    out->error_code =
        gs == NULL ? KAFKA_COORDINATOR_NOT_AVAILABLE : group_coord_check(&gs->coord, sl(id));
    if (out->error_code != KAFKA_NONE)
        return;
    const struct group *g = group_coord_find(&gs->coord, sl(id));
    if (g == NULL)
        return; /* Kafka describes an unknown group as Dead, without an error */
    bool stable = g->state == GROUP_STABLE;
    out->group_state = proto_str_make(group_state_name(g->state));
    if (g->protocol_type.ptr != NULL)
        out->protocol_type = str_copy(rq, group_bytes_slice(g->protocol_type));
    if (stable && g->protocol_name.ptr != NULL)
        out->protocol_data = str_copy(rq, group_bytes_slice(g->protocol_name));
    out->members.items =
        answer_mem(rq, arena_calloc(&rq->arena, g->member_count + 1, sizeof(*out->members.items)));
    out->members.count = out->members.items != NULL ? g->member_count : 0;
    for (size_t i = 0; i < out->members.count; i++) {
        const struct group_member *m = g->members[i];
        struct kafka_describe_groups_response_described_group_member *om = &out->members.items[i];
        om->member_id = str_copy(rq, group_bytes_slice(m->member_id));
        om->group_instance_id = str_copy(rq, group_bytes_slice(m->instance_id));
        om->client_id = str_copy(rq, group_bytes_slice(m->client_id));
        om->client_host = str_copy(rq, group_bytes_slice(m->client_host));
        /* Metadata and assignment only describe a stable generation, as Kafka's summary. */
        om->member_metadata =
            stable ? bytes_copy(rq, group_member_metadata(g, m)) : slice_make("", 0);
        om->member_assignment = stable && m->assignment.ptr != NULL
                                    ? bytes_copy(rq, group_bytes_slice(m->assignment))
                                    : slice_make("", 0);
    }
}

void describe_groups_handle(struct breq *rq)
{
    const struct kafka_describe_groups_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    struct kafka_describe_groups_response resp;
    kafka_describe_groups_response_init(&resp);
    size_t n = req->groups.count;
    resp.groups.count = n;
    resp.groups.items = arena_calloc(&rq->arena, n + 1, sizeof(*resp.groups.items));
    if (resp.groups.items == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    for (size_t i = 0; i < n; i++)
        describe_one(rq, gs, req->groups.items[i], req->include_authorized_operations,
                     &resp.groups.items[i]);
    breq_respond(rq, &resp);
}

/* ---- DeleteGroups, OffsetDelete ---------------------------------------------------------- */

void delete_groups_handle(struct breq *rq)
{
    const struct kafka_delete_groups_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    size_t n = req->groups_names.count;
    struct gop *op = arena_zalloc(&rq->arena, sizeof(*op));
    struct kafka_delete_groups_response *resp = arena_zalloc(&rq->arena, sizeof(*resp));
    /* Every group's waiter before the first deletion: nothing is deleted unanswered. */
    struct gwait *waits = arena_calloc(&rq->arena, n + 1, sizeof(*waits));
    int16_t **slots = arena_calloc(&rq->arena, n + 1, sizeof(*slots));
    struct kafka_delete_groups_response_deletable_group_result *results =
        arena_calloc(&rq->arena, n + 1, sizeof(*results));
    if (op == NULL || resp == NULL || waits == NULL || slots == NULL || results == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    kafka_delete_groups_response_init(resp);
    op->rq = rq;
    op->resp = resp;
    op->pending = 1;
    resp->results.count = n;
    resp->results.items = results;
    for (size_t i = 0; i < n; i++) {
        struct kafka_delete_groups_response_deletable_group_result *res = &resp->results.items[i];
        res->group_id = req->groups_names.items[i];
        if (gs == NULL) {
            res->error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
            continue;
        }
        struct gwait *w = &waits[i];
        w->op = op;
        w->slots = &slots[i];
        w->slots[0] = &res->error_code;
        w->slot_count = 1;
        bool appended = false;
        res->error_code = group_delete(&gs->coord, sl(res->group_id), w, &appended, now_ms(gs));
        if (appended)
            op->pending++;
        drain(gs);
    }
    gop_done(op);
}

void offset_delete_handle(struct breq *rq)
{
    const struct kafka_offset_delete_request *req = rq->body;
    struct groups *gs = groups_get(rq->b);
    struct gop *op = arena_zalloc(&rq->arena, sizeof(*op));
    struct kafka_offset_delete_response *resp = arena_zalloc(&rq->arena, sizeof(*resp));
    struct gwait *w = arena_zalloc(&rq->arena, sizeof(*w));
    if (op == NULL || resp == NULL || w == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    kafka_offset_delete_response_init(resp);
    op->rq = rq;
    op->resp = resp;
    op->pending = 1;
    size_t nt = req->topics.count, total = 0;
    for (size_t t = 0; t < nt; t++)
        total += req->topics.items[t].partitions.count;
    struct slice *topics = arena_calloc(&rq->arena, total + 1, sizeof(*topics));
    int32_t *parts = arena_calloc(&rq->arena, total + 1, sizeof(*parts));
    int16_t *errors = arena_calloc(&rq->arena, total + 1, sizeof(*errors));
    int16_t **slots = arena_calloc(&rq->arena, total + 1, sizeof(*slots));
    resp->topics.count = nt;
    resp->topics.items = arena_calloc(&rq->arena, nt + 1, sizeof(*resp->topics.items));
    bool fits = topics != NULL && parts != NULL && errors != NULL && slots != NULL &&
                resp->topics.items != NULL;
    for (size_t t = 0; t < nt && fits; t++) {
        size_t np = req->topics.items[t].partitions.count;
        resp->topics.items[t].partitions.items =
            arena_calloc(&rq->arena, np + 1, sizeof(*resp->topics.items[t].partitions.items));
        fits = resp->topics.items[t].partitions.items != NULL;
    }
    if (!fits) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    size_t k = 0;
    for (size_t t = 0; t < nt; t++) {
        const struct kafka_offset_delete_request_offset_delete_request_topic *it =
            &req->topics.items[t];
        struct kafka_offset_delete_response_offset_delete_response_topic *ot =
            &resp->topics.items[t];
        ot->name = it->name;
        ot->partitions.count = it->partitions.count;
        for (size_t p = 0; p < it->partitions.count; p++) {
            int32_t index = it->partitions.items[p].partition_index;
            ot->partitions.items[p].partition_index = index;
            /* As for commits, Kafka refuses a partition it does not know before the group. */
            if (!partition_exists(rq->b, it->name, index)) {
                ot->partitions.items[p].error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            topics[k] = sl(it->name);
            parts[k] = index;
            slots[k++] = &ot->partitions.items[p].error_code;
        }
    }
    total = k;
    if (gs == NULL) {
        resp->error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
        gop_done(op);
        return;
    }
    w->op = op;
    w->slots = slots;
    w->slot_count = total;
    bool appended = false;
    resp->error_code = group_offset_delete(&gs->coord, sl(req->group_id), topics, parts, total,
                                           errors, w, &appended, now_ms(gs));
    if (resp->error_code == KAFKA_NONE) {
        for (size_t i = 0; i < total; i++)
            *slots[i] = errors[i];
    } else {
        /* A group-level error answers with no partitions, as Kafka does. */
        resp->topics.count = 0;
    }
    if (appended)
        op->pending++;
    drain(gs);
    gop_done(op);
}
