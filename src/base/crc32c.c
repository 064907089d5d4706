/*
 * CRC-32C: slicing-by-8 tables for the portable path, the SSE4.2 crc32 instruction over three
 * streams at once for the fast one. Reflected polynomial 0x82F63B78, initial value and final XOR
 * 0xFFFFFFFF.
 */
#include "base/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static uint32_t (*update_fn)(uint32_t, const void *, size_t);
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

bool crc32c_hw_available(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("sse4.2");
#else
    return false;
#endif
}

static void init(void);

/* The raw register (no inversion) carried over n bytes, eight at a time by the slicing tables. */
static uint32_t sw_raw(uint32_t c, const uint8_t *b, size_t n)
{
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        w ^= c; /* little-endian: the register lines up with the first four bytes */
        c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
            table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
            table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        b += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = (c >> 8) ^ table[0][(c ^ *b++) & 0xff];
    return c;
}

static uint32_t update_sw(uint32_t crc, const void *p, size_t n)
{
    return ~sw_raw(~crc, p, n);
}

uint32_t crc32c_update_sw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&init_once, init);
    return update_sw(crc, p, n);
}

#if defined(__x86_64__)
/* One crc32 instruction takes three cycles, but a new one can start every cycle: three streams
 * over adjacent thirds of a block run about three times as fast as one. The register of the
 * first third is then carried over the length of the second (multiplying by x^(8 * length)
 * modulo the polynomial is linear in the register, so four table lookups do it) and the
 * second's register is XORed in; the same again for the third. Long blocks serve big batches,
 * short ones what is left of them and small batches. */
#define LONG_BYTES  8192
#define SHORT_BYTES 256

static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];

static uint32_t shift_apply(const uint32_t t[4][256], uint32_t c)
{
    return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

/* t[k][b]: the raw register (b << 8k) carried over len zero bytes (a multiple of SHORT_BYTES).
 * Each one-bit register is carried by the table code; the other values follow by linearity. */
static void init_shift(uint32_t t[4][256], size_t len)
{
    static const uint8_t zeros[SHORT_BYTES];
    uint32_t bit_image[32];
    for (int i = 0; i < 32; i++) {
        uint32_t c = 1u << i;
        for (size_t n = 0; n < len; n += sizeof(zeros))
            c = sw_raw(c, zeros, sizeof(zeros));
        bit_image[i] = c;
    }
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int i = 0; i < 8; i++)
                if (b & (1u << i))
                    v ^= bit_image[8 * k + i];
            t[k][b] = v;
        }
}

static void init_hw(void)
{
    init_shift(shift_long, LONG_BYTES);
    init_shift(shift_short, SHORT_BYTES);
}

/* Consumes whole groups of three blocks from *pb, *pn, continuing register c. */
__attribute__((target("sse4.2"))) static uint64_t
three_way(const uint32_t t[4][256], size_t block, uint64_t c, const uint8_t **pb, size_t *pn)
{
    const uint8_t *b = *pb;
    size_t n = *pn;
    while (n >= 3 * block) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = b + block;
        do {
            uint64_t w0, w1, w2;
            memcpy(&w0, b, 8);
            memcpy(&w1, b + block, 8);
            memcpy(&w2, b + 2 * block, 8);
            c = _mm_crc32_u64(c, w0);
            c1 = _mm_crc32_u64(c1, w1);
            c2 = _mm_crc32_u64(c2, w2);
            b += 8;
        } while (b < end);
        c = shift_apply(t, (uint32_t)c) ^ (uint32_t)c1;
        c = shift_apply(t, (uint32_t)c) ^ (uint32_t)c2;
        b += 2 * block;
        n -= 3 * block;
    }
    *pb = b;
    *pn = n;
    return c;
}

__attribute__((target("sse4.2"))) static uint32_t update_hw(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t c = ~crc;
    while (n > 0 && ((uintptr_t)b & 7) != 0) {
        c = _mm_crc32_u8((uint32_t)c, *b++);
        n--;
    }
    c = three_way(shift_long, LONG_BYTES, c, &b, &n);
    c = three_way(shift_short, SHORT_BYTES, c, &b, &n);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        c = _mm_crc32_u64(c, w);
        b += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = _mm_crc32_u8((uint32_t)c, *b++);
    return ~(uint32_t)c;
}
#else
static void init_hw(void) {}

static uint32_t update_hw(uint32_t crc, const void *p, size_t n)
{
    return update_sw(crc, p, n);
}
#endif

/* The tables are built once, by whichever entry point runs first. */
static void init(void)
{
    init_tables();
    bool hw = crc32c_hw_available();
    if (hw)
        init_hw();
    update_fn = hw ? update_hw : update_sw;
}

uint32_t crc32c_update_hw(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&init_once, init);
    return update_hw(crc, p, n);
}

uint32_t crc32c_update(uint32_t crc, const void *p, size_t n)
{
    pthread_once(&init_once, init);
    return update_fn(crc, p, n);
}
