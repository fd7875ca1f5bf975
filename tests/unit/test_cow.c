/* The cow engine: the map against a per-sector model, format and identity checks, every overlay
 * path, persistence, corruption, and a power cut after every single device write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../lib/fakedev.h"
#include "../../cow/cow.h"
#include "../../lib/errors.h"

#define SRC_SIZE (2u << 20)
#define COW_SIZE (6u << 20)
#define LS 512u
#define NSEC (SRC_SIZE / LS)

static uint32_t rng = 12345;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void fill_source(struct fakedev *s)
{
	for (uint64_t i = 0; i < SRC_SIZE; i++)
		s->view[i] = s->durable[i] = (uint8_t)(i * 131 + (i >> 9) * 7);
}

/* A patterned source and an empty cow device for it. */
static void devs_init(struct fakedev *src, struct fakedev *cow)
{
	fakedev_init(src, SRC_SIZE, LS, "DISK", "SER1");
	fill_source(src);
	fakedev_init(cow, COW_SIZE, LS, "COW", "C");
}

static void test_map(void)
{
	struct cow_map m;
	static uint8_t model[4096], wmodel[4096];
	cow_map_init(&m, &test_env, 4096, 100000);
	memset(model, '?', sizeof(model));
	memset(wmodel, 0, sizeof(wmodel));
	int ok = 1;
	const char states[] = "?*/-+";
	for (int op = 0; op < 3000 && ok; op++) {
		uint64_t a = rnd() % 4096, n = 1 + rnd() % (op % 3 ? 8 : 600);
		if (a + n > 4096)
			n = 4096 - a;
		uint8_t st = (rnd() % 4) ? (uint8_t)states[rnd() % 5] : 0;
		int w = (int)(rnd() % 3) - 1;
		cow_map_set(&m, a, n, st, w);
		for (uint64_t i = a; i < a + n; i++) {
			if (st)
				model[i] = st;
			if (w >= 0)
				wmodel[i] = (uint8_t)w;
		}
		for (uint64_t i = 0; i < 4096 && ok; i++) {
			const struct cow_extent *e = cow_map_at(&m, i);
			ok = e->start <= i && i < e->start + e->count && e->state == model[i] && e->written == wmodel[i];
		}
		const struct cow_extent *p = cow_map_get(&m, 0), *x;
		for (; ok && (x = cow_map_next(&m, p)); p = x)
			ok = x->start == p->start + p->count && !(x->state == p->state && x->written == p->written);
	}
	CHECK("map matches a per-sector model over 3000 random updates, always merged", ok);
	struct cow_totals t;
	cow_map_totals(&m, &t);
	uint64_t sum = 0;
	for (int k = 0; k < 5; k++)
		sum += t.sectors[k];
	CHECK("map totals cover the source", sum == 4096);
	cow_map_free(&m);
	cow_map_init(&m, &test_env, 1000, 4);
	cow_map_set(&m, 10, 1, '+', -1);
	CHECK("map refuses to grow past its maximum", cow_map_set(&m, 20, 1, '-', -1) == -E_NOSPC && m.n == 3);
	cow_map_free(&m);
}

static int open_cow(struct fakedev *cow, struct fakedev *src, struct cow **c, char *why)
{
	return cow_open(&test_env, &cow->bdev, src ? &src->bdev : NULL, c, why, 200);
}

static void test_format_identity(void)
{
	struct fakedev src, cow, small;
	char why[200];
	fakedev_init(&src, SRC_SIZE, LS, "DISK", "SER1");
	fill_source(&src);
	src.bdev.wwn_len = 8;
	src.bdev.wwn[0] = 0x50;
	fakedev_init(&small, SRC_SIZE, LS, "SMALL", "S");
	int rc = cow_format(&test_env, &small.bdev, &src.bdev, 4096, why, sizeof(why));
	CHECK("format refuses a cow smaller than source + metadata", rc == -E_TOOSMALL && strstr(why, "needs"));
	fakedev_init(&cow, COW_SIZE, LS, "COW", "C");
	CHECK("format refuses a unit that is not a power of two", cow_format(&test_env, &cow.bdev, &src.bdev, 3000, why, 200) == -E_INVAL);
	struct cow *c;
	CHECK("an unformatted device is foreign", open_cow(&cow, &src, &c, why) == -E_FOREIGN);
	CHECK("format succeeds", cow_format(&test_env, &cow.bdev, &src.bdev, 4096, why, 200) == 0);
	rc = open_cow(&cow, &src, &c, why);
	CHECK("open with the right source", rc == 0);
	if (rc == 0)
		cow_close(c);

	struct { const char *name, *field; } cases[] = {
		{ "serial", "serial" }, { "model", "model" }, { "size", "size" }, { "content", "first MiB" },
		{ "sector", "sector size" }, { "wwn", "WWN" },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fakedev other;
		uint64_t size = !strcmp(cases[i].name, "size") ? SRC_SIZE + 4096 : SRC_SIZE;
		fakedev_init(&other, size, LS, !strcmp(cases[i].name, "model") ? "OTHER" : "DISK",
			     !strcmp(cases[i].name, "serial") ? "SER2" : "SER1");
		memcpy(other.durable, src.durable, SRC_SIZE);
		memcpy(other.view, src.view, SRC_SIZE);
		if (!strcmp(cases[i].name, "content"))
			other.view[100] ^= 1;
		if (!strcmp(cases[i].name, "sector"))
			other.bdev.psize = 4096;
		if (!strcmp(cases[i].name, "wwn")) {
			other.bdev.wwn_len = 8;
			other.bdev.wwn[0] = 0x51;
		}
		why[0] = '\0';
		rc = open_cow(&cow, &other, &c, why);
		char name[96];
		snprintf(name, sizeof(name), "open refuses a source whose %s differs, naming it", cases[i].name);
		CHECK(name, rc == -E_IDENTITY && strstr(why, cases[i].field));
		if (rc == 0)
			cow_close(c);
		fakedev_free(&other);
	}
	/* An image file of the disk knows no model, serial or WWN: size and contents decide. */
	struct fakedev image;
	fakedev_init(&image, SRC_SIZE, LS, "", "");
	memcpy(image.view, src.view, SRC_SIZE);
	rc = open_cow(&cow, &image, &c, why);
	CHECK("an image file of the source (no model or serial) is accepted", rc == 0);
	if (rc == 0)
		cow_close(c);
	image.view[SRC_SIZE - 10] ^= 1;
	CHECK("an image file with other contents is refused", open_cow(&cow, &image, &c, why) == -E_IDENTITY && strstr(why, "last MiB"));
	fakedev_free(&image);
	/* An unreadable sampled region is not compared (a failing disk may lose its first MiB). */
	src.bad_from = 4096;
	src.bad_to = 8192;
	rc = open_cow(&cow, &src, &c, why);
	CHECK("a source whose first MiB became unreadable still opens", rc == 0);
	if (rc == 0)
		cow_close(c);
	fakedev_free(&small);
	fakedev_free(&cow);
	fakedev_free(&src);
}

static void test_overlay(void)
{
	struct fakedev src, cow, cow2;
	char why[200];
	devs_init(&src, &cow);
	fakedev_init(&cow2, COW_SIZE, LS, "COW2", "C2");
	cow_format(&test_env, &cow.bdev, &src.bdev, 4096, why, 200);
	cow_format(&test_env, &cow2.bdev, &src.bdev, 4096, why, 200);
	struct cow *c, *c2;
	open_cow(&cow, &src, &c, why);
	open_cow(&cow2, &src, &c2, why);
	static uint8_t buf[SRC_SIZE], want[SRC_SIZE], w[64 * 1024];
	uint64_t bad;
	CHECK("unaligned overlay reads are refused", cow_ov_read(c, 100, 512, buf, &bad) == -E_ALIGN);
	CHECK("reads past the source are refused", cow_ov_read(c, SRC_SIZE - 512, 1024, buf, &bad) == -E_RANGE);
	CHECK("an empty cow reads as the source", cow_ov_read(c, 0, SRC_SIZE, buf, &bad) == 0 && !memcmp(buf, src.view, SRC_SIZE));
	memcpy(want, src.view, SRC_SIZE);
	/* Writes that start and end inside units, span units, and cross present/absent edges. */
	struct { uint64_t off, len; } wr[] = { { 512, 1024 }, { 4096 * 3 - 512, 4096 + 1024 }, { 0, 512 },
					      { 65536 - 1536, 3072 }, { SRC_SIZE - 512, 512 } };
	int ok = 1;
	for (unsigned i = 0; i < sizeof(wr) / sizeof(wr[0]); i++) {
		for (uint64_t k = 0; k < wr[i].len; k++)
			w[k] = (uint8_t)rnd();
		ok &= cow_ov_write(c, wr[i].off, wr[i].len, w) == 0;
		memcpy(want + wr[i].off, w, wr[i].len);
	}
	CHECK("overlay writes succeed", ok);
	CHECK("reads see the writes and the source around them", cow_ov_read(c, 0, SRC_SIZE, buf, &bad) == 0 && !memcmp(buf, want, SRC_SIZE));
	CHECK("a second cow of the same source is independent", cow_ov_read(c2, 0, SRC_SIZE, buf, &bad) == 0 && !memcmp(buf, src.view, SRC_SIZE));
	/* Copy-on-read never overwrites what the overlay wrote. */
	CHECK("rescue reads of a range with written sectors", cow_rescue_read(c, 0, 65536, buf, &bad) == 0);
	CHECK("the rescue kept the overlay's data", cow_ov_read(c, 0, SRC_SIZE, buf, &bad) == 0 && !memcmp(buf, want, SRC_SIZE));
	const struct cow_map *m = cow_get_map(c);
	CHECK("rescued range is finished", cow_map_at(m, 100)->state == '+');
	/* Writes over rescued sectors. */
	for (uint64_t k = 0; k < 4096; k++)
		w[k] = (uint8_t)rnd();
	CHECK("overwriting a rescued range", cow_ov_write(c, 32768, 4096, w) == 0);
	memcpy(want + 32768, w, 4096);
	src.bad_from = 1 << 20;
	src.bad_to = (1 << 20) + 512;
	CHECK("a rescue read of a bad sector fails naming it", cow_rescue_read(c, 1 << 20, 4096, buf, &bad) == -E_MEDIUM && bad == 1 << 20);
	CHECK("a failed rescue read records nothing", cow_map_at(cow_get_map(c), (1 << 20) / LS)->state == '?');
	CHECK("states can be set", cow_set_state(c, 1 << 20, 512, '-') == 0 && cow_set_state(c, 0, 512, '+') == -E_INVAL);
	CHECK("close commits", cow_close(c) == 0);
	src.bad_to = 0;
	CHECK("reopen", open_cow(&cow, &src, &c, why) == 0);
	CHECK("everything persisted", cow_ov_read(c, 0, SRC_SIZE, buf, &bad) == 0 && !memcmp(buf, want, SRC_SIZE));
	m = cow_get_map(c);
	CHECK("the map persisted", cow_map_at(m, (1 << 20) / LS)->state == '-' && cow_map_at(m, 100)->state == '+');
	/* Many commits: the journal fills and checkpoints take over. */
	ok = 1;
	for (int i = 0; i < 3000 && ok; i++) {
		uint64_t s = rnd() % 300;   /* stays well inside the map's 1024-extent maximum */
		ok = cow_set_state(c, s * LS, LS, "*/-?"[rnd() % 4]) == 0 && (i % 3 || cow_sync(c) == 0);
	}
	static struct cow_extent saved[200000];
	uint64_t nsaved = 0;
	for (const struct cow_extent *x = cow_get_map(c)->n <= 200000 ? cow_map_get(cow_get_map(c), 0) : NULL; x;
	     x = cow_map_next(cow_get_map(c), x))
		saved[nsaved++] = *x;
	CHECK("3000 updates and 1000 commits (journal wraps into checkpoints)", ok && cow_close(c) == 0);
	CHECK("reopen after checkpoints", open_cow(&cow, &src, &c, why) == 0);
	m = cow_get_map(c);
	ok = m->n == nsaved;
	for (uint64_t i = 0; ok && i < m->n; i++) {
		const struct cow_extent *x = cow_map_get(m, i);
		ok = x->start == saved[i].start && x->count == saved[i].count &&
		     x->state == saved[i].state && x->written == saved[i].written;
	}
	CHECK("the map after checkpoints is the one committed", ok);
	cow_close(c);
	cow_close(c2);

	/* Corruption: each superblock, then both, then the checkpoint. */
	uint8_t keep[4096];
	memcpy(keep, cow.durable, 4096);
	cow.durable[40] ^= 0xff;
	memcpy(cow.view, cow.durable, 8192);
	CHECK("a corrupt superblock A falls back to B", open_cow(&cow, &src, &c, why) == 0);
	if (c)
		cow_close(c);
	memcpy(cow.durable, cow.view, COW_SIZE);
	cow.durable[4096 + 40] ^= 0xff;
	cow.durable[40] ^= 0xff;
	memcpy(cow.view, cow.durable, COW_SIZE);
	int rc = open_cow(&cow, &src, &c, why);
	CHECK("two corrupt superblocks are refused precisely", rc == -E_CORRUPT && strstr(why, "no valid superblock"));
	memcpy(cow.durable, keep, 4096);
	cow.durable[4096 + 40] ^= 0xff;
	memcpy(cow.view, cow.durable, COW_SIZE);
	fakedev_free(&cow2);
	fakedev_free(&cow);
	fakedev_free(&src);
}

/* Power cut after every device write of a workload; each time: reopen, check invariants. */
#define CSRC (256u * 1024)
static uint8_t versions[CSRC / LS][16][LS];
static int nversions[CSRC / LS];
static int recording;   /* the dry run records every version written to each sector */

static void workload(struct cow *c, struct fakedev *src, uint32_t seed)
{
	uint32_t save = rng;
	rng = seed;
	static uint8_t buf[CSRC], w[16384];
	uint64_t bad;
	for (int op = 0; op < 80; op++) {
		uint64_t s = rnd() % (CSRC / LS), n = 1 + rnd() % 16;
		if (s + n > CSRC / LS)
			n = CSRC / LS - s;
		switch (rnd() % 4) {
		case 0:
		case 1:
			if (cow_rescue_read(c, s * LS, n * LS, buf, &bad) < 0)
				goto out;
			break;
		case 2:
			for (uint64_t k = 0; k < n * LS; k++)
				w[k] = (uint8_t)rnd();
			if (recording)
				for (uint64_t k = 0; k < n; k++) {
					int v = nversions[s + k]++ % 16;
					memcpy(versions[s + k][v], w + k * LS, LS);
				}
			if (cow_ov_write(c, s * LS, n * LS, w) < 0)
				goto out;
			break;
		case 3:
			if (cow_sync(c) < 0)
				goto out;
			break;
		}
	}
	cow_sync(c);
out:
	(void)src;
	rng = save;
}

static void test_power_cuts(void)
{
	struct fakedev src, cow;
	char why[200];
	fakedev_init(&src, CSRC, LS, "DISK", "S");
	for (uint64_t i = 0; i < CSRC; i++)
		src.view[i] = src.durable[i] = (uint8_t)(i * 13 + (i >> 9));
	fakedev_init(&cow, 4u << 20, LS, "COW", "C");
	cow_format(&test_env, &cow.bdev, &src.bdev, 4096, why, 200);
	uint8_t *formatted = fakedev_durable_copy(&cow, cow.bdev.size);
	/* A dry run records every version written to each sector and counts device writes. */
	struct cow *c;
	open_cow(&cow, &src, &c, why);
	cow.writes = 0;
	cow.cut_after = (uint64_t)-1;
	recording = 1;
	workload(c, &src, 777);
	recording = 0;
	uint64_t total = cow.writes;
	cow_close(c);
	int cuts = 0, bad_open = 0, bad_finished = 0, bad_written = 0;
	static uint8_t buf[CSRC];
	for (uint64_t k = 1; k <= total; k++) {
		fakedev_restore(&cow, formatted);
		if (open_cow(&cow, &src, &c, why) < 0) {
			bad_open++;
			continue;
		}
		cow.writes = 0;
		cow.cut_after = k;
		workload(c, &src, 777);
		/* Abandon the handle as the power did (its memory only). */
		cow.dead = 1;
		cow_close(c);
		fakedev_power_cut(&cow, (uint32_t)k);
		cuts++;
		if (open_cow(&cow, &src, &c, why) < 0) {
			bad_open++;
			continue;
		}
		const struct cow_map *m = cow_get_map(c);
		uint64_t bad;
		cow_ov_read(c, 0, CSRC, buf, &bad);
		for (uint64_t s = 0; s < CSRC / LS; s++) {
			const struct cow_extent *e = cow_map_at(m, s);
			const uint8_t *got = buf + s * LS;
			if (e->state == '+' && !e->written && memcmp(got, src.view + s * LS, LS))
				bad_finished++;
			if (e->written) {
				int found = 0;
				for (int v = 0; v < nversions[s] && v < 16; v++)
					found |= !memcmp(got, versions[s][v], LS);
				found |= !memcmp(got, src.view + s * LS, LS) && e->state == '+';
				bad_written += !found;
			}
			if (!e->written && e->state != '+' && memcmp(got, src.view + s * LS, LS))
				bad_finished++;
		}
		cow_close(c);
	}
	printf("power cuts: %d cut points over %llu device writes\n", cuts, (unsigned long long)total);
	CHECK("the cow opens after every power cut", bad_open == 0 && cuts == (int)total && total > 100);
	CHECK("no finished or absent sector ever differs from the source after a cut", bad_finished == 0);
	CHECK("written sectors always read as a version that was written", bad_written == 0);
	CHECK("every request submitted was waited for, through every cut", cow.abandoned == 0 && src.abandoned == 0);
	free(formatted);
	fakedev_free(&cow);
	fakedev_free(&src);
}

/* Counters: a re-read or a re-marked bad range counts once; units present from the map. */
static void test_counters(void)
{
	struct fakedev src, cow;
	char why[200];
	devs_init(&src, &cow);
	struct cow *c;
	struct cow_counters ct;
	static uint8_t buf[65536];
	uint64_t bad;
	int ok = cow_format(&test_env, &cow.bdev, &src.bdev, 4096, why, 200) == 0 && open_cow(&cow, &src, &c, why) == 0;
	CHECK("counters: format and open", ok);
	if (!ok)
		return;
	cow_get_counters(c, &ct);
	CHECK("a new cow has no units present and nothing rescued", ct.units_present == 0 && ct.bytes_rescued == 0);
	/* 8 KiB at 0 (two units), 1 KiB inside the unit at 64 KiB, 512 bytes straddling nothing. */
	ok = cow_rescue_read(c, 0, 8192, buf, &bad) == 0 && cow_rescue_read(c, 65536 + 1024, 1024, buf, &bad) == 0 &&
	     cow_rescue_read(c, 65536 + 3072, 512, buf, &bad) == 0;
	cow_get_counters(c, &ct);
	CHECK("bytes rescued count each read once", ok && ct.bytes_rescued == 8192 + 1024 + 512);
	CHECK("units present: two whole units and one unit holding two pieces", ct.units_present == 3);
	ok = cow_rescue_read(c, 0, 16384, buf, &bad) == 0;
	cow_get_counters(c, &ct);
	CHECK("a re-read over finished sectors adds only the new ones", ok && ct.bytes_rescued == 16384 + 1024 + 512 &&
	      ct.units_present == 5);
	/* Written sectors count as present too; a unit both written and rescued counts once. */
	memset(buf, 0x77, 4096);
	ok = cow_ov_write(c, 16384 - 512, 1024, buf) == 0 && cow_ov_write(c, 1 << 20, 512, buf) == 0;
	cow_get_counters(c, &ct);
	CHECK("units present include overlay writes, shared units once", ok && ct.units_present == 7);
	ok = cow_set_state(c, 200 * 4096, 8192, '-') == 0 && cow_set_state(c, 200 * 4096 + 4096, 8192, '-') == 0;
	cow_get_counters(c, &ct);
	CHECK("bytes bad count sectors as they turn bad", ok && ct.bytes_bad == 12288);
	CHECK("counters survive a reopen", cow_close(c) == 0 && open_cow(&cow, &src, &c, why) == 0);
	struct cow_counters again;
	cow_get_counters(c, &again);
	CHECK("the reopened counters and units match", again.bytes_rescued == ct.bytes_rescued &&
	      again.bytes_bad == ct.bytes_bad && again.units_present == ct.units_present);
	cow_close(c);
	fakedev_free(&src);
	fakedev_free(&cow);
}

/* The block-device interface is asynchronous: the pieces of one overlay read or write, and a
 * checkpoint's megabytes, are in flight at once and end in any order (tests/lib/fakedev.c). */
static void test_async(void)
{
	struct fakedev src, cow;
	char why[200];
	devs_init(&src, &cow);
	CHECK("format: the first map's pages are written",
	      cow_format(&test_env, &cow.bdev, &src.bdev, 4096, why, 200) == 0 && cow.max_inflight >= 1);
	struct cow *c;
	open_cow(&cow, &src, &c, why);
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	/* Every other 4 KiB of the first 256 KiB written: a read of it is 64 pieces, half from the
	 * cow and half from the source. */
	static uint8_t buf[256 << 10], want[256 << 10], w[4096], big[512 << 10];
	memcpy(want, src.view, sizeof(want));
	int ok = 1;
	for (uint32_t u = 0; u < 64; u += 2) {
		for (uint32_t k = 0; k < sizeof(w); k++)
			w[k] = (uint8_t)rnd();
		ok &= cow_ov_write(c, u * 4096, 4096, w) == 0;
		memcpy(want + u * 4096, w, 4096);
	}
	src.max_inflight = cow.max_inflight = src.max_others = cow.max_others = 0;
	uint64_t bad = 0;
	ok &= cow_ov_read(c, 0, sizeof(buf), buf, &bad) == 0 && !memcmp(buf, want, sizeof(buf));
	CHECK("an overlay read of 64 pieces is right though they end in any order", ok);
	CHECK("its pieces were in flight together, on the cow and on the source",
	      src.max_inflight > 1 && cow.max_inflight > 1 && (src.max_others > 0 || cow.max_others > 0));
	/* Failures: the first piece's in overlay order, named by overlay offset on either device. */
	src.bad_from = 5 * 4096 + 1024;
	src.bad_to = src.bad_from + 512;
	cow.bad_from = g.data_offset + 8 * 4096;
	cow.bad_to = cow.bad_from + 512;
	CHECK("a failing source piece is reported before a later failing cow piece",
	      cow_ov_read(c, 0, sizeof(buf), buf, &bad) == -E_MEDIUM && bad == 5 * 4096 + 1024);
	src.bad_to = 0;
	CHECK("a failing cow piece is named by its overlay offset",
	      cow_ov_read(c, 0, sizeof(buf), buf, &bad) == -E_MEDIUM && bad == 8 * 4096);
	cow.bad_to = 0;
	/* Copy-on-read over a range split by written sectors: its writes in flight together. */
	cow.max_inflight = 0;
	CHECK("copy-on-read around written sectors keeps them and stores the rest",
	      cow_rescue_read(c, 0, sizeof(buf), buf, &bad) == 0 && cow_ov_read(c, 0, sizeof(buf), buf, &bad) == 0 &&
	      !memcmp(buf, want, sizeof(buf)) && cow_map_at(cow_get_map(c), 1)->state == COW_FINISHED &&
	      cow.max_inflight > 1);
	/* Metadata reads: what came from the source is stored on the way. */
	struct cow_counters before, after;
	cow_get_counters(c, &before);
	CHECK("a rescuing read returns the overlay's data",
	      cow_ov_read_rescuing(c, 0, sizeof(buf) * 2, big, &bad) == 0 && !memcmp(big, want, sizeof(buf)) &&
	      !memcmp(big + sizeof(buf), src.view + sizeof(buf), sizeof(buf)));
	cow_get_counters(c, &after);
	CHECK("and stores what it took from the source, as finished",
	      cow_map_at(cow_get_map(c), (sizeof(buf) + 4096) / LS)->state == COW_FINISHED &&
	      after.bytes_rescued - before.bytes_rescued == sizeof(buf) &&
	      !memcmp(cow.view + g.data_offset + sizeof(buf), src.view + sizeof(buf), sizeof(buf)));
	CHECK("close commits", cow_close(c) == 0);
	CHECK("no request was left without a wait", cow.abandoned == 0 && src.abandoned == 0 &&
	      cow.nqueue == 0 && src.nqueue == 0);
	fakedev_free(&cow);
	fakedev_free(&src);
}

int main(void)
{
	test_map();
	test_format_identity();
	test_overlay();
	test_counters();
	test_async();
	test_power_cuts();
	return CHECK_DONE();
}
