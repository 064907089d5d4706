/*
 * The implementation-independent part of the loop: watch initialisers, the run loop, and the
 * eventfd and signalfd helpers, which are ordinary fd watches on any loop implementation.
 *
 * Invariant: the helpers own their fd from a successful init until deinit, which closes it.
 * They must never block: both fds are non-blocking and read until EAGAIN.
 */
#include "net/loop.h"

#include "base/assert.h"
#include "base/error.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

void loop_fd_init(struct loop_fd *w, int fd, loop_fd_fn fn, void *ctx)
{
    ASSERT(fd >= 0);
    ASSERT(fn != NULL);
    w->fd = fd;
    w->events = 0;
    w->active = false;
    w->fn = fn;
    w->ctx = ctx;
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *ctx)
{
    ASSERT(fn != NULL);
    t->deadline_ns = 0;
    t->period_ns = 0;
    t->seq = 0;
    t->heap_index = UINT32_MAX;
    t->fn = fn;
    t->ctx = ctx;
}

bool loop_timer_active(const struct loop_timer *t)
{
    return t->heap_index != UINT32_MAX;
}

void loop_task_init(struct loop_task *task, loop_task_fn fn, void *ctx)
{
    ASSERT(fn != NULL);
    task->next = NULL;
    task->fn = fn;
    task->ctx = ctx;
}

int loop_run(struct loop *loop)
{
    ASSERT(loop->ops != NULL);
    int rc = 0;
    loop->stopping = false;
    while (!loop->stopping) {
        rc = loop_run_once(loop, -1);
        if (rc < 0)
            break;
    }
    loop->stopping = false;
    return rc;
}

void loop_stop(struct loop *loop)
{
    ASSERT(loop->ops != NULL);
    loop->stopping = true;
}

/* ---- eventfd ---------------------------------------------------------------------------- */

static void event_ready(void *ctx, uint32_t events)
{
    struct loop_event *ev = ctx;
    ASSERT(ev->watch.active);
    (void)events;
    uint64_t count = 0;
    ssize_t n = read(ev->watch.fd, &count, sizeof(count));
    /* EAGAIN: a spurious wake-up; the counter was already drained. */
    if (n != (ssize_t)sizeof(count))
        return;
    ev->fn(ev->ctx, count);
}

int loop_event_init(struct loop *loop, struct loop_event *ev, loop_event_fn fn, void *ctx)
{
    ASSERT(fn != NULL);
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    ev->fn = fn;
    ev->ctx = ctx;
    loop_fd_init(&ev->watch, fd, event_ready, ev);
    int rc = loop_fd_start(loop, &ev->watch, LOOP_READ);
    if (rc < 0)
        goto fail;
    return 0;
fail:
    close(fd);
    return rc;
}

void loop_event_deinit(struct loop *loop, struct loop_event *ev)
{
    ASSERT(ev->watch.fd >= 0);
    loop_fd_stop(loop, &ev->watch);
    close(ev->watch.fd);
    ev->watch.fd = -1;
}

void loop_event_signal(struct loop_event *ev)
{
    ASSERT(ev->watch.fd >= 0);
    uint64_t one = 1;
    /* The only failure is EAGAIN at a saturated counter, which already means "wake up". */
    ssize_t n = write(ev->watch.fd, &one, sizeof(one));
    (void)n;
}

/* ---- signalfd --------------------------------------------------------------------------- */

static void signal_ready(void *ctx, uint32_t events)
{
    struct loop_signal *s = ctx;
    (void)events;
    /* Read every queued signal; each callback may stop the watch (for example on shutdown). */
    while (s->watch.active) {
        struct signalfd_siginfo info;
        ssize_t n = read(s->watch.fd, &info, sizeof(info));
        if (n != (ssize_t)sizeof(info))
            return;
        s->fn(s->ctx, (int)info.ssi_signo);
    }
}

int loop_signal_init(struct loop *loop, struct loop_signal *s, const int *signos,
                     uint32_t signo_count, loop_signal_fn fn, void *ctx)
{
    ASSERT(signo_count > 0 && signo_count < 64);
    ASSERT(fn != NULL);
    int fd = -1;
    int rc = 0;
    sigemptyset(&s->mask);
    for (uint32_t i = 0; i < signo_count; i++) {
        if (sigaddset(&s->mask, signos[i]) != 0)
            return ERR_INVALID;
    }
    rc = -pthread_sigmask(SIG_BLOCK, &s->mask, &s->mask_before);
    if (rc < 0)
        return rc;
    fd = signalfd(-1, &s->mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    s->fn = fn;
    s->ctx = ctx;
    loop_fd_init(&s->watch, fd, signal_ready, s);
    rc = loop_fd_start(loop, &s->watch, LOOP_READ);
    if (rc < 0)
        goto fail;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    pthread_sigmask(SIG_SETMASK, &s->mask_before, NULL);
    return rc;
}

void loop_signal_deinit(struct loop *loop, struct loop_signal *s)
{
    ASSERT(s->watch.fd >= 0);
    loop_fd_stop(loop, &s->watch);
    close(s->watch.fd);
    s->watch.fd = -1;
    pthread_sigmask(SIG_SETMASK, &s->mask_before, NULL);
}
