/*
 * The Kafka protocol codec: one table-driven decoder, encoder and sizer for every Kafka message,
 * driven by the constant descriptor tables that tools/gen_proto.py generates from
 * the JSON schemas in src/proto/schema/ into the build tree (proto/gen/kafka.h and kafka.c).
 *
 * The generated header gives each message a C struct and typed wrappers (see src/proto/README
 * for the naming rule), e.g.
 *   int kafka_produce_request_decode(struct arena *, struct reader *, int16_t version,
 *                                    struct kafka_produce_request *out);
 *   int kafka_produce_request_encode(const struct kafka_produce_request *, int16_t version,
 *                                    struct buf *out);
 *   int64_t kafka_produce_request_size(const struct kafka_produce_request *, int16_t version);
 *   void kafka_produce_request_init(struct kafka_produce_request *out);
 * which call the generic functions below with the message's descriptor.
 *
 * C representation of the schema types:
 *   bool, int8..int64, uint16, uint32, float64 -> bool, int8_t..int64_t, uint16_t, uint32_t, double
 *   uuid            -> struct proto_uuid (16 bytes)
 *   string          -> struct proto_str: ptr NULL is null; a decoded string is a NUL-terminated
 *                      copy in the decode arena
 *   bytes, records  -> struct slice: ptr NULL is null; decoded, it points INTO the input bytes,
 *                      which must outlive the decoded message (never copied)
 *   []T             -> struct { T *items; size_t count; }: items NULL is null; a decoded empty
 *                      array has a non-NULL items
 *   struct T        -> struct T *: NULL is null
 *
 * Ownership: decode allocates only from the caller's arena (bounded by its limit; arena
 * exhaustion is ERR_TOO_LARGE) and borrows bytes/records from the input; freeing the arena
 * frees the message. Encode appends to the caller's buf and reads the message without keeping
 * any pointer into it.
 *
 * Decoding reads exactly one message from the reader and leaves any bytes after it there (the
 * caller decides whether trailing bytes are an error). A field absent in the version (or a tagged
 * field not sent) takes the schema's default (else 0, "", empty, null as Kafka does); absent
 * non-null struct fields are allocated with their defaults so handlers need no NULL checks outside
 * nullable versions. Unknown tags are skipped and kept nowhere. Errors: ERR_INCOMPLETE (the input
 * ends early, or an array count exceeds the bytes left), ERR_CORRUPT (impossible values: bad
 * lengths, null where the version does not allow it, a tagged field whose size disagrees with its
 * content, over-long varints), ERR_UNSUPPORTED (version outside validVersions), ERR_TOO_LARGE (a
 * count or string over base/limits.h, or the arena limit reached). On error *out holds partial data
 * that must not be used; the arena keeps what was allocated until it is reset.
 *
 * Encoding is lenient where Kafka's Java encoder throws: a NULL string, bytes, array or struct
 * in a version where the field is not nullable is written as empty (or the default struct), and
 * a non-default value of a field absent in the version is silently not written. Tagged fields
 * are written only when they differ from their default. Encode fails only on an unsupported
 * version (ERR_UNSUPPORTED) or a string/array too long for the wire (ERR_TOO_LARGE); then buf
 * is left as it was. size() returns exactly the bytes encode() appends, or the same error.
 *
 * This module never performs I/O, never keeps state between calls and never trusts input bytes:
 * every length and count is checked against base/limits.h and the bytes left before use.
 */
#ifndef CHRONIK_PROTO_PROTO_H
#define CHRONIK_PROTO_PROTO_H

#include "base/arena.h"
#include "base/buf.h"
#include "base/bytes.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A Kafka string. ptr NULL means null; otherwise len bytes (decoded ones are NUL-terminated). */
struct proto_str {
    const char *ptr;
    size_t len;
};

static inline struct proto_str proto_str_make(const char *s)
{
    return (struct proto_str){.ptr = s, .len = s != NULL ? strlen(s) : 0};
}

/* Whether s is not null and holds exactly the C string c (false if either is null). */
static inline bool proto_str_eq(struct proto_str s, const char *c)
{
    return s.ptr != NULL && c != NULL && s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

struct proto_uuid {
    uint8_t bytes[16];
};

/* The layout every generated array member has ({ T *items; size_t count; }). */
struct proto_array {
    void *items;
    size_t count;
};

enum proto_type {
    PROTO_BOOL,
    PROTO_INT8,
    PROTO_INT16,
    PROTO_UINT16,
    PROTO_INT32,
    PROTO_UINT32,
    PROTO_INT64,
    PROTO_FLOAT64,
    PROTO_UUID,
    PROTO_STRING,
    PROTO_BYTES,
    PROTO_RECORDS,
    PROTO_STRUCT,
};

enum {
    PROTO_FIELD_ARRAY = 1u << 0,        /* an array of `type` */
    PROTO_FIELD_CLASSIC = 1u << 1,      /* never compact, even in flexible versions (ClientId) */
    PROTO_FIELD_DEFAULT_NULL = 1u << 2, /* the schema default is null */
};

struct proto_struct;

/* One schema field. Version ranges are inclusive; an empty range has min > max. */
struct proto_field {
    const char *name; /* Kafka's field name, for diagnostics and tests */
    uint32_t offset;  /* offsetof the member in the generated struct */
    uint8_t type;     /* enum proto_type; the element type of an array */
    uint8_t flags;    /* PROTO_FIELD_* */
    int16_t versions_min, versions_max;
    int16_t nullable_min, nullable_max;
    int32_t tag;                       /* tag number of a tagged field, else -1 */
    const struct proto_struct *nested; /* the struct type of PROTO_STRUCT fields */
    int64_t default_int;               /* default of integer and bool fields */
    double default_float;              /* default of float64 fields */
    const char *default_str;           /* default of string fields (NULL: "") */
};

struct proto_struct {
    const char *name; /* the generated C struct name */
    uint32_t bytes;   /* sizeof the generated C struct */
    uint32_t field_count;
    const struct proto_field *fields; /* in wire order */
    uint32_t tagged_count;
    const uint16_t *tagged_order; /* indexes into fields of tagged fields, by tag */
};

enum proto_message_kind {
    PROTO_KIND_REQUEST,
    PROTO_KIND_RESPONSE,
    PROTO_KIND_HEADER,
    PROTO_KIND_DATA,
    PROTO_KIND_METADATA, /* a KRaft metadata record; api_key is the record type (proto/metarec.h) */
};

struct proto_message {
    const char *name; /* Kafka's message name, e.g. "ProduceRequest" */
    uint8_t kind;     /* enum proto_message_kind */
    int16_t api_key;  /* -1 for headers and data messages; the record type of metadata records */
    int16_t version_min, version_max;
    int16_t flexible_min; /* first flexible version, or INT16_MAX if none */
    const struct proto_struct *body;
};

/* One Kafka API: what ApiVersions advertises and dispatch needs. */
struct proto_api {
    int16_t api_key;
    const char *name; /* e.g. "Produce" */
    int16_t version_min, version_max;
    int16_t flexible_min; /* first flexible version, or INT16_MAX if none */
    bool latest_version_unstable;
    const struct proto_message *request;
    const struct proto_message *response;
};

/* Decodes one message of the given version from r into out (a struct of m->body->bytes). */
int proto_decode(const struct proto_message *m, struct arena *a, struct reader *r, int16_t version,
                 void *out);
/* Appends the encoding of in to out. */
int proto_encode(const struct proto_message *m, const void *in, int16_t version, struct buf *out);
/*
 * Spliced encoding, for responses whose record data is sent from elsewhere (Fetch serving
 * segment files with sendfile): every non-null records field is written as its length prefix
 * only, and noted in splices[] in encoding order with the position in `out` where its bytes
 * belong. Its slice's ptr is then an opaque cookie handed back in the splice, never read.
 * ERR_TOO_LARGE when more than splice_max records fields are present.
 */
struct proto_splice {
    size_t at;          /* offset in `out` before which the records' bytes go */
    size_t len;         /* bytes of records */
    const void *cookie; /* the slice's ptr */
};
int proto_encode_spliced(const struct proto_message *m, const void *in, int16_t version,
                         struct buf *out, struct proto_splice *splices, size_t splice_max,
                         size_t *splice_count);
/* The bytes proto_encode would append, or its negative error. */
int64_t proto_size(const struct proto_message *m, const void *in, int16_t version);
/* Sets every field of out to its schema default; struct fields become NULL, arrays empty. */
void proto_init(const struct proto_message *m, void *out);

/* The API with this key, or NULL if there is none. */
const struct proto_api *proto_api_get(int16_t api_key);
/* The number of entries in the API registry; keys run 0..count-1 without gaps. */
size_t proto_api_count(void);
/*
 * The request/response header version for an API version: 2/1 in flexible versions, else 1/0,
 * with Kafka's exceptions (ControlledShutdown v0 requests use header v0; ApiVersions responses
 * always use header v0). ERR_UNSUPPORTED for an unknown API key.
 */
int proto_request_header_version(int16_t api_key, int16_t api_version);
int proto_response_header_version(int16_t api_key, int16_t api_version);

#endif
