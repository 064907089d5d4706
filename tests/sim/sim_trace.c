/*
 * The trace ring and the node clocks of the simulators (sim_trace.h).
 */
#include "sim/sim_trace.h"

#include "base/compiler.h"

#include <inttypes.h>
#include <stdio.h>

void sim_trace_line(struct sim_trace *t, uint64_t now, const char *fmt, va_list ap)
{
    char *line = t->lines[t->count++ % SIM_TRACE_RING];
    int n = snprintf(line, SIM_TRACE_BYTES, "%7" PRIu64 " ", now);

    vsnprintf(line + n, SIM_TRACE_BYTES - (size_t)n, fmt, ap);
    if (t->echo)
        printf("%s\n", line);
}

PRINTF_LIKE(3, 4) static void trace_fmt(struct sim_trace *t, uint64_t now, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sim_trace_line(t, now, fmt, ap);
    va_end(ap);
}

bool sim_trace_fail(struct sim_trace *t, uint64_t now, bool *failed, char *why, size_t why_size,
                    const char *fmt, va_list ap)
{
    if (*failed)
        return false;
    *failed = true;
    vsnprintf(why, why_size, fmt, ap);
    trace_fmt(t, now, "VIOLATION: %s", why);
    return true;
}

void sim_trace_print(const struct sim_trace *t)
{
    uint64_t first = t->count > SIM_TRACE_RING ? t->count - SIM_TRACE_RING : 0;

    for (uint64_t i = first; i < t->count; i++)
        printf("  %s\n", t->lines[i % SIM_TRACE_RING]);
}

static uint64_t node_mono_ns(struct clock *c)
{
    struct sim_node_clock *k = (struct sim_node_clock *)c;
    return clock_mono_ns(k->base) + k->mono_skew_ns;
}

static int64_t node_wall_ms(struct clock *c)
{
    struct sim_node_clock *k = (struct sim_node_clock *)c;
    return clock_wall_ms(k->base) + k->wall_skew_ms;
}

static const struct clock_ops node_clock_ops = {.mono_ns = node_mono_ns, .wall_ms = node_wall_ms};

void sim_node_clock_init(struct sim_node_clock *k, struct clock *base)
{
    *k = (struct sim_node_clock){.clock = {.ops = &node_clock_ops}, .base = base};
}
