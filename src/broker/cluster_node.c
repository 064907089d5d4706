/*
 * The broker's cluster wiring: the cluster transport on the cluster port, the Raft host ticked
 * by a loop timer, the metadata node (cluster/meta_node.h) over the metadata log, and the
 * forwarding of topic administration to the controller.
 *
 * Owns (struct broker_cluster): the transport, the host, the metadata log
 * (`<data dir>/__cluster_metadata-0`, a partition log like any other), the metadata node, the
 * requests forwarded to the controller and not answered yet, and the one task that flushes the
 * transport after a loop iteration's work.
 *
 * A standalone node is a cluster of one: the metadata group has this node as its only voter, it
 * leads at once, and its admin requests travel the same path (forwarded to itself).
 *
 * Forwarding: a node sends an admin request frame to the controller as a ClusterRpc of api key
 * ENVELOPE (Kafka's Envelope, KIP-590, carries forwarded requests the same way); the controller
 * runs it as one controller operation and answers with the metadata offset its change reached
 * (int64) followed by the response frame. The forwarding node answers its client only once its
 * own image has applied that offset, so what the client reads next from this node includes the
 * change. NOT_CONTROLLER from a node that lost leadership sends the request again to the new
 * controller; no answer within BROKER_FORWARD_TIMEOUT_MS closes the client's connection (which
 * clients retry, as after any broken connection).
 *
 * The same path carries a frame to one given node (broker_send_frame: the transaction
 * coordinator's WriteTxnMarkers to a partition's leader) as an ENVELOPE of version 1: that node
 * runs it as a client's request and answers with its response at once; the sender does not
 * wait for any metadata, and gives up (done with NULL) on the first failure, never sending a
 * frame twice.
 */
#include "base/alloc.h"
#include "base/assert.h"
#include "base/bytes.h"
#include "base/error.h"
#include "broker/broker_internal.h"
#include "broker/meta_properties.h"
#include "cluster/meta_node.h"
#include "cluster/raft_host.h"
#include "cluster/tcp_transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define API_ENVELOPE        58
#define ENVELOPE_CONTROLLER 0 /* run as a controller operation */
#define ENVELOPE_NODE       1 /* run on the node it is sent to */
#define API_CREATE_TOPICS   19
#define CODE_NOT_CONTROLLER 41
#define META_LOG_DIR        "__cluster_metadata-0"
#define META_SNAPSHOT_FILE  "metadata.snapshot"

struct forward {
    struct forward *next;
    struct broker_cluster *b_cluster;
    int64_t correlation;
    struct buf frame;
    broker_forward_fn done;
    void *ctx;
    uint64_t deadline_ms;
    uint64_t send_ms;    /* when to send (again) */
    int32_t node;        /* the node it goes to, -1: the controller (then retried) */
    int32_t sent_to;     /* the controller it went to, -1 when not sent */
    int64_t wait_offset; /* >= 0: answered, waiting for this node to apply it */
    struct buf response;
    /* Runs of it on this node (as the controller) not answered yet, and whether it has been
     * answered to its sender: an ended forward stays allocated until its last local run
     * answers, since that run's answer names it (the controller can move here while another
     * node runs it, and that node's answer may come first). */
    uint32_t local_runs;
    bool ended;
};

struct peer_note {
    int32_t peer;
    bool down;
    uint64_t reason_hash;
    bool probed; /* probe_lost: what transport_peer_lost said at probe_ms */
    bool probe_lost;
    uint64_t probe_ms;
};

struct broker_cluster {
    struct broker *b;
    struct peer_note notes[2 * RAFT_VOTERS_MAX];
    uint32_t note_count;
    struct raft_host *host;
    struct tcp_transport *tcp;
    struct transport *transport;
    struct log *log;
    struct meta_node *mn;
    struct loop_timer tick;
    uint64_t last_tick_ms; /* when on_tick last ran (0: not yet) */
    struct loop_task flush_task;
    bool flush_posted;
    char cluster_id[META_CLUSTER_ID_CHARS + 1]; /* "" while this node is still learning it */
    char dir[IO_PATH_BYTES_MAX];
    char snapshot_path[IO_PATH_BYTES_MAX];
    int32_t voters[RAFT_VOTERS_MAX];
    uint32_t voter_count;
    struct meta_uuid incarnation;
    struct forward *forwards;
    int64_t correlation;
};

/* What a controller answers a forwarded request with. */
struct remote {
    struct broker_cluster *c;
    int32_t from;
    int64_t correlation;
    int16_t version; /* ENVELOPE_CONTROLLER or ENVELOPE_NODE */
};

static uint64_t now_ms(const struct broker_cluster *c)
{
    return clock_mono_ms(c->b->clock);
}

struct meta_node *broker_meta_node(struct broker *b)
{
    return b->cluster != NULL ? b->cluster->mn : NULL;
}

struct raft_host *broker_raft_host(struct broker *b)
{
    return b->cluster != NULL ? b->cluster->host : NULL;
}

/* ---- flushing the transport --------------------------------------------------------------- */

static void on_flush_task(void *ctx)
{
    struct broker_cluster *c = ctx;
    c->flush_posted = false;
    /* Hard state first: messages that depend on it are held in the host until it is synced. */
    (void)raft_host_flush(c->host);
    transport_flush(c->transport);
}

/* Everything queued during this iteration leaves together, once its work is done. */
static void kick(struct broker_cluster *c)
{
    if (c->flush_posted || c->transport == NULL)
        return;
    c->flush_posted = true;
    loop_post(c->b->loop, &c->flush_task);
}

void broker_cluster_kick(struct broker *b)
{
    if (b->cluster != NULL)
        kick(b->cluster);
}

/* ---- forwarding --------------------------------------------------------------------------- */

static void forward_free(struct forward *f)
{
    buf_deinit(&f->frame);
    buf_deinit(&f->response);
    free(f);
}

static void forward_unlink(struct broker_cluster *c, struct forward *f)
{
    for (struct forward **p = &c->forwards; *p != NULL; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            return;
        }
    }
}

static void forward_end(struct broker_cluster *c, struct forward *f, const struct buf *response)
{
    ASSERT(!f->ended);
    forward_unlink(c, f);
    f->ended = true;
    f->done(f->ctx, response);
    if (f->local_runs == 0)
        forward_free(f);
}

static void forward_retry(struct broker_cluster *c, struct forward *f)
{
    f->sent_to = -1;
    f->send_ms = now_ms(c) + BROKER_FORWARD_RETRY_MS;
}

/* The local controller's answer (this node leads: it is applied already). */
static void on_local_answer(void *ctx, const struct buf *response, int16_t error)
{
    struct forward *f = ctx;
    ASSERT(f->local_runs > 0);
    f->local_runs--;
    if (f->ended) {
        /* Answered already (by another controller, or at its deadline or the node's close,
         * after which the cluster wiring may be gone): only the memory is left to free. */
        if (f->local_runs == 0)
            forward_free(f);
        return;
    }
    struct broker_cluster *c = f->b_cluster;
    if (error == CODE_NOT_CONTROLLER) {
        if (f->sent_to == c->b->cfg->node_id)
            forward_retry(c, f); /* else it went to the next controller already */
        return;
    }
    forward_end(c, f, response);
}

static void forward_send(struct broker_cluster *c, struct forward *f)
{
    if (f->node >= 0) {
        f->sent_to = f->node;
        f->send_ms = UINT64_MAX;
        struct wire_rpc r = {.from = c->b->cfg->node_id,
                             .to = f->node,
                             .kind = WIRE_RPC_REQUEST,
                             .correlation_id = f->correlation,
                             .api_key = API_ENVELOPE,
                             .api_version = ENVELOPE_NODE,
                             .payload = buf_slice(&f->frame)};
        int rc = transport_send_rpc(c->transport, &r);
        kick(c);
        if (rc != 0)
            forward_end(c, f, NULL);
        return;
    }
    int32_t ctl = c->mn != NULL ? meta_node_controller(c->mn) : -1;
    if (ctl < 0)
        return;
    f->sent_to = ctl;
    f->send_ms = UINT64_MAX; /* never sent twice to one controller: it may run twice */
    if (ctl == c->b->cfg->node_id) {
        if (!meta_node_is_controller(c->mn)) {
            forward_retry(c, f); /* leading, not caught up yet */
            return;
        }
        f->local_runs++;
        broker_run_frame(c->b, buf_slice(&f->frame), on_local_answer, f);
        return;
    }
    struct wire_rpc r = {.from = c->b->cfg->node_id,
                         .to = ctl,
                         .kind = WIRE_RPC_REQUEST,
                         .correlation_id = f->correlation,
                         .api_key = API_ENVELOPE,
                         .api_version = ENVELOPE_CONTROLLER,
                         .payload = buf_slice(&f->frame)};
    if (transport_send_rpc(c->transport, &r) != 0)
        forward_retry(c, f);
    kick(c);
}

static void forward_start(struct broker *b, int32_t node, struct slice frame,
                          broker_forward_fn done, void *ctx)
{
    struct broker_cluster *c = b->cluster;
    /* The copy is a client's size: bounded by what one controller RPC carries. */
    if (frame.len > CLUSTER_RPC_BYTES_MAX) {
        fprintf(stderr,
                "chronik: an admin request of %zu bytes is over the %u bytes a request forwarded "
                "to the controller may have; closing its connection\n",
                frame.len, (unsigned)CLUSTER_RPC_BYTES_MAX);
        done(ctx, NULL);
        return;
    }
    struct forward *f = xcalloc(1, sizeof(*f));
    buf_init(&f->frame);
    buf_init(&f->response);
    buf_append(&f->frame, frame.ptr, frame.len);
    f->done = done;
    f->ctx = ctx;
    f->b_cluster = c;
    f->correlation = ++c->correlation;
    f->deadline_ms =
        now_ms(c) + (node >= 0 ? BROKER_SEND_FRAME_TIMEOUT_MS : BROKER_FORWARD_TIMEOUT_MS);
    f->node = node;
    f->sent_to = -1;
    f->wait_offset = -1;
    f->next = c->forwards;
    c->forwards = f;
    forward_send(c, f);
}

void broker_forward(struct broker *b, struct slice frame, broker_forward_fn done, void *ctx)
{
    forward_start(b, -1, frame, done, ctx);
}

/* A frame run on this node for broker_send_frame: not among the forwards, since the request
 * may outlive the cluster wiring (a marker waiting for its replica answers when it closes). */
struct local_send {
    broker_forward_fn done;
    void *ctx;
};

static void on_local_sent(void *ctx, const struct buf *response, int16_t error)
{
    struct local_send *ls = ctx;
    (void)error;
    ls->done(ls->ctx, response);
    free(ls);
}

void broker_send_frame(struct broker *b, int32_t node, struct slice frame, broker_forward_fn done,
                       void *ctx)
{
    if (node == b->cfg->node_id) {
        struct local_send *ls = xcalloc(1, sizeof(*ls));
        ls->done = done;
        ls->ctx = ctx;
        broker_run_frame(b, frame, on_local_sent, ls);
        return;
    }
    if (b->cluster == NULL || node < 0 || broker_peer_down(b, node)) {
        done(ctx, NULL);
        return;
    }
    forward_start(b, node, frame, done, ctx);
}

/* Answers whose change this node has now applied. */
static void forwards_applied(struct broker_cluster *c)
{
    int64_t applied = meta_node_applied(c->mn);
    struct forward *f = c->forwards;
    while (f != NULL) {
        struct forward *next = f->next;
        if (f->wait_offset >= 0 && f->wait_offset <= applied)
            forward_end(c, f, &f->response);
        f = next;
    }
}

static void forwards_tick(struct broker_cluster *c)
{
    uint64_t now = now_ms(c);
    struct forward *f = c->forwards;
    while (f != NULL) {
        struct forward *next = f->next;
        if (now >= f->deadline_ms)
            forward_end(c, f, NULL);
        else if (f->wait_offset < 0 && now >= f->send_ms)
            forward_send(c, f);
        f = next;
    }
}

static void on_forward_answer(struct broker_cluster *c, const struct wire_rpc *r)
{
    struct forward *f = c->forwards;
    while (f != NULL && f->correlation != r->correlation_id)
        f = f->next;
    if (f == NULL || f->wait_offset >= 0)
        return; /* one we gave up on, or a duplicate */
    if (f->node >= 0) {
        /* A node's answer needs no metadata applied here. */
        if (r->error != 0 || r->payload.len < 8) {
            forward_end(c, f, NULL);
            return;
        }
        buf_append(&f->response, r->payload.ptr + 8, r->payload.len - 8);
        forward_end(c, f, &f->response);
        return;
    }
    if (r->error == CODE_NOT_CONTROLLER) {
        forward_retry(c, f);
        return;
    }
    if (r->error != 0 || r->payload.len < 8) {
        forward_end(c, f, NULL);
        return;
    }
    f->wait_offset = (int64_t)be64_load(r->payload.ptr);
    buf_append(&f->response, r->payload.ptr + 8, r->payload.len - 8);
    if (f->wait_offset < 0)
        f->wait_offset = 0;
    forwards_applied(c);
}

/* The controller's side: a forwarded request ran; its answer goes back with our offset. */
static void on_remote_answer(void *ctx, const struct buf *response, int16_t error)
{
    struct remote *rm = ctx;
    struct broker_cluster *c = rm->c;
    struct buf payload;
    buf_init(&payload);
    if (response != NULL) {
        buf_put_be64(&payload, (uint64_t)meta_node_applied(c->mn));
        buf_append(&payload, response->data, response->len);
    }
    struct wire_rpc r = {.from = c->b->cfg->node_id,
                         .to = rm->from,
                         .kind = WIRE_RPC_RESPONSE,
                         .correlation_id = rm->correlation,
                         .api_key = API_ENVELOPE,
                         .api_version = rm->version,
                         .error = response != NULL ? 0 : (error != 0 ? error : -1),
                         .payload = buf_slice(&payload)};
    (void)transport_send_rpc(c->transport, &r); /* lost: the forwarder times out */
    buf_deinit(&payload);
    free(rm);
    kick(c);
}

static void serve_forward(struct broker_cluster *c, const struct wire_rpc *r)
{
    struct remote *rm = xcalloc(1, sizeof(*rm));
    rm->c = c;
    rm->from = r->from;
    rm->correlation = r->correlation_id;
    rm->version = r->api_version;
    if (r->api_version == ENVELOPE_NODE) {
        broker_run_frame(c->b, r->payload, on_remote_answer, rm);
        return;
    }
    if (c->mn == NULL || !meta_node_is_controller(c->mn)) {
        on_remote_answer(rm, NULL, CODE_NOT_CONTROLLER);
        return;
    }
    broker_run_frame(c->b, r->payload, on_remote_answer, rm);
}

/* ---- admin requests on the controller ----------------------------------------------------- */

struct broker_admin {
    struct breq *rq; /* NULL once the request is gone */
    breq_handler_fn handler;
    broker_admin_finish_fn finish;
};

static void admin_build(void *ctx, struct meta_records *out)
{
    struct broker_admin *op = ctx;
    struct breq *rq = op->rq;
    struct broker *b = rq->b;
    b->staging = out;
    b->admin = op;
    b->staged_name_count = 0;
    op->handler(rq);
    b->staging = NULL;
    b->admin = NULL;
    if (op->finish == NULL)
        meta_records_reset(out); /* answered whole: nothing of it is proposed */
}

static void admin_done(void *ctx, int err, int64_t offset)
{
    struct broker_admin *op = ctx;
    (void)offset;
    if (op->rq != NULL && op->finish == NULL) {
        /* Failed before its build ran (leadership lost, or this node closing with operations
         * queued): nothing of it was proposed, so its sender may send it to the next
         * controller at once. It was left unanswered (its memory too, and the forwarding node
         * waited out BROKER_FORWARD_TIMEOUT_MS): cluster_sim --brokers under ASan. */
        struct breq *rq = op->rq;
        rq->admin = NULL;
        free(op);
        breq_refuse(rq, KAFKA_NOT_CONTROLLER);
        return;
    }
    if (op->rq != NULL && op->finish != NULL) {
        struct breq *rq = op->rq;
        int16_t code = err == 0           ? KAFKA_NONE
                       : err == ERR_STATE ? KAFKA_NOT_CONTROLLER
                                          : KAFKA_KAFKA_STORAGE_ERROR;
        op->finish(rq, code);
    }
    if (op->rq != NULL)
        op->rq->admin = NULL;
    free(op);
}

void broker_admin_run(struct breq *rq, breq_handler_fn fn)
{
    struct meta_node *mn = broker_meta_node(rq->b);
    struct broker_admin *op = xcalloc(1, sizeof(*op));
    op->rq = rq;
    op->handler = fn;
    rq->admin = op;
    if (mn == NULL || meta_node_submit(mn, admin_build, admin_done, op) != 0) {
        rq->admin = NULL;
        free(op);
        breq_refuse(rq, CODE_NOT_CONTROLLER);
    }
}

void broker_admin_commit(struct breq *rq, broker_admin_finish_fn finish)
{
    ASSERT(rq->admin != NULL && rq->b->admin == rq->admin);
    rq->admin->finish = finish;
}

void broker_admin_forget(struct breq *rq)
{
    rq->admin->rq = NULL;
    rq->admin = NULL;
}

/* ---- the transport's and the metadata node's callbacks ------------------------------------ */

static void on_raft(void *ctx, const struct wire_raft *frame)
{
    struct broker_cluster *c = ctx;
    raft_host_receive(c->host, frame);
    kick(c);
}

static void on_rpc(void *ctx, const struct wire_rpc *r)
{
    struct broker_cluster *c = ctx;
    if (c->mn != NULL && meta_node_on_rpc(c->mn, r)) {
        kick(c);
        return;
    }
    if (r->api_key == API_ENVELOPE && r->kind == WIRE_RPC_REQUEST)
        serve_forward(c, r);
    else if (r->api_key == API_ENVELOPE)
        on_forward_answer(c, r);
    kick(c);
}

/* The last reason a peer's link went down, so each is logged once, not at every redial. */
static struct peer_note *peer_note(struct broker_cluster *c, int32_t peer)
{
    for (uint32_t i = 0; i < c->note_count; i++)
        if (c->notes[i].peer == peer)
            return &c->notes[i];
    if (c->note_count == ARRAY_LEN(c->notes))
        return NULL;
    c->notes[c->note_count] = (struct peer_note){.peer = peer};
    return &c->notes[c->note_count++];
}

static void on_peer_up(void *ctx, int32_t peer)
{
    struct broker_cluster *c = ctx;
    struct peer_note *n = peer_note(c, peer);
    if (n != NULL && n->down) {
        fprintf(stderr, "chronik: node %d reaches node %d again\n", (int)c->b->cfg->node_id,
                (int)peer);
        n->down = false;
        n->reason_hash = 0;
    }
}

bool broker_peer_down(struct broker *b, int32_t peer)
{
    struct broker_cluster *c = b->cluster;
    if (c == NULL || peer < 0 || peer == b->cfg->node_id)
        return false;
    for (uint32_t i = 0; i < c->note_count; i++)
        if (c->notes[i].peer == peer && c->notes[i].down)
            return true;
    /* A leader killed an instant ago: its connection is closed, but the loop may serve a
     * client before it reads that end (a Metadata naming the dead leader sends librdkafka to
     * its one-second rescan). Looked at once per millisecond and peer. */
    struct peer_note *n = peer_note(c, peer);
    uint64_t now = clock_mono_ms(b->clock);
    if (n != NULL && n->probe_ms == now && n->probed)
        return n->probe_lost;
    bool lost = c->transport != NULL && transport_peer_lost(c->transport, peer);
    if (n != NULL) {
        n->probed = true;
        n->probe_ms = now;
        n->probe_lost = lost;
    }
    return lost;
}

static void on_peer_down(void *ctx, int32_t peer, int err, const char *reason)
{
    struct broker_cluster *c = ctx;
    /* Silence is not passed to the host: its quiesced groups wake when it has not heard from
     * the node for an election timeout, and a leader woken earlier (its follower heard just now)
     * would quiesce again with that follower counted in sync. A connection reset, closed or
     * refused is more than silence: the node's process most likely died (its sockets closed with
     * it), so the groups it led elect now instead of an election timeout later (fail-over time). */
    if (err == ERR_CLOSED || err == -ECONNRESET || err == -ECONNREFUSED || err == -EPIPE)
        raft_host_peer_gone(c->host, peer);
    if (reason == NULL)
        return;
    uint64_t h = 1469598103934665603ull;
    for (const char *p = reason; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    struct peer_note *n = peer_note(c, peer);
    if (n != NULL && n->down && n->reason_hash == h)
        return;
    if (n != NULL) {
        n->down = true;
        n->reason_hash = h;
    }
    fprintf(stderr, "chronik: node %d cannot reach node %d: %s\n", (int)c->b->cfg->node_id,
            (int)peer, reason);
}

static void check_serving(struct broker_cluster *c)
{
    struct broker *b = c->b;
    /* As a Kafka broker: once caught up with the metadata and unfenced, so topics created
     * from the first request on can be placed here. */
    if (b->serving || c->mn == NULL || !meta_node_caught_up(c->mn) || !meta_node_unfenced(c->mn))
        return;
    int rc = broker_start_serving(b);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot start serving: %s\n", err_str(rc));
        b->exit_status = 1;
        broker_stop(b);
    }
}

static void on_applied(void *ctx, int64_t last)
{
    struct broker_cluster *c = ctx;
    (void)last;
    if (c->b->serving)
        broker_reconcile(c->b);
    else
        check_serving(c);
    forwards_applied(c);
}

static void on_producer_ids(void *ctx, int64_t first, int32_t count)
{
    struct broker_cluster *c = ctx;
    broker_producer_ids_granted(c->b, first, count);
}

static void on_controller(void *ctx, int32_t id)
{
    struct broker_cluster *c = ctx;
    c->b->controller_id = id;
    /* Requests sent to the old controller go to the new one now. */
    for (struct forward *f = c->forwards; f != NULL; f = f->next)
        if (f->wait_offset < 0 && f->sent_to != id)
            f->send_ms = 0;
}

/* A new node that is not the first voter learns the cluster id from the first voter's hello
 * (tcp_transport's learn_only_from), so it must dial it: an RPC nobody awaits (an Envelope
 * answer to no request) does that and is dropped there. */
static void probe_first_voter(struct broker_cluster *c)
{
    struct wire_rpc r = {.from = c->b->cfg->node_id,
                         .to = c->b->cfg->voters.voters[0].id,
                         .kind = WIRE_RPC_RESPONSE,
                         .correlation_id = 0,
                         .api_key = API_ENVELOPE,
                         .error = CODE_NOT_CONTROLLER};
    (void)transport_send_rpc(c->transport, &r);
}

bool broker_ticks_current(struct broker *b)
{
    struct broker_cluster *c = b->cluster;
    uint64_t late_ms = (uint64_t)b->cfg->controller_quorum_election_timeout_ms / 2;
    return c == NULL || c->last_tick_ms == 0 || now_ms(c) - c->last_tick_ms < late_ms;
}

static void on_tick(void *ctx)
{
    struct broker_cluster *c = ctx;
    /* Raft counts time in ticks. A process that stalled (SIGSTOP, swapping, a long page fault)
     * gets the ticks it missed now, up to two election timeouts' worth, so check-quorum sees
     * real time: a leader stalled past an election timeout, whose followers may have elected
     * another meanwhile, steps down instead of serving as if no time had passed. */
    uint64_t now = now_ms(c);
    uint64_t ticks = 1;
    if (c->last_tick_ms != 0 && now >= c->last_tick_ms + 2 * BROKER_RAFT_TICK_MS) {
        uint64_t election =
            (uint64_t)c->b->cfg->controller_quorum_election_timeout_ms / BROKER_RAFT_TICK_MS;
        ticks = MIN((now - c->last_tick_ms) / BROKER_RAFT_TICK_MS, 2 * election + 2);
    }
    c->last_tick_ms = now;
    if (c->mn == NULL)
        probe_first_voter(c);
    for (uint64_t i = 0; i < ticks; i++)
        raft_host_tick(c->host);
    broker_replicas_tick(c->b);
    if (c->mn != NULL) {
        meta_node_tick(c->mn);
        check_serving(c);
        broker_producer_ids_tick(c->b);
    }
    forwards_tick(c);
    kick(c);
}

/* ---- open and close ----------------------------------------------------------------------- */

static int path_in(const struct broker *b, const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%s", b->cfg->log_dir, name);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* A data directory of a version that kept its metadata in metadata.image/metadata.journal:
 * that image becomes the first snapshot, then the old files go. */
static int migrate_store(struct broker_cluster *c, bool *migrated)
{
    struct broker *b = c->b;
    char old[IO_PATH_BYTES_MAX];
    bool is_dir = false;
    *migrated = false;
    int rc = path_in(b, "metadata.image", old, sizeof(old));
    if (rc == 0)
        rc = io_exists(b->io, old, &is_dir);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    struct meta_store store;
    struct meta_image img;
    bool created = false;
    meta_image_init(&img);
    rc = meta_store_open(&store, b->io, b->cfg->log_dir, &img, &created);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot load the metadata of %s: %s\n", b->cfg->log_dir,
                err_str(rc));
        meta_image_deinit(&img);
        return rc;
    }
    char journal[IO_PATH_BYTES_MAX];
    snprintf(journal, sizeof(journal), "%s", store.journal_path);
    meta_store_close(&store);
    rc = meta_node_save(b->io, b->cfg->log_dir, c->snapshot_path, &img, -1);
    if (rc == 0) {
        rc = io_remove(b->io, journal);
        if (rc == -ENOENT)
            rc = 0;
        if (rc == 0)
            rc = io_remove(b->io, old);
        if (rc == 0)
            rc = io_sync_dir(b->io, b->cfg->log_dir);
    }
    meta_image_deinit(&img);
    if (rc < 0)
        fprintf(stderr, "chronik: cannot move the metadata of %s to its Raft log: %s\n",
                b->cfg->log_dir, err_str(rc));
    else
        *migrated = true;
    return rc;
}

static int open_meta_node(struct broker_cluster *c, int64_t applied)
{
    struct broker *b = c->b;
    const struct broker_config *cfg = b->cfg;
    struct meta_node_config mc = {
        .self = cfg->node_id,
        .voters = c->voters,
        .voter_count = c->voter_count,
        .election_ticks =
            (uint32_t)(cfg->controller_quorum_election_timeout_ms / BROKER_RAFT_TICK_MS),
        .heartbeat_ticks = 1,
        .seed = rng_next(&b->rng),
        .broker_heartbeat_ms = (uint64_t)cfg->broker_heartbeat_interval_ms,
        .broker_session_ms = (uint64_t)cfg->broker_session_timeout_ms,
        .cluster_id = c->cluster_id,
        .endpoint = {.name = "PLAINTEXT",
                     .host = (char *)cfg->advertised.host,
                     .port = cfg->advertised.port,
                     .security_protocol = 0},
        .rack = cfg->rack[0] != '\0' ? cfg->rack : NULL,
        .incarnation_id = c->incarnation,
    };
    struct meta_node_env env = {.io = b->io,
                                .clock = b->clock,
                                .host = c->host,
                                .transport = c->transport,
                                .log = c->log,
                                .snapshot_dir = cfg->log_dir,
                                .snapshot_path = c->snapshot_path};
    struct meta_node_handler h = {.applied = on_applied,
                                  .controller = on_controller,
                                  .producer_ids = on_producer_ids,
                                  .ctx = c};
    int rc = meta_node_open(&mc, &env, &b->meta, applied, &h, &c->mn);
    if (rc < 0)
        fprintf(stderr, "chronik: cannot open the metadata group in %s: %s\n", c->dir, err_str(rc));
    return rc;
}

/* Records the cluster id: meta.properties when it has none (upgraded: say so), and a first
 * snapshot when there is none, so the id outlives a lost meta.properties. */
static int adopt_cluster_id(struct broker_cluster *c, bool write_props, bool upgraded)
{
    struct broker *b = c->b;
    const struct broker_config *cfg = b->cfg;
    int rc = 0;
    bool is_dir = false;
    if (io_exists(b->io, c->snapshot_path, &is_dir) == -ENOENT) {
        rc = meta_node_save(b->io, cfg->log_dir, c->snapshot_path, &b->meta, -1);
        if (rc < 0) {
            fprintf(stderr, "chronik: cannot write %s: %s\n", c->snapshot_path, err_str(rc));
            return rc;
        }
    }
    if (!write_props)
        return 0;
    struct meta_properties own = {.node_id = cfg->node_id};
    snprintf(own.cluster_id, sizeof(own.cluster_id), "%s", c->cluster_id);
    rc = meta_properties_store(b->io, cfg->log_dir, &own);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot write %s/" META_PROPERTIES_NAME ": %s\n", cfg->log_dir,
                err_str(rc));
        return rc;
    }
    if (upgraded)
        fprintf(stderr,
                "chronik: wrote %s/" META_PROPERTIES_NAME " (cluster.id %s, node.id %d) for a "
                "data directory from a version without it\n",
                cfg->log_dir, own.cluster_id, (int)own.node_id);
    return 0;
}

/* Learned from a peer's hello: this new node joins that cluster. */
static void on_cluster_id(void *ctx, const char *id)
{
    struct broker_cluster *c = ctx;
    struct broker *b = c->b;
    if (c->mn != NULL)
        return;
    if (strlen(id) != META_CLUSTER_ID_CHARS) {
        fprintf(stderr, "chronik: the peers' cluster id '%s' is not a cluster id\n", id);
        b->exit_status = 1;
        broker_stop(b);
        return;
    }
    snprintf(c->cluster_id, sizeof(c->cluster_id), "%s", id);
    meta_image_set_cluster_id_text(&b->meta, id);
    int rc = adopt_cluster_id(c, true, false);
    if (rc == 0)
        rc = open_meta_node(c, -1);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot join cluster %s: %s\n", id, err_str(rc));
        b->exit_status = 1;
        broker_stop(b);
        return;
    }
    fprintf(stderr, "chronik: node %d joined cluster %s\n", (int)b->cfg->node_id, id);
}

/* A node not in the voter list (an observer) may connect: it is added as a peer at the address
 * its hello advertises, so answers can reach it. Its cluster id is checked by the hello. */
static bool admit_observer(void *ctx, int32_t node, const char *host, uint16_t port)
{
    struct broker_cluster *c = ctx;
    return transport_peer_set(c->transport, node, host, port) == 0;
}

static int open_transport(struct broker_cluster *c)
{
    struct broker *b = c->b;
    const struct broker_config *cfg = b->cfg;
    struct transport_handler th = {.on_raft = on_raft,
                                   .on_rpc = on_rpc,
                                   .on_peer_up = on_peer_up,
                                   .on_peer_down = on_peer_down,
                                   .on_cluster_id = on_cluster_id,
                                   .ctx = c};
    struct tcp_transport_config tc = {
        .self = cfg->node_id,
        .cluster_id = c->cluster_id[0] != '\0' ? c->cluster_id : NULL,
        .listen_host = cfg->listener.host[0] != '\0' ? cfg->listener.host : NULL,
        .listen_port = cfg->cluster_port,
        .advertised_host = cfg->advertised.host,
        .advertised_port = cfg->cluster_port,
        .admit = admit_observer,
        .admit_ctx = c,
        .learn_only_from_set = true,
        .learn_only_from = cfg->voters.voters[0].id,
        .voter_count = cfg->voters.count,
    };
    int32_t voter_ids[BROKER_VOTERS_MAX];
    for (uint32_t i = 0; i < cfg->voters.count; i++)
        voter_ids[i] = cfg->voters.voters[i].id;
    tc.voter_ids = voter_ids;
    if (b->sim != NULL) {
        /* The simulator's network: no hello, so every node's data directory names its cluster
         * already (meta.properties). */
        int rc = b->sim->transport_open(b->sim->ctx, &th, &c->transport);
        for (uint32_t i = 0; rc == 0 && i < cfg->voters.count; i++) {
            const struct broker_voter *v = &cfg->voters.voters[i];
            if (v->id != cfg->node_id)
                rc = transport_peer_set(c->transport, v->id, v->addr.host, v->addr.port);
        }
        return rc;
    }
    /* The port held since start-up is handed over: closed here, bound again at once. */
    if (b->cluster_listen_fd >= 0) {
        close(b->cluster_listen_fd);
        b->cluster_listen_fd = -1;
    }
    int rc = tcp_transport_create(b->loop, &tc, &th, &c->tcp);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot listen on port %u for the cluster (from %s): %s\n",
                cfg->cluster_port, cfg->cluster_port_setting, err_str(rc));
        return rc;
    }
    c->transport = tcp_transport_base(c->tcp);
    for (uint32_t i = 0; i < cfg->voters.count; i++) {
        const struct broker_voter *v = &cfg->voters.voters[i];
        if (v->id == cfg->node_id)
            continue;
        rc = transport_peer_set(c->transport, v->id, v->addr.host, v->addr.port);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int broker_cluster_open(struct broker *b, const struct meta_properties *found_props)
{
    const struct broker_config *cfg = b->cfg;
    struct broker_cluster *c = xcalloc(1, sizeof(*c));
    c->b = b;
    b->cluster = c;
    loop_task_init(&c->flush_task, on_flush_task, c);
    loop_timer_init(&c->tick, on_tick, c);
    for (int i = 0; i < 2; i++) {
        uint64_t x = rng_next(&b->rng);
        memcpy(c->incarnation.b + 8 * i, &x, 8);
    }
    c->voter_count = cfg->voters.count;
    for (uint32_t i = 0; i < cfg->voters.count; i++)
        c->voters[i] = cfg->voters.voters[i].id;
    int rc = path_in(b, META_LOG_DIR, c->dir, sizeof(c->dir));
    if (rc == 0)
        rc = path_in(b, META_SNAPSHOT_FILE, c->snapshot_path, sizeof(c->snapshot_path));
    if (rc < 0)
        return rc;

    /* The cluster id: the directory's (meta.properties, or the metadata of an older version),
     * a new one for the first voter of a new cluster, else learned from the first voter. */
    struct meta_properties props = {0};
    bool found = found_props != NULL;
    if (found)
        props = *found_props;
    bool migrated = false;
    rc = migrate_store(c, &migrated);
    if (rc < 0)
        return rc;
    /* The image as of the snapshot (with the cluster id it was written for); the log's
     * committed rest is applied once a leader is known. */
    int64_t applied = -1;
    bool have_snapshot = false;
    rc = meta_node_load(b->io, c->snapshot_path, &b->meta, &applied, &have_snapshot);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot load the metadata snapshot %s: %s\n", c->snapshot_path,
                err_str(rc));
        return rc;
    }
    bool is_dir = false;
    bool have_log = io_exists(b->io, c->dir, &is_dir) == 0;
    if (!found && !have_snapshot && !have_log) {
        /* Partition data without any metadata is a lost metadata log: refused before anything
         * of a new cluster is written over it. */
        rc = broker_clean_data_dir(b, true);
        if (rc < 0)
            return rc;
    }
    if (found && have_snapshot && strcmp(props.cluster_id, b->meta.cluster_id) != 0) {
        fprintf(stderr,
                "chronik: %s/" META_PROPERTIES_NAME " says cluster.id %s but the metadata in %s "
                "belongs to cluster %s; the directory mixes two clusters' files: restore the "
                "matching " META_PROPERTIES_NAME " or use a new data directory\n",
                cfg->log_dir, props.cluster_id, cfg->log_dir, b->meta.cluster_id);
        return ERR_CORRUPT;
    }
    if (found)
        snprintf(c->cluster_id, sizeof(c->cluster_id), "%s", props.cluster_id);
    else if (have_snapshot)
        snprintf(c->cluster_id, sizeof(c->cluster_id), "%s", b->meta.cluster_id);
    else if (have_log) {
        fprintf(
            stderr,
            "chronik: %s holds a metadata log but neither " META_PROPERTIES_NAME " nor a "
            "metadata snapshot says which cluster it belongs to; restore %s/" META_PROPERTIES_NAME
            " or use a new data directory\n",
            cfg->log_dir, cfg->log_dir);
        return ERR_CORRUPT;
    }
    bool fresh = false;
    if (c->cluster_id[0] == '\0' && (cfg->standalone || cfg->voters.voters[0].id == cfg->node_id)) {
        /* The first voter of a new cluster names it; the others learn the name from it. */
        struct meta_uuid random;
        for (int i = 0; i < 2; i++) {
            uint64_t x = rng_next(&b->rng);
            memcpy(random.b + 8 * i, &x, 8);
        }
        meta_image_set_cluster_id(&b->meta, random.b);
        snprintf(c->cluster_id, sizeof(c->cluster_id), "%s", b->meta.cluster_id);
        fresh = true;
    }
    if (c->cluster_id[0] != '\0') {
        meta_image_set_cluster_id_text(&b->meta, c->cluster_id);
        rc = adopt_cluster_id(c, !found, !fresh && !found);
        if (rc < 0)
            return rc;
    }
    struct log_env env = {.io = b->io, .clock = b->clock, .files = b->files, .flusher = b->flusher};
    struct log_config lc;
    log_config_default(&lc);
    lc.segment_bytes = BROKER_META_SEGMENT_BYTES;
    lc.prealloc_bytes = 0;
    rc = log_open(&env, c->dir, &lc, &c->log);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot open the metadata log %s: %s\n", c->dir, err_str(rc));
        return rc;
    }
    struct raft_host_options ho = {
        .self = cfg->node_id, .io = b->io, .clock = b->clock, .state_dir = cfg->log_dir};
    rc = raft_host_create(&ho, &c->host);
    if (rc < 0)
        return rc;
    rc = open_transport(c);
    if (rc < 0)
        return rc;
    raft_host_set_transport(c->host, c->transport);
    if (c->cluster_id[0] != '\0') {
        rc = open_meta_node(c, applied);
        if (rc < 0)
            return rc;
    }
    return loop_timer_start(b->loop, &c->tick, BROKER_RAFT_TICK_MS, BROKER_RAFT_TICK_MS);
}

void broker_cluster_close(struct broker *b, bool clean)
{
    struct broker_cluster *c = b->cluster;
    if (c == NULL)
        return;
    loop_timer_stop(b->loop, &c->tick);
    /* The metadata node first: the operation it fails may answer a forwarded request. */
    if (c->mn != NULL)
        meta_node_close(c->mn);
    c->mn = NULL;
    while (c->forwards != NULL)
        forward_end(c, c->forwards, NULL);
    if (c->host != NULL)
        raft_host_set_transport(c->host, NULL);
    if (c->tcp != NULL)
        tcp_transport_destroy(c->tcp);
    else if (c->transport != NULL && b->sim != NULL)
        b->sim->transport_close(b->sim->ctx, c->transport);
    c->transport = NULL;
    if (c->log != NULL && clean)
        log_close(c->log);
    else if (c->log != NULL)
        log_abandon(c->log);
    c->log = NULL;
}

void broker_cluster_free(struct broker *b)
{
    struct broker_cluster *c = b->cluster;
    if (c == NULL)
        return;
    if (c->host != NULL)
        raft_host_destroy(c->host);
    free(c);
    b->cluster = NULL;
}

/* ---- topics the broker creates itself ------------------------------------------------------ */

void broker_create_topics(struct broker *b, const struct proto_str *names, uint32_t count,
                          int32_t partitions, const char *const *keys, const char *const *values,
                          uint32_t config_count, broker_forward_fn done, void *ctx)
{
    broker_create_topics_rf(b, names, count, partitions, -1, keys, values, config_count, done, ctx);
}

void broker_create_topics_rf(struct broker *b, const struct proto_str *names, uint32_t count,
                             int32_t partitions, int16_t replication_factor,
                             const char *const *keys, const char *const *values,
                             uint32_t config_count, broker_forward_fn done, void *ctx)
{
    struct kafka_create_topics_request_creatable_topic *topics = xcalloc(count, sizeof(*topics));
    struct kafka_create_topics_request_creatable_topic_config *cfgs =
        xcalloc(config_count + 1, sizeof(*cfgs));
    for (uint32_t i = 0; i < config_count; i++) {
        cfgs[i].name = proto_str_make(keys[i]);
        cfgs[i].value = proto_str_make(values[i]);
    }
    for (uint32_t i = 0; i < count; i++) {
        topics[i].name = names[i];
        topics[i].num_partitions = partitions;
        topics[i].replication_factor = replication_factor;
        topics[i].assignments.items = (void *)topics; /* empty, not null */
        topics[i].configs.items = cfgs;
        topics[i].configs.count = config_count;
    }
    struct kafka_create_topics_request req;
    kafka_create_topics_request_init(&req);
    req.topics.items = topics;
    req.topics.count = count;
    struct kafka_request_header h;
    kafka_request_header_init(&h);
    h.request_api_key = API_CREATE_TOPICS;
    h.request_api_version = BROKER_INTERNAL_CREATE_VERSION;
    h.client_id = proto_str_make("chronik-internal");
    struct buf frame;
    buf_init(&frame);
    int rc = kafka_request_header_encode(&h, 1, &frame);
    if (rc == 0)
        rc = proto_encode(proto_api_get(API_CREATE_TOPICS)->request, &req,
                          BROKER_INTERNAL_CREATE_VERSION, &frame);
    free(topics);
    free(cfgs);
    if (rc == 0)
        broker_forward(b, buf_slice(&frame), done, ctx);
    else
        done(ctx, NULL);
    buf_deinit(&frame);
}
