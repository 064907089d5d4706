/*
 * The log under real crashes: a helper process (kill_helper.c) appends to a log on the real
 * filesystem and reports each durable offset through a pipe; this test SIGKILLs it at random
 * moments, reopens the log itself and checks that every offset reported durable is there,
 * offsets are contiguous from 0, every batch has a valid CRC and exactly the content derived
 * from (seed, offset), and epochs never decrease. The next round's helper continues on the same
 * directory (after a clean or an unclean close here, alternately at random).
 *
 * CHRONIK_SEED replays the kill timings; CHRONIK_KILL_ROUNDS sets the number of kills.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/limits.h"
#include "io/io.h"
#include "log/batch.h"
#include "log/log.h"
#include "log_testutil.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t g_seed;

/* Runs one helper for about run_ms, kills it, and returns the largest durable offset it
 * reported. */
static int64_t run_and_kill(const char *dir, uint64_t seed, int round, int run_ms)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        char s[32], r[32];
        snprintf(s, sizeof(s), "%llu", (unsigned long long)seed);
        snprintf(r, sizeof(r), "%d", round);
        execl(CHRONIK_KILL_HELPER, CHRONIK_KILL_HELPER, dir, s, r, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    int64_t durable = -1;
    /* The clock starts when the helper reports its first durable offset (its recovered end),
     * so every round kills a helper that is appending. */
    uint64_t deadline = UINT64_MAX;
    bool killed = false;
    for (;;) {
        uint64_t now = clock_mono_ms(clock_real());
        if (deadline == UINT64_MAX && durable >= 0)
            deadline = now + (uint64_t)run_ms;
        if (!killed && now >= deadline) {
            kill(pid, SIGKILL);
            killed = true;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int timeout_ms = killed ? 1000 : deadline == UINT64_MAX ? 100 : (int)(deadline - now);
        int rc = poll(&p, 1, timeout_ms);
        if (rc == 0)
            continue;
        int64_t v[64];
        ssize_t n = read(fds[0], v, sizeof(v));
        if (n == 0)
            break;
        assert_true(n > 0 && n % 8 == 0);
        for (ssize_t i = 0; i < n / 8; i++) {
            assert_true(v[i] >= durable);
            durable = v[i];
        }
    }
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("helper exited on its own (status %d): it failed", status);
    return durable;
}

/* Reads every batch and checks it against what the helper derives from (seed, offset). */
static void verify(struct log *log, uint64_t seed, int64_t durable, int32_t epoch_max)
{
    int64_t end = log_end_offset(log);
    if (end < durable)
        fail_msg("recovered end %lld below reported durable %lld", (long long)end,
                 (long long)durable);
    struct buf want, got;
    buf_init(&want);
    buf_init(&got);
    int64_t off = 0;
    int32_t epoch = 0;
    while (off < end) {
        struct log_read r;
        assert_int_equal(log_read(log, off, 1 << 20, INT64_MAX, &r), 0);
        assert_int_equal(r.first_offset, off);
        buf_reset(&got);
        uint8_t *p = buf_extend(&got, r.bytes);
        assert_int_equal(io_pread(log_file_io(r.file), p, r.bytes, r.position), (ssize_t)r.bytes);
        log_read_release(&r);
        size_t at = 0;
        while (at < got.len) {
            struct batch_header h;
            assert_int_equal(batch_parse(got.data + at, got.len - at, &h), 0);
            if (h.base_offset != off)
                fail_msg("gap: batch at %lld, expected %lld", (long long)h.base_offset,
                         (long long)off);
            assert_true(h.leader_epoch >= epoch && h.leader_epoch <= epoch_max);
            epoch = h.leader_epoch;
            buf_reset(&want);
            test_batch_for(&want, seed, off, 4, 200, 1700000000000);
            uint64_t len = batch_total_bytes(&h);
            /* Everything but baseOffset and partitionLeaderEpoch, which the log stamps. */
            if (want.len != len ||
                memcmp(want.data + BATCH_OFF_MAGIC, got.data + at + BATCH_OFF_MAGIC,
                       len - BATCH_OFF_MAGIC) != 0)
                fail_msg("content of batch %lld differs", (long long)off);
            off = batch_last_offset(&h) + 1;
            at += len;
        }
        assert_int_equal(off, r.next_offset);
    }
    buf_deinit(&want);
    buf_deinit(&got);
}

static int rounds(void)
{
    const char *env = getenv("CHRONIK_KILL_ROUNDS");
    return env ? atoi(env) : 50;
}

static void test_kill(void **state)
{
    (void)state;
    char dir[] = "/tmp/chronik-log-kill-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char part[sizeof(dir) + 8];
    snprintf(part, sizeof(part), "%s/p-0", dir);
    struct rng rng;
    rng_seed(&rng, g_seed);
    uint64_t content_seed = g_seed * 7919;
    struct io *io = io_posix_create();
    struct log_files *files = log_files_create(io, 64);
    struct log_flusher *fl = log_flusher_create(true);
    struct log_env env = {.io = io, .clock = clock_real(), .files = files, .flusher = fl};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.segment_bytes = 256 * 1024;
    cfg.prealloc_bytes = 16 * 1024;
    int64_t last_end = 0, total_durable = 0;
    for (int round = 0; round < rounds(); round++) {
        int run_ms = (int)rng_range(&rng, 1, 30);
        int64_t durable = run_and_kill(part, content_seed, round, run_ms);
        struct log *log;
        assert_int_equal(log_open(&env, part, &cfg, &log), 0);
        assert_true(log_end_offset(log) >= last_end); /* what recovery synced stays */
        verify(log, content_seed, durable, round + 1);
        last_end = log_end_offset(log);
        total_durable = durable;
        if (rng_chance(&rng, 1, 2))
            assert_int_equal(log_close(log), 0);
        else
            log_abandon(log);
    }
    fprintf(stderr, "kill test: %d kills, %lld offsets durable at the end\n", rounds(),
            (long long)total_durable);
    assert_true(total_durable > 1000);
    log_flusher_destroy(fl);
    log_files_destroy(files);
    io_destroy(io);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    g_seed = test_seed("log_kill_test", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
