/*
 * The partition log after open: append, roll, group-commit flush, read, lookups, truncation,
 * retention and clean close (recover.c opens it).
 *
 * Owns the segments, the epoch cache, the flush waiters and the one in-flight flush job of a
 * log. Invariants are listed on struct log (log_internal.h). A failed write, truncate,
 * allocation, sync or rename sets the sticky error: the log never pretends a write happened
 * and never reports durable what a failed sync may have lost. Must never block on fsync
 * except in log_close and log_truncate_to (see there).
 */
#include "log/log_internal.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void log_config_default(struct log_config *cfg)
{
    cfg->segment_bytes = LOG_SEGMENT_BYTES_DEFAULT;
    cfg->roll_ms = LOG_ROLL_MS_DEFAULT;
    cfg->retention_ms = LOG_RETENTION_MS_DEFAULT;
    cfg->retention_bytes = LOG_RETENTION_BYTES_DEFAULT;
    cfg->index_interval_bytes = LOG_INDEX_INTERVAL_BYTES;
    cfg->prealloc_bytes = LOG_PREALLOC_BYTES_DEFAULT;
}

int log_fail(struct log *log, int err)
{
    ASSERT(err < 0);
    if (log->err == 0)
        log->err = err;
    return log->err;
}

void log_path(const struct log *log, char *out, const char *name)
{
    int n = snprintf(out, IO_PATH_BYTES_MAX, "%s/%s", log->dir, name);
    ASSERT(n > 0 && (size_t)n < IO_PATH_BYTES_MAX);
}

void log_start_text(int64_t start_offset, struct buf *out)
{
    char line[48];
    int n = snprintf(line, sizeof(line), "0\n%" PRId64 "\n", start_offset);
    buf_append(out, line, (size_t)n);
}

void log_push_segment(struct log *log, struct segment *s)
{
    ASSERT(log->seg_count < LOG_SEGMENTS_MAX);
    ASSERT(log->seg_count == 0 || log_active(log)->base_offset < s->base_offset);
    if (log->seg_count == log->seg_cap) {
        log->seg_cap = log->seg_cap ? log->seg_cap * 2 : 8;
        log->segs = xrealloc(log->segs, (size_t)log->seg_cap * sizeof(*log->segs));
    }
    log->segs[log->seg_count++] = s;
}

int log_error(const struct log *log)
{
    return log->err;
}

int64_t log_start_offset(const struct log *log)
{
    return log->start_offset;
}

int64_t log_end_offset(const struct log *log)
{
    return log_end(log);
}

int64_t log_durable_offset(const struct log *log)
{
    return log->durable_offset;
}

int64_t log_high_watermark(const struct log *log)
{
    return log->high_watermark;
}

uint32_t log_segment_count(const struct log *log)
{
    return log->seg_count;
}

int32_t log_latest_epoch(const struct log *log)
{
    return log->epochs.len ? log->epochs.v[log->epochs.len - 1].epoch : -1;
}

int log_set_high_watermark(struct log *log, int64_t offset)
{
    if (log->err)
        return log->err;
    if (offset > log_end(log) || offset < log->start_offset)
        return ERR_RANGE;
    log->high_watermark = offset;
    return 0;
}

/* ---- flushing ------------------------------------------------------------------------------ */

static struct flush_checkpoint *add_checkpoint(struct flush_job *job, const struct log *log,
                                               const char *name, bool after_files)
{
    ASSERT(job->checkpoint_count < ARRAY_LEN(job->checkpoints));
    struct flush_checkpoint *c = &job->checkpoints[job->checkpoint_count++];
    char path[IO_PATH_BYTES_MAX];
    log_path(log, path, name);
    c->path = xstrdup(path);
    c->after_files = after_files;
    buf_init(&c->text);
    return c;
}

/*
 * Page cache drop-behind. On a virtual machine whose host hands memory over at first touch,
 * every new page of page cache costs the writer about 4 µs per KiB (measured here: a 1 MiB
 * write into new page cache took 4 ms, 0.3 ms into pages freed a moment before), on the owner
 * thread, in the acknowledgement path. Dropping a log's synced data once it is more than
 * cache_tail_bytes behind the end keeps the log's page cache to that tail, and the writes
 * reuse the pages just freed. Consumers at the tail read from memory; a read of older data
 * reads the disk (with the kernel's read-ahead) and drops what it brought in behind it.
 */

/* The position below which the page cache of a file holding `end` bytes may be dropped: the
 * last cache_tail_bytes kept, rounded down to whole folios (a folio only partly inside the
 * range would stay). 0 when nothing may be dropped. */
static uint64_t cache_drop_point(const struct log *log, uint64_t end)
{
    uint64_t tail = log->env.cache_tail_bytes;
    if (tail == 0 || end <= tail)
        return 0;
    return (end - tail) / LOG_CACHE_DROP_ALIGN * LOG_CACHE_DROP_ALIGN;
}

/* The drop a sync of the active segment makes after it succeeds, or 0. Ranges start at 0: a
 * page read in again meanwhile (a lagging consumer) goes too. */
static uint64_t plan_drop(struct log *log)
{
    struct segment *s = log_active(log);
    if (s->sync_dropped_to > s->bytes)
        s->sync_dropped_to = 0; /* cut since */
    uint64_t to = cache_drop_point(log, s->bytes);
    if (to <= s->sync_dropped_to)
        return 0;
    s->sync_dropped_to = to;
    return to;
}

/* Hands the flusher everything written so far: segments to seal, the active segment, dirty
 * checkpoints, files of deleted segments to remove, and the directory when segments were
 * created or deleted. A job that seals segments also moves the recovery point up to the
 * active segment. */
static void submit_job(struct log *log)
{
    ASSERT(log->inflight == NULL);
    ASSERT(log->err == 0);
    struct flush_job *job = job_new(log, log->env.io);
    job->seals = log->seals;
    job->seal_count = log->seal_count;
    log->seals = NULL;
    log->seal_count = log->seal_cap = 0;
    job->removals = log->removals;
    job->removal_count = log->removal_count;
    log->removals = NULL;
    log->removal_count = log->removal_cap = 0;
    job->files = xmalloc(sizeof(*job->files));
    struct log_file *active = log_active(log)->file;
    int rc = files_pin(active, false);
    ASSERT(rc == 0); /* the active file is already pinned, hence open */
    job->files[job->file_count++] = active;
    job->drop_to = plan_drop(log);
    if (log->alloc_target > 0) {
        job->alloc_from = log_active(log)->file_bytes;
        job->alloc_to = log->alloc_target;
        job->alloc_era = log->alloc_era;
        log->alloc_target = 0;
    }
    /* The epoch checkpoint waits for a job that changes what recovery trusts: after a crash
     * only its entries below the recovery point are read (later ones are rebuilt from the
     * scanned batches), and a job that moves the point up writes it first. A new epoch's first
     * append then costs no checkpoint (two syncs) in the acknowledgement path. */
    bool epochs_due = log->epochs_dirty && (job->seal_count > 0 || job->removal_count > 0 ||
                                            log->start_dirty || log->dir_dirty);
    if (epochs_due)
        epochs_format(&log->epochs, &add_checkpoint(job, log, LOG_EPOCH_CHECKPOINT, false)->text);
    if (log->start_dirty)
        log_start_text(log->start_offset,
                       &add_checkpoint(job, log, LOG_START_CHECKPOINT, false)->text);
    if (job->seal_count > 0 && log_active(log)->base_offset > log->recovery_point) {
        job->recovery_point = log_active(log)->base_offset;
        log_start_text(job->recovery_point,
                       &add_checkpoint(job, log, LOG_RECOVERY_CHECKPOINT, true)->text);
    }
    if (epochs_due)
        log->epochs_dirty = false;
    log->start_dirty = false;
    if (log->dir_dirty)
        job->dir = xstrdup(log->dir);
    log->dir_dirty = false;
    log->inflight = job;
    log->inflight_target = log_end(log);
    flusher_submit(log->env.flusher, job);
}

/* Detaches the waiters a completion satisfies (all of them on error), in FIFO order. */
static struct flush_waiter *take_ready(struct log *log, int err)
{
    struct flush_waiter *ready = NULL, **ready_tail = &ready;
    struct flush_waiter **link = &log->waiters;
    log->waiters_tail = NULL;
    while (*link) {
        struct flush_waiter *w = *link;
        if (err != 0 || w->end_offset <= log->durable_offset) {
            *link = w->next;
            w->next = NULL;
            *ready_tail = w;
            ready_tail = &w->next;
            log->waiter_count--;
        } else {
            log->waiters_tail = w;
            link = &w->next;
        }
    }
    return ready;
}

static void run_waiters(struct flush_waiter *w, int err, int64_t durable)
{
    while (w) {
        struct flush_waiter *next = w->next;
        w->fn(w->ctx, err, durable);
        free(w);
        w = next;
    }
}

/* Applies what a finished job did: the durable offset up to target when it succeeded and the
 * log has not failed, the recovery point it established, the preallocation it made. */
static void apply_job(struct log *log, struct flush_job *job, int64_t target)
{
    ASSERT(log->err != 0 || target <= log_end(log));
    if (job->err != 0)
        log_fail(log, job->err);
    else if (log->err == 0)
        log->durable_offset = MAX(log->durable_offset, target);
    if (job->err == 0)
        log->recovery_point = MAX(log->recovery_point, job->recovery_point);
    if (job->err == 0 && job->alloc_to > 0 && job->alloc_era == log->alloc_era) {
        struct segment *s = log_active(log);
        if (job->alloc_unsupported)
            log->prealloc_off = true;
        else
            s->file_bytes = MAX(s->file_bytes, job->alloc_to);
    }
    job_free(job);
}

/*
 * Whether appends up to end_offset that the job in flight does not cover may have a sync of
 * their own started now, beside it, instead of waiting for it to finish first (which made an
 * append wait for up to two syncs). Only when nothing but the active file's data is pending: a
 * roll's seal and directory sync, a start checkpoint and removals (with the epoch checkpoint,
 * then due) go with the next full job, in its order (a batch in a new segment is durable only
 * with the directory entry).
 */
static bool may_overlap(const struct log *log, int64_t end_offset)
{
    return log->err == 0 && log->inflight != NULL && log->overlap == NULL &&
           end_offset > log->inflight_target && log->seal_count == 0 && log->removal_count == 0 &&
           !log->start_dirty && !log->dir_dirty;
}

static void submit_overlap(struct log *log)
{
    ASSERT(may_overlap(log, log_end(log)));
    struct flush_job *job = job_new(log, log->env.io);
    job->files = xmalloc(sizeof(*job->files));
    struct log_file *active = log_active(log)->file;
    int rc = files_pin(active, false);
    ASSERT(rc == 0); /* the active file is already pinned, hence open */
    job->files[job->file_count++] = active;
    job->drop_to = plan_drop(log);
    job->own_handles = true;
    log->overlap = job;
    log->overlap_target = log_end(log);
    log->overlap_done = false;
    flusher_submit(log->env.flusher, job);
}

void log_job_done(struct log *log, struct flush_job *job)
{
    if (job == log->overlap) {
        /* It finished first, but counts only after the job before it, which may still fail:
         * a failed sync may drop the pages it could not write, which this sync then never saw
         * dirty, so its success says nothing about them. */
        ASSERT(log->inflight != NULL && !log->overlap_done);
        log->overlap_done = true;
        return;
    }
    ASSERT(log->inflight == job);
    log->inflight = NULL;
    apply_job(log, job, log->inflight_target);
    if (log->overlap != NULL) {
        struct flush_job *next = log->overlap;
        log->overlap = NULL;
        if (log->overlap_done) {
            apply_job(log, next, log->overlap_target);
        } else {
            log->inflight = next;
            log->inflight_target = log->overlap_target;
        }
    }
    int err = log->err;
    struct flush_waiter *ready = take_ready(log, err);
    bool waiting = log->waiters != NULL && log_end(log) > log->durable_offset;
    bool housekeeping =
        log->seal_count > 0 || log->removal_count > 0 || log->start_dirty || log->alloc_target > 0;
    if (err == 0 && log->inflight == NULL && (waiting || housekeeping))
        submit_job(log);
    else if (waiting && may_overlap(log, log_end(log)))
        submit_overlap(log);
    run_waiters(ready, err, log->durable_offset);
}

int log_flush(struct log *log, int64_t end_offset, log_flush_fn fn, void *ctx)
{
    ASSERT(fn != NULL);
    if (log->err)
        return log->err;
    if (end_offset <= log->durable_offset)
        return 1;
    if (log->waiter_count >= LOG_FLUSH_WAITERS_MAX)
        return ERR_TOO_LARGE;
    struct flush_waiter *w = xmalloc(sizeof(*w));
    *w = (struct flush_waiter){.end_offset = end_offset, .fn = fn, .ctx = ctx};
    if (log->waiters_tail)
        log->waiters_tail->next = w;
    else
        log->waiters = w;
    log->waiters_tail = w;
    log->waiter_count++;
    if (log->inflight == NULL && log_end(log) > log->durable_offset)
        submit_job(log);
    else if (may_overlap(log, MIN(end_offset, log_end(log))))
        submit_overlap(log);
    return 0;
}

/* ---- appending ----------------------------------------------------------------------------- */

/* Seals the active segment on the owner thread (clean close): trims it and writes its index
 * files, unsynced. */
static int seal_active(struct log *log)
{
    struct segment *s = log_active(log);
    uint64_t size = 0;
    int rc = io_size(log_file_io(s->file), &size);
    if (rc == 0 && size > s->bytes)
        rc = io_truncate(log_file_io(s->file), s->bytes);
    if (rc < 0)
        return rc;
    s->file_bytes = s->bytes;
    seg_finish_times(s);
    rc = seg_write_indexes(log->env.io, log->dir, s);
    if (rc == 0)
        s->index_on_disk = true;
    return rc;
}

/* Queues the sealing of the active segment, which is about to roll, for the next job: the
 * owner thread only encodes its indexes, the flusher trims the file and writes them. The
 * log's pin on the file moves to the seal. */
static void queue_seal(struct log *log)
{
    struct segment *s = log_active(log);
    seg_finish_times(s);
    if (log->seal_count == log->seal_cap) {
        log->seal_cap = log->seal_cap ? log->seal_cap * 2 : 4;
        log->seals = xrealloc(log->seals, (size_t)log->seal_cap * sizeof(*log->seals));
    }
    struct flush_seal *seal = &log->seals[log->seal_count++];
    char path[IO_PATH_BYTES_MAX];
    seal->file = s->file;
    seal->bytes = s->bytes;
    seal->drop_to = cache_drop_point(log, s->bytes);
    seg_path(path, log->dir, s->base_offset, ".index");
    seal->index_path = xstrdup(path);
    seg_path(path, log->dir, s->base_offset, ".timeindex");
    seal->time_path = xstrdup(path);
    buf_init(&seal->index);
    buf_init(&seal->times);
    seg_encode_indexes(s, &seal->index, &seal->times);
    /* What the files hold once the seal is performed; a clean close performs pending seals
     * before it looks, and a truncation removes the files whether or not they were written. */
    s->file_bytes = s->bytes;
    s->index_on_disk = true;
    s->index_unsynced = false;
}

static int roll(struct log *log)
{
    if (log->seg_count >= LOG_SEGMENTS_MAX)
        return ERR_TOO_LARGE;
    struct segment *old = log_active(log);
    struct segment *s = seg_new(log->env.files, log->dir, old->end_offset);
    int rc = files_pin(s->file, true);
    if (rc < 0) {
        seg_free(s);
        return log_fail(log, rc);
    }
    queue_seal(log);
    log->alloc_target = 0;
    log->alloc_era++; /* a preallocation in flight was for the sealed file */
    log->active_pin = s->file;
    log_push_segment(log, s);
    log->dir_dirty = true;
    /* Seal the rolled segment soon even if nobody asked: that also releases its pin. */
    if (log->inflight == NULL)
        submit_job(log);
    return 0;
}

static int maybe_roll(struct log *log, uint64_t len, const struct batch_header *h)
{
    const struct segment *s = log_active(log);
    if (s->bytes == 0)
        return 0;
    uint64_t age_ms = clock_mono_ms(log->env.clock) - (uint64_t)s->first_append_ms;
    bool full = s->bytes + len > log->cfg.segment_bytes || seg_index_full(s);
    bool old = s->first_append_ms >= 0 && age_ms >= log->cfg.roll_ms;
    bool wide = batch_last_offset(h) - s->base_offset > (int64_t)UINT32_MAX;
    return full || old || wide ? roll(log) : 0;
}

/* The next preallocation chunk: as large as the segment already is, from
 * LOG_PREALLOC_BYTES_FIRST up to the configured chunk, so a partition that holds a few bytes
 * (an idle one of thousands: a replica holding only its leaders' no-ops) takes a few KiB of disk,
 * not a whole chunk, while a busy one reaches full chunks after as many bytes. */
static uint64_t prealloc_chunk(const struct log *log, const struct segment *s)
{
    uint64_t chunk = MAX((uint64_t)LOG_PREALLOC_BYTES_FIRST, s->file_bytes);
    return MIN(chunk, log->cfg.prealloc_bytes);
}

/* Grows the active segment's preallocation on the owner thread when the batch would not fit:
 * the first chunk of a new segment (once per roll, as the file's creation), or when the flusher
 * fell behind the writes. */
static int ensure_space(struct log *log, struct segment *s, uint64_t len)
{
    uint64_t need = s->bytes + len;
    if (log->cfg.prealloc_bytes == 0 || log->prealloc_off || need <= s->file_bytes)
        return 0;
    uint64_t target = MIN(s->file_bytes + prealloc_chunk(log, s), log->cfg.segment_bytes);
    target = MAX(target, need);
    int rc = io_allocate(log_file_io(s->file), s->file_bytes, target - s->file_bytes);
    if (rc == -EOPNOTSUPP) {
        log->prealloc_off = true; /* plain appends still work, only slower to sync */
        return 0;
    }
    if (rc == 0)
        s->file_bytes = target;
    return rc;
}

/* Asks the next job to grow the preallocation by a chunk once less than half a chunk is left
 * ahead of the writes, so the owner thread does not wait for allocations in steady state
 * (fallocate can wait on the filesystem journal behind the syncs in progress). The chunk lies
 * past everything written: allocating over dirty pages would be slow. */
static void plan_space(struct log *log, const struct segment *s)
{
    if (log->cfg.prealloc_bytes == 0 || log->prealloc_off || log->alloc_target > 0)
        return;
    uint64_t chunk = prealloc_chunk(log, s);
    if (log->inflight != NULL && log->inflight->alloc_to > 0)
        return; /* the allocation in flight is the one this would ask for */
    if (s->file_bytes < s->bytes || s->file_bytes - s->bytes >= chunk / 2 ||
        s->file_bytes >= log->cfg.segment_bytes)
        return;
    log->alloc_target = MIN(s->file_bytes + chunk, log->cfg.segment_bytes);
}

static int write_batch(struct log *log, const uint8_t *p, size_t len, const struct batch_header *h,
                       struct log_append_result *out)
{
    ASSERT(h->base_offset == log_end(log));
    ASSERT(batch_total_bytes(h) == len);
    int rc = maybe_roll(log, len, h);
    if (rc < 0)
        return rc;
    struct segment *s = log_active(log);
    rc = ensure_space(log, s, len);
    if (rc < 0)
        return log_fail(log, rc);
    ssize_t n = io_pwrite(log_file_io(s->file), p, len, s->bytes);
    if (n < 0)
        return log_fail(log, (int)n);
    if (s->first_append_ms < 0)
        s->first_append_ms = (int64_t)clock_mono_ms(log->env.clock);
    seg_note_batch(s, h, len, log->cfg.index_interval_bytes);
    s->file_bytes = MAX(s->file_bytes, s->bytes);
    s->index_on_disk = false;
    int32_t latest = log_latest_epoch(log);
    rc = epochs_assign(&log->epochs, h->leader_epoch, h->base_offset);
    ASSERT(rc == 0); /* checked by the caller before anything was written */
    log->epochs_dirty |= h->leader_epoch != latest;
    out->base_offset = h->base_offset;
    out->last_offset = batch_last_offset(h);
    plan_space(log, s);
    if ((log->waiters != NULL || log->alloc_target > 0) && log->inflight == NULL)
        submit_job(log);
    return 0;
}

/* Checks that a batch of len bytes may be appended with epoch; fills h. */
static int check_append(struct log *log, const uint8_t *batch, size_t len, int32_t epoch,
                        struct batch_header *h)
{
    if (log->err)
        return log->err;
    int rc = batch_header_parse(batch, len, h);
    if (rc < 0)
        return rc;
    if (batch_total_bytes(h) != len)
        return ERR_INVALID;
    int32_t latest = log_latest_epoch(log);
    if (epoch < 0 || epoch < latest)
        return ERR_INVALID;
    if (epoch > latest && log->epochs.len >= LOG_EPOCH_ENTRIES_MAX)
        return ERR_TOO_LARGE;
    if (log_end(log) > INT64_MAX - h->last_offset_delta - 1)
        return ERR_RANGE;
    return 0;
}

int log_append(struct log *log, uint8_t *batch, size_t len, int32_t leader_epoch,
               struct log_append_result *out)
{
    ASSERT(batch != NULL && out != NULL);
    struct batch_header h;
    int rc = check_append(log, batch, len, leader_epoch, &h);
    if (rc < 0)
        return rc;
    h.base_offset = log_end(log);
    h.leader_epoch = leader_epoch;
    batch_stamp(batch, h.base_offset, leader_epoch);
    return write_batch(log, batch, len, &h, out);
}

int log_append_at(struct log *log, const uint8_t *batch, size_t len, struct log_append_result *out)
{
    ASSERT(batch != NULL && out != NULL);
    struct batch_header h;
    int rc = batch_header_parse(batch, len, &h);
    if (rc == 0)
        rc = check_append(log, batch, len, h.leader_epoch, &h);
    if (rc < 0)
        return rc;
    if (h.base_offset != log_end(log))
        return ERR_RANGE;
    return write_batch(log, batch, len, &h, out);
}

/* ---- reading ------------------------------------------------------------------------------- */

/* The segment holding offset (the last one whose base is <= offset). */
uint32_t log_find_segment(const struct log *log, int64_t offset)
{
    uint32_t lo = 0, hi = log->seg_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->base_offset <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    ASSERT(lo > 0);
    return lo - 1;
}

/* Positions c on the batch holding offset: returns its header and position. */
static int seek_batch(struct seg_cursor *c, int64_t offset, struct batch_header *h, uint64_t *pos)
{
    for (;;) {
        int rc = seg_cursor_next(c, h, pos);
        if (rc <= 0)
            return rc == 0 ? ERR_CORRUPT : rc; /* memory says the offset is here: disk disagrees */
        if (batch_last_offset(h) >= offset)
            return 0;
    }
}

/* A read that starts more than cache_tail_bytes behind the log's end reads older data, which
 * the drop-behind has released (or never held): drops what such reads brought into the page
 * cache, cache_tail_bytes behind this one, so that reading history cycles through the same
 * memory too. Pages still being sent to a socket stay cached. On the owner thread: about
 * 0.15 ms per 2 MiB dropped, measured here. */
static void drop_behind_read(struct log *log, uint32_t seg, uint64_t pos)
{
    uint64_t tail = log->env.cache_tail_bytes;
    if (tail == 0)
        return;
    struct segment *s = log->segs[seg];
    uint64_t after = s->bytes - pos; /* bytes of the log from the read to the end */
    for (uint32_t i = seg + 1; i < log->seg_count && after < tail; i++)
        after += log->segs[i]->bytes;
    if (after < tail)
        return;
    uint64_t to = cache_drop_point(log, pos);
    if (to <= s->read_dropped_to)
        return;
    s->read_dropped_to = to;
    (void)io_drop_cache(log_file_io(s->file), 0, to); /* a hint: nothing to do when it fails */
}

/* Whether h is a Raft no-op: a control batch outside any transaction that starts its epoch
 * (a new leader's first entry; a log-start marker is inside its epoch). */
static bool batch_is_noop(const struct log *log, const struct batch_header *h)
{
    return batch_is_control(h) && !batch_is_transactional(h) &&
           epochs_starts_at(&log->epochs, h->leader_epoch, h->base_offset);
}

/* log_read; with records, no-ops are left out: the read starts after those at offset (in
 * whichever segment the next batch is) and stops before the next one. */
static int read_batches(struct log *log, int64_t offset, uint64_t bytes_max, int64_t offset_limit,
                        bool records, struct log_read *out)
{
    ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    out->first_offset = out->next_offset = offset;
    if (log->err)
        return log->err;
    if (offset < log->start_offset || offset > log_end(log))
        return ERR_RANGE;
    for (;;) {
        if (offset == log_end(log) || offset >= offset_limit)
            return 0;
        uint32_t seg = log_find_segment(log, offset);
        struct segment *s = log->segs[seg];
        int rc = files_pin(s->file, false);
        if (rc < 0)
            return rc;
        struct seg_cursor c;
        seg_cursor_init(&c, log_file_io(s->file), seg_index_floor(s, offset), s->bytes);
        struct batch_header h;
        uint64_t pos;
        rc = seek_batch(&c, offset, &h, &pos);
        while (rc == 0 && records && batch_is_noop(log, &h) &&
               batch_last_offset(&h) < offset_limit) {
            offset = batch_last_offset(&h) + 1;
            out->first_offset = out->next_offset = offset;
            rc = seg_cursor_next(&c, &h, &pos);
            rc = rc == 1 ? 0 : rc == 0 ? 1 : rc; /* 1: the segment ended, go on in the next */
        }
        if (rc != 0 || batch_last_offset(&h) >= offset_limit) {
            seg_cursor_deinit(&c);
            files_unpin(s->file);
            if (rc == 1)
                continue;
            return rc < 0 ? rc : 0;
        }
        out->position = pos;
        out->bytes = batch_total_bytes(&h);
        out->first_offset = h.base_offset;
        out->next_offset = batch_last_offset(&h) + 1;
        uint64_t next_pos;
        while (seg_cursor_next(&c, &h, &next_pos) == 1) {
            if (batch_last_offset(&h) >= offset_limit ||
                out->bytes + batch_total_bytes(&h) > bytes_max ||
                (records && batch_is_noop(log, &h)))
                break;
            out->bytes += batch_total_bytes(&h);
            out->next_offset = batch_last_offset(&h) + 1;
        }
        out->file = s->file;
        seg_cursor_deinit(&c);
        drop_behind_read(log, seg, pos);
        return 0;
    }
}

int log_read(struct log *log, int64_t offset, uint64_t bytes_max, int64_t offset_limit,
             struct log_read *out)
{
    return read_batches(log, offset, bytes_max, offset_limit, false, out);
}

int log_read_records(struct log *log, int64_t offset, uint64_t bytes_max, int64_t offset_limit,
                     struct log_read *out)
{
    return read_batches(log, offset, bytes_max, offset_limit, true, out);
}

/* The header and position of the batch of s holding offset, a stored offset of s. */
static int seg_header_at(struct segment *s, int64_t offset, struct batch_header *h, uint64_t *pos)
{
    int rc = files_pin(s->file, false);
    if (rc < 0)
        return rc;
    struct seg_cursor c;
    seg_cursor_init(&c, log_file_io(s->file), seg_index_floor(s, offset), s->bytes);
    rc = seek_batch(&c, offset, h, pos);
    seg_cursor_deinit(&c);
    files_unpin(s->file);
    return rc;
}

int64_t log_visible_end(struct log *log, int64_t end)
{
    ASSERT(end <= log_end(log));
    /* Also on a failed log: a leader whose write failed still answers until it steps down, and
     * its batches below end are readable, so its answer must match the one after its restart
     * (it showed a no-op's offset, the restart hid it: cluster_sim --brokers seed 500479). */
    const struct epochs *e = &log->epochs;
    for (uint32_t i = e->len; i > 0 && end > log->start_offset; i--) {
        int64_t start = e->v[i - 1].start_offset;
        if (start >= end)
            continue; /* an epoch begun at or past end */
        struct batch_header h;
        uint64_t pos;
        if (start != end - 1 ||
            seg_header_at(log->segs[log_find_segment(log, start)], start, &h, &pos) < 0 ||
            h.base_offset != start || batch_last_offset(&h) != start || !batch_is_noop(log, &h))
            break;
        end = start;
    }
    return end;
}

void log_read_release(struct log_read *r)
{
    if (r->file)
        files_unpin(r->file);
    r->file = NULL;
}

/* ---- lookups ------------------------------------------------------------------------------- */

/* The first data batch of s with maxTimestamp >= ts and last offset >= min_offset. Control
 * batches hold no record a consumer sees: a replicated partition's leader-change no-op carries
 * the wall clock of its election, which data with earlier timestamps (replayed, event time)
 * written after it must not hide. They still count in the time index and the segment's
 * maximum, which only makes the scan start earlier, and in retention. */
static int find_time_in(struct segment *s, int64_t ts, int64_t min_offset, int64_t *offset)
{
    uint64_t pos = 0;
    for (uint32_t i = 0; i < s->times_len && s->times[i].timestamp_ms < ts; i++)
        pos = s->times[i].pos; /* every batch before this entry's batch is older than ts */
    int rc = files_pin(s->file, false);
    if (rc < 0)
        return rc;
    struct seg_cursor c;
    seg_cursor_init(&c, log_file_io(s->file), pos, s->bytes);
    struct batch_header h;
    uint64_t at;
    rc = ERR_NOT_FOUND;
    int step;
    while ((step = seg_cursor_next(&c, &h, &at)) == 1) {
        if (h.max_timestamp_ms >= ts && batch_last_offset(&h) >= min_offset &&
            !batch_is_control(&h)) {
            *offset = MAX(h.base_offset, min_offset);
            rc = 0;
            break;
        }
    }
    if (step < 0)
        rc = step;
    seg_cursor_deinit(&c);
    files_unpin(s->file);
    return rc;
}

int log_offset_for_timestamp(struct log *log, int64_t timestamp_ms, int64_t *offset)
{
    ASSERT(offset != NULL);
    if (log->err)
        return log->err;
    for (uint32_t i = 0; i < log->seg_count; i++) {
        struct segment *s = log->segs[i];
        if (s->end_offset <= log->start_offset || s->max_timestamp_offset < 0 ||
            s->max_timestamp_ms < timestamp_ms)
            continue;
        int rc = find_time_in(s, timestamp_ms, log->start_offset, offset);
        if (rc != ERR_NOT_FOUND)
            return rc;
    }
    return ERR_NOT_FOUND;
}

int log_max_timestamp(struct log *log, int64_t *timestamp_ms, int64_t *offset)
{
    ASSERT(timestamp_ms != NULL && offset != NULL);
    if (log->err)
        return log->err;
    int rc = ERR_NOT_FOUND;
    for (uint32_t i = 0; i < log->seg_count; i++) {
        const struct segment *s = log->segs[i];
        if (s->max_timestamp_offset < 0 || (rc == 0 && s->max_timestamp_ms <= *timestamp_ms))
            continue;
        *timestamp_ms = s->max_timestamp_ms;
        *offset = s->max_timestamp_offset;
        rc = 0;
    }
    return rc;
}

int log_epoch_of(struct log *log, int64_t offset, int32_t *epoch)
{
    if (offset < 0 || offset >= log_end(log))
        return ERR_NOT_FOUND;
    return epochs_epoch_of(&log->epochs, offset, epoch);
}

void log_end_offset_for_epoch(struct log *log, int32_t epoch, int32_t *epoch_out,
                              int64_t *end_offset_out)
{
    epochs_end_for(&log->epochs, epoch, log_end(log), epoch_out, end_offset_out);
}

/* ---- truncation and deletion ------------------------------------------------------------- */

/* Forgets the pending seal of a segment that is deleted or active again (its index files are
 * removed or stale), so the next job does not write them. */
static void unseal(struct log *log, struct log_file *f)
{
    for (uint32_t i = 0; i < log->seal_count; i++) {
        if (log->seals[i].file != f)
            continue;
        seal_deinit(&log->seals[i]);
        log->seals[i] = log->seals[--log->seal_count];
        return;
    }
}

static void queue_removal(struct log *log, const char *path)
{
    if (log->removal_count == log->removal_cap) {
        log->removal_cap = log->removal_cap ? log->removal_cap * 2 : 8;
        log->removals = xrealloc(log->removals, (size_t)log->removal_cap * sizeof(*log->removals));
    }
    log->removals[log->removal_count++] = xstrdup(path);
}

/*
 * Deletes segment i (never the one the log pins as active). now: its files are removed here,
 * which requires that no job is in flight (a truncation, whose freed names new segments
 * reuse). Otherwise the removals are queued for the next job, behind any job that may still
 * seal the segment (retention and DeleteRecords, whose names are below the log start and
 * never reused): removing them here could pull a file from under a queued seal.
 */
static int delete_segment(struct log *log, uint32_t i, bool now)
{
    ASSERT(i < log->seg_count);
    ASSERT(!now || log->inflight == NULL || log->inflight->performed);
    ASSERT(!now || log->overlap == NULL || log->overlap->performed);
    struct segment *s = log->segs[i];
    /* Retention and DeleteRecords: a crash may undo the removal (and the start offset that
     * goes with it) and bring the segment back, which its index must then describe whole. */
    if (!now && s->txn_unsynced) {
        int rc = log_txn_sync(log);
        if (rc < 0)
            return rc;
    }
    static const char *const exts[] = {".log", ".index", ".timeindex", ".txnindex"};
    char path[IO_PATH_BYTES_MAX];
    for (size_t k = 0; k < ARRAY_LEN(exts); k++) {
        seg_path(path, log->dir, s->base_offset, exts[k]);
        if (!now) {
            queue_removal(log, path);
            continue;
        }
        int rc = io_remove(log->env.io, path);
        if (rc < 0 && rc != -ENOENT && k == 0)
            return log_fail(log, rc);
        /* a missing index file is normal; a stale one is ignored */
    }
    ASSERT(s->file != log->active_pin);
    unseal(log, s->file);
    seg_free(s);
    memmove(log->segs + i, log->segs + i + 1,
            (size_t)(log->seg_count - i - 1) * sizeof(*log->segs));
    log->seg_count--;
    log->dir_dirty = true;
    return 0;
}

/* Rebuilds s's in-memory state from its first `bytes` bytes (a header walk). */
static int rebuild_segment(struct log *log, struct segment *s, uint64_t bytes)
{
    seg_reset(s);
    struct seg_cursor c;
    seg_cursor_init(&c, log_file_io(s->file), 0, bytes);
    struct batch_header h;
    uint64_t pos;
    int rc;
    while ((rc = seg_cursor_next(&c, &h, &pos)) == 1) {
        if (h.base_offset != s->end_offset) {
            rc = ERR_CORRUPT;
            break;
        }
        seg_note_batch(s, &h, batch_total_bytes(&h), log->cfg.index_interval_bytes);
    }
    seg_cursor_deinit(&c);
    return rc;
}

/* The position of the batch starting at offset in s, or ERR_INVALID inside a batch. */
static int boundary_position(struct segment *s, int64_t offset, uint64_t *pos)
{
    if (offset == s->base_offset) {
        *pos = 0;
        return 0;
    }
    struct batch_header h;
    int rc = seg_header_at(s, offset, &h, pos);
    return rc == 0 && h.base_offset != offset ? ERR_INVALID : rc;
}

/* Makes the recovery point durably `base` before segment `base` changes, so a crash cannot
 * leave a rewritten segment trusted. An in-flight job might still write a higher value: wait
 * until it has been performed first. */
static int lower_recovery_point(struct log *log, int64_t base)
{
    if (log->inflight != NULL) {
        flusher_wait_performed(log->env.flusher, log->inflight);
        log->inflight->recovery_point = -1; /* what it vouched for is being rewritten */
        if (log->inflight->err != 0)
            return log_fail(log, log->inflight->err); /* the first error, not a sticky echo */
    }
    char path[IO_PATH_BYTES_MAX];
    struct buf b;
    buf_init(&b);
    log_start_text(base, &b);
    log_path(log, path, LOG_RECOVERY_CHECKPOINT);
    int rc = checkpoint_write(log->env.io, path, &b);
    buf_deinit(&b);
    if (rc < 0)
        return log_fail(log, rc);
    log->recovery_point = base;
    return 0;
}

int log_truncate_to(struct log *log, int64_t offset)
{
    if (log->err)
        return log->err;
    if (offset < log->start_offset || offset > log_end(log))
        return ERR_RANGE;
    if (offset == log_end(log))
        return 0;
    /* A job in flight may still trim and seal segments this cut rewrites or deletes, or open
     * the active file by its name. */
    if (log->inflight != NULL) {
        flusher_wait_performed(log->env.flusher, log->inflight);
        if (log->inflight->err != 0)
            return log_fail(log, log->inflight->err);
    }
    if (log->overlap != NULL) {
        flusher_wait_performed(log->env.flusher, log->overlap);
        if (log->overlap->err != 0)
            return log_fail(log, log->overlap->err);
    }
    uint32_t i = log_find_segment(log, offset);
    struct segment *s = log->segs[i];
    uint64_t pos;
    int rc = boundary_position(s, offset, &pos);
    if (rc < 0)
        return rc;
    int64_t vouched = log->recovery_point;
    if (log->inflight != NULL)
        vouched = MAX(vouched, log->inflight->recovery_point);
    if (s->base_offset < vouched) {
        rc = lower_recovery_point(log, s->base_offset);
        if (rc < 0)
            return rc;
    }
    log->alloc_target = 0;
    log->alloc_era++; /* the cut file's size is set below, not by an allocation in flight */
    /* From here on the cut is decided: nothing below may claim offsets past it, even if a
     * step fails and leaves the log failed. */
    log->high_watermark = MIN(log->high_watermark, offset);
    log->durable_offset = MIN(log->durable_offset, offset);
    log->inflight_target = MIN(log->inflight_target, offset);
    log->overlap_target = MIN(log->overlap_target, offset);
    bool was_active = i == log->seg_count - 1;
    if (!was_active) {
        rc = files_pin(s->file, false); /* s becomes the active segment */
        if (rc < 0)
            return log_fail(log, rc);
        files_unpin(log->active_pin);
        log->active_pin = s->file;
    }
    while (log->seg_count - 1 > i) {
        rc = delete_segment(log, log->seg_count - 1, true);
        if (rc < 0)
            return rc;
    }
    unseal(log, s->file);
    if (s->index_on_disk || !was_active)
        seg_remove_files(log->env.io, log->dir, s->base_offset);
    s->index_on_disk = false;
    rc = io_truncate(log_file_io(s->file), pos);
    /* The cut must be durable before anything is appended in its place: otherwise a crash
     * could bring back the dropped suffix (whole deleted segments, or bytes past the cut)
     * behind new entries, a log no leader ever had. Truncation is rare (a Raft follower
     * meeting a new leader), so this is the one place the owner waits for a sync. */
    if (rc == 0)
        rc = io_sync(log_file_io(s->file));
    if (rc == 0 && log->dir_dirty)
        rc = io_sync_dir(log->env.io, log->dir);
    if (rc < 0)
        return log_fail(log, rc);
    log->dir_dirty = false;
    s->file_bytes = pos;
    rc = rebuild_segment(log, s, pos);
    if (rc < 0)
        return log_fail(log, rc);
    /* Entries of markers past the cut go too, durably as the cut: brought back by a crash they
     * would describe offsets that later appends fill with other batches. */
    rc = txn_cut(log, s, offset);
    if (rc == 1)
        rc = log_txn_sync(log);
    if (rc < 0)
        return rc;
    s->first_append_ms = s->bytes > 0 ? (int64_t)clock_mono_ms(log->env.clock) : -1;
    log->epochs_dirty |= epochs_truncate_from_end(&log->epochs, offset);
    return 0;
}

int log_enforce_retention(struct log *log)
{
    if (log->err)
        return log->err;
    int64_t now_ms = clock_wall_ms(log->env.clock);
    int64_t total = 0;
    for (uint32_t i = 0; i < log->seg_count; i++)
        total += (int64_t)log->segs[i]->bytes;
    int deleted = 0;
    while (log->seg_count > 1) {
        const struct segment *s = log->segs[0];
        if (s->end_offset > log->high_watermark)
            break;
        /* A segment without timestamps never expires by time (Kafka falls back to the file's
         * mtime, which a copy or restore would reset anyway). */
        bool by_time = log->cfg.retention_ms >= 0 && s->max_timestamp_ms >= 0 &&
                       s->max_timestamp_ms < now_ms - log->cfg.retention_ms;
        bool by_size =
            log->cfg.retention_bytes >= 0 && total - (int64_t)s->bytes >= log->cfg.retention_bytes;
        if (!by_time && !by_size)
            break;
        total -= (int64_t)s->bytes;
        int rc = delete_segment(log, 0, false);
        if (rc < 0)
            return rc;
        deleted++;
    }
    if (deleted > 0 && log->segs[0]->base_offset > log->start_offset) {
        log->start_offset = log->segs[0]->base_offset;
        log->start_dirty = true;
        log->epochs_dirty |= epochs_truncate_from_start(&log->epochs, log->start_offset);
    }
    if (deleted > 0 && log->inflight == NULL)
        submit_job(log); /* removes the files; else the job in flight starts the next one */
    return deleted;
}

int log_delete_records(struct log *log, int64_t offset)
{
    if (log->err)
        return log->err;
    if (offset > log->high_watermark)
        return ERR_RANGE;
    if (offset <= log->start_offset)
        return 0;
    log->start_offset = offset;
    log->start_dirty = true;
    log->epochs_dirty |= epochs_truncate_from_start(&log->epochs, offset);
    while (log->seg_count > 1 && log->segs[0]->end_offset <= offset) {
        int rc = delete_segment(log, 0, false);
        if (rc < 0)
            return rc;
    }
    if (log->inflight == NULL)
        submit_job(log); /* persist the new start offset and remove the files soon */
    return 0;
}

int log_reset(struct log *log, int64_t offset)
{
    if (log->err)
        return log->err;
    if (offset <= log_end(log))
        return ERR_RANGE;
    if (log->seg_count >= LOG_SEGMENTS_MAX)
        return ERR_TOO_LARGE;
    /* The empty segment comes first: until the start checkpoint names offset it lies after a
     * gap, and recovery deletes it with everything else past the old end. */
    struct segment *s = seg_new(log->env.files, log->dir, offset);
    int rc = files_pin(s->file, true);
    if (rc < 0) {
        seg_free(s);
        return log_fail(log, rc);
    }
    log->alloc_target = 0;
    log->alloc_era++;
    files_unpin(log->active_pin);
    log->active_pin = s->file;
    log_push_segment(log, s);
    while (log->seg_count > 1) {
        rc = delete_segment(log, 0, false);
        if (rc < 0)
            return rc;
    }
    /* The durable offset (at most the old end) reaches offset once the next job has written
     * the start checkpoint (before its removals) and synced the directory. */
    log->start_offset = offset;
    log->high_watermark = offset;
    log->start_dirty = true;
    log->epochs.len = 0;
    log->epochs_dirty = true;
    log->dir_dirty = true;
    if (log->inflight == NULL)
        submit_job(log);
    return 0;
}

/* ---- closing ------------------------------------------------------------------------------- */

static int sync_file(struct log_file *f)
{
    int rc = files_pin(f, false);
    if (rc < 0)
        return rc;
    rc = io_sync(log_file_io(f));
    files_unpin(f);
    return rc;
}

static int write_checkpoints(struct log *log)
{
    char path[IO_PATH_BYTES_MAX];
    struct buf b;
    buf_init(&b);
    epochs_format(&log->epochs, &b);
    log_path(log, path, LOG_EPOCH_CHECKPOINT);
    int rc = checkpoint_write(log->env.io, path, &b);
    buf_reset(&b);
    log_start_text(log->start_offset, &b);
    log_path(log, path, LOG_START_CHECKPOINT);
    if (rc == 0)
        rc = checkpoint_write(log->env.io, path, &b);
    /* Called once every segment and index file is synced: all but the active one vouch. */
    buf_reset(&b);
    log_start_text(log_active(log)->base_offset, &b);
    log_path(log, path, LOG_RECOVERY_CHECKPOINT);
    if (rc == 0)
        rc = checkpoint_write(log->env.io, path, &b);
    buf_deinit(&b);
    return rc;
}

/* Performs on the owner thread what the next job would have: seals and removals. */
static int perform_pending(struct log *log)
{
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < log->seal_count; i++)
        rc = seal_perform(log->env.io, &log->seals[i]);
    for (uint32_t i = 0; rc == 0 && i < log->removal_count; i++) {
        rc = io_remove(log->env.io, log->removals[i]);
        if (rc == -ENOENT)
            rc = 0;
    }
    return rc;
}

/* Makes everything durable, then leaves the marker that lets the next open skip the scan. */
static int close_clean(struct log *log)
{
    int rc = perform_pending(log);
    if (rc == 0)
        rc = seal_active(log);
    for (uint32_t i = 0; rc == 0 && i < log->seg_count; i++) {
        struct segment *s = log->segs[i];
        if (!s->index_on_disk) {
            rc = seg_write_indexes(log->env.io, log->dir, s);
            s->index_on_disk = rc == 0;
        }
        if (rc == 0 && s->index_unsynced)
            rc = seg_sync_indexes(log->env.io, log->dir, s);
    }
    if (rc == 0)
        rc = sync_file(log_active(log)->file);
    if (rc == 0)
        rc = log_txn_sync(log);
    if (rc == 0)
        rc = write_checkpoints(log);
    if (rc == 0)
        rc = io_sync_dir(log->env.io, log->dir);
    char path[IO_PATH_BYTES_MAX];
    log_path(log, path, LOG_CLEAN_MARKER);
    struct io_file *f = NULL;
    if (rc == 0)
        rc = io_open(log->env.io, path, IO_RDWR | IO_CREATE, &f);
    if (rc == 0) {
        io_close(f);
        rc = io_sync_dir(log->env.io, log->dir);
    }
    return rc;
}

static void fail_waiters(struct log *log)
{
    struct flush_waiter *w = log->waiters;
    log->waiters = log->waiters_tail = NULL;
    log->waiter_count = 0;
    run_waiters(w, ERR_CLOSED, log->durable_offset);
}

void log_free(struct log *log)
{
    ASSERT(log->inflight == NULL && log->overlap == NULL);
    fail_waiters(log);
    for (uint32_t i = 0; i < log->seal_count; i++)
        seal_deinit(&log->seals[i]);
    for (uint32_t i = 0; i < log->removal_count; i++)
        free(log->removals[i]);
    free(log->removals);
    if (log->active_pin)
        files_unpin(log->active_pin);
    for (uint32_t i = 0; i < log->seg_count; i++)
        seg_free(log->segs[i]);
    free(log->segs);
    free(log->seals);
    epochs_deinit(&log->epochs);
    buf_deinit(&log->scratch);
    free(log->dir);
    free(log);
}

static void wait_idle(struct log *log)
{
    while (log->inflight != NULL)
        log_flusher_wait(log->env.flusher);
}

int log_replace_file(struct io *io, const char *path, const struct buf *bytes)
{
    return checkpoint_write(io, path, bytes);
}

int log_close(struct log *log)
{
    log_close_begin(log);
    return log_close_end(log);
}

void log_close_begin(struct log *log)
{
    wait_idle(log);
    fail_waiters(log);
}

int log_close_end(struct log *log)
{
    int rc = log->err;
    if (rc == 0)
        rc = close_clean(log);
    log_free(log); /* no waiter left to call back on this thread */
    return rc;
}

void log_abandon(struct log *log)
{
    wait_idle(log);
    log_free(log);
}

int log_set_config(struct log *log, const struct log_config *cfg)
{
    ASSERT(log != NULL && cfg != NULL);
    if (cfg->segment_bytes < LOG_SEGMENT_BYTES_MIN || cfg->segment_bytes > LOG_SEGMENT_BYTES_MAX ||
        cfg->index_interval_bytes == 0 || cfg->prealloc_bytes > LOG_SEGMENT_BYTES_MAX)
        return ERR_INVALID;
    /* Every setting is read where it is used (roll, preallocation, indexing, retention), so the
     * new values apply from the next append or retention pass. */
    log->cfg = *cfg;
    return 0;
}
