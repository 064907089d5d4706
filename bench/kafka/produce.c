/*
 * The producer thread: sends values cut from the payload pool as fast as allowed (or at
 * --rate), counts every delivery report, and measures send-to-delivery latency.
 *
 * Invariants: every message librdkafka accepted ends up counted exactly once as acked or
 * failed, including the ones still undelivered when the user abandons the run (second signal),
 * so sent + refused == acked + failed when the thread finishes. Delivery reports run on this
 * thread only (from rd_kafka_poll/flush), so the histogram and error counts have one writer.
 *
 * It never hides a failure: each new kind of delivery error is printed when first seen, and
 * all of them are counted for the summary.
 */
#include "bench.h"
#include "payload.h"

#include "base/assert.h"
#include "base/error.h"

#include <stdio.h>
#include <string.h>

#define QUEUE_FULL_WAIT_MS 10
#define PACE_POLL_MS_MAX   100
#define PACE_SLEEP_MIN_NS  1000000u
#define FLUSH_SLICE_MS     100
#define READY_WAIT_NS      10000000L

STATIC_ASSERT(sizeof(void *) >= sizeof(uint64_t), "the send time travels as the message opaque");

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct bench_run *run = opaque;
    struct bench_producer *p = &run->producer;
    ASSERT(run != NULL && m != NULL);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        atomic_fetch_add(&p->failed, 1);
        if (bench_errors_add(&p->errors, m->err))
            fprintf(stderr, "chronik-bench: delivery failed: %s\n", rd_kafka_err2str(m->err));
        return;
    }
    uint64_t sent_ns = (uint64_t)(uintptr_t)m->_private;
    uint64_t now_ns = bench_mono_ns();
    uint64_t us = now_ns > sent_ns ? (now_ns - sent_ns) / 1000u : 0;
    hist_record(&p->latency_us, us);
    if (run->opts->warmup_ms > 0 && sent_ns >= p->steady_from_ns)
        hist_record(&p->steady_us, us);
    uint64_t seen = atomic_load(&p->window_max_us);
    while (us > seen && !atomic_compare_exchange_weak(&p->window_max_us, &seen, us))
        ;
    atomic_fetch_add(&p->acked_bytes, m->len);
    atomic_fetch_add(&p->acked, 1);
}

static int producer_new(struct bench_run *run, rd_kafka_t **out, char *err, size_t err_bytes)
{
    const struct bench_opts *o = run->opts;
    char num[32];
    char why[BENCH_ERROR_BYTES_MAX];
    rd_kafka_conf_t *conf = bench_conf_new(run);
    int rc = bench_conf_set(conf, "acks", o->acks, err, err_bytes);
    if (rc == 0)
        rc = bench_conf_set(conf, "compression.codec", o->compression, err, err_bytes);
    snprintf(num, sizeof(num), "%u", BENCH_DELIVERY_MS_DEFAULT);
    if (rc == 0)
        rc = bench_conf_set(conf, "message.timeout.ms", num, err, err_bytes);
    snprintf(num, sizeof(num), "%lld", (long long)o->linger_ms);
    if (rc == 0 && o->linger_ms >= 0)
        rc = bench_conf_set(conf, "linger.ms", num, err, err_bytes);
    snprintf(num, sizeof(num), "%lld", (long long)o->batch_bytes);
    if (rc == 0 && o->batch_bytes >= 0)
        rc = bench_conf_set(conf, "batch.size", num, err, err_bytes);
    if (rc == 0)
        rc = bench_conf_finish(conf, o, err, err_bytes);
    if (rc < 0)
        goto out;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    *out = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (*out == NULL) {
        snprintf(err, err_bytes, "cannot create the producer: %.400s", why);
        rc = ERR_INVALID;
        goto out;
    }
    conf = NULL; /* rd_kafka_new() took it */
out:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    return rc;
}

/* Waits until message seq is due at --rate, or less than PACE_SLEEP_MIN_NS before, serving
 * delivery reports meanwhile. */
static void pace(struct bench_run *run, rd_kafka_t *rk, uint64_t start_ns, uint64_t seq)
{
    uint64_t rate = run->opts->rate_per_s;
    ASSERT(rate > 0 && rate <= BENCH_RATE_MAX);
    uint64_t due_ns = start_ns + (uint64_t)((unsigned __int128)seq * 1000000000u / rate);
    for (;;) {
        uint64_t now_ns = bench_mono_ns();
        if (now_ns >= due_ns || atomic_load(&run->stop_requests) > 0)
            return;
        /* Delivery reports are timed when served, so waiting is spent serving them. A message
         * due in under PACE_SLEEP_MIN_NS goes now (kafka-producer-perf-test's throttler sleeps
         * 2 ms or more at a time): sleeping before each one, 5 us apart at 200,000 msg/s, took
         * half as much CPU again and six times the context switches from the broker. */
        uint64_t wait_ns = due_ns - now_ns;
        if (wait_ns < PACE_SLEEP_MIN_NS)
            return;
        rd_kafka_poll(rk, (int)MIN(wait_ns / 1000000u, (uint64_t)PACE_POLL_MS_MAX));
    }
}

/* Hands one value to librdkafka, waiting while its queue is full. A value it refuses, or one
 * still waiting when the user abandons the run, is counted as refused and failed. */
static void send_one(struct bench_run *run, rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                     const uint8_t *value)
{
    struct bench_producer *p = &run->producer;
    uint64_t sent_ns = bench_mono_ns();
    for (;;) {
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)value,
                             run->opts->record_bytes, NULL, 0, (void *)(uintptr_t)sent_ns) == 0) {
            atomic_fetch_add(&p->sent, 1);
            return;
        }
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || atomic_load(&run->stop_requests) > 1) {
            atomic_fetch_add(&p->refused, 1);
            atomic_fetch_add(&p->failed, 1);
            if (bench_errors_add(&p->errors, e))
                fprintf(stderr, "chronik-bench: send refused: %s\n", rd_kafka_err2str(e));
            return;
        }
        rd_kafka_poll(rk, QUEUE_FULL_WAIT_MS);
    }
}

/* Waits for delivery reports of everything sent. A second signal purges what is left, and
 * what still has no report then is counted as failed. */
static void drain(struct bench_run *run, rd_kafka_t *rk)
{
    struct bench_producer *p = &run->producer;
    while (rd_kafka_outq_len(rk) > 0 && atomic_load(&run->stop_requests) < 2)
        rd_kafka_flush(rk, FLUSH_SLICE_MS);
    if (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(rk, FLUSH_SLICE_MS);
    }
    uint64_t reported = atomic_load(&p->acked) + atomic_load(&p->failed) - atomic_load(&p->refused);
    uint64_t sent = atomic_load(&p->sent);
    ASSERT(reported <= sent);
    if (reported < sent) {
        fprintf(stderr, "chronik-bench: %llu messages without a delivery report\n",
                (unsigned long long)(sent - reported));
        atomic_fetch_add(&p->failed, sent - reported);
    }
}

/* In e2e mode the consumer must be positioned before the first send, or it could miss it. */
static int wait_consumer(struct bench_run *run, char *err, size_t err_bytes)
{
    uint64_t deadline_ns = bench_mono_ns() + BENCH_SETUP_MS_MAX * 1000000ull;
    while (!atomic_load(&run->consumer.ready)) {
        if (atomic_load(&run->consumer.done) || atomic_load(&run->stop_requests) > 0) {
            snprintf(err, err_bytes, "the consumer stopped before it was ready");
            return ERR_STATE;
        }
        if (bench_mono_ns() >= deadline_ns) {
            snprintf(err, err_bytes, "the consumer got no partitions within %u ms",
                     BENCH_SETUP_MS_MAX);
            return ERR_STATE;
        }
        struct timespec ts = {0, READY_WAIT_NS};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void produce_loop(struct bench_run *run, rd_kafka_t *rk, rd_kafka_topic_t *rkt,
                         struct payload_pool *pool)
{
    const struct bench_opts *o = run->opts;
    uint64_t start_ns = bench_mono_ns();
    /* Delivery reports are served on this thread (rd_kafka_poll below), so on_delivery sees it. */
    run->producer.steady_from_ns = start_ns + o->warmup_ms * 1000000u;
    for (uint64_t seq = 0;; seq++) {
        if (o->messages > 0 && seq >= o->messages)
            break;
        if (o->rate_per_s > 0)
            pace(run, rk, start_ns, seq);
        if (atomic_load(&run->stop_requests) > 0)
            break;
        if (o->duration_ms > 0 && bench_mono_ns() - start_ns >= o->duration_ms * 1000000u)
            break;
        struct payload_header h = {.run_id = run->run_id, .seq = seq};
        h.send_wall_ns = bench_wall_ns();
        send_one(run, rk, rkt, payload_pool_next(pool, &h));
        if (seq % BENCH_POLL_EVERY_MESSAGES == 0)
            rd_kafka_poll(rk, 0);
    }
    drain(run, rk);
    run->producer.elapsed_ns = bench_mono_ns() - start_ns;
}

void *bench_produce_main(void *arg)
{
    struct bench_run *run = arg;
    struct bench_producer *p = &run->producer;
    ASSERT(run != NULL && run->opts->mode != BENCH_MODE_CONSUME);
    char err[BENCH_ERROR_BYTES_MAX] = "";
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;
    struct rng rng;
    struct payload_pool pool;
    rng_seed(&rng, run->seed);
    payload_pool_init(&pool, run->opts->payload, run->opts->record_bytes, &rng);
    int rc = producer_new(run, &rk, err, sizeof(err));
    if (rc == 0) {
        rkt = rd_kafka_topic_new(rk, run->opts->topic, NULL);
        ASSERT(rkt != NULL); /* the name was validated and no topic configuration is given */
    }
    if (rc == 0 && run->opts->mode == BENCH_MODE_E2E)
        rc = wait_consumer(run, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "chronik-bench: producer: %s\n", err);
        p->setup_failed = true;
        goto out;
    }
    produce_loop(run, rk, rkt, &pool);
out:
    if (rkt != NULL)
        rd_kafka_topic_destroy(rkt);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    payload_pool_deinit(&pool);
    atomic_store(&p->done, true);
    return NULL;
}
