/*
 * Metadata: this node as the cluster's only broker and controller, and the topics asked for
 * (every topic for a null list, or an empty one in version 0), creating missing ones when both
 * the request and auto.create.topics.enable allow it.
 */
#include "base/assert.h"
#include "broker/broker_internal.h"

#include <string.h>

static void *must(void *p)
{
    /* Response memory comes from the request arena, whose bound is far above any response
     * this handler builds for the topics a node can hold. */
    ASSERT(p != NULL);
    return p;
}

static void fill_topic(struct breq *rq, struct kafka_metadata_response_metadata_response_topic *out,
                       const struct meta_topic *t)
{
    out->error_code = KAFKA_NONE;
    out->name = (struct proto_str){.ptr = t->name, .len = strlen(t->name)};
    memcpy(out->topic_id.bytes, t->id.b, sizeof(out->topic_id.bytes));
    out->is_internal = strcmp(t->name, BROKER_OFFSETS_TOPIC) == 0;
    out->partitions.count = t->partition_count;
    out->partitions.items =
        must(arena_calloc(&rq->arena, t->partition_count, sizeof(*out->partitions.items)));
    for (uint32_t p = 0; p < t->partition_count; p++) {
        const struct meta_partition *mp = &t->partitions[p];
        struct kafka_metadata_response_metadata_response_partition *op = &out->partitions.items[p];
        op->error_code = KAFKA_NONE;
        op->partition_index = (int32_t)p;
        op->leader_id = mp->leader;
        op->leader_epoch = mp->leader_epoch;
        op->replica_nodes.count = mp->replica_count;
        op->replica_nodes.items = (int32_t *)mp->replicas;
        op->isr_nodes.count = mp->isr_count;
        op->isr_nodes.items = (int32_t *)mp->isr;
        op->offline_replicas.count = 0;
        op->offline_replicas.items = must(arena_alloc(&rq->arena, 0));
        if (broker_replica(rq->b, t->name, strlen(t->name), (int32_t)p) == NULL) {
            /* Its log refused to open (damaged): offline, as Kafka reports a failed log dir. */
            op->error_code = KAFKA_LEADER_NOT_AVAILABLE;
            op->leader_id = -1;
            op->offline_replicas.items = op->replica_nodes.items;
            op->offline_replicas.count = op->replica_nodes.count;
        }
    }
    out->topic_authorized_operations = INT32_MIN;
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

static void answer_requested(struct breq *rq, const struct kafka_metadata_request *req,
                             struct kafka_metadata_response *resp)
{
    struct broker *b = rq->b;
    bool may_create =
        broker_auto_create_allowed(b) && (rq->api_version < 4 || req->allow_auto_topic_creation);
    size_t n = req->topics.count;
    resp->topics.count = n;
    resp->topics.items = must(arena_calloc(&rq->arena, n, sizeof(*resp->topics.items)));
    for (size_t i = 0; i < n; i++) {
        const struct kafka_metadata_request_metadata_request_topic *q = &req->topics.items[i];
        struct kafka_metadata_response_metadata_response_topic *out = &resp->topics.items[i];
        if (q->name.ptr == NULL) {
            struct meta_uuid id;
            memcpy(id.b, q->topic_id.bytes, sizeof(id.b));
            const struct meta_topic *t = meta_topic_find_id(&b->meta, &id);
            if (t == NULL)
                fill_missing(out, q->name, &q->topic_id, KAFKA_UNKNOWN_TOPIC_ID);
            else
                fill_topic(rq, out, t);
            continue;
        }
        const struct meta_topic *t = meta_topic_find(&b->meta, q->name.ptr, q->name.len);
        if (t == NULL && !meta_topic_name_valid(q->name.ptr, q->name.len)) {
            fill_missing(out, q->name, NULL, KAFKA_INVALID_TOPIC_EXCEPTION);
            continue;
        }
        if (t == NULL && may_create) {
            const char *why = NULL;
            int err = broker_create_topic(b, q->name.ptr, b->cfg->num_partitions,
                                          (int16_t)b->cfg->default_replication_factor, NULL, NULL,
                                          0, false, &why);
            if (err != KAFKA_NONE && err != KAFKA_TOPIC_ALREADY_EXISTS) {
                fill_missing(out, q->name, NULL, (int16_t)err);
                continue;
            }
            t = meta_topic_find(&b->meta, q->name.ptr, q->name.len);
        }
        if (t == NULL)
            fill_missing(out, q->name, NULL, KAFKA_UNKNOWN_TOPIC_OR_PARTITION);
        else
            fill_topic(rq, out, t);
    }
}

void metadata_handle(struct breq *rq)
{
    struct broker *b = rq->b;
    const struct kafka_metadata_request *req = rq->body;
    struct kafka_metadata_response resp;
    kafka_metadata_response_init(&resp);

    struct kafka_metadata_response_metadata_response_broker *me =
        must(arena_calloc(&rq->arena, 1, sizeof(*me)));
    me->node_id = b->cfg->node_id;
    me->host = proto_str_make(b->cfg->advertised.host);
    me->port = b->cfg->advertised.port;
    me->rack = (struct proto_str){.ptr = NULL, .len = 0};
    resp.brokers.items = me;
    resp.brokers.count = 1;
    resp.cluster_id = proto_str_make(b->meta.cluster_id);
    resp.controller_id = b->cfg->node_id;

    bool all = req->topics.items == NULL || (rq->api_version == 0 && req->topics.count == 0);
    if (all) {
        uint32_t n = b->meta.topic_count;
        resp.topics.count = n;
        resp.topics.items = must(arena_calloc(&rq->arena, n, sizeof(*resp.topics.items)));
        for (uint32_t i = 0; i < n; i++)
            fill_topic(rq, &resp.topics.items[i], b->meta.topics[i]);
    } else {
        answer_requested(rq, req, &resp);
    }
    breq_respond(rq, &resp);
}
