/*
 * The epoll implementation of net/loop.h.
 *
 * Owns the epoll fd, the timer heap (timers stay owned by their users; the heap holds pointers
 * and each timer knows its heap index) and the queue of posted tasks.
 *
 * Invariants: heap[i]->heap_index == i for every i < heap_len, and the heap is ordered on
 * (deadline_ns, seq); an inactive timer has heap_index UINT32_MAX. An fd watch is registered
 * with epoll exactly while w->active. Only post() and the wake eventfd are touched by other
 * threads, and only under post_lock.
 *
 * Must never: call a watch that was stopped (stopping clears its pending events), fire a timer
 * early, or run a posted task on any thread but the loop's.
 */
#include "net/loop_epoll.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define NS_PER_MS 1000000u

static struct loop_epoll *from_loop(struct loop *loop)
{
    return CONTAINER_OF(loop, struct loop_epoll, loop);
}

/* ---- fds -------------------------------------------------------------------------------- */

static uint32_t to_epoll(uint32_t events)
{
    return ((events & LOOP_READ) ? EPOLLIN : 0u) | ((events & LOOP_WRITE) ? EPOLLOUT : 0u);
}

static uint32_t from_epoll(uint32_t ep)
{
    return ((ep & EPOLLIN) ? LOOP_READ : 0u) | ((ep & EPOLLOUT) ? LOOP_WRITE : 0u) |
           ((ep & (EPOLLERR | EPOLLHUP)) ? LOOP_ERROR : 0u);
}

static int epoll_fd_start(struct loop *loop, struct loop_fd *w, uint32_t events)
{
    struct loop_epoll *l = from_loop(loop);
    ASSERT(!w->active);
    ASSERT((events & ~(uint32_t)(LOOP_READ | LOOP_WRITE)) == 0);
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, w->fd, &ev) != 0)
        return -errno;
    w->events = events;
    w->active = true;
    return 0;
}

static int epoll_fd_update(struct loop *loop, struct loop_fd *w, uint32_t events)
{
    struct loop_epoll *l = from_loop(loop);
    ASSERT(w->active);
    ASSERT((events & ~(uint32_t)(LOOP_READ | LOOP_WRITE)) == 0);
    if (events == w->events)
        return 0;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};
    if (epoll_ctl(l->epoll_fd, EPOLL_CTL_MOD, w->fd, &ev) != 0)
        return -errno;
    w->events = events;
    return 0;
}

static void epoll_fd_stop(struct loop *loop, struct loop_fd *w)
{
    struct loop_epoll *l = from_loop(loop);
    if (!w->active)
        return;
    int rc = epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
    ASSERT(rc == 0);
    w->active = false;
    w->events = 0;
    /* The watch may be freed right after this returns, so no pending event may point to it. */
    for (int i = 0; i < l->events_len; i++) {
        if (l->events[i].data.ptr == w)
            l->events[i].data.ptr = NULL;
    }
}

/* ---- timers ----------------------------------------------------------------------------- */

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
    return a->deadline_ns < b->deadline_ns || (a->deadline_ns == b->deadline_ns && a->seq < b->seq);
}

static void heap_set(struct loop_epoll *l, uint32_t i, struct loop_timer *t)
{
    l->heap[i] = t;
    t->heap_index = i;
}

static void heap_up(struct loop_epoll *l, uint32_t i)
{
    struct loop_timer *t = l->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!timer_before(t, l->heap[parent]))
            break;
        heap_set(l, i, l->heap[parent]);
        i = parent;
    }
    heap_set(l, i, t);
}

static void heap_down(struct loop_epoll *l, uint32_t i)
{
    struct loop_timer *t = l->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= l->heap_len)
            break;
        if (child + 1 < l->heap_len && timer_before(l->heap[child + 1], l->heap[child]))
            child++;
        if (!timer_before(l->heap[child], t))
            break;
        heap_set(l, i, l->heap[child]);
        i = child;
    }
    heap_set(l, i, t);
}

static void heap_remove(struct loop_epoll *l, struct loop_timer *t)
{
    uint32_t i = t->heap_index;
    ASSERT(i < l->heap_len && l->heap[i] == t);
    l->heap_len--;
    t->heap_index = UINT32_MAX;
    if (i == l->heap_len)
        return;
    struct loop_timer *moved = l->heap[l->heap_len];
    heap_set(l, i, moved);
    heap_up(l, i);
    heap_down(l, moved->heap_index);
}

static int heap_insert(struct loop_epoll *l, struct loop_timer *t)
{
    if (l->heap_len == l->heap_cap) {
        if (l->heap_cap >= NET_TIMERS_MAX)
            return ERR_TOO_LARGE;
        uint32_t cap = l->heap_cap == 0 ? 64 : MIN(l->heap_cap * 2, NET_TIMERS_MAX);
        l->heap = xrealloc(l->heap, cap * sizeof(*l->heap));
        l->heap_cap = cap;
    }
    t->seq = l->timer_seq_next++;
    l->heap[l->heap_len] = t;
    t->heap_index = l->heap_len;
    l->heap_len++;
    heap_up(l, t->heap_index);
    return 0;
}

static void epoll_timer_stop(struct loop *loop, struct loop_timer *t)
{
    struct loop_epoll *l = from_loop(loop);
    if (t->heap_index == UINT32_MAX)
        return;
    heap_remove(l, t);
}

static int epoll_timer_start(struct loop *loop, struct loop_timer *t, uint64_t delay_ms,
                             uint64_t period_ms)
{
    struct loop_epoll *l = from_loop(loop);
    ASSERT(delay_ms <= UINT64_MAX / NS_PER_MS / 2);
    ASSERT(period_ms <= UINT64_MAX / NS_PER_MS / 2);
    epoll_timer_stop(loop, t);
    t->deadline_ns = loop_now_ns(loop) + delay_ms * NS_PER_MS;
    t->period_ns = period_ms * NS_PER_MS;
    return heap_insert(l, t);
}

/* Fires the timers due now that were started before this call (see loop.h for why). */
static void run_timers(struct loop_epoll *l)
{
    uint64_t now_ns = loop_now_ns(&l->loop);
    uint64_t seq_limit = l->timer_seq_next;
    while (l->heap_len > 0) {
        struct loop_timer *t = l->heap[0];
        if (t->deadline_ns > now_ns || t->seq >= seq_limit)
            break;
        heap_remove(l, t);
        if (t->period_ns > 0) {
            uint64_t next_ns = t->deadline_ns + t->period_ns;
            t->deadline_ns = next_ns > now_ns ? next_ns : now_ns + t->period_ns;
            /* Re-inserting the timer that was just removed cannot exceed the bound. */
            int rc = heap_insert(l, t);
            ASSERT(rc == 0);
        }
        t->fn(t->ctx);
    }
}

/* Milliseconds until the first timer is due, rounded up so a timer never fires early. */
static int wait_ms(struct loop_epoll *l, int timeout_ms)
{
    if (l->heap_len == 0)
        return timeout_ms;
    uint64_t now_ns = loop_now_ns(&l->loop);
    uint64_t deadline_ns = l->heap[0]->deadline_ns;
    uint64_t ms = deadline_ns <= now_ns ? 0 : (deadline_ns - now_ns + NS_PER_MS - 1) / NS_PER_MS;
    if (ms > INT32_MAX)
        ms = INT32_MAX;
    if (timeout_ms >= 0 && (uint64_t)timeout_ms < ms)
        return timeout_ms;
    return (int)ms;
}

/* ---- posted tasks ----------------------------------------------------------------------- */

static void epoll_post(struct loop *loop, struct loop_task *task)
{
    struct loop_epoll *l = from_loop(loop);
    ASSERT(task->fn != NULL);
    task->next = NULL;
    pthread_mutex_lock(&l->post_lock);
    bool was_empty = l->post_head == NULL;
    if (was_empty)
        l->post_head = task;
    else
        l->post_tail->next = task;
    l->post_tail = task;
    pthread_mutex_unlock(&l->post_lock);
    /* The loop reads the eventfd before taking the queue, so one signal per empty-to-non-empty
     * transition is enough: a task added to a non-empty queue is taken with the others. */
    if (was_empty)
        loop_event_signal(&l->wake);
}

static void wake_ready(void *ctx, uint64_t count)
{
    struct loop_epoll *l = ctx;
    (void)count;
    pthread_mutex_lock(&l->post_lock);
    struct loop_task *task = l->post_head;
    l->post_head = NULL;
    l->post_tail = NULL;
    pthread_mutex_unlock(&l->post_lock);
    while (task != NULL) {
        /* Read next first: the poster may reuse or free the task once fn started. */
        struct loop_task *next = task->next;
        task->fn(task->ctx);
        task = next;
    }
}

/* ---- running ---------------------------------------------------------------------------- */

static int epoll_run_once(struct loop *loop, int timeout_ms)
{
    struct loop_epoll *l = from_loop(loop);
    ASSERT(l->events_len == 0);
    int n = epoll_wait(l->epoll_fd, l->events, NET_LOOP_EVENTS_MAX, wait_ms(l, timeout_ms));
    if (n < 0) {
        if (errno != EINTR)
            return -errno;
        n = 0;
    }
    l->events_len = n;
    for (int i = 0; i < n; i++) {
        struct loop_fd *w = l->events[i].data.ptr;
        if (w == NULL)
            continue;
        w->fn(w->ctx, from_epoll(l->events[i].events));
    }
    l->events_len = 0;
    run_timers(l);
    return 0;
}

static const struct loop_ops epoll_ops = {
    .fd_start = epoll_fd_start,
    .fd_update = epoll_fd_update,
    .fd_stop = epoll_fd_stop,
    .timer_start = epoll_timer_start,
    .timer_stop = epoll_timer_stop,
    .post = epoll_post,
    .run_once = epoll_run_once,
};

int loop_epoll_init(struct loop_epoll *l, struct clock *clock)
{
    ASSERT(clock != NULL);
    int rc = 0;
    *l = (struct loop_epoll){.loop = {.ops = &epoll_ops, .clock = clock}};
    l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epoll_fd < 0)
        return -errno;
    pthread_mutex_init(&l->post_lock, NULL);
    rc = loop_event_init(&l->loop, &l->wake, wake_ready, l);
    if (rc < 0)
        goto fail;
    return 0;
fail:
    pthread_mutex_destroy(&l->post_lock);
    close(l->epoll_fd);
    l->epoll_fd = -1;
    return rc;
}

void loop_epoll_deinit(struct loop_epoll *l)
{
    ASSERT(l->epoll_fd >= 0);
    ASSERT(l->events_len == 0);
    loop_event_deinit(&l->loop, &l->wake);
    free(l->heap);
    l->heap = NULL;
    pthread_mutex_destroy(&l->post_lock);
    close(l->epoll_fd);
    l->epoll_fd = -1;
}
