/*
 * The aborted-transaction index: one .txnindex file per segment (layout and rules: log.h).
 *
 * Owns the files' format and struct segment's txn_* fields. Invariants: a segment's file, when
 * txn_file is set, holds exactly txn_count entries, each with a marker inside the segment
 * ([base, end)), strictly increasing marker offsets, txn_last the last one's (-1 when none).
 * Only the owner thread reads or writes these files, each through a handle opened for the call,
 * so no open file outlives a call and a queued removal can never meet one of ours.
 * A file is trusted only as far as its entries are valid: opening reads every file and cuts it at
 * the first entry that is torn, out of order or past its segment's end (what a crash can leave of
 * unsynced appends and truncations), which the owner's re-read then adds back.
 */
#include "log/log_internal.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/bytes.h"
#include "base/error.h"
#include "base/limits.h"

#include <errno.h>
#include <stdlib.h>

#define TXN_ENTRY_BYTES   34u
#define TXN_VERSION       0
#define TXN_CHUNK_ENTRIES 128u /* entries read at once */

static void txn_path(const struct log *log, const struct segment *s, char *out)
{
    seg_path(out, log->dir, s->base_offset, ".txnindex");
}

static void encode(const struct producer_aborted *e, uint8_t *p)
{
    be16_store(p, TXN_VERSION);
    be64_store(p + 2, (uint64_t)e->producer_id);
    be64_store(p + 10, (uint64_t)e->first_offset);
    be64_store(p + 18, (uint64_t)e->last_offset);
    be64_store(p + 26, (uint64_t)e->last_stable_offset);
}

/* Decodes one entry: false for one no writer of this format produced. */
static bool decode(const uint8_t *p, struct producer_aborted *e)
{
    e->producer_id = (int64_t)be64_load(p + 2);
    e->first_offset = (int64_t)be64_load(p + 10);
    e->last_offset = (int64_t)be64_load(p + 18);
    e->last_stable_offset = (int64_t)be64_load(p + 26);
    return be16_load(p) == TXN_VERSION && e->producer_id >= 0 && e->first_offset >= 0 &&
           e->first_offset <= e->last_offset && e->last_stable_offset >= 0;
}

/* Reads entries [first, first + n) of f (n <= TXN_CHUNK_ENTRIES) into buf. */
static int read_entries(struct io_file *f, uint32_t first, uint32_t n, uint8_t *buf)
{
    size_t bytes = (size_t)n * TXN_ENTRY_BYTES;
    ssize_t got = io_pread(f, buf, bytes, (uint64_t)first * TXN_ENTRY_BYTES);
    if (got < 0)
        return (int)got;
    return (size_t)got == bytes ? 0 : ERR_CORRUPT; /* shorter than the count says */
}

/* The valid entries of s's file (size bytes): *count and *last. */
static int validate(struct io_file *f, const struct segment *s, uint64_t size, uint32_t *count,
                    int64_t *last)
{
    uint8_t buf[TXN_CHUNK_ENTRIES * TXN_ENTRY_BYTES];
    uint64_t whole = size / TXN_ENTRY_BYTES;
    uint32_t n = 0;
    int64_t prev = -1;
    while (n < whole) {
        uint32_t k = whole - n < TXN_CHUNK_ENTRIES ? (uint32_t)(whole - n) : TXN_CHUNK_ENTRIES;
        int rc = read_entries(f, n, k, buf);
        if (rc < 0)
            return rc;
        for (uint32_t i = 0; i < k; i++) {
            struct producer_aborted e;
            if (!decode(buf + (size_t)i * TXN_ENTRY_BYTES, &e) || e.last_offset <= prev ||
                e.last_offset < s->base_offset || e.last_offset >= s->end_offset)
                goto done;
            prev = e.last_offset;
            n++;
        }
    }
done:
    *count = n;
    *last = prev;
    return 0;
}

int txn_load(struct log *log)
{
    char path[IO_PATH_BYTES_MAX];
    for (uint32_t i = 0; i < log->seg_count; i++) {
        struct segment *s = log->segs[i];
        txn_path(log, s, path);
        struct io_file *f = NULL;
        int rc = io_open(log->env.io, path, IO_RDWR, &f);
        if (rc == -ENOENT)
            continue;
        uint64_t size = 0;
        if (rc == 0)
            rc = io_size(f, &size);
        if (rc == 0)
            rc = validate(f, s, size, &s->txn_count, &s->txn_last);
        /* A torn or stale tail: gone before anything is appended behind it. */
        if (rc == 0 && size > (uint64_t)s->txn_count * TXN_ENTRY_BYTES) {
            rc = io_truncate(f, (uint64_t)s->txn_count * TXN_ENTRY_BYTES);
            s->txn_unsynced = true;
        }
        if (f != NULL)
            io_close(f);
        if (rc < 0)
            return rc;
        s->txn_file = true;
    }
    return 0;
}

int log_txn_add(struct log *log, const struct producer_aborted *e)
{
    if (log->err)
        return log->err;
    if (e->last_offset < log->start_offset || e->last_offset >= log_end(log))
        return ERR_RANGE;
    ASSERT(e->first_offset <= e->last_offset);
    struct segment *s = log->segs[log_find_segment(log, e->last_offset)];
    if (e->last_offset <= s->txn_last)
        return 0;
    char path[IO_PATH_BYTES_MAX];
    txn_path(log, s, path);
    struct io_file *f = NULL;
    int rc = io_open(log->env.io, path, IO_RDWR | IO_CREATE, &f);
    /* A new file may meet a leftover of a segment of the same name that recovery or a
     * truncation deleted after the listing: nothing of it is an entry of this segment. */
    if (rc == 0 && !s->txn_file)
        rc = io_truncate(f, 0);
    uint8_t rec[TXN_ENTRY_BYTES];
    encode(e, rec);
    if (rc == 0) {
        ssize_t put = io_pwrite(f, rec, sizeof(rec), (uint64_t)s->txn_count * TXN_ENTRY_BYTES);
        rc = put < 0 ? (int)put : (put == (ssize_t)sizeof(rec) ? 0 : -EIO);
    }
    if (f != NULL)
        io_close(f);
    if (rc < 0)
        return log_fail(log, rc);
    if (!s->txn_file)
        log->txn_dir_dirty = true;
    s->txn_file = true;
    s->txn_count++;
    s->txn_last = e->last_offset;
    s->txn_unsynced = true;
    return 0;
}

/* The number of s's entries whose marker is below offset (entries are by marker offset). */
static int count_below(struct io_file *f, const struct segment *s, int64_t offset, uint32_t *out)
{
    uint32_t lo = 0, hi = s->txn_count;
    uint8_t rec[TXN_ENTRY_BYTES];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int rc = read_entries(f, mid, 1, rec);
        if (rc < 0)
            return rc;
        if ((int64_t)be64_load(rec + 18) < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    *out = lo;
    return 0;
}

int txn_cut(struct log *log, struct segment *s, int64_t offset)
{
    if (s->txn_last < offset)
        return 0;
    char path[IO_PATH_BYTES_MAX];
    txn_path(log, s, path);
    struct io_file *f = NULL;
    uint32_t keep = 0;
    uint8_t rec[TXN_ENTRY_BYTES];
    int rc = io_open(log->env.io, path, IO_RDWR, &f);
    if (rc == 0)
        rc = count_below(f, s, offset, &keep);
    if (rc == 0 && keep > 0)
        rc = read_entries(f, keep - 1, 1, rec);
    if (rc == 0)
        rc = io_truncate(f, (uint64_t)keep * TXN_ENTRY_BYTES);
    if (f != NULL)
        io_close(f);
    if (rc < 0)
        return log_fail(log, rc);
    s->txn_count = keep;
    s->txn_last = keep > 0 ? (int64_t)be64_load(rec + 18) : -1;
    s->txn_unsynced = true;
    return 1;
}

int log_txn_truncate(struct log *log, int64_t offset)
{
    if (log->err)
        return log->err;
    uint32_t i = offset > log->segs[0]->base_offset ? log_find_segment(log, offset) : 0;
    for (; i < log->seg_count; i++) {
        int rc = txn_cut(log, log->segs[i], offset);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int log_txn_sync(struct log *log)
{
    if (log->err)
        return log->err;
    char path[IO_PATH_BYTES_MAX];
    for (uint32_t i = 0; i < log->seg_count; i++) {
        struct segment *s = log->segs[i];
        if (!s->txn_unsynced)
            continue;
        txn_path(log, s, path);
        struct io_file *f = NULL;
        int rc = io_open(log->env.io, path, IO_RDWR, &f);
        if (rc == 0)
            rc = io_sync(f);
        if (f != NULL)
            io_close(f);
        if (rc < 0)
            return log_fail(log, rc);
        s->txn_unsynced = false;
    }
    if (log->txn_dir_dirty) {
        int rc = io_sync_dir(log->env.io, log->dir);
        if (rc < 0)
            return log_fail(log, rc);
        log->txn_dir_dirty = false;
    }
    return 0;
}

/* Collects from s's entries (see log_txn_collect); *complete when an entry ended the search. */
static int collect_segment(struct log *log, const struct segment *s, int64_t from, int64_t upper,
                           struct producer_aborted *out, uint32_t max, uint32_t *n, bool *complete)
{
    char path[IO_PATH_BYTES_MAX];
    txn_path(log, s, path);
    struct io_file *f = NULL;
    int rc = io_open(log->env.io, path, IO_RDONLY, &f);
    uint8_t *buf = rc == 0 ? xmalloc(TXN_CHUNK_ENTRIES * TXN_ENTRY_BYTES) : NULL;
    for (uint32_t at = 0; rc == 0 && at < s->txn_count && !*complete;) {
        uint32_t k = s->txn_count - at < TXN_CHUNK_ENTRIES ? s->txn_count - at : TXN_CHUNK_ENTRIES;
        rc = read_entries(f, at, k, buf);
        for (uint32_t i = 0; rc == 0 && i < k; i++) {
            struct producer_aborted e;
            if (!decode(buf + (size_t)i * TXN_ENTRY_BYTES, &e)) {
                rc = ERR_CORRUPT; /* validated at open and written by us since */
                break;
            }
            if (e.last_offset >= from && e.first_offset < upper)
                out[(*n)++] = e;
            if (*n == max || e.last_stable_offset >= upper) {
                *complete = true;
                break;
            }
        }
        at += k;
    }
    free(buf);
    if (f != NULL)
        io_close(f);
    return rc;
}

int log_txn_collect(struct log *log, int64_t from, int64_t upper, struct producer_aborted *out,
                    uint32_t max, uint32_t *count)
{
    *count = 0;
    if (log->err)
        return log->err;
    if (max == 0 || from >= upper)
        return 0;
    uint32_t n = 0;
    bool complete = false;
    uint32_t i = from > log->segs[0]->base_offset ? log_find_segment(log, from) : 0;
    for (; i < log->seg_count && !complete; i++) {
        if (log->segs[i]->txn_count == 0)
            continue;
        int rc = collect_segment(log, log->segs[i], from, upper, out, max, &n, &complete);
        if (rc < 0)
            return rc;
    }
    *count = n;
    return 0;
}
