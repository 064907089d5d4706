/*
 * An LD_PRELOAD shim that makes one pread(2) of a chosen file fail with EIO, for tests of how
 * the broker survives a read error it cannot otherwise be made to see (test_regressions.py).
 *
 * Environment: PREAD_FAULT_PATH names the file (a substring of its path); every pread of it is
 * counted from 1. PREAD_FAULT_TRACE, when set, is a file to which each such pread appends
 * "<count> <bytes> <offset>". PREAD_FAULT_FAIL, when set, is the count of the pread that fails.
 * Reads of other files, and all of them when PREAD_FAULT_PATH is unset, go through untouched.
 * The broker reads on its loop thread only, so the count is the same from run to run.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t pread_fn(int fd, void *buf, size_t n, off_t off);

static long count;

static int matches(int fd, const char *want)
{
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof(path) - 1);
    if (len < 0)
        return 0;
    path[len] = '\0';
    return strstr(path, want) != NULL;
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    static pread_fn *real;
    if (real == NULL)
        real = (pread_fn *)dlsym(RTLD_NEXT, "pread");
    const char *want = getenv("PREAD_FAULT_PATH");
    if (want == NULL || !matches(fd, want))
        return real(fd, buf, n, off);
    count++;
    const char *trace = getenv("PREAD_FAULT_TRACE");
    if (trace != NULL) {
        FILE *f = fopen(trace, "a");
        if (f != NULL) {
            fprintf(f, "%ld %zu %lld\n", count, n, (long long)off);
            fclose(f);
        }
    }
    const char *fail = getenv("PREAD_FAULT_FAIL");
    if (fail != NULL && atol(fail) == count) {
        errno = EIO;
        return -1;
    }
    return real(fd, buf, n, off);
}
