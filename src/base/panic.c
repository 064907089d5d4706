/*
 * The one place a failed ASSERT ends up. It writes with write(2), not stdio, so it works even
 * when the heap or stdio state is what is broken.
 */
#include "base/assert.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

void base_panic(const char *file, int line, const char *what)
{
    char num[16];
    int i = (int)sizeof(num) - 1;
    unsigned v = line < 0 ? 0u : (unsigned)line;
    num[i] = '\0';
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && i > 0);
    put(file);
    put(":");
    put(&num[i]);
    put(": ");
    put(what);
    put("\n");
    abort();
}
