/*
 * io_sim's crash and fault model (io_sim.h): what survives a crash, torn writes at every byte,
 * the global order of pending operations, directory durability, stale handles, fault injection,
 * capacity, and a two-thread smoke test.
 *
 * Randomised tests print their seed; set IO_TEST_SEED to replay one.
 */
#include "base/compiler.h"
#include "base/error.h"
#include "base/rand.h"
#include "io/io.h"
#include "io/io_sim.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static uint64_t test_seed(void)
{
    const char *env = getenv("IO_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 0x10c0ffee;
    printf("IO_TEST_SEED=%" PRIu64 "\n", seed);
    return seed;
}

static struct io_file *open_rw(struct io *io, const char *path)
{
    struct io_file *f = NULL;
    assert_int_equal(io_open(io, path, IO_RDWR | IO_CREATE, &f), 0);
    return f;
}

/* A file whose directory entry is durable and whose content is data, synced. */
static struct io_file *durable_file(struct io *io, const char *path, const void *data, size_t n)
{
    struct io_file *f = open_rw(io, path);
    if (n > 0)
        assert_int_equal(io_pwrite(f, data, n, 0), (ssize_t)n);
    assert_int_equal(io_sync(f), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    return f;
}

/* Reads the whole file at path through a new handle into out (room for cap bytes). */
static size_t read_all(struct io *io, const char *path, uint8_t *out, size_t cap)
{
    struct io_file *f = NULL;
    assert_int_equal(io_open(io, path, IO_RDONLY, &f), 0);
    uint64_t size = 0;
    assert_int_equal(io_size(f, &size), 0);
    assert_true(size <= cap);
    assert_int_equal(io_pread(f, out, cap, 0), (ssize_t)size);
    io_close(f);
    return (size_t)size;
}

static void expect_file(struct io *io, const char *path, const void *data, size_t n)
{
    uint8_t buf[1024];
    assert_true(n <= sizeof(buf));
    size_t got = read_all(io, path, buf, sizeof(buf));
    assert_int_equal(got, n);
    assert_memory_equal(buf, data, n);
}

static void test_unsynced_lost_synced_kept(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = durable_file(io, "/f", "synced", 6);
    assert_int_equal(io_pwrite(f, "-lost", 5, 6), 5);
    expect_file(io, "/f", "synced-lost", 11);
    assert_int_equal(io_sim_pending_ops(io), 1);
    io_sim_crash_at(io, 0, 0);
    assert_int_equal(io_sim_pending_ops(io), 0);
    expect_file(io, "/f", "synced", 6);
    io_close(f);
    io_destroy(io);
}

static void test_tear_every_byte(void **state)
{
    (void)state;
    const char base[] = "0123456789";
    const char last[] = "abcdefghijklmnop"; /* written at 4: overlaps and extends */
    const size_t n = sizeof(last) - 1;
    for (size_t tear = 0; tear <= n; tear++) {
        struct io *io = io_sim_create();
        struct io_file *f = durable_file(io, "/f", base, 10);
        assert_int_equal(io_pwrite(f, last, n, 4), (ssize_t)n);
        assert_int_equal(io_sim_pending_ops(io), 1);
        assert_int_equal(io_sim_pending_write_bytes(io, 0), n);
        io_sim_crash_at(io, 0, tear);
        char want[64];
        memcpy(want, base, 10);
        memcpy(want + 4, last, tear);
        expect_file(io, "/f", want, MAX(10, 4 + tear));
        io_close(f);
        io_destroy(io);
    }
}

/* Writes to two files interleave at random; a crash keeping k operations keeps exactly the
 * writes among the first k, in order, whichever file they went to. */
static void test_crash_prefix_two_files(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, test_seed());
    enum { WRITES = 40 };
    int target[WRITES];
    for (int i = 0; i < WRITES; i++)
        target[i] = (int)rng_below(&rng, 2);
    for (uint64_t keep = 0; keep <= WRITES; keep++) {
        struct io *io = io_sim_create();
        struct io_file *f[2] = {durable_file(io, "/a", "", 0), durable_file(io, "/b", "", 0)};
        char want[2][WRITES];
        size_t want_len[2] = {0, 0};
        size_t len[2] = {0, 0};
        for (int i = 0; i < WRITES; i++) {
            int t = target[i];
            char c = (char)('A' + i);
            assert_int_equal(io_pwrite(f[t], &c, 1, len[t]), 1);
            len[t]++;
            if ((uint64_t)i < keep)
                want[t][want_len[t]++] = c;
        }
        assert_int_equal(io_sim_pending_ops(io), WRITES);
        io_sim_crash_at(io, keep, 0);
        expect_file(io, "/a", want[0], want_len[0]);
        expect_file(io, "/b", want[1], want_len[1]);
        io_close(f[0]);
        io_close(f[1]);
        io_destroy(io);
    }
}

static void test_truncate_allocate_pending(void **state)
{
    (void)state;
    uint8_t data[100];
    memset(data, 'x', sizeof(data));
    uint8_t want[200];
    memset(want, 0, sizeof(want));
    memset(want, 'x', 10);
    for (uint64_t keep = 0; keep <= 2; keep++) {
        struct io *io = io_sim_create();
        struct io_file *f = durable_file(io, "/f", data, sizeof(data));
        assert_int_equal(io_truncate(f, 10), 0);
        assert_int_equal(io_allocate(f, 0, 200), 0);
        assert_int_equal(io_sim_pending_ops(io), 2);
        assert_int_equal(io_sim_pending_write_bytes(io, 0), 0);
        io_sim_crash_at(io, keep, 0);
        if (keep == 0)
            expect_file(io, "/f", data, 100);
        else if (keep == 1)
            expect_file(io, "/f", data, 10);
        else
            expect_file(io, "/f", want, 200);
        io_close(f);
        io_destroy(io);
    }
}

static void test_sync_makes_truncate_durable(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = durable_file(io, "/f", "0123456789", 10);
    assert_int_equal(io_truncate(f, 4), 0);
    assert_int_equal(io_pwrite(f, "ab", 2, 6), 2);
    assert_int_equal(io_sync(f), 0);
    assert_int_equal(io_sim_pending_ops(io), 0);
    io_sim_crash_at(io, 0, 0);
    expect_file(io, "/f", "0123\0\0ab", 8);
    io_close(f);
    io_destroy(io);
}

static void test_create_needs_sync_dir(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = open_rw(io, "/f");
    assert_int_equal(io_pwrite(f, "data", 4, 0), 4);
    assert_int_equal(io_sync(f), 0);
    io_sim_crash_at(io, 0, 0);
    assert_int_equal(io_exists(io, "/f", NULL), -ENOENT);
    io_close(f);

    f = open_rw(io, "/f");
    assert_int_equal(io_pwrite(f, "data", 4, 0), 4);
    assert_int_equal(io_sync(f), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    io_sim_crash_at(io, 0, 0);
    expect_file(io, "/f", "data", 4);
    io_close(f);
    io_destroy(io);
}

static void test_dir_entry_without_data(void **state)
{
    (void)state;
    /* The entry is durable, the data is not: the file survives, empty. */
    struct io *io = io_sim_create();
    struct io_file *f = open_rw(io, "/f");
    assert_int_equal(io_sync_dir(io, "/"), 0);
    assert_int_equal(io_pwrite(f, "data", 4, 0), 4);
    io_sim_crash_at(io, 0, 0);
    expect_file(io, "/f", "", 0);
    io_close(f);
    io_destroy(io);
}

static void test_rename_needs_sync_dir(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    io_close(durable_file(io, "/f", "old", 3));
    io_close(durable_file(io, "/tmp", "new", 3));
    assert_int_equal(io_rename(io, "/tmp", "/f"), 0);
    expect_file(io, "/f", "new", 3);
    io_sim_crash_at(io, 0, 0);
    expect_file(io, "/f", "old", 3);
    expect_file(io, "/tmp", "new", 3);

    assert_int_equal(io_rename(io, "/tmp", "/f"), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    io_sim_crash_at(io, 0, 0);
    expect_file(io, "/f", "new", 3);
    assert_int_equal(io_exists(io, "/tmp", NULL), -ENOENT);
    io_destroy(io);
}

static void test_remove_needs_sync_dir(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    io_close(durable_file(io, "/f", "data", 4));
    assert_int_equal(io_remove(io, "/f"), 0);
    io_sim_crash_at(io, 0, 0);
    expect_file(io, "/f", "data", 4);
    assert_int_equal(io_remove(io, "/f"), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    io_sim_crash_at(io, 0, 0);
    assert_int_equal(io_exists(io, "/f", NULL), -ENOENT);
    io_destroy(io);
}

static void test_directories_durability(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    /* The file's entry is durable in /d, but /d's own entry in / is not. */
    assert_int_equal(io_mkdir(io, "/d"), 0);
    struct io_file *f = open_rw(io, "/d/f");
    assert_int_equal(io_sync(f), 0);
    assert_int_equal(io_sync_dir(io, "/d"), 0);
    io_sim_crash_at(io, 0, 0);
    assert_int_equal(io_exists(io, "/d", NULL), -ENOENT);
    io_close(f);

    assert_int_equal(io_mkdir(io, "/d"), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    f = open_rw(io, "/d/f");
    assert_int_equal(io_sync_dir(io, "/d"), 0);
    assert_int_equal(io_rmdir(io, "/d"), -ENOTEMPTY);
    io_sim_crash_at(io, 0, 0);
    bool is_dir = false;
    assert_int_equal(io_exists(io, "/d", &is_dir), 0);
    assert_true(is_dir);
    assert_int_equal(io_exists(io, "/d/f", &is_dir), 0);
    assert_false(is_dir);
    io_close(f);

    /* rmdir is durable only after syncing the parent. */
    assert_int_equal(io_remove(io, "/d/f"), 0);
    assert_int_equal(io_rmdir(io, "/d"), 0);
    io_sim_crash_at(io, 0, 0);
    assert_int_equal(io_exists(io, "/d/f", NULL), 0);
    io_destroy(io);
}

static void test_cross_dir_rename(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    assert_int_equal(io_mkdir(io, "/a"), 0);
    assert_int_equal(io_mkdir(io, "/b"), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    struct io_file *f = open_rw(io, "/a/f");
    assert_int_equal(io_pwrite(f, "x", 1, 0), 1);
    assert_int_equal(io_sync(f), 0);
    io_close(f);
    assert_int_equal(io_rename(io, "/a/f", "/b/f"), 0);
    /* Syncing /b makes the rename durable, and with it the create in /a it depends on. */
    assert_int_equal(io_sync_dir(io, "/b"), 0);
    assert_int_equal(io_sim_pending_ops(io), 0);
    io_sim_crash_at(io, 0, 0);
    expect_file(io, "/b/f", "x", 1);
    assert_int_equal(io_exists(io, "/a/f", NULL), -ENOENT);
    /* A directory cannot move into itself. */
    assert_int_equal(io_mkdir(io, "/a/sub"), 0);
    assert_int_equal(io_rename(io, "/a", "/a/sub/a"), -EINVAL);
    io_destroy(io);
}

static void test_stale_handles(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = durable_file(io, "/f", "data", 4);
    struct io_file *r = NULL;
    assert_int_equal(io_open(io, "/f", IO_RDONLY, &r), 0);
    io_sim_crash_at(io, 0, 0);
    char buf[8];
    uint64_t size = 0;
    assert_int_equal(io_pread(f, buf, sizeof(buf), 0), -EIO);
    assert_int_equal(io_pread(r, buf, sizeof(buf), 0), -EIO);
    assert_int_equal(io_pwrite(f, "x", 1, 0), -EIO);
    assert_int_equal(io_sync(f), -EIO);
    assert_int_equal(io_truncate(f, 0), -EIO);
    assert_int_equal(io_allocate(f, 0, 10), -EIO);
    assert_int_equal(io_size(f, &size), -EIO);
    io_close(f);
    io_close(r);
    /* The disk is usable again at once through new handles. */
    expect_file(io, "/f", "data", 4);
    io_destroy(io);
}

/* Removed while open and never synced: gone after a crash, and the handle frees cleanly. */
static void test_removed_open_file_crash(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = durable_file(io, "/f", "data", 4);
    assert_int_equal(io_remove(io, "/f"), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    assert_int_equal(io_pwrite(f, "more", 4, 4), 4);
    assert_int_equal(io_sync(f), 0);
    io_sim_crash_at(io, 0, 0);
    assert_int_equal(io_exists(io, "/f", NULL), -ENOENT);
    io_close(f);
    io_destroy(io);
}

static void test_fail_open(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = NULL;
    uint64_t before = io_sim_op_count(io, IO_SIM_OPEN);
    io_sim_fail_nth(io, IO_SIM_OPEN, 2, -EIO);
    assert_int_equal(io_open(io, "/a", IO_RDWR | IO_CREATE, &f), 0);
    io_close(f);
    assert_int_equal(io_open(io, "/b", IO_RDWR | IO_CREATE, &f), -EIO);
    assert_int_equal(io_open(io, "/c", IO_RDWR | IO_CREATE, &f), 0);
    io_close(f);
    assert_int_equal(io_sim_op_count(io, IO_SIM_OPEN), before + 3);
    assert_int_equal(io_exists(io, "/a", NULL), 0);
    assert_int_equal(io_exists(io, "/b", NULL), -ENOENT);
    assert_int_equal(io_exists(io, "/c", NULL), 0);
    io_destroy(io);
}

static void test_fail_read(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = durable_file(io, "/f", "abc", 3);
    char buf[4];
    io_sim_fail_nth(io, IO_SIM_READ, 2, -EIO);
    assert_int_equal(io_pread(f, buf, 1, 0), 1);
    assert_int_equal(io_pread(f, buf, 1, 1), -EIO);
    assert_int_equal(io_pread(f, buf, 1, 2), 1);
    assert_int_equal(buf[0], 'c');
    io_close(f);
    io_destroy(io);
}

static void test_fail_write(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = durable_file(io, "/f", "", 0);
    io_sim_fail_nth(io, IO_SIM_WRITE, 2, -ENOSPC);
    assert_int_equal(io_pwrite(f, "a", 1, 0), 1);
    assert_int_equal(io_pwrite(f, "b", 1, 1), -ENOSPC);
    assert_int_equal(io_pwrite(f, "c", 1, 2), 1);
    expect_file(io, "/f", "a\0c", 3);
    /* The failed write queued nothing either. */
    assert_int_equal(io_sim_pending_ops(io), 2);
    io_close(f);
    io_destroy(io);
}

static void test_fail_sync_sticky(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = durable_file(io, "/f", "", 0);
    assert_int_equal(io_pwrite(f, "kept", 4, 0), 4);
    io_sim_fail_nth(io, IO_SIM_SYNC, 2, -EIO);
    assert_int_equal(io_sync(f), 0);
    assert_int_equal(io_pwrite(f, "lost", 4, 4), 4);
    assert_int_equal(io_sync(f), -EIO);
    /* Sticky: the handle's later syncs fail although no fault is armed any more. */
    assert_int_equal(io_pwrite(f, "more", 4, 8), 4);
    assert_int_equal(io_sync(f), -EIO);
    assert_int_equal(io_sync(f), -EIO);
    /* Reads still see the latest data until the crash. */
    expect_file(io, "/f", "keptlostmore", 12);
    /* A new handle syncs normally, but the dropped write stays lost: only later data and the
     * size become durable, as when Linux drops dirty pages after a failed fsync. */
    struct io_file *g = NULL;
    assert_int_equal(io_open(io, "/f", IO_RDWR, &g), 0);
    assert_int_equal(io_sync(g), 0);
    io_close(g);
    io_sim_crash_at(io, 0, 0);
    expect_file(io, "/f", "kept\0\0\0\0more", 12);
    io_close(f);

    /* The dropped writes are really gone when nothing syncs them again. */
    f = durable_file(io, "/g", "", 0);
    assert_int_equal(io_pwrite(f, "lost", 4, 0), 4);
    io_sim_fail_nth(io, IO_SIM_SYNC, 1, -EIO);
    assert_int_equal(io_sync(f), -EIO);
    assert_int_equal(io_sim_pending_ops(io), 0);
    io_sim_crash_at(io, 0, 0);
    expect_file(io, "/g", "", 0);
    io_close(f);
    io_destroy(io);
}

static void test_fail_sync_dir(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = open_rw(io, "/f");
    io_close(f);
    io_sim_fail_nth(io, IO_SIM_SYNC, 1, -EIO);
    assert_int_equal(io_sync_dir(io, "/"), -EIO);
    assert_int_equal(io_sim_pending_ops(io), 1);
    io_sim_crash_at(io, 0, 0);
    assert_int_equal(io_exists(io, "/f", NULL), -ENOENT);
    io_destroy(io);
}

static void test_fail_truncate_allocate(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct io_file *f = open_rw(io, "/f");
    uint64_t size = 0;
    io_sim_fail_nth(io, IO_SIM_TRUNCATE, 2, -EIO);
    assert_int_equal(io_truncate(f, 10), 0);
    assert_int_equal(io_truncate(f, 5), -EIO);
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 10);
    assert_int_equal(io_truncate(f, 7), 0);
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 7);

    io_sim_fail_nth(io, IO_SIM_ALLOCATE, 2, -ENOSPC);
    assert_int_equal(io_allocate(f, 0, 20), 0);
    assert_int_equal(io_allocate(f, 0, 30), -ENOSPC);
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 20);
    assert_int_equal(io_allocate(f, 0, 40), 0);
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 40);
    assert_int_equal(io_sim_op_count(io, IO_SIM_TRUNCATE | IO_SIM_ALLOCATE), 6);
    io_close(f);
    io_destroy(io);
}

static void test_fail_dirop(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    io_sim_fail_nth(io, IO_SIM_DIROP, 2, -EIO);
    assert_int_equal(io_mkdir(io, "/a"), 0);
    assert_int_equal(io_mkdir(io, "/b"), -EIO);
    assert_int_equal(io_mkdir(io, "/c"), 0);
    assert_int_equal(io_sim_faults(io), 1);
    assert_int_equal(io_exists(io, "/b", NULL), -ENOENT);
    io_sim_fail_nth(io, IO_SIM_DIROP, 1, -EIO);
    assert_int_equal(io_rename(io, "/a", "/d"), -EIO);
    assert_int_equal(io_exists(io, "/a", NULL), 0);
    io_sim_fail_nth(io, IO_SIM_DIROP, 1, -EIO);
    assert_int_equal(io_rmdir(io, "/a"), -EIO);
    assert_int_equal(io_exists(io, "/a", NULL), 0);
    io_close(open_rw(io, "/f"));
    io_sim_fail_nth(io, IO_SIM_DIROP, 1, -EIO);
    assert_int_equal(io_remove(io, "/f"), -EIO);
    assert_int_equal(io_exists(io, "/f", NULL), 0);
    /* Cleared faults never fire; other kinds never fire. */
    io_sim_fail_nth(io, IO_SIM_DIROP, 1, -EIO);
    io_sim_fail_clear(io);
    assert_int_equal(io_remove(io, "/f"), 0);
    io_sim_fail_nth(io, IO_SIM_WRITE, 1, -EIO);
    assert_int_equal(io_mkdir(io, "/e"), 0);
    assert_int_equal(io_sim_op_count(io, IO_SIM_DIROP), 8);
    io_destroy(io);
}

static void test_capacity(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    io_sim_set_capacity(io, 100);
    uint8_t data[100];
    memset(data, 1, sizeof(data));
    struct io_file *f = open_rw(io, "/f");
    assert_int_equal(io_pwrite(f, data, 60, 0), 60);
    assert_int_equal(io_sim_used_bytes(io), 60);
    assert_int_equal(io_sim_faults(io), 0);
    assert_int_equal(io_pwrite(f, data, 50, 60), -ENOSPC);
    assert_int_equal(io_sim_faults(io), 1);
    uint64_t size = 0;
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 60);
    assert_int_equal(io_pwrite(f, data, 60, 0), 60); /* an overwrite takes no space */
    struct io_file *g = open_rw(io, "/g");
    assert_int_equal(io_allocate(g, 0, 41), -ENOSPC);
    assert_int_equal(io_allocate(g, 0, 40), 0);
    assert_int_equal(io_pwrite(g, data, 1, 40), -ENOSPC);
    io_close(g);
    /* Removing a closed file gives its space back. */
    assert_int_equal(io_remove(io, "/g"), 0);
    assert_int_equal(io_sim_used_bytes(io), 60);
    assert_int_equal(io_pwrite(f, data, 40, 60), 40);
    io_sim_set_capacity(io, 0);
    assert_int_equal(io_pwrite(f, data, 100, 100), 100);
    io_close(f);
    io_destroy(io);
}

/* Random writes, truncates and syncs on a few files against a model of each file's durable
 * content and pending operations; a random crash must leave exactly the model's prefix. */
enum { MODEL_FILES = 3, MODEL_BYTES = 512, MODEL_OPS = 64 };

struct model_op {
    int file;
    bool truncate;
    uint64_t off, len;
    uint8_t data[64];
};

struct model {
    uint8_t content[MODEL_FILES][MODEL_BYTES];
    uint64_t size[MODEL_FILES];
};

static void model_apply(struct model *m, const struct model_op *op, uint64_t keep_bytes)
{
    uint8_t *c = m->content[op->file];
    if (op->truncate) {
        if (op->off > m->size[op->file])
            memset(c + m->size[op->file], 0, op->off - m->size[op->file]);
        m->size[op->file] = op->off;
        return;
    }
    uint64_t n = MIN(op->len, keep_bytes);
    if (n == 0)
        return;
    if (op->off > m->size[op->file])
        memset(c + m->size[op->file], 0, op->off - m->size[op->file]);
    memcpy(c + op->off, op->data, n);
    m->size[op->file] = MAX(m->size[op->file], op->off + n);
}

static void test_random_crash_model(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, test_seed());
    for (int round = 0; round < 200; round++) {
        struct io *io = io_sim_create();
        struct io_file *f[MODEL_FILES];
        char name[16];
        for (int i = 0; i < MODEL_FILES; i++) {
            snprintf(name, sizeof(name), "/f%d", i);
            f[i] = durable_file(io, name, "", 0);
        }
        struct model durable = {0};
        struct model_op pending[MODEL_OPS];
        uint64_t pending_count = 0;
        for (int i = 0; i < MODEL_OPS; i++) {
            struct model_op op = {.file = (int)rng_below(&rng, MODEL_FILES)};
            if (rng_chance(&rng, 1, 8)) {
                assert_int_equal(io_sync(f[op.file]), 0);
                /* Apply this file's pending ops to the durable model and drop them. */
                uint64_t w = 0;
                for (uint64_t j = 0; j < pending_count; j++) {
                    if (pending[j].file == op.file)
                        model_apply(&durable, &pending[j], UINT64_MAX);
                    else
                        pending[w++] = pending[j];
                }
                pending_count = w;
                continue;
            }
            op.truncate = rng_chance(&rng, 1, 6);
            op.off = rng_below(&rng, MODEL_BYTES - sizeof(op.data));
            if (!op.truncate) {
                op.len = rng_range(&rng, 1, sizeof(op.data));
                rng_fill(&rng, op.data, op.len);
                assert_int_equal(io_pwrite(f[op.file], op.data, op.len, op.off), (ssize_t)op.len);
            } else {
                assert_int_equal(io_truncate(f[op.file], op.off), 0);
            }
            pending[pending_count++] = op;
        }
        assert_int_equal(io_sim_pending_ops(io), pending_count);
        uint64_t keep = rng_below(&rng, pending_count + 1);
        uint64_t tear = 0;
        if (keep < pending_count) {
            assert_int_equal(io_sim_pending_write_bytes(io, keep),
                             pending[keep].truncate ? 0 : pending[keep].len);
            tear = rng_below(&rng, pending[keep].len + 1);
        }
        io_sim_crash_at(io, keep, tear);
        for (uint64_t j = 0; j < keep; j++)
            model_apply(&durable, &pending[j], UINT64_MAX);
        if (keep < pending_count && !pending[keep].truncate)
            model_apply(&durable, &pending[keep], tear);
        for (int i = 0; i < MODEL_FILES; i++) {
            snprintf(name, sizeof(name), "/f%d", i);
            uint8_t buf[MODEL_BYTES];
            size_t n = read_all(io, name, buf, sizeof(buf));
            assert_int_equal(n, durable.size[i]);
            assert_memory_equal(buf, durable.content[i], n);
            io_close(f[i]);
        }
        io_destroy(io);
    }
}

/* io_sim_crash draws where to cut: whatever it draws, N pending appends leave a prefix. */
static void test_crash_random_is_prefix(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, test_seed());
    const char text[] = "the quick brown fox jumps over the lazy dog";
    const size_t n = sizeof(text) - 1;
    bool seen_empty = false;
    bool seen_full = false;
    for (int round = 0; round < 500; round++) {
        struct io *io = io_sim_create();
        struct io_file *f = durable_file(io, "/f", "", 0);
        for (size_t off = 0; off < n; off += 5)
            assert_int_equal(io_pwrite(f, text + off, MIN(5, n - off), off),
                             (ssize_t)MIN(5, n - off));
        io_sim_crash(io, &rng);
        uint8_t buf[64];
        size_t got = read_all(io, "/f", buf, sizeof(buf));
        assert_true(got <= n);
        assert_memory_equal(buf, text, got);
        seen_empty |= got == 0;
        seen_full |= got == n;
        io_close(f);
        io_destroy(io);
    }
    assert_true(seen_empty);
    assert_true(seen_full);
}

/* io_sim_crash_torn with reorder: each sector of a pending write lands or not on its own, a later
 * write without an earlier one, but nothing of a file past its pending truncate. Every byte read
 * back is either durable before or written. */
static void test_crash_torn_reorder(void **state)
{
    (void)state;
    enum { SECTORS = 4, BYTES = SECTORS * IO_SIM_SECTOR_BYTES };
    struct rng rng;
    rng_seed(&rng, test_seed());
    uint8_t a[BYTES], b[BYTES], buf[2 * BYTES + 16];
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    bool seen_hole = false, seen_b_without_a = false, seen_after_truncate = false;
    for (int round = 0; round < 400; round++) {
        struct io *io = io_sim_create();
        struct io_file *f = durable_file(io, "/f", "", 0);
        assert_int_equal(io_pwrite(f, a, sizeof(a), 0), (ssize_t)sizeof(a));
        assert_int_equal(io_pwrite(f, b, sizeof(b), BYTES), (ssize_t)sizeof(b));
        assert_int_equal(io_truncate(f, 1), 0);
        assert_int_equal(io_pwrite(f, "c", 1, 1), 1);
        io_sim_crash_torn(io, &rng, true);
        size_t got = read_all(io, "/f", buf, sizeof(buf));
        assert_true(got <= 2 * BYTES);
        if (got >= 1 && got <= 2) { /* the truncate landed (in the prefix), maybe the "c" too */
            assert_int_equal(buf[0], 'a');
            assert_true(got == 1 || buf[1] == 'c' || buf[1] == 0);
            seen_after_truncate = true;
            io_close(f);
            io_destroy(io);
            continue;
        }
        bool sector_a[SECTORS] = {0}, any_b = false;
        for (size_t i = 0; i < got; i++) {
            uint8_t want = i < BYTES ? 'a' : 'b';
            assert_true(buf[i] == want || buf[i] == 0); /* nothing past the pending truncate */
            if (buf[i] == 0)
                continue;
            if (i < BYTES)
                sector_a[i / IO_SIM_SECTOR_BYTES] = true;
            else
                any_b = true;
            /* A sector lands whole. */
            size_t first = i / IO_SIM_SECTOR_BYTES * IO_SIM_SECTOR_BYTES;
            assert_true(got >= first + IO_SIM_SECTOR_BYTES);
            assert_int_equal(buf[first], want);
            assert_int_equal(buf[first + IO_SIM_SECTOR_BYTES - 1], want);
        }
        seen_hole |= sector_a[0] && !sector_a[1] && sector_a[2];
        seen_b_without_a |= any_b && !sector_a[0];
        io_close(f);
        io_destroy(io);
    }
    assert_true(seen_hole);
    assert_true(seen_b_without_a);
    assert_true(seen_after_truncate);
}

/* io_sim_crash_torn without reorder: a prefix of the pending writes, then sectors of the next
 * one with holes, nothing after it. */
static void test_crash_torn_in_order(void **state)
{
    (void)state;
    enum { SECTORS = 4, BYTES = SECTORS * IO_SIM_SECTOR_BYTES };
    struct rng rng;
    rng_seed(&rng, test_seed());
    uint8_t a[BYTES], b[BYTES], buf[2 * BYTES + 16];
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    bool seen_hole = false;
    for (int round = 0; round < 400; round++) {
        struct io *io = io_sim_create();
        struct io_file *f = durable_file(io, "/f", "", 0);
        assert_int_equal(io_pwrite(f, a, sizeof(a), 0), (ssize_t)sizeof(a));
        assert_int_equal(io_pwrite(f, b, sizeof(b), BYTES), (ssize_t)sizeof(b));
        io_sim_crash_torn(io, &rng, false);
        size_t got = read_all(io, "/f", buf, sizeof(buf));
        bool a_whole = got >= BYTES && memcmp(buf, a, BYTES) == 0;
        for (size_t i = 0; i < got; i++) {
            uint8_t want = i < BYTES ? 'a' : 'b';
            assert_true(buf[i] == want || buf[i] == 0);
            /* b lands only after all of a. */
            if (i >= BYTES && buf[i] != 0)
                assert_true(a_whole);
        }
        seen_hole |= got >= 3 * IO_SIM_SECTOR_BYTES && buf[0] == 'a' &&
                     buf[IO_SIM_SECTOR_BYTES] == 0 && buf[2 * IO_SIM_SECTOR_BYTES] == 'a';
        io_close(f);
        io_destroy(io);
    }
    assert_true(seen_hole);
}

static void test_many_files_and_large_file(void **state)
{
    (void)state;
    enum { FILES = 3000 };
    struct io *io = io_sim_create();
    assert_int_equal(io_mkdir(io, "/d"), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    char name[32];
    for (int i = 0; i < FILES; i++) {
        snprintf(name, sizeof(name), "/d/%08d.log", i);
        struct io_file *f = open_rw(io, name);
        assert_int_equal(io_pwrite(f, name, 4, 0), 4);
        io_close(f);
    }
    assert_int_equal(io_sync_dir(io, "/d"), 0);
    io_sim_crash_at(io, 0, 0);
    uint64_t count = 0;
    for (int i = 0; i < FILES; i++) {
        snprintf(name, sizeof(name), "/d/%08d.log", i);
        if (io_exists(io, name, NULL) == 0)
            count++;
    }
    assert_int_equal(count, FILES);

    /* 32 MiB in 64 KiB appends with a sync every MiB. */
    static uint8_t chunk[64 * 1024];
    memset(chunk, 0x5a, sizeof(chunk));
    struct io_file *f = durable_file(io, "/big", "", 0);
    uint64_t off = 0;
    for (int i = 0; i < 512; i++) {
        chunk[0] = (uint8_t)i;
        assert_int_equal(io_pwrite(f, chunk, sizeof(chunk), off), (ssize_t)sizeof(chunk));
        off += sizeof(chunk);
        if (i % 16 == 15)
            assert_int_equal(io_sync(f), 0);
    }
    io_sim_crash_at(io, 0, 0);
    io_close(f);
    assert_int_equal(io_open(io, "/big", IO_RDONLY, &f), 0);
    uint64_t size = 0;
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 32u * 1024 * 1024);
    uint8_t b = 0;
    assert_int_equal(io_pread(f, &b, 1, 511u * sizeof(chunk)), 1);
    assert_int_equal(b, 511 & 0xff);
    io_close(f);
    io_destroy(io);
}

struct writer_ctx {
    struct io_file *f;
    int writes;
    volatile int done;
    volatile int syncs; /* the other thread's, so far */
};

static void *writer_main(void *arg)
{
    struct writer_ctx *w = arg;
    for (int i = 0; i < w->writes; i++) {
        /* Halfway, until the other thread has synced once: the two overlap however the
         * threads are scheduled (a loaded machine could run every write before any sync). */
        while (i == w->writes / 2 && __atomic_load_n(&w->syncs, __ATOMIC_ACQUIRE) == 0)
            sched_yield();
        uint32_t v = (uint32_t)i;
        ssize_t n = io_pwrite(w->f, &v, sizeof(v), (uint64_t)i * sizeof(v));
        if (n != (ssize_t)sizeof(v))
            abort();
    }
    __atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_two_threads(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct writer_ctx w = {.f = durable_file(io, "/f", "", 0), .writes = 20000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    int syncs = 0;
    do {
        assert_int_equal(io_sync(w.f), 0);
        __atomic_store_n(&w.syncs, ++syncs, __ATOMIC_RELEASE);
    } while (!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(io_sync(w.f), 0);
    assert_true(syncs > 0);
    io_sim_crash_at(io, 0, 0);
    io_close(w.f);
    struct io_file *f = NULL;
    assert_int_equal(io_open(io, "/f", IO_RDONLY, &f), 0);
    for (int i = 0; i < w.writes; i += 997) {
        uint32_t v = 0;
        assert_int_equal(io_pread(f, &v, sizeof(v), (uint64_t)i * sizeof(v)), sizeof(v));
        assert_int_equal(v, (uint32_t)i);
    }
    io_close(f);
    io_destroy(io);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unsynced_lost_synced_kept),
        cmocka_unit_test(test_tear_every_byte),
        cmocka_unit_test(test_crash_prefix_two_files),
        cmocka_unit_test(test_truncate_allocate_pending),
        cmocka_unit_test(test_sync_makes_truncate_durable),
        cmocka_unit_test(test_create_needs_sync_dir),
        cmocka_unit_test(test_dir_entry_without_data),
        cmocka_unit_test(test_rename_needs_sync_dir),
        cmocka_unit_test(test_remove_needs_sync_dir),
        cmocka_unit_test(test_directories_durability),
        cmocka_unit_test(test_cross_dir_rename),
        cmocka_unit_test(test_stale_handles),
        cmocka_unit_test(test_removed_open_file_crash),
        cmocka_unit_test(test_fail_open),
        cmocka_unit_test(test_fail_read),
        cmocka_unit_test(test_fail_write),
        cmocka_unit_test(test_fail_sync_sticky),
        cmocka_unit_test(test_fail_sync_dir),
        cmocka_unit_test(test_fail_truncate_allocate),
        cmocka_unit_test(test_fail_dirop),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_random_crash_model),
        cmocka_unit_test(test_crash_random_is_prefix),
        cmocka_unit_test(test_crash_torn_reorder),
        cmocka_unit_test(test_crash_torn_in_order),
        cmocka_unit_test(test_many_files_and_large_file),
        cmocka_unit_test(test_two_threads),
    };
    return cmocka_run_group_tests_name("io_sim", tests, NULL, NULL);
}
