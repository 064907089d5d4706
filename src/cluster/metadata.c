/*
 * The metadata image and its file format.
 *
 * Invariants: topics[] is sorted by name with no duplicates and no two names equal once '.'
 * and '_' are treated alike; every topic has partition_count >= 1 partitions, each with
 * replication_factor replicas, except a topic made by a KRaft TopicRecord, which has none until
 * its PartitionRecords (in the same batch) follow (cluster/meta_records.c keeps
 * replication_factor equal to partition 0's replica count); config overrides are sorted by key
 * with unique keys; brokers[] is sorted by id, features[] by name.
 *
 * Snapshot format (all integers big-endian): "CHRMETA2", u32 body length, body, u32 CRC-32C of
 * the body. Body: u64 version, 22-byte cluster id, u32 topic count, then per topic (a topic
 * record): u16 name length + name, 16-byte id, i16 replication factor, u32 partition count, per
 * partition (i32 leader, i32 leader epoch, u8 replica count + i32 replicas, u8 isr count + i32
 * isr), u32 config count, per config (u16 key length + key, u16 value length + value); then u32
 * broker config count and per config (str16 resource, str16 key, str16 value). "CHRMETA1" files,
 * written before dynamic broker configs existed, are the same without the broker configs and
 * are still read.
 *
 * Journal format: frames of u32 length (of what follows), u32 CRC-32C of the body, body. Body:
 * u64 image version after the frame, u32 record count, records. A record is a u8 type and:
 * RECORD_TOPIC, a topic record as above (the topic replaces any topic of that name);
 * RECORD_REMOVE_TOPIC, str16 name and 16-byte id (removes the topic if it has that id);
 * RECORD_BROKER_CONFIG, str16 resource, str16 key, u8 present, str16 value when present.
 */
#include "cluster/metadata.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAGIC       "CHRMETA2"
#define FILE_MAGIC_V1    "CHRMETA1"
#define FILE_MAGIC_BYTES 8

#define SNAPSHOT_NAME "metadata.image"
#define JOURNAL_NAME  "metadata.journal"

/* Frame header: u32 length, u32 checksum; body header: u64 version, u32 record count. */
#define FRAME_HEADER_BYTES 8u
#define FRAME_BODY_MIN     12u

enum record_type {
    RECORD_TOPIC = 1,
    RECORD_REMOVE_TOPIC = 2,
    RECORD_BROKER_CONFIG = 3,
};

void meta_image_init(struct meta_image *img)
{
    memset(img, 0, sizeof(*img));
}

static void topic_free(struct meta_topic *t)
{
    for (uint32_t i = 0; i < t->config_count; i++) {
        free(t->configs[i].key);
        free(t->configs[i].value);
    }
    free(t->configs);
    free(t->partitions);
    free(t->name);
    free(t);
}

static void broker_config_free(struct meta_broker_config *c)
{
    free(c->resource);
    free(c->key);
    free(c->value);
}

void meta_broker_free(struct meta_broker *b)
{
    for (uint32_t i = 0; i < b->endpoint_count; i++) {
        free(b->endpoints[i].name);
        free(b->endpoints[i].host);
    }
    free(b->endpoints);
    free(b->rack);
    memset(b, 0, sizeof(*b));
}

void meta_image_deinit(struct meta_image *img)
{
    for (uint32_t i = 0; i < img->broker_count; i++)
        meta_broker_free(&img->brokers[i]);
    free(img->brokers);
    for (uint32_t i = 0; i < img->feature_count; i++)
        free(img->features[i].name);
    free(img->features);
    for (uint32_t i = 0; i < img->topic_count; i++)
        topic_free(img->topics[i]);
    free(img->topics);
    for (uint32_t i = 0; i < img->broker_config_count; i++)
        broker_config_free(&img->broker_configs[i]);
    free(img->broker_configs);
    meta_image_init(img);
}

void meta_image_set_cluster_id(struct meta_image *img, const uint8_t random[META_UUID_BYTES])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    /* 128 bits as 22 base64url characters: 21 full 6-bit groups and a last group of 2 bits. */
    unsigned bit = 0;
    for (int i = 0; i < META_CLUSTER_ID_CHARS; i++) {
        unsigned v = 0;
        for (int k = 0; k < 6; k++, bit++) {
            unsigned b = bit < 128 ? (random[bit / 8] >> (7 - bit % 8)) & 1u : 0u;
            v = v << 1 | b;
        }
        img->cluster_id[i] = alphabet[v];
    }
    img->cluster_id[META_CLUSTER_ID_CHARS] = '\0';
    img->version++;
}

void meta_image_set_cluster_id_text(struct meta_image *img, const char *id)
{
    ASSERT(strlen(id) == META_CLUSTER_ID_CHARS);
    memcpy(img->cluster_id, id, META_CLUSTER_ID_CHARS + 1);
    img->version++;
}

bool meta_topic_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > META_TOPIC_NAME_BYTES_MAX)
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Compares a (len bytes) with the NUL-terminated b as strings. */
static int name_cmp(const char *a, size_t len, const char *b)
{
    size_t blen = strlen(b);
    int c = memcmp(a, b, MIN(len, blen));
    if (c != 0)
        return c;
    return len < blen ? -1 : len > blen ? 1 : 0;
}

/* Index of the first topic whose name is >= name. */
static uint32_t lower_bound(const struct meta_image *img, const char *name, size_t len)
{
    uint32_t lo = 0, hi = img->topic_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (name_cmp(name, len, img->topics[mid]->name) > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct meta_topic *meta_topic_find(const struct meta_image *img, const char *name, size_t len)
{
    uint32_t i = lower_bound(img, name, len);
    if (i < img->topic_count && name_cmp(name, len, img->topics[i]->name) == 0)
        return img->topics[i];
    return NULL;
}

bool meta_uuid_is_zero(const struct meta_uuid *id)
{
    static const struct meta_uuid zero;
    return memcmp(id, &zero, sizeof(zero)) == 0;
}

bool meta_uuid_is_reserved(const struct meta_uuid *id)
{
    static const struct meta_uuid one = {.b = {[META_UUID_BYTES - 1] = 1}};
    return meta_uuid_is_zero(id) || memcmp(id, &one, sizeof(one)) == 0;
}

struct meta_topic *meta_topic_find_id(const struct meta_image *img, const struct meta_uuid *id)
{
    if (img->recent != NULL && memcmp(&img->recent->id, id, sizeof(*id)) == 0)
        return img->recent;
    /* Linear: ids are looked up per request only by the newer Fetch and DeleteTopics versions,
     * and topic counts per node are modest. */
    for (uint32_t i = 0; i < img->topic_count; i++)
        if (memcmp(&img->topics[i]->id, id, sizeof(*id)) == 0)
            return img->topics[i];
    return NULL;
}

static bool names_collide(const char *a, const char *b)
{
    for (; *a != '\0' && *b != '\0'; a++, b++) {
        char x = *a == '.' ? '_' : *a;
        char y = *b == '.' ? '_' : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

static void fill_partition(struct meta_partition *p, const int32_t *replicas, int16_t rf)
{
    memset(p, 0, sizeof(*p));
    p->leader = replicas[0];
    p->leader_epoch = 0;
    p->replica_count = (uint8_t)rf;
    p->isr_count = (uint8_t)rf;
    for (int16_t r = 0; r < rf; r++) {
        p->replicas[r] = replicas[r];
        p->isr[r] = replicas[r];
    }
}

static bool assignment_valid(const int32_t *assignment, uint32_t partitions, int16_t rf)
{
    for (uint32_t p = 0; p < partitions; p++) {
        const int32_t *r = assignment + (size_t)p * (size_t)rf;
        for (int16_t i = 0; i < rf; i++) {
            if (r[i] < 0)
                return false;
            for (int16_t j = 0; j < i; j++)
                if (r[i] == r[j])
                    return false;
        }
    }
    return true;
}

/* The checks every new topic passes (see meta_topic_create). */
static int topic_check_new(const struct meta_image *img, const char *name,
                           const struct meta_uuid *id)
{
    if (!meta_topic_name_valid(name, strlen(name)) || meta_uuid_is_reserved(id))
        return ERR_INVALID;
    if (img->topic_count >= META_TOPICS_MAX)
        return ERR_TOO_LARGE;
    if (meta_topic_find_id(img, id) != NULL)
        return ERR_INVALID;
    for (uint32_t i = 0; i < img->topic_count; i++)
        if (names_collide(name, img->topics[i]->name))
            return -EEXIST;
    return 0;
}

static void topic_insert(struct meta_image *img, struct meta_topic *t)
{
    if (img->topic_count == img->topic_cap) {
        img->topic_cap = img->topic_cap == 0 ? 16 : img->topic_cap * 2;
        img->topics = xrealloc(img->topics, img->topic_cap * sizeof(*img->topics));
    }
    uint32_t at = lower_bound(img, t->name, strlen(t->name));
    memmove(&img->topics[at + 1], &img->topics[at], (img->topic_count - at) * sizeof(*img->topics));
    img->topics[at] = t;
    img->topic_count++;
    img->version++;
}

int meta_topic_create(struct meta_image *img, const char *name, const struct meta_uuid *id,
                      uint32_t partition_count, int16_t replication_factor,
                      const int32_t *assignment)
{
    if (partition_count == 0 || replication_factor < 1 ||
        (unsigned)replication_factor > RAFT_VOTERS_MAX ||
        !assignment_valid(assignment, partition_count, replication_factor))
        return ERR_INVALID;
    if (partition_count > META_PARTITIONS_MAX)
        return ERR_TOO_LARGE;
    int rc = topic_check_new(img, name, id);
    if (rc != 0)
        return rc;

    struct meta_topic *t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(name);
    t->id = *id;
    t->replication_factor = replication_factor;
    t->partition_count = partition_count;
    t->partitions = xcalloc(partition_count, sizeof(*t->partitions));
    for (uint32_t p = 0; p < partition_count; p++)
        fill_partition(&t->partitions[p], assignment + (size_t)p * (size_t)replication_factor,
                       replication_factor);
    topic_insert(img, t);
    return 0;
}

int meta_topic_create_empty(struct meta_image *img, const char *name, const struct meta_uuid *id)
{
    int rc = topic_check_new(img, name, id);
    if (rc != 0)
        return rc;
    struct meta_topic *t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(name);
    t->id = *id;
    topic_insert(img, t);
    return 0;
}

int meta_topic_delete(struct meta_image *img, const char *name)
{
    size_t len = strlen(name);
    uint32_t at = lower_bound(img, name, len);
    if (at >= img->topic_count || name_cmp(name, len, img->topics[at]->name) != 0)
        return ERR_NOT_FOUND;
    if (img->recent == img->topics[at])
        img->recent = NULL;
    topic_free(img->topics[at]);
    memmove(&img->topics[at], &img->topics[at + 1],
            (img->topic_count - at - 1) * sizeof(*img->topics));
    img->topic_count--;
    img->version++;
    return 0;
}

int meta_partitions_grow(struct meta_image *img, const char *name, uint32_t new_count,
                         const int32_t *assignment)
{
    struct meta_topic *t = meta_topic_find(img, name, strlen(name));
    if (t == NULL)
        return ERR_NOT_FOUND;
    if (new_count <= t->partition_count)
        return ERR_INVALID;
    if (new_count > META_PARTITIONS_MAX)
        return ERR_TOO_LARGE;
    uint32_t added = new_count - t->partition_count;
    if (!assignment_valid(assignment, added, t->replication_factor))
        return ERR_INVALID;
    t->partitions = xrealloc(t->partitions, new_count * sizeof(*t->partitions));
    for (uint32_t i = 0; i < added; i++)
        fill_partition(&t->partitions[t->partition_count + i],
                       assignment + (size_t)i * (size_t)t->replication_factor,
                       t->replication_factor);
    t->partition_count = new_count;
    img->version++;
    return 0;
}

int meta_partitions_shrink(struct meta_image *img, const char *name, uint32_t count)
{
    struct meta_topic *t = meta_topic_find(img, name, strlen(name));
    if (t == NULL)
        return ERR_NOT_FOUND;
    if (count == 0 || count >= t->partition_count)
        return ERR_INVALID;
    t->partition_count = count;
    img->version++;
    return 0;
}

static uint32_t config_lower_bound(const struct meta_topic *t, const char *key)
{
    uint32_t lo = 0, hi = t->config_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->configs[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const char *meta_topic_config_get(const struct meta_topic *t, const char *key)
{
    uint32_t i = config_lower_bound(t, key);
    if (i < t->config_count && strcmp(t->configs[i].key, key) == 0)
        return t->configs[i].value;
    return NULL;
}

int meta_topic_config_set(struct meta_image *img, const char *name, const char *key,
                          const char *value)
{
    struct meta_topic *t = meta_topic_find(img, name, strlen(name));
    if (t == NULL)
        return ERR_NOT_FOUND;
    size_t klen = strlen(key);
    if (klen == 0 || klen > META_CONFIG_KEY_BYTES_MAX ||
        (value != NULL && strlen(value) > META_CONFIG_VALUE_BYTES_MAX))
        return ERR_INVALID;
    uint32_t i = config_lower_bound(t, key);
    bool present = i < t->config_count && strcmp(t->configs[i].key, key) == 0;
    if (value == NULL) {
        if (!present)
            return 0;
        free(t->configs[i].key);
        free(t->configs[i].value);
        memmove(&t->configs[i], &t->configs[i + 1],
                (t->config_count - i - 1) * sizeof(*t->configs));
        t->config_count--;
    } else if (present) {
        free(t->configs[i].value);
        t->configs[i].value = xstrdup(value);
    } else {
        if (t->config_count >= META_TOPIC_CONFIGS_MAX)
            return ERR_TOO_LARGE;
        t->configs = xrealloc(t->configs, (t->config_count + 1) * sizeof(*t->configs));
        memmove(&t->configs[i + 1], &t->configs[i], (t->config_count - i) * sizeof(*t->configs));
        t->configs[i].key = xstrdup(key);
        t->configs[i].value = xstrdup(value);
        t->config_count++;
    }
    img->version++;
    return 0;
}

int meta_partition_set_leader(struct meta_image *img, const char *name, uint32_t partition,
                              int32_t leader, int32_t leader_epoch)
{
    struct meta_topic *t = meta_topic_find(img, name, strlen(name));
    if (t == NULL)
        return ERR_NOT_FOUND;
    if (partition >= t->partition_count)
        return ERR_RANGE;
    struct meta_partition *p = &t->partitions[partition];
    if (leader_epoch < p->leader_epoch)
        return ERR_INVALID;
    p->leader = leader;
    p->leader_epoch = leader_epoch;
    img->version++;
    return 0;
}

/* ---- dynamic broker configs -------------------------------------------------------------- */

static int broker_config_cmp(const struct meta_broker_config *c, const char *resource,
                             const char *key)
{
    int r = strcmp(c->resource, resource);
    return r != 0 ? r : strcmp(c->key, key);
}

static uint32_t broker_config_lower_bound(const struct meta_image *img, const char *resource,
                                          const char *key)
{
    uint32_t lo = 0, hi = img->broker_config_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (broker_config_cmp(&img->broker_configs[mid], resource, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const char *meta_broker_config_get(const struct meta_image *img, const char *resource,
                                   const char *key)
{
    uint32_t i = broker_config_lower_bound(img, resource, key);
    if (i < img->broker_config_count &&
        broker_config_cmp(&img->broker_configs[i], resource, key) == 0)
        return img->broker_configs[i].value;
    return NULL;
}

int meta_broker_config_set(struct meta_image *img, const char *resource, const char *key,
                           const char *value)
{
    size_t klen = strlen(key);
    if (strlen(resource) > META_CONFIG_KEY_BYTES_MAX || klen == 0 ||
        klen > META_CONFIG_KEY_BYTES_MAX ||
        (value != NULL && strlen(value) > META_CONFIG_VALUE_BYTES_MAX))
        return ERR_INVALID;
    uint32_t i = broker_config_lower_bound(img, resource, key);
    bool present = i < img->broker_config_count &&
                   broker_config_cmp(&img->broker_configs[i], resource, key) == 0;
    struct meta_broker_config *cs = img->broker_configs;
    if (value == NULL) {
        if (!present)
            return 0;
        broker_config_free(&cs[i]);
        memmove(&cs[i], &cs[i + 1], (img->broker_config_count - i - 1) * sizeof(*cs));
        img->broker_config_count--;
    } else if (present) {
        free(cs[i].value);
        cs[i].value = xstrdup(value);
    } else {
        if (img->broker_config_count >= META_BROKER_CONFIGS_MAX)
            return ERR_TOO_LARGE;
        cs = xrealloc(cs, (img->broker_config_count + 1) * sizeof(*cs));
        memmove(&cs[i + 1], &cs[i], (img->broker_config_count - i) * sizeof(*cs));
        cs[i].resource = xstrdup(resource);
        cs[i].key = xstrdup(key);
        cs[i].value = xstrdup(value);
        img->broker_configs = cs;
        img->broker_config_count++;
    }
    img->version++;
    return 0;
}

/* Puts a decoded topic into the image in place of any topic of the same name (replay of a
 * topic record). Takes ownership of t. */
static void topic_put(struct meta_image *img, struct meta_topic *t)
{
    size_t len = strlen(t->name);
    uint32_t at = lower_bound(img, t->name, len);
    if (at < img->topic_count && name_cmp(t->name, len, img->topics[at]->name) == 0) {
        if (img->recent == img->topics[at])
            img->recent = NULL;
        topic_free(img->topics[at]);
        img->topics[at] = t;
        return;
    }
    if (img->topic_count == img->topic_cap) {
        img->topic_cap = img->topic_cap == 0 ? 16 : img->topic_cap * 2;
        img->topics = xrealloc(img->topics, img->topic_cap * sizeof(*img->topics));
    }
    memmove(&img->topics[at + 1], &img->topics[at], (img->topic_count - at) * sizeof(*img->topics));
    img->topics[at] = t;
    img->topic_count++;
}

/* ---- file format ------------------------------------------------------------------------- */

static void put_str16(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    ASSERT(n <= UINT16_MAX);
    buf_put_be16(b, (uint16_t)n);
    buf_append(b, s, n);
}

static void encode_topic(struct buf *b, const struct meta_topic *t)
{
    put_str16(b, t->name);
    buf_append(b, t->id.b, META_UUID_BYTES);
    buf_put_be16(b, (uint16_t)t->replication_factor);
    buf_put_be32(b, t->partition_count);
    for (uint32_t p = 0; p < t->partition_count; p++) {
        const struct meta_partition *mp = &t->partitions[p];
        buf_put_be32(b, (uint32_t)mp->leader);
        buf_put_be32(b, (uint32_t)mp->leader_epoch);
        buf_put_u8(b, mp->replica_count);
        for (unsigned r = 0; r < mp->replica_count; r++)
            buf_put_be32(b, (uint32_t)mp->replicas[r]);
        buf_put_u8(b, mp->isr_count);
        for (unsigned r = 0; r < mp->isr_count; r++)
            buf_put_be32(b, (uint32_t)mp->isr[r]);
    }
    buf_put_be32(b, t->config_count);
    for (uint32_t c = 0; c < t->config_count; c++) {
        put_str16(b, t->configs[c].key);
        put_str16(b, t->configs[c].value);
    }
}

static void encode_image(const struct meta_image *img, struct buf *b)
{
    buf_append(b, FILE_MAGIC, FILE_MAGIC_BYTES);
    size_t len_at = b->len;
    buf_put_be32(b, 0);
    size_t body_at = b->len;
    buf_put_be64(b, img->version);
    buf_append(b, img->cluster_id, META_CLUSTER_ID_CHARS);
    buf_put_be32(b, img->topic_count);
    for (uint32_t i = 0; i < img->topic_count; i++)
        encode_topic(b, img->topics[i]);
    buf_put_be32(b, img->broker_config_count);
    for (uint32_t i = 0; i < img->broker_config_count; i++) {
        put_str16(b, img->broker_configs[i].resource);
        put_str16(b, img->broker_configs[i].key);
        put_str16(b, img->broker_configs[i].value);
    }
    size_t body_len = b->len - body_at;
    ASSERT(body_len <= UINT32_MAX);
    be32_store(b->data + len_at, (uint32_t)body_len);
    buf_put_be32(b, crc32c(b->data + body_at, body_len));
}

/* A string of at most max bytes, copied to the heap; NULL on a reader error or bad length. */
static char *read_str16(struct reader *r, size_t max)
{
    uint16_t n = rd_be16(r);
    if (n > max) {
        rd_fail(r, ERR_CORRUPT);
        return NULL;
    }
    const uint8_t *p = rd_bytes(r, n);
    if (p == NULL)
        return NULL;
    char *s = xmalloc((size_t)n + 1);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static int decode_topic(struct reader *r, struct meta_topic *t)
{
    t->name = read_str16(r, META_TOPIC_NAME_BYTES_MAX);
    const uint8_t *id = rd_bytes(r, META_UUID_BYTES);
    if (t->name == NULL || id == NULL)
        return ERR_CORRUPT;
    memcpy(t->id.b, id, META_UUID_BYTES);
    t->replication_factor = (int16_t)rd_be16(r);
    uint32_t count = rd_be32(r);
    /* Each partition takes at least 10 bytes: bound the count by what is there. */
    if (rd_err(r) != 0 || count == 0 || count > META_PARTITIONS_MAX || count > rd_left(r) / 10 ||
        t->replication_factor < 1 || (unsigned)t->replication_factor > RAFT_VOTERS_MAX)
        return ERR_CORRUPT;
    t->partitions = xcalloc(count, sizeof(*t->partitions));
    t->partition_count = count;
    for (uint32_t p = 0; p < count; p++) {
        struct meta_partition *mp = &t->partitions[p];
        mp->leader = (int32_t)rd_be32(r);
        mp->leader_epoch = (int32_t)rd_be32(r);
        mp->replica_count = rd_u8(r);
        if (mp->replica_count > RAFT_VOTERS_MAX)
            return ERR_CORRUPT;
        for (unsigned k = 0; k < mp->replica_count; k++)
            mp->replicas[k] = (int32_t)rd_be32(r);
        mp->isr_count = rd_u8(r);
        if (mp->isr_count > RAFT_VOTERS_MAX)
            return ERR_CORRUPT;
        for (unsigned k = 0; k < mp->isr_count; k++)
            mp->isr[k] = (int32_t)rd_be32(r);
    }
    uint32_t configs = rd_be32(r);
    if (rd_err(r) != 0 || configs > META_TOPIC_CONFIGS_MAX)
        return ERR_CORRUPT;
    t->configs = xcalloc(configs == 0 ? 1 : configs, sizeof(*t->configs));
    for (uint32_t c = 0; c < configs; c++) {
        t->configs[c].key = read_str16(r, META_CONFIG_KEY_BYTES_MAX);
        t->configs[c].value = read_str16(r, META_CONFIG_VALUE_BYTES_MAX);
        t->config_count = c + 1;
        if (t->configs[c].key == NULL || t->configs[c].value == NULL)
            return ERR_CORRUPT;
        if (c > 0 && strcmp(t->configs[c - 1].key, t->configs[c].key) >= 0)
            return ERR_CORRUPT;
    }
    return rd_err(r) == 0 ? 0 : ERR_CORRUPT;
}

/* A topic record, validated as the image's invariants require; NULL when it does not parse. */
static struct meta_topic *read_topic(struct reader *r)
{
    struct meta_topic *t = xcalloc(1, sizeof(*t));
    if (decode_topic(r, t) != 0 || !meta_topic_name_valid(t->name, strlen(t->name))) {
        topic_free(t);
        return NULL;
    }
    return t;
}

static int decode_broker_configs(struct reader *r, struct meta_image *img)
{
    uint32_t n = rd_be32(r);
    if (rd_err(r) != 0 || n > META_BROKER_CONFIGS_MAX)
        return ERR_CORRUPT;
    img->broker_configs = xcalloc(n == 0 ? 1 : n, sizeof(*img->broker_configs));
    for (uint32_t i = 0; i < n; i++) {
        struct meta_broker_config *c = &img->broker_configs[i];
        c->resource = read_str16(r, META_CONFIG_KEY_BYTES_MAX);
        c->key = read_str16(r, META_CONFIG_KEY_BYTES_MAX);
        c->value = read_str16(r, META_CONFIG_VALUE_BYTES_MAX);
        img->broker_config_count = i + 1;
        if (c->resource == NULL || c->key == NULL || c->value == NULL)
            return ERR_CORRUPT;
        if (i > 0 && broker_config_cmp(&img->broker_configs[i - 1], c->resource, c->key) >= 0)
            return ERR_CORRUPT;
    }
    return 0;
}

static int decode_image(struct meta_image *img, const uint8_t *data, size_t len)
{
    struct reader r;
    rd_init(&r, data, len);
    const uint8_t *magic = rd_bytes(&r, FILE_MAGIC_BYTES);
    uint32_t body_len = rd_be32(&r);
    if (magic == NULL || (size_t)body_len + 4 != rd_left(&r))
        return ERR_CORRUPT;
    bool v1 = memcmp(magic, FILE_MAGIC_V1, FILE_MAGIC_BYTES) == 0;
    if (!v1 && memcmp(magic, FILE_MAGIC, FILE_MAGIC_BYTES) != 0)
        return ERR_CORRUPT;
    const uint8_t *body = r.pos;
    if (crc32c(body, body_len) != be32_load(body + body_len))
        return ERR_CORRUPT;
    rd_init(&r, body, body_len);
    img->version = rd_be64(&r);
    const uint8_t *cid = rd_bytes(&r, META_CLUSTER_ID_CHARS);
    uint32_t topics = rd_be32(&r);
    if (cid == NULL || topics > META_TOPICS_MAX)
        return ERR_CORRUPT;
    memcpy(img->cluster_id, cid, META_CLUSTER_ID_CHARS);
    img->cluster_id[META_CLUSTER_ID_CHARS] = '\0';
    img->topics = xcalloc(topics == 0 ? 1 : topics, sizeof(*img->topics));
    img->topic_cap = topics == 0 ? 1 : topics;
    for (uint32_t i = 0; i < topics; i++) {
        struct meta_topic *t = xcalloc(1, sizeof(*t));
        img->topics[i] = t;
        img->topic_count = i + 1;
        int rc = decode_topic(&r, t);
        if (rc != 0)
            return rc;
        if (!meta_topic_name_valid(t->name, strlen(t->name)) ||
            (i > 0 && strcmp(img->topics[i - 1]->name, t->name) >= 0))
            return ERR_CORRUPT;
    }
    if (!v1 && decode_broker_configs(&r, img) != 0)
        return ERR_CORRUPT;
    return rd_left(&r) == 0 && rd_err(&r) == 0 ? 0 : ERR_CORRUPT;
}

static int write_all(struct io *io, const char *path, const struct buf *b)
{
    struct io_file *f = NULL;
    int rc = io_open(io, path, IO_RDWR | IO_CREATE, &f);
    if (rc < 0)
        return rc;
    rc = io_truncate(f, 0);
    if (rc == 0) {
        ssize_t w = io_pwrite(f, b->data, b->len, 0);
        rc = w < 0 ? (int)w : 0;
    }
    if (rc == 0)
        rc = io_sync(f);
    io_close(f);
    return rc;
}

int meta_write_atomic(struct io *io, const char *dir, const char *path, const struct buf *b)
{
    char tmp[IO_PATH_BYTES_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int rc = write_all(io, tmp, b);
    if (rc == 0)
        rc = io_rename(io, tmp, path);
    if (rc == 0)
        rc = io_sync_dir(io, dir);
    return rc;
}

static int save_image(const struct meta_image *img, struct io *io, const char *dir,
                      const char *path, uint64_t *bytes)
{
    struct buf b;
    buf_init(&b);
    encode_image(img, &b);
    *bytes = b.len;
    int rc = meta_write_atomic(io, dir, path, &b);
    buf_deinit(&b);
    return rc;
}

int meta_image_save(const struct meta_image *img, struct io *io, const char *dir, const char *path)
{
    uint64_t bytes;
    return save_image(img, io, dir, path, &bytes);
}

static int load_image(struct meta_image *img, struct io *io, const char *path, uint64_t *bytes)

{
    struct io_file *f = NULL;
    uint8_t *data = NULL;
    int rc = io_open(io, path, IO_RDONLY, &f);
    if (rc < 0)
        return rc;
    uint64_t size = 0;
    rc = io_size(f, &size);
    if (rc < 0)
        goto fail;
    if (size > META_IMAGE_BYTES_MAX) {
        rc = ERR_CORRUPT;
        goto fail;
    }
    data = xmalloc((size_t)size);
    ssize_t got = io_pread(f, data, (size_t)size, 0);
    if (got < 0) {
        rc = (int)got;
        goto fail;
    }
    rc = (uint64_t)got == size ? decode_image(img, data, (size_t)size) : ERR_CORRUPT;
    *bytes = size;
fail:
    if (rc != 0)
        meta_image_deinit(img);
    free(data);
    if (f != NULL)
        io_close(f);
    return rc;
}

int meta_image_load(struct meta_image *img, struct io *io, const char *path)
{
    uint64_t bytes;
    return load_image(img, io, path, &bytes);
}

/* ---- the store: snapshot and journal ------------------------------------------------------ */

static int store_paths(struct meta_store *s, const char *dir)
{
    int n1 = snprintf(s->dir, sizeof(s->dir), "%s", dir);
    int n2 = snprintf(s->snapshot_path, sizeof(s->snapshot_path), "%s/" SNAPSHOT_NAME, dir);
    int n3 = snprintf(s->journal_path, sizeof(s->journal_path), "%s/" JOURNAL_NAME, dir);
    if (n1 >= (int)sizeof(s->dir) || n2 >= (int)sizeof(s->snapshot_path) ||
        n3 >= (int)sizeof(s->journal_path))
        return -ENAMETOOLONG;
    return 0;
}

static int apply_record(struct meta_image *img, struct reader *r)
{
    uint8_t type = rd_u8(r);
    if (rd_err(r) != 0)
        return ERR_CORRUPT;
    if (type == RECORD_TOPIC) {
        struct meta_topic *t = read_topic(r);
        if (t == NULL)
            return ERR_CORRUPT;
        topic_put(img, t);
        return 0;
    }
    if (type == RECORD_REMOVE_TOPIC) {
        char *name = read_str16(r, META_TOPIC_NAME_BYTES_MAX);
        const uint8_t *id = rd_bytes(r, META_UUID_BYTES);
        if (name == NULL || id == NULL) {
            free(name);
            return ERR_CORRUPT;
        }
        const struct meta_topic *t = meta_topic_find(img, name, strlen(name));
        if (t != NULL && memcmp(t->id.b, id, META_UUID_BYTES) == 0)
            meta_topic_delete(img, name);
        free(name);
        return 0;
    }
    if (type == RECORD_BROKER_CONFIG) {
        char *resource = read_str16(r, META_CONFIG_KEY_BYTES_MAX);
        char *key = read_str16(r, META_CONFIG_KEY_BYTES_MAX);
        uint8_t present = rd_u8(r);
        char *value = present != 0 ? read_str16(r, META_CONFIG_VALUE_BYTES_MAX) : NULL;
        int rc = ERR_CORRUPT;
        if (resource != NULL && key != NULL && (present == 0 || value != NULL) && rd_err(r) == 0)
            rc = meta_broker_config_set(img, resource, key, value) == 0 ? 0 : ERR_CORRUPT;
        free(resource);
        free(key);
        free(value);
        return rc;
    }
    return ERR_CORRUPT;
}

/* Applies one frame body unless the image already holds it. */
static int apply_frame(struct meta_image *img, const uint8_t *body, size_t len)
{
    struct reader r;
    rd_init(&r, body, len);
    uint64_t version = rd_be64(&r);
    uint32_t count = rd_be32(&r);
    if (rd_err(&r) != 0)
        return ERR_CORRUPT;
    if (version <= img->version)
        return 0;
    for (uint32_t i = 0; i < count; i++) {
        int rc = apply_record(img, &r);
        if (rc != 0)
            return rc;
    }
    if (rd_left(&r) != 0)
        return ERR_CORRUPT;
    img->version = version;
    return 0;
}

/*
 * Replays the journal into img and sets s->journal_bytes to the end of its last whole frame,
 * cutting off a torn tail. A frame that fails its checksum is a torn tail only when it is the
 * last thing in the file: frames are synced one by one, so a crash can damage only the last.
 */
static int replay_journal(struct meta_store *s, struct meta_image *img)
{
    uint64_t size = 0;
    int rc = io_size(s->journal, &size);
    if (rc < 0)
        return rc;
    uint64_t off = 0;
    uint8_t *body = NULL;
    while (off < size) {
        uint8_t head[FRAME_HEADER_BYTES];
        if (size - off < FRAME_HEADER_BYTES)
            break;
        ssize_t got = io_pread(s->journal, head, sizeof(head), off);
        if (got < 0) {
            rc = (int)got;
            goto done;
        }
        uint32_t len = be32_load(head);
        if (len < FRAME_BODY_MIN || len > META_JOURNAL_FRAME_BYTES_MAX ||
            len > size - off - FRAME_HEADER_BYTES)
            break;
        body = xrealloc(body, len);
        got = io_pread(s->journal, body, len, off + FRAME_HEADER_BYTES);
        if (got < 0) {
            rc = (int)got;
            goto done;
        }
        if ((uint64_t)got != len) {
            rc = ERR_CORRUPT;
            goto done;
        }
        if (crc32c(body, len) != be32_load(head + 4)) {
            if (off + FRAME_HEADER_BYTES + len < size) {
                rc = ERR_CORRUPT;
                goto done;
            }
            break;
        }
        rc = apply_frame(img, body, len);
        if (rc != 0)
            goto done;
        off += FRAME_HEADER_BYTES + len;
    }
    s->journal_bytes = off;
    s->torn_bytes = size - off;
    if (off < size) {
        rc = io_truncate(s->journal, off);
        if (rc == 0)
            rc = io_sync(s->journal);
    }
done:
    free(body);
    return rc;
}

int meta_store_open(struct meta_store *s, struct io *io, const char *dir, struct meta_image *img,
                    bool *created)
{
    memset(s, 0, sizeof(*s));
    s->io = io;
    buf_init(&s->pending);
    *created = false;
    int rc = store_paths(s, dir);
    if (rc < 0)
        goto fail;
    rc = load_image(img, io, s->snapshot_path, &s->snapshot_bytes);
    bool have_snapshot = rc == 0;
    if (rc < 0 && rc != -ENOENT)
        goto fail;
    rc = io_open(io, s->journal_path, IO_RDWR | IO_CREATE, &s->journal);
    if (rc < 0)
        goto fail;
    /* The journal's entry must be durable before a frame in it counts. */
    rc = io_sync_dir(io, dir);
    if (rc < 0)
        goto fail;
    rc = replay_journal(s, img);
    if (rc < 0)
        goto fail;
    if (!have_snapshot && s->journal_bytes > 0) {
        /* Frames are only written after a snapshot exists: the snapshot was lost. */
        rc = ERR_CORRUPT;
        goto fail;
    }
    *created = !have_snapshot;
    return 0;
fail:
    meta_image_deinit(img);
    meta_store_close(s);
    return rc;
}

void meta_store_close(struct meta_store *s)
{
    if (s->journal != NULL)
        io_close(s->journal);
    s->journal = NULL;
    buf_deinit(&s->pending);
}

void meta_store_put_topic(struct meta_store *s, const struct meta_topic *t)
{
    buf_put_u8(&s->pending, RECORD_TOPIC);
    encode_topic(&s->pending, t);
    s->pending_count++;
}

void meta_store_remove_topic(struct meta_store *s, const char *name, const struct meta_uuid *id)
{
    buf_put_u8(&s->pending, RECORD_REMOVE_TOPIC);
    put_str16(&s->pending, name);
    buf_append(&s->pending, id->b, META_UUID_BYTES);
    s->pending_count++;
}

void meta_store_put_broker_config(struct meta_store *s, const char *resource, const char *key,
                                  const char *value)
{
    buf_put_u8(&s->pending, RECORD_BROKER_CONFIG);
    put_str16(&s->pending, resource);
    put_str16(&s->pending, key);
    buf_put_u8(&s->pending, value != NULL);
    if (value != NULL)
        put_str16(&s->pending, value);
    s->pending_count++;
}

static int append_frame(struct meta_store *s, const struct meta_image *img)
{
    size_t body_len = FRAME_BODY_MIN + s->pending.len;
    if (body_len > META_JOURNAL_FRAME_BYTES_MAX)
        return ERR_TOO_LARGE;
    struct buf f;
    buf_init(&f);
    buf_put_be32(&f, (uint32_t)body_len);
    buf_put_be32(&f, 0);
    buf_put_be64(&f, img->version);
    buf_put_be32(&f, s->pending_count);
    buf_append(&f, s->pending.data, s->pending.len);
    be32_store(f.data + 4, crc32c(f.data + FRAME_HEADER_BYTES, body_len));
    ssize_t w = io_pwrite(s->journal, f.data, f.len, s->journal_bytes);
    int rc = w < 0 ? (int)w : (size_t)w != f.len ? -EIO : 0;
    if (rc == 0)
        rc = io_sync(s->journal);
    if (rc == 0)
        s->journal_bytes += f.len;
    else
        s->broken = true;
    buf_deinit(&f);
    return rc;
}

int meta_store_commit(struct meta_store *s, const struct meta_image *img)
{
    int rc = 0;
    if (s->pending_count == 0)
        return 0;
    rc = s->broken ? -EIO : append_frame(s, img);
    buf_reset(&s->pending);
    s->pending_count = 0;
    if (rc == 0 && s->journal_bytes >= MAX((uint64_t)META_JOURNAL_BYTES_MIN, s->snapshot_bytes))
        (void)meta_store_snapshot(s, img);
    return rc;
}

int meta_store_snapshot(struct meta_store *s, const struct meta_image *img)
{
    if (s->broken)
        return -EIO;
    uint64_t bytes = 0;
    int rc = save_image(img, s->io, s->dir, s->snapshot_path, &bytes);
    if (rc < 0)
        return rc;
    s->snapshot_bytes = bytes;
    /* Frames left behind by a crash before this truncation are skipped by their version. */
    rc = io_truncate(s->journal, 0);
    if (rc == 0)
        rc = io_sync(s->journal);
    if (rc < 0) {
        s->broken = true;
        return rc;
    }
    s->journal_bytes = 0;
    return 0;
}
