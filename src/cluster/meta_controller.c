/*
 * The controller's record builders (see meta_controller.h). Checks follow Kafka's
 * ReplicationControlManager, ConfigurationControlManager, ClusterControlManager and
 * ProducerIdControlManager, with their error codes and messages.
 */
#include "cluster/meta_controller.h"

#include "base/alloc.h"
#include "base/limits.h"
#include "proto/gen/kafka.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) static int16_t fail(struct meta_ctl_result *res,
                                                          int16_t error, const char *fmt, ...)
{
    res->error = error;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
    return error;
}

static int16_t ok(struct meta_ctl_result *res)
{
    res->error = META_CTL_NONE;
    res->message[0] = '\0';
    return META_CTL_NONE;
}

/* ---- placement ---------------------------------------------------------------------------- */

struct placer {
    uint32_t n; /* usable brokers */
    const struct meta_broker **brokers;
    int *rack;               /* rack group of each: brokers with equal racks share one */
    uint32_t *leaders;       /* preferred leaderships held */
    uint32_t *replicas;      /* replicas held */
    uint32_t *topic_leaders; /* the same within the topic being placed */
    uint32_t *topic_replicas;
};

static int placer_index(const struct placer *pl, int32_t id)
{
    uint32_t lo = 0, hi = pl->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (pl->brokers[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < pl->n && pl->brokers[lo]->id == id ? (int)lo : -1;
}

static bool rack_eq(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Counts the usable brokers' (unfenced, not in controlled shutdown) leaderships and replicas
 * over the image, and over topic id (a topic that grows) apart. */
static void placer_init(struct placer *pl, const struct meta_image *img, const struct meta_uuid *id)
{
    memset(pl, 0, sizeof(*pl));
    uint32_t cap = img->broker_count == 0 ? 1 : img->broker_count;
    pl->brokers = xcalloc(cap, sizeof(*pl->brokers));
    pl->rack = xcalloc(cap, sizeof(*pl->rack));
    pl->leaders = xcalloc(cap, sizeof(*pl->leaders));
    pl->replicas = xcalloc(cap, sizeof(*pl->replicas));
    pl->topic_leaders = xcalloc(cap, sizeof(*pl->topic_leaders));
    pl->topic_replicas = xcalloc(cap, sizeof(*pl->topic_replicas));
    for (uint32_t i = 0; i < img->broker_count; i++) {
        const struct meta_broker *b = &img->brokers[i];
        if (b->fenced || b->in_controlled_shutdown)
            continue;
        uint32_t k = pl->n++;
        pl->brokers[k] = b;
        pl->rack[k] = (int)k;
        for (uint32_t j = 0; j < k; j++)
            if (rack_eq(pl->brokers[j]->rack, b->rack)) {
                pl->rack[k] = pl->rack[j];
                break;
            }
    }
    for (uint32_t t = 0; t < img->topic_count; t++) {
        const struct meta_topic *tp = img->topics[t];
        bool same = memcmp(&tp->id, id, sizeof(*id)) == 0;
        for (uint32_t p = 0; p < tp->partition_count; p++) {
            const struct meta_partition *mp = &tp->partitions[p];
            for (unsigned r = 0; r < mp->replica_count; r++) {
                int i = placer_index(pl, mp->replicas[r]);
                if (i < 0)
                    continue;
                pl->replicas[i]++;
                pl->topic_replicas[i] += same;
                if (r == 0) {
                    pl->leaders[i]++;
                    pl->topic_leaders[i] += same;
                }
            }
        }
    }
}

static void placer_deinit(struct placer *pl)
{
    free(pl->brokers);
    free(pl->rack);
    free(pl->leaders);
    free(pl->replicas);
    free(pl->topic_leaders);
    free(pl->topic_replicas);
}

/* Whether candidate a is a better next choice than b (see the header's order). */
static bool better(const struct placer *pl, uint32_t a, uint32_t b, bool leader)
{
    /* Within the topic first, so that one topic's traffic spreads over the brokers even when
     * the cluster's counts are uneven (a broker that joined later would lead all of it). */
    if (leader && pl->topic_leaders[a] != pl->topic_leaders[b])
        return pl->topic_leaders[a] < pl->topic_leaders[b];
    if (pl->topic_replicas[a] != pl->topic_replicas[b])
        return pl->topic_replicas[a] < pl->topic_replicas[b];
    if (leader && pl->leaders[a] != pl->leaders[b])
        return pl->leaders[a] < pl->leaders[b];
    if (pl->replicas[a] != pl->replicas[b])
        return pl->replicas[a] < pl->replicas[b];
    if (!leader && pl->leaders[a] != pl->leaders[b])
        return pl->leaders[a] < pl->leaders[b];
    return pl->brokers[a]->id < pl->brokers[b]->id;
}

/* Chooses rf replicas for one partition into out (broker ids) and counts them. */
static void place_one(struct placer *pl, int16_t rf, int32_t *out)
{
    uint32_t chosen[RAFT_VOTERS_MAX];
    for (int16_t k = 0; k < rf; k++) {
        int best = -1;
        bool best_new_rack = false;
        for (uint32_t i = 0; i < pl->n; i++) {
            bool taken = false, rack_used = false;
            for (int16_t j = 0; j < k; j++) {
                taken |= chosen[j] == i;
                rack_used |= pl->rack[chosen[j]] == pl->rack[i];
            }
            if (taken)
                continue;
            bool new_rack = !rack_used;
            if (best < 0 || (new_rack && !best_new_rack) ||
                (new_rack == best_new_rack && better(pl, i, (uint32_t)best, k == 0))) {
                best = (int)i;
                best_new_rack = new_rack;
            }
        }
        chosen[k] = (uint32_t)best;
        out[k] = pl->brokers[best]->id;
        pl->replicas[best]++;
        pl->topic_replicas[best]++;
        if (k == 0) {
            pl->leaders[best]++;
            pl->topic_leaders[best]++;
        }
    }
}

/* PartitionRecords for partitions [from, to) of topic id, placed over the usable brokers. */
static int16_t place(const struct meta_image *img, const struct meta_uuid *id, uint32_t from,
                     uint32_t to, int16_t rf, struct meta_records *out, struct meta_ctl_result *res)
{
    struct placer pl;
    placer_init(&pl, img, id);
    if (rf < 1 || (uint32_t)rf > pl.n || (uint32_t)rf > RAFT_VOTERS_MAX) {
        uint32_t n = pl.n;
        placer_deinit(&pl);
        if (rf < 1)
            return fail(res, META_CTL_INVALID_REPLICATION_FACTOR,
                        "Replication factor must be larger than 0, or -1 to use the default "
                        "value.");
        if ((uint32_t)rf > RAFT_VOTERS_MAX)
            return fail(res, META_CTL_INVALID_REPLICATION_FACTOR,
                        "Replication factor %d is over the limit of %u replicas.", rf,
                        RAFT_VOTERS_MAX);
        return fail(res, META_CTL_INVALID_REPLICATION_FACTOR,
                    "Unable to replicate the partition %d time(s): The target replication "
                    "factor of %d cannot be reached because only %u broker(s) are registered.",
                    rf, rf, n);
    }
    for (uint32_t p = from; p < to; p++) {
        int32_t replicas[RAFT_VOTERS_MAX];
        place_one(&pl, rf, replicas);
        struct kafka_partition_record r;
        kafka_partition_record_init(&r);
        r.partition_id = (int32_t)p;
        r.topic_id = meta_uuid_to_proto(id);
        r.replicas.items = replicas;
        r.replicas.count = (size_t)rf;
        r.isr.items = replicas;
        r.isr.count = (size_t)rf;
        r.leader = replicas[0];
        r.leader_epoch = 0;
        r.partition_epoch = 0;
        meta_records_add(out, METAREC_PARTITION, &r);
    }
    placer_deinit(&pl);
    return ok(res);
}

/* ---- topics ------------------------------------------------------------------------------- */

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

static int16_t check_configs(const struct meta_ctl_config *c, uint32_t n,
                             struct meta_ctl_result *res)
{
    for (uint32_t i = 0; i < n; i++) {
        size_t klen = strlen(c[i].key);
        if (klen == 0 || klen > META_CONFIG_KEY_BYTES_MAX ||
            (c[i].value != NULL && strlen(c[i].value) > META_CONFIG_VALUE_BYTES_MAX))
            return fail(res, META_CTL_INVALID_CONFIG, "Invalid config key or value: '%.64s'",
                        c[i].key);
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(c[i].key, c[j].key) == 0)
                return fail(res, META_CTL_INVALID_REQUEST, "Error due to duplicate config keys");
    }
    return META_CTL_NONE;
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

int16_t meta_ctl_create_topic(const struct meta_image *img, const struct meta_ctl_create_topic *req,
                              struct meta_records *out, struct meta_ctl_result *res)
{
    size_t len = strlen(req->name);
    if (!meta_topic_name_valid(req->name, len))
        return fail(res, META_CTL_INVALID_TOPIC_EXCEPTION,
                    "Topic name is invalid: it must be 1 to 249 characters of [a-zA-Z0-9._-] "
                    "and not '.' or '..'");
    if (meta_topic_find(img, req->name, len) != NULL)
        return fail(res, META_CTL_TOPIC_ALREADY_EXISTS, "Topic '%s' already exists.", req->name);
    for (uint32_t i = 0; i < img->topic_count; i++)
        if (names_collide(req->name, img->topics[i]->name))
            return fail(res, META_CTL_INVALID_TOPIC_EXCEPTION,
                        "Topic '%s' collides with existing topic: %s", req->name,
                        img->topics[i]->name);
    if (req->partitions < 1)
        return fail(res, META_CTL_INVALID_PARTITIONS,
                    "Number of partitions was set to an invalid non-positive value.");
    if ((uint32_t)req->partitions > META_PARTITIONS_MAX)
        return fail(res, META_CTL_INVALID_PARTITIONS, "Number of partitions must be at most %u.",
                    META_PARTITIONS_MAX);
    if (meta_uuid_is_reserved(&req->id) || meta_topic_find_id(img, &req->id) != NULL)
        return fail(res, META_CTL_INVALID_REQUEST, "The topic id is reserved or in use.");
    if (img->topic_count >= META_TOPICS_MAX)
        return fail(res, META_CTL_POLICY_VIOLATION, "The cluster holds %u topics, its limit.",
                    META_TOPICS_MAX);
    if (check_configs(req->configs, req->config_count, res) != META_CTL_NONE)
        return res->error;
    if (req->config_count > META_TOPIC_CONFIGS_MAX)
        return fail(res, META_CTL_INVALID_CONFIG, "A topic has at most %u config overrides.",
                    META_TOPIC_CONFIGS_MAX);

    uint32_t mark = out->count;
    size_t mark_bytes = out->bytes.len;
    struct kafka_topic_record t;
    kafka_topic_record_init(&t);
    t.name = proto_str_make(req->name);
    t.topic_id = meta_uuid_to_proto(&req->id);
    meta_records_add(out, METAREC_TOPIC, &t);
    if (place(img, &req->id, 0, (uint32_t)req->partitions, req->replication_factor, out, res) !=
        META_CTL_NONE) {
        out->count = mark;
        out->bytes.len = mark_bytes;
        return res->error;
    }
    for (uint32_t i = 0; i < req->config_count; i++)
        if (req->configs[i].value != NULL)
            put_config(out, META_RESOURCE_TOPIC, req->name, req->configs[i].key,
                       req->configs[i].value);
    return ok(res);
}

int16_t meta_ctl_delete_topic(const struct meta_image *img, const char *name,
                              struct meta_records *out, struct meta_ctl_result *res)
{
    const struct meta_topic *t = meta_topic_find(img, name, strlen(name));
    if (t == NULL)
        return fail(res, META_CTL_UNKNOWN_TOPIC_OR_PARTITION,
                    "This server does not host this topic-partition.");
    struct kafka_remove_topic_record r;
    kafka_remove_topic_record_init(&r);
    r.topic_id = meta_uuid_to_proto(&t->id);
    meta_records_add(out, METAREC_REMOVE_TOPIC, &r);
    return ok(res);
}

int16_t meta_ctl_create_partitions(const struct meta_image *img, const char *name,
                                   int32_t new_count, struct meta_records *out,
                                   struct meta_ctl_result *res)
{
    const struct meta_topic *t = meta_topic_find(img, name, strlen(name));
    if (t == NULL)
        return fail(res, META_CTL_UNKNOWN_TOPIC_OR_PARTITION,
                    "This server does not host this topic-partition.");
    if (new_count < 0 || (uint32_t)new_count < t->partition_count)
        return fail(res, META_CTL_INVALID_PARTITIONS,
                    "Topic currently has %u partitions, which is higher than the requested %d.",
                    t->partition_count, new_count);
    if ((uint32_t)new_count == t->partition_count)
        return fail(res, META_CTL_INVALID_PARTITIONS, "Topic already has %u partitions.",
                    t->partition_count);
    if ((uint32_t)new_count > META_PARTITIONS_MAX)
        return fail(res, META_CTL_INVALID_PARTITIONS, "Number of partitions must be at most %u.",
                    META_PARTITIONS_MAX);
    return place(img, &t->id, t->partition_count, (uint32_t)new_count, t->replication_factor, out,
                 res);
}

/* ---- configs ------------------------------------------------------------------------------ */

static bool broker_resource_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > 10)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || (i == 0 && s[i] == '0' && n > 1))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    return v <= INT32_MAX;
}

static const char *current_value(const struct meta_image *img, const struct meta_topic *t,
                                 const char *resource, const char *key)
{
    return t != NULL ? meta_topic_config_get(t, key) : meta_broker_config_get(img, resource, key);
}

static bool named(const struct meta_ctl_config *c, uint32_t n, const char *key)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(c[i].key, key) == 0)
            return true;
    return false;
}

int16_t meta_ctl_alter_configs(const struct meta_image *img, int8_t resource_type,
                               const char *resource, const struct meta_ctl_config *configs,
                               uint32_t count, bool replace, struct meta_records *out,
                               struct meta_ctl_result *res)
{
    const struct meta_topic *t = NULL;
    if (resource_type == META_RESOURCE_TOPIC) {
        t = meta_topic_find(img, resource, strlen(resource));
        if (t == NULL)
            return fail(res, META_CTL_UNKNOWN_TOPIC_OR_PARTITION,
                        "This server does not host this topic-partition.");
    } else if (resource_type != META_RESOURCE_BROKER) {
        return fail(res, META_CTL_INVALID_REQUEST, "Unsupported resource type %d.", resource_type);
    } else if (!broker_resource_ok(resource)) {
        return fail(res, META_CTL_INVALID_REQUEST, "Invalid broker name '%.32s'.", resource);
    }
    if (check_configs(configs, count, res) != META_CTL_NONE)
        return res->error;

    /* The overrides after the change, to bound them. */
    uint32_t after = 0, now = 0;
    if (t != NULL) {
        now = t->config_count;
    } else {
        for (uint32_t i = 0; i < img->broker_config_count; i++)
            now += strcmp(img->broker_configs[i].resource, resource) == 0;
    }
    after = replace ? 0 : now;
    for (uint32_t i = 0; i < count; i++) {
        bool present = current_value(img, t, resource, configs[i].key) != NULL;
        if (replace)
            after += configs[i].value != NULL;
        else if (configs[i].value != NULL && !present)
            after++;
        else if (configs[i].value == NULL && present)
            after--;
    }
    if (t != NULL && after > META_TOPIC_CONFIGS_MAX)
        return fail(res, META_CTL_INVALID_CONFIG, "A topic has at most %u config overrides.",
                    META_TOPIC_CONFIGS_MAX);
    if (t == NULL && img->broker_config_count - now + after > META_BROKER_CONFIGS_MAX)
        return fail(res, META_CTL_INVALID_CONFIG, "The cluster holds at most %u broker configs.",
                    META_BROKER_CONFIGS_MAX);

    for (uint32_t i = 0; i < count; i++) {
        const char *cur = current_value(img, t, resource, configs[i].key);
        const char *want = configs[i].value;
        bool same = cur == NULL || want == NULL ? cur == want : strcmp(cur, want) == 0;
        if (!same)
            put_config(out, resource_type, resource, configs[i].key, want);
    }
    if (replace) {
        if (t != NULL) {
            for (uint32_t i = 0; i < t->config_count; i++)
                if (!named(configs, count, t->configs[i].key))
                    put_config(out, resource_type, resource, t->configs[i].key, NULL);
        } else {
            for (uint32_t i = 0; i < img->broker_config_count; i++) {
                const struct meta_broker_config *c = &img->broker_configs[i];
                if (strcmp(c->resource, resource) == 0 && !named(configs, count, c->key))
                    put_config(out, resource_type, resource, c->key, NULL);
            }
        }
    }
    return ok(res);
}

/* ---- brokers ------------------------------------------------------------------------------ */

int16_t meta_ctl_register_broker(const struct meta_image *img,
                                 const struct meta_ctl_register_broker *req,
                                 struct meta_records *out, struct meta_ctl_result *res,
                                 int64_t *epoch)
{
    if (req->id < 0 || req->epoch < 0 || req->endpoint_count > META_BROKER_ENDPOINTS_MAX ||
        (req->rack != NULL && strlen(req->rack) > META_HOST_BYTES_MAX))
        return fail(res, META_CTL_INVALID_REQUEST, "Invalid broker registration.");
    for (uint32_t i = 0; i < req->endpoint_count; i++) {
        const struct meta_endpoint *e = &req->endpoints[i];
        size_t nlen = strlen(e->name);
        if (nlen == 0 || nlen > META_HOST_BYTES_MAX || strlen(e->host) > META_HOST_BYTES_MAX)
            return fail(res, META_CTL_INVALID_REQUEST, "Invalid broker endpoint.");
    }
    const struct meta_broker *cur = meta_broker_find(img, req->id);
    if (cur != NULL &&
        memcmp(&cur->incarnation_id, &req->incarnation_id, sizeof(cur->incarnation_id)) == 0) {
        *epoch = cur->epoch;
        return ok(res);
    }
    if (cur != NULL && req->current_alive)
        return fail(res, META_CTL_DUPLICATE_BROKER_REGISTRATION,
                    "Another broker is registered with that broker id (%d).", req->id);
    if (cur != NULL && req->epoch <= cur->epoch)
        return fail(res, META_CTL_INVALID_REQUEST,
                    "Broker epoch %lld is not above the current %lld.", (long long)req->epoch,
                    (long long)cur->epoch);
    if (cur == NULL && img->broker_count >= META_BROKERS_MAX)
        return fail(res, META_CTL_POLICY_VIOLATION, "The cluster holds %u brokers, its limit.",
                    META_BROKERS_MAX);

    /* The new registration as the image will hold it (fenced until its first heartbeat); the
     * record only reads the request's endpoints and rack. */
    const struct meta_broker b = {
        .id = req->id,
        .incarnation_id = req->incarnation_id,
        .epoch = req->epoch,
        .endpoint_count = req->endpoint_count,
        .endpoints = (struct meta_endpoint *)req->endpoints,
        .rack = (char *)req->rack,
        .fenced = true,
    };
    meta_records_add_broker(out, &b);
    *epoch = req->epoch;
    return ok(res);
}

static bool eligible(const struct meta_image *img, int32_t id, int32_t fencing, int32_t unfencing)
{
    if (id == fencing)
        return false;
    if (id == unfencing)
        return true;
    const struct meta_broker *b = meta_broker_find(img, id);
    return b != NULL && !b->fenced;
}

/* The first replica (preferred order) in isr that can lead, or META_NO_LEADER. */
static int32_t elect(const struct meta_image *img, const struct meta_partition *p,
                     const int32_t *isr, unsigned isr_count, int32_t fencing, int32_t unfencing)
{
    for (unsigned r = 0; r < p->replica_count; r++) {
        int32_t id = p->replicas[r];
        for (unsigned i = 0; i < isr_count; i++)
            if (isr[i] == id && eligible(img, id, fencing, unfencing))
                return id;
    }
    return META_NO_LEADER;
}

static void put_change_epoch(struct meta_records *out, const struct meta_topic *t, uint32_t p,
                             int32_t leader, const int32_t *isr, unsigned isr_count, int32_t epoch)
{
    struct kafka_partition_change_record c;
    kafka_partition_change_record_init(&c);
    c.topic_id = meta_uuid_to_proto(&t->id);
    c.partition_id = (int32_t)p;
    c.leader = leader;
    c.isr.items = (int32_t *)isr;
    c.isr.count = isr_count;
    c.leader_epoch = epoch;
    meta_records_add(out, METAREC_PARTITION_CHANGE, &c);
}

static void put_change(struct meta_records *out, const struct meta_topic *t, uint32_t p,
                       int32_t leader, const int32_t *isr, unsigned isr_count)
{
    put_change_epoch(out, t, p, leader, isr, isr_count, -1);
}

int16_t meta_ctl_fence_broker(const struct meta_image *img, int32_t id, struct meta_records *out,
                              struct meta_ctl_result *res)
{
    const struct meta_broker *b = meta_broker_find(img, id);
    if (b == NULL)
        return fail(res, META_CTL_BROKER_ID_NOT_REGISTERED,
                    "No broker registration found for broker %d.", id);
    if (b->fenced)
        return ok(res);
    for (uint32_t ti = 0; ti < img->topic_count; ti++) {
        const struct meta_topic *t = img->topics[ti];
        for (uint32_t p = 0; p < t->partition_count; p++) {
            const struct meta_partition *mp = &t->partitions[p];
            if (mp->replica_count > 1) {
                if (mp->leader == id)
                    put_change_epoch(out, t, p, META_NO_LEADER, NULL, 0, mp->leader_epoch);
                continue;
            }
            int32_t isr[RAFT_VOTERS_MAX];
            unsigned n = 0;
            for (unsigned i = 0; i < mp->isr_count; i++)
                if (mp->isr[i] != id)
                    isr[n++] = mp->isr[i];
            /* Kafka never empties an ISR: its last member stays, leaderless. */
            bool isr_changed = n != mp->isr_count && n > 0;
            if (!isr_changed) {
                n = mp->isr_count;
                memcpy(isr, mp->isr, n * sizeof(*isr));
            }
            int32_t leader = META_NO_LEADER_CHANGE;
            if (mp->leader == id)
                leader = elect(img, mp, isr, n, id, -1);
            if (!isr_changed && leader == META_NO_LEADER_CHANGE)
                continue;
            put_change(out, t, p, leader, isr_changed ? isr : NULL, isr_changed ? n : 0);
        }
    }
    struct kafka_fence_broker_record f = {.id = id, .epoch = b->epoch};
    meta_records_add(out, METAREC_FENCE_BROKER, &f);
    return ok(res);
}

int16_t meta_ctl_shut_down_broker(const struct meta_image *img, int32_t id,
                                  struct meta_records *out, struct meta_ctl_result *res)
{
    const struct meta_broker *b = meta_broker_find(img, id);
    if (b == NULL)
        return fail(res, META_CTL_BROKER_ID_NOT_REGISTERED,
                    "No broker registration found for broker %d.", id);
    if (b->fenced || b->in_controlled_shutdown)
        return ok(res);
    struct kafka_broker_registration_change_record c = {
        .broker_id = id, .broker_epoch = b->epoch, .in_controlled_shutdown = 1};
    meta_records_add(out, METAREC_BROKER_REGISTRATION_CHANGE, &c);
    return ok(res);
}

int16_t meta_ctl_unfence_broker(const struct meta_image *img, int32_t id, int64_t epoch,
                                struct meta_records *out, struct meta_ctl_result *res)
{
    const struct meta_broker *b = meta_broker_find(img, id);
    if (b == NULL)
        return fail(res, META_CTL_BROKER_ID_NOT_REGISTERED,
                    "No broker registration found for broker %d.", id);
    if (b->epoch != epoch)
        return fail(res, META_CTL_STALE_BROKER_EPOCH,
                    "Expected broker epoch %lld, but got broker epoch %lld.", (long long)b->epoch,
                    (long long)epoch);
    if (!b->fenced)
        return ok(res);
    struct kafka_unfence_broker_record u = {.id = id, .epoch = epoch};
    meta_records_add(out, METAREC_UNFENCE_BROKER, &u);
    for (uint32_t ti = 0; ti < img->topic_count; ti++) {
        const struct meta_topic *t = img->topics[ti];
        for (uint32_t p = 0; p < t->partition_count; p++) {
            const struct meta_partition *mp = &t->partitions[p];
            if (mp->leader != META_NO_LEADER || mp->replica_count > 1)
                continue;
            int32_t leader = elect(img, mp, mp->isr, mp->isr_count, -1, id);
            if (leader != META_NO_LEADER)
                put_change(out, t, p, leader, NULL, 0);
        }
    }
    return ok(res);
}

enum isr_check { ISR_OK, ISR_NOT_DISTINCT_REPLICAS, ISR_WITHOUT_MEMBER };

/* Whether the ISR is distinct replicas of mp holding member (any, for META_NO_LEADER). */
static enum isr_check isr_check(const struct meta_partition *mp, const int32_t *isr,
                                uint32_t isr_count, int32_t member)
{
    bool in_isr = member == META_NO_LEADER;
    for (uint32_t i = 0; i < isr_count; i++) {
        bool replica = false;
        for (unsigned r = 0; r < mp->replica_count; r++)
            replica |= mp->replicas[r] == isr[i];
        for (uint32_t j = 0; j < i; j++)
            replica &= isr[j] != isr[i];
        if (!replica)
            return ISR_NOT_DISTINCT_REPLICAS;
        in_isr |= isr[i] == member;
    }
    return in_isr ? ISR_OK : ISR_WITHOUT_MEMBER;
}

/* The partition a change names, or the error for the answer. */
static int16_t find_partition(const struct meta_image *img, const struct meta_uuid *topic_id,
                              int32_t partition, const struct meta_topic **t,
                              struct meta_ctl_result *res)
{
    *t = meta_topic_find_id(img, topic_id);
    if (*t == NULL)
        return fail(res, META_CTL_UNKNOWN_TOPIC_ID, "This server does not know the topic id.");
    if (partition < 0 || (uint32_t)partition >= (*t)->partition_count)
        return fail(res, META_CTL_UNKNOWN_TOPIC_OR_PARTITION,
                    "This server does not host this topic-partition.");
    return META_CTL_NONE;
}

int16_t meta_ctl_partition_report(const struct meta_image *img, const struct meta_uuid *topic_id,
                                  int32_t partition, int32_t broker, int32_t epoch,
                                  const int32_t *isr, uint32_t isr_count, struct meta_records *out,
                                  struct meta_ctl_result *res)
{
    const struct meta_topic *t;
    int16_t err = find_partition(img, topic_id, partition, &t, res);
    if (err != META_CTL_NONE)
        return err;
    const struct meta_partition *mp = &t->partitions[partition];
    bool replica = false;
    for (unsigned r = 0; r < mp->replica_count; r++)
        replica |= mp->replicas[r] == broker;
    if (!replica)
        return fail(res, META_CTL_NOT_LEADER_OR_FOLLOWER, "Broker %d is not a replica of %s-%d.",
                    broker, t->name, partition);
    if (mp->replica_count < 2 || isr_count == 0 || isr_check(mp, isr, isr_count, broker) != ISR_OK)
        return fail(res, META_CTL_INVALID_REQUEST,
                    "A report needs a replicated partition and an ISR of distinct replicas "
                    "holding the leader.");
    if (epoch < mp->leader_epoch ||
        (epoch == mp->leader_epoch && mp->leader != broker && mp->leader != META_NO_LEADER))
        return fail(res, META_CTL_FENCED_LEADER_EPOCH,
                    "Leader epoch %d of broker %d is stale: the partition has epoch %d (leader "
                    "%d).",
                    epoch, broker, mp->leader_epoch, mp->leader);
    bool isr_same =
        isr_count == mp->isr_count && memcmp(isr, mp->isr, isr_count * sizeof(*isr)) == 0;
    if (isr_same && mp->leader == broker && mp->leader_epoch == epoch)
        return ok(res);
    put_change_epoch(out, t, (uint32_t)partition,
                     mp->leader == broker ? META_NO_LEADER_CHANGE : broker, isr_same ? NULL : isr,
                     isr_same ? 0 : isr_count, epoch);
    return ok(res);
}

int16_t meta_ctl_partition_change(const struct meta_image *img, const struct meta_uuid *topic_id,
                                  int32_t partition, int32_t leader, const int32_t *isr,
                                  uint32_t isr_count, struct meta_records *out,
                                  struct meta_ctl_result *res)
{
    const struct meta_topic *t;
    int16_t err = find_partition(img, topic_id, partition, &t, res);
    if (err != META_CTL_NONE)
        return err;
    const struct meta_partition *mp = &t->partitions[partition];
    if (isr == NULL) {
        isr = mp->isr;
        isr_count = mp->isr_count;
    }
    enum isr_check c = isr_check(mp, isr, isr_count, leader);
    if (c == ISR_NOT_DISTINCT_REPLICAS)
        return fail(res, META_CTL_INVALID_REQUEST,
                    "The ISR must be distinct replicas of the partition.");
    if (c == ISR_WITHOUT_MEMBER)
        return fail(res, META_CTL_INVALID_REQUEST, "The leader %d is not in the ISR.", leader);
    bool isr_same = isr_count == mp->isr_count &&
                    (isr_count == 0 || memcmp(isr, mp->isr, isr_count * sizeof(*isr)) == 0);
    bool leader_same = leader == mp->leader;
    if (!isr_same || !leader_same)
        put_change(out, t, (uint32_t)partition, leader_same ? META_NO_LEADER_CHANGE : leader,
                   isr_same ? NULL : isr, isr_same ? 0 : isr_count);
    return ok(res);
}

int16_t meta_ctl_alloc_producer_ids(const struct meta_image *img, int32_t broker_id,
                                    int64_t broker_epoch, struct meta_records *out,
                                    struct meta_ctl_result *res, int64_t *first)
{
    const struct meta_broker *b = meta_broker_find(img, broker_id);
    if (b == NULL)
        return fail(res, META_CTL_BROKER_ID_NOT_REGISTERED,
                    "No broker registration found for broker %d.", broker_id);
    if (b->epoch != broker_epoch)
        return fail(res, META_CTL_STALE_BROKER_EPOCH,
                    "Expected broker epoch %lld, but got broker epoch %lld.", (long long)b->epoch,
                    (long long)broker_epoch);
    if (img->next_producer_id > INT64_MAX - META_PRODUCER_ID_BLOCK)
        return fail(res, META_CTL_UNKNOWN_SERVER_ERROR, "Exhausted all producerIds.");
    struct kafka_producer_ids_record r;
    kafka_producer_ids_record_init(&r);
    r.broker_id = broker_id;
    r.broker_epoch = broker_epoch;
    r.next_producer_id = img->next_producer_id + META_PRODUCER_ID_BLOCK;
    meta_records_add(out, METAREC_PRODUCER_IDS, &r);
    *first = img->next_producer_id;
    return ok(res);
}
