/*
 * chronik-bench's shared run state: what the producer and consumer threads publish and what
 * the main thread reads for progress and the summary.
 *
 * Threads: the main thread owns struct bench_run and reads only the _Atomic fields while the
 * workers run. A worker owns the plain fields of its own struct (its histogram, its error
 * counts, its results) until it sets done (release); the main thread reads them only after
 * joining the worker. The consumer thread also reads producer.sent/acked/done, and the
 * producer thread waits on consumer.ready in e2e mode. Nothing else is shared.
 *
 * Ownership: start_low and start_high are allocated by bench_topic_prepare() and freed by
 * bench_run_deinit(); opts points to the caller's parsed options.
 */
#ifndef CHRONIK_BENCH_KAFKA_BENCH_H
#define CHRONIK_BENCH_KAFKA_BENCH_H

#include "hist.h"
#include "opts.h"

#include <librdkafka/rdkafka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Errors counted by librdkafka code, the first BENCH_ERROR_KINDS_MAX kinds by name. */
struct bench_errors {
    int codes[BENCH_ERROR_KINDS_MAX];
    uint64_t counts[BENCH_ERROR_KINDS_MAX];
    uint32_t kinds;
    uint64_t total;
};

struct bench_producer {
    _Atomic uint64_t sent;          /* accepted by librdkafka */
    _Atomic uint64_t acked;         /* delivered without error */
    _Atomic uint64_t acked_bytes;   /* value bytes of the delivered messages */
    _Atomic uint64_t failed;        /* refused, failed delivery, or never reported */
    _Atomic uint64_t refused;       /* of failed: never accepted by librdkafka */
    _Atomic uint64_t window_max_us; /* highest latency since the last progress line */
    _Atomic bool done;              /* the fields below are final */
    bool setup_failed;
    uint64_t elapsed_ns;     /* first send to last delivery report */
    struct hist latency_us;  /* send to delivery report */
    uint64_t steady_from_ns; /* --warmup: records sent from then on go to steady_us as well */
    struct hist steady_us;   /* latency_us of those records */
    struct bench_errors errors;
};

struct bench_consumer {
    _Atomic uint64_t consumed;       /* counted messages (e2e: this run's, each once) */
    _Atomic uint64_t consumed_bytes; /* their value bytes */
    _Atomic uint64_t lag;            /* high watermark - position over assigned partitions */
    _Atomic bool ready;              /* positioned; an e2e producer may start */
    _Atomic bool done;               /* the fields below are final */
    bool setup_failed;
    bool fell_short; /* consumed less than it had to */
    char short_reason[BENCH_ERROR_BYTES_MAX];
    uint64_t expected;                 /* what it had to consume; 0: up to the partitions' end */
    uint64_t elapsed_ns;               /* ready to the last counted message */
    uint64_t duplicates;               /* e2e: messages of this run seen again */
    uint64_t foreign;                  /* e2e: messages of other runs, not counted */
    struct bench_errors commit_errors; /* group mode */
    uint32_t rebalances;               /* assignments received, group mode */
    uint64_t rebalance_first_us;       /* subscribe to the first assignment */
    uint64_t rebalance_max_us;         /* longest revoke (or subscribe) to assignment */
    struct hist latency_us;            /* send time in the payload to consumption */
    struct bench_errors errors;
};

struct bench_run {
    const struct bench_opts *opts;
    uint32_t run_id;         /* random; e2e counts only values carrying it */
    uint64_t seed;           /* of the random payload */
    int32_t partition_count; /* of the topic, after preparation */
    int64_t *start_low;      /* per partition: low and high watermarks before the run */
    int64_t *start_high;
    _Atomic int stop_requests; /* SIGINT/SIGTERM: 1 finishes early, 2 abandons waiting */
    struct bench_producer producer;
    struct bench_consumer consumer;
    /* --client-stats: every client's statistics, each JSON document written whole on one line
     * (the producer's and the consumer's callbacks run on their own threads). */
    FILE *client_stats;
    pthread_mutex_t client_stats_lock;
};

/* Zeroes run and sets its empty histograms; opts must outlive run. Opens --client-stats's file:
 * returns 0, or a negative code with a message in err. */
int bench_run_init(struct bench_run *run, const struct bench_opts *opts, char *err,
                   size_t err_bytes);
void bench_run_deinit(struct bench_run *run);

/* Counts one error of code; returns true when it is the first of its kind, so that the caller
 * prints it once. */
bool bench_errors_add(struct bench_errors *e, int code);

/*
 * A librdkafka configuration with bootstrap.servers, client.id, opaque = run and, with
 * --client-stats, a statistics callback writing to run->client_stats. The caller
 * sets its own keys with bench_conf_set() and then calls bench_conf_finish(), which applies
 * the -X settings last so that they win. Each returns 0 or ERR_INVALID with err filled; on
 * error the caller still owns conf and destroys it.
 */
rd_kafka_conf_t *bench_conf_new(struct bench_run *run);
int bench_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                   size_t err_bytes);
int bench_conf_finish(rd_kafka_conf_t *conf, const struct bench_opts *opts, char *err,
                      size_t err_bytes);

/*
 * Looks the topic up, creates it when it is missing (not in consume mode) with --partitions
 * (or the broker's default) and --replication-factor, waits until every partition has a
 * leader, checks it has at least --partitions partitions, and records each partition's
 * watermarks in run. Returns 0, or a negative code with a message in err.
 */
int bench_topic_prepare(struct bench_run *run, char *err, size_t err_bytes);

/* The worker threads' bodies (pthread start routines); arg is the struct bench_run. */
void *bench_produce_main(void *arg);
void *bench_consume_main(void *arg);

static inline uint64_t bench_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Nanoseconds since the epoch: the send time a value carries to another process. */
static inline uint64_t bench_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
