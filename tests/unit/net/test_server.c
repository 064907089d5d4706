/*
 * Tests for the Kafka listener over real sockets on 127.0.0.1 (port 0), single-threaded: the
 * test is the client, with non-blocking sockets, and runs the server's loop while it waits.
 *
 * The test handler reads frames as [op u8][id be32][payload] and answers by op: echo (the frame
 * without its op), hold (kept for the test to answer later, in any order), no response, a big
 * response, or a response with file pieces sent by sendfile. Randomised tests print their seed;
 * set NET_TEST_SEED to replay one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "base/rand.h"
#include "net/loop_epoll.h"
#include "net/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HELD_MAX      2048
#define WAIT_MS       20000
#define RELEASE_SLOTS 16
#define FILE_BYTES    (3u * MIB)

enum {
    OP_ECHO = 'E',
    OP_HOLD = 'H',
    OP_NONE = 'N',
    OP_BIG = 'B',
    OP_FILE = 'F',       /* [off be32][len be32][slot u8]: answered now */
    OP_FILE_HOLD = 'G',  /* the same pieces, then held */
    OP_ABORT = 'X',      /* aborted: the connection is closed */
    OP_ABORT_HOLD = 'A', /* held with a file piece whose release aborts t->abort_on_release */
};

struct th {
    struct clock_sim sim;
    struct loop_epoll loop;
    struct net_server server;
    uint64_t requests;
    struct net_request *held[HELD_MAX];
    uint32_t held_count;
    uint32_t closed_count;
    uint32_t big_bytes;
    int file_fd;
    uint8_t *file_data;
    uint32_t releases[RELEASE_SLOTS];
    bool shutdown_done;
    struct net_request *abort_on_release;
    uint32_t abort_releases;
    uint32_t pressures;
};

static uint64_t test_seed(void)
{
    const char *env = getenv("NET_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    printf("seed %llu (set NET_TEST_SEED to replay)\n", (unsigned long long)seed);
    return seed;
}

static uint64_t now_ms(void)
{
    return clock_mono_ms(clock_real());
}

/* ---- the test handler ------------------------------------------------------------------- */

static void release_cb(void *ctx)
{
    (*(uint32_t *)ctx)++;
}

static void release_abort_cb(void *ctx)
{
    struct th *t = ctx;
    t->abort_releases++;
    if (t->abort_on_release != NULL)
        net_request_abort(t->abort_on_release);
    t->abort_on_release = NULL;
}

static void append_file_pieces(struct th *t, struct net_request *req, struct slice f)
{
    assert_true(f.len >= 14);
    uint32_t off = be32_load(f.ptr + 5);
    uint32_t len = be32_load(f.ptr + 9);
    uint8_t slot = f.ptr[13];
    assert_true(slot + 1 < RELEASE_SLOTS);
    assert_int_equal(net_request_append(req, f.ptr + 1, 4), 0);
    assert_int_equal(net_request_append(req, "<", 1), 0);
    assert_int_equal(
        net_request_append_file(req, t->file_fd, off, len, release_cb, &t->releases[slot]), 0);
    /* Two file pieces back to back, then memory again. */
    assert_int_equal(
        net_request_append_file(req, t->file_fd, 0, 100, release_cb, &t->releases[slot + 1]), 0);
    assert_int_equal(net_request_append(req, ">", 1), 0);
}

static void answer_echo(struct net_request *req)
{
    struct slice f = net_request_frame(req);
    assert_int_equal(net_request_append(req, f.ptr + 1, f.len - 1), 0);
    net_request_complete(req);
}

static void on_request(void *ctx, struct net_request *req)
{
    struct th *t = ctx;
    t->requests++;
    struct slice f = net_request_frame(req);
    assert_true(f.len >= 5);
    assert_true(net_request_connected(req));
    switch (f.ptr[0]) {
    case OP_ECHO:
        answer_echo(req);
        break;
    case OP_HOLD:
        assert_true(t->held_count < HELD_MAX);
        t->held[t->held_count++] = req;
        break;
    case OP_NONE:
        net_request_complete(req);
        break;
    case OP_BIG: {
        struct buf b;
        buf_init(&b);
        buf_append(&b, f.ptr + 1, 4);
        uint8_t *p = buf_extend(&b, t->big_bytes);
        for (uint32_t i = 0; i < t->big_bytes; i++)
            p[i] = (uint8_t)(i * 7 + f.ptr[4]);
        assert_int_equal(net_request_append_buf(req, &b), 0);
        assert_null(b.data);
        net_request_complete(req);
        break;
    }
    case OP_FILE:
        append_file_pieces(t, req, f);
        net_request_complete(req);
        break;
    case OP_FILE_HOLD:
        append_file_pieces(t, req, f);
        t->held[t->held_count++] = req;
        break;
    case OP_ABORT:
        net_request_abort(req);
        break;
    case OP_ABORT_HOLD:
        assert_int_equal(net_request_append(req, f.ptr + 1, 4), 0);
        assert_int_equal(net_request_append_file(req, t->file_fd, 0, 10, release_abort_cb, t), 0);
        t->held[t->held_count++] = req;
        break;
    default:
        fail_msg("unknown op %u", f.ptr[0]);
    }
}

static void on_closed(void *ctx, uint64_t conn_id)
{
    struct th *t = ctx;
    assert_true(conn_id > 0);
    t->closed_count++;
}

static void on_pressure(void *ctx)
{
    struct th *t = ctx;
    t->pressures++;
}

static void on_shutdown(void *ctx)
{
    struct th *t = ctx;
    assert_false(t->shutdown_done);
    t->shutdown_done = true;
}

static struct net_server_config test_config(void)
{
    struct net_server_config cfg;
    net_server_config_default(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    return cfg;
}

static struct th *th_start(const struct net_server_config *cfg, bool sim_clock)
{
    struct th *t = xcalloc(1, sizeof(*t));
    clock_sim_init(&t->sim, 0);
    t->file_fd = -1;
    t->big_bytes = 64 * KIB;
    assert_int_equal(loop_epoll_init(&t->loop, sim_clock ? &t->sim.clock : clock_real()), 0);
    struct net_handler h = {
        .request = on_request, .closed = on_closed, .pressure = on_pressure, .ctx = t};
    assert_int_equal(net_server_init(&t->server, &t->loop.loop, cfg, &h), 0);
    assert_true(net_server_port(&t->server) > 0);
    return t;
}

static void th_stop(struct th *t)
{
    net_server_deinit(&t->server);
    /* Requests still held were detached by the close; completing them must be safe. */
    for (uint32_t i = 0; i < t->held_count; i++) {
        assert_false(net_request_connected(t->held[i]));
        net_request_complete(t->held[i]);
    }
    loop_epoll_deinit(&t->loop);
    if (t->file_fd >= 0)
        close(t->file_fd);
    free(t->file_data);
    free(t);
}

static void pump(struct th *t)
{
    assert_int_equal(loop_run_once(&t->loop.loop, 1), 0);
}

static void pump_ms(struct th *t, uint64_t ms)
{
    uint64_t end = now_ms() + ms;
    while (now_ms() < end)
        pump(t);
}

/* Waits until t holds n requests. */
static void wait_held(struct th *t, uint32_t n)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (t->held_count < n) {
        assert_true(now_ms() < end);
        pump(t);
    }
}

/* Waits until t has seen n connections close. */
static void wait_closed(struct th *t, uint32_t n)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (t->closed_count < n) {
        assert_true(now_ms() < end);
        pump(t);
    }
}

/* Answers held request i (echo) and removes it from the held list. */
static void answer_held(struct th *t, uint32_t i)
{
    assert_true(i < t->held_count);
    struct net_request *req = t->held[i];
    t->held[i] = t->held[--t->held_count];
    answer_echo(req);
}

/* ---- the client ------------------------------------------------------------------------- */

static int client_connect_raw(uint16_t port, int rcvbuf_bytes)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf_bytes > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof(rcvbuf_bytes));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    if (rc != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static int client_connect(struct th *t)
{
    int fd = client_connect_raw(net_server_port(&t->server), 0);
    assert_true(fd >= 0);
    return fd;
}

static void client_send(struct th *t, int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t end = now_ms() + WAIT_MS;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            assert_true(now_ms() < end);
            pump(t);
            continue;
        }
        b += w;
        n -= (size_t)w;
    }
}

/* Reads exactly n bytes. False if the connection ended first. */
static bool client_recv(struct th *t, int fd, void *p, size_t n)
{
    uint8_t *b = p;
    uint64_t end = now_ms() + WAIT_MS;
    while (n > 0) {
        ssize_t r = recv(fd, b, n, 0);
        if (r == 0)
            return false;
        if (r < 0) {
            if (errno == ECONNRESET)
                return false;
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            assert_true(now_ms() < end);
            pump(t);
            continue;
        }
        b += r;
        n -= (size_t)r;
    }
    return true;
}

/* Waits for the server to close the connection, discarding any bytes before the end. */
static bool client_wait_closed(struct th *t, int fd, uint64_t wait_ms)
{
    uint64_t end = now_ms() + wait_ms;
    uint8_t tmp[4096];
    while (now_ms() < end) {
        ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            pump(t);
    }
    return false;
}

static bool client_open_now(int fd)
{
    uint8_t b;
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void frame_build(struct buf *b, uint8_t op, uint32_t id, const void *payload, size_t len)
{
    buf_put_be32(b, (uint32_t)(1 + 4 + len));
    buf_put_u8(b, op);
    buf_put_be32(b, id);
    buf_append(b, payload, len);
}

static void send_frame(struct th *t, int fd, uint8_t op, uint32_t id, const void *payload,
                       size_t len)
{
    struct buf b;
    buf_init(&b);
    frame_build(&b, op, id, payload, len);
    client_send(t, fd, b.data, b.len);
    buf_deinit(&b);
}

/* Reads one response frame into out (replaced), returns false if the connection ended. */
static bool recv_frame(struct th *t, int fd, struct buf *out)
{
    uint8_t size[4];
    if (!client_recv(t, fd, size, 4))
        return false;
    buf_reset(out);
    uint32_t n = be32_load(size);
    assert_true(n > 0 && n < 64 * MIB);
    return client_recv(t, fd, buf_extend(out, n), n);
}

static void expect_echo(struct th *t, int fd, uint32_t id, const void *payload, size_t len)
{
    struct buf r;
    buf_init(&r);
    assert_true(recv_frame(t, fd, &r));
    assert_int_equal(r.len, 4 + len);
    assert_int_equal(be32_load(r.data), id);
    assert_memory_equal(r.data + 4, payload, len);
    buf_deinit(&r);
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + id * 17 + (i >> 8));
}

/* ---- framing ---------------------------------------------------------------------------- */

static void test_framing_segmentation(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    struct rng rng;
    rng_seed(&rng, test_seed());
    int fd = client_connect(t);

    /* One frame, one byte per segment, with the server running between bytes. */
    uint8_t payload[300];
    fill_pattern(payload, sizeof(payload), 1);
    struct buf b;
    buf_init(&b);
    frame_build(&b, OP_ECHO, 1, payload, sizeof(payload));
    for (size_t i = 0; i < b.len; i++) {
        client_send(t, fd, b.data + i, 1);
        pump(t);
    }
    expect_echo(t, fd, 1, payload, sizeof(payload));

    /* Many frames of random sizes, sent in one write and then cut at random places. */
    enum { FRAMES = 200 };
    uint32_t sizes[FRAMES];
    uint8_t *data = xmalloc(4000);
    for (uint32_t round = 0; round < 2; round++) {
        buf_reset(&b);
        for (uint32_t i = 0; i < FRAMES; i++) {
            sizes[i] = (uint32_t)rng_range(&rng, 0, 3000);
            fill_pattern(data, sizes[i], i);
            frame_build(&b, OP_ECHO, i, data, sizes[i]);
        }
        if (round == 0) {
            client_send(t, fd, b.data, b.len);
        } else {
            for (size_t off = 0; off < b.len;) {
                size_t cut = (size_t)rng_range(&rng, 1, 700);
                size_t n = MIN(b.len - off, cut);
                client_send(t, fd, b.data + off, n);
                off += n;
                if (rng_chance(&rng, 1, 2))
                    pump(t);
            }
        }
        for (uint32_t i = 0; i < FRAMES; i++) {
            fill_pattern(data, sizes[i], i);
            expect_echo(t, fd, i, data, sizes[i]);
        }
    }

    /* A frame much larger than one read: received straight into its buffer. */
    size_t big = 5 * MIB + 3;
    uint8_t *bigp = xmalloc(big);
    fill_pattern(bigp, big, 9);
    send_frame(t, fd, OP_ECHO, 9, bigp, big);
    expect_echo(t, fd, 9, bigp, big);

    struct net_server_stats st;
    net_server_stats(&t->server, &st);
    assert_int_equal(st.requests_total, 1 + 2 * FRAMES + 1);
    assert_int_equal(st.requests_inflight, 0);
    assert_int_equal(st.output_bytes, 0);
    free(bigp);
    free(data);
    buf_deinit(&b);
    close(fd);
    th_stop(t);
}

/* The frame buffer cache of the server, checked against its bounds. */
static void check_frame_cache(const struct net_server *s)
{
    assert_true(s->frame_cache_count <= NET_FRAME_CACHE_COUNT);
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < s->frame_cache_count; i++) {
        assert_true(s->frame_cache_caps[i] >= NET_FRAME_CACHE_BUF_BYTES_MIN);
        /* Large buffers are whole huge pages, or they could not all be backed by them. */
        assert_true(s->frame_cache_caps[i] <= NET_FRAME_HEAP_BYTES_MAX ||
                    s->frame_cache_caps[i] % ALLOC_HUGE_BYTES == 0);
        bytes += s->frame_cache_caps[i];
    }
    assert_int_equal(bytes, s->frame_cache_bytes);
    assert_true(bytes <= NET_FRAME_CACHE_BYTES_MAX);
}

/* Freed frame buffers are reused by later frames: every frame still arrives intact whatever
 * buffer it lands in (larger than the frame, smaller and grown, holding an earlier frame's
 * bytes), the cache stays within its bounds, and a request freed after its connection closed
 * leaves the cache alone (it may outlive the server). */
static void test_frame_reuse(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    struct rng rng;
    rng_seed(&rng, test_seed());
    const struct net_server *s = &t->server;
    int fd = client_connect(t);
    enum { ROUNDS = 30, BURST_MAX = 4 };
    size_t size_max = 3 * MIB;
    uint8_t *data = xmalloc(size_max);
    size_t sizes[BURST_MAX];
    for (uint32_t round = 0; round < ROUNDS; round++) {
        /* A burst of frames held together, so several buffers are in use and then cached. */
        uint32_t burst = (uint32_t)rng_range(&rng, 1, BURST_MAX);
        for (uint32_t i = 0; i < burst; i++) {
            sizes[i] = rng_chance(&rng, 1, 3) ? (size_t)rng_range(&rng, 1, 100 * KIB)
                                              : (size_t)rng_range(&rng, 100 * KIB, size_max);
            fill_pattern(data, sizes[i], round * BURST_MAX + i);
            send_frame(t, fd, OP_HOLD, round * BURST_MAX + i, data, sizes[i]);
        }
        wait_held(t, burst);
        while (t->held_count > 0)
            answer_held(t, (uint32_t)rng_below(&rng, t->held_count));
        for (uint32_t i = 0; i < burst; i++) {
            fill_pattern(data, sizes[i], round * BURST_MAX + i);
            expect_echo(t, fd, round * BURST_MAX + i, data, sizes[i]);
        }
        check_frame_cache(s);
    }
    assert_true(s->frame_cache_count > 0);

    /* A held frame whose connection closes: completing it afterwards frees its buffer. */
    fill_pattern(data, MIB, 1);
    send_frame(t, fd, OP_HOLD, 1, data, MIB);
    wait_held(t, 1);
    uint32_t count = s->frame_cache_count;
    uint64_t bytes = s->frame_cache_bytes;
    close(fd);
    wait_closed(t, 1);
    struct net_request *req = t->held[--t->held_count];
    assert_false(net_request_connected(req));
    net_request_complete(req);
    assert_int_equal(s->frame_cache_count, count);
    assert_int_equal(s->frame_cache_bytes, bytes);
    check_frame_cache(s);
    free(data);
    th_stop(t);
}

static void test_bad_frame_sizes(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    cfg.frame_bytes_max = 1000;
    struct th *t = th_start(&cfg, false);
    int good = client_connect(t);
    send_frame(t, good, OP_ECHO, 1, "abc", 3);
    expect_echo(t, good, 1, "abc", 3);
    const uint32_t bad[] = {0, 0xFFFFFFFFu, 1001, 0x7FFFFFFFu, 0x80000000u};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int fd = client_connect(t);
        uint8_t hdr[9];
        be32_store(hdr, bad[i]);
        memcpy(hdr + 4, "EXXXX", 5);
        client_send(t, fd, hdr, sizeof(hdr));
        assert_true(client_wait_closed(t, fd, WAIT_MS));
        close(fd);
        /* The other connection keeps working. */
        send_frame(t, good, OP_ECHO, (uint32_t)(10 + i), "ok", 2);
        expect_echo(t, good, (uint32_t)(10 + i), "ok", 2);
    }
    /* Exactly the maximum is accepted. */
    uint8_t payload[1000 - 5];
    fill_pattern(payload, sizeof(payload), 3);
    send_frame(t, good, OP_ECHO, 3, payload, sizeof(payload));
    expect_echo(t, good, 3, payload, sizeof(payload));
    struct net_server_stats st;
    net_server_stats(&t->server, &st);
    assert_int_equal(st.frames_rejected_total, ARRAY_LEN(bad));
    assert_int_equal(t->requests, 2 + ARRAY_LEN(bad));
    assert_int_equal(st.connections, 1);
    close(good);
    th_stop(t);
}

/* ---- ordering and back-pressure --------------------------------------------------------- */

/* Reads whatever response frames are available without waiting; returns how many, checking
 * that their ids continue from *next_id. */
static uint32_t drain_available(int fd, struct buf *in, uint32_t *next_id, size_t body_len)
{
    uint8_t tmp[65536];
    for (;;) {
        ssize_t r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (r <= 0)
            break;
        buf_append(in, tmp, (size_t)r);
    }
    uint32_t frames = 0;
    size_t off = 0;
    while (in->len - off >= 4) {
        uint32_t n = be32_load(in->data + off);
        if (in->len - off - 4 < n)
            break;
        assert_int_equal(n, 4 + body_len);
        assert_int_equal(be32_load(in->data + off + 4), *next_id);
        (*next_id)++;
        frames++;
        off += 4 + n;
    }
    if (off > 0) {
        memmove(in->data, in->data + off, in->len - off);
        in->len -= off;
    }
    return frames;
}

static void test_pipelined_out_of_order(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    struct rng rng;
    rng_seed(&rng, test_seed());
    int fd = client_connect(t);
    enum { REQUESTS = 1000 };
    struct buf b;
    buf_init(&b);
    for (uint32_t i = 0; i < REQUESTS; i++)
        frame_build(&b, OP_HOLD, i, NULL, 0);
    client_send(t, fd, b.data, b.len);
    struct buf in;
    buf_init(&in);
    uint32_t next_id = 0;
    uint32_t held_max = 0;
    uint64_t end = now_ms() + WAIT_MS;
    while (next_id < REQUESTS) {
        assert_true(now_ms() < end);
        pump(t);
        held_max = MAX(held_max, t->held_count);
        /* Answer a random subset in a random order: never the oldest first on purpose. */
        uint32_t n = t->held_count == 0 ? 0 : (uint32_t)rng_range(&rng, 1, t->held_count);
        for (uint32_t k = 0; k < n; k++)
            answer_held(t, (uint32_t)rng_below(&rng, t->held_count));
        drain_available(fd, &in, &next_id, 0);
    }
    assert_int_equal(t->requests, REQUESTS);
    assert_true(held_max <= NET_INFLIGHT_REQUESTS_MAX);
    buf_deinit(&in);
    buf_deinit(&b);
    close(fd);
    th_stop(t);
}

static void test_backpressure_inflight(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    int fd = client_connect(t);
    enum { REQUESTS = 300 };
    struct buf b;
    buf_init(&b);
    for (uint32_t i = 0; i < REQUESTS; i++)
        frame_build(&b, OP_HOLD, i, NULL, 0);
    client_send(t, fd, b.data, b.len);
    uint64_t end = now_ms() + WAIT_MS;
    while (t->requests < NET_INFLIGHT_REQUESTS_MAX) {
        assert_true(now_ms() < end);
        pump(t);
    }
    pump_ms(t, 50);
    /* The handler sees exactly the in-flight bound and no more. */
    assert_int_equal(t->requests, NET_INFLIGHT_REQUESTS_MAX);
    struct net_server_stats st;
    net_server_stats(&t->server, &st);
    assert_int_equal(st.requests_inflight, NET_INFLIGHT_REQUESTS_MAX);
    assert_int_equal(st.connections_paused, 1);
    /* Answering a later request frees nothing: its response waits for the first. */
    answer_held(t, t->held_count - 1);
    pump_ms(t, 20);
    assert_int_equal(t->requests, NET_INFLIGHT_REQUESTS_MAX);
    /* Answering the first sends its response and lets one more request in. */
    for (uint32_t i = 0; i < t->held_count; i++) {
        if (be32_load(net_request_frame(t->held[i]).ptr + 1) == 0) {
            answer_held(t, i);
            break;
        }
    }
    while (t->requests < NET_INFLIGHT_REQUESTS_MAX + 1) {
        assert_true(now_ms() < end);
        pump(t);
    }
    pump_ms(t, 20);
    assert_int_equal(t->requests, NET_INFLIGHT_REQUESTS_MAX + 1);
    struct buf in;
    buf_init(&in);
    uint32_t next_id = 0;
    while (next_id < REQUESTS) {
        assert_true(now_ms() < end);
        pump(t);
        while (t->held_count > 0)
            answer_held(t, 0);
        drain_available(fd, &in, &next_id, 0);
    }
    net_server_stats(&t->server, &st);
    assert_int_equal(st.connections_paused, 0);
    buf_deinit(&in);
    buf_deinit(&b);
    close(fd);
    th_stop(t);
}

/* Issue 8 item 2: memory held by requests is bounded broker-wide (queued.max.request.bytes).
 * Requests of many connections parked by the handler stop the reading of new requests on every
 * connection once their memory reaches the bound (a begun frame is always finished), also after
 * their connection closed, and
 * reading resumes on every connection once answers free memory below the bound. */
static void test_backpressure_queued_bytes(void **state)
{
    (void)state;
    enum { CONNS = 4, PAYLOAD = 30 * 1024 };
    struct net_server_config cfg = test_config();
    cfg.queued_bytes_max = 64 * 1024;
    struct th *t = th_start(&cfg, false);
    uint8_t *payload = xcalloc(1, PAYLOAD);
    struct buf b;
    buf_init(&b);
    int fds[CONNS];
    for (uint32_t i = 0; i < CONNS; i++) {
        fds[i] = client_connect(t);
        buf_reset(&b);
        frame_build(&b, OP_HOLD, i, payload, PAYLOAD);
        client_send(t, fds[i], b.data, b.len);
    }
    /* Two frames are below the bound, so a third begins and is read whole; then nothing more. */
    uint64_t end = now_ms() + WAIT_MS;
    while (t->requests < 3) {
        assert_true(now_ms() < end);
        pump(t);
    }
    int echo_fd = client_connect(t);
    buf_reset(&b);
    frame_build(&b, OP_ECHO, 99, "x", 1);
    client_send(t, echo_fd, b.data, b.len);
    pump_ms(t, 50);
    assert_int_equal(t->requests, 3);
    struct net_server_stats st;
    net_server_stats(&t->server, &st);
    assert_true(st.queued_bytes >= 3 * PAYLOAD && st.queued_bytes < 4 * PAYLOAD);
    assert_int_equal(st.queued_pauses_total, 1);
    assert_int_equal(t->pressures, 1);                  /* told once, from the loop */
    assert_int_equal(st.connections_paused, CONNS + 1); /* none may start a request */

    /* A held request whose connection closes still holds its memory until it is answered. */
    struct slice f = net_request_frame(t->held[0]);
    uint32_t gone = be32_load(f.ptr + 1);
    /* A reset, which the server sees although it does not read the paused connection. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fds[gone], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fds[gone]);
    fds[gone] = -1;
    while (t->closed_count < 1) {
        assert_true(now_ms() < end);
        pump(t);
    }
    pump_ms(t, 20);
    assert_int_equal(t->requests, 3);
    net_server_stats(&t->server, &st);
    assert_true(st.queued_bytes >= 3 * PAYLOAD);
    answer_held(t, 0);
    /* The freed memory lets the paused connections in again: everything is served. */
    while (t->requests < CONNS + 1) {
        assert_true(now_ms() < end);
        pump(t);
        while (t->held_count > 0)
            answer_held(t, 0);
    }
    uint8_t resp[4 + 4 + 1];
    assert_true(client_recv(t, echo_fd, resp, sizeof(resp)));
    assert_int_equal(be32_load(resp + 4), 99);
    for (uint32_t i = 0; i < CONNS; i++) {
        if (fds[i] < 0)
            continue;
        uint8_t hdr[8];
        assert_true(client_recv(t, fds[i], hdr, sizeof(hdr)));
        assert_int_equal(be32_load(hdr + 4), i);
        uint8_t *body = xmalloc(PAYLOAD);
        assert_true(client_recv(t, fds[i], body, PAYLOAD));
        free(body);
        close(fds[i]);
    }
    close(echo_fd);
    while (t->closed_count < CONNS + 1) {
        assert_true(now_ms() < end);
        pump(t);
    }
    net_server_stats(&t->server, &st);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.connections_paused, 0);
    free(payload);
    buf_deinit(&b);
    th_stop(t);
}

/* A frame counts for the bytes received, not the size announced: peers that announce frames of
 * the largest size and send nothing more do not use up queued_bytes_max for everyone else. */
static void test_queued_bytes_count_received_bytes(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    cfg.queued_bytes_max = MIB; /* a hundredth of one announced frame */
    struct th *t = th_start(&cfg, false);
    int idle[4];
    for (uint32_t i = 0; i < 4; i++) {
        idle[i] = client_connect(t);
        uint8_t hdr[5];
        be32_store(hdr, cfg.frame_bytes_max);
        hdr[4] = OP_ECHO;
        client_send(t, idle[i], hdr, sizeof(hdr));
    }
    pump_ms(t, 20);
    struct net_server_stats st;
    net_server_stats(&t->server, &st);
    assert_true(st.queued_bytes < cfg.queued_bytes_max);
    int fd = client_connect(t);
    struct buf b;
    buf_init(&b);
    frame_build(&b, OP_ECHO, 5, "y", 1);
    client_send(t, fd, b.data, b.len);
    uint8_t resp[4 + 4 + 1];
    assert_true(client_recv(t, fd, resp, sizeof(resp)));
    assert_int_equal(be32_load(resp + 4), 5);
    close(fd);
    for (uint32_t i = 0; i < 4; i++)
        close(idle[i]);
    buf_deinit(&b);
    th_stop(t);
}

static void test_backpressure_output(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    cfg.output_bytes_max = 256 * KIB;
    struct th *t = th_start(&cfg, false);
    /* A small receive buffer keeps the kernel from absorbing much of the output. */
    int fd = client_connect_raw(net_server_port(&t->server), 4096);
    assert_true(fd >= 0);
    enum { REQUESTS = 500 };
    struct buf b;
    buf_init(&b);
    for (uint32_t i = 0; i < REQUESTS; i++)
        frame_build(&b, OP_BIG, i, NULL, 0);
    client_send(t, fd, b.data, b.len);
    struct net_server_stats st;
    uint64_t end = now_ms() + WAIT_MS;
    do {
        assert_true(now_ms() < end);
        pump(t);
        net_server_stats(&t->server, &st);
    } while (st.connections_paused == 0);
    /* Let the kernel's buffers fill up before watching for more requests. */
    pump_ms(t, 100);
    net_server_stats(&t->server, &st);
    uint64_t seen = t->requests;
    pump_ms(t, 200);
    /* The client never reads: the server stopped reading it and its output is bounded. */
    assert_int_equal(t->requests, seen);
    assert_true(seen < REQUESTS);
    assert_true(st.output_bytes <= cfg.output_bytes_max + t->big_bytes + 8);
    assert_true(st.output_bytes >= cfg.output_bytes_max);
    assert_int_equal(st.connections_paused, 1);
    /* Once the client reads, everything arrives, in order and intact. */
    uint8_t *expect = xmalloc(t->big_bytes);
    struct buf r;
    buf_init(&r);
    for (uint32_t i = 0; i < REQUESTS; i++) {
        assert_true(recv_frame(t, fd, &r));
        assert_int_equal(r.len, 4 + t->big_bytes);
        assert_int_equal(be32_load(r.data), i);
        for (uint32_t k = 0; k < t->big_bytes; k++)
            expect[k] = (uint8_t)(k * 7 + (uint8_t)i);
        assert_memory_equal(r.data + 4, expect, t->big_bytes);
    }
    assert_int_equal(t->requests, REQUESTS);
    free(expect);
    buf_deinit(&r);
    buf_deinit(&b);
    close(fd);
    th_stop(t);
}

/* ---- idle timeout ----------------------------------------------------------------------- */

static void sim_step(struct th *t, uint64_t ms)
{
    clock_sim_advance_ms(&t->sim, ms);
    for (int i = 0; i < 5; i++)
        pump(t);
}

/* Holds burst frames of size bytes on fd together, then answers them all. */
static void hold_and_answer(struct th *t, int fd, uint32_t burst, uint8_t *data, size_t size)
{
    for (uint32_t i = 0; i < burst; i++) {
        fill_pattern(data, size, i);
        send_frame(t, fd, OP_HOLD, i, data, size);
    }
    wait_held(t, burst);
    while (t->held_count > 0)
        answer_held(t, t->held_count - 1);
    for (uint32_t i = 0; i < burst; i++) {
        fill_pattern(data, size, i);
        expect_echo(t, fd, i, data, size);
    }
}

/* The cache keeps the buffers a load reuses within every period, however many (a trim that
 * ignored use would free them and the next burst would fault fresh memory in again), and gives
 * back what no frame needed for NET_FRAME_CACHE_IDLE_MS down to NET_FRAME_CACHE_KEEP_BYTES
 * (without the trim, a burst's memory would stay for good). */
static void test_frame_cache_trim(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, true);
    const struct net_server *s = &t->server;
    int fd = client_connect(t);
    /* Each frame grows into a buffer of one huge page; 30 of them exceed the bytes kept. */
    enum { BURST = 30 };
    size_t size = 3 * MIB / 2, buffer = ALLOC_HUGE_BYTES;
    STATIC_ASSERT(BURST * ALLOC_HUGE_BYTES > NET_FRAME_CACHE_KEEP_BYTES,
                  "the burst exceeds what is kept");
    uint8_t *data = xmalloc(size);
    /* A burst every half period, for two periods: every buffer is taken again within each. */
    for (uint32_t i = 0; i < 4; i++) {
        hold_and_answer(t, fd, BURST, data, size);
        check_frame_cache(s);
        assert_int_equal(s->frame_cache_count, BURST);
        sim_step(t, NET_FRAME_CACHE_IDLE_MS / 2);
        check_frame_cache(s);
        assert_int_equal(s->frame_cache_count, BURST);
    }
    /* No traffic: the next period frees everything beyond the bytes kept, then nothing more. */
    sim_step(t, NET_FRAME_CACHE_IDLE_MS);
    check_frame_cache(s);
    assert_int_equal(s->frame_cache_bytes, NET_FRAME_CACHE_KEEP_BYTES / buffer * buffer);
    for (uint32_t i = 0; i < s->frame_cache_count; i++)
        assert_int_equal(s->frame_cache_caps[i], buffer);
    assert_false(loop_timer_active(&s->trim_timer));
    sim_step(t, 3 * NET_FRAME_CACHE_IDLE_MS);
    assert_int_equal(s->frame_cache_bytes, NET_FRAME_CACHE_KEEP_BYTES / buffer * buffer);
    free(data);
    close(fd);
    th_stop(t);
}

/* A handler that lets go of a held request's frame before answering: the buffer goes back to
 * the cache at once, uncharged (else the memory of requests waiting for their answer would
 * still count against the bound), and the next frame of its size takes that buffer, the one
 * put back last, rather than an older one (a cache taking the first fit would hand out a
 * buffer long out of the CPU's caches). The answer still leaves, and the buffer is cached
 * once, not again when the request is freed. A detached request's frame is freed instead. */
static void test_release_frame(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    const struct net_server *s = &t->server;
    int fd = client_connect(t);
    size_t size = 3 * MIB / 2;
    uint8_t *data = xmalloc(size);
    hold_and_answer(t, fd, 3, data, size); /* three buffers cached, older than the released one */
    assert_int_equal(s->frame_cache_count, 3);

    fill_pattern(data, size, 1);
    send_frame(t, fd, OP_HOLD, 1, data, size);
    wait_held(t, 1);
    struct net_request *first = t->held[0];
    struct slice f = net_request_frame(first);
    const uint8_t *buffer = f.ptr;
    assert_int_equal(net_request_append(first, f.ptr + 1, 4), 0); /* the id, then no frame */
    struct net_server_stats before, after;
    net_server_stats(&t->server, &before);
    net_request_release_frame(first);
    net_server_stats(&t->server, &after);
    assert_true(after.queued_bytes + size <= before.queued_bytes);
    assert_int_equal(s->frame_cache_count, 3);
    assert_ptr_equal(s->frame_cache[s->frame_cache_count - 1], buffer);
    check_frame_cache(s);

    fill_pattern(data, size, 2);
    send_frame(t, fd, OP_HOLD, 2, data, size);
    wait_held(t, 2);
    assert_ptr_equal(net_request_frame(t->held[1]).ptr, buffer);
    assert_int_equal(s->frame_cache_count, 2);
    net_request_complete(first);
    expect_echo(t, fd, 1, data, 0);
    answer_held(t, 1);
    expect_echo(t, fd, 2, data, size);
    t->held_count = 0;
    assert_int_equal(s->frame_cache_count, 3); /* each buffer once */
    check_frame_cache(s);

    /* Detached: its connection closed while it was held. */
    send_frame(t, fd, OP_HOLD, 3, data, size);
    wait_held(t, 1);
    close(fd);
    wait_closed(t, 1);
    struct net_request *req = t->held[--t->held_count];
    uint32_t count = s->frame_cache_count;
    net_request_release_frame(req);
    net_request_complete(req);
    assert_int_equal(s->frame_cache_count, count);
    check_frame_cache(s);
    net_server_stats(&t->server, &after);
    assert_int_equal(after.queued_bytes, 0);
    free(data);
    th_stop(t);
}

static void test_idle_timeout(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    cfg.idle_ms = 100;
    struct th *t = th_start(&cfg, true);
    int idle = client_connect(t);
    int busy = client_connect(t);
    int holding = client_connect(t);
    int stuck = client_connect_raw(net_server_port(&t->server), 4096);
    assert_true(stuck >= 0);
    struct net_server_stats st;
    uint64_t end = now_ms() + WAIT_MS;
    do {
        assert_true(now_ms() < end);
        pump(t);
        net_server_stats(&t->server, &st);
    } while (st.connections < 4);
    send_frame(t, holding, OP_HOLD, 1, NULL, 0);
    /* A response far larger than the socket buffers, which its client never reads. */
    t->big_bytes = 8 * MIB;
    send_frame(t, stuck, OP_BIG, 2, NULL, 0);
    while (t->held_count == 0 || t->requests < 2) {
        assert_true(now_ms() < end);
        pump(t);
    }
    pump_ms(t, 50);
    net_server_stats(&t->server, &st);
    assert_true(st.output_bytes > 0);
    for (uint32_t step = 1; step <= 30; step++) {
        sim_step(t, 10);
        if (step % 3 == 0) {
            send_frame(t, busy, OP_ECHO, step, "x", 1);
            expect_echo(t, busy, step, "x", 1);
        }
        if (step == 9) {
            assert_true(client_open_now(idle));
            net_server_stats(&t->server, &st);
            assert_int_equal(st.connections, 4);
        }
        if (step == 11) {
            assert_true(client_wait_closed(t, idle, WAIT_MS));
            net_server_stats(&t->server, &st);
            assert_int_equal(st.connections, 2);
        }
    }
    /* The busy one and the one with a request in flight are still open. */
    assert_true(client_open_now(busy));
    assert_true(client_open_now(holding));
    net_server_stats(&t->server, &st);
    assert_int_equal(st.idle_closed_total, 2);
    assert_int_equal(st.connections, 2);
    /* Answered, the holding connection starts idling too; both close a period later. */
    answer_held(t, 0);
    expect_echo(t, holding, 1, NULL, 0);
    sim_step(t, 90);
    assert_true(client_open_now(holding));
    sim_step(t, 20);
    assert_true(client_wait_closed(t, holding, WAIT_MS));
    assert_true(client_wait_closed(t, busy, WAIT_MS));
    net_server_stats(&t->server, &st);
    assert_int_equal(st.idle_closed_total, 4);
    assert_int_equal(st.connections, 0);
    close(stuck);
    close(idle);
    close(busy);
    close(holding);
    th_stop(t);
}

/* ---- sendfile --------------------------------------------------------------------------- */

static void make_file(struct th *t, uint64_t seed)
{
    char path[] = "/tmp/chronik-net-test-XXXXXX";
    t->file_fd = mkstemp(path);
    assert_true(t->file_fd >= 0);
    unlink(path);
    struct rng rng;
    rng_seed(&rng, seed);
    t->file_data = xmalloc(FILE_BYTES);
    rng_fill(&rng, t->file_data, FILE_BYTES);
    assert_int_equal(pwrite(t->file_fd, t->file_data, FILE_BYTES, 0), (ssize_t)FILE_BYTES);
}

static void send_file_frame(struct th *t, int fd, uint8_t op, uint32_t id, uint32_t off,
                            uint32_t len, uint8_t slot)
{
    uint8_t p[9];
    be32_store(p, off);
    be32_store(p + 4, len);
    p[8] = slot;
    send_frame(t, fd, op, id, p, sizeof(p));
}

static void expect_file_response(struct th *t, int fd, uint32_t id, uint32_t off, uint32_t len)
{
    struct buf r;
    buf_init(&r);
    assert_true(recv_frame(t, fd, &r));
    assert_int_equal(r.len, 4 + 1 + len + 100 + 1);
    assert_int_equal(be32_load(r.data), id);
    assert_int_equal(r.data[4], '<');
    assert_memory_equal(r.data + 5, t->file_data + off, len);
    assert_memory_equal(r.data + 5 + len, t->file_data, 100);
    assert_int_equal(r.data[r.len - 1], '>');
    buf_deinit(&r);
}

static void test_sendfile(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    make_file(t, test_seed());
    int fd = client_connect(t);
    send_file_frame(t, fd, OP_FILE, 1, 0, FILE_BYTES, 0);
    send_file_frame(t, fd, OP_FILE, 2, 12345, 1000, 2);
    send_frame(t, fd, OP_ECHO, 3, "after", 5);
    expect_file_response(t, fd, 1, 0, FILE_BYTES);
    expect_file_response(t, fd, 2, 12345, 1000);
    expect_echo(t, fd, 3, "after", 5);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(t->releases[i], 1);

    /* A range past the end of the file: the frame cannot be completed, so the connection is
     * closed, and the pieces are still released exactly once. */
    send_file_frame(t, fd, OP_FILE, 4, FILE_BYTES - 10, 100, 4);
    assert_true(client_wait_closed(t, fd, WAIT_MS));
    pump_ms(t, 10);
    assert_int_equal(t->releases[4], 1);
    assert_int_equal(t->releases[5], 1);
    close(fd);
    th_stop(t);
}

/* ---- closes with requests in flight ----------------------------------------------------- */

static void test_disconnect_inflight(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    make_file(t, 7);
    int fd = client_connect(t);
    for (uint32_t i = 0; i < 10; i++)
        send_frame(t, fd, OP_HOLD, i, "held", 4);
    send_file_frame(t, fd, OP_FILE_HOLD, 10, 0, 5000, 0);
    send_file_frame(t, fd, OP_FILE_HOLD, 11, 100, 5000, 2);
    uint64_t end = now_ms() + WAIT_MS;
    while (t->held_count < 12) {
        assert_true(now_ms() < end);
        pump(t);
    }
    /* Some answered before the close: their responses are queued behind held ones. */
    answer_held(t, 5);
    answer_held(t, 7);
    close(fd);
    while (t->closed_count == 0) {
        assert_true(now_ms() < end);
        pump(t);
    }
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(t->releases[i], 0);
    /* The handler answers afterwards; every answer is dropped safely. */
    while (t->held_count > 0) {
        struct net_request *req = t->held[--t->held_count];
        assert_false(net_request_connected(req));
        assert_int_equal(net_request_append(req, "late", 4), 0);
        net_request_complete(req);
    }
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(t->releases[i], 1);

    /* A client that stops reading with big responses queued, then goes away. */
    t->big_bytes = 256 * KIB;
    int fd2 = client_connect_raw(net_server_port(&t->server), 4096);
    assert_true(fd2 >= 0);
    for (uint32_t i = 0; i < 40; i++)
        send_frame(t, fd2, OP_BIG, i, NULL, 0);
    pump_ms(t, 50);
    struct net_server_stats st;
    net_server_stats(&t->server, &st);
    assert_true(st.output_bytes > 0);
    close(fd2);
    while (t->closed_count < 2) {
        assert_true(now_ms() < end);
        pump(t);
    }
    net_server_stats(&t->server, &st);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.output_bytes, 0);
    th_stop(t);
}

static uint32_t find_held(struct th *t, uint32_t id)
{
    for (uint32_t i = 0; i < t->held_count; i++) {
        if (be32_load(net_request_frame(t->held[i]).ptr + 1) == id)
            return i;
    }
    fail_msg("request %u is not held", id);
    return UINT32_MAX;
}

static struct net_request *take_held(struct th *t, uint32_t id)
{
    uint32_t i = find_held(t, id);
    struct net_request *req = t->held[i];
    t->held[i] = t->held[--t->held_count];
    return req;
}

static void test_abort(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    make_file(t, 3);

    /* Aborted by the handler while parsing: the connection closes, nothing after is read. */
    int fd = client_connect(t);
    struct buf b;
    buf_init(&b);
    frame_build(&b, OP_HOLD, 1, NULL, 0);
    frame_build(&b, OP_ECHO, 2, NULL, 0);
    frame_build(&b, OP_ABORT, 3, NULL, 0);
    frame_build(&b, OP_ECHO, 4, NULL, 0);
    client_send(t, fd, b.data, b.len);
    assert_true(client_wait_closed(t, fd, WAIT_MS));
    assert_int_equal(t->requests, 3);
    assert_int_equal(t->closed_count, 1);
    /* The request still with the handler was detached; aborting it now only frees it. */
    assert_int_equal(t->held_count, 1);
    assert_false(net_request_connected(t->held[0]));
    net_request_abort(t->held[--t->held_count]);
    close(fd);

    /* Aborted from a release callback, that is while the server writes the connection. */
    fd = client_connect(t);
    buf_reset(&b);
    frame_build(&b, OP_ABORT_HOLD, 5, NULL, 0);
    frame_build(&b, OP_HOLD, 6, NULL, 0);
    client_send(t, fd, b.data, b.len);
    uint64_t end = now_ms() + WAIT_MS;
    while (t->held_count < 2) {
        assert_true(now_ms() < end);
        pump(t);
    }
    t->abort_on_release = t->held[find_held(t, 6)];
    struct net_request *first = t->held[find_held(t, 5)];
    t->held_count = 0;
    net_request_complete(first);
    struct buf r;
    buf_init(&r);
    assert_true(recv_frame(t, fd, &r));
    assert_int_equal(r.len, 4 + 10);
    assert_memory_equal(r.data + 4, t->file_data, 10);
    assert_true(client_wait_closed(t, fd, WAIT_MS));
    assert_int_equal(t->abort_releases, 1);
    assert_int_equal(t->closed_count, 2);
    close(fd);

    /* The client goes away while a completed response waits behind a held request; dropping
     * it runs its release callback, which aborts another request of the closing connection. */
    fd = client_connect(t);
    buf_reset(&b);
    frame_build(&b, OP_HOLD, 6, NULL, 0);
    frame_build(&b, OP_ABORT_HOLD, 7, NULL, 0);
    frame_build(&b, OP_HOLD, 8, NULL, 0);
    client_send(t, fd, b.data, b.len);
    while (t->held_count < 3) {
        assert_true(now_ms() < end);
        pump(t);
    }
    t->abort_on_release = take_held(t, 8);
    net_request_complete(take_held(t, 7));
    pump_ms(t, 10);
    assert_int_equal(t->abort_releases, 1);
    close(fd);
    while (t->closed_count < 3) {
        assert_true(now_ms() < end);
        pump(t);
    }
    assert_int_equal(t->abort_releases, 2);
    assert_null(t->abort_on_release);
    assert_int_equal(t->held_count, 1);
    buf_deinit(&r);
    buf_deinit(&b);
    close(fd);
    th_stop(t);
}

/* ---- shutdown --------------------------------------------------------------------------- */

static void test_shutdown_graceful(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    uint16_t port = net_server_port(&t->server);
    int fds[3];
    for (uint32_t c = 0; c < 3; c++) {
        fds[c] = client_connect(t);
        send_frame(t, fds[c], OP_HOLD, c * 10, "a", 1);
        send_frame(t, fds[c], OP_HOLD, c * 10 + 1, "b", 1);
    }
    int idle = client_connect(t);
    uint64_t end = now_ms() + WAIT_MS;
    while (t->held_count < 6) {
        assert_true(now_ms() < end);
        pump(t);
    }
    assert_int_equal(net_server_shutdown(&t->server, WAIT_MS, on_shutdown, t), 0);
    assert_int_equal(net_server_shutdown(&t->server, WAIT_MS, on_shutdown, t), ERR_STATE);
    assert_false(t->shutdown_done);
    /* The idle connection goes at once; nobody new gets in. */
    assert_true(client_wait_closed(t, idle, WAIT_MS));
    assert_true(client_connect_raw(port, 0) < 0);
    assert_false(t->shutdown_done);
    /* The in-flight requests finish and their responses are delivered before the close. */
    while (t->held_count > 0)
        answer_held(t, t->held_count - 1);
    for (uint32_t c = 0; c < 3; c++) {
        expect_echo(t, fds[c], c * 10, "a", 1);
        expect_echo(t, fds[c], c * 10 + 1, "b", 1);
        assert_true(client_wait_closed(t, fds[c], WAIT_MS));
    }
    /* Done as soon as the last connection is gone, long before the timeout. */
    uint64_t done_by = now_ms() + 2000;
    while (!t->shutdown_done) {
        assert_true(now_ms() < done_by);
        pump(t);
    }
    struct net_server_stats st;
    net_server_stats(&t->server, &st);
    assert_int_equal(st.connections, 0);
    for (uint32_t c = 0; c < 3; c++)
        close(fds[c]);
    close(idle);
    th_stop(t);
}

static void test_shutdown_timeout(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    int fd = client_connect(t);
    send_frame(t, fd, OP_HOLD, 1, NULL, 0);
    uint64_t end = now_ms() + WAIT_MS;
    while (t->held_count < 1) {
        assert_true(now_ms() < end);
        pump(t);
    }
    uint64_t start = now_ms();
    assert_int_equal(net_server_shutdown(&t->server, 50, on_shutdown, t), 0);
    /* Requests arriving during a shutdown are not read. */
    send_frame(t, fd, OP_ECHO, 2, "z", 1);
    pump_ms(t, 20);
    assert_int_equal(t->requests, 1);
    assert_false(t->shutdown_done);
    while (!t->shutdown_done) {
        assert_true(now_ms() < end);
        pump(t);
    }
    assert_true(now_ms() - start >= 50);
    assert_true(client_wait_closed(t, fd, WAIT_MS));
    /* The request outlived its connection; th_stop completes it. */
    assert_false(net_request_connected(t->held[0]));
    close(fd);
    th_stop(t);
}

/* ---- many connections ------------------------------------------------------------------- */

static void test_many_connections(void **state)
{
    (void)state;
    enum { CONNS = 400 };
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2 * CONNS + 64) {
        rl.rlim_cur = MIN(rl.rlim_max, (rlim_t)4096);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    assert_true(rl.rlim_cur >= 2 * CONNS + 64);
    struct net_server_config cfg = test_config();
    struct th *t = th_start(&cfg, false);
    int *fds = xcalloc(CONNS, sizeof(*fds));
    for (uint32_t c = 0; c < CONNS; c++) {
        fds[c] = client_connect(t);
        pump(t);
    }
    for (uint32_t c = 0; c < CONNS; c++) {
        send_frame(t, fds[c], OP_ECHO, c, "one", 3);
        send_frame(t, fds[c], OP_NONE, c, NULL, 0);
        send_frame(t, fds[c], OP_ECHO, c + 1, "two", 3);
    }
    struct net_server_stats st;
    net_server_stats(&t->server, &st);
    assert_int_equal(st.connections, CONNS);
    for (uint32_t c = 0; c < CONNS; c++) {
        expect_echo(t, fds[c], c, "one", 3);
        expect_echo(t, fds[c], c + 1, "two", 3);
    }
    assert_int_equal(t->requests, 3 * CONNS);
    for (uint32_t c = 0; c < CONNS; c++)
        close(fds[c]);
    uint64_t end = now_ms() + WAIT_MS;
    while (t->closed_count < CONNS) {
        assert_true(now_ms() < end);
        pump(t);
    }
    free(fds);
    th_stop(t);
}

static void test_connection_limit(void **state)
{
    (void)state;
    struct net_server_config cfg = test_config();
    cfg.connections_max = 4;
    struct th *t = th_start(&cfg, false);
    int fds[6];
    for (uint32_t c = 0; c < 6; c++) {
        fds[c] = client_connect(t);
        pump_ms(t, 5);
    }
    assert_true(client_wait_closed(t, fds[4], WAIT_MS));
    assert_true(client_wait_closed(t, fds[5], WAIT_MS));
    for (uint32_t c = 0; c < 4; c++) {
        send_frame(t, fds[c], OP_ECHO, c, "k", 1);
        expect_echo(t, fds[c], c, "k", 1);
    }
    /* A slot freed by a close is usable again. */
    close(fds[0]);
    uint64_t end = now_ms() + WAIT_MS;
    while (t->closed_count < 1) {
        assert_true(now_ms() < end);
        pump(t);
    }
    fds[0] = client_connect(t);
    send_frame(t, fds[0], OP_ECHO, 42, "k", 1);
    expect_echo(t, fds[0], 42, "k", 1);
    for (uint32_t c = 0; c < 6; c++)
        close(fds[c]);
    th_stop(t);
}

static void test_config_and_response_bounds(void **state)
{
    (void)state;
    struct loop_epoll l;
    assert_int_equal(loop_epoll_init(&l, clock_real()), 0);
    struct net_handler h = {.request = on_request};
    struct net_server s;
    struct net_server_config cfg = test_config();
    cfg.inflight_requests_max = NET_INFLIGHT_REQUESTS_MAX + 1;
    assert_int_equal(net_server_init(&s, &l.loop, &cfg, &h), ERR_INVALID);
    cfg = test_config();
    cfg.frame_bytes_max = 0;
    assert_int_equal(net_server_init(&s, &l.loop, &cfg, &h), ERR_INVALID);
    cfg = test_config();
    cfg.connections_max = NET_CONNECTIONS_MAX + 1;
    assert_int_equal(net_server_init(&s, &l.loop, &cfg, &h), ERR_INVALID);
    cfg = test_config();
    cfg.host = "host.invalid";
    assert_int_equal(net_server_init(&s, &l.loop, &cfg, &h), ERR_NOT_FOUND);
    loop_epoll_deinit(&l);

    /* A response over NET_RESPONSE_PIECES_MAX pieces or INT32_MAX bytes is refused. */
    struct net_server_config ok = test_config();
    struct th *t = th_start(&ok, false);
    make_file(t, 1);
    int fd = client_connect(t);
    send_frame(t, fd, OP_HOLD, 1, NULL, 0);
    uint64_t end = now_ms() + WAIT_MS;
    while (t->held_count < 1) {
        assert_true(now_ms() < end);
        pump(t);
    }
    struct net_request *req = t->held[0];
    for (uint32_t i = 0; i < NET_RESPONSE_PIECES_MAX; i++) {
        assert_int_equal(
            net_request_append_file(req, t->file_fd, i, 1, release_cb, &t->releases[0]), 0);
    }
    assert_int_equal(net_request_append_file(req, t->file_fd, 0, 1, release_cb, &t->releases[1]),
                     ERR_TOO_LARGE);
    t->held_count = 0;
    net_request_complete(req);
    struct buf r;
    buf_init(&r);
    assert_true(recv_frame(t, fd, &r));
    assert_int_equal(r.len, NET_RESPONSE_PIECES_MAX);
    assert_memory_equal(r.data, t->file_data, NET_RESPONSE_PIECES_MAX);
    assert_int_equal(t->releases[0], NET_RESPONSE_PIECES_MAX);
    assert_int_equal(t->releases[1], 0);
    buf_deinit(&r);

    send_frame(t, fd, OP_HOLD, 2, NULL, 0);
    while (t->held_count < 1) {
        assert_true(now_ms() < end);
        pump(t);
    }
    req = t->held[0];
    assert_int_equal(
        net_request_append_file(req, t->file_fd, 0, INT32_MAX, release_cb, &t->releases[2]), 0);
    assert_int_equal(net_request_append(req, "x", 1), ERR_TOO_LARGE);
    assert_int_equal(net_request_append_file(req, t->file_fd, 0, 1, release_cb, &t->releases[3]),
                     ERR_TOO_LARGE);
    t->held_count = 0;
    /* The file is far shorter than the range promised: the connection is closed. */
    net_request_complete(req);
    assert_true(client_wait_closed(t, fd, WAIT_MS));
    while (t->closed_count < 1) {
        assert_true(now_ms() < end);
        pump(t);
    }
    assert_int_equal(t->releases[2], 1);
    assert_int_equal(t->releases[3], 0);
    close(fd);
    th_stop(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framing_segmentation),
        cmocka_unit_test(test_frame_reuse),
        cmocka_unit_test(test_frame_cache_trim),
        cmocka_unit_test(test_release_frame),
        cmocka_unit_test(test_bad_frame_sizes),
        cmocka_unit_test(test_pipelined_out_of_order),
        cmocka_unit_test(test_backpressure_inflight),
        cmocka_unit_test(test_backpressure_output),
        cmocka_unit_test(test_backpressure_queued_bytes),
        cmocka_unit_test(test_queued_bytes_count_received_bytes),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_sendfile),
        cmocka_unit_test(test_disconnect_inflight),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_shutdown_graceful),
        cmocka_unit_test(test_shutdown_timeout),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_config_and_response_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
