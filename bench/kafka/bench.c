/*
 * chronik-bench: a Kafka producer/consumer benchmark on librdkafka, in the spirit of Kafka's
 * kafka-producer-perf-test and kafka-consumer-perf-test, plus an end-to-end mode.
 *
 * This file owns the process: the command line, signals, the worker threads, the progress
 * line on stderr every second, the summary on stdout (text, or one JSON line with --json) and
 * the exit status: 0 when every message was delivered and everything expected was consumed,
 * 1 when anything failed or fell short, 2 for a bad command line. It must never report a
 * figure it did not measure: a latency with no samples is printed as n/a (null in JSON).
 *
 * Units: MB is 2^20 bytes, as in Kafka's perf tools; bytes count record values only.
 */
#include "bench.h"

#include "base/assert.h"
#include "base/rand.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
};

#define PROGRESS_NS     1000000000ull
#define PROGRESS_NAP_NS 50000000L
#define MB              (1024.0 * 1024.0)

#define HEAP_MMAP_THRESHOLD_BYTES (4 << 20)
#define HEAP_TRIM_THRESHOLD_BYTES (256 << 20)
#define HEAP_TOP_PAD_BYTES        (64 << 20)

/* The run the signal handler asks to stop; set once before any signal is handled. */
static struct bench_run *signal_run;

static void on_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&signal_run->stop_requests, 1);
}

static void install_signals(struct bench_run *run)
{
    signal_run = run;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static bool sends(const struct bench_opts *o)
{
    return o->mode != BENCH_MODE_CONSUME;
}

static bool reads(const struct bench_opts *o)
{
    return o->mode != BENCH_MODE_PRODUCE;
}

static bool workers_done(struct bench_run *run)
{
    const struct bench_opts *o = run->opts;
    return (!sends(o) || atomic_load(&run->producer.done)) &&
           (!reads(o) || atomic_load(&run->consumer.done));
}

static double per_s(uint64_t n, uint64_t ns)
{
    return ns == 0 ? 0.0 : (double)n * 1e9 / (double)ns;
}

struct progress {
    uint64_t acked, acked_bytes, consumed, consumed_bytes;
};

static void progress_line(struct bench_run *run, struct progress *prev, uint64_t since_ns,
                          uint64_t elapsed_ns)
{
    const struct bench_opts *o = run->opts;
    struct bench_producer *p = &run->producer;
    struct bench_consumer *c = &run->consumer;
    struct progress now = {atomic_load(&p->acked), atomic_load(&p->acked_bytes),
                           atomic_load(&c->consumed), atomic_load(&c->consumed_bytes)};
    fprintf(stderr, "[%7.1f s]", (double)elapsed_ns / 1e9);
    if (sends(o)) {
        uint64_t settled = now.acked + atomic_load(&p->failed);
        uint64_t offered = atomic_load(&p->sent) + atomic_load(&p->refused);
        fprintf(stderr, " produce %10.0f msg/s %9.2f MB/s in-flight %llu failed %llu max %.1f ms",
                per_s(now.acked - prev->acked, since_ns),
                per_s(now.acked_bytes - prev->acked_bytes, since_ns) / MB,
                (unsigned long long)(offered > settled ? offered - settled : 0),
                (unsigned long long)atomic_load(&p->failed),
                (double)atomic_exchange(&p->window_max_us, 0) / 1000.0);
    }
    if (sends(o) && reads(o))
        fprintf(stderr, " |");
    if (reads(o))
        fprintf(stderr, " consume %10.0f msg/s %9.2f MB/s lag %llu",
                per_s(now.consumed - prev->consumed, since_ns),
                per_s(now.consumed_bytes - prev->consumed_bytes, since_ns) / MB,
                (unsigned long long)atomic_load(&c->lag));
    fprintf(stderr, "\n");
    *prev = now;
}

/* Prints progress once a second until both workers are done. */
static void watch(struct bench_run *run)
{
    uint64_t start_ns = bench_mono_ns();
    uint64_t last_ns = start_ns;
    struct progress prev = {0};
    while (!workers_done(run)) {
        struct timespec nap = {0, PROGRESS_NAP_NS};
        nanosleep(&nap, NULL);
        uint64_t now_ns = bench_mono_ns();
        if (now_ns - last_ns < PROGRESS_NS || workers_done(run))
            continue;
        progress_line(run, &prev, now_ns - last_ns, now_ns - start_ns);
        last_ns = now_ns;
    }
}

/* e2e: the consumer had to read every message the producer got acknowledged. */
static void judge_e2e(struct bench_run *run)
{
    struct bench_consumer *c = &run->consumer;
    uint64_t acked = atomic_load(&run->producer.acked);
    uint64_t consumed = atomic_load(&c->consumed);
    c->expected = acked;
    if (consumed < acked && !c->fell_short) {
        c->fell_short = true;
        snprintf(c->short_reason, sizeof(c->short_reason),
                 "consumed %llu of the %llu messages delivered", (unsigned long long)consumed,
                 (unsigned long long)acked);
    }
}

static bool run_ok(const struct bench_run *run)
{
    const struct bench_opts *o = run->opts;
    const struct bench_producer *p = &run->producer;
    const struct bench_consumer *c = &run->consumer;
    if (sends(o) && (p->setup_failed || atomic_load(&p->failed) > 0))
        return false;
    if (reads(o) && (c->setup_failed || c->fell_short || c->commit_errors.total > 0))
        return false;
    return true;
}

static void print_latency_text(const char *what, const struct hist *h)
{
    if (h->count == 0) {
        printf("  latency ms (%s): n/a (no samples)\n", what);
        return;
    }
    printf("  latency ms (%s): p50 %.3f  p99 %.3f  p999 %.3f  max %.3f  (%llu samples)\n", what,
           (double)hist_percentile(h, 50.0) / 1000.0, (double)hist_percentile(h, 99.0) / 1000.0,
           (double)hist_percentile(h, 99.9) / 1000.0, (double)h->max / 1000.0,
           (unsigned long long)h->count);
}

static void print_errors_text(const char *what, const struct bench_errors *e)
{
    if (e->total == 0)
        return;
    printf("  %s: %llu:", what, (unsigned long long)e->total);
    uint64_t named = 0;
    for (uint32_t i = 0; i < e->kinds; i++) {
        printf(" %s x%llu;", rd_kafka_err2str(e->codes[i]), (unsigned long long)e->counts[i]);
        named += e->counts[i];
    }
    if (named < e->total)
        printf(" other x%llu;", (unsigned long long)(e->total - named));
    printf("\n");
}

static void print_rate_text(const char *mode, uint64_t n, uint64_t bytes, uint64_t ns)
{
    printf("%s: %llu messages, %llu bytes in %.3f s: %.1f msg/s, %.2f MB/s\n", mode,
           (unsigned long long)n, (unsigned long long)bytes, (double)ns / 1e9, per_s(n, ns),
           per_s(bytes, ns) / MB);
}

static void summary_text(const struct bench_run *run)
{
    const struct bench_opts *o = run->opts;
    const struct bench_producer *p = &run->producer;
    const struct bench_consumer *c = &run->consumer;
    if (sends(o)) {
        print_rate_text("produce", atomic_load(&p->acked), atomic_load(&p->acked_bytes),
                        p->elapsed_ns);
        printf("  failed %llu\n", (unsigned long long)atomic_load(&p->failed));
        if (p->setup_failed)
            printf("  the producer could not start (see the error above)\n");
        print_latency_text("send to delivery report", &p->latency_us);
        if (o->warmup_ms > 0) {
            char what[64];
            snprintf(what, sizeof(what), "records sent after the first %llu s",
                     (unsigned long long)(o->warmup_ms / 1000u));
            print_latency_text(what, &p->steady_us);
        }
        print_errors_text("delivery errors", &p->errors);
    }
    if (reads(o)) {
        print_rate_text("consume", atomic_load(&c->consumed), atomic_load(&c->consumed_bytes),
                        c->elapsed_ns);
        if (o->mode == BENCH_MODE_E2E)
            printf("  duplicates %llu, other runs' or foreign messages %llu\n",
                   (unsigned long long)c->duplicates, (unsigned long long)c->foreign);
        print_latency_text("end to end", &c->latency_us);
        if (o->group != NULL)
            printf("  rebalances %u: first %.1f ms, longest %.1f ms\n", c->rebalances,
                   (double)c->rebalance_first_us / 1000.0, (double)c->rebalance_max_us / 1000.0);
        print_errors_text("consume errors", &c->errors);
        print_errors_text("commit errors", &c->commit_errors);
        if (c->fell_short)
            printf("  fell short: %s\n", c->short_reason);
    }
    printf("result: %s\n", run_ok(run) ? "ok" : "FAILED");
}

static void json_latency(const char *key, const struct hist *h)
{
    if (h->count == 0) {
        printf("\"%s\":null", key);
        return;
    }
    printf("\"%s\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"samples\":%llu}", key,
           (double)hist_percentile(h, 50.0) / 1000.0, (double)hist_percentile(h, 99.0) / 1000.0,
           (double)hist_percentile(h, 99.9) / 1000.0, (double)h->max / 1000.0,
           (unsigned long long)h->count);
}

static void json_rate(uint64_t n, uint64_t bytes, uint64_t ns)
{
    printf("\"messages\":%llu,\"bytes\":%llu,\"elapsed_s\":%.3f,\"msg_per_s\":%.1f,"
           "\"mb_per_s\":%.2f,",
           (unsigned long long)n, (unsigned long long)bytes, (double)ns / 1e9, per_s(n, ns),
           per_s(bytes, ns) / MB);
}

static void summary_json(const struct bench_run *run)
{
    const struct bench_opts *o = run->opts;
    const struct bench_producer *p = &run->producer;
    const struct bench_consumer *c = &run->consumer;
    /* Every string printed is a mode name, a validated topic name or a fixed option value,
     * none of which needs JSON escaping. */
    printf("{\"mode\":\"%s\",\"topic\":\"%s\",\"partitions\":%d,\"record_size\":%u,"
           "\"acks\":\"%s\",\"compression\":\"%s\"",
           bench_mode_name(o->mode), o->topic, (int)run->partition_count, o->record_bytes, o->acks,
           o->compression);
    if (sends(o)) {
        printf(",\"produce\":{");
        json_rate(atomic_load(&p->acked), atomic_load(&p->acked_bytes), p->elapsed_ns);
        printf("\"failed\":%llu,\"setup_failed\":%s,", (unsigned long long)atomic_load(&p->failed),
               p->setup_failed ? "true" : "false");
        json_latency("latency_ms", &p->latency_us);
        if (o->warmup_ms > 0) {
            printf(",\"warmup_s\":%llu,", (unsigned long long)(o->warmup_ms / 1000u));
            json_latency("steady_latency_ms", &p->steady_us);
        }
        printf("}");
    }
    if (reads(o)) {
        printf(",\"consume\":{");
        json_rate(atomic_load(&c->consumed), atomic_load(&c->consumed_bytes), c->elapsed_ns);
        if (c->expected > 0)
            printf("\"expected\":%llu,", (unsigned long long)c->expected);
        else
            printf("\"expected\":null,");
        printf("\"short\":%s,\"setup_failed\":%s,\"duplicates\":%llu,\"errors\":%llu,"
               "\"commit_errors\":%llu,",
               c->fell_short ? "true" : "false", c->setup_failed ? "true" : "false",
               (unsigned long long)c->duplicates, (unsigned long long)c->errors.total,
               (unsigned long long)c->commit_errors.total);
        printf("\"rebalances\":%u,\"rebalance_first_ms\":%.1f,\"rebalance_max_ms\":%.1f,",
               c->rebalances, (double)c->rebalance_first_us / 1000.0,
               (double)c->rebalance_max_us / 1000.0);
        json_latency("latency_ms", &c->latency_us);
        printf("}");
    }
    printf(",\"ok\":%s}\n", run_ok(run) ? "true" : "false");
}

/* librdkafka builds each produce request in buffers of its broker thread, which glibc serves
 * from a thread arena: with the defaults that arena grows a little at a time (an mprotect
 * call per step, 29,303 for 2,000,000 records of 1 KiB) and gives memory back between
 * requests (madvise), so the next request faults its pages in afresh. At full speed that was
 * 6-7 s of the client's system time per 8 GB and held the broker to 490-585 MB/s on two
 * vCPUs. Keeping the heap (large thresholds, a large pad) cut the client's system time to
 * about 3 s and raised full speed to 701-743 MB/s in the same conditions. The memory kept is
 * bounded by what librdkafka has queued, as before; it is only not returned in between. */
static void keep_heap(void)
{
    mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD_BYTES);
    mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD_BYTES);
    mallopt(M_TOP_PAD, HEAP_TOP_PAD_BYTES);
}

/* Starts the workers the mode needs (in e2e the consumer first, as the producer waits for it),
 * shows progress and joins them. When a thread cannot start, the other is told to stop. */
static int run_workers(struct bench_run *run)
{
    const struct bench_opts *o = run->opts;
    pthread_t producer, consumer;
    bool producer_started = false, consumer_started = false;
    int rc = 0;
    if (reads(o)) {
        rc = pthread_create(&consumer, NULL, bench_consume_main, run);
        if (rc != 0)
            goto out;
        consumer_started = true;
    }
    if (sends(o)) {
        rc = pthread_create(&producer, NULL, bench_produce_main, run);
        if (rc != 0)
            goto out;
        producer_started = true;
    }
    watch(run);
out:
    if (rc != 0) {
        fprintf(stderr, "chronik-bench: cannot start a thread: %s\n", strerror(rc));
        atomic_fetch_add(&run->stop_requests, 2);
    }
    if (producer_started)
        pthread_join(producer, NULL);
    if (consumer_started)
        pthread_join(consumer, NULL);
    return -rc;
}

int main(int argc, char **argv)
{
    static struct bench_opts opts;
    static struct bench_run run;
    char err[BENCH_ERROR_BYTES_MAX];
    if (bench_opts_parse(&opts, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "chronik-bench: %s\n", err);
        return EXIT_USAGE;
    }
    if (opts.help) {
        fputs(bench_usage_text, stdout);
        return EXIT_SUCCESS;
    }
    keep_heap();
    if (bench_run_init(&run, &opts, err, sizeof(err)) < 0) {
        fprintf(stderr, "chronik-bench: %s\n", err);
        bench_run_deinit(&run);
        return EXIT_FAILED;
    }
    struct rng rng;
    rng_seed(&rng, bench_wall_ns() ^ ((uint64_t)getpid() << 32));
    run.seed = rng_next(&rng);
    run.run_id = (uint32_t)rng_next(&rng);
    install_signals(&run);
    int status = EXIT_FAILED;
    if (bench_topic_prepare(&run, err, sizeof(err)) < 0) {
        fprintf(stderr, "chronik-bench: %s\n", err);
        goto out;
    }
    fprintf(stderr, "chronik-bench: %s, topic %s (%d partitions) at %s, run id %08x\n",
            bench_mode_name(opts.mode), opts.topic, (int)run.partition_count, opts.brokers,
            run.run_id);
    if (run_workers(&run) < 0)
        goto out;
    if (opts.mode == BENCH_MODE_E2E)
        judge_e2e(&run);
    if (opts.json)
        summary_json(&run);
    else
        summary_text(&run);
    status = run_ok(&run) ? EXIT_SUCCESS : EXIT_FAILED;
out:
    bench_run_deinit(&run);
    return status;
}
