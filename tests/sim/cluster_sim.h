/*
 * The whole-cluster simulator (issue 12, stages 1 to 4; stage 5, whole brokers, is
 * broker_sim.h's, with these options and results): N complete nodes in one process, each a
 * real Raft host (cluster/raft_host.h) with several partition replicas (cluster/replica.h, the
 * layer the broker's Produce and Fetch use) over real partition logs and the metadata group
 * (cluster/meta_node.h) over its metadata log on its own simulated disk (io_sim), all talking
 * over one simulated network (sim_net), on one simulated clock, every choice drawn from one
 * seeded PRNG, so a seed replays exactly.
 *
 * It owns everything of one run: csim_run() builds the nodes, the network, the clients and the
 * record of what was committed and acknowledged, and frees them before it returns.
 */
#ifndef CHRONIK_TESTS_SIM_CLUSTER_SIM_H
#define CHRONIK_TESTS_SIM_CLUSTER_SIM_H

#include <stdbool.h>
#include <stdint.h>

struct csim_options {
    uint64_t seed;
    uint64_t time_ms;   /* simulated milliseconds of the fault phase */
    int nodes;          /* 3 or 5 */
    bool trace;         /* print the event trace as it happens */
    bool trace_on_fail; /* print the last events when an invariant fails */
    bool end_to_end;    /* skip the host-promise checks at the wire: only what clients see */
    bool reorder;       /* a power loss may land unsynced writes out of order (io_sim_crash_torn) */
    bool no_idempotence; /* stage 5: clients without their idempotent producers (a named seed
                          * found before them replays its schedule) */
};

struct csim_result {
    bool failed;
    bool liveness; /* the failure is a missed liveness bound, not a safety violation */
    char why[256];
    uint64_t steps;        /* events processed, each followed by the continuous checks */
    uint64_t proposed;     /* batches a leader accepted */
    uint64_t acked;        /* batches acknowledged (the replica's wait completed with 0) */
    uint64_t acked_leader; /* of those, acks=1 (durable on the leader only) */
    uint64_t refused;      /* acks=all refused before appending: ISR below min.insync.replicas */
    uint64_t fetched;      /* batches consumers read below a high watermark */
    uint64_t elections;    /* a node became leader of a group */
    uint64_t crashes;      /* process crashes (page cache survives) and single-node power losses */
    uint64_t power_losses; /* all nodes at once */
    uint64_t disk_errors;  /* injected EIO/ENOSPC that stopped a group */
    uint64_t disk_fulls;   /* a node's disk filled up (until its process exits) */
    uint64_t stops;        /* clean shutdowns (then restarts), controlled ones included */
    uint64_t handovers;    /* controlled shutdowns: leaderships handed over, then a stop */
    uint64_t transfers;    /* leadership transfers started (raft_group_transfer) */
    uint64_t clock_jumps;  /* a node's monotonic clock forward, its wall clock either way */
    uint64_t stalls;       /* a node's process did nothing for a while (its clock ran on) */
    uint64_t partitions;   /* symmetric, one-way and leader isolations */
    uint64_t compactions;  /* committed prefixes dropped (raft_group_compact, retention) */
    uint64_t peer_wakes;   /* quiesced groups woken because a node went silent */
    uint64_t snapshots;    /* followers below their leader's log start that installed one */
    uint64_t deletes;      /* log-start markers (DeleteRecords) committed and answered */
};

/* Runs one seed. Returns 0 when every invariant and liveness bound held. */
int csim_run(const struct csim_options *o, struct csim_result *res);

#endif
