/*
 * The classic group coordinator (Kafka's JoinGroup/SyncGroup/Heartbeat protocol, KIP-345 static
 * members, KIP-394 member ids) and the committed offsets of its groups, as a pure state machine.
 *
 * Owns: every group of the __consumer_offsets partitions this node coordinates, their members,
 * their committed offsets, the offsets of open transactions (pending until the transaction's
 * marker), and the appends that make them durable. A group lives in partition
 * group_partition_of(id) of __consumer_offsets; the coordinator answers for a group only while
 * that partition is marked owned and loaded (NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS
 * otherwise, UNKNOWN_SERVER_ERROR once its load failed), so it moves with the partition's
 * leadership.
 *
 * Pure: no sockets, files, clocks or threads. Time comes in as now_ms on every call that changes
 * state, and through group_coord_tick(), which the host calls at group_coord_next_deadline_ms()
 * and before it reads the views for a request. Whatever is due at now_ms (a session ending, a
 * rebalance timing out) happens before a call at now_ms acts, so no request at or after a
 * deadline sees the state from before it. Results that cannot be
 * given at once come out as effects the host drains with group_coord_poll() after every call:
 * answer a JoinGroup or SyncGroup (identified by the token the host passed in), or append
 * records to a partition of __consumer_offsets. The host appends through the partition's
 * replica and reports the outcome with group_coord_append_done(); offsets and assignments are
 * visible to others only after that. Everything else answers synchronously.
 *
 * Error codes in answers are Kafka's (enum group_error); other returns follow base/error.h.
 *
 * Ownership: the coordinator copies what it keeps from requests. Effect data and the views
 * returned by group_coord_find()/group_coord_group_at() belong to the coordinator and stay
 * valid only until the next call that is not group_coord_poll() or a read-only getter.
 * Not thread-safe; one owner thread.
 */
#ifndef CHRONIK_GROUP_GROUP_H
#define CHRONIK_GROUP_GROUP_H

#include "base/arena.h"
#include "base/bytes.h"
#include "base/rand.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The Kafka error codes the coordinator answers with (their protocol values). */
enum group_error {
    GROUP_ERR_UNKNOWN_SERVER_ERROR = -1,
    GROUP_ERR_NONE = 0,
    GROUP_ERR_OFFSET_METADATA_TOO_LARGE = 12,
    GROUP_ERR_LOAD_IN_PROGRESS = 14,
    GROUP_ERR_COORDINATOR_NOT_AVAILABLE = 15,
    GROUP_ERR_NOT_COORDINATOR = 16,
    GROUP_ERR_ILLEGAL_GENERATION = 22,
    GROUP_ERR_INCONSISTENT_GROUP_PROTOCOL = 23,
    GROUP_ERR_INVALID_GROUP_ID = 24,
    GROUP_ERR_UNKNOWN_MEMBER_ID = 25,
    GROUP_ERR_INVALID_SESSION_TIMEOUT = 26,
    GROUP_ERR_REBALANCE_IN_PROGRESS = 27,
    GROUP_ERR_INVALID_REQUEST = 42,
    GROUP_ERR_NON_EMPTY_GROUP = 68,
    GROUP_ERR_GROUP_ID_NOT_FOUND = 69,
    GROUP_ERR_MEMBER_ID_REQUIRED = 79,
    GROUP_ERR_GROUP_MAX_SIZE_REACHED = 81,
    GROUP_ERR_FENCED_INSTANCE_ID = 82,
    GROUP_ERR_GROUP_SUBSCRIBED_TO_TOPIC = 86,
    GROUP_ERR_UNSTABLE_OFFSET_COMMIT = 88,
};

enum group_state {
    GROUP_EMPTY,
    GROUP_PREPARING_REBALANCE,
    GROUP_COMPLETING_REBALANCE,
    GROUP_STABLE,
    GROUP_DEAD,
};

/* Kafka's name of a state ("Empty", "PreparingRebalance", ...). */
const char *group_state_name(enum group_state s);

/* Owned bytes; ptr NULL is null. A non-null empty value has a valid ptr. */
struct group_bytes {
    uint8_t *ptr;
    size_t len;
};

static inline struct slice group_bytes_slice(struct group_bytes b)
{
    return slice_make(b.ptr, b.len);
}

struct group_protocol {
    struct group_bytes name;
    struct group_bytes metadata;
};

/* A member: read-only outside coord.c. */
struct group_member {
    struct group_bytes member_id;
    struct group_bytes instance_id; /* null for a dynamic member */
    struct group_bytes client_id;
    struct group_bytes client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    struct group_protocol *protocols; /* in the member's order of preference */
    size_t protocol_count;
    struct group_bytes assignment;
    void *join_token; /* a JoinGroup waiting for the rebalance, or NULL */
    void *sync_token; /* a SyncGroup waiting for the assignment, or NULL */
    int64_t session_deadline_ms;
};

/* A KIP-394 member id handed out with MEMBER_ID_REQUIRED, not yet used to join. */
struct group_pending {
    struct group_bytes member_id;
    int64_t deadline_ms;
};

struct group_offset {
    struct group_bytes topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    struct group_bytes metadata;
    int64_t commit_ms;
    int64_t expire_ms; /* an explicit expiry (OffsetCommit v2-v4 retention), or -1 */
};

/* An offset committed in a transaction (TxnOffsetCommit), pending until its producer's
 * transaction marker on the group's partition commits it (it becomes the committed offset) or
 * aborts it (it is dropped): Kafka's pendingTransactionalOffsetCommits. */
struct group_txn_offset {
    int64_t producer_id;
    struct group_offset o;
};

/* A group: read-only outside coord.c. */
struct group {
    struct group_bytes id;
    uint32_t partition;
    enum group_state state;
    int64_t state_ms; /* when the state last changed (Kafka's currentStateTimestamp) */
    int32_t generation;
    struct group_bytes protocol_type; /* null until a member joined */
    struct group_bytes protocol_name; /* null outside a generation with members */
    struct group_bytes leader_id;     /* null when there is no leader */
    struct group_member **members;
    size_t member_count;
    struct group_pending *pending;
    size_t pending_count;
    int64_t rebalance_deadline_ms; /* PREPARING_REBALANCE: complete the join by then */
    bool initial_active;           /* the initial delay of an empty group's first join runs */
    int64_t initial_deadline_ms;   /* when the initial delay ends */
    int64_t initial_limit_ms;      /* the initial delay is extended at most to this */
    bool initial_joined;           /* a new member joined during the current initial delay */
    int64_t sync_deadline_ms;      /* COMPLETING_REBALANCE: the leader's SyncGroup by then */
    uint64_t sync_append_id;       /* the append storing the leader's assignment, or 0 */
    struct group_offset *offsets;
    size_t offset_count;
    size_t offset_cap;
    uint32_t *offset_index; /* open addressing over offsets[], UINT32_MAX empty */
    size_t offset_slots;
    struct group_txn_offset *txn_offsets; /* one per (producer, topic, partition) */
    size_t txn_count;
    size_t txn_cap;
};

struct group_config {
    uint32_t partition_count; /* partitions of __consumer_offsets */
    uint32_t initial_delay_ms;
    uint32_t session_ms_min;
    uint32_t session_ms_max;
    int64_t retention_ms; /* offsets of an empty group expire this long after it emptied */
    uint32_t retention_check_ms;
    uint32_t members_max;
    uint64_t seed; /* member ids are random from this seed */
};

void group_config_default(struct group_config *cfg);

/* Kafka's partition for a group: abs(Java String.hashCode(id)) mod partition_count. */
uint32_t group_partition_of(struct slice group_id, uint32_t partition_count);

enum group_fx_kind {
    GROUP_FX_JOIN,   /* answer a JoinGroup */
    GROUP_FX_SYNC,   /* answer a SyncGroup */
    GROUP_FX_APPEND, /* append records to __consumer_offsets partition `partition` */
};

struct group_fx_member {
    struct slice member_id;
    struct slice instance_id;
    struct slice metadata;
};

struct group_record {
    struct slice key;
    struct slice value; /* ptr NULL: a tombstone */
};

struct group_fx {
    enum group_fx_kind kind;
    void *token; /* JOIN/SYNC: the request answered; APPEND: the caller's token or NULL */
    int16_t error;
    /* JOIN */
    int32_t generation;
    struct slice protocol_type; /* JOIN and SYNC; ptr NULL null */
    struct slice protocol_name; /* JOIN and SYNC; ptr NULL null */
    struct slice leader_id;
    struct slice member_id;
    bool skip_assignment;
    const struct group_fx_member *members; /* the leader's answer only */
    size_t member_count;
    /* SYNC */
    struct slice assignment;
    /* APPEND */
    uint32_t partition;
    int64_t producer_id; /* a transaction's offsets (a transactional batch), else -1 */
    int16_t producer_epoch;
    uint64_t append_id;
    const struct group_record *records;
    size_t record_count;
};

struct group_fx_queue;
struct group_append;

struct group_coord {
    struct group_config cfg;
    struct rng rng;
    uint8_t *partition_state; /* per partition: enum in coord.c */
    struct group **groups;
    size_t group_count;
    size_t group_cap;
    uint32_t *group_index; /* open addressing over groups[], UINT32_MAX empty */
    size_t group_slots;
    struct group_fx *fx;
    size_t fx_count;
    size_t fx_cap;
    size_t fx_next;
    struct arena fx_arena;        /* effect data; reset once every effect was polled */
    struct group_append *appends; /* appends not yet done, oldest first */
    uint64_t next_append_id;
    int64_t next_retention_ms;
    int64_t next_deadline_ms; /* no deadline falls before it (tick has nothing to do) */
};

/* ---- life cycle and partitions ----------------------------------------------------------- */

void group_coord_init(struct group_coord *c, const struct group_config *cfg);
/* Frees everything; tokens still parked are dropped (the host answers or frees them itself). */
void group_coord_deinit(struct group_coord *c);

/* The next effect: 1 with *out filled, 0 when none is left. */
int group_coord_poll(struct group_coord *c, struct group_fx *out);

/* Starts coordinating partition p: it answers LOAD_IN_PROGRESS until group_coord_load_done. */
void group_coord_load_begin(struct group_coord *c, uint32_t p);
/* Applies one record of partition p read during its load (value.ptr NULL: a tombstone). A
 * record that does not decode is not applied and reported with ERR_CORRUPT or ERR_UNSUPPORTED
 * (a record type or version this coordinator does not know). */
int group_coord_load_record(struct group_coord *c, uint32_t p, struct slice key,
                            struct slice value);
/* Applies the whole batches of partition p the log returned from first_offset on, len bytes.
 * Every batch must parse (header, CRC, records) and follow the one before; records of unknown
 * types are skipped. Returns 0, or ERR_CORRUPT (a bad batch or record), ERR_UNSUPPORTED (a
 * compressed batch) or ERR_TOO_LARGE (over GROUP_GROUPS_MAX) with *bad_offset at the batch or
 * record that failed: the partition's state is then incomplete, for group_coord_load_failed. */
int group_coord_load_batches(struct group_coord *c, uint32_t p, const uint8_t *bytes, size_t len,
                             int64_t first_offset, int64_t *bad_offset);
void group_coord_load_done(struct group_coord *c, uint32_t p, int64_t now_ms);
/* Partition p cannot be loaded whole: what was loaded is dropped, and its groups answer
 * UNKNOWN_SERVER_ERROR (never a partial state) until it is unloaded and loaded again. */
void group_coord_load_failed(struct group_coord *c, uint32_t p);
/* Stops coordinating partition p: its groups are dropped, their parked requests answered with
 * NOT_COORDINATOR. */
void group_coord_unload(struct group_coord *c, uint32_t p);

/* NONE when the coordinator answers for the group now, else NOT_COORDINATOR,
 * LOAD_IN_PROGRESS, UNKNOWN_SERVER_ERROR (its partition failed to load) or INVALID_GROUP_ID
 * (an empty id). */
int16_t group_coord_check(const struct group_coord *c, struct slice group_id);

/* Expires sessions, pending members, rebalance and sync deadlines, and offsets, as due at
 * now_ms; returns at once when nothing is due. */
void group_coord_tick(struct group_coord *c, int64_t now_ms);
/* No deadline falls before this time, so group_coord_tick() has nothing to do until then: the
 * host arms its timer for it, and every deadline happens on time. */
int64_t group_coord_next_deadline_ms(const struct group_coord *c);

/* An append from a GROUP_FX_APPEND is committed (err 0) or failed (err < 0). */
void group_coord_append_done(struct group_coord *c, uint64_t append_id, int err, int64_t now_ms);

/* ---- the group protocol ------------------------------------------------------------------ */

struct group_join_req {
    struct slice group_id;
    struct slice member_id;   /* empty for a first join */
    struct slice instance_id; /* ptr NULL: dynamic */
    struct slice protocol_type;
    struct slice client_id;
    struct slice client_host;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms; /* -1: the session timeout (JoinGroup v0) */
    const struct slice *protocol_names;
    const struct slice *protocol_metadata;
    size_t protocol_count;
    bool require_known_member_id; /* JoinGroup v4+ (KIP-394) */
};

/* Always answered through a GROUP_FX_JOIN effect carrying token (now or later). */
void group_join(struct group_coord *c, const struct group_join_req *req, void *token,
                int64_t now_ms);

struct group_sync_req {
    struct slice group_id;
    struct slice member_id;
    struct slice instance_id;
    struct slice protocol_type; /* ptr NULL: not checked (SyncGroup before v5) */
    struct slice protocol_name;
    int32_t generation;
    const struct slice *assign_member_ids;
    const struct slice *assignments;
    size_t assignment_count;
};

/* Always answered through a GROUP_FX_SYNC effect carrying token (now or later). */
void group_sync(struct group_coord *c, const struct group_sync_req *req, void *token,
                int64_t now_ms);

int16_t group_heartbeat(struct group_coord *c, struct slice group_id, struct slice member_id,
                        struct slice instance_id, int32_t generation, int64_t now_ms);

struct group_leave_member {
    struct slice member_id;   /* may be empty when instance_id is set */
    struct slice instance_id; /* ptr NULL: dynamic */
};

/* Removes each member (errors[i] for each), returns the group-level error. */
int16_t group_leave(struct group_coord *c, struct slice group_id,
                    const struct group_leave_member *members, size_t count, int16_t *errors,
                    int64_t now_ms);

/* ---- offsets ----------------------------------------------------------------------------- */

struct group_commit_req {
    struct slice group_id;
    struct slice member_id;
    struct slice instance_id;
    int32_t generation;   /* -1 for a consumer outside any group (assign() mode) */
    int64_t retention_ms; /* OffsetCommit v2-v4; -1 for the broker's retention */
};

struct group_commit_part {
    struct slice topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    struct slice metadata; /* ptr NULL: null */
};

/*
 * Validates a commit; errors[i] is set for each part. If any part is accepted, an APPEND
 * effect carrying token is queued and *appended is set: the host answers after the append is
 * done, turning accepted parts into errors if it failed. Returns the error of every part when
 * the whole commit is refused (errors[] then all hold it).
 */
int16_t group_offset_commit(struct group_coord *c, const struct group_commit_req *req,
                            const struct group_commit_part *parts, size_t count, int16_t *errors,
                            void *token, bool *appended, int64_t now_ms);

struct group_txn_commit_req {
    struct slice group_id;
    struct slice member_id;   /* empty: not checked */
    struct slice instance_id; /* ptr NULL: none */
    int32_t generation;       /* -1: not checked */
    int64_t producer_id;
    int16_t producer_epoch;
};

/*
 * TxnOffsetCommit (Kafka's handleTxnCommitOffsets): the group is created when unknown; a member
 * id or generation given must match (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID).
 * The offsets are appended as a transactional batch of the producer; once appended they are
 * pending for it (group_coord_txn_end decides them). Answer rules as group_offset_commit.
 */
int16_t group_txn_offset_commit(struct group_coord *c, const struct group_txn_commit_req *req,
                                const struct group_commit_part *parts, size_t count,
                                int16_t *errors, void *token, bool *appended, int64_t now_ms);

/* A transaction marker of the producer committed on partition p: its pending offsets in the
 * groups of p become the committed ones (commit) or are dropped. The marker is in the log, so
 * nothing is appended. */
void group_coord_txn_end(struct group_coord *c, uint32_t p, int64_t producer_id, bool commit);

/* The committed offset of one partition (-1 and no error when none); UNSTABLE_OFFSET_COMMIT
 * with require_stable while a commit of it is being appended or a transaction's offset for it
 * is pending. */
int16_t group_offset_get(const struct group_coord *c, struct slice group_id, struct slice topic,
                         int32_t partition, bool require_stable, const struct group_offset **out);

/* Deletes offsets of partitions the group is not subscribed to (OffsetDelete). Same answer
 * rules as group_offset_commit. */
int16_t group_offset_delete(struct group_coord *c, struct slice group_id,
                            const struct slice *topics, const int32_t *partitions, size_t count,
                            int16_t *errors, void *token, bool *appended, int64_t now_ms);

/* Deletes an empty group with its offsets (DeleteGroups). Same answer rules. */
int16_t group_delete(struct group_coord *c, struct slice group_id, void *token, bool *appended,
                     int64_t now_ms);

/* ---- views ------------------------------------------------------------------------------- */

/* The group, or NULL (unknown, or its partition is not ready). */
const struct group *group_coord_find(const struct group_coord *c, struct slice group_id);
/* Every group by index (0 .. group_coord_group_count()-1); NULL for one whose partition is not
 * ready. */
size_t group_coord_group_count(const struct group_coord *c);
const struct group *group_coord_group_at(const struct group_coord *c, size_t i);
/* What ListGroups answers for the whole coordinator: LOAD_IN_PROGRESS while a partition is
 * loading, UNKNOWN_SERVER_ERROR if one failed to load (a list without it would be partial), else
 * NONE. */
int16_t group_coord_list_error(const struct group_coord *c);
/* The metadata a member offered for the group's protocol (empty when none). */
struct slice group_member_metadata(const struct group *g, const struct group_member *m);

#endif
