/*
 * cluster_sim: runs the whole-cluster simulator over a range of seeds (or replays one) and prints
 * a summary whose last line reads like raft_sim's. It owns nothing beyond one run at a time.
 *
 *   cluster_sim [--seeds N] [--first S] [--seed S] [--time MS] [--nodes 3|5] [--trace]
 *               [--end-to-end] [--reorder] [--brokers] [--no-idempotence] [--expect-violation]
 *               [--all] [--progress]
 *
 * --seed S (or the environment variable CLUSTER_SIM_SEED) replays one seed, printing its last
 * events on failure (--trace prints every event as it runs). --time is the fault phase in
 * simulated milliseconds. --end-to-end leaves out the checks of the host's promises at the wire
 * (durability of what a message claims), keeping only what clients and logs show. --reorder lets
 * a power loss land unsynced writes out of order (a later one without an earlier one), which the
 * log's recovery does not accept yet (docs/raft.md, the cluster simulator's known limits).
 * --expect-violation inverts the verdict: the run succeeds only if some seed breaks a safety
 * invariant (used with the hosts built with an injected bug); it stops at the first violation
 * unless --all asks to count them over every seed. --progress names each seed on stderr before
 * running it (for a seed that dies on an assertion). --brokers runs stage 5 instead
 * (broker_sim.h): every node a whole broker, clients speaking Kafka to it (--no-idempotence
 * leaves out their idempotent producers, for seeds named before they existed, whose schedules
 * their requests would change); the brokers' own log
 * lines (peers lost and found again, about 16 a seed) go to stderr as they would to an
 * operator's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/broker_sim.h"
#include "sim/cluster_sim.h"

static uint64_t parse_u64(const char *s)
{
    return strtoull(s, NULL, 10);
}

int main(int argc, char **argv)
{
    struct csim_options o = {.time_ms = 10000, .nodes = 3, .trace_on_fail = true};
    uint64_t seeds = 20, first = 1, failures = 0, steps = 0, proposed = 0, acked = 0;
    uint64_t fetched = 0, elections = 0, crashes = 0, power = 0, disk = 0, parts = 0, compacts = 0;
    uint64_t fulls = 0, stops = 0, jumps = 0, stalls = 0, acked1 = 0, refused = 0, transfers = 0;
    uint64_t handovers = 0, wakes = 0, snaps = 0, deletes = 0;
    const char *env = getenv("CLUSTER_SIM_SEED");
    bool expect_violation = false, all = false, progress = false, brokers = false;
    struct timespec t0, t1;

    if (env != NULL && *env != '\0') {
        first = parse_u64(env);
        seeds = 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            seeds = parse_u64(argv[++i]);
        } else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc) {
            first = parse_u64(argv[++i]);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            first = parse_u64(argv[++i]);
            seeds = 1;
        } else if (strcmp(argv[i], "--time") == 0 && i + 1 < argc) {
            o.time_ms = parse_u64(argv[++i]);
        } else if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc &&
                   (strcmp(argv[i + 1], "3") == 0 || strcmp(argv[i + 1], "5") == 0)) {
            o.nodes = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--trace") == 0) {
            o.trace = true;
        } else if (strcmp(argv[i], "--end-to-end") == 0) {
            o.end_to_end = true;
        } else if (strcmp(argv[i], "--reorder") == 0) {
            o.reorder = true;
        } else if (strcmp(argv[i], "--progress") == 0) {
            progress = true;
        } else if (strcmp(argv[i], "--brokers") == 0) {
            brokers = true;
        } else if (strcmp(argv[i], "--no-idempotence") == 0) {
            o.no_idempotence = true;
        } else if (strcmp(argv[i], "--all") == 0) {
            all = true;
        } else if (strcmp(argv[i], "--expect-violation") == 0) {
            expect_violation = true;
            o.trace_on_fail = false;
        } else {
            fprintf(stderr,
                    "usage: %s [--seeds N] [--first S] [--seed S] [--time MS] [--nodes 3|5] "
                    "[--trace] [--end-to-end] [--reorder] [--brokers] [--no-idempotence] "
                    "[--expect-violation] [--all] [--progress]\n",
                    argv[0]);
            return 2;
        }
    }
    char flags[64];
    snprintf(flags, sizeof(flags), "%s%s%s%s", o.end_to_end ? " --end-to-end" : "",
             o.reorder ? " --reorder" : "", brokers ? " --brokers" : "",
             o.no_idempotence ? " --no-idempotence" : "");
    printf("cluster_sim: seeds %" PRIu64 "..%" PRIu64 ", %d nodes%s, %" PRIu64 " ms each\n", first,
           first + seeds - 1, o.nodes, brokers ? " (whole brokers)" : "", o.time_ms);
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t k = 0; k < seeds; k++) {
        struct csim_result r;

        o.seed = first + k;
        if (progress)
            fprintf(stderr, "seed %" PRIu64 "\n", o.seed);
        int rc = brokers ? bsim_run(&o, &r) : csim_run(&o, &r);
        steps += r.steps;
        proposed += r.proposed;
        acked += r.acked;
        fetched += r.fetched;
        elections += r.elections;
        crashes += r.crashes;
        power += r.power_losses;
        disk += r.disk_errors;
        parts += r.partitions;
        compacts += r.compactions;
        fulls += r.disk_fulls;
        stops += r.stops;
        jumps += r.clock_jumps;
        stalls += r.stalls;
        acked1 += r.acked_leader;
        refused += r.refused;
        transfers += r.transfers;
        handovers += r.handovers;
        wakes += r.peer_wakes;
        snaps += r.snapshots;
        deletes += r.deletes;
        if (rc != 0 && !expect_violation) {
            failures++;
            printf("replay with: %s --seed %" PRIu64 " --time %" PRIu64 " --nodes %d%s --trace\n",
                   argv[0], o.seed, o.time_ms, o.nodes, flags);
        } else if (r.failed && !r.liveness) {
            /* A buggy host may also stall; only a safety violation proves the bite. */
            failures++;
            printf("seed %" PRIu64 " violation (expected): %s\n", o.seed, r.why);
            printf("replay with: %s --seed %" PRIu64 " --time %" PRIu64 " --nodes %d%s --trace\n",
                   argv[0], o.seed, o.time_ms, o.nodes, flags);
            if (!all)
                break;
        }
        fflush(stdout);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("cluster_sim: %" PRIu64 " failures; %" PRIu64 " steps, %" PRIu64 " proposed, %" PRIu64
           " acked (%" PRIu64 " acks=1), %" PRIu64 " refused, %" PRIu64 " fetched, %" PRIu64
           " elections, %" PRIu64 " transfers, %" PRIu64 " crashes, %" PRIu64 " stops (%" PRIu64
           " controlled), %" PRIu64 " power losses, %" PRIu64 " disk errors, %" PRIu64
           " full disks, %" PRIu64 " clock jumps, %" PRIu64 " stalls, %" PRIu64
           " partitions, %" PRIu64 " compactions, %" PRIu64 " snapshots installed, %" PRIu64
           " log starts answered, %" PRIu64
           " quiesced groups woken by a silent node in %.1f s (%.0f steps/s)\n",
           failures, steps, proposed, acked, acked1, refused, fetched, elections, transfers,
           crashes, stops, handovers, power, disk, fulls, jumps, stalls, parts, compacts, snaps,
           deletes, wakes, secs, secs > 0 ? (double)steps / secs : 0.0);
    if (expect_violation)
        return failures > 0 ? 0 : 1;
    return failures == 0 ? 0 : 1;
}
