/*
 * ApiVersions: the APIs and versions Chronik implements, exactly as the dispatch table in
 * request.c has them, so a client never picks a version we cannot serve.
 */
#include "base/assert.h"
#include "broker/broker_internal.h"

void api_versions_fill(struct breq *rq, struct kafka_api_versions_response *resp)
{
    size_t n = 0;
    for (size_t k = 0; k < proto_api_count(); k++) {
        int16_t min, max;
        if (api_versions_supported((int16_t)k, &min, &max))
            n++;
    }
    resp->api_keys.items = arena_calloc(&rq->arena, n, sizeof(*resp->api_keys.items));
    ASSERT(resp->api_keys.items != NULL);
    resp->api_keys.count = 0;
    for (size_t k = 0; k < proto_api_count(); k++) {
        int16_t min, max;
        if (!api_versions_supported((int16_t)k, &min, &max))
            continue;
        struct kafka_api_versions_response_api_version *v =
            &resp->api_keys.items[resp->api_keys.count++];
        v->api_key = (int16_t)k;
        v->min_version = min;
        v->max_version = max;
    }
}

void api_versions_handle(struct breq *rq)
{
    struct kafka_api_versions_response resp;
    kafka_api_versions_response_init(&resp);
    api_versions_fill(rq, &resp);
    breq_respond(rq, &resp);
}
