/* The rescue algorithm against a simulated failing drive (bad sectors, a bad zone, weak sectors
 * that read after some tries, a slow zone, a hanging zone, a drive that vanishes) with a fake
 * clock: the final map must equal the simulation's truth and the cow must hold the source. */
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../lib/fakedev.h"
#include "../../lib/errors.h"
#include "../../rescue/rescue.h"

#define LS 512u
#define SECTORS 32768u          /* 16 MiB */

enum kind { GOOD, BAD, WEAK, SLOW, HANG };

struct drive {
	struct cow_bdev bdev;
	uint8_t *data;
	uint8_t kind[SECTORS];
	uint32_t tries[SECTORS];     /* reads a weak sector has seen */
	uint64_t reads, bad_reads, writes;
	uint64_t overlapped;        /* reads made while the cow still had writes in flight */
	const struct fakedev *cow;  /* to see that */
	uint64_t dead_after;        /* reads after which the drive stops answering (0: never) */
	int dead;
};

static uint64_t fake_now;
static uint64_t now_us(void) { return fake_now; }
static struct cow_env env;

static int drv_read(struct drive *d, uint64_t off, uint32_t len, void *buf, uint64_t *bad)
{
	uint64_t s = off / LS, n = len / LS;
	d->reads++;
	d->overlapped += d->cow && d->cow->nqueue;
	fake_now += 200 + len / 200;    /* about 200 MB/s and a seek */
	if (d->dead_after && d->reads > d->dead_after)
		d->dead = 1;
	if (d->dead)
		return -E_IO;
	int fail = 0, hang = 0;
	uint64_t first = UINT64_MAX;
	for (uint64_t i = s; i < s + n; i++) {
		switch (d->kind[i]) {
		case BAD: fail = 1; break;
		case HANG: hang = 1; break;
		case WEAK: if (d->tries[i]++ < 2) fail = 1; break;
		case SLOW: fake_now += 20000; break;
		}
		if ((fail || hang) && first == UINT64_MAX)
			first = i * LS;
	}
	if (bad)
		*bad = first;
	if (hang) {
		d->bad_reads++;
		fake_now += 3000000;    /* the deadline */
		return -E_TIMEOUT;
	}
	if (fail) {
		d->bad_reads++;
		return -E_MEDIUM;
	}
	memcpy(buf, d->data + off, len);
	return 0;
}

/* The simulated drive answers at once; a write is refused, as the appliance's source guard does. */
static void drv_submit(void *ctx, struct cow_io *io)
{
	struct drive *d = ctx;
	if (io->op == COW_IO_READ) {
		io->status = drv_read(d, io->off, io->len, io->buf, &io->bad_off);
	} else {
		d->writes += io->op == COW_IO_WRITE;
		io->status = io->op == COW_IO_WRITE ? -E_RDONLY : 0;
	}
}

static int drv_wait(void *ctx, struct cow_io *io)
{
	(void)ctx;
	return io->status;
}

static void drive_init(struct drive *d)
{
	memset(d, 0, sizeof(*d));
	d->bdev = (struct cow_bdev){ .ctx = d, .size = (uint64_t)SECTORS * LS, .lsize = LS, .psize = LS,
				     .submit = drv_submit, .wait = drv_wait };
	strcpy(d->bdev.model, "FAILING DISK");
	strcpy(d->bdev.serial, "F1");
	d->data = malloc((size_t)SECTORS * LS);
	srand(7);
	for (size_t i = 0; i < (size_t)SECTORS * LS; i++)
		d->data[i] = (uint8_t)rand();
	/* Identity samples the first and last MiB: keep them clean. */
	for (uint32_t s = 5000; s < 5003; s++) d->kind[s] = BAD;            /* three bad sectors */
	for (uint32_t s = 8192; s < 8192 + 2048; s++) d->kind[s] = BAD;     /* a 1 MiB bad zone */
	for (uint32_t s = 12000; s < 12004; s++) d->kind[s] = WEAK;         /* reads on the 3rd try */
	for (uint32_t s = 16384; s < 16384 + 512; s++) d->kind[s] = SLOW;   /* 256 KiB slow zone */
	for (uint32_t s = 20480; s < 20480 + 64; s++) d->kind[s] = HANG;    /* 32 KiB hanging zone */
	d->kind[24001] = BAD;
}

static uint8_t truth(const struct drive *d, uint64_t s)
{
	return d->kind[s] == BAD || d->kind[s] == HANG ? COW_BAD : COW_FINISHED;
}

/* Mismatches between the map and the truth, and finished sectors whose cow copy differs. */
static void compare(struct cow *c, struct fakedev *cowdev, const struct drive *d, uint64_t *wrong_state,
		    uint64_t *wrong_data, int partial)
{
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	const struct cow_map *m = cow_get_map(c);
	*wrong_state = *wrong_data = 0;
	for (uint64_t s = 0; s < SECTORS; s++) {
		uint8_t st = cow_map_at(m, s)->state;
		if (st == COW_FINISHED &&
		    memcmp(cowdev->view + g.data_offset + s * LS, d->data + s * LS, LS))
			(*wrong_data)++;
		if (partial ? (st == COW_FINISHED && truth(d, s) != COW_FINISHED) : st != truth(d, s))
			(*wrong_state)++;
	}
}

struct stopper { uint64_t after; uint64_t calls; };
static int stop_after(void *ctx)
{
	struct stopper *s = ctx;
	return ++s->calls > s->after;
}

static int nevents, saw_part2;
static char last_event[200];
static void on_event(void *ctx, const char *text)
{
	(void)ctx;
	nevents++;
	snprintf(last_event, sizeof(last_event), "%s", text);
	saw_part2 |= strstr(text, "domain part 2 of 2") != NULL;
}

/* A simulated drive and a freshly formatted, open cow for it. */
struct rig { struct drive *d; struct fakedev cowdev; struct cow *c; };

static void rig_up(struct rig *g)
{
	char why[200];
	g->d = malloc(sizeof(*g->d));
	drive_init(g->d);
	fakedev_init(&g->cowdev, 24u << 20, LS, "COW", "C1");
	g->d->cow = &g->cowdev;
	cow_format(&env, &g->cowdev.bdev, &g->d->bdev, 4096, why, sizeof(why));
	cow_open(&env, &g->cowdev.bdev, &g->d->bdev, &g->c, why, sizeof(why));
}

static void rig_down(struct rig *g)
{
	cow_close(g->c);
	fakedev_free(&g->cowdev);
	free(g->d->data);
	free(g->d);
}

static int run(struct cow *c, const struct rescue_opts *o, const struct rescue_hooks *h, struct rescue *r)
{
	int rc = rescue_init(r, c, &env, o, h);
	if (rc == 0)
		rc = rescue_run(r);
	rescue_free(r);
	return rc;
}

static void test_full_run(void)
{
	struct rig g;
	struct rescue r;
	struct rescue_opts o;
	rig_up(&g);
	struct drive *d = g.d;
	rescue_opts_default(&o);
	o.retries = 2;
	struct rescue_hooks h = { .event = on_event };
	int rc = run(g.c, &o, &h, &r);
	CHECK("rescue runs to the end", rc == 0 && r.st.phase == RP_DONE);
	uint64_t ws, wd;
	compare(g.c, &g.cowdev, d, &ws, &wd, 0);
	printf("reads %llu, failed %llu, source bad reads %llu, time %.1f s\n", (unsigned long long)r.st.reads,
	       (unsigned long long)r.st.failed_reads, (unsigned long long)d->bad_reads, fake_now / 1e6);
	CHECK("the final map equals the truth of the simulation", ws == 0);
	CHECK("every finished sector in the cow equals the source", wd == 0);
	CHECK("the source was never written", d->writes == 0);
	printf("reads overlapping a cow write: %llu\n", (unsigned long long)d->overlapped);
	CHECK("copy reads ran while the cow wrote the block before", d->overlapped > 50);
	CHECK("every cow request was waited for", g.cowdev.abandoned == 0 && g.cowdev.nqueue == 0);
	uint64_t bytes[5], areas[5];
	rescue_domain_totals(&r, bytes, areas);
	CHECK("totals: bad bytes and areas as simulated",
	      bytes[3] == (3 + 2048 + 64 + 1) * LS && areas[3] == 4 && bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 0);
	/* Trim must cost two reads per failed area, not a read per sector of a bad zone, and
	 * scraping reads each bad sector once: so the bad reads stay near the bad sector count
	 * times (1 + retries), never the zone size times the passes. */
	uint64_t nbad = 3 + 2048 + 64 + 1;
	CHECK("reads of bad areas stay within scrape + retries + copy/trim edges", d->bad_reads <= nbad * 3 + 200);
	CHECK("the hanging zone costs deadlines by the sector, not by the cluster forever",
	      r.st.failed_reads == d->bad_reads);
	rc = run(g.c, &o, &h, &r);
	CHECK("a second run over a finished map reads only bad sectors (retries)",
	      rc == 0 && r.st.reads == r.st.failed_reads && r.st.reads == nbad * 2);
	rig_down(&g);
}

static void test_skipping(void)
{
	struct rig g;
	struct rescue r;
	struct rescue_opts o;
	rig_up(&g);
	struct drive *d = g.d;
	rescue_opts_default(&o);
	o.passes = RESCUE_PASS_COPY;
	o.max_read = o.cluster;   /* fixed clusters: the read count below is the skipping's */
	struct stopper st = { .after = 200 };
	struct rescue_hooks h = { .ctx = &st, .should_stop = stop_after };
	/* After 200 reads the first pass must have crossed the 1 MiB bad zone and the hanging zone
	 * with a handful of reads each, leaving their middles non-tried. */
	int rc = run(g.c, &o, &h, &r);
	CHECK("stop returns -E_STOPPED", rc == -E_STOPPED);
	printf("skipping: %llu bad reads in the first %llu reads\n", (unsigned long long)d->bad_reads, (unsigned long long)d->reads);
	/* Each bad area costs the read that met it and the one that found its first bad sector
	 * from the good side (pass 1 does that now; trim did it later); the 1 MiB zone a few more
	 * while the skip doubles across it, and one for its end, found from the good data beyond
	 * (its length is what later bands are skipped by). */
	CHECK("skipping crosses a bad zone with few failed reads", d->bad_reads <= 15);
	const struct cow_map *m = cow_get_map(g.c);
	CHECK("data beyond the bad zones was reached in pass 1",
	      cow_map_at(m, 25000)->state == COW_FINISHED);
	CHECK("the middle of the bad zone is left non-tried for later passes",
	      cow_map_at(m, 9200)->state == COW_NONTRIED);
	rescue_opts_default(&o);
	o.retries = 2;
	rc = run(g.c, &o, NULL, &r);
	uint64_t ws, wd;
	compare(g.c, &g.cowdev, d, &ws, &wd, 0);
	CHECK("a stopped rescue resumes from the map to the truth", rc == 0 && ws == 0 && wd == 0);
	rig_down(&g);
}

static void test_min_rate_and_domain(void)
{
	struct rig g;
	struct rescue r;
	struct rescue_opts o;
	char why[200];
	rig_up(&g);
	rescue_opts_default(&o);
	struct rescue_domain dom;
	rescue_domain_init(&dom, &env);
	CHECK("domain parse", rescue_parse_domain(&dom, "lba:16000+2000,100+10,105+20", SECTORS, why, sizeof(why)) == 0 &&
	      dom.n == 2 && dom.ngroups == 1 && dom.range[0].start == 100 && dom.range[0].count == 25);
	CHECK("domain beyond the source is refused", rescue_parse_domain(&dom, "lba:32760+100", SECTORS, why, sizeof(why)) == -E_USAGE && dom.n == 0);
	CHECK("domain garbage is refused", rescue_parse_domain(&dom, "lba:12x+4", SECTORS, why, sizeof(why)) == -E_USAGE);
	rescue_opts_default(&o);
	o.min_rate = 10u << 20;
	o.passes = RESCUE_PASS_COPY;
	rescue_parse_domain(&dom, "lba:16000+2000", SECTORS, why, sizeof(why));
	o.domain = &dom;
	struct stopper st = { .after = 12 };
	struct rescue_hooks h = { .ctx = &st, .should_stop = stop_after };
	run(g.c, &o, &h, &r);
	CHECK("a slow zone is skipped in the first pass (min-rate)", r.st.slow_reads >= 1 &&
	      cow_map_at(cow_get_map(g.c), 17800)->state == COW_FINISHED);
	o.passes = RESCUE_PASS_ALL;
	run(g.c, &o, NULL, &r);
	uint64_t bytes[5], areas[5];
	rescue_domain_totals(&r, bytes, areas);
	const struct cow_map *m = cow_get_map(g.c);
	CHECK("a domain run finishes its domain and nothing else",
	      bytes[4] == 2000 * LS && cow_map_at(m, 15999)->state == COW_NONTRIED &&
	      cow_map_at(m, 18000)->state == COW_NONTRIED);
	rescue_domain_free(&dom);
	rig_down(&g);
}

/* Domains in priority groups (an NTFS volume's metadata, then its files) and domains of many
 * ranges (a volume's runs). */
static void test_domain_groups(void)
{
	struct rescue_domain d;
	rescue_domain_init(&d, &env);
	rescue_domain_add(&d, 100, 100);
	rescue_domain_end_group(&d);
	rescue_domain_add(&d, 250, 50);
	rescue_domain_add(&d, 50, 230);   /* overlaps group 1 and its own other range */
	rescue_domain_end_group(&d);
	CHECK("a later group loses what an earlier one holds, and merges its own",
	      d.ngroups == 2 && d.n == 3 && d.group_end[0] == 1 && d.range[1].start == 50 && d.range[1].count == 50 &&
	      d.range[2].start == 200 && d.range[2].count == 100);
	rescue_domain_free(&d);

	struct rig g;
	struct rescue r;
	struct rescue_opts o;
	rig_up(&g);
	struct drive *dr = g.d;
	rescue_opts_default(&o);
	o.retries = 1;
	/* Group 1: 8 sectors in every 40 of the second half (300 ranges, given out of order, as
	 * many as this small cow's map can hold apart); group 2: the first 4 MiB. */
	rescue_domain_init(&d, &env);
	int ok = 1;
	for (uint32_t k = 300; k-- > 0;)
		ok &= rescue_domain_add(&d, SECTORS / 2 + (uint64_t)k * 40, 8) == 0;
	ok &= rescue_domain_end_group(&d) == 0 && rescue_domain_add(&d, 0, 8192) == 0 && rescue_domain_end_group(&d) == 0;
	CHECK("a domain of 300 ranges and a second group builds", ok && d.n == 301 && d.ngroups == 2);
	o.domain = &d;
	nevents = 0;
	struct stopper st = { .after = 340 };
	struct rescue_hooks h = { .ctx = &st, .should_stop = stop_after, .event = on_event };
	int rc = run(g.c, &o, &h, &r);
	const struct cow_map *m = cow_get_map(g.c);
	/* Stopped once the second group has begun: the first must be through all its phases. */
	uint64_t first = 0, second = 0;
	for (uint32_t k = 0; k < 300; k++)
		for (uint64_t s = SECTORS / 2 + (uint64_t)k * 40; s < SECTORS / 2 + (uint64_t)k * 40 + 8; s++)
			first += cow_map_at(m, s)->state == truth(dr, s);
	for (uint64_t s = 0; s < 8192; s++)
		second += cow_map_at(m, s)->state == COW_FINISHED;
	CHECK("the first group is done, all phases, before the second starts",
	      rc == -E_STOPPED && first == 300 * 8 && second > 0 && second < 8192);
	h.should_stop = NULL;
	rc = run(g.c, &o, &h, &r);
	uint64_t wrong = 0;
	for (uint64_t s = 0; s < SECTORS; s++) {
		int in = s < 8192 || (s >= SECTORS / 2 && (s - SECTORS / 2) % 40 < 8 && s < SECTORS / 2 + 300 * 40);
		uint8_t st = cow_map_at(m, s)->state;
		wrong += in ? st != truth(dr, s) : st != COW_NONTRIED;
	}
	CHECK("resumed, both groups end as the truth and nothing outside them is read", rc == 0 && wrong == 0);
	CHECK("the groups are announced", saw_part2);
	uint64_t bytes[5], areas[5];
	rescue_domain_totals(&r, bytes, areas);
	CHECK("totals cover both groups", bytes[4] + bytes[3] == (8192 + 300 * 8) * LS);
	rescue_domain_free(&d);
	rig_down(&g);
}

static void test_vanishing_drive(void)
{
	struct rig g;
	struct rescue r;
	struct rescue_opts o;
	rig_up(&g);
	struct drive *d = g.d;
	rescue_opts_default(&o);
	o.retries = 2;
	d->dead_after = d->reads + 100;
	nevents = 0;
	struct rescue_hooks h = { .event = on_event };
	int rc = run(g.c, &o, &h, &r);
	CHECK("a drive that stops answering pauses the run with -E_GONE", rc == -E_GONE);
	CHECK("the pause is announced", strstr(last_event, "stopped answering") != NULL);
	uint64_t ws, wd;
	compare(g.c, &g.cowdev, d, &ws, &wd, 1);
	uint64_t bytes[5], areas[5];
	rescue_domain_totals(&r, bytes, areas);
	uint64_t blamed = 0;
	const struct cow_map *m = cow_get_map(g.c);
	for (uint64_t s = 0; s < SECTORS; s++) {
		uint8_t st = cow_map_at(m, s)->state;
		int cluster_bad = 0;
		for (uint64_t k = s / 128 * 128; k < s / 128 * 128 + 128; k++)
			cluster_bad |= d->kind[k] == BAD || d->kind[k] == HANG || d->kind[k] == WEAK;
		blamed += (st == COW_NONTRIMMED || st == COW_NONSCRAPED || st == COW_BAD) && !cluster_bad;
	}
	CHECK("nothing the dead drive failed is recorded as bad or non-trimmed", blamed == 0 && ws == 0 && wd == 0);
	d->dead = 0;
	d->dead_after = 0;
	rc = run(g.c, &o, &h, &r);
	compare(g.c, &g.cowdev, d, &ws, &wd, 0);
	CHECK("after the drive returns the run finishes to the truth", rc == 0 && ws == 0 && wd == 0);
	rig_down(&g);
}

/* Power cuts in the middle of a rescue: after each, reopen and go on; the end equals the
 * truth and no finished sector is ever wrong. */
static void test_power_cuts(void)
{
	struct rig g;
	struct rescue r;
	struct rescue_opts o;
	char why[200];
	rig_up(&g);
	struct drive *d = g.d;
	rescue_opts_default(&o);
	o.retries = 2;
	o.commit_ms = 100;
	int cuts = 0, bad = 0, rc = -1;
	srand(99);
	while (cuts < 40) {
		g.cowdev.cut_after = g.cowdev.writes + 1 + (uint64_t)(rand() % 60);
		rc = run(g.c, &o, NULL, &r);
		if (rc == 0)
			break;
		cow_discard(g.c);
		fakedev_power_cut(&g.cowdev, (uint32_t)cuts);
		g.cowdev.cut_after = 0;
		cuts++;
		if (cow_open(&env, &g.cowdev.bdev, &d->bdev, &g.c, why, sizeof(why)) < 0) {
			bad++;
			break;
		}
		uint64_t ws, wd;
		compare(g.c, &g.cowdev, d, &ws, &wd, 1);
		bad += ws != 0 || wd != 0;
	}
	printf("power cuts: %d\n", cuts);
	CHECK("after every cut the cow opens and no finished sector is wrong", bad == 0 && cuts >= 10);
	g.cowdev.cut_after = 0;
	rc = run(g.c, &o, NULL, &r);
	uint64_t ws, wd;
	compare(g.c, &g.cowdev, d, &ws, &wd, 0);
	CHECK("rescue after the cuts ends equal to the truth", rc == 0 && ws == 0 && wd == 0);
	rig_down(&g);
}

/* A clone target that fails half-way stops the run; the cow keeps what it got. The target's
 * write is submitted before the cow's and waited for after, as the appliance's is. */
static void test_clone(void)
{
	struct rig g;
	struct rescue r;
	struct rescue_opts o;
	struct fakedev t;
	rig_up(&g);
	struct drive *d = g.d;
	fakedev_init(&t, (uint64_t)SECTORS * LS, LS, "TGT", "T1");
	rescue_opts_default(&o);
	o.retries = 2;
	struct rescue_hooks h = { .target = &t.bdev };
	int rc = run(g.c, &o, &h, &r);
	uint64_t wrong = 0;
	for (uint64_t s = 0; s < SECTORS; s++)
		if (truth(d, s) == COW_FINISHED && memcmp(t.durable + s * LS, d->data + s * LS, LS))
			wrong++;
	CHECK("clone: the target's finished ranges equal the source, flushed", rc == 0 && wrong == 0 &&
	      r.st.clone_bytes == r.st.bytes_ok && t.ncache == 0);
	CHECK("clone: the target's writes were in flight while the cow's were submitted",
	      g.cowdev.max_others > 0 && t.submitted > 0);
	CHECK("clone: every request submitted was waited for", t.abandoned == 0 && t.nqueue == 0);
	rig_down(&g);
	fakedev_free(&t);
	fakedev_init(&t, (uint64_t)SECTORS * LS, LS, "TGT", "T1");
	rig_up(&g);
	d = g.d;
	t.wbad_from = 4u << 20;
	rc = run(g.c, &o, &h, &r);
	uint64_t ws, wd;
	compare(g.c, &g.cowdev, d, &ws, &wd, 1);
	CHECK("clone: a failing target stops the run, named, and the cow is unharmed",
	      rc == -E_TARGET && r.target_rc == -E_MEDIUM && r.target_off >= (4u << 20) && ws == 0 && wd == 0);
	rig_down(&g);
	fakedev_free(&t);
}

/* A cow that fails to store: the run stops with -E_COWIO (never a bad source sector), and what
 * the map calls finished is in the cow, the overlapped store included. */
static void test_failing_cow(void)
{
	struct rig g;
	struct rescue r;
	struct rescue_opts o;
	rig_up(&g);
	struct cow_geometry geo;
	cow_get_geometry(g.c, &geo);
	g.cowdev.wbad_from = geo.data_offset + (7u << 20);   /* the cow's data area fails from 7 MiB */
	rescue_opts_default(&o);
	int rc = run(g.c, &o, NULL, &r);
	uint64_t ws, wd;
	compare(g.c, &g.cowdev, g.d, &ws, &wd, 1);
	const struct cow_map *m = cow_get_map(g.c);
	uint64_t past = 0;
	for (uint64_t s = (7u << 20) / LS; s < SECTORS; s++)
		past += cow_map_at(m, s)->state != COW_NONTRIED;
	/* The block stored just before the failing one (its write overlapped the next read) is
	 * recorded: finished data reaches within one read's length of the failure. */
	uint64_t high = 0;
	for (uint64_t s = 0; s < (7u << 20) / LS; s++)
		if (cow_map_at(m, s)->state == COW_FINISHED)
			high = s + 1;
	int near = high + o.max_read / LS >= (7u << 20) / LS;
	CHECK("a failing cow stops the run with -E_COWIO", rc == -E_COWIO);
	CHECK("nothing past the failure is marked, and every finished sector is in the cow",
	      past == 0 && ws == 0 && wd == 0 && near > 0);
	CHECK("every cow request was waited for", g.cowdev.abandoned == 0 && g.cowdev.nqueue == 0);
	g.cowdev.wbad_from = 0;
	rig_down(&g);
}

int main(void)
{
	env = test_env;
	env.now_us = now_us;
	test_full_run();
	test_skipping();
	test_min_rate_and_domain();
	test_domain_groups();
	test_vanishing_drive();
	test_power_cuts();
	test_clone();
	test_failing_cow();
	return CHECK_DONE();
}
