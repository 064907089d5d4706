/*
 * A deterministic event loop for the simulator (net/loop.h's operations, no epoll): the whole
 * broker runs on it in the simulator's thread, on the node's simulated clock.
 *
 * Owns the lists of watched fds, active timers and posted tasks; never the watches themselves.
 * One iteration (loop_run_once, which never blocks whatever timeout it is given): the fds
 * watched for reading that poll ready now (the eventfds the flusher and the opener signal from
 * the loop's own thread in the simulator; the cluster transport and the listener are not
 * fds there), then every timer due by the clock in (deadline, start order) order, then the tasks
 * posted before the iteration started, in order. Timers and tasks added meanwhile wait for the
 * next iteration, as net/loop.h promises. Freeing it drops whatever is still queued: a crashed
 * broker's timers and tasks go with it.
 */
#ifndef CHRONIK_TESTS_SIM_SIM_LOOP_H
#define CHRONIK_TESTS_SIM_SIM_LOOP_H

#include "net/loop.h"

#include <stdint.h>

struct sim_loop;

struct sim_loop *sim_loop_create(struct clock *clock);
void sim_loop_destroy(struct sim_loop *l);
struct loop *sim_loop_base(struct sim_loop *l);
/* The earliest active timer's deadline in the loop's clock, or UINT64_MAX. */
uint64_t sim_loop_next_ns(const struct sim_loop *l);
/* Whether a task is posted (another iteration has work without waiting for time). */
bool sim_loop_busy(const struct sim_loop *l);

#endif
