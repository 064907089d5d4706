/*
 * The reaper: a thread that removes deleted partition directories (already renamed to their
 * marked names) so that a delete never waits for the files of a large partition on the loop
 * thread.
 *
 * Owns its thread and a queue of paths. Removal is best effort: a directory that is gone
 * already is done, and one that fails is reported once and left marked for the next
 * start-up, which hands every marked directory to the reaper again. Destroying the reaper
 * abandons what is still queued for the same reason.
 *
 * Never: touches a directory that is not marked, or anything of the broker but its io (which
 * is thread-safe).
 */
#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "broker/broker_internal.h"
#include "io/io.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reaper_item {
    struct reaper_item *next;
    char path[];
};

struct reaper {
    struct io *io;
    bool threaded; /* false: reaper_add removes the directory at once (the simulator) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct reaper_item *head;
    struct reaper_item *tail;
    bool stopping;
};

struct remove_ctx {
    struct io *io;
    const char *dir;
};

static int remove_entry(void *ctx, const char *name)
{
    const struct remove_ctx *d = ctx;
    char path[IO_PATH_BYTES_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", d->dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int rc = io_remove(d->io, path);
    return rc == -ENOENT ? 0 : rc;
}

static void remove_dir(struct io *io, const char *dir)
{
    struct remove_ctx d = {.io = io, .dir = dir};
    int rc = io_list_dir(io, dir, remove_entry, &d);
    if (rc == 0)
        rc = io_rmdir(io, dir);
    if (rc < 0 && rc != -ENOENT)
        fprintf(stderr, "chronik: cannot remove %s: %s\n", dir, err_str(rc));
}

static void *reaper_main(void *arg)
{
    struct reaper *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->head == NULL && !r->stopping)
            pthread_cond_wait(&r->cond, &r->mu);
        if (r->stopping)
            break;
        struct reaper_item *it = r->head;
        r->head = it->next;
        if (r->head == NULL)
            r->tail = NULL;
        pthread_mutex_unlock(&r->mu);
        remove_dir(r->io, it->path);
        free(it);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

struct reaper *reaper_create(struct io *io, bool threaded)
{
    struct reaper *r = xcalloc(1, sizeof(*r));
    r->io = io;
    r->threaded = threaded;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (!threaded)
        return r;
    int rc = pthread_create(&r->thread, NULL, reaper_main, r);
    /* Thread creation fails only when the process is out of resources at start-up. */
    ASSERT(rc == 0);
    return r;
}

void reaper_add(struct reaper *r, const char *path)
{
    if (!r->threaded) {
        remove_dir(r->io, path);
        return;
    }
    size_t len = strlen(path);
    struct reaper_item *it = xmalloc(sizeof(*it) + len + 1);
    it->next = NULL;
    memcpy(it->path, path, len + 1);
    pthread_mutex_lock(&r->mu);
    if (r->tail != NULL)
        r->tail->next = it;
    else
        r->head = it;
    r->tail = it;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

void reaper_destroy(struct reaper *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
    if (r->threaded)
        pthread_join(r->thread, NULL);
    while (r->head != NULL) {
        struct reaper_item *it = r->head;
        r->head = it->next;
        free(it);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
    free(r);
}
