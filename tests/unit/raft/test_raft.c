/*
 * Table-driven tests of the Raft core's edges: configuration changes, validation of messages
 * from the network, refusals by role, a single-voter group, and the memory bound per group.
 * Interaction sequences live in the scripted tests (testdata/NAME.txt).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "base/compiler.h"
#include "base/error.h"
#include "raft/raft.h"

/* A log of up to 64 single-entry batches, enough for these tests. */
struct tlog {
    struct raft_batch b[64];
    int64_t count;
};

static int64_t t_start(void *ctx)
{
    (void)ctx;
    return 0;
}

static int64_t t_last(void *ctx)
{
    struct tlog *l = ctx;

    return l->count ? l->b[l->count - 1].last_index : -1;
}

static int t_batch_at(void *ctx, int64_t index, struct raft_batch *out)
{
    struct tlog *l = ctx;

    for (int64_t i = 0; i < l->count; i++) {
        if (index >= l->b[i].first_index && index <= l->b[i].last_index) {
            *out = l->b[i];
            return 0;
        }
    }
    return ERR_RANGE;
}

static int t_term_at(void *ctx, int64_t index, int64_t *term)
{
    struct raft_batch b;

    if (index == -1) {
        *term = 0;
        return 0;
    }
    if (t_batch_at(ctx, index, &b) != 0)
        return ERR_RANGE;
    *term = b.term;
    return 0;
}

static void t_append(void *ctx, const struct raft_batch *b)
{
    struct tlog *l = ctx;

    assert_true(l->count < 64);
    l->b[l->count++] = *b;
}

static void t_truncate(void *ctx, int64_t from)
{
    struct tlog *l = ctx;

    while (l->count > 0 && l->b[l->count - 1].first_index >= from)
        l->count--;
}

static const struct raft_log_ops tops = {t_start,    t_last,   t_term_at,
                                         t_batch_at, t_append, t_truncate};

static void init3(struct raft *r, struct tlog *l, int32_t self)
{
    struct raft_options o;

    memset(&o, 0, sizeof(o));
    memset(l, 0, sizeof(*l));
    o.self = self;
    o.vote = RAFT_NONE;
    o.commit_index = -1;
    o.config.index = -1;
    for (int32_t i = 0; i < 3; i++) {
        o.config.ids[i] = i + 1;
        o.config.voter[i] = 1;
    }
    o.config.count = 3;
    o.config_prev = o.config;
    o.election_ticks = 10;
    o.heartbeat_ticks = 1;
    o.pre_vote = true;
    o.check_quorum = true;
    o.seed = 1;
    o.log = &tops;
    o.log_ctx = l;
    assert_int_equal(raft_init(r, &o), 0);
}

static void test_config_apply(void **state)
{
    struct raft_config c = {.ids = {1, 2, 3}, .voter = {1, 1, 1}, .count = 3, .index = -1}, n;
    static const struct {
        uint8_t op;
        int32_t node;
        int rc;
        uint32_t count;
    } cases[] = {
        {RAFT_CHANGE_ADD_VOTER, 4, 0, 4},      {RAFT_CHANGE_ADD_VOTER, 2, ERR_INVALID, 3},
        {RAFT_CHANGE_ADD_LEARNER, 4, 0, 4},    {RAFT_CHANGE_ADD_LEARNER, 3, ERR_INVALID, 3},
        {RAFT_CHANGE_REMOVE, 2, 0, 2},         {RAFT_CHANGE_REMOVE, 9, ERR_INVALID, 3},
        {RAFT_CHANGE_NONE, 1, ERR_INVALID, 3},
    };

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        assert_int_equal(raft_config_apply(&c, cases[i].op, cases[i].node, &n), cases[i].rc);
        if (cases[i].rc == 0)
            assert_int_equal(n.count, cases[i].count);
    }
    /* Promotion keeps the member and makes it a voter; the last voter cannot go. */
    assert_int_equal(raft_config_apply(&c, RAFT_CHANGE_ADD_LEARNER, 4, &n), 0);
    assert_false(raft_is_voter(&n, 4));
    assert_int_equal(raft_config_apply(&n, RAFT_CHANGE_ADD_VOTER, 4, &c), 0);
    assert_true(raft_is_voter(&c, 4));
    c = (struct raft_config){.ids = {1}, .voter = {1}, .count = 1, .index = -1};
    assert_int_equal(raft_config_apply(&c, RAFT_CHANGE_REMOVE, 1, &n), ERR_INVALID);
}

static void test_malformed_messages(void **state)
{
    struct raft r;
    struct tlog l;
    struct raft_batch good = {.first_index = 0, .last_index = 1, .term = 1};
    struct raft_batch gap = {.first_index = 5, .last_index = 6, .term = 1};
    struct raft_batch future = {.first_index = 0, .last_index = 0, .term = 9};
    struct raft_batch cfg2 = {.first_index = 0,
                              .last_index = 1,
                              .term = 1,
                              .kind = RAFT_BATCH_CONFIG,
                              .op = RAFT_CHANGE_REMOVE,
                              .node = 2};
    const struct {
        struct raft_msg m;
        int rc;
    } cases[] = {
        {{.type = RAFT_MSG_TYPE_COUNT, .from = 2, .to = 1, .term = 1}, ERR_CORRUPT},
        {{.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 1, .term = 1}, ERR_CORRUPT},
        {{.type = RAFT_MSG_HEARTBEAT, .from = 2, .to = 3, .term = 1}, ERR_CORRUPT},
        {{.type = RAFT_MSG_HEARTBEAT, .from = 2, .to = 1, .term = -1}, ERR_CORRUPT},
        {{.type = RAFT_MSG_HEARTBEAT,
          .from = 2,
          .to = 1,
          .term = 1,
          .batch_count = 1,
          .batches = &good},
         ERR_CORRUPT},
        {{.type = RAFT_MSG_APPEND,
          .from = 2,
          .to = 1,
          .term = 1,
          .index = -1,
          .last_index = 5,
          .batch_count = 1,
          .batches = &good},
         ERR_CORRUPT},
        {{.type = RAFT_MSG_APPEND,
          .from = 2,
          .to = 1,
          .term = 1,
          .index = -1,
          .last_index = 6,
          .batch_count = 1,
          .batches = &gap},
         ERR_CORRUPT},
        {{.type = RAFT_MSG_APPEND,
          .from = 2,
          .to = 1,
          .term = 1,
          .index = -1,
          .last_index = 0,
          .batch_count = 1,
          .batches = &future},
         ERR_CORRUPT},
        {{.type = RAFT_MSG_APPEND,
          .from = 2,
          .to = 1,
          .term = 1,
          .index = -1,
          .last_index = 1,
          .batch_count = 1,
          .batches = &cfg2},
         ERR_CORRUPT},
        {{.type = RAFT_MSG_APPEND,
          .from = 2,
          .to = 1,
          .term = 1,
          .index = -1,
          .last_index = 1,
          .batch_count = 1,
          .batches = NULL},
         ERR_CORRUPT},
        {{.type = RAFT_MSG_APPEND,
          .from = 2,
          .to = 1,
          .term = 1,
          .index = -1,
          .last_index = 1,
          .batch_count = 1,
          .batches = &good},
         0},
    };

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        init3(&r, &l, 1);
        assert_int_equal(raft_step(&r, &cases[i].m), cases[i].rc);
        /* A rejected message changes nothing. */
        if (cases[i].rc != 0) {
            assert_int_equal(r.term, 0);
            assert_int_equal(l.count, 0);
        }
    }
    assert_int_equal(l.count, 1); /* the last, well-formed append was taken */
}

static void test_refusals(void **state)
{
    struct raft r;
    struct tlog l;
    struct raft_batch b;

    (void)state;
    init3(&r, &l, 1);
    assert_int_equal(raft_propose(&r, 1, 10, &b), ERR_STATE);
    assert_int_equal(raft_transfer(&r, 2), ERR_STATE);
    assert_int_equal(raft_change(&r, RAFT_CHANGE_ADD_VOTER, 4, &b), ERR_STATE);
    assert_int_equal(raft_read_index(&r, 1), ERR_STATE);
    assert_false(raft_lease_valid(&r));
    assert_int_equal(raft_progress(&r, NULL, 0), ERR_STATE);
}

/* Bug caught: a member that joins with nothing (an empty log, e.g. a new voter of a cluster
 * whose first voter holds a standalone node's history) campaigning on its own timer: two such
 * members elect one of themselves and overwrite the history the first voter holds. */
static void test_passive_member_waits_for_a_leader(void **state)
{
    struct raft r;
    struct tlog l;
    struct raft_ready rd;

    (void)state;
    init3(&r, &l, 2);
    r.passive = 1; /* as raft_options.passive sets it */
    for (int i = 0; i < 100; i++)
        raft_tick(&r);
    assert_int_equal(r.role, RAFT_FOLLOWER);
    raft_ready(&r, &rd);
    assert_int_equal(rd.msg_count, 0); /* no (pre-)vote request ever left */
    raft_advance(&r);
    /* A leader's heartbeat: from now on it is an ordinary member and campaigns on timeout. */
    struct raft_msg hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1, .commit = -1};
    assert_int_equal(raft_step(&r, &hb), 0);
    assert_int_equal(r.leader, 1);
    raft_ready(&r, &rd);
    assert_true(rd.role_changed); /* the host is told who leads */
    raft_advance(&r);
    for (int i = 0; i < 100 && r.role == RAFT_FOLLOWER; i++)
        raft_tick(&r);
    assert_int_not_equal(r.role, RAFT_FOLLOWER);
}

/*
 * Issue 10: a partition's snapshot is a SNAPSHOT message naming the leader's log start - 1 and
 * its term. A follower that does not hold that entry asks its host to install it (and says
 * nothing to the leader until it is installed); one that holds it answers as to an empty
 * append; a stale or malformed one changes nothing.
 */
static void test_snapshot_message(void **state)
{
    struct raft r;
    struct tlog l;
    struct raft_ready rd;
    struct raft_msg snap = {
        .type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 2, .term = 3, .index = 9, .log_term = 2};

    (void)state;
    init3(&r, &l, 2);
    struct raft_msg bad = snap;
    bad.log_term = 4; /* beyond the sender's term */
    assert_int_equal(raft_step(&r, &bad), ERR_CORRUPT);
    bad = snap;
    bad.index = -1;
    assert_int_equal(raft_step(&r, &bad), ERR_CORRUPT);
    /* An empty log: install. */
    assert_int_equal(raft_step(&r, &snap), 0);
    assert_int_equal(r.term, 3);
    assert_int_equal(r.leader, 1);
    raft_ready(&r, &rd);
    assert_int_equal(rd.install_index, 9);
    assert_int_equal(rd.install_term, 2);
    for (uint32_t i = 0; i < rd.msg_count; i++)
        assert_int_not_equal(rd.msgs[i].type, RAFT_MSG_APPEND_RESP);
    raft_advance(&r);
    assert_false(raft_has_ready(&r));
    /* Holding the entry (term 2 at index 9, durable): answered at once, nothing to install. */
    for (int64_t i = 0; i < 10; i++)
        l.b[l.count++] = (struct raft_batch){.first_index = i, .last_index = i, .term = 2};
    raft_persisted(&r, 9, 2);
    assert_int_equal(raft_step(&r, &snap), 0);
    raft_ready(&r, &rd);
    assert_int_equal(rd.install_index, -1);
    assert_int_equal(rd.msg_count, 1);
    assert_int_equal(rd.msgs[0].type, RAFT_MSG_APPEND_RESP);
    assert_false(rd.msgs[0].reject);
    assert_int_equal(rd.msgs[0].index, 9);
    raft_advance(&r);
    /* From an earlier term: the deposed leader is told the term, nothing else happens. */
    snap.term = 2;
    assert_int_equal(raft_step(&r, &snap), 0);
    raft_ready(&r, &rd);
    assert_int_equal(rd.install_index, -1);
    assert_int_equal(rd.msg_count, 1);
    assert_int_equal(rd.msgs[0].index, -1);
    raft_advance(&r);
}

static void test_single_voter(void **state)
{
    struct raft_options o;
    struct raft_ready rd;
    struct raft_batch b;
    struct raft r;
    struct tlog l;

    (void)state;
    memset(&o, 0, sizeof(o));
    memset(&l, 0, sizeof(l));
    o.self = 7;
    o.vote = RAFT_NONE;
    o.commit_index = -1;
    o.config = (struct raft_config){.ids = {7}, .voter = {1}, .count = 1, .index = -1};
    o.config_prev = o.config;
    o.election_ticks = 10;
    o.heartbeat_ticks = 1;
    o.pre_vote = true;
    o.check_quorum = true;
    o.log = &tops;
    o.log_ctx = &l;
    assert_int_equal(raft_init(&r, &o), 0);
    for (int i = 0; i < 20 && r.role != RAFT_LEADER; i++)
        raft_tick(&r);
    assert_int_equal(r.role, RAFT_LEADER);
    raft_ready(&r, &rd);
    assert_true(rd.hard_state_changed);
    assert_int_equal(rd.vote, 7);
    assert_int_equal(rd.msg_count, 0);
    assert_int_equal(rd.write_first, 0); /* the no-op */
    raft_advance(&r);
    assert_int_equal(raft_propose(&r, 5, 500, &b), 0);
    assert_int_equal(b.first_index, 1);
    assert_int_equal(b.last_index, 5);
    /* Nothing commits before it is durable, then everything does. */
    assert_int_equal(r.commit, -1);
    raft_persisted(&r, 5, 1);
    raft_ready(&r, &rd);
    assert_true(rd.commit_changed);
    assert_int_equal(rd.commit_index, 5);
    /* A stale persistence report is ignored. */
    raft_persisted(&r, 3, 9);
    assert_int_equal(r.commit, 5);
}

static void test_memory_per_group(void **state)
{
    (void)state;
    /* The core's whole state is the struct: no pointers to memory of its own. */
    assert_true(sizeof(struct raft) < 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_apply),
        cmocka_unit_test(test_malformed_messages),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_single_voter),
        cmocka_unit_test(test_passive_member_waits_for_a_leader),
        cmocka_unit_test(test_memory_per_group),
        cmocka_unit_test(test_snapshot_message),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
