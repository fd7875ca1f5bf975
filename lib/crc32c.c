/* Reflected CRC-32, slicing-by-8 with per-polynomial tables built on first use. */
#include "crc32c.h"

static void build(struct crc32_table *tab)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (tab->poly & (0u - (c & 1)));
		tab->t[0][i] = c;
	}
	for (int k = 1; k < 8; k++)
		for (uint32_t i = 0; i < 256; i++)
			tab->t[k][i] = (tab->t[k - 1][i] >> 8) ^ tab->t[0][tab->t[k - 1][i] & 0xff];
	tab->ready = true;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t crc32_reflected(struct crc32_table *tab, uint32_t crc, const void *data, size_t n)
{
	if (!tab->ready)
		build(tab);
	const uint32_t (*t)[256] = tab->t;
	const uint8_t *p = data;
	crc = ~crc;
	for (; n >= 8; n -= 8, p += 8) {
		uint32_t a = crc ^ le32(p), b = le32(p + 4);
		crc = t[7][a & 0xff] ^ t[6][(a >> 8) & 0xff] ^ t[5][(a >> 16) & 0xff] ^ t[4][a >> 24] ^
		      t[3][b & 0xff] ^ t[2][(b >> 8) & 0xff] ^ t[1][(b >> 16) & 0xff] ^ t[0][b >> 24];
	}
	while (n--)
		crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t crc32c(uint32_t crc, const void *data, size_t n)
{
	static struct crc32_table castagnoli = { 0x82F63B78u, false, { { 0 } } };
	return crc32_reflected(&castagnoli, crc, data, n);
}
