/*
 * What the simulators share (sim.c, the Raft core's; cluster_sim.c over replicas; broker_sim.c
 * over whole brokers): the ring of a run's last trace lines and its first failure, and, for the
 * last two, a node's clock: the run's simulated clock moved by the jumps the faults give that
 * node.
 *
 * A struct sim_trace belongs to one run; it holds the last SIM_TRACE_RING lines (each cut at
 * SIM_TRACE_BYTES); a run keeps only its first failure's reason.
 */
#ifndef CHRONIK_TESTS_SIM_SIM_TRACE_H
#define CHRONIK_TESTS_SIM_SIM_TRACE_H

#include "base/clock.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_TRACE_RING  64u
#define SIM_TRACE_BYTES 200u

struct sim_trace {
    char lines[SIM_TRACE_RING][SIM_TRACE_BYTES];
    uint64_t count;
    bool echo; /* print every line as it comes (--trace) */
};

/* Adds a line stamped with the simulated time now. */
void sim_trace_line(struct sim_trace *t, uint64_t now, const char *fmt, va_list ap);
/* Records a failure (*failed set, its reason in why, traced as a VIOLATION line) unless one
 * was recorded already; true when this one was. */
bool sim_trace_fail(struct sim_trace *t, uint64_t now, bool *failed, char *why, size_t why_size,
                    const char *fmt, va_list ap);
/* Prints the lines still in the ring, oldest first. */
void sim_trace_print(const struct sim_trace *t);

/* A node's clock: base shifted by the node's own jumps (the faults add to the skews). */
struct sim_node_clock {
    struct clock clock;
    struct clock *base;
    uint64_t mono_skew_ns;
    int64_t wall_skew_ms;
};

void sim_node_clock_init(struct sim_node_clock *k, struct clock *base);

#endif
