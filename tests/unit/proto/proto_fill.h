/*
 * Random message values for codec tests and the fuzz seed corpus: fills any generated message
 * struct from its descriptor, valid for one version (present fields only, null only where the
 * version allows it, strings within bounds). All memory comes from the caller's arena, which
 * owns the result.
 */
#ifndef CHRONIK_TESTS_PROTO_FILL_H
#define CHRONIK_TESTS_PROTO_FILL_H

#include "base/arena.h"
#include "base/rand.h"
#include "proto/proto.h"

/* Fills out (a struct of m->body->bytes) with random values for version; 0 or ERR_TOO_LARGE. */
int proto_fill_random(const struct proto_message *m, struct rng *rng, struct arena *a,
                      int16_t version, void *out);

/* The seed from the environment variable name if set (decimal or 0x hex), else fallback. */
uint64_t proto_test_seed(const char *name, uint64_t fallback);

#endif
