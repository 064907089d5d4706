/*
 * The transaction coordinator's pure state: records, the table of metadata and Kafka's
 * transition rules (see txn.h; read for it: apache/kafka TransactionCoordinator.scala
 * handleInitProducerId, handleAddPartitionsToTransaction, handleEndTransaction,
 * abortTimedOutTransactions, and TransactionMetadata.scala).
 *
 * It must never do I/O, read a clock or trust a request or the log: sizes are checked against
 * base/limits.h, and bad input gets a Kafka error code or ERR_CORRUPT, never an assertion.
 */
#include "txn/txn.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"
#include "group/group.h"
#include "group/records.h"
#include "log/batch.h"

#include <stdlib.h>
#include <string.h>

#define KEY_VERSION     0
#define VALUE_VERSION   0
#define VALUE_FLEXIBLE  1
#define EPOCH_EXHAUSTED (INT16_MAX - 1) /* Kafka bumps no further: a new producer id instead */

static const char *const state_names[TXN_STATE_COUNT] = {
    "Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead",
};

const char *txn_state_name(enum txn_state s)
{
    ASSERT((unsigned)s < TXN_STATE_COUNT);
    return state_names[s];
}

bool txn_state_parse(struct slice name, enum txn_state *out)
{
    for (int s = 0; s < TXN_STATE_COUNT; s++) {
        if (slice_eq(name, slice_make(state_names[s], strlen(state_names[s])))) {
            *out = (enum txn_state)s;
            return true;
        }
    }
    return false;
}

/* ---- metadata ------------------------------------------------------------------------------ */

void txn_meta_clear(struct txn_meta *m)
{
    for (size_t i = 0; i < m->part_count; i++)
        free(m->parts[i].topic);
    free(m->parts);
    free(m->id);
    memset(m, 0, sizeof(*m));
}

static char *dup_bytes(const void *p, size_t len)
{
    char *s = xmalloc(len + 1);
    if (len > 0)
        memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

void txn_meta_copy(struct txn_meta *dst, const struct txn_meta *src)
{
    *dst = *src;
    dst->pending = false;
    dst->id = src->id != NULL ? dup_bytes(src->id, src->id_len) : NULL;
    dst->parts = src->part_count > 0 ? xcalloc(src->part_count, sizeof(*dst->parts)) : NULL;
    for (size_t i = 0; i < src->part_count; i++) {
        dst->parts[i].topic = dup_bytes(src->parts[i].topic, strlen(src->parts[i].topic));
        dst->parts[i].partition = src->parts[i].partition;
    }
}

static int part_cmp(struct slice topic, int32_t partition, const struct txn_part *p)
{
    size_t len = strlen(p->topic);
    int c = memcmp(topic.ptr, p->topic, MIN(len, topic.len));
    if (c != 0)
        return c;
    if (topic.len != len)
        return topic.len < len ? -1 : 1;
    return partition < p->partition ? -1 : partition > p->partition ? 1 : 0;
}

/* The index of the partition, or of where it would go (*found false). */
static size_t part_find(const struct txn_meta *m, struct slice topic, int32_t partition,
                        bool *found)
{
    size_t lo = 0, hi = m->part_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = part_cmp(topic, partition, &m->parts[mid]);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    *found = false;
    return lo;
}

bool txn_meta_has(const struct txn_meta *m, struct slice topic, int32_t partition)
{
    bool found;
    (void)part_find(m, topic, partition, &found);
    return found;
}

/* Adds a partition in order; false when it is there already. */
static bool part_add(struct txn_meta *m, struct slice topic, int32_t partition)
{
    bool found;
    size_t at = part_find(m, topic, partition, &found);
    if (found)
        return false;
    m->parts = xrealloc(m->parts, (m->part_count + 1) * sizeof(*m->parts));
    memmove(&m->parts[at + 1], &m->parts[at], (m->part_count - at) * sizeof(*m->parts));
    m->parts[at] = (struct txn_part){dup_bytes(topic.ptr, topic.len), partition};
    m->part_count++;
    return true;
}

static void parts_clear(struct txn_meta *m)
{
    for (size_t i = 0; i < m->part_count; i++)
        free(m->parts[i].topic);
    free(m->parts);
    m->parts = NULL;
    m->part_count = 0;
}

/* ---- records ------------------------------------------------------------------------------- */

static void put_str(struct buf *out, struct slice s)
{
    ASSERT(s.len <= TXN_ID_BYTES_MAX);
    buf_put_be16(out, (uint16_t)s.len);
    buf_append(out, s.ptr, s.len);
}

void txn_key_encode(struct buf *out, struct slice id)
{
    buf_put_be16(out, KEY_VERSION);
    put_str(out, id);
}

void txn_value_encode(struct buf *out, const struct txn_meta *m)
{
    buf_put_be16(out, VALUE_VERSION);
    buf_put_be64(out, (uint64_t)m->producer_id);
    buf_put_be16(out, (uint16_t)m->epoch);
    buf_put_be32(out, (uint32_t)m->timeout_ms);
    buf_put_u8(out, (uint8_t)m->state);
    /* Grouped by topic: the partitions are sorted, so a topic's are consecutive. */
    size_t topics = 0;
    for (size_t i = 0; i < m->part_count; i++)
        topics += i == 0 || strcmp(m->parts[i].topic, m->parts[i - 1].topic) != 0;
    buf_put_be32(out, (uint32_t)topics);
    for (size_t i = 0; i < m->part_count;) {
        size_t j = i;
        while (j < m->part_count && strcmp(m->parts[j].topic, m->parts[i].topic) == 0)
            j++;
        put_str(out, slice_make(m->parts[i].topic, strlen(m->parts[i].topic)));
        buf_put_be32(out, (uint32_t)(j - i));
        for (size_t k = i; k < j; k++)
            buf_put_be32(out, (uint32_t)m->parts[k].partition);
        i = j;
    }
    buf_put_be64(out, (uint64_t)m->update_ms);
    buf_put_be64(out, (uint64_t)m->start_ms);
}

static struct slice rd_str(struct reader *r, bool compact)
{
    size_t len;
    if (compact) {
        uint32_t n = rd_uvarint(r);
        if (n == 0)
            rd_fail(r, ERR_CORRUPT); /* not nullable here */
        len = n > 0 ? n - 1 : 0;
    } else {
        int16_t n = (int16_t)rd_be16(r);
        if (n < 0)
            rd_fail(r, ERR_CORRUPT);
        len = n > 0 ? (size_t)n : 0;
    }
    if (rd_err(r) != 0 || len > rd_left(r) || len > TXN_ID_BYTES_MAX) {
        rd_fail(r, ERR_CORRUPT);
        return slice_make("", 0);
    }
    return slice_make(rd_bytes(r, len), len);
}

/* An array count (-1 null as 0); ERR_CORRUPT past max or the bytes left (each at least min_each
 * bytes). */
static size_t rd_count(struct reader *r, bool compact, size_t max, size_t min_each)
{
    int64_t n;
    if (compact)
        n = (int64_t)rd_uvarint(r) - 1;
    else
        n = (int32_t)rd_be32(r);
    if (n < 0)
        return 0;
    if (rd_err(r) != 0 || (uint64_t)n > max || (uint64_t)n * min_each > rd_left(r)) {
        rd_fail(r, ERR_CORRUPT);
        return 0;
    }
    return (size_t)n;
}

/* Skips a flexible struct's tagged fields. */
static void rd_skip_tags(struct reader *r)
{
    uint32_t n = rd_uvarint(r);
    for (uint32_t i = 0; i < n && rd_err(r) == 0; i++) {
        (void)rd_uvarint(r);
        uint32_t len = rd_uvarint(r);
        if (rd_err(r) != 0 || len > rd_left(r)) {
            rd_fail(r, ERR_CORRUPT);
            return;
        }
        (void)rd_bytes(r, len);
    }
}

int txn_key_decode(struct slice in, struct slice *id)
{
    struct reader r;
    rd_init(&r, in.ptr, in.len);
    uint16_t version = rd_be16(&r);
    if (rd_err(&r) != 0)
        return ERR_CORRUPT;
    if (version != KEY_VERSION)
        return ERR_UNSUPPORTED;
    *id = rd_str(&r, false);
    return rd_err(&r) != 0 || rd_left(&r) != 0 ? ERR_CORRUPT : 0;
}

int txn_value_decode(struct slice in, struct txn_meta *out)
{
    struct reader r;
    rd_init(&r, in.ptr, in.len);
    uint16_t version = rd_be16(&r);
    if (rd_err(&r) == 0 && version > VALUE_FLEXIBLE)
        return ERR_UNSUPPORTED;
    bool flex = version == VALUE_FLEXIBLE;
    struct txn_meta m = {.start_ms = -1, .last_epoch = -1};
    m.producer_id = (int64_t)rd_be64(&r);
    m.epoch = (int16_t)rd_be16(&r);
    m.timeout_ms = (int32_t)rd_be32(&r);
    uint8_t status = rd_u8(&r);
    size_t topics = rd_count(&r, flex, TXN_PARTITIONS_MAX, 2);
    for (size_t t = 0; t < topics && rd_err(&r) == 0; t++) {
        struct slice topic = rd_str(&r, flex);
        size_t n = rd_count(&r, flex, TXN_PARTITIONS_MAX, 4);
        for (size_t i = 0; i < n && rd_err(&r) == 0; i++) {
            int32_t partition = (int32_t)rd_be32(&r);
            if (rd_err(&r) == 0 && (partition < 0 || m.part_count >= TXN_PARTITIONS_MAX))
                rd_fail(&r, ERR_CORRUPT);
            if (rd_err(&r) == 0)
                (void)part_add(&m, topic, partition);
        }
        if (flex)
            rd_skip_tags(&r);
    }
    m.update_ms = (int64_t)rd_be64(&r);
    m.start_ms = (int64_t)rd_be64(&r);
    if (flex)
        rd_skip_tags(&r);
    if (rd_err(&r) == 0 && (status >= TXN_STATE_COUNT || rd_left(&r) != 0 || m.producer_id < 0))
        rd_fail(&r, ERR_CORRUPT);
    if (rd_err(&r) != 0) {
        txn_meta_clear(&m);
        return ERR_CORRUPT;
    }
    m.state = (enum txn_state)status;
    *out = m;
    return 0;
}

/* ---- the table ----------------------------------------------------------------------------- */

void txn_coord_init(struct txn_coord *c, uint32_t partition_count)
{
    ASSERT(partition_count > 0 && partition_count <= TXN_STATE_PARTITIONS_MAX);
    memset(c, 0, sizeof(*c));
    c->partition_count = partition_count;
    c->part_states = xcalloc(partition_count, sizeof(*c->part_states));
}

void txn_coord_deinit(struct txn_coord *c)
{
    for (uint32_t i = 0; i < c->count; i++) {
        txn_meta_clear(c->all[i]);
        free(c->all[i]);
    }
    free(c->all);
    free(c->slots);
    free(c->part_states);
    memset(c, 0, sizeof(*c));
}

uint32_t txn_partition_of(struct slice id, uint32_t partition_count)
{
    return group_partition_of(id, partition_count);
}

static uint32_t hash_id(struct slice id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < id.len; i++)
        h = (h ^ ((const uint8_t *)id.ptr)[i]) * 16777619u;
    return h;
}

static struct slice meta_id(const struct txn_meta *m)
{
    return slice_make(m->id, m->id_len);
}

/* The slot of the id, or the empty slot where it would go. */
static uint32_t slot_of(const struct txn_coord *c, struct slice id)
{
    uint32_t mask = c->slot_count - 1;
    uint32_t i = hash_id(id) & mask;
    while (c->slots[i] != NULL && !slice_eq(meta_id(c->slots[i]), id))
        i = (i + 1) & mask;
    return i;
}

struct txn_meta *txn_coord_find(const struct txn_coord *c, struct slice id)
{
    if (c->slot_count == 0 || id.ptr == NULL)
        return NULL;
    return c->slots[slot_of(c, id)];
}

int16_t txn_coord_check(const struct txn_coord *c, struct slice id)
{
    switch (c->part_states[txn_partition_of(id, c->partition_count)]) {
    case TXN_PART_READY:
        return TXN_ERR_NONE;
    case TXN_PART_LOADING:
        return TXN_ERR_LOAD_IN_PROGRESS;
    case TXN_PART_FAILED:
        return TXN_ERR_UNKNOWN_SERVER_ERROR;
    case TXN_PART_NOT_OWNED:
        break;
    }
    return TXN_ERR_NOT_COORDINATOR;
}

static void grow(struct txn_coord *c)
{
    uint32_t old_count = c->slot_count;
    struct txn_meta **old = c->slots;
    c->slot_count = old_count == 0 ? 64 : old_count * 2;
    c->slots = xcalloc(c->slot_count, sizeof(*c->slots));
    for (uint32_t i = 0; i < old_count; i++)
        if (old[i] != NULL)
            c->slots[slot_of(c, meta_id(old[i]))] = old[i];
    free(old);
    c->all = xrealloc(c->all, c->slot_count * sizeof(*c->all));
}

int txn_coord_put(struct txn_coord *c, struct txn_meta *m, struct txn_meta **stored)
{
    ASSERT(m->id != NULL);
    struct txn_meta *cur = txn_coord_find(c, meta_id(m));
    if (cur != NULL) {
        txn_meta_clear(cur);
        *cur = *m;
    } else {
        if (c->count >= TXN_IDS_MAX)
            return ERR_TOO_LARGE;
        if ((c->count + 1) * 2 > c->slot_count)
            grow(c);
        cur = xmalloc(sizeof(*cur));
        *cur = *m;
        c->slots[slot_of(c, meta_id(m))] = cur;
        c->all[c->count++] = cur;
    }
    memset(m, 0, sizeof(*m));
    *stored = cur;
    return 0;
}

void txn_coord_remove(struct txn_coord *c, struct slice id)
{
    struct txn_meta *m = txn_coord_find(c, id);
    if (m == NULL)
        return;
    /* Backward-shift deletion keeps every probe chain unbroken. */
    uint32_t mask = c->slot_count - 1;
    uint32_t i = slot_of(c, id);
    c->slots[i] = NULL;
    for (uint32_t j = (i + 1) & mask; c->slots[j] != NULL; j = (j + 1) & mask) {
        struct txn_meta *x = c->slots[j];
        c->slots[j] = NULL;
        c->slots[slot_of(c, meta_id(x))] = x;
    }
    for (uint32_t k = 0; k < c->count; k++) {
        if (c->all[k] == m) {
            c->all[k] = c->all[--c->count];
            break;
        }
    }
    txn_meta_clear(m);
    free(m);
}

static void drop_partition(struct txn_coord *c, uint32_t p)
{
    for (uint32_t i = 0; i < c->count;) {
        struct txn_meta *m = c->all[i];
        if (m->partition == p)
            txn_coord_remove(c, meta_id(m));
        else
            i++;
    }
}

void txn_coord_load_begin(struct txn_coord *c, uint32_t p)
{
    ASSERT(p < c->partition_count);
    drop_partition(c, p);
    c->part_states[p] = TXN_PART_LOADING;
}

struct load_walk {
    struct txn_coord *c;
    uint32_t p;
    int64_t offset;
};

static int load_record(void *ctx, int64_t offset, struct slice key, struct slice value)
{
    struct load_walk *w = ctx;
    w->offset = offset;
    struct slice id;
    int rc = txn_key_decode(key, &id);
    if (rc == ERR_UNSUPPORTED)
        return 0; /* a record of a kind this coordinator does not keep */
    if (rc < 0)
        return rc;
    if (txn_partition_of(id, w->c->partition_count) != w->p)
        return ERR_CORRUPT; /* stored in a partition that does not own it */
    if (value.ptr == NULL) {
        txn_coord_remove(w->c, id);
        return 0;
    }
    struct txn_meta m;
    rc = txn_value_decode(value, &m);
    if (rc == ERR_UNSUPPORTED)
        return ERR_CORRUPT; /* a newer format: never serve a partition we read only in part */
    if (rc < 0)
        return rc;
    m.id = dup_bytes(id.ptr, id.len);
    m.id_len = id.len;
    m.partition = w->p;
    struct txn_meta *stored;
    rc = txn_coord_put(w->c, &m, &stored);
    if (rc < 0)
        txn_meta_clear(&m);
    return rc;
}

int txn_coord_load_batches(struct txn_coord *c, uint32_t p, const uint8_t *bytes, size_t len,
                           int64_t first_offset, int64_t *bad_offset)
{
    ASSERT(p < c->partition_count && c->part_states[p] == TXN_PART_LOADING);
    struct load_walk w = {.c = c, .p = p, .offset = -1};
    int64_t expected = first_offset;
    size_t pos = 0;
    while (pos < len) {
        struct batch_header h;
        int rc = batch_parse(bytes + pos, len - pos, &h);
        if (rc == 0 && h.base_offset < expected)
            rc = ERR_CORRUPT;
        if (rc == 0)
            rc = grec_batch_walk(bytes + pos, batch_total_bytes(&h), load_record, &w);
        if (rc < 0) {
            *bad_offset = w.offset >= 0 ? w.offset : expected;
            return rc == ERR_INCOMPLETE ? ERR_CORRUPT : rc;
        }
        expected = batch_last_offset(&h) + 1;
        pos += batch_total_bytes(&h);
    }
    return 0;
}

void txn_coord_load_done(struct txn_coord *c, uint32_t p)
{
    ASSERT(p < c->partition_count && c->part_states[p] == TXN_PART_LOADING);
    c->part_states[p] = TXN_PART_READY;
}

void txn_coord_load_failed(struct txn_coord *c, uint32_t p)
{
    ASSERT(p < c->partition_count && c->part_states[p] == TXN_PART_LOADING);
    drop_partition(c, p);
    c->part_states[p] = TXN_PART_FAILED;
}

void txn_coord_unload(struct txn_coord *c, uint32_t p)
{
    ASSERT(p < c->partition_count);
    drop_partition(c, p);
    c->part_states[p] = TXN_PART_NOT_OWNED;
}

/* ---- decisions ----------------------------------------------------------------------------- */

/* The producer of a request against the id's current one (Kafka's order of checks). */
static int16_t check_producer(const struct txn_meta *m, int64_t producer_id, int16_t epoch)
{
    if (m == NULL || m->producer_id != producer_id)
        return TXN_ERR_INVALID_PRODUCER_ID_MAPPING;
    if (m->epoch != epoch)
        return TXN_ERR_PRODUCER_FENCED;
    if (m->pending)
        return TXN_ERR_CONCURRENT_TRANSACTIONS;
    return TXN_ERR_NONE;
}

/* The abort of an ongoing transaction with the epoch bumped, fencing its producer. */
static void fence_abort(const struct txn_meta *m, int64_t now_ms, struct txn_meta *target)
{
    txn_meta_copy(target, m);
    if (target->epoch < EPOCH_EXHAUSTED)
        target->epoch++;
    target->state = TXN_PREPARE_ABORT;
    target->update_ms = now_ms;
}

bool txn_init_needs_id(const struct txn_meta *m)
{
    return m == NULL || m->epoch >= EPOCH_EXHAUSTED;
}

int16_t txn_decide_init(const struct txn_meta *m, const struct txn_init_req *r, uint32_t partition,
                        int64_t now_ms, struct txn_meta *target, bool *fence, bool *retry)
{
    *fence = false;
    *retry = false;
    if (r->id.len == 0 || r->id.len > TXN_ID_BYTES_MAX)
        return TXN_ERR_INVALID_REQUEST;
    if (r->timeout_ms <= 0 || r->timeout_ms > r->timeout_max_ms)
        return TXN_ERR_INVALID_TRANSACTION_TIMEOUT;
    if (m == NULL) {
        ASSERT(r->new_producer_id >= 0);
        *target = (struct txn_meta){
            .id = dup_bytes(r->id.ptr, r->id.len),
            .id_len = r->id.len,
            .partition = partition,
            .producer_id = r->new_producer_id,
            .epoch = 0,
            .timeout_ms = r->timeout_ms,
            .state = TXN_EMPTY,
            .start_ms = -1,
            .update_ms = now_ms,
            .last_epoch = -1,
        };
        return TXN_ERR_NONE;
    }
    if (m->pending)
        return TXN_ERR_CONCURRENT_TRANSACTIONS;
    /* KIP-360: a producer that says who it is must be the current one, or the one just bumped
     * from (its answer was lost: it gets the same answer again). */
    if (r->producer_id >= 0 && r->producer_id == m->producer_id && m->last_epoch >= 0 &&
        r->epoch == m->last_epoch && m->state == TXN_EMPTY) {
        txn_meta_copy(target, m);
        *retry = true;
        return TXN_ERR_NONE;
    }
    if (r->producer_id >= 0 && (r->producer_id != m->producer_id || r->epoch != m->epoch))
        return TXN_ERR_PRODUCER_FENCED;
    switch (m->state) {
    case TXN_PREPARE_COMMIT:
    case TXN_PREPARE_ABORT:
    case TXN_DEAD:
        return TXN_ERR_CONCURRENT_TRANSACTIONS;
    case TXN_ONGOING:
        fence_abort(m, now_ms, target);
        *fence = true;
        return TXN_ERR_NONE;
    case TXN_EMPTY:
    case TXN_COMPLETE_COMMIT:
    case TXN_COMPLETE_ABORT:
        break;
    }
    txn_meta_copy(target, m);
    if (m->epoch >= EPOCH_EXHAUSTED) {
        ASSERT(r->new_producer_id >= 0);
        target->producer_id = r->new_producer_id;
        target->epoch = 0;
        target->last_epoch = -1;
    } else {
        target->epoch = (int16_t)(m->epoch + 1);
        target->last_epoch = m->epoch;
    }
    target->timeout_ms = r->timeout_ms;
    target->state = TXN_EMPTY;
    target->start_ms = -1;
    target->update_ms = now_ms;
    parts_clear(target);
    return TXN_ERR_NONE;
}

int16_t txn_decide_add(const struct txn_meta *m, int64_t producer_id, int16_t epoch,
                       const struct txn_part *parts, size_t count, int64_t now_ms,
                       struct txn_meta *target, bool *append)
{
    *append = false;
    int16_t err = check_producer(m, producer_id, epoch);
    if (err != TXN_ERR_NONE)
        return err;
    if (m->state == TXN_PREPARE_COMMIT || m->state == TXN_PREPARE_ABORT || m->state == TXN_DEAD)
        return TXN_ERR_CONCURRENT_TRANSACTIONS;
    if (m->state == TXN_ONGOING) {
        bool all = true;
        for (size_t i = 0; i < count && all; i++)
            all = txn_meta_has(m, slice_make(parts[i].topic, strlen(parts[i].topic)),
                               parts[i].partition);
        if (all)
            return TXN_ERR_NONE;
    }
    if (m->part_count + count > TXN_PARTITIONS_MAX)
        return TXN_ERR_INVALID_REQUEST;
    txn_meta_copy(target, m);
    if (m->state != TXN_ONGOING) {
        parts_clear(target);
        target->start_ms = now_ms;
    }
    for (size_t i = 0; i < count; i++)
        (void)part_add(target, slice_make(parts[i].topic, strlen(parts[i].topic)),
                       parts[i].partition);
    target->state = TXN_ONGOING;
    target->update_ms = now_ms;
    *append = true;
    return TXN_ERR_NONE;
}

int16_t txn_decide_end(const struct txn_meta *m, int64_t producer_id, int16_t epoch, bool commit,
                       int64_t now_ms, struct txn_meta *target, bool *append)
{
    *append = false;
    int16_t err = check_producer(m, producer_id, epoch);
    if (err != TXN_ERR_NONE)
        return err;
    switch (m->state) {
    case TXN_ONGOING:
        txn_meta_copy(target, m);
        target->state = commit ? TXN_PREPARE_COMMIT : TXN_PREPARE_ABORT;
        target->update_ms = now_ms;
        *append = true;
        return TXN_ERR_NONE;
    case TXN_COMPLETE_COMMIT:
        return commit ? TXN_ERR_NONE : TXN_ERR_INVALID_TXN_STATE;
    case TXN_COMPLETE_ABORT:
        return commit ? TXN_ERR_INVALID_TXN_STATE : TXN_ERR_NONE;
    case TXN_PREPARE_COMMIT:
        return commit ? TXN_ERR_CONCURRENT_TRANSACTIONS : TXN_ERR_INVALID_TXN_STATE;
    case TXN_PREPARE_ABORT:
        return commit ? TXN_ERR_INVALID_TXN_STATE : TXN_ERR_CONCURRENT_TRANSACTIONS;
    case TXN_EMPTY:
        return TXN_ERR_INVALID_TXN_STATE;
    case TXN_DEAD:
        break;
    }
    return TXN_ERR_UNKNOWN_SERVER_ERROR;
}

bool txn_decide_timeout(const struct txn_meta *m, int64_t now_ms, struct txn_meta *target)
{
    if (m->pending || m->state != TXN_ONGOING || now_ms - m->start_ms < m->timeout_ms)
        return false;
    fence_abort(m, now_ms, target);
    return true;
}

void txn_decide_complete(const struct txn_meta *m, int64_t now_ms, struct txn_meta *target)
{
    ASSERT(m->state == TXN_PREPARE_COMMIT || m->state == TXN_PREPARE_ABORT);
    txn_meta_copy(target, m);
    target->state = m->state == TXN_PREPARE_COMMIT ? TXN_COMPLETE_COMMIT : TXN_COMPLETE_ABORT;
    target->update_ms = now_ms;
    target->start_ms = -1;
    parts_clear(target);
}

bool txn_decide_expire(const struct txn_meta *m, int64_t now_ms, int64_t expiration_ms)
{
    if (m->pending || !(m->state == TXN_EMPTY || m->state == TXN_COMPLETE_COMMIT ||
                        m->state == TXN_COMPLETE_ABORT))
        return false;
    return now_ms - m->update_ms >= expiration_ms;
}
