/* CRC-32C (Castagnoli), as TFRecord framing uses, and TFRecord's mask. */
#ifndef CREMA_UTIL_CRC32C_H
#define CREMA_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over n bytes. */
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n);
static inline uint32_t crc32c(const void *data, size_t n)
{
    return crc32c_extend(0, data, n);
}
/* TFRecord stores CRCs rotated and offset, so that a CRC of data holding
 * CRCs stays well distributed. */
static inline uint32_t crc32c_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

#endif
