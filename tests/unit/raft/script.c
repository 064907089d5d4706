/*
 * A small interpreter for scripted Raft interaction tests with golden output, in the style of
 * etcd-io/raft's testdata/NAME.txt. One script drives one group of nodes by hand; every message
 * and every role or commit change is printed, and the output of each command is compared with
 * the expected text below it:
 *
 *   command arg...
 *   ----
 *   expected output
 *   <blank line>
 *
 * Commands: nodes N [voters=a,b,..] [prevote=0|1] [checkquorum=0|1]; tick ID [COUNT];
 * campaign ID; stabilize; deliver [ID]; drop ID; isolate ID; heal; propose ID [COUNT];
 * transfer ID TARGET; change ID add-voter|add-learner|remove NODE; read-index ID REQ;
 * compact ID INDEX; crash ID; restart ID; status ID; log ID.
 *
 * It owns every node and message of one script; script_run() frees them before returning.
 * With the environment variable RAFT_SCRIPT_REWRITE=1 it rewrites the expected output instead
 * of comparing (for reviewing a change by diff, never to make a failure pass unseen).
 */
#include "script.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/compiler.h"
#include "base/error.h"
#include "raft/raft.h"

#define NODES_MAX 8
#define QUEUE_MAX 4096

struct snode {
    int id;
    bool up;
    bool isolated;
    struct raft r;
    struct raft_batch *batches; /* the log as batches; ents[0] starts at start */
    uint32_t batch_count;
    uint32_t batch_cap;
    int64_t start;
    int64_t start_prev_term;
    struct raft_config start_cfg; /* membership as of start - 1 */
    int64_t durable_last;
    int64_t hs_term;
    int32_t hs_vote;
    const struct raft_msg *incoming;
    uint8_t role;
};

struct qmsg {
    struct raft_msg m;
    struct raft_batch batches[RAFT_MSG_BATCHES_MAX];
    bool snapshot;
    int64_t snap_index;
    int64_t snap_term;
    struct raft_config snap_cfg;
};

struct script {
    struct snode n[NODES_MAX + 1]; /* by id, 1-based */
    int count;
    bool pre_vote;
    bool check_quorum;
    struct raft_config cfg;
    struct qmsg *q;
    uint32_t q_len;
    struct buf out;
};

PRINTF_LIKE(2, 3) static void out(struct script *s, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    ASSERT(n >= 0);
    buf_append(&s->out, line, MIN((size_t)n, sizeof(line) - 1));
}

/* ---- log view ------------------------------------------------------------------------------- */

static int64_t n_last(const struct snode *n)
{
    return n->batch_count ? n->batches[n->batch_count - 1].last_index : n->start - 1;
}

static const struct raft_batch *n_batch(const struct snode *n, int64_t index)
{
    for (uint32_t i = 0; i < n->batch_count; i++) {
        if (index >= n->batches[i].first_index && index <= n->batches[i].last_index)
            return &n->batches[i];
    }
    return NULL;
}

static int64_t lv_start(void *ctx)
{
    return ((struct snode *)ctx)->start;
}

static int64_t lv_last(void *ctx)
{
    return n_last(ctx);
}

static int lv_term_at(void *ctx, int64_t index, int64_t *term)
{
    struct snode *n = ctx;
    const struct raft_batch *b;

    if (index == n->start - 1) {
        *term = n->start_prev_term;
        return 0;
    }
    b = n_batch(n, index);
    if (b == NULL)
        return ERR_RANGE;
    *term = b->term;
    return 0;
}

static int lv_batch_at(void *ctx, int64_t index, struct raft_batch *out_b)
{
    const struct raft_batch *b = n_batch(ctx, index);

    if (b == NULL)
        return ERR_RANGE;
    *out_b = *b;
    out_b->first_index = MAX(out_b->first_index, ((struct snode *)ctx)->start);
    return 0;
}

static void lv_append(void *ctx, const struct raft_batch *b)
{
    struct snode *n = ctx;

    ASSERT(b->first_index == n_last(n) + 1);
    if (n->batch_count == n->batch_cap) {
        n->batch_cap = n->batch_cap ? n->batch_cap * 2 : 16;
        n->batches = xrealloc(n->batches, n->batch_cap * sizeof(*n->batches));
    }
    n->batches[n->batch_count++] = *b;
}

static void lv_truncate(void *ctx, int64_t from)
{
    struct snode *n = ctx;

    while (n->batch_count > 0 && n->batches[n->batch_count - 1].first_index >= from)
        n->batch_count--;
    ASSERT(n_last(n) == from - 1);
    n->durable_last = MIN(n->durable_last, from - 1);
}

static const struct raft_log_ops script_log_ops = {
    .start_index = lv_start,
    .last_index = lv_last,
    .term_at = lv_term_at,
    .batch_at = lv_batch_at,
    .append = lv_append,
    .truncate = lv_truncate,
};

/* ---- nodes ---------------------------------------------------------------------------------- */

static void node_config(const struct snode *n, const struct raft_config *base,
                        struct raft_config *cfg, struct raft_config *prev)
{
    *cfg = *base;
    *prev = *base;
    for (uint32_t i = 0; i < n->batch_count; i++) {
        const struct raft_batch *b = &n->batches[i];
        struct raft_config next;

        if (b->kind != RAFT_BATCH_CONFIG || raft_config_apply(cfg, b->op, b->node, &next) != 0)
            continue;
        next.index = b->first_index;
        *prev = *cfg;
        *cfg = next;
    }
}

static void node_start(struct script *s, struct snode *n)
{
    struct raft_options o;
    int rc;

    memset(&o, 0, sizeof(o));
    o.self = n->id;
    o.term = n->hs_term;
    o.vote = n->hs_vote;
    o.commit_index = -1;
    node_config(n, &n->start_cfg, &o.config, &o.config_prev);
    o.election_ticks = RAFT_ELECTION_TICKS_DEFAULT;
    o.heartbeat_ticks = RAFT_HEARTBEAT_TICKS_DEFAULT;
    o.pre_vote = s->pre_vote;
    o.check_quorum = s->check_quorum;
    o.seed = (uint64_t)n->id;
    o.log = &script_log_ops;
    o.log_ctx = n;
    rc = raft_init(&n->r, &o);
    ASSERT(rc == 0);
    n->up = true;
    n->role = RAFT_FOLLOWER;
}

static void print_msg(struct script *s, const struct raft_msg *m)
{
    out(s, "%d->%d %s term=%" PRId64, m->from, m->to, raft_msg_name(m->type), m->term);
    switch (m->type) {
    case RAFT_MSG_PRE_VOTE:
    case RAFT_MSG_VOTE:
        out(s, " last=(%" PRId64 ",t%" PRId64 ")%s", m->index, m->log_term,
            m->flag ? " transfer" : "");
        break;
    case RAFT_MSG_APPEND:
        out(s, " prev=(%" PRId64 ",t%" PRId64 ") last=%" PRId64 " commit=%" PRId64, m->index,
            m->log_term, m->last_index, m->commit);
        break;
    case RAFT_MSG_APPEND_RESP:
        out(s, " index=%" PRId64, m->index);
        if (m->reject)
            out(s, " hint=(%" PRId64 ",t%" PRId64 ")", m->hint_index, m->hint_term);
        break;
    case RAFT_MSG_HEARTBEAT:
        out(s, " commit=%" PRId64, m->commit);
        break;
    default:
        break;
    }
    out(s, "%s\n", m->reject ? " reject" : "");
}

static void enqueue(struct script *s, struct snode *n, const struct raft_msg *m)
{
    struct qmsg *q;
    int64_t i = m->index + 1;
    uint16_t count = 0;

    if (s->q_len == QUEUE_MAX || n->isolated || m->to < 1 || m->to > s->count ||
        s->n[m->to].isolated)
        return;
    q = &s->q[s->q_len++];
    memset(q, 0, sizeof(*q));
    q->m = *m;
    while (m->type == RAFT_MSG_APPEND && i <= m->last_index) {
        struct raft_batch b;
        int rc = lv_batch_at(n, i, &b);

        ASSERT(rc == 0 && b.first_index == i && count < RAFT_MSG_BATCHES_MAX);
        q->batches[count++] = b;
        i = b.last_index + 1;
    }
    q->m.batch_count = count;
}

static void enqueue_snapshot(struct script *s, struct snode *n, int32_t to)
{
    struct qmsg *q;

    if (s->q_len == QUEUE_MAX || n->isolated || s->n[to].isolated)
        return;
    q = &s->q[s->q_len++];
    memset(q, 0, sizeof(*q));
    q->snapshot = true;
    q->m.from = n->id;
    q->m.to = to;
    q->snap_index = n->start - 1;
    q->snap_term = n->start_prev_term;
    q->snap_cfg = n->start_cfg;
    out(s, "%d->%d snapshot at (%" PRId64 ",t%" PRId64 ")\n", n->id, to, q->snap_index,
        q->snap_term);
}

/* Handles one node's ready: persist hard state, queue messages, report changes. */
static bool drain(struct script *s, struct snode *n)
{
    struct raft_ready rd;
    bool any = false;

    while (n->up && raft_has_ready(&n->r)) {
        any = true;
        raft_ready(&n->r, &rd);
        if (rd.hard_state_changed) {
            n->hs_term = rd.term;
            n->hs_vote = rd.vote;
        }
        if (rd.truncated_from >= 0)
            out(s, "%d truncated from %" PRId64 "\n", n->id, rd.truncated_from);
        for (uint32_t i = 0; i < rd.msg_count; i++)
            enqueue(s, n, &rd.msgs[i]);
        for (uint32_t i = 0; i < rd.snapshot_peer_count; i++)
            enqueue_snapshot(s, n, rd.snapshot_peers[i]);
        if (rd.role_changed && (rd.role != n->role || rd.role == RAFT_LEADER))
            out(s, "%d is %s at term %" PRId64 "\n", n->id, raft_role_name(rd.role), rd.term);
        n->role = rd.role;
        if (rd.commit_changed)
            out(s, "%d commit=%" PRId64 "\n", n->id, rd.commit_index);
        for (uint32_t i = 0; i < rd.read_count; i++)
            out(s, "%d read %" PRIu64 " ready at %" PRId64 "\n", n->id, rd.reads[i].id,
                rd.reads[i].index);
        raft_advance(&n->r);
    }
    return any;
}

static bool persist(struct script *s, struct snode *n)
{
    int64_t last = n_last(n), term = 0;

    if (!n->up || last <= n->durable_last)
        return false;
    n->durable_last = last;
    lv_term_at(n, last, &term);
    raft_persisted(&n->r, last, term);
    drain(s, n);
    return true;
}

static void deliver_one(struct script *s, struct qmsg *q)
{
    struct snode *n = &s->n[q->m.to];
    int rc;

    if (!n->up)
        return;
    if (q->snapshot) {
        struct raft_config cfg, prev;

        if (q->snap_index <= n->r.commit)
            return;
        n->batch_count = 0;
        n->start = q->snap_index + 1;
        n->start_prev_term = q->snap_term;
        n->start_cfg = q->snap_cfg;
        n->durable_last = q->snap_index;
        node_config(n, &n->start_cfg, &cfg, &prev);
        out(s, "%d installs snapshot at (%" PRId64 ",t%" PRId64 ")\n", n->id, q->snap_index,
            q->snap_term);
        rc = raft_snapshot_installed(&n->r, q->snap_index, q->snap_term, &cfg);
        ASSERT(rc == 0);
        return;
    }
    q->m.batches = q->batches;
    print_msg(s, &q->m);
    rc = raft_step(&n->r, &q->m);
    ASSERT(rc == 0);
}

/* Delivers what is queued now (messages sent meanwhile wait for the next round). */
static bool deliver_round(struct script *s, int only)
{
    uint32_t len = s->q_len, keep = 0;
    struct qmsg *batch;
    bool any = false;

    if (len == 0)
        return false;
    batch = xmalloc(len * sizeof(*batch));
    for (uint32_t i = 0; i < len; i++) {
        if (only == 0 || s->q[i].m.to == only)
            batch[keep++] = s->q[i];
    }
    /* Keep the others queued, in order. */
    {
        uint32_t j = 0;

        for (uint32_t i = 0; i < len; i++) {
            if (!(only == 0 || s->q[i].m.to == only))
                s->q[j++] = s->q[i];
        }
        s->q_len = j;
    }
    for (uint32_t i = 0; i < keep; i++) {
        deliver_one(s, &batch[i]);
        drain(s, &s->n[batch[i].m.to]);
        any = true;
    }
    free(batch);
    return any;
}

static void stabilize(struct script *s)
{
    for (int round = 0; round < 1000; round++) {
        bool any = false;

        for (int i = 1; i <= s->count; i++)
            any |= drain(s, &s->n[i]);
        for (int i = 1; i <= s->count; i++)
            any |= persist(s, &s->n[i]);
        any |= deliver_round(s, 0);
        if (!any)
            return;
    }
    out(s, "stabilize: did not settle\n");
}

static void status(struct script *s, struct snode *n)
{
    struct raft_progress pr[RAFT_MEMBERS_MAX];
    int count;

    if (!n->up) {
        out(s, "%d down\n", n->id);
        return;
    }
    out(s, "%d %s term=%" PRId64 " leader=%d commit=%" PRId64 " last=%" PRId64 " voters=", n->id,
        raft_role_name(n->r.role), n->r.term, n->r.leader, n->r.commit, n_last(n));
    for (uint32_t i = 0; i < n->r.config.count; i++) {
        out(s, "%s%d%s", i ? "," : "", n->r.config.ids[i], n->r.config.voter[i] ? "" : "(l)");
    }
    out(s, "\n");
    count = raft_progress(&n->r, pr, RAFT_MEMBERS_MAX);
    for (int i = 0; i < count; i++)
        out(s, "  %d match=%" PRId64 "\n", pr[i].id, pr[i].match_index);
}

static void print_log(struct script *s, struct snode *n)
{
    static const char *const kinds[] = {"data", "noop", "config"};

    out(s, "%d log start=%" PRId64 ":", n->id, n->start);
    for (uint32_t i = 0; i < n->batch_count; i++) {
        const struct raft_batch *b = &n->batches[i];

        out(s, " [%" PRId64 "-%" PRId64 " t%" PRId64 " %s]", b->first_index, b->last_index, b->term,
            kinds[b->kind]);
    }
    out(s, "\n");
}

/* ---- commands ------------------------------------------------------------------------------- */

static int arg_int(char **argv, int argc, int i, int def)
{
    return i < argc ? atoi(argv[i]) : def;
}

static struct snode *arg_node(struct script *s, char **argv, int argc, int i)
{
    int id = arg_int(argv, argc, i, 0);

    if (id < 1 || id > s->count) {
        out(s, "error: bad node\n");
        return NULL;
    }
    return &s->n[id];
}

static void cmd_nodes(struct script *s, char **argv, int argc)
{
    int count = arg_int(argv, argc, 1, 3);

    ASSERT(count >= 1 && count <= NODES_MAX);
    /* A fresh group: forget every node and message of the previous one. */
    for (int i = 1; i <= NODES_MAX; i++) {
        free(s->n[i].batches);
        memset(&s->n[i], 0, sizeof(s->n[i]));
    }
    s->q_len = 0;
    s->count = count;
    s->pre_vote = true;
    s->check_quorum = true;
    memset(&s->cfg, 0, sizeof(s->cfg));
    s->cfg.index = -1;
    for (int i = 2; i < argc; i++) {
        if (strncmp(argv[i], "voters=", 7) == 0) {
            for (char *p = argv[i] + 7; *p != '\0';) {
                s->cfg.ids[s->cfg.count] = (int32_t)strtol(p, &p, 10);
                s->cfg.voter[s->cfg.count++] = 1;
                if (*p == ',')
                    p++;
            }
        } else if (strncmp(argv[i], "prevote=", 8) == 0) {
            s->pre_vote = argv[i][8] == '1';
        } else if (strncmp(argv[i], "checkquorum=", 12) == 0) {
            s->check_quorum = argv[i][12] == '1';
        }
    }
    if (s->cfg.count == 0) {
        for (int i = 1; i <= count; i++) {
            s->cfg.ids[s->cfg.count] = i;
            s->cfg.voter[s->cfg.count++] = 1;
        }
    }
    for (int i = 1; i <= count; i++) {
        struct snode *n = &s->n[i];

        n->id = i;
        n->hs_vote = RAFT_NONE;
        n->durable_last = -1;
        n->start_cfg = s->cfg;
        node_start(s, n);
    }
}

static void cmd_change(struct script *s, struct snode *n, char **argv, int argc)
{
    const char *what = argc > 2 ? argv[2] : "";
    struct raft_batch b;
    uint8_t op = strcmp(what, "add-voter") == 0     ? RAFT_CHANGE_ADD_VOTER
                 : strcmp(what, "add-learner") == 0 ? RAFT_CHANGE_ADD_LEARNER
                 : strcmp(what, "remove") == 0      ? RAFT_CHANGE_REMOVE
                                                    : RAFT_CHANGE_NONE;
    int rc = raft_change(&n->r, op, arg_int(argv, argc, 3, 0), &b);

    if (rc != 0)
        out(s, "error: %s\n", err_str(rc));
    else
        out(s, "config change at %" PRId64 "\n", b.first_index);
    drain(s, n);
}

static void cmd_campaign(struct script *s, struct snode *n)
{
    /* Ticks until the node's randomised election timeout fires. */
    for (uint32_t i = 0; i < 2 * RAFT_ELECTION_TICKS_DEFAULT + 1; i++) {
        raft_tick(&n->r);
        if (raft_has_ready(&n->r))
            break;
    }
    drain(s, n);
}

static void run_command(struct script *s, char **argv, int argc)
{
    const char *c = argv[0];
    struct snode *n = NULL;
    int rc;

    if (strcmp(c, "nodes") == 0) {
        cmd_nodes(s, argv, argc);
        return;
    }
    if (strcmp(c, "stabilize") == 0) {
        stabilize(s);
        return;
    }
    if (strcmp(c, "heal") == 0) {
        for (int i = 1; i <= s->count; i++)
            s->n[i].isolated = false;
        return;
    }
    if (strcmp(c, "deliver") == 0) {
        deliver_round(s, arg_int(argv, argc, 1, 0));
        return;
    }
    n = arg_node(s, argv, argc, 1);
    if (n == NULL)
        return;
    if (strcmp(c, "tick") == 0) {
        for (int i = 0; i < arg_int(argv, argc, 2, 1); i++) {
            raft_tick(&n->r);
            drain(s, n);
        }
    } else if (strcmp(c, "campaign") == 0) {
        cmd_campaign(s, n);
    } else if (strcmp(c, "persist") == 0) {
        persist(s, n);
    } else if (strcmp(c, "isolate") == 0) {
        n->isolated = true;
    } else if (strcmp(c, "drop") == 0) {
        uint32_t j = 0;

        for (uint32_t i = 0; i < s->q_len; i++) {
            if (s->q[i].m.to != n->id)
                s->q[j++] = s->q[i];
        }
        s->q_len = j;
    } else if (strcmp(c, "propose") == 0) {
        struct raft_batch b;
        uint32_t count = (uint32_t)arg_int(argv, argc, 2, 1);

        rc = raft_propose(&n->r, count, count * 100, &b);
        if (rc != 0)
            out(s, "error: %s\n", err_str(rc));
        else
            out(s, "proposed [%" PRId64 "-%" PRId64 "] t%" PRId64 "\n", b.first_index, b.last_index,
                b.term);
        drain(s, n);
    } else if (strcmp(c, "transfer") == 0) {
        rc = raft_transfer(&n->r, arg_int(argv, argc, 2, 0));
        if (rc != 0)
            out(s, "error: %s\n", err_str(rc));
        drain(s, n);
    } else if (strcmp(c, "change") == 0) {
        cmd_change(s, n, argv, argc);
    } else if (strcmp(c, "read-index") == 0) {
        rc = raft_read_index(&n->r, (uint64_t)arg_int(argv, argc, 2, 0));
        if (rc != 0)
            out(s, "error: %s\n", err_str(rc));
        drain(s, n);
    } else if (strcmp(c, "lease") == 0) {
        out(s, "%d lease %s\n", n->id, raft_lease_valid(&n->r) ? "valid" : "invalid");
    } else if (strcmp(c, "compact") == 0) {
        int64_t to = arg_int(argv, argc, 2, 0);
        struct raft_config cfg, prev;
        uint32_t keep = 0;

        ASSERT(to <= n->r.commit + 1 && to > n->start);
        /* The membership as of to - 1 becomes the snapshot's. */
        {
            struct snode tmp = *n;

            tmp.batch_count = 0;
            while (tmp.batch_count < n->batch_count && n->batches[tmp.batch_count].last_index < to)
                tmp.batch_count++;
            node_config(&tmp, &n->start_cfg, &cfg, &prev);
        }
        lv_term_at(n, to - 1, &n->start_prev_term);
        for (uint32_t i = 0; i < n->batch_count; i++) {
            if (n->batches[i].last_index >= to)
                n->batches[keep++] = n->batches[i];
        }
        n->batch_count = keep;
        n->start = to;
        n->start_cfg = cfg;
    } else if (strcmp(c, "crash") == 0) {
        /* Everything not persisted is lost. */
        while (n->batch_count > 0 && n_last(n) > n->durable_last)
            n->batch_count--;
        n->up = false;
    } else if (strcmp(c, "restart") == 0) {
        node_start(s, n);
    } else if (strcmp(c, "status") == 0) {
        status(s, n);
    } else if (strcmp(c, "log") == 0) {
        print_log(s, n);
    } else {
        out(s, "error: unknown command %s\n", c);
    }
}

/* ---- the file ------------------------------------------------------------------------------- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text;
    long len;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = xmalloc((size_t)len + 1);
    if (fread(text, 1, (size_t)len, f) != (size_t)len)
        len = 0;
    text[len] = '\0';
    fclose(f);
    return text;
}

int script_run(const char *path)
{
    char *text = read_all(path), *p, *argv[16];
    struct buf rewritten;
    struct script *s;
    bool rewrite = getenv("RAFT_SCRIPT_REWRITE") != NULL, ok = true;
    int line_no = 0;

    if (text == NULL) {
        fprintf(stderr, "%s: cannot read\n", path);
        return -1;
    }
    s = xcalloc(1, sizeof(*s));
    s->q = xcalloc(QUEUE_MAX, sizeof(*s->q));
    buf_init(&s->out);
    buf_init(&rewritten);
    p = text;
    while (*p != '\0') {
        char *eol = strchr(p, '\n'), cmd[256], *expect;
        size_t expect_len;
        int argc = 0;

        line_no = 1;
        for (const char *c = text; c < p; c++)
            line_no += *c == '\n';
        if (eol == NULL)
            eol = p + strlen(p);
        if (eol == p || *p == '#') {
            buf_append(&rewritten, p, (size_t)(eol - p) + (*eol ? 1 : 0));
            p = *eol ? eol + 1 : eol;
            continue;
        }
        ASSERT((size_t)(eol - p) < sizeof(cmd));
        memcpy(cmd, p, (size_t)(eol - p));
        cmd[eol - p] = '\0';
        buf_append(&rewritten, p, (size_t)(eol - p));
        buf_append(&rewritten, "\n----\n", 6);
        p = *eol ? eol + 1 : eol;
        ASSERT(strncmp(p, "----\n", 5) == 0);
        p += 5;
        /* The expected output runs to the first empty line. */
        expect = p;
        while (*p != '\0' && *p != '\n') {
            char *e = strchr(p, '\n');

            p = e ? e + 1 : p + strlen(p);
        }
        expect_len = (size_t)(p - expect);
        for (char *tok = strtok(cmd, " \t"); tok != NULL && argc < 16; tok = strtok(NULL, " \t"))
            argv[argc++] = tok;
        buf_reset(&s->out);
        run_command(s, argv, argc);
        if (!rewrite && (s->out.len != expect_len ||
                         (expect_len > 0 && memcmp(s->out.data, expect, expect_len) != 0))) {
            fprintf(stderr, "%s:%d: output differs for \"%s\"\nexpected:\n%.*s\ngot:\n%.*s\n", path,
                    line_no, argv[0], (int)expect_len, expect, (int)s->out.len,
                    (const char *)s->out.data);
            ok = false;
        }
        if (s->out.len > 0)
            buf_append(&rewritten, s->out.data, s->out.len);
        if (*p == '\n') {
            buf_append(&rewritten, "\n", 1);
            p++;
        }
    }
    if (rewrite) {
        FILE *f = fopen(path, "wb");

        ASSERT(f != NULL);
        fwrite(rewritten.data, 1, rewritten.len, f);
        fclose(f);
    }
    for (int i = 1; i <= NODES_MAX; i++)
        free(s->n[i].batches);
    buf_deinit(&s->out);
    buf_deinit(&rewritten);
    free(s->q);
    free(s);
    free(text);
    return ok ? 0 : -1;
}
