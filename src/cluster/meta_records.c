/*
 * KRaft metadata records applied to the image, and the image as records (see meta_records.h).
 *
 * Every apply function checks everything first and changes the image only when the whole record
 * applies, so a refused record leaves no trace. Semantics follow Kafka's image (MetadataDelta):
 * - TopicRecord makes a topic with no partitions; PartitionRecord puts partition PartitionId
 *   (a new one must be the next index, since partitions are an array; an existing one is
 *   replaced whole); RemoveTopicRecord drops the topic with its configs.
 * - PartitionChangeRecord (PartitionRegistration.merge): null Replicas / Isr keep them; Leader
 *   -2 keeps leader and leader epoch, any other value sets the leader and bumps the leader
 *   epoch; the partition epoch is bumped by every change. Adding/removing replicas
 *   (reassignment) are not kept, so a record that sets them is refused.
 * - ConfigRecord: TOPIC (the topic must exist) or BROKER ("" or a node id) resources; a null
 *   value deletes.
 * - RegisterBrokerRecord replaces the broker's registration; Fence/Unfence/Unregister and
 *   BrokerRegistrationChange need the registration's epoch.
 * - ProducerIdsRecord moves the next block start, only upwards; FeatureLevelRecord sets a
 *   level (0 removes it); NoOpRecord changes nothing.
 */
#include "cluster/meta_records.h"

#include "base/alloc.h"
#include "base/arena.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"
#include "log/batch.h"
#include "proto/gen/kafka.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- record lists ------------------------------------------------------------------------- */

void meta_records_init(struct meta_records *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->bytes);
}

void meta_records_deinit(struct meta_records *r)
{
    buf_deinit(&r->bytes);
    free(r->ends);
    memset(r, 0, sizeof(*r));
}

void meta_records_reset(struct meta_records *r)
{
    buf_reset(&r->bytes);
    r->count = 0;
}

static int16_t write_version(int16_t type)
{
    switch (type) {
    case METAREC_REGISTER_BROKER:
    case METAREC_BROKER_REGISTRATION_CHANGE:
        return 1; /* InControlledShutdown */
    default:
        return 0;
    }
}

void meta_records_add(struct meta_records *r, int16_t type, const void *body)
{
    int rc = metarec_encode(type, write_version(type), body, &r->bytes);
    /* Bodies are built from the image's bounded values: failing to encode is a bug. */
    ASSERT(rc == 0);
    if (r->count == r->cap) {
        r->cap = r->cap == 0 ? 16 : r->cap * 2;
        r->ends = xrealloc(r->ends, r->cap * sizeof(*r->ends));
    }
    r->ends[r->count++] = r->bytes.len;
}

struct slice meta_records_at(const struct meta_records *r, uint32_t i)
{
    ASSERT(i < r->count);
    size_t start = i == 0 ? 0 : r->ends[i - 1];
    return slice_make(r->bytes.data + start, r->ends[i] - start);
}

int meta_records_batch(const struct meta_records *r, uint32_t first, uint32_t n,
                       int64_t timestamp_ms, struct buf *out)
{
    if (n == 0 || first > r->count || n > r->count - first)
        return ERR_INVALID;
    struct batch_record *recs = xcalloc(n, sizeof(*recs));
    for (uint32_t i = 0; i < n; i++)
        recs[i] = (struct batch_record){.key = slice_make(NULL, 0),
                                        .value = meta_records_at(r, first + i),
                                        .timestamp_ms = timestamp_ms};
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    int rc = batch_build(out, &opts, recs, n);
    free(recs);
    return rc;
}

/* ---- lookups ------------------------------------------------------------------------------ */

static uint32_t broker_lower_bound(const struct meta_image *img, int32_t id)
{
    uint32_t lo = 0, hi = img->broker_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (img->brokers[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct meta_broker *meta_broker_find(const struct meta_image *img, int32_t id)
{
    uint32_t i = broker_lower_bound(img, id);
    return i < img->broker_count && img->brokers[i].id == id ? &img->brokers[i] : NULL;
}

static uint32_t feature_lower_bound(const struct meta_image *img, const char *name)
{
    uint32_t lo = 0, hi = img->feature_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (strcmp(img->features[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int16_t meta_feature_level(const struct meta_image *img, const char *name)
{
    uint32_t i = feature_lower_bound(img, name);
    return i < img->feature_count && strcmp(img->features[i].name, name) == 0
               ? img->features[i].level
               : 0;
}

static struct meta_topic *topic_by_id(struct meta_image *img, const struct proto_uuid *id)
{
    struct meta_uuid u;
    memcpy(u.b, id->bytes, META_UUID_BYTES);
    struct meta_topic *t = meta_topic_find_id(img, &u);
    if (t != NULL)
        img->recent = t;
    return t;
}

/* A C string of at most max bytes with no NUL inside. */
static bool str_ok(struct proto_str s, size_t max, bool allow_empty)
{
    return s.ptr != NULL && s.len <= max && (allow_empty || s.len > 0) &&
           memchr(s.ptr, '\0', s.len) == NULL;
}

/* ---- partitions --------------------------------------------------------------------------- */

struct ids {
    const int32_t *items;
    size_t count;
};

static bool ids_has(const int32_t *v, size_t n, int32_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

static bool ids_distinct(const int32_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0 || ids_has(v, i, v[i]))
            return false;
    return true;
}

/* The rules every partition keeps: 1..RAFT_VOTERS_MAX distinct replicas, an ISR of distinct
 * replicas, a leader in the ISR or none, epochs >= 0. */
static int partition_check(const struct meta_partition *p)
{
    if (p->replica_count == 0 || !ids_distinct(p->replicas, p->replica_count) ||
        !ids_distinct(p->isr, p->isr_count) || p->leader_epoch < 0 || p->partition_epoch < 0)
        return ERR_INVALID;
    for (unsigned i = 0; i < p->isr_count; i++)
        if (!ids_has(p->replicas, p->replica_count, p->isr[i]))
            return ERR_INVALID;
    if (p->leader != META_NO_LEADER && !ids_has(p->isr, p->isr_count, p->leader))
        return ERR_INVALID;
    return 0;
}

static int copy_ids(int32_t *dst, uint8_t *count, const int32_t *src, size_t n)
{
    if (n > RAFT_VOTERS_MAX)
        return ERR_TOO_LARGE;
    if (n > 0)
        memcpy(dst, src, n * sizeof(*dst));
    *count = (uint8_t)n;
    return 0;
}

static void topic_set_partition(struct meta_image *img, struct meta_topic *t, uint32_t index,
                                const struct meta_partition *p)
{
    if (index == t->partition_count) {
        t->partitions = xrealloc(t->partitions, (size_t)(index + 1) * sizeof(*t->partitions));
        t->partition_count++;
    }
    t->partitions[index] = *p;
    if (index == 0)
        t->replication_factor = (int16_t)p->replica_count;
    img->version++;
}

static int apply_partition(struct meta_image *img, const struct kafka_partition_record *r)
{
    struct meta_topic *t = topic_by_id(img, &r->topic_id);
    if (t == NULL)
        return ERR_NOT_FOUND;
    if (r->partition_id < 0 || (uint32_t)r->partition_id > t->partition_count)
        return ERR_NOT_FOUND;
    if ((uint32_t)r->partition_id >= META_PARTITIONS_MAX)
        return ERR_TOO_LARGE;
    if (r->adding_replicas.count > 0 || r->removing_replicas.count > 0)
        return ERR_UNSUPPORTED;
    struct meta_partition p;
    memset(&p, 0, sizeof(p));
    int rc = copy_ids(p.replicas, &p.replica_count, r->replicas.items, r->replicas.count);
    if (rc == 0)
        rc = copy_ids(p.isr, &p.isr_count, r->isr.items, r->isr.count);
    if (rc != 0)
        return rc;
    p.leader = r->leader;
    p.leader_epoch = r->leader_epoch;
    p.partition_epoch = r->partition_epoch;
    rc = partition_check(&p);
    if (rc != 0)
        return rc;
    topic_set_partition(img, t, (uint32_t)r->partition_id, &p);
    return 0;
}

static int apply_partition_change(struct meta_image *img,
                                  const struct kafka_partition_change_record *r)
{
    struct meta_topic *t = topic_by_id(img, &r->topic_id);
    if (t == NULL)
        return ERR_NOT_FOUND;
    if (r->partition_id < 0 || (uint32_t)r->partition_id >= t->partition_count)
        return ERR_NOT_FOUND;
    if ((r->adding_replicas.items != NULL && r->adding_replicas.count > 0) ||
        (r->removing_replicas.items != NULL && r->removing_replicas.count > 0))
        return ERR_UNSUPPORTED;
    if (r->leader < META_NO_LEADER_CHANGE)
        return ERR_INVALID;
    struct meta_partition p = t->partitions[r->partition_id];
    int rc = 0;
    if (r->replicas.items != NULL)
        rc = copy_ids(p.replicas, &p.replica_count, r->replicas.items, r->replicas.count);
    if (rc == 0 && r->isr.items != NULL)
        rc = copy_ids(p.isr, &p.isr_count, r->isr.items, r->isr.count);
    if (rc != 0)
        return rc;
    if (r->leader_epoch >= 0) {
        /* A replicated partition: its Raft term, as its leader reported it. */
        if (r->leader_epoch < p.leader_epoch)
            return ERR_INVALID;
        if (r->leader != META_NO_LEADER_CHANGE)
            p.leader = r->leader;
        p.leader_epoch = r->leader_epoch;
    } else if (r->leader != META_NO_LEADER_CHANGE) {
        if (p.leader_epoch == INT32_MAX)
            return ERR_INVALID;
        p.leader = r->leader;
        p.leader_epoch++;
    }
    if (p.partition_epoch == INT32_MAX)
        return ERR_INVALID;
    p.partition_epoch++;
    rc = partition_check(&p);
    if (rc != 0)
        return rc;
    topic_set_partition(img, t, (uint32_t)r->partition_id, &p);
    return 0;
}

/* ---- topics and configs ------------------------------------------------------------------- */

static int apply_topic(struct meta_image *img, const struct kafka_topic_record *r)
{
    if (!str_ok(r->name, META_TOPIC_NAME_BYTES_MAX, false))
        return ERR_INVALID;
    struct meta_uuid id;
    memcpy(id.b, r->topic_id.bytes, META_UUID_BYTES);
    if (meta_topic_find(img, r->name.ptr, r->name.len) != NULL)
        return ERR_INVALID;
    int rc = meta_topic_create_empty(img, r->name.ptr, &id);
    return rc == -EEXIST ? ERR_INVALID : rc;
}

static int apply_remove_topic(struct meta_image *img, const struct kafka_remove_topic_record *r)
{
    struct meta_topic *t = topic_by_id(img, &r->topic_id);
    if (t == NULL)
        return ERR_NOT_FOUND;
    return meta_topic_delete(img, t->name);
}

/* A BROKER config resource: "" (the cluster default) or a node id in decimal. */
static bool broker_resource_ok(struct proto_str s)
{
    if (!str_ok(s, 10, true))
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9' || (i == 0 && s.ptr[i] == '0' && s.len > 1))
            return false;
        v = v * 10 + (s.ptr[i] - '0');
    }
    return v <= INT32_MAX;
}

static int apply_config(struct meta_image *img, const struct kafka_config_record *r)
{
    if (!str_ok(r->name, META_CONFIG_KEY_BYTES_MAX, false) ||
        (r->value.ptr != NULL && !str_ok(r->value, META_CONFIG_VALUE_BYTES_MAX, true)))
        return ERR_INVALID;
    if (r->resource_type == META_RESOURCE_TOPIC) {
        if (!str_ok(r->resource_name, META_TOPIC_NAME_BYTES_MAX, false))
            return ERR_NOT_FOUND;
        if (meta_topic_find(img, r->resource_name.ptr, r->resource_name.len) == NULL)
            return ERR_NOT_FOUND;
        return meta_topic_config_set(img, r->resource_name.ptr, r->name.ptr, r->value.ptr);
    }
    if (r->resource_type == META_RESOURCE_BROKER) {
        if (!broker_resource_ok(r->resource_name))
            return ERR_INVALID;
        return meta_broker_config_set(img, r->resource_name.ptr, r->name.ptr, r->value.ptr);
    }
    return ERR_UNSUPPORTED;
}

/* ---- brokers ------------------------------------------------------------------------------ */

static char *dup_str(struct proto_str s)
{
    char *c = xmalloc(s.len + 1);
    memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

static int apply_register_broker(struct meta_image *img,
                                 const struct kafka_register_broker_record *r)
{
    if (r->broker_id < 0 || r->broker_epoch < 0)
        return ERR_INVALID;
    if (r->end_points.count > META_BROKER_ENDPOINTS_MAX)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < r->end_points.count; i++) {
        const struct kafka_register_broker_record_broker_endpoint *e = &r->end_points.items[i];
        if (!str_ok(e->name, META_HOST_BYTES_MAX, false) ||
            !str_ok(e->host, META_HOST_BYTES_MAX, true))
            return ERR_INVALID;
    }
    if (r->rack.ptr != NULL && !str_ok(r->rack, META_HOST_BYTES_MAX, true))
        return ERR_INVALID;
    uint32_t at = broker_lower_bound(img, r->broker_id);
    bool present = at < img->broker_count && img->brokers[at].id == r->broker_id;
    if (!present && img->broker_count >= META_BROKERS_MAX)
        return ERR_TOO_LARGE;

    struct meta_broker b;
    memset(&b, 0, sizeof(b));
    b.id = r->broker_id;
    memcpy(b.incarnation_id.b, r->incarnation_id.bytes, META_UUID_BYTES);
    b.epoch = r->broker_epoch;
    b.endpoint_count = (uint32_t)r->end_points.count;
    b.endpoints = xcalloc(b.endpoint_count == 0 ? 1 : b.endpoint_count, sizeof(*b.endpoints));
    for (uint32_t i = 0; i < b.endpoint_count; i++) {
        const struct kafka_register_broker_record_broker_endpoint *e = &r->end_points.items[i];
        b.endpoints[i] = (struct meta_endpoint){.name = dup_str(e->name),
                                                .host = dup_str(e->host),
                                                .port = e->port,
                                                .security_protocol = e->security_protocol};
    }
    b.rack = r->rack.ptr != NULL ? dup_str(r->rack) : NULL;
    b.fenced = r->fenced;
    b.in_controlled_shutdown = r->in_controlled_shutdown;
    if (present) {
        meta_broker_free(&img->brokers[at]);
    } else {
        img->brokers = xrealloc(img->brokers, (img->broker_count + 1) * sizeof(*img->brokers));
        memmove(&img->brokers[at + 1], &img->brokers[at],
                (img->broker_count - at) * sizeof(*img->brokers));
        img->broker_count++;
    }
    img->brokers[at] = b;
    img->version++;
    return 0;
}

/* The registration of id if it has that epoch. */
static struct meta_broker *broker_at_epoch(struct meta_image *img, int32_t id, int64_t epoch,
                                           int *err)
{
    uint32_t at = broker_lower_bound(img, id);
    if (at >= img->broker_count || img->brokers[at].id != id) {
        *err = ERR_NOT_FOUND;
        return NULL;
    }
    if (img->brokers[at].epoch != epoch) {
        *err = ERR_INVALID;
        return NULL;
    }
    return &img->brokers[at];
}

static int apply_unregister_broker(struct meta_image *img,
                                   const struct kafka_unregister_broker_record *r)
{
    int err = 0;
    struct meta_broker *b = broker_at_epoch(img, r->broker_id, r->broker_epoch, &err);
    if (b == NULL)
        return err;
    uint32_t at = (uint32_t)(b - img->brokers);
    meta_broker_free(b);
    memmove(&img->brokers[at], &img->brokers[at + 1],
            (img->broker_count - at - 1) * sizeof(*img->brokers));
    img->broker_count--;
    img->version++;
    return 0;
}

/* fence: 1 fences, -1 unfences, 0 keeps; shutdown: 1 sets in-controlled-shutdown, 0 keeps. */
static int broker_change(struct meta_image *img, int32_t id, int64_t epoch, int fence, int shutdown)
{
    if (fence < -1 || fence > 1 || shutdown < 0 || shutdown > 1)
        return ERR_INVALID;
    int err = 0;
    struct meta_broker *b = broker_at_epoch(img, id, epoch, &err);
    if (b == NULL)
        return err;
    if (fence != 0)
        b->fenced = fence > 0;
    if (shutdown != 0)
        b->in_controlled_shutdown = true;
    img->version++;
    return 0;
}

/* ---- features, producer ids --------------------------------------------------------------- */

static int apply_feature_level(struct meta_image *img, const struct kafka_feature_level_record *r)
{
    if (!str_ok(r->name, META_CONFIG_KEY_BYTES_MAX, false) || r->feature_level < 0)
        return ERR_INVALID;
    uint32_t i = feature_lower_bound(img, r->name.ptr);
    bool present = i < img->feature_count && strcmp(img->features[i].name, r->name.ptr) == 0;
    struct meta_feature *fs = img->features;
    if (r->feature_level == 0) {
        if (present) {
            free(fs[i].name);
            memmove(&fs[i], &fs[i + 1], (img->feature_count - i - 1) * sizeof(*fs));
            img->feature_count--;
        }
    } else if (present) {
        fs[i].level = r->feature_level;
    } else {
        if (img->feature_count >= META_FEATURES_MAX)
            return ERR_TOO_LARGE;
        fs = xrealloc(fs, (img->feature_count + 1) * sizeof(*fs));
        memmove(&fs[i + 1], &fs[i], (img->feature_count - i) * sizeof(*fs));
        fs[i] = (struct meta_feature){.name = dup_str(r->name), .level = r->feature_level};
        img->features = fs;
        img->feature_count++;
    }
    img->version++;
    return 0;
}

static int apply_producer_ids(struct meta_image *img, const struct kafka_producer_ids_record *r)
{
    /* Blocks are never handed out twice: the next start only grows. */
    if (r->next_producer_id <= img->next_producer_id)
        return ERR_INVALID;
    img->next_producer_id = r->next_producer_id;
    img->version++;
    return 0;
}

int meta_apply(struct meta_image *img, const struct metarec *rec)
{
    const void *b = rec->body;
    switch (rec->type) {
    case METAREC_TOPIC:
        return apply_topic(img, b);
    case METAREC_PARTITION:
        return apply_partition(img, b);
    case METAREC_PARTITION_CHANGE:
        return apply_partition_change(img, b);
    case METAREC_REMOVE_TOPIC:
        return apply_remove_topic(img, b);
    case METAREC_CONFIG:
        return apply_config(img, b);
    case METAREC_REGISTER_BROKER:
        return apply_register_broker(img, b);
    case METAREC_UNREGISTER_BROKER:
        return apply_unregister_broker(img, b);
    case METAREC_FENCE_BROKER: {
        const struct kafka_fence_broker_record *r = b;
        return broker_change(img, r->id, r->epoch, 1, 0);
    }
    case METAREC_UNFENCE_BROKER: {
        const struct kafka_unfence_broker_record *r = b;
        return broker_change(img, r->id, r->epoch, -1, 0);
    }
    case METAREC_BROKER_REGISTRATION_CHANGE: {
        const struct kafka_broker_registration_change_record *r = b;
        return broker_change(img, r->broker_id, r->broker_epoch, r->fenced,
                             r->in_controlled_shutdown);
    }
    case METAREC_FEATURE_LEVEL:
        return apply_feature_level(img, b);
    case METAREC_PRODUCER_IDS:
        return apply_producer_ids(img, b);
    case METAREC_NO_OP:
        return 0;
    default:
        return ERR_UNSUPPORTED;
    }
}

int meta_apply_value(struct meta_image *img, struct arena *scratch, struct slice value)
{
    struct metarec rec;
    int rc = metarec_decode(scratch, value, &rec);
    return rc != 0 ? rc : meta_apply(img, &rec);
}

int meta_apply_batch(struct meta_image *img, struct slice batch, struct meta_apply_result *res)
{
    struct meta_apply_result local;
    if (res == NULL) {
        memset(&local, 0, sizeof(local));
        res = &local;
    }
    struct batch_header h;
    int rc = batch_parse(batch.ptr, batch.len, &h);
    if (rc != 0)
        return rc == ERR_INCOMPLETE ? ERR_CORRUPT : rc;
    if (batch_is_control(&h))
        return 0;
    if (batch_codec(&h) != BATCH_CODEC_NONE)
        return ERR_UNSUPPORTED;
    struct batch_rec_iter it;
    batch_rec_iter_init(&it, slice_make(batch.ptr + LOG_BATCH_HEADER_BYTES,
                                        (size_t)batch_total_bytes(&h) - LOG_BATCH_HEADER_BYTES));
    struct arena scratch;
    arena_init(&scratch, ARENA_BLOCK_BYTES_DEFAULT, META_RECORD_ARENA_MAX);
    int first = 0;
    struct batch_rec r;
    while ((rc = batch_rec_iter_next(&it, &r)) == 1) {
        arena_reset(&scratch);
        int err = meta_apply_value(img, &scratch, r.value);
        if (err == 0) {
            res->applied++;
            continue;
        }
        res->refused++;
        if (first == 0)
            first = err;
        if (res->first_error == 0) {
            res->first_error = err;
            res->first_error_offset = h.base_offset + r.offset_delta;
        }
    }
    arena_deinit(&scratch);
    /* batch_parse checked the records already. */
    ASSERT(rc == 0);
    return first;
}

/* ---- snapshot ----------------------------------------------------------------------------- */

struct proto_uuid meta_uuid_to_proto(const struct meta_uuid *u)
{
    struct proto_uuid p;
    memcpy(p.bytes, u->b, META_UUID_BYTES);
    return p;
}

void meta_records_add_broker(struct meta_records *out, const struct meta_broker *b)
{
    struct kafka_register_broker_record r;
    kafka_register_broker_record_init(&r);
    struct kafka_register_broker_record_broker_endpoint eps[META_BROKER_ENDPOINTS_MAX];
    for (uint32_t i = 0; i < b->endpoint_count; i++)
        eps[i] = (struct kafka_register_broker_record_broker_endpoint){
            .name = proto_str_make(b->endpoints[i].name),
            .host = proto_str_make(b->endpoints[i].host),
            .port = b->endpoints[i].port,
            .security_protocol = b->endpoints[i].security_protocol};
    r.broker_id = b->id;
    r.incarnation_id = meta_uuid_to_proto(&b->incarnation_id);
    r.broker_epoch = b->epoch;
    r.end_points.items = eps;
    r.end_points.count = b->endpoint_count;
    r.rack = proto_str_make(b->rack);
    r.fenced = b->fenced;
    r.in_controlled_shutdown = b->in_controlled_shutdown;
    meta_records_add(out, METAREC_REGISTER_BROKER, &r);
}

static void put_config(struct meta_records *out, int8_t type, const char *resource, const char *key,
                       const char *value)
{
    struct kafka_config_record c;
    kafka_config_record_init(&c);
    c.resource_type = type;
    c.resource_name = proto_str_make(resource);
    c.name = proto_str_make(key);
    c.value = proto_str_make(value);
    meta_records_add(out, METAREC_CONFIG, &c);
}

static void put_topic(const struct meta_topic *t, struct meta_records *out)
{
    struct kafka_topic_record tr;
    kafka_topic_record_init(&tr);
    tr.name = proto_str_make(t->name);
    tr.topic_id = meta_uuid_to_proto(&t->id);
    meta_records_add(out, METAREC_TOPIC, &tr);
    for (uint32_t i = 0; i < t->partition_count; i++) {
        const struct meta_partition *p = &t->partitions[i];
        struct kafka_partition_record pr;
        kafka_partition_record_init(&pr);
        pr.partition_id = (int32_t)i;
        pr.topic_id = tr.topic_id;
        pr.replicas.items = (int32_t *)p->replicas;
        pr.replicas.count = p->replica_count;
        pr.isr.items = (int32_t *)p->isr;
        pr.isr.count = p->isr_count;
        pr.leader = p->leader;
        pr.leader_epoch = p->leader_epoch;
        pr.partition_epoch = p->partition_epoch;
        meta_records_add(out, METAREC_PARTITION, &pr);
    }
    for (uint32_t i = 0; i < t->config_count; i++)
        put_config(out, META_RESOURCE_TOPIC, t->name, t->configs[i].key, t->configs[i].value);
}

void meta_snapshot(const struct meta_image *img, struct meta_records *out)
{
    for (uint32_t i = 0; i < img->feature_count; i++) {
        struct kafka_feature_level_record f;
        kafka_feature_level_record_init(&f);
        f.name = proto_str_make(img->features[i].name);
        f.feature_level = img->features[i].level;
        meta_records_add(out, METAREC_FEATURE_LEVEL, &f);
    }
    for (uint32_t i = 0; i < img->broker_count; i++)
        meta_records_add_broker(out, &img->brokers[i]);
    for (uint32_t i = 0; i < img->topic_count; i++)
        put_topic(img->topics[i], out);
    for (uint32_t i = 0; i < img->broker_config_count; i++) {
        const struct meta_broker_config *c = &img->broker_configs[i];
        put_config(out, META_RESOURCE_BROKER, c->resource, c->key, c->value);
    }
    if (img->next_producer_id > 0) {
        /* Kafka's snapshot form: no requesting broker. */
        struct kafka_producer_ids_record p;
        kafka_producer_ids_record_init(&p);
        p.broker_id = -1;
        p.broker_epoch = -1;
        p.next_producer_id = img->next_producer_id;
        meta_records_add(out, METAREC_PRODUCER_IDS, &p);
    }
}

/* ---- equality ----------------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static bool partition_eq(const struct meta_partition *a, const struct meta_partition *b)
{
    return a->leader == b->leader && a->leader_epoch == b->leader_epoch &&
           a->partition_epoch == b->partition_epoch && a->replica_count == b->replica_count &&
           a->isr_count == b->isr_count &&
           memcmp(a->replicas, b->replicas, a->replica_count * sizeof(int32_t)) == 0 &&
           memcmp(a->isr, b->isr, a->isr_count * sizeof(int32_t)) == 0;
}

static bool topic_eq(const struct meta_topic *a, const struct meta_topic *b)
{
    if (!str_eq(a->name, b->name) || memcmp(&a->id, &b->id, sizeof(a->id)) != 0 ||
        a->replication_factor != b->replication_factor ||
        a->partition_count != b->partition_count || a->config_count != b->config_count)
        return false;
    for (uint32_t i = 0; i < a->partition_count; i++)
        if (!partition_eq(&a->partitions[i], &b->partitions[i]))
            return false;
    for (uint32_t i = 0; i < a->config_count; i++)
        if (!str_eq(a->configs[i].key, b->configs[i].key) ||
            !str_eq(a->configs[i].value, b->configs[i].value))
            return false;
    return true;
}

static bool broker_eq(const struct meta_broker *a, const struct meta_broker *b)
{
    if (a->id != b->id || memcmp(&a->incarnation_id, &b->incarnation_id, META_UUID_BYTES) != 0 ||
        a->epoch != b->epoch || a->endpoint_count != b->endpoint_count ||
        !str_eq(a->rack, b->rack) || a->fenced != b->fenced ||
        a->in_controlled_shutdown != b->in_controlled_shutdown)
        return false;
    for (uint32_t i = 0; i < a->endpoint_count; i++) {
        const struct meta_endpoint *x = &a->endpoints[i], *y = &b->endpoints[i];
        if (!str_eq(x->name, y->name) || !str_eq(x->host, y->host) || x->port != y->port ||
            x->security_protocol != y->security_protocol)
            return false;
    }
    return true;
}

bool meta_image_equal(const struct meta_image *a, const struct meta_image *b)
{
    if (a->topic_count != b->topic_count || a->broker_count != b->broker_count ||
        a->broker_config_count != b->broker_config_count || a->feature_count != b->feature_count ||
        a->next_producer_id != b->next_producer_id)
        return false;
    for (uint32_t i = 0; i < a->topic_count; i++)
        if (!topic_eq(a->topics[i], b->topics[i]))
            return false;
    for (uint32_t i = 0; i < a->broker_count; i++)
        if (!broker_eq(&a->brokers[i], &b->brokers[i]))
            return false;
    for (uint32_t i = 0; i < a->broker_config_count; i++) {
        const struct meta_broker_config *x = &a->broker_configs[i], *y = &b->broker_configs[i];
        if (!str_eq(x->resource, y->resource) || !str_eq(x->key, y->key) ||
            !str_eq(x->value, y->value))
            return false;
    }
    for (uint32_t i = 0; i < a->feature_count; i++)
        if (!str_eq(a->features[i].name, b->features[i].name) ||
            a->features[i].level != b->features[i].level)
            return false;
    return true;
}
