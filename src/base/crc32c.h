/*
 * CRC-32C (Castagnoli), as Kafka's RecordBatch v2 uses it.
 *
 * crc32c_update(0, p, n) is the standard CRC-32C of p; updates chain:
 * crc32c_update(crc32c_update(0, a, na), b, nb) == CRC of a followed by b.
 * The SSE4.2 instruction is used when the CPU has it, chosen once at run time; the table
 * implementation is the portable fallback. Both are exposed so tests can cross-check them.
 */
#ifndef CHRONIK_BASE_CRC32C_H
#define CHRONIK_BASE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_update(uint32_t crc, const void *p, size_t n);
static inline uint32_t crc32c(const void *p, size_t n)
{
    return crc32c_update(0, p, n);
}

uint32_t crc32c_update_sw(uint32_t crc, const void *p, size_t n);
/* Only callable when crc32c_hw_available() is true. */
uint32_t crc32c_update_hw(uint32_t crc, const void *p, size_t n);
bool crc32c_hw_available(void);

#endif
