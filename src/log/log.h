/*
 * The durable partition log: Kafka's segmented on-disk log, which is also the partition's Raft
 * log (index = offset, term = partitionLeaderEpoch; a batch is a run of entries of one term
 * appended atomically).
 *
 * On disk, one directory per partition:
 *   00000000000000000000.log        batches as received, named by the segment's base offset
 *   00000000000000000000.index      8-byte entries (relative offset u32, position u32)
 *   00000000000000000000.timeindex  12-byte entries (timestamp i64, relative offset u32)
 *   00000000000000000000.txnindex   34-byte aborted transactions whose ABORT marker is in the
 *                                   segment (version i16 = 0, producer id, first offset, last
 *                                   offset = the marker's, last stable offset, i64 each; Kafka's
 *                                   layout), by marker offset; present once the segment has one
 *   leader-epoch-checkpoint         "0\n<count>\n<epoch> <startOffset>\n..."
 *   log-start-offset-checkpoint     "0\n<offset>\n"
 *   recovery-point-offset-checkpoint "0\n<offset>\n": segments below it are synced, indexes too
 *   .clean_shutdown                 present only between a clean close and the next open
 * Index files are written when a segment rolls (by the flusher, which also trims the rolled
 * file) and at clean close; the active segment's index lives in memory. The active segment is
 * preallocated in chunks and trimmed on roll and close, so after a crash its end is found by
 * scanning, never from the file size. After a crash only the segments from the recovery point on
 * are scanned batch by batch (Kafka's recovery point). Segments deleted by retention or
 * DeleteRecords leave the log at once; their files are removed by the flusher behind any job still
 * sealing them.
 *
 * Objects and ownership:
 * - struct log_files: the open-file cache shared by every log of a node; bounds the segment
 *   files held open (least recently used closed first). A file pinned by a reader, a flush or
 *   the active segment stays open, so the bound can be exceeded only by pins.
 * - struct log_flusher: one per owner thread (the broker's event loop); background threads
 *   (syncing different logs in parallel) that do group commit (one fdatasync per file covers
 *   every append before it) and hand completions back through an eventfd.
 * - struct log: one partition, created by log_open and freed by log_close or log_abandon.
 *   Everything the log allocates is freed by those; the caller owns the bytes it passes in.
 *
 * Threads: a log, its flusher's drain and every function below except log_read_release and
 * the log_file accessors belong to one owner thread. log_read_release may be called from any
 * thread. The flusher threads only touch files pinned for it, index and checkpoint files it
 * was handed, and files of deleted segments it was asked to remove.
 *
 * Durability: an append is in the page cache when log_append returns; it is durable when the
 * durable offset (log_durable_offset) has passed it, which happens in log_flusher_drain after
 * the flusher's fdatasync of every file holding it (and of the directory when segments were
 * created or deleted). The start-offset checkpoint is replaced (temp file, sync, rename,
 * directory sync) by the flusher in the same round, before those syncs; the epoch checkpoint
 * likewise, but only in a round that also seals, removes, syncs the directory or moves the
 * start (after a crash only its entries below the recovery point are trusted, so it must be
 * durable before the point moves past them, not before every append of a new epoch). A rolled
 * segment is sealed and synced by the next round, which a roll starts itself when none is in
 * flight; its file stays pinned until then. Everything recovered by log_open is durable when it
 * returns. A storage error (a failed write, sync, truncate, allocation or rename) is fatal for
 * that log: every later call returns the error and nothing more is reported durable.
 * Blocking: only log_open, log_close and log_truncate_to wait for syncs on the owner thread;
 * other calls do no file-system work beyond writing the batch (and creating the next segment's
 * file on a roll): allocation, sealing and removal happen on the flusher.
 */
#ifndef CHRONIK_LOG_LOG_H
#define CHRONIK_LOG_LOG_H

#include "base/clock.h"
#include "io/io.h"
#include "log/producer_state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct log;
struct log_files;
struct log_file;
struct log_flusher;
struct buf;

/* ---- open-file cache ------------------------------------------------------------------- */

/* open_max >= 1 segment files kept open when unpinned. Free with log_files_destroy after
 * every log using it is closed and every read released. */
struct log_files *log_files_create(struct io *io, uint32_t open_max);
void log_files_destroy(struct log_files *files);
uint32_t log_files_open_count(struct log_files *files);

/* A pinned segment file: valid until the pin is released. */
struct io_file *log_file_io(const struct log_file *f);
int log_file_fd(const struct log_file *f); /* for sendfile; -1 on a simulated disk */

/* ---- flusher ---------------------------------------------------------------------------- */

/* threaded: run syncs on background threads (production). When false, nothing happens until
 * log_flusher_run_pending is called, which makes tests deterministic. */
struct log_flusher *log_flusher_create(bool threaded);
/* Requires every log using it to be closed. */
void log_flusher_destroy(struct log_flusher *fl);
/* An eventfd, readable when completions wait for log_flusher_drain. */
int log_flusher_fd(const struct log_flusher *fl);
/* Owner thread: applies finished syncs (durable offsets, failures) and runs flush callbacks.
 * Never blocks. */
void log_flusher_drain(struct log_flusher *fl);
/* Owner thread: blocks until at least one job completes (or none is outstanding) and drains. */
void log_flusher_wait(struct log_flusher *fl);
/* Manual mode only: performs every queued job on the calling thread. */
void log_flusher_run_pending(struct log_flusher *fl);
/* Manual mode only: performs the most recently queued job alone, as a thread would that
 * finishes a later job first. Returns whether there was one. */
bool log_flusher_run_last(struct log_flusher *fl);
/* Jobs submitted and not yet performed. */
uint32_t log_flusher_queued(struct log_flusher *fl);

/* ---- the log ---------------------------------------------------------------------------- */

struct log_config {
    uint64_t segment_bytes;        /* log.segment.bytes, LOG_SEGMENT_BYTES_MIN..MAX */
    uint64_t roll_ms;              /* log.roll.ms: age from the segment's first append */
    int64_t retention_ms;          /* -1: no time limit */
    int64_t retention_bytes;       /* -1: no size limit */
    uint32_t index_interval_bytes; /* log.index.interval.bytes */
    uint64_t prealloc_bytes;       /* chunk by which the active segment grows; 0: no fallocate */
};
void log_config_default(struct log_config *cfg);
/* Replaces an open log's configuration (a topic's settings changed). A smaller segment size
 * rolls at the next append; retention applies at the next log_enforce_retention. ERR_INVALID
 * for values out of bounds (the log keeps its old configuration). */
int log_set_config(struct log *log, const struct log_config *cfg);

struct log_env {
    struct io *io;
    struct clock *clock;
    struct log_files *files;
    struct log_flusher *flusher;
    /* log.cache.tail.bytes: the page cache of what is older than this many bytes behind the end
     * of the log is dropped once synced, and behind reads of older data (io_drop_cache); 0
     * leaves the page cache to the kernel. */
    uint64_t cache_tail_bytes;
};

/*
 * Opens (creating if needed) the log in dir and recovers it: after a clean close the indexes
 * are loaded; otherwise every segment is validated batch by batch, a torn or corrupt tail is
 * truncated, segments after a gap are deleted, indexes and the epoch cache are rebuilt, and the
 * recovered files are synced. Everything in the log is durable when this returns. The env's
 * objects must outlive the log. Blocks on I/O (startup only).
 */
int log_open(const struct log_env *env, const char *dir, const struct log_config *cfg,
             struct log **out);
/* Clean close: waits for in-flight syncs, trims and syncs the active segment, writes indexes
 * and checkpoints, then the clean-shutdown marker. Frees the log even when it fails. */
int log_close(struct log *log);
/* log_close in two steps, so a node can close many logs at once: log_close_begin on the owner
 * thread (waits for the log's jobs and fails its flush waiters with ERR_CLOSED), then
 * log_close_end on any one thread, which touches only the log's own files and the shared file
 * cache (thread-safe), as log_open does. */
void log_close_begin(struct log *log);
int log_close_end(struct log *log);
/* Frees the log without writing anything (a process that dies). Waits for in-flight syncs. */
void log_abandon(struct log *log);

/* The error that made the log unusable, or 0. */
int log_error(const struct log *log);

struct log_append_result {
    int64_t base_offset;
    int64_t last_offset;
};

/*
 * Leader path: batch (len bytes, one batch that passed batch_parse) is stamped in place with
 * baseOffset = log end offset and partitionLeaderEpoch = leader_epoch, then written. The epoch
 * must be >= the latest epoch in the log (ERR_INVALID otherwise, the log stays usable).
 */
int log_append(struct log *log, uint8_t *batch, size_t len, int32_t leader_epoch,
               struct log_append_result *out);
/* Follower path: the batch keeps its own baseOffset and epoch; its baseOffset must equal the
 * log end offset (ERR_RANGE otherwise). */
int log_append_at(struct log *log, const uint8_t *batch, size_t len, struct log_append_result *out);

/*
 * Group commit: calls fn(ctx, err, durable_offset) from log_flusher_drain once every offset
 * below end_offset is durable (err 0), or the log failed (err < 0). Returns 0 when the callback
 * is scheduled, 1 when it is already durable (no callback), or an error (no callback).
 * A callback must not close the log. The log has at most two syncs in flight: the first one
 * asked, and, for appends it does not cover, one of the active file started beside it (when no
 * roll, checkpoint or removal is pending); later requests wait for the first to finish.
 */
typedef void (*log_flush_fn)(void *ctx, int err, int64_t durable_offset);
int log_flush(struct log *log, int64_t end_offset, log_flush_fn fn, void *ctx);

/* A read: `bytes` bytes at `position` of a pinned segment file, whole batches covering
 * [first_offset, next_offset). Release with log_read_release (any thread). */
struct log_read {
    struct log_file *file; /* NULL when the read is empty */
    uint64_t position;
    uint64_t bytes;
    int64_t first_offset; /* base offset of the first batch */
    int64_t next_offset;  /* one past the last offset returned */
};

/*
 * Whole batches of one segment starting with the batch that contains offset, up to bytes_max
 * (the first batch is returned whole even if larger: KIP-74) and only batches whose last offset
 * is below offset_limit (the high watermark; INT64_MAX for none). An offset at the end (or the
 * limit) gives an empty read; one below the log start or past the end gives ERR_RANGE.
 */
int log_read(struct log *log, int64_t offset, uint64_t bytes_max, int64_t offset_limit,
             struct log_read *out);
void log_read_release(struct log_read *r);

/*
 * What a client reads (Fetch): log_read without the Raft no-ops (a replicated partition's new
 * leader's first entry, a control batch outside any transaction that starts its epoch; Kafka
 * writes none into a partition). The read starts after the no-ops at offset and stops before
 * the next one, so a client sees their offsets as gaps, as it sees a transaction marker's;
 * an empty read's first_offset and next_offset are past the no-ops it passed.
 */
int log_read_records(struct log *log, int64_t offset, uint64_t bytes_max, int64_t offset_limit,
                     struct log_read *out);

/* The end a client is shown for a log committed below end: end, or, when the batches just
 * below it are no-ops, the first of them (so a consumer that read every record is at the end,
 * not a no-op short of it). The same on every replica of a committed prefix, and it never
 * decreases as end grows. */
int64_t log_visible_end(struct log *log, int64_t end);

int64_t log_start_offset(const struct log *log);
int64_t log_end_offset(const struct log *log);
int64_t log_durable_offset(const struct log *log); /* every offset below it is durable */
int64_t log_high_watermark(const struct log *log);
/* Stored in memory; ERR_RANGE past the log end offset or below the log start offset. */
int log_set_high_watermark(struct log *log, int64_t offset);

/* First offset whose data batch (control batches are passed over) has maxTimestamp >=
 * timestamp_ms (the batch's base offset, or the log start offset if larger); ERR_NOT_FOUND if
 * none. */
int log_offset_for_timestamp(struct log *log, int64_t timestamp_ms, int64_t *offset);
/* The largest batch maxTimestamp and the base offset of the first batch holding it (the log
 * keeps batch-level timestamps only); ERR_NOT_FOUND when no batch has a timestamp. */
int log_max_timestamp(struct log *log, int64_t *timestamp_ms, int64_t *offset);

/* Drops every offset >= offset, which must be a batch boundary (ERR_INVALID inside a batch,
 * ERR_RANGE outside [log start, log end]). Lowers the high watermark and the durable offset,
 * trims the epoch cache. Flush waiters beyond the new end keep waiting. The cut is durable
 * when this returns: it blocks on one fdatasync (and a directory sync when segments were
 * deleted, one more when aborted-transaction index entries were dropped), so no crash can bring the
 * dropped suffix back behind later appends. */
int log_truncate_to(struct log *log, int64_t offset);

/* Raft's term at index: the epoch of the batch holding offset (ERR_NOT_FOUND if unknown). */
int log_epoch_of(struct log *log, int64_t offset, int32_t *epoch);
/* The latest epoch (-1 when the log never had one). */
int32_t log_latest_epoch(const struct log *log);
/* Kafka's OffsetForLeaderEpoch: the largest epoch <= epoch and its end offset; both -1 when
 * unknown (as Kafka's UNDEFINED). */
void log_end_offset_for_epoch(struct log *log, int32_t epoch, int32_t *epoch_out,
                              int64_t *end_offset_out);

/* Deletes whole segments (never the active one, never past the high watermark) older than
 * retention.ms by their newest timestamp (a segment with no timestamp never expires by time)
 * or beyond retention.bytes, oldest first. Returns the number of segments deleted or an
 * error. The caller runs it periodically (Kafka: log.retention.check.interval.ms). */
int log_enforce_retention(struct log *log);
/* DeleteRecords: advances the log start offset to offset (<= high watermark) and deletes the
 * segments wholly below it. The new start offset is persisted by the next sync. */
int log_delete_records(struct log *log, int64_t offset);

/*
 * A Raft follower installing a snapshot that ends at offset - 1: replaces the whole log by an
 * empty one starting at offset (> the log end; ERR_RANGE otherwise). Returns at once; the new
 * log is durable once the durable offset reaches offset (log_flush(log, offset, ...)), which
 * the next sync round does: it writes the start checkpoint, then removes the old segments'
 * files and syncs the directory. The start checkpoint is the commit point: a log whose start
 * checkpoint lies beyond the end of its segments opens empty at that start (Kafka's rule), and
 * the new empty segment lies after a gap until then, so a crash at any point opens either the
 * old log or the new one.
 */
int log_reset(struct log *log, int64_t offset);

uint32_t log_segment_count(const struct log *log);

/*
 * The aborted-transaction index (Kafka's TransactionIndex): one .txnindex file per segment,
 * holding the aborted transactions whose ABORT marker lies in the segment. The log only stores
 * entries; the partition's producer state (which knows a transaction's first offset) adds one
 * for every ABORT marker it reads, in offset order, and re-reads the log from where its last
 * snapshot stands after a restart. Hence the rule that keeps the index complete after a crash:
 * the owner drops the entries from where its state re-reads (log_txn_truncate) before the
 * re-read adds them again, and makes the entries durable (log_txn_sync) before it makes durable
 * a snapshot that says they are read. Only the owner thread touches these files, through the
 * log's struct io; the flusher only removes those of deleted segments, as it does their other
 * files. Opening keeps of each file the valid entries below its segment's end (a crash's torn or
 * stale tail is cut), a truncation drops the entries from the cut on (durably, as the cut),
 * retention, DeleteRecords and log_reset delete the files with their segments.
 */

/* Adds e (its marker at e->last_offset, inside the log) to the index of the marker's segment,
 * written at once, durable after the next log_txn_sync. An entry whose marker is at or before
 * the segment's last one is already there (a state re-reading the log): 0, nothing written.
 * ERR_RANGE for a marker outside the log. */
int log_txn_add(struct log *log, const struct producer_aborted *e);
/* Drops every entry whose marker is at or after offset. */
int log_txn_truncate(struct log *log, int64_t offset);
/* Makes every entry added or dropped so far durable (fdatasync of each index file changed since
 * the last call; the directory when one was created). Blocks on I/O. */
int log_txn_sync(struct log *log);
/* Kafka's collectAbortedTxns: up to max entries with last offset >= from and first offset <
 * upper, by marker offset, from the segment holding from on; stops at the first entry whose last
 * stable offset is >= upper (every transaction starting before upper had ended by that marker).
 * Reads the index files (owner thread). */
int log_txn_collect(struct log *log, int64_t from, int64_t upper, struct producer_aborted *out,
                    uint32_t max, uint32_t *count);

/* Replaces the file at path with bytes atomically and durably (a temp file beside it, synced,
 * renamed over it, the directory synced), as the log's checkpoints are. Blocks on I/O. */
int log_replace_file(struct io *io, const char *path, const struct buf *bytes);

#endif
