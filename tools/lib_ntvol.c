/* Disk access and range sets shared by ntmap, ntgrep and ntfind-bad (tools/lib_ntvol.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lib_ntvol.h"
#include "../lib/errors.h"

#ifndef COWBOOT_VERSION   /* the fuzzers build the host library without it */
#define COWBOOT_VERSION "unknown"
#endif

static int read_aligned(struct ntdisk *d, uint64_t off, uint64_t len, uint8_t *buf)
{
	if (off > d->size || len > d->size - off)
		return -E_RANGE;
	if (d->strict) {
		uint64_t count[256] = { 0 };
		ntdisk_states(d, off, len, count);
		if (count['+'] != len)
			return -E_MEDIUM;   /* not rescued: what the drive would have said */
	}
	if (d->cow) {
		uint64_t bad;
		return cow_ov_read(d->cow, off, len, buf, &bad);
	}
	uint64_t bad;
	return cow_bdev_read(&d->dev.bdev, off, (uint32_t)len, buf, &bad);
}

int ntdisk_read(void *ctx, uint64_t off, uint32_t len, void *buf)
{
	struct ntdisk *d = ctx;
	uint32_t ls = d->lsize;
	if (off % ls == 0 && len % ls == 0)
		return read_aligned(d, off, len, buf);
	/* An unaligned read goes through a bounce buffer of whole sectors. */
	uint64_t a = off / ls * ls, e = (off + len + ls - 1) / ls * ls;
	uint8_t *tmp = malloc(e - a);
	if (!tmp)
		return -E_NOMEM;
	int rc = read_aligned(d, a, e - a, tmp);
	if (rc == 0)
		memcpy(buf, tmp + (off - a), len);
	free(tmp);
	return rc;
}

bool ntdisk_is_cow(const char *path)
{
	struct filedev f;
	if (filedev_open(&f, path, 0) < 0)
		return false;
	struct cow *c;
	char why[200];
	int rc = cow_open(&host_env, &f.bdev, NULL, &c, why, sizeof(why));
	if (rc == 0)
		cow_discard(c);
	filedev_close(&f);
	return rc == 0;
}

static int states_from_cow(struct ntdisk *d)
{
	const struct cow_map *m = cow_get_map(d->cow);
	size_t n = 0, cap = 64;
	struct mapfile_block *b = malloc(cap * sizeof(*b));
	if (!b)
		return -E_NOMEM;
	for (const struct cow_extent *x = cow_map_get(m, 0); x; x = cow_map_next(m, x)) {
		if (n == cap) {
			struct mapfile_block *nb = realloc(b, 2 * cap * sizeof(*b));
			if (!nb) {
				free(b);
				return -E_NOMEM;
			}
			b = nb;
			cap *= 2;
		}
		/* Sectors the overlay wrote are the cow's own data: readable like finished ones. */
		b[n++] = (struct mapfile_block){ x->start * d->lsize, x->count * d->lsize,
						 x->written ? '+' : (char)x->state };
	}
	d->states = b;
	d->nstates = n;
	return 0;
}

static int open_disk(struct ntdisk *d, const char *tool, const char *path, const char *src)
{
	memset(d, 0, sizeof(*d));
	if (filedev_open(&d->dev, path, 0) < 0) {
		fprintf(stderr, "%s: %s: cannot open: %s\n", tool, path, strerror(errno));
		return -E_IO;
	}
	char why[256] = "";
	int rc;
	if (src && filedev_open(&d->src, src, 0) < 0) {
		fprintf(stderr, "%s: %s: cannot open: %s\n", tool, src, strerror(errno));
		rc = -E_IO;
		goto fail;
	}
	d->has_src = src != NULL;
	rc = cow_open(&host_env, &d->dev.bdev, src ? &d->src.bdev : NULL, &d->cow, why, sizeof(why));
	if (rc == -E_FOREIGN && !src) {
		d->cow = NULL;   /* an image */
		d->size = d->dev.bdev.size;
		d->lsize = d->dev.bdev.lsize;
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s: cannot open the cow: %s%s%s\n", tool, path, err_str(rc), *why ? ": " : "", why);
		goto fail;
	}
	struct cow_geometry g;
	cow_get_geometry(d->cow, &g);
	d->size = g.source_size;
	d->lsize = g.src_lsize;
	if ((rc = states_from_cow(d)) < 0) {
		fprintf(stderr, "%s: %s\n", tool, err_str(rc));
		goto fail;
	}
	/* Without its source a cow holds only what was rescued: the rest reads as unreadable. */
	d->strict = !src;
	return 0;
fail:
	if (d->cow)
		cow_discard(d->cow);
	if (d->has_src)
		filedev_close(&d->src);
	filedev_close(&d->dev);
	d->cow = NULL;
	return rc;
}

struct load_ctx { struct ntdisk *d; size_t cap; uint64_t end; int rc; };

static int load_block(void *ctx, const struct mapfile_block *b)
{
	struct load_ctx *l = ctx;
	struct ntdisk *d = l->d;
	if (d->nstates == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct mapfile_block *nb = realloc(d->states, cap * sizeof(*nb));
		if (!nb)
			return -E_NOMEM;
		d->states = nb;
		l->cap = cap;
	}
	d->states[d->nstates++] = *b;
	l->end = b->pos + b->size;
	return 0;
}

/* The rescue states from a ddrescue mapfile instead (an image: reads of ranges it does not call
 * finished fail, as they would on the drive). */
static int load_mapfile(struct ntdisk *d, const char *tool, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "%s: %s: cannot open: %s\n", tool, path, strerror(errno));
		return -E_IO;
	}
	size_t cap = 1 << 16, len = 0;
	char *text = malloc(cap);
	size_t got;
	while (text && (got = fread(text + len, 1, cap - len, f)) > 0) {
		len += got;
		if (len == cap) {
			char *nt = realloc(text, cap *= 2);
			if (!nt) {
				free(text);
				text = NULL;
			}
			text = nt;
		}
	}
	fclose(f);
	if (!text)
		return -E_NOMEM;
	free(d->states);
	d->states = NULL;
	d->nstates = 0;
	struct load_ctx l = { d, 0, 0, 0 };
	char err[200];
	int rc = mapfile_read(text, len, MAPFILE_MAP, NULL, load_block, &l, err, sizeof(err));
	free(text);
	if (rc < 0) {
		fprintf(stderr, "%s: %s: %s\n", tool, path, rc == -E_SYNTAX ? err : err_str(rc));
		return rc;
	}
	/* What the mapfile does not reach was never tried. */
	if (l.end < d->size && load_block(&l, &(struct mapfile_block){ l.end, d->size - l.end, '?' }) < 0)
		return -E_NOMEM;
	d->strict = d->cow == NULL || !d->has_src;
	return 0;
}

int ntdisk_open(struct ntdisk *d, const char *tool, const char *path, const char *src, const char *mapfile)
{
	int rc = open_disk(d, tool, path, src);
	if (rc == 0 && mapfile && (rc = load_mapfile(d, tool, mapfile)) < 0)
		ntdisk_close(d);
	return rc;
}

void ntdisk_close(struct ntdisk *d)
{
	if (d->cow)
		cow_discard(d->cow);
	if (d->has_src)
		filedev_close(&d->src);
	filedev_close(&d->dev);
	free(d->states);
	memset(d, 0, sizeof(*d));
}

void ntdisk_states(const struct ntdisk *d, uint64_t off, uint64_t len, uint64_t count[256])
{
	if (!d->states) {
		count['+'] += len;
		return;
	}
	/* The first block ending after off, by binary search. */
	size_t lo = 0, hi = d->nstates;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (d->states[mid].pos + d->states[mid].size <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint64_t end = off + len;
	for (size_t i = lo; i < d->nstates && off < end; i++) {
		const struct mapfile_block *b = &d->states[i];
		uint64_t e = b->pos + b->size < end ? b->pos + b->size : end;
		if (e > off) {
			count[(uint8_t)b->status] += e - off;
			off = e;
		}
	}
	if (off < end)
		count['?'] += end - off;
}

void ntdisk_say(void *ctx, const char *msg)
{
	fprintf(stderr, "%s: warning: %s\n", (const char *)ctx, msg);
}

int ntdisk_volumes(struct ntdisk *d, const char *tool, struct part *parts, unsigned max, unsigned *n,
		   struct parttab *t)
{
	/* The table's complaints are warnings: what it refused is left out, the rest is used. */
	*n = 0;
	*t = (struct parttab){ .say = ntdisk_say, .say_ctx = (void *)tool };
	int rc = parttab_scan(ntdisk_read, d, d->size, d->lsize == 4096 ? 4096 : 512, parts, max, t);
	if (rc == -E_NOENT && d->lsize == 512)   /* a 4Kn disk copied to a file */
		rc = parttab_scan(ntdisk_read, d, d->size, 4096, parts, max, t);
	if (rc == -E_NOENT || rc == -E_CORRUPT) {
		*n = 0;
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: reading the partition table: %s\n", tool, err_str(rc));
		return rc;
	}
	unsigned k = 0;
	for (unsigned i = 0; i < t->n; i++)
		if (parts[i].ntfs_sig)
			parts[k++] = parts[i];
	*n = k;
	return 0;
}

int rangeset_add(struct rangeset *s, uint64_t off, uint64_t len)
{
	if (!len)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		struct mapfile_block *r = realloc(s->r, cap * sizeof(*r));
		if (!r)
			return -E_NOMEM;
		s->r = r;
		s->cap = cap;
	}
	s->r[s->n++] = (struct mapfile_block){ off, len, '+' };
	return 0;
}

static int by_pos(const void *a, const void *b)
{
	const struct mapfile_block *x = a, *y = b;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void rangeset_normalize(struct rangeset *s)
{
	if (!s->n)
		return;
	qsort(s->r, s->n, sizeof(*s->r), by_pos);
	size_t k = 0;
	for (size_t i = 1; i < s->n; i++) {
		struct mapfile_block *l = &s->r[k];
		if (s->r[i].pos <= l->pos + l->size) {
			uint64_t e = s->r[i].pos + s->r[i].size;
			if (e > l->pos + l->size)
				l->size = e - l->pos;
		} else {
			s->r[++k] = s->r[i];
		}
	}
	s->n = k + 1;
}

struct dom_iter { const struct rangeset *s; uint64_t size, pos; size_t i; };

static int dom_next(void *ctx, struct mapfile_block *b)
{
	struct dom_iter *it = ctx;
	/* Ranges wholly before pos (past the disk's end, clamped) are passed over. */
	while (it->i < it->s->n && it->s->r[it->i].pos + it->s->r[it->i].size <= it->pos)
		it->i++;
	if (it->pos >= it->size)
		return 0;
	if (it->i < it->s->n && it->s->r[it->i].pos <= it->pos) {
		const struct mapfile_block *r = &it->s->r[it->i++];
		uint64_t e = r->pos + r->size < it->size ? r->pos + r->size : it->size;
		*b = (struct mapfile_block){ it->pos, e - it->pos, '+' };
	} else {
		uint64_t e = it->i < it->s->n ? it->s->r[it->i].pos : it->size;
		if (e > it->size)
			e = it->size;
		*b = (struct mapfile_block){ it->pos, e - it->pos, '?' };
	}
	it->pos = b->pos + b->size;
	return 1;
}

static int emit_file(void *ctx, const char *text, size_t len)
{
	return fwrite(text, 1, len, ctx) == len ? 0 : -E_IO;
}

int rangeset_write_domain(const struct rangeset *s, uint64_t size, const char *cmdline, FILE *out)
{
	char now[32];
	time_t t = time(NULL);
	strftime(now, sizeof(now), "%Y-%m-%d %H:%M:%S", localtime(&t));
	struct mapfile_header h = { "cowboot " COWBOOT_VERSION, cmdline, now, now, "Finished", 0, '+', 1 };
	struct dom_iter it = { s, size, 0, 0 };
	if (!size)
		return 0;
	return mapfile_write(&h, dom_next, &it, emit_file, out);
}

void rangeset_free(struct rangeset *s)
{
	free(s->r);
	memset(s, 0, sizeof(*s));
}

int rangeset_add_domain(void *ctx, int group, uint64_t off, uint64_t len)
{
	(void)group;
	return rangeset_add(ctx, off, len);
}
