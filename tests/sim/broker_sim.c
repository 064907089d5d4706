/*
 * The whole-cluster simulator's stage 5 (cluster_sim.h, docs/raft.md "The cluster simulator"):
 * every node a complete broker (broker_open with struct broker_sim: the simulator's loop,
 * io_sim disk, sim_net transport and clock, every random choice from the seed), and clients that
 * speak Kafka to it: encoded request frames through broker_client_frame, the path a connection's
 * requests take, answers decoded from the response frames.
 *
 * Owns, for one run: the nodes (a disk and a clock that outlive every process; while the
 * process runs its loop and broker), the network, the clients and what they were told, the admin
 * and the topics it created or deleted, and per topic partition the value every offset was ever
 * seen holding.
 *
 * Model: time moves in steps of one simulated millisecond. Each step delivers the frames due, lets
 * each running node's disk complete its queued syncs when its drawn latency has passed
 * (broker_flush_pending), runs each running node's loop (timers by its clock, then the posted
 * tasks: the transport's flush), and then, when they are due, a client operation, an admin
 * operation or a fault. Topics come only from the metadata log: the admin's CreateTopics and
 * DeleteTopics go to any serving node, which forwards them to the controller; the controller
 * assigns the replicas; the partitions' leaders report themselves through AlterPartition.
 * Clients learn leaders from Metadata (adopting a partition's leader only at an epoch at least
 * the one they know, KIP-320), send Produce (acks=all, sometimes acks=1), Fetch
 * (read_uncommitted, with the leader epoch they know) and ListOffsets (latest) to the leader they
 * believe in, and refresh their metadata after NOT_LEADER_OR_FOLLOWER, a fenced epoch or a
 * broken connection; each commits its consumer positions in topic 0 for its own group
 * (FindCoordinator, OffsetCommit, OffsetFetch); and each is an idempotent producer to topic 0
 * (struct bs_idem_part says how it sends and retries). A node is reachable by clients only
 * while it serves (it has a listener). An answer never sends a request (a node may be freeing
 * itself as it answers); the client acts on its next turn. min.insync.replicas is 2, or (one
 * seed in four) all 3 replicas.
 *
 * Checks (Kafka level):
 *   one history     every offset of a partition holds one value across nodes and time: what a
 *                   Fetch returns and what an acks=all Produce acknowledged there agree;
 *   committed only  a read_uncommitted Fetch returns no offset at or past the high watermark it
 *                   reports;
 *   monotonic       the high watermark a client sees (Fetch, ListOffsets latest) never goes
 *                   back, answers to requests sent for an older leader epoch than it knows by
 *                   then discarded first (KIP-320); the leader epoch a node answers in Metadata
 *                   for a partition never goes back while its process runs;
 *   admin           a node that acknowledged a topic's creation (deletion) lists it (does not)
 *                   in its Metadata answers to requests sent later, in the same process;
 *   group offsets   OffsetFetch answers the last acknowledged commit or a later one sent;
 *   idempotence     a batch is acknowledged at one offset, after its predecessor's; out of order
 *                   only while an earlier batch is unacknowledged; a burst one node read in one
 *                   go is not refused in part and judged in part; at the end each producer's
 *                   sequences read back from a partition are 0, 1, 2, ... in offset order;
 *   errors          only errors a client acts on; a broker exits or fails to start only after
 *                   its disk returned an injected error; every request is answered, or its
 *                   connection closed, by the time its broker is gone;
 *   at the end      after healing every fault and restarting every node, within BS_LIVENESS_MS:
 *                   every node serves, has applied the same metadata and holds an equal image,
 *                   every partition of every topic has a leader and an acks=all Produce to it
 *                   succeeds, and the images agree again; every client request is answered
 *                   within BS_READ_MS; then a consumer reading every partition from offset 0 to
 *                   its high watermark finds every acks=all acknowledged record at its offset
 *                   with its value, within BS_READ_MS.
 *
 * Faults (drawn by the seed, in the fault phase): a process crash (its page cache survives), a
 * node's power loss (unsynced writes lost: a prefix, or the next write torn by sectors; with
 * --reorder later writes out of order), power loss of every node, a clean stop, a controlled
 * shutdown (leaderships handed over, then a stop), a minority, the controller or a partition's
 * leader cut off, a link cut one way, the network's drop, duplication, delay and reordering
 * changing, one write or sync failing with EIO or ENOSPC, a node's clock jumping (monotonic
 * forward, wall either way), and topic creation and deletion under all of them.
 */
#include "sim/broker_sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/rand.h"
#include "broker/broker_internal.h"
#include "broker/meta_properties.h"
#include "cluster/meta_node.h"
#include "cluster/sim_net.h"
#include "io/io_sim.h"
#include "log/batch.h"
#include "proto/gen/kafka.h"
#include "sim/sim_loop.h"
#include "sim/sim_trace.h"

#define BS_NODES_MAX     5
#define BS_CLIENTS       3
#define BS_TOPICS_MAX    12
#define BS_PARTS_MAX     3
#define BS_INFLIGHT_MAX  6u
#define BS_LIVENESS_MS   30000u /* after healing: serving, equal images, leaders, a produce */
#define BS_READ_MS       10000u /* then: the final read of every partition */
#define BS_RESTART_MS    2000u  /* a node down comes back within */
#define BS_CLOCK_JUMP_MS 3000u
#define BS_NEVER         UINT64_MAX
#define BS_CLUSTER_ID    "csim-cluster-id-000005"
#define BS_DATA          "/data"
#define BS_VALUE_MAX     200u
#define BS_CONTROL       UINT64_MAX       /* the value id of a control batch's record */
#define BS_FOREIGN       (UINT64_MAX - 1) /* the value id of a record no client wrote */
#define BS_IDEM_INFLIGHT 5u  /* an idempotent producer's batches in flight per partition */
#define BS_IDEM_QUEUE    16u /* and its batches not acknowledged yet per partition */

enum {
    API_PRODUCE = 0,
    API_FETCH = 1,
    API_LIST_OFFSETS = 2,
    API_METADATA = 3,
    API_OFFSET_COMMIT = 8,
    API_OFFSET_FETCH = 9,
    API_FIND_COORDINATOR = 10,
    API_INIT_PRODUCER_ID = 22,
    API_CREATE = 19,
    API_DELETE = 20
};
#define V_OFFSET_COMMIT    7
#define V_OFFSET_FETCH     7
#define V_FIND_COORDINATOR 3
#define V_INIT_PRODUCER_ID 4
#define V_PRODUCE          9
#define V_FETCH            12
#define V_LIST_OFFSETS     5
#define V_METADATA         12
#define V_CREATE           7
#define V_DELETE           6

/* Every value an offset of a partition was seen holding (one history), and what was
 * acknowledged. */
struct bs_part {
    uint64_t *values; /* value id, 0: none seen */
    uint8_t *acked;   /* acknowledged with acks=all */
    uint8_t *read;    /* found by the final read */
    int64_t cap;
    bool live; /* an acks=all produce succeeded after healing */
    bool done; /* the final read reached the high watermark */
};

struct bs_topic {
    char name[16];
    int32_t parts;
    bool created;     /* the creation was acknowledged */
    bool delete_sent; /* a deletion was asked for (it may apply unacknowledged) */
    bool deleted;     /* the deletion was acknowledged */
    /* The node (and its incarnation) that acknowledged the creation or the deletion, and when:
     * its Metadata answers to requests sent later show the change (a forwarded admin request
     * is answered once the forwarding node applied it). ack_node -1: none. */
    int32_t ack_node;
    uint32_t ack_start;
    uint64_t ack_ms;
    struct bs_part p[BS_PARTS_MAX];
};

/* What one client believes about one partition. */
struct bs_view {
    int32_t leader; /* -1: unknown */
    int32_t epoch;  /* the newest leader epoch adopted */
    int64_t hw_max; /* the highest high watermark seen */
    int64_t pos;    /* its consumer's next offset */
};

/* An idempotent producer's batches to one partition of topic 0 (one record each), in sequence
 * order, as librdkafka sends them: at most BS_IDEM_INFLIGHT in flight in a round, all to one
 * leader; an error or a leader moved ends the round, and the next resends every batch not
 * retired, from the oldest, without waiting for the ended round's answers (so a retry may reach
 * the leader while its original waits there to commit). Answers to an ended round still
 * acknowledge. */
struct bs_idem_part {
    uint64_t values[BS_IDEM_QUEUE]; /* a ring: sequence head_seq + i at (head + i) % QUEUE */
    int64_t offsets[BS_IDEM_QUEUE]; /* where it was acknowledged, -1: not yet */
    uint32_t head, queued;
    int32_t head_seq;
    uint32_t sent; /* of the queued, from the oldest: sent in this round */
    uint32_t round;
    int32_t node; /* this round's leader */
    /* Of the burst that started this round: the lowest sequence refused (a retriable error),
     * and the highest judged (acknowledged, or OUT_OF_ORDER_SEQUENCE_NUMBER). */
    int32_t burst_refused, burst_judged;
    int64_t last_offset; /* where the last retired batch was acknowledged, -1: none yet */
};

struct bs_idem {
    int64_t producer_id; /* -1: none yet */
    int16_t epoch;
    bool busy; /* InitProducerId in flight */
    struct bs_idem_part p[BS_PARTS_MAX];
};

/* Which idempotent batch a value is (the final read checks each producer's sequences). */
struct bs_idem_value {
    int8_t client; /* -1: not an idempotent producer's */
    int8_t part;
    int32_t seq;
};

struct bs_client {
    struct bs_view v[BS_TOPICS_MAX][BS_PARTS_MAX];
    uint32_t inflight;
    bool refresh; /* ask for metadata on the next turn */
    /* Its consumer group ("g<client>"), committing its positions in topic 0's partitions, one
     * group request at a time. */
    int32_t coordinator; /* -1: find it first */
    bool group_busy;
    int64_t committed[BS_PARTS_MAX];  /* the last commit acknowledged, or -1 */
    int64_t commit_max[BS_PARTS_MAX]; /* the highest commit sent, or -1 */
    struct bs_idem idem;              /* its idempotent producer, writing to topic 0 */
};

struct bsim;

struct bs_node {
    struct bsim *s;
    int32_t id;
    bool up;
    uint64_t restart_at;
    uint64_t next_disk_ms;
    uint32_t starts;
    uint64_t disk_faults; /* io_sim_faults() when this process started */
    struct io *io;
    struct sim_node_clock clk;
    struct broker_config cfg;
    struct sim_loop *loop;
    struct broker_sim sim;
    struct broker_env env;
    struct broker *b;
    /* The leader epoch this process answered last per partition (-1: none yet). */
    int32_t epoch_seen[BS_TOPICS_MAX][BS_PARTS_MAX];
};

/* A request in flight: freed by its answer. */
struct bs_req {
    struct bsim *s;
    struct bs_req *prev, *next; /* bsim.waiting */
    uint64_t sent_ms;
    int client; /* -1: the admin; BS_CLIENTS: the final reader */
    int32_t node;
    uint32_t start; /* the node's incarnation it went to */
    int16_t api;
    int topic;
    int part;
    int16_t acks;
    uint64_t value;
    int32_t epoch;     /* Fetch, ListOffsets: the leader epoch the client knew when it sent */
    int64_t offset;    /* OffsetCommit: the offset committed */
    int64_t committed; /* OffsetFetch: the last commit acknowledged when it was sent */
    int32_t seq;       /* an idempotent Produce: its batch's sequence (-1: not idempotent) */
    uint32_t round;    /* and the round it was sent in */
    bool burst;        /* sent in the burst that started the round */
};

struct bsim {
    const struct csim_options *o;
    struct csim_result *res;
    struct rng rng;
    struct clock_sim clock;
    uint64_t now;
    int nodes;
    bool failed;
    bool liveness; /* the failure is a missed liveness bound */
    struct sim_net *net;
    struct sim_net_options net_opts;
    struct bs_node n[BS_NODES_MAX];
    struct bs_client c[BS_CLIENTS + 1]; /* the clients, then the final reader */
    struct bs_topic t[BS_TOPICS_MAX];
    int32_t epoch_max[BS_TOPICS_MAX][BS_PARTS_MAX]; /* the newest leader epoch any answer named */
    int topic_count;
    bool admin_busy;
    uint32_t disk_ms_max, client_ms_max, fault_ms_min, fault_ms_max, power_losses;
    uint32_t min_insync; /* min.insync.replicas: 2, or (one seed in four) all 3 replicas */
    bool faults_on, clients_on, probing, reading;
    uint64_t next_fault_ms, next_client_ms, next_admin_ms;
    uint64_t values;
    struct bs_idem_value *idem_values; /* by value id, up to idem_cap */
    uint64_t idem_cap;
    struct bs_req waiting; /* list head: the requests in flight */
    int32_t next_correlation;
    struct buf frame, scratch;
    struct sim_trace trace;
};

/* ---- trace and failure --------------------------------------------------------------------- */

PRINTF_LIKE(2, 3) static void trace(struct bsim *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sim_trace_line(&s->trace, s->now, fmt, ap);
    va_end(ap);
}

PRINTF_LIKE(2, 3) static void fail(struct bsim *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (sim_trace_fail(&s->trace, s->now, &s->failed, s->res->why, sizeof(s->res->why), fmt, ap))
        s->liveness = strncmp(fmt, "liveness:", 9) == 0;
    va_end(ap);
}

/* ---- one history per partition ------------------------------------------------------------ */

static void part_grow(struct bs_part *p, int64_t off)
{
    if (off < p->cap)
        return;
    int64_t cap = p->cap == 0 ? 256 : p->cap;
    while (cap <= off)
        cap *= 2;
    p->values = xrealloc(p->values, (size_t)cap * sizeof(*p->values));
    p->acked = xrealloc(p->acked, (size_t)cap);
    p->read = xrealloc(p->read, (size_t)cap);
    memset(p->values + p->cap, 0, (size_t)(cap - p->cap) * sizeof(*p->values));
    memset(p->acked + p->cap, 0, (size_t)(cap - p->cap));
    memset(p->read + p->cap, 0, (size_t)(cap - p->cap));
    p->cap = cap;
}

/* A value id as the trace names it: a client's record, a control batch (the leader's mark of
 * its term), or bytes no client wrote. */
static const char *value_name(uint64_t value, char *buf, size_t size)
{
    if (value == BS_CONTROL)
        return "a control batch";
    if (value == BS_FOREIGN)
        return "a record no client wrote";
    snprintf(buf, size, "v%" PRIu64, value);
    return buf;
}

/* Offset off of topic ti partition k was seen holding value (acknowledged or read). */
static void seen(struct bsim *s, int ti, int k, int64_t off, uint64_t value, const char *how,
                 int32_t node)
{
    struct bs_part *p = &s->t[ti].p[k];
    part_grow(p, off);
    char a[32], b[32];
    if (p->values[off] != 0 && p->values[off] != value)
        fail(s, "%s-%d offset %" PRId64 " holds %s (%s from n%d) and %s", s->t[ti].name, k, off,
             value_name(value, a, sizeof(a)), how, node, value_name(p->values[off], b, sizeof(b)));
    p->values[off] = value;
}

/* ---- nodes --------------------------------------------------------------------------------- */

static int transport_open(void *ctx, const struct transport_handler *h, struct transport **out)
{
    struct bs_node *n = ctx;
    return sim_net_attach(n->s->net, n->id, h, out);
}

static void transport_close(void *ctx, struct transport *t)
{
    struct bs_node *n = ctx;
    (void)t;
    sim_net_detach(n->s->net, n->id);
}

static void config_set(struct broker_config_input *in, const char *key, const char *value)
{
    struct broker_config_error err;
    int rc = broker_config_input_set(in, BROKER_CONFIG_SOURCE_SET, key, value, 0, NULL, &err);
    ASSERT(rc == 0);
}

static void node_config(struct bsim *s, struct bs_node *n)
{
    struct broker_config_input in;
    struct broker_config_error err;
    char voters[256], id[16], port[16];
    size_t used = 0;

    /* Addresses only name the nodes: nothing listens (the transport is sim_net). */
    for (int i = 0; i < s->nodes; i++)
        used += (size_t)snprintf(voters + used, sizeof(voters) - used, "%s%d@127.0.0.1:%d",
                                 i > 0 ? "," : "", i, 9100 + i);
    snprintf(id, sizeof(id), "%d", n->id);
    snprintf(port, sizeof(port), "%d", 9100 + n->id);
    broker_config_input_init(&in, NULL);
    config_set(&in, "log.dirs", BS_DATA);
    config_set(&in, "node.id", id);
    config_set(&in, "controller.quorum.voters", voters);
    config_set(&in, "cluster.port", port);
    config_set(&in, "min.insync.replicas", s->min_insync == 3 ? "3" : "2");
    config_set(&in, "default.replication.factor", "3");
    config_set(&in, "broker.heartbeat.interval.ms", "100");
    config_set(&in, "broker.session.timeout.ms", "900");
    config_set(&in, "replica.lag.time.max.ms", "500");
    config_set(&in, "controlled.shutdown.timeout.ms", "1500");
    config_set(&in, "log.segment.bytes", "1048576");
    int rc = broker_config_resolve(&in, &n->cfg, &err);
    if (rc != 0)
        printf("broker_sim: the configuration does not resolve: %s\n", err.text), fflush(stdout);
    ASSERT(rc == 0);
    broker_config_input_deinit(&in);
}

/* Whether node i's disk returned an injected error since its process started. */
static bool disk_failed(struct bs_node *n)
{
    return io_sim_faults(n->io) != n->disk_faults;
}

static void node_start(struct bsim *s, struct bs_node *n)
{
    n->starts++;
    n->disk_faults = io_sim_faults(n->io);
    n->loop = sim_loop_create(&n->clk.clock);
    n->sim = (struct broker_sim){.loop = sim_loop_base(n->loop),
                                 .seed = rng_next(&s->rng),
                                 .transport_open = transport_open,
                                 .transport_close = transport_close,
                                 .ctx = n};
    n->env = (struct broker_env){
        .io = n->io, .clock = &n->clk.clock, .flush_manual = true, .sim = &n->sim};
    for (int t = 0; t < BS_TOPICS_MAX; t++)
        for (int k = 0; k < BS_PARTS_MAX; k++)
            n->epoch_seen[t][k] = -1;
    int rc = broker_open(&n->cfg, &n->env, &n->b);
    if (rc != 0) {
        /* An injected disk error may stop a start (the operator starts it again); nothing
         * else may. */
        if (!disk_failed(n))
            fail(s, "n%d does not start (start %u): %s", n->id, n->starts, err_str(rc));
        trace(s, "n%d does not start: %s", n->id, err_str(rc));
        sim_loop_destroy(n->loop);
        n->loop = NULL;
        n->b = NULL;
        n->up = false;
        n->restart_at = s->now + rng_range(&s->rng, 50, BS_RESTART_MS);
        return;
    }
    n->up = true;
    n->restart_at = BS_NEVER;
    n->next_disk_ms = s->now + rng_range(&s->rng, 1, s->disk_ms_max);
    trace(s, "n%d starts", n->id);
}

enum bs_stop { BS_KILL, BS_POWER, BS_CLEAN };

static void node_stop(struct bsim *s, struct bs_node *n, enum bs_stop how)
{
    ASSERT(n->up);
    n->up = false;
    if (how == BS_CLEAN)
        broker_close(n->b);
    else
        broker_abandon(n->b);
    n->b = NULL;
    sim_loop_destroy(n->loop);
    n->loop = NULL;
    /* A power loss keeps a prefix of the unsynced writes and part of the next one: its prefix,
     * or (torn) any of its sectors; with --reorder later writes too, out of order. */
    if (how == BS_POWER && rng_chance(&s->rng, 1, 2))
        io_sim_crash(n->io, &s->rng);
    else if (how == BS_POWER)
        io_sim_crash_torn(n->io, &s->rng, s->o->reorder);
    n->restart_at = s->now + rng_range(&s->rng, 50, BS_RESTART_MS);
    trace(s, "n%d %s", n->id,
          how == BS_CLEAN   ? "stops"
          : how == BS_POWER ? "loses power"
                            : "crashes");
}

static bool serving(const struct bs_node *n)
{
    return n->up && n->b->serving;
}

/* ---- requests ------------------------------------------------------------------------------ */

static void on_answer(void *ctx, const struct buf *response, int16_t error);

/* Sends the request body (struct kafka_<api>_request) to node, for client (-1: the admin). */
static void send_request(struct bsim *s, int32_t node, struct bs_req *rq, int16_t version,
                         const void *body)
{
    struct bs_node *n = &s->n[node];
    const struct proto_api *api = proto_api_get(rq->api);
    struct kafka_request_header h;

    ASSERT(serving(n));
    kafka_request_header_init(&h);
    h.request_api_key = rq->api;
    h.request_api_version = version;
    h.correlation_id = ++s->next_correlation;
    h.client_id = proto_str_make("csim");
    buf_reset(&s->frame);
    int hv = proto_request_header_version(rq->api, version);
    int rc = hv < 0 ? hv : kafka_request_header_encode(&h, (int16_t)hv, &s->frame);
    if (rc == 0)
        rc = proto_encode(api->request, body, version, &s->frame);
    ASSERT(rc == 0);
    rq->s = s;
    rq->node = node;
    rq->start = n->starts;
    if (rq->client >= 0)
        s->c[rq->client].inflight++;
    rq->sent_ms = s->now;
    rq->next = &s->waiting;
    rq->prev = s->waiting.prev;
    s->waiting.prev->next = rq;
    s->waiting.prev = rq;
    /* The frame is copied by the broker before anything answers. */
    struct buf copy;
    buf_init(&copy);
    buf_append(&copy, s->frame.data, s->frame.len);
    broker_client_frame(n->b, buf_slice(&copy), on_answer, rq);
    buf_deinit(&copy);
}

static struct bs_req *req_new(int client, int16_t api, int topic, int part)
{
    struct bs_req *rq = xcalloc(1, sizeof(*rq));
    rq->client = client;
    rq->api = api;
    rq->topic = topic;
    rq->part = part;
    rq->seq = -1;
    return rq;
}

static int topic_index(struct bsim *s, struct proto_str name)
{
    for (int i = 0; i < s->topic_count; i++)
        if (strlen(s->t[i].name) == name.len && memcmp(s->t[i].name, name.ptr, name.len) == 0)
            return i;
    return -1;
}

static bool topic_usable(const struct bs_topic *t)
{
    return t->created && !t->delete_sent;
}

static bool retriable(int16_t e)
{
    return e == KAFKA_NOT_LEADER_OR_FOLLOWER || e == KAFKA_FENCED_LEADER_EPOCH ||
           e == KAFKA_UNKNOWN_LEADER_EPOCH || e == KAFKA_UNKNOWN_TOPIC_OR_PARTITION ||
           e == KAFKA_LEADER_NOT_AVAILABLE || e == KAFKA_NOT_ENOUGH_REPLICAS ||
           e == KAFKA_NOT_ENOUGH_REPLICAS_AFTER_APPEND || e == KAFKA_REQUEST_TIMED_OUT ||
           e == KAFKA_KAFKA_STORAGE_ERROR || e == KAFKA_OFFSET_NOT_AVAILABLE;
}

/* ---- answers ------------------------------------------------------------------------------- */

static void on_metadata(struct bsim *s, struct bs_req *rq, const struct kafka_metadata_response *m)
{
    struct bs_node *n = &s->n[rq->node];
    bool same = n->up && n->starts == rq->start;
    struct bs_client *c = rq->client >= 0 ? &s->c[rq->client] : NULL;
    bool listed[BS_TOPICS_MAX] = {false};

    for (size_t i = 0; i < m->topics.count; i++) {
        int ti = topic_index(s, m->topics.items[i].name);
        if (ti >= 0 && m->topics.items[i].error_code == KAFKA_NONE)
            listed[ti] = true;
    }
    for (int ti = 0; ti < s->topic_count; ti++) {
        const struct bs_topic *t = &s->t[ti];
        if (t->ack_node != rq->node || t->ack_start != rq->start || rq->sent_ms < t->ack_ms)
            continue;
        if (t->deleted && listed[ti])
            fail(s, "n%d lists topic %s after acknowledging its deletion", rq->node, t->name);
        else if (!t->deleted && !t->delete_sent && !listed[ti])
            fail(s, "n%d does not list topic %s after acknowledging its creation", rq->node,
                 t->name);
    }

    for (size_t i = 0; i < m->topics.count; i++) {
        const struct kafka_metadata_response_metadata_response_topic *mt = &m->topics.items[i];
        int ti = topic_index(s, mt->name);
        if (ti < 0 || mt->error_code != KAFKA_NONE)
            continue;
        for (size_t j = 0; j < mt->partitions.count; j++) {
            const struct kafka_metadata_response_metadata_response_partition *mp =
                &mt->partitions.items[j];
            int k = mp->partition_index;
            if (k < 0 || k >= BS_PARTS_MAX)
                continue;
            if (mp->leader_epoch > s->epoch_max[ti][k]) {
                /* Counted as an election: a leadership clients saw change. */
                s->epoch_max[ti][k] = mp->leader_epoch;
                s->res->elections++;
            }
            if (same) {
                if (mp->leader_epoch < n->epoch_seen[ti][k])
                    fail(s, "n%d answered %s-%d's leader epoch %d after %d", n->id, s->t[ti].name,
                         k, mp->leader_epoch, n->epoch_seen[ti][k]);
                n->epoch_seen[ti][k] = mp->leader_epoch;
            }
            if (c == NULL)
                continue;
            struct bs_view *v = &c->v[ti][k];
            trace(s, "c%d %s-%d: n%d says leader n%d epoch %d, %zu in sync (error %d)", rq->client,
                  s->t[ti].name, k, rq->node, mp->leader_id, mp->leader_epoch, mp->isr_nodes.count,
                  mp->error_code);
            if (mp->leader_epoch >= v->epoch) {
                v->epoch = mp->leader_epoch;
                v->leader = mp->error_code == KAFKA_NONE ? mp->leader_id : -1;
            }
        }
    }
}

/* ---- the idempotent producers: no batch twice, none reordered, acknowledged where it is ---- */

/* Retires the acknowledged batches at the head of ip's queue, in sequence order: each must sit
 * after the one before. */
static void idem_retire(struct bsim *s, int ci, int k, struct bs_idem_part *ip)
{
    while (ip->queued > 0 && ip->offsets[ip->head] >= 0) {
        int64_t off = ip->offsets[ip->head];
        if (off <= ip->last_offset)
            fail(s, "c%d t0-%d: sequence %d acknowledged at offset %" PRId64 ", not after %" PRId64,
                 ci, k, ip->head_seq, off, ip->last_offset);
        ip->last_offset = off;
        ip->head = (ip->head + 1) % BS_IDEM_QUEUE;
        ip->queued--;
        ip->head_seq++;
        if (ip->sent > 0)
            ip->sent--;
    }
}

/* The answer to an idempotent Produce: e is its error, -1 when the connection closed. */
static void on_idem_produce(struct bsim *s, struct bs_req *rq, int16_t e, int64_t off)
{
    int ci = rq->client, k = rq->part;
    struct bs_idem_part *ip = &s->c[ci].idem.p[k];
    int32_t i = rq->seq - ip->head_seq; /* its place in the queue, < 0: retired */

    if (rq->burst && rq->round == ip->round) {
        /* One node read the burst in one go: a batch refused there (not leading, or not yet)
         * while a later one of it was judged is what librdkafka 2.0.2 cannot take (the later one
         * is out of order: fatal, or an epoch bump that writes other batches again). */
        if (e == KAFKA_NONE || e == KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER)
            ip->burst_judged = MAX(ip->burst_judged, rq->seq);
        else
            ip->burst_refused = MIN(ip->burst_refused, rq->seq);
        if (ip->burst_refused < ip->burst_judged)
            fail(s,
                 "c%d t0-%d: n%d refused sequence %d of a burst and judged its sequence %d "
                 "(error %d)",
                 ci, k, rq->node, ip->burst_refused, ip->burst_judged, e);
    }
    if (e == KAFKA_NONE) {
        if (i >= 0) {
            int64_t *at = &ip->offsets[(ip->head + (uint32_t)i) % BS_IDEM_QUEUE];
            if (*at >= 0 && *at != off)
                fail(s, "c%d t0-%d: sequence %d acknowledged at offset %" PRId64 " and at %" PRId64,
                     ci, k, rq->seq, *at, off);
            *at = off;
        }
        idem_retire(s, ci, k, ip);
        return;
    }
    if (rq->round != ip->round)
        return; /* that round ended already */
    if (e == KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER) {
        /* Legitimate only while an earlier batch is not acknowledged: it may not have been
         * written (librdkafka treats the other case as fatal). */
        bool earlier_open = false;
        for (int32_t j = 0; j < i; j++)
            earlier_open |= ip->offsets[(ip->head + (uint32_t)j) % BS_IDEM_QUEUE] < 0;
        if (!earlier_open)
            fail(s,
                 "c%d t0-%d: n%d answered OUT_OF_ORDER_SEQUENCE_NUMBER to sequence %d, every "
                 "earlier one acknowledged",
                 ci, k, rq->node, rq->seq);
    } else if (e >= 0 && e != KAFKA_NOT_ENOUGH_REPLICAS && !retriable(e)) {
        fail(s, "c%d t0-%d: idempotent produce of sequence %d to n%d answered error %d", ci, k,
             rq->seq, rq->node, e);
    }
    ip->round++;
    ip->sent = 0;
    s->c[ci].refresh = true;
}

static void on_init_producer_id(struct bsim *s, struct bs_req *rq,
                                const struct kafka_init_producer_id_response *m)
{
    struct bs_idem *d = &s->c[rq->client].idem;
    trace(s, "c%d n%d InitProducerId: error %d id %" PRId64 " epoch %d", rq->client, rq->node,
          m->error_code, m->producer_id, m->producer_epoch);
    if (m->error_code == KAFKA_NONE) {
        d->producer_id = m->producer_id;
        d->epoch = m->producer_epoch;
    } else if (m->error_code != KAFKA_COORDINATOR_LOAD_IN_PROGRESS && !retriable(m->error_code)) {
        fail(s, "c%d: InitProducerId to n%d answered error %d", rq->client, rq->node,
             m->error_code);
    }
}

static void on_produce(struct bsim *s, struct bs_req *rq, const struct kafka_produce_response *m)
{
    struct bs_client *c = &s->c[rq->client];
    int16_t e = KAFKA_UNKNOWN_SERVER_ERROR;
    int64_t off = -1;

    if (m->responses.count == 1 && m->responses.items[0].partition_responses.count == 1) {
        e = m->responses.items[0].partition_responses.items[0].error_code;
        off = m->responses.items[0].partition_responses.items[0].base_offset;
    }
    if (rq->seq >= 0)
        on_idem_produce(s, rq, e, off);
    trace(s, "c%d %s-%d n%d produce v%" PRIu64 " acks=%d seq %d: error %d offset %" PRId64,
          rq->client, s->t[rq->topic].name, rq->part, rq->node, rq->value, rq->acks, rq->seq, e,
          off);
    if (e == KAFKA_NONE && rq->acks == -1) {
        struct bs_part *p = &s->t[rq->topic].p[rq->part];
        seen(s, rq->topic, rq->part, off, rq->value, "acknowledged", rq->node);
        p->acked[off] = 1;
        s->res->acked++;
        if (s->probing)
            p->live = true;
    } else if (e == KAFKA_NONE) {
        s->res->acked_leader++;
    } else {
        if (e == KAFKA_NOT_ENOUGH_REPLICAS)
            s->res->refused++;
        else if (!retriable(e) && rq->seq < 0) /* on_idem_produce judged an idempotent one's */
            fail(s, "c%d %s-%d: produce to n%d answered error %d", rq->client, s->t[rq->topic].name,
                 rq->part, rq->node, e);
        c->refresh = true;
    }
}

static void on_fetch(struct bsim *s, struct bs_req *rq, const struct kafka_fetch_response *m)
{
    struct bs_client *c = &s->c[rq->client];
    struct bs_view *v = &c->v[rq->topic][rq->part];
    const struct kafka_fetch_response_partition_data *d = NULL;
    const char *name = s->t[rq->topic].name;

    if (m->responses.count == 1 && m->responses.items[0].partitions.count == 1)
        d = &m->responses.items[0].partitions.items[0];
    if (d == NULL || m->error_code != KAFKA_NONE) {
        c->refresh = true;
        return;
    }
    trace(s, "c%d %s-%d n%d fetch at %" PRId64 " epoch %d: error %d, high watermark %" PRId64,
          rq->client, name, rq->part, rq->node, v->pos, rq->epoch, d->error_code,
          d->high_watermark);
    if (d->error_code != KAFKA_NONE) {
        if (!retriable(d->error_code) && d->error_code != KAFKA_OFFSET_OUT_OF_RANGE)
            fail(s, "c%d %s-%d: fetch from n%d answered error %d", rq->client, name, rq->part,
                 rq->node, d->error_code);
        c->refresh = true;
        return;
    }
    /* An answer to a request sent for an older leader epoch than the client knows now is
     * discarded (KIP-320): a deposed leader that has not noticed yet may still answer it. Its
     * records still count in the one history. */
    bool current = rq->epoch >= v->epoch;
    if (current && d->high_watermark < v->hw_max)
        fail(s, "c%d %s-%d: high watermark %" PRId64 " from n%d after %" PRId64, rq->client, name,
             rq->part, d->high_watermark, rq->node, v->hw_max);
    if (current)
        v->hw_max = MAX(v->hw_max, d->high_watermark);
    struct batch_iter it;
    struct slice bytes;
    struct batch_header h;
    int rc;
    batch_iter_init(&it, d->records);
    while ((rc = batch_iter_next(&it, &bytes, &h)) == 1) {
        struct batch_rec_iter ri;
        struct batch_rec r;
        batch_rec_iter_init(&ri, slice_make(bytes.ptr + 61, bytes.len - 61));
        while (batch_rec_iter_next(&ri, &r) == 1) {
            int64_t off = h.base_offset + r.offset_delta;
            uint64_t value = BS_FOREIGN;
            if (batch_is_control(&h))
                value = BS_CONTROL;
            else if (r.value.len > 1 && r.value.ptr[0] == 'v')
                value = strtoull((const char *)r.value.ptr + 1, NULL, 10);
            if (off >= d->high_watermark)
                fail(s,
                     "c%d %s-%d: fetch from n%d returned offset %" PRId64
                     " at or past its high watermark %" PRId64,
                     rq->client, name, rq->part, rq->node, off, d->high_watermark);
            if (off < v->pos)
                continue;
            seen(s, rq->topic, rq->part, off, value, "fetched", rq->node);
            s->res->fetched++;
            if (rq->client == BS_CLIENTS)
                s->t[rq->topic].p[rq->part].read[off] = 1;
            v->pos = off + 1;
        }
    }
    if (rc < 0)
        fail(s, "c%d %s-%d: fetch from n%d returned records that do not parse: %s", rq->client,
             name, rq->part, rq->node, err_str(rc));
    if (rq->client == BS_CLIENTS && v->pos >= d->high_watermark && s->reading)
        s->t[rq->topic].p[rq->part].done = true;
}

/* ListOffsets for the latest offset (read_uncommitted: the high watermark) is part of the
 * client's view: it never goes back either. */
static void on_list_offsets(struct bsim *s, struct bs_req *rq,
                            const struct kafka_list_offsets_response *m)
{
    struct bs_client *c = &s->c[rq->client];
    struct bs_view *v = &c->v[rq->topic][rq->part];
    const struct kafka_list_offsets_response_list_offsets_partition_response *d = NULL;

    if (m->topics.count == 1 && m->topics.items[0].partitions.count == 1)
        d = &m->topics.items[0].partitions.items[0];
    if (d == NULL || d->error_code != KAFKA_NONE) {
        if (d != NULL && !retriable(d->error_code))
            fail(s, "c%d %s-%d: ListOffsets to n%d answered error %d", rq->client,
                 s->t[rq->topic].name, rq->part, rq->node, d->error_code);
        c->refresh = true;
        return;
    }
    trace(s, "c%d %s-%d n%d latest offset %" PRId64 " epoch %d", rq->client, s->t[rq->topic].name,
          rq->part, rq->node, d->offset, d->leader_epoch);
    if (rq->epoch < v->epoch)
        return; /* stale: see on_fetch */
    if (d->offset < v->hw_max)
        fail(s, "c%d %s-%d: latest offset %" PRId64 " from n%d after high watermark %" PRId64,
             rq->client, s->t[rq->topic].name, rq->part, d->offset, rq->node, v->hw_max);
    v->hw_max = MAX(v->hw_max, d->offset);
}

/* ---- consumer group offsets: an acknowledged commit is what OffsetFetch answers later ---- */

static bool coordinator_moved(int16_t e)
{
    return e == KAFKA_NOT_COORDINATOR || e == KAFKA_COORDINATOR_NOT_AVAILABLE ||
           e == KAFKA_COORDINATOR_LOAD_IN_PROGRESS || e == KAFKA_REQUEST_TIMED_OUT;
}

static void on_find_coordinator(struct bsim *s, struct bs_req *rq,
                                const struct kafka_find_coordinator_response *m)
{
    struct bs_client *c = &s->c[rq->client];
    trace(s, "c%d group coordinator from n%d: error %d, n%d", rq->client, rq->node, m->error_code,
          m->node_id);
    if (m->error_code == KAFKA_NONE && m->node_id >= 0 && m->node_id < s->nodes)
        c->coordinator = m->node_id;
    else if (!coordinator_moved(m->error_code))
        fail(s, "c%d: FindCoordinator to n%d answered error %d", rq->client, rq->node,
             m->error_code);
}

static void on_offset_commit(struct bsim *s, struct bs_req *rq,
                             const struct kafka_offset_commit_response *m)
{
    struct bs_client *c = &s->c[rq->client];
    int16_t e = KAFKA_UNKNOWN_SERVER_ERROR;
    if (m->topics.count == 1 && m->topics.items[0].partitions.count == 1)
        e = m->topics.items[0].partitions.items[0].error_code;
    trace(s, "c%d commits t0-%d at %" PRId64 " (n%d): error %d", rq->client, rq->part, rq->offset,
          rq->node, e);
    if (e == KAFKA_NONE) {
        c->committed[rq->part] = MAX(c->committed[rq->part], rq->offset);
    } else {
        if (!coordinator_moved(e) && e != KAFKA_UNKNOWN_TOPIC_OR_PARTITION)
            fail(s, "c%d: OffsetCommit to n%d answered error %d", rq->client, rq->node, e);
        c->coordinator = -1;
    }
}

static void on_offset_fetch(struct bsim *s, struct bs_req *rq,
                            const struct kafka_offset_fetch_response *m)
{
    struct bs_client *c = &s->c[rq->client];
    const struct kafka_offset_fetch_response_offset_fetch_response_partition *d = NULL;
    if (m->topics.count == 1 && m->topics.items[0].partitions.count == 1)
        d = &m->topics.items[0].partitions.items[0];
    int16_t e = m->error_code != KAFKA_NONE ? m->error_code
                : d == NULL                 ? KAFKA_UNKNOWN_SERVER_ERROR
                                            : d->error_code;
    trace(s, "c%d fetches its t0-%d offset (n%d): error %d, %" PRId64 " (acknowledged %" PRId64 ")",
          rq->client, rq->part, rq->node, e, d != NULL ? d->committed_offset : -1, rq->committed);
    if (e != KAFKA_NONE) {
        if (!coordinator_moved(e) && e != KAFKA_UNSTABLE_OFFSET_COMMIT)
            fail(s, "c%d: OffsetFetch to n%d answered error %d", rq->client, rq->node, e);
        c->coordinator = -1;
        return;
    }
    int64_t got = d->committed_offset;
    if (got < rq->committed || got > c->commit_max[rq->part])
        fail(s,
             "c%d: group g%d's offset of t0-%d is %" PRId64 " at n%d, but %" PRId64
             " was acknowledged (highest sent %" PRId64 ")",
             rq->client, rq->client, rq->part, got, rq->node, rq->committed,
             c->commit_max[rq->part]);
}

static void on_admin(struct bsim *s, struct bs_req *rq, const void *body)
{
    struct bs_topic *t = &s->t[rq->topic];
    s->admin_busy = false;
    if (rq->api == API_CREATE) {
        const struct kafka_create_topics_response *m = body;
        int16_t e = m->topics.count == 1 ? m->topics.items[0].error_code : -1;
        trace(s, "admin: create %s (n%d): error %d", t->name, rq->node, e);
        if (e == KAFKA_NONE || e == KAFKA_TOPIC_ALREADY_EXISTS)
            t->created = true;
        if (e == KAFKA_NONE && !t->delete_sent) {
            t->ack_node = rq->node;
            t->ack_start = rq->start;
            t->ack_ms = s->now;
        }
    } else {
        const struct kafka_delete_topics_response *m = body;
        int16_t e = m->responses.count == 1 ? m->responses.items[0].error_code : -1;
        trace(s, "admin: delete %s (n%d): error %d", t->name, rq->node, e);
        if (e == KAFKA_NONE || e == KAFKA_UNKNOWN_TOPIC_OR_PARTITION)
            t->deleted = true;
        t->ack_node = e == KAFKA_NONE ? rq->node : -1;
        t->ack_start = rq->start;
        t->ack_ms = s->now;
    }
}

static void on_answer(void *ctx, const struct buf *response, int16_t error)
{
    struct bs_req *rq = ctx;
    struct bsim *s = rq->s;
    struct arena a;
    (void)error;

    rq->prev->next = rq->next;
    rq->next->prev = rq->prev;
    if (rq->client >= 0)
        s->c[rq->client].inflight--;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, 64u << 20);
    const struct proto_api *api = proto_api_get(rq->api);
    void *body = NULL;
    int16_t version = rq->api == API_PRODUCE            ? V_PRODUCE
                      : rq->api == API_FETCH            ? V_FETCH
                      : rq->api == API_LIST_OFFSETS     ? V_LIST_OFFSETS
                      : rq->api == API_METADATA         ? V_METADATA
                      : rq->api == API_OFFSET_COMMIT    ? V_OFFSET_COMMIT
                      : rq->api == API_OFFSET_FETCH     ? V_OFFSET_FETCH
                      : rq->api == API_FIND_COORDINATOR ? V_FIND_COORDINATOR
                      : rq->api == API_INIT_PRODUCER_ID ? V_INIT_PRODUCER_ID
                      : rq->api == API_CREATE           ? V_CREATE
                                                        : V_DELETE;
    if (response != NULL && response->len > 0) {
        struct reader r;
        struct kafka_response_header h;
        rd_init(&r, response->data, response->len);
        int hv = proto_response_header_version(rq->api, version);
        int rc = kafka_response_header_decode(&a, &r, (int16_t)hv, &h);
        body = arena_zalloc(&a, api->response->body->bytes);
        if (rc == 0 && body != NULL)
            rc = proto_decode(api->response, &a, &r, version, body);
        if (rc != 0)
            fail(s, "n%d answered api %d with a frame that does not decode: %s", rq->node, rq->api,
                 err_str(rc));
        if (rc != 0)
            body = NULL;
    }
    if (rq->api == API_OFFSET_COMMIT || rq->api == API_OFFSET_FETCH ||
        rq->api == API_FIND_COORDINATOR)
        s->c[rq->client].group_busy = false;
    if (rq->api == API_INIT_PRODUCER_ID)
        s->c[rq->client].idem.busy = false;
    if (body == NULL) {
        /* The connection closed (the node went down, or a forward timed out). */
        if (rq->client >= 0) {
            s->c[rq->client].refresh = true;
            if (rq->api == API_OFFSET_COMMIT || rq->api == API_OFFSET_FETCH)
                s->c[rq->client].coordinator = -1;
            if (rq->api == API_PRODUCE && rq->seq >= 0)
                on_idem_produce(s, rq, -1, -1);
        }
        if (rq->client == -1)
            s->admin_busy = false;
    } else if (rq->api == API_METADATA) {
        on_metadata(s, rq, body);
    } else if (rq->api == API_PRODUCE) {
        on_produce(s, rq, body);
    } else if (rq->api == API_FETCH) {
        on_fetch(s, rq, body);
    } else if (rq->api == API_LIST_OFFSETS) {
        on_list_offsets(s, rq, body);
    } else if (rq->api == API_FIND_COORDINATOR) {
        on_find_coordinator(s, rq, body);
    } else if (rq->api == API_OFFSET_COMMIT) {
        on_offset_commit(s, rq, body);
    } else if (rq->api == API_OFFSET_FETCH) {
        on_offset_fetch(s, rq, body);
    } else if (rq->api == API_INIT_PRODUCER_ID) {
        on_init_producer_id(s, rq, body);
    } else {
        on_admin(s, rq, body);
    }
    arena_deinit(&a);
    free(rq);
}

/* ---- clients ------------------------------------------------------------------------------- */

static int32_t random_serving(struct bsim *s)
{
    int32_t up[BS_NODES_MAX];
    int count = 0;
    for (int i = 0; i < s->nodes; i++)
        if (serving(&s->n[i]))
            up[count++] = i;
    return count == 0 ? -1 : up[rng_below(&s->rng, (uint64_t)count)];
}

static void send_metadata(struct bsim *s, int client, int32_t node)
{
    struct kafka_metadata_request m;
    kafka_metadata_request_init(&m);
    m.topics.items = NULL; /* every topic */
    m.allow_auto_topic_creation = false;
    send_request(s, node, req_new(client, API_METADATA, -1, -1), V_METADATA, &m);
}

/* Sends rq (its value, topic and partition set) as a batch of one record built with opts. */
static void produce_batch(struct bsim *s, struct bs_req *rq, int32_t node, int16_t acks,
                          const struct batch_build_opts *opts)
{
    char value[BS_VALUE_MAX];
    int ti = rq->topic, k = rq->part;
    rq->acks = acks;
    int len = snprintf(value, sizeof(value), "v%" PRIu64 " ", rq->value);
    size_t pad = (size_t)rng_below(&s->rng, sizeof(value) - (size_t)len);
    memset(value + len, '.', pad);
    struct batch_record rec = {.value = slice_make(value, (size_t)len + pad),
                               .timestamp_ms = clock_wall_ms(&s->clock.clock)};
    buf_reset(&s->scratch);
    int rc = batch_build(&s->scratch, opts, &rec, 1);
    ASSERT(rc == 0);
    struct kafka_produce_request_partition_produce_data pd = {.index = k,
                                                              .records = buf_slice(&s->scratch)};
    struct kafka_produce_request_topic_produce_data td = {
        .name = proto_str_make(s->t[ti].name), .partition_data = {.items = &pd, .count = 1}};
    struct kafka_produce_request m;
    kafka_produce_request_init(&m);
    m.acks = acks;
    m.timeout_ms = 5000;
    m.topic_data.items = &td;
    m.topic_data.count = 1;
    s->res->proposed++;
    send_request(s, node, rq, V_PRODUCE, &m);
}

static void send_produce(struct bsim *s, int client, int ti, int k, int32_t node, int16_t acks)
{
    struct bs_req *rq = req_new(client, API_PRODUCE, ti, k);
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    rq->value = ++s->values;
    produce_batch(s, rq, node, acks, &opts);
}

static void send_fetch(struct bsim *s, int client, int ti, int k, int32_t node)
{
    struct bs_view *v = &s->c[client].v[ti][k];
    struct kafka_fetch_request_fetch_partition fp = {.partition = k,
                                                     .current_leader_epoch = v->epoch,
                                                     .fetch_offset = v->pos,
                                                     .last_fetched_epoch = -1,
                                                     .log_start_offset = -1,
                                                     .partition_max_bytes = 8192};
    struct kafka_fetch_request_fetch_topic ft = {.topic = proto_str_make(s->t[ti].name),
                                                 .partitions = {.items = &fp, .count = 1}};
    struct kafka_fetch_request m;
    kafka_fetch_request_init(&m);
    m.replica_id = -1;
    m.max_wait_ms = (int32_t)rng_below(&s->rng, 100);
    m.min_bytes = 1;
    m.max_bytes = 65536;
    m.isolation_level = 0;
    m.topics.items = &ft;
    m.topics.count = 1;
    struct bs_req *rq = req_new(client, API_FETCH, ti, k);
    rq->epoch = v->epoch;
    send_request(s, node, rq, V_FETCH, &m);
}

static void send_list_offsets(struct bsim *s, int client, int ti, int k, int32_t node)
{
    struct kafka_list_offsets_request_list_offsets_partition lp = {.partition_index = k,
                                                                   .current_leader_epoch =
                                                                       s->c[client].v[ti][k].epoch,
                                                                   .timestamp = -1, /* latest */
                                                                   .max_num_offsets = 1};
    struct kafka_list_offsets_request_list_offsets_topic lt = {
        .name = proto_str_make(s->t[ti].name), .partitions = {.items = &lp, .count = 1}};
    struct kafka_list_offsets_request m;
    kafka_list_offsets_request_init(&m);
    m.replica_id = -1;
    m.isolation_level = 0;
    m.topics.items = &lt;
    m.topics.count = 1;
    struct bs_req *rq = req_new(client, API_LIST_OFFSETS, ti, k);
    rq->epoch = lp.current_leader_epoch;
    send_request(s, node, rq, V_LIST_OFFSETS, &m);
}

static void group_turn(struct bsim *s, int ci)
{
    struct bs_client *c = &s->c[ci];
    char group[8];
    snprintf(group, sizeof(group), "g%d", ci);
    if (c->coordinator < 0 || !serving(&s->n[c->coordinator])) {
        int32_t node = random_serving(s);
        if (node < 0)
            return;
        struct kafka_find_coordinator_request m;
        kafka_find_coordinator_request_init(&m);
        m.key = proto_str_make(group);
        m.key_type = 0;
        c->group_busy = true;
        send_request(s, node, req_new(ci, API_FIND_COORDINATOR, 0, -1), V_FIND_COORDINATOR, &m);
        return;
    }
    int k = (int)rng_below(&s->rng, (uint64_t)s->t[0].parts);
    struct kafka_offset_commit_request_offset_commit_request_partition cp = {
        .partition_index = k,
        .committed_offset = c->v[0][k].pos,
        .committed_leader_epoch = -1,
        .commit_timestamp = -1,
        .committed_metadata = proto_str_make("")};
    struct kafka_offset_commit_request_offset_commit_request_topic ct = {
        .name = proto_str_make(s->t[0].name), .partitions = {.items = &cp, .count = 1}};
    int32_t part = k;
    struct kafka_offset_fetch_request_offset_fetch_request_topic ft = {
        .name = proto_str_make(s->t[0].name), .partition_indexes = {.items = &part, .count = 1}};
    struct bs_req *rq;
    c->group_busy = true;
    if (rng_chance(&s->rng, 1, 2)) {
        struct kafka_offset_commit_request m;
        kafka_offset_commit_request_init(&m);
        m.group_id = proto_str_make(group);
        m.generation_id_or_member_epoch = -1; /* a commit outside any generation */
        m.member_id = proto_str_make("");
        m.topics.items = &ct;
        m.topics.count = 1;
        rq = req_new(ci, API_OFFSET_COMMIT, 0, k);
        rq->offset = cp.committed_offset;
        c->commit_max[k] = MAX(c->commit_max[k], rq->offset);
        send_request(s, c->coordinator, rq, V_OFFSET_COMMIT, &m);
    } else {
        struct kafka_offset_fetch_request m;
        kafka_offset_fetch_request_init(&m);
        m.group_id = proto_str_make(group);
        m.topics.items = &ft;
        m.topics.count = 1;
        rq = req_new(ci, API_OFFSET_FETCH, 0, k);
        rq->committed = c->committed[k];
        send_request(s, c->coordinator, rq, V_OFFSET_FETCH, &m);
    }
}

/* The leader client ci believes in for ti-k when it serves; otherwise a metadata refresh is due. */
static int32_t leader_for(struct bsim *s, int ci, int ti, int k)
{
    int32_t l = s->c[ci].v[ti][k].leader;
    if (l < 0 || l >= s->nodes || !serving(&s->n[l])) {
        s->c[ci].refresh = true;
        return -1;
    }
    return l;
}

static int random_topic(struct bsim *s)
{
    int live[BS_TOPICS_MAX];
    int count = 0;
    for (int i = 0; i < s->topic_count; i++)
        if (topic_usable(&s->t[i]))
            live[count++] = i;
    return count == 0 ? -1 : live[rng_below(&s->rng, (uint64_t)count)];
}

/* Value id value is client ci's idempotent batch of sequence seq to topic 0 partition k. */
static void idem_value_note(struct bsim *s, uint64_t value, int ci, int k, int32_t seq)
{
    if (value >= s->idem_cap) {
        uint64_t cap = s->idem_cap == 0 ? 1024 : s->idem_cap;
        while (cap <= value)
            cap *= 2;
        s->idem_values = xrealloc(s->idem_values, cap * sizeof(*s->idem_values));
        for (uint64_t v = s->idem_cap; v < cap; v++)
            s->idem_values[v] = (struct bs_idem_value){.client = -1};
        s->idem_cap = cap;
    }
    s->idem_values[value] =
        (struct bs_idem_value){.client = (int8_t)ci, .part = (int8_t)k, .seq = seq};
}

/* Client ci's idempotent producer: an id first, then a new batch now and then for a partition of
 * topic 0, and the next batch of its round sent. */
static void idem_turn(struct bsim *s, int ci)
{
    struct bs_idem *d = &s->c[ci].idem;
    if (d->producer_id < 0) {
        int32_t node = random_serving(s);
        if (node < 0 || d->busy)
            return;
        struct kafka_init_producer_id_request m;
        kafka_init_producer_id_request_init(&m);
        m.transactional_id = (struct proto_str){.ptr = NULL, .len = 0}; /* idempotence only */
        m.transaction_timeout_ms = 60000;
        d->busy = true;
        send_request(s, node, req_new(ci, API_INIT_PRODUCER_ID, -1, -1), V_INIT_PRODUCER_ID, &m);
        return;
    }
    int k = (int)rng_below(&s->rng, (uint64_t)s->t[0].parts);
    struct bs_idem_part *ip = &d->p[k];
    if (ip->queued < BS_IDEM_QUEUE && rng_chance(&s->rng, 1, 2)) {
        uint32_t at = (ip->head + ip->queued) % BS_IDEM_QUEUE;
        ip->values[at] = ++s->values;
        ip->offsets[at] = -1;
        idem_value_note(s, ip->values[at], ci, k, ip->head_seq + (int32_t)ip->queued);
        ip->queued++;
    }
    if (ip->sent >= ip->queued || ip->sent >= BS_IDEM_INFLIGHT)
        return;
    int32_t l = leader_for(s, ci, 0, k);
    if (l < 0)
        return;
    if (ip->sent > 0 && l != ip->node) {
        ip->round++; /* the leader moved: a new round there */
        ip->sent = 0;
    }
    /* A round starts with a burst (librdkafka resends its queue so after a retry drained it):
     * requests one node reads in one go. */
    bool burst = ip->sent == 0;
    if (burst) {
        ip->node = l;
        ip->burst_refused = INT32_MAX;
        ip->burst_judged = -1;
    }
    uint32_t round = ip->round;
    do {
        struct bs_req *rq = req_new(ci, API_PRODUCE, 0, k);
        rq->value = ip->values[(ip->head + ip->sent) % BS_IDEM_QUEUE];
        rq->seq = ip->head_seq + (int32_t)ip->sent;
        rq->round = ip->round;
        rq->burst = burst;
        struct batch_build_opts opts = {
            .producer_id = d->producer_id, .producer_epoch = d->epoch, .base_sequence = rq->seq};
        ip->sent++;
        produce_batch(s, rq, l, -1, &opts);
    } while (burst && ip->round == round && ip->sent < ip->queued &&
             ip->sent < BS_IDEM_INFLIGHT); /* an answer at once may end the round */
}

static void client_turn(struct bsim *s, int ci)
{
    struct bs_client *c = &s->c[ci];
    if (c->inflight >= BS_INFLIGHT_MAX)
        return;
    if (c->refresh || rng_chance(&s->rng, 1, 20)) {
        int32_t node = random_serving(s);
        if (node >= 0) {
            c->refresh = false;
            send_metadata(s, ci, node);
        }
        return;
    }
    if (!c->group_busy && topic_usable(&s->t[0]) && rng_chance(&s->rng, 1, 8)) {
        group_turn(s, ci);
        return;
    }
    if (!s->o->no_idempotence && topic_usable(&s->t[0]) && rng_chance(&s->rng, 1, 4)) {
        idem_turn(s, ci);
        return;
    }
    int ti = random_topic(s);
    if (ti < 0)
        return;
    int k = (int)rng_below(&s->rng, (uint64_t)s->t[ti].parts);
    int32_t l = leader_for(s, ci, ti, k);
    if (l < 0)
        return;
    uint64_t r = rng_below(&s->rng, 20);
    if (r < 12)
        send_produce(s, ci, ti, k, l, rng_chance(&s->rng, 1, 5) ? 1 : -1);
    else if (r < 18)
        send_fetch(s, ci, ti, k, l);
    else
        send_list_offsets(s, ci, ti, k, l);
}

/* ---- the admin ----------------------------------------------------------------------------- */

static void send_create(struct bsim *s, int ti)
{
    /* Empty arrays, not null ones (not nullable in this version). */
    struct kafka_create_topics_request_creatable_topic ct = {
        .name = proto_str_make(s->t[ti].name),
        .num_partitions = s->t[ti].parts,
        .replication_factor = 3,
        .assignments = {.items = (void *)&ct, .count = 0},
        .configs = {.items = (void *)&ct, .count = 0}};
    struct kafka_create_topics_request m;
    kafka_create_topics_request_init(&m);
    m.topics.items = &ct;
    m.topics.count = 1;
    m.timeout_ms = 5000;
    int32_t node = random_serving(s);
    if (node < 0)
        return;
    s->admin_busy = true;
    send_request(s, node, req_new(-1, API_CREATE, ti, -1), V_CREATE, &m);
}

static void send_delete(struct bsim *s, int ti)
{
    struct proto_str name = proto_str_make(s->t[ti].name);
    struct kafka_delete_topics_request m;
    kafka_delete_topics_request_init(&m);
    m.topic_names.items = &name;
    m.topic_names.count = 1;
    m.timeout_ms = 5000;
    int32_t node = random_serving(s);
    if (node < 0)
        return;
    s->admin_busy = true;
    s->t[ti].delete_sent = true;
    send_request(s, node, req_new(-1, API_DELETE, ti, -1), V_DELETE, &m);
}

static void new_topic(struct bsim *s, int32_t parts)
{
    struct bs_topic *t = &s->t[s->topic_count];
    snprintf(t->name, sizeof(t->name), "t%d", s->topic_count);
    t->parts = parts;
    t->ack_node = -1;
    s->topic_count++;
    for (int i = 0; i <= BS_CLIENTS; i++)
        for (int k = 0; k < BS_PARTS_MAX; k++)
            s->c[i].v[s->topic_count - 1][k] = (struct bs_view){.leader = -1, .epoch = -1};
}

static void admin_turn(struct bsim *s)
{
    if (s->admin_busy)
        return;
    /* A creation not acknowledged yet is asked again (TOPIC_ALREADY_EXISTS then says done). */
    for (int i = 0; i < s->topic_count; i++) {
        if (!s->t[i].created && !s->t[i].delete_sent) {
            send_create(s, i);
            return;
        }
    }
    if (!s->faults_on)
        return;
    if (s->topic_count < BS_TOPICS_MAX && rng_chance(&s->rng, 1, 2)) {
        new_topic(s, (int32_t)rng_range(&s->rng, 1, BS_PARTS_MAX));
        send_create(s, s->topic_count - 1);
        return;
    }
    /* Topic 0 stays; another live one may go. */
    int ti = random_topic(s);
    if (ti > 0)
        send_delete(s, ti);
}

/* ---- faults -------------------------------------------------------------------------------- */

static int up_count(struct bsim *s)
{
    int n = 0;
    for (int i = 0; i < s->nodes; i++)
        n += s->n[i].up;
    return n;
}

static void net_faults(struct bsim *s, bool calm)
{
    struct sim_net_options o = s->net_opts;
    o.delay_ms_min = 1;
    o.delay_ms_max = calm ? 5 : (uint32_t)rng_range(&s->rng, 1, 40);
    o.drop_ppm = calm ? 0 : (uint32_t)rng_below(&s->rng, 50000);
    o.duplicate_ppm = calm ? 0 : (uint32_t)rng_below(&s->rng, 20000);
    o.reorder = !calm && rng_chance(&s->rng, 1, 2);
    int rc = sim_net_set_faults(s->net, &o);
    ASSERT(rc == 0);
}

/* Cuts nodes off: a minority alone, one link one way, the controller alone, or a partition's
 * leader (as client 0 believes) alone. */
static void cut(struct bsim *s, int i)
{
    int32_t side[BS_NODES_MAX];
    size_t count = 1;
    const char *what = "a minority";
    uint64_t kind = rng_below(&s->rng, 4);

    side[0] = i;
    sim_net_heal(s->net);
    s->res->partitions++;
    if (kind == 0) {
        int32_t to =
            (int32_t)((i + 1 + (int)rng_below(&s->rng, (uint64_t)s->nodes - 1)) % s->nodes);
        sim_net_block(s->net, i, to, true);
        trace(s, "cut n%d -> n%d (one way)", i, to);
        return;
    }
    if (kind == 1 && s->n[i].up && s->n[i].b->controller_id >= 0) {
        side[0] = s->n[i].b->controller_id;
        what = "the controller";
    } else if (kind == 2) {
        int ti = random_topic(s);
        int k = ti < 0 ? 0 : (int)rng_below(&s->rng, (uint64_t)s->t[ti].parts);
        if (ti >= 0 && s->c[0].v[ti][k].leader >= 0) {
            side[0] = s->c[0].v[ti][k].leader;
            what = "a leader";
        }
    } else if (kind == 3) {
        count = (size_t)rng_range(&s->rng, 1, (uint64_t)(s->nodes - 1) / 2);
        for (size_t j = 1; j < count; j++)
            side[j] = (int32_t)((i + (int)j) % s->nodes);
    }
    sim_net_partition(s->net, side, count);
    trace(s, "partition: %s cut off (n%d%s)", what, side[0], count > 1 ? " and more" : "");
}

static void fault_turn(struct bsim *s)
{
    int i = (int)rng_below(&s->rng, (uint64_t)s->nodes);
    struct bs_node *n = &s->n[i];
    uint64_t r = rng_below(&s->rng, 100);

    if (r < 12) {
        if (n->up) {
            s->res->crashes++;
            node_stop(s, n, BS_KILL);
        }
    } else if (r < 19) {
        if (n->up) {
            s->res->crashes++;
            node_stop(s, n, BS_POWER);
        }
    } else if (r < 21) {
        if (s->power_losses < 2 && up_count(s) > 0) {
            s->power_losses++;
            s->res->power_losses++;
            trace(s, "power loss of every node");
            for (int j = 0; j < s->nodes; j++)
                if (s->n[j].up)
                    node_stop(s, &s->n[j], BS_POWER);
        }
    } else if (r < 28) {
        if (n->up) {
            s->res->stops++;
            trace(s, "n%d asked to stop", n->id);
            broker_stop(n->b);
        }
    } else if (r < 36) {
        if (serving(n)) {
            s->res->stops++;
            s->res->handovers++;
            trace(s, "n%d controlled shutdown", n->id);
            if (!broker_controlled_shutdown(n->b))
                broker_stop(n->b);
        }
    } else if (r < 54) {
        cut(s, i);
    } else if (r < 62) {
        sim_net_heal(s->net);
        trace(s, "network heals");
    } else if (r < 72) {
        net_faults(s, false);
        trace(s, "network faults change");
    } else if (r < 78) {
        /* One write or sync of the next few fails: EIO, or ENOSPC for a write. */
        bool eio = rng_chance(&s->rng, 1, 2);
        uint64_t nth = rng_range(&s->rng, 1, 40);
        io_sim_fail_nth(n->io, eio ? IO_SIM_WRITE | IO_SIM_SYNC : IO_SIM_WRITE, nth,
                        eio ? -EIO : -ENOSPC);
        s->res->disk_errors++;
        trace(s, "n%d: operation %" PRIu64 " from now fails with %s", n->id, nth,
              eio ? "EIO" : "ENOSPC");
    } else {
        uint64_t fwd = rng_below(&s->rng, BS_CLOCK_JUMP_MS);
        int64_t wall = (int64_t)rng_below(&s->rng, 2 * BS_CLOCK_JUMP_MS) - BS_CLOCK_JUMP_MS;
        n->clk.mono_skew_ns += fwd * 1000000u;
        n->clk.wall_skew_ms += wall;
        s->res->clock_jumps++;
        trace(s, "n%d clock jumps: monotonic +%" PRIu64 " ms, wall %+" PRId64 " ms", n->id, fwd,
              wall);
    }
}

/* ---- the step ------------------------------------------------------------------------------ */

static void step(struct bsim *s)
{
    s->now++;
    clock_sim_advance_ms(&s->clock, 1);
    s->res->steps++;
    sim_net_advance(s->net, s->now);
    for (int i = 0; i < s->nodes; i++) {
        struct bs_node *n = &s->n[i];
        if (!n->up) {
            if (s->now >= n->restart_at)
                node_start(s, n);
            continue;
        }
        if (s->now >= n->next_disk_ms) {
            broker_flush_pending(n->b);
            n->next_disk_ms = s->now + rng_range(&s->rng, 1, s->disk_ms_max);
        }
        for (int k = 0; k < 4; k++) {
            int rc = broker_run_once(n->b, 0);
            ASSERT(rc == 0);
            if (!sim_loop_busy(n->loop))
                break;
        }
        if (sim_loop_base(n->loop)->stopping) {
            /* A broker exits on its own only after its disk failed. */
            if (n->b->exit_status != 0 && !disk_failed(n))
                fail(s, "n%d exits with status %d, its disk never failed", n->id,
                     n->b->exit_status);
            node_stop(s, n, BS_CLEAN);
        }
    }
    if (s->clients_on && s->now >= s->next_client_ms) {
        client_turn(s, (int)rng_below(&s->rng, BS_CLIENTS));
        s->next_client_ms = s->now + rng_range(&s->rng, 1, s->client_ms_max);
    }
    if (s->now >= s->next_admin_ms) {
        admin_turn(s);
        s->next_admin_ms = s->now + (s->faults_on ? rng_range(&s->rng, 300, 2000) : 100);
    }
    if (s->faults_on && s->now >= s->next_fault_ms) {
        fault_turn(s);
        s->next_fault_ms = s->now + rng_range(&s->rng, s->fault_ms_min, s->fault_ms_max);
    }
}

/* ---- the end ------------------------------------------------------------------------------- */

/* Every node serves, has applied the same metadata, and the images are equal. */
static bool images_settled(struct bsim *s)
{
    for (int i = 0; i < s->nodes; i++) {
        struct bs_node *n = &s->n[i];
        if (!serving(n) || broker_meta_node(n->b) == NULL)
            return false;
        if (i > 0 && (meta_node_applied(broker_meta_node(n->b)) !=
                          meta_node_applied(broker_meta_node(s->n[0].b)) ||
                      !meta_image_equal(&n->b->meta, &s->n[0].b->meta)))
            return false;
    }
    return true;
}

static bool all_live(struct bsim *s)
{
    for (int i = 0; i < s->topic_count; i++)
        for (int k = 0; topic_usable(&s->t[i]) && k < s->t[i].parts; k++)
            if (!s->t[i].p[k].live)
                return false;
    return true;
}

/* One probe per step at most: a partition not live yet gets a metadata refresh or an acks=all
 * produce from client 0. */
static void probe_turn(struct bsim *s)
{
    struct bs_client *c = &s->c[0];
    if (c->inflight >= BS_INFLIGHT_MAX)
        return;
    for (int i = 0; i < s->topic_count; i++) {
        for (int k = 0; topic_usable(&s->t[i]) && k < s->t[i].parts; k++) {
            if (s->t[i].p[k].live)
                continue;
            int32_t l = leader_for(s, 0, i, k);
            if (l < 0 || c->refresh) {
                int32_t node = random_serving(s);
                if (node >= 0) {
                    c->refresh = false;
                    send_metadata(s, 0, node);
                }
                return;
            }
            send_produce(s, 0, i, k, l, -1);
            return;
        }
    }
}

static bool all_read(struct bsim *s)
{
    for (int i = 0; i < s->topic_count; i++)
        for (int k = 0; topic_usable(&s->t[i]) && k < s->t[i].parts; k++)
            if (!s->t[i].p[k].done)
                return false;
    return true;
}

static void read_turn(struct bsim *s)
{
    struct bs_client *c = &s->c[BS_CLIENTS];
    if (c->inflight > 0)
        return;
    for (int i = 0; i < s->topic_count; i++) {
        for (int k = 0; topic_usable(&s->t[i]) && k < s->t[i].parts; k++) {
            if (s->t[i].p[k].done)
                continue;
            int32_t l = leader_for(s, BS_CLIENTS, i, k);
            if (l < 0 || c->refresh) {
                int32_t node = random_serving(s);
                if (node >= 0) {
                    c->refresh = false;
                    send_metadata(s, BS_CLIENTS, node);
                }
                return;
            }
            send_fetch(s, BS_CLIENTS, i, k, l);
            return;
        }
    }
}

/* Topic 0 partition k as read at the end: each idempotent producer's batches in sequence order
 * from 0, none twice, none missing before one that is there. */
static void idem_check(struct bsim *s, int k)
{
    const struct bs_part *p = &s->t[0].p[k];
    int32_t last[BS_CLIENTS];
    for (int ci = 0; ci < BS_CLIENTS; ci++)
        last[ci] = -1;
    for (int64_t off = 0; off < p->cap && !s->failed; off++) {
        uint64_t v = p->values[off];
        if (!p->read[off] || v >= s->idem_cap || s->idem_values[v].client < 0)
            continue;
        const struct bs_idem_value *iv = &s->idem_values[v];
        if (iv->part != k)
            fail(s, "t0-%d offset %" PRId64 " holds v%" PRIu64 ", produced to partition %d", k, off,
                 v, iv->part);
        else if (iv->seq != last[iv->client] + 1)
            fail(s,
                 "t0-%d offset %" PRId64 " holds c%d's sequence %d after its sequence %d "
                 "(duplicated, reordered or a gap)",
                 k, off, iv->client, iv->seq, last[iv->client]);
        last[iv->client] = iv->seq;
    }
}

static void final_check(struct bsim *s)
{
    for (int i = 0; i < s->topic_count && !s->failed; i++) {
        struct bs_topic *t = &s->t[i];
        for (int k = 0; topic_usable(t) && k < t->parts && !s->failed; k++) {
            struct bs_part *p = &t->p[k];
            for (int64_t off = 0; off < p->cap; off++) {
                if (p->acked[off] && !p->read[off]) {
                    fail(s,
                         "%s-%d: acknowledged v%" PRIu64 " at offset %" PRId64 " is not read back",
                         t->name, k, p->values[off], off);
                    break;
                }
            }
        }
    }
    for (int k = 0; k < s->t[0].parts && !s->failed; k++)
        idem_check(s, k);
}

/* The first client request in flight, or NULL. (An admin request may wait out the broker's
 * BROKER_FORWARD_TIMEOUT_MS when its forward to the controller was lost.) */
static struct bs_req *client_waiting(struct bsim *s)
{
    for (struct bs_req *rq = s->waiting.next; rq != &s->waiting; rq = rq->next)
        if (rq->client >= 0)
            return rq;
    return NULL;
}

static bool no_requests(struct bsim *s)
{
    return client_waiting(s) == NULL;
}

static bool topic0_created(struct bsim *s)
{
    return s->t[0].created;
}

static void run_until(struct bsim *s, uint64_t end, bool (*done)(struct bsim *),
                      void (*turn)(struct bsim *))
{
    while (s->now < end && !s->failed && (done == NULL || !done(s))) {
        step(s);
        if (turn != NULL)
            turn(s);
    }
}

int bsim_run(const struct csim_options *o, struct csim_result *res)
{
    struct bsim *s = xcalloc(1, sizeof(*s));

    memset(res, 0, sizeof(*res));
    s->o = o;
    s->trace.echo = o->trace;
    s->res = res;
    rng_seed(&s->rng, o->seed);
    s->nodes = o->nodes == 5 ? 5 : 3;
    clock_sim_init(&s->clock, 1700000000000);
    s->net_opts = (struct sim_net_options){.seed = rng_next(&s->rng),
                                           .delay_ms_min = 1,
                                           .delay_ms_max = (uint32_t)rng_range(&s->rng, 2, 20)};
    int rc = sim_net_create(&s->net_opts, &s->net);
    ASSERT(rc == 0);
    buf_init(&s->frame);
    buf_init(&s->scratch);
    s->waiting.next = s->waiting.prev = &s->waiting;
    for (int i = 0; i <= BS_CLIENTS; i++) {
        s->c[i].coordinator = -1;
        s->c[i].idem.producer_id = -1;
        for (int k = 0; k < BS_PARTS_MAX; k++) {
            s->c[i].committed[k] = s->c[i].commit_max[k] = -1;
            s->c[i].idem.p[k].last_offset = -1;
        }
    }
    s->disk_ms_max = (uint32_t)rng_range(&s->rng, 1, 30);
    s->client_ms_max = (uint32_t)rng_range(&s->rng, 1, 10);
    s->fault_ms_min = (uint32_t)rng_range(&s->rng, 100, 400);
    s->fault_ms_max = s->fault_ms_min + (uint32_t)rng_range(&s->rng, 100, 1500);
    s->min_insync = rng_chance(&s->rng, 1, 4) ? 3 : 2;
    for (int i = 0; i < s->nodes; i++) {
        struct bs_node *n = &s->n[i];
        n->s = s;
        n->id = i;
        n->io = io_sim_create();
        sim_node_clock_init(&n->clk, &s->clock.clock);
        node_config(s, n);
        /* A cluster's data directories name it (meta.properties), as an operator's formatting
         * does: sim_net has no hello to learn it from. */
        struct meta_properties props = {.node_id = i};
        snprintf(props.cluster_id, sizeof(props.cluster_id), "%s", BS_CLUSTER_ID);
        rc = io_mkdir(n->io, BS_DATA);
        if (rc == 0)
            rc = io_sync_dir(n->io, "/");
        if (rc == 0)
            rc = meta_properties_store(n->io, BS_DATA, &props);
        ASSERT(rc == 0);
    }
    for (int i = 0; i < s->nodes; i++)
        node_start(s, &s->n[i]);
    trace(s,
          "seed %" PRIu64 ": %d brokers, disk sync <= %u ms, a client op every <= %u ms, "
          "min.insync.replicas %u",
          o->seed, s->nodes, s->disk_ms_max, s->client_ms_max, s->min_insync);

    /* The first topic, before any fault; then faults, clients and the admin. */
    new_topic(s, BS_PARTS_MAX);
    run_until(s, s->now + BS_LIVENESS_MS, topic0_created, NULL);
    if (!s->t[0].created)
        fail(s, "liveness: the first topic is not created within %u ms", BS_LIVENESS_MS);
    s->clients_on = s->faults_on = true;
    s->next_fault_ms = s->now + rng_range(&s->rng, s->fault_ms_min, s->fault_ms_max);
    run_until(s, s->now + o->time_ms, NULL, NULL);

    /* Heal: a calm network, every node back, then the liveness bounds. */
    s->faults_on = s->clients_on = false;
    sim_net_heal(s->net);
    net_faults(s, true);
    for (int i = 0; i < s->nodes; i++) {
        struct bs_node *n = &s->n[i];
        /* A disk that failed is the operator's to fix: the process is restarted. */
        io_sim_fail_clear(n->io);
        if (n->up && disk_failed(n))
            node_stop(s, n, BS_KILL);
        if (!n->up && !s->failed)
            n->restart_at = s->now + 1;
    }
    trace(s, "heal");
    uint64_t heal = s->now;
    run_until(s, heal + BS_LIVENESS_MS, images_settled, NULL);
    if (!s->failed && !images_settled(s))
        fail(s, "liveness: %u ms after healing, not every node serves the same metadata",
             BS_LIVENESS_MS);
    s->probing = true;
    run_until(s, heal + BS_LIVENESS_MS, all_live, probe_turn);
    if (!s->failed && !all_live(s))
        fail(s, "liveness: %u ms after healing, some partition takes no acks=all produce",
             BS_LIVENESS_MS);
    s->probing = false;
    /* The probes' leaderships reported, the images agree again. */
    run_until(s, heal + BS_LIVENESS_MS, images_settled, NULL);
    if (!s->failed && !images_settled(s))
        fail(s, "liveness: %u ms after healing, the metadata images still differ", BS_LIVENESS_MS);

    /* The final read, once every produce is answered: every partition from offset 0 to its
     * high watermark. */
    uint64_t read_from = s->now;
    run_until(s, read_from + BS_READ_MS, no_requests, NULL);
    struct bs_req *late = client_waiting(s);
    if (!s->failed && late != NULL)
        fail(s,
             "liveness: a request is unanswered %u ms after the probes: api %d to n%d (client "
             "%d, %s-%d), sent at %" PRIu64,
             BS_READ_MS, late->api, late->node, late->client, s->t[late->topic].name, late->part,
             late->sent_ms);
    s->reading = true;
    run_until(s, read_from + BS_READ_MS, all_read, read_turn);
    if (!s->failed && !all_read(s))
        fail(s, "liveness: the final read does not finish within %u ms", BS_READ_MS);
    final_check(s);
    res->liveness = s->failed && s->liveness;
    trace(s, "end: %s", s->failed ? res->why : "every check held");

    for (int i = 0; i < s->nodes; i++)
        if (s->n[i].up)
            node_stop(s, &s->n[i], BS_KILL);
    /* Every request is answered, or its connection closed, once its broker is gone. */
    if (s->waiting.next != &s->waiting) {
        struct bs_req *rq = s->waiting.next;
        fail(s, "api %d to n%d (client %d), sent at %" PRIu64 ", never answered", rq->api, rq->node,
             rq->client, rq->sent_ms);
        res->liveness = false;
    }
    while (s->waiting.next != &s->waiting) {
        struct bs_req *rq = s->waiting.next;
        rq->prev->next = rq->next;
        rq->next->prev = rq->prev;
        free(rq);
    }
    for (int i = 0; i < s->nodes; i++)
        io_destroy(s->n[i].io);
    sim_net_destroy(s->net);
    for (int i = 0; i < s->topic_count; i++) {
        for (int k = 0; k < BS_PARTS_MAX; k++) {
            free(s->t[i].p[k].values);
            free(s->t[i].p[k].acked);
            free(s->t[i].p[k].read);
        }
    }
    free(s->idem_values);
    buf_deinit(&s->frame);
    buf_deinit(&s->scratch);
    res->failed = s->failed;
    if (s->failed && o->trace_on_fail && !o->trace) {
        printf("seed %" PRIu64 " failed: %s\nlast events:\n", o->seed, res->why);
        sim_trace_print(&s->trace);
    }
    free(s);
    return res->failed ? 1 : 0;
}
