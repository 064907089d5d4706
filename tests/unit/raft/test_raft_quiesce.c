/*
 * Quiescence of the Raft core (raft.h): three cores wired to each other by a tiny lossless
 * network the test drives (every ready is persisted at once, its messages delivered in order
 * unless the test cuts a link). The host's part, telling a group that a node went silent, is
 * played by calling raft_wake() by hand.
 *
 * What it pins down: an idle group stops (no tick work, no message); it wakes on a proposal; a
 * lost quiesce heartbeat only costs a wake-up, never a new term; a quiesced group whose leader
 * dies elects within the time an unquiesced one would; a quiesced leader cut off from its
 * followers steps down by check-quorum once woken, and holds no lease while quiesced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "base/compiler.h"
#include "base/error.h"
#include "raft/raft.h"

#define N        3
#define ELECTION 10
#define LOG_MAX  256

struct tlog {
    struct raft_batch b[LOG_MAX];
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
    for (int64_t i = 0; i < l->count; i++)
        if (index >= l->b[i].first_index && index <= l->b[i].last_index) {
            *out = l->b[i];
            return 0;
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
    assert_true(l->count < LOG_MAX);
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

struct net {
    struct raft r[N];
    struct tlog l[N];
    bool up[N];
    bool cut[N][N]; /* cut[a][b]: messages from a to b are lost */
    uint64_t sent;  /* messages handed to the network */
};

static struct net W;

static void net_init(void)
{
    memset(&W, 0, sizeof(W));
    for (int i = 0; i < N; i++) {
        struct raft_options o;
        memset(&o, 0, sizeof(o));
        o.self = i;
        o.vote = RAFT_NONE;
        o.commit_index = -1;
        o.config =
            (struct raft_config){.ids = {0, 1, 2}, .voter = {1, 1, 1}, .count = 3, .index = -1};
        o.config_prev = o.config;
        o.election_ticks = ELECTION;
        o.heartbeat_ticks = 2;
        o.pre_vote = true;
        o.check_quorum = true;
        o.quiesce = true;
        o.seed = (uint64_t)i + 11;
        o.log = &tops;
        o.log_ctx = &W.l[i];
        assert_int_equal(raft_init(&W.r[i], &o), 0);
        W.up[i] = true;
    }
}

/* Drains every ready, delivering messages (with their batches) until nothing is left. */
static void settle(void)
{
    for (int round = 0; round < 1000; round++) {
        bool any = false;
        for (int i = 0; i < N; i++) {
            struct raft_msg msgs[RAFT_OUTBOX_MSGS_MAX];
            struct raft_ready rd;
            uint32_t count;

            if (!W.up[i] || !raft_has_ready(&W.r[i]))
                continue;
            any = true;
            raft_ready(&W.r[i], &rd);
            count = rd.msg_count;
            memcpy(msgs, rd.msgs, count * sizeof(msgs[0]));
            raft_advance(&W.r[i]);
            if (rd.last_index >= 0) {
                int64_t term = -1;
                assert_int_equal(t_term_at(&W.l[i], rd.last_index, &term), 0);
                raft_persisted(&W.r[i], rd.last_index, term);
            }
            for (uint32_t k = 0; k < count; k++) {
                struct raft_msg m = msgs[k];
                struct raft_batch batches[LOG_MAX];
                uint16_t nb = 0;

                W.sent++;
                if (!W.up[m.to] || W.cut[i][m.to])
                    continue;
                if (m.type == RAFT_MSG_APPEND) {
                    for (int64_t b = 0; b < W.l[i].count; b++)
                        if (W.l[i].b[b].first_index > m.index &&
                            W.l[i].b[b].last_index <= m.last_index)
                            batches[nb++] = W.l[i].b[b];
                    m.batches = batches;
                    m.batch_count = nb;
                }
                assert_int_equal(raft_step(&W.r[m.to], &m), 0);
            }
        }
        if (!any)
            return;
    }
    fail_msg("messages never stop");
}

static void tick_all(int ticks)
{
    for (int t = 0; t < ticks; t++) {
        for (int i = 0; i < N; i++)
            if (W.up[i])
                raft_tick(&W.r[i]);
        settle();
    }
}

static int leader(void)
{
    int found = -1;
    for (int i = 0; i < N; i++)
        if (W.up[i] && W.r[i].role == RAFT_LEADER && (found < 0 || W.r[i].term > W.r[found].term))
            found = i;
    return found;
}

/* Elects a leader and lets the group go idle. */
static int elect_idle(void)
{
    net_init();
    for (int t = 0; t < 10 * ELECTION && leader() < 0; t++)
        tick_all(1);
    assert_true(leader() >= 0);
    tick_all(2 * ELECTION);
    return leader();
}

static bool all_quiesced(void)
{
    for (int i = 0; i < N; i++)
        if (W.up[i] && !W.r[i].quiesced)
            return false;
    return true;
}

/* An idle group stops: no message, no tick work, whatever time passes. */
static void test_idle_group_stops(void **state)
{
    (void)state;
    int l = elect_idle();
    assert_true(all_quiesced());
    assert_false(raft_lease_valid(&W.r[l])); /* a quiesced leader holds no lease */
    uint64_t sent = W.sent;
    int64_t term = W.r[l].term;
    tick_all(100 * ELECTION);
    assert_int_equal(W.sent, sent);
    assert_int_equal(leader(), l);
    assert_int_equal(W.r[l].term, term);
    for (int i = 0; i < N; i++)
        assert_int_equal(W.r[i].commit, W.r[l].commit);
}

/* A proposal wakes the group, commits everywhere, and the group stops again. */
static void test_propose_wakes(void **state)
{
    (void)state;
    struct raft_batch b;
    int l = elect_idle();

    assert_int_equal(raft_propose(&W.r[l], 3, 30, &b), 0);
    assert_false(W.r[l].quiesced);
    settle();
    for (int i = 0; i < N; i++)
        assert_false(W.r[i].quiesced); /* the append woke them */
    tick_all(2 * ELECTION);
    assert_true(all_quiesced());
    for (int i = 0; i < N; i++)
        assert_int_equal(W.r[i].commit, b.last_index);
    /* Woken for a lease: only heartbeats acknowledged after waking count. */
    assert_int_equal(raft_read_index(&W.r[l], 7), 0);
    assert_false(W.r[l].quiesced);
    settle();
    tick_all(1);
    assert_true(raft_lease_valid(&W.r[l]));
}

/* Bug caught: a follower that missed the quiesce heartbeat and campaigns must not be ignored by
 * a quiesced leader forever (its pre-votes are refused under the lease, so only waking the
 * leader brings it back); nor may it depose the leader: no term changes. */
static void test_lost_quiesce_heartbeat(void **state)
{
    (void)state;
    struct raft_batch b;
    int l = elect_idle();
    int f = (l + 1) % N;
    int64_t term = W.r[l].term;

    assert_int_equal(raft_propose(&W.r[l], 1, 10, &b), 0);
    settle();
    /* Let everything commit, then lose the leader's messages to f for exactly the tick that
     * quiesces the group. */
    for (int t = 0; t < 2 * ELECTION && !W.r[l].quiesced; t++) {
        W.cut[l][f] = true;
        raft_tick(&W.r[l]);
        settle();
        W.cut[l][f] = false;
        if (W.r[l].quiesced)
            break;
        for (int i = 0; i < N; i++)
            if (i != l)
                raft_tick(&W.r[i]);
        settle();
    }
    assert_true(W.r[l].quiesced);
    assert_false(W.r[f].quiesced);
    tick_all(4 * ELECTION);
    assert_true(all_quiesced());
    assert_int_equal(leader(), l);
    for (int i = 0; i < N; i++)
        assert_int_equal(W.r[i].term, term);
}

/* A quiesced group whose leader dies elects once the host reports the leader's node silent for
 * an election timeout: within another election timeout, as an unquiesced group would. */
static void test_leader_dies_while_quiesced(void **state)
{
    (void)state;
    int l = elect_idle();
    int64_t term = W.r[l].term;

    W.up[l] = false;
    tick_all(5 * ELECTION);
    assert_int_equal(leader(), -1); /* nobody notices without the host */
    for (int i = 0; i < N; i++)
        if (i != l)
            raft_wake(&W.r[i], l, ELECTION);
    int t = 0;
    for (; t < 4 * ELECTION && leader() < 0; t++)
        tick_all(1);
    assert_true(leader() >= 0 && leader() != l);
    assert_true(W.r[leader()].term > term);
    /* Timeout in [E, 2E) with E of it already elapsed, a pre-vote round; a split vote between
     * the two left costs another timeout (as in an unquiesced group). */
    assert_true(t <= 3 * ELECTION);
}

/* A wake for a node that is not the leader leaves a quiesced follower alone. */
static void test_wake_other_peer(void **state)
{
    (void)state;
    int l = elect_idle();
    int f = (l + 1) % N, other = (l + 2) % N;

    raft_wake(&W.r[f], other, ELECTION);
    assert_true(W.r[f].quiesced);
    raft_wake(&W.r[f], 99, ELECTION); /* not a member */
    assert_true(W.r[f].quiesced);
}

/* Bug caught: a quiesced leader cut off from both followers kept leading (and could serve lease
 * reads) while the others elected. Woken by the host, it must step down by check-quorum. */
static void test_cut_off_leader_steps_down(void **state)
{
    (void)state;
    int l = elect_idle();

    for (int i = 0; i < N; i++)
        if (i != l) {
            W.cut[l][i] = true;
            W.cut[i][l] = true;
        }
    for (int i = 0; i < N; i++) {
        if (i == l)
            continue;
        raft_wake(&W.r[l], i, ELECTION);
        raft_wake(&W.r[i], l, ELECTION);
    }
    settle();
    assert_false(raft_lease_valid(&W.r[l]));
    int t = 0;
    for (; t < 4 * ELECTION && W.r[l].role == RAFT_LEADER; t++) {
        tick_all(1);
        assert_false(raft_lease_valid(&W.r[l]));
    }
    assert_int_not_equal(W.r[l].role, RAFT_LEADER);
    assert_true(t <= 2 * ELECTION);
    for (t = 0; t < 4 * ELECTION && leader() < 0; t++)
        tick_all(1);
    int nl = leader();
    assert_true(nl >= 0 && nl != l);
    /* Healed: the old leader follows the new term and everyone goes quiet again. */
    memset(W.cut, 0, sizeof(W.cut));
    tick_all(4 * ELECTION);
    assert_int_equal(leader(), nl);
    assert_true(all_quiesced());
}

/* Fail-over time: a follower told its leader's node is gone (raft_leader_gone: the host saw the
 * connection reset) must not wait an election timeout. Bug caught: the survivors of a killed
 * leader sat out 300-600 ms of election timeout although the kernel had closed its sockets at
 * once. The first survivor in member order campaigns at once and the other, told the same,
 * grants its vote: a new leader with no tick at all, quiesced or not. */
static void leader_gone_elects_at_once(bool idle)
{
    int l;

    if (idle) {
        l = elect_idle();
        assert_true(all_quiesced());
    } else {
        net_init();
        for (int t = 0; t < 10 * ELECTION && leader() < 0; t++)
            tick_all(1);
        l = leader();
        assert_true(l >= 0);
    }
    int64_t term = W.r[l].term;
    W.up[l] = false;
    for (int k = 1; k < N; k++)
        raft_leader_gone(&W.r[(l + k) % N], l);
    settle();
    assert_int_equal(leader(), l == 0 ? 1 : 0);
    assert_true(W.r[leader()].term > term);
}

static void test_leader_gone_elects_at_once(void **state)
{
    (void)state;
    leader_gone_elects_at_once(false);
}

static void test_leader_gone_elects_at_once_when_quiesced(void **state)
{
    (void)state;
    leader_gone_elects_at_once(true);
}

/* False evidence (a connection closed by a proxy while the leader lives): the follower
 * campaigns, but the other follower still hears the leader and refuses its pre-vote, so the
 * leader keeps its term. Bug caught: evidence from one node deposing a healthy leader. */
static void test_leader_gone_false_evidence(void **state)
{
    (void)state;
    net_init();
    for (int t = 0; t < 10 * ELECTION && leader() < 0; t++)
        tick_all(1);
    int l = leader();
    assert_true(l >= 0);
    int64_t term = W.r[l].term;
    raft_leader_gone(&W.r[l == 0 ? 1 : 0], l); /* the first survivor */
    settle();
    tick_all(4 * ELECTION);
    assert_int_equal(leader(), l);
    for (int i = 0; i < N; i++)
        assert_int_equal(W.r[i].term, term);
}

/* The second survivor waits half an election timeout, then campaigns itself when the first
 * cannot win (here: it missed the last entry, so the second refuses it and it grants the
 * second). Bug caught: a behind first survivor stalling the fail-over for a whole timeout. */
static void test_leader_gone_second_survivor(void **state)
{
    (void)state;
    struct raft_batch b;
    int l = elect_idle();
    int first = l == 0 ? 1 : 0, second = l == 2 ? 1 : 2;
    int64_t term = W.r[l].term;

    W.cut[l][first] = true;
    assert_int_equal(raft_propose(&W.r[l], 1, 10, &b), 0);
    settle();
    assert_int_equal(W.r[second].commit, b.last_index);
    W.up[l] = false;
    raft_leader_gone(&W.r[first], l);
    raft_leader_gone(&W.r[second], l);
    settle();
    assert_int_equal(leader(), -1); /* the first's pre-vote: refused, its log is behind */
    int t = 0;
    for (; t < 2 * ELECTION && leader() < 0; t++)
        tick_all(1);
    assert_int_equal(leader(), second);
    assert_true(W.r[second].term > term);
    assert_true(t <= ELECTION / 2 + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_group_stops),
        cmocka_unit_test(test_propose_wakes),
        cmocka_unit_test(test_lost_quiesce_heartbeat),
        cmocka_unit_test(test_leader_dies_while_quiesced),
        cmocka_unit_test(test_wake_other_peer),
        cmocka_unit_test(test_cut_off_leader_steps_down),
        cmocka_unit_test(test_leader_gone_elects_at_once),
        cmocka_unit_test(test_leader_gone_elects_at_once_when_quiesced),
        cmocka_unit_test(test_leader_gone_false_evidence),
        cmocka_unit_test(test_leader_gone_second_survivor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
