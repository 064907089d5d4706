/*
 * raft_sim: runs the Raft simulator over a range of seeds (or replays one) and prints a
 * summary. It owns nothing beyond one run at a time.
 *
 *   raft_sim [--seeds N] [--first S] [--seed S] [--time UNITS] [--profile P] [--quiesce]
 *            [--trace] [--expect-violation]
 *
 * --seed S (or the environment variable RAFT_SIM_SEED) replays one seed, printing its trace
 * on failure (--trace prints it as it runs). --expect-violation inverts the verdict: the run
 * succeeds only if some seed breaks an invariant (used with the deliberately buggy cores); it
 * stops at the first violation unless --all asks to count them over every seed. --progress
 * names each seed on stderr before running it (for a seed that dies on an assertion).
 * --profile forces one fault profile (mix, the default, lets each seed draw one). --quiesce
 * lets idle groups quiesce, the simulator playing the host's per-node liveness (sim.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/sim.h"

static uint64_t parse_u64(const char *s)
{
    return strtoull(s, NULL, 10);
}

int main(int argc, char **argv)
{
    struct sim_options o = {.time_max = 3000, .trace_on_fail = true};
    uint64_t seeds = 100, first = 1, failures = 0, steps = 0, acked = 0, elections = 0;
    uint64_t crashes = 0, snapshots = 0, changes = 0, transfers = 0, reads = 0, bumps = 0;
    uint64_t wakes = 0, quiet = 0;
    const char *env = getenv("RAFT_SIM_SEED");
    bool expect_violation = false, all = false, progress = false;
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
        } else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc &&
                   sim_profile_parse(argv[i + 1]) >= 0) {
            o.profile = sim_profile_parse(argv[++i]);
        } else if (strcmp(argv[i], "--time") == 0 && i + 1 < argc) {
            o.time_max = parse_u64(argv[++i]);
        } else if (strcmp(argv[i], "--trace") == 0) {
            o.trace = true;
        } else if (strcmp(argv[i], "--quiesce") == 0) {
            o.quiesce = true;
        } else if (strcmp(argv[i], "--progress") == 0) {
            progress = true;
        } else if (strcmp(argv[i], "--all") == 0) {
            all = true;
        } else if (strcmp(argv[i], "--expect-violation") == 0) {
            expect_violation = true;
            o.trace_on_fail = false;
        } else {
            fprintf(stderr,
                    "usage: %s [--seeds N] [--first S] [--seed S] [--time UNITS] "
                    "[--profile mix|normal|chaos|figure8|lease] [--quiesce] [--trace] "
                    "[--expect-violation] [--all] [--progress]\n",
                    argv[0]);
            return 2;
        }
    }
    printf("raft_sim: seeds %" PRIu64 "..%" PRIu64 ", %" PRIu64 " time units each\n", first,
           first + seeds - 1, o.time_max);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t k = 0; k < seeds; k++) {
        struct sim_result r;

        o.seed = first + k;
        if (progress) {
            /* Before the run, so a seed that aborts on an assertion is still named. */
            fprintf(stderr, "seed %" PRIu64 "\n", o.seed);
        }
        if (sim_run(&o, &r) != 0 && !expect_violation) {
            failures++;
            printf("replay with: %s --seed %" PRIu64 "%s\n", argv[0], o.seed,
                   o.quiesce ? " --quiesce" : "");
        } else if (r.failed && !r.liveness) {
            /* A buggy core may also stall; only a safety violation proves the bite. */
            failures++;
            printf("seed %" PRIu64 " violation (expected): %s\n", o.seed, r.why);
            printf("replay with: %s --seed %" PRIu64 "%s\n", argv[0], o.seed,
                   o.quiesce ? " --quiesce" : "");
            if (!all)
                break;
        }
        steps += r.steps;
        acked += r.acked;
        elections += r.elections;
        crashes += r.crashes;
        snapshots += r.snapshots;
        changes += r.changes;
        transfers += r.transfers;
        reads += r.reads;
        bumps += r.lease_bumps;
        wakes += r.wakes;
        quiet += r.quiet_ticks;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("raft_sim: %" PRIu64 " failures; %" PRIu64 " steps, %" PRIu64 " acked, %" PRIu64
           " elections, %" PRIu64 " crashes, %" PRIu64 " snapshots, %" PRIu64
           " config changes, %" PRIu64 " transfers, %" PRIu64 " reads, %" PRIu64
           " lease bumps, %" PRIu64 " quiesced group ticks, %" PRIu64
           " quiesced groups woken by a silent node in %.1f s\n",
           failures, steps, acked, elections, crashes, snapshots, changes, transfers, reads, bumps,
           quiet, wakes, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    if (expect_violation)
        return failures > 0 ? 0 : 1;
    return failures == 0 ? 0 : 1;
}
