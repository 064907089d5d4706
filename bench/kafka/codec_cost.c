/*
 * chronik-codec-cost: what the produce path's codec work costs the broker per GB, measured in
 * process CPU time (so a busy machine changes the figures little). For each codec it times, on
 * batches of 1 KiB records about 1 MiB long (librdkafka's default batch size):
 *   check    records_check of a batch of that codec (decompress and walk every record; the
 *            uncompressed row is batch_parse's walk alone, which produce always did);
 *   fresh    the same with a codec state created per batch, as before the state was reused;
 *   rebuild  records_rebuild of an uncompressed batch into that codec (compression.type
 *            recompression of an uncompressed producer's batches).
 * Figures are CPU seconds per GB of record bytes (uncompressed) and the MB/s one core reaches.
 * Record values are words from a small vocabulary, which compress about as log lines do.
 *
 * Usage: chronik-codec-cost [GB per figure, default 1]
 */
#include "base/buf.h"
#include "base/error.h"
#include "base/limits.h"
#include "base/rand.h"
#include "log/batch.h"
#include "log/compress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD_BYTES  1024u
#define BATCH_RECORDS 1000u

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void build_plain(struct buf *out)
{
    static const char *const words[] = {"chronik", "batch", "record", "offset", "GET",  "/api/v1",
                                        "200",     "user",  "id=",    "ms",     "INFO", "WARN",
                                        "session", "topic", "lz4",    "zstd"};
    struct rng rng;
    rng_seed(&rng, 42);
    static uint8_t values[BATCH_RECORDS][RECORD_BYTES];
    static struct batch_record recs[BATCH_RECORDS];
    for (size_t i = 0; i < BATCH_RECORDS; i++) {
        size_t n = 0;
        while (n < RECORD_BYTES) {
            const char *w = words[rng_below(&rng, 16)];
            char num[24];
            int k = snprintf(num, sizeof(num), " %s%u", w, (unsigned)rng_below(&rng, 1000));
            for (int j = 0; j < k && n < RECORD_BYTES; j++)
                values[i][n++] = (uint8_t)num[j];
        }
        recs[i] = (struct batch_record){.value = slice_make(values[i], RECORD_BYTES),
                                        .key = slice_make(NULL, 0),
                                        .timestamp_ms = 1700000000000 + (int64_t)i};
    }
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    if (batch_build(out, &opts, recs, BATCH_RECORDS) != 0)
        abort();
}

static void report(const char *what, const char *codec, double cpu, double bytes, size_t packed)
{
    double gb = bytes / 1e9;
    printf("%-8s %-13s %8.3f s/GB %9.0f MB/s   batch %7zu bytes\n", what, codec, cpu / gb,
           bytes / (1024.0 * 1024.0) / cpu, packed);
}

int main(int argc, char **argv)
{
    static const char *const names[] = {"uncompressed", "gzip", "snappy", "lz4", "zstd"};
    double gb = argc > 1 ? atof(argv[1]) : 1.0;
    struct buf plain, packed, copy;
    buf_init(&plain);
    buf_init(&packed);
    buf_init(&copy);
    build_plain(&plain);
    struct batch_header ph;
    if (batch_parse(plain.data, plain.len, &ph) != 0)
        abort();
    struct slice records =
        slice_make(plain.data + LOG_BATCH_HEADER_BYTES, plain.len - LOG_BATCH_HEADER_BYTES);
    size_t rounds = (size_t)(gb * 1e9 / (double)records.len) + 1;
    double bytes = (double)rounds * (double)records.len;
    struct records_codec c;
    records_codec_init(&c);

    for (int codec = 0; codec <= BATCH_CODEC_ZSTD; codec++) {
        struct slice out;
        if (records_rebuild(&c, plain.data, &ph, records, (enum batch_codec)codec, &out) != 0)
            abort();
        buf_reset(&packed);
        buf_append(&packed, out.ptr, out.len);
        struct batch_header h;
        if (batch_parse(packed.data, packed.len, &h) != 0)
            abort();

        double t0 = cpu_s();
        for (size_t i = 0; i < rounds; i++) {
            struct slice got;
            if (batch_parse(packed.data, packed.len, &h) != 0 ||
                records_check(&c, packed.data, &h, LOG_BATCH_PLAIN_BYTES_MAX, &got) != 0)
                abort();
        }
        report("check", names[codec], cpu_s() - t0, bytes, packed.len);

        if (codec != BATCH_CODEC_NONE) {
            t0 = cpu_s();
            for (size_t i = 0; i < rounds; i++) {
                struct records_codec fresh;
                records_codec_init(&fresh);
                struct slice got;
                if (records_check(&fresh, packed.data, &h, LOG_BATCH_PLAIN_BYTES_MAX, &got) != 0)
                    abort();
                records_codec_deinit(&fresh);
            }
            report("fresh", names[codec], cpu_s() - t0, bytes, packed.len);
        }

        t0 = cpu_s();
        for (size_t i = 0; i < rounds; i++) {
            if (records_rebuild(&c, plain.data, &ph, records, (enum batch_codec)codec, &out) != 0)
                abort();
        }
        report("rebuild", names[codec], cpu_s() - t0, bytes, out.len);
    }
    records_codec_deinit(&c);
    buf_deinit(&plain);
    buf_deinit(&packed);
    buf_deinit(&copy);
    return 0;
}
