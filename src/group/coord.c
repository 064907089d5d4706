/*
 * The group coordinator's state machine (see group.h): groups, members, rebalances, offsets,
 * and the __consumer_offsets records that make them durable.
 *
 * Invariants: a group's state is EMPTY exactly when it has no members; a member has a parked
 * JoinGroup only in PREPARING_REBALANCE and a parked SyncGroup only in COMPLETING_REBALANCE;
 * every parked token is answered exactly once (by a JOIN/SYNC effect) or handed back by
 * deinit; a group belongs to the partition group_partition_of() names and is visible only while
 * that partition is ready. Offsets become visible when their append is done, never before.
 *
 * It must never do I/O, read a clock or trust a request: sizes are checked against
 * base/limits.h, and bad input gets a Kafka error code, never an assertion.
 */
#include "group/group.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "group/records.h"
#include "log/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum part_state {
    PART_UNOWNED = 0,
    PART_LOADING,
    PART_READY,
    PART_FAILED, /* its log could not be read whole: nothing of it is served */
};

enum append_kind {
    APPEND_META,    /* group metadata written for durability only */
    APPEND_SYNC,    /* the leader's assignment; the parked SyncGroups wait for it */
    APPEND_OFFSETS, /* offsets applied when done */
    APPEND_DELETE,  /* tombstones; the state is already gone */
    APPEND_TXN,     /* a transaction's offsets, pending for its producer when done */
};

struct group_append {
    struct group_append *next;
    uint64_t id;
    enum append_kind kind;
    struct group_bytes group_id;
    struct group_offset *offsets; /* APPEND_OFFSETS, APPEND_TXN */
    size_t offset_count;
    int64_t producer_id; /* APPEND_TXN */
};

#define NO_SLOT         UINT32_MAX
#define FX_ARENA_BLOCK  (64u * KIB)
#define UUID_TEXT_BYTES 36u

/* ---- owned bytes ------------------------------------------------------------------------- */

static struct group_bytes gb_dup(struct slice s)
{
    struct group_bytes b = {NULL, 0};
    if (s.ptr == NULL)
        return b;
    b.ptr = xmalloc(s.len + 1);
    memcpy(b.ptr, s.ptr, s.len);
    b.ptr[s.len] = 0;
    b.len = s.len;
    return b;
}

static void gb_free(struct group_bytes *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
}

static void gb_set(struct group_bytes *b, struct slice s)
{
    struct group_bytes n = gb_dup(s);
    gb_free(b);
    *b = n;
}

/* Equal as nullable byte strings: null equals only null. */
static bool gb_eq(struct group_bytes b, struct slice s)
{
    if (b.ptr == NULL || s.ptr == NULL)
        return b.ptr == NULL && s.ptr == NULL;
    return slice_eq(group_bytes_slice(b), s);
}

static struct slice cstr(const char *s)
{
    return slice_make(s, strlen(s));
}

/* ---- hashing ----------------------------------------------------------------------------- */

static uint64_t hash_bytes(struct slice s, uint64_t h)
{
    for (size_t i = 0; i < s.len; i++) {
        h ^= s.ptr[i];
        h *= 1099511628211ull;
    }
    return h;
}

uint32_t group_partition_of(struct slice group_id, uint32_t partition_count)
{
    ASSERT(partition_count > 0);
    /* Java's String.hashCode over the bytes (equal to Kafka's for ASCII ids), then Kafka's
     * Utils.abs, which masks the sign bit. */
    uint32_t h = 0;
    for (size_t i = 0; i < group_id.len; i++)
        h = h * 31u + group_id.ptr[i];
    return (h & 0x7fffffffu) % partition_count;
}

/* ---- the group table --------------------------------------------------------------------- */

static void group_index_rebuild(struct group_coord *c, size_t slots)
{
    free(c->group_index);
    c->group_slots = slots;
    c->group_index = xmalloc(slots * sizeof(*c->group_index));
    memset(c->group_index, 0xff, slots * sizeof(*c->group_index));
    for (size_t i = 0; i < c->group_count; i++) {
        size_t mask = slots - 1;
        size_t s = hash_bytes(group_bytes_slice(c->groups[i]->id), 14695981039346656037ull) & mask;
        while (c->group_index[s] != NO_SLOT)
            s = (s + 1) & mask;
        c->group_index[s] = (uint32_t)i;
    }
}

/* Any group, whatever its partition's state. */
static struct group *group_lookup(const struct group_coord *c, struct slice id)
{
    if (c->group_slots == 0)
        return NULL;
    size_t mask = c->group_slots - 1;
    for (size_t s = hash_bytes(id, 14695981039346656037ull) & mask;; s = (s + 1) & mask) {
        uint32_t i = c->group_index[s];
        if (i == NO_SLOT)
            return NULL;
        if (slice_eq(group_bytes_slice(c->groups[i]->id), id))
            return c->groups[i];
    }
}

static bool part_ready(const struct group_coord *c, uint32_t p)
{
    return c->partition_state[p] == PART_READY;
}

/* A group the coordinator answers for now, or NULL. */
static struct group *group_get(const struct group_coord *c, struct slice id)
{
    struct group *g = group_lookup(c, id);
    return g != NULL && part_ready(c, g->partition) ? g : NULL;
}

static struct group *group_create(struct group_coord *c, struct slice id, int64_t now_ms)
{
    if (c->group_count >= GROUP_GROUPS_MAX)
        return NULL;
    struct group *g = xcalloc(1, sizeof(*g));
    g->id = gb_dup(id);
    g->partition = group_partition_of(id, c->cfg.partition_count);
    g->state = GROUP_EMPTY;
    g->state_ms = now_ms;
    if (c->group_count == c->group_cap) {
        c->group_cap = c->group_cap == 0 ? 16 : c->group_cap * 2;
        c->groups = xrealloc(c->groups, c->group_cap * sizeof(*c->groups));
    }
    c->groups[c->group_count++] = g;
    if (c->group_count * 2 > c->group_slots) {
        group_index_rebuild(c, c->group_slots == 0 ? 64 : c->group_slots * 2);
    } else {
        size_t mask = c->group_slots - 1;
        size_t s = hash_bytes(id, 14695981039346656037ull) & mask;
        while (c->group_index[s] != NO_SLOT)
            s = (s + 1) & mask;
        c->group_index[s] = (uint32_t)(c->group_count - 1);
    }
    return g;
}

static void member_free(struct group_member *m)
{
    gb_free(&m->member_id);
    gb_free(&m->instance_id);
    gb_free(&m->client_id);
    gb_free(&m->client_host);
    for (size_t i = 0; i < m->protocol_count; i++) {
        gb_free(&m->protocols[i].name);
        gb_free(&m->protocols[i].metadata);
    }
    free(m->protocols);
    gb_free(&m->assignment);
    free(m);
}

static void group_free(struct group *g)
{
    for (size_t i = 0; i < g->member_count; i++)
        member_free(g->members[i]);
    free(g->members);
    for (size_t i = 0; i < g->pending_count; i++)
        gb_free(&g->pending[i].member_id);
    free(g->pending);
    for (size_t i = 0; i < g->offset_count; i++) {
        gb_free(&g->offsets[i].topic);
        gb_free(&g->offsets[i].metadata);
    }
    free(g->offsets);
    free(g->offset_index);
    for (size_t i = 0; i < g->txn_count; i++) {
        gb_free(&g->txn_offsets[i].o.topic);
        gb_free(&g->txn_offsets[i].o.metadata);
    }
    free(g->txn_offsets);
    gb_free(&g->id);
    gb_free(&g->protocol_type);
    gb_free(&g->protocol_name);
    gb_free(&g->leader_id);
    free(g);
}

/* Removes g from the table and frees it; its parked tokens must have been answered. */
static void group_destroy(struct group_coord *c, struct group *g)
{
    for (size_t i = 0; i < c->group_count; i++) {
        if (c->groups[i] == g) {
            c->groups[i] = c->groups[--c->group_count];
            break;
        }
    }
    group_index_rebuild(c, c->group_slots);
    group_free(g);
}

/* ---- offsets of a group ------------------------------------------------------------------ */

static uint64_t offset_hash(struct slice topic, int32_t partition)
{
    uint64_t h = hash_bytes(topic, 14695981039346656037ull);
    return (h ^ (uint32_t)partition) * 1099511628211ull;
}

static void offset_index_rebuild(struct group *g, size_t slots)
{
    free(g->offset_index);
    g->offset_slots = slots;
    g->offset_index = xmalloc(slots * sizeof(*g->offset_index));
    memset(g->offset_index, 0xff, slots * sizeof(*g->offset_index));
    size_t mask = slots - 1;
    for (size_t i = 0; i < g->offset_count; i++) {
        const struct group_offset *o = &g->offsets[i];
        size_t s = offset_hash(group_bytes_slice(o->topic), o->partition) & mask;
        while (g->offset_index[s] != NO_SLOT)
            s = (s + 1) & mask;
        g->offset_index[s] = (uint32_t)i;
    }
}

static struct group_offset *offset_find(const struct group *g, struct slice topic,
                                        int32_t partition)
{
    if (g->offset_slots == 0)
        return NULL;
    size_t mask = g->offset_slots - 1;
    for (size_t s = offset_hash(topic, partition) & mask;; s = (s + 1) & mask) {
        uint32_t i = g->offset_index[s];
        if (i == NO_SLOT)
            return NULL;
        struct group_offset *o = &g->offsets[i];
        if (o->partition == partition && slice_eq(group_bytes_slice(o->topic), topic))
            return o;
    }
}

/* Frees the bytes an offset owns. */
static void offset_release(struct group_offset *o)
{
    gb_free(&o->topic);
    gb_free(&o->metadata);
}

/* Inserts or replaces; the offset's owned bytes move into the group. */
static void offset_put(struct group *g, struct group_offset *in)
{
    struct group_offset *o = offset_find(g, group_bytes_slice(in->topic), in->partition);
    if (o != NULL) {
        offset_release(o);
        *o = *in;
        return;
    }
    if (g->offset_count >= GROUP_OFFSETS_MAX) {
        offset_release(in);
        return;
    }
    if (g->offset_count == g->offset_cap) {
        g->offset_cap = g->offset_cap == 0 ? 8 : g->offset_cap * 2;
        g->offsets = xrealloc(g->offsets, g->offset_cap * sizeof(*g->offsets));
    }
    g->offsets[g->offset_count++] = *in;
    if (g->offset_count * 2 > g->offset_slots) {
        offset_index_rebuild(g, g->offset_slots == 0 ? 16 : g->offset_slots * 2);
        return;
    }
    size_t mask = g->offset_slots - 1;
    size_t s = offset_hash(group_bytes_slice(in->topic), in->partition) & mask;
    while (g->offset_index[s] != NO_SLOT)
        s = (s + 1) & mask;
    g->offset_index[s] = (uint32_t)(g->offset_count - 1);
}

static bool offset_remove(struct group *g, struct slice topic, int32_t partition)
{
    struct group_offset *o = offset_find(g, topic, partition);
    if (o == NULL)
        return false;
    offset_release(o);
    *o = g->offsets[--g->offset_count];
    offset_index_rebuild(g, g->offset_slots);
    return true;
}

/* A transaction's offset of the producer: replaces the producer's pending one of the same
 * partition (the newest wins, as in Kafka); takes ownership of o's bytes. */
static void txn_put(struct group *g, int64_t producer_id, struct group_offset *o)
{
    for (size_t i = 0; i < g->txn_count; i++) {
        struct group_txn_offset *t = &g->txn_offsets[i];
        if (t->producer_id == producer_id && t->o.partition == o->partition &&
            gb_eq(t->o.topic, group_bytes_slice(o->topic))) {
            offset_release(&t->o);
            t->o = *o;
            return;
        }
    }
    if (g->txn_count >= GROUP_OFFSETS_MAX) {
        offset_release(o);
        return;
    }
    if (g->txn_count == g->txn_cap) {
        g->txn_cap = g->txn_cap == 0 ? 4 : g->txn_cap * 2;
        g->txn_offsets = xrealloc(g->txn_offsets, g->txn_cap * sizeof(*g->txn_offsets));
    }
    g->txn_offsets[g->txn_count++] = (struct group_txn_offset){.producer_id = producer_id, .o = *o};
}

/* The producer's transaction ended: its offsets become committed ones or are dropped. */
static void txn_end(struct group *g, int64_t producer_id, bool commit)
{
    size_t keep = 0;
    for (size_t i = 0; i < g->txn_count; i++) {
        struct group_txn_offset *t = &g->txn_offsets[i];
        if (t->producer_id != producer_id) {
            g->txn_offsets[keep++] = *t;
            continue;
        }
        if (commit) {
            offset_put(g, &t->o);
        } else {
            offset_release(&t->o);
        }
    }
    g->txn_count = keep;
}

/* A transaction has offsets pending for the partition. */
static bool txn_pending(const struct group *g, struct slice topic, int32_t partition)
{
    for (size_t i = 0; i < g->txn_count; i++)
        if (g->txn_offsets[i].o.partition == partition && gb_eq(g->txn_offsets[i].o.topic, topic))
            return true;
    return false;
}

/* ---- effects ----------------------------------------------------------------------------- */

/* Once the host polled every effect, their memory is reused. */
static void fx_gc(struct group_coord *c)
{
    if (c->fx_next < c->fx_count)
        return;
    c->fx_count = 0;
    c->fx_next = 0;
    arena_reset(&c->fx_arena);
}

static void *fx_alloc(struct group_coord *c, size_t n)
{
    void *p = arena_alloc(&c->fx_arena, n);
    ASSERT(p != NULL); /* the effect arena has no byte limit */
    return p;
}

static struct slice fx_copy(struct group_coord *c, struct slice s)
{
    if (s.ptr == NULL)
        return s;
    uint8_t *p = fx_alloc(c, s.len + 1);
    memcpy(p, s.ptr, s.len);
    p[s.len] = 0;
    return slice_make(p, s.len);
}

static struct group_fx *fx_push(struct group_coord *c, enum group_fx_kind kind, void *token)
{
    if (c->fx_count == c->fx_cap) {
        c->fx_cap = c->fx_cap == 0 ? 16 : c->fx_cap * 2;
        c->fx = xrealloc(c->fx, c->fx_cap * sizeof(*c->fx));
    }
    struct group_fx *fx = &c->fx[c->fx_count++];
    memset(fx, 0, sizeof(*fx));
    fx->kind = kind;
    fx->token = token;
    fx->generation = -1;
    fx->producer_id = -1;
    fx->producer_epoch = -1;
    return fx;
}

int group_coord_poll(struct group_coord *c, struct group_fx *out)
{
    if (c->fx_next >= c->fx_count)
        return 0;
    *out = c->fx[c->fx_next++];
    return 1;
}

static void fx_join_error(struct group_coord *c, void *token, int16_t error, struct slice member)
{
    struct group_fx *fx = fx_push(c, GROUP_FX_JOIN, token);
    fx->error = error;
    fx->member_id = fx_copy(c, member.ptr != NULL ? member : cstr(""));
    fx->leader_id = cstr("");
}

static void fx_sync_error(struct group_coord *c, void *token, int16_t error)
{
    struct group_fx *fx = fx_push(c, GROUP_FX_SYNC, token);
    fx->error = error;
    fx->assignment = cstr("");
}

struct slice group_member_metadata(const struct group *g, const struct group_member *m)
{
    for (size_t i = 0; i < m->protocol_count; i++)
        if (g->protocol_name.ptr == NULL ||
            gb_eq(m->protocols[i].name, group_bytes_slice(g->protocol_name)))
            return group_bytes_slice(m->protocols[i].metadata);
    return cstr("");
}

/* The JoinGroup answer of a member in the group's current generation. */
static void fx_join_ok(struct group_coord *c, struct group *g, struct group_member *m, void *token,
                       bool skip_assignment)
{
    struct group_fx *fx = fx_push(c, GROUP_FX_JOIN, token);
    fx->error = GROUP_ERR_NONE;
    fx->generation = g->generation;
    fx->protocol_type = fx_copy(c, group_bytes_slice(g->protocol_type));
    fx->protocol_name = fx_copy(c, group_bytes_slice(g->protocol_name));
    fx->leader_id = fx_copy(c, group_bytes_slice(g->leader_id));
    fx->member_id = fx_copy(c, group_bytes_slice(m->member_id));
    fx->skip_assignment = skip_assignment;
    if (!gb_eq(g->leader_id, group_bytes_slice(m->member_id)))
        return;
    struct group_fx_member *list = fx_alloc(c, (g->member_count + 1) * sizeof(*list));
    for (size_t i = 0; i < g->member_count; i++) {
        const struct group_member *o = g->members[i];
        list[i].member_id = fx_copy(c, group_bytes_slice(o->member_id));
        list[i].instance_id = fx_copy(c, group_bytes_slice(o->instance_id));
        list[i].metadata = fx_copy(c, group_member_metadata(g, o));
    }
    fx->members = list;
    fx->member_count = g->member_count;
}

static void fx_sync_ok(struct group_coord *c, struct group *g, struct group_member *m, void *token)
{
    struct group_fx *fx = fx_push(c, GROUP_FX_SYNC, token);
    fx->error = GROUP_ERR_NONE;
    fx->protocol_type = fx_copy(c, group_bytes_slice(g->protocol_type));
    fx->protocol_name = fx_copy(c, group_bytes_slice(g->protocol_name));
    fx->assignment =
        fx_copy(c, m->assignment.ptr != NULL ? group_bytes_slice(m->assignment) : cstr(""));
}

/* ---- appends ----------------------------------------------------------------------------- */

/* Records collected for one append before they are copied into an effect. */
struct recs {
    struct buf bytes;
    struct rec_span {
        size_t key_off, key_len, value_off, value_len;
        bool tombstone;
    } * spans;
    size_t count;
    size_t cap;
};

static void recs_init(struct recs *r)
{
    buf_init(&r->bytes);
    r->spans = NULL;
    r->count = 0;
    r->cap = 0;
}

static void recs_deinit(struct recs *r)
{
    buf_deinit(&r->bytes);
    free(r->spans);
}

static struct rec_span *recs_next(struct recs *r)
{
    if (r->count == r->cap) {
        r->cap = r->cap == 0 ? 8 : r->cap * 2;
        r->spans = xrealloc(r->spans, r->cap * sizeof(*r->spans));
    }
    struct rec_span *s = &r->spans[r->count++];
    memset(s, 0, sizeof(*s));
    return s;
}

static void recs_offset(struct recs *r, struct slice group, const struct group_offset *o)
{
    struct rec_span *s = recs_next(r);
    s->key_off = r->bytes.len;
    grec_offset_key_encode(&r->bytes, group, group_bytes_slice(o->topic), o->partition);
    s->key_len = r->bytes.len - s->key_off;
    s->value_off = r->bytes.len;
    struct grec_offset_value v = {
        .offset = o->offset,
        .leader_epoch = o->leader_epoch,
        .metadata = group_bytes_slice(o->metadata),
        .commit_ms = o->commit_ms,
        .expire_ms = o->expire_ms,
    };
    grec_offset_value_encode(&r->bytes, &v);
    s->value_len = r->bytes.len - s->value_off;
}

static void recs_offset_tombstone(struct recs *r, struct slice group, struct slice topic,
                                  int32_t partition)
{
    struct rec_span *s = recs_next(r);
    s->key_off = r->bytes.len;
    grec_offset_key_encode(&r->bytes, group, topic, partition);
    s->key_len = r->bytes.len - s->key_off;
    s->tombstone = true;
}

static void recs_group(struct recs *r, const struct group *g)
{
    struct rec_span *s = recs_next(r);
    s->key_off = r->bytes.len;
    grec_group_key_encode(&r->bytes, group_bytes_slice(g->id));
    s->key_len = r->bytes.len - s->key_off;
    s->value_off = r->bytes.len;
    struct grec_member *ms = xcalloc(g->member_count + 1, sizeof(*ms));
    for (size_t i = 0; i < g->member_count; i++) {
        const struct group_member *m = g->members[i];
        ms[i] = (struct grec_member){
            .member_id = group_bytes_slice(m->member_id),
            .instance_id = group_bytes_slice(m->instance_id),
            .client_id = group_bytes_slice(m->client_id),
            .client_host = group_bytes_slice(m->client_host),
            .rebalance_timeout_ms = m->rebalance_timeout_ms,
            .session_timeout_ms = m->session_timeout_ms,
            .subscription = group_member_metadata(g, m),
            .assignment = m->assignment.ptr != NULL ? group_bytes_slice(m->assignment) : cstr(""),
        };
    }
    struct grec_group_value v = {
        .protocol_type = group_bytes_slice(g->protocol_type),
        .generation = g->generation,
        .protocol = group_bytes_slice(g->protocol_name),
        .leader = group_bytes_slice(g->leader_id),
        .state_ms = g->state_ms,
        .members = ms,
        .member_count = g->member_count,
    };
    grec_group_value_encode(&r->bytes, &v);
    free(ms);
    s->value_len = r->bytes.len - s->value_off;
}

static void recs_group_tombstone(struct recs *r, struct slice group)
{
    struct rec_span *s = recs_next(r);
    s->key_off = r->bytes.len;
    grec_group_key_encode(&r->bytes, group);
    s->key_len = r->bytes.len - s->key_off;
    s->tombstone = true;
}

/* Queues the APPEND effect for the records and remembers what to do when it is done. The
 * append takes ownership of offsets (APPEND_OFFSETS). Returns the append id. */
static uint64_t append_start(struct group_coord *c, struct group *g, enum append_kind kind,
                             struct recs *r, void *token, struct group_offset *offsets,
                             size_t offset_count)
{
    ASSERT(r->count > 0);
    struct group_fx *fx = fx_push(c, GROUP_FX_APPEND, token);
    uint8_t *bytes = fx_alloc(c, r->bytes.len + 1);
    if (r->bytes.len > 0)
        memcpy(bytes, r->bytes.data, r->bytes.len);
    struct group_record *recs = fx_alloc(c, r->count * sizeof(*recs));
    for (size_t i = 0; i < r->count; i++) {
        const struct rec_span *s = &r->spans[i];
        recs[i].key = slice_make(bytes + s->key_off, s->key_len);
        recs[i].value =
            s->tombstone ? slice_make(NULL, 0) : slice_make(bytes + s->value_off, s->value_len);
    }
    struct group_append *a = xcalloc(1, sizeof(*a));
    a->id = ++c->next_append_id;
    a->kind = kind;
    a->group_id = gb_dup(group_bytes_slice(g->id));
    a->offsets = offsets;
    a->offset_count = offset_count;
    struct group_append **tail = &c->appends;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = a;
    fx->partition = g->partition;
    fx->append_id = a->id;
    fx->records = recs;
    fx->record_count = r->count;
    return a->id;
}

/* Writes the group's metadata (its members and assignments) for durability only. */
static uint64_t store_group(struct group_coord *c, struct group *g, enum append_kind kind)
{
    struct recs r;
    recs_init(&r);
    recs_group(&r, g);
    uint64_t id = append_start(c, g, kind, &r, NULL, NULL, 0);
    recs_deinit(&r);
    return id;
}

static void append_free(struct group_append *a)
{
    for (size_t i = 0; i < a->offset_count; i++) {
        gb_free(&a->offsets[i].topic);
        gb_free(&a->offsets[i].metadata);
    }
    free(a->offsets);
    gb_free(&a->group_id);
    free(a);
}

/* ---- members ----------------------------------------------------------------------------- */

static struct group_member *member_find(const struct group *g, struct slice member_id)
{
    for (size_t i = 0; i < g->member_count; i++)
        if (gb_eq(g->members[i]->member_id, member_id))
            return g->members[i];
    return NULL;
}

static struct group_member *member_by_instance(const struct group *g, struct slice instance_id)
{
    if (instance_id.ptr == NULL)
        return NULL;
    for (size_t i = 0; i < g->member_count; i++)
        if (gb_eq(g->members[i]->instance_id, instance_id))
            return g->members[i];
    return NULL;
}

static bool is_leader(const struct group *g, const struct group_member *m)
{
    return gb_eq(g->leader_id, group_bytes_slice(m->member_id));
}

static void set_state(struct group *g, enum group_state s, int64_t now_ms)
{
    g->state = s;
    g->state_ms = now_ms;
}

/* Lowers the coordinator's next deadline to at_ms: every deadline set anywhere is noted here, so
 * group_coord_tick() may skip all work before c->next_deadline_ms. */
static void deadline_note(struct group_coord *c, int64_t at_ms)
{
    if (at_ms < c->next_deadline_ms)
        c->next_deadline_ms = at_ms;
}

/* The member's session starts again at now_ms. */
static void session_start(struct group_coord *c, struct group_member *m, int64_t now_ms)
{
    m->session_deadline_ms = now_ms + m->session_timeout_ms;
    deadline_note(c, m->session_deadline_ms);
}

/* A fresh member id: prefix-UUID, as Kafka makes them. */
static struct group_bytes new_member_id(struct group_coord *c, struct slice prefix)
{
    uint8_t u[16];
    rng_fill(&c->rng, u, sizeof(u));
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    char text[UUID_TEXT_BYTES + 1];
    snprintf(text, sizeof(text),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
    /* The id must stay a Kafka string however long the client id is. */
    prefix.len = MIN(prefix.len, (size_t)GROUP_ID_BYTES_MAX - 1 - UUID_TEXT_BYTES);
    struct group_bytes b;
    b.len = prefix.len + 1 + UUID_TEXT_BYTES;
    b.ptr = xmalloc(b.len + 1);
    if (prefix.len > 0)
        memcpy(b.ptr, prefix.ptr, prefix.len);
    b.ptr[prefix.len] = '-';
    memcpy(b.ptr + prefix.len + 1, text, UUID_TEXT_BYTES + 1);
    return b;
}

static void member_set_protocols(struct group_member *m, const struct group_join_req *req)
{
    for (size_t i = 0; i < m->protocol_count; i++) {
        gb_free(&m->protocols[i].name);
        gb_free(&m->protocols[i].metadata);
    }
    free(m->protocols);
    m->protocol_count = req->protocol_count;
    m->protocols = xcalloc(req->protocol_count + 1, sizeof(*m->protocols));
    for (size_t i = 0; i < req->protocol_count; i++) {
        m->protocols[i].name = gb_dup(req->protocol_names[i]);
        struct slice md = req->protocol_metadata[i];
        m->protocols[i].metadata = gb_dup(md.ptr != NULL ? md : cstr(""));
    }
}

static bool member_protocols_match(const struct group_member *m, const struct group_join_req *req)
{
    if (m->protocol_count != req->protocol_count)
        return false;
    for (size_t i = 0; i < req->protocol_count; i++) {
        struct slice md = req->protocol_metadata[i];
        if (!gb_eq(m->protocols[i].name, req->protocol_names[i]) ||
            !slice_eq(group_bytes_slice(m->protocols[i].metadata), md.ptr ? md : cstr("")))
            return false;
    }
    return true;
}

/* Whether the join offers the group's protocol with the metadata the member had for it: what
 * decides if a returning static member can keep its assignment. */
static bool selected_metadata_match(const struct group *g, const struct group_member *m,
                                    const struct group_join_req *req)
{
    if (g->protocol_name.ptr == NULL)
        return false;
    struct slice name = group_bytes_slice(g->protocol_name);
    for (size_t i = 0; i < req->protocol_count; i++) {
        struct slice md = req->protocol_metadata[i];
        if (slice_eq(req->protocol_names[i], name))
            return slice_eq(group_member_metadata(g, m), md.ptr != NULL ? md : cstr(""));
    }
    return false;
}

static void member_update(struct group_coord *c, struct group_member *m,
                          const struct group_join_req *req, int64_t now_ms)
{
    member_set_protocols(m, req);
    gb_set(&m->client_id, req->client_id.ptr != NULL ? req->client_id : cstr(""));
    gb_set(&m->client_host, req->client_host.ptr != NULL ? req->client_host : cstr(""));
    m->session_timeout_ms = req->session_timeout_ms;
    m->rebalance_timeout_ms =
        req->rebalance_timeout_ms > 0 ? req->rebalance_timeout_ms : req->session_timeout_ms;
    session_start(c, m, now_ms);
}

static bool member_supports(const struct group_member *m, struct slice name)
{
    for (size_t i = 0; i < m->protocol_count; i++)
        if (gb_eq(m->protocols[i].name, name))
            return true;
    return false;
}

/* Whether every member except `skip` supports the protocol. */
static bool all_support(const struct group *g, const struct group_member *skip, struct slice name)
{
    for (size_t i = 0; i < g->member_count; i++)
        if (g->members[i] != skip && !member_supports(g->members[i], name))
            return false;
    return true;
}

/* Kafka's rule: a joining member must share at least one protocol with every other member. */
static bool protocols_compatible(const struct group *g, const struct group_member *self,
                                 const struct group_join_req *req)
{
    for (size_t i = 0; i < req->protocol_count; i++)
        if (all_support(g, self, req->protocol_names[i]))
            return true;
    return false;
}

/*
 * Kafka's selection: the candidates are the protocols every member supports; each member
 * votes for the first candidate in its own preference order, and the most votes win. A tie
 * goes to the candidate the first member prefers, so the choice is deterministic.
 */
static struct slice select_protocol(const struct group *g)
{
    ASSERT(g->member_count > 0);
    const struct group_member *first = g->members[0];
    struct slice best = slice_make(NULL, 0);
    size_t best_votes = 0;
    for (size_t i = 0; i < first->protocol_count; i++) {
        struct slice cand = group_bytes_slice(first->protocols[i].name);
        if (!all_support(g, NULL, cand))
            continue;
        size_t votes = 0;
        for (size_t k = 0; k < g->member_count; k++) {
            const struct group_member *m = g->members[k];
            for (size_t j = 0; j < m->protocol_count; j++) {
                struct slice name = group_bytes_slice(m->protocols[j].name);
                if (all_support(g, NULL, name)) {
                    votes += slice_eq(name, cand);
                    break;
                }
            }
        }
        if (best.ptr == NULL || votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    ASSERT(best.ptr != NULL); /* joins are refused unless a common protocol exists */
    return best;
}

static int32_t max_rebalance_ms(const struct group *g)
{
    int32_t t = 0;
    for (size_t i = 0; i < g->member_count; i++)
        t = MAX(t, g->members[i]->rebalance_timeout_ms);
    return t;
}

/* ---- rebalancing ------------------------------------------------------------------------- */

static void complete_join(struct group_coord *c, struct group *g, int64_t now_ms);

static bool all_joined(const struct group *g)
{
    if (g->pending_count > 0)
        return false;
    for (size_t i = 0; i < g->member_count; i++)
        if (g->members[i]->join_token == NULL)
            return false;
    return true;
}

static void try_complete_join(struct group_coord *c, struct group *g, int64_t now_ms)
{
    if (g->state == GROUP_PREPARING_REBALANCE && !g->initial_active && all_joined(g))
        complete_join(c, g, now_ms);
}

/* Answers every parked SyncGroup with error and drops the assignments in flight. */
static void fail_syncs(struct group_coord *c, struct group *g, int16_t error)
{
    for (size_t i = 0; i < g->member_count; i++) {
        struct group_member *m = g->members[i];
        if (m->sync_token != NULL) {
            fx_sync_error(c, m->sync_token, error);
            m->sync_token = NULL;
            /* No longer parked: its session counts again. */
            deadline_note(c, m->session_deadline_ms);
        }
    }
}

static void prepare_rebalance(struct group_coord *c, struct group *g, int64_t now_ms)
{
    if (g->state == GROUP_COMPLETING_REBALANCE) {
        fail_syncs(c, g, GROUP_ERR_REBALANCE_IN_PROGRESS);
        for (size_t i = 0; i < g->member_count; i++)
            gb_free(&g->members[i]->assignment);
    }
    g->sync_append_id = 0;
    int32_t rebalance_ms = max_rebalance_ms(g);
    if (g->state == GROUP_EMPTY) {
        /* The first members of an empty group wait for others to arrive, so a group that
         * starts many consumers at once rebalances once, not once per consumer. */
        g->initial_deadline_ms = now_ms + c->cfg.initial_delay_ms;
        g->initial_limit_ms = now_ms + MAX((int64_t)rebalance_ms, (int64_t)c->cfg.initial_delay_ms);
        g->initial_joined = false;
        g->initial_active = true;
    } else {
        g->initial_active = false;
    }
    g->rebalance_deadline_ms = now_ms + rebalance_ms;
    deadline_note(c, g->initial_active ? g->initial_deadline_ms : g->rebalance_deadline_ms);
    set_state(g, GROUP_PREPARING_REBALANCE, now_ms);
    try_complete_join(c, g, now_ms);
}

static void remove_member_at(struct group *g, size_t i)
{
    member_free(g->members[i]);
    g->members[i] = g->members[--g->member_count];
}

static void complete_join(struct group_coord *c, struct group *g, int64_t now_ms)
{
    ASSERT(g->state == GROUP_PREPARING_REBALANCE);
    /* Members that did not rejoin in time leave the group, static ones included. */
    for (size_t i = 0; i < g->member_count;) {
        if (g->members[i]->join_token == NULL) {
            if (is_leader(g, g->members[i]))
                gb_free(&g->leader_id);
            remove_member_at(g, i);
        } else {
            i++;
        }
    }
    g->initial_active = false;
    g->generation++;
    if (g->member_count == 0) {
        gb_free(&g->protocol_name);
        gb_free(&g->leader_id);
        set_state(g, GROUP_EMPTY, now_ms);
        store_group(c, g, APPEND_META);
        return;
    }
    gb_set(&g->protocol_name, select_protocol(g));
    if (g->leader_id.ptr == NULL || member_find(g, group_bytes_slice(g->leader_id)) == NULL)
        gb_set(&g->leader_id, group_bytes_slice(g->members[0]->member_id));
    set_state(g, GROUP_COMPLETING_REBALANCE, now_ms);
    g->sync_deadline_ms = now_ms + max_rebalance_ms(g);
    deadline_note(c, g->sync_deadline_ms);
    for (size_t i = 0; i < g->member_count; i++) {
        struct group_member *m = g->members[i];
        fx_join_ok(c, g, m, m->join_token, false);
        m->join_token = NULL;
        session_start(c, m, now_ms);
    }
}

/* Removes a member and lets the group react as Kafka does; its parked requests get error. */
static void remove_member(struct group_coord *c, struct group *g, struct group_member *m,
                          int16_t error, int64_t now_ms)
{
    if (m->join_token != NULL)
        fx_join_error(c, m->join_token, error, group_bytes_slice(m->member_id));
    if (m->sync_token != NULL)
        fx_sync_error(c, m->sync_token, error);
    m->join_token = NULL;
    m->sync_token = NULL;
    for (size_t i = 0; i < g->member_count; i++) {
        if (g->members[i] == m) {
            remove_member_at(g, i);
            break;
        }
    }
    switch (g->state) {
    case GROUP_STABLE:
    case GROUP_COMPLETING_REBALANCE:
        prepare_rebalance(c, g, now_ms);
        break;
    case GROUP_PREPARING_REBALANCE:
        try_complete_join(c, g, now_ms);
        break;
    case GROUP_EMPTY:
    case GROUP_DEAD:
        break;
    }
}

static bool pending_remove(struct group *g, struct slice member_id)
{
    for (size_t i = 0; i < g->pending_count; i++) {
        if (gb_eq(g->pending[i].member_id, member_id)) {
            gb_free(&g->pending[i].member_id);
            g->pending[i] = g->pending[--g->pending_count];
            return true;
        }
    }
    return false;
}

/* ---- life cycle -------------------------------------------------------------------------- */

void group_config_default(struct group_config *cfg)
{
    *cfg = (struct group_config){
        .partition_count = GROUP_OFFSETS_PARTITIONS_DEFAULT,
        .initial_delay_ms = GROUP_INITIAL_DELAY_MS_DEFAULT,
        .session_ms_min = GROUP_SESSION_MS_MIN_DEFAULT,
        .session_ms_max = GROUP_SESSION_MS_MAX_DEFAULT,
        .retention_ms = GROUP_RETENTION_MS_DEFAULT,
        .retention_check_ms = GROUP_RETENTION_CHECK_MS_DEFAULT,
        .members_max = GROUP_MEMBERS_MAX,
        .seed = 1,
    };
}

void group_coord_init(struct group_coord *c, const struct group_config *cfg)
{
    ASSERT(cfg->partition_count > 0 && cfg->partition_count <= GROUP_OFFSETS_PARTITIONS_MAX);
    ASSERT(cfg->members_max > 0 && cfg->members_max <= GROUP_MEMBERS_MAX);
    memset(c, 0, sizeof(*c));
    c->cfg = *cfg;
    rng_seed(&c->rng, cfg->seed);
    c->partition_state = xcalloc(cfg->partition_count, 1);
    arena_init(&c->fx_arena, FX_ARENA_BLOCK, SIZE_MAX);
}

void group_coord_deinit(struct group_coord *c)
{
    for (size_t i = 0; i < c->group_count; i++)
        group_free(c->groups[i]);
    free(c->groups);
    free(c->group_index);
    while (c->appends != NULL) {
        struct group_append *a = c->appends;
        c->appends = a->next;
        append_free(a);
    }
    free(c->fx);
    arena_deinit(&c->fx_arena);
    free(c->partition_state);
    memset(c, 0, sizeof(*c));
}

int16_t group_coord_check(const struct group_coord *c, struct slice group_id)
{
    if (group_id.ptr == NULL || group_id.len == 0)
        return GROUP_ERR_INVALID_GROUP_ID;
    uint32_t p = group_partition_of(group_id, c->cfg.partition_count);
    switch (c->partition_state[p]) {
    case PART_READY:
        return GROUP_ERR_NONE;
    case PART_LOADING:
        return GROUP_ERR_LOAD_IN_PROGRESS;
    case PART_FAILED:
        return GROUP_ERR_UNKNOWN_SERVER_ERROR;
    default:
        return GROUP_ERR_NOT_COORDINATOR;
    }
}

int16_t group_coord_list_error(const struct group_coord *c)
{
    int16_t err = GROUP_ERR_NONE;
    for (uint32_t p = 0; p < c->cfg.partition_count; p++) {
        if (c->partition_state[p] == PART_LOADING)
            return GROUP_ERR_LOAD_IN_PROGRESS;
        if (c->partition_state[p] == PART_FAILED)
            err = GROUP_ERR_UNKNOWN_SERVER_ERROR;
    }
    return err;
}

/* ---- loading ----------------------------------------------------------------------------- */

void group_coord_load_begin(struct group_coord *c, uint32_t p)
{
    ASSERT(p < c->cfg.partition_count);
    ASSERT(c->partition_state[p] == PART_UNOWNED);
    c->partition_state[p] = PART_LOADING;
}

static void group_reset_members(struct group *g)
{
    for (size_t i = 0; i < g->member_count; i++)
        member_free(g->members[i]);
    g->member_count = 0;
    gb_free(&g->protocol_name);
    gb_free(&g->leader_id);
}

static void load_group_value(struct group *g, const struct grec_group_value *v)
{
    group_reset_members(g);
    gb_set(&g->protocol_type, v->protocol_type);
    g->generation = v->generation;
    gb_set(&g->protocol_name, v->protocol);
    gb_set(&g->leader_id, v->leader);
    g->state_ms = v->state_ms;
    size_t n = MIN(v->member_count, (size_t)GROUP_MEMBERS_MAX);
    g->members = xrealloc(g->members, (n + 1) * sizeof(*g->members));
    for (size_t i = 0; i < n; i++) {
        const struct grec_member *r = &v->members[i];
        struct group_member *m = xcalloc(1, sizeof(*m));
        m->member_id = gb_dup(r->member_id);
        m->instance_id = gb_dup(r->instance_id);
        m->client_id = gb_dup(r->client_id);
        m->client_host = gb_dup(r->client_host);
        m->session_timeout_ms = r->session_timeout_ms;
        m->rebalance_timeout_ms = r->rebalance_timeout_ms;
        m->protocol_count = v->protocol.ptr != NULL ? 1 : 0;
        m->protocols = xcalloc(2, sizeof(*m->protocols));
        if (m->protocol_count == 1) {
            m->protocols[0].name = gb_dup(v->protocol);
            m->protocols[0].metadata = gb_dup(r->subscription);
        }
        m->assignment = gb_dup(r->assignment);
        g->members[g->member_count++] = m;
    }
    /* A stored generation with members resumes as stable: the members keep their assignments
     * and rejoin only if they do not heartbeat in time. */
    g->state = g->member_count > 0 && g->protocol_name.ptr != NULL ? GROUP_STABLE : GROUP_EMPTY;
    if (g->state == GROUP_EMPTY)
        group_reset_members(g);
}

static int load_offset(struct group_coord *c, const struct grec_key *k, struct slice value)
{
    struct group *g = group_lookup(c, k->group);
    if (value.ptr == NULL) {
        if (g != NULL)
            offset_remove(g, k->topic, k->partition);
        return 0;
    }
    struct grec_offset_value v;
    int rc = grec_offset_value_decode(value, &v);
    if (rc < 0)
        return rc;
    if (g == NULL)
        g = group_create(c, k->group, v.commit_ms);
    if (g == NULL)
        return ERR_TOO_LARGE;
    struct group_offset o = {
        .topic = gb_dup(k->topic),
        .partition = k->partition,
        .offset = v.offset,
        .leader_epoch = v.leader_epoch,
        .metadata = gb_dup(v.metadata),
        .commit_ms = v.commit_ms,
        .expire_ms = v.expire_ms,
    };
    offset_put(g, &o);
    return 0;
}

static int load_group(struct group_coord *c, const struct grec_key *k, struct slice value)
{
    struct group *g = group_lookup(c, k->group);
    if (value.ptr == NULL) {
        /* A group tombstone drops the membership; offsets have tombstones of their own. */
        if (g != NULL) {
            group_reset_members(g);
            g->state = GROUP_EMPTY;
            g->generation = 0;
            gb_free(&g->protocol_type);
            if (g->offset_count == 0 && g->txn_count == 0)
                group_destroy(c, g);
        }
        return 0;
    }
    struct grec_group_value v;
    int rc = grec_group_value_decode(value, &v);
    if (rc < 0)
        return rc;
    if (g == NULL)
        g = group_create(c, k->group, v.state_ms);
    if (g != NULL)
        load_group_value(g, &v);
    grec_group_value_free(&v);
    return g != NULL ? 0 : ERR_TOO_LARGE;
}

int group_coord_load_record(struct group_coord *c, uint32_t p, struct slice key, struct slice value)
{
    ASSERT(p < c->cfg.partition_count);
    ASSERT(c->partition_state[p] == PART_LOADING);
    struct grec_key k;
    int rc = grec_key_decode(key, &k);
    if (rc < 0)
        return rc;
    if (k.group.len == 0 || group_partition_of(k.group, c->cfg.partition_count) != p)
        return ERR_CORRUPT; /* a record in the wrong partition is not ours to apply */
    return k.kind == GREC_OFFSET ? load_offset(c, &k, value) : load_group(c, &k, value);
}

struct load_walk {
    struct group_coord *c;
    uint32_t p;
    int64_t offset;      /* of the record that failed */
    int64_t producer_id; /* the transaction of the batch walked, or -1 */
};

/* An offset record of a transaction's batch: pending for its producer (a tombstone there is
 * not something Kafka writes, and is skipped). */
static int load_txn_record(struct group_coord *c, uint32_t p, int64_t producer_id, struct slice key,
                           struct slice value)
{
    struct grec_key k;
    int rc = grec_key_decode(key, &k);
    if (rc < 0)
        return rc;
    if (k.group.len == 0 || group_partition_of(k.group, c->cfg.partition_count) != p)
        return ERR_CORRUPT;
    if (k.kind != GREC_OFFSET || value.ptr == NULL)
        return 0;
    struct grec_offset_value v;
    rc = grec_offset_value_decode(value, &v);
    if (rc < 0)
        return rc;
    struct group *g = group_lookup(c, k.group);
    if (g == NULL)
        g = group_create(c, k.group, v.commit_ms);
    if (g == NULL)
        return ERR_TOO_LARGE;
    struct group_offset o = {
        .topic = gb_dup(k.topic),
        .partition = k.partition,
        .offset = v.offset,
        .leader_epoch = v.leader_epoch,
        .metadata = gb_dup(v.metadata),
        .commit_ms = v.commit_ms,
        .expire_ms = v.expire_ms,
    };
    txn_put(g, producer_id, &o);
    return 0;
}

static int load_walk_record(void *ctx, int64_t offset, struct slice key, struct slice value)
{
    struct load_walk *w = ctx;
    /* Every record of the topic has a key; Kafka's loader refuses one without. */
    int rc = key.ptr == NULL       ? ERR_CORRUPT
             : w->producer_id >= 0 ? load_txn_record(w->c, w->p, w->producer_id, key, value)
                                   : group_coord_load_record(w->c, w->p, key, value);
    /* A record type or version this broker does not know is skipped, as Kafka's coordinator
     * skips unknown record types (KIP-915); anything else leaves the state incomplete. */
    if (rc < 0 && rc != ERR_UNSUPPORTED) {
        w->offset = offset;
        return rc;
    }
    return 0;
}

/* A transaction marker: its producer's pending offsets in p are decided. */
static int load_marker(struct group_coord *c, uint32_t p, const uint8_t *batch,
                       const struct batch_header *h)
{
    struct batch_marker m;
    int rc = batch_marker_parse(batch, h, &m);
    if (rc < 0)
        return rc;
    if (m.type == BATCH_CONTROL_COMMIT || m.type == BATCH_CONTROL_ABORT)
        group_coord_txn_end(c, p, h->producer_id, m.type == BATCH_CONTROL_COMMIT);
    return 0;
}

int group_coord_load_batches(struct group_coord *c, uint32_t p, const uint8_t *bytes, size_t len,
                             int64_t first_offset, int64_t *bad_offset)
{
    ASSERT(p < c->cfg.partition_count);
    ASSERT(c->partition_state[p] == PART_LOADING);
    struct load_walk w = {.c = c, .p = p, .offset = -1};
    int64_t expected = first_offset;
    size_t pos = 0;
    while (pos < len) {
        struct batch_header h;
        int rc = batch_parse(bytes + pos, len - pos, &h);
        if (rc == 0 && h.base_offset < expected)
            rc = ERR_CORRUPT; /* offsets go back: not the log's batches */
        w.producer_id = batch_is_transactional(&h) ? h.producer_id : -1;
        if (rc == 0 && batch_is_control(&h) && w.producer_id >= 0)
            rc = load_marker(c, p, bytes + pos, &h);
        else if (rc == 0)
            rc = grec_batch_walk(bytes + pos, batch_total_bytes(&h), load_walk_record, &w);
        if (rc < 0) {
            /* The log returns whole batches, so even a cut one is corrupt here. */
            *bad_offset = w.offset >= 0 ? w.offset : expected;
            return rc == ERR_INCOMPLETE ? ERR_CORRUPT : rc;
        }
        expected = batch_last_offset(&h) + 1;
        pos += batch_total_bytes(&h);
    }
    return 0;
}

void group_coord_load_failed(struct group_coord *c, uint32_t p)
{
    ASSERT(p < c->cfg.partition_count);
    ASSERT(c->partition_state[p] == PART_LOADING);
    /* What was loaded is a prefix of the log at best: drop it rather than ever serve it. No
     * request is parked on a loading partition and no append is in flight for it. */
    for (size_t i = 0; i < c->group_count;) {
        if (c->groups[i]->partition == p)
            group_destroy(c, c->groups[i]);
        else
            i++;
    }
    c->partition_state[p] = PART_FAILED;
}

void group_coord_load_done(struct group_coord *c, uint32_t p, int64_t now_ms)
{
    ASSERT(p < c->cfg.partition_count);
    ASSERT(c->partition_state[p] == PART_LOADING);
    c->partition_state[p] = PART_READY;
    for (size_t i = 0; i < c->group_count; i++) {
        struct group *g = c->groups[i];
        if (g->partition != p)
            continue;
        for (size_t k = 0; k < g->member_count; k++)
            session_start(c, g->members[k], now_ms);
        if (g->state == GROUP_EMPTY && g->state_ms < 0)
            g->state_ms = now_ms;
    }
}

void group_coord_unload(struct group_coord *c, uint32_t p)
{
    ASSERT(p < c->cfg.partition_count);
    fx_gc(c);
    for (size_t i = 0; i < c->group_count;) {
        struct group *g = c->groups[i];
        if (g->partition != p) {
            i++;
            continue;
        }
        for (size_t k = 0; k < g->member_count; k++) {
            struct group_member *m = g->members[k];
            if (m->join_token != NULL)
                fx_join_error(c, m->join_token, GROUP_ERR_NOT_COORDINATOR,
                              group_bytes_slice(m->member_id));
            if (m->sync_token != NULL)
                fx_sync_error(c, m->sync_token, GROUP_ERR_NOT_COORDINATOR);
            m->join_token = m->sync_token = NULL;
        }
        group_destroy(c, g);
    }
    c->partition_state[p] = PART_UNOWNED;
}

/* ---- JoinGroup --------------------------------------------------------------------------- */

static int16_t check_join(const struct group_coord *c, const struct group_join_req *req)
{
    if (req->session_timeout_ms < (int32_t)c->cfg.session_ms_min ||
        req->session_timeout_ms > (int32_t)c->cfg.session_ms_max)
        return GROUP_ERR_INVALID_SESSION_TIMEOUT;
    if (req->protocol_type.ptr == NULL || req->protocol_type.len == 0 || req->protocol_count == 0)
        return GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL;
    if (req->protocol_count > GROUP_PROTOCOLS_MAX)
        return GROUP_ERR_INVALID_REQUEST;
    for (size_t i = 0; i < req->protocol_count; i++)
        if (req->protocol_names[i].ptr == NULL ||
            req->protocol_metadata[i].len > GROUP_PROTOCOL_BYTES_MAX)
            return GROUP_ERR_INVALID_REQUEST;
    return GROUP_ERR_NONE;
}

/* Parks the member's JoinGroup; an earlier one still parked is superseded. */
static void park_join(struct group_coord *c, struct group_member *m, void *token)
{
    if (m->join_token != NULL && m->join_token != token)
        fx_join_error(c, m->join_token, GROUP_ERR_REBALANCE_IN_PROGRESS,
                      group_bytes_slice(m->member_id));
    m->join_token = token;
}

static void add_member_and_join(struct group_coord *c, struct group *g, struct group_bytes id,
                                const struct group_join_req *req, void *token, int64_t now_ms)
{
    struct group_member *m = xcalloc(1, sizeof(*m));
    m->member_id = id;
    m->instance_id = gb_dup(req->instance_id);
    member_update(c, m, req, now_ms);
    if (g->member_count == 0)
        gb_set(&g->protocol_type, req->protocol_type);
    g->members = xrealloc(g->members, (g->member_count + 1) * sizeof(*g->members));
    g->members[g->member_count++] = m;
    m->join_token = token;
    if (g->state == GROUP_PREPARING_REBALANCE) {
        if (g->initial_active)
            g->initial_joined = true;
        try_complete_join(c, g, now_ms);
    } else {
        prepare_rebalance(c, g, now_ms);
    }
}

/* A static member rejoining with a new process (unknown member id, known instance id): it
 * takes over the old member's place; the old one is fenced. */
static void replace_static(struct group_coord *c, struct group *g, struct group_member *m,
                           const struct group_join_req *req, void *token, int64_t now_ms)
{
    bool was_leader = is_leader(g, m);
    bool same = selected_metadata_match(g, m, req);
    if (m->join_token != NULL)
        fx_join_error(c, m->join_token, GROUP_ERR_FENCED_INSTANCE_ID,
                      group_bytes_slice(m->member_id));
    if (m->sync_token != NULL)
        fx_sync_error(c, m->sync_token, GROUP_ERR_FENCED_INSTANCE_ID);
    m->join_token = m->sync_token = NULL;
    gb_free(&m->member_id);
    m->member_id = new_member_id(c, req->instance_id);
    if (was_leader)
        gb_set(&g->leader_id, group_bytes_slice(m->member_id));
    member_update(c, m, req, now_ms);
    if (g->state == GROUP_STABLE && same) {
        /* KIP-345: the same subscription gets its assignment back without a rebalance; a
         * returning leader is told to skip the assignment (JoinGroup v9). */
        store_group(c, g, APPEND_META);
        fx_join_ok(c, g, m, token, was_leader);
        return;
    }
    m->join_token = token;
    if (g->state == GROUP_PREPARING_REBALANCE)
        try_complete_join(c, g, now_ms);
    else
        prepare_rebalance(c, g, now_ms);
}

static void join_known(struct group_coord *c, struct group *g, const struct group_join_req *req,
                       void *token, int64_t now_ms)
{
    struct group_member *m = member_find(g, req->member_id);
    if (m == NULL) {
        bool fenced = member_by_instance(g, req->instance_id) != NULL;
        fx_join_error(c, token, fenced ? GROUP_ERR_FENCED_INSTANCE_ID : GROUP_ERR_UNKNOWN_MEMBER_ID,
                      req->member_id);
        return;
    }
    if (req->instance_id.ptr != NULL && !gb_eq(m->instance_id, req->instance_id)) {
        fx_join_error(c, token, GROUP_ERR_FENCED_INSTANCE_ID, req->member_id);
        return;
    }
    bool same = member_protocols_match(m, req);
    member_update(c, m, req, now_ms);
    switch (g->state) {
    case GROUP_PREPARING_REBALANCE:
        park_join(c, m, token);
        try_complete_join(c, g, now_ms);
        return;
    case GROUP_COMPLETING_REBALANCE:
        if (same) {
            /* The join answer was lost: give it again. */
            fx_join_ok(c, g, m, token, false);
            return;
        }
        break;
    case GROUP_STABLE:
        if (same && !is_leader(g, m)) {
            fx_join_ok(c, g, m, token, false);
            return;
        }
        break;
    case GROUP_EMPTY:
    case GROUP_DEAD:
        UNREACHABLE();
    }
    m->join_token = token;
    prepare_rebalance(c, g, now_ms);
}

void group_join(struct group_coord *c, const struct group_join_req *req, void *token,
                int64_t now_ms)
{
    ASSERT(token != NULL);
    group_coord_tick(c, now_ms); /* what is due by now happens first */
    int16_t err = group_coord_check(c, req->group_id);
    if (err == GROUP_ERR_NONE)
        err = check_join(c, req);
    struct group *g = err == GROUP_ERR_NONE ? group_get(c, req->group_id) : NULL;
    bool fresh = false;
    if (err == GROUP_ERR_NONE && g == NULL) {
        if (req->member_id.len > 0) {
            err = GROUP_ERR_UNKNOWN_MEMBER_ID;
        } else {
            g = group_create(c, req->group_id, now_ms);
            fresh = true;
            err = g == NULL ? GROUP_ERR_COORDINATOR_NOT_AVAILABLE : GROUP_ERR_NONE;
        }
    }
    if (err == GROUP_ERR_NONE && g->member_count > 0) {
        struct group_member *self = member_find(g, req->member_id);
        if (self == NULL)
            self = member_by_instance(g, req->instance_id);
        if (!gb_eq(g->protocol_type, req->protocol_type) || !protocols_compatible(g, self, req))
            err = GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL;
    }
    if (err != GROUP_ERR_NONE) {
        if (fresh)
            group_destroy(c, g);
        fx_join_error(c, token, err, req->member_id);
        return;
    }
    if (req->member_id.len > 0 && pending_remove(g, req->member_id)) {
        add_member_and_join(c, g, gb_dup(req->member_id), req, token, now_ms);
        return;
    }
    if (req->member_id.len > 0) {
        join_known(c, g, req, token, now_ms);
        return;
    }
    struct group_member *old = member_by_instance(g, req->instance_id);
    if (old != NULL) {
        replace_static(c, g, old, req, token, now_ms);
        return;
    }
    if (g->member_count + g->pending_count >= c->cfg.members_max) {
        fx_join_error(c, token, GROUP_ERR_GROUP_MAX_SIZE_REACHED, req->member_id);
        return;
    }
    struct slice prefix = req->instance_id.ptr != NULL ? req->instance_id
                          : req->client_id.ptr != NULL ? req->client_id
                                                       : cstr("");
    struct group_bytes id = new_member_id(c, prefix);
    if (req->instance_id.ptr == NULL && req->require_known_member_id) {
        /* KIP-394: the member must come back with this id; until then it only counts as
         * pending, and expires after its session timeout. */
        g->pending = xrealloc(g->pending, (g->pending_count + 1) * sizeof(*g->pending));
        g->pending[g->pending_count++] = (struct group_pending){
            .member_id = id, .deadline_ms = now_ms + req->session_timeout_ms};
        deadline_note(c, now_ms + req->session_timeout_ms);
        fx_join_error(c, token, GROUP_ERR_MEMBER_ID_REQUIRED, group_bytes_slice(id));
        return;
    }
    add_member_and_join(c, g, id, req, token, now_ms);
}

/* ---- SyncGroup --------------------------------------------------------------------------- */

/* Kafka's member checks shared by SyncGroup, Heartbeat and OffsetCommit. */
static int16_t check_member(const struct group *g, struct slice member_id, struct slice instance_id,
                            struct group_member **out)
{
    struct group_member *m = member_find(g, member_id);
    if (instance_id.ptr != NULL) {
        struct group_member *byi = member_by_instance(g, instance_id);
        if (byi != NULL && byi != m)
            return GROUP_ERR_FENCED_INSTANCE_ID;
        if (m != NULL && !gb_eq(m->instance_id, instance_id))
            return GROUP_ERR_FENCED_INSTANCE_ID;
    }
    if (m == NULL)
        return GROUP_ERR_UNKNOWN_MEMBER_ID;
    *out = m;
    return GROUP_ERR_NONE;
}

static int16_t check_assignments(const struct group_sync_req *req)
{
    for (size_t i = 0; i < req->assignment_count; i++) {
        if (req->assign_member_ids[i].ptr == NULL ||
            req->assignments[i].len > GROUP_PROTOCOL_BYTES_MAX)
            return GROUP_ERR_INVALID_REQUEST;
        for (size_t j = 0; j < i; j++)
            if (slice_eq(req->assign_member_ids[i], req->assign_member_ids[j]))
                return GROUP_ERR_INVALID_REQUEST;
    }
    return GROUP_ERR_NONE;
}

static void sync_completing(struct group_coord *c, struct group *g, struct group_member *m,
                            const struct group_sync_req *req, void *token)
{
    if (!is_leader(g, m) || g->sync_append_id != 0) {
        if (m->sync_token != NULL)
            fx_sync_error(c, m->sync_token, GROUP_ERR_REBALANCE_IN_PROGRESS);
        m->sync_token = token;
        return;
    }
    int16_t err = check_assignments(req);
    if (err != GROUP_ERR_NONE) {
        fx_sync_error(c, token, err);
        return;
    }
    if (m->sync_token != NULL)
        fx_sync_error(c, m->sync_token, GROUP_ERR_REBALANCE_IN_PROGRESS);
    m->sync_token = token;
    /* Members the leader did not mention get an empty assignment; ids it invented are
     * ignored, as Kafka does. */
    for (size_t i = 0; i < g->member_count; i++)
        gb_set(&g->members[i]->assignment, cstr(""));
    for (size_t i = 0; i < req->assignment_count; i++) {
        struct group_member *t = member_find(g, req->assign_member_ids[i]);
        struct slice a = req->assignments[i];
        if (t != NULL)
            gb_set(&t->assignment, a.ptr != NULL ? a : cstr(""));
    }
    g->sync_append_id = store_group(c, g, APPEND_SYNC);
}

void group_sync(struct group_coord *c, const struct group_sync_req *req, void *token,
                int64_t now_ms)
{
    ASSERT(token != NULL);
    group_coord_tick(c, now_ms); /* what is due by now happens first */
    int16_t err = group_coord_check(c, req->group_id);
    struct group *g = err == GROUP_ERR_NONE ? group_get(c, req->group_id) : NULL;
    struct group_member *m = NULL;
    if (err == GROUP_ERR_NONE)
        err = g == NULL ? GROUP_ERR_UNKNOWN_MEMBER_ID
                        : check_member(g, req->member_id, req->instance_id, &m);
    if (err == GROUP_ERR_NONE && req->generation != g->generation)
        err = GROUP_ERR_ILLEGAL_GENERATION;
    if (err == GROUP_ERR_NONE &&
        ((req->protocol_type.ptr != NULL && !gb_eq(g->protocol_type, req->protocol_type)) ||
         (req->protocol_name.ptr != NULL && !gb_eq(g->protocol_name, req->protocol_name))))
        err = GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL;
    if (err != GROUP_ERR_NONE) {
        fx_sync_error(c, token, err);
        return;
    }
    session_start(c, m, now_ms);
    switch (g->state) {
    case GROUP_PREPARING_REBALANCE:
        fx_sync_error(c, token, GROUP_ERR_REBALANCE_IN_PROGRESS);
        return;
    case GROUP_COMPLETING_REBALANCE:
        sync_completing(c, g, m, req, token);
        return;
    case GROUP_STABLE:
        fx_sync_ok(c, g, m, token);
        return;
    case GROUP_EMPTY:
    case GROUP_DEAD:
        fx_sync_error(c, token, GROUP_ERR_UNKNOWN_MEMBER_ID);
        return;
    }
}

/* ---- Heartbeat and LeaveGroup ------------------------------------------------------------ */

int16_t group_heartbeat(struct group_coord *c, struct slice group_id, struct slice member_id,
                        struct slice instance_id, int32_t generation, int64_t now_ms)
{
    group_coord_tick(c, now_ms); /* what is due by now happens first */
    int16_t err = group_coord_check(c, group_id);
    if (err != GROUP_ERR_NONE)
        return err;
    struct group *g = group_get(c, group_id);
    struct group_member *m = NULL;
    err = g == NULL ? GROUP_ERR_UNKNOWN_MEMBER_ID : check_member(g, member_id, instance_id, &m);
    if (err != GROUP_ERR_NONE)
        return err;
    if (generation != g->generation)
        return GROUP_ERR_ILLEGAL_GENERATION;
    session_start(c, m, now_ms);
    return g->state == GROUP_PREPARING_REBALANCE ? GROUP_ERR_REBALANCE_IN_PROGRESS : GROUP_ERR_NONE;
}

static int16_t leave_one(struct group_coord *c, struct group *g,
                         const struct group_leave_member *lm, int64_t now_ms)
{
    struct group_member *m;
    if (lm->instance_id.ptr != NULL) {
        m = member_by_instance(g, lm->instance_id);
        if (m == NULL)
            return GROUP_ERR_UNKNOWN_MEMBER_ID;
        if (lm->member_id.len > 0 && !gb_eq(m->member_id, lm->member_id))
            return GROUP_ERR_FENCED_INSTANCE_ID;
    } else {
        if (pending_remove(g, lm->member_id)) {
            try_complete_join(c, g, now_ms);
            return GROUP_ERR_NONE;
        }
        m = member_find(g, lm->member_id);
        if (m == NULL)
            return GROUP_ERR_UNKNOWN_MEMBER_ID;
    }
    remove_member(c, g, m, GROUP_ERR_UNKNOWN_MEMBER_ID, now_ms);
    return GROUP_ERR_NONE;
}

int16_t group_leave(struct group_coord *c, struct slice group_id,
                    const struct group_leave_member *members, size_t count, int16_t *errors,
                    int64_t now_ms)
{
    group_coord_tick(c, now_ms); /* what is due by now happens first */
    int16_t err = group_coord_check(c, group_id);
    if (err != GROUP_ERR_NONE)
        return err;
    struct group *g = group_get(c, group_id);
    for (size_t i = 0; i < count; i++)
        errors[i] = g == NULL ? GROUP_ERR_UNKNOWN_MEMBER_ID : leave_one(c, g, &members[i], now_ms);
    return GROUP_ERR_NONE;
}

/* ---- timers ------------------------------------------------------------------------------ */

static void expire_offsets(struct group_coord *c, struct group *g, int64_t now_ms)
{
    if (g->state != GROUP_EMPTY)
        return;
    struct recs r;
    recs_init(&r);
    for (size_t i = 0; i < g->offset_count;) {
        const struct group_offset *o = &g->offsets[i];
        /* Kafka's rule since 2.1: offsets of an empty group expire a retention period after
         * the later of their commit and the group emptying; an explicit expiry wins. */
        int64_t since = MAX(o->commit_ms, g->state_ms);
        bool expired =
            o->expire_ms >= 0 ? now_ms >= o->expire_ms : now_ms - since >= c->cfg.retention_ms;
        if (!expired) {
            i++;
            continue;
        }
        recs_offset_tombstone(&r, group_bytes_slice(g->id), group_bytes_slice(o->topic),
                              o->partition);
        struct group_bytes topic = gb_dup(group_bytes_slice(o->topic));
        offset_remove(g, group_bytes_slice(topic), o->partition);
        gb_free(&topic);
    }
    /* An empty group with nothing committed is forgotten, unless a KIP-394 member is about
     * to join it. */
    bool gone = g->offset_count == 0 && g->pending_count == 0 && g->txn_count == 0;
    if (gone)
        recs_group_tombstone(&r, group_bytes_slice(g->id));
    if (r.count > 0)
        append_start(c, g, APPEND_DELETE, &r, NULL, NULL, 0);
    recs_deinit(&r);
    if (gone)
        group_destroy(c, g);
}

/* Ticks one group; returns false when the group was destroyed. */
static bool tick_group(struct group_coord *c, struct group *g, int64_t now_ms, bool retention)
{
    for (size_t i = 0; i < g->pending_count;) {
        if (now_ms >= g->pending[i].deadline_ms) {
            gb_free(&g->pending[i].member_id);
            g->pending[i] = g->pending[--g->pending_count];
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < g->member_count;) {
        struct group_member *m = g->members[i];
        /* A member waiting for a rebalance to answer it is alive by definition. */
        if (m->join_token == NULL && m->sync_token == NULL && now_ms >= m->session_deadline_ms) {
            remove_member(c, g, m, GROUP_ERR_UNKNOWN_MEMBER_ID, now_ms);
            i = 0;
        } else {
            i++;
        }
    }
    if (g->state == GROUP_PREPARING_REBALANCE && g->initial_active &&
        now_ms >= g->initial_deadline_ms) {
        if (g->initial_joined && now_ms < g->initial_limit_ms) {
            g->initial_deadline_ms = MIN(now_ms + c->cfg.initial_delay_ms, g->initial_limit_ms);
            g->initial_joined = false;
        } else {
            complete_join(c, g, now_ms);
        }
    }
    if (g->state == GROUP_PREPARING_REBALANCE && !g->initial_active &&
        (all_joined(g) || now_ms >= g->rebalance_deadline_ms))
        complete_join(c, g, now_ms);
    if (g->state == GROUP_COMPLETING_REBALANCE && g->sync_append_id == 0 &&
        now_ms >= g->sync_deadline_ms) {
        /* The leader never sent its assignment: members that did not sync leave. */
        for (size_t i = 0; i < g->member_count;) {
            if (g->members[i]->sync_token == NULL) {
                if (is_leader(g, g->members[i]))
                    gb_free(&g->leader_id);
                remove_member_at(g, i);
            } else {
                i++;
            }
        }
        prepare_rebalance(c, g, now_ms);
    }
    if (!retention)
        return true;
    size_t before = c->group_count;
    expire_offsets(c, g, now_ms);
    return c->group_count == before;
}

/* The earliest deadline tick_group() acts on in g's current state, or INT64_MAX. Parked
 * members and an assignment being stored wait for an answer, not for the clock. */
static int64_t group_next_deadline(const struct group *g)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < g->pending_count; i++)
        next = MIN(next, g->pending[i].deadline_ms);
    for (size_t i = 0; i < g->member_count; i++) {
        const struct group_member *m = g->members[i];
        if (m->join_token == NULL && m->sync_token == NULL)
            next = MIN(next, m->session_deadline_ms);
    }
    if (g->state == GROUP_PREPARING_REBALANCE)
        next = MIN(next, g->initial_active ? g->initial_deadline_ms : g->rebalance_deadline_ms);
    if (g->state == GROUP_COMPLETING_REBALANCE && g->sync_append_id == 0)
        next = MIN(next, g->sync_deadline_ms);
    return next;
}

void group_coord_tick(struct group_coord *c, int64_t now_ms)
{
    fx_gc(c);
    if (now_ms < c->next_deadline_ms)
        return;
    bool retention = now_ms >= c->next_retention_ms;
    if (retention)
        c->next_retention_ms = now_ms + c->cfg.retention_check_ms;
    /* Recomputed exactly from what every group has due after its tick; what ticking a group
     * noted meanwhile concerns that group alone and may be stale (a rebalance it started and
     * completed at once). Groups of partitions not ready are skipped: load_done notes them. */
    int64_t next = c->next_retention_ms;
    for (size_t i = 0; i < c->group_count;) {
        struct group *g = c->groups[i];
        if (!part_ready(c, g->partition)) {
            i++;
        } else if (tick_group(c, g, now_ms, retention)) {
            next = MIN(next, group_next_deadline(g));
            i++;
        }
    }
    c->next_deadline_ms = next;
}

int64_t group_coord_next_deadline_ms(const struct group_coord *c)
{
    return c->next_deadline_ms;
}

/* ---- append completion ------------------------------------------------------------------- */

static void sync_stored(struct group_coord *c, struct group *g, int err, int64_t now_ms)
{
    g->sync_append_id = 0;
    if (err != 0) {
        /* The assignment is not durable: nobody gets it, and the group rebalances again. */
        fail_syncs(c, g, GROUP_ERR_COORDINATOR_NOT_AVAILABLE);
        prepare_rebalance(c, g, now_ms);
        return;
    }
    set_state(g, GROUP_STABLE, now_ms);
    for (size_t i = 0; i < g->member_count; i++) {
        struct group_member *m = g->members[i];
        if (m->sync_token != NULL) {
            fx_sync_ok(c, g, m, m->sync_token);
            m->sync_token = NULL;
        }
        session_start(c, m, now_ms);
    }
}

void group_coord_append_done(struct group_coord *c, uint64_t append_id, int err, int64_t now_ms)
{
    fx_gc(c);
    struct group_append **pp = &c->appends;
    while (*pp != NULL && (*pp)->id != append_id)
        pp = &(*pp)->next;
    ASSERT(*pp != NULL); /* every append is reported exactly once */
    struct group_append *a = *pp;
    *pp = a->next;
    struct group *g = group_get(c, group_bytes_slice(a->group_id));
    if (g != NULL && a->kind == APPEND_SYNC && g->sync_append_id == append_id &&
        g->state == GROUP_COMPLETING_REBALANCE)
        sync_stored(c, g, err, now_ms);
    if (g != NULL && a->kind == APPEND_OFFSETS && err == 0) {
        for (size_t i = 0; i < a->offset_count; i++)
            offset_put(g, &a->offsets[i]);
        a->offset_count = 0; /* moved into the group */
    }
    if (g != NULL && a->kind == APPEND_TXN && err == 0) {
        for (size_t i = 0; i < a->offset_count; i++)
            txn_put(g, a->producer_id, &a->offsets[i]);
        a->offset_count = 0; /* moved into the group */
    }
    append_free(a);
}

/* ---- offsets ----------------------------------------------------------------------------- */

static int16_t check_commit(struct group_coord *c, const struct group_commit_req *req,
                            struct group **out, int64_t now_ms)
{
    int16_t err = group_coord_check(c, req->group_id);
    if (err != GROUP_ERR_NONE)
        return err;
    struct group *g = group_get(c, req->group_id);
    if (g == NULL) {
        /* A consumer that assigns partitions itself commits into a group of its own. */
        if (req->generation >= 0)
            return GROUP_ERR_ILLEGAL_GENERATION;
        g = group_create(c, req->group_id, now_ms);
        if (g == NULL)
            return GROUP_ERR_COORDINATOR_NOT_AVAILABLE;
        *out = g;
        return GROUP_ERR_NONE;
    }
    *out = g;
    if (req->generation < 0 && g->state == GROUP_EMPTY)
        return GROUP_ERR_NONE;
    if (req->generation >= 0 || req->member_id.len > 0 || req->instance_id.ptr != NULL) {
        struct group_member *m = NULL;
        err = check_member(g, req->member_id, req->instance_id, &m);
        if (err != GROUP_ERR_NONE)
            return err;
        if (req->generation != g->generation)
            return GROUP_ERR_ILLEGAL_GENERATION;
        session_start(c, m, now_ms);
    } else {
        return GROUP_ERR_UNKNOWN_MEMBER_ID;
    }
    if (g->state == GROUP_COMPLETING_REBALANCE)
        return GROUP_ERR_REBALANCE_IN_PROGRESS;
    return GROUP_ERR_NONE;
}

/*
 * The rest of a commit whose checks gave err for group g: with an error every part gets it;
 * else each part gets its own, and the accepted ones are appended as kind under token, expiring
 * at expire_ms (-1: by the group's retention). True when the append was queued.
 */
static bool commit_append(struct group_coord *c, struct group *g, int16_t err,
                          enum append_kind kind, const struct group_commit_part *parts,
                          size_t count, int16_t *errors, int64_t expire_ms, void *token,
                          int64_t now_ms)
{
    if (err != GROUP_ERR_NONE) {
        for (size_t i = 0; i < count; i++)
            errors[i] = err;
        return false;
    }
    struct group_offset *offsets = xcalloc(count + 1, sizeof(*offsets));
    size_t n = 0;
    struct recs r;
    recs_init(&r);
    for (size_t i = 0; i < count; i++) {
        const struct group_commit_part *p = &parts[i];
        if (p->metadata.len > GROUP_OFFSET_METADATA_BYTES_MAX) {
            errors[i] = GROUP_ERR_OFFSET_METADATA_TOO_LARGE;
            continue;
        }
        if (p->topic.ptr == NULL) {
            errors[i] = GROUP_ERR_INVALID_REQUEST;
            continue;
        }
        errors[i] = GROUP_ERR_NONE;
        struct group_offset *o = &offsets[n++];
        *o = (struct group_offset){
            .topic = gb_dup(p->topic),
            .partition = p->partition,
            .offset = p->offset,
            .leader_epoch = p->leader_epoch,
            .metadata = gb_dup(p->metadata.ptr != NULL ? p->metadata : cstr("")),
            .commit_ms = now_ms,
            .expire_ms = expire_ms,
        };
        recs_offset(&r, group_bytes_slice(g->id), o);
    }
    if (n > 0)
        append_start(c, g, kind, &r, token, offsets, n);
    else
        free(offsets);
    recs_deinit(&r);
    return n > 0;
}

int16_t group_offset_commit(struct group_coord *c, const struct group_commit_req *req,
                            const struct group_commit_part *parts, size_t count, int16_t *errors,
                            void *token, bool *appended, int64_t now_ms)
{
    group_coord_tick(c, now_ms); /* what is due by now happens first */
    struct group *g = NULL;
    int16_t err = check_commit(c, req, &g, now_ms);
    *appended =
        commit_append(c, g, err, APPEND_OFFSETS, parts, count, errors,
                      req->retention_ms > 0 ? now_ms + req->retention_ms : -1, token, now_ms);
    return err;
}

/* Kafka's doTxnCommitOffsets checks: the member, if one is named, and the generation, if
 * given, must be the group's. */
static int16_t check_txn_commit(struct group_coord *c, const struct group_txn_commit_req *req,
                                struct group **out, int64_t now_ms)
{
    int16_t err = group_coord_check(c, req->group_id);
    if (err != GROUP_ERR_NONE)
        return err;
    struct group *g = group_get(c, req->group_id);
    if (g == NULL)
        g = group_create(c, req->group_id, now_ms);
    if (g == NULL)
        return GROUP_ERR_COORDINATOR_NOT_AVAILABLE;
    *out = g;
    if (req->instance_id.ptr != NULL) {
        struct group_member *byi = member_by_instance(g, req->instance_id);
        if (byi != NULL && !gb_eq(byi->member_id, req->member_id))
            return GROUP_ERR_FENCED_INSTANCE_ID;
    }
    if (req->member_id.len > 0 && member_find(g, req->member_id) == NULL)
        return GROUP_ERR_UNKNOWN_MEMBER_ID;
    if (req->generation >= 0 && req->generation != g->generation)
        return GROUP_ERR_ILLEGAL_GENERATION;
    return GROUP_ERR_NONE;
}

int16_t group_txn_offset_commit(struct group_coord *c, const struct group_txn_commit_req *req,
                                const struct group_commit_part *parts, size_t count,
                                int16_t *errors, void *token, bool *appended, int64_t now_ms)
{
    group_coord_tick(c, now_ms);
    struct group *g = NULL;
    int16_t err = check_txn_commit(c, req, &g, now_ms);
    *appended = commit_append(c, g, err, APPEND_TXN, parts, count, errors, -1, token, now_ms);
    if (*appended) {
        /* The producer's batch: its offsets wait for the transaction's marker. */
        struct group_fx *fx = &c->fx[c->fx_count - 1];
        fx->producer_id = req->producer_id;
        fx->producer_epoch = req->producer_epoch;
        struct group_append *a = c->appends;
        while (a->next != NULL)
            a = a->next;
        a->producer_id = req->producer_id;
    }
    return err;
}

void group_coord_txn_end(struct group_coord *c, uint32_t p, int64_t producer_id, bool commit)
{
    ASSERT(p < c->cfg.partition_count);
    for (size_t i = 0; i < c->group_count; i++)
        if (c->groups[i]->partition == p)
            txn_end(c->groups[i], producer_id, commit);
}

static bool commit_pending(const struct group_coord *c, struct slice group_id, struct slice topic,
                           int32_t partition)
{
    for (const struct group_append *a = c->appends; a != NULL; a = a->next) {
        if ((a->kind != APPEND_OFFSETS && a->kind != APPEND_TXN) || !gb_eq(a->group_id, group_id))
            continue;
        for (size_t i = 0; i < a->offset_count; i++)
            if (a->offsets[i].partition == partition && gb_eq(a->offsets[i].topic, topic))
                return true;
    }
    return false;
}

int16_t group_offset_get(const struct group_coord *c, struct slice group_id, struct slice topic,
                         int32_t partition, bool require_stable, const struct group_offset **out)
{
    *out = NULL;
    int16_t err = group_coord_check(c, group_id);
    if (err != GROUP_ERR_NONE)
        return err;
    if (require_stable && commit_pending(c, group_id, topic, partition))
        return GROUP_ERR_UNSTABLE_OFFSET_COMMIT;
    const struct group *g = group_get(c, group_id);
    if (require_stable && g != NULL && txn_pending(g, topic, partition))
        return GROUP_ERR_UNSTABLE_OFFSET_COMMIT;
    if (g != NULL)
        *out = offset_find(g, topic, partition);
    return GROUP_ERR_NONE;
}

/* Whether a member of the group's protocol subscribes to the topic: the consumer protocol's
 * subscription is int16 version, then an int32 count of int16-length topic names. */
static bool subscribed(const struct group *g, struct slice topic)
{
    if (!gb_eq(g->protocol_type, cstr("consumer")))
        return false;
    for (size_t i = 0; i < g->member_count; i++) {
        struct slice md = group_member_metadata(g, g->members[i]);
        struct reader r;
        rd_init(&r, md.ptr, md.len);
        rd_be16(&r);
        int32_t n = (int32_t)rd_be32(&r);
        for (int32_t k = 0; k < n && rd_err(&r) == 0; k++) {
            uint16_t len = rd_be16(&r);
            const uint8_t *p = rd_bytes(&r, len);
            if (p != NULL && slice_eq(slice_make(p, len), topic))
                return true;
        }
    }
    return false;
}

int16_t group_offset_delete(struct group_coord *c, struct slice group_id,
                            const struct slice *topics, const int32_t *partitions, size_t count,
                            int16_t *errors, void *token, bool *appended, int64_t now_ms)
{
    group_coord_tick(c, now_ms); /* what is due by now happens first */
    *appended = false;
    int16_t err = group_coord_check(c, group_id);
    struct group *g = err == GROUP_ERR_NONE ? group_get(c, group_id) : NULL;
    if (err == GROUP_ERR_NONE && g == NULL)
        err = GROUP_ERR_GROUP_ID_NOT_FOUND;
    if (err == GROUP_ERR_NONE && g->state != GROUP_EMPTY &&
        !gb_eq(g->protocol_type, cstr("consumer")))
        err = GROUP_ERR_NON_EMPTY_GROUP;
    if (err != GROUP_ERR_NONE)
        return err;
    struct recs r;
    recs_init(&r);
    for (size_t i = 0; i < count; i++) {
        if (g->state != GROUP_EMPTY && subscribed(g, topics[i])) {
            errors[i] = GROUP_ERR_GROUP_SUBSCRIBED_TO_TOPIC;
            continue;
        }
        errors[i] = GROUP_ERR_NONE;
        if (topics[i].ptr != NULL && offset_remove(g, topics[i], partitions[i]))
            recs_offset_tombstone(&r, group_bytes_slice(g->id), topics[i], partitions[i]);
    }
    if (r.count > 0) {
        append_start(c, g, APPEND_DELETE, &r, token, NULL, 0);
        *appended = true;
    }
    recs_deinit(&r);
    return GROUP_ERR_NONE;
}

int16_t group_delete(struct group_coord *c, struct slice group_id, void *token, bool *appended,
                     int64_t now_ms)
{
    group_coord_tick(c, now_ms); /* what is due by now happens first */
    *appended = false;
    int16_t err = group_coord_check(c, group_id);
    struct group *g = err == GROUP_ERR_NONE ? group_get(c, group_id) : NULL;
    if (err == GROUP_ERR_NONE && g == NULL)
        err = GROUP_ERR_GROUP_ID_NOT_FOUND;
    if (err == GROUP_ERR_NONE && g->member_count > 0)
        err = GROUP_ERR_NON_EMPTY_GROUP;
    if (err != GROUP_ERR_NONE)
        return err;
    struct recs r;
    recs_init(&r);
    for (size_t i = 0; i < g->offset_count; i++)
        recs_offset_tombstone(&r, group_bytes_slice(g->id), group_bytes_slice(g->offsets[i].topic),
                              g->offsets[i].partition);
    recs_group_tombstone(&r, group_bytes_slice(g->id));
    append_start(c, g, APPEND_DELETE, &r, token, NULL, 0);
    *appended = true;
    recs_deinit(&r);
    group_destroy(c, g);
    return GROUP_ERR_NONE;
}

/* ---- views ------------------------------------------------------------------------------- */

const char *group_state_name(enum group_state s)
{
    switch (s) {
    case GROUP_EMPTY:
        return "Empty";
    case GROUP_PREPARING_REBALANCE:
        return "PreparingRebalance";
    case GROUP_COMPLETING_REBALANCE:
        return "CompletingRebalance";
    case GROUP_STABLE:
        return "Stable";
    case GROUP_DEAD:
        return "Dead";
    }
    return "Dead";
}

const struct group *group_coord_find(const struct group_coord *c, struct slice group_id)
{
    return group_get(c, group_id);
}

size_t group_coord_group_count(const struct group_coord *c)
{
    return c->group_count;
}

const struct group *group_coord_group_at(const struct group_coord *c, size_t i)
{
    ASSERT(i < c->group_count);
    return part_ready(c, c->groups[i]->partition) ? c->groups[i] : NULL;
}
