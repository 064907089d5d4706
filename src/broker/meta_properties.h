/*
 * A data directory's identity file, meta.properties, in Kafka's KRaft format (version=1,
 * cluster.id, node.id): which cluster and which node the directory belongs to. Written once,
 * atomically, at the directory's first start (or its first start after an upgrade from a
 * version without it); read at every start, before anything else in the directory is touched.
 *
 * Invariants: a parsed or stored struct meta_properties holds a cluster id of
 * META_CLUSTER_ID_CHARS base64url characters and a node id from 0 to BROKER_NODE_ID_MAX.
 * Parsing and formatting are pure; load and store go through struct io.
 */
#ifndef CHRONIK_BROKER_META_PROPERTIES_H
#define CHRONIK_BROKER_META_PROPERTIES_H

#include "base/buf.h"
#include "cluster/metadata.h"
#include "io/io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define META_PROPERTIES_NAME "meta.properties"

struct meta_properties {
    char cluster_id[META_CLUSTER_ID_CHARS + 1];
    int32_t node_id;
};

/* True for META_CLUSTER_ID_CHARS characters of base64url, the form of a Kafka cluster id. */
bool meta_properties_cluster_id_valid(const char *id);

/*
 * Parses the text of a meta.properties (len bytes): key=value lines, blank lines and #
 * comments skipped, keys Kafka adds that Chronik does not use (directory.id) ignored. Returns
 * 0, or ERR_CORRUPT with what is wrong in why (why_bytes bytes): a missing or bad version,
 * cluster.id or node.id, or a line that is not key=value. ERR_UNSUPPORTED for a version other
 * than 1 (0 is ZooKeeper mode's file).
 */
int meta_properties_parse(const char *text, size_t len, struct meta_properties *out, char *why,
                          size_t why_bytes);

/* Appends the file's text for p to out. */
void meta_properties_format(const struct meta_properties *p, struct buf *out);

/*
 * Reads dir/meta.properties. *found is false (and 0 returned) when the file does not exist.
 * Errors: -errno of a read, ERR_TOO_LARGE, or those of meta_properties_parse() with why.
 */
int meta_properties_load(struct io *io, const char *dir, struct meta_properties *out, bool *found,
                         char *why, size_t why_bytes);

/* Writes dir/meta.properties atomically: a temporary file, fsync, rename, fsync of dir. */
int meta_properties_store(struct io *io, const char *dir, const struct meta_properties *p);

#endif
