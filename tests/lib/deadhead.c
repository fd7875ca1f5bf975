/* The dead-head drive model for the rescue unit tests (tests/lib/deadhead.h); its Python twin
 * is tests/qemu/deadhead_geometry.py, which reads the same specs the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "deadhead.h"
#include "../../lib/errors.h"

static int size_arg(const char **p, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(*p, &end, 0);
	if (end == *p)
		return -1;
	switch (*end) {
	case 'K': v <<= 10; end++; break;
	case 'M': v <<= 20; end++; break;
	case 'G': v <<= 30; end++; break;
	case 's': v *= DH_SECTOR; end++; break;
	default: break;
	}
	*p = end;
	*out = v;
	return 0;
}

static int num_arg(const char **p, uint64_t *out)
{
	char *end;
	*out = strtoull(*p, &end, 0);
	if (end == *p)
		return -1;
	*p = end;
	return 0;
}

int dh_parse(const char *spec, struct dh_geom *g, char *why, size_t n)
{
	memset(g, 0, sizeof(*g));
	g->tries = 1;
	const char *p = spec;
	uint64_t size = 0, zlen[DH_MAX_ZONES], zband[DH_MAX_ZONES];
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		uint64_t v;
		if (!strncmp(p, "size=", 5)) {
			p += 5;
			if (size_arg(&p, &size) < 0 || size % DH_SECTOR || !size)
				goto bad;
		} else if (!strncmp(p, "heads=", 6)) {
			p += 6;
			if (num_arg(&p, &v) < 0 || v < 2 || v > 8)
				goto bad;
			g->heads = (uint32_t)v;
		} else if (!strncmp(p, "dead=", 5)) {
			p += 5;
			do {
				if (*p == ',')
					p++;
				if (num_arg(&p, &v) < 0 || v > 7)
					goto bad;
				g->dead_mask |= 1u << v;
			} while (*p == ',');
		} else if (!strncmp(p, "zones=", 6)) {
			p += 6;
			do {
				if (*p == ',')
					p++;
				if (g->nzones == DH_MAX_ZONES || size_arg(&p, &zlen[g->nzones]) < 0 || *p++ != ':' ||
				    size_arg(&p, &zband[g->nzones]) < 0 || !zband[g->nzones] || zband[g->nzones] % DH_SECTOR ||
				    zlen[g->nzones] % DH_SECTOR)
					goto bad;
				g->nzones++;
			} while (*p == ',');
		} else if (!strncmp(p, "bad=", 4) || !strncmp(p, "weak=", 5)) {
			int weak = p[0] == 'w';
			p += weak ? 5 : 4;
			do {
				uint64_t s, c;
				if (*p == ',')
					p++;
				uint32_t *cnt = weak ? &g->nweak : &g->nbad;
				if (*cnt == DH_MAX_RANGES || num_arg(&p, &s) < 0 || *p++ != '+' || num_arg(&p, &c) < 0 || !c)
					goto bad;
				if (weak) {
					if (*p++ != ':' || num_arg(&p, &v) < 0 || !v || v > 100)
						goto bad;
					g->tries = (uint32_t)v;
					g->weak[g->nweak].start = s;
					g->weak[g->nweak++].count = c;
				} else {
					g->bad[g->nbad].start = s;
					g->bad[g->nbad++].count = c;
				}
			} while (*p == ',');
		} else {
			goto bad;
		}
		if (*p && *p != ' ')
			goto bad;
	}
	if (!size || !g->heads || !g->dead_mask || !g->nzones || g->dead_mask >> g->heads) {
		snprintf(why, n, "a spec needs size, heads (2-8), dead (heads below that) and zones");
		return -1;
	}
	g->sectors = size / DH_SECTOR;
	uint64_t at = 0;
	for (uint32_t z = 0; z < g->nzones; z++) {
		uint64_t len = z + 1 == g->nzones || at + zlen[z] / DH_SECTOR > g->sectors ? g->sectors - at : zlen[z] / DH_SECTOR;
		g->zone[z].start = at;
		g->zone[z].count = len;
		g->zone[z].band = zband[z] / DH_SECTOR;
		at += len;
	}
	for (uint32_t i = 0; i < g->nbad; i++)
		if (g->bad[i].start + g->bad[i].count > g->sectors)
			goto range;
	for (uint32_t i = 0; i < g->nweak; i++)
		if (g->weak[i].start + g->weak[i].count > g->sectors)
			goto range;
	return 0;
range:
	snprintf(why, n, "a bad or weak range lies beyond the drive");
	return -1;
bad:
	snprintf(why, n, "cannot read the spec at '%.20s'", p);
	return -1;
}

enum dh_kind dh_kind_at(const struct dh_geom *g, uint64_t s)
{
	for (uint32_t i = 0; i < g->nbad; i++)
		if (s >= g->bad[i].start && s < g->bad[i].start + g->bad[i].count)
			return DH_BAD;
	for (uint32_t z = 0; z < g->nzones; z++)
		if (s >= g->zone[z].start && s < g->zone[z].start + g->zone[z].count) {
			uint64_t head = (s - g->zone[z].start) / g->zone[z].band % g->heads;
			if (g->dead_mask >> head & 1)
				return DH_BAD;
			break;
		}
	for (uint32_t i = 0; i < g->nweak; i++)
		if (s >= g->weak[i].start && s < g->weak[i].start + g->weak[i].count)
			return DH_WEAK;
	return DH_GOOD;
}

/* Walks the drive band by band (bands are long) and the bad list, merging as it goes. */
uint32_t dh_bad_ranges(const struct dh_geom *g, uint64_t (*out)[2], uint32_t max, uint32_t *total)
{
	uint32_t n = 0;
	uint64_t cur_a = 0, cur_b = 0;
	int open = 0;
	uint64_t s = 0;
	while (s < g->sectors) {
		/* the next boundary: a band edge, a zone edge or a bad range edge */
		uint64_t next = g->sectors;
		for (uint32_t z = 0; z < g->nzones; z++)
			if (s >= g->zone[z].start && s < g->zone[z].start + g->zone[z].count) {
				uint64_t o = s - g->zone[z].start, e = g->zone[z].start + (o / g->zone[z].band + 1) * g->zone[z].band;
				uint64_t ze = g->zone[z].start + g->zone[z].count;
				next = e < ze ? e : ze;
			}
		for (uint32_t i = 0; i < g->nbad; i++) {
			uint64_t a = g->bad[i].start, b = a + g->bad[i].count;
			if (a > s && a < next)
				next = a;
			if (b > s && b < next)
				next = b;
		}
		int bad = dh_kind_at(g, s) == DH_BAD;
		if (bad) {
			if (open && cur_b == s) {
				cur_b = next;
			} else {
				if (open) {
					if (n < max)
						out[n][0] = cur_a, out[n][1] = cur_b;
					n++;
				}
				cur_a = s;
				cur_b = next;
				open = 1;
			}
		}
		s = next;
	}
	if (open) {
		if (n < max)
			out[n][0] = cur_a, out[n][1] = cur_b;
		n++;
	}
	if (total)
		*total = n;
	return n < max ? n : max;
}

uint32_t dh_count_bands(const struct dh_geom *g, uint64_t min)
{
	static uint64_t r[65536][2];
	uint32_t total, n = dh_bad_ranges(g, r, 65536, &total), k = 0;
	for (uint32_t i = 0; i < n; i++)
		k += r[i][1] - r[i][0] >= min;
	return k;
}

void dh_sector_data(uint64_t s, uint8_t *out)
{
	uint64_t x = s * 0x9E3779B97F4A7C15ull + 1;
	for (uint32_t i = 0; i < DH_SECTOR; i += 8) {
		x ^= x >> 31;
		x *= 0xBF58476D1CE4E5B9ull;
		x ^= x >> 29;
		memcpy(out + i, &x, 8);
	}
}

/* ---- the drive ---------------------------------------------------------------------------- */

#define GOOD_READ_US 60        /* command overhead, cached/sequential */
#define SEEK_US 4000           /* a read that does not follow the last one */
#define BYTES_PER_US 150       /* 150 MB/s media rate */
#define BAD_READ_US 2000000    /* a drive retrying a dead head: seconds per failed read */

static int dh_read(struct dh_drive *d, struct cow_io *io)
{
	uint64_t s = io->off / DH_SECTOR, n = io->len / DH_SECTOR;
	if (io->off % DH_SECTOR || io->len % DH_SECTOR || s + n > d->g.sectors)
		return -E_RANGE;
	d->reads++;
	*d->now_us += GOOD_READ_US + io->len / BYTES_PER_US + (s == d->last_end ? 0 : SEEK_US);
	d->last_end = s + n;
	int fail = 0;
	uint64_t first = UINT64_MAX;
	for (uint64_t i = s; i < s + n; i++) {
		if (d->kind[i] == DH_BAD || (d->kind[i] == DH_WEAK && d->tries[i]++ < d->g.tries)) {
			fail = 1;
			if (first == UINT64_MAX)
				first = i;
		}
	}
	if (d->trace)
		fprintf(d->trace, "R %llu %llu %d\n", (unsigned long long)s, (unsigned long long)n, !fail);
	if (fail) {
		/* The drive gives up on the whole command; it names no sector (as virtio cannot). */
		d->bad_reads++;
		*d->now_us += d->bad_read_us;
		io->bad_off = io->off;
		return -E_MEDIUM;
	}
	for (uint64_t i = s; i < s + n; i++) {
		dh_sector_data(i, (uint8_t *)io->buf + (i - s) * DH_SECTOR);
		if (d->seen[i])
			continue;
		d->seen[i] = 1;
		if (d->kind[i] == DH_GOOD && --d->readable_left == 0) {
			d->done_us = *d->now_us;
			d->done_reads = d->reads;
			d->done_bad_reads = d->bad_reads;
			if (d->trace)
				fprintf(d->trace, "DONE\n");
		}
		if (d->kind[i] == DH_WEAK && --d->weak_left == 0) {
			d->weak_done_us = *d->now_us;
			d->weak_done_bad_reads = d->bad_reads;
		}
	}
	return 0;
}

static void dh_submit(void *ctx, struct cow_io *io)
{
	struct dh_drive *d = ctx;
	if (io->op == COW_IO_READ) {
		io->status = dh_read(d, io);
	} else {
		d->writes += io->op == COW_IO_WRITE;
		io->status = io->op == COW_IO_WRITE ? -E_RDONLY : 0;
	}
}

static int dh_wait(void *ctx, struct cow_io *io)
{
	(void)ctx;
	return io->status;
}

int dh_drive_init(struct dh_drive *d, const char *spec, uint64_t *clock, char *why, size_t n)
{
	memset(d, 0, sizeof(*d));
	if (dh_parse(spec, &d->g, why, n) < 0)
		return -1;
	uint64_t ns = d->g.sectors;
	d->now_us = clock;
	d->bad_read_us = BAD_READ_US;
	d->kind = malloc(ns);
	d->seen = calloc(ns, 1);
	d->tries = calloc(ns, sizeof(*d->tries));
	if (!d->kind || !d->seen || !d->tries) {
		snprintf(why, n, "out of memory");
		return -1;
	}
	/* Zone by zone, band by band: a per-sector loop over the lists would be slow on big drives. */
	memset(d->kind, DH_GOOD, ns);
	for (uint32_t z = 0; z < d->g.nzones; z++)
		for (uint64_t o = 0; o < d->g.zone[z].count; o += d->g.zone[z].band)
			if (d->g.dead_mask >> (o / d->g.zone[z].band % d->g.heads) & 1) {
				uint64_t len = d->g.zone[z].count - o < d->g.zone[z].band ? d->g.zone[z].count - o : d->g.zone[z].band;
				memset(d->kind + d->g.zone[z].start + o, DH_BAD, len);
			}
	for (uint32_t i = 0; i < d->g.nweak; i++)
		for (uint64_t s = d->g.weak[i].start; s < d->g.weak[i].start + d->g.weak[i].count; s++)
			if (d->kind[s] == DH_GOOD)
				d->kind[s] = DH_WEAK;
	for (uint32_t i = 0; i < d->g.nbad; i++)
		memset(d->kind + d->g.bad[i].start, DH_BAD, d->g.bad[i].count);
	for (uint64_t s = 0; s < ns; s++) {
		d->readable_left += d->kind[s] == DH_GOOD;
		d->weak_left += d->kind[s] == DH_WEAK;
	}
	d->bdev = (struct cow_bdev){ .ctx = d, .size = ns * DH_SECTOR, .lsize = DH_SECTOR, .psize = DH_SECTOR,
				     .submit = dh_submit, .wait = dh_wait };
	snprintf(d->bdev.model, sizeof(d->bdev.model), "DEAD HEAD %uH", d->g.heads);
	snprintf(d->bdev.serial, sizeof(d->bdev.serial), "DH%u-%x", d->g.heads, d->g.dead_mask);
	return 0;
}

void dh_drive_free(struct dh_drive *d)
{
	free(d->kind);
	free(d->seen);
	free(d->tries);
}
