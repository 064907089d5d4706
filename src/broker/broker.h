/*
 * The broker: one node serving the Kafka protocol. It owns the event loop, the Kafka listener,
 * the metadata image, the partition replicas and the log's flusher, and wires them together.
 *
 * Life cycle: broker_open() recovers the data directory (metadata image, every partition log)
 * and starts listening; broker_run() serves until SIGTERM or SIGINT (or broker_stop()), then
 * shuts down cleanly: stops accepting, lets requests in flight finish, waits for the last
 * group commit, closes every log (writing their clean-shutdown markers); broker_close() frees
 * everything. Single-threaded apart from the flusher thread.
 */
#ifndef CHRONIK_BROKER_BROKER_H
#define CHRONIK_BROKER_BROKER_H

#include "broker/config.h"

#include <stdint.h>

struct broker;

/* The config must outlive the broker. Errors are printed to stderr with their cause. */
int broker_open(const struct broker_config *cfg, struct broker **out);
/* Serves until a stop signal, then shuts down cleanly. 0 after a clean shutdown. */
int broker_run(struct broker *b);
/* Asks a running broker to shut down (loop thread only, e.g. from a test's timer). */
void broker_stop(struct broker *b);
void broker_close(struct broker *b);
uint16_t broker_port(const struct broker *b);

#endif
