/*
 * The chronik-bench command line: parsing and validation into struct bench_opts.
 *
 * Pure: it reads argv and writes the struct and an error message, nothing else (no I/O, no
 * librdkafka), so every rule is unit-tested. Every number is checked against its bound in
 * base/limits.h; a topic name must be a valid Kafka topic name, which also makes it safe to
 * print inside JSON without escaping.
 *
 * Ownership: the strings in a parsed struct bench_opts point into argv or into static storage;
 * argv must outlive the struct. Nothing needs freeing.
 */
#ifndef CHRONIK_BENCH_KAFKA_OPTS_H
#define CHRONIK_BENCH_KAFKA_OPTS_H

#include "base/compiler.h"
#include "base/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum bench_mode {
    BENCH_MODE_PRODUCE,
    BENCH_MODE_CONSUME,
    BENCH_MODE_E2E,
};

enum bench_payload {
    BENCH_PAYLOAD_RANDOM,
    BENCH_PAYLOAD_ZEROS,
};

/* One -X key=value pair, passed to librdkafka last so that it wins over every option. */
struct bench_setting {
    char key[BENCH_CLIENT_KEY_BYTES_MAX];
    const char *value; /* points into argv */
};

struct bench_opts {
    enum bench_mode mode;
    bool help;                /* -h/--help: print usage, nothing else is set */
    const char *brokers;      /* --brokers */
    const char *topic;        /* --topic */
    uint64_t messages;        /* --messages; 0 when not given */
    uint64_t duration_ms;     /* --duration in seconds, kept in ms; 0 when not given */
    uint32_t record_bytes;    /* --record-size */
    const char *acks;         /* --acks as librdkafka spells it: "0", "1" or "all" */
    const char *compression;  /* --compression: none, gzip, snappy, lz4, zstd */
    uint32_t partitions;      /* --partitions; 0 when not given */
    int32_t replication;      /* --replication-factor; -1 for the broker's default */
    int64_t linger_ms;        /* --linger-ms; -1 for librdkafka's default */
    int64_t batch_bytes;      /* --batch-size; -1 for librdkafka's default */
    uint64_t rate_per_s;      /* --rate; 0 for as fast as possible */
    uint64_t warmup_ms;       /* --warmup in seconds, kept in ms; 0 when not given */
    const char *group;        /* --group; NULL consumes with assign() */
    uint32_t commit_ms;       /* --commit-interval-ms, group mode */
    uint32_t idle_timeout_ms; /* --timeout-ms: the consumer stops after this long without data */
    enum bench_payload payload;
    bool json;
    const char *client_stats; /* --client-stats FILE; NULL when not given */
    uint32_t settings_count;
    struct bench_setting settings[BENCH_CLIENT_SETTINGS_MAX];
};

/* The usage text printed by --help. Static storage. */
extern const char bench_usage_text[];

/*
 * Parses argv (argv[0] is the program and is skipped): the mode first, then options as
 * "--name value" or "--name=value". Fills defaults for everything not given; in produce and
 * e2e modes without --messages or --duration, sends 1,000,000 messages. Returns 0, or
 * ERR_INVALID with a message for a person in err (err_bytes > 0); opts is then unspecified.
 */
int bench_opts_parse(struct bench_opts *opts, int argc, char *const argv[], char *err,
                     size_t err_bytes);

/* Formats a message for a person into err (err_bytes > 0) and returns ERR_INVALID. */
PRINTF_LIKE(3, 4)
int bench_fail(char *err, size_t err_bytes, const char *fmt, ...);

/* The mode's name as typed on the command line. */
const char *bench_mode_name(enum bench_mode mode);

#endif
