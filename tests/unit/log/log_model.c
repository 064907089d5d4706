/*
 * The brute-force log model used by the log tests (see log_model.h).
 */
#include "log_model.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/limits.h"
#include "log/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void model_init(struct model *m)
{
    memset(m, 0, sizeof(*m));
}

void model_deinit(struct model *m)
{
    for (size_t i = 0; i < m->len; i++)
        free(m->v[i].bytes);
    free(m->v);
    model_init(m);
}

void model_push(struct model *m, const uint8_t *bytes, size_t len)
{
    struct batch_header h;
    int rc = batch_parse(bytes, len, &h);
    ASSERT(rc == 0);
    if (m->len == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->v = xrealloc(m->v, m->cap * sizeof(*m->v));
    }
    struct model_batch *b = &m->v[m->len++];
    b->bytes = xmalloc(len);
    memcpy(b->bytes, bytes, len);
    b->len = len;
    b->base_offset = h.base_offset;
    b->last_offset = batch_last_offset(&h);
    b->epoch = h.leader_epoch;
    b->max_timestamp_ms = h.max_timestamp_ms;
}

void model_truncate(struct model *m, int64_t offset)
{
    while (m->len > 0 && m->v[m->len - 1].base_offset >= offset) {
        free(m->v[m->len - 1].bytes);
        m->len--;
    }
}

int64_t model_end(const struct model *m)
{
    return m->len ? m->v[m->len - 1].last_offset + 1 : 0;
}

size_t model_prefix_len(const struct model *m, int64_t end)
{
    size_t n = 0;
    while (n < m->len && m->v[n].last_offset < end)
        n++;
    return n;
}

long model_find(const struct model *m, int64_t offset)
{
    for (size_t i = 0; i < m->len; i++) {
        if (m->v[i].base_offset <= offset && offset <= m->v[i].last_offset)
            return (long)i;
    }
    return -1;
}

const char *model_check(const struct model *m, struct log *log)
{
    return model_check_n(m, m->len, log);
}

const char *model_check_n(const struct model *full, size_t n, struct log *log)
{
    static char msg[256];
    ASSERT(n <= full->len);
    struct model prefix = *full;
    prefix.len = n;
    const struct model *m = &prefix;
    if (log_end_offset(log) != model_end(m)) {
        snprintf(msg, sizeof(msg), "end %lld, model %lld", (long long)log_end_offset(log),
                 (long long)model_end(m));
        return msg;
    }
    int64_t off = log_start_offset(log);
    long i = model_find(m, off);
    uint8_t *data = NULL;
    while (off < log_end_offset(log)) {
        if (i < 0 || (size_t)i >= m->len)
            return "log holds more than the model";
        struct log_read r;
        int rc = log_read(log, off, UINT64_MAX, INT64_MAX, &r);
        if (rc != 0 || r.bytes == 0) {
            snprintf(msg, sizeof(msg), "read at %lld: rc %d bytes %llu", (long long)off, rc,
                     (unsigned long long)r.bytes);
            return msg;
        }
        data = xrealloc(data, r.bytes);
        ssize_t got = io_pread(log_file_io(r.file), data, r.bytes, r.position);
        log_read_release(&r);
        if (got != (ssize_t)r.bytes)
            return "short pread";
        size_t at = 0;
        while (at < r.bytes) {
            if ((size_t)i >= m->len) {
                free(data);
                return "log holds more than the model";
            }
            const struct model_batch *b = &m->v[i];
            if (at + b->len > r.bytes || memcmp(data + at, b->bytes, b->len) != 0) {
                snprintf(msg, sizeof(msg), "batch %ld (offset %lld) differs", i,
                         (long long)b->base_offset);
                free(data);
                return msg;
            }
            at += b->len;
            i++;
        }
        off = r.next_offset;
    }
    free(data);
    return NULL;
}

int model_append(struct model *m, struct log *log, struct buf *batch, int32_t epoch)
{
    struct log_append_result res;
    int rc = log_append(log, batch->data, batch->len, epoch, &res);
    if (rc == 0) {
        ASSERT(res.base_offset == model_end(m));
        model_push(m, batch->data, batch->len);
    }
    return rc;
}
