/*
 * The chronik binary: configuration and wiring only.
 *
 * It owns the process's exit status and what reaches stdout and stderr at start-up: usage,
 * version, the effective configuration, configuration errors, and the one start-up line.
 * Exit status: 0 after --help, --version, --print-config and a clean shutdown; 1 for a bad
 * command line or configuration; 2 when the broker cannot start or stops on an error.
 *
 * It must never hold broker logic: everything it decides comes from src/broker.
 */
#include "base/buf.h"
#include "base/clock.h"
#include "broker/broker.h"
#include "broker/config.h"
#include "io/io.h"

#include <stdio.h>
#include <stdlib.h>

enum {
    EXIT_CONFIG_ERROR = 1,
    EXIT_START_FAILED = 2,
};

static const char usage_text[] =
    "Usage: chronik [OPTIONS]\n"
    "\n"
    "Chronik, a Kafka-compatible streaming broker.\n"
    "\n"
    "Options:\n"
    "  --config FILE       load broker settings from a Java .properties file\n"
    "  --set KEY=VALUE     set one configuration key; repeatable; wins over --config\n"
    "  --data-dir DIR      the data directory (log.dirs)\n"
    "  --port N            the Kafka port (on 127.0.0.1 unless listeners is set);\n"
    "                      HTTP and cluster ports follow it (+1000, +2000) unless set\n"
    "  --node-id N         this node's id (node.id)\n"
    "  --print-config      print the effective configuration as properties and exit\n"
    "  -h, --help          print this help and exit\n"
    "  --version           print the version and exit\n"
    "\n"
    "Sources, later wins: defaults < --config FILE < --set KEY=VALUE < --data-dir, --port,\n"
    "--node-id. Keys are Kafka's broker config names where Kafka has one (node.id, log.dirs,\n"
    "listeners, num.partitions, log.retention.ms, ...). Unknown keys are ignored with a\n"
    "warning; a bad value for a known key is an error.\n"
    "\n"
    "Cluster: give every node the same --set controller.quorum.voters=1@HOST:PORT,...\n"
    "(each PORT that node's cluster port); without it the node is its own one-voter\n"
    "cluster. Each partition is replicated to default.replication.factor nodes (when\n"
    "not set: min(3, registered brokers)).\n"
    "\n"
    "Every key, its default, bounds and meaning: docs/configuration.md in the Chronik\n"
    "source tree.\n";

static int print_config(const struct broker_config *config)
{
    struct buf out;
    buf_init(&out);
    broker_config_format(config, &out);
    size_t written = fwrite(out.data, 1, out.len, stdout);
    int status = written == out.len && fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_CONFIG_ERROR;
    buf_deinit(&out);
    return status;
}

/* The start-up line, once the node serves: scripts and tests wait for it. */
static void print_serving(void *ctx)
{
    static char line[BROKER_CONFIG_DESCRIBE_BYTES_MAX];
    broker_config_describe(ctx, line, sizeof(line));
    printf("%s\n", line);
    fflush(stdout);
}

static int run(const struct broker_config *config)
{
    struct broker *b = NULL;
    const struct broker_env env = {.io = io_posix_create(),
                                   .clock = clock_real(),
                                   .serving = print_serving,
                                   .serving_ctx = (void *)config};
    if (broker_open(config, &env, &b) < 0) {
        io_destroy(env.io);
        return EXIT_START_FAILED;
    }
    int rc = broker_run(b);
    broker_close(b);
    io_destroy(env.io);
    return rc == 0 ? EXIT_SUCCESS : EXIT_START_FAILED;
}

int main(int argc, char **argv)
{
    static struct broker_config_input input;
    static struct broker_config config;
    struct broker_config_error err;
    enum broker_cli_action action = BROKER_CLI_RUN;
    int status = EXIT_CONFIG_ERROR;

    broker_config_input_init(&input, stderr);
    if (broker_config_parse_args(&input, argc, argv, &action, &err) < 0) {
        fprintf(stderr, "chronik: %s\n", err.text);
        goto out;
    }
    if (action == BROKER_CLI_HELP) {
        fputs(usage_text, stdout);
        status = EXIT_SUCCESS;
        goto out;
    }
    if (action == BROKER_CLI_VERSION) {
        printf("chronik %s\n", CHRONIK_VERSION);
        status = EXIT_SUCCESS;
        goto out;
    }
    if (broker_config_resolve(&input, &config, &err) < 0) {
        fprintf(stderr, "chronik: %s\n", err.text);
        goto out;
    }
    status = action == BROKER_CLI_PRINT_CONFIG ? print_config(&config) : run(&config);
out:
    broker_config_input_deinit(&input);
    return status;
}
