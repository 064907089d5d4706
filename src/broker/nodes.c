/*
 * The cluster as clients see it: which nodes exist and where, and who leads each partition,
 * all from the metadata image (b->meta), so that every handler (Metadata, DescribeCluster,
 * FindCoordinator, the data APIs' NOT_LEADER_OR_FOLLOWER answers, the group APIs'
 * NOT_COORDINATOR) tells the same story and any node answers for the whole cluster.
 *
 * This node before its own registration is in the image (a standalone node never registers)
 * counts as registered and unfenced, at the advertised listener and rack of its configuration,
 * so a standalone node answers exactly as a single-node cluster.
 *
 * Read-only: never changes the image or the broker.
 */
#include "base/assert.h"
#include "broker/broker_internal.h"
#include "cluster/meta_records.h"

#include <string.h>

/* The listener clients are told about: Kafka answers with the listener the request came on;
 * Chronik serves one, registered as PLAINTEXT. */
#define CLIENT_LISTENER "PLAINTEXT"

static const struct meta_endpoint *client_endpoint(const struct meta_broker *mb)
{
    for (uint32_t i = 0; i < mb->endpoint_count; i++)
        if (mb->endpoints[i].name != NULL && strcmp(mb->endpoints[i].name, CLIENT_LISTENER) == 0)
            return &mb->endpoints[i];
    return mb->endpoint_count > 0 ? &mb->endpoints[0] : NULL;
}

static void self_node(const struct broker *b, struct broker_node *out)
{
    *out = (struct broker_node){
        .id = b->cfg->node_id,
        .host = b->cfg->advertised.host,
        .port = b->cfg->advertised.port,
        .rack = b->cfg->rack[0] != '\0' ? b->cfg->rack : NULL,
        .fenced = false,
    };
}

static bool from_image(const struct meta_broker *mb, struct broker_node *out)
{
    const struct meta_endpoint *e = client_endpoint(mb);
    if (e == NULL || e->host == NULL)
        return false;
    *out = (struct broker_node){
        .id = mb->id, .host = e->host, .port = e->port, .rack = mb->rack, .fenced = mb->fenced};
    return true;
}

bool broker_node_find(const struct broker *b, int32_t id, struct broker_node *out)
{
    if (id < 0)
        return false;
    const struct meta_broker *mb = meta_broker_find(&b->meta, id);
    if (mb != NULL)
        return from_image(mb, out);
    if (id != b->cfg->node_id)
        return false;
    self_node(b, out);
    return true;
}

bool broker_node_alive(const struct broker *b, int32_t id, struct broker_node *out)
{
    struct broker_node n;
    if (!broker_node_find(b, id, &n) || n.fenced)
        return false;
    if (out != NULL)
        *out = n;
    return true;
}

struct broker_node *broker_nodes_alive(struct breq *rq, size_t *count)
{
    const struct broker *b = rq->b;
    const struct meta_image *img = &b->meta;
    int32_t self = b->cfg->node_id;
    bool self_missing = meta_broker_find(img, self) == NULL;
    struct broker_node *nodes =
        arena_calloc(&rq->arena, (size_t)img->broker_count + 1, sizeof(*nodes));
    if (nodes == NULL)
        return NULL;
    size_t n = 0;
    /* img->brokers is sorted by id: this node goes in its place when it is not there. */
    for (uint32_t i = 0; i <= img->broker_count; i++) {
        const struct meta_broker *mb = i < img->broker_count ? &img->brokers[i] : NULL;
        if (self_missing && (mb == NULL || mb->id > self)) {
            self_node(b, &nodes[n++]);
            self_missing = false;
        }
        if (mb != NULL && !mb->fenced && from_image(mb, &nodes[n]))
            n++;
    }
    ASSERT(n <= (size_t)img->broker_count + 1);
    *count = n;
    return nodes;
}

bool broker_partition_leader(struct broker *b, const char *topic, size_t len, int32_t partition,
                             struct broker_leader *out)
{
    *out = (struct broker_leader){.id = -1, .epoch = -1};
    if (topic == NULL || partition < 0)
        return false;
    const struct meta_topic *mt = meta_topic_find(&b->meta, topic, len);
    if (mt == NULL || (uint32_t)partition >= mt->partition_count)
        return false;
    /* A replicated partition hosted here: its group knows better than the image. */
    if (broker_replica_view(b, topic, len, partition, out))
        return true;
    const struct meta_partition *mp = &mt->partitions[partition];
    int32_t self = b->cfg->node_id;
    *out = (struct broker_leader){
        .id = mp->leader, .epoch = mp->leader_epoch, .local = mp->leader == self};
    for (unsigned i = 0; i < mp->replica_count; i++)
        if (mp->replicas[i] == self)
            out->replica = true;
    return true;
}

int16_t broker_partition_check(struct broker *b, const char *topic, size_t len, int32_t partition,
                               int32_t current_leader_epoch, struct broker_leader *out)
{
    struct broker_leader l;
    if (!broker_partition_leader(b, topic, len, partition, &l))
        return KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
    if (out != NULL)
        *out = l;
    /* A node that holds no replica knows nothing of the epochs: it only redirects. */
    if (l.replica || l.local) {
        if (current_leader_epoch >= 0 && current_leader_epoch < l.epoch)
            return KAFKA_FENCED_LEADER_EPOCH;
        if (current_leader_epoch > l.epoch)
            return KAFKA_UNKNOWN_LEADER_EPOCH;
    }
    return l.local ? KAFKA_NONE : KAFKA_NOT_LEADER_OR_FOLLOWER;
}
