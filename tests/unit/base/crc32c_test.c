/*
 * base/crc32c.h: the RFC 3720 appendix B.4 vectors and "123456789" through the table code, the
 * SSE4.2 code (when the CPU has it) and the dispatcher; hardware against table on random data of
 * random length and alignment and at the hardware code's block edges; chained updates equal one
 * pass.
 *
 * The random comparisons print their seed; set BASE_TEST_SEED to replay one.
 */
#include "base/crc32c.h"
#include "base/rand.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef uint32_t (*crc_fn)(uint32_t crc, const void *p, size_t n);

struct vector {
    uint8_t data[48];
    size_t len;
    uint32_t crc;
};

static struct vector vectors[6];

static uint64_t test_seed(void)
{
    const char *env = getenv("BASE_TEST_SEED");
    uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : 0xc5c;
    printf("BASE_TEST_SEED=%" PRIu64 "\n", seed);
    return seed;
}

static int setup_vectors(void **state)
{
    (void)state;
    /* RFC 3720 B.4: 32 bytes of zeros, of 0xFF, ascending, descending, and an iSCSI SCSI read
     * (10) command PDU. */
    memset(vectors[0].data, 0x00, 32);
    vectors[0].len = 32;
    vectors[0].crc = 0x8A9136AA;
    memset(vectors[1].data, 0xFF, 32);
    vectors[1].len = 32;
    vectors[1].crc = 0x62A8AB43;
    for (int i = 0; i < 32; i++) {
        vectors[2].data[i] = (uint8_t)i;
        vectors[3].data[i] = (uint8_t)(31 - i);
    }
    vectors[2].len = 32;
    vectors[2].crc = 0x46DD794E;
    vectors[3].len = 32;
    vectors[3].crc = 0x113FDB5C;
    const uint8_t pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, /* opcode SCSI command, flags F and R */
        0x00, 0x00, 0x00, 0x00, /* AHS and data segment lengths */
        0x00, 0x00, 0x00, 0x00, /* LUN */
        0x00, 0x00, 0x00, 0x00, /* LUN (continued) */
        0x14, 0x00, 0x00, 0x00, /* initiator task tag */
        0x00, 0x00, 0x04, 0x00, /* expected data transfer length */
        0x00, 0x00, 0x00, 0x14, /* CmdSN */
        0x00, 0x00, 0x00, 0x18, /* ExpStatSN */
        0x28, 0x00, 0x00, 0x00, /* CDB: READ (10) */
        0x00, 0x00, 0x00, 0x00, /* CDB (continued) */
        0x02, 0x00, 0x00, 0x00, /* CDB (continued) */
        0x00, 0x00, 0x00, 0x00, /* CDB (continued) */
    };
    memcpy(vectors[4].data, pdu, sizeof(pdu));
    vectors[4].len = 48;
    vectors[4].crc = 0xD9963A56;
    memcpy(vectors[5].data, "123456789", 9);
    vectors[5].len = 9;
    vectors[5].crc = 0xE3069283;
    return 0;
}

static void check_vectors(crc_fn fn)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        assert_int_equal(fn(0, vectors[i].data, vectors[i].len), vectors[i].crc);
        /* Misaligned copies give the same result. */
        uint8_t buf[64];
        for (size_t shift = 1; shift < 8; shift++) {
            memcpy(buf + shift, vectors[i].data, vectors[i].len);
            assert_int_equal(fn(0, buf + shift, vectors[i].len), vectors[i].crc);
        }
    }
    assert_int_equal(fn(0, "", 0), 0);
    assert_int_equal(fn(0x12345678, "", 0), 0x12345678);
}

static void test_vectors_sw(void **state)
{
    (void)state;
    check_vectors(crc32c_update_sw);
}

static void test_vectors_hw(void **state)
{
    (void)state;
    if (!crc32c_hw_available()) {
        printf("no SSE4.2: the dispatcher must use the table code\n");
        assert_int_equal(crc32c(vectors[5].data, 9), crc32c_update_sw(0, vectors[5].data, 9));
        return;
    }
    check_vectors(crc32c_update_hw);
}

static void test_vectors_dispatch(void **state)
{
    (void)state;
    check_vectors(crc32c_update);
    assert_int_equal(crc32c("123456789", 9), 0xE3069283);
}

/* Lengths around the hardware code's block edges: it runs three streams over groups of three
 * 8 KiB blocks, then of three 256-byte blocks, then one stream. A wrong carry of one stream's
 * register over the next block, or a group taken or left one byte off, breaks these. */
static const size_t edge_lengths[] = {
    0,
    7,
    8,
    3 * 256 - 1,
    3 * 256,
    3 * 256 + 1,
    6 * 256 + 5,
    3 * 8192 - 1,
    3 * 8192,
    3 * 8192 + 1,
    3 * 8192 + 3 * 256 + 7,
    6 * 8192,
    6 * 8192 + 6 * 256 - 1,
};

#define RANDOM_BYTES_MAX (7 * 8192)

static void test_hw_matches_sw_random(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, test_seed());
    static uint8_t buf[RANDOM_BYTES_MAX + 16];
    rng_fill(&rng, buf, sizeof(buf));
    for (int i = 0; i < 2000; i++) {
        size_t off = (size_t)rng_below(&rng, 16);
        size_t len = i < 1000 ? (size_t)rng_below(&rng, 8193)
                              : (size_t)rng_below(&rng, RANDOM_BYTES_MAX + 1);
        uint32_t seed_crc = (uint32_t)rng_next(&rng);
        uint32_t sw = crc32c_update_sw(seed_crc, buf + off, len);
        assert_int_equal(crc32c_update(seed_crc, buf + off, len), sw);
        if (crc32c_hw_available())
            assert_int_equal(crc32c_update_hw(seed_crc, buf + off, len), sw);
    }
    for (size_t i = 0; i < sizeof(edge_lengths) / sizeof(edge_lengths[0]); i++)
        for (size_t off = 0; off < 16; off += 5) {
            size_t len = edge_lengths[i];
            uint32_t sw = crc32c_update_sw(0, buf + off, len);
            assert_int_equal(crc32c_update(0, buf + off, len), sw);
            if (crc32c_hw_available())
                assert_int_equal(crc32c_update_hw(0, buf + off, len), sw);
        }
}

static void test_chaining(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, test_seed());
    static uint8_t buf[4096];
    rng_fill(&rng, buf, sizeof(buf));
    crc_fn fns[3] = {crc32c_update_sw, crc32c_update, crc32c_update_sw};
    if (crc32c_hw_available())
        fns[2] = crc32c_update_hw;
    for (size_t f = 0; f < 3; f++) {
        uint32_t whole = fns[f](0, buf, sizeof(buf));
        for (int i = 0; i < 200; i++) {
            size_t a = (size_t)rng_below(&rng, sizeof(buf) + 1);
            size_t b = a + (size_t)rng_below(&rng, sizeof(buf) - a + 1);
            uint32_t c = fns[f](0, buf, a);
            c = fns[f](c, buf + a, b - a);
            c = fns[f](c, buf + b, sizeof(buf) - b);
            assert_int_equal(c, whole);
        }
        /* One byte at a time. */
        uint32_t c = 0;
        for (size_t i = 0; i < sizeof(buf); i++)
            c = fns[f](c, buf + i, 1);
        assert_int_equal(c, whole);
    }
    /* A changed bit changes the checksum. */
    uint32_t before = crc32c(buf, sizeof(buf));
    buf[1000] ^= 0x10;
    assert_int_not_equal(crc32c(buf, sizeof(buf)), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_sw),       cmocka_unit_test(test_vectors_hw),
        cmocka_unit_test(test_vectors_dispatch), cmocka_unit_test(test_hw_matches_sw_random),
        cmocka_unit_test(test_chaining),
    };
    return cmocka_run_group_tests_name("base_crc32c", tests, setup_vectors, NULL);
}
