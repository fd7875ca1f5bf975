/* Reflected CRC-32s: CRC-32C (Castagnoli), the checksum of every cow metadata structure, and the
 * IEEE CRC-32 of zlib and the GPT, from one table-driven implementation. */
#ifndef COW_CRC32C_H
#define COW_CRC32C_H
#include "port.h"
/* Eight tables: slicing-by-8 takes a checkpoint of a million extents in a fraction of the
 * bytewise time. */
struct crc32_table { uint32_t poly; bool ready; uint32_t t[8][256]; };
/* Continues `crc` (0 to start) over n bytes; the table is filled on first use. */
uint32_t crc32_reflected(struct crc32_table *tab, uint32_t crc, const void *data, size_t n);
uint32_t crc32c(uint32_t crc, const void *data, size_t n);   /* poly 0x82F63B78 */
#endif
