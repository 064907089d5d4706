/*
 * io_sim: the simulated disk of io_sim.h, an in-memory filesystem that models crashes.
 *
 * Files and directories are inodes. A directory entry names an inode and an open handle refers
 * to the inode, so a removed file stays readable through a handle opened before, as on POSIX.
 * Each inode has a current state (what reads see) and a durable state (what survives a crash):
 * file content, or directory entries. Every operation that changes a current state also queues
 * a pending operation in one global list, in issue order; io_sync() and io_sync_dir() move
 * pending operations into the durable state, and a crash rebuilds every current state from the
 * durable state plus a prefix of the pending list.
 *
 * Invariants:
 * - An inode lives while something refers to it: a current or durable directory entry, an
 *   open handle, a pending directory operation, or (for "/") the simulator itself. Pending data
 *   operations belong to their inode and die with it, since an inode nothing refers to can
 *   never be reached again, crash or not.
 * - The durable entries of a directory are always its current entries after some prefix of
 *   the directory operations that touched it: io_sync_dir() also applies every earlier pending
 *   operation that shares a directory with one it applies.
 * - One mutex guards all state. It is never held while a caller's io_list_dir callback runs.
 *
 * It must never touch the real filesystem.
 */
#include "io/io_sim.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"
#include "io/io_impl.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define IO_SIM_KINDS 7

STATIC_ASSERT(IO_SIM_ALL == (1 << IO_SIM_KINDS) - 1, "one counter per operation kind");

/* Bytes of file content, growable; bytes past size are garbage and zeroed on growth. */
struct content {
    uint8_t *data;
    uint64_t size;
    uint64_t cap;
};

struct entry {
    char *name; /* owned */
    struct inode *ino;
};

/* Directory entries sorted by name; each entry holds one reference on its inode, and a current
 * entry also one link (what keeps a file's space in use). */
struct entries {
    struct entry *v;
    size_t len;
    size_t cap;
    bool current; /* a directory's current entries, not its durable ones */
};

enum op_type {
    OP_WRITE,    /* file: data at off */
    OP_TRUNCATE, /* file: size becomes off */
    OP_ALLOCATE, /* file: size becomes at least off + len */
    OP_LINK,     /* dir: name -> ino (create, mkdir) */
    OP_UNLINK,   /* dir: name removed (remove, rmdir) */
    OP_RENAME,   /* dir2: name2 -> ino, replacing; dir: name removed */
};

struct op {
    enum op_type type;
    struct op *prev, *next;           /* the global pending list */
    struct op *file_prev, *file_next; /* the inode's pending data operations */
    struct inode *ino;                /* data ops: the file; LINK/RENAME: the target */
    struct inode *dir, *dir2;         /* directory ops (dir2 only for RENAME) */
    char *name, *name2;               /* owned */
    uint64_t off;
    uint64_t len;
    uint8_t data[]; /* OP_WRITE: len bytes */
};

struct inode {
    uint64_t refs;
    uint64_t links;   /* current directory entries naming it */
    uint64_t handles; /* open, non-stale handles */
    bool is_dir;
    struct content cur, dur;                /* files */
    struct entries cur_dir, dur_dir;        /* directories */
    struct op *pending_head, *pending_tail; /* files: pending data ops, oldest first */
    struct inode *prev, *next;              /* every live inode */
    bool scatter_stop; /* during a scattered crash: a later write of it can no longer land */
};

struct sim_file {
    struct io_file base;
    struct inode *ino; /* NULL once a crash has made the handle stale */
    bool writable;
    bool sync_failed; /* a failed io_sync is sticky for the handle */
    struct sim_file *prev, *next;
};

struct io_sim {
    struct io io;
    pthread_mutex_t mu;
    struct inode *root;
    struct inode *inodes; /* every live inode */
    uint64_t inode_count;
    struct op *head, *tail; /* pending operations, oldest first */
    uint64_t pending_count;
    struct sim_file *files;  /* every open handle, stale ones included */
    uint64_t used_bytes;     /* current sizes of the files in use (see in_use) */
    uint64_t capacity_bytes; /* 0: no limit */
    uint64_t op_counts[IO_SIM_KINDS];
    unsigned fail_kinds;
    uint64_t fail_left;
    int fail_err;
    uint64_t faults; /* errors injected or for want of space, so far */
};

static const struct io_ops sim_ops;

static struct io_sim *to_sim(struct io *io)
{
    ASSERT(io != NULL);
    ASSERT(io->ops == &sim_ops);
    return CONTAINER_OF(io, struct io_sim, io);
}

static struct sim_file *to_file(struct io_file *f)
{
    ASSERT(f != NULL);
    ASSERT(f->io->ops == &sim_ops);
    return CONTAINER_OF(f, struct sim_file, base);
}

static void lock(struct io_sim *s)
{
    int rc = pthread_mutex_lock(&s->mu);
    ASSERT(rc == 0);
}

static void unlock(struct io_sim *s)
{
    int rc = pthread_mutex_unlock(&s->mu);
    ASSERT(rc == 0);
}

/* ---- content ----------------------------------------------------------------------------- */

static void content_reserve(struct content *c, uint64_t size)
{
    ASSERT(size <= IO_SIM_FILE_BYTES_MAX);
    if (size <= c->cap)
        return;
    uint64_t cap = c->cap < 64 ? 64 : c->cap;
    while (cap < size)
        cap *= 2;
    c->data = xrealloc(c->data, (size_t)cap);
    c->cap = cap;
}

static void content_resize(struct content *c, uint64_t size)
{
    if (size > c->size) {
        content_reserve(c, size);
        memset(c->data + c->size, 0, (size_t)(size - c->size));
    }
    c->size = size;
}

static void content_write(struct content *c, uint64_t off, const uint8_t *p, uint64_t n)
{
    ASSERT(off + n <= IO_SIM_FILE_BYTES_MAX);
    if (n == 0)
        return;
    if (off + n > c->size)
        content_resize(c, off + n);
    memcpy(c->data + off, p, (size_t)n);
}

static void content_assign(struct content *dst, const struct content *src)
{
    content_reserve(dst, src->size);
    if (src->size > 0)
        memcpy(dst->data, src->data, (size_t)src->size);
    dst->size = src->size;
}

/* ---- inodes and entries ------------------------------------------------------------------ */

static void inode_unref(struct io_sim *s, struct inode *ino);

static void inode_ref(struct inode *ino)
{
    ASSERT(ino != NULL);
    ino->refs++;
    ASSERT(ino->refs != 0);
}

/* A file takes space while a current entry names it or a handle has it open, as on POSIX;
 * a pending operation or a durable entry may keep the inode itself but not its space. */
static bool in_use(const struct inode *ino)
{
    return ino->links > 0 || ino->handles > 0;
}

static void use_change(struct io_sim *s, struct inode *ino, int links_delta, int handles_delta)
{
    ASSERT(links_delta >= 0 || ino->links > 0);
    ASSERT(handles_delta >= 0 || ino->handles > 0);
    bool was = in_use(ino);
    ino->links = (uint64_t)((int64_t)ino->links + links_delta);
    ino->handles = (uint64_t)((int64_t)ino->handles + handles_delta);
    if (was && !in_use(ino)) {
        ASSERT(s->used_bytes >= ino->cur.size);
        s->used_bytes -= ino->cur.size;
    } else if (!was && in_use(ino)) {
        s->used_bytes += ino->cur.size;
    }
}

/* Sets a file's current size in the capacity accounting, before its content changes. */
static void account_resize(struct io_sim *s, struct inode *ino, uint64_t new_size)
{
    if (!in_use(ino))
        return;
    ASSERT(s->used_bytes >= ino->cur.size);
    s->used_bytes = s->used_bytes - ino->cur.size + new_size;
}

static size_t entries_search(const struct entries *e, const char *name, bool *found)
{
    size_t lo = 0;
    size_t hi = e->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->v[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct inode *entries_get(const struct entries *e, const char *name)
{
    bool found;
    size_t i = entries_search(e, name, &found);
    return found ? e->v[i].ino : NULL;
}

/* Points name at ino, replacing (and releasing) whatever it named before. */
static void entries_set(struct io_sim *s, struct entries *e, const char *name, struct inode *ino)
{
    bool found;
    size_t i = entries_search(e, name, &found);
    inode_ref(ino);
    if (e->current)
        use_change(s, ino, 1, 0);
    if (found) {
        struct inode *old = e->v[i].ino;
        e->v[i].ino = ino;
        if (e->current)
            use_change(s, old, -1, 0);
        inode_unref(s, old);
        return;
    }
    if (e->len == e->cap) {
        e->cap = e->cap < 8 ? 8 : e->cap * 2;
        e->v = xrealloc(e->v, e->cap * sizeof(e->v[0]));
    }
    memmove(&e->v[i + 1], &e->v[i], (e->len - i) * sizeof(e->v[0]));
    e->v[i] = (struct entry){.name = xstrdup(name), .ino = ino};
    e->len++;
}

/* Removes name; false if it was not there. */
static bool entries_del(struct io_sim *s, struct entries *e, const char *name)
{
    bool found;
    size_t i = entries_search(e, name, &found);
    if (!found)
        return false;
    struct entry gone = e->v[i];
    memmove(&e->v[i], &e->v[i + 1], (e->len - i - 1) * sizeof(e->v[0]));
    e->len--;
    free(gone.name);
    if (e->current)
        use_change(s, gone.ino, -1, 0);
    inode_unref(s, gone.ino);
    return true;
}

static void entries_clear(struct io_sim *s, struct entries *e)
{
    /* Detach first: releasing a child may free inodes, never this array. */
    struct entries old = *e;
    *e = (struct entries){.current = old.current};
    for (size_t i = 0; i < old.len; i++) {
        free(old.v[i].name);
        if (old.current)
            use_change(s, old.v[i].ino, -1, 0);
        inode_unref(s, old.v[i].ino);
    }
    free(old.v);
}

static void entries_assign(struct io_sim *s, struct entries *dst, const struct entries *src)
{
    struct entries old = *dst;
    dst->len = 0;
    dst->cap = src->len;
    dst->v = xmalloc((src->len == 0 ? 1 : src->len) * sizeof(dst->v[0]));
    for (size_t i = 0; i < src->len; i++) {
        inode_ref(src->v[i].ino);
        if (dst->current)
            use_change(s, src->v[i].ino, 1, 0);
        dst->v[i] = (struct entry){.name = xstrdup(src->v[i].name), .ino = src->v[i].ino};
    }
    dst->len = src->len;
    entries_clear(s, &old);
}

static struct inode *inode_new(struct io_sim *s, bool is_dir)
{
    ASSERT(s->inode_count < IO_SIM_INODES_MAX);
    struct inode *ino = xcalloc(1, sizeof(*ino));
    ino->is_dir = is_dir;
    ino->cur_dir.current = true;
    ino->next = s->inodes;
    if (s->inodes != NULL)
        s->inodes->prev = ino;
    s->inodes = ino;
    s->inode_count++;
    return ino;
}

static void list_unlink(struct io_sim *s, struct op *op)
{
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        s->head = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    else
        s->tail = op->prev;
    op->prev = op->next = NULL;
    ASSERT(s->pending_count > 0);
    s->pending_count--;
}

static void file_list_unlink(struct op *op)
{
    struct inode *ino = op->ino;
    if (op->file_prev != NULL)
        op->file_prev->file_next = op->file_next;
    else
        ino->pending_head = op->file_next;
    if (op->file_next != NULL)
        op->file_next->file_prev = op->file_prev;
    else
        ino->pending_tail = op->file_prev;
    op->file_prev = op->file_next = NULL;
}

static bool is_data_op(const struct op *op)
{
    return op->type == OP_WRITE || op->type == OP_TRUNCATE || op->type == OP_ALLOCATE;
}

/* Frees an operation already taken off every list, releasing the references it held. */
static void op_free(struct io_sim *s, struct op *op)
{
    if (!is_data_op(op)) {
        if (op->ino != NULL)
            inode_unref(s, op->ino);
        if (op->dir != NULL)
            inode_unref(s, op->dir);
        if (op->dir2 != NULL)
            inode_unref(s, op->dir2);
    }
    free(op->name);
    free(op->name2);
    free(op);
}

/* Drops a file's pending data operations without applying them. */
static void drop_pending_data(struct io_sim *s, struct inode *ino)
{
    while (ino->pending_head != NULL) {
        struct op *op = ino->pending_head;
        file_list_unlink(op);
        list_unlink(s, op);
        op_free(s, op);
    }
}

static void inode_unref(struct io_sim *s, struct inode *ino)
{
    ASSERT(ino->refs > 0);
    if (--ino->refs > 0)
        return;
    ASSERT(ino != s->root);
    drop_pending_data(s, ino);
    entries_clear(s, &ino->cur_dir);
    entries_clear(s, &ino->dur_dir);
    ASSERT(!in_use(ino));
    free(ino->cur.data);
    free(ino->dur.data);
    if (ino->prev != NULL)
        ino->prev->next = ino->next;
    else
        s->inodes = ino->next;
    if (ino->next != NULL)
        ino->next->prev = ino->prev;
    s->inode_count--;
    free(ino);
}

/* ---- pending operations ------------------------------------------------------------------ */

static struct op *op_new(enum op_type type, size_t data_bytes)
{
    struct op *op = xcalloc(1, sizeof(*op) + data_bytes);
    op->type = type;
    return op;
}

static void op_push(struct io_sim *s, struct op *op)
{
    op->prev = s->tail;
    op->next = NULL;
    if (s->tail != NULL)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    s->pending_count++;
    if (!is_data_op(op))
        return;
    struct inode *ino = op->ino;
    op->file_prev = ino->pending_tail;
    if (ino->pending_tail != NULL)
        ino->pending_tail->file_next = op;
    else
        ino->pending_head = op;
    ino->pending_tail = op;
}

static void push_data_op(struct io_sim *s, struct inode *ino, enum op_type type, uint64_t off,
                         uint64_t len, const void *data)
{
    ASSERT(!ino->is_dir);
    struct op *op = op_new(type, type == OP_WRITE ? (size_t)len : 0);
    op->ino = ino;
    op->off = off;
    op->len = len;
    if (type == OP_WRITE)
        memcpy(op->data, data, (size_t)len);
    op_push(s, op);
}

/* Queues a directory operation; it holds references on every inode it names. */
static void push_dir_op(struct io_sim *s, enum op_type type, struct inode *dir, const char *name,
                        struct inode *dir2, const char *name2, struct inode *ino)
{
    ASSERT(type == OP_LINK || type == OP_UNLINK || type == OP_RENAME);
    ASSERT(dir != NULL && dir->is_dir);
    struct op *op = op_new(type, 0);
    op->dir = dir;
    inode_ref(dir);
    op->name = xstrdup(name);
    if (dir2 != NULL) {
        op->dir2 = dir2;
        inode_ref(dir2);
        op->name2 = xstrdup(name2);
    }
    if (ino != NULL) {
        op->ino = ino;
        inode_ref(ino);
    }
    op_push(s, op);
}

/* Applies op to the durable state; a write keeps only its first keep_bytes bytes. */
static void op_apply(struct io_sim *s, struct op *op, uint64_t keep_bytes)
{
    bool removed;
    switch (op->type) {
    case OP_WRITE:
        content_write(&op->ino->dur, op->off, op->data, MIN(op->len, keep_bytes));
        return;
    case OP_TRUNCATE:
        content_resize(&op->ino->dur, op->off);
        return;
    case OP_ALLOCATE:
        if (op->ino->dur.size < op->off + op->len)
            content_resize(&op->ino->dur, op->off + op->len);
        return;
    case OP_LINK:
        entries_set(s, &op->dir->dur_dir, op->name, op->ino);
        return;
    case OP_UNLINK:
        removed = entries_del(s, &op->dir->dur_dir, op->name);
        ASSERT(removed);
        return;
    case OP_RENAME:
        entries_set(s, &op->dir2->dur_dir, op->name2, op->ino);
        removed = entries_del(s, &op->dir->dur_dir, op->name);
        ASSERT(removed);
        return;
    }
    UNREACHABLE();
}

/* ---- fault injection and paths ----------------------------------------------------------- */

/* Counts an operation of one kind; returns the injected error if this is the one to fail. */
static int begin_op(struct io_sim *s, unsigned kind)
{
    ASSERT(kind != 0 && (kind & (kind - 1)) == 0 && kind <= IO_SIM_ALL);
    s->op_counts[__builtin_ctz(kind)]++;
    if ((s->fail_kinds & kind) == 0)
        return 0;
    ASSERT(s->fail_left > 0);
    if (--s->fail_left > 0)
        return 0;
    s->fail_kinds = 0;
    s->faults++;
    return s->fail_err;
}

/* A path split into its parent directory and last name. For "/" itself dir is NULL. */
struct resolved {
    struct inode *dir;
    struct inode *ino; /* NULL if the last name does not exist */
    char name[IO_NAME_BYTES_MAX];
};

/*
 * Walks path from "/" (a relative path starts there too). Empty and "." components are
 * skipped; ".." is refused with -EINVAL since no caller needs it. A directory equal to
 * `forbid` on the way is refused with -EINVAL (a rename into its own subtree).
 */
static int resolve(struct io_sim *s, const char *path, struct inode *forbid, struct resolved *r)
{
    if (strnlen(path, IO_PATH_BYTES_MAX) >= IO_PATH_BYTES_MAX)
        return -ENAMETOOLONG;
    r->dir = NULL;
    r->ino = s->root;
    r->name[0] = '\0';
    const char *p = path;
    for (;;) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            return 0;
        size_t n = strcspn(p, "/");
        if (n >= IO_NAME_BYTES_MAX)
            return -ENAMETOOLONG;
        if (n == 1 && p[0] == '.') {
            p += n;
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return -EINVAL;
        if (r->ino == NULL)
            return -ENOENT;
        if (!r->ino->is_dir)
            return -ENOTDIR;
        if (r->ino == forbid)
            return -EINVAL;
        r->dir = r->ino;
        memcpy(r->name, p, n);
        r->name[n] = '\0';
        r->ino = entries_get(&r->dir->cur_dir, r->name);
        p += n;
    }
}

static bool space_ok(const struct io_sim *s, uint64_t old_size, uint64_t new_size)
{
    if (s->capacity_bytes == 0 || new_size <= old_size)
        return true;
    return s->used_bytes + (new_size - old_size) <= s->capacity_bytes;
}

/* ---- files ------------------------------------------------------------------------------- */

static int sim_open(struct io *io, const char *path, int flags, struct io_file **out)
{
    ASSERT(io_flags_valid(flags));
    ASSERT(out != NULL);
    struct io_sim *s = to_sim(io);
    struct resolved r;
    lock(s);
    int rc = begin_op(s, IO_SIM_OPEN);
    if (rc == 0)
        rc = resolve(s, path, NULL, &r);
    if (rc < 0)
        goto done;
    if (r.ino != NULL && r.ino->is_dir) {
        rc = -EISDIR;
    } else if (r.ino != NULL && (flags & IO_EXCL)) {
        rc = -EEXIST;
    } else if (r.ino == NULL && !(flags & IO_CREATE)) {
        rc = -ENOENT;
    } else if (r.ino == NULL && s->inode_count >= IO_SIM_INODES_MAX) {
        rc = -ENOSPC;
    } else if (r.ino == NULL) {
        r.ino = inode_new(s, false);
        entries_set(s, &r.dir->cur_dir, r.name, r.ino);
        push_dir_op(s, OP_LINK, r.dir, r.name, NULL, NULL, r.ino);
    }
    if (rc < 0)
        goto done;
    struct sim_file *f = xcalloc(1, sizeof(*f));
    f->base.io = io;
    f->ino = r.ino;
    inode_ref(r.ino);
    use_change(s, r.ino, 0, 1);
    f->writable = (flags & IO_RDWR) != 0;
    f->next = s->files;
    if (s->files != NULL)
        s->files->prev = f;
    s->files = f;
    *out = &f->base;
done:
    unlock(s);
    return rc;
}

static void sim_close(struct io_file *file)
{
    struct sim_file *f = to_file(file);
    struct io_sim *s = to_sim(file->io);
    lock(s);
    if (f->ino != NULL) {
        use_change(s, f->ino, 0, -1);
        inode_unref(s, f->ino);
    }
    if (f->prev != NULL)
        f->prev->next = f->next;
    else
        s->files = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    unlock(s);
    free(f);
}

static ssize_t sim_pread(struct io_file *file, void *buf, size_t n, uint64_t off)
{
    struct sim_file *f = to_file(file);
    struct io_sim *s = to_sim(file->io);
    ssize_t rc = 0;
    lock(s);
    if (f->ino == NULL) {
        rc = -EIO;
        goto done;
    }
    rc = begin_op(s, IO_SIM_READ);
    if (rc < 0 || off >= f->ino->cur.size)
        goto done;
    uint64_t got = MIN((uint64_t)n, f->ino->cur.size - off);
    memcpy(buf, f->ino->cur.data + off, (size_t)got);
    rc = (ssize_t)got;
done:
    unlock(s);
    return rc;
}

/* The checks every modifying call on a handle makes, in order; 0 to go ahead. */
static int begin_modify(struct io_sim *s, struct sim_file *f, unsigned kind)
{
    if (f->ino == NULL)
        return -EIO;
    int rc = begin_op(s, kind);
    if (rc < 0)
        return rc;
    return f->writable ? 0 : -EBADF;
}

/* Checks that [off, off+len) fits a simulated file and the disk; *new_size is the file's size
 * after a write or allocation of that range. -EFBIG or -ENOSPC otherwise. */
static int extent_ok(struct io_sim *s, const struct inode *ino, uint64_t off, uint64_t len,
                     uint64_t *new_size)
{
    if (off > IO_SIM_FILE_BYTES_MAX || len > IO_SIM_FILE_BYTES_MAX - off)
        return -EFBIG;
    *new_size = MAX(ino->cur.size, off + len);
    if (space_ok(s, ino->cur.size, *new_size))
        return 0;
    s->faults++;
    return -ENOSPC;
}

static ssize_t sim_pwrite(struct io_file *file, const void *buf, size_t n, uint64_t off)
{
    struct sim_file *f = to_file(file);
    struct io_sim *s = to_sim(file->io);
    lock(s);
    ssize_t rc = begin_modify(s, f, IO_SIM_WRITE);
    if (rc < 0 || n == 0)
        goto done;
    struct inode *ino = f->ino;
    uint64_t new_size;
    rc = extent_ok(s, ino, off, n, &new_size);
    if (rc < 0)
        goto done;
    account_resize(s, ino, new_size);
    content_write(&ino->cur, off, buf, n);
    push_data_op(s, ino, OP_WRITE, off, n, buf);
    rc = (ssize_t)n;
done:
    unlock(s);
    return rc;
}

static int sim_sync(struct io_file *file)
{
    struct sim_file *f = to_file(file);
    struct io_sim *s = to_sim(file->io);
    lock(s);
    int rc = f->ino == NULL ? -EIO : begin_op(s, IO_SIM_SYNC);
    if (rc < 0 && f->ino != NULL) {
        /* As Linux may drop dirty pages after a failed fsync: the data never becomes durable
         * through this handle, and it says so on every later sync. */
        drop_pending_data(s, f->ino);
        f->sync_failed = true;
    }
    if (rc == 0 && f->sync_failed)
        rc = -EIO;
    if (rc < 0)
        goto done;
    struct inode *ino = f->ino;
    while (ino->pending_head != NULL) {
        struct op *op = ino->pending_head;
        op_apply(s, op, op->len);
        file_list_unlink(op);
        list_unlink(s, op);
        op_free(s, op);
    }
done:
    unlock(s);
    return rc;
}

static int sim_truncate(struct io_file *file, uint64_t size)
{
    struct sim_file *f = to_file(file);
    struct io_sim *s = to_sim(file->io);
    lock(s);
    int rc = begin_modify(s, f, IO_SIM_TRUNCATE);
    if (rc < 0)
        goto done;
    if (size > IO_SIM_FILE_BYTES_MAX) {
        rc = -EFBIG;
        goto done;
    }
    /* Growing by truncate makes a sparse file on a real disk, so it takes no space. */
    account_resize(s, f->ino, size);
    content_resize(&f->ino->cur, size);
    push_data_op(s, f->ino, OP_TRUNCATE, size, 0, NULL);
done:
    unlock(s);
    return rc;
}

static int sim_allocate(struct io_file *file, uint64_t off, uint64_t len)
{
    struct sim_file *f = to_file(file);
    struct io_sim *s = to_sim(file->io);
    lock(s);
    int rc = begin_modify(s, f, IO_SIM_ALLOCATE);
    if (rc < 0 || len == 0)
        goto done;
    struct inode *ino = f->ino;
    uint64_t new_size;
    rc = extent_ok(s, ino, off, len, &new_size);
    if (rc < 0)
        goto done;
    account_resize(s, ino, new_size);
    content_resize(&ino->cur, new_size);
    push_data_op(s, ino, OP_ALLOCATE, off, len, NULL);
done:
    unlock(s);
    return rc;
}

/* The simulated disk has no page cache: only a stale handle is refused. */
static int sim_drop_cache(struct io_file *file, uint64_t off, uint64_t len)
{
    (void)off;
    (void)len;
    struct sim_file *f = to_file(file);
    struct io_sim *s = to_sim(file->io);
    lock(s);
    int rc = f->ino == NULL ? -EIO : 0;
    unlock(s);
    return rc;
}

static int sim_size(struct io_file *file, uint64_t *size)
{
    struct sim_file *f = to_file(file);
    struct io_sim *s = to_sim(file->io);
    lock(s);
    int rc = -EIO;
    if (f->ino != NULL) {
        *size = f->ino->cur.size;
        rc = 0;
    }
    unlock(s);
    return rc;
}

static int sim_fd(struct io_file *file)
{
    ASSERT(to_file(file) != NULL);
    return -1;
}

/* ---- directories ------------------------------------------------------------------------- */

static int sim_rename(struct io *io, const char *from, const char *to)
{
    struct io_sim *s = to_sim(io);
    struct resolved a, b;
    lock(s);
    int rc = begin_op(s, IO_SIM_DIROP);
    if (rc == 0)
        rc = resolve(s, from, NULL, &a);
    if (rc == 0 && a.ino == NULL)
        rc = -ENOENT;
    if (rc == 0 && a.dir == NULL)
        rc = -EBUSY;
    if (rc == 0)
        rc = resolve(s, to, a.ino->is_dir ? a.ino : NULL, &b);
    if (rc == 0 && b.dir == NULL)
        rc = -EBUSY;
    if (rc < 0 || a.ino == b.ino)
        goto done;
    if (b.ino != NULL && a.ino->is_dir && !b.ino->is_dir)
        rc = -ENOTDIR;
    else if (b.ino != NULL && !a.ino->is_dir && b.ino->is_dir)
        rc = -EISDIR;
    else if (b.ino != NULL && b.ino->is_dir && b.ino->cur_dir.len > 0)
        rc = -ENOTEMPTY;
    if (rc < 0)
        goto done;
    push_dir_op(s, OP_RENAME, a.dir, a.name, b.dir, b.name, a.ino);
    entries_set(s, &b.dir->cur_dir, b.name, a.ino);
    bool removed = entries_del(s, &a.dir->cur_dir, a.name);
    ASSERT(removed);
done:
    unlock(s);
    return rc;
}

/* remove (want_dir false) and rmdir (want_dir true). */
static int sim_unlink(struct io *io, const char *path, bool want_dir)
{
    struct io_sim *s = to_sim(io);
    struct resolved r;
    lock(s);
    int rc = begin_op(s, IO_SIM_DIROP);
    if (rc == 0)
        rc = resolve(s, path, NULL, &r);
    if (rc < 0)
        goto done;
    if (r.dir == NULL)
        rc = -EBUSY;
    else if (r.ino == NULL)
        rc = -ENOENT;
    else if (!want_dir && r.ino->is_dir)
        rc = -EISDIR;
    else if (want_dir && !r.ino->is_dir)
        rc = -ENOTDIR;
    else if (want_dir && r.ino->cur_dir.len > 0)
        rc = -ENOTEMPTY;
    if (rc < 0)
        goto done;
    push_dir_op(s, OP_UNLINK, r.dir, r.name, NULL, NULL, NULL);
    bool removed = entries_del(s, &r.dir->cur_dir, r.name);
    ASSERT(removed);
done:
    unlock(s);
    return rc;
}

static int sim_remove(struct io *io, const char *path)
{
    return sim_unlink(io, path, false);
}

static int sim_rmdir(struct io *io, const char *path)
{
    return sim_unlink(io, path, true);
}

static int sim_mkdir(struct io *io, const char *path)
{
    struct io_sim *s = to_sim(io);
    struct resolved r;
    lock(s);
    int rc = begin_op(s, IO_SIM_DIROP);
    if (rc == 0)
        rc = resolve(s, path, NULL, &r);
    if (rc < 0)
        goto done;
    if (r.ino != NULL) {
        rc = -EEXIST;
        goto done;
    }
    if (s->inode_count >= IO_SIM_INODES_MAX) {
        rc = -ENOSPC;
        goto done;
    }
    struct inode *ino = inode_new(s, true);
    entries_set(s, &r.dir->cur_dir, r.name, ino);
    push_dir_op(s, OP_LINK, r.dir, r.name, NULL, NULL, ino);
done:
    unlock(s);
    return rc;
}

static int sim_exists(struct io *io, const char *path, bool *is_dir)
{
    struct io_sim *s = to_sim(io);
    struct resolved r;
    lock(s);
    int rc = resolve(s, path, NULL, &r);
    if (rc == 0 && r.ino == NULL)
        rc = -ENOENT;
    if (rc == 0 && is_dir != NULL)
        *is_dir = r.ino->is_dir;
    unlock(s);
    return rc;
}

static int sim_list_dir(struct io *io, const char *path, io_list_fn fn, void *ctx)
{
    struct io_sim *s = to_sim(io);
    struct resolved r;
    char **names = NULL;
    size_t count = 0;
    lock(s);
    int rc = resolve(s, path, NULL, &r);
    if (rc == 0 && r.ino == NULL)
        rc = -ENOENT;
    if (rc == 0 && !r.ino->is_dir)
        rc = -ENOTDIR;
    if (rc == 0 && r.ino->cur_dir.len > IO_LIST_ENTRIES_MAX)
        rc = ERR_TOO_LARGE;
    if (rc == 0) {
        /* A snapshot, so the callback runs unlocked and may call back into the io. */
        count = r.ino->cur_dir.len;
        names = xmalloc((count == 0 ? 1 : count) * sizeof(names[0]));
        for (size_t i = 0; i < count; i++)
            names[i] = xstrdup(r.ino->cur_dir.v[i].name);
    }
    unlock(s);
    for (size_t i = 0; i < count; i++) {
        if (rc == 0)
            rc = fn(ctx, names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

static bool in_set(struct inode *const *dirs, size_t n, const struct inode *dir)
{
    for (size_t i = 0; i < n; i++)
        if (dirs[i] == dir)
            return true;
    return false;
}

static bool op_touches(const struct op *op, struct inode *const *dirs, size_t n)
{
    return in_set(dirs, n, op->dir) || (op->dir2 != NULL && in_set(dirs, n, op->dir2));
}

static void add_dir(struct inode ***dirs, size_t *n, size_t *cap, struct inode *dir)
{
    if (dir == NULL || in_set(*dirs, *n, dir))
        return;
    if (*n == *cap) {
        *cap *= 2;
        *dirs = xrealloc(*dirs, *cap * sizeof(**dirs));
    }
    (*dirs)[(*n)++] = dir;
}

/*
 * Makes the pending directory operations on dir durable, together with every earlier one that
 * shares a directory with an operation made durable, so each directory's durable entries stay
 * a prefix of its history (a rename touches two directories).
 */
static void sync_dir_ops(struct io_sim *s, struct inode *dir)
{
    size_t n = 1;
    size_t cap = 8;
    struct inode **dirs = xmalloc(cap * sizeof(dirs[0]));
    dirs[0] = dir;
    /* Taken off the pending list newest first and pushed on the front of `marked` (through
     * next), so `marked` ends oldest first. */
    struct op *marked = NULL;
    for (struct op *op = s->tail; op != NULL;) {
        struct op *prev = op->prev;
        if (!is_data_op(op) && op_touches(op, dirs, n)) {
            add_dir(&dirs, &n, &cap, op->dir);
            add_dir(&dirs, &n, &cap, op->dir2);
            list_unlink(s, op);
            op->next = marked;
            marked = op;
        }
        op = prev;
    }
    free(dirs);
    /* Every op holds its own references while it is applied, so nothing it names is freed. */
    while (marked != NULL) {
        struct op *op = marked;
        marked = op->next;
        op_apply(s, op, 0);
        op_free(s, op);
    }
}

static int sim_sync_dir(struct io *io, const char *path)
{
    struct io_sim *s = to_sim(io);
    struct resolved r;
    lock(s);
    int rc = begin_op(s, IO_SIM_SYNC);
    if (rc == 0)
        rc = resolve(s, path, NULL, &r);
    if (rc == 0 && r.ino == NULL)
        rc = -ENOENT;
    if (rc == 0 && !r.ino->is_dir)
        rc = -ENOTDIR;
    if (rc == 0)
        sync_dir_ops(s, r.ino);
    unlock(s);
    return rc;
}

/* ---- crash ------------------------------------------------------------------------------- */

/* Applies to the durable state the sectors of write op that rng keeps, each on its own. */
static void op_apply_scattered(struct op *op, struct rng *rng)
{
    uint64_t at = op->off, end = op->off + op->len;

    while (at < end) {
        uint64_t next = MIN(end, (at / IO_SIM_SECTOR_BYTES + 1) * IO_SIM_SECTOR_BYTES);
        if (rng_chance(rng, 1, 2))
            content_write(&op->ino->dur, at, op->data + (at - op->off), next - at);
        at = next;
    }
}

/* The first keep_ops pending operations survive. Then either (scatter NULL) the first
 * tear_bytes of the next one if it is a write, or (scatter set) any sectors of the next one if
 * it is a write and, when reorder, of every later write up to its file's next truncate or
 * allocation. */
static void crash_locked(struct io_sim *s, uint64_t keep_ops, uint64_t tear_bytes,
                         struct rng *scatter, bool reorder)
{
    /* Pin every inode so nothing is freed while the lists are rebuilt. */
    uint64_t count = s->inode_count;
    struct inode **all = xmalloc((size_t)(count == 0 ? 1 : count) * sizeof(all[0]));
    size_t k = 0;
    for (struct inode *ino = s->inodes; ino != NULL; ino = ino->next) {
        inode_ref(ino);
        all[k++] = ino;
    }
    ASSERT(k == count);
    uint64_t i = 0;
    while (s->head != NULL) {
        struct op *op = s->head;
        if (i < keep_ops)
            op_apply(s, op, op->len);
        else if (scatter != NULL && op->type == OP_WRITE && !op->ino->scatter_stop &&
                 (reorder || i == keep_ops))
            op_apply_scattered(op, scatter);
        else if (scatter != NULL && is_data_op(op))
            op->ino->scatter_stop = true;
        else if (scatter == NULL && i == keep_ops && op->type == OP_WRITE)
            op_apply(s, op, tear_bytes);
        i++;
        if (is_data_op(op))
            file_list_unlink(op);
        list_unlink(s, op);
        op_free(s, op);
    }
    for (struct sim_file *f = s->files; f != NULL; f = f->next) {
        if (f->ino == NULL)
            continue;
        use_change(s, f->ino, 0, -1);
        inode_unref(s, f->ino);
        f->ino = NULL;
    }
    for (size_t j = 0; j < k; j++) {
        struct inode *ino = all[j];
        ino->scatter_stop = false;
        account_resize(s, ino, ino->dur.size);
        content_assign(&ino->cur, &ino->dur);
        entries_assign(s, &ino->cur_dir, &ino->dur_dir);
    }
    for (size_t j = 0; j < k; j++)
        inode_unref(s, all[j]);
    free(all);
    /* The capacity accounting is incremental; a crash is a cheap moment to check it whole. */
    uint64_t used = 0;
    for (struct inode *ino = s->inodes; ino != NULL; ino = ino->next)
        used += in_use(ino) ? ino->cur.size : 0;
    ASSERT(used == s->used_bytes);
}

uint64_t io_sim_pending_ops(struct io *io)
{
    struct io_sim *s = to_sim(io);
    lock(s);
    uint64_t n = s->pending_count;
    unlock(s);
    return n;
}

static struct op *pending_at(struct io_sim *s, uint64_t i)
{
    struct op *op = s->head;
    for (uint64_t j = 0; op != NULL && j < i; j++)
        op = op->next;
    return op;
}

uint64_t io_sim_pending_write_bytes(struct io *io, uint64_t i)
{
    struct io_sim *s = to_sim(io);
    lock(s);
    struct op *op = pending_at(s, i);
    uint64_t n = op != NULL && op->type == OP_WRITE ? op->len : 0;
    unlock(s);
    return n;
}

void io_sim_crash_at(struct io *io, uint64_t keep_ops, uint64_t tear_bytes)
{
    struct io_sim *s = to_sim(io);
    lock(s);
    crash_locked(s, keep_ops, tear_bytes, NULL, false);
    unlock(s);
}

void io_sim_crash(struct io *io, struct rng *rng)
{
    ASSERT(rng != NULL);
    struct io_sim *s = to_sim(io);
    lock(s);
    uint64_t keep_ops = rng_below(rng, s->pending_count + 1);
    struct op *next = pending_at(s, keep_ops);
    uint64_t tear_bytes = 0;
    if (next != NULL && next->type == OP_WRITE)
        tear_bytes = rng_below(rng, next->len + 1);
    crash_locked(s, keep_ops, tear_bytes, NULL, false);
    unlock(s);
}

void io_sim_crash_torn(struct io *io, struct rng *rng, bool reorder)
{
    ASSERT(rng != NULL);
    struct io_sim *s = to_sim(io);
    lock(s);
    crash_locked(s, rng_below(rng, s->pending_count + 1), 0, rng, reorder);
    unlock(s);
}

void io_sim_fail_nth(struct io *io, unsigned kinds, uint64_t nth, int err)
{
    ASSERT(kinds != 0 && (kinds & ~(unsigned)IO_SIM_ALL) == 0);
    ASSERT(nth >= 1 && err < 0);
    struct io_sim *s = to_sim(io);
    lock(s);
    s->fail_kinds = kinds;
    s->fail_left = nth;
    s->fail_err = err;
    unlock(s);
}

void io_sim_fail_clear(struct io *io)
{
    struct io_sim *s = to_sim(io);
    lock(s);
    s->fail_kinds = 0;
    s->fail_left = 0;
    unlock(s);
}

uint64_t io_sim_op_count(struct io *io, unsigned kinds)
{
    ASSERT((kinds & ~(unsigned)IO_SIM_ALL) == 0);
    struct io_sim *s = to_sim(io);
    uint64_t n = 0;
    lock(s);
    for (unsigned i = 0; i < IO_SIM_KINDS; i++)
        if (kinds & (1u << i))
            n += s->op_counts[i];
    unlock(s);
    return n;
}

void io_sim_set_capacity(struct io *io, uint64_t bytes)
{
    struct io_sim *s = to_sim(io);
    lock(s);
    s->capacity_bytes = bytes;
    unlock(s);
}

uint64_t io_sim_faults(struct io *io)
{
    struct io_sim *s = to_sim(io);
    lock(s);
    uint64_t n = s->faults;
    unlock(s);
    return n;
}

uint64_t io_sim_used_bytes(struct io *io)
{
    struct io_sim *s = to_sim(io);
    lock(s);
    uint64_t n = s->used_bytes;
    unlock(s);
    return n;
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void free_entries_raw(struct entries *e)
{
    for (size_t i = 0; i < e->len; i++)
        free(e->v[i].name);
    free(e->v);
}

static void sim_destroy(struct io *io)
{
    struct io_sim *s = to_sim(io);
    ASSERT(s->files == NULL);
    /* Everything goes at once, so references no longer matter. */
    while (s->head != NULL) {
        struct op *op = s->head;
        s->head = op->next;
        free(op->name);
        free(op->name2);
        free(op);
    }
    while (s->inodes != NULL) {
        struct inode *ino = s->inodes;
        s->inodes = ino->next;
        free_entries_raw(&ino->cur_dir);
        free_entries_raw(&ino->dur_dir);
        free(ino->cur.data);
        free(ino->dur.data);
        free(ino);
    }
    int rc = pthread_mutex_destroy(&s->mu);
    ASSERT(rc == 0);
    free(s);
}

static const struct io_ops sim_ops = {
    .open = sim_open,
    .close = sim_close,
    .pread = sim_pread,
    .pwrite = sim_pwrite,
    .sync = sim_sync,
    .truncate = sim_truncate,
    .allocate = sim_allocate,
    .drop_cache = sim_drop_cache,
    .size = sim_size,
    .fd = sim_fd,
    .rename = sim_rename,
    .remove = sim_remove,
    .mkdir = sim_mkdir,
    .rmdir = sim_rmdir,
    .exists = sim_exists,
    .list_dir = sim_list_dir,
    .sync_dir = sim_sync_dir,
    .destroy = sim_destroy,
};

struct io *io_sim_create(void)
{
    struct io_sim *s = xcalloc(1, sizeof(*s));
    s->io.ops = &sim_ops;
    int rc = pthread_mutex_init(&s->mu, NULL);
    ASSERT(rc == 0);
    s->root = inode_new(s, true);
    inode_ref(s->root); /* the simulator's own reference: "/" always exists */
    return &s->io;
}
