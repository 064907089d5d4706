/*
 * Tests for the metadata image: validation, changes, and the atomic file on a simulated disk
 * (corruption and a crash at every write boundary of a save).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/rand.h"
#include "cluster/metadata.h"
#include "io/io_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct meta_uuid uuid_n(uint8_t n)
{
    struct meta_uuid id;
    memset(&id, 0, sizeof(id));
    id.b[15] = n;
    id.b[0] = 0xAB;
    return id;
}

static void test_topic_names(void **state)
{
    (void)state;
    char long_name[META_TOPIC_NAME_BYTES_MAX + 2];
    memset(long_name, 'a', sizeof(long_name));
    assert_true(meta_topic_name_valid("orders", 6));
    assert_true(meta_topic_name_valid("a.b_c-D9", 8));
    assert_true(meta_topic_name_valid(long_name, META_TOPIC_NAME_BYTES_MAX));
    assert_false(meta_topic_name_valid(long_name, META_TOPIC_NAME_BYTES_MAX + 1));
    assert_false(meta_topic_name_valid("", 0));
    assert_false(meta_topic_name_valid(".", 1));
    assert_false(meta_topic_name_valid("..", 2));
    assert_false(meta_topic_name_valid("a b", 3));
    assert_false(meta_topic_name_valid("a/b", 3));
    assert_false(meta_topic_name_valid("\xc3\xa9", 2));
}

static void test_create_find_delete(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    int32_t one[3] = {1, 1, 1};
    const char *names[] = {"m", "b", "z", "a"};
    for (uint8_t i = 0; i < 4; i++) {
        struct meta_uuid id = uuid_n((uint8_t)(i + 1));
        assert_int_equal(meta_topic_create(&img, names[i], &id, 3, 1, one), 0);
    }
    assert_int_equal(img.topic_count, 4);
    assert_string_equal(img.topics[0]->name, "a");
    assert_string_equal(img.topics[3]->name, "z");
    struct meta_topic *t = meta_topic_find(&img, "m", 1);
    assert_non_null(t);
    assert_int_equal(t->partition_count, 3);
    assert_int_equal(t->partitions[2].leader, 1);
    assert_int_equal(t->partitions[2].isr_count, 1);
    struct meta_uuid id3 = uuid_n(3);
    assert_ptr_equal(meta_topic_find_id(&img, &id3), meta_topic_find(&img, "z", 1));
    assert_null(meta_topic_find(&img, "q", 1));

    /* Duplicates, '.'/'_' collisions, bad arguments. */
    struct meta_uuid id9 = uuid_n(9), zero;
    memset(&zero, 0, sizeof(zero));
    assert_int_equal(meta_topic_create(&img, "m", &id9, 1, 1, one), -EEXIST);
    assert_int_equal(meta_topic_create(&img, "x.y", &id9, 1, 1, one), 0);
    struct meta_uuid id10 = uuid_n(10);
    assert_int_equal(meta_topic_create(&img, "x_y", &id10, 1, 1, one), -EEXIST);
    assert_int_equal(meta_topic_create(&img, "new", &id9, 1, 1, one), ERR_INVALID);
    assert_int_equal(meta_topic_create(&img, "new", &zero, 1, 1, one), ERR_INVALID);
    /* Kafka's METADATA_TOPIC_ID names the metadata group on the cluster wire: never a topic. */
    struct meta_uuid metadata_id = zero;
    metadata_id.b[15] = 1;
    assert_int_equal(meta_topic_create(&img, "new", &metadata_id, 1, 1, one), ERR_INVALID);
    assert_int_equal(meta_topic_create(&img, "new", &id10, 0, 1, one), ERR_INVALID);
    assert_int_equal(meta_topic_create(&img, "bad name", &id10, 1, 1, one), ERR_INVALID);
    int32_t dup[2] = {1, 1};
    assert_int_equal(meta_topic_create(&img, "new", &id10, 1, 2, dup), ERR_INVALID);

    uint64_t v = img.version;
    assert_int_equal(meta_topic_delete(&img, "m"), 0);
    assert_true(img.version > v);
    assert_null(meta_topic_find(&img, "m", 1));
    assert_int_equal(meta_topic_delete(&img, "m"), ERR_NOT_FOUND);
    assert_int_equal(img.topic_count, 4);
    meta_image_deinit(&img);
}

static void test_partitions_and_configs(void **state)
{
    (void)state;
    struct meta_image img;
    meta_image_init(&img);
    int32_t r[6] = {1, 2, 2, 3, 3, 1};
    struct meta_uuid id = uuid_n(1);
    assert_int_equal(meta_topic_create(&img, "t", &id, 1, 2, r), 0);
    assert_int_equal(meta_partitions_grow(&img, "t", 3, r + 2), 0);
    struct meta_topic *t = meta_topic_find(&img, "t", 1);
    assert_int_equal(t->partition_count, 3);
    assert_int_equal(t->partitions[1].replicas[0], 2);
    assert_int_equal(t->partitions[2].replicas[1], 1);
    assert_int_equal(meta_partitions_grow(&img, "t", 3, r), ERR_INVALID);
    assert_int_equal(meta_partitions_grow(&img, "nope", 5, r), ERR_NOT_FOUND);

    assert_int_equal(meta_topic_config_set(&img, "t", "retention.ms", "1000"), 0);
    assert_int_equal(meta_topic_config_set(&img, "t", "cleanup.policy", "delete"), 0);
    assert_int_equal(meta_topic_config_set(&img, "t", "retention.ms", "2000"), 0);
    assert_int_equal(t->config_count, 2);
    assert_string_equal(t->configs[0].key, "cleanup.policy");
    assert_string_equal(meta_topic_config_get(t, "retention.ms"), "2000");
    assert_int_equal(meta_topic_config_set(&img, "t", "cleanup.policy", NULL), 0);
    assert_null(meta_topic_config_get(t, "cleanup.policy"));
    assert_int_equal(t->config_count, 1);

    assert_int_equal(meta_partition_set_leader(&img, "t", 1, 3, 4), 0);
    assert_int_equal(t->partitions[1].leader, 3);
    assert_int_equal(meta_partition_set_leader(&img, "t", 1, 2, 3), ERR_INVALID);
    assert_int_equal(meta_partition_set_leader(&img, "t", 7, 2, 9), ERR_RANGE);
    meta_image_deinit(&img);
}

/* A random image: topics with partitions and configs. */
static void random_image(struct meta_image *img, struct rng *rng, int topics)
{
    uint8_t cid[META_UUID_BYTES];
    rng_fill(rng, cid, sizeof(cid));
    meta_image_set_cluster_id(img, cid);
    for (int i = 0; i < topics; i++) {
        char name[32];
        snprintf(name, sizeof(name), "topic-%d-%u", i, (unsigned)rng_below(rng, 1000));
        struct meta_uuid id;
        rng_fill(rng, id.b, sizeof(id.b));
        id.b[0] |= 1;
        uint32_t parts = (uint32_t)rng_range(rng, 1, 8);
        int32_t assign[8 * 3];
        for (uint32_t p = 0; p < parts; p++)
            for (int k = 0; k < 3; k++)
                assign[p * 3 + (uint32_t)k] = (int32_t)((p + (uint32_t)k) % 5);
        assert_int_equal(meta_topic_create(img, name, &id, parts, 3, assign), 0);
        if (rng_chance(rng, 1, 2))
            assert_int_equal(meta_topic_config_set(img, name, "retention.ms", "60000"), 0);
    }
}

static void assert_images_equal(const struct meta_image *a, const struct meta_image *b)
{
    assert_string_equal(a->cluster_id, b->cluster_id);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->topic_count, b->topic_count);
    for (uint32_t i = 0; i < a->topic_count; i++) {
        const struct meta_topic *x = a->topics[i], *y = b->topics[i];
        assert_string_equal(x->name, y->name);
        assert_memory_equal(x->id.b, y->id.b, META_UUID_BYTES);
        assert_int_equal(x->replication_factor, y->replication_factor);
        assert_int_equal(x->partition_count, y->partition_count);
        assert_memory_equal(x->partitions, y->partitions,
                            x->partition_count * sizeof(*x->partitions));
        assert_int_equal(x->config_count, y->config_count);
        for (uint32_t c = 0; c < x->config_count; c++) {
            assert_string_equal(x->configs[c].key, y->configs[c].key);
            assert_string_equal(x->configs[c].value, y->configs[c].value);
        }
    }
}

static void test_save_load_roundtrip(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct rng rng;
    rng_seed(&rng, 7);
    struct meta_image img, back;
    meta_image_init(&img);
    meta_image_init(&back);
    assert_int_equal(meta_image_load(&back, io, "/meta"), -ENOENT);
    random_image(&img, &rng, 40);
    assert_int_equal(meta_image_save(&img, io, "/", "/meta"), 0);
    assert_int_equal(meta_image_load(&back, io, "/meta"), 0);
    assert_images_equal(&img, &back);
    meta_image_deinit(&back);
    meta_image_deinit(&img);
    io_destroy(io);
}

/* Reads the whole file at path into b. */
static void slurp(struct io *io, const char *path, struct buf *b)
{
    struct io_file *f;
    uint64_t size;
    assert_int_equal(io_open(io, path, IO_RDONLY, &f), 0);
    assert_int_equal(io_size(f, &size), 0);
    buf_reset(b);
    assert_int_equal(io_pread(f, buf_extend(b, size), size, 0), (ssize_t)size);
    io_close(f);
}

static void put_file(struct io *io, const char *path, const uint8_t *p, size_t n)
{
    struct io_file *f;
    assert_int_equal(io_open(io, path, IO_RDWR | IO_CREATE, &f), 0);
    assert_int_equal(io_truncate(f, 0), 0);
    assert_int_equal(io_pwrite(f, p, n, 0), (ssize_t)n);
    io_close(f);
}

static void test_corruption_detected(void **state)
{
    (void)state;
    struct io *io = io_sim_create();
    struct rng rng;
    rng_seed(&rng, 11);
    struct meta_image img;
    meta_image_init(&img);
    random_image(&img, &rng, 3);
    assert_int_equal(meta_image_save(&img, io, "/", "/meta"), 0);
    struct buf good, bad;
    buf_init(&good);
    buf_init(&bad);
    slurp(io, "/meta", &good);
    for (size_t i = 0; i < good.len; i++) {
        buf_reset(&bad);
        buf_append(&bad, good.data, good.len);
        bad.data[i] ^= (uint8_t)(1u << (i % 8));
        put_file(io, "/bad", bad.data, bad.len);
        struct meta_image back;
        meta_image_init(&back);
        assert_int_equal(meta_image_load(&back, io, "/bad"), ERR_CORRUPT);
        assert_int_equal(back.topic_count, 0);
    }
    for (size_t n = 0; n < good.len; n++) {
        put_file(io, "/bad", good.data, n);
        struct meta_image back;
        meta_image_init(&back);
        assert_int_equal(meta_image_load(&back, io, "/bad"), ERR_CORRUPT);
    }
    buf_deinit(&good);
    buf_deinit(&bad);
    meta_image_deinit(&img);
    io_destroy(io);
}

/* A disk holding a durable v1 on which a save of v2 was cut short at its stop-th operation. */
static struct io *interrupted_save(const struct meta_image *v1, const struct meta_image *v2,
                                   uint64_t stop, int *save_rc)
{
    struct io *io = io_sim_create();
    assert_int_equal(meta_image_save(v1, io, "/", "/meta"), 0);
    assert_int_equal(io_sim_pending_ops(io), 0);
    io_sim_fail_nth(io, IO_SIM_ALL, stop, -EIO);
    *save_rc = meta_image_save(v2, io, "/", "/meta");
    io_sim_fail_clear(io);
    return io;
}

static void test_crash_during_save_is_atomic(void **state)
{
    (void)state;
    struct rng rng;
    rng_seed(&rng, 13);
    struct meta_image v1, v2;
    meta_image_init(&v1);
    meta_image_init(&v2);
    random_image(&v1, &rng, 2);
    random_image(&v2, &rng, 5);

    int saw_v1 = 0, saw_v2 = 0;
    for (uint64_t stop = 1;; stop++) {
        int rc;
        struct io *io = interrupted_save(&v1, &v2, stop, &rc);
        uint64_t pending = io_sim_pending_ops(io);
        io_destroy(io);
        /* Every crash point: keep k pending operations and tear the next write at its start,
         * middle and last byte. */
        for (uint64_t keep = 0; keep <= pending; keep++) {
            for (int t = 0; t < 3; t++) {
                int rc2;
                io = interrupted_save(&v1, &v2, stop, &rc2);
                assert_int_equal(rc2, rc);
                uint64_t bytes = keep < pending ? io_sim_pending_write_bytes(io, keep) : 0;
                uint64_t tear = t == 0 ? 0 : t == 1 ? bytes / 2 : (bytes > 0 ? bytes - 1 : 0);
                io_sim_crash_at(io, keep, tear);
                struct meta_image back;
                meta_image_init(&back);
                assert_int_equal(meta_image_load(&back, io, "/meta"), 0);
                if (back.topic_count == v1.topic_count) {
                    assert_images_equal(&back, &v1);
                    saw_v1++;
                } else {
                    assert_images_equal(&back, &v2);
                    saw_v2++;
                }
                meta_image_deinit(&back);
                io_destroy(io);
            }
        }
        if (rc == 0)
            break;
        assert_true(stop < 100);
    }
    /* The matrix must have reached both outcomes, or it tested nothing. */
    assert_true(saw_v1 > 0);
    assert_true(saw_v2 > 0);
    meta_image_deinit(&v1);
    meta_image_deinit(&v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_names),
        cmocka_unit_test(test_create_find_delete),
        cmocka_unit_test(test_partitions_and_configs),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_corruption_detected),
        cmocka_unit_test(test_crash_during_save_is_atomic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
