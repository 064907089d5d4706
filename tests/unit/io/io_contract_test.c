/*
 * The io contract (io.h), checked against both implementations: io_posix on a fresh directory
 * under /tmp (removed afterwards) and io_sim. Every test runs once per implementation with a
 * fresh io, so one implementation can never pass by the other's state.
 */
#include "base/error.h"
#include "base/limits.h"
#include "io/io.h"
#include "io/io_sim.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

struct env {
    struct io *io;
    bool posix;
    char root[64];  /* the test's directory, without a trailing slash */
    char path[256]; /* scratch for p() */
    char path2[256];
};

static const char *p(struct env *e, const char *name)
{
    snprintf(e->path, sizeof(e->path), "%s/%s", e->root, name);
    return e->path;
}

static const char *p2(struct env *e, const char *name)
{
    snprintf(e->path2, sizeof(e->path2), "%s/%s", e->root, name);
    return e->path2;
}

static int setup_posix(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->posix = true;
    snprintf(e->root, sizeof(e->root), "/tmp/chronik-io-test-XXXXXX");
    if (mkdtemp(e->root) == NULL)
        return -1;
    e->io = io_posix_create();
    *state = e;
    return 0;
}

static int setup_sim(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    e->posix = false;
    snprintf(e->root, sizeof(e->root), "/data");
    e->io = io_sim_create();
    *state = e;
    return io_mkdir(e->io, e->root);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct env *e = *state;
    int rc = 0;
    if (e->posix)
        rc = nftw(e->root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    io_destroy(e->io);
    free(e);
    return rc;
}

/* Creates name with the given bytes (not synced) and closes it. */
static void put_file(struct env *e, const char *name, const void *data, size_t n)
{
    struct io_file *f;
    assert_int_equal(io_open(e->io, p(e, name), IO_RDWR | IO_CREATE, &f), 0);
    assert_int_equal(io_pwrite(f, data, n, 0), (ssize_t)n);
    io_close(f);
}

static void expect_content(struct env *e, const char *name, const void *data, size_t n)
{
    struct io_file *f;
    char buf[512];
    assert_true(n < sizeof(buf));
    assert_int_equal(io_open(e->io, p(e, name), IO_RDONLY, &f), 0);
    uint64_t size = 0;
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, n);
    assert_int_equal(io_pread(f, buf, sizeof(buf), 0), (ssize_t)n);
    assert_memory_equal(buf, data, n);
    io_close(f);
}

static void test_open_flags(void **state)
{
    struct env *e = *state;
    struct io_file *f = NULL;
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDONLY, &f), -ENOENT);
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDWR, &f), -ENOENT);
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDWR | IO_CREATE | IO_EXCL, &f), 0);
    assert_int_equal(io_pwrite(f, "abc", 3, 0), 3);
    io_close(f);
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDWR | IO_CREATE | IO_EXCL, &f), -EEXIST);
    /* IO_CREATE alone opens an existing file without truncating it. */
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDWR | IO_CREATE, &f), 0);
    io_close(f);
    expect_content(e, "f", "abc", 3);
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDONLY, &f), 0);
    assert_int_equal(io_pwrite(f, "x", 1, 0), -EBADF);
    io_close(f);
    assert_int_equal(io_open(e->io, p(e, "missing/f"), IO_RDWR | IO_CREATE, &f), -ENOENT);
}

static void test_write_read(void **state)
{
    struct env *e = *state;
    struct io_file *f;
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDWR | IO_CREATE, &f), 0);
    char data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7 + 1);
    assert_int_equal(io_pwrite(f, data, 100, 0), 100);
    /* A write past the end leaves a zero-filled hole. */
    assert_int_equal(io_pwrite(f, data + 100, 200, 120), 200);
    uint64_t size = 0;
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 320);
    char buf[400];
    memset(buf, 0x55, sizeof(buf));
    assert_int_equal(io_pread(f, buf, 320, 0), 320);
    assert_memory_equal(buf, data, 100);
    for (size_t i = 100; i < 120; i++)
        assert_int_equal(buf[i], 0);
    assert_memory_equal(buf + 120, data + 100, 200);
    /* Overwrite in the middle. */
    assert_int_equal(io_pwrite(f, "XYZ", 3, 10), 3);
    assert_int_equal(io_pread(f, buf, 5, 9), 5);
    char want[5] = {data[9], 'X', 'Y', 'Z', data[13]};
    assert_memory_equal(buf, want, 5);
    io_close(f);
}

static void test_short_read_at_eof(void **state)
{
    struct env *e = *state;
    put_file(e, "f", "0123456789", 10);
    struct io_file *f;
    char buf[64];
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDONLY, &f), 0);
    assert_int_equal(io_pread(f, buf, sizeof(buf), 6), 4);
    assert_memory_equal(buf, "6789", 4);
    assert_int_equal(io_pread(f, buf, sizeof(buf), 10), 0);
    assert_int_equal(io_pread(f, buf, sizeof(buf), 1000), 0);
    assert_int_equal(io_pread(f, buf, 0, 0), 0);
    io_close(f);
}

static void test_truncate(void **state)
{
    struct env *e = *state;
    struct io_file *f;
    char data[100];
    memset(data, 0xAB, sizeof(data));
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDWR | IO_CREATE, &f), 0);
    assert_int_equal(io_pwrite(f, data, sizeof(data), 0), 100);
    assert_int_equal(io_truncate(f, 40), 0);
    uint64_t size = 0;
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 40);
    assert_int_equal(io_truncate(f, 80), 0);
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 80);
    char buf[100];
    assert_int_equal(io_pread(f, buf, sizeof(buf), 0), 80);
    assert_memory_equal(buf, data, 40);
    for (size_t i = 40; i < 80; i++)
        assert_int_equal((unsigned char)buf[i], 0);
    assert_int_equal(io_truncate(f, 0), 0);
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 0);
    io_close(f);
}

static void test_allocate(void **state)
{
    struct env *e = *state;
    struct io_file *f;
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDWR | IO_CREATE, &f), 0);
    assert_int_equal(io_pwrite(f, "abc", 3, 0), 3);
    assert_int_equal(io_allocate(f, 0, 4096), 0);
    uint64_t size = 0;
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 4096);
    char buf[4096];
    assert_int_equal(io_pread(f, buf, sizeof(buf), 0), 4096);
    assert_memory_equal(buf, "abc", 3);
    for (size_t i = 3; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0);
    /* An allocation inside the file neither shrinks it nor touches its bytes. */
    assert_int_equal(io_allocate(f, 0, 10), 0);
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 4096);
    assert_int_equal(io_pread(f, buf, 3, 0), 3);
    assert_memory_equal(buf, "abc", 3);
    /* An allocation past the end extends to off + len. */
    assert_int_equal(io_allocate(f, 8000, 192), 0);
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 8192);
    io_close(f);
}

static void test_rename_replaces(void **state)
{
    struct env *e = *state;
    put_file(e, "a", "AAAA", 4);
    put_file(e, "b", "BB", 2);
    struct io_file *old_b;
    assert_int_equal(io_open(e->io, p(e, "b"), IO_RDONLY, &old_b), 0);
    assert_int_equal(io_rename(e->io, p(e, "a"), p2(e, "b")), 0);
    expect_content(e, "b", "AAAA", 4);
    assert_int_equal(io_exists(e->io, p(e, "a"), NULL), -ENOENT);
    /* The replaced file stays readable through a handle opened before. */
    char buf[8];
    assert_int_equal(io_pread(old_b, buf, sizeof(buf), 0), 2);
    assert_memory_equal(buf, "BB", 2);
    io_close(old_b);
    /* Renaming into a new name and over itself. */
    assert_int_equal(io_rename(e->io, p(e, "b"), p2(e, "c")), 0);
    expect_content(e, "c", "AAAA", 4);
    assert_int_equal(io_rename(e->io, p(e, "c"), p2(e, "c")), 0);
    expect_content(e, "c", "AAAA", 4);
    assert_int_equal(io_rename(e->io, p(e, "missing"), p2(e, "d")), -ENOENT);
}

static void test_remove(void **state)
{
    struct env *e = *state;
    put_file(e, "f", "data", 4);
    struct io_file *f;
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDONLY, &f), 0);
    assert_int_equal(io_remove(e->io, p(e, "f")), 0);
    assert_int_equal(io_exists(e->io, p(e, "f"), NULL), -ENOENT);
    assert_int_equal(io_remove(e->io, p(e, "f")), -ENOENT);
    /* A removed file stays readable through an open handle. */
    char buf[8];
    assert_int_equal(io_pread(f, buf, sizeof(buf), 0), 4);
    assert_memory_equal(buf, "data", 4);
    io_close(f);
    /* The name can be created afresh. */
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDWR | IO_CREATE | IO_EXCL, &f), 0);
    uint64_t size = 1;
    assert_int_equal(io_size(f, &size), 0);
    assert_int_equal(size, 0);
    io_close(f);
}

static void test_mkdir_rmdir(void **state)
{
    struct env *e = *state;
    bool is_dir = false;
    assert_int_equal(io_mkdir(e->io, p(e, "d")), 0);
    assert_int_equal(io_mkdir(e->io, p(e, "d")), -EEXIST);
    assert_int_equal(io_exists(e->io, p(e, "d"), &is_dir), 0);
    assert_true(is_dir);
    put_file(e, "d/f", "x", 1);
    assert_int_equal(io_exists(e->io, p(e, "d/f"), &is_dir), 0);
    assert_false(is_dir);
    assert_int_equal(io_rmdir(e->io, p(e, "d")), -ENOTEMPTY);
    assert_int_equal(io_rmdir(e->io, p(e, "d/f")), -ENOTDIR);
    assert_int_equal(io_remove(e->io, p(e, "d/f")), 0);
    assert_int_equal(io_rmdir(e->io, p(e, "d")), 0);
    assert_int_equal(io_exists(e->io, p(e, "d"), NULL), -ENOENT);
    assert_int_equal(io_rmdir(e->io, p(e, "d")), -ENOENT);
    assert_int_equal(io_mkdir(e->io, p(e, "x/y")), -ENOENT);
}

static void test_exists(void **state)
{
    struct env *e = *state;
    bool is_dir = true;
    assert_int_equal(io_exists(e->io, e->root, &is_dir), 0);
    assert_true(is_dir);
    put_file(e, "f", "", 0);
    assert_int_equal(io_exists(e->io, p(e, "f"), &is_dir), 0);
    assert_false(is_dir);
    assert_int_equal(io_exists(e->io, p(e, "f"), NULL), 0);
    assert_int_equal(io_exists(e->io, p(e, "g"), &is_dir), -ENOENT);
}

struct listing {
    char names[16][32];
    int count;
    int stop_after; /* return 7 after this many names; 0: never */
};

static int collect(void *ctx, const char *name)
{
    struct listing *l = ctx;
    if (l->count >= 16)
        return -1;
    snprintf(l->names[l->count++], sizeof(l->names[0]), "%s", name);
    return l->stop_after != 0 && l->count == l->stop_after ? 7 : 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_list_dir(void **state)
{
    struct env *e = *state;
    const char *want[] = {"a", "b", "c", "log.0", "sub"};
    put_file(e, "log.0", "1", 1);
    put_file(e, "b", "1", 1);
    put_file(e, "a", "1", 1);
    put_file(e, "c", "1", 1);
    assert_int_equal(io_mkdir(e->io, p(e, "sub")), 0);
    put_file(e, "sub/inner", "1", 1);
    struct listing l = {.count = 0};
    assert_int_equal(io_list_dir(e->io, e->root, collect, &l), 0);
    assert_int_equal(l.count, 5);
    qsort(l.names, (size_t)l.count, sizeof(l.names[0]), cmp_name);
    for (int i = 0; i < 5; i++)
        assert_string_equal(l.names[i], want[i]);
    /* A non-zero return stops the listing and becomes the result. */
    struct listing stop = {.stop_after = 2};
    assert_int_equal(io_list_dir(e->io, e->root, collect, &stop), 7);
    assert_int_equal(stop.count, 2);
    struct listing empty = {.count = 0};
    assert_int_equal(io_mkdir(e->io, p(e, "empty")), 0);
    assert_int_equal(io_list_dir(e->io, p(e, "empty"), collect, &empty), 0);
    assert_int_equal(empty.count, 0);
    assert_int_equal(io_list_dir(e->io, p(e, "missing"), collect, &empty), -ENOENT);
}

static void test_sync(void **state)
{
    struct env *e = *state;
    struct io_file *f;
    assert_int_equal(io_open(e->io, p(e, "f"), IO_RDWR | IO_CREATE, &f), 0);
    assert_int_equal(io_pwrite(f, "data", 4, 0), 4);
    assert_int_equal(io_sync(f), 0);
    assert_int_equal(io_sync(f), 0);
    assert_int_equal(io_sync_dir(e->io, e->root), 0);
    assert_int_equal(io_sync_dir(e->io, p(e, "missing")), -ENOENT);
    int fd = io_fd(f);
    if (e->posix)
        assert_true(fd >= 0);
    else
        assert_int_equal(fd, -1);
    io_close(f);
    expect_content(e, "f", "data", 4);
}

static void test_path_too_long(void **state)
{
    struct env *e = *state;
    char *long_path = malloc(IO_PATH_BYTES_MAX + 1);
    memset(long_path, 'a', IO_PATH_BYTES_MAX);
    long_path[0] = '/';
    long_path[IO_PATH_BYTES_MAX] = '\0';
    struct io_file *f;
    assert_int_equal(io_open(e->io, long_path, IO_RDWR | IO_CREATE, &f), -ENAMETOOLONG);
    assert_int_equal(io_exists(e->io, long_path, NULL), -ENAMETOOLONG);
    assert_int_equal(io_mkdir(e->io, long_path), -ENAMETOOLONG);
    free(long_path);
}

#define CONTRACT_TESTS(setup)                                                         \
    {                                                                                 \
        cmocka_unit_test_setup_teardown(test_open_flags, setup, teardown),            \
            cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),        \
            cmocka_unit_test_setup_teardown(test_short_read_at_eof, setup, teardown), \
            cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),          \
            cmocka_unit_test_setup_teardown(test_allocate, setup, teardown),          \
            cmocka_unit_test_setup_teardown(test_rename_replaces, setup, teardown),   \
            cmocka_unit_test_setup_teardown(test_remove, setup, teardown),            \
            cmocka_unit_test_setup_teardown(test_mkdir_rmdir, setup, teardown),       \
            cmocka_unit_test_setup_teardown(test_exists, setup, teardown),            \
            cmocka_unit_test_setup_teardown(test_list_dir, setup, teardown),          \
            cmocka_unit_test_setup_teardown(test_sync, setup, teardown),              \
            cmocka_unit_test_setup_teardown(test_path_too_long, setup, teardown),     \
    }

int main(void)
{
    const struct CMUnitTest posix_tests[] = CONTRACT_TESTS(setup_posix);
    const struct CMUnitTest sim_tests[] = CONTRACT_TESTS(setup_sim);
    int failed = cmocka_run_group_tests_name("io_posix", posix_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("io_sim", sim_tests, NULL, NULL);
    return failed == 0 ? 0 : 1;
}
