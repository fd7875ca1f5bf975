/* The SMBIOS parsers (lib/smbios.c) on tables laid out as QEMU 7.2 builds them (the fuzzer's
 * seeds), damaged ones, and both kinds of entry point. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../lib/errors.h"
#include "../../lib/smbios.h"
#include "../lib/check.h"

static size_t load(const char *name, uint8_t *buf, size_t max)
{
	char path[512];
	const char *root = getenv("COWBOOT_ROOT");
	snprintf(path, sizeof(path), "%s/tests/fuzz/seeds/smbios/%s", root ? root : ".", name);
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(buf, 1, max, f) : 0;
	if (f)
		fclose(f);
	return n;
}

int main(void)
{
	static uint8_t t[4096];
	struct smbios_system s;
	size_t n = load("qemu-q35-table", t, sizeof(t));
	CHECK("a QEMU table: type 1's strings", n && smbios_system(t, n, &s) == 0 && !strcmp(s.manufacturer, "QEMU") &&
						    !strcmp(s.product, "Standard PC (Q35 + ICH9, 2009)") && !strcmp(s.serial, "MACH-42"));
	n = load("qemu-q35-no-serial", t, sizeof(t));
	CHECK("no serial string: empty", n && smbios_system(t, n, &s) == 0 && !s.serial[0] && !strcmp(s.manufacturer, "QEMU"));
	n = load("qemu-q35-table", t, sizeof(t));
	int bad = 0;
	for (size_t cut = 1; cut < n; cut++) {   /* every truncation: refused or read within bounds */
		int rc = smbios_system(t, cut, &s);
		bad += rc != -E_CORRUPT && rc != -E_NOENT && rc != 0;
	}
	CHECK("every truncated table is refused or read within its bounds", bad == 0);
	uint8_t z[64] = { 1, 2 };   /* a structure shorter than its header */
	CHECK("a structure length below 4 is corrupt", smbios_system(z, sizeof(z), &s) == -E_CORRUPT);
	uint64_t addr;
	uint32_t len;
	n = load("entry3-and-table", t, sizeof(t));
	CHECK("an SMBIOS 3 entry point", smbios_entry(t, n, &addr, &len) == 0 && addr == 0x7f000000 && len == n - 24);
	t[7] ^= 1;
	CHECK("... with a wrong checksum is refused", smbios_entry(t, n, &addr, &len) == -E_CRC);
	n = load("entry2-and-table", t, sizeof(t));
	CHECK("an SMBIOS 2 entry point", smbios_entry(t, n, &addr, &len) == 0 && addr == 0x7f000000 && len == n - 31);
	t[22] ^= 1;
	CHECK("... with a wrong _DMI_ checksum is refused", smbios_entry(t, n, &addr, &len) == -E_CRC);
	CHECK("no anchor", smbios_entry((const uint8_t *)"nothing here at all, not an entry", 33, &addr, &len) == -E_NOENT);
	return CHECK_DONE();
}
