/*
 * The transaction coordinator's pure state (src/txn): the TransactionLogKey/Value records (round
 * trips, Kafka's byte layout, every truncation refused), the table, loading a partition from
 * its batches (the latest record of an id wins, tombstones delete), and Kafka's transition
 * rules: InitProducerId (new id, epoch bump, KIP-360 fencing, exhausted epochs, fencing an
 * ongoing transaction), AddPartitionsToTxn, EndTxn (every state), timeouts and expiry.
 */
#include "base/buf.h"
#include "base/error.h"
#include "base/limits.h"
#include "log/batch.h"
#include "txn/txn.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct slice s(const char *text)
{
    return slice_make(text, strlen(text));
}

static struct txn_part part(const char *topic, int32_t p)
{
    return (struct txn_part){(char *)topic, p};
}

/* A metadata of id in state st with the given partitions (copied). */
static void meta_make(struct txn_meta *m, const char *id, enum txn_state st,
                      const struct txn_part *parts, size_t n)
{
    struct txn_meta base = {.id = (char *)id,
                            .id_len = strlen(id),
                            .producer_id = 1000,
                            .epoch = 3,
                            .timeout_ms = 60000,
                            .state = st,
                            .parts = (struct txn_part *)parts,
                            .part_count = n,
                            .start_ms = 100,
                            .update_ms = 200,
                            .last_epoch = -1};
    txn_meta_copy(m, &base);
}

/* ---- records ------------------------------------------------------------------------------ */

static void test_key_layout_and_round_trip(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    txn_key_encode(&b, s("tx"));
    static const uint8_t want[] = {0, 0, 0, 2, 't', 'x'};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    struct slice id;
    assert_int_equal(txn_key_decode(buf_slice(&b), &id), 0);
    assert_true(slice_eq(id, s("tx")));
    /* A group's key (version 2) is not a transaction's. */
    b.data[1] = 2;
    assert_int_equal(txn_key_decode(buf_slice(&b), &id), ERR_UNSUPPORTED);
    b.data[1] = 0;
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(txn_key_decode(slice_make(b.data, cut), &id), ERR_CORRUPT);
    buf_deinit(&b);
}

static void test_value_round_trip_and_truncations(void **state)
{
    (void)state;
    const struct txn_part parts[] = {part("a", 0), part("a", 3), part("bb", 1)};
    struct txn_meta m;
    meta_make(&m, "tx", TXN_PREPARE_COMMIT, parts, 3);
    struct buf b;
    buf_init(&b);
    txn_value_encode(&b, &m);
    /* version 0, pid, epoch, timeout, status, 2 topics: "a" [0,3], "bb" [1], update, start. */
    assert_int_equal(b.len, 2 + 8 + 2 + 4 + 1 + 4 + (2 + 1 + 4 + 8) + (2 + 2 + 4 + 4) + 8 + 8);
    assert_int_equal(b.data[16], TXN_PREPARE_COMMIT);
    struct txn_meta got;
    assert_int_equal(txn_value_decode(buf_slice(&b), &got), 0);
    assert_int_equal(got.producer_id, 1000);
    assert_int_equal(got.epoch, 3);
    assert_int_equal(got.timeout_ms, 60000);
    assert_int_equal(got.state, TXN_PREPARE_COMMIT);
    assert_int_equal(got.part_count, 3);
    assert_true(txn_meta_has(&got, s("a"), 3));
    assert_true(txn_meta_has(&got, s("bb"), 1));
    assert_false(txn_meta_has(&got, s("bb"), 0));
    assert_int_equal(got.update_ms, 200);
    assert_int_equal(got.start_ms, 100);
    txn_meta_clear(&got);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(txn_value_decode(slice_make(b.data, cut), &got), ERR_CORRUPT);
    /* A status Kafka does not have, and trailing bytes, are corrupt. */
    b.data[16] = 9;
    assert_int_equal(txn_value_decode(buf_slice(&b), &got), ERR_CORRUPT);
    b.data[16] = TXN_PREPARE_COMMIT;
    buf_put_u8(&b, 0);
    assert_int_equal(txn_value_decode(buf_slice(&b), &got), ERR_CORRUPT);
    buf_deinit(&b);
    txn_meta_clear(&m);
}

/* Kafka's version 1 (flexible) value: compact arrays and strings, tagged fields skipped. */
static void test_value_v1_flexible(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    buf_put_be16(&b, 1);
    buf_put_be64(&b, 77);
    buf_put_be16(&b, 2);
    buf_put_be32(&b, 5000);
    buf_put_u8(&b, TXN_ONGOING);
    buf_put_uvarint(&b, 2); /* one topic */
    buf_put_uvarint(&b, 4); /* "top" */
    buf_append(&b, "top", 3);
    buf_put_uvarint(&b, 2); /* one partition */
    buf_put_be32(&b, 9);
    buf_put_uvarint(&b, 0); /* the topic's tags */
    buf_put_be64(&b, 11);
    buf_put_be64(&b, 10);
    buf_put_uvarint(&b, 1); /* one tag: ClientTransactionVersion */
    buf_put_uvarint(&b, 2);
    buf_put_uvarint(&b, 2);
    buf_put_be16(&b, 2);
    struct txn_meta got;
    assert_int_equal(txn_value_decode(buf_slice(&b), &got), 0);
    assert_int_equal(got.producer_id, 77);
    assert_int_equal(got.state, TXN_ONGOING);
    assert_int_equal(got.part_count, 1);
    assert_true(txn_meta_has(&got, s("top"), 9));
    assert_int_equal(got.start_ms, 10);
    txn_meta_clear(&got);
    buf_deinit(&b);
}

/* ---- the table and loading ---------------------------------------------------------------- */

static void put_copy(struct txn_coord *c, const char *id, enum txn_state st)
{
    struct txn_meta m, *stored;
    meta_make(&m, id, st, NULL, 0);
    m.partition = txn_partition_of(s(id), c->partition_count);
    assert_int_equal(txn_coord_put(c, &m, &stored), 0);
    assert_null(m.id);
    assert_int_equal(stored->state, st);
}

static void test_table_put_find_remove_many(void **state)
{
    (void)state;
    struct txn_coord c;
    txn_coord_init(&c, 50);
    char id[32];
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        put_copy(&c, id, TXN_EMPTY);
    }
    put_copy(&c, "id-7", TXN_ONGOING); /* replaces */
    assert_int_equal(c.count, 500);
    for (int i = 0; i < 500; i += 2) {
        snprintf(id, sizeof(id), "id-%d", i);
        txn_coord_remove(&c, s(id));
    }
    assert_int_equal(c.count, 250);
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof(id), "id-%d", i);
        struct txn_meta *m = txn_coord_find(&c, s(id));
        if (i % 2 == 0)
            assert_null(m);
        else
            assert_non_null(m);
    }
    assert_int_equal(txn_coord_find(&c, s("id-7"))->state, TXN_ONGOING);
    txn_coord_deinit(&c);
}

/* Kafka's partition for a transactional id is the group rule: abs(hashCode) mod n. */
static void test_partition_of_matches_kafka(void **state)
{
    (void)state;
    /* "my-txn".hashCode() = -1061187895 in Java; Kafka's Utils.abs masks the sign bit:
     * 1086295753 mod 50 = 3 (not Math.abs's 45). */
    assert_int_equal(txn_partition_of(s("my-txn"), 50), 3);
    assert_int_equal(txn_partition_of(s(""), 50), 0);
}

static void append_record(struct buf *batch, const char *id, const struct txn_meta *value)
{
    struct buf key, val;
    buf_init(&key);
    buf_init(&val);
    txn_key_encode(&key, s(id));
    if (value != NULL)
        txn_value_encode(&val, value);
    struct batch_record rec = {.key = buf_slice(&key),
                               .value = value != NULL ? buf_slice(&val) : slice_make(NULL, 0)};
    struct batch_build_opts opts = {
        .base_offset = 0, .producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    struct buf one;
    buf_init(&one);
    assert_int_equal(batch_build(&one, &opts, &rec, 1), 0);
    /* Stamped with consecutive offsets, as the log would. */
    static int64_t next;
    if (batch->len == 0)
        next = 0;
    be64_store(one.data, (uint64_t)next++);
    buf_append(batch, one.data, one.len);
    buf_deinit(&one);
    buf_deinit(&key);
    buf_deinit(&val);
}

static void test_load_latest_wins_tombstones_delete(void **state)
{
    (void)state;
    struct txn_coord c;
    txn_coord_init(&c, 1);
    const struct txn_part parts[] = {part("t", 0)};
    struct txn_meta a1, a2, b1;
    meta_make(&a1, "a", TXN_ONGOING, parts, 1);
    meta_make(&a2, "a", TXN_PREPARE_ABORT, parts, 1);
    meta_make(&b1, "b", TXN_EMPTY, NULL, 0);
    struct buf log;
    buf_init(&log);
    append_record(&log, "a", &a1);
    append_record(&log, "b", &b1);
    append_record(&log, "a", &a2);
    append_record(&log, "b", NULL);
    assert_int_equal(txn_coord_check(&c, s("a")), TXN_ERR_NOT_COORDINATOR);
    txn_coord_load_begin(&c, 0);
    assert_int_equal(txn_coord_check(&c, s("a")), TXN_ERR_LOAD_IN_PROGRESS);
    int64_t bad = -1;
    assert_int_equal(txn_coord_load_batches(&c, 0, log.data, log.len, 0, &bad), 0);
    txn_coord_load_done(&c, 0);
    assert_int_equal(txn_coord_check(&c, s("a")), TXN_ERR_NONE);
    struct txn_meta *m = txn_coord_find(&c, s("a"));
    assert_non_null(m);
    assert_int_equal(m->state, TXN_PREPARE_ABORT);
    assert_true(txn_meta_has(m, s("t"), 0));
    assert_null(txn_coord_find(&c, s("b")));
    txn_coord_unload(&c, 0);
    assert_null(txn_coord_find(&c, s("a")));
    assert_int_equal(txn_coord_check(&c, s("a")), TXN_ERR_NOT_COORDINATOR);
    /* A corrupt value fails the load, and nothing of the partition is served. */
    log.data[log.len - 20] ^= 0xff; /* inside the last batch: its CRC no longer matches */
    txn_coord_load_begin(&c, 0);
    assert_true(txn_coord_load_batches(&c, 0, log.data, log.len, 0, &bad) < 0);
    txn_coord_load_failed(&c, 0);
    assert_int_equal(txn_coord_check(&c, s("a")), TXN_ERR_UNKNOWN_SERVER_ERROR);
    assert_int_equal(c.count, 0);
    buf_deinit(&log);
    txn_meta_clear(&a1);
    txn_meta_clear(&a2);
    txn_meta_clear(&b1);
    txn_coord_deinit(&c);
}

/* ---- decisions ---------------------------------------------------------------------------- */

static struct txn_init_req init_req(const char *id, int64_t pid, int16_t epoch)
{
    return (struct txn_init_req){.id = s(id),
                                 .timeout_ms = 60000,
                                 .producer_id = pid,
                                 .epoch = epoch,
                                 .timeout_max_ms = 900000,
                                 .new_producer_id = 5000};
}

static void test_init_new_bump_fence_and_refusals(void **state)
{
    (void)state;
    struct txn_meta t;
    bool fence, retry;
    struct txn_init_req r = init_req("x", -1, -1);
    assert_true(txn_init_needs_id(NULL));
    assert_int_equal(txn_decide_init(NULL, &r, 4, 10, &t, &fence, &retry), TXN_ERR_NONE);
    assert_int_equal(t.producer_id, 5000);
    assert_int_equal(t.epoch, 0);
    assert_int_equal(t.state, TXN_EMPTY);
    assert_int_equal(t.partition, 4);
    assert_false(fence);
    txn_meta_clear(&t);
    /* Timeouts: zero and over transaction.max.timeout.ms. */
    r.timeout_ms = 0;
    assert_int_equal(txn_decide_init(NULL, &r, 4, 10, &t, &fence, &retry),
                     TXN_ERR_INVALID_TRANSACTION_TIMEOUT);
    r.timeout_ms = 900001;
    assert_int_equal(txn_decide_init(NULL, &r, 4, 10, &t, &fence, &retry),
                     TXN_ERR_INVALID_TRANSACTION_TIMEOUT);
    r = init_req("", -1, -1);
    assert_int_equal(txn_decide_init(NULL, &r, 4, 10, &t, &fence, &retry), TXN_ERR_INVALID_REQUEST);

    struct txn_meta m;
    const struct txn_part parts[] = {part("t", 0)};
    /* A completed id: same producer id, epoch bumped, partitions cleared. */
    meta_make(&m, "x", TXN_COMPLETE_COMMIT, NULL, 0);
    assert_false(txn_init_needs_id(&m));
    r = init_req("x", -1, -1);
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry), TXN_ERR_NONE);
    assert_int_equal(t.producer_id, 1000);
    assert_int_equal(t.epoch, 4);
    assert_int_equal(t.state, TXN_EMPTY);
    txn_meta_clear(&t);
    /* KIP-360: the producer's own id and epoch are accepted, an older epoch is fenced. */
    r = init_req("x", 1000, 3);
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry), TXN_ERR_NONE);
    txn_meta_clear(&t);
    r = init_req("x", 1000, 2);
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry), TXN_ERR_PRODUCER_FENCED);
    /* A retry of the bump that made epoch 3 (its answer lost) gets epoch 3 again, no append;
     * from any other epoch it is fenced. */
    m.last_epoch = 2;
    m.state = TXN_EMPTY;
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry), TXN_ERR_NONE);
    assert_true(retry);
    assert_int_equal(t.producer_id, 1000);
    assert_int_equal(t.epoch, 3);
    txn_meta_clear(&t);
    /* Once a transaction ran at the new epoch, the old one is a zombie. */
    m.state = TXN_COMPLETE_COMMIT;
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry), TXN_ERR_PRODUCER_FENCED);
    m.state = TXN_COMPLETE_COMMIT;
    m.last_epoch = -1;
    r = init_req("x", 999, 3);
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry), TXN_ERR_PRODUCER_FENCED);
    /* While a change is appended. */
    m.pending = true;
    r = init_req("x", -1, -1);
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry),
                     TXN_ERR_CONCURRENT_TRANSACTIONS);
    m.pending = false;
    /* An exhausted epoch rotates to a new producer id. */
    m.epoch = INT16_MAX - 1;
    assert_true(txn_init_needs_id(&m));
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry), TXN_ERR_NONE);
    assert_int_equal(t.producer_id, 5000);
    assert_int_equal(t.epoch, 0);
    txn_meta_clear(&t);
    txn_meta_clear(&m);
    /* Completing: the producer retries. */
    meta_make(&m, "x", TXN_PREPARE_COMMIT, parts, 1);
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry),
                     TXN_ERR_CONCURRENT_TRANSACTIONS);
    txn_meta_clear(&m);
    /* Ongoing: aborted with the epoch bumped, which fences the old producer. */
    meta_make(&m, "x", TXN_ONGOING, parts, 1);
    assert_int_equal(txn_decide_init(&m, &r, 0, 10, &t, &fence, &retry), TXN_ERR_NONE);
    assert_true(fence);
    assert_int_equal(t.state, TXN_PREPARE_ABORT);
    assert_int_equal(t.epoch, 4);
    assert_true(txn_meta_has(&t, s("t"), 0));
    txn_meta_clear(&t);
    txn_meta_clear(&m);
}

static void test_add_partitions(void **state)
{
    (void)state;
    struct txn_meta m, t;
    bool append;
    const struct txn_part two[] = {part("b", 1), part("a", 2)};
    meta_make(&m, "x", TXN_COMPLETE_ABORT, NULL, 0);
    assert_int_equal(txn_decide_add(NULL, 1000, 3, two, 2, 50, &t, &append),
                     TXN_ERR_INVALID_PRODUCER_ID_MAPPING);
    assert_int_equal(txn_decide_add(&m, 1001, 3, two, 2, 50, &t, &append),
                     TXN_ERR_INVALID_PRODUCER_ID_MAPPING);
    assert_int_equal(txn_decide_add(&m, 1000, 2, two, 2, 50, &t, &append), TXN_ERR_PRODUCER_FENCED);
    assert_int_equal(txn_decide_add(&m, 1000, 3, two, 2, 50, &t, &append), TXN_ERR_NONE);
    assert_true(append);
    assert_int_equal(t.state, TXN_ONGOING);
    assert_int_equal(t.start_ms, 50);
    assert_int_equal(t.part_count, 2);
    assert_string_equal(t.parts[0].topic, "a"); /* kept sorted */
    txn_meta_clear(&m);
    m = t;
    /* Everything there already: nothing to append. */
    assert_int_equal(txn_decide_add(&m, 1000, 3, two, 1, 60, &t, &append), TXN_ERR_NONE);
    assert_false(append);
    /* One more: the start time stays. */
    const struct txn_part more[] = {part("a", 2), part("c", 0)};
    assert_int_equal(txn_decide_add(&m, 1000, 3, more, 2, 70, &t, &append), TXN_ERR_NONE);
    assert_true(append);
    assert_int_equal(t.part_count, 3);
    assert_int_equal(t.start_ms, 50);
    txn_meta_clear(&t);
    m.state = TXN_PREPARE_COMMIT;
    assert_int_equal(txn_decide_add(&m, 1000, 3, more, 2, 70, &t, &append),
                     TXN_ERR_CONCURRENT_TRANSACTIONS);
    txn_meta_clear(&m);
}

static void test_end_every_state(void **state)
{
    (void)state;
    static const struct {
        enum txn_state st;
        bool commit;
        int16_t err;
        bool append;
    } cases[] = {
        {TXN_ONGOING, true, TXN_ERR_NONE, true},
        {TXN_ONGOING, false, TXN_ERR_NONE, true},
        {TXN_COMPLETE_COMMIT, true, TXN_ERR_NONE, false},
        {TXN_COMPLETE_COMMIT, false, TXN_ERR_INVALID_TXN_STATE, false},
        {TXN_COMPLETE_ABORT, false, TXN_ERR_NONE, false},
        {TXN_COMPLETE_ABORT, true, TXN_ERR_INVALID_TXN_STATE, false},
        {TXN_PREPARE_COMMIT, true, TXN_ERR_CONCURRENT_TRANSACTIONS, false},
        {TXN_PREPARE_COMMIT, false, TXN_ERR_INVALID_TXN_STATE, false},
        {TXN_PREPARE_ABORT, false, TXN_ERR_CONCURRENT_TRANSACTIONS, false},
        {TXN_PREPARE_ABORT, true, TXN_ERR_INVALID_TXN_STATE, false},
        {TXN_EMPTY, true, TXN_ERR_INVALID_TXN_STATE, false},
    };
    const struct txn_part parts[] = {part("t", 0)};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct txn_meta m, t;
        bool append;
        meta_make(&m, "x", cases[i].st, parts, 1);
        assert_int_equal(txn_decide_end(&m, 1000, 3, cases[i].commit, 9, &t, &append),
                         cases[i].err);
        assert_int_equal(append, cases[i].append);
        if (append) {
            assert_int_equal(t.state, cases[i].commit ? TXN_PREPARE_COMMIT : TXN_PREPARE_ABORT);
            assert_int_equal(t.epoch, 3);
            /* Every marker written: completion clears the partitions. */
            struct txn_meta done;
            txn_decide_complete(&t, 10, &done);
            assert_int_equal(done.state,
                             cases[i].commit ? TXN_COMPLETE_COMMIT : TXN_COMPLETE_ABORT);
            assert_int_equal(done.part_count, 0);
            txn_meta_clear(&done);
            txn_meta_clear(&t);
        }
        /* A fenced producer's end. */
        assert_int_equal(txn_decide_end(&m, 1000, 2, cases[i].commit, 9, &t, &append),
                         TXN_ERR_PRODUCER_FENCED);
        txn_meta_clear(&m);
    }
}

static void test_timeout_aborts_and_fences_expiry(void **state)
{
    (void)state;
    struct txn_meta m, t;
    const struct txn_part parts[] = {part("t", 0)};
    meta_make(&m, "x", TXN_ONGOING, parts, 1);
    /* start 100, timeout 60000 */
    assert_false(txn_decide_timeout(&m, 60099, &t));
    assert_true(txn_decide_timeout(&m, 60100, &t));
    assert_int_equal(t.state, TXN_PREPARE_ABORT);
    assert_int_equal(t.epoch, 4);
    /* The producer of the aborted transaction is fenced by the bump. */
    bool append;
    struct txn_meta t2;
    assert_int_equal(txn_decide_end(&t, 1000, 3, true, 60200, &t2, &append),
                     TXN_ERR_PRODUCER_FENCED);
    txn_meta_clear(&t);
    m.pending = true;
    assert_false(txn_decide_timeout(&m, 99999999, &t));
    txn_meta_clear(&m);
    /* Expiry: only idle states, after the expiration since the last update (200). */
    meta_make(&m, "x", TXN_COMPLETE_COMMIT, NULL, 0);
    assert_false(txn_decide_expire(&m, 1199, 1000));
    assert_true(txn_decide_expire(&m, 1200, 1000));
    m.state = TXN_ONGOING;
    assert_false(txn_decide_expire(&m, 999999, 1000));
    txn_meta_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_layout_and_round_trip),
        cmocka_unit_test(test_value_round_trip_and_truncations),
        cmocka_unit_test(test_value_v1_flexible),
        cmocka_unit_test(test_table_put_find_remove_many),
        cmocka_unit_test(test_partition_of_matches_kafka),
        cmocka_unit_test(test_load_latest_wins_tombstones_delete),
        cmocka_unit_test(test_init_new_bump_fence_and_refusals),
        cmocka_unit_test(test_add_partitions),
        cmocka_unit_test(test_end_every_state),
        cmocka_unit_test(test_timeout_aborts_and_fences_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
