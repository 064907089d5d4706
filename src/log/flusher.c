/*
 * The flusher: group commit for every partition log of one owner thread.
 *
 * Owns the job queue, the worker threads and the eventfd. The owner submits jobs (each one
 * segments to seal, pinned files to fdatasync, checkpoint files to replace, files to remove,
 * a directory to sync); a pool of LOG_FLUSHER_THREADS workers takes them one at a time in
 * submission order, so the syncs of different partitions run in parallel (fdatasync of
 * distinct files proceeds concurrently: one slow partition no longer delays the others' acks,
 * and each sync waits for its own data only). A finished job goes to the done list and the
 * eventfd is signalled; the owner drains the done list on its own thread. A log has at most one
 * job outstanding that seals, removes or writes files, so two workers never change the same
 * log's files; a second, overlapping job of a log only syncs its active file, through a handle
 * of its own.
 * Invariants: a job is on exactly one of queue, a worker, or done; `outstanding` counts jobs
 * submitted and not drained and is touched by the owner only. A worker must never touch a
 * struct log, take a pin or release one.
 */
#include "log/log_internal.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct log_flusher {
    bool threaded;
    pthread_t threads[LOG_FLUSHER_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_cond_t performed_cond; /* broadcast when a job moves to done */
    struct flush_job *queue;       /* FIFO under the lock */
    struct flush_job *queue_tail;
    struct flush_job *done;
    bool stop;
    int efd;
    uint32_t outstanding;
};

int checkpoint_write(struct io *io, const char *path, const struct buf *text)
{
    ASSERT(io != NULL && path != NULL);
    char tmp[IO_PATH_BYTES_MAX];
    char dir[IO_PATH_BYTES_MAX];
    size_t n = strlen(path);
    ASSERT(n + 5 <= sizeof(tmp));
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    const char *slash = strrchr(path, '/');
    size_t dn = slash == NULL ? 0 : (slash == path ? 1 : (size_t)(slash - path));
    memcpy(dir, dn == 0 ? "." : path, dn == 0 ? 1 : dn);
    dir[dn == 0 ? 1 : dn] = '\0';

    struct io_file *f = NULL;
    int rc = io_open(io, tmp, IO_RDWR | IO_CREATE, &f);
    if (rc < 0)
        return rc;
    rc = io_truncate(f, 0);
    if (rc == 0 && text->len > 0) {
        ssize_t w = io_pwrite(f, text->data, text->len, 0);
        rc = w < 0 ? (int)w : 0;
    }
    if (rc == 0)
        rc = io_sync(f);
    io_close(f);
    if (rc == 0)
        rc = io_rename(io, tmp, path);
    if (rc == 0)
        rc = io_sync_dir(io, dir);
    return rc;
}

struct flush_job *job_new(struct log *log, struct io *io)
{
    ASSERT(log != NULL && io != NULL);
    struct flush_job *job = xcalloc(1, sizeof(*job));
    job->log = log;
    job->io = io;
    job->recovery_point = -1;
    return job;
}

void seal_deinit(struct flush_seal *seal)
{
    files_unpin(seal->file);
    free(seal->index_path);
    free(seal->time_path);
    buf_deinit(&seal->index);
    buf_deinit(&seal->times);
}

int seal_perform(struct io *io, const struct flush_seal *seal)
{
    struct io_file *f = seal->file->io; /* pinned for the job: open until it is freed */
    uint64_t size = 0;
    int rc = io_size(f, &size);
    if (rc == 0 && size > seal->bytes)
        rc = io_truncate(f, seal->bytes);
    if (rc == 0)
        rc = seg_write_file(io, seal->index_path, &seal->index, true);
    if (rc == 0)
        rc = seg_write_file(io, seal->time_path, &seal->times, true);
    if (rc == 0)
        rc = io_sync(f);
    if (rc == 0 && seal->drop_to > 0)
        (void)io_drop_cache(f, 0, seal->drop_to); /* a hint: nothing to do when it fails */
    return rc;
}

void job_free(struct flush_job *job)
{
    for (uint32_t i = 0; i < job->seal_count; i++)
        seal_deinit(&job->seals[i]);
    for (uint32_t i = 0; i < job->file_count; i++)
        files_unpin(job->files[i]);
    for (uint32_t i = 0; i < job->checkpoint_count; i++) {
        free(job->checkpoints[i].path);
        buf_deinit(&job->checkpoints[i].text);
    }
    for (uint32_t i = 0; i < job->removal_count; i++)
        free(job->removals[i]);
    free(job->removals);
    free(job->seals);
    free(job->files);
    free(job->dir);
    free(job);
}

static int write_checkpoints(struct flush_job *job, bool after_files)
{
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < job->checkpoint_count; i++) {
        const struct flush_checkpoint *c = &job->checkpoints[i];
        if (c->after_files == after_files)
            rc = checkpoint_write(job->io, c->path, &c->text);
    }
    return rc;
}

/* Syncs f through a handle opened for it: what a write-back error of f's pages is reported
 * to on this sync is then also reported to the next sync through f's own handle. */
static int sync_own_handle(struct io *io, const struct log_file *f)
{
    struct io_file *h = NULL;
    int rc = io_open(io, f->path, IO_RDONLY, &h);
    if (rc < 0)
        return rc;
    rc = io_sync(h);
    io_close(h);
    return rc;
}

static void perform(struct flush_job *job)
{
    /* Checkpoints first: an epoch entry may then point past what the syncs below make durable,
     * which recovery trims; the reverse order could lose an epoch for durable data. The
     * recovery point goes last: it vouches for segments this job has just synced. */
    int rc = write_checkpoints(job, false);
    for (uint32_t i = 0; rc == 0 && i < job->seal_count; i++)
        rc = seal_perform(job->io, &job->seals[i]);
    for (uint32_t i = 0; rc == 0 && i < job->file_count; i++)
        rc =
            job->own_handles ? sync_own_handle(job->io, job->files[i]) : io_sync(job->files[i]->io);
    if (rc == 0 && job->alloc_to > job->alloc_from) {
        rc = io_allocate(job->files[0]->io, job->alloc_from, job->alloc_to - job->alloc_from);
        if (rc == -EOPNOTSUPP) {
            job->alloc_unsupported = true; /* plain appends still work, only slower to sync */
            rc = 0;
        }
    }
    for (uint32_t i = 0; rc == 0 && i < job->removal_count; i++) {
        rc = io_remove(job->io, job->removals[i]);
        if (rc == -ENOENT)
            rc = 0; /* an index file a crash or a truncation never left */
    }
    if (rc == 0 && job->dir != NULL)
        rc = io_sync_dir(job->io, job->dir);
    if (rc == 0)
        rc = write_checkpoints(job, true);
    job->err = rc;
}

static struct flush_job *reverse(struct flush_job *j)
{
    struct flush_job *out = NULL;
    while (j) {
        struct flush_job *next = j->next;
        j->next = out;
        out = j;
        j = next;
    }
    return out;
}

static void signal_done(struct log_flusher *fl)
{
    uint64_t one = 1;
    ssize_t n = write(fl->efd, &one, sizeof(one));
    /* EAGAIN means the counter is already huge: the owner is woken anyway. */
    ASSERT(n == (ssize_t)sizeof(one) || errno == EAGAIN);
}

/* Performs one job taken from the queue and publishes it as done. The page cache the job asks
 * to drop once its sync succeeded goes after that, through a handle of the worker's own (the
 * job and its pins belong to the owner once published): dropping 2 MiB took about 0.15 ms
 * here, which the acknowledgements then do not wait for. */
static void run_job(struct log_flusher *fl, struct flush_job *job)
{
    perform(job);
    struct io_file *drop = NULL;
    uint64_t drop_to = job->drop_to;
    if (job->err == 0 && drop_to > 0 && io_open(job->io, job->files[0]->path, IO_RDONLY, &drop) < 0)
        drop = NULL; /* only a hint */
    pthread_mutex_lock(&fl->mu);
    job->performed = true;
    job->next = fl->done;
    fl->done = job;
    pthread_cond_broadcast(&fl->performed_cond);
    pthread_mutex_unlock(&fl->mu);
    signal_done(fl);
    if (drop != NULL) {
        (void)io_drop_cache(drop, 0, drop_to);
        io_close(drop);
    }
}

/* Under the lock: the oldest queued job, or NULL. */
static struct flush_job *take_locked(struct log_flusher *fl)
{
    struct flush_job *job = fl->queue;
    if (job != NULL) {
        fl->queue = job->next;
        if (fl->queue == NULL)
            fl->queue_tail = NULL;
        job->next = NULL;
    }
    return job;
}

static void *flusher_main(void *arg)
{
    struct log_flusher *fl = arg;
    pthread_mutex_lock(&fl->mu);
    for (;;) {
        while (fl->queue == NULL && !fl->stop)
            pthread_cond_wait(&fl->cond, &fl->mu);
        struct flush_job *job = take_locked(fl);
        if (job == NULL)
            break; /* stopping, and nothing left */
        pthread_mutex_unlock(&fl->mu);
        run_job(fl, job);
        pthread_mutex_lock(&fl->mu);
    }
    pthread_mutex_unlock(&fl->mu);
    return NULL;
}

struct log_flusher *log_flusher_create(bool threaded)
{
    struct log_flusher *fl = xcalloc(1, sizeof(*fl));
    fl->threaded = threaded;
    pthread_mutex_init(&fl->mu, NULL);
    pthread_cond_init(&fl->cond, NULL);
    pthread_cond_init(&fl->performed_cond, NULL);
    fl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT(fl->efd >= 0);
    for (uint32_t i = 0; threaded && i < LOG_FLUSHER_THREADS; i++) {
        int rc = pthread_create(&fl->threads[i], NULL, flusher_main, fl);
        ASSERT(rc == 0);
    }
    return fl;
}

void log_flusher_destroy(struct log_flusher *fl)
{
    ASSERT(fl->outstanding == 0);
    if (fl->threaded) {
        pthread_mutex_lock(&fl->mu);
        fl->stop = true;
        pthread_cond_broadcast(&fl->cond);
        pthread_mutex_unlock(&fl->mu);
        for (uint32_t i = 0; i < LOG_FLUSHER_THREADS; i++)
            pthread_join(fl->threads[i], NULL);
    }
    ASSERT(fl->queue == NULL && fl->done == NULL);
    close(fl->efd);
    pthread_cond_destroy(&fl->performed_cond);
    pthread_cond_destroy(&fl->cond);
    pthread_mutex_destroy(&fl->mu);
    free(fl);
}

int log_flusher_fd(const struct log_flusher *fl)
{
    return fl->efd;
}

void flusher_submit(struct log_flusher *fl, struct flush_job *job)
{
    ASSERT(job->next == NULL);
    ASSERT(fl->outstanding < UINT32_MAX);
    fl->outstanding++;
    pthread_mutex_lock(&fl->mu);
    if (fl->queue_tail != NULL)
        fl->queue_tail->next = job;
    else
        fl->queue = job;
    fl->queue_tail = job;
    pthread_cond_signal(&fl->cond);
    pthread_mutex_unlock(&fl->mu);
}

void log_flusher_run_pending(struct log_flusher *fl)
{
    ASSERT(!fl->threaded);
    for (;;) {
        pthread_mutex_lock(&fl->mu);
        struct flush_job *job = take_locked(fl);
        pthread_mutex_unlock(&fl->mu);
        if (job == NULL)
            break;
        run_job(fl, job);
    }
}

bool log_flusher_run_last(struct log_flusher *fl)
{
    ASSERT(!fl->threaded);
    pthread_mutex_lock(&fl->mu);
    struct flush_job *job = fl->queue_tail;
    if (job != NULL) {
        struct flush_job **link = &fl->queue;
        struct flush_job *prev = NULL;
        while (*link != job) {
            prev = *link;
            link = &prev->next;
        }
        *link = NULL;
        fl->queue_tail = prev;
    }
    pthread_mutex_unlock(&fl->mu);
    if (job != NULL)
        run_job(fl, job);
    return job != NULL;
}

uint32_t log_flusher_queued(struct log_flusher *fl)
{
    uint32_t n = 0;
    pthread_mutex_lock(&fl->mu);
    for (const struct flush_job *j = fl->queue; j != NULL; j = j->next)
        n++;
    pthread_mutex_unlock(&fl->mu);
    return n;
}

void log_flusher_drain(struct log_flusher *fl)
{
    uint64_t count;
    ssize_t n = read(fl->efd, &count, sizeof(count));
    ASSERT(n == (ssize_t)sizeof(count) || errno == EAGAIN);
    pthread_mutex_lock(&fl->mu);
    struct flush_job *jobs = reverse(fl->done);
    fl->done = NULL;
    pthread_mutex_unlock(&fl->mu);
    while (jobs) {
        struct flush_job *next = jobs->next;
        jobs->next = NULL;
        ASSERT(fl->outstanding > 0);
        fl->outstanding--;
        log_job_done(jobs->log, jobs);
        jobs = next;
    }
}

void log_flusher_wait(struct log_flusher *fl)
{
    if (fl->outstanding == 0)
        return;
    if (!fl->threaded) {
        log_flusher_run_pending(fl);
    } else {
        struct pollfd p = {.fd = fl->efd, .events = POLLIN};
        int rc;
        do {
            rc = poll(&p, 1, -1);
        } while (rc < 0 && errno == EINTR);
        ASSERT(rc == 1);
    }
    log_flusher_drain(fl);
}

void flusher_wait_performed(struct log_flusher *fl, struct flush_job *job)
{
    ASSERT(job != NULL);
    if (!fl->threaded)
        log_flusher_run_pending(fl);
    pthread_mutex_lock(&fl->mu);
    while (!job->performed)
        pthread_cond_wait(&fl->performed_cond, &fl->mu);
    pthread_mutex_unlock(&fl->mu);
}

uint32_t flusher_outstanding(const struct log_flusher *fl)
{
    return fl->outstanding;
}
