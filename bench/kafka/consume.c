/*
 * The consumer thread: reads the topic with assign() from fixed offsets, or through a
 * consumer group (--group) with periodic commits, and counts what it reads.
 *
 * consume mode reads from the beginning of each partition (or, in a group, from the committed
 * offsets) and, without --messages or --duration, until every partition reached the high
 * watermark it had when the run started (partition EOF at or past it). e2e mode starts at
 * those high watermarks, also in a group, before the producer sends anything, and counts only
 * values that carry this run's id, each sequence number once (a bitmap), so the count it
 * reports is of distinct messages of this run and duplicates are reported apart.
 *
 * Values come from the network: their header is validated (payload.h) and a sequence number
 * outside the bounds is not counted. Partition numbers from librdkafka are checked against
 * the partition count seen at start, since a topic may grow during a run.
 *
 * Commit results (group mode) go to a queue of this thread's own, so each is counted exactly
 * once, whether the commit was periodic, on revocation or final.
 */
#include "bench.h"
#include "payload.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS         100
#define TICK_NS         1000000000ull
#define SEEN_BYTES_MIN  (64u * KIB)
#define COMMIT_DRAIN_MS 5000u
#define CONSUME_BATCH   1024 /* messages taken from librdkafka per call */

enum end_reason {
    END_NONE,
    END_STOPPED,  /* a signal */
    END_DONE,     /* --messages reached, every partition at its end, or e2e all consumed */
    END_DURATION, /* --duration elapsed */
    END_IDLE,     /* --timeout-ms without a message */
    END_PRODUCER, /* e2e: the producer could not start */
};

struct consume_state {
    struct bench_run *run;
    rd_kafka_t *rk;
    rd_kafka_queue_t *consumer_q; /* messages, errors and callbacks, read in batches */
    rd_kafka_queue_t *commit_q;   /* where asynchronous commit results arrive (group mode) */
    bool cooperative;
    uint8_t *assigned; /* per partition of the start count */
    uint8_t *at_end;   /* per partition: EOF seen at or past its start high watermark */
    uint32_t assigned_count;
    uint32_t at_end_count; /* of the assigned ones */
    uint8_t *seen;         /* e2e: a bit per sequence number counted */
    size_t seen_bytes;
    uint32_t commits_pending;
    uint64_t start_ns;
    uint64_t ready_ns;
    uint64_t last_msg_ns;
    uint64_t rebalance_start_ns;
    bool producer_seen_done;
};

static bool partition_known(const struct consume_state *s, int32_t p)
{
    return p >= 0 && p < s->run->partition_count;
}

static void track(struct consume_state *s, int32_t p, bool assigned)
{
    if (!partition_known(s, p) || (s->assigned[p] != 0) == assigned)
        return;
    s->assigned[p] = assigned;
    if (assigned) {
        s->assigned_count++;
        s->at_end_count += s->at_end[p];
    } else {
        ASSERT(s->assigned_count > 0);
        s->assigned_count--;
        s->at_end_count -= s->at_end[p];
    }
}

static void mark_eof(struct consume_state *s, int32_t p, int64_t offset)
{
    if (!partition_known(s, p) || s->at_end[p] || offset < s->run->start_high[p])
        return;
    s->at_end[p] = 1;
    if (s->assigned[p])
        s->at_end_count++;
    ASSERT(s->at_end_count <= s->assigned_count);
}

static void count_commit_error(struct consume_state *s, rd_kafka_resp_err_t err)
{
    /* No offset to commit (nothing consumed since the last commit) is not a failure. */
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    if (bench_errors_add(&s->run->consumer.commit_errors, err))
        fprintf(stderr, "chronik-bench: commit failed: %s\n", rd_kafka_err2str(err));
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    struct consume_state *s = opaque;
    ASSERT(s != NULL && s->run != NULL);
    if (s->commits_pending > 0)
        s->commits_pending--;
    /* A partition may fail on its own while the request as a whole succeeds. */
    for (int i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && offsets != NULL && i < offsets->cnt; i++)
        err = offsets->elems[i].err;
    count_commit_error(s, err);
}

/* Commits the consumed positions. A synchronous commit serves its result before returning;
 * an asynchronous one delivers it to commit_q. */
static void commit(struct consume_state *s, bool sync)
{
    uint32_t before = s->commits_pending;
    s->commits_pending++;
    rd_kafka_resp_err_t err =
        rd_kafka_commit_queue(s->rk, NULL, sync ? NULL : s->commit_q, on_commit, s);
    /* A commit that failed to start, or a synchronous one whose callback did not run, will
     * not report: count it here. */
    if ((sync || err != RD_KAFKA_RESP_ERR_NO_ERROR) && s->commits_pending > before) {
        s->commits_pending = before;
        count_commit_error(s, err);
    }
}

static void rebalance_assigned(struct consume_state *s, rd_kafka_topic_partition_list_t *parts)
{
    struct bench_run *run = s->run;
    struct bench_consumer *c = &run->consumer;
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        /* e2e reads only this run's messages, which all lie past the start watermarks. */
        if (run->opts->mode == BENCH_MODE_E2E && partition_known(s, p))
            parts->elems[i].offset = run->start_high[p];
    }
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (s->cooperative)
        error = rd_kafka_incremental_assign(s->rk, parts);
    else
        err = rd_kafka_assign(s->rk, parts);
    if (error != NULL) {
        err = rd_kafka_error_code(error);
        rd_kafka_error_destroy(error);
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (bench_errors_add(&c->errors, err))
            fprintf(stderr, "chronik-bench: assign failed: %s\n", rd_kafka_err2str(err));
        return;
    }
    for (int i = 0; i < parts->cnt; i++)
        track(s, parts->elems[i].partition, true);
    uint64_t now_ns = bench_mono_ns();
    uint64_t took_us = (now_ns - s->rebalance_start_ns) / 1000u;
    if (c->rebalances == 0)
        c->rebalance_first_us = took_us;
    c->rebalances++;
    c->rebalance_max_us = MAX(c->rebalance_max_us, took_us);
    fprintf(stderr, "chronik-bench: rebalance: %d partitions assigned after %.1f ms\n", parts->cnt,
            (double)took_us / 1000.0);
    if (!atomic_load(&c->ready)) {
        s->ready_ns = now_ns;
        s->last_msg_ns = now_ns;
        atomic_store(&c->ready, true);
    }
}

static void rebalance_revoked(struct consume_state *s, rd_kafka_topic_partition_list_t *parts)
{
    /* The next owner resumes where this member stopped. */
    commit(s, true);
    for (int i = 0; i < parts->cnt; i++)
        track(s, parts->elems[i].partition, false);
    if (s->cooperative) {
        rd_kafka_error_t *error = rd_kafka_incremental_unassign(s->rk, parts);
        if (error != NULL)
            rd_kafka_error_destroy(error);
    } else {
        rd_kafka_assign(s->rk, NULL);
    }
    s->rebalance_start_ns = bench_mono_ns();
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct consume_state *s = opaque;
    ASSERT(s->rk == rk || s->rk == NULL);
    s->rk = rk;
    s->cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rebalance_assigned(s, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        rebalance_revoked(s, parts);
    } else {
        if (bench_errors_add(&s->run->consumer.errors, err))
            fprintf(stderr, "chronik-bench: rebalance failed: %s\n", rd_kafka_err2str(err));
        for (int32_t p = 0; p < s->run->partition_count; p++)
            track(s, p, false);
        rd_kafka_assign(rk, NULL);
    }
}

/* Sets the bit of seq; returns true when it was set already. */
static bool seen_before(struct consume_state *s, uint64_t seq)
{
    ASSERT(seq < BENCH_MESSAGES_MAX);
    size_t byte = (size_t)(seq / 8u);
    if (byte >= s->seen_bytes) {
        size_t grown = MAX(MAX(s->seen_bytes * 2u, byte + 1u), (size_t)SEEN_BYTES_MIN);
        s->seen = xrealloc(s->seen, grown);
        memset(s->seen + s->seen_bytes, 0, grown - s->seen_bytes);
        s->seen_bytes = grown;
    }
    uint8_t bit = (uint8_t)(1u << (seq % 8u));
    bool before = (s->seen[byte] & bit) != 0;
    s->seen[byte] |= bit;
    return before;
}

/* Whether the message counts: in e2e mode only this run's, each once. */
static bool counts(struct consume_state *s, const struct payload_header *h, bool has_header)
{
    struct bench_consumer *c = &s->run->consumer;
    if (s->run->opts->mode != BENCH_MODE_E2E)
        return true;
    if (!has_header || h->run_id != s->run->run_id || h->seq >= BENCH_MESSAGES_MAX) {
        c->foreign++;
        return false;
    }
    if (seen_before(s, h->seq)) {
        c->duplicates++;
        return false;
    }
    return true;
}

static void on_message(struct consume_state *s, const rd_kafka_message_t *m, uint64_t now_ns)
{
    struct bench_consumer *c = &s->run->consumer;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        mark_eof(s, m->partition, m->offset);
        return;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (bench_errors_add(&c->errors, m->err))
            fprintf(stderr, "chronik-bench: consume error: %s\n", rd_kafka_message_errstr(m));
        return;
    }
    struct payload_header h;
    bool has_header = payload_header_read(m->payload, m->len, &h) == 0;
    if (!counts(s, &h, has_header))
        return;
    if (has_header) {
        uint64_t wall_ns = bench_wall_ns();
        /* Clocks of two hosts may disagree; a value from the future is counted as 0. */
        hist_record(&c->latency_us,
                    wall_ns > h.send_wall_ns ? (wall_ns - h.send_wall_ns) / 1000u : 0);
    }
    s->last_msg_ns = now_ns;
    atomic_fetch_add(&c->consumed_bytes, m->len);
    atomic_fetch_add(&c->consumed, 1);
}

/* Sums high watermark - position over the assigned partitions, from librdkafka's cache. */
static void update_lag(struct consume_state *s)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(s->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_position(s->rk, parts);
    uint64_t lag = 0;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t low = 0, high = 0;
        if (rd_kafka_get_watermark_offsets(s->rk, tp->topic, tp->partition, &low, &high) != 0)
            continue;
        int64_t pos = tp->offset;
        /* Before the first message of a partition there is no position yet: use where the
         * run starts reading it. */
        if (pos < 0 && partition_known(s, tp->partition))
            pos = s->run->opts->mode == BENCH_MODE_E2E ? s->run->start_high[tp->partition]
                                                       : MAX(low, s->run->start_low[tp->partition]);
        if (pos >= 0 && high > pos)
            lag += (uint64_t)(high - pos);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    atomic_store(&s->run->consumer.lag, lag);
}

static enum end_reason end_e2e(struct consume_state *s, uint64_t now_ns)
{
    struct bench_run *run = s->run;
    if (!atomic_load(&run->producer.done))
        return END_NONE;
    if (run->producer.setup_failed)
        return END_PRODUCER;
    if (atomic_load(&run->consumer.consumed) >= atomic_load(&run->producer.acked))
        return END_DONE;
    /* The idle clock starts again when the producer finishes: its last messages may still be
     * on their way. */
    if (!s->producer_seen_done) {
        s->producer_seen_done = true;
        s->last_msg_ns = MAX(s->last_msg_ns, now_ns);
    }
    return now_ns - s->last_msg_ns >= run->opts->idle_timeout_ms * 1000000ull ? END_IDLE : END_NONE;
}

static enum end_reason end_reason(struct consume_state *s, uint64_t now_ns)
{
    const struct bench_opts *o = s->run->opts;
    /* A first signal ends e2e production early, and the consumer still reads what was sent;
     * a second one, or any in consume mode, ends reading at once. */
    int stops = atomic_load(&s->run->stop_requests);
    if (stops > 1 || (stops == 1 && o->mode != BENCH_MODE_E2E))
        return END_STOPPED;
    if (o->mode == BENCH_MODE_E2E)
        return end_e2e(s, now_ns);
    uint64_t consumed = atomic_load(&s->run->consumer.consumed);
    if (o->messages > 0 && consumed >= o->messages)
        return END_DONE;
    /* Without a count or a duration, the run reads what the partitions held at start. */
    if (o->messages == 0 && o->duration_ms == 0 && s->assigned_count > 0 &&
        s->at_end_count == s->assigned_count)
        return END_DONE;
    if (o->duration_ms > 0 && now_ns - s->start_ns >= o->duration_ms * 1000000u)
        return END_DURATION;
    if (now_ns - s->last_msg_ns >= o->idle_timeout_ms * 1000000ull)
        return END_IDLE;
    return END_NONE;
}

static enum end_reason consume_loop(struct consume_state *s)
{
    const struct bench_opts *o = s->run->opts;
    uint64_t next_tick_ns = s->start_ns + TICK_NS;
    uint64_t next_commit_ns = s->start_ns + o->commit_ms * 1000000ull;
    rd_kafka_message_t *batch[CONSUME_BATCH];
    for (;;) {
        /* Whatever is ready, in one call; when nothing is, wait for the first message alone:
         * a batch call with a timeout waits for a full batch and would add to the latency. */
        ssize_t n = rd_kafka_consume_batch_queue(s->consumer_q, 0, batch, CONSUME_BATCH);
        if (n == 0) {
            batch[0] = rd_kafka_consumer_poll(s->rk, POLL_MS);
            n = batch[0] != NULL;
        }
        uint64_t now_ns = bench_mono_ns();
        for (ssize_t i = 0; i < n; i++) {
            on_message(s, batch[i], now_ns);
            rd_kafka_message_destroy(batch[i]);
        }
        if (o->group != NULL) {
            rd_kafka_queue_poll_callback(s->commit_q, 0);
            if (now_ns >= next_commit_ns) {
                commit(s, false);
                next_commit_ns = now_ns + o->commit_ms * 1000000ull;
            }
        }
        if (now_ns >= next_tick_ns) {
            update_lag(s);
            next_tick_ns = now_ns + TICK_NS;
        }
        enum end_reason why = end_reason(s, now_ns);
        if (why != END_NONE)
            return why;
    }
}

static int consumer_new(struct consume_state *s, char *err, size_t err_bytes)
{
    const struct bench_opts *o = s->run->opts;
    char why[BENCH_ERROR_BYTES_MAX];
    rd_kafka_conf_t *conf = bench_conf_new(s->run);
    rd_kafka_conf_set_opaque(conf, s);
    int rc = bench_conf_set(conf, "enable.auto.commit", "false", err, err_bytes);
    if (rc == 0)
        rc = bench_conf_set(conf, "enable.partition.eof", "true", err, err_bytes);
    if (rc == 0)
        rc = bench_conf_set(conf, "auto.offset.reset", "earliest", err, err_bytes);
    /* librdkafka's consumer wants a group.id even for assign(); without --group it gets one
     * of its own that never joins (no subscribe) and never commits. */
    char own_group[64];
    snprintf(own_group, sizeof(own_group), "chronik-bench-%08x", s->run->run_id);
    if (rc == 0)
        rc = bench_conf_set(conf, "group.id", o->group != NULL ? o->group : own_group, err,
                            err_bytes);
    if (rc == 0)
        rc = bench_conf_finish(conf, o, err, err_bytes);
    if (rc < 0)
        goto out;
    if (o->group != NULL)
        rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (s->rk == NULL) {
        snprintf(err, err_bytes, "cannot create the consumer: %.400s", why);
        rc = ERR_INVALID;
        goto out;
    }
    conf = NULL; /* rd_kafka_new() took it */
    s->commit_q = rd_kafka_queue_new(s->rk);
    s->consumer_q = rd_kafka_queue_get_consumer(s->rk);
    /* Errors and logs then arrive through rd_kafka_consumer_poll() like messages. */
    rd_kafka_resp_err_t perr = rd_kafka_poll_set_consumer(s->rk);
    if (perr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, err_bytes, "poll_set_consumer: %s", rd_kafka_err2str(perr));
        rc = ERR_STATE;
    }
out:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    return rc;
}

/* assign() mode: every partition from a fixed offset, ready at once. */
static int assign_all(struct consume_state *s, char *err, size_t err_bytes)
{
    struct bench_run *run = s->run;
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(run->partition_count);
    for (int32_t p = 0; p < run->partition_count; p++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_add(parts, run->opts->topic, p);
        tp->offset = run->opts->mode == BENCH_MODE_E2E ? run->start_high[p] : run->start_low[p];
    }
    rd_kafka_resp_err_t rc = rd_kafka_assign(s->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, err_bytes, "assign: %s", rd_kafka_err2str(rc));
        return ERR_STATE;
    }
    for (int32_t p = 0; p < run->partition_count; p++)
        track(s, p, true);
    s->ready_ns = bench_mono_ns();
    atomic_store(&run->consumer.ready, true);
    return 0;
}

static int subscribe(struct consume_state *s, char *err, size_t err_bytes)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, s->run->opts->topic, RD_KAFKA_PARTITION_UA);
    s->rebalance_start_ns = bench_mono_ns();
    rd_kafka_resp_err_t rc = rd_kafka_subscribe(s->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, err_bytes, "subscribe: %s", rd_kafka_err2str(rc));
        return ERR_STATE;
    }
    return 0;
}

static const char *end_name(enum end_reason why)
{
    switch (why) {
    case END_STOPPED:
        return "interrupted";
    case END_DURATION:
        return "--duration elapsed";
    case END_IDLE:
        return "no message within --timeout-ms";
    case END_PRODUCER:
        return "the producer failed";
    default:
        return "done";
    }
}

/* Decides whether a consume-mode run read what it had to; e2e is judged by the main thread,
 * which knows the producer's final count. */
static void judge(struct consume_state *s, enum end_reason why)
{
    struct bench_consumer *c = &s->run->consumer;
    const struct bench_opts *o = s->run->opts;
    uint64_t consumed = atomic_load(&c->consumed);
    if (o->mode != BENCH_MODE_CONSUME)
        return;
    c->expected = o->messages;
    if (o->messages > 0 && consumed < o->messages) {
        c->fell_short = true;
        snprintf(c->short_reason, sizeof(c->short_reason), "consumed %llu of %llu messages (%s)",
                 (unsigned long long)consumed, (unsigned long long)o->messages, end_name(why));
    } else if (o->messages == 0 && o->duration_ms == 0 && why != END_DONE) {
        c->fell_short = true;
        snprintf(c->short_reason, sizeof(c->short_reason),
                 "%u of %u assigned partitions read to their end (%s)", s->at_end_count,
                 s->assigned_count, end_name(why));
    }
}

/* Serves outstanding asynchronous commits, then leaves the group (committing on revocation). */
static void close_group(struct consume_state *s)
{
    uint64_t deadline_ns = bench_mono_ns() + COMMIT_DRAIN_MS * 1000000ull;
    commit(s, false);
    while (s->commits_pending > 0 && bench_mono_ns() < deadline_ns)
        rd_kafka_queue_poll_callback(s->commit_q, POLL_MS);
    if (s->commits_pending > 0)
        count_commit_error(s, RD_KAFKA_RESP_ERR__TIMED_OUT);
    rd_kafka_consumer_close(s->rk);
}

void *bench_consume_main(void *arg)
{
    struct bench_run *run = arg;
    struct bench_consumer *c = &run->consumer;
    ASSERT(run != NULL && run->opts->mode != BENCH_MODE_PRODUCE);
    ASSERT(run->partition_count > 0 && run->start_high != NULL);
    char err[BENCH_ERROR_BYTES_MAX] = "";
    struct consume_state s = {.run = run};
    s.assigned = xcalloc((size_t)run->partition_count, 1);
    s.at_end = xcalloc((size_t)run->partition_count, 1);
    s.start_ns = bench_mono_ns();
    s.last_msg_ns = s.start_ns;
    int rc = consumer_new(&s, err, sizeof(err));
    if (rc == 0)
        rc = run->opts->group != NULL ? subscribe(&s, err, sizeof(err))
                                      : assign_all(&s, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "chronik-bench: consumer: %s\n", err);
        c->setup_failed = true;
        c->fell_short = true;
        snprintf(c->short_reason, sizeof(c->short_reason), "the consumer could not start");
        goto out;
    }
    enum end_reason why = consume_loop(&s);
    uint64_t from_ns = s.ready_ns != 0 ? s.ready_ns : s.start_ns;
    uint64_t to_ns = atomic_load(&c->consumed) > 0 ? s.last_msg_ns : bench_mono_ns();
    c->elapsed_ns = to_ns > from_ns ? to_ns - from_ns : 0;
    judge(&s, why);
    if (run->opts->group != NULL)
        close_group(&s);
out:
    if (s.commit_q != NULL)
        rd_kafka_queue_destroy(s.commit_q);
    if (s.consumer_q != NULL)
        rd_kafka_queue_destroy(s.consumer_q);
    if (s.rk != NULL)
        rd_kafka_destroy(s.rk);
    free(s.seen);
    free(s.assigned);
    free(s.at_end);
    atomic_store(&c->done, true);
    return NULL;
}
