/*
 * The controller's record builders: a request checked against the metadata image and turned
 * into the KRaft records (cluster/meta_records.h) to propose, as Kafka's QuorumController does.
 * Pure functions: the image is only read; the caller proposes the records as one batch and
 * answers the request once that batch commits.
 *
 * Each builder returns a Kafka error code (also in res->error, with Kafka's message in
 * res->message) and appends records to out only when it returns META_CTL_NONE. A request that
 * changes nothing (a registration retried with the same incarnation, fencing a fenced broker,
 * setting a config to its value) succeeds with no records.
 *
 * Placement (create topic, grow partitions): replicas go on unfenced brokers only. Partition by
 * partition, the preferred leader (first replica) is the broker leading the fewest partitions
 * of this topic so far, then holding the fewest of its replicas, then leading the fewest
 * partitions of the whole image, then holding the fewest replicas, then the lowest id; each
 * further replica is a broker not yet in the partition, from a rack the partition does not use
 * yet when one is left (brokers without a rack form one group), then the fewest replicas of
 * the topic, of the image, the fewest leaders, the lowest id. So each topic's partitions and
 * preferred leaders spread evenly over the brokers (a broker that joined later does not lead
 * all of a new topic), the cluster's as evenly as that allows, and replicas over racks.
 *
 * The image the controller builds from must include its own proposals not yet committed (or the
 * controller must wait for each commit before the next build), else two requests can both pass
 * a check that only one may pass (two topics of one name).
 */
#ifndef CHRONIK_CLUSTER_META_CONTROLLER_H
#define CHRONIK_CLUSTER_META_CONTROLLER_H

#include "cluster/meta_records.h"
#include "cluster/metadata.h"

#include <stdbool.h>
#include <stdint.h>

/* Kafka's error codes (org.apache.kafka.common.protocol.Errors; the same numbers as
 * broker/kafka_errors.h, which this module cannot include). */
enum meta_ctl_error {
    META_CTL_NONE = 0,
    META_CTL_UNKNOWN_SERVER_ERROR = -1,
    META_CTL_UNKNOWN_TOPIC_OR_PARTITION = 3,
    META_CTL_INVALID_TOPIC_EXCEPTION = 17,
    META_CTL_TOPIC_ALREADY_EXISTS = 36,
    META_CTL_INVALID_PARTITIONS = 37,
    META_CTL_INVALID_REPLICATION_FACTOR = 38,
    META_CTL_INVALID_CONFIG = 40,
    META_CTL_INVALID_REQUEST = 42,
    META_CTL_POLICY_VIOLATION = 44,
    META_CTL_NOT_LEADER_OR_FOLLOWER = 6,
    META_CTL_FENCED_LEADER_EPOCH = 74,
    META_CTL_STALE_BROKER_EPOCH = 77,
    META_CTL_UNKNOWN_TOPIC_ID = 100,
    META_CTL_DUPLICATE_BROKER_REGISTRATION = 101,
    META_CTL_BROKER_ID_NOT_REGISTERED = 102,
};

#define META_CTL_MESSAGE_BYTES 256

struct meta_ctl_result {
    int16_t error;
    char message[META_CTL_MESSAGE_BYTES]; /* "" when error is META_CTL_NONE */
};

struct meta_ctl_config {
    const char *key;
    const char *value; /* NULL: delete the override */
};

struct meta_ctl_create_topic {
    const char *name;
    struct meta_uuid id; /* the caller's random id: not reserved, not in use */
    int32_t partitions;  /* defaults already resolved */
    int16_t replication_factor;
    const struct meta_ctl_config *configs; /* values checked by the caller's config table */
    uint32_t config_count;
};

/* TopicRecord, a PartitionRecord per partition (leader = first replica, ISR = replicas, epochs
 * 0), ConfigRecords. INVALID_TOPIC_EXCEPTION (bad name or one colliding with an existing name
 * when '.' and '_' are alike), TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
 * INVALID_REPLICATION_FACTOR (< 1, or more than the unfenced brokers), INVALID_CONFIG,
 * INVALID_REQUEST (an id reserved or in use), POLICY_VIOLATION (META_TOPICS_MAX reached). */
int16_t meta_ctl_create_topic(const struct meta_image *img, const struct meta_ctl_create_topic *req,
                              struct meta_records *out, struct meta_ctl_result *res);
/* RemoveTopicRecord. UNKNOWN_TOPIC_OR_PARTITION. */
int16_t meta_ctl_delete_topic(const struct meta_image *img, const char *name,
                              struct meta_records *out, struct meta_ctl_result *res);
/* PartitionRecords for partitions [current count, new_count), placed with the topic's
 * replication factor. UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS,
 * INVALID_REPLICATION_FACTOR. */
int16_t meta_ctl_create_partitions(const struct meta_image *img, const char *name,
                                   int32_t new_count, struct meta_records *out,
                                   struct meta_ctl_result *res);
/* ConfigRecords for the overrides that change. resource_type META_RESOURCE_TOPIC (name: the
 * topic) or META_RESOURCE_BROKER ("" or a node id). replace: AlterConfigs' semantics (every
 * override not named is deleted); otherwise IncrementalAlterConfigs' (NULL deletes).
 * UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST (unknown resource type, bad broker name, a key
 * twice), INVALID_CONFIG (a key or value over its bound, too many overrides). */
int16_t meta_ctl_alter_configs(const struct meta_image *img, int8_t resource_type,
                               const char *resource, const struct meta_ctl_config *configs,
                               uint32_t count, bool replace, struct meta_records *out,
                               struct meta_ctl_result *res);

struct meta_ctl_register_broker {
    int32_t id;
    struct meta_uuid incarnation_id;
    int64_t epoch; /* the new registration's epoch: the offset its record will take */
    const struct meta_endpoint *endpoints;
    uint32_t endpoint_count;
    const char *rack;   /* NULL: none */
    bool current_alive; /* the current registration's session has not expired */
};

/* RegisterBrokerRecord (fenced until its first heartbeat unfences it); *epoch is the
 * registration's epoch (the existing one for a retry with the same incarnation, which adds no
 * record). DUPLICATE_BROKER_REGISTRATION (another incarnation holds the id and is alive),
 * INVALID_REQUEST (bad id, endpoints or rack, an epoch not above the current one),
 * POLICY_VIOLATION (META_BROKERS_MAX brokers). */
int16_t meta_ctl_register_broker(const struct meta_image *img,
                                 const struct meta_ctl_register_broker *req,
                                 struct meta_records *out, struct meta_ctl_result *res,
                                 int64_t *epoch);
/* Kafka's handleBrokerFenced: PartitionChangeRecords taking the broker out of every ISR (unless
 * it is the last member) and moving its leaderships to the first unfenced ISR member, or to no
 * leader; then FenceBrokerRecord. A replicated partition's ISR and leader are its leader's to
 * report: one the broker led is only marked leaderless (same epoch) until the group's next
 * leader reports. BROKER_ID_NOT_REGISTERED. */
int16_t meta_ctl_fence_broker(const struct meta_image *img, int32_t id, struct meta_records *out,
                              struct meta_ctl_result *res);
/* A controlled shutdown's last step (the broker asked in its heartbeat, WantShutDown, its
 * leaderships handed over): a BrokerRegistrationChangeRecord marking it in controlled shutdown,
 * which takes it out of every ISR (partition leaders read that off the image) and out of
 * placement. Nothing else changes: its session expiry fences it as any other, and its next
 * registration clears the mark. Nothing for a broker fenced or so marked already.
 * BROKER_ID_NOT_REGISTERED. */
int16_t meta_ctl_shut_down_broker(const struct meta_image *img, int32_t id,
                                  struct meta_records *out, struct meta_ctl_result *res);
/* Kafka's handleBrokerUnfenced: UnfenceBrokerRecord, then a leader for every leaderless
 * partition of one replica whose ISR now holds an unfenced broker (a replicated partition's
 * group elects its own). BROKER_ID_NOT_REGISTERED,
 * STALE_BROKER_EPOCH. */
int16_t meta_ctl_unfence_broker(const struct meta_image *img, int32_t id, int64_t epoch,
                                struct meta_records *out, struct meta_ctl_result *res);
/* A partition's leader and ISR as reported (a leader change or, next, an ISR change): one
 * PartitionChangeRecord with the fields that differ (none when nothing does); isr NULL keeps
 * the ISR. A new leader bumps the leader epoch by one (the record cannot carry an epoch).
 * UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION (no such partition), INVALID_REQUEST (an ISR
 * outside the replicas or repeating one, a leader neither -1 nor in the ISR). */
/*
 * What the leader of a replicated partition (replication factor > 1, a Raft group) reports
 * (Kafka's AlterPartition): it leads in term epoch with this ISR. The group elected it, so the
 * report is news to record, not a request to judge: one PartitionChangeRecord carrying the
 * epoch when the leader, the epoch or the ISR differ from the image (none otherwise).
 * FENCED_LEADER_EPOCH for an epoch below the image's, or the image's with another leader (a
 * stale report); NOT_LEADER_OR_FOLLOWER for a broker that is not a replica; INVALID_REQUEST
 * for a partition of one replica or an ISR that is not distinct replicas holding the broker;
 * UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION.
 */
int16_t meta_ctl_partition_report(const struct meta_image *img, const struct meta_uuid *topic_id,
                                  int32_t partition, int32_t broker, int32_t epoch,
                                  const int32_t *isr, uint32_t isr_count, struct meta_records *out,
                                  struct meta_ctl_result *res);
int16_t meta_ctl_partition_change(const struct meta_image *img, const struct meta_uuid *topic_id,
                                  int32_t partition, int32_t leader, const int32_t *isr,
                                  uint32_t isr_count, struct meta_records *out,
                                  struct meta_ctl_result *res);
/* ProducerIdsRecord for the next block of META_PRODUCER_ID_BLOCK ids, starting at *first.
 * BROKER_ID_NOT_REGISTERED, STALE_BROKER_EPOCH, UNKNOWN_SERVER_ERROR (ids exhausted). */
int16_t meta_ctl_alloc_producer_ids(const struct meta_image *img, int32_t broker_id,
                                    int64_t broker_epoch, struct meta_records *out,
                                    struct meta_ctl_result *res, int64_t *first);

#endif
