/* Reflected CRC-32, bytewise with a per-polynomial table built on first use. */
#include "crc32c.h"

uint32_t crc32_reflected(struct crc32_table *tab, uint32_t crc, const void *data, size_t n)
{
	if (!tab->t[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c >> 1) ^ (tab->poly & (0u - (c & 1)));
			tab->t[i] = c;
		}
	const uint8_t *p = data;
	crc = ~crc;
	while (n--)
		crc = tab->t[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t n)
{
	static struct crc32_table castagnoli = { 0x82F63B78u, { 0 } };
	return crc32_reflected(&castagnoli, crc, data, n);
}
