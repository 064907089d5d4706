/*
 * The clock interface. Code that needs time takes a struct clock * instead of calling
 * clock_gettime, so tests and simulations can drive time by hand.
 *
 * mono_ns: monotonic nanoseconds, for timeouts and durations.
 * wall_ms: milliseconds since the Unix epoch, for timestamps that leave the process (record
 * timestamps, retention by time).
 */
#ifndef CHRONIK_BASE_CLOCK_H
#define CHRONIK_BASE_CLOCK_H

#include <stdint.h>

struct clock;

struct clock_ops {
    uint64_t (*mono_ns)(struct clock *c);
    int64_t (*wall_ms)(struct clock *c);
};

struct clock {
    const struct clock_ops *ops;
};

static inline uint64_t clock_mono_ns(struct clock *c)
{
    return c->ops->mono_ns(c);
}
static inline uint64_t clock_mono_ms(struct clock *c)
{
    return c->ops->mono_ns(c) / 1000000u;
}
static inline int64_t clock_wall_ms(struct clock *c)
{
    return c->ops->wall_ms(c);
}

/* The system clock. It has no state; the returned object is shared and never freed. */
struct clock *clock_real(void);

/* A clock that moves only when told to. Thread-compatible, not thread-safe. */
struct clock_sim {
    struct clock clock;
    uint64_t mono_ns;
    int64_t wall_ms_at_start;
};

void clock_sim_init(struct clock_sim *c, int64_t wall_ms_at_start);
void clock_sim_advance_ns(struct clock_sim *c, uint64_t ns);
static inline void clock_sim_advance_ms(struct clock_sim *c, uint64_t ms)
{
    clock_sim_advance_ns(c, ms * 1000000u);
}

#endif
