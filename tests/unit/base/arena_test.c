/*
 * base/arena.h: 16-byte alignment, the byte limit (NULL exactly when an allocation would pass
 * it), reset keeping one block and reusing it, oversized allocations that leave the current
 * block serving small ones, calloc overflow and zero fill, and strndup.
 */
#include "base/arena.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_alignment_and_no_overlap(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 256, 1u << 20);
    uint8_t *ptrs[200];
    size_t sizes[200];
    for (size_t i = 0; i < 200; i++) {
        sizes[i] = (i * 37) % 61; /* 0..60, odd sizes included */
        ptrs[i] = arena_alloc(&a, sizes[i]);
        assert_non_null(ptrs[i]);
        assert_int_equal((uintptr_t)ptrs[i] % 16, 0);
        memset(ptrs[i], (int)i, sizes[i]);
    }
    for (size_t i = 0; i < 200; i++)
        for (size_t k = 0; k < sizes[i]; k++)
            assert_int_equal(ptrs[i][k], (uint8_t)i);
    arena_deinit(&a);
}

static void test_limit_exact(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 64, 256);
    for (int i = 0; i < 16; i++)
        assert_non_null(arena_alloc(&a, 16));
    assert_int_equal(arena_used(&a), 256);
    assert_null(arena_alloc(&a, 1));
    /* Zero bytes still fit at the limit. */
    assert_non_null(arena_alloc(&a, 0));
    assert_int_equal(arena_used(&a), 256);
    arena_deinit(&a);

    /* Sizes count rounded up to 16: 17 bytes take 32. */
    arena_init(&a, 64, 100);
    assert_non_null(arena_alloc(&a, 17));
    assert_int_equal(arena_used(&a), 32);
    assert_non_null(arena_alloc(&a, 64));
    assert_int_equal(arena_used(&a), 96);
    assert_null(arena_alloc(&a, 1)); /* 96 + 16 > 100 */
    assert_int_equal(arena_used(&a), 96);
    assert_null(arena_alloc(&a, SIZE_MAX));
    assert_null(arena_alloc(&a, SIZE_MAX - 8)); /* rounding would wrap */
    arena_deinit(&a);
}

static void test_reset_reuses_one_block(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 128, 1u << 20);
    void *first = arena_alloc(&a, 16);
    arena_reset(&a);
    assert_int_equal(arena_used(&a), 0);
    assert_ptr_equal(arena_alloc(&a, 16), first);

    /* With several blocks, the first allocation after a reset lands in memory handed out
     * before, and the arena can be filled again up to its limit. */
    void *seen[64];
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        seen[n++] = arena_alloc(&a, 16);
    arena_reset(&a);
    void *p = arena_alloc(&a, 16);
    bool reused = false;
    for (size_t i = 0; i < n; i++)
        reused |= seen[i] == p;
    assert_true(reused);
    arena_deinit(&a);
}

static void test_oversized(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 64, 1u << 20);
    uint8_t *p1 = arena_alloc(&a, 16);
    uint8_t *big = arena_alloc(&a, 1000);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 16, 0);
    memset(big, 0xee, 1000);
    /* The ordinary block keeps serving small allocations after the oversized one. */
    uint8_t *p2 = arena_alloc(&a, 16);
    assert_ptr_equal(p2, p1 + 16);
    assert_int_equal(arena_used(&a), 16 + 1008 + 16);
    /* An oversized allocation on an empty arena works too, and a reset drops it. */
    arena_reset(&a);
    assert_ptr_equal(arena_alloc(&a, 16), p1);
    arena_deinit(&a);
    arena_init(&a, 64, 1u << 20);
    assert_non_null(arena_alloc(&a, 5000));
    assert_non_null(arena_alloc(&a, 16));
    arena_reset(&a);
    assert_non_null(arena_alloc(&a, 16));
    arena_deinit(&a);
}

static void test_calloc_and_zalloc(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 256, 1u << 20);
    uint8_t *dirty = arena_alloc(&a, 200);
    memset(dirty, 0xff, 200);
    arena_reset(&a);
    /* The reused block held 0xff; calloc must still hand out zeros. */
    uint32_t *z = arena_calloc(&a, 50, sizeof(uint32_t));
    assert_ptr_equal(z, dirty);
    for (int i = 0; i < 50; i++)
        assert_int_equal(z[i], 0);
    arena_reset(&a);
    memset(arena_alloc(&a, 100), 0xff, 100);
    arena_reset(&a);
    uint8_t *zz = arena_zalloc(&a, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(zz[i], 0);
    assert_null(arena_calloc(&a, SIZE_MAX / 2, 4));
    assert_null(arena_calloc(&a, 4, SIZE_MAX / 2));
    assert_non_null(arena_calloc(&a, 0, SIZE_MAX));
    arena_deinit(&a);
}

static void test_strndup(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 64, 64);
    char *s = arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    char *e = arena_strndup(&a, "", 0);
    assert_string_equal(e, "");
    assert_null(arena_strndup(&a, "x", SIZE_MAX));
    /* 5 + 1 and 0 + 1 took 32 bytes; 32 more fit, 33 do not. */
    assert_null(arena_strndup(&a, "0123456789012345678901234567890123456789", 32));
    assert_non_null(arena_strndup(&a, "0123456789012345678901234567890123456789", 31));
    arena_deinit(&a);
}

static void meter_add(void *ctx, size_t bytes)
{
    *(size_t *)ctx += bytes;
}

/* The meter sees every block the arena takes from the heap, ordinary and oversized, and nothing
 * for allocations served from a block it already has. */
static void test_meter_counts_blocks(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1024, 1 << 20);
    size_t metered = 0;
    arena_set_meter(&a, meter_add, &metered);
    assert_non_null(arena_alloc(&a, 16));
    size_t first = metered;
    assert_true(first >= 1024 && first < 1024 + 128);
    assert_non_null(arena_alloc(&a, 16));
    assert_int_equal(metered, first);
    assert_non_null(arena_alloc(&a, 5000));
    assert_true(metered >= first + 5000 && metered < first + 5000 + 128);
    assert_null(arena_alloc(&a, 2 << 20)); /* over the limit: refused, nothing taken */
    assert_true(metered < first + 5000 + 128);
    arena_deinit(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_no_overlap), cmocka_unit_test(test_limit_exact),
        cmocka_unit_test(test_reset_reuses_one_block),   cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_calloc_and_zalloc),        cmocka_unit_test(test_strndup),
        cmocka_unit_test(test_meter_counts_blocks),
    };
    return cmocka_run_group_tests_name("base_arena", tests, NULL, NULL);
}
