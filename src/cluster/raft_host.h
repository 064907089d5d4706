/*
 * The Raft host: runs Raft groups (the pure core of raft/raft.h) on this node, each over a
 * partition log (log/log.h) as its Raft log, talking to the other nodes through one transport
 * (cluster/transport.h). The metadata group and, later, every replicated partition are groups
 * of one host.
 *
 * What it owns:
 * - struct raft_host: one per node and loop. Knows its groups (sorted by group id) and routes
 *   the transport's inbound messages to them by group id (wire_group).
 * - struct raft_group: one group: the core, a compact in-memory index of the log's batch
 *   boundaries (first index, last index, term, size, kind) so the core's batch_at/term_at answer
 *   for any index of the log, the term of the entry before the log start, and the proposals
 *   waiting for commit. The log is the caller's (opened before, closed after).
 * - The node's hard-state journal, <state_dir>/raft.state: every group's (term, vote, log start,
 *   term before the start), kept in memory for every group the journal knows (open or not);
 *   changes are appended as CRC'd records, all of one loop iteration in one record and one sync
 *   (raft_host_flush), and the file is rewritten compacted once it grows past
 *   max(RAFT_HOST_JOURNAL_BYTES_MIN, 4 x its live size).
 *
 * Mapping to the partition log: index = offset, term = partitionLeaderEpoch. A leader stamps
 * proposals with baseOffset and leaderEpoch = term (log_append); a follower writes the leader's
 * bytes unchanged at the same offsets (log_append_at); a conflicting suffix is cut with
 * log_truncate_to (durable when it returns). A new leader's no-op is a Kafka control batch
 * (one LEADER_CHANGE control record), which client reads leave out (log_read_records).
 * Single-node data written before the cluster carries leader epoch 0, and Raft's term 0 means
 * "no entry": the host reads epoch 0 as term 1 (RAFT_HOST_TERM_STANDALONE) and every group's
 * hard state starts at term 1, so no election ever makes a leader of term 1 and the only term-1
 * entries in any log are the standalone node's own data (log matching holds).
 *
 * Durability rules (the loop of docs/raft.md):
 * - Hard state (term, vote) is on disk before any message that depends on it leaves: a ready
 *   that changed it queues it for the journal and the group holds its messages (in order) until
 *   raft_host_flush() has written and synced the journal, once for all groups. So 10,000 groups
 *   electing at once cost one write and one sync per loop iteration, not 10,000 x 3 syncs.
 *   The host holds rather than rely on the transport queueing until its flush(): sim_net does,
 *   but tcp_transport also writes a peer's queue the moment its connection becomes ready (an
 *   event between two flushes), and a transport flush delivers RPCs to self whose handlers may
 *   send. Held, a message reaches transport_send() only once its hard state is synced.
 * - Entries become durable through the log flusher's group commit (log_flush); the host reports
 *   them with raft_persisted() only from the log's durable offset, so the core never counts or
 *   acknowledges an entry that is not on disk. The leader sends appends before its own copy is
 *   durable (Raft allows it: the leader counts itself only once persisted).
 * - Once per loop iteration, after the host's work: raft_host_flush(), THEN the transport's
 *   flush(). Held messages wait for the next raft_host_flush() otherwise.
 * - A log start recorded by raft_group_compact is synced (with everything queued) before the
 *   log's prefix is deleted; one noticed after retention goes out with the next record.
 * - Upgrade: a group the journal does not know reads the per-group file of the format before it
 *   (<topic id hex>-<partition>.raft-state) and deletes it once the journal holding its state is
 *   synced.
 *
 * Partition groups (log_snapshots): the snapshot is the leader's log start. A follower below
 * it gets a SNAPSHOT naming the start - 1 and its term, replaces its log by an empty one there
 * (log_reset, durable before the core hears of it; the group is frozen meanwhile) and is caught
 * up by appends. The log start itself is replicated by log-start markers (control batches,
 * raft_group_propose_start) that every replica applies once committed and durable here.
 *
 * Proposals: raft_group_propose() appends on the leader and returns (offset, term); its waiter
 * completes with 0 once that entry is committed, or with ERR_STATE (Kafka's NOT_LEADER_OR_FOLLOWER)
 * when it was truncated or another entry committed at its offset, or ERR_CLOSED when the group
 * closes or fails.
 *
 * Idle groups (docs/raft.md "Quiescence"): every group's core may quiesce (raft.h); the host ticks
 * only the groups that are not quiesced (an active list: O(active) per tick, not O(groups)) and
 * keeps liveness per node instead of per group: every heartbeat interval (the shortest of its
 * groups') it sends each peer (every node that is a member of one of its groups) one small
 * liveness message, and it notes the tick it last received any frame from each peer. A peer
 * heard from not for an election timeout (the shortest of its groups'), or reported down by the
 * transport, is silent: every quiesced group that depends on it (its leader, or a member of a
 * group this node leads) is woken with raft_wake() and the ticks of silence, so a dead leader's
 * followers elect as soon as unquiesced ones would and a leader cut off is deposed by
 * check-quorum. A peer whose host restarted (a new incarnation in its liveness messages) wakes
 * the same groups, without the silence: it may have lost their state and wait passively. The
 * liveness message is a heartbeat of raft_host_liveness_group (Kafka's zero topic id, never a
 * topic's; seq is the sender's incarnation), which no group steps.
 *
 * Threads: everything on the owner loop. Callbacks (apply, role, waiters) run inside whichever
 * host call processed the ready (a tick, a received message, a flush completion, a proposal),
 * after raft_advance(), so they may propose; they must not close a group or destroy the host.
 */
#ifndef CHRONIK_CLUSTER_RAFT_HOST_H
#define CHRONIK_CLUSTER_RAFT_HOST_H

#include "cluster/transport.h"
#include "cluster/wire.h"
#include "io/io.h"
#include "log/log.h"
#include "raft/raft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The term single-node data (leader epoch 0) reads as, and the term every hard state starts at. */
#define RAFT_HOST_TERM_STANDALONE 1

struct raft_host;
struct raft_group;

/* The group id of the per-node liveness messages (the zero topic id, partition 0). */
extern const struct wire_group raft_host_liveness_group;

/* Called when the commit index advanced: entries [first, last] are committed (in order, never
 * twice). */
typedef void (*raft_group_apply_fn)(void *ctx, int64_t first, int64_t last);
/* Called when the role or the known leader changed. */
typedef void (*raft_group_role_fn)(void *ctx, uint8_t role, int32_t leader, int64_t term);

/* A proposal's completion: err 0 once committed; ERR_STATE (NOT_LEADER_OR_FOLLOWER) when it
 * never will be; ERR_CLOSED when the group closed first; the storage error when it failed. */
typedef void (*raft_group_done_fn)(void *ctx, int err);

/* A proposal waiting for commit, caller-allocated, linked in while waiting. Keyed by (offset,
 * term): a waiter completes only if the entry committed is the one proposed. */
struct raft_waiter {
    struct raft_waiter *next;
    int64_t last_offset;
    int64_t term;
    raft_group_done_fn fn;
    void *ctx;
};

struct raft_host_options {
    int32_t self;
    struct io *io;
    struct clock *clock;   /* timestamps of no-op batches */
    const char *state_dir; /* where the hard-state journal lives (must exist) */
};

struct raft_group_options {
    struct wire_group group;
    struct log *log;           /* open; the caller closes it after raft_group_close */
    struct raft_config config; /* the members (config.index -1) */
    uint32_t election_ticks;   /* 0: RAFT_ELECTION_TICKS_DEFAULT */
    uint32_t heartbeat_ticks;  /* 0: RAFT_HEARTBEAT_TICKS_DEFAULT */
    uint64_t seed;             /* election timeout randomisation */
    int64_t applied_index;     /* what the caller applied before (its snapshot), or -1 */
    /* A member joining a group that may already hold committed entries elsewhere (a new node
     * with an empty log): it never campaigns until it has heard from a leader, so members that
     * know nothing cannot elect one of themselves and overwrite the history of those that do. */
    bool joining;
    /* The group's state machine is its log (a partition): a follower below the leader's log
     * start is sent a snapshot that is only that start, replaces its log by an empty one
     * starting there and is caught up by appends (raft_host.c, "snapshots"). Otherwise the host
     * sends no snapshots. */
    bool log_snapshots;
    raft_group_apply_fn apply;  /* may be NULL */
    raft_group_role_fn on_role; /* may be NULL */
    void *ctx;
};

struct raft_host_stats {
    uint64_t msgs_sent;
    uint64_t msgs_received;
    uint64_t msgs_refused; /* malformed, unknown group, or bytes that disagree with their shape */
    uint64_t msgs_dropped; /* the transport refused them (queue full, peer unknown) */
    uint64_t msgs_held;    /* held until their hard state was synced */
    uint64_t msgs_stale;   /* held, then dropped: the group moved to a later term meanwhile */
    uint64_t hard_state_writes;   /* group hard states written to the journal */
    uint64_t hard_state_syncs;    /* journal (and its directory) syncs */
    uint64_t journal_compactions; /* journal rewrites */
    /* Where an idle host's CPU goes (host-wide, no per-group state): */
    uint64_t host_ticks;                             /* raft_host_tick calls */
    uint64_t group_ticks;                            /* raft_tick calls: host ticks x groups */
    uint64_t readies;                                /* readies processed */
    uint64_t msgs_sent_by_type[RAFT_MSG_TYPE_COUNT]; /* by enum raft_msg_type */
    uint64_t msgs_received_by_type[RAFT_MSG_TYPE_COUNT];
    uint64_t append_batches_sent; /* batches read from the log into appends */
    uint64_t append_bytes_sent;
    /* Quiescence and per-node liveness: */
    uint64_t groups_active;     /* now: groups ticked (not quiesced, not failed) */
    uint64_t liveness_sent;     /* liveness messages, one per peer per heartbeat interval */
    uint64_t liveness_received; /* (not counted in msgs_sent / msgs_received) */
    uint64_t peers_silent;      /* times a peer went silent (or was reported down) */
    uint64_t peer_restarts;     /* times a peer's host restarted (its incarnation changed) */
    uint64_t peer_wakes;        /* quiesced groups woken because a peer went silent or restarted */
    uint64_t leaders_gone;      /* groups told their leader's node is gone (peer_gone) */
    /* Snapshots of partition groups (a follower below the leader's log start): */
    uint64_t snapshots_sent;      /* SNAPSHOT messages offered by leaders */
    uint64_t snapshots_installed; /* logs replaced by an empty one at the leader's start */
};

/* One group's hard state as one journal entry holds it. */
struct raft_host_hard_state {
    struct wire_group id;
    int64_t term;
    int32_t vote;
    int64_t start;     /* the log start recorded, or -1 */
    int64_t prev_term; /* the term of the entry before start */
};

/* The host of node o->self: reads the journal (creating it if absent; a torn last record is
 * cut). ERR_INVALID for bad options, ERR_CORRUPT for a damaged journal, a storage error. */
int raft_host_create(const struct raft_host_options *o, struct raft_host **out);
/* Requires every group to be closed. */
void raft_host_destroy(struct raft_host *h);
/* The handler to give the transport (on_raft steps the groups). */
void raft_host_handler(struct raft_host *h, struct transport_handler *out);
/* The transport messages go to; NULL detaches (messages are then dropped). */
void raft_host_set_transport(struct raft_host *h, struct transport *t);
/* One tick of every group (the caller's loop timer). */
void raft_host_tick(struct raft_host *h);
/* Inbound messages (what on_raft does). */
void raft_host_receive(struct raft_host *h, const struct wire_raft *frame);
void raft_host_stats(const struct raft_host *h, struct raft_host_stats *out);
/*
 * The owner has evidence that node peer is gone (its connection was reset, closed or refused:
 * a killed process's sockets close at once), not merely silent: every group this node follows
 * with peer as its leader campaigns without waiting for an election timeout (raft_leader_gone).
 * O(groups), once per such event.
 */
void raft_host_peer_gone(struct raft_host *h, int32_t peer);
/*
 * Once per loop iteration, before the transport's flush(): writes every hard state changed since
 * the last call as one journal record, syncs it once, and hands the messages held for it to the
 * transport. A failure stops every group (raft_group_error) and is returned; 0 otherwise.
 */
int raft_host_flush(struct raft_host *h);
/*
 * The journal codec (for the host and for tests that read what is on disk): reads the journal
 * f of size bytes, calling fn for every entry in file order (a later entry of a group replaces
 * an earlier one; fn's error stops the read). *valid is the length of the good records. The last
 * record may be torn (running past the end, or failing its CRC with nothing but zeros or nothing
 * after it): it is ignored. ERR_CORRUPT for any other bad record or impossible entry.
 */
int raft_host_journal_read(struct io_file *f, uint64_t size,
                           int (*fn)(void *ctx, const struct raft_host_hard_state *s), void *ctx,
                           uint64_t *valid);

/*
 * Opens a group over o->log: reads the hard state (term 1, no vote when there is none), indexes
 * the log's batches (everything in the log is durable at open) and starts the core. ERR_STATE
 * for a group already open, ERR_CORRUPT for a damaged hard-state file or a log whose epochs go
 * down, a storage error from reading the log, ERR_INVALID for a bad config.
 */
int raft_group_open(struct raft_host *h, const struct raft_group_options *o,
                    struct raft_group **out);
/* Fails every waiter with ERR_CLOSED and forgets the group (the log stays open). */
void raft_group_close(struct raft_group *g);

/*
 * Leader only: appends one batch (len bytes that passed batch_parse, stamped in place with its
 * base offset and leader epoch = term). *offset and *term are where it went; w (if not NULL)
 * is called once it commits or cannot. ERR_STATE (NOT_LEADER_OR_FOLLOWER) when this node does
 * not lead (or is handing leadership over), ERR_INVALID for a non-transactional control batch
 * (a no-op's kind; a transaction marker is data) or a term beyond a leader epoch (nothing
 * appended); a storage error stops the group and is returned.
 */
int raft_group_propose(struct raft_group *g, uint8_t *batch, size_t len, struct raft_waiter *w,
                       raft_group_done_fn fn, void *ctx, int64_t *offset, int64_t *term);

/*
 * Leader only: replicates a new log start (DeleteRecords on a replicated partition): appends a
 * marker (a control batch) that every replica applies once committed, moving its log start to
 * start (never below where it is). w is called once it is committed (0: applied on this node,
 * so log_start_offset() answers at least start) or cannot be (as raft_group_propose).
 * ERR_STATE when not leader, ERR_RANGE for start beyond the high watermark.
 */
int raft_group_propose_start(struct raft_group *g, int64_t start, struct raft_waiter *w,
                             raft_group_done_fn fn, void *ctx);

/*
 * Drops the log below offset (a batch boundary at or below commit + 1): records the new start
 * and the term before it in the journal (synced at once), then log_delete_records. Prefix drops of
 * a hosted log go through here; one made behind the host's back (retention) is recorded when the
 * host notices, and a crash in between leaves the term before the start as an upper bound (the
 * first batch's) until the next compaction. ERR_INVALID for an offset that is not such a
 * boundary; a storage error otherwise.
 */
int raft_group_compact(struct raft_group *g, int64_t offset);

/*
 * Leader only: hands leadership to voter target (RAFT_NONE: the other voter with the highest
 * match, ties to the lowest id). The core brings it up to date, then tells it to campaign at
 * once; meanwhile proposals are refused (ERR_STATE), and it gives up after an election timeout.
 * Waiters of entries proposed before complete as usual: 0 once committed by the next leader,
 * ERR_STATE if it truncates them. ERR_STATE when not leader, ERR_INVALID for self, a non-voter,
 * an unknown node, or no other voter.
 */
int raft_group_transfer(struct raft_group *g, int32_t target);
/* Leader only: every member's progress (raft_progress); the count or ERR_STATE. */
int raft_group_progress(struct raft_group *g, struct raft_progress *out, uint32_t max);

struct raft *raft_group_core(struct raft_group *g); /* read-only views: role, term, commit */
bool raft_group_is_leader(const struct raft_group *g);
int64_t raft_group_commit(const struct raft_group *g);
/* The group's error (a storage error stops it: nothing more is acknowledged), or its log's
 * (shown at once, even while the group is quiesced and has not looked), or 0. */
int raft_group_error(const struct raft_group *g);
/* Leader whose own term has an entry committed (its no-op): its commit index covers every
 * entry any earlier leader committed, so what it answers never goes back. */
bool raft_group_leader_ready(struct raft_group *g);
/* Completes every waiting proposal with err now (a leader that lost its leadership answers
 * them NOT_LEADER_OR_FOLLOWER, as Kafka does, though a later leader may still commit them). */
void raft_group_fail_waiters(struct raft_group *g, int err);
/* The term of the entry at offset; ERR_RANGE outside the log. */
int raft_group_term_at(struct raft_group *g, int64_t offset, int64_t *term);

#endif
