/*
 * From frame to handler and back: header and body decoding, version checks, dispatch, and the
 * response framing every handler uses.
 *
 * What a malformed request gets mirrors Kafka: an ApiVersions request of a version we do not
 * support is answered with UNSUPPORTED_VERSION in a version-0 body (so any client can learn our
 * versions); any other request we cannot parse (unknown API, unsupported version, a header or
 * body that does not decode) closes the connection. Bytes after a complete body are ignored, as
 * Kafka's parser ignores them: librdkafka 2.0.2 sends ListGroups v4 and OffsetFetch v7 with bytes
 * left over, and refusing them fails every such client. The frame still bounds what is read.
 *
 * Request memory is a budget, never an assumption: the decoded request and everything a handler
 * builds for its answer come from the request's arena, bounded by PROTO_REQUEST_ARENA_MAX and
 * counted (with the frame and the response) against queued.max.request.bytes by the listener.
 * A handler whose allocation fails stops and calls breq_fail() before any effect it cannot
 * report, and breq_fail() answers as Kafka answers a request whose handler failed
 * (getErrorResponse): with the error in the response's top-level ErrorCode when the version has
 * one, else by closing the connection, and logs one line.
 */
#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"
#include "broker/broker_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api_handler {
    breq_handler_fn fn;
    int16_t min_version;
    int16_t max_version;
};

/* What Chronik implements, by API key: the versions ApiVersions advertises, exactly. */
static const struct api_handler handlers[] = {
    [0] = {produce_handle, 3, 11},                   /* Produce: record batch v2 needs v3+ */
    [1] = {fetch_handle, 4, 17},                     /* Fetch: v4+ returns record batches */
    [2] = {list_offsets_handle, 1, 9},               /* ListOffsets */
    [3] = {metadata_handle, 0, 12},                  /* Metadata */
    [8] = {offset_commit_handle, 0, 9},              /* OffsetCommit */
    [9] = {offset_fetch_handle, 0, 9},               /* OffsetFetch */
    [10] = {find_coordinator_handle, 0, 6},          /* FindCoordinator */
    [11] = {join_group_handle, 0, 9},                /* JoinGroup */
    [12] = {heartbeat_handle, 0, 4},                 /* Heartbeat */
    [13] = {leave_group_handle, 0, 5},               /* LeaveGroup */
    [14] = {sync_group_handle, 0, 5},                /* SyncGroup */
    [15] = {describe_groups_handle, 0, 5},           /* DescribeGroups */
    [16] = {list_groups_handle, 0, 5},               /* ListGroups */
    [18] = {api_versions_handle, 0, 4},              /* ApiVersions */
    [19] = {create_topics_handle, 0, 7},             /* CreateTopics */
    [20] = {delete_topics_handle, 0, 6},             /* DeleteTopics */
    [21] = {delete_records_handle, 0, 2},            /* DeleteRecords */
    [22] = {init_producer_id_handle, 0, 5},          /* InitProducerId */
    [23] = {offset_for_leader_epoch_handle, 0, 4},   /* OffsetForLeaderEpoch */
    [24] = {add_partitions_to_txn_handle, 0, 3},     /* AddPartitionsToTxn: the client's form */
    [25] = {add_offsets_to_txn_handle, 0, 3},        /* AddOffsetsToTxn */
    [26] = {end_txn_handle, 0, 3},                   /* EndTxn */
    [27] = {write_txn_markers_handle, 0, 1},         /* WriteTxnMarkers */
    [28] = {txn_offset_commit_handle, 0, 3},         /* TxnOffsetCommit: v4 is KIP-890 */
    [32] = {describe_configs_handle, 0, 4},          /* DescribeConfigs */
    [33] = {alter_configs_handle, 0, 2},             /* AlterConfigs */
    [37] = {create_partitions_handle, 0, 3},         /* CreatePartitions */
    [42] = {delete_groups_handle, 0, 2},             /* DeleteGroups */
    [44] = {incremental_alter_configs_handle, 0, 1}, /* IncrementalAlterConfigs */
    [47] = {offset_delete_handle, 0, 0},             /* OffsetDelete */
    [60] = {describe_cluster_handle, 0, 1},          /* DescribeCluster */
    [65] = {describe_transactions_handle, 0, 0},     /* DescribeTransactions */
    [66] = {list_transactions_handle, 0, 1},         /* ListTransactions */
};

bool api_versions_supported(int16_t api_key, int16_t *min, int16_t *max)
{
    if (api_key < 0 || (size_t)api_key >= ARRAY_LEN(handlers) || handlers[api_key].fn == NULL)
        return false;
    *min = handlers[api_key].min_version;
    *max = handlers[api_key].max_version;
    return true;
}

static void breq_free(struct breq *rq)
{
    if (rq->admin != NULL)
        broker_admin_forget(rq);
    buf_deinit(&rq->sink_out);
    arena_deinit(&rq->arena);
    free(rq->client_frame);
    free(rq);
}

int breq_begin_response(struct breq *rq, struct buf *out)
{
    int16_t version = rq->api_version;
    int hv = proto_response_header_version(rq->api_key, version);
    ASSERT(hv >= 0);
    struct kafka_response_header h;
    kafka_response_header_init(&h);
    h.correlation_id = rq->correlation_id;
    return kafka_response_header_encode(&h, (int16_t)hv, out);
}

int breq_append(struct breq *rq, const void *p, size_t n)
{
    if (rq->net != NULL)
        return net_request_append(rq->net, p, n);
    ASSERT(rq->sink_client);
    buf_append(&rq->sink_out, p, n);
    return 0;
}

void breq_finish(struct breq *rq)
{
    if (rq->net != NULL) {
        net_request_complete(rq->net);
    } else if (rq->sink_client && rq->sink != NULL) {
        rq->sink(rq->sink_ctx, &rq->sink_out, KAFKA_NONE);
        rq->sink = NULL;
    }
    breq_free(rq);
}

static void respond_body(struct breq *rq, const void *response)
{
    struct buf out;
    buf_init(&out);
    int rc = breq_begin_response(rq, &out);
    if (rc == 0)
        rc = proto_encode(rq->api->response, response, rq->api_version, &out);
    if (rc == 0 && rq->sink != NULL) {
        rq->sink(rq->sink_ctx, &out, KAFKA_NONE);
        rq->sink = NULL;
    } else if (rc == 0) {
        rc = net_request_append_buf(rq->net, &out);
    }
    buf_deinit(&out);
    if (rc != 0) {
        /* Our own response did not encode: a bug or a response over the wire's limits. The
         * client cannot be answered correctly, so the connection goes, as Kafka does. */
        breq_abort(rq);
        return;
    }
    breq_finish(rq);
}

void breq_respond(struct breq *rq, const void *response)
{
    if (rq->out_of_memory) {
        breq_fail(rq, ERR_TOO_LARGE);
        return;
    }
    respond_body(rq, response);
}

/* The response's top-level ErrorCode field in this version, or NULL. */
static const struct proto_field *top_error_code(const struct proto_struct *body, int16_t version)
{
    for (uint32_t i = 0; i < body->field_count; i++) {
        const struct proto_field *f = &body->fields[i];
        if (f->type == PROTO_INT16 && (f->flags & PROTO_FIELD_ARRAY) == 0 && f->tag < 0 &&
            version >= f->versions_min && version <= f->versions_max &&
            strcmp(f->name, "ErrorCode") == 0)
            return f;
    }
    return NULL;
}

void breq_fail(struct breq *rq, int err)
{
    const struct proto_message *m = rq->api->response;
    const struct proto_field *f = top_error_code(m->body, rq->api_version);
    struct proto_str who = rq->client_id.ptr != NULL ? rq->client_id : proto_str_make("");
    fprintf(stderr,
            "chronik: %s v%d request %d from client '%.*s' needs more than its %zu bytes of "
            "request memory (%s): %s\n",
            rq->api->name, rq->api_version, rq->correlation_id,
            (int)MIN(who.len, BROKER_ADMIN_QUOTE_BYTES_MAX), who.ptr, rq->arena.limit_bytes,
            err_str(err), f != NULL ? "answered UNKNOWN_SERVER_ERROR" : "closing the connection");
    if (f == NULL) {
        breq_abort(rq);
        return;
    }
    /* Heap memory of the schema's fixed size: the request's own budget is spent. Every array is
     * empty, every other field its default. */
    void *resp = xcalloc(1, m->body->bytes);
    proto_init(m, resp);
    int16_t code = KAFKA_UNKNOWN_SERVER_ERROR;
    memcpy((uint8_t *)resp + f->offset, &code, sizeof(code));
    rq->out_of_memory = false;
    respond_body(rq, resp);
    free(resp);
}

void broker_on_pressure(void *ctx)
{
    fetch_finish_all(ctx);
}

/* The arena's blocks count against queued.max.request.bytes for as long as the request lives. */
static void charge_arena(void *ctx, size_t bytes)
{
    net_request_charge(ctx, bytes);
}

void breq_release_frame(struct breq *rq)
{
    if (rq->net != NULL) {
        net_request_release_frame(rq->net);
    } else if (rq->client_frame != NULL) {
        /* Overwritten, as a connection's buffer is by the next request it is reused for: a
         * handler that still reads it fails the simulator's checks even without ASan. */
        memset(rq->client_frame, 0xa5, rq->client_frame_len);
        free(rq->client_frame);
        rq->client_frame = NULL;
    }
}

void breq_respond_none(struct breq *rq)
{
    breq_finish(rq);
}

void breq_abort(struct breq *rq)
{
    if (rq->sink != NULL)
        rq->sink(rq->sink_ctx, NULL, KAFKA_UNKNOWN_SERVER_ERROR);
    else if (rq->net != NULL)
        net_request_abort(rq->net);
    breq_free(rq);
}

/* A sink request refused whole, with a code its sender acts on (e.g. NOT_CONTROLLER). */
void breq_refuse(struct breq *rq, int16_t error)
{
    ASSERT(rq->sink != NULL);
    rq->sink(rq->sink_ctx, NULL, error);
    rq->sink = NULL;
    breq_free(rq);
}

/* ApiVersions of a version we do not know: UNSUPPORTED_VERSION with our APIs, in a v0 body
 * with response header v0, whatever version was asked. */
static void answer_unsupported_api_versions(struct breq *rq)
{
    rq->api_version = 0;
    struct kafka_api_versions_response resp;
    kafka_api_versions_response_init(&resp);
    resp.error_code = KAFKA_UNSUPPORTED_VERSION;
    api_versions_fill(rq, &resp);
    breq_respond(rq, &resp);
}

/* The controller's answer to a client's admin request, applied here: sent as it is (it carries
 * the client's correlation id); none in time closes the connection, which clients retry. */
static void respond_forwarded(void *ctx, const struct buf *response)
{
    struct breq *rq = ctx;
    if (response == NULL) {
        breq_abort(rq);
        return;
    }
    if (breq_append(rq, response->data, response->len) != 0) {
        breq_abort(rq);
        return;
    }
    breq_finish(rq);
}

bool broker_api_is_admin(int16_t api_key)
{
    return api_key == 19 || api_key == 20 || api_key == 33 || api_key == 37 || api_key == 44;
}

bool broker_api_is_node_internal(int16_t api_key)
{
    return api_key == 27; /* WriteTxnMarkers */
}

/* Decodes the frame into rq and runs its handler; closes (aborts) what does not parse. */
static void dispatch(struct breq *rq, struct slice frame)
{
    if (frame.len < 8) {
        breq_abort(rq);
        return;
    }
    rq->api_key = (int16_t)be16_load(frame.ptr);
    rq->api_version = (int16_t)be16_load(frame.ptr + 2);
    rq->correlation_id = (int32_t)be32_load(frame.ptr + 4);
    rq->api = proto_api_get(rq->api_key);
    int16_t min = 0, max = -1;
    if (rq->api == NULL || !api_versions_supported(rq->api_key, &min, &max)) {
        breq_abort(rq);
        return;
    }
    if (rq->api_version < min || rq->api_version > max) {
        if (rq->api_key == 18)
            answer_unsupported_api_versions(rq);
        else
            breq_abort(rq);
        return;
    }

    struct reader r;
    rd_init(&r, frame.ptr, frame.len);
    int hv = proto_request_header_version(rq->api_key, rq->api_version);
    struct kafka_request_header hdr;
    int rc = hv < 0 ? hv : kafka_request_header_decode(&rq->arena, &r, (int16_t)hv, &hdr);
    if (rc == 0) {
        rq->client_id = hdr.client_id;
        rq->body = arena_alloc(&rq->arena, rq->api->request->body->bytes);
        rc = rq->body == NULL
                 ? ERR_TOO_LARGE
                 : proto_decode(rq->api->request, &rq->arena, &r, rq->api_version, rq->body);
    }
    if (rc != 0) {
        breq_abort(rq);
        return;
    }
    if (rq->sink != NULL && !rq->sink_client) {
        /* Run for the controller (topic administration) or for another node's coordinator
         * (broker_send_frame): nothing else is sent this way. */
        if (broker_api_is_admin(rq->api_key))
            broker_admin_run(rq, handlers[rq->api_key].fn);
        else if (broker_api_is_node_internal(rq->api_key))
            handlers[rq->api_key].fn(rq);
        else
            breq_abort(rq);
        return;
    }
    if (broker_api_is_admin(rq->api_key)) {
        /* Carried out by the controller, wherever it is; answered once applied here. */
        broker_forward(rq->b, frame, respond_forwarded, rq);
        return;
    }
    handlers[rq->api_key].fn(rq);
}

void broker_on_request(void *ctx, struct net_request *req)
{
    struct broker *b = ctx;
    struct breq *rq = xcalloc(1, sizeof(*rq));
    rq->b = b;
    rq->net = req;
    buf_init(&rq->sink_out);
    arena_init(&rq->arena, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    arena_set_meter(&rq->arena, charge_arena, req);
    net_request_charge(req, sizeof(*rq));
    dispatch(rq, net_request_frame(req));
}

void broker_run_frame(struct broker *b, struct slice frame, breq_sink_fn sink, void *sink_ctx)
{
    struct breq *rq = xcalloc(1, sizeof(*rq));
    rq->b = b;
    rq->sink = sink;
    rq->sink_ctx = sink_ctx;
    buf_init(&rq->sink_out);
    arena_init(&rq->arena, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    dispatch(rq, frame);
}

void broker_client_frame(struct broker *b, struct slice frame, breq_sink_fn sink, void *sink_ctx)
{
    struct breq *rq = xcalloc(1, sizeof(*rq));
    rq->b = b;
    rq->sink = sink;
    rq->sink_ctx = sink_ctx;
    rq->sink_client = true;
    buf_init(&rq->sink_out);
    arena_init(&rq->arena, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    /* The frame is the request's until it is answered or let go (breq_release_frame), as a
     * connection's is (a parked batch is read from it later): the caller's may go when this
     * returns. */
    rq->client_frame = xmalloc(MAX(frame.len, (size_t)1));
    rq->client_frame_len = frame.len;
    memcpy(rq->client_frame, frame.ptr, frame.len);
    dispatch(rq, slice_make(rq->client_frame, frame.len));
}
