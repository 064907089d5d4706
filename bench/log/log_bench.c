/*
 * log_bench [dir [window_kib]]: what the partition log gets out of the disk under it.
 *
 * Prints, for the disk holding dir (default: the current directory):
 *  1. dd's own figure for 1 GiB written with conv=fdatasync (the sequential ceiling);
 *  2. a single 4 KiB write + fdatasync, p50/p99 over a few hundred iterations, both appending
 *     (the file grows) and overwriting in place (its size does not change);
 *  3. log append throughput and flush latency for 1 KiB and 16 KiB batches with a flush
 *     requested after every batch, appends continuing while syncs are in flight (a producer
 *     with a bounded window of unsynced bytes, 2 MiB by default): MB/s, fsyncs/s, p50/p99 flush
 * latency, with and without preallocation of the active segment. Not a test: it prints figures and
 * exits 0.
 *
 * log_bench rate dir partitions mb_per_s seconds [batch_kib]: the acks=all path at a fixed load,
 * without a network or a client: batches (16 KiB by default) appended round robin over that
 * many partition logs at a fixed schedule, each with a flush, as the broker does for a produce.
 * Prints MB/s and the latency from each batch's scheduled time to its flush callback (p50, p99,
 * p999, max), so a stall of the appending thread counts too.
 *
 * log_bench floor dir partitions mb_per_s seconds [batch_kib [space]]: the same schedule written
 * straight to one file per partition with pwrite, each file made durable by a thread of its own
 * that fdatasyncs whatever was written since its last sync (group commit, one sync in flight a
 * file). No log, flusher, network or client: the latency this disk allows at that load, which
 * no broker can beat. space says what the writes land on: `append` (default) new blocks, the
 * file growing; `fallocated` blocks reserved beforehand with fallocate (unwritten extents, as
 * the log preallocates); `written` blocks written with zeros beforehand, as a reused file's
 * (nothing for the filesystem to record at a sync). The last two are prepared and synced, then
 * left 10 s to settle before the schedule starts. Its files stay in dir/log_bench_floor until the
 * next floor run or the caller removes them (deleting gigabytes just before a measurement distorts
 * it on a disk mounted with discard).
 */
#include "base/alloc.h"
#include "base/clock.h"
#include "base/compiler.h"
#include "base/limits.h"
#include "io/io.h"
#include "log/batch.h"
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLES_MAX          1000000u
#define WINDOW_BYTES_DEFAULT (2u * MIB)

static uint64_t g_window_bytes = WINDOW_BYTES_DEFAULT;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(uint64_t *ns, size_t n, double p)
{
    qsort(ns, n, sizeof(*ns), cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1));
    return (double)ns[i] / 1e6;
}

static void run_dd(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "dd if=/dev/zero of=%s/log_bench_dd.tmp bs=1M count=1024 conv=fdatasync 2>&1; "
             "rm -f %s/log_bench_dd.tmp",
             dir, dir);
    printf("== dd if=/dev/zero of=%s/log_bench_dd.tmp bs=1M count=1024 conv=fdatasync\n", dir);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        perror("popen");
        return;
    }
    char line[512];
    while (fgets(line, sizeof(line), p))
        printf("   %s", line);
    pclose(p);
}

/* 4 KiB pwrite + fdatasync, `iters` times; in_place rewrites a preallocated region. */
static void single_sync(const char *dir, int iters, bool in_place, double *p50, double *p99)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/log_bench_sync.tmp", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror("open");
        exit(1);
    }
    uint8_t block[4096];
    memset(block, 0xab, sizeof(block));
    if (in_place) {
        for (int i = 0; i < iters; i++) {
            if (pwrite(fd, block, sizeof(block), (off_t)i * 4096) != (ssize_t)sizeof(block))
                exit(1);
        }
        fsync(fd);
    }
    uint64_t *ns = xcalloc((size_t)iters, sizeof(*ns));
    struct clock *c = clock_real();
    for (int i = 0; i < iters; i++) {
        uint64_t t0 = clock_mono_ns(c);
        if (pwrite(fd, block, sizeof(block), (off_t)i * 4096) != (ssize_t)sizeof(block) ||
            fdatasync(fd) != 0) {
            perror("write/fdatasync");
            exit(1);
        }
        ns[i] = clock_mono_ns(c) - t0;
    }
    close(fd);
    unlink(path);
    *p50 = pct_ms(ns, (size_t)iters, 0.50);
    *p99 = pct_ms(ns, (size_t)iters, 0.99);
    free(ns);
}

struct flush_stat {
    uint64_t *lat_ns;
    size_t n;
    uint64_t jobs;
    int64_t last_durable;
};

struct pending {
    struct flush_stat *st;
    uint64_t t0;
};

static void on_flush(void *ctx, int err, int64_t durable)
{
    struct pending *p = ctx;
    if (err < 0) {
        fprintf(stderr, "flush failed: %d\n", err);
        exit(1);
    }
    struct flush_stat *st = p->st;
    if (durable > st->last_durable) {
        st->jobs++; /* each completion that moves the durable offset is one group commit */
        st->last_durable = durable;
    }
    if (st->n < SAMPLES_MAX)
        st->lat_ns[st->n++] = clock_mono_ns(clock_real()) - p->t0;
    free(p);
}

static void drain(struct log_flusher *fl, int timeout_ms)
{
    struct pollfd p = {.fd = log_flusher_fd(fl), .events = POLLIN};
    if (poll(&p, 1, timeout_ms) > 0)
        log_flusher_drain(fl);
}

static void build_batch(struct buf *b, size_t bytes)
{
    size_t overhead = 61 + 16;
    size_t value_bytes = bytes > overhead ? bytes - overhead : 1;
    uint8_t *value = xmalloc(value_bytes);
    memset(value, 'v', value_bytes);
    struct batch_record rec = {.key = slice_make("key", 3), .timestamp_ms = 1700000000000};
    rec.value = slice_make(value, value_bytes);
    struct batch_build_opts o = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    if (batch_build(b, &o, &rec, 1) != 0)
        exit(1);
    free(value);
}

/* Removes dir/name and everything under it, left by an earlier run. */
static void remove_tree(const char *dir, const char *name)
{
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/%s'", dir, name);
    if (system(cmd) != 0)
        exit(1);
}

static void log_run(const char *dir, size_t batch_bytes, uint64_t total_bytes, double seconds,
                    uint64_t prealloc_bytes)
{
    char part[1024];
    snprintf(part, sizeof(part), "%s/log_bench_part", dir);
    remove_tree(dir, "log_bench_part");
    struct io *io = io_posix_create();
    struct log_files *files = log_files_create(io, LOG_OPEN_FILES_MAX_DEFAULT);
    struct log_flusher *fl = log_flusher_create(true);
    struct log_env env = {.io = io, .clock = clock_real(), .files = files, .flusher = fl};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.segment_bytes = 256 * MIB;
    cfg.prealloc_bytes = prealloc_bytes;
    struct log *log;
    int rc = log_open(&env, part, &cfg, &log);
    if (rc < 0) {
        fprintf(stderr, "log_open: %d\n", rc);
        exit(1);
    }
    struct buf b;
    buf_init(&b);
    build_batch(&b, batch_bytes);
    struct flush_stat st = {.lat_ns = xcalloc(SAMPLES_MAX, sizeof(uint64_t))};
    struct clock *c = clock_real();
    uint64_t t0 = clock_mono_ns(c), written = 0;
    uint64_t deadline = t0 + (uint64_t)(seconds * 1e9);
    int64_t window_offsets = (int64_t)(g_window_bytes / b.len) + 1;
    while (written < total_bytes && clock_mono_ns(c) < deadline) {
        while (log_end_offset(log) - log_durable_offset(log) >= window_offsets)
            drain(fl, -1);
        struct log_append_result res;
        rc = log_append(log, b.data, b.len, 1, &res);
        if (rc < 0) {
            fprintf(stderr, "log_append: %d\n", rc);
            exit(1);
        }
        written += b.len;
        struct pending *p = xmalloc(sizeof(*p));
        *p = (struct pending){.st = &st, .t0 = clock_mono_ns(c)};
        rc = log_flush(log, res.last_offset + 1, on_flush, p);
        if (rc == 1)
            on_flush(p, 0, log_durable_offset(log));
        else if (rc < 0)
            exit(1);
        drain(fl, 0);
    }
    while (log_durable_offset(log) < log_end_offset(log))
        drain(fl, -1);
    double secs = (double)(clock_mono_ns(c) - t0) / 1e9;
    printf("   %5zu B batches, prealloc %3" PRIu64 " MiB: %8.1f MB/s  %7.0f fsyncs/s  "
           "flush p50 %6.2f ms  p99 %6.2f ms  (%zu flushes, %.1f s)\n",
           b.len, prealloc_bytes / MIB, (double)written / 1e6 / secs, (double)st.jobs / secs,
           pct_ms(st.lat_ns, st.n, 0.50), pct_ms(st.lat_ns, st.n, 0.99), st.n, secs);
    fflush(stdout);
    free(st.lat_ns);
    buf_deinit(&b);
    if (log_close(log) != 0)
        exit(1);
    log_flusher_destroy(fl);
    log_files_destroy(files);
    io_destroy(io);
    remove_tree(dir, "log_bench_part");
}

static void rate_run(const char *dir, uint32_t partitions, double mb_per_s, double seconds,
                     size_t batch_bytes)
{
    remove_tree(dir, "log_bench_rate");
    struct io *io = io_posix_create();
    struct log_files *files = log_files_create(io, LOG_OPEN_FILES_MAX_DEFAULT);
    struct log_flusher *fl = log_flusher_create(true);
    struct log_env env = {.io = io, .clock = clock_real(), .files = files, .flusher = fl};
    struct log_config cfg;
    log_config_default(&cfg);
    struct log **logs = xcalloc(partitions, sizeof(*logs));
    char part[1024];
    snprintf(part, sizeof(part), "%s/log_bench_rate", dir);
    if (io_mkdir(io, part) < 0) {
        fprintf(stderr, "cannot create %s\n", part);
        exit(1);
    }
    for (uint32_t i = 0; i < partitions; i++) {
        snprintf(part, sizeof(part), "%s/log_bench_rate/p-%u", dir, i);
        int rc = log_open(&env, part, &cfg, &logs[i]);
        if (rc < 0) {
            fprintf(stderr, "log_open %s: %d\n", part, rc);
            exit(1);
        }
    }
    struct buf b;
    buf_init(&b);
    build_batch(&b, batch_bytes);
    struct flush_stat st = {.lat_ns = xcalloc(SAMPLES_MAX, sizeof(uint64_t))};
    struct clock *c = clock_real();
    uint64_t interval_ns = (uint64_t)((double)b.len / (mb_per_s * MIB) * 1e9);
    uint64_t t0 = clock_mono_ns(c), n = 0, written = 0;
    uint64_t end = t0 + (uint64_t)(seconds * 1e9);
    for (uint64_t due = t0; due < end; due += interval_ns, n++) {
        uint64_t now;
        while ((now = clock_mono_ns(c)) < due) {
            uint64_t wait_ms = (due - now) / 1000000;
            drain(fl, wait_ms > 0 ? (int)wait_ms : 0);
        }
        struct log *log = logs[n % partitions];
        struct log_append_result res;
        int rc = log_append(log, b.data, b.len, 1, &res);
        if (rc < 0) {
            fprintf(stderr, "log_append: %d\n", rc);
            exit(1);
        }
        written += b.len;
        struct pending *p = xmalloc(sizeof(*p));
        *p = (struct pending){.st = &st, .t0 = due};
        rc = log_flush(log, res.last_offset + 1, on_flush, p);
        if (rc == 1)
            on_flush(p, 0, log_durable_offset(log));
        else if (rc < 0)
            exit(1);
        drain(fl, 0);
    }
    for (uint32_t i = 0; i < partitions; i++)
        while (log_durable_offset(logs[i]) < log_end_offset(logs[i]))
            drain(fl, -1);
    double secs = (double)(clock_mono_ns(c) - t0) / 1e9;
    printf("== rate: %u partitions, %zu B batches, asked %.1f MB/s: %.1f MB/s over %.1f s; "
           "latency p50 %.2f ms  p99 %.2f ms  p999 %.2f ms  max %.2f ms (%zu batches)\n",
           partitions, b.len, mb_per_s, (double)written / MIB / secs, secs,
           pct_ms(st.lat_ns, st.n, 0.50), pct_ms(st.lat_ns, st.n, 0.99),
           pct_ms(st.lat_ns, st.n, 0.999), pct_ms(st.lat_ns, st.n, 1.0), st.n);
    fflush(stdout);
    for (uint32_t i = 0; i < partitions; i++)
        if (log_close(logs[i]) != 0)
            exit(1);
    free(logs);
    free(st.lat_ns);
    buf_deinit(&b);
    log_flusher_destroy(fl);
    log_files_destroy(files);
    io_destroy(io);
    remove_tree(dir, "log_bench_rate");
}

/* One file of the floor run: the main thread appends batches at their scheduled times; the
 * file's syncer makes them durable and records each one's latency from its scheduled time. */
struct floor_file {
    int fd;
    pthread_t syncer;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint64_t written; /* batches written, under mu */
    bool stop;        /* under mu: no more batches come */
    uint64_t *due_ns; /* scheduled time of each batch, written before `written` moves past it */
    uint64_t *lat_ns;
};

static void *floor_sync(void *arg)
{
    struct floor_file *f = arg;
    struct clock *c = clock_real();
    uint64_t synced = 0;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        while (f->written == synced && !f->stop)
            pthread_cond_wait(&f->cond, &f->mu);
        uint64_t upto = f->written;
        pthread_mutex_unlock(&f->mu);
        if (upto == synced)
            return NULL; /* stopped, everything synced */
        if (fdatasync(f->fd) != 0) {
            perror("fdatasync");
            exit(1);
        }
        uint64_t now = clock_mono_ns(c);
        for (; synced < upto; synced++)
            f->lat_ns[synced] = now - f->due_ns[synced];
    }
}

enum floor_space { FLOOR_APPEND, FLOOR_FALLOCATED, FLOOR_WRITTEN };

/* Each space's command-line word and its name in the result line, by enum floor_space. */
static const struct {
    const char *arg;
    const char *name;
} floor_spaces[] = {
    {"append", "new blocks"},
    {"fallocated", "fallocated blocks"},
    {"written", "blocks written before"},
};

/* Gives fd `bytes` of space of the kind asked for, durably. */
static void floor_prepare(int fd, enum floor_space space, uint64_t bytes, const char *path)
{
    if (space == FLOOR_APPEND)
        return;
    if (space == FLOOR_FALLOCATED) {
        int rc = posix_fallocate(fd, 0, (off_t)bytes);
        if (rc != 0) {
            fprintf(stderr, "%s: fallocate: %s\n", path, strerror(rc));
            exit(1);
        }
    } else {
        static uint8_t zeros[MIB];
        for (uint64_t off = 0; off < bytes; off += sizeof(zeros)) {
            size_t n = (size_t)MIN((uint64_t)sizeof(zeros), bytes - off);
            if (pwrite(fd, zeros, n, (off_t)off) != (ssize_t)n) {
                perror(path);
                exit(1);
            }
        }
    }
    if (fsync(fd) != 0) {
        perror(path);
        exit(1);
    }
}

static void floor_run(const char *dir, uint32_t partitions, double mb_per_s, double seconds,
                      size_t batch_bytes, enum floor_space space)
{
    char path[1100];
    remove_tree(dir, "log_bench_floor");
    snprintf(path, sizeof(path), "%s/log_bench_floor", dir);
    if (mkdir(path, 0755) != 0) {
        perror(path);
        exit(1);
    }
    uint64_t interval_ns = (uint64_t)((double)batch_bytes / (mb_per_s * MIB) * 1e9);
    uint64_t total = (uint64_t)(seconds * 1e9) / interval_ns;
    uint64_t per_file = total / partitions + 1;
    uint8_t *batch = xmalloc(batch_bytes);
    memset(batch, 'v', batch_bytes);
    struct floor_file *files = xcalloc(partitions, sizeof(*files));
    for (uint32_t i = 0; i < partitions; i++) {
        struct floor_file *f = &files[i];
        snprintf(path, sizeof(path), "%s/log_bench_floor/p-%u", dir, i);
        f->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (f->fd < 0) {
            perror(path);
            exit(1);
        }
        floor_prepare(f->fd, space, per_file * batch_bytes, path);
        f->due_ns = xcalloc(per_file, sizeof(uint64_t));
        f->lat_ns = xcalloc(per_file, sizeof(uint64_t));
        pthread_mutex_init(&f->mu, NULL);
        pthread_cond_init(&f->cond, NULL);
        if (pthread_create(&f->syncer, NULL, floor_sync, f) != 0)
            exit(1);
    }
    if (space != FLOOR_APPEND) {
        snprintf(path, sizeof(path), "%s/log_bench_floor", dir);
        int dfd = open(path, O_RDONLY | O_DIRECTORY);
        if (dfd < 0 || fsync(dfd) != 0) {
            perror(path);
            exit(1);
        }
        close(dfd);
        sleep(10); /* the preparation's writes leave the device before the schedule starts */
    }
    struct clock *c = clock_real();
    uint64_t t0 = clock_mono_ns(c);
    for (uint64_t n = 0; n < total; n++) {
        uint64_t due = t0 + n * interval_ns, now;
        while ((now = clock_mono_ns(c)) < due)
            usleep((useconds_t)MAX((due - now) / 1000, 1));
        struct floor_file *f = &files[n % partitions];
        uint64_t seq = n / partitions;
        if (pwrite(f->fd, batch, batch_bytes, (off_t)(seq * batch_bytes)) != (ssize_t)batch_bytes) {
            perror("pwrite");
            exit(1);
        }
        f->due_ns[seq] = due;
        pthread_mutex_lock(&f->mu);
        f->written = seq + 1;
        pthread_cond_signal(&f->cond);
        pthread_mutex_unlock(&f->mu);
    }
    for (uint32_t i = 0; i < partitions; i++) {
        struct floor_file *f = &files[i];
        pthread_mutex_lock(&f->mu);
        f->stop = true;
        pthread_cond_signal(&f->cond);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->syncer, NULL);
        close(f->fd);
    }
    double secs = (double)(clock_mono_ns(c) - t0) / 1e9;
    /* Each write's latency alone, and as a client with one connection sees it: Kafka answers a
     * connection's requests in order, so a write counts as done only once every write scheduled
     * before it (on any file) is durable too. */
    uint64_t *alone = xcalloc(total, sizeof(uint64_t));
    uint64_t *in_order = xcalloc(total, sizeof(uint64_t));
    uint64_t done_max = 0;
    for (uint64_t n = 0; n < total; n++) {
        const struct floor_file *f = &files[n % partitions];
        uint64_t seq = n / partitions, due = f->due_ns[seq];
        done_max = MAX(done_max, due + f->lat_ns[seq]);
        alone[n] = f->lat_ns[seq];
        in_order[n] = done_max - due;
    }
    printf("== floor: %u files, %zu B writes into %s, asked %.1f MB/s: %.1f MB/s over %.1f s; "
           "latency p50 %.2f ms  p99 %.2f ms  p999 %.2f ms  max %.2f ms (%" PRIu64 " writes); "
           "in order: p50 %.2f ms  p99 %.2f ms  p999 %.2f ms  max %.2f ms\n",
           partitions, batch_bytes, floor_spaces[space].name, mb_per_s,
           (double)(total * batch_bytes) / MIB / secs, secs, pct_ms(alone, total, 0.50),
           pct_ms(alone, total, 0.99), pct_ms(alone, total, 0.999), pct_ms(alone, total, 1.0),
           total, pct_ms(in_order, total, 0.50), pct_ms(in_order, total, 0.99),
           pct_ms(in_order, total, 0.999), pct_ms(in_order, total, 1.0));
    fflush(stdout);
    for (uint32_t i = 0; i < partitions; i++) {
        free(files[i].due_ns);
        free(files[i].lat_ns);
    }
    free(alone);
    free(in_order);
    free(files);
    free(batch);
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "floor") == 0) {
        uint32_t partitions = (uint32_t)strtoul(argv[3], NULL, 0);
        double mb_per_s = strtod(argv[4], NULL), seconds = strtod(argv[5], NULL);
        size_t batch_kib = argc > 6 ? strtoull(argv[6], NULL, 0) : 16;
        const char *space_arg = argc > 7 ? argv[7] : "append";
        int space = -1;
        for (int i = 0; i < (int)ARRAY_LEN(floor_spaces); i++)
            if (strcmp(space_arg, floor_spaces[i].arg) == 0)
                space = i;
        if (space < 0) {
            fprintf(stderr, "log_bench floor: space is append, fallocated or written\n");
            return 2;
        }
        if (partitions == 0 || partitions > 10000 || !(mb_per_s > 0) || !(seconds > 0) ||
            batch_kib == 0 || batch_kib > 65536 ||
            seconds * mb_per_s * MIB < (double)batch_kib * KIB * partitions) {
            fprintf(stderr, "log_bench floor: want 1-10000 files, a rate and a time giving at "
                            "least one write a file, writes of 1-65536 KiB\n");
            return 2;
        }
        floor_run(argv[2], partitions, mb_per_s, seconds, batch_kib * KIB, (enum floor_space)space);
        return 0;
    }
    if (argc >= 6 && strcmp(argv[1], "rate") == 0) {
        size_t batch_kib = argc > 6 ? strtoull(argv[6], NULL, 0) : 16;
        rate_run(argv[2], (uint32_t)strtoul(argv[3], NULL, 0), strtod(argv[4], NULL),
                 strtod(argv[5], NULL), batch_kib * KIB);
        return 0;
    }
    const char *dir = argc > 1 ? argv[1] : ".";
    if (argc > 2)
        g_window_bytes = strtoull(argv[2], NULL, 0) * KIB;
    run_dd(dir);
    double p50, p99;
    single_sync(dir, 300, false, &p50, &p99);
    printf(
        "== single 4 KiB write + fdatasync, appending (300 iterations): p50 %.2f ms  p99 %.2f ms\n",
        p50, p99);
    single_sync(dir, 300, true, &p50, &p99);
    printf(
        "== single 4 KiB write + fdatasync, in place  (300 iterations): p50 %.2f ms  p99 %.2f ms\n",
        p50, p99);
    printf("== log append with a flush after every batch (window %" PRIu64 " KiB unsynced)\n",
           g_window_bytes / KIB);
    fflush(stdout);
    for (int pre = 0; pre < 2; pre++) {
        uint64_t prealloc = pre ? LOG_PREALLOC_BYTES_DEFAULT : 0;
        log_run(dir, 1024, 256ull * MIB, 5.0, prealloc);
        log_run(dir, 16 * 1024, 1024ull * MIB, 8.0, prealloc);
    }
    return 0;
}
