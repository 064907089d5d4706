/*
 * Producer state: an open-addressing map (linear probing, deletion by backward shift, so no
 * tombstones) from producer id to its entry. Rules and invariants: producer_state.h.
 */
#include "log/producer_state.h"

#include "base/alloc.h"
#include "base/assert.h"

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
    *ps = (struct producer_state){0};
}

void producer_state_clear(struct producer_state *ps)
{
    for (uint32_t i = 0; i < ps->cap; i++)
        ps->slots[i].producer_id = -1;
    ps->count = 0;
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
    if (a->epoch == e->epoch) {
        int32_t last = producer_seq_add(a->first_seq, a->record_count - 1);
        for (uint32_t i = 0; i < e->batch_count; i++) {
            if (e->batches[i].first_seq == a->first_seq && e->batches[i].last_seq == last) {
                *dup = e->batches[i];
                return PRODUCER_DUPLICATE;
            }
        }
        return in_sequence(e->batches[e->batch_count - 1].last_seq, a->first_seq)
                   ? PRODUCER_APPEND
                   : PRODUCER_OUT_OF_ORDER;
    }
    if (a->epoch < e->epoch)
        return PRODUCER_INVALID_EPOCH;
    return a->first_seq == 0 ? PRODUCER_APPEND : PRODUCER_OUT_OF_ORDER;
}

/* Removes slot i, shifting back the entries after it that probed past it. */
static void remove_at(struct producer_state *ps, uint32_t i)
{
    uint32_t mask = ps->cap - 1;
    uint32_t j = i;
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
 * ago is forgotten. */
static void make_room(struct producer_state *ps)
{
    if (ps->count >= PRODUCER_STATE_PRODUCERS_MAX) {
        uint32_t oldest = UINT32_MAX;
        for (uint32_t i = 0; i < ps->cap; i++)
            if (ps->slots[i].producer_id >= 0 &&
                (oldest == UINT32_MAX ||
                 ps->slots[i].last_timestamp_ms < ps->slots[oldest].last_timestamp_ms))
                oldest = i;
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
        struct producer_entry fresh = {.producer_id = a->producer_id, .epoch = a->epoch};
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
}

uint32_t producer_state_expire(struct producer_state *ps, int64_t now_ms, int64_t expiration_ms)
{
    uint32_t n = 0;
    uint32_t i = 0;
    while (i < ps->cap) {
        const struct producer_entry *e = &ps->slots[i];
        if (e->producer_id >= 0 && now_ms - e->last_timestamp_ms >= expiration_ms) {
            remove_at(ps, i); /* another entry may have moved into i: look at it again */
            n++;
            continue;
        }
        i++;
    }
    return n;
}
