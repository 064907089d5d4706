/*
 * What the producer and consumer share: the run state's life cycle, error counting, the
 * librdkafka configuration every handle starts from, and topic preparation before a run.
 *
 * Topic preparation talks to the broker with a short-lived handle of its own and validates
 * what the broker answers (partition counts, errors) instead of trusting it. It never creates
 * a topic in consume mode and never changes an existing topic.
 */
#include "bench.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define METADATA_RETRY_MS 100

int bench_run_init(struct bench_run *run, const struct bench_opts *opts, char *err,
                   size_t err_bytes)
{
    ASSERT(run != NULL && opts != NULL);
    memset(run, 0, sizeof(*run));
    run->opts = opts;
    hist_init(&run->producer.latency_us);
    hist_init(&run->producer.steady_us);
    hist_init(&run->consumer.latency_us);
    int rc = pthread_mutex_init(&run->client_stats_lock, NULL);
    ASSERT(rc == 0); /* default attributes: fails only without memory, which is fatal anyway */
    if (opts->client_stats != NULL) {
        run->client_stats = fopen(opts->client_stats, "w");
        if (run->client_stats == NULL)
            return bench_fail(err, err_bytes, "cannot write %s: %s", opts->client_stats,
                              strerror(errno));
    }
    return 0;
}

void bench_run_deinit(struct bench_run *run)
{
    ASSERT(run != NULL);
    if (run->client_stats != NULL && fclose(run->client_stats) != 0)
        fprintf(stderr, "chronik-bench: writing %s: %s\n", run->opts->client_stats,
                strerror(errno));
    run->client_stats = NULL;
    pthread_mutex_destroy(&run->client_stats_lock);
    free(run->start_low);
    free(run->start_high);
    run->start_low = NULL;
    run->start_high = NULL;
}

bool bench_errors_add(struct bench_errors *e, int code)
{
    ASSERT(e->kinds <= BENCH_ERROR_KINDS_MAX);
    e->total++;
    for (uint32_t i = 0; i < e->kinds; i++) {
        if (e->codes[i] == code) {
            e->counts[i]++;
            return false;
        }
    }
    if (e->kinds < BENCH_ERROR_KINDS_MAX) {
        e->codes[e->kinds] = code;
        e->counts[e->kinds] = 1;
        e->kinds++;
    }
    return true;
}

int bench_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                   size_t err_bytes)
{
    ASSERT(conf != NULL && key != NULL && value != NULL);
    char why[BENCH_ERROR_BYTES_MAX];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK)
        return bench_fail(err, err_bytes, "librdkafka refuses %s=%s: %s", key, value, why);
    return 0;
}

/* The run whose --client-stats file the statistics callback writes to. Not the callback's
 * opaque: the consumer sets its own state there. One run per process. */
static struct bench_run *stats_run;

/* librdkafka's statistics callback: one JSON document, written as one line. Returns 0 so that
 * librdkafka frees the document. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    (void)opaque;
    struct bench_run *run = stats_run;
    ASSERT(run != NULL && run->client_stats != NULL);
    pthread_mutex_lock(&run->client_stats_lock);
    fwrite(json, 1, len, run->client_stats);
    fputc('\n', run->client_stats);
    pthread_mutex_unlock(&run->client_stats_lock);
    return 0;
}

rd_kafka_conf_t *bench_conf_new(struct bench_run *run)
{
    ASSERT(run != NULL);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[BENCH_ERROR_BYTES_MAX];
    /* Both keys are valid librdkafka properties with free-form values, so setting them cannot
     * fail; an unreachable or malformed broker list shows up when connecting. */
    rd_kafka_conf_res_t res =
        rd_kafka_conf_set(conf, "bootstrap.servers", run->opts->brokers, why, sizeof(why));
    ASSERT(res == RD_KAFKA_CONF_OK);
    res = rd_kafka_conf_set(conf, "client.id", "chronik-bench", why, sizeof(why));
    ASSERT(res == RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_opaque(conf, run);
    if (run->client_stats != NULL) {
        ASSERT(stats_run == NULL || stats_run == run);
        stats_run = run;
        res = rd_kafka_conf_set(conf, "statistics.interval.ms", BENCH_STATS_INTERVAL_MS, why,
                                sizeof(why));
        ASSERT(res == RD_KAFKA_CONF_OK);
        rd_kafka_conf_set_stats_cb(conf, on_stats);
    }
    return conf;
}

int bench_conf_finish(rd_kafka_conf_t *conf, const struct bench_opts *opts, char *err,
                      size_t err_bytes)
{
    ASSERT(opts->settings_count <= BENCH_CLIENT_SETTINGS_MAX);
    for (uint32_t i = 0; i < opts->settings_count; i++) {
        const struct bench_setting *s = &opts->settings[i];
        int rc = bench_conf_set(conf, s->key, s->value, err, err_bytes);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The topic as metadata shows it: missing, present but not ready, or ready with a count. */
enum topic_state {
    TOPIC_MISSING,
    TOPIC_NOT_READY,
    TOPIC_READY,
};

static int topic_lookup(rd_kafka_t *rk, const char *brokers, const char *topic,
                        enum topic_state *state, int32_t *partitions, char *err, size_t err_bytes)
{
    const struct rd_kafka_metadata *md = NULL;
    /* All topics, not the one: asking for one topic by name may make a broker auto-create it
     * with its default partition count, which would defeat --partitions. */
    rd_kafka_resp_err_t rc = rd_kafka_metadata(rk, 1, NULL, &md, BENCH_SETUP_MS_MAX);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
        return bench_fail(err, err_bytes, "no metadata from %s: %s", brokers, rd_kafka_err2str(rc));
    *state = TOPIC_MISSING;
    *partitions = 0;
    for (int i = 0; i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &md->topics[i];
        if (strcmp(t->topic, topic) != 0)
            continue;
        if (t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            break;
        *partitions = t->partition_cnt;
        bool ready = t->err == RD_KAFKA_RESP_ERR_NO_ERROR && t->partition_cnt > 0;
        for (int p = 0; ready && p < t->partition_cnt; p++)
            ready =
                t->partitions[p].err == RD_KAFKA_RESP_ERR_NO_ERROR && t->partitions[p].leader >= 0;
        *state = ready ? TOPIC_READY : TOPIC_NOT_READY;
        break;
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}

static int topic_create(rd_kafka_t *rk, const struct bench_opts *o, char *err, size_t err_bytes)
{
    char why[BENCH_ERROR_BYTES_MAX];
    int partitions = o->partitions > 0 ? (int)o->partitions : -1;
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(o->topic, partitions, o->replication, why, sizeof(why));
    if (nt == NULL)
        return bench_fail(err, err_bytes, "cannot describe topic %s to create: %s", o->topic, why);
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(ao, BENCH_SETUP_MS_MAX, why, sizeof(why));
    rd_kafka_AdminOptions_set_operation_timeout(ao, BENCH_SETUP_MS_MAX, why, sizeof(why));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    /* The request timeout makes librdkafka post a result in time; the margin covers its
     * scheduling, not the broker. */
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 2 * BENCH_SETUP_MS_MAX);
    int rc = 0;
    if (ev == NULL) {
        rc = bench_fail(err, err_bytes, "creating topic %s: no answer", o->topic);
        goto out;
    }
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = bench_fail(err, err_bytes, "creating topic %s: %s", o->topic,
                        rd_kafka_event_error_string(ev));
        goto out;
    }
    size_t n = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t te = rd_kafka_topic_result_error(res[i]);
        /* Another client creating it first is as good as creating it. */
        if (te != RD_KAFKA_RESP_ERR_NO_ERROR && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            const char *msg = rd_kafka_topic_result_error_string(res[i]);
            rc = bench_fail(err, err_bytes, "creating topic %s: %s", o->topic,
                            msg != NULL ? msg : rd_kafka_err2str(te));
            goto out;
        }
    }
    fprintf(stderr, "chronik-bench: created topic %s with %s partitions\n", o->topic,
            partitions > 0 ? "the requested" : "the broker's default number of");
out:
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* Waits until every partition of the topic has a leader, creating the topic once if allowed. */
static int topic_ready(rd_kafka_t *rk, struct bench_run *run, int32_t *partitions, char *err,
                       size_t err_bytes)
{
    const struct bench_opts *o = run->opts;
    uint64_t deadline_ns = bench_mono_ns() + BENCH_SETUP_MS_MAX * 1000000ull;
    bool created = false;
    for (;;) {
        enum topic_state state = TOPIC_MISSING;
        int rc = topic_lookup(rk, o->brokers, o->topic, &state, partitions, err, err_bytes);
        if (rc < 0)
            return rc;
        if (state == TOPIC_READY)
            return 0;
        if (state == TOPIC_MISSING && !created) {
            if (o->mode == BENCH_MODE_CONSUME)
                return bench_fail(err, err_bytes, "topic %s does not exist", o->topic);
            rc = topic_create(rk, o, err, err_bytes);
            if (rc < 0)
                return rc;
            created = true;
            continue;
        }
        if (bench_mono_ns() >= deadline_ns)
            return bench_fail(err, err_bytes, "topic %s: partitions without a leader after %u ms",
                              o->topic, BENCH_SETUP_MS_MAX);
        struct timespec pause = {0, METADATA_RETRY_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
}

/* Errors of a leadership that is moving: a new replicated topic's first leader hands the
 * partition to its preferred replica soon after creation, so the leader just found may have
 * moved by the time its offsets are asked. */
static bool leader_moving(rd_kafka_resp_err_t rc)
{
    return rc == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
           rc == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
           rc == RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH ||
           rc == RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH;
}

static int query_watermarks(rd_kafka_t *rk, struct bench_run *run, char *err, size_t err_bytes)
{
    int32_t n = run->partition_count;
    uint64_t deadline_ns = bench_mono_ns() + BENCH_SETUP_MS_MAX * 1000000ull;
    run->start_low = xcalloc((size_t)n, sizeof(int64_t));
    run->start_high = xcalloc((size_t)n, sizeof(int64_t));
    for (int32_t p = 0; p < n; p++) {
        rd_kafka_resp_err_t rc = rd_kafka_query_watermark_offsets(
            rk, run->opts->topic, p, &run->start_low[p], &run->start_high[p], BENCH_SETUP_MS_MAX);
        if (leader_moving(rc) && bench_mono_ns() < deadline_ns) {
            struct timespec pause = {0, METADATA_RETRY_MS * 1000000L};
            nanosleep(&pause, NULL);
            p--; /* the same partition again, once librdkafka has learned the new leader */
            continue;
        }
        if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
            return bench_fail(err, err_bytes, "offsets of %s [%d]: %s", run->opts->topic, (int)p,
                              rd_kafka_err2str(rc));
        if (run->start_low[p] < 0 || run->start_high[p] < run->start_low[p])
            return bench_fail(err, err_bytes,
                              "offsets of %s [%d]: broker answered low %lld high %lld",
                              run->opts->topic, (int)p, (long long)run->start_low[p],
                              (long long)run->start_high[p]);
    }
    return 0;
}

int bench_topic_prepare(struct bench_run *run, char *err, size_t err_bytes)
{
    ASSERT(run->start_low == NULL && run->start_high == NULL);
    const struct bench_opts *o = run->opts;
    char why[BENCH_ERROR_BYTES_MAX];
    rd_kafka_t *rk = NULL;
    rd_kafka_conf_t *conf = bench_conf_new(run);
    int rc = bench_conf_finish(conf, o, err, err_bytes);
    if (rc < 0)
        goto out;
    /* Of the kind the run uses, so that -X settings of that kind draw no warning here. */
    rd_kafka_type_t type = o->mode == BENCH_MODE_CONSUME ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER;
    rk = rd_kafka_new(type, conf, why, sizeof(why));
    if (rk == NULL) {
        rc = bench_fail(err, err_bytes, "cannot create a client: %s", why);
        goto out;
    }
    conf = NULL; /* rd_kafka_new() took it */
    int32_t partitions = 0;
    rc = topic_ready(rk, run, &partitions, err, err_bytes);
    if (rc < 0)
        goto out;
    if (partitions > (int32_t)BENCH_PARTITIONS_MAX) {
        rc = bench_fail(err, err_bytes,
                        "topic %s has %d partitions, more than this tool handles (%u)", o->topic,
                        (int)partitions, BENCH_PARTITIONS_MAX);
        goto out;
    }
    if (o->partitions > 0 && partitions < (int32_t)o->partitions) {
        rc = bench_fail(err, err_bytes,
                        "topic %s exists with %d partitions, fewer than --partitions %u", o->topic,
                        (int)partitions, o->partitions);
        goto out;
    }
    run->partition_count = partitions;
    rc = query_watermarks(rk, run, err, err_bytes);
out:
    if (rk != NULL)
        rd_kafka_destroy(rk);
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    return rc;
}
