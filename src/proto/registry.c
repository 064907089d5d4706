/*
 * The API registry lookups and Kafka's header-version rules, over the generated proto_apis
 * table (indexed by api key without gaps, checked by the generator).
 *
 * Never: guess a version for an API key that is not in the table.
 */
#include "proto/gen/kafka.h"

#include "base/assert.h"
#include "base/error.h"

/* Kafka's api keys for the two header exceptions (ApiKeys.java). */
#define API_KEY_CONTROLLED_SHUTDOWN 7
#define API_KEY_API_VERSIONS        18

STATIC_ASSERT(PROTO_API_COUNT > API_KEY_API_VERSIONS, "the registry covers ApiVersions");

const struct proto_api *proto_api_get(int16_t api_key)
{
    if (api_key < 0 || (size_t)api_key >= PROTO_API_COUNT)
        return NULL;
    const struct proto_api *api = &proto_apis[api_key];
    ASSERT(api->api_key == api_key);
    return api;
}

size_t proto_api_count(void)
{
    return PROTO_API_COUNT;
}

int proto_request_header_version(int16_t api_key, int16_t api_version)
{
    const struct proto_api *api = proto_api_get(api_key);
    if (api == NULL)
        return ERR_UNSUPPORTED;
    if (api_key == API_KEY_CONTROLLED_SHUTDOWN && api_version == 0)
        return 0;
    return api_version >= api->flexible_min ? 2 : 1;
}

int proto_response_header_version(int16_t api_key, int16_t api_version)
{
    const struct proto_api *api = proto_api_get(api_key);
    if (api == NULL)
        return ERR_UNSUPPORTED;
    /* KIP-511: a client that does not know the broker's versions must always be able to read
     * the ApiVersions response header, so it never carries tagged fields. */
    if (api_key == API_KEY_API_VERSIONS)
        return 0;
    return api_version >= api->flexible_min ? 1 : 0;
}
