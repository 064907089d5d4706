/*
 * The Raft core (see raft.h for the interface and docs/raft.md for the host's contract).
 *
 * Owns: role, term, vote, commit index, membership and leader-side progress of one group. The
 * log itself belongs to the host and is reached only through r->log.
 *
 * Invariants kept here: a vote is granted at most once per term and only to an up-to-date
 * candidate; a leader counts only entries of its own term towards commit (earlier ones commit
 * with them); a follower truncates only above its commit index and acknowledges only indices
 * that are both persisted and verified against the current leader; a leader in transfer
 * accepts no proposals; at most one membership change is uncommitted at a time; under
 * check-quorum, a node that heard from a leader less than an election timeout ago grants no
 * vote but a transfer's, in any term (the leader's lease depends on it).
 *
 * Never: allocate, read a clock, block, or touch anything outside src/base. Compile-time
 * RAFT_BUG_* flags exist only for the simulator's "does it bite" tests and are never defined
 * in a product build.
 */
#include "raft/raft.h"

#include <string.h>

#include "base/assert.h"
#include "base/compiler.h"
#include "base/error.h"

enum {
    PROGRESS_PROBE,
    PROGRESS_REPLICATE,
    PROGRESS_SNAPSHOT,
};

/* Where lease_elapsed stops counting: far past any election timeout, never wrapping. */
#define LEASE_ELAPSED_MAX (RAFT_ELECTION_TICKS_MAX * 4)

/* ---- log view helpers ---------------------------------------------------------------------- */

static int64_t log_start(const struct raft *r)
{
    return r->log->start_index(r->log_ctx);
}

static int64_t log_last(const struct raft *r)
{
    return r->log->last_index(r->log_ctx);
}

/* Term at index, or -1 when the index is outside [start - 1, last]. */
static int64_t log_term(const struct raft *r, int64_t index)
{
    int64_t term = -1;

    if (index < -1)
        return -1;
    if (index == -1)
        return 0;
    if (r->log->term_at(r->log_ctx, index, &term) != 0)
        return -1;
    ASSERT(term >= 0);
    return term;
}

static int64_t last_term(const struct raft *r)
{
    int64_t term = log_term(r, log_last(r));

    ASSERT(term >= 0);
    return term;
}

/* ---- membership ---------------------------------------------------------------------------- */

bool raft_is_voter(const struct raft_config *c, int32_t id)
{
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->ids[i] == id)
            return c->voter[i] != 0;
    }
    return false;
}

static int config_find(const struct raft_config *c, int32_t id)
{
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->ids[i] == id)
            return (int)i;
    }
    return -1;
}

static uint32_t voter_count(const struct raft_config *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->count; i++)
        n += c->voter[i] != 0;
    return n;
}

static uint32_t quorum(const struct raft *r)
{
#ifdef RAFT_BUG_QUORUM_SHORT
    if (voter_count(&r->config) > 2)
        return voter_count(&r->config) / 2;
#endif
    return voter_count(&r->config) / 2 + 1;
}

/*
 * May this server start an election? A voter may; so may a server whose removal is still
 * uncommitted, because the remaining voters may need it to commit that removal (4.2.2).
 */
static bool promotable(const struct raft *r)
{
    if (r->passive)
        return false;
    if (raft_is_voter(&r->config, r->self))
        return true;
    return r->config.index > r->commit && raft_is_voter(&r->config_prev, r->self);
}

static bool config_valid(const struct raft_config *c)
{
    if (c->count > RAFT_MEMBERS_MAX || voter_count(c) > RAFT_VOTERS_MAX)
        return false;
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->ids[i] < 0 || config_find(c, c->ids[i]) != (int)i)
            return false;
    }
    return true;
}

int raft_config_apply(const struct raft_config *c, uint8_t op, int32_t node,
                      struct raft_config *out)
{
    int at = config_find(c, node);

    *out = *c;
    switch (op) {
    case RAFT_CHANGE_ADD_VOTER:
        if (at >= 0 && c->voter[at])
            return ERR_INVALID;
        if (voter_count(c) >= RAFT_VOTERS_MAX)
            return ERR_TOO_LARGE;
        if (at < 0) {
            if (c->count >= RAFT_MEMBERS_MAX)
                return ERR_TOO_LARGE;
            at = (int)out->count++;
            out->ids[at] = node;
        }
        out->voter[at] = 1;
        return 0;
    case RAFT_CHANGE_ADD_LEARNER:
        if (at >= 0)
            return ERR_INVALID;
        if (c->count >= RAFT_MEMBERS_MAX)
            return ERR_TOO_LARGE;
        out->ids[out->count] = node;
        out->voter[out->count] = 0;
        out->count++;
        return 0;
    case RAFT_CHANGE_REMOVE:
        if (at < 0 || (c->voter[at] && voter_count(c) == 1))
            return ERR_INVALID;
        for (uint32_t i = (uint32_t)at; i + 1 < c->count; i++) {
            out->ids[i] = c->ids[i + 1];
            out->voter[i] = c->voter[i + 1];
        }
        out->count--;
        return 0;
    default:
        return ERR_INVALID;
    }
}

static void member_reset(struct raft *r, struct raft_member *p)
{
    memset(p, 0, sizeof(*p));
    p->match = -1;
    p->next = log_last(r) + 1;
    p->snapshot_index = -1;
    p->state = PROGRESS_PROBE;
}

/* Installs c, keeping the progress of members present in both the old and new config. */
static void config_set(struct raft *r, const struct raft_config *c)
{
    struct raft_member old[RAFT_MEMBERS_MAX];
    struct raft_config prev = r->config;

    ASSERT(config_valid(c));
    memcpy(old, r->members, sizeof(old));
    r->config = *c;
    for (uint32_t i = 0; i < c->count; i++) {
        int at = config_find(&prev, c->ids[i]);

        if (at >= 0)
            r->members[i] = old[at];
        else
            member_reset(r, &r->members[i]);
    }
    if (r->transferee != RAFT_NONE && !raft_is_voter(c, r->transferee))
        r->transferee = RAFT_NONE;
}

/* A config batch enters the log at b->first_index: it is effective from now on. */
static void config_append(struct raft *r, const struct raft_config *next)
{
    ASSERT(next->index > r->config.index);
    r->config_prev = r->config;
    config_set(r, next);
}

/* ---- outbox -------------------------------------------------------------------------------- */

static struct raft_msg *msg_new(struct raft *r, uint8_t type, int32_t to)
{
    struct raft_msg *m;

    ASSERT(to != r->self);
    ASSERT(type < RAFT_MSG_TYPE_COUNT);
    if (r->outbox_count == RAFT_OUTBOX_MSGS_MAX) {
        /* Raft tolerates lost messages; a full outbox behaves as a lossy network. */
        r->outbox_dropped++;
        return NULL;
    }
    m = &r->outbox[r->outbox_count++];
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->from = r->self;
    m->to = to;
    m->term = r->term;
    m->hint_index = -1;
    return m;
}

/* ---- role changes -------------------------------------------------------------------------- */

static void reset_timers(struct raft *r)
{
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    r->election_timeout = r->election_ticks + (uint32_t)rng_below(&r->rng, r->election_ticks);
}

static void set_term(struct raft *r, int64_t term)
{
    ASSERT(term >= r->term);
    if (term == r->term)
        return;
    r->term = term;
    r->vote = RAFT_NONE;
    r->hs_vote = RAFT_NONE;
    r->hard_dirty = 1;
}

static void set_role(struct raft *r, uint8_t role, int32_t leader)
{
    if (r->role != role || r->leader != leader)
        r->role_dirty = 1;
    r->role = role;
    r->leader = leader;
    r->quiesced = 0;
    r->transferee = RAFT_NONE;
    r->read_count = 0;
    /* What the old leader verified says nothing about the next one, except that committed
     * entries are in every later leader's log. */
    r->verified = r->commit;
    r->acked = -1;
}

static void become_follower(struct raft *r, int64_t term, int32_t leader)
{
    set_term(r, term);
    set_role(r, RAFT_FOLLOWER, leader);
    reset_timers(r);
}

static void send_append(struct raft *r, int idx, bool force);
static void bcast_append(struct raft *r);

static void become_leader(struct raft *r)
{
    struct raft_batch noop;

    ASSERT(r->role == RAFT_CANDIDATE);
    set_role(r, RAFT_LEADER, r->self);
    r->lease_lost = 0;
    reset_timers(r);
    for (uint32_t i = 0; i < r->config.count; i++) {
        member_reset(r, &r->members[i]);
        r->members[i].active = 1;
    }
    /* The no-op commits everything before it (thesis 3.6.2) and names the new epoch. The
     * Figure 8 bug needs a leader that replicates old entries alone, so that flag drops it. */
#ifdef RAFT_BUG_COMMIT_OLD_TERM
    bcast_append(r);
    return;
#endif
    memset(&noop, 0, sizeof(noop));
    noop.first_index = log_last(r) + 1;
    noop.last_index = noop.first_index;
    noop.term = r->term;
    noop.kind = RAFT_BATCH_NOOP;
    r->log->append(r->log_ctx, &noop);
    r->write_first = MIN(r->write_first, noop.first_index);
    bcast_append(r);
}

static void tally(struct raft *r);

static void campaign(struct raft *r, bool pre, bool transfer)
{
    int64_t term;

    ASSERT(promotable(r));
    if (pre) {
        set_role(r, RAFT_PRE_CANDIDATE, RAFT_NONE);
        term = r->term + 1;
    } else {
        set_term(r, r->term + 1);
        set_role(r, RAFT_CANDIDATE, RAFT_NONE);
        r->vote = r->self;
        r->hs_vote = r->self;
        r->hard_dirty = 1;
        term = r->term;
    }
    reset_timers(r);
    for (uint32_t i = 0; i < r->config.count; i++)
        r->members[i].granted = r->config.ids[i] == r->self ? 1 : 0;
    for (uint32_t i = 0; i < r->config.count; i++) {
        struct raft_msg *m;

        if (!r->config.voter[i] || r->config.ids[i] == r->self)
            continue;
        m = msg_new(r, pre ? RAFT_MSG_PRE_VOTE : RAFT_MSG_VOTE, r->config.ids[i]);
        if (m == NULL)
            continue;
        m->term = term;
        m->index = log_last(r);
        m->log_term = last_term(r);
        m->flag = transfer;
    }
    tally(r);
}

/* Counts votes; wins, loses, or keeps waiting. */
static void tally(struct raft *r)
{
    uint32_t yes = 0, no = 0;

    for (uint32_t i = 0; i < r->config.count; i++) {
        if (!r->config.voter[i])
            continue;
        yes += r->members[i].granted == 1;
        no += r->members[i].granted == 2;
    }
    if (yes >= quorum(r)) {
        if (r->role == RAFT_PRE_CANDIDATE)
            campaign(r, false, false);
        else
            become_leader(r);
    } else if (no >= quorum(r)) {
        become_follower(r, r->term, RAFT_NONE);
    }
}

/* ---- leader: replication ------------------------------------------------------------------- */

static int member_index(const struct raft *r, int32_t id)
{
    return config_find(&r->config, id);
}

static void need_snapshot(struct raft *r, struct raft_member *p)
{
    p->state = PROGRESS_SNAPSHOT;
    p->snapshot_index = log_start(r) - 1;
    p->snapshot_ticks = 0;
    p->snapshot_dirty = 1;
    p->inflight_msgs = 0;
    p->inflight_bytes = 0;
}

/*
 * One append to member idx from p->next: whole batches only, bounded by RAFT_MSG_BATCHES_MAX
 * and RAFT_MSG_BYTES_MAX. Returns false when nothing could be sent.
 */
static bool append_one(struct raft *r, int idx, bool empty)
{
    struct raft_member *p = &r->members[idx];
    int64_t last = log_last(r), prev, end, prev_term;
    uint32_t bytes = 0, count = 0;
    struct raft_msg *m;
    struct raft_batch b;
    int rc;

    ASSERT(r->role == RAFT_LEADER);
    if (p->next <= last && p->next >= log_start(r)) {
        rc = r->log->batch_at(r->log_ctx, p->next, &b);
        ASSERT(rc == 0 && b.first_index >= log_start(r)); /* the start is a batch boundary */
        p->next = b.first_index;                          /* a hint may point inside a batch */
    }
    prev = p->next - 1;
    prev_term = log_term(r, prev);
    if (prev_term < 0 || p->next < log_start(r)) {
        need_snapshot(r, p);
        return false;
    }
    end = prev;
    while (!empty && end < last && count < RAFT_MSG_BATCHES_MAX) {
        rc = r->log->batch_at(r->log_ctx, end + 1, &b);
        ASSERT(rc == 0 && b.first_index == end + 1);
        if (count > 0 && bytes + b.bytes > RAFT_MSG_BYTES_MAX)
            break;
        bytes += b.bytes;
        count++;
        end = b.last_index;
    }
    m = msg_new(r, RAFT_MSG_APPEND, r->config.ids[idx]);
    if (m == NULL)
        return false;
    m->index = prev;
    m->log_term = prev_term;
    m->last_index = end;
    m->commit = r->commit;
    m->batch_count = (uint16_t)count;
    if (p->state == PROGRESS_REPLICATE && count > 0) {
        p->next = end + 1;
        p->inflight_msgs++;
        p->inflight_bytes += bytes;
    }
    return true;
}

/* Sends what flow control allows to member idx; force sends even an empty probe. */
static void send_append(struct raft *r, int idx, bool force)
{
    struct raft_member *p = &r->members[idx];
    bool sent = false;

    if (r->config.ids[idx] == r->self || p->state == PROGRESS_SNAPSHOT)
        return;
    if (p->state == PROGRESS_PROBE) {
        if (p->paused && !force)
            return;
        if (append_one(r, idx, false))
            p->paused = 1;
        return;
    }
    while (p->state == PROGRESS_REPLICATE && p->next <= log_last(r) &&
           p->inflight_msgs < RAFT_INFLIGHT_MSGS_MAX &&
           p->inflight_bytes < RAFT_INFLIGHT_BYTES_MAX) {
        if (!append_one(r, idx, false))
            return;
        sent = true;
    }
    /* Nothing new, or the window is full: an empty append at next - 1 makes a follower that
     * lost part of the pipeline reject, which sends it back to probing. */
    if (!sent && force && p->state == PROGRESS_REPLICATE)
        append_one(r, idx, true);
}

static void bcast_append(struct raft *r)
{
    for (uint32_t i = 0; i < r->config.count; i++)
        send_append(r, (int)i, false);
}

static void bcast_heartbeat(struct raft *r, bool quiesce)
{
    r->seq++;
    r->seq_sent_ticks[r->seq % RAFT_LEASE_RING] = r->now_ticks;
    for (uint32_t i = 0; i < r->config.count; i++) {
        struct raft_member *p = &r->members[i];
        struct raft_msg *m;

        if (r->config.ids[i] == r->self)
            continue;
        m = msg_new(r, RAFT_MSG_HEARTBEAT, r->config.ids[i]);
        if (m == NULL)
            continue;
        /* Only what the follower is known to hold may be committed there. */
        m->commit = MIN(r->commit, p->match);
        m->seq = r->seq;
        m->flag = quiesce;
    }
}

static int64_t self_match(const struct raft *r)
{
    return r->persisted;
}

/*
 * May the leader stop heartbeating? Only when nothing is in flight: its whole log is durable
 * here and committed, every member holds all of it and answered within an election timeout (a
 * member that stopped answering keeps the group ticking, so check-quorum works as usual), and
 * no transfer, read or membership change is pending. The quiesce heartbeat then carries the
 * commit index to every member (capped at its match, which is the last index).
 */
static bool can_quiesce(const struct raft *r)
{
    int64_t last = log_last(r);

    if (!r->quiesce || r->transferee != RAFT_NONE || r->read_count > 0 || r->reads_done_count > 0 ||
        r->persisted != last || r->commit != last || r->config.index > r->commit)
        return false;
    for (uint32_t i = 0; i < r->config.count; i++) {
        const struct raft_member *p = &r->members[i];

        if (r->config.ids[i] == r->self)
            continue;
        if (p->match != last || p->state != PROGRESS_REPLICATE || p->inflight_msgs > 0 ||
            p->snapshot_dirty || p->contact_ticks >= r->election_ticks)
            return false;
    }
    return true;
}

/*
 * Ends quiescence. Time passed unseen, so a leader moves its clock on by an election timeout:
 * no heartbeat acknowledged before counts for a lease, check-quorum starts a fresh round, and
 * a heartbeat tells every member the leader is back (a follower that missed the quiesce
 * heartbeat hears it too). A follower's timers stay where they stopped.
 */
static void wake(struct raft *r)
{
    if (!r->quiesced)
        return;
    r->quiesced = 0;
    if (r->role != RAFT_LEADER)
        return;
#ifndef RAFT_BUG_QUIESCE_LEASE
    r->now_ticks += r->election_ticks;
#endif
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    for (uint32_t i = 0; i < r->config.count; i++)
        r->members[i].active = 0;
    bcast_heartbeat(r, false);
}

static void maybe_commit(struct raft *r)
{
    int64_t matches[RAFT_MEMBERS_MAX], n_index;
    uint32_t n = 0, q = quorum(r);

    ASSERT(r->role == RAFT_LEADER);
    for (uint32_t i = 0; i < r->config.count; i++) {
        if (!r->config.voter[i])
            continue;
        matches[n++] = r->config.ids[i] == r->self ? self_match(r) : r->members[i].match;
    }
    if (n == 0)
        return;
    /* Insertion sort, descending: at most RAFT_VOTERS_MAX elements. */
    for (uint32_t i = 1; i < n; i++) {
        int64_t v = matches[i];
        uint32_t j = i;

        for (; j > 0 && matches[j - 1] < v; j--)
            matches[j] = matches[j - 1];
        matches[j] = v;
    }
    n_index = matches[q - 1];
    if (n_index <= r->commit)
        return;
#ifndef RAFT_BUG_COMMIT_OLD_TERM
    if (log_term(r, n_index) != r->term)
        return;
#endif
    r->commit = n_index;
    r->commit_dirty = 1;
    /* Followers learn the new commit index now rather than at the next heartbeat tick, so
     * what a leader answers as committed is applied everywhere one round trip later. */
    bcast_heartbeat(r, false);
    /* A leader that removed itself leads until the removal commits (thesis 4.2.2), then
     * hands over to the most up-to-date voter rather than leaving the group to time out. */
    if (!raft_is_voter(&r->config, r->self) && r->commit >= r->config.index) {
        int best = -1;

        for (uint32_t i = 0; i < r->config.count; i++) {
            if (r->config.voter[i] && (best < 0 || r->members[i].match > r->members[best].match))
                best = (int)i;
        }
        if (best >= 0 && r->members[best].match == log_last(r))
            msg_new(r, RAFT_MSG_TIMEOUT_NOW, r->config.ids[best]);
        become_follower(r, r->term, RAFT_NONE);
    }
}

/* Largest index <= index whose term is <= term, walking back a bounded number of batches. */
static int64_t find_conflict_by_term(const struct raft *r, int64_t index, int64_t term)
{
    int64_t floor = MAX(log_start(r) - 1, -1);
    struct raft_batch b;

    index = MIN(index, log_last(r));
    for (uint32_t step = 0; step < RAFT_HINT_STEPS_MAX && index > floor; step++) {
        if (r->log->batch_at(r->log_ctx, index, &b) != 0 || b.term <= term)
            return index;
        index = b.first_index - 1;
    }
    return index;
}

static void release_inflight(struct raft *r, struct raft_member *p, int64_t from, int64_t to)
{
    struct raft_batch b;
    int64_t i = MAX(from, log_start(r));

    for (uint32_t step = 0; i <= to && step < RAFT_MSG_BATCHES_MAX * 4; step++) {
        if (r->log->batch_at(r->log_ctx, i, &b) != 0)
            break;
        p->inflight_bytes -= MIN(p->inflight_bytes, b.bytes);
        i = b.last_index + 1;
    }
    if (p->inflight_msgs > 0)
        p->inflight_msgs--;
    if (p->match + 1 >= p->next) {
        p->inflight_msgs = 0;
        p->inflight_bytes = 0;
    }
}

static void maybe_send_timeout_now(struct raft *r, int idx)
{
    struct raft_msg *m;

    if (r->transferee != r->config.ids[idx] || r->members[idx].match != log_last(r))
        return;
    m = msg_new(r, RAFT_MSG_TIMEOUT_NOW, r->transferee);
    /* The target may campaign whenever this arrives, past every follower's lease: this
     * leader can never again trust a lease in this term. */
    if (m != NULL)
        r->lease_lost = 1;
}

static void leader_append_resp(struct raft *r, int idx, const struct raft_msg *m)
{
    struct raft_member *p = &r->members[idx];

    if (m->reject) {
        int64_t hint;

        if (p->state == PROGRESS_SNAPSHOT || m->index <= p->match ||
            (p->state == PROGRESS_PROBE && m->index != p->next - 1))
            return; /* stale */
        /* Fast back-off: skip every entry of terms the follower cannot hold (thesis 5.3). */
        hint = find_conflict_by_term(r, m->hint_index, m->hint_term);
        p->state = PROGRESS_PROBE;
        p->next = MAX(MIN(m->index, hint + 1), p->match + 1);
        p->inflight_msgs = 0;
        p->inflight_bytes = 0;
        p->paused = 0;
        send_append(r, idx, false);
        return;
    }
    if (m->index > log_last(r))
        return; /* from an earlier term of ours, beyond what we hold now */
    if (m->index > p->match) {
        int64_t old = p->match;

        p->match = m->index;
        release_inflight(r, p, old + 1, m->index);
        if (p->next <= m->index)
            p->next = m->index + 1;
        if (p->state == PROGRESS_PROBE) {
            p->state = PROGRESS_REPLICATE;
            p->inflight_msgs = 0;
            p->inflight_bytes = 0;
        } else if (p->state == PROGRESS_SNAPSHOT && m->index >= p->snapshot_index) {
            p->state = PROGRESS_PROBE;
            p->next = m->index + 1;
        }
        int64_t commit_before = r->commit;
        maybe_commit(r);
        if (r->role != RAFT_LEADER)
            return;
        /* A follower that was not part of the commit just made (it was told a commit capped at
         * what it held) and holds all of it now learns it at once, not at the next heartbeat. */
        if (r->commit == commit_before && old < r->commit && m->index >= r->commit)
            send_append(r, (int)idx, true);
        maybe_send_timeout_now(r, idx);
    } else {
        /* No progress: an answer to an append not yet durable there, or a stale one. A
         * probe stays paused until real progress or the next heartbeat answer, so stale
         * answers cannot multiply appends. */
        if (p->inflight_msgs > 0)
            p->inflight_msgs--;
        if (p->state != PROGRESS_REPLICATE)
            return;
    }
    p->paused = 0;
    send_append(r, idx, false);
}

static void reads_check(struct raft *r)
{
    uint32_t keep = 0;

    for (uint32_t k = 0; k < r->read_count; k++) {
        struct raft_pending_read *rd = &r->reads[k];
        uint32_t acks = 0;

        for (uint32_t i = 0; i < r->config.count; i++) {
            if (!r->config.voter[i])
                continue;
            if (r->config.ids[i] == r->self || r->members[i].seq_acked >= rd->seq)
                acks++;
        }
        if (acks >= quorum(r)) {
            ASSERT(r->reads_done_count < RAFT_READS_MAX);
            r->reads_done[r->reads_done_count].id = rd->id;
            r->reads_done[r->reads_done_count].index = rd->index;
            r->reads_done_count++;
        } else {
            r->reads[keep++] = *rd;
        }
    }
    r->read_count = keep;
}

static void step_leader(struct raft *r, const struct raft_msg *m)
{
    int idx = member_index(r, m->from);
    struct raft_member *p;

    if (idx < 0)
        return;
    p = &r->members[idx];
    p->active = 1;
    p->contact_ticks = 0;
    switch (m->type) {
    case RAFT_MSG_APPEND_RESP:
        leader_append_resp(r, idx, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        if (m->seq > p->seq_acked && m->seq <= r->seq)
            p->seq_acked = m->seq;
        p->paused = 0;
        if (p->state == PROGRESS_SNAPSHOT)
            break;
        if (m->reject && m->index < p->match) {
            /* It lost what it acknowledged: replicate again from where its log ends. The
             * commit index stays (a majority without it held it). */
            p->match = m->index;
            p->next = m->index + 1;
            p->state = PROGRESS_PROBE;
            p->inflight_msgs = 0;
            p->inflight_bytes = 0;
        }
        if (p->match < log_last(r))
            send_append(r, idx, true);
        reads_check(r);
        break;
    default:
        break;
    }
}

/* ---- follower ------------------------------------------------------------------------------ */

/* A success: index is the highest entry both durable here and matching the leader. */
static void send_append_resp(struct raft *r, int32_t to, int64_t index)
{
    struct raft_msg *m = msg_new(r, RAFT_MSG_APPEND_RESP, to);

    if (m != NULL)
        m->index = index;
}

static void maybe_ack(struct raft *r)
{
    int64_t ack = MIN(r->persisted, r->verified);

#ifdef RAFT_BUG_ACK_BEFORE_PERSIST
    ack = r->verified;
#endif
    if (r->role != RAFT_FOLLOWER || r->leader == RAFT_NONE || ack <= r->acked)
        return;
    r->acked = ack;
    send_append_resp(r, r->leader, ack);
}

static void follower_commit(struct raft *r, int64_t commit)
{
    commit = MIN(commit, log_last(r));
    if (commit > r->commit) {
        r->commit = commit;
        r->commit_dirty = 1;
    }
}

static void truncate_from(struct raft *r, int64_t from)
{
    ASSERT(from > r->commit);
    r->log->truncate(r->log_ctx, from);
    r->persisted = MIN(r->persisted, from - 1);
    r->verified = MIN(r->verified, from - 1);
    r->truncated_from = r->truncated_from < 0 ? from : MIN(r->truncated_from, from);
    r->write_first = MIN(r->write_first, from);
    if (r->config.index >= from) {
        /* Only the newest config entry can be uncommitted, so one step back suffices. */
        config_set(r, &r->config_prev);
    }
}

static void reject_append(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg *out = msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
    int64_t hint;

    if (out == NULL)
        return;
    hint = find_conflict_by_term(r, MIN(m->index, log_last(r)), m->log_term);
    out->reject = 1;
    out->index = m->index;
    out->hint_index = hint;
    out->hint_term = log_term(r, hint);
}

static void handle_append(struct raft *r, const struct raft_msg *m)
{
    struct raft_config next;
    int64_t prev_term, accepted = m->index;

    if (m->index < r->commit) {
        /* Everything up to the commit index already matches any leader. Entries past it in
         * this message are dropped; the leader resends from our answer. */
        send_append_resp(r, m->from, MIN(r->commit, r->persisted));
        return;
    }
    prev_term = log_term(r, m->index);
#ifdef RAFT_BUG_NO_PREV_CHECK
    (void)prev_term;
    if (m->index > log_last(r)) {
        reject_append(r, m);
        return;
    }
#else
    if (prev_term < 0 || prev_term != m->log_term) {
        reject_append(r, m);
        return;
    }
#endif
    for (uint32_t i = 0; i < m->batch_count; i++) {
        const struct raft_batch *b = &m->batches[i];

        if (b->first_index <= log_last(r)) {
            if (log_term(r, b->first_index) == b->term) {
                accepted = b->last_index; /* already held: batches are atomic, so all of it */
                continue;
            }
#ifdef RAFT_BUG_NO_TRUNCATE
            accepted = b->last_index;
            continue;
#endif
            if (b->first_index <= r->commit)
                return; /* a leader contradicting our commit: drop the message */
            truncate_from(r, b->first_index);
        }
#ifdef RAFT_BUG_NO_TRUNCATE
        if (b->first_index != log_last(r) + 1)
            break;
#endif
        ASSERT(b->first_index == log_last(r) + 1);
        if (b->kind == RAFT_BATCH_CONFIG) {
            /* The leader checked the change against this same config; one that does not
             * apply is a corrupt message and ends the append here. */
            if (raft_config_apply(&r->config, b->op, b->node, &next) != 0)
                break;
            next.index = b->first_index;
        }
        r->log->append(r->log_ctx, b);
        r->write_first = MIN(r->write_first, b->first_index);
        if (b->kind == RAFT_BATCH_CONFIG)
            config_append(r, &next);
        accepted = b->last_index;
    }
    r->verified = MAX(r->verified, accepted);
    follower_commit(r, MIN(m->commit, r->verified));
    if (MIN(r->persisted, r->verified) <= r->acked) {
        /* Answer anyway so the leader sees contact and frees flow-control credit. */
        send_append_resp(r, m->from, MIN(r->persisted, r->verified));
        return;
    }
    maybe_ack(r);
}

/*
 * A snapshot ends at the leader's log start - 1, which the leader has committed. A follower
 * holding that entry (log matching: and everything before it), or committed past it, has what
 * the snapshot would give: it answers as to an empty append there. Otherwise the host installs
 * it (raft_ready.install_index); its log is never touched here.
 */
static void handle_snapshot(struct raft *r, const struct raft_msg *m)
{
    if (m->index <= r->commit || log_term(r, m->index) == m->log_term) {
        struct raft_msg empty = *m;

        empty.type = RAFT_MSG_APPEND;
        empty.last_index = m->index;
        empty.batch_count = 0;
        empty.batches = NULL;
        handle_append(r, &empty);
        return;
    }
    r->install_index = m->index;
    r->install_term = m->log_term;
}

/* A follower hears from its term's leader: the host is told (role_changed) when it is news. */
static void learn_leader(struct raft *r, int32_t leader)
{
    if (r->leader != leader)
        r->role_dirty = 1;
    r->leader = leader;
    r->passive = false;
}

static void step_follower(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg *out;

    switch (m->type) {
    case RAFT_MSG_APPEND:
        r->election_elapsed = 0;
        r->lease_elapsed = 0;
        learn_leader(r, m->from);
        handle_append(r, m);
        break;
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->lease_elapsed = 0;
        learn_leader(r, m->from);
        follower_commit(r, m->commit);
        out = msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
        if (out == NULL)
            break;
        out->seq = m->seq;
        /* The commit sent is capped at what this node acknowledged: beyond its log, it lost
         * acknowledged entries (its disk was wiped or replaced), and says where its log ends. */
        if (m->commit > log_last(r)) {
            out->reject = 1;
            out->index = log_last(r);
        }
        /* The leader has nothing more to send: stop the election timer until woken. */
        r->quiesced = m->flag && r->quiesce && !out->reject;
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        if (promotable(r))
            campaign(r, false, true);
        break;
    case RAFT_MSG_SNAPSHOT:
        r->election_elapsed = 0;
        r->lease_elapsed = 0;
        learn_leader(r, m->from);
        handle_snapshot(r, m);
        break;
    default:
        break;
    }
}

/* ---- votes --------------------------------------------------------------------------------- */

/*
 * Has this node promised a leader's lease? A follower that answered a leader less than an
 * election timeout ago has: that leader counts on no other leader being elected meanwhile
 * (raft_lease_valid), so the follower votes for no one else until the promise runs out. The
 * promise outlives the leader's identity: a higher term learnt from a candidate's message
 * (say, a rejected pre-vote) clears r->leader but not the promise, and a vote request that
 * then arrives at that same term must still be refused. A leader refuses disruptive
 * candidates until check-quorum deposes it.
 */
static bool in_lease(const struct raft *r)
{
    if (!r->check_quorum)
        return false;
    if (r->role == RAFT_LEADER)
        return true;
#ifdef RAFT_BUG_LEASE_FORGOTTEN
    if (r->leader == RAFT_NONE && r->now_ticks >= r->election_ticks)
        return false;
#endif
    return r->lease_elapsed < r->election_ticks;
}

static void handle_vote(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PRE_VOTE;
    bool free_vote = (r->vote == RAFT_NONE && r->leader == RAFT_NONE) || (pre && m->term > r->term);
    /* A transfer's candidate (flag) was sent by the leader, which gave up its lease. */
    bool can_vote = r->vote == m->from || (free_vote && (m->flag || !in_lease(r)));
    int64_t lt = last_term(r);
    bool up_to_date = m->log_term > lt || (m->log_term == lt && m->index >= log_last(r));
    struct raft_msg *out;

#ifdef RAFT_BUG_VOTE_NO_LOG_CHECK
    up_to_date = true;
#endif
    out = msg_new(r, pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
    if (can_vote && up_to_date) {
        if (out != NULL)
            out->term = m->term;
        if (!pre) {
            r->vote = m->from;
            r->election_elapsed = 0;
#ifndef RAFT_BUG_VOTE_NOT_PERSISTED
            r->hs_vote = m->from;
            r->hard_dirty = 1;
#endif
        }
    } else if (out != NULL) {
        out->reject = 1;
    }
}

/* ---- inputs -------------------------------------------------------------------------------- */

static int validate_msg(const struct raft *r, const struct raft_msg *m)
{
    int64_t at;

    if (m->type >= RAFT_MSG_TYPE_COUNT || m->from < 0 || m->from == r->self || m->to != r->self)
        return ERR_CORRUPT;
    if (m->term < 0 || m->index < -1 || m->commit < -1 || m->log_term < 0)
        return ERR_CORRUPT;
    if (m->type == RAFT_MSG_SNAPSHOT && (m->index < 0 || m->log_term < 1 || m->log_term > m->term))
        return ERR_CORRUPT;
    if (m->type != RAFT_MSG_APPEND)
        return m->batch_count == 0 ? 0 : ERR_CORRUPT;
    if (m->batch_count > RAFT_MSG_BATCHES_MAX || (m->batch_count > 0 && m->batches == NULL))
        return ERR_CORRUPT;
    if (m->log_term > m->term)
        return ERR_CORRUPT;
    at = m->index;
    for (uint32_t i = 0; i < m->batch_count; i++) {
        const struct raft_batch *b = &m->batches[i];

        if (b->first_index != at + 1 || b->last_index < b->first_index || b->term < 1 ||
            b->term > m->term || b->kind > RAFT_BATCH_CONFIG)
            return ERR_CORRUPT;
        if (b->term < (i == 0 ? m->log_term : m->batches[i - 1].term))
            return ERR_CORRUPT;
        if (b->kind == RAFT_BATCH_CONFIG &&
            (b->first_index != b->last_index || b->op == RAFT_CHANGE_NONE ||
             b->op > RAFT_CHANGE_REMOVE || b->node < 0))
            return ERR_CORRUPT;
        at = b->last_index;
    }
    return at == m->last_index ? 0 : ERR_CORRUPT;
}

/*
 * Does m wake a quiesced group? Anything of a later term, anything a leader or candidate sends,
 * and a refusal from a member; not the answers to the quiesce heartbeat itself (a leader would
 * never stay quiesced), late vote answers, or anything of an earlier term (answered anyway).
 */
static bool wakes(const struct raft *r, const struct raft_msg *m)
{
    if (m->term != r->term)
        return m->term > r->term;
    switch (m->type) {
    case RAFT_MSG_APPEND_RESP:
    case RAFT_MSG_HEARTBEAT_RESP:
        return m->reject != 0;
    case RAFT_MSG_PRE_VOTE_RESP:
    case RAFT_MSG_VOTE_RESP:
        return false;
    default:
        return true;
    }
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    int rc = validate_msg(r, m);
    bool vote_req = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE;

    ASSERT(r->log != NULL);
    if (rc != 0)
        return rc;
    if (r->quiesced && wakes(r, m))
        wake(r);
    if (m->term > r->term) {
        if (vote_req && !m->flag && in_lease(r))
            return 0; /* a leader is alive: do not let a disruptive server depose it (4.2.3) */
        if (m->type == RAFT_MSG_PRE_VOTE || (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject)) {
            /* Pre-votes never change our term. */
        } else {
            bool from_leader = m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                               m->type == RAFT_MSG_TIMEOUT_NOW || m->type == RAFT_MSG_SNAPSHOT;

            if (from_leader) {
                become_follower(r, m->term, m->from);
            } else {
                /* A higher term alone does not reset the election timer (only a leader or a
                 * granted vote does), so a server with a stale log that keeps campaigning
                 * cannot hold off everyone else's elections forever. */
                set_term(r, m->term);
                set_role(r, RAFT_FOLLOWER, RAFT_NONE);
            }
        }
    } else if (m->term < r->term) {
        if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
            m->type == RAFT_MSG_SNAPSHOT) {
            /* Tell a deposed leader about the new term so it steps down. */
            struct raft_msg *out = msg_new(r, RAFT_MSG_APPEND_RESP, m->from);

            if (out != NULL)
                out->index = -1;
        } else if (m->type == RAFT_MSG_PRE_VOTE) {
            struct raft_msg *out = msg_new(r, RAFT_MSG_PRE_VOTE_RESP, m->from);

            if (out != NULL)
                out->reject = 1;
        }
        return 0;
    }
    if (vote_req) {
        handle_vote(r, m);
        return 0;
    }
    switch (r->role) {
    case RAFT_LEADER:
        step_leader(r, m);
        break;
    case RAFT_PRE_CANDIDATE:
    case RAFT_CANDIDATE: {
        uint8_t want = r->role == RAFT_PRE_CANDIDATE ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
        int idx = member_index(r, m->from);

        if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
            m->type == RAFT_MSG_SNAPSHOT) {
            become_follower(r, m->term, m->from);
            step_follower(r, m);
        } else if (m->type == want && idx >= 0 && r->config.voter[idx]) {
            if (r->role == RAFT_PRE_CANDIDATE && m->term != r->term + 1 && !m->reject)
                break;
            r->members[idx].granted = m->reject ? 2 : 1;
            tally(r);
        }
        break;
    }
    case RAFT_FOLLOWER:
        step_follower(r, m);
        break;
    default:
        UNREACHABLE();
    }
    return 0;
}

static void tick_leader(struct raft *r)
{
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    for (uint32_t i = 0; i < r->config.count; i++) {
        struct raft_member *p = &r->members[i];

        if (r->config.ids[i] == r->self)
            continue;
        p->contact_ticks++;
        if (p->state == PROGRESS_SNAPSHOT && ++p->snapshot_ticks >= 2 * r->election_ticks) {
            /* No answer: probe just above the snapshot. A follower that installed it matches
             * there; one that did not rejects, and the leader offers the snapshot again. */
            p->state = PROGRESS_PROBE;
            p->next = p->snapshot_index + 1;
            p->paused = 0;
        }
    }
    if (r->transferee != RAFT_NONE && ++r->transfer_elapsed >= r->election_ticks)
        r->transferee = RAFT_NONE;
    if (r->election_elapsed >= r->election_ticks) {
        uint32_t active = 0;

        r->election_elapsed = 0;
        for (uint32_t i = 0; i < r->config.count; i++) {
            if (r->config.voter[i] && (r->members[i].active || r->config.ids[i] == r->self))
                active++;
            r->members[i].active = 0;
        }
        if (r->check_quorum && active < quorum(r)) {
            become_follower(r, r->term, RAFT_NONE);
            return;
        }
    }
    if (r->heartbeat_elapsed >= r->heartbeat_ticks) {
        bool quiesce = can_quiesce(r);

        r->heartbeat_elapsed = 0;
        bcast_heartbeat(r, quiesce);
        r->quiesced = quiesce;
    }
}

void raft_tick(struct raft *r)
{
    ASSERT(r->log != NULL);
    if (r->quiesced)
        return;
    r->now_ticks++;
    if (r->lease_elapsed < LEASE_ELAPSED_MAX)
        r->lease_elapsed++;
    if (r->role == RAFT_LEADER) {
        tick_leader(r);
        return;
    }
    /* A server that may not campaign lets the timer run on (saturating): it must not look
     * as if it had heard from a leader, or it would refuse votes it owes. */
    if (r->election_elapsed < RAFT_ELECTION_TICKS_MAX * 4)
        r->election_elapsed++;
    /* A node configured as the only voter (a standalone node) has nobody to hear from: waiting
     * a timeout at start would only delay its start-up. Only at the first tick and with the
     * configured membership, so no leader of a shrunk group can still hold a lease. */
    bool alone = voter_count(&r->config) == 1 && r->config.index == -1 && r->now_ticks == 1;
    if ((r->election_elapsed >= r->election_timeout || alone) && promotable(r)) {
        r->election_elapsed = 0;
        campaign(r, r->pre_vote && !alone, false);
    }
}

void raft_wake(struct raft *r, int32_t peer, uint32_t silent_ticks)
{
    int idx = member_index(r, peer);

    if (!r->quiesced || idx < 0 || peer == r->self)
        return;
    silent_ticks = MIN(silent_ticks, LEASE_ELAPSED_MAX);
    if (r->role == RAFT_LEADER) {
        wake(r);
        r->members[idx].contact_ticks = MAX(r->members[idx].contact_ticks, silent_ticks);
    } else if (r->leader == peer) {
        /* It heard its leader last no later than the host heard that node: the lease it
         * promised and its election timer have run for at least silent_ticks. */
        wake(r);
        r->lease_elapsed = MAX(r->lease_elapsed, silent_ticks);
        r->election_elapsed = MAX(r->election_elapsed, silent_ticks);
    }
}

/* Where self stands among the voters in member order, the gone leader left out: 0 for the
 * first. The first member is a partition's preferred leader, so the survivor that campaigns
 * first is the one Kafka would elect (the first live replica in the list), and no preferred-
 * leader hand-back follows; replica lists rotate per partition, so new leaderships spread over
 * the survivors. */
static uint32_t survivor_rank(const struct raft *r, int gone)
{
    uint32_t rank = 0;

    for (uint32_t i = 0; i < r->config.count; i++) {
        if (r->config.ids[i] == r->self)
            break;
        if (r->config.voter[i] && i != (uint32_t)gone)
            rank++;
    }
    return rank;
}

void raft_leader_gone(struct raft *r, int32_t peer)
{
    int idx = member_index(r, peer);

    if (r->role == RAFT_LEADER || r->leader != peer || peer == r->self || idx < 0)
        return;
    wake(r);
    r->lease_elapsed = MAX(r->lease_elapsed, r->election_ticks);
    uint32_t wait = survivor_rank(r, idx) * MAX(r->election_ticks / 2, 1u);
    if (wait == 0 && promotable(r)) {
        r->election_elapsed = 0;
        campaign(r, r->pre_vote, false);
        return;
    }
    if (r->election_timeout > wait)
        r->election_elapsed = MAX(r->election_elapsed, r->election_timeout - wait);
}

void raft_persisted(struct raft *r, int64_t index, int64_t term)
{
    ASSERT(index >= -1);
    if (index <= r->persisted || index > log_last(r) || log_term(r, index) != term)
        return;
    r->persisted = index;
    if (r->role == RAFT_LEADER)
        maybe_commit(r);
    else
        maybe_ack(r);
}

int raft_propose(struct raft *r, uint32_t count, uint32_t bytes, struct raft_batch *out)
{
    struct raft_batch b;

    ASSERT(count > 0);
    ASSERT(out != NULL);
    if (r->role != RAFT_LEADER || r->transferee != RAFT_NONE)
        return ERR_STATE;
    wake(r);
    memset(&b, 0, sizeof(b));
    b.first_index = log_last(r) + 1;
    b.last_index = b.first_index + count - 1;
    b.term = r->term;
    b.bytes = bytes;
    b.kind = RAFT_BATCH_DATA;
    r->log->append(r->log_ctx, &b);
    r->write_first = MIN(r->write_first, b.first_index);
    *out = b;
    bcast_append(r);
    return 0;
}

int raft_change(struct raft *r, uint8_t op, int32_t node, struct raft_batch *out)
{
    struct raft_config next;
    struct raft_batch b;
    int rc;

    ASSERT(out != NULL);
    if (r->role != RAFT_LEADER || r->transferee != RAFT_NONE || r->config.index > r->commit ||
        log_term(r, r->commit) != r->term)
        return ERR_STATE;
    rc = raft_config_apply(&r->config, op, node, &next);
    if (rc != 0)
        return rc;
    wake(r);
    memset(&b, 0, sizeof(b));
    b.first_index = log_last(r) + 1;
    b.last_index = b.first_index;
    b.term = r->term;
    b.kind = RAFT_BATCH_CONFIG;
    b.op = op;
    b.node = node;
    r->log->append(r->log_ctx, &b);
    r->write_first = MIN(r->write_first, b.first_index);
    next.index = b.first_index;
    config_append(r, &next);
    *out = b;
    bcast_append(r);
    maybe_commit(r);
    return 0;
}

int raft_transfer(struct raft *r, int32_t target)
{
    int idx = member_index(r, target);

    if (r->role != RAFT_LEADER)
        return ERR_STATE;
    if (target == r->self || idx < 0 || !r->config.voter[idx])
        return ERR_INVALID;
    wake(r);
    r->transferee = target;
    r->transfer_elapsed = 0;
    if (r->members[idx].match == log_last(r))
        maybe_send_timeout_now(r, idx);
    else
        send_append(r, idx, true);
    return 0;
}

int raft_read_index(struct raft *r, uint64_t id)
{
    if (r->role != RAFT_LEADER || log_term(r, r->commit) != r->term)
        return ERR_STATE; /* until its no-op commits a leader does not know the commit index */
    if (r->read_count + r->reads_done_count >= RAFT_READS_MAX)
        return ERR_STATE;
    wake(r);
    bcast_heartbeat(r, false);
    r->reads[r->read_count].id = id;
    r->reads[r->read_count].index = r->commit;
    r->reads[r->read_count].seq = r->seq;
    r->read_count++;
    reads_check(r);
    return 0;
}

bool raft_lease_valid(const struct raft *r)
{
    uint32_t fresh = 0;

    if (r->role != RAFT_LEADER || !r->check_quorum || r->lease_lost || r->transferee != RAFT_NONE ||
        r->quiesced)
        return false;
    for (uint32_t i = 0; i < r->config.count; i++) {
        const struct raft_member *p = &r->members[i];
        uint32_t sent;

        if (!r->config.voter[i])
            continue;
        if (r->config.ids[i] == r->self) {
            fresh++;
            continue;
        }
        /* The lease runs from when the acknowledged heartbeat was sent, not received. */
        if (p->seq_acked == 0 || r->seq - p->seq_acked >= RAFT_LEASE_RING)
            continue;
        sent = r->seq_sent_ticks[p->seq_acked % RAFT_LEASE_RING];
        if (r->now_ticks - sent + RAFT_LEASE_MARGIN_TICKS < r->election_ticks)
            fresh++;
    }
    return fresh >= quorum(r);
}

int raft_snapshot_installed(struct raft *r, int64_t index, int64_t term,
                            const struct raft_config *c)
{
    ASSERT(c != NULL);
    if (!config_valid(c) || log_start(r) != index + 1 || log_term(r, index) != term)
        return ERR_INVALID;
    if (r->role == RAFT_LEADER)
        return ERR_STATE;
    wake(r);
    /* The host may have kept a matching suffix or dropped the whole log. */
    r->persisted = MAX(MIN(r->persisted, log_last(r)), index);
    r->verified = MAX(MIN(r->verified, log_last(r)), index);
    r->write_first = MAX(MIN(r->write_first, log_last(r) + 1), index + 1);
    config_set(r, c);
    r->config_prev = *c;
    follower_commit(r, index);
    maybe_ack(r);
    return 0;
}

void raft_snapshot_failed(struct raft *r, int32_t peer)
{
    int idx = member_index(r, peer);

    if (r->role != RAFT_LEADER || idx < 0 || r->members[idx].state != PROGRESS_SNAPSHOT)
        return;
    r->members[idx].state = PROGRESS_PROBE;
    r->members[idx].next = r->members[idx].snapshot_index + 1;
    r->members[idx].paused = 0;
}

int raft_init(struct raft *r, const struct raft_options *o)
{
    ASSERT(o->log != NULL);
    ASSERT(o->election_ticks > 0 && o->heartbeat_ticks > 0);
    if (!config_valid(&o->config) || !config_valid(&o->config_prev) || o->term < 0 ||
        o->election_ticks > RAFT_ELECTION_TICKS_MAX || o->heartbeat_ticks >= o->election_ticks)
        return ERR_INVALID;
    memset(r, 0, sizeof(*r));
    r->log = o->log;
    r->log_ctx = o->log_ctx;
    rng_seed(&r->rng, o->seed);
    r->self = o->self;
    r->term = o->term;
    r->vote = o->vote;
    r->hs_vote = o->vote;
    r->leader = RAFT_NONE;
    r->transferee = RAFT_NONE;
    r->truncated_from = -1;
    r->install_index = -1;
    r->election_ticks = o->election_ticks;
    r->heartbeat_ticks = o->heartbeat_ticks;
    r->pre_vote = o->pre_vote;
    r->check_quorum = o->check_quorum;
    r->passive = o->passive;
    r->quiesce = o->quiesce;
    /* After a restart the node does not know whether it answered a leader just before the
     * crash, so it keeps the promise for one election timeout; a node that never saw a term
     * never answered a leader and owes no lease. */
    r->lease_elapsed = o->term > 0 ? 0 : LEASE_ELAPSED_MAX;
    /* Everything in the log at start is durable: the host recovered it from disk. */
    r->persisted = log_last(r);
    r->write_first = log_last(r) + 1;
    r->commit = MIN(MAX(o->commit_index, log_start(r) - 1), log_last(r));
    r->verified = r->commit;
    r->acked = -1;
    r->config = o->config;
    r->config_prev = o->config_prev;
    for (uint32_t i = 0; i < r->config.count; i++)
        member_reset(r, &r->members[i]);
    reset_timers(r);
    return 0;
}

/* ---- outputs ------------------------------------------------------------------------------- */

bool raft_has_ready(const struct raft *r)
{
    if (r->hard_dirty || r->commit_dirty || r->role_dirty || r->outbox_count > 0 ||
        r->truncated_from >= 0 || r->reads_done_count > 0 || r->write_first <= log_last(r) ||
        r->install_index >= 0)
        return true;
    for (uint32_t i = 0; i < r->config.count; i++) {
        if (r->members[i].snapshot_dirty)
            return true;
    }
    return false;
}

void raft_ready(struct raft *r, struct raft_ready *rd)
{
    ASSERT(rd != NULL);
    memset(rd, 0, sizeof(*rd));
    rd->hard_state_changed = r->hard_dirty;
    rd->term = r->term;
    rd->vote = r->hs_vote;
    rd->truncated_from = r->truncated_from;
    rd->write_first = r->write_first;
    rd->last_index = log_last(r);
    rd->msgs = r->outbox;
    rd->msg_count = r->outbox_count;
    for (uint32_t i = 0; i < r->config.count; i++) {
        if (r->members[i].snapshot_dirty)
            rd->snapshot_peers[rd->snapshot_peer_count++] = r->config.ids[i];
    }
    rd->install_index = r->install_index;
    rd->install_term = r->install_term;
    rd->commit_index = r->commit;
    rd->commit_changed = r->commit_dirty;
    memcpy(rd->reads, r->reads_done, sizeof(rd->reads[0]) * r->reads_done_count);
    rd->read_count = r->reads_done_count;
    rd->role_changed = r->role_dirty;
    rd->role = r->role;
    rd->leader = r->leader;
    ASSERT(rd->msg_count <= RAFT_OUTBOX_MSGS_MAX);
}

void raft_advance(struct raft *r)
{
    ASSERT(r->log != NULL);
    r->hard_dirty = 0;
    r->commit_dirty = 0;
    r->role_dirty = 0;
    r->outbox_count = 0;
    r->truncated_from = -1;
    r->install_index = -1;
    r->reads_done_count = 0;
    r->write_first = log_last(r) + 1;
    for (uint32_t i = 0; i < r->config.count; i++)
        r->members[i].snapshot_dirty = 0;
}

/* ---- views --------------------------------------------------------------------------------- */

int raft_progress(const struct raft *r, struct raft_progress *out, uint32_t out_max)
{
    uint32_t n = 0;

    ASSERT(out != NULL || out_max == 0);
    if (r->role != RAFT_LEADER)
        return ERR_STATE;
    for (uint32_t i = 0; i < r->config.count && n < out_max; i++, n++) {
        bool me = r->config.ids[i] == r->self;

        out[n].id = r->config.ids[i];
        out[n].voter = r->config.voter[i] != 0;
        out[n].match_index = me ? self_match(r) : r->members[i].match;
        out[n].ticks_since_contact = me ? 0 : r->members[i].contact_ticks;
    }
    return (int)n;
}

const char *raft_role_name(uint8_t role)
{
    static const char *const names[] = {"follower", "pre-candidate", "candidate", "leader"};

    return role < ARRAY_LEN(names) ? names[role] : "?";
}

const char *raft_msg_name(uint8_t type)
{
    static const char *const names[] = {
        "PreVote", "PreVoteResp", "Vote",          "VoteResp",   "App",
        "AppResp", "Heartbeat",   "HeartbeatResp", "TimeoutNow", "Snapshot",
    };

    STATIC_ASSERT(ARRAY_LEN(names) == RAFT_MSG_TYPE_COUNT, "a name per message type");
    return type < ARRAY_LEN(names) ? names[type] : "?";
}
