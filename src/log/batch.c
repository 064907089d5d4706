/*
 * RecordBatch v2 parsing, validation, stamping and encoding (see batch.h for the layout).
 *
 * Owns no state. Every length read from the input is checked against the bytes that remain
 * before it is used; the record walk uses a struct reader per record so no record can read
 * into its neighbour. Must never assert on input bytes.
 */
#include "log/batch.h"

#include "base/assert.h"
#include "base/compiler.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/limits.h"

/* The smallest batchLength: the header after the 12-byte prefix, with no records. */
#define BATCH_LENGTH_MIN (LOG_BATCH_HEADER_BYTES - BATCH_LENGTH_PREFIX_BYTES)

STATIC_ASSERT(BATCH_OFF_RECORD_COUNT + 4 == LOG_BATCH_HEADER_BYTES, "header layout");

int batch_header_parse(const uint8_t *p, size_t len, struct batch_header *out)
{
    ASSERT(p != NULL || len == 0);
    ASSERT(out != NULL);
    if (len < LOG_BATCH_HEADER_BYTES)
        return ERR_INCOMPLETE;
    out->base_offset = (int64_t)be64_load(p + BATCH_OFF_BASE_OFFSET);
    out->batch_length = (int32_t)be32_load(p + BATCH_OFF_LENGTH);
    out->leader_epoch = (int32_t)be32_load(p + BATCH_OFF_LEADER_EPOCH);
    out->magic = (int8_t)p[BATCH_OFF_MAGIC];
    out->crc = be32_load(p + BATCH_OFF_CRC);
    out->attributes = (int16_t)be16_load(p + BATCH_OFF_ATTRIBUTES);
    out->last_offset_delta = (int32_t)be32_load(p + BATCH_OFF_LAST_DELTA);
    out->base_timestamp_ms = (int64_t)be64_load(p + BATCH_OFF_BASE_TIMESTAMP);
    out->max_timestamp_ms = (int64_t)be64_load(p + BATCH_OFF_MAX_TIMESTAMP);
    out->producer_id = (int64_t)be64_load(p + BATCH_OFF_PRODUCER_ID);
    out->producer_epoch = (int16_t)be16_load(p + BATCH_OFF_PRODUCER_EPOCH);
    out->base_sequence = (int32_t)be32_load(p + BATCH_OFF_BASE_SEQUENCE);
    out->record_count = (int32_t)be32_load(p + BATCH_OFF_RECORD_COUNT);

    if (out->batch_length < (int32_t)BATCH_LENGTH_MIN)
        return ERR_CORRUPT;
    if ((uint64_t)out->batch_length > LOG_BATCH_BYTES_MAX - BATCH_LENGTH_PREFIX_BYTES)
        return ERR_TOO_LARGE;
    if (out->magic != BATCH_MAGIC)
        return ERR_UNSUPPORTED;
    if (batch_codec(out) > BATCH_CODEC_ZSTD)
        return ERR_UNSUPPORTED;
    if (out->base_offset < 0 || out->last_offset_delta < 0 || out->record_count < 0)
        return ERR_CORRUPT;
    if (out->base_offset > INT64_MAX - out->last_offset_delta)
        return ERR_CORRUPT;
    if ((int64_t)out->record_count > (int64_t)out->last_offset_delta + 1)
        return ERR_CORRUPT;
    if (batch_is_control(out) && out->record_count != 1)
        return ERR_CORRUPT;
    return 0;
}

int batch_check_produced(const struct batch_header *h)
{
    ASSERT(h != NULL);
    if (h->record_count <= 0 || (int64_t)h->record_count != (int64_t)h->last_offset_delta + 1)
        return ERR_INVALID;
    if (batch_is_control(h))
        return ERR_INVALID;
    if (h->producer_id >= 0 && h->base_sequence < 0)
        return ERR_INVALID;
    return 0;
}

uint32_t batch_compute_crc(const uint8_t *p, const struct batch_header *h)
{
    ASSERT(p != NULL);
    ASSERT(batch_total_bytes(h) >= LOG_BATCH_HEADER_BYTES);
    return crc32c(p + BATCH_OFF_ATTRIBUTES, batch_total_bytes(h) - BATCH_OFF_ATTRIBUTES);
}

/* Record fields are mostly one- or two-byte varints, and the record walk of every produced batch
 * runs on the loop thread: those forms are decoded inline, anything else (longer, truncated,
 * corrupt) by the reader, with the same result either way. */
static inline bool short_uvarint(struct reader *r, uint32_t *v)
{
    const uint8_t *p = r->pos;
    if (LIKELY(p < r->end && (p[0] & 0x80) == 0)) {
        *v = p[0];
        r->pos = p + 1;
        return true;
    }
    if (LIKELY(r->end - p >= 2 && (p[1] & 0x80) == 0)) {
        *v = (uint32_t)(p[0] & 0x7f) | (uint32_t)p[1] << 7;
        r->pos = p + 2;
        return true;
    }
    return false;
}

static inline int32_t rec_varint(struct reader *r)
{
    uint32_t v;
    return short_uvarint(r, &v) ? zigzag32_decode(v) : rd_varint(r);
}

static inline int64_t rec_varlong(struct reader *r)
{
    uint32_t v;
    return short_uvarint(r, &v) ? zigzag64_decode(v) : rd_varlong(r);
}

/* A length-prefixed field (key, value, header key/value): -1 is null when nullable. */
static struct slice read_bytes_field(struct reader *r, bool nullable)
{
    int32_t n = rec_varint(r);
    if (rd_err(r) != 0)
        return slice_make(NULL, 0);
    if (n == -1 && nullable)
        return slice_make(NULL, 0);
    if (n < 0 || (size_t)n > rd_left(r)) {
        rd_fail(r, ERR_CORRUPT);
        return slice_make(NULL, 0);
    }
    const uint8_t *p = rd_bytes(r, (size_t)n);
    /* A present empty field must not read as null. */
    return slice_make(p != NULL && n > 0 ? p : (const uint8_t *)"", (size_t)n);
}

/* Parses one record body (after its length) of exactly `len` bytes. */
static int parse_record(const uint8_t *p, size_t len, struct batch_rec *out)
{
    struct reader r;
    rd_init(&r, p, len);
    rd_u8(&r); /* attributes: unused in v2 records */
    out->timestamp_delta = rec_varlong(&r);
    out->offset_delta = rec_varint(&r);
    out->key = read_bytes_field(&r, true);
    out->value = read_bytes_field(&r, true);
    out->header_count = rec_varint(&r);
    if (rd_err(&r) == 0 && (out->header_count < 0 || (size_t)out->header_count > rd_left(&r)))
        rd_fail(&r, ERR_CORRUPT);
    const uint8_t *headers = r.pos;
    for (int32_t i = 0; rd_err(&r) == 0 && i < out->header_count; i++) {
        read_bytes_field(&r, false);
        read_bytes_field(&r, true);
    }
    out->headers = slice_make(headers, (size_t)(r.pos - headers));
    /* A record running past its own length, or shorter than it says, is corruption. */
    if (rd_err(&r) != 0 || rd_left(&r) != 0 || out->offset_delta < 0)
        return ERR_CORRUPT;
    return 0;
}

void batch_rec_iter_init(struct batch_rec_iter *it, struct slice records)
{
    rd_init(&it->r, records.ptr, records.len);
}

int batch_rec_iter_next(struct batch_rec_iter *it, struct batch_rec *out)
{
    if (rd_left(&it->r) == 0)
        return rd_err(&it->r) != 0 ? ERR_CORRUPT : 0;
    int32_t rec_len = rec_varint(&it->r);
    if (rd_err(&it->r) != 0 || rec_len < 0 || (size_t)rec_len > rd_left(&it->r)) {
        rd_fail(&it->r, ERR_CORRUPT);
        return ERR_CORRUPT;
    }
    const uint8_t *rec = rd_bytes(&it->r, (size_t)rec_len);
    int rc = parse_record(rec, (size_t)rec_len, out);
    if (rc < 0) {
        rd_fail(&it->r, rc);
        return rc;
    }
    return 1;
}

static int walk_records(const uint8_t *p, const struct batch_header *h)
{
    struct batch_rec_iter it;
    batch_rec_iter_init(
        &it, slice_make(p + LOG_BATCH_HEADER_BYTES, batch_total_bytes(h) - LOG_BATCH_HEADER_BYTES));
    int64_t prev_delta = -1;
    int64_t count = 0;
    struct batch_rec rec;
    int rc;
    while ((rc = batch_rec_iter_next(&it, &rec)) == 1) {
        if (rec.offset_delta <= prev_delta || rec.offset_delta > h->last_offset_delta)
            return ERR_CORRUPT;
        prev_delta = rec.offset_delta;
        if (++count > h->record_count)
            return ERR_CORRUPT;
    }
    if (rc < 0 || count != h->record_count)
        return ERR_CORRUPT;
    return 0;
}

int batch_parse(const uint8_t *p, size_t len, struct batch_header *out)
{
    int rc = batch_header_parse(p, len, out);
    if (rc != 0)
        goto done;
    if (batch_total_bytes(out) > len) {
        rc = ERR_INCOMPLETE;
        goto done;
    }
    if (batch_compute_crc(p, out) != out->crc) {
        rc = ERR_CORRUPT;
        goto done;
    }
    if (batch_codec(out) == BATCH_CODEC_NONE)
        rc = walk_records(p, out);
done:
    return rc;
}

void batch_stamp(uint8_t *p, int64_t base_offset, int32_t leader_epoch)
{
    ASSERT(p != NULL);
    ASSERT(base_offset >= 0);
    be64_store(p + BATCH_OFF_BASE_OFFSET, (uint64_t)base_offset);
    be32_store(p + BATCH_OFF_LEADER_EPOCH, (uint32_t)leader_epoch);
}

int batch_iter_next(struct batch_iter *it, struct slice *batch, struct batch_header *h)
{
    ASSERT(it->pos <= it->end);
    ASSERT(batch != NULL && h != NULL);
    size_t left = (size_t)(it->end - it->pos);
    if (left == 0)
        return 0;
    int rc = batch_parse(it->pos, left, h);
    if (rc != 0)
        return rc;
    *batch = slice_make(it->pos, (size_t)batch_total_bytes(h));
    it->pos += batch->len;
    return 1;
}

static void put_bytes_field(struct buf *b, struct slice s)
{
    if (s.ptr == NULL) {
        buf_put_varint(b, -1);
        return;
    }
    buf_put_varint(b, (int32_t)s.len);
    buf_append(b, s.ptr, s.len);
}

/* The encoded body of one record (everything after its length varint). */
static void put_record_body(struct buf *b, const struct batch_record *rec, int64_t base_ts,
                            int32_t delta)
{
    buf_put_u8(b, 0);
    buf_put_varlong(b, rec->timestamp_ms - base_ts);
    buf_put_varint(b, delta);
    put_bytes_field(b, rec->key);
    put_bytes_field(b, rec->value);
    buf_put_varint(b, (int32_t)rec->header_count);
    for (size_t i = 0; i < rec->header_count; i++) {
        put_bytes_field(b, rec->headers[i].key);
        put_bytes_field(b, rec->headers[i].value);
    }
}

static bool record_fits(const struct batch_record *rec)
{
    uint64_t bytes = rec->key.len + rec->value.len;
    if (rec->header_count > LOG_BATCH_BYTES_MAX)
        return false;
    for (size_t i = 0; i < rec->header_count; i++)
        bytes += rec->headers[i].key.len + rec->headers[i].value.len;
    return bytes <= LOG_BATCH_BYTES_MAX;
}

int batch_build(struct buf *out, const struct batch_build_opts *opts,
                const struct batch_record *records, size_t n)
{
    ASSERT(out != NULL && opts != NULL);
    ASSERT(records != NULL || n == 0);
    if (n == 0 || n > INT32_MAX || (opts->attributes & BATCH_ATTR_CODEC_MASK) != 0)
        return ERR_INVALID;
    int64_t base_ts = records[0].timestamp_ms;
    int64_t max_ts = base_ts;
    for (size_t i = 0; i < n; i++) {
        if (!record_fits(&records[i]))
            return ERR_TOO_LARGE;
        max_ts = MAX(max_ts, records[i].timestamp_ms);
    }

    size_t start = out->len;
    uint8_t *hdr = buf_extend(out, LOG_BATCH_HEADER_BYTES);
    memset(hdr, 0, LOG_BATCH_HEADER_BYTES);
    struct buf rec;
    buf_init(&rec);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&rec);
        put_record_body(&rec, &records[i], base_ts, (int32_t)i);
        buf_put_varint(out, (int32_t)rec.len);
        buf_append(out, rec.data, rec.len);
        if (out->len - start > LOG_BATCH_BYTES_MAX)
            break;
    }
    buf_deinit(&rec);
    size_t total = out->len - start;
    if (total > LOG_BATCH_BYTES_MAX) {
        out->len = start;
        return ERR_TOO_LARGE;
    }

    hdr = out->data + start;
    be64_store(hdr + BATCH_OFF_BASE_OFFSET, (uint64_t)opts->base_offset);
    be32_store(hdr + BATCH_OFF_LENGTH, (uint32_t)(total - BATCH_LENGTH_PREFIX_BYTES));
    be32_store(hdr + BATCH_OFF_LEADER_EPOCH, (uint32_t)opts->leader_epoch);
    hdr[BATCH_OFF_MAGIC] = BATCH_MAGIC;
    be16_store(hdr + BATCH_OFF_ATTRIBUTES, (uint16_t)opts->attributes);
    be32_store(hdr + BATCH_OFF_LAST_DELTA, (uint32_t)(n - 1));
    be64_store(hdr + BATCH_OFF_BASE_TIMESTAMP, (uint64_t)base_ts);
    be64_store(hdr + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)max_ts);
    be64_store(hdr + BATCH_OFF_PRODUCER_ID, (uint64_t)opts->producer_id);
    be16_store(hdr + BATCH_OFF_PRODUCER_EPOCH, (uint16_t)opts->producer_epoch);
    be32_store(hdr + BATCH_OFF_BASE_SEQUENCE, (uint32_t)opts->base_sequence);
    be32_store(hdr + BATCH_OFF_RECORD_COUNT, (uint32_t)n);
    be32_store(hdr + BATCH_OFF_CRC,
               crc32c(hdr + BATCH_OFF_ATTRIBUTES, total - BATCH_OFF_ATTRIBUTES));
    return 0;
}

int batch_build_marker(struct buf *out, int64_t producer_id, int16_t producer_epoch,
                       const struct batch_marker *m, int64_t timestamp_ms)
{
    uint8_t key[4], value[6];
    be16_store(key, 0);
    be16_store(key + 2, (uint16_t)m->type);
    be16_store(value, 0);
    be32_store(value + 2, (uint32_t)m->coordinator_epoch);
    struct batch_record rec = {
        .key = {key, sizeof(key)}, .value = {value, sizeof(value)}, .timestamp_ms = timestamp_ms};
    struct batch_build_opts o = {.attributes = BATCH_ATTR_TRANSACTIONAL | BATCH_ATTR_CONTROL,
                                 .producer_id = producer_id,
                                 .producer_epoch = producer_epoch,
                                 .base_sequence = -1};
    return batch_build(out, &o, &rec, 1);
}

int batch_marker_parse(const uint8_t *p, const struct batch_header *h, struct batch_marker *out)
{
    if (batch_codec(h) != BATCH_CODEC_NONE || !batch_is_control(h))
        return ERR_CORRUPT;
    struct batch_rec_iter it;
    batch_rec_iter_init(
        &it, slice_make(p + LOG_BATCH_HEADER_BYTES, batch_total_bytes(h) - LOG_BATCH_HEADER_BYTES));
    struct batch_rec rec;
    if (batch_rec_iter_next(&it, &rec) != 1 || rec.key.ptr == NULL || rec.key.len < 4)
        return ERR_CORRUPT;
    out->type = (int16_t)be16_load(rec.key.ptr + 2);
    out->coordinator_epoch = -1;
    if (out->type != BATCH_CONTROL_ABORT && out->type != BATCH_CONTROL_COMMIT)
        return 0;
    if (rec.value.ptr == NULL || rec.value.len < 6)
        return ERR_CORRUPT;
    out->coordinator_epoch = (int32_t)be32_load(rec.value.ptr + 2);
    return 0;
}
