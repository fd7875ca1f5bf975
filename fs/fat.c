/* FAT12/16/32 (fs/fat.h). Nothing on the disk is used before it is bounded: the BPB's fields
 * against each other and the device, every FAT entry at mount (a value that no chain may hold
 * refuses the volume), chains against the cluster count and their file's size. Space is counted
 * before anything is written, so a full volume is refused whole, never half written. */
#include "fat.h"
#include "../lib/errors.h"

#define MAX_DIR_ENTRIES 65536u   /* the FAT specification's limit on a directory */
#define LFN_MAX_SLOTS 20         /* 20 x 13 UTF-16 units >= 255 */
#define ATTR_RO 0x01
#define ATTR_VOLUME 0x08
#define ATTR_DIR 0x10
#define ATTR_ARCHIVE 0x20
#define ATTR_LFN 0x0F

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static void put16(uint8_t *p, uint32_t x) { p[0] = (uint8_t)x; p[1] = (uint8_t)(x >> 8); }
static void put32(uint8_t *p, uint32_t x) { put16(p, x); put16(p + 2, x >> 16); }

static int say(struct fat_vol *v, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(struct fat_vol *v, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fmt_vsnprintf(v->why, sizeof(v->why), fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- sectors ------------------------------------------------------------------------------ */

static int vol_read(struct fat_vol *v, uint64_t sec, uint32_t count, void *buf)
{
	return v->dev.read(v->dev.ctx, sec * v->dev_per_sec, count * v->dev_per_sec, buf);
}

static int vol_write(struct fat_vol *v, uint64_t sec, uint32_t count, const void *buf)
{
	if (v->failed)
		return say(v, -E_IO, "an earlier write to the volume failed");
	if (!v->dev.write)
		return -E_RDONLY;
	/* v->sec stays what the disk holds: written from itself, or dropped when overwritten. */
	if (buf != v->sec && v->sec_lba >= (int64_t)sec && v->sec_lba < (int64_t)(sec + count))
		v->sec_lba = -1;
	int rc = v->dev.write(v->dev.ctx, sec * v->dev_per_sec, count * v->dev_per_sec, buf);
	if (rc < 0) {
		v->failed = true;
		return say(v, rc, "writing sector %llu of the volume failed", (unsigned long long)sec);
	}
	v->changed = true;
	return 0;
}

/* v->sec holds one sector at a time (sec_lba); directory walks reload it when it moved. */
static int sec_load(struct fat_vol *v, uint64_t sec)
{
	if (v->sec_lba == (int64_t)sec)
		return 0;
	v->sec_lba = -1;
	int rc = vol_read(v, sec, 1, v->sec);
	if (rc < 0)
		return rc;
	v->sec_lba = (int64_t)sec;
	return 0;
}

static uint64_t clus_sector(const struct fat_vol *v, uint32_t c)
{
	return v->data_start + (uint64_t)(c - 2) * v->spc;
}

static bool clus_ok(const struct fat_vol *v, uint32_t c)
{
	return c >= 2 && c <= v->clusters + 1;
}

/* ---- the FAT ------------------------------------------------------------------------------ */

static uint32_t eoc_min(const struct fat_vol *v)
{
	return v->type == 12 ? 0xFF8 : v->type == 16 ? 0xFFF8 : 0x0FFFFFF8;
}

static uint32_t bad_mark(const struct fat_vol *v)
{
	return v->type == 12 ? 0xFF7 : v->type == 16 ? 0xFFF7 : 0x0FFFFFF7;
}

static int fat_writeback(struct fat_vol *v)
{
	if (!v->fat_dirty)
		return 0;
	for (uint32_t i = 0; i < v->nfats; i++) {
		if (!v->mirror && i != v->active_fat)
			continue;
		int rc = vol_write(v, v->fat_start + (uint64_t)i * v->fat_sectors + (uint64_t)v->fat_cached, 1,
				   v->fat_buf);
		if (rc < 0)
			return rc;
	}
	v->fat_dirty = false;
	return 0;
}

static int fat_load(struct fat_vol *v, uint32_t rel)
{
	if (v->fat_cached == (int64_t)rel)
		return 0;
	int rc = fat_writeback(v);
	if (rc < 0)
		return rc;
	v->fat_cached = -1;
	rc = vol_read(v, v->fat_start + (uint64_t)v->active_fat * v->fat_sectors + rel, 1, v->fat_buf);
	if (rc < 0)
		return rc;
	v->fat_cached = rel;
	return 0;
}

static int fat_byte(struct fat_vol *v, uint64_t off, uint8_t **p)
{
	int rc = fat_load(v, (uint32_t)(off / v->bps));
	*p = v->fat_buf + off % v->bps;
	return rc;
}

static int fat_get(struct fat_vol *v, uint32_t n, uint32_t *val)
{
	uint8_t *p;
	int rc;
	if (v->type == 12) {
		uint64_t off = n + n / 2;
		if ((rc = fat_byte(v, off, &p)) < 0)
			return rc;
		uint32_t w = *p;
		if ((rc = fat_byte(v, off + 1, &p)) < 0)
			return rc;
		w |= (uint32_t)*p << 8;
		*val = n & 1 ? w >> 4 : w & 0xFFF;
		return 0;
	}
	uint64_t off = (uint64_t)n * (v->type / 8);
	if ((rc = fat_byte(v, off, &p)) < 0)
		return rc;
	*val = v->type == 16 ? le16(p) : le32(p) & 0x0FFFFFFF;
	return 0;
}

static int fat_set(struct fat_vol *v, uint32_t n, uint32_t val)
{
	uint8_t *p;
	int rc;
	if (v->type == 12) {
		uint64_t off = n + n / 2;
		if ((rc = fat_byte(v, off, &p)) < 0)
			return rc;
		*p = n & 1 ? (uint8_t)((*p & 0x0F) | (val << 4 & 0xF0)) : (uint8_t)val;
		v->fat_dirty = true;
		if ((rc = fat_byte(v, off + 1, &p)) < 0)
			return rc;
		*p = n & 1 ? (uint8_t)(val >> 4) : (uint8_t)((*p & 0xF0) | (val >> 8 & 0x0F));
		v->fat_dirty = true;
		return 0;
	}
	uint64_t off = (uint64_t)n * (v->type / 8);
	if ((rc = fat_byte(v, off, &p)) < 0)
		return rc;
	if (v->type == 16)
		put16(p, val);
	else
		put32(p, (le32(p) & 0xF0000000) | (val & 0x0FFFFFFF));
	v->fat_dirty = true;
	return 0;
}

/* The cluster after c in a chain: 0 at its end. A free, bad or out-of-range link is damage. */
static int chain_next(struct fat_vol *v, uint32_t c, uint32_t *next)
{
	uint32_t x;
	int rc = fat_get(v, c, &x);
	if (rc < 0)
		return rc;
	if (clus_ok(v, x))
		*next = x;
	else if (x >= eoc_min(v))
		*next = 0;
	else
		return say(v, -E_CORRUPT, "cluster %u's chain goes on to 0x%x, which no chain may hold", c, x);
	return 0;
}

/* Walks a chain from first: *len clusters, *last the final one. Longer than the volume: a loop. */
static int chain_walk(struct fat_vol *v, uint32_t first, uint32_t *len, uint32_t *last)
{
	*len = 0;
	*last = 0;
	for (uint32_t c = first; c;) {
		if (!clus_ok(v, c))
			return say(v, -E_CORRUPT, "a chain names cluster 0x%x, outside the volume", c);
		if (++*len > v->clusters)
			return say(v, -E_CORRUPT, "the chain from cluster %u loops", first);
		*last = c;
		int rc = chain_next(v, c, &c);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Takes n free clusters (n <= free_count, checked by the caller), chained, appended to `after`
 * (0: a new chain). *first is the first taken. */
static int chain_alloc(struct fat_vol *v, uint32_t n, uint32_t after, uint32_t *first)
{
	uint32_t prev = after, c = clus_ok(v, v->next_free) ? v->next_free : 2;
	*first = 0;
	for (uint32_t seen = 0; n && seen < v->clusters; seen++, c = c == v->clusters + 1 ? 2 : c + 1) {
		uint32_t x;
		int rc = fat_get(v, c, &x);
		if (rc < 0)
			return rc;
		if (x)
			continue;
		if ((rc = fat_set(v, c, eoc_min(v) | 7)) < 0)
			return rc;
		if (prev && (rc = fat_set(v, prev, c)) < 0)
			return rc;
		if (!*first)
			*first = c;
		prev = c;
		v->free_count--;
		n--;
	}
	v->next_free = c;
	if (n)   /* the mount's count said there was room: the FAT changed under us */
		return say(v, -E_CORRUPT, "fewer free clusters than the FAT counted at mount");
	return 0;
}

/* Frees the chain after cluster `keep` (which becomes its end), or the whole chain from
 * `first` when keep is 0. */
static int chain_truncate(struct fat_vol *v, uint32_t keep, uint32_t first)
{
	uint32_t c = first, n = 0;
	int rc;
	if (keep) {
		if ((rc = chain_next(v, keep, &c)) < 0 || (rc = fat_set(v, keep, eoc_min(v) | 7)) < 0)
			return rc;
	}
	while (c) {
		uint32_t next;
		if (!clus_ok(v, c) || ++n > v->clusters)
			return say(v, -E_CORRUPT, "the chain being freed leaves the volume");
		if ((rc = chain_next(v, c, &next)) < 0 || (rc = fat_set(v, c, 0)) < 0)
			return rc;
		v->free_count++;
		c = next;
	}
	return 0;
}

/* ---- mount -------------------------------------------------------------------------------- */

static uint32_t entry_at(const struct fat_vol *v, const uint8_t *fat, uint32_t n)
{
	if (v->type == 12) {
		uint32_t off = n + n / 2, w = fat[off] | fat[off + 1] << 8;
		return n & 1 ? w >> 4 : w & 0xFFF;
	}
	return v->type == 16 ? le16(fat + 2 * n) : le32(fat + 4 * n) & 0x0FFFFFFF;
}

/* Every entry of the FAT in use, each copy compared with the first: counts the free clusters and
 * refuses values no chain may hold. */
static int fat_scan(struct fat_vol *v)
{
	uint64_t used = v->type == 12 ? ((uint64_t)v->clusters + 2) * 3 / 2 + 1 :
				       ((uint64_t)v->clusters + 2) * (v->type / 8);
	uint32_t used_secs = (uint32_t)((used + v->bps - 1) / v->bps);
	uint32_t half = FAT_WORK_BYTES / 2, chunk = half / v->bps;   /* sectors a piece */
	if (v->type == 12 && used_secs > chunk)
		return say(v, -E_UNSUPP, "FAT12 table larger than expected");
	uint32_t n = 0, bad = 0, last = v->clusters + 1, per = v->type == 12 ? 0 : v->bps * 8 / v->type;
	v->free_count = 0;
	for (uint32_t s = 0; s < used_secs; s += chunk) {
		uint32_t k = used_secs - s < chunk ? used_secs - s : chunk;
		int rc = vol_read(v, v->fat_start + (uint64_t)v->active_fat * v->fat_sectors + s, k, v->work);
		if (rc < 0)
			return say(v, rc, "reading the FAT failed");
		for (uint32_t i = 0; v->mirror && i < v->nfats; i++) {
			if (i == v->active_fat)
				continue;
			if ((rc = vol_read(v, v->fat_start + (uint64_t)i * v->fat_sectors + s, k, v->work + half)) < 0)
				return say(v, rc, "reading FAT copy %u failed", i + 1);
			/* The copies must agree on the entries in use (the tail past them is padding). */
			uint64_t cmp = (uint64_t)k * v->bps;
			if ((uint64_t)s * v->bps + cmp > used)
				cmp = used - (uint64_t)s * v->bps;
			if (v->type == 12 && cmp)
				cmp--;   /* the last byte may be half an entry */
			if (memcmp(v->work, v->work + half, (size_t)cmp))
				return say(v, -E_CORRUPT, "FAT copy %u differs from the first (near sector %u)", i + 1, s);
		}
		uint32_t end = v->type == 12 ? last + 1 : (s + k) * per < last + 1 ? (s + k) * per : last + 1;
		for (; n < end; n++) {
			uint32_t x = entry_at(v, v->work, v->type == 12 ? n : n - s * per);
			if (n == 0) {
				if ((x & 0xFF) != v->media)
					return say(v, -E_CORRUPT, "FAT[0] (0x%x) does not carry the media byte 0x%x", x, v->media);
				continue;
			}
			if (n == 1) {
				uint32_t hard = v->type == 16 ? 0x4000 : v->type == 32 ? 0x04000000 : 0;
				if (hard && !(x & hard))
					return say(v, -E_CORRUPT, "the volume is marked as having had disk errors (FAT[1])");
				continue;
			}
			if (x == 0)
				v->free_count++;
			else if (x == bad_mark(v))
				bad++;
			else if (x == 1 || (x > last && x < eoc_min(v)))
				return say(v, -E_CORRUPT, "FAT entry %u holds 0x%x, which no chain may hold", n, x);
		}
	}
	(void)bad;
	return 0;
}

int fat_mount(struct fat_vol *v, const struct fat_dev *dev, uint8_t *work)
{
	memset(v, 0, sizeof(*v));
	v->dev = *dev;
	v->work = work;
	v->fat_cached = -1;
	v->dev_per_sec = 1;
	v->sec_lba = -1;
	fat_set_time(v, 1980, 1, 1, 0, 0, 0);
	uint32_t ls = dev->lsize;
	if (ls < 512 || ls > 4096 || (ls & (ls - 1)))
		return say(v, -E_UNSUPP, "device sectors of %u bytes", ls);
	if (dev->sectors < 1)
		return say(v, -E_FOREIGN, "an empty device");
	uint8_t *b = v->sec;
	int rc = dev->read(dev->ctx, 0, 1, b);
	if (rc < 0)
		return say(v, rc, "reading the boot sector failed");
	if (!(b[0] == 0xEB || b[0] == 0xE9) || b[510] != 0x55 || b[511] != 0xAA ||
	    !memcmp(b + 3, "NTFS    ", 8) || !memcmp(b + 3, "EXFAT   ", 8))
		return say(v, -E_FOREIGN, "no FAT boot sector");
	uint32_t bps = le16(b + 11), spc = b[13], rsvd = le16(b + 14), nfats = b[16];
	uint32_t root_ent = le16(b + 17), tot16 = le16(b + 19), fatsz16 = le16(b + 22);
	v->media = b[21];
	if (bps < 512 || bps > 4096 || (bps & (bps - 1)) || !spc || (spc & (spc - 1)) || !rsvd ||
	    !nfats || nfats > 4 || (v->media != 0xF0 && v->media < 0xF8))
		return say(v, -E_FOREIGN, "no FAT BPB (sector %u, cluster %u sectors, reserved %u, FATs %u, media 0x%x)",
			   bps, spc, rsvd, nfats, v->media);
	if (bps < ls || bps % ls)
		return say(v, -E_UNSUPP, "FAT sectors of %u bytes on a device of %u-byte sectors", bps, ls);
	if ((uint64_t)bps * spc > 65536)
		return say(v, -E_UNSUPP, "clusters of %u bytes", bps * spc);
	v->dev_per_sec = bps / ls;
	if (v->dev_per_sec > 1 && (rc = vol_read(v, 0, 1, b)) < 0)
		return say(v, rc, "reading the boot sector failed");
	v->bps = bps;
	v->spc = spc;
	v->cbytes = bps * spc;
	v->nfats = nfats;
	uint64_t total = tot16 ? tot16 : le32(b + 32);
	uint32_t fatsz = fatsz16 ? fatsz16 : le32(b + 36);
	uint64_t dev_secs = dev->sectors / v->dev_per_sec;
	if (!total || total > dev_secs)
		return say(v, -E_CORRUPT, "the volume's %llu sectors do not fit the device's %llu",
			   (unsigned long long)total, (unsigned long long)dev_secs);
	if (!fatsz)
		return say(v, -E_CORRUPT, "a FAT of no sectors");
	v->root_entries = root_ent;
	v->root_sectors = (root_ent * 32 + bps - 1) / bps;
	v->fat_start = rsvd;
	v->fat_sectors = fatsz;
	v->root_start = rsvd + (uint64_t)nfats * fatsz;
	v->data_start = v->root_start + v->root_sectors;
	if (v->data_start >= total)
		return say(v, -E_CORRUPT, "no room for data: FATs and root end at sector %llu of %llu",
			   (unsigned long long)v->data_start, (unsigned long long)total);
	uint64_t clusters = (total - v->data_start) / spc;
	if (!clusters || clusters > 0x0FFFFFF5)
		return say(v, -E_CORRUPT, "%llu data clusters", (unsigned long long)clusters);
	v->clusters = (uint32_t)clusters;
	v->type = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
	if (!fatsz16 && v->type != 32)   /* the count and the layout disagree on the type */
		return say(v, -E_UNSUPP, "a FAT32 layout with only %llu clusters", (unsigned long long)clusters);
	uint64_t entries = v->type == 12 ? (uint64_t)fatsz * bps * 2 / 3 : (uint64_t)fatsz * bps * 8 / v->type;
	if (entries < clusters + 2)
		return say(v, -E_CORRUPT, "a FAT of %u sectors cannot hold %llu clusters", fatsz,
			   (unsigned long long)clusters);
	const uint8_t *ebpb = b + 36;
	v->active_fat = 0;
	v->mirror = true;
	if (v->type == 32) {
		if (fatsz16 || root_ent)
			return say(v, -E_CORRUPT, "a FAT32-sized volume with a FAT16 layout");
		if (le16(b + 42))
			return say(v, -E_UNSUPP, "FAT32 version 0x%x", le16(b + 42));
		uint32_t ext = le16(b + 40);
		v->mirror = !(ext & 0x80);
		if (!v->mirror && (ext & 0x0F) >= nfats)
			return say(v, -E_CORRUPT, "active FAT %u of %u", ext & 0x0F, nfats);
		v->active_fat = v->mirror ? 0 : ext & 0x0F;
		v->root_cluster = le32(b + 44);
		if (!clus_ok(v, v->root_cluster))
			return say(v, -E_CORRUPT, "the root directory's cluster %u is outside the volume", v->root_cluster);
		uint32_t fsi = le16(b + 48);
		v->fsinfo_sector = fsi >= 1 && fsi < rsvd ? fsi : 0;
		ebpb = b + 64;
	} else if (!root_ent) {
		return say(v, -E_CORRUPT, "a FAT%d volume without root directory entries", v->type);
	}
	if (ebpb[2] == 0x29) {
		memcpy(v->label, ebpb + 7, 11);
		for (int i = 10; i >= 0 && v->label[i] == ' '; i--)
			v->label[i] = 0;
	}
	if ((rc = fat_scan(v)) < 0)
		return rc;
	v->next_free = 2;
	if (v->fsinfo_sector) {
		if ((rc = vol_read(v, v->fsinfo_sector, 1, v->work)) < 0)
			return say(v, rc, "reading FSInfo failed");
		const uint8_t *f = v->work;
		if (le32(f) != 0x41615252 || le32(f + 484) != 0x61417272 || le32(f + 508) != 0xAA550000)
			v->fsinfo_sector = 0;   /* not written then: its hints are optional */
		else if (clus_ok(v, le32(f + 492)))
			v->next_free = le32(f + 492);
	}
	v->sec_lba = -1;
	if (v->type == 32) {
		uint32_t x;
		if ((rc = fat_get(v, v->root_cluster, &x)) < 0)
			return rc;
		if (!x)
			return say(v, -E_CORRUPT, "the root directory's cluster %u is marked free", v->root_cluster);
	}
	return 0;
}

int fat_sync(struct fat_vol *v)
{
	int rc = fat_writeback(v);
	if (rc < 0)
		return rc;
	if (v->changed && v->fsinfo_sector) {
		if ((rc = vol_read(v, v->fsinfo_sector, 1, v->work)) < 0)
			return rc;
		uint8_t *f = v->work;
		if (le32(f) == 0x41615252 && le32(f + 484) == 0x61417272 && le32(f + 508) == 0xAA550000) {
			put32(f + 488, v->free_count);
			put32(f + 492, v->next_free);
			if ((rc = vol_write(v, v->fsinfo_sector, 1, f)) < 0)
				return rc;
		}
	}
	if (v->changed && v->dev.flush && (rc = v->dev.flush(v->dev.ctx)) < 0)
		return say(v, rc, "flushing the device failed");
	return 0;
}

void fat_set_time(struct fat_vol *v, int year, int month, int day, int hour, int minute, int second)
{
	if (year < 1980 || year > 2107 || month < 1 || month > 12 || day < 1 || day > 31) {
		year = 1980;
		month = day = 1;
	}
	if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59)
		hour = minute = second = 0;
	v->now_date = (uint16_t)((year - 1980) << 9 | month << 5 | day);
	v->now_time = (uint16_t)(hour << 11 | minute << 5 | second / 2);
}

struct fat_dir fat_root(const struct fat_vol *v)
{
	return (struct fat_dir){ v->type == 32 ? v->root_cluster : 0 };
}

/* ---- directories -------------------------------------------------------------------------- */

struct dir_it {
	uint32_t clus, sec_idx, ent, count, last_clus;
	uint64_t sector;
	bool fixed, started;
};

static int it_start(struct fat_vol *v, struct fat_dir d, struct dir_it *it)
{
	memset(it, 0, sizeof(*it));
	it->fixed = d.cluster == 0;
	if (it->fixed && v->type == 32)
		return say(v, -E_CORRUPT, "a directory at cluster 0 on FAT32");
	if (!it->fixed && !clus_ok(v, d.cluster))
		return say(v, -E_CORRUPT, "a directory at cluster 0x%x, outside the volume", d.cluster);
	/* The whole chain first: a loop or a bad link refuses the directory before any entry is used. */
	uint32_t len, last;
	int rc = it->fixed ? 0 : chain_walk(v, d.cluster, &len, &last);
	if (rc < 0)
		return rc;
	if (!it->fixed && (uint64_t)len * v->cbytes / 32 > MAX_DIR_ENTRIES)
		return say(v, -E_CORRUPT, "a directory of more than %u entries", MAX_DIR_ENTRIES);
	it->clus = it->last_clus = d.cluster;
	it->sector = it->fixed ? v->root_start : clus_sector(v, d.cluster);
	return 0;
}

/* The next 32-byte entry (in v->sec): 1, or 0 at the directory's end, or an error. */
static int it_next(struct fat_vol *v, struct dir_it *it, uint8_t **e)
{
	uint32_t per = v->bps / 32;
	if (it->started && ++it->ent == per) {
		it->ent = 0;
		it->sec_idx++;
		if (it->fixed) {
			if (it->sec_idx == v->root_sectors)
				return 0;
		} else if (it->sec_idx == v->spc) {
			uint32_t next;
			int rc = chain_next(v, it->clus, &next);
			if (rc < 0)
				return rc;
			if (!next)
				return 0;
			it->clus = it->last_clus = next;
			it->sec_idx = 0;
		}
		it->sector = (it->fixed ? v->root_start : clus_sector(v, it->clus)) + it->sec_idx;
	}
	it->started = true;
	if (it->fixed && it->count == v->root_entries)
		return 0;
	if (++it->count > MAX_DIR_ENTRIES)
		return say(v, -E_CORRUPT, "a directory of more than %u entries (a loop?)", MAX_DIR_ENTRIES);
	int rc = sec_load(v, it->sector);
	if (rc < 0)
		return rc;
	*e = v->sec + it->ent * 32;
	return 1;
}

static uint8_t short_sum(const uint8_t *n)
{
	uint8_t s = 0;
	for (int i = 0; i < 11; i++)
		s = (uint8_t)(((s & 1) << 7) + (s >> 1) + n[i]);
	return s;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* "NAME    EXT" as NAME.EXT (lower case where the NT case bits say so). */
static void short_text(const uint8_t *e, char *out)
{
	int n = 0;
	for (int i = 0; i < 8 && e[i] != ' '; i++) {
		int c = i == 0 && e[0] == 0x05 ? 0xE5 : e[i];
		out[n++] = (char)(e[12] & 0x08 ? lower(c) : c);
	}
	if (e[8] != ' ') {
		out[n++] = '.';
		for (int i = 8; i < 11 && e[i] != ' '; i++)
			out[n++] = (char)(e[12] & 0x10 ? lower(e[i]) : e[i]);
	}
	out[n] = 0;
}

/* A long name being gathered from its slots (last slot first on disk). */
struct lfn {
	uint16_t u[LFN_MAX_SLOTS * 13 + 1];
	int expect;          /* the next slot's ordinal, 0: none in progress */
	uint8_t sum;
	bool valid;          /* slot 1 seen in order */
};

static void lfn_take(struct lfn *l, const uint8_t *e)
{
	static const uint8_t pos[13] = { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30 };
	int ord = e[0] & 0x1F;
	if (e[0] & 0x40) {
		if (ord < 1 || ord > LFN_MAX_SLOTS) {
			l->expect = 0;
			return;
		}
		memset(l->u, 0, sizeof(l->u));
		l->sum = e[13];
		l->expect = ord;
		l->valid = false;
	} else if (!l->expect || ord != l->expect || e[13] != l->sum) {
		l->expect = 0;
		l->valid = false;
		return;
	}
	for (int i = 0; i < 13; i++)
		l->u[(ord - 1) * 13 + i] = le16(e + pos[i]);
	l->expect = ord - 1;
	l->valid = ord == 1;
}

/* The long name as ASCII ('?' for anything else); false when there is none for entry e. */
static bool lfn_text(const struct lfn *l, const uint8_t *e, char *out, size_t max)
{
	if (!l->valid || l->sum != short_sum(e))
		return false;
	size_t n = 0;
	for (; n < LFN_MAX_SLOTS * 13 && l->u[n] && l->u[n] != 0xFFFF && n + 1 < max; n++)
		out[n] = l->u[n] >= 32 && l->u[n] < 127 ? (char)l->u[n] : '?';
	out[n] = 0;
	return n > 0;
}

static bool name_ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (lower((unsigned char)*a) != lower((unsigned char)*b))
			return false;
	return *a == *b;
}

static void entry_fill(const struct fat_vol *v, const uint8_t *e, const struct dir_it *it, struct fat_entry *out)
{
	out->attr = e[11];
	out->cluster = le16(e + 26) | (v->type == 32 ? (uint32_t)le16(e + 20) << 16 : 0);
	out->size = le32(e + 28);
	memcpy(out->short_name, e, 11);
	out->sector = it->sector;
	out->offset = it->ent * 32;
}

/* Walks a directory: fn sees each live entry with its name; returns fn's first non-zero. */
static int dir_walk(struct fat_vol *v, struct fat_dir d,
		    int (*fn)(void *ctx, const char *name, const char *lname, const struct fat_entry *e), void *ctx)
{
	struct dir_it it;
	struct lfn l;
	uint8_t *e;
	char sname[16], lname[FAT_NAME_MAX + 1];
	int rc = it_start(v, d, &it);
	l.expect = 0;
	l.valid = false;
	while (rc == 0 && (rc = it_next(v, &it, &e)) == 1) {
		rc = 0;
		if (e[0] == 0)
			break;
		if (e[0] == 0xE5) {
			l.expect = 0;
			l.valid = false;
			continue;
		}
		if ((e[11] & 0x3F) == ATTR_LFN) {
			lfn_take(&l, e);
			continue;
		}
		if (e[11] & ATTR_VOLUME) {
			l.expect = 0;
			l.valid = false;
			continue;
		}
		struct fat_entry fe;
		entry_fill(v, e, &it, &fe);
		short_text(e, sname);
		bool has_l = lfn_text(&l, e, lname, sizeof(lname));
		rc = fn(ctx, sname, has_l ? lname : NULL, &fe);
		l.expect = 0;
		l.valid = false;
	}
	return rc;
}

struct find_ctx {
	const char *name;
	struct fat_entry *out;
	struct fat_vol *v;
};

static int find_fn(void *ctx, const char *sname, const char *lname, const struct fat_entry *e)
{
	struct find_ctx *f = ctx;
	if (name_ieq(sname, f->name) || (lname && name_ieq(lname, f->name))) {
		*f->out = *e;
		return 1;
	}
	return 0;
}

int fat_lookup(struct fat_vol *v, struct fat_dir d, const char *name, struct fat_entry *e)
{
	/* Only valid names are looked up, so a '?' standing for a non-ASCII unit matches nothing. */
	if (fat_name_ok(name) < 0)
		return -E_NOENT;
	struct find_ctx f = { name, e, v };
	int rc = dir_walk(v, d, find_fn, &f);
	return rc < 0 ? rc : rc == 1 ? 0 : -E_NOENT;
}

struct list_ctx {
	int (*fn)(void *ctx, const char *name, const struct fat_entry *e);
	void *ctx;
};

static int list_fn(void *ctx, const char *sname, const char *lname, const struct fat_entry *e)
{
	struct list_ctx *l = ctx;
	if (sname[0] == '.' && (!sname[1] || (sname[1] == '.' && !sname[2])))
		return 0;
	return l->fn(l->ctx, lname ? lname : sname, e);
}

int fat_list(struct fat_vol *v, struct fat_dir d,
	     int (*fn)(void *ctx, const char *name, const struct fat_entry *e), void *ctx)
{
	struct list_ctx l = { fn, ctx };
	int rc = dir_walk(v, d, list_fn, &l);
	return rc < 0 ? rc : 0;
}

struct short_ctx { const uint8_t *n; };

static int short_fn(void *ctx, const char *sname, const char *lname, const struct fat_entry *e)
{
	(void)sname;
	(void)lname;
	return !memcmp(((struct short_ctx *)ctx)->n, e->short_name, 11);
}

int fat_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (!n || n > FAT_NAME_MAX || name[n - 1] == '.' || name[n - 1] == ' ')
		return -E_INVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 32 || c >= 127 || strchr("\\/:*?\"<>|", c))
			return -E_INVAL;
	}
	return 0;
}

static bool short_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'()-@^_`{}~", c));
}

/* The name as an 8.3 entry name when it already is one (upper case, valid characters). */
static bool exact_short(const char *name, uint8_t *out)
{
	memset(out, ' ', 11);
	const char *dot = strchr(name, '.');
	size_t base = dot ? (size_t)(dot - name) : strlen(name), ext = dot ? strlen(dot + 1) : 0;
	if (!base || base > 8 || ext > 3 || (dot && (!ext || strchr(dot + 1, '.'))))
		return false;
	for (size_t i = 0; i < base; i++)
		if (!short_char(name[i]))
			return false;
	for (size_t i = 0; i < ext; i++)
		if (!short_char(dot[1 + i]))
			return false;
	memcpy(out, name, base);
	if (ext)
		memcpy(out + 8, dot + 1, ext);
	return out[0] != 0xE5;
}

/* A unique 8.3 name for a long name: its basis (upper case, others as '_') with a ~N tail. */
static int make_short(struct fat_vol *v, struct fat_dir d, const char *name, uint8_t *out)
{
	uint8_t basis[11];
	memset(basis, ' ', 11);
	const char *dot = NULL;
	for (const char *p = name + 1; *p; p++)   /* the last dot, not a leading one */
		if (*p == '.')
			dot = p;
	int n = 0;
	for (const char *p = name; *p && p != dot && n < 8; p++) {
		int c = (unsigned char)*p;
		if (c == ' ' || c == '.')
			continue;
		c = c >= 'a' && c <= 'z' ? c - 32 : c;
		basis[n++] = (uint8_t)(short_char(c) ? c : '_');
	}
	if (!n)
		basis[n++] = '_';
	for (int i = 0; dot && dot[1 + i] && i < 3; i++) {
		int c = (unsigned char)dot[1 + i];
		c = c >= 'a' && c <= 'z' ? c - 32 : c;
		basis[8 + i] = (uint8_t)(short_char(c) ? c : '_');
	}
	/* ~1 to ~4 on the basis, then (as Windows does, so a directory of names alike does not run
	 * out) its first two characters, four hex digits of a hash of the long name, and ~1. */
	uint32_t h = 2166136261u;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	for (uint32_t k = 1; k < 1000; k++) {   /* bounded: each try walks the directory */
		char tail[12];
		memcpy(out, basis, 11);
		int t, keep;
		if (k <= 4) {
			t = fmt_snprintf(tail, sizeof(tail), "~%u", k);
			keep = n < 8 - t ? n : 8 - t;
		} else {
			static const char hex[] = "0123456789ABCDEF";
			uint32_t x = (h ^ (k * 2654435761u)) >> 8;
			keep = n < 2 ? n : 2;
			t = fmt_snprintf(tail, sizeof(tail), "%c%c%c%c~1", hex[x >> 12 & 15], hex[x >> 8 & 15],
					 hex[x >> 4 & 15], hex[x & 15]);
		}
		memset(out + keep, ' ', (size_t)(8 - keep));
		memcpy(out + keep, tail, (size_t)t);
		struct short_ctx s = { out };
		int rc = dir_walk(v, d, short_fn, &s);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return 0;
	}
	return say(v, -E_NOSPC, "no free short name for '%s'", name);
}

/* Entries needed for name: its long-name slots and the 8.3 entry. */
static int slots_for(const char *name, bool lfn)
{
	return lfn ? (int)(strlen(name) + 12) / 13 + 1 : 1;
}

/* Finds n free consecutive entries in d: 0 and the first one's position (index), or *more:
 * the clusters the directory must grow by. */
static int find_slots(struct fat_vol *v, struct fat_dir d, uint32_t n, uint32_t *first, uint32_t *more,
		      bool *past_end)
{
	struct dir_it it;
	uint8_t *e;
	uint32_t run = 0, idx = 0;
	bool end = false;
	int rc = it_start(v, d, &it);
	*more = 0;
	while (rc == 0 && (rc = it_next(v, &it, &e)) == 1) {
		rc = 0;
		if (end || e[0] == 0 || e[0] == 0xE5) {
			end = end || e[0] == 0;
			if (++run == n) {
				*first = idx + 1 - n;
				*past_end = end;
				return 0;
			}
		} else {
			run = 0;
		}
		idx++;
	}
	if (rc < 0)
		return rc;
	if (d.cluster == 0)
		return say(v, -E_NOSPC, "the root directory is full (%u entries)", v->root_entries);
	uint32_t per = v->cbytes / 32;
	*more = (n - run + per - 1) / per;
	if ((uint64_t)idx + *more * per > MAX_DIR_ENTRIES)
		return say(v, -E_NOSPC, "the directory has reached %u entries", MAX_DIR_ENTRIES);
	return 1;
}

/* The sector and offset of entry idx of d. */
static int slot_pos(struct fat_vol *v, struct fat_dir d, uint32_t idx, uint64_t *sec, uint32_t *off)
{
	uint32_t per = v->bps / 32, s = idx / per;
	*off = idx % per * 32;
	if (d.cluster == 0) {
		*sec = v->root_start + s;
		return 0;
	}
	uint32_t c = d.cluster;
	for (uint32_t k = s / v->spc; k; k--) {
		int rc = chain_next(v, c, &c);
		if (rc < 0)
			return rc;
		if (!c)
			return say(v, -E_CORRUPT, "a directory shorter than it was a moment ago");
	}
	*sec = clus_sector(v, c) + s % v->spc;
	return 0;
}

static int zero_clusters(struct fat_vol *v, uint32_t first)
{
	memset(v->work, 0, v->cbytes);
	for (uint32_t c = first; c;) {
		int rc = vol_write(v, clus_sector(v, c), v->spc, v->work);
		if (rc < 0 || (rc = chain_next(v, c, &c)) < 0)
			return rc;
	}
	return 0;
}

static void entry_make(const struct fat_vol *v, uint8_t *e, const uint8_t *sname, uint8_t attr,
		       uint32_t cluster, uint32_t size)
{
	memset(e, 0, 32);
	memcpy(e, sname, 11);
	e[11] = attr;
	put16(e + 14, v->now_time);
	put16(e + 16, v->now_date);
	put16(e + 18, v->now_date);
	put16(e + 20, v->type == 32 ? cluster >> 16 : 0);
	put16(e + 22, v->now_time);
	put16(e + 24, v->now_date);
	put16(e + 26, cluster & 0xFFFF);
	put32(e + 28, size);
}

static int write_entry_at(struct fat_vol *v, uint64_t sec, uint32_t off, const uint8_t *e)
{
	int rc = sec_load(v, sec);
	if (rc < 0)
		return rc;
	memcpy(v->sec + off, e, 32);
	return vol_write(v, sec, 1, v->sec);
}

/* Puts name's entries (long-name slots, then the 8.3 entry `e`) into free slots of d, growing d
 * by `more` clusters first when it needs them (counted as space by the caller). */
static int dir_add(struct fat_vol *v, struct fat_dir d, const char *name, bool lfn, uint8_t *e,
		   uint32_t *entry_sec, uint32_t *entry_off)
{
	static const uint8_t pos[13] = { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30 };
	uint32_t n = (uint32_t)slots_for(name, lfn), first, more;
	bool past_end = false;
	int rc = find_slots(v, d, n, &first, &more, &past_end);
	if (rc == 1) {
		uint32_t len, last, add;
		if ((rc = chain_walk(v, d.cluster, &len, &last)) < 0 ||
		    (rc = chain_alloc(v, more, last, &add)) < 0 || (rc = fat_writeback(v)) < 0 ||
		    (rc = zero_clusters(v, add)) < 0 || (rc = find_slots(v, d, n, &first, &more, &past_end)) != 0)
			return rc < 0 ? rc : say(v, -E_CORRUPT, "no room in a directory just grown");
	} else if (rc < 0) {
		return rc;
	}
	uint8_t slot[32], sum = short_sum(e);
	size_t len = strlen(name);
	for (uint32_t i = 0; i + 1 < n; i++) {
		uint32_t ord = n - 1 - i;   /* the last part of the name comes first */
		memset(slot, 0, 32);
		slot[0] = (uint8_t)(ord | (i == 0 ? 0x40 : 0));
		slot[11] = ATTR_LFN;
		slot[13] = sum;
		for (int k = 0; k < 13; k++) {
			size_t ci = (ord - 1) * 13 + (size_t)k;
			uint16_t u = ci < len ? (uint8_t)name[ci] : ci == len ? 0 : 0xFFFF;
			put16(slot + pos[k], u);
		}
		uint64_t sec;
		uint32_t off;
		if ((rc = slot_pos(v, d, first + i, &sec, &off)) < 0 || (rc = write_entry_at(v, sec, off, slot)) < 0)
			return rc;
	}
	uint64_t sec;
	uint32_t off;
	if ((rc = slot_pos(v, d, first + n - 1, &sec, &off)) < 0 || (rc = write_entry_at(v, sec, off, e)) < 0)
		return rc;
	*entry_sec = (uint32_t)sec;
	*entry_off = off;
	/* Placed over the end marker: whatever follows it was never an entry, so it must not become
	 * one now. The next slot becomes the end marker. */
	uint32_t total = v->root_entries, clen, clast;
	if (past_end && d.cluster) {
		if ((rc = chain_walk(v, d.cluster, &clen, &clast)) < 0)
			return rc;
		total = clen * (v->cbytes / 32);
	}
	if (past_end && first + n < total) {
		uint8_t zero[32] = { 0 };
		if ((rc = slot_pos(v, d, first + n, &sec, &off)) < 0 || (rc = sec_load(v, sec)) < 0)
			return rc;
		if (v->sec[off] && (rc = write_entry_at(v, sec, off, zero)) < 0)
			return rc;
	}
	return 0;
}

/* How a new name will be stored: its 8.3 name and whether it needs long-name slots. */
static int plan_name(struct fat_vol *v, struct fat_dir d, const char *name, uint8_t *sname, bool *lfn)
{
	if (fat_name_ok(name) < 0)
		return say(v, -E_INVAL, "'%s' cannot be a FAT file name", name);
	if (exact_short(name, sname)) {
		*lfn = false;
		return 0;
	}
	*lfn = true;
	return make_short(v, d, name, sname);
}

/* Clusters a new entry for name in d would take to grow d (0 when it fits). */
static int space_for_entry(struct fat_vol *v, struct fat_dir d, int slots, uint32_t *more)
{
	uint32_t first;
	bool past_end;
	int rc = find_slots(v, d, (uint32_t)slots, &first, more, &past_end);
	return rc < 0 ? rc : 0;
}

int fat_mkdir(struct fat_vol *v, struct fat_dir d, const char *name, struct fat_dir *out)
{
	struct fat_entry e;
	int rc = fat_lookup(v, d, name, &e);
	if (rc == 0) {
		if (!(e.attr & ATTR_DIR))
			return say(v, -E_EXIST, "'%s' is a file, not a directory", name);
		if (!clus_ok(v, e.cluster))
			return say(v, -E_CORRUPT, "directory '%s' starts at cluster 0x%x", name, e.cluster);
		out->cluster = e.cluster;
		return 0;
	}
	if (rc != -E_NOENT)
		return rc;
	if (!v->dev.write)
		return -E_RDONLY;
	uint8_t sname[11], ent[32];
	bool lfn;
	uint32_t more, c, es, eo;
	if ((rc = plan_name(v, d, name, sname, &lfn)) < 0 ||
	    (rc = space_for_entry(v, d, slots_for(name, lfn), &more)) < 0)
		return rc;
	if (v->free_count < more + 1)
		return say(v, -E_NOSPC, "the volume is full: a directory needs %u clusters, %u are free",
			   more + 1, v->free_count);
	if ((rc = chain_alloc(v, 1, 0, &c)) < 0 || (rc = fat_writeback(v)) < 0 || (rc = zero_clusters(v, c)) < 0)
		return rc;
	/* "." and ".." first, so the directory is whole before it is named. */
	static const uint8_t dot[11] = { '.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ' };
	static const uint8_t dotdot[11] = { '.', '.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ' };
	uint32_t parent = d.cluster == fat_root(v).cluster ? 0 : d.cluster;
	memset(v->work, 0, v->bps);
	entry_make(v, v->work, dot, ATTR_DIR, c, 0);
	entry_make(v, v->work + 32, dotdot, ATTR_DIR, parent, 0);
	if ((rc = vol_write(v, clus_sector(v, c), 1, v->work)) < 0)
		return rc;
	entry_make(v, ent, sname, ATTR_DIR, c, 0);
	if ((rc = dir_add(v, d, name, lfn, ent, &es, &eo)) < 0)
		return rc;
	out->cluster = c;
	return 0;
}

/* Writes len bytes at byte `pos` of the chain from `first` (which is long enough). */
static int chain_write(struct fat_vol *v, uint32_t first, uint32_t pos, const uint8_t *data, uint32_t len)
{
	uint32_t c = first;
	int rc;
	for (uint32_t k = pos / v->cbytes; k; k--)
		if ((rc = chain_next(v, c, &c)) < 0)
			return rc;
	uint32_t off = pos % v->cbytes;
	while (len) {
		if (!c)
			return say(v, -E_CORRUPT, "a chain shorter than its file");
		uint64_t sec = clus_sector(v, c) + off / v->bps;
		uint32_t in = off % v->bps;
		if (in || len < v->bps) {   /* a partial sector: read, change, write */
			uint32_t n = v->bps - in < len ? v->bps - in : len;
			if (in && (rc = sec_load(v, sec)) < 0)
				return rc;
			if (!in)
				memset(v->sec, 0, v->bps);   /* past the end of the file: zeros */
			memcpy(v->sec + in, data, n);
			v->sec_lba = (int64_t)sec;
			if ((rc = vol_write(v, sec, 1, v->sec)) < 0)
				return rc;
			data += n;
			len -= n;
			off += n;
		} else {
			uint32_t secs = (v->cbytes - off) / v->bps;
			if (secs > len / v->bps)
				secs = len / v->bps;
			if ((rc = vol_write(v, sec, secs, data)) < 0)
				return rc;
			data += secs * v->bps;
			len -= secs * v->bps;
			off += secs * v->bps;
		}
		if (off == v->cbytes) {
			off = 0;
			if (len && (rc = chain_next(v, c, &c)) < 0)
				return rc;
		}
	}
	return 0;
}

int fat_write_file(struct fat_vol *v, struct fat_dir d, const char *name, const void *data,
		   uint32_t len, char mode)
{
	if (mode != 'w' && mode != 'a')
		return -E_INVAL;
	if (!v->dev.write)
		return -E_RDONLY;
	struct fat_entry e;
	int rc = fat_lookup(v, d, name, &e);
	bool exists = rc == 0;
	if (rc < 0 && rc != -E_NOENT)
		return rc;
	uint8_t sname[11];
	bool lfn = false;
	uint32_t old_len = 0, last = 0, more = 0, old = 0;
	if (exists) {
		if (e.attr & (ATTR_DIR | ATTR_VOLUME))
			return say(v, -E_EXIST, "'%s' is a directory", name);
		if (e.attr & ATTR_RO)
			return say(v, -E_RDONLY, "'%s' is read-only", name);
		old = e.size;
		if ((e.cluster == 0) != (e.size == 0))
			return say(v, -E_CORRUPT, "'%s' has %u bytes at cluster %u", name, e.size, e.cluster);
		if (e.cluster && (rc = chain_walk(v, e.cluster, &old_len, &last)) < 0)
			return rc;
		if ((uint64_t)old_len * v->cbytes < e.size || (old_len && (uint64_t)(old_len - 1) * v->cbytes >= e.size))
			return say(v, -E_CORRUPT, "'%s' is %u bytes on a chain of %u clusters", name, e.size, old_len);
	} else {
		if ((rc = plan_name(v, d, name, sname, &lfn)) < 0 ||
		    (rc = space_for_entry(v, d, slots_for(name, lfn), &more)) < 0)
			return rc;
	}
	uint32_t pos = mode == 'a' ? old : 0;
	if ((uint64_t)pos + len > 0xFFFFFFFFu)
		return say(v, -E_NOSPC, "a FAT file cannot grow past 4 GiB");
	uint32_t size = pos + len, need = (uint32_t)(((uint64_t)size + v->cbytes - 1) / v->cbytes);
	uint32_t grow = need > old_len ? need - old_len : 0;
	if ((uint64_t)grow + more > v->free_count)
		return say(v, -E_NOSPC, "the volume is full: '%s' needs %u more clusters of %u bytes, %u are free",
			   name, grow + more, v->cbytes, v->free_count);
	uint32_t first = exists ? e.cluster : 0, add;
	if (grow) {
		if ((rc = chain_alloc(v, grow, last, &add)) < 0)
			return rc;
		if (!first)
			first = add;
	}
	if (len && (rc = chain_write(v, first, pos, data, len)) < 0)
		return rc;
	if (need < old_len) {
		uint32_t keep = 0;
		if (need) {
			keep = first;
			for (uint32_t k = 1; k < need; k++)
				if ((rc = chain_next(v, keep, &keep)) < 0)
					return rc;
		}
		if ((rc = chain_truncate(v, keep, first)) < 0)
			return rc;
		if (!need)
			first = 0;
	}
	if ((rc = fat_writeback(v)) < 0)
		return rc;
	uint8_t ent[32];
	if (exists) {   /* the entry last: it names the data only once that is in place */
		if ((rc = sec_load(v, e.sector)) < 0)
			return rc;
		uint8_t *p = v->sec + e.offset;
		p[11] |= ATTR_ARCHIVE;
		put16(p + 20, v->type == 32 ? first >> 16 : 0);
		put16(p + 22, v->now_time);
		put16(p + 24, v->now_date);
		put16(p + 26, first & 0xFFFF);
		put32(p + 28, size);
		put16(p + 18, v->now_date);
		return vol_write(v, e.sector, 1, v->sec);
	}
	uint32_t es, eo;
	entry_make(v, ent, sname, ATTR_ARCHIVE, first, size);
	return dir_add(v, d, name, lfn, ent, &es, &eo);
}

int fat_read_file(struct fat_vol *v, struct fat_dir d, const char *name, void *buf, uint32_t max,
		  uint32_t *len)
{
	struct fat_entry e;
	int rc = fat_lookup(v, d, name, &e);
	if (rc < 0)
		return rc;
	if (e.attr & ATTR_DIR)
		return say(v, -E_EXIST, "'%s' is a directory", name);
	uint32_t n, last;
	if (e.cluster && (rc = chain_walk(v, e.cluster, &n, &last)) < 0)
		return rc;
	if (!e.cluster)
		n = 0;
	if ((uint64_t)n * v->cbytes < e.size)
		return say(v, -E_CORRUPT, "'%s' is %u bytes on a chain of %u clusters", name, e.size, n);
	*len = e.size;
	uint32_t want = e.size < max ? e.size : max, done = 0;
	uint8_t *out = buf;
	for (uint32_t c = e.cluster; c && done < want;) {
		for (uint32_t s = 0; s < v->spc && done < want; s++) {
			uint32_t take = want - done < v->bps ? want - done : v->bps;
			if ((rc = sec_load(v, clus_sector(v, c) + s)) < 0)
				return rc;
			memcpy(out + done, v->sec, take);
			done += take;
		}
		if ((rc = chain_next(v, c, &c)) < 0)
			return rc;
	}
	return 0;
}
