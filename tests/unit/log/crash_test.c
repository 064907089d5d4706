/*
 * The crash matrix and fault injection on the simulated disk.
 *
 * A scenario is a seeded sequence of appends (batches derived from (seed, offset), big enough
 * to roll 64 KiB segments every few batches, with epoch changes), flush requests, flusher
 * runs, truncations of the last few batches (a Raft follower's divergent suffix), retention
 * by size and DeleteRecords (both delete whole segments, possibly before the job sealing
 * them ran: issue 8 item 5), aborted-transaction index entries and their syncs (issue 11). For
 * every
 * prefix of a scenario, the disk crashes at every pending-operation boundary (io_sim_crash_at with
 * each keep_ops); when the next pending operation is a write, it is also torn at a sample of bytes:
 * every batch-header field boundary (0..61 by field), the last byte, and every 64th byte in
 * between. After each crash the log reopens and must hold exactly a prefix of what was appended
 * (byte for byte, epochs included) containing everything that was reported durable, and must accept
 * further appends; its aborted-transaction index must hold, in order, a prefix of the entries
 * added (of markers still in the log) with every entry synced by log_txn_sync. A second matrix uses
 * scenarios of small batches and tears the last pending write at every one of its bytes, after
 * every step.
 *
 * Fault injection: the nth write, sync, allocation, truncate, directory operation (rename) or
 * open fails with EIO or ENOSPC; the failure surfaces as an error, nothing unsynced is ever
 * reported durable (checked by crashing away every unsynced operation), and the log reopens
 * consistent.
 *
 * CHRONIK_SEED replays; CHRONIK_CRASH_SCENARIOS sets how many scenarios run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "io/io_sim.h"
#include "log/log.h"
#include "log_model.h"
#include "log_testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_seed;

enum step {
    STEP_APPEND,
    STEP_FLUSH,
    STEP_RUN,
    STEP_TRUNCATE,
    STEP_RETAIN,
    STEP_DELETE,
    STEP_TXN,
    STEP_TXN_SYNC,
};

#define TXN_ENTRIES_MAX 4096

struct world {
    struct io *io;
    struct clock_sim clock;
    struct log_files *files;
    struct log_flusher *fl;
    struct log_env env;
    struct log_config cfg;
    struct log *log;
    struct model m;
    struct rng rng; /* drives the step sequence */
    uint64_t seed;
    int32_t epoch;
    int64_t durable;          /* the largest durable offset any callback reported */
    int64_t start_max;        /* the largest log start offset the log ever had */
    int first_error;          /* the first error any call or callback reported */
    uint32_t records_max;     /* per appended batch */
    uint32_t value_bytes_max; /* per record */
    struct buf b;
    /* The aborted-transaction index entries added, by marker offset; the first txn_synced of
     * them were synced by log_txn_sync. */
    struct producer_aborted txn[TXN_ENTRIES_MAX];
    uint32_t txn_len;
    uint32_t txn_synced;
};

static void on_flush(void *ctx, int err, int64_t durable)
{
    struct world *w = ctx;
    if (err < 0) {
        if (w->first_error == 0)
            w->first_error = err;
        return;
    }
    w->durable = MAX(w->durable, durable);
}

static void world_init(struct world *w, uint64_t seed)
{
    memset(w, 0, sizeof(*w));
    w->io = io_sim_create();
    clock_sim_init(&w->clock, 1700000000000);
    w->files = log_files_create(w->io, 8);
    w->fl = log_flusher_create(false);
    w->env = (struct log_env){
        .io = w->io, .clock = &w->clock.clock, .files = w->files, .flusher = w->fl};
    log_config_default(&w->cfg);
    w->cfg.segment_bytes = LOG_SEGMENT_BYTES_MIN;
    w->cfg.index_interval_bytes = 4096;
    w->cfg.prealloc_bytes = 24 * KIB;
    w->cfg.retention_bytes = 3 * LOG_SEGMENT_BYTES_MIN;
    model_init(&w->m);
    rng_seed(&w->rng, seed);
    w->seed = seed;
    w->epoch = 1;
    w->records_max = 16;
    w->value_bytes_max = 1500;
    buf_init(&w->b);
}

static void world_deinit(struct world *w)
{
    if (w->log)
        log_abandon(w->log);
    log_flusher_destroy(w->fl);
    log_files_destroy(w->files);
    io_destroy(w->io);
    model_deinit(&w->m);
    buf_deinit(&w->b);
}

static void note_error(struct world *w, int rc)
{
    if (rc < 0 && w->first_error == 0)
        w->first_error = rc;
}

/* Without injected faults no step may fail: a log that fails on a healthy disk (as one did
 * when a segment was deleted before its seal ran) is a bug, not a crash outcome. */
static void expect_healthy(struct world *w, int n)
{
    int err = w->first_error != 0 ? w->first_error : log_error(w->log);
    if (err != 0)
        fail_msg("seed %llu: %d steps on a healthy disk failed the log: %d (%s)",
                 (unsigned long long)w->seed, n, err, err_str(err));
}

/* One scenario step; its kind and content depend only on the rng and the log end. */
static void step(struct world *w)
{
    static const enum step kinds[25] = {
        STEP_APPEND, STEP_APPEND,   STEP_APPEND, STEP_APPEND, STEP_APPEND,
        STEP_APPEND, STEP_APPEND,   STEP_APPEND, STEP_APPEND, STEP_APPEND,
        STEP_APPEND, STEP_APPEND,   STEP_FLUSH,  STEP_FLUSH,  STEP_FLUSH,
        STEP_FLUSH,  STEP_RUN,      STEP_RUN,    STEP_RUN,    STEP_RETAIN,
        STEP_DELETE, STEP_TRUNCATE, STEP_TXN,    STEP_TXN,    STEP_TXN_SYNC,
    };
    enum step s = kinds[rng_below(&w->rng, ARRAY_LEN(kinds))];
    int rc = 0;
    switch (s) {
    case STEP_APPEND: {
        if (rng_chance(&w->rng, 1, 8))
            w->epoch++;
        buf_reset(&w->b);
        test_batch_for(&w->b, w->seed, model_end(&w->m), w->records_max, w->value_bytes_max,
                       1700000000000);
        int64_t end = model_end(&w->m);
        rc = model_append(&w->m, w->log, &w->b, w->epoch);
        assert_true(rc != 0 || model_end(&w->m) > end);
        break;
    }
    case STEP_FLUSH:
        rc = log_flush(w->log, model_end(&w->m), on_flush, w);
        if (rc == 1) {
            w->durable = MAX(w->durable, model_end(&w->m));
            rc = 0;
        }
        break;
    case STEP_RUN:
        log_flusher_run_pending(w->fl);
        log_flusher_drain(w->fl);
        break;
    case STEP_TRUNCATE: {
        /* A follower dropping a divergent suffix of up to 6 batches. */
        size_t back = (size_t)rng_range(&w->rng, 1, 6);
        if (w->m.len == 0 || log_error(w->log) != 0)
            break;
        int64_t at = w->m.v[w->m.len - MIN(back, w->m.len)].base_offset;
        if (at < log_start_offset(w->log))
            break; /* a follower never truncates below its log start */
        rc = log_truncate_to(w->log, at);
        /* Even a failed truncation may have cut: what survives is a prefix of the model. */
        w->durable = MIN(w->durable, at);
        if (rc != 0)
            break; /* the index too may or may not be cut: a prefix either way */
        model_truncate(&w->m, at);
        while (w->txn_len > 0 && w->txn[w->txn_len - 1].last_offset >= at)
            w->txn_len--;
        w->txn_synced = MIN(w->txn_synced, w->txn_len);
        break;
    }
    case STEP_TXN: {
        /* An aborted transaction ending at the last batch (its "marker"), begun up to three
         * batches before. */
        if (w->m.len == 0 || log_error(w->log) != 0 || w->txn_len == TXN_ENTRIES_MAX)
            break;
        size_t k = w->m.len - 1;
        size_t back = (size_t)rng_below(&w->rng, 4); /* once: MIN evaluates twice */
        size_t first = k - MIN(k, back);
        struct producer_aborted e = {.producer_id = (int64_t)(k % 7),
                                     .first_offset = w->m.v[first].base_offset,
                                     .last_offset = w->m.v[k].base_offset,
                                     .last_stable_offset = w->m.v[k].base_offset + 1};
        if (e.last_offset < log_start_offset(w->log) ||
            (w->txn_len > 0 && w->txn[w->txn_len - 1].last_offset >= e.last_offset))
            break;
        rc = log_txn_add(w->log, &e);
        if (rc == 0)
            w->txn[w->txn_len++] = e;
        break;
    }
    case STEP_TXN_SYNC:
        rc = log_txn_sync(w->log);
        if (rc == 0)
            w->txn_synced = w->txn_len;
        break;
    case STEP_RETAIN:
    case STEP_DELETE: {
        /* Everything durable is committed, as in the standalone replica. */
        if (log_error(w->log) != 0)
            break;
        rc = log_set_high_watermark(w->log, log_durable_offset(w->log));
        if (rc == 0 && s == STEP_RETAIN) {
            rc = log_enforce_retention(w->log);
        } else if (rc == 0) {
            int64_t from = log_start_offset(w->log), to = log_high_watermark(w->log);
            rc = log_delete_records(w->log,
                                    from + (int64_t)rng_below(&w->rng, (uint64_t)(to - from) + 1));
        }
        rc = MIN(rc, 0);
        w->start_max = MAX(w->start_max, log_start_offset(w->log));
        break;
    }
    }
    note_error(w, rc);
}

static void world_open(struct world *w)
{
    int rc = log_open(&w->env, "/p", &w->cfg, &w->log);
    if (rc != 0)
        fail_msg("open: %d (%s)", rc, err_str(rc));
}

/* Runs the first n steps of scenario seed from an empty disk (with small batches when
 * `small`: a few short records each). */
static void replay_sized(struct world *w, uint64_t seed, int n, bool small)
{
    world_init(w, seed);
    if (small) {
        w->records_max = 3;
        w->value_bytes_max = 40;
    }
    world_open(w);
    for (int i = 0; i < n; i++)
        step(w);
    expect_healthy(w, n);
}

/* Runs the first n steps of scenario seed from an empty disk. */
static void replay(struct world *w, uint64_t seed, int n)
{
    replay_sized(w, seed, n, false);
}

/* The recovered aborted-transaction index: in order, a prefix of the entries added whose marker
 * is in the recovered log, holding every synced one; the model becomes what was recovered. */
static void check_txn_recovered(struct world *w, const char *what)
{
    static struct producer_aborted got[TXN_ENTRIES_MAX];
    int64_t start = log_start_offset(w->log), end = log_end_offset(w->log);
    uint32_t n = 0;
    if (log_txn_collect(w->log, start, end, got, TXN_ENTRIES_MAX, &n) != 0)
        fail_msg("%s: aborted-transaction index unreadable", what);
    uint32_t k = 0, synced = 0;
    for (uint32_t i = 0; i < w->txn_len; i++) {
        const struct producer_aborted *e = &w->txn[i];
        if (e->last_offset < start || e->last_offset >= end)
            continue;
        synced += i < w->txn_synced;
        if (k < n && memcmp(&got[k], e, sizeof(*e)) == 0)
            k++;
        else if (k < n)
            fail_msg("%s: index entry %u (marker %lld) was never added there", what, k,
                     (long long)got[k].last_offset);
    }
    if (k < n)
        fail_msg("%s: %u index entries beyond those added", what, n - k);
    if (n < synced)
        fail_msg("%s: %u index entries recovered, %u were synced", what, n, synced);
    memcpy(w->txn, got, n * sizeof(*got));
    w->txn_len = w->txn_synced = n;
}

/* After a crash: reopen, check the prefix property and durability, append once more. */
static void check_recovered(struct world *w, const char *what)
{
    /* Only what was reported before the crash counts: a job still queued is performed by
     * log_abandon after it, and one syncing through handles it opens itself (an overlapping
     * sync) then succeeds on what the crash left, which no dead process could report. */
    int64_t durable = w->durable;
    log_abandon(w->log); /* the process died: in-flight syncs fail on stale handles */
    w->log = NULL;
    w->durable = durable;
    world_open(w);
    int64_t end = log_end_offset(w->log);
    size_t n = model_prefix_len(&w->m, end);
    if (end < w->durable || model_end(&w->m) < end)
        fail_msg("%s: recovered end %lld, durable %lld, appended %lld", what, (long long)end,
                 (long long)w->durable, (long long)model_end(&w->m));
    /* The start offset may fall back to what was synced, never beyond what was set. */
    if (log_start_offset(w->log) > w->start_max)
        fail_msg("%s: recovered start %lld, never above %lld", what,
                 (long long)log_start_offset(w->log), (long long)w->start_max);
    const char *err = model_check_n(&w->m, n, w->log);
    if (err)
        fail_msg("%s: not a prefix: %s", what, err);
    for (size_t i = 0; i < n; i++) {
        if (w->m.v[i].last_offset < log_start_offset(w->log))
            continue; /* deleted: the epoch cache starts at the log start */
        int64_t at = MAX(w->m.v[i].base_offset, log_start_offset(w->log));
        int32_t e = -1;
        if (log_epoch_of(w->log, at, &e) != 0 || e != w->m.v[i].epoch)
            fail_msg("%s: epoch of %lld is %d, want %d", what, (long long)at, e, w->m.v[i].epoch);
    }
    check_txn_recovered(w, what);
    model_truncate(&w->m, end);
    w->epoch = MAX(w->epoch, log_latest_epoch(w->log));
    buf_reset(&w->b);
    test_batch_for(&w->b, w->seed + 1, end, 4, 100, 1700000000000);
    assert_int_equal(model_append(&w->m, w->log, &w->b, w->epoch), 0);
    err = model_check(&w->m, w->log);
    if (err)
        fail_msg("%s: after a new append: %s", what, err);
}

/* Tear offsets for a write of len bytes: header field boundaries, then every 64th byte. */
static size_t tear_points(uint64_t len, uint64_t *out, size_t cap)
{
    static const uint64_t fields[] = {0, 1, 8, 12, 16, 17, 21, 23, 27, 35, 43, 51, 53, 57, 60, 61};
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(fields) && fields[i] < len && n < cap; i++)
        out[n++] = fields[i];
    for (uint64_t t = 64; t < len && n < cap; t += 64)
        out[n++] = t;
    if (len > 0 && n < cap && out[n - 1] != len - 1)
        out[n++] = len - 1;
    return n;
}

static int scenario_count(void)
{
    const char *env = getenv("CHRONIK_CRASH_SCENARIOS");
    return env ? atoi(env) : 3;
}

static void test_crash_matrix(void **state)
{
    (void)state;
    enum { STEPS = 40 };
    uint64_t cases = 0;
    for (int sc = 0; sc < scenario_count(); sc++) {
        uint64_t seed = g_seed * 1000 + (uint64_t)sc;
        /* Crash after every prefix of the scenario (every 3rd, to keep the run short). */
        for (int n = 1 + sc % 3; n <= STEPS; n += 3) {
            struct world w;
            replay(&w, seed, n);
            uint64_t pending = io_sim_pending_ops(w.io);
            uint64_t *lens = calloc(pending + 1, sizeof(uint64_t));
            for (uint64_t k = 0; k < pending; k++)
                lens[k] = io_sim_pending_write_bytes(w.io, k);
            world_deinit(&w);
            for (uint64_t keep = 0; keep <= pending; keep++) {
                uint64_t tears[512];
                size_t nt =
                    keep < pending && lens[keep] > 0 ? tear_points(lens[keep], tears, 512) : 0;
                for (size_t t = 0; t <= nt; t++) {
                    /* t == nt: the next operation lost whole (or kept whole when keep+1). */
                    replay(&w, seed, n);
                    assert_int_equal(io_sim_pending_ops(w.io), pending);
                    io_sim_crash_at(w.io, keep, t < nt ? tears[t] : 0);
                    char what[96];
                    snprintf(what, sizeof(what), "seed %llu steps %d keep %llu tear %lld",
                             (unsigned long long)seed, n, (unsigned long long)keep,
                             t < nt ? (long long)tears[t] : -1ll);
                    check_recovered(&w, what);
                    world_deinit(&w);
                    cases++;
                }
            }
            free(lens);
        }
    }
    fprintf(stderr, "crash matrix: %llu crash cases\n", (unsigned long long)cases);
    assert_true(cases > 100);
}

/*
 * The literal matrix on small batches: after every step of a scenario, every pending
 * operation kept but the last, and the last write torn at every byte of it (and kept whole).
 */
static void test_tear_last_write_every_byte(void **state)
{
    (void)state;
    enum { STEPS = 30 };
    uint64_t cases = 0;
    for (int sc = 0; sc < 2; sc++) {
        uint64_t seed = g_seed * 1000 + 500 + (uint64_t)sc;
        for (int n = 1; n <= STEPS; n++) {
            struct world w;
            replay_sized(&w, seed, n, true);
            uint64_t pending = io_sim_pending_ops(w.io);
            uint64_t len = pending > 0 ? io_sim_pending_write_bytes(w.io, pending - 1) : 0;
            world_deinit(&w);
            for (uint64_t tear = 0; tear <= len && pending > 0; tear++) {
                replay_sized(&w, seed, n, true);
                /* tear == len: the last write kept whole. */
                if (tear < len)
                    io_sim_crash_at(w.io, pending - 1, tear);
                else
                    io_sim_crash_at(w.io, pending, 0);
                char what[96];
                snprintf(what, sizeof(what), "seed %llu steps %d last write torn at %llu of %llu",
                         (unsigned long long)seed, n, (unsigned long long)tear,
                         (unsigned long long)len);
                check_recovered(&w, what);
                world_deinit(&w);
                cases++;
            }
        }
    }
    fprintf(stderr, "tear matrix: %llu crash cases\n", (unsigned long long)cases);
    assert_true(cases > 1000);
}

/* Long scenarios on a healthy disk, every queued job performed at the end: no step sequence
 * (retention and DeleteRecords racing the jobs that seal rolled segments included) may fail
 * the log, and a clean close and reopen keep everything. */
static void test_sequences_stay_healthy(void **state)
{
    (void)state;
    enum { STEPS = 400 };
    for (int sc = 0; sc < 4 * scenario_count(); sc++) {
        struct world w;
        replay(&w, g_seed * 1000 + 700 + (uint64_t)sc, STEPS);
        log_flusher_run_pending(w.fl);
        log_flusher_drain(w.fl);
        expect_healthy(&w, STEPS);
        assert_true(w.start_max > 0); /* the scenario did delete segments */
        assert_int_equal(log_close(w.log), 0);
        w.log = NULL;
        world_open(&w);
        const char *err = model_check(&w.m, w.log);
        if (err)
            fail_msg("seed %llu: after a clean reopen: %s", (unsigned long long)w.seed, err);
        world_deinit(&w);
    }
}

/* Runs a whole scenario with the nth operation of `kind` failing with err. */
static void run_faulty(uint64_t seed, unsigned kind, uint64_t nth, int err, bool *fired,
                       bool *surfaced)
{
    enum { STEPS = 60 };
    struct world w;
    world_init(&w, seed);
    uint64_t before = io_sim_op_count(w.io, kind);
    io_sim_fail_nth(w.io, kind, nth, err);
    int rc = log_open(&w.env, "/p", &w.cfg, &w.log);
    note_error(&w, rc);
    if (rc < 0) {
        io_sim_fail_clear(w.io);
        world_open(&w);
    }
    for (int i = 0; i < STEPS; i++)
        step(&w);
    log_flusher_run_pending(w.fl);
    log_flusher_drain(w.fl);
    note_error(&w, log_error(w.log));
    if (log_error(w.log) != 0) {
        /* A failed log keeps failing and reports nothing durable any more. */
        buf_reset(&w.b);
        test_batch_for(&w.b, seed, model_end(&w.m), 2, 10, 0);
        struct log_append_result res;
        assert_int_equal(log_append(w.log, w.b.data, w.b.len, w.epoch, &res), log_error(w.log));
        assert_int_equal(log_flush(w.log, INT64_MAX, on_flush, &w), log_error(w.log));
    }
    *fired = io_sim_op_count(w.io, kind) - before >= nth;
    *surfaced = w.first_error != 0;
    if (w.first_error != 0 && w.first_error != err)
        fail_msg("kind %u nth %llu: surfaced %d, injected %d", kind, (unsigned long long)nth,
                 w.first_error, err);
    io_sim_fail_clear(w.io);
    /* Lose everything that was not synced: what was reported durable must still be there. */
    io_sim_crash_at(w.io, 0, 0);
    char what[64];
    snprintf(what, sizeof(what), "fault kind %u nth %llu", kind, (unsigned long long)nth);
    check_recovered(&w, what);
    world_deinit(&w);
}

static void test_fault_injection(void **state)
{
    (void)state;
    static const unsigned kinds[] = {IO_SIM_WRITE,    IO_SIM_SYNC,  IO_SIM_ALLOCATE,
                                     IO_SIM_TRUNCATE, IO_SIM_DIROP, IO_SIM_OPEN};
    int surfaced_count = 0, fired_count = 0;
    for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
        for (uint64_t nth = 1;; nth++) {
            bool fired = false, surfaced = false;
            int err = nth % 2 ? -EIO : -ENOSPC;
            run_faulty(g_seed, kinds[k], nth, err, &fired, &surfaced);
            if (!fired)
                break; /* the scenario has fewer operations of this kind */
            fired_count++;
            surfaced_count += surfaced;
            /* Only removing a stale index file may fail silently (it is a directory op). */
            if (!surfaced && kinds[k] != IO_SIM_DIROP)
                fail_msg("kind %u nth %llu: failure did not surface", kinds[k],
                         (unsigned long long)nth);
            assert_true(nth < 10000);
        }
    }
    fprintf(stderr, "fault injection: %d failures fired, %d surfaced\n", fired_count,
            surfaced_count);
    assert_true(fired_count > 50);
}

int main(void)
{
    g_seed = test_seed("log_crash_test", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_matrix),
        cmocka_unit_test(test_tear_last_write_every_byte),
        cmocka_unit_test(test_fault_injection),
        cmocka_unit_test(test_sequences_stay_healthy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
