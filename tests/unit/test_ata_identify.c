/* The ATA IDENTIFY/SMART parser on QEMU 7.2's own pages and a real drive's shape
 * (tests/fuzz/seeds/ata_identify, made by tests/fuzz/mkseeds.py), and on lies it must refuse. */
#include "../../lib/ata_id.h"
#include "../../lib/errors.h"
#include "../lib/check.h"
#include <stdlib.h>
#include <string.h>

static uint8_t buf[1024];

static size_t load(const char *seed)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tests/fuzz/seeds/ata_identify/%s",
		 getenv("COWBOOT_ROOT") ? getenv("COWBOOT_ROOT") : ".", seed);
	memset(buf, 0, sizeof(buf));
	FILE *fp = fopen(path, "rb");
	size_t n = fp ? fread(buf, 1, sizeof(buf), fp) : 0;
	if (fp)
		fclose(fp);
	return n;
}

static void setw(unsigned i, uint16_t v) { buf[2 * i] = (uint8_t)v; buf[2 * i + 1] = (uint8_t)(v >> 8); }

int main(void)
{
	struct ata_identity id;
	struct ata_smart s;
	char why[96];
	load("qemu-ide-hd");
	int rc = ata_identify_parse(buf, &id, why, sizeof(why));
	CHECK("QEMU's IDENTIFY: model and serial byte-swapped and trimmed",
	      rc == 0 && !strcmp(id.model, "QEMU seed disk") && !strcmp(id.serial, "SEEDSERIAL01"));
	CHECK("QEMU's IDENTIFY: 8 GiB in 512-byte sectors, LBA48",
	      id.sectors == (8ull << 30) / 512 && id.lsize == 512 && id.psize == 512);
	CHECK("QEMU's SMART page parses", ata_smart_parse(buf + 512, &s) == 0 && s.n > 0);
	load("qemu-ide-hd-512e");
	CHECK("QEMU's 512e disk: 4096-byte physical sectors from word 106",
	      ata_identify_parse(buf, &id, why, sizeof(why)) == 0 && id.lsize == 512 && id.psize == 4096);
	load("sata-2tb-512e");
	rc = ata_identify_parse(buf, &id, why, sizeof(why));
	CHECK("a 2 TB drive: capacity, NCQ 32, FUA, write cache, SMART, checksum word kept",
	      rc == 0 && id.sectors == 3907029168ull && id.ncq_depth == 32 && id.fua && id.volatile_cache &&
	      id.cache_on && id.smart && !strcmp(id.model, "WDC WD20EFRX-68EUZN0"));
	CHECK("its SMART attributes: temperature, power-on hours, reallocated, pending",
	      ata_smart_parse(buf + 512, &s) == 0 && (ata_smart_raw(&s, 194) & 0xff) == 32 &&
	      ata_smart_raw(&s, 9) == 34612 && ata_smart_raw(&s, 5) == 8 && ata_smart_raw(&s, 197) == 3 &&
	      ata_smart_raw(&s, 233) == -1);
	char line[160], shortl[20];
	ata_smart_summary(&s, line, sizeof(line));
	memset(shortl, 'x', sizeof(shortl));
	ata_smart_summary(&s, shortl, 16);
	CHECK("worded as one line, the attributes it lacks left out; a short buffer cut, not overrun",
	      !strncmp(line, "SMART data: temperature 32 C, power-on hours 34612, reallocated 8, pending 3", 76) &&
	      strlen(shortl) == 15 && shortl[16] == 'x');
	struct ata_smart none = { 0 };
	ata_smart_summary(&none, line, sizeof(line));
	CHECK("a page without them says so", !strcmp(line, "SMART data: no known attributes"));
	char words[120];
	CHECK("for a person: passed, but the sectors the drive gave up on (a warning)",
	      ata_smart_words(&s, 0, words, sizeof(words)) == 1 &&
	      !strcmp(words, "SMART: passed, but 8 reallocated, 3 pending sectors"));
	CHECK("a threshold exceeded is failing, the counts after it",
	      ata_smart_words(&s, 1, words, sizeof(words)) == 2 &&
	      !strcmp(words, "SMART: FAILING (the drive says a threshold is exceeded), 8 reallocated, 3 pending sectors"));
	CHECK("a clean page passes", ata_smart_words(&none, 0, words, sizeof(words)) == 0 &&
	      !strcmp(words, "SMART: passed"));
	CHECK("no verdict and no page: unknown, and why",
	      ata_smart_words(NULL, -E_TIMEOUT, words, sizeof(words)) == 3 && !strncmp(words, "SMART: no verdict (", 19));
	buf[512 + 100] ^= 1;
	CHECK("a SMART page with a wrong checksum is refused", ata_smart_parse(buf + 512, &s) == -E_CRC);
	buf[100] ^= 1;
	CHECK("an IDENTIFY page with a wrong integrity word is refused",
	      ata_identify_parse(buf, &id, why, sizeof(why)) == -E_CRC && strstr(why, "checksum"));

	load("lsize-zero");
	rc = ata_identify_parse(buf, &id, why, sizeof(why));
	CHECK("a logical sector size of 0 is refused, saying so",
	      rc == -E_UNSUPP && !strcmp(why, "logical sector size of 0 bytes"));
	load("qemu-ide-hd");
	setw(106, 0x5000);
	setw(117, 300);   /* 600 bytes: not a power of two */
	CHECK("a 600-byte logical sector is refused", ata_identify_parse(buf, &id, why, sizeof(why)) == -E_UNSUPP &&
	      strstr(why, "600"));
	setw(117, 0);
	setw(118, 1);     /* 128 KiB */
	CHECK("a 128 KiB logical sector is refused", ata_identify_parse(buf, &id, why, sizeof(why)) == -E_UNSUPP);
	load("qemu-ide-hd");
	setw(103, 1);
	CHECK("a capacity past 48 bits is refused", ata_identify_parse(buf, &id, why, sizeof(why)) == -E_CORRUPT);
	load("qemu-ide-hd");
	setw(27, 0x1b5b);   /* ESC [ in the model */
	CHECK("control bytes in the model are not passed on",
	      ata_identify_parse(buf, &id, why, sizeof(why)) == 0 && id.model[0] == '?' && id.model[1] == '[');
	load("qemu-ide-hd");
	setw(83, 0);
	CHECK("no LBA48 (or word 83 not valid) is refused", ata_identify_parse(buf, &id, why, sizeof(why)) == -E_UNSUPP &&
	      strstr(why, "48-bit"));
	CHECK("SMART RETURN STATUS decoding", ata_smart_status(0x4f, 0xc2) == 0 && ata_smart_status(0xf4, 0x2c) == 1 &&
	      ata_smart_status(0, 0) == -E_IO);
	return CHECK_DONE();
}
