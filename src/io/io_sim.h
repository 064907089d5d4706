/*
 * A simulated disk for tests: an in-memory filesystem that models what a crash can do.
 *
 * Model:
 * - Each file has durable content (what survives a crash for sure) and a queue of pending
 *   operations (writes, truncates, allocations) since its last io_sync(). io_sync() applies the
 *   file's pending operations to its durable content.
 * - Each directory has durable entries and pending entry operations (create, rename, remove)
 *   since its last io_sync_dir(). Reads always see the latest state, synced or not.
 * - All pending operations, data and directory alike, carry one global sequence number in the
 *   order they were issued.
 * - io_sim_crash_at(keep_ops, tear_bytes): the machine loses power. Of the pending operations,
 *   the first keep_ops (in global order) survive; if the next one is a write, its first
 *   tear_bytes bytes survive too; everything after is lost. Then every file handle opened
 *   before the crash becomes stale: every call on it returns -EIO except io_close(), which
 *   frees it. The disk is usable again at once through new handles.
 * - io_sim_crash(rng): the same with keep_ops and tear_bytes drawn at random.
 * - io_sim_crash_torn(rng, reorder): keep_ops drawn as above; then the next pending write, if
 *   it is one, keeps each of its IO_SIM_SECTOR_BYTES-aligned pieces or not, on its own (a torn
 *   write with holes). With reorder, a disk that writes back out of order, as a page cache and
 *   a disk's write cache may: every later pending write too (a later write of a file on disk
 *   without an earlier one), up to its file's next pending truncate or allocation, after which
 *   nothing of that file lands. Every later directory operation, truncate and allocation is
 *   lost. A file grown by a surviving piece reads zeros in the gap.
 * - Fault injection: io_sim_fail_nth(kinds, nth, err) makes the nth operation (counting from 1,
 *   from the call on) whose kind is in `kinds` fail with err (e.g. -EIO, -ENOSPC) and have no
 *   effect. A failed io_sync() is sticky for that file, as on Linux, which may drop dirty pages
 *   after a failed fsync: the file's pending data is discarded and every later io_sync() on the
 *   handle returns -EIO.
 *
 * Details the model above leaves open:
 * - Paths are resolved from "/" (a relative path too); "." is ignored and ".." is refused with
 *   -EINVAL. Opening a directory fails with -EISDIR.
 * - A cross-directory rename is one pending operation in both directories, made durable whole
 *   by io_sync_dir() on either. io_sync_dir() also makes durable every earlier pending
 *   operation that shares a directory with one it makes durable, so each directory's durable
 *   entries are always its entries as they were at some earlier moment.
 * - A file is durable only through a durable chain of entries from "/": a file (or directory)
 *   whose entry was never made durable is gone after a crash, synced data and all.
 * - io_sim_crash_at() clamps keep_ops to the pending count and tear_bytes to the write's size.
 * - Operation kinds: io_open is OPEN, io_pread READ, io_pwrite WRITE, io_sync and io_sync_dir
 *   SYNC, io_truncate TRUNCATE, io_allocate ALLOCATE, io_rename/io_remove/io_mkdir/io_rmdir
 *   DIROP. io_close, io_size, io_exists and io_list_dir are not counted and never fail by
 *   injection; neither are calls on a stale handle, which fail with -EIO anyway.
 * - The capacity counts the current size of every file, removed-but-open ones included. A
 *   truncate that grows a file is not refused (it would be sparse on a real disk).
 * - io_pwrite of 0 bytes and io_allocate of 0 bytes do nothing and queue nothing.
 *
 * Thread-safe: one mutex around all state. io_list_dir() calls its callback without holding
 * it, on a snapshot of the names, so the callback may use the io.
 */
#ifndef CHRONIK_IO_IO_SIM_H
#define CHRONIK_IO_IO_SIM_H

#include "base/rand.h"
#include "io/io.h"

#include <stdbool.h>
#include <stdint.h>

/* The unit a scattered crash keeps or loses: a disk sector. */
#define IO_SIM_SECTOR_BYTES 512u

enum io_sim_op_kind {
    IO_SIM_OPEN = 1 << 0,
    IO_SIM_READ = 1 << 1,
    IO_SIM_WRITE = 1 << 2,
    IO_SIM_SYNC = 1 << 3, /* io_sync and io_sync_dir */
    IO_SIM_TRUNCATE = 1 << 4,
    IO_SIM_ALLOCATE = 1 << 5,
    IO_SIM_DIROP = 1 << 6, /* rename, remove, mkdir, rmdir */
    IO_SIM_ALL = (1 << 7) - 1,
};

/* A new empty simulated disk with one directory, "/". Free with io_destroy(). */
struct io *io_sim_create(void);

/* Pending (unsynced) operations right now, over all files and directories. */
uint64_t io_sim_pending_ops(struct io *io);
/* Bytes of the pending operation with index i (0-based, global order); 0 if not a write. */
uint64_t io_sim_pending_write_bytes(struct io *io, uint64_t i);
void io_sim_crash_at(struct io *io, uint64_t keep_ops, uint64_t tear_bytes);
void io_sim_crash(struct io *io, struct rng *rng);
void io_sim_crash_torn(struct io *io, struct rng *rng, bool reorder);

void io_sim_fail_nth(struct io *io, unsigned kinds, uint64_t nth, int err);
void io_sim_fail_clear(struct io *io);
/* Errors returned so far by injection or for want of space (the capacity), not counting the
 * echoes of an earlier one (a sticky failed sync, a stale handle): a caller that failed while
 * this did not move failed on its own. */
uint64_t io_sim_faults(struct io *io);

/* Operations performed so far, by kind (to drive "fail at every Nth operation" loops). */
uint64_t io_sim_op_count(struct io *io, unsigned kinds);

/* A space limit in bytes over all file contents: writes and allocations beyond it fail with
 * -ENOSPC. 0 means no limit. */
void io_sim_set_capacity(struct io *io, uint64_t bytes);
/* Bytes the capacity counts right now (to fill a disk up to a chosen margin). */
uint64_t io_sim_used_bytes(struct io *io);

#endif
