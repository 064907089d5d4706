/*
 * The open-file cache shared by every partition log of a node.
 *
 * Owns every struct log_file and the OS handles behind them. Invariants: a file is open iff it
 * is pinned or on the LRU list; open_count counts open files; only unpinned files are on the
 * LRU and only they are ever closed to make room, so a pinned file (an active segment, a read
 * being sent, a file being synced) is never closed underneath its user. Must never close a
 * pinned file and never reopen a dropped one (its path may name a newer segment).
 */
#include "log/log_internal.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"

#include <stdlib.h>

struct log_files {
    struct io *io;
    pthread_mutex_t mu;
    uint32_t open_max;
    uint32_t open_count;
    struct log_file *lru_head; /* most recently used */
    struct log_file *lru_tail;
    uint32_t file_count; /* live or pinned objects, for the destroy check */
};

struct log_files *log_files_create(struct io *io, uint32_t open_max)
{
    ASSERT(io != NULL);
    ASSERT(open_max >= 1);
    struct log_files *c = xcalloc(1, sizeof(*c));
    c->io = io;
    c->open_max = open_max;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void log_files_destroy(struct log_files *c)
{
    ASSERT(c->file_count == 0);
    ASSERT(c->open_count == 0);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

uint32_t log_files_open_count(struct log_files *c)
{
    pthread_mutex_lock(&c->mu);
    uint32_t n = c->open_count;
    pthread_mutex_unlock(&c->mu);
    return n;
}

struct io_file *log_file_io(const struct log_file *f)
{
    ASSERT(f->pins > 0);
    return f->io;
}

int log_file_fd(const struct log_file *f)
{
    ASSERT(f->pins > 0);
    return io_fd(f->io);
}

static void lru_remove(struct log_files *c, struct log_file *f)
{
    ASSERT(f->in_lru);
    if (f->lru_prev)
        f->lru_prev->lru_next = f->lru_next;
    else
        c->lru_head = f->lru_next;
    if (f->lru_next)
        f->lru_next->lru_prev = f->lru_prev;
    else
        c->lru_tail = f->lru_prev;
    f->lru_prev = f->lru_next = NULL;
    f->in_lru = false;
}

static void lru_push(struct log_files *c, struct log_file *f)
{
    ASSERT(!f->in_lru && f->pins == 0);
    f->lru_prev = NULL;
    f->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = f;
    else
        c->lru_tail = f;
    c->lru_head = f;
    f->in_lru = true;
}

static void close_file(struct log_files *c, struct log_file *f)
{
    ASSERT(f->io != NULL && f->pins == 0);
    io_close(f->io);
    f->io = NULL;
    c->open_count--;
}

/* Closes least recently used unpinned files until there is room for `room` more. */
static void evict(struct log_files *c, uint32_t room)
{
    while (c->lru_tail != NULL && c->open_count + room > c->open_max) {
        struct log_file *f = c->lru_tail;
        lru_remove(c, f);
        close_file(c, f);
    }
}

struct log_file *files_new(struct log_files *c, const char *path)
{
    ASSERT(path != NULL);
    struct log_file *f = xcalloc(1, sizeof(*f));
    f->cache = c;
    f->path = xstrdup(path);
    f->live = true;
    pthread_mutex_lock(&c->mu);
    c->file_count++;
    pthread_mutex_unlock(&c->mu);
    return f;
}

static void free_file(struct log_files *c, struct log_file *f)
{
    ASSERT(f->pins == 0 && !f->live);
    if (f->in_lru)
        lru_remove(c, f);
    if (f->io)
        close_file(c, f);
    c->file_count--;
    free(f->path);
    free(f);
}

int files_pin(struct log_file *f, bool create)
{
    struct log_files *c = f->cache;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    ASSERT(f->live || f->io != NULL);
    if (f->io == NULL) {
        evict(c, 1);
        int flags = IO_RDWR | (create ? IO_CREATE : 0);
        rc = io_open(c->io, f->path, flags, &f->io);
        if (rc < 0) {
            f->io = NULL;
            goto fail;
        }
        c->open_count++;
    } else if (f->in_lru) {
        lru_remove(c, f);
    }
    f->pins++;
fail:
    pthread_mutex_unlock(&c->mu);
    return rc < 0 ? rc : 0;
}

void files_unpin(struct log_file *f)
{
    struct log_files *c = f->cache;
    pthread_mutex_lock(&c->mu);
    ASSERT(f->pins > 0);
    f->pins--;
    if (f->pins == 0) {
        if (!f->live) {
            free_file(c, f);
        } else {
            lru_push(c, f);
            evict(c, 0);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void files_drop(struct log_file *f)
{
    struct log_files *c = f->cache;
    pthread_mutex_lock(&c->mu);
    ASSERT(f->live);
    f->live = false;
    if (f->pins == 0)
        free_file(c, f);
    pthread_mutex_unlock(&c->mu);
}
