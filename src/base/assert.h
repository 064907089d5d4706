/*
 * ASSERT: checks for programmer errors, on in every build type (release included).
 *
 * An ASSERT states something the code itself guarantees. Bytes that came from the network or
 * from disk are never ASSERTed: they are validated and rejected with an error code.
 */
#ifndef CHRONIK_BASE_ASSERT_H
#define CHRONIK_BASE_ASSERT_H

#include "base/compiler.h"

/* Prints "file:line: assertion failed: expr" to stderr and aborts. Never returns. */
NORETURN void base_panic(const char *file, int line, const char *what);

#define ASSERT(cond)                                                    \
    do {                                                                \
        if (UNLIKELY(!(cond)))                                          \
            base_panic(__FILE__, __LINE__, "assertion failed: " #cond); \
    } while (0)

#define UNREACHABLE() base_panic(__FILE__, __LINE__, "unreachable code reached")

/* Compile-time assertion, usable at file scope. */
#define STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

#endif
