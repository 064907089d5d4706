/*
 * The metadata image and its file format.
 *
 * Invariants: topics[] is sorted by name with no duplicates and no two names equal once '.'
 * and '_' are treated alike; every topic has partition_count >= 1 partitions, each with
 * replication_factor replicas; config overrides are sorted by key with unique keys.
 *
 * File format (all integers big-endian): "CHRMETA1", u32 body length, body, u32 CRC-32C of the
 * body. Body: u64 version, 22-byte cluster id, u32 topic count, then per topic: u16 name
 * length + name, 16-byte id, i16 replication factor, u32 partition count, per partition
 * (i32 leader, i32 leader epoch, u8 replica count + i32 replicas, u8 isr count + i32 isr),
 * u32 config count, per config (u16 key length + key, u16 value length + value).
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

#define FILE_MAGIC       "CHRMETA1"
#define FILE_MAGIC_BYTES 8

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

void meta_image_deinit(struct meta_image *img)
{
    for (uint32_t i = 0; i < img->topic_count; i++)
        topic_free(img->topics[i]);
    free(img->topics);
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

struct meta_topic *meta_topic_find_id(const struct meta_image *img, const struct meta_uuid *id)
{
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

int meta_topic_create(struct meta_image *img, const char *name, const struct meta_uuid *id,
                      uint32_t partition_count, int16_t replication_factor,
                      const int32_t *assignment)
{
    size_t len = strlen(name);
    if (!meta_topic_name_valid(name, len) || meta_uuid_is_zero(id) || partition_count == 0 ||
        replication_factor < 1 || (unsigned)replication_factor > RAFT_VOTERS_MAX ||
        !assignment_valid(assignment, partition_count, replication_factor))
        return ERR_INVALID;
    if (partition_count > META_PARTITIONS_MAX || img->topic_count >= META_TOPICS_MAX)
        return ERR_TOO_LARGE;
    if (meta_topic_find_id(img, id) != NULL)
        return ERR_INVALID;
    for (uint32_t i = 0; i < img->topic_count; i++)
        if (names_collide(name, img->topics[i]->name))
            return -EEXIST;

    struct meta_topic *t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(name);
    t->id = *id;
    t->replication_factor = replication_factor;
    t->partition_count = partition_count;
    t->partitions = xcalloc(partition_count, sizeof(*t->partitions));
    for (uint32_t p = 0; p < partition_count; p++)
        fill_partition(&t->partitions[p], assignment + (size_t)p * (size_t)replication_factor,
                       replication_factor);

    if (img->topic_count == img->topic_cap) {
        img->topic_cap = img->topic_cap == 0 ? 16 : img->topic_cap * 2;
        img->topics = xrealloc(img->topics, img->topic_cap * sizeof(*img->topics));
    }
    uint32_t at = lower_bound(img, name, len);
    memmove(&img->topics[at + 1], &img->topics[at], (img->topic_count - at) * sizeof(*img->topics));
    img->topics[at] = t;
    img->topic_count++;
    img->version++;
    return 0;
}

int meta_topic_delete(struct meta_image *img, const char *name)
{
    size_t len = strlen(name);
    uint32_t at = lower_bound(img, name, len);
    if (at >= img->topic_count || name_cmp(name, len, img->topics[at]->name) != 0)
        return ERR_NOT_FOUND;
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

/* ---- file format ------------------------------------------------------------------------- */

static void put_str16(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    ASSERT(n <= UINT16_MAX);
    buf_put_be16(b, (uint16_t)n);
    buf_append(b, s, n);
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
    for (uint32_t i = 0; i < img->topic_count; i++) {
        const struct meta_topic *t = img->topics[i];
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

static int decode_image(struct meta_image *img, const uint8_t *data, size_t len)
{
    struct reader r;
    rd_init(&r, data, len);
    const uint8_t *magic = rd_bytes(&r, FILE_MAGIC_BYTES);
    uint32_t body_len = rd_be32(&r);
    if (magic == NULL || memcmp(magic, FILE_MAGIC, FILE_MAGIC_BYTES) != 0 ||
        (size_t)body_len + 4 != rd_left(&r))
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

int meta_image_save(const struct meta_image *img, struct io *io, const char *dir, const char *path)
{
    char tmp[IO_PATH_BYTES_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    struct buf b;
    buf_init(&b);
    encode_image(img, &b);
    int rc = write_all(io, tmp, &b);
    buf_deinit(&b);
    if (rc == 0)
        rc = io_rename(io, tmp, path);
    if (rc == 0)
        rc = io_sync_dir(io, dir);
    return rc;
}

int meta_image_load(struct meta_image *img, struct io *io, const char *path)
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
fail:
    if (rc != 0)
        meta_image_deinit(img);
    free(data);
    if (f != NULL)
        io_close(f);
    return rc;
}
