/*
 * The whole-cluster simulator (cluster_sim.h, docs/raft.md "The cluster simulator").
 *
 * Owns, for one run: the nodes (struct cs_node: a simulated disk that outlives the process, and
 * while the process runs its log files cache, log flusher (manual mode: an fsync completes when
 * the simulator says so), one replica per partition (cluster/replica.h: its log and, attached to
 * the node's host, its Raft group), the metadata log,
 * image and metadata node (cluster/meta_node.h), the Raft host and its transport on the
 * simulated network), the clients and the admin (the controller's topic creations and
 * deletions), per partition and for the metadata log the record of every committed and every
 * acknowledged batch, and every topic the admin created or tried to.
 *
 * Model: time is in simulated milliseconds. Every event is a step: a node's tick (every
 * CS_TICK_MS at its own phase), a node's disk completing the fsyncs queued so far (after a
 * latency drawn per seed), the network delivering the frames due, a client producing or
 * fetching, a fault, a restart. After each step every running node's transport is flushed (the
 * end of a loop iteration) and the continuous checks run. A restart rebuilds the node from its
 * disk alone: logs recovered by replica_open, hard state by replica_attach, the metadata image by
 * meta_node_load and the metadata log. Clients go through the replicas as the broker's handlers
 * do: produce with acks=all (REPLICA_WAIT_COMMIT with min.insync.replicas, refused while the
 * ISR is smaller, as produce.c does) or acks=1 (REPLICA_WAIT_LEADER) to a node that
 * replica_leads, fetch with replica_read; replica_tick runs with the node's tick.
 *
 * Checks:
 *   host promises     no append response acknowledges an index the node has not made
 *                     durable; no message carries a term, no vote response a vote, that is
 *                     not in the node's hard-state file (checked as each message is handed to
 *                     the transport); a restarted node's term is at least every term it sent;
 *                     a group or the metadata node stops on a storage error only if the disk
 *                     failed (io_sim_faults moved) during that process's life (all left out
 *                     with end_to_end);
 *   state machine     every batch a node's commit index passed is read from that node's log
 *                     and must match (offsets, term, CRC) what any node ever committed at those
 *                     offsets: no offset holds two committed records;
 *   acknowledgement   a batch acknowledged with acks=all (its wait completed with 0) is the
 *                     batch committed at its offset, no offset is acknowledged twice with
 *                     different records, and at that moment at least min.insync.replicas
 *                     replicas hold it durably (those down then are read at their restart);
 *                     one acknowledged with acks=1 is durable on the leader that answered (and
 *                     may be lost later: no other check counts it); a failed wait is ERR_STATE,
 *                     ERR_CLOSED, ERR_REPLICAS (the leader's ISR then smaller than
 *                     min.insync.replicas) or follows a disk error, never ERR_STATE from a node
 *                     still leading the term it appended the batch in;
 *   waits             a wait whose batch its node's log no longer holds in its term completes
 *                     within CS_GONE_MS, and none is left pending once everything settled;
 *   no loss           a node that becomes leader of term T holds, at their offsets, every batch
 *                     acknowledged with acks=all while its proposer was in a term below T
 *                     (acknowledged in term A, it was committed by a leader of term <= A, so
 *                     every leader of a later term has it);
 *   election safety   one leader per term per group;
 *   commit            a running node's commit index never goes back;
 *   client view       a replica that replica_leads has committed in its term; a client ignores
 *                     one older than the newest leader it saw (Kafka's leader-epoch fencing);
 *                     the high watermark it sees never goes back, covers every batch
 *                     acknowledged in an earlier term, and every batch replica_read returns is
 *                     at or below the leader's commit index and committed (consumers never
 *                     read uncommitted data);
 *   metadata history  every batch a metadata node applies, read back from its log, is the one
 *                     any node ever applied at those offsets (its apply is its commit);
 *   metadata ops      once a node applied past an acknowledged operation's offset its image
 *                     holds the created topic as built (unless a deletion of it was proposed)
 *                     and not one whose deletion was acknowledged; no name is acknowledged as
 *                     created twice (a second creation queued behind the first must be built
 *                     after the first applied, and refused);
 *   at the end        after healing every fault and restarting every node: every group elects
 *                     a leader and commits a new proposal within CS_LIVENESS_MS, every node
 *                     catches up within CS_SETTLE_MS; within CS_META_SETTLE_MS there is a
 *                     controller, every node applied its whole metadata log and every image is
 *                     equal, every broker unfenced; a broker then cut off alone is fenced within
 *                     CS_FENCE_MS and all settles again within CS_META_SETTLE_MS of the heal;
 *                     then every node's log holds exactly the committed batches and every
 *                     acknowledged batch at its offset.
 *
 * Faults (drawn by the seed, within its fault phase): drop, delay, duplicate and reorder (the
 * network's settings change over time), symmetric and one-way partitions, a group's leader cut
 * off with a minority, a process crash (page cache survives), a clean shutdown, or a node's
 * power loss (unsynced writes lost; the last write kept as a prefix or sector by sector with
 * holes; with reorder later writes too, out of order), power loss of every node at once,
 * injected EIO/ENOSPC on one operation or a disk that fills up (the group stops, the process
 * exits and is restarted, its operator having freed space), a node's clock jumping (monotonic
 * forward, wall either way, up to CS_CLOCK_JUMP_MS), a node's process stalling (what reaches it
 * held until it runs again), and a prefix the node has committed and made durable (half the
 * time: every node has) dropped through the host (raft_group_compact) or behind its back
 * (retention), so lagging or crashed followers must install snapshots, a leadership transfer
 * (raft_group_transfer to a random or the most caught-up voter), and a controlled shutdown
 * (every leadership the node holds handed over, bounded, then a clean stop and a restart).
 * The admin's operations run under all of them.
 *
 * Extending: a node is what one process owns, started in node_start and dropped in node_crash,
 * so a restart keeps rebuilding everything from the disk alone. The broker's handlers run in
 * stage 5 (broker_sim.c), where a node is a whole broker; this file keeps the checks that need
 * the host's and the replicas' insides (the wire promises, durability at acknowledgement).
 */
#include "sim/cluster_sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/compiler.h"
#include "base/error.h"
#include "base/limits.h"
#include "base/rand.h"
#include "cluster/meta_controller.h"
#include "cluster/meta_node.h"
#include "cluster/raft_host.h"
#include "cluster/replica.h"
#include "cluster/sim_net.h"
#include "io/io_sim.h"
#include "log/batch.h"
#include "log/log.h"
#include "sim/sim_trace.h"

#define CS_NODES_MAX       5
#define CS_PARTS           4
#define CS_CLIENTS         3
#define CS_TICK_MS         10u
#define CS_ELECTION_TICKS  10u
#define CS_HEARTBEAT_TICKS 2u
#define CS_INFLIGHT_MAX    8u     /* proposals one client has waiting */
#define CS_LIVENESS_MS     5000u  /* after healing: a leader and a new commit per group */
#define CS_SETTLE_MS       5000u  /* then: every node caught up */
#define CS_PROBE_MS        50u    /* liveness proposals are retried this often */
#define CS_FETCH_BYTES     16384u /* a consumer's fetch size */
#define CS_VALUE_BYTES_MAX 400u   /* a record's value, padded */
#define CS_NEVER           UINT64_MAX
#define CS_META            CS_PARTS /* the metadata log's record, beside the partitions' */
#define CS_BROKER_HB_MS    100u     /* broker.heartbeat.interval.ms */
#define CS_SESSION_MS      600u     /* broker.session.timeout.ms */
#define CS_META_SETTLE_MS  5000u    /* after healing: equal images, a controller, all unfenced */
#define CS_FENCE_MS        (CS_SESSION_MS + 2000u) /* an isolated broker is fenced within */
#define CS_TOPICS_MAX      24u                     /* topics the admin keeps at once */
#define CS_CLUSTER_ID      "csim-cluster-id-000001"
#define CS_META_SNAPSHOT   "/metadata.snapshot"
#define CS_CLOCK_JUMP_MS   3000u /* a clock jump's bound, either way (monotonic: forward only) */
#define CS_LAG_MS          500u  /* replica.lag.time.max.ms */
#define CS_HANDOVER_MS_MAX 1500u /* a controlled shutdown's bound on handing leaderships over */
#define CS_GONE_MS         1000u /* a wait for a batch its node lost completes within */

/* What identifies a batch in a log: where it is, its term, and the CRC over its records. */
struct cs_fp {
    int64_t base;
    int64_t last;
    int64_t term;
    uint32_t crc;
};

/* One offset of one partition, across nodes and time. */
struct cs_slot {
    struct cs_fp committed; /* the batch holding this offset, as first committed */
    struct cs_fp acked;     /* at base offsets: the batch acknowledged there */
    int64_t ack_term;       /* the proposer's term when it acknowledged */
    bool is_committed;
    bool is_acked;
};

struct cs_pstate {
    struct cs_slot *slots;
    int64_t cap;
    int64_t acked_end; /* one past the highest acknowledged offset */
    int32_t *leader_of_term;
    int64_t *acked_last_of_term; /* the highest offset acknowledged in each term, or -1 */
    int64_t term_cap;
    bool probe_inflight;
    bool live; /* a proposal made after healing was acknowledged */
    /* The highest low watermark a leader answered for a log-start marker (DeleteRecords): no
     * replica that serves later starts below it. */
    int64_t start_answered;
};

struct csim;
struct cs_node;

/* One partition replica of a node. */
struct cs_part {
    struct csim *s;
    struct cs_node *n;
    int k;
    struct replica *r; /* partitions: owns log and g (NULL for the metadata log) */
    struct log *log;
    struct raft_group *g;
    int64_t commit_seen;  /* while the process runs */
    int64_t applied_seen; /* the last committed offset checked, while the process runs */
    /* Survive restarts: the highest term this replica sent, and what its hard-state file held
     * when last read. */
    int64_t term_shown;
    int64_t disk_term;
    int32_t disk_vote;
    bool disk_known;
};

/* A transport that checks the host's promises on every message before passing it on. */
struct cs_wrap {
    struct transport t;
    struct transport *inner;
    struct cs_node *n;
};

/* A node's clock as its processes see it: the simulation's, moved by the jumps drawn for this
 * node (the monotonic clock only forward, as a stalled machine sees it on waking; the wall
 * clock either way, as an NTP step does). */
/* What reaches a stalled process (a frame, a peer going up or down), held in order until it
 * runs again, as its sockets would. Owns copies of everything the frame points to. */
enum cs_held_kind { CS_HELD_RAFT, CS_HELD_RPC, CS_HELD_UP, CS_HELD_DOWN };

struct cs_held {
    struct cs_held *next;
    enum cs_held_kind kind;
    struct wire_raft raft;
    struct wire_rpc rpc;
    int32_t peer;
    int err;
};

/* A node: its disk, which outlives every process, and what its process owns while it runs,
 * which node_start rebuilds from the disk alone and node_crash drops. Later stages add the
 * broker's handlers here. */
struct cs_node {
    struct csim *s;
    int32_t id;
    bool up;
    bool exiting;        /* a storage error: the process exits after this step */
    uint64_t restart_at; /* while down */
    /* A controlled shutdown: leaderships are handed over until handover_deadline, then the
     * process stops cleanly. */
    bool handing_over;
    uint64_t handover_deadline;
    uint64_t next_tick_ms;
    uint64_t next_disk_ms;
    struct io *io;             /* the disk: outlives every process */
    struct sim_node_clock clk; /* the machine's clock: outlives every process */
    bool disk_full;            /* the disk's capacity is capped until this process exits */
    uint64_t disk_faults;      /* io_sim_faults() when this process started */
    /* A stalled process (SIGSTOP, a VM paused) does nothing until stalled_until; what reaches
     * it waits in held. */
    uint64_t stalled_until;
    struct cs_held *held, **held_tail;
    struct log_files *files;
    struct log_flusher *fl;
    struct raft_host *host;
    struct cs_wrap wrap;
    struct cs_part parts[CS_PARTS];
    /* The metadata group: its log, the image it applies to and the metadata node. */
    struct log *meta_log;
    struct cs_part meta_part; /* its log and hard state as the wire checks see them */
    struct meta_image *img;
    struct meta_node *mn;
    struct transport_handler host_h; /* the host's handler, which node_on_* forward to */
    int64_t meta_seen;               /* the last applied offset checked, while the process runs */
    uint32_t starts;                 /* each start is a new incarnation */
};

/* A topic the admin created or tried to (names are never reused). */
struct cs_topic {
    char name[16];
    struct meta_uuid id;
    int32_t partitions;
    int64_t created_at; /* the acknowledged creation's offset, or -1 */
    int64_t deleted_at; /* the acknowledged deletion's offset, or -1 */
    bool delete_built;  /* a deletion was proposed (it may commit unacknowledged) */
    bool gone;          /* a deletion was built (proposed, or found nothing): not live */
    bool dup_built;     /* a second creation of the name was proposed, with id dup_id */
    struct meta_uuid dup_id;
};

/* One controller operation of the admin: create or delete a topic. */
struct cs_mop {
    struct csim *s;
    int32_t node;
    int topic; /* index into csim.topics */
    bool del;
    bool dup;   /* a second creation of the name, queued right behind the first */
    bool built; /* the build added records */
    int16_t ctl_error;
};

struct cs_client {
    int32_t guess[CS_PARTS]; /* who it believes leads */
    int64_t term_max[CS_PARTS];
    int64_t hw_max[CS_PARTS];
    int64_t pos[CS_PARTS]; /* its consumer's next offset */
    uint32_t inflight;
};

struct cs_prop {
    struct replica_commit c;
    struct cs_prop *prev, *next; /* csim.waits: every wait not completed yet */
    struct csim *s;
    int client; /* -1: a liveness probe */
    int k;
    int32_t node;
    enum replica_wait wait; /* REPLICA_WAIT_COMMIT (acks=all) or REPLICA_WAIT_LEADER (acks=1) */
    uint32_t min_insync;
    struct cs_fp fp;
    uint64_t value;
    uint64_t gone_at; /* when its node's log was first seen without the batch, or CS_NEVER */
};

/* An acks=all acknowledgement made while fewer than min_insync running replicas held it: the
 * replicas down at that moment (mask) are read when they restart, before anything else touches
 * their logs, until need of them were found holding it. */
struct cs_durable_check {
    struct cs_durable_check *next;
    int k;
    struct cs_fp fp;
    uint32_t need;
    uint32_t mask;
};

struct csim {
    const struct csim_options *o;
    struct csim_result *res;
    struct rng rng;
    struct clock_sim clock;
    uint64_t now;
    int nodes;
    bool failed;
    struct sim_net *net;
    struct sim_net_options net_opts;
    struct cs_node n[CS_NODES_MAX];
    struct cs_client c[CS_CLIENTS];
    struct cs_pstate p[CS_PARTS + 1]; /* the partitions, then the metadata log (CS_META) */
    struct cs_topic *topics;
    uint32_t topic_count, topic_cap, topics_live;
    int32_t admin_guess;  /* where the admin believes the controller is */
    uint32_t admin_busy;  /* operations queued: one, or a creation and its duplicate */
    int32_t fence_target; /* the broker fence_check isolates */
    /* Settings drawn per seed. */
    uint32_t disk_ms_max;
    uint32_t client_ms_max;
    uint32_t fault_ms_min, fault_ms_max;
    uint32_t power_losses_max;
    uint32_t min_insync; /* min.insync.replicas of every partition */
    struct cs_durable_check *durable_checks;
    struct cs_prop waits; /* list head */
    /* Phases. */
    bool faults_on, clients_on, probes_on;
    uint64_t next_fault_ms, next_client_ms, next_probe_ms, next_admin_ms, heal_at;
    uint64_t values;
    struct buf scratch;
    struct sim_trace trace;
};

/* ---- trace and failure --------------------------------------------------------------------- */

PRINTF_LIKE(2, 3) static void trace(struct csim *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sim_trace_line(&s->trace, s->now, fmt, ap);
    va_end(ap);
}

PRINTF_LIKE(2, 3) static void fail(struct csim *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)sim_trace_fail(&s->trace, s->now, &s->failed, s->res->why, sizeof(s->res->why), fmt, ap);
    va_end(ap);
}

/* ---- per-partition records ------------------------------------------------------------------ */

static struct cs_slot *slot(struct csim *s, int k, int64_t off)
{
    struct cs_pstate *p = &s->p[k];

    ASSERT(off >= 0);
    if (off >= p->cap) {
        int64_t cap = p->cap ? p->cap : 1024;
        while (cap <= off)
            cap *= 2;
        p->slots = xrealloc(p->slots, (size_t)cap * sizeof(*p->slots));
        memset(p->slots + p->cap, 0, (size_t)(cap - p->cap) * sizeof(*p->slots));
        p->cap = cap;
    }
    return &p->slots[off];
}

static bool fp_eq(const struct cs_fp *a, const struct cs_fp *b)
{
    return a->base == b->base && a->last == b->last && a->term == b->term && a->crc == b->crc;
}

/* The batch of log holding offset, from its header. */
static int fp_at(struct log *log, int64_t off, struct cs_fp *out)
{
    uint8_t hdr[BATCH_OFF_RECORD_COUNT + 4];
    struct batch_header h;
    struct log_read rd;
    int rc = log_read(log, off, 1, INT64_MAX, &rd);

    if (rc != 0)
        return rc;
    if (rd.file == NULL)
        return ERR_RANGE;
    ssize_t got = io_pread(log_file_io(rd.file), hdr, sizeof(hdr), rd.position);
    log_read_release(&rd);
    if (got != (ssize_t)sizeof(hdr))
        return got < 0 ? (int)got : ERR_CORRUPT;
    rc = batch_header_parse(hdr, sizeof(hdr), &h);
    if (rc != 0)
        return rc;
    *out = (struct cs_fp){
        .base = h.base_offset, .last = batch_last_offset(&h), .term = h.leader_epoch, .crc = h.crc};
    return 0;
}

/* Records that fp is committed (seen by node), or fails if another record was. */
static void committed(struct csim *s, int k, int32_t node, const struct cs_fp *fp)
{
    char label[16];

    if (k == CS_META)
        snprintf(label, sizeof(label), "meta");
    else
        snprintf(label, sizeof(label), "p%d", k);
    for (int64_t off = fp->base; off <= fp->last && !s->failed; off++) {
        struct cs_slot *sl = slot(s, k, off);
        if (!sl->is_committed) {
            sl->committed = *fp;
            sl->is_committed = true;
        } else if (!fp_eq(&sl->committed, fp)) {
            fail(s,
                 "%s offset %" PRId64 ": node %d committed [%" PRId64 ", %" PRId64 "] term %" PRId64
                 " crc %08x, but [%" PRId64 ", %" PRId64 "] term %" PRId64
                 " crc %08x was committed",
                 label, off, node, fp->base, fp->last, fp->term, fp->crc, sl->committed.base,
                 sl->committed.last, sl->committed.term, sl->committed.crc);
        }
    }
}

/* Every acknowledged batch acknowledged in a term below term is in log at its offset. */
static void check_acked_in(struct csim *s, int k, struct cs_part *pt, int64_t term, const char *who)
{
    struct cs_pstate *p = &s->p[k];

    for (int64_t off = log_start_offset(pt->log); off < p->acked_end && !s->failed; off++) {
        struct cs_slot *sl = &p->slots[off];
        struct cs_fp fp = {0};

        if (!sl->is_acked || sl->ack_term >= term)
            continue;
        int rc = fp_at(pt->log, off, &fp);
        if (rc != 0 || !fp_eq(&fp, &sl->acked))
            fail(s,
                 "p%d: %s node %d (term %" PRId64 ") lacks acknowledged [%" PRId64 ", %" PRId64
                 "] term %" PRId64 " (acknowledged in term %" PRId64 "): has [%" PRId64 ", %" PRId64
                 "] term %" PRId64 " crc %08x/%08x (%s)",
                 k, who, pt->n->id, term, sl->acked.base, sl->acked.last, sl->acked.term,
                 sl->ack_term, fp.base, fp.last, fp.term, fp.crc, sl->acked.crc,
                 rc != 0 ? err_str(rc) : "differs");
    }
}

/* Makes the per-term tables of p reach term. */
static void terms_cover(struct cs_pstate *p, int64_t term)
{
    if (term < p->term_cap)
        return;
    int64_t cap = p->term_cap ? p->term_cap : 64;
    while (cap <= term)
        cap *= 2;
    p->leader_of_term = xrealloc(p->leader_of_term, (size_t)cap * sizeof(*p->leader_of_term));
    p->acked_last_of_term =
        xrealloc(p->acked_last_of_term, (size_t)cap * sizeof(*p->acked_last_of_term));
    for (int64_t i = p->term_cap; i < cap; i++) {
        p->leader_of_term[i] = RAFT_NONE;
        p->acked_last_of_term[i] = -1;
    }
    p->term_cap = cap;
}

/* ---- the replicas' callbacks ----------------------------------------------------------------- */

/* The replica's group committed past applied_seen (the replica owns the group's apply
 * callback, so the simulator looks after every step): every batch up to its commit index, read
 * from its log, is the one any node ever committed at those offsets. */
static void check_applied(struct cs_part *pt)
{
    struct csim *s = pt->s;
    int64_t first = pt->applied_seen + 1, last = raft_group_commit(pt->g);

    if (last > log_end_offset(pt->log) - 1)
        last = log_end_offset(pt->log) - 1;
    if (first < log_start_offset(pt->log))
        first = log_start_offset(pt->log); /* compacted: checked when first committed */
    if (last > pt->applied_seen)
        pt->applied_seen = last;
    for (int64_t off = first; off <= last && !s->failed;) {
        struct cs_fp fp;
        int rc = fp_at(pt->log, off, &fp);
        if (rc != 0 && log_error(pt->log) != 0)
            return; /* the log failed since: the group stops, nothing read more */
        if (rc != 0) {
            fail(s, "p%d node %d applied offset %" PRId64 " it cannot read: %s", pt->k, pt->n->id,
                 off, err_str(rc));
            return;
        }
        committed(s, pt->k, pt->n->id, &fp);
        off = fp.last + 1;
    }
}

/* The replica's role, leader, readiness or ISR changed (replica_raft.on_change, as the broker
 * hears of it): a new leader of a term is the only one and holds everything acknowledged. */
static void on_replica_change(void *ctx)
{
    struct cs_part *pt = ctx;
    struct csim *s = pt->s;
    struct cs_pstate *p = &s->p[pt->k];
    struct raft_group *g = replica_group(pt->r);
    int32_t isr[RAFT_MEMBERS_MAX];

    if (g == NULL)
        return;
    uint8_t role = raft_group_core(g)->role;
    int64_t term = raft_group_core(g)->term;
    uint32_t isr_count = replica_isr(pt->r, isr, RAFT_MEMBERS_MAX);
    trace(s, "p%d n%d %s term %" PRId64 " leader %d%s, isr %u", pt->k, pt->n->id,
          raft_role_name(role), term, replica_leader(pt->r), replica_leads(pt->r) ? " (ready)" : "",
          isr_count);
    if (role != RAFT_LEADER)
        return;
    terms_cover(p, term);
    if (p->leader_of_term[term] == pt->n->id)
        return; /* known since it was elected */
    s->res->elections++;
    if (p->leader_of_term[term] != RAFT_NONE && p->leader_of_term[term] != pt->n->id)
        fail(s, "p%d: two leaders in term %" PRId64 ": nodes %d and %d", pt->k, term,
             p->leader_of_term[term], pt->n->id);
    p->leader_of_term[term] = pt->n->id;
    check_acked_in(s, pt->k, pt, term, "new leader");
}

/* Replicas holding fp durably now: running nodes whose log has it at its offset within the
 * durable offset (or starts past it: a prefix is dropped only once committed and durable there,
 * and a snapshot installed only below the leader's commit); *down gets the nodes not running and
 * those whose log failed (it cannot be read, and the process exits after this step), to be read
 * from their disks at restart. */
static uint32_t durable_holders(struct csim *s, int k, const struct cs_fp *fp, uint32_t *down)
{
    uint32_t count = 0;

    *down = 0;
    for (int i = 0; i < s->nodes; i++) {
        struct cs_part *pt = &s->n[i].parts[k];
        struct cs_fp at;
        if (!s->n[i].up || (pt->log != NULL && log_error(pt->log) != 0)) {
            *down |= 1u << i;
            continue;
        }
        if (pt->log == NULL)
            continue;
        if (fp->base < log_start_offset(pt->log))
            count++;
        else if (log_durable_offset(pt->log) > fp->last && fp_at(pt->log, fp->base, &at) == 0 &&
                 fp_eq(&at, fp))
            count++;
    }
    return count;
}

/* An acks=all acknowledgement: at that moment at least min_insync replicas hold the batch
 * durably; those down now are read at their restart (durable_check_restart). */
static void check_insync(struct csim *s, const struct cs_prop *pr)
{
    uint32_t down;
    uint32_t count = durable_holders(s, pr->k, &pr->fp, &down);

    if (count >= pr->min_insync)
        return;
    if (count + (uint32_t)__builtin_popcount(down) < pr->min_insync) {
        for (int i = 0; i < s->nodes; i++) {
            struct cs_part *pt = &s->n[i].parts[pr->k];
            struct cs_fp at = {0};
            if (pt->log != NULL)
                (void)fp_at(pt->log, pr->fp.base, &at);
            trace(s,
                  "p%d n%d: log end %" PRId64 ", durable %" PRId64 ", [%" PRId64 ", %" PRId64
                  "] term %" PRId64 " at %" PRId64,
                  pr->k, i, pt->log != NULL ? log_end_offset(pt->log) : -1,
                  pt->log != NULL ? log_durable_offset(pt->log) : -1, at.base, at.last, at.term,
                  pr->fp.base);
        }
        fail(s,
             "p%d: node %d acknowledged [%" PRId64 ", %" PRId64 "] term %" PRId64
             " (acks=all, min.insync.replicas %u) durable on %u replicas",
             pr->k, pr->node, pr->fp.base, pr->fp.last, pr->fp.term, pr->min_insync, count);
        return;
    }
    struct cs_durable_check *d = xcalloc(1, sizeof(*d));
    *d = (struct cs_durable_check){.next = s->durable_checks,
                                   .k = pr->k,
                                   .fp = pr->fp,
                                   .need = pr->min_insync - count,
                                   .mask = down};
    s->durable_checks = d;
}

/* Node n restarts (or, at the end, has caught up): its partition k's log as recovered from its disk
 * settles the checks that waited for it. */
static void durable_check_restart(struct csim *s, struct cs_node *n, int k)
{
    struct cs_durable_check **link = &s->durable_checks;

    while (*link != NULL) {
        struct cs_durable_check *d = *link;
        struct cs_part *pt = &n->parts[k];
        struct cs_fp at;
        if (d->k != k || !(d->mask & (1u << n->id))) {
            link = &d->next;
            continue;
        }
        d->mask &= ~(1u << n->id);
        if (d->need > 0 && pt->log != NULL &&
            (d->fp.base < log_start_offset(pt->log) ||
             (fp_at(pt->log, d->fp.base, &at) == 0 && fp_eq(&at, &d->fp))))
            d->need--;
        if (d->need > 0 && d->mask == 0)
            fail(s,
                 "p%d: acks=all acknowledgement of [%" PRId64 ", %" PRId64 "] term %" PRId64
                 " was durable on too few replicas (%u short, read after restarts)",
                 k, d->fp.base, d->fp.last, d->fp.term, d->need);
        if (d->need == 0 || d->mask == 0) {
            *link = d->next;
            free(d);
        } else {
            link = &d->next;
        }
    }
}

/* An acks=1 acknowledgement: the leader that answered holds the batch durably at its offset, or
 * a compaction has dropped it there already, which only drops committed entries (checked when
 * it runs). It may be lost later (a new leader without it truncates it), so nothing else is
 * promised. */
static void check_leader_durable(struct csim *s, const struct cs_prop *pr)
{
    struct cs_part *pt = &s->n[pr->node].parts[pr->k];
    struct cs_fp at = {0};

    if (pt->log != NULL && pr->fp.last < log_start_offset(pt->log) &&
        log_durable_offset(pt->log) > pr->fp.last)
        return;
    if (pt->log == NULL || log_durable_offset(pt->log) <= pr->fp.last ||
        fp_at(pt->log, pr->fp.base, &at) != 0 || !fp_eq(&at, &pr->fp))
        fail(s,
             "p%d: node %d acknowledged [%" PRId64 ", %" PRId64 "] term %" PRId64
             " (acks=1) but holds [%" PRId64 ", %" PRId64 "] term %" PRId64
             ", durable offset %" PRId64,
             pr->k, pr->node, pr->fp.base, pr->fp.last, pr->fp.term, at.base, at.last, at.term,
             pt->log != NULL ? log_durable_offset(pt->log) : -1);
}

/* A failed wait: the node lost leadership (ERR_STATE), its process ends (ERR_CLOSED) or its
 * disk failed. Never ERR_STATE from a node still leading in the term it appended in. */
static void check_failed_wait(struct csim *s, const struct cs_prop *pr, int err)
{
    struct cs_node *n = &s->n[pr->node];
    struct cs_part *pt = &n->parts[pr->k];

    if (err == ERR_CLOSED || (n->up && io_sim_faults(n->io) != n->disk_faults))
        return;
    if (err == ERR_REPLICAS) {
        /* Committed, then the leader's ISR shrank below min.insync.replicas (the callback runs
         * as it finds that out, so the ISR is the one it judged). */
        int32_t isr[RAFT_MEMBERS_MAX];
        uint32_t isr_count = replica_isr(pt->r, isr, RAFT_MEMBERS_MAX);
        if (isr_count >= pr->min_insync)
            fail(s,
                 "p%d: node %d failed the wait for [%" PRId64 ", %" PRId64 "] with %s while its "
                 "ISR holds %u of the %u replicas min.insync.replicas asks for",
                 pr->k, n->id, pr->fp.base, pr->fp.last, err_str(err), isr_count, pr->min_insync);
        return;
    }
    if (err != ERR_STATE) {
        fail(s, "p%d: node %d failed the wait for [%" PRId64 ", %" PRId64 "] with %s", pr->k, n->id,
             pr->fp.base, pr->fp.last, err_str(err));
        return;
    }
    if (n->up && pt->g != NULL && raft_group_is_leader(pt->g) &&
        raft_group_core(pt->g)->term == pr->fp.term)
        fail(s,
             "p%d: node %d failed the wait for [%" PRId64 ", %" PRId64 "] with ERR_STATE while "
             "leading term %" PRId64 " it was appended in",
             pr->k, n->id, pr->fp.base, pr->fp.last, pr->fp.term);
}

static void on_done(void *ctx, int err)
{
    struct cs_prop *pr = ctx;
    struct csim *s = pr->s;
    struct cs_pstate *p = &s->p[pr->k];

    pr->prev->next = pr->next;
    pr->next->prev = pr->prev;
    if (pr->client >= 0)
        s->c[pr->client].inflight--;
    else
        p->probe_inflight = false;
    if (err == 0 && pr->wait == REPLICA_WAIT_LEADER) {
        s->res->acked++;
        s->res->acked_leader++;
        trace(s,
              "p%d n%d ack=1 [%" PRId64 ", %" PRId64 "] term %" PRId64 " value %" PRIu64
              " (client %d)",
              pr->k, pr->node, pr->fp.base, pr->fp.last, pr->fp.term, pr->value, pr->client);
        check_leader_durable(s, pr);
    } else if (err == 0) {
        struct cs_part *pt = &s->n[pr->node].parts[pr->k];
        int64_t term = raft_group_core(pt->g)->term;

        /* What its commit index passed so far, before the step ends (first: it may grow the
         * slots, so sl is taken after). */
        check_applied(pt);
        struct cs_slot *sl = slot(s, pr->k, pr->fp.base);
        s->res->acked++;
        trace(s,
              "p%d n%d ack [%" PRId64 ", %" PRId64 "] term %" PRId64 " value %" PRIu64
              " (client %d)",
              pr->k, pr->node, pr->fp.base, pr->fp.last, pr->fp.term, pr->value, pr->client);
        if (!sl->is_committed || !fp_eq(&sl->committed, &pr->fp))
            fail(s,
                 "p%d: node %d acknowledged [%" PRId64 ", %" PRId64 "] term %" PRId64
                 " but offset %" PRId64 " holds %s [%" PRId64 ", %" PRId64 "] term %" PRId64,
                 pr->k, pr->node, pr->fp.base, pr->fp.last, pr->fp.term, pr->fp.base,
                 sl->is_committed ? "committed" : "nothing committed,", sl->committed.base,
                 sl->committed.last, sl->committed.term);
        if (sl->is_acked && !fp_eq(&sl->acked, &pr->fp))
            fail(s, "p%d: offset %" PRId64 " acknowledged twice with different records", pr->k,
                 pr->fp.base);
        if (!s->failed)
            check_insync(s, pr);
        if (!sl->is_acked || term < sl->ack_term) {
            sl->acked = pr->fp;
            sl->ack_term = term;
        }
        sl->is_acked = true;
        if (pr->fp.base + 1 > p->acked_end)
            p->acked_end = pr->fp.base + 1;
        terms_cover(p, term);
        if (pr->fp.last > p->acked_last_of_term[term])
            p->acked_last_of_term[term] = pr->fp.last;
        if (pr->client < 0)
            p->live = true;
    } else {
        trace(s, "p%d n%d fail [%" PRId64 ", %" PRId64 "] term %" PRId64 ": %s", pr->k, pr->node,
              pr->fp.base, pr->fp.last, pr->fp.term, err_str(err));
        check_failed_wait(s, pr, err);
    }
    free(pr);
}

/* ---- the metadata group ---------------------------------------------------------------------- */

/* What node n's image must show once it applied through its meta_seen: every topic whose
 * creation was acknowledged at or below it and whose deletion was never proposed, with the id
 * and partitions it was built with; none whose deletion was acknowledged at or below it. */
static void check_image(struct csim *s, struct cs_node *n, const char *when)
{
    for (uint32_t i = 0; i < s->topic_count && !s->failed; i++) {
        const struct cs_topic *t = &s->topics[i];
        const struct meta_topic *m = meta_topic_find(n->img, t->name, strlen(t->name));
        if (m != NULL && ((memcmp(m->id.b, t->id.b, META_UUID_BYTES) != 0 &&
                           (!t->dup_built || memcmp(m->id.b, t->dup_id.b, META_UUID_BYTES) != 0)) ||
                          (int32_t)m->partition_count != t->partitions))
            fail(s, "meta: node %d (%s, applied %" PRId64 ") holds topic %s unlike it was built",
                 n->id, when, n->meta_seen, t->name);
        else if (m == NULL && t->created_at >= 0 && t->created_at <= n->meta_seen &&
                 !t->delete_built)
            fail(s,
                 "meta: node %d (%s, applied %" PRId64 ") lacks topic %s, acknowledged at %" PRId64,
                 n->id, when, n->meta_seen, t->name, t->created_at);
        else if (m != NULL && t->deleted_at >= 0 && t->deleted_at <= n->meta_seen)
            fail(s,
                 "meta: node %d (%s, applied %" PRId64 ") holds topic %s, whose deletion was "
                 "acknowledged at %" PRId64,
                 n->id, when, n->meta_seen, t->name, t->deleted_at);
    }
}

/* The metadata node applied through last: every batch it applied, read back from its log, is the
 * one committed at those offsets on every node and at every time (one history), and its image
 * shows every acknowledged operation up to there. */
static void on_meta_applied(void *ctx, int64_t last)
{
    struct cs_node *n = ctx;
    struct csim *s = n->s;
    int64_t off = n->meta_seen + 1;

    if (off < log_start_offset(n->meta_log))
        off = log_start_offset(n->meta_log); /* below a snapshot: checked when first applied */
    while (off <= last && !s->failed) {
        struct cs_fp fp;
        int rc = fp_at(n->meta_log, off, &fp);
        if (rc != 0) {
            fail(s, "meta: node %d applied offset %" PRId64 " it cannot read: %s", n->id, off,
                 err_str(rc));
            return;
        }
        committed(s, CS_META, n->id, &fp);
        off = fp.last + 1;
    }
    if (last < n->meta_seen)
        fail(s, "meta: node %d applied %" PRId64 " after %" PRId64, n->id, last, n->meta_seen);
    n->meta_seen = last;
    check_image(s, n, "applied");
}

static void on_meta_controller(void *ctx, int32_t id)
{
    struct cs_node *n = ctx;
    trace(n->s, "meta n%d: controller %d", n->id, id);
}

static bool stalled(const struct cs_node *n)
{
    return n->stalled_until != CS_NEVER;
}

static struct cs_held *hold(struct cs_node *n, enum cs_held_kind kind)
{
    struct cs_held *h = xcalloc(1, sizeof(*h));

    h->kind = kind;
    *n->held_tail = h;
    n->held_tail = &h->next;
    return h;
}

static struct slice slice_copy(struct slice from)
{
    uint8_t *p = xmalloc(from.len ? from.len : 1);

    memcpy(p, from.ptr, from.len);
    return slice_make(p, from.len);
}

static void held_free(struct cs_held *h)
{
    for (size_t i = 0; i < h->raft.count; i++) {
        struct wire_msg *m = &h->raft.msgs[i];
        for (uint16_t j = 0; m->batch_bytes != NULL && j < m->msg.batch_count; j++)
            free((void *)m->batch_bytes[j].ptr);
        free((void *)m->batch_bytes);
        free((void *)m->msg.batches);
    }
    free(h->raft.msgs);
    free((void *)h->rpc.payload.ptr);
    free(h);
}

static void node_on_raft(void *ctx, const struct wire_raft *frame)
{
    struct cs_node *n = ctx;

    if (!stalled(n)) {
        n->host_h.on_raft(n->host_h.ctx, frame);
        return;
    }
    struct cs_held *h = hold(n, CS_HELD_RAFT);
    h->raft = *frame;
    h->raft.msgs = xcalloc(frame->count ? frame->count : 1, sizeof(*h->raft.msgs));
    for (size_t i = 0; i < frame->count; i++) {
        const struct wire_msg *from = &frame->msgs[i];
        struct wire_msg *m = &h->raft.msgs[i];
        uint16_t count = from->msg.batch_count;

        *m = *from;
        m->msg.batches = NULL;
        m->batch_bytes = NULL;
        if (count == 0)
            continue;
        struct raft_batch *b = xmalloc(count * sizeof(*b));
        memcpy(b, from->msg.batches, count * sizeof(*b));
        m->msg.batches = b;
        if (from->batch_bytes == NULL)
            continue;
        struct slice *bytes = xmalloc(count * sizeof(*bytes));
        for (uint16_t j = 0; j < count; j++)
            bytes[j] = slice_copy(from->batch_bytes[j]);
        m->batch_bytes = bytes;
    }
}

static void node_on_rpc(void *ctx, const struct wire_rpc *r)
{
    struct cs_node *n = ctx;

    if (stalled(n)) {
        struct cs_held *h = hold(n, CS_HELD_RPC);
        h->rpc = *r;
        h->rpc.payload = slice_copy(r->payload);
    } else if (n->mn != NULL) {
        (void)meta_node_on_rpc(n->mn, r);
    }
}

static void node_on_peer_up(void *ctx, int32_t peer)
{
    struct cs_node *n = ctx;

    if (stalled(n))
        hold(n, CS_HELD_UP)->peer = peer;
    else if (n->host_h.on_peer_up != NULL)
        n->host_h.on_peer_up(n->host_h.ctx, peer);
}

static void node_on_peer_down(void *ctx, int32_t peer, int err, const char *reason)
{
    struct cs_node *n = ctx;

    if (stalled(n)) {
        struct cs_held *h = hold(n, CS_HELD_DOWN);
        h->peer = peer;
        h->err = err;
    } else if (n->host_h.on_peer_down != NULL) {
        n->host_h.on_peer_down(n->host_h.ctx, peer, err, reason);
    }
}

/* Drops what a stalled process was holding (it crashed), or (deliver) runs again: everything
 * held is handed over in order, its tick and its disk's completions come at once, once each. */
static void unstall(struct csim *s, struct cs_node *n, bool deliver)
{
    struct cs_held *h = n->held;

    if (!stalled(n))
        return;
    n->stalled_until = CS_NEVER;
    n->held = NULL;
    n->held_tail = &n->held;
    if (deliver) {
        trace(s, "n%d runs again", n->id);
        n->next_tick_ms = s->now;
        n->next_disk_ms = s->now;
    }
    while (h != NULL) {
        struct cs_held *next = h->next;
        if (deliver && h->kind == CS_HELD_RAFT)
            node_on_raft(n, &h->raft);
        else if (deliver && h->kind == CS_HELD_RPC)
            node_on_rpc(n, &h->rpc);
        else if (deliver && h->kind == CS_HELD_UP)
            node_on_peer_up(n, h->peer);
        else if (deliver)
            node_on_peer_down(n, h->peer, h->err, "held while stalled");
        held_free(h);
        h = next;
    }
}

/* The controller builds the admin's operation against its image (meta_node.h: every earlier
 * operation committed and applied). */
static void admin_build(void *ctx, struct meta_records *out)
{
    struct cs_mop *op = ctx;
    struct csim *s = op->s;
    struct cs_topic *t = &s->topics[op->topic];
    struct cs_node *n = &s->n[op->node];
    struct meta_ctl_result res;
    uint32_t before = out->count;

    if (op->del) {
        op->ctl_error = meta_ctl_delete_topic(n->img, t->name, out, &res);
    } else {
        struct meta_ctl_create_topic req = {.name = t->name,
                                            .id = op->dup ? t->dup_id : t->id,
                                            .partitions = t->partitions,
                                            .replication_factor =
                                                (int16_t)rng_range(&s->rng, 1, (uint64_t)s->nodes)};
        op->ctl_error = meta_ctl_create_topic(n->img, &req, out, &res);
    }
    op->built = out->count > before;
    if (op->dup)
        t->dup_built = op->built;
    if (op->del) {
        /* Proposed, or found absent on a controller (which has applied everything committed
         * before its term, so a creation not there never commits): no longer live. */
        t->delete_built = op->built;
        t->gone = true;
        s->topics_live--;
    }
    trace(s, "meta n%d builds %s %s: error %d, %u records", n->id, op->del ? "delete" : "create",
          t->name, op->ctl_error, out->count - before);
}

static void admin_done(void *ctx, int err, int64_t offset)
{
    struct cs_mop *op = ctx;
    struct csim *s = op->s;
    struct cs_topic *t = &s->topics[op->topic];
    struct cs_node *n = &s->n[op->node];

    s->admin_busy--;
    trace(s, "meta n%d %s %s done: %s at %" PRId64, n->id, op->del ? "delete" : "create", t->name,
          err_str(err), offset);
    if (err == 0 && op->built && op->ctl_error == 0) {
        if (op->del) {
            t->deleted_at = offset;
        } else if (t->created_at >= 0) {
            /* The second was built after the first applied: it must have found the name. */
            fail(s, "meta: topic %s created twice (acknowledged at %" PRId64 " and %" PRId64 ")",
                 t->name, t->created_at, offset);
        } else {
            t->created_at = offset;
        }
        if (n->mn != NULL && meta_node_applied(n->mn) < offset)
            fail(s,
                 "meta: node %d acknowledged offset %" PRId64 " before applying it (%" PRId64 ")",
                 n->id, offset, meta_node_applied(n->mn));
        check_image(s, n, "acknowledging");
    } else if (!op->del && !op->dup && op->ctl_error != 0) {
        t->gone = true; /* refused (too few unfenced brokers): never created, unless its
                         * duplicate creates it (live then, and not counted) */
        s->topics_live--;
    }
    free(op);
}

/* The admin creates a topic (a new name) or deletes one, at the node it believes controls. */
static void admin_step(struct csim *s)
{
    struct cs_node *n = &s->n[s->admin_guess];
    struct cs_mop *op;
    int rc;

    if (s->admin_busy > 0)
        return;
    if (!n->up || n->mn == NULL || stalled(n)) {
        s->admin_guess = (int32_t)rng_below(&s->rng, (uint64_t)s->nodes);
        return;
    }
    op = xcalloc(1, sizeof(*op));
    *op = (struct cs_mop){.s = s, .node = n->id, .topic = -1};
    if (s->topics_live > 0 && (s->topics_live >= CS_TOPICS_MAX || rng_chance(&s->rng, 1, 3))) {
        /* A topic known created (or not: then nothing is deleted). */
        op->topic = (int)rng_below(&s->rng, s->topic_count);
        op->del = true;
        if (s->topics[op->topic].gone)
            op->topic = -1;
    } else {
        if (s->topic_count == s->topic_cap) {
            s->topic_cap = s->topic_cap ? s->topic_cap * 2 : 32;
            s->topics = xrealloc(s->topics, s->topic_cap * sizeof(*s->topics));
        }
        struct cs_topic *t = &s->topics[s->topic_count];
        *t = (struct cs_topic){
            .partitions = (int32_t)rng_range(&s->rng, 1, 3), .created_at = -1, .deleted_at = -1};
        snprintf(t->name, sizeof(t->name), "t%u", s->topic_count);
        t->id.b[0] = 0x54;
        t->id.b[12] = (uint8_t)(s->topic_count >> 24);
        t->id.b[13] = (uint8_t)(s->topic_count >> 16);
        t->id.b[14] = (uint8_t)(s->topic_count >> 8);
        t->id.b[15] = (uint8_t)s->topic_count;
        op->topic = (int)s->topic_count++;
        s->topics_live++;
    }
    if (op->topic < 0) {
        free(op);
        return;
    }
    /* op may be done and freed inside meta_node_submit. */
    int topic = op->topic;
    bool del = op->del;
    rc = meta_node_submit(n->mn, admin_build, admin_done, op);
    if (rc == 0) {
        s->admin_busy++;
        if (del || !rng_chance(&s->rng, 1, 3))
            return;
        /* A second creation of the name, with another id, queued behind the first: built
         * once the first applied, it must find the name taken (TOPIC_ALREADY_EXISTS). */
        struct cs_topic *t = &s->topics[topic];
        struct cs_mop *dup = xcalloc(1, sizeof(*dup));
        *dup = (struct cs_mop){.s = s, .node = n->id, .topic = topic, .dup = true};
        t->dup_id = t->id;
        t->dup_id.b[1] = 0x44;
        if (meta_node_submit(n->mn, admin_build, admin_done, dup) == 0)
            s->admin_busy++;
        else
            free(dup);
        return;
    }
    /* ERR_STATE: not the controller; the admin asks where it is, or tries anyone. */
    if (!del && topic == (int)s->topic_count - 1) {
        s->topic_count--;
        s->topics_live--;
    }
    free(op);
    int32_t next = meta_node_controller(n->mn);
    if (next < 0 || next == n->id || rng_chance(&s->rng, 1, 4))
        next = (int32_t)rng_below(&s->rng, (uint64_t)s->nodes);
    s->admin_guess = next;
}

/* ---- the transport wrapper: the host's promises at the wire --------------------------------- */

static struct wire_group group_id(int k)
{
    if (k == CS_META)
        return wire_metadata_group;
    struct wire_group id = {.partition = k};
    id.topic_id.bytes[0] = 0x43; /* not one of Kafka's reserved ids */
    id.topic_id.bytes[15] = 0x01;
    return id;
}

static int journal_entry(void *ctx, const struct raft_host_hard_state *e)
{
    struct cs_part *pt = ctx;
    struct wire_group id = group_id(pt->k);

    if (wire_group_eq(&e->id, &id)) {
        pt->disk_term = e->term;
        pt->disk_vote = e->vote;
    }
    return 0;
}

/* The term and vote of the replica in its node's hard-state journal as it is on disk (term 1, no
 * vote, the initial state, when it holds none). */
static void read_hard_state(struct cs_part *pt)
{
    struct io_file *f;
    uint64_t size, valid;

    pt->disk_known = true;
    pt->disk_term = RAFT_HOST_TERM_STANDALONE;
    pt->disk_vote = RAFT_NONE;
    if (io_open(pt->n->io, "/raft.state", IO_RDONLY, &f) != 0)
        return;
    if (io_size(f, &size) != 0 || raft_host_journal_read(f, size, journal_entry, pt, &valid) != 0)
        fail(pt->n->s, "node %d: hard-state journal unreadable", pt->n->id);
    io_close(f);
}

static int wrap_peer_set(struct transport *t, int32_t node, const char *host, uint16_t port)
{
    struct cs_wrap *w = (struct cs_wrap *)t;
    return transport_peer_set(w->inner, node, host, port);
}

static void wrap_peer_remove(struct transport *t, int32_t node)
{
    struct cs_wrap *w = (struct cs_wrap *)t;
    transport_peer_remove(w->inner, node);
}

static int wrap_send(struct transport *t, const struct wire_msg *m)
{
    struct cs_wrap *w = (struct cs_wrap *)t;
    struct csim *s = w->n->s;
    const struct raft_msg *r = &m->msg;

    bool meta =
        memcmp(&m->group.topic_id, &wire_metadata_group.topic_id, sizeof(m->group.topic_id)) == 0;
    if (s->o->end_to_end || wire_group_eq(&m->group, &raft_host_liveness_group) ||
        (!meta && (m->group.partition < 0 || m->group.partition >= CS_PARTS)))
        return transport_send(w->inner, m);
    struct cs_part *pt = meta ? &w->n->meta_part : &w->n->parts[m->group.partition];
    int64_t durable = log_durable_offset(pt->log);
    if (r->type == RAFT_MSG_APPEND_RESP && !r->reject && r->index >= durable)
        fail(s, "p%d node %d acknowledged index %" PRId64 " to %d, durable offset %" PRId64, pt->k,
             w->n->id, r->index, r->to, durable);
    if (r->type != RAFT_MSG_PRE_VOTE && r->type != RAFT_MSG_PRE_VOTE_RESP) {
        bool grant = r->type == RAFT_MSG_VOTE_RESP && !r->reject;
        if (!pt->disk_known || pt->disk_term != r->term || (grant && pt->disk_vote != r->to))
            read_hard_state(pt);
        if (pt->disk_term != r->term)
            fail(s, "p%d node %d sent %s in term %" PRId64 ", term %" PRId64 " on disk", pt->k,
                 w->n->id, raft_msg_name(r->type), r->term, pt->disk_term);
        else if (grant && pt->disk_vote != r->to)
            fail(s, "p%d node %d granted its vote to %d, vote %d on disk", pt->k, w->n->id, r->to,
                 pt->disk_vote);
        if (r->term > pt->term_shown)
            pt->term_shown = r->term;
    }
    return transport_send(w->inner, m);
}

static int wrap_send_rpc(struct transport *t, const struct wire_rpc *r)
{
    struct cs_wrap *w = (struct cs_wrap *)t;
    return transport_send_rpc(w->inner, r);
}

static void wrap_flush(struct transport *t)
{
    struct cs_wrap *w = (struct cs_wrap *)t;
    transport_flush(w->inner);
}

static const struct transport_ops wrap_ops = {.peer_set = wrap_peer_set,
                                              .peer_remove = wrap_peer_remove,
                                              .send = wrap_send,
                                              .send_rpc = wrap_send_rpc,
                                              .flush = wrap_flush};

/* ---- a node's process: start from disk, crash ------------------------------------------------ */

/* The metadata group of a starting node, from its disk alone: the snapshot, then the log. */
static void meta_start(struct csim *s, struct cs_node *n, const struct log_env *env,
                       const struct log_config *cfg)
{
    int32_t voters[CS_NODES_MAX];
    int64_t applied = -1;
    bool found = false;
    int rc;

    n->mn = NULL;
    n->img = xcalloc(1, sizeof(*n->img));
    meta_image_init(n->img);
    rc = log_open(env, "/meta", cfg, &n->meta_log);
    n->meta_part.log = n->meta_log;
    n->meta_part.disk_known = false;
    if (rc != 0) {
        fail(s, "node %d: the metadata log does not open after restart: %s", n->id, err_str(rc));
        n->meta_log = NULL;
        return;
    }
    rc = meta_node_load(n->io, CS_META_SNAPSHOT, n->img, &applied, &found);
    if (rc != 0) {
        fail(s, "node %d: the metadata snapshot does not load: %s", n->id, err_str(rc));
        return;
    }
    if (!found)
        meta_image_set_cluster_id_text(n->img, CS_CLUSTER_ID);
    for (int i = 0; i < s->nodes; i++)
        voters[i] = i;
    n->starts++;
    struct meta_node_config mc = {
        .self = n->id,
        .voters = voters,
        .voter_count = (uint32_t)s->nodes,
        .election_ticks = CS_ELECTION_TICKS,
        .heartbeat_ticks = CS_HEARTBEAT_TICKS,
        .seed = rng_next(&s->rng),
        .broker_heartbeat_ms = CS_BROKER_HB_MS,
        .broker_session_ms = CS_SESSION_MS,
        .cluster_id = CS_CLUSTER_ID,
        .endpoint = {.name = "PLAINTEXT",
                     .host = "sim",
                     .port = (uint16_t)(9092 + n->id),
                     .security_protocol = 0},
    };
    mc.incarnation_id.b[0] = (uint8_t)(n->id + 1);
    mc.incarnation_id.b[12] = (uint8_t)(n->starts >> 24);
    mc.incarnation_id.b[13] = (uint8_t)(n->starts >> 16);
    mc.incarnation_id.b[14] = (uint8_t)(n->starts >> 8);
    mc.incarnation_id.b[15] = (uint8_t)n->starts;
    struct meta_node_env me = {.io = n->io,
                               .clock = &n->clk.clock,
                               .host = n->host,
                               .transport = &n->wrap.t,
                               .log = n->meta_log,
                               .snapshot_dir = "/",
                               .snapshot_path = CS_META_SNAPSHOT};
    struct meta_node_handler mh = {
        .applied = on_meta_applied, .controller = on_meta_controller, .ctx = n};
    n->meta_seen = applied;
    rc = meta_node_open(&mc, &me, n->img, applied, &mh, &n->mn);
    if (rc != 0) {
        fail(s, "node %d: the metadata group does not open after restart: %s", n->id, err_str(rc));
        n->mn = NULL;
    }
}

static void node_start(struct csim *s, struct cs_node *n)
{
    struct log_config cfg;
    struct transport_handler h;
    struct raft_config members = {.count = (uint32_t)s->nodes, .index = -1};
    int rc;

    for (int i = 0; i < s->nodes; i++) {
        members.ids[i] = i;
        members.voter[i] = 1;
    }
    n->disk_faults = io_sim_faults(n->io);
    n->files = log_files_create(n->io, 16);
    n->fl = log_flusher_create(false);
    struct log_env env = {.io = n->io, .clock = &n->clk.clock, .files = n->files, .flusher = n->fl};
    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    cfg.segment_bytes = LOG_SEGMENT_BYTES_MIN; /* segments roll under load */
    struct raft_host_options ho = {
        .self = n->id, .io = n->io, .clock = &n->clk.clock, .state_dir = "/"};
    rc = raft_host_create(&ho, &n->host);
    ASSERT(rc == 0);
    for (int k = 0; k < CS_PARTS; k++) {
        struct cs_part *pt = &n->parts[k];
        char dir[32];

        snprintf(dir, sizeof(dir), "/p%d", k);
        pt->g = NULL;
        pt->log = NULL;
        pt->r = NULL;
        pt->commit_seen = -1;
        rc = replica_open(&env, dir, &cfg, 0, &pt->r);
        if (rc != 0) {
            fail(s, "node %d: p%d's log does not open after restart: %s", n->id, k, err_str(rc));
            pt->r = NULL;
            continue;
        }
        pt->log = replica_log(pt->r);
        pt->applied_seen = log_start_offset(pt->log) - 1; /* a compacted prefix is committed */
        durable_check_restart(s, n, k);
        struct replica_raft rr = {.host = n->host,
                                  .group = group_id(k),
                                  .config = members,
                                  .election_ticks = CS_ELECTION_TICKS,
                                  .heartbeat_ticks = CS_HEARTBEAT_TICKS,
                                  .seed = rng_next(&s->rng),
                                  .on_change = on_replica_change,
                                  .ctx = pt};
        rc = replica_attach(pt->r, &rr);
        if (rc != 0) {
            fail(s, "node %d: p%d's group does not open after restart: %s", n->id, k, err_str(rc));
            continue;
        }
        pt->g = replica_group(pt->r);
        if (raft_group_core(pt->g)->term < pt->term_shown)
            fail(s, "p%d node %d restarted in term %" PRId64 " but had sent term %" PRId64, k,
                 n->id, raft_group_core(pt->g)->term, pt->term_shown);
        pt->disk_known = false;
    }
    raft_host_handler(n->host, &n->host_h);
    h = (struct transport_handler){.on_raft = node_on_raft,
                                   .on_rpc = node_on_rpc,
                                   .on_peer_up = node_on_peer_up,
                                   .on_peer_down = node_on_peer_down,
                                   .ctx = n};
    rc = sim_net_attach(s->net, n->id, &h, &n->wrap.inner);
    ASSERT(rc == 0);
    n->wrap.t = (struct transport){.ops = &wrap_ops, .self = n->id};
    n->wrap.n = n;
    for (int32_t i = 0; i < s->nodes; i++)
        if (i != n->id)
            transport_peer_set(&n->wrap.t, i, "sim", 0);
    raft_host_set_transport(n->host, &n->wrap.t);
    meta_start(s, n, &env, &cfg);
    n->up = true;
    n->exiting = false;
    n->restart_at = CS_NEVER;
    n->next_tick_ms = s->now + rng_range(&s->rng, 1, CS_TICK_MS);
    n->next_disk_ms = s->now + rng_range(&s->rng, 1, s->disk_ms_max);
    trace(s, "n%d starts", n->id);
}

enum cs_crash { CS_KILL, CS_POWER, CS_STOP };

static void meta_stop(struct cs_node *n, enum cs_crash how)
{
    meta_node_close(n->mn);
    n->mn = NULL;
    if (n->meta_log != NULL) {
        if (how == CS_STOP)
            log_close(n->meta_log);
        else
            log_abandon(n->meta_log);
        n->meta_log = NULL;
    }
    if (n->img != NULL) {
        meta_image_deinit(n->img);
        free(n->img);
        n->img = NULL;
    }
}

/* The process dies: CS_KILL keeps the page cache (every write survives), CS_POWER loses what
 * was not synced (the last write possibly torn), CS_STOP is a clean shutdown. */
static void node_crash(struct csim *s, struct cs_node *n, enum cs_crash how)
{
    static const char *const names[] = {"crashes", "loses power", "stops"};

    trace(s, "n%d %s", n->id, names[how]);
    unstall(s, n, false); /* what its sockets held is lost with them */
    io_sim_fail_clear(n->io);
    if (n->disk_full) { /* its operator frees space before the restart */
        io_sim_set_capacity(n->io, 0);
        n->disk_full = false;
    }
    meta_node_close(n->mn); /* queued operations fail with ERR_CLOSED */
    n->mn = NULL;
    n->handing_over = false;
    /* Waits fail with ERR_CLOSED; the groups close before their host, the logs with them (a
     * crash abandons them; what reaches the disk is decided below). */
    for (int k = 0; k < CS_PARTS; k++) {
        struct cs_part *pt = &n->parts[k];
        if (pt->r == NULL)
            continue;
        if (how == CS_STOP)
            replica_close(pt->r);
        else
            replica_abandon(pt->r);
        pt->r = NULL;
        pt->log = NULL;
        pt->g = NULL;
    }
    struct raft_host_stats hs;
    raft_host_stats(n->host, &hs);
    s->res->peer_wakes += hs.peer_wakes;
    s->res->snapshots += hs.snapshots_installed;
    raft_host_destroy(n->host);
    sim_net_detach(s->net, n->id);
    if (how == CS_POWER && rng_chance(&s->rng, 1, 2))
        io_sim_crash(n->io, &s->rng);
    else if (how == CS_POWER) /* the last write torn with holes; out of order with reorder */
        io_sim_crash_torn(n->io, &s->rng, s->o->reorder);
    else if (how == CS_KILL)
        io_sim_crash_at(n->io, io_sim_pending_ops(n->io), 0);
    meta_stop(n, how);
    log_flusher_destroy(n->fl);
    log_files_destroy(n->files);
    n->host = NULL;
    n->up = false;
    n->restart_at = CS_NEVER;
}

/* ---- clients --------------------------------------------------------------------------------- */

/* Node n runs, answers, and its replica of partition k works. */
static bool part_ok(const struct cs_node *n, int k)
{
    return n->up && !stalled(n) && n->parts[k].g != NULL && raft_group_error(n->parts[k].g) == 0 &&
           replica_error(n->parts[k].r) == 0;
}

/* Produces one batch of 1 to 3 records at node for partition k through its replica, waiting
 * for wait (min_insync: acks=all's min.insync.replicas); 0 or the replica's error. */
static int propose(struct csim *s, int client, int k, int32_t node, enum replica_wait wait,
                   uint32_t min_insync)
{
    struct cs_part *pt = &s->n[node].parts[k];
    struct batch_record recs[3];
    char values[3][CS_VALUE_BYTES_MAX];
    uint64_t value = ++s->values;
    size_t count = (size_t)rng_range(&s->rng, 1, 3);
    struct batch_build_opts opts = {.producer_id = -1, .producer_epoch = -1, .base_sequence = -1};
    struct batch_header h;
    struct log_append_result res;

    for (size_t i = 0; i < count; i++) {
        /* Padded to a random length, so segments roll and retention has something to drop. */
        int len = snprintf(values[i], sizeof(values[i]), "c%d p%d v%" PRIu64 ".%zu ", client, k,
                           value, i);
        size_t pad = (size_t)rng_below(&s->rng, sizeof(values[i]) - (size_t)len);
        memset(values[i] + len, '.', pad);
        len += (int)pad;
        recs[i] = (struct batch_record){.value = slice_make(values[i], (size_t)len),
                                        .timestamp_ms = clock_wall_ms(&s->clock.clock)};
    }
    buf_reset(&s->scratch);
    int rc = batch_build(&s->scratch, &opts, recs, count);
    ASSERT(rc == 0);
    rc = batch_header_parse(s->scratch.data, s->scratch.len, &h);
    ASSERT(rc == 0);
    struct cs_prop *pr = xcalloc(1, sizeof(*pr));
    *pr = (struct cs_prop){.s = s,
                           .client = client,
                           .k = k,
                           .node = node,
                           .wait = wait,
                           .min_insync = min_insync,
                           .value = value};
    rc = replica_append(pt->r, s->scratch.data, s->scratch.len, wait, min_insync, &pr->c, on_done,
                        pr, &res);
    if (rc != 0) {
        free(pr);
        return rc;
    }
    pr->fp = (struct cs_fp){
        .base = res.base_offset, .last = res.last_offset, .term = pr->c.term, .crc = h.crc};
    s->res->proposed++;
    pr->gone_at = CS_NEVER;
    pr->next = &s->waits;
    pr->prev = s->waits.prev;
    s->waits.prev->next = pr;
    s->waits.prev = pr;
    if (client >= 0)
        s->c[client].inflight++;
    else
        s->p[k].probe_inflight = true;
    trace(s,
          "p%d n%d propose [%" PRId64 ", %" PRId64 "] term %" PRId64 " value %" PRIu64
          " (client %d, acks=%s)",
          k, node, pr->fp.base, pr->fp.last, pr->fp.term, value, client,
          wait == REPLICA_WAIT_LEADER ? "1" : "all");
    return 0;
}

/* The client turns elsewhere: to the leader node knows of, or anyone. */
static void client_redirect(struct csim *s, struct cs_client *c, int k, int32_t node)
{
    int32_t next = RAFT_NONE;

    if (part_ok(&s->n[node], k))
        next = raft_group_core(s->n[node].parts[k].g)->leader;
    if (next == RAFT_NONE || next == node || rng_chance(&s->rng, 1, 4))
        next = (int32_t)rng_below(&s->rng, (uint64_t)s->nodes);
    c->guess[k] = next;
}

/* Fetches through replica_read from the leader it believes in: what it sees of the high
 * watermark must not go back, and every batch it reads is committed and at or below the
 * leader's commit index. */
static void client_fetch(struct csim *s, int ci, int k)
{
    struct cs_client *c = &s->c[ci];
    struct cs_node *n = &s->n[c->guess[k]];
    struct log_read rd;
    int32_t epoch;

    if (!part_ok(n, k) || !replica_leads(n->parts[k].r)) {
        client_redirect(s, c, k, n->id);
        return;
    }
    struct cs_part *pt = &n->parts[k];
    struct raft *core = raft_group_core(pt->g);
    int64_t commit = raft_group_commit(pt->g), hw = replica_high_watermark(pt->r);
    /* The replica serves once it has committed in its own term (before that its high watermark
     * may lag the previous leader's): say so. A client ignores leaders older than one it saw. */
    /* A commit index just below the log start (everything dropped up to it) has the term the
     * host keeps for the entry before the start. */
    int64_t term = -1;
    if (commit >= 0 && commit < log_start_offset(pt->log))
        core->log->term_at(core->log_ctx, commit, &term);
    else if (commit >= 0 && log_epoch_of(pt->log, commit, &epoch) == 0)
        term = epoch;
    if (term != core->term)
        fail(s, "p%d: node %d serves in term %" PRId64 " before committing in it", k, n->id,
             core->term);
    if (log_start_offset(pt->log) < s->p[k].start_answered)
        fail(s, "p%d: node %d serves from log start %" PRId64 ", below %" PRId64 " answered", k,
             n->id, log_start_offset(pt->log), s->p[k].start_answered);
    if (core->term < c->term_max[k])
        return;
    if (hw < c->hw_max[k])
        fail(s,
             "p%d: client %d saw high watermark %" PRId64 " in term %" PRId64 ", then %" PRId64
             " from node %d in term %" PRId64,
             k, ci, c->hw_max[k], c->term_max[k], hw, n->id, core->term);
    /* Everything acknowledged in an earlier term is committed below it (the leader holds it,
     * and committed an entry of its own term after it). */
    for (int64_t t = 0; t < core->term && t < s->p[k].term_cap; t++)
        if (s->p[k].acked_last_of_term[t] >= hw)
            fail(s,
                 "p%d: node %d (term %" PRId64 ") serves high watermark %" PRId64
                 " below offset %" PRId64 ", acknowledged in term %" PRId64,
                 k, n->id, core->term, hw, s->p[k].acked_last_of_term[t], t);
    c->term_max[k] = core->term;
    c->hw_max[k] = hw;
    if (c->pos[k] < log_start_offset(pt->log) || c->pos[k] > hw)
        c->pos[k] = log_start_offset(pt->log);
    int rc = replica_read(pt->r, c->pos[k], CS_FETCH_BYTES, &rd);
    if (rc != 0 || rd.file == NULL) {
        if (rc == 0)
            return;
        fail(s, "p%d node %d: fetch at %" PRId64 " below hw %" PRId64 ": %s", k, n->id, c->pos[k],
             hw, err_str(rc));
        return;
    }
    trace(s,
          "p%d client %d fetches from n%d at %" PRId64 ", high watermark %" PRId64 " term %" PRId64,
          k, ci, n->id, c->pos[k], hw, core->term);
    buf_reset(&s->scratch);
    uint8_t *p = buf_extend(&s->scratch, rd.bytes);
    ssize_t got = io_pread(log_file_io(rd.file), p, rd.bytes, rd.position);
    log_read_release(&rd);
    if (got != (ssize_t)rd.bytes) {
        fail(s, "p%d node %d: fetch read failed", k, n->id);
        return;
    }
    struct batch_iter it;
    struct slice b;
    struct batch_header h;
    batch_iter_init(&it, slice_make(s->scratch.data, s->scratch.len));
    while (!s->failed && batch_iter_next(&it, &b, &h) == 1) {
        struct cs_fp fp = {.base = h.base_offset,
                           .last = batch_last_offset(&h),
                           .term = h.leader_epoch,
                           .crc = h.crc};
        struct cs_slot *sl = slot(s, k, fp.base);
        s->res->fetched++;
        if (fp.last > commit)
            fail(s,
                 "p%d: client %d read [%" PRId64 ", %" PRId64 "] term %" PRId64
                 " from node %d above its commit index %" PRId64,
                 k, ci, fp.base, fp.last, fp.term, n->id, commit);
        else if (fp.last >= hw || !sl->is_committed || !fp_eq(&sl->committed, &fp))
            fail(s,
                 "p%d: client %d read [%" PRId64 ", %" PRId64 "] term %" PRId64
                 " from node %d below high watermark %" PRId64 ", not committed",
                 k, ci, fp.base, fp.last, fp.term, n->id, hw);
        c->pos[k] = fp.last + 1;
    }
}

static void client_step(struct csim *s)
{
    int ci = (int)rng_below(&s->rng, CS_CLIENTS);
    int k = (int)rng_below(&s->rng, CS_PARTS);
    struct cs_client *c = &s->c[ci];

    if (rng_chance(&s->rng, 1, 4)) {
        client_fetch(s, ci, k);
        return;
    }
    if (c->inflight >= CS_INFLIGHT_MAX)
        return;
    int32_t node = c->guess[k];
    if (!part_ok(&s->n[node], k) || !replica_leads(s->n[node].parts[k].r)) {
        client_redirect(s, c, k, node); /* NOT_LEADER_OR_FOLLOWER */
        return;
    }
    /* acks=1 one time in four; acks=all is refused before anything is appended while the ISR
     * is below min.insync.replicas (NOT_ENOUGH_REPLICAS, as produce.c does). */
    enum replica_wait wait = rng_chance(&s->rng, 1, 4) ? REPLICA_WAIT_LEADER : REPLICA_WAIT_COMMIT;
    int32_t isr[RAFT_MEMBERS_MAX];
    if (wait == REPLICA_WAIT_COMMIT &&
        replica_isr(s->n[node].parts[k].r, isr, RAFT_MEMBERS_MAX) < s->min_insync) {
        s->res->refused++;
        return;
    }
    int rc = propose(s, ci, k, node, wait, s->min_insync);
    if (rc == ERR_STATE)
        client_redirect(s, c, k, node); /* NOT_LEADER_OR_FOLLOWER */
}

/* A group stopped on err: only the disk may cause that (an injected error, a full disk). An
 * error while this process's disk never failed is the host misusing its log (e.g. appending
 * past a suffix it forgot to truncate). */
static void storage_error(struct csim *s, struct cs_node *n, const char *what, int k, int err)
{
    if (s->o->end_to_end || io_sim_faults(n->io) != n->disk_faults)
        return;
    if (k >= 0)
        fail(s, "%s%d node %d stopped on %s though its disk never failed", what, k, n->id,
             err_str(err));
    else
        fail(s, "%s node %d stopped on %s though its disk never failed", what, n->id, err_str(err));
}

/* ---- faults -----------------------------------------------------------------------------------
 */

static int down_count(const struct csim *s)
{
    int d = 0;
    for (int i = 0; i < s->nodes; i++)
        d += !s->n[i].up;
    return d;
}

/* The running leader of partition k with the highest term, or -1. */
static int32_t leader_of(struct csim *s, int k)
{
    int32_t found = -1;
    int64_t term = -1;

    for (int i = 0; i < s->nodes; i++) {
        struct cs_node *n = &s->n[i];
        if (part_ok(n, k) && raft_group_is_leader(n->parts[k].g) &&
            raft_group_core(n->parts[k].g)->term > term) {
            found = i;
            term = raft_group_core(n->parts[k].g)->term;
        }
    }
    return found;
}

/* The running node that is the metadata controller (ready to build), or -1. */
static int32_t controller_of(struct csim *s)
{
    for (int i = 0; i < s->nodes; i++)
        if (s->n[i].up && s->n[i].mn != NULL && meta_node_is_controller(s->n[i].mn))
            return i;
    return -1;
}

static void heal_net(struct csim *s)
{
    sim_net_heal(s->net);
    s->heal_at = CS_NEVER;
    trace(s, "network heals");
}

/* The offset below which every node has committed and made partition k durable (nothing
 * below it is ever needed again by anyone), or -1. */
static int64_t safe_prefix(struct csim *s, int k)
{
    int64_t limit = INT64_MAX;

    for (int j = 0; j < s->nodes; j++) {
        struct cs_part *o = &s->n[j].parts[k];
        if (!part_ok(&s->n[j], k))
            return -1;
        int64_t mine = raft_group_commit(o->g) + 1;
        if (log_durable_offset(o->log) < mine)
            mine = log_durable_offset(o->log);
        if (mine < limit)
            limit = mine;
    }
    return limit;
}

/* What node i may drop of partition k: half the time only what every node has committed and
 * made durable, else whatever node i has (committed and durable there), lagging or crashed
 * followers or not: a follower that then needs the dropped entries from a leader that dropped
 * them installs a snapshot (raft_host.c). -1: nothing. */
static int64_t drop_limit(struct csim *s, int i, int k, bool deep)
{
    struct cs_part *pt = &s->n[i].parts[k];
    int64_t limit;

    if (!part_ok(&s->n[i], k))
        return -1;
    if (!deep && rng_chance(&s->rng, 1, 2))
        return safe_prefix(s, k);
    limit = raft_group_commit(pt->g) + 1;
    return log_durable_offset(pt->log) < limit ? log_durable_offset(pt->log) : limit;
}

/* Retention behind the host's back: node i's log of partition k deletes its old segments (the
 * host notices at its next look at the log start), below drop_limit. */
static void retain(struct csim *s, int i, int k, bool deep)
{
    struct cs_part *pt = &s->n[i].parts[k];
    struct log_config cfg;

    if (!part_ok(&s->n[i], k) || drop_limit(s, i, k, deep) < log_high_watermark(pt->log))
        return;
    log_config_default(&cfg);
    cfg.prealloc_bytes = 0;
    cfg.segment_bytes = LOG_SEGMENT_BYTES_MIN;
    cfg.retention_bytes = 0;
    int rc = log_set_config(pt->log, &cfg);
    ASSERT(rc == 0);
    rc = log_enforce_retention(pt->log);
    cfg.retention_bytes = -1;
    log_set_config(pt->log, &cfg);
    trace(s, "p%d n%d retention: %d segments deleted, log start %" PRId64, k, s->n[i].id, rc,
          log_start_offset(pt->log));
    if (rc > 0)
        s->res->compactions++;
}

/* deep: as far as node i may (the batch boundary nearest its drop_limit). */
static void compact(struct csim *s, int i, int k, bool deep)
{
    struct cs_part *pt = &s->n[i].parts[k];
    int64_t limit = drop_limit(s, i, k, deep), start;
    struct cs_fp fp;

    if (limit < 0)
        return;
    start = log_start_offset(pt->log);
    if (limit <= start + 1 ||
        fp_at(pt->log,
              deep ? limit - 1
                   : (int64_t)rng_range(&s->rng, (uint64_t)start + 1, (uint64_t)limit - 1),
              &fp) != 0)
        return;
    if (deep && fp.last + 1 <= limit)
        fp.base = fp.last + 1;
    int rc = raft_group_compact(pt->g, fp.base);
    trace(s, "p%d n%d compacts below %" PRId64 ": %s", k, s->n[i].id, fp.base,
          rc == 0 ? "ok" : err_str(rc));
    if (rc == 0) {
        s->res->compactions++;
    } else if (rc == ERR_STATE) {
        /* installing a snapshot: its log is not the host's to drop from until it is in */
    } else if (rc != ERR_INVALID) {
        s->n[i].exiting = true; /* a storage error: the process exits like on a group's */
        storage_error(s, &s->n[i], "p", k, rc);
    } else {
        fail(s, "p%d node %d: compaction below %" PRId64 " (limit %" PRId64 ") refused: %s", k,
             s->n[i].id, fp.base, limit, err_str(rc));
    }
}

/* A log-start marker (DeleteRecords) in flight: answered once committed and applied. */
struct cs_marker {
    struct raft_waiter w;
    struct csim *s;
    struct cs_part *pt;
    int64_t start;
};

static void on_marker(void *ctx, int err)
{
    struct cs_marker *m = ctx;
    struct csim *s = m->s;
    struct cs_pstate *p = &s->p[m->pt->k];

    if (err == 0) {
        int64_t low = log_start_offset(m->pt->log);
        trace(s, "p%d n%d log start %" PRId64 " answered (asked %" PRId64 ")", m->pt->k,
              m->pt->n->id, low, m->start);
        if (low < m->start)
            fail(s, "p%d node %d answered log start %" PRId64 " for a marker of %" PRId64, m->pt->k,
                 m->pt->n->id, low, m->start);
        if (low > p->start_answered)
            p->start_answered = low;
        s->res->deletes++;
    }
    free(m);
}

/* DeleteRecords on partition k's ready leader: a log-start marker at a random offset up to its
 * high watermark, mid-batch or not. */
static void delete_records(struct csim *s, int k)
{
    int32_t l = leader_of(s, k);

    if (l < 0 || !replica_leads(s->n[l].parts[k].r))
        return;
    struct cs_part *pt = &s->n[l].parts[k];
    int64_t start = log_start_offset(pt->log), hw = log_high_watermark(pt->log);
    if (hw <= start)
        return;
    struct cs_marker *m = xcalloc(1, sizeof(*m));
    *m = (struct cs_marker){.s = s, .pt = pt};
    m->start = (int64_t)rng_range(&s->rng, (uint64_t)start + 1, (uint64_t)hw);
    int rc = raft_group_propose_start(pt->g, m->start, &m->w, on_marker, m);
    trace(s, "p%d n%d deletes records below %" PRId64 ": %s", k, s->n[l].id, m->start,
          rc == 0 ? "proposed" : err_str(rc));
    if (rc != 0)
        free(m);
}

/* A leadership transfer of partition k's leader: to a random voter or (RAFT_NONE) the most
 * caught-up one. */
static void transfer(struct csim *s, int k)
{
    int32_t l = leader_of(s, k);

    if (l < 0 || !replica_leads(s->n[l].parts[k].r))
        return;
    int32_t to = RAFT_NONE;
    if (rng_chance(&s->rng, 1, 2))
        to = (l + 1 + (int32_t)rng_below(&s->rng, (uint64_t)s->nodes - 1)) % s->nodes;
    int rc = raft_group_transfer(s->n[l].parts[k].g, to);
    trace(s, "p%d n%d transfers leadership to %d: %s", k, l, to, rc == 0 ? "ok" : err_str(rc));
    if (rc == 0)
        s->res->transfers++;
}

/* A controlled shutdown in progress (broker_replicas_tick's hand_over, on the node's tick): each
 * leadership held here goes to the most caught-up in-sync follower that answers; once
 * none is left to hand over, or the bound passed, the process stops cleanly and restarts later. */
static void hand_over(struct csim *s, struct cs_node *n)
{
    uint32_t held = 0;

    for (int k = 0; k < CS_PARTS; k++) {
        struct cs_part *pt = &n->parts[k];
        int32_t to = replica_leader(pt->r) == n->id && pt->g != NULL
                         ? replica_handover_target(pt->r, CS_ELECTION_TICKS)
                         : -1;
        if (to < 0)
            continue;
        if (raft_group_core(pt->g)->transferee == RAFT_NONE && raft_group_transfer(pt->g, to) == 0)
            trace(s, "p%d n%d hands its leadership over", k, n->id);
        held++;
    }
    if (held > 0 && s->now < n->handover_deadline)
        return;
    trace(s, "n%d stops after its controlled shutdown (%u leaderships still held)", n->id, held);
    s->res->stops++;
    node_crash(s, n, CS_STOP);
    n->restart_at = s->now + rng_range(&s->rng, 20, 1500);
}

static void fault_step(struct csim *s)
{
    int minority = (s->nodes - 1) / 2;
    uint64_t r = rng_below(&s->rng, 110);

    if (r >= 107) { /* a controlled shutdown: leaderships handed over, then a clean stop */
        struct cs_node *n = &s->n[rng_below(&s->rng, (uint64_t)s->nodes)];
        if (!n->up || n->handing_over || down_count(s) > minority)
            return;
        n->handing_over = true;
        n->handover_deadline = s->now + rng_range(&s->rng, 100, CS_HANDOVER_MS_MAX);
        s->res->handovers++;
        trace(s, "n%d begins a controlled shutdown (until %" PRIu64 ")", n->id,
              n->handover_deadline);
        return;
    }
    if (r >= 100) { /* a leadership transfer */
        transfer(s, (int)rng_below(&s->rng, CS_PARTS));
        return;
    }

    if (r < 12) { /* network quality changes */
        struct sim_net_options o = s->net_opts;
        o.delay_ms_min = (uint32_t)rng_range(&s->rng, 0, 3);
        o.delay_ms_max = o.delay_ms_min + (uint32_t)rng_range(&s->rng, 1, 40);
        o.drop_ppm = rng_chance(&s->rng, 1, 3) ? 0 : (uint32_t)rng_below(&s->rng, 100000);
        o.duplicate_ppm = rng_chance(&s->rng, 1, 2) ? 0 : (uint32_t)rng_below(&s->rng, 50000);
        o.reorder = rng_chance(&s->rng, 1, 2);
        sim_net_set_faults(s->net, &o);
        trace(s, "network: delay %u-%u ms, drop %u ppm, duplicate %u ppm%s", o.delay_ms_min,
              o.delay_ms_max, o.drop_ppm, o.duplicate_ppm, o.reorder ? ", reorder" : "");
    } else if (r < 30 && s->heal_at == CS_NEVER) { /* symmetric partition */
        int32_t side[CS_NODES_MAX];
        size_t count = 0;
        uint64_t mask = rng_range(&s->rng, 1, (1u << s->nodes) - 2);
        for (int i = 0; i < s->nodes; i++)
            if (mask & (1u << i))
                side[count++] = i;
        sim_net_partition(s->net, side, count);
        s->heal_at = s->now + rng_range(&s->rng, 50, 2000);
        s->res->partitions++;
        trace(s, "partition %#" PRIx64 " | rest until %" PRIu64, mask, s->heal_at);
    } else if (r < 42 && s->heal_at == CS_NEVER) {     /* a leader cut off with a minority */
        int k = (int)rng_below(&s->rng, CS_PARTS + 1); /* CS_META: the controller */
        int32_t side[CS_NODES_MAX], l = k == CS_META ? controller_of(s) : leader_of(s, k);
        size_t count = 0;
        if (l < 0)
            return;
        side[count++] = l;
        if (minority > 1 && rng_chance(&s->rng, 1, 2)) {
            int32_t mate = (int32_t)rng_below(&s->rng, (uint64_t)s->nodes);
            if (mate != l)
                side[count++] = mate;
        }
        sim_net_partition(s->net, side, count);
        s->heal_at = s->now + rng_range(&s->rng, 100, 2000);
        s->res->partitions++;
        if (k == CS_META)
            trace(s, "isolate the controller n%d%s until %" PRIu64, l,
                  count > 1 ? " with a mate" : "", s->heal_at);
        else
            trace(s, "isolate p%d's leader n%d%s until %" PRIu64, k, l,
                  count > 1 ? " with a mate" : "", s->heal_at);
    } else if (r < 50 && s->heal_at == CS_NEVER) { /* one-way cuts */
        uint64_t cuts = rng_range(&s->rng, 1, 3);
        for (uint64_t i = 0; i < cuts; i++) {
            int32_t from = (int32_t)rng_below(&s->rng, (uint64_t)s->nodes);
            int32_t to = (int32_t)rng_below(&s->rng, (uint64_t)s->nodes);
            if (from == to)
                continue;
            sim_net_block(s->net, from, to, true);
            trace(s, "cut n%d -> n%d", from, to);
        }
        s->heal_at = s->now + rng_range(&s->rng, 50, 1500);
        s->res->partitions++;
    } else if (r < 53) {
        if (s->heal_at != CS_NEVER)
            heal_net(s);
    } else if (r < 68 && down_count(s) <= minority) { /* one node dies */
        struct cs_node *n = &s->n[rng_below(&s->rng, (uint64_t)s->nodes)];
        if (!n->up)
            return;
        s->res->crashes++;
        node_crash(s, n, rng_chance(&s->rng, 1, 2) ? CS_POWER : CS_KILL);
        n->restart_at = s->now + rng_range(&s->rng, 20, 1500);
    } else if (r < 72 && down_count(s) <= minority) { /* a clean shutdown, then a restart */
        struct cs_node *n = &s->n[rng_below(&s->rng, (uint64_t)s->nodes)];
        if (!n->up)
            return;
        s->res->stops++;
        node_crash(s, n, CS_STOP);
        n->restart_at = s->now + rng_range(&s->rng, 20, 1500);
    } else if (r < 76 && s->res->power_losses < s->power_losses_max) { /* every node at once */
        s->res->power_losses++;
        trace(s, "power loss");
        for (int i = 0; i < s->nodes; i++) {
            struct cs_node *n = &s->n[i];
            if (n->up)
                node_crash(s, n, CS_POWER);
            n->restart_at = s->now + rng_range(&s->rng, 20, 800);
        }
    } else if (r < 83) { /* the disk fails a write, sync or truncate */
        struct cs_node *n = &s->n[rng_below(&s->rng, (uint64_t)s->nodes)];
        if (!n->up)
            return;
        uint64_t nth = rng_range(&s->rng, 1, 60);
        int err = rng_chance(&s->rng, 1, 2) ? -EIO : -ENOSPC;
        io_sim_fail_nth(n->io, IO_SIM_WRITE | IO_SIM_SYNC | IO_SIM_TRUNCATE | IO_SIM_DIROP, nth,
                        err);
        trace(s, "n%d's disk fails write/sync/truncate/rename #%" PRIu64 " with %s", n->id, nth,
              err == -EIO ? "EIO" : "ENOSPC");
    } else if (r < 87) { /* a node's disk fills up: every write beyond a margin fails */
        struct cs_node *n = &s->n[rng_below(&s->rng, (uint64_t)s->nodes)];
        if (!n->up || n->disk_full)
            return;
        uint64_t margin = rng_below(&s->rng, 65536);
        io_sim_set_capacity(n->io, io_sim_used_bytes(n->io) + margin);
        n->disk_full = true;
        s->res->disk_fulls++;
        trace(s, "n%d's disk is full %" PRIu64 " bytes from now", n->id, margin);
    } else if (r < 93) { /* a node drops a committed prefix, maybe one a follower still needs */
        int i = (int)rng_below(&s->rng, (uint64_t)s->nodes);
        int k = (int)rng_below(&s->rng, CS_PARTS);
        bool every = down_count(s) > 0 && rng_chance(&s->rng, 1, 2);
        if (rng_chance(&s->rng, 1, 3)) {
            delete_records(s, k);
            return;
        }
        /* With a node down, half the time every running node drops what it can: the node
         * restarts below every log start and can only catch up from a snapshot. */
        for (int j = every ? 0 : i; j < (every ? s->nodes : i + 1); j++) {
            if (rng_chance(&s->rng, 1, 2))
                compact(s, j, k, every);
            else
                retain(s, j, k, every);
        }
    } else if (r < 97) { /* a node's clock jumps */
        struct cs_node *n = &s->n[rng_below(&s->rng, (uint64_t)s->nodes)];
        uint64_t mono_ms = rng_chance(&s->rng, 1, 2) ? rng_below(&s->rng, CS_CLOCK_JUMP_MS) : 0;
        int64_t wall_ms = (int64_t)rng_below(&s->rng, 2 * CS_CLOCK_JUMP_MS + 1) - CS_CLOCK_JUMP_MS;
        n->clk.mono_skew_ns += mono_ms * 1000000u;
        n->clk.wall_skew_ms += wall_ms;
        s->res->clock_jumps++;
        trace(s, "n%d's clock jumps: monotonic +%" PRIu64 " ms, wall %+" PRId64 " ms", n->id,
              mono_ms, wall_ms);
    } else { /* a node's process stalls: its clock runs on, it does nothing */
        struct cs_node *n = &s->n[rng_below(&s->rng, (uint64_t)s->nodes)];
        if (!n->up || stalled(n))
            return;
        n->stalled_until = s->now + rng_range(&s->rng, 50, CS_CLOCK_JUMP_MS);
        s->res->stalls++;
        trace(s, "n%d stalls until %" PRIu64, n->id, n->stalled_until);
    }
    /* else: nothing this time */
}

/* ---- the event loop ---------------------------------------------------------------------------
 */

enum cs_event {
    EV_RESTART,
    EV_RESUME,
    EV_TICK,
    EV_DISK,
    EV_NET,
    EV_HEAL,
    EV_FAULT,
    EV_CLIENT,
    EV_PROBE,
    EV_ADMIN
};

static void pick(uint64_t at, enum cs_event ev, int who, uint64_t *best, enum cs_event *bev,
                 int *bwho)
{
    if (at < *best) {
        *best = at;
        *bev = ev;
        *bwho = who;
    }
}

static uint64_t next_event(struct csim *s, enum cs_event *ev, int *who)
{
    uint64_t best = CS_NEVER;

    for (int i = 0; i < s->nodes; i++) {
        struct cs_node *n = &s->n[i];
        if (!n->up) {
            pick(n->restart_at, EV_RESTART, i, &best, ev, who);
            continue;
        }
        if (stalled(n)) {
            pick(n->stalled_until, EV_RESUME, i, &best, ev, who);
            continue;
        }
        pick(n->next_tick_ms, EV_TICK, i, &best, ev, who);
        pick(n->next_disk_ms, EV_DISK, i, &best, ev, who);
    }
    pick(sim_net_next_ms(s->net), EV_NET, 0, &best, ev, who);
    pick(s->heal_at, EV_HEAL, 0, &best, ev, who);
    if (s->faults_on)
        pick(s->next_fault_ms, EV_FAULT, 0, &best, ev, who);
    if (s->clients_on) {
        pick(s->next_client_ms, EV_CLIENT, 0, &best, ev, who);
        pick(s->next_admin_ms, EV_ADMIN, 0, &best, ev, who);
    }
    if (s->probes_on)
        pick(s->next_probe_ms, EV_PROBE, 0, &best, ev, who);
    return best;
}

static void probe_step(struct csim *s)
{
    for (int k = 0; k < CS_PARTS; k++) {
        int32_t l;
        if (s->p[k].live || s->p[k].probe_inflight || (l = leader_of(s, k)) < 0)
            continue;
        propose(s, -1, k, l, REPLICA_WAIT_COMMIT, 1);
    }
}

static void handle(struct csim *s, enum cs_event ev, int who)
{
    struct cs_node *n = &s->n[who];

    switch (ev) {
    case EV_RESTART:
        node_start(s, n);
        break;
    case EV_RESUME:
        unstall(s, n, true);
        break;
    case EV_TICK:
        raft_host_tick(n->host);
        for (int k = 0; k < CS_PARTS; k++)
            if (n->parts[k].g != NULL)
                replica_tick(n->parts[k].r, clock_mono_ms(&n->clk.clock), CS_TICK_MS, CS_LAG_MS);
        if (n->mn != NULL)
            meta_node_tick(n->mn);
        n->next_tick_ms += CS_TICK_MS;
        if (n->handing_over)
            hand_over(s, n);
        break;
    case EV_DISK:
        log_flusher_run_pending(n->fl);
        log_flusher_drain(n->fl);
        n->next_disk_ms = s->now + rng_range(&s->rng, 1, s->disk_ms_max);
        break;
    case EV_NET:
        sim_net_advance(s->net, s->now);
        break;
    case EV_HEAL:
        heal_net(s);
        break;
    case EV_FAULT:
        fault_step(s);
        s->next_fault_ms = s->now + rng_range(&s->rng, s->fault_ms_min, s->fault_ms_max);
        break;
    case EV_CLIENT:
        client_step(s);
        s->next_client_ms = s->now + rng_range(&s->rng, 1, s->client_ms_max);
        break;
    case EV_PROBE:
        probe_step(s);
        s->next_probe_ms = s->now + CS_PROBE_MS;
        break;
    case EV_ADMIN:
        admin_step(s);
        s->next_admin_ms = s->now + rng_range(&s->rng, 10, 200);
        break;
    }
}

/* A wait whose batch its node's log no longer holds in the term it was appended in (truncated,
 * or replaced by another leader's) can never be what it waits for: the replica completes it
 * (replica.h: ERR_STATE) within CS_GONE_MS of simulated time, not whenever the log grows past
 * it again. */
static void gone_check(struct csim *s)
{
    for (struct cs_prop *pr = s->waits.next; pr != &s->waits && !s->failed; pr = pr->next) {
        struct cs_node *n = &s->n[pr->node];
        struct cs_part *pt = &n->parts[pr->k];
        int64_t term;
        if (!part_ok(n, pr->k) || pr->fp.last < log_start_offset(pt->log))
            continue;
        if (raft_group_term_at(pt->g, pr->fp.last, &term) == 0 && term == pr->fp.term) {
            pr->gone_at = CS_NEVER;
            continue;
        }
        if (pr->gone_at == CS_NEVER)
            pr->gone_at = s->now;
        else if (s->now - pr->gone_at > CS_GONE_MS)
            fail(s,
                 "p%d: node %d's acks=%s wait for [%" PRId64 ", %" PRId64 "] term %" PRId64
                 " still pending %" PRIu64 " ms after its log lost the batch (log end %" PRId64
                 ", durable %" PRId64 ", leader %d, term %" PRId64 ")",
                 pr->k, pr->node, pr->wait == REPLICA_WAIT_LEADER ? "1" : "all", pr->fp.base,
                 pr->fp.last, pr->fp.term, s->now - pr->gone_at, log_end_offset(pt->log),
                 log_durable_offset(pt->log), replica_leader(pt->r), replica_term(pt->r));
    }
}

/* The end of a loop iteration on every node, then what must hold after any step. */
static void after_step(struct csim *s)
{
    for (int i = 0; i < s->nodes; i++)
        if (s->n[i].up) {
            raft_host_flush(s->n[i].host);
            transport_flush(&s->n[i].wrap.t);
        }
    for (int i = 0; i < s->nodes && !s->failed; i++) {
        struct cs_node *n = &s->n[i];
        bool exits = n->exiting;
        if (!n->up)
            continue;
        for (int k = 0; k < CS_PARTS; k++) {
            struct cs_part *pt = &n->parts[k];
            if (pt->g == NULL)
                continue;
            int64_t commit = raft_group_commit(pt->g);
            if (commit < pt->commit_seen)
                fail(s, "p%d node %d: commit index went back from %" PRId64 " to %" PRId64, k,
                     n->id, pt->commit_seen, commit);
            pt->commit_seen = commit;
            check_applied(pt);
            if (raft_group_error(pt->g) != 0) {
                trace(s, "p%d n%d stops on a storage error: %s", k, n->id,
                      err_str(raft_group_error(pt->g)));
                storage_error(s, n, "p", k, raft_group_error(pt->g));
                exits = true;
            }
        }
        if (n->mn != NULL && meta_node_error(n->mn) != 0) {
            trace(s, "meta n%d stops on an error: %s", n->id, err_str(meta_node_error(n->mn)));
            storage_error(s, n, "meta", -1, meta_node_error(n->mn));
            exits = true;
        }
        if (exits) { /* the process exits on a storage error; its supervisor restarts it */
            s->res->disk_errors++;
            node_crash(s, n, CS_KILL);
            n->restart_at = s->now + rng_range(&s->rng, 20, 500);
        }
    }
    if (!s->failed)
        gone_check(s);
}

static void advance_to(struct csim *s, uint64_t at)
{
    if (at > s->now) {
        clock_sim_advance_ms(&s->clock, at - s->now);
        s->now = at;
    }
}

static void run_until(struct csim *s, uint64_t end, bool (*done)(struct csim *))
{
    while (!s->failed && !(done != NULL && done(s))) {
        enum cs_event ev = EV_TICK;
        int who = 0;
        uint64_t at = next_event(s, &ev, &who);
        if (at > end) {
            advance_to(s, end);
            return;
        }
        advance_to(s, at);
        handle(s, ev, who);
        s->res->steps++;
        after_step(s);
    }
}

static bool all_live(struct csim *s)
{
    for (int k = 0; k < CS_PARTS; k++)
        if (!s->p[k].live)
            return false;
    return true;
}

/* Every node holds its leader's log and commit index, for every partition. */
static bool settled(struct csim *s)
{
    for (int k = 0; k < CS_PARTS; k++) {
        int32_t l = leader_of(s, k);
        if (l < 0)
            return false;
        struct cs_part *lp = &s->n[l].parts[k];
        int64_t end = log_end_offset(lp->log);
        if (raft_group_commit(lp->g) != end - 1)
            return false;
        for (int i = 0; i < s->nodes; i++) {
            struct cs_part *pt = &s->n[i].parts[k];
            if (!part_ok(&s->n[i], k) || log_end_offset(pt->log) != end ||
                raft_group_commit(pt->g) != end - 1)
                return false;
        }
    }
    return true;
}

/* A controller, every broker registered and unfenced, every node applied its whole metadata
 * log, the same on all, and every image equal. */
static bool meta_settled(struct csim *s)
{
    int32_t c = controller_of(s);

    if (c < 0)
        return false;
    int64_t applied = meta_node_applied(s->n[c].mn);
    for (int i = 0; i < s->nodes; i++) {
        struct cs_node *n = &s->n[i];
        if (!n->up || n->mn == NULL || !meta_node_unfenced(n->mn) ||
            meta_node_applied(n->mn) != applied || log_end_offset(n->meta_log) != applied + 1 ||
            !meta_image_equal(n->img, s->n[c].img))
            return false;
    }
    return true;
}

static bool all_settled(struct csim *s)
{
    return settled(s) && meta_settled(s);
}

/* The controller's image shows s->fence_target fenced. */
static bool target_fenced(struct csim *s)
{
    int32_t c = controller_of(s);
    const struct meta_broker *b;

    return c >= 0 && (b = meta_broker_find(s->n[c].img, s->fence_target)) != NULL && b->fenced;
}

/* Liveness of broker sessions: a broker cut off from the others past its session is fenced,
 * and unfenced once the network heals, within stated times. */
static void fence_check(struct csim *s)
{
    int32_t c = controller_of(s), side[1];
    uint64_t deadline;

    if (c < 0)
        return;
    side[0] = (c + 1 + (int32_t)rng_below(&s->rng, (uint64_t)s->nodes - 1)) % s->nodes;
    s->fence_target = side[0];
    trace(s, "isolate broker n%d (controller n%d)", side[0], c);
    sim_net_partition(s->net, side, 1);
    deadline = s->now + CS_FENCE_MS;
    run_until(s, deadline, target_fenced);
    if (!s->failed && !target_fenced(s)) {
        fail(s, "meta: broker %d isolated for %u ms is not fenced (controller %d)", side[0],
             CS_FENCE_MS, controller_of(s));
        s->res->liveness = true;
        return;
    }
    heal_net(s);
    deadline = s->now + CS_META_SETTLE_MS;
    run_until(s, deadline, all_settled);
    if (!s->failed && !all_settled(s)) {
        fail(s, "after broker %d's isolation the nodes did not settle within %u ms%s", side[0],
             CS_META_SETTLE_MS, meta_settled(s) ? "" : " (metadata)");
        s->res->liveness = true;
    }
}

/* After settling: every log holds exactly the committed batches, every acknowledged one too;
 * an acks=all acknowledgement still waiting for a node's disk reads its log now (a node whose
 * log failed without its process exiting). */
static void final_check(struct csim *s)
{
    for (int i = 0; i < s->nodes && !s->failed; i++)
        for (int k = 0; k < CS_PARTS && !s->failed; k++)
            durable_check_restart(s, &s->n[i], k);
    for (int k = 0; k < CS_PARTS && !s->failed; k++) {
        for (int i = 0; i < s->nodes && !s->failed; i++) {
            struct cs_part *pt = &s->n[i].parts[k];
            int64_t end = log_end_offset(pt->log);
            for (int64_t off = log_start_offset(pt->log); off < end && !s->failed;) {
                struct cs_fp fp;
                int rc = fp_at(pt->log, off, &fp);
                struct cs_slot *sl = slot(s, k, off);
                if (rc != 0 || !sl->is_committed || !fp_eq(&fp, &sl->committed)) {
                    fail(s, "p%d node %d: offset %" PRId64 " is not the committed batch (%s)", k, i,
                         off, rc != 0 ? err_str(rc) : "differs");
                    break;
                }
                off = fp.last + 1;
            }
            check_acked_in(s, k, pt, INT64_MAX, "caught-up");
        }
    }
}

static bool no_waits(struct csim *s)
{
    return s->waits.next == &s->waits;
}

/* After everything settled: every wait a running node holds completes (acknowledged, or failed
 * because its batch can no longer be what it waits for) within CS_SETTLE_MS. */
static void waits_check(struct csim *s)
{
    run_until(s, s->now + CS_SETTLE_MS, no_waits);
    if (s->failed || no_waits(s))
        return;
    struct cs_prop *pr = s->waits.next;
    struct cs_part *pt = &s->n[pr->node].parts[pr->k];
    fail(s,
         "p%d: node %d's acks=%s wait for [%" PRId64 ", %" PRId64 "] term %" PRId64
         " never completed (log end %" PRId64 ", durable %" PRId64 ", commit %" PRId64
         ", leader %d, term %" PRId64 ")",
         pr->k, pr->node, pr->wait == REPLICA_WAIT_LEADER ? "1" : "all", pr->fp.base, pr->fp.last,
         pr->fp.term, log_end_offset(pt->log), log_durable_offset(pt->log),
         raft_group_commit(pt->g), replica_leader(pt->r), replica_term(pt->r));
    s->res->liveness = true;
}

static void setup(struct csim *s)
{
    s->nodes = s->o->nodes == 5 ? 5 : 3;
    clock_sim_init(&s->clock, 1700000000000);
    s->net_opts = (struct sim_net_options){.seed = rng_next(&s->rng),
                                           .delay_ms_min = 1,
                                           .delay_ms_max = (uint32_t)rng_range(&s->rng, 2, 20),
                                           .drop_ppm = (uint32_t)rng_below(&s->rng, 20000),
                                           .duplicate_ppm = (uint32_t)rng_below(&s->rng, 20000),
                                           .reorder = rng_chance(&s->rng, 1, 2)};
    int rc = sim_net_create(&s->net_opts, &s->net);
    ASSERT(rc == 0);
    s->disk_ms_max = (uint32_t)rng_range(&s->rng, 1, 30);
    s->client_ms_max = (uint32_t)rng_range(&s->rng, 1, 10);
    s->fault_ms_min = (uint32_t)rng_range(&s->rng, 20, 200);
    s->fault_ms_max = s->fault_ms_min + (uint32_t)rng_range(&s->rng, 50, 600);
    s->power_losses_max = (uint32_t)rng_below(&s->rng, 3);
    /* min.insync.replicas: mostly 2 (a majority of 3), sometimes every replica (more than a
     * majority: acks=all then also waits for the replicas beyond the commit). */
    s->min_insync = rng_chance(&s->rng, 1, 4) ? (uint32_t)s->nodes : 2;
    s->heal_at = CS_NEVER;
    s->waits.next = s->waits.prev = &s->waits;
    buf_init(&s->scratch);
    for (int i = 0; i < CS_CLIENTS; i++)
        for (int k = 0; k < CS_PARTS; k++)
            s->c[i].guess[k] = (int32_t)rng_below(&s->rng, (uint64_t)s->nodes);
    for (int i = 0; i < s->nodes; i++) {
        struct cs_node *n = &s->n[i];
        n->s = s;
        n->id = i;
        n->io = io_sim_create();
        sim_node_clock_init(&n->clk, &s->clock.clock);
        n->stalled_until = CS_NEVER;
        n->held_tail = &n->held;
        for (int k = 0; k < CS_PARTS; k++)
            n->parts[k] = (struct cs_part){.s = s, .n = n, .k = k};
        n->meta_part = (struct cs_part){.s = s, .n = n, .k = CS_META};
        node_start(s, n);
    }
    trace(s,
          "seed %" PRIu64 ": %d nodes, %d partitions, net delay 1-%u ms drop %u dup %u%s, "
          "disk sync <= %u ms",
          s->o->seed, s->nodes, CS_PARTS, s->net_opts.delay_ms_max, s->net_opts.drop_ppm,
          s->net_opts.duplicate_ppm, s->net_opts.reorder ? " reorder" : "", s->disk_ms_max);
}

static void teardown(struct csim *s)
{
    for (int i = 0; i < s->nodes; i++) {
        if (s->n[i].up)
            node_crash(s, &s->n[i], CS_KILL);
        io_destroy(s->n[i].io);
    }
    sim_net_destroy(s->net);
    buf_deinit(&s->scratch);
    free(s->topics);
    while (s->durable_checks != NULL) {
        struct cs_durable_check *d = s->durable_checks;
        s->durable_checks = d->next;
        free(d);
    }
    for (int k = 0; k <= CS_META; k++) {
        free(s->p[k].slots);
        free(s->p[k].leader_of_term);
        free(s->p[k].acked_last_of_term);
    }
}

int csim_run(const struct csim_options *o, struct csim_result *res)
{
    struct csim *s = xcalloc(1, sizeof(*s));
    struct sim_net_options calm;
    int rc;

    memset(res, 0, sizeof(*res));
    s->o = o;
    s->trace.echo = o->trace;
    s->res = res;
    rng_seed(&s->rng, o->seed);
    setup(s);

    /* Faults and clients. */
    s->faults_on = s->clients_on = true;
    s->next_fault_ms = rng_range(&s->rng, s->fault_ms_min, s->fault_ms_max);
    s->next_client_ms = 1;
    s->next_admin_ms = rng_range(&s->rng, 10, 200);
    run_until(s, o->time_ms, NULL);

    /* Heal: a calm network, every node running, no injected disk errors, no full disk. */
    s->faults_on = s->clients_on = false;
    if (!s->failed) {
        trace(s, "heal everything");
        heal_net(s);
        calm = s->net_opts;
        calm.delay_ms_min = 1;
        calm.delay_ms_max = 10;
        calm.drop_ppm = calm.duplicate_ppm = 0;
        calm.reorder = false;
        sim_net_set_faults(s->net, &calm);
        for (int i = 0; i < s->nodes; i++) {
            unstall(s, &s->n[i], true);
            s->n[i].handing_over = false;
            io_sim_fail_clear(s->n[i].io);
            io_sim_set_capacity(s->n[i].io, 0);
            s->n[i].disk_full = false;
            if (!s->n[i].up)
                node_start(s, &s->n[i]);
        }
    }
    /* Liveness: a leader per group and a new proposal committed, then everyone caught up. */
    s->probes_on = true;
    s->next_probe_ms = s->now;
    uint64_t deadline = s->now + CS_LIVENESS_MS;
    run_until(s, deadline, all_live);
    if (!s->failed && !all_live(s)) {
        for (int k = 0; k < CS_PARTS; k++)
            if (!s->p[k].live)
                fail(s, "p%d: no new proposal committed within %u ms of healing (leader %d)", k,
                     CS_LIVENESS_MS, leader_of(s, k));
        res->liveness = true;
    }
    s->probes_on = false;
    deadline = s->now + CS_SETTLE_MS;
    run_until(s, deadline, settled);
    if (!s->failed && !settled(s)) {
        fail(s, "the nodes did not catch up within %u ms", CS_SETTLE_MS);
        res->liveness = true;
    }
    /* The metadata: a controller, equal images, every broker unfenced. */
    deadline = s->now + CS_META_SETTLE_MS;
    run_until(s, deadline, meta_settled);
    if (!s->failed && !meta_settled(s)) {
        int32_t c = controller_of(s);
        for (int i = 0; i < s->nodes && c >= 0; i++)
            trace(s, "meta n%d: applied %" PRId64 ", log end %" PRId64 ", %s, image %s", i,
                  meta_node_applied(s->n[i].mn), log_end_offset(s->n[i].meta_log),
                  meta_node_unfenced(s->n[i].mn) ? "unfenced" : "fenced",
                  meta_image_equal(s->n[i].img, s->n[c].img) ? "equal" : "differs");
        fail(s, "metadata did not converge within %u ms (controller %d)", CS_META_SETTLE_MS, c);
        res->liveness = true;
    }
    if (!s->failed)
        fence_check(s);
    for (int i = 0; i < s->nodes && !s->failed; i++)
        check_image(s, &s->n[i], "at the end");
    if (!s->failed)
        final_check(s);
    if (!s->failed)
        waits_check(s);

    res->failed = s->failed;
    if (s->failed && o->trace_on_fail) {
        printf("seed %" PRIu64 " FAILED at %" PRIu64 " ms: %s\nlast events:\n", o->seed, s->now,
               res->why);
        sim_trace_print(&s->trace);
    }
    rc = s->failed ? -1 : 0;
    teardown(s);
    free(s);
    return rc;
}
