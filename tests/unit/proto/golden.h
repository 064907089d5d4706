/*
 * Golden Kafka frames for codec tests: a table of files below tests/golden/ and a loader. The
 * caller owns (and frees with free()) the bytes golden_load returns.
 */
#ifndef CHRONIK_TESTS_PROTO_GOLDEN_H
#define CHRONIK_TESTS_PROTO_GOLDEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct golden_frame {
    const char *path; /* below tests/golden/ */
    int16_t api_key;
    int16_t api_version;
    bool response;
};

extern const struct golden_frame golden_frames[];
extern const size_t golden_frame_count;

/* Reads the byte array of a golden file (path below tests/golden/); 0 or a negative error. */
int golden_load(const char *path, uint8_t **out, size_t *len_out);

#endif
