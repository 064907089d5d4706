/*
 * Partition log tests on the simulated disk (deterministic, manual flusher): reads against a
 * brute-force model, offset and time index lookups against brute force, truncation at every
 * batch boundary, leader-epoch lookups against brute force and the checkpoint across reopen,
 * retention by time and size, delete_records, group commit, read pins, rolls by age, the
 * follower append path, recovery from crash leftovers, and the open-file bound over many logs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "io/io_sim.h"
#include "log/batch.h"
#include "log/log.h"
#include "log_model.h"
#include "log_testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_seed;

struct fx {
    struct io *io;
    struct clock_sim clock;
    struct log_files *files;
    struct log_flusher *fl;
    struct log_env env;
    struct log_config cfg;
    struct log *log;
    struct model m;
    struct rng rng;
    struct buf b;
    int32_t epoch;
};

static void fx_open(struct fx *f)
{
    int rc = log_open(&f->env, "/p", &f->cfg, &f->log);
    if (rc != 0)
        fail_msg("log_open: %d", rc);
}

static void fx_init(struct fx *f, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->io = io_sim_create();
    clock_sim_init(&f->clock, 1700000000000);
    f->files = log_files_create(f->io, 64);
    f->fl = log_flusher_create(false);
    f->env = (struct log_env){
        .io = f->io, .clock = &f->clock.clock, .files = f->files, .flusher = f->fl};
    log_config_default(&f->cfg);
    f->cfg.segment_bytes = LOG_SEGMENT_BYTES_MIN;
    f->cfg.index_interval_bytes = 1024;
    f->cfg.prealloc_bytes = 16 * KIB;
    model_init(&f->m);
    rng_seed(&f->rng, seed);
    buf_init(&f->b);
    f->epoch = 1;
    fx_open(f);
}

static void fx_deinit(struct fx *f)
{
    if (f->log)
        assert_int_equal(log_close(f->log), 0);
    log_flusher_destroy(f->fl);
    log_files_destroy(f->files);
    io_destroy(f->io);
    model_deinit(&f->m);
    buf_deinit(&f->b);
}

static void check(struct fx *f)
{
    const char *err = model_check(&f->m, f->log);
    if (err)
        fail_msg("log differs from model: %s", err);
}

/* Appends n random batches, sometimes bumping the epoch. */
static void append_n(struct fx *f, int n, int64_t ts_spread)
{
    for (int i = 0; i < n; i++) {
        buf_reset(&f->b);
        test_batch_random(&f->b, &f->rng, 8, 600, 1700000000000, ts_spread);
        if (rng_chance(&f->rng, 1, 10))
            f->epoch += (int32_t)rng_range(&f->rng, 1, 3);
        assert_int_equal(model_append(&f->m, f->log, &f->b, f->epoch), 0);
    }
}

static void on_flush(void *ctx, int err, int64_t durable)
{
    int64_t *out = ctx;
    *out = err < 0 ? err : durable;
}

static void fx_sync(struct fx *f)
{
    int64_t got = -2;
    int rc = log_flush(f->log, log_end_offset(f->log), on_flush, &got);
    assert_true(rc >= 0);
    if (rc == 1)
        return;
    /* A job started by a roll may be ahead of ours: at most two rounds. */
    for (int i = 0; i < 2 && got == -2; i++) {
        log_flusher_run_pending(f->fl);
        log_flusher_drain(f->fl);
    }
    assert_int_equal(got, log_end_offset(f->log));
}

/* Flushes the log to its end with that sync failing (EIO): the log fails. */
static void fail_a_sync(struct fx *f)
{
    int64_t got = -2;
    io_sim_fail_nth(f->io, IO_SIM_SYNC, 1, -EIO);
    assert_int_equal(log_flush(f->log, log_end_offset(f->log), on_flush, &got), 0);
    log_flusher_run_pending(f->fl);
    log_flusher_drain(f->fl);
    io_sim_fail_clear(f->io);
    assert_int_equal(got, -EIO);
    assert_int_equal(log_error(f->log), -EIO);
}

static void reopen(struct fx *f, bool clean)
{
    if (clean) {
        assert_int_equal(log_close(f->log), 0);
    } else {
        log_abandon(f->log);
    }
    f->log = NULL;
    fx_open(f);
}

static void test_append_read_reopen(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed);
    append_n(&f, 300, 1000);
    assert_true(log_segment_count(f.log) > 3);
    check(&f);
    /* Every offset reads from the batch holding it; bytes_max and the limit are honoured. */
    for (int64_t off = 0; off < model_end(&f.m); off += 1 + (int64_t)rng_below(&f.rng, 3)) {
        long i = model_find(&f.m, off);
        struct log_read r;
        assert_int_equal(log_read(f.log, off, 1, INT64_MAX, &r), 0);
        assert_int_equal(r.first_offset, f.m.v[i].base_offset);
        assert_int_equal(r.bytes, f.m.v[i].len); /* KIP-74: first batch whole */
        assert_int_equal(r.next_offset, f.m.v[i].last_offset + 1);
        log_read_release(&r);
        uint64_t max = f.m.v[i].len + ((size_t)i + 1 < f.m.len ? f.m.v[i + 1].len : 0);
        assert_int_equal(log_read(f.log, off, max, INT64_MAX, &r), 0);
        if ((size_t)i + 1 < f.m.len && f.m.v[i + 1].base_offset != f.m.v[i].last_offset + 1)
            fail_msg("model not contiguous");
        log_read_release(&r);
        /* A limit inside the batch hides it: only what is below the high watermark is read. */
        assert_int_equal(log_read(f.log, off, UINT64_MAX, f.m.v[i].last_offset, &r), 0);
        assert_int_equal(r.bytes, 0);
        assert_null(r.file);
    }
    struct log_read r;
    assert_int_equal(log_read(f.log, model_end(&f.m), 100, INT64_MAX, &r), 0);
    assert_int_equal(r.bytes, 0);
    assert_int_equal(log_read(f.log, model_end(&f.m) + 1, 100, INT64_MAX, &r), ERR_RANGE);
    fx_sync(&f);
    reopen(&f, true);
    check(&f);
    append_n(&f, 50, 1000);
    fx_sync(&f);
    reopen(&f, false);
    check(&f);
    append_n(&f, 10, 1000);
    check(&f);
    fx_deinit(&f);
}

/* Brute force: first batch (from the log start) with maxTimestamp >= ts. */
static int64_t brute_time(const struct model *m, int64_t start, int64_t ts)
{
    for (size_t i = 0; i < m->len; i++) {
        if (m->v[i].last_offset >= start && m->v[i].max_timestamp_ms >= ts)
            return m->v[i].base_offset > start ? m->v[i].base_offset : start;
    }
    return -1;
}

static void check_times(struct fx *f)
{
    int64_t lo = 1700000000000 - 10, hi = 1700000000000 + 100000;
    for (int q = 0; q < 400; q++) {
        int64_t ts = (int64_t)rng_range(&f->rng, (uint64_t)lo, (uint64_t)hi);
        int64_t want = brute_time(&f->m, log_start_offset(f->log), ts), got = -1;
        int rc = log_offset_for_timestamp(f->log, ts, &got);
        if (want < 0)
            assert_int_equal(rc, ERR_NOT_FOUND);
        else if (rc != 0 || got != want)
            fail_msg("ts %lld: got %lld rc %d want %lld", (long long)ts, (long long)got, rc,
                     (long long)want);
    }
    int64_t max_ts = -1, max_off = -1;
    for (size_t i = 0; i < f->m.len; i++) {
        if (f->m.v[i].max_timestamp_ms > max_ts) {
            max_ts = f->m.v[i].max_timestamp_ms;
            max_off = f->m.v[i].base_offset;
        }
    }
    int64_t ts, off;
    assert_int_equal(log_max_timestamp(f->log, &ts, &off), 0);
    assert_int_equal(ts, max_ts);
    assert_int_equal(off, max_off);
}

/* Batches of a read-ahead chunk and more, mixed with small ones: the header walk reads only the
 * header after a large batch and whole chunks after small ones, and either way a read returns
 * exactly the batches that fit, and recovery (which reads whole batches through the same
 * cursor) keeps all of them. */
static void test_read_large_batches(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed);
    assert_int_equal(log_close(f.log), 0);
    f.log = NULL;
    f.cfg.segment_bytes = 64 * MIB; /* one segment: a read stops at a segment's end */
    fx_open(&f);
    for (int i = 0; i < 60; i++) {
        buf_reset(&f.b);
        bool large = rng_chance(&f.rng, 1, 2);
        test_batch_random(&f.b, &f.rng, large ? 4 : 8, large ? 100 * KIB : 600, 1700000000000,
                          1000);
        assert_int_equal(model_append(&f.m, f.log, &f.b, f.epoch), 0);
    }
    check(&f);
    assert_int_equal(log_segment_count(f.log), 1);
    for (size_t i = 0; i < f.m.len; i++) {
        /* Room for exactly the next k batches, then one byte short of k + 1. */
        size_t k = (size_t)rng_range(&f.rng, 1, 5);
        k = MIN(k, f.m.len - i);
        uint64_t fit = 0;
        for (size_t j = i; j < i + k; j++)
            fit += f.m.v[j].len;
        uint64_t more = i + k < f.m.len ? f.m.v[i + k].len - 1 : 0;
        struct log_read r;
        assert_int_equal(log_read(f.log, f.m.v[i].base_offset, fit + more, INT64_MAX, &r), 0);
        assert_int_equal(r.bytes, fit);
        assert_int_equal(r.first_offset, f.m.v[i].base_offset);
        assert_int_equal(r.next_offset, f.m.v[i + k - 1].last_offset + 1);
        log_read_release(&r);
    }
    fx_sync(&f);
    reopen(&f, false);
    check(&f);
    fx_deinit(&f);
}

static void test_time_index(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 1);
    int64_t ts;
    int64_t off;
    assert_int_equal(log_max_timestamp(f.log, &ts, &off), ERR_NOT_FOUND);
    assert_int_equal(log_offset_for_timestamp(f.log, 0, &off), ERR_NOT_FOUND);
    append_n(&f, 250, 100000); /* timestamps jump around within 100 s */
    check_times(&f);
    reopen(&f, true);
    check_times(&f);
    reopen(&f, false);
    check_times(&f);
    fx_deinit(&f);
}

/* Appends one single-record batch of timestamp ts in epoch: control (LEADER_CHANGE: a no-op
 * when first in its epoch, else like a log-start marker) or data with a value of value_bytes. */
static void append_one(struct fx *f, bool control, int32_t epoch, size_t value_bytes, int64_t ts)
{
    static const uint8_t key[4] = {0, 0, 0, 2};
    static uint8_t value[20 * KIB];
    assert_true(value_bytes <= sizeof(value));
    struct batch_record rec = {.key = slice_make(key, sizeof(key)),
                               .value = slice_make(control ? NULL : value, value_bytes),
                               .timestamp_ms = ts};
    struct batch_build_opts opts = {.base_offset = log_end_offset(f->log),
                                    .leader_epoch = epoch,
                                    .attributes = control ? BATCH_ATTR_CONTROL : 0,
                                    .producer_id = -1,
                                    .producer_epoch = -1,
                                    .base_sequence = -1};
    buf_reset(&f->b);
    assert_int_equal(batch_build(&f->b, &opts, &rec, 1), 0);
    assert_int_equal(model_append(&f->m, f->log, &f->b, epoch), 0);
}

/* A lookup by timestamp passes over control batches to the data after them, whose timestamps
 * may be earlier (replayed data, event time). Catches: every lookup before a replicated
 * partition's first election answered the offset of its no-op, 0 (found with kafka-python's
 * offsets_for_times on a new topic of replication factor 3). */
static void test_time_lookup_passes_over_control_batches(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 9);
    int64_t t0 = 1600000000000;
    append_one(&f, true, 1, 0, t0 + 100000); /* offset 0: the election, later than the data */
    for (int i = 0; i < 5; i++)
        append_one(&f, false, 1, 1, t0 + i * 1000); /* offsets 1 to 5 */
    append_one(&f, true, 2, 0, t0 + 200000);        /* offset 6: another election */
    append_one(&f, false, 2, 1, t0 + 5000);         /* offset 7 */
    for (int round = 0; round < 3; round++) {
        int64_t off = -1;
        assert_int_equal(log_offset_for_timestamp(f.log, t0 - 5, &off), 0);
        assert_int_equal(off, 1);
        assert_int_equal(log_offset_for_timestamp(f.log, t0 + 2500, &off), 0);
        assert_int_equal(off, 4);
        assert_int_equal(log_offset_for_timestamp(f.log, t0 + 4500, &off), 0);
        assert_int_equal(off, 7);
        /* Only the elections are later: no record has such a timestamp. */
        assert_int_equal(log_offset_for_timestamp(f.log, t0 + 6000, &off), ERR_NOT_FOUND);
        reopen(&f, round == 0); /* closed (indexes as written), then abandoned (recovered) */
    }
    fx_deinit(&f);
}

static void expect_records_read(struct fx *f, int64_t offset, int64_t first, int64_t next,
                                bool empty)
{
    struct log_read r;
    assert_int_equal(log_read_records(f->log, offset, 10 * MIB, INT64_MAX, &r), 0);
    if (r.first_offset != first || r.next_offset != next || (r.file == NULL) != empty)
        fail_msg("records from %lld: [%lld, %lld)%s, want [%lld, %lld)%s", (long long)offset,
                 (long long)r.first_offset, (long long)r.next_offset, r.file ? "" : " empty",
                 (long long)first, (long long)next, empty ? " empty" : "");
    log_read_release(&r);
}

/* What clients read of a replicated partition's log leaves out Raft's no-ops (the first batch
 * of each epoch, a control batch outside any transaction), wherever they are: first, between
 * records, last in a segment, at the end; other control batches stay. The end shown to clients
 * stops before a run of no-ops at the end. Catches: kafka-python 2.0.2 handed the no-ops as
 * records, and a caught-up consumer a no-op short of the end after every leader change. */
static void test_client_reads_leave_out_no_ops(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 11);
    append_one(&f, true, 1, 0, 1700000000000);         /* 0: no-op */
    append_one(&f, false, 1, 20 * KIB, 1700000000000); /* 1 */
    append_one(&f, false, 1, 20 * KIB, 1700000000000); /* 2 */
    append_one(&f, true, 2, 0, 1700000000000);         /* 3: no-op */
    append_one(&f, false, 2, 20 * KIB, 1700000000000); /* 4 */
    append_one(&f, true, 3, 0, 1700000000000);         /* 5: no-op, the segment's last batch */
    assert_int_equal(log_segment_count(f.log), 1);
    append_one(&f, false, 3, 20 * KIB, 1700000000000); /* 6: rolls */
    assert_int_equal(log_segment_count(f.log), 2);
    append_one(&f, true, 3, 0, 1700000000000);   /* 7: control inside its epoch, not a no-op */
    append_one(&f, false, 3, 10, 1700000000000); /* 8 */
    append_one(&f, true, 4, 0, 1700000000000);   /* 9: no-op */
    append_one(&f, true, 5, 0, 1700000000000);   /* 10: no-op */
    static const int64_t ends[][2] = {{11, 9}, {10, 9}, {9, 9}, {8, 8}, {7, 7}, {6, 5},
                                      {5, 5},  {4, 3},  {2, 2}, {1, 0}, {0, 0}};
    for (int round = 0; round < 3; round++) {
        expect_records_read(&f, 0, 1, 3, false);
        expect_records_read(&f, 3, 4, 5, false);
        expect_records_read(&f, 5, 6, 9, false);
        expect_records_read(&f, 9, 11, 11, true);
        struct log_read r; /* Raft's own reads keep them */
        assert_int_equal(log_read(f.log, 0, 10 * MIB, INT64_MAX, &r), 0);
        assert_int_equal(r.first_offset, 0);
        log_read_release(&r);
        for (size_t i = 0; i < ARRAY_LEN(ends); i++)
            if (log_visible_end(f.log, ends[i][0]) != ends[i][1])
                fail_msg("visible end of %lld: %lld, want %lld", (long long)ends[i][0],
                         (long long)log_visible_end(f.log, ends[i][0]), (long long)ends[i][1]);
        fx_sync(&f);
        reopen(&f, round == 0); /* closed, then abandoned: the epochs as written, then rebuilt */
    }
    /* A failed log shows the same ends: a leader whose sync failed answers until it steps down,
     * and its restart must not show less (cluster_sim --brokers seed 500479: 79, then 78). */
    append_one(&f, false, 5, 10, 1700000000000); /* 11 */
    fail_a_sync(&f);
    for (size_t i = 0; i < ARRAY_LEN(ends); i++)
        assert_int_equal(log_visible_end(f.log, ends[i][0]), ends[i][1]);
    log_abandon(f.log);
    f.log = NULL;
    fx_deinit(&f);
}

/* Brute force of Kafka's OffsetForLeaderEpoch over the batches of the model. */
static void brute_epoch_end(const struct model *m, int32_t epoch, int32_t *e_out, int64_t *end)
{
    *e_out = -1;
    *end = -1;
    if (m->len == 0 || epoch < 0)
        return;
    int32_t latest = m->v[m->len - 1].epoch;
    if (epoch == latest) {
        *e_out = epoch;
        *end = model_end(m);
        return;
    }
    if (epoch > latest)
        return;
    int32_t floor = -1;
    for (size_t i = 0; i < m->len; i++) {
        if (m->v[i].epoch > epoch) {
            *e_out = floor >= 0 ? floor : epoch;
            *end = m->v[i].base_offset;
            return;
        }
        floor = m->v[i].epoch;
    }
}

static void check_epochs(struct fx *f)
{
    for (int64_t off = 0; off < model_end(&f->m); off++) {
        int32_t e = -1;
        assert_int_equal(log_epoch_of(f->log, off, &e), 0);
        assert_int_equal(e, f->m.v[model_find(&f->m, off)].epoch);
    }
    int32_t e;
    assert_int_equal(log_epoch_of(f->log, model_end(&f->m), &e), ERR_NOT_FOUND);
    int32_t top = f->m.len ? f->m.v[f->m.len - 1].epoch : 0;
    for (int32_t q = -1; q <= top + 2; q++) {
        int32_t we, ge;
        int64_t wend, gend;
        brute_epoch_end(&f->m, q, &we, &wend);
        log_end_offset_for_epoch(f->log, q, &ge, &gend);
        if (we != ge || wend != gend)
            fail_msg("epoch %d: got (%d, %lld) want (%d, %lld)", q, ge, (long long)gend, we,
                     (long long)wend);
    }
}

static void test_epochs(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 2);
    append_n(&f, 200, 100);
    check_epochs(&f);
    /* An older epoch is refused and leaves the log usable. */
    buf_reset(&f.b);
    test_batch_random(&f.b, &f.rng, 2, 10, 0, 1);
    assert_int_equal(
        log_append(f.log, f.b.data, f.b.len, f.epoch - 1, &(struct log_append_result){0}),
        ERR_INVALID);
    assert_int_equal(log_error(f.log), 0);
    fx_sync(&f);
    reopen(&f, true); /* from the checkpoint */
    check_epochs(&f);
    reopen(&f, false); /* rebuilt from the batches */
    check_epochs(&f);
    fx_deinit(&f);
}

static void test_truncate_every_boundary(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 3);
    append_n(&f, 120, 1000);
    fx_sync(&f);
    /* Offsets inside a batch are refused. */
    for (size_t i = 0; i < f.m.len; i++) {
        if (f.m.v[i].last_offset > f.m.v[i].base_offset)
            assert_int_equal(log_truncate_to(f.log, f.m.v[i].base_offset + 1), ERR_INVALID);
    }
    assert_int_equal(log_truncate_to(f.log, model_end(&f.m) + 1), ERR_RANGE);
    assert_int_equal(log_set_high_watermark(f.log, model_end(&f.m)), 0);
    while (f.m.len > 0) {
        size_t k = f.m.len - 1 - (size_t)rng_below(&f.rng, MIN(f.m.len, (size_t)4));
        int64_t at = f.m.v[k].base_offset;
        assert_int_equal(log_truncate_to(f.log, at), 0);
        model_truncate(&f.m, at);
        assert_int_equal(log_end_offset(f.log), at);
        assert_true(log_high_watermark(f.log) <= at);
        assert_true(log_durable_offset(f.log) <= at);
        check(&f);
        check_epochs(&f);
        if (rng_chance(&f.rng, 1, 4)) {
            append_n(&f, 3, 1000); /* the follower appends its new leader's entries */
            fx_sync(&f);
            check(&f);
            reopen(&f, rng_chance(&f.rng, 1, 2));
            check(&f);
            check_epochs(&f);
        }
    }
    fx_deinit(&f);
}

static void test_retention(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 4);
    /* Old data: timestamps at t0, then an hour later. */
    append_n(&f, 100, 1000);
    uint32_t old_segments = log_segment_count(f.log);
    clock_sim_advance_ms(&f.clock, 3600 * 1000);
    for (int i = 0; i < 100; i++) {
        buf_reset(&f.b);
        test_batch_random(&f.b, &f.rng, 4, 600, clock_wall_ms(&f.clock.clock), 10);
        assert_int_equal(model_append(&f.m, f.log, &f.b, f.epoch), 0);
    }
    f.cfg.retention_ms = 1800 * 1000;
    reopen(&f, true); /* picks up the new configuration */
    /* Nothing is deleted beyond the high watermark. */
    assert_int_equal(log_enforce_retention(f.log), 0);
    assert_int_equal(log_set_high_watermark(f.log, model_end(&f.m)), 0);
    int deleted = log_enforce_retention(f.log);
    assert_true(deleted >= (int)old_segments - 1 && deleted <= (int)old_segments);
    int64_t start = log_start_offset(f.log);
    assert_true(start > 0);
    for (size_t i = 0; i < f.m.len; i++) {
        if (f.m.v[i].last_offset < start)
            assert_true(f.m.v[i].max_timestamp_ms < clock_wall_ms(&f.clock.clock) - 1800 * 1000);
    }
    check(&f);
    /* By size: keep at most ~3 segments' worth. */
    append_n(&f, 300, 10);
    f.cfg.retention_ms = -1;
    f.cfg.retention_bytes = 3 * LOG_SEGMENT_BYTES_MIN;
    reopen(&f, true);
    assert_int_equal(log_set_high_watermark(f.log, model_end(&f.m)), 0);
    assert_true(log_enforce_retention(f.log) > 0);
    /* Kafka's rule: drop the oldest while what remains without it is still >= the limit. */
    uint64_t kept = 0;
    for (size_t i = 0; i < f.m.len; i++)
        kept += f.m.v[i].base_offset >= log_start_offset(f.log) ? f.m.v[i].len : 0;
    assert_true(kept >= (uint64_t)f.cfg.retention_bytes);
    assert_true(kept < (uint64_t)f.cfg.retention_bytes + LOG_SEGMENT_BYTES_MIN);
    check(&f);
    /* delete_records: not past the high watermark; the start survives reopen. */
    int64_t hw = log_high_watermark(f.log);
    assert_int_equal(log_delete_records(f.log, hw + 1), ERR_RANGE);
    int64_t target = log_start_offset(f.log) + (hw - log_start_offset(f.log)) / 2;
    assert_int_equal(log_delete_records(f.log, target), 0);
    assert_int_equal(log_start_offset(f.log), target);
    struct log_read r;
    assert_int_equal(log_read(f.log, target - 1, 10, INT64_MAX, &r), ERR_RANGE);
    check(&f);
    log_flusher_run_pending(f.fl);
    log_flusher_drain(f.fl);
    reopen(&f, false); /* the checkpoint went out with the sync delete_records asked for */
    assert_int_equal(log_start_offset(f.log), target);
    check(&f);
    reopen(&f, true);
    assert_int_equal(log_start_offset(f.log), target);
    fx_deinit(&f);
}

static int g_calls;
static void count_flush(void *ctx, int err, int64_t durable)
{
    int64_t *last = ctx;
    assert_int_equal(err, 0);
    assert_true(durable >= *last);
    *last = durable;
    g_calls++;
}

static void test_group_commit(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 5);
    int64_t last = 0;
    g_calls = 0;
    append_n(&f, 1, 10);
    fx_sync(&f);
    last = log_durable_offset(f.log);
    uint64_t syncs_before = io_sim_op_count(f.io, IO_SIM_SYNC);
    for (int i = 0; i < 20; i++) {
        append_n(&f, 1, 10);
        assert_int_equal(log_flush(f.log, log_end_offset(f.log), count_flush, &last), 0);
    }
    /* One job is in flight; the rest wait and are covered by the next one (a roll may have
     * started one more). */
    for (int i = 0; i < 3; i++) {
        log_flusher_run_pending(f.fl);
        log_flusher_drain(f.fl);
    }
    assert_int_equal(g_calls, 20);
    assert_int_equal(last, log_end_offset(f.log));
    assert_int_equal(log_durable_offset(f.log), log_end_offset(f.log));
    uint64_t syncs = io_sim_op_count(f.io, IO_SIM_SYNC) - syncs_before;
    /* Two jobs, each one fdatasync of the active file (plus a rolled file and the directory
     * when the appends rolled a segment), never one per request. */
    if (syncs > 6)
        fail_msg("%llu syncs for two group commits", (unsigned long long)syncs);
    assert_int_equal(log_flush(f.log, log_end_offset(f.log), count_flush, &last), 1);
    /* A waiter for the future is served once the offsets exist and are synced. */
    int64_t future = log_end_offset(f.log) + 1;
    assert_int_equal(log_flush(f.log, future, count_flush, &last), 0);
    log_flusher_run_pending(f.fl);
    log_flusher_drain(f.fl);
    assert_int_equal(g_calls, 20);
    append_n(&f, 1, 10);
    log_flusher_run_pending(f.fl);
    log_flusher_drain(f.fl);
    assert_int_equal(g_calls, 21);
    fx_deinit(&f);
}

/* What flush callbacks saw, in call order. */
struct flush_calls {
    int n;
    int err[8];
    int64_t durable[8];
};

static void record_flush(void *ctx, int err, int64_t durable)
{
    struct flush_calls *c = ctx;
    assert_true(c->n < 8);
    c->err[c->n] = err;
    c->durable[c->n] = durable;
    c->n++;
}

/* Appends one batch and asks for a flush of everything. */
static void append_flush(struct fx *f, struct flush_calls *calls)
{
    append_n(f, 1, 10);
    assert_int_equal(log_flush(f->log, log_end_offset(f->log), record_flush, calls), 0);
}

/*
 * Issue 8 item 18: an append made while a sync ran waited for that sync to finish before its
 * own started (acks=all p99 up to two syncs). Its sync now starts at once, beside the first;
 * a third request waits. The second sync may finish first, but counts only after the first: in
 * the order they were asked, never the durable offset past a sync that has not succeeded.
 */
static void test_sync_starts_beside_the_one_in_flight(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 21);
    append_n(&f, 1, 10);
    fx_sync(&f); /* writes the checkpoints the open left dirty */
    int64_t before = log_durable_offset(f.log);
    struct flush_calls calls = {0};
    append_flush(&f, &calls);
    int64_t first = log_end_offset(f.log);
    append_flush(&f, &calls);
    int64_t second = log_end_offset(f.log);
    assert_int_equal(log_flusher_queued(f.fl), 2);
    append_flush(&f, &calls);
    assert_int_equal(log_flusher_queued(f.fl), 2);
    /* The second finishes first: nothing is durable until the first has. */
    assert_true(log_flusher_run_last(f.fl));
    log_flusher_drain(f.fl);
    assert_int_equal(calls.n, 0);
    assert_int_equal(log_durable_offset(f.log), before);
    assert_true(log_flusher_run_last(f.fl));
    log_flusher_drain(f.fl);
    assert_int_equal(calls.n, 2);
    assert_int_equal(calls.err[0], 0);
    assert_int_equal(calls.err[1], 0);
    assert_true(calls.durable[0] >= first);
    assert_int_equal(log_durable_offset(f.log), second);
    /* The third request's sync started when the first finished. */
    assert_int_equal(log_flusher_queued(f.fl), 1);
    log_flusher_run_pending(f.fl);
    log_flusher_drain(f.fl);
    assert_int_equal(calls.n, 3);
    assert_int_equal(log_durable_offset(f.log), log_end_offset(f.log));
    fx_deinit(&f);
}

/* The first of two syncs in flight fails: whichever finishes first, the second one's success
 * must not make anything durable (a failed fdatasync may drop the pages it could not write,
 * which the second then never saw dirty), and every waiter gets the error. */
static void test_sync_beside_a_failed_one_counts_nothing(void **state)
{
    (void)state;
    for (int newest_first = 0; newest_first < 2; newest_first++) {
        struct fx f;
        fx_init(&f, g_seed + 22 + (uint64_t)newest_first);
        append_n(&f, 1, 10);
        fx_sync(&f);
        int64_t before = log_durable_offset(f.log);
        struct flush_calls calls = {0};
        append_flush(&f, &calls);
        append_flush(&f, &calls);
        assert_int_equal(log_flusher_queued(f.fl), 2);
        if (newest_first) {
            assert_true(log_flusher_run_last(f.fl));
            log_flusher_drain(f.fl);
        }
        io_sim_fail_nth(f.io, IO_SIM_SYNC, 1, -EIO);
        log_flusher_run_pending(f.fl);
        log_flusher_drain(f.fl);
        io_sim_fail_clear(f.io);
        assert_int_equal(calls.n, 2);
        assert_int_equal(calls.err[0], -EIO);
        assert_int_equal(calls.err[1], -EIO);
        assert_int_equal(log_durable_offset(f.log), before);
        assert_int_equal(log_error(f.log), -EIO);
        log_abandon(f.log);
        f.log = NULL;
        fx_deinit(&f);
    }
}

/* A roll while a sync is in flight: the batch in the new segment is durable only with the
 * new file's directory entry and the old segment's seal, which the next full job does, so no
 * sync of the active file alone starts beside the one in flight. */
static void test_no_sync_beside_a_pending_roll(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 24);
    append_n(&f, 1, 10);
    fx_sync(&f);
    struct flush_calls calls = {0};
    append_flush(&f, &calls);
    uint32_t segs = log_segment_count(f.log);
    while (log_segment_count(f.log) == segs)
        append_n(&f, 1, 10);
    assert_int_equal(log_flush(f.log, log_end_offset(f.log), record_flush, &calls), 0);
    assert_int_equal(log_flusher_queued(f.fl), 1);
    for (int i = 0; i < 2; i++) {
        log_flusher_run_pending(f.fl);
        log_flusher_drain(f.fl);
    }
    assert_int_equal(calls.n, 2);
    assert_int_equal(calls.err[1], 0);
    assert_int_equal(log_durable_offset(f.log), log_end_offset(f.log));
    fx_deinit(&f);
}

static void test_read_pin_survives_deletion(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 6);
    append_n(&f, 250, 10);
    fx_sync(&f);
    assert_true(log_segment_count(f.log) > 2);
    struct log_read r;
    assert_int_equal(log_read(f.log, model_end(&f.m) - 1, UINT64_MAX, INT64_MAX, &r), 0);
    assert_true(r.bytes > 0);
    /* Truncating into the first segment deletes the file the read pinned. */
    assert_int_equal(log_truncate_to(f.log, f.m.v[1].base_offset), 0);
    model_truncate(&f.m, f.m.v[1].base_offset);
    assert_int_equal(log_segment_count(f.log), 1);
    uint8_t *data = malloc(r.bytes);
    assert_int_equal(io_pread(log_file_io(r.file), data, r.bytes, r.position), (ssize_t)r.bytes);
    struct batch_header h;
    assert_int_equal(batch_parse(data, r.bytes, &h), 0);
    assert_int_equal(h.base_offset, r.first_offset);
    free(data);
    log_read_release(&r);
    check(&f);
    fx_deinit(&f);
}

/* log_set_config changes an open log: a shorter roll.ms rolls at the next append, bad values
 * are refused and leave the old configuration in force. */
static void test_set_config(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 8);
    append_n(&f, 1, 10);
    clock_sim_advance_ms(&f.clock, 5000);
    append_n(&f, 1, 10);
    assert_int_equal(log_segment_count(f.log), 1); /* the default roll.ms is 7 days */
    struct log_config bad = f.cfg;
    bad.segment_bytes = LOG_SEGMENT_BYTES_MIN - 1;
    assert_int_equal(log_set_config(f.log, &bad), ERR_INVALID);
    f.cfg.roll_ms = 1000;
    assert_int_equal(log_set_config(f.log, &f.cfg), 0);
    append_n(&f, 1, 10);
    assert_int_equal(log_segment_count(f.log), 2);
    check(&f);
    fx_deinit(&f);
}

static void test_roll_by_age(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 7);
    f.cfg.roll_ms = 1000;
    reopen(&f, true);
    append_n(&f, 1, 10);
    clock_sim_advance_ms(&f.clock, 999);
    append_n(&f, 1, 10);
    assert_int_equal(log_segment_count(f.log), 1);
    clock_sim_advance_ms(&f.clock, 1);
    append_n(&f, 1, 10);
    assert_int_equal(log_segment_count(f.log), 2);
    check(&f);
    fx_deinit(&f);
}

static void test_open_file_bound(void **state)
{
    (void)state;
    enum { LOGS = 8, OPEN_MAX = 16 };
    struct io *io = io_sim_create();
    struct clock_sim clock;
    clock_sim_init(&clock, 1700000000000);
    struct log_files *files = log_files_create(io, OPEN_MAX);
    struct log_flusher *fl = log_flusher_create(false);
    struct log_env env = {.io = io, .clock = &clock.clock, .files = files, .flusher = fl};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.segment_bytes = LOG_SEGMENT_BYTES_MIN;
    struct log *logs[LOGS];
    struct model models[LOGS];
    struct rng rng;
    rng_seed(&rng, g_seed + 8);
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < LOGS; i++) {
        char dir[32];
        snprintf(dir, sizeof(dir), "/p%d", i);
        assert_int_equal(log_open(&env, dir, &cfg, &logs[i]), 0);
        model_init(&models[i]);
    }
    int64_t got = 0;
    uint32_t peak = 0;
    for (int round = 0; round < 1200; round++) {
        int i = (int)rng_below(&rng, LOGS);
        buf_reset(&b);
        test_batch_random(&b, &rng, 16, 1000, 0, 10);
        assert_int_equal(model_append(&models[i], logs[i], &b, 1), 0);
        if (round % 8 == 7) {
            /* Syncs release the pins on rolled segments. */
            for (int j = 0; j < LOGS; j++)
                assert_true(log_flush(logs[j], log_end_offset(logs[j]), on_flush, &got) >= 0);
            log_flusher_run_pending(fl);
            log_flusher_drain(fl);
            log_flusher_run_pending(fl);
            log_flusher_drain(fl);
        }
        /* Reads of random old offsets open sealed segments through the cache. */
        int j = (int)rng_below(&rng, LOGS);
        if (log_end_offset(logs[j]) > 0) {
            struct log_read r;
            int64_t off = (int64_t)rng_below(&rng, (uint64_t)log_end_offset(logs[j]));
            assert_int_equal(log_read(logs[j], off, 1, INT64_MAX, &r), 0);
            log_read_release(&r);
        }
        uint32_t n = log_files_open_count(files);
        peak = MAX(peak, n);
        /* Unpinned files never exceed the bound; pins (actives, unsynced rolls) may add. */
        assert_true(n <= OPEN_MAX + 2 * LOGS);
        if (round % 8 == 7)
            assert_true(n <= OPEN_MAX);
    }
    uint32_t segments = 0;
    for (int i = 0; i < LOGS; i++)
        segments += log_segment_count(logs[i]);
    assert_true(segments > 3 * OPEN_MAX); /* the bound was needed */
    assert_true(peak >= OPEN_MAX);        /* and the cache was used up to it */
    for (int i = 0; i < LOGS; i++) {
        const char *err = model_check(&models[i], logs[i]);
        if (err)
            fail_msg("log %d: %s", i, err);
        assert_true(log_files_open_count(files) <= OPEN_MAX + LOGS);
    }
    for (int i = 0; i < LOGS; i++) {
        assert_int_equal(log_close(logs[i]), 0);
        model_deinit(&models[i]);
    }
    assert_int_equal(log_files_open_count(files), 0);
    buf_deinit(&b);
    log_flusher_destroy(fl);
    log_files_destroy(files);
    io_destroy(io);
}

/* Regression: truncating into (or deleting) a rolled segment whose sync had not run yet left
 * its index files in the next sync job, which then failed the log with ENOENT. */
static void test_truncate_unsynced_roll(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 11);
    /* A job in flight keeps the roll from starting its own, so the rolled file waits. */
    append_n(&f, 1, 10);
    int64_t got = -2;
    assert_int_equal(log_flush(f.log, log_end_offset(f.log), on_flush, &got), 0);
    uint32_t segments = log_segment_count(f.log);
    while (log_segment_count(f.log) < segments + 2)
        append_n(&f, 1, 10);
    size_t k = f.m.len - 1;
    while (k > 0 && f.m.v[k - 1].base_offset >= f.m.v[f.m.len - 1].base_offset - 3)
        k--;
    int64_t at = f.m.v[k > 2 ? k - 2 : 0].base_offset;
    assert_int_equal(log_truncate_to(f.log, at), 0);
    model_truncate(&f.m, at);
    fx_sync(&f);
    assert_int_equal(log_error(f.log), 0);
    append_n(&f, 3, 10);
    fx_sync(&f);
    check(&f);
    reopen(&f, false);
    check(&f);
    fx_deinit(&f);
}

static void test_follower_append_at(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 10);
    append_n(&f, 5, 10);
    struct log_append_result res;
    /* A follower's batch keeps its own offset and epoch; it must start at the log end. */
    buf_reset(&f.b);
    test_batch_random(&f.b, &f.rng, 4, 100, 0, 10);
    batch_stamp(f.b.data, model_end(&f.m) + 1, f.epoch + 2);
    assert_int_equal(log_append_at(f.log, f.b.data, f.b.len, &res), ERR_RANGE);
    batch_stamp(f.b.data, model_end(&f.m), f.epoch - 1);
    assert_int_equal(log_append_at(f.log, f.b.data, f.b.len, &res), ERR_INVALID);
    batch_stamp(f.b.data, model_end(&f.m), f.epoch + 2);
    assert_int_equal(log_append_at(f.log, f.b.data, f.b.len, &res), 0);
    assert_int_equal(res.base_offset, model_end(&f.m));
    model_push(&f.m, f.b.data, f.b.len);
    assert_int_equal(log_latest_epoch(f.log), f.epoch + 2);
    assert_int_equal(log_error(f.log), 0);
    /* A batch whose length field disagrees with the bytes given is refused. */
    assert_int_equal(log_append_at(f.log, f.b.data, f.b.len - 1, &res), ERR_INVALID);
    check(&f);
    fx_deinit(&f);
}

static void test_recovery_leftovers(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 9);
    append_n(&f, 60, 10);
    fx_sync(&f);
    int64_t end = log_end_offset(f.log);
    log_abandon(f.log);
    f.log = NULL;
    /* A crash in the middle of a roll: an empty next segment, a garbage one after a gap,
     * stale temp and orphan index files, and an epoch checkpoint pointing past the end. */
    char path[128];
    struct io_file *file;
    const char *junk[] = {"/p/%020lld.log", "/p/%020lld.log", "/p/%020lld.index",
                          "/p/leader-epoch-checkpoint.tmp"};
    long long at[] = {end, end + 50, end + 90, 0};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), junk[i], at[i]);
        assert_int_equal(io_open(f.io, path, IO_RDWR | IO_CREATE, &file), 0);
        if (i == 1)
            assert_int_equal(io_pwrite(file, "garbage", 7, 0), 7);
        io_close(file);
    }
    assert_int_equal(io_open(f.io, "/p/leader-epoch-checkpoint", IO_RDWR | IO_CREATE, &file), 0);
    char text[64];
    int n = snprintf(text, sizeof(text), "0\n1\n%d %lld\n", f.epoch + 5, (long long)end + 10);
    assert_int_equal(io_truncate(file, 0), 0);
    assert_int_equal(io_pwrite(file, text, (size_t)n, 0), n);
    io_close(file);
    fx_open(&f);
    check(&f);
    check_epochs(&f);
    snprintf(path, sizeof(path), "/p/%020lld.log", (long long)end + 50);
    assert_int_equal(io_exists(f.io, path, NULL), -ENOENT);
    snprintf(path, sizeof(path), "/p/%020lld.index", (long long)end + 90);
    assert_int_equal(io_exists(f.io, path, NULL), -ENOENT);
    assert_int_equal(io_exists(f.io, "/p/leader-epoch-checkpoint.tmp", NULL), -ENOENT);
    append_n(&f, 5, 10);
    check(&f);
    /* After a clean stop, a checkpoint entry past the end is trimmed. */
    assert_int_equal(log_close(f.log), 0);
    f.log = NULL;
    end = model_end(&f.m);
    assert_int_equal(io_open(f.io, "/p/leader-epoch-checkpoint", IO_RDWR, &file), 0);
    n = snprintf(text, sizeof(text), "0\n2\n%d 0\n%d %lld\n", f.m.v[0].epoch, f.epoch + 5,
                 (long long)end);
    assert_int_equal(io_truncate(file, 0), 0);
    assert_int_equal(io_pwrite(file, text, (size_t)n, 0), n);
    io_close(file);
    fx_open(&f);
    assert_int_equal(log_latest_epoch(f.log), f.m.v[0].epoch);
    fx_deinit(&f);
}

/*
 * Issue 8 item 5: a roll submits a job that seals the rolled segment; deleting that segment
 * (DeleteRecords, then retention) before the job ran made the flusher reopen a removed index
 * file by path, and the -ENOENT stuck to the log until restart.
 */
static void test_delete_segment_before_its_seal(void **state)
{
    (void)state;
    for (int by_retention = 0; by_retention < 2; by_retention++) {
        struct fx f;
        fx_init(&f, g_seed + 12 + (uint64_t)by_retention);
        append_n(&f, 20, 10);
        fx_sync(&f);
        /* Roll with no job in flight: the roll submits one holding the rolled segment. */
        uint32_t segments = log_segment_count(f.log);
        while (log_segment_count(f.log) == segments)
            append_n(&f, 1, 10);
        int64_t end = model_end(&f.m);
        assert_int_equal(log_set_high_watermark(f.log, end), 0);
        if (by_retention) {
            struct log_config cfg = f.cfg;
            cfg.retention_bytes = 0;
            assert_int_equal(log_set_config(f.log, &cfg), 0);
            assert_int_equal(log_enforce_retention(f.log), (int)segments);
        } else {
            assert_int_equal(log_delete_records(f.log, f.m.v[f.m.len - 1].base_offset), 0);
        }
        assert_int_equal(log_segment_count(f.log), 1);
        log_flusher_run_pending(f.fl);
        log_flusher_drain(f.fl);
        assert_int_equal(log_error(f.log), 0);
        append_n(&f, 3, 10);
        fx_sync(&f);
        assert_int_equal(log_error(f.log), 0);
        check(&f);
        int64_t start = log_start_offset(f.log);
        reopen(&f, false);
        assert_int_equal(log_start_offset(f.log), start);
        check(&f);
        /* The deleted segments' files are gone, index files included. */
        char path[128];
        snprintf(path, sizeof(path), "/p/%020d.index", 0);
        assert_int_equal(io_exists(f.io, path, NULL), -ENOENT);
        snprintf(path, sizeof(path), "/p/%020d.log", 0);
        assert_int_equal(io_exists(f.io, path, NULL), -ENOENT);
        fx_deinit(&f);
    }
}

/* Found by the crash test's DeleteRecords step: deleting records up to the log end left an
 * epoch entry at the end, and the next append in a newer epoch tripped an assertion. */
static void test_delete_records_to_end_then_new_epoch(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 14);
    append_n(&f, 5, 10);
    fx_sync(&f);
    int64_t end = model_end(&f.m);
    assert_int_equal(log_set_high_watermark(f.log, end), 0);
    assert_int_equal(log_delete_records(f.log, end), 0);
    f.epoch++;
    append_n(&f, 2, 10);
    int32_t want = f.m.v[model_find(&f.m, end)].epoch, epoch = -1;
    assert_true(want > f.m.v[0].epoch);
    assert_int_equal(log_epoch_of(f.log, end, &epoch), 0);
    assert_int_equal(epoch, want);
    fx_sync(&f);
    reopen(&f, false);
    assert_int_equal(log_start_offset(f.log), end);
    assert_int_equal(log_epoch_of(f.log, end, &epoch), 0);
    assert_int_equal(epoch, want);
    check(&f);
    fx_deinit(&f);
}

/* Appends name and content of every file in /p to out (a snapshot of the disk). */
static int snapshot_entry(void *ctx, const char *name)
{
    struct fx *f = ((void **)ctx)[0];
    struct buf *out = ((void **)ctx)[1];
    char path[128];
    snprintf(path, sizeof(path), "/p/%s", name);
    struct io_file *file;
    uint64_t size = 0;
    assert_int_equal(io_open(f->io, path, IO_RDONLY, &file), 0);
    assert_int_equal(io_size(file, &size), 0);
    buf_append(out, name, strlen(name) + 1);
    uint8_t *p = buf_extend(out, (size_t)size);
    assert_int_equal(io_pread(file, p, (size_t)size, 0), (ssize_t)size);
    io_close(file);
    return 0;
}

static void snapshot(struct fx *f, struct buf *out)
{
    void *ctx[2] = {f, out};
    buf_reset(out);
    assert_int_equal(io_list_dir(f->io, "/p", snapshot_entry, ctx), 0);
}

/* Flips a byte of batch k durably: its magic (the header walk of a trusted segment then fails)
 * or one near the end of its records (its CRC then fails). */
static void corrupt_batch(struct fx *f, size_t k, bool header)
{
    struct log_read r;
    assert_int_equal(log_read(f->log, f->m.v[k].base_offset, 1, INT64_MAX, &r), 0);
    assert_int_equal(r.first_offset, f->m.v[k].base_offset);
    uint8_t byte;
    uint64_t at = header ? r.position + 16 : r.position + r.bytes - 2;
    assert_int_equal(io_pread(log_file_io(r.file), &byte, 1, at), 1);
    byte ^= 0x5a;
    assert_int_equal(io_pwrite(log_file_io(r.file), &byte, 1, at), 1);
    assert_int_equal(io_sync(log_file_io(r.file)), 0);
    log_read_release(&r);
}

/* Whether batch k lies in the log's first segment. */
static bool first_segment_holds(struct fx *f, size_t k)
{
    struct log_read a, b;
    assert_int_equal(log_read(f->log, f->m.v[0].base_offset, 1, INT64_MAX, &a), 0);
    assert_int_equal(log_read(f->log, f->m.v[k].base_offset, 1, INT64_MAX, &b), 0);
    bool same = a.file == b.file;
    log_read_release(&a);
    log_read_release(&b);
    return same;
}

/*
 * Issue 8 item 8: recovery truncated at the first invalid batch and deleted every later
 * segment, silently dropping fsynced data behind mid-log corruption. A bad batch followed by
 * valid data, or inside synced data (a segment below the recovery point), must make the open
 * refuse with ERR_DAMAGED and change nothing on disk; a torn tail still recovers.
 */
static void test_midlog_corruption_refused(void **state)
{
    (void)state;
    struct buf before, after;
    buf_init(&before);
    buf_init(&after);
    /* 0: in the active segment with valid batches after it; 1: the header of the first
     * segment's last batch (sealed, below the recovery point: synced); 2: the last batch, a
     * torn tail. */
    for (int where = 0; where < 3; where++) {
        struct fx f;
        fx_init(&f, g_seed + 20 + (uint64_t)where);
        append_n(&f, 120, 10);
        fx_sync(&f);
        assert_true(log_segment_count(f.log) >= 3);
        size_t k = where == 0 ? f.m.len - 3 : f.m.len - 1;
        if (where == 1)
            for (k = 0; first_segment_holds(&f, k + 1);)
                k++;
        corrupt_batch(&f, k, where == 1);
        log_abandon(f.log); /* a crash: the next open scans */
        f.log = NULL;
        snapshot(&f, &before);
        int rc = log_open(&f.env, "/p", &f.cfg, &f.log);
        if (where < 2) {
            assert_int_equal(rc, ERR_DAMAGED);
            assert_null(f.log);
            snapshot(&f, &after);
            assert_int_equal(after.len, before.len);
            assert_memory_equal(after.data, before.data, before.len);
            /* It keeps refusing: nothing was repaired on the way. */
            assert_int_equal(log_open(&f.env, "/p", &f.cfg, &f.log), ERR_DAMAGED);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(log_end_offset(f.log), f.m.v[k].base_offset);
            model_truncate(&f.m, f.m.v[k].base_offset);
            check(&f);
        }
        fx_deinit(&f);
    }
    buf_deinit(&before);
    buf_deinit(&after);
}

/* Issue 8 item 18: the owner thread (the broker's event loop) must not do file-system work
 * that can wait on the disk in steady state. Appends used to fallocate every preallocation
 * chunk inline, and rolls to trim the sealed segment and write its index files inline; the
 * flusher grows the preallocation ahead of the writes and seals now. Only the first chunk of a
 * new segment is allocated inline, with its creation. */
static void test_no_allocation_or_index_write_on_append(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 30);
    append_n(&f, 1, 10); /* the first chunk, allocated with the segment */
    fx_sync(&f);
    uint32_t segments = log_segment_count(f.log);
    uint64_t allocs = io_sim_op_count(f.io, IO_SIM_ALLOCATE);
    uint64_t owner_allocs = 0;
    while (log_segment_count(f.log) < segments + 2) {
        uint64_t before = io_sim_op_count(f.io, IO_SIM_ALLOCATE);
        uint64_t opens = io_sim_op_count(f.io, IO_SIM_OPEN);
        uint32_t n = log_segment_count(f.log);
        append_n(&f, 1, 10);
        bool rolled = log_segment_count(f.log) > n;
        /* A roll opens (creates) one file, the new segment, and allocates its first chunk. */
        assert_int_equal(io_sim_op_count(f.io, IO_SIM_OPEN), opens + (rolled ? 1 : 0));
        owner_allocs += io_sim_op_count(f.io, IO_SIM_ALLOCATE) - before - (rolled ? 1 : 0);
        fx_sync(&f); /* the flusher runs between appends, as it keeps up in steady state */
    }
    assert_int_equal(owner_allocs, 0);
    assert_true(io_sim_op_count(f.io, IO_SIM_ALLOCATE) > allocs + 2); /* the flusher's */
    check(&f);
    reopen(&f, false);
    check(&f);
    fx_deinit(&f);
}

static uint64_t first_segment_file_bytes(struct fx *f)
{
    struct io_file *file = NULL;
    uint64_t size = 0;
    assert_int_equal(io_open(f->io, "/p/00000000000000000000.log", IO_RDWR, &file), 0);
    assert_int_equal(io_size(file, &size), 0);
    io_close(file);
    return size;
}

/* Zeroes batch k durably, as pages that never reached the disk read (preallocated space). */
static void zero_batch(struct fx *f, size_t k)
{
    struct log_read r;
    assert_int_equal(log_read(f->log, f->m.v[k].base_offset, 1, INT64_MAX, &r), 0);
    uint8_t *zeros = calloc(1, r.bytes);
    assert_non_null(zeros);
    assert_int_equal(io_pwrite(log_file_io(r.file), zeros, r.bytes, r.position), (ssize_t)r.bytes);
    assert_int_equal(io_sync(log_file_io(r.file)), 0);
    free(zeros);
    log_read_release(&r);
}

/* A crash, then the unclean open that must end the log before batch k, as a torn tail. */
static void reopen_torn_at(struct fx *f, size_t k)
{
    log_abandon(f->log);
    f->log = NULL;
    assert_int_equal(log_open(&f->env, "/p", &f->cfg, &f->log), 0);
    assert_int_equal(log_end_offset(f->log), f->m.v[k].base_offset);
    model_truncate(&f->m, f->m.v[k].base_offset);
    check(f);
}

/* Issue 12 (cluster_sim seeds 1584 and 15 --reorder): a power loss can persist later unsynced
 * writes of the active segment but not earlier ones, and a failed fsync drops the pages it did
 * not write; both leave zero bytes followed by valid batches. That region was never synced
 * (a completed sync would have persisted it), so nothing from it on was acknowledged: it is a
 * torn tail, not damage, and recovery must truncate there instead of keeping the partition
 * offline forever. Garbage there is still refused (test_midlog_corruption_refused). */
static void test_unsynced_hole_is_a_torn_tail(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 32);
    append_n(&f, 120, 10);
    fx_sync(&f);
    size_t k = f.m.len - 3;
    zero_batch(&f, k);
    reopen_torn_at(&f, k);
    fx_deinit(&f);
}

/* cluster_sim --brokers seed 240920: a process appended batches and its fsync failed, which
 * drops their dirty pages from the write-back (Linux may; the simulated disk does) while reads
 * still see them. The next process recovered them from that cache and synced, a no-op for
 * clean pages, then appended and synced more, acknowledged. After a power loss the first
 * batches were gone (zeros) and the acknowledged ones after them were cut as an unsynced tail.
 * Recovery writes what it scanned again before its sync, so all of it is on the disk. */
static void test_failed_sync_then_restart_keeps_what_follows(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 34);
    append_n(&f, 5, 10);
    fx_sync(&f);
    append_n(&f, 3, 10);
    fail_a_sync(&f);
    reopen(&f, false); /* the process dies; the page cache stays */
    check(&f);         /* the three batches are read back from the cache */
    append_n(&f, 3, 10);
    fx_sync(&f); /* acknowledged from here on */
    log_abandon(f.log);
    f.log = NULL;
    io_sim_crash_at(f.io, 0, 0); /* power loss: what was synced, nothing else */
    fx_open(&f);
    check(&f);
    fx_deinit(&f);
}

/* Zeroes, durably, the first 512-byte sector lying wholly inside batch k (or its header up to
 * and including the magic byte), as a power loss leaves an unsynced write that reached the
 * disk only in part; false when batch k holds no such sector. */
static bool zero_sector_of_batch(struct fx *f, size_t k, bool header)
{
    struct log_read r;
    uint8_t zeros[512] = {0};
    assert_int_equal(log_read(f->log, f->m.v[k].base_offset, 1, INT64_MAX, &r), 0);
    uint64_t at = header ? r.position : (r.position / 512 + 1) * 512;
    size_t n = header ? BATCH_OFF_MAGIC + 1 : 512;
    bool inside = at + n <= r.position + r.bytes;
    if (inside) {
        assert_int_equal(io_pwrite(log_file_io(r.file), zeros, n, at), (ssize_t)n);
        assert_int_equal(io_sync(log_file_io(r.file)), 0);
    }
    log_read_release(&r);
    return inside;
}

/* cluster_sim --brokers --reorder seed 250792: a power loss persisted some sectors of an
 * unsynced write in the active segment and later writes, not the write's other sectors. The
 * batch is then part data, part zeros, valid batches after it: never synced either, so a
 * torn tail. Recovery used to accept only a region of zeros and refused the metadata log:
 * the node never started again. A flipped byte with no lost sector is still damage
 * (test_midlog_corruption_refused). */
static void test_partly_written_batch_is_a_torn_tail(void **state)
{
    (void)state;
    /* A lost sector inside the batch; then (cluster_sim --brokers --reorder seed 820688) the
     * batch's header lost up to its magic byte, the rest of its sector kept. */
    for (int header = 0; header < 2; header++) {
        struct fx f;
        fx_init(&f, g_seed + 33);
        append_n(&f, 120, 10);
        fx_sync(&f);
        size_t k = f.m.len - 3;
        while (!zero_sector_of_batch(&f, k, header))
            k--;
        assert_true(k + 1 < f.m.len); /* valid batches follow it */
        reopen_torn_at(&f, k);
        fx_deinit(&f);
    }
}

/* Issue 10 (10,000 idle partitions): a log holding a few bytes (a replica of an idle partition
 * holds its leaders' no-ops) must not reserve a whole preallocation chunk of disk; chunks grow
 * with the segment. Caught: 10,000 replicas per node reserving 16 MiB each (160 GB). */
static void test_small_log_small_allocation(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 31);
    f.cfg.segment_bytes = 256 * MIB;
    f.cfg.prealloc_bytes = LOG_PREALLOC_BYTES_DEFAULT;
    assert_int_equal(log_set_config(f.log, &f.cfg), 0);
    append_n(&f, 1, 10);
    fx_sync(&f);
    assert_true(first_segment_file_bytes(&f) <= LOG_PREALLOC_BYTES_FIRST);
    /* A busy log reaches whole chunks: after 4 MiB the file is at most twice what it holds. */
    while (log_end_offset(f.log) < 4000 || first_segment_file_bytes(&f) < 4 * MIB) {
        append_n(&f, 10, 10);
        fx_sync(&f);
    }
    assert_true(first_segment_file_bytes(&f) <= 2 * 4 * MIB + LOG_PREALLOC_BYTES_FIRST + MIB);
    check(&f);
    fx_deinit(&f);
}

/* The log's files as a crash left them; reopened unclean. */
static void crash_reopen(struct fx *f, uint64_t keep_ops)
{
    log_abandon(f->log);
    f->log = NULL;
    io_sim_fail_clear(f->io);
    io_sim_crash_at(f->io, keep_ops, 0);
    fx_open(f);
}

/*
 * Issue 10 (snapshot install): log_reset replaces the log by an empty one at a later start.
 * Durable once the durable offset reaches it; after a clean or unclean reopen the log is empty
 * there, and a follower's batches at that offset append and survive.
 */
static void test_reset(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 30);
    append_n(&f, 200, 10);
    fx_sync(&f);
    int64_t end = model_end(&f.m), start = end + 17;
    assert_true(log_segment_count(f.log) > 2);
    assert_int_equal(log_reset(f.log, end), ERR_RANGE);
    assert_int_equal(log_reset(f.log, start), 0);
    assert_int_equal(log_start_offset(f.log), start);
    assert_int_equal(log_end_offset(f.log), start);
    assert_true(log_durable_offset(f.log) < start);
    fx_sync(&f);
    assert_int_equal(log_durable_offset(f.log), start);
    assert_int_equal(log_segment_count(f.log), 1);
    model_truncate(&f.m, f.m.v[0].base_offset);
    reopen(&f, false);
    assert_int_equal(log_start_offset(f.log), start);
    assert_int_equal(log_end_offset(f.log), start);
    assert_int_equal(log_latest_epoch(f.log), -1);
    struct log_append_result res;
    buf_reset(&f.b);
    test_batch_random(&f.b, &f.rng, 4, 100, 0, 10);
    batch_stamp(f.b.data, start, f.epoch + 1);
    assert_int_equal(log_append_at(f.log, f.b.data, f.b.len, &res), 0);
    model_push(&f.m, f.b.data, f.b.len);
    fx_sync(&f);
    reopen(&f, true);
    assert_int_equal(log_start_offset(f.log), start);
    check(&f);
    fx_deinit(&f);
}

/*
 * Issue 10 (snapshot install, crash safety): the sync round that makes a reset durable stopped
 * at its nth disk operation (it fails), then a power loss keeping some of what was unsynced:
 * the reopened log is the old one (same start, every batch) or the new one (empty at the new
 * start), never old segments under the new start or the new segment after the old ones.
 * Before the recovery rule (a start checkpoint beyond the segments opens empty there) a crash
 * after the checkpoint opened an empty log at the old end.
 */
static void test_reset_crash_at_every_step(void **state)
{
    (void)state;
    bool finished = false;
    int olds = 0, news = 0;
    for (uint64_t nth = 1; !finished; nth++) {
        for (uint64_t keep = 0; keep < 3; keep++) {
            struct fx f;
            fx_init(&f, g_seed + 31);
            append_n(&f, 120, 10);
            fx_sync(&f);
            int64_t old_start = log_start_offset(f.log), end = model_end(&f.m);
            int64_t start = end + 5;
            assert_int_equal(log_reset(f.log, start), 0);
            io_sim_fail_nth(f.io, IO_SIM_ALL & ~IO_SIM_READ, nth, -EIO);
            log_flusher_run_pending(f.fl);
            log_flusher_drain(f.fl);
            finished = log_error(f.log) == 0;
            uint64_t pending = io_sim_pending_ops(f.io);
            crash_reopen(&f, keep == 0 ? 0 : keep == 1 ? pending / 2 : pending);
            if (log_start_offset(f.log) == start) {
                assert_int_equal(log_end_offset(f.log), start);
                news++;
            } else {
                assert_int_equal(log_start_offset(f.log), old_start);
                assert_int_equal(log_end_offset(f.log), end);
                check(&f);
                olds++;
            }
            fx_deinit(&f);
        }
    }
    assert_true(olds > 0 && news > 0);
}

/* ---- the aborted-transaction index (issue 11) ---------------------------------------- */

#define TXN_MAX 256

struct txn_want {
    struct producer_aborted v[TXN_MAX]; /* by marker offset */
    uint32_t len;
};

/* An entry for every third batch of the model from index `from` on: its "marker" at the batch's
 * base offset, the transaction from two batches before. */
static void txn_add_entries(struct fx *f, struct txn_want *w, size_t from)
{
    for (size_t i = from; i < f->m.len; i++) {
        if (i % 3 != 2)
            continue;
        struct producer_aborted e = {.producer_id = (int64_t)(i % 5),
                                     .first_offset = f->m.v[i - 2].base_offset,
                                     .last_offset = f->m.v[i].base_offset,
                                     .last_stable_offset = f->m.v[i].base_offset + 1};
        assert_int_equal(log_txn_add(f->log, &e), 0);
        assert_true(w->len < TXN_MAX);
        w->v[w->len++] = e;
    }
}

static void txn_drop_from(struct txn_want *w, int64_t offset)
{
    while (w->len > 0 && w->v[w->len - 1].last_offset >= offset)
        w->len--;
}

/* log_txn_collect against brute force over random ranges and bounds. */
static void txn_check(struct fx *f, const struct txn_want *w)
{
    struct producer_aborted got[TXN_MAX], want[TXN_MAX];
    int64_t start = log_start_offset(f->log), end = log_end_offset(f->log);
    for (int round = 0; round < 300; round++) {
        int64_t from = start + (int64_t)rng_below(&f->rng, (uint64_t)(end - start + 1));
        int64_t upper = from + (int64_t)rng_below(&f->rng, (uint64_t)(end - from + 2));
        uint32_t max = round % 4 == 0 ? 1 + (uint32_t)rng_below(&f->rng, 4) : TXN_MAX;
        if (round == 0) {
            from = start;
            upper = end;
            max = TXN_MAX;
        }
        uint32_t n = 0, k = 0;
        for (uint32_t i = 0; i < w->len && from < upper && k < max; i++) {
            const struct producer_aborted *e = &w->v[i];
            if (e->last_offset < from || e->last_offset < start)
                continue;
            if (e->first_offset < upper)
                want[k++] = *e;
            if (e->last_stable_offset >= upper)
                break;
        }
        assert_int_equal(log_txn_collect(f->log, from, upper, got, max, &n), 0);
        assert_int_equal(n, k);
        for (uint32_t i = 0; i < n; i++) {
            assert_int_equal(got[i].producer_id, want[i].producer_id);
            assert_int_equal(got[i].first_offset, want[i].first_offset);
            assert_int_equal(got[i].last_offset, want[i].last_offset);
            assert_int_equal(got[i].last_stable_offset, want[i].last_stable_offset);
        }
    }
}

static bool file_exists(struct fx *f, const char *path)
{
    bool is_dir = false;
    int rc = io_exists(f->io, path, &is_dir);
    assert_true(rc == 0 || rc == -ENOENT);
    return rc == 0;
}

static uint64_t file_size(struct fx *f, const char *path)
{
    struct io_file *file = NULL;
    uint64_t size = 0;
    assert_int_equal(io_open(f->io, path, IO_RDONLY, &file), 0);
    assert_int_equal(io_size(file, &size), 0);
    io_close(file);
    return size;
}

/* Appends raw bytes to a file (what a crash or a stale file can leave). */
static void file_append(struct fx *f, const char *path, const void *p, size_t n)
{
    struct io_file *file = NULL;
    uint64_t size = 0;
    assert_int_equal(io_open(f->io, path, IO_RDWR, &file), 0);
    assert_int_equal(io_size(file, &size), 0);
    assert_int_equal(io_pwrite(file, p, n, size), (ssize_t)n);
    io_close(file);
}

/* The path of the .txnindex of the segment holding the model's batch k. */
static void txn_path_of(struct fx *f, size_t k, char *out)
{
    struct log_read r;
    assert_int_equal(log_read(f->log, f->m.v[k].base_offset, 1, INT64_MAX, &r), 0);
    int64_t base = f->m.v[k].base_offset;
    /* The segment's base: the first batch of the same file. */
    for (size_t i = k; i-- > 0;) {
        struct log_read q;
        assert_int_equal(log_read(f->log, f->m.v[i].base_offset, 1, INT64_MAX, &q), 0);
        bool same = q.file == r.file;
        log_read_release(&q);
        if (!same)
            break;
        base = f->m.v[i].base_offset;
    }
    log_read_release(&r);
    snprintf(out, 128, "/p/%020lld.txnindex", (long long)base);
}

/* Appends one small batch in the next epoch and waits for it to be durable. */
static void append_new_epoch(struct fx *f)
{
    buf_reset(&f->b);
    test_batch_random(&f->b, &f->rng, 2, 10, 1700000000000, 1);
    f->epoch++;
    assert_int_equal(model_append(&f->m, f->log, &f->b, f->epoch), 0);
    fx_sync(f);
}

/* A new epoch's first append (a new partition's first produce, every leader change) is
 * acknowledged after the segment's sync alone. Writing the epoch checkpoint there (a temp file,
 * two syncs, a rename) put milliseconds into the first acknowledgements. It is written by the
 * job that moves the recovery point past its entries; a crash before that rebuilds them from
 * the batches, and one after reads those below the point from it. */
static void test_new_epoch_append_syncs_the_segment_alone(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 41);
    for (int i = 0; i < 3; i++) {
        uint64_t syncs = io_sim_op_count(f.io, IO_SIM_SYNC);
        uint64_t dirops = io_sim_op_count(f.io, IO_SIM_DIROP);
        append_new_epoch(&f);
        assert_int_equal(io_sim_op_count(f.io, IO_SIM_SYNC), syncs + 1);
        assert_int_equal(io_sim_op_count(f.io, IO_SIM_DIROP), dirops);
    }
    crash_reopen(&f, io_sim_pending_ops(f.io));
    check(&f);
    check_epochs(&f);
    /* Past a roll, the crash keeps the sealing job's checkpoint and recovery point. */
    uint32_t segments = log_segment_count(f.log);
    while (log_segment_count(f.log) < segments + 2)
        append_new_epoch(&f);
    append_new_epoch(&f);
    crash_reopen(&f, io_sim_pending_ops(f.io));
    check(&f);
    check_epochs(&f);
    fx_deinit(&f);
}

/*
 * Issue 11: the aborted-transaction index, against brute force: entries over many segments are
 * collected by Kafka's rules (overlap with [from, upper), the stop at a last stable offset >=
 * upper, the bound); an entry already there is not added twice; one outside the log is refused;
 * a truncation drops the entries from the cut on (and the files of the segments it deletes),
 * as log_txn_truncate does; all of it holds after a clean and an unclean reopen.
 */
static void test_txn_index_collect_truncate(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 40);
    static struct txn_want w;
    w.len = 0;
    append_n(&f, 150, 10);
    assert_true(log_segment_count(f.log) >= 4);
    txn_add_entries(&f, &w, 0);
    txn_check(&f, &w);
    /* Already there: nothing written. Outside the log: refused. */
    assert_int_equal(log_txn_add(f.log, &w.v[w.len / 2]), 0);
    assert_int_equal(log_txn_add(f.log, &w.v[w.len - 1]), 0);
    struct producer_aborted past = {.producer_id = 1,
                                    .first_offset = model_end(&f.m),
                                    .last_offset = model_end(&f.m),
                                    .last_stable_offset = model_end(&f.m) + 1};
    assert_int_equal(log_txn_add(f.log, &past), ERR_RANGE);
    txn_check(&f, &w);
    fx_sync(&f);
    assert_int_equal(log_txn_sync(f.log), 0);
    reopen(&f, true);
    txn_check(&f, &w);
    reopen(&f, false);
    txn_check(&f, &w);
    /* A follower's truncation below entries, into an earlier segment. */
    size_t cut = f.m.len / 2 + 1;
    char last_path[128];
    txn_path_of(&f, f.m.len - 1, last_path);
    assert_true(file_exists(&f, last_path));
    assert_int_equal(log_truncate_to(f.log, f.m.v[cut].base_offset), 0);
    model_truncate(&f.m, f.m.v[cut].base_offset);
    txn_drop_from(&w, model_end(&f.m));
    assert_false(file_exists(&f, last_path)); /* its segment is gone, and so is the index */
    txn_check(&f, &w);
    /* The follower goes on; its state re-adds from where it reads. */
    append_n(&f, 30, 10);
    txn_add_entries(&f, &w, cut);
    txn_check(&f, &w);
    int64_t at = w.v[w.len / 3].last_offset;
    assert_int_equal(log_txn_truncate(f.log, at), 0);
    txn_drop_from(&w, at);
    txn_check(&f, &w);
    reopen(&f, false);
    txn_check(&f, &w);
    fx_deinit(&f);
}

/*
 * Issue 11: what a crash leaves of an index. Unclean opens keep the valid entries only: a torn
 * entry and one past the recovered log end (a stale tail) are cut from the file, and appends go
 * on behind what is kept. A power loss drops the entries added since the last log_txn_sync and
 * keeps the synced ones (a new file's directory entry too, by that sync).
 */
static void test_txn_index_torn_tail_and_power_loss(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 41);
    static struct txn_want w;
    w.len = 0;
    append_n(&f, 60, 10);
    txn_add_entries(&f, &w, 0);
    fx_sync(&f);
    assert_int_equal(log_txn_sync(f.log), 0);
    char path[128];
    txn_path_of(&f, (size_t)model_find(&f.m, w.v[w.len - 1].last_offset), path);
    uint64_t size = file_size(&f, path);
    assert_true(size > 0 && size % 34 == 0);
    /* A torn entry, then a whole one of a marker past the end. */
    uint8_t junk[34];
    memset(junk, 0, sizeof(junk));
    file_append(&f, path, junk, 20);
    reopen(&f, false);
    assert_int_equal(file_size(&f, path), size);
    txn_check(&f, &w);
    memset(junk, 0, sizeof(junk));
    junk[17] = 1;                               /* producer 1, first offset */
    be64_store(junk + 18, model_end(&f.m) + 5); /* its marker: past the end */
    be64_store(junk + 26, model_end(&f.m) + 6);
    file_append(&f, path, junk, sizeof(junk));
    reopen(&f, false);
    assert_int_equal(file_size(&f, path), size);
    txn_check(&f, &w);
    /* Appends go on behind what was kept. */
    size_t from = f.m.len;
    append_n(&f, 30, 10);
    txn_add_entries(&f, &w, from);
    txn_check(&f, &w);
    fx_sync(&f);
    assert_int_equal(log_txn_sync(f.log), 0);
    /* A power loss: the entries since the last log_txn_sync are lost, the log is not. */
    uint32_t synced = w.len;
    from = f.m.len;
    append_n(&f, 30, 10);
    fx_sync(&f);
    txn_add_entries(&f, &w, from);
    assert_true(w.len > synced);
    crash_reopen(&f, 0);
    check(&f);
    w.len = synced;
    txn_check(&f, &w);
    /* And are added again by the state that re-reads the log. */
    txn_add_entries(&f, &w, from);
    txn_check(&f, &w);
    fx_deinit(&f);
}

/*
 * Issue 11: retention and DeleteRecords delete a segment's index with it (the removal queued
 * behind any job, as for its other files); what is left is still answered.
 */
static void test_txn_index_retention(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, g_seed + 42);
    static struct txn_want w;
    w.len = 0;
    append_n(&f, 150, 10);
    txn_add_entries(&f, &w, 0);
    fx_sync(&f);
    assert_true(file_exists(&f, "/p/00000000000000000000.txnindex"));
    f.cfg.retention_bytes = 2 * LOG_SEGMENT_BYTES_MIN;
    assert_int_equal(log_set_config(f.log, &f.cfg), 0);
    assert_int_equal(log_set_high_watermark(f.log, model_end(&f.m)), 0);
    assert_true(log_enforce_retention(f.log) > 0);
    log_flusher_run_pending(f.fl);
    log_flusher_drain(f.fl);
    assert_false(file_exists(&f, "/p/00000000000000000000.txnindex"));
    txn_check(&f, &w);
    reopen(&f, false);
    txn_check(&f, &w);
    fx_deinit(&f);
}

int main(void)
{
    g_seed = test_seed("log_test", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_read_reopen),
        cmocka_unit_test(test_read_large_batches),
        cmocka_unit_test(test_time_lookup_passes_over_control_batches),
        cmocka_unit_test(test_client_reads_leave_out_no_ops),
        cmocka_unit_test(test_time_index),
        cmocka_unit_test(test_epochs),
        cmocka_unit_test(test_truncate_every_boundary),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_read_pin_survives_deletion),
        cmocka_unit_test(test_roll_by_age),
        cmocka_unit_test(test_set_config),
        cmocka_unit_test(test_open_file_bound),
        cmocka_unit_test(test_truncate_unsynced_roll),
        cmocka_unit_test(test_follower_append_at),
        cmocka_unit_test(test_recovery_leftovers),
        cmocka_unit_test(test_delete_segment_before_its_seal),
        cmocka_unit_test(test_delete_records_to_end_then_new_epoch),
        cmocka_unit_test(test_midlog_corruption_refused),
        cmocka_unit_test(test_no_allocation_or_index_write_on_append),
        cmocka_unit_test(test_small_log_small_allocation),
        cmocka_unit_test(test_unsynced_hole_is_a_torn_tail),
        cmocka_unit_test(test_partly_written_batch_is_a_torn_tail),
        cmocka_unit_test(test_failed_sync_then_restart_keeps_what_follows),
        cmocka_unit_test(test_sync_starts_beside_the_one_in_flight),
        cmocka_unit_test(test_sync_beside_a_failed_one_counts_nothing),
        cmocka_unit_test(test_no_sync_beside_a_pending_roll),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_reset_crash_at_every_step),
        cmocka_unit_test(test_new_epoch_append_syncs_the_segment_alone),
        cmocka_unit_test(test_txn_index_collect_truncate),
        cmocka_unit_test(test_txn_index_torn_tail_and_power_loss),
        cmocka_unit_test(test_txn_index_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
