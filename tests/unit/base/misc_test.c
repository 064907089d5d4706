/*
 * The small base files: clock.h (the simulated clock moves exactly as told, the real monotonic
 * clock never goes backwards), error.h (err_str for our codes and for -errno), assert.h
 * (a failed ASSERT prints file:line and the expression and dies by SIGABRT, in a forked child)
 * and alloc.h.
 */
#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/error.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

STATIC_ASSERT(sizeof(uint32_t) == 4, "STATIC_ASSERT compiles at file scope");

static void test_sim_clock(void **state)
{
    (void)state;
    struct clock_sim cs;
    clock_sim_init(&cs, 1700000000000);
    struct clock *c = &cs.clock;
    assert_true(clock_mono_ns(c) == 0);
    assert_true(clock_wall_ms(c) == 1700000000000);
    clock_sim_advance_ns(&cs, 1500000);
    assert_true(clock_mono_ns(c) == 1500000);
    assert_true(clock_mono_ms(c) == 1);
    assert_true(clock_wall_ms(c) == 1700000000001);
    clock_sim_advance_ms(&cs, 2);
    assert_true(clock_mono_ns(c) == 3500000);
    assert_true(clock_mono_ms(c) == 3);
    assert_true(clock_wall_ms(c) == 1700000000003);
    clock_sim_advance_ns(&cs, 0);
    assert_true(clock_mono_ns(c) == 3500000);
    clock_sim_advance_ms(&cs, 3600u * 1000);
    assert_true(clock_wall_ms(c) == 1700000000003 + 3600 * 1000);
}

static void test_real_clock(void **state)
{
    (void)state;
    struct clock *c = clock_real();
    assert_ptr_equal(c, clock_real());
    uint64_t prev = clock_mono_ns(c);
    for (int i = 0; i < 100000; i++) {
        uint64_t now = clock_mono_ns(c);
        assert_true(now >= prev);
        prev = now;
    }
    /* It moves: a 2 ms sleep shows up. */
    uint64_t before = clock_mono_ns(c);
    usleep(2000);
    assert_true(clock_mono_ns(c) - before >= 2000000);
    /* Wall time after 2020-01-01 and before 2100-01-01. */
    int64_t wall = clock_wall_ms(c);
    assert_true(wall > 1577836800000 && wall < 4102444800000);
}

static void test_err_str(void **state)
{
    (void)state;
    assert_string_equal(err_str(0), "success");
    assert_string_equal(err_str(ERR_INCOMPLETE), "input incomplete");
    assert_string_equal(err_str(ERR_CORRUPT), "data corrupt");
    assert_string_equal(err_str(ERR_TOO_LARGE), "size over limit");
    /* Every code of ours has its own text. */
    for (int a = ERR_BASE + 1; a < ERR_LAST; a++) {
        assert_non_null(err_str(a));
        assert_string_not_equal(err_str(a), "unknown error");
        for (int b = a + 1; b < ERR_LAST; b++)
            assert_string_not_equal(err_str(a), err_str(b));
    }
    assert_string_equal(err_str(-ENOENT), strerror(ENOENT));
    assert_string_equal(err_str(-EIO), strerror(EIO));
    assert_string_equal(err_str(-ENOSPC), strerror(ENOSPC));
    assert_string_equal(err_str(ERR_BASE), "unknown error");
    assert_string_equal(err_str(ERR_BASE - 1), "unknown error");
    assert_string_equal(err_str(5), "unknown error");
}

/* Runs fn in a child with stderr on a pipe; returns what the child wrote and how it ended. */
static void run_child(void (*fn)(void), char *out, size_t cap, int *wstatus)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], out + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(pid, wstatus, 0), pid);
}

static void fail_assert(void)
{
    int one = 1;
    ASSERT(one == 2);
}
static const int fail_assert_line = __LINE__ - 2; /* the ASSERT above */

static void pass_assert(void)
{
    int one = 1;
    ASSERT(one == 1);
}

static void hit_unreachable(void)
{
    UNREACHABLE();
}

static void test_assert_aborts(void **state)
{
    (void)state;
    char out[1024];
    int status = 0;
    run_child(fail_assert, out, sizeof(out), &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    char want[512];
    snprintf(want, sizeof(want), "%s:%d: assertion failed: one == 2\n", __FILE__, fail_assert_line);
    assert_true(strncmp(out, want, strlen(want)) == 0);

    run_child(pass_assert, out, sizeof(out), &status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(out, "");

    run_child(hit_unreachable, out, sizeof(out), &status);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "unreachable code reached"));
}

static void test_alloc(void **state)
{
    (void)state;
    void *p = xmalloc(0);
    assert_non_null(p);
    free(p);
    uint32_t *z = xcalloc(100, sizeof(uint32_t));
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], 0);
    for (int i = 0; i < 100; i++)
        z[i] = (uint32_t)i;
    z = xrealloc(z, 1000 * sizeof(uint32_t));
    for (int i = 0; i < 100; i++)
        assert_int_equal(z[i], i);
    free(z);
    const char *src = "chronik";
    char *d = xstrdup(src);
    assert_ptr_not_equal(d, src);
    assert_string_equal(d, src);
    free(d);
    /* Huge-page buffers: aligned to a huge page (a misaligned one could never be backed by
     * one), and ordinary heap memory otherwise, writable to the end and freed with free(). */
    uint8_t *h = xmalloc_huge(2 * ALLOC_HUGE_BYTES);
    assert_int_equal((uintptr_t)h % ALLOC_HUGE_BYTES, 0);
    memset(h, 0xa5, 2 * ALLOC_HUGE_BYTES);
    assert_int_equal(h[2 * ALLOC_HUGE_BYTES - 1], 0xa5);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_clock), cmocka_unit_test(test_real_clock),
        cmocka_unit_test(test_err_str),   cmocka_unit_test(test_assert_aborts),
        cmocka_unit_test(test_alloc),
    };
    return cmocka_run_group_tests_name("base_misc", tests, NULL, NULL);
}
