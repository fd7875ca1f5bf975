/* CRC-32 (IEEE 802.3), on the shared reflected-CRC implementation in cow/. */
#include "crc32.h"
#include "crc32c.h"

uint32_t crc32_ieee(uint32_t crc, const void *p, size_t n)
{
	static struct crc32_table ieee = { 0xEDB88320u, false, { { 0 } } };
	return crc32_reflected(&ieee, crc, p, n);
}
