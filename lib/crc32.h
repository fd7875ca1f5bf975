/* CRC-32 (IEEE 802.3, as zlib's crc32 and the GPT use it). */
#ifndef KERNEL_LIB_CRC32_H
#define KERNEL_LIB_CRC32_H
#include <stddef.h>
#include <stdint.h>
/* Continues `crc` (0 to start) over n bytes. */
uint32_t crc32_ieee(uint32_t crc, const void *p, size_t n);
#endif
