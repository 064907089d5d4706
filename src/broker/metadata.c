/*
 * Metadata: the cluster as the metadata image has it (every alive broker with its advertised
 * endpoint and rack, the controller as last known, every partition's leader, epoch, replicas,
 * ISR and offline replicas; see nodes.c), and the topics asked for
 * (every topic for a null list, or an empty one in version 0), creating missing ones when both
 * the request and auto.create.topics.enable allow it (see auto_create for the bounds).
 *
 * Fail-over: a replicated partition hosted here whose leader just died has a new one within
 * milliseconds (the survivors campaign as soon as the dead leader's connection closes), but a
 * client told "no leader" meanwhile waits for its next periodic look (librdkafka 2.0: up to a
 * second). So an answer that would name no leader for such a partition (an election under way
 * here, broker_replica_electing) is held until every such partition asked about has one, or an
 * election timeout (controller.quorum.election.timeout.ms) passed, and is answered once with
 * what is known then.
 */
#include "base/error.h"
#include "broker/broker_internal.h"

#include "base/alloc.h"

#include <stdlib.h>
#include <string.h>

struct metadata_wait {
    struct breq *rq;
    struct loop_timer timer;
    struct metadata_wait *prev, *next; /* in b->metadata_waiting */
};

/* One partition as the image has it: the leader only if it is alive (registered, unfenced),
 * else LEADER_NOT_AVAILABLE with no leader, as Kafka's metadata cache answers; replicas whose
 * node is not alive are offline. A partition led here that is still opening or whose log failed
 * is shown as today's single node showed it. ERR_TOO_LARGE when the request's memory is spent. */
static int fill_partition(struct breq *rq, const struct meta_topic *t, uint32_t p,
                          struct kafka_metadata_response_metadata_response_partition *op)
{
    struct broker *b = rq->b;
    const struct meta_partition *mp = &t->partitions[p];
    op->error_code = KAFKA_NONE;
    op->partition_index = (int32_t)p;
    /* The leader as this node knows it: a replicated partition hosted here by its group's own
     * view (fresher than the image, which hears of it from the leader's report). */
    struct broker_leader l;
    broker_partition_leader(b, t->name, strlen(t->name), (int32_t)p, &l);
    op->leader_id = l.id;
    op->leader_epoch = l.epoch;
    op->replica_nodes.count = mp->replica_count;
    op->replica_nodes.items = (int32_t *)mp->replicas;
    op->isr_nodes.count = mp->isr_count;
    op->isr_nodes.items = (int32_t *)mp->isr;
    int16_t local = l.id == b->cfg->node_id
                        ? broker_replica_error(b, t->name, strlen(t->name), (int32_t)p)
                        : KAFKA_NONE;
    int32_t *offline = arena_calloc(&rq->arena, (size_t)mp->replica_count + 1, sizeof(*offline));
    if (offline == NULL)
        return ERR_TOO_LARGE;
    op->offline_replicas.items = offline;
    op->offline_replicas.count = 0;
    for (unsigned i = 0; i < mp->replica_count; i++) {
        int32_t id = mp->replicas[i];
        /* A log that refused to open (damaged) is offline, as Kafka reports a failed log dir. */
        bool failed = id == b->cfg->node_id && local == KAFKA_KAFKA_STORAGE_ERROR;
        if (failed || !broker_node_alive(b, id, NULL))
            offline[op->offline_replicas.count++] = id;
    }
    /* No leader, a fenced or unknown one, a log still opening at start-up (opened next; Kafka
     * shows a partition it is still loading so), or a failed log: no leader to send to, so
     * clients wait and refresh instead of sending. */
    if (!broker_node_alive(b, op->leader_id, NULL) || local == KAFKA_NOT_LEADER_OR_FOLLOWER ||
        local == KAFKA_KAFKA_STORAGE_ERROR) {
        op->error_code = KAFKA_LEADER_NOT_AVAILABLE;
        op->leader_id = -1;
    }
    return 0;
}

/* Fills out for t from the request's memory; ERR_TOO_LARGE when that is spent. */
static int fill_topic(struct breq *rq, struct kafka_metadata_response_metadata_response_topic *out,
                      const struct meta_topic *t)
{
    out->error_code = KAFKA_NONE;
    out->name = (struct proto_str){.ptr = t->name, .len = strlen(t->name)};
    memcpy(out->topic_id.bytes, t->id.b, sizeof(out->topic_id.bytes));
    out->is_internal =
        strcmp(t->name, BROKER_OFFSETS_TOPIC) == 0 || strcmp(t->name, BROKER_TXN_STATE_TOPIC) == 0;
    out->partitions.count = t->partition_count;
    out->partitions.items =
        arena_calloc(&rq->arena, t->partition_count, sizeof(*out->partitions.items));
    if (out->partitions.items == NULL)
        return ERR_TOO_LARGE;
    for (uint32_t p = 0; p < t->partition_count; p++) {
        int rc = fill_partition(rq, t, p, &out->partitions.items[p]);
        if (rc < 0)
            return rc;
    }
    out->topic_authorized_operations = INT32_MIN;
    return 0;
}

static void fill_missing(struct kafka_metadata_response_metadata_response_topic *out,
                         struct proto_str name, const struct proto_uuid *id, int16_t error)
{
    memset(out, 0, sizeof(*out));
    out->error_code = error;
    out->name = name;
    if (id != NULL)
        out->topic_id = *id;
    out->partitions.items = (void *)out; /* an empty, non-null array */
    out->partitions.count = 0;
    out->topic_authorized_operations = INT32_MIN;
}

/*
 * Auto-creation is batched and bounded: every missing topic of the request goes to the
 * controller in one CreateTopics of this node, and the request is answered once that is done
 * and applied here (so the answer holds the new topics and their leaders). At most
 * BROKER_AUTO_CREATE_PER_REQUEST_MAX topics are created per request, and only while the
 * controller mutation quota admits them; the others are answered LEADER_NOT_AVAILABLE, which
 * clients retry (as Kafka answers a topic whose creation is under way), so a request naming
 * 100,000 unknown topics costs one bounded step.
 */
static void on_auto_created(void *ctx, const struct buf *response)
{
    struct breq *rq = ctx;
    (void)response; /* what exists now is in the image; a failure leaves a missing topic */
    rq->auto_created = true;
    metadata_handle(rq);
}

static int answer_requested(struct breq *rq, const struct kafka_metadata_request *req,
                            struct kafka_metadata_response *resp)
{
    struct broker *b = rq->b;
    bool may_create =
        broker_auto_create_allowed(b) && (rq->api_version < 4 || req->allow_auto_topic_creation);
    size_t n = req->topics.count;
    resp->topics.count = n;
    resp->topics.items = arena_calloc(&rq->arena, n, sizeof(*resp->topics.items));
    if (resp->topics.items == NULL)
        return ERR_TOO_LARGE;
    /* First pass: what to create; error_code holds the answer for a missing topic. */
    struct proto_str *create =
        arena_calloc(&rq->arena, BROKER_AUTO_CREATE_PER_REQUEST_MAX, sizeof(*create));
    if (create == NULL)
        return ERR_TOO_LARGE;
    uint32_t created = 0;
    for (size_t i = 0; i < n; i++) {
        const struct kafka_metadata_request_metadata_request_topic *q = &req->topics.items[i];
        struct kafka_metadata_response_metadata_response_topic *out = &resp->topics.items[i];
        out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
        if (q->name.ptr == NULL || meta_topic_find(&b->meta, q->name.ptr, q->name.len) != NULL)
            continue;
        if (!meta_topic_name_valid(q->name.ptr, q->name.len)) {
            out->error_code = KAFKA_INVALID_TOPIC_EXCEPTION;
        } else if (may_create) {
            /* Asked once: a topic still missing after its creation is being created still (or
             * could not be), which clients retry. */
            out->error_code = KAFKA_LEADER_NOT_AVAILABLE;
            bool again = false;
            for (uint32_t k = 0; k < created && !again; k++)
                again = create[k].len == q->name.len &&
                        memcmp(create[k].ptr, q->name.ptr, q->name.len) == 0;
            if (!rq->auto_created && !again && created < BROKER_AUTO_CREATE_PER_REQUEST_MAX &&
                broker_quota_admit(b, (uint32_t)b->cfg->num_partitions))
                create[created++] = q->name;
        }
    }
    if (created > 0) {
        broker_create_topics(b, create, created, -1, NULL, NULL, 0, on_auto_created, rq);
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct kafka_metadata_request_metadata_request_topic *q = &req->topics.items[i];
        struct kafka_metadata_response_metadata_response_topic *out = &resp->topics.items[i];
        if (q->name.ptr == NULL) {
            struct meta_uuid id;
            memcpy(id.b, q->topic_id.bytes, sizeof(id.b));
            const struct meta_topic *t = meta_topic_find_id(&b->meta, &id);
            if (t == NULL)
                fill_missing(out, q->name, &q->topic_id, KAFKA_UNKNOWN_TOPIC_ID);
            else
                rc = fill_topic(rq, out, t);
            continue;
        }
        const struct meta_topic *t = meta_topic_find(&b->meta, q->name.ptr, q->name.len);
        if (t == NULL)
            fill_missing(out, q->name, NULL, out->error_code);
        else
            rc = fill_topic(rq, out, t);
    }
    return rc;
}

/* Every alive broker with its advertised endpoint and rack (nodes.c). */
static int fill_brokers(struct breq *rq, struct kafka_metadata_response *resp)
{
    size_t n = 0;
    struct broker_node *nodes = broker_nodes_alive(rq, &n);
    struct kafka_metadata_response_metadata_response_broker *brokers =
        nodes != NULL ? arena_calloc(&rq->arena, n + 1, sizeof(*brokers)) : NULL;
    if (brokers == NULL)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++) {
        brokers[i].node_id = nodes[i].id;
        brokers[i].host = proto_str_make(nodes[i].host);
        brokers[i].port = nodes[i].port;
        /* broker.rack; null when not set, as Kafka answers. */
        brokers[i].rack = proto_str_make(nodes[i].rack);
    }
    resp->brokers.items = brokers;
    resp->brokers.count = n;
    return 0;
}

/* An election under way here for a partition of t (see the top of the file). */
static bool topic_electing(struct broker *b, const struct meta_topic *t)
{
    for (uint32_t p = 0; p < t->partition_count; p++)
        if (t->partitions[p].replica_count > 1 &&
            broker_replica_electing(b, t->name, strlen(t->name), (int32_t)p))
            return true;
    return false;
}

/* An election under way here for a partition the request asks about. No allocation. */
static bool electing(struct breq *rq)
{
    struct broker *b = rq->b;
    const struct kafka_metadata_request *req = rq->body;
    if (req->topics.items == NULL || (rq->api_version == 0 && req->topics.count == 0)) {
        for (uint32_t i = 0; i < b->meta.topic_count; i++)
            if (topic_electing(b, b->meta.topics[i]))
                return true;
        return false;
    }
    for (size_t i = 0; i < req->topics.count; i++) {
        const struct kafka_metadata_request_metadata_request_topic *q = &req->topics.items[i];
        const struct meta_topic *t = NULL;
        if (q->name.ptr != NULL) {
            t = meta_topic_find(&b->meta, q->name.ptr, q->name.len);
        } else {
            struct meta_uuid id;
            memcpy(id.b, q->topic_id.bytes, sizeof(id.b));
            t = meta_topic_find_id(&b->meta, &id);
        }
        if (t != NULL && topic_electing(b, t))
            return true;
    }
    return false;
}

static void wait_end(struct metadata_wait *w)
{
    struct broker *b = w->rq->b;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        b->metadata_waiting = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    loop_timer_stop(b->loop, &w->timer);
    struct breq *rq = w->rq;
    free(w);
    metadata_handle(rq); /* metadata_held: answered now */
}

static void on_wait_timeout(void *ctx)
{
    wait_end(ctx);
}

/* Holds rq (see the top of the file); false when it cannot be held (answer now). */
static bool hold(struct breq *rq)
{
    struct broker *b = rq->b;
    struct metadata_wait *w = xcalloc(1, sizeof(*w));
    w->rq = rq;
    loop_timer_init(&w->timer, on_wait_timeout, w);
    if (loop_timer_start(b->loop, &w->timer,
                         (uint64_t)b->cfg->controller_quorum_election_timeout_ms, 0) < 0) {
        free(w);
        return false;
    }
    w->next = b->metadata_waiting;
    if (w->next != NULL)
        w->next->prev = w;
    b->metadata_waiting = w;
    return true;
}

void metadata_leaders_changed(struct broker *b)
{
    if (b->metadata_waiting != NULL && !loop_timer_active(&b->metadata_recheck))
        (void)loop_timer_start(b->loop, &b->metadata_recheck, 0, 0);
}

void metadata_recheck(void *ctx)
{
    struct broker *b = ctx;
    struct metadata_wait *w = b->metadata_waiting;
    while (w != NULL) {
        struct metadata_wait *next = w->next;
        if (!electing(w->rq))
            wait_end(w);
        w = next;
    }
}

void metadata_finish_all(struct broker *b)
{
    loop_timer_stop(b->loop, &b->metadata_recheck);
    while (b->metadata_waiting != NULL)
        wait_end(b->metadata_waiting);
}

void metadata_handle(struct breq *rq)
{
    struct broker *b = rq->b;
    const struct kafka_metadata_request *req = rq->body;
    struct kafka_metadata_response resp;
    kafka_metadata_response_init(&resp);

    if (!rq->metadata_held && b->serving && electing(rq)) {
        rq->metadata_held = true;
        if (hold(rq))
            return;
    }
    rq->metadata_held = true;

    if (fill_brokers(rq, &resp) < 0) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    resp.cluster_id = proto_str_make(b->meta.cluster_id);
    resp.controller_id = b->controller_id;

    bool all = req->topics.items == NULL || (rq->api_version == 0 && req->topics.count == 0);
    int rc = 0;
    if (all) {
        uint32_t n = b->meta.topic_count;
        resp.topics.count = n;
        resp.topics.items = arena_calloc(&rq->arena, n, sizeof(*resp.topics.items));
        rc = resp.topics.items == NULL ? ERR_TOO_LARGE : 0;
        for (uint32_t i = 0; i < n && rc == 0; i++)
            rc = fill_topic(rq, &resp.topics.items[i], b->meta.topics[i]);
    } else {
        rc = answer_requested(rq, req, &resp);
    }
    if (rc == 1)
        return; /* answered once the topics it creates are applied */
    if (rc < 0)
        breq_fail(rq, rc); /* topics created so far stay, as after any failed answer */
    else
        breq_respond(rq, &resp);
}
