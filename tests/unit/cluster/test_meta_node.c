/*
 * The metadata node (cluster/meta_node.h) on one and three nodes in one process: each node has
 * its own simulated disk (io_sim), a metadata log with a manual flusher, a Raft host, a metadata
 * node and its image, all on one simulated network (sim_net). The test's loop is the only clock:
 * every SUB_MS it runs each node's flush jobs, ticks every host and metadata node every TICK_MS
 * (as the broker's loop timer does), delivers due frames and flushes every transport (the
 * broker flushes once per loop iteration; RPCs to self are delivered there).
 *
 * Each test names the bug it would catch. Seeded (CHRONIK_SEED replays a run); the seed is
 * printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/limits.h"
#include "cluster/meta_controller.h"
#include "cluster/meta_node.h"
#include "cluster/sim_net.h"
#include "io/io_sim.h"
#include "proto/gen/kafka.h"
#include "unit/log/log_testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODES_MAX               3
#define SUB_MS                  10   /* one loop iteration */
#define TICK_MS                 50   /* BROKER_RAFT_TICK_MS */
#define ELECTION_TICK           6    /* controller.quorum.election.timeout.ms 300 */
#define HEARTBEAT_MS            500  /* broker.heartbeat.interval.ms */
#define SESSION_MS              2000 /* broker.session.timeout.ms */
#define SNAPSHOT_DIR            "/"
#define SNAPSHOT_PATH           "/metadata.snapshot"
#define API_BROKER_REGISTRATION 62
#define API_BROKER_HEARTBEAT    63

struct node {
    int32_t id;
    bool up;      /* the process runs */
    bool ticking; /* its loop timer fires (false: a hung timer, the network still works) */
    struct io *io;
    struct log_files *files;
    struct log_flusher *fl;
    struct log *log;
    struct raft_host *host;
    struct transport *t;
    struct meta_image *img;
    struct meta_node *mn;
    uint32_t starts;    /* each start is a new incarnation */
    int64_t opened_at;  /* the applied offset it opened with (its snapshot's, or -1) */
    uint64_t unclaimed; /* RPCs the metadata node did not claim */
    int64_t last_corr[NODES_MAX + 1]; /* correlation id of the last request from each node */
    int64_t pid_first[8];             /* producer id blocks granted to it, in order */
    uint32_t pid_blocks;
    /* Compared with the image at the first applied callback reaching expect_at. */
    const struct meta_image *expect;
    int64_t expect_at;
    bool expect_checked;
};

struct world {
    struct sim_net *net;
    struct clock_sim clock;
    struct rng rng;
    uint64_t now_ms;
    int count;
    int32_t voters[NODES_MAX];
    char cluster_id[META_CLUSTER_ID_CHARS + 1];
    struct node n[NODES_MAX];
};

/* ---- the nodes ---------------------------------------------------------------------------- */

static void on_raft(void *ctx, const struct wire_raft *frame)
{
    struct node *n = ctx;
    raft_host_receive(n->host, frame);
}

static void on_rpc(void *ctx, const struct wire_rpc *r)
{
    struct node *n = ctx;
    if (r->kind == WIRE_RPC_REQUEST && r->from >= 1 && r->from <= NODES_MAX)
        n->last_corr[r->from] = r->correlation_id;
    if (n->mn == NULL || !meta_node_on_rpc(n->mn, r))
        n->unclaimed++;
}

static void on_applied(void *ctx, int64_t last)
{
    struct node *n = ctx;
    assert_int_equal(meta_node_applied(n->mn), last);
    if (n->expect != NULL && !n->expect_checked && last >= n->expect_at) {
        /* Nothing but the old log is applied yet: a new registration needs another flush. */
        assert_true(meta_image_equal(n->img, n->expect));
        n->expect_checked = true;
    }
}

static void on_producer_ids(void *ctx, int64_t first, int32_t count)
{
    struct node *n = ctx;
    assert_int_equal(count, META_PRODUCER_ID_BLOCK);
    assert_true(n->pid_blocks < 8);
    n->pid_first[n->pid_blocks++] = first;
}

static void node_start(struct world *w, struct node *n)
{
    struct log_config cfg;
    struct transport_handler th = {.on_raft = on_raft, .on_rpc = on_rpc, .ctx = n};
    int64_t applied;
    bool found;

    n->files = log_files_create(n->io, 16);
    n->fl = log_flusher_create(false);
    struct log_env env = {
        .io = n->io, .clock = &w->clock.clock, .files = n->files, .flusher = n->fl};
    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    cfg.segment_bytes = LOG_SEGMENT_BYTES_MIN; /* rolls, so a dropped prefix frees segments */
    assert_int_equal(log_open(&env, "/meta", &cfg, &n->log), 0);

    n->img = calloc(1, sizeof(*n->img));
    meta_image_init(n->img);
    assert_int_equal(meta_node_load(n->io, SNAPSHOT_PATH, n->img, &applied, &found), 0);
    if (found)
        assert_string_equal(n->img->cluster_id, w->cluster_id);
    else
        meta_image_set_cluster_id_text(n->img, w->cluster_id);
    n->opened_at = applied;

    struct raft_host_options ho = {
        .self = n->id, .io = n->io, .clock = &w->clock.clock, .state_dir = "/"};
    assert_int_equal(raft_host_create(&ho, &n->host), 0);
    assert_int_equal(sim_net_attach(w->net, n->id, &th, &n->t), 0);
    for (int i = 0; i < w->count; i++)
        if (w->n[i].id != n->id)
            assert_int_equal(transport_peer_set(n->t, w->n[i].id, "sim", 0), 0);
    raft_host_set_transport(n->host, n->t);

    n->starts++;
    struct meta_node_config mc = {
        .self = n->id,
        .voters = w->voters,
        .voter_count = (uint32_t)w->count,
        .election_ticks = ELECTION_TICK,
        .heartbeat_ticks = 1,
        .seed = rng_next(&w->rng),
        .broker_heartbeat_ms = HEARTBEAT_MS,
        .broker_session_ms = SESSION_MS,
        .cluster_id = w->cluster_id,
        .endpoint = {.name = "PLAINTEXT",
                     .host = "127.0.0.1",
                     .port = (uint16_t)(9091 + n->id),
                     .security_protocol = 0},
    };
    mc.incarnation_id.b[0] = (uint8_t)n->id;
    mc.incarnation_id.b[1] = (uint8_t)n->starts;
    struct meta_node_env me = {.io = n->io,
                               .clock = &w->clock.clock,
                               .host = n->host,
                               .transport = n->t,
                               .log = n->log,
                               .snapshot_dir = SNAPSHOT_DIR,
                               .snapshot_path = SNAPSHOT_PATH};
    struct meta_node_handler h = {.applied = on_applied, .producer_ids = on_producer_ids, .ctx = n};
    assert_int_equal(meta_node_open(&mc, &me, n->img, applied, &h, &n->mn), 0);
    n->up = true;
    n->ticking = true;
}

/* Stops the node: cleanly, or as a power loss (unsynced writes lost at a random point). The
 * image is handed to *keep when keep is not NULL, else freed. */
static void node_stop(struct world *w, struct node *n, bool crash, struct meta_image **keep)
{
    meta_node_close(n->mn);
    n->mn = NULL;
    raft_host_destroy(n->host);
    sim_net_detach(w->net, n->id);
    if (crash) {
        io_sim_crash(n->io, &w->rng);
        log_abandon(n->log);
    } else {
        assert_int_equal(log_close(n->log), 0);
    }
    log_flusher_destroy(n->fl);
    log_files_destroy(n->files);
    if (keep != NULL) {
        *keep = n->img;
    } else {
        meta_image_deinit(n->img);
        free(n->img);
    }
    n->img = NULL;
    n->up = false;
}

static void image_free(struct meta_image *img)
{
    meta_image_deinit(img);
    free(img);
}

static struct world *world_create(int count, const char *name, uint64_t def_seed)
{
    struct world *w = calloc(1, sizeof(*w));
    uint64_t seed = test_seed(name, def_seed);
    struct sim_net_options no = {.seed = seed, .delay_ms_min = 1, .delay_ms_max = 5};
    struct meta_image tmp;
    uint8_t random[META_UUID_BYTES];

    rng_seed(&w->rng, seed);
    clock_sim_init(&w->clock, 1700000000000);
    assert_int_equal(sim_net_create(&no, &w->net), 0);
    for (size_t i = 0; i < sizeof(random); i++)
        random[i] = (uint8_t)rng_next(&w->rng);
    meta_image_init(&tmp);
    meta_image_set_cluster_id(&tmp, random);
    memcpy(w->cluster_id, tmp.cluster_id, sizeof(w->cluster_id));
    meta_image_deinit(&tmp);
    w->count = count;
    for (int i = 0; i < count; i++) {
        w->voters[i] = i + 1;
        w->n[i].id = i + 1;
        w->n[i].io = io_sim_create();
    }
    for (int i = 0; i < count; i++)
        node_start(w, &w->n[i]);
    return w;
}

static void world_destroy(struct world *w)
{
    for (int i = 0; i < w->count; i++) {
        if (w->n[i].up)
            node_stop(w, &w->n[i], false, NULL);
        assert_int_equal(w->n[i].unclaimed, 0);
        io_destroy(w->n[i].io);
    }
    sim_net_destroy(w->net);
    free(w);
}

/* One loop iteration of every node: flush jobs, the tick when due, the network, the flushes. */
static void step(struct world *w)
{
    w->now_ms += SUB_MS;
    clock_sim_advance_ms(&w->clock, SUB_MS);
    bool tick = w->now_ms % TICK_MS == 0;
    for (int i = 0; i < w->count; i++) {
        struct node *n = &w->n[i];
        if (!n->up)
            continue;
        log_flusher_run_pending(n->fl);
        log_flusher_drain(n->fl);
        if (tick && n->ticking) {
            raft_host_tick(n->host);
            meta_node_tick(n->mn);
        }
    }
    sim_net_advance(w->net, w->now_ms);
    for (int i = 0; i < w->count; i++)
        if (w->n[i].up) {
            raft_host_flush(w->n[i].host);
            transport_flush(w->n[i].t);
        }
    for (int i = 0; i < w->count; i++)
        if (w->n[i].up)
            assert_int_equal(meta_node_error(w->n[i].mn), 0);
}

static void run_ms(struct world *w, uint64_t ms)
{
    for (uint64_t t = 0; t < ms; t += SUB_MS)
        step(w);
}

typedef bool (*pred_fn)(struct world *w, void *ctx);

/* Steps until pred holds; fails after max_ms of simulated time. Returns the time it took. */
static uint64_t wait_for(struct world *w, pred_fn pred, void *ctx, uint64_t max_ms,
                         const char *what)
{
    uint64_t start = w->now_ms;
    while (!pred(w, ctx)) {
        if (w->now_ms - start >= max_ms)
            fail_msg("%s: not within %" PRIu64 " ms", what, max_ms);
        step(w);
    }
    return w->now_ms - start;
}

/* The up node that may build (exactly one, or NULL). */
static struct node *controller(struct world *w)
{
    struct node *c = NULL;
    for (int i = 0; i < w->count; i++) {
        struct node *n = &w->n[i];
        if (n->up && meta_node_is_controller(n->mn)) {
            if (c != NULL)
                return NULL;
            c = n;
        }
    }
    return c;
}

static struct node *node_by_id(struct world *w, int32_t id)
{
    assert_true(id >= 1 && id <= w->count);
    return &w->n[id - 1];
}

/* Every up node: one controller known alike, caught up to its applied offset, registered,
 * unfenced in every image, and every image equal. */
static bool settled(struct world *w, void *ctx)
{
    (void)ctx;
    struct node *c = controller(w);
    if (c == NULL)
        return false;
    for (int i = 0; i < w->count; i++) {
        struct node *n = &w->n[i];
        if (!n->up)
            continue;
        if (meta_node_controller(n->mn) != c->id || !meta_node_caught_up(n->mn) ||
            !meta_node_unfenced(n->mn) || meta_node_applied(n->mn) != meta_node_applied(c->mn) ||
            !meta_image_equal(n->img, c->img))
            return false;
        for (int j = 0; j < w->count; j++) {
            const struct meta_broker *b = meta_broker_find(c->img, w->n[j].id);
            if (w->n[j].up && (b == NULL || b->fenced))
                return false;
        }
    }
    return true;
}

static void settle(struct world *w)
{
    wait_for(w, settled, NULL, 20000, "the cluster settles");
}

/* What cluster_node.c waits for before the broker serves. */
static bool serving(struct world *w, void *ctx)
{
    (void)w;
    struct node *n = ctx;
    return meta_node_caught_up(n->mn) && meta_node_unfenced(n->mn);
}

/* ---- controller operations ---------------------------------------------------------------- */

struct op {
    const struct meta_image *img; /* the controller's, built against */
    struct node *at;
    char topic[32];
    int32_t partitions;
    uint32_t round; /* alter_configs: the values' round */
    bool configs;   /* alter the topic's configs instead of creating it */
    int builds;
    int dones;
    int err;
    int64_t offset;
    int16_t ctl_error;
};

#define CONFIG_COUNT       META_TOPIC_CONFIGS_MAX
#define CONFIG_VALUE_BYTES 1000

static void op_build(void *ctx, struct meta_records *out)
{
    struct op *o = ctx;
    struct meta_ctl_result res;
    o->builds++;
    assert_int_equal(o->builds, 1);
    assert_true(meta_node_is_controller(o->at->mn));
    if (!o->configs) {
        struct meta_ctl_create_topic req = {
            .name = o->topic, .partitions = o->partitions, .replication_factor = 1};
        req.id.b[0] = 0x51;
        memcpy(req.id.b + 1, o->topic, strnlen(o->topic, 15));
        o->ctl_error = meta_ctl_create_topic(o->img, &req, out, &res);
        return;
    }
    /* Every override changes each round: CONFIG_COUNT records of about a KiB. */
    static char keys[CONFIG_COUNT][16], values[CONFIG_COUNT][CONFIG_VALUE_BYTES + 1];
    struct meta_ctl_config cfg[CONFIG_COUNT];
    for (uint32_t i = 0; i < CONFIG_COUNT; i++) {
        snprintf(keys[i], sizeof(keys[i]), "test.key.%02u", i);
        memset(values[i], 'a' + (int)((o->round + i) % 26), CONFIG_VALUE_BYTES);
        values[i][CONFIG_VALUE_BYTES] = '\0';
        cfg[i] = (struct meta_ctl_config){.key = keys[i], .value = values[i]};
    }
    o->ctl_error = meta_ctl_alter_configs(o->img, META_RESOURCE_TOPIC, o->topic, cfg, CONFIG_COUNT,
                                          false, out, &res);
}

static void op_done(void *ctx, int err, int64_t offset)
{
    struct op *o = ctx;
    o->dones++;
    assert_int_equal(o->dones, 1); /* exactly once */
    o->err = err;
    o->offset = offset;
    if (err == 0) {
        /* After commit and apply here: the image already holds the change. */
        assert_true(meta_node_applied(o->at->mn) >= offset);
        if (!o->configs && o->ctl_error == 0)
            assert_non_null(meta_topic_find(o->img, o->topic, strlen(o->topic)));
    }
}

/* Queues o on n (build may run at once, inside meta_node_submit). */
static int submit_op(struct node *n, struct op *o)
{
    o->img = n->img;
    o->at = n;
    o->err = 1; /* not done */
    return meta_node_submit(n->mn, op_build, op_done, o);
}

static int submit(struct node *n, struct op *o, const char *topic, int32_t partitions)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->topic, sizeof(o->topic), "%s", topic);
    o->partitions = partitions;
    return submit_op(n, o);
}

static bool op_finished(struct world *w, void *ctx)
{
    (void)w;
    return ((struct op *)ctx)->dones > 0;
}

/* Every up node applied through offset. */
static bool all_applied(struct world *w, void *ctx)
{
    int64_t offset = *(int64_t *)ctx;
    for (int i = 0; i < w->count; i++)
        if (w->n[i].up && meta_node_applied(w->n[i].mn) < offset)
            return false;
    return true;
}

struct applied_wait {
    struct node *n;
    int64_t offset;
};

static bool node_applied(struct world *w, void *ctx)
{
    (void)w;
    struct applied_wait *a = ctx;
    return meta_node_applied(a->n->mn) >= a->offset;
}

/* Creates topic on the controller and waits until every up node applied it. */
static void create_topic(struct world *w, const char *topic, int32_t partitions)
{
    struct op o;
    struct node *c = controller(w);
    assert_non_null(c);
    assert_int_equal(submit(c, &o, topic, partitions), 0);
    wait_for(w, op_finished, &o, 5000, "the topic commits");
    assert_int_equal(o.err, 0);
    assert_int_equal(o.ctl_error, 0);
    wait_for(w, all_applied, &o.offset, 5000, "every node applies the topic");
    for (int i = 0; i < w->count; i++) {
        if (!w->n[i].up)
            continue;
        const struct meta_topic *t = meta_topic_find(w->n[i].img, topic, strlen(topic));
        assert_non_null(t);
        assert_int_equal(t->partition_count, (uint32_t)partitions);
    }
}

/* ---- 1. one voter ------------------------------------------------------------------------- */

static bool unfenced_1(struct world *w, void *ctx)
{
    (void)ctx;
    return meta_node_unfenced(w->n[0].mn);
}

static bool expect_checked(struct world *w, void *ctx)
{
    (void)ctx;
    return w->n[0].expect_checked;
}

/* Catches: a standalone node waiting an election timeout (or forever) before it leads, its own
 * registration not reaching itself through the transport's self-delivery, and a restart that
 * does not rebuild the image from the log alone (no snapshot). */
static void test_one_voter(void **state)
{
    (void)state;
    struct world *w = world_create(1, "meta_node_one_voter", 20261210);
    struct node *n = &w->n[0];

    run_ms(w, TICK_MS); /* the first tick */
    assert_int_equal(meta_node_controller(n->mn), n->id);
    wait_for(w, unfenced_1, NULL, 5 * TICK_MS, "the single node registers and is unfenced");
    assert_true(meta_node_caught_up(n->mn));
    assert_true(meta_node_is_controller(n->mn));
    const struct meta_broker *b = meta_broker_find(n->img, n->id);
    assert_non_null(b);
    assert_false(b->fenced);
    assert_int_equal(b->endpoints[0].port, 9091 + n->id);
    create_topic(w, "one", 3);
    settle(w);

    /* No snapshot was written: the restart replays the whole log. */
    bool is_dir;
    assert_int_equal(io_exists(n->io, SNAPSHOT_PATH, &is_dir), -ENOENT);
    int64_t before = meta_node_applied(n->mn);
    struct meta_image *old;
    node_stop(w, n, false, &old);
    node_start(w, n);
    assert_int_equal(n->opened_at, -1);
    n->expect = old;
    n->expect_at = before;
    wait_for(w, expect_checked, NULL, 5 * TICK_MS, "the restarted node replays its log");
    n->expect = NULL;
    /* A new incarnation registers anew and is unfenced again. */
    wait_for(w, unfenced_1, NULL, 5 * TICK_MS, "the restarted node is unfenced");
    assert_non_null(meta_topic_find(n->img, "one", 3));
    assert_false(meta_image_equal(n->img, old)); /* the new registration */
    image_free(old);
    world_destroy(w);
}

/* ---- 2. three voters ---------------------------------------------------------------------- */

/* Catches: two controllers at once, a node never registered or left fenced, images that differ
 * between nodes, a submit answered before commit and apply, a non-controller that accepts an
 * operation (it would build against a stale image), two queued requests both passing a check
 * only one may pass, and a broker restarted at its own endpoint refused until its old session
 * expires. */
static void test_three_voters(void **state)
{
    (void)state;
    struct world *w = world_create(3, "meta_node_three_voters", 20261211);

    settle(w);
    struct node *c = controller(w);
    assert_non_null(c);
    for (int i = 0; i < w->count; i++) {
        assert_int_equal(w->n[i].img->broker_count, 3);
        for (uint32_t j = 0; j < 3; j++)
            assert_false(w->n[i].img->brokers[j].fenced);
    }
    create_topic(w, "three", 6);
    settle(w);

    for (int i = 0; i < w->count; i++) {
        struct node *n = &w->n[i];
        if (n == c)
            continue;
        struct op o;
        assert_int_equal(submit(n, &o, "elsewhere", 1), ERR_STATE);
        run_ms(w, 5 * TICK_MS);
        assert_int_equal(o.builds, 0);
        assert_int_equal(o.dones, 0);
    }
    /* A topic that exists already: built, refused by the controller's check, nothing proposed. */
    struct op o;
    assert_int_equal(submit(c, &o, "three", 1), 0);
    wait_for(w, op_finished, &o, 1000, "a refused operation finishes");
    assert_int_equal(o.err, 0);
    assert_int_equal(o.ctl_error, META_CTL_TOPIC_ALREADY_EXISTS);

    /* Two requests for one name at once: the second is built after the first applied. */
    struct op p, q;
    assert_int_equal(submit(c, &p, "twice", 1), 0);
    assert_int_equal(submit(c, &q, "twice", 2), 0);
    wait_for(w, op_finished, &q, 1000, "the second request finishes");
    assert_int_equal(p.dones, 1);
    assert_int_equal(p.err, 0);
    assert_int_equal(p.ctl_error, 0);
    assert_int_equal(q.err, 0);
    assert_int_equal(q.ctl_error, META_CTL_TOPIC_ALREADY_EXISTS);
    settle(w);
    assert_int_equal(meta_topic_find(c->img, "twice", 5)->partition_count, 1);

    /* A follower restarts at once (a new incarnation at the same endpoint, its old session
     * still running): registered again without waiting for the old session to expire. */
    struct node *f = c == &w->n[0] ? &w->n[1] : &w->n[0];
    node_stop(w, f, false, NULL);
    node_start(w, f);
    uint64_t took = wait_for(w, serving, f, SESSION_MS, "the restarted follower may serve");
    assert_true(took < SESSION_MS / 2);
    settle(w);
    world_destroy(w);
}

/* ---- producer ids ------------------------------------------------------------------------ */

static bool blocks_at_least(struct world *w, void *ctx)
{
    uint32_t want = *(uint32_t *)ctx;
    for (int i = 0; i < w->count; i++)
        if (w->n[i].up && w->n[i].pid_blocks < want)
            return false;
    return true;
}

/* AllocateProducerIds over ClusterRpc: every node (the controller too) gets blocks of
 * META_PRODUCER_ID_BLOCK ids, none shared, each committed in the metadata log (the images all
 * hold the next free id) before it is granted, also from a new controller after a failover.
 * Catches: a block granted twice, granted before its record committed, or not granted at all
 * to the controller's own node. */
static void test_producer_ids(void **state)
{
    (void)state;
    struct world *w = world_create(3, "meta_node_producer_ids", 20261215);
    settle(w);
    for (uint32_t round = 1; round <= 2; round++) {
        for (int i = 0; i < w->count; i++)
            assert_int_equal(meta_node_alloc_producer_ids(w->n[i].mn), 0);
        /* Asked again while one is in flight: no second request. */
        for (int i = 0; i < w->count; i++)
            assert_int_equal(meta_node_alloc_producer_ids(w->n[i].mn), 0);
        wait_for(w, blocks_at_least, &round, 5000, "every node gets a block");
    }
    settle(w);
    int64_t seen[32];
    uint32_t n = 0;
    for (int i = 0; i < w->count; i++) {
        assert_int_equal(w->n[i].pid_blocks, 2);
        for (uint32_t k = 0; k < w->n[i].pid_blocks; k++) {
            int64_t first = w->n[i].pid_first[k];
            assert_true(first % META_PRODUCER_ID_BLOCK == 0);
            assert_true(first < w->n[i].img->next_producer_id);
            for (uint32_t j = 0; j < n; j++)
                assert_true(seen[j] != first);
            seen[n++] = first;
        }
    }
    assert_int_equal(w->n[0].img->next_producer_id, 6 * META_PRODUCER_ID_BLOCK);

    /* The controller restarts: the next block comes from its successor, past every one. */
    struct node *old = controller(w);
    node_stop(w, old, false, NULL);
    node_start(w, old);
    settle(w);
    uint32_t three = 3;
    for (int i = 0; i < w->count; i++)
        (void)meta_node_alloc_producer_ids(w->n[i].mn);
    wait_for(w, blocks_at_least, &three, 5000, "every node gets a third block");
    for (int i = 0; i < w->count; i++)
        assert_true(w->n[i].pid_first[2] >= 6 * META_PRODUCER_ID_BLOCK);
    settle(w);
    assert_int_equal(w->n[0].img->next_producer_id, 9 * META_PRODUCER_ID_BLOCK);
    world_destroy(w);
}

/* ---- 3. fencing --------------------------------------------------------------------------- */

struct fence_wait {
    int32_t id;
    bool fenced;
};

/* The controller's image shows broker id fenced (or unfenced). */
static bool broker_fenced_is(struct world *w, void *ctx)
{
    struct fence_wait *f = ctx;
    struct node *c = controller(w);
    if (c == NULL)
        return false;
    const struct meta_broker *b = meta_broker_find(c->img, f->id);
    return b != NULL && b->fenced == f->fenced;
}

static struct node *follower(struct world *w, int k)
{
    struct node *c = controller(w);
    for (int i = 0; i < w->count; i++)
        if (&w->n[i] != c && k-- == 0)
            return &w->n[i];
    return NULL;
}

/* Catches: a broker whose heartbeats stopped never fenced (clients would be sent to it), one
 * fenced before its session ran out, the other brokers fenced along with it, and a returning
 * broker left fenced. */
static void test_fencing(void **state)
{
    (void)state;
    struct world *w = world_create(3, "meta_node_fencing", 20261212);

    settle(w);
    struct node *c = controller(w);
    /* Cut off from everyone: its heartbeats stop reaching the controller. */
    struct node *x = follower(w, 0);
    int32_t side[1] = {x->id};
    sim_net_partition(w->net, side, 1);
    struct fence_wait f = {.id = x->id, .fenced = true};
    uint64_t took = wait_for(w, broker_fenced_is, &f, SESSION_MS + 2 * HEARTBEAT_MS,
                             "the silent broker fenced");
    /* Its last heartbeat left at most one interval before the cut. */
    assert_true(took + HEARTBEAT_MS + TICK_MS >= SESSION_MS);
    assert_ptr_equal(controller(w), c);
    for (int i = 0; i < w->count; i++) {
        const struct meta_broker *b = meta_broker_find(c->img, w->n[i].id);
        assert_int_equal(b->fenced, &w->n[i] == x);
    }
    struct node *y = follower(w, 1);
    struct applied_wait aw = {.n = y, .offset = meta_node_applied(c->mn)};
    wait_for(w, node_applied, &aw, 1000, "the other follower applies the fence");
    assert_true(meta_image_equal(y->img, c->img));
    sim_net_heal(w->net);
    settle(w); /* x caught up, heartbeated and was unfenced, in every image */

    /* Its loop timer stops, its Raft replies go on: it sees its own fencing. */
    x->ticking = false;
    f.fenced = true;
    wait_for(w, broker_fenced_is, &f, SESSION_MS + 2 * HEARTBEAT_MS, "the hung broker fenced");
    int64_t fenced_at = meta_node_applied(c->mn);
    wait_for(w, all_applied, &fenced_at, 2000, "every node applies the fence");
    assert_false(meta_node_unfenced(x->mn));
    x->ticking = true;
    settle(w);
    world_destroy(w);
}

static bool shutdown_granted(struct world *w, void *ctx)
{
    (void)w;
    struct node *n = ctx;
    return meta_node_shutdown_granted(n->mn);
}

/* A controlled shutdown's last step, asked by a follower and by the controller itself: granted
 * once the controller's image marks the broker in controlled shutdown (fenced no sooner than
 * its session ends), every node applies the mark, and the restart's registration clears it.
 * Catches: a WantShutDown heartbeat never answered ShouldShutDown (the broker would wait out its
 * shutdown timeout), the grant given before the mark is committed (leaders would keep it in
 * their ISR), the shutdown fencing the broker at once (a record per partition of one replica at
 * every stop), and the mark outliving the restart. */
static void test_controlled_shutdown(void **state)
{
    (void)state;
    struct world *w = world_create(3, "meta_node_controlled_shutdown", 20261207);

    settle(w);
    struct node *c = controller(w);
    struct node *x = follower(w, 0);
    assert_false(meta_node_shutdown_granted(x->mn));
    meta_node_request_shutdown(x->mn);
    wait_for(w, shutdown_granted, x, 2000, "the follower's shutdown granted");
    const struct meta_broker *b = meta_broker_find(c->img, x->id);
    assert_true(b->in_controlled_shutdown);
    assert_false(b->fenced);
    int64_t marked = meta_node_applied(c->mn);
    wait_for(w, all_applied, &marked, 2000, "every node applies the mark");
    for (int i = 0; i < w->count; i++)
        assert_true(meta_broker_find(w->n[i].img, x->id)->in_controlled_shutdown);

    /* The controller's own shutdown goes through its own heartbeat. */
    meta_node_request_shutdown(c->mn);
    wait_for(w, shutdown_granted, c, 2000, "the controller's shutdown granted");
    assert_true(meta_broker_find(c->img, c->id)->in_controlled_shutdown);

    /* The follower restarts: registered anew, unmarked. */
    node_stop(w, x, false, NULL);
    node_start(w, x);
    wait_for(w, serving, x, 5000, "the restarted follower serves");
    c = controller(w);
    assert_non_null(c);
    b = meta_broker_find(c->img, x->id);
    assert_false(b->in_controlled_shutdown);
    assert_false(b->fenced);
    world_destroy(w);
}

/* ---- 4. controller fail-over -------------------------------------------------------------- */

/* The up nodes but `not` agree on a controller other than `not`, which may build. */
static bool new_controller(struct world *w, void *ctx)
{
    struct node *old = ctx;
    int32_t id = -1;
    for (int i = 0; i < w->count; i++) {
        struct node *n = &w->n[i];
        if (!n->up || n == old)
            continue;
        int32_t k = meta_node_controller(n->mn);
        if (k < 0 || k == old->id || (id >= 0 && k != id))
            return false;
        id = k;
    }
    return id >= 0 && meta_node_is_controller(node_by_id(w, id)->mn);
}

/* Catches: an operation queued on a controller that lost its majority left waiting forever or
 * reported done although it never committed, or one left unanswered when the controller
 * closes; a new controller fencing live brokers before their session ran; survivors disagreeing on
 * the new controller or never electing one; a new controller that cannot commit; a crashed
 * controller that comes back with an image different from the others. */
static void test_failover(void **state)
{
    (void)state;
    struct world *w = world_create(3, "meta_node_failover", 20261213);

    settle(w);
    struct node *old = controller(w);
    int32_t side[1] = {old->id};
    sim_net_partition(w->net, side, 1);
    struct op a, b;
    assert_int_equal(submit(old, &a, "lost-a", 1), 0); /* proposed, never commits */
    assert_int_equal(submit(old, &b, "lost-b", 1), 0); /* queued behind it */
    assert_int_equal(a.builds, 1);
    assert_int_equal(b.builds, 0);
    wait_for(w, new_controller, old, 5000, "the survivors elect a new controller");
    /* (The old one may still think it leads until check-quorum steps it down.) */
    struct node *s = old == &w->n[0] ? &w->n[1] : &w->n[0];
    struct node *c = node_by_id(w, meta_node_controller(s->mn));
    assert_true(c != old);
    struct op o;
    assert_int_equal(submit(c, &o, "after", 2), 0);
    wait_for(w, op_finished, &o, 5000, "the new controller commits");
    assert_int_equal(o.err, 0);
    assert_int_equal(o.ctl_error, 0);
    sim_net_heal(w->net);
    settle(w);
    wait_for(w, op_finished, &a, 5000, "the in-flight operation finishes");
    wait_for(w, op_finished, &b, 5000, "the queued operation finishes");
    assert_int_equal(a.err, ERR_STATE);
    assert_int_equal(b.err, ERR_STATE);
    assert_int_equal(b.builds, 0);
    for (int i = 0; i < w->count; i++) {
        assert_null(meta_topic_find(w->n[i].img, "lost-a", 6));
        assert_null(meta_topic_find(w->n[i].img, "lost-b", 6));
        assert_non_null(meta_topic_find(w->n[i].img, "after", 5));
    }

    /* The controller crashes (unsynced writes lost); another takes over and commits; it comes
     * back, registers anew and ends equal. */
    struct node *gone = controller(w);
    struct op x, y;
    assert_int_equal(submit(gone, &x, "closing-x", 1), 0); /* in flight */
    assert_int_equal(submit(gone, &y, "closing-y", 1), 0); /* queued */
    node_stop(w, gone, true, NULL);
    assert_int_equal(x.dones, 1);
    assert_int_equal(x.err, ERR_CLOSED);
    assert_int_equal(y.dones, 1);
    assert_int_equal(y.err, ERR_CLOSED);
    assert_int_equal(y.builds, 0);
    wait_for(w, new_controller, gone, 5000, "a controller after the crash");
    /* The new controller gives every broker a whole session: no survivor is fenced. */
    for (uint64_t t = 0; t < 2 * SESSION_MS; t += SUB_MS) {
        step(w);
        for (int i = 0; i < w->count; i++)
            if (w->n[i].up)
                assert_true(meta_node_unfenced(w->n[i].mn));
    }
    create_topic(w, "after-crash", 1);
    int64_t committed = meta_node_applied(controller(w)->mn);
    node_start(w, gone);
    wait_for(w, serving, gone, 5000, "the crashed controller may serve again");
    assert_true(meta_node_applied(gone->mn) >= committed);
    settle(w);
    assert_non_null(meta_topic_find(gone->img, "after-crash", 11));
    world_destroy(w);
}

/* ---- 5. snapshots ------------------------------------------------------------------------- */

struct snap {
    int64_t offset;
    bool found;
};

static struct snap snapshot_of(struct node *n)
{
    struct snap s;
    struct meta_image img;
    meta_image_init(&img);
    assert_int_equal(meta_node_load(n->io, SNAPSHOT_PATH, &img, &s.offset, &s.found), 0);
    meta_image_deinit(&img);
    return s;
}

static bool all_compacted(struct world *w, void *ctx)
{
    (void)ctx;
    for (int i = 0; i < w->count; i++)
        if (w->n[i].up && log_start_offset(w->n[i].log) == 0)
            return false;
    return true;
}

/* One round of new values for every override of topic "big" (about CONFIG_COUNT KiB of
 * records), committed. */
static void config_round(struct world *w, uint32_t *round)
{
    struct op o;
    struct node *c = controller(w);
    assert_non_null(c);
    memset(&o, 0, sizeof(o));
    snprintf(o.topic, sizeof(o.topic), "big");
    o.configs = true;
    o.round = (*round)++;
    assert_int_equal(submit_op(c, &o), 0);
    wait_for(w, op_finished, &o, 5000, "a config round commits");
    assert_int_equal(o.err, 0);
    assert_int_equal(o.ctl_error, 0);
}

/* Config rounds until pred holds. */
static void fill(struct world *w, uint32_t *round, pred_fn pred, uint32_t rounds_max)
{
    int64_t snaps[NODES_MAX][2]; /* each node's snapshot before the last, and its last */
    for (int i = 0; i < NODES_MAX; i++)
        snaps[i][0] = snaps[i][1] = -1;
    for (uint32_t k = 0; !pred(w, NULL); k++) {
        assert_true(k < rounds_max);
        config_round(w, round);
        /* The log is dropped below the snapshot before the last one, never further. */
        for (int i = 0; i < w->count; i++) {
            struct node *n = &w->n[i];
            struct snap s = snapshot_of(n);
            if (!n->up || !s.found)
                continue;
            if (s.offset != snaps[i][1]) {
                snaps[i][0] = snaps[i][1];
                snaps[i][1] = s.offset;
            }
            if (snaps[i][0] >= 0)
                assert_int_equal(log_start_offset(n->log), snaps[i][0] + 1);
            else
                assert_int_equal(log_start_offset(n->log), 0);
        }
    }
}

/* Catches: no snapshot ever written (restart time grows with history), a log prefix dropped
 * that no snapshot covers, a restart that replays from the start or skips what follows the
 * snapshot, and a damaged snapshot loaded as if whole. */
static void test_snapshots(void **state)
{
    (void)state;
    struct world *w = world_create(3, "meta_node_snapshots", 20261214);
    uint32_t round = 0;

    settle(w);
    create_topic(w, "big", 1);
    fill(w, &round, all_compacted, 400);
    for (int i = 0; i < w->count; i++) {
        struct snap s = snapshot_of(&w->n[i]);
        assert_true(s.found);
        assert_true(s.offset > 0);
    }
    settle(w);

    /* A follower stops; more is committed; it restarts from its snapshot. */
    struct node *f = follower(w, 0);
    node_stop(w, f, false, NULL);
    for (int k = 0; k < 3; k++)
        config_round(w, &round);
    struct op o;
    assert_int_equal(submit(controller(w), &o, "late", 2), 0);
    wait_for(w, op_finished, &o, 5000, "a topic while the follower is down");
    assert_int_equal(o.err, 0);

    /* A damaged snapshot is refused, byte by byte, and a truncated one. */
    struct io_file *file;
    uint64_t size;
    assert_int_equal(io_open(f->io, SNAPSHOT_PATH, IO_RDWR, &file), 0);
    assert_int_equal(io_size(file, &size), 0);
    uint8_t *bytes = malloc((size_t)size);
    assert_int_equal(io_pread(file, bytes, (size_t)size, 0), (ssize_t)size);
    uint64_t at[] = {0, 5, 9, 17, size / 2, size - 1};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        uint8_t flipped = bytes[at[i]] ^ 0x10;
        struct meta_image img;
        int64_t applied;
        bool found;
        assert_int_equal(io_pwrite(file, &flipped, 1, at[i]), 1);
        meta_image_init(&img);
        assert_int_equal(meta_node_load(f->io, SNAPSHOT_PATH, &img, &applied, &found), ERR_CORRUPT);
        assert_false(found);
        meta_image_deinit(&img);
        assert_int_equal(io_pwrite(file, &bytes[at[i]], 1, at[i]), 1);
    }
    assert_int_equal(io_truncate(file, size - 1), 0);
    {
        struct meta_image img;
        int64_t applied;
        bool found;
        meta_image_init(&img);
        assert_int_equal(meta_node_load(f->io, SNAPSHOT_PATH, &img, &applied, &found), ERR_CORRUPT);
        meta_image_deinit(&img);
    }
    assert_int_equal(io_pwrite(file, &bytes[size - 1], 1, size - 1), 1);
    free(bytes);
    io_close(file);

    struct snap s = snapshot_of(f);
    assert_true(s.found);
    node_start(w, f);
    assert_int_equal(f->opened_at, s.offset);
    assert_int_equal(meta_node_applied(f->mn), s.offset);
    /* The log below the snapshot is gone: only what follows it can be applied. */
    assert_true(log_start_offset(f->log) > 0);
    assert_true(log_start_offset(f->log) <= s.offset + 1);
    /* The broker starts serving once caught up and unfenced (cluster_node.c): by then its image
     * holds everything committed before it came back. (meta_node_caught_up alone may turn true
     * earlier: the leader's first message caps the commit index it tells at what it last knew
     * this node held; the new registration it must apply to be unfenced comes after all of it.)
     */
    int64_t committed = meta_node_applied(controller(w)->mn);
    wait_for(w, serving, f, 5000, "the restarted node may serve");
    assert_true(meta_node_applied(f->mn) >= committed);
    settle(w);
    assert_non_null(meta_topic_find(f->img, "late", 4));
    world_destroy(w);
}

/* ---- 6. malformed RPCs -------------------------------------------------------------------- */

/* Catches: a truncated BrokerHeartbeat or BrokerRegistration (request or answer) read past its
 * end, crashing or acted on as if whole (a broker fenced, re-registered or refused). */
static void test_malformed_rpc(void **state)
{
    (void)state;
    struct world *w = world_create(3, "meta_node_malformed_rpc", 20261215);

    settle(w);
    struct node *c = controller(w);
    struct node *x = follower(w, 0);
    const struct meta_broker *b = meta_broker_find(c->img, x->id);
    struct buf hb, ans, reg;
    buf_init(&hb);
    buf_init(&ans);
    buf_init(&reg);
    struct kafka_broker_heartbeat_request q;
    kafka_broker_heartbeat_request_init(&q);
    q.broker_id = x->id;
    q.broker_epoch = b->epoch;
    q.current_metadata_offset = meta_node_applied(x->mn);
    q.want_fence = true; /* read whole, it would change the broker's state */
    assert_int_equal(kafka_broker_heartbeat_request_encode(&q, 0, &hb), 0);
    struct kafka_broker_heartbeat_response a;
    kafka_broker_heartbeat_response_init(&a);
    a.error_code = 77; /* STALE_BROKER_EPOCH: read whole, the broker would register again */
    assert_int_equal(kafka_broker_heartbeat_response_encode(&a, 0, &ans), 0);
    struct kafka_broker_registration_request rq;
    kafka_broker_registration_request_init(&rq);
    struct kafka_broker_registration_request_listener l;
    memset(&l, 0, sizeof(l));
    l.name = proto_str_make("PLAINTEXT");
    l.host = proto_str_make("10.0.0.9");
    l.port = 1;
    rq.broker_id = x->id;
    rq.cluster_id = proto_str_make(w->cluster_id);
    rq.incarnation_id.bytes[0] = 0xee;
    rq.listeners.items = &l;
    rq.listeners.count = 1;
    assert_int_equal(kafka_broker_registration_request_encode(&rq, 0, &reg), 0);
    int64_t applied = meta_node_applied(c->mn);

    for (size_t len = 0; len < hb.len; len++) {
        /* Each in its own heap copy, so ASan sees a read past the truncated end. */
        uint8_t *p = malloc(len + 1);
        memcpy(p, hb.data, len);
        struct wire_rpc r = {.from = x->id,
                             .to = c->id,
                             .kind = WIRE_RPC_REQUEST,
                             .correlation_id = 1000000 + (int64_t)len,
                             .api_key = API_BROKER_HEARTBEAT,
                             .api_version = 0,
                             .payload = slice_make(p, len)};
        assert_true(meta_node_on_rpc(c->mn, &r));
        /* The same over the network, through the transport's framing. */
        r.from = x->id;
        assert_int_equal(transport_send_rpc(x->t, &r), 0);
        free(p);
    }
    for (size_t len = 0; len < ans.len; len++) {
        uint8_t *p = malloc(len + 1);
        memcpy(p, ans.data, len);
        struct wire_rpc r = {.from = c->id,
                             .to = x->id,
                             .kind = WIRE_RPC_RESPONSE,
                             .correlation_id = c->last_corr[x->id], /* the one x awaits */
                             .api_key = API_BROKER_HEARTBEAT,
                             .api_version = 0,
                             .payload = slice_make(p, len)};
        assert_true(meta_node_on_rpc(x->mn, &r));
        free(p);
    }
    for (size_t len = 0; len < reg.len; len++) {
        uint8_t *p = malloc(len + 1);
        memcpy(p, reg.data, len);
        struct wire_rpc r = {.from = x->id,
                             .to = c->id,
                             .kind = WIRE_RPC_REQUEST,
                             .correlation_id = 2000000 + (int64_t)len,
                             .api_key = API_BROKER_REGISTRATION,
                             .api_version = 0,
                             .payload = slice_make(p, len)};
        assert_true(meta_node_on_rpc(c->mn, &r));
        free(p);
    }
    buf_deinit(&hb);
    buf_deinit(&ans);
    buf_deinit(&reg);
    /* Nothing of it was acted on: no record proposed, no broker fenced or re-registered. */
    assert_true(meta_node_unfenced(x->mn));
    for (uint64_t t = 0; t < 2 * SESSION_MS; t += SUB_MS) {
        step(w);
        for (int i = 0; i < w->count; i++)
            assert_true(meta_node_unfenced(w->n[i].mn));
    }
    assert_true(settled(w, NULL));
    assert_int_equal(meta_node_applied(c->mn), applied);
    assert_int_equal(meta_broker_find(c->img, x->id)->epoch, q.broker_epoch);
    world_destroy(w);
}

/* ---- 7. a lossy network ------------------------------------------------------------------ */

/* Catches: a registration or heartbeat lost, duplicated or reordered that leaves a broker
 * unregistered or fenced for good, a duplicated registration answered with another epoch, and
 * images that part ways under retransmission. */
static void test_lossy_network(void **state)
{
    (void)state;
    struct world *w = world_create(3, "meta_node_lossy", 20261216);
    struct sim_net_options faults = {.delay_ms_min = 1,
                                     .delay_ms_max = 40,
                                     .drop_ppm = 50000,
                                     .duplicate_ppm = 30000,
                                     .reorder = true};
    assert_int_equal(sim_net_set_faults(w->net, &faults), 0);
    settle(w);
    for (int k = 0; k < 8; k++) {
        char name[16];
        snprintf(name, sizeof(name), "lossy-%d", k);
        struct node *c = controller(w);
        struct op o;
        assert_non_null(c);
        assert_int_equal(submit(c, &o, name, 1 + k % 3), 0);
        wait_for(w, op_finished, &o, 10000, "a topic on a lossy network");
        if (o.err != 0) /* leadership lost meanwhile: ERR_STATE, said so */
            assert_int_equal(o.err, ERR_STATE);
        /* Now and then a node is cut off for a while, or crashes and comes back. */
        int32_t side[1] = {(int32_t)rng_range(&w->rng, 1, 3)};
        if (k % 3 == 1) {
            sim_net_partition(w->net, side, 1);
            run_ms(w, rng_range(&w->rng, 100, 3 * SESSION_MS));
            sim_net_heal(w->net);
        } else if (k % 3 == 2) {
            struct node *n = node_by_id(w, side[0]);
            node_stop(w, n, true, NULL);
            run_ms(w, rng_range(&w->rng, 100, 3 * SESSION_MS));
            node_start(w, n);
        }
        settle(w);
    }
    world_destroy(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_voter),     cmocka_unit_test(test_three_voters),
        cmocka_unit_test(test_fencing),       cmocka_unit_test(test_controlled_shutdown),
        cmocka_unit_test(test_failover),      cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_malformed_rpc), cmocka_unit_test(test_lossy_network),
        cmocka_unit_test(test_producer_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
