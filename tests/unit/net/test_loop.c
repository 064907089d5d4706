/*
 * Tests for the epoll loop: timer order and timing on a simulated clock, cancellation,
 * repeating timers, the timer bound, fd readiness callbacks, tasks and eventfd signals posted
 * from several threads, and SIGTERM through the signalfd.
 *
 * Randomised tests print their seed; set NET_TEST_SEED to replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "base/rand.h"
#include "net/loop_epoll.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t test_seed(void)
{
    const char *env = getenv("NET_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    printf("seed %llu (set NET_TEST_SEED to replay)\n", (unsigned long long)seed);
    return seed;
}

/* ---- timers on a simulated clock -------------------------------------------------------- */

#define ORDER_TIMERS 200

struct fired {
    struct loop_timer timer;
    struct clock_sim *sim;
    uint32_t index;
    uint64_t delay_ms;
    uint64_t fired_at_ms;
    uint32_t fire_count;
    uint32_t *log;
    uint32_t *log_len;
};

static void fired_cb(void *ctx)
{
    struct fired *f = ctx;
    f->fired_at_ms = f->sim->mono_ns / 1000000u;
    f->fire_count++;
    f->log[(*f->log_len)++] = f->index;
}

static void test_timer_order(void **state)
{
    (void)state;
    struct clock_sim sim;
    clock_sim_init(&sim, 0);
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, &sim.clock), 0);
    struct rng rng;
    rng_seed(&rng, test_seed());
    struct fired *timers = xcalloc(ORDER_TIMERS, sizeof(*timers));
    uint32_t log[ORDER_TIMERS];
    uint32_t log_len = 0;
    for (uint32_t i = 0; i < ORDER_TIMERS; i++) {
        struct fired *f = &timers[i];
        *f = (struct fired){.sim = &sim, .index = i, .log = log, .log_len = &log_len};
        /* Few distinct deadlines, so ties are frequent and their order is checked too. */
        f->delay_ms = rng_below(&rng, 50);
        loop_timer_init(&f->timer, fired_cb, f);
        assert_int_equal(loop_timer_start(&l.loop, &f->timer, f->delay_ms, 0), 0);
        assert_true(loop_timer_active(&f->timer));
    }
    for (uint32_t ms = 0; ms <= 60; ms++) {
        assert_int_equal(loop_run_once(&l.loop, 0), 0);
        clock_sim_advance_ms(&sim, 1);
    }
    assert_int_equal(log_len, ORDER_TIMERS);
    for (uint32_t i = 0; i < ORDER_TIMERS; i++) {
        struct fired *f = &timers[log[i]];
        assert_int_equal(f->fire_count, 1);
        /* Time only moves in 1 ms steps, so on time means exactly at the deadline. */
        assert_int_equal(f->fired_at_ms, f->delay_ms);
        assert_false(loop_timer_active(&f->timer));
        if (i > 0) {
            struct fired *prev = &timers[log[i - 1]];
            assert_true(prev->delay_ms < f->delay_ms ||
                        (prev->delay_ms == f->delay_ms && prev->index < f->index));
        }
    }
    free(timers);
    loop_epoll_deinit(&l);
}

struct cancel_ctx {
    struct loop *loop;
    struct loop_timer *victim;
    uint32_t fired;
};

static void cancel_other_cb(void *ctx)
{
    struct cancel_ctx *c = ctx;
    c->fired++;
    loop_timer_stop(c->loop, c->victim);
}

static void count_cb(void *ctx)
{
    (*(uint32_t *)ctx)++;
}

static void test_timer_cancel(void **state)
{
    (void)state;
    struct clock_sim sim;
    clock_sim_init(&sim, 0);
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, &sim.clock), 0);
    uint32_t a = 0, b = 0, c = 0, d = 0;
    struct loop_timer ta, tb, tc, td, tcancel;
    loop_timer_init(&ta, count_cb, &a);
    loop_timer_init(&tb, count_cb, &b);
    loop_timer_init(&tc, count_cb, &c);
    loop_timer_init(&td, count_cb, &d);
    struct cancel_ctx cc = {.loop = &l.loop, .victim = &tc};
    loop_timer_init(&tcancel, cancel_other_cb, &cc);
    assert_int_equal(loop_timer_start(&l.loop, &ta, 10, 0), 0);
    assert_int_equal(loop_timer_start(&l.loop, &tb, 10, 0), 0);
    /* tcancel and tc share a deadline; tcancel was started first so it runs first and cancels
     * tc, which must then not run although it was already due. */
    assert_int_equal(loop_timer_start(&l.loop, &tcancel, 20, 0), 0);
    assert_int_equal(loop_timer_start(&l.loop, &tc, 20, 0), 0);
    assert_int_equal(loop_timer_start(&l.loop, &td, 5, 0), 0);
    loop_timer_stop(&l.loop, &tb);
    loop_timer_stop(&l.loop, &tb); /* stopping twice is a no-op */
    assert_false(loop_timer_active(&tb));
    /* Restarting an active timer moves it. */
    assert_int_equal(loop_timer_start(&l.loop, &td, 30, 0), 0);
    for (uint32_t ms = 0; ms <= 40; ms++) {
        clock_sim_advance_ms(&sim, 1);
        assert_int_equal(loop_run_once(&l.loop, 0), 0);
        if (ms + 1 == 29)
            assert_int_equal(d, 0);
    }
    assert_int_equal(a, 1);
    assert_int_equal(b, 0);
    assert_int_equal(cc.fired, 1);
    assert_int_equal(c, 0);
    assert_int_equal(d, 1);
    loop_epoll_deinit(&l);
}

struct repeat_ctx {
    struct loop *loop;
    struct loop_timer timer;
    struct clock_sim *sim;
    uint64_t at_ms[32];
    uint32_t count;
    uint32_t stop_after;
};

static void repeat_cb(void *ctx)
{
    struct repeat_ctx *r = ctx;
    r->at_ms[r->count++] = r->sim->mono_ns / 1000000u;
    if (r->count == r->stop_after)
        loop_timer_stop(r->loop, &r->timer);
}

static void test_timer_repeat(void **state)
{
    (void)state;
    struct clock_sim sim;
    clock_sim_init(&sim, 0);
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, &sim.clock), 0);
    struct repeat_ctx r = {.loop = &l.loop, .sim = &sim, .stop_after = 8};
    loop_timer_init(&r.timer, repeat_cb, &r);
    assert_int_equal(loop_timer_start(&l.loop, &r.timer, 10, 10), 0);
    for (uint32_t ms = 0; ms < 50; ms++) {
        clock_sim_advance_ms(&sim, 1);
        assert_int_equal(loop_run_once(&l.loop, 0), 0);
    }
    assert_int_equal(r.count, 5);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(r.at_ms[i], 10 * (i + 1));
    /* The loop stalls for 35 ms: one late tick, not three, and the next a period later. */
    clock_sim_advance_ms(&sim, 35);
    assert_int_equal(loop_run_once(&l.loop, 0), 0);
    assert_int_equal(r.count, 6);
    assert_int_equal(r.at_ms[5], 85);
    for (uint32_t ms = 0; ms < 40; ms++) {
        clock_sim_advance_ms(&sim, 1);
        assert_int_equal(loop_run_once(&l.loop, 0), 0);
    }
    /* Ticks at 95 and 105; the callback stopped the timer at the 8th tick. */
    assert_int_equal(r.count, 8);
    assert_int_equal(r.at_ms[6], 95);
    assert_int_equal(r.at_ms[7], 105);
    assert_false(loop_timer_active(&r.timer));
    loop_epoll_deinit(&l);
}

struct rearm_ctx {
    struct loop *loop;
    struct loop_timer timer;
    uint32_t count;
};

static void rearm_cb(void *ctx)
{
    struct rearm_ctx *r = ctx;
    r->count++;
    int rc = loop_timer_start(r->loop, &r->timer, 0, 0);
    assert_int_equal(rc, 0);
}

static void test_timer_zero_delay_rearm(void **state)
{
    (void)state;
    struct clock_sim sim;
    clock_sim_init(&sim, 0);
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, &sim.clock), 0);
    struct rearm_ctx r = {.loop = &l.loop};
    loop_timer_init(&r.timer, rearm_cb, &r);
    assert_int_equal(loop_timer_start(&l.loop, &r.timer, 0, 0), 0);
    /* A timer re-armed with no delay from its own callback runs once per iteration. */
    for (uint32_t i = 1; i <= 5; i++) {
        assert_int_equal(loop_run_once(&l.loop, 0), 0);
        assert_int_equal(r.count, i);
    }
    loop_timer_stop(&l.loop, &r.timer);
    loop_epoll_deinit(&l);
}

static void test_timer_real_clock_never_early(void **state)
{
    (void)state;
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, clock_real()), 0);
    uint32_t fired = 0;
    struct loop_timer t;
    loop_timer_init(&t, count_cb, &fired);
    uint64_t start_ns = clock_mono_ns(clock_real());
    assert_int_equal(loop_timer_start(&l.loop, &t, 25, 0), 0);
    while (fired == 0)
        assert_int_equal(loop_run_once(&l.loop, -1), 0);
    uint64_t elapsed_ns = clock_mono_ns(clock_real()) - start_ns;
    assert_true(elapsed_ns >= 25u * 1000000u);
    assert_true(elapsed_ns < 5000u * 1000000u);
    loop_epoll_deinit(&l);
}

static void test_timer_bound(void **state)
{
    (void)state;
    struct clock_sim sim;
    clock_sim_init(&sim, 0);
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, &sim.clock), 0);
    uint32_t fired = 0;
    struct loop_timer *timers = xcalloc(NET_TIMERS_MAX + 1, sizeof(*timers));
    for (uint32_t i = 0; i <= NET_TIMERS_MAX; i++)
        loop_timer_init(&timers[i], count_cb, &fired);
    for (uint32_t i = 0; i < NET_TIMERS_MAX; i++)
        assert_int_equal(loop_timer_start(&l.loop, &timers[i], NET_TIMERS_MAX - i, 0), 0);
    assert_int_equal(loop_timer_start(&l.loop, &timers[NET_TIMERS_MAX], 1, 0), ERR_TOO_LARGE);
    assert_false(loop_timer_active(&timers[NET_TIMERS_MAX]));
    /* Cancelling one makes room again. */
    loop_timer_stop(&l.loop, &timers[7]);
    assert_int_equal(loop_timer_start(&l.loop, &timers[NET_TIMERS_MAX], 1, 0), 0);
    clock_sim_advance_ms(&sim, 3);
    assert_int_equal(loop_run_once(&l.loop, 0), 0);
    /* Deadlines 1 (the last timer) and 1..3 from the countdown. */
    assert_int_equal(fired, 4);
    free(timers);
    loop_epoll_deinit(&l);
}

/* ---- fds -------------------------------------------------------------------------------- */

struct fd_ctx {
    struct loop *loop;
    struct loop_fd watch;
    struct fd_ctx *other;
    uint32_t calls;
    uint32_t last_events;
    bool stop_other;
};

static void fd_cb(void *ctx, uint32_t events)
{
    struct fd_ctx *f = ctx;
    f->calls++;
    f->last_events = events;
    if (f->stop_other)
        loop_fd_stop(f->loop, &f->other->watch);
}

static void test_fd_readiness(void **state)
{
    (void)state;
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, clock_real()), 0);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    struct fd_ctx r = {.loop = &l.loop}, w = {.loop = &l.loop};
    loop_fd_init(&r.watch, p[0], fd_cb, &r);
    loop_fd_init(&w.watch, p[1], fd_cb, &w);
    assert_int_equal(loop_fd_start(&l.loop, &r.watch, LOOP_READ), 0);
    assert_int_equal(loop_fd_start(&l.loop, &w.watch, 0), 0);
    assert_int_equal(loop_run_once(&l.loop, 0), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(w.calls, 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(loop_run_once(&l.loop, 1000), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.last_events, LOOP_READ);
    /* Level-triggered: still readable, so called again. */
    assert_int_equal(loop_run_once(&l.loop, 0), 0);
    assert_int_equal(r.calls, 2);
    /* Interest dropped: not called although readable. */
    assert_int_equal(loop_fd_update(&l.loop, &r.watch, 0), 0);
    assert_int_equal(loop_run_once(&l.loop, 0), 0);
    assert_int_equal(r.calls, 2);
    assert_int_equal(loop_fd_update(&l.loop, &w.watch, LOOP_WRITE), 0);
    assert_int_equal(loop_run_once(&l.loop, 0), 0);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.last_events, LOOP_WRITE);
    loop_fd_stop(&l.loop, &w.watch);
    loop_fd_stop(&l.loop, &w.watch);
    assert_int_equal(loop_run_once(&l.loop, 0), 0);
    assert_int_equal(w.calls, 1);
    /* Closing the write end: the read end reports a hang-up whatever the interest. */
    close(p[1]);
    assert_int_equal(loop_run_once(&l.loop, 0), 0);
    assert_int_equal(r.calls, 3);
    assert_true(r.last_events & LOOP_ERROR);
    loop_fd_stop(&l.loop, &r.watch);
    close(p[0]);
    loop_epoll_deinit(&l);
}

static void test_fd_stop_pending_event(void **state)
{
    (void)state;
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, clock_real()), 0);
    int p1[2], p2[2];
    assert_int_equal(pipe2(p1, O_NONBLOCK | O_CLOEXEC), 0);
    assert_int_equal(pipe2(p2, O_NONBLOCK | O_CLOEXEC), 0);
    struct fd_ctx a = {.loop = &l.loop, .stop_other = true};
    struct fd_ctx b = {.loop = &l.loop, .stop_other = true};
    a.other = &b;
    b.other = &a;
    loop_fd_init(&a.watch, p1[0], fd_cb, &a);
    loop_fd_init(&b.watch, p2[0], fd_cb, &b);
    assert_int_equal(loop_fd_start(&l.loop, &a.watch, LOOP_READ), 0);
    assert_int_equal(loop_fd_start(&l.loop, &b.watch, LOOP_READ), 0);
    assert_int_equal(write(p1[1], "x", 1), 1);
    assert_int_equal(write(p2[1], "x", 1), 1);
    /* Both are ready in the same wait; whichever runs first stops the other, whose pending
     * event must then be skipped. */
    assert_int_equal(loop_run_once(&l.loop, 1000), 0);
    assert_int_equal(a.calls + b.calls, 1);
    loop_fd_stop(&l.loop, &a.watch);
    loop_fd_stop(&l.loop, &b.watch);
    close(p1[0]);
    close(p1[1]);
    close(p2[0]);
    close(p2[1]);
    loop_epoll_deinit(&l);
}

/* ---- cross-thread ----------------------------------------------------------------------- */

#define POST_THREADS      4
#define POSTS_PER_THREAD  2000
#define EVENTS_PER_THREAD 5000

struct post_state;

struct post_item {
    struct loop_task task;
    struct post_state *st;
    uint32_t thread;
    uint32_t seq;
};

struct post_state {
    struct loop_epoll *l;
    struct loop_event event;
    struct post_item *items;
    uint32_t next_seq[POST_THREADS];
    uint32_t ran;
    uint64_t event_count;
    bool order_ok;
    pthread_t loop_thread;
    bool thread_ok;
};

struct post_thread {
    struct post_state *st;
    uint32_t index;
    pthread_t tid;
};

static void post_item_run(void *ctx)
{
    struct post_item *it = ctx;
    struct post_state *st = it->st;
    if (st->next_seq[it->thread] != it->seq)
        st->order_ok = false;
    if (!pthread_equal(pthread_self(), st->loop_thread))
        st->thread_ok = false;
    st->next_seq[it->thread] = it->seq + 1;
    st->ran++;
}

static void *post_thread_main(void *arg)
{
    struct post_thread *t = arg;
    for (uint32_t i = 0; i < EVENTS_PER_THREAD; i++) {
        if (i < POSTS_PER_THREAD)
            loop_post(&t->st->l->loop, &t->st->items[t->index * POSTS_PER_THREAD + i].task);
        loop_event_signal(&t->st->event);
    }
    return NULL;
}

static void event_cb(void *ctx, uint64_t count)
{
    struct post_state *st = ctx;
    st->event_count += count;
}

static void test_cross_thread_wakeups(void **state)
{
    (void)state;
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, clock_real()), 0);
    struct post_state st = {.l = &l, .order_ok = true, .thread_ok = true};
    st.loop_thread = pthread_self();
    assert_int_equal(loop_event_init(&l.loop, &st.event, event_cb, &st), 0);
    st.items = xcalloc(POST_THREADS * POSTS_PER_THREAD, sizeof(*st.items));
    for (uint32_t t = 0; t < POST_THREADS; t++) {
        for (uint32_t i = 0; i < POSTS_PER_THREAD; i++) {
            struct post_item *it = &st.items[t * POSTS_PER_THREAD + i];
            *it = (struct post_item){.st = &st, .thread = t, .seq = i};
            loop_task_init(&it->task, post_item_run, it);
        }
    }
    struct post_thread threads[POST_THREADS];
    for (uint32_t t = 0; t < POST_THREADS; t++) {
        threads[t] = (struct post_thread){.st = &st, .index = t};
        assert_int_equal(pthread_create(&threads[t].tid, NULL, post_thread_main, &threads[t]), 0);
    }
    uint64_t deadline_ns = clock_mono_ns(clock_real()) + 20000ull * 1000000u;
    while (st.ran < POST_THREADS * POSTS_PER_THREAD ||
           st.event_count < POST_THREADS * EVENTS_PER_THREAD) {
        assert_true(clock_mono_ns(clock_real()) < deadline_ns);
        assert_int_equal(loop_run_once(&l.loop, 100), 0);
    }
    for (uint32_t t = 0; t < POST_THREADS; t++)
        assert_int_equal(pthread_join(threads[t].tid, NULL), 0);
    assert_int_equal(loop_run_once(&l.loop, 0), 0);
    /* Every task ran once, on the loop's thread, in each poster's order; every signal counted
     * exactly once although they coalesce. */
    assert_int_equal(st.ran, POST_THREADS * POSTS_PER_THREAD);
    assert_true(st.order_ok);
    assert_true(st.thread_ok);
    assert_int_equal(st.event_count, POST_THREADS * EVENTS_PER_THREAD);
    loop_event_deinit(&l.loop, &st.event);
    free(st.items);
    loop_epoll_deinit(&l);
}

/* ---- signals and loop_run --------------------------------------------------------------- */

struct signal_ctx {
    struct loop *loop;
    int signos[4];
    uint32_t count;
};

static void signal_cb(void *ctx, int signo)
{
    struct signal_ctx *s = ctx;
    s->signos[s->count++] = signo;
    if (signo == SIGTERM)
        loop_stop(s->loop);
}

static void test_signalfd(void **state)
{
    (void)state;
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, clock_real()), 0);
    struct signal_ctx sc = {.loop = &l.loop};
    struct loop_signal sig;
    const int signos[] = {SIGTERM, SIGINT};
    assert_int_equal(loop_signal_init(&l.loop, &sig, signos, 2, signal_cb, &sc), 0);
    /* Sent to the whole process, as an operator's kill would be. */
    assert_int_equal(kill(getpid(), SIGINT), 0);
    assert_int_equal(loop_run_once(&l.loop, 5000), 0);
    assert_int_equal(sc.count, 1);
    assert_int_equal(sc.signos[0], SIGINT);
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    /* loop_run returns because the SIGTERM callback stops it. */
    assert_int_equal(loop_run(&l.loop), 0);
    assert_int_equal(sc.count, 2);
    assert_int_equal(sc.signos[1], SIGTERM);
    loop_signal_deinit(&l.loop, &sig);
    sigset_t now;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &now), 0);
    assert_false(sigismember(&now, SIGTERM));
    loop_epoll_deinit(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_timer_cancel),
        cmocka_unit_test(test_timer_repeat),
        cmocka_unit_test(test_timer_zero_delay_rearm),
        cmocka_unit_test(test_timer_real_clock_never_early),
        cmocka_unit_test(test_timer_bound),
        cmocka_unit_test(test_fd_readiness),
        cmocka_unit_test(test_fd_stop_pending_event),
        cmocka_unit_test(test_cross_thread_wakeups),
        cmocka_unit_test(test_signalfd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
