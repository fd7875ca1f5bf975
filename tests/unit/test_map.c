/* The chunked rescue map (cow/map.c: packed extents in 4 KiB pages) against a per-sector reference model: random updates that
 * build and collapse many chunks, walks, indexes, totals, loads, the extent limit, memory bounds
 * and allocation failures that must leave the map as it was. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../lib/check.h"
#include "../../cow/cow.h"
#include "../../lib/errors.h"
#include "../lib/rng.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) { return xorshift64(&rng); }

/* An allocator that can be told to fail after a number of successful calls. */
static long allocs_left = -1;
static void *t_alloc(size_t n)
{
	if (allocs_left == 0)
		return NULL;
	if (allocs_left > 0)
		allocs_left--;
	return malloc(n);
}
static void t_free(void *p) { free(p); }
static uint64_t t_now(void) { return 0; }
static void t_random(void *b, size_t n) { memset(b, 7, n); }
static const struct cow_env env = { t_alloc, t_free, t_now, t_random };

static const char STATES[] = "?*/-+";

struct model { uint64_t sectors; uint8_t *state, *written; };

static void model_set(struct model *md, uint64_t a, uint64_t n, uint8_t st, int w)
{
	if (st)
		memset(md->state + a, st, n);
	if (w >= 0)
		memset(md->written + a, w, n);
}

/* Full check of the map against the model: the walk tiles the source, neighbours differ,
 * every sector matches, and indexes agree between lookup, get and the walk. */
static const char *verify(const struct cow_map *m, const struct model *md)
{
	uint64_t next = 0, i = 0;
	const struct cow_extent *prev = NULL;
	for (const struct cow_extent *x = cow_map_get(m, 0); x; prev = x, x = cow_map_next(m, x), i++) {
		if (x->start != next || !x->count)
			return "the walk does not tile the source";
		if (prev && prev->state == x->state && prev->written == x->written)
			return "equal neighbours were not merged";
		if (cow_map_get(m, i) != x)
			return "cow_map_get(i) is not the i-th extent of the walk";
		for (uint64_t s = x->start; s < x->start + x->count; s++)
			if (md->state[s] != x->state || md->written[s] != x->written)
				return "a sector differs from the model";
		if (cow_map_lookup(m, x->start) != i || cow_map_lookup(m, x->start + x->count - 1) != i)
			return "cow_map_lookup disagrees with the walk";
		if (cow_map_at(m, x->start + x->count / 2) != x)
			return "cow_map_at disagrees with the walk";
		next += x->count;
	}
	if (next != m->sectors)
		return "the walk does not end at the last sector";
	if (i != m->n)
		return "m->n is not the number of extents walked";
	if (cow_map_get(m, m->n))
		return "cow_map_get past the end is not NULL";
	return NULL;
}

static int spot_check(const struct cow_map *m, const struct model *md, int k)
{
	for (int j = 0; j < k; j++) {
		uint64_t s = rnd() % md->sectors;
		const struct cow_extent *x = cow_map_at(m, s);
		if (x->start > s || s - x->start >= x->count || x->state != md->state[s] || x->written != md->written[s])
			return 0;
	}
	return 1;
}

static void random_op(struct cow_map *m, struct model *md, uint64_t maxlen, int *rc)
{
	uint64_t a = rnd() % md->sectors, n = 1 + rnd() % maxlen;
	if (n > md->sectors - a)
		n = md->sectors - a;
	uint8_t st = rnd() % 5 ? (uint8_t)STATES[rnd() % 5] : 0;
	int w = rnd() % 4 ? -1 : (int)(rnd() % 2);
	*rc = cow_map_set(m, a, n, st, w);
	if (*rc == 0)
		model_set(md, a, n, st, w);
}

static void test_random_against_model(void)
{
	struct model md = { 300000, NULL, NULL };
	md.state = malloc(md.sectors);
	md.written = calloc(md.sectors, 1);
	memset(md.state, '?', md.sectors);
	struct cow_map m;
	CHECK("init", cow_map_init(&m, &env, md.sectors, 1 << 20) == 0 && m.n == 1);
	const char *why = verify(&m, &md);
	CHECK("a new map is one non-tried extent", !why);

	/* Growth: short scattered updates build tens of thousands of extents over many chunks. */
	int ok = 1, rc = 0;
	const char *bad = NULL;
	uint64_t most = 0;
	for (int op = 0; op < 60000 && ok; op++) {
		random_op(&m, &md, 4, &rc);
		ok = rc == 0 && spot_check(&m, &md, 4);
		if (ok && op % 10000 == 9999 && (bad = verify(&m, &md)))
			ok = 0;
		most = m.n > most ? m.n : most;
	}
	if (bad)
		printf("  %s\n", bad);
	CHECK("60000 short updates match the model", ok && !(bad = verify(&m, &md)));
	printf("  %llu extents at most\n", (unsigned long long)most);
	CHECK("the growth phase built a map of many chunks (> 20000 extents)", most > 20000);

	/* Mixed: long ranges collapse chunks, short ones split them again. */
	for (int op = 0; op < 20000 && ok; op++) {
		random_op(&m, &md, op % 50 == 0 ? 200000 : op % 7 == 0 ? 3000 : 8, &rc);
		ok = rc == 0 && spot_check(&m, &md, 4);
		if (ok && op % 2000 == 1999 && (bad = verify(&m, &md)))
			ok = 0;
	}
	if (bad)
		printf("  %s\n", bad);
	CHECK("20000 mixed long and short updates match the model", ok && !(bad = verify(&m, &md)));

	/* State-only and written-only changes over many chunks merge only where neighbours become equal. */
	cow_map_set(&m, 0, md.sectors, 0, 0);
	model_set(&md, 0, md.sectors, 0, 0);
	for (uint64_t s = 0; s < md.sectors; s += 2) {
		cow_map_set(&m, s, 1, 0, 1);
		model_set(&md, s, 1, 0, 1);
	}
	rc = cow_map_set(&m, 1000, md.sectors - 2000, '-', -1);
	model_set(&md, 1000, md.sectors - 2000, '-', -1);
	CHECK("a state-only change over alternating written flags keeps them apart",
	      rc == 0 && !(bad = verify(&m, &md)) && m.n > md.sectors / 2);
	rc = cow_map_set(&m, 1001, md.sectors - 2002, 0, 0);
	model_set(&md, 1001, md.sectors - 2002, 0, 0);
	CHECK("clearing written over it collapses thousands of chunks", rc == 0 && !(bad = verify(&m, &md)) && m.n < 4000);

	struct cow_totals t;
	cow_map_totals(&m, &t);
	struct cow_totals want;
	memset(&want, 0, sizeof(want));
	for (uint64_t s = 0; s < md.sectors; s++) {
		int k = cow_state_index(md.state[s]);
		want.sectors[k]++;
		if (!s || md.state[s - 1] != md.state[s])
			want.areas[k]++;
		want.written += md.written[s];
	}
	CHECK("totals (sectors, areas, written) match the model", !memcmp(&t, &want, sizeof(t)));

	/* Everything back to one state: a single extent again. */
	rc = cow_map_set(&m, 0, md.sectors, '+', 0);
	model_set(&md, 0, md.sectors, '+', 0);
	CHECK("one update over the whole map leaves one extent", rc == 0 && m.n == 1 && !verify(&m, &md));
	cow_map_free(&m);
	free(md.state);
	free(md.written);
}

/* Worst case for memory: every other sector its own extent, then half of them merged away in
 * a pattern that leaves chunks as empty as possible. */
static void test_memory_bound(void)
{
	uint64_t sectors = 2200000, s, bytes;
	struct cow_map m;
	cow_map_init(&m, &env, sectors, 1 << 20);
	int ok = 1;
	for (s = 1; s + 1 < sectors; s += 2) {
		int rc = cow_map_set(&m, s, 1, '+', -1);
		if (rc == -E_NOSPC)
			break;
		ok &= rc == 0;
	}
	CHECK("the map stops at its 1M-extent limit with -E_NOSPC", ok && m.n + 2 > (1u << 20) && m.n <= (1u << 20));
	bytes = cow_map_bytes(&m);
	printf("  %llu extents in %.1f MiB (%.1f bytes per extent)\n", (unsigned long long)m.n,
	       (double)bytes / 1048576.0, (double)bytes / (double)m.n);
	CHECK("1M extents fit in 64 MiB", bytes <= 64ull << 20);
	/* Merge away every second pair, spread over all chunks. */
	for (uint64_t k = 1; k < s; k += 4)
		cow_map_set(&m, k, 2, '?', -1);
	CHECK("a full map still takes updates that split no extent (merges)", m.n < (1u << 20) / 2 + 10);
	bytes = cow_map_bytes(&m);
	printf("  after merging: %llu extents in %.1f MiB (%.1f bytes per extent)\n", (unsigned long long)m.n,
	       (double)bytes / 1048576.0, (double)bytes / (double)m.n);
	CHECK("chunks stay at least half full (<= 17 bytes per extent)", bytes <= 17 * m.n + 64 * 1024);
	cow_map_free(&m);
}

/* A small map checked in full after every update: each split, shift, merge and evening out of
 * its few chunks is seen at once, indexes included. */
static void test_every_step(void)
{
	struct model md = { 6000, NULL, NULL };
	md.state = malloc(md.sectors);
	md.written = calloc(md.sectors, 1);
	memset(md.state, '?', md.sectors);
	struct cow_map m;
	cow_map_init(&m, &env, md.sectors, 1 << 20);
	int ok = 1, rc = 0;
	const char *bad = NULL;
	uint64_t most = 0;
	for (int op = 0; op < 12000 && ok; op++) {
		/* Alternately grow to thousands of extents and shrink with long ranges. */
		random_op(&m, &md, (op / 3000) % 2 == 0 ? 1 : op % 10 ? 40 : 1500, &rc);
		ok = rc == 0 && !(bad = verify(&m, &md));
		most = m.n > most ? m.n : most;
	}
	if (bad)
		printf("  %s\n", bad);
	printf("  up to %llu extents\n", (unsigned long long)most);
	CHECK("12000 updates of a small map, each checked in full", ok && most > 2000);
	cow_map_free(&m);
	free(md.state);
	free(md.written);
}

static void test_limit(void)
{
	struct cow_map m;
	struct model md = { 10000, NULL, NULL };
	md.state = malloc(md.sectors);
	md.written = calloc(md.sectors, 1);
	memset(md.state, '?', md.sectors);
	cow_map_init(&m, &env, md.sectors, 1000);
	int rc = 0, refused = 0, ok = 1;
	for (int op = 0; op < 20000 && ok; op++) {
		random_op(&m, &md, 3, &rc);
		if (rc == -E_NOSPC) {
			refused++;
			ok = m.n + 2 > 1000;
		} else {
			ok = rc == 0;
		}
		ok = ok && m.n <= 1000;
	}
	const char *bad = verify(&m, &md);
	CHECK("at the limit updates are refused with -E_NOSPC and change nothing", ok && refused > 0 && !bad);
	CHECK("bad arguments are refused", cow_map_set(&m, md.sectors, 1, '+', -1) == -E_RANGE &&
	      cow_map_set(&m, 5, md.sectors, '+', -1) == -E_RANGE && cow_map_set(&m, 5, 1, 'x', -1) == -E_INVAL &&
	      cow_map_set(&m, 5, 0, '+', -1) == 0 && !verify(&m, &md));
	cow_map_free(&m);
	free(md.state);
	free(md.written);
}

struct recs { struct cow_extent *e; };
static void recs_get(void *ctx, uint64_t i, struct cow_extent *e)
{
	*e = ((struct recs *)ctx)->e[i];
}

static void test_load(void)
{
	struct model md = { 50000, NULL, NULL };
	md.state = malloc(md.sectors);
	md.written = calloc(md.sectors, 1);
	memset(md.state, '?', md.sectors);
	struct cow_map a, b;
	cow_map_init(&a, &env, md.sectors, 100000);
	cow_map_init(&b, &env, md.sectors, 100000);
	int rc;
	for (int op = 0; op < 8000; op++)
		random_op(&a, &md, 6, &rc);
	struct cow_extent *e = malloc((a.n + 1) * sizeof(*e));
	uint64_t n = 0;
	for (const struct cow_extent *x = cow_map_get(&a, 0); x; x = cow_map_next(&a, x))
		e[n++] = *x;
	struct recs r = { e };
	CHECK("a walk's extents load into another map", cow_map_load(&b, n, recs_get, &r) == 0 && b.n == n &&
	      !verify(&b, &md));
	/* After a load, updates keep working (chunks were filled to leave room). */
	int ok = 1;
	for (int op = 0; op < 3000 && ok; op++) {
		random_op(&b, &md, 6, &rc);
		ok = rc == 0;
	}
	CHECK("updates after a load match the model", ok && !verify(&b, &md));

	/* Equal neighbours in the input are merged. */
	struct cow_extent two[2] = { { 0, 100, '+', 0 }, { 100, md.sectors - 100, '+', 0 } };
	r.e = two;
	CHECK("equal neighbours in a load are merged", cow_map_load(&a, 2, recs_get, &r) == 0 && a.n == 1);
	/* Refusals leave the map as it was. */
	uint64_t before = b.n;
	struct cow_extent gap[2] = { { 0, 100, '+', 0 }, { 101, md.sectors - 101, '?', 0 } };
	struct cow_extent shortm[1] = { { 0, 100, '+', 0 } };
	struct cow_extent badst[2] = { { 0, 100, 'x', 0 }, { 100, md.sectors - 100, '?', 0 } };
	struct cow_extent badw[2] = { { 0, 100, '+', 2 }, { 100, md.sectors - 100, '?', 0 } };
	struct cow_extent over[2] = { { 0, 100, '+', 0 }, { 100, md.sectors, '?', 0 } };
	int refusals = 0;
	struct cow_extent *cases[] = { gap, shortm, badst, badw, over };
	uint64_t counts[] = { 2, 1, 2, 2, 2 };
	for (int i = 0; i < 5; i++) {
		r.e = cases[i];
		refusals += cow_map_load(&b, counts[i], recs_get, &r) == -E_CORRUPT;
	}
	r.e = e;
	refusals += cow_map_load(&b, 0, recs_get, &r) == -E_CORRUPT;
	b.max = n - 1;
	refusals += cow_map_load(&b, n, recs_get, &r) == -E_NOSPC;
	b.max = 100000;
	CHECK("gaps, overlaps, short maps, bad states and flags, too many extents are refused", refusals == 7);
	CHECK("a refused load leaves the map as it was", b.n == before && !verify(&b, &md));
	free(e);
	cow_map_free(&a);
	cow_map_free(&b);
	free(md.state);
	free(md.written);
}

/* Out of memory at every possible point of an update: -E_NOMEM and the map unchanged. */
static void test_alloc_failures(void)
{
	struct model md = { 100000, NULL, NULL };
	md.state = malloc(md.sectors);
	md.written = calloc(md.sectors, 1);
	memset(md.state, '?', md.sectors);
	struct cow_map m;
	cow_map_init(&m, &env, md.sectors, 1 << 20);
	int ok = 1, nomem = 0, rc;
	for (int op = 0; op < 40000 && ok; op++) {
		allocs_left = rnd() % 3 == 0 ? (long)(rnd() % 3) : -1;
		random_op(&m, &md, 5, &rc);
		allocs_left = -1;
		nomem += rc == -E_NOMEM;
		ok = (rc == 0 || rc == -E_NOMEM) && spot_check(&m, &md, 2);
	}
	printf("  %d updates failed for memory\n", nomem);
	CHECK("updates that run out of memory fail cleanly and change nothing", ok && nomem > 0 && !verify(&m, &md));
	allocs_left = 0;
	struct cow_map x;
	CHECK("init without memory fails", cow_map_init(&x, &env, 10, 10) == -E_NOMEM);
	allocs_left = -1;
	cow_map_free(&m);
	free(md.state);
	free(md.written);
}

int main(void)
{
	test_random_against_model();
	test_every_step();
	test_limit();
	test_load();
	test_alloc_failures();
	test_memory_bound();
	return CHECK_DONE();
}
