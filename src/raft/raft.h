/*
 * The Raft core: one consensus group as a pure state machine (Ongaro's thesis is the spec).
 *
 * It owns the group's volatile Raft state (role, term, vote, commit index, membership, and on a
 * leader the per-member progress) and a bounded outbox of messages. It owns no log bytes and
 * does no I/O: the host gives it a log view (struct raft_log_ops) backed by the partition log,
 * feeds it inputs (tick, message, persisted, propose, transfer, membership change, snapshot
 * installed) and drains its outputs through raft_ready()/raft_advance().
 *
 * Indices are Kafka offsets, 0-based. An empty log has start_index 0 and last_index -1. The
 * entry before index i is i - 1; its term is 0 when i == 0 (term 0 is the sentinel "no entry";
 * real terms start at 1). After the host drops a prefix, term_at(start_index - 1) must still
 * answer (the snapshot's last term). The host drops prefixes only at batch boundaries (whole
 * segments), and only below the commit index. Terms are Kafka leader epochs.
 *
 * The unit of appending is a batch: a run of consecutive indices with one term, appended and
 * truncated whole. Messages carry index ranges and terms, never bytes; the host attaches bytes
 * when it sends an append and writes the bytes it received when the core calls ops->append.
 *
 * Quiescence (raft_options.quiesce): a leader with nothing in flight (every member durable and
 * committed at its last index and heard from recently, no transfer, read or membership change
 * pending) sends one last heartbeat flagged "quiesce" and stops ticking; a follower that gets it
 * from its leader stops too. A quiesced group does nothing in raft_tick (the host stops ticking
 * it); any message that needs an answer wakes it, and so does raft_wake(), which the host calls
 * when a node the group depends on has gone silent. Time does not pass for a quiesced group, so
 * a follower's lease promise only grows longer; a quiesced leader holds no lease.
 *
 * Invariants: term and commit_index never decrease; commit_index <= last index; a vote is cast
 * at most once per term; a follower acknowledges only indices it has been told are persisted.
 * It must never allocate after raft_init, read a clock, or call anything outside src/base.
 */
#ifndef CHRONIK_RAFT_RAFT_H
#define CHRONIK_RAFT_RAFT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/limits.h"
#include "base/rand.h"

#define RAFT_NONE (-1) /* no node: no vote cast, no leader known */

enum raft_role {
    RAFT_FOLLOWER,
    RAFT_PRE_CANDIDATE,
    RAFT_CANDIDATE,
    RAFT_LEADER,
};

enum raft_batch_kind {
    RAFT_BATCH_DATA,   /* client records */
    RAFT_BATCH_NOOP,   /* a new leader's control batch */
    RAFT_BATCH_CONFIG, /* one membership change; always exactly one entry */
};

enum raft_change_op {
    RAFT_CHANGE_NONE,
    RAFT_CHANGE_ADD_VOTER, /* add a new voter or promote a learner */
    RAFT_CHANGE_ADD_LEARNER,
    RAFT_CHANGE_REMOVE,
};

/* One batch of the log, as the core sees it: no bytes, only its shape. */
struct raft_batch {
    int64_t first_index;
    int64_t last_index;
    int64_t term;
    uint32_t bytes; /* stored size, for flow control */
    uint8_t kind;   /* enum raft_batch_kind */
    uint8_t op;     /* enum raft_change_op, for RAFT_BATCH_CONFIG */
    int32_t node;   /* the member a RAFT_BATCH_CONFIG batch changes */
};

/*
 * The host's log, seen through callbacks. last_index includes entries written but not yet
 * durable. append() and truncate() are called only inside raft_* input calls; the host records
 * them (and for a follower copies the bytes out of the message it is stepping) and makes them
 * durable later, reporting that with raft_persisted().
 */
struct raft_log_ops {
    int64_t (*start_index)(void *ctx);
    int64_t (*last_index)(void *ctx);
    /* Term of index in [start_index - 1, last_index]; ERR_RANGE outside. */
    int (*term_at)(void *ctx, int64_t index, int64_t *term);
    /* The batch containing index in [start_index, last_index]; ERR_RANGE outside. */
    int (*batch_at)(void *ctx, int64_t index, struct raft_batch *out);
    /* Append b; b->first_index == last_index + 1. Never fails (bounds are checked before). */
    void (*append)(void *ctx, const struct raft_batch *b);
    /* Drop [from, last_index]; from is a batch boundary above the commit index. */
    void (*truncate)(void *ctx, int64_t from);
};

enum raft_msg_type {
    RAFT_MSG_PRE_VOTE,
    RAFT_MSG_PRE_VOTE_RESP,
    RAFT_MSG_VOTE,
    RAFT_MSG_VOTE_RESP,
    RAFT_MSG_APPEND,
    RAFT_MSG_APPEND_RESP,
    RAFT_MSG_HEARTBEAT,
    RAFT_MSG_HEARTBEAT_RESP,
    RAFT_MSG_TIMEOUT_NOW,
    RAFT_MSG_SNAPSHOT,
    RAFT_MSG_TYPE_COUNT,
};

/*
 * A message. Field use per type:
 *   PRE_VOTE/VOTE:      index/log_term = candidate's last index/term; flag = leadership transfer.
 *   *_VOTE_RESP:        reject.
 *   APPEND:             index/log_term = previous entry; last_index = last index carried (equal
 *                       to index when empty); commit; batches (inbound only, see below).
 *   APPEND_RESP:        success: index = match. reject: index = rejected prev index,
 *                       hint_index/hint_term = where the follower's log may agree.
 *   HEARTBEAT:          commit (already capped at the follower's match); seq; flag = quiesce (the
 *                       leader stops heartbeating: stop the election timer until woken).
 *   HEARTBEAT_RESP:     seq echoed; reject with index = the follower's last index when the
 *                       commit sent was beyond it (it lost entries it acknowledged).
 *   SNAPSHOT:           sent by a leader's host for a peer in snapshot_peers whose snapshot is
 *                       the log itself (a partition): index/log_term = the snapshot's last
 *                       entry (the leader's log start - 1, committed); commit. A follower that
 *                       holds that entry (or has committed past it) answers as to an empty
 *                       append; otherwise its ready asks the host to install (install_index).
 *                       Answered with APPEND_RESP, like an append.
 * Outbound appends have batches == NULL: the host reads the batches of [index + 1, last_index]
 * from its log when it encodes them. Inbound appends point batches at an array owned by the
 * host, valid for the duration of raft_step().
 */
struct raft_msg {
    int64_t term;
    int64_t index;
    int64_t log_term;
    int64_t last_index;
    int64_t commit;
    int64_t hint_index;
    int64_t hint_term;
    const struct raft_batch *batches;
    uint32_t seq;
    int32_t from;
    int32_t to;
    uint16_t batch_count;
    uint8_t type;
    uint8_t reject;
    uint8_t flag;
};

struct raft_config {
    int32_t ids[RAFT_MEMBERS_MAX];
    uint8_t voter[RAFT_MEMBERS_MAX];
    uint32_t count;
    int64_t index; /* log index of the config batch that made it; -1 for the initial config */
};

struct raft_read {
    uint64_t id;   /* the host's request id */
    int64_t index; /* reads may be served once the applied index reaches it */
};

/* Everything the host must act on, in this order: persist, send, apply, then raft_advance(). */
struct raft_ready {
    /* Persist before sending anything. */
    bool hard_state_changed;
    int64_t term;
    int32_t vote;
    /* Truncated from this index since the last ready (-1: none); already reflected in the log
     * view, listed so the host can make the truncation durable. */
    int64_t truncated_from;
    /* Indices [write_first, last_index] were appended since the last ready and need fsync
     * (write_first > last_index: none). Completion is reported with raft_persisted(). */
    int64_t write_first;
    int64_t last_index;
    /* Send. Points into the core; valid until raft_advance(). */
    const struct raft_msg *msgs;
    uint32_t msg_count;
    /* Peers that need data below the log start: send each a snapshot. */
    int32_t snapshot_peers[RAFT_MEMBERS_MAX];
    uint32_t snapshot_peer_count;
    /* Follower: the leader sent a SNAPSHOT ending at install_index/install_term (-1: none) that
     * this log does not hold. The host replaces its log by one starting at install_index + 1
     * and, once that is durable, calls raft_snapshot_installed; or ignores it (the leader
     * offers it again). */
    int64_t install_index;
    int64_t install_term;
    /* Apply. */
    int64_t commit_index;
    bool commit_changed;
    struct raft_read reads[RAFT_READS_MAX];
    uint32_t read_count;
    /* Role and leader. */
    bool role_changed;
    uint8_t role;
    int32_t leader;
};

struct raft_options {
    int32_t self;
    int64_t term; /* persisted hard state */
    int32_t vote;
    int64_t commit_index; /* a commit index the host knows, or -1 */
    struct raft_config config;
    struct raft_config config_prev; /* the config before config, for rolling back a truncation */
    uint32_t election_ticks;
    uint32_t heartbeat_ticks;
    bool pre_vote;
    bool check_quorum;
    /* Never campaign until a leader is heard from (a member joining a group whose history lives
     * elsewhere); it votes and follows as usual. */
    bool passive;
    /* Idle groups stop ticking and heartbeating (see above); the host must then call raft_wake()
     * when a node it has stopped hearing from is a member this group depends on. */
    bool quiesce;
    uint64_t seed;
    const struct raft_log_ops *log;
    void *log_ctx;
};

/* Progress of one member as the leader sees it (for ISR and admin views). */
struct raft_progress {
    int32_t id;
    bool voter;
    int64_t match_index;          /* -1 when unknown */
    uint32_t ticks_since_contact; /* ticks since the member last answered */
};

/* One member's replication state on a leader, aligned with config.ids. */
struct raft_member {
    int64_t match; /* highest index known durable and matching; -1 when unknown */
    int64_t next;  /* next index to send */
    int64_t snapshot_index;
    uint32_t inflight_bytes;
    uint32_t contact_ticks; /* ticks since the member last answered */
    uint32_t seq_acked;     /* highest heartbeat seq it echoed */
    uint16_t inflight_msgs;
    uint16_t snapshot_ticks;
    uint8_t state; /* probe, replicate or snapshot (raft.c) */
    uint8_t paused;
    uint8_t active;  /* answered since the last check-quorum round */
    uint8_t granted; /* 0 no answer, 1 granted, 2 rejected */
    uint8_t snapshot_dirty;
};

struct raft_pending_read {
    uint64_t id;
    int64_t index;
    uint32_t seq;
};

/* The group. Caller-allocated; fixed size; nothing inside is heap memory. The host may read
 * role, term, leader, commit, config and outbox_dropped; it never writes a field. */
struct raft {
    const struct raft_log_ops *log;
    void *log_ctx;
    struct rng rng;
    int64_t term;
    int64_t commit;
    int64_t persisted;      /* highest index the host reported durable */
    int64_t verified;       /* follower: highest index known to match the current leader */
    int64_t acked;          /* follower: highest match sent to the current leader */
    int64_t write_first;    /* first index appended since the last ready */
    int64_t truncated_from; /* lowest truncation since the last ready, or -1 */
    int64_t install_index;  /* a SNAPSHOT to install (raft_ready), or -1 */
    int64_t install_term;
    int32_t self;
    int32_t vote;
    int32_t hs_vote; /* the vote handed to the host to persist */
    int32_t leader;
    int32_t transferee;
    uint32_t now_ticks;
    uint32_t election_ticks;
    uint32_t heartbeat_ticks;
    uint32_t election_elapsed;
    uint32_t lease_elapsed; /* ticks since this node last heard from a leader (saturating) */
    uint32_t heartbeat_elapsed;
    uint32_t election_timeout; /* randomised in [election_ticks, 2 * election_ticks) */
    uint32_t transfer_elapsed;
    uint32_t seq; /* heartbeat sequence, for read index and leases */
    uint32_t seq_sent_ticks[RAFT_LEASE_RING];
    uint32_t outbox_count;
    uint32_t outbox_dropped; /* messages lost to a full outbox, for the host's metrics */
    uint32_t read_count;
    uint32_t reads_done_count;
    uint8_t role;
    uint8_t pre_vote;
    uint8_t check_quorum;
    uint8_t passive; /* may not campaign until it hears from a leader (raft_options.passive) */
    uint8_t hard_dirty;
    uint8_t commit_dirty;
    uint8_t role_dirty;
    uint8_t lease_lost; /* leader: sent TimeoutNow this term */
    uint8_t quiesce;    /* quiescence allowed (raft_options.quiesce) */
    uint8_t quiesced;   /* idle: raft_tick does nothing until a message or raft_wake() */
    struct raft_config config;
    struct raft_config config_prev;
    struct raft_member members[RAFT_MEMBERS_MAX];
    struct raft_pending_read reads[RAFT_READS_MAX];
    struct raft_read reads_done[RAFT_READS_MAX];
    struct raft_msg outbox[RAFT_OUTBOX_MSGS_MAX];
};

/* Initialises r from o (hard state, config, log view). 0 or ERR_INVALID for a bad config. */
int raft_init(struct raft *r, const struct raft_options *o);

/* Inputs. Each returns 0 or a negative error; outputs accumulate until raft_advance(). */
/* One tick; nothing at all while quiesced. */
void raft_tick(struct raft *r);
/*
 * The host has heard nothing from node peer for silent_ticks ticks (it may be down or cut off).
 * A quiesced leader with peer as a member wakes (check-quorum runs again; the member's last
 * contact is at least silent_ticks old); a quiesced follower whose leader is peer wakes as if its
 * timers had run for silent_ticks (it heard that leader no later than the node), so it campaigns
 * when an unquiesced follower would. Otherwise nothing.
 */
void raft_wake(struct raft *r, int32_t peer, uint32_t silent_ticks);
/*
 * The host has evidence that node peer is gone, not merely silent: its connection was reset, or
 * closed, or refused (a killed process's sockets close at once). A follower whose leader is peer
 * (quiesced or not) gives up the lease it promised that leader and campaigns without waiting for
 * its election timeout: the first survivor in member order (peer left out) at once, the next
 * half an election timeout later, and so on, so survivors rarely split the vote (a pre-vote the
 * others refuse, because they still hear peer, falls back to the normal timeout). Giving up the
 * lease breaks raft_lease_valid()'s promise if peer is in fact alive: a host that serves reads on
 * leases must not call this. Otherwise nothing.
 */
void raft_leader_gone(struct raft *r, int32_t peer);
/* Validates m (it came from the network) and steps it; ERR_CORRUPT for a malformed one. */
int raft_step(struct raft *r, const struct raft_msg *m);
/* The log is durable up to index, whose term was term (a stale report is ignored). */
void raft_persisted(struct raft *r, int64_t index, int64_t term);
/* Leader only: append one batch of count entries of bytes bytes; the core assigns the range
 * and term (returned in *out, already passed to ops->append). ERR_STATE when not leader or
 * during a transfer. */
int raft_propose(struct raft *r, uint32_t count, uint32_t bytes, struct raft_batch *out);
/* Leader only: hand leadership to a voter. ERR_STATE / ERR_INVALID. */
int raft_transfer(struct raft *r, int32_t target);
/* Leader only: one membership change; refused (ERR_STATE) while another is uncommitted. */
int raft_change(struct raft *r, uint8_t op, int32_t node, struct raft_batch *out);
/* Leader only: confirm leadership for a linearizable read; the result appears in a ready. */
int raft_read_index(struct raft *r, uint64_t id);
/*
 * Leader only: true while a quorum acknowledged heartbeats sent less than election_ticks -
 * RAFT_LEASE_MARGIN_TICKS ago, so no other leader can exist yet (lease reads). Assumes tick
 * rates differ by less than the margin over one election timeout; false for the rest of the
 * term once a transfer was attempted, and false while quiesced (heartbeats acknowledged before
 * quiescing never count again). It rests on every follower that answered refusing all
 * votes but a transfer's for election_ticks afterwards, whatever terms it learns meanwhile.
 */
bool raft_lease_valid(const struct raft *r);
/* The host replaced its log with a snapshot ending at index/term (durable) with config c. */
int raft_snapshot_installed(struct raft *r, int64_t index, int64_t term,
                            const struct raft_config *c);
/* The host could not deliver a snapshot to peer; the leader will ask again. */
void raft_snapshot_failed(struct raft *r, int32_t peer);

/* Outputs. */
bool raft_has_ready(const struct raft *r);
void raft_ready(struct raft *r, struct raft_ready *rd);
void raft_advance(struct raft *r);

/* Views. */
int raft_progress(const struct raft *r, struct raft_progress *out, uint32_t out_max);
bool raft_is_voter(const struct raft_config *c, int32_t id);
/* The config after one change (index unchanged): 0, ERR_INVALID when the change does not apply
 * to c, ERR_TOO_LARGE over RAFT_VOTERS_MAX / RAFT_MEMBERS_MAX. Hosts use it to rebuild the
 * config from the config batches of their log after a restart. */
int raft_config_apply(const struct raft_config *c, uint8_t op, int32_t node,
                      struct raft_config *out);
const char *raft_role_name(uint8_t role);
const char *raft_msg_name(uint8_t type);

#endif
