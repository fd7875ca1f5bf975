/* The commits of a real rescue on a big map: the rescue engine (rescue/rescue.c) on a drive with
 * a dead head (the spec syntax of tests/lib/deadhead.h, computed per read so that drives of a
 * terabyte fit), a fake clock, and a cow whose data area is not kept (its metadata is). Prints
 * how many commits there were, what they wrote, how many wrote more than 256 KiB, and how many
 * ended with no log after one with a log: the commits that wrote every changed page instead of
 * logging (docs/cow-format.md; a commit that wrote every changed page anyway looks the same).
 * Usage: bench_commits <spec> <ms a bad read costs> [wall seconds, 120]. Asserts nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cow/cow.h"
#include "lib/errors.h"
#include "rescue/rescue.h"
#include "tests/lib/deadhead.h"

#define GOOD_READ_US 60        /* as tests/lib/deadhead.c's drive */
#define SEEK_US 4000
#define BYTES_PER_US 150
#define BIG_COMMIT (256u << 10)

static uint64_t fake_now;
static uint64_t now_us(void) { return fake_now; }
static void *e_alloc(size_t n) { return malloc(n ? n : 1); }
static void e_free(void *p) { free(p); }
static void e_random(void *b, size_t n) { for (size_t i = 0; i < n; i++) ((uint8_t *)b)[i] = (uint8_t)rand(); }
static const struct cow_env env = { e_alloc, e_free, now_us, e_random };

/* ---- the drive: bad when a read touches a dead head's band or a listed bad range ---------- */

struct drive { struct cow_bdev bdev; struct dh_geom g; uint64_t last_end, bad_us, reads, bad_reads; };

static int range_bad(const struct dh_geom *g, uint64_t s, uint64_t e)
{
	for (uint32_t i = 0; i < g->nbad; i++)
		if (s < g->bad[i].start + g->bad[i].count && e > g->bad[i].start)
			return 1;
	for (uint32_t z = 0; z < g->nzones; z++) {
		uint64_t zs = g->zone[z].start, ze = zs + g->zone[z].count, b = g->zone[z].band;
		uint64_t a = s > zs ? s : zs, c = e < ze ? e : ze;
		for (uint64_t k = a < c ? (a - zs) / b : 1, kl = a < c ? (c - 1 - zs) / b : 0; k <= kl; k++)
			if (g->dead_mask >> (k % g->heads) & 1)
				return 1;
	}
	return 0;
}

static void drive_submit(void *ctx, struct cow_io *io)
{
	struct drive *d = ctx;
	uint64_t s = io->off / DH_SECTOR, n = io->len / DH_SECTOR;
	if (io->op != COW_IO_READ) {
		io->status = io->op == COW_IO_WRITE ? -E_RDONLY : 0;
		return;
	}
	d->reads++;
	fake_now += GOOD_READ_US + io->len / BYTES_PER_US + (s == d->last_end ? 0 : SEEK_US);
	d->last_end = s + n;
	io->status = 0;
	/* The data is not kept; only the regions the cow samples for the identity must read alike. */
	if (io->off < (2u << 20) || io->off + io->len > d->bdev.size - (2u << 20))
		memset(io->buf, 0, io->len);
	if (range_bad(&d->g, s, s + n)) {
		d->bad_reads++;
		fake_now += d->bad_us;
		io->bad_off = io->off;
		io->status = -E_MEDIUM;
	}
}

static int any_wait(void *ctx, struct cow_io *io)
{
	(void)ctx;
	return io->status;
}

/* ---- the cow: metadata kept in memory, the data area dropped; each commit tallied ---------- */

struct cowdev {
	struct cow_bdev bdev;
	uint8_t *meta;
	uint64_t meta_bytes;
	uint64_t since;            /* page bytes written since the last superblock */
	uint64_t commits, big, total, max, emptied, emptied_max;
	int had_log;
};

static void cow_submit(void *ctx, struct cow_io *io)
{
	struct cowdev *d = ctx;
	io->status = 0;
	if (io->op == COW_IO_READ) {
		uint64_t in = io->off < d->meta_bytes ? d->meta_bytes - io->off : 0;
		in = in < io->len ? in : io->len;
		if (in)
			memcpy(io->buf, d->meta + io->off, in);
		memset((uint8_t *)io->buf + in, 0, io->len - in);
		return;
	}
	if (io->op != COW_IO_WRITE || io->off >= d->meta_bytes)
		return;
	memcpy(d->meta + io->off, io->buf, io->len);
	if (io->off >= 8192) {
		d->since += io->len;
		return;
	}
	/* A superblock: the commit's end. Its log index slot is at byte 368 (0xffffffff: no log). */
	uint32_t log_slot;
	memcpy(&log_slot, (const uint8_t *)io->buf + 368, 4);
	int has_log = log_slot != 0xffffffffu;
	d->commits++;
	d->total += d->since;
	d->big += d->since > BIG_COMMIT;
	if (d->since > d->max)
		d->max = d->since;
	if (d->had_log && !has_log) {
		d->emptied++;
		if (d->since > d->emptied_max)
			d->emptied_max = d->since;
	}
	d->had_log = has_log;
	d->since = 0;
}

static double wall(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double deadline;
static int out_of_time(void *ctx)
{
	(void)ctx;
	return wall() > deadline;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench_commits <spec> <ms a bad read costs> [wall seconds]\n");
		return 2;
	}
	static struct drive d;
	static struct cowdev cd;
	char why[200];
	if (dh_parse(argv[1], &d.g, why, sizeof(why)) < 0) {
		fprintf(stderr, "bench_commits: %s\n", why);
		return 2;
	}
	d.bad_us = (uint64_t)atoll(argv[2]) * 1000;
	uint64_t size = d.g.sectors * DH_SECTOR;
	d.bdev = (struct cow_bdev){ .ctx = &d, .size = size, .lsize = DH_SECTOR, .psize = DH_SECTOR,
				    .submit = drive_submit, .wait = any_wait };
	snprintf(d.bdev.model, sizeof(d.bdev.model), "DEAD HEAD");
	snprintf(d.bdev.serial, sizeof(d.bdev.serial), "DH1");
	cd.meta_bytes = cow_metadata_bytes(size);
	cd.meta = calloc(1, cd.meta_bytes);
	cd.bdev = (struct cow_bdev){ .ctx = &cd, .size = cd.meta_bytes + size, .lsize = DH_SECTOR, .psize = 4096,
				     .submit = cow_submit, .wait = any_wait };
	struct cow *c;
	if (!cd.meta || cow_format(&env, &cd.bdev, &d.bdev, 4096, why, sizeof(why)) < 0 ||
	    cow_open(&env, &cd.bdev, &d.bdev, &c, why, sizeof(why)) < 0) {
		fprintf(stderr, "bench_commits: cow: %s\n", why);
		return 1;
	}
	cd.commits = cd.big = cd.total = cd.max = cd.emptied = cd.emptied_max = 0;
	struct rescue r;
	struct rescue_opts o;
	rescue_opts_default(&o);
	double t0 = wall();
	deadline = t0 + (argc > 3 ? atof(argv[3]) : 120);
	struct rescue_hooks h = { .should_stop = out_of_time };
	uint64_t start = fake_now;
	int rc = rescue_init(&r, c, &env, &o, &h);
	if (rc == 0)
		rc = rescue_run(&r);
	const struct cow_map *m = cow_get_map(c);
	printf("%s, bad reads %s ms: %s after %.0f s of the drive's time (%.1f s here), %llu reads (%llu bad); "
	       "map %llu extents in %llu pages\n", argv[1], argv[2],
	       rc == 0 ? "done" : rc == -E_STOPPED ? "stopped" : err_str(rc), (double)(fake_now - start) / 1e6,
	       wall() - t0, (unsigned long long)d.reads, (unsigned long long)d.bad_reads, (unsigned long long)m->n,
	       (unsigned long long)m->nchunks);
	printf("  %llu commits, %.1f KiB each on average, at most %.1f KiB; %llu wrote more than 256 KiB; "
	       "%llu ended with no log after one with a log (at most %.1f KiB)\n",
	       (unsigned long long)cd.commits, cd.commits ? (double)cd.total / cd.commits / 1024 : 0.0,
	       (double)cd.max / 1024, (unsigned long long)cd.big, (unsigned long long)cd.emptied,
	       (double)cd.emptied_max / 1024);
	rescue_free(&r);
	cow_discard(c);
	free(cd.meta);
	return 0;
}
