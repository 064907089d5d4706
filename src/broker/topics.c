/*
 * Topic administration: CreateTopics, DeleteTopics, CreatePartitions and DeleteRecords.
 *
 * Each handler answers every entry of the request in request order, with Kafka's per-entry
 * error codes and messages (ReplicationControlManager and ControllerApis); one bad entry never
 * fails the others. They run on the controller (see broker_internal.h): the changes go through
 * broker.c (broker_create_topic, broker_grow_topic, broker_delete_topic), which stage them as
 * KRaft records; each handler commits them all at once (one batch of the metadata log) and
 * answers once they are committed and applied.
 *
 * The controller mutation quota (KIP-599) bounds the work: a token bucket of partitions,
 * filled at controller.mutation.rate per second up to rate * controller.quota.window.num *
 * controller.quota.window.size.seconds. An entry is admitted while the bucket is not negative
 * and takes its partitions from it (so one entry may overdraw it); later entries get
 * THROTTLING_QUOTA_EXCEEDED and the response's throttle_time_ms says when the bucket is back
 * at zero. Kafka applies the quota per user and client id and only from CreateTopics v6,
 * CreatePartitions v3 and DeleteTopics v5 on; Chronik has one bucket for the node and applies
 * it to every version, since it protects the one loop thread.
 *
 * Invariants: a topic is created only with overrides that passed the topic config table; a
 * manual replica assignment is accepted only when every replica is this node.
 *
 * Never: asserts on anything a client sent, or keeps a pointer into the metadata image across a
 * change to it (names are copied into the request's arena first).
 */
#include "base/assert.h"
#include "base/error.h"
#include "broker/admin.h"
#include "broker/broker_internal.h"

#include <string.h>

/* Kafka's DeleteRecordsRequest.HIGH_WATERMARK: delete up to the high watermark. */
#define DELETE_TO_HIGH_WATERMARK (-1)

/* ---- the controller mutation quota ----------------------------------------------------------- */

static double quota_burst(const struct broker *b)
{
    return (double)b->cfg->controller_mutation_rate * b->cfg->controller_quota_window_num *
           b->cfg->controller_quota_window_size_seconds;
}

/* Refills the bucket for the time since its last update (K = min(K + dt * R, B)). */
static void quota_refill(struct broker *b)
{
    uint64_t now = clock_mono_ns(b->clock);
    if (b->quota_updated_ns == 0) {
        b->quota_tokens = quota_burst(b);
    } else {
        double dt_s = (double)(now - b->quota_updated_ns) / 1e9;
        b->quota_tokens =
            MIN(b->quota_tokens + dt_s * b->cfg->controller_mutation_rate, quota_burst(b));
    }
    b->quota_updated_ns = now;
}

bool broker_quota_admit(struct broker *b, uint32_t mutations)
{
    quota_refill(b);
    if (b->quota_tokens < 0)
        return false;
    b->quota_tokens -= mutations;
    return true;
}

int32_t broker_quota_throttle_ms(struct broker *b)
{
    quota_refill(b);
    if (b->quota_tokens >= 0)
        return 0;
    double ms = -b->quota_tokens * 1000.0 / b->cfg->controller_mutation_rate;
    return ms >= (double)INT32_MAX ? INT32_MAX : (int32_t)ms + 1;
}

static const char quota_message[] = "The throttling quota has been exceeded.";

/* ---- manual replica assignments -------------------------------------------------------------- */

/*
 * Kafka's validateManualPartitionAssignment for one partition's replicas: not empty, every
 * broker registered (only this node is), none twice, and as many as the other partitions
 * (*replicas, -1 when this is the first). Brokers are checked in ascending order, as Kafka
 * does, so the same broker is named in the message.
 */
static int check_replicas(struct breq *rq, const int32_t *ids, size_t count, int32_t *replicas,
                          struct proto_str *why)
{
    ASSERT(replicas != NULL && why != NULL);
    ASSERT(ids != NULL || count == 0);
    int32_t node = rq->b->cfg->node_id;
    if (count == 0) {
        *why = proto_str_make("The manual partition assignment includes an empty replica list.");
        return KAFKA_INVALID_REPLICA_ASSIGNMENT;
    }
    size_t mine = 0;
    bool foreign = false;
    int32_t foreign_min = 0;
    for (size_t i = 0; i < count; i++) {
        if (ids[i] == node) {
            mine++;
        } else if (!foreign || ids[i] < foreign_min) {
            foreign = true;
            foreign_min = ids[i];
        }
    }
    if (foreign && (foreign_min < node || mine <= 1)) {
        *why = admin_printf(&rq->arena,
                            "The manual partition assignment includes broker %d, but no such "
                            "broker is registered.",
                            foreign_min);
        return KAFKA_INVALID_REPLICA_ASSIGNMENT;
    }
    if (mine > 1) {
        *why = admin_printf(&rq->arena,
                            "The manual partition assignment includes the broker %d more than "
                            "once.",
                            node);
        return KAFKA_INVALID_REPLICA_ASSIGNMENT;
    }
    if (*replicas >= 0 && (size_t)*replicas != count) {
        *why = admin_printf(&rq->arena,
                            "The manual partition assignment includes a partition with %zu "
                            "replica(s), but this is inconsistent with previous partitions, "
                            "which have %d replica(s).",
                            count, *replicas);
        return KAFKA_INVALID_REPLICA_ASSIGNMENT;
    }
    *replicas = (int32_t)count;
    return KAFKA_NONE;
}

/* A CreateTopics manual assignment: sets *partitions and *replicas from it. Returns a Kafka
 * error code, or ERR_TOO_LARGE when the arena is full. */
static int check_create_assignments(struct breq *rq,
                                    const struct kafka_create_topics_request_creatable_topic *q,
                                    int32_t *partitions, int16_t *replicas, struct proto_str *why)
{
    size_t n = q->assignments.count;
    if (q->replication_factor != -1 || q->num_partitions != -1) {
        *why = proto_str_make(q->replication_factor != -1
                                  ? "A manual partition assignment was specified, but "
                                    "replication factor was not set to -1."
                                  : "A manual partition assignment was specified, but "
                                    "numPartitions was not set to -1.");
        return KAFKA_INVALID_REQUEST;
    }
    if (n > META_PARTITIONS_MAX) {
        *why = proto_str_make("Number of partitions must be at most 100000");
        return KAFKA_INVALID_PARTITIONS;
    }
    bool *seen = arena_calloc(&rq->arena, n, sizeof(*seen));
    if (seen == NULL)
        return ERR_TOO_LARGE;
    bool gap = false;
    int32_t count = -1;
    for (size_t i = 0; i < n; i++) {
        const struct kafka_create_topics_request_creatable_replica_assignment *a =
            &q->assignments.items[i];
        int32_t p = a->partition_index;
        if (p >= 0 && (size_t)p < n && seen[p]) {
            *why = admin_printf(&rq->arena,
                                "Found multiple manual partition assignments for partition %d", p);
            return KAFKA_INVALID_REPLICA_ASSIGNMENT;
        }
        int err = check_replicas(rq, a->broker_ids.items, a->broker_ids.count, &count, why);
        if (err != KAFKA_NONE)
            return err;
        if (p >= 0 && (size_t)p < n)
            seen[p] = true;
        else
            gap = true;
    }
    if (gap) {
        *why = proto_str_make("partitions should be a consecutive 0-based integer sequence");
        return KAFKA_INVALID_REPLICA_ASSIGNMENT;
    }
    *partitions = (int32_t)n;
    *replicas = (int16_t)count;
    return KAFKA_NONE;
}

/* ---- CreateTopics ---------------------------------------------------------------------------- */

typedef struct kafka_create_topics_response_creatable_topic_result create_result;

static int check_create_configs(struct breq *rq,
                                const struct kafka_create_topics_request_creatable_topic *q,
                                struct topic_config_set *set, struct proto_str *why)
{
    char text[BROKER_ADMIN_MESSAGE_BYTES_MAX];
    memset(set, 0, sizeof(*set));
    /* A key given twice takes its last value, as Kafka's map of changes does. */
    for (size_t i = 0; i < q->configs.count; i++) {
        const struct kafka_create_topics_request_creatable_topic_config *c = &q->configs.items[i];
        if (c->value.ptr == NULL) {
            *why = admin_printf(&rq->arena, "Null value not supported for topic configs: %.*s",
                                (int)MIN(c->name.len, BROKER_ADMIN_QUOTE_BYTES_MAX), c->name.ptr);
            return KAFKA_INVALID_CONFIG;
        }
        int err =
            topic_config_set_apply(set, rq->b->cfg, c->name.ptr, c->name.len, TOPIC_CONFIG_OP_SET,
                                   c->value.ptr, c->value.len, text, sizeof(text));
        if (err != KAFKA_NONE) {
            *why = admin_printf(&rq->arena, "%s", text);
            return err;
        }
    }
    return KAFKA_NONE;
}

/* The v5+ configs of a topic: every key with its value and source, as DescribeConfigs says. */
static int fill_create_configs(struct breq *rq, const struct topic_config_set *set,
                               const struct broker_config *defaults, create_result *r)
{
    r->configs.items = arena_calloc(&rq->arena, TOPIC_CONFIG_COUNT, sizeof(*r->configs.items));
    if (r->configs.items == NULL)
        return ERR_TOO_LARGE;
    r->configs.count = TOPIC_CONFIG_COUNT;
    for (int id = 0; id < TOPIC_CONFIG_COUNT; id++) {
        char value[BROKER_CONFIG_VALUE_BYTES_MAX];
        enum admin_config_source source = topic_config_effective(
            rq->b->cfg, defaults, set, (enum topic_config_id)id, value, sizeof(value));
        int broker_key = topic_config_keys[id].broker_key;
        if (source != ADMIN_SOURCE_DYNAMIC_TOPIC && broker_key != TOPIC_CONFIG_NO_BROKER_KEY)
            source = admin_broker_key_source(rq->b, defaults, broker_key, value, sizeof(value));
        struct kafka_create_topics_response_creatable_topic_configs *c = &r->configs.items[id];
        char *copy = arena_strndup(&rq->arena, value, strlen(value));
        if (copy == NULL)
            return ERR_TOO_LARGE;
        c->name = proto_str_make(topic_config_keys[id].name);
        c->value = proto_str_make(copy);
        c->read_only = false;
        c->config_source = (int8_t)source;
        c->is_sensitive = false;
    }
    return 0;
}

/* Creates (or validates) one topic into r. Returns 0, or ERR_TOO_LARGE when the arena is full. */
static int create_one(struct breq *rq, const struct kafka_create_topics_request_creatable_topic *q,
                      bool duplicate, bool validate_only, const struct broker_config *defaults,
                      create_result *r)
{
    ASSERT(q->name.ptr != NULL && r != NULL);
    struct broker *b = rq->b;
    int32_t partitions = q->num_partitions;
    int16_t replicas = q->replication_factor;
    struct meta_uuid id = {0};
    struct topic_config_set set;
    int err = KAFKA_NONE;
    if (duplicate) {
        r->error_message = proto_str_make("Duplicate topic name.");
        err = KAFKA_INVALID_REQUEST;
    } else if (!meta_topic_name_valid(q->name.ptr, q->name.len)) {
        r->error_message = proto_str_make(
            "Topic name is illegal: it must be 1 to 249 characters of [a-zA-Z0-9._-], and not "
            "'.' or '..'");
        err = KAFKA_INVALID_TOPIC_EXCEPTION;
    } else if (meta_topic_find(&b->meta, q->name.ptr, q->name.len) != NULL) {
        r->error_message =
            admin_printf(&rq->arena, "Topic '%.*s' already exists.", (int)q->name.len, q->name.ptr);
        err = KAFKA_TOPIC_ALREADY_EXISTS;
    } else if (q->assignments.count > 0) {
        err = check_create_assignments(rq, q, &partitions, &replicas, &r->error_message);
    }
    if (err == KAFKA_NONE)
        err = check_create_configs(rq, q, &set, &r->error_message);
    if (err < 0)
        return err;
    if (err == KAFKA_NONE) {
        const char *keys[TOPIC_CONFIG_COUNT], *values[TOPIC_CONFIG_COUNT];
        uint32_t count = 0;
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
            if (set.present[k]) {
                keys[count] = topic_config_keys[k].name;
                values[count++] = set.values[k];
            }
        }
        int32_t mutations = partitions == -1 ? b->cfg->num_partitions : partitions;
        if (!validate_only && !broker_quota_admit(b, (uint32_t)MAX(mutations, 0))) {
            r->error_message = proto_str_make(quota_message);
            err = KAFKA_THROTTLING_QUOTA_EXCEEDED;
        } else {
            err = broker_create_topic(rq, q->name.ptr, q->name.len, partitions, replicas, keys,
                                      values, count, validate_only, &r->error_message, &id);
        }
    }
    if (err < 0)
        return err;
    r->error_code = (int16_t)err;
    if (err != KAFKA_NONE)
        return 0;
    r->error_message = (struct proto_str){NULL, 0};
    r->num_partitions = partitions == -1 ? b->cfg->num_partitions : partitions;
    r->replication_factor = replicas == -1 ? broker_default_replication_factor(b) : replicas;
    memcpy(r->topic_id.bytes, id.b, sizeof(r->topic_id.bytes));
    return rq->api_version >= 5 ? fill_create_configs(rq, &set, defaults, r) : 0;
}

/* dup[i]: whether the name of entry i appears in another entry too; later[i]: in one before. */
static int create_duplicates(struct breq *rq, const struct kafka_create_topics_request *req,
                             bool *dup, bool *later)
{
    size_t n = req->topics.count;
    struct slice *keys = arena_calloc(&rq->arena, n, sizeof(*keys));
    if (keys == NULL)
        return ERR_TOO_LARGE;
    for (size_t i = 0; i < n; i++)
        keys[i] = slice_make(req->topics.items[i].name.ptr, req->topics.items[i].name.len);
    return admin_find_duplicates(&rq->arena, keys, n, dup, later);
}

/* What a handler keeps for its answer between the build and the commit. */
struct admin_answer {
    void *items;
    size_t count;
    bool validate_only;
};

static const char *commit_message(int16_t err)
{
    return err == KAFKA_NOT_CONTROLLER ? "The controller moved; try again."
                                       : "The controller could not write the metadata.";
}

static void create_finish(struct breq *rq, int16_t err)
{
    struct admin_answer *st = rq->admin_state;
    create_result *out = st->items;
    for (size_t i = 0; i < st->count && err != KAFKA_NONE && !st->validate_only; i++) {
        if (out[i].error_code == KAFKA_NONE) {
            out[i].error_code = err;
            out[i].error_message = proto_str_make(commit_message(err));
        }
    }
    struct kafka_create_topics_response resp;
    kafka_create_topics_response_init(&resp);
    resp.throttle_time_ms = broker_quota_throttle_ms(rq->b);
    resp.topics.items = out;
    resp.topics.count = st->count;
    breq_respond(rq, &resp);
}

void create_topics_handle(struct breq *rq)
{
    const struct kafka_create_topics_request *req = rq->body;
    size_t n = req->topics.count;
    bool validate_only = rq->api_version >= 1 && req->validate_only;
    create_result *out = arena_calloc(&rq->arena, n, sizeof(*out));
    bool *dup = arena_calloc(&rq->arena, n, sizeof(*dup));
    bool *later = arena_calloc(&rq->arena, n, sizeof(*later));
    struct broker_config *defaults = arena_calloc(&rq->arena, 1, sizeof(*defaults));
    int rc = out == NULL || dup == NULL || later == NULL || defaults == NULL ? ERR_TOO_LARGE : 0;
    if (rc == 0)
        rc = create_duplicates(rq, req, dup, later);
    if (rc == 0)
        admin_broker_defaults(defaults);
    size_t m = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* A name given twice is answered once, as Kafka does (clients match by name). */
        if (later[i])
            continue;
        create_result *r = &out[m++];
        r->name = req->topics.items[i].name;
        r->num_partitions = -1;
        r->replication_factor = -1;
        r->configs.items = arena_alloc(&rq->arena, 0);
        rc = create_one(rq, &req->topics.items[i], dup[i], validate_only, defaults, r);
    }
    struct admin_answer *st = arena_calloc(&rq->arena, 1, sizeof(*st));
    if (rc < 0 || st == NULL) {
        /* The answer does not fit the request's arena: nothing of it is proposed. */
        breq_abort(rq);
        return;
    }
    *st = (struct admin_answer){.items = out, .count = m, .validate_only = validate_only};
    rq->admin_state = st;
    broker_admin_commit(rq, create_finish);
}

/* ---- DeleteTopics ---------------------------------------------------------------------------- */

typedef struct kafka_delete_topics_response_deletable_topic_result delete_result;

/* One DeleteTopics entry, by name (all versions) or by id (v6). */
struct delete_entry {
    struct proto_str name; /* as sent; null when by id */
    struct meta_uuid id;   /* as sent; zero when by name */
    char *found;           /* the topic's name copied from the image, NULL if unknown */
    struct meta_uuid found_id;
};

/* The key an entry is compared by: its name or id as sent (pass 0), or the id it resolved to
 * (pass 1). A tag byte keeps names, ids and the unique keys of the others apart. */
static struct slice entry_key(struct breq *rq, const struct delete_entry *e, size_t index,
                              bool by_resolved_id)
{
    bool named = e->name.ptr != NULL;
    uint8_t *k = arena_alloc(&rq->arena, 1 + MAX(e->name.len, META_UUID_BYTES));
    if (k == NULL)
        return slice_make(NULL, 0);
    const void *body = &index;
    size_t len = sizeof(index);
    k[0] = 'U';
    if (named != meta_uuid_is_zero(&e->id)) {
        /* A name with an id, or neither: answered on its own, never as a duplicate. */
    } else if (by_resolved_id && e->found != NULL) {
        k[0] = 'I';
        body = e->found_id.b;
        len = META_UUID_BYTES;
    } else if (!by_resolved_id && named) {
        k[0] = 'N';
        body = e->name.ptr;
        len = e->name.len;
    } else if (!by_resolved_id) {
        k[0] = 'I';
        body = e->id.b;
        len = META_UUID_BYTES;
    }
    memcpy(k + 1, body, len);
    return slice_make(k, 1 + len);
}

/* dup[i]: the entry's name or id appears twice (later[i]: not for the first time); by_id[i]:
 * a name whose topic id is also asked for by id. */
static int delete_duplicates(struct breq *rq, const struct delete_entry *e, size_t n, bool *dup,
                             bool *later, bool *by_id)
{
    struct slice *keys = arena_calloc(&rq->arena, n, sizeof(*keys));
    if (keys == NULL)
        return ERR_TOO_LARGE;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            keys[i] = entry_key(rq, &e[i], i, pass == 1);
            if (keys[i].ptr == NULL)
                return ERR_TOO_LARGE;
        }
        int rc = pass == 0 ? admin_find_duplicates(&rq->arena, keys, n, dup, later)
                           : admin_find_duplicates(&rq->arena, keys, n, by_id, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int resolve_delete(struct breq *rq, struct delete_entry *e)
{
    const struct meta_topic *mt = NULL;
    if (e->name.ptr != NULL)
        mt = meta_topic_find(&rq->b->meta, e->name.ptr, e->name.len);
    else
        mt = meta_topic_find_id(&rq->b->meta, &e->id);
    if (mt == NULL)
        return 0;
    e->found = arena_strndup(&rq->arena, mt->name, strlen(mt->name));
    e->found_id = mt->id;
    return e->found == NULL ? ERR_TOO_LARGE : 0;
}

static void delete_one(struct breq *rq, const struct delete_entry *e, bool dup, bool by_id,
                       delete_result *r)
{
    ASSERT(e != NULL && r != NULL);
    bool named = e->name.ptr != NULL;
    bool zero = meta_uuid_is_zero(&e->id);
    r->name = e->name;
    memcpy(r->topic_id.bytes, e->id.b, sizeof(r->topic_id.bytes));
    const char *why = NULL;
    int err = KAFKA_INVALID_REQUEST;
    if (!named && zero)
        why = "Neither topic name nor id were specified.";
    else if (named && !zero)
        why = "You may not specify both topic name and topic id.";
    else if (dup)
        why = named ? "Duplicate topic name." : "Duplicate topic id.";
    else if (e->found != NULL && named && by_id) {
        why = "The provided topic name maps to an ID that was already supplied.";
        memcpy(r->topic_id.bytes, e->found_id.b, sizeof(r->topic_id.bytes));
    } else if (e->found == NULL)
        err = named ? KAFKA_UNKNOWN_TOPIC_OR_PARTITION : KAFKA_UNKNOWN_TOPIC_ID;
    else
        err = KAFKA_NONE;
    if (err == KAFKA_NONE) {
        r->name = proto_str_make(e->found);
        memcpy(r->topic_id.bytes, e->found_id.b, sizeof(r->topic_id.bytes));
        const struct meta_topic *mt = meta_topic_find(&rq->b->meta, e->found, strlen(e->found));
        if (mt != NULL && !broker_quota_admit(rq->b, mt->partition_count))
            err = KAFKA_THROTTLING_QUOTA_EXCEEDED;
        else
            err = broker_delete_topic(rq, e->found, strlen(e->found));
        if (err < 0)
            err = KAFKA_UNKNOWN_SERVER_ERROR;
    }
    /* Kafka's default messages (ApiError of the code alone). */
    if (err == KAFKA_UNKNOWN_TOPIC_OR_PARTITION)
        why = "This server does not host this topic-partition.";
    else if (err == KAFKA_UNKNOWN_TOPIC_ID)
        why = "This server does not host this topic ID.";
    else if (err == KAFKA_KAFKA_STORAGE_ERROR)
        why = "The broker could not write its metadata.";
    else if (err == KAFKA_THROTTLING_QUOTA_EXCEEDED)
        why = quota_message;
    r->error_code = (int16_t)err;
    r->error_message = proto_str_make(why);
}

static void delete_finish(struct breq *rq, int16_t err)
{
    struct admin_answer *st = rq->admin_state;
    delete_result *out = st->items;
    for (size_t i = 0; i < st->count && err != KAFKA_NONE; i++) {
        if (out[i].error_code == KAFKA_NONE) {
            out[i].error_code = err;
            out[i].error_message = proto_str_make(commit_message(err));
        }
    }
    struct kafka_delete_topics_response resp;
    kafka_delete_topics_response_init(&resp);
    resp.throttle_time_ms = broker_quota_throttle_ms(rq->b);
    resp.responses.items = out;
    resp.responses.count = st->count;
    breq_respond(rq, &resp);
}

void delete_topics_handle(struct breq *rq)
{
    const struct kafka_delete_topics_request *req = rq->body;
    bool v6 = rq->api_version >= 6;
    size_t n = v6 ? req->topics.count : req->topic_names.count;
    struct delete_entry *e = arena_calloc(&rq->arena, n, sizeof(*e));
    delete_result *out = arena_calloc(&rq->arena, n, sizeof(*out));
    bool *dup = arena_calloc(&rq->arena, n, sizeof(*dup));
    bool *later = arena_calloc(&rq->arena, n, sizeof(*later));
    bool *by_id = arena_calloc(&rq->arena, n, sizeof(*by_id));
    int rc = e == NULL || out == NULL || dup == NULL || later == NULL || by_id == NULL
                 ? ERR_TOO_LARGE
                 : 0;
    /* Every entry is resolved before anything is deleted, so the names and ids answered are
     * the ones the request found. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (v6) {
            e[i].name = req->topics.items[i].name;
            memcpy(e[i].id.b, req->topics.items[i].topic_id.bytes, META_UUID_BYTES);
        } else {
            e[i].name = req->topic_names.items[i];
        }
        rc = resolve_delete(rq, &e[i]);
    }
    if (rc == 0)
        rc = delete_duplicates(rq, e, n, dup, later, by_id);
    if (rc < 0) {
        breq_abort(rq);
        return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        /* A name or id given twice is answered once, as Kafka does. */
        if (!later[i])
            delete_one(rq, &e[i], dup[i], by_id[i], &out[m++]);
    }
    struct admin_answer *st = arena_calloc(&rq->arena, 1, sizeof(*st));
    if (st == NULL) {
        breq_abort(rq);
        return;
    }
    *st = (struct admin_answer){.items = out, .count = m};
    rq->admin_state = st;
    broker_admin_commit(rq, delete_finish);
}

/* ---- CreatePartitions ------------------------------------------------------------------------ */

typedef struct kafka_create_partitions_response_create_partitions_topic_result grow_result;

static int check_grow(struct breq *rq,
                      const struct kafka_create_partitions_request_create_partitions_topic *q,
                      const struct meta_topic *mt, struct proto_str *why)
{
    ASSERT(mt != NULL && why != NULL);
    uint32_t current = mt->partition_count;
    if (q->count < 0 || (uint32_t)q->count < current) {
        *why = admin_printf(&rq->arena,
                            "The topic %s currently has %u partition(s); %d would not be an "
                            "increase.",
                            mt->name, current, q->count);
        return KAFKA_INVALID_PARTITIONS;
    }
    if ((uint32_t)q->count == current) {
        *why = admin_printf(&rq->arena, "Topic already has %u partition(s).", current);
        return KAFKA_INVALID_PARTITIONS;
    }
    if (q->assignments.items == NULL)
        return KAFKA_NONE;
    uint32_t added = (uint32_t)q->count - current;
    if (q->assignments.count != added) {
        *why = admin_printf(&rq->arena,
                            "Attempted to add %u additional partition(s), but only %zu "
                            "assignment(s) were specified.",
                            added, q->assignments.count);
        return KAFKA_INVALID_REPLICA_ASSIGNMENT;
    }
    int32_t replicas = mt->replication_factor;
    for (size_t i = 0; i < q->assignments.count; i++) {
        const struct kafka_create_partitions_request_create_partitions_assignment *a =
            &q->assignments.items[i];
        int err = check_replicas(rq, a->broker_ids.items, a->broker_ids.count, &replicas, why);
        if (err != KAFKA_NONE)
            return err;
    }
    return KAFKA_NONE;
}

static void grow_one(struct breq *rq,
                     const struct kafka_create_partitions_request_create_partitions_topic *q,
                     bool duplicate, bool validate_only, grow_result *r)
{
    r->name = q->name;
    r->error_message = (struct proto_str){NULL, 0};
    const struct meta_topic *mt = meta_topic_find(&rq->b->meta, q->name.ptr, q->name.len);
    int err = KAFKA_NONE;
    if (duplicate) {
        r->error_message = proto_str_make("Duplicate topic name.");
        err = KAFKA_INVALID_REQUEST;
    } else if (mt == NULL) {
        r->error_message = proto_str_make("This server does not host this topic-partition.");
        err = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    } else {
        err = check_grow(rq, q, mt, &r->error_message);
    }
    if (err == KAFKA_NONE && !validate_only &&
        !broker_quota_admit(rq->b, (uint32_t)q->count - mt->partition_count)) {
        r->error_message = proto_str_make(quota_message);
        err = KAFKA_THROTTLING_QUOTA_EXCEEDED;
    }
    if (err == KAFKA_NONE)
        err = broker_grow_topic(rq, q->name.ptr, q->name.len, q->count, validate_only,
                                &r->error_message);
    r->error_code = (int16_t)(err < 0 ? KAFKA_UNKNOWN_SERVER_ERROR : err);
}

static void grow_finish(struct breq *rq, int16_t err)
{
    struct admin_answer *st = rq->admin_state;
    grow_result *out = st->items;
    for (size_t i = 0; i < st->count && err != KAFKA_NONE && !st->validate_only; i++) {
        if (out[i].error_code == KAFKA_NONE) {
            out[i].error_code = err;
            out[i].error_message = proto_str_make(commit_message(err));
        }
    }
    struct kafka_create_partitions_response resp;
    kafka_create_partitions_response_init(&resp);
    resp.throttle_time_ms = broker_quota_throttle_ms(rq->b);
    resp.results.items = out;
    resp.results.count = st->count;
    breq_respond(rq, &resp);
}

void create_partitions_handle(struct breq *rq)
{
    const struct kafka_create_partitions_request *req = rq->body;
    size_t n = req->topics.count;
    grow_result *out = arena_calloc(&rq->arena, n, sizeof(*out));
    bool *dup = arena_calloc(&rq->arena, n, sizeof(*dup));
    bool *later = arena_calloc(&rq->arena, n, sizeof(*later));
    struct slice *keys = arena_calloc(&rq->arena, n, sizeof(*keys));
    int rc = out == NULL || dup == NULL || later == NULL || keys == NULL ? ERR_TOO_LARGE : 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        keys[i] = slice_make(req->topics.items[i].name.ptr, req->topics.items[i].name.len);
    if (rc == 0)
        rc = admin_find_duplicates(&rq->arena, keys, n, dup, later);
    if (rc < 0) {
        breq_abort(rq);
        return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        /* A topic given twice is answered once, as Kafka does (clients match by name). */
        if (!later[i])
            grow_one(rq, &req->topics.items[i], dup[i], req->validate_only, &out[m++]);
    }
    struct admin_answer *st = arena_calloc(&rq->arena, 1, sizeof(*st));
    if (st == NULL) {
        breq_abort(rq);
        return;
    }
    *st = (struct admin_answer){.items = out, .count = m, .validate_only = req->validate_only};
    rq->admin_state = st;
    broker_admin_commit(rq, grow_finish);
}

/* ---- DeleteRecords --------------------------------------------------------------------------- */

typedef struct kafka_delete_records_response_delete_records_partition_result records_result;

/*
 * A replicated partition's log start is Raft state: the leader proposes it (a marker every
 * replica applies once committed, raft_group_propose_start) and answers once it is committed
 * and applied here, so the low watermark answered holds on every later leader. The answer waits
 * for every such partition of the request.
 */
struct delete_records {
    struct breq *rq;
    struct kafka_delete_records_response resp;
    uint32_t pending; /* partitions waiting for their marker, plus one while the request is read */
};

struct delete_records_part {
    struct delete_records *dr;
    records_result *out;
    struct replica *r;
    struct raft_waiter waiter;
};

static void delete_records_done(struct delete_records *dr)
{
    ASSERT(dr->pending > 0);
    if (--dr->pending == 0)
        breq_respond(dr->rq, &dr->resp);
}

static void on_start_committed(void *ctx, int err)
{
    struct delete_records_part *part = ctx;
    if (err == 0) {
        part->out->low_watermark = replica_log_start_offset(part->r);
    } else {
        /* Closed under the request or no longer the leader: the marker may still commit. */
        part->out->error_code = err == ERR_STATE || err == ERR_CLOSED ? KAFKA_NOT_LEADER_OR_FOLLOWER
                                                                      : KAFKA_KAFKA_STORAGE_ERROR;
    }
    delete_records_done(part->dr);
}

static void
delete_records_one(struct delete_records *dr, struct proto_str topic,
                   const struct kafka_delete_records_request_delete_records_partition *q,
                   records_result *r, struct delete_records_part *part)
{
    struct breq *rq = dr->rq;
    ASSERT(topic.ptr != NULL && r != NULL);
    r->partition_index = q->partition_index;
    r->low_watermark = -1;
    /* Only the partition's leader deletes (NOT_LEADER_OR_FOLLOWER elsewhere). */
    r->error_code =
        broker_partition_check(rq->b, topic.ptr, topic.len, q->partition_index, -1, NULL);
    if (r->error_code != KAFKA_NONE)
        return;
    struct replica *rep = broker_replica(rq->b, topic.ptr, topic.len, q->partition_index);
    if (rep == NULL) {
        r->error_code = broker_replica_error(rq->b, topic.ptr, topic.len, q->partition_index);
        return;
    }
    if (replica_error(rep) != 0) {
        r->error_code = KAFKA_KAFKA_STORAGE_ERROR;
        return;
    }
    if (!replica_leads(rep)) {
        r->error_code = KAFKA_NOT_LEADER_OR_FOLLOWER;
        return;
    }
    int64_t high = replica_visible_high_watermark(rep);
    int64_t offset = q->offset == DELETE_TO_HIGH_WATERMARK ? high : q->offset;
    if (offset < 0 || offset > high) {
        r->error_code = KAFKA_OFFSET_OUT_OF_RANGE;
        return;
    }
    r->error_code = KAFKA_NONE;
    /* An offset at or below the log start deletes nothing and answers the start as it is. */
    if (offset > replica_log_start_offset(rep) && replica_group(rep) != NULL) {
        *part = (struct delete_records_part){.dr = dr, .out = r, .r = rep};
        int rc = raft_group_propose_start(replica_group(rep), offset, &part->waiter,
                                          on_start_committed, part);
        if (rc == 0) {
            dr->pending++;
            return;
        }
        r->error_code = rc == ERR_STATE   ? KAFKA_NOT_LEADER_OR_FOLLOWER
                        : rc == ERR_RANGE ? KAFKA_OFFSET_OUT_OF_RANGE
                                          : KAFKA_KAFKA_STORAGE_ERROR;
        return;
    }
    if (offset > replica_log_start_offset(rep)) {
        int rc = log_delete_records(replica_log(rep), offset);
        if (rc < 0) {
            r->error_code = rc == ERR_RANGE ? KAFKA_OFFSET_OUT_OF_RANGE : KAFKA_KAFKA_STORAGE_ERROR;
            return;
        }
    }
    r->low_watermark = replica_log_start_offset(rep);
}

void delete_records_handle(struct breq *rq)
{
    const struct kafka_delete_records_request *req = rq->body;
    struct delete_records *dr = arena_calloc(&rq->arena, 1, sizeof(*dr));
    size_t n = req->topics.count, total = 0;
    struct kafka_delete_records_response_delete_records_topic_result *out =
        arena_calloc(&rq->arena, n, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        total += req->topics.items[i].partitions.count;
    struct delete_records_part *parts = arena_calloc(&rq->arena, total, sizeof(*parts));
    int rc = out == NULL || dr == NULL || (total > 0 && parts == NULL) ? ERR_TOO_LARGE : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct kafka_delete_records_request_delete_records_topic *q = &req->topics.items[i];
        out[i].name = q->name;
        out[i].partitions.count = q->partitions.count;
        out[i].partitions.items =
            arena_calloc(&rq->arena, q->partitions.count, sizeof(*out[i].partitions.items));
        if (out[i].partitions.items == NULL)
            rc = ERR_TOO_LARGE;
    }
    if (rc < 0) {
        breq_abort(rq);
        return;
    }
    dr->rq = rq;
    dr->pending = 1;
    kafka_delete_records_response_init(&dr->resp);
    dr->resp.topics.items = out;
    dr->resp.topics.count = n;
    /* Deleting starts only once the whole answer has its memory, so an answer that cannot be
     * sent never follows a deletion. */
    for (size_t i = 0; i < n; i++) {
        const struct kafka_delete_records_request_delete_records_topic *q = &req->topics.items[i];
        for (size_t j = 0; j < q->partitions.count; j++)
            delete_records_one(dr, q->name, &q->partitions.items[j], &out[i].partitions.items[j],
                               parts++);
    }
    delete_records_done(dr);
}
