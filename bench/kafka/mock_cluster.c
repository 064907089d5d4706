/*
 * chronik-bench-mock: librdkafka's built-in mock Kafka cluster as a process, so chronik-bench
 * can be run end to end (test_mock.sh) while no real broker is at hand.
 *
 * Usage: chronik-bench-mock BROKERS [--not-leader-list-offsets N] [TOPIC:PARTITIONS ...]
 * It starts BROKERS mock brokers on 127.0.0.1, creates the topics (the mock answers no
 * CreateTopics request), prints the bootstrap list as one line on stdout, and serves until
 * stdin reaches end of file or SIGTERM/SIGINT arrives. It owns nothing on disk.
 * --not-leader-list-offsets N answers the first N ListOffsets requests with
 * NOT_LEADER_OR_FOLLOWER, as a broker does while a partition's leadership moves.
 *
 * The mock is librdkafka's test double, not a broker: figures measured against it say nothing
 * about Chronik. It exists only to exercise the tool itself.
 */
#include "base/limits.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MOCK_BROKERS_MAX 9
#define MOCK_ERRORS_MAX  100
#define API_LIST_OFFSETS 2 /* Kafka's api key; librdkafka does not export its names */
#define POLL_MS          200

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Creates "name:partitions"; returns 0 or -1 with a message on stderr. */
static int create_topic(rd_kafka_mock_cluster_t *mc, const char *spec)
{
    char name[256];
    const char *colon = strrchr(spec, ':');
    char *end = NULL;
    long partitions = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    size_t len = colon != NULL ? (size_t)(colon - spec) : 0;
    if (colon == NULL || *end != '\0' || partitions < 1 || partitions > BENCH_PARTITIONS_MAX ||
        len == 0 || len >= sizeof(name)) {
        fprintf(stderr, "chronik-bench-mock: bad topic '%s', want NAME:PARTITIONS\n", spec);
        return -1;
    }
    memcpy(name, spec, len);
    name[len] = '\0';
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, name, (int)partitions, 1);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "chronik-bench-mock: topic %s: %s\n", name, rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

/* Serves until stdin closes or a signal asks to stop. */
static void serve(void)
{
    struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
    char scratch[256];
    while (!stop) {
        int n = poll(&in, 1, POLL_MS);
        if (n > 0 && read(STDIN_FILENO, scratch, sizeof(scratch)) <= 0)
            return;
    }
}

int main(int argc, char **argv)
{
    char errstr[512];
    long brokers = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    if (brokers < 1 || brokers > MOCK_BROKERS_MAX) {
        fprintf(stderr, "usage: chronik-bench-mock BROKERS(1-%d) [TOPIC:PARTITIONS ...]\n",
                MOCK_BROKERS_MAX);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int status = 1;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "chronik-bench-mock: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (mc == NULL) {
        fprintf(stderr, "chronik-bench-mock: cannot start the mock cluster\n");
        goto out;
    }
    int first_topic = 2;
    if (argc > 3 && strcmp(argv[2], "--not-leader-list-offsets") == 0) {
        long n = strtol(argv[3], NULL, 10);
        if (n < 1 || n > MOCK_ERRORS_MAX) {
            fprintf(stderr, "chronik-bench-mock: --not-leader-list-offsets takes 1-%d\n",
                    MOCK_ERRORS_MAX);
            goto out;
        }
        for (long i = 0; i < n; i++)
            rd_kafka_mock_push_request_errors(mc, API_LIST_OFFSETS, 1,
                                              RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
        first_topic = 4;
    }
    for (int i = first_topic; i < argc; i++)
        if (create_topic(mc, argv[i]) < 0)
            goto out;
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    serve();
    status = 0;
out:
    if (mc != NULL)
        rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return status;
}
