/*
 * Producer state: an open-addressing map (linear probing, deletion by backward shift, so no
 * tombstones) from producer id to its entry. Rules and invariants: producer_state.h.
 */
#include "log/producer_state.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/crc32c.h"
#include "base/error.h"

#include <stdlib.h>
#include <string.h>

#define SLOTS_MIN 16u

static uint32_t slot_of(const struct producer_state *ps, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32) & (ps->cap - 1);
}

void producer_state_init(struct producer_state *ps)
{
    *ps = (struct producer_state){0};
}

void producer_state_deinit(struct producer_state *ps)
{
    free(ps->slots);
    free(ps->ongoing);
    free(ps->ended);
    *ps = (struct producer_state){0};
}

void producer_state_clear(struct producer_state *ps)
{
    for (uint32_t i = 0; i < ps->cap; i++)
        ps->slots[i].producer_id = -1;
    ps->count = 0;
    ps->ongoing_count = ps->ended_count = 0;
}

/* Makes room for n elements of size in *arr (capacity *cap), doubling. */
static void *reserve(void *arr, uint32_t *cap, uint32_t n, size_t size)
{
    if (n <= *cap)
        return arr;
    uint32_t c = *cap > 0 ? *cap : 8;
    while (c < n)
        c *= 2;
    *cap = c;
    return xrealloc(arr, (size_t)c * size);
}

void producer_state_copy(struct producer_state *dst, const struct producer_state *src)
{
    if (dst->cap != src->cap) {
        free(dst->slots);
        dst->slots = src->cap > 0 ? xmalloc(src->cap * sizeof(*dst->slots)) : NULL;
        dst->cap = src->cap;
    }
    if (src->cap > 0)
        memcpy(dst->slots, src->slots, src->cap * sizeof(*dst->slots));
    dst->count = src->count;
    dst->ongoing =
        reserve(dst->ongoing, &dst->ongoing_cap, src->ongoing_count, sizeof(*dst->ongoing));
    if (src->ongoing_count > 0)
        memcpy(dst->ongoing, src->ongoing, src->ongoing_count * sizeof(*dst->ongoing));
    dst->ongoing_count = src->ongoing_count;
    dst->ended = reserve(dst->ended, &dst->ended_cap, src->ended_count, sizeof(*dst->ended));
    if (src->ended_count > 0)
        memcpy(dst->ended, src->ended, src->ended_count * sizeof(*dst->ended));
    dst->ended_count = src->ended_count;
}

int32_t producer_seq_add(int32_t seq, int32_t count)
{
    int64_t next = (int64_t)seq + count;
    return next > INT32_MAX ? (int32_t)(next - INT32_MAX - 1) : (int32_t)next;
}

const struct producer_entry *producer_state_find(const struct producer_state *ps,
                                                 int64_t producer_id)
{
    if (ps->cap == 0)
        return NULL;
    for (uint32_t i = slot_of(ps, producer_id);; i = (i + 1) & (ps->cap - 1)) {
        if (ps->slots[i].producer_id == producer_id)
            return &ps->slots[i];
        if (ps->slots[i].producer_id < 0)
            return NULL;
    }
}

static bool in_sequence(int32_t last_seq, int32_t next_seq)
{
    return (int64_t)next_seq == (int64_t)last_seq + 1 || (next_seq == 0 && last_seq == INT32_MAX);
}

enum producer_verdict producer_state_check(const struct producer_state *ps,
                                           const struct producer_append *a,
                                           struct producer_batch *dup)
{
    const struct producer_entry *e = producer_state_find(ps, a->producer_id);
    if (e == NULL)
        return PRODUCER_APPEND;
    if (a->epoch >= e->epoch && e->txn_first_offset >= 0 && !a->transactional)
        return PRODUCER_INVALID_TXN_STATE;
    if (a->epoch == e->epoch) {
        int32_t last = producer_seq_add(a->first_seq, a->record_count - 1);
        for (uint32_t i = 0; i < e->batch_count; i++) {
            if (e->batches[i].first_seq == a->first_seq && e->batches[i].last_seq == last) {
                *dup = e->batches[i];
                return PRODUCER_DUPLICATE;
            }
        }
        /* No batch of this epoch yet (a marker took it): the next starts at 0, as in Kafka. */
        int32_t last_seq = e->batch_count > 0 ? e->batches[e->batch_count - 1].last_seq : -1;
        return in_sequence(last_seq, a->first_seq) ? PRODUCER_APPEND : PRODUCER_OUT_OF_ORDER;
    }
    if (a->epoch < e->epoch)
        return PRODUCER_INVALID_EPOCH;
    return a->first_seq == 0 ? PRODUCER_APPEND : PRODUCER_OUT_OF_ORDER;
}

/* Forgets the producer's ongoing transaction, if any. */
static void ongoing_remove(struct producer_state *ps, int64_t producer_id)
{
    for (uint32_t k = 0; k < ps->ongoing_count; k++) {
        if (ps->ongoing[k].producer_id != producer_id)
            continue;
        memmove(&ps->ongoing[k], &ps->ongoing[k + 1],
                (ps->ongoing_count - k - 1) * sizeof(ps->ongoing[0]));
        ps->ongoing_count--;
        return;
    }
}

/* Removes slot i, shifting back the entries after it that probed past it. */
static void remove_at(struct producer_state *ps, uint32_t i)
{
    uint32_t mask = ps->cap - 1;
    uint32_t j = i;
    if (ps->slots[i].txn_first_offset >= 0)
        ongoing_remove(ps, ps->slots[i].producer_id);
    for (;;) {
        ps->slots[i].producer_id = -1;
        for (;;) {
            j = (j + 1) & mask;
            if (ps->slots[j].producer_id < 0) {
                ps->count--;
                return;
            }
            uint32_t home = slot_of(ps, ps->slots[j].producer_id);
            /* j's entry may move to i unless its home lies cyclically in (i, j]. */
            bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays)
                break;
        }
        ps->slots[i] = ps->slots[j];
        i = j;
    }
}

static void insert_slot(struct producer_state *ps, const struct producer_entry *e)
{
    uint32_t i = slot_of(ps, e->producer_id);
    while (ps->slots[i].producer_id >= 0)
        i = (i + 1) & (ps->cap - 1);
    ps->slots[i] = *e;
    ps->count++;
}

static void grow(struct producer_state *ps)
{
    struct producer_state old = *ps;
    ps->cap = old.cap > 0 ? old.cap * 2 : SLOTS_MIN;
    ps->slots = xmalloc(ps->cap * sizeof(*ps->slots));
    ps->count = 0;
    for (uint32_t i = 0; i < ps->cap; i++)
        ps->slots[i].producer_id = -1;
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.slots[i].producer_id >= 0)
            insert_slot(ps, &old.slots[i]);
    free(old.slots);
}

/* Room for one more entry: the map grows at 3/4 full; at the bound, the producer written longest
 * ago is forgotten, one without an ongoing transaction if there is one. */
static void make_room(struct producer_state *ps)
{
    if (ps->count >= PRODUCER_STATE_PRODUCERS_MAX) {
        uint32_t oldest = UINT32_MAX;
        for (uint32_t i = 0; i < ps->cap; i++) {
            const struct producer_entry *e = &ps->slots[i];
            if (e->producer_id < 0)
                continue;
            if (oldest == UINT32_MAX)
                oldest = i;
            const struct producer_entry *o = &ps->slots[oldest];
            bool e_txn = e->txn_first_offset >= 0, o_txn = o->txn_first_offset >= 0;
            if (e_txn != o_txn ? !e_txn : e->last_timestamp_ms < o->last_timestamp_ms)
                oldest = i;
        }
        remove_at(ps, oldest);
    }
    if ((uint64_t)(ps->count + 1) * 4 > (uint64_t)ps->cap * 3)
        grow(ps);
}

void producer_state_update(struct producer_state *ps, const struct producer_append *a)
{
    ASSERT(a->producer_id >= 0 && a->record_count > 0);
    struct producer_entry *e = (struct producer_entry *)producer_state_find(ps, a->producer_id);
    if (e == NULL) {
        make_room(ps);
        struct producer_entry fresh = {.producer_id = a->producer_id,
                                       .epoch = a->epoch,
                                       .txn_first_offset = -1,
                                       .coordinator_epoch = -1};
        insert_slot(ps, &fresh);
        e = (struct producer_entry *)producer_state_find(ps, a->producer_id);
    }
    if (e->epoch != a->epoch) {
        e->epoch = a->epoch;
        e->batch_count = 0;
    }
    if (e->batch_count == PRODUCER_STATE_BATCHES) {
        memmove(&e->batches[0], &e->batches[1],
                (PRODUCER_STATE_BATCHES - 1) * sizeof(e->batches[0]));
        e->batch_count--;
    }
    e->batches[e->batch_count++] = (struct producer_batch){
        .first_seq = a->first_seq,
        .last_seq = producer_seq_add(a->first_seq, a->record_count - 1),
        .first_offset = a->first_offset,
        .last_offset = a->first_offset + a->record_count - 1,
    };
    e->last_timestamp_ms = a->timestamp_ms;
    if (a->transactional && e->txn_first_offset < 0) {
        /* Appended in offset order, so the newest transaction starts last. */
        e->txn_first_offset = a->first_offset;
        ps->ongoing =
            reserve(ps->ongoing, &ps->ongoing_cap, ps->ongoing_count + 1, sizeof(*ps->ongoing));
        ps->ongoing[ps->ongoing_count++] = (struct producer_txn){
            .producer_id = a->producer_id, .first_offset = a->first_offset, .last_offset = -1};
    }
}

enum producer_verdict producer_state_check_marker(const struct producer_state *ps,
                                                  const struct producer_marker *m)
{
    const struct producer_entry *e = producer_state_find(ps, m->producer_id);
    if (e == NULL)
        return PRODUCER_APPEND;
    if (m->epoch < e->epoch)
        return PRODUCER_INVALID_EPOCH;
    if (m->coordinator_epoch < e->coordinator_epoch)
        return PRODUCER_COORDINATOR_FENCED;
    return PRODUCER_APPEND;
}

/* The first offset not yet decided once the transaction (first, marker at last) ended, for the
 * aborted transaction's last stable offset: the oldest other ongoing one, else past the marker. */
static int64_t stable_after(const struct producer_state *ps, int64_t last)
{
    return ps->ongoing_count > 0 ? ps->ongoing[0].first_offset : last + 1;
}

bool producer_state_end_txn(struct producer_state *ps, const struct producer_marker *m,
                            struct producer_aborted *aborted)
{
    struct producer_entry *e = (struct producer_entry *)producer_state_find(ps, m->producer_id);
    if (e == NULL) {
        make_room(ps);
        struct producer_entry fresh = {.producer_id = m->producer_id,
                                       .epoch = m->epoch,
                                       .txn_first_offset = -1,
                                       .coordinator_epoch = m->coordinator_epoch};
        insert_slot(ps, &fresh);
        e = (struct producer_entry *)producer_state_find(ps, m->producer_id);
    }
    if (e->epoch != m->epoch) {
        e->epoch = m->epoch;
        e->batch_count = 0;
    }
    e->coordinator_epoch = m->coordinator_epoch;
    e->last_timestamp_ms = m->timestamp_ms;
    int64_t first = e->txn_first_offset;
    if (first < 0)
        return false; /* a retried marker: nothing ongoing to end */
    e->txn_first_offset = -1;
    ongoing_remove(ps, m->producer_id);
    if (ps->ended_count == PRODUCER_STATE_ENDED_MAX) {
        memmove(&ps->ended[0], &ps->ended[1], (ps->ended_count - 1) * sizeof(ps->ended[0]));
        ps->ended_count--;
    }
    ps->ended = reserve(ps->ended, &ps->ended_cap, ps->ended_count + 1, sizeof(*ps->ended));
    ps->ended[ps->ended_count++] = (struct producer_txn){
        .producer_id = m->producer_id, .first_offset = first, .last_offset = m->offset};
    if (m->commit)
        return false;
    *aborted = (struct producer_aborted){.producer_id = m->producer_id,
                                         .first_offset = first,
                                         .last_offset = m->offset,
                                         .last_stable_offset = stable_after(ps, m->offset)};
    return true;
}

int64_t producer_state_stable_offset(struct producer_state *ps, int64_t hw)
{
    uint32_t keep = 0;
    int64_t lso = hw;
    for (uint32_t i = 0; i < ps->ended_count; i++) {
        if (ps->ended[i].last_offset < hw)
            continue;
        ps->ended[keep++] = ps->ended[i];
        if (ps->ended[i].first_offset < lso)
            lso = ps->ended[i].first_offset;
    }
    ps->ended_count = keep;
    if (ps->ongoing_count > 0 && ps->ongoing[0].first_offset < lso)
        lso = ps->ongoing[0].first_offset;
    return lso;
}

uint32_t producer_state_expire(struct producer_state *ps, int64_t now_ms, int64_t expiration_ms)
{
    uint32_t n = 0;
    uint32_t i = 0;
    while (i < ps->cap) {
        const struct producer_entry *e = &ps->slots[i];
        if (e->producer_id >= 0 && e->txn_first_offset < 0 &&
            now_ms - e->last_timestamp_ms >= expiration_ms) {
            remove_at(ps, i); /* another entry may have moved into i: look at it again */
            n++;
            continue;
        }
        i++;
    }
    return n;
}

/* Version 1 also held the aborted transactions (now the log's transaction index): it is not
 * read, so a state saved by it is rebuilt from the log, index entries and all. */
#define SNAPSHOT_VERSION 2

void producer_state_encode(const struct producer_state *ps, int64_t next_offset, struct buf *out)
{
    size_t start = out->len;
    buf_put_be32(out, 0); /* the CRC, filled in below */
    buf_put_be16(out, SNAPSHOT_VERSION);
    buf_put_be64(out, (uint64_t)next_offset);
    buf_put_be32(out, ps->count);
    for (uint32_t i = 0; i < ps->cap; i++) {
        const struct producer_entry *e = &ps->slots[i];
        if (e->producer_id < 0)
            continue;
        buf_put_be64(out, (uint64_t)e->producer_id);
        buf_put_be16(out, (uint16_t)e->epoch);
        buf_put_be32(out, (uint32_t)e->coordinator_epoch);
        buf_put_be64(out, (uint64_t)e->last_timestamp_ms);
        buf_put_be64(out, (uint64_t)e->txn_first_offset);
        buf_put_u8(out, e->batch_count);
        for (uint32_t k = 0; k < e->batch_count; k++) {
            buf_put_be32(out, (uint32_t)e->batches[k].first_seq);
            buf_put_be32(out, (uint32_t)e->batches[k].last_seq);
            buf_put_be64(out, (uint64_t)e->batches[k].first_offset);
            buf_put_be64(out, (uint64_t)e->batches[k].last_offset);
        }
    }
    buf_put_be32(out, ps->ended_count);
    for (uint32_t i = 0; i < ps->ended_count; i++) {
        buf_put_be64(out, (uint64_t)ps->ended[i].producer_id);
        buf_put_be64(out, (uint64_t)ps->ended[i].first_offset);
        buf_put_be64(out, (uint64_t)ps->ended[i].last_offset);
    }
    be32_store(out->data + start, crc32c(out->data + start + 4, out->len - start - 4));
}

static int cmp_txn_first(const void *a, const void *b)
{
    int64_t x = ((const struct producer_txn *)a)->first_offset;
    int64_t y = ((const struct producer_txn *)b)->first_offset;
    return x < y ? -1 : x > y;
}

/* The producers of a snapshot; the ongoing transactions rebuilt from them. */
static int decode_producers(struct producer_state *ps, struct reader *r)
{
    uint32_t n = rd_be32(r);
    if (rd_err(r) != 0 || n > PRODUCER_STATE_PRODUCERS_MAX)
        return ERR_CORRUPT;
    for (uint32_t i = 0; i < n; i++) {
        struct producer_entry e = {.producer_id = (int64_t)rd_be64(r)};
        e.epoch = (int16_t)rd_be16(r);
        e.coordinator_epoch = (int32_t)rd_be32(r);
        e.last_timestamp_ms = (int64_t)rd_be64(r);
        e.txn_first_offset = (int64_t)rd_be64(r);
        e.batch_count = rd_u8(r);
        if (rd_err(r) != 0 || e.producer_id < 0 || e.txn_first_offset < -1 ||
            e.batch_count > PRODUCER_STATE_BATCHES || producer_state_find(ps, e.producer_id))
            return ERR_CORRUPT;
        for (uint32_t k = 0; k < e.batch_count; k++) {
            e.batches[k].first_seq = (int32_t)rd_be32(r);
            e.batches[k].last_seq = (int32_t)rd_be32(r);
            e.batches[k].first_offset = (int64_t)rd_be64(r);
            e.batches[k].last_offset = (int64_t)rd_be64(r);
        }
        if (rd_err(r) != 0)
            return ERR_CORRUPT;
        make_room(ps);
        insert_slot(ps, &e);
        if (e.txn_first_offset >= 0) {
            ps->ongoing =
                reserve(ps->ongoing, &ps->ongoing_cap, ps->ongoing_count + 1, sizeof(*ps->ongoing));
            ps->ongoing[ps->ongoing_count++] =
                (struct producer_txn){.producer_id = e.producer_id,
                                      .first_offset = e.txn_first_offset,
                                      .last_offset = -1};
        }
    }
    if (ps->ongoing_count > 1)
        qsort(ps->ongoing, ps->ongoing_count, sizeof(*ps->ongoing), cmp_txn_first);
    return 0;
}

static int decode_txns(struct producer_state *ps, struct reader *r)
{
    uint32_t n = rd_be32(r);
    if (rd_err(r) != 0 || n > PRODUCER_STATE_ENDED_MAX || n > rd_left(r) / 24)
        return ERR_CORRUPT;
    ps->ended = reserve(ps->ended, &ps->ended_cap, n, sizeof(*ps->ended));
    for (uint32_t i = 0; i < n; i++) {
        /* One field a statement: an initializer list does not order its reads. */
        ps->ended[i].producer_id = (int64_t)rd_be64(r);
        ps->ended[i].first_offset = (int64_t)rd_be64(r);
        ps->ended[i].last_offset = (int64_t)rd_be64(r);
    }
    ps->ended_count = n;
    return rd_err(r) != 0 || rd_left(r) != 0 ? ERR_CORRUPT : 0;
}

int producer_state_decode(struct producer_state *ps, const uint8_t *p, size_t len,
                          int64_t *next_offset)
{
    producer_state_clear(ps);
    if (len < 14 || be32_load(p) != crc32c(p + 4, len - 4))
        return ERR_CORRUPT;
    struct reader r;
    rd_init(&r, p + 4, len - 4);
    int16_t version = (int16_t)rd_be16(&r);
    int64_t next = (int64_t)rd_be64(&r);
    int rc = version != SNAPSHOT_VERSION || next < 0 ? ERR_CORRUPT : decode_producers(ps, &r);
    if (rc == 0)
        rc = decode_txns(ps, &r);
    if (rc < 0) {
        producer_state_clear(ps);
        return ERR_CORRUPT;
    }
    *next_offset = next;
    return 0;
}
