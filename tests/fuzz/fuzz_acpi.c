/* libFuzzer target: the ACPI walk (RSDP -> XSDT/RSDT -> MCFG, FADT) over a memory image taken
 * from the input. The image sits at physical 0x7f000000; the RSDP is at its start (or at the
 * address its first 8 bytes give, when the input starts with "@ADDR", for pointers outside). */
#include <stdlib.h>
#include <string.h>
#include "../../kernel/lib_acpi_parse.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly `size` bytes, so ASan sees any read past the image. */
	uint8_t *copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
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
