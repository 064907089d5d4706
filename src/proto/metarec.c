/*
 * The KRaft metadata record frame (see metarec.h): a thin layer over the generated codec that
 * adds the three varints before the body and dispatches on the record type.
 */
#include "proto/metarec.h"

#include "base/error.h"
#include "proto/gen/kafka.h"

#include <stddef.h>

const struct proto_message *metarec_message(int16_t type)
{
    if (type < 0 || (size_t)type >= PROTO_METADATA_TYPE_COUNT)
        return NULL;
    return proto_metadata_records[type];
}

static int header_size(int16_t type, int16_t version)
{
    return (int)(uvarint_size(METAREC_FRAME_VERSION) + uvarint_size((uint16_t)type) +
                 uvarint_size((uint16_t)version));
}

int64_t metarec_size(int16_t type, int16_t version, const void *body)
{
    const struct proto_message *m = metarec_message(type);
    if (m == NULL)
        return ERR_NOT_FOUND;
    int64_t n = proto_size(m, body, version);
    if (n < 0)
        return n;
    return header_size(type, version) + n;
}

int metarec_encode(int16_t type, int16_t version, const void *body, struct buf *out)
{
    const struct proto_message *m = metarec_message(type);
    if (m == NULL)
        return ERR_NOT_FOUND;
    /* Size first, so that a refused version leaves out as it was. */
    int64_t n = proto_size(m, body, version);
    if (n < 0)
        return (int)n;
    buf_reserve(out, (size_t)(header_size(type, version) + n));
    size_t start = out->len;
    buf_put_uvarint(out, METAREC_FRAME_VERSION);
    buf_put_uvarint(out, (uint16_t)type);
    buf_put_uvarint(out, (uint16_t)version);
    int rc = proto_encode(m, body, version, out);
    if (rc != 0)
        out->len = start;
    return rc;
}

/* An unsigned varint that must fit an int16, as Kafka's unsignedIntToShort. */
static int16_t read_short(struct reader *r)
{
    uint32_t v = rd_uvarint(r);
    if (v > INT16_MAX) {
        rd_fail(r, ERR_CORRUPT);
        return 0;
    }
    return (int16_t)v;
}

int metarec_decode(struct arena *a, struct slice value, struct metarec *out)
{
    struct reader r;
    rd_init(&r, value.ptr, value.len);
    int16_t frame = read_short(&r);
    int16_t type = read_short(&r);
    int16_t version = read_short(&r);
    int rc = rd_err(&r);
    if (rc != 0)
        return rc == ERR_INCOMPLETE ? ERR_CORRUPT : rc;
    if (frame != METAREC_FRAME_VERSION)
        return ERR_UNSUPPORTED;
    const struct proto_message *m = metarec_message(type);
    if (m == NULL)
        return ERR_UNSUPPORTED;
    void *body = arena_alloc(a, m->body->bytes);
    if (body == NULL)
        return ERR_TOO_LARGE;
    rc = proto_decode(m, a, &r, version, body);
    if (rc == ERR_INCOMPLETE)
        return ERR_CORRUPT;
    if (rc != 0)
        return rc;
    if (rd_left(&r) != 0)
        return ERR_CORRUPT;
    *out = (struct metarec){.type = type, .version = version, .message = m, .body = body};
    return 0;
}
