/*
 * Every message (requests, responses, headers, data records) at every valid version, filled
 * with random values from several seeds: encode -> decode -> encode must give identical bytes,
 * size() must equal the encoded length, decode must consume exactly the encoding, and every
 * strict prefix of the encoding must fail with ERR_INCOMPLETE (never crash, never succeed).
 *
 * Seed: PROTO_TEST_SEED overrides the base seed; the seed of a failing case is printed.
 */
#include "proto_fill.h"

#include "base/error.h"
#include "base/limits.h"
#include "proto/gen/kafka.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#define SEEDS_PER_VERSION 16

static uint64_t base_seed;

static void report(const struct proto_message *m, int16_t version, uint64_t seed, const char *what)
{
    print_error("%s v%d seed 0x%llx: %s (replay with PROTO_TEST_SEED=0x%llx)\n", m->name, version,
                (unsigned long long)seed, what, (unsigned long long)base_seed);
}

/* Decodes every strict prefix of bytes; each must fail as incomplete. */
static void check_truncations(const struct proto_message *m, int16_t version, uint64_t seed,
                              struct slice bytes, struct arena *a, void *out)
{
    for (size_t cut = 0; cut < bytes.len; cut++) {
        arena_reset(a);
        struct reader r;
        rd_init(&r, bytes.ptr, cut);
        int err = proto_decode(m, a, &r, version, out);
        if (err != ERR_INCOMPLETE) {
            report(m, version, seed, "truncated frame did not fail as incomplete");
            print_error("cut at %zu of %zu: %d (%s)\n", cut, bytes.len, err, err_str(err));
            fail();
        }
    }
}

static void round_trip(const struct proto_message *m, int16_t version, uint64_t seed,
                       bool truncations)
{
    struct arena fill_arena, dec_arena;
    arena_init(&fill_arena, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    arena_init(&dec_arena, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    struct buf first, second;
    buf_init(&first);
    buf_init(&second);
    void *msg = test_calloc(1, m->body->bytes);
    void *decoded = test_calloc(1, m->body->bytes);

    struct rng rng;
    rng_seed(&rng, seed);
    assert_int_equal(proto_fill_random(m, &rng, &fill_arena, version, msg), 0);
    int err = proto_encode(m, msg, version, &first);
    if (err != 0)
        report(m, version, seed, "encode failed");
    assert_int_equal(err, 0);
    if (proto_size(m, msg, version) != (int64_t)first.len)
        report(m, version, seed, "size() differs from the encoded length");
    assert_int_equal(proto_size(m, msg, version), first.len);

    struct reader r;
    rd_init(&r, first.data, first.len);
    err = proto_decode(m, &dec_arena, &r, version, decoded);
    if (err != 0 || rd_left(&r) != 0)
        report(m, version, seed, "decode failed or left bytes");
    assert_int_equal(err, 0);
    assert_int_equal(rd_left(&r), 0);
    assert_true(arena_used(&dec_arena) <= PROTO_REQUEST_ARENA_MAX);

    assert_int_equal(proto_encode(m, decoded, version, &second), 0);
    if (!slice_eq(buf_slice(&first), buf_slice(&second)))
        report(m, version, seed, "re-encoding differs");
    assert_true(slice_eq(buf_slice(&first), buf_slice(&second)));
    assert_int_equal(proto_size(m, decoded, version), second.len);

    if (truncations)
        check_truncations(m, version, seed, buf_slice(&first), &dec_arena, decoded);

    test_free(decoded);
    test_free(msg);
    buf_deinit(&second);
    buf_deinit(&first);
    arena_deinit(&dec_arena);
    arena_deinit(&fill_arena);
}

static void test_every_message_every_version(void **state)
{
    (void)state;
    size_t cases = 0;
    for (size_t i = 0; i < PROTO_MESSAGE_COUNT; i++) {
        const struct proto_message *m = proto_messages[i];
        for (int16_t v = m->version_min; v <= m->version_max; v++) {
            for (unsigned s = 0; s < SEEDS_PER_VERSION; s++) {
                uint64_t seed = base_seed ^ ((uint64_t)i << 32) ^ ((uint64_t)v << 16) ^ s;
                round_trip(m, v, seed, s < 4);
                cases++;
            }
        }
    }
    /* 186 schemas with on average several versions each: guard against an empty table. */
    assert_true(cases > 1000);
}

/* A version outside validVersions is refused by decode, encode and size alike. */
static void test_unsupported_version(void **state)
{
    (void)state;
    struct kafka_produce_request req;
    kafka_produce_request_init(&req);
    struct buf b;
    buf_init(&b);
    const struct proto_api *api = proto_api_get(0);
    assert_non_null(api);
    int16_t bad = (int16_t)(api->version_max + 1);
    assert_int_equal(kafka_produce_request_encode(&req, bad, &b), ERR_UNSUPPORTED);
    assert_int_equal(kafka_produce_request_size(&req, bad), ERR_UNSUPPORTED);
    assert_int_equal(b.len, 0);
    struct arena a;
    arena_init(&a, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
    static const uint8_t bytes[16];
    struct reader r;
    rd_init(&r, bytes, sizeof(bytes));
    assert_int_equal(kafka_produce_request_decode(&a, &r, -1, &req), ERR_UNSUPPORTED);
    assert_int_equal(rd_left(&r), sizeof(bytes));
    arena_deinit(&a);
    buf_deinit(&b);
}

int main(void)
{
    base_seed = proto_test_seed("PROTO_TEST_SEED", 0x5eed0001);
    printf("proto round-trip seed 0x%llx (override with PROTO_TEST_SEED)\n",
           (unsigned long long)base_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_message_every_version),
        cmocka_unit_test(test_unsupported_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
