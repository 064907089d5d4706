/*
 * KRaft metadata records as Kafka stores them in its __cluster_metadata log: each record's
 * value (the key is null) is a small frame around one metadata record schema
 * (AbstractApiMessageSerde in Kafka's server-common):
 *
 *   uvarint frame version (1), uvarint record type (the schema's apiKey),
 *   uvarint record version, then the record body in that version
 *
 * Every metadata schema is flexible from version 0, so the body ends with its tagged fields.
 * The record schemas are Kafka's own (src/proto/schema/metadata), generated into
 * proto/gen/kafka.h as struct kafka_<snake(Name)> like every Kafka message.
 *
 * This module owns no state and does no I/O. Decoding never trusts its input: a frame version
 * other than 1, an unknown type or a version outside the type's validVersions is refused, and so
 * is a value that ends early or has bytes after the body (a value is always whole: it comes out
 * of a record whose length was already checked, so a short one is corrupt, not incomplete).
 */
#ifndef CHRONIK_PROTO_METAREC_H
#define CHRONIK_PROTO_METAREC_H

#include "base/arena.h"
#include "base/buf.h"
#include "base/bytes.h"
#include "proto/proto.h"

#include <stdint.h>

/* AbstractApiMessageSerde.DEFAULT_FRAME_VERSION; version 0 was KRaft's 2.8 preview format. */
#define METAREC_FRAME_VERSION 1

/* Kafka's metadata record types (the apiKey of each schema) that Chronik uses. */
enum metarec_type {
    METAREC_REGISTER_BROKER = 0,
    METAREC_UNREGISTER_BROKER = 1,
    METAREC_TOPIC = 2,
    METAREC_PARTITION = 3,
    METAREC_CONFIG = 4,
    METAREC_PARTITION_CHANGE = 5,
    METAREC_FENCE_BROKER = 7,
    METAREC_UNFENCE_BROKER = 8,
    METAREC_REMOVE_TOPIC = 9,
    METAREC_FEATURE_LEVEL = 12,
    METAREC_PRODUCER_IDS = 15,
    METAREC_BROKER_REGISTRATION_CHANGE = 17,
    METAREC_NO_OP = 20,
};

/* A decoded record. body is a struct of message->body->bytes in the decode arena; bytes and
 * records fields in it point into the decoded value. */
struct metarec {
    int16_t type;
    int16_t version;
    const struct proto_message *message;
    void *body;
};

/* The schema of a record type, or NULL if the type has none here. */
const struct proto_message *metarec_message(int16_t type);

/* Appends the framed record (body is the type's generated struct). ERR_NOT_FOUND for an unknown
 * type, ERR_UNSUPPORTED for a version outside validVersions, or the codec's ERR_TOO_LARGE; out is
 * unchanged on error. */
int metarec_encode(int16_t type, int16_t version, const void *body, struct buf *out);
/* The bytes metarec_encode would append, or its error. */
int64_t metarec_size(int16_t type, int16_t version, const void *body);

/* Decodes one record value. Body memory comes from a. ERR_UNSUPPORTED for another frame
 * version, an unknown type or an unsupported version; ERR_CORRUPT for a value that is short, has
 * trailing bytes or breaks the schema; ERR_TOO_LARGE when the arena's limit is reached. */
int metarec_decode(struct arena *a, struct slice value, struct metarec *out);

#endif
