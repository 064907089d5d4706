/*
 * The event loop interface: fd readiness, timers, cross-thread wake-ups and signals.
 *
 * A struct loop is a table of operations plus a clock, so the broker can run on the epoll
 * reactor (net/loop_epoll.h) or on a substitute a test provides. Everything below is used from
 * the loop's own thread only, except loop_post() and loop_event_signal(), which any thread may
 * call at any time.
 *
 * Readiness is level-triggered: a callback is called again on the next iteration while its fd
 * stays ready and its interest stays set. So a callback may do a bounded amount of work (read a
 * bounded number of bytes, accept a bounded number of connections) and return, which keeps one
 * busy fd from starving the others; to stop being called it drops the interest.
 *
 * Timers have millisecond resolution, never fire early, and fire in deadline order; timers with
 * the same deadline fire in the order they were started. A repeating timer is rescheduled at
 * its previous deadline plus its period; if the loop fell behind by a whole period, the missed
 * ticks are dropped and the next one is a period after now. A timer started from a timer
 * callback with a zero delay fires on the next iteration, never in the same one, so a callback
 * cannot keep the loop in its timer phase forever. At most NET_TIMERS_MAX timers are active.
 *
 * Ownership: every watch object (struct loop_fd, loop_timer, loop_task, loop_event,
 * loop_signal) is allocated by its user, usually embedded in a larger struct; the loop only
 * links to it while it is active. Stop or deinit it before freeing its memory. Stopping from
 * inside any callback, including its own, is allowed: a stopped watch is never called again,
 * even if its fd was already reported ready in the current iteration.
 */
#ifndef CHRONIK_NET_LOOP_H
#define CHRONIK_NET_LOOP_H

#include "base/clock.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct loop;

/* Readiness bits. LOOP_ERROR (error or hang-up on the fd) is reported whatever the interest,
 * so a callback receiving it must stop the watch or close the fd, or it is called again. */
enum {
    LOOP_READ = 1u << 0,
    LOOP_WRITE = 1u << 1,
    LOOP_ERROR = 1u << 2,
};

typedef void (*loop_fd_fn)(void *ctx, uint32_t events);
typedef void (*loop_timer_fn)(void *ctx);
typedef void (*loop_task_fn)(void *ctx);

/* A watched fd. The loop does not own the fd and never closes it. */
struct loop_fd {
    int fd;
    uint32_t events; /* the current interest, LOOP_READ | LOOP_WRITE */
    bool active;
    loop_fd_fn fn;
    void *ctx;
};

/* A one-shot or repeating timer. Fields other than fn and ctx belong to the loop. */
struct loop_timer {
    uint64_t deadline_ns;
    uint64_t period_ns; /* 0 for a one-shot timer */
    uint64_t seq;       /* start order, to break deadline ties */
    uint32_t heap_index;
    loop_timer_fn fn;
    void *ctx;
};

/* A function to run on the loop's thread, posted from any thread. The poster owns the task and
 * must not post it again or free it until fn has started running. */
struct loop_task {
    struct loop_task *next;
    loop_task_fn fn;
    void *ctx;
};

/* The operations an implementation provides; callers use the loop_* wrappers below. */
struct loop_ops {
    int (*fd_start)(struct loop *loop, struct loop_fd *w, uint32_t events);
    int (*fd_update)(struct loop *loop, struct loop_fd *w, uint32_t events);
    void (*fd_stop)(struct loop *loop, struct loop_fd *w);
    int (*timer_start)(struct loop *loop, struct loop_timer *t, uint64_t delay_ms,
                       uint64_t period_ms);
    void (*timer_stop)(struct loop *loop, struct loop_timer *t);
    void (*post)(struct loop *loop, struct loop_task *task);
    int (*run_once)(struct loop *loop, int timeout_ms);
};

struct loop {
    const struct loop_ops *ops;
    struct clock *clock; /* borrowed; outlives the loop */
    bool stopping;
};

/* ---- fds -------------------------------------------------------------------------------- */

void loop_fd_init(struct loop_fd *w, int fd, loop_fd_fn fn, void *ctx);
/* Starts watching w->fd for events (LOOP_READ | LOOP_WRITE, possibly none). -errno on failure. */
static inline int loop_fd_start(struct loop *loop, struct loop_fd *w, uint32_t events)
{
    return loop->ops->fd_start(loop, w, events);
}
/* Changes the interest of an active watch; a no-op when it is unchanged. */
static inline int loop_fd_update(struct loop *loop, struct loop_fd *w, uint32_t events)
{
    return loop->ops->fd_update(loop, w, events);
}
/* Stops watching; a no-op on an inactive watch. Call it before closing the fd. */
static inline void loop_fd_stop(struct loop *loop, struct loop_fd *w)
{
    loop->ops->fd_stop(loop, w);
}

/* ---- timers ----------------------------------------------------------------------------- */

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *ctx);
/* Fires after delay_ms, then every period_ms if period_ms > 0. Restarts an active timer.
 * ERR_TOO_LARGE when NET_TIMERS_MAX timers are already active. */
static inline int loop_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms,
                                   uint64_t period_ms)
{
    return loop->ops->timer_start(loop, t, delay_ms, period_ms);
}
/* Cancels; a no-op on an inactive timer. */
static inline void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
    loop->ops->timer_stop(loop, t);
}
bool loop_timer_active(const struct loop_timer *t);

/* ---- cross-thread ----------------------------------------------------------------------- */

/* Runs task->fn(task->ctx) on the loop's thread soon, in posting order. Thread-safe. */
void loop_task_init(struct loop_task *task, loop_task_fn fn, void *ctx);
static inline void loop_post(struct loop *loop, struct loop_task *task)
{
    loop->ops->post(loop, task);
}

/*
 * An eventfd watched by the loop: any thread calls loop_event_signal(), and fn runs on the loop
 * with the number of signals since its previous run (signals coalesce). This is how another
 * thread (the log's flusher) hands completions back: it queues them in its own structure and
 * signals; fn drains the structure.
 */
typedef void (*loop_event_fn)(void *ctx, uint64_t count);
struct loop_event {
    struct loop_fd watch;
    loop_event_fn fn;
    void *ctx;
};
/* Creates the eventfd and starts watching it. -errno on failure (nothing to deinit then). */
int loop_event_init(struct loop *loop, struct loop_event *ev, loop_event_fn fn, void *ctx);
void loop_event_deinit(struct loop *loop, struct loop_event *ev);
/* Thread-safe and async-signal-safe. */
void loop_event_signal(struct loop_event *ev);

/* ---- signals ---------------------------------------------------------------------------- */

/*
 * Delivers the given signals to fn on the loop through a signalfd. loop_signal_init blocks
 * them in the calling thread; call it before starting other threads (they inherit the mask),
 * or a signal sent to the process may reach a thread that has them unblocked.
 * loop_signal_deinit restores the previous mask.
 */
typedef void (*loop_signal_fn)(void *ctx, int signo);
struct loop_signal {
    struct loop_fd watch;
    sigset_t mask;
    sigset_t mask_before;
    loop_signal_fn fn;
    void *ctx;
};
int loop_signal_init(struct loop *loop, struct loop_signal *s, const int *signos,
                     uint32_t signo_count, loop_signal_fn fn, void *ctx);
void loop_signal_deinit(struct loop *loop, struct loop_signal *s);

/* ---- running ---------------------------------------------------------------------------- */

/* One iteration: waits up to timeout_ms (-1: until something happens; the wait is cut short by
 * the next timer deadline), then runs ready fd callbacks and due timers. 0 or -errno. */
static inline int loop_run_once(struct loop *loop, int timeout_ms)
{
    return loop->ops->run_once(loop, timeout_ms);
}
/* Iterates until loop_stop() is called from a callback. 0 or the first -errno. */
int loop_run(struct loop *loop);
/* Makes loop_run() return after the current iteration. Loop thread only; from another thread,
 * post a task that calls it. */
void loop_stop(struct loop *loop);
static inline uint64_t loop_now_ns(struct loop *loop)
{
    return clock_mono_ns(loop->clock);
}

#endif
