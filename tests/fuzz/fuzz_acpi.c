/* libFuzzer target: the ACPI walk (RSDP -> XSDT/RSDT -> MCFG, FADT) over a memory image taken
 * from the input. The image sits at physical 0x7f000000; the RSDP is at its start (or at the
 * address its first 8 bytes give, when the input starts with "@ADDR", for pointers outside).
 * When the image's last byte is odd, the checksums of the RSDP and of every table it reaches
 * are re-sealed first, so mutations of the fields behind them are parsed, not just refused. */
#include <stdlib.h>
#include <string.h>
#include "../../lib/acpi_parse.h"

#define BASE 0x7f000000ull

struct image { const uint8_t *p; size_t n; };

static const void *map(void *ctx, uint64_t addr, uint32_t len)
{
	struct image *im = ctx;
	if (addr < BASE || addr - BASE > im->n || len > im->n - (addr - BASE))
		return NULL;
	return im->p + (addr - BASE);
}

static void note(void *ctx, const char *msg)
{
	(void)ctx;
	if (!memchr(msg, '\0', 160) || strchr(msg, '\n'))
		abort();   /* one line each, always terminated */
}

static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Sets p[at] so that the len bytes from p sum to zero. */
static void seal(uint8_t *p, size_t len, size_t at)
{
	uint8_t s = 0;
	p[at] = 0;
	for (size_t i = 0; i < len; i++)
		s = (uint8_t)(s + p[i]);
	p[at] = (uint8_t)-s;
}

/* The table at a physical address, its length clamped to the image; NULL outside it. */
static uint8_t *table(uint8_t *img, size_t n, uint64_t addr, uint32_t *len)
{
	if (addr < BASE || addr - BASE > n || n - (addr - BASE) < 36)
		return NULL;
	uint8_t *t = img + (addr - BASE);
	*len = rd32(t + 4);
	if (*len < 36 || *len > n - (addr - BASE))
		return NULL;
	return t;
}

static void reseal(uint8_t *img, size_t n)
{
	if (n < 20 || memcmp(img, "RSD PTR ", 8))
		return;
	seal(img, 20, 8);
	uint64_t roots[2] = { rd32(img + 16), 0 };
	if (img[15] >= 2 && n >= 36 && rd32(img + 20) >= 36 && rd32(img + 20) <= n) {
		roots[1] = rd64(img + 24);
		seal(img, rd32(img + 20), 32);
	}
	for (int r = 0; r < 2; r++) {
		uint32_t len, tlen;
		uint8_t *root = table(img, n, roots[r], &len);
		if (!root)
			continue;
		unsigned width = r ? 8 : 4;
		for (uint32_t off = 36; off + width <= len; off += width) {
			uint8_t *t = table(img, n, width == 8 ? rd64(root + off) : rd32(root + off), &tlen);
			if (t && t != root)
				seal(t, tlen, 9);
		}
		seal(root, len, 9);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly `size` bytes, so ASan sees any read past the image. */
	uint8_t *copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	if (size && (copy[size - 1] & 1))
		reseal(copy, size);
	struct image im = { copy, size };
	struct acpi_mem m = { map, &im, note };
	struct acpi_facts f;
	uint64_t rsdp = BASE;
	if (size >= 9 && copy[0] == '@') {
		memcpy(&rsdp, copy + 1, 8);
	}
	int rc = acpi_parse(&m, rsdp, &f);
	if (rc == 0 && (f.ecam_base & 0xfffff || f.ecam_bus_start > f.ecam_bus_end || f.pm_timer_port > 0xffff))
		abort();   /* a fact no check should have let through */
	free(copy);
	return 0;
}
