/* libFuzzer target: an ATA IDENTIFY page (the input's first 512 bytes) and a SMART READ DATA
 * page (the next 512), each copied into a buffer of exactly that size. What the parser accepts
 * must be something the AHCI driver can size its transfers by. An odd byte 1023 re-seals the
 * SMART page's checksum (byte 511 of it), so mutated attribute tables are parsed too. */
#include <stdlib.h>
#include <string.h>
#include "../../lib/ata_id.h"
#include "../../lib/errors.h"
#include "checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *page = calloc(1, 512);
	memcpy(page, data, size < 512 ? size : 512);
	struct ata_identity id;
	char why[96];
	int rc = ata_identify_parse(page, &id, why, sizeof(why));
	assert_printable(id.model, sizeof(id.model));
	assert_printable(id.serial, sizeof(id.serial));
	assert_printable(id.firmware, sizeof(id.firmware));
	if (rc == 0) {
		if (id.lsize < ATA_SECTOR_MIN || id.lsize > ATA_SECTOR_MAX || (id.lsize & (id.lsize - 1)) ||
		    id.psize < id.lsize || !id.sectors || id.sectors >> 48 || id.ncq_depth > 32)
			abort();
	} else if (!memchr(why, '\0', sizeof(why)) || !why[0]) {
		abort();   /* a refusal always says why */
	}
	if (size > 512) {
		size_t n = size - 512 < 512 ? size - 512 : 512;
		memset(page, 0, 512);
		memcpy(page, data + 512, n);
		if (size >= 1024 && (data[1023] & 1)) {
			uint8_t sum = 0;
			for (int i = 0; i < 511; i++)
				sum = (uint8_t)(sum + page[i]);
			page[511] = (uint8_t)-sum;
		}
		struct ata_smart s;
		if (ata_smart_parse(page, &s) == 0) {
			if (s.n > ATA_SMART_ATTRS)
				abort();
			for (unsigned i = 0; i < s.n; i++)
				if (!s.attr[i].id || s.attr[i].raw >> 48 || ata_smart_raw(&s, s.attr[i].id) < 0)
					abort();
			/* The summary line: bounded by its buffer whatever the raw values, even a short one. */
			char line[160], *cut = malloc(24);
			ata_smart_summary(&s, line, sizeof(line));
			ata_smart_summary(&s, cut, 24);
			if (!memchr(line, '\0', sizeof(line)) || !memchr(cut, '\0', 24))
				abort();
			free(cut);
		}
		ata_smart_status(page[0], page[1]);
	}
	free(page);
	return 0;
}
