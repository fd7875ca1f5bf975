/* The ACPI parser on QEMU 7.2's own tables (tests/fuzz/seeds/acpi, made by tests/fuzz/mkseeds.py
 * from fw_cfg) and on the broken variants beside them: the facts the kernel needs come out of
 * the good ones, and each broken table is refused and named while the rest still count. */
#include "../../lib/acpi_parse.h"
#include "../lib/check.h"
#include "../../lib/errors.h"
#include <stdlib.h>
#include <string.h>

#define BASE 0x7f000000ull

static uint8_t *img;
static size_t img_len;
static char notes[4096];

static const void *map(void *ctx, uint64_t addr, uint32_t len)
{
	(void)ctx;
	if (addr < BASE || addr - BASE > img_len || len > img_len - (addr - BASE))
		return NULL;
	return img + (addr - BASE);
}

static void note(void *ctx, const char *msg)
{
	(void)ctx;
	strncat(notes, msg, sizeof(notes) - strlen(notes) - 2);
	strcat(notes, "\n");
}

static int parse(const char *seed, struct acpi_facts *f)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/fuzz/seeds/acpi/%s",
		 getenv("COWBOOT_ROOT") ? getenv("COWBOOT_ROOT") : ".", seed);
	FILE *fp = fopen(path, "rb");
	free(img);
	img = malloc(1 << 20);
	img_len = fp ? fread(img, 1, 1 << 20, fp) : 0;
	if (fp)
		fclose(fp);
	notes[0] = '\0';
	struct acpi_mem m = { map, NULL, note };
	return img_len ? acpi_parse(&m, BASE, f) : -1;
}

int main(void)
{
	struct acpi_facts f;
	int rc = parse("ovmf-q35-xsdt", &f);
	CHECK("q35 under an RSDP 2.0: the XSDT is used", rc == 0 && !strcmp(f.root, "XSDT") && f.rsdp_revision == 2);
	CHECK("q35: MCFG gives ECAM at 0xb0000000 for buses 0-255",
	      f.ecam_base == 0xb0000000 && f.ecam_bus_start == 0 && f.ecam_bus_end == 255);
	CHECK("q35: the PM timer is ICH9's port 0x608", f.pm_timer_port == 0x608);
	CHECK("q35: all five tables pass, nothing noted", f.tables == 5 && f.bad == 0 && !notes[0]);

	rc = parse("qemu-q35-rsdt", &f);
	CHECK("QEMU's own RSDP is revision 0: the RSDT is used",
	      rc == 0 && !strcmp(f.root, "RSDT") && f.rsdp_revision == 0 && f.ecam_base == 0xb0000000);
	rc = parse("qemu-pc-rsdt", &f);
	CHECK("i440fx: no MCFG, PM timer at PIIX4's 0xb008",
	      rc == 0 && !f.ecam_base && f.pm_timer_port == 0xb008 && f.bad == 0);

	rc = parse("bad-mcfg-checksum", &f);
	CHECK("an MCFG with a wrong checksum is refused and named, the FADT still used",
	      rc == 0 && !f.ecam_base && f.pm_timer_port == 0x608 && f.bad == 1 &&
	      strstr(notes, "MCFG") && strstr(notes, "checksum mismatch"));
	rc = parse("xsdt-entry-nowhere", &f);
	CHECK("an XSDT entry pointing outside memory is named and skipped",
	      rc == 0 && f.bad == 1 && f.tables == 4 && strstr(notes, "0xfee00000 is outside the memory map"));
	rc = parse("bad-xsdt-use-rsdt", &f);
	CHECK("a broken XSDT falls back to the RSDT", rc == 0 && !strcmp(f.root, "RSDT") &&
	      f.ecam_base == 0xb0000000 && strstr(notes, "using the RSDT"));
	rc = parse("short-fadt", &f);
	CHECK("a FADT cut to 80 bytes still gives its PM timer, nothing read past it",
	      rc == 0 && f.pm_timer_port == 0x608);

	/* A revision-2 RSDP whose length points past the memory: the RSDT is used, said once. */
	parse("ovmf-q35-xsdt", &f);
	uint32_t big = 0x10000;
	memcpy(img + 20, &big, 4);
	struct acpi_mem m = { map, NULL, note };
	notes[0] = '\0';
	img_len = 0x3000;
	rc = acpi_parse(&m, BASE, &f);
	CHECK("an RSDP 2.0 length beyond memory: RSDT used", rc == 0 && !strcmp(f.root, "RSDT") &&
	      strstr(notes, "length 65536 is impossible"));
	notes[0] = '\0';
	rc = acpi_parse(&m, 0, &f);
	CHECK("no RSDP at all is an error, named", rc == -E_NOENT && strstr(notes, "RSDP"));
	return CHECK_DONE();
}
