/*
 * The simulator's loop (sim_loop.h). Lists are small (a broker has a handful of fds and timers
 * per partition), so they are plain arrays scanned per iteration.
 */
#include "sim/sim_loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/compiler.h"

struct sim_loop {
    struct loop loop;
    struct loop_fd **fds;
    uint32_t fd_count, fd_cap;
    struct loop_timer **timers;
    uint32_t timer_count, timer_cap;
    struct loop_task *head, *tail;
    uint64_t seq;
};

static struct sim_loop *from_loop(struct loop *loop)
{
    return CONTAINER_OF(loop, struct sim_loop, loop);
}

static int sl_fd_start(struct loop *loop, struct loop_fd *w, uint32_t events)
{
    struct sim_loop *l = from_loop(loop);
    if (w->active) {
        w->events = events;
        return 0;
    }
    if (l->fd_count == l->fd_cap) {
        l->fd_cap = l->fd_cap == 0 ? 8 : 2 * l->fd_cap;
        l->fds = xrealloc(l->fds, l->fd_cap * sizeof(*l->fds));
    }
    l->fds[l->fd_count++] = w;
    w->events = events;
    w->active = true;
    return 0;
}

static int sl_fd_update(struct loop *loop, struct loop_fd *w, uint32_t events)
{
    (void)loop;
    w->events = events;
    return 0;
}

static void sl_fd_stop(struct loop *loop, struct loop_fd *w)
{
    struct sim_loop *l = from_loop(loop);
    if (!w->active)
        return;
    for (uint32_t i = 0; i < l->fd_count; i++) {
        if (l->fds[i] == w) {
            l->fds[i] = l->fds[--l->fd_count];
            break;
        }
    }
    w->active = false;
}

static uint32_t timer_index(struct sim_loop *l, const struct loop_timer *t)
{
    for (uint32_t i = 0; i < l->timer_count; i++)
        if (l->timers[i] == t)
            return i;
    return UINT32_MAX;
}

static void sl_timer_stop(struct loop *loop, struct loop_timer *t)
{
    struct sim_loop *l = from_loop(loop);
    uint32_t i = timer_index(l, t);
    if (i != UINT32_MAX)
        l->timers[i] = l->timers[--l->timer_count];
    t->heap_index = UINT32_MAX;
}

static int sl_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms,
                          uint64_t period_ms)
{
    struct sim_loop *l = from_loop(loop);
    if (timer_index(l, t) == UINT32_MAX) {
        if (l->timer_count == l->timer_cap) {
            l->timer_cap = l->timer_cap == 0 ? 16 : 2 * l->timer_cap;
            l->timers = xrealloc(l->timers, l->timer_cap * sizeof(*l->timers));
        }
        l->timers[l->timer_count++] = t;
    }
    t->deadline_ns = loop_now_ns(loop) + delay_ms * 1000000u;
    t->period_ns = period_ms * 1000000u;
    t->seq = ++l->seq;
    t->heap_index = 0; /* loop_timer_active(): anything but UINT32_MAX */
    return 0;
}

static void sl_post(struct loop *loop, struct loop_task *task)
{
    struct sim_loop *l = from_loop(loop);
    task->next = NULL;
    if (l->tail != NULL)
        l->tail->next = task;
    else
        l->head = task;
    l->tail = task;
}

/* The due timer first in (deadline, start order) among those started before `before`. */
static struct loop_timer *first_due(struct sim_loop *l, uint64_t now, uint64_t before)
{
    struct loop_timer *best = NULL;
    for (uint32_t i = 0; i < l->timer_count; i++) {
        struct loop_timer *t = l->timers[i];
        if (t->deadline_ns > now || t->seq > before)
            continue;
        if (best == NULL || t->deadline_ns < best->deadline_ns ||
            (t->deadline_ns == best->deadline_ns && t->seq < best->seq))
            best = t;
    }
    return best;
}

static int sl_run_once(struct loop *loop, int timeout_ms)
{
    struct sim_loop *l = from_loop(loop);
    (void)timeout_ms;
    /* Fds: a snapshot, each checked still active before its call. */
    uint32_t n = l->fd_count;
    struct loop_fd *ready[16];
    uint32_t events[16];
    uint32_t count = 0;
    for (uint32_t i = 0; i < n && count < ARRAY_LEN(ready); i++) {
        struct pollfd p = {.fd = l->fds[i]->fd, .events = 0};
        if (l->fds[i]->events & LOOP_READ)
            p.events |= POLLIN;
        if (l->fds[i]->events & LOOP_WRITE)
            p.events |= POLLOUT;
        if (p.events == 0 || poll(&p, 1, 0) != 1)
            continue;
        ready[count] = l->fds[i];
        events[count++] = ((p.revents & POLLIN) ? LOOP_READ : 0) |
                          ((p.revents & POLLOUT) ? LOOP_WRITE : 0) |
                          ((p.revents & (POLLERR | POLLHUP)) ? LOOP_ERROR : 0);
    }
    for (uint32_t i = 0; i < count; i++) {
        bool still = false;
        for (uint32_t j = 0; j < l->fd_count && !still; j++)
            still = l->fds[j] == ready[i];
        if (still && ready[i]->active)
            ready[i]->fn(ready[i]->ctx, events[i]);
    }
    uint64_t now = loop_now_ns(loop);
    uint64_t before = l->seq;
    struct loop_timer *t;
    while ((t = first_due(l, now, before)) != NULL) {
        if (t->period_ns == 0) {
            sl_timer_stop(loop, t);
        } else {
            t->deadline_ns += t->period_ns;
            if (t->deadline_ns <= now)
                t->deadline_ns = now + t->period_ns;
            t->seq = ++l->seq;
        }
        t->fn(t->ctx);
    }
    struct loop_task *task = l->head;
    struct loop_task *last = l->tail;
    l->head = l->tail = NULL;
    while (task != NULL) {
        struct loop_task *next = task == last ? NULL : task->next;
        task->fn(task->ctx);
        task = next;
    }
    return 0;
}

static const struct loop_ops sim_loop_ops = {
    .fd_start = sl_fd_start,
    .fd_update = sl_fd_update,
    .fd_stop = sl_fd_stop,
    .timer_start = sl_timer_start,
    .timer_stop = sl_timer_stop,
    .post = sl_post,
    .run_once = sl_run_once,
};

struct sim_loop *sim_loop_create(struct clock *clock)
{
    struct sim_loop *l = xcalloc(1, sizeof(*l));
    l->loop = (struct loop){.ops = &sim_loop_ops, .clock = clock};
    return l;
}

void sim_loop_destroy(struct sim_loop *l)
{
    if (l == NULL)
        return;
    for (uint32_t i = 0; i < l->timer_count; i++)
        l->timers[i]->heap_index = UINT32_MAX;
    for (uint32_t i = 0; i < l->fd_count; i++)
        l->fds[i]->active = false;
    free(l->fds);
    free(l->timers);
    free(l);
}

struct loop *sim_loop_base(struct sim_loop *l)
{
    return &l->loop;
}

uint64_t sim_loop_next_ns(const struct sim_loop *l)
{
    uint64_t best = UINT64_MAX;
    for (uint32_t i = 0; i < l->timer_count; i++)
        if (l->timers[i]->deadline_ns < best)
            best = l->timers[i]->deadline_ns;
    return best;
}

bool sim_loop_busy(const struct sim_loop *l)
{
    return l->head != NULL;
}
