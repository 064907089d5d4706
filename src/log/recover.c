/*
 * Opening a partition log: listing its directory, recovering its segments and checkpoints.
 *
 * Owns the recovery rules. After a clean close (the marker is present) index files are loaded
 * and checked against the log files (headers after the last index entry, epochs against the
 * epoch checkpoint). After a crash the same holds for the segments below the recovery point
 * (synced with their index files before the point was written); every later segment, and any
 * trusted one that does not check out, is validated batch by batch (header, CRC, records,
 * contiguous offsets, non-decreasing epochs). The first bad batch ends the log only when it can
 * be a torn tail, the unsynced end a crash leaves: then its segment is truncated there and
 * every later segment is deleted. It cannot be one, and the log refuses to open with
 * ERR_DAMAGED and one line naming the file, position and offset, changing nothing, when the
 * bytes there were synced (the segment lies below the recovery point on disk, or the log was
 * closed cleanly) or a valid batch follows (later in the segment, or in a later segment that
 * does not continue it): fsynced data after it may have been acknowledged, and repairing would
 * silently drop it (a Raft voter would forget entries it acknowledged). One exception: in the
 * active segment, zero bytes up to the valid batch, or a region there holding a lost sector
 * (a whole zero sector, a batch header zero up to its magic byte), are pages that never reached the
 * disk (a power loss that kept later unsynced writes, a failed fsync that dropped pages), so that
 * region and everything after it was never synced: a torn tail. A rolled segment whose trim a crash
 * lost ends in preallocated bytes that the next segment continues: it is trimmed, nothing else. The
 * epoch cache is rebuilt from the scanned batches on top of the checkpoint's entries below the
 * recovery point, and everything recovered is synced before the log is usable, so the durable
 * offset starts at the log end. A start-offset checkpoint beyond the end of the recovered segments
 * means the log was replaced by an empty one starting there (log_reset): the segments are deleted
 * and it opens empty there. Aborted-transaction index files (txnindex.c) are read last, keeping of
 * each the valid entries below its segment's recovered end. Must never trust a file size as the end
 * of valid data, nor keep a segment that does not continue its predecessor exactly.
 */
#include "log/log_internal.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEG_NAME_DIGITS 20

struct listing {
    int64_t *bases; /* .log files */
    uint32_t base_count;
    uint32_t base_cap;
    char **doomed; /* leftovers to remove: temp files and orphan index files */
    uint32_t doomed_count;
    uint32_t doomed_cap;
    int64_t *index_bases;
    uint32_t index_count;
    uint32_t index_cap;
    bool clean;
};

static void push_i64(int64_t **v, uint32_t *n, uint32_t *cap, int64_t x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *v = xrealloc(*v, (size_t)*cap * sizeof(**v));
    }
    (*v)[(*n)++] = x;
}

/* The base offset in a segment file name "<20 digits><ext>", or -1. */
static int64_t parse_seg_name(const char *name, const char *ext)
{
    size_t n = strlen(name), e = strlen(ext);
    if (n != SEG_NAME_DIGITS + e || strcmp(name + SEG_NAME_DIGITS, ext) != 0)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < SEG_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9' || v > (INT64_MAX - (name[i] - '0')) / 10)
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

static int on_entry(void *ctx, const char *name)
{
    struct listing *l = ctx;
    size_t n = strlen(name);
    int64_t base;
    if (strcmp(name, LOG_CLEAN_MARKER) == 0) {
        l->clean = true;
    } else if ((base = parse_seg_name(name, ".log")) >= 0) {
        if (l->base_count >= LOG_SEGMENTS_MAX)
            return ERR_TOO_LARGE;
        push_i64(&l->bases, &l->base_count, &l->base_cap, base);
    } else if ((base = parse_seg_name(name, ".index")) >= 0 ||
               (base = parse_seg_name(name, ".timeindex")) >= 0 ||
               (base = parse_seg_name(name, ".txnindex")) >= 0) {
        if (l->index_count >= 3 * LOG_SEGMENTS_MAX)
            return ERR_TOO_LARGE;
        push_i64(&l->index_bases, &l->index_count, &l->index_cap, base);
    } else if (n > 4 && strcmp(name + n - 4, ".tmp") == 0) {
        if (l->doomed_count == l->doomed_cap) {
            l->doomed_cap = l->doomed_cap ? l->doomed_cap * 2 : 8;
            l->doomed = xrealloc(l->doomed, (size_t)l->doomed_cap * sizeof(*l->doomed));
        }
        l->doomed[l->doomed_count++] = xstrdup(name);
    }
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void listing_free(struct listing *l)
{
    for (uint32_t i = 0; i < l->doomed_count; i++)
        free(l->doomed[i]);
    free(l->doomed);
    free(l->bases);
    free(l->index_bases);
}

/* Removes temp files and index files whose log file is gone. */
static int remove_leftovers(struct log *log, struct listing *l)
{
    char path[IO_PATH_BYTES_MAX];
    for (uint32_t i = 0; i < l->doomed_count; i++) {
        log_path(log, path, l->doomed[i]);
        int rc = io_remove(log->env.io, path);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    for (uint32_t i = 0; i < l->index_count; i++) {
        if (l->base_count == 0 ||
            !bsearch(&l->index_bases[i], l->bases, l->base_count, sizeof(int64_t), cmp_i64)) {
            seg_remove_files(log->env.io, log->dir, l->index_bases[i]);
            seg_remove_txn_index(log->env.io, log->dir, l->index_bases[i]);
        }
    }
    return 0;
}

/* Clean path: loads the index files and walks the few batches after the last index entry. */
/* Whether the batch header h carries the epoch the cache says its offset has. */
static bool epoch_agrees(const struct epochs *e, const struct batch_header *h)
{
    int32_t epoch;
    return epochs_epoch_of(e, h->base_offset, &epoch) == 0 && epoch == h->leader_epoch;
}

/* The first batch's header of s must agree with the epoch cache. */
static int check_first_epoch(struct segment *s, const struct epochs *e)
{
    if (s->bytes == 0)
        return 0;
    struct seg_cursor c;
    seg_cursor_init(&c, log_file_io(s->file), 0, s->bytes);
    struct batch_header h;
    uint64_t at;
    int rc = seg_cursor_next(&c, &h, &at);
    seg_cursor_deinit(&c);
    if (rc < 0)
        return rc;
    return rc == 1 && epoch_agrees(e, &h) ? 0 : ERR_CORRUPT;
}

/* Trusted path: loads the index files and walks the few batches after the last index entry,
 * whose epochs (and the first batch's) must agree with the epoch cache e. */
static int load_segment(struct log *log, struct segment *s, const struct epochs *e)
{
    int rc = seg_load_indexes(log->env.io, log->dir, s);
    if (rc < 0)
        return rc;
    uint64_t pos = s->index_len ? s->index[s->index_len - 1].pos : 0;
    int64_t first = s->base_offset + (s->index_len ? s->index[s->index_len - 1].rel : 0);
    /* Replay the tail through the same accounting as appends, starting at the last entry. */
    s->bytes = pos;
    s->end_offset = first;
    s->bytes_since_index = 0;
    struct seg_cursor c;
    seg_cursor_init(&c, log_file_io(s->file), pos, s->file_bytes);
    struct batch_header h;
    uint64_t at;
    while ((rc = seg_cursor_next(&c, &h, &at)) == 1) {
        if (h.base_offset != s->end_offset || !epoch_agrees(e, &h)) {
            rc = ERR_CORRUPT;
            break;
        }
        seg_note_batch(s, &h, batch_total_bytes(&h), log->cfg.index_interval_bytes);
    }
    seg_cursor_deinit(&c);
    if (rc == 0 && s->bytes != s->file_bytes)
        rc = ERR_CORRUPT;
    if (rc == 0 && s->max_timestamp_offset >= s->end_offset)
        rc = ERR_CORRUPT; /* a time entry naming an offset the segment does not hold */
    if (rc == 0)
        rc = check_first_epoch(s, e);
    if (rc == 0)
        s->index_on_disk = true;
    return rc;
}

/* Unclean path: validates every batch; returns 0 with s covering the valid prefix, or an I/O
 * error. Epochs are rebuilt into *epochs when it is not NULL. */
static int scan_segment(struct log *log, struct segment *s, struct epochs *epochs)
{
    seg_reset(s);
    struct seg_cursor c;
    seg_cursor_init(&c, log_file_io(s->file), 0, s->file_bytes);
    struct batch_header h;
    uint64_t pos;
    int rc;
    while ((rc = seg_cursor_next(&c, &h, &pos)) == 1) {
        uint64_t total = batch_total_bytes(&h);
        const uint8_t *p = seg_cursor_bytes(&c, pos, total, &log->scratch, &rc);
        if (p == NULL)
            break;
        struct batch_header full;
        if (batch_parse(p, (size_t)total, &full) != 0 || h.base_offset != s->end_offset)
            break;
        if (epochs && epochs_assign(epochs, h.leader_epoch, h.base_offset) != 0)
            break;
        seg_note_batch(s, &h, total, log->cfg.index_interval_bytes);
    }
    seg_cursor_deinit(&c);
    /* Validation failures just end the valid prefix; only I/O errors fail the open. */
    return rc < 0 && rc > -4096 ? rc : 0;
}

/* 1 when a complete batch that passes batch_parse starts at pos of f (ending at or before
 * limit) with a base offset of at least min_base, 0 when not, -errno on I/O failure. */
static int valid_batch_at(struct log *log, struct io_file *f, uint64_t pos, uint64_t limit,
                          int64_t min_base)
{
    uint8_t head[LOG_BATCH_HEADER_BYTES];
    struct batch_header h;
    if (pos > limit || limit - pos < sizeof(head))
        return 0;
    ssize_t n = io_pread(f, head, sizeof(head), pos);
    if (n < 0)
        return (int)n;
    if ((size_t)n != sizeof(head) || batch_header_parse(head, sizeof(head), &h) != 0)
        return 0;
    uint64_t total = batch_total_bytes(&h);
    if (total > limit - pos || h.base_offset < min_base)
        return 0;
    buf_reset(&log->scratch);
    uint8_t *p = buf_extend(&log->scratch, (size_t)total);
    n = io_pread(f, p, (size_t)total, pos);
    if (n < 0)
        return (int)n;
    return (uint64_t)n == total && batch_parse(p, (size_t)total, &h) == 0;
}

/* Looks for a valid batch (as valid_batch_at) starting anywhere in [from, limit) of f: 1 when
 * one is found (*found: where). Only a damaged or torn segment is searched, once, at open. */
static int find_valid_batch(struct log *log, struct io_file *f, uint64_t from, uint64_t limit,
                            int64_t min_base, uint64_t *found)
{
    enum { MAGIC_AT = 16 }; /* baseOffset, batchLength, partitionLeaderEpoch, then magic 2 */
    uint8_t *chunk = xmalloc(LOG_SCAN_CHUNK_BYTES);
    int rc = 0;
    uint64_t at = from;
    while (rc == 0 && at < limit && limit - at >= LOG_BATCH_HEADER_BYTES) {
        ssize_t n = io_pread(f, chunk, (size_t)MIN(limit - at, LOG_SCAN_CHUNK_BYTES), at);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n <= MAGIC_AT)
            break;
        for (size_t k = 0; rc == 0 && k + MAGIC_AT < (size_t)n; k++) {
            if (chunk[k + MAGIC_AT] == 2)
                rc = valid_batch_at(log, f, at + k, limit, min_base);
            if (rc == 1)
                *found = at + k;
        }
        at += (uint64_t)n - MAGIC_AT; /* the last positions' magic byte lies in the next chunk */
    }
    free(chunk);
    return rc;
}

/* 1 when the first batch of segment s is valid, 0 when not (or the file is empty). */
static int starts_valid(struct log *log, struct segment *s)
{
    int rc = files_pin(s->file, false);
    if (rc < 0)
        return rc;
    uint64_t size = 0;
    rc = io_size(log_file_io(s->file), &size);
    if (rc == 0)
        rc = valid_batch_at(log, log_file_io(s->file), 0, MIN(size, UINT32_MAX), s->base_offset);
    files_unpin(s->file);
    return rc;
}

static int open_segment_file(struct segment *s)
{
    int rc = files_pin(s->file, false);
    if (rc < 0)
        return rc;
    rc = io_size(log_file_io(s->file), &s->file_bytes);
    if (rc == 0 && s->file_bytes > UINT32_MAX)
        s->file_bytes = UINT32_MAX; /* positions are 32-bit: nothing valid lies beyond */
    return rc;
}

/* How far recovery may trust what it finds: everything after a clean stop, else the segments
 * below the recovery point (synced with their index files before it was written). */
struct trust {
    bool clean;
    bool synced_all;             /* the clean-shutdown marker was there: every byte was synced */
    const struct epochs *epochs; /* what trusted segments' epochs must agree with */
    int64_t recovery_point;      /* -1: trust nothing */
    int64_t point_on_disk;       /* the checkpoint's value, trusted or not; -1 if none */
};

/* What a power loss loses: whole sectors. A page cache writes back whole pages, and a device
 * persists at least its sectors whole, so an unsynced write that did not reach the disk leaves
 * sectors that read as zeros (new or preallocated space), however much of it did reach it. */
#define LOST_SECTOR_BYTES 512u

/* 1 when the n <= LOST_SECTOR_BYTES bytes at `at` of f are zeros, 0 when not. */
static int zero_at(struct io_file *f, uint64_t at, uint64_t n)
{
    uint8_t bytes[LOST_SECTOR_BYTES];
    ASSERT(n <= sizeof(bytes));
    ssize_t got = io_pread(f, bytes, (size_t)n, at);
    if (got < 0)
        return (int)got;
    if (got != (ssize_t)n)
        return 0;
    for (uint64_t k = 0; k < n; k++)
        if (bytes[k] != 0)
            return 0;
    return 1;
}

/* 1 when [from, to) of f holds a write a power loss lost, reading as zeros: a batch header at
 * `from` whose bytes up to and including its magic byte are zeros (no batch has magic 0: it
 * was never written, however small the batch and wherever the sectors fall; a region of zeros
 * alone is one too), or an aligned LOST_SECTOR_BYTES sector wholly inside; 0 when not. */
static int holds_lost_sector(struct io_file *f, uint64_t from, uint64_t to)
{
    int rc = zero_at(f, from, MIN(to - from, (uint64_t)BATCH_OFF_MAGIC + 1));
    uint64_t at = (from + LOST_SECTOR_BYTES - 1) / LOST_SECTOR_BYTES * LOST_SECTOR_BYTES;
    for (; rc == 0 && at + LOST_SECTOR_BYTES <= to; at += LOST_SECTOR_BYTES)
        rc = zero_at(f, at, LOST_SECTOR_BYTES);
    return rc;
}

static int refuse(struct log *log, const struct segment *s, const char *why)
{
    char path[IO_PATH_BYTES_MAX];
    seg_path(path, log->dir, s->base_offset, ".log");
    fprintf(stderr,
            "chronik: partition log %s is damaged: the batch at byte %llu of %s (offset %lld) is "
            "invalid and %s; the partition stays offline, nothing was changed on disk\n",
            log->dir, (unsigned long long)s->bytes, path, (long long)s->end_offset, why);
    return ERR_DAMAGED;
}

/*
 * Segment i's valid batches end at s->bytes, before the end of its file. 0 when that can be a
 * torn tail (*continues: the next segment carries on exactly where the valid batches end, so
 * only the rolled segment's untrimmed preallocation follows them); ERR_DAMAGED when it cannot.
 */
static int check_bad_point(struct log *log, uint32_t i, const struct trust *t, bool *continues)
{
    struct segment *s = log->segs[i];
    bool last = i + 1 == log->seg_count;
    *continues = false;
    if (t->synced_all)
        return refuse(log, s, "the log was closed cleanly, so it was synced");
    if (!last && log->segs[i + 1]->base_offset <= t->point_on_disk)
        return refuse(log, s, "the segment lies below the recovery point, so it was synced");
    uint64_t next = 0;
    int rc = find_valid_batch(log, log_file_io(s->file), s->bytes + 1, s->file_bytes, s->end_offset,
                              &next);
    if (rc < 0)
        return rc;
    /* Zero bytes up to a later valid batch in the active segment are pages that never reached
     * the disk (the space is preallocated zeros): an unsynced region, since a sync completed
     * after the later batch was written would have persisted them too. Nothing from there on
     * was acknowledged (a failed sync fails the log), so it is a torn tail. So is a region
     * where only some of an unsynced write's sectors reached the disk, the rest reading as
     * zeros (a power loss that persisted writes out of order: cluster_sim --reorder seed
     * 250792). Anything else there (garbage with no lost sector) is damage. */
    if (rc == 1 && last) {
        rc = holds_lost_sector(log_file_io(s->file), s->bytes, next);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return 0;
        return refuse(log, s, "valid batches follow it in the segment");
    }
    if (rc == 1)
        return refuse(log, s, "valid batches follow it in the segment");
    if (last)
        return 0;
    if (log->segs[i + 1]->base_offset == s->end_offset) {
        *continues = true;
        return 0;
    }
    rc = starts_valid(log, log->segs[i + 1]);
    if (rc < 0)
        return rc;
    return rc == 1 ? refuse(log, s, "valid batches follow it in the next segment") : 0;
}

/* Writes [0, to) of f again with the bytes it reads there. A page whose write-back failed before
 * this process (a failed fsync, a process that died before syncing and a write-back error
 * after it) reads back from the page cache but is clean there and on no disk: a sync alone
 * would not write it, and batches synced later behind it would follow a hole after a power
 * loss. Written again, its pages are dirty, and the sync after this makes them durable or
 * fails. */
static int rewrite_range(struct io_file *f, uint64_t to)
{
    uint8_t *chunk = xmalloc(LOG_SCAN_CHUNK_BYTES);
    int rc = 0;
    for (uint64_t at = 0; rc == 0 && at < to;) {
        size_t want = (size_t)MIN(to - at, LOG_SCAN_CHUNK_BYTES);
        ssize_t n = io_pread(f, chunk, want, at);
        if (n <= 0) {
            rc = n < 0 ? (int)n : ERR_CORRUPT;
            break;
        }
        ssize_t w = io_pwrite(f, chunk, (size_t)n, at);
        if (w != n)
            rc = w < 0 ? (int)w : -EIO;
        at += (uint64_t)n;
    }
    free(chunk);
    return rc;
}

/* Recovers segment i; sets *stop when the log ends inside it. ERR_STATE when a segment below
 * the recovery point does not match its index files: the caller starts over scanning all. */
static int recover_segment(struct log *log, uint32_t i, const struct trust *t,
                           struct epochs *rebuilt, bool *stop)
{
    struct segment *s = log->segs[i];
    bool vouched = i + 1 < log->seg_count && log->segs[i + 1]->base_offset <= t->recovery_point;
    int rc = open_segment_file(s);
    if (rc < 0)
        return rc;
    bool loaded = (t->clean || vouched) && load_segment(log, s, t->epochs) == 0;
    if (!loaded && !t->clean && vouched) {
        files_unpin(s->file);
        return ERR_STATE;
    }
    if (!loaded) {
        rc = scan_segment(log, s, rebuilt);
        seg_finish_times(s); /* as a roll leaves it, so written index files can match */
    }
    bool truncated = false;
    bool continues = false;
    if (rc == 0 && s->bytes < s->file_bytes)
        rc = check_bad_point(log, i, t, &continues);
    if (rc == 0 && s->bytes < s->file_bytes) {
        rc = io_truncate(log_file_io(s->file), s->bytes);
        s->file_bytes = s->bytes;
        truncated = true;
        *stop = !continues;
    }
    if (rc == 0 && !loaded && !truncated && seg_indexes_match(log->env.io, log->dir, s)) {
        /* Index files written at a roll still fit: keep them, a clean close only syncs them
         * (cheap when their pages are clean) instead of rewriting them. */
        s->index_on_disk = true;
        s->index_unsynced = true;
    }
    /* What a crash left in the page cache is not durable until written and synced here. */
    if (rc == 0 && !loaded)
        rc = rewrite_range(log_file_io(s->file), s->bytes);
    if (rc == 0 && (!loaded || truncated))
        rc = io_sync(log_file_io(s->file));
    files_unpin(s->file);
    return rc;
}

/* Deletes segment i and every later one (files and memory). */
static int drop_segments_from(struct log *log, uint32_t i)
{
    while (log->seg_count > i) {
        struct segment *s = log->segs[--log->seg_count];
        char path[IO_PATH_BYTES_MAX];
        seg_path(path, log->dir, s->base_offset, ".log");
        int rc = io_remove(log->env.io, path);
        if (rc < 0 && rc != -ENOENT)
            return rc;
        seg_remove_files(log->env.io, log->dir, s->base_offset);
        seg_remove_txn_index(log->env.io, log->dir, s->base_offset);
        seg_free(s);
        log->dir_dirty = true;
    }
    return 0;
}

static int recover_segments(struct log *log, const struct trust *t, struct epochs *rebuilt)
{
    bool stop = false;
    uint32_t i = 0;
    for (; i < log->seg_count && !stop; i++) {
        if (i > 0 && log->segs[i]->base_offset != log->segs[i - 1]->end_offset)
            break; /* a gap: this and every later segment are leftovers */
        int rc = recover_segment(log, i, t, rebuilt, &stop);
        if (rc < 0)
            return rc;
    }
    return drop_segments_from(log, i);
}

static int read_checkpoint(struct log *log, const char *name, struct buf *b)
{
    char path[IO_PATH_BYTES_MAX];
    log_path(log, path, name);
    int rc = seg_read_small_file(log->env.io, path, LOG_CHECKPOINT_BYTES_MAX, b);
    return rc == -ENOENT ? ERR_NOT_FOUND : rc;
}

/* Whether a checkpoint read failed on I/O (fatal) rather than finding nothing usable. */
static bool io_failure(int rc)
{
    return rc < 0 && rc != ERR_NOT_FOUND && rc != ERR_CORRUPT;
}

/* An offset checkpoint ("0\n<offset>\n") in *out, -1 when absent or unparsable. */
static int load_offset(struct log *log, const char *name, int64_t *out)
{
    struct buf b;
    buf_init(&b);
    *out = -1;
    int rc = read_checkpoint(log, name, &b);
    if (rc == 0 && b.len > 3 && b.len < 32 && memcmp(b.data, "0\n", 2) == 0 &&
        b.data[b.len - 1] == '\n') {
        int64_t x = 0;
        size_t i = 2;
        for (; i < b.len - 1 && b.data[i] >= '0' && b.data[i] <= '9' && x < INT64_MAX / 10 - 9; i++)
            x = x * 10 + (b.data[i] - '0');
        if (i == b.len - 1 && i > 2)
            *out = x;
    }
    buf_deinit(&b);
    return io_failure(rc) ? rc : 0;
}

/* 1 when the epoch checkpoint was read into stored, 0 when it is absent or unusable. */
static int read_epochs(struct log *log, struct epochs *stored)
{
    struct buf b;
    buf_init(&b);
    int rc = read_checkpoint(log, LOG_EPOCH_CHECKPOINT, &b);
    if (rc == 0)
        rc = epochs_parse(stored, (const char *)b.data, b.len) == 0 ? 1 : 0;
    buf_deinit(&b);
    return io_failure(rc) ? rc : rc == 1;
}

/* Installs the stored epochs after a clean stop, else the ones rebuilt from the batches. */
static void load_epochs(struct log *log, bool clean, struct epochs *stored, struct epochs *rebuilt)
{
    struct epochs *src = clean ? stored : rebuilt;
    epochs_truncate_from_end(src, log_end(log)); /* never past the recovered end */
    epochs_truncate_from_start(src, log->start_offset);
    log->epochs = *src;
    epochs_init(src);
    log->epochs_dirty = true;
}

static int create_first_segment(struct log *log, int64_t base)
{
    struct segment *s = seg_new(log->env.files, log->dir, base);
    int rc = files_pin(s->file, true);
    if (rc < 0) {
        seg_free(s);
        return rc;
    }
    files_unpin(s->file);
    log_push_segment(log, s);
    log->dir_dirty = true;
    return 0;
}

static int sync_parent(struct io *io, const char *dir)
{
    char parent[IO_PATH_BYTES_MAX];
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    while (n > 0 && dir[n - 1] != '/')
        n--;
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 0) {
        parent[0] = '.';
        n = 1;
    } else {
        memcpy(parent, dir, n);
    }
    parent[n] = '\0';
    return io_sync_dir(io, parent);
}

/*
 * Decides what recovery may trust. After a clean stop: everything, given a usable epoch
 * checkpoint (else it is recovered as a crash). After a crash: the segments below the
 * recovery point, given a usable epoch checkpoint, whose entries below the recovery point
 * seed the epochs rebuilt from the scanned batches.
 */
static int plan_trust(struct log *log, struct trust *t, struct epochs *stored,
                      struct epochs *rebuilt)
{
    int64_t point = -1;
    int rc = load_offset(log, LOG_RECOVERY_CHECKPOINT, &point);
    if (rc < 0)
        return rc;
    rc = read_epochs(log, stored);
    if (rc < 0)
        return rc;
    bool epochs_ok = rc == 1;
    t->point_on_disk = point;
    t->clean = t->clean && epochs_ok;
    t->epochs = t->clean ? stored : rebuilt;
    t->recovery_point = epochs_ok ? point : -1;
    for (uint32_t i = 0; !t->clean && i < stored->len; i++) {
        if (stored->v[i].start_offset >= t->recovery_point)
            break;
        rc = epochs_assign(rebuilt, stored->v[i].epoch, stored->v[i].start_offset);
        ASSERT(rc == 0); /* parsed entries are strictly increasing */
    }
    return 0;
}

static int check_config(const char *dir, const struct log_config *cfg)
{
    if (strlen(dir) + SEG_NAME_DIGITS + 40 >= IO_PATH_BYTES_MAX)
        return ERR_TOO_LARGE;
    if (cfg->segment_bytes < LOG_SEGMENT_BYTES_MIN || cfg->segment_bytes > LOG_SEGMENT_BYTES_MAX)
        return ERR_INVALID;
    if (cfg->index_interval_bytes == 0 || cfg->prealloc_bytes > LOG_SEGMENT_BYTES_MAX)
        return ERR_INVALID;
    return 0;
}

/* Lists the directory, removes the marker durably and creates the segments found. */
static int discover(struct log *log, bool *clean)
{
    struct listing l;
    memset(&l, 0, sizeof(l));
    int rc = io_list_dir(log->env.io, log->dir, on_entry, &l);
    if (rc < 0)
        goto done;
    if (l.base_count > 0)
        qsort(l.bases, l.base_count, sizeof(int64_t), cmp_i64);
    rc = remove_leftovers(log, &l);
    *clean = l.clean;
    if (rc == 0 && l.clean) {
        /* Gone for good before the first write, or a crash could look like a clean stop. */
        char path[IO_PATH_BYTES_MAX];
        log_path(log, path, LOG_CLEAN_MARKER);
        rc = io_remove(log->env.io, path);
        if (rc == 0)
            rc = io_sync_dir(log->env.io, log->dir);
    }
    for (uint32_t i = 0; rc == 0 && i < l.base_count; i++)
        log_push_segment(log, seg_new(log->env.files, log->dir, l.bases[i]));
done:
    listing_free(&l);
    return rc;
}

int log_open(const struct log_env *env, const char *dir, const struct log_config *cfg,
             struct log **out)
{
    ASSERT(env != NULL && env->io != NULL && env->clock != NULL);
    ASSERT(env->files != NULL && env->flusher != NULL && out != NULL);
    int rc = check_config(dir, cfg);
    if (rc < 0)
        return rc;
    struct log *log = xcalloc(1, sizeof(*log));
    log->env = *env;
    log->cfg = *cfg;
    log->dir = xstrdup(dir);
    epochs_init(&log->epochs);
    buf_init(&log->scratch);
    struct epochs rebuilt, stored;
    epochs_init(&rebuilt);
    epochs_init(&stored);
    bool clean = false;

    rc = io_mkdir(env->io, dir);
    /* Always: an earlier open may have created the directory and failed before syncing. */
    if (rc == 0 || rc == -EEXIST)
        rc = sync_parent(env->io, dir);
    if (rc == 0)
        rc = discover(log, &clean);
    struct trust t = {
        .clean = clean, .synced_all = clean, .recovery_point = -1, .point_on_disk = -1};
    t.epochs = &stored;
    if (rc == 0)
        rc = plan_trust(log, &t, &stored, &rebuilt);
    if (rc == 0)
        rc = recover_segments(log, &t, &rebuilt);
    if (rc == ERR_STATE) {
        /* A vouched segment did not match its index files: trust nothing, scan everything. */
        epochs_deinit(&rebuilt);
        t.recovery_point = -1;
        rc = recover_segments(log, &t, &rebuilt);
    }
    int64_t start = -1;
    if (rc == 0)
        rc = load_offset(log, LOG_START_CHECKPOINT, &start);
    /* A start beyond every segment: the log was replaced by an empty one starting there (a
     * snapshot's log_reset, whose commit point is that checkpoint) and a crash came before the
     * old segments were gone. Kafka's rule: the log restarts empty at the start. */
    if (rc == 0 && log->seg_count > 0 && start > log_end(log)) {
        rc = drop_segments_from(log, 0);
        rebuilt.len = 0;
        stored.len = 0;
    }
    if (rc == 0 && log->seg_count == 0)
        rc = create_first_segment(log, MAX(start, 0));
    if (rc == 0)
        rc = files_pin(log_active(log)->file, false);
    if (rc < 0)
        goto fail;
    log->active_pin = log_active(log)->file;
    log->start_offset = MIN(MAX(start, log->segs[0]->base_offset), log_end(log));
    /* No checkpoint means the first segment's base: a new log has nothing to write. */
    log->start_dirty = log->start_offset != start &&
                       !(start < 0 && log->start_offset == log->segs[0]->base_offset);
    load_epochs(log, t.clean, &stored, &rebuilt);
    rc = txn_load(log);
    if (rc < 0)
        goto fail;
    if (log->dir_dirty || !t.clean)
        rc = io_sync_dir(env->io, dir);
    if (rc < 0)
        goto fail;
    log->dir_dirty = false;
    log->durable_offset = log_end(log);
    log->high_watermark = log->start_offset;
    /* Never below the file's value, so a truncation under it always lowers the file first. */
    log->recovery_point = MAX(t.point_on_disk, 0);
    if (log_active(log)->bytes > 0) /* its first append is unknown: age counts from now */
        log_active(log)->first_append_ms = (int64_t)clock_mono_ms(env->clock);
    epochs_deinit(&rebuilt);
    epochs_deinit(&stored);
    *out = log;
    return 0;
fail:
    epochs_deinit(&rebuilt);
    epochs_deinit(&stored);
    log_free(log);
    return rc;
}
