/*
 * The record payload of a batch in Kafka's four codecs: decompression (the produce path's check
 * of a compressed batch, reading records by timestamp, search indexing) and compression (the
 * produce path's recompression to a topic's compression.type, tests and tools), and the two
 * produce-path steps built on them: records_check and records_rebuild.
 *
 * Formats, as Kafka and its clients write them: gzip is a gzip stream; snappy is either the
 * xerial framing Kafka's Java client uses (an 8-byte magic, two 4-byte versions, then blocks of
 * a 4-byte big-endian length and a raw snappy block) or one raw snappy block (librdkafka); lz4
 * is the LZ4 frame format; zstd is a zstd frame. Decompression accepts all of these.
 *
 * Compression uses Kafka's default levels: gzip 6 (zlib's default), lz4's fast compressor in
 * 64 KiB blocks, zstd 3; snappy in xerial framing with 32 KiB blocks, as Kafka's Java client.
 *
 * Bounds: output is capped at out_max bytes (ERR_TOO_LARGE beyond), so a small hostile batch
 * cannot make the broker allocate without limit. Pure: no I/O. The records_codec_* functions
 * keep codec contexts and scratch buffers in a caller-allocated struct records_codec between
 * calls (one owner, one thread); the plain records_* functions keep nothing.
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

/*
 * Codec state reused across batches: every batch on the produce path would otherwise create
 * and free a codec context (zlib's and zstd's hold hundreds of KiB) and write into fresh
 * memory, whose first touch costs more than the decompression. Contexts are created on first
 * use. The scratch buffers keep their memory up to LOG_CODEC_SCRATCH_KEEP_BYTES between
 * batches (records_codec_trim), so one huge batch does not pin its memory for good.
 */
struct records_codec {
    struct z_stream_s *inflate;
    struct z_stream_s *deflate;
    struct LZ4F_dctx_s *lz4_in;
    struct ZSTD_DCtx_s *zstd_in;
    struct ZSTD_CCtx_s *zstd_out;
    struct buf plain;   /* the records records_check decompressed */
    struct buf rebuilt; /* the batch records_rebuild wrote */
};

void records_codec_init(struct records_codec *c);
void records_codec_deinit(struct records_codec *c);
/* Frees a scratch buffer grown past LOG_CODEC_SCRATCH_KEEP_BYTES; slices into it end. */
void records_codec_trim(struct records_codec *c);

/* As records_decompress and records_compress, with c's contexts. */
int records_codec_decompress(struct records_codec *c, enum batch_codec codec, const uint8_t *in,
                             size_t len, size_t out_max, struct buf *out);
int records_codec_compress(struct records_codec *c, enum batch_codec codec, const uint8_t *in,
                           size_t len, struct buf *out);

/*
 * The record-level part of Kafka's produce validation (LogValidator) for the batch p whose
 * header h passed batch_parse. A compressed batch's payload must decompress (else ERR_CORRUPT)
 * to at most plain_max bytes (else ERR_TOO_LARGE) of exactly recordCount records, each parsed to
 * its last byte, with offset deltas 0, 1, 2, ... and no bytes after the last record (else
 * ERR_INVALID). An uncompressed batch was walked by batch_parse already: nothing is copied or
 * walked again. On success *records is the plain records section: inside p when uncompressed,
 * else c->plain, valid until the next call on c.
 */
int records_check(struct records_codec *c, const uint8_t *p, const struct batch_header *h,
                  size_t plain_max, struct slice *records);

/*
 * Writes into c->rebuilt the batch p (header h) with its plain records section `records` (from
 * records_check) encoded as target: the codec bits of attributes set to target, batchLength and
 * CRC computed anew; offsets, epoch, timestamps, producer fields and record count unchanged, and
 * the records byte for byte the same once decompressed. *out is the new batch, valid until the
 * next call on c. ERR_TOO_LARGE when it would exceed LOG_BATCH_BYTES_MAX.
 */
int records_rebuild(struct records_codec *c, const uint8_t *p, const struct batch_header *h,
                    struct slice records, enum batch_codec target, struct slice *out);

#endif
