/*
 * Random fill of generated message structs, driven by the descriptors alone so that it covers
 * every API and version without per-message code. Arrays stay short and shrink with depth so a
 * message stays small; tagged fields are left at their default half of the time so both the
 * "omitted" and the "written" paths of the tagged-field section are exercised.
 */
#include "proto_fill.h"

#include "base/assert.h"
#include "base/error.h"

#include <stdlib.h>
#include <string.h>

#define FILL_ARRAY_COUNT_MAX  4u
#define FILL_STRING_BYTES_MAX 12u
#define FILL_DEPTH_MAX        6u

struct fill {
    struct rng *rng;
    struct arena *arena;
    int16_t version;
};

static int fill_struct(const struct proto_struct *s, struct fill *fl, unsigned depth, uint8_t *out);

static bool present(const struct proto_field *f, int16_t v)
{
    return v >= f->versions_min && v <= f->versions_max;
}

static bool nullable(const struct proto_field *f, int16_t v)
{
    return v >= f->nullable_min && v <= f->nullable_max;
}

static size_t elem_size(const struct proto_field *f)
{
    static const size_t sizes[] = {
        [PROTO_BOOL] = sizeof(bool),
        [PROTO_INT8] = 1,
        [PROTO_INT16] = 2,
        [PROTO_UINT16] = 2,
        [PROTO_INT32] = 4,
        [PROTO_UINT32] = 4,
        [PROTO_INT64] = 8,
        [PROTO_FLOAT64] = sizeof(double),
        [PROTO_UUID] = 16,
        [PROTO_STRING] = sizeof(struct proto_str),
        [PROTO_BYTES] = sizeof(struct slice),
        [PROTO_RECORDS] = sizeof(struct slice),
    };
    if (f->type == PROTO_STRUCT)
        return (f->flags & PROTO_FIELD_ARRAY) ? f->nested->bytes : sizeof(void *);
    ASSERT(f->type < sizeof(sizes) / sizeof(sizes[0]));
    return sizes[f->type];
}

static int fill_str(struct fill *fl, bool may_be_null, struct proto_str *out)
{
    if (may_be_null && rng_chance(fl->rng, 1, 6)) {
        *out = proto_str_make(NULL);
        return 0;
    }
    size_t len = rng_below(fl->rng, FILL_STRING_BYTES_MAX + 1);
    char *p = arena_alloc(fl->arena, len + 1);
    if (p == NULL)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < len; i++)
        p[i] = (char)('a' + rng_below(fl->rng, 26));
    p[len] = '\0';
    out->ptr = p;
    out->len = len;
    return 0;
}

static int fill_bytes(struct fill *fl, bool may_be_null, struct slice *out)
{
    if (may_be_null && rng_chance(fl->rng, 1, 6)) {
        *out = slice_make(NULL, 0);
        return 0;
    }
    size_t len = rng_below(fl->rng, 3 * FILL_STRING_BYTES_MAX);
    uint8_t *p = arena_alloc(fl->arena, len);
    if (p == NULL)
        return ERR_TOO_LARGE;
    rng_fill(fl->rng, p, len);
    *out = slice_make(p, len);
    return 0;
}

static int fill_value(const struct proto_field *f, struct fill *fl, bool may_be_null,
                      bool inline_struct, unsigned depth, uint8_t *p)
{
    switch ((enum proto_type)f->type) {
    case PROTO_BOOL:
        *(bool *)p = rng_chance(fl->rng, 1, 2);
        return 0;
    case PROTO_STRING:
        return fill_str(fl, may_be_null, (struct proto_str *)p);
    case PROTO_BYTES:
    case PROTO_RECORDS:
        return fill_bytes(fl, may_be_null, (struct slice *)p);
    case PROTO_STRUCT: {
        if (inline_struct)
            return fill_struct(f->nested, fl, depth + 1, p);
        if (may_be_null && rng_chance(fl->rng, 1, 4)) {
            *(void **)p = NULL;
            return 0;
        }
        uint8_t *sp = arena_zalloc(fl->arena, f->nested->bytes);
        if (sp == NULL)
            return ERR_TOO_LARGE;
        *(void **)p = sp;
        return fill_struct(f->nested, fl, depth + 1, sp);
    }
    default:
        /* Integers, float64 and uuid: any bit pattern is a valid value. */
        rng_fill(fl->rng, p, elem_size(f));
        return 0;
    }
}

static int fill_array(const struct proto_field *f, struct fill *fl, unsigned depth,
                      struct proto_array *out)
{
    if (nullable(f, fl->version) && rng_chance(fl->rng, 1, 6)) {
        out->items = NULL;
        out->count = 0;
        return 0;
    }
    size_t max = depth >= FILL_DEPTH_MAX ? 0 : FILL_ARRAY_COUNT_MAX >> (depth / 2);
    size_t count = rng_below(fl->rng, max + 1);
    size_t size = elem_size(f);
    /* One spare byte keeps items non-NULL (not null) when count is 0. */
    uint8_t *items = arena_calloc(fl->arena, count + 1, size);
    if (items == NULL)
        return ERR_TOO_LARGE;
    out->items = items;
    out->count = count;
    for (size_t i = 0; i < count; i++) {
        int err = fill_value(f, fl, false, true, depth, items + i * size);
        if (err != 0)
            return err;
    }
    return 0;
}

static int fill_struct(const struct proto_struct *s, struct fill *fl, unsigned depth, uint8_t *out)
{
    ASSERT(s != NULL && out != NULL);
    for (uint32_t i = 0; i < s->field_count; i++) {
        const struct proto_field *f = &s->fields[i];
        uint8_t *p = out + f->offset;
        if (!present(f, fl->version))
            continue;
        /* A zeroed tagged field is usually its default, so half of them stay out of the wire. */
        if (f->tag >= 0 && rng_chance(fl->rng, 1, 2))
            continue;
        int err = (f->flags & PROTO_FIELD_ARRAY)
                      ? fill_array(f, fl, depth, (struct proto_array *)p)
                      : fill_value(f, fl, nullable(f, fl->version), false, depth, p);
        if (err != 0)
            return err;
    }
    return 0;
}

int proto_fill_random(const struct proto_message *m, struct rng *rng, struct arena *a,
                      int16_t version, void *out)
{
    ASSERT(m != NULL && out != NULL);
    ASSERT(version >= m->version_min && version <= m->version_max);
    proto_init(m, out);
    struct fill fl = {.rng = rng, .arena = a, .version = version};
    return fill_struct(m->body, &fl, 0, out);
}

uint64_t proto_test_seed(const char *name, uint64_t fallback)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return fallback;
    return strtoull(s, NULL, 0);
}
