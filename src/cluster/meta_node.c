/*
 * The metadata node (see meta_node.h): the metadata group's apply loop, its snapshots, the
 * controller's operation queue and broker sessions, and this node's registration.
 *
 * Invariants:
 * - mn->applied is the last offset of the last batch applied to the image; batches are applied
 *   whole, in order, and only once their last offset is committed.
 * - At most one controller operation is proposed and not yet done (mn->inflight); the others
 *   wait in the queue unbuilt.
 * - mn->ready implies this node leads the group and applied its own term's first entry (the
 *   new leader's no-op), so the image holds everything committed before its term.
 *
 * META_NODE_BUG_* (never defined in a product build) each break one of these invariants on
 * purpose, for the whole-cluster simulator (tests/sim/cluster_sim) to prove it notices:
 * APPLY_UNCOMMITTED applies up to the log end instead of the commit index; BUILD_STALE builds an
 * operation when it is submitted, against an image that may lack the operations queued before.
 */
#include "cluster/meta_node.h"

#include "base/alloc.h"
#include "base/arena.h"
#include "base/assert.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/limits.h"
#include "cluster/meta_controller.h"
#include "log/batch.h"
#include "proto/gen/kafka.h"
#include "proto/proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_FETCH                 1
#define FETCH_VERSION             13 /* topic ids, CurrentLeader */
#define API_BROKER_REGISTRATION   62
#define API_BROKER_HEARTBEAT      63
#define API_ALTER_PARTITION       56
#define ALTER_PARTITION_VERSION   2
#define API_ALLOCATE_PRODUCER_IDS 67
#define RPC_VERSION               0

/* Kafka's error codes this module answers with. */
enum {
    ERR_CODE_NOT_CONTROLLER = 41,
    ERR_CODE_OFFSET_OUT_OF_RANGE = 1,
    ERR_CODE_NOT_LEADER_OR_FOLLOWER = 6,
    ERR_CODE_STALE_BROKER_EPOCH = 77,
    ERR_CODE_BROKER_ID_NOT_REGISTERED = 102,
    ERR_CODE_INCONSISTENT_CLUSTER_ID = 104,
};

#define SNAPSHOT_MAGIC 0x4348534eu /* "CHSN" */

enum op_kind {
    OP_EXTERNAL,
    OP_REGISTER,
    OP_FENCE,
    OP_UNFENCE,
    OP_SHUT_DOWN,
    OP_REPORT,
    OP_PRODUCER_IDS
};

struct op {
    struct op *next;
    enum op_kind kind;
    meta_node_build_fn build;
    meta_node_done_fn done;
    void *ctx;
    struct raft_waiter waiter;
    struct meta_node *mn;
    int64_t offset;
    /* OP_REGISTER: who asked, and the answer once built. */
    int32_t from;
    int64_t correlation_id;
    int16_t error;
    int64_t epoch;
    struct meta_broker reg; /* the registration asked for (owns its strings) */
    /* OP_PRODUCER_IDS: the block's first id once built (from, correlation_id, error, broker
     * and broker_epoch as above) */
    int64_t producer_id_first;
    /* OP_FENCE / OP_UNFENCE / OP_SHUT_DOWN; OP_REPORT; OP_PRODUCER_IDS: the asking broker */
    int32_t broker;
    int64_t broker_epoch;
    /* OP_REPORT: the partitions reported, and each one's answer once built */
    struct meta_node_report *reports;
    int16_t *report_errors;
    uint32_t report_count;
#ifdef META_NODE_BUG_BUILD_STALE
    struct meta_records stale; /* OP_EXTERNAL: built when submitted */
#endif
};

struct session {
    int32_t id;
    uint64_t last_ms;
    bool change_pending; /* a fence or unfence is queued */
};

enum reg_state { REG_NONE, REG_SENT, REG_DONE };

struct meta_node {
    struct meta_node_config cfg;
    int32_t voters[RAFT_VOTERS_MAX];
    char cluster_id[CLUSTER_ID_BYTES_MAX];
    char rack[META_HOST_BYTES_MAX];
    char host_name[META_HOST_BYTES_MAX];
    struct meta_node_env env;
    char snapshot_dir[IO_PATH_BYTES_MAX];
    char snapshot_path[IO_PATH_BYTES_MAX];
    struct meta_image *img;
    struct meta_node_handler h;
    struct raft_group *group;
    int err;

    int64_t applied;
    uint64_t applied_bytes; /* applied since the last snapshot */
    int64_t snapshot_offset;
    struct buf read_buf;

    int32_t leader;
    int64_t term;
    bool leading, ready;
    bool caught_up;
    int64_t catch_up_to;

    struct op *head, *tail;
    struct op *inflight;
    struct meta_records recs;
    struct buf batch;

    struct session *sessions;
    uint32_t session_count, session_cap;

    /* An observer (not a voter): no Raft group; it fetches committed batches from a voter. */
    bool observer;
    bool snapshot_needed;   /* said once: behind the voters' log start */
    int64_t fetch_awaiting; /* correlation id of the fetch in flight, 0 when none */
    uint64_t fetch_sent_ms;
    int64_t fetch_commit; /* the commit index the last fetch answer reported */
    uint32_t fetch_next;  /* round robin over the voters while no leader is known */

    enum reg_state reg;
    int64_t broker_epoch;
    bool unfenced;
    bool want_shutdown;    /* meta_node_request_shutdown: heartbeats say WantShutDown */
    bool shutdown_granted; /* the controller answered ShouldShutDown */
    uint64_t next_send_ms;
    int64_t correlation;
    int64_t awaiting; /* the correlation id of our request in flight */

    /* Leadership reports of this node's replicated partitions (meta_node_report). */
    struct meta_node_report *reports; /* queued, the newest per partition */
    uint32_t report_count, report_cap;
    struct meta_node_report *report_sent; /* the request in flight */
    uint32_t report_sent_count;
    int64_t report_awaiting; /* its correlation id, 0 when none */
    uint64_t report_sent_ms;

    /* Our AllocateProducerIds in flight (meta_node_alloc_producer_ids). */
    int64_t pids_awaiting; /* its correlation id, 0 when none */
    uint64_t pids_sent_ms;
};

static char *dup_str(struct proto_str s)
{
    char *p = xmalloc(s.len + 1);
    memcpy(p, s.ptr, s.len);
    p[s.len] = '\0';
    return p;
}

static uint64_t now_ms(const struct meta_node *mn)
{
    return clock_mono_ms(mn->env.clock);
}

/* ---- snapshot ----------------------------------------------------------------------------- */

int meta_node_load(struct io *io, const char *path, struct meta_image *img, int64_t *applied,
                   bool *found)
{
    struct io_file *f = NULL;
    uint8_t *data = NULL;
    uint64_t size = 0;
    *applied = -1;
    *found = false;
    int rc = io_open(io, path, IO_RDONLY, &f);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    rc = io_size(f, &size);
    if (rc == 0 && (size < 20 + META_CLUSTER_ID_CHARS || size > META_IMAGE_BYTES_MAX))
        rc = ERR_CORRUPT;
    if (rc == 0) {
        data = xmalloc((size_t)size);
        ssize_t got = io_pread(f, data, (size_t)size, 0);
        if (got != (ssize_t)size)
            rc = got < 0 ? (int)got : ERR_CORRUPT;
    }
    io_close(f);
    if (rc != 0)
        goto out;
    struct reader r;
    rd_init(&r, data, (size_t)size);
    uint32_t magic = rd_be32(&r), crc = rd_be32(&r);
    if (magic != SNAPSHOT_MAGIC || crc != crc32c(data + 8, (size_t)size - 8)) {
        rc = ERR_CORRUPT;
        goto out;
    }
    int64_t offset = (int64_t)rd_be64(&r);
    const uint8_t *id = rd_bytes(&r, META_CLUSTER_ID_CHARS);
    uint32_t count = rd_be32(&r);
    if (rd_err(&r) != 0) {
        rc = ERR_CORRUPT;
        goto out;
    }
    char text[META_CLUSTER_ID_CHARS + 1];
    memcpy(text, id, META_CLUSTER_ID_CHARS);
    text[META_CLUSTER_ID_CHARS] = '\0';
    meta_image_set_cluster_id_text(img, text);
    struct arena scratch;
    arena_init(&scratch, ARENA_BLOCK_BYTES_DEFAULT, META_RECORD_ARENA_MAX);
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        uint32_t len = rd_be32(&r);
        const uint8_t *p = rd_bytes(&r, len);
        if (rd_err(&r) != 0) {
            rc = ERR_CORRUPT;
            break;
        }
        arena_reset(&scratch);
        /* Written from an image, so every record applies; one that does not means damage. */
        if (meta_apply_value(img, &scratch, slice_make(p, len)) != 0)
            rc = ERR_CORRUPT;
    }
    arena_deinit(&scratch);
    if (rc == 0 && (rd_left(&r) != 0 || offset < -1))
        rc = ERR_CORRUPT;
    if (rc == 0) {
        *applied = offset;
        *found = true;
    }
out:
    free(data);
    return rc;
}

int meta_node_save(struct io *io, const char *dir, const char *path, const struct meta_image *img,
                   int64_t applied)
{
    struct meta_records recs;
    meta_records_init(&recs);
    meta_snapshot(img, &recs);
    struct buf b;
    buf_init(&b);
    buf_put_be32(&b, SNAPSHOT_MAGIC);
    buf_put_be32(&b, 0);
    buf_put_be64(&b, (uint64_t)applied);
    ASSERT(strlen(img->cluster_id) == META_CLUSTER_ID_CHARS);
    buf_append(&b, img->cluster_id, META_CLUSTER_ID_CHARS);
    buf_put_be32(&b, recs.count);
    for (uint32_t i = 0; i < recs.count; i++) {
        struct slice v = meta_records_at(&recs, i);
        buf_put_be32(&b, (uint32_t)v.len);
        buf_append(&b, v.ptr, v.len);
    }
    meta_records_deinit(&recs);
    uint32_t crc = crc32c(b.data + 8, b.len - 8);
    be32_store(b.data + 4, crc);
    int rc = meta_write_atomic(io, dir, path, &b);
    buf_deinit(&b);
    return rc;
}

static int snapshot_write(struct meta_node *mn)
{
    return meta_node_save(mn->env.io, mn->snapshot_dir, mn->snapshot_path, mn->img, mn->applied);
}

/* After applying: a snapshot once enough log was applied, then the log below the snapshot
 * before it dropped (one interval of log stays for peers that lag). */
static void maybe_snapshot(struct meta_node *mn)
{
    if (mn->applied_bytes < META_SNAPSHOT_BYTES)
        return;
    int rc = snapshot_write(mn);
    if (rc != 0) {
        fprintf(stderr, "chronik: cannot write the metadata snapshot %s: %s\n", mn->snapshot_path,
                err_str(rc));
        mn->applied_bytes = 0; /* tried again after another interval */
        return;
    }
    mn->applied_bytes = 0;
    int64_t drop = mn->snapshot_offset;
    mn->snapshot_offset = mn->applied;
    if (drop >= 0 && drop + 1 > log_start_offset(mn->env.log)) {
        rc = mn->group != NULL ? raft_group_compact(mn->group, drop + 1)
                               : log_delete_records(mn->env.log, drop + 1);
        if (rc != 0)
            fprintf(stderr, "chronik: cannot drop the metadata log below %lld: %s\n",
                    (long long)(drop + 1), err_str(rc));
    }
}

/* ---- apply -------------------------------------------------------------------------------- */

static void check_caught_up(struct meta_node *mn)
{
    if (mn->caught_up || mn->leader < 0)
        return;
    if (mn->catch_up_to < 0)
        mn->catch_up_to = mn->group != NULL ? raft_group_commit(mn->group) : mn->fetch_commit;
    if (mn->applied >= mn->catch_up_to && (!mn->leading || mn->ready))
        mn->caught_up = true;
}

/* Applies the committed batches after mn->applied up to commit. */
static int apply_upto(struct meta_node *mn, int64_t commit)
{
    while (mn->applied < commit) {
        struct log_read rd;
        int64_t off = mn->applied + 1;
        int rc = log_read(mn->env.log, off, META_APPLY_READ_BYTES, commit + 1, &rd);
        if (rc != 0)
            return rc;
        if (rd.file == NULL)
            return 0; /* the batch holding commit is not whole yet */
        if (rd.first_offset != off) {
            log_read_release(&rd);
            return ERR_CORRUPT;
        }
        buf_reset(&mn->read_buf);
        uint8_t *p = buf_extend(&mn->read_buf, (size_t)rd.bytes);
        ssize_t n = io_pread(log_file_io(rd.file), p, (size_t)rd.bytes, rd.position);
        log_read_release(&rd);
        if (n != (ssize_t)rd.bytes)
            return n < 0 ? (int)n : ERR_CORRUPT;
        size_t at = 0;
        while (at < (size_t)rd.bytes) {
            struct batch_header bh;
            rc = batch_header_parse(p + at, (size_t)rd.bytes - at, &bh);
            if (rc != 0)
                return ERR_CORRUPT;
            size_t len = (size_t)batch_total_bytes(&bh);
            if (len > (size_t)rd.bytes - at || batch_last_offset(&bh) > commit)
                break;
            struct meta_apply_result res = {0};
            rc = meta_apply_batch(mn->img, slice_make(p + at, len), &res);
            if (rc != 0 && res.first_error != 0)
                fprintf(stderr,
                        "chronik: metadata record at offset %lld refused (%s); every node refuses "
                        "it alike\n",
                        (long long)res.first_error_offset, err_str(res.first_error));
            else if (rc != 0)
                return rc;
            if (batch_is_control(&bh) && mn->leading && bh.leader_epoch == mn->term)
                mn->ready = true;
            mn->applied = batch_last_offset(&bh);
            mn->applied_bytes += len;
            at += len;
        }
        if (at == 0)
            return 0;
    }
    return 0;
}

static void maybe_send(struct meta_node *mn);

/* This broker is unfenced once the image says so for its current registration. */
static void check_unfenced(struct meta_node *mn)
{
    const struct meta_broker *b = meta_broker_find(mn->img, mn->cfg.self);
    mn->unfenced = mn->reg == REG_DONE && b != NULL && b->epoch == mn->broker_epoch && !b->fenced;
}

static void on_apply(void *ctx, int64_t first, int64_t last)
{
    struct meta_node *mn = ctx;
    (void)first;
    int64_t before = mn->applied;
    bool was_caught_up = mn->caught_up;
#ifdef META_NODE_BUG_APPLY_UNCOMMITTED
    /* injected bug: apply what the log holds, committed or not */
    if (mn->group != NULL)
        last = log_end_offset(mn->env.log) - 1;
#endif
    int rc = apply_upto(mn, last);
    if (rc != 0 && mn->err == 0) {
        mn->err = rc;
        fprintf(stderr, "chronik: cannot apply the metadata log: %s\n", err_str(rc));
    }
    check_caught_up(mn);
    check_unfenced(mn);
    /* Caught up with its own registration: the heartbeat that gets it unfenced goes now. */
    if (mn->reg == REG_DONE && !mn->unfenced && before < mn->broker_epoch &&
        mn->applied >= mn->broker_epoch)
        mn->next_send_ms = 0;
    if (!was_caught_up && mn->caught_up)
        mn->next_send_ms = 0;
    maybe_send(mn);
    if (mn->applied > before) {
        maybe_snapshot(mn);
        if (mn->h.applied != NULL)
            mn->h.applied(mn->h.ctx, mn->applied);
    }
}

/* ---- the controller's queue --------------------------------------------------------------- */

static void run_queue(struct meta_node *mn);
static void serve_fetch(struct meta_node *mn, const struct wire_rpc *r,
                        const struct kafka_fetch_request *q);
static void on_fetch_answer(struct meta_node *mn, const struct kafka_fetch_response *a);
static void send_rpc(struct meta_node *mn, int32_t to, uint8_t kind, int64_t correlation,
                     int16_t api_key, const struct proto_message *m, const void *body,
                     int16_t version);

static void send_reports(struct meta_node *mn);
static void requeue_reports(struct meta_node *mn);

static void op_free(struct op *o)
{
#ifdef META_NODE_BUG_BUILD_STALE
    if (o->kind == OP_EXTERNAL)
        meta_records_deinit(&o->stale);
#endif
    free(o->reg.endpoints != NULL ? o->reg.endpoints[0].name : NULL);
    free(o->reg.endpoints != NULL ? o->reg.endpoints[0].host : NULL);
    free(o->reg.endpoints);
    free(o->reg.rack);
    free(o->reports);
    free(o->report_errors);
    free(o);
}

static struct session *session_find(struct meta_node *mn, int32_t id)
{
    for (uint32_t i = 0; i < mn->session_count; i++)
        if (mn->sessions[i].id == id)
            return &mn->sessions[i];
    return NULL;
}

static struct session *session_get(struct meta_node *mn, int32_t id)
{
    struct session *s = session_find(mn, id);
    if (s != NULL)
        return s;
    if (mn->session_count == mn->session_cap) {
        mn->session_cap = mn->session_cap ? mn->session_cap * 2 : 8;
        mn->sessions = xrealloc(mn->sessions, mn->session_cap * sizeof(*mn->sessions));
    }
    s = &mn->sessions[mn->session_count++];
    *s = (struct session){.id = id, .last_ms = now_ms(mn)};
    return s;
}

static bool session_alive(struct meta_node *mn, int32_t id)
{
    struct session *s = session_find(mn, id);
    return s != NULL && now_ms(mn) - s->last_ms <= mn->cfg.broker_session_ms;
}

static bool same_partition(const struct meta_node_report *a, const struct meta_node_report *b)
{
    return a->partition == b->partition &&
           memcmp(a->topic_id.b, b->topic_id.b, META_UUID_BYTES) == 0;
}

/* Every partition of one AlterPartition, each judged against the image (a partition named
 * twice counts once: two records built against one image could contradict each other). */
static void build_reports(struct meta_node *mn, struct op *o, struct meta_records *out)
{
    const struct meta_broker *b = meta_broker_find(mn->img, o->broker);
    for (uint32_t i = 0; i < o->report_count; i++) {
        const struct meta_node_report *r = &o->reports[i];
        struct meta_ctl_result res;
        if (b == NULL) {
            o->report_errors[i] = ERR_CODE_BROKER_ID_NOT_REGISTERED;
            continue;
        }
        if (b->epoch != o->broker_epoch) {
            o->report_errors[i] = ERR_CODE_STALE_BROKER_EPOCH;
            continue;
        }
        bool repeated = false;
        for (uint32_t j = 0; j < i && !repeated; j++)
            repeated = same_partition(&o->reports[j], r);
        if (repeated) {
            o->report_errors[i] = META_CTL_INVALID_REQUEST;
            continue;
        }
        o->report_errors[i] =
            meta_ctl_partition_report(mn->img, &r->topic_id, r->partition, o->broker, r->epoch,
                                      r->isr, r->isr_count, out, &res);
    }
}

static void build_op(struct meta_node *mn, struct op *o, struct meta_records *out)
{
    struct meta_ctl_result res;
    switch (o->kind) {
    case OP_EXTERNAL:
#ifdef META_NODE_BUG_BUILD_STALE
    {
        /* injected bug: the records built at submission, before earlier operations applied */
        struct meta_records t = *out;
        *out = o->stale;
        o->stale = t;
        break;
    }
#endif
        o->build(o->ctx, out);
        break;
    case OP_REGISTER: {
        const struct meta_broker *cur = meta_broker_find(mn->img, o->reg.id);
        /* A new incarnation at the same endpoint is the same node restarted: the old process
         * cannot hold the port the new one advertises, so its session is over. */
        bool same_place = cur != NULL && cur->endpoint_count > 0 && o->reg.endpoint_count > 0 &&
                          strcmp(cur->endpoints[0].host, o->reg.endpoints[0].host) == 0 &&
                          cur->endpoints[0].port == o->reg.endpoints[0].port;
        struct meta_ctl_register_broker req = {
            .id = o->reg.id,
            .incarnation_id = o->reg.incarnation_id,
            .epoch = log_end_offset(mn->env.log),
            .endpoints = o->reg.endpoints,
            .endpoint_count = o->reg.endpoint_count,
            .rack = o->reg.rack,
            .current_alive = !same_place && session_alive(mn, o->reg.id),
        };
        o->error = meta_ctl_register_broker(mn->img, &req, out, &res, &o->epoch);
        break;
    }
    case OP_FENCE:
    case OP_UNFENCE:
    case OP_SHUT_DOWN: {
        const struct meta_broker *cur = meta_broker_find(mn->img, o->broker);
        struct session *s = session_find(mn, o->broker);
        if (s != NULL)
            s->change_pending = false;
        /* Still wanted? The state may have changed while the operation waited. */
        if (cur == NULL || cur->epoch != o->broker_epoch)
            break;
        if (o->kind == OP_FENCE && !cur->fenced && !session_alive(mn, o->broker))
            meta_ctl_fence_broker(mn->img, o->broker, out, &res);
        else if (o->kind == OP_UNFENCE && cur->fenced)
            meta_ctl_unfence_broker(mn->img, o->broker, o->broker_epoch, out, &res);
        else if (o->kind == OP_SHUT_DOWN && !cur->fenced && !cur->in_controlled_shutdown)
            meta_ctl_shut_down_broker(mn->img, o->broker, out, &res);
        break;
    }
    case OP_REPORT:
        build_reports(mn, o, out);
        break;
    case OP_PRODUCER_IDS:
        o->error = meta_ctl_alloc_producer_ids(mn->img, o->broker, o->broker_epoch, out, &res,
                                               &o->producer_id_first);
        break;
    }
}

static void answer_reports(struct meta_node *mn, const struct op *o, int16_t error)
{
    struct kafka_alter_partition_response resp;
    kafka_alter_partition_response_init(&resp);
    resp.error_code = error;
    struct kafka_alter_partition_response_topic_data *topics = NULL;
    struct kafka_alter_partition_response_partition_data *parts = NULL;
    if (error == 0 && o->report_count > 0) {
        /* One topic entry per report: the answer is read by partition, not by grouping. */
        topics = xcalloc(o->report_count, sizeof(*topics));
        parts = xcalloc(o->report_count, sizeof(*parts));
        for (uint32_t i = 0; i < o->report_count; i++) {
            const struct meta_node_report *r = &o->reports[i];
            topics[i].topic_id = meta_uuid_to_proto(&r->topic_id);
            topics[i].partitions.items = &parts[i];
            topics[i].partitions.count = 1;
            parts[i].partition_index = r->partition;
            parts[i].error_code = o->report_errors[i];
            parts[i].leader_id = o->broker;
            parts[i].leader_epoch = r->epoch;
            parts[i].partition_epoch = -1;
        }
        resp.topics.items = topics;
        resp.topics.count = o->report_count;
    }
    send_rpc(mn, o->from, WIRE_RPC_RESPONSE, o->correlation_id, API_ALTER_PARTITION,
             proto_api_get(API_ALTER_PARTITION)->response, &resp, ALTER_PARTITION_VERSION);
    free(topics);
    free(parts);
}

/* The block (META_PRODUCER_ID_BLOCK ids from producer_id_first), answered only once its
 * ProducerIdsRecord committed: no two brokers ever hand out one id, even across controllers. */
static void answer_producer_ids(struct meta_node *mn, const struct op *o, int16_t error)
{
    struct kafka_allocate_producer_ids_response resp;
    kafka_allocate_producer_ids_response_init(&resp);
    resp.error_code = error;
    resp.producer_id_start = error == 0 ? o->producer_id_first : -1;
    resp.producer_id_len = error == 0 ? META_PRODUCER_ID_BLOCK : 0;
    send_rpc(mn, o->from, WIRE_RPC_RESPONSE, o->correlation_id, API_ALLOCATE_PRODUCER_IDS,
             proto_api_get(API_ALLOCATE_PRODUCER_IDS)->response, &resp, RPC_VERSION);
}

static void finish_op(struct meta_node *mn, struct op *o, int err, int64_t offset)
{
    if (o->kind == OP_EXTERNAL) {
        o->done(o->ctx, err, offset);
    } else if (o->kind == OP_REGISTER) {
        struct kafka_broker_registration_response resp;
        kafka_broker_registration_response_init(&resp);
        resp.error_code = err == 0 ? o->error : ERR_CODE_NOT_CONTROLLER;
        resp.broker_epoch = err == 0 && o->error == 0 ? o->epoch : -1;
        if (resp.error_code == 0) {
            struct session *s = session_get(mn, o->reg.id);
            s->last_ms = now_ms(mn);
        }
        send_rpc(mn, o->from, WIRE_RPC_RESPONSE, o->correlation_id, API_BROKER_REGISTRATION,
                 proto_api_get(API_BROKER_REGISTRATION)->response, &resp, RPC_VERSION);
    } else if (o->kind == OP_REPORT) {
        answer_reports(mn, o, err == 0 ? 0 : ERR_CODE_NOT_CONTROLLER);
    } else if (o->kind == OP_PRODUCER_IDS) {
        answer_producer_ids(mn, o, err == 0 ? o->error : ERR_CODE_NOT_CONTROLLER);
    }
    op_free(o);
}

static void on_committed(void *ctx, int err)
{
    struct op *o = ctx;
    struct meta_node *mn = o->mn;
    ASSERT(mn->inflight == o);
    mn->inflight = NULL;
    finish_op(mn, o, err, o->offset);
    run_queue(mn);
}

/* Builds and proposes queued operations until one is in flight or the queue is empty. */
static void run_queue(struct meta_node *mn)
{
    while (mn->inflight == NULL && mn->head != NULL && mn->ready && mn->err == 0) {
        struct op *o = mn->head;
        mn->head = o->next;
        if (mn->head == NULL)
            mn->tail = NULL;
        meta_records_reset(&mn->recs);
        build_op(mn, o, &mn->recs);
        if (mn->recs.count == 0) {
            finish_op(mn, o, 0, mn->applied);
            continue;
        }
        buf_reset(&mn->batch);
        int rc = meta_records_batch(&mn->recs, 0, mn->recs.count, clock_wall_ms(mn->env.clock),
                                    &mn->batch);
        int64_t term = 0;
        if (rc == 0) {
            o->mn = mn;
            mn->inflight = o;
            rc = raft_group_propose(mn->group, mn->batch.data, mn->batch.len, &o->waiter,
                                    on_committed, o, &o->offset, &term);
            if (rc != 0)
                mn->inflight = NULL;
        }
        if (rc != 0)
            finish_op(mn, o, rc == ERR_STATE ? ERR_STATE : rc, -1);
    }
}

static void fail_queue(struct meta_node *mn, int err)
{
    while (mn->head != NULL) {
        struct op *o = mn->head;
        mn->head = o->next;
        finish_op(mn, o, err, -1);
    }
    mn->tail = NULL;
}

static void enqueue(struct meta_node *mn, struct op *o)
{
    o->next = NULL;
    o->mn = mn;
    if (mn->tail != NULL)
        mn->tail->next = o;
    else
        mn->head = o;
    mn->tail = o;
    run_queue(mn);
}

int meta_node_submit(struct meta_node *mn, meta_node_build_fn build, meta_node_done_fn done,
                     void *ctx)
{
    if (!mn->ready)
        return ERR_STATE;
    struct op *o = xcalloc(1, sizeof(*o));
    o->kind = OP_EXTERNAL;
    o->build = build;
    o->done = done;
    o->ctx = ctx;
#ifdef META_NODE_BUG_BUILD_STALE
    meta_records_init(&o->stale);
    build(ctx, &o->stale);
#endif
    enqueue(mn, o);
    return 0;
}

static void controller_moved(struct meta_node *mn)
{
    /* Our registration goes to the new controller at once. */
    mn->next_send_ms = 0;
    if (mn->reg == REG_SENT)
        mn->reg = REG_NONE;
    if (mn->report_awaiting != 0)
        requeue_reports(mn); /* the old controller may never answer */
    mn->pids_awaiting = 0;   /* asked again, of the new controller */
    if (mn->h.controller != NULL)
        mn->h.controller(mn->h.ctx, mn->leader);
}

static void on_role(void *ctx, uint8_t role, int32_t leader, int64_t term)
{
    struct meta_node *mn = ctx;
    bool was = mn->leading;
    int32_t before = mn->leader;
    mn->leading = role == RAFT_LEADER;
    mn->leader = leader;
    mn->term = term;
    if (!mn->leading) {
        mn->ready = false;
        fail_queue(mn, ERR_STATE);
    } else if (!was) {
        /* A new controller: every broker gets a full session before it can be fenced. */
        mn->session_count = 0;
    }
    if (before != leader)
        controller_moved(mn);
    check_caught_up(mn);
}

/* ---- RPCs --------------------------------------------------------------------------------- */

static void send_rpc(struct meta_node *mn, int32_t to, uint8_t kind, int64_t correlation,
                     int16_t api_key, const struct proto_message *m, const void *body,
                     int16_t version)
{
    struct buf b;
    buf_init(&b);
    int rc = proto_encode(m, body, version, &b);
    if (rc == 0) {
        struct wire_rpc r = {.from = mn->cfg.self,
                             .to = to,
                             .kind = kind,
                             .correlation_id = correlation,
                             .api_key = api_key,
                             .api_version = version,
                             .payload = slice_make(b.data, b.len)};
        rc = transport_send_rpc(mn->env.transport, &r);
    }
    buf_deinit(&b);
    (void)rc; /* a lost RPC is sent again after its interval */
}

static void serve_registration(struct meta_node *mn, const struct wire_rpc *r,
                               const struct kafka_broker_registration_request *q)
{
    struct kafka_broker_registration_response resp;
    kafka_broker_registration_response_init(&resp);
    if (!mn->ready)
        resp.error_code = ERR_CODE_NOT_CONTROLLER;
    else if (q->cluster_id.len != strlen(mn->cluster_id) ||
             memcmp(q->cluster_id.ptr, mn->cluster_id, q->cluster_id.len) != 0)
        resp.error_code = ERR_CODE_INCONSISTENT_CLUSTER_ID;
    else if (q->listeners.count == 0 || q->listeners.count > META_BROKER_ENDPOINTS_MAX)
        resp.error_code = META_CTL_INVALID_REQUEST;
    if (resp.error_code != 0) {
        send_rpc(mn, r->from, WIRE_RPC_RESPONSE, r->correlation_id, API_BROKER_REGISTRATION,
                 proto_api_get(API_BROKER_REGISTRATION)->response, &resp, RPC_VERSION);
        return;
    }
    struct op *o = xcalloc(1, sizeof(*o));
    o->kind = OP_REGISTER;
    o->from = r->from;
    o->correlation_id = r->correlation_id;
    o->reg.id = q->broker_id;
    memcpy(o->reg.incarnation_id.b, q->incarnation_id.bytes, META_UUID_BYTES);
    /* The first listener is the one clients are told about. */
    const struct kafka_broker_registration_request_listener *l = &q->listeners.items[0];
    o->reg.endpoints = xcalloc(1, sizeof(*o->reg.endpoints));
    o->reg.endpoint_count = 1;
    o->reg.endpoints[0].name = dup_str(l->name);
    o->reg.endpoints[0].host = dup_str(l->host);
    o->reg.endpoints[0].port = l->port;
    o->reg.endpoints[0].security_protocol = l->security_protocol;
    o->reg.rack = q->rack.ptr != NULL ? dup_str(q->rack) : NULL;
    enqueue(mn, o);
}

static void queue_change(struct meta_node *mn, enum op_kind kind, const struct meta_broker *b)
{
    struct session *s = session_get(mn, b->id);
    if (s->change_pending)
        return;
    s->change_pending = true;
    struct op *o = xcalloc(1, sizeof(*o));
    o->kind = kind;
    o->broker = b->id;
    o->broker_epoch = b->epoch;
    enqueue(mn, o);
}

static void serve_heartbeat(struct meta_node *mn, const struct wire_rpc *r,
                            const struct kafka_broker_heartbeat_request *q)
{
    struct kafka_broker_heartbeat_response resp;
    kafka_broker_heartbeat_response_init(&resp);
    const struct meta_broker *b = meta_broker_find(mn->img, q->broker_id);
    if (!mn->ready)
        resp.error_code = ERR_CODE_NOT_CONTROLLER;
    else if (b == NULL)
        resp.error_code = ERR_CODE_BROKER_ID_NOT_REGISTERED;
    else if (b->epoch != q->broker_epoch)
        resp.error_code = ERR_CODE_STALE_BROKER_EPOCH;
    if (resp.error_code == 0) {
        session_get(mn, b->id)->last_ms = now_ms(mn);
        resp.is_caught_up = q->current_metadata_offset >= b->epoch;
        resp.is_fenced = b->fenced;
        /* A broker stopping asks to be marked in controlled shutdown (its replicas leave every
         * ISR) and goes once it is; it asks again until then. */
        bool out = b->fenced || b->in_controlled_shutdown;
        resp.should_shut_down = q->want_shut_down && out;
        if (q->want_shut_down && !out)
            queue_change(mn, OP_SHUT_DOWN, b);
        else if (!q->want_shut_down && b->fenced && resp.is_caught_up)
            queue_change(mn, OP_UNFENCE, b);
    }
    send_rpc(mn, r->from, WIRE_RPC_RESPONSE, r->correlation_id, API_BROKER_HEARTBEAT,
             proto_api_get(API_BROKER_HEARTBEAT)->response, &resp, RPC_VERSION);
}

static void serve_reports(struct meta_node *mn, const struct wire_rpc *r,
                          const struct kafka_alter_partition_request *q)
{
    struct op *o = xcalloc(1, sizeof(*o));
    o->kind = OP_REPORT;
    o->from = r->from;
    o->correlation_id = r->correlation_id;
    o->broker = q->broker_id;
    o->broker_epoch = q->broker_epoch;
    size_t n = 0;
    for (size_t t = 0; t < q->topics.count; t++)
        n += q->topics.items[t].partitions.count;
    /* The request sizes the copy: one over the batch bound is refused before anything is
     * allocated for it. */
    bool bad = q->broker_id != r->from || n > META_REPORT_BATCH_MAX;
    size_t room = bad ? 0 : n;
    o->reports = xcalloc(room + 1, sizeof(*o->reports));
    o->report_errors = xcalloc(room + 1, sizeof(*o->report_errors));
    for (size_t t = 0; t < q->topics.count && !bad; t++) {
        const struct kafka_alter_partition_request_topic_data *td = &q->topics.items[t];
        for (size_t p = 0; p < td->partitions.count && !bad; p++) {
            const struct kafka_alter_partition_request_partition_data *pd =
                &td->partitions.items[p];
            struct meta_node_report *rep = &o->reports[o->report_count++];
            memcpy(rep->topic_id.b, td->topic_id.bytes, META_UUID_BYTES);
            rep->partition = pd->partition_index;
            rep->epoch = pd->leader_epoch;
            bad = pd->new_isr.count > RAFT_VOTERS_MAX;
            rep->isr_count = bad ? 0 : (uint32_t)pd->new_isr.count;
            for (uint32_t i = 0; i < rep->isr_count; i++)
                rep->isr[i] = pd->new_isr.items[i];
        }
    }
    if (!mn->ready || bad) {
        o->report_count = 0;
        answer_reports(mn, o, bad ? META_CTL_INVALID_REQUEST : ERR_CODE_NOT_CONTROLLER);
        op_free(o);
        return;
    }
    enqueue(mn, o);
}

static void serve_producer_ids(struct meta_node *mn, const struct wire_rpc *r,
                               const struct kafka_allocate_producer_ids_request *q)
{
    struct op *o = xcalloc(1, sizeof(*o));
    o->kind = OP_PRODUCER_IDS;
    o->from = r->from;
    o->correlation_id = r->correlation_id;
    o->broker = q->broker_id;
    o->broker_epoch = q->broker_epoch;
    if (!mn->ready || q->broker_id != r->from) {
        answer_producer_ids(mn, o, mn->ready ? META_CTL_INVALID_REQUEST : ERR_CODE_NOT_CONTROLLER);
        op_free(o);
        return;
    }
    enqueue(mn, o);
}

static void on_producer_ids_answer(struct meta_node *mn,
                                   const struct kafka_allocate_producer_ids_response *a)
{
    mn->pids_awaiting = 0;
    bool ok = a->error_code == 0 && a->producer_id_start >= 0 && a->producer_id_len > 0 &&
              a->producer_id_start <= INT64_MAX - a->producer_id_len;
    if (a->error_code != 0 && a->error_code != ERR_CODE_NOT_CONTROLLER)
        fprintf(stderr, "chronik: the controller refused this node producer ids: error %d\n",
                (int)a->error_code);
    if (ok && mn->h.producer_ids != NULL)
        mn->h.producer_ids(mn->h.ctx, a->producer_id_start, a->producer_id_len);
}

int meta_node_alloc_producer_ids(struct meta_node *mn)
{
    if (mn->pids_awaiting != 0 && now_ms(mn) - mn->pids_sent_ms < META_REPORT_RETRY_MS)
        return 0;
    if (mn->leader < 0 || mn->reg != REG_DONE || mn->err != 0) {
        mn->pids_awaiting = 0;
        return ERR_STATE;
    }
    struct kafka_allocate_producer_ids_request q;
    kafka_allocate_producer_ids_request_init(&q);
    q.broker_id = mn->cfg.self;
    q.broker_epoch = mn->broker_epoch;
    mn->pids_awaiting = ++mn->correlation;
    mn->pids_sent_ms = now_ms(mn);
    send_rpc(mn, mn->leader, WIRE_RPC_REQUEST, mn->pids_awaiting, API_ALLOCATE_PRODUCER_IDS,
             proto_api_get(API_ALLOCATE_PRODUCER_IDS)->request, &q, RPC_VERSION);
    return 0;
}

/* The controller's answer to our reports: each one answered is done (recorded, or stale and
 * dropped); the whole request goes again when the controller could not take it. */
static void on_reports_answer(struct meta_node *mn, const struct kafka_alter_partition_response *a)
{
    mn->report_awaiting = 0;
    if (a->error_code != 0) {
        requeue_reports(mn);
        return;
    }
    for (size_t t = 0; t < a->topics.count; t++)
        for (size_t p = 0; p < a->topics.items[t].partitions.count; p++) {
            int16_t e = a->topics.items[t].partitions.items[p].error_code;
            if (e != 0 && e != META_CTL_FENCED_LEADER_EPOCH)
                fprintf(stderr,
                        "chronik: the controller refused this node's report on partition %d: "
                        "error %d\n",
                        (int)a->topics.items[t].partitions.items[p].partition_index, (int)e);
        }
    mn->report_sent_count = 0;
    send_reports(mn);
}

static void on_registration_answer(struct meta_node *mn,
                                   const struct kafka_broker_registration_response *a)
{
    if (a->error_code != 0) {
        if (a->error_code != ERR_CODE_NOT_CONTROLLER)
            fprintf(stderr,
                    "chronik: the controller (node %d) refused this node's registration: "
                    "error %d; trying again\n",
                    (int)mn->leader, (int)a->error_code);
        mn->reg = REG_NONE;
        return;
    }
    mn->reg = REG_DONE;
    mn->broker_epoch = a->broker_epoch;
    mn->next_send_ms = 0; /* the first heartbeat now: it unfences */
    check_unfenced(mn);
    maybe_send(mn);
}

static void on_heartbeat_answer(struct meta_node *mn,
                                const struct kafka_broker_heartbeat_response *a)
{
    if (a->error_code == ERR_CODE_STALE_BROKER_EPOCH ||
        a->error_code == ERR_CODE_BROKER_ID_NOT_REGISTERED) {
        mn->reg = REG_NONE;
        mn->unfenced = false;
        mn->next_send_ms = 0;
        return;
    }
    if (mn->want_shutdown && a->error_code == 0 && a->should_shut_down)
        mn->shutdown_granted = true;
    else if (mn->want_shutdown)
        mn->next_send_ms = 0; /* not yet: asked again at the next tick */
    check_unfenced(mn);
}

bool meta_node_on_rpc(struct meta_node *mn, const struct wire_rpc *r)
{
    if (r->api_key != API_BROKER_REGISTRATION && r->api_key != API_BROKER_HEARTBEAT &&
        r->api_key != API_FETCH && r->api_key != API_ALTER_PARTITION &&
        r->api_key != API_ALLOCATE_PRODUCER_IDS)
        return false;
    const struct proto_api *api = proto_api_get(r->api_key);
    const struct proto_message *m = r->kind == WIRE_RPC_REQUEST ? api->request : api->response;
    int64_t awaited = r->api_key == API_FETCH                   ? mn->fetch_awaiting
                      : r->api_key == API_ALTER_PARTITION       ? mn->report_awaiting
                      : r->api_key == API_ALLOCATE_PRODUCER_IDS ? mn->pids_awaiting
                                                                : mn->awaiting;
    if (r->kind == WIRE_RPC_RESPONSE && r->correlation_id != awaited)
        return true; /* an answer we gave up on */
    int16_t version = r->api_key == API_FETCH             ? FETCH_VERSION
                      : r->api_key == API_ALTER_PARTITION ? ALTER_PARTITION_VERSION
                                                          : RPC_VERSION;
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, CLUSTER_RPC_ARENA_MAX);
    void *body = arena_alloc(&a, m->body->bytes);
    struct reader rd;
    rd_init(&rd, r->payload.ptr, r->payload.len);
    int rc = body == NULL ? ERR_TOO_LARGE : proto_decode(m, &a, &rd, r->api_version, body);
    if (rc == 0 && r->api_version == version) {
        if (r->api_key == API_ALLOCATE_PRODUCER_IDS && r->kind == WIRE_RPC_REQUEST)
            serve_producer_ids(mn, r, body);
        else if (r->api_key == API_ALLOCATE_PRODUCER_IDS)
            on_producer_ids_answer(mn, body);
        else if (r->api_key == API_ALTER_PARTITION && r->kind == WIRE_RPC_REQUEST)
            serve_reports(mn, r, body);
        else if (r->api_key == API_ALTER_PARTITION)
            on_reports_answer(mn, body);
        else if (r->api_key == API_FETCH && r->kind == WIRE_RPC_REQUEST)
            serve_fetch(mn, r, body);
        else if (r->api_key == API_FETCH)
            on_fetch_answer(mn, body);
        else if (r->api_key == API_BROKER_REGISTRATION && r->kind == WIRE_RPC_REQUEST)
            serve_registration(mn, r, body);
        else if (r->api_key == API_BROKER_HEARTBEAT && r->kind == WIRE_RPC_REQUEST)
            serve_heartbeat(mn, r, body);
        else if (r->api_key == API_BROKER_REGISTRATION)
            on_registration_answer(mn, body);
        else
            on_heartbeat_answer(mn, body);
    }
    arena_deinit(&a);
    return true;
}

/* ---- observers ---------------------------------------------------------------------------- */

/*
 * An observer is not in the metadata group: like a KRaft observer it fetches the committed log
 * from a voter (Kafka's Fetch, the metadata topic id, partition 0), appends it to its own
 * metadata log as the voters wrote it, and applies it. Its log holds committed batches only, so
 * everything in it applies at once after a restart. A voter answers with committed batches from
 * the offset asked for, its high watermark (commit + 1) and the leader it knows.
 */

static void serve_fetch(struct meta_node *mn, const struct wire_rpc *r,
                        const struct kafka_fetch_request *q)
{
    struct kafka_fetch_response resp;
    struct kafka_fetch_response_fetchable_topic_response topic;
    struct kafka_fetch_response_partition_data pd;
    struct kafka_fetch_response_leader_id_and_epoch leader = {
        .leader_id = mn->leader, .leader_epoch = mn->leader >= 0 ? (int32_t)mn->term : -1};
    kafka_fetch_response_init(&resp);
    memset(&topic, 0, sizeof(topic));
    memset(&pd, 0, sizeof(pd));
    topic.topic_id = wire_metadata_group.topic_id;
    topic.partitions.items = &pd;
    topic.partitions.count = 1;
    resp.responses.items = &topic;
    resp.responses.count = 1;
    pd.current_leader = &leader;
    pd.preferred_read_replica = -1;
    pd.last_stable_offset = -1;
    pd.aborted_transactions.items = (void *)&pd; /* empty, not null */
    struct log *log = mn->env.log;
    pd.high_watermark = log_high_watermark(log);
    pd.log_start_offset = log_start_offset(log);
    struct buf bytes;
    buf_init(&bytes);
    int64_t offset = -1;
    if (q->topics.count == 1 && q->topics.items[0].partitions.count == 1)
        offset = q->topics.items[0].partitions.items[0].fetch_offset;
    if (mn->observer || mn->group == NULL) {
        pd.error_code = ERR_CODE_NOT_LEADER_OR_FOLLOWER;
    } else if (offset < pd.log_start_offset || offset > log_end_offset(log)) {
        pd.error_code = ERR_CODE_OFFSET_OUT_OF_RANGE;
    } else if (offset < pd.high_watermark) {
        struct log_read rd;
        int rc = log_read(log, offset, META_APPLY_READ_BYTES, pd.high_watermark, &rd);
        if (rc == 0 && rd.file != NULL) {
            uint8_t *p = buf_extend(&bytes, (size_t)rd.bytes);
            ssize_t n = io_pread(log_file_io(rd.file), p, (size_t)rd.bytes, rd.position);
            if (n != (ssize_t)rd.bytes)
                bytes.len = 0;
        }
        if (rc == 0)
            log_read_release(&rd);
    }
    pd.records = buf_slice(&bytes);
    send_rpc(mn, r->from, WIRE_RPC_RESPONSE, r->correlation_id, API_FETCH,
             proto_api_get(API_FETCH)->response, &resp, FETCH_VERSION);
    buf_deinit(&bytes);
}

static void send_fetch(struct meta_node *mn)
{
    int32_t to = mn->leader;
    if (to < 0 || to == mn->cfg.self)
        to = mn->cfg.voters[mn->fetch_next++ % mn->cfg.voter_count];
    struct kafka_fetch_request_fetch_partition part;
    memset(&part, 0, sizeof(part));
    part.partition = 0;
    part.current_leader_epoch = -1;
    part.fetch_offset = log_end_offset(mn->env.log);
    part.last_fetched_epoch = -1;
    part.log_start_offset = log_start_offset(mn->env.log);
    part.partition_max_bytes = (int32_t)META_APPLY_READ_BYTES;
    struct kafka_fetch_request_fetch_topic topic;
    memset(&topic, 0, sizeof(topic));
    topic.topic_id = wire_metadata_group.topic_id;
    topic.partitions.items = &part;
    topic.partitions.count = 1;
    struct kafka_fetch_request q;
    kafka_fetch_request_init(&q);
    q.replica_id = mn->cfg.self;
    q.max_bytes = (int32_t)META_APPLY_READ_BYTES;
    q.topics.items = &topic;
    q.topics.count = 1;
    q.forgotten_topics_data.items = (void *)&topic; /* empty, not null */
    mn->fetch_awaiting = ++mn->correlation;
    mn->fetch_sent_ms = now_ms(mn);
    send_rpc(mn, to, WIRE_RPC_REQUEST, mn->fetch_awaiting, API_FETCH,
             proto_api_get(API_FETCH)->request, &q, FETCH_VERSION);
}

/* An observer's copy is made durable for its restarts only: the data is committed already. */
static void on_observer_flushed(void *ctx, int err, int64_t durable_offset)
{
    struct meta_node *mn = ctx;
    (void)durable_offset;
    if (err != 0 && mn->err == 0)
        mn->err = err;
}

static void on_fetch_answer(struct meta_node *mn, const struct kafka_fetch_response *a)
{
    mn->fetch_awaiting = 0;
    if (a->responses.count != 1 || a->responses.items[0].partitions.count != 1)
        return;
    const struct kafka_fetch_response_partition_data *pd =
        &a->responses.items[0].partitions.items[0];
    if (pd->current_leader != NULL && pd->current_leader->leader_id >= 0 &&
        pd->current_leader->leader_id != mn->leader) {
        mn->leader = pd->current_leader->leader_id;
        mn->term = pd->current_leader->leader_epoch;
        controller_moved(mn);
    }
    if (pd->error_code == ERR_CODE_OFFSET_OUT_OF_RANGE && !mn->snapshot_needed) {
        mn->snapshot_needed = true;
        fprintf(stderr,
                "chronik: node %d (an observer) is behind the metadata log's start (offset %lld, "
                "log start %lld) and needs a snapshot, which observers cannot fetch yet\n",
                (int)mn->cfg.self, (long long)log_end_offset(mn->env.log),
                (long long)pd->log_start_offset);
    }
    if (pd->error_code != 0)
        return;
    struct slice rest = pd->records;
    int64_t before = log_end_offset(mn->env.log);
    while (rest.len > 0) {
        struct batch_header bh;
        if (batch_parse(rest.ptr, rest.len, &bh) != 0)
            break; /* a partial batch at the end, or damage: what parsed is kept */
        size_t len = (size_t)batch_total_bytes(&bh);
        if (bh.base_offset != log_end_offset(mn->env.log))
            break;
        struct log_append_result res;
        int rc = log_append_at(mn->env.log, rest.ptr, len, &res);
        if (rc != 0) {
            mn->err = rc;
            fprintf(stderr, "chronik: cannot write the metadata log: %s\n", err_str(rc));
            return;
        }
        rest = slice_make(rest.ptr + len, rest.len - len);
    }
    int64_t end = log_end_offset(mn->env.log);
    mn->fetch_commit = MIN(pd->high_watermark, end) - 1;
    if (end > 0)
        (void)log_set_high_watermark(mn->env.log, end);
    if (end > before)
        (void)log_flush(mn->env.log, end, on_observer_flushed, mn);
    on_apply(mn, mn->applied + 1, mn->fetch_commit);
    if (end > before)
        send_fetch(mn); /* more may follow at once */
}

/* ---- this node as a broker ---------------------------------------------------------------- */

static void send_registration(struct meta_node *mn)
{
    struct kafka_broker_registration_request q;
    kafka_broker_registration_request_init(&q);
    struct kafka_broker_registration_request_listener l;
    memset(&l, 0, sizeof(l));
    l.name = proto_str_make(mn->cfg.endpoint.name);
    l.host = proto_str_make(mn->cfg.endpoint.host);
    l.port = mn->cfg.endpoint.port;
    l.security_protocol = mn->cfg.endpoint.security_protocol;
    q.broker_id = mn->cfg.self;
    q.cluster_id = proto_str_make(mn->cluster_id);
    memcpy(q.incarnation_id.bytes, mn->cfg.incarnation_id.b, META_UUID_BYTES);
    q.listeners.items = &l;
    q.listeners.count = 1;
    q.rack = mn->cfg.rack != NULL ? proto_str_make(mn->cfg.rack) : (struct proto_str){NULL, 0};
    mn->awaiting = ++mn->correlation;
    mn->reg = REG_SENT;
    send_rpc(mn, mn->leader, WIRE_RPC_REQUEST, mn->awaiting, API_BROKER_REGISTRATION,
             proto_api_get(API_BROKER_REGISTRATION)->request, &q, RPC_VERSION);
}

static void send_heartbeat(struct meta_node *mn)
{
    struct kafka_broker_heartbeat_request q;
    kafka_broker_heartbeat_request_init(&q);
    q.broker_id = mn->cfg.self;
    q.broker_epoch = mn->broker_epoch;
    q.current_metadata_offset = mn->applied;
    q.want_shut_down = mn->want_shutdown;
    mn->awaiting = ++mn->correlation;
    send_rpc(mn, mn->leader, WIRE_RPC_REQUEST, mn->awaiting, API_BROKER_HEARTBEAT,
             proto_api_get(API_BROKER_HEARTBEAT)->request, &q, RPC_VERSION);
}

static int report_cmp(const void *a, const void *b)
{
    const struct meta_node_report *x = a, *y = b;
    int c = memcmp(x->topic_id.b, y->topic_id.b, META_UUID_BYTES);
    return c != 0 ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

static struct meta_node_report *report_find(struct meta_node_report *list, uint32_t count,
                                            const struct meta_node_report *r)
{
    for (uint32_t i = 0; i < count; i++)
        if (same_partition(&list[i], r))
            return &list[i];
    return NULL;
}

static void report_queue(struct meta_node *mn, const struct meta_node_report *r)
{
    struct meta_node_report *q = report_find(mn->reports, mn->report_count, r);
    if (q != NULL) {
        *q = *r;
        return;
    }
    if (mn->report_count == mn->report_cap) {
        mn->report_cap = mn->report_cap ? mn->report_cap * 2 : 16;
        mn->reports = xrealloc(mn->reports, mn->report_cap * sizeof(*mn->reports));
    }
    mn->reports[mn->report_count++] = *r;
}

void meta_node_report(struct meta_node *mn, const struct meta_node_report *r)
{
    report_queue(mn, r);
    send_reports(mn);
}

uint32_t meta_node_reports_pending(const struct meta_node *mn)
{
    return mn->report_count + mn->report_sent_count;
}

/* The request in flight was not taken: its reports are queued again unless newer ones are. */
static void requeue_reports(struct meta_node *mn)
{
    mn->report_awaiting = 0;
    for (uint32_t i = 0; i < mn->report_sent_count; i++)
        if (report_find(mn->reports, mn->report_count, &mn->report_sent[i]) == NULL)
            report_queue(mn, &mn->report_sent[i]);
    mn->report_sent_count = 0;
}

/* Sends the queued reports (up to META_REPORT_BATCH_MAX, grouped by topic) when none are in
 * flight and this node is a registered broker that knows the controller. */
static void send_reports(struct meta_node *mn)
{
    if (mn->report_awaiting != 0 && now_ms(mn) - mn->report_sent_ms >= META_REPORT_RETRY_MS)
        requeue_reports(mn);
    if (mn->report_awaiting != 0 || mn->report_count == 0 || mn->leader < 0 ||
        mn->reg != REG_DONE || mn->err != 0)
        return;
    uint32_t n =
        mn->report_count < META_REPORT_BATCH_MAX ? mn->report_count : META_REPORT_BATCH_MAX;
    qsort(mn->reports, mn->report_count, sizeof(*mn->reports), report_cmp);
    mn->report_sent = xrealloc(mn->report_sent, (n + 1) * sizeof(*mn->report_sent));
    memcpy(mn->report_sent, mn->reports, n * sizeof(*mn->reports));
    mn->report_sent_count = n;
    memmove(mn->reports, mn->reports + n, (mn->report_count - n) * sizeof(*mn->reports));
    mn->report_count -= n;

    struct kafka_alter_partition_request q;
    kafka_alter_partition_request_init(&q);
    q.broker_id = mn->cfg.self;
    q.broker_epoch = mn->broker_epoch;
    struct kafka_alter_partition_request_topic_data *topics = xcalloc(n, sizeof(*topics));
    struct kafka_alter_partition_request_partition_data *parts = xcalloc(n, sizeof(*parts));
    size_t nt = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct meta_node_report *r = &mn->report_sent[i];
        if (i == 0 || memcmp(r->topic_id.b, r[-1].topic_id.b, META_UUID_BYTES) != 0) {
            topics[nt].topic_id = meta_uuid_to_proto(&r->topic_id);
            topics[nt].partitions.items = &parts[i];
            nt++;
        }
        topics[nt - 1].partitions.count++;
        parts[i].partition_index = r->partition;
        parts[i].leader_epoch = r->epoch;
        parts[i].new_isr.items = (int32_t *)r->isr;
        parts[i].new_isr.count = r->isr_count;
        parts[i].partition_epoch = -1;
    }
    q.topics.items = topics;
    q.topics.count = nt;
    mn->report_awaiting = ++mn->correlation;
    mn->report_sent_ms = now_ms(mn);
    send_rpc(mn, mn->leader, WIRE_RPC_REQUEST, mn->report_awaiting, API_ALTER_PARTITION,
             proto_api_get(API_ALTER_PARTITION)->request, &q, ALTER_PARTITION_VERSION);
    free(topics);
    free(parts);
}

/* The controller's side of the tick: fence every broker whose session expired. */
static void check_sessions(struct meta_node *mn)
{
    for (uint32_t i = 0; i < mn->img->broker_count; i++) {
        const struct meta_broker *b = &mn->img->brokers[i];
        if (b->fenced)
            continue;
        (void)session_get(mn, b->id); /* a broker never heard from gets a whole session */
        if (!session_alive(mn, b->id))
            queue_change(mn, OP_FENCE, b);
    }
}

/* Registration or heartbeat, when one is due. */
static void maybe_send(struct meta_node *mn)
{
    uint64_t now = now_ms(mn);
    if (mn->err != 0 || mn->leader < 0 || !mn->caught_up || now < mn->next_send_ms)
        return;
    mn->next_send_ms = now + mn->cfg.broker_heartbeat_ms;
    if (mn->reg == REG_DONE)
        send_heartbeat(mn);
    else
        send_registration(mn);
}

void meta_node_tick(struct meta_node *mn)
{
    if (mn->err != 0)
        return;
    if (mn->observer &&
        (mn->fetch_awaiting == 0 || now_ms(mn) - mn->fetch_sent_ms >= META_FETCH_RETRY_MS)) {
        /* Unanswered: the leader may be gone. The voters are asked in turn until one answers
         * and names the new leader (a dead controller was asked for good, so the observer
         * kept a stale image and was fenced by the new one). */
        if (mn->fetch_awaiting != 0)
            mn->leader = -1;
        send_fetch(mn);
    }
    if (mn->ready)
        check_sessions(mn);
    maybe_send(mn);
    send_reports(mn);
}

/* ---- open and close ----------------------------------------------------------------------- */

int meta_node_open(const struct meta_node_config *cfg, const struct meta_node_env *env,
                   struct meta_image *img, int64_t applied, const struct meta_node_handler *h,
                   struct meta_node **out)
{
    if (cfg->voter_count == 0 || cfg->voter_count > RAFT_VOTERS_MAX || cfg->cluster_id == NULL ||
        strlen(cfg->cluster_id) >= CLUSTER_ID_BYTES_MAX)
        return ERR_INVALID;
    struct meta_node *mn = xcalloc(1, sizeof(*mn));
    mn->cfg = *cfg;
    memcpy(mn->voters, cfg->voters, cfg->voter_count * sizeof(int32_t));
    mn->cfg.voters = mn->voters;
    snprintf(mn->cluster_id, sizeof(mn->cluster_id), "%s", cfg->cluster_id);
    mn->cfg.cluster_id = mn->cluster_id;
    if (cfg->rack != NULL) {
        snprintf(mn->rack, sizeof(mn->rack), "%s", cfg->rack);
        mn->cfg.rack = mn->rack;
    }
    snprintf(mn->host_name, sizeof(mn->host_name), "%s", cfg->endpoint.host);
    mn->cfg.endpoint.host = mn->host_name;
    mn->env = *env;
    snprintf(mn->snapshot_dir, sizeof(mn->snapshot_dir), "%s", env->snapshot_dir);
    snprintf(mn->snapshot_path, sizeof(mn->snapshot_path), "%s", env->snapshot_path);
    mn->env.snapshot_dir = mn->snapshot_dir;
    mn->env.snapshot_path = mn->snapshot_path;
    mn->img = img;
    if (h != NULL)
        mn->h = *h;
    mn->applied = applied;
    mn->snapshot_offset = applied;
    mn->leader = -1;
    mn->catch_up_to = -1;
    buf_init(&mn->read_buf);
    buf_init(&mn->batch);
    meta_records_init(&mn->recs);

    struct raft_group_options go = {
        .group = wire_metadata_group,
        .log = env->log,
        .election_ticks = cfg->election_ticks,
        .heartbeat_ticks = cfg->heartbeat_ticks,
        .seed = cfg->seed,
        .applied_index = applied,
        .apply = on_apply,
        .on_role = on_role,
        .ctx = mn,
        /* A voter other than the first with an empty log joins: the first voter founds a new
         * cluster (or brings a standalone node's history) and leads first, so voters that know
         * nothing never elect one of themselves over that history. */
        .joining = cfg->voters[0] != cfg->self && log_end_offset(env->log) == 0,
    };
    go.config.index = -1;
    go.config.count = cfg->voter_count;
    for (uint32_t i = 0; i < cfg->voter_count; i++) {
        go.config.ids[i] = cfg->voters[i];
        go.config.voter[i] = 1;
    }
    mn->observer = true;
    for (uint32_t i = 0; i < cfg->voter_count; i++)
        mn->observer = mn->observer && cfg->voters[i] != cfg->self;
    int rc = 0;
    if (mn->observer) {
        /* Everything an observer's log holds was committed when it was fetched. */
        mn->fetch_commit = -1;
        rc = apply_upto(mn, log_end_offset(env->log) - 1);
        if (rc == 0 && log_end_offset(env->log) > 0)
            rc = log_set_high_watermark(env->log, log_end_offset(env->log));
    } else {
        rc = raft_group_open(env->host, &go, &mn->group);
    }
    if (rc != 0) {
        buf_deinit(&mn->read_buf);
        buf_deinit(&mn->batch);
        meta_records_deinit(&mn->recs);
        free(mn);
        return rc;
    }
    *out = mn;
    return 0;
}

void meta_node_close(struct meta_node *mn)
{
    if (mn == NULL)
        return;
    fail_queue(mn, ERR_CLOSED);
    /* The in-flight operation's waiter fails with ERR_CLOSED as the group closes. */
    if (mn->group != NULL)
        raft_group_close(mn->group);
    buf_deinit(&mn->read_buf);
    buf_deinit(&mn->batch);
    meta_records_deinit(&mn->recs);
    free(mn->sessions);
    free(mn->reports);
    free(mn->report_sent);
    free(mn);
}

int32_t meta_node_controller(const struct meta_node *mn)
{
    return mn->leader;
}

bool meta_node_is_controller(const struct meta_node *mn)
{
    return mn->ready;
}

int64_t meta_node_applied(const struct meta_node *mn)
{
    return mn->applied;
}

bool meta_node_caught_up(const struct meta_node *mn)
{
    return mn->caught_up;
}

bool meta_node_unfenced(const struct meta_node *mn)
{
    return mn->unfenced;
}

void meta_node_request_shutdown(struct meta_node *mn)
{
    mn->want_shutdown = true;
    mn->next_send_ms = 0;
    maybe_send(mn);
}

bool meta_node_shutdown_granted(const struct meta_node *mn)
{
    return mn->shutdown_granted;
}

int meta_node_error(const struct meta_node *mn)
{
    return mn->err != 0 ? mn->err : mn->group != NULL ? raft_group_error(mn->group) : 0;
}
