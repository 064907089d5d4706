/*
 * bench_raft_idle: what idle replicated partitions cost. Three Raft hosts (one per simulated
 * node, all in this process) share N groups of three voters, as N partitions with replication
 * factor 3 on 3 brokers: logs on simulated in-memory disks, a simulated network (1-2 ms one-way),
 * the broker's timing (a 50 ms tick, heartbeat every 2 ticks, election timeout 6 ticks). It
 * elects every group, commits one record in each, lets the cluster sit idle, then measures for
 * --seconds of simulated time: CPU per node (this process's CPU divided by 3: hosts, encoding
 * and decoding of every frame; the simulated network's own bookkeeping included), messages and
 * frames sent per node per second, raft_tick calls per node per second. Then it kills node 0
 * (a crash: its frames in flight are lost) and reports, over the groups it led, the simulated
 * time until another node leads each (median, p99, max).
 *
 *   bench_raft_idle [--groups N] [--seconds S] [--seed K]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/rand.h"
#include "cluster/raft_host.h"
#include "cluster/sim_net.h"
#include "io/io.h"
#include "io/io_sim.h"
#include "log/batch.h"
#include "log/log.h"

#define NODES           3
#define TICK_MS         50
#define SUBSTEP_MS      5
#define ELECTION_TICKS  6
#define HEARTBEAT_TICKS 2

struct node {
    bool up;
    struct io *io;
    struct log_files *files;
    struct log_flusher *fl;
    struct log **logs;
    struct raft_group **g;
    struct raft_host *host;
    struct transport *t;
};

static struct node nodes[NODES];
static struct sim_net *net;
static struct clock_sim clk;
static uint64_t now_ms;
static int groups = 10000;

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct wire_group group_id(int k)
{
    struct wire_group id = {.partition = k};
    id.topic_id.bytes[0] = 0x62;
    id.topic_id.bytes[15] = 0x02;
    return id;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_raft_idle: %s: %s\n", what, err_str(rc));
    exit(1);
}

static void node_start(int i, struct rng *rng)
{
    struct node *n = &nodes[i];
    struct log_config cfg;
    struct transport_handler h;
    int rc;

    n->io = io_sim_create();
    n->files = log_files_create(n->io, 64);
    n->fl = log_flusher_create(false);
    n->logs = calloc((size_t)groups, sizeof(*n->logs));
    n->g = calloc((size_t)groups, sizeof(*n->g));
    struct log_env env = {.io = n->io, .clock = &clk.clock, .files = n->files, .flusher = n->fl};
    struct raft_host_options ho = {.self = i, .io = n->io, .clock = &clk.clock, .state_dir = "/"};
    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    rc = raft_host_create(&ho, &n->host);
    if (rc != 0)
        die("raft_host_create", rc);
    for (int k = 0; k < groups; k++) {
        char dir[32];
        snprintf(dir, sizeof(dir), "/g%d", k);
        rc = log_open(&env, dir, &cfg, &n->logs[k]);
        if (rc != 0)
            die("log_open", rc);
        struct raft_group_options go = {
            .group = group_id(k),
            .log = n->logs[k],
            .config = {.ids = {0, 1, 2}, .voter = {1, 1, 1}, .count = NODES, .index = -1},
            .election_ticks = ELECTION_TICKS,
            .heartbeat_ticks = HEARTBEAT_TICKS,
            .seed = rng_next(rng),
            .applied_index = -1};
        rc = raft_group_open(n->host, &go, &n->g[k]);
        if (rc != 0)
            die("raft_group_open", rc);
    }
    raft_host_handler(n->host, &h);
    rc = sim_net_attach(net, i, &h, &n->t);
    if (rc != 0)
        die("sim_net_attach", rc);
    for (int p = 0; p < NODES; p++)
        if (p != i && (rc = transport_peer_set(n->t, p, "sim", 0)) != 0)
            die("peer_set", rc);
    raft_host_set_transport(n->host, n->t);
    n->up = true;
}

/* A crash: the process is gone, with its frames in flight. */
static void node_kill(int i)
{
    struct node *n = &nodes[i];
    for (int k = 0; k < groups; k++)
        raft_group_close(n->g[k]);
    raft_host_destroy(n->host);
    sim_net_detach(net, i);
    for (int k = 0; k < groups; k++)
        log_abandon(n->logs[k]);
    log_flusher_destroy(n->fl);
    log_files_destroy(n->files);
    io_destroy(n->io);
    free(n->logs);
    free(n->g);
    n->up = false;
}

/* SUBSTEP_MS of simulated time: a tick every TICK_MS, frames delivered, loops ended. */
static void step(void)
{
    now_ms += SUBSTEP_MS;
    clock_sim_advance_ms(&clk, SUBSTEP_MS);
    for (int i = 0; i < NODES; i++) {
        struct node *n = &nodes[i];
        if (!n->up)
            continue;
        log_flusher_run_pending(n->fl);
        log_flusher_drain(n->fl);
        if (now_ms % TICK_MS == (uint64_t)(i * 15 % TICK_MS)) /* each node at its own phase */
            raft_host_tick(n->host);
    }
    sim_net_advance(net, now_ms);
    for (int i = 0; i < NODES; i++)
        if (nodes[i].up) {
            raft_host_flush(nodes[i].host);
            transport_flush(nodes[i].t);
        }
}

static int leader_of(int k)
{
    int found = -1;
    int64_t term = -1;
    for (int i = 0; i < NODES; i++)
        if (nodes[i].up && raft_group_is_leader(nodes[i].g[k]) &&
            raft_group_core(nodes[i].g[k])->term > term) {
            found = i;
            term = raft_group_core(nodes[i].g[k])->term;
        }
    return found;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    double seconds = 10;
    uint64_t seed = 1;
    struct rng rng;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--groups") == 0)
            groups = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[i + 1], NULL, 10);
    }
    if (groups <= 0 || seconds <= 0) {
        fprintf(stderr, "usage: bench_raft_idle [--groups N] [--seconds S] [--seed K]\n");
        return 2;
    }
    rng_seed(&rng, seed);
    clock_sim_init(&clk, 1700000000000);
    struct sim_net_options no = {.seed = seed, .delay_ms_min = 1, .delay_ms_max = 2};
    int rc = sim_net_create(&no, &net);
    if (rc != 0)
        die("sim_net_create", rc);
    for (int i = 0; i < NODES; i++)
        node_start(i, &rng);

    /* Elect every group and commit one record in each. */
    struct buf rec_buf;
    struct batch_record rec = {.value = slice_make("x", 1), .timestamp_ms = 1};
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    buf_init(&rec_buf);
    char *proposed = calloc((size_t)groups, 1);
    int done = 0;
    while (done < groups && now_ms < 120000) {
        step();
        done = 0;
        for (int k = 0; k < groups; k++) {
            int l = leader_of(k);
            if (l < 0)
                continue;
            if (!proposed[k] && raft_group_leader_ready(nodes[l].g[k])) {
                int64_t off, term;
                buf_reset(&rec_buf);
                if (batch_build(&rec_buf, &opts, &rec, 1) == 0 &&
                    raft_group_propose(nodes[l].g[k], rec_buf.data, rec_buf.len, NULL, NULL, NULL,
                                       &off, &term) == 0)
                    proposed[k] = 1;
            }
            bool all = proposed[k] != 0;
            for (int i = 0; i < NODES && all; i++)
                all = raft_group_commit(nodes[i].g[k]) == log_end_offset(nodes[l].logs[k]) - 1;
            done += all;
        }
    }
    if (done < groups) {
        fprintf(stderr, "bench_raft_idle: only %d of %d groups committed\n", done, groups);
        return 1;
    }
    /* Idle for a while (whatever settles after the last commit), then measure. */
    for (int s = 0; s < 2000 / SUBSTEP_MS; s++)
        step();
    struct raft_host_stats h0[NODES], h1[NODES];
    struct sim_net_stats n0, n1;
    for (int i = 0; i < NODES; i++)
        raft_host_stats(nodes[i].host, &h0[i]);
    sim_net_stats(net, &n0);
    double c0 = cpu_s();
    uint64_t steps = (uint64_t)(seconds * 1000 / SUBSTEP_MS);
    for (uint64_t s = 0; s < steps; s++)
        step();
    double cpu = cpu_s() - c0;
    sim_net_stats(net, &n1);
    uint64_t sent = 0, recv = 0, ticks = 0, hb = 0, live = 0;
    for (int i = 0; i < NODES; i++) {
        raft_host_stats(nodes[i].host, &h1[i]);
        sent += h1[i].msgs_sent - h0[i].msgs_sent;
        recv += h1[i].msgs_received - h0[i].msgs_received;
        ticks += h1[i].group_ticks - h0[i].group_ticks;
        hb += h1[i].msgs_sent_by_type[RAFT_MSG_HEARTBEAT] -
              h0[i].msgs_sent_by_type[RAFT_MSG_HEARTBEAT];
        live += h1[i].liveness_sent - h0[i].liveness_sent;
    }
    double per = NODES * seconds;
    printf("bench_raft_idle: %d groups x %d nodes, idle %.0f s simulated: per node %.2f%% of a "
           "core (%.3f s CPU per simulated s), %.0f msgs/s sent (%.0f heartbeats/s), %.0f msgs/s "
           "received, %.0f liveness msgs/s sent, %.0f frames/s sent, %.0f raft_tick/s\n",
           groups, NODES, seconds, 100.0 * cpu / per, cpu / per, (double)sent / per,
           (double)hb / per, (double)recv / per, (double)live / per,
           (double)(n1.frames_sent - n0.frames_sent) / per, (double)ticks / per);

    /* Fail-over: kill node 0; how long until each group it led has another leader. */
    uint64_t *took = calloc((size_t)groups, sizeof(*took));
    int *led = calloc((size_t)groups, sizeof(*led));
    int count = 0, pending = 0;
    for (int k = 0; k < groups; k++) {
        led[k] = leader_of(k) == 0;
        count += led[k];
    }
    uint64_t killed_at = now_ms;
    node_kill(0);
    pending = count;
    while (pending > 0 && now_ms - killed_at < 60000) {
        step();
        for (int k = 0; k < groups; k++) {
            if (led[k] != 1 || leader_of(k) < 0)
                continue;
            led[k] = 2;
            took[pending - 1] = now_ms - killed_at;
            pending--;
        }
    }
    if (count > 0 && pending == 0) {
        qsort(took, (size_t)count, sizeof(*took), cmp_u64);
        printf("bench_raft_idle: fail-over of the %d groups node 0 led: median %" PRIu64
               " ms, p99 %" PRIu64 " ms, max %" PRIu64 " ms (simulated)\n",
               count, took[count / 2], took[(size_t)count * 99 / 100], took[count - 1]);
    } else {
        printf("bench_raft_idle: fail-over: %d of %d groups without a leader after 60 s\n", pending,
               count);
    }
    for (int i = 1; i < NODES; i++)
        node_kill(i);
    sim_net_destroy(net);
    free(took);
    free(led);
    free(proposed);
    buf_deinit(&rec_buf);
    return count > 0 && pending == 0 ? 0 : 1;
}
