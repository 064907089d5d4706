/*
 * Loading a coordinator's partition of its internal topic (__consumer_offsets for groups.c,
 * __transaction_state for txns.c): its records from the log start to the high watermark,
 * GROUP_LOAD_CHUNK_BYTES at a time, each chunk applied only once all of it was read. Private to
 * src/broker.
 *
 * The caller owns a struct coord_load per partition and decides when to step (the schedules
 * differ); this module owns the reading and the failure rules: a read that fails leaves the
 * partition loading, to be read again after GROUP_LOAD_RETRY_MS (logged once per error and
 * offset), and a chunk the coordinator cannot apply fails the partition for good (logged with
 * its offset), so a partial state is never served.
 */
#ifndef CHRONIK_BROKER_COORD_LOAD_H
#define CHRONIK_BROKER_COORD_LOAD_H

#include "broker/broker_internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One partition's load. */
struct coord_load {
    int64_t next;       /* the next offset to read, -1 when not loading (loaded, failed, not led) */
    int64_t retry_ms;   /* after a read error: not read again before this time */
    int err;            /* the read error last logged, 0 when none */
    int64_t err_offset; /* where it happened */
};

enum coord_load_result {
    COORD_LOAD_DONE,   /* the partition is loaded up to its high watermark */
    COORD_LOAD_MORE,   /* a chunk was applied and more remains */
    COORD_LOAD_RETRY,  /* the log could not be read now: not before l->retry_ms */
    COORD_LOAD_FAILED, /* what is stored cannot be applied: the partition is not served */
};

/* Applies one chunk of whole batches of partition p, the first at first_offset; < 0 with
 * *bad_offset at the batch or record that could not be applied. */
typedef int (*coord_load_apply_fn)(void *ctx, uint32_t p, const uint8_t *bytes, size_t len,
                                   int64_t first_offset, int64_t *bad_offset);

/* One coordinator's loading. */
struct coord_loader {
    struct broker *b;
    const char *topic;   /* the internal topic */
    const char *what;    /* what its log lines cannot load: "groups", "transactions" */
    const char *holders; /* who answer for a partition: "groups", "ids" */
    coord_load_apply_fn apply;
    void *ctx;
    /* A partition whose replica is not open (or failed): read again after this long, logged as
     * a read error unless quiet. */
    uint32_t unavailable_retry_ms;
    bool unavailable_quiet;
};

/* Starts loading from the log start. */
void coord_load_begin(struct coord_load *l);
/* Not loading (loaded, failed, or not led here). */
void coord_load_stop(struct coord_load *l);

/* Reads and applies the next chunk of partition p (l->next >= 0). */
enum coord_load_result coord_load_step(const struct coord_loader *ld, struct coord_load *l,
                                       uint32_t p, int64_t now_ms);

#endif
