/* CRC-32, reflected polynomial 0xEDB88320, with a table built on first use. */
#include "lib_crc32.h"

static uint32_t table[256];

uint32_t crc32_ieee(uint32_t crc, const void *p, size_t n)
{
	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
			table[i] = c;
		}
	const uint8_t *b = p;
	crc = ~crc;
	while (n--)
		crc = table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return ~crc;
}
