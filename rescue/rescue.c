/* The rescue algorithm over a cow's map: which block to read next and what a failure means.
 * Every read goes through cow_rescue_read, so the map says finished only for stored data. */
#include "rescue.h"
#include "../lib/errors.h"

#define MIB (1024ull * 1024)
#define PROBE_FIRST 8        /* consecutive failures before checking the drive still answers */
#define UNDO_MAX 64          /* and the most: a bad zone costs a probe per 64 failed reads */

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

/* ---- option parsing ----------------------------------------------------------------------- */

static void say(char *why, size_t n, const char *fmt, const char *a)
{
	if (why && n)
		fmt_snprintf(why, n, fmt, a);
}

/* Decimal or 0x-hex, with an optional K/M/G/T (binary) or s (sectors) suffix. */
static int parse_size(const char *t, uint32_t lsize, uint64_t *out)
{
	uint64_t v = 0, base = 10;
	if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
		base = 16;
		t += 2;
	}
	const char *start = t;
	for (;; t++) {
		uint64_t d;
		if (*t >= '0' && *t <= '9')
			d = (uint64_t)(*t - '0');
		else if (base == 16 && *t >= 'a' && *t <= 'f')
			d = (uint64_t)(*t - 'a' + 10);
		else if (base == 16 && *t >= 'A' && *t <= 'F')
			d = (uint64_t)(*t - 'A' + 10);
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			return -E_RANGE;
		v = v * base + d;
	}
	if (t == start)
		return -E_SYNTAX;
	uint64_t mul = 1;
	switch (*t) {
	case 0: break;
	case 's': mul = lsize; t++; break;
	case 'k': case 'K': mul = 1ull << 10; t++; break;
	case 'M': mul = 1ull << 20; t++; break;
	case 'G': mul = 1ull << 30; t++; break;
	case 'T': mul = 1ull << 40; t++; break;
	default: return -E_SYNTAX;
	}
	if (mul > 1 && *t == 'i' && t[1] == 'B')
		t += 2;
	if (*t || (v && mul > UINT64_MAX / v))
		return -E_SYNTAX;
	*out = v * mul;
	return 0;
}

static int key_is(const char *arg, const char *key, const char **val)
{
	size_t k = strlen(key);
	if (strncmp(arg, key, k) || arg[k] != '=')
		return 0;
	*val = arg + k + 1;
	return 1;
}

static int parse_passes(const char *v, uint32_t *out)
{
	static const char *const names[] = { "copy", "trim", "scrape", "retry" };
	uint32_t mask = 0;
	while (*v) {
		const char *end = strchr(v, ',');
		size_t len = end ? (size_t)(end - v) : strlen(v);
		int hit = 0;
		for (uint32_t i = 0; i < 4; i++)
			if (strlen(names[i]) == len && !strncmp(v, names[i], len)) {
				mask |= 1u << i;
				hit = 1;
			}
		if (!hit)
			return -E_SYNTAX;
		v += len + (end ? 1 : 0);
	}
	if (!mask)
		return -E_SYNTAX;
	*out = mask;
	return 0;
}

int rescue_parse_opt(struct rescue_opts *o, const char *arg, uint32_t lsize, char *why, size_t n)
{
	const char *v;
	uint64_t x, y;
	if (!strcmp(arg, "reverse")) {
		o->reverse = 1;
		return 0;
	}
	if (key_is(arg, "retries", &v)) {
		if (parse_size(v, lsize, &x) < 0 || x > 1000)
			goto bad;
		o->retries = (uint32_t)x;
		return 0;
	}
	if (key_is(arg, "cluster", &v)) {
		if (parse_size(v, lsize, &x) < 0 || x < lsize || x % lsize || x > 8 * MIB)
			goto bad;
		o->cluster = x;
		return 0;
	}
	if (key_is(arg, "max-read", &v)) {
		if (parse_size(v, lsize, &x) < 0 || x % lsize || x > 8 * MIB)
			goto bad;
		o->max_read = x;
		return 0;
	}
	if (key_is(arg, "skip", &v)) {
		const char *comma = strchr(v, ',');
		char first[32];
		size_t len = comma ? (size_t)(comma - v) : strlen(v);
		if (len >= sizeof(first))
			goto bad;
		memcpy(first, v, len);
		first[len] = 0;
		y = 0;
		if (parse_size(first, lsize, &x) < 0 || x < lsize || x % lsize ||
		    (comma && (parse_size(comma + 1, lsize, &y) < 0 || y < x || y % lsize)))
			goto bad;
		o->skip_min = x;
		o->skip_max = y;
		return 0;
	}
	if (key_is(arg, "timeout", &v)) {
		if (parse_size(v, lsize, &x) < 0 || x < 10 || x > 600000)
			goto bad;
		o->timeout_ms = (uint32_t)x;
		return 0;
	}
	if (key_is(arg, "min-rate", &v)) {
		if (parse_size(v, lsize, &x) < 0)
			goto bad;
		o->min_rate = x;
		return 0;
	}
	if (key_is(arg, "passes", &v)) {
		if (parse_passes(v, &o->passes) < 0)
			goto bad;
		return 0;
	}
	if (key_is(arg, "commit", &v)) {
		if (parse_size(v, lsize, &x) < 0 || x < 100 || x > 3600000)
			goto bad;
		o->commit_ms = x;
		return 0;
	}
	say(why, n, "unknown option '%s'", arg);
	return -E_USAGE;
bad:
	say(why, n, "bad value in '%s'", arg);
	return -E_USAGE;
}

/* ---- domains ------------------------------------------------------------------------------ */

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
		if (parse_size(item, 1, &s) < 0 || parse_size(plus + 1, 1, &c) < 0 || c == 0 ||
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

/* 0: read and stored; 1: stored but slower than min-rate; <0: the read failed (a source
 * failure when is_read_failure(), else fatal for the run). */
static int read_block(struct rescue *r, uint64_t s, uint64_t n)
{
	uint64_t off = s * r->lsize, len = n * r->lsize, bad = 0;
	r->st.pos = off;
	uint64_t t0 = r->env->now_us();
	int rc = read_and_store(r, off, len, &bad);
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
	return b - a <= max && (before == COW_NONTRIMMED || before == COW_BAD) &&
	       (after == COW_NONTRIMMED || after == COW_BAD);
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

/* The copy's reads are positional, so the map may lag one block behind them: the cow's write
 * of a block runs while the next is read. Trim and scrape choose by the map, and do not. */
static int copy_pass(struct rescue *r, uint32_t pass, int dir, int skipping)
{
	r->overlap = 1;
	int rc = copy_reads(r, pass, dir, skipping);
	r->overlap = 0;
	int erc = cow_store_end(r->cow);
	return erc < 0 ? erc : rc;   /* a failing cow outranks the rest */
}

/* Trim: from both edges of each non-trimmed area inward, a block at a time, to the first bad
 * block (marked bad); what lies between becomes non-scraped. */
static int trim_phase(struct rescue *r)
{
	uint64_t bs = r->block, p = 0, a, b;
	int rc;
	if (!find_run(r, 0, 1, COW_NONTRIMMED, &a, &b))
		return 0;
	announce(r, RP_TRIM, 1, 1);
	while (find_run(r, p, 1, COW_NONTRIMMED, &a, &b)) {
		uint64_t lo = a, hi = b;
		while (lo < hi) {
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
		while (lo < hi) {
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

/* Scrape (state '/', once forwards) and retry (state '-', in direction dir): every block once. */
static int block_pass(struct rescue *r, enum rescue_phase ph, uint32_t pass, int dir, uint8_t state)
{
	uint64_t bs = r->block, p = dir > 0 ? 0 : r->sectors, a, b;
	int rc;
	if (!find_run(r, p, dir, state, &a, &b))
		return 0;
	announce(r, ph, pass, dir);
	while (find_run(r, p, dir, state, &a, &b)) {
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

static int run_phases(struct rescue *r)
{
	int d = r->opt.reverse ? -1 : 1, rc = 0;
	if (r->opt.passes & RESCUE_PASS_COPY) {
		if ((rc = copy_pass(r, 1, d, 1)) < 0 || (rc = copy_pass(r, 2, -d, 1)) < 0 ||
		    (rc = copy_pass(r, 3, d, 0)) < 0)
			return rc;
	}
	if ((r->opt.passes & RESCUE_PASS_TRIM) && (rc = trim_phase(r)) < 0)
		return rc;
	if ((r->opt.passes & RESCUE_PASS_SCRAPE) &&
	    (rc = block_pass(r, RP_SCRAPE, 1, 1, COW_NONSCRAPED)) < 0)
		return rc;
	if (r->opt.passes & RESCUE_PASS_RETRY) {
		/* ddrescue's habit: the first retry runs backwards, approaching bad areas from the
		 * side the copy saw last. */
		for (uint32_t i = 1; i <= r->opt.retries; i++)
			if ((rc = block_pass(r, RP_RETRY, i, i % 2 ? -d : d, COW_BAD)) < 0)
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
