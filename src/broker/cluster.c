/*
 * DescribeCluster: the alive brokers and the controller as the metadata image has them (the
 * same as Metadata, from nodes.c).
 *
 * The Kafka endpoint is a broker endpoint (KIP-919): a request for the controllers' endpoint
 * type is answered MISMATCHED_ENDPOINT_TYPE as a Kafka broker answers it, and any other unknown
 * type UNSUPPORTED_ENDPOINT_TYPE. Without an authorizer every operation is allowed, so asked-for
 * cluster authorized operations are every operation Kafka defines on the cluster resource.
 *
 * Never changes anything.
 */
#include "base/assert.h"
#include "broker/admin.h"
#include "broker/broker_internal.h"

/* KIP-919's endpoint types. */
#define ENDPOINT_BROKERS     1
#define ENDPOINT_CONTROLLERS 2

/* Kafka's AclOperation codes that apply to the cluster resource. */
enum {
    ACL_CREATE = 5,
    ACL_ALTER = 7,
    ACL_DESCRIBE = 8,
    ACL_CLUSTER_ACTION = 9,
    ACL_DESCRIBE_CONFIGS = 10,
    ACL_ALTER_CONFIGS = 11,
    ACL_IDEMPOTENT_WRITE = 12,
};

#define CLUSTER_OPERATIONS_ALL                                                                \
    ((1 << ACL_CREATE) | (1 << ACL_ALTER) | (1 << ACL_DESCRIBE) | (1 << ACL_CLUSTER_ACTION) | \
     (1 << ACL_DESCRIBE_CONFIGS) | (1 << ACL_ALTER_CONFIGS) | (1 << ACL_IDEMPOTENT_WRITE))

void describe_cluster_handle(struct breq *rq)
{
    const struct broker *b = rq->b;
    const struct kafka_describe_cluster_request *req = rq->body;
    struct kafka_describe_cluster_response resp;
    kafka_describe_cluster_response_init(&resp);
    int8_t type = rq->api_version >= 1 ? req->endpoint_type : ENDPOINT_BROKERS;
    resp.endpoint_type = type;
    resp.cluster_id = proto_str_make(b->meta.cluster_id);
    resp.controller_id = b->controller_id;
    resp.cluster_authorized_operations =
        req->include_cluster_authorized_operations ? CLUSTER_OPERATIONS_ALL : INT32_MIN;
    ASSERT(resp.cluster_id.len > 0);

    size_t n = 0;
    struct broker_node *nodes = type == ENDPOINT_BROKERS ? broker_nodes_alive(rq, &n) : NULL;
    struct kafka_describe_cluster_response_describe_cluster_broker *brokers =
        type != ENDPOINT_BROKERS || nodes != NULL
            ? arena_calloc(&rq->arena, n + 1, sizeof(*brokers))
            : NULL;
    if (brokers == NULL) {
        breq_abort(rq);
        return;
    }
    resp.brokers.items = brokers;
    resp.brokers.count = n;
    for (size_t i = 0; i < n; i++) {
        brokers[i].broker_id = nodes[i].id;
        brokers[i].host = proto_str_make(nodes[i].host);
        brokers[i].port = nodes[i].port;
        brokers[i].rack = proto_str_make(nodes[i].rack);
    }
    if (type != ENDPOINT_BROKERS) {
        resp.error_code = type == ENDPOINT_CONTROLLERS ? KAFKA_MISMATCHED_ENDPOINT_TYPE
                                                       : KAFKA_UNSUPPORTED_ENDPOINT_TYPE;
        resp.error_message =
            type == ENDPOINT_CONTROLLERS
                ? proto_str_make("The request was sent to an endpoint of type BROKER, but we "
                                 "wanted an endpoint of type CONTROLLER")
                : admin_printf(&rq->arena, "Unsupported endpoint type %d", (int)type);
    }
    breq_respond(rq, &resp);
}
