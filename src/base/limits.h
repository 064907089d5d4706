/*
 * Every bound in Chronik, in one place (include as "base/limits.h").
 *
 * A bound is either a hard limit (input over it is rejected before anything is allocated) or a
 * default that configuration may change within the hard limit. Names end in their unit.
 * Modules add their bounds in their own section below, never in their own headers.
 */
#ifndef CHRONIK_BASE_LIMITS_H
#define CHRONIK_BASE_LIMITS_H

#include <stdint.h>

#define KIB 1024u
#define MIB (1024u * 1024u)
#define GIB (1024ull * 1024u * 1024u)

/* ---- base -------------------------------------------------------------------------------- */
#define ARENA_BLOCK_BYTES_DEFAULT (16u * KIB)

/* ---- io ---------------------------------------------------------------------------------- */
#define IO_PATH_BYTES_MAX    4096u /* a full path, NUL included */
#define IO_NAME_BYTES_MAX    256u  /* one directory entry name, NUL included */
#define IO_LIST_ENTRIES_MAX  1000000u

/* ---- log --------------------------------------------------------------------------------- */
#define LOG_BATCH_HEADER_BYTES      61u              /* RecordBatch v2 header, baseOffset..recordCount */
#define LOG_BATCH_BYTES_MAX         (64u * MIB)      /* hard cap on one stored batch */
#define LOG_SEGMENT_BYTES_DEFAULT   (1024u * MIB)    /* log.segment.bytes */
#define LOG_SEGMENT_BYTES_MIN       (64u * KIB)
#define LOG_SEGMENT_BYTES_MAX       (2u * GIB - 1)   /* index positions are 32-bit */
#define LOG_ROLL_MS_DEFAULT         (7ull * 24 * 3600 * 1000) /* log.roll.ms */
#define LOG_INDEX_INTERVAL_BYTES    (4u * KIB)       /* log.index.interval.bytes */
#define LOG_INDEX_BYTES_MAX         (10u * MIB)      /* log.index.size.max.bytes */
#define LOG_RETENTION_MS_DEFAULT    (7ll * 24 * 3600 * 1000) /* log.retention.ms */
#define LOG_RETENTION_BYTES_DEFAULT (-1ll)           /* log.retention.bytes: no limit */
#define LOG_OPEN_FILES_MAX_DEFAULT  1024u            /* segment files kept open at once */
#define LOG_EPOCH_ENTRIES_MAX       65536u           /* leader-epoch checkpoint entries */

/* ---- proto ------------------------------------------------------------------------------- */
#define PROTO_ARRAY_COUNT_MAX    1000000u        /* elements in one decoded array */
#define PROTO_STRING_BYTES_MAX   32767u          /* Kafka's int16-length string limit */
#define PROTO_REQUEST_ARENA_MAX  (128u * MIB)    /* decode arena bound for one request */

/* ---- net --------------------------------------------------------------------------------- */
#define NET_FRAME_BYTES_MAX_DEFAULT   (100u * MIB) /* socket.request.max.bytes */
#define NET_CONNECTIONS_MAX           10000u
#define NET_INFLIGHT_REQUESTS_MAX     64u          /* per connection before reading stops */
#define NET_OUTPUT_BYTES_MAX          (16u * MIB)  /* unsent output per connection before reading stops */
#define NET_IDLE_MS_DEFAULT           (10u * 60 * 1000) /* connections.max.idle.ms */
#define NET_TIMERS_MAX                1000000u

/* ---- raft -------------------------------------------------------------------------------- */
#define RAFT_VOTERS_MAX            7u
#define RAFT_MEMBERS_MAX           16u          /* voters and learners */
#define RAFT_INFLIGHT_MSGS_MAX     64u          /* unacknowledged appends per follower */
#define RAFT_INFLIGHT_BYTES_MAX    (8u * MIB)   /* unacknowledged append bytes per follower */
#define RAFT_ELECTION_TICKS_DEFAULT 10u
#define RAFT_HEARTBEAT_TICKS_DEFAULT 1u

#endif
