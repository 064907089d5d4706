/*
 * The Kafka listener: accepts TCP connections, cuts the byte stream into size-prefixed frames,
 * hands each frame to a request handler, and writes the responses back in request order.
 *
 * Framing (Kafka's): a 4-byte big-endian size, then that many bytes. A size of 0, a negative
 * size or one over frame_bytes_max (socket.request.max.bytes) closes the connection before
 * anything is allocated for it. Responses are framed the same way: the server writes the size
 * prefix; the handler supplies only the bytes after it.
 *
 * Requests and responses:
 * - For each complete frame the server creates a struct net_request and calls
 *   handler->request(). The request owns the frame bytes until it is freed, so the protocol
 *   layer may keep slices into them. The handler answers exactly once with
 *   net_request_complete(), now or later (from any loop callback, never from another thread),
 *   after adding the response pieces; completing with no piece means "no response" (acks=0).
 *   net_request_abort() answers by closing the connection instead.
 * - Responses leave each connection strictly in request order: a response completed early
 *   waits for the ones before it (pipelining).
 * - A response is a chain of pieces: memory (copied or moved in) and file ranges sent with
 *   sendfile(2). Each file piece's release callback is called exactly once: when its bytes are
 *   sent, or when the response is dropped.
 * - If the connection closes first, the request survives it: completing it later is safe, drops
 *   the response and frees the request. net_request_connected() tells the handler whether an
 *   answer can still be delivered.
 *
 * Bounds: reading a connection stops while it has inflight_requests_max requests in flight (read
 * and not yet fully answered) or output_bytes_max bytes of completed responses not yet sent, and
 * resumes below both. Broker-wide, reading new requests stops on every connection while the
 * memory held by requests (Kafka's queued.max.request.bytes: each frame's buffer as it is
 * received, the memory of its response, and what the handler charges with net_request_charge)
 * is at least queued_bytes_max, and resumes once requests are freed below it. As in Kafka the
 * bound is checked before a request starts, so it is exceeded by at most the requests that
 * started below it; a frame already started is always read to its end, so the bound never
 * stops a request half-read. Requests detached by a close keep their memory
 * counted until the handler completes them. Reaching the bound calls the handler's optional
 * pressure callback, so that it answers what only waits. Unparsed input is at most
 * NET_READ_CHUNK_BYTES per connection; a frame's buffer grows with the bytes actually received (or
 * is a buffer of an earlier frame, kept for reuse: at most NET_FRAME_CACHE_BYTES_MAX of them). At
 * most connections_max connections; more are accepted and closed at once. A connection with no
 * request left with the handler and no traffic for idle_ms is closed, also when it holds responses
 * its peer does not read.
 *
 * Threads: everything runs on the loop's thread.
 *
 * Ownership: the caller allocates struct net_server (fields private to server.c), calls
 * net_server_init, and net_server_deinit when done (after a shutdown or instead of one); deinit
 * closes every connection at once. Requests are freed by net_request_complete() or
 * net_request_abort(), never by the caller; a handler must answer every request it was given
 * with one of them, also after deinit.
 */
#ifndef CHRONIK_NET_SERVER_H
#define CHRONIK_NET_SERVER_H

#include "base/buf.h"
#include "base/bytes.h"
#include "base/limits.h"
#include "net/loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct net_request;

struct net_handler {
    /* A complete frame arrived; answer with net_request_complete(). */
    void (*request)(void *ctx, struct net_request *req);
    /* Optional (may be NULL): a connection closed; its uncompleted requests are detached. */
    void (*closed)(void *ctx, uint64_t conn_id);
    /* Optional (may be NULL): request memory reached queued_bytes_max and reading stopped.
     * Called on the loop, outside any other callback; the handler answers what it may answer
     * early (long polls) so that reading is not held up by requests that only wait. */
    void (*pressure)(void *ctx);
    void *ctx;
};

struct net_server_config {
    const char *host; /* numeric address or name to bind; "0.0.0.0" for every IPv4 address */
    uint16_t port;    /* 0 to let the kernel choose; net_server_port() reports it */
    uint32_t frame_bytes_max;       /* socket.request.max.bytes */
    uint64_t idle_ms;               /* connections.max.idle.ms */
    uint32_t connections_max;       /* at most NET_CONNECTIONS_MAX */
    uint32_t inflight_requests_max; /* at most NET_INFLIGHT_REQUESTS_MAX */
    uint64_t output_bytes_max;      /* at most NET_OUTPUT_BYTES_MAX */
    uint64_t queued_bytes_max;      /* queued.max.request.bytes; 0: no broker-wide bound */
};

/* Defaults from base/limits.h, listening on 0.0.0.0:9092. */
void net_server_config_default(struct net_server_config *cfg);

struct net_server_stats {
    uint32_t connections;
    uint64_t accepted_total;
    uint64_t requests_total;
    uint64_t frames_rejected_total; /* connections closed for a bad frame size */
    uint64_t idle_closed_total;
    uint64_t requests_inflight;   /* over open connections */
    uint64_t output_bytes;        /* unsent response bytes over open connections */
    uint32_t connections_paused;  /* connections not being read because of back-pressure */
    uint64_t queued_bytes;        /* memory held by requests, detached ones included */
    uint64_t queued_pauses_total; /* times reading stopped because queued_bytes reached its bound */
};

typedef void (*net_shutdown_fn)(void *ctx);

struct net_conn;

struct net_server {
    struct loop *loop;
    struct net_server_config cfg;
    struct net_handler handler;
    struct loop_fd listen_watch;
    uint16_t port;
    struct net_conn *conns; /* open connections, doubly linked */
    struct net_conn *dead;  /* closed connections waiting for the reaper to free them */
    struct loop_timer reap_timer;
    struct loop_timer accept_retry_timer;
    struct loop_timer shutdown_timer;
    struct loop_timer resume_timer;   /* resumes reading once request memory fell below its bound */
    struct loop_timer pressure_timer; /* tells the handler that request memory reached it */
    struct net_request *detached;     /* requests detached by a close, not yet completed */
    bool shutting_down;
    net_shutdown_fn shutdown_fn;
    void *shutdown_ctx;
    uint8_t *scratch; /* NET_READ_CHUNK_BYTES shared by every connection's reads */
    /* Frame buffers of freed requests, kept for the next large frames: a busy connection then
     * reads into warm memory of the right size instead of growing fresh memory by copies.
     * Beyond NET_FRAME_CACHE_KEEP_BYTES, buffers no frame needed for NET_FRAME_CACHE_IDLE_MS
     * are freed by trim_timer: frame_cache_low is the fewest cached since it was set. */
    uint8_t *frame_cache[NET_FRAME_CACHE_COUNT];
    uint32_t frame_cache_caps[NET_FRAME_CACHE_COUNT];
    uint32_t frame_cache_count;
    uint32_t frame_cache_low;
    uint64_t frame_cache_bytes;
    struct loop_timer trim_timer;
    uint64_t conn_id_next;
    struct net_server_stats stats;
};

/* Binds, listens and starts accepting. cfg->host is copied. 0, -errno, ERR_INVALID for a
 * config out of bounds or ERR_NOT_FOUND when host does not resolve. */
int net_server_init(struct net_server *s, struct loop *loop, const struct net_server_config *cfg,
                    const struct net_handler *handler);
/* Closes the listener and every connection now; requests in flight are detached. A shutdown in
 * progress is abandoned: its fn is not called. Not from inside a handler callback. */
void net_server_deinit(struct net_server *s);
/* The bound port. */
uint16_t net_server_port(const struct net_server *s);

/*
 * A non-blocking listening TCP socket on host:port (port 0: any free port, written to
 * *bound_port), as the server opens its own. Returns the descriptor, which the caller closes,
 * or a negative error (-EADDRINUSE when the port is taken, ERR_NOT_FOUND for an unknown host).
 */
int net_listen_socket(const char *host, uint16_t port, uint16_t *bound_port);
void net_server_stats(const struct net_server *s, struct net_server_stats *out);

/*
 * Clean shutdown: stops accepting and stops reading requests, lets requests in flight finish
 * and their responses be written, closing each connection once it has nothing left, then calls
 * fn(ctx) on the loop. After timeout_ms the remaining connections are closed and fn is called.
 * fn is never called from inside this function. ERR_STATE if a shutdown is already running.
 */
int net_server_shutdown(struct net_server *s, uint64_t timeout_ms, net_shutdown_fn fn, void *ctx);

/* ---- requests --------------------------------------------------------------------------- */

typedef void (*net_release_fn)(void *ctx);

/* The frame after its size prefix; valid until the request is completed and its response sent
 * or dropped, or until net_request_release_frame(). */
struct slice net_request_frame(const struct net_request *req);
/* Lets go of the frame before the request is answered, once the handler holds nothing that
 * points into it: its buffer is reused by the next request while still in the CPU's caches,
 * and the request's charge against queued_bytes_max drops by the buffer. net_request_frame()
 * must not be called afterwards. */
void net_request_release_frame(struct net_request *req);
uint64_t net_request_conn_id(const struct net_request *req);
/* False once the connection closed: the response would be dropped. */
bool net_request_connected(const struct net_request *req);
/* Counts n more bytes of memory held for the request (the handler's own, e.g. its arena)
 * against queued_bytes_max, until the request is freed. */
void net_request_charge(struct net_request *req, uint64_t n);

/* Appends a copy of n bytes to the response. ERR_TOO_LARGE when the response would exceed
 * INT32_MAX bytes or NET_RESPONSE_PIECES_MAX pieces. */
int net_request_append(struct net_request *req, const void *p, size_t n);
/* Moves b's memory into the response without copying; b is left empty. Errors as above (b is
 * untouched then). */
int net_request_append_buf(struct net_request *req, struct buf *b);
/* Appends len bytes of fd from offset, sent with sendfile(2). release(ctx) is called exactly
 * once when the range is sent or dropped, unless this call fails (errors as above). The fd must
 * stay open and hold those bytes until then; a short file closes the connection. */
int net_request_append_file(struct net_request *req, int fd, uint64_t offset, uint64_t len,
                            net_release_fn release, void *ctx);
/* Answers the request: sends the pieces appended (none: no response). The request belongs to
 * the server afterwards; the caller must not touch it again. */
void net_request_complete(struct net_request *req);
/* Answers the request by closing its connection at once, dropping its response and those of
 * every other request on the connection (as Kafka does with a request it cannot parse); the
 * other requests still with the handler are detached. Frees the request; on a detached request
 * it only frees it. */
void net_request_abort(struct net_request *req);

#endif
