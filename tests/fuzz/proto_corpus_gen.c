/*
 * Writes the seed corpus for fuzz_request: for every API and request version, a few encoded
 * random requests, plus every golden request frame and the client frames with bytes after their
 * body (TRAILING_DIR), each as api key, version (int16 BE) and body. Usage: proto_corpus_gen DIR
 * [SEED]. Files are named by content so reruns are stable.
 */
#include "../unit/proto/golden.h"
#include "../unit/proto/proto_fill.h"

#include "base/error.h"
#include "base/limits.h"
#include "proto/gen/kafka.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CORPUS_SEEDS_PER_VERSION 3

static int write_entry(const char *dir, int16_t key, int16_t version, const uint8_t *body,
                       size_t len)
{
    uint8_t prefix[4];
    be16_store(prefix, (uint16_t)key);
    be16_store(prefix + 2, (uint16_t)version);
    /* FNV-1a over the whole entry names the file. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < 4 + len; i++) {
        h ^= i < 4 ? prefix[i] : body[i - 4];
        h *= 0x100000001b3ull;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/k%02d-v%02d-%016llx", dir, key, version,
             (unsigned long long)h);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -errno;
    int err = 0;
    if (fwrite(prefix, 1, 4, f) != 4 || (len > 0 && fwrite(body, 1, len, f) != len))
        err = -EIO;
    if (fclose(f) != 0 && err == 0)
        err = -errno;
    return err;
}

static int write_random(const char *dir, uint64_t seed)
{
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    struct buf b;
    buf_init(&b);
    int err = 0;
    for (size_t k = 0; k < PROTO_API_COUNT && err == 0; k++) {
        const struct proto_message *m = proto_apis[k].request;
        void *msg = calloc(1, m->body->bytes);
        for (int16_t v = m->version_min; v <= m->version_max && err == 0; v++) {
            for (unsigned s = 0; s < CORPUS_SEEDS_PER_VERSION && err == 0; s++) {
                struct rng rng;
                rng_seed(&rng, seed ^ (k << 32) ^ ((uint64_t)v << 16) ^ s);
                arena_reset(&a);
                buf_reset(&b);
                err = proto_fill_random(m, &rng, &a, v, msg);
                if (err == 0)
                    err = proto_encode(m, msg, v, &b);
                if (err == 0)
                    err = write_entry(dir, (int16_t)k, v, b.data, b.len);
            }
        }
        free(msg);
    }
    buf_deinit(&b);
    arena_deinit(&a);
    return err;
}

static int write_golden(const char *dir)
{
    for (size_t i = 0; i < golden_frame_count; i++) {
        const struct golden_frame *g = &golden_frames[i];
        if (g->response)
            continue;
        uint8_t *bytes;
        size_t len;
        int err = golden_load(g->path, &bytes, &len);
        if (err != 0)
            return err;
        /* Flexible files start with the header's tagged-field byte; the body follows it. */
        size_t skip = proto_request_header_version(g->api_key, g->api_version) == 2 ? 1 : 0;
        if (len >= skip)
            err = write_entry(dir, g->api_key, g->api_version, bytes + skip, len - skip);
        free(bytes);
        if (err != 0)
            return err;
    }
    return 0;
}

/* The largest frame file read; the captures are a few dozen bytes. */
#define TRAILING_FILE_BYTES_MAX 4096u

/* Reads a whole binary file into a new buffer the caller frees. */
static int read_binary(const char *path, uint8_t **out, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    uint8_t *bytes = malloc(TRAILING_FILE_BYTES_MAX + 1);
    size_t len = bytes != NULL ? fread(bytes, 1, TRAILING_FILE_BYTES_MAX + 1, f) : 0;
    int err = bytes == NULL                   ? -ENOMEM
              : ferror(f)                     ? -EIO
              : len > TRAILING_FILE_BYTES_MAX ? ERR_TOO_LARGE
                                              : 0;
    fclose(f);
    if (err != 0) {
        free(bytes);
        return err;
    }
    *out = bytes;
    *len_out = len;
    return 0;
}

/* librdkafka's requests with bytes after the body (issue 8 item 11), their header cut off. */
static int write_trailing(const char *dir)
{
    static const char *const files[] = {"list_groups_v4.bin", "offset_fetch_v7.bin"};
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    int err = 0;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && err == 0; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/librdkafka/%s", TRAILING_DIR, files[i]);
        uint8_t *bytes;
        size_t len;
        err = read_binary(path, &bytes, &len);
        if (err != 0)
            break;
        err = len < 4 ? ERR_CORRUPT : 0;
        int16_t key = err == 0 ? (int16_t)be16_load(bytes) : 0;
        int16_t version = err == 0 ? (int16_t)be16_load(bytes + 2) : 0;
        int hv = err == 0 ? proto_request_header_version(key, version) : ERR_CORRUPT;
        struct reader r;
        rd_init(&r, bytes, len);
        struct kafka_request_header h;
        arena_reset(&a);
        err = hv < 0 ? hv : kafka_request_header_decode(&a, &r, (int16_t)hv, &h);
        if (err == 0)
            err = write_entry(dir, key, version, r.pos, rd_left(&r));
        free(bytes);
    }
    arena_deinit(&a);
    return err;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s DIR [SEED]\n", argv[0]);
        return 2;
    }
    uint64_t seed = argc == 3 ? strtoull(argv[2], NULL, 0) : 0xc0de;
    if (mkdir(argv[1], 0777) != 0 && errno != EEXIST) {
        perror(argv[1]);
        return 1;
    }
    int err = write_random(argv[1], seed);
    if (err == 0)
        err = write_golden(argv[1]);
    if (err == 0)
        err = write_trailing(argv[1]);
    if (err != 0) {
        fprintf(stderr, "proto_corpus_gen: %s\n", err_str(err));
        return 1;
    }
    printf("corpus written to %s (seed 0x%llx)\n", argv[1], (unsigned long long)seed);
    return 0;
}
