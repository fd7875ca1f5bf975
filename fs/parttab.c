/* GPT and MBR parsing (fs/parttab.h). Nothing read from the disk is used before it is
 * checked: header sizes against the sector, counts and offsets against the disk and the
 * table's own usable area, partitions against each other, the logical chain against loops. */
#include "parttab.h"
#include "../lib/errors.h"
#include "../lib/crc32.h"

#define MAX_LOGICAL 128
#define GPT_MAX_TABLE (1u << 20)        /* bytes of GPT entries read; 128 x 128 is usual */
#define GPT_USUAL_TABLE (128u * 128u)

static const uint8_t basic_data_guid[16] = {   /* EBD0A0A2-B9E5-4433-87C0-68B6B72699C7 */
	0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44, 0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7
};

static const uint8_t cow_guid[16] = {   /* 84024261-2707-4790-A2EF-BE9E11429F11: "cowboot cow" */
	0x61, 0x42, 0x02, 0x84, 0x07, 0x27, 0x90, 0x47, 0xA2, 0xEF, 0xBE, 0x9E, 0x11, 0x42, 0x9F, 0x11
};

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }
static uint64_t div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

uint64_t parttab_gpt_head_bytes(uint32_t sector)
{
	return (2 + div_up(GPT_USUAL_TABLE, sector)) * sector;
}

uint64_t parttab_gpt_tail_bytes(uint32_t sector)
{
	return (1 + div_up(GPT_USUAL_TABLE, sector)) * sector;
}

/* A GPT header as checked, in host order. */
struct gpt {
	uint64_t lba, first, last, ents;
	uint32_t count, esize, esecs;
	bool sig;                      /* "EFI PART" was there, whatever failed after it */
	char why[96];                  /* what failed */
};

struct scan {
	ntfs_read_fn read;
	void *ctx;
	uint64_t disk, lbas;
	uint32_t ss;
	struct part *out;
	unsigned max, said;
	struct parttab *t;
	uint8_t *sec;                  /* one sector of scratch */
};

static void say(struct scan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct scan *s, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->t->say)
		s->t->say(s->t->say_ctx, msg);
}

/* An entry left out: said while few, counted always (a hostile table may hold thousands). */
#define ignore(s, ...) do {                                  \
		(s)->t->ignored++;                           \
		if ((s)->said++ < PARTTAB_MAX_SAID)          \
			say((s), __VA_ARGS__);               \
	} while (0)

static void area_add(struct scan *s, uint64_t start, uint64_t size)
{
	struct parttab *t = s->t;
	if (start >= s->disk || !size)
		return;
	if (size > s->disk - start)
		size = s->disk - start;
	for (unsigned i = 0; i < t->nareas; i++) {
		struct parttab_area *a = &t->area[i];
		if (start <= a->start + a->size && a->start <= start + size) {   /* touching: merge */
			uint64_t e = a->start + a->size > start + size ? a->start + a->size : start + size;
			a->start = a->start < start ? a->start : start;
			a->size = e - a->start;
			return;
		}
	}
	if (t->nareas < PARTTAB_MAX_AREAS)
		t->area[t->nareas++] = (struct parttab_area){ start, size };
}

/* Adds a partition the table gave (what/num name it in messages), probing its first sector for
 * an NTFS boot sector. A partition off the disk or over another one is ignored. */
static int add(struct scan *s, struct part p, const char *what, unsigned num)
{
	if (p.start >= s->disk || p.size > s->disk - p.start) {
		ignore(s, "%s %u (%llu sectors at LBA %llu) runs past the end of the disk (%llu sectors): ignored",
		       what, num, (unsigned long long)(p.size / s->ss), (unsigned long long)(p.start / s->ss),
		       (unsigned long long)s->lbas);
		return 0;
	}
	unsigned kept = s->t->n;
	for (unsigned i = 0; i < kept; i++) {
		const struct part *q = &s->out[i];
		if (p.start < q->start + q->size && q->start < p.start + p.size) {
			ignore(s, "%s %u overlaps partition %u: ignored", what, num, q->index);
			return 0;
		}
	}
	uint8_t b[512];
	int rc = s->read(s->ctx, p.start, sizeof(b), b);
	if (rc == -E_NOMEM)
		return rc;
	p.ntfs_sig = rc == 0 && ntfs_probe(b);
	s->t->found++;
	if (kept < s->max)
		s->out[s->t->n++] = p;
	return 0;
}

#define gpt_fail(g, rc, ...) (fmt_snprintf((g)->why, sizeof((g)->why), __VA_ARGS__), (rc))

/* One GPT header at lba, every field checked, and the CRC of its entry array; hdr holds one
 * sector. The array must lie between the header and the usable area, on its own side. */
static int gpt_read(struct scan *s, uint64_t lba, bool backup, uint8_t *hdr, struct gpt *g)
{
	uint32_t ss = s->ss;
	*g = (struct gpt){ .lba = lba };
	int rc = s->read(s->ctx, lba * ss, ss, hdr);
	if (rc < 0)
		return gpt_fail(g, rc, "header unreadable (%s)", err_str(rc));
	if (memcmp(hdr, "EFI PART", 8))
		return gpt_fail(g, -E_NOENT, "header missing");
	g->sig = true;
	uint32_t hsize = le32(hdr + 12), hcrc = le32(hdr + 16);
	if (hsize < 92 || hsize > ss)
		return gpt_fail(g, -E_CORRUPT, "header size %u out of range", hsize);
	uint8_t save[4];
	memcpy(save, hdr + 16, 4);
	memset(hdr + 16, 0, 4);
	uint32_t crc = crc32_ieee(0, hdr, hsize);
	memcpy(hdr + 16, save, 4);
	if (crc != hcrc)
		return gpt_fail(g, -E_CRC, "header CRC mismatch");
	uint64_t my = le64(hdr + 24);
	g->first = le64(hdr + 40);
	g->last = le64(hdr + 48);
	g->ents = le64(hdr + 72);
	g->count = le32(hdr + 80);
	g->esize = le32(hdr + 84);
	uint32_t ecrc = le32(hdr + 88);
	if (my != lba)
		return gpt_fail(g, -E_CORRUPT, "header says it is at LBA %llu", (unsigned long long)my);
	if (g->first > g->last || g->first < 2 || g->last >= s->lbas - 1)
		return gpt_fail(g, -E_CORRUPT, "usable area LBA %llu-%llu is not on the disk",
				(unsigned long long)g->first, (unsigned long long)g->last);
	if (g->esize < 128 || g->esize > 4096 || (g->esize & (g->esize - 1)))
		return gpt_fail(g, -E_CORRUPT, "entry size %u out of range", g->esize);
	uint64_t bytes = (uint64_t)g->count * g->esize;
	if (bytes > GPT_MAX_TABLE)
		return gpt_fail(g, -E_CORRUPT, "%u entries of %u bytes: too many", g->count, g->esize);
	g->esecs = (uint32_t)div_up(bytes, ss);
	bool placed = backup ? g->ents > g->last && g->ents + g->esecs <= lba
			     : g->ents > lba && g->ents + g->esecs <= g->first;
	if (!placed)
		return gpt_fail(g, -E_CORRUPT, "entry array at LBA %llu is not between the header and the usable area",
				(unsigned long long)g->ents);
	/* Read in sector pieces so the buffer stays small: the CRC runs as they come. */
	uint32_t c = 0;
	for (uint32_t k = 0; k < g->esecs; k++) {
		if ((rc = s->read(s->ctx, (g->ents + k) * ss, ss, s->sec)) < 0)
			return gpt_fail(g, rc, "entry array unreadable (%s)", err_str(rc));
		uint64_t off = (uint64_t)k * ss;
		c = crc32_ieee(c, s->sec, bytes - off < ss ? (size_t)(bytes - off) : ss);
	}
	if (c != ecrc)
		return gpt_fail(g, -E_CRC, "entry array CRC mismatch");
	return 0;
}

static int gpt_entries(struct scan *s, const struct gpt *g, bool backup)
{
	uint32_t ss = s->ss;
	uint64_t loaded = ~0ull;
	for (uint32_t i = 0; i < g->count; i++) {
		uint64_t at = (uint64_t)i * g->esize, lba = g->ents + at / ss;
		int rc;
		if (lba != loaded) {
			if ((rc = s->read(s->ctx, lba * ss, ss, s->sec)) < 0)
				return rc;
			loaded = lba;
		}
		const uint8_t *e = s->sec + at % ss;   /* esize is a power of two >= 128: the fields never straddle */
		static const uint8_t zero[16];
		if (!memcmp(e, zero, 16))
			continue;
		uint64_t first = le64(e + 32), last = le64(e + 40);
		if (last < first) {
			ignore(s, "GPT entry %u ends before it starts: ignored", i + 1);
			continue;
		}
		if (first < g->first || last > g->last) {
			ignore(s, "GPT entry %u (LBA %llu-%llu) is outside the usable area LBA %llu-%llu: ignored",
			       i + 1, (unsigned long long)first, (unsigned long long)last,
			       (unsigned long long)g->first, (unsigned long long)g->last);
			continue;
		}
		struct part p = { first * ss, (last - first + 1) * ss, i + 1, 'g', 0, { 0 }, false, false, backup, false };
		memcpy(p.type_guid, e, 16);
		p.ntfs_type = !memcmp(e, basic_data_guid, 16);
		p.cow_type = !memcmp(e, cow_guid, 16);
		if ((rc = add(s, p, "GPT entry", i + 1)) < 0)
			return rc;
	}
	return 0;
}

/* The GPT's areas at both ends: the usual ones, and the header actually used. */
static void gpt_areas(struct scan *s, const struct gpt *g)
{
	uint64_t ss = s->ss;
	area_add(s, 0, parttab_gpt_head_bytes(s->ss));
	area_add(s, s->disk - parttab_gpt_tail_bytes(s->ss), parttab_gpt_tail_bytes(s->ss));
	if (g) {
		area_add(s, g->lba * ss, ss);
		area_add(s, g->ents * ss, (uint64_t)g->esecs * ss);
	}
}

static bool extended(uint8_t t) { return t == 0x05 || t == 0x0F || t == 0x85; }

/* The logical chain of the extended partition at ext (count sectors): each EBR holds one
 * partition and a link relative to ext; links only go forward, so a loop ends the chain. */
static int mbr_logical(struct scan *s, uint64_t ext, uint64_t count)
{
	uint8_t *ebr = s->sec;
	uint64_t ss = s->ss, next = 0;
	for (unsigned k = 0; k < MAX_LOGICAL; k++) {
		uint64_t at = ext + next;
		if (s->read(s->ctx, at * ss, 512, ebr) < 0 || ebr[510] != 0x55 || ebr[511] != 0xAA) {
			ignore(s, "extended partition: no EBR at LBA %llu: the rest of its chain is ignored",
			       (unsigned long long)at);
			return 0;
		}
		area_add(s, at * ss, ss);
		const uint8_t *l = ebr + 446, *link = ebr + 462;
		uint64_t rel = le32(l + 8), n = le32(l + 12);
		if (l[4] && n) {
			if (rel == 0 || rel + n > count - next) {
				ignore(s, "logical partition %u is not inside its extended partition: ignored", 5 + k);
			} else {
				struct part p = { (at + rel) * ss, n * ss, 5 + k, 'm', l[4], { 0 }, l[4] == 0x07, false, false, false };
				int rc = add(s, p, "logical partition", 5 + k);
				if (rc < 0)
					return rc;
			}
		}
		if (!extended(link[4]) || !le32(link + 12))
			return 0;
		uint64_t to = le32(link + 8);
		if (to <= next || to >= count) {
			ignore(s, "extended partition: EBR link %u goes %s: the rest of its chain is ignored", k + 1,
			       to <= next ? "backwards (a loop)" : "outside it");
			return 0;
		}
		next = to;
	}
	ignore(s, "extended partition: more than %u logical partitions: the rest are ignored", MAX_LOGICAL);
	return 0;
}

/* A FAT boot sector: a jump, and the file system type where FAT12/16 or FAT32 keep it. */
static bool fat_boot_sector(const uint8_t *b)
{
	return (b[0] == 0xeb || b[0] == 0xe9) && (!memcmp(b + 54, "FAT", 3) || !memcmp(b + 82, "FAT32", 5));
}

/* MBR addresses are in the disk's logical sectors (4096 bytes on a 4Kn disk). */
static int mbr(struct scan *s, const uint8_t *b)
{
	uint64_t ss = s->ss;
	area_add(s, 0, ss);
	for (unsigned i = 0; i < 4; i++) {
		const uint8_t *e = b + 446 + 16 * i;
		uint8_t type = e[4];
		uint64_t start = le32(e + 8), count = le32(e + 12);
		if (!type || !count || type == 0xEE)
			continue;
		if (start == 0) {
			/* mtools' mformat describes a FAT "superfloppy" (cowboot's boot image is one) as a
			 * partition of itself at LBA 0: the volume is the whole disk, nothing to warn of. */
			if (!fat_boot_sector(b))
				ignore(s, "MBR partition %u starts at LBA 0 (the MBR itself): ignored", i + 1);
			continue;
		}
		int rc;
		if (!extended(type)) {
			struct part p = { start * ss, count * ss, i + 1, 'm', type, { 0 }, type == 0x07, false, false, false };
			rc = add(s, p, "MBR partition", i + 1);
		} else if (start >= s->lbas || count > s->lbas - start) {
			ignore(s, "extended partition %u runs past the end of the disk: ignored", i + 1);
			rc = 0;
		} else {
			rc = mbr_logical(s, start, count);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int done(struct scan *s, int rc)
{
	if (s->said > PARTTAB_MAX_SAID)
		say(s, "%u more entries ignored", s->said - PARTTAB_MAX_SAID);
	return rc;
}

int parttab_scan(ntfs_read_fn read, void *ctx, uint64_t disk_bytes, uint32_t sector, struct part *out,
		 unsigned max, struct parttab *t)
{
	uint8_t b[512], hdr[4096], sec[4096];
	struct scan s = { read, ctx, disk_bytes, disk_bytes / (sector ? sector : 1), sector, out, max, 0, t, sec };
	parttab_say_fn say_fn = t->say;
	void *say_ctx = t->say_ctx;
	*t = (struct parttab){ .say = say_fn, .say_ctx = say_ctx };
	if (sector != 512 && sector != 4096)
		return -E_INVAL;
	if (s.lbas < 3)
		return -E_NOENT;
	int rc = read(ctx, 0, sizeof(b), b);
	if (rc < 0)
		return rc;
	if (ntfs_probe(b)) {
		struct part p = { 0, disk_bytes, 1, 'r', 0, { 0 }, false, true, false, false };
		t->scheme = 'r';
		t->found = 1;
		if (max)
			out[t->n++] = p;
		return 0;
	}
	/* A boot flag other than 0x00/0x80 means boot code, not a table (a FAT superfloppy). */
	bool has_mbr = b[510] == 0x55 && b[511] == 0xAA, protective = false, others = false;
	for (unsigned i = 0; has_mbr && i < 4; i++) {
		const uint8_t *e = b + 446 + 16 * i;
		has_mbr = e[0] == 0x00 || e[0] == 0x80;
		protective |= e[4] == 0xEE;
		others |= e[4] && e[4] != 0xEE && le32(e + 12);
	}
	protective &= has_mbr;
	others &= has_mbr;

	struct gpt p, k;
	rc = gpt_read(&s, 1, false, hdr, &p);
	if (rc == -E_NOMEM)
		return rc;
	if (rc < 0)
		rc = gpt_read(&s, s.lbas - 1, true, hdr, &k);
	if (rc == -E_NOMEM)
		return rc;
	if (rc == 0) {
		const struct gpt *g = p.why[0] ? &k : &p;
		t->scheme = 'g';
		t->gpt_backup = g == &k;
		t->hybrid = protective && others;
		if (t->gpt_backup)
			say(&s, "primary GPT %s, using the backup", p.why);
		if (t->hybrid)
			say(&s, "hybrid MBR: its partitions are ignored, the GPT's are used");
		gpt_areas(&s, g);
		return done(&s, gpt_entries(&s, g, t->gpt_backup));
	}
	if (protective || p.sig || k.sig) {
		t->ignored++;
		say(&s, "GPT ignored: primary %s, backup %s%s", p.why, k.why,
		    others ? "; using the MBR's partitions" : "");
		gpt_areas(&s, NULL);
		if (!others)
			return done(&s, -E_CORRUPT);
	}
	if (!has_mbr)
		return done(&s, -E_NOENT);
	t->scheme = 'm';
	return done(&s, mbr(&s, b));
}
