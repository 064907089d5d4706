#include "base/clock.h"

#include "base/assert.h"

#include <time.h>

static uint64_t real_mono_ns(struct clock *c)
{
    (void)c;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t real_wall_ms(struct clock *c)
{
    (void)c;
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    ASSERT(rc == 0);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct clock_ops real_ops = {.mono_ns = real_mono_ns, .wall_ms = real_wall_ms};
static struct clock real_clock = {.ops = &real_ops};

struct clock *clock_real(void)
{
    return &real_clock;
}

static uint64_t sim_mono_ns(struct clock *c)
{
    return CONTAINER_OF(c, struct clock_sim, clock)->mono_ns;
}

static int64_t sim_wall_ms(struct clock *c)
{
    struct clock_sim *s = CONTAINER_OF(c, struct clock_sim, clock);
    return s->wall_ms_at_start + (int64_t)(s->mono_ns / 1000000u);
}

static const struct clock_ops sim_ops = {.mono_ns = sim_mono_ns, .wall_ms = sim_wall_ms};

void clock_sim_init(struct clock_sim *c, int64_t wall_ms_at_start)
{
    c->clock.ops = &sim_ops;
    c->mono_ns = 0;
    c->wall_ms_at_start = wall_ms_at_start;
}

void clock_sim_advance_ns(struct clock_sim *c, uint64_t ns)
{
    ASSERT(c->mono_ns + ns >= c->mono_ns);
    c->mono_ns += ns;
}
