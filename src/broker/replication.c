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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct broker_part {
    struct broker *b;
    struct broker_topic *t;
    uint32_t partition;
    int32_t reported_epoch; /* -1: nothing reported in this leadership */
    uint32_t reported_isr_count;
    int32_t reported_isr[RAFT_VOTERS_MAX];
};

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
    part_report(bp);
    if (strcmp(bp->t->name, BROKER_OFFSETS_TOPIC) == 0)
        groups_leadership_changed(bp->b, bp->partition);
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
    *bp = (struct broker_part){.b = b, .t = t, .partition = p, .reported_epoch = -1};
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

void broker_replicas_tick(struct broker *b)
{
    uint64_t now = clock_mono_ms(b->clock);
    uint64_t lag = (uint64_t)b->cfg->replica_lag_time_max_ms;
    for (uint32_t i = 0; i < b->topic_slots; i++) {
        struct broker_topic *t = b->topics[i];
        if (t == NULL || t->parts == NULL || broker_topic_is_tombstone(t))
            continue;
        for (uint32_t p = 0; p < t->partition_count; p++) {
            if (t->parts[p] == NULL || t->replicas[p] == NULL)
                continue;
            replica_tick(t->replicas[p], now, lag);
            part_report(t->parts[p]);
        }
    }
}

bool broker_replica_view(struct broker *b, const char *topic, size_t len, int32_t partition,
                         struct broker_leader *out)
{
    struct replica *r = broker_replica(b, topic, len, partition);
    if (r == NULL || replica_group(r) == NULL)
        return false;
    int32_t leader = replica_leader(r);
    if (replica_leads(r)) {
        out->id = b->cfg->node_id;
        out->local = true;
    } else {
        /* Known elsewhere, or an election under way (no leader: clients wait and ask again). A
         * leader whose term has no committed entry yet is not served from either. */
        out->id = leader;
        out->local = false;
    }
    out->epoch = (int32_t)replica_term(r);
    out->replica = true;
    return true;
}
