/*
 * The process the kill test SIGKILLs: `log_kill_helper DIR SEED ROUND` opens the log in DIR on
 * the real filesystem with a threaded flusher, appends batches derived from (SEED, offset)
 * with epoch ROUND + 1 forever, asks for a flush after each, and writes every durable offset
 * it is told about to stdout as 8 native-endian bytes, so the test knows what must survive.
 * The first offset written is the recovered end, right after open. Backpressure: at most
 * WINDOW offsets are appended beyond the durable offset.
 */
#include "base/clock.h"
#include "io/io.h"
#include "log/log.h"
#include "log_testutil.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define WINDOW 128

static void on_durable(void *ctx, int err, int64_t durable)
{
    (void)ctx;
    if (err < 0)
        _exit(4);
    if (write(STDOUT_FILENO, &durable, sizeof(durable)) != (ssize_t)sizeof(durable))
        _exit(5);
}

static void drain(struct log_flusher *fl, int timeout_ms)
{
    struct pollfd p = {.fd = log_flusher_fd(fl), .events = POLLIN};
    int rc = poll(&p, 1, timeout_ms);
    if (rc > 0)
        log_flusher_drain(fl);
    else if (rc < 0 && errno != EINTR)
        _exit(6);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s DIR SEED ROUND\n", argv[0]);
        return 2;
    }
    uint64_t seed = strtoull(argv[2], NULL, 0);
    int32_t epoch = (int32_t)atoi(argv[3]) + 1;
    struct io *io = io_posix_create();
    struct log_files *files = log_files_create(io, 64);
    struct log_flusher *fl = log_flusher_create(true);
    struct log_env env = {.io = io, .clock = clock_real(), .files = files, .flusher = fl};
    struct log_config cfg;
    log_config_default(&cfg);
    cfg.segment_bytes = 256 * 1024;
    cfg.prealloc_bytes = 16 * 1024;
    struct log *log;
    int rc = log_open(&env, argv[1], &cfg, &log);
    if (rc < 0) {
        fprintf(stderr, "log_open: %d\n", rc);
        return 3;
    }
    if (epoch < log_latest_epoch(log))
        epoch = log_latest_epoch(log);
    on_durable(NULL, 0, log_durable_offset(log)); /* recovered and synced: the start signal */
    struct buf b;
    buf_init(&b);
    for (;;) {
        while (log_end_offset(log) - log_durable_offset(log) > WINDOW)
            drain(fl, -1);
        buf_reset(&b);
        test_batch_for(&b, seed, log_end_offset(log), 4, 200, 1700000000000);
        struct log_append_result res;
        rc = log_append(log, b.data, b.len, epoch, &res);
        if (rc < 0) {
            fprintf(stderr, "log_append: %d\n", rc);
            return 3;
        }
        rc = log_flush(log, res.last_offset + 1, on_durable, NULL);
        if (rc < 0)
            return 3;
        if (rc == 1)
            on_durable(NULL, 0, log_durable_offset(log));
        drain(fl, 0);
    }
}
