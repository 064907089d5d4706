/*
 * The record payload of a batch in Kafka's four codecs: decompression (for reading records by
 * timestamp, compaction and search indexing; never on the produce path) and compression (for
 * tests, tools and batches the broker writes itself).
 *
 * Formats, as Kafka and its clients write them: gzip is a gzip stream; snappy is either the
 * xerial framing Kafka's Java client uses (an 8-byte magic, two 4-byte versions, then blocks of
 * a 4-byte big-endian length and a raw snappy block) or one raw snappy block (librdkafka); lz4
 * is the LZ4 frame format; zstd is a zstd frame. Decompression accepts all of these.
 *
 * Bounds: output is capped at out_max bytes (ERR_TOO_LARGE beyond), so a small hostile batch
 * cannot make the broker allocate without limit. Pure: no I/O, no state between calls.
 * Ownership: the caller owns `out`; results are appended to it.
 */
#ifndef CHRONIK_LOG_COMPRESS_H
#define CHRONIK_LOG_COMPRESS_H

#include "base/buf.h"
#include "log/batch.h"

#include <stddef.h>
#include <stdint.h>

/* Appends the decompressed bytes to out. ERR_CORRUPT for bytes that do not decode,
 * ERR_UNSUPPORTED for an unknown codec, ERR_TOO_LARGE past out_max. */
int records_decompress(enum batch_codec codec, const uint8_t *in, size_t len, size_t out_max,
                       struct buf *out);
/* Appends the compressed bytes to out (snappy in xerial framing, as Kafka's Java client). */
int records_compress(enum batch_codec codec, const uint8_t *in, size_t len, struct buf *out);

#endif
