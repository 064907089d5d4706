/*
 * The cluster metadata image: the cluster id, the topics with their ids, partitions, replica
 * assignments and leaders, and per-topic configuration overrides.
 *
 * The image is plain data owned by one thread (the event loop). Changes go through the
 * meta_* functions below, which validate and either apply the whole change or nothing; each
 * applied change bumps `version`. Today a standalone node persists the image with
 * meta_image_save() (one file, replaced atomically) after every change; the metadata Raft
 * group will later produce the same changes as log records, and the image API stays as is.
 *
 * Ownership: the image owns every topic, partition array and config string in it. Pointers
 * returned by lookups stay valid until the next change to the image.
 */
#ifndef CHRONIK_CLUSTER_METADATA_H
#define CHRONIK_CLUSTER_METADATA_H

#include "base/limits.h"
#include "io/io.h"

#include <stdbool.h>
#include <stdint.h>

#define META_UUID_BYTES       16
#define META_CLUSTER_ID_CHARS 22 /* base64url of a UUID, without padding, as Kafka */

struct meta_uuid {
    uint8_t b[META_UUID_BYTES];
};

struct meta_partition {
    int32_t leader; /* node id; -1 when there is none */
    int32_t leader_epoch;
    uint8_t replica_count;
    uint8_t isr_count;
    int32_t replicas[RAFT_VOTERS_MAX];
    int32_t isr[RAFT_VOTERS_MAX];
};

struct meta_config_entry {
    char *key;
    char *value;
};

struct meta_topic {
    char *name;
    struct meta_uuid id;
    int16_t replication_factor;
    uint32_t partition_count;
    struct meta_partition *partitions;
    uint32_t config_count;
    struct meta_config_entry *configs; /* sorted by key */
};

struct meta_image {
    char cluster_id[META_CLUSTER_ID_CHARS + 1];
    uint64_t version;
    uint32_t topic_count;
    uint32_t topic_cap;
    struct meta_topic **topics; /* sorted by name */
};

void meta_image_init(struct meta_image *img);
void meta_image_deinit(struct meta_image *img);

/* Sets a new random cluster id (from 16 random bytes the caller supplies). */
void meta_image_set_cluster_id(struct meta_image *img, const uint8_t random[META_UUID_BYTES]);

/* Kafka's topic name rules: 1..249 chars of [a-zA-Z0-9._-], not "." or "..". */
bool meta_topic_name_valid(const char *name, size_t len);

struct meta_topic *meta_topic_find(const struct meta_image *img, const char *name, size_t len);
struct meta_topic *meta_topic_find_id(const struct meta_image *img, const struct meta_uuid *id);
bool meta_uuid_is_zero(const struct meta_uuid *id);

/*
 * Creates a topic. `assignment` holds partition_count * replication_factor node ids, partition
 * by partition; the first replica of each partition is its leader, at leader epoch 0, and the
 * ISR is all replicas. `id` must be non-zero and unused.
 * Errors: ERR_INVALID (bad name, count or id), -EEXIST (name taken or a name that collides with
 * an existing one when '.' and '_' are treated alike, as Kafka refuses), ERR_TOO_LARGE.
 */
int meta_topic_create(struct meta_image *img, const char *name, const struct meta_uuid *id,
                      uint32_t partition_count, int16_t replication_factor,
                      const int32_t *assignment);
/* ERR_NOT_FOUND if there is no such topic. */
int meta_topic_delete(struct meta_image *img, const char *name);
/* Grows a topic to new_count partitions; `assignment` gives replication_factor node ids for
 * each new partition. ERR_INVALID if new_count is not larger than the current count. */
int meta_partitions_grow(struct meta_image *img, const char *name, uint32_t new_count,
                         const int32_t *assignment);
/* Sets (value != NULL) or removes (value == NULL) a topic config override. */
int meta_topic_config_set(struct meta_image *img, const char *name, const char *key,
                          const char *value);
/* The override for key, or NULL. */
const char *meta_topic_config_get(const struct meta_topic *t, const char *key);
/* Sets a partition's leader and epoch; the epoch may only grow. */
int meta_partition_set_leader(struct meta_image *img, const char *name, uint32_t partition,
                              int32_t leader, int32_t leader_epoch);

/*
 * Persistence: the image as one file `path`, written to `path.tmp`, synced, renamed over
 * `path`, and the directory synced, so a crash leaves either the old or the new image.
 * meta_image_load() returns -ENOENT when there is no file (a new data directory) and
 * ERR_CORRUPT when the file fails its checksum or does not parse; `img` must be freshly
 * initialised and is left initialised (empty) on error.
 */
int meta_image_save(const struct meta_image *img, struct io *io, const char *dir, const char *path);
int meta_image_load(struct meta_image *img, struct io *io, const char *path);

#endif
