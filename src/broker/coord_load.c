/*
 * The one loader of the coordinators' internal topics (coord_load.h): reads a partition of
 * __consumer_offsets or __transaction_state a chunk at a time on the loop and hands each chunk,
 * read whole, to its coordinator.
 */
#include "broker/coord_load.h"

#include "base/alloc.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "io/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void coord_load_begin(struct coord_load *l)
{
    *l = (struct coord_load){.next = 0};
}

void coord_load_stop(struct coord_load *l)
{
    *l = (struct coord_load){.next = -1};
}

/* Logs a read error once per partition and offset, not on every retry. */
static void read_error(const struct coord_loader *ld, struct coord_load *l, uint32_t p,
                       int64_t offset, int err, const char *what)
{
    if (l->err == err && l->err_offset == offset)
        return;
    l->err = err;
    l->err_offset = offset;
    fprintf(stderr,
            "chronik: cannot load %s from %s-%u at offset %lld: %s (%s); its %s answer "
            "COORDINATOR_LOAD_IN_PROGRESS, retrying every %u ms\n",
            ld->what, ld->topic, p, (long long)offset, what, err_str(err), ld->holders,
            GROUP_LOAD_RETRY_MS);
}

enum coord_load_result coord_load_step(const struct coord_loader *ld, struct coord_load *l,
                                       uint32_t p, int64_t now_ms)
{
    struct replica *r = broker_replica(ld->b, ld->topic, strlen(ld->topic), (int32_t)p);
    if (r == NULL || replica_error(r) != 0) {
        l->retry_ms = now_ms + ld->unavailable_retry_ms;
        if (!ld->unavailable_quiet)
            read_error(ld, l, p, l->next, r == NULL ? ERR_CLOSED : replica_error(r),
                       "the partition is not available");
        return COORD_LOAD_RETRY;
    }
    int64_t from = MAX(l->next, replica_log_start_offset(r));
    if (from >= replica_high_watermark(r)) {
        l->next = -1;
        return COORD_LOAD_DONE;
    }
    struct log_read rd;
    int rc = replica_read(r, from, GROUP_LOAD_CHUNK_BYTES, &rd);
    if (rc == 0 && rd.file == NULL)
        rc = ERR_INCOMPLETE; /* below the high watermark the log must have batches */
    if (rc < 0) {
        l->retry_ms = now_ms + GROUP_LOAD_RETRY_MS;
        read_error(ld, l, p, from, rc, "read failed");
        return COORD_LOAD_RETRY;
    }
    uint8_t *bytes = xmalloc(rd.bytes + 1);
    ssize_t n = io_pread(log_file_io(rd.file), bytes, rd.bytes, rd.position);
    int64_t first = rd.first_offset, next = rd.next_offset;
    uint64_t want = rd.bytes;
    log_read_release(&rd);
    enum coord_load_result res;
    /* Nothing of a chunk is applied unless all of it was read. */
    if (n < 0 || (uint64_t)n != want) {
        l->retry_ms = now_ms + GROUP_LOAD_RETRY_MS;
        read_error(ld, l, p, from, n < 0 ? (int)n : ERR_INCOMPLETE,
                   n < 0 ? "read failed" : "short read");
        res = COORD_LOAD_RETRY;
    } else {
        int64_t bad = -1;
        rc = ld->apply(ld->ctx, p, bytes, want, first, &bad);
        if (rc < 0) {
            fprintf(stderr,
                    "chronik: cannot load %s from %s-%u: the record at offset %lld is not valid "
                    "(%s); the partition's %s answer UNKNOWN_SERVER_ERROR until it is repaired "
                    "and the broker restarted\n",
                    ld->what, ld->topic, p, (long long)bad, err_str(rc), ld->holders);
            l->next = -1;
            res = COORD_LOAD_FAILED;
        } else {
            l->err = 0;
            l->next = next >= replica_high_watermark(r) ? -1 : next;
            res = l->next < 0 ? COORD_LOAD_DONE : COORD_LOAD_MORE;
        }
    }
    free(bytes);
    return res;
}
