/*
 * The dispatch wrappers declared in io.h: each checks its arguments and forwards to the
 * implementation that opened the file or owns the io.
 *
 * Invariant: every struct io_file begins with its owning struct io (io_impl.h). This file holds
 * no state and must never do I/O itself.
 */
#include "io/io.h"

#include "base/assert.h"
#include "io/io_impl.h"

#include <limits.h>
#include <stdint.h>

void io_close(struct io_file *f)
{
    ASSERT(f != NULL);
    ASSERT(f->io != NULL);
    f->io->ops->close(f);
}

ssize_t io_pread(struct io_file *f, void *buf, size_t n, uint64_t off)
{
    ASSERT(f != NULL);
    ASSERT(buf != NULL || n == 0);
    ASSERT(n <= SSIZE_MAX);
    return f->io->ops->pread(f, buf, n, off);
}

ssize_t io_pwrite(struct io_file *f, const void *buf, size_t n, uint64_t off)
{
    ASSERT(f != NULL);
    ASSERT(buf != NULL || n == 0);
    ASSERT(n <= SSIZE_MAX);
    return f->io->ops->pwrite(f, buf, n, off);
}

int io_sync(struct io_file *f)
{
    ASSERT(f != NULL);
    return f->io->ops->sync(f);
}

int io_truncate(struct io_file *f, uint64_t size)
{
    ASSERT(f != NULL);
    return f->io->ops->truncate(f, size);
}

int io_allocate(struct io_file *f, uint64_t off, uint64_t len)
{
    ASSERT(f != NULL);
    return f->io->ops->allocate(f, off, len);
}

int io_drop_cache(struct io_file *f, uint64_t off, uint64_t len)
{
    ASSERT(f != NULL);
    return f->io->ops->drop_cache(f, off, len);
}

int io_size(struct io_file *f, uint64_t *size)
{
    ASSERT(f != NULL);
    ASSERT(size != NULL);
    return f->io->ops->size(f, size);
}

int io_fd(struct io_file *f)
{
    ASSERT(f != NULL);
    return f->io->ops->fd(f);
}

int io_rename(struct io *io, const char *from, const char *to)
{
    ASSERT(io != NULL);
    ASSERT(from != NULL && to != NULL);
    return io->ops->rename(io, from, to);
}

int io_remove(struct io *io, const char *path)
{
    ASSERT(io != NULL);
    ASSERT(path != NULL);
    return io->ops->remove(io, path);
}

int io_mkdir(struct io *io, const char *path)
{
    ASSERT(io != NULL);
    ASSERT(path != NULL);
    return io->ops->mkdir(io, path);
}

int io_rmdir(struct io *io, const char *path)
{
    ASSERT(io != NULL);
    ASSERT(path != NULL);
    return io->ops->rmdir(io, path);
}

int io_exists(struct io *io, const char *path, bool *is_dir)
{
    ASSERT(io != NULL);
    ASSERT(path != NULL);
    return io->ops->exists(io, path, is_dir);
}

int io_list_dir(struct io *io, const char *path, io_list_fn fn, void *ctx)
{
    ASSERT(io != NULL);
    ASSERT(path != NULL && fn != NULL);
    return io->ops->list_dir(io, path, fn, ctx);
}

int io_sync_dir(struct io *io, const char *path)
{
    ASSERT(io != NULL);
    ASSERT(path != NULL);
    return io->ops->sync_dir(io, path);
}

void io_destroy(struct io *io)
{
    ASSERT(io != NULL);
    ASSERT(io->ops->destroy != NULL);
    io->ops->destroy(io);
}
