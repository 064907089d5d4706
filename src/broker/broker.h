/*
 * The broker: one node serving the Kafka protocol. It owns the event loop, the Kafka listener,
 * the metadata image, the partition replicas and the log's flusher, and wires them together.
 *
 * Life cycle: broker_open() loads the metadata image, opens the group coordinator's partitions
 * and starts listening; the other partition logs open (and recover after a crash) on opener
 * threads in the background, each served once it is open. broker_run() serves until SIGTERM or
 * SIGINT (or broker_stop()), then shuts down cleanly: stops accepting, lets requests in flight
 * finish, waits for the last group commit, closes every log (writing their clean-shutdown
 * markers); broker_close() frees everything. The loop thread owns all state; the flusher thread
 * syncs and the opener threads open logs they then hand to the loop.
 */
#ifndef CHRONIK_BROKER_BROKER_H
#define CHRONIK_BROKER_BROKER_H

#include "broker/config.h"

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct clock;
struct io;
struct loop;
struct transport;
struct transport_handler;

/*
 * Tests only (the whole-cluster simulator, tests/sim/broker_sim.c): the broker runs alone in
 * the caller's thread and decides nothing by itself: on the caller's loop, over the caller's
 * cluster transport, with no socket at all (no Kafka listener, no cluster port: clients reach
 * it through broker_client_frame()), partition logs opened and deleted directories removed on
 * the loop thread (no opener or reaper thread), no signal handling, and every random choice
 * (cluster id, topic ids, Raft seeds) drawn from seed. With flush_manual, a seed replays.
 */
struct broker_sim {
    struct loop *loop; /* borrowed; outlives the broker */
    uint64_t seed;
    /* Gives the node's cluster transport, delivering to h; closed when the broker closes. */
    int (*transport_open)(void *ctx, const struct transport_handler *h, struct transport **out);
    void (*transport_close)(void *ctx, struct transport *t);
    void *ctx;
};

/* What the broker runs on: main.c passes the real filesystem and clock, a test a simulated
 * disk. Both are borrowed and must outlive the broker. */
struct broker_env {
    struct io *io;
    struct clock *clock;
    /* Tests only: syncs run when broker_flush_pending() is called, never in the background,
     * so a test decides what is durable when its simulated disk crashes. */
    bool flush_manual;
    /* Called once the node serves (listens for clients), from broker_open for a node alone in
     * its metadata group, later from the loop for a cluster's node; may be NULL. */
    void (*serving)(void *ctx);
    void *serving_ctx;
    const struct broker_sim *sim; /* NULL but in the simulator */
};

/* The config must outlive the broker. Errors are printed to stderr with their cause. */
int broker_open(const struct broker_config *cfg, const struct broker_env *env, struct broker **out);
/* Serves until a stop signal, then shuts down cleanly. 0 after a clean shutdown. */
int broker_run(struct broker *b);
/* Asks a running broker to shut down (loop thread only, e.g. from a test's timer). */
void broker_stop(struct broker *b);
void broker_close(struct broker *b);
/* Frees the broker the way a killed process leaves its data: no log is closed cleanly and no
 * clean-shutdown marker is written (syncs already queued still run). For crash tests. */
void broker_abandon(struct broker *b);
uint16_t broker_port(const struct broker *b);
/* The cluster id this node belongs to (its data directory's meta.properties), for the cluster
 * transport's hello. NUL-terminated, META_CLUSTER_ID_CHARS characters. */
const char *broker_cluster_id(const struct broker *b);
/* For tests that drive the loop themselves: one iteration (see loop_run_once). */
int broker_run_once(struct broker *b, int timeout_ms);
/* flush_manual only: performs every queued sync now; their completions (the acknowledgements
 * waiting for them) reach the loop on its next iteration. */
void broker_flush_pending(struct broker *b);
/* Whether every partition log has finished opening (opened or failed). */
bool broker_partitions_opened(const struct broker *b);

#endif
