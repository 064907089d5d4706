/*
 * Encoding and decoding of the __consumer_offsets records (see records.h for the formats).
 *
 * Invariants: every decoder reads through a struct reader, checks each length against the bytes
 * left and GROUP_* bounds before using it, and rejects trailing bytes after a value of a
 * version it knows, since such a value was not written by a format it understands.
 */
#include "group/records.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"
#include "log/batch.h"

#include <stdlib.h>

#define KEY_VERSION_OFFSET_V0 0
#define KEY_VERSION_OFFSET_V1 1
#define KEY_VERSION_GROUP     2
#define OFFSET_VALUE_VERSION  3
#define GROUP_VALUE_VERSION   3
#define VALUE_VERSION_MAX     3

/* ---- writers ----------------------------------------------------------------------------- */

static void put_str(struct buf *out, struct slice s)
{
    if (s.ptr == NULL) {
        buf_put_be16(out, (uint16_t)-1);
        return;
    }
    ASSERT(s.len <= GROUP_ID_BYTES_MAX);
    buf_put_be16(out, (uint16_t)s.len);
    buf_append(out, s.ptr, s.len);
}

static void put_bytes(struct buf *out, struct slice s)
{
    ASSERT(s.len <= GROUP_PROTOCOL_BYTES_MAX);
    buf_put_be32(out, (uint32_t)s.len);
    buf_append(out, s.ptr, s.len);
}

void grec_offset_key_encode(struct buf *out, struct slice group, struct slice topic,
                            int32_t partition)
{
    ASSERT(group.ptr != NULL && topic.ptr != NULL);
    buf_put_be16(out, KEY_VERSION_OFFSET_V1);
    put_str(out, group);
    put_str(out, topic);
    buf_put_be32(out, (uint32_t)partition);
}

void grec_group_key_encode(struct buf *out, struct slice group)
{
    ASSERT(group.ptr != NULL);
    buf_put_be16(out, KEY_VERSION_GROUP);
    put_str(out, group);
}

void grec_offset_value_encode(struct buf *out, const struct grec_offset_value *v)
{
    ASSERT(v->metadata.len <= GROUP_OFFSET_METADATA_BYTES_MAX);
    buf_put_be16(out, OFFSET_VALUE_VERSION);
    buf_put_be64(out, (uint64_t)v->offset);
    buf_put_be32(out, (uint32_t)v->leader_epoch);
    /* The format's metadata is not nullable: Kafka stores a null as the empty string. */
    put_str(out, v->metadata.ptr != NULL ? v->metadata : slice_make("", 0));
    buf_put_be64(out, (uint64_t)v->commit_ms);
}

void grec_group_value_encode(struct buf *out, const struct grec_group_value *v)
{
    ASSERT(v->member_count <= GROUP_MEMBERS_MAX);
    buf_put_be16(out, GROUP_VALUE_VERSION);
    put_str(out, v->protocol_type.ptr != NULL ? v->protocol_type : slice_make("", 0));
    buf_put_be32(out, (uint32_t)v->generation);
    put_str(out, v->protocol);
    put_str(out, v->leader);
    buf_put_be64(out, (uint64_t)v->state_ms);
    buf_put_be32(out, (uint32_t)v->member_count);
    for (size_t i = 0; i < v->member_count; i++) {
        const struct grec_member *m = &v->members[i];
        put_str(out, m->member_id);
        put_str(out, m->instance_id);
        put_str(out, m->client_id);
        put_str(out, m->client_host);
        buf_put_be32(out, (uint32_t)m->rebalance_timeout_ms);
        buf_put_be32(out, (uint32_t)m->session_timeout_ms);
        put_bytes(out, m->subscription);
        put_bytes(out, m->assignment);
    }
}

/* ---- readers ----------------------------------------------------------------------------- */

/* A string; null only where nullable, else ERR_CORRUPT. */
static struct slice rd_str(struct reader *r, bool nullable)
{
    int16_t len = (int16_t)rd_be16(r);
    if (len < 0) {
        if (len != -1 || !nullable)
            rd_fail(r, ERR_CORRUPT);
        return slice_make(NULL, 0);
    }
    const uint8_t *p = rd_bytes(r, (size_t)len);
    return p != NULL ? slice_make(p, (size_t)len) : slice_make(NULL, 0);
}

static struct slice rd_byte_field(struct reader *r)
{
    int32_t len = (int32_t)rd_be32(r);
    if (len < 0 || (uint32_t)len > GROUP_PROTOCOL_BYTES_MAX) {
        /* A null is never written here; Kafka writes empty bytes instead. */
        rd_fail(r, ERR_CORRUPT);
        return slice_make(NULL, 0);
    }
    const uint8_t *p = rd_bytes(r, (size_t)len);
    return p != NULL ? slice_make(p, (size_t)len) : slice_make(NULL, 0);
}

/* The reader's outcome: incomplete input and trailing bytes are both corrupt here. */
static int rd_finish(const struct reader *r)
{
    if (rd_err(r) != 0)
        return rd_err(r) == ERR_UNSUPPORTED ? ERR_UNSUPPORTED : ERR_CORRUPT;
    return rd_left(r) == 0 ? 0 : ERR_CORRUPT;
}

int grec_key_decode(struct slice in, struct grec_key *out)
{
    struct reader r;
    rd_init(&r, in.ptr, in.len);
    int16_t version = (int16_t)rd_be16(&r);
    if (rd_err(&r) != 0)
        return ERR_CORRUPT;
    *out = (struct grec_key){0};
    if (version == KEY_VERSION_OFFSET_V0 || version == KEY_VERSION_OFFSET_V1) {
        out->kind = GREC_OFFSET;
        out->group = rd_str(&r, false);
        out->topic = rd_str(&r, false);
        out->partition = (int32_t)rd_be32(&r);
    } else if (version == KEY_VERSION_GROUP) {
        out->kind = GREC_GROUP;
        out->group = rd_str(&r, false);
    } else {
        return version < 0 ? ERR_CORRUPT : ERR_UNSUPPORTED;
    }
    return rd_finish(&r);
}

int grec_offset_value_decode(struct slice in, struct grec_offset_value *out)
{
    struct reader r;
    rd_init(&r, in.ptr, in.len);
    int16_t version = (int16_t)rd_be16(&r);
    if (rd_err(&r) != 0 || version < 0)
        return ERR_CORRUPT;
    if (version > VALUE_VERSION_MAX)
        return ERR_UNSUPPORTED;
    out->offset = (int64_t)rd_be64(&r);
    out->leader_epoch = version >= 3 ? (int32_t)rd_be32(&r) : -1;
    out->metadata = rd_str(&r, false);
    out->commit_ms = (int64_t)rd_be64(&r);
    out->expire_ms = version == 1 ? (int64_t)rd_be64(&r) : -1;
    return rd_finish(&r);
}

static void rd_member(struct reader *r, int16_t version, struct grec_member *m)
{
    m->member_id = rd_str(r, false);
    m->instance_id = version >= 3 ? rd_str(r, true) : slice_make(NULL, 0);
    m->client_id = rd_str(r, false);
    m->client_host = rd_str(r, false);
    m->rebalance_timeout_ms = version >= 1 ? (int32_t)rd_be32(r) : -1;
    m->session_timeout_ms = (int32_t)rd_be32(r);
    if (version == 0)
        m->rebalance_timeout_ms = m->session_timeout_ms; /* Kafka's rule for version 0 */
    m->subscription = rd_byte_field(r);
    m->assignment = rd_byte_field(r);
}

int grec_group_value_decode(struct slice in, struct grec_group_value *out)
{
    struct reader r;
    rd_init(&r, in.ptr, in.len);
    *out = (struct grec_group_value){0};
    int16_t version = (int16_t)rd_be16(&r);
    if (rd_err(&r) != 0 || version < 0)
        return ERR_CORRUPT;
    if (version > VALUE_VERSION_MAX)
        return ERR_UNSUPPORTED;
    out->protocol_type = rd_str(&r, false);
    out->generation = (int32_t)rd_be32(&r);
    out->protocol = rd_str(&r, true);
    out->leader = rd_str(&r, true);
    out->state_ms = version >= 2 ? (int64_t)rd_be64(&r) : -1;
    int32_t count = (int32_t)rd_be32(&r);
    /* Each member takes at least 20 bytes, so the count is checked against what is left
     * before anything is allocated. */
    if (rd_err(&r) != 0 || count < 0 || (uint32_t)count > GROUP_MEMBERS_MAX ||
        (size_t)count * 20 > rd_left(&r))
        return ERR_CORRUPT;
    if (count > 0)
        out->members = xcalloc((size_t)count, sizeof(*out->members));
    out->member_count = (size_t)count;
    for (int32_t i = 0; i < count; i++)
        rd_member(&r, version, &out->members[i]);
    int rc = rd_finish(&r);
    if (rc != 0)
        grec_group_value_free(out);
    return rc;
}

void grec_group_value_free(struct grec_group_value *v)
{
    free(v->members);
    v->members = NULL;
    v->member_count = 0;
}

/* ---- batches ----------------------------------------------------------------------------- */

/* A varint-length key or value: -1 is null, other negatives are corrupt. */
static struct slice rd_varbytes(struct reader *r)
{
    int32_t len = rd_varint(r);
    if (len < 0) {
        if (len != -1)
            rd_fail(r, ERR_CORRUPT);
        return slice_make(NULL, 0);
    }
    const uint8_t *p = rd_bytes(r, (size_t)len);
    return p != NULL ? slice_make(p, (size_t)len) : slice_make(NULL, 0);
}

/* One record of an uncompressed batch: its key and value; headers are skipped. */
static int walk_record(struct reader *r, int64_t base_offset, grec_record_fn fn, void *ctx)
{
    int32_t length = rd_varint(r);
    if (rd_err(r) != 0 || length < 0 || (size_t)length > rd_left(r))
        return ERR_CORRUPT;
    struct reader rec;
    rd_init(&rec, r->pos, (size_t)length);
    rd_bytes(r, (size_t)length);
    rd_u8(&rec);      /* attributes */
    rd_varlong(&rec); /* timestamp delta */
    int32_t delta = rd_varint(&rec);
    struct slice key = rd_varbytes(&rec);
    struct slice value = rd_varbytes(&rec);
    int32_t headers = rd_varint(&rec);
    for (int32_t h = 0; h < headers && rd_err(&rec) == 0; h++) {
        int32_t klen = rd_varint(&rec);
        rd_bytes(&rec, klen < 0 ? 0 : (size_t)klen);
        rd_varbytes(&rec);
    }
    if (rd_err(&rec) != 0 || rd_left(&rec) != 0 || headers < 0 || delta < 0)
        return ERR_CORRUPT;
    return fn(ctx, base_offset + delta, key, value);
}

int grec_batch_walk(const uint8_t *batch, size_t len, grec_record_fn fn, void *ctx)
{
    struct batch_header h;
    int rc = batch_header_parse(batch, len, &h);
    if (rc < 0)
        return rc == ERR_INCOMPLETE ? ERR_CORRUPT : rc;
    if (batch_total_bytes(&h) > len)
        return ERR_CORRUPT;
    if (batch_is_control(&h))
        return 0;
    if (batch_codec(&h) != BATCH_CODEC_NONE)
        return ERR_UNSUPPORTED;
    struct reader r;
    rd_init(&r, batch + LOG_BATCH_HEADER_BYTES, batch_total_bytes(&h) - LOG_BATCH_HEADER_BYTES);
    for (int32_t i = 0; i < h.record_count; i++) {
        rc = walk_record(&r, h.base_offset, fn, ctx);
        if (rc != 0)
            return rc;
    }
    return rd_left(&r) == 0 ? 0 : ERR_CORRUPT;
}
