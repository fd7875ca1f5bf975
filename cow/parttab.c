/* GPT and MBR parsing (cow/parttab.h). Every count and offset from the disk is bounded by the
 * disk's size before it is used, and the logical-partition chain by a fixed number of links. */
#include "parttab.h"
#include "errors.h"
#include "../kernel/lib_crc32.h"

#define MAX_LOGICAL 128
#define GPT_MAX_TABLE (1u << 20)   /* bytes of GPT entries read; 128 x 128 is usual */

static const uint8_t basic_data_guid[16] = {   /* EBD0A0A2-B9E5-4433-87C0-68B6B72699C7 */
	0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44, 0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7
};

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

struct scan {
	ntfs_read_fn read;
	void *ctx;
	uint64_t disk;
	uint32_t sector;
	struct part *out;
	unsigned max, n;
};

/* Adds a partition, probing its first sector for an NTFS boot sector. */
static int add(struct scan *s, struct part p)
{
	uint8_t b[512];
	if (p.size < 512 || p.start > s->disk || p.size > s->disk - p.start)
		return 0;   /* outside the disk: not a partition we can use */
	int rc = s->read(s->ctx, p.start, sizeof(b), b);
	if (rc == -E_NOMEM)
		return rc;
	p.ntfs_sig = rc == 0 && ntfs_probe(b);
	if (s->n < s->max)
		s->out[s->n] = p;
	s->n++;
	return 0;
}

/* One GPT header at lba with its entries, both CRCs checked; buf holds one sector. */
static int gpt_read(struct scan *s, uint64_t lba, bool backup, uint8_t *hdr)
{
	uint32_t ss = s->sector;
	int rc = s->read(s->ctx, lba * ss, ss, hdr);
	if (rc < 0)
		return rc;
	if (memcmp(hdr, "EFI PART", 8))
		return -E_NOENT;
	uint32_t hsize = le32(hdr + 12), hcrc = le32(hdr + 16);
	if (hsize < 92 || hsize > ss)
		return -E_CORRUPT;
	uint8_t save[4];
	memcpy(save, hdr + 16, 4);
	memset(hdr + 16, 0, 4);
	uint32_t crc = crc32_ieee(0, hdr, hsize);
	memcpy(hdr + 16, save, 4);
	if (crc != hcrc)
		return -E_CRC;
	uint64_t ents = le64(hdr + 72), lbas = s->disk / ss;
	uint32_t count = le32(hdr + 80), esize = le32(hdr + 84), ecrc = le32(hdr + 88);
	if (le64(hdr + 24) != lba || esize < 128 || (esize & 7) || (uint64_t)count * esize > GPT_MAX_TABLE ||
	    ents >= lbas || ((uint64_t)count * esize + ss - 1) / ss > lbas - ents)
		return -E_CORRUPT;
	uint32_t bytes = count * esize, rounded = (bytes + ss - 1) / ss * ss;
	(void)backup;
	/* Read in sector pieces so the buffer stays small: the CRC runs as they come. */
	uint8_t *sec = hdr + ss;   /* the caller gave two sectors */
	uint32_t c = 0;
	for (uint32_t off = 0; off < rounded; off += ss) {
		if ((rc = s->read(s->ctx, ents * ss + off, ss, sec)) < 0)
			return rc;
		uint32_t take = bytes - off < ss ? bytes - off : ss;
		c = crc32_ieee(c, sec, take);
	}
	if (c != ecrc)
		return -E_CRC;
	return 0;
}

static int gpt_entries(struct scan *s, const uint8_t *hdr, uint8_t *sec, bool backup)
{
	uint32_t ss = s->sector, count = le32(hdr + 80), esize = le32(hdr + 84);
	uint64_t ents = le64(hdr + 72);
	for (uint32_t i = 0; i < count; i++) {
		uint64_t at = (uint64_t)i * esize;
		int rc = s->read(s->ctx, ents * ss + at / ss * ss, ss, sec);
		if (rc < 0)
			return rc;
		const uint8_t *e = sec + at % ss;
		static const uint8_t zero[16];
		if (!memcmp(e, zero, 16))
			continue;
		uint64_t first = le64(e + 32), last = le64(e + 40);
		if (last < first || last >= s->disk / ss)
			continue;
		struct part p = { first * ss, (last - first + 1) * ss, i + 1, 'g', 0, { 0 }, false, false, backup };
		memcpy(p.type_guid, e, 16);
		p.ntfs_type = !memcmp(e, basic_data_guid, 16);
		if ((rc = add(s, p)) < 0)
			return rc;
	}
	return 0;
}

static bool extended(uint8_t t) { return t == 0x05 || t == 0x0F || t == 0x85; }

/* MBR addresses are in the disk's logical sectors (4096 bytes on a 4Kn disk). */
static int mbr(struct scan *s, const uint8_t *b)
{
	uint8_t ebr[512];
	uint64_t ss = s->sector;
	for (unsigned i = 0; i < 4; i++) {
		const uint8_t *e = b + 446 + 16 * i;
		uint8_t type = e[4];
		uint64_t start = le32(e + 8), count = le32(e + 12);
		if (!type || !count)
			continue;
		if (!extended(type)) {
			struct part p = { start * ss, count * ss, i + 1, 'm', type, { 0 }, type == 0x07, false, false };
			int rc = add(s, p);
			if (rc < 0)
				return rc;
			continue;
		}
		/* The logical chain: each EBR holds one partition and a link relative to the
		 * extended partition's start; a fixed number of links ends any loop. */
		uint64_t ext = start, next = 0;
		for (unsigned k = 0; k < MAX_LOGICAL; k++) {
			uint64_t at = (ext + next) * ss;
			if (at + 512 > s->disk || s->read(s->ctx, at, 512, ebr) < 0 || ebr[510] != 0x55 || ebr[511] != 0xAA)
				break;
			const uint8_t *l = ebr + 446, *link = ebr + 462;
			if (l[4] && le32(l + 12)) {
				struct part p = { at + (uint64_t)le32(l + 8) * ss, (uint64_t)le32(l + 12) * ss, 5 + k,
						  'm', l[4], { 0 }, l[4] == 0x07, false, false };
				int rc = add(s, p);
				if (rc < 0)
					return rc;
			}
			/* EBRs follow each other forwards: a link back (or to itself) is a loop. */
			if (!extended(link[4]) || le32(link + 8) <= next)
				break;
			next = le32(link + 8);
		}
	}
	return 0;
}

int parttab_scan(ntfs_read_fn read, void *ctx, uint64_t disk_bytes, uint32_t sector, struct part *out,
		 unsigned max, unsigned *n)
{
	struct scan s = { read, ctx, disk_bytes, sector, out, max, 0 };
	uint8_t b[512], buf[2 * 4096];
	*n = 0;
	if (sector != 512 && sector != 4096)
		return -E_INVAL;
	if (disk_bytes < 2 * (uint64_t)sector)
		return -E_NOENT;
	int rc = read(ctx, 0, sizeof(b), b);
	if (rc < 0)
		return rc;
	if (ntfs_probe(b)) {
		struct part p = { 0, disk_bytes, 1, 'r', 0, { 0 }, false, true, false };
		out[0] = p;
		*n = max ? 1 : 0;
		return 0;
	}
	bool protective = false, has_mbr = b[510] == 0x55 && b[511] == 0xAA;
	for (unsigned i = 0; has_mbr && i < 4; i++)
		protective |= b[446 + 16 * i + 4] == 0xEE;
	rc = gpt_read(&s, 1, false, buf);
	if (rc == -E_NOMEM)
		return rc;
	if (rc < 0 && (protective || rc != -E_NOENT)) {
		int rc2 = gpt_read(&s, disk_bytes / sector - 1, true, buf);
		if (rc2 == 0)
			return (rc = gpt_entries(&s, buf, buf + sector, true)) < 0 ? rc : (*n = s.n < max ? s.n : max, 0);
		if (protective)
			return rc == -E_NOENT ? rc2 : rc;
	}
	if (rc == 0) {
		rc = gpt_entries(&s, buf, buf + sector, false);
		*n = s.n < max ? s.n : max;
		return rc;
	}
	if (!has_mbr)
		return -E_NOENT;
	rc = mbr(&s, b);
	*n = s.n < max ? s.n : max;
	return rc;
}
