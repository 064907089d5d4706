/*
 * The golden frame table: request and response bodies captured from other Kafka clients and
 * brokers, stored under tests/golden/ (kafkajs fixtures today; frames captured with tshark
 * later). Adding a frame means adding its file and one row here.
 *
 * File format: a JSON object whose "data" array lists the bytes ({"type":"Buffer","data":[...]},
 * as Node.js writes a Buffer). Bodies only: no size prefix and no header; for flexible versions
 * the first byte is the header's empty tagged-field section (kafkajs writes it into the body),
 * so the frame is always header-without-tags + file bytes.
 */
#include "golden.h"

#include "base/alloc.h"
#include "base/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN_FILE_BYTES_MAX (4u * 1024 * 1024)

const struct golden_frame golden_frames[] = {
    /* path below tests/golden/, api key, api version, response */
    {"kafkajs/requests/addOffsetsToTxn/fixtures/v0_request.json", 25, 0, false},
    {"kafkajs/requests/addOffsetsToTxn/fixtures/v0_response.json", 25, 0, true},
    {"kafkajs/requests/addPartitionsToTxn/fixtures/v0_request.json", 24, 0, false},
    {"kafkajs/requests/addPartitionsToTxn/fixtures/v0_response.json", 24, 0, true},
    {"kafkajs/requests/alterConfigs/fixtures/v0_request.json", 33, 0, false},
    {"kafkajs/requests/alterConfigs/fixtures/v0_response.json", 33, 0, true},
    {"kafkajs/requests/alterPartitionReassignments/fixtures/v0_request.json", 45, 0, false},
    {"kafkajs/requests/alterPartitionReassignments/fixtures/v0_response.json", 45, 0, true},
    {"kafkajs/requests/alterPartitionReassignments/fixtures/v0_response_error.json", 45, 0, true},
    {"kafkajs/requests/apiVersions/fixtures/v0_request.json", 18, 0, false},
    {"kafkajs/requests/apiVersions/fixtures/v0_response.json", 18, 0, true},
    {"kafkajs/requests/apiVersions/fixtures/v1_response.json", 18, 1, true},
    {"kafkajs/requests/createAcls/fixtures/v0_request.json", 30, 0, false},
    {"kafkajs/requests/createAcls/fixtures/v0_response.json", 30, 0, true},
    {"kafkajs/requests/createAcls/fixtures/v1_request.json", 30, 1, false},
    {"kafkajs/requests/createAcls/fixtures/v1_response.json", 30, 1, true},
    {"kafkajs/requests/createPartitions/fixtures/v0_request.json", 37, 0, false},
    {"kafkajs/requests/createPartitions/fixtures/v0_response.json", 37, 0, true},
    {"kafkajs/requests/createPartitions/fixtures/v1_request.json", 37, 1, false},
    {"kafkajs/requests/createPartitions/fixtures/v1_response.json", 37, 1, true},
    {"kafkajs/requests/createTopics/fixtures/v0_request.json", 19, 0, false},
    {"kafkajs/requests/createTopics/fixtures/v0_response.json", 19, 0, true},
    {"kafkajs/requests/createTopics/fixtures/v1_request.json", 19, 1, false},
    {"kafkajs/requests/createTopics/fixtures/v1_response.json", 19, 1, true},
    {"kafkajs/requests/createTopics/fixtures/v2_request.json", 19, 2, false},
    {"kafkajs/requests/createTopics/fixtures/v2_response.json", 19, 2, true},
    {"kafkajs/requests/deleteAcls/fixtures/v0_request.json", 31, 0, false},
    {"kafkajs/requests/deleteAcls/fixtures/v0_response.json", 31, 0, true},
    {"kafkajs/requests/deleteAcls/fixtures/v1_request.json", 31, 1, false},
    {"kafkajs/requests/deleteAcls/fixtures/v1_response.json", 31, 1, true},
    {"kafkajs/requests/deleteRecords/fixtures/v0_request.json", 21, 0, false},
    {"kafkajs/requests/deleteRecords/fixtures/v0_response.json", 21, 0, true},
    {"kafkajs/requests/deleteTopics/fixtures/v0_request.json", 20, 0, false},
    {"kafkajs/requests/deleteTopics/fixtures/v0_response.json", 20, 0, true},
    {"kafkajs/requests/deleteTopics/fixtures/v1_request.json", 20, 1, false},
    {"kafkajs/requests/deleteTopics/fixtures/v1_response.json", 20, 1, true},
    {"kafkajs/requests/describeAcls/fixtures/v0_request.json", 29, 0, false},
    {"kafkajs/requests/describeAcls/fixtures/v0_response.json", 29, 0, true},
    {"kafkajs/requests/describeAcls/fixtures/v1_request.json", 29, 1, false},
    {"kafkajs/requests/describeAcls/fixtures/v1_response.json", 29, 1, true},
    {"kafkajs/requests/describeConfigs/fixtures/v0_request.json", 32, 0, false},
    {"kafkajs/requests/describeConfigs/fixtures/v0_request_broker_config.json", 32, 0, false},
    {"kafkajs/requests/describeConfigs/fixtures/v0_request_topic_config.json", 32, 0, false},
    {"kafkajs/requests/describeConfigs/fixtures/v0_response.json", 32, 0, true},
    {"kafkajs/requests/describeConfigs/fixtures/v0_response_broker_config.json", 32, 0, true},
    {"kafkajs/requests/describeConfigs/fixtures/v0_response_topic_config.json", 32, 0, true},
    {"kafkajs/requests/describeConfigs/fixtures/v1_request.json", 32, 1, false},
    {"kafkajs/requests/describeConfigs/fixtures/v1_response.json", 32, 1, true},
    {"kafkajs/requests/describeGroups/fixtures/v0_request.json", 15, 0, false},
    {"kafkajs/requests/describeGroups/fixtures/v0_response.json", 15, 0, true},
    {"kafkajs/requests/describeGroups/fixtures/v1_request.json", 15, 1, false},
    {"kafkajs/requests/describeGroups/fixtures/v1_response.json", 15, 1, true},
    {"kafkajs/requests/endTxn/fixtures/v0_request.json", 26, 0, false},
    {"kafkajs/requests/endTxn/fixtures/v0_response.json", 26, 0, true},
    {"kafkajs/requests/fetch/fixtures/v0_request.json", 1, 0, false},
    {"kafkajs/requests/fetch/fixtures/v0_response.json", 1, 0, true},
    {"kafkajs/requests/fetch/fixtures/v0_response_gzip.json", 1, 0, true},
    {"kafkajs/requests/fetch/fixtures/v10_request.json", 1, 10, false},
    {"kafkajs/requests/fetch/fixtures/v10_response.json", 1, 10, true},
    {"kafkajs/requests/fetch/fixtures/v11_request.json", 1, 11, false},
    {"kafkajs/requests/fetch/fixtures/v11_response.json", 1, 11, true},
    {"kafkajs/requests/fetch/fixtures/v1_request.json", 1, 1, false},
    {"kafkajs/requests/fetch/fixtures/v1_response.json", 1, 1, true},
    {"kafkajs/requests/fetch/fixtures/v1_response_gzip.json", 1, 1, true},
    {"kafkajs/requests/fetch/fixtures/v2_request.json", 1, 2, false},
    {"kafkajs/requests/fetch/fixtures/v2_response.json", 1, 2, true},
    {"kafkajs/requests/fetch/fixtures/v2_response_gzip.json", 1, 2, true},
    {"kafkajs/requests/fetch/fixtures/v2_response_index_out_of_range.json", 1, 2, true},
    {"kafkajs/requests/fetch/fixtures/v2_response_partial_messages_many_partitions.json", 1, 2,
     true},
    {"kafkajs/requests/fetch/fixtures/v3_request.json", 1, 3, false},
    {"kafkajs/requests/fetch/fixtures/v3_response.json", 1, 3, true},
    {"kafkajs/requests/fetch/fixtures/v3_response_gzip.json", 1, 3, true},
    {"kafkajs/requests/fetch/fixtures/v4_from_scala_producer_response.json", 1, 4, true},
    {"kafkajs/requests/fetch/fixtures/v4_request.json", 1, 4, false},
    {"kafkajs/requests/fetch/fixtures/v4_response.json", 1, 4, true},
    {"kafkajs/requests/fetch/fixtures/v4_response_010_format.json", 1, 4, true},
    {"kafkajs/requests/fetch/fixtures/v4_response_gzip.json", 1, 4, true},
    {"kafkajs/requests/fetch/fixtures/v4_response_mixed_formats.json", 1, 4, true},
    {"kafkajs/requests/fetch/fixtures/v4_response_snappy.json", 1, 4, true},
    {"kafkajs/requests/fetch/fixtures/v5_request.json", 1, 5, false},
    {"kafkajs/requests/fetch/fixtures/v5_response.json", 1, 5, true},
    {"kafkajs/requests/fetch/fixtures/v6_request.json", 1, 6, false},
    {"kafkajs/requests/fetch/fixtures/v6_response.json", 1, 6, true},
    {"kafkajs/requests/fetch/fixtures/v7_request.json", 1, 7, false},
    {"kafkajs/requests/fetch/fixtures/v7_response.json", 1, 7, true},
    {"kafkajs/requests/fetch/fixtures/v8_request.json", 1, 8, false},
    {"kafkajs/requests/fetch/fixtures/v8_response.json", 1, 8, true},
    {"kafkajs/requests/fetch/fixtures/v9_request.json", 1, 9, false},
    {"kafkajs/requests/fetch/fixtures/v9_response.json", 1, 9, true},
    {"kafkajs/requests/findCoordinator/fixtures/v0_request.json", 10, 0, false},
    {"kafkajs/requests/findCoordinator/fixtures/v0_response.json", 10, 0, true},
    {"kafkajs/requests/findCoordinator/fixtures/v1_request.json", 10, 1, false},
    {"kafkajs/requests/findCoordinator/fixtures/v1_response.json", 10, 1, true},
    {"kafkajs/requests/findCoordinator/fixtures/v1_response_version_error.json", 10, 1, true},
    {"kafkajs/requests/heartbeat/fixtures/v0_request.json", 12, 0, false},
    {"kafkajs/requests/heartbeat/fixtures/v0_response.json", 12, 0, true},
    {"kafkajs/requests/heartbeat/fixtures/v1_request.json", 12, 1, false},
    {"kafkajs/requests/heartbeat/fixtures/v1_response.json", 12, 1, true},
    {"kafkajs/requests/heartbeat/fixtures/v2_request.json", 12, 2, false},
    {"kafkajs/requests/heartbeat/fixtures/v2_response.json", 12, 2, true},
    {"kafkajs/requests/heartbeat/fixtures/v3_request.json", 12, 3, false},
    {"kafkajs/requests/heartbeat/fixtures/v3_response.json", 12, 3, true},
    {"kafkajs/requests/initProducerId/fixtures/v0_request.json", 22, 0, false},
    {"kafkajs/requests/initProducerId/fixtures/v0_response.json", 22, 0, true},
    {"kafkajs/requests/joinGroup/fixtures/v0_request.json", 11, 0, false},
    {"kafkajs/requests/joinGroup/fixtures/v0_response.json", 11, 0, true},
    {"kafkajs/requests/joinGroup/fixtures/v1_request.json", 11, 1, false},
    {"kafkajs/requests/joinGroup/fixtures/v1_response.json", 11, 1, true},
    {"kafkajs/requests/joinGroup/fixtures/v2_request.json", 11, 2, false},
    {"kafkajs/requests/joinGroup/fixtures/v2_response.json", 11, 2, true},
    {"kafkajs/requests/joinGroup/fixtures/v5_request.json", 11, 5, false},
    {"kafkajs/requests/joinGroup/fixtures/v5_response.json", 11, 5, true},
    {"kafkajs/requests/leaveGroup/fixtures/v0_request.json", 13, 0, false},
    {"kafkajs/requests/leaveGroup/fixtures/v0_response.json", 13, 0, true},
    {"kafkajs/requests/leaveGroup/fixtures/v1_request.json", 13, 1, false},
    {"kafkajs/requests/leaveGroup/fixtures/v1_response.json", 13, 1, true},
    {"kafkajs/requests/leaveGroup/fixtures/v2_request.json", 13, 2, false},
    {"kafkajs/requests/leaveGroup/fixtures/v2_response.json", 13, 2, true},
    {"kafkajs/requests/leaveGroup/fixtures/v3_request.json", 13, 3, false},
    {"kafkajs/requests/leaveGroup/fixtures/v3_response.json", 13, 3, true},
    {"kafkajs/requests/listOffsets/fixtures/v0_request.json", 2, 0, false},
    {"kafkajs/requests/listOffsets/fixtures/v0_response.json", 2, 0, true},
    {"kafkajs/requests/listOffsets/fixtures/v1_request.json", 2, 1, false},
    {"kafkajs/requests/listOffsets/fixtures/v1_response.json", 2, 1, true},
    {"kafkajs/requests/listOffsets/fixtures/v2_request.json", 2, 2, false},
    {"kafkajs/requests/listOffsets/fixtures/v2_response.json", 2, 2, true},
    {"kafkajs/requests/listPartitionReassignments/fixtures/v0_request.json", 46, 0, false},
    {"kafkajs/requests/listPartitionReassignments/fixtures/v0_response.json", 46, 0, true},
    {"kafkajs/requests/metadata/fixtures/v3_response.json", 3, 3, true},
    {"kafkajs/requests/metadata/fixtures/v4_response.json", 3, 4, true},
    {"kafkajs/requests/metadata/fixtures/v5_offline_replicas_response.json", 3, 5, true},
    {"kafkajs/requests/metadata/fixtures/v5_response.json", 3, 5, true},
    {"kafkajs/requests/offsetCommit/fixtures/v0_request.json", 8, 0, false},
    {"kafkajs/requests/offsetCommit/fixtures/v0_request_metadata.json", 8, 0, false},
    {"kafkajs/requests/offsetCommit/fixtures/v0_response.json", 8, 0, true},
    {"kafkajs/requests/offsetCommit/fixtures/v1_request.json", 8, 1, false},
    {"kafkajs/requests/offsetCommit/fixtures/v1_request_metadata.json", 8, 1, false},
    {"kafkajs/requests/offsetCommit/fixtures/v1_response.json", 8, 1, true},
    {"kafkajs/requests/offsetCommit/fixtures/v2_request.json", 8, 2, false},
    {"kafkajs/requests/offsetCommit/fixtures/v2_request_metadata.json", 8, 2, false},
    {"kafkajs/requests/offsetCommit/fixtures/v2_response.json", 8, 2, true},
    {"kafkajs/requests/offsetCommit/fixtures/v3_request.json", 8, 3, false},
    {"kafkajs/requests/offsetCommit/fixtures/v3_request_metadata.json", 8, 3, false},
    {"kafkajs/requests/offsetCommit/fixtures/v3_response.json", 8, 3, true},
    {"kafkajs/requests/offsetCommit/fixtures/v4_request.json.json", 8, 4, false},
    {"kafkajs/requests/offsetCommit/fixtures/v4_request_metadata.json", 8, 4, false},
    {"kafkajs/requests/offsetCommit/fixtures/v4_response.json", 8, 4, true},
    {"kafkajs/requests/offsetCommit/fixtures/v5_request.json", 8, 5, false},
    {"kafkajs/requests/offsetCommit/fixtures/v5_request_metadata.json", 8, 5, false},
    {"kafkajs/requests/offsetCommit/fixtures/v5_response.json", 8, 5, true},
    {"kafkajs/requests/offsetFetch/fixtures/v1_request.json", 9, 1, false},
    {"kafkajs/requests/offsetFetch/fixtures/v1_response.json", 9, 1, true},
    {"kafkajs/requests/offsetFetch/fixtures/v2_request.json", 9, 2, false},
    {"kafkajs/requests/offsetFetch/fixtures/v2_response.json", 9, 2, true},
    {"kafkajs/requests/offsetFetch/fixtures/v3_request.json", 9, 3, false},
    {"kafkajs/requests/offsetFetch/fixtures/v3_response.json", 9, 3, true},
    {"kafkajs/requests/produce/fixtures/v2_request.json", 0, 2, false},
    {"kafkajs/requests/produce/fixtures/v2_request_gzip_darwin.json", 0, 2, false},
    {"kafkajs/requests/produce/fixtures/v2_request_gzip_linux.json", 0, 2, false},
    {"kafkajs/requests/produce/fixtures/v2_response.json", 0, 2, true},
    {"kafkajs/requests/produce/fixtures/v2_response_gzip.json", 0, 2, true},
    {"kafkajs/requests/produce/fixtures/v3_request.json", 0, 3, false},
    {"kafkajs/requests/produce/fixtures/v3_response.json", 0, 3, true},
    {"kafkajs/requests/produce/fixtures/v4_request.json", 0, 4, false},
    {"kafkajs/requests/produce/fixtures/v4_response.json", 0, 4, true},
    {"kafkajs/requests/produce/fixtures/v5_request.json", 0, 5, false},
    {"kafkajs/requests/produce/fixtures/v5_response.json", 0, 5, true},
    {"kafkajs/requests/produce/fixtures/v6_request.json", 0, 6, false},
    {"kafkajs/requests/produce/fixtures/v6_response.json", 0, 6, true},
    {"kafkajs/requests/produce/fixtures/v7_request.json", 0, 7, false},
    {"kafkajs/requests/produce/fixtures/v7_response.json", 0, 7, true},
    {"kafkajs/requests/saslAuthenticate/fixtures/v0_request_plain.json", 36, 0, false},
    {"kafkajs/requests/saslAuthenticate/fixtures/v0_request_scram256.json", 36, 0, false},
    {"kafkajs/requests/saslAuthenticate/fixtures/v0_response_plain.json", 36, 0, true},
    {"kafkajs/requests/saslAuthenticate/fixtures/v0_response_scram256.json", 36, 0, true},
    {"kafkajs/requests/saslAuthenticate/fixtures/v1_response_plain.json", 36, 1, true},
    {"kafkajs/requests/saslAuthenticate/fixtures/v1_response_scram256.json", 36, 1, true},
    {"kafkajs/requests/syncGroup/fixtures/v0_request.json", 14, 0, false},
    {"kafkajs/requests/syncGroup/fixtures/v0_response.json", 14, 0, true},
    {"kafkajs/requests/syncGroup/fixtures/v0_response_empty_member_assignment.json", 14, 0, true},
    {"kafkajs/requests/syncGroup/fixtures/v1_request.json", 14, 1, false},
    {"kafkajs/requests/syncGroup/fixtures/v1_response.json", 14, 1, true},
    {"kafkajs/requests/syncGroup/fixtures/v2_request.json", 14, 2, false},
    {"kafkajs/requests/syncGroup/fixtures/v2_response.json", 14, 2, true},
    {"kafkajs/requests/syncGroup/fixtures/v3_request.json", 14, 3, false},
    {"kafkajs/requests/syncGroup/fixtures/v3_response.json", 14, 3, true},
    {"kafkajs/requests/txnOffsetCommit/fixtures/v0_request.json", 28, 0, false},
    {"kafkajs/requests/txnOffsetCommit/fixtures/v0_response.json", 28, 0, true},
};

const size_t golden_frame_count = sizeof(golden_frames) / sizeof(golden_frames[0]);

int golden_load(const char *path, uint8_t **out, size_t *len_out)
{
    char full[1024];
    int n = snprintf(full, sizeof(full), "%s/%s", GOLDEN_DIR, path);
    if (n < 0 || (size_t)n >= sizeof(full))
        return ERR_INVALID;
    FILE *f = fopen(full, "rb");
    if (f == NULL)
        return -errno;
    char *text = xmalloc(GOLDEN_FILE_BYTES_MAX + 1);
    size_t text_len = fread(text, 1, GOLDEN_FILE_BYTES_MAX, f);
    fclose(f);
    text[text_len] = '\0';
    uint8_t *bytes = xmalloc(text_len + 1);
    size_t len = 0;
    int err = ERR_CORRUPT;
    const char *p = strstr(text, "\"data\"");
    p = p != NULL ? strchr(p, '[') : NULL;
    if (p == NULL)
        goto done;
    p++;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ',')
            p++;
        if (*p == ']')
            break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 255)
            goto done;
        bytes[len++] = (uint8_t)v;
        p = end;
    }
    err = 0;
done:
    free(text);
    if (err != 0) {
        free(bytes);
        return err;
    }
    *out = bytes;
    *len_out = len;
    return 0;
}
