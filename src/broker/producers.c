/*
 * InitProducerId (api 22) for idempotent producers, and the producer ids behind it.
 *
 * Owns: this node's blocks of producer ids (b->pid_*): the current one and at most one granted
 * ahead. Ids are unique cluster-wide because each block is granted by the controller only once
 * its ProducerIdsRecord is committed in the metadata log (meta_node_alloc_producer_ids, Kafka's
 * AllocateProducerIds), a standalone node asking its own controller the same way. As Kafka's
 * RPCProducerIdManager (server/src/main/java/org/apache/kafka/server/RPCProducerIdManager.java)
 * the next block is asked for once 90% of the current one is handed out, and while no id is
 * left the answer is the retriable COORDINATOR_LOAD_IN_PROGRESS.
 *
 * An idempotent producer (no transactional id) gets a new id with epoch 0 at every
 * InitProducerId, whatever id and epoch it sends (KIP-360's bump applies to transactional ids),
 * as Kafka's TransactionCoordinator.handleInitProducerId does. With a transactional id the
 * transaction coordinator answers (txns.c), taking its ids from the same blocks.
 *
 * Threads: the loop thread.
 */
#include "base/limits.h"
#include "broker/broker_internal.h"
#include "cluster/meta_node.h"

#define PID_PREFETCH_PERCENT 90

/* The current block is used past the prefetch point (or gone) and none is granted ahead. */
static bool wants_block(const struct broker *b)
{
    int64_t left = b->pid_end - b->pid_next;
    return b->pid_spare_count == 0 &&
           left <= (int64_t)META_PRODUCER_ID_BLOCK * (100 - PID_PREFETCH_PERCENT) / 100;
}

static void ask_block(struct broker *b)
{
    struct meta_node *mn = broker_meta_node(b);
    if (mn == NULL || !wants_block(b))
        return;
    (void)meta_node_alloc_producer_ids(mn); /* not registered yet: the tick asks again */
    broker_cluster_kick(b);
}

void broker_producer_ids_tick(struct broker *b)
{
    if (b->serving)
        ask_block(b);
}

void broker_producer_ids_granted(struct broker *b, int64_t first, int32_t count)
{
    /* A block at or below what this node holds is an answer it already had (a retry). */
    if (count <= 0 || first < b->pid_end ||
        (b->pid_spare_count > 0 && first < b->pid_spare_first + b->pid_spare_count))
        return;
    if (b->pid_next >= b->pid_end) {
        b->pid_next = first;
        b->pid_end = first + count;
    } else if (b->pid_spare_count == 0) {
        b->pid_spare_first = first;
        b->pid_spare_count = count;
    }
}

int64_t broker_take_producer_id(struct broker *b)
{
    if (b->pid_next >= b->pid_end && b->pid_spare_count > 0) {
        b->pid_next = b->pid_spare_first;
        b->pid_end = b->pid_spare_first + b->pid_spare_count;
        b->pid_spare_count = 0;
    }
    int64_t id = b->pid_next < b->pid_end ? b->pid_next++ : -1;
    ask_block(b);
    return id;
}

void init_producer_id_handle(struct breq *rq)
{
    const struct kafka_init_producer_id_request *req = rq->body;
    if (req->transactional_id.ptr != NULL) {
        txns_init_producer_id(rq);
        return;
    }
    struct kafka_init_producer_id_response resp;
    kafka_init_producer_id_response_init(&resp);
    resp.producer_id = broker_take_producer_id(rq->b);
    resp.producer_epoch = resp.producer_id >= 0 ? 0 : -1;
    resp.error_code = resp.producer_id >= 0 ? KAFKA_NONE : KAFKA_COORDINATOR_LOAD_IN_PROGRESS;
    breq_respond(rq, &resp);
}
