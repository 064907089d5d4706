/*
 * The real loop: an epoll reactor (level-triggered), a binary min-heap of timers, and an
 * eventfd for tasks posted from other threads.
 *
 * Ownership: the caller allocates struct loop_epoll, calls loop_epoll_init, uses &l->loop
 * through net/loop.h, and calls loop_epoll_deinit after every fd watch was stopped. Timers
 * still active then are forgotten without being touched (their memory may already be freed),
 * and tasks posted but not yet run are dropped, never run.
 * Fields are private to loop_epoll.c.
 */
#ifndef CHRONIK_NET_LOOP_EPOLL_H
#define CHRONIK_NET_LOOP_EPOLL_H

#include "base/limits.h"
#include "net/loop.h"

#include <pthread.h>
#include <sys/epoll.h>

struct loop_epoll {
    struct loop loop;
    int epoll_fd;
    /* The events of the current wait, kept so that stopping a watch can forget its events. */
    struct epoll_event events[NET_LOOP_EVENTS_MAX];
    int events_len;
    struct loop_timer **heap; /* min-heap on (deadline_ns, seq) */
    uint32_t heap_len;
    uint32_t heap_cap;
    uint64_t timer_seq_next;
    struct loop_event wake;
    pthread_mutex_t post_lock;
    struct loop_task *post_head; /* FIFO of posted tasks, guarded by post_lock */
    struct loop_task *post_tail;
};

/* clock is borrowed and must outlive the loop. 0 or -errno. */
int loop_epoll_init(struct loop_epoll *l, struct clock *clock);
void loop_epoll_deinit(struct loop_epoll *l);

#endif
