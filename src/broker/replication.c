/*
 * The broker's side of replicated partitions (replication factor > 1): each such partition's
 * replica runs under its own Raft group on the node's Raft host (cluster/replica.h), and this
 * file wires it to the rest of the broker:
 * - attaching a freshly opened replica to its group (members = the image's replicas, preferred
 *   leader first);
 * - the tick: every replicated partition's ISR bookkeeping (replica_tick), and a leader's
 *   report of its term and ISR to the controller whenever they differ from what it last
 *   reported (meta_node_report, batched there);
 * - what this node knows of a partition's leader: the group's own view first (leadership is
 *   local, the metadata image is news: DESIGN.md).
 *
 * Ownership: a struct broker_part per replicated partition hosted here, owned by its topic
 * (t->parts[p]), freed with it after its replica closed.
 * Threads: the loop thread.
 */
#include "base/alloc.h"
#include "base/error.h"
#include "base/limits.h"
#include "broker/broker_internal.h"
#include "cluster/meta_node.h"
#include "cluster/raft_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct broker_part {
    struct broker *b;
    struct broker_topic *t;
    uint32_t partition;
    int32_t preferred;      /* the first replica */
    int32_t reported_epoch; /* -1: nothing reported in this leadership */
    uint32_t reported_isr_count;
    int32_t reported_isr[RAFT_VOTERS_MAX];
    bool led;                 /* led here at the last look */
    int32_t current_leader;   /* the leader as this node knew it at the last look */
    int32_t last_leader;      /* the one before it */
    uint64_t prefer_until_ms; /* hand the leadership to the preferred replica once it is
                               * caught up, until then (0: not wanted) */
    bool quiesced_seen;       /* its group was quiesced at the last look */
};

/* How long a leader waits for its preferred replica to catch up before it keeps the
 * leadership until the next check. */
static uint64_t prefer_window_ms(const struct broker *b)
{
    return 10u * (uint64_t)b->cfg->controller_quorum_election_timeout_ms;
}

/* A leader reports its epoch and ISR when either differs from its last report; a follower
 * forgets its last report, so the next leadership reports afresh. */
static void part_report(struct broker_part *bp)
{
    struct broker *b = bp->b;
    struct replica *r = bp->t->replicas[bp->partition];
    struct meta_node *mn = broker_meta_node(b);
    if (r == NULL || mn == NULL)
        return;
    if (!replica_leads(r)) {
        bp->reported_epoch = -1;
        return;
    }
    struct meta_node_report rep = {.topic_id = bp->t->id,
                                   .partition = (int32_t)bp->partition,
                                   .epoch = (int32_t)replica_term(r)};
    rep.isr_count = replica_isr(r, rep.isr, RAFT_VOTERS_MAX);
    if (rep.epoch == bp->reported_epoch && rep.isr_count == bp->reported_isr_count &&
        memcmp(rep.isr, bp->reported_isr, rep.isr_count * sizeof(*rep.isr)) == 0)
        return;
    bp->reported_epoch = rep.epoch;
    bp->reported_isr_count = rep.isr_count;
    memcpy(bp->reported_isr, rep.isr, rep.isr_count * sizeof(*rep.isr));
    meta_node_report(mn, &rep);
}

static void on_change(void *ctx)
{
    struct broker_part *bp = ctx;
    struct broker *b = bp->b;
    struct replica *r = bp->t->replicas[bp->partition];
    bool led = r != NULL && replica_leads(r);
    if (r != NULL && replica_leader(r) >= 0 && replica_leader(r) != bp->current_leader) {
        bp->last_leader = bp->current_leader;
        bp->current_leader = replica_leader(r);
    }
    /* A new leadership that is not the preferred replica's, of a partition the preferred
     * replica did not lead just before (a new topic's first election is anyone's): hand it
     * back as soon as that one is caught up. One the preferred replica gave up (a controlled
     * shutdown, a crash) waits for the periodic check instead, or the two would trade it. */
    if (led && !bp->led && b->cfg->auto_leader_rebalance_enable &&
        bp->preferred != b->cfg->node_id && bp->last_leader != bp->preferred)
        bp->prefer_until_ms = clock_mono_ms(b->clock) + prefer_window_ms(b);
    bp->led = led;
    part_report(bp);
    metadata_leaders_changed(b);
    if (strcmp(bp->t->name, BROKER_OFFSETS_TOPIC) == 0)
        groups_leadership_changed(bp->b, bp->partition);
    else if (strcmp(bp->t->name, BROKER_TXN_STATE_TOPIC) == 0)
        txns_leadership_changed(bp->b, bp->partition);
}

int broker_replica_attach(struct broker *b, struct broker_topic *t, const struct meta_topic *mt,
                          uint32_t p)
{
    const struct meta_partition *mp = &mt->partitions[p];
    struct raft_host *host = broker_raft_host(b);
    if (mp->replica_count < 2)
        return 0;
    if (host == NULL)
        return ERR_STATE;
    struct broker_part *bp = xcalloc(1, sizeof(*bp));
    *bp = (struct broker_part){.b = b,
                               .t = t,
                               .partition = p,
                               .preferred = mp->replicas[0],
                               .reported_epoch = -1,
                               .current_leader = -1,
                               .last_leader = -1};
    struct replica_raft o = {
        .host = host,
        .election_ticks =
            (uint32_t)(b->cfg->controller_quorum_election_timeout_ms / BROKER_RAFT_TICK_MS),
        .heartbeat_ticks = BROKER_PARTITION_HEARTBEAT_TICKS,
        .seed = rng_next(&b->rng),
        .on_change = on_change,
        .ctx = bp,
    };
    memcpy(o.group.topic_id.bytes, mt->id.b, META_UUID_BYTES);
    o.group.partition = (int32_t)p;
    o.config.index = -1;
    o.config.count = mp->replica_count;
    for (uint32_t i = 0; i < mp->replica_count; i++) {
        o.config.ids[i] = mp->replicas[i];
        o.config.voter[i] = 1;
    }
    int rc = replica_attach(t->replicas[p], &o);
    if (rc != 0) {
        free(bp);
        return rc;
    }
    t->parts[p] = bp;
    return 0;
}

void broker_part_free(struct broker_topic *t, uint32_t p)
{
    free(t->parts[p]);
    t->parts[p] = NULL;
}

/* Auto leader rebalance: a wanted hand-back happens once the preferred replica is alive and
 * holds the whole log (so the transfer is quick and loses nothing). */
static void maybe_prefer(struct broker_part *bp, struct replica *r, uint64_t now)
{
    struct broker *b = bp->b;
    if (bp->prefer_until_ms == 0)
        return;
    if (now > bp->prefer_until_ms || !replica_leads(r) || b->handing_over) {
        bp->prefer_until_ms = 0;
        return;
    }
    if (!broker_node_alive(b, bp->preferred, NULL) || !replica_caught_up(r, bp->preferred))
        return;
    bp->prefer_until_ms = 0;
    (void)raft_group_transfer(replica_group(r), bp->preferred);
}

/* Controlled shutdown: a leadership held here goes to the first in-sync follower in replica
 * order that answers (replica_handover_target); true while this partition still has one to
 * hand over (a leader with nobody in sync keeps it). A follower that is down may still be in
 * the ISR (until its broker is fenced, or replica.lag.time.max.ms): it is passed over, or the
 * transfer would time out again and again until the shutdown's deadline. */
static bool hand_over(struct broker *b, struct replica *r)
{
    struct raft_group *g = replica_group(r);
    if (replica_leader(r) != b->cfg->node_id)
        return false;
    uint32_t within =
        (uint32_t)(b->cfg->controller_quorum_election_timeout_ms / BROKER_RAFT_TICK_MS);
    int32_t target = replica_handover_target(r, within);
    if (target < 0)
        return false;
    if (raft_group_core(g)->transferee == RAFT_NONE)
        (void)raft_group_transfer(g, target);
    return true;
}

/* Reads the brokers that may not be in an ISR (fenced, or in controlled shutdown) off the
 * image when it changed; whether the set differs from before (every led partition then needs a
 * look, quiesced or not). */
static bool ineligible_refresh(struct broker *b)
{
    const struct meta_image *img = &b->meta;
    if (img->version == b->ineligible_version)
        return false;
    b->ineligible_version = img->version;
    uint32_t n = 0;
    bool changed = false;
    for (uint32_t i = 0; i < img->broker_count; i++) {
        const struct meta_broker *mb = &img->brokers[i];
        if (!mb->fenced && !mb->in_controlled_shutdown)
            continue;
        if (n == b->ineligible_cap) {
            b->ineligible_cap = b->ineligible_cap ? 2 * b->ineligible_cap : 8;
            b->ineligible_ids =
                xrealloc(b->ineligible_ids, b->ineligible_cap * sizeof(*b->ineligible_ids));
        }
        changed |= n >= b->ineligible_count || b->ineligible_ids[n] != mb->id;
        b->ineligible_ids[n++] = mb->id;
    }
    changed |= n != b->ineligible_count;
    b->ineligible_count = n;
    return changed;
}

/* Whether a controller can take this node's controlled shutdown: the metadata group's leader is
 * known and up, or it is this node with a majority of the voters up. The last nodes of a
 * cluster stopping one after another have none, and should not wait for one. */
static bool controller_reachable(struct broker *b, struct meta_node *mn)
{
    int32_t c = meta_node_controller(mn);
    if (c < 0)
        return false;
    if (c != b->cfg->node_id)
        return !broker_peer_down(b, c);
    const struct broker_voters *v = &b->cfg->voters;
    uint32_t up = 0;
    for (uint32_t i = 0; i < v->count; i++)
        up += v->voters[i].id == b->cfg->node_id || !broker_peer_down(b, v->voters[i].id);
    return 2 * up > v->count;
}

/* The handovers are done: once the controller has marked this node in controlled shutdown, so
 * that its replicas leave every ISR before it goes (as Kafka's controlled shutdown does), it
 * stops. It stops at once when no controller can take that, and at the controlled shutdown's
 * deadline at the latest. */
static void shutdown_when_out(struct broker *b, uint64_t now)
{
    struct meta_node *mn = broker_meta_node(b);
    if (mn != NULL && now < b->handover_deadline_ms && controller_reachable(b, mn)) {
        if (!b->shutdown_asked) {
            b->shutdown_asked = true;
            meta_node_request_shutdown(mn);
        }
        if (!meta_node_shutdown_granted(mn))
            return;
    } else if (mn != NULL && now >= b->handover_deadline_ms) {
        fprintf(stderr, "chronik: controlled shutdown: the controller did not take this node out "
                        "of the ISRs within controlled.shutdown.timeout.ms; stopping anyway\n");
    }
    broker_stop(b);
}

void broker_replicas_tick(struct broker *b)
{
    uint64_t now = clock_mono_ms(b->clock);
    uint64_t lag = (uint64_t)b->cfg->replica_lag_time_max_ms;
    bool eligibility_changed = ineligible_refresh(b);
    bool recheck = b->cfg->auto_leader_rebalance_enable && now >= b->next_rebalance_ms;
    if (recheck)
        b->next_rebalance_ms =
            now + 1000u * (uint64_t)b->cfg->leader_imbalance_check_interval_seconds;
    uint32_t held = 0;
    for (uint32_t i = 0; i < b->topic_slots; i++) {
        struct broker_topic *t = b->topics[i];
        if (t == NULL || t->parts == NULL || broker_topic_is_tombstone(t))
            continue;
        for (uint32_t p = 0; p < t->partition_count; p++) {
            struct broker_part *bp = t->parts[p];
            struct replica *r = t->replicas[p];
            if (bp == NULL || r == NULL)
                continue;
            /* A quiesced group is idle with every member caught up: nothing to look at until
             * the host wakes it (a message, a silent peer), unless its leadership is wanted or
             * its replica has work only the tick does (replica_needs_tick). cluster_sim
             * --brokers found both: --seed 12 left acks=all waits for a third replica unanswered
             * on an idle partition, --seed 196 a caught-up replica out of the ISR for good, so
             * every acks=all Produce with min.insync.replicas 3 was refused. The first look
             * after it quiesced still runs: the answers that let it quiesce (a follower that
             * just caught up) came after the last look, and without it the ISR would miss that
             * follower until the group woke again. */
            bool quiesced = raft_group_core(replica_group(r))->quiesced;
            if (quiesced && bp->quiesced_seen && !b->handing_over && bp->prefer_until_ms == 0 &&
                !recheck && !eligibility_changed && !replica_needs_tick(r))
                continue;
            bp->quiesced_seen = quiesced;
            replica_set_ineligible(r, b->ineligible_ids, b->ineligible_count);
            replica_tick(r, now, BROKER_RAFT_TICK_MS, lag);
            part_report(bp);
            if (recheck && replica_leads(r) && bp->preferred != b->cfg->node_id)
                bp->prefer_until_ms = now + prefer_window_ms(b);
            maybe_prefer(bp, r, now);
            if (b->handing_over && hand_over(b, r))
                held++;
        }
    }
    if (b->handing_over && held > 0 && now >= b->handover_deadline_ms) {
        fprintf(stderr,
                "chronik: controlled shutdown: %u leaderships not handed over within "
                "controlled.shutdown.timeout.ms; stopping anyway\n",
                held);
        broker_stop(b);
    } else if (b->handing_over && held == 0) {
        shutdown_when_out(b, now);
    }
}

bool broker_controlled_shutdown(struct broker *b)
{
    if (b->handing_over || !b->cfg->controlled_shutdown_enable || broker_raft_host(b) == NULL)
        return false;
    b->handing_over = true;
    b->handover_deadline_ms =
        clock_mono_ms(b->clock) + (uint64_t)b->cfg->controlled_shutdown_timeout_ms;
    broker_replicas_tick(b);
    return true;
}

bool broker_replica_view(struct broker *b, const char *topic, size_t len, int32_t partition,
                         struct broker_leader *out)
{
    struct replica *r = broker_replica(b, topic, len, partition);
    if (r == NULL || replica_group(r) == NULL)
        return false;
    int32_t leader = replica_leader(r);
    if (replica_leads(r) && broker_ticks_current(b)) {
        out->id = b->cfg->node_id;
        out->local = true;
    } else {
        /* Known elsewhere, or an election under way (no leader: clients wait and ask again). A
         * leader whose term has no committed entry yet is not served from either. A follower
         * that has not heard from its leader for two heartbeats, or whose connection to it
         * broke, names none: that leader is likely gone, and a client told "no leader" keeps
         * asking (and finds the next one as soon as it is elected) where one told the old
         * leader waits to reconnect to it. */
        const struct raft *core = raft_group_core(replica_group(r));
        bool fresh = core->lease_elapsed <= 2 * BROKER_PARTITION_HEARTBEAT_TICKS + 1 &&
                     !broker_peer_down(b, leader);
        out->id = fresh || leader == b->cfg->node_id ? leader : -1;
        out->local = false;
    }
    out->epoch = (int32_t)replica_term(r);
    out->replica = true;
    return true;
}

bool broker_replica_electing(struct broker *b, const char *topic, size_t len, int32_t partition)
{
    struct broker_leader l;
    if (!broker_replica_view(b, topic, len, partition, &l))
        return false;
    struct replica *r = broker_replica(b, topic, len, partition);
    struct raft_group *g = replica_group(r);
    if (raft_group_error(g) != 0 || replica_error(r) != 0)
        return false;
    const struct raft *core = raft_group_core(g);
    bool leaderless = l.id < 0 || (l.id == b->cfg->node_id && !l.local);
    return leaderless && raft_is_voter(&core->config, b->cfg->node_id);
}
