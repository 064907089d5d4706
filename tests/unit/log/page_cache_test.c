/*
 * The log's page cache drop-behind on the real filesystem (log.cache.tail.bytes): which parts
 * of a segment file stay in the page cache, read with mincore(2), after appends and syncs and
 * after reads of older data.
 *
 * Bugs these catch: the drop-behind not done (the log's page cache grows with everything
 * written, and every write on a machine that hands memory over at first touch pays for new
 * pages), the newest tail dropped too (consumers at the end would read the disk), reads of
 * history not releasing what they brought in, and a disabled setting still dropping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/limits.h"
#include "io/io.h"
#include "log/log.h"
#include "log_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TAIL    (4u * MIB)
#define WRITTEN (24u * MIB)
/* Pages the kernel may take back on its own while a test runs: proactive reclaim (DAMON's
 * pageout of physical regions long idle, on by default on this project's VM kind) evicted one
 * clean page of the tail once during a full test run. Any drop the log does is whole 2 MiB
 * steps (LOG_CACHE_DROP_ALIGN, 512 pages), far above this. */
#define RECLAIMED_PAGES_MAX 16u

static uint64_t g_seed;

struct fx {
    char dir[64];
    char part[96];
    struct io *io;
    struct log_files *files;
    struct log_flusher *fl;
    struct log *log;
    uint64_t bytes; /* appended: the segment file's valid length (one segment) */
};

static void fx_init(struct fx *f, uint64_t tail)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/chronik-page-cache-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->part, sizeof(f->part), "%s/t-0", f->dir);
    f->io = io_posix_create();
    f->files = log_files_create(f->io, 16);
    f->fl = log_flusher_create(false); /* jobs run here, when the test says */
    struct log_env env = {.io = f->io,
                          .clock = clock_real(),
                          .files = f->files,
                          .flusher = f->fl,
                          .cache_tail_bytes = tail};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.segment_bytes = 64u * MIB; /* everything in the active segment */
    assert_int_equal(log_open(&env, f->part, &cfg, &f->log), 0);
}

static void fx_deinit(struct fx *f)
{
    assert_int_equal(log_close(f->log), 0);
    log_flusher_destroy(f->fl);
    log_files_destroy(f->files);
    io_destroy(f->io);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
}

static void on_flush(void *ctx, int err, int64_t durable)
{
    int64_t *out = ctx;
    *out = err < 0 ? err : durable;
}

/* Appends batches of about 64 KiB until `bytes` are written, then syncs them all. */
static void append_synced(struct fx *f, uint64_t bytes)
{
    struct rng rng;
    rng_seed(&rng, g_seed);
    struct buf b;
    buf_init(&b);
    while (f->bytes < bytes) {
        buf_reset(&b);
        test_batch_random(&b, &rng, 16, 8192, 1700000000000, 1000);
        struct log_append_result r;
        assert_int_equal(log_append(f->log, b.data, b.len, 1, &r), 0);
        f->bytes += b.len;
    }
    buf_deinit(&b);
    int64_t got = -2;
    int rc = log_flush(f->log, log_end_offset(f->log), on_flush, &got);
    assert_true(rc >= 0);
    for (int i = 0; rc == 0 && i < 4 && got == -2; i++) {
        log_flusher_run_pending(f->fl);
        log_flusher_drain(f->fl);
    }
    if (rc == 0)
        assert_int_equal(got, log_end_offset(f->log));
}

/* Pages of [from, to) of the segment file that are in the page cache. */
static uint64_t resident(const struct fx *f, uint64_t from, uint64_t to)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/00000000000000000000.log", f->part);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    long page = sysconf(_SC_PAGESIZE);
    void *map = mmap(NULL, f->bytes, PROT_READ, MAP_SHARED, fileno(fp), 0);
    assert_true(map != MAP_FAILED);
    size_t pages = (f->bytes + (uint64_t)page - 1) / (uint64_t)page;
    unsigned char *vec = malloc(pages);
    assert_int_equal(mincore(map, f->bytes, vec), 0);
    uint64_t n = 0;
    for (uint64_t p = from / (uint64_t)page; p < pages && p * (uint64_t)page < to; p++)
        n += vec[p] & 1;
    free(vec);
    munmap(map, f->bytes);
    fclose(fp);
    return n;
}

static uint64_t pages_in(uint64_t from, uint64_t to)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    return (to + page - 1) / page - from / page;
}

/* Every page of [from, to) is cached but for what the kernel reclaimed on its own. */
static void assert_cached(const struct fx *f, uint64_t from, uint64_t to)
{
    uint64_t want = pages_in(from, to);
    uint64_t got = resident(f, from, to);
    if (got + RECLAIMED_PAGES_MAX < want)
        fail_msg("%llu of the %llu pages of [%llu, %llu) cached", (unsigned long long)got,
                 (unsigned long long)want, (unsigned long long)from, (unsigned long long)to);
}

/* Nothing below `below` is cached any more, and the newest TAIL bytes are. */
static void assert_dropped_below(const struct fx *f, uint64_t below)
{
    uint64_t old = resident(f, 0, below);
    if (old != 0)
        fail_msg("%llu pages below %llu still cached", (unsigned long long)old,
                 (unsigned long long)below);
    assert_cached(f, f->bytes - TAIL, f->bytes);
}

/* After the sync, only about the newest TAIL bytes stay cached: everything below the drop
 * point (TAIL behind the end, rounded down to 2 MiB) has left the page cache, and the tail,
 * which consumers at the end read, is all there. */
static void test_synced_data_behind_the_tail_leaves_the_cache(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, TAIL);
    append_synced(&f, WRITTEN);
    uint64_t drop = (f.bytes - TAIL) / LOG_CACHE_DROP_ALIGN * LOG_CACHE_DROP_ALIGN;
    assert_true(drop >= WRITTEN - TAIL - LOG_CACHE_DROP_ALIGN);
    assert_dropped_below(&f, drop);
    fx_deinit(&f);
}

/* A consumer reading the log from the start, as Fetch does (each read then sent from the page
 * cache: here read with pread), releases what it read once it is TAIL behind it. */
static void test_reading_history_releases_what_it_read(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, TAIL);
    append_synced(&f, WRITTEN);
    uint8_t *data = malloc(2u * MIB);
    int64_t off = 0;
    while (off < log_end_offset(f.log)) {
        struct log_read rd;
        assert_int_equal(log_read(f.log, off, MIB, INT64_MAX, &rd), 0);
        assert_non_null(rd.file);
        assert_true(rd.bytes <= 2u * MIB);
        assert_int_equal(io_pread(log_file_io(rd.file), data, rd.bytes, rd.position),
                         (ssize_t)rd.bytes);
        off = rd.next_offset;
        log_read_release(&rd);
    }
    free(data);
    /* The last read TAIL or more behind the end began within about 1 MiB (one read) of that
     * point, and dropped what lies TAIL behind it. */
    assert_dropped_below(&f, (f.bytes - 2 * TAIL - 2u * MIB) / LOG_CACHE_DROP_ALIGN *
                                 LOG_CACHE_DROP_ALIGN);
    fx_deinit(&f);
}

/* log.cache.tail.bytes = -1 (an env tail of 0) leaves the page cache to the kernel. */
static void test_disabled_keeps_everything(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f, 0);
    append_synced(&f, WRITTEN);
    assert_cached(&f, 0, f.bytes);
    fx_deinit(&f);
}

int main(void)
{
    g_seed = test_seed("log_page_cache_test", 18);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synced_data_behind_the_tail_leaves_the_cache),
        cmocka_unit_test(test_reading_history_releases_what_it_read),
        cmocka_unit_test(test_disabled_keeps_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
