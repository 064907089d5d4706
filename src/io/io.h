/*
 * File I/O interface. Every byte Chronik reads from or writes to disk goes through a struct io,
 * so tests can run the same code on a simulated disk that loses unsynced writes, tears the last
 * write at any byte, and fails the Nth operation with EIO or ENOSPC (SQLite's VFS idea).
 *
 * Two implementations: io_posix_create() (the real filesystem) and io_sim_create() (io_sim.h).
 *
 * Conventions:
 * - Every call returns 0 (or a non-negative count) on success, a negative errno on failure.
 * - Paths are absolute or relative to the process's working directory, at most
 *   IO_PATH_BYTES_MAX bytes with the NUL.
 * - Durability: file data is durable once io_sync() on that file has returned 0. A directory
 *   entry (a create, rename or remove) is durable once io_sync_dir() on its parent directory
 *   has returned 0. Nothing else is promised: after a crash, unsynced writes may be gone,
 *   partly present, or torn at any byte.
 * - Thread safety: an io and its files may be used from several threads at once, as long as two
 *   threads never close the same file. The log's flusher thread calls io_sync() on a file while
 *   the owning thread writes to it.
 * - Ownership: io_open() hands out a struct io_file that the caller frees with io_close(),
 *   even when an operation on it failed. io_destroy() requires every file to be closed.
 */
#ifndef CHRONIK_IO_IO_H
#define CHRONIK_IO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct io;
struct io_file;

enum io_open_flags {
    IO_RDONLY = 0,      /* read only */
    IO_RDWR = 1 << 0,   /* read and write */
    IO_CREATE = 1 << 1, /* create the file if it does not exist (with IO_RDWR) */
    IO_EXCL = 1 << 2,   /* with IO_CREATE: fail with -EEXIST if it exists */
};

/* Called once per directory entry by io_list_dir (never for "." and ".."). Returning non-zero
 * stops the listing and io_list_dir returns that value. */
typedef int (*io_list_fn)(void *ctx, const char *name);

struct io_ops {
    int (*open)(struct io *io, const char *path, int flags, struct io_file **out);
    void (*close)(struct io_file *f);
    ssize_t (*pread)(struct io_file *f, void *buf, size_t n, uint64_t off);
    ssize_t (*pwrite)(struct io_file *f, const void *buf, size_t n, uint64_t off);
    int (*sync)(struct io_file *f);
    int (*truncate)(struct io_file *f, uint64_t size);
    int (*allocate)(struct io_file *f, uint64_t off, uint64_t len);
    int (*drop_cache)(struct io_file *f, uint64_t off, uint64_t len);
    int (*size)(struct io_file *f, uint64_t *size);
    int (*fd)(struct io_file *f);
    int (*rename)(struct io *io, const char *from, const char *to);
    int (*remove)(struct io *io, const char *path);
    int (*mkdir)(struct io *io, const char *path);
    int (*rmdir)(struct io *io, const char *path);
    int (*exists)(struct io *io, const char *path, bool *is_dir);
    int (*list_dir)(struct io *io, const char *path, io_list_fn fn, void *ctx);
    int (*sync_dir)(struct io *io, const char *path);
    void (*destroy)(struct io *io);
};

struct io {
    const struct io_ops *ops;
};

/* The real filesystem. Free with io_destroy(). */
struct io *io_posix_create(void);

static inline int io_open(struct io *io, const char *path, int flags, struct io_file **out)
{
    return io->ops->open(io, path, flags, out);
}
/* Closes and frees f. Never fails from the caller's point of view: data not synced before
 * close carries no durability promise. */
void io_close(struct io_file *f);
/* Reads up to n bytes at off; returns the bytes read (0 at end of file) or -errno. A short
 * read happens only at end of file. */
ssize_t io_pread(struct io_file *f, void *buf, size_t n, uint64_t off);
/* Writes all n bytes at off (extending the file if needed); returns n or -errno. A failed
 * write may have written a prefix. */
ssize_t io_pwrite(struct io_file *f, const void *buf, size_t n, uint64_t off);
/* fdatasync: on success everything written to f before the call is durable, and so is the
 * file's size. After a failure the file's durable content is unknown: treat the file as lost. */
int io_sync(struct io_file *f);
int io_truncate(struct io_file *f, uint64_t size);
/* Reserves disk space for [off, off+len) and extends the size to at least off+len, zero-filled
 * (fallocate mode 0). -ENOSPC when the disk is full; -EOPNOTSUPP if the filesystem cannot. */
int io_allocate(struct io_file *f, uint64_t off, uint64_t len);
/* Tells the OS that [off, off+len) of f, synced, will not be read soon, so that its page cache
 * can be freed (POSIX_FADV_DONTNEED): the pages of a log's older data are then reused by the
 * next writes instead of new memory. A hint: it never changes the content, pages still in use
 * (being sent, or dirty) stay cached, and only whole cached pages (folios) inside the range are
 * freed. Returns 0 or -errno. The simulation only refuses a stale handle, and counts no
 * operation, so dropping changes no fault schedule. */
int io_drop_cache(struct io_file *f, uint64_t off, uint64_t len);
int io_size(struct io_file *f, uint64_t *size);
/* The OS file descriptor for sendfile(), or -1 when the file is not an OS file (simulation). */
int io_fd(struct io_file *f);

int io_rename(struct io *io, const char *from, const char *to); /* replaces `to` atomically */
int io_remove(struct io *io, const char *path);                 /* a file */
int io_mkdir(struct io *io, const char *path);                  /* -EEXIST if present */
int io_rmdir(struct io *io, const char *path);                  /* an empty directory */
/* 0 and *is_dir set if path exists, -ENOENT if not. is_dir may be NULL. */
int io_exists(struct io *io, const char *path, bool *is_dir);
int io_list_dir(struct io *io, const char *path, io_list_fn fn, void *ctx);
int io_sync_dir(struct io *io, const char *path);
void io_destroy(struct io *io);

#endif
