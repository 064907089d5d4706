/*
 * The deterministic Raft simulator: many groups on many nodes in one process, driven by one
 * seeded PRNG, with a faulty network (delay, reorder, drop, duplicate, symmetric and one-way
 * partitions), crashes that lose everything not fsynced, and invariant checks after every
 * step.
 *
 * It owns every node, log, message and client record of one run; sim_run() allocates them and
 * frees them before it returns. Nothing here is shared between runs, so runs are independent
 * and a seed replays exactly.
 */
#ifndef CHRONIK_TESTS_SIM_SIM_H
#define CHRONIK_TESTS_SIM_SIM_H

#include <stdbool.h>
#include <stdint.h>

/* Fault profiles. A seed draws one (SIM_PROFILE_MIX) unless the run forces it. */
enum sim_profile {
    SIM_PROFILE_MIX,
    SIM_PROFILE_NORMAL,
    SIM_PROFILE_CHAOS,
    SIM_PROFILE_FIGURE8,
    SIM_PROFILE_LEASE,
};

struct sim_options {
    uint64_t seed;
    int profile;        /* enum sim_profile */
    uint64_t time_max;  /* simulated time units with faults (a tick is SIM_TICK_UNITS) */
    bool trace;         /* print the event trace as it happens */
    bool trace_on_fail; /* print the last events when an invariant fails */
    /* Idle groups quiesce (raft_options.quiesce); the simulator plays the host's per-node
     * liveness: a liveness message per peer per tick, raft_wake() on a peer unheard for an
     * election timeout. Off, seeds replay as before. */
    bool quiesce;
};

struct sim_result {
    bool failed;
    bool liveness;  /* the failure is a missed liveness bound, not a safety violation */
    char why[256];  /* the violated invariant, when failed */
    uint64_t steps; /* events processed, each followed by an invariant check */
    uint64_t acked; /* client proposals acknowledged */
    uint64_t elections;
    uint64_t crashes;
    uint64_t snapshots;
    uint64_t changes;
    uint64_t transfers;
    uint64_t reads;
    /* A follower still bound by a lease promise learnt a higher term from a candidate's
     * message: the moment a voter may be tempted to break the promise (issue 8 item 15). */
    uint64_t lease_bumps;
    uint64_t wakes;       /* quiesced groups woken because a node went silent (quiesce runs) */
    uint64_t quiet_ticks; /* group ticks that found the group quiesced */
};

/* The profile named s, or -1. */
int sim_profile_parse(const char *s);

/* Runs one seed. Returns 0 when every invariant and liveness bound held. */
int sim_run(const struct sim_options *o, struct sim_result *res);

#endif
