/* The rescue algorithm over a cow's map: which block to read next and what a failure means.
 * Every read goes through cow_rescue_read, so the map says finished only for stored data. */
#include "rescue.h"
#include "../lib/args.h"
#include "../lib/errors.h"

#define MIB (1024ull * 1024)
#define PROBE_FIRST 8        /* consecutive failures before checking the drive still answers */
#define UNDO_MAX 64          /* and the most: a bad zone costs a probe per 64 failed reads */
#define LINEAR_STOP_EVERY 128   /* single-block bursts check for a stop this often */
#define TRAIL_MAX_BLOCKS 4096   /* a band's end is searched backwards this far at most */
#define DEFECT_BLOCKS 16        /* a defect this short is not a band: probed past when one is met off the pattern */
#define VERIFY_EVERY 64         /* bands skipped on a learnt length between two measured ends */
#define CLEAN_GROW 256          /* two-cluster reads that read well before pass 1's reads grow further */
#define DOUBT_FAILS 5           /* failed reads each side of an area longer than its neighbours */

static const char *const phase_names[] = { "copying", "trimming", "scraping", "retrying", "finished" };

const char *rescue_phase_name(enum rescue_phase p)
{
	return p <= RP_DONE ? phase_names[p] : "?";
}

void rescue_opts_default(struct rescue_opts *o)
{
	/* ddrescue's defaults for a failing hard disk, plus one retry pass and a deadline short
	 * enough that a hanging zone costs seconds. */
	memset(o, 0, sizeof(*o));
	o->cluster = 64 * 1024;
	o->max_read = 1024 * 1024;
	o->skip_min = 64 * 1024;
	o->retries = 1;
	o->timeout_ms = 5000;
	o->passes = RESCUE_PASS_ALL;
	o->commit_ms = 5000;
}

/* ---- domains ------------------------------------------------------------------------------ */

static void say(char *why, size_t n, const char *fmt, const char *a)
{
	if (why && n)
		fmt_snprintf(why, n, fmt, a);
}

void rescue_domain_init(struct rescue_domain *d, const struct cow_env *env)
{
	memset(d, 0, sizeof(*d));
	d->env = env;
}

void rescue_domain_free(struct rescue_domain *d)
{
	if (d->range)
		d->env->free(d->range);
	rescue_domain_init(d, d->env);
}

static int domain_reserve(struct rescue_domain *d, uint64_t want)
{
	if (want <= d->cap)
		return 0;
	if (want > UINT32_MAX / 2)
		return -E_NOMEM;
	uint32_t cap = d->cap ? d->cap : 64;
	while (cap < want)
		cap *= 2;
	struct rescue_range *r = d->env->alloc((size_t)cap * sizeof(*r));
	if (!r)
		return -E_NOMEM;
	if (d->n)
		memcpy(r, d->range, d->n * sizeof(*r));
	if (d->range)
		d->env->free(d->range);
	d->range = r;
	d->cap = cap;
	return 0;
}

int rescue_domain_add(struct rescue_domain *d, uint64_t start, uint64_t count)
{
	if (d->ngroups == RESCUE_MAX_GROUPS)
		return -E_NOSPC;
	if (!count)
		return 0;
	int rc = domain_reserve(d, (uint64_t)d->n + 1);
	if (rc == 0)
		d->range[d->n++] = (struct rescue_range){ start, count };
	return rc;
}

/* Heapsort by start: no recursion, no extra memory, n log n for a volume's many runs. */
static void sift(struct rescue_range *v, size_t i, size_t n)
{
	for (size_t c; (c = 2 * i + 1) < n; i = c) {
		if (c + 1 < n && v[c + 1].start > v[c].start)
			c++;
		if (v[i].start >= v[c].start)
			return;
		struct rescue_range t = v[i];
		v[i] = v[c];
		v[c] = t;
	}
}

static void sort_ranges(struct rescue_range *v, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift(v, i, n);
	for (size_t k = n; k-- > 1;) {
		struct rescue_range t = v[0];
		v[0] = v[k];
		v[k] = t;
		sift(v, 0, k);
	}
}

/* The ranges of [from, n) minus group g's (both sorted and disjoint), written from `from` on;
 * returns the new end. A range can split, so the result goes through a scratch copy. */
static int subtract_group(struct rescue_domain *d, uint32_t from, uint32_t g, uint32_t *end)
{
	uint32_t g0 = g ? d->group_end[g - 1] : 0, g1 = d->group_end[g], n = d->n - from;
	struct rescue_range *in = d->env->alloc((size_t)n * sizeof(*in) + 1);
	if (!in)
		return -E_NOMEM;
	memcpy(in, d->range + from, (size_t)n * sizeof(*in));
	uint32_t out = from, j = g0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t s = in[i].start, e = s + in[i].count;
		while (j < g1 && d->range[j].start + d->range[j].count <= s)
			j++;
		for (uint32_t k = j; k < g1 && d->range[k].start < e && s < e; k++) {
			struct rescue_range x = d->range[k];   /* a copy: reserving may move the array */
			if (x.start > s) {
				if (domain_reserve(d, (uint64_t)out + 1 + (n - i)) < 0) {
					d->env->free(in);
					return -E_NOMEM;
				}
				d->range[out++] = (struct rescue_range){ s, x.start - s };
			}
			s = x.start + x.count > s ? x.start + x.count : s;
		}
		if (s < e) {
			if (domain_reserve(d, (uint64_t)out + 1 + (n - i)) < 0) {
				d->env->free(in);
				return -E_NOMEM;
			}
			d->range[out++] = (struct rescue_range){ s, e - s };
		}
	}
	d->env->free(in);
	*end = out;
	return 0;
}

int rescue_domain_end_group(struct rescue_domain *d)
{
	uint32_t from = d->ngroups ? d->group_end[d->ngroups - 1] : 0;
	if (d->ngroups == RESCUE_MAX_GROUPS)
		return -E_NOSPC;
	if (d->n == from)
		return 0;   /* an empty group is no group */
	sort_ranges(d->range + from, d->n - from);
	uint32_t m = from;
	for (uint32_t i = from + 1; i < d->n; i++) {
		struct rescue_range *x = &d->range[m];
		if (d->range[i].start <= x->start + x->count) {
			uint64_t e = d->range[i].start + d->range[i].count;
			if (e > x->start + x->count)
				x->count = e - x->start;
		} else {
			d->range[++m] = d->range[i];
		}
	}
	d->n = m + 1;
	/* What an earlier group holds is done by then: groups stay disjoint, so the totals and the
	 * work of each are its own. */
	for (uint32_t g = 0; g < d->ngroups; g++) {
		uint32_t end;
		int rc = subtract_group(d, from, g, &end);
		if (rc < 0)
			return rc;
		d->n = end;
	}
	if (d->n > from)
		d->group_end[d->ngroups++] = d->n;
	return 0;
}

int rescue_domain_copy(struct rescue_domain *dst, const struct rescue_domain *src)
{
	rescue_domain_init(dst, src->env);
	int rc = domain_reserve(dst, src->n);
	if (rc < 0)
		return rc;
	if (src->n)
		memcpy(dst->range, src->range, src->n * sizeof(*src->range));
	dst->n = src->n;
	dst->ngroups = src->ngroups;
	memcpy(dst->group_end, src->group_end, sizeof(dst->group_end));
	return 0;
}

uint64_t rescue_domain_sectors(const struct rescue_domain *d)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < d->n; i++)
		n += d->range[i].count;
	return n;
}

int rescue_parse_domain(struct rescue_domain *d, const char *spec, uint64_t sectors, char *why, size_t n)
{
	rescue_domain_free(d);
	if (!strcmp(spec, "all"))
		return 0;
	if (strncmp(spec, "lba:", 4)) {
		say(why, n, "unknown domain '%s' (all, lba:<start>+<count>[,...])", spec);
		return -E_USAGE;
	}
	for (const char *p = spec + 4; *p;) {
		char item[48];
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 || len >= sizeof(item))
			goto bad;
		memcpy(item, p, len);
		item[len] = 0;
		char *plus = strchr(item, '+');
		if (!plus)
			goto bad;
		*plus = 0;
		uint64_t s, c;
		if (args_size_in(item, 1, &s) < 0 || args_size_in(plus + 1, 1, &c) < 0 || c == 0 ||
		    s >= sectors || c > sectors - s)
			goto bad;
		int rc = rescue_domain_add(d, s, c);
		if (rc < 0) {
			rescue_domain_free(d);
			say(why, n, "domain: %s", err_str(rc));
			return rc;
		}
		p += len + (end ? 1 : 0);
	}
	if (!d->n)
		goto bad;
	int rc = rescue_domain_end_group(d);
	if (rc < 0) {
		rescue_domain_free(d);
		say(why, n, "domain: %s", err_str(rc));
	}
	return rc;
bad:
	rescue_domain_free(d);
	say(why, n, "bad domain '%s': lba:<start>+<count>[,...] within the source", spec);
	return -E_USAGE;
}

/* ---- walking the map inside the domain ---------------------------------------------------- */

static void extent_at(const struct cow_map *m, uint64_t s, uint64_t *a, uint64_t *b, uint8_t *st)
{
	const struct cow_extent *x = cow_map_at(m, s);
	*a = x->start;
	*b = x->start + x->count;
	*st = x->state;
}

/* The domain range holding sector s, or the nearest one in direction dir, among the current
 * group's ranges [dlo, dhi) (sorted: a binary search). */
static int domain_range(const struct rescue *r, uint64_t s, int dir, uint64_t *lo, uint64_t *hi)
{
	const struct rescue_domain *d = r->opt.domain;
	if (!d || !d->n) {
		*lo = 0;
		*hi = r->sectors;
		return s < r->sectors;
	}
	/* i: the first range ending after s. */
	uint32_t a = r->dlo, b = r->dhi;
	while (a < b) {
		uint32_t m = a + (b - a) / 2;
		if (d->range[m].start + d->range[m].count > s)
			b = m;
		else
			a = m + 1;
	}
	uint32_t i = a;
	if (dir < 0 && (i == r->dhi || d->range[i].start > s)) {
		if (i == r->dlo)
			return 0;
		i--;   /* the last one starting at or before s */
	}
	if (i == r->dhi)
		return 0;
	*lo = d->range[i].start;
	*hi = d->range[i].start + d->range[i].count;
	return 1;
}

/* Forwards: the first run of `state` starting at or after sector p. Backwards: the last run
 * ending at or before p. Runs are clipped to the domain. */
static int find_run(const struct rescue *r, uint64_t p, int dir, uint8_t state, uint64_t *a, uint64_t *b)
{
	const struct cow_map *m = cow_get_map(r->cow);
	uint64_t lo, hi, xa, xb;
	uint8_t st;
	if (dir > 0) {
		while (p < r->sectors && domain_range(r, p, 1, &lo, &hi)) {
			if (p < lo)
				p = lo;
			extent_at(m, p, &xa, &xb, &st);
			if (xb > hi)
				xb = hi;
			if (st == state) {
				*a = p;
				*b = xb;
				return 1;
			}
			p = xb;
		}
		return 0;
	}
	while (p > 0 && domain_range(r, p - 1, -1, &lo, &hi)) {
		uint64_t q = p - 1 < hi ? p - 1 : hi - 1;
		extent_at(m, q, &xa, &xb, &st);
		if (xa < lo)
			xa = lo;
		if (st == state) {
			*a = xa;
			*b = q + 1;
			return 1;
		}
		p = xa;
	}
	return 0;
}

void rescue_domain_totals(const struct rescue *r, uint64_t bytes[5], uint64_t areas[5])
{
	const struct cow_map *m = cow_get_map(r->cow);
	const struct rescue_domain *d = r->opt.domain;
	memset(bytes, 0, 5 * sizeof(bytes[0]));
	memset(areas, 0, 5 * sizeof(areas[0]));
	uint32_t nr = d && d->n ? d->n : 1;
	uint64_t last_end = UINT64_MAX;
	uint8_t prev = 0;
	for (uint32_t k = 0; k < nr; k++) {
		uint64_t p = d && d->n ? d->range[k].start : 0;
		uint64_t hi = d && d->n ? p + d->range[k].count : r->sectors, xa, xb;
		uint8_t st;
		if (p != last_end)
			prev = 0;   /* an area ends where the domain has a gap */
		while (p < hi) {
			extent_at(m, p, &xa, &xb, &st);
			if (xb > hi)
				xb = hi;
			int i = cow_state_index(st);
			if (i >= 0) {
				bytes[i] += (xb - p) * r->lsize;
				areas[i] += st != prev;
			}
			prev = st;
			p = xb;
		}
		last_end = hi;
	}
}

/* ---- reads, failures and the dead-drive probe --------------------------------------------- */

static int is_read_failure(int rc)
{
	return rc == -E_MEDIUM || rc == -E_TIMEOUT || rc == -E_IO || rc == -E_DEVICE;
}

static int commit_now(struct rescue *r)
{
	r->last_commit_us = r->env->now_us();
	return cow_sync(r->cow);
}

static int maybe_commit(struct rescue *r)
{
	if (r->env->now_us() - r->last_commit_us < r->opt.commit_ms * 1000)
		return 0;
	return commit_now(r);
}

/* The source read, then the cow's write. In the copy passes (r->overlap) the write is left
 * running while the next block is read, in the other buffer; cloning, the target's write runs
 * beside the cow's instead. */
static int read_and_store(struct rescue *r, uint64_t off, uint64_t len, uint64_t *bad)
{
	int rc;
	if (!r->hooks.target) {
		rc = cow_read_source(r->cow, off, len, r->buf, bad);
		int erc = cow_store_end(r->cow);   /* the previous block's */
		if (erc < 0)
			return erc;
		if (rc < 0 || (rc = cow_store_begin(r->cow, off, len, r->buf)) < 0)
			return rc;
		uint8_t *t = r->buf;
		r->buf = r->buf2;
		r->buf2 = t;
		return r->overlap ? 0 : cow_store_end(r->cow);
	}
	rc = cow_read_source(r->cow, off, len, r->buf, bad);
	if (rc < 0)
		return rc;
	struct cow_batch tb;
	cow_batch_init(&tb);
	cow_batch_add(&tb, r->hooks.target, COW_IO_WRITE, off, (uint32_t)len, r->buf);
	rc = cow_store_rescued(r->cow, off, len, r->buf);
	if (rc < 0 && rc != -E_NOSPC)
		rc = -E_COWIO;   /* never a source error */
	int trc = cow_batch_wait(&tb, NULL);
	if (trc < 0 && !r->target_rc) {
		r->target_rc = trc;
		r->target_off = off;
	}
	if (rc == 0 && trc < 0)
		rc = -E_TARGET;
	if (rc == 0)
		r->st.clone_bytes += len;
	return rc;
}

/* The bookkeeping of one source read that took from t0 until now: counters, the rate, the
 * probe block. Returns rc, or 1 for a good read slower than min-rate. */
static int count_read(struct rescue *r, uint64_t off, uint64_t len, int rc, uint64_t t0)
{
	uint64_t t1 = r->env->now_us();
	r->st.reads++;
	r->st.elapsed_us = t1 - r->st.start_us;
	if (rc < 0) {
		if (is_read_failure(rc))
			r->st.failed_reads++;
		return rc;
	}
	r->st.bytes_ok += len;
	r->st.last_good_us = t1;
	r->nundo = r->nfail = 0;
	r->probe_after = PROBE_FIRST;
	r->probe_off = off;
	r->have_probe = 1;
	r->win_bytes += len;
	if (t1 - r->win_us >= 1000000) {
		r->st.rate = r->win_bytes * 1000000 / (t1 - r->win_us);
		r->win_us = t1;
		r->win_bytes = 0;
	}
	if (r->opt.min_rate && t1 > t0 && len * 1000000 / (t1 - t0) < r->opt.min_rate) {
		r->st.slow_reads++;
		return 1;
	}
	return 0;
}

/* 0: read and stored; 1: stored but slower than min-rate; <0: the read failed (a source
 * failure when is_read_failure(), else fatal for the run). */
static int read_block(struct rescue *r, uint64_t s, uint64_t n)
{
	uint64_t off = s * r->lsize, len = n * r->lsize, bad = 0;
	r->st.pos = off;
	uint64_t t0 = r->env->now_us();
	int rc = read_and_store(r, off, len, &bad);
	return count_read(r, off, len, rc, t0);
}

/* Stores [s, e), read into r->buf already, as one block (the cow's write of the block before
 * ends first; in the copy passes this one's runs on while the next is read). */
static int store_run(struct rescue *r, uint64_t s, uint64_t e)
{
	if (e <= s)
		return 0;
	int rc = cow_store_end(r->cow);
	if (rc < 0 || (rc = cow_store_begin(r->cow, s * r->lsize, (e - s) * r->lsize, r->buf)) < 0)
		return rc;
	uint8_t *t = r->buf;
	r->buf = r->buf2;
	r->buf2 = t;
	return r->overlap ? 0 : cow_store_end(r->cow);
}

/* Stores [from, to), gathered in r->buf from the sector `base` on, as one block. */
static int gather_store(struct rescue *r, uint64_t base, uint64_t from, uint64_t to)
{
	if (to > from && from > base)
		memmove(r->buf, r->buf + (from - base) * r->lsize, (to - from) * r->lsize);
	return store_run(r, from, to);
}

static void event(struct rescue *r, const char *text)
{
	if (r->hooks.event)
		r->hooks.event(r->hooks.ctx, text);
}

/* Sets a state and remembers the old one, so failures can be undone if they turn out to be
 * the drive dying rather than the media. */
static int set_tracked(struct rescue *r, uint64_t s, uint64_t n, uint8_t state, uint8_t old)
{
	if (r->nundo < UNDO_MAX)
		r->undo[r->nundo++] = (struct rescue_undo){ s, n, old };
	return cow_set_state(r->cow, s * r->lsize, n * r->lsize, state);
}

static int undo_failures(struct rescue *r)
{
	while (r->nundo) {
		r->nundo--;
		int rc = cow_set_state(r->cow, r->undo[r->nundo].start * r->lsize,
				       r->undo[r->nundo].count * r->lsize, r->undo[r->nundo].old);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* After a run of failures: re-read a block that read well. If it fails too, the drive is not
 * answering (unplugged, hung, powered down): what this run marked since its last good read is
 * undone and the run pauses with -E_GONE. */
static int after_failure(struct rescue *r)
{
	if (r->nfail < r->probe_after && r->nundo + 2 < UNDO_MAX)
		return 0;
	if (!r->have_probe) {
		r->nundo = r->nfail = 0;   /* nothing known good to compare with: trust the failures */
		return 0;
	}
	uint64_t bad;
	/* Only read: the block is stored already. */
	int rc = cow_read_source(r->cow, r->probe_off, r->block * r->lsize, r->buf, &bad);
	r->st.probes++;
	if (rc == 0) {
		r->nundo = r->nfail = 0;
		r->probe_after = r->probe_after * 2 < UNDO_MAX - 2 ? r->probe_after * 2 : UNDO_MAX - 2;
		return 0;
	}
	if (!is_read_failure(rc) && rc != -E_GONE)
		return rc;
	int urc = undo_failures(r);
	if (urc < 0)
		return urc;
	char text[120];
	fmt_snprintf(text, sizeof(text), "the source stopped answering (a block at byte %llu that read well fails now: %s)",
		     (unsigned long long)r->probe_off, err_str(rc));
	event(r, text);
	return -E_GONE;
}

/* -E_GONE straight from the device undoes this run's failures since the last good read. */
static int fatal(struct rescue *r, int rc)
{
	if (rc == -E_GONE) {
		int urc = undo_failures(r);
		if (urc < 0)
			return urc;
	}
	return rc;
}

static int stop_asked(struct rescue *r)
{
	return r->hooks.should_stop && r->hooks.should_stop(r->hooks.ctx);
}

static void announce(struct rescue *r, enum rescue_phase ph, uint32_t pass, int dir)
{
	char text[80];
	r->st.phase = ph;
	r->st.pass = pass;
	r->st.dir = dir;
	fmt_snprintf(text, sizeof(text), "%s, pass %u (%s)", rescue_phase_name(ph), pass,
		     dir > 0 ? "forwards" : "backwards");
	event(r, text);
}

/* ---- the phases ---------------------------------------------------------------------------- */

/* Reads [s, e). Returns 0 (stored), 1 (stored, but slower than min-rate), 2 (the source failed:
 * the range is now `fail`, from `old`), or a negative code that ends the run. */
static int attempt(struct rescue *r, uint64_t s, uint64_t e, uint8_t fail, uint8_t old)
{
	int rc = read_block(r, s, e - s);
	if (rc >= 0)
		return rc;
	if (!is_read_failure(rc))
		return fatal(r, rc);
	if (fail != old && (rc = set_tracked(r, s, e - s, fail, old)) < 0)
		return rc;
	r->nfail++;
	rc = after_failure(r);
	return rc < 0 ? rc : 2;
}

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return v / a * a;
}

/* The next read in the run [a, b) going in direction dir: `size` sectors (a multiple of
 * `unit`) ending on unit boundaries, clipped to the run. */
static void next_read(uint64_t a, uint64_t b, int dir, uint64_t unit, uint64_t size, uint64_t *s, uint64_t *e)
{
	*s = a;
	*e = b;
	if (dir > 0 && align_down(a, unit) + size < b)
		*e = align_down(a, unit) + size;
	if (dir < 0) {
		uint64_t last = align_down(b - 1, unit);
		uint64_t first = last > size - unit ? last - (size - unit) : 0;
		if (first > a)
			*s = first;
	}
}

static uint8_t state_at(const struct rescue *r, uint64_t s)
{
	return s < r->sectors ? cow_map_at(cow_get_map(r->cow), s)->state : 0;
}

/* A short non-tried gap with failed areas on both sides: what skipping leaves inside a bad
 * zone. Reading it would almost surely fail (one more read of bad media); marked non-trimmed
 * instead, trim and scrape still read every sector of it. */
static int sandwiched(const struct rescue *r, uint64_t a, uint64_t b, uint64_t max)
{
	uint8_t before = a ? state_at(r, a - 1) : 0, after = state_at(r, b);
	return b - a <= max && (before == COW_NONTRIMMED || before == COW_NONSCRAPED || before == COW_BAD) &&
	       (after == COW_NONTRIMMED || after == COW_NONSCRAPED || after == COW_BAD);
}

/* Copy: reads over non-tried areas, a cluster at first and growing to max-read while reads go
 * well. A grown read that fails marks nothing: the same area is read again in clusters, so
 * failures are located as finely as with fixed clusters. With skipping, a failed (or slow)
 * cluster jumps ahead by a skip that doubles while trouble continues and halves after good
 * reads, leaving the skipped area non-tried for the next pass. */
static int copy_reads(struct rescue *r, uint32_t pass, int dir, int skipping)
{
	uint64_t cl = r->opt.cluster / r->lsize, a, b;
	uint64_t skip_min = r->opt.skip_min / r->lsize, skip_max = r->opt.skip_max / r->lsize;
	uint64_t skip = skip_min, p = dir > 0 ? 0 : r->sectors;
	/* Reads grow in the first pass only: later passes work in the gaps next to failures. */
	uint64_t maxr = pass == 1 && r->opt.max_read > r->opt.cluster ? r->opt.max_read / r->lsize : cl;
	uint64_t size = cl, good = 0;
	uint64_t calm = p;   /* reads grow again only beyond the last grown read that failed */
	int rc;
	if (!find_run(r, p, dir, COW_NONTRIED, &a, &b))
		return 0;
	announce(r, RP_COPY, pass, dir);
	while (find_run(r, p, dir, COW_NONTRIED, &a, &b)) {
		if (stop_asked(r))
			return -E_STOPPED;
		if (pass > 1 && sandwiched(r, a, b, 8 * cl)) {
			if ((rc = cow_set_state(r->cow, a * r->lsize, (b - a) * r->lsize, COW_NONTRIMMED)) < 0)
				return rc;
			p = dir > 0 ? b : a;
			continue;
		}
		uint64_t s, e;
		next_read(a, b, dir, cl, size, &s, &e);
		if (e - s > cl) {
			rc = read_block(r, s, e - s);
			if (rc < 0 && !is_read_failure(rc))
				return fatal(r, rc);
			if (rc < 0) {
				size = cl;
				good = 0;
				calm = dir > 0 ? e : s;
				r->nfail++;
				if ((rc = after_failure(r)) < 0)
					return rc;
				continue;   /* the same place again, a cluster at a time */
			}
		} else if ((rc = attempt(r, s, e, COW_NONTRIMMED, COW_NONTRIED)) < 0) {
			return rc;
		}
		p = dir > 0 ? e : s;
		if (rc == 0 && ++good >= 2 && (dir > 0 ? p >= calm : p <= calm)) {
			size = size * 2 < maxr ? size * 2 : maxr;
		} else if (rc) {
			size = cl;
			good = 0;
		}
		if (skipping && rc) {
			if (dir > 0)
				p = r->sectors - p > skip ? p + skip : r->sectors;
			else
				p = p > skip ? p - skip : 0;
			skip = skip * 2 < skip_max ? skip * 2 : skip_max;
		} else if (!rc) {
			skip = skip / 2 > skip_min ? skip / 2 : skip_min;
		}
		if ((rc = maybe_commit(r)) < 0)
			return rc;
	}
	return 0;
}

static int sweep(struct rescue *r);

/* The copy's reads are positional, so the map may lag one block behind them: the cow's write
 * of a block runs while the next is read. Trim and scrape choose by the map, and do not. */
static int copy_pass(struct rescue *r, uint32_t pass, int dir, int skipping)
{
	r->overlap = 1;
	int rc = pass == 1 && dir > 0 ? sweep(r) : copy_reads(r, pass, dir, skipping);
	r->overlap = 0;
	int erc = cow_store_end(r->cow);
	return erc < 0 ? erc : rc;   /* a failing cow outranks the rest */
}

/* ---- dead heads: bands, the skip they teach, the head map ---------------------------------- */


/* Sizes for the words of rescue.md: "8.0 MiB", "768 KiB". */
static void fmt_bytes(char *out, size_t n, uint64_t b)
{
	if (b >= MIB)
		fmt_snprintf(out, n, "%llu.%llu MiB", (unsigned long long)(b / MIB),
			     (unsigned long long)(b % MIB * 10 / MIB));
	else
		fmt_snprintf(out, n, "%llu KiB", (unsigned long long)(b / 1024));
}

static const char *count_word(uint64_t n)
{
	static const char *const w[] = { "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
					 "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen" };
	return n <= 16 ? w[n] : "many";
}

static void learn_push(struct rescue_learn *l, uint64_t start, uint64_t len, uint8_t how)
{
	uint32_t i = 0;
	while (how && i < l->nlens && l->lens[i] != len)
		i++;
	if (how && i == l->nlens && l->nlens < 16)
		l->lens[l->nlens++] = len;   /* lengths read or predicted, not assumed */
	if (l->n == RESCUE_HIST) {
		memmove(l->h, l->h + 1, (RESCUE_HIST - 1) * sizeof(l->h[0]));
		l->n--;
	}
	l->h[l->n++] = (struct rescue_band){ start, len, how };
}

/* The distance from the band before to this one equals one of the two before it: a regular
 * layout (one dead head: one distance; two: two alternating). */
static int learn_regular(const struct rescue_learn *l, uint64_t start)
{
	if (l->n < 3)
		return 0;
	uint64_t d = start - l->h[l->n - 1].start;
	return d == l->h[l->n - 1].start - l->h[l->n - 2].start ||
	       (l->n >= 4 && d == l->h[l->n - 2].start - l->h[l->n - 3].start);
}

/* The pattern: k bands a period (k = 1 or 2), the last 2k+1 starts and lengths repeating. */
static int learn_infer(struct rescue *r)
{
	struct rescue_learn *l = &r->learn;
	for (uint32_t k = 1; k <= 2; k++) {
		uint32_t need = 2 * k + 1;
		if (l->n < need)
			continue;
		const struct rescue_band *h = l->h + l->n - need;
		uint64_t period = h[k].start - h[0].start;
		int ok = period > 0;
		for (uint32_t i = k; i < need && ok; i++)
			ok = h[i].start - h[i - k].start == period && h[i].len == h[i - k].len && h[i].len &&
			     h[i].len < period;
		if (k == 2 && ok)
			ok = h[1].start - h[0].start != h[2].start - h[1].start || h[1].len != h[0].len;  /* not k=1 */
		if (!ok)
			continue;
		int was = l->active && l->period == period && l->k == k;
		l->active = 1;
		l->k = k;
		l->period = period;
		l->next_start = l->h[l->n - k].start + period;
		l->next_len = l->h[l->n - k].len;
		if (!was) {
			char per[24], len[24], text[160];
			uint64_t blen = l->next_len;
			fmt_bytes(per, sizeof(per), period * r->lsize);
			fmt_bytes(len, sizeof(len), blen * r->lsize);
			/* Heads: the period over one band's length (the band a head reads per cycle). */
			if (period % blen == 0 && period / blen <= 16)
				fmt_snprintf(r->st.pattern, sizeof(r->st.pattern),
					     "bad areas repeat every %s, %s long: likely %s failed head%s of %s (band %llu of each cycle from LBA 0)",
					     per, len, count_word(k), k > 1 ? "s" : "", count_word(period / blen),
					     (unsigned long long)(l->next_start % period / blen));
			else
				fmt_snprintf(r->st.pattern, sizeof(r->st.pattern),
					     "bad areas repeat every %s, %s long (%s a cycle): likely a failed head", per, len,
					     k == 1 ? "one" : "two");
			fmt_snprintf(text, sizeof(text), "%s; the next ones are skipped unread and read last", r->st.pattern);
			event(r, text);
		}
		return 1;
	}
	return 0;
}

static void learn_broken(struct rescue *r, uint64_t at)
{
	struct rescue_learn *l = &r->learn;
	/* The last predicted bands may have been the new pattern's good data. */
	for (uint32_t i = l->n; i-- > 0 && l->n - i <= 2;)
		if (l->h[i].how == 2 && l->nsuspect < 8) {
			l->suspect[l->nsuspect][0] = l->h[i].start;
			l->suspect[l->nsuspect++][1] = l->h[i].start + l->h[i].len;
		}
	if (l->active) {
		char text[120], pos[24];
		fmt_bytes(pos, sizeof(pos), at * r->lsize);
		fmt_snprintf(text, sizeof(text), "the pattern of bad areas changes at %s: learning it again", pos);
		event(r, text);
	}
	l->active = 0;
	l->n = 0;
}

/* A band ends the first pass has found: its start read, its length read or assumed. */
static void learn_band(struct rescue *r, uint64_t start, uint64_t len, uint8_t how)
{
	struct rescue_learn *l = &r->learn;
	r->st.bands++;
	if (how == 1) {
		l->measured++;
		l->since_verify = 0;
		if (len >= r->opt.cluster / r->lsize && l->measured >= 2)
			l->skip = len;
	} else {
		l->since_verify++;
	}
	learn_push(l, start, len, how);
	if (!r->opt.no_infer)
		learn_infer(r);
}

/* Where the last bands' spacing puts the next band's first block, at or after p: the next
 * distance equal to the last one, or to the one before it (one or two bands a cycle). Reading
 * that block alone makes the read that meets a band also the read of its first bad block. */
static int aim_next(const struct rescue_learn *l, uint64_t p, uint64_t *x)
{
	if (l->n < 2)
		return 0;
	const struct rescue_band *h = &l->h[l->n - 1];
	uint64_t d[2] = { h->start - h[-1].start, l->n >= 3 ? h[-1].start - h[-2].start : 0 }, best = UINT64_MAX;
	for (uint32_t i = 0; i < 2; i++) {
		uint64_t c = h->start + d[i];
		if (d[i] && c >= p && c > h->start + h->len && c < best)
			best = c;
	}
	*x = best;
	return best != UINT64_MAX;
}

/* Single blocks from one end of [lo, hi) inward (dir > 0: up from lo; dir < 0: down from hi),
 * stopping at the first that fails (marked bad) or, when old is 0 (the states are the map's),
 * at the first whose state is already known (neither non-tried nor non-trimmed). *at gets where
 * the good blocks read end: the stopping block's near edge, else the far end. Returns 0, 1 when
 * stopped, or < 0. */
static int linear_search(struct rescue *r, uint64_t lo, uint64_t hi, int dir, uint8_t old, uint64_t *at)
{
	/* Without a clone target the good blocks gather in the buffer and are stored as one write
	 * (a single-block read each, but not a cow write each); going down they arrive last first,
	 * so they fill a window of the buffer from its end and move to its start before the write. */
	uint64_t room = (r->opt.max_read > r->opt.cluster ? r->opt.max_read : r->opt.cluster) / r->lsize;
	uint64_t from = dir > 0 ? lo : hi, to = from, base = dir > 0 ? from : from > room ? from - room : 0;
	uint64_t n = 0, s = from, e = from;
	uint8_t was = 0;
	int rc = 0, stopped = 0, gather = !r->hooks.target;
	while (lo < hi) {
		if (n++ % LINEAR_STOP_EVERY == 0 && stop_asked(r)) {
			rc = -E_STOPPED;
			break;
		}
		next_read(lo, hi, dir, r->block, r->block, &s, &e);
		was = old ? old : state_at(r, s);
		if (!old && was != COW_NONTRIED && was != COW_NONTRIMMED) {
			stopped = 1;   /* something already known: the search ends there */
			break;
		}
		if (!gather) {
			if ((rc = attempt(r, s, e, COW_BAD, was)) < 0)
				return rc;
			if (rc == 2) {
				stopped = 1;
				rc = 0;
				break;
			}
		} else {
			if (dir > 0 ? e - base > room : s < base) {
				if ((rc = gather_store(r, base, from, to)) < 0)
					return rc;
				from = to = dir > 0 ? lo : hi;
				base = dir > 0 ? from : from > room ? from - room : 0;
			}
			uint64_t bad, t0 = r->env->now_us();
			r->st.pos = s * r->lsize;
			rc = cow_read_source(r->cow, s * r->lsize, (e - s) * r->lsize, r->buf + (s - base) * r->lsize, &bad);
			if ((rc = count_read(r, s * r->lsize, (e - s) * r->lsize, rc, t0)) < 0)
				break;
			rc = 0;
			if (dir > 0)
				to = e;
			else
				from = s;
		}
		if (dir > 0)
			lo = e;
		else
			hi = s;
	}
	if (gather) {
		int src = gather_store(r, base, from, to);
		if (src < 0)
			return src;
	}
	if (rc == -E_STOPPED)
		return rc;
	if (rc < 0 && !is_read_failure(rc))
		return fatal(r, rc);
	if (rc < 0) {
		if (was != COW_BAD && (rc = set_tracked(r, s, e - s, COW_BAD, was)) < 0)
			return rc;
		r->nfail++;
		if ((rc = after_failure(r)) < 0)
			return rc;
		stopped = 1;
	}
	*at = dir > 0 ? lo : hi;
	return stopped;
}

/* Pass 1 (forwards): reads grow while they succeed. A failure after a good read meets a bad
 * area: its first bad block is found at once from the good side (one more failed read), the
 * rest of the failed read becomes non-trimmed, and the pass skips ahead: by the length the
 * last bands had once two were measured, else by a skip that doubles while failures go on.
 * Where it lands well, the band's end is searched backwards while the length is still being
 * learnt (or the layout looks irregular, or every few bands as a check). Once two bands were
 * met, reads stop where their spacing puts the next one and read its first block alone, which
 * then is both the read that meets the band and its edge. Once the bands
 * repeat, the next ones are predicted: reads stop at a predicted start and go on at its end,
 * leaving the band non-tried for the edge pass; a failure where none was predicted drops the
 * prediction. */
static int sweep(struct rescue *r)
{
	struct rescue_learn *l = &r->learn;
	uint64_t cl = r->opt.cluster / r->lsize, a, b;
	uint64_t skip_min = r->opt.skip_min / r->lsize, skip_max = r->opt.skip_max / r->lsize;
	uint64_t maxr = r->opt.max_read > r->opt.cluster ? r->opt.max_read / r->lsize : cl;
	/* Reads stay at two clusters while bad areas are about, and until CLEAN_GROW of them read
	 * well in this pass: the first bad sector inside a failed read is found a block at a time
	 * (and the rest of the read trimmed so), so a failed 1 MiB read costs a few thousand
	 * single-block reads where a failed two-cluster read costs a few hundred. */
	uint64_t careful = 2 * cl < maxr ? 2 * cl : maxr, clean = 0;
	uint64_t size = cl, good = 0, skip = skip_min, p = 0;
	int prev_ok = 1, in_band = 0, continued = 0, learnt_skip = 0;
	uint64_t band_start = 0, last_fail_start = 0, last_fail_end = 0, good_end = 0;
	int rc;
	memset(l, 0, sizeof(*l));
	if (!find_run(r, p, 1, COW_NONTRIED, &a, &b))
		return 0;
	announce(r, RP_COPY, 1, 1);
	while (find_run(r, p, 1, COW_NONTRIED, &a, &b)) {
		if (stop_asked(r))
			return -E_STOPPED;
		if (b < r->sectors && state_at(r, b) == COW_FINISHED) {
			/* A hole an earlier run left (a band it skipped, resumed after a stop): the
			 * edge pass reads it from the finished sides. */
			p = b;
			continue;
		}
		if (l->active) {
			while (l->active && l->next_start + l->next_len <= a) {   /* passed: already done */
				learn_push(l, l->next_start, l->next_len, 2);
				learn_infer(r);
			}
			if (a >= l->next_start) {
				/* At a predicted band: not read now. Its end is where reading goes on. */
				uint64_t ps = l->next_start, pe = ps + l->next_len;
				r->st.bands++;
				r->st.bands_predicted++;
				learn_push(l, ps, l->next_len, 2);
				learn_infer(r);
				p = pe;
				prev_ok = 1;   /* a failure right at its end is met as a new area: a defect, or the band going on */
				in_band = 0;
				size = cl;
				good = 0;
				continue;
			}
			if (l->next_start < b)
				b = l->next_start;
		}
		uint64_t s, e, x;
		uint64_t lim = r->st.bands || clean < CLEAN_GROW * careful ? careful : maxr;
		next_read(a, b, 1, cl, size < lim ? size : lim, &s, &e);
		/* Where the spacing of the last bands puts the next one, reads stop, and its first
		 * block is read alone (right after good data, it is the band's edge if it fails). */
		int aimed = 0, failed;
		if (!l->active && aim_next(l, s, &x) && x < e && x % r->block == 0) {
			if (x > s)
				e = x;
			else if (good_end == s && prev_ok)
				e = s + r->block, aimed = 1;
		}
		if (aimed) {
			if ((rc = attempt(r, s, e, COW_BAD, COW_NONTRIED)) < 0)
				return rc;
			failed = rc == 2;
		} else {
			rc = read_block(r, s, e - s);
			if (rc < 0 && !is_read_failure(rc))
				return fatal(r, rc);
			failed = rc < 0;
		}
		if (!failed) {
			good_end = e;
			clean += e - s;
			if (in_band) {
				/* Landed past a band. Measure its end while learning, when the layout looks
				 * irregular, or now and then; else take the length as learnt. */
				in_band = 0;
				int measure = !learnt_skip || continued || !learn_regular(l, band_start) ||
					      l->since_verify + 1 >= VERIFY_EVERY;
				if (!learnt_skip && !continued)
					measure = 0;   /* a small defect: the first skip cleared it; the edge pass ends it */
				uint64_t end = s;
				/* Down to the band's first bad block: the failed read that met it may have
				 * been longer than the band. */
				uint64_t floor = continued ? last_fail_start : band_start + r->block;
				if (s - floor > TRAIL_MAX_BLOCKS * r->block)
					floor = last_fail_end;
				if (measure && s - floor <= TRAIL_MAX_BLOCKS * r->block) {
					int trc = linear_search(r, floor, s, -1, 0, &end);
					if (trc < 0)
						return trc;
					/* Longer than learnt after a failed skip: the skip may have met a defect
					 * beyond a band of the learnt length. The block past that length tells. */
					uint64_t want = band_start + l->skip;
					int kept = 0;
					if (learnt_skip && continued && end > want && want + r->block <= end &&
					    state_at(r, want) != COW_FINISHED) {
						if ((trc = attempt(r, want, want + r->block, COW_BAD, state_at(r, want))) < 0)
							return trc;
						kept = trc != 2;
					}
					if (kept)
						learn_band(r, band_start, l->skip, 0);
					else
						learn_band(r, band_start, end - band_start, 1);
				} else {
					learn_band(r, band_start, s - band_start, 0);
				}
				if (l->active && l->next_start < e) {
					/* The prediction's next band began inside what just read well. */
					learn_broken(r, l->next_start);
				}
			}
			p = e;
			prev_ok = 1;
			if (rc == 0 && ++good >= 2)
				size = size * 2 < maxr ? size * 2 : maxr;
			else if (rc)
				size = cl, good = 0;
			skip = skip / 2 > skip_min ? skip / 2 : skip_min;
		} else if (prev_ok) {
			/* A bad area met from the good side: its first bad block, now (the aimed read
			 * was that block). */
			uint64_t f = s;
			int trc = 1;
			if (!aimed) {
				r->nfail++;
				if ((rc = after_failure(r)) < 0)
					return rc;
				if ((trc = linear_search(r, s, e, 1, COW_NONTRIED, &f)) < 0)
					return trc;
			}
			prev_ok = 1;
			size = cl;
			good = 0;
			if (trc == 0) {   /* it all read the second time (weak): go on */
				p = e;
				continue;
			}
			if (l->active) {
				/* Where no band was predicted: a small defect, if a little further reads;
				 * the prediction holds and the defect's end waits for the edge pass. */
				uint64_t q = f + DEFECT_BLOCKS * r->block;
				if (q + r->block <= b && state_at(r, q) == COW_NONTRIED) {
					if ((rc = attempt(r, q, q + r->block, COW_BAD, COW_NONTRIED)) < 0)
						return rc;
					if (rc != 2) {
						p = q + r->block;
						continue;
					}
				}
				learn_broken(r, s);
			}
			uint64_t fe = f + r->block;
			learnt_skip = l->skip != 0;
			/* With a learnt length the failed read's tail past it is likely good: left
			 * non-tried, read next. */
			uint64_t fend = learnt_skip && f + l->skip < e ? f + l->skip : e;
			if (fe < fend && (rc = set_tracked(r, fe, fend - fe, COW_NONTRIMMED, COW_NONTRIED)) < 0)
				return rc;
			band_start = f;
			last_fail_start = s;
			last_fail_end = fend > fe ? fend : fe;
			in_band = 1;
			continued = 0;
			/* The learnt length from the band's start; else the minimum skip past the failed read. */
			p = learnt_skip ? f + l->skip : last_fail_end + skip_min;
			if (p < last_fail_end)
				p = last_fail_end;
			if (p > r->sectors)
				p = r->sectors;
			prev_ok = 0;
			skip = learnt_skip ? skip_min : 2 * skip_min;   /* if that lands in the band still, grow */
		} else {
			/* Still inside a bad area (or right after a predicted one): skip on, doubling. */
			if ((rc = set_tracked(r, s, e - s, COW_NONTRIMMED, COW_NONTRIED)) < 0)
				return rc;
			r->nfail++;
			if ((rc = after_failure(r)) < 0)
				return rc;
			if (!in_band) {
				/* A predicted band that goes on past its predicted end. */
				learn_broken(r, s);
				band_start = s;
				in_band = 1;
				learnt_skip = 0;
			}
			continued = 1;
			last_fail_start = s;
			last_fail_end = e;
			p = r->sectors - e > skip ? e + skip : r->sectors;
			skip = skip * 2 < skip_max ? skip * 2 : skip_max;
			size = cl;
			good = 0;
		}
		if ((rc = maybe_commit(r)) < 0)
			return rc;
	}
	if (in_band)
		learn_band(r, band_start, r->sectors - band_start, 0);
	return 0;
}

/* The non-finished area around [a, b) is longer than max: the inside of a large bad area. */
static int large_area(const struct rescue *r, uint64_t a, uint64_t b, uint64_t max)
{
	const struct cow_map *m = cow_get_map(r->cow);
	uint64_t lo = a, hi = b, xa, xb;
	uint8_t st;
	while (lo > 0 && hi - lo <= max) {
		extent_at(m, lo - 1, &xa, &xb, &st);
		if (st == COW_FINISHED)
			break;
		lo = xa;
	}
	while (hi < r->sectors && hi - lo <= max) {
		extent_at(m, hi, &xa, &xb, &st);
		if (st == COW_FINISHED)
			break;
		hi = xb;
	}
	return hi - lo > max;
}

/* From a finished edge into a non-tried area: a block, then reads doubling while they go well;
 * after a failed read of more than a block, single blocks from its start to the first bad one.
 * Upwards from lo (dir > 0) or downwards from hi. *stop gets where good data ends. */
static int edge_gallop(struct rescue *r, uint64_t lo, uint64_t hi, int dir, uint64_t *stop)
{
	uint64_t bs = r->block, maxr = r->opt.max_read > r->opt.cluster ? r->opt.max_read / r->lsize : r->opt.cluster / r->lsize;
	uint64_t size = bs;
	int rc;
	while (lo < hi) {
		if (stop_asked(r))
			return -E_STOPPED;
		uint64_t s, e;
		next_read(lo, hi, dir, bs, size, &s, &e);
		if (e - s <= bs) {
			if ((rc = attempt(r, s, e, COW_BAD, COW_NONTRIED)) < 0)
				return rc;
		} else {
			rc = read_block(r, s, e - s);
			if (rc < 0 && !is_read_failure(rc))
				return fatal(r, rc);
			if (rc < 0) {
				r->nfail++;
				if ((rc = after_failure(r)) < 0)
					return rc;
				uint64_t at;
				rc = linear_search(r, s, e, dir, COW_NONTRIED, &at);
				if (rc < 0)
					return rc;
				if (dir > 0)
					lo = at;
				else
					hi = at;
				if (rc == 1)
					break;
				continue;
			}
		}
		if (rc == 2)
			break;
		if (dir > 0)
			lo = e;
		else
			hi = s;
		size = size * 2 < maxr ? size * 2 : maxr;
	}
	*stop = dir > 0 ? lo : hi;
	return 0;
}

/* Pass 2, the edges: every non-tried area next to finished data is read from that side inward
 * to its first bad block (the ends of the bands pass 1 skipped, the predicted bands, what a
 * learnt skip jumped over). Areas with no finished neighbour are the insides of bad areas: a
 * short one (what skipping leaves) becomes non-trimmed without a read, as in passes 2-3 of
 * old; a long one waits for the interiors, last. */
/* The non-finished area around [a, b) is as long as a band met in pass 1 (and is not one the
 * pattern's change makes suspect): most likely all bad. */
static int band_like(const struct rescue *r, uint64_t a, uint64_t b)
{
	const struct rescue_learn *l = &r->learn;
	const struct cow_map *m = cow_get_map(r->cow);
	for (uint32_t i = 0; i < l->nsuspect; i++)
		if (a < l->suspect[i][1] && b > l->suspect[i][0])
			return 0;
	uint64_t lo = a, hi = b, xa, xb;
	uint8_t st;
	while (lo > 0) {
		extent_at(m, lo - 1, &xa, &xb, &st);
		if (st == COW_FINISHED)
			break;
		lo = xa;
	}
	while (hi < r->sectors) {
		extent_at(m, hi, &xa, &xb, &st);
		if (st == COW_FINISHED)
			break;
		hi = xb;
	}
	for (uint32_t i = 0; i < l->nlens; i++)
		if (hi - lo == l->lens[i])
			return 1;
	return 0;
}

/* round 0: only the areas that do not look like bands (data a skip jumped over, a defect's
 * surroundings); round 1: the bands' own edges too. */
static int edge_pass(struct rescue *r, uint32_t pass, int round)
{
	uint64_t cl = r->opt.cluster / r->lsize, p = 0, a, b;
	int rc, said = 0;
	for (p = 0; find_run(r, p, 1, COW_NONTRIED, &a, &b);) {
		if (stop_asked(r))
			return -E_STOPPED;
		int left = a > 0 && state_at(r, a - 1) == COW_FINISHED, right = state_at(r, b) == COW_FINISHED;
		uint64_t lo = a, hi = b;
		if (!said && (left || right) && !(round == 0 && r->learn.nlens && band_like(r, a, b))) {
			announce(r, RP_COPY, pass, 1);
			said = 1;
		}
		if (round == 0 && r->learn.nlens && band_like(r, a, b)) {
			p = b;
			continue;
		}
		if (!left && !right) {
			if (sandwiched(r, a, b, 8 * cl) &&
			    (rc = cow_set_state(r->cow, a * r->lsize, (b - a) * r->lsize, COW_NONTRIMMED)) < 0)
				return rc;
			p = b;
			continue;
		}
		if (left && (rc = edge_gallop(r, lo, hi, 1, &lo)) < 0)
			return rc;
		if (lo < hi && right && state_at(r, hi - 1) == COW_NONTRIED &&
		    (rc = edge_gallop(r, lo, hi, -1, &hi)) < 0)
			return rc;
		p = b;
		if ((rc = maybe_commit(r)) < 0)
			return rc;
	}
	return 0;
}

/* Trim: each non-trimmed area from its edges inward, a block at a time, to the first bad block
 * (marked bad); what lies between becomes non-scraped. edges_only: an edge is trimmed only
 * next to finished data (the first trim: a failed read's end inside a band is not worth a
 * read yet); the interiors' trim does every edge. */
static int trim_phase(struct rescue *r, uint32_t pass, int edges_only)
{
	uint64_t bs = r->block, p = 0, a, b;
	int rc;
	if (!find_run(r, 0, 1, COW_NONTRIMMED, &a, &b))
		return 0;
	announce(r, RP_TRIM, pass, 1);
	while (find_run(r, p, 1, COW_NONTRIMMED, &a, &b)) {
		uint64_t lo = a, hi = b;
		int left = !edges_only || (a > 0 && state_at(r, a - 1) == COW_FINISHED);
		int right = !edges_only || state_at(r, b) == COW_FINISHED;
		while (left && lo < hi) {
			if (stop_asked(r))
				return -E_STOPPED;
			uint64_t s, e;
			next_read(lo, hi, 1, bs, bs, &s, &e);
			if ((rc = attempt(r, lo, e, COW_BAD, COW_NONTRIMMED)) < 0)
				return rc;
			lo = e;
			if (rc == 2)
				break;
		}
		while (right && lo < hi) {
			if (stop_asked(r))
				return -E_STOPPED;
			uint64_t s, e;
			next_read(lo, hi, -1, bs, bs, &s, &e);
			if ((rc = attempt(r, s, hi, COW_BAD, COW_NONTRIMMED)) < 0)
				return rc;
			hi = s;
			if (rc == 2)
				break;
		}
		if (lo < hi && (rc = set_tracked(r, lo, hi - lo, COW_NONSCRAPED, COW_NONTRIMMED)) < 0)
			return rc;
		p = b;
		if ((rc = maybe_commit(r)) < 0)
			return rc;
	}
	return 0;
}

/* Scrape (state '/', once forwards) and retry (state '-', in direction dir): every block once.
 * small: only areas that are not the inside of a large bad area. */
static int block_pass(struct rescue *r, enum rescue_phase ph, uint32_t pass, int dir, uint8_t state, uint64_t small)
{
	uint64_t bs = r->block, p = dir > 0 ? 0 : r->sectors, a, b;
	int rc, said = 0;
	while (find_run(r, p, dir, state, &a, &b)) {
		if (small && large_area(r, a, b, small)) {
			p = dir > 0 ? b : a;
			continue;
		}
		if (!said) {
			announce(r, ph, pass, dir);
			said = 1;
		}
		if (stop_asked(r))
			return -E_STOPPED;
		uint64_t s, e;
		next_read(a, b, dir, bs, bs, &s, &e);
		if ((rc = attempt(r, s, e, COW_BAD, state)) < 0)
			return rc;
		p = dir > 0 ? e : s;
		if ((rc = maybe_commit(r)) < 0)
			return rc;
	}
	return 0;
}

/* One side of a doubtful area, from its end inward: known bad blocks are stepped over, a good
 * block leads on (galloping over non-tried data) to the next failure; after a failure the next
 * try jumps twice as far (a defect of a few sectors is crossed in a few reads), and the side
 * ends after DOUBT_FAILS failures. */
static int doubtful_side(struct rescue *r, uint64_t lo, uint64_t hi, int dir)
{
	const struct cow_map *m = cow_get_map(r->cow);
	uint32_t fails = 0;
	uint64_t jump = r->block;
	int rc;
	while (lo < hi && fails < DOUBT_FAILS) {
		if (stop_asked(r))
			return -E_STOPPED;
		uint64_t xa, xb, q = dir > 0 ? lo : hi - 1;
		uint8_t st;
		extent_at(m, q, &xa, &xb, &st);
		if (xa < lo)
			xa = lo;
		if (xb > hi)
			xb = hi;
		if (st == COW_BAD || st == COW_FINISHED) {
			if (dir > 0)
				lo = xb;
			else
				hi = xa;
			continue;
		}
		uint64_t s, e, at;
		next_read(xa, xb, dir, r->block, r->block, &s, &e);
		if ((rc = attempt(r, s, e, COW_BAD, st)) < 0)
			return rc;
		if (rc == 2) {
			fails++;
			/* The blocks jumped over stay as they are, for the interiors. */
			uint64_t over = jump - r->block;
			if (dir > 0)
				lo = e + over < hi ? e + over : hi;
			else
				hi = s > lo + over ? s - over : lo;
			jump *= 2;
			continue;
		}
		jump = r->block;
		if (dir > 0)
			lo = e;
		else
			hi = s;
		/* Good data after a defect: on to the next failure. */
		if (dir > 0 && lo < xb)
			rc = st == COW_NONTRIED ? edge_gallop(r, lo, xb, 1, &at) : linear_search(r, lo, xb, 1, st, &at);
		else if (dir < 0 && xa < hi)
			rc = st == COW_NONTRIED ? edge_gallop(r, xa, hi, -1, &at) : linear_search(r, xa, hi, -1, st, &at);
		else
			continue;
		if (rc < 0)
			return rc;
		if (dir > 0)
			lo = at + (rc == 1 ? r->block : 0);
		else
			hi = at > xa + (rc == 1 ? r->block : 0) ? at - (rc == 1 ? r->block : 0) : xa;
		fails += rc == 1 || (st == COW_NONTRIED && at < (dir > 0 ? xb : hi + 1));
	}
	return 0;
}

/* Bad areas longer than both their neighbours (bands of one zone are alike): a defect next to
 * a band, or data a learnt skip jumped over, lies inside. They are read from both ends, a
 * couple of failures each side, before the insides of large bad areas. */
static int doubtful_pass(struct rescue *r)
{
	const struct cow_map *m = cow_get_map(r->cow);
	uint64_t big = r->opt.cluster / r->lsize;
	uint64_t reg[3][2] = { { 0, 0 }, { 0, 0 }, { 0, 0 } };   /* prev, cur, next: [start, end) */
	uint64_t p = 0, xa, xb;
	uint8_t st;
	int n = 0, rc, said = 0;
	if (r->opt.domain && r->opt.domain->n)
		return 0;   /* a domain's ranges (a file system's runs) have no bands to compare */
	for (;;) {
		/* The next area of non-finished sectors holding something still to read. */
		uint64_t a = 0, b = 0;
		int todo = 0;
		while (p < r->sectors) {
			extent_at(m, p, &xa, &xb, &st);
			if (st != COW_FINISHED) {
				if (!b)
					a = xa;
				b = xb;
				todo |= st != COW_BAD;
			} else if (b) {
				break;
			}
			p = xb;
		}
		int more = b != 0;
		if (more && !todo)
			continue;
		memmove(reg[0], reg[1], sizeof(reg[0]) * 2);
		reg[2][0] = a;
		reg[2][1] = b;
		if (more)
			n++;
		uint64_t len = reg[1][1] - reg[1][0];
		uint64_t lp = reg[0][1] - reg[0][0], ln = more ? reg[2][1] - reg[2][0] : lp;
		/* Its neighbours are large too (bands), and it is longer than both: the last band
		 * of a zone is longer than the first of the next one without anything inside. */
		if (n >= 2 && lp > big && ln > big && len > (lp > ln ? lp : ln) + 2 * r->block) {
			if (!said) {
				event(r, "reading areas longer than the bad bands around them from both ends");
				said = 1;
			}
			if ((rc = doubtful_side(r, reg[1][0], reg[1][1], 1)) < 0 ||
			    (rc = doubtful_side(r, reg[1][0], reg[1][1], -1)) < 0)
				return rc;
			if ((rc = maybe_commit(r)) < 0)
				return rc;
		}
		if (!more)
			return 0;
	}
}

/* What is left that is neither finished nor bad: the insides of large bad areas. */
static void count_interiors(struct rescue *r)
{
	uint64_t bytes[5], areas[5];
	rescue_domain_totals(r, bytes, areas);
	r->st.interior_bytes = bytes[0] + bytes[1] + bytes[2];
	r->st.interior_areas = areas[0] + areas[1] + areas[2];
}

static int run_phases(struct rescue *r)
{
	int d = r->opt.reverse ? -1 : 1, rc = 0;
	uint64_t large = r->opt.cluster / r->lsize;   /* bigger bad areas: their insides wait */
	uint32_t passes = r->opt.passes;
	r->st.interiors_now = 0;
	if (passes & RESCUE_PASS_COPY) {
		/* Forwards: the sweep that learns the bands; reverse: the plain skipping passes. */
		if (d > 0 ? (rc = copy_pass(r, 1, 1, 1)) < 0 : (rc = copy_pass(r, 1, -1, 1)) < 0 || (rc = copy_pass(r, 2, 1, 1)) < 0)
			return rc;
		if ((rc = edge_pass(r, d > 0 ? 2 : 3, 0)) < 0)
			return rc;
	}
	/* What is likely readable before the edges of what is likely a band: the failed reads'
	 * ends next to finished data, the areas longer than their neighbours, then the bands. */
	if ((passes & RESCUE_PASS_TRIM) && (rc = trim_phase(r, 1, 1)) < 0)
		return rc;
	if ((passes & RESCUE_PASS_TRIM) && (rc = doubtful_pass(r)) < 0)
		return rc;
	if ((passes & RESCUE_PASS_COPY) && (rc = edge_pass(r, d > 0 ? 3 : 4, 1)) < 0)
		return rc;
	if ((passes & RESCUE_PASS_TRIM) && (rc = trim_phase(r, 1, 1)) < 0)
		return rc;
	if ((passes & RESCUE_PASS_SCRAPE) && (rc = block_pass(r, RP_SCRAPE, 1, 1, COW_NONSCRAPED, large)) < 0)
		return rc;
	count_interiors(r);
	if (r->st.interior_areas) {
		char text[160], sz[24];
		fmt_bytes(sz, sizeof(sz), r->st.interior_bytes);
		if (passes & RESCUE_PASS_INTERIORS)
			fmt_snprintf(text, sizeof(text), "everything else is done: reading the insides of large bad areas (%llu areas, %s)",
				     (unsigned long long)r->st.interior_areas, sz);
		else
			fmt_snprintf(text, sizeof(text), "the insides of large bad areas are left unread (%llu areas, %s; passes=...,interiors reads them)",
				     (unsigned long long)r->st.interior_areas, sz);
		event(r, text);
	}
	if (passes & RESCUE_PASS_INTERIORS) {
		r->st.interiors_now = 1;
		if (passes & RESCUE_PASS_COPY) {
			if ((rc = copy_pass(r, d > 0 ? 4 : 5, d, 0)) < 0)
				return rc;
		}
		if ((passes & RESCUE_PASS_TRIM) && (rc = trim_phase(r, 2, 0)) < 0)
			return rc;
		if ((passes & RESCUE_PASS_SCRAPE) && (rc = block_pass(r, RP_SCRAPE, 2, 1, COW_NONSCRAPED, 0)) < 0)
			return rc;
		r->st.interiors_now = 0;
		count_interiors(r);
	}
	if (passes & RESCUE_PASS_RETRY) {
		/* ddrescue's habit: the first retry runs backwards, approaching bad areas from the
		 * side the copy saw last. */
		for (uint32_t i = 1; i <= r->opt.retries; i++)
			if ((rc = block_pass(r, RP_RETRY, i, i % 2 ? -d : d, COW_BAD, 0)) < 0)
				return rc;
	}
	r->st.phase = RP_DONE;
	return 0;
}

int rescue_init(struct rescue *r, struct cow *c, const struct cow_env *env,
		const struct rescue_opts *o, const struct rescue_hooks *h)
{
	struct cow_geometry g;
	cow_get_geometry(c, &g);
	memset(r, 0, sizeof(*r));
	r->cow = c;
	r->env = env;
	r->opt = *o;
	if (h)
		r->hooks = *h;
	r->lsize = g.src_lsize;
	r->sectors = g.source_size / g.src_lsize;
	r->block = g.src_psize > g.src_lsize && g.src_psize % g.src_lsize == 0 &&
		   g.src_psize <= o->cluster ? g.src_psize / g.src_lsize : 1;
	if (o->cluster % g.src_lsize || o->cluster < g.src_lsize || o->skip_min % g.src_lsize ||
	    o->skip_min < g.src_lsize || o->skip_max % g.src_lsize)
		return -E_ALIGN;
	if (!r->opt.skip_max) {
		uint64_t m = align_down(g.source_size / 64, g.src_lsize);
		r->opt.skip_max = m < r->opt.skip_min ? r->opt.skip_min : m > (1ull << 30) ? 1ull << 30 : m;
	}
	uint64_t bufsize = o->max_read > o->cluster ? o->max_read : o->cluster;
	r->buf = env->alloc(bufsize);
	r->buf2 = r->buf ? env->alloc(bufsize) : NULL;
	if (!r->buf2)
		return -E_NOMEM;   /* rescue_free frees what was allocated */
	/* A block the map already calls finished serves as the probe until this run reads one. */
	uint64_t p = 0, xa, xb;
	uint8_t st;
	const struct cow_map *m = cow_get_map(c);
	while (p < r->sectors && !r->have_probe) {
		extent_at(m, p, &xa, &xb, &st);
		if (st == COW_FINISHED && xb - xa >= r->block) {
			r->probe_off = align_down(xa + r->block - 1, r->block) * r->lsize;
			r->have_probe = r->probe_off / r->lsize + r->block <= xb;
		}
		p = xb;
	}
	return 0;
}

static uint64_t domain_group_sectors(const struct rescue_domain *d, uint32_t g)
{
	uint64_t n = 0;
	for (uint32_t i = g ? d->group_end[g - 1] : 0; i < d->group_end[g]; i++)
		n += d->range[i].count;
	return n;
}

int rescue_run(struct rescue *r)
{
	uint64_t now = r->env->now_us();
	r->st.start_us = r->last_commit_us = r->win_us = now;
	r->nundo = r->nfail = 0;
	r->probe_after = PROBE_FIRST;
	/* A domain's groups one after another, each through all its phases. */
	const struct rescue_domain *d = r->opt.domain;
	uint32_t groups = d && d->n ? d->ngroups : 1;
	int rc = 0;
	for (uint32_t g = 0; g < groups && rc == 0; g++) {
		r->dlo = g && d ? d->group_end[g - 1] : 0;
		r->dhi = d && d->n ? d->group_end[g] : 0;
		r->st.group = g + 1;
		if (groups > 1) {
			char text[80];
			fmt_snprintf(text, sizeof(text), "domain part %u of %u: %llu sectors", g + 1, groups,
				     (unsigned long long)domain_group_sectors(d, g));
			event(r, text);
		}
		rc = run_phases(r);
	}
	/* The commit comes last so that -E_GONE's undo is durable; a failed commit outranks
	 * everything but a cow failure the run already saw. */
	int crc = rc == -E_COWIO ? 0 : commit_now(r);
	r->st.elapsed_us = r->env->now_us() - r->st.start_us;
	if (r->hooks.target && rc == 0) {
		int frc = cow_bdev_flush(r->hooks.target);
		if (frc < 0) {
			r->target_rc = frc;
			r->target_off = UINT64_MAX;
			rc = -E_TARGET;
		}
	}
	return rc < 0 ? rc : crc;
}

void rescue_free(struct rescue *r)
{
	if (r->buf)
		r->env->free(r->buf);
	if (r->buf2)
		r->env->free(r->buf2);
	r->buf = r->buf2 = NULL;
}
