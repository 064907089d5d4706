/*
 * The cluster wire format (see wire.h): struct raft_msg <-> the generated RaftMessages structs,
 * the hello decision, and whole frames with Kafka's headers.
 *
 * Invariant of pack/unpack: unpack(pack(msgs)) gives back every message with every field equal
 * (only the order between groups, and between a group's full messages and its coalesced
 * heartbeats, may change). Coalescing is therefore limited to heartbeats whose other fields hold
 * exactly what the core's msg_new leaves in them.
 */
#include "cluster/wire.h"

#include "base/assert.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct wire_group wire_metadata_group = {
    .topic_id = {.bytes = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    .partition = 0,
};

/* ---- Raft messages ------------------------------------------------------------------------- */

enum entry_kind { ENTRY_MESSAGE, ENTRY_HEARTBEAT, ENTRY_HEARTBEAT_RESP };

/* Whether m is a heartbeat (response) the short entry carries without loss. */
static enum entry_kind entry_kind(const struct raft_msg *m)
{
    bool plain = m->index == 0 && m->log_term == 0 && m->last_index == 0 && m->hint_index == -1 &&
                 m->hint_term == 0 && m->reject == 0 && m->flag == 0 && m->batch_count == 0;

    if (plain && m->type == RAFT_MSG_HEARTBEAT)
        return ENTRY_HEARTBEAT;
    if (plain && m->type == RAFT_MSG_HEARTBEAT_RESP && m->commit == 0)
        return ENTRY_HEARTBEAT_RESP;
    return ENTRY_MESSAGE;
}

/* Append bounds shared by both directions: at most RAFT_MSG_BATCHES_MAX batches, each at most
 * LOG_BATCH_BYTES_MAX, together at most RAFT_MSG_BYTES_MAX unless there is only one. */
static int check_batch_bytes(size_t count, const size_t *lens)
{
    uint64_t total = 0;

    if (count > RAFT_MSG_BATCHES_MAX)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < count; i++) {
        if (lens[i] > LOG_BATCH_BYTES_MAX)
            return ERR_TOO_LARGE;
        total += lens[i];
    }
    return count > 1 && total > RAFT_MSG_BYTES_MAX ? ERR_TOO_LARGE : 0;
}

int wire_msg_check(const struct wire_msg *w)
{
    const struct raft_msg *m = &w->msg;
    size_t lens[RAFT_MSG_BATCHES_MAX];

    if (m->type >= RAFT_MSG_TYPE_COUNT || w->group.partition < 0 || m->from < 0 || m->to < 0)
        return ERR_INVALID;
    if (m->batch_count == 0)
        return 0;
    if (m->type != RAFT_MSG_APPEND || m->batches == NULL || w->batch_bytes == NULL)
        return ERR_INVALID;
    if (m->batch_count > RAFT_MSG_BATCHES_MAX)
        return ERR_TOO_LARGE;
    for (uint16_t i = 0; i < m->batch_count; i++) {
        if (w->batch_bytes[i].len != m->batches[i].bytes)
            return ERR_INVALID;
        lens[i] = w->batch_bytes[i].len;
    }
    return check_batch_bytes(m->batch_count, lens);
}

static int check_out_msg(const struct wire_msg *w, int32_t from, int32_t to, size_t *batches)
{
    if (w->msg.from != from || w->msg.to != to)
        return ERR_INVALID;
    *batches += w->msg.batch_count;
    return wire_msg_check(w);
}

static bool uuid_eq(const struct proto_uuid *a, const struct proto_uuid *b)
{
    return memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

struct sort_key {
    struct proto_uuid topic_id;
    size_t at;
};

/* Orders messages by topic id, then by position, so a topic's messages keep their order. */
static int by_topic(const void *pa, const void *pb)
{
    const struct sort_key *a = pa, *b = pb;
    int c = memcmp(a->topic_id.bytes, b->topic_id.bytes, sizeof(a->topic_id.bytes));

    if (c != 0)
        return c;
    return a->at < b->at ? -1 : a->at > b->at;
}

static void pack_message(const struct wire_msg *w, struct kafka_raft_messages_request_raft_batch *b,
                         struct kafka_raft_messages_request_raft_message *out)
{
    const struct raft_msg *m = &w->msg;

    *out = (struct kafka_raft_messages_request_raft_message){
        .partition = w->group.partition,
        .type = (int8_t)m->type,
        .term = m->term,
        .index = m->index,
        .log_term = m->log_term,
        .last_index = m->last_index,
        .commit = m->commit,
        .hint_index = m->hint_index,
        .hint_term = m->hint_term,
        .seq = m->seq,
        .reject = m->reject != 0,
        .flag = m->flag != 0,
        .batches = {.items = b, .count = m->batch_count},
    };
    for (uint16_t i = 0; i < m->batch_count; i++) {
        const struct raft_batch *s = &m->batches[i];

        b[i] = (struct kafka_raft_messages_request_raft_batch){
            .first_index = s->first_index,
            .last_index = s->last_index,
            .term = s->term,
            .kind = (int8_t)s->kind,
            .op = (int8_t)s->op,
            .node = s->node,
            .records = w->batch_bytes[i],
        };
    }
}

int wire_raft_pack(struct arena *a, int32_t from, int32_t to, const struct wire_msg *msgs,
                   size_t count, struct kafka_raft_messages_request *out)
{
    size_t batches = 0, topics = 0;
    struct sort_key *order;
    int rc;

    if (from < 0 || to < 0 || from == to)
        return ERR_INVALID;
    if (count > CLUSTER_FRAME_MSGS_MAX)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < count; i++) {
        rc = check_out_msg(&msgs[i], from, to, &batches);
        if (rc != 0)
            return rc;
    }
    if (batches > CLUSTER_FRAME_BATCHES_MAX)
        return ERR_TOO_LARGE;

    order = arena_calloc(a, count, sizeof(*order));
    if (order == NULL)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < count; i++)
        order[i] = (struct sort_key){.topic_id = msgs[i].group.topic_id, .at = i};
    qsort(order, count, sizeof(*order), by_topic);
    for (size_t i = 0; i < count; i++) {
        if (i == 0 || !uuid_eq(&order[i].topic_id, &order[i - 1].topic_id))
            topics++;
    }
    if (topics > CLUSTER_FRAME_TOPICS_MAX)
        return ERR_TOO_LARGE;

    kafka_raft_messages_request_init(out);
    out->from_node_id = from;
    out->to_node_id = to;
    out->topics.items = arena_calloc(a, topics, sizeof(*out->topics.items));
    if (out->topics.items == NULL)
        return ERR_TOO_LARGE;
    out->topics.count = topics;

    for (size_t i = 0, t = 0; i < count; t++) {
        struct kafka_raft_messages_request_raft_topic *topic = &out->topics.items[t];
        size_t end = i, n[3] = {0, 0, 0};

        while (end < count && uuid_eq(&order[end].topic_id, &order[i].topic_id))
            n[entry_kind(&msgs[order[end++].at].msg)]++;
        topic->topic_id = order[i].topic_id;
        topic->messages.items = arena_calloc(a, n[ENTRY_MESSAGE], sizeof(*topic->messages.items));
        topic->heartbeats.items =
            arena_calloc(a, n[ENTRY_HEARTBEAT], sizeof(*topic->heartbeats.items));
        topic->heartbeat_responses.items =
            arena_calloc(a, n[ENTRY_HEARTBEAT_RESP], sizeof(*topic->heartbeat_responses.items));
        if (topic->messages.items == NULL || topic->heartbeats.items == NULL ||
            topic->heartbeat_responses.items == NULL)
            return ERR_TOO_LARGE;
        for (; i < end; i++) {
            const struct wire_msg *w = &msgs[order[i].at];
            const struct raft_msg *m = &w->msg;

            switch (entry_kind(m)) {
            case ENTRY_MESSAGE: {
                struct kafka_raft_messages_request_raft_batch *b =
                    arena_calloc(a, m->batch_count, sizeof(*b));

                if (b == NULL)
                    return ERR_TOO_LARGE;
                pack_message(w, b, &topic->messages.items[topic->messages.count++]);
                break;
            }
            case ENTRY_HEARTBEAT:
                topic->heartbeats.items[topic->heartbeats.count++] =
                    (struct kafka_raft_messages_request_raft_heartbeat){
                        .partition = w->group.partition,
                        .term = m->term,
                        .commit = m->commit,
                        .seq = m->seq,
                    };
                break;
            case ENTRY_HEARTBEAT_RESP:
                topic->heartbeat_responses.items[topic->heartbeat_responses.count++] =
                    (struct kafka_raft_messages_request_raft_heartbeat_response){
                        .partition = w->group.partition,
                        .term = m->term,
                        .seq = m->seq,
                    };
                break;
            }
        }
    }
    return 0;
}

/* A message as the core's msg_new leaves it, before the type's own fields are set. */
static void msg_defaults(struct wire_msg *w, const struct proto_uuid *topic, int32_t partition,
                         int32_t from, int32_t to)
{
    memset(w, 0, sizeof(*w));
    w->group.topic_id = *topic;
    w->group.partition = partition;
    w->msg.from = from;
    w->msg.to = to;
    w->msg.hint_index = -1;
}

static int unpack_message(const struct kafka_raft_messages_request_raft_message *in,
                          struct raft_batch *shapes, struct slice *bytes, struct wire_msg *w)
{
    struct raft_msg *m = &w->msg;
    size_t lens[RAFT_MSG_BATCHES_MAX];
    int rc;

    if (in->partition < 0 || in->type < 0 || in->type >= RAFT_MSG_TYPE_COUNT)
        return ERR_CORRUPT;
    if (in->batches.count > 0 && in->type != RAFT_MSG_APPEND)
        return ERR_CORRUPT;
    if (in->batches.count > RAFT_MSG_BATCHES_MAX)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < in->batches.count; i++) {
        const struct kafka_raft_messages_request_raft_batch *b = &in->batches.items[i];

        if (b->records.ptr == NULL || b->kind < 0 || b->kind > RAFT_BATCH_CONFIG || b->op < 0 ||
            b->op > RAFT_CHANGE_REMOVE)
            return ERR_CORRUPT;
        lens[i] = b->records.len;
    }
    rc = check_batch_bytes(in->batches.count, lens);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < in->batches.count; i++) {
        const struct kafka_raft_messages_request_raft_batch *b = &in->batches.items[i];

        shapes[i] = (struct raft_batch){
            .first_index = b->first_index,
            .last_index = b->last_index,
            .term = b->term,
            .bytes = (uint32_t)b->records.len,
            .kind = (uint8_t)b->kind,
            .op = (uint8_t)b->op,
            .node = b->node,
        };
        bytes[i] = b->records;
    }
    m->type = (uint8_t)in->type;
    m->term = in->term;
    m->index = in->index;
    m->log_term = in->log_term;
    m->last_index = in->last_index;
    m->commit = in->commit;
    m->hint_index = in->hint_index;
    m->hint_term = in->hint_term;
    m->seq = in->seq;
    m->reject = in->reject;
    m->flag = in->flag;
    m->batch_count = (uint16_t)in->batches.count;
    m->batches = in->batches.count > 0 ? shapes : NULL;
    w->batch_bytes = in->batches.count > 0 ? bytes : NULL;
    return 0;
}

int wire_raft_unpack(struct arena *a, const struct kafka_raft_messages_request *in,
                     struct wire_raft *out)
{
    uint64_t entries = 0, batches = 0;
    struct raft_batch *shapes;
    struct slice *bytes;
    size_t n = 0, nb = 0;
    int rc;

    if (in->from_node_id < 0 || in->to_node_id < 0 || in->from_node_id == in->to_node_id)
        return ERR_CORRUPT;
    if (in->topics.count > CLUSTER_FRAME_TOPICS_MAX)
        return ERR_TOO_LARGE;
    for (size_t t = 0; t < in->topics.count; t++) {
        const struct kafka_raft_messages_request_raft_topic *topic = &in->topics.items[t];

        entries +=
            topic->messages.count + topic->heartbeats.count + topic->heartbeat_responses.count;
    }
    if (entries > CLUSTER_FRAME_MSGS_MAX)
        return ERR_TOO_LARGE;
    for (size_t t = 0; t < in->topics.count; t++) {
        const struct kafka_raft_messages_request_raft_topic *topic = &in->topics.items[t];

        for (size_t i = 0; i < topic->messages.count; i++)
            batches += topic->messages.items[i].batches.count;
    }
    if (batches > CLUSTER_FRAME_BATCHES_MAX)
        return ERR_TOO_LARGE;

    out->from = in->from_node_id;
    out->to = in->to_node_id;
    out->count = (size_t)entries;
    out->msgs = arena_calloc(a, out->count, sizeof(*out->msgs));
    shapes = arena_calloc(a, (size_t)batches, sizeof(*shapes));
    bytes = arena_calloc(a, (size_t)batches, sizeof(*bytes));
    if (out->msgs == NULL || shapes == NULL || bytes == NULL)
        return ERR_TOO_LARGE;

    for (size_t t = 0; t < in->topics.count; t++) {
        const struct kafka_raft_messages_request_raft_topic *topic = &in->topics.items[t];

        for (size_t i = 0; i < topic->messages.count; i++) {
            const struct kafka_raft_messages_request_raft_message *m = &topic->messages.items[i];
            struct wire_msg *w = &out->msgs[n++];

            msg_defaults(w, &topic->topic_id, m->partition, out->from, out->to);
            rc = unpack_message(m, shapes + nb, bytes + nb, w);
            if (rc != 0)
                return rc;
            nb += m->batches.count;
        }
        for (size_t i = 0; i < topic->heartbeats.count; i++) {
            const struct kafka_raft_messages_request_raft_heartbeat *h =
                &topic->heartbeats.items[i];
            struct wire_msg *w = &out->msgs[n++];

            if (h->partition < 0)
                return ERR_CORRUPT;
            msg_defaults(w, &topic->topic_id, h->partition, out->from, out->to);
            w->msg.type = RAFT_MSG_HEARTBEAT;
            w->msg.term = h->term;
            w->msg.commit = h->commit;
            w->msg.seq = h->seq;
        }
        for (size_t i = 0; i < topic->heartbeat_responses.count; i++) {
            const struct kafka_raft_messages_request_raft_heartbeat_response *h =
                &topic->heartbeat_responses.items[i];
            struct wire_msg *w = &out->msgs[n++];

            if (h->partition < 0)
                return ERR_CORRUPT;
            msg_defaults(w, &topic->topic_id, h->partition, out->from, out->to);
            w->msg.type = RAFT_MSG_HEARTBEAT_RESP;
            w->msg.term = h->term;
            w->msg.seq = h->seq;
        }
    }
    return 0;
}

/* Bounds of one entry's encoding: the fixed fields, every tagged field present (tag, size and
 * an 8-byte value each), array counts and tag sections; a topic's entry is charged to each of
 * its messages, so the bound holds whatever the grouping. */
#define WIRE_TOPIC_BYTES_MAX     40u
#define WIRE_MESSAGE_BYTES_MAX   128u
#define WIRE_BATCH_BYTES_MAX     48u
#define WIRE_HEARTBEAT_BYTES_MAX 40u

size_t wire_msg_bytes(const struct wire_msg *m)
{
    size_t n = WIRE_TOPIC_BYTES_MAX;

    if (entry_kind(&m->msg) != ENTRY_MESSAGE)
        return n + WIRE_HEARTBEAT_BYTES_MAX;
    n += WIRE_MESSAGE_BYTES_MAX;
    for (uint16_t i = 0; i < m->msg.batch_count; i++)
        n += WIRE_BATCH_BYTES_MAX + m->msg.batches[i].bytes;
    return n;
}

/* ---- controller RPCs ----------------------------------------------------------------------- */

/* One RPC's encoding besides its payload: kind, correlation id, api key and version, error,
 * the payload's length (a uvarint of at most 5 bytes) and the tag section. */
#define WIRE_RPC_BYTES_MAX 32u

/* The largest RPC fits a frame with room for the header and the frame's own fields. */
STATIC_ASSERT(CLUSTER_RPC_BYTES_MAX + 1u * KIB <= CLUSTER_FRAME_BYTES_MAX,
              "a frame holds the largest RPC");

int wire_rpc_check(const struct wire_rpc *r)
{
    if (r->kind != WIRE_RPC_REQUEST && r->kind != WIRE_RPC_RESPONSE)
        return ERR_INVALID;
    if ((r->kind == WIRE_RPC_REQUEST && r->error != 0) || r->from < 0 || r->to < 0 ||
        (r->payload.ptr == NULL && r->payload.len > 0))
        return ERR_INVALID;
    return r->payload.len > CLUSTER_RPC_BYTES_MAX ? ERR_TOO_LARGE : 0;
}

size_t wire_rpc_bytes(const struct wire_rpc *r)
{
    return WIRE_RPC_BYTES_MAX + r->payload.len;
}

int wire_rpc_pack(struct arena *a, int32_t from, int32_t to, const struct wire_rpc *rpcs,
                  size_t count, struct kafka_cluster_rpc_request *out)
{
    int rc;

    if (from < 0 || to < 0 || from == to)
        return ERR_INVALID;
    if (count > CLUSTER_FRAME_RPCS_MAX)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < count; i++) {
        if (rpcs[i].from != from || rpcs[i].to != to)
            return ERR_INVALID;
        rc = wire_rpc_check(&rpcs[i]);
        if (rc != 0)
            return rc;
    }
    kafka_cluster_rpc_request_init(out);
    out->from_node_id = from;
    out->to_node_id = to;
    out->rpcs.items = arena_calloc(a, count, sizeof(*out->rpcs.items));
    if (out->rpcs.items == NULL && count > 0)
        return ERR_TOO_LARGE;
    out->rpcs.count = count;
    for (size_t i = 0; i < count; i++) {
        const struct wire_rpc *r = &rpcs[i];

        out->rpcs.items[i] = (struct kafka_cluster_rpc_request_rpc){
            .kind = (int8_t)r->kind,
            .correlation_id = r->correlation_id,
            .api_key = r->api_key,
            .api_version = r->api_version,
            .error_code = r->error,
            .payload = r->payload,
        };
    }
    return 0;
}

int wire_rpc_unpack(struct arena *a, const struct kafka_cluster_rpc_request *in,
                    struct wire_rpcs *out)
{
    if (in->from_node_id < 0 || in->to_node_id < 0 || in->from_node_id == in->to_node_id)
        return ERR_CORRUPT;
    if (in->rpcs.count > CLUSTER_FRAME_RPCS_MAX)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < in->rpcs.count; i++) {
        const struct kafka_cluster_rpc_request_rpc *r = &in->rpcs.items[i];

        if ((r->kind != WIRE_RPC_REQUEST && r->kind != WIRE_RPC_RESPONSE) ||
            (r->kind == WIRE_RPC_REQUEST && r->error_code != 0) || r->payload.ptr == NULL)
            return ERR_CORRUPT;
        if (r->payload.len > CLUSTER_RPC_BYTES_MAX)
            return ERR_TOO_LARGE;
    }
    out->from = in->from_node_id;
    out->to = in->to_node_id;
    out->count = in->rpcs.count;
    out->rpcs = arena_calloc(a, out->count, sizeof(*out->rpcs));
    if (out->rpcs == NULL && out->count > 0)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < in->rpcs.count; i++) {
        const struct kafka_cluster_rpc_request_rpc *r = &in->rpcs.items[i];

        out->rpcs[i] = (struct wire_rpc){
            .from = out->from,
            .to = out->to,
            .kind = (uint8_t)r->kind,
            .correlation_id = r->correlation_id,
            .api_key = r->api_key,
            .api_version = r->api_version,
            .error = r->error_code,
            .payload = r->payload,
        };
    }
    return 0;
}

/* ---- hello --------------------------------------------------------------------------------- */

/* "1,2,3": ascending ids, cut short to fit cap. */
static void format_voters(const int32_t *ids, uint32_t n, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < n && len < cap; i++) {
        int w = snprintf(buf + len, cap - len, i == 0 ? "%d" : ",%d", (int)ids[i]);
        len += w > 0 ? (size_t)w : 0;
    }
}

void wire_hello_decide(const struct wire_hello *h, const char *cluster_id, int32_t self,
                       const int32_t *voter_ids, uint32_t voter_count, bool admitted,
                       char *reason_buf, struct wire_hello_answer *out)
{
    int16_t lo = MAX(h->version_min, (int16_t)WIRE_PROTOCOL_VERSION_MIN);
    int16_t hi = MIN(h->version_max, (int16_t)WIRE_PROTOCOL_VERSION_MAX);
    const size_t n = CLUSTER_HELLO_REASON_BYTES_MAX;

    *out = (struct wire_hello_answer){
        .error_code = WIRE_HELLO_OK,
        .cluster_id = cluster_id[0] != 0 ? cluster_id : h->cluster_id,
        .node_id = self,
        .version = -1,
    };
    /* %.64s: the sender's strings are bounded on decode; quote no more than that. */
    if (h->cluster_id[0] == 0 && cluster_id[0] == 0) {
        out->error_code = WIRE_HELLO_INCONSISTENT_CLUSTER_ID;
        out->cluster_id = cluster_id;
        snprintf(reason_buf, n,
                 "neither node %d nor this node (%d) knows the cluster id yet; one of them must "
                 "first reach a node that does",
                 h->node_id, self);
    } else if (h->cluster_id[0] != 0 && cluster_id[0] != 0 &&
               strcmp(h->cluster_id, cluster_id) != 0) {
        out->error_code = WIRE_HELLO_INCONSISTENT_CLUSTER_ID;
        snprintf(reason_buf, n,
                 "node %d belongs to cluster %.40s, this node (%d) to %.40s: one of them was "
                 "started with another cluster's data directory; give it its own, or a new one",
                 h->node_id, h->cluster_id, self, cluster_id);
    } else if (lo > hi) {
        out->error_code = WIRE_HELLO_UNSUPPORTED_VERSION;
        snprintf(reason_buf, n,
                 "node %d speaks cluster protocol versions %d-%d, this node (%d) %d-%d", h->node_id,
                 h->version_min, h->version_max, self, WIRE_PROTOCOL_VERSION_MIN,
                 WIRE_PROTOCOL_VERSION_MAX);
    } else if (h->node_id == self) {
        out->error_code = WIRE_HELLO_DUPLICATE_BROKER_REGISTRATION;
        snprintf(reason_buf, n, "a node at %.64s:%u claims this node's id %d", h->host,
                 (unsigned)h->port, self);
    } else if (h->target_node_id != self) {
        out->error_code = WIRE_HELLO_INCONSISTENT_VOTER_SET;
        snprintf(reason_buf, n, "node %d dialled node %d at this address, but this is node %d",
                 h->node_id, h->target_node_id, self);
    } else if (h->voter_count > 0 && voter_count > 0 &&
               (h->voter_count != voter_count ||
                memcmp(h->voter_ids, voter_ids, voter_count * sizeof(*voter_ids)) != 0)) {
        char theirs[80], ours[80];
        format_voters(h->voter_ids, h->voter_count, theirs, sizeof(theirs));
        format_voters(voter_ids, voter_count, ours, sizeof(ours));
        out->error_code = WIRE_HELLO_INCONSISTENT_VOTER_SET;
        snprintf(reason_buf, n,
                 "node %d has voters %.40s, this node (%d) has %.40s: all nodes need the same "
                 "controller.quorum.voters (a standalone broker at this address?)",
                 h->node_id, theirs, self, ours);
    } else if (!admitted) {
        out->error_code = WIRE_HELLO_BROKER_ID_NOT_REGISTERED;
        snprintf(reason_buf, n, "node %d (%.64s:%u) is not a known member of this cluster",
                 h->node_id, h->host, (unsigned)h->port);
    } else {
        out->version = hi;
        return;
    }
    out->cluster_id = cluster_id;
    out->reason = reason_buf;
}

/* ---- frames -------------------------------------------------------------------------------- */

/* Starts a frame: a size placeholder, then the request header v2 or response header v1. */
static size_t frame_begin(struct buf *out, bool request, int16_t api_key, int32_t correlation_id)
{
    size_t start = out->len;

    buf_put_be32(out, 0);
    if (request) {
        struct kafka_request_header h;

        kafka_request_header_init(&h);
        h.request_api_key = api_key;
        h.request_api_version = 0;
        h.correlation_id = correlation_id;
        h.client_id = (struct proto_str){.ptr = NULL, .len = 0};
        (void)kafka_request_header_encode(&h, 2, out);
    } else {
        struct kafka_response_header h;

        kafka_response_header_init(&h);
        h.correlation_id = correlation_id;
        (void)kafka_response_header_encode(&h, 1, out);
    }
    return start;
}

static int frame_end(struct buf *out, size_t start, int rc)
{
    size_t len = out->len - start - WIRE_FRAME_PREFIX_BYTES;

    if (rc == 0 && len > CLUSTER_FRAME_BYTES_MAX)
        rc = ERR_TOO_LARGE;
    if (rc != 0) {
        out->len = start;
        return rc;
    }
    be32_store(out->data + start, (uint32_t)len);
    return 0;
}

int wire_hello_frame(const struct wire_hello *h, int32_t correlation_id, struct buf *out)
{
    struct kafka_cluster_hello_request req;
    size_t start = frame_begin(out, true, WIRE_API_CLUSTER_HELLO, correlation_id);

    kafka_cluster_hello_request_init(&req);
    req.cluster_id = proto_str_make(h->cluster_id);
    req.node_id = h->node_id;
    req.target_node_id = h->target_node_id;
    req.host = proto_str_make(h->host);
    req.port = h->port;
    req.min_protocol_version = h->version_min;
    req.max_protocol_version = h->version_max;
    req.voter_ids.items = (int32_t *)h->voter_ids; /* read only by the encoder */
    req.voter_ids.count = h->voter_count;
    return frame_end(out, start, kafka_cluster_hello_request_encode(&req, 0, out));
}

int wire_hello_answer_frame(const struct wire_hello_answer *a, int32_t correlation_id,
                            struct buf *out)
{
    struct kafka_cluster_hello_response resp;
    size_t start = frame_begin(out, false, WIRE_API_CLUSTER_HELLO, correlation_id);

    kafka_cluster_hello_response_init(&resp);
    resp.error_code = a->error_code;
    resp.error_message = proto_str_make(a->reason);
    resp.cluster_id = proto_str_make(a->cluster_id);
    resp.node_id = a->node_id;
    resp.protocol_version = a->version;
    return frame_end(out, start, kafka_cluster_hello_response_encode(&resp, 0, out));
}

int wire_raft_frame(struct arena *scratch, int32_t from, int32_t to, const struct wire_msg *msgs,
                    size_t count, int32_t correlation_id, struct buf *out)
{
    struct kafka_raft_messages_request req;
    int rc = wire_raft_pack(scratch, from, to, msgs, count, &req);

    if (rc != 0)
        return rc;
    size_t start = frame_begin(out, true, WIRE_API_RAFT_MESSAGES, correlation_id);
    return frame_end(out, start, kafka_raft_messages_request_encode(&req, 0, out));
}

int wire_rpc_frame(struct arena *scratch, int32_t from, int32_t to, const struct wire_rpc *rpcs,
                   size_t count, int32_t correlation_id, struct buf *out)
{
    struct kafka_cluster_rpc_request req;
    int rc = wire_rpc_pack(scratch, from, to, rpcs, count, &req);

    if (rc != 0)
        return rc;
    size_t start = frame_begin(out, true, WIRE_API_CLUSTER_RPC, correlation_id);
    return frame_end(out, start, kafka_cluster_rpc_request_encode(&req, 0, out));
}

/* A string the peer sent: present, within its bound, and without a NUL inside (the fields are
 * used as C strings, so "a\0b" would otherwise pass for "a", e.g. as a cluster id). */
static bool str_ok(struct proto_str s, size_t max)
{
    return s.ptr != NULL && s.len <= max && memchr(s.ptr, 0, s.len) == NULL;
}

/* Maps the codec's errors for a whole frame: a short frame is corrupt, not incomplete. */
static int frame_err(int rc)
{
    return rc == ERR_INCOMPLETE ? ERR_CORRUPT : rc;
}

int wire_request_decode(struct arena *a, struct slice frame, struct wire_request *out)
{
    struct kafka_request_header h;
    struct reader r;
    int rc;

    memset(out, 0, sizeof(*out));
    rd_init(&r, frame.ptr, frame.len);
    rc = kafka_request_header_decode(a, &r, 2, &h);
    if (rc != 0)
        return frame_err(rc);
    out->api_key = h.request_api_key;
    out->correlation_id = h.correlation_id;
    if (h.request_api_key == WIRE_API_CLUSTER_HELLO) {
        struct kafka_cluster_hello_request req;

        rc = kafka_cluster_hello_request_decode(a, &r, h.request_api_version, &req);
        if (rc != 0)
            return frame_err(rc);
        if (!str_ok(req.cluster_id, CLUSTER_ID_BYTES_MAX) ||
            !str_ok(req.host, CLUSTER_HOST_BYTES_MAX) || req.node_id < 0 ||
            req.target_node_id < 0 || req.voter_ids.count > RAFT_VOTERS_MAX)
            return ERR_CORRUPT;
        for (size_t i = 0; i < req.voter_ids.count; i++) {
            if (req.voter_ids.items[i] < 0 ||
                (i > 0 && req.voter_ids.items[i] <= req.voter_ids.items[i - 1]))
                return ERR_CORRUPT; /* ascending, as every sender writes them */
        }
        out->hello = (struct wire_hello){
            .cluster_id = req.cluster_id.ptr,
            .node_id = req.node_id,
            .target_node_id = req.target_node_id,
            .host = req.host.ptr,
            .port = req.port,
            .version_min = req.min_protocol_version,
            .version_max = req.max_protocol_version,
            .voter_ids = req.voter_ids.items,
            .voter_count = (uint32_t)req.voter_ids.count,
        };
    } else if (h.request_api_key == WIRE_API_RAFT_MESSAGES) {
        struct kafka_raft_messages_request req;

        rc = kafka_raft_messages_request_decode(a, &r, h.request_api_version, &req);
        if (rc != 0)
            return frame_err(rc);
        rc = wire_raft_unpack(a, &req, &out->raft);
        if (rc != 0)
            return rc;
    } else if (h.request_api_key == WIRE_API_CLUSTER_RPC) {
        struct kafka_cluster_rpc_request req;

        rc = kafka_cluster_rpc_request_decode(a, &r, h.request_api_version, &req);
        if (rc != 0)
            return frame_err(rc);
        rc = wire_rpc_unpack(a, &req, &out->rpcs);
        if (rc != 0)
            return rc;
    } else {
        return ERR_UNSUPPORTED;
    }
    return rd_left(&r) == 0 ? 0 : ERR_CORRUPT;
}

int wire_hello_answer_decode(struct arena *a, struct slice frame, int32_t *correlation_id,
                             struct wire_hello_answer *out)
{
    struct kafka_response_header h;
    struct kafka_cluster_hello_response resp;
    struct reader r;
    int rc;

    rd_init(&r, frame.ptr, frame.len);
    rc = kafka_response_header_decode(a, &r, 1, &h);
    if (rc == 0)
        rc = kafka_cluster_hello_response_decode(a, &r, 0, &resp);
    if (rc != 0)
        return frame_err(rc);
    if (rd_left(&r) != 0 || !str_ok(resp.cluster_id, CLUSTER_ID_BYTES_MAX) ||
        (resp.error_message.ptr != NULL &&
         !str_ok(resp.error_message, CLUSTER_HELLO_REASON_BYTES_MAX - 1)) ||
        resp.node_id < 0 || (resp.error_code == WIRE_HELLO_OK && resp.protocol_version < 0))
        return ERR_CORRUPT;
    *correlation_id = h.correlation_id;
    *out = (struct wire_hello_answer){
        .error_code = resp.error_code,
        .reason = resp.error_message.ptr,
        .cluster_id = resp.cluster_id.ptr,
        .node_id = resp.node_id,
        .version = resp.protocol_version,
    };
    return 0;
}
