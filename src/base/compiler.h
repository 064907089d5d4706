/*
 * Small compiler helpers shared by every module. No functions, no state.
 */
#ifndef CHRONIK_BASE_COMPILER_H
#define CHRONIK_BASE_COMPILER_H

#include <stddef.h>

#define LIKELY(x)              __builtin_expect(!!(x), 1)
#define UNLIKELY(x)            __builtin_expect(!!(x), 0)
#define NORETURN               __attribute__((noreturn))
#define UNUSED                 __attribute__((unused))
#define MUST_USE               __attribute__((warn_unused_result))
#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* MIN and MAX evaluate an argument twice: never pass one with a side effect (a call to rng_*). */
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* The enclosing struct of a member pointer. */
#define CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
