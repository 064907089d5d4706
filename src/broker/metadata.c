/*
 * Metadata: this node as the cluster's only broker and controller, and the topics asked for
 * (every topic for a null list, or an empty one in version 0), creating missing ones when both
 * the request and auto.create.topics.enable allow it (see auto_create for the bounds).
 */
#include "base/error.h"
#include "broker/broker_internal.h"

#include <string.h>

/* Fills out for t from the request's memory; ERR_TOO_LARGE when that is spent. */
static int fill_topic(struct breq *rq, struct kafka_metadata_response_metadata_response_topic *out,
                      const struct meta_topic *t)
{
    out->error_code = KAFKA_NONE;
    out->name = (struct proto_str){.ptr = t->name, .len = strlen(t->name)};
    memcpy(out->topic_id.bytes, t->id.b, sizeof(out->topic_id.bytes));
    out->is_internal = strcmp(t->name, BROKER_OFFSETS_TOPIC) == 0;
    out->partitions.count = t->partition_count;
    out->partitions.items =
        arena_calloc(&rq->arena, t->partition_count, sizeof(*out->partitions.items));
    if (out->partitions.items == NULL)
        return ERR_TOO_LARGE;
    for (uint32_t p = 0; p < t->partition_count; p++) {
        const struct meta_partition *mp = &t->partitions[p];
        struct kafka_metadata_response_metadata_response_partition *op = &out->partitions.items[p];
        op->error_code = KAFKA_NONE;
        op->partition_index = (int32_t)p;
        op->leader_id = mp->leader;
        op->leader_epoch = mp->leader_epoch;
        if (broker_replica_error(rq->b, t->name, strlen(t->name), (int32_t)p) ==
            KAFKA_NOT_LEADER_OR_FOLLOWER) {
            /* Still opening at start-up (and now opened next): no leader yet, as Kafka shows a
             * partition it is still loading, so clients wait and refresh instead of sending. */
            op->error_code = KAFKA_LEADER_NOT_AVAILABLE;
            op->leader_id = -1;
        }
        op->replica_nodes.count = mp->replica_count;
        op->replica_nodes.items = (int32_t *)mp->replicas;
        op->isr_nodes.count = mp->isr_count;
        op->isr_nodes.items = (int32_t *)mp->isr;
        op->offline_replicas.count = 0;
        op->offline_replicas.items = arena_alloc(&rq->arena, 0); /* n == 0 never fails */
        if (broker_replica_error(rq->b, t->name, strlen(t->name), (int32_t)p) ==
            KAFKA_KAFKA_STORAGE_ERROR) {
            /* Its log refused to open (damaged): offline, as Kafka reports a failed log dir. */
            op->error_code = KAFKA_LEADER_NOT_AVAILABLE;
            op->leader_id = -1;
            op->offline_replicas.items = op->replica_nodes.items;
            op->offline_replicas.count = op->replica_nodes.count;
        }
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

void metadata_handle(struct breq *rq)
{
    struct broker *b = rq->b;
    const struct kafka_metadata_request *req = rq->body;
    struct kafka_metadata_response resp;
    kafka_metadata_response_init(&resp);

    struct kafka_metadata_response_metadata_response_broker *me =
        arena_calloc(&rq->arena, 1, sizeof(*me));
    if (me == NULL) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    me->node_id = b->cfg->node_id;
    me->host = proto_str_make(b->cfg->advertised.host);
    me->port = b->cfg->advertised.port;
    /* broker.rack; null when not set, as Kafka answers. */
    me->rack = b->cfg->rack[0] != '\0' ? proto_str_make(b->cfg->rack)
                                       : (struct proto_str){.ptr = NULL, .len = 0};
    resp.brokers.items = me;
    resp.brokers.count = 1;
    resp.cluster_id = proto_str_make(b->meta.cluster_id);
    resp.controller_id = b->cfg->node_id;

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
