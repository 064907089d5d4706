/*
 * The Kafka listener (see net/server.h for the contract): accept, framing, per-connection
 * request queues, ordered response writing with writev(2) and sendfile(2), back-pressure, idle
 * timeouts and clean shutdown.
 *
 * Each connection owns a FIFO of requests in arrival order. A request is in the queue from the
 * moment its frame is complete until its response is fully written (or, for "no response",
 * until it is completed). Only the head of the queue is ever written, so responses leave in
 * request order whatever order the handler completes them in.
 *
 * Invariants:
 * - conn->inflight == length of conn's queue; conn->handling == its requests not completed;
 *   conn->output_bytes == unsent bytes of the completed requests in it.
 * - A request is referenced by at most one queue; req->conn is NULL exactly when the request
 *   was detached by a close and waits for the handler to complete it.
 * - A closed connection holds no fd, no watch, no timer and no request; only its struct lives
 *   on until the reaper timer frees it, so code that called something able to close the
 *   connection may still test conn->closed afterwards.
 * - Unparsed input kept for a paused connection is at most NET_READ_CHUNK_BYTES.
 * - stats.queued_bytes == the sum of `charged` over the requests whose server is s: every
 *   partial frame, queued request and detached request not yet completed. A detached request
 *   not completed is on s->detached, so deinit can let go of it.
 *
 * Must never: allocate for a frame before its size is validated, write a response before the
 * earlier ones, call a file piece's release callback twice, or touch a request after freeing it.
 */
#include "net/server.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define NS_PER_MS 1000000u
/* Linux transfers at most this much in one sendfile(2) call. */
#define SENDFILE_CALL_BYTES_MAX 0x7ffff000u
#define FRAME_ALLOC_BYTES_MIN   4096u
#define PIECE_ALLOC_BYTES_MIN   256u

STATIC_ASSERT(NET_READ_CHUNK_BYTES <= NET_READ_WAKEUP_BYTES_MAX, "a wake-up reads one chunk");

enum piece_kind { PIECE_MEM, PIECE_FILE };

struct piece {
    enum piece_kind kind;
    bool released; /* file pieces: release() was called */
    uint64_t len;
    union {
        struct {
            uint8_t *data;
            size_t cap; /* 0 when data is not owned (the size prefix) */
        } mem;
        struct {
            int fd;
            uint64_t offset;
            net_release_fn release;
            void *ctx;
        } file;
    };
};

struct net_request {
    struct net_request *prev;
    struct net_request *next;
    struct net_conn *conn;     /* NULL once detached by a close */
    struct net_server *server; /* NULL once the server is gone (deinit) */
    uint64_t charged;          /* bytes counted in server->stats.queued_bytes */
    uint64_t conn_id;
    uint8_t *frame;
    uint32_t frame_len; /* the size from the prefix */
    uint32_t frame_got; /* bytes received so far */
    uint32_t frame_cap;
    bool completed;
    uint8_t size_prefix[4];
    /* pieces[0] is the response's size prefix; the handler's pieces follow. */
    struct piece *pieces;
    uint32_t piece_count;
    uint32_t piece_cap;
    uint64_t response_bytes; /* the handler's pieces, without the prefix */
    uint32_t send_piece;     /* progress of the write */
    uint64_t send_off;
};

struct net_conn {
    struct net_conn *prev;
    struct net_conn *next;
    struct net_server *server;
    uint64_t id;
    struct loop_fd watch;
    struct loop_timer idle_timer;
    uint64_t active_ns; /* the last traffic or completion */
    bool closed;
    bool in_read;       /* feeding input: completions wait for the end of it to write */
    bool flushing;      /* inside conn_flush: completions are picked up by its loop */
    bool write_blocked; /* the socket said EAGAIN; waiting for LOOP_WRITE */
    bool doomed;        /* aborted during a flush: closed when the flush returns */
    uint8_t hdr[4];
    uint32_t hdr_len;
    struct net_request *partial; /* the frame being received, not yet in the queue */
    uint8_t *pending;            /* input read but not parsed while paused */
    uint32_t pending_len;
    uint32_t pending_off;
    struct net_request *req_head;
    struct net_request *req_tail;
    uint32_t inflight;
    uint32_t handling; /* requests in the queue not completed yet */
    uint64_t output_bytes;
};

static void conn_close(struct net_conn *c);
static void conn_settle(struct net_conn *c);

/* ---- requests --------------------------------------------------------------------------- */

static bool queued_full(const struct net_server *s)
{
    return s->cfg.queued_bytes_max > 0 && s->stats.queued_bytes >= s->cfg.queued_bytes_max;
}

static void req_charge(struct net_request *req, uint64_t n)
{
    struct net_server *s = req->server;
    req->charged += n;
    if (s == NULL)
        return;
    bool was_full = queued_full(s);
    s->stats.queued_bytes += n;
    if (was_full || !queued_full(s))
        return;
    s->stats.queued_pauses_total++;
    if (s->handler.pressure != NULL && s->loop != NULL && !loop_timer_active(&s->pressure_timer)) {
        int rc = loop_timer_start(s->loop, &s->pressure_timer, 0, 0);
        ASSERT(rc == 0 || rc == ERR_TOO_LARGE);
    }
}

/* Gives back n of the bytes req holds; reading resumes (from a timer, outside any callback of
 * a connection) when that takes the memory below its bound. */
static void req_uncharge_bytes(struct net_request *req, uint64_t n)
{
    struct net_server *s = req->server;
    ASSERT(n <= req->charged);
    req->charged -= n;
    if (s == NULL || n == 0)
        return;
    bool was_full = queued_full(s);
    ASSERT(s->stats.queued_bytes >= n);
    s->stats.queued_bytes -= n;
    if (was_full && !queued_full(s) && s->loop != NULL && !loop_timer_active(&s->resume_timer)) {
        int rc = loop_timer_start(s->loop, &s->resume_timer, 0, 0);
        ASSERT(rc == 0 || rc == ERR_TOO_LARGE);
    }
}

static void req_uncharge(struct net_request *req)
{
    req_uncharge_bytes(req, req->charged);
}

void net_request_charge(struct net_request *req, uint64_t n)
{
    ASSERT(!req->completed);
    req_charge(req, n);
}

static struct net_request *req_new(struct net_conn *c, uint32_t frame_len)
{
    ASSERT(frame_len > 0 && frame_len <= c->server->cfg.frame_bytes_max);
    struct net_request *req = xcalloc(1, sizeof(*req));
    req->conn = c;
    req->server = c->server;
    req->conn_id = c->id;
    req->frame_len = frame_len;
    return req;
}

static void detached_unlink(struct net_request *req)
{
    struct net_server *s = req->server;
    if (s == NULL)
        return;
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        s->detached = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
}

/* Starts a period after which the buffers that stayed cached all along, beyond the bytes kept
 * for good, are freed. A timer that cannot start leaves them cached, within the cache's bound. */
static void frame_cache_arm(struct net_server *s)
{
    if (s->frame_cache_bytes <= NET_FRAME_CACHE_KEEP_BYTES || s->loop == NULL ||
        loop_timer_active(&s->trim_timer))
        return;
    s->frame_cache_low = s->frame_cache_count;
    int rc = loop_timer_start(s->loop, &s->trim_timer, NET_FRAME_CACHE_IDLE_MS, 0);
    ASSERT(rc == 0 || rc == ERR_TOO_LARGE);
}

/* Removes entries [at, at + n) of the cache, keeping the rest in the order they were put back;
 * the caller has taken or freed their buffers and counted their bytes off. */
static void frame_cache_cut(struct net_server *s, uint32_t at, uint32_t n)
{
    ASSERT(at + n <= s->frame_cache_count);
    uint32_t after = s->frame_cache_count - at - n;
    memmove(&s->frame_cache[at], &s->frame_cache[at + n], after * sizeof(s->frame_cache[0]));
    memmove(&s->frame_cache_caps[at], &s->frame_cache_caps[at + n],
            after * sizeof(s->frame_cache_caps[0]));
    s->frame_cache_count -= n;
}

/* The timer of frame_cache_arm: frame_cache_low buffers were not needed during the period. */
static void frame_cache_trim(void *ctx)
{
    struct net_server *s = ctx;
    ASSERT(s->frame_cache_low <= s->frame_cache_count);
    /* The oldest first: the ones put back last are the warmest. */
    uint32_t n = 0;
    for (; n < s->frame_cache_low && s->frame_cache_bytes > NET_FRAME_CACHE_KEEP_BYTES; n++) {
        s->frame_cache_bytes -= s->frame_cache_caps[n];
        free(s->frame_cache[n]);
    }
    frame_cache_cut(s, 0, n);
    frame_cache_arm(s);
}

/* Keeps a freed frame buffer for reuse when it is large enough to be worth it and the cache has
 * room; false when the caller must free it. */
static bool frame_cache_put(struct net_server *s, uint8_t *frame, uint32_t cap)
{
    ASSERT(s->frame_cache_count <= NET_FRAME_CACHE_COUNT);
    if (frame == NULL || cap < NET_FRAME_CACHE_BUF_BYTES_MIN ||
        s->frame_cache_count == NET_FRAME_CACHE_COUNT ||
        s->frame_cache_bytes + cap > NET_FRAME_CACHE_BYTES_MAX)
        return false;
    s->frame_cache[s->frame_cache_count] = frame;
    s->frame_cache_caps[s->frame_cache_count] = cap;
    s->frame_cache_count++;
    s->frame_cache_bytes += cap;
    frame_cache_arm(s);
    return true;
}

/* A frame buffer no request holds any more: cached by s (NULL: none), or freed. */
static void frame_give_back(struct net_server *s, uint8_t *frame, uint32_t cap)
{
    if (s == NULL || !frame_cache_put(s, frame, cap))
        free(frame);
}

/* Gives req a cached buffer: the smallest that holds the whole frame, else the largest; of
 * equal ones the one put back last, which is the likeliest to be in the CPU's caches still.
 * Memory that already exists, so this does not let a peer's announced size allocate anything. */
static void frame_cache_take(struct net_server *s, struct net_request *req)
{
    ASSERT(req->frame == NULL && req->frame_cap == 0);
    uint32_t best = UINT32_MAX;
    for (uint32_t i = s->frame_cache_count; i-- > 0;) {
        uint32_t cap = s->frame_cache_caps[i];
        if (best == UINT32_MAX) {
            best = i;
            continue;
        }
        uint32_t have = s->frame_cache_caps[best];
        bool fits = cap >= req->frame_len, best_fits = have >= req->frame_len;
        if ((fits && (!best_fits || cap < have)) || (!fits && !best_fits && cap > have))
            best = i;
    }
    if (best == UINT32_MAX)
        return;
    req->frame = s->frame_cache[best];
    req->frame_cap = s->frame_cache_caps[best];
    s->frame_cache_bytes -= req->frame_cap;
    frame_cache_cut(s, best, 1);
    s->frame_cache_low = MIN(s->frame_cache_low, s->frame_cache_count);
}

/* Grows the frame buffer to hold at least need bytes, at most doubling (then rounded up to whole
 * huge pages past NET_FRAME_HEAP_BYTES_MAX), so memory follows the bytes actually received rather
 * than the size a peer announced. A frame larger than the first allocation starts from a cached
 * buffer instead, when there is one. */
static void frame_grow(struct net_server *s, struct net_request *req, uint32_t need)
{
    ASSERT(need <= req->frame_len);
    if (need <= req->frame_cap)
        return;
    if (req->frame == NULL && req->frame_len > FRAME_ALLOC_BYTES_MIN) {
        frame_cache_take(s, req);
        if (need <= req->frame_cap)
            return;
    }
    uint64_t cap = MAX((uint64_t)req->frame_cap * 2, FRAME_ALLOC_BYTES_MIN);
    cap = MIN(MAX(cap, need), req->frame_len);
    if (cap <= NET_FRAME_HEAP_BYTES_MAX) {
        req->frame = xrealloc(req->frame, cap);
    } else {
        /* Fresh memory faults once per 4 KiB page on first touch: a produce request of
         * librdkafka's default batch size (1 MB) read into fresh pages cost about 250 faults,
         * and the first produce requests after a start were answered 10-40 ms late on the VM
         * this is measured on while the frame cache was still filling. In huge pages, one fault
         * per 2 MiB. frame_len <= INT32_MAX, so the rounded size fits the 32-bit capacity. */
        cap = (cap + ALLOC_HUGE_BYTES - 1) / ALLOC_HUGE_BYTES * ALLOC_HUGE_BYTES;
        uint8_t *frame = xmalloc_huge(cap);
        if (req->frame_got > 0)
            memcpy(frame, req->frame, req->frame_got);
        free(req->frame);
        req->frame = frame;
    }
    req->frame_cap = (uint32_t)cap;
}

/* frame_grow, with the buffer's growth counted as request memory: a frame counts for the memory
 * it has, not the size its peer announced, so announcing large frames and sending nothing
 * cannot use up the bound. */
static void frame_reserve(struct net_server *s, struct net_request *req, uint32_t need)
{
    uint32_t before = req->frame_cap;
    frame_grow(s, req, need);
    req_charge(req, req->frame_cap - before);
}

static void piece_release(struct piece *p)
{
    if (p->kind != PIECE_FILE || p->released)
        return;
    p->released = true;
    p->file.release(p->file.ctx);
}

/* Frees req. Its frame buffer goes to the cache of s when given: only while the request is
 * attached, since a detached one may be freed after net_server_deinit. */
static void req_free(struct net_server *s, struct net_request *req)
{
    req_uncharge(req);
    for (uint32_t i = 0; i < req->piece_count; i++) {
        struct piece *p = &req->pieces[i];
        if (p->kind == PIECE_MEM && p->mem.cap > 0)
            free(p->mem.data);
        piece_release(p);
    }
    free(req->pieces);
    frame_give_back(s, req->frame, req->frame_cap);
    free(req);
}

static void queue_push(struct net_conn *c, struct net_request *req)
{
    req->prev = c->req_tail;
    req->next = NULL;
    if (c->req_tail != NULL)
        c->req_tail->next = req;
    else
        c->req_head = req;
    c->req_tail = req;
    c->inflight++;
}

static void queue_unlink(struct net_conn *c, struct net_request *req)
{
    ASSERT(c->inflight > 0);
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        c->req_head = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    else
        c->req_tail = req->prev;
    req->prev = NULL;
    req->next = NULL;
    c->inflight--;
}

struct slice net_request_frame(const struct net_request *req)
{
    ASSERT(req->frame_got == req->frame_len && req->frame != NULL);
    return slice_make(req->frame, req->frame_len);
}

void net_request_release_frame(struct net_request *req)
{
    ASSERT(req->frame_got == req->frame_len);
    if (req->frame == NULL)
        return;
    uint32_t cap = req->frame_cap;
    /* Cached only while attached, as in req_free. */
    frame_give_back(req->conn != NULL ? req->server : NULL, req->frame, cap);
    req->frame = NULL;
    req->frame_cap = 0;
    req_uncharge_bytes(req, cap);
}

uint64_t net_request_conn_id(const struct net_request *req)
{
    return req->conn_id;
}

bool net_request_connected(const struct net_request *req)
{
    return req->conn != NULL;
}

/* Makes room for one more piece after checking the response bounds. */
static int piece_room(struct net_request *req, uint64_t n)
{
    ASSERT(!req->completed);
    if (n > (uint64_t)INT32_MAX - req->response_bytes)
        return ERR_TOO_LARGE;
    if (req->piece_count == req->piece_cap) {
        if (req->piece_cap > NET_RESPONSE_PIECES_MAX)
            return ERR_TOO_LARGE;
        uint32_t cap =
            req->piece_cap == 0 ? 4 : MIN(req->piece_cap * 2, NET_RESPONSE_PIECES_MAX + 1);
        req->pieces = xrealloc(req->pieces, cap * sizeof(*req->pieces));
        req->piece_cap = cap;
    }
    if (req->piece_count == 0) {
        req->pieces[0] = (struct piece){.kind = PIECE_MEM, .mem.data = req->size_prefix};
        req->piece_count = 1;
    }
    return 0;
}

int net_request_append(struct net_request *req, const void *p, size_t n)
{
    ASSERT(p != NULL || n == 0);
    if (n == 0)
        return 0;
    struct piece *last = req->piece_count > 1 ? &req->pieces[req->piece_count - 1] : NULL;
    if (last != NULL && last->kind == PIECE_MEM && last->mem.cap > 0) {
        /* Coalesce into the last owned buffer: fewer pieces, fewer iovecs. */
        if (n > (uint64_t)INT32_MAX - req->response_bytes)
            return ERR_TOO_LARGE;
        if (last->len + n > last->mem.cap) {
            size_t cap = MAX(last->mem.cap * 2, last->len + n);
            last->mem.data = xrealloc(last->mem.data, cap);
            last->mem.cap = cap;
        }
        memcpy(last->mem.data + last->len, p, n);
        last->len += n;
        req->response_bytes += n;
        req_charge(req, n);
        return 0;
    }
    int rc = piece_room(req, n);
    if (rc < 0)
        return rc;
    size_t cap = MAX(n, PIECE_ALLOC_BYTES_MIN);
    struct piece *piece = &req->pieces[req->piece_count++];
    *piece = (struct piece){.kind = PIECE_MEM, .len = n, .mem = {xmalloc(cap), cap}};
    memcpy(piece->mem.data, p, n);
    req->response_bytes += n;
    req_charge(req, n);
    return 0;
}

int net_request_append_buf(struct net_request *req, struct buf *b)
{
    ASSERT(b->len <= b->cap);
    if (b->len == 0)
        return 0;
    int rc = piece_room(req, b->len);
    if (rc < 0)
        return rc;
    struct piece *piece = &req->pieces[req->piece_count++];
    *piece = (struct piece){.kind = PIECE_MEM, .len = b->len, .mem = {b->data, b->cap}};
    req->response_bytes += b->len;
    req_charge(req, b->len);
    buf_init(b);
    return 0;
}

int net_request_append_file(struct net_request *req, int fd, uint64_t offset, uint64_t len,
                            net_release_fn release, void *ctx)
{
    ASSERT(fd >= 0 && release != NULL);
    ASSERT(len > 0 && offset <= (uint64_t)INT64_MAX - len);
    int rc = piece_room(req, len);
    if (rc < 0)
        return rc;
    struct piece *piece = &req->pieces[req->piece_count++];
    *piece = (struct piece){.kind = PIECE_FILE, .len = len, .file = {fd, offset, release, ctx}};
    req->response_bytes += len;
    return 0;
}

void net_request_complete(struct net_request *req)
{
    ASSERT(!req->completed);
    ASSERT(req->frame_got == req->frame_len);
    req->completed = true;
    struct net_conn *c = req->conn;
    if (c == NULL) {
        detached_unlink(req);
        req_free(NULL, req);
        return;
    }
    ASSERT(!c->closed && c->handling > 0);
    c->handling--;
    c->active_ns = loop_now_ns(c->server->loop);
    if (req->piece_count == 0) {
        queue_unlink(c, req);
        req_free(c->server, req);
    } else {
        be32_store(req->size_prefix, (uint32_t)req->response_bytes);
        req->pieces[0].len = sizeof(req->size_prefix);
        c->output_bytes += sizeof(req->size_prefix) + req->response_bytes;
    }
    /* Inside a read or a flush of this connection the outer code writes when it is done, which
     * batches the responses of pipelined requests into few system calls. */
    if (!c->in_read && !c->flushing)
        conn_settle(c);
}

void net_request_abort(struct net_request *req)
{
    ASSERT(!req->completed);
    ASSERT(req->frame_got == req->frame_len);
    req->completed = true;
    struct net_conn *c = req->conn;
    if (c != NULL) {
        ASSERT(c->handling > 0);
        c->handling--;
        queue_unlink(c, req);
    } else {
        detached_unlink(req);
    }
    req_free(c != NULL ? c->server : NULL, req);
    if (c == NULL)
        return;
    /* A flush is walking this connection's queue (the abort came from a release callback), so
     * the close waits for it; a close from inside the parser is safe, which checks after every
     * dispatch. */
    if (c->flushing)
        c->doomed = true;
    else
        conn_close(c);
}

/* ---- connection output ------------------------------------------------------------------ */

/* Accounts n bytes written from the head of the queue, releasing and freeing what is done. */
static void conn_advance(struct net_conn *c, uint64_t n)
{
    ASSERT(n <= c->output_bytes);
    c->output_bytes -= n;
    while (n > 0) {
        struct net_request *req = c->req_head;
        ASSERT(req != NULL && req->completed && req->send_piece < req->piece_count);
        struct piece *p = &req->pieces[req->send_piece];
        uint64_t take = MIN(p->len - req->send_off, n);
        req->send_off += take;
        n -= take;
        if (req->send_off < p->len)
            continue;
        piece_release(p);
        req->send_piece++;
        req->send_off = 0;
        if (req->send_piece == req->piece_count) {
            queue_unlink(c, req);
            req_free(c->server, req);
        }
    }
}

/* Gathers the memory pieces from the head onwards, across completed responses, up to the first
 * file piece. Returns the iovec count. */
static int gather_iov(struct net_conn *c, struct iovec *iov)
{
    int count = 0;
    struct net_request *req = c->req_head;
    uint32_t pi = req->send_piece;
    uint64_t off = req->send_off;
    while (count < (int)NET_WRITE_IOV_MAX && req != NULL && req->completed) {
        struct piece *p = &req->pieces[pi];
        if (p->kind == PIECE_FILE)
            break;
        iov[count].iov_base = p->mem.data + off;
        iov[count].iov_len = p->len - off;
        count++;
        off = 0;
        if (++pi == req->piece_count) {
            req = req->next;
            pi = 0;
        }
    }
    return count;
}

/* Writes what the socket takes. Closes the connection on a write error or a short file. */
static void conn_flush(struct net_conn *c)
{
    ASSERT(!c->flushing);
    c->flushing = true;
    c->write_blocked = false;
    while (!c->closed && !c->doomed && c->req_head != NULL && c->req_head->completed) {
        struct net_request *req = c->req_head;
        struct piece *p = &req->pieces[req->send_piece];
        ssize_t n;
        if (p->kind == PIECE_FILE) {
            off_t off = (off_t)(p->file.offset + req->send_off);
            size_t want = (size_t)MIN(p->len - req->send_off, SENDFILE_CALL_BYTES_MAX);
            n = sendfile(c->watch.fd, p->file.fd, &off, want);
            if (n == 0) {
                /* The file ended before the promised range: the frame cannot be finished. */
                conn_close(c);
                break;
            }
        } else {
            struct iovec iov[NET_WRITE_IOV_MAX];
            n = writev(c->watch.fd, iov, gather_iov(c, iov));
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                c->write_blocked = true;
            else
                conn_close(c);
            break;
        }
        c->active_ns = loop_now_ns(c->server->loop);
        conn_advance(c, (uint64_t)n);
    }
    c->flushing = false;
    if (c->doomed)
        conn_close(c);
}

/* ---- connection input ------------------------------------------------------------------- */

static bool conn_read_allowed(const struct net_conn *c)
{
    const struct net_server *s = c->server;
    /* Request memory is checked between frames only: a frame begun is counted already. */
    return !c->closed && !c->doomed && !s->shutting_down &&
           c->inflight < s->cfg.inflight_requests_max &&
           c->output_bytes < s->cfg.output_bytes_max &&
           (c->partial != NULL || c->hdr_len > 0 || !queued_full(s));
}

static void conn_dispatch(struct net_conn *c, struct net_request *req)
{
    ASSERT(c->partial == req);
    c->partial = NULL;
    queue_push(c, req);
    c->handling++;
    c->server->stats.requests_total++;
    c->server->handler.request(c->server->handler.ctx, req);
}

/* Parses input into frames and dispatches them, stopping when reading is not allowed any more
 * (the rest stays with the caller) or the connection closed. Returns the bytes consumed. */
static size_t conn_feed(struct net_conn *c, const uint8_t *p, size_t n)
{
    ASSERT(c->in_read);
    size_t used = 0;
    while (used < n && conn_read_allowed(c)) {
        if (c->partial == NULL) {
            uint32_t take = (uint32_t)MIN(sizeof(c->hdr) - c->hdr_len, n - used);
            memcpy(c->hdr + c->hdr_len, p + used, take);
            c->hdr_len += take;
            used += take;
            if (c->hdr_len < sizeof(c->hdr))
                break;
            c->hdr_len = 0;
            int32_t size = (int32_t)be32_load(c->hdr);
            if (size <= 0 || (uint32_t)size > c->server->cfg.frame_bytes_max) {
                c->server->stats.frames_rejected_total++;
                conn_close(c);
                break;
            }
            c->partial = req_new(c, (uint32_t)size);
            continue;
        }
        struct net_request *req = c->partial;
        uint32_t take = (uint32_t)MIN(req->frame_len - req->frame_got, n - used);
        frame_reserve(c->server, req, req->frame_got + take);
        memcpy(req->frame + req->frame_got, p + used, take);
        req->frame_got += take;
        used += take;
        if (req->frame_got == req->frame_len)
            conn_dispatch(c, req);
    }
    return used;
}

static void conn_feed_pending(struct net_conn *c)
{
    ASSERT(c->pending_len > c->pending_off);
    c->in_read = true;
    size_t used = conn_feed(c, c->pending + c->pending_off, c->pending_len - c->pending_off);
    c->in_read = false;
    if (c->closed)
        return;
    c->pending_off += (uint32_t)used;
    if (c->pending_off == c->pending_len) {
        free(c->pending);
        c->pending = NULL;
        c->pending_len = 0;
        c->pending_off = 0;
    }
}

/* One read(2): into the frame directly when a large body is awaited (no copy), else into the
 * server's scratch buffer and through the parser. Returns bytes read, 0 to stop reading for
 * now, or -1 after closing the connection. */
static ssize_t conn_read_once(struct net_conn *c, size_t budget)
{
    struct net_request *req = c->partial;
    bool direct = req != NULL && req->frame_len - req->frame_got >= NET_READ_CHUNK_BYTES;
    uint8_t *dst = c->server->scratch;
    size_t want = MIN(budget, NET_READ_CHUNK_BYTES);
    if (direct) {
        size_t left = req->frame_len - req->frame_got;
        frame_reserve(c->server, req, req->frame_got + (uint32_t)MIN(left, want));
        dst = req->frame + req->frame_got;
        want = MIN(MIN(left, budget), req->frame_cap - req->frame_got);
    }
    ssize_t n = read(c->watch.fd, dst, want);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        /* End of stream or a socket error: Kafka closes, dropping responses in flight. */
        conn_close(c);
        return -1;
    }
    c->active_ns = loop_now_ns(c->server->loop);
    if (direct) {
        req->frame_got += (uint32_t)n;
        if (req->frame_got == req->frame_len)
            conn_dispatch(c, req);
        return n;
    }
    size_t used = conn_feed(c, dst, (size_t)n);
    if (!c->closed && used < (size_t)n) {
        c->pending_len = (uint32_t)((size_t)n - used);
        c->pending = xmalloc(c->pending_len);
        memcpy(c->pending, dst + used, c->pending_len);
        return 0;
    }
    return n;
}

static void conn_read(struct net_conn *c)
{
    ASSERT(c->pending_len == 0);
    c->in_read = true;
    size_t budget = NET_READ_WAKEUP_BYTES_MAX;
    while (budget > 0 && conn_read_allowed(c)) {
        size_t asked = MIN(budget, NET_READ_CHUNK_BYTES);
        ssize_t n = conn_read_once(c, budget);
        if (n <= 0)
            break;
        budget -= (size_t)n;
        /* A short read drained the socket; level-triggered readiness calls again for more. */
        if ((size_t)n < asked && c->partial == NULL)
            break;
    }
    c->in_read = false;
}

/* ---- connection state ------------------------------------------------------------------- */

/* Also called by a close from inside the parser, which stops touching the input right after. */
static void conn_drop_input(struct net_conn *c)
{
    ASSERT(c->pending_off <= c->pending_len);
    if (c->partial != NULL)
        req_free(c->server, c->partial);
    c->partial = NULL;
    c->hdr_len = 0;
    free(c->pending);
    c->pending = NULL;
    c->pending_len = 0;
    c->pending_off = 0;
}

/* Brings the connection up to date after anything changed: writes what is ready, parses input
 * held back while paused if reading is allowed again, sets the fd interest, and finishes the
 * connection during a shutdown once nothing is left. */
static void conn_settle(struct net_conn *c)
{
    ASSERT(!c->in_read && !c->flushing);
    for (;;) {
        if (c->closed)
            return;
        conn_flush(c);
        if (c->closed)
            return;
        if (c->pending_len == 0 || !conn_read_allowed(c))
            break;
        conn_feed_pending(c);
    }
    struct net_server *s = c->server;
    if (s->shutting_down) {
        /* Partly received frames and held-back input are dropped: no new request starts. */
        conn_drop_input(c);
        if (c->req_head == NULL) {
            conn_close(c);
            return;
        }
    }
    uint32_t events = (conn_read_allowed(c) && c->pending_len == 0 ? LOOP_READ : 0u) |
                      (c->write_blocked ? LOOP_WRITE : 0u);
    if (loop_fd_update(s->loop, &c->watch, events) < 0)
        conn_close(c);
}

static void conn_ready(void *ctx, uint32_t events)
{
    struct net_conn *c = ctx;
    ASSERT(!c->closed);
    if (events & LOOP_ERROR) {
        conn_close(c);
        return;
    }
    if ((events & LOOP_READ) && conn_read_allowed(c) && c->pending_len == 0)
        conn_read(c);
    conn_settle(c);
}

static void conn_idle(void *ctx)
{
    struct net_conn *c = ctx;
    struct net_server *s = c->server;
    ASSERT(!c->closed);
    uint64_t idle_ns = s->cfg.idle_ms * NS_PER_MS;
    uint64_t quiet_ns = loop_now_ns(s->loop) - c->active_ns;
    uint64_t delay_ms = s->cfg.idle_ms;
    if (c->handling == 0) {
        /* Only requests still with the handler keep a quiet connection open: responses the
         * peer does not read for that long are no reason to keep their memory and file pins. */
        if (quiet_ns >= idle_ns) {
            s->stats.idle_closed_total++;
            conn_close(c);
            return;
        }
        /* Traffic happened since the timer was set: wait for the rest of the period only. */
        delay_ms = (idle_ns - quiet_ns + NS_PER_MS - 1) / NS_PER_MS;
    }
    ASSERT(delay_ms > 0 && delay_ms <= s->cfg.idle_ms);
    if (loop_timer_start(s->loop, &c->idle_timer, delay_ms, 0) < 0)
        conn_close(c);
}

/* Unlinks every request from the connection. Those still with the handler now belong to it
 * alone and are freed when it completes them; the completed ones, which only waited to be
 * written, are returned in a private list for the caller to free. */
static struct net_request *conn_detach_requests(struct net_conn *c)
{
    ASSERT(c->closed);
    struct net_server *s = c->server;
    struct net_request *done = NULL;
    struct net_request *req = c->req_head;
    while (req != NULL) {
        struct net_request *next = req->next;
        req->prev = NULL;
        req->next = NULL;
        req->conn = NULL;
        if (req->completed) {
            req->next = done;
            done = req;
        } else {
            /* Still with the handler, and still holding its memory. */
            req->next = s->detached;
            if (s->detached != NULL)
                s->detached->prev = req;
            s->detached = req;
        }
        req = next;
    }
    c->req_head = NULL;
    c->req_tail = NULL;
    c->inflight = 0;
    c->handling = 0;
    c->output_bytes = 0;
    return done;
}

static void conn_close(struct net_conn *c)
{
    if (c->closed)
        return;
    struct net_server *s = c->server;
    c->closed = true;
    loop_fd_stop(s->loop, &c->watch);
    close(c->watch.fd);
    loop_timer_stop(s->loop, &c->idle_timer);
    conn_drop_input(c);
    struct net_request *done = conn_detach_requests(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = s->dead;
    s->dead = c;
    s->stats.connections--;
    if (!loop_timer_active(&s->reap_timer)) {
        int rc = loop_timer_start(s->loop, &s->reap_timer, 0, 0);
        ASSERT(rc == 0 || rc == ERR_TOO_LARGE);
    }
    /* Release callbacks run only now that the connection is consistent and off the list: they
     * may complete or abort other requests, of this connection (detached by now) or others. */
    while (done != NULL) {
        struct net_request *next = done->next;
        req_free(s, done);
        done = next;
    }
    if (s->handler.closed != NULL)
        s->handler.closed(s->handler.ctx, c->id);
    if (s->shutting_down && s->conns == NULL && s->shutdown_fn != NULL)
        loop_timer_start(s->loop, &s->shutdown_timer, 0, 0);
}

/* Frees the structs of closed connections once no callback can be using them. */
static void reap(void *ctx)
{
    struct net_server *s = ctx;
    while (s->dead != NULL) {
        struct net_conn *c = s->dead;
        ASSERT(c->closed);
        s->dead = c->next;
        free(c);
    }
}

/* ---- accepting -------------------------------------------------------------------------- */

static void conn_open(struct net_server *s, int fd)
{
    int one = 1;
    /* Kafka responses are written whole; Nagle would only delay the last segment. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct net_conn *c = xcalloc(1, sizeof(*c));
    c->server = s;
    c->id = s->conn_id_next++;
    c->active_ns = loop_now_ns(s->loop);
    loop_fd_init(&c->watch, fd, conn_ready, c);
    loop_timer_init(&c->idle_timer, conn_idle, c);
    if (loop_fd_start(s->loop, &c->watch, LOOP_READ) < 0 ||
        loop_timer_start(s->loop, &c->idle_timer, s->cfg.idle_ms, 0) < 0) {
        loop_fd_stop(s->loop, &c->watch);
        close(fd);
        free(c);
        return;
    }
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->stats.connections++;
    s->stats.accepted_total++;
}

static void accept_ready(void *ctx, uint32_t events)
{
    struct net_server *s = ctx;
    ASSERT(!s->shutting_down);
    (void)events;
    for (uint32_t i = 0; i < NET_ACCEPTS_PER_WAKEUP; i++) {
        int fd = accept4(s->listen_watch.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered accept would spin while out of fds: pause, then retry. */
                loop_fd_update(s->loop, &s->listen_watch, 0);
                loop_timer_start(s->loop, &s->accept_retry_timer, NET_ACCEPT_RETRY_MS, 0);
            }
            return;
        }
        if (s->stats.connections >= s->cfg.connections_max) {
            close(fd);
            continue;
        }
        conn_open(s, fd);
    }
}

static void accept_retry(void *ctx)
{
    struct net_server *s = ctx;
    ASSERT(s->listen_watch.active);
    loop_fd_update(s->loop, &s->listen_watch, LOOP_READ);
}

static void listen_close(struct net_server *s)
{
    loop_timer_stop(s->loop, &s->accept_retry_timer);
    if (s->listen_watch.fd < 0)
        return;
    loop_fd_stop(s->loop, &s->listen_watch);
    close(s->listen_watch.fd);
    s->listen_watch.fd = -1;
}

int net_listen_socket(const char *host, uint16_t port, uint16_t *bound_port)
{
    char port_str[8];
    snprintf(port_str, sizeof(port_str), "%u", (unsigned)port);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    if (getaddrinfo(host, port_str, &hints, &list) != 0)
        return ERR_NOT_FOUND;
    int fd = -1;
    int rc = ERR_NOT_FOUND;
    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
            rc = 0;
            break;
        }
        rc = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (rc < 0)
        return rc;
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *bound_port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                   : ((struct sockaddr_in *)&addr)->sin_port);
    return fd;
}

static int listen_open(struct net_server *s, const char *host, uint16_t port)
{
    return net_listen_socket(host, port, &s->port);
}

/* ---- server ----------------------------------------------------------------------------- */

void net_server_config_default(struct net_server_config *cfg)
{
    *cfg = (struct net_server_config){
        .host = "0.0.0.0",
        .port = 9092,
        .frame_bytes_max = NET_FRAME_BYTES_MAX_DEFAULT,
        .idle_ms = NET_IDLE_MS_DEFAULT,
        .connections_max = NET_CONNECTIONS_MAX,
        .inflight_requests_max = NET_INFLIGHT_REQUESTS_MAX,
        .output_bytes_max = NET_OUTPUT_BYTES_MAX,
        .queued_bytes_max = NET_QUEUED_BYTES_MAX_DEFAULT,
    };
}

static bool config_valid(const struct net_server_config *cfg)
{
    return cfg->host != NULL && cfg->frame_bytes_max > 0 && cfg->frame_bytes_max <= INT32_MAX &&
           cfg->idle_ms > 0 && cfg->idle_ms <= UINT32_MAX && cfg->connections_max > 0 &&
           cfg->connections_max <= NET_CONNECTIONS_MAX && cfg->inflight_requests_max > 0 &&
           cfg->inflight_requests_max <= NET_INFLIGHT_REQUESTS_MAX && cfg->output_bytes_max > 0 &&
           cfg->output_bytes_max <= NET_OUTPUT_BYTES_MAX;
}

static void pressure(void *ctx)
{
    struct net_server *s = ctx;
    if (queued_full(s))
        s->handler.pressure(s->handler.ctx);
}

/* Request memory fell below its bound: every connection paused for it reads again. */
static void resume_reading(void *ctx)
{
    struct net_server *s = ctx;
    struct net_conn *c = s->conns;
    while (c != NULL && !queued_full(s)) {
        struct net_conn *next = c->next;
        conn_settle(c);
        /* Requests dispatched by that settle may have answered others and closed next: walk
         * again from the head then, as the shutdown does. Settling twice does no harm. */
        c = next != NULL && next->closed ? s->conns : next;
    }
}

static void shutdown_finish(void *ctx)
{
    struct net_server *s = ctx;
    ASSERT(s->shutting_down);
    while (s->conns != NULL)
        conn_close(s->conns);
    net_shutdown_fn fn = s->shutdown_fn;
    s->shutdown_fn = NULL;
    if (fn != NULL)
        fn(s->shutdown_ctx);
}

int net_server_init(struct net_server *s, struct loop *loop, const struct net_server_config *cfg,
                    const struct net_handler *handler)
{
    ASSERT(loop != NULL && handler != NULL);
    ASSERT(handler->request != NULL);
    if (!config_valid(cfg))
        return ERR_INVALID;
    *s = (struct net_server){.loop = loop, .cfg = *cfg, .handler = *handler, .conn_id_next = 1};
    s->cfg.host = NULL;
    loop_timer_init(&s->reap_timer, reap, s);
    loop_timer_init(&s->accept_retry_timer, accept_retry, s);
    loop_timer_init(&s->shutdown_timer, shutdown_finish, s);
    loop_timer_init(&s->resume_timer, resume_reading, s);
    loop_timer_init(&s->pressure_timer, pressure, s);
    loop_timer_init(&s->trim_timer, frame_cache_trim, s);
    int fd = listen_open(s, cfg->host, cfg->port);
    if (fd < 0)
        return fd;
    loop_fd_init(&s->listen_watch, fd, accept_ready, s);
    int rc = loop_fd_start(loop, &s->listen_watch, LOOP_READ);
    if (rc < 0)
        goto fail;
    /* A peer that vanishes mid-write must cost an EPIPE, not the process: sendfile(2) has no
     * MSG_NOSIGNAL, so SIGPIPE is ignored process-wide. */
    signal(SIGPIPE, SIG_IGN);
    s->scratch = xmalloc(NET_READ_CHUNK_BYTES);
    return 0;
fail:
    close(fd);
    s->listen_watch.fd = -1;
    return rc;
}

void net_server_deinit(struct net_server *s)
{
    ASSERT(s->loop != NULL);
    listen_close(s);
    s->shutdown_fn = NULL;
    while (s->conns != NULL)
        conn_close(s->conns);
    loop_timer_stop(s->loop, &s->shutdown_timer);
    loop_timer_stop(s->loop, &s->reap_timer);
    loop_timer_stop(s->loop, &s->resume_timer);
    loop_timer_stop(s->loop, &s->pressure_timer);
    reap(s);
    /* The handler completes detached requests after this; they no longer count anywhere. */
    while (s->detached != NULL) {
        struct net_request *req = s->detached;
        s->detached = req->next;
        req->prev = req->next = NULL;
        req->server = NULL;
        s->stats.queued_bytes -= req->charged;
        req->charged = 0;
    }
    loop_timer_stop(s->loop, &s->trim_timer);
    while (s->frame_cache_count > 0)
        free(s->frame_cache[--s->frame_cache_count]);
    s->frame_cache_bytes = 0;
    free(s->scratch);
    s->scratch = NULL;
    s->loop = NULL;
}

uint16_t net_server_port(const struct net_server *s)
{
    return s->port;
}

void net_server_stats(const struct net_server *s, struct net_server_stats *out)
{
    *out = s->stats;
    out->requests_inflight = 0;
    out->output_bytes = 0;
    out->connections_paused = 0;
    for (const struct net_conn *c = s->conns; c != NULL; c = c->next) {
        out->requests_inflight += c->inflight;
        out->output_bytes += c->output_bytes;
        if (!conn_read_allowed(c))
            out->connections_paused++;
    }
}

int net_server_shutdown(struct net_server *s, uint64_t timeout_ms, net_shutdown_fn fn, void *ctx)
{
    ASSERT(fn != NULL);
    if (s->shutting_down)
        return ERR_STATE;
    s->shutting_down = true;
    s->shutdown_fn = fn;
    s->shutdown_ctx = ctx;
    listen_close(s);
    struct net_conn *c = s->conns;
    while (c != NULL) {
        struct net_conn *next = c->next;
        /* A connection inside a callback of its own settles when that returns. */
        if (!c->flushing && !c->in_read)
            conn_settle(c);
        /* A release callback run by that settle may have completed requests of other
         * connections and so closed next as well: walk again from the head then. Settling twice
         * does no harm, and every restart follows a close, so the walk ends. */
        c = next != NULL && next->closed ? s->conns : next;
    }
    uint64_t delay_ms = s->conns == NULL ? 0 : timeout_ms;
    return loop_timer_start(s->loop, &s->shutdown_timer, delay_ms, 0);
}
