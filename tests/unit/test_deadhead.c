/* The rescue of drives with dead heads (tests/lib/deadhead.c, geometries in
 * tests/lib/deadhead_geometries.txt) with a fake clock: the C model agrees with the nbdkit
 * model's geometry, every rescue ends at the truth, and the reads of bad areas until every
 * readable sector was read stay at most 2 per bad band without the head map and well under 1
 * with it. DEADHEAD_ONLY=name,... runs other geometries of the file (the bench ones: the fast
 * way to measure them); DEADHEAD_TRACE=prefix writes every read and event to a file per run. */
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../lib/deadhead.h"
#include "../lib/fakedev.h"
#include "../../lib/errors.h"
#include "../../rescue/rescue.h"

#define BAND_MIN 64     /* sectors: an unreadable range at least this long is a band */

static uint64_t fake_now;
static uint64_t now_us(void) { return fake_now; }
static struct cow_env env;
static const char *root;

static char pattern_seen[200];
static FILE *trace;
static void on_event(void *ctx, const char *text)
{
	(void)ctx;
	if (trace)
		fprintf(trace, "E %s\n", text);
	if (strstr(text, "repeat every"))
		snprintf(pattern_seen, sizeof(pattern_seen), "%s", text);
}

/* The nbdkit model's view of the same spec, through its Python module. */
static int python_agrees(const char *spec, const struct dh_geom *g)
{
	static uint64_t r[65536][2];
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "python3 %s/tests/qemu/deadhead_geometry.py ranges '%s'", root, spec);
	FILE *f = popen(cmd, "r");
	if (!f)
		return 0;
	uint32_t total, n = dh_bad_ranges(g, r, 65536, &total), i = 0;
	unsigned long long a, b;
	int ok = total == n;
	while (fscanf(f, "%llu %llu", &a, &b) == 2) {
		ok &= i < n && r[i][0] == a && r[i][1] == b;
		i++;
	}
	return pclose(f) == 0 && ok && i == n && n > 0;
}

struct result { int stopped_in_copy; uint64_t stopped_at; uint64_t bands, done_bad, done_us, bad_total, reads, end_us; int exact, data_ok, rc; };

struct stopper { uint64_t after, calls; };
static int stop_after(void *ctx)
{
	struct stopper *s = ctx;
	return ++s->calls == s->after;
}

static int name_in(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
		if (strcspn(p, ",") == n && !strncmp(p, name, n))
			return 1;
	}
	return 0;
}

/* stop: 0, or a run stopped after that many stop checks and then run again (a resume). */
static void rescue_drive(const char *name, const char *spec, int infer, uint64_t stop, struct result *res)
{
	struct dh_drive d;
	struct fakedev cowdev;
	struct cow *c;
	char why[200];
	memset(res, 0, sizeof(*res));
	fake_now = 0;
	if (dh_drive_init(&d, spec, &fake_now, why, sizeof(why)) < 0) {
		printf("spec: %s\n", why);
		res->rc = -1;
		return;
	}
	/* DEADHEAD_TRACE=prefix: every read and event to prefix-<name>-<infer>.txt (for finding
	 * where the reads of bad areas go). */
	char tpath[300];
	trace = NULL;
	if (getenv("DEADHEAD_TRACE")) {
		snprintf(tpath, sizeof(tpath), "%s-%s-%s.txt", getenv("DEADHEAD_TRACE"), name, infer ? "on" : "off");
		trace = fopen(tpath, "w");
	}
	uint64_t size = d.bdev.size;
	fakedev_init(&cowdev, size + (24u << 20), DH_SECTOR, "COW", "C1");
	if (cow_format(&env, &cowdev.bdev, &d.bdev, 4096, why, sizeof(why)) < 0 ||
	    cow_open(&env, &cowdev.bdev, &d.bdev, &c, why, sizeof(why)) < 0) {
		printf("cow: %s\n", why);
		res->rc = -1;
		goto out;
	}
	/* The identity checks read the ends: what counts is the rescue's own reads. */
	uint64_t base_bad = d.bad_reads, base_reads = d.reads;
	d.trace = trace;
	struct rescue r;
	struct rescue_opts o;
	rescue_opts_default(&o);
	o.retries = 2;
	o.no_infer = !infer;
	struct stopper st = { .after = stop };
	struct rescue_hooks h = { .event = on_event, .ctx = &st, .should_stop = stop ? stop_after : NULL };
	pattern_seen[0] = 0;
	uint64_t t0 = fake_now;
	res->rc = rescue_init(&r, c, &env, &o, &h);
	if (res->rc == 0)
		res->rc = rescue_run(&r);
	rescue_free(&r);
	if (stop && res->rc == -E_STOPPED) {
		res->stopped_in_copy = r.st.phase == RP_COPY && r.st.pass == 1;
		res->stopped_at = r.st.pos;
		res->rc = rescue_init(&r, c, &env, &o, &h);
		if (res->rc == 0)
			res->rc = rescue_run(&r);
		rescue_free(&r);
	}
	res->bands = dh_count_bands(&d.g, BAND_MIN);
	res->done_bad = d.done_bad_reads - base_bad;
	res->done_us = d.done_us - t0;
	res->bad_total = d.bad_reads - base_bad;
	res->reads = d.reads - base_reads;
	res->end_us = fake_now - t0;
	/* The map against the truth, extent by extent; finished data against the pattern. */
	struct cow_geometry geo;
	cow_get_geometry(c, &geo);
	const struct cow_map *m = cow_get_map(c);
	res->exact = d.readable_left == 0 && d.writes == 0;
	res->data_ok = 1;
	uint8_t want[DH_SECTOR];
	for (const struct cow_extent *x = cow_map_get(m, 0); x; x = cow_map_next(m, x))
		for (uint64_t s = x->start; s < x->start + x->count; s++) {
			uint8_t t = d.kind[s] == DH_BAD ? COW_BAD : COW_FINISHED;
			res->exact &= x->state == t;
			if (x->state == COW_FINISHED) {
				dh_sector_data(s, want);
				res->data_ok &= !memcmp(cowdev.view + geo.data_offset + s * DH_SECTOR, want, DH_SECTOR);
			}
		}
	cow_close(c);
out:
	if (trace)
		fclose(trace);
	trace = NULL;
	fakedev_free(&cowdev);
	dh_drive_free(&d);
}

int main(void)
{
	env = test_env;
	env.now_us = now_us;
	root = getenv("COWBOOT_ROOT") ? getenv("COWBOOT_ROOT") : ".";
	char path[512], line[600];
	snprintf(path, sizeof(path), "%s/tests/lib/deadhead_geometries.txt", root);
	FILE *f = fopen(path, "r");
	CHECK("the geometries file opens", f != NULL);
	if (!f)
		return CHECK_DONE();
	int specs = 0, agree = 0, rescued = 0;
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#'), name[64];
		if (hash)
			*hash = 0;
		line[strcspn(line, "\n")] = 0;
		int off = 0;
		if (sscanf(line, "%63s %n", name, &off) != 1)
			continue;
		const char *spec = line + off;
		struct dh_geom g;
		char why[200], what[300];
		specs++;
		if (dh_parse(spec, &g, why, sizeof(why)) < 0) {
			snprintf(what, sizeof(what), "%s: %s", name, why);
			CHECK(what, 0);
			continue;
		}
		agree += python_agrees(spec, &g);
		/* DEADHEAD_ONLY=name,...: those geometries (the bench ones too: the fast way to measure them). */
		const char *only = getenv("DEADHEAD_ONLY");
		if (only ? !name_in(only, name) : strncmp(name, "unit-", 5) != 0)
			continue;
		struct result off_r, on_r;
		rescue_drive(name, spec, 0, 0, &off_r);
		char pat[200];
		rescue_drive(name, spec, 1, 0, &on_r);
		snprintf(pat, sizeof(pat), "%s", pattern_seen);
		rescued++;
		printf("%s: %llu bands; until all readable was read: infer=off %llu bad reads (%.2f a band) in %.0f s, "
		       "infer=on %llu (%.2f a band) in %.0f s; whole run: off %llu bad reads %.0f s, on %llu bad reads %.0f s\n",
		       name, (unsigned long long)off_r.bands, (unsigned long long)off_r.done_bad,
		       (double)off_r.done_bad / off_r.bands, off_r.done_us / 1e6, (unsigned long long)on_r.done_bad,
		       (double)on_r.done_bad / on_r.bands, on_r.done_us / 1e6, (unsigned long long)off_r.bad_total,
		       off_r.end_us / 1e6, (unsigned long long)on_r.bad_total, on_r.end_us / 1e6);
		if (pat[0])
			printf("%s: %s\n", name, pat);
		snprintf(what, sizeof(what), "%s: both rescues end at the truth, finished data equal to the drive's", name);
		CHECK(what, off_r.rc == 0 && on_r.rc == 0 && off_r.exact && on_r.exact && off_r.data_ok && on_r.data_ok);
		/* Without the map a band costs one read once the spacing of the bands before aims at
		 * its first block, two when met inside a read; learning each zone costs a few more. */
		snprintf(what, sizeof(what), "%s: without the head map at most 2 reads of bad areas a band", name);
		CHECK(what, off_r.done_bad <= 2 * off_r.bands);
		snprintf(what, sizeof(what), "%s: with the head map well under 1 a band (at most 0.75)", name);
		CHECK(what, 4 * on_r.done_bad <= 3 * on_r.bands);
		if (!strcmp(name, "unit-4h") || !strcmp(name, "unit-8h") || !strcmp(name, "unit-5h2")) {
			const char *want = !strcmp(name, "unit-4h") ? "likely one failed head of four" :
					   !strcmp(name, "unit-8h") ? "likely one failed head of eight" :
								      "likely two failed heads of five";
			snprintf(what, sizeof(what), "%s: the head map is said in words (%s)", name, want);
			CHECK(what, strstr(pat, want) != NULL);
		}
	}
	fclose(f);
	/* Stopped in the middle of pass 1 and resumed: the bands skipped before the stop are holes
	 * the edge pass reads from the sides, not areas to meet again. */
	{
		struct result rs;
		rescue_drive("resume", "size=128M heads=4 dead=1 zones=64M:512K,64M:384K", 1, 300, &rs);
		printf("resumed after a stop in pass 1 at byte %llu: %llu bands, %llu bad reads until all readable was read\n",
		       (unsigned long long)rs.stopped_at, (unsigned long long)rs.bands, (unsigned long long)rs.done_bad);
		CHECK("a rescue stopped in pass 1 and resumed ends at the truth, still under 1 bad read a band",
		      rs.stopped_in_copy && rs.rc == 0 && rs.exact && rs.data_ok && rs.done_bad < rs.bands);
	}
	CHECK("the C model and the nbdkit model's geometry give the same bad ranges for every spec",
	      specs > 0 && agree == specs);
	CHECK("several geometries rescued", rescued >= (getenv("DEADHEAD_ONLY") ? 1 : 4));
	return CHECK_DONE();
}
