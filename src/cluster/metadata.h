/*
 * The cluster metadata image: the cluster id, the topics with their ids, partitions, replica
 * assignments and leaders, and per-topic configuration overrides.
 *
 * The image is plain data owned by one thread (the event loop). Changes go through the
 * meta_* functions below, which validate and either apply the whole change or nothing; each
 * applied change bumps `version`. A standalone node persists the image with a meta_store:
 * an append-only journal of change records (one append and one sync per request, whatever
 * the number of changes in it) and a snapshot of the whole image that truncates the journal
 * once the journal outgrows it. The records mirror Kafka's KRaft metadata records (a topic
 * record carries its partitions and configs, RemoveTopicRecord, ConfigRecord for a broker
 * resource), so the metadata Raft group can later carry the same changes and apply them to
 * the same image.
 *
 * Ownership: the image owns every topic, partition array and config string in it. Pointers
 * returned by lookups stay valid until the next change to the image.
 */
#ifndef CHRONIK_CLUSTER_METADATA_H
#define CHRONIK_CLUSTER_METADATA_H

#include "base/buf.h"
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
    int32_t partition_epoch; /* bumped by every PartitionChangeRecord (KRaft's) */
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

/* A dynamic broker config (Kafka's ConfigRecord with resource type BROKER): resource is the
 * node id in decimal, or "" for the cluster-wide default. */
struct meta_broker_config {
    char *resource;
    char *key;
    char *value;
};

/* A broker's listener as RegisterBrokerRecord carries it. */
struct meta_endpoint {
    char *name; /* the listener name, e.g. "PLAINTEXT" */
    char *host;
    uint16_t port;
    int16_t security_protocol; /* Kafka's SecurityProtocol id: 0 PLAINTEXT, 1 SSL, ... */
};

/* A registered broker (RegisterBrokerRecord, then Fence/Unfence/BrokerRegistrationChange). */
struct meta_broker {
    int32_t id;
    struct meta_uuid incarnation_id; /* one per process start: a restart registers anew */
    int64_t epoch;                   /* given by the controller at registration */
    uint32_t endpoint_count;
    struct meta_endpoint *endpoints;
    char *rack; /* NULL: none */
    bool fenced;
    bool in_controlled_shutdown;
};

/* A finalized feature level (FeatureLevelRecord); level 0 is never stored. */
struct meta_feature {
    char *name;
    int16_t level;
};

struct meta_image {
    char cluster_id[META_CLUSTER_ID_CHARS + 1];
    uint64_t version;
    uint32_t topic_count;
    uint32_t topic_cap;
    struct meta_topic **topics; /* sorted by name */
    uint32_t broker_config_count;
    struct meta_broker_config *broker_configs; /* sorted by (resource, key) */
    /* Kept by the KRaft records of cluster/meta_records.h (not by the meta_store files). */
    uint32_t broker_count;
    struct meta_broker *brokers; /* sorted by id */
    uint32_t feature_count;
    struct meta_feature *features; /* sorted by name */
    int64_t next_producer_id;      /* first id of the next block; 0 before any block */
    struct meta_topic *recent;     /* cache of the last topic found by id; NULL after a delete */
};

void meta_image_init(struct meta_image *img);
void meta_image_deinit(struct meta_image *img);
void meta_broker_free(struct meta_broker *b);

/* Sets a new random cluster id (from 16 random bytes the caller supplies). */
void meta_image_set_cluster_id(struct meta_image *img, const uint8_t random[META_UUID_BYTES]);
/* Sets the cluster id to id, META_CLUSTER_ID_CHARS base64url characters (the caller checked). */
void meta_image_set_cluster_id_text(struct meta_image *img, const char *id);

/* Kafka's topic name rules: 1..249 chars of [a-zA-Z0-9._-], not "." or "..". */
bool meta_topic_name_valid(const char *name, size_t len);

struct meta_topic *meta_topic_find(const struct meta_image *img, const char *name, size_t len);
struct meta_topic *meta_topic_find_id(const struct meta_image *img, const struct meta_uuid *id);
bool meta_uuid_is_zero(const struct meta_uuid *id);
/* Kafka's reserved ids, never a topic's: zero, and one (METADATA_TOPIC_ID, which names the
 * metadata Raft group on the cluster wire, cluster/wire.h). */
bool meta_uuid_is_reserved(const struct meta_uuid *id);

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
/* A topic with no partitions yet (KRaft's TopicRecord: PartitionRecords follow). Same checks
 * and errors as meta_topic_create. */
int meta_topic_create_empty(struct meta_image *img, const char *name, const struct meta_uuid *id);
/* ERR_NOT_FOUND if there is no such topic. */
int meta_topic_delete(struct meta_image *img, const char *name);
/* Grows a topic to new_count partitions; `assignment` gives replication_factor node ids for
 * each new partition. ERR_INVALID if new_count is not larger than the current count. */
int meta_partitions_grow(struct meta_image *img, const char *name, uint32_t new_count,
                         const int32_t *assignment);
/* Undoes a grow whose commit failed: back to count partitions (ERR_INVALID if not fewer). */
int meta_partitions_shrink(struct meta_image *img, const char *name, uint32_t count);
/* Sets (value != NULL) or removes (value == NULL) a topic config override. */
int meta_topic_config_set(struct meta_image *img, const char *name, const char *key,
                          const char *value);
/* The override for key, or NULL. */
const char *meta_topic_config_get(const struct meta_topic *t, const char *key);
/* Sets a partition's leader and epoch; the epoch may only grow. */
int meta_partition_set_leader(struct meta_image *img, const char *name, uint32_t partition,
                              int32_t leader, int32_t leader_epoch);

/* Sets (value != NULL) or removes (value == NULL) a dynamic broker config. ERR_INVALID for a
 * resource, key or value over its bound, ERR_TOO_LARGE past META_BROKER_CONFIGS_MAX. */
int meta_broker_config_set(struct meta_image *img, const char *resource, const char *key,
                           const char *value);
/* The value for (resource, key), or NULL. */
const char *meta_broker_config_get(const struct meta_image *img, const char *resource,
                                   const char *key);

/*
 * The snapshot file: the image as one file `path`, written to `path.tmp`, synced, renamed over
 * `path`, and the directory synced, so a crash leaves either the old or the new image.
 * meta_image_load() returns -ENOENT when there is no file (a new data directory) and
 * ERR_CORRUPT when the file fails its checksum or does not parse; `img` must be freshly
 * initialised and is left initialised (empty) on error.
 */
int meta_image_save(const struct meta_image *img, struct io *io, const char *dir, const char *path);
/* Writes b as the whole file path atomically (path.tmp, sync, rename, sync of dir). */
int meta_write_atomic(struct io *io, const char *dir, const char *path, const struct buf *b);
int meta_image_load(struct meta_image *img, struct io *io, const char *path);

/*
 * The metadata store of a data directory: `metadata.image` (the snapshot, in the format of
 * meta_image_save, which also reads the files of earlier versions that had no journal) and
 * `metadata.journal` (frames of change records appended since that snapshot).
 *
 * A caller changes the image, records each change with meta_store_put_topic(),
 * meta_store_remove_topic() or meta_store_put_broker_config(), then calls meta_store_commit()
 * once: the records go to the journal as one frame (one write, one sync), so a crash keeps all
 * of a request's changes or none. Records are idempotent (a topic record replaces the topic of
 * that name whole), and each frame carries the image version after it, so replay skips frames
 * a snapshot already holds and a crash between a snapshot and the journal's truncation is
 * harmless. Once the journal is larger than the snapshot (and than META_JOURNAL_BYTES_MIN),
 * a commit writes a new snapshot and empties the journal, so the cost of a change stays
 * proportional to the change.
 *
 * A failed append or sync breaks the store: the journal's state on disk is unknown, so every
 * later commit fails with -EIO until the broker restarts and recovers. Owns its open journal
 * file; the caller owns the image.
 */
struct meta_store {
    struct io *io;
    char dir[IO_PATH_BYTES_MAX];
    char snapshot_path[IO_PATH_BYTES_MAX];
    char journal_path[IO_PATH_BYTES_MAX];
    struct io_file *journal;
    uint64_t journal_bytes;
    uint64_t snapshot_bytes;
    struct buf pending; /* records of the next frame */
    uint32_t pending_count;
    uint64_t torn_bytes; /* cut off the journal's tail by meta_store_open, for its log line */
    bool broken;
};

/*
 * Opens the store of dir and loads the image from it: the snapshot, then every journal frame
 * after it. A torn last frame (short, or failing its checksum with nothing after it) is cut off;
 * a bad frame followed by more data is ERR_CORRUPT. *created is true when the directory held
 * no metadata at all: the caller then sets the cluster id and calls meta_store_snapshot().
 * `img` must be freshly initialised; on error it is left initialised (empty) and the store
 * closed.
 */
int meta_store_open(struct meta_store *s, struct io *io, const char *dir, struct meta_image *img,
                    bool *created);
void meta_store_close(struct meta_store *s);
/* Record a change already made to the image. */
void meta_store_put_topic(struct meta_store *s, const struct meta_topic *t);
void meta_store_remove_topic(struct meta_store *s, const char *name, const struct meta_uuid *id);
void meta_store_put_broker_config(struct meta_store *s, const char *resource, const char *key,
                                  const char *value);
/* Appends the recorded changes as one frame and syncs it; 0 without changes. The recorded
 * changes are dropped either way. May then write a snapshot; a failed snapshot does not fail
 * the commit (the journal holds the changes) and is tried again at the next commit. */
int meta_store_commit(struct meta_store *s, const struct meta_image *img);
/* Writes a snapshot of img atomically and empties the journal. */
int meta_store_snapshot(struct meta_store *s, const struct meta_image *img);

#endif
