/*
 * io_posix: the io interface on the real filesystem.
 *
 * Owns one heap-allocated struct posix_file per open file (freed by close, which also closes
 * the descriptor). Invariants: every descriptor is opened O_CLOEXEC; pread and pwrite retry on
 * EINTR and on short transfers, so a short read means end of file and a write either completes
 * or fails. It must never buffer data in user space or report success for a call the kernel
 * refused.
 */
#include "io/io.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"
#include "io/io_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct posix_file {
    struct io_file base;
    int fd;
};

static struct posix_file *to_posix(struct io_file *f)
{
    return CONTAINER_OF(f, struct posix_file, base);
}

/* 0 if path fits IO_PATH_BYTES_MAX with its NUL, -ENAMETOOLONG otherwise. */
static int check_path(const char *path)
{
    ASSERT(path != NULL);
    if (strnlen(path, IO_PATH_BYTES_MAX) >= IO_PATH_BYTES_MAX)
        return -ENAMETOOLONG;
    return 0;
}

/* Whether [off, off + n) is addressable as an off_t. */
static bool range_ok(uint64_t off, uint64_t n)
{
    return off <= (uint64_t)INT64_MAX && n <= (uint64_t)INT64_MAX - off;
}

static int posix_open(struct io *io, const char *path, int flags, struct io_file **out)
{
    ASSERT(io_flags_valid(flags));
    ASSERT(out != NULL);
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    int oflags = O_CLOEXEC | ((flags & IO_RDWR) ? O_RDWR : O_RDONLY);
    if (flags & IO_CREATE)
        oflags |= O_CREAT;
    if (flags & IO_EXCL)
        oflags |= O_EXCL;
    int fd;
    do {
        fd = open(path, oflags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    struct posix_file *pf = xmalloc(sizeof(*pf));
    pf->base.io = io;
    pf->fd = fd;
    *out = &pf->base;
    return 0;
}

static void posix_close(struct io_file *f)
{
    struct posix_file *pf = to_posix(f);
    ASSERT(pf->fd >= 0);
    /* Linux releases the descriptor even when close reports an error, so there is nothing to
     * retry; unsynced data carries no promise anyway. */
    (void)close(pf->fd);
    pf->fd = -1;
    free(pf);
}

static ssize_t posix_pread(struct io_file *f, void *buf, size_t n, uint64_t off)
{
    struct posix_file *pf = to_posix(f);
    ASSERT(pf->fd >= 0);
    if (!range_ok(off, n))
        return -EINVAL;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(pf->fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static ssize_t posix_pwrite(struct io_file *f, const void *buf, size_t n, uint64_t off)
{
    struct posix_file *pf = to_posix(f);
    ASSERT(pf->fd >= 0);
    if (!range_ok(off, n))
        return -EINVAL;
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(pf->fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        /* A regular file never accepts zero bytes of a non-empty write; retrying would spin. */
        if (w == 0)
            return -EIO;
        done += (size_t)w;
    }
    return (ssize_t)done;
}

static int posix_sync(struct io_file *f)
{
    struct posix_file *pf = to_posix(f);
    ASSERT(pf->fd >= 0);
    /* No retry on EINTR: after a failed fdatasync the kernel may have dropped the dirty pages,
     * so a second call could report success for data that is gone. */
    if (fdatasync(pf->fd) < 0)
        return -errno;
    return 0;
}

static int posix_truncate(struct io_file *f, uint64_t size)
{
    struct posix_file *pf = to_posix(f);
    ASSERT(pf->fd >= 0);
    if (!range_ok(size, 0))
        return -EINVAL;
    int rc;
    do {
        rc = ftruncate(pf->fd, (off_t)size);
    } while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int posix_allocate(struct io_file *f, uint64_t off, uint64_t len)
{
    struct posix_file *pf = to_posix(f);
    ASSERT(pf->fd >= 0);
    if (!range_ok(off, len))
        return -EINVAL;
    /* fallocate rejects an empty range with EINVAL; reserving nothing trivially succeeds. */
    if (len == 0)
        return 0;
    int rc;
    do {
        rc = fallocate(pf->fd, 0, (off_t)off, (off_t)len);
    } while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int posix_drop_cache(struct io_file *f, uint64_t off, uint64_t len)
{
    struct posix_file *pf = to_posix(f);
    ASSERT(pf->fd >= 0);
    if (!range_ok(off, len))
        return -EINVAL;
    if (len == 0)
        return 0; /* to posix_fadvise, a length of 0 means "to the end of the file" */
    return -posix_fadvise(pf->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

static int posix_size(struct io_file *f, uint64_t *size)
{
    struct posix_file *pf = to_posix(f);
    ASSERT(pf->fd >= 0);
    struct stat st;
    if (fstat(pf->fd, &st) < 0)
        return -errno;
    ASSERT(st.st_size >= 0);
    *size = (uint64_t)st.st_size;
    return 0;
}

static int posix_fd(struct io_file *f)
{
    struct posix_file *pf = to_posix(f);
    ASSERT(pf->fd >= 0);
    return pf->fd;
}

static int posix_rename(struct io *io, const char *from, const char *to)
{
    (void)io;
    int rc = check_path(from);
    if (rc == 0)
        rc = check_path(to);
    if (rc < 0)
        return rc;
    return rename(from, to) < 0 ? -errno : 0;
}

static int posix_remove(struct io *io, const char *path)
{
    (void)io;
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    return unlink(path) < 0 ? -errno : 0;
}

static int posix_mkdir(struct io *io, const char *path)
{
    (void)io;
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    return mkdir(path, 0755) < 0 ? -errno : 0;
}

static int posix_rmdir(struct io *io, const char *path)
{
    (void)io;
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    return rmdir(path) < 0 ? -errno : 0;
}

static int posix_exists(struct io *io, const char *path, bool *is_dir)
{
    (void)io;
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    if (is_dir != NULL)
        *is_dir = S_ISDIR(st.st_mode);
    return 0;
}

static int open_dir(const char *path)
{
    int fd;
    do {
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int posix_list_dir(struct io *io, const char *path, io_list_fn fn, void *ctx)
{
    (void)io;
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    int fd = open_dir(path);
    if (fd < 0)
        return fd;
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        rc = -errno;
        close(fd);
        return rc;
    }
    uint64_t count = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (de == NULL) {
            rc = errno != 0 ? -errno : 0;
            goto done;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (strnlen(de->d_name, IO_NAME_BYTES_MAX) >= IO_NAME_BYTES_MAX) {
            rc = -ENAMETOOLONG;
            goto done;
        }
        if (++count > IO_LIST_ENTRIES_MAX) {
            rc = ERR_TOO_LARGE;
            goto done;
        }
        rc = fn(ctx, de->d_name);
        if (rc != 0)
            goto done;
    }
done:
    closedir(dir); /* also closes fd */
    return rc;
}

static int posix_sync_dir(struct io *io, const char *path)
{
    (void)io;
    int rc = check_path(path);
    if (rc < 0)
        return rc;
    int fd = open_dir(path);
    if (fd < 0)
        return fd;
    rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

static void posix_destroy(struct io *io)
{
    free(io);
}

static const struct io_ops posix_ops = {
    .open = posix_open,
    .close = posix_close,
    .pread = posix_pread,
    .pwrite = posix_pwrite,
    .sync = posix_sync,
    .truncate = posix_truncate,
    .allocate = posix_allocate,
    .drop_cache = posix_drop_cache,
    .size = posix_size,
    .fd = posix_fd,
    .rename = posix_rename,
    .remove = posix_remove,
    .mkdir = posix_mkdir,
    .rmdir = posix_rmdir,
    .exists = posix_exists,
    .list_dir = posix_list_dir,
    .sync_dir = posix_sync_dir,
    .destroy = posix_destroy,
};

struct io *io_posix_create(void)
{
    struct io *io = xmalloc(sizeof(*io));
    io->ops = &posix_ops;
    return io;
}
