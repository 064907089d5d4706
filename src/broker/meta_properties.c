/*
 * meta.properties (see meta_properties.h): Kafka's text format, which Java's Properties.store
 * writes as key=value lines after '#' comment lines. Only the subset Kafka itself writes is
 * read (no escapes, no continuation lines): the file is ours or Kafka's, never hand-written
 * with Java's full syntax.
 *
 * It must never trust the file: everything in it comes from the disk and is validated.
 */
#include "broker/meta_properties.h"

#include "base/alloc.h"
#include "base/assert.h"
#include "base/error.h"
#include "base/limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest key or value kept from one line; longer ones are not Kafka's and are refused. */
#define FIELD_BYTES_MAX 128u

bool meta_properties_cluster_id_valid(const char *id)
{
    size_t n = 0;
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return n == META_CLUSTER_ID_CHARS;
}

static bool parse_node_id(const char *s, int32_t *out)
{
    int64_t v = 0;
    if (s[0] == '\0')
        return false;
    for (const char *c = s; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (*c - '0');
        if (v > BROKER_NODE_ID_MAX)
            return false;
    }
    *out = (int32_t)v;
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t' || **s == '\r')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r'))
        (*n)--;
}

int meta_properties_parse(const char *text, size_t len, struct meta_properties *out, char *why,
                          size_t why_bytes)
{
    ASSERT(text != NULL || len == 0);
    bool have_version = false;
    bool have_cluster = false;
    bool have_node = false;
    int32_t version = -1;
    size_t pos = 0;
    memset(out, 0, sizeof(*out));
    for (uint32_t line = 1; pos < len; line++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        const char *s = text + pos;
        size_t n = end - pos;
        pos = end + 1;
        trim(&s, &n);
        if (n == 0 || s[0] == '#' || s[0] == '!')
            continue;
        const char *eq = memchr(s, '=', n);
        if (eq == NULL) {
            snprintf(why, why_bytes, "line %u is not key=value", line);
            return ERR_CORRUPT;
        }
        const char *k = s;
        size_t kn = (size_t)(eq - s);
        const char *v = eq + 1;
        size_t vn = n - kn - 1;
        trim(&k, &kn);
        trim(&v, &vn);
        char key[FIELD_BYTES_MAX];
        char value[FIELD_BYTES_MAX];
        if (kn >= sizeof(key) || vn >= sizeof(value) || memchr(s, '\0', n) != NULL) {
            snprintf(why, why_bytes, "line %u is too long or holds a NUL byte", line);
            return ERR_CORRUPT;
        }
        memcpy(key, k, kn);
        key[kn] = '\0';
        memcpy(value, v, vn);
        value[vn] = '\0';
        if (strcmp(key, "version") == 0) {
            if (!parse_node_id(value, &version)) {
                snprintf(why, why_bytes, "version '%s' is not a number", value);
                return ERR_CORRUPT;
            }
            have_version = true;
        } else if (strcmp(key, "cluster.id") == 0) {
            if (!meta_properties_cluster_id_valid(value)) {
                snprintf(why, why_bytes, "cluster.id '%s' is not %d base64url characters", value,
                         META_CLUSTER_ID_CHARS);
                return ERR_CORRUPT;
            }
            memcpy(out->cluster_id, value, META_CLUSTER_ID_CHARS + 1);
            have_cluster = true;
        } else if (strcmp(key, "node.id") == 0) {
            if (!parse_node_id(value, &out->node_id)) {
                snprintf(why, why_bytes, "node.id '%s' is not an integer from 0 to %d", value,
                         (int)BROKER_NODE_ID_MAX);
                return ERR_CORRUPT;
            }
            have_node = true;
        }
    }
    if (!have_version) {
        snprintf(why, why_bytes, "no version");
        return ERR_CORRUPT;
    }
    if (version != 1) {
        snprintf(why, why_bytes,
                 "version %d is not 1 (Kafka's KRaft format), the one Chronik reads", (int)version);
        return ERR_UNSUPPORTED;
    }
    if (!have_cluster || !have_node) {
        snprintf(why, why_bytes, "no %s", !have_cluster ? "cluster.id" : "node.id");
        return ERR_CORRUPT;
    }
    return 0;
}

void meta_properties_format(const struct meta_properties *p, struct buf *out)
{
    ASSERT(meta_properties_cluster_id_valid(p->cluster_id));
    ASSERT(p->node_id >= 0);
    char text[256];
    int n = snprintf(text, sizeof(text),
                     "#\n#Written by Chronik: the cluster and node this data directory belongs "
                     "to.\nversion=1\ncluster.id=%s\nnode.id=%d\n",
                     p->cluster_id, (int)p->node_id);
    ASSERT(n > 0 && (size_t)n < sizeof(text));
    buf_append(out, text, (size_t)n);
}

static int path_of(const char *dir, const char *suffix, char *out, size_t out_bytes)
{
    int n = snprintf(out, out_bytes, "%s/" META_PROPERTIES_NAME "%s", dir, suffix);
    return n > 0 && (size_t)n < out_bytes ? 0 : -ENAMETOOLONG;
}

int meta_properties_load(struct io *io, const char *dir, struct meta_properties *out, bool *found,
                         char *why, size_t why_bytes)
{
    char path[IO_PATH_BYTES_MAX];
    struct io_file *f = NULL;
    char *text = NULL;
    uint64_t size = 0;
    *found = false;
    int rc = path_of(dir, "", path, sizeof(path));
    if (rc < 0)
        return rc;
    rc = io_open(io, path, IO_RDONLY, &f);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    *found = true;
    rc = io_size(f, &size);
    if (rc < 0)
        goto out;
    if (size > BROKER_META_PROPERTIES_BYTES_MAX) {
        snprintf(why, why_bytes, "larger than %u bytes", BROKER_META_PROPERTIES_BYTES_MAX);
        rc = ERR_TOO_LARGE;
        goto out;
    }
    text = xmalloc((size_t)size + 1);
    ssize_t got = io_pread(f, text, (size_t)size, 0);
    if (got < 0) {
        rc = (int)got;
        goto out;
    }
    rc = meta_properties_parse(text, (size_t)got, out, why, why_bytes);
out:
    free(text);
    io_close(f);
    return rc;
}

int meta_properties_store(struct io *io, const char *dir, const struct meta_properties *p)
{
    char path[IO_PATH_BYTES_MAX];
    char tmp[IO_PATH_BYTES_MAX];
    struct io_file *f = NULL;
    struct buf b;
    int rc = path_of(dir, "", path, sizeof(path));
    if (rc == 0)
        rc = path_of(dir, ".tmp", tmp, sizeof(tmp));
    if (rc < 0)
        return rc;
    buf_init(&b);
    meta_properties_format(p, &b);
    rc = io_open(io, tmp, IO_RDWR | IO_CREATE, &f);
    if (rc < 0)
        goto out;
    rc = io_truncate(f, 0);
    if (rc == 0) {
        ssize_t w = io_pwrite(f, b.data, b.len, 0);
        rc = w < 0 ? (int)w : (size_t)w == b.len ? 0 : -EIO;
    }
    if (rc == 0)
        rc = io_sync(f);
    io_close(f);
    if (rc == 0)
        rc = io_rename(io, tmp, path);
    if (rc == 0)
        rc = io_sync_dir(io, dir);
out:
    buf_deinit(&b);
    return rc;
}
