/*
 * Error convention for the whole project: a function returns 0 (or a non-negative count) on
 * success and a negative code on failure. OS failures are -errno; failures that are ours use
 * the codes below, which lie far below any errno value so the two never collide.
 *
 * Kafka's protocol error codes are data, not these: the broker maps at its edge.
 */
#ifndef CHRONIK_BASE_ERROR_H
#define CHRONIK_BASE_ERROR_H

enum {
    ERR_BASE = -10000,
    ERR_INCOMPLETE,  /* input ended early: a parser needs more bytes */
    ERR_CORRUPT,     /* bytes fail validation (bad CRC, impossible field) */
    ERR_TOO_LARGE,   /* a size or count over its bound in base/limits.h */
    ERR_INVALID,     /* an argument or value out of its domain */
    ERR_UNSUPPORTED, /* a version or feature we do not implement */
    ERR_NOT_FOUND,   /* a lookup found nothing */
    ERR_RANGE,       /* an offset or index outside what is stored */
    ERR_STATE,       /* the object is in a state that does not allow the call */
    ERR_CLOSED,      /* the object was closed or failed earlier and is unusable */
    ERR_DAMAGED,     /* stored data is damaged where repairing it would lose durable data */
    ERR_TIMEOUT,     /* a wait outlived the deadline its caller set */
    ERR_REPLICAS,    /* fewer replicas in sync than the write asked for */
    ERR_LAST,
};

/* A short constant description of a code from this file or of a -errno. Never NULL. */
const char *err_str(int err);

#endif
