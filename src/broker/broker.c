/*
 * The broker's wiring and its topic registry.
 *
 * Owns: the loop, the listener, the flusher and its eventfd watch, the stop signals, the
 * metadata image and its file, one replica per partition (by topic name in an open-addressing
 * table) and the start-up opener. The io and the clock are the caller's.
 *
 * Start-up: the listener opens as soon as the metadata image is loaded and the group
 * coordinator's partitions are open (the coordinator loads from them). Every other partition
 * log is opened by BROKER_OPEN_THREADS opener threads: opening is a handful of fsyncs per
 * partition, and after a crash a scan of the log's tail, so doing it all before listening made
 * a restart with 10,000 partitions take seconds. A partition is served only once its log is
 * open, recovered and handed to the loop; until then it answers NOT_LEADER_OR_FOLLOWER, and a
 * partition whose log failed to open answers KAFKA_STORAGE_ERROR while the others serve.
 * Invariant: an opener thread touches only its job (the log it opens, through the thread-safe
 * io and file cache); the loop installs the result. Topic deletion and growth first wait for
 * the opener, so no opener thread ever works in a directory the loop changes.
 *
 * Clean shutdown: every replica is closed in two steps (replica_close_begin on the loop, then
 * replica_close_end on BROKER_CLOSE_THREADS closer threads): the loop fails waiters and ends
 * the Raft groups, the threads write and sync each log's files. A closer thread touches only
 * its replica's files and the file cache; the loop waits for them all before anything else
 * goes.
 *
 * Data directory: the metadata store (`metadata.image` and `metadata.journal`, see
 * cluster/metadata.h), one directory per partition, `<topic>-<partition>`, as Kafka names
 * them, and deleted partitions awaiting removal, `<topic>-<partition>.<id>-delete`.
 *
 * Metadata changes are committed on the loop thread, once per request: one journal append and
 * one sync however many topics the request changes; their count is bounded by the controller
 * mutation quota and the auto-create cap. Deleted partition directories are renamed at once
 * and removed by the reaper thread. At start-up, marked directories and partition directories
 * the metadata does not know (left by a crash in the middle of a delete) are renamed and
 * handed to the reaper, so a topic created again under an old name always starts empty.
 */
#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "broker/admin.h"
#include "broker/broker_internal.h"
#include "cluster/meta_controller.h"
#include "broker/meta_properties.h"
#include "io/io.h"
#include "net/loop_epoll.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#define TOPIC_SLOTS_MIN 64u

/* open_errors[p] of a partition another node hosts. */
#define OPEN_ELSEWHERE 1

/* The metadata group's log directory (cluster_node.c), never a topic's. */
#define META_LOG_DIR "__cluster_metadata-0"

/* Removed entries in the topic table; never dereferenced. */
static struct broker_topic tombstone;

struct broker_full {
    struct broker b;
    struct loop_epoll loop;
};

/* ---- topic table ------------------------------------------------------------------------- */

static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool topic_is(const struct broker_topic *t, const char *name, size_t len)
{
    return t != &tombstone && strlen(t->name) == len && memcmp(t->name, name, len) == 0;
}

struct broker_topic *broker_topic_find(struct broker *b, const char *name, size_t len)
{
    if (b->topic_slots == 0)
        return NULL;
    uint32_t mask = b->topic_slots - 1;
    for (uint32_t i = (uint32_t)name_hash(name, len) & mask;; i = (i + 1) & mask) {
        struct broker_topic *t = b->topics[i];
        if (t == NULL)
            return NULL;
        if (topic_is(t, name, len))
            return t;
    }
}

static void table_put(struct broker_topic **slots, uint32_t nslots, struct broker_topic *t)
{
    uint32_t mask = nslots - 1;
    uint32_t i = (uint32_t)name_hash(t->name, strlen(t->name)) & mask;
    while (slots[i] != NULL && slots[i] != &tombstone)
        i = (i + 1) & mask;
    slots[i] = t;
}

static void table_add(struct broker *b, struct broker_topic *t)
{
    /* Keep the load (live entries and tombstones alike) under one half. */
    if ((b->topic_count + 1) * 2 > b->topic_slots) {
        uint32_t n = b->topic_slots == 0 ? TOPIC_SLOTS_MIN : b->topic_slots * 2;
        struct broker_topic **slots = xcalloc(n, sizeof(*slots));
        for (uint32_t i = 0; i < b->topic_slots; i++)
            if (b->topics[i] != NULL && b->topics[i] != &tombstone)
                table_put(slots, n, b->topics[i]);
        free(b->topics);
        b->topics = slots;
        b->topic_slots = n;
    }
    table_put(b->topics, b->topic_slots, t);
    b->topic_count++;
}

static void table_remove(struct broker *b, struct broker_topic *t)
{
    uint32_t mask = b->topic_slots - 1;
    for (uint32_t i = (uint32_t)name_hash(t->name, strlen(t->name)) & mask;; i = (i + 1) & mask) {
        ASSERT(b->topics[i] != NULL);
        if (b->topics[i] == t) {
            b->topics[i] = &tombstone;
            /* The count keeps tombstones: they cost probes until the next resize. */
            return;
        }
    }
}

struct replica *broker_replica(struct broker *b, const char *name, size_t len, int32_t partition)
{
    struct broker_topic *t = broker_topic_find(b, name, len);
    if (t == NULL || partition < 0 || (uint32_t)partition >= t->partition_count)
        return NULL;
    return t->replicas[partition];
}

bool broker_topic_is_tombstone(const struct broker_topic *t)
{
    return t == &tombstone;
}

static void opener_want(struct broker *b, const struct broker_topic *t, uint32_t partition);

int16_t broker_replica_error(struct broker *b, const char *name, size_t len, int32_t partition)
{
    struct broker_topic *t = broker_topic_find(b, name, len);
    if (t == NULL || partition < 0 || (uint32_t)partition >= t->partition_count)
        return KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    if (t->replicas[partition] != NULL)
        return KAFKA_NONE;
    if (t->open_errors[partition] == OPEN_ELSEWHERE)
        return KAFKA_NOT_LEADER_OR_FOLLOWER;
    if (t->open_errors[partition] != 0)
        return KAFKA_KAFKA_STORAGE_ERROR;
    opener_want(b, t, (uint32_t)partition);
    return KAFKA_NOT_LEADER_OR_FOLLOWER;
}

/* ---- replicas ---------------------------------------------------------------------------- */

static int partition_dir(const struct broker *b, const char *topic, uint32_t partition, char *out,
                         size_t size)
{
    int n = snprintf(out, size, "%s/%s-%u", b->cfg->log_dir, topic, partition);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static void log_env_of(const struct broker *b, struct log_env *env)
{
    int64_t tail = b->cfg->log_cache_tail_bytes;
    *env = (struct log_env){.io = b->io,
                            .clock = b->clock,
                            .files = b->files,
                            .flusher = b->flusher,
                            /* -1 leaves the page cache to the kernel; 0 keeps no synced byte */
                            .cache_tail_bytes = tail < 0 ? 0 : (uint64_t)MAX(tail, 1)};
}

bool broker_hosts(const struct broker *b, const struct meta_partition *mp)
{
    for (uint8_t i = 0; i < mp->replica_count; i++)
        if (mp->replicas[i] == b->cfg->node_id)
            return true;
    return false;
}

/* Makes room for partitions [from, count): not open, no error (or hosted elsewhere). */
static void topic_resize(struct broker_topic *t, const struct meta_topic *mt,
                         const struct broker *b, uint32_t from, uint32_t count)
{
    t->replicas = xrealloc(t->replicas, count * sizeof(*t->replicas));
    t->parts = xrealloc(t->parts, count * sizeof(*t->parts));
    t->open_errors = xrealloc(t->open_errors, count * sizeof(*t->open_errors));
    for (uint32_t p = from; p < count; p++) {
        t->replicas[p] = NULL;
        t->parts[p] = NULL;
        t->open_errors[p] = broker_hosts(b, &mt->partitions[p]) ? 0 : OPEN_ELSEWHERE;
    }
}

/* Puts a replicated partition's new replica under its group; one that cannot be is closed. */
static int attach_or_drop(struct broker *b, struct broker_topic *t, const struct meta_topic *mt,
                          uint32_t p)
{
    int rc = broker_replica_attach(b, t, mt, p);
    if (rc != 0) {
        replica_abandon(t->replicas[p]);
        t->replicas[p] = NULL;
    }
    return rc;
}

/* Opens partition p of t (hosted here, not open) on the loop thread. A damaged log leaves it
 * offline (no replica, its open error kept: clients are told it has no leader and
 * KAFKA_STORAGE_ERROR) while every other one serves; any other error is returned, said once. */
static int open_one(struct broker *b, const struct meta_topic *mt, struct broker_topic *t,
                    uint32_t p)
{
    struct log_env env;
    log_env_of(b, &env);
    char dir[IO_PATH_BYTES_MAX];
    int rc = partition_dir(b, mt->name, p, dir, sizeof(dir));
    struct log_config cfg;
    broker_topic_log_config(b, mt, &cfg);
    if (rc == 0)
        rc = replica_open(&env, dir, &cfg, mt->partitions[p].leader_epoch, &t->replicas[p]);
    if (rc == 0)
        rc = attach_or_drop(b, t, mt, p);
    if (rc == ERR_DAMAGED) {
        t->replicas[p] = NULL; /* the log said why in one line */
        t->open_errors[p] = rc;
        return 0;
    }
    if (rc < 0)
        fprintf(stderr, "chronik: cannot open partition %s: %s\n", dir, err_str(rc));
    return rc;
}

static int open_replicas(struct broker *b, const struct meta_topic *mt, struct broker_topic *t,
                         uint32_t from)
{
    topic_resize(t, mt, b, from, mt->partition_count);
    for (uint32_t p = from; p < mt->partition_count; p++) {
        t->partition_count = p + 1;
        if (t->open_errors[p] == OPEN_ELSEWHERE)
            continue;
        int rc = open_one(b, mt, t, p);
        if (rc < 0) {
            t->partition_count = p;
            return rc;
        }
    }
    return 0;
}

/* ---- partitions created at run time ------------------------------------------------------ */

struct broker_pending_open {
    char *topic;
    struct meta_uuid id; /* the topic's: one deleted and created again meanwhile is another */
    uint32_t partition;
};

/* Queues partitions [from, mt's count) of t hosted here, making room for them as not open
 * (answered NOT_LEADER_OR_FOLLOWER, retriable, until open). */
static void open_later(struct broker *b, const struct meta_topic *mt, struct broker_topic *t,
                       uint32_t from)
{
    topic_resize(t, mt, b, from, mt->partition_count);
    t->partition_count = mt->partition_count;
    for (uint32_t p = from; p < mt->partition_count; p++) {
        if (t->open_errors[p] == OPEN_ELSEWHERE)
            continue;
        if (b->open_count == b->open_cap) {
            b->open_cap = b->open_cap == 0 ? 64 : 2 * b->open_cap;
            b->opens = xrealloc(b->opens, b->open_cap * sizeof(*b->opens));
        }
        b->opens[b->open_count++] =
            (struct broker_pending_open){.topic = xstrdup(mt->name), .id = mt->id, .partition = p};
    }
}

/* Opens pending partitions for up to BROKER_RECONCILE_OPEN_MS (at least one), and comes back on
 * the next loop iteration for the rest, so Raft ticks and clients are served in between. */
static void open_step(struct broker *b)
{
    uint64_t until = clock_mono_ms(b->clock) + BROKER_RECONCILE_OPEN_MS;
    bool opened = false;
    while (b->open_head < b->open_count && (!opened || clock_mono_ms(b->clock) < until)) {
        struct broker_pending_open *po = &b->opens[b->open_head++];
        struct broker_topic *t = broker_topic_find(b, po->topic, strlen(po->topic));
        const struct meta_topic *mt = meta_topic_find(&b->meta, po->topic, strlen(po->topic));
        uint32_t p = po->partition;
        bool same = t != NULL && mt != NULL && memcmp(t->id.b, po->id.b, META_UUID_BYTES) == 0 &&
                    memcmp(mt->id.b, po->id.b, META_UUID_BYTES) == 0;
        free(po->topic);
        if (!same || p >= t->partition_count || t->replicas[p] != NULL || t->open_errors[p] != 0)
            continue; /* deleted, or deleted and created again (queued again then) */
        int rc = open_one(b, mt, t, p);
        if (rc < 0)
            t->open_errors[p] = rc;
        opened = true;
    }
    if (b->open_head == b->open_count)
        b->open_head = b->open_count = 0;
    else if (!loop_timer_active(&b->open_timer))
        (void)loop_timer_start(b->loop, &b->open_timer, 0, 0);
}

static void on_open_timer(void *ctx)
{
    open_step(ctx);
}

static void opens_free(struct broker *b)
{
    loop_timer_stop(b->loop, &b->open_timer);
    for (uint32_t i = b->open_head; i < b->open_count; i++)
        free(b->opens[i].topic);
    free(b->opens);
    b->opens = NULL;
    b->open_head = b->open_count = b->open_cap = 0;
}

static void topic_free(struct broker_topic *t, bool clean)
{
    for (uint32_t p = 0; p < t->partition_count; p++) {
        if (t->replicas[p] != NULL) {
            /* (NULL: still opening, or its log failed to open) */
            if (clean)
                replica_close(t->replicas[p]);
            else
                replica_abandon(t->replicas[p]);
        }
        broker_part_free(t, p);
    }
    free(t->replicas);
    free(t->parts);
    free(t->open_errors);
    free(t->name);
    free(t);
}

static struct broker_topic *topic_attach(struct broker *b, const struct meta_topic *mt, int *rc)
{
    struct broker_topic *t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(mt->name);
    t->id = mt->id;
    *rc = open_replicas(b, mt, t, 0);
    if (*rc < 0) {
        topic_free(t, false);
        return NULL;
    }
    table_add(b, t);
    return t;
}

/* A topic whose partitions the opener opens: in the table, every replica still NULL. */
static void topic_add_unopened(struct broker *b, const struct meta_topic *mt)
{
    struct broker_topic *t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(mt->name);
    t->id = mt->id;
    topic_resize(t, mt, b, 0, mt->partition_count);
    t->partition_count = mt->partition_count;
    table_add(b, t);
}

/* ---- start-up opener --------------------------------------------------------------------- */

struct open_job {
    char *topic;
    uint32_t partition;
    char *dir;
    struct log_config cfg;
    int32_t leader_epoch;
    struct replica *replica; /* set by the opener thread that ran the job */
    int rc;                  /* its outcome; an error set beforehand skips the open */
};

struct broker_opener {
    struct log_env env;
    struct open_job *jobs;
    uint32_t job_count;
    uint32_t installed; /* loop thread only */
    pthread_t threads[BROKER_OPEN_THREADS];
    uint32_t thread_count;
    struct loop_event done_event;
    pthread_mutex_t mu;
    uint32_t next;    /* under mu: jobs below it are taken (in order) or were wanted */
    bool *taken;      /* under mu */
    uint32_t *wanted; /* under mu: jobs a client asked for, taken first (a stack) */
    uint32_t wanted_len;
    bool *wanted_once; /* under mu: a job goes on the wanted stack at most once */
    bool stop;         /* under mu: take no more jobs */
    uint32_t *done;    /* under mu: finished jobs the loop has not taken yet */
    uint32_t done_len; /* under mu */
    uint32_t *taking;  /* loop thread only: the jobs being installed */
};

/* The next job to run under mu, or UINT32_MAX when none is left. */
static uint32_t take_job(struct broker_opener *o)
{
    uint32_t i = UINT32_MAX;
    while (i == UINT32_MAX && o->wanted_len > 0) {
        uint32_t w = o->wanted[--o->wanted_len];
        if (!o->taken[w])
            i = w;
    }
    for (; i == UINT32_MAX && o->next < o->job_count; o->next++)
        if (!o->taken[o->next])
            i = o->next;
    if (i != UINT32_MAX)
        o->taken[i] = true;
    return i;
}

static void *opener_main(void *arg)
{
    struct broker_opener *o = arg;
    pthread_mutex_lock(&o->mu);
    uint32_t i;
    while (!o->stop && (i = take_job(o)) != UINT32_MAX) {
        struct open_job *j = &o->jobs[i];
        pthread_mutex_unlock(&o->mu);
        if (j->rc == 0)
            j->rc = replica_open(&o->env, j->dir, &j->cfg, j->leader_epoch, &j->replica);
        pthread_mutex_lock(&o->mu);
        o->done[o->done_len++] = i;
        loop_event_signal(&o->done_event);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

/* Hands a finished job's replica to its partition (loop thread). Deletion and growth wait for
 * the opener, so the topic and the partition are still there. */
static void install(struct broker *b, struct open_job *j)
{
    struct broker_topic *t = broker_topic_find(b, j->topic, strlen(j->topic));
    const struct meta_topic *mt = meta_topic_find(&b->meta, j->topic, strlen(j->topic));
    ASSERT(t != NULL && mt != NULL && j->partition < t->partition_count);
    ASSERT(t->replicas[j->partition] == NULL && t->open_errors[j->partition] == 0);
    if (j->rc < 0) {
        fprintf(stderr, "chronik: cannot open partition %s: %s\n", j->dir, err_str(j->rc));
        t->open_errors[j->partition] = j->rc;
        return;
    }
    /* The topic's configuration may have changed while the log opened. */
    struct log_config cfg;
    broker_topic_log_config(b, mt, &cfg);
    int rc = log_set_config(replica_log(j->replica), &cfg);
    ASSERT(rc == 0); /* validated against the same bounds when it was set */
    t->replicas[j->partition] = j->replica;
    rc = attach_or_drop(b, t, mt, j->partition);
    if (rc != 0) {
        fprintf(stderr, "chronik: cannot start the Raft group of partition %s: %s\n", j->dir,
                err_str(rc));
        t->open_errors[j->partition] = rc;
    }
}

static void opener_free(struct broker *b)
{
    struct broker_opener *o = b->opener;
    for (uint32_t i = 0; i < o->job_count; i++) {
        free(o->jobs[i].topic);
        free(o->jobs[i].dir);
    }
    free(o->jobs);
    free(o->done);
    free(o->taking);
    free(o->taken);
    free(o->wanted);
    free(o->wanted_once);
    pthread_mutex_destroy(&o->mu);
    free(o);
    b->opener = NULL;
}

/* Installs every job finished so far; true once every job is installed. */
static bool opener_take(struct broker *b)
{
    struct broker_opener *o = b->opener;
    pthread_mutex_lock(&o->mu);
    uint32_t n = o->done_len;
    memcpy(o->taking, o->done, n * sizeof(*o->taking));
    o->done_len = 0;
    pthread_mutex_unlock(&o->mu);
    for (uint32_t i = 0; i < n; i++)
        install(b, &o->jobs[o->taking[i]]);
    o->installed += n;
    return o->installed == o->job_count;
}

/* Stops the opener (stop: jobs not started yet are dropped, their partitions stay unopened;
 * otherwise every job runs), waits for its threads and installs what they opened. */
static void opener_finish(struct broker *b, bool stop)
{
    struct broker_opener *o = b->opener;
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    o->stop = o->stop || stop;
    pthread_mutex_unlock(&o->mu);
    for (uint32_t i = 0; i < o->thread_count; i++)
        pthread_join(o->threads[i], NULL);
    opener_take(b);
    loop_event_deinit(b->loop, &o->done_event);
    opener_free(b);
}

static void on_opened(void *ctx, uint64_t count)
{
    struct broker *b = ctx;
    (void)count;
    if (opener_take(b))
        opener_finish(b, false);
}

/* Queues every partition of the unopened topics and starts the opener threads. */
static int opener_start(struct broker *b)
{
    uint32_t count = 0;
    for (uint32_t i = 0; i < b->meta.topic_count; i++)
        if (strcmp(b->meta.topics[i]->name, BROKER_OFFSETS_TOPIC) != 0)
            for (uint32_t p = 0; p < b->meta.topics[i]->partition_count; p++)
                count += broker_hosts(b, &b->meta.topics[i]->partitions[p]);
    if (count == 0)
        return 0;
    struct broker_opener *o = xcalloc(1, sizeof(*o));
    log_env_of(b, &o->env);
    o->jobs = xcalloc(count, sizeof(*o->jobs));
    o->done = xcalloc(count, sizeof(*o->done));
    o->taking = xcalloc(count, sizeof(*o->taking));
    o->taken = xcalloc(count, sizeof(*o->taken));
    o->wanted = xcalloc(count, sizeof(*o->wanted));
    o->wanted_once = xcalloc(count, sizeof(*o->wanted_once));
    pthread_mutex_init(&o->mu, NULL);
    for (uint32_t i = 0; i < b->meta.topic_count; i++) {
        const struct meta_topic *mt = b->meta.topics[i];
        if (strcmp(mt->name, BROKER_OFFSETS_TOPIC) == 0)
            continue;
        broker_topic_find(b, mt->name, strlen(mt->name))->open_job_first = o->job_count;
        for (uint32_t p = 0; p < mt->partition_count; p++) {
            if (!broker_hosts(b, &mt->partitions[p]))
                continue; /* another node's */
            struct open_job *j = &o->jobs[o->job_count++];
            char dir[IO_PATH_BYTES_MAX];
            /* A name too long for a path fails that partition alone, when it is installed. */
            j->rc = partition_dir(b, mt->name, p, dir, sizeof(dir));
            j->topic = xstrdup(mt->name);
            j->partition = p;
            j->dir = xstrdup(j->rc == 0 ? dir : mt->name);
            broker_topic_log_config(b, mt, &j->cfg);
            j->leader_epoch = mt->partitions[p].leader_epoch;
        }
    }
    b->opener = o;
    int rc = loop_event_init(b->loop, &o->done_event, on_opened, b);
    if (rc < 0) {
        opener_free(b);
        return rc;
    }
    /* The simulator's broker opens them on the loop thread (broker_sim). */
    uint32_t want = b->sim != NULL ? 0 : MIN(count, BROKER_OPEN_THREADS);
    for (uint32_t i = 0; i < want; i++) {
        if (pthread_create(&o->threads[o->thread_count], NULL, opener_main, o) != 0)
            break;
        o->thread_count++;
    }
    if (o->thread_count == 0) {
        /* No thread at all: the jobs run on the loop thread now. */
        opener_main(o);
        opener_finish(b, false);
    }
    return 0;
}

/* A client asked for a partition still opening: its job runs next (loop thread). */
static void opener_want(struct broker *b, const struct broker_topic *t, uint32_t partition)
{
    struct broker_opener *o = b->opener;
    if (o == NULL)
        return;
    uint32_t i = t->open_job_first + partition;
    if (i >= o->job_count || o->jobs[i].partition != partition ||
        strcmp(o->jobs[i].topic, t->name) != 0)
        return;
    pthread_mutex_lock(&o->mu);
    if (!o->taken[i] && !o->wanted_once[i]) {
        o->wanted_once[i] = true;
        o->wanted[o->wanted_len++] = i;
    }
    pthread_mutex_unlock(&o->mu);
}

bool broker_partitions_opened(const struct broker *b)
{
    return b->opener == NULL;
}

bool broker_auto_create_allowed(const struct broker *b)
{
    return b->cfg->auto_create_topics_enable;
}

/* The name a deleted partition directory is renamed to, as Kafka's LocalLog names it:
 * `<topic>-<partition>.<32 hex digits of id>-delete`, the topic cut so the name fits NAME_MAX. */
static int marked_dir(const struct broker *b, const char *topic, uint32_t partition,
                      const struct meta_uuid *id, char *out, size_t size)
{
    char suffix[64];
    int n = snprintf(suffix, sizeof(suffix), "-%u.", partition);
    for (int i = 0; i < META_UUID_BYTES; i++)
        n += snprintf(suffix + n, sizeof(suffix) - (size_t)n, "%02x", id->b[i]);
    snprintf(suffix + n, sizeof(suffix) - (size_t)n, "-delete");
    size_t keep = MIN(strlen(topic), (size_t)BROKER_DIR_NAME_BYTES_MAX - strlen(suffix));
    int w = snprintf(out, size, "%s/%.*s%s", b->cfg->log_dir, (int)keep, topic, suffix);
    return w < 0 || (size_t)w >= size ? -ENAMETOOLONG : 0;
}

static void random_uuid(struct broker *b, struct meta_uuid *id)
{
    for (int i = 0; i < 2; i++) {
        uint64_t x = rng_next(&b->rng);
        memcpy(id->b + 8 * i, &x, 8);
    }
}

/* Renames a partition directory to its marked name and hands it to the reaper. A directory
 * that does not exist (never written, or renamed before a crash) needs nothing. */
static int retire_dir(struct broker *b, const char *dir, const char *topic, uint32_t partition,
                      const struct meta_uuid *id)
{
    char marked[IO_PATH_BYTES_MAX];
    int rc = marked_dir(b, topic, partition, id, marked, sizeof(marked));
    if (rc == 0)
        rc = io_rename(b->io, dir, marked);
    if (rc == -ENOENT)
        return 0;
    if (rc == 0)
        reaper_add(b->reaper, marked);
    return rc;
}

/* A new topic's (or new partitions') directories must not exist: one left by a delete whose
 * rename failed would bring old data back. Retires any such directory first. */
static int clear_stale_dirs(struct broker *b, const struct meta_topic *mt, uint32_t from)
{
    struct meta_uuid id;
    random_uuid(b, &id);
    for (uint32_t p = from; p < mt->partition_count; p++) {
        if (!broker_hosts(b, &mt->partitions[p]))
            continue;
        char dir[IO_PATH_BYTES_MAX];
        bool is_dir = false;
        int rc = partition_dir(b, mt->name, p, dir, sizeof(dir));
        if (rc == 0)
            rc = io_exists(b->io, dir, &is_dir);
        if (rc == -ENOENT)
            continue;
        if (rc == 0) {
            fprintf(stderr, "chronik: removing stale partition directory %s\n", dir);
            rc = retire_dir(b, dir, mt->name, p, &id);
        }
        if (rc < 0) {
            fprintf(stderr, "chronik: cannot clear %s: %s\n", dir, err_str(rc));
            return rc;
        }
    }
    return 0;
}

/* The message of a builder's refusal, in the request's arena. */
static void ctl_why(struct breq *rq, const struct meta_ctl_result *res, struct proto_str *why)
{
    *why = admin_printf(&rq->arena, "%s", res->message);
}

int16_t broker_default_replication_factor(const struct broker *b)
{
    if (b->cfg->default_replication_factor > 0)
        return (int16_t)b->cfg->default_replication_factor;
    /* Not set: as many replicas as there are brokers placement may use (unfenced, not in
     * controlled shutdown), up to three (Kafka's default is 1). */
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->meta.broker_count; i++)
        n += !b->meta.brokers[i].fenced && !b->meta.brokers[i].in_controlled_shutdown;
    return (int16_t)(n < 1 ? 1 : n > 3 ? 3 : n);
}

int broker_create_topic(struct breq *rq, const char *name, size_t len, int32_t partitions,
                        int16_t replication_factor, const char *const *config_keys,
                        const char *const *config_values, uint32_t config_count, bool validate_only,
                        struct proto_str *why, struct meta_uuid *id)
{
    struct broker *b = rq->b;
    *why = (struct proto_str){NULL, 0};
    if (partitions == -1)
        partitions = b->cfg->num_partitions;
    if (replication_factor == -1)
        replication_factor = broker_default_replication_factor(b);
    char *copy = arena_strndup(&rq->arena, name, len);
    struct meta_ctl_config *cfgs = arena_calloc(&rq->arena, config_count, sizeof(*cfgs));
    if (copy == NULL || (config_count > 0 && cfgs == NULL))
        return ERR_TOO_LARGE;
    for (uint32_t i = 0; i < config_count; i++)
        cfgs[i] = (struct meta_ctl_config){.key = config_keys[i], .value = config_values[i]};
    /* Another topic of this request with a colliding name ('.' and '_' alike). */
    for (uint32_t i = 0; i < b->staged_name_count; i++) {
        const char *o = b->staged_names[i];
        bool collide = strlen(o) == len;
        for (size_t k = 0; collide && k < len; k++) {
            char x = o[k] == '.' ? '_' : o[k], y = copy[k] == '.' ? '_' : copy[k];
            collide = x == y;
        }
        if (collide) {
            *why = admin_printf(&rq->arena, "Topic '%s' collides with existing topic: %s", copy, o);
            return KAFKA_INVALID_TOPIC_EXCEPTION;
        }
    }
    struct meta_ctl_create_topic req = {.name = copy,
                                        .partitions = partitions,
                                        .replication_factor = replication_factor,
                                        .configs = cfgs,
                                        .config_count = config_count};
    do {
        random_uuid(b, &req.id);
        req.id.b[6] = (uint8_t)((req.id.b[6] & 0x0f) | 0x40); /* version 4 */
        req.id.b[8] = (uint8_t)((req.id.b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    } while (meta_uuid_is_reserved(&req.id) || meta_topic_find_id(&b->meta, &req.id) != NULL);
    struct meta_records scratch;
    meta_records_init(&scratch);
    struct meta_ctl_result res;
    int16_t err =
        meta_ctl_create_topic(&b->meta, &req, validate_only ? &scratch : b->staging, &res);
    meta_records_deinit(&scratch);
    if (err != META_CTL_NONE) {
        ctl_why(rq, &res, why);
        return err;
    }
    *id = req.id;
    if (!validate_only && b->staged_name_count < BROKER_STAGED_NAMES_MAX)
        b->staged_names[b->staged_name_count++] = copy;
    return KAFKA_NONE;
}

int broker_grow_topic(struct breq *rq, const char *name, size_t len, int32_t new_count,
                      bool validate_only, struct proto_str *why)
{
    struct broker *b = rq->b;
    char *copy = arena_strndup(&rq->arena, name, len);
    if (copy == NULL)
        return ERR_TOO_LARGE;
    struct meta_records scratch;
    meta_records_init(&scratch);
    struct meta_ctl_result res;
    int16_t err = meta_ctl_create_partitions(&b->meta, copy, new_count,
                                             validate_only ? &scratch : b->staging, &res);
    meta_records_deinit(&scratch);
    *why = (struct proto_str){NULL, 0};
    if (err != META_CTL_NONE)
        ctl_why(rq, &res, why);
    return err;
}

int broker_delete_topic(struct breq *rq, const char *name, size_t len)
{
    struct broker *b = rq->b;
    char *copy = arena_strndup(&rq->arena, name, len);
    if (copy == NULL)
        return ERR_TOO_LARGE;
    struct meta_ctl_result res;
    return meta_ctl_delete_topic(&b->meta, copy, b->staging, &res);
}

int broker_stage_configs(struct breq *rq, int8_t resource_type, const char *resource,
                         const struct meta_ctl_config *configs, uint32_t count, bool replace,
                         struct proto_str *why)
{
    struct broker *b = rq->b;
    struct meta_ctl_result res;
    int16_t err = meta_ctl_alter_configs(&b->meta, resource_type, resource, configs, count, replace,
                                         b->staging, &res);
    *why = (struct proto_str){NULL, 0};
    if (err != META_CTL_NONE)
        ctl_why(rq, &res, why);
    return err;
}

void broker_topic_reconfigure(struct broker *b, const char *name)
{
    const struct meta_topic *mt = meta_topic_find(&b->meta, name, strlen(name));
    struct broker_topic *t = broker_topic_find(b, name, strlen(name));
    if (mt == NULL || t == NULL)
        return;
    struct log_config cfg;
    broker_topic_log_config(b, mt, &cfg);
    for (uint32_t p = 0; p < t->partition_count; p++) {
        if (t->replicas[p] == NULL)
            continue; /* still opening (it gets the configuration when installed) or failed */
        int rc = log_set_config(replica_log(t->replicas[p]), &cfg);
        /* The values passed validation against the same bounds when they were set. */
        ASSERT(rc == 0);
    }
}

/* A topic gone from the image (or replaced by another of its name): its replicas close and
 * its directories are marked for the reaper. */
static void retire_topic(struct broker *b, struct broker_topic *t)
{
    /* Its directories go: no opener thread may still be working in one. */
    opener_finish(b, false);
    table_remove(b, t);
    for (uint32_t p = 0; p < t->partition_count; p++) {
        if (t->open_errors[p] == OPEN_ELSEWHERE)
            continue;
        char dir[IO_PATH_BYTES_MAX];
        if (t->replicas[p] != NULL) {
            replica_abandon(t->replicas[p]);
            t->replicas[p] = NULL;
        }
        broker_part_free(t, p);
        int rc = partition_dir(b, t->name, p, dir, sizeof(dir));
        if (rc == 0)
            rc = retire_dir(b, dir, t->name, p, &t->id);
        if (rc < 0)
            fprintf(stderr, "chronik: cannot rename %s for deletion: %s\n", dir, err_str(rc));
    }
    t->partition_count = 0;
    topic_free(t, false);
}

void broker_reconcile(struct broker *b)
{
    /* Topics deleted (or deleted and created again under their name). */
    uint32_t n = 0;
    struct broker_topic **gone = xcalloc(b->topic_count + 1, sizeof(*gone));
    for (uint32_t i = 0; i < b->topic_slots; i++) {
        struct broker_topic *t = b->topics[i];
        if (t == NULL || t == &tombstone)
            continue;
        const struct meta_topic *mt = meta_topic_find(&b->meta, t->name, strlen(t->name));
        if (mt == NULL || memcmp(mt->id.b, t->id.b, META_UUID_BYTES) != 0)
            gone[n++] = t;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (strcmp(gone[i]->name, BROKER_OFFSETS_TOPIC) == 0)
            groups_close(b);
        if (strcmp(gone[i]->name, BROKER_TXN_STATE_TOPIC) == 0)
            txns_close(b);
        retire_topic(b, gone[i]);
    }
    free(gone);
    /* Topics created and grown: their partitions hosted here open a step at a time, the first
     * step now (a small topic is served as soon as its creation is answered). */
    for (uint32_t i = 0; i < b->meta.topic_count; i++) {
        const struct meta_topic *mt = b->meta.topics[i];
        struct broker_topic *t = broker_topic_find(b, mt->name, strlen(mt->name));
        int rc = 0;
        /* The group coordinator loads __consumer_offsets as soon as it appears: opened whole. */
        bool now = strcmp(mt->name, BROKER_OFFSETS_TOPIC) == 0;
        if (t == NULL && now) {
            rc = clear_stale_dirs(b, mt, 0);
            if (rc == 0 && topic_attach(b, mt, &rc) == NULL && rc == 0)
                rc = ERR_INVALID;
        } else if (t == NULL) {
            rc = clear_stale_dirs(b, mt, 0);
            if (rc == 0) {
                t = xcalloc(1, sizeof(*t));
                t->name = xstrdup(mt->name);
                t->id = mt->id;
                table_add(b, t);
                open_later(b, mt, t, 0);
            }
        } else if (t->partition_count < mt->partition_count) {
            opener_finish(b, false);
            rc = clear_stale_dirs(b, mt, t->partition_count);
            if (rc == 0 && now)
                rc = open_replicas(b, mt, t, t->partition_count);
            else if (rc == 0)
                open_later(b, mt, t, t->partition_count);
        }
        if (rc < 0)
            fprintf(stderr, "chronik: cannot open the partitions of %s: %s\n", mt->name,
                    err_str(rc));
    }
    open_step(b);
    /* The dynamic broker configs, then every topic's configuration on its open logs. */
    broker_apply_dynamic_configs(b);
}

struct clean_list {
    char **names;
    uint32_t count;
    uint32_t cap;
};

static int collect_entry(void *ctx, const char *name)
{
    struct clean_list *l = ctx;
    if (l->count == l->cap) {
        l->cap = l->cap == 0 ? 64 : l->cap * 2;
        l->names = xrealloc(l->names, l->cap * sizeof(*l->names));
    }
    l->names[l->count++] = xstrdup(name);
    return 0;
}

/* Start-up: `name` in the data directory may be a marked directory (a delete not finished
 * before the last stop) or a partition directory the metadata does not know (a delete
 * interrupted by a crash after its record); either goes to the reaper. */
static int clean_entry(struct broker *b, const char *name, bool created)
{
    size_t len = strlen(name);
    char path[IO_PATH_BYTES_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", b->cfg->log_dir, name) >= (int)sizeof(path))
        return 0;
    bool is_dir = false;
    if (io_exists(b->io, path, &is_dir) < 0 || !is_dir || strcmp(name, META_LOG_DIR) == 0)
        return 0;
    static const char mark[] = "-delete";
    if (len > sizeof(mark) - 1 && strcmp(name + len - (sizeof(mark) - 1), mark) == 0) {
        fprintf(stderr, "chronik: removing deleted partition directory %s\n", path);
        reaper_add(b->reaper, path);
        return 0;
    }
    const char *dash = strrchr(name, '-');
    if (dash == NULL || dash == name || dash[1] == '\0' || strlen(dash + 1) > 9 ||
        strspn(dash + 1, "0123456789") != strlen(dash + 1))
        return 0;
    uint32_t partition = (uint32_t)strtoul(dash + 1, NULL, 10);
    const struct meta_topic *mt = meta_topic_find(&b->meta, name, (size_t)(dash - name));
    if (mt != NULL && partition < mt->partition_count)
        return 0;
    if (created) {
        /* Partition data without any metadata is a lost metadata store, not an interrupted
         * delete: never remove it. */
        fprintf(stderr,
                "chronik: %s holds partition directories (%s) but no metadata; refusing to "
                "start\n",
                b->cfg->log_dir, name);
        return ERR_CORRUPT;
    }
    char topic[IO_PATH_BYTES_MAX];
    snprintf(topic, sizeof(topic), "%.*s", (int)(dash - name), name);
    struct meta_uuid id;
    random_uuid(b, &id);
    fprintf(stderr, "chronik: removing partition directory %s: not in the metadata\n", path);
    int rc = retire_dir(b, path, topic, partition, &id);
    if (rc < 0)
        fprintf(stderr, "chronik: cannot rename %s for deletion: %s\n", path, err_str(rc));
    return rc;
}

int broker_clean_data_dir(struct broker *b, bool created)
{
    /* Names first, renames after: a directory listing that sees its own renames is not
     * defined by POSIX. */
    struct clean_list l = {0};
    int rc = io_list_dir(b->io, b->cfg->log_dir, collect_entry, &l);
    for (uint32_t i = 0; i < l.count; i++) {
        if (rc == 0)
            rc = clean_entry(b, l.names[i], created);
        free(l.names[i]);
    }
    free(l.names);
    if (rc == 0)
        rc = io_sync_dir(b->io, b->cfg->log_dir);
    return rc;
}

/* ---- life cycle -------------------------------------------------------------------------- */

static void on_flusher(void *ctx, uint32_t events)
{
    struct broker *b = ctx;
    (void)events;
    log_flusher_drain(b->flusher);
    /* Completions may have let the Raft host send (acknowledgements, commits). */
    broker_cluster_kick(b);
}

static void on_shutdown_done(void *ctx)
{
    struct broker *b = ctx;
    loop_stop(b->loop);
}

void broker_stop(struct broker *b)
{
    if (b->stopping)
        return;
    b->stopping = true;
    int rc = b->server_up ? net_server_shutdown(&b->server, 10000, on_shutdown_done, b) : -1;
    if (rc < 0)
        loop_stop(b->loop);
}

static void on_signal(void *ctx, int signo)
{
    struct broker *b = ctx;
    /* SIGTERM hands leaderships over first (a second one, or SIGINT, stops at once). */
    if (signo == SIGTERM && broker_controlled_shutdown(b))
        return;
    broker_stop(b);
}

static void on_retention(void *ctx)
{
    struct broker *b = ctx;
    for (uint32_t i = 0; i < b->topic_slots; i++) {
        struct broker_topic *t = b->topics[i];
        if (t == NULL || t == &tombstone)
            continue;
        for (uint32_t p = 0; p < t->partition_count; p++) {
            struct replica *r = t->replicas[p];
            if (r == NULL) /* still opening or failed */
                continue;
            /* A replicated leader's new log start reaches its followers as a log-start marker
             * (Kafka: the followers' log start follows the leader's). One that cannot be
             * proposed (the leadership just moved) is not retried: the followers' own
             * retention applies the same settings to the same offsets. */
            if (log_enforce_retention(replica_log(r)) > 0 && replica_group(r) != NULL &&
                replica_leads(r))
                raft_group_propose_start(replica_group(r), replica_log_start_offset(r), NULL, NULL,
                                         NULL);
        }
    }
}

static void log_config_from(const struct broker_config *cfg, struct log_config *out)
{
    log_config_default(out);
    out->segment_bytes = (uint64_t)cfg->log_segment_bytes;
    out->roll_ms = (uint64_t)cfg->log_roll_ms;
    out->retention_ms = cfg->log_retention_ms;
    out->retention_bytes = cfg->log_retention_bytes;
}

/*
 * Reads the data directory's meta.properties before anything in the directory is used, and
 * refuses a node id other than the one it records: the directory's partitions and offsets
 * belong to that node. *found is false for a directory without one (new, or written by a
 * version without it).
 */
static int check_identity(struct broker *b, struct meta_properties *props, bool *found)
{
    char why[BROKER_CONFIG_ERROR_BYTES_MAX];
    int rc = meta_properties_load(b->io, b->cfg->log_dir, props, found, why, sizeof(why));
    if (rc < 0 && (rc == ERR_CORRUPT || rc == ERR_UNSUPPORTED || rc == ERR_TOO_LARGE)) {
        fprintf(stderr,
                "chronik: cannot use %s/" META_PROPERTIES_NAME ": %s; restore it or use a new "
                "data directory\n",
                b->cfg->log_dir, why);
        return rc;
    }
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot read %s/" META_PROPERTIES_NAME ": %s\n", b->cfg->log_dir,
                err_str(rc));
        return rc;
    }
    if (*found && props->node_id != b->cfg->node_id) {
        fprintf(
            stderr,
            "chronik: data directory %s belongs to node %d (node.id=%d in its " META_PROPERTIES_NAME
            "), but this node was started with node.id %d; start it "
            "with --node-id %d, or give node %d a data directory of its own\n",
            b->cfg->log_dir, (int)props->node_id, (int)props->node_id, (int)b->cfg->node_id,
            (int)props->node_id, (int)b->cfg->node_id);
        return ERR_INVALID;
    }
    return 0;
}

/* "cannot listen on HOST:PORT for WHAT (from SETTING): why", the one line of a taken port. */
static void port_error(const char *host, uint16_t port, const char *what, const char *setting,
                       int rc)
{
    fprintf(stderr, "chronik: cannot listen on %s:%u for %s (from %s): %s\n", host, port, what,
            setting, err_str(rc));
}

/*
 * Before the data directory is touched: binds the cluster port and keeps it, so two nodes
 * given conflicting ports cannot both start, and checks that the Kafka port is free (the
 * server binds it once the partitions are open), so a taken port leaves a new data directory
 * uncreated. The message names the port and the setting that chose it.
 */
static int reserve_ports(struct broker *b)
{
    const struct broker_config *cfg = b->cfg;
    const char *host = cfg->listener.host[0] != '\0' ? cfg->listener.host : "0.0.0.0";
    uint16_t bound = 0;
    int fd = net_listen_socket(host, cfg->cluster_port, &bound);
    if (fd < 0) {
        port_error(host, cfg->cluster_port, "the cluster port", cfg->cluster_port_setting, fd);
        return fd;
    }
    b->cluster_listen_fd = fd;
    fd = net_listen_socket(host, cfg->listener.port, &bound);
    if (fd < 0) {
        port_error(host, cfg->listener.port, "the Kafka protocol", cfg->port_setting, fd);
        return fd;
    }
    close(fd);
    return 0;
}

const char *broker_cluster_id(const struct broker *b)
{
    return b->meta.cluster_id;
}

/* Opens the group coordinator's topic now (it loads from it) and puts every other topic in
 * the table unopened, for the opener. */
static int open_all(struct broker *b)
{
    for (uint32_t i = 0; i < b->meta.topic_count; i++) {
        const struct meta_topic *mt = b->meta.topics[i];
        int rc;
        if (strcmp(mt->name, BROKER_OFFSETS_TOPIC) != 0)
            topic_add_unopened(b, mt);
        else if (topic_attach(b, mt, &rc) == NULL)
            return rc;
    }
    return 0;
}

static int ensure_dir(struct io *io, const char *path)
{
    bool is_dir = false;
    int rc = io_exists(io, path, &is_dir);
    if (rc == 0)
        return is_dir ? 0 : -ENOTDIR;
    if (rc != -ENOENT)
        return rc;
    rc = io_mkdir(io, path);
    if (rc == -EEXIST)
        return 0;
    if (rc < 0)
        return rc;
    /* The new directory's entry must be durable before anything in it can be: found by the
     * simulated-disk produce crash test, which lost a fresh data directory with its data. */
    char parent[IO_PATH_BYTES_MAX];
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    while (n > 0 && path[n - 1] != '/')
        n--;
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n == 0)
        snprintf(parent, sizeof(parent), ".");
    else
        snprintf(parent, sizeof(parent), "%.*s", (int)n, path);
    return io_sync_dir(io, parent);
}

/* How many segment files the log may keep open: raise the descriptor limit to its hard
 * maximum, then give the log at most half of it, so connections always find descriptors. */
static uint32_t open_files_max(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return 64;
    if (lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
            getrlimit(RLIMIT_NOFILE, &lim);
    }
    rlim_t half = lim.rlim_cur / 2;
    return (uint32_t)MAX(MIN(half, (rlim_t)LOG_OPEN_FILES_MAX_DEFAULT), (rlim_t)16);
}

int broker_start_serving(struct broker *b)
{
    const struct broker_config *cfg = b->cfg;
    ASSERT(!b->serving);
    int rc = broker_clean_data_dir(b, false);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot clean data directory %s: %s\n", cfg->log_dir, err_str(rc));
        return rc;
    }
    broker_apply_dynamic_configs(b);
    rc = open_all(b);
    if (rc < 0)
        return rc;
    /* The group coordinator loads __consumer_offsets before the listener opens. */
    rc = groups_open(b);
    if (rc < 0)
        return rc;
    txns_start(b);

    struct net_server_config ncfg;
    net_server_config_default(&ncfg);
    ncfg.host = cfg->listener.host[0] != '\0' ? cfg->listener.host : "0.0.0.0";
    ncfg.port = cfg->listener.port;
    ncfg.frame_bytes_max = (uint32_t)cfg->socket_request_max_bytes;
    ncfg.idle_ms = (uint64_t)cfg->connections_max_idle_ms;
    /* Kafka's queued.max.request.bytes: 0 and below set no bound. */
    ncfg.queued_bytes_max =
        cfg->queued_max_request_bytes > 0 ? (uint64_t)cfg->queued_max_request_bytes : 0;
    const struct net_handler handler = {
        .request = broker_on_request, .closed = NULL, .pressure = broker_on_pressure, .ctx = b};
    /* The simulator's clients call broker_client_frame() instead of connecting. */
    rc = b->sim != NULL ? 0 : net_server_init(&b->server, b->loop, &ncfg, &handler);
    if (rc < 0) {
        port_error(ncfg.host, ncfg.port, "the Kafka protocol", cfg->port_setting, rc);
        return rc;
    }
    b->server_up = b->sim == NULL;
    b->serving = true;
    uint64_t every = (uint64_t)cfg->log_retention_check_interval_ms;
    rc = loop_timer_start(b->loop, &b->retention_timer, every, every);
    if (rc == 0)
        rc = opener_start(b);
    if (rc == 0 && b->on_serving != NULL)
        b->on_serving(b->on_serving_ctx);
    return rc;
}

int broker_open(const struct broker_config *cfg, const struct broker_env *env, struct broker **out)
{
    ASSERT(env->io != NULL && env->clock != NULL);
    struct broker_full *full = xcalloc(1, sizeof(*full));
    struct broker *b = &full->b;
    b->static_cfg = cfg;
    b->live_cfg = *cfg;
    b->cfg = &b->live_cfg;
    b->clock = env->clock;
    b->sim = env->sim;
    uint64_t seed = 0;
    if (b->sim != NULL)
        seed = b->sim->seed;
    else if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        seed = clock_mono_ns(b->clock) ^ (uint64_t)getpid();
    rng_seed(&b->rng, seed);
    log_config_from(cfg, &b->log_cfg);

    int rc = b->sim != NULL ? 0 : loop_epoll_init(&full->loop, b->clock);
    if (rc < 0) {
        free(full);
        return rc;
    }
    b->loop = b->sim != NULL ? b->sim->loop : &full->loop.loop;
    loop_timer_init(&b->retention_timer, on_retention, b);
    loop_timer_init(&b->metadata_recheck, metadata_recheck, b);
    loop_timer_init(&b->open_timer, on_open_timer, b);
    /* Block the stop signals before the flusher thread starts, so it inherits the mask and
     * only the loop's signalfd ever sees them. (The simulator's brokers leave signals alone.) */
    static const int stop_signals[] = {SIGTERM, SIGINT};
    rc = b->sim != NULL ? 0 : loop_signal_init(b->loop, &b->signals, stop_signals, 2, on_signal, b);
    if (rc < 0) {
        loop_epoll_deinit(&full->loop);
        free(full);
        return rc;
    }
    b->io = env->io;
    b->on_serving = env->serving;
    b->on_serving_ctx = env->serving_ctx;
    b->cluster_listen_fd = -1;
    b->controller_id = -1;
    b->files = log_files_create(b->io, open_files_max());
    b->flusher = log_flusher_create(!env->flush_manual);
    b->reaper = reaper_create(b->io, b->sim == NULL);
    meta_image_init(&b->meta);
    records_codec_init(&b->codec);
    *out = b;

    loop_fd_init(&b->flusher_watch, log_flusher_fd(b->flusher), on_flusher, b);
    rc = loop_fd_start(b->loop, &b->flusher_watch, LOOP_READ);
    if (rc < 0)
        goto fail;

    rc = b->sim != NULL ? 0 : reserve_ports(b);
    if (rc < 0)
        goto fail;
    rc = ensure_dir(b->io, cfg->log_dir);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot use data directory %s: %s\n", cfg->log_dir, err_str(rc));
        goto fail;
    }
    struct meta_properties props = {0};
    bool props_found = false;
    rc = check_identity(b, &props, &props_found);
    if (rc < 0)
        goto fail;
    rc = broker_cluster_open(b, props_found ? &props : NULL);
    if (rc < 0)
        goto fail;
    /* A node alone in its metadata group leads it at once: it serves before broker_open
     * returns, as a single node always has. A cluster's node starts serving from the loop once
     * it has caught up with the metadata and is unfenced. */
    if (cfg->voters.count == 1 && cfg->voters.voters[0].id == cfg->node_id) {
        uint64_t until = clock_mono_ms(b->clock) + BROKER_SERVE_WAIT_MS;
        while (!b->serving && !b->stopping && b->exit_status == 0 &&
               clock_mono_ms(b->clock) < until) {
            if (env->flush_manual)
                log_flusher_run_pending(b->flusher);
            rc = loop_run_once(b->loop, 10);
            if (rc < 0)
                goto fail;
        }
        if (!b->serving) {
            fprintf(stderr, "chronik: the metadata of %s did not load\n", cfg->log_dir);
            rc = b->exit_status != 0 ? ERR_INVALID : -ETIMEDOUT;
            goto fail;
        }
    }
    return 0;
fail:
    broker_close(b);
    *out = NULL;
    return rc;
}

int broker_run(struct broker *b)
{
    int rc = loop_run(b->loop);
    return rc < 0 ? rc : b->exit_status;
}

int broker_run_once(struct broker *b, int timeout_ms)
{
    return loop_run_once(b->loop, timeout_ms);
}

void broker_flush_pending(struct broker *b)
{
    log_flusher_run_pending(b->flusher);
}

uint16_t broker_port(const struct broker *b)
{
    return net_server_port(&b->server);
}

/* ---- shutdown closer ----------------------------------------------------------------------- */

struct closer {
    struct replica **replicas;
    uint32_t count;
    pthread_mutex_t mu;
    uint32_t next; /* under mu: the next replica to finish */
};

static void *closer_main(void *arg)
{
    struct closer *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        uint32_t i = c->next < c->count ? c->next++ : UINT32_MAX;
        pthread_mutex_unlock(&c->mu);
        if (i == UINT32_MAX)
            return NULL;
        /* A log that cannot be closed cleanly is recovered at the next start, as after a
         * crash. */
        (void)replica_close_end(c->replicas[i]);
    }
}

/* A clean shutdown closes every replica: the loop thread's part (failing waiters, ending the
 * Raft group) one after another, the rest (trimming, index, checkpoint and snapshot writes and
 * their syncs: several milliseconds a partition) on BROKER_CLOSE_THREADS threads, as start-up
 * opens them. One after another, 10,000 partitions took 35 s to close. */
static void close_replicas(struct broker *b)
{
    struct closer c = {0};
    for (uint32_t i = 0; i < b->topic_slots; i++) {
        struct broker_topic *t = b->topics[i];
        if (t != NULL && t != &tombstone)
            for (uint32_t p = 0; p < t->partition_count; p++)
                c.count += t->replicas[p] != NULL;
    }
    if (c.count == 0)
        return;
    c.replicas = xcalloc(c.count, sizeof(*c.replicas));
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->topic_slots; i++) {
        struct broker_topic *t = b->topics[i];
        if (t == NULL || t == &tombstone)
            continue;
        for (uint32_t p = 0; p < t->partition_count; p++) {
            if (t->replicas[p] == NULL)
                continue;
            replica_close_begin(t->replicas[p]);
            c.replicas[n++] = t->replicas[p];
            t->replicas[p] = NULL;
        }
    }
    pthread_mutex_init(&c.mu, NULL);
    pthread_t threads[BROKER_CLOSE_THREADS];
    /* The simulator's broker closes them on the loop thread. */
    uint32_t want = b->sim != NULL ? 0 : MIN(c.count, BROKER_CLOSE_THREADS), started = 0;
    for (; started < want; started++)
        if (pthread_create(&threads[started], NULL, closer_main, &c) != 0)
            break;
    closer_main(&c); /* this thread helps, and does it all when no thread started */
    for (uint32_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&c.mu);
    free(c.replicas);
}

/* clean: every log is closed cleanly; otherwise left as a killed process leaves it. */
static void broker_free(struct broker *b, bool clean)
{
    struct broker_full *full = CONTAINER_OF(b, struct broker_full, b);
    /* Forwarded requests end first: their clients' requests belong to the listener. */
    broker_cluster_close(b, clean);
    if (b->server_up)
        net_server_deinit(&b->server);
    if (b->cluster_listen_fd >= 0)
        close(b->cluster_listen_fd);
    loop_timer_stop(b->loop, &b->retention_timer);
    opens_free(b);
    opener_finish(b, true);
    /* Long polls hold pointers to replicas of many topics: answer them all before any
     * replica closes. */
    fetch_finish_all(b);
    metadata_finish_all(b);
    txns_close(b);
    groups_close(b);
    if (clean)
        close_replicas(b);
    for (uint32_t i = 0; i < b->topic_slots; i++) {
        struct broker_topic *t = b->topics[i];
        if (t != NULL && t != &tombstone)
            topic_free(t, clean);
    }
    free(b->topics);
    free(b->ineligible_ids);
    /* Every partition's group closed with its replica: the Raft host goes now. */
    broker_cluster_free(b);
    /* Completions of the last syncs arrive through the flusher; the logs waited for them. */
    log_flusher_drain(b->flusher);
    loop_fd_stop(b->loop, &b->flusher_watch);
    if (b->sim == NULL)
        loop_signal_deinit(b->loop, &b->signals);
    log_flusher_destroy(b->flusher);
    log_files_destroy(b->files);
    /* Directories not removed yet stay marked; the next start-up removes them. */
    reaper_destroy(b->reaper);
    meta_image_deinit(&b->meta);
    records_codec_deinit(&b->codec);
    if (b->sim == NULL)
        loop_epoll_deinit(&full->loop);
    free(full);
}

void broker_close(struct broker *b)
{
    broker_free(b, true);
}

void broker_abandon(struct broker *b)
{
    broker_free(b, false);
}
