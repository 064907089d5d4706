/*
 * The leader-epoch cache (Kafka's LeaderEpochFileCache, KIP-101/279): epoch -> start offset.
 *
 * Owns the in-memory entries and their checkpoint text. Invariants: epochs and start offsets
 * strictly increase along the array; at most LOG_EPOCH_ENTRIES_MAX entries. Pure: no I/O
 * (the log writes the text through the flusher). Must never accept an unparsable or
 * out-of-order checkpoint.
 */
#include "log/log_internal.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"

#include <string.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

void epochs_init(struct epochs *e)
{
    e->v = NULL;
    e->len = 0;
    e->cap = 0;
}

void epochs_deinit(struct epochs *e)
{
    free(e->v);
    epochs_init(e);
}

static int push(struct epochs *e, int32_t epoch, int64_t start_offset)
{
    if (e->len >= LOG_EPOCH_ENTRIES_MAX)
        return ERR_TOO_LARGE;
    if (e->len == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->v = xrealloc(e->v, (size_t)e->cap * sizeof(*e->v));
    }
    e->v[e->len].epoch = epoch;
    e->v[e->len].start_offset = start_offset;
    e->len++;
    return 0;
}

int epochs_assign(struct epochs *e, int32_t epoch, int64_t start_offset)
{
    ASSERT(start_offset >= 0);
    ASSERT(e->len <= e->cap);
    if (e->len > 0) {
        const struct epoch_entry *last = &e->v[e->len - 1];
        if (epoch == last->epoch)
            return 0;
        if (epoch > last->epoch && start_offset == last->start_offset && e->len == 1) {
            /* The log start moved up to the end (DeleteRecords to the end): the entry names an
             * offset no batch holds yet, and the first batch there brings a newer epoch. */
            e->v[0].epoch = epoch;
            return 0;
        }
        if (epoch < last->epoch || start_offset <= last->start_offset)
            return ERR_INVALID;
    }
    if (epoch < 0)
        return ERR_INVALID;
    return push(e, epoch, start_offset);
}

bool epochs_truncate_from_end(struct epochs *e, int64_t end)
{
    uint32_t old = e->len;
    while (e->len > 0 && e->v[e->len - 1].start_offset >= end)
        e->len--;
    return e->len != old;
}

bool epochs_truncate_from_start(struct epochs *e, int64_t start)
{
    uint32_t keep = 0; /* index of the last entry starting at or below start */
    while (keep + 1 < e->len && e->v[keep + 1].start_offset <= start)
        keep++;
    if (e->len == 0 || (keep == 0 && e->v[0].start_offset >= start))
        return false;
    memmove(e->v, e->v + keep, (size_t)(e->len - keep) * sizeof(*e->v));
    e->len -= keep;
    e->v[0].start_offset = start;
    return true;
}

/* The number of entries starting at or before offset (the one holding it is the last). */
static uint32_t entries_through(const struct epochs *e, int64_t offset)
{
    uint32_t lo = 0, hi = e->len; /* first entry starting after offset */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (e->v[mid].start_offset <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int epochs_epoch_of(const struct epochs *e, int64_t offset, int32_t *epoch)
{
    ASSERT(epoch != NULL);
    uint32_t n = entries_through(e, offset);
    if (n == 0)
        return ERR_NOT_FOUND;
    *epoch = e->v[n - 1].epoch;
    return 0;
}

bool epochs_starts_at(const struct epochs *e, int32_t epoch, int64_t offset)
{
    uint32_t n = entries_through(e, offset);
    return n > 0 && e->v[n - 1].start_offset == offset && e->v[n - 1].epoch == epoch;
}

void epochs_end_for(const struct epochs *e, int32_t epoch, int64_t log_end, int32_t *epoch_out,
                    int64_t *end_out)
{
    ASSERT(epoch_out != NULL && end_out != NULL);
    *epoch_out = -1;
    *end_out = -1;
    if (e->len == 0 || epoch < 0)
        return;
    if (epoch == e->v[e->len - 1].epoch) {
        *epoch_out = epoch;
        *end_out = log_end;
        return;
    }
    uint32_t higher = 0; /* first entry with a larger epoch */
    while (higher < e->len && e->v[higher].epoch <= epoch)
        higher++;
    if (higher == e->len)
        return;
    /* Below every known epoch, Kafka answers the requested epoch with the first start offset:
     * the data before it is gone and the follower must start from there. */
    *epoch_out = higher == 0 ? epoch : e->v[higher - 1].epoch;
    *end_out = e->v[higher].start_offset;
}

void epochs_format(const struct epochs *e, struct buf *out)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "0\n%" PRIu32 "\n", e->len);
    buf_append(out, line, (size_t)n);
    for (uint32_t i = 0; i < e->len; i++) {
        n = snprintf(line, sizeof(line), "%" PRId32 " %" PRId64 "\n", e->v[i].epoch,
                     e->v[i].start_offset);
        buf_append(out, line, (size_t)n);
    }
}

/* Parses a decimal integer in [lo, hi] ending at `term`; advances *p past the terminator. */
static int parse_int(const char **p, const char *end, char term, int64_t lo, int64_t hi,
                     int64_t *out)
{
    const char *s = *p;
    bool neg = s < end && *s == '-';
    if (neg)
        s++;
    int64_t v = 0;
    const char *digits = s;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (INT64_MAX - (*s - '0')) / 10)
            return ERR_CORRUPT;
        v = v * 10 + (*s - '0');
        s++;
    }
    if (s == digits || s - digits > 19 || s >= end || *s != term)
        return ERR_CORRUPT;
    v = neg ? -v : v;
    if (v < lo || v > hi)
        return ERR_CORRUPT;
    *p = s + 1;
    *out = v;
    return 0;
}

int epochs_parse(struct epochs *e, const char *text, size_t len)
{
    ASSERT(e->len == 0);
    const char *p = text, *end = text + len;
    int64_t version, count, epoch, start;
    int rc = parse_int(&p, end, '\n', 0, 0, &version);
    if (rc == 0)
        rc = parse_int(&p, end, '\n', 0, LOG_EPOCH_ENTRIES_MAX, &count);
    for (int64_t i = 0; rc == 0 && i < count; i++) {
        rc = parse_int(&p, end, ' ', 0, INT32_MAX, &epoch);
        if (rc == 0)
            rc = parse_int(&p, end, '\n', 0, INT64_MAX, &start);
        if (rc == 0 && e->len > 0 &&
            (epoch <= e->v[e->len - 1].epoch || start <= e->v[e->len - 1].start_offset))
            rc = ERR_CORRUPT;
        if (rc == 0)
            rc = push(e, (int32_t)epoch, start);
    }
    if (rc == 0 && p != end)
        rc = ERR_CORRUPT;
    if (rc != 0)
        e->len = 0;
    return rc;
}

bool epochs_equal(const struct epochs *a, const struct epochs *b)
{
    if (a->len != b->len)
        return false;
    for (uint32_t i = 0; i < a->len; i++) {
        if (a->v[i].epoch != b->v[i].epoch || a->v[i].start_offset != b->v[i].start_offset)
            return false;
    }
    return true;
}
