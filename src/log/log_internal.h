/*
 * Shared by the files of src/log only (log.c, segment.c, files.c, flusher.c, epochs.c); nothing
 * outside src/log includes it.
 *
 * Owns the layout of the log's private structures. Invariants stated here hold whenever the
 * owner thread is not inside a log function. Nothing here may be touched by the flusher thread
 * except what struct flush_job says.
 */
#ifndef CHRONIK_LOG_LOG_INTERNAL_H
#define CHRONIK_LOG_LOG_INTERNAL_H

#include "base/buf.h"
#include "log/batch.h"
#include "log/log.h"

#include <pthread.h>

/* ---- open-file cache (files.c) ---------------------------------------------------------- */

/*
 * One segment file. Freed when it is no longer live (its segment was deleted) and unpinned.
 * Open while pinned or on the LRU list; pins and the LRU are guarded by the cache's mutex so a
 * reader may release from any thread.
 */
struct log_file {
    struct log_files *cache;
    char *path;
    struct io_file *io; /* NULL while closed */
    uint32_t pins;
    bool live;
    struct log_file *lru_prev;
    struct log_file *lru_next;
    bool in_lru;
};

struct log_file *files_new(struct log_files *cache, const char *path);
/* Opens the file if needed (creating it when create is set) and pins it. */
int files_pin(struct log_file *f, bool create);
void files_unpin(struct log_file *f);
/* The segment is gone: the file is freed now or when its last pin is released. */
void files_drop(struct log_file *f);

/* ---- leader-epoch cache (epochs.c) ------------------------------------------------------ */

struct epoch_entry {
    int32_t epoch;
    int64_t start_offset;
};

/* Sorted by epoch and by start offset, both strictly increasing. */
struct epochs {
    struct epoch_entry *v;
    uint32_t len;
    uint32_t cap;
};

void epochs_init(struct epochs *e);
void epochs_deinit(struct epochs *e);
/* Records that epoch starts at start_offset if it is newer than the latest; 0 when recorded or
 * already the latest, ERR_INVALID for an older epoch, ERR_TOO_LARGE when full. */
int epochs_assign(struct epochs *e, int32_t epoch, int64_t start_offset);
/* Drops entries starting at or after end. Returns whether anything changed. */
bool epochs_truncate_from_end(struct epochs *e, int64_t end);
/* Drops entries wholly below start (the last one below moves up to start). */
bool epochs_truncate_from_start(struct epochs *e, int64_t start);
int epochs_epoch_of(const struct epochs *e, int64_t offset, int32_t *epoch);
/* Whether epoch starts at offset (its entry's start offset). */
bool epochs_starts_at(const struct epochs *e, int32_t epoch, int64_t offset);
void epochs_end_for(const struct epochs *e, int32_t epoch, int64_t log_end, int32_t *epoch_out,
                    int64_t *end_out);
/* The checkpoint text, appended to out. */
void epochs_format(const struct epochs *e, struct buf *out);
/* Parses checkpoint text strictly; ERR_CORRUPT on anything unexpected. */
int epochs_parse(struct epochs *e, const char *text, size_t len);
bool epochs_equal(const struct epochs *a, const struct epochs *b);

/* ---- flusher (flusher.c) ---------------------------------------------------------------- */

/* A checkpoint file to replace atomically (temp file, sync, rename, directory sync). */
struct flush_checkpoint {
    char *path;
    struct buf text;
    bool after_files; /* written only once the job's file syncs succeeded */
};

/*
 * A segment rolled since the last job, sealed by the flusher: its file trimmed to the valid
 * bytes (the preallocation dropped), its index files written from the encoded contents, then
 * all three synced. The job holds the segment file by its pin (an open handle), never by path,
 * and the index files are written only here: the owner never removes a segment's files while a
 * job may still touch them (removals are queued behind it, see struct flush_job).
 */
struct flush_seal {
    struct log_file *file; /* pinned */
    uint64_t bytes;
    uint64_t drop_to; /* page cache below this is dropped once the file is synced; 0: none */
    char *index_path;
    char *time_path;
    struct buf index; /* .index content */
    struct buf times; /* .timeindex content */
};

/* Trims, writes and syncs one sealed segment (the flusher's thread, or the owner at close). */
int seal_perform(struct io *io, const struct flush_seal *seal);
void seal_deinit(struct flush_seal *seal);

/*
 * One sync round for one log, built and pinned by the owner, performed by a flusher thread,
 * completed (pins released, durable offset advanced) by the owner in drain. The flusher
 * thread reads the fields up to `err` and writes only `err`, `performed` and `next` (under
 * the flusher's mutex, and `alloc_unsupported`). Steps, in order: checkpoints marked before
 * the files, seals, file syncs, the active segment's next preallocation, removals of deleted
 * segments' files, the directory sync, checkpoints marked after.
 * A log has at most one such job outstanding, so a job's steps come after every step of the
 * log's earlier jobs: a removal can never overtake the seal that writes the files it removes.
 * Beside it may run one overlapping job that only syncs the active file (own_handles, see
 * log.c), whose completion the owner applies after the first job's.
 */
struct flush_job {
    struct flush_job *next;
    struct log *log;
    struct io *io;
    struct flush_seal *seals;
    uint32_t seal_count;
    struct log_file **files; /* pinned; synced in order */
    uint32_t file_count;
    /* An overlapping sync (log.c): the files are synced through handles the flusher opens for
     * the job, never through the log's own, so the errors of a write-back are reported to the
     * log's next sync however the two syncs' checks interleave (Linux reports a write-back
     * error once per open file description). */
    bool own_handles;
    char **removals; /* files of deleted segments; a missing one is fine */
    uint32_t removal_count;
    uint64_t alloc_from; /* preallocate [alloc_from, alloc_to) of files[0] when alloc_to > 0 */
    uint64_t alloc_to;
    uint32_t alloc_era;     /* the log's alloc_era when submitted */
    uint64_t drop_to;       /* files[0]'s page cache below this is dropped once done; 0: none */
    bool alloc_unsupported; /* set by the flusher: the filesystem cannot preallocate */
    struct flush_checkpoint checkpoints[3];
    uint32_t checkpoint_count;
    char *dir;              /* synced after the files when set */
    int64_t recovery_point; /* established when the job succeeds; -1 if none */
    int err;
    bool performed;
};

struct flush_job *job_new(struct log *log, struct io *io);
/* Releases the job's pins and frees it (owner thread). */
void job_free(struct flush_job *job);
void flusher_submit(struct log_flusher *fl, struct flush_job *job);
uint32_t flusher_outstanding(const struct log_flusher *fl);
/* Owner thread: blocks until job has been performed (not drained: its completion still runs
 * from log_flusher_drain). */
void flusher_wait_performed(struct log_flusher *fl, struct flush_job *job);
/* Writes a checkpoint file atomically and durably. */
int checkpoint_write(struct io *io, const char *path, const struct buf *text);
/* Called by drain for each finished job, on the owner thread (log.c). */
void log_job_done(struct log *log, struct flush_job *job);

/* ---- segments (segment.c) --------------------------------------------------------------- */

struct index_entry {
    uint32_t rel; /* offset - segment base */
    uint32_t pos;
};

struct time_entry {
    int64_t timestamp_ms; /* the segment's max timestamp up to and including rel's batch */
    uint32_t rel;
    uint32_t pos; /* a position at or before rel's batch: where a lookup starts scanning */
};

struct segment {
    int64_t base_offset;
    int64_t end_offset;           /* one past the last offset held */
    uint64_t bytes;               /* bytes of valid batches */
    uint64_t file_bytes;          /* the file's size (>= bytes when preallocated) */
    int64_t max_timestamp_ms;     /* -1 when no batch has a timestamp */
    int64_t max_timestamp_offset; /* last offset of the batch holding it, -1 if none */
    uint32_t max_timestamp_pos;
    int64_t first_append_ms; /* mono ms of the first append, -1 for an empty segment */
    uint64_t bytes_since_index;
    struct index_entry *index;
    uint32_t index_len;
    uint32_t index_cap;
    struct time_entry *times;
    uint32_t times_len;
    uint32_t times_cap;
    struct log_file *file;
    bool index_on_disk;  /* the index files match this segment's current content */
    bool index_unsynced; /* index files written this session and not yet synced */
    /* The aborted-transaction index (txnindex.c): its entry count and the last entry's marker
     * offset (-1 when none); the file holds exactly txn_count entries when txn_file is set. */
    uint32_t txn_count;
    int64_t txn_last;
    bool txn_file;     /* the .txnindex file exists (created or found) */
    bool txn_unsynced; /* changed since the last log_txn_sync */
    /* Page cache below these positions was asked to be dropped: after syncs of the appends,
     * and behind reads of older data (log.c, "drop-behind"). */
    uint64_t sync_dropped_to;
    uint64_t read_dropped_to;
};

/* A header walk over one segment file, reading ahead in chunks. */
struct seg_cursor {
    struct io_file *f;
    uint64_t limit; /* do not read at or past this position */
    uint64_t pos;   /* position of the next header */
    uint8_t *buf;
    uint64_t buf_pos; /* file position of buf[0] */
    uint32_t buf_len;
    bool large; /* the last batch filled a whole chunk: read no further than asked */
};

void seg_cursor_init(struct seg_cursor *c, struct io_file *f, uint64_t pos, uint64_t limit);
void seg_cursor_deinit(struct seg_cursor *c);
/* The header at c->pos (not CRC-checked): 1 and advances, 0 at limit, ERR_CORRUPT/INCOMPLETE
 * when the bytes there are not a plausible batch inside the limit, -errno on I/O failure. */
int seg_cursor_next(struct seg_cursor *c, struct batch_header *h, uint64_t *pos);
/* n bytes at pos (< limit): a pointer into the read-ahead buffer, or into scratch for a batch
 * larger than it; NULL with *err set on failure. Valid until the next cursor call. */
const uint8_t *seg_cursor_bytes(struct seg_cursor *c, uint64_t pos, uint64_t n, struct buf *scratch,
                                int *err);

struct segment *seg_new(struct log_files *files, const char *dir, int64_t base_offset);
void seg_free(struct segment *s);
void seg_path(char *out, const char *dir, int64_t base_offset, const char *ext);
/* Accounts one batch written at s->bytes (index and time entries, maxima, size). */
void seg_note_batch(struct segment *s, const struct batch_header *h, uint64_t total,
                    uint32_t index_interval_bytes);
/* Clears the in-memory indexes and counters (before a rebuild). */
void seg_reset(struct segment *s);
/* The in-memory offset index cannot take another entry: the segment must roll. */
bool seg_index_full(const struct segment *s);
/* The position from which to scan for offset (index floor). */
uint64_t seg_index_floor(const struct segment *s, int64_t offset);
/* Appends a final time entry for the segment maximum if the last one is older. */
void seg_finish_times(struct segment *s);
/* Writes .index and .timeindex from memory (not synced). */
int seg_write_indexes(struct io *io, const char *dir, struct segment *s);
/* The contents of .index and .timeindex, appended to index and times. */
void seg_encode_indexes(const struct segment *s, struct buf *index, struct buf *times);
/* Writes a whole small file (created or replaced in place), synced when sync is set. */
int seg_write_file(struct io *io, const char *path, const struct buf *b, bool sync);
/* Loads .index and .timeindex; ERR_CORRUPT when missing or inconsistent with file_bytes. */
int seg_load_indexes(struct io *io, const char *dir, struct segment *s);
int seg_sync_indexes(struct io *io, const char *dir, struct segment *s);
/* Whether the index files hold exactly the in-memory indexes (after a rebuild). */
bool seg_indexes_match(struct io *io, const char *dir, const struct segment *s);
/* Reads a whole file of at most bytes_max bytes, appending to b. */
int seg_read_small_file(struct io *io, const char *path, uint64_t bytes_max, struct buf *b);
void seg_remove_files(struct io *io, const char *dir, int64_t base_offset);
/* Removes the .txnindex file (a segment that is gone); a missing one is fine. */
void seg_remove_txn_index(struct io *io, const char *dir, int64_t base_offset);

/* ---- the log (log.c, recover.c) --------------------------------------------------------- */

struct flush_waiter {
    struct flush_waiter *next;
    int64_t end_offset;
    log_flush_fn fn;
    void *ctx;
};

/*
 * Invariants: segs sorted by base offset, contiguous (each base is the previous end), never
 * empty; the last is the active segment and its file is pinned by the log; start_offset <=
 * high_watermark <= end; durable_offset <= end; at most two flush jobs in flight, and a second
 * (overlap) only beside a first (inflight), with inflight_target < overlap_target.
 */
struct log {
    struct log_env env;
    struct log_config cfg;
    char *dir;
    struct segment **segs;
    uint32_t seg_count;
    uint32_t seg_cap;
    int64_t start_offset;
    int64_t high_watermark;
    int64_t durable_offset;
    /* Every segment below this base offset is synced with its index files, so an unclean
     * open may trust their index files. Never below what the checkpoint file on disk says, so
     * a truncation below it always lowers the file first. */
    int64_t recovery_point;
    struct epochs epochs;
    int err;
    bool epochs_dirty;
    bool start_dirty;
    bool dir_dirty;
    bool prealloc_off;
    struct log_file *active_pin; /* the active segment's file, pinned by the log */
    struct flush_seal *seals;    /* segments rolled since the last job, their files pinned */
    uint32_t seal_count;
    uint32_t seal_cap;
    char **removals; /* files of segments deleted since the last job */
    uint32_t removal_count;
    uint32_t removal_cap;
    /* The active segment grows by preallocation chunks that the flusher allocates ahead of the
     * writes (fallocate can wait on the disk's journal; the owner thread must not). */
    uint64_t alloc_target; /* size to preallocate the active segment to in the next job; 0: none */
    uint32_t alloc_era;    /* bumped when the active file changes size otherwise (roll, cut) */
    struct flush_job *inflight;
    int64_t inflight_target;
    /* A second job beside inflight: only a sync of the active file, started for appends made
     * after inflight was submitted, so they do not wait for it to finish before their own sync
     * starts. Completed after inflight, whichever finishes first (overlap_done: it finished
     * first and waits); when inflight finishes first, it becomes inflight. */
    struct flush_job *overlap;
    int64_t overlap_target;
    bool overlap_done;
    struct flush_waiter *waiters;
    struct flush_waiter *waiters_tail;
    uint32_t waiter_count;
    struct buf scratch;
    bool txn_dir_dirty; /* a .txnindex file was created since the last log_txn_sync */
};

#define LOG_CLEAN_MARKER        ".clean_shutdown"
#define LOG_EPOCH_CHECKPOINT    "leader-epoch-checkpoint"
#define LOG_START_CHECKPOINT    "log-start-offset-checkpoint"
#define LOG_RECOVERY_CHECKPOINT "recovery-point-offset-checkpoint"

static inline struct segment *log_active(const struct log *log)
{
    return log->segs[log->seg_count - 1];
}
static inline int64_t log_end(const struct log *log)
{
    return log_active(log)->end_offset;
}
/* The segment holding offset (the last one whose base is <= offset). */
uint32_t log_find_segment(const struct log *log, int64_t offset);
/* Loads every segment's aborted-transaction index at open, cutting what is not valid. */
int txn_load(struct log *log);
/* Drops segment s's entries whose marker is at or after offset (unsynced): 1 when it dropped
 * some, 0 when there were none, or an error (the log failed). */
int txn_cut(struct log *log, struct segment *s, int64_t offset);

/* Makes err the log's sticky error (the first one wins) and returns it. */
int log_fail(struct log *log, int err);
void log_push_segment(struct log *log, struct segment *s);
void log_free(struct log *log);
void log_path(const struct log *log, char *out, const char *name);
/* The text of an offset checkpoint (start offset, recovery point): "0\n<offset>\n". */
void log_start_text(int64_t start_offset, struct buf *out);

#endif
