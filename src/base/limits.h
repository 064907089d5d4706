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

/* The tables below are aligned by hand for reading; clang-format would not keep them so. */
/* clang-format off */

#define KIB 1024u
#define MIB (1024u * 1024u)
#define GIB (1024ull * 1024u * 1024u)

/* ---- base -------------------------------------------------------------------------------- */
#define ARENA_BLOCK_BYTES_DEFAULT (16u * KIB)

/* ---- io ---------------------------------------------------------------------------------- */
#define IO_PATH_BYTES_MAX     4096u          /* a full path, NUL included */
#define IO_NAME_BYTES_MAX     256u           /* one directory entry name, NUL included */
#define IO_LIST_ENTRIES_MAX   1000000u
#define IO_SIM_FILE_BYTES_MAX (4ull * GIB)   /* one simulated file; beyond it -EFBIG */
#define IO_SIM_INODES_MAX     1000000u       /* simulated files and directories; then -ENOSPC */

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
#define LOG_SEGMENTS_MAX            100000u          /* segments in one partition log */
#define LOG_PREALLOC_BYTES_DEFAULT  (16u * MIB)      /* chunk the active segment grows by */
#define LOG_PREALLOC_BYTES_FIRST    (64u * KIB)      /* ... at first: chunks double up to it */
#define LOG_CACHE_DROP_ALIGN        (2u * MIB)       /* largest page-cache folio (x86-64 PMD) */
#define LOG_SCAN_CHUNK_BYTES        (64u * KIB)      /* read-ahead of a header walk */
#define LOG_CHECKPOINT_BYTES_MAX    (4u * MIB)       /* a checkpoint file read at open */
#define LOG_FLUSH_WAITERS_MAX       1000000u         /* pending flush callbacks per log */
#define LOG_BATCH_PLAIN_BYTES_MAX   (64u * MIB)      /* decompressed records of one produced batch */
#define LOG_CODEC_SCRATCH_KEEP_BYTES (8u * MIB)      /* codec scratch kept between batches */
#define LOG_FLUSHER_THREADS         16u              /* syncs of different logs in parallel */
#define PRODUCER_STATE_BATCHES      5u               /* batches kept per producer (Kafka's) */
#define PRODUCER_STATE_PRODUCERS_MAX 100000u         /* producers one partition remembers */
#define PRODUCER_ID_EXPIRATION_MS_DEFAULT 86400000ll /* producer.id.expiration.ms (Kafka's) */
#define PRODUCER_EXPIRE_CHECK_MS    600000u          /* producer.id.expiration.check.interval.ms */
#define PRODUCER_SCAN_TICK_READS    8u               /* log reads a replica's state takes per tick */
#define PRODUCER_STATE_ENDED_MAX    100000u          /* ended transactions awaiting the high watermark */
#define PRODUCER_ABORTED_FETCH_MAX  10000u           /* aborted transactions in one Fetch partition */
#define PRODUCER_SNAPSHOT_BYTES_MAX (256u * MIB)     /* a producer-state snapshot read at open */

/* ---- proto ------------------------------------------------------------------------------- */
#define PROTO_ARRAY_COUNT_MAX    1000000u        /* elements in one decoded array */
#define PROTO_STRING_BYTES_MAX   32767u          /* Kafka's int16-length string limit */
#define PROTO_REQUEST_ARENA_MAX  (128u * MIB)    /* decode arena bound for one request */
#define PROTO_WIRE_LENGTH_MAX    0x7ffffffeu     /* longest bytes/array an int32 prefix carries */

/* ---- net --------------------------------------------------------------------------------- */
#define NET_FRAME_BYTES_MAX_DEFAULT   (100u * MIB) /* socket.request.max.bytes */
#define NET_CONNECTIONS_MAX           10000u
#define NET_INFLIGHT_REQUESTS_MAX     64u          /* per connection before reading stops */
#define NET_OUTPUT_BYTES_MAX          (16u * MIB)  /* unsent output per connection before reading stops */
#define NET_QUEUED_BYTES_MAX_DEFAULT  (256u * MIB) /* queued.max.request.bytes: requests' memory, broker-wide */
#define NET_IDLE_MS_DEFAULT           (10u * 60 * 1000) /* connections.max.idle.ms */
#define NET_TIMERS_MAX                1000000u
#define NET_LOOP_EVENTS_MAX           256u         /* epoll events fetched per wait */
#define NET_RESPONSE_PIECES_MAX       65536u       /* memory and file pieces in one response */
#define NET_READ_CHUNK_BYTES          (64u * KIB)  /* one read(2); also the most buffered unparsed input */
#define NET_READ_WAKEUP_BYTES_MAX     (1u * MIB)   /* read from one connection per wake-up, for fairness */
#define NET_WRITE_IOV_MAX             64u          /* memory pieces gathered by one writev(2) */
#define NET_ACCEPTS_PER_WAKEUP        64u
#define NET_ACCEPT_RETRY_MS           100u         /* pause after accept fails for lack of fds */
#define NET_FRAME_CACHE_COUNT         128u         /* freed frame buffers kept for reuse */
#define NET_FRAME_CACHE_BYTES_MAX     (256u * MIB) /* their total size */
#define NET_FRAME_CACHE_KEEP_BYTES    (32u * MIB)  /* kept however long they go unused */
#define NET_FRAME_CACHE_IDLE_MS       1000u        /* more than that is freed when unused this long */
#define NET_FRAME_CACHE_BUF_BYTES_MIN (64u * KIB)  /* smaller buffers go back to malloc */
#define NET_FRAME_HEAP_BYTES_MAX      (512u * KIB) /* larger frame buffers are whole huge pages */

/* ---- raft -------------------------------------------------------------------------------- */
#define RAFT_VOTERS_MAX              7u
#define RAFT_MEMBERS_MAX             16u         /* voters and learners */
#define RAFT_INFLIGHT_MSGS_MAX       64u         /* unacknowledged appends per follower */
#define RAFT_INFLIGHT_BYTES_MAX      (8u * MIB)  /* unacknowledged append bytes per follower */
#define RAFT_ELECTION_TICKS_DEFAULT  10u
#define RAFT_HEARTBEAT_TICKS_DEFAULT 1u
#define RAFT_ELECTION_TICKS_MAX      10000u
#define RAFT_MSG_BATCHES_MAX         64u         /* batches in one append message */
#define RAFT_MSG_BYTES_MAX           (1u * MIB)  /* batch bytes in one append (at least one batch) */
#define RAFT_OUTBOX_MSGS_MAX         24u         /* messages queued per group between readies */
#define RAFT_READS_MAX               4u          /* read-index requests pending per group */
#define RAFT_HINT_STEPS_MAX          64u         /* batches walked back for a conflict hint */
#define RAFT_LEASE_RING              8u          /* heartbeat send ticks remembered for leases */
#define RAFT_LEASE_MARGIN_TICKS      2u          /* lease shortened for clock drift */
#define RAFT_HOST_GROUPS_MAX         1000000u    /* hard states in one node's journal */
#define RAFT_HOST_JOURNAL_BYTES_MIN  (1u * MIB)  /* compacted past max(this, 4 x live size) */
#define RAFT_HOST_MARKER_BYTES_MAX   256u        /* a log-start marker batch (one short record) */

/* ---- cluster (metadata image) ----------------------------------------------------------- */
#define META_TOPIC_NAME_BYTES_MAX   249u     /* Kafka's topic name limit */
#define META_TOPICS_MAX             100000u
#define META_PARTITIONS_MAX         100000u  /* per topic */
#define META_TOPIC_CONFIGS_MAX      64u      /* per-topic overrides */
#define META_CONFIG_KEY_BYTES_MAX   128u
#define META_CONFIG_VALUE_BYTES_MAX 1024u
#define META_IMAGE_BYTES_MAX        (256u * MIB)
#define META_BROKER_CONFIGS_MAX     1024u    /* dynamic broker configs, all resources */
#define META_JOURNAL_BYTES_MIN      (1u * MIB) /* journal size that never triggers a snapshot */
#define META_JOURNAL_FRAME_BYTES_MAX META_IMAGE_BYTES_MAX
#define META_BROKERS_MAX            1024u    /* registered brokers (as CLUSTER_PEERS_MAX) */
#define META_BROKER_ENDPOINTS_MAX   16u      /* listeners of one broker */
#define META_HOST_BYTES_MAX         256u     /* an endpoint's host, a listener name, a rack */
#define META_FEATURES_MAX           64u      /* finalized feature levels */
#define META_PRODUCER_ID_BLOCK      1000     /* ids per ProducerIdsRecord block (Kafka's) */
#define META_RECORD_ARENA_MAX       (16u * MIB) /* decode memory of one metadata record */
#define META_SNAPSHOT_BYTES         (4u * MIB)  /* metadata log applied between two snapshots */
#define META_APPLY_READ_BYTES       (1u * MIB)  /* metadata log read per step of apply or fetch */
#define META_FETCH_RETRY_MS         1000u    /* an observer's unanswered metadata fetch is sent again */
#define META_REPORT_BATCH_MAX       1024u    /* partitions in one AlterPartition request */
#define META_REPORT_RETRY_MS        2000u    /* an unanswered AlterPartition is sent again */

/* ---- cluster (transport: wire format, transports, simulated network) ------------------- */
#define CLUSTER_FRAME_BYTES_MAX     (LOG_BATCH_BYTES_MAX + 1u * MIB) /* one frame: the largest batch fits */
#define CLUSTER_FRAME_BYTES_TARGET  (1u * MIB)   /* a sender starts another frame beyond this */
#define CLUSTER_FRAME_TOPICS_MAX    65536u       /* topics in one RaftMessages frame */
#define CLUSTER_FRAME_MSGS_MAX      65536u       /* Raft messages in one frame, heartbeats included */
#define CLUSTER_FRAME_BATCHES_MAX   65536u       /* batches in one frame */
#define CLUSTER_FRAME_ARENA_MAX     (64u * MIB)  /* decode memory of one frame (records are borrowed) */
#define CLUSTER_ID_BYTES_MAX        64u          /* a cluster id (Kafka's are 22 characters) */
#define CLUSTER_HOST_BYTES_MAX      256u         /* an advertised cluster host */
#define CLUSTER_HELLO_REASON_BYTES_MAX 256u      /* why a hello was refused, NUL included */
#define CLUSTER_PEERS_MAX           1024u        /* nodes one transport knows */
#define CLUSTER_QUEUE_BYTES_MAX     (64u * MIB)  /* queued for one peer; Raft messages beyond are dropped */
#define CLUSTER_QUEUE_MSGS_MAX      65536u       /* messages queued for one peer, likewise */
#define CLUSTER_RPC_BYTES_MAX       (16u * MIB)  /* the payload of one controller RPC */
#define CLUSTER_FRAME_RPCS_MAX      65536u       /* RPCs in one ClusterRpc frame */
#define CLUSTER_QUEUE_RPCS_MAX      4096u        /* RPCs queued for one peer (or self); beyond: dropped */
#define CLUSTER_QUEUE_RPC_BYTES_MAX (64u * MIB)  /* RPC payloads queued for one peer (or self), likewise */
#define CLUSTER_SELF_RPC_ROUNDS_MAX 4u           /* a flush delivers RPCs to self sent by on_rpc this often */
#define CLUSTER_REDIAL_MS_MIN       50u          /* first wait before dialling a lost peer again */
#define CLUSTER_REDIAL_MS_MAX       2000u        /* the wait doubles up to this */
#define CLUSTER_HELLO_TIMEOUT_MS    5000u        /* an accepted connection must say hello by then */
#define CLUSTER_INBOUND_CONNS_MAX   (2u * CLUSTER_PEERS_MAX) /* accepted connections at once */
#define CLUSTER_RPC_ARENA_MAX       (16u * MIB)  /* decode memory of one controller RPC */
#define CLUSTER_SIM_NODES_MAX       64u          /* node ids of a simulated network: 0..63 */
#define CLUSTER_SIM_INFLIGHT_MAX    1000000u     /* frames in flight in a simulated network */
#define CLUSTER_SIM_DELAY_MS_MAX    60000u       /* a simulated network's longest delay */

/* ---- broker ------------------------------------------------------------------------------ */
/* Bounds of the configuration keys that belong to no other module (src/broker/config.c). */
#define BROKER_NODE_ID_MAX               INT32_MAX   /* node.id is a Kafka int32 broker id */
#define BROKER_NUM_PARTITIONS_MAX        10000u      /* num.partitions */
#define BROKER_MESSAGE_BYTES_DEFAULT     1048588u    /* message.max.bytes: 1 MiB + 12, as Kafka */
#define BROKER_PORT_MAX                  65535u      /* TCP ports; 0 is never accepted */
#define BROKER_HTTP_PORT_OFFSET          1000u       /* http.port default: Kafka port + this */
#define BROKER_CLUSTER_PORT_OFFSET       2000u       /* cluster.port default: Kafka port + this */
#define BROKER_HOST_BYTES_MAX            256u        /* a listener host, NUL included */
#define BROKER_LISTENER_BYTES_MAX        300u        /* PLAINTEXT://[host]:port, NUL included */
#define BROKER_COMPRESSION_TYPE_BYTES_MAX 16u        /* compression.type, NUL included */
#define BROKER_SOCKET_REQUEST_BYTES_MIN  (4u * KIB)  /* socket.request.max.bytes */
#define BROKER_SOCKET_REQUEST_BYTES_MAX  PROTO_REQUEST_ARENA_MAX /* a request fits its arena */
#define BROKER_LOG_CACHE_TAIL_BYTES_MAX  (1ll << 40) /* log.cache.tail.bytes: 1 TiB */
#define BROKER_IDLE_MS_MIN               100u        /* connections.max.idle.ms */
#define BROKER_IDLE_MS_MAX               (7ull * 24 * 3600 * 1000)
#define BROKER_CONFIG_FILE_BYTES_MAX     (1u * MIB)  /* a --config properties file */
#define BROKER_CONFIG_VALUE_BYTES_MAX    4096u       /* one value, NUL included (a path) */
#define BROKER_CONFIG_ERROR_BYTES_MAX    512u        /* one configuration error message */
#define BROKER_CONFIG_DESCRIBE_BYTES_MAX 8192u       /* broker_config_describe() output */
#define BROKER_TOPIC_VALUE_BYTES_MAX     64u         /* a normalised topic config value, NUL included */
#define BROKER_ADMIN_MESSAGE_BYTES_MAX   512u        /* one error message of an admin response */
#define BROKER_ADMIN_QUOTE_BYTES_MAX     100u        /* a client's name or value quoted in one */
#define BROKER_CONFIG_SYNONYMS_MAX       8u          /* synonyms DescribeConfigs lists per entry */
#define BROKER_MUTATION_RATE_MAX         1000000     /* controller.mutation.rate, partitions/s */
#define BROKER_QUOTA_WINDOW_NUM_MAX      1000        /* controller.quota.window.num */
#define BROKER_QUOTA_WINDOW_SECONDS_MAX  3600        /* controller.quota.window.size.seconds */
#define BROKER_DIR_NAME_BYTES_MAX        255u        /* NAME_MAX: a marked partition directory */
#define BROKER_AUTO_CREATE_PER_REQUEST_MAX 64u       /* topics one Metadata request may create */
#define BROKER_RACK_BYTES_MAX            256u        /* broker.rack, NUL included */
#define BROKER_VOTERS_MAX                RAFT_VOTERS_MAX /* controller.quorum.voters entries */
#define BROKER_META_PROPERTIES_BYTES_MAX (64u * KIB) /* a data directory's meta.properties */


/* Threads opening partition logs at start-up: opening is bound by fsync latency, which
 * concurrent syncs share, not by CPU. */
#define BROKER_OPEN_THREADS              8u
/* Threads closing partition logs at a clean shutdown: a close is a dozen syncs and renames,
 * waiting on the disk; more of them in flight finish sooner (10,000 partitions: 38 s on one
 * thread, 11-21 s on 64, on a shared virtual disk). */
#define BROKER_CLOSE_THREADS             32u
#define BROKER_RECONCILE_OPEN_MS         20u         /* partitions opened per loop step, in time */

/* ---- broker: the cluster (broker/cluster_node.c) ----------------------------------------- */
#define BROKER_RAFT_TICK_MS              50u         /* the Raft host's tick */
#define BROKER_PARTITION_HEARTBEAT_TICKS 2u          /* a partition leader heartbeats every 2 ticks */
#define BROKER_FORWARD_TIMEOUT_MS        30000u      /* an admin request forwarded to the controller */
#define BROKER_FORWARD_RETRY_MS          100u        /* wait before sending it to a new controller */
#define BROKER_SEND_FRAME_TIMEOUT_MS     5000u       /* a frame sent to one node (WriteTxnMarkers) */
#define BROKER_META_SEGMENT_BYTES        (16u * MIB) /* segments of the metadata log */
#define BROKER_STAGED_NAMES_MAX          1024u       /* topics of one CreateTopics checked for collisions */
#define BROKER_INTERNAL_CREATE_VERSION   4           /* CreateTopics version of a node's own creations */
#define BROKER_SERVE_WAIT_MS             10000u      /* a standalone node's start-up wait for its metadata */

/* ---- group (the group coordinator and __consumer_offsets) ------------------------------- */
#define GROUP_OFFSETS_PARTITIONS_DEFAULT   50u      /* offsets.topic.num.partitions */
#define GROUP_OFFSETS_PARTITIONS_MAX       1000u
#define GROUP_PARKED_FIND_MAX              256u     /* FindCoordinator waiting for __consumer_offsets */
#define GROUP_INITIAL_DELAY_MS_DEFAULT     3000u    /* group.initial.rebalance.delay.ms */
#define GROUP_INITIAL_DELAY_MS_MAX         300000u
#define GROUP_SESSION_MS_MIN_DEFAULT       6000u    /* group.min.session.timeout.ms */
#define GROUP_SESSION_MS_MAX_DEFAULT       1800000u /* group.max.session.timeout.ms */
#define GROUP_RETENTION_MS_DEFAULT         (7ll * 24 * 3600 * 1000) /* offsets.retention.minutes */
#define GROUP_RETENTION_CHECK_MS_DEFAULT   600000u  /* offsets.retention.check.interval.ms */
#define GROUP_OFFSET_METADATA_BYTES_MAX    4096u    /* offset.metadata.max.bytes */
#define GROUP_MEMBERS_MAX                  10000u   /* members (and pending members) of one group */
#define GROUP_PROTOCOLS_MAX                64u      /* protocols one member offers in a join */
#define GROUP_ID_BYTES_MAX                 32767u   /* a group, member, instance or topic name */
#define GROUP_PROTOCOL_BYTES_MAX           (1u * MIB) /* one member's metadata or assignment */
#define GROUP_GROUPS_MAX                   1000000u /* groups one coordinator holds */
#define GROUP_OFFSETS_MAX                  1000000u /* committed offsets of one group */
#define GROUP_TICK_MS                      100u     /* longest wait between coordinator ticks */
#define GROUP_LOAD_CHUNK_BYTES             (1u * MIB) /* log read per step while loading */
#define GROUP_LOAD_RETRY_MS                1000u    /* wait before reading again after a load error */

/* ---- txn (the transaction coordinator and __transaction_state) --------------------------- */
#define TXN_STATE_PARTITIONS_MAX        1000u     /* transaction.state.log.num.partitions */
#define TXN_ID_BYTES_MAX                32767u    /* a transactional id (a Kafka string) */
#define TXN_PARTITIONS_MAX              100000u   /* partitions in one transaction */
#define TXN_IDS_MAX                     1000000u  /* transactional ids one coordinator holds */
#define TXN_TICK_MS                     1000u     /* longest wait between coordinator ticks */
#define TXN_MARKER_RETRY_MS             100u      /* wait before markers are sent again */
#define TXN_PARKED_FIND_MAX             256u      /* FindCoordinator waiting for __transaction_state */
#define TXN_HELD_MAX                    1024u     /* AddPartitions/AddOffsetsToTxn held for a completion */
#define TXN_HOLD_MS                     500u      /* longest such hold (answered at the tick after) */

/* ---- bench (bench/kafka: the chronik-bench tool) ---------------------------------------- */
#define BENCH_HIST_SUB_BUCKETS       128u           /* per power of two: relative error < 1/128 */
#define BENCH_HIST_BUCKETS           (58u * 128u)   /* covers every uint64_t value */
#define BENCH_RECORD_BYTES_MAX       (16u * MIB)    /* --record-size */
#define BENCH_MESSAGES_MAX           (1ull << 34)   /* --messages; also bounds e2e sequence numbers */
#define BENCH_DURATION_S_MAX         (7u * 24 * 3600) /* --duration */
#define BENCH_RATE_MAX               100000000u     /* --rate, messages per second */
#define BENCH_PARTITIONS_MAX         100000u        /* --partitions, and partitions of a benched topic */
#define BENCH_REPLICATION_MAX        16u            /* --replication-factor */
#define BENCH_LINGER_MS_MAX          900000u        /* --linger-ms: librdkafka's own bound */
#define BENCH_BATCH_BYTES_MAX        2147483647u    /* --batch-size: librdkafka's own bound */
#define BENCH_TIMEOUT_MS_MAX         (3600u * 1000) /* --timeout-ms, --commit-interval-ms */
#define BENCH_IDLE_MS_DEFAULT        10000u         /* --timeout-ms: consumer gives up after this */
#define BENCH_COMMIT_MS_DEFAULT      1000u          /* --commit-interval-ms in group mode */
#define BENCH_DELIVERY_MS_DEFAULT    30000u         /* librdkafka message.timeout.ms we set */
#define BENCH_SETUP_MS_MAX           15000u         /* metadata, topic creation, watermarks, join */
#define BENCH_CLIENT_SETTINGS_MAX    64u            /* -X key=value pairs */
#define BENCH_CLIENT_KEY_BYTES_MAX   128u           /* one -X key, NUL included */
#define BENCH_ERROR_BYTES_MAX        512u           /* one error message for a person */
#define BENCH_ERROR_KINDS_MAX        8u             /* distinct error codes counted by name */
#define BENCH_PAYLOAD_POOL_BYTES     (4u * MIB)     /* random bytes records are cut from */
#define BENCH_POLL_EVERY_MESSAGES    256u           /* producer serves delivery reports this often */
#define BENCH_STATS_INTERVAL_MS      "1000"         /* --client-stats: statistics.interval.ms */

/* clang-format on */

#endif
