/* CRC-32C (Castagnoli), the checksum of every cow metadata structure. */
#ifndef COW_CRC32C_H
#define COW_CRC32C_H
#include "port.h"
uint32_t crc32c(uint32_t crc, const void *data, size_t n);   /* start with 0 */
#endif
