/* ATA IDENTIFY and SMART parsing (pure: in the image and in the host fuzzer). A drive that
 * lies in its IDENTIFY page (a zero or odd sector size, a capacity past LBA48) must be refused
 * with the reason, not believed: the driver sizes its DMA buffers from these numbers. */
#include "ata_id.h"
#include "errors.h"
#include "port.h"
#include "text.h"

static uint16_t word(const uint8_t *p, unsigned i) { return (uint16_t)(p[2 * i] | p[2 * i + 1] << 8); }

/* Words whose bits 15:14 are 01 carry data; 0000h or FFFFh mean "not reported". */
static bool valid(uint16_t w) { return (w & 0xc000) == 0x4000; }

static int refuse(char *why, size_t whylen, int rc, const char *fmt, unsigned long long v)
{
	if (whylen)
		fmt_snprintf(why, whylen, fmt, v);
	return rc;
}

int ata_identify_parse(const uint8_t page[512], struct ata_identity *id, char *why, size_t whylen)
{
	memset(id, 0, sizeof(*id));
	if (whylen)
		why[0] = '\0';
	text_field_ata(id->serial, page + 2 * 10, 10, '?');
	text_field_ata(id->firmware, page + 2 * 23, 4, '?');
	text_field_ata(id->model, page + 2 * 27, 20, '?');
	/* Word 255: A5h then a checksum making the page sum to zero, when the drive keeps one. */
	if ((word(page, 255) & 0xff) == 0xa5) {
		uint8_t sum = 0;
		for (unsigned i = 0; i < 512; i++)
			sum = (uint8_t)(sum + page[i]);
		if (sum)
			return refuse(why, whylen, -E_CRC, "IDENTIFY checksum mismatch (sum 0x%02llx)", sum);
	}
	if (word(page, 0) & 0x8000)
		return refuse(why, whylen, -E_UNSUPP, "not an ATA disk (word 0 = 0x%04llx)", word(page, 0));
	uint16_t w83 = word(page, 83);
	if (!valid(w83) || !(w83 & (1u << 10)))
		return refuse(why, whylen, -E_UNSUPP, "no 48-bit LBA (word 83 = 0x%04llx)", w83);
	id->sectors = (uint64_t)word(page, 100) | (uint64_t)word(page, 101) << 16 |
		      (uint64_t)word(page, 102) << 32 | (uint64_t)word(page, 103) << 48;
	if (!id->sectors)
		id->sectors = (uint64_t)word(page, 60) | (uint64_t)word(page, 61) << 16;
	if (!id->sectors)
		return refuse(why, whylen, -E_UNSUPP, "a capacity of %llu sectors", 0);
	if (id->sectors >> 48)
		return refuse(why, whylen, -E_CORRUPT, "capacity of %llu sectors is past 48-bit LBA", id->sectors);
	uint16_t w106 = word(page, 106);
	uint64_t lsize = 512;
	if (valid(w106) && (w106 & (1u << 12)))
		lsize = 2 * ((uint64_t)word(page, 117) | (uint64_t)word(page, 118) << 16);
	if (lsize < ATA_SECTOR_MIN || lsize > ATA_SECTOR_MAX || (lsize & (lsize - 1)))
		return refuse(why, whylen, -E_UNSUPP, "logical sector size of %llu bytes", lsize);
	id->lsize = (uint32_t)lsize;
	id->psize = id->lsize;
	/* 2^N logical sectors a physical one; beyond 2^7 (64 KiB of 512-byte sectors) it is noise. */
	if (valid(w106) && (w106 & (1u << 13)) && (w106 & 0xf) <= 7)
		id->psize = id->lsize << (w106 & 0xf);
	uint16_t w82 = word(page, 82), w84 = word(page, 84), w85 = word(page, 85);
	bool w82_ok = w82 != 0 && w82 != 0xffff;
	id->smart = w82_ok && (w82 & 1);
	id->volatile_cache = w82_ok && (w82 & (1u << 5));
	id->cache_on = w82_ok && (w85 & (1u << 5));
	id->fua = valid(w84) && (w84 & (1u << 6));
	uint16_t w76 = word(page, 76);
	if (w76 != 0 && w76 != 0xffff && (w76 & (1u << 8)))
		id->ncq_depth = (word(page, 75) & 0x1f) + 1u;
	return 0;
}

int ata_smart_parse(const uint8_t page[512], struct ata_smart *s)
{
	memset(s, 0, sizeof(*s));
	uint8_t sum = 0;
	for (unsigned i = 0; i < 512; i++)
		sum = (uint8_t)(sum + page[i]);
	if (sum)
		return -E_CRC;
	/* Byte 0-1: revision; then 30 entries of 12 bytes: id, flags (2), current, worst, raw (6), reserved. */
	for (unsigned i = 0; i < ATA_SMART_ATTRS; i++) {
		const uint8_t *a = page + 2 + 12 * i;
		if (!a[0])
			continue;
		struct ata_smart_attr *o = &s->attr[s->n++];
		o->id = a[0];
		o->flags = (uint16_t)(a[1] | a[2] << 8);
		o->current = a[3];
		o->worst = a[4];
		for (int b = 5; b >= 0; b--)
			o->raw = o->raw << 8 | a[5 + b];
	}
	return 0;
}

static void append(char *line, size_t n, size_t *k, const char *what, int64_t v, const char *unit)
{
	if (v >= 0 && *k < n)
		*k += (size_t)fmt_snprintf(line + *k, n - *k, " %s %llu%s,", what, (unsigned long long)v, unit);
}

void ata_smart_summary(const struct ata_smart *s, char *line, size_t n)
{
	size_t k = (size_t)fmt_snprintf(line, n, "SMART data:");
	int64_t t = ata_smart_raw(s, 194);   /* temperature, else airflow temperature */
	if (t < 0)
		t = ata_smart_raw(s, 190);
	append(line, n, &k, "temperature", t < 0 ? -1 : t & 0xff, " C");
	static const struct { uint8_t id; const char *what; } known[] = {
		{ 9, "power-on hours" }, { 5, "reallocated" }, { 197, "pending" }, { 198, "offline uncorrectable" },
	};
	for (unsigned i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		int64_t v = ata_smart_raw(s, known[i].id);
		append(line, n, &k, known[i].what, v < 0 ? -1 : v & 0xffffffff, "");
	}
	if (k >= n)
		return;   /* cut short by the caller's buffer */
	if (line[k - 1] == ',')
		line[k - 1] = '\0';
	else
		fmt_snprintf(line + k, n - k, " no known attributes");
}

int ata_smart_words(const struct ata_smart *s, int failing, char *words, size_t n)
{
	static const struct { uint8_t id; const char *what; } lost[] = {
		{ 5, "reallocated" }, { 197, "pending" }, { 198, "uncorrectable" },
	};
	char counts[96] = "";
	size_t k = 0;
	uint64_t total = 0;
	for (unsigned i = 0; s && i < sizeof(lost) / sizeof(lost[0]); i++) {
		int64_t v = ata_smart_raw(s, lost[i].id);
		if (v < 0 || !(v & 0xffffffff) || k >= sizeof(counts))
			continue;
		total += (uint64_t)(v & 0xffffffff);
		k += (size_t)fmt_snprintf(counts + k, sizeof(counts) - k, "%s%u %s", k ? ", " : "",
					  (unsigned)(v & 0xffffffff), lost[i].what);
	}
	if (k && k < sizeof(counts))
		fmt_snprintf(counts + k, sizeof(counts) - k, " sector%s", total == 1 ? "" : "s");
	if (failing == 1) {
		fmt_snprintf(words, n, "SMART: FAILING (the drive says a threshold is exceeded)%s%s",
			     k ? ", " : "", counts);
		return 2;
	}
	if (k) {
		fmt_snprintf(words, n, "SMART: %s, but %s", failing == 0 ? "passed" : "no verdict", counts);
		return 1;
	}
	if (failing == 0) {
		fmt_snprintf(words, n, "SMART: passed");
		return 0;
	}
	fmt_snprintf(words, n, "SMART: no verdict (%s)%s", err_str(failing),
		     s ? ", no sectors reallocated" : "");
	return 3;
}

int64_t ata_smart_raw(const struct ata_smart *s, uint8_t id)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->attr[i].id == id)
			return (int64_t)s->attr[i].raw;
	return -1;
}

int ata_smart_status(uint8_t lba_mid, uint8_t lba_high)
{
	if (lba_mid == 0x4f && lba_high == 0xc2)
		return 0;
	if (lba_mid == 0xf4 && lba_high == 0x2c)
		return 1;
	return -E_IO;
}
