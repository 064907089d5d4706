/*
 * Kafka's RecordBatch v2 (magic 2): parsing, validation, offset stamping and a small encoder.
 *
 * Owns: the byte layout of one batch and the rules a batch must satisfy before the log stores
 * it. Pure code: no I/O, no allocation except the builder's output buffer.
 *
 * Layout (big-endian): baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8,
 * crc u32, attributes i16, lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64,
 * producerId i64, producerEpoch i16, baseSequence i32, recordCount i32 (61 bytes), records.
 * batchLength counts the bytes after itself; the CRC-32C covers attributes..end, so baseOffset
 * and partitionLeaderEpoch can be stamped in place without recomputing it.
 *
 * Invariants: a parse never reads a byte before checking it is there, never trusts a length
 * or count before checking it against the bytes present and base/limits.h, and never asserts
 * on input. Must never decompress: compressed records are checked by header and CRC here, and
 * record by record by records_check (log/compress.h) on the produce path.
 */
#ifndef CHRONIK_LOG_BATCH_H
#define CHRONIK_LOG_BATCH_H

#include "base/buf.h"
#include "base/bytes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Field offsets inside a batch. */
#define BATCH_OFF_BASE_OFFSET     0u
#define BATCH_OFF_LENGTH          8u
#define BATCH_OFF_LEADER_EPOCH    12u
#define BATCH_OFF_MAGIC           16u
#define BATCH_OFF_CRC             17u
#define BATCH_OFF_ATTRIBUTES      21u
#define BATCH_OFF_LAST_DELTA      23u
#define BATCH_OFF_BASE_TIMESTAMP  27u
#define BATCH_OFF_MAX_TIMESTAMP   35u
#define BATCH_OFF_PRODUCER_ID     43u
#define BATCH_OFF_PRODUCER_EPOCH  51u
#define BATCH_OFF_BASE_SEQUENCE   53u
#define BATCH_OFF_RECORD_COUNT    57u
#define BATCH_LENGTH_PREFIX_BYTES 12u /* baseOffset + batchLength: not counted in batchLength */

#define BATCH_MAGIC 2

/* Attribute bits. */
#define BATCH_ATTR_CODEC_MASK    0x07
#define BATCH_ATTR_LOG_APPEND_TS 0x08
#define BATCH_ATTR_TRANSACTIONAL 0x10
#define BATCH_ATTR_CONTROL       0x20

enum batch_codec {
    BATCH_CODEC_NONE = 0,
    BATCH_CODEC_GZIP = 1,
    BATCH_CODEC_SNAPPY = 2,
    BATCH_CODEC_LZ4 = 3,
    BATCH_CODEC_ZSTD = 4,
};

struct batch_header {
    int64_t base_offset;
    int32_t batch_length; /* bytes after the batchLength field */
    int32_t leader_epoch; /* partitionLeaderEpoch */
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp_ms;
    int64_t max_timestamp_ms;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t record_count;
};

/* Whole bytes of the batch, the 12-byte prefix included. */
static inline uint64_t batch_total_bytes(const struct batch_header *h)
{
    return BATCH_LENGTH_PREFIX_BYTES + (uint64_t)(uint32_t)h->batch_length;
}
static inline int64_t batch_last_offset(const struct batch_header *h)
{
    return h->base_offset + h->last_offset_delta;
}
static inline enum batch_codec batch_codec(const struct batch_header *h)
{
    return (enum batch_codec)(h->attributes & BATCH_ATTR_CODEC_MASK);
}
static inline bool batch_is_control(const struct batch_header *h)
{
    return (h->attributes & BATCH_ATTR_CONTROL) != 0;
}
static inline bool batch_is_transactional(const struct batch_header *h)
{
    return (h->attributes & BATCH_ATTR_TRANSACTIONAL) != 0;
}

/*
 * Decodes and checks the 61-byte header only (no CRC, no records): batchLength within
 * [49, LOG_BATCH_BYTES_MAX - 12], magic 2, a known codec, lastOffsetDelta >= 0,
 * 0 <= recordCount <= lastOffsetDelta + 1, a control batch holding one record, and
 * baseOffset >= 0. Returns 0, ERR_INCOMPLETE when len < 61, ERR_TOO_LARGE, ERR_UNSUPPORTED
 * (magic or codec) or ERR_CORRUPT. Whether the whole batch is present is not checked here.
 */
int batch_header_parse(const uint8_t *p, size_t len, struct batch_header *out);

/*
 * Full validation of the batch at the start of p: the header as above, the whole batch
 * present (else ERR_INCOMPLETE), the CRC, and for an uncompressed batch every record (lengths
 * adding up exactly, offset deltas increasing within [0, lastOffsetDelta], recordCount equal
 * to the records found). Bytes after the batch are ignored; batch_total_bytes(out) says where
 * it ends.
 */
int batch_parse(const uint8_t *p, size_t len, struct batch_header *out);

/*
 * The header rules Kafka (LogValidator.validateBatch) adds for a batch a client produces, on
 * top of batch_header_parse's: at least one record, recordCount equal to lastOffsetDelta + 1 (no
 * gaps: only compaction makes them), no control batch (only the broker writes those), and a
 * baseSequence >= 0 when a producerId is set. Returns 0 or ERR_INVALID (INVALID_RECORD).
 */
int batch_check_produced(const struct batch_header *h);

/* CRC-32C of the CRC'd region (attributes..end) of a batch whose header is valid. */
uint32_t batch_compute_crc(const uint8_t *p, const struct batch_header *h);

/* Writes baseOffset and partitionLeaderEpoch in place; both lie outside the CRC. */
void batch_stamp(uint8_t *p, int64_t base_offset, int32_t leader_epoch);

/* Walks a buffer holding consecutive batches (a produce request's records field). */
struct batch_iter {
    const uint8_t *pos;
    const uint8_t *end;
};

static inline void batch_iter_init(struct batch_iter *it, struct slice bytes)
{
    it->pos = bytes.ptr;
    it->end = bytes.ptr + bytes.len;
}
/* Validates the next batch with batch_parse. Returns 1 and sets *batch and *h, 0 at the end,
 * or a negative error (ERR_INCOMPLETE for a trailing partial batch); errors are not sticky but
 * the iterator does not advance past a bad batch. */
int batch_iter_next(struct batch_iter *it, struct slice *batch, struct batch_header *h);

/* One record of a records section (a batch's, or its decompressed payload). Slices point into
 * the walked bytes; key or value with a NULL ptr is null. */
struct batch_rec {
    int64_t timestamp_delta; /* from the batch's baseTimestamp */
    int32_t offset_delta;    /* from the batch's baseOffset */
    struct slice key;
    struct slice value;
    int32_t header_count;
    struct slice headers; /* header_count (key, value) pairs, still encoded */
};

/* Walks the records of an uncompressed records section. */
struct batch_rec_iter {
    struct reader r;
};

void batch_rec_iter_init(struct batch_rec_iter *it, struct slice records);
/* 1 and *out for the next record, 0 at the end, ERR_CORRUPT for bytes that are not records
 * (sticky). */
int batch_rec_iter_next(struct batch_rec_iter *it, struct batch_rec *out);

/* One record for the builder. A NULL ptr in key or value encodes a null (length -1). */
struct batch_record_header {
    struct slice key;
    struct slice value;
};
struct batch_record {
    struct slice key;
    struct slice value;
    int64_t timestamp_ms;
    const struct batch_record_header *headers;
    size_t header_count;
};

struct batch_build_opts {
    int64_t base_offset;
    int32_t leader_epoch;
    int16_t attributes; /* codec bits must be 0: the builder does not compress */
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
};

/*
 * Appends one uncompressed batch of n records (offset deltas 0..n-1, baseTimestamp the first
 * record's timestamp) with a correct CRC to out. The caller owns out. Returns 0, ERR_INVALID
 * for n == 0 or codec bits set, ERR_TOO_LARGE over LOG_BATCH_BYTES_MAX.
 */
int batch_build(struct buf *out, const struct batch_build_opts *opts,
                const struct batch_record *records, size_t n);

/*
 * Transaction markers: a control batch (attributes TRANSACTIONAL | CONTROL) of one record whose
 * key is (version i16 = 0, type i16: 0 ABORT, 1 COMMIT) and whose value is Kafka's
 * EndTransactionMarker (version i16 = 0, coordinatorEpoch i32), both big-endian.
 */
#define BATCH_CONTROL_ABORT  0
#define BATCH_CONTROL_COMMIT 1

struct batch_marker {
    int16_t type; /* BATCH_CONTROL_ABORT or BATCH_CONTROL_COMMIT; other types are Kafka's own */
    int32_t coordinator_epoch;
};

/* Appends the marker batch (base offset 0, sequence -1, one record at timestamp_ms) to out.
 * Returns 0 or ERR_TOO_LARGE (never: it is small). */
int batch_build_marker(struct buf *out, int64_t producer_id, int16_t producer_epoch,
                       const struct batch_marker *m, int64_t timestamp_ms);

/* The control record of the uncompressed control batch p (h its parsed header, the whole batch
 * present): 0 and *out, or ERR_CORRUPT when the record or its key does not parse. A type other
 * than ABORT or COMMIT is returned as is (coordinator epoch -1): not a transaction marker. */
int batch_marker_parse(const uint8_t *p, const struct batch_header *h, struct batch_marker *out);

#endif
