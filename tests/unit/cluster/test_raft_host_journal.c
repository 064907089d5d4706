/*
 * The Raft host's hard-state journal (<state_dir>/raft.state, raft_host.c) on one simulated
 * disk: the record format read back by raft_host_journal_read, a torn last record ignored and
 * cut, a bad record in the middle refused (ERR_CORRUPT), the journal rewritten at start-up (one
 * grown past max(1 MiB, 4 x live), one whose last record's fsync failed), the migration of the
 * per-group file of the format before it, a failed journal sync stopping every group, and the cost
 * the journal exists for: 10,000 groups opening and electing with at most one sync per loop
 * iteration (the per-group files took about three per group per hard-state change, blocking the
 * loop for seconds).
 *
 * Journals are written by hand here (put_record) from the format in raft_host.c, so the reader
 * is checked against the format, not only against the writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/limits.h"
#include "cluster/raft_host.h"
#include "io/io_sim.h"
#include "log/batch.h"
#include "unit/log/log_testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOURNAL     "/raft.state"
#define HEADER      12
#define ENTRY       48
#define MANY_GROUPS 10000

static struct wire_group group_id(int k)
{
    struct wire_group id = {.partition = k};
    id.topic_id.bytes[0] = 0x51;
    id.topic_id.bytes[15] = 0x07;
    return id;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void be64(uint8_t *p, int64_t v)
{
    be32(p, (uint32_t)((uint64_t)v >> 32));
    be32(p + 4, (uint32_t)v);
}

/* One journal record of n entries, appended to b: be32 CRC-32C of the rest, be32 count,
 * version 0, 3 zero bytes; entries: topic id, be32 partition, be32 vote, be64 term, be64 log
 * start, be64 term before the start. */
static void put_record(struct buf *b, const struct raft_host_hard_state *s, uint32_t n)
{
    size_t at = b->len;
    uint8_t *p = buf_extend(b, HEADER + (size_t)n * ENTRY);

    memset(p, 0, HEADER);
    be32(p + 4, n);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *e = p + HEADER + (size_t)i * ENTRY;
        memcpy(e, s[i].id.topic_id.bytes, 16);
        be32(e + 16, (uint32_t)s[i].id.partition);
        be32(e + 20, (uint32_t)s[i].vote);
        be64(e + 24, s[i].term);
        be64(e + 32, s[i].start);
        be64(e + 40, s[i].prev_term);
    }
    be32(b->data + at, crc32c_update(0, b->data + at + 4, HEADER - 4 + (size_t)n * ENTRY));
}

static void write_file(struct io *io, const char *path, const void *p, size_t n)
{
    struct io_file *f;
    assert_int_equal(io_open(io, path, IO_RDWR | IO_CREATE, &f), 0);
    assert_int_equal(io_truncate(f, 0), 0);
    assert_int_equal(io_pwrite(f, p, n, 0), (ssize_t)n);
    assert_int_equal(io_sync(f), 0);
    io_close(f);
}

static uint64_t file_size(struct io *io, const char *path)
{
    struct io_file *f;
    uint64_t size;
    assert_int_equal(io_open(io, path, IO_RDONLY, &f), 0);
    assert_int_equal(io_size(f, &size), 0);
    io_close(f);
    return size;
}

static bool exists(struct io *io, const char *path)
{
    bool is_dir;
    return io_exists(io, path, &is_dir) == 0;
}

struct found {
    struct wire_group id;
    struct raft_host_hard_state s;
    int entries;
};

static int on_entry(void *ctx, const struct raft_host_hard_state *s)
{
    struct found *f = ctx;
    f->entries++;
    if (wire_group_eq(&s->id, &f->id))
        f->s = *s;
    return 0;
}

/* What the journal on disk says about group k (term 0 when nothing). */
static struct found read_journal(struct io *io, int k)
{
    struct found f = {.id = group_id(k)};
    struct io_file *file;
    uint64_t size, valid;

    assert_int_equal(io_open(io, JOURNAL, IO_RDONLY, &file), 0);
    assert_int_equal(io_size(file, &size), 0);
    assert_int_equal(raft_host_journal_read(file, size, on_entry, &f, &valid), 0);
    assert_int_equal(valid, size);
    io_close(file);
    return f;
}

/* One node: the logs on their own simulated disk, the host's journal on another (so syncs of
 * the journal are counted alone). */
struct node {
    struct io *io;     /* the journal's */
    struct io *io_log; /* the logs' */
    struct clock_sim clock;
    struct log_files *files;
    struct log_flusher *fl;
    struct raft_host *host;
    struct log **logs;
    struct raft_group **g;
    int count;
};

static void node_init(struct node *n, int count)
{
    memset(n, 0, sizeof(*n));
    n->io = io_sim_create();
    n->io_log = io_sim_create();
    clock_sim_init(&n->clock, 1700000000000);
    n->files = log_files_create(n->io_log, 64);
    n->fl = log_flusher_create(false);
    n->logs = calloc((size_t)count, sizeof(*n->logs));
    n->g = calloc((size_t)count, sizeof(*n->g));
    n->count = count;
    struct log_env env = {
        .io = n->io_log, .clock = &n->clock.clock, .files = n->files, .flusher = n->fl};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    for (int k = 0; k < count; k++) {
        char dir[32];
        snprintf(dir, sizeof(dir), "/g%d", k);
        assert_int_equal(log_open(&env, dir, &cfg, &n->logs[k]), 0);
    }
}

static int host_start(struct node *n)
{
    struct raft_host_options ho = {
        .self = 1, .io = n->io, .clock = &n->clock.clock, .state_dir = "/"};
    return raft_host_create(&ho, &n->host);
}

static int group_open(struct node *n, int k)
{
    struct raft_group_options go = {.group = group_id(k),
                                    .log = n->logs[k],
                                    .config = {.ids = {1}, .voter = {1}, .count = 1, .index = -1},
                                    .election_ticks = 10,
                                    .seed = (uint64_t)k + 1,
                                    .applied_index = -1};
    return raft_group_open(n->host, &go, &n->g[k]);
}

static void host_stop(struct node *n)
{
    for (int k = 0; k < n->count; k++) {
        if (n->g[k] != NULL)
            raft_group_close(n->g[k]);
        n->g[k] = NULL;
    }
    raft_host_destroy(n->host);
    n->host = NULL;
}

static void node_deinit(struct node *n)
{
    if (n->host != NULL)
        host_stop(n);
    for (int k = 0; k < n->count; k++)
        assert_int_equal(log_close(n->logs[k]), 0);
    log_flusher_destroy(n->fl);
    log_files_destroy(n->files);
    io_destroy(n->io_log);
    io_destroy(n->io);
    free(n->logs);
    free(n->g);
}

/* One loop iteration: the log flusher, a tick of every group, the host's flush. */
static void iterate(struct node *n)
{
    log_flusher_run_pending(n->fl);
    log_flusher_drain(n->fl);
    raft_host_tick(n->host);
    assert_int_equal(raft_host_flush(n->host), 0);
}

static void elect_all(struct node *n, int groups)
{
    for (int i = 0; i < 100; i++) {
        int leaders = 0;
        for (int k = 0; k < groups; k++)
            leaders += raft_group_is_leader(n->g[k]);
        if (leaders == groups)
            return;
        iterate(n);
    }
    fail_msg("not every group elected itself");
}

/* A record cut short, a last record failing its CRC, or zeros after the last good record (a
 * crash during the last append) are ignored and cut; the state before them survives, and new
 * records land after the good ones. */
static void test_torn_tail(void **state)
{
    (void)state;
    static const int tears[] = {0, 1, 2}; /* short record, bad CRC at the end, zeros */
    for (size_t t = 0; t < sizeof(tears) / sizeof(tears[0]); t++) {
        struct node n;
        struct buf b;
        node_init(&n, 2);
        assert_int_equal(host_start(&n), 0);
        assert_int_equal(group_open(&n, 0), 0);
        elect_all(&n, 1);
        int64_t term = raft_group_core(n.g[0])->term;
        host_stop(&n);
        uint64_t good = file_size(n.io, JOURNAL);
        assert_true(good > 0);

        buf_init(&b);
        struct raft_host_hard_state s = {.id = group_id(0), .term = term + 5, .vote = 1};
        put_record(&b, &s, 1);
        if (tears[t] == 0)
            b.len -= 7;
        else if (tears[t] == 1)
            b.data[HEADER + 30] ^= 0x40;
        else
            memset(b.data, 0, b.len);
        struct io_file *f;
        assert_int_equal(io_open(n.io, JOURNAL, IO_RDWR, &f), 0);
        assert_int_equal(io_pwrite(f, b.data, b.len, good), (ssize_t)b.len);
        io_close(f);
        buf_deinit(&b);

        assert_int_equal(host_start(&n), 0);
        assert_int_equal(file_size(n.io, JOURNAL), good); /* cut */
        assert_int_equal(group_open(&n, 0), 0);
        assert_int_equal(raft_group_core(n.g[0])->term, term);
        assert_int_equal(group_open(&n, 1), 0);
        elect_all(&n, 2);
        host_stop(&n);
        assert_int_equal(read_journal(n.io, 0).s.term, term + 1); /* elected again */
        assert_int_equal(read_journal(n.io, 1).s.term, RAFT_HOST_TERM_STANDALONE + 1);
        assert_int_equal(read_journal(n.io, 1).s.vote, 1);
        node_deinit(&n);
    }
}

/* A record that fails its CRC with good records after it is damage, not a torn append: the host
 * refuses to start (ERR_CORRUPT) rather than forget a vote. So is an impossible entry. */
static void test_bad_record_in_middle(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct buf b;
    struct raft_host *h;
    struct raft_host_options ho = {.self = 1, .io = io, .state_dir = "/"};
    struct raft_host_hard_state s[2] = {{.id = group_id(0), .term = 3, .vote = 1, .start = -1},
                                        {.id = group_id(1), .term = 4, .vote = 2, .start = -1}};

    buf_init(&b);
    put_record(&b, s, 2);
    s[0].term = 5;
    put_record(&b, s, 1);
    write_file(io, JOURNAL, b.data, b.len);
    assert_int_equal(raft_host_create(&ho, &h), 0);
    raft_host_destroy(h);
    assert_int_equal(read_journal(io, 0).s.term, 5); /* the later entry wins */
    assert_int_equal(read_journal(io, 1).s.term, 4);

    b.data[HEADER + ENTRY + 25] ^= 1; /* the first record's second entry */
    write_file(io, JOURNAL, b.data, b.len);
    assert_int_equal(raft_host_create(&ho, &h), ERR_CORRUPT);

    buf_reset(&b);
    s[0].prev_term = s[0].term + 1; /* the term before the start above the term */
    put_record(&b, s, 2);
    s[0].prev_term = 0;
    put_record(&b, s, 1);
    write_file(io, JOURNAL, b.data, b.len);
    assert_int_equal(raft_host_create(&ho, &h), ERR_CORRUPT);
    buf_deinit(&b);
    io_destroy(io);
}

/* A journal read at start-up is rewritten as one record (temp file, sync, rename, directory
 * sync), so what this process read is durable: after a failed fsync the kernel may drop pages
 * that reads still show, and records synced behind them would follow a hole that reads as
 * damage after a power loss (cluster_sim --brokers --nodes 5 --seed 15). Here a journal past
 * max(1 MiB, 4 x its live size), whose every group's latest state survives the rewrite. */
static void test_compaction(void **state)
{
    (void)state;
    struct node n;
    struct buf b;
    struct raft_host_stats st;
    int64_t last = 0;

    node_init(&n, 2);
    buf_init(&b);
    for (int i = 0; b.len <= RAFT_HOST_JOURNAL_BYTES_MIN; i++) {
        struct raft_host_hard_state s = {
            .id = group_id(0), .term = 2 + i, .vote = i % 2 ? 1 : RAFT_NONE, .start = -1};
        put_record(&b, &s, 1);
        last = s.term;
    }
    write_file(n.io, JOURNAL, b.data, b.len);
    buf_deinit(&b);

    assert_int_equal(host_start(&n), 0);
    raft_host_stats(n.host, &st);
    assert_int_equal(st.journal_compactions, 1);
    assert_int_equal(file_size(n.io, JOURNAL), HEADER + ENTRY);
    assert_false(exists(n.io, JOURNAL ".tmp"));
    assert_int_equal(group_open(&n, 0), 0);
    assert_int_equal(raft_group_core(n.g[0])->term, last);
    assert_int_equal(group_open(&n, 1), 0); /* its log start goes out with the next record */
    assert_int_equal(raft_host_flush(n.host), 0);
    elect_all(&n, 2);
    host_stop(&n);
    assert_int_equal(read_journal(n.io, 0).s.term, last + 1);
    assert_int_equal(read_journal(n.io, 1).s.term, RAFT_HOST_TERM_STANDALONE + 1);
    assert_int_equal(host_start(&n), 0);
    assert_int_equal(file_size(n.io, JOURNAL), HEADER + 2 * ENTRY);
    assert_int_equal(group_open(&n, 0), 0);
    assert_int_equal(raft_group_core(n.g[0])->term, last + 1);
    node_deinit(&n);
}

/* A record whose fsync failed stays in the page cache (reads show it) but may never reach the
 * disk; the next process rewrites the journal at start-up, so the records it syncs later never
 * follow a hole. (io_sim models the failed fsync: the record's pending write is dropped.) */
static void test_unsynced_record_made_durable_at_start(void **state)
{
    (void)state;
    struct node n;

    node_init(&n, 2);
    assert_int_equal(host_start(&n), 0);
    assert_int_equal(group_open(&n, 0), 0);
    assert_int_equal(group_open(&n, 1), 0);
    assert_int_equal(raft_host_flush(n.host), 0);
    struct found before = read_journal(n.io, 0);
    /* The elections' journal sync fails: the host stops, the record stays in the page cache. */
    io_sim_fail_nth(n.io, IO_SIM_SYNC, 1, -EIO);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        log_flusher_run_pending(n.fl);
        log_flusher_drain(n.fl);
        raft_host_tick(n.host);
        rc = raft_host_flush(n.host);
    }
    assert_int_equal(rc, -EIO);
    io_sim_fail_clear(n.io);
    host_stop(&n);
    struct found seen = read_journal(n.io, 0);
    assert_true(seen.s.term > before.s.term);
    /* A new process reads it, rewrites it, and syncs new records behind it; then power fails. */
    assert_int_equal(host_start(&n), 0);
    assert_int_equal(group_open(&n, 0), 0);
    assert_int_equal(group_open(&n, 1), 0);
    elect_all(&n, 2);
    host_stop(&n);
    io_sim_crash_at(n.io, 0, 0);
    struct found after = read_journal(n.io, 0); /* asserts the journal reads whole */
    assert_true(after.s.term > seen.s.term);
    node_deinit(&n);
}

/* The per-group file of the format before the journal: read when the journal does not know the
 * group, written into the journal with the next record and deleted after its sync. A damaged
 * one is refused. */
static void test_migration(void **state)
{
    (void)state;
    static const char legacy[] = "/51000000000000000000000000000007-3.raft-state";
    uint8_t old[36] = {0};
    struct node n;

    node_init(&n, 4);
    be64(old + 4, 9);  /* term */
    be32(old + 12, 1); /* vote */
    be64(old + 16, -1);
    be64(old + 24, 0);
    be32(old + 32, crc32c_update(0, old, 32));
    write_file(n.io, legacy, old, sizeof(old));

    assert_int_equal(host_start(&n), 0);
    assert_int_equal(group_open(&n, 3), 0);
    assert_int_equal(raft_group_core(n.g[3])->term, 9);
    assert_int_equal(raft_group_core(n.g[3])->vote, 1);
    assert_true(exists(n.io, legacy)); /* until the journal holding it is synced */
    assert_int_equal(raft_host_flush(n.host), 0);
    assert_false(exists(n.io, legacy));
    host_stop(&n);
    assert_int_equal(read_journal(n.io, 3).s.term, 9);
    assert_int_equal(host_start(&n), 0);
    assert_int_equal(group_open(&n, 3), 0);
    assert_int_equal(raft_group_core(n.g[3])->term, 9);
    assert_int_equal(raft_group_core(n.g[3])->vote, 1);

    old[20] ^= 1;
    write_file(n.io, "/51000000000000000000000000000007-2.raft-state", old, sizeof(old));
    assert_int_equal(group_open(&n, 2), ERR_CORRUPT);
    node_deinit(&n);
}

/* A journal sync that fails stops every group (nothing may leave that depends on it) and is
 * returned; later flushes keep failing. */
static void test_sync_failure(void **state)
{
    (void)state;
    struct node n;

    node_init(&n, 2);
    assert_int_equal(host_start(&n), 0);
    assert_int_equal(group_open(&n, 0), 0);
    assert_int_equal(group_open(&n, 1), 0);
    io_sim_fail_nth(n.io, IO_SIM_SYNC, 1, -EIO);
    assert_int_equal(raft_host_flush(n.host), -EIO);
    assert_int_equal(raft_group_error(n.g[0]), -EIO);
    assert_int_equal(raft_group_error(n.g[1]), -EIO);
    io_sim_fail_clear(n.io);
    assert_int_equal(raft_host_flush(n.host), -EIO);
    node_deinit(&n);
}

/* 10,000 groups open and elect themselves with at most one journal sync per loop iteration
 * (the per-group files cost a write, two syncs and a rename per group at open and per
 * election: some 60,000 syncs on the loop). */
static void test_many_groups_one_sync(void **state)
{
    (void)state;
    struct node n;
    struct raft_host_stats st;
    int iterations = 0;

    node_init(&n, MANY_GROUPS);
    assert_int_equal(host_start(&n), 0);
    uint64_t syncs = io_sim_op_count(n.io, IO_SIM_SYNC);
    for (int k = 0; k < MANY_GROUPS; k++)
        assert_int_equal(group_open(&n, k), 0);
    assert_int_equal(io_sim_op_count(n.io, IO_SIM_SYNC), syncs); /* opening syncs nothing */
    for (int done = 0; done < MANY_GROUPS; iterations++) {
        assert_true(iterations < 100);
        uint64_t before = io_sim_op_count(n.io, IO_SIM_SYNC);
        iterate(&n);
        assert_true(io_sim_op_count(n.io, IO_SIM_SYNC) - before <= 1);
        done = 0;
        for (int k = 0; k < MANY_GROUPS; k++)
            done += raft_group_is_leader(n.g[k]);
    }
    raft_host_stats(n.host, &st);
    assert_int_equal(st.journal_compactions, 0);
    assert_true(st.hard_state_syncs <= (uint64_t)iterations + 1);
    assert_true(st.hard_state_writes >= MANY_GROUPS);
    fprintf(stderr,
            "raft_host_journal: %d groups elected in %d iterations, %" PRIu64
            " journal syncs, %" PRIu64 " hard states written\n",
            MANY_GROUPS, iterations, st.hard_state_syncs, st.hard_state_writes);
    host_stop(&n);
    struct found f = read_journal(n.io, MANY_GROUPS - 1);
    assert_int_equal(f.s.term, RAFT_HOST_TERM_STANDALONE + 1);
    assert_int_equal(f.s.vote, 1);
    node_deinit(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_bad_record_in_middle),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_unsynced_record_made_durable_at_start),
        cmocka_unit_test(test_migration),
        cmocka_unit_test(test_sync_failure),
        cmocka_unit_test(test_many_groups_one_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
