/*
 * Producer state rules (log/producer_state.h), one test per rule of Kafka's: duplicates of the
 * last five batches answered with their original offsets, gaps, stale and new epochs, unknown
 * producers (KIP-360), sequence wraparound at INT32_MAX, expiration, the bound on producers, and
 * the map itself against a model under many inserts and removals; and transactions: the
 * last stable offset, markers (epoch and coordinator-epoch fencing, retries), the entries ABORT
 * markers yield for the log's aborted-transaction index, snapshots (an old version 1 is refused).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/bytes.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "log/producer_state.h"

#include <stdlib.h>
#include <string.h>

static struct producer_append batch(int64_t pid, int16_t epoch, int32_t seq, int32_t n,
                                    int64_t offset, int64_t ts)
{
    return (struct producer_append){.producer_id = pid,
                                    .epoch = epoch,
                                    .first_seq = seq,
                                    .record_count = n,
                                    .first_offset = offset,
                                    .timestamp_ms = ts};
}

static enum producer_verdict check(const struct producer_state *ps, int64_t pid, int16_t epoch,
                                   int32_t seq, int32_t n, struct producer_batch *dup)
{
    struct producer_append a = batch(pid, epoch, seq, n, -1, 0);
    return producer_state_check(ps, &a, dup);
}

static void put(struct producer_state *ps, int64_t pid, int16_t epoch, int32_t seq, int32_t n,
                int64_t offset)
{
    struct producer_append a = batch(pid, epoch, seq, n, offset, 1000);
    producer_state_update(ps, &a);
}

/* A retried batch (same epoch, same first and last sequence) of any of the last five is a
 * duplicate with its original offsets; the sixth oldest is forgotten (then out of order). */
static void test_duplicates_of_last_five(void **state)
{
    (void)state;
    struct producer_state ps;
    producer_state_init(&ps);
    for (int i = 0; i < 6; i++)
        put(&ps, 7, 0, i * 10, 10, 100 + i * 10);
    struct producer_batch dup;
    for (int i = 1; i < 6; i++) {
        memset(&dup, 0, sizeof(dup));
        assert_int_equal(check(&ps, 7, 0, i * 10, 10, &dup), PRODUCER_DUPLICATE);
        assert_int_equal(dup.first_offset, 100 + i * 10);
        assert_int_equal(dup.last_offset, 109 + i * 10);
        assert_int_equal(dup.first_seq, i * 10);
        assert_int_equal(dup.last_seq, i * 10 + 9);
    }
    assert_int_equal(check(&ps, 7, 0, 0, 10, &dup), PRODUCER_OUT_OF_ORDER);
    /* Same first sequence, another last: not the batch written, and not the next one. */
    assert_int_equal(check(&ps, 7, 0, 50, 5, &dup), PRODUCER_OUT_OF_ORDER);
    /* The next one. */
    assert_int_equal(check(&ps, 7, 0, 60, 1, &dup), PRODUCER_APPEND);
    producer_state_deinit(&ps);
}

static void test_gap_is_out_of_order(void **state)
{
    (void)state;
    struct producer_state ps;
    producer_state_init(&ps);
    put(&ps, 1, 3, 0, 5, 0);
    struct producer_batch dup;
    assert_int_equal(check(&ps, 1, 3, 5, 1, &dup), PRODUCER_APPEND);
    assert_int_equal(check(&ps, 1, 3, 6, 1, &dup), PRODUCER_OUT_OF_ORDER);
    assert_int_equal(check(&ps, 1, 3, 3, 1, &dup), PRODUCER_OUT_OF_ORDER);
    producer_state_deinit(&ps);
}

/* Kafka answers INVALID_PRODUCER_EPOCH (not the fatal PRODUCER_FENCED) for a stale epoch, even
 * for what would be a duplicate in that epoch. */
static void test_stale_epoch(void **state)
{
    (void)state;
    struct producer_state ps;
    producer_state_init(&ps);
    put(&ps, 1, 2, 0, 1, 0);
    put(&ps, 1, 3, 0, 1, 1);
    struct producer_batch dup;
    assert_int_equal(check(&ps, 1, 2, 0, 1, &dup), PRODUCER_INVALID_EPOCH);
    assert_int_equal(check(&ps, 1, 2, 1, 1, &dup), PRODUCER_INVALID_EPOCH);
    assert_int_equal(check(&ps, 1, 3, 0, 1, &dup), PRODUCER_DUPLICATE);
    assert_int_equal(dup.first_offset, 1);
    producer_state_deinit(&ps);
}

/* A new epoch starts at sequence 0 and forgets the old epoch's batches. */
static void test_new_epoch_starts_at_zero(void **state)
{
    (void)state;
    struct producer_state ps;
    producer_state_init(&ps);
    put(&ps, 1, 0, 0, 10, 0);
    struct producer_batch dup;
    assert_int_equal(check(&ps, 1, 1, 10, 1, &dup), PRODUCER_OUT_OF_ORDER);
    assert_int_equal(check(&ps, 1, 1, 0, 1, &dup), PRODUCER_APPEND);
    put(&ps, 1, 1, 0, 1, 10);
    const struct producer_entry *e = producer_state_find(&ps, 1);
    assert_non_null(e);
    assert_int_equal(e->epoch, 1);
    assert_int_equal(e->batch_count, 1);
    assert_int_equal(check(&ps, 1, 1, 1, 1, &dup), PRODUCER_APPEND);
    producer_state_deinit(&ps);
}

/* KIP-360 (Kafka 2.5+): an unknown producer is accepted at any sequence, not UNKNOWN_PRODUCER_ID;
 * the same after its state expired. */
static void test_unknown_producer_accepted(void **state)
{
    (void)state;
    struct producer_state ps;
    producer_state_init(&ps);
    struct producer_batch dup;
    assert_int_equal(check(&ps, 42, 0, 17, 3, &dup), PRODUCER_APPEND);
    put(&ps, 42, 0, 17, 3, 0);
    assert_int_equal(check(&ps, 42, 0, 30, 1, &dup), PRODUCER_OUT_OF_ORDER);
    assert_int_equal(producer_state_expire(&ps, 1000 + 86400000 - 1, 86400000), 0);
    assert_non_null(producer_state_find(&ps, 42));
    assert_int_equal(producer_state_expire(&ps, 1000 + 86400000, 86400000), 1);
    assert_null(producer_state_find(&ps, 42));
    assert_int_equal(check(&ps, 42, 0, 30, 1, &dup), PRODUCER_APPEND);
    producer_state_deinit(&ps);
}

/* Sequences wrap from INT32_MAX to 0, within a batch and between batches. */
static void test_sequence_wraparound(void **state)
{
    (void)state;
    assert_int_equal(producer_seq_add(INT32_MAX, 1), 0);
    assert_int_equal(producer_seq_add(INT32_MAX - 1, 3), 1);
    assert_int_equal(producer_seq_add(5, 0), 5);
    struct producer_state ps;
    producer_state_init(&ps);
    put(&ps, 9, 0, INT32_MAX - 1, 2, 0); /* last sequence INT32_MAX */
    struct producer_batch dup;
    assert_int_equal(check(&ps, 9, 0, 0, 1, &dup), PRODUCER_APPEND);
    assert_int_equal(check(&ps, 9, 0, 1, 1, &dup), PRODUCER_OUT_OF_ORDER);
    put(&ps, 9, 0, 0, 1, 2);
    put(&ps, 9, 0, INT32_MAX, 3, 3); /* replicated as written: INT32_MAX, 0, 1 */
    const struct producer_entry *e = producer_state_find(&ps, 9);
    assert_int_equal(e->batches[e->batch_count - 1].last_seq, 1);
    assert_int_equal(check(&ps, 9, 0, INT32_MAX, 3, &dup), PRODUCER_DUPLICATE);
    assert_int_equal(dup.first_offset, 3);
    assert_int_equal(dup.last_offset, 5);
    assert_int_equal(check(&ps, 9, 0, 2, 1, &dup), PRODUCER_APPEND);
    producer_state_deinit(&ps);
}

/* Many producers: the map against a model through growth, removals by expiry and copies. */
static void test_map_model(void **state)
{
    (void)state;
    enum { N = 5000 };
    struct producer_state ps, copy;
    producer_state_init(&ps);
    producer_state_init(&copy);
    static int64_t last_ts[N];
    uint64_t x = 88172645463325252ull;
    for (int round = 0; round < 20000; round++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t pid = (int64_t)(x % N) * 1000003;
        int64_t ts = round;
        const struct producer_entry *e = producer_state_find(&ps, pid);
        int32_t seq = e != NULL ? producer_seq_add(e->batches[e->batch_count - 1].last_seq, 1) : 0;
        put(&ps, pid, 0, seq, 1, round);
        struct producer_append a = batch(pid, 0, seq, 1, round, ts);
        producer_state_update(&ps, &a); /* a duplicate write: same batch twice in the entry */
        last_ts[x % N] = ts + 1;
        if (round % 2000 == 1999) {
            uint32_t gone = producer_state_expire(&ps, round - 500, 0);
            uint32_t expected = 0;
            for (int i = 0; i < N; i++) {
                bool live = last_ts[i] != 0 && last_ts[i] - 1 > round - 500;
                expected += last_ts[i] != 0 && !live;
                if (!live)
                    last_ts[i] = 0;
                assert_int_equal(producer_state_find(&ps, (int64_t)i * 1000003) != NULL, live);
            }
            assert_int_equal(gone, expected);
            producer_state_copy(&copy, &ps);
            assert_int_equal(copy.count, ps.count);
        }
    }
    uint32_t n = 0;
    for (int i = 0; i < N; i++)
        n += producer_state_find(&copy, (int64_t)i * 1000003) != NULL;
    assert_int_equal(n, copy.count);
    producer_state_clear(&ps);
    assert_int_equal(ps.count, 0);
    assert_null(producer_state_find(&ps, 0));
    producer_state_deinit(&ps);
    producer_state_deinit(&copy);
}

/* At PRODUCER_STATE_PRODUCERS_MAX the producer written longest ago makes room. */
static void test_bound_forgets_oldest(void **state)
{
    (void)state;
    struct producer_state ps;
    producer_state_init(&ps);
    for (int64_t i = 0; i < (int64_t)PRODUCER_STATE_PRODUCERS_MAX; i++) {
        struct producer_append a = batch(i, 0, 0, 1, i, 10 + i);
        producer_state_update(&ps, &a);
    }
    assert_int_equal(ps.count, PRODUCER_STATE_PRODUCERS_MAX);
    struct producer_append a = batch(-5 + 10000000, 0, 0, 1, 0, 5);
    producer_state_update(&ps, &a);
    assert_int_equal(ps.count, PRODUCER_STATE_PRODUCERS_MAX);
    assert_null(producer_state_find(&ps, 0));
    assert_non_null(producer_state_find(&ps, 1));
    assert_non_null(producer_state_find(&ps, 10000000 - 5));
    producer_state_deinit(&ps);
}

static void put_txn(struct producer_state *ps, int64_t pid, int16_t epoch, int32_t seq, int32_t n,
                    int64_t offset)
{
    struct producer_append a = batch(pid, epoch, seq, n, offset, 1000);
    a.transactional = true;
    producer_state_update(ps, &a);
}

/* Returns whether the marker aborted a transaction, *out its index entry. */
static bool end_txn_entry(struct producer_state *ps, int64_t pid, int16_t epoch, bool commit,
                          int64_t offset, struct producer_aborted *out)
{
    struct producer_marker m = {.producer_id = pid,
                                .epoch = epoch,
                                .coordinator_epoch = 0,
                                .commit = commit,
                                .offset = offset,
                                .timestamp_ms = 1000};
    return producer_state_end_txn(ps, &m, out);
}

static void end_txn(struct producer_state *ps, int64_t pid, int16_t epoch, bool commit,
                    int64_t offset)
{
    struct producer_aborted unused;
    end_txn_entry(ps, pid, epoch, commit, offset, &unused);
}

/* The last stable offset is the first offset of the oldest open transaction, capped by the high
 * watermark; a transaction ended by a marker at or past the high watermark still holds it (the
 * marker may be lost); only ABORT yields an aborted-transaction index entry, with the LSO after
 * it. */
static void test_last_stable_offset(void **state)
{
    (void)state;
    struct producer_state ps;
    producer_state_init(&ps);
    assert_int_equal(producer_state_stable_offset(&ps, 10), 10);
    put_txn(&ps, 1, 0, 0, 2, 10); /* A: 10..11 */
    put(&ps, 9, 0, 0, 1, 12);     /* idempotent only: never unstable */
    put_txn(&ps, 2, 0, 0, 1, 13); /* B: 13 */
    put_txn(&ps, 1, 0, 2, 1, 14); /* A goes on: still from 10 */
    assert_int_equal(producer_state_stable_offset(&ps, 15), 10);
    assert_int_equal(producer_state_stable_offset(&ps, 5), 5);
    struct producer_aborted out;
    assert_true(end_txn_entry(&ps, 1, 0, false, 15, &out)); /* A aborted at 15 */
    assert_int_equal(out.producer_id, 1);
    assert_int_equal(out.first_offset, 10);
    assert_int_equal(out.last_offset, 15);
    assert_int_equal(out.last_stable_offset, 13); /* B was open */
    /* The marker is not below the high watermark yet: A is still undecided. */
    assert_int_equal(producer_state_stable_offset(&ps, 15), 10);
    assert_int_equal(producer_state_stable_offset(&ps, 16), 13);
    assert_false(end_txn_entry(&ps, 2, 0, true, 16, &out)); /* B committed */
    assert_int_equal(producer_state_stable_offset(&ps, 17), 17);
    assert_int_equal(ps.ended_count, 0);
    producer_state_deinit(&ps);
}

/* Markers: a stale producer epoch is refused, as is a coordinator epoch below the last marker's;
 * a retried marker ends nothing; a copy carries the transactions. */
static void test_markers(void **state)
{
    (void)state;
    struct producer_state ps, copy;
    producer_state_init(&ps);
    producer_state_init(&copy);
    put_txn(&ps, 1, 3, 0, 1, 0);
    struct producer_marker m = {.producer_id = 1, .epoch = 2, .coordinator_epoch = 5};
    assert_int_equal(producer_state_check_marker(&ps, &m), PRODUCER_INVALID_EPOCH);
    m.epoch = 3;
    assert_int_equal(producer_state_check_marker(&ps, &m), PRODUCER_APPEND);
    /* A plain batch while the transaction is open. */
    struct producer_batch dup;
    assert_int_equal(check(&ps, 1, 3, 1, 1, &dup), PRODUCER_INVALID_TXN_STATE);
    producer_state_copy(&copy, &ps);
    assert_int_equal(producer_state_stable_offset(&copy, 5), 0);
    m.offset = 1;
    m.commit = false;
    struct producer_aborted ab;
    assert_true(producer_state_end_txn(&ps, &m, &ab));
    assert_int_equal(producer_state_stable_offset(&ps, 5), 5);
    assert_int_equal(ab.first_offset, 0);
    assert_int_equal(ab.last_offset, 1);
    m.coordinator_epoch = 4;
    assert_int_equal(producer_state_check_marker(&ps, &m), PRODUCER_COORDINATOR_FENCED);
    m.coordinator_epoch = 5;
    m.offset = 2;
    assert_false(producer_state_end_txn(&ps, &m, &ab)); /* a retry: nothing more aborted */
    assert_int_equal(check(&ps, 1, 3, 1, 1, &dup), PRODUCER_APPEND);
    /* The copy is independent. */
    assert_int_equal(producer_state_stable_offset(&copy, 5), 0);
    /* An open transaction keeps its producer from expiring. */
    put_txn(&ps, 8, 0, 0, 1, 3);
    assert_int_equal(producer_state_expire(&ps, 1000000, 10), 1); /* only producer 1 */
    assert_non_null(producer_state_find(&ps, 8));
    assert_int_equal(producer_state_stable_offset(&ps, 5), 3);
    producer_state_deinit(&ps);
    producer_state_deinit(&copy);
}

/* Snapshots: a state round-trips (producers, batches, open and ended transactions);
 * any flipped byte, a cut, or trailing bytes are ERR_CORRUPT and leave the state empty. */
static void test_snapshot_codec(void **state)
{
    (void)state;
    struct producer_state ps, back;
    producer_state_init(&ps);
    producer_state_init(&back);
    for (int i = 0; i < 7; i++)
        put(&ps, 3, 1, i * 2, 2, 100 + i * 2);
    put_txn(&ps, 4, 0, 0, 1, 120);
    put_txn(&ps, 5, 0, 0, 1, 121);
    end_txn(&ps, 4, 0, false, 122);
    put_txn(&ps, 6, 2, 0, 1, 123);
    end_txn(&ps, 6, 2, true, 124);
    struct buf b;
    buf_init(&b);
    producer_state_encode(&ps, 125, &b);
    int64_t next = -1;
    assert_int_equal(producer_state_decode(&back, b.data, b.len, &next), 0);
    assert_int_equal(next, 125);
    assert_int_equal(back.count, ps.count);
    const struct producer_entry *e = producer_state_find(&back, 3);
    assert_non_null(e);
    assert_int_equal(e->batch_count, PRODUCER_STATE_BATCHES);
    struct producer_batch dup;
    assert_int_equal(check(&back, 3, 1, 12, 2, &dup), PRODUCER_DUPLICATE);
    assert_int_equal(dup.first_offset, 112);
    assert_int_equal(check(&back, 3, 1, 14, 1, &dup), PRODUCER_APPEND);
    assert_int_equal(back.ended_count, ps.ended_count);
    assert_int_equal(producer_state_stable_offset(&back, 124), 121); /* 5 open, 6's marker at hw */
    assert_int_equal(producer_state_stable_offset(&back, 125), 121); /* 5 is open */
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x20;
        assert_int_equal(producer_state_decode(&back, b.data, b.len, &next), ERR_CORRUPT);
        assert_int_equal(back.count, 0);
        b.data[i] ^= 0x20;
    }
    assert_int_equal(producer_state_decode(&back, b.data, b.len - 1, &next), ERR_CORRUPT);
    buf_put_u8(&b, 0);
    assert_int_equal(producer_state_decode(&back, b.data, b.len, &next), ERR_CORRUPT);
    buf_deinit(&b);
    producer_state_deinit(&ps);
    producer_state_deinit(&back);
}

/* A producer known from a marker alone (no batch of its epoch): its next batch starts at 0. */
static void test_marker_then_batch(void **state)
{
    (void)state;
    struct producer_state ps;
    producer_state_init(&ps);
    end_txn(&ps, 11, 4, false, 0);
    struct producer_batch dup;
    assert_int_equal(check(&ps, 11, 4, 3, 1, &dup), PRODUCER_OUT_OF_ORDER);
    assert_int_equal(check(&ps, 11, 4, 0, 1, &dup), PRODUCER_APPEND);
    assert_int_equal(check(&ps, 11, 3, 0, 1, &dup), PRODUCER_INVALID_EPOCH);
    producer_state_deinit(&ps);
}

/* A version 1 snapshot (it held the aborted transactions, now in the log's index) does not
 * decode, even whole and with a good CRC: its state is rebuilt from the log, index entries and
 * all, rather than taken without them. */
static void test_snapshot_v1_refused(void **state)
{
    (void)state;
    struct producer_state ps;
    producer_state_init(&ps);
    struct buf b;
    buf_init(&b);
    buf_put_be32(&b, 0);
    buf_put_be16(&b, 1);  /* version 1 */
    buf_put_be64(&b, 50); /* next offset */
    buf_put_be32(&b, 0);  /* producers */
    buf_put_be32(&b, 0);  /* ended */
    buf_put_be32(&b, 1);  /* aborted: one */
    for (int i = 0; i < 4; i++)
        buf_put_be64(&b, 7);
    be32_store(b.data, crc32c(b.data + 4, b.len - 4));
    int64_t next = -1;
    assert_int_equal(producer_state_decode(&ps, b.data, b.len, &next), ERR_CORRUPT);
    assert_int_equal(next, -1);
    buf_deinit(&b);
    producer_state_deinit(&ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicates_of_last_five),
        cmocka_unit_test(test_gap_is_out_of_order),
        cmocka_unit_test(test_stale_epoch),
        cmocka_unit_test(test_new_epoch_starts_at_zero),
        cmocka_unit_test(test_unknown_producer_accepted),
        cmocka_unit_test(test_sequence_wraparound),
        cmocka_unit_test(test_map_model),
        cmocka_unit_test(test_bound_forgets_oldest),
        cmocka_unit_test(test_last_stable_offset),
        cmocka_unit_test(test_markers),
        cmocka_unit_test(test_snapshot_codec),
        cmocka_unit_test(test_snapshot_v1_refused),
        cmocka_unit_test(test_marker_then_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
