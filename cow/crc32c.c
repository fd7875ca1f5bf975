/* CRC-32C, reflected polynomial 0x82F63B78, bytewise with a table built on first use. */
#include "crc32c.h"

static uint32_t table[256];

uint32_t crc32c(uint32_t crc, const void *data, size_t n)
{
	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
			table[i] = c;
		}
	const uint8_t *p = data;
	crc = ~crc;
	while (n--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}
