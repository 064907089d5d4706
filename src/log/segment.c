/*
 * One segment of a partition log: its in-memory sparse offset index and time index, their
 * files, and a read-ahead header walk over the segment file.
 *
 * Owns struct segment, its index arrays and its struct log_file reference. Invariants: index
 * entries have strictly increasing relative offsets and positions, all below `bytes`; time
 * entries have strictly increasing timestamps; bytes <= file_bytes. Index files are a cache of
 * the log file: they are trusted only after a clean shutdown and only when consistent with the
 * log file, so this code must never let a bad index file make a lookup read outside the
 * segment.
 */
#include "log/log_internal.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_ENTRY_BYTES 8u
#define TIME_ENTRY_BYTES  12u
#define INDEX_ENTRIES_MAX (LOG_INDEX_BYTES_MAX / INDEX_ENTRY_BYTES)

void seg_path(char *out, const char *dir, int64_t base_offset, const char *ext)
{
    ASSERT(base_offset >= 0);
    int n = snprintf(out, IO_PATH_BYTES_MAX, "%s/%020" PRId64 "%s", dir, base_offset, ext);
    ASSERT(n > 0 && (size_t)n < IO_PATH_BYTES_MAX);
}

struct segment *seg_new(struct log_files *files, const char *dir, int64_t base_offset)
{
    ASSERT(files != NULL && dir != NULL);
    char path[IO_PATH_BYTES_MAX];
    seg_path(path, dir, base_offset, ".log");
    struct segment *s = xcalloc(1, sizeof(*s));
    s->base_offset = base_offset;
    s->file = files_new(files, path);
    s->txn_last = -1;
    seg_reset(s);
    return s;
}

void seg_free(struct segment *s)
{
    ASSERT(s->file != NULL);
    files_drop(s->file);
    free(s->index);
    free(s->times);
    free(s);
}

void seg_reset(struct segment *s)
{
    ASSERT(s->base_offset >= 0);
    s->end_offset = s->base_offset;
    s->bytes = 0;
    s->max_timestamp_ms = -1;
    s->max_timestamp_offset = -1;
    s->max_timestamp_pos = 0;
    s->first_append_ms = -1;
    s->bytes_since_index = 0;
    s->index_len = 0;
    s->times_len = 0;
}

bool seg_index_full(const struct segment *s)
{
    return s->index_len >= INDEX_ENTRIES_MAX;
}

static void add_index(struct segment *s, uint32_t rel, uint32_t pos)
{
    ASSERT(s->index_len == 0 || s->index[s->index_len - 1].rel < rel);
    ASSERT(s->index_len < INDEX_ENTRIES_MAX);
    if (s->index_len == s->index_cap) {
        s->index_cap = s->index_cap ? s->index_cap * 2 : 16;
        s->index = xrealloc(s->index, (size_t)s->index_cap * sizeof(*s->index));
    }
    s->index[s->index_len++] = (struct index_entry){.rel = rel, .pos = pos};
}

static void add_time(struct segment *s, int64_t ts, uint32_t rel, uint32_t pos)
{
    ASSERT(s->times_len == 0 || s->times[s->times_len - 1].timestamp_ms < ts);
    if (s->times_len == s->times_cap) {
        s->times_cap = s->times_cap ? s->times_cap * 2 : 16;
        s->times = xrealloc(s->times, (size_t)s->times_cap * sizeof(*s->times));
    }
    s->times[s->times_len++] = (struct time_entry){.timestamp_ms = ts, .rel = rel, .pos = pos};
}

/* Records the segment maximum as a time entry when it is newer than the last entry. */
static void maybe_add_time(struct segment *s)
{
    if (s->max_timestamp_offset < 0)
        return;
    if (s->times_len > 0 && s->times[s->times_len - 1].timestamp_ms >= s->max_timestamp_ms)
        return;
    add_time(s, s->max_timestamp_ms, (uint32_t)(s->max_timestamp_offset - s->base_offset),
             s->max_timestamp_pos);
}

void seg_note_batch(struct segment *s, const struct batch_header *h, uint64_t total,
                    uint32_t index_interval_bytes)
{
    ASSERT(h->base_offset == s->end_offset);
    ASSERT(s->bytes + total <= UINT32_MAX);
    uint32_t pos = (uint32_t)s->bytes;
    if (s->bytes > 0 && s->bytes_since_index >= index_interval_bytes) {
        add_index(s, (uint32_t)(h->base_offset - s->base_offset), pos);
        maybe_add_time(s);
        s->bytes_since_index = 0;
    }
    s->bytes_since_index += total;
    if (h->max_timestamp_ms > s->max_timestamp_ms) {
        s->max_timestamp_ms = h->max_timestamp_ms;
        s->max_timestamp_offset = h->base_offset;
        s->max_timestamp_pos = pos;
    }
    s->bytes += total;
    s->end_offset = batch_last_offset(h) + 1;
}

uint64_t seg_index_floor(const struct segment *s, int64_t offset)
{
    ASSERT(offset >= s->base_offset);
    uint64_t rel = (uint64_t)(offset - s->base_offset);
    uint32_t lo = 0, hi = s->index_len; /* first entry with rel > target */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->index[mid].rel <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : s->index[lo - 1].pos;
}

void seg_finish_times(struct segment *s)
{
    maybe_add_time(s);
}

/* ---- header walk --------------------------------------------------------------------------- */

void seg_cursor_init(struct seg_cursor *c, struct io_file *f, uint64_t pos, uint64_t limit)
{
    ASSERT(f != NULL);
    ASSERT(pos <= limit);
    c->f = f;
    c->pos = pos;
    c->limit = limit;
    c->buf = xmalloc(LOG_SCAN_CHUNK_BYTES);
    c->buf_pos = 0;
    c->buf_len = 0;
    c->large = false;
}

void seg_cursor_deinit(struct seg_cursor *c)
{
    free(c->buf);
    c->buf = NULL;
}

/* Makes [pos, pos + n) available in the buffer (n <= LOG_SCAN_CHUNK_BYTES). Reading a whole
 * chunk ahead pays while batches are small (a scan then reads each chunk once); after a batch
 * of a chunk or more the next header is most likely alone in its chunk, so only n bytes are
 * read: a fetch walking large batches then copies 61 bytes per header, not 64 KiB. */
static int fill(struct seg_cursor *c, uint64_t pos, uint64_t n)
{
    ASSERT(n <= LOG_SCAN_CHUNK_BYTES);
    if (pos >= c->buf_pos && pos + n <= c->buf_pos + c->buf_len)
        return 0;
    uint64_t want = MIN(c->large ? n : (uint64_t)LOG_SCAN_CHUNK_BYTES, c->limit - pos);
    ssize_t got = io_pread(c->f, c->buf, (size_t)want, pos);
    if (got < 0)
        return (int)got;
    c->buf_pos = pos;
    c->buf_len = (uint32_t)got;
    return (uint64_t)got >= n ? 0 : ERR_INCOMPLETE;
}

const uint8_t *seg_cursor_bytes(struct seg_cursor *c, uint64_t pos, uint64_t n, struct buf *scratch,
                                int *err)
{
    ASSERT(pos + n <= c->limit);
    *err = 0;
    if (n <= LOG_SCAN_CHUNK_BYTES) {
        *err = fill(c, pos, n);
        return *err == 0 ? c->buf + (pos - c->buf_pos) : NULL;
    }
    buf_reset(scratch);
    uint8_t *p = buf_extend(scratch, (size_t)n);
    ssize_t got = io_pread(c->f, p, (size_t)n, pos);
    if (got < 0 || (uint64_t)got != n) {
        *err = got < 0 ? (int)got : ERR_INCOMPLETE;
        return NULL;
    }
    return p;
}

int seg_cursor_next(struct seg_cursor *c, struct batch_header *h, uint64_t *pos)
{
    ASSERT(c->pos <= c->limit);
    ASSERT(h != NULL && pos != NULL);
    if (c->pos == c->limit)
        return 0;
    if (c->limit - c->pos < LOG_BATCH_HEADER_BYTES)
        return ERR_INCOMPLETE;
    int rc = fill(c, c->pos, LOG_BATCH_HEADER_BYTES);
    if (rc < 0)
        return rc;
    rc = batch_header_parse(c->buf + (c->pos - c->buf_pos), LOG_BATCH_HEADER_BYTES, h);
    if (rc < 0)
        return rc == ERR_INCOMPLETE ? ERR_CORRUPT : rc;
    uint64_t total = batch_total_bytes(h);
    if (total > c->limit - c->pos)
        return ERR_INCOMPLETE;
    c->large = total >= LOG_SCAN_CHUNK_BYTES;
    *pos = c->pos;
    c->pos += total;
    return 1;
}

/* ---- index files ----------------------------------------------------------------------------- */

int seg_write_file(struct io *io, const char *path, const struct buf *b, bool sync)
{
    struct io_file *f = NULL;
    int rc = io_open(io, path, IO_RDWR | IO_CREATE, &f);
    if (rc < 0)
        return rc;
    rc = io_truncate(f, 0);
    if (rc == 0 && b->len > 0) {
        ssize_t n = io_pwrite(f, b->data, b->len, 0);
        rc = n < 0 ? (int)n : 0;
    }
    if (rc == 0 && sync)
        rc = io_sync(f);
    io_close(f);
    return rc;
}

static void encode_offsets(const struct segment *s, struct buf *b)
{
    for (uint32_t i = 0; i < s->index_len; i++) {
        buf_put_be32(b, s->index[i].rel);
        buf_put_be32(b, s->index[i].pos);
    }
}

static void encode_times(const struct segment *s, struct buf *b)
{
    for (uint32_t i = 0; i < s->times_len; i++) {
        buf_put_be64(b, (uint64_t)s->times[i].timestamp_ms);
        buf_put_be32(b, s->times[i].rel);
    }
}

void seg_encode_indexes(const struct segment *s, struct buf *index, struct buf *times)
{
    encode_offsets(s, index);
    encode_times(s, times);
}

int seg_write_indexes(struct io *io, const char *dir, struct segment *s)
{
    char path[IO_PATH_BYTES_MAX];
    struct buf index, times;
    buf_init(&index);
    buf_init(&times);
    seg_encode_indexes(s, &index, &times);
    seg_path(path, dir, s->base_offset, ".index");
    int rc = seg_write_file(io, path, &index, false);
    if (rc == 0) {
        seg_path(path, dir, s->base_offset, ".timeindex");
        rc = seg_write_file(io, path, &times, false);
    }
    if (rc == 0)
        s->index_unsynced = true;
    buf_deinit(&index);
    buf_deinit(&times);
    return rc;
}

/* Opens path, fdatasyncs it and closes it. */
static int sync_path(struct io *io, const char *path)
{
    struct io_file *f = NULL;
    int rc = io_open(io, path, IO_RDWR, &f);
    if (rc < 0)
        return rc;
    rc = io_sync(f);
    io_close(f);
    return rc;
}

int seg_sync_indexes(struct io *io, const char *dir, struct segment *s)
{
    char path[IO_PATH_BYTES_MAX];
    seg_path(path, dir, s->base_offset, ".index");
    int rc = sync_path(io, path);
    if (rc == 0) {
        seg_path(path, dir, s->base_offset, ".timeindex");
        rc = sync_path(io, path);
    }
    if (rc == 0)
        s->index_unsynced = false;
    return rc;
}

/* Reads a whole small file into b; ERR_CORRUPT when larger than bytes_max. */
static int read_file(struct io *io, const char *path, uint64_t bytes_max, struct buf *b)
{
    struct io_file *f = NULL;
    uint64_t size = 0;
    int rc = io_open(io, path, IO_RDONLY, &f);
    if (rc < 0)
        return rc;
    rc = io_size(f, &size);
    if (rc == 0 && size > bytes_max)
        rc = ERR_CORRUPT;
    if (rc == 0 && size > 0) {
        uint8_t *p = buf_extend(b, (size_t)size);
        ssize_t n = io_pread(f, p, (size_t)size, 0);
        if (n < 0 || (uint64_t)n != size)
            rc = n < 0 ? (int)n : ERR_CORRUPT;
    }
    io_close(f);
    return rc;
}

int seg_read_small_file(struct io *io, const char *path, uint64_t bytes_max, struct buf *b)
{
    return read_file(io, path, bytes_max, b);
}

static int load_offsets(struct segment *s, const struct buf *b)
{
    if (b->len % INDEX_ENTRY_BYTES != 0)
        return ERR_CORRUPT;
    for (size_t i = 0; i < b->len; i += INDEX_ENTRY_BYTES) {
        uint32_t rel = be32_load(b->data + i);
        uint32_t pos = be32_load(b->data + i + 4);
        bool ordered = s->index_len == 0 || (s->index[s->index_len - 1].rel < rel &&
                                             s->index[s->index_len - 1].pos < pos);
        if (!ordered || pos >= s->file_bytes || rel == 0)
            return ERR_CORRUPT;
        add_index(s, rel, pos);
    }
    return 0;
}

static int load_times(struct segment *s, const struct buf *b)
{
    if (b->len % TIME_ENTRY_BYTES != 0)
        return ERR_CORRUPT;
    for (size_t i = 0; i < b->len; i += TIME_ENTRY_BYTES) {
        int64_t ts = (int64_t)be64_load(b->data + i);
        uint32_t rel = be32_load(b->data + i + 8);
        if (s->times_len > 0 && s->times[s->times_len - 1].timestamp_ms >= ts)
            return ERR_CORRUPT;
        add_time(s, ts, rel, (uint32_t)seg_index_floor(s, s->base_offset + rel));
    }
    return 0;
}

int seg_load_indexes(struct io *io, const char *dir, struct segment *s)
{
    char path[IO_PATH_BYTES_MAX];
    struct buf b;
    buf_init(&b);
    seg_reset(s);
    seg_path(path, dir, s->base_offset, ".index");
    int rc = read_file(io, path, LOG_INDEX_BYTES_MAX, &b);
    if (rc == 0)
        rc = load_offsets(s, &b);
    if (rc < 0)
        goto done;
    buf_reset(&b);
    seg_path(path, dir, s->base_offset, ".timeindex");
    rc = read_file(io, path, LOG_INDEX_BYTES_MAX / INDEX_ENTRY_BYTES * TIME_ENTRY_BYTES, &b);
    if (rc == 0)
        rc = load_times(s, &b);
    if (rc == 0 && s->times_len > 0) {
        const struct time_entry *t = &s->times[s->times_len - 1];
        s->max_timestamp_ms = t->timestamp_ms;
        s->max_timestamp_offset = s->base_offset + t->rel;
        s->max_timestamp_pos = t->pos;
    }
done:
    buf_deinit(&b);
    if (rc < 0) {
        /* Whatever went wrong, the log file is the truth: the caller rebuilds from it and
         * a real I/O error surfaces there. */
        seg_reset(s);
        return ERR_CORRUPT;
    }
    return 0;
}

/* Whether the file at path holds exactly want. */
static bool file_equals(struct io *io, const char *path, const struct buf *want)
{
    struct buf got;
    buf_init(&got);
    bool eq = read_file(io, path, want->len, &got) == 0 && got.len == want->len &&
              (got.len == 0 || memcmp(got.data, want->data, got.len) == 0);
    buf_deinit(&got);
    return eq;
}

bool seg_indexes_match(struct io *io, const char *dir, const struct segment *s)
{
    char path[IO_PATH_BYTES_MAX];
    struct buf want;
    buf_init(&want);
    encode_offsets(s, &want);
    seg_path(path, dir, s->base_offset, ".index");
    bool eq = file_equals(io, path, &want);
    buf_reset(&want);
    encode_times(s, &want);
    seg_path(path, dir, s->base_offset, ".timeindex");
    eq = eq && file_equals(io, path, &want);
    buf_deinit(&want);
    return eq;
}

void seg_remove_files(struct io *io, const char *dir, int64_t base_offset)
{
    static const char *const exts[] = {".index", ".timeindex"};
    char path[IO_PATH_BYTES_MAX];
    for (size_t i = 0; i < ARRAY_LEN(exts); i++) {
        seg_path(path, dir, base_offset, exts[i]);
        (void)io_remove(io, path); /* a missing index file is normal; a stale one is ignored */
    }
}

void seg_remove_txn_index(struct io *io, const char *dir, int64_t base_offset)
{
    char path[IO_PATH_BYTES_MAX];
    seg_path(path, dir, base_offset, ".txnindex");
    (void)io_remove(io, path); /* a missing file is normal */
}
