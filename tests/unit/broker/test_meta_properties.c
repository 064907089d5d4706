/*
 * Tests of meta.properties, the data directory's identity file: the parser against Kafka's
 * own files and every way a file can be wrong, the format round trip, and the store's
 * atomicity on the simulated disk (a crash or a failed operation at any point leaves the old
 * file or the new one, never a damaged one).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "base/compiler.h"
#include "base/error.h"
#include "broker/meta_properties.h"
#include "io/io_sim.h"

#include <errno.h>
#include <string.h>

static void parse_ok(const char *text, const char *cluster_id, int32_t node_id)
{
    struct meta_properties p;
    char why[256] = "";
    int rc = meta_properties_parse(text, strlen(text), &p, why, sizeof(why));
    if (rc != 0)
        fail_msg("refused (%d): %s\n%s", rc, why, text);
    assert_string_equal(p.cluster_id, cluster_id);
    assert_int_equal(p.node_id, node_id);
}

/* What Kafka 3.x writes (Properties.store: a date comment, keys in hash order) and what
 * Kafka 3.7+ adds (directory.id), and Chronik's own format. */
static void test_parse_valid(void **state)
{
    (void)state;
    parse_ok("#\n#Thu Dec 03 10:00:00 UTC 2026\nnode.id=1\nversion=1\n"
             "cluster.id=MkU3OEVBNTcwNTJENDM2Qg\n",
             "MkU3OEVBNTcwNTJENDM2Qg", 1);
    parse_ok("#\n#Thu Dec 03 10:00:00 UTC 2026\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\n"
             "directory.id=x7NPDMhYT1yvHf4Tp6q8vA\nnode.id=2147483647\nversion=1\n",
             "MkU3OEVBNTcwNTJENDM2Qg", 2147483647);
    parse_ok("version = 1\r\ncluster.id=a-_Z09a-_Z09a-_Z09a-_Z\r\n\r\n  node.id=0  ",
             "a-_Z09a-_Z09a-_Z09a-_Z", 0);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        const char *needle;
    } cases[] = {
        {"", ERR_CORRUPT, "no version"},
        {"cluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=1\n", ERR_CORRUPT, "no version"},
        {"version=1\nnode.id=1\n", ERR_CORRUPT, "no cluster.id"},
        {"version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\n", ERR_CORRUPT, "no node.id"},
        {"version=0\nbroker.id=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\n", ERR_UNSUPPORTED,
         "version 0 is not 1"},
        {"version=x\n", ERR_CORRUPT, "version 'x' is not a number"},
        {"version=1\ncluster.id=short\nnode.id=1\n", ERR_CORRUPT, "cluster.id 'short' is not 22"},
        {"version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Q+\nnode.id=1\n", ERR_CORRUPT,
         "is not 22 base64url"},
        {"version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=-1\n", ERR_CORRUPT,
         "node.id '-1' is not an integer"},
        {"version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=2147483648\n", ERR_CORRUPT,
         "node.id '2147483648'"},
        {"version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=\n", ERR_CORRUPT, "node.id ''"},
        {"version=1\ngarbage\n", ERR_CORRUPT, "line 2 is not key=value"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct meta_properties p;
        char why[256] = "";
        int rc = meta_properties_parse(cases[i].text, strlen(cases[i].text), &p, why, sizeof(why));
        if (rc != cases[i].rc)
            fail_msg("case %zu: %d, expected %d (%s)", i, rc, cases[i].rc, why);
        if (strstr(why, cases[i].needle) == NULL)
            fail_msg("case %zu: '%s' not in '%s'", i, cases[i].needle, why);
    }
    /* A NUL byte inside the text is damage, not a terminator. */
    static const char nul[] = "version=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\nnode.id=1\0x\n";
    struct meta_properties p;
    char why[256] = "";
    assert_int_equal(meta_properties_parse(nul, sizeof(nul) - 1, &p, why, sizeof(why)),
                     ERR_CORRUPT);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    struct meta_properties p = {.cluster_id = "MkU3OEVBNTcwNTJENDM2Qg", .node_id = 42};
    struct buf b;
    buf_init(&b);
    meta_properties_format(&p, &b);
    buf_put_u8(&b, 0);
    assert_non_null(strstr((const char *)b.data, "\nversion=1\n"));
    assert_non_null(strstr((const char *)b.data, "\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\n"));
    assert_non_null(strstr((const char *)b.data, "\nnode.id=42\n"));
    parse_ok((const char *)b.data, "MkU3OEVBNTcwNTJENDM2Qg", 42);
    buf_deinit(&b);
}

static struct io *sim_with_dir(void)
{
    struct io *io = io_sim_create();
    assert_int_equal(io_mkdir(io, "/d"), 0);
    assert_int_equal(io_sync_dir(io, "/"), 0);
    return io;
}

/* Load of a missing file is "not found", not an error; store then load gives it back. */
static void test_store_load(void **state)
{
    (void)state;
    struct io *io = sim_with_dir();
    struct meta_properties p;
    struct meta_properties q = {.cluster_id = "MkU3OEVBNTcwNTJENDM2Qg", .node_id = 3};
    bool found = true;
    char why[256];
    assert_int_equal(meta_properties_load(io, "/d", &p, &found, why, sizeof(why)), 0);
    assert_false(found);
    assert_int_equal(meta_properties_store(io, "/d", &q), 0);
    assert_int_equal(io_sim_pending_ops(io), 0);
    assert_int_equal(meta_properties_load(io, "/d", &p, &found, why, sizeof(why)), 0);
    assert_true(found);
    assert_string_equal(p.cluster_id, q.cluster_id);
    assert_int_equal(p.node_id, 3);
    io_destroy(io);
}

/* Overwriting node 1's file with node 2's, with the nth operation failing and a crash that
 * keeps any prefix of what was pending: the file read back is node 1's or node 2's, whole. */
static void test_store_is_atomic(void **state)
{
    (void)state;
    const struct meta_properties one = {.cluster_id = "MkU3OEVBNTcwNTJENDM2Qg", .node_id = 1};
    const struct meta_properties two = {.cluster_id = "MkU3OEVBNTcwNTJENDM2Qg", .node_id = 2};
    bool saw_new = false;
    bool saw_old = false;
    for (uint64_t nth = 1; nth <= 16; nth++) {
        for (uint64_t keep = 0;; keep++) {
            struct io *io = sim_with_dir();
            assert_int_equal(meta_properties_store(io, "/d", &one), 0);
            io_sim_fail_nth(io, IO_SIM_ALL, nth, -EIO);
            (void)meta_properties_store(io, "/d", &two);
            io_sim_fail_clear(io);
            uint64_t pending = io_sim_pending_ops(io);
            io_sim_crash_at(io, keep, 0);
            struct meta_properties p;
            bool found = false;
            char why[256] = "";
            int rc = meta_properties_load(io, "/d", &p, &found, why, sizeof(why));
            if (rc != 0 || !found)
                fail_msg("nth %llu keep %llu: rc %d found %d: %s", (unsigned long long)nth,
                         (unsigned long long)keep, rc, found, why);
            assert_true(p.node_id == 1 || p.node_id == 2);
            saw_old = saw_old || p.node_id == 1;
            saw_new = saw_new || p.node_id == 2;
            io_destroy(io);
            if (keep >= pending)
                break;
        }
    }
    assert_true(saw_old && saw_new);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),       cmocka_unit_test(test_parse_invalid),
        cmocka_unit_test(test_format_round_trip), cmocka_unit_test(test_store_load),
        cmocka_unit_test(test_store_is_atomic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
