/*
 * Runs each scripted interaction test in tests/unit/raft/testdata as one cmocka test. The
 * scripts' directory comes from the build (RAFT_TESTDATA_DIR).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "script.h"

static void run(const char *name)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/%s.txt", RAFT_TESTDATA_DIR, name);
    assert_int_equal(script_run(path), 0);
}

static void test_election(void **state)
{
    (void)state;
    run("election");
}

static void test_replication(void **state)
{
    (void)state;
    run("replication");
}

static void test_conflict(void **state)
{
    (void)state;
    run("conflict");
}

static void test_transfer(void **state)
{
    (void)state;
    run("transfer");
}

static void test_membership(void **state)
{
    (void)state;
    run("membership");
}

static void test_check_quorum(void **state)
{
    (void)state;
    run("check_quorum");
}

static void test_snapshot(void **state)
{
    (void)state;
    run("snapshot");
}

static void test_read_index(void **state)
{
    (void)state;
    run("read_index");
}

/* Issue 8 item 15: a voter's lease promise must survive a higher term learnt from a candidate. */
static void test_lease(void **state)
{
    (void)state;
    run("lease");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_election),   cmocka_unit_test(test_replication),
        cmocka_unit_test(test_conflict),   cmocka_unit_test(test_transfer),
        cmocka_unit_test(test_membership), cmocka_unit_test(test_check_quorum),
        cmocka_unit_test(test_snapshot),   cmocka_unit_test(test_read_index),
        cmocka_unit_test(test_lease),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
