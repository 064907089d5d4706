/*
 * A simulated network behind the transport interface (cluster/transport.h), for unit tests and
 * the whole-cluster simulation: N nodes in one process exchange the same RaftMessages and
 * ClusterRpc frames TCP would carry, with faults decided by one seeded PRNG, so a seed replays
 * exactly. RPCs a node sends itself never enter the network: its flush() delivers them (no
 * fault applies, as on a real node).
 *
 * Time is the caller's: sim_net_advance(now) delivers every frame due by now in (delivery time,
 * send order) order; nothing happens between calls. Each frame a node's flush() sends gets a
 * delay drawn uniformly from [delay_ms_min, delay_ms_max]; it may be dropped (drop_ppm),
 * duplicated (duplicate_ppm, the copy with its own delay) or, with reorder, overtake earlier
 * frames on its link. Without reorder a link is FIFO, as one TCP connection is.
 *
 * Links are one-way and can be cut (sim_net_block, sim_net_partition); a frame in flight on a
 * link that is cut before it arrives is lost, even if the link is restored in between (the TCP
 * connection it travelled on broke). Detaching a node is a crash: its queues and every frame to
 * or from it in flight are lost. Peer up/down notifications follow the links: a node that knows
 * a peer hears on_peer_up when the link to it becomes usable and on_peer_down when it stops
 * being usable, at the start of the next sim_net_advance (never inside another call).
 *
 * The receiver decodes each frame with cluster/wire.h; a frame that fails to decode or is not
 * from the link's sender to the receiver is refused and counted. Faults apply to frames, so to
 * RPC frames exactly as to Raft frames. Handlers may call send(),
 * send_rpc() and flush() on any transport; they must not attach, detach, block or advance.
 *
 * Ownership: sim_net_create allocates the network; sim_net_destroy frees it with every attached
 * transport. A transport returned by sim_net_attach lives until its node is detached.
 */
#ifndef CHRONIK_CLUSTER_SIM_NET_H
#define CHRONIK_CLUSTER_SIM_NET_H

#include "cluster/transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_net;

struct sim_net_options {
    uint64_t seed;
    uint32_t delay_ms_min;  /* one-way delay of each frame, uniform in [min, max] */
    uint32_t delay_ms_max;  /* at most CLUSTER_SIM_DELAY_MS_MAX */
    uint32_t drop_ppm;      /* frames lost, per million */
    uint32_t duplicate_ppm; /* frames delivered twice, per million */
    bool reorder;           /* frames on one link may overtake each other */
};

struct sim_net_stats {
    uint64_t frames_sent;
    uint64_t frames_delivered;
    uint64_t frames_dropped; /* by drop_ppm, a cut link, a crash or CLUSTER_SIM_INFLIGHT_MAX */
    uint64_t frames_duplicated;
};

/* ERR_INVALID for options out of range. */
int sim_net_create(const struct sim_net_options *o, struct sim_net **out);
void sim_net_destroy(struct sim_net *n);
/* Changes the fault settings from now on (the seed is ignored). ERR_INVALID out of range. */
int sim_net_set_faults(struct sim_net *n, const struct sim_net_options *o);

/* Starts node (0 <= node < CLUSTER_SIM_NODES_MAX) with handler h; *out is its transport.
 * ERR_INVALID for a bad id, ERR_STATE if it is attached. */
int sim_net_attach(struct sim_net *n, int32_t node, const struct transport_handler *h,
                   struct transport **out);
/* Crashes node: frees its transport and loses everything queued or in flight to or from it. */
void sim_net_detach(struct sim_net *n, int32_t node);

/* Cuts (blocked) or restores the one-way link from -> to. */
void sim_net_block(struct sim_net *n, int32_t from, int32_t to, bool blocked);
/* Cuts every link between the count nodes of side and all other nodes, both ways. */
void sim_net_partition(struct sim_net *n, const int32_t *side, size_t count);
/* Restores every link. */
void sim_net_heal(struct sim_net *n);

uint64_t sim_net_now_ms(const struct sim_net *n);
/* When the next frame is due, or UINT64_MAX when none is in flight. */
uint64_t sim_net_next_ms(const struct sim_net *n);
/* Moves the network's clock to now_ms (never backwards), tells nodes about links that went up
 * or down, then delivers every frame due by now_ms that was sent before this call (frames the
 * handlers send meanwhile wait for the next call). Returns the frames delivered. */
size_t sim_net_advance(struct sim_net *n, uint64_t now_ms);

void sim_net_stats(const struct sim_net *n, struct sim_net_stats *out);

#endif
