/*
 * Tests for the metadata store (journal + snapshot), the fix for issue 8 item 3: the image
 * used to be rewritten whole after every change, so a request creating many topics cost one
 * full write and two syncs per topic. Covered here: a commit is one write and one sync
 * whatever it holds; a crash at every operation of a sequence of commits and a snapshot,
 * with the last write torn at several points, recovers exactly an acknowledged state (or the
 * one being committed); a bad frame in the middle of the journal refuses to load; files of
 * the earlier format (CHRMETA1, no journal) still load.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "cluster/metadata.h"
#include "io/io_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR "/d"

static struct meta_uuid uuid_n(uint32_t n)
{
    struct meta_uuid id;
    memset(&id, 0, sizeof(id));
    id.b[0] = 0xCD;
    memcpy(id.b + 8, &n, sizeof(n));
    return id;
}

static void create(struct meta_image *img, struct meta_store *s, const char *name, uint32_t n,
                   uint32_t parts)
{
    int32_t assign[16] = {0};
    struct meta_uuid id = uuid_n(n);
    assert_int_equal(meta_topic_create(img, name, &id, parts, 1, assign), 0);
    if (s != NULL)
        meta_store_put_topic(s, meta_topic_find(img, name, strlen(name)));
}

/* Applies commit number `step` (1-based) to img, recording it in s when s is not NULL. */
static void apply_step(struct meta_image *img, struct meta_store *s, int step)
{
    int32_t assign[16] = {0};
    char name[32];
    switch (step) {
    case 1:
        create(img, s, "t0", 1, 2);
        create(img, s, "t1", 2, 1);
        create(img, s, "t2", 3, 3);
        break;
    case 2:
        assert_int_equal(meta_broker_config_set(img, "", "log.retention.ms", "1000"), 0);
        assert_int_equal(meta_broker_config_set(img, "1", "message.max.bytes", "2000"), 0);
        if (s != NULL) {
            meta_store_put_broker_config(s, "", "log.retention.ms", "1000");
            meta_store_put_broker_config(s, "1", "message.max.bytes", "2000");
        }
        break;
    case 3:
        assert_int_equal(meta_partitions_grow(img, "t1", 4, assign), 0);
        assert_int_equal(meta_topic_config_set(img, "t2", "retention.ms", "5"), 0);
        if (s != NULL) {
            meta_store_put_topic(s, meta_topic_find(img, "t1", 2));
            meta_store_put_topic(s, meta_topic_find(img, "t2", 2));
        }
        break;
    case 4: {
        struct meta_uuid id = meta_topic_find(img, "t0", 2)->id;
        assert_int_equal(meta_topic_delete(img, "t0"), 0);
        assert_int_equal(meta_broker_config_set(img, "", "log.retention.ms", NULL), 0);
        if (s != NULL) {
            meta_store_remove_topic(s, "t0", &id);
            meta_store_put_broker_config(s, "", "log.retention.ms", NULL);
        }
        break;
    }
    case 5:
        create(img, s, "t0", 100, 2);
        break;
    case 6:
        for (uint32_t i = 0; i < 50; i++) {
            snprintf(name, sizeof(name), "many-%u", i);
            create(img, s, name, 200 + i, 1);
        }
        break;
    default:
        fail();
    }
}

#define STEPS          6
#define SNAPSHOT_AFTER 4 /* a forced snapshot after this step */

/* State k: 0 = nothing on disk, 1 = the first snapshot (cluster id), 1 + i = after step i. */
static void build_state(struct meta_image *img, int k)
{
    meta_image_init(img);
    if (k == 0)
        return;
    uint8_t cid[META_UUID_BYTES] = {1, 2, 3};
    meta_image_set_cluster_id(img, cid);
    for (int i = 1; i < k; i++)
        apply_step(img, NULL, i);
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
        assert_int_equal(x->partition_count, y->partition_count);
        assert_memory_equal(x->partitions, y->partitions,
                            x->partition_count * sizeof(*x->partitions));
        assert_int_equal(x->config_count, y->config_count);
        for (uint32_t c = 0; c < x->config_count; c++) {
            assert_string_equal(x->configs[c].key, y->configs[c].key);
            assert_string_equal(x->configs[c].value, y->configs[c].value);
        }
    }
    assert_int_equal(a->broker_config_count, b->broker_config_count);
    for (uint32_t i = 0; i < a->broker_config_count; i++) {
        assert_string_equal(a->broker_configs[i].resource, b->broker_configs[i].resource);
        assert_string_equal(a->broker_configs[i].key, b->broker_configs[i].key);
        assert_string_equal(a->broker_configs[i].value, b->broker_configs[i].value);
    }
}

static bool images_equal(const struct meta_image *a, const struct meta_image *b)
{
    if (a->version != b->version || a->topic_count != b->topic_count ||
        a->broker_config_count != b->broker_config_count)
        return false;
    assert_images_equal(a, b);
    return true;
}

static struct io *new_disk(void)
{
    struct io *io = io_sim_create();
    assert_int_equal(io_mkdir(io, DIR), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    return io;
}

/* Runs the whole scenario; returns how many states were acknowledged (see build_state). */
static int run_scenario(struct io *io)
{
    struct meta_store s;
    struct meta_image img;
    meta_image_init(&img);
    bool created = false;
    int acked = 0;
    if (meta_store_open(&s, io, DIR, &img, &created) != 0)
        return 0;
    assert_true(created);
    uint8_t cid[META_UUID_BYTES] = {1, 2, 3};
    meta_image_set_cluster_id(&img, cid);
    if (meta_store_snapshot(&s, &img) != 0)
        goto done;
    acked = 1;
    for (int step = 1; step <= STEPS; step++) {
        apply_step(&img, &s, step);
        if (meta_store_commit(&s, &img) != 0)
            goto done;
        acked = 1 + step;
        if (step == SNAPSHOT_AFTER && meta_store_snapshot(&s, &img) != 0)
            goto done;
    }
done:
    meta_store_close(&s);
    meta_image_deinit(&img);
    return acked;
}

static void test_whole_scenario_reloads(void **state)
{
    (void)state;
    struct io *io = new_disk();
    assert_int_equal(run_scenario(io), STEPS + 1);
    struct meta_store s;
    struct meta_image back, want;
    meta_image_init(&back);
    bool created = true;
    assert_int_equal(meta_store_open(&s, io, DIR, &back, &created), 0);
    assert_false(created);
    build_state(&want, STEPS + 1);
    assert_images_equal(&back, &want);
    assert_int_equal(back.broker_config_count, 1);
    assert_string_equal(meta_broker_config_get(&back, "1", "message.max.bytes"), "2000");
    meta_store_close(&s);
    meta_image_deinit(&back);
    meta_image_deinit(&want);
    io_destroy(io);
}

static struct io *interrupted(uint64_t stop, int *acked)
{
    struct io *io = new_disk();
    io_sim_fail_nth(io, IO_SIM_ALL, stop, -EIO);
    *acked = run_scenario(io);
    io_sim_fail_clear(io);
    return io;
}

/* Crash at every operation of the scenario, keeping every prefix of the pending operations and
 * tearing the next write at its start, middle and last byte: the store recovers exactly the
 * last acknowledged state or the one that was being written, never anything else. */
static void test_crash_at_every_operation(void **state)
{
    (void)state;
    int saw_partial = 0, saw_last = 0;
    for (uint64_t stop = 1;; stop++) {
        int acked;
        struct io *io = interrupted(stop, &acked);
        uint64_t pending = io_sim_pending_ops(io);
        io_destroy(io);
        for (uint64_t keep = 0; keep <= pending; keep++) {
            for (int t = 0; t < 3; t++) {
                int acked2;
                io = interrupted(stop, &acked2);
                assert_int_equal(acked2, acked);
                uint64_t bytes = keep < pending ? io_sim_pending_write_bytes(io, keep) : 0;
                uint64_t tear = t == 0 ? 0 : t == 1 ? bytes / 2 : (bytes > 0 ? bytes - 1 : 0);
                io_sim_crash_at(io, keep, tear);
                struct meta_store s;
                struct meta_image back;
                meta_image_init(&back);
                bool created = false;
                assert_int_equal(meta_store_open(&s, io, DIR, &back, &created), 0);
                struct meta_image want;
                build_state(&want, acked);
                bool match = images_equal(&back, &want);
                meta_image_deinit(&want);
                if (!match && acked <= STEPS) {
                    build_state(&want, acked + 1);
                    match = images_equal(&back, &want);
                    meta_image_deinit(&want);
                    saw_partial += match;
                }
                if (!match)
                    fail_msg("stop %llu keep %llu tear %d: not state %d or %d",
                             (unsigned long long)stop, (unsigned long long)keep, t, acked,
                             acked + 1);
                saw_last += acked == STEPS + 1;
                meta_store_close(&s);
                meta_image_deinit(&back);
                io_destroy(io);
            }
        }
        if (acked == STEPS + 1)
            break;
        assert_true(stop < 1000);
    }
    assert_true(saw_partial > 0);
    assert_true(saw_last > 0);
}

/* The bug of item 3: 1,000 topics in one request cost 1,000 image rewrites. */
static void test_commit_is_one_write_and_one_sync(void **state)
{
    (void)state;
    struct io *io = new_disk();
    struct meta_store s;
    struct meta_image img;
    meta_image_init(&img);
    bool created = false;
    assert_int_equal(meta_store_open(&s, io, DIR, &img, &created), 0);
    assert_int_equal(meta_store_snapshot(&s, &img), 0);
    for (uint32_t i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "bulk-%u", i);
        create(&img, &s, name, i + 1, 1);
    }
    uint64_t writes = io_sim_op_count(io, IO_SIM_WRITE);
    uint64_t syncs = io_sim_op_count(io, IO_SIM_SYNC);
    assert_int_equal(meta_store_commit(&s, &img), 0);
    assert_int_equal(io_sim_op_count(io, IO_SIM_WRITE) - writes, 1);
    assert_int_equal(io_sim_op_count(io, IO_SIM_SYNC) - syncs, 1);
    /* Nothing recorded: nothing written. */
    assert_int_equal(meta_store_commit(&s, &img), 0);
    assert_int_equal(io_sim_op_count(io, IO_SIM_WRITE) - writes, 1);
    meta_store_close(&s);
    meta_image_deinit(&img);
    io_destroy(io);
}

static void read_file(struct io *io, const char *path, struct buf *b)
{
    struct io_file *f;
    uint64_t size;
    assert_int_equal(io_open(io, path, IO_RDONLY, &f), 0);
    assert_int_equal(io_size(f, &size), 0);
    buf_reset(b);
    assert_int_equal(io_pread(f, buf_extend(b, size), size, 0), (ssize_t)size);
    io_close(f);
}

static void write_file(struct io *io, const char *path, const uint8_t *p, size_t n)
{
    struct io_file *f;
    assert_int_equal(io_open(io, path, IO_RDWR | IO_CREATE, &f), 0);
    assert_int_equal(io_truncate(f, 0), 0);
    assert_int_equal(io_pwrite(f, p, n, 0), (ssize_t)n);
    assert_int_equal(io_sync(f), 0);
    io_close(f);
}

/* A frame that fails its checksum with whole frames after it is not a torn tail: refuse. */
static void test_bad_frame_in_the_middle_refused(void **state)
{
    (void)state;
    struct io *io = new_disk();
    assert_int_equal(run_scenario(io), STEPS + 1);
    struct buf j;
    buf_init(&j);
    read_file(io, DIR "/metadata.journal", &j);
    assert_true(j.len > 100);
    j.data[20] ^= 0x40; /* inside the first frame after the snapshot */
    write_file(io, DIR "/metadata.journal", j.data, j.len);
    struct meta_store s;
    struct meta_image back;
    meta_image_init(&back);
    bool created;
    assert_int_equal(meta_store_open(&s, io, DIR, &back, &created), ERR_CORRUPT);
    assert_int_equal(back.topic_count, 0);
    buf_deinit(&j);
    io_destroy(io);
}

/* A last frame cut short (a crash during its write) is dropped, and cut off the file so the
 * next append starts at a frame boundary. */
static void test_torn_tail_cut_off(void **state)
{
    (void)state;
    struct io *io = new_disk();
    assert_int_equal(run_scenario(io), STEPS + 1);
    struct buf j;
    buf_init(&j);
    read_file(io, DIR "/metadata.journal", &j);
    write_file(io, DIR "/metadata.journal", j.data, j.len - 5);
    struct meta_store s;
    struct meta_image back, want;
    for (int round = 0; round < 2; round++) {
        meta_image_init(&back);
        bool created;
        assert_int_equal(meta_store_open(&s, io, DIR, &back, &created), 0);
        assert_true(round == 0 ? s.torn_bytes > 0 : s.torn_bytes == 0);
        build_state(&want, STEPS); /* without the last step, whose frame was torn */
        assert_images_equal(&back, &want);
        meta_image_deinit(&want);
        meta_store_close(&s);
        meta_image_deinit(&back);
    }
    buf_deinit(&j);
    io_destroy(io);
}

/* Upgrade path: a data directory written before the journal (a CHRMETA1 image only). */
static void test_reads_v1_image(void **state)
{
    (void)state;
    struct io *io = new_disk();
    struct meta_image v;
    build_state(&v, 3);
    /* Only topics: the v1 format had no broker configs. */
    assert_int_equal(meta_broker_config_set(&v, "", "log.retention.ms", NULL), 0);
    assert_int_equal(meta_broker_config_set(&v, "1", "message.max.bytes", NULL), 0);
    assert_int_equal(meta_image_save(&v, io, DIR, DIR "/metadata.image"), 0);
    struct buf f;
    buf_init(&f);
    read_file(io, DIR "/metadata.image", &f);
    /* v2 is v1 plus a u32 broker config count (0 here) at the end of the body. */
    size_t body_len = f.len - 12 - 4 - 4;
    memcpy(f.data, "CHRMETA1", 8);
    be32_store(f.data + 8, (uint32_t)body_len);
    be32_store(f.data + 12 + body_len, crc32c(f.data + 12, body_len));
    write_file(io, DIR "/metadata.image", f.data, 12 + body_len + 4);
    struct meta_store s;
    struct meta_image back;
    meta_image_init(&back);
    bool created = true;
    assert_int_equal(meta_store_open(&s, io, DIR, &back, &created), 0);
    assert_false(created);
    assert_images_equal(&back, &v);
    /* And it takes changes from there. */
    create(&back, &s, "after-upgrade", 999, 1);
    assert_int_equal(meta_store_commit(&s, &back), 0);
    meta_store_close(&s);
    meta_image_deinit(&back);
    meta_image_init(&back);
    assert_int_equal(meta_store_open(&s, io, DIR, &back, &created), 0);
    assert_non_null(meta_topic_find(&back, "after-upgrade", 13));
    meta_store_close(&s);
    meta_image_deinit(&back);
    meta_image_deinit(&v);
    buf_deinit(&f);
    io_destroy(io);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_scenario_reloads),
        cmocka_unit_test(test_crash_at_every_operation),
        cmocka_unit_test(test_commit_is_one_write_and_one_sync),
        cmocka_unit_test(test_bad_frame_in_the_middle_refused),
        cmocka_unit_test(test_torn_tail_cut_off),
        cmocka_unit_test(test_reads_v1_image),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
