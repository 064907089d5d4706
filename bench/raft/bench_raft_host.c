/*
 * bench_raft_host: what hard state costs the Raft host when many groups start at once. Opens N
 * single-voter groups (their logs on a simulated, in-memory disk, so only hard state touches
 * the real one), then runs loop iterations (log flusher, tick, raft_host_flush) until every
 * group has elected itself, and prints the time to open, the time to elect, the longest
 * iteration (how long the loop was blocked) and the syncs of the hard state.
 *
 *   bench_raft_host [--groups N] [--dir PATH]
 *
 * PATH (default: a new directory under /tmp, removed afterwards) holds the hard state: use a
 * directory on the disk being measured. Built with -DBENCH_PER_GROUP_FILES against the host
 * before the journal (one file per group) it measures that one instead.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "cluster/raft_host.h"
#include "io/io.h"
#include "io/io_sim.h"
#include "log/log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct wire_group group_id(int k)
{
    struct wire_group id = {.partition = k};
    id.topic_id.bytes[0] = 0x62;
    id.topic_id.bytes[15] = 0x01;
    return id;
}

struct cleanup {
    struct io *io;
    const char *dir;
};

static int remove_entry(void *ctx, const char *name)
{
    struct cleanup *c = ctx;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", c->dir, name);
    (void)io_remove(c->io, path);
    return 0;
}

int main(int argc, char **argv)
{
    int groups = 10000;
    char dir[4096] = "";
    bool own_dir = false;
    int rc;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--groups") == 0)
            groups = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--dir") == 0)
            snprintf(dir, sizeof(dir), "%s", argv[i + 1]);
    }
    if (groups <= 0) {
        fprintf(stderr, "usage: bench_raft_host [--groups N] [--dir PATH]\n");
        return 2;
    }
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/tmp/bench_raft_host.XXXXXX");
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        own_dir = true;
    }

    struct io *io = io_posix_create();
    struct io *io_log = io_sim_create();
    struct log_files *files = log_files_create(io_log, 64);
    struct log_flusher *fl = log_flusher_create(false);
    struct log_env env = {.io = io_log, .clock = clock_real(), .files = files, .flusher = fl};
    struct log_config cfg;
    struct log **logs = calloc((size_t)groups, sizeof(*logs));
    struct raft_group **g = calloc((size_t)groups, sizeof(*g));
    struct raft_host *host;
    struct raft_host_stats st;

    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    for (int k = 0; k < groups; k++) {
        char path[32];
        snprintf(path, sizeof(path), "/g%d", k);
        rc = log_open(&env, path, &cfg, &logs[k]);
        if (rc != 0) {
            fprintf(stderr, "log_open: %s\n", err_str(rc));
            return 1;
        }
    }
    struct raft_host_options ho = {.self = 1, .io = io, .clock = clock_real(), .state_dir = dir};
    double t0 = now_s();
    rc = raft_host_create(&ho, &host);
    if (rc != 0) {
        fprintf(stderr, "raft_host_create: %s\n", err_str(rc));
        return 1;
    }
    for (int k = 0; k < groups; k++) {
        struct raft_group_options go = {
            .group = group_id(k),
            .log = logs[k],
            .config = {.ids = {1}, .voter = {1}, .count = 1, .index = -1},
            .seed = (uint64_t)k + 1,
            .applied_index = -1};
        rc = raft_group_open(host, &go, &g[k]);
        if (rc != 0) {
            fprintf(stderr, "raft_group_open: %s\n", err_str(rc));
            return 1;
        }
    }
    double t_open = now_s() - t0, worst = 0;
    int iterations = 0, leaders = 0;

    t0 = now_s();
    while (leaders < groups && iterations < 1000) {
        double i0 = now_s();
        log_flusher_run_pending(fl);
        log_flusher_drain(fl);
        raft_host_tick(host);
#ifndef BENCH_PER_GROUP_FILES
        raft_host_flush(host);
#endif
        double took = now_s() - i0;
        worst = took > worst ? took : worst;
        iterations++;
        leaders = 0;
        for (int k = 0; k < groups; k++)
            leaders += raft_group_is_leader(g[k]);
    }
    double t_elect = now_s() - t0;
    raft_host_stats(host, &st);
#ifdef BENCH_PER_GROUP_FILES
    const char *kind = "per-group files";
    uint64_t syncs = 2 * st.hard_state_writes; /* file and directory per write */
#else
    const char *kind = "journal";
    uint64_t syncs = st.hard_state_syncs;
#endif
    printf("bench_raft_host (%s, %s): %d groups: open %.3f s, elect %.3f s in %d iterations "
           "(longest %.3f s), %" PRIu64 " hard-state writes, %" PRIu64 " syncs, %d leaders\n",
           kind, dir, groups, t_open, t_elect, iterations, worst, st.hard_state_writes, syncs,
           leaders);

    for (int k = 0; k < groups; k++) {
        raft_group_close(g[k]);
        log_close(logs[k]);
    }
    raft_host_destroy(host);
    log_flusher_destroy(fl);
    log_files_destroy(files);
    io_destroy(io_log);
    if (own_dir) {
        struct cleanup c = {.io = io, .dir = dir};
        (void)io_list_dir(io, dir, remove_entry, &c);
        io_rmdir(io, dir);
    }
    io_destroy(io);
    free(logs);
    free(g);
    return leaders == groups ? 0 : 1;
}
