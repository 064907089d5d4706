/*
 * Shared by the io implementations only (io.c, io_posix.c, io_sim.c); nothing outside src/io
 * includes it.
 *
 * Every implementation's file handle starts with a struct io_file, so io.c can dispatch a call
 * on a file to the io that opened it. The handle is owned by the caller of io_open() and freed
 * by the implementation's close.
 */
#ifndef CHRONIK_IO_IO_IMPL_H
#define CHRONIK_IO_IO_IMPL_H

#include "io/io.h"

struct io_file {
    struct io *io; /* the io that opened the file; outlives it */
};

#define IO_FLAGS_ALL (IO_RDWR | IO_CREATE | IO_EXCL)

/* Whether open flags are a valid combination: IO_CREATE needs IO_RDWR, IO_EXCL needs IO_CREATE. */
static inline bool io_flags_valid(int flags)
{
    if ((flags & ~IO_FLAGS_ALL) != 0)
        return false;
    if ((flags & IO_CREATE) != 0 && (flags & IO_RDWR) == 0)
        return false;
    return (flags & IO_EXCL) == 0 || (flags & IO_CREATE) != 0;
}

#endif
