/*
 * A brute-force model of a partition log for tests: every batch appended (bytes as stored,
 * offsets, epoch, max timestamp), and checks that compare a real struct log against it by
 * reading everything back through log_read.
 *
 * Owns the copies of the batches; model_deinit frees them.
 */
#ifndef CHRONIK_TESTS_LOG_MODEL_H
#define CHRONIK_TESTS_LOG_MODEL_H

#include "base/buf.h"
#include "log/log.h"

#include <stdint.h>

struct model_batch {
    uint8_t *bytes;
    size_t len;
    int64_t base_offset;
    int64_t last_offset;
    int32_t epoch;
    int64_t max_timestamp_ms;
};

struct model {
    struct model_batch *v;
    size_t len;
    size_t cap;
};

void model_init(struct model *m);
void model_deinit(struct model *m);
/* Records a batch as stored (after stamping). */
void model_push(struct model *m, const uint8_t *bytes, size_t len);
/* Drops batches at or after offset (a batch boundary). */
void model_truncate(struct model *m, int64_t offset);
int64_t model_end(const struct model *m);
/* Index of the batch holding offset, or -1. */
long model_find(const struct model *m, int64_t offset);

/* Reads the whole log from its start offset and compares every batch with the model (from the
 * batch holding the start offset on). Returns NULL when equal, else a description of the
 * first difference (in static storage). */
const char *model_check(const struct model *m, struct log *log);
/* The same against the model's first n batches only. */
const char *model_check_n(const struct model *m, size_t n, struct log *log);
/* How many of the model's first batches end below end. */
size_t model_prefix_len(const struct model *m, int64_t end);

/* Appends a batch with log_append and records it; returns the append's result code. */
int model_append(struct model *m, struct log *log, struct buf *batch, int32_t epoch);

#endif
