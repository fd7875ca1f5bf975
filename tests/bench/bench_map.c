/* Map and commit costs on a 16 TiB source: lookups, updates and memory of the paged map
 * (cow/map.c) at 1 M and 10 M scattered extents, beside a flat sorted array (the map's first
 * design) measured in the same run up to 1 M; what a commit writes and costs after 100 changes
 * at 10 K, 1 M and 10 M extents (version 3, with its log; version 2 without) beside the whole-checkpoint commit of version 1
 * (up to its 1 M limit). `bench_map genmap N` prints a ddrescue mapfile of N areas of an 8 TiB
 * source for bench_map.sh's import figures. Prints figures, asserts nothing about time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cow/cow.h"
#include "lib/errors.h"
#include "tests/lib/rng.h"

#define SECTORS (16ull << 40 >> 9)      /* 16 TiB of 512-byte sectors */
#define LS 512u

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { return xorshift64(&rng); }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *e_alloc(size_t n) { return malloc(n ? n : 1); }
static void e_free(void *p) { free(p); }
static uint64_t e_now(void) { return (uint64_t)(now_s() * 1e6); }
static void e_random(void *b, size_t n) { for (size_t i = 0; i < n; i++) ((uint8_t *)b)[i] = (uint8_t)rnd(); }
static const struct cow_env env = { e_alloc, e_free, e_now, e_random };

/* ---- the baseline: one sorted array, split and merged in place ---------------------------- */

struct flat { struct cow_extent *e; uint64_t n, cap; };

static uint64_t flat_lookup(const struct flat *f, uint64_t s)
{
	uint64_t lo = 0, hi = f->n - 1;
	while (lo < hi) {
		uint64_t mid = (lo + hi + 1) / 2;
		if (f->e[mid].start <= s)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static uint64_t flat_split(struct flat *f, uint64_t s)
{
	if (s >= SECTORS)
		return f->n;
	uint64_t i = flat_lookup(f, s);
	struct cow_extent *x = &f->e[i];
	if (x->start == s)
		return i;
	if (f->n + 1 > f->cap) {
		f->cap *= 2;
		f->e = realloc(f->e, f->cap * sizeof(*f->e));
		x = &f->e[i];
	}
	memmove(&f->e[i + 2], &f->e[i + 1], (f->n - i - 1) * sizeof(*x));
	f->e[i + 1] = (struct cow_extent){ s, x->start + x->count - s, x->state, x->written };
	x->count = s - x->start;
	f->n++;
	return i + 1;
}

static void flat_set(struct flat *f, uint64_t start, uint64_t count, uint8_t state)
{
	uint64_t a = flat_split(f, start), b = flat_split(f, start + count);
	for (uint64_t i = a; i < b; i++)
		f->e[i].state = state;
	uint64_t lo = a ? a - 1 : 0, hi = b < f->n ? b : f->n - 1, out = lo;
	for (uint64_t i = lo + 1; i <= hi; i++) {
		if (f->e[out].state == f->e[i].state && f->e[out].written == f->e[i].written)
			f->e[out].count += f->e[i].count;
		else
			f->e[++out] = f->e[i];
	}
	if (hi > out) {
		memmove(&f->e[out + 1], &f->e[hi + 1], (f->n - hi - 1) * sizeof(*f->e));
		f->n -= hi - out;
	}
}

/* ---- map costs ---------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Steady updates: a new scattered extent, then a random one of the others back to non-tried
 * (merging with the gaps around it), so the map keeps its size. */
static void map_bench(uint64_t want)
{
	uint64_t npts = want / 2;
	uint64_t *pts = malloc(npts * sizeof(*pts));
	for (uint64_t i = 0; i < npts; i++)
		pts[i] = rnd() % (SECTORS - 16);
	struct cow_map m;
	cow_map_init(&m, &env, SECTORS, 16u << 20);
	double t0 = now_s();
	for (uint64_t i = 0; i < npts; i++)
		cow_map_set(&m, pts[i], 1 + pts[i] % 8, "*/-+"[pts[i] % 4], -1);
	double build = now_s() - t0;
	/* The baseline gets the same extents, inserted in order (its cheapest case). */
	qsort(pts, npts, sizeof(*pts), cmp_u64);
	struct flat f = { malloc(64 * sizeof(struct cow_extent)), 1, 64 };
	f.e[0] = (struct cow_extent){ 0, SECTORS, '?', 0 };
	bool flat = want <= 1000000;   /* 10 M extents of it would take 240 MiB more */
	for (uint64_t i = 0; flat && i < npts; i++)
		flat_set(&f, pts[i], 1 + pts[i] % 8, "*/-+"[pts[i] % 4]);
	free(pts);

	uint64_t nlook = 2000000, sink = 0, n_before = m.n;
	t0 = now_s();
	for (uint64_t i = 0; i < nlook; i++)
		sink += cow_map_at(&m, rnd() % SECTORS)->count;
	double look = (now_s() - t0) / (double)nlook;
	t0 = now_s();
	for (uint64_t i = 0; flat && i < nlook; i++)
		sink += f.e[flat_lookup(&f, rnd() % SECTORS)].count;
	double flook = (now_s() - t0) / (double)nlook;

	uint64_t nupd = 400000, nflat = !flat ? 0 : want >= 1000000 ? 400 : want >= 100000 ? 4000 : 100000;
	t0 = now_s();
	for (uint64_t i = 0; i < nupd; i++) {
		uint64_t s = rnd() % (SECTORS - 16);
		cow_map_set(&m, s, 1 + s % 8, '+', -1);
		const struct cow_extent *x = cow_map_get(&m, rnd() % m.n);
		if (x->state == '?')
			x = cow_map_next(&m, x) ? cow_map_next(&m, x) : cow_map_get(&m, m.n - 2);
		cow_map_set(&m, x->start, x->count, '?', -1);
	}
	double upd = (now_s() - t0) / (double)(2 * nupd);
	t0 = now_s();
	for (uint64_t i = 0; i < nflat; i++) {
		uint64_t s = rnd() % (SECTORS - 16);
		flat_set(&f, s, 1 + s % 8, '+');
		uint64_t k = rnd() % f.n;
		if (f.e[k].state == '?')
			k = k + 1 < f.n ? k + 1 : f.n - 2;
		flat_set(&f, f.e[k].start, f.e[k].count, '?');
	}
	double fupd = nflat ? (now_s() - t0) / (double)(2 * nflat) : 0;

	/* A walk in sector order, as a checkpoint, a mapfile or the totals make one. */
	t0 = now_s();
	uint64_t walked = 0;
	for (const struct cow_extent *x = cow_map_get(&m, 0); x; x = cow_map_next(&m, x))
		walked += x->count != 0;
	double walk = (now_s() - t0) / (double)walked;
	double mib = (double)cow_map_bytes(&m) / 1048576.0, fmib = (double)f.cap * sizeof(*f.e) / 1048576.0;
	if (flat)
		printf("%8llu extents (%llu after): lookup %5.0f ns/op (flat %5.0f, ratio %.2f)  update %6.0f ns/op (flat %9.0f, ratio %.4f)\n",
		       (unsigned long long)n_before, (unsigned long long)m.n, look * 1e9, flook * 1e9, look / flook, upd * 1e9,
		       fupd * 1e9, upd / fupd);
	else
		printf("%8llu extents (%llu after): lookup %5.0f ns/op  update %6.0f ns/op (no flat array at this size)\n",
		       (unsigned long long)n_before, (unsigned long long)m.n, look * 1e9, upd * 1e9);
	printf("                  memory %.1f MiB (%.1f bytes/extent; flat array %.1f MiB); built in %.2f s (%.0f ns per insert); "
	       "walk %.1f ns/extent\n",
	       mib, (double)cow_map_bytes(&m) / (double)m.n, fmib, build, build / (double)npts * 1e9, walk * 1e9);
	if (sink == 42)
		printf(" ");
	cow_map_free(&m);
	free(f.e);
}

/* ---- commit costs ------------------------------------------------------------------------- */

/* The source reads as zeros; the cow keeps its metadata in memory and drops data writes, so
 * the figures are the engine's own CPU and memory cost, not a disk's. */
struct memdev { uint8_t *meta; uint64_t meta_bytes, written; };

/* Both answer at once, inside submit. */
static void src_submit(void *ctx, struct cow_io *io)
{
	(void)ctx;
	if (io->op == COW_IO_READ)
		memset(io->buf, 0, io->len);
	io->status = io->op == COW_IO_WRITE ? -E_IO : 0;
}
static void cow_submit(void *ctx, struct cow_io *io)
{
	struct memdev *d = ctx;
	uint64_t off = io->off, len = io->len;
	uint64_t n = off < d->meta_bytes ? (len > d->meta_bytes - off ? d->meta_bytes - off : len) : 0;
	if (io->op == COW_IO_READ) {
		memcpy(io->buf, d->meta + (n ? off : 0), n);
		memset((uint8_t *)io->buf + n, 0, len - n);
	} else if (io->op == COW_IO_WRITE) {
		memcpy(d->meta + (n ? off : 0), io->buf, n);
		d->written += len;
	}
	io->status = 0;
}
static int dev_wait(void *ctx, struct cow_io *io)
{
	(void)ctx;
	return io->status;
}

/* A cow of `want` scattered extents in format `version`; then 100 changes one after the other
 * (a rescue's progress) and 100 scattered ones, each followed by a commit: bytes and time. */
static void commit_bench(uint64_t want, uint32_t version)
{
	static struct memdev md;
	md.meta_bytes = 1ull << 30;
	md.meta = calloc(1, md.meta_bytes);   /* only what is written is ever touched */
	struct cow_bdev src = { NULL, SECTORS * LS, LS, 4096, "bench", "1", { 0 }, 0, src_submit, dev_wait };
	struct cow_bdev cd = { &md, SECTORS * LS + md.meta_bytes, 512, 4096, "", "", { 0 }, 0, cow_submit, dev_wait };
	char why[200];
	struct cow *c;
	if (cow_format_version(&env, &cd, &src, 4096, version, why, sizeof(why)) < 0 ||
	    cow_open(&env, &cd, &src, &c, why, sizeof(why)) < 0) {
		printf("commit bench: %s\n", why);
		exit(1);
	}
	while (cow_get_map(c)->n + 2 <= want)
		if (cow_set_state(c, (rnd() % (SECTORS - 8)) * LS, 4096, '-') < 0)
			break;
	cow_sync(c);
	cow_sync(c);   /* (version 1: past the checkpoint every first commit writes) */
	uint64_t n0 = cow_get_map(c)->n;
	double t[2];
	uint64_t bytes[2];
	for (int kind = 0; kind < 2; kind++) {
		uint64_t base = rnd() % (SECTORS / 2);
		double sum = 0;
		uint64_t b = 0;
		int rounds = 20;
		for (int r = 0; r < rounds; r++) {
			for (int i = 0; i < 100; i++) {
				uint64_t s = kind == 0 ? base + (uint64_t)(r * 100 + i) * 16 : rnd() % (SECTORS - 8);
				cow_set_state(c, s * LS, LS, i % 2 ? '/' : '*');
			}
			uint64_t w0 = md.written;
			double t0 = now_s();
			cow_sync(c);
			sum += now_s() - t0;
			b += md.written - w0;
		}
		t[kind] = sum / rounds;
		bytes[kind] = b / (uint64_t)rounds;
	}
	/* Version 3 over a long run: 1000 commits of 100 scattered changes each (the log grows, the
	 * sweep goes round); the average and the largest commit; then an open, which replays the log. */
	double avg_long = 0, open_s = 0;
	uint64_t max_long = 0, long_rounds = 1000;
	if (version == 3) {
		uint64_t b = 0;
		for (uint64_t r = 0; r < long_rounds; r++) {
			for (int i = 0; i < 100; i++)
				cow_set_state(c, (rnd() % (SECTORS - 8)) * LS, LS, i % 2 ? '/' : '*');
			uint64_t w0 = md.written;
			cow_sync(c);
			b += md.written - w0;
			if (md.written - w0 > max_long)
				max_long = md.written - w0;
		}
		avg_long = (double)b / (double)long_rounds;
		cow_close(c);
		double t0 = now_s();
		if (cow_open(&env, &cd, &src, &c, why, sizeof(why)) < 0) {
			printf("commit bench: reopen: %s\n", why);
			exit(1);
		}
		open_s = now_s() - t0;
	}
	/* Version 1's checkpoint commit: what its first commit after an open, or a full journal, writes. */
	double ckpt = 0;
	uint64_t ckb = 0;
	if (version == 1) {
		cow_close(c);
		cow_open(&env, &cd, &src, &c, why, sizeof(why));
		uint64_t w0 = md.written;
		double t0 = now_s();
		cow_sync(c);
		ckpt = now_s() - t0;
		ckb = md.written - w0;
	}
	printf("%8llu extents, version %u: commit after 100 changes in a row %8.1f KiB %8.2f ms; after 100 scattered %8.1f KiB %8.2f ms",
	       (unsigned long long)n0, version, (double)bytes[0] / 1024, t[0] * 1e3, (double)bytes[1] / 1024, t[1] * 1e3);
	if (version == 1)
		printf("; checkpoint commit %.1f KiB %.2f ms", (double)ckb / 1024, ckpt * 1e3);
	if (version == 3)
		printf("\n%38s then %llu more: %.1f KiB on average, %.1f KiB at most; an open then takes %.0f ms",
		       "", (unsigned long long)long_rounds, avg_long / 1024, (double)max_long / 1024, open_s * 1e3);
	printf("\n");
	cow_close(c);
	free(md.meta);
}

/* A ddrescue mapfile of n areas over an 8 TiB source, no two neighbours alike: a dead head's
 * bad bands every few MiB. */
static void genmap(uint64_t n)
{
	uint64_t size = 8ull << 40, pos = 0, step = size / n / 512;
	static const char st[] = "?-/-*-";
	printf("# Mapfile. Created by GNU ddrescue version 1.27\n# current_pos  current_status  current_pass\n"
	       "0x00000000     ?               1\n#      pos        size  status\n");
	for (uint64_t i = 0; i < n; i++) {
		uint64_t len = i + 1 == n ? size - pos : (1 + rnd() % (2 * step - 1)) * 512;
		if (i + 1 < n && pos + len > size - (n - i - 1) * 512)
			len = 512;
		printf("0x%08llX  0x%08llX  %c\n", (unsigned long long)pos, (unsigned long long)len, st[i % 6]);
		pos += len;
	}
}

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "genmap")) {
		genmap(strtoull(argv[2], NULL, 0));
		return 0;
	}
	uint64_t sizes[] = { 1000000, 10000000 };
	int n = argc > 1 ? atoi(argv[1]) : 2;
	if (argc > 1 && !strcmp(argv[1], "commits")) {   /* the commit figures alone, at every size */
		n = 2;
		sizes[0] = sizes[1] = 0;
	}
	printf("map on a 16 TiB source (ns per operation; flat = one sorted array, the map's first design):\n");
	for (int i = 0; i < n && i < 2 && sizes[i]; i++)
		map_bench(sizes[i]);
	printf("commit (cow_sync) on in-memory devices: bytes written and time, 20 rounds each:\n");
	uint64_t csizes[] = { 10000, 1000000 - 20000, 10000000 };
	for (int i = 0; i < 3 && i < n + 1; i++) {
		commit_bench(csizes[i], 3);
		commit_bench(csizes[i], 2);
		if (csizes[i] < 1000000)
			commit_bench(csizes[i], 1);
	}
	printf("  (version 1 holds at most 1 M extents; its checkpoint of 10 M would be %.0f MiB)\n",
	       (64.0 + 24.0 * 1e7) / 1048576.0);
	return 0;
}
