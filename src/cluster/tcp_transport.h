/*
 * The cluster transport over TCP on the net loop (the cluster port), implementing
 * cluster/transport.h.
 *
 * One connection per peer pair and direction: this node dials each peer it sends to (lazily, on
 * the first send) and accepts the peers' connections to it. A dialled connection starts with
 * ClusterHello; the peer's answer must accept it and name the expected node and cluster, or the
 * link is reported down with the peer's reason. An accepted connection must say hello within
 * CLUSTER_HELLO_TIMEOUT_MS; a stranger (another cluster id, a node id this node does not admit,
 * a hello meant for another node, a Kafka client on the wrong port) is answered with the refusal
 * and closed. After that, RaftMessages and ClusterRpc frames flow from the dialler only.
 *
 * Cluster id learning. A node whose data directory is new and who is not the cluster's first
 * voter does not know the cluster id: its transport is created without one and says hello with
 * an empty id. A node that knows the id accepts such a hello from a node it admits and its
 * answer carries the id; two nodes that both lack it refuse each other. The new node adopts the
 * first id it is told, by the answer to its own hello or by an accepted inbound hello (only from
 * a node it admits: a known peer or one the admit fn accepts), calls on_cluster_id once (before
 * the matching on_peer_up), and from then on behaves exactly as a transport created with that id.
 * Until then messages and RPCs are queued and peers dialled as usual; a link refused meanwhile is
 * dialled again after its backoff, now with the id.
 *
 * A lost or refused link is dialled again after a backoff that doubles from
 * CLUSTER_REDIAL_MS_MIN to CLUSTER_REDIAL_MS_MAX, on the next send after it. Messages sent while
 * the link is being set up wait in the peer's bounded queue; while it is in backoff, or while the
 * socket holds more than CLUSTER_QUEUE_BYTES_MAX unsent, they are dropped (Raft retransmits), so
 * a slow or dead peer costs bounded memory and never blocks the loop. All sockets are
 * non-blocking.
 *
 * Known limit: peer host names are resolved with getaddrinfo on the loop thread when dialling
 * (instant for numeric addresses and /etc/hosts names).
 */
#ifndef CHRONIK_CLUSTER_TCP_TRANSPORT_H
#define CHRONIK_CLUSTER_TCP_TRANSPORT_H

#include "cluster/transport.h"
#include "net/loop.h"

#include <stdbool.h>
#include <stdint.h>

struct tcp_transport;

/* Whether a node that is not a known peer may connect (e.g. an observer); NULL: known only. */
typedef bool (*tcp_admit_fn)(void *ctx, int32_t node, const char *host, uint16_t port);

struct tcp_transport_config {
    int32_t self;
    const char *cluster_id;      /* NULL or "": not known yet, learnt from the peers (above) */
    const char *listen_host;     /* NULL: all addresses */
    uint16_t listen_port;        /* 0: an ephemeral port (tests) */
    const char *advertised_host; /* sent in the hello */
    uint16_t advertised_port;    /* 0: the bound port */
    tcp_admit_fn admit;
    void *admit_ctx;
    /* A node without a cluster id learns it only from this node (the cluster's first voter,
     * which names a new cluster), and links to no other node until it has: a node of another
     * cluster can neither name it nor reach it first. False: from any admitted node. */
    bool learn_only_from_set;
    int32_t learn_only_from;
    /* The node ids of controller.quorum.voters (distinct, any order), sent in every hello; a
     * hello whose sender names other voter ids is refused (INCONSISTENT_VOTER_SET). None: no
     * check, nothing sent. */
    const int32_t *voter_ids;
    uint32_t voter_count;
};

/* Binds the listener and starts accepting. -errno (the port is taken, ...) or ERR_INVALID. */
int tcp_transport_create(struct loop *loop, const struct tcp_transport_config *cfg,
                         const struct transport_handler *h, struct tcp_transport **out);
/* Closes every connection and frees t; nothing is flushed. */
void tcp_transport_destroy(struct tcp_transport *t);
struct transport *tcp_transport_base(struct tcp_transport *t);
uint16_t tcp_transport_port(const struct tcp_transport *t);
/* The cluster id: the one given at creation or learnt since; NULL while unknown. */
const char *tcp_transport_cluster_id(const struct tcp_transport *t);

#endif
