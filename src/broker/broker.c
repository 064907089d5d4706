/*
 * The broker's wiring and its topic registry.
 *
 * Owns: the loop, the listener, the flusher and its eventfd watch, the stop signals, the
 * metadata image and its file, and one replica per partition (by topic name in an
 * open-addressing table). Start-up recovers everything before the listener opens, so a client
 * never sees a partition that is not ready.
 *
 * Data directory: `metadata.image` (the metadata image, replaced atomically) and one directory
 * per partition, `<topic>-<partition>`, as Kafka names them.
 *
 * Metadata changes are rare and small, so they are saved synchronously on the loop thread
 * (one file write and two syncs); the log's appends never are.
 */
#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "broker/broker_internal.h"
#include "io/io.h"
#include "net/loop_epoll.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#define TOPIC_SLOTS_MIN 64u

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

/* ---- replicas ---------------------------------------------------------------------------- */

static int partition_dir(const struct broker *b, const char *topic, uint32_t partition, char *out,
                         size_t size)
{
    int n = snprintf(out, size, "%s/%s-%u", b->cfg->log_dir, topic, partition);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int open_replicas(struct broker *b, const struct meta_topic *mt, struct broker_topic *t,
                         uint32_t from)
{
    const struct log_env env = {
        .io = b->io, .clock = b->clock, .files = b->files, .flusher = b->flusher};
    t->replicas = xrealloc(t->replicas, mt->partition_count * sizeof(*t->replicas));
    for (uint32_t p = from; p < mt->partition_count; p++) {
        char dir[IO_PATH_BYTES_MAX];
        int rc = partition_dir(b, mt->name, p, dir, sizeof(dir));
        struct log_config cfg;
        broker_topic_log_config(b, mt, &cfg);
        if (rc == 0)
            rc = replica_open(&env, dir, &cfg, mt->partitions[p].leader_epoch, &t->replicas[p]);
        if (rc == ERR_DAMAGED) {
            /* The log said why in one line; the partition stays offline (no replica: clients
             * are told it has no leader) while every other one serves. */
            t->replicas[p] = NULL;
            rc = 0;
        }
        if (rc < 0) {
            fprintf(stderr, "chronik: cannot open partition %s: %s\n", dir, err_str(rc));
            return rc;
        }
        t->partition_count = p + 1;
    }
    return 0;
}

static void topic_free(struct broker_topic *t, bool clean)
{
    for (uint32_t p = 0; p < t->partition_count; p++) {
        if (t->replicas[p] == NULL)
            continue; /* offline */
        if (clean)
            replica_close(t->replicas[p]);
        else
            replica_abandon(t->replicas[p]);
    }
    free(t->replicas);
    free(t->name);
    free(t);
}

static struct broker_topic *topic_attach(struct broker *b, const struct meta_topic *mt, int *rc)
{
    struct broker_topic *t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(mt->name);
    *rc = open_replicas(b, mt, t, 0);
    if (*rc < 0) {
        topic_free(t, false);
        return NULL;
    }
    table_add(b, t);
    return t;
}

bool broker_auto_create_allowed(const struct broker *b)
{
    return b->cfg->auto_create_topics_enable;
}

static int save_metadata(struct broker *b)
{
    int rc = meta_image_save(&b->meta, b->io, b->cfg->log_dir, b->meta_path);
    if (rc < 0)
        fprintf(stderr, "chronik: cannot save %s: %s\n", b->meta_path, err_str(rc));
    return rc;
}

int broker_create_topic(struct broker *b, const char *name, int32_t partitions,
                        int16_t replication_factor, const char *const *config_keys,
                        const char *const *config_values, uint32_t config_count, bool validate_only,
                        const char **why)
{
    size_t len = strlen(name);
    *why = NULL;
    if (!meta_topic_name_valid(name, len)) {
        *why = "Topic name is illegal: it must be 1 to 249 characters of [a-zA-Z0-9._-], "
               "and not '.' or '..'";
        return KAFKA_INVALID_TOPIC_EXCEPTION;
    }
    if (meta_topic_find(&b->meta, name, len) != NULL) {
        *why = "Topic already exists";
        return KAFKA_TOPIC_ALREADY_EXISTS;
    }
    if (partitions == -1)
        partitions = b->cfg->num_partitions;
    if (replication_factor == -1)
        replication_factor = (int16_t)b->cfg->default_replication_factor;
    if (partitions < 1 || (uint32_t)partitions > META_PARTITIONS_MAX) {
        *why = "Number of partitions must be at least 1 and at most 100000";
        return KAFKA_INVALID_PARTITIONS;
    }
    if (replication_factor < 1 || replication_factor > 1) {
        *why = "Replication factor must be at least 1 and at most the number of live brokers (1)";
        return KAFKA_INVALID_REPLICATION_FACTOR;
    }
    if (validate_only)
        return KAFKA_NONE;

    struct meta_uuid id;
    do {
        for (int i = 0; i < 2; i++) {
            uint64_t x = rng_next(&b->rng);
            memcpy(id.b + 8 * i, &x, 8);
        }
        id.b[6] = (uint8_t)((id.b[6] & 0x0f) | 0x40); /* version 4 */
        id.b[8] = (uint8_t)((id.b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    } while (meta_topic_find_id(&b->meta, &id) != NULL);

    int32_t *assignment = xcalloc((size_t)partitions, sizeof(*assignment));
    for (int32_t p = 0; p < partitions; p++)
        assignment[p] = b->cfg->node_id;
    int rc = meta_topic_create(&b->meta, name, &id, (uint32_t)partitions, replication_factor,
                               assignment);
    free(assignment);
    if (rc == -EEXIST) {
        *why = "Topic collides with an existing topic: '.' and '_' are treated alike";
        return KAFKA_INVALID_TOPIC_EXCEPTION;
    }
    if (rc < 0) {
        *why = "The topic cannot be created: the node holds too many topics";
        return KAFKA_POLICY_VIOLATION;
    }
    for (uint32_t i = 0; i < config_count; i++) {
        rc = meta_topic_config_set(&b->meta, name, config_keys[i], config_values[i]);
        if (rc < 0) {
            meta_topic_delete(&b->meta, name);
            *why = "Invalid topic config";
            return KAFKA_INVALID_CONFIG;
        }
    }
    if (save_metadata(b) < 0) {
        meta_topic_delete(&b->meta, name);
        *why = "The broker could not write its metadata";
        return KAFKA_KAFKA_STORAGE_ERROR;
    }
    const struct meta_topic *mt = meta_topic_find(&b->meta, name, len);
    if (topic_attach(b, mt, &rc) == NULL) {
        *why = "The broker could not create the partition logs";
        return KAFKA_KAFKA_STORAGE_ERROR;
    }
    return KAFKA_NONE;
}

int broker_grow_topic(struct broker *b, const char *name, size_t len, int32_t new_count,
                      bool validate_only, const char **why)
{
    struct meta_topic *mt = meta_topic_find(&b->meta, name, len);
    *why = NULL;
    if (mt == NULL)
        return KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    if (new_count <= (int32_t)mt->partition_count) {
        *why = "The new partition count must be larger than the current one";
        return KAFKA_INVALID_PARTITIONS;
    }
    if ((uint32_t)new_count > META_PARTITIONS_MAX) {
        *why = "Number of partitions must be at most 100000";
        return KAFKA_INVALID_PARTITIONS;
    }
    if (validate_only)
        return KAFKA_NONE;
    uint32_t old_count = mt->partition_count;
    size_t added = (size_t)new_count - old_count;
    int32_t *assignment = xcalloc(added * (size_t)mt->replication_factor, sizeof(*assignment));
    for (size_t i = 0; i < added * (size_t)mt->replication_factor; i++)
        assignment[i] = b->cfg->node_id;
    int rc = meta_partitions_grow(&b->meta, mt->name, (uint32_t)new_count, assignment);
    free(assignment);
    ASSERT(rc == 0);
    if (save_metadata(b) < 0) {
        *why = "The broker could not write its metadata";
        return KAFKA_KAFKA_STORAGE_ERROR;
    }
    struct broker_topic *t = broker_topic_find(b, mt->name, strlen(mt->name));
    ASSERT(t != NULL && t->partition_count == old_count);
    if (open_replicas(b, mt, t, old_count) < 0) {
        *why = "The broker could not create the partition logs";
        return KAFKA_KAFKA_STORAGE_ERROR;
    }
    return KAFKA_NONE;
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
            continue; /* offline */
        int rc = log_set_config(replica_log(t->replicas[p]), &cfg);
        /* The values passed validation against the same bounds when they were set. */
        ASSERT(rc == 0);
    }
}

struct dir_ctx {
    struct io *io;
    const char *dir;
};

static int remove_entry(void *ctx, const char *name)
{
    const struct dir_ctx *d = ctx;
    char path[IO_PATH_BYTES_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", d->dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    return io_remove(d->io, path);
}

/* Removes a partition directory and the files in it. */
static int remove_dir(struct broker *b, const char *dir)
{
    struct dir_ctx d = {.io = b->io, .dir = dir};
    int rc = io_list_dir(b->io, dir, remove_entry, &d);
    if (rc == 0)
        rc = io_rmdir(b->io, dir);
    return rc;
}

int broker_delete_topic(struct broker *b, const char *name, size_t len)
{
    struct meta_topic *mt = meta_topic_find(&b->meta, name, len);
    if (mt == NULL)
        return KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    char *copy = xstrdup(mt->name);
    int rc = meta_topic_delete(&b->meta, copy);
    ASSERT(rc == 0);
    if (save_metadata(b) < 0) {
        /* The topic is gone from this run's image but may come back after a restart: the
         * same as a delete that did not complete, which a client retries. */
        free(copy);
        return KAFKA_KAFKA_STORAGE_ERROR;
    }
    struct broker_topic *t = broker_topic_find(b, copy, strlen(copy));
    if (t != NULL) {
        uint32_t parts = t->partition_count;
        table_remove(b, t);
        topic_free(t, false);
        for (uint32_t p = 0; p < parts; p++) {
            char dir[IO_PATH_BYTES_MAX];
            if (partition_dir(b, copy, p, dir, sizeof(dir)) == 0 && remove_dir(b, dir) < 0)
                fprintf(stderr, "chronik: cannot remove %s\n", dir);
        }
        io_sync_dir(b->io, b->cfg->log_dir);
    }
    free(copy);
    return KAFKA_NONE;
}

/* ---- life cycle -------------------------------------------------------------------------- */

static void on_flusher(void *ctx, uint32_t events)
{
    struct broker *b = ctx;
    (void)events;
    log_flusher_drain(b->flusher);
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
    int rc = net_server_shutdown(&b->server, 10000, on_shutdown_done, b);
    if (rc < 0)
        loop_stop(b->loop);
}

static void on_signal(void *ctx, int signo)
{
    struct broker *b = ctx;
    (void)signo;
    broker_stop(b);
}

static void on_retention(void *ctx)
{
    struct broker *b = ctx;
    for (uint32_t i = 0; i < b->topic_slots; i++) {
        struct broker_topic *t = b->topics[i];
        if (t == NULL || t == &tombstone)
            continue;
        for (uint32_t p = 0; p < t->partition_count; p++)
            if (t->replicas[p] != NULL) /* else offline */
                log_enforce_retention(replica_log(t->replicas[p]));
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

static int load_metadata(struct broker *b)
{
    int rc = meta_image_load(&b->meta, b->io, b->meta_path);
    if (rc == -ENOENT) {
        uint8_t random[META_UUID_BYTES];
        for (int i = 0; i < 2; i++) {
            uint64_t x = rng_next(&b->rng);
            memcpy(random + 8 * i, &x, 8);
        }
        meta_image_set_cluster_id(&b->meta, random);
        return save_metadata(b);
    }
    if (rc < 0)
        fprintf(stderr, "chronik: cannot load %s: %s\n", b->meta_path, err_str(rc));
    return rc;
}

static int open_all(struct broker *b)
{
    for (uint32_t i = 0; i < b->meta.topic_count; i++) {
        int rc;
        if (topic_attach(b, b->meta.topics[i], &rc) == NULL)
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
    return rc == -EEXIST ? 0 : rc;
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

int broker_open(const struct broker_config *cfg, struct broker **out)
{
    struct broker_full *full = xcalloc(1, sizeof(*full));
    struct broker *b = &full->b;
    b->cfg = cfg;
    b->clock = clock_real();
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        seed = clock_mono_ns(b->clock) ^ (uint64_t)getpid();
    rng_seed(&b->rng, seed);
    log_config_from(cfg, &b->log_cfg);

    int rc = loop_epoll_init(&full->loop, b->clock);
    if (rc < 0) {
        free(full);
        return rc;
    }
    b->loop = &full->loop.loop;
    loop_timer_init(&b->retention_timer, on_retention, b);
    /* Block the stop signals before the flusher thread starts, so it inherits the mask and
     * only the loop's signalfd ever sees them. */
    static const int stop_signals[] = {SIGTERM, SIGINT};
    rc = loop_signal_init(b->loop, &b->signals, stop_signals, 2, on_signal, b);
    if (rc < 0) {
        loop_epoll_deinit(&full->loop);
        free(full);
        return rc;
    }
    b->io = io_posix_create();
    b->files = log_files_create(b->io, open_files_max());
    b->flusher = log_flusher_create(true);
    meta_image_init(&b->meta);
    *out = b;

    loop_fd_init(&b->flusher_watch, log_flusher_fd(b->flusher), on_flusher, b);
    rc = loop_fd_start(b->loop, &b->flusher_watch, LOOP_READ);
    if (rc < 0)
        goto fail;

    rc = ensure_dir(b->io, cfg->log_dir);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot use data directory %s: %s\n", cfg->log_dir, err_str(rc));
        goto fail;
    }
    if (snprintf(b->meta_path, sizeof(b->meta_path), "%s/metadata.image", cfg->log_dir) >=
        (int)sizeof(b->meta_path)) {
        rc = -ENAMETOOLONG;
        goto fail;
    }
    rc = load_metadata(b);
    if (rc < 0)
        goto fail;
    rc = open_all(b);
    if (rc < 0)
        goto fail;
    /* The group coordinator loads __consumer_offsets before the listener opens. */
    rc = groups_open(b);
    if (rc < 0)
        goto fail;

    struct net_server_config ncfg;
    net_server_config_default(&ncfg);
    ncfg.host = cfg->listener.host[0] != '\0' ? cfg->listener.host : "0.0.0.0";
    ncfg.port = cfg->listener.port;
    ncfg.frame_bytes_max = (uint32_t)cfg->socket_request_max_bytes;
    ncfg.idle_ms = (uint64_t)cfg->connections_max_idle_ms;
    const struct net_handler handler = {.request = broker_on_request, .closed = NULL, .ctx = b};
    rc = net_server_init(&b->server, b->loop, &ncfg, &handler);
    if (rc < 0) {
        fprintf(stderr, "chronik: cannot listen on %s:%u: %s\n", ncfg.host, ncfg.port, err_str(rc));
        goto fail;
    }
    b->server_up = true;
    rc = loop_timer_start(b->loop, &b->retention_timer, 30000, 30000);
    if (rc < 0)
        goto fail;
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

uint16_t broker_port(const struct broker *b)
{
    return net_server_port(&b->server);
}

void broker_close(struct broker *b)
{
    struct broker_full *full = CONTAINER_OF(b, struct broker_full, b);
    if (b->server_up)
        net_server_deinit(&b->server);
    loop_timer_stop(b->loop, &b->retention_timer);
    /* Long polls hold pointers to replicas of many topics: answer them all before any
     * replica closes. */
    fetch_finish_all(b);
    groups_close(b);
    for (uint32_t i = 0; i < b->topic_slots; i++) {
        struct broker_topic *t = b->topics[i];
        if (t != NULL && t != &tombstone)
            topic_free(t, true);
    }
    free(b->topics);
    /* Completions of the last syncs arrive through the flusher; the logs waited for them. */
    log_flusher_drain(b->flusher);
    loop_fd_stop(b->loop, &b->flusher_watch);
    loop_signal_deinit(b->loop, &b->signals);
    log_flusher_destroy(b->flusher);
    log_files_destroy(b->files);
    meta_image_deinit(&b->meta);
    io_destroy(b->io);
    loop_epoll_deinit(&full->loop);
    free(full);
}
