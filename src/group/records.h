/*
 * The records of the internal topic __consumer_offsets: Kafka's own key and value formats, so
 * the topic reads the same as a Kafka broker's (apache/kafka group-coordinator
 * OffsetCommitKey/Value and GroupMetadataKey/Value).
 *
 * Key: int16 version, then for version 0 or 1 (an offset commit) group string, topic string,
 * partition int32; for version 2 (group metadata) group string. Other key versions belong to
 * Kafka's newer group types; decoding reports them as ERR_UNSUPPORTED so a loader skips them.
 * Value (null = tombstone: the key is deleted): int16 version, then the fields of that version.
 * Strings are int16-length (-1 = null), bytes int32-length. We write offset values of version 3
 * and group values of version 3 (the newest non-flexible ones) and read versions 0 to 3.
 *
 * The latest record of a key wins when the topic is read from its start; that is the whole
 * loading rule. Pure code: no I/O. Decoders never trust a length before checking it against the
 * bytes present and base/limits.h, and never assert on input. Decoded slices point into the
 * input bytes; the caller keeps them alive.
 */
#ifndef CHRONIK_GROUP_RECORDS_H
#define CHRONIK_GROUP_RECORDS_H

#include "base/buf.h"
#include "base/bytes.h"

#include <stddef.h>
#include <stdint.h>

enum grec_kind {
    GREC_OFFSET = 1, /* OffsetCommitKey: group, topic, partition */
    GREC_GROUP = 2,  /* GroupMetadataKey: group */
};

struct grec_key {
    enum grec_kind kind;
    struct slice group;
    struct slice topic; /* GREC_OFFSET only */
    int32_t partition;  /* GREC_OFFSET only */
};

struct grec_offset_value {
    int64_t offset;
    int32_t leader_epoch;  /* -1 when unknown */
    struct slice metadata; /* never null in the format: null is written as empty */
    int64_t commit_ms;     /* commitTimestamp */
    int64_t expire_ms;     /* expireTimestamp of version 1 only; -1 otherwise */
};

struct grec_member {
    struct slice member_id;
    struct slice instance_id; /* ptr NULL: a dynamic member */
    struct slice client_id;
    struct slice client_host;
    int32_t rebalance_timeout_ms;
    int32_t session_timeout_ms;
    struct slice subscription; /* the member's metadata for the group's protocol */
    struct slice assignment;
};

struct grec_group_value {
    struct slice protocol_type;
    int32_t generation;
    struct slice protocol;       /* ptr NULL: none chosen */
    struct slice leader;         /* ptr NULL: no leader */
    int64_t state_ms;            /* currentStateTimestamp, -1 if unknown */
    struct grec_member *members; /* decode: xcalloc'd, freed by grec_group_value_free */
    size_t member_count;
};

void grec_offset_key_encode(struct buf *out, struct slice group, struct slice topic,
                            int32_t partition);
void grec_group_key_encode(struct buf *out, struct slice group);
void grec_offset_value_encode(struct buf *out, const struct grec_offset_value *v);
void grec_group_value_encode(struct buf *out, const struct grec_group_value *v);

/* 0, ERR_CORRUPT (bad bytes) or ERR_UNSUPPORTED (a key or value version we do not read). */
int grec_key_decode(struct slice in, struct grec_key *out);
int grec_offset_value_decode(struct slice in, struct grec_offset_value *out);
/* On success out->members is allocated (NULL when there are none); free with
 * grec_group_value_free. On failure nothing is left allocated. */
int grec_group_value_decode(struct slice in, struct grec_group_value *out);
void grec_group_value_free(struct grec_group_value *v);

/* Called for each record of a batch; value.ptr NULL is a tombstone. A non-zero return stops
 * the walk and is returned by grec_batch_walk. */
typedef int (*grec_record_fn)(void *ctx, int64_t offset, struct slice key, struct slice value);

/*
 * Walks the records of one stored batch (whole, validated by the caller with batch_parse).
 * Control batches have no records of ours and are skipped; a compressed batch is
 * ERR_UNSUPPORTED (the coordinator never writes one); a record that does not parse is
 * ERR_CORRUPT.
 */
int grec_batch_walk(const uint8_t *batch, size_t len, grec_record_fn fn, void *ctx);

#endif
