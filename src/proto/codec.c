/*
 * The one table-driven Kafka codec: decodes, encodes and sizes any message given its generated
 * descriptor (proto/proto.h) and a version.
 *
 * Invariants: the decoder never reads outside its reader, checks every length and count against
 * base/limits.h and the bytes left before it allocates, and allocates only from the caller's
 * arena. Encoding and sizing share one walker (struct enc with or without a buf), so size() is
 * the encoded length by construction. Recursion follows the schema's nesting only, which is
 * fixed at generation time and never driven by input bytes.
 *
 * Never: copy bytes/records payloads, keep pointers into the input beyond the decoded message,
 * or ASSERT anything about input bytes.
 */
#include "proto/proto.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"

#include <stdlib.h>
#include <string.h>

/*
 * Empty non-null arrays and bytes point here: a zero-length value needs no memory but must
 * differ from null (NULL). Nothing is ever written through these pointers.
 */
static max_align_t empty_items[1];
static const uint8_t empty_bytes[1];

static bool in_range(int16_t version, int16_t lo, int16_t hi)
{
    return version >= lo && version <= hi;
}

static bool field_present(const struct proto_field *f, int16_t version)
{
    return in_range(version, f->versions_min, f->versions_max);
}

static bool field_nullable(const struct proto_field *f, int16_t version)
{
    return in_range(version, f->nullable_min, f->nullable_max);
}

/* Bytes one element (or the whole value, for non-arrays) takes in the C struct. */
static size_t elem_bytes(const struct proto_field *f)
{
    switch ((enum proto_type)f->type) {
    case PROTO_BOOL:
        return sizeof(bool);
    case PROTO_INT8:
        return sizeof(int8_t);
    case PROTO_INT16:
    case PROTO_UINT16:
        return sizeof(int16_t);
    case PROTO_INT32:
    case PROTO_UINT32:
        return sizeof(int32_t);
    case PROTO_INT64:
        return sizeof(int64_t);
    case PROTO_FLOAT64:
        return sizeof(double);
    case PROTO_UUID:
        return sizeof(struct proto_uuid);
    case PROTO_STRING:
        return sizeof(struct proto_str);
    case PROTO_BYTES:
    case PROTO_RECORDS:
        return sizeof(struct slice);
    case PROTO_STRUCT:
        ASSERT(f->nested != NULL);
        return (f->flags & PROTO_FIELD_ARRAY) ? f->nested->bytes : sizeof(void *);
    }
    UNREACHABLE();
}

/* ---- defaults -------------------------------------------------------------------------- */

static int init_struct(const struct proto_struct *s, uint8_t *out, struct arena *a);

/* A default struct value: allocated from a when there is one, else left NULL. */
static int default_struct(const struct proto_field *f, void **out, struct arena *a)
{
    ASSERT(f->nested != NULL);
    *out = NULL;
    if (a == NULL || (f->flags & PROTO_FIELD_DEFAULT_NULL))
        return 0;
    uint8_t *p = arena_zalloc(a, f->nested->bytes);
    if (p == NULL)
        return ERR_TOO_LARGE;
    *out = p;
    return init_struct(f->nested, p, a);
}

static void default_scalar(const struct proto_field *f, uint8_t *p)
{
    int64_t v = f->default_int;
    switch ((enum proto_type)f->type) {
    case PROTO_BOOL:
        *(bool *)p = v != 0;
        break;
    case PROTO_INT8:
        *(int8_t *)p = (int8_t)v;
        break;
    case PROTO_INT16:
        *(int16_t *)p = (int16_t)v;
        break;
    case PROTO_UINT16:
        *(uint16_t *)p = (uint16_t)v;
        break;
    case PROTO_INT32:
        *(int32_t *)p = (int32_t)v;
        break;
    case PROTO_UINT32:
        *(uint32_t *)p = (uint32_t)v;
        break;
    case PROTO_INT64:
        *(int64_t *)p = v;
        break;
    case PROTO_FLOAT64:
        *(double *)p = f->default_float;
        break;
    case PROTO_UUID:
        memset(p, 0, sizeof(struct proto_uuid));
        break;
    default:
        UNREACHABLE();
    }
}

/* Sets the field at p to its schema default (the value of a field absent from the wire). */
static int set_default(const struct proto_field *f, uint8_t *p, struct arena *a)
{
    bool null = (f->flags & PROTO_FIELD_DEFAULT_NULL) != 0;
    if (f->flags & PROTO_FIELD_ARRAY) {
        struct proto_array *arr = (struct proto_array *)p;
        arr->items = null ? NULL : empty_items;
        arr->count = 0;
        return 0;
    }
    switch ((enum proto_type)f->type) {
    case PROTO_STRING: {
        const char *s = null ? NULL : f->default_str != NULL ? f->default_str : "";
        *(struct proto_str *)p = proto_str_make(s);
        return 0;
    }
    case PROTO_BYTES:
    case PROTO_RECORDS:
        *(struct slice *)p = slice_make(null ? NULL : empty_bytes, 0);
        return 0;
    case PROTO_STRUCT:
        return default_struct(f, (void **)p, a);
    default:
        default_scalar(f, p);
        return 0;
    }
}

static int init_struct(const struct proto_struct *s, uint8_t *out, struct arena *a)
{
    ASSERT(s != NULL && out != NULL);
    for (uint32_t i = 0; i < s->field_count; i++) {
        int err = set_default(&s->fields[i], out + s->fields[i].offset, a);
        if (err != 0)
            return err;
    }
    return 0;
}

void proto_init(const struct proto_message *m, void *out)
{
    ASSERT(m != NULL && out != NULL);
    memset(out, 0, m->body->bytes);
    int err = init_struct(m->body, out, NULL);
    ASSERT(err == 0);
}

/* ---- decoding -------------------------------------------------------------------------- */

struct dec {
    struct arena *arena;
    int16_t version;
    bool flexible;
};

static void dec_struct(const struct proto_struct *s, const struct dec *d, struct reader *r,
                       uint8_t *out);

static void dec_scalar(const struct proto_field *f, struct reader *r, uint8_t *p)
{
    switch ((enum proto_type)f->type) {
    case PROTO_BOOL:
        /* Java reads any non-zero byte as true; so do we. */
        *(bool *)p = rd_u8(r) != 0;
        break;
    case PROTO_INT8:
        *(int8_t *)p = (int8_t)rd_u8(r);
        break;
    case PROTO_INT16:
    case PROTO_UINT16:
        *(uint16_t *)p = rd_be16(r);
        break;
    case PROTO_INT32:
    case PROTO_UINT32:
        *(uint32_t *)p = rd_be32(r);
        break;
    case PROTO_INT64:
        *(uint64_t *)p = rd_be64(r);
        break;
    case PROTO_FLOAT64: {
        uint64_t bits = rd_be64(r);
        memcpy(p, &bits, sizeof(bits));
        break;
    }
    case PROTO_UUID: {
        const uint8_t *src = rd_bytes(r, sizeof(struct proto_uuid));
        if (src != NULL)
            memcpy(p, src, sizeof(struct proto_uuid));
        break;
    }
    default:
        UNREACHABLE();
    }
}

/*
 * Reads a length or count prefix: compact (uvarint of n+1, 0 = null), int16 or int32 (-1 = null).
 * Returns n, -1 for null, or -2 after recording an error in r.
 */
static int64_t dec_length(struct reader *r, bool compact, bool wide)
{
    int64_t n;
    if (compact)
        n = (int64_t)rd_uvarint(r) - 1;
    else if (wide)
        n = (int32_t)rd_be32(r);
    else
        n = (int16_t)rd_be16(r);
    if (rd_err(r) != 0)
        return -2;
    if (n < -1) {
        rd_fail(r, ERR_CORRUPT);
        return -2;
    }
    return n;
}

static void dec_string(const struct proto_field *f, const struct dec *d, struct reader *r,
                       bool nullable, struct proto_str *out)
{
    ASSERT(f->type == PROTO_STRING);
    bool compact = d->flexible && !(f->flags & PROTO_FIELD_CLASSIC);
    int64_t n = dec_length(r, compact, false);
    if (n == -2)
        return;
    if (n == -1) {
        if (!nullable)
            rd_fail(r, ERR_CORRUPT);
        *out = proto_str_make(NULL);
        return;
    }
    if (n > PROTO_STRING_BYTES_MAX) {
        rd_fail(r, ERR_TOO_LARGE);
        return;
    }
    const uint8_t *src = rd_bytes(r, (size_t)n);
    if (src == NULL)
        return;
    char *copy = arena_strndup(d->arena, (const char *)src, (size_t)n);
    if (copy == NULL) {
        rd_fail(r, ERR_TOO_LARGE);
        return;
    }
    out->ptr = copy;
    out->len = (size_t)n;
}

static void dec_bytes(const struct dec *d, struct reader *r, bool nullable, struct slice *out)
{
    int64_t n = dec_length(r, d->flexible, true);
    if (n == -2)
        return;
    if (n == -1) {
        if (!nullable)
            rd_fail(r, ERR_CORRUPT);
        *out = slice_make(NULL, 0);
        return;
    }
    const uint8_t *src = rd_bytes(r, (size_t)n);
    if (src == NULL)
        return;
    *out = slice_make(n == 0 ? empty_bytes : src, (size_t)n);
}

/* A struct-typed field (not an array element): a pointer, with an int8 prefix if nullable. */
static void dec_struct_ptr(const struct proto_field *f, const struct dec *d, struct reader *r,
                           bool nullable, void **out)
{
    ASSERT(f->nested != NULL);
    *out = NULL;
    /* Java reads any negative prefix as null and anything else as present; so do we. */
    if (nullable && (int8_t)rd_u8(r) < 0)
        return;
    if (rd_err(r) != 0)
        return;
    uint8_t *p = arena_zalloc(d->arena, f->nested->bytes);
    if (p == NULL) {
        rd_fail(r, ERR_TOO_LARGE);
        return;
    }
    *out = p;
    dec_struct(f->nested, d, r, p);
}

/* One value of the field's element type; structs inside arrays are stored inline. */
static void dec_value(const struct proto_field *f, const struct dec *d, struct reader *r,
                      bool nullable, bool inline_struct, uint8_t *p)
{
    switch ((enum proto_type)f->type) {
    case PROTO_STRING:
        dec_string(f, d, r, nullable, (struct proto_str *)p);
        break;
    case PROTO_BYTES:
    case PROTO_RECORDS:
        dec_bytes(d, r, nullable, (struct slice *)p);
        break;
    case PROTO_STRUCT:
        if (inline_struct)
            dec_struct(f->nested, d, r, p);
        else
            dec_struct_ptr(f, d, r, nullable, (void **)p);
        break;
    default:
        dec_scalar(f, r, p);
        break;
    }
}

static void dec_array(const struct proto_field *f, const struct dec *d, struct reader *r,
                      struct proto_array *out)
{
    ASSERT(f->flags & PROTO_FIELD_ARRAY);
    int64_t n = dec_length(r, d->flexible, true);
    if (n == -2)
        return;
    out->items = NULL;
    out->count = 0;
    if (n == -1) {
        if (!field_nullable(f, d->version))
            rd_fail(r, ERR_CORRUPT);
        return;
    }
    if (n > PROTO_ARRAY_COUNT_MAX) {
        rd_fail(r, ERR_TOO_LARGE);
        return;
    }
    /* Every element takes at least one byte, so a count over the bytes left is a short input. */
    if ((uint64_t)n > rd_left(r)) {
        rd_fail(r, ERR_INCOMPLETE);
        return;
    }
    if (n == 0) {
        out->items = empty_items;
        return;
    }
    size_t size = elem_bytes(f);
    uint8_t *items = arena_calloc(d->arena, (size_t)n, size);
    if (items == NULL) {
        rd_fail(r, ERR_TOO_LARGE);
        return;
    }
    out->items = items;
    out->count = (size_t)n;
    for (size_t i = 0; i < (size_t)n && rd_err(r) == 0; i++)
        dec_value(f, d, r, false, true, items + i * size);
}

static void dec_field(const struct proto_field *f, const struct dec *d, struct reader *r,
                      uint8_t *p)
{
    if (f->flags & PROTO_FIELD_ARRAY)
        dec_array(f, d, r, (struct proto_array *)p);
    else
        dec_value(f, d, r, field_nullable(f, d->version), false, p);
}

static const struct proto_field *find_tag(const struct proto_struct *s, uint32_t tag,
                                          int16_t version)
{
    for (uint32_t i = 0; i < s->tagged_count; i++) {
        const struct proto_field *f = &s->fields[s->tagged_order[i]];
        ASSERT(f->tag >= 0);
        if ((uint32_t)f->tag == tag && field_present(f, version))
            return f;
    }
    return NULL;
}

/* The tagged-field section: count, then (tag, size, value) each. Unknown tags are skipped. */
static void dec_tagged(const struct proto_struct *s, const struct dec *d, struct reader *r,
                       uint8_t *out)
{
    ASSERT(d->flexible);
    uint32_t n = rd_uvarint(r);
    for (uint32_t i = 0; i < n && rd_err(r) == 0; i++) {
        uint32_t tag = rd_uvarint(r);
        uint32_t size = rd_uvarint(r);
        const uint8_t *body = rd_bytes(r, size);
        if (body == NULL)
            return;
        const struct proto_field *f = find_tag(s, tag, d->version);
        if (f == NULL)
            continue;
        struct reader sub;
        rd_init(&sub, body, size);
        dec_field(f, d, &sub, out + f->offset);
        /* The outer size is authoritative: content that overruns or underruns it is corrupt. */
        if (rd_err(&sub) != 0)
            rd_fail(r, rd_err(&sub) == ERR_INCOMPLETE ? ERR_CORRUPT : rd_err(&sub));
        else if (rd_left(&sub) != 0)
            rd_fail(r, ERR_CORRUPT);
    }
}

static void dec_struct(const struct proto_struct *s, const struct dec *d, struct reader *r,
                       uint8_t *out)
{
    ASSERT(s != NULL && out != NULL);
    for (uint32_t i = 0; i < s->field_count && rd_err(r) == 0; i++) {
        const struct proto_field *f = &s->fields[i];
        uint8_t *p = out + f->offset;
        if (!field_present(f, d->version) || f->tag >= 0) {
            int err = set_default(f, p, d->arena);
            if (err != 0)
                rd_fail(r, err);
            continue;
        }
        dec_field(f, d, r, p);
    }
    if (d->flexible && rd_err(r) == 0)
        dec_tagged(s, d, r, out);
}

int proto_decode(const struct proto_message *m, struct arena *a, struct reader *r, int16_t version,
                 void *out)
{
    ASSERT(m != NULL && a != NULL);
    ASSERT(r != NULL && out != NULL);
    if (!in_range(version, m->version_min, m->version_max))
        return ERR_UNSUPPORTED;
    memset(out, 0, m->body->bytes);
    struct dec d = {.arena = a, .version = version, .flexible = version >= m->flexible_min};
    dec_struct(m->body, &d, r, out);
    return rd_err(r);
}

/* ---- encoding and sizing --------------------------------------------------------------- */

/* Encodes into b, or with b NULL only counts; n is the byte count either way. */
struct enc {
    struct buf *b;
    size_t n;
    int err;
    int16_t version;
    bool flexible;
    /* Spliced encoding: records bytes are left out and noted here instead (proto.h). */
    struct proto_splice *splices;
    size_t splice_max;
    size_t splice_count;
    size_t spliced_bytes;
};

static void put(struct enc *e, const void *p, size_t n)
{
    if (e->b != NULL)
        buf_append(e->b, p, n);
    e->n += n;
}

static void put_u8(struct enc *e, uint8_t v)
{
    put(e, &v, 1);
}

static void put_be16(struct enc *e, uint16_t v)
{
    uint8_t tmp[2];
    be16_store(tmp, v);
    put(e, tmp, sizeof(tmp));
}

static void put_be32(struct enc *e, uint32_t v)
{
    uint8_t tmp[4];
    be32_store(tmp, v);
    put(e, tmp, sizeof(tmp));
}

static void put_be64(struct enc *e, uint64_t v)
{
    uint8_t tmp[8];
    be64_store(tmp, v);
    put(e, tmp, sizeof(tmp));
}

static void put_uvarint(struct enc *e, uint64_t v)
{
    uint8_t tmp[VARINT64_BYTES_MAX];
    put(e, tmp, uvarint_encode(tmp, v));
}

static void enc_fail(struct enc *e, int err)
{
    if (e->err == 0)
        e->err = err;
}

/* A length or count prefix; n == -1 is null. */
static void enc_length(struct enc *e, bool compact, bool wide, int64_t n)
{
    ASSERT(n >= -1);
    if (compact)
        put_uvarint(e, (uint64_t)(n + 1));
    else if (wide)
        put_be32(e, (uint32_t)(int32_t)n);
    else
        put_be16(e, (uint16_t)(int16_t)n);
}

static void enc_struct(const struct proto_struct *s, struct enc *e, const uint8_t *in);

static void enc_scalar(const struct proto_field *f, struct enc *e, const uint8_t *p)
{
    switch ((enum proto_type)f->type) {
    case PROTO_BOOL:
        put_u8(e, *(const bool *)p ? 1 : 0);
        break;
    case PROTO_INT8:
        put_u8(e, (uint8_t) * (const int8_t *)p);
        break;
    case PROTO_INT16:
    case PROTO_UINT16:
        put_be16(e, *(const uint16_t *)p);
        break;
    case PROTO_INT32:
    case PROTO_UINT32:
        put_be32(e, *(const uint32_t *)p);
        break;
    case PROTO_INT64:
        put_be64(e, *(const uint64_t *)p);
        break;
    case PROTO_FLOAT64: {
        uint64_t bits;
        memcpy(&bits, p, sizeof(bits));
        put_be64(e, bits);
        break;
    }
    case PROTO_UUID:
        put(e, p, sizeof(struct proto_uuid));
        break;
    default:
        UNREACHABLE();
    }
}

static void enc_string(const struct proto_field *f, struct enc *e, bool nullable,
                       const struct proto_str *s)
{
    ASSERT(f->type == PROTO_STRING);
    bool compact = e->flexible && !(f->flags & PROTO_FIELD_CLASSIC);
    if (s->ptr == NULL) {
        enc_length(e, compact, false, nullable ? -1 : 0);
        return;
    }
    if (s->len > PROTO_STRING_BYTES_MAX) {
        enc_fail(e, ERR_TOO_LARGE);
        return;
    }
    enc_length(e, compact, false, (int64_t)s->len);
    put(e, s->ptr, s->len);
}

static void enc_bytes(struct enc *e, bool nullable, bool records, const struct slice *s)
{
    if (s->ptr == NULL) {
        enc_length(e, e->flexible, true, nullable ? -1 : 0);
        return;
    }
    if (s->len > PROTO_WIRE_LENGTH_MAX) {
        enc_fail(e, ERR_TOO_LARGE);
        return;
    }
    enc_length(e, e->flexible, true, (int64_t)s->len);
    if (records && e->splices != NULL && e->b != NULL) {
        if (e->splice_count == e->splice_max) {
            enc_fail(e, ERR_TOO_LARGE);
            return;
        }
        e->splices[e->splice_count++] =
            (struct proto_splice){.at = e->b->len, .len = s->len, .cookie = s->ptr};
        e->spliced_bytes += s->len;
        e->n += s->len;
        return;
    }
    put(e, s->ptr, s->len);
}

/* A NULL struct where null is not allowed is written as the all-defaults struct. */
static void enc_default_struct(const struct proto_struct *s, struct enc *e)
{
    ASSERT(s != NULL);
    uint8_t *tmp = xcalloc(1, s->bytes);
    int err = init_struct(s, tmp, NULL);
    ASSERT(err == 0);
    enc_struct(s, e, tmp);
    free(tmp);
}

static void enc_value(const struct proto_field *f, struct enc *e, bool nullable, bool inline_struct,
                      const uint8_t *p)
{
    switch ((enum proto_type)f->type) {
    case PROTO_STRING:
        enc_string(f, e, nullable, (const struct proto_str *)p);
        break;
    case PROTO_BYTES:
    case PROTO_RECORDS:
        enc_bytes(e, nullable, f->type == PROTO_RECORDS, (const struct slice *)p);
        break;
    case PROTO_STRUCT: {
        ASSERT(f->nested != NULL);
        const uint8_t *sp = inline_struct ? p : *(const uint8_t *const *)p;
        if (!inline_struct && nullable)
            put_u8(e, sp == NULL ? 0xff : 1);
        if (sp != NULL)
            enc_struct(f->nested, e, sp);
        else if (!nullable)
            enc_default_struct(f->nested, e);
        break;
    }
    default:
        enc_scalar(f, e, p);
        break;
    }
}

static void enc_array(const struct proto_field *f, struct enc *e, const struct proto_array *arr)
{
    ASSERT(f->flags & PROTO_FIELD_ARRAY);
    if (arr->items == NULL) {
        enc_length(e, e->flexible, true, field_nullable(f, e->version) ? -1 : 0);
        return;
    }
    if (arr->count > PROTO_WIRE_LENGTH_MAX) {
        enc_fail(e, ERR_TOO_LARGE);
        return;
    }
    enc_length(e, e->flexible, true, (int64_t)arr->count);
    size_t size = elem_bytes(f);
    const uint8_t *items = arr->items;
    for (size_t i = 0; i < arr->count && e->err == 0; i++)
        enc_value(f, e, false, true, items + i * size);
}

static void enc_field(const struct proto_field *f, struct enc *e, const uint8_t *p)
{
    if (f->flags & PROTO_FIELD_ARRAY)
        enc_array(f, e, (const struct proto_array *)p);
    else
        enc_value(f, e, field_nullable(f, e->version), false, p);
}

static bool struct_is_default(const struct proto_struct *s, int16_t version, const uint8_t *in);

static bool scalar_is_default(const struct proto_field *f, const uint8_t *p)
{
    switch ((enum proto_type)f->type) {
    case PROTO_BOOL:
        return *(const bool *)p == (f->default_int != 0);
    case PROTO_INT8:
        return *(const int8_t *)p == f->default_int;
    case PROTO_INT16:
        return *(const int16_t *)p == f->default_int;
    case PROTO_UINT16:
        return *(const uint16_t *)p == f->default_int;
    case PROTO_INT32:
        return *(const int32_t *)p == f->default_int;
    case PROTO_UINT32:
        return *(const uint32_t *)p == f->default_int;
    case PROTO_INT64:
        return *(const int64_t *)p == f->default_int;
    case PROTO_FLOAT64:
        return *(const double *)p == f->default_float;
    case PROTO_UUID: {
        static const struct proto_uuid zero;
        return memcmp(p, &zero, sizeof(zero)) == 0;
    }
    default:
        UNREACHABLE();
    }
}

/*
 * Whether a value equals its default, so a tagged field can be left out. NULL counts as empty
 * where the version does not allow null, matching how it is encoded.
 */
static bool value_is_default(const struct proto_field *f, int16_t version, const uint8_t *p)
{
    bool default_null = (f->flags & PROTO_FIELD_DEFAULT_NULL) != 0;
    bool nullable = field_nullable(f, version);
    if (f->flags & PROTO_FIELD_ARRAY) {
        const struct proto_array *arr = (const struct proto_array *)p;
        if (arr->items == NULL)
            return default_null || !nullable;
        return !default_null && arr->count == 0;
    }
    switch ((enum proto_type)f->type) {
    case PROTO_STRING: {
        const struct proto_str *s = (const struct proto_str *)p;
        if (s->ptr == NULL)
            return default_null || (!nullable && (f->default_str == NULL || !*f->default_str));
        if (default_null)
            return false;
        return proto_str_eq(*s, f->default_str != NULL ? f->default_str : "");
    }
    case PROTO_BYTES:
    case PROTO_RECORDS: {
        const struct slice *s = (const struct slice *)p;
        if (s->ptr == NULL)
            return default_null || !nullable;
        return !default_null && s->len == 0;
    }
    case PROTO_STRUCT: {
        const uint8_t *sp = *(const uint8_t *const *)p;
        if (sp == NULL)
            return default_null || !nullable;
        return !default_null && struct_is_default(f->nested, version, sp);
    }
    default:
        return scalar_is_default(f, p);
    }
}

static bool struct_is_default(const struct proto_struct *s, int16_t version, const uint8_t *in)
{
    ASSERT(s != NULL && in != NULL);
    for (uint32_t i = 0; i < s->field_count; i++) {
        const struct proto_field *f = &s->fields[i];
        if (field_present(f, version) && !value_is_default(f, version, in + f->offset))
            return false;
    }
    return true;
}

/* The tagged-field section: only fields that differ from their default, by ascending tag. */
static void enc_tagged(const struct proto_struct *s, struct enc *e, const uint8_t *in)
{
    ASSERT(e->flexible);
    uint32_t count = 0;
    for (uint32_t i = 0; i < s->tagged_count; i++) {
        const struct proto_field *f = &s->fields[s->tagged_order[i]];
        if (field_present(f, e->version) && !value_is_default(f, e->version, in + f->offset))
            count++;
    }
    put_uvarint(e, count);
    for (uint32_t i = 0; i < s->tagged_count && e->err == 0; i++) {
        const struct proto_field *f = &s->fields[s->tagged_order[i]];
        const uint8_t *p = in + f->offset;
        if (!field_present(f, e->version) || value_is_default(f, e->version, p))
            continue;
        struct enc sizer = {.version = e->version, .flexible = e->flexible};
        enc_field(f, &sizer, p);
        if (sizer.err != 0) {
            enc_fail(e, sizer.err);
            return;
        }
        put_uvarint(e, (uint32_t)f->tag);
        put_uvarint(e, sizer.n);
        enc_field(f, e, p);
    }
}

static void enc_struct(const struct proto_struct *s, struct enc *e, const uint8_t *in)
{
    ASSERT(s != NULL && in != NULL);
    for (uint32_t i = 0; i < s->field_count && e->err == 0; i++) {
        const struct proto_field *f = &s->fields[i];
        if (field_present(f, e->version) && f->tag < 0)
            enc_field(f, e, in + f->offset);
    }
    if (e->flexible && e->err == 0)
        enc_tagged(s, e, in);
}

static int encode(const struct proto_message *m, const void *in, int16_t version, struct buf *out,
                  struct enc *e)
{
    ASSERT(m != NULL && in != NULL);
    ASSERT(out != NULL);
    if (!in_range(version, m->version_min, m->version_max))
        return ERR_UNSUPPORTED;
    size_t start = out->len;
    e->b = out;
    e->version = version;
    e->flexible = version >= m->flexible_min;
    enc_struct(m->body, e, in);
    if (e->err != 0) {
        out->len = start;
        return e->err;
    }
    ASSERT(out->len - start + e->spliced_bytes == e->n);
    return 0;
}

int proto_encode(const struct proto_message *m, const void *in, int16_t version, struct buf *out)
{
    struct enc e = {0};
    return encode(m, in, version, out, &e);
}

int proto_encode_spliced(const struct proto_message *m, const void *in, int16_t version,
                         struct buf *out, struct proto_splice *splices, size_t splice_max,
                         size_t *splice_count)
{
    struct enc e = {.splices = splices, .splice_max = splice_max};
    int rc = encode(m, in, version, out, &e);
    *splice_count = rc == 0 ? e.splice_count : 0;
    return rc;
}

int64_t proto_size(const struct proto_message *m, const void *in, int16_t version)
{
    ASSERT(m != NULL && in != NULL);
    if (!in_range(version, m->version_min, m->version_max))
        return ERR_UNSUPPORTED;
    struct enc e = {.b = NULL, .version = version, .flexible = version >= m->flexible_min};
    enc_struct(m->body, &e, in);
    return e.err != 0 ? e.err : (int64_t)e.n;
}
