/*
 * The metadata state machine: Kafka's KRaft metadata records (proto/metarec.h) applied to the
 * metadata image (cluster/metadata.h), the image written back as records (a snapshot), and the
 * controller's record builders. Pure code: no I/O, no clock, no randomness of its own.
 *
 * Apply: one record at a time, in log order. A record that does not apply (an unknown topic id,
 * a partition index past the end, an epoch that does not match the broker's registration, a
 * leader outside the ISR, ...) returns an error and leaves the image unchanged. Such an error is
 * not fatal: a committed record is the same on every node and apply is deterministic, so every
 * node refuses it alike and the images stay equal; stopping instead would make one bad record a
 * cluster-wide outage that comes back at every restart (the record is committed and replays).
 * The caller counts and logs refusals (Kafka's brokers do the same: metadata-apply-error-count).
 * The controller never proposes a record it has not checked against its own image, so a refusal
 * means a bug or a version skew.
 *
 * Records in a batch: every one is tried in order; a refused one is skipped. The controller puts
 * the records of one request in one batch (a TopicRecord with all its PartitionRecords and
 * ConfigRecords), so between batches every topic is whole.
 *
 * Ownership: struct meta_records owns its bytes; the image is the caller's.
 */
#ifndef CHRONIK_CLUSTER_META_RECORDS_H
#define CHRONIK_CLUSTER_META_RECORDS_H

#include "base/buf.h"
#include "base/bytes.h"
#include "cluster/metadata.h"
#include "proto/metarec.h"

#include <stdbool.h>
#include <stdint.h>

/* PartitionChangeRecord.Leader: -2 keeps the leader (and its epoch); -1 means none (Kafka's
 * LeaderConstants.NO_LEADER_CHANGE and NO_LEADER). */
#define META_NO_LEADER_CHANGE (-2)
#define META_NO_LEADER        (-1)

/* ConfigRecord.ResourceType values (Kafka's ConfigResource.Type) the image keeps. */
#define META_RESOURCE_TOPIC  2
#define META_RESOURCE_BROKER 4

/* ---- record lists ------------------------------------------------------------------------- */

/* Records to propose (or a snapshot): framed metarec values back to back. */
struct meta_records {
    struct buf bytes;
    uint32_t count;
    uint32_t cap;
    size_t *ends; /* where each record's value ends in bytes */
};

void meta_records_init(struct meta_records *r);
void meta_records_deinit(struct meta_records *r);
void meta_records_reset(struct meta_records *r);
/* Appends a record (body: the type's generated struct) in the version Chronik writes for its
 * type (the lowest that carries every field the image keeps). */
void meta_records_add(struct meta_records *r, int16_t type, const void *body);
struct slice meta_records_at(const struct meta_records *r, uint32_t i);
/* Appends one uncompressed RecordBatch of records [first, first + n) (null keys, the records as
 * values) to out, as a proposal to the metadata group. ERR_INVALID for n == 0, ERR_TOO_LARGE
 * over LOG_BATCH_BYTES_MAX. */
int meta_records_batch(const struct meta_records *r, uint32_t first, uint32_t n,
                       int64_t timestamp_ms, struct buf *out);

/* ---- apply -------------------------------------------------------------------------------- */

/* Applies one decoded record. 0, or (image unchanged) ERR_NOT_FOUND for an unknown topic,
 * broker or partition, ERR_INVALID for a record that breaks the image's rules, ERR_TOO_LARGE
 * past a bound, ERR_UNSUPPORTED for what Chronik does not keep (reassignments, other config
 * resources). */
int meta_apply(struct meta_image *img, const struct metarec *rec);
/* Decodes one record value (memory from scratch, reset by the caller) and applies it. */
int meta_apply_value(struct meta_image *img, struct arena *scratch, struct slice value);

struct meta_apply_result {
    uint32_t applied;
    uint32_t refused;
    int first_error;            /* 0 when nothing was refused */
    int64_t first_error_offset; /* the refused record's offset in the log */
};

/*
 * Applies the records of one stored RecordBatch (bytes that passed batch_parse, as the Raft log
 * hands them to apply). Control batches (a new leader's no-op) hold no metadata and are skipped.
 * Returns 0 when every record applied; otherwise the first record's error, having applied the
 * others (see above); ERR_CORRUPT / ERR_UNSUPPORTED for a batch that does not parse or is
 * compressed (nothing applied). res may be NULL; it is added to, not reset.
 */
int meta_apply_batch(struct meta_image *img, struct slice batch, struct meta_apply_result *res);

/* ---- snapshot ----------------------------------------------------------------------------- */

/* Appends the whole image as records (features, brokers, topics with their partitions and
 * configs, broker configs, the producer-id block): applied to an empty image, they make one
 * meta_image_equal to img. The cluster id and version are not records (meta.properties holds
 * the cluster id; the version counts local changes). */
void meta_snapshot(const struct meta_image *img, struct meta_records *out);

/* The RegisterBrokerRecord that describes b (what a snapshot writes and a registration
 * proposes). */
void meta_records_add_broker(struct meta_records *out, const struct meta_broker *b);
struct proto_uuid meta_uuid_to_proto(const struct meta_uuid *u);
/* Equal content: everything records carry (all but cluster_id, version and the lookup cache). */
bool meta_image_equal(const struct meta_image *a, const struct meta_image *b);

const struct meta_broker *meta_broker_find(const struct meta_image *img, int32_t id);
/* The level of a finalized feature, 0 when not finalized. */
int16_t meta_feature_level(const struct meta_image *img, const char *name);

#endif
