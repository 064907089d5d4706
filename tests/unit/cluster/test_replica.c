/*
 * Tests for the standalone replica on the simulated disk with a manual flusher, so a sync is
 * "slow" for exactly as long as a test wants.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/limits.h"
#include "cluster/replica.h"
#include "io/io_sim.h"
#include "log/batch.h"

#include <stdlib.h>
#include <string.h>

struct fx {
    struct io *io;
    struct clock_sim clock;
    struct log_files *files;
    struct log_flusher *fl;
    struct replica *r;
    struct buf batch; /* one record, appended again and again (the log stamps a copy) */
    struct buf copy;
};

static void fx_init(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    f->io = io_sim_create();
    clock_sim_init(&f->clock, 1700000000000);
    f->files = log_files_create(f->io, 64);
    f->fl = log_flusher_create(false);
    struct log_env env = {
        .io = f->io, .clock = &f->clock.clock, .files = f->files, .flusher = f->fl};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    assert_int_equal(replica_open(&env, "/p", &cfg, 1, &f->r), 0);
    buf_init(&f->batch);
    buf_init(&f->copy);
    struct batch_record rec = {.value = slice_make("v", 1), .timestamp_ms = 1700000000000};
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    assert_int_equal(batch_build(&f->batch, &opts, &rec, 1), 0);
}

static void fx_deinit(struct fx *f)
{
    assert_int_equal(replica_close(f->r), 0);
    log_flusher_destroy(f->fl);
    log_files_destroy(f->files);
    io_destroy(f->io);
    buf_deinit(&f->batch);
    buf_deinit(&f->copy);
}

static int fx_append(struct fx *f, struct replica_commit *c, replica_commit_fn fn, void *ctx)
{
    buf_reset(&f->copy);
    buf_append(&f->copy, f->batch.data, f->batch.len);
    struct log_append_result res;
    return replica_append(f->r, f->copy.data, f->copy.len,
                          c != NULL ? REPLICA_WAIT_COMMIT : REPLICA_WAIT_NONE, 1, c, fn, ctx, &res);
}

static void fx_sync(struct fx *f)
{
    log_flusher_run_pending(f->fl);
    log_flusher_drain(f->fl);
}

static void on_commit(void *ctx, int err)
{
    int *out = ctx;
    *out = err == 0 ? 1 : err;
}

/*
 * Issue 8 item 4: every append registered its own flush waiter, so appends without a waiting
 * producer (acks=0) during one slow sync reached LOG_FLUSH_WAITERS_MAX, the append failed with
 * ERR_TOO_LARGE, and the replica kept that error until restart. A temporary limit must never
 * fail the partition: more appends than the bound while a sync is pending all succeed, the
 * replica stays healthy, and the next syncs make everything committed.
 */
static void test_appends_beyond_waiter_bound_while_sync_pending(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f);
    for (uint32_t i = 0; i < LOG_FLUSH_WAITERS_MAX + 10; i++) {
        int rc = fx_append(&f, NULL, NULL, NULL);
        if (rc != 0)
            fail_msg("append %u failed: %d", i, rc);
    }
    assert_int_equal(replica_error(f.r), 0);
    int64_t end = replica_log_end_offset(f.r);
    assert_int_equal(end, (int64_t)LOG_FLUSH_WAITERS_MAX + 10);
    /* A producer that waits, after the flood: committed once the syncs caught up. */
    struct replica_commit c;
    int committed = 0;
    assert_int_equal(fx_append(&f, &c, on_commit, &committed), 0);
    for (int i = 0; i < 3 && committed == 0; i++)
        fx_sync(&f);
    assert_int_equal(committed, 1);
    assert_int_equal(replica_high_watermark(f.r), end + 1);
    assert_int_equal(replica_error(f.r), 0);
    fx_deinit(&f);
}

/* Issue 8 item 18: appends made while a sync runs waited for it to finish before their own
 * sync started, up to two syncs per answer. Standalone, the replica now registers a second
 * waiter and the log starts a sync of the active file beside the first; appends made while both
 * run are covered by the next one, which starts when the first completes. Commits complete in
 * order and the high watermark reaches the end. */
static void test_appends_during_sync_are_synced_beside_it(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f);
    struct replica_commit c[4];
    int done[4] = {0, 0, 0, 0};
    assert_int_equal(fx_append(&f, &c[0], on_commit, &done[0]), 0);
    assert_int_equal(fx_append(&f, &c[1], on_commit, &done[1]), 0); /* its sync starts now */
    assert_int_equal(fx_append(&f, &c[2], on_commit, &done[2]), 0); /* waits: two in flight */
    fx_sync(&f);
    assert_int_equal(done[0], 1);
    assert_int_equal(done[1], 1);
    assert_int_equal(done[2], 0);
    assert_int_equal(replica_high_watermark(f.r), 2);
    fx_sync(&f);
    assert_int_equal(done[2], 1);
    assert_int_equal(replica_high_watermark(f.r), 3);
    assert_int_equal(fx_append(&f, &c[3], on_commit, &done[3]), 0);
    assert_int_equal(fx_append(&f, NULL, NULL, NULL), 0);
    fx_sync(&f);
    assert_int_equal(done[3], 1);
    assert_int_equal(replica_high_watermark(f.r), 5);
    /* Nothing more to sync: the next round finds no job. */
    fx_sync(&f);
    assert_int_equal(replica_high_watermark(f.r), 5);
    assert_int_equal(replica_error(f.r), 0);
    fx_deinit(&f);
}

/* ---- idempotent producers ---------------------------------------------------------------- */

#define NOW_MS     1700000000000
#define EXPIRE_MS  86400000
#define PIDS_BATCH 3

static void append_idempotent_sized(struct fx *f, int64_t pid, int32_t seq, int64_t ts,
                                    size_t value_bytes, struct log_append_result *res)
{
    static uint8_t value[8192];
    struct batch_record recs[PIDS_BATCH];
    assert_true(value_bytes <= sizeof(value));
    memset(value, 'i', value_bytes);
    for (int i = 0; i < PIDS_BATCH; i++)
        recs[i] =
            (struct batch_record){.value = slice_make(value, value_bytes), .timestamp_ms = ts};
    struct batch_build_opts o = {.producer_id = pid, .producer_epoch = 0, .base_sequence = seq};
    buf_reset(&f->copy);
    assert_int_equal(batch_build(&f->copy, &o, recs, PIDS_BATCH), 0);
    assert_int_equal(replica_append(f->r, f->copy.data, f->copy.len, REPLICA_WAIT_NONE, 1, NULL,
                                    NULL, NULL, res),
                     0);
}

static void append_idempotent(struct fx *f, int64_t pid, int32_t seq, int64_t ts,
                              struct log_append_result *res)
{
    append_idempotent_sized(f, pid, seq, ts, 1, res);
}

static int check_idempotent(struct fx *f, int64_t pid, int32_t seq, struct producer_batch *dup)
{
    struct batch_header h = {.producer_id = pid,
                             .producer_epoch = 0,
                             .base_sequence = seq,
                             .last_offset_delta = PIDS_BATCH - 1};
    return replica_producer_check(f->r, &h, NOW_MS, EXPIRE_MS, dup);
}

/* A standalone replica's producer state: every append is in it at once (a retry is a duplicate
 * with the original offsets), and after a restart it is read back from the log, leaving out
 * batches older than the expiration (they would expire at once). Catches: state kept only in
 * memory, appends missing from it, expired producers brought back at a restart. */
static void test_producer_state_survives_reopen(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f);
    struct producer_batch dup;
    assert_int_equal(check_idempotent(&f, 5, 0, &dup), PRODUCER_APPEND);
    struct log_append_result old, first, second;
    append_idempotent(&f, 6, 0, NOW_MS - EXPIRE_MS - 1000, &old);
    append_idempotent(&f, 5, 0, NOW_MS - 10, &first);
    append_idempotent(&f, 5, PIDS_BATCH, NOW_MS, &second);
    assert_int_equal(check_idempotent(&f, 5, 0, &dup), PRODUCER_DUPLICATE);
    assert_int_equal(dup.first_offset, first.base_offset);
    assert_int_equal(check_idempotent(&f, 5, 2 * PIDS_BATCH + 1, &dup), PRODUCER_OUT_OF_ORDER);
    fx_sync(&f);

    /* Reopened on the same disk. */
    assert_int_equal(replica_close(f.r), 0);
    struct log_env env = {.io = f.io, .clock = &f.clock.clock, .files = f.files, .flusher = f.fl};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    assert_int_equal(replica_open(&env, "/p", &cfg, 1, &f.r), 0);
    assert_int_equal(check_idempotent(&f, 5, PIDS_BATCH, &dup), PRODUCER_DUPLICATE);
    assert_int_equal(dup.first_offset, second.base_offset);
    assert_int_equal(dup.last_offset, second.last_offset);
    assert_int_equal(check_idempotent(&f, 5, 0, &dup), PRODUCER_DUPLICATE);
    assert_int_equal(dup.first_offset, first.base_offset);
    assert_int_equal(check_idempotent(&f, 5, 7, &dup), PRODUCER_OUT_OF_ORDER);
    assert_int_equal(check_idempotent(&f, 5, 2 * PIDS_BATCH, &dup), PRODUCER_APPEND);
    /* The expired producer is unknown: any sequence goes (KIP-360). */
    assert_int_equal(check_idempotent(&f, 6, 40, &dup), PRODUCER_APPEND);
    fx_deinit(&f);
}

/* A producer-state snapshot older than the log start is not the state of the log: batches after
 * it were dropped (here DeleteRecords past them, then a crash before the next clean close), so
 * the state is read from the log start, as Kafka does. Catches: the snapshot taken with the
 * batches between it and the start missing, which judged the producer's next batch out of
 * order (a fatal error for an idempotent producer). */
static void test_producer_snapshot_below_log_start_is_dropped(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f);
    struct producer_batch dup;
    struct log_append_result first, gap, other;
    append_idempotent(&f, 5, 0, NOW_MS, &first);
    assert_int_equal(check_idempotent(&f, 5, 0, &dup), PRODUCER_DUPLICATE); /* state in use */
    fx_sync(&f);
    struct log_env env = {.io = f.io, .clock = &f.clock.clock, .files = f.files, .flusher = f.fl};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    assert_int_equal(replica_close(f.r), 0); /* the snapshot: producer 5 up to sequence 2 */
    assert_int_equal(replica_open(&env, "/p", &cfg, 1, &f.r), 0);
    append_idempotent(&f, 5, PIDS_BATCH, NOW_MS, &gap);
    append_idempotent(&f, 9, 0, NOW_MS, &other);
    fx_sync(&f);
    assert_int_equal(log_delete_records(replica_log(f.r), other.base_offset), 0);
    fx_sync(&f);
    replica_abandon(f.r); /* a crash: the snapshot on disk stays the one of the clean close */
    assert_int_equal(replica_open(&env, "/p", &cfg, 1, &f.r), 0);
    assert_int_equal(replica_log_start_offset(f.r), other.base_offset);
    /* Producer 5's batches are all below the start: unknown, any sequence goes. */
    assert_int_equal(check_idempotent(&f, 5, 2 * PIDS_BATCH, &dup), PRODUCER_APPEND);
    assert_int_equal(check_idempotent(&f, 9, 0, &dup), PRODUCER_DUPLICATE);
    assert_int_equal(dup.first_offset, other.base_offset);
    fx_deinit(&f);
}

/* A snapshot is written at every segment roll, not only at a clean close (issue 11: "a periodic
 * snapshot plus the log tail"): after rolls and a crash the snapshot on disk covers the batches
 * up to the last roll, and the state read back from it and the tail is whole. Catches:
 * snapshots only at a clean close (a crash then rescans everything since the last one). */
static void test_producer_snapshot_at_every_roll(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f);
    struct producer_batch dup;
    struct log_env env = {.io = f.io, .clock = &f.clock.clock, .files = f.files, .flusher = f.fl};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    cfg.segment_bytes = LOG_SEGMENT_BYTES_MIN;
    assert_int_equal(replica_close(f.r), 0);
    assert_int_equal(replica_open(&env, "/p", &cfg, 1, &f.r), 0);
    assert_int_equal(check_idempotent(&f, 5, 0, &dup), PRODUCER_APPEND); /* state in use */
    bool is_dir = false;
    assert_int_equal(io_exists(f.io, "/p/producer-state.snapshot", &is_dir), -ENOENT);
    struct log_append_result res;
    int32_t seq = 0;
    while (log_segment_count(replica_log(f.r)) < 3) {
        append_idempotent_sized(&f, 5, seq, NOW_MS, 4096, &res);
        seq += PIDS_BATCH;
        fx_sync(&f);
    }
    assert_int_equal(io_exists(f.io, "/p/producer-state.snapshot", &is_dir), 0);
    replica_abandon(f.r); /* a crash: no clean close writes one */
    assert_int_equal(replica_open(&env, "/p", &cfg, 1, &f.r), 0);
    assert_int_equal(check_idempotent(&f, 5, seq - PIDS_BATCH, &dup), PRODUCER_DUPLICATE);
    assert_int_equal(dup.first_offset, res.base_offset);
    assert_int_equal(check_idempotent(&f, 5, seq, &dup), PRODUCER_APPEND);
    assert_int_equal(check_idempotent(&f, 5, seq + 1, &dup), PRODUCER_OUT_OF_ORDER);
    fx_deinit(&f);
}

/* ---- the aborted-transaction index (issue 11) ---- */

#define TXN_PIDS      3
#define TXN_ABORT_MAX 512

struct txn_fx {
    struct fx f;
    struct log_env env;
    struct log_config cfg;
    int32_t seq[TXN_PIDS];
    struct producer_aborted want[TXN_ABORT_MAX]; /* the aborted ones, by marker offset */
    uint32_t want_count;
};

static void txn_reopen(struct txn_fx *t, bool clean)
{
    if (clean)
        assert_int_equal(replica_close(t->f.r), 0);
    else
        replica_abandon(t->f.r);
    assert_int_equal(replica_open(&t->env, "/p", &t->cfg, 1, &t->f.r), 0);
}

static void txn_init(struct txn_fx *t)
{
    memset(t, 0, sizeof(*t));
    fx_init(&t->f);
    t->env = (struct log_env){
        .io = t->f.io, .clock = &t->f.clock.clock, .files = t->f.files, .flusher = t->f.fl};
    log_config_default(&t->cfg);
    t->cfg.prealloc_bytes = 0;
    t->cfg.segment_bytes = LOG_SEGMENT_BYTES_MIN; /* the transactions span many segments */
    txn_reopen(t, true);
}

/* One transaction of producer 100 + i % TXN_PIDS: a batch of 1 KiB records, then its marker
 * (ABORT unless commit). */
static void txn_one(struct txn_fx *t, uint32_t i, bool commit)
{
    static uint8_t value[1024];
    memset(value, 't', sizeof(value));
    struct batch_record recs[PIDS_BATCH];
    for (int k = 0; k < PIDS_BATCH; k++)
        recs[k] = (struct batch_record){.value = slice_make(value, sizeof(value)),
                                        .timestamp_ms = NOW_MS};
    uint32_t p = i % TXN_PIDS;
    struct batch_build_opts o = {.producer_id = 100 + p,
                                 .producer_epoch = 0,
                                 .base_sequence = t->seq[p],
                                 .attributes = BATCH_ATTR_TRANSACTIONAL};
    t->seq[p] += PIDS_BATCH;
    struct log_append_result data, marker;
    buf_reset(&t->f.copy);
    assert_int_equal(batch_build(&t->f.copy, &o, recs, PIDS_BATCH), 0);
    assert_int_equal(replica_append(t->f.r, t->f.copy.data, t->f.copy.len, REPLICA_WAIT_NONE, 1,
                                    NULL, NULL, NULL, &data),
                     0);
    struct batch_marker m = {.type = commit ? BATCH_CONTROL_COMMIT : BATCH_CONTROL_ABORT,
                             .coordinator_epoch = 0};
    struct producer_marker pm = {.producer_id = 100 + p, .epoch = 0, .commit = commit};
    assert_int_equal(replica_marker_check(t->f.r, &pm, NOW_MS, EXPIRE_MS), PRODUCER_APPEND);
    buf_reset(&t->f.copy);
    assert_int_equal(batch_build_marker(&t->f.copy, 100 + p, 0, &m, NOW_MS), 0);
    assert_int_equal(replica_append(t->f.r, t->f.copy.data, t->f.copy.len, REPLICA_WAIT_NONE, 1,
                                    NULL, NULL, NULL, &marker),
                     0);
    if (commit)
        return;
    assert_true(t->want_count < TXN_ABORT_MAX);
    t->want[t->want_count++] =
        (struct producer_aborted){.producer_id = 100 + p,
                                  .first_offset = data.base_offset,
                                  .last_offset = marker.base_offset,
                                  .last_stable_offset = marker.base_offset + 1};
}

/* Every aborted transaction, as replica_aborted answers a read_committed fetch from 0 (the
 * log's end as the upper bound, after a sync made it all stable). */
static void txn_check_all(struct txn_fx *t)
{
    for (int k = 0; k < 4 && replica_high_watermark(t->f.r) < replica_log_end_offset(t->f.r); k++)
        fx_sync(&t->f);
    int64_t lso = -1;
    assert_int_equal(replica_last_stable_offset(t->f.r, &lso), 0);
    assert_int_equal(lso, replica_log_end_offset(t->f.r));
    static struct producer_aborted got[TXN_ABORT_MAX];
    uint32_t n = 0;
    assert_int_equal(replica_aborted(t->f.r, 0, lso, got, TXN_ABORT_MAX, &n), 0);
    assert_int_equal(n, t->want_count);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(got[i].producer_id, t->want[i].producer_id);
        assert_int_equal(got[i].first_offset, t->want[i].first_offset);
        assert_int_equal(got[i].last_offset, t->want[i].last_offset);
        assert_int_equal(got[i].last_stable_offset, t->want[i].last_stable_offset);
    }
    /* A fetch from inside: only the transactions overlapping [from, upper). */
    uint32_t mid = t->want_count / 2;
    int64_t from = t->want[mid].first_offset + 1, upper = t->want[mid].last_offset;
    assert_int_equal(replica_aborted(t->f.r, from, upper, got, TXN_ABORT_MAX, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(got[0].last_offset, t->want[mid].last_offset);
}

static uint64_t snapshot_bytes(struct txn_fx *t)
{
    struct io_file *file = NULL;
    uint64_t size = 0;
    assert_int_equal(io_open(t->f.io, "/p/producer-state.snapshot", IO_RDONLY, &file), 0);
    assert_int_equal(io_size(file, &size), 0);
    io_close(file);
    return size;
}

/*
 * Issue 11 (an aborted-transaction index per segment): the producer state kept every aborted
 * transaction in memory and in its snapshot, up to a cap (PRODUCER_STATE_ABORTED_MAX, 1,000,000
 * a partition: 32 MB) past which the oldest were forgotten and a read_committed consumer far
 * behind saw aborted records. Now each segment's .txnindex holds them: the snapshot stays the
 * size of the producers however many transactions abort (fails before: it grew by 32 bytes an
 * abort), and every aborted transaction over many segments is answered, after a clean close,
 * after a crash that keeps the unsynced writes, and after one that loses them (the index entries
 * written since the last snapshot are re-added from the log, those before it were synced with
 * it).
 */
static void test_aborted_index_survives_restarts_and_crashes(void **state)
{
    (void)state;
    struct txn_fx *t = xcalloc(1, sizeof(*t));
    txn_init(t);
    uint32_t i = 0;
    for (; i < 40; i++)
        txn_one(t, i, i % 4 == 3);
    txn_check_all(t);
    txn_reopen(t, true);
    uint64_t before = snapshot_bytes(t);
    for (; i < 240; i++)
        txn_one(t, i, i % 4 == 3);
    assert_true(log_segment_count(replica_log(t->f.r)) > 4);
    txn_check_all(t);
    txn_reopen(t, true);
    assert_int_equal(snapshot_bytes(t), before);
    txn_check_all(t);
    /* A crash that keeps what was written: the index as it stands is re-read. */
    for (; i < 300; i++)
        txn_one(t, i, false);
    fx_sync(&t->f);
    txn_reopen(t, false);
    txn_check_all(t);
    /* A power loss after the log's sync: the index writes since the last snapshot are lost. */
    for (; i < 360; i++)
        txn_one(t, i, false);
    fx_sync(&t->f);
    replica_abandon(t->f.r);
    io_sim_crash_at(t->f.io, 0, 0);
    assert_int_equal(replica_open(&t->env, "/p", &t->cfg, 1, &t->f.r), 0);
    txn_check_all(t);
    fx_deinit(&t->f);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends_beyond_waiter_bound_while_sync_pending),
        cmocka_unit_test(test_appends_during_sync_are_synced_beside_it),
        cmocka_unit_test(test_producer_state_survives_reopen),
        cmocka_unit_test(test_producer_snapshot_below_log_start_is_dropped),
        cmocka_unit_test(test_producer_snapshot_at_every_roll),
        cmocka_unit_test(test_aborted_index_survives_restarts_and_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
