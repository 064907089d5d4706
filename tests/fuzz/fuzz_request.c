/*
 * libFuzzer target over the Kafka request decoder, every API and version.
 *
 * Input: int16 api key, int16 api version (big-endian), then the request body. A decode that
 * succeeds must re-encode, and decoding that encoding must give the same bytes again
 * (encode(decode(x)) is a fixed point), with size() equal to the encoded length. The broker
 * ignores bytes after a complete body, as Kafka does (issue 8 item 11), so they must not change
 * what the body means: the bytes a decode consumed, alone, decode to the same message. The
 * decode arena must never exceed PROTO_REQUEST_ARENA_MAX. Any violation aborts.
 */
#include "base/arena.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/limits.h"
#include "proto/gen/kafka.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The codec is table-driven, so branch coverage alone cannot tell one API or version from
 * another. These extra libFuzzer counters, one per (api key, version, outcome, log2 of the bytes
 * consumed), make reaching a new message shape or a deeper parse a new feature worth keeping.
 */
#define FUZZ_VERSIONS 32
#define FUZZ_OUTCOMES 5
#define FUZZ_DEPTHS   16
#define FUZZ_COUNTERS (PROTO_API_COUNT * FUZZ_VERSIONS * FUZZ_OUTCOMES * FUZZ_DEPTHS)
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t extra_counters[FUZZ_COUNTERS];

static void count_outcome(int16_t api_key, int16_t version, int err, size_t consumed)
{
    size_t outcome = err == 0                ? 0
                     : err == ERR_INCOMPLETE ? 1
                     : err == ERR_CORRUPT    ? 2
                     : err == ERR_TOO_LARGE  ? 3
                                             : 4;
    size_t depth = 0;
    while (consumed > 0 && depth < FUZZ_DEPTHS - 1) {
        consumed >>= 1;
        depth++;
    }
    size_t v = (size_t)(uint16_t)version % FUZZ_VERSIONS;
    size_t i =
        (((size_t)api_key * FUZZ_VERSIONS + v) * FUZZ_OUTCOMES + outcome) * FUZZ_DEPTHS + depth;
    ASSERT(i < FUZZ_COUNTERS);
    extra_counters[i]++;
}

/* Large enough for any generated message struct. */
static _Alignas(max_align_t) uint8_t first_msg[64 * 1024];
static _Alignas(max_align_t) uint8_t second_msg[64 * 1024];
static _Alignas(max_align_t) uint8_t body_msg[64 * 1024];

static void check_reencode(const struct proto_message *m, int16_t version, struct arena *a)
{
    struct buf first, second;
    buf_init(&first);
    buf_init(&second);
    ASSERT(proto_encode(m, first_msg, version, &first) == 0);
    ASSERT(proto_size(m, first_msg, version) == (int64_t)first.len);
    struct reader r;
    rd_init(&r, first.data, first.len);
    ASSERT(proto_decode(m, a, &r, version, second_msg) == 0);
    ASSERT(rd_left(&r) == 0);
    ASSERT(arena_used(a) <= PROTO_REQUEST_ARENA_MAX);
    ASSERT(proto_encode(m, second_msg, version, &second) == 0);
    ASSERT(slice_eq(buf_slice(&first), buf_slice(&second)));
    buf_deinit(&second);
    buf_deinit(&first);
}

/* The consumed bytes alone decode completely, to a message that encodes like the first. */
static void check_body_alone(const struct proto_message *m, int16_t version, struct arena *a,
                             const uint8_t *body, size_t len)
{
    arena_reset(a);
    struct reader r;
    rd_init(&r, body, len);
    ASSERT(proto_decode(m, a, &r, version, body_msg) == 0);
    ASSERT(rd_left(&r) == 0);
    struct buf first, alone;
    buf_init(&first);
    buf_init(&alone);
    ASSERT(proto_encode(m, first_msg, version, &first) == 0);
    ASSERT(proto_encode(m, body_msg, version, &alone) == 0);
    ASSERT(slice_eq(buf_slice(&first), buf_slice(&alone)));
    buf_deinit(&alone);
    buf_deinit(&first);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct arena arena;
    static struct arena body_arena;
    static bool ready;
    if (!ready) {
        arena_init(&arena, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
        arena_init(&body_arena, ARENA_BLOCK_BYTES_DEFAULT, PROTO_REQUEST_ARENA_MAX);
        ready = true;
    }
    if (size < 4)
        return 0;
    int16_t api_key = (int16_t)be16_load(data);
    int16_t version = (int16_t)be16_load(data + 2);
    const struct proto_api *api = proto_api_get(api_key);
    if (api == NULL)
        return 0;
    const struct proto_message *m = api->request;
    ASSERT(m->body->bytes <= sizeof(first_msg));
    arena_reset(&arena);
    struct reader r;
    rd_init(&r, data + 4, size - 4);
    int err = proto_decode(m, &arena, &r, version, first_msg);
    count_outcome(api_key, version, err, (size_t)(r.pos - (data + 4)));
    ASSERT(arena_used(&arena) <= PROTO_REQUEST_ARENA_MAX);
    ASSERT(err == 0 || err == ERR_INCOMPLETE || err == ERR_CORRUPT || err == ERR_TOO_LARGE ||
           err == ERR_UNSUPPORTED);
    if (err == ERR_UNSUPPORTED)
        ASSERT(version < m->version_min || version > m->version_max);
    if (err == 0) {
        check_reencode(m, version, &arena);
        check_body_alone(m, version, &body_arena, data + 4, (size_t)(r.pos - (data + 4)));
    }
    return 0;
}
